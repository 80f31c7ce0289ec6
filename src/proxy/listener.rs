//! The accept phase and the connection layer: admit a client connection (or refuse it
//! clearly when `max_connections` are open), back off when accepting fails (EMFILE), serve
//! HTTP on it with the pipeline, serve the tunnels CONNECT opens, and drain at shutdown.

use super::body::ProxyBody;
use super::connect::{self, Established, PendingTunnel};
use super::ctx::Conn;
use super::pipeline;
use super::state::ProxyState;
use super::ProxyError;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

/// Longest pause after a failed accept; doubles from 5 ms while failures repeat.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How long a client has to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve until `shutdown` completes, then stop accepting and give in-flight connections
/// `shutdown_grace_secs` to finish; after that the rest are dropped, scans included.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    state: Arc<ProxyState>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    if let Ok(a) = listener.local_addr() {
        state.add_own_listener(a);
    }
    tokio::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    loop {
        let (stream, client) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: the error repeats until something closes, so
                    // back off instead of spinning on it.
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                    state.metrics.accept_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = &mut shutdown => break,
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        backoff = Duration::ZERO;
        admit(&state, stream, client);
    }
    drop(listener);
    let graceful = state
        .graceful
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(g) = graceful {
        tracing::info!(connections = g.count(), "shutting down");
        let grace = Duration::from_secs(state.live().cfg.shutdown_grace_secs);
        if tokio::time::timeout(grace, g.shutdown()).await.is_err() {
            tracing::warn!("connections still open after the grace period; closing them");
        }
    }
    Ok(())
}

/// Take the connection if there is room for it; otherwise answer `503` and close.
fn admit(state: &Arc<ProxyState>, stream: TcpStream, client: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let Ok(slot) = state.connections.clone().try_acquire_owned() else {
        state
            .metrics
            .connections_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(client = %client, "connection refused: max_connections reached");
        tokio::spawn(refuse_connection(stream));
        return;
    };
    let conn = Arc::new(Conn {
        client,
        tunnel: None,
        user: None,
        slot: Some(Arc::new(slot)),
    });
    let st = state.clone();
    tokio::spawn(async move {
        serve_http(&st, TokioIo::new(stream), conn, true).await;
    });
}

/// A short, well-formed refusal for a connection over the limit.
async fn refuse_connection(mut stream: TcpStream) {
    const BODY: &str =
        r#"{"error":"too many connections to the proxy (max_connections); retry shortly"}"#;
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         x-clawguard-reason: busy\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(msg.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serve HTTP on `io` with the pipeline until the connection ends (or is upgraded).
/// `http1_only`: the listener and plain-HTTP tunnels; TLS tunnels also speak h2.
async fn serve_http<IO>(state: &Arc<ProxyState>, io: TokioIo<IO>, conn: Arc<Conn>, http1_only: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(watcher) = state.watcher() else {
        return; // shutting down
    };
    let client = conn.client;
    let st = state.clone();
    let svc = service_fn(move |req| service(st.clone(), conn.clone(), req));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = if http1_only {
        builder.http1_only()
    } else {
        builder
    };
    // The auto builder because hyper-util's graceful shutdown supports its upgradeable
    // connections.
    let c = builder.serve_connection_with_upgrades(io, svc);
    if let Err(e) = watcher.watch(c).await {
        tracing::debug!(client = %client, error = %e, "client connection ended");
    }
}

type ServiceFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

/// The service behind every connection. Boxed: a tunnel serves this same service on the
/// connection it opens, and that recursion needs a named, `Send` future type.
fn service(state: Arc<ProxyState>, conn: Arc<Conn>, req: Request<Incoming>) -> ServiceFuture {
    Box::pin(async move {
        let (resp, tunnel) = pipeline::handle(state.clone(), conn, req).await;
        if let Some(t) = tunnel {
            let span = t.span.clone();
            tokio::spawn(serve_tunnel(state, t).instrument(span));
        }
        Ok(resp)
    })
}

async fn serve_tunnel(state: Arc<ProxyState>, pending: PendingTunnel) {
    match connect::establish(&state, pending).await {
        Some(Established::Plain(io, conn)) => {
            serve_http(&state, TokioIo::new(io), conn, true).await
        }
        Some(Established::Tls(io, conn)) => {
            serve_http(&state, TokioIo::new(*io), conn, false).await
        }
        Some(Established::OpenSsl(io, conn)) => {
            serve_http(&state, TokioIo::new(*io), conn, true).await
        }
        None => {}
    }
}
