//! The command's private mount view (a new mount namespace, built before the command
//! starts):
//!
//! - the host filesystem read-only and `nodev`, except the working directory and `$HOME`
//!   (writable, still `nodev`);
//! - `/tmp`, `/var/tmp`, `/run` (so `/var/run`), `$XDG_RUNTIME_DIR` and `/dev/shm`: fresh,
//!   empty tmpfs. These are where local services put their sockets (Docker, D-Bus,
//!   systemd-resolved, nscd, SSH agents, X11, user relays); the command finds none;
//! - `/dev`: only `null zero full random urandom tty`, its own `pts` and `shm` (no
//!   disks, serial consoles or other devices a root command could write to);
//! - `/proc`: the lockdown's own (its PID namespace: no host process is visible), with
//!   `sys`, `sysrq-trigger`, `irq` and `bus` read-only (`kernel.core_pattern` and its
//!   like would run code outside);
//! - `/etc/resolv.conf`: `nameserver 127.0.0.1`, where nothing listens: the proxy resolves.
//!
//! Host paths the command needs inside a masked directory (its working directory,
//! `$HOME`, ClawGuard's CA files, `--allow-socket` sockets) are bind-mounted back at the
//! same path. Sockets in those paths stay unreachable: `connect(2)` is mediated (see
//! `supervisor`), this view is the second layer.

use super::profile::MountEntry;
use super::ViewPlan;
use rustix::mount::{MountFlags, MountPropagationFlags};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Device nodes the command keeps (bind-mounted from the host's `/dev`).
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Parts of `/proc` made read-only in the lockdown's own proc (as container runtimes do).
const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];

/// What the resolver configuration says inside.
pub const RESOLV_CONF: &str = "# ClawGuard lockdown: no resolver is reachable from here; the \
proxy resolves names.\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

/// The view as built: entries for the profile, and the device numbers of the private
/// filesystems (the supervisor lets the command connect to sockets made there).
pub struct Built {
    pub entries: Vec<MountEntry>,
    pub private_devs: Vec<u64>,
    pub resolver: String,
}

/// A host path opened before the view changes, to be bind-mounted back later.
struct Pinned {
    path: PathBuf,
    fd: OwnedFd,
    is_dir: bool,
    writable: bool,
}

fn proc_fd(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn pin(path: &Path, writable: bool) -> io::Result<Pinned> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let is_dir = rustix::fs::fstat(&fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    Ok(Pinned {
        path: path.to_path_buf(),
        fd,
        is_dir,
        writable,
    })
}

/// `mount_setattr(2)` (Linux 5.12): set or clear attributes on a whole mount tree.
/// `rustix` does not wrap it; the struct is the kernel's `struct mount_attr`.
fn set_tree_attr(path: &Path, set: u64, clear: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid C string and a correctly sized struct the kernel only reads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NODEV: u64 = 0x4;

fn read_only(path: &Path) -> io::Result<()> {
    set_tree_attr(path, MOUNT_ATTR_RDONLY, 0)
}

fn writable(path: &Path) -> io::Result<()> {
    set_tree_attr(path, 0, MOUNT_ATTR_RDONLY)
}

fn under(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

fn tmpfs(at: &Path, mode: &str) -> io::Result<u64> {
    let data = CString::new(format!("mode={mode}")).expect("no NUL");
    rustix::mount::mount(
        "tmpfs",
        at,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(data.as_c_str()),
    )?;
    Ok(fs::metadata(at)?.dev())
}

/// Create `path` (and its parents) as an empty directory or file to mount over.
fn mount_point(path: &Path, is_dir: bool) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    if is_dir {
        match fs::DirBuilder::new().mode(0o755).create(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(|_| ())
    }
}

/// Build the view. Runs in the new mount namespace, before the PID-namespace init
/// mounts `/proc` (see [`mount_proc`]).
pub fn build(plan: &ViewPlan, cwd: &Path) -> Result<Built, (&'static str, io::Error)> {
    let mut entries = Vec::new();
    let mut private_devs = Vec::new();

    // Nothing we mount may propagate back to the host.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| ("make the mount tree private", e.into()))?;

    // Open everything to carry over while the host view is still in place.
    // A path below a private directory is carried into the private view; the private
    // directory itself is not (a command started in /tmp gets the private /tmp). Kept
    // files below a hidden directory (the CA certificate in the CA directory) come back
    // after it is hidden.
    let private = |p: &Path| {
        plan.private_dirs.iter().any(|d| under(p, d) && p != d) || under(p, Path::new("/dev"))
    };
    let in_hidden = |p: &Path| plan.hidden.iter().any(|d| under(p, d));
    let mut carried = Vec::new();
    let mut kept_in_hidden = Vec::new();
    for p in &plan.writable {
        if private(p) {
            carried.push(pin(p, true).map_err(|e| ("open a writable path", e))?);
        }
    }
    for p in &plan.read_only {
        if in_hidden(p) {
            kept_in_hidden.push(pin(p, false).map_err(|e| ("open a path to keep", e))?);
        } else if private(p) && !carried.iter().any(|c: &Pinned| under(p, &c.path)) {
            carried.push(pin(p, false).map_err(|e| ("open a path to keep", e))?);
        }
    }
    let devices: Vec<Pinned> = DEVICES
        .iter()
        .filter_map(|d| pin(&Path::new("/dev").join(d), true).ok())
        .collect();
    let resolv_target = resolver_target();

    // The host, read-only and without device nodes: a read-only mount still lets a
    // device node (or FIFO) be opened for writing, and a root command owns the nodes
    // root made outside /dev. The few devices the command keeps come back below.
    set_tree_attr(Path::new("/"), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV, 0)
        .map_err(|e| ("make the host filesystem read-only", e))?;
    entries.push(MountEntry {
        path: "/".into(),
        view: "host filesystem, read-only, device nodes unusable".into(),
    });

    // The working directory and $HOME stay writable where they are not masked anyway.
    for p in &plan.writable {
        let in_private = plan.private_dirs.iter().any(|d| under(p, d));
        if in_private || under(p, Path::new("/dev")) || p == Path::new("/") {
            continue;
        }
        rustix::mount::mount_bind_recursive(p, p)
            .map_err(|e| ("bind a writable path", e.into()))?;
        writable(p).map_err(|e| ("make a path writable", e))?;
        entries.push(MountEntry {
            path: p.clone(),
            view: "host, writable".into(),
        });
    }

    // Socket directories: empty and private.
    for d in &plan.private_dirs {
        let Ok(meta) = fs::symlink_metadata(d) else {
            continue;
        };
        if !meta.is_dir() {
            continue; // /var/run → /run: masked through its target
        }
        let mode = if meta.permissions().mode() & 0o1000 != 0 {
            "1777"
        } else {
            "0755"
        };
        let dev = tmpfs(d, mode).map_err(|e| ("mount a private tmpfs", e))?;
        private_devs.push(dev);
        entries.push(MountEntry {
            path: d.clone(),
            view: "private tmpfs, empty at start".into(),
        });
    }
    if let Some(rt) = &plan.runtime_dir {
        if plan.private_dirs.iter().any(|d| under(rt, d) && rt != d) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(rt)
                .map_err(|e| ("create the private runtime directory", e))?;
            entries.push(MountEntry {
                path: rt.clone(),
                view: "private, empty at start ($XDG_RUNTIME_DIR)".into(),
            });
        }
    }

    // /dev: a few harmless devices, own pts and shm.
    let dev = Path::new("/dev");
    tmpfs(dev, "0755").map_err(|e| ("mount a private /dev", e))?;
    for d in &devices {
        mount_point(&d.path, false).map_err(|e| ("create a device mount point", e))?;
        rustix::mount::mount_bind(proc_fd(&d.fd), &d.path)
            .map_err(|e| ("bind a device", e.into()))?;
        set_tree_attr(&d.path, 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV)
            .map_err(|e| ("make a device usable", e))?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts).map_err(|e| ("create /dev/pts", e))?;
    rustix::mount::mount(
        "devpts",
        &pts,
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some(c"newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| ("mount a private devpts", e.into()))?;
    let shm = dev.join("shm");
    fs::create_dir(&shm).map_err(|e| ("create /dev/shm", e))?;
    private_devs.push(tmpfs(&shm, "1777").map_err(|e| ("mount a private /dev/shm", e))?);
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link)).map_err(|e| ("create a /dev link", e))?;
    }
    // No new files in /dev itself (not recursive: the devices, pts and shm keep theirs).
    rustix::mount::mount_remount(
        dev,
        MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        "",
    )
    .map_err(|e| ("make /dev read-only", e.into()))?;
    entries.push(MountEntry {
        path: dev.into(),
        view: format!(
            "private: {} and its own pts and shm",
            devices
                .iter()
                .filter_map(|d| d.path.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    });

    // Host paths the command needs inside masked directories.
    for c in &carried {
        entries.push(bind_back(c)?);
    }

    // ClawGuard's own files: a directory becomes an empty tmpfs (read-only once the
    // kept files are back), a file an empty device.
    let null = devices.iter().find(|d| d.path == Path::new("/dev/null"));
    let mut hidden_dirs = Vec::new();
    for h in &plan.hidden {
        let Ok(meta) = fs::metadata(h) else {
            continue;
        };
        if meta.is_dir() {
            tmpfs(h, "0755").map_err(|e| ("hide a ClawGuard directory", e))?;
            hidden_dirs.push(h.clone());
        } else if let Some(null) = null {
            rustix::mount::mount_bind(proc_fd(&null.fd), h)
                .map_err(|e| ("hide a ClawGuard file", e.into()))?;
        } else {
            continue;
        }
        entries.push(MountEntry {
            path: h.clone(),
            view: "hidden (ClawGuard's own)".into(),
        });
    }

    // Kept files inside hidden directories.
    for c in &kept_in_hidden {
        entries.push(bind_back(c)?);
    }

    for h in &hidden_dirs {
        read_only(h).map_err(|e| ("make a hidden directory read-only", e))?;
    }

    // The resolver: pointing at the lockdown's own loopback, where nothing listens.
    let resolver = install_resolv_conf(resolv_target, &plan.private_dirs)
        .map_err(|e| ("replace /etc/resolv.conf", e))?;
    entries.push(MountEntry {
        path: "/etc/resolv.conf".into(),
        view: resolver.clone(),
    });

    // Re-enter the working directory through the new view.
    rustix::process::chdir(cwd).map_err(|e| ("enter the working directory", e.into()))?;
    Ok(Built {
        entries,
        private_devs,
        resolver,
    })
}

/// Bind a pinned host path back at its own path inside the view.
fn bind_back(c: &Pinned) -> Result<MountEntry, (&'static str, io::Error)> {
    mount_point(&c.path, c.is_dir).map_err(|e| ("create a mount point", e))?;
    rustix::mount::mount_bind_recursive(proc_fd(&c.fd), &c.path)
        .map_err(|e| ("bind a kept path", e.into()))?;
    if c.writable {
        writable(&c.path).map_err(|e| ("make a kept path writable", e))?;
    }
    Ok(MountEntry {
        path: c.path.clone(),
        view: if c.writable {
            "host, kept visible, writable".into()
        } else {
            "host, kept visible, read-only".into()
        },
    })
}

/// Where `/etc/resolv.conf` really is (it is often a link into `/run`).
fn resolver_target() -> Option<PathBuf> {
    let etc = Path::new("/etc/resolv.conf");
    if let Ok(p) = fs::canonicalize(etc) {
        return Some(p);
    }
    // A dangling link (e.g. into a /run that has no resolver yet).
    let link = fs::read_link(etc).ok()?;
    Some(if link.is_absolute() {
        link
    } else {
        Path::new("/etc").join(link)
    })
}

fn install_resolv_conf(target: Option<PathBuf>, private: &[PathBuf]) -> io::Result<String> {
    let Some(target) = target else {
        return Ok(
            "no /etc/resolv.conf: the C library falls back to 127.0.0.1, where \
                   nothing listens"
                .into(),
        );
    };
    // Our file lives on a private tmpfs: /run when it is masked, else /dev/shm.
    let home = private
        .iter()
        .find(|d| d.as_path() == Path::new("/run") && d.is_dir())
        .map(|d| d.join("clawguard-lockdown"))
        .unwrap_or_else(|| PathBuf::from("/dev/shm/.clawguard-lockdown"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&home)?;
    let ours = home.join("resolv.conf");
    fs::write(&ours, RESOLV_CONF)?;
    fs::set_permissions(&ours, fs::Permissions::from_mode(0o444))?;
    if private.iter().any(|d| under(&target, d)) {
        // The link points into a masked directory: put the file where it points.
        mount_point(&target, false)?;
    } else if !target.exists() {
        return Ok("missing: the C library falls back to 127.0.0.1, where nothing listens".into());
    }
    rustix::mount::mount_bind(&ours, &target)?;
    read_only(&target)?;
    Ok("nameserver 127.0.0.1 (the lockdown's own loopback: nothing listens)".into())
}

/// Mount the lockdown's own `/proc` (must run as the PID-namespace init, after
/// [`build`]) and cover any other proc mount, which would show the host's processes.
pub fn mount_proc() -> Result<MountEntry, (&'static str, io::Error)> {
    let others: Vec<PathBuf> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mount_point = unescape(pre.split_whitespace().nth(4)?);
            (fstype == "proc" && mount_point != Path::new("/proc")).then_some(mount_point)
        })
        .collect();
    rustix::mount::mount(
        "proc",
        "/proc",
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .map_err(|e| ("mount the lockdown's /proc", e.into()))?;
    let mut made_read_only = Vec::new();
    for part in PROC_READ_ONLY {
        let p = Path::new("/proc").join(part);
        if p.exists() {
            rustix::mount::mount_bind(&p, &p).map_err(|e| ("bind a /proc part", e.into()))?;
            read_only(&p).map_err(|e| ("make a /proc part read-only", e))?;
            made_read_only.push(*part);
        }
    }
    for p in &others {
        if p.is_dir() {
            tmpfs(p, "0555").map_err(|e| ("cover another proc mount", e))?;
            let _ = read_only(p);
        }
    }
    Ok(MountEntry {
        path: "/proc".into(),
        view: format!(
            "the lockdown's own (its PID namespace); {} read-only{}",
            made_read_only.join(" "),
            if others.is_empty() {
                String::new()
            } else {
                format!("; {} other proc mount(s) covered", others.len())
            }
        ),
    })
}

/// The writable mounts of the calling process's view (`rw` in `/proc/self/mountinfo`),
/// for Landlock's write rule. Read after the view is complete, so it is exactly what
/// [`build`] and [`mount_proc`] left writable.
pub fn writable_mounts() -> io::Result<Vec<PathBuf>> {
    Ok(fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let mount_point = fields.nth(4)?;
            let options = fields.next()?;
            options
                .split(',')
                .any(|o| o == "rw")
                .then(|| unescape(mount_point))
        })
        .collect())
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(std::ffi::OsStr::from_bytes(&out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_decode() {
        assert_eq!(unescape(r"/a\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape(r"/x\134y"), PathBuf::from(r"/x\y"));
    }
}
