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
