//! One HTTP request, whichever way it arrived (absolute-form on the listener, or inside a
//! CONNECT tunnel): inspect the body, forward, stream the answer back.

use super::body::{self, collect_capped, error_response, Collected, Prefixed, ProxyBody};
use super::{connect, Live, ProxyState};
use crate::audit::{AuditEvent, AuditFinding};
use crate::config::Mode;
use crate::detect::engine::{Inspection, RequestInfo, Verdict};
use crate::detect::policy::Decision;
use crate::detect::rules::Action;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where requests on a connection go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub https: bool,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

impl Target {
    fn uri(&self, pq: Option<&PathAndQuery>) -> Option<Uri> {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.https { 443 } else { 80 };
        let authority = if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        };
        Uri::builder()
            .scheme(if self.https { "https" } else { "http" })
            .authority(authority)
            .path_and_query(pq.map_or("/", |p| p.as_str()))
            .build()
            .ok()
    }

    /// The destination of an absolute-form request (`GET http://host/path`).
    fn from_absolute(uri: &Uri) -> Option<Target> {
        let https = match uri.scheme_str()? {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let host = strip_brackets(uri.host()?).to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        Some(Target {
            https,
            host,
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }
}

pub(crate) fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// One client connection: who it is and, inside a CONNECT tunnel, where it goes.
pub(crate) struct Conn {
    pub client: SocketAddr,
    pub tunnel: Option<Checked>,
    /// Inside a tunnel: the user who authenticated the CONNECT (requests inherit it).
    pub user: Option<Arc<str>>,
}

/// A tunnel's destination as the egress policy approved it at CONNECT time.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub target: Target,
    /// The checked addresses; the upstream client connects to nothing else.
    pub addrs: Arc<[SocketAddr]>,
    /// The destination's findings floor (`[[egress.rule]] findings = ...`).
    pub floor: Option<Action>,
}

/// What one request came to, for the audit log and the metrics.
pub(crate) struct Record {
    /// allow | block | redact | would-block | would-redact | deny | auth-failure |
    /// bypass (CONNECT) | tunnel | invalid
    pub decision: &'static str,
    pub reason: Option<String>,
    pub findings: Vec<AuditFinding>,
    /// Build audit findings (only when an audit log is configured).
    audit: bool,
}

impl Record {
    pub fn deny(&mut self, d: &crate::egress::Denied) {
        self.decision = "deny";
        if self.audit {
            self.reason = Some(d.to_string());
        }
    }

    /// Take the engine's report: decision, per-rule metrics, audit findings (the masked
    /// preview and keyed fingerprint only: the engine never hands out the value).
    fn inspection(&mut self, r: &Inspection, mode: Mode, metrics: &crate::metrics::Metrics) {
        let dry = mode == Mode::DryRun;
        self.decision = match (r.decision, dry) {
            (Decision::Allow, _) => "allow",
            (Decision::Block, false) => "block",
            (Decision::Redact, false) => "redact",
            (Decision::Block, true) => "would-block",
            (Decision::Redact, true) => "would-redact",
            (Decision::Pseudonymize, false) => "pseudonymize",
            (Decision::Pseudonymize, true) => "would-pseudonymize",
        };
        // Every finding, listed or not (`[inspection] max_findings` caps the list).
        for c in &r.counts {
            metrics
                .findings
                .inc(&[c.rule.as_str(), c.category.as_str()], c.count as u64);
        }
        if self.audit {
            self.reason = r.error.clone();
            self.findings = r
                .findings
                .iter()
                .map(|f| AuditFinding {
                    rule: f.rule.clone(),
                    category: f.category.as_str().to_string(),
                    location: f.location.to_string(),
                    fingerprint: f.fingerprint.clone().unwrap_or_default(),
                    preview: f.preview.clone(),
                })
                .collect();
        }
    }
}

/// 16 hex characters, in logs and in every error body.
fn request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

type HandleFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>,
>;

/// The service behind every connection. Boxed: CONNECT serves `handle` again inside the
/// tunnel, and the recursion needs a named, `Send` future type.
pub(crate) fn handle(
    state: Arc<ProxyState>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> HandleFuture {
    Box::pin(handle_inner(state, conn, req))
}

async fn handle_inner(
    state: Arc<ProxyState>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let id = request_id();
    // One snapshot per request: a reload meanwhile does not change this request's rules.
    let live = state.live();
    let method = req.method().clone();
    let target = match &conn.tunnel {
        Some(t) => Some(t.target.clone()),
        None => Target::from_absolute(req.uri()),
    };
    // Method, destination and status only: paths, header values and bodies may hold secrets.
    let dest = match (&target, req.uri().authority()) {
        (Some(t), _) => format!("{}:{}", t.host, t.port),
        (None, Some(a)) => a.to_string(),
        (None, None) => "-".to_string(),
    };
    let auditing = state.audit_enabled();
    let path = if auditing && method != Method::CONNECT {
        req.uri().path_and_query().map_or_else(
            || "/".to_string(),
            |p| crate::audit::path_without_query_values(p.as_str()),
        )
    } else {
        String::new()
    };
    let mut rec = Record {
        decision: "invalid",
        reason: None,
        findings: Vec::new(),
        audit: auditing,
    };
    let user: Result<Option<Arc<str>>, ()> = if conn.tunnel.is_some() {
        Ok(conn.user.clone())
    } else {
        authenticate(&live, req.headers()).await
    };
    let resp = match user.as_ref() {
        Err(()) => {
            rec.decision = "auth-failure";
            proxy_auth_required(&id)
        }
        Ok(user) if method == Method::CONNECT => {
            if conn.tunnel.is_some() {
                error_response(
                    StatusCode::BAD_REQUEST,
                    "CONNECT inside a tunnel is not supported",
                    &id,
                )
            } else {
                connect::connect(
                    state.clone(),
                    &live,
                    conn.client,
                    user.clone(),
                    req,
                    &id,
                    &mut rec,
                )
                .await
            }
        }
        Ok(_) => match target {
            Some(target) => forward(&state, &live, &conn, req, &target, &id, &mut rec).await,
            // Origin-form at the listener: somebody treats the proxy as a web server.
            None => error_response(
                StatusCode::BAD_REQUEST,
                "this is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port",
                &id,
            ),
        },
    };
    let mut resp = resp;
    if conn.tunnel.is_none() && resp.status() == StatusCode::BAD_REQUEST {
        // A failed CONNECT or a misdirected request: the client is confused; close rather
        // than wait for its next request.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let user = user.ok().flatten();
    let user_label = user.as_deref().unwrap_or("-");
    state.metrics.requests.inc(&[rec.decision, user_label], 1);
    state.metrics.request_latency.observe(started.elapsed());
    tracing::info!(request_id = %id, client = %conn.client, user = user_label, method = %method, dest = %dest,
        status = resp.status().as_u16(), decision = rec.decision, "request");
    if auditing {
        state.audit(AuditEvent {
            request_id: id,
            user: user.map(|u| u.to_string()),
            client: conn.client.to_string(),
            method: method.to_string(),
            host: dest,
            path,
            decision: rec.decision.to_string(),
            reason: rec.reason,
            findings: rec.findings,
        });
    }
    Ok(resp)
}

/// `Ok(None)`: authentication is off. `Ok(Some(user))`: valid credentials.
/// `Err(())`: missing or wrong credentials (407).
async fn authenticate(live: &Arc<Live>, headers: &HeaderMap) -> Result<Option<Arc<str>>, ()> {
    let Some(auth) = &live.auth else {
        return Ok(None);
    };
    let Some(value) = headers.get(header::PROXY_AUTHORIZATION) else {
        return Err(());
    };
    if let Some(u) = auth.check_cached(value.as_bytes()) {
        return Ok(Some(u.into()));
    }
    // Argon2 costs milliseconds of CPU by design: keep it off the async workers.
    let (live, value) = (live.clone(), value.clone());
    let r = tokio::task::spawn_blocking(move || {
        live.auth
            .as_ref()
            .and_then(|a| a.check(Some(value.as_bytes())))
    })
    .await;
    match r {
        Ok(Some(u)) => Ok(Some(u.into())),
        _ => Err(()),
    }
}

fn proxy_auth_required(id: &str) -> Response<ProxyBody> {
    let mut r = error_response(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "proxy authentication required (Proxy-Authorization: Basic)",
        id,
    );
    r.headers_mut().insert(
        header::PROXY_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"clawguard\""),
    );
    r
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    state: &ProxyState,
    live: &Live,
    conn: &Conn,
    mut req: Request<Incoming>,
    target: &Target,
    id: &str,
    rec: &mut Record,
) -> Response<ProxyBody> {
    // Egress: a tunnel was checked at CONNECT; an absolute-form request is checked here.
    // A `bypass` destination only changes CONNECT (a blind tunnel, for pinned clients);
    // a plain-HTTP request to it is still inspected: nothing is pinned there.
    let (addrs, floor) = match &conn.tunnel {
        Some(c) => (c.addrs.clone(), c.floor),
        None => match live
            .cfg
            .egress
            .resolve_and_check(&target.host, target.port)
            .await
        {
            Err(d) => {
                rec.deny(&d);
                return error_response(StatusCode::FORBIDDEN, &d.to_string(), id);
            }
            Ok(a) => (Arc::from(a.addrs), a.findings),
        },
    };
    let websocket = req.version() == Version::HTTP_11 && is_websocket(req.headers());
    // Taken before the request is consumed: resolves once our 101 reaches the client.
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (parts, incoming) = req.into_parts();
    let Some(uri) = target.uri(parts.uri.path_and_query()) else {
        return error_response(StatusCode::BAD_REQUEST, "unusable request target", id);
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers, websocket);
    if parts.version == Version::HTTP_2 {
        join_cookies(&mut headers);
    }

    let engine = &live.engine;
    let cap = live.cfg.max_inspect_bytes;
    let (would, headers, body) = {
        let collected = match collect_capped(incoming, cap).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(request_id = %id, error = %e, "client body read failed");
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "could not read the request body",
                    id,
                );
            }
        };
        let inspect_started = Instant::now();
        let (verdict, pass_body) = {
            let info = RequestInfo {
                method: &parts.method,
                uri: &uri,
                host: &target.host,
                port: target.port,
                headers: &headers,
                client: conn.client,
                request_id: id,
                floor,
            };
            match collected {
                Collected::Complete(b) => {
                    state
                        .metrics
                        .bytes_inspected
                        .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    let (v, report) = engine.inspect_report(&info, &b);
                    rec.inspection(&report, engine.mode(), &state.metrics);
                    (v, body::full(b))
                }
                Collected::TooLarge { prefix, rest } => {
                    tracing::info!(request_id = %id, cap, "body larger than the inspection cap");
                    let (v, report) = engine.too_large_report(&info);
                    rec.inspection(&report, engine.mode(), &state.metrics);
                    (
                        v,
                        Prefixed::new(prefix, rest)
                            .map_err(body::BoxError::from)
                            .boxed_unsync(),
                    )
                }
            }
        };
        state
            .metrics
            .inspect_latency
            .observe(inspect_started.elapsed());
        match verdict {
            Verdict::Pass { would } => (would, headers, pass_body),
            Verdict::Rewrite {
                headers: mut h,
                body,
            } => {
                strip_hop_by_hop(&mut h, websocket);
                (None, h, body::full(body))
            }
            Verdict::Respond(r) => {
                let mut r = r.map(body::full);
                if let Ok(v) = HeaderValue::from_str(id) {
                    r.headers_mut().entry("x-clawguard-request-id").or_insert(v);
                }
                return r;
            }
        }
    };

    let mut up = Request::new(body);
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    *up.headers_mut() = headers;
    // The pool speaks whatever ALPN picked; an HTTP/2 version here would be refused on an
    // HTTP/1.1 connection.
    *up.version_mut() = Version::HTTP_11;
    let client = if websocket {
        &state.ws_client
    } else {
        &state.client
    };
    // The client's resolver hands out exactly these checked addresses (no second lookup).
    state.pins.pin(&target.host, &addrs);
    let upstream_timeout = std::time::Duration::from_secs(live.cfg.upstream_timeout_secs);
    let mut resp = match tokio::time::timeout(upstream_timeout, client.request(up)).await {
        Err(_) => {
            state.metrics.upstream_errors.inc(&["timeout"], 1);
            return error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream did not answer in time",
                id,
            );
        }
        Ok(Err(e)) => return upstream_error(&state.metrics, &e, id),
        Ok(Ok(r)) => r,
    };
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (Some(client_upgrade), true) = (client_upgrade, switching) {
        let server_upgrade = hyper::upgrade::on(&mut resp);
        let id = id.to_string();
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, server_upgrade) {
                Ok((c, s)) => {
                    let (mut c, mut s) = (TokioIo::new(c), TokioIo::new(s));
                    let r = tokio::io::copy_bidirectional(&mut c, &mut s).await;
                    tracing::debug!(request_id = %id, result = ?r, "websocket closed");
                }
                Err(e) => tracing::debug!(request_id = %id, error = %e, "upgrade failed"),
            }
        });
    }
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers, websocket && switching);
    rparts.version = Version::HTTP_11;
    if let Some(action) = would {
        rparts.headers.insert(
            "x-clawguard-would",
            HeaderValue::from_static(action.as_str()),
        );
    }
    Response::from_parts(rparts, body::stream(rbody))
}

fn upstream_error(
    metrics: &crate::metrics::Metrics,
    e: &hyper_util::client::legacy::Error,
    id: &str,
) -> Response<ProxyBody> {
    let mut timed_out = false;
    let mut tls = false;
    let mut root: &dyn std::error::Error = e;
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            tls |= io
                .get_ref()
                .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some());
        }
        tls |= err.downcast_ref::<rustls::Error>().is_some();
        root = err;
        cur = err.source();
    }
    let kind = if timed_out {
        "timeout"
    } else if tls {
        "tls"
    } else if e.is_connect() {
        "connect"
    } else {
        "protocol"
    };
    metrics.upstream_errors.inc(&[kind], 1);
    let message = if e.is_connect() {
        format!("cannot connect to upstream: {root}")
    } else {
        format!("upstream request failed: {root}")
    };
    let status = if timed_out {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    error_response(status, &message, id)
}

fn is_websocket(h: &HeaderMap) -> bool {
    h.get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

/// RFC 9110 §7.6.1: headers for this hop only. With `keep_upgrade` (a WebSocket handshake)
/// `Upgrade` and `Connection: upgrade` survive so the origin can switch protocols.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if !(keep_upgrade && name == header::UPGRADE) {
            h.remove(name);
        }
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("proxy-connection"),
        HeaderName::from_static("keep-alive"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        h.remove(name);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 origins expect one
/// (RFC 9113 §8.2.3).
fn join_cookies(h: &mut HeaderMap) {
    let all: Vec<&[u8]> = h
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if all.len() < 2 {
        return;
    }
    let joined = all.join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("proxy-connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-authenticate", "Basic"),
            ("authorization", "Bearer x"),
            ("content-type", "application/json"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["authorization", "content-type"]);
    }

    #[test]
    fn websocket_handshake_keeps_upgrade() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("sec-websocket-key", HeaderValue::from_static("k"));
        assert!(is_websocket(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["sec-websocket-key"], "k");
    }

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
    fn cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }
}
