//! The admin listener (its own module, out of `proxy/`): the operator console (`GET /`
//! and its JSON under `/api/`), `GET /metrics` (Prometheus text), `GET /healthz` (200
//! while serving), `GET /readyz` (200 once rules and CA are loaded and the listener is
//! bound), `POST /reload` (re-read config and rules; 200, or 422 naming why the new one
//! was rejected while the old one keeps serving).
//!
//! Separate from the proxy listener so metrics and reloads are never reachable through
//! the proxy port, and a scrape never competes with a proxy request for a connection.
//! Authentication and CSRF rules: [`auth`].

pub mod auth;
pub mod console;

use crate::proxy::body::{self, ProxyBody};
use crate::proxy::ProxyState;
use auth::{AdminAuth, Refusal};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use auth::AdminAuthError;

/// Load the admin credentials of the current configuration and serve `listener` in
/// the background. Fails (so start-up fails) when the token file is unusable.
pub fn spawn(listener: TcpListener, state: Arc<ProxyState>) -> Result<(), AdminAuthError> {
    let live = state.live();
    let auth = Arc::new(AdminAuth::load(live.cfg.admin_token_file.as_deref())?);
    tokio::spawn(serve(listener, state, auth));
    Ok(())
}

pub async fn serve(listener: TcpListener, state: Arc<ProxyState>, auth: Arc<AdminAuth>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (st, au) = (state.clone(), auth.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(st.clone(), au.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(body::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Nothing here may be framed or cached by another site.
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const JSON: &str = "application/json";

fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// `+` and `%XX` decoding for one query value.
fn percent_decode(v: &str) -> String {
    let spaced = v.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// `POST /api/try`: the engine on the pasted text (bounded), on the blocking pool.
async fn try_text(live: Arc<crate::proxy::Live>, req: Request<Incoming>) -> Response<ProxyBody> {
    use http_body_util::BodyExt;
    let destination = query_param(req.uri(), "destination").unwrap_or_default();
    let body = http_body_util::Limited::new(req.into_body(), console::TRY_LIMIT);
    let text_bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                JSON,
                format!(
                    r#"{{"error":"paste at most {} bytes"}}"#,
                    console::TRY_LIMIT
                ),
            )
        }
    };
    let r =
        tokio::task::spawn_blocking(move || console::try_text(&live, &text_bytes, &destination))
            .await;
    match r {
        Ok(res) => text(
            StatusCode::OK,
            JSON,
            serde_json::to_string(&res).unwrap_or_default(),
        ),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            JSON,
            r#"{"error":"inspection failed"}"#.into(),
        ),
    }
}

fn refused(r: Refusal) -> Response<ProxyBody> {
    match r {
        Refusal::Unauthenticated => {
            let mut resp = text(
                StatusCode::UNAUTHORIZED,
                JSON,
                r#"{"error":"admin authentication required (Bearer token, or Basic)"}"#.into(),
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"clawguard admin\""),
            );
            resp
        }
        Refusal::CrossSite => text(
            StatusCode::FORBIDDEN,
            JSON,
            format!(
                r#"{{"error":"state-changing admin requests need the {} header and the same origin"}}"#,
                auth::CSRF_HEADER
            ),
        ),
    }
}

async fn handle(
    state: Arc<ProxyState>,
    auth: Arc<AdminAuth>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let path = req.uri().path().to_string();
    // Probes stay open: load balancers and service managers call them.
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => {
            return Ok(text(StatusCode::OK, "text/plain", "ok\n".into()));
        }
        (&Method::GET, "/readyz") => {
            return Ok(if state.is_ready() {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".into(),
                )
            });
        }
        _ => {}
    }
    let live = state.live();
    if auth.required(&live) {
        // Argon2 for user credentials costs milliseconds: not on the async workers.
        let (a, l, h) = (auth.clone(), live.clone(), req.headers().clone());
        let who = tokio::task::spawn_blocking(move || a.authenticate(&l, &h)).await;
        match who {
            Ok(Ok(_)) => {}
            Ok(Err(r)) => return Ok(refused(r)),
            Err(_) => return Ok(refused(Refusal::Unauthenticated)),
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Err(r) = auth::same_origin_write(req.headers()) {
            return Ok(refused(r));
        }
    }
    Ok(match (req.method(), path.as_str()) {
        (&Method::GET, "/") => {
            let mut r = text(
                StatusCode::OK,
                "text/html; charset=utf-8",
                console::PAGE.into(),
            );
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                     img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                ),
            );
            r
        }
        // Browsers ask for it; no icon, and no 404 in the console's error log.
        (&Method::GET, "/favicon.ico") => {
            text(StatusCode::NO_CONTENT, "image/x-icon", String::new())
        }
        (&Method::GET, "/console.js") => text(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            console::SCRIPT.into(),
        ),
        (&Method::GET, "/console.css") => text(
            StatusCode::OK,
            "text/css; charset=utf-8",
            console::STYLE.into(),
        ),
        (&Method::GET, "/api/decisions") => {
            let after = query_param(req.uri(), "after")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let snap = state.recent.as_ref().map(|r| r.snapshot(after));
            text(
                StatusCode::OK,
                JSON,
                serde_json::to_string(&snap).unwrap_or_else(|_| "null".into()),
            )
        }
        (&Method::GET, "/api/config") => text(
            StatusCode::OK,
            JSON,
            console::config_summary(&live).to_string(),
        ),
        (&Method::POST, "/api/try") => try_text(live, req).await,
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            state.metrics.render(),
        ),
        (&Method::POST, "/reload") => match state.reload().await {
            Ok(()) => text(StatusCode::OK, JSON, r#"{"reloaded":true}"#.into()),
            Err(e) => text(
                StatusCode::UNPROCESSABLE_ENTITY,
                JSON,
                serde_json::json!({"reloaded": false, "error": e.to_string()}).to_string(),
            ),
        },
        (_, "/reload") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            JSON,
            r#"{"error":"use POST"}"#.into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            JSON,
            r#"{"error":"not found; try /, /metrics, /healthz, /readyz, POST /reload"}"#.into(),
        ),
    })
}
