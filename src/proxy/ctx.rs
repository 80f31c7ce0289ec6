//! The per-connection and per-request state the phases share.
//!
//! [`Conn`] lives as long as one client connection (or one intercepted tunnel);
//! [`RequestCtx`] as long as one request. Phases read and fill the context; only
//! [`super::pipeline`] decides the order they run in.

use super::respond::BodyFilter;
use super::state::{Live, ProxyState};
use crate::audit::AuditFinding;
use crate::detect::engine::Inspection;
use crate::detect::rules::Action;
use http::uri::{PathAndQuery, Uri};
use http::Method;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where requests go: scheme, host (lower-case, without IPv6 brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Target {
    fn default_port(&self) -> u16 {
        if self.https {
            443
        } else {
            80
        }
    }

    /// `host[:port]` as it goes in `Host` / `:authority` (port only when not the default).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The absolute URI of a request to this target: the authority always comes from
    /// the target, never from what the client wrote.
    pub fn uri(&self, pq: Option<&PathAndQuery>) -> Option<Uri> {
        Uri::builder()
            .scheme(if self.https { "https" } else { "http" })
            .authority(self.authority())
            .path_and_query(pq.map_or("/", |p| p.as_str()))
            .build()
            .ok()
    }

    /// The destination of an absolute-form request (`GET http://host/path`).
    pub fn from_absolute(uri: &Uri) -> Option<Target> {
        let https = match uri.scheme_str()? {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let host = normalize_host(uri.host()?);
        if host.is_empty() {
            return None;
        }
        Some(Target {
            https,
            host,
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// Whether an authority a client wrote (`Host`, `:authority`) names this target.
    /// A missing port means the scheme's default.
    pub fn matches_authority(&self, authority: &str) -> bool {
        let Ok(a) = authority.parse::<http::uri::Authority>() else {
            return false;
        };
        normalize_host(a.host()) == self.host
            && a.port_u16().unwrap_or(self.default_port()) == self.port
    }
}

/// Lower-case, without IPv6 brackets and without a trailing dot.
pub(crate) fn normalize_host(host: &str) -> String {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// A destination the route phase approved: where to connect and how strictly to judge
/// what goes there.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub target: Target,
    /// The checked addresses; nothing else is ever connected to.
    pub addrs: Arc<[SocketAddr]>,
    /// The destination's findings floor (`[[egress.rule]] findings = ...`).
    pub floor: Option<Action>,
    /// `host:port` for logs and audit, the host masked if it holds a finding.
    pub dest: String,
}

/// One client connection: who it is and, inside a CONNECT tunnel, where it goes.
pub(crate) struct Conn {
    pub client: SocketAddr,
    /// Inside a tunnel: the destination approved at CONNECT (scheme decided by the
    /// tunnel's first byte).
    pub tunnel: Option<Route>,
    /// Inside a tunnel: the user who authenticated the CONNECT (requests inherit it).
    pub user: Option<Arc<str>>,
    /// This client connection's place under `max_connections`, held by the connection
    /// and by every tunnel opened on it.
    pub slot: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

/// What one request came to, for the log line, the audit record and the metrics.
pub(crate) struct Record {
    /// allow | block | redact | would-block | would-redact | deny | auth-failure |
    /// busy | upstream-error | bypass | tunnel | invalid
    pub decision: &'static str,
    /// `class: text` of a refusal or of an uninspectable body.
    pub reason: Option<String>,
    /// Its cause in a few stable words (see [`super::refusal::Refusal::cause`]).
    pub cause: Option<&'static str>,
    pub findings: Vec<AuditFinding>,
    /// Whether any finding was in the URL (the audit path is then masked segment by
    /// segment).
    pub url_findings: bool,
}

/// One request on its way through the phases.
pub(crate) struct RequestCtx {
    pub id: String,
    pub started: Instant,
    /// One configuration snapshot per request: a reload meanwhile changes nothing here.
    pub live: Arc<Live>,
    pub conn: Arc<Conn>,
    pub method: Method,
    pub uri: Uri,
    pub user: Option<Arc<str>>,
    /// `host:port` for logs (masked when the host holds a finding) until routing knows
    /// better.
    pub dest: String,
    pub record: Record,
    /// Dry-run is decided here, once, from the snapshot.
    pub dry_run: bool,
    /// Dry-run: what would have happened (`X-ClawGuard-Would`).
    pub would: Option<Action>,
    /// Applied to the streamed response body (see [`BodyFilter`]); set by the rewrite
    /// phase when a request needs its answer transformed (pseudonym restore).
    pub response_filter: Option<Box<dyn BodyFilter>>,
    pub auditing: bool,
}

impl RequestCtx {
    pub fn new(state: &ProxyState, conn: Arc<Conn>, method: Method, uri: Uri) -> RequestCtx {
        let live = state.live();
        let dest = match (&conn.tunnel, uri.authority()) {
            (Some(t), _) => t.dest.clone(),
            (None, Some(a)) => a.to_string(),
            (None, None) => "-".to_string(),
        };
        RequestCtx {
            id: request_id(),
            started: Instant::now(),
            dry_run: live.dry_run(),
            live,
            user: conn.user.clone(),
            conn,
            method,
            uri,
            dest,
            record: Record {
                decision: "invalid",
                reason: None,
                cause: None,
                findings: Vec::new(),
                url_findings: false,
            },
            would: None,
            response_filter: None,
            auditing: state.audit_enabled(),
        }
    }

    /// Take the engine's report: decision, per-rule metrics, audit findings (the masked
    /// preview and keyed fingerprint only: the engine never hands out the value).
    /// Several inspections may judge one request (its host name before DNS, then the
    /// request); the strictest decision stands.
    pub fn record_inspection(&mut self, r: &Inspection, metrics: &crate::metrics::Metrics) {
        let rank = |d: &str| match d {
            "block" | "would-block" => 3,
            "redact" | "would-redact" => 2,
            "pseudonymize" | "would-pseudonymize" => 1,
            _ => 0,
        };
        let mode = if self.dry_run {
            crate::config::Mode::DryRun
        } else {
            crate::config::Mode::Enforce
        };
        let decision = crate::audit::decision_label(r.decision, mode);
        if rank(decision) >= rank(self.record.decision) {
            self.record.decision = decision;
        }
        // Every finding, listed or not (`[inspection] max_findings` caps the list).
        for c in &r.counts {
            metrics
                .findings
                .inc(&[c.rule.as_str(), c.category.as_str()], c.count as u64);
        }
        // Over the cap the list may not show a URL finding: mask the path then too.
        self.record.url_findings |= r.unlisted > 0
            || r.findings
                .iter()
                .any(|f| f.location == crate::detect::extract::Location::Url);
        if let Some(e) = &r.error {
            self.record.cause = Some("uninspectable body");
            self.record.reason = Some(format!("uninspectable: {e}"));
        }
        if self.auditing {
            self.record
                .findings
                .extend(r.findings.iter().map(AuditFinding::from));
        }
    }
}

impl RequestCtx {
    /// Dry-run: remember the strictest "would" seen so far.
    pub fn note_would(&mut self, would: Option<Action>) {
        self.would = match (self.would, would) {
            (Some(Action::Block), _) | (_, Some(Action::Block)) => Some(Action::Block),
            (a, None) => a,
            (_, b) => b,
        };
    }
}

/// 16 hex characters, in logs and in every error body.
fn request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_uris() {
        let t = Target::from_absolute(&"http://Example.com:8080/a?b".parse().unwrap()).unwrap();
        assert_eq!((t.https, t.port), (false, 8080));
        let pq = PathAndQuery::from_static("/x?y=1");
        assert_eq!(
            t.uri(Some(&pq)).unwrap().to_string(),
            "http://example.com:8080/x?y=1"
        );
        let t = Target::from_absolute(&"https://[::1]/".parse().unwrap()).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.uri(None).unwrap().to_string(), "https://[::1]/");
        assert!(Target::from_absolute(&"/just/a/path".parse().unwrap()).is_none());
        assert!(Target::from_absolute(&"ftp://h/".parse().unwrap()).is_none());
    }

    #[test]
    fn authority_matching() {
        let t = Target {
            https: true,
            host: "api.example.com".into(),
            port: 443,
        };
        assert!(t.matches_authority("API.example.com"));
        assert!(t.matches_authority("api.example.com:443"));
        assert!(t.matches_authority("api.example.com."));
        assert!(!t.matches_authority("api.example.com:8443"));
        assert!(!t.matches_authority("evil.example"));
        assert!(!t.matches_authority("api.example.com@evil.example"));
        let t = Target {
            https: true,
            host: "::1".into(),
            port: 8443,
        };
        assert!(t.matches_authority("[::1]:8443"));
        assert!(!t.matches_authority("[::1]"));
    }
}
