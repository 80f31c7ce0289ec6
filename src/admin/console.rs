//! The operator console: a page served from the binary (HTML, JS and CSS compiled in;
//! no CDN, no build step) and the JSON it polls.
//!
//! - `GET /api/decisions`: the most recent decisions (time, user, destination,
//!   decision, rule ids, masked previews: the audit event's fields, which never hold a
//!   raw value) and counts by rule, user, destination and decision over the last hour.
//! - `POST /api/try`: the request engine on pasted text, as a `text/plain` POST to a
//!   destination of the operator's choosing; answers what would be found, decided and
//!   redacted. Nothing is forwarded, audited or counted.
//! - `GET /api/config`: a summary of the running configuration (no secrets: no hashes,
//!   keys or token contents).
//!
//! Memory: at most [`RECENT`] decisions and one bucket per minute for an hour, each with
//! at most [`KEYS_PER_BUCKET`] distinct names per dimension (the rest count as "other").

use crate::audit::AuditEvent;
use crate::detect::engine::{RequestInfo, Verdict};
use crate::proxy::Live;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// Decisions kept for the table.
pub const RECENT: usize = 200;
/// Distinct names per dimension and minute.
pub const KEYS_PER_BUCKET: usize = 500;
/// Largest text the try box inspects.
pub const TRY_LIMIT: usize = 64 * 1024;

pub const PAGE: &str = include_str!("console.html");
pub const SCRIPT: &str = include_str!("console.js");
pub const STYLE: &str = include_str!("console.css");

/// One decision as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Increasing; the page asks for what came after the last one it has.
    pub id: u64,
    pub time: String,
    pub user: String,
    pub client: String,
    pub method: String,
    pub destination: String,
    /// Query values already removed.
    pub path: String,
    pub decision: String,
    pub reason: Option<String>,
    pub rules: Vec<String>,
    /// Masked previews, one per finding.
    pub previews: Vec<String>,
}

#[derive(Default)]
struct Bucket {
    minute: u64,
    by: [HashMap<String, u64>; 4],
}

const DIMENSIONS: [&str; 4] = ["rule", "user", "destination", "decision"];

impl Bucket {
    fn add(&mut self, dim: usize, key: &str) {
        let m = &mut self.by[dim];
        let key = if m.contains_key(key) || m.len() < KEYS_PER_BUCKET {
            key
        } else {
            "other"
        };
        *m.entry(key.to_string()).or_default() += 1;
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    recent: VecDeque<Decision>,
    buckets: VecDeque<Bucket>,
}

/// Recent decisions and per-minute counts, fed by every front end (proxy, ICAP).
#[derive(Default)]
pub struct Recent {
    inner: Mutex<Inner>,
}

fn minute_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

/// What `/api/decisions` answers.
#[derive(Serialize)]
pub struct Snapshot {
    pub decisions: Vec<Decision>,
    /// dimension → name → count over the last 60 minutes.
    pub counts: BTreeMap<&'static str, BTreeMap<String, u64>>,
    pub last_id: u64,
}

impl Recent {
    pub fn record(&self, ev: &AuditEvent) {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let user = ev.user.clone().unwrap_or_else(|| "-".into());
        let mut rules: Vec<String> = ev.findings.iter().map(|f| f.rule.clone()).collect();
        rules.dedup();
        let minute = minute_now();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.next_id += 1;
        let d = Decision {
            id: g.next_id,
            time: now,
            user: user.clone(),
            client: ev.client.clone(),
            method: ev.method.clone(),
            destination: ev.host.clone(),
            path: ev.path.clone(),
            decision: ev.decision.clone(),
            reason: ev.reason.clone(),
            rules: rules.clone(),
            previews: ev.findings.iter().map(|f| f.preview.clone()).collect(),
        };
        if g.recent.len() == RECENT {
            g.recent.pop_front();
        }
        g.recent.push_back(d);
        if g.buckets.back().is_none_or(|b| b.minute != minute) {
            g.buckets.push_back(Bucket {
                minute,
                ..Bucket::default()
            });
        }
        while g.buckets.front().is_some_and(|b| b.minute + 60 <= minute) {
            g.buckets.pop_front();
        }
        let b = g.buckets.back_mut().expect("pushed above");
        for r in &rules {
            b.add(0, r);
        }
        b.add(1, &user);
        b.add(2, &ev.host);
        b.add(3, &ev.decision);
    }

    /// Decisions after `after` (newest last) and the hour's counts.
    pub fn snapshot(&self, after: u64) -> Snapshot {
        let minute = minute_now();
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts: BTreeMap<&'static str, BTreeMap<String, u64>> =
            DIMENSIONS.iter().map(|d| (*d, BTreeMap::new())).collect();
        for b in g.buckets.iter().filter(|b| b.minute + 60 > minute) {
            for (i, dim) in DIMENSIONS.iter().enumerate() {
                let into = counts.get_mut(dim).expect("every dimension");
                for (k, n) in &b.by[i] {
                    *into.entry(k.clone()).or_default() += n;
                }
            }
        }
        Snapshot {
            decisions: g.recent.iter().filter(|d| d.id > after).cloned().collect(),
            counts,
            last_id: g.next_id,
        }
    }
}

/// One finding as the try box shows it.
#[derive(Serialize)]
pub struct TryFinding {
    pub rule: String,
    pub category: String,
    pub preview: String,
    pub outcome: String,
}

#[derive(Serialize)]
pub struct TryResult {
    /// What enforce mode would do: allow | redact | block.
    pub decision: String,
    pub findings: Vec<TryFinding>,
    /// The text as it would be forwarded, when the decision is redact.
    pub redacted: Option<String>,
    pub error: Option<String>,
}

/// Run the engine on `text` as the body of a `text/plain` POST to `destination`.
/// CPU work: call it on the blocking pool.
pub fn try_text(live: &Live, text: &[u8], destination: &str) -> TryResult {
    let host = destination
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .filter(|h| !h.is_empty())
        .unwrap_or("console.try.invalid")
        .to_ascii_lowercase();
    let uri: http::Uri = format!("https://{host}/")
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("https://console.try.invalid/"));
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(text.len()),
    );
    let info = RequestInfo {
        method: &http::Method::POST,
        uri: &uri,
        host: uri.host().unwrap_or("console.try.invalid"),
        port: 443,
        headers: &headers,
        client: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        request_id: "console-try",
        floor: None,
    };
    let body = bytes::Bytes::copy_from_slice(text);
    let (verdict, report) = live.engine.inspect_report(&info, &body);
    let redacted = match verdict {
        Verdict::Rewrite { body, .. } => Some(String::from_utf8_lossy(&body).into_owned()),
        _ => None,
    };
    TryResult {
        decision: report.decision.as_str().to_string(),
        findings: report
            .findings
            .iter()
            .map(|f| TryFinding {
                rule: f.rule.clone(),
                category: f.category.as_str().to_string(),
                preview: f.preview.clone(),
                outcome: serde_json::to_value(f.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
            })
            .collect(),
        redacted,
        error: report.error,
    }
}

/// The running configuration in brief.
pub fn config_summary(live: &Live) -> serde_json::Value {
    let c = &live.cfg;
    let rules = live.engine.scanner().rules().len();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "mode": format!("{:?}", c.mode).to_ascii_lowercase(),
        "listen": c.listen.to_string(),
        "icap_listen": c.icap.listen.to_string(),
        "rules_enabled": rules,
        "rule_overrides": c.rules.len(),
        "fail_open": c.fail_open,
        "max_inspect_bytes": c.max_inspect_bytes,
        "block_status": c.block_status,
        "users": c.users.keys().collect::<Vec<_>>(),
        "admin_users": c.admin_users,
        "egress_default": format!("{:?}", c.egress.default).to_ascii_lowercase(),
        "egress_rules": c.egress.rules.len(),
        "allow_private": c.egress.allow_private,
        "bypass": c.bypass,
        "audit_log": c.audit_log.as_ref().map(|p| p.display().to_string()),
        "audit_signed": c.audit_signing_key.is_some(),
        "audit_syslog": c.audit_syslog.as_ref().map(|s| s.address.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(decision: &str, user: &str) -> AuditEvent {
        AuditEvent {
            request_id: "r".into(),
            user: Some(user.into()),
            client: "127.0.0.1:1".into(),
            method: "POST".into(),
            host: "api.example.com:443".into(),
            path: "/v1?x=".into(),
            decision: decision.into(),
            reason: None,
            cause: None,
            findings: vec![crate::audit::AuditFinding {
                rule: "aws-access-key-id".into(),
                category: "credential".into(),
                location: "body".into(),
                fingerprint: "f".into(),
                preview: "AKIA********UX".into(),
            }],
        }
    }

    #[test]
    fn recent_is_bounded_and_counts_by_dimension() {
        let r = Recent::default();
        for i in 0..(RECENT + 10) {
            r.record(&ev(if i % 2 == 0 { "block" } else { "allow" }, "alice"));
        }
        let s = r.snapshot(0);
        assert_eq!(s.decisions.len(), RECENT);
        assert_eq!(s.counts["decision"]["block"], (RECENT as u64 + 10) / 2);
        assert_eq!(s.counts["user"]["alice"], RECENT as u64 + 10);
        assert_eq!(s.counts["rule"]["aws-access-key-id"], RECENT as u64 + 10);
        assert_eq!(r.snapshot(s.last_id - 3).decisions.len(), 3);
    }
}
