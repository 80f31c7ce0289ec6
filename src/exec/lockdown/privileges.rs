//! The command's credentials: every capability dropped (effective, permitted,
//! inheritable, ambient and the bounding set, so not even executing a root-owned or
//! file-capability binary brings one back), `no_new_privs` (setuid and setgid bits are
//! ignored), and the securebits locked so a uid-0 command does not regain capabilities
//! on `execve`.
//!
//! The `rustix` calls used here act on the calling thread only; the command stage is
//! single-threaded, so that is the whole process.

use rustix::thread::{CapabilitiesSecureBits, CapabilitySet, CapabilitySets};
use std::io;

/// Highest capability number we try to drop; the kernel answers `EINVAL` beyond its own
/// last one, which ends the loop.
const CAP_NUMBERS: u32 = 64;

/// Drop everything. `identity`: switch to this uid/gid first (ClawGuard root with
/// `--user`); `None` keeps the current one.
pub fn drop_all() -> io::Result<()> {
    rustix::thread::set_no_new_privs(true)?;
    for cap in 0..CAP_NUMBERS {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break; // past the kernel's last capability
            }
            return Err(e);
        }
    }
    rustix::thread::clear_ambient_capability_set()?;
    rustix::thread::set_capabilities_secure_bits(
        CapabilitiesSecureBits::NO_ROOT
            | CapabilitiesSecureBits::NO_ROOT_LOCKED
            | CapabilitiesSecureBits::NO_SETUID_FIXUP_LOCKED
            | CapabilitiesSecureBits::KEEP_CAPS_LOCKED
            | CapabilitiesSecureBits::NO_CAP_AMBIENT_RAISE
            | CapabilitiesSecureBits::NO_CAP_AMBIENT_RAISE_LOCKED,
    )?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )?;
    Ok(())
}

/// `PR_GET_SECUREBITS`, for the profile.
pub fn securebits() -> String {
    rustix::thread::capabilities_secure_bits()
        .map(|b| format!("{:#x}", b.bits()))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}
