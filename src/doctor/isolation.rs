//! Isolation (guide A.1): is OpenClaw in a VM, a container or under a dedicated user, and
//! does this look like someone's daily desktop?

use super::machine::{owner_mode, Machine};
use super::openclaw::OpenClaw;
use super::{guide, Check, Status};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn checks(m: &Machine, oc: &OpenClaw) -> Vec<Check> {
    let desktop = desktop_signs(m);
    vec![sandbox(m, oc, &desktop), daily_desktop(&desktop)]
}

/// What kind of sandbox this is, by the kernel's and the runtimes' own signs.
pub fn virtualization(m: &Machine) -> Option<String> {
    // systemd's own detection knows every hypervisor and container manager; ask it on
    // the real machine. Its exit status is non-zero for "none".
    if m.is_real() {
        if let Ok(out) = Command::new("systemd-detect-virt").output() {
            let what = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !what.is_empty() && what != "none" {
                return Some(format!("{what} (systemd-detect-virt)"));
            }
        }
    }
    let exists = |p: &str| m.sys_path(p).exists();
    let read = |p: &str| std::fs::read_to_string(m.sys_path(p)).unwrap_or_default();
    if exists("/.dockerenv") {
        return Some("docker container (/.dockerenv)".into());
    }
    if exists("/run/.containerenv") {
        return Some("podman container (/run/.containerenv)".into());
    }
    // PID 1's environment names the container manager (systemd-nspawn, lxc, podman…).
    let environ = std::fs::read(m.sys_path("/proc/1/environ")).unwrap_or_default();
    if let Some(c) = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"container="))
    {
        return Some(format!(
            "{} container (container= in PID 1's environment)",
            String::from_utf8_lossy(c)
        ));
    }
    let cgroup = read("/proc/1/cgroup");
    for (sign, name) in [
        ("docker", "docker"),
        ("kubepods", "kubernetes"),
        ("containerd", "containerd"),
        ("lxc", "lxc"),
        ("libpod", "podman"),
    ] {
        if cgroup.contains(sign) {
            return Some(format!("{name} container (/proc/1/cgroup)"));
        }
    }
    let dmi = [
        read("/sys/class/dmi/id/sys_vendor"),
        read("/sys/class/dmi/id/product_name"),
    ]
    .join(" ");
    for (sign, name) in [
        ("VMware", "vmware"),
        ("VirtualBox", "virtualbox"),
        ("innotek", "virtualbox"),
        ("QEMU", "qemu"),
        ("KVM", "kvm"),
        ("Microsoft Corporation", "hyper-v"),
        ("Xen", "xen"),
        ("Parallels", "parallels"),
        ("Alibaba Cloud", "alibaba cloud ecs"),
        ("Tencent Cloud", "tencent cloud cvm"),
        ("Amazon EC2", "amazon ec2"),
        ("Google Compute Engine", "google compute engine"),
    ] {
        if dmi.contains(sign) {
            return Some(format!("{name} virtual machine (/sys/class/dmi/id)"));
        }
    }
    // The CPU flag every hypervisor sets for its guests.
    if read("/proc/cpuinfo")
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
    {
        return Some("virtual machine (the CPU's hypervisor flag)".into());
    }
    None
}

fn sandbox(m: &Machine, oc: &OpenClaw, desktop: &[String]) -> Check {
    let id = "isolation.sandbox";
    if let Some(what) = virtualization(m) {
        return Check::new(id, guide::ISOLATE, Status::Pass)
            .evidence(format!("running in a {what}"));
    }
    // A dedicated user: OpenClaw's state belongs to an account that is not root and has
    // no sign of anyone's daily use.
    let owner = owner_mode(&oc.state_dir).map(|(uid, _)| uid);
    if let (Some(uid), true) = (owner.filter(|u| *u != 0), desktop.is_empty()) {
        return Check::new(id, guide::ISOLATE, Status::Pass).evidence(format!(
            "no VM or container detected; OpenClaw's state belongs to the dedicated user {} \
             with no sign of daily desktop use",
            m.describe_uid(uid)
        ));
    }
    Check::new(id, guide::ISOLATE, Status::Warn)
        .evidence("no VM or container detected (systemd-detect-virt, /.dockerenv, /run/.containerenv, PID 1's cgroup and environment, DMI, the CPU's hypervisor flag)")
        .evidence(match owner {
            Some(0) => "OpenClaw's state directory belongs to root, not to a dedicated user".to_string(),
            Some(uid) => format!("OpenClaw's state directory belongs to {}", m.describe_uid(uid)),
            None => format!("no OpenClaw state directory at {}", oc.state_dir.display()),
        })
        .fix("run OpenClaw in a VM (VirtualBox, VMware, a cloud server) or a container (`docker run` with only its workspace mounted), or on a dedicated machine under its own account: `useradd -m openclaw` and install and run OpenClaw as that user")
}

fn daily_desktop(signs: &[String]) -> Check {
    let id = "isolation.daily-desktop";
    if signs.is_empty() {
        return Check::new(id, guide::ISOLATE, Status::Pass)
            .evidence("no graphical session, mail client profile or office documents found");
    }
    let mut c = Check::new(id, guide::ISOLATE, Status::Fail);
    for s in signs {
        c = c.evidence(s.clone());
    }
    c.fix("this looks like a daily-use computer: move OpenClaw to a VM, a container or a dedicated machine with no personal mail, documents or desktop session (the guide: not on a daily office computer; clear personal data from a machine you dedicate to it)")
}

/// Mail client profiles people keep in their home directory.
const MAIL_PROFILES: &[&str] = &[
    ".thunderbird",
    ".mozilla-thunderbird",
    ".local/share/evolution",
    ".config/evolution",
    ".claws-mail",
    ".foxmail",
    "Library/Thunderbird",
];

/// Office documents (Microsoft, OpenDocument, WPS, Apple iWork).
const OFFICE_EXTENSIONS: &[&str] = &[
    "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "wps", "et", "dps", "pages",
    "numbers", "key",
];

/// How far and how much of the home directory is looked at for documents: enough to
/// find `~/Documents/report.docx`, bounded so a huge home cannot stall the doctor.
const DOC_MAX_DEPTH: usize = 3;
const DOC_MAX_ENTRIES: usize = 20_000;
const DOC_EXAMPLES: usize = 3;

/// Signs of a daily desktop: a graphical session, a mail client's profile, office
/// documents in the home directory. Each sign is one evidence line.
pub fn desktop_signs(m: &Machine) -> Vec<String> {
    let mut signs = Vec::new();
    let session: Vec<String> = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .filter_map(|v| m.var(v).map(|_| format!("{v} is set")))
        .chain(
            m.var("XDG_SESSION_TYPE")
                .filter(|t| matches!(*t, "x11" | "wayland"))
                .map(|t| format!("XDG_SESSION_TYPE={t}")),
        )
        .collect();
    let x_sockets = std::fs::read_dir(m.sys_path("/tmp/.X11-unix"))
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    if !session.is_empty() || x_sockets > 0 {
        let mut what = session;
        if x_sockets > 0 {
            what.push(format!("{x_sockets} X display socket(s) in /tmp/.X11-unix"));
        }
        signs.push(format!("graphical session: {}", what.join(", ")));
    }
    let mail: Vec<String> = MAIL_PROFILES
        .iter()
        .filter(|p| m.home.join(p).is_dir())
        .map(|p| format!("~/{p}"))
        .collect();
    if !mail.is_empty() {
        signs.push(format!("mail client profile: {}", mail.join(", ")));
    }
    let docs = office_documents(&m.home);
    if !docs.is_empty() {
        let examples: Vec<String> = docs
            .iter()
            .take(DOC_EXAMPLES)
            .map(|p| format!("~/{}", p.strip_prefix(&m.home).unwrap_or(p).display()))
            .collect();
        signs.push(format!(
            "{} office document(s) in the home directory, e.g. {}",
            docs.len(),
            examples.join(", ")
        ));
    }
    signs
}

fn office_documents(home: &Path) -> Vec<PathBuf> {
    let walker = ignore::WalkBuilder::new(home)
        .standard_filters(false)
        // Dot-directories hold programs' state (OpenClaw's own among them), not documents.
        .hidden(true)
        .follow_links(false)
        .max_depth(Some(DOC_MAX_DEPTH))
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    walker
        .flatten()
        .take(DOC_MAX_ENTRIES)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .filter(|e| {
            e.path()
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| OFFICE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        })
        .map(|e| e.into_path())
        .collect()
}
