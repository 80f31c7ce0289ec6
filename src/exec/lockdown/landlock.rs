//! Landlock, a second layer where the kernel has it (best effort: the network namespace,
//! the mount view and `connect` mediation hold without it):
//!
//! - ABI 6 (Linux 6.12): no connecting to abstract UNIX sockets and no signals to
//!   processes created outside the lockdown (abstract sockets are already confined by
//!   the network namespace, other processes by the PID namespace);
//! - ABI 9 (Linux 7.1): no resolving pathname UNIX sockets made outside the lockdown,
//!   except the `--allow-socket` ones (the mediated `connect` is ClawGuard's and is
//!   not affected; this catches any other path to such a socket).

use super::profile::Landlock;
use ::landlock::{
    path_beneath_rules, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
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

/// Restrict the calling thread (single-threaded: the process) and its future children.
/// Needs `no_new_privs` already set.
pub fn restrict(allow_sockets: &[PathBuf]) -> Landlock {
    let abi = kernel_abi();
    let result = (|| -> Result<RulesetStatus, ::landlock::RulesetError> {
        let status = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::ResolveUnix)?
            .scope(Scope::AbstractUnixSocket | Scope::Signal)?
            .create()?
            .add_rules(path_beneath_rules(allow_sockets, AccessFs::ResolveUnix))?
            .restrict_self()?;
        Ok(status.ruleset)
    })();
    let mut enforced = Vec::new();
    if abi.unwrap_or(0) >= 6 {
        enforced.push("abstract-unix-socket scope".to_string());
        enforced.push("signal scope".to_string());
    }
    if abi.unwrap_or(0) >= 9 {
        enforced.push("resolve-unix (pathname sockets)".to_string());
    }
    let status = match result {
        Ok(RulesetStatus::FullyEnforced) => "fully enforced".to_string(),
        Ok(RulesetStatus::PartiallyEnforced) => "partially enforced (older kernel)".to_string(),
        Ok(RulesetStatus::NotEnforced) => {
            enforced.clear();
            "not enforced: the kernel has no Landlock scopes (Linux < 6.12)".to_string()
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
