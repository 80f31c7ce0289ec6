//! `clawguard exec`: run a command wired to ClawGuard.
//!
//! Without `--lockdown` the command gets proxy and CA environment variables. With
//! `--lockdown` it also runs in its own network namespace whose only interface is a
//! loopback holding one listening socket: the proxy's. The socket is created *inside* the
//! namespace by the child (between fork and exec) and handed to ClawGuard over a Unix
//! socket, so ClawGuard serves it from the host namespace and makes the upstream
//! connections there. A raw socket, a library that ignores proxy variables, or a direct
//! DNS lookup in the command finds no route instead of leaking.

use crate::config::Config;
use crate::proxy::{self, ProxyError, ProxyState};
use crate::tls::{CertificateAuthority, TlsError};
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
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
    #[error("--proxy {0}: expected http://HOST:PORT")]
    ProxyUrl(String),
    #[error("CA certificate {0} not found: pass the --ca-dir of the running ClawGuard")]
    NoCa(std::path::PathBuf),
    #[error("cannot start `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What `clawguard exec` was asked to do.
pub struct ExecOptions {
    pub lockdown: bool,
    /// A running ClawGuard to use instead of an embedded one.
    pub proxy: Option<String>,
    pub no_proxy: String,
    /// Program and arguments.
    pub command: Vec<OsString>,
}

/// Run the command wired to ClawGuard; returns the exit code to exit with.
pub async fn run(cfg: Config, opts: ExecOptions) -> Result<i32, ExecError> {
    let (program, args) = opts.command.split_first().expect("clap requires a command");
    let mut cmd = Command::new(program);
    cmd.args(args);

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
    let (child, listener) = if opts.lockdown {
        let url = format!("http://127.0.0.1:{LOCKDOWN_PORT}");
        cmd.envs(proxy_env(&url, &ca_path, &bundle, &opts.no_proxy));
        let (child, listener) = spawn_locked_down(cmd, LOCKDOWN_PORT)?;
        listener.set_nonblocking(true)?;
        (child, Some(tokio::net::TcpListener::from_std(listener)?))
    } else {
        let (url, listener) = match external {
            Some(addr) => (format!("http://{addr}"), None),
            None => {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                (format!("http://{}", l.local_addr()?), Some(l))
            }
        };
        cmd.envs(proxy_env(&url, &ca_path, &bundle, &opts.no_proxy));
        let child = cmd.spawn().map_err(|source| ExecError::Spawn {
            command: program.to_string_lossy().into_owned(),
            source,
        })?;
        (child, listener)
    };
    tracing::info!(
        pid = child.id(),
        lockdown = opts.lockdown,
        "command started"
    );

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
    let signals = tokio::spawn(forward_signals(signal_streams, child.id()));
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .map_err(io::Error::other)??;
    signals.abort();
    let _ = stop_tx.send(());
    if let Some(s) = server {
        let _ = s.await;
    }
    Ok(exit_code(status))
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
    let mut pem = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
        .filter(|p| p != ca_path)
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    if !pem.is_empty() && !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(&std::fs::read(ca_path)?);
    let out = ca_path.with_file_name("clawguard-bundle.pem");
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

/// Spawn `cmd` in a new network namespace (plus a user namespace when not root) where
/// only `127.0.0.1:port` exists; returns the child and the listening socket bound there.
/// Fails with a clear error where namespaces are unavailable; it never runs the command
/// without lockdown.
pub fn spawn_locked_down(
    mut cmd: Command,
    port: u16,
) -> io::Result<(Child, std::net::TcpListener)> {
    let (parent_sock, child_sock) = UnixStream::pair()?;
    let child_fd = child_sock.as_raw_fd();
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // Everything the child needs is prepared here: between fork and exec only
    // async-signal-safe calls are allowed (no allocation).
    let uid_map = CString::new(format!("{uid} {uid} 1")).expect("no NUL");
    let gid_map = CString::new(format!("{gid} {gid} 1")).expect("no NUL");
    let need_userns = uid != 0;
    // SAFETY: the closure only makes raw system calls on memory prepared above.
    unsafe {
        cmd.pre_exec(move || {
            let flags = if need_userns {
                libc::CLONE_NEWUSER | libc::CLONE_NEWNET
            } else {
                libc::CLONE_NEWNET
            };
            if libc::unshare(flags) != 0 {
                return Err(io::Error::last_os_error());
            }
            if need_userns {
                write_file(c"/proc/self/setgroups", c"deny")?;
                write_file(c"/proc/self/uid_map", &uid_map)?;
                write_file(c"/proc/self/gid_map", &gid_map)?;
            }
            loopback_up()?;
            let fd = listen_loopback(port)?;
            send_fd(child_fd, fd)?;
            libc::close(fd);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "--lockdown needs Linux network namespaces (root, or unprivileged user \
                 namespaces enabled): {e}"
            ),
        )
    })?;
    drop(child_sock);
    let fd = recv_fd(parent_sock.as_raw_fd())?;
    // SAFETY: we own the received descriptor.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    Ok((child, listener))
}

unsafe fn write_file(path: &std::ffi::CStr, data: &std::ffi::CStr) -> io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes = data.to_bytes();
    let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
    libc::close(fd);
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

unsafe fn loopback_up() -> io::Result<()> {
    let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut req: libc::ifreq = std::mem::zeroed();
    for (i, b) in b"lo\0".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    let res = if libc::ioctl(s, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
        Err(io::Error::last_os_error())
    } else {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(s, libc::SIOCSIFFLAGS as _, &req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    libc::close(s);
    res
}

unsafe fn listen_loopback(port: u16) -> io::Result<RawFd> {
    let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addr: libc::sockaddr_in = std::mem::zeroed();
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    if libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len) != 0
        || libc::listen(fd, 1024) != 0
    {
        let e = io::Error::last_os_error();
        libc::close(fd);
        return Err(e);
    }
    Ok(fd)
}

unsafe fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u8; 64];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
    let c = libc::CMSG_FIRSTHDR(&msg);
    (*c).cmsg_level = libc::SOL_SOCKET;
    (*c).cmsg_type = libc::SCM_RIGHTS;
    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
    if libc::sendmsg(sock, &msg, 0) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv_fd(sock: RawFd) -> io::Result<RawFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u8; 64];
    // SAFETY: msghdr points at live stack buffers; the kernel fills at most their sizes.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = cbuf.len() as _;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::other(
                "the locked-down child did not hand over its listener",
            ));
        }
        Ok(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>()))
    }
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
    use std::io::{Read, Write};

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

    /// The child sees only the handed-over listener: it can reach it, and nothing else.
    #[test]
    fn lockdown_child_reaches_only_the_listener() {
        // A host-side server the child must NOT reach.
        let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let outside_port = outside.local_addr().unwrap().port();
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/18383 && echo hi >&3 && read -r reply <&3 && echo \"proxy:$reply\"; \
             if exec 4<>/dev/tcp/127.0.0.1/{outside_port}; then echo leaked; else echo blocked; fi"
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let (mut child, listener) = match spawn_locked_down(cmd, 18383) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("SKIP lockdown test: namespaces unavailable here: {e}");
                return;
            }
        };
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 3];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi\n");
        conn.write_all(b"pong\n").unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(exit_code(status), 0);
        assert_eq!(out, "proxy:pong\nblocked\n");
    }
}
