//! Counters and latency histograms, rendered in the Prometheus text exposition format.
//!
//! Everything is atomics (label sets in a `DashMap`), so recording never blocks the data
//! path on a lock held by a scrape.

use dashmap::DashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Separates label values inside one map key (a control character no label uses).
const SEP: char = '\u{1f}';

thread_local! {
    /// Reused key buffer: looking up an existing label set allocates nothing.
    static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A counter family keyed by label values.
#[derive(Default)]
pub struct CounterVec {
    /// Label values joined by [`SEP`].
    values: DashMap<Box<str>, AtomicU64>,
}

fn with_key<R>(labels: &[&str], f: impl FnOnce(&str) -> R) -> R {
    KEY.with(|k| {
        let mut k = k.borrow_mut();
        k.clear();
        for (i, l) in labels.iter().enumerate() {
            if i > 0 {
                k.push(SEP);
            }
            if l.contains(SEP) {
                k.extend(l.chars().filter(|&c| c != SEP));
            } else {
                k.push_str(l);
            }
        }
        f(&k)
    })
}

impl CounterVec {
    pub fn inc(&self, labels: &[&str], by: u64) {
        with_key(labels, |key| {
            // Fast path: the label set exists already (a shard read lock, no allocation).
            if let Some(c) = self.values.get(key) {
                c.fetch_add(by, Ordering::Relaxed);
                return;
            }
            self.values
                .entry(key.into())
                .or_default()
                .fetch_add(by, Ordering::Relaxed);
        })
    }

    pub fn get(&self, labels: &[&str]) -> u64 {
        with_key(labels, |key| {
            self.values
                .get(key)
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0)
        })
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label_names: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let mut rows: Vec<(String, u64)> = self
            .values
            .iter()
            .map(|e| {
                let labels: Vec<String> = label_names
                    .iter()
                    .zip(e.key().split(SEP))
                    .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
                    .collect();
                (labels.join(","), e.value().load(Ordering::Relaxed))
            })
            .collect();
        rows.sort();
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// All of ClawGuard's metrics.
#[derive(Default)]
pub struct Metrics {
    /// decision, user
    pub requests: CounterVec,
    /// rule, category
    pub findings: CounterVec,
    /// kind (connect, timeout, tls, protocol)
    pub upstream_errors: CounterVec,
    /// class (egress, busy, body-timeout, upstream-tls, …): requests the proxy answered
    /// itself instead of the origin, by reason.
    pub refusals: CounterVec,
    /// decision (allow, redact, block, uninspected): WebSocket messages from clients.
    pub websocket_messages: CounterVec,
    /// Bytes of request bodies buffered for inspection right now (a gauge).
    pub buffered_body_bytes: AtomicU64,
    /// Client connections refused at `max_connections`.
    pub connections_refused: AtomicU64,
    /// Failed `accept` calls (EMFILE and friends).
    pub accept_errors: AtomicU64,
    pub bytes_inspected: AtomicU64,
    pub inspect_latency: Histogram,
    pub request_latency: Histogram,
    pub audit_records: AtomicU64,
    /// result (restored, unknown): placeholders met in LLM answers.
    pub placeholders: CounterVec,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.requests.render(
            &mut out,
            "clawguard_requests_total",
            "Requests by decision and proxy user.",
            &["decision", "user"],
        );
        self.findings.render(
            &mut out,
            "clawguard_findings_total",
            "Findings by rule and category.",
            &["rule", "category"],
        );
        self.upstream_errors.render(
            &mut out,
            "clawguard_upstream_errors_total",
            "Failures talking to origin servers.",
            &["kind"],
        );
        self.refusals.render(
            &mut out,
            "clawguard_refusals_total",
            "Requests the proxy answered itself (not the origin), by reason class.",
            &["class"],
        );
        self.websocket_messages.render(
            &mut out,
            "clawguard_websocket_messages_total",
            "WebSocket messages from clients, by what inspection decided.",
            &["decision"],
        );
        let _ = writeln!(
            out,
            "# HELP clawguard_buffered_body_bytes Request body bytes buffered for inspection now.\n\
             # TYPE clawguard_buffered_body_bytes gauge\n\
             clawguard_buffered_body_bytes {}",
            self.buffered_body_bytes.load(Ordering::Relaxed)
        );
        for (name, help, v) in [
            (
                "clawguard_connections_refused_total",
                "Client connections refused because max_connections were open.",
                &self.connections_refused,
            ),
            (
                "clawguard_accept_errors_total",
                "Failed accepts on the proxy listener (e.g. out of file descriptors).",
                &self.accept_errors,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP clawguard_inspected_bytes_total Request bytes inspected (after decoding).\n\
             # TYPE clawguard_inspected_bytes_total counter\n\
             clawguard_inspected_bytes_total {}",
            self.bytes_inspected.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP clawguard_audit_records_total Audit records queued.\n\
             # TYPE clawguard_audit_records_total counter\n\
             clawguard_audit_records_total {}",
            self.audit_records.load(Ordering::Relaxed)
        );
        self.placeholders.render(
            &mut out,
            "clawguard_placeholders_total",
            "Placeholders met in LLM answers: restored to the value, or unknown (left as they were).",
            &["result"],
        );
        self.inspect_latency.render(
            &mut out,
            "clawguard_inspect_duration_seconds",
            "Time spent decoding, scanning and deciding on a request.",
        );
        self.request_latency.render(
            &mut out,
            "clawguard_request_duration_seconds",
            "Whole request time through the proxy, until response headers.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.requests.inc(&["block", "alice"], 1);
        m.requests.inc(&["block", "alice"], 2);
        m.findings.inc(&["aws-access-key-id", "credential"], 1);
        m.request_latency.observe(Duration::from_micros(300));
        m.request_latency.observe(Duration::from_millis(20));
        let text = m.render();
        assert!(text.contains("clawguard_requests_total{decision=\"block\",user=\"alice\"} 3"));
        assert!(text.contains(
            "clawguard_findings_total{rule=\"aws-access-key-id\",category=\"credential\"} 1"
        ));
        assert!(text.contains("clawguard_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("clawguard_request_duration_seconds_bucket{le=\"0.025\"} 2"));
        assert!(text.contains("clawguard_request_duration_seconds_count 2"));
        assert_eq!(m.requests.get(&["block", "alice"]), 3);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.requests.inc(&["allow", "a\"b"], 1);
        assert!(m.render().contains("user=\"a\\\"b\""));
    }
}
