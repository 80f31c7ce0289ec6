//! What a lockdown applied, measured from inside just before the command starts, so an
//! operator can audit it (`clawguard exec --lockdown --print-profile`).
//!
//! Every field is read back from the kernel (`/proc/self/status`, `/proc/self/ns/*`,
//! `/proc/self/mountinfo`) or reported by the call that applied it; nothing here is
//! what we *meant* to apply.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub namespaces: Vec<Namespace>,
    pub identity: Identity,
    pub capabilities: Capabilities,
    pub no_new_privs: bool,
    /// `PR_GET_SECUREBITS`, hex.
    pub securebits: String,
    pub seccomp: Seccomp,
    pub landlock: Landlock,
    pub mounts: Vec<MountEntry>,
    pub network: Network,
    /// `--allow-socket` paths the command may connect to.
    pub allowed_sockets: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Namespace {
    /// `net`, `mnt`, `pid`, …
    pub kind: String,
    /// The `/proc/self/ns/<kind>` link of the command, e.g. `net:[4026532297]`.
    pub id: String,
    /// Differs from ClawGuard's own (filled in by the parent, which can see both).
    pub new: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// Real, effective, saved, filesystem uid as the command sees them.
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    pub groups: Vec<u32>,
    /// The command runs in a user namespace ClawGuard created (ClawGuard was not root).
    pub user_namespace: bool,
    /// `/proc/self/uid_map` of the command.
    pub uid_map: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capabilities {
    /// Hex masks from `/proc/self/status` (`CapEff`, …).
    pub effective: String,
    pub permitted: String,
    pub inheritable: String,
    pub bounding: String,
    pub ambient: String,
}

impl Capabilities {
    pub fn all_dropped(&self) -> bool {
        [
            &self.effective,
            &self.permitted,
            &self.inheritable,
            &self.bounding,
            &self.ambient,
        ]
        .iter()
        .all(|m| u64::from_str_radix(m, 16) == Ok(0))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seccomp {
    /// `Seccomp:` of `/proc/self/status` (2 = filter).
    pub mode: u32,
    /// `Seccomp_filters:` of `/proc/self/status`.
    pub filters: u32,
    /// System calls that fail, grouped by the errno they fail with.
    pub denied: Vec<DeniedGroup>,
    /// Socket families the command may create.
    pub socket_families: Vec<String>,
    /// How `connect(2)` is handled.
    pub connect: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeniedGroup {
    pub errno: String,
    pub why: String,
    pub calls: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Landlock {
    /// The kernel's Landlock ABI version, when it has Landlock.
    pub abi: Option<i32>,
    /// What was enforced (`abstract-unix-socket`, `signal`, `resolve-unix`).
    pub enforced: Vec<String>,
    /// `fully enforced`, `partially enforced` or `not enforced: <why>`.
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountEntry {
    pub path: PathBuf,
    /// What the command sees there, e.g. `private tmpfs`, `read-only host`.
    pub view: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    /// Interfaces and addresses in the command's network namespace.
    pub interfaces: Vec<String>,
    /// The only listener ClawGuard provides there.
    pub proxy: String,
    /// What `/etc/resolv.conf` holds for the command.
    pub resolver: String,
}

impl Profile {
    /// The profile for people: one line per protection.
    pub fn to_text(&self) -> String {
        let mut s = String::from("clawguard lockdown profile\n");
        let new: Vec<&str> = self
            .namespaces
            .iter()
            .filter(|n| n.new)
            .map(|n| n.kind.as_str())
            .collect();
        let shared: Vec<&str> = self
            .namespaces
            .iter()
            .filter(|n| !n.new)
            .map(|n| n.kind.as_str())
            .collect();
        let _ = writeln!(
            s,
            "  namespaces     new: {}{}",
            new.join(" "),
            if shared.is_empty() {
                String::new()
            } else {
                format!("; ClawGuard's own: {}", shared.join(" "))
            }
        );
        let id = &self.identity;
        let _ = writeln!(
            s,
            "  identity       uid {} gid {} groups {:?}{}",
            id.uid[1],
            id.gid[1],
            id.groups,
            if id.user_namespace {
                format!(" (user namespace, uid_map {})", id.uid_map.trim())
            } else {
                String::new()
            }
        );
        let c = &self.capabilities;
        let _ =
            writeln!(
            s,
            "  capabilities   effective {} permitted {} inheritable {} bounding {} ambient {}{}",
            c.effective,
            c.permitted,
            c.inheritable,
            c.bounding,
            c.ambient,
            if c.all_dropped() { " (all dropped)" } else { "" }
        );
        let _ = writeln!(
            s,
            "  no_new_privs   {}   securebits {}",
            if self.no_new_privs { "set" } else { "NOT SET" },
            self.securebits
        );
        let sc = &self.seccomp;
        let _ = writeln!(
            s,
            "  seccomp        mode {} with {} filters; socket families: {}",
            sc.mode,
            sc.filters,
            sc.socket_families.join(", ")
        );
        let _ = writeln!(s, "    connect(2)   {}", sc.connect);
        for g in &sc.denied {
            let _ = writeln!(s, "    {} ({}): {}", g.errno, g.why, g.calls.join(" "));
        }
        let ll = &self.landlock;
        let _ = writeln!(
            s,
            "  landlock       {}{}{}",
            ll.abi
                .map_or("no Landlock".to_string(), |a| format!("ABI {a}: ")),
            ll.enforced.join(", "),
            if ll.enforced.is_empty() {
                format!("({})", ll.status)
            } else {
                format!(" ({})", ll.status)
            }
        );
        let _ = writeln!(s, "  mount view");
        for m in &self.mounts {
            let _ = writeln!(s, "    {:<28} {}", m.path.display(), m.view);
        }
        let n = &self.network;
        let _ = writeln!(
            s,
            "  network        {}; proxy {}",
            n.interfaces.join(", "),
            n.proxy
        );
        let _ = writeln!(s, "  resolver       {}", n.resolver);
        let allowed: Vec<String> = self
            .allowed_sockets
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let _ = writeln!(
            s,
            "  allowed sockets {}",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        );
        s
    }
}

/// The namespace kinds a lockdown creates (user only when ClawGuard is not root).
pub const NAMESPACE_KINDS: &[&str] = &["net", "mnt", "pid", "ipc", "uts", "cgroup", "user"];

/// `/proc/self/ns/<kind>` of the calling process.
pub fn namespace_id(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// One `Key:\tvalue` line of `/proc/self/status`.
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

fn ids(status: &str, key: &str) -> [u32; 4] {
    let mut out = [u32::MAX; 4];
    if let Some(v) = status_field(status, key) {
        for (slot, n) in out.iter_mut().zip(v.split_whitespace()) {
            *slot = n.parse().unwrap_or(u32::MAX);
        }
    }
    out
}

/// Identity, capabilities, no_new_privs and seccomp state of the calling process.
pub fn measure_credentials(
    user_namespace: bool,
) -> std::io::Result<(Identity, Capabilities, bool, u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |k: &str| status_field(&status, k).unwrap_or_default();
    let identity = Identity {
        uid: ids(&status, "Uid"),
        gid: ids(&status, "Gid"),
        groups: field("Groups")
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
        user_namespace,
        uid_map: std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
    };
    let caps = Capabilities {
        effective: field("CapEff"),
        permitted: field("CapPrm"),
        inheritable: field("CapInh"),
        bounding: field("CapBnd"),
        ambient: field("CapAmb"),
    };
    let nnp = field("NoNewPrivs") == "1";
    let mode = field("Seccomp").parse().unwrap_or(0);
    let filters = field("Seccomp_filters").parse().unwrap_or(0);
    Ok((identity, caps, nnp, mode, filters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse() {
        let status = "Name:\tx\nUid:\t0\t0\t0\t0\nCapEff:\t0000000000000000\nSeccomp:\t2\n";
        assert_eq!(ids(status, "Uid"), [0, 0, 0, 0]);
        assert_eq!(
            status_field(status, "CapEff").as_deref(),
            Some("0000000000000000")
        );
        assert_eq!(status_field(status, "Seccomp").as_deref(), Some("2"));
        assert_eq!(status_field(status, "Missing"), None);
    }

    #[test]
    fn all_dropped_means_every_set_is_zero() {
        let zero = "0000000000000000".to_string();
        let mut c = Capabilities {
            effective: zero.clone(),
            permitted: zero.clone(),
            inheritable: zero.clone(),
            bounding: zero.clone(),
            ambient: zero,
        };
        assert!(c.all_dropped());
        c.bounding = "0000000000200000".into();
        assert!(!c.all_dropped());
    }
}
