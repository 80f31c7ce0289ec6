//! The lockdown side: `clawguard __lockdown-init -- COMMAND…`, started by
//! `clawguard exec --lockdown` with the control channel on descriptor 3.
//!
//! It runs as a fresh, single-threaded process (so it may allocate, fork and use crates
//! freely, unlike code between `fork` and `exec` in a multi-threaded ClawGuard) and
//! becomes three processes:
//!
//! 1. **outer** (in ClawGuard's PID namespace): creates the user namespace when
//!    ClawGuard is not root, then the network, mount, PID, IPC, UTS and cgroup
//!    namespaces; brings `lo` up, binds the proxy listener and hands it to ClawGuard;
//!    builds the mount view; then waits for (2), passing signals on.
//! 2. **init** (PID 1 of the new PID namespace): mounts the lockdown's `/proc`, then
//!    reaps every process in the namespace and passes signals to (3). When the command
//!    ends, init ends, and the kernel kills whatever the command left behind: a
//!    double-forked daemon cannot outlive the lockdown.
//! 3. **command**: drops every capability, sets `no_new_privs`, applies Landlock (writes
//!    only beneath the view's writable mounts, where the kernel has it) and the seccomp
//!    filters, reports the measured profile and the notification descriptor,
//!    waits for ClawGuard's go, and `exec`s the command.
//!
//! Any failure before the command starts is reported to ClawGuard (`Failed`), which then
//! refuses to run the command: the lockdown fails closed.

use super::channel::{self, ToClawGuard, ToLockdown};
use super::profile::{self, Namespace, Network, Profile, Seccomp};
use super::{landlock, mounts, netns, privileges, seccomp, Plan, LOCKDOWN_CONTROL_FD};
use rustix::thread::UnshareFlags;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

/// Exit status of a lockdown that failed before the command ran.
pub const SETUP_FAILED: i32 = 125;

/// A failed set-up step: what, why, and what the kernel must provide.
struct Failure {
    stage: String,
    error: String,
    needs: &'static str,
}

trait Stage<T> {
    fn stage(self, stage: &str, needs: &'static str) -> Result<T, Failure>;
}

impl<T, E: std::fmt::Display> Stage<T> for Result<T, E> {
    fn stage(self, stage: &str, needs: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            stage: stage.to_string(),
            error: e.to_string(),
            needs,
        })
    }
}

const NEEDS_USERNS: &str = "unprivileged user namespaces (kernel.unprivileged_userns_clone=1, \
                            user.max_user_namespaces > 0, no AppArmor userns restriction), \
                            or running ClawGuard as root with --allow-root";
const NEEDS_NS: &str = "network, mount, PID, IPC, UTS and cgroup namespaces";
const NEEDS_MOUNTS: &str = "tmpfs, devpts and bind mounts in a new mount namespace and \
                            mount_setattr (Linux 5.12)";
const NEEDS_CREDS: &str = "capability and securebits prctls";
const NEEDS_SECCOMP: &str = "seccomp filters with user notification (Linux 5.0)";

/// Entry point of `clawguard __lockdown-init`; returns the exit status.
pub fn init_main(command: Vec<OsString>) -> i32 {
    // SAFETY: ClawGuard put the control channel on this descriptor; we own it now.
    let ctl = unsafe { OwnedFd::from_raw_fd(LOCKDOWN_CONTROL_FD) };
    let _ = rustix::io::fcntl_setfd(&ctl, rustix::io::FdFlags::CLOEXEC);
    close_inherited();
    die_with_parent();
    let plan = match channel::recv::<ToLockdown>(ctl.as_fd()) {
        Ok((ToLockdown::Plan(plan), _)) => *plan,
        Ok(_) | Err(_) => {
            eprintln!("clawguard __lockdown-init: started without a plan (this is internal)");
            return SETUP_FAILED;
        }
    };
    match outer(&ctl, &plan, command) {
        Ok(code) => code,
        Err(f) => report(&ctl, f),
    }
}

/// Close every descriptor but the standard ones and the control channel: whatever
/// started ClawGuard may have left one open (a connected socket would be a way out).
/// `close_range(2)` (Linux 5.9); on older kernels the descriptors are closed one by one.
fn close_inherited() {
    let first = LOCKDOWN_CONTROL_FD as libc::c_uint + 1;
    // SAFETY: closing descriptors this process does not use.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    if rc != 0 {
        let max = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1024)
            .min(1 << 20);
        for fd in first as u64..max {
            // SAFETY: as above.
            unsafe { libc::close(fd as libc::c_int) };
        }
    }
}

/// Be killed when the parent ends (ClawGuard spawns the outer process from its main
/// thread, which lives as long as it does). Credential changes clear this, so it is set
/// again after each.
fn die_with_parent() {
    let parent = rustix::process::getppid();
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid() != parent {
        std::process::exit(SETUP_FAILED); // the parent ended before we asked
    }
}

fn report(ctl: &OwnedFd, f: Failure) -> i32 {
    let _ = channel::send_on(
        ctl,
        &ToClawGuard::Failed {
            stage: f.stage,
            error: f.error,
            needs: f.needs.to_string(),
        },
        &[],
    );
    SETUP_FAILED
}

fn write_proc(path: &str, data: &str) -> io::Result<()> {
    std::fs::write(path, data)
}

/// Signals passed on to the command (terminal-generated ones reach it directly).
const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in FORWARDED {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: this process is single-threaded (a fresh exec that started no threads).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

fn outer(ctl: &OwnedFd, plan: &Plan, command: Vec<OsString>) -> Result<i32, Failure> {
    if plan.user_namespace {
        let (uid, gid) = (rustix::process::getuid(), rustix::process::getgid());
        // SAFETY: no FILES flag; this process is single-threaded.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }
            .stage("create a user namespace", NEEDS_USERNS)?;
        write_proc("/proc/self/setgroups", "deny").stage("write setgroups", NEEDS_USERNS)?;
        write_proc("/proc/self/uid_map", &format!("{0} {0} 1", uid.as_raw()))
            .stage("write uid_map", NEEDS_USERNS)?;
        write_proc("/proc/self/gid_map", &format!("{0} {0} 1", gid.as_raw()))
            .stage("write gid_map", NEEDS_USERNS)?;
    }
    // A credential change (the new user namespace) cleared the parent-death signal.
    die_with_parent();
    // SAFETY: no FILES flag; this process is single-threaded.
    unsafe {
        rustix::thread::unshare_unsafe(
            UnshareFlags::NEWNET
                | UnshareFlags::NEWNS
                | UnshareFlags::NEWPID
                | UnshareFlags::NEWIPC
                | UnshareFlags::NEWUTS
                | UnshareFlags::NEWCGROUP,
        )
    }
    .stage("create namespaces", NEEDS_NS)?;
    netns::loopback_up().stage("bring up the loopback", NEEDS_NS)?;
    let listener = netns::listen(plan.port).stage("bind the proxy listener", NEEDS_NS)?;
    let built = mounts::build(&plan.view, &plan.cwd).map_err(|(stage, e)| Failure {
        stage: stage.to_string(),
        error: e.to_string(),
        needs: NEEDS_MOUNTS,
    })?;
    channel::send_on(
        ctl,
        &ToClawGuard::Listener {
            private_devs: built.private_devs.clone(),
        },
        &[listener.as_fd()],
    )
    .stage("hand over the listener", NEEDS_NS)?;
    drop(listener);

    let set = signal_set();
    // SAFETY: blocking signals of this single-threaded process; inherited by children,
    // and the command stage unblocks them before exec.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let pid = fork().stage("start the namespace's init", NEEDS_NS)?;
    if pid == 0 {
        std::process::exit(init(ctl, plan, command, built));
    }
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    Ok(wait_passing_signals(pid, &set, false))
}

/// PID 1 of the lockdown.
fn init(ctl: &OwnedFd, plan: &Plan, command: Vec<OsString>, built: mounts::Built) -> i32 {
    die_with_parent();
    let proc_entry = match mounts::mount_proc() {
        Ok(e) => e,
        Err((stage, e)) => {
            return report(
                ctl,
                Failure {
                    stage: stage.into(),
                    error: e.to_string(),
                    needs: NEEDS_MOUNTS,
                },
            )
        }
    };
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let set = signal_set();
    let pid = match fork() {
        Ok(p) => p,
        Err(e) => {
            return report(
                ctl,
                Failure {
                    stage: "start the command".into(),
                    error: e.to_string(),
                    needs: NEEDS_NS,
                },
            )
        }
    };
    if pid == 0 {
        let mut entries = built.entries;
        entries.push(proc_entry);
        let code = match command_stage(ctl, plan, command, entries, built.resolver) {
            Ok(never) => match never {},
            Err(f) => report(ctl, f),
        };
        std::process::exit(code);
    }
    wait_passing_signals(pid, &set, true)
}

enum Never {}

/// Lock the command down, report, wait for go, exec. Returns only on failure.
fn command_stage(
    ctl: &OwnedFd,
    plan: &Plan,
    command: Vec<OsString>,
    mounts: Vec<profile::MountEntry>,
    resolver: String,
) -> Result<Never, Failure> {
    privileges::drop_all().stage("drop capabilities", NEEDS_CREDS)?;
    die_with_parent();
    let writable = mounts::writable_mounts().stage("read /proc/self/mountinfo", NEEDS_MOUNTS)?;
    let landlock = landlock::restrict(&plan.allow_sockets, &writable);
    let notify = seccomp::install().stage("install seccomp filters", NEEDS_SECCOMP)?;

    let (identity, capabilities, no_new_privs, mode, filters) =
        profile::measure_credentials(plan.user_namespace)
            .stage("read /proc/self/status", NEEDS_NS)?;
    let (denied, socket_families) = seccomp::describe();
    let profile = Profile {
        namespaces: profile::NAMESPACE_KINDS
            .iter()
            .map(|k| Namespace {
                kind: k.to_string(),
                id: profile::namespace_id(k),
                new: false, // ClawGuard compares with its own
            })
            .collect(),
        identity,
        capabilities,
        no_new_privs,
        securebits: privileges::securebits(),
        seccomp: Seccomp {
            mode,
            filters,
            denied,
            socket_families,
            connect: "every connect(2) is performed by ClawGuard on the command's behalf; \
                      pathname UNIX sockets outside the lockdown are refused (EACCES) \
                      unless allowed with --allow-socket"
                .into(),
        },
        landlock,
        mounts,
        network: Network {
            interfaces: netns::describe(),
            proxy: format!("127.0.0.1:{}", plan.port),
            resolver,
        },
        allowed_sockets: plan.allow_sockets.clone(),
    };
    channel::send_on(
        ctl,
        &ToClawGuard::Ready(Box::new(profile)),
        &[notify.as_fd()],
    )
    .stage("report the profile", NEEDS_NS)?;
    drop(notify);
    match channel::recv::<ToLockdown>(ctl.as_fd()) {
        Ok((ToLockdown::Go, _)) => {}
        _ => std::process::exit(SETUP_FAILED), // ClawGuard refused or went away
    }
    // SAFETY: unblocking this process's signals before exec.
    unsafe {
        let set = signal_set();
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    let (program, args) = command.split_first().expect("clap requires a command");
    let err = std::process::Command::new(program).args(args).exec();
    eprintln!(
        "clawguard: cannot run `{}` in the lockdown: {err}",
        program.to_string_lossy()
    );
    std::process::exit(if err.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    });
}

/// Wait for `child`, passing on signals that a process (not the terminal) sent us.
/// `reap_all`: as PID 1, also reap orphans. Returns the child's exit code, or 128 +
/// the signal that killed it.
fn wait_passing_signals(child: libc::pid_t, set: &libc::sigset_t, reap_all: bool) -> i32 {
    loop {
        // SAFETY: siginfo_t is plain data the kernel fills.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let sig = unsafe { libc::sigwaitinfo(set, &mut info) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig != libc::SIGCHLD {
            // SI_USER, SI_QUEUE, SI_TKILL are ≤ 0; the terminal's are SI_KERNEL.
            if info.si_code <= 0 {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(child, sig) };
            }
            continue;
        }
        loop {
            let mut status = 0;
            let target = if reap_all { -1 } else { child };
            // SAFETY: waitpid on our children.
            let pid = unsafe { libc::waitpid(target, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                if libc::WIFEXITED(status) {
                    return libc::WEXITSTATUS(status);
                }
                if libc::WIFSIGNALED(status) {
                    return 128 + libc::WTERMSIG(status);
                }
            }
        }
    }
}
