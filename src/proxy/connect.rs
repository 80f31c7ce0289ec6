//! `CONNECT host:port`: a blind tunnel for bypassed hosts, otherwise interception. After our
//! 200 the first byte decides: 0x16 (TLS handshake record) → terminate TLS with a minted leaf;
//! anything else → plain HTTP/1.1 (undici sends every `http://` request through CONNECT).

use super::body::{self, error_response, ProxyBody};
use super::forward::{handle, strip_brackets, Checked, Conn, Record, Target};
use super::{Live, ProxyState};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

const TLS_HANDSHAKE_RECORD: u8 = 0x16;

pub(crate) async fn connect(
    state: Arc<ProxyState>,
    live: &Live,
    client: SocketAddr,
    user: Option<Arc<str>>,
    req: Request<Incoming>,
    id: &str,
    rec: &mut Record,
) -> Response<ProxyBody> {
    let bad = |m: &str| error_response(StatusCode::BAD_REQUEST, m, id);
    let Some(authority) = req.uri().authority() else {
        return bad("CONNECT needs host:port");
    };
    let Some(port) = authority.port_u16() else {
        return bad("CONNECT needs host:port");
    };
    let host = strip_brackets(authority.host()).to_ascii_lowercase();
    if host.is_empty() {
        return bad("CONNECT needs host:port");
    }

    // Egress on the resolved addresses; everything after connects only to these.
    let allowed = match live.cfg.egress.resolve_and_check(&host, port).await {
        Ok(a) => a,
        Err(d) => {
            rec.deny(&d);
            return error_response(StatusCode::FORBIDDEN, &d.to_string(), id);
        }
    };
    let addrs: Arc<[SocketAddr]> = Arc::from(allowed.addrs);

    if allowed.bypass || live.bypassed(&host) {
        rec.decision = "bypass";
        // Connect before answering so a dead origin is a 502, not a silently closed tunnel.
        let connect_timeout = std::time::Duration::from_secs(live.cfg.connect_timeout_secs);
        let upstream =
            match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(&addrs[..]))
                .await
            {
                Err(_) => {
                    state.metrics.upstream_errors.inc(&["timeout"], 1);
                    return error_response(
                        StatusCode::GATEWAY_TIMEOUT,
                        "timed out connecting to upstream",
                        id,
                    );
                }
                Ok(Err(e)) => {
                    state.metrics.upstream_errors.inc(&["connect"], 1);
                    return error_response(
                        StatusCode::BAD_GATEWAY,
                        &format!("cannot connect to upstream: {e}"),
                        id,
                    );
                }
                Ok(Ok(s)) => s,
            };
        let tid = id.to_string();
        tokio::spawn(async move {
            let id = tid;
            match hyper::upgrade::on(req).await {
                Ok(up) => {
                    let mut up = TokioIo::new(up);
                    let mut upstream = upstream;
                    let r = tokio::io::copy_bidirectional(&mut up, &mut upstream).await;
                    tracing::debug!(request_id = %id, result = ?r, "bypass tunnel closed");
                }
                Err(e) => tracing::debug!(request_id = %id, error = %e, "upgrade failed"),
            }
        });
        tracing::info!(request_id = %id, host = %host, "bypass tunnel (not inspected)");
        return Response::new(body::empty());
    }

    rec.decision = "tunnel";
    let id = id.to_string();
    let checked = Checked {
        target: Target {
            https: false, // decided by the first byte in `intercept`
            host,
            port,
        },
        addrs,
        floor: allowed.findings,
    };
    let idle = std::time::Duration::from_secs(live.cfg.upstream_timeout_secs);
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(request_id = %id, error = %e, "upgrade failed");
                return;
            }
        };
        intercept(
            state,
            client,
            user,
            checked,
            idle,
            TokioIo::new(upgraded),
            &id,
        )
        .await;
    });
    Response::new(body::empty())
}

async fn intercept<IO>(
    state: Arc<ProxyState>,
    client: SocketAddr,
    user: Option<Arc<str>>,
    mut checked: Checked,
    idle: std::time::Duration,
    mut io: IO,
    id: &str,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A client that opens a tunnel and never speaks must not hold a task forever.
    let mut first = [0u8; 1];
    match tokio::time::timeout(idle, io.read(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    let mut io = Rewind {
        first: Some(first[0]),
        inner: io,
    };
    let tls = first[0] == TLS_HANDSHAKE_RECORD;
    if !tls && !first[0].is_ascii_uppercase() {
        // Neither a TLS ClientHello nor an HTTP request line (methods are upper-case
        // tokens): nothing here can be inspected. Fail closed like an undecodable body,
        // unless the operator chose fail_open or dry-run.
        let live = state.live();
        let relay = live.cfg.fail_open || live.cfg.mode == crate::config::Mode::DryRun;
        if !relay {
            tracing::warn!(request_id = %id, host = %checked.target.host, port = checked.target.port,
                "tunnel carries neither TLS nor HTTP: closed (uninspectable; fail_open or dry-run would relay it)");
            return;
        }
        tracing::warn!(request_id = %id, host = %checked.target.host, port = checked.target.port,
            "tunnel carries neither TLS nor HTTP: relayed uninspected (fail_open or dry-run)");
        let connect_timeout = std::time::Duration::from_secs(live.cfg.connect_timeout_secs);
        if let Ok(Ok(mut upstream)) = tokio::time::timeout(
            connect_timeout,
            tokio::net::TcpStream::connect(&checked.addrs[..]),
        )
        .await
        {
            let _ = tokio::io::copy_bidirectional(&mut io, &mut upstream).await;
        }
        return;
    }
    checked.target.https = tls;
    let host = checked.target.host.clone();
    let conn = Arc::new(Conn {
        client,
        tunnel: Some(checked),
        user,
    });
    let Some(watcher) = state.watcher() else {
        return; // shutting down
    };
    let svc = {
        let state = state.clone();
        service_fn(move |req| handle(state.clone(), conn.clone(), req))
    };
    if !tls {
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
        builder.http1().timer(TokioTimer::new());
        let c = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
        if let Err(e) = watcher.watch(c).await {
            tracing::debug!(request_id = %id, error = %e, "tunnelled connection ended");
        }
        return;
    }
    // The leaf names the CONNECT host (where requests really go), whatever SNI says.
    let cfg = match state.ca.server_config(&host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(request_id = %id, error = %e, "no certificate for host");
            return;
        }
    };
    let stream = match tokio::time::timeout(idle, tokio_rustls::TlsAcceptor::from(cfg).accept(io))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // Typically a client that does not trust our CA.
            tracing::info!(request_id = %id, host = %host, error = %e, "client TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let c = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    if let Err(e) = watcher.watch(c).await {
        tracing::debug!(request_id = %id, error = %e, "intercepted connection ended");
    }
}

/// Puts the peeked first byte back in front of the stream.
struct Rewind<T> {
    first: Option<u8>,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if buf.remaining() > 0 {
            if let Some(b) = self.first.take() {
                buf.put_slice(&[b]);
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewind_replays_the_peeked_byte() {
        let mut r = Rewind {
            first: Some(b'G'),
            inner: &b"ET /"[..],
        };
        let mut s = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut r, &mut s)
            .await
            .unwrap();
        assert_eq!(s, "GET /");
    }
}
