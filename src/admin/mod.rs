//! The admin listener (moved out of `proxy/` so the console and admin auth grow here): `GET /metrics` (Prometheus text), `GET /healthz` (200 while
//! serving), `GET /readyz` (200 once rules and CA are loaded and the proxy listens),
//! `POST /reload` (re-read config and rules; 200, or 422 naming why the new one was
//! rejected while the old one keeps serving).
//!
//! Separate from the proxy listener so metrics and reloads are never reachable through
//! the proxy port, and a scrape never competes with a proxy request for a connection.

use crate::proxy::body::{self, ProxyBody};
use crate::proxy::ProxyState;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener, state: Arc<ProxyState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let st = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(st.clone(), req));
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
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn handle(
    state: Arc<ProxyState>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let json = "application/json";
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            state.metrics.render(),
        ),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => {
            if state.is_ready() {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".into(),
                )
            }
        }
        (&Method::POST, "/reload") => match state.reload().await {
            Ok(()) => text(StatusCode::OK, json, r#"{"reloaded":true}"#.into()),
            Err(e) => text(
                StatusCode::UNPROCESSABLE_ENTITY,
                json,
                serde_json::json!({"reloaded": false, "error": e.to_string()}).to_string(),
            ),
        },
        (_, "/reload") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            json,
            r#"{"error":"use POST"}"#.into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            json,
            r#"{"error":"not found; try /metrics, /healthz, /readyz, POST /reload"}"#.into(),
        ),
    })
}
