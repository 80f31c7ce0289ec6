// PLACEHOLDER: replaced by the real engine at merge
//! Inspection engine interface (placeholder with the agreed API; the proxy compiles and is
//! tested against it). `inspect` passes everything; `too_large` follows the agreed policy.

use crate::config::{Config, ConfigError, Mode};

pub struct RequestInfo<'a> {
    pub method: &'a http::Method,
    /// Absolute: scheme://authority/path?query
    pub uri: &'a http::Uri,
    pub host: &'a str,
    pub port: u16,
    pub headers: &'a http::HeaderMap,
    pub client: std::net::SocketAddr,
    pub request_id: &'a str,
}

pub enum Verdict {
    /// Forward the original request unchanged (byte-identical body). `would` is set in
    /// dry-run mode: add response header `X-ClawGuard-Would: block|redact`.
    Pass { would: Option<crate::rules::Action> },
    /// Forward this rewritten request instead (redaction): replacement headers
    /// (Content-Length/Content-Encoding already fixed) and body.
    Rewrite {
        headers: http::HeaderMap,
        body: bytes::Bytes,
    },
    /// Answer the client with this response; the origin is not contacted.
    Respond(http::Response<bytes::Bytes>),
}

pub struct Engine {
    enforce_closed: bool,
}

impl Engine {
    pub fn new(cfg: &Config) -> Result<Engine, ConfigError> {
        Ok(Engine {
            enforce_closed: cfg.mode == Mode::Enforce && !cfg.fail_open,
        })
    }

    /// Inspect a complete request body (raw wire bytes, still Content-Encoded).
    pub fn inspect(&self, _req: &RequestInfo<'_>, _body: &bytes::Bytes) -> Verdict {
        Verdict::Pass { would: None }
    }

    /// The body is larger than max_inspect_bytes: 413 in enforce mode, Pass when fail_open
    /// or dry-run.
    pub fn too_large(&self, req: &RequestInfo<'_>) -> Verdict {
        if !self.enforce_closed {
            return Verdict::Pass { would: None };
        }
        let body = format!(
            "{{\"error\":\"request body too large to inspect\",\"request_id\":\"{}\"}}",
            req.request_id
        );
        Verdict::Respond(
            http::Response::builder()
                .status(413)
                .header("content-type", "application/json")
                .body(bytes::Bytes::from(body))
                .expect("static response is valid"),
        )
    }
}
