//! No private data in OpenClaw's environment (guide, personal users): `clawguard scan` of
//! its state directory, workspace (memory files included), config and `.env` files, with a
//! count per rule and where. Never a value: rule ids, files and line numbers only.

use super::machine::{owner_mode, Machine};
use super::openclaw::OpenClaw;
use super::{guide, Check, Status};
use crate::detect::rules::Category;
use crate::detect::scan::Scanner;
use crate::file_scan::{self, Input, WalkOptions};
use crate::report::Reported;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Places listed per rule in the evidence; the count covers all of them.
const PLACES_SHOWN: usize = 5;

pub fn checks(m: &Machine, oc: &OpenClaw, scanner: &Scanner) -> Vec<Check> {
    let ids = [
        "privacy.personal-data",
        "privacy.credentials",
        "privacy.permissions",
    ];
    if !oc.state_dir.is_dir() {
        return ids
            .map(|id| {
                Check::new(id, guide::NO_PRIVATE_DATA, Status::Skip).evidence(format!(
                    "no OpenClaw state directory at {}",
                    oc.state_dir.display()
                ))
            })
            .to_vec();
    }
    let scan = scan(oc, scanner);
    let (pii, credentials): (Vec<&Reported>, Vec<&Reported>) = scan
        .findings
        .iter()
        .partition(|r| r.finding.category == Category::Pii);
    let (stored, exposed): (Vec<&Reported>, Vec<&Reported>) = credentials
        .into_iter()
        .partition(|r| is_credential_store(oc, Path::new(&r.path)));
    let scanned = format!(
        "scanned {} file(s) under {}{}",
        scan.files,
        show(m, &oc.state_dir),
        if oc.workspace.starts_with(&oc.state_dir) {
            String::new()
        } else {
            format!(" and {}", show(m, &oc.workspace))
        }
    );

    let personal = if pii.is_empty() {
        Check::new(ids[0], guide::NO_PRIVATE_DATA, Status::Pass)
            .evidence(format!("{scanned}: no personal data"))
    } else {
        let mut c =
            Check::new(ids[0], guide::NO_PRIVATE_DATA, Status::Fail).evidence(scanned.clone());
        for line in per_rule(m, &pii) {
            c = c.evidence(line);
        }
        c.fix(format!(
            "remove the personal data from these files (`clawguard scan --redact FILE` shows them redacted); keep personal documents out of OpenClaw's workspace and memory ({})",
            show(m, &oc.workspace)
        ))
    };

    let creds = if exposed.is_empty() {
        let mut c = Check::new(ids[1], guide::NO_PRIVATE_DATA, Status::Pass).evidence(format!(
            "{scanned}: no credential in the workspace, memory, sessions or logs"
        ));
        if !stored.is_empty() {
            c = c.evidence(format!(
                "{} credential(s) where OpenClaw keeps its own keys (config, .env, credentials/, auth profiles): {}",
                stored.len(),
                rules_of(&stored)
            ));
        }
        c
    } else {
        let mut c = Check::new(ids[1], guide::NO_PRIVATE_DATA, Status::Fail).evidence(scanned);
        for line in per_rule(m, &exposed) {
            c = c.evidence(line);
        }
        c.fix("the agent reads these files and can send them to the model: remove the credentials from them and rotate each one (assume it has been sent); give OpenClaw its own keys through its config or ~/.openclaw/.env (mode 0600)")
    };

    vec![personal, creds, permissions(m, oc, &stored)]
}

/// What the scan of OpenClaw's files found.
struct Scan {
    files: usize,
    findings: Vec<Reported>,
}

fn scan(oc: &OpenClaw, scanner: &Scanner) -> Scan {
    let mut roots = vec![oc.state_dir.clone()];
    for extra in [&oc.workspace, &oc.config_path] {
        if extra.exists() && !extra.starts_with(&oc.state_dir) {
            roots.push(extra.clone());
        }
    }
    let inputs: Vec<Input> = roots.into_iter().map(Input::Path).collect();
    // Everything: a `.gitignore` in the workspace must not hide a key from this check.
    let mut walk = file_scan::walk(&inputs, WalkOptions::everything());
    // Installed packages (plugins, skills' dependencies) carry test fixtures and example
    // keys of their own: they are code, not the user's data.
    walk.files
        .retain(|(p, _)| !p.components().any(|c| c.as_os_str() == "node_modules"));
    let outcome = file_scan::scan_walk(scanner, walk, std::io::empty(), false, Instant::now());
    Scan {
        files: outcome.files,
        findings: outcome
            .results
            .into_iter()
            .flat_map(|r| r.findings)
            .collect(),
    }
}

/// Files where OpenClaw keeps its own credentials by design.
fn is_credential_store(oc: &OpenClaw, p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // The config and the backups OpenClaw writes beside it (`openclaw.json.bak`).
    let config_name = oc.config_path.file_name().and_then(|n| n.to_str());
    let config_copy =
        p.parent() == oc.config_path.parent() && config_name.is_some_and(|c| name.starts_with(c));
    config_copy
        || p == oc.state_dir.join(".env")
        || p.starts_with(oc.state_dir.join("credentials"))
        || name == "auth-profiles.json"
        || name == "auth.json"
}

/// "rule: N in FILE:LINE, FILE:LINE…" per rule.
fn per_rule(m: &Machine, found: &[&Reported]) -> Vec<String> {
    let mut by_rule: BTreeMap<&str, Vec<&Reported>> = BTreeMap::new();
    for r in found {
        by_rule.entry(&r.finding.rule).or_default().push(r);
    }
    by_rule
        .into_iter()
        .map(|(rule, rs)| {
            let mut places: Vec<String> = rs
                .iter()
                .take(PLACES_SHOWN)
                .map(|r| format!("{}:{}", show(m, Path::new(&r.path)), r.line))
                .collect();
            if rs.len() > PLACES_SHOWN {
                places.push(format!("and {} more", rs.len() - PLACES_SHOWN));
            }
            format!("{rule}: {} in {}", rs.len(), places.join(", "))
        })
        .collect()
}

fn rules_of(found: &[&Reported]) -> String {
    let mut rules: Vec<&str> = found.iter().map(|r| &*r.finding.rule).collect();
    rules.sort();
    rules.dedup();
    rules.join(", ")
}

fn permissions(m: &Machine, oc: &OpenClaw, stored: &[&Reported]) -> Check {
    let id = "privacy.permissions";
    let mut bad = Vec::new();
    let mut fixes = Vec::new();
    if let Some((_, mode)) = owner_mode(&oc.state_dir) {
        if mode & 0o077 != 0 {
            bad.push(format!(
                "{} is mode {mode:03o}: other users can read OpenClaw's state",
                show(m, &oc.state_dir)
            ));
            fixes.push(format!("chmod 700 {}", oc.state_dir.display()));
        }
    }
    let mut files: Vec<PathBuf> = stored.iter().map(|r| PathBuf::from(&r.path)).collect();
    files.sort();
    files.dedup();
    for f in files {
        if let Some((_, mode)) = owner_mode(&f) {
            if mode & 0o077 != 0 {
                bad.push(format!(
                    "{} holds credentials and is mode {mode:03o}: readable by other users",
                    show(m, &f)
                ));
                fixes.push(format!("chmod 600 {}", f.display()));
            }
        }
    }
    if bad.is_empty() {
        return Check::new(id, guide::NO_PRIVATE_DATA, Status::Pass).evidence(format!(
            "{} and the files holding credentials are readable by their owner only",
            show(m, &oc.state_dir)
        ));
    }
    let mut c = Check::new(id, guide::NO_PRIVATE_DATA, Status::Fail);
    for b in bad {
        c = c.evidence(b);
    }
    c.fix(fixes.join(" && "))
}

/// A path for evidence, `~/…` under the home directory.
pub fn show(m: &Machine, p: &Path) -> String {
    match p.strip_prefix(&m.home) {
        Ok(rest) if rest.as_os_str().is_empty() => "~".into(),
        Ok(rest) => format!("~/{}", rest.display()),
        Err(_) => p.display().to_string(),
    }
}
