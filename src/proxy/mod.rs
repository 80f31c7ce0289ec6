//! The forward proxy: listener, CONNECT (intercept or blind tunnel), upstream client.
//!
//! Entry points: [`run`] (what `clawguard run` calls) and [`serve`] /
//! [`serve_with_shutdown`] over an already bound listener with a [`ProxyState`].
//! Detection lives in [`crate::detect::engine`]; this module only moves bytes and asks it.

pub mod body;
mod connect;
mod forward;
pub mod resolve;
pub mod upstream;

use crate::audit::{AuditEvent, AuditLog, Fingerprinter};
use crate::auth::{AuthError, Authenticator};
use crate::config::{Config, ConfigError, ConfigSource};
use crate::detect::engine::Engine;
use crate::metrics::Metrics;
use crate::tls::{CertificateAuthority, TlsError};
use arc_swap::{ArcSwap, ArcSwapOption};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminAuthError),
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

/// Everything a live reload replaces, swapped as one unit: a request loads it once and
/// finishes on that snapshot even if a reload lands meanwhile.
pub struct Live {
    pub cfg: Config,
    pub engine: Engine,
    /// `None` when no users are configured (authentication off).
    pub auth: Option<Authenticator>,
}

impl Live {
    /// Compile the rule pack and the user table of `cfg`. CPU-heavy (regex compilation,
    /// one Argon2 hash for the decoy): call it off the async workers on a reload.
    pub fn build(cfg: Config, fp: &Fingerprinter) -> Result<Live, ProxyError> {
        let engine = Engine::new(&cfg)?.with_fingerprinter(fp.clone());
        let auth = if cfg.users.is_empty() {
            None
        } else {
            Some(Authenticator::new(&cfg.users)?)
        };
        Ok(Live { cfg, engine, auth })
    }

    fn bypassed(&self, host: &str) -> bool {
        self.cfg
            .bypass
            .iter()
            .any(|g| crate::detect::policy::host_matches(g, host))
    }
}

/// Everything connections share.
pub struct ProxyState {
    live: ArcSwap<Live>,
    /// Where a reload reads the configuration from (`None`: reload unavailable).
    source: Option<ConfigSource>,
    ca: Arc<CertificateAuthority>,
    client: upstream::UpstreamClient,
    /// HTTP/1.1-only: WebSocket handshakes must not land on an HTTP/2 connection.
    ws_client: upstream::UpstreamClient,
    /// Addresses the egress policy checked, the only ones the clients connect to.
    pins: resolve::Pins,
    pub metrics: Arc<Metrics>,
    /// Swappable to `None` at shutdown so the writer thread sees its last sender go.
    audit: ArcSwapOption<AuditLog>,
    audit_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    fingerprinter: Fingerprinter,
    ready: AtomicBool,
    /// One reload at a time (a second waits; it then reads the newest file).
    reloading: tokio::sync::Mutex<()>,
    /// Tracks every served connection (listener and intercepted); `None` once shutting down.
    graceful: Mutex<Option<GracefulShutdown>>,
}

impl ProxyState {
    /// `source`: where [`ProxyState::reload`] re-reads the configuration from.
    pub fn new(
        cfg: Config,
        ca: Arc<CertificateAuthority>,
        source: Option<ConfigSource>,
    ) -> Result<Arc<ProxyState>, ProxyError> {
        let roots = Arc::new(upstream::root_store(&cfg.upstream_ca)?);
        let fingerprinter = match &cfg.audit_key {
            Some(k) => Fingerprinter::new(&crate::audit::read_key(&crate::config::expand_home(k))?),
            None => Fingerprinter::random(),
        };
        let (audit, audit_thread) = match &cfg.audit_log {
            Some(path) => {
                let opts = crate::audit::AuditOptions::from_config(&cfg)?;
                let (log, handle) = AuditLog::open_with(&crate::config::expand_home(path), opts)?;
                (Some(Arc::new(log)), Some(handle))
            }
            None => (None, None),
        };
        let pins = resolve::Pins::default();
        let resolver = resolve::PinnedResolver { pins: pins.clone() };
        let client = upstream::client(&cfg, roots.clone(), true, resolver.clone());
        let ws_client = upstream::client(&cfg, roots, false, resolver);
        let live = Live::build(cfg, &fingerprinter)?;
        Ok(Arc::new(ProxyState {
            live: ArcSwap::from_pointee(live),
            source,
            ca,
            client,
            ws_client,
            pins,
            metrics: Arc::new(Metrics::default()),
            audit: ArcSwapOption::new(audit),
            audit_thread: Mutex::new(audit_thread),
            fingerprinter,
            ready: AtomicBool::new(false),
            reloading: tokio::sync::Mutex::new(()),
            graceful: Mutex::new(Some(GracefulShutdown::new())),
        }))
    }

    /// The current configuration snapshot (load once per request and keep it).
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }

    /// Rules and CA loaded and the listener bound.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub(crate) fn audit_enabled(&self) -> bool {
        self.audit.load().is_some()
    }

    pub(crate) fn audit(&self, event: AuditEvent) {
        if let Some(log) = &*self.audit.load() {
            // A bounded channel to the writer thread; no file I/O on the data path. When
            // the writer falls behind, wait on a blocking thread (backpressure without
            // stalling an async worker, and without dropping the record).
            if let Some(event) = log.try_record(event) {
                let log = log.clone();
                tokio::task::spawn_blocking(move || log.record(event));
            }
            self.metrics
                .audit_records
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Re-read the config file and rule packs; on any error keep serving the old ones.
    /// The listen address, CA, upstream roots, timeouts of the pooled clients and the
    /// audit log are fixed at start: a change to them is logged, not applied.
    pub async fn reload(self: &Arc<Self>) -> Result<(), ProxyError> {
        let Some(source) = self.source.clone() else {
            return Err(ProxyError::Reload(
                "no configuration source to reload from".into(),
            ));
        };
        let _one = self.reloading.lock().await;
        let fp = self.fingerprinter.clone();
        let built = tokio::task::spawn_blocking(move || {
            let cfg = source.load()?;
            Live::build(cfg, &fp)
        })
        .await
        .map_err(|e| ProxyError::Reload(e.to_string()))?;
        let new = match built {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; still serving the previous configuration");
                return Err(e);
            }
        };
        let old = self.live.load();
        let (o, n) = (&old.cfg, &new.cfg);
        for (what, changed) in [
            ("listen", o.listen != n.listen),
            ("ca_dir", o.ca_dir != n.ca_dir),
            ("upstream_ca", o.upstream_ca != n.upstream_ca),
            ("audit_log", o.audit_log != n.audit_log),
            ("audit_key", o.audit_key != n.audit_key),
            ("admin", o.admin != n.admin),
            ("log_format", o.log_format != n.log_format),
            (
                "connect_timeout_secs",
                o.connect_timeout_secs != n.connect_timeout_secs,
            ),
        ] {
            if changed {
                tracing::warn!(
                    setting = what,
                    "changed in the config but not reloadable; restart to apply"
                );
            }
        }
        drop(old);
        self.live.store(Arc::new(new));
        tracing::info!("configuration reloaded");
        Ok(())
    }

    fn watcher(&self) -> Option<Watcher> {
        self.graceful
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(GracefulShutdown::watcher)
    }

    /// Stop the audit writer after the last queued record is on disk.
    pub(crate) async fn close_audit(&self) {
        self.audit.store(None);
        let handle = self
            .audit_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            // Returns once every sender is gone (requests still holding one finish first).
            let joined = tokio::task::spawn_blocking(move || h.join());
            if tokio::time::timeout(SHUTDOWN_GRACE, joined).await.is_err() {
                tracing::warn!("audit writer still busy at exit");
            }
        }
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
            user: None,
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
