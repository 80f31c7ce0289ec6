//! `clawguard doctor`: the CNCERT/CCS OpenClaw security guide's baseline, checked on this
//! machine and the OpenClaw install it finds.
//!
//! One module per group of checks; each check yields a [`Check`] naming the guide's
//! recommendation it serves, what was seen (never a secret: rule ids, places and masked
//! previews only) and the exact fix. Everything the checks read goes through a
//! [`Machine`], so tests point it at a fixture machine (`--root`, `HOME`, the OpenClaw
//! state directory) instead of the real one.

pub mod exposure;
pub mod guide;
pub mod isolation;
pub mod live;
pub mod machine;
pub mod openclaw;
pub mod privacy;
pub mod privilege;
pub mod updates;
pub mod wiring;

pub use machine::Machine;
pub use openclaw::OpenClaw;

use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// How a check came out. `Fail` makes `clawguard doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Not against the baseline, but worth a look (or could not be decided).
    Warn,
    /// Against the guide's baseline.
    Fail,
    /// Does not apply here, or nothing to check (said why in the evidence).
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable id, `group.name` (e.g. `privilege.openclaw-processes`).
    pub id: &'static str,
    pub status: Status,
    /// The guide's recommendation this check serves.
    pub recommendation: &'static str,
    /// What was seen: places, counts, rule ids, masked previews; never a secret.
    pub evidence: Vec<String>,
    /// What to do about a warn or fail (`None` when there is nothing to do).
    pub fix: Option<String>,
}

impl Check {
    pub fn new(id: &'static str, recommendation: &'static str, status: Status) -> Check {
        Check {
            id,
            status,
            recommendation,
            evidence: Vec::new(),
            fix: None,
        }
    }

    pub fn evidence(mut self, line: impl Into<String>) -> Check {
        self.evidence.push(line.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// What `clawguard doctor` was asked to do beyond reading the machine.
#[derive(Debug, Clone)]
pub struct Options {
    /// The npm registry asked for OpenClaw's newest version (`None`: do not ask).
    pub registry: Option<String>,
    /// The proxy to check instead of the one OpenClaw is configured with.
    pub proxy: Option<String>,
    /// ClawGuard's CA directory.
    pub ca_dir: PathBuf,
    /// Skip the live checks through the proxy.
    pub no_live: bool,
    /// Bound on each network exchange (registry, proxy, canary).
    pub timeout: Duration,
}

/// Every check's result, in a stable order.
#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub summary: Summary,
    pub checks: Vec<Check>,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("loading the rules for the privacy scan: {0}")]
    Rules(#[from] crate::detect::rules::RuleError),
    #[error("compiling the rules for the privacy scan: {0}")]
    Scanner(#[from] crate::detect::scan::ScanError),
}

/// Run every check group against `machine`. `rules`: extra rule packs for the privacy
/// scan (over the built-in ones).
pub fn run(
    machine: &Machine,
    opts: &Options,
    rules: Option<&std::path::Path>,
) -> Result<Report, DoctorError> {
    let pack = match rules {
        Some(dir) => crate::detect::rules::RulePack::builtin_with_dir(dir)?,
        None => crate::detect::rules::RulePack::builtin(),
    };
    let scanner = crate::detect::scan::Scanner::new(&pack)?;
    let oc = OpenClaw::find(machine);
    let mut checks = vec![found(machine, &oc)];
    checks.extend(isolation::checks(machine, &oc));
    checks.extend(privilege::checks(machine, &oc));
    checks.extend(exposure::checks(machine, &oc));
    checks.extend(privacy::checks(machine, &oc, &scanner));
    checks.extend(updates::checks(&oc, opts));
    checks.extend(wiring::checks(machine, &oc, opts));
    checks.extend(live::checks(machine, &oc, opts));
    let mut summary = Summary::default();
    for c in &checks {
        match c.status {
            Status::Pass => summary.pass += 1,
            Status::Warn => summary.warn += 1,
            Status::Fail => summary.fail += 1,
            Status::Skip => summary.skip += 1,
        }
    }
    Ok(Report {
        ok: summary.fail == 0,
        summary,
        checks,
    })
}

/// Which OpenClaw the checks are about (or that none was found here).
fn found(m: &Machine, oc: &OpenClaw) -> Check {
    let id = "openclaw.found";
    let show = |p: &std::path::Path| privacy::show(m, p);
    if !oc.present() {
        return Check::new(id, guide::SCOPE, Status::Warn)
            .evidence(format!(
                "no OpenClaw state directory at {} and no `openclaw` on PATH",
                show(&oc.state_dir)
            ))
            .fix("run the doctor as the user OpenClaw runs as (its HOME), or name its state directory with OPENCLAW_STATE_DIR");
    }
    let mut c = Check::new(id, guide::SCOPE, Status::Pass)
        .evidence(format!("state directory: {}", show(&oc.state_dir)))
        .evidence(format!(
            "config: {}{}",
            show(&oc.config_path),
            if oc.config.is_some() { "" } else { " (none)" }
        ))
        .evidence(format!("workspace: {}", show(&oc.workspace)));
    if let Some(i) = &oc.install {
        c = c.evidence(format!(
            "installed: openclaw {} ({})",
            i.version,
            i.bin.display()
        ));
    }
    if let Some((pid, _)) = &oc.running_env {
        c = c.evidence(format!(
            "running: pid {pid} (its environment is what the wiring checks judge)"
        ));
    }
    if let Some(e) = &oc.config_error {
        c.status = Status::Warn;
        c = c
            .evidence(format!("the config could not be read: {e}"))
            .fix("fix the config file's syntax (`openclaw config validate`)");
    }
    c
}

impl Report {
    /// The report for people: one block per check, the fix under each warn or fail.
    pub fn to_text(&self, color: bool) -> String {
        let paint = |s: Status| {
            let (code, label) = match s {
                Status::Pass => ("32", "PASS"),
                Status::Warn => ("33", "WARN"),
                Status::Fail => ("31", "FAIL"),
                Status::Skip => ("2", "SKIP"),
            };
            if color {
                format!("\x1b[{code}m{label}\x1b[0m")
            } else {
                label.to_string()
            }
        };
        let mut out = String::new();
        let mut last_guide = "";
        for c in &self.checks {
            // Checks come grouped: the recommendation once per run of checks serving it.
            if c.recommendation != last_guide {
                let _ = writeln!(out, "\n[guide] {}", c.recommendation);
                last_guide = c.recommendation;
            }
            let _ = writeln!(out, "{} {}", paint(c.status), c.id);
            for e in &c.evidence {
                let _ = writeln!(out, "     - {e}");
            }
            if let (Some(fix), Status::Warn | Status::Fail) = (&c.fix, c.status) {
                let _ = writeln!(out, "     fix: {fix}");
            }
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "\ndoctor: {} passed, {} warnings, {} failed, {} skipped{}",
            s.pass,
            s.warn,
            s.fail,
            s.skip,
            if self.ok {
                ""
            } else {
                " — fix the failed checks above"
            }
        );
        out
    }
}
