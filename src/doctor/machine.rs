//! The machine the checks look at. On a real run that is `/`, the process environment and
//! `HOME`; tests hand in a fixture directory as the root (its `proc/`, `sys/`, `etc/`,
//! `run/`) and their own environment, so every check can be driven without touching the
//! real system.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Machine {
    /// Where `/` is: `/` itself, or a fixture directory.
    pub root: PathBuf,
    /// The home directory OpenClaw's files are looked for in.
    pub home: PathBuf,
    /// The environment the checks judge (normally this process's).
    pub env: BTreeMap<String, String>,
    /// This process, left out of the process checks.
    pub self_pid: u32,
}

impl Machine {
    /// This machine: `root` (normally `/`), this process's environment and `HOME`.
    pub fn current(root: PathBuf) -> Machine {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let home = env
            .get("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        Machine {
            root,
            home,
            env,
            self_pid: std::process::id(),
        }
    }

    /// The real machine (not a fixture): tools like `systemd-detect-virt` may be asked.
    pub fn is_real(&self) -> bool {
        self.root == Path::new("/")
    }

    /// An absolute system path (`/proc/1/cgroup`) under this machine's root.
    pub fn sys_path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `~/…` expanded against [`Machine::home`]; other paths unchanged.
    pub fn expand(&self, p: &str) -> PathBuf {
        match p.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None if p == "~" => self.home.clone(),
            None => PathBuf::from(p),
        }
    }

    /// Every process: pid, effective uid, argv. Unreadable entries (gone, or another
    /// user's without permission) are left out.
    pub fn processes(&self) -> Vec<Process> {
        let Ok(dir) = std::fs::read_dir(self.sys_path("/proc")) else {
            return Vec::new();
        };
        let mut out: Vec<Process> = dir
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                if pid == self.self_pid && self.is_real() {
                    return None;
                }
                let status = std::fs::read_to_string(e.path().join("status")).ok()?;
                let uid = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|u| u.parse().ok())?;
                let raw = std::fs::read(e.path().join("cmdline")).ok()?;
                let argv = raw
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                Some(Process { pid, uid, argv })
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        out
    }

    /// The environment of process `pid` (`None` when it cannot be read: another user's
    /// process without root).
    pub fn process_env(&self, pid: u32) -> Option<BTreeMap<String, String>> {
        let raw = std::fs::read(self.sys_path(&format!("/proc/{pid}/environ"))).ok()?;
        Some(
            raw.split(|b| *b == 0)
                .filter_map(|kv| {
                    let kv = String::from_utf8_lossy(kv);
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect(),
        )
    }

    /// The user name of `uid` from the machine's `/etc/passwd`.
    pub fn user_name(&self, uid: u32) -> Option<String> {
        let passwd = std::fs::read_to_string(self.sys_path("/etc/passwd")).ok()?;
        passwd.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_string())
        })
    }

    /// "name (uid N)" for evidence lines.
    pub fn describe_uid(&self, uid: u32) -> String {
        match self.user_name(uid) {
            Some(n) => format!("{n} (uid {uid})"),
            None => format!("uid {uid}"),
        }
    }
}

/// One running process.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    /// Effective uid (the second field of `Uid:` in `/proc/PID/status`).
    pub uid: u32,
    pub argv: Vec<String>,
}

impl Process {
    /// The command line for evidence: program names only (arguments can hold secrets).
    pub fn short(&self) -> String {
        self.argv
            .iter()
            .take(3)
            .map(|a| file_name(a))
            .filter(|a| !a.starts_with('-'))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether the program (or the script an interpreter runs) is `name`.
    ///
    /// Exactly `name`, as a script (`name.mjs`), or, for OpenClaw, one of its own
    /// processes (`openclaw-gateway`); not a mere prefix: test binaries such as
    /// `clawguard-<hash>` or `openclaw_e2e-<hash>` are neither.
    pub fn runs(&self, name: &str) -> bool {
        self.argv.iter().take(2).any(|a| {
            let f = file_name(a);
            f.strip_prefix(name).is_some_and(|rest| {
                rest.is_empty()
                    || rest == ".mjs"
                    || rest == ".js"
                    || (name == "openclaw" && rest.starts_with('-'))
            })
        })
    }
}

fn file_name(a: &str) -> &str {
    Path::new(a)
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or(a)
}

/// Owner uid and permission bits of `p` (not following a final symlink).
pub fn owner_mode(p: &Path) -> Option<(u32, u32)> {
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.uid(), m.mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(argv: &[&str]) -> Process {
        Process {
            pid: 1,
            uid: 0,
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn processes_are_recognised_by_program_name_not_prefix() {
        assert!(p(&[
            "node",
            "/usr/lib/node_modules/openclaw/openclaw.mjs",
            "gateway"
        ])
        .runs("openclaw"));
        assert!(p(&["openclaw-gateway"]).runs("openclaw"));
        assert!(p(&["/usr/bin/clawguard", "run"]).runs("clawguard"));
        assert!(!p(&["target/debug/deps/openclaw_e2e-a5e974c9"]).runs("openclaw"));
        assert!(!p(&["target/debug/deps/clawguard-8a9e754b"]).runs("clawguard"));
        assert_eq!(
            p(&["node", "/usr/bin/openclaw", "--token=x", "gateway"]).short(),
            "node openclaw"
        );
    }
}
