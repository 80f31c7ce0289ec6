//! Every way a request can fail inside the proxy, and the one place that turns such a
//! failure into a response.
//!
//! A [`Refusal`] carries a reason *class* (a short stable token for metrics and audit
//! records: `egress`, `upstream-tls`, `body-timeout`, …), a *cause* (a short stable
//! phrase, the log line's `reason` field and the audit record's `cause`: `private
//! address`, `metadata endpoint`, `unresolvable`, `connection refused`, `CA certificate
//! as leaf`, …) and a text for people saying what to do. None ever holds a matched
//! value: host names that hold a finding are masked before they get here (see
//! [`super::ctx::RequestCtx::dest`]).

use super::body::{self, ProxyBody};
use http::{header, HeaderValue, Response, StatusCode};

/// Why the proxy answered instead of the origin.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("proxy authentication required (Proxy-Authorization: Basic)")]
    AuthRequired,
    #[error("too many failed proxy authentication attempts from this client; retry in {retry_after_secs} s")]
    AuthThrottled { retry_after_secs: u64 },
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("{message}")]
    Egress {
        cause: &'static str,
        message: String,
    },
    /// The request names another authority than the one the policy decided on
    /// (domain fronting inside a tunnel, or a mismatched `:authority`).
    #[error("{0}")]
    Misdirected(String),
    #[error("the proxy is busy ({0}); retry shortly")]
    Busy(&'static str),
    #[error("the request body arrived too slowly ({0})")]
    BodyTimeout(&'static str),
    #[error("could not read the request body")]
    BodyRead,
    #[error("{message}")]
    Upstream {
        kind: UpstreamKind,
        cause: &'static str,
        message: String,
    },
    #[error("{0}")]
    Internal(&'static str),
}

/// What went wrong talking to the origin (the `kind` label of
/// `clawguard_upstream_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    Connect,
    Timeout,
    Tls,
    Protocol,
    /// A `101` the client did not ask for, or one that does not complete its handshake.
    Upgrade,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Connect => "connect",
            UpstreamKind::Timeout => "timeout",
            UpstreamKind::Tls => "tls",
            UpstreamKind::Protocol => "protocol",
            UpstreamKind::Upgrade => "upgrade",
        }
    }
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::AuthRequired => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            Refusal::AuthThrottled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::BadRequest(_) | Refusal::BodyRead => StatusCode::BAD_REQUEST,
            Refusal::Egress { .. } => StatusCode::FORBIDDEN,
            Refusal::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            Refusal::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Refusal::Upstream { kind, .. } => match kind {
                UpstreamKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The reason class: logs (`reason=`), audit records (`reason: "class: text"`) and
    /// the `decision` label of `clawguard_requests_total` for refusals.
    pub fn class(&self) -> &'static str {
        match self {
            Refusal::AuthRequired => "auth",
            Refusal::AuthThrottled { .. } => "auth-throttled",
            Refusal::BadRequest(_) => "bad-request",
            Refusal::Egress { .. } => "egress",
            Refusal::Misdirected(_) => "misdirected",
            Refusal::Busy(_) => "busy",
            Refusal::BodyTimeout(_) => "body-timeout",
            Refusal::BodyRead => "body-read",
            Refusal::Upstream { kind, .. } => match kind {
                UpstreamKind::Connect => "upstream-connect",
                UpstreamKind::Timeout => "upstream-timeout",
                UpstreamKind::Tls => "upstream-tls",
                UpstreamKind::Protocol => "upstream-protocol",
                UpstreamKind::Upgrade => "upstream-upgrade",
            },
            Refusal::Internal(_) => "internal",
        }
    }

    /// The cause in a few words, stable (logs filter on it): the `reason` field of the log
    /// line and the `cause` of the audit record.
    pub fn cause(&self) -> &'static str {
        match self {
            Refusal::AuthRequired => "no or wrong proxy credentials",
            Refusal::AuthThrottled { .. } => "too many failed attempts",
            Refusal::BadRequest(_) => "bad request",
            Refusal::Egress { cause, .. } | Refusal::Upstream { cause, .. } => cause,
            Refusal::Misdirected(_) => "authority mismatch",
            Refusal::Busy(what) | Refusal::BodyTimeout(what) => what,
            Refusal::BodyRead => "body read error",
            Refusal::Internal(what) => what,
        }
    }

    /// The `decision` recorded for this refusal.
    pub fn decision(&self) -> &'static str {
        match self {
            Refusal::AuthRequired | Refusal::AuthThrottled { .. } => "auth-failure",
            Refusal::Egress { .. } | Refusal::Misdirected(_) => "deny",
            Refusal::Busy(_) => "busy",
            Refusal::Upstream { .. } => "upstream-error",
            _ => "invalid",
        }
    }

    /// The response a client sees: `{"error": "...", "request_id": "..."}` plus the
    /// headers the status needs (`Proxy-Authenticate`, `Retry-After`).
    pub fn response(&self, request_id: &str) -> Response<ProxyBody> {
        let mut r = body::error_response(self.status(), &self.to_string(), request_id);
        let h = r.headers_mut();
        h.insert("x-clawguard-reason", HeaderValue::from_static(self.class()));
        match self {
            Refusal::AuthRequired => {
                h.insert(
                    header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"clawguard\""),
                );
            }
            Refusal::AuthThrottled { retry_after_secs } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Refusal::Busy(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        r
    }
}

/// Classify a failure of the pooled upstream client and explain it in words.
pub fn upstream(e: &hyper_util::client::legacy::Error, dest: &str) -> Refusal {
    let mut timed_out = false;
    let mut tls: Option<&rustls::Error> = None;
    let mut root: &dyn std::error::Error = e;
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        // io::Error's `source` skips the error it wraps, and connectors wrap io errors in
        // io errors: unwrap them by hand to find a TLS error inside.
        let mut io = err.downcast_ref::<std::io::Error>();
        while let Some(e) = io {
            timed_out |= e.kind() == std::io::ErrorKind::TimedOut;
            let inner = e.get_ref();
            if let Some(t) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
                tls = Some(t);
            }
            io = inner.and_then(|i| i.downcast_ref::<std::io::Error>());
        }
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            tls = Some(t);
        }
        root = err;
        cur = err.source();
    }
    if let Some(t) = tls {
        let (cause, message) = explain_tls(t, dest);
        return Refusal::Upstream {
            kind: UpstreamKind::Tls,
            cause,
            message,
        };
    }
    if timed_out {
        return connect_timeout(dest);
    }
    if e.is_connect() {
        let cause = root
            .downcast_ref::<std::io::Error>()
            .map_or("connect failed", io_cause);
        return Refusal::Upstream {
            kind: UpstreamKind::Connect,
            cause,
            message: format!("cannot connect to {dest}: {root}"),
        };
    }
    Refusal::Upstream {
        kind: UpstreamKind::Protocol,
        cause: "protocol error",
        message: format!("the request to {dest} failed: {root}"),
    }
}

/// The 504 for an origin that did not accept the connection in time.
pub fn connect_timeout(dest: &str) -> Refusal {
    Refusal::Upstream {
        kind: UpstreamKind::Timeout,
        cause: "connect timeout",
        message: format!("timed out connecting to {dest}"),
    }
}

/// The 502 for an origin connection that failed with `e`.
pub fn connect_failed(dest: &str, e: &std::io::Error) -> Refusal {
    Refusal::Upstream {
        kind: UpstreamKind::Connect,
        cause: io_cause(e),
        message: format!("cannot connect to {dest}: {e}"),
    }
}

/// A connect error's cause in a few stable words.
fn io_cause(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => "connection reset",
        ErrorKind::TimedOut => "connect timeout",
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => "unreachable",
        _ => "connect failed",
    }
}

/// A TLS failure towards an origin: its cause in a few stable words, and in a sentence
/// with what fixes it.
pub fn explain_tls(e: &rustls::Error, dest: &str) -> (&'static str, String) {
    use rustls::{CertificateError, Error};
    const UPSTREAM_CA: &str = "if the origin uses a private CA, start ClawGuard with \
                               --upstream-ca FILE (or `upstream_ca` in the config) naming it";
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => (
                "unknown issuer",
                format!("the certificate of {dest} is not signed by a CA ClawGuard trusts; {UPSTREAM_CA}"),
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                "certificate expired",
                format!("the certificate of {dest} has expired; the origin must renew it"),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                "certificate not valid yet",
                format!("the certificate of {dest} is not valid yet (check both clocks)"),
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
                "certificate name mismatch",
                format!("the certificate of {dest} does not name that host; the origin must present one that does"),
            ),
            CertificateError::Revoked => (
                "certificate revoked",
                format!("the certificate of {dest} is revoked"),
            ),
            CertificateError::BadSignature | CertificateError::BadEncoding => (
                "certificate malformed",
                format!("the certificate of {dest} is malformed or badly signed"),
            ),
            CertificateError::Other(other) => {
                // rustls wraps webpki's reasons as `Other`; its Debug names the variant.
                let why = format!("{other:?}");
                if why.contains("CaUsedAsEndEntity") {
                    (
                        "CA certificate as leaf",
                        format!(
                            "{dest} presents a CA certificate (CA:TRUE) as its own server certificate, \
                             which TLS clients must refuse; the origin must serve a leaf certificate \
                             (CA:FALSE) signed by that CA, and ClawGuard trusts that CA with \
                             --upstream-ca FILE"
                        ),
                    )
                } else if why.contains("UnknownIssuer") {
                    (
                        "unknown issuer",
                        format!("the certificate of {dest} is not signed by a CA ClawGuard trusts; {UPSTREAM_CA}"),
                    )
                } else {
                    (
                        "certificate refused",
                        format!("the certificate of {dest} was refused ({why}); {UPSTREAM_CA}"),
                    )
                }
            }
            other => (
                "certificate refused",
                format!("the certificate of {dest} was refused ({other:?})"),
            ),
        },
        Error::AlertReceived(a) => (
            "TLS alert from origin",
            format!("{dest} ended the TLS handshake with alert {a:?} (it may require a client certificate or other TLS versions)"),
        ),
        Error::PeerIncompatible(p) => (
            "no common TLS version or cipher",
            format!("{dest} speaks no TLS version or cipher ClawGuard accepts ({p:?})"),
        ),
        other => ("TLS failed", format!("TLS with {dest} failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_statuses() {
        let r = Refusal::Busy("body budget");
        assert_eq!(r.status(), 503);
        let resp = r.response("abc");
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_eq!(resp.headers()["x-clawguard-reason"], "busy");
        assert_eq!(Refusal::AuthRequired.status(), 407);
        assert!(Refusal::AuthRequired
            .response("x")
            .headers()
            .contains_key("proxy-authenticate"));
        let t = connect_timeout("h:1");
        assert_eq!(t.cause(), "connect timeout");
        assert_eq!((t.status().as_u16(), t.class()), (504, "upstream-timeout"));
    }

    #[test]
    fn tls_errors_are_explained() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let (cause, s) = explain_tls(&e, "h:443");
        assert_eq!(cause, "unknown issuer");
        assert!(s.contains("--upstream-ca"), "{s}");
        let e =
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                std::sync::Arc::new(std::io::Error::other("CaUsedAsEndEntity")),
            )));
        let (cause, s) = explain_tls(&e, "h:443");
        assert_eq!(cause, "CA certificate as leaf");
        assert!(s.contains("CA certificate (CA:TRUE)"), "{s}");
    }
}
