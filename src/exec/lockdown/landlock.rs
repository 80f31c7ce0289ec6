//! Landlock, a second layer where the kernel has it (best effort: the network namespace,
//! the mount view and `connect` mediation hold without it; the profile says what was
//! enforced):
//!
//! - ABI 1 (Linux 5.13): files may be opened for writing only beneath the mounts of the
//!   view that are writable (the working directory, `$HOME`, the private `/tmp`, `/run`,
//!   `/dev/shm`, the few devices, the lockdown's `/proc`). A read-only mount stops
//!   writes to regular files but not to FIFOs and device nodes: a named pipe a host
//!   process reads (a relay with network access) would otherwise be a way out;
//! - ABI 6 (Linux 6.12): no connecting to abstract UNIX sockets and no signals to
//!   processes created outside the lockdown (abstract sockets are already confined by
//!   the network namespace, other processes by the PID namespace);
//! - ABI 9 (Linux 7.1): no resolving pathname UNIX sockets made outside the lockdown,
//!   except the `--allow-socket` ones (the mediated `connect` is ClawGuard's and is
//!   not affected; this catches any other path to such a socket).

use super::profile::Landlock;
use ::landlock::{
    path_beneath_rules, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use std::path::PathBuf;

/// The kernel's Landlock ABI version (`landlock_create_ruleset(NULL, 0, VERSION)`), or
/// `None` without Landlock. The crate deliberately hides this number; the profile
/// reports it.
pub fn kernel_abi() -> Option<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the documented version query: null attribute, size 0.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as i32)
}

/// The regular files the command's standard descriptors write to (output redirected to
/// a log file): shells reopen them as `/dev/stdout` and `/dev/stderr`, which Landlock
/// would otherwise refuse when the file is outside the writable mounts. Only
/// descriptors open for writing, and only regular files (a pipe or socket cannot carry
/// a rule, and a terminal is under `/dev/pts` already).
fn written_standard_files() -> Vec<PathFd> {
    (0..=2)
        .filter(|fd| {
            // SAFETY: fcntl and fstat on the standard descriptors, which we do not close.
            let flags = unsafe { libc::fcntl(*fd, libc::F_GETFL) };
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            flags >= 0
                && flags & libc::O_ACCMODE != libc::O_RDONLY
                && unsafe { libc::fstat(*fd, &mut st) } == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFREG
        })
        .filter_map(|fd| PathFd::new(format!("/proc/self/fd/{fd}")).ok())
        .collect()
}

/// Restrict the calling thread (single-threaded: the process) and its future children.
/// `writable`: the view's writable mount points (see `mounts::writable_mounts`); a path
/// that cannot be opened is left out (its files stay unwritable). Needs `no_new_privs`
/// already set.
pub fn restrict(allow_sockets: &[PathBuf], writable: &[PathBuf]) -> Landlock {
    let abi = kernel_abi();
    let result = (|| -> Result<RulesetStatus, ::landlock::RulesetError> {
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::WriteFile | AccessFs::ResolveUnix)?
            .scope(Scope::AbstractUnixSocket | Scope::Signal)?
            .create()?
            .add_rules(path_beneath_rules(allow_sockets, AccessFs::ResolveUnix))?;
        for p in writable {
            if let Ok(fd) = PathFd::new(p) {
                ruleset = ruleset.add_rule(PathBeneath::new(fd, AccessFs::WriteFile))?;
            }
        }
        for fd in written_standard_files() {
            ruleset = ruleset.add_rule(PathBeneath::new(fd, AccessFs::WriteFile))?;
        }
        Ok(ruleset.restrict_self()?.ruleset)
    })();
    let level = abi.unwrap_or(0);
    let mut enforced = Vec::new();
    if level >= 1 {
        enforced.push(
            "write-file only beneath writable mounts (no host FIFOs or device nodes)".to_string(),
        );
    }
    if level >= 6 {
        enforced.push("abstract-unix-socket scope".to_string());
        enforced.push("signal scope".to_string());
    }
    if level >= 9 {
        enforced.push("resolve-unix (pathname sockets)".to_string());
    }
    let status = match result {
        Ok(RulesetStatus::FullyEnforced) => "fully enforced".to_string(),
        Ok(RulesetStatus::PartiallyEnforced) => "partially enforced (older kernel)".to_string(),
        Ok(RulesetStatus::NotEnforced) => {
            enforced.clear();
            "not enforced: the kernel has no Landlock (Linux < 5.13, or disabled)".to_string()
        }
        Err(e) => {
            enforced.clear();
            format!("not enforced: {e}")
        }
    };
    Landlock {
        abi,
        enforced,
        status,
    }
}
