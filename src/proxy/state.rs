//! What every connection shares: the live configuration snapshot, the CA, the pooled
//! upstream clients, the audit writer, the metrics, and the limits that keep one client
//! from exhausting the rest.

use super::{resolve, upstream, ProxyError};
use crate::audit::{AuditEvent, AuditLog, Fingerprinter};
use crate::auth::Authenticator;
use crate::config::{Config, ConfigSource, Mode};
use crate::detect::engine::Engine;
use crate::detect::pseudonymize::Pseudonymizer;
use crate::metrics::Metrics;
use crate::tls::CertificateAuthority;
use arc_swap::{ArcSwap, ArcSwapOption};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the audit writer may take to flush at exit.
const AUDIT_FLUSH_GRACE: Duration = Duration::from_secs(10);

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
    /// `pseudo`: the process's key and vault (kept across reloads), when
    /// pseudonymization is on.
    pub fn build(
        cfg: Config,
        fp: &Fingerprinter,
        pseudo: Option<&Arc<Pseudonymizer>>,
    ) -> Result<Live, ProxyError> {
        let mut engine = Engine::new(&cfg)?.with_fingerprinter(fp.clone());
        if let Some(p) = pseudo.filter(|_| cfg.pseudonymize.enabled) {
            engine = engine.with_pseudonymizer(p.clone());
        }
        let auth = if cfg.users.is_empty() {
            None
        } else {
            Some(Authenticator::new(&cfg.users)?)
        };
        Ok(Live { cfg, engine, auth })
    }

    /// Dry-run or enforce: decided here, once per request snapshot.
    pub fn dry_run(&self) -> bool {
        self.cfg.mode == Mode::DryRun
    }

    /// Whether `host` is a `bypass` candidate (a blind tunnel if the client speaks TLS).
    pub fn bypassed(&self, host: &str) -> bool {
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
    pub(crate) ca: Arc<CertificateAuthority>,
    pub(crate) client: upstream::UpstreamClient,
    /// HTTP/1.1-only: WebSocket handshakes must not land on an HTTP/2 connection.
    pub(crate) ws_client: upstream::UpstreamClient,
    /// Addresses the egress policy checked, the only ones the clients connect to.
    pub(crate) pins: resolve::Pins,
    pub metrics: Arc<Metrics>,
    /// Swappable to `None` at shutdown so the writer thread sees its last sender go.
    audit: ArcSwapOption<AuditLog>,
    audit_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Recent decisions for the operator console (with an admin listener).
    pub recent: Option<crate::admin::console::Recent>,
    fingerprinter: Fingerprinter,
    /// The pseudonym key and vault (`[pseudonymize]`), created at start when enabled:
    /// a reload keeps them (the vault must survive it).
    pseudonymizer: Option<Arc<Pseudonymizer>>,
    ready: AtomicBool,
    /// One reload at a time (a second waits; it then reads the newest file).
    reloading: tokio::sync::Mutex<()>,
    /// Tracks every served connection (listener and intercepted); `None` once shutting down.
    pub(crate) graceful: Mutex<Option<GracefulShutdown>>,
    /// One permit per open client connection (`max_connections`).
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
    /// Memory for buffered request bodies (`body_budget_bytes`, `max_buffered_bodies`).
    pub(crate) budget: super::body::BodyBudget,
    /// Where the detection engine runs.
    pub(crate) inspect_pool: super::inspect::InspectPool,
    /// Every address this process listens on (proxy and admin): never a destination.
    own_listeners: Mutex<Vec<SocketAddr>>,
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
        let connections = Arc::new(tokio::sync::Semaphore::new(
            cfg.max_connections.min(tokio::sync::Semaphore::MAX_PERMITS),
        ));
        let metrics = Arc::new(Metrics::default());
        let budget = super::body::BodyBudget::new(
            cfg.body_budget_bytes,
            cfg.max_buffered_bodies,
            metrics.clone(),
        );
        let inspect_pool = super::inspect::InspectPool::new(cfg.inspect_threads);
        let pseudonymizer = if cfg.pseudonymize.enabled {
            Some(Arc::new(Pseudonymizer::from_config(
                &cfg.pseudonymize,
                &cfg.ca_dir(),
            )?))
        } else {
            None
        };
        let recent = cfg.admin.map(|_| crate::admin::console::Recent::default());
        let live = Live::build(cfg, &fingerprinter, pseudonymizer.as_ref())?;
        Ok(Arc::new(ProxyState {
            live: ArcSwap::from_pointee(live),
            source,
            ca,
            client,
            ws_client,
            pins,
            metrics,
            audit: ArcSwapOption::new(audit),
            audit_thread: Mutex::new(audit_thread),
            recent,
            fingerprinter,
            pseudonymizer,
            ready: AtomicBool::new(false),
            reloading: tokio::sync::Mutex::new(()),
            graceful: Mutex::new(Some(GracefulShutdown::new())),
            connections,
            budget,
            inspect_pool,
            own_listeners: Mutex::new(Vec::new()),
        }))
    }

    /// The current configuration snapshot (load once per request and keep it).
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }

    /// Record an address this process listens on (the route phase refuses it).
    pub fn add_own_listener(&self, addr: SocketAddr) {
        let mut own = self.own_listeners.lock().unwrap_or_else(|p| p.into_inner());
        if !own.contains(&addr) {
            own.push(addr);
        }
    }

    /// Whether connecting to `dest` would reach one of this process's own listeners.
    pub fn is_own_listener(&self, dest: &SocketAddr) -> bool {
        let own = self.own_listeners.lock().unwrap_or_else(|p| p.into_inner());
        crate::egress::is_own_listener(dest, &own)
    }

    /// Rules and CA loaded and the listener bound.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Whether decision records are wanted (audit log, or the console's recent list).
    pub fn audit_enabled(&self) -> bool {
        self.audit.load().is_some() || self.recent.is_some()
    }

    pub fn audit(&self, event: AuditEvent) {
        if let Some(r) = &self.recent {
            r.record(&event);
        }
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
        let pseudo = self.pseudonymizer.clone();
        let built = tokio::task::spawn_blocking(move || {
            let cfg = source.load()?;
            Live::build(cfg, &fp, pseudo.as_ref())
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
            (
                "upstream_idle_secs",
                o.upstream_idle_secs != n.upstream_idle_secs,
            ),
            ("max_connections", o.max_connections != n.max_connections),
            (
                "body_budget_bytes",
                o.body_budget_bytes != n.body_budget_bytes,
            ),
            (
                "max_buffered_bodies",
                o.max_buffered_bodies != n.max_buffered_bodies,
            ),
            ("inspect_threads", o.inspect_threads != n.inspect_threads),
            (
                "pseudonymize (enabling it, key_file, vault bounds)",
                (n.pseudonymize.enabled && self.pseudonymizer.is_none())
                    || o.pseudonymize.key_file != n.pseudonymize.key_file
                    || o.pseudonymize.vault_max_bytes != n.pseudonymize.vault_max_bytes
                    || o.pseudonymize.vault_ttl_secs != n.pseudonymize.vault_ttl_secs,
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

    pub fn watcher(&self) -> Option<Watcher> {
        self.graceful
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(GracefulShutdown::watcher)
    }

    /// Stop the audit writer after the last queued record is on disk.
    pub async fn close_audit(&self) {
        self.audit.store(None);
        let handle = self
            .audit_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            // Returns once every sender is gone (requests still holding one finish first).
            let joined = tokio::task::spawn_blocking(move || h.join());
            if tokio::time::timeout(AUDIT_FLUSH_GRACE, joined)
                .await
                .is_err()
            {
                tracing::warn!("audit writer still busy at exit");
            }
        }
    }
}
