//! The forward proxy: listener, CONNECT (intercept or blind tunnel), upstream client.
//!
//! Entry points: [`run`] (what `clawguard run` calls) and [`serve`] /
//! [`serve_with_shutdown`] over an already bound listener with a [`ProxyState`].
//! Detection lives in [`crate::inspect`]; this module only moves bytes and asks it.

pub mod body;
mod connect;
mod forward;
pub mod upstream;

use crate::config::{Config, ConfigError};
use crate::inspect::Engine;
use crate::tls::{CertificateAuthority, TlsError};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// How long in-flight connections may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream CA {path}: {message}")]
    UpstreamCa { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Everything connections share.
pub struct ProxyState {
    cfg: Config,
    /// Behind an `Arc` so a later live reload can swap it without touching connections.
    engine: Arc<Engine>,
    ca: Arc<CertificateAuthority>,
    client: upstream::UpstreamClient,
    /// HTTP/1.1-only: WebSocket handshakes must not land on an HTTP/2 connection.
    ws_client: upstream::UpstreamClient,
    /// Tracks every served connection (listener and intercepted); `None` once shutting down.
    graceful: Mutex<Option<GracefulShutdown>>,
}

impl ProxyState {
    pub fn new(
        cfg: Config,
        engine: Arc<Engine>,
        ca: Arc<CertificateAuthority>,
    ) -> Result<Arc<ProxyState>, ProxyError> {
        let roots = Arc::new(upstream::root_store(&cfg.upstream_ca)?);
        Ok(Arc::new(ProxyState {
            client: upstream::client(&cfg, roots.clone(), true),
            ws_client: upstream::client(&cfg, roots, false),
            cfg,
            engine,
            ca,
            graceful: Mutex::new(Some(GracefulShutdown::new())),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }

    fn bypassed(&self, host: &str) -> bool {
        self.cfg.bypass.iter().any(|g| connect::glob_match(g, host))
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.connect_timeout_secs)
    }

    fn upstream_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.upstream_timeout_secs)
    }

    fn watcher(&self) -> Option<Watcher> {
        self.graceful
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(GracefulShutdown::watcher)
    }
}

/// Serve proxy connections from `listener` forever.
pub async fn serve(listener: TcpListener, state: Arc<ProxyState>) -> Result<(), ProxyError> {
    serve_with_shutdown(listener, state, std::future::pending()).await
}

/// Serve until `shutdown` completes, then stop accepting and give in-flight connections
/// [`SHUTDOWN_GRACE`] to finish.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    state: Arc<ProxyState>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Some(watcher) = state.watcher() else {
            break;
        };
        let conn = Arc::new(forward::Conn {
            client,
            tunnel: None,
        });
        let st = state.clone();
        let svc = service_fn(move |req| forward::handle(st.clone(), conn.clone(), req));
        tokio::spawn(async move {
            // The auto builder (HTTP/1.1 only here) because hyper-util's graceful shutdown
            // supports its upgradeable connections.
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(TokioTimer::new());
            let c = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(c).await {
                tracing::debug!(client = %client, error = %e, "client connection ended");
            }
        });
    }
    drop(listener);
    let graceful = state
        .graceful
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(g) = graceful {
        tracing::info!(connections = g.count(), "shutting down");
        if tokio::time::timeout(SHUTDOWN_GRACE, g.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period; closing them");
        }
    }
    Ok(())
}

/// Bind `cfg.listen`, load or create the CA, and serve until Ctrl-C or SIGTERM.
///
/// Prints two machine-readable lines on stderr once ready:
/// `clawguard listening on ADDR` and `clawguard CA certificate: PATH`.
pub async fn run(cfg: Config) -> Result<(), ProxyError> {
    let ca = Arc::new(CertificateAuthority::load_or_create(&cfg.ca_dir())?);
    let engine = Arc::new(Engine::new(&cfg)?);
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ProxyError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let state = ProxyState::new(cfg, engine, ca.clone())?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback without authentication: anyone who can reach this address can use the proxy");
    }
    eprintln!("clawguard listening on {addr}");
    eprintln!("clawguard CA certificate: {}", ca.path().display());
    serve_with_shutdown(listener, state, shutdown_signal()).await
}

async fn shutdown_signal() {
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
