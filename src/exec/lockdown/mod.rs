//! `clawguard exec --lockdown`: run a command so that ClawGuard's listener is its only way
//! out.
//!
//! The lockdown side runs in a re-executed `clawguard __lockdown-init` ([`init_main`]);
//! this module is ClawGuard's side: it computes the [`Plan`], starts the lockdown,
//! receives the proxy listener and the `connect` notification descriptor over the
//! control [`channel`], checks the measured [`profile::Profile`] (fail closed: a profile
//! that shows a capability, a shared namespace or no seccomp filter is refused), runs the
//! [`supervisor`], and lets the command start.
//!
//! What each protection needs from the kernel, and what happens without it, is in the
//! README's lockdown section; in short every protection but Landlock is required, and a
//! missing one makes `--lockdown` refuse to run the command, naming the step that failed.

pub mod channel;
mod init;
mod landlock;
mod mounts;
mod netns;
mod privileges;
pub mod profile;
mod seccomp;
pub mod supervisor;

pub use init::init_main;

use channel::{ToClawGuard, ToLockdown};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use supervisor::{CommandIdentity, SocketPolicy, Supervisor};

/// Where the lockdown finds its control channel.
pub const LOCKDOWN_CONTROL_FD: i32 = 3;

/// The hidden subcommand that runs [`init_main`].
pub const INIT_SUBCOMMAND: &str = "__lockdown-init";

/// What the lockdown side is asked to set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Port of the proxy listener on the lockdown's loopback.
    pub port: u16,
    /// ClawGuard is not root: create a user namespace (mapping only its own ids).
    pub user_namespace: bool,
    /// The command's working directory.
    pub cwd: PathBuf,
    pub view: ViewPlan,
    /// `--allow-socket` paths (canonical).
    pub allow_sockets: Vec<PathBuf>,
}

/// The mount view (see `mounts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewPlan {
    /// Replaced by empty private tmpfs.
    pub private_dirs: Vec<PathBuf>,
    /// `$XDG_RUNTIME_DIR`, recreated empty inside a private directory.
    pub runtime_dir: Option<PathBuf>,
    /// Host paths that stay writable (working directory, `$HOME`).
    pub writable: Vec<PathBuf>,
    /// Host paths kept visible read-only where a private directory would hide them
    /// (ClawGuard's CA files, allowed sockets).
    pub read_only: Vec<PathBuf>,
    /// ClawGuard's own files the command must not read or change (CA directory with its
    /// private key, config, audit key and log): covered, directories by an empty
    /// read-only tmpfs, files by an empty device.
    pub hidden: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockdownError {
    #[error(
        "--lockdown: cannot {stage}: {error}. The lockdown needs {needs}; the command was \
         not started"
    )]
    Setup {
        stage: String,
        error: String,
        needs: String,
    },
    // `error`, not `source`: the message already says it; a source would repeat it.
    #[error("--lockdown: this kernel lacks {what}: {error}. The command was not started")]
    Kernel {
        what: &'static str,
        error: io::Error,
    },
    #[error("--allow-socket {path}: {error}")]
    AllowSocket { path: PathBuf, error: io::Error },
    #[error("--lockdown: refusing the measured profile: {0}. The command was not started")]
    Profile(String),
    #[error("--lockdown: the lockdown process ended during set-up: {0}")]
    Lost(io::Error),
    #[error("--lockdown: cannot start the lockdown process: {0}")]
    Spawn(io::Error),
    #[error("--lockdown: {0}")]
    Io(#[from] io::Error),
}

/// Options from the command line.
pub struct LockdownOptions {
    pub port: u16,
    /// `--allow-socket` paths as given.
    pub allow_sockets: Vec<PathBuf>,
    /// Files the command must still see (ClawGuard's CA certificate and bundle).
    pub keep: Vec<PathBuf>,
    /// ClawGuard's own files to hide from the command (see [`ViewPlan::hidden`]).
    pub hide: Vec<PathBuf>,
}

/// A lockdown whose command is ready to start.
pub struct Started {
    pub child: Child,
    pub listener: std::net::TcpListener,
    pub supervisor: Supervisor,
    pub profile: profile::Profile,
    ctl: OwnedFd,
}

impl Started {
    /// Let the command start (after the listener and supervisor are being served).
    pub fn go(&self) -> Result<(), LockdownError> {
        channel::send_on(&self.ctl, &ToLockdown::Go, &[]).map_err(LockdownError::Lost)
    }
}

/// Directories where local services put their sockets; replaced by private tmpfs.
const SOCKET_DIRS: &[&str] = &["/tmp", "/var/tmp", "/run", "/var/run"];

fn existing_dir(p: Option<OsString>) -> Option<PathBuf> {
    let p = PathBuf::from(p?);
    std::fs::canonicalize(p).ok().filter(|p| p.is_dir())
}

fn plan(opts: &LockdownOptions, allow_sockets: &[PathBuf]) -> io::Result<Plan> {
    let cwd = std::env::current_dir()?;
    let home = existing_dir(std::env::var_os("HOME"));
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let mut private_dirs: Vec<PathBuf> = SOCKET_DIRS.iter().map(PathBuf::from).collect();
    if let Some(rt) = existing_dir(runtime_dir.clone().map(OsString::from)) {
        if !private_dirs.iter().any(|d| rt.starts_with(d)) {
            private_dirs.push(rt);
        }
    }
    let mut writable = vec![std::fs::canonicalize(&cwd).unwrap_or(cwd.clone())];
    writable.extend(home);
    let mut read_only: Vec<PathBuf> = opts
        .keep
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    read_only.extend(allow_sockets.iter().cloned());
    let hidden = opts
        .hide
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    Ok(Plan {
        port: opts.port,
        user_namespace: !rustix::process::geteuid().is_root(),
        cwd,
        view: ViewPlan {
            private_dirs,
            runtime_dir,
            writable,
            read_only,
            hidden,
        },
        allow_sockets: allow_sockets.to_vec(),
    })
}

/// Check what the lockdown measured before letting the command start.
fn verify(profile: &mut profile::Profile, user_namespace: bool) -> Result<(), LockdownError> {
    for ns in &mut profile.namespaces {
        ns.new = !ns.id.is_empty() && ns.id != profile::namespace_id(&ns.kind);
    }
    let required: &[&str] = if user_namespace {
        profile::NAMESPACE_KINDS
    } else {
        &profile::NAMESPACE_KINDS[..profile::NAMESPACE_KINDS.len() - 1]
    };
    for kind in required {
        if !profile.namespaces.iter().any(|n| n.kind == *kind && n.new) {
            return Err(LockdownError::Profile(format!(
                "the {kind} namespace is not new"
            )));
        }
    }
    if !profile.capabilities.all_dropped() {
        return Err(LockdownError::Profile(format!(
            "capabilities remain: {:?}",
            profile.capabilities
        )));
    }
    if !profile.no_new_privs {
        return Err(LockdownError::Profile("no_new_privs is not set".into()));
    }
    if profile.seccomp.mode != 2 || profile.seccomp.filters < 2 {
        return Err(LockdownError::Profile(format!(
            "seccomp mode {} with {} filters",
            profile.seccomp.mode, profile.seccomp.filters
        )));
    }
    Ok(())
}

/// Start `program args…` (with `env` added) in a lockdown. The command does not run
/// until [`Started::go`].
///
/// Must be called from the thread that outlives the command (ClawGuard's main thread):
/// the lockdown is killed when the thread that spawned it ends.
pub fn start(
    command: &[OsString],
    env: &[(String, String)],
    opts: &LockdownOptions,
) -> Result<Started, LockdownError> {
    supervisor::preflight().map_err(|(what, error)| LockdownError::Kernel { what, error })?;
    let mut allowed = Vec::new();
    let mut allow_paths = Vec::new();
    for p in &opts.allow_sockets {
        let canon = std::fs::canonicalize(p).map_err(|error| LockdownError::AllowSocket {
            path: p.clone(),
            error,
        })?;
        allowed.push(supervisor::socket_identity(&canon).map_err(|error| {
            LockdownError::AllowSocket {
                path: p.clone(),
                error,
            }
        })?);
        allow_paths.push(canon);
    }
    let plan = plan(opts, &allow_paths)?;
    let (ours, theirs) = channel::pair()?;
    let theirs_raw = theirs.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(INIT_SUBCOMMAND)
        .arg("--")
        .args(command)
        .envs(env.iter().cloned());
    // SAFETY: only dup2/fcntl (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if theirs_raw == LOCKDOWN_CONTROL_FD {
                let flags = libc::fcntl(theirs_raw, libc::F_GETFD);
                if flags < 0
                    || libc::fcntl(theirs_raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(theirs_raw, LOCKDOWN_CONTROL_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(LockdownError::Spawn)?;
    drop(theirs);
    let result = handshake(&ours, &plan, allowed);
    match result {
        Ok((listener, supervisor, profile)) => {
            // ClawGuard itself: not ptrace-able, its memory not readable, even by a
            // process of the same user outside the lockdown.
            let _ = rustix::process::set_dumpable_behavior(
                rustix::process::DumpableBehavior::NotDumpable,
            );
            Ok(Started {
                child,
                listener,
                supervisor,
                profile,
                ctl: ours,
            })
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

fn failed(stage: String, error: String, needs: String) -> LockdownError {
    LockdownError::Setup {
        stage,
        error,
        needs,
    }
}

fn handshake(
    ctl: &OwnedFd,
    plan: &Plan,
    allowed: Vec<(u64, u64)>,
) -> Result<(std::net::TcpListener, Supervisor, profile::Profile), LockdownError> {
    channel::send_on(ctl, &ToLockdown::Plan(Box::new(plan.clone())), &[])
        .map_err(LockdownError::Lost)?;
    let (msg, mut fds) = channel::recv::<ToClawGuard>(ctl.as_fd()).map_err(LockdownError::Lost)?;
    let private_devs = match msg {
        ToClawGuard::Listener { private_devs } if fds.len() == 1 => private_devs,
        ToClawGuard::Failed {
            stage,
            error,
            needs,
        } => return Err(failed(stage, error, needs)),
        other => {
            return Err(LockdownError::Lost(io::Error::other(format!(
                "unexpected message {other:?}"
            ))))
        }
    };
    let listener = std::net::TcpListener::from(fds.remove(0));
    let (msg, mut fds) = channel::recv::<ToClawGuard>(ctl.as_fd()).map_err(LockdownError::Lost)?;
    let mut profile = match msg {
        ToClawGuard::Ready(p) if fds.len() == 1 => *p,
        ToClawGuard::Failed {
            stage,
            error,
            needs,
        } => return Err(failed(stage, error, needs)),
        other => {
            return Err(LockdownError::Lost(io::Error::other(format!(
                "unexpected message {other:?}"
            ))))
        }
    };
    verify(&mut profile, plan.user_namespace)?;
    let identity = (!plan.user_namespace).then(|| CommandIdentity {
        uid: [
            profile.identity.uid[0],
            profile.identity.uid[1],
            profile.identity.uid[2],
        ],
        gid: [
            profile.identity.gid[0],
            profile.identity.gid[1],
            profile.identity.gid[2],
        ],
        groups: profile.identity.groups.clone(),
    });
    let policy = SocketPolicy {
        allowed,
        private_devs,
        identity,
    };
    let supervisor = Supervisor::start(fds.remove(0), policy)?;
    Ok((listener, supervisor, profile))
}
