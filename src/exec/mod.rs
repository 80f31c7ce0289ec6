//! `clawguard exec`: run a command wired to ClawGuard.
//!
//! Without `--lockdown` the command gets proxy and CA environment variables. With
//! `--lockdown` (see [`lockdown`]) it also runs where ClawGuard's listener is its only way
//! out: its own network, mount, PID, IPC, UTS and cgroup namespaces (and a user
//! namespace when ClawGuard is not root), no capabilities, `no_new_privs`, seccomp
//! filters, every `connect` mediated, a private mount view. ClawGuard serves the
//! listener from the host namespace and makes the upstream connections there.
//!
//! Like `clawguard run`, `exec` refuses to run as root unless `--allow-root` (config
//! `allow_root`) is given; a root command under `--lockdown` still has no capabilities.

pub mod lockdown;

use crate::config::Config;
use crate::proxy::{self, ProxyError, ProxyState};
use crate::tls::{CertificateAuthority, TlsError};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Port of the proxy listener inside a `--lockdown` namespace (nothing else is there).
pub const LOCKDOWN_PORT: u16 = 8383;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Lockdown(#[from] lockdown::LockdownError),
    #[error(
        "refusing to run as root: the command would run with every privilege (pass \
         --allow-root or set allow_root = true to override; under --lockdown a root \
         command still has no capabilities)"
    )]
    Root,
    #[error("--proxy {0}: expected http://HOST:PORT")]
    ProxyUrl(String),
    #[error("CA certificate {0} not found: pass the --ca-dir of the running ClawGuard")]
    NoCa(std::path::PathBuf),
    #[error("--allow-socket and --print-profile need --lockdown")]
    LockdownOnly,
    #[error("cannot start `{command}`: {error}")]
    Spawn { command: String, error: io::Error },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How `--print-profile` shows what a lockdown applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFormat {
    Text,
    Json,
}

/// What `clawguard exec` was asked to do.
pub struct ExecOptions {
    pub lockdown: bool,
    /// A running ClawGuard to use instead of an embedded one.
    pub proxy: Option<String>,
    pub no_proxy: String,
    /// Pathname UNIX sockets a locked-down command may connect to.
    pub allow_sockets: Vec<PathBuf>,
    /// Print the applied lockdown profile on standard output before the command runs.
    pub print_profile: Option<ProfileFormat>,
    /// The config file ClawGuard was started with (hidden from a locked-down command).
    pub config_file: Option<PathBuf>,
    /// Program and arguments.
    pub command: Vec<OsString>,
}

/// Run the command wired to ClawGuard; returns the exit code to exit with.
pub async fn run(cfg: Config, opts: ExecOptions) -> Result<i32, ExecError> {
    if rustix::process::geteuid().is_root() && !cfg.allow_root {
        return Err(ExecError::Root);
    }
    if !opts.lockdown && (!opts.allow_sockets.is_empty() || opts.print_profile.is_some()) {
        return Err(ExecError::LockdownOnly);
    }
    let (program, args) = opts.command.split_first().expect("clap requires a command");
    // ClawGuard's own files, hidden from a locked-down command (which may run as the
    // same user): the CA directory with its private key, config, audit key and log.
    let hide: Vec<PathBuf> = [Some(cfg.ca_dir())]
        .into_iter()
        .chain([
            opts.config_file.clone(),
            cfg.audit_key.clone(),
            cfg.audit_log.clone(),
        ])
        .flatten()
        .collect();

    // Where the command finds the proxy, and what serves that address.
    let external = match &opts.proxy {
        Some(url) => Some(proxy_addr(url)?),
        None => None,
    };
    let ca_path = CertificateAuthority::cert_path(&cfg.ca_dir());
    let state = match external {
        Some(_) => {
            if !ca_path.exists() {
                return Err(ExecError::NoCa(ca_path));
            }
            None
        }
        None => {
            let ca = Arc::new(CertificateAuthority::load_or_create(&cfg.ca_dir())?);
            // No config source: the embedded proxy lives as long as the command; no reload.
            Some(ProxyState::new(cfg, ca, None)?)
        }
    };
    let bundle = trust_bundle(&ca_path)?;
    let signal_streams = register_signals();
    let (child, listener, locked) = if opts.lockdown {
        let url = format!("http://127.0.0.1:{LOCKDOWN_PORT}");
        let env = proxy_env(&url, &ca_path, &bundle, &opts.no_proxy);
        let started = lockdown::start(
            &opts.command,
            &env,
            &lockdown::LockdownOptions {
                port: LOCKDOWN_PORT,
                allow_sockets: opts.allow_sockets.clone(),
                keep: vec![ca_path.clone(), bundle.clone()],
                hide,
            },
        )?;
        started.listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(started.listener.try_clone()?)?;
        (None, Some(listener), Some(started))
    } else {
        let mut cmd = Command::new(program);
        cmd.args(args);
        let (url, listener) = match external {
            Some(addr) => (format!("http://{addr}"), None),
            None => {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                (format!("http://{}", l.local_addr()?), Some(l))
            }
        };
        cmd.envs(proxy_env(&url, &ca_path, &bundle, &opts.no_proxy));
        let child = cmd.spawn().map_err(|error| ExecError::Spawn {
            command: program.to_string_lossy().into_owned(),
            error,
        })?;
        (Some(child), listener, None)
    };

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = match (listener, state, external) {
        (Some(l), Some(state), _) => Some(tokio::spawn(async move {
            let _ = proxy::serve_with_shutdown(l, state, async {
                let _ = stop_rx.await;
            })
            .await;
        })),
        (Some(l), None, Some(addr)) => Some(tokio::spawn(relay(l, addr, stop_rx))),
        _ => None,
    };
    let (mut child, supervisor) = match locked {
        Some(started) => {
            if let Some(format) = opts.print_profile {
                print_profile(&started.profile, format)?;
            }
            started.go()?;
            let lockdown::Started {
                child, supervisor, ..
            } = started;
            (child, Some(supervisor))
        }
        None => (child.expect("spawned above"), None),
    };
    tracing::info!(
        pid = child.id(),
        lockdown = opts.lockdown,
        "command started"
    );
    let signals = tokio::spawn(forward_signals(signal_streams, child.id()));
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .map_err(io::Error::other)??;
    signals.abort();
    if let Some(s) = supervisor {
        let refused = s.refused();
        if refused > 0 {
            tracing::warn!(
                refused,
                "lockdown: connections to UNIX sockets outside the lockdown were refused"
            );
        }
        s.stop();
    }
    let _ = stop_tx.send(());
    if let Some(s) = server {
        let _ = s.await;
    }
    Ok(exit_code(status))
}

fn print_profile(profile: &lockdown::profile::Profile, format: ProfileFormat) -> io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match format {
        ProfileFormat::Text => out.write_all(profile.to_text().as_bytes())?,
        ProfileFormat::Json => {
            serde_json::to_writer_pretty(&mut out, profile).map_err(io::Error::other)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

fn proxy_addr(url: &str) -> Result<std::net::SocketAddr, ExecError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ExecError::ProxyUrl(url.into()))?
        .trim_end_matches('/');
    std::net::ToSocketAddrs::to_socket_addrs(rest)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ExecError::ProxyUrl(url.into()))
}

/// Lockdown with an external proxy: relay the in-namespace listener to it.
async fn relay(
    listener: tokio::net::TcpListener,
    to: std::net::SocketAddr,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let (mut inbound, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = &mut stop => return,
        };
        tokio::spawn(async move {
            if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            }
        });
    }
}

/// Pass termination and user signals on to the command. SIGINT from the terminal already
/// reaches the command (same process group), so it is only forwarded when it was sent to
/// ClawGuard alone.
/// Signals passed on to the command. Registered *before* the command starts, so a signal
/// that arrives early is forwarded instead of killing ClawGuard by its default action.
fn register_signals() -> Vec<(tokio::signal::unix::SignalKind, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::quit(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
    ];
    kinds
        .into_iter()
        .filter_map(|k| signal(k).ok().map(|s| (k, s)))
        .collect()
}

async fn forward_signals(
    streams: Vec<(tokio::signal::unix::SignalKind, tokio::signal::unix::Signal)>,
    pid: u32,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (kind, mut s) in streams {
        tasks.spawn(async move {
            while s.recv().await.is_some() {
                let signo = kind.as_raw_value();
                // SAFETY: plain syscalls on our own process group / child pid.
                let from_terminal =
                    signo == libc::SIGINT && unsafe { libc::tcgetpgrp(0) == libc::getpgrp() };
                if !from_terminal {
                    unsafe { libc::kill(pid as libc::pid_t, signo) };
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// System trust stores to extend, first found wins.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A PEM bundle of the system roots plus ClawGuard's CA, for tools whose CA variable
/// *replaces* the trust store (`SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, …): bypassed
/// (blind-tunnelled) hosts still present their real certificates.
pub fn trust_bundle(ca_path: &Path) -> io::Result<std::path::PathBuf> {
    let out = ca_path.with_file_name("clawguard-bundle.pem");
    // `SSL_CERT_FILE` may already name this bundle (exported by `clawguard ca env`):
    // never build it from itself, or every run would append the CA once more.
    let mut pem = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
        .filter(|p| p != ca_path && *p != out)
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    if !pem.is_empty() && !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(&std::fs::read(ca_path)?);
    let tmp = ca_path.with_file_name(format!(".clawguard-bundle.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &pem)?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// The environment a proxied command gets. `NO_PROXY` is empty unless given, so
/// loopback destinations go through the proxy too. `ca_path` is ClawGuard's CA (for the
/// additive `NODE_EXTRA_CA_CERTS`), `bundle` the system roots plus that CA.
pub fn proxy_env(
    proxy_url: &str,
    ca_path: &Path,
    bundle: &Path,
    no_proxy: &str,
) -> Vec<(String, String)> {
    let bundle = bundle.display().to_string();
    let mut env = Vec::new();
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        env.push((k.to_string(), proxy_url.to_string()));
    }
    env.push(("NO_PROXY".into(), no_proxy.into()));
    env.push(("no_proxy".into(), no_proxy.into()));
    env.push(("OPENCLAW_PROXY_URL".into(), proxy_url.into()));
    env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    env.push(("NODE_EXTRA_CA_CERTS".into(), ca_path.display().to_string()));
    for k in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        env.push((k.to_string(), bundle.clone()));
    }
    env
}

/// Exit code for a finished child: its own code, or 128 + signal number.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_points_everything_at_the_proxy() {
        let env = proxy_env(
            "http://127.0.0.1:9",
            Path::new("/ca.pem"),
            Path::new("/bundle.pem"),
            "",
        );
        let get = |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:9"));
        assert_eq!(get("OPENCLAW_PROXY_URL"), Some("http://127.0.0.1:9"));
        assert_eq!(get("NODE_EXTRA_CA_CERTS"), Some("/ca.pem"));
        assert_eq!(get("SSL_CERT_FILE"), Some("/bundle.pem"));
        assert_eq!(get("NO_PROXY"), Some(""));
        assert_eq!(get("NODE_USE_ENV_PROXY"), Some("1"));
    }
}
