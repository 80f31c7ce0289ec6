//! The forward proxy, as named phases over one per-request context.
//!
//! ```text
//! listener (accept: connection limit, EMFILE back-off, drain at shutdown)
//!   └─ pipeline, per request (a tracing span each):
//!        authenticate → route (host inspected before DNS; egress on resolved, pinned
//!        addresses; never our own listeners; Host/:authority integrity)
//!        → CONNECT: connect (first byte: TLS → leaf or bypass, HTTP → inspected)
//!        → read body (idle timeout, minimum rate, deadline, global byte budget)
//!        → inspect (detection engine on a bounded thread pool) → rewrite
//!        → upstream (pooled client, Host = the routed authority)
//!        → respond (101 only for a real WebSocket handshake; response body filter)
//!        → finish (one log line, metrics, audit)
//! ```
//!
//! Each phase is a function in its own module; [`pipeline`] only orders them; every
//! failure becomes a response in one place ([`refusal::Refusal`]). Entry points: [`run`]
//! (what `clawguard run` calls) and [`serve`] / [`serve_with_shutdown`] over an already
//! bound listener with a [`ProxyState`]. Detection lives in [`crate::detect`]; this module
//! only moves bytes and asks it.

pub mod body;
mod connect;
mod ctx;
mod headers;
mod hygiene;
mod inspect;
mod listener;
mod pipeline;
mod pseudonym;
pub mod refusal;
pub mod resolve;
mod respond;
mod route;
mod sni_fallback;
mod state;
pub mod upstream;
pub mod websocket;

pub use listener::serve_with_shutdown;
pub use respond::BodyFilter;
pub use state::{Live, ProxyState};

use crate::auth::AuthError;
use crate::config::{Config, ConfigError, ConfigSource};
use crate::tls::{CertificateAuthority, TlsError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminAuthError),
    #[error(transparent)]
    Pseudonymize(#[from] crate::detect::pseudonymize::PseudonymizeError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream CA {path}: {message}")]
    UpstreamCa { path: PathBuf, message: String },
    #[error("reload: {0}")]
    Reload(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serve proxy connections from `listener` forever.
pub async fn serve(listener: TcpListener, state: Arc<ProxyState>) -> Result<(), ProxyError> {
    serve_with_shutdown(listener, state, std::future::pending()).await
}

/// Every connection costs descriptors (client side, upstream side): lift the soft limit
/// to the hard one so `max_connections` is not cut short by a default of 1024.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Bind `cfg.listen`, load or create the CA, and serve until Ctrl-C or SIGTERM;
/// SIGHUP reloads from `source`.
///
/// Prints machine-readable lines on stderr once ready:
/// `clawguard listening on ADDR`, `clawguard CA certificate: PATH` and, with an admin
/// listener, `clawguard admin listening on ADDR`.
pub async fn run(cfg: Config, source: ConfigSource) -> Result<(), ProxyError> {
    let ca = Arc::new(CertificateAuthority::load_or_create(&cfg.ca_dir())?);
    let listen = cfg.listen;
    let admin_addr = cfg.admin;
    let open = !listen.ip().is_loopback() && cfg.users.is_empty();
    let state = ProxyState::new(cfg, ca.clone(), Some(source))?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ProxyError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    state.add_own_listener(addr);
    raise_fd_limit();
    if open {
        tracing::warn!(%addr, "listening beyond loopback without authentication (allow_unauthenticated): anyone who can reach this address can use the proxy");
    }
    let admin = match admin_addr {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| ProxyError::Bind { addr: a, source })?,
        ),
        None => None,
    };
    if let Some(l) = admin {
        let a = l.local_addr()?;
        if !a.ip().is_loopback() {
            tracing::info!(addr = %a, "admin listener beyond loopback (authentication required)");
        }
        state.add_own_listener(a);
        eprintln!("clawguard admin listening on {a}");
        crate::admin::spawn(l, state.clone())?;
    }
    reload_on_sighup(state.clone());
    state.set_ready();
    eprintln!("clawguard listening on {addr}");
    eprintln!("clawguard CA certificate: {}", ca.path().display());
    let r = serve_with_shutdown(listener, state.clone(), shutdown_signal()).await;
    state.close_audit().await;
    r
}

/// Reload `state` on every SIGHUP (shared by `run` and `icap`).
pub(crate) fn reload_on_sighup(state: Arc<ProxyState>) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            let _ = state.reload().await;
        }
    });
}

/// Ctrl-C or SIGTERM (shared by `run` and `icap`).
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}
