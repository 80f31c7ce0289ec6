//! The command's seccomp filters.
//!
//! 1. Deny lists built with `seccompiler`: system calls that would let the command leave
//!    or widen its namespaces, reach other processes, run code in the host's context
//!    (kernel key upcalls), bypass the filters (io_uring performs `connect` without a
//!    system call), create sockets of families that are not network-namespaced (vsock
//!    reaches the hypervisor host, Bluetooth a radio), or inject input into the terminal.
//! 2. One hand-written filter that hands every `connect(2)` to ClawGuard through a
//!    seccomp user notification (see `supervisor`): the kernel cannot look inside the
//!    address a `connect` passes, and pathname UNIX sockets ignore network namespaces.
//!    `seccompiler` has no user-notification action, hence the eight instructions below.
//!    The same filter kills the process for a foreign architecture or an x32 call, whose
//!    numbers the deny lists would not match.

use super::profile::DeniedGroup;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("this architecture ({0}) has no lockdown filter")]
    Arch(&'static str),
    #[error("building a seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("installing a seccomp filter: {0}")]
    Install(#[from] seccompiler::Error),
    #[error(
        "installing the connect notification filter (seccomp user notification, Linux 5.0): {0}"
    )]
    Notify(io::Error),
}

/// System calls denied outright, by reason.
struct Group {
    errno: i32,
    errno_name: &'static str,
    why: &'static str,
    calls: &'static [(&'static str, i64)],
}

const GROUPS: &[Group] = &[
    Group {
        errno: libc::EPERM,
        errno_name: "EPERM",
        why: "namespaces and mounts",
        calls: &[
            ("setns", libc::SYS_setns),
            ("unshare", libc::SYS_unshare),
            ("mount", libc::SYS_mount),
            ("umount2", libc::SYS_umount2),
            ("pivot_root", libc::SYS_pivot_root),
            ("chroot", libc::SYS_chroot),
            ("open_tree", libc::SYS_open_tree),
            ("move_mount", libc::SYS_move_mount),
            ("fsopen", libc::SYS_fsopen),
            ("fsconfig", libc::SYS_fsconfig),
            ("fsmount", libc::SYS_fsmount),
            ("fspick", libc::SYS_fspick),
            ("mount_setattr", libc::SYS_mount_setattr),
        ],
    },
    Group {
        errno: libc::EPERM,
        errno_name: "EPERM",
        why: "other processes' memory and descriptors",
        calls: &[
            ("ptrace", libc::SYS_ptrace),
            ("process_vm_readv", libc::SYS_process_vm_readv),
            ("process_vm_writev", libc::SYS_process_vm_writev),
            ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ],
    },
    Group {
        errno: libc::EPERM,
        errno_name: "EPERM",
        why: "kernel keyrings (request_key upcalls run helpers, e.g. DNS lookups, on the host)",
        calls: &[
            ("add_key", libc::SYS_add_key),
            ("request_key", libc::SYS_request_key),
            ("keyctl", libc::SYS_keyctl),
        ],
    },
    Group {
        errno: libc::EPERM,
        errno_name: "EPERM",
        why: "kernel extension and escape helpers",
        calls: &[
            ("bpf", libc::SYS_bpf),
            ("perf_event_open", libc::SYS_perf_event_open),
            ("userfaultfd", libc::SYS_userfaultfd),
            ("open_by_handle_at", libc::SYS_open_by_handle_at),
            ("init_module", libc::SYS_init_module),
            ("finit_module", libc::SYS_finit_module),
            ("delete_module", libc::SYS_delete_module),
            ("kexec_load", libc::SYS_kexec_load),
            ("kexec_file_load", libc::SYS_kexec_file_load),
        ],
    },
    Group {
        errno: libc::ENOSYS,
        errno_name: "ENOSYS",
        why: "clone3 (its flags are out of a filter's sight; the C library falls back to \
              clone) and io_uring (it connects and sends without system calls)",
        calls: &[
            ("clone3", libc::SYS_clone3),
            ("io_uring_setup", libc::SYS_io_uring_setup),
            ("io_uring_enter", libc::SYS_io_uring_enter),
            ("io_uring_register", libc::SYS_io_uring_register),
        ],
    },
];

/// Socket families the command may create; all others fail with `EAFNOSUPPORT`.
const FAMILIES: &[(&str, i32)] = &[
    ("unix (stream, seqpacket)", libc::AF_UNIX),
    ("inet", libc::AF_INET),
    ("inet6", libc::AF_INET6),
    ("netlink", libc::AF_NETLINK),
];

/// Namespace flags refused in `clone(2)` (`CLONE_NEWTIME` shares its bit with the exit
/// signal there and is only accepted by `clone3`/`unshare`, both denied).
const CLONE_NAMESPACES: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// Terminal ioctls that push input into the terminal (run by the user's shell after
/// the command ends) or drive the console.
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

/// `SOCK_TYPE_MASK`: the type bits of `socket(2)`'s second argument.
const SOCK_TYPE_MASK: u64 = 0xf;

fn arch() -> Result<TargetArch, SeccompError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH))
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Cond {
    Cond::new(arg, len, op, value).expect("argument index below 6")
}

fn rule(conds: Vec<Cond>) -> SeccompRule {
    SeccompRule::new(conds).expect("rules have conditions")
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, SeccompError> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch()?,
    )?;
    Ok(filter.try_into()?)
}

/// The deny filters, one per errno.
fn deny_filters() -> Result<Vec<BpfProgram>, SeccompError> {
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    for g in GROUPS {
        let rules = by_errno.entry(g.errno).or_default();
        for (_, nr) in g.calls {
            rules.insert(*nr, vec![]);
        }
    }
    // clone(2) with any namespace flag.
    by_errno.entry(libc::EPERM).or_default().insert(
        libc::SYS_clone,
        CLONE_NAMESPACES
            .iter()
            .map(|f| rule(vec![cond(0, Len::Qword, Op::MaskedEq(*f), *f)]))
            .collect(),
    );
    by_errno.entry(libc::EPERM).or_default().insert(
        libc::SYS_ioctl,
        [TIOCSTI, TIOCLINUX]
            .iter()
            .map(|req| rule(vec![cond(1, Len::Dword, Op::Eq, *req)]))
            .collect(),
    );
    // Socket families outside the allow list.
    let not_allowed: Vec<Cond> = FAMILIES
        .iter()
        .map(|(_, f)| cond(0, Len::Dword, Op::Ne, *f as u64))
        .collect();
    let families = by_errno.entry(libc::EAFNOSUPPORT).or_default();
    families.insert(libc::SYS_socket, vec![rule(not_allowed)]);
    families.insert(
        libc::SYS_socketpair,
        vec![rule(vec![cond(
            0,
            Len::Dword,
            Op::Ne,
            libc::AF_UNIX as u64,
        )])],
    );
    // UNIX sockets other than stream and seqpacket: datagrams name their destination
    // per message (`sendto`/`sendmsg`), which `connect` mediation would not see. The
    // type is allow-listed, not the datagram type deny-listed: the kernel turns an
    // AF_UNIX SOCK_RAW socket into a datagram socket.
    let not_stream = || {
        (0..=SOCK_TYPE_MASK)
            .filter(|t| *t != libc::SOCK_STREAM as u64 && *t != libc::SOCK_SEQPACKET as u64)
            .map(|t| {
                rule(vec![
                    cond(0, Len::Dword, Op::Eq, libc::AF_UNIX as u64),
                    cond(1, Len::Dword, Op::MaskedEq(SOCK_TYPE_MASK), t),
                ])
            })
            .collect::<Vec<_>>()
    };
    let unix = by_errno.entry(libc::EACCES).or_default();
    unix.insert(libc::SYS_socket, not_stream());
    unix.insert(libc::SYS_socketpair, not_stream());
    by_errno
        .into_iter()
        .map(|(errno, rules)| compile(rules, errno))
        .collect()
}

/// What the filters deny, for the profile.
pub fn describe() -> (Vec<DeniedGroup>, Vec<String>) {
    let mut groups: Vec<DeniedGroup> = GROUPS
        .iter()
        .map(|g| DeniedGroup {
            errno: g.errno_name.into(),
            why: g.why.into(),
            calls: g.calls.iter().map(|(n, _)| n.to_string()).collect(),
        })
        .collect();
    groups.push(DeniedGroup {
        errno: "EPERM".into(),
        why: "new namespaces in clone(2); terminal input injection".into(),
        calls: vec![
            "clone(CLONE_NEW*)".into(),
            "ioctl(TIOCSTI)".into(),
            "ioctl(TIOCLINUX)".into(),
        ],
    });
    groups.push(DeniedGroup {
        errno: "EAFNOSUPPORT".into(),
        why: "socket families outside the network namespace's reach (vsock, bluetooth, \
              packet, …)"
            .into(),
        calls: vec![
            "socket(other families)".into(),
            "socketpair(other families)".into(),
        ],
    });
    groups.push(DeniedGroup {
        errno: "EACCES".into(),
        why: "UNIX sockets other than stream and seqpacket (datagrams name their \
              destination; AF_UNIX SOCK_RAW is a datagram socket)"
            .into(),
        calls: vec![
            "socket(AF_UNIX, not SOCK_STREAM/SOCK_SEQPACKET)".into(),
            "socketpair(AF_UNIX, not SOCK_STREAM/SOCK_SEQPACKET)".into(),
        ],
    });
    let families = FAMILIES.iter().map(|(n, _)| n.to_string()).collect();
    (groups, families)
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: u32 = 0;

/// x32 system calls on x86_64 carry this bit in their number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// `connect` → user notification; foreign architecture or x32 → kill; else allow.
fn notify_filter() -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Offsets in `struct seccomp_data`: nr at 0, arch at 4.
    let x32_limit = if cfg!(target_arch = "x86_64") {
        X32_SYSCALL_BIT
    } else {
        u32::MAX
    };
    vec![
        /* 0 */ stmt(LD_W_ABS, 4),
        /* 1 */ jump(JEQ, AUDIT_ARCH, 0, 5), // foreign arch → 7
        /* 2 */ stmt(LD_W_ABS, 0),
        /* 3 */ jump(JGE, x32_limit, 3, 0), // x32 → 7
        /* 4 */ jump(JEQ, libc::SYS_connect as u32, 0, 1),
        /* 5 */ stmt(RET, libc::SECCOMP_RET_USER_NOTIF),
        /* 6 */ stmt(RET, libc::SECCOMP_RET_ALLOW),
        /* 7 */ stmt(RET, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

/// Install every filter on the calling thread (single-threaded: the whole process;
/// `no_new_privs` must already be set) and return the notification descriptor.
pub fn install() -> Result<OwnedFd, SeccompError> {
    if AUDIT_ARCH == 0 {
        return Err(SeccompError::Arch(std::env::consts::ARCH));
    }
    for prog in deny_filters()? {
        seccompiler::apply_filter(&prog)?;
    }
    let prog = notify_filter();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    let install = |flags: libc::c_ulong| {
        // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies it.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            )
        }
    };
    // Once ClawGuard has taken a notification, only a fatal signal interrupts the
    // waiting `connect` (Linux 5.19); older kernels restart it, which is harmless.
    let mut fd = install(
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    );
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        fd = install(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
    }
    if fd < 0 {
        return Err(SeccompError::Notify(io::Error::last_os_error()));
    }
    // SAFETY: the kernel returned a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_for_this_architecture() {
        let progs = deny_filters().unwrap();
        assert_eq!(progs.len(), 4, "EPERM, EACCES, EAFNOSUPPORT, ENOSYS");
        assert!(progs.iter().all(|p| !p.is_empty() && p.len() < 4096));
        assert_eq!(notify_filter().len(), 8);
    }

    #[test]
    fn the_profile_names_every_denied_call() {
        let (groups, families) = describe();
        let all: Vec<&String> = groups.iter().flat_map(|g| &g.calls).collect();
        for name in [
            "setns",
            "unshare",
            "mount",
            "ptrace",
            "request_key",
            "io_uring_setup",
        ] {
            assert!(all.iter().any(|c| *c == name), "{name}");
        }
        assert!(families.iter().any(|f| f.starts_with("inet6")));
    }
}
