//! No root (guide A.3): OpenClaw's processes, its files and ClawGuard's processes.

use super::machine::{owner_mode, Machine, Process};
use super::openclaw::OpenClaw;
use super::{guide, Check, Status};

pub fn checks(m: &Machine, oc: &OpenClaw) -> Vec<Check> {
    let procs = m.processes();
    let openclaw: Vec<&Process> = procs
        .iter()
        .filter(|p| p.runs("openclaw") && !p.runs("clawguard"))
        .collect();
    // `clawguard doctor` itself is not a proxy; a lockdown's helper is part of `exec`.
    let clawguard: Vec<&Process> = procs
        .iter()
        .filter(|p| p.runs("clawguard") && p.argv.get(1).is_none_or(|a| a != "doctor"))
        .collect();
    vec![
        processes(m, "privilege.openclaw-processes", "OpenClaw", &openclaw,
            "stop it and start it as an unprivileged user: `useradd -m openclaw`, then as that user `clawguard exec -- openclaw gateway run` (or `openclaw gateway install` in that user's session)"),
        owner(m, oc),
        processes(m, "privilege.clawguard-processes", "ClawGuard", &clawguard,
            "run ClawGuard as an unprivileged user (`clawguard run` refuses root unless --allow-root; drop that flag), e.g. the systemd unit in the README's Deployment section with User=clawguard"),
    ]
}

fn processes(m: &Machine, id: &'static str, what: &str, procs: &[&Process], fix: &str) -> Check {
    if procs.is_empty() {
        return Check::new(id, guide::NO_ROOT, Status::Skip)
            .evidence(format!("no {what} process is running"));
    }
    let root: Vec<&&Process> = procs.iter().filter(|p| p.uid == 0).collect();
    let list = |ps: &mut dyn Iterator<Item = &&Process>| {
        ps.map(|p| format!("pid {} `{}` as {}", p.pid, p.short(), m.describe_uid(p.uid)))
            .collect::<Vec<_>>()
    };
    if root.is_empty() {
        let mut c = Check::new(id, guide::NO_ROOT, Status::Pass);
        for l in list(&mut procs.iter()) {
            c = c.evidence(l);
        }
        return c;
    }
    let mut c = Check::new(id, guide::NO_ROOT, Status::Fail);
    for l in list(&mut root.into_iter()) {
        c = c.evidence(format!("{l}: runs as root"));
    }
    c.fix(fix.to_string())
}

/// Who OpenClaw's state belongs to: the account it runs as, even when it is not running.
fn owner(m: &Machine, oc: &OpenClaw) -> Check {
    let id = "privilege.openclaw-user";
    match owner_mode(&oc.state_dir) {
        None => Check::new(id, guide::NO_ROOT, Status::Skip)
            .evidence(format!("no OpenClaw state directory at {}", oc.state_dir.display())),
        Some((0, _)) => Check::new(id, guide::NO_ROOT, Status::Fail)
            .evidence(format!(
                "{} belongs to root: OpenClaw is set up to run as the superuser",
                oc.state_dir.display()
            ))
            .fix(format!(
                "create a dedicated account (`useradd -m openclaw`), move the state there (`mv {} /home/openclaw/.openclaw && chown -R openclaw: /home/openclaw/.openclaw`) and run OpenClaw as that user",
                oc.state_dir.display()
            )),
        Some((uid, _)) => Check::new(id, guide::NO_ROOT, Status::Pass).evidence(format!(
            "{} belongs to {}",
            oc.state_dir.display(),
            m.describe_uid(uid)
        )),
    }
}
