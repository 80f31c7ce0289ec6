//! CONNECT: the route phase approves `host:port`, the proxy answers `200`, and the
//! tunnel's first byte decides what it carries:
//!
//! - `0x16` (a TLS handshake record): a `bypass` destination gets a blind tunnel (for
//!   certificate-pinned clients); anything else is intercepted with a leaf minted for the
//!   CONNECT host (whatever the SNI says).
//! - an upper-case letter (an HTTP method): plain HTTP, always intercepted and inspected,
//!   `bypass` or not (undici sends every `http://` request through CONNECT).
//! - anything else cannot be inspected: closed in enforce mode, relayed when the operator
//!   chose `fail_open` or dry-run.
//!
//! This module only opens and classifies tunnels; the connection layer
//! ([`super::listener`]) serves the HTTP inside them with the same pipeline.

use super::body::{self, ProxyBody};
use super::ctx::{Conn, RequestCtx, Route};
use super::pipeline::Stop;
use super::refusal::{self, Refusal};
use super::route;
use super::sni_fallback;
use super::state::ProxyState;
use http::{Request, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A tunnel the client was told it has, waiting for its first bytes.
pub(crate) struct PendingTunnel {
    upgrade: OnUpgrade,
    route: Route,
    /// For a `bypass` destination: the origin connection, opened before answering so a
    /// dead origin is a 502 rather than a silently closed tunnel.
    bypass: Option<TcpStream>,
    /// The connection the CONNECT arrived on (client address, connection slot).
    outer: Arc<Conn>,
    /// Who authenticated the CONNECT: the tunnel's requests are theirs.
    user: Option<Arc<str>>,
    pub span: tracing::Span,
}

/// The CONNECT phase.
pub(crate) async fn open<B>(
    state: &ProxyState,
    ctx: &mut RequestCtx,
    mut req: Request<B>,
) -> Result<(Response<ProxyBody>, PendingTunnel), Stop> {
    if ctx.conn.tunnel.is_some() {
        return Err(Refusal::BadRequest("CONNECT inside a tunnel is not supported").into());
    }
    let (target, written) = route::connect_target(req.uri())?;
    let approved = route::destination(state, ctx, target, &written).await?;
    let bypass = if approved.bypass {
        let timeout = Duration::from_secs(ctx.live.cfg.connect_timeout_secs);
        let dest = &approved.route.dest;
        match tokio::time::timeout(timeout, TcpStream::connect(&approved.route.addrs[..])).await {
            Err(_) => return Err(refusal::connect_timeout(dest).into()),
            Ok(Err(e)) => return Err(refusal::connect_failed(dest, &e).into()),
            Ok(Ok(s)) => Some(s),
        }
    } else {
        None
    };
    ctx.record.decision = if bypass.is_some() { "bypass" } else { "tunnel" };
    let pending = PendingTunnel {
        upgrade: hyper::upgrade::on(&mut req),
        route: approved.route,
        bypass,
        outer: ctx.conn.clone(),
        user: ctx.user.clone(),
        span: tracing::Span::current(),
    };
    Ok((Response::new(body::empty()), pending))
}

/// A tunnel whose first bytes said "HTTP", in the clear or inside TLS we terminate.
pub(crate) enum Established {
    Plain(Rewind<TokioIo<Upgraded>>, Arc<Conn>),
    Tls(
        Box<tokio_rustls::server::TlsStream<Rewind<TokioIo<Upgraded>>>>,
        Arc<Conn>,
    ),
    /// TLS for a client whose SNI rustls refuses (HTTP/1.1 only; see [`sni_fallback`]).
    OpenSsl(
        Box<tokio_openssl::SslStream<Rewind<TokioIo<Upgraded>>>>,
        Arc<Conn>,
    ),
}

/// Wait for the tunnel, read its first byte and act on it. `None`: the tunnel was
/// relayed blind or closed here; nothing to serve.
pub(crate) async fn establish(state: &ProxyState, p: PendingTunnel) -> Option<Established> {
    let live = state.live();
    let idle = Duration::from_secs(live.cfg.upstream_timeout_secs);
    let mut io = match p.upgrade.await {
        Ok(u) => TokioIo::new(u),
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return None;
        }
    };
    // A client that opens a tunnel and never speaks must not hold a task forever.
    let mut first = [0u8; 1];
    match tokio::time::timeout(idle, io.read(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return None,
    }
    let tls = first[0] == TLS_HANDSHAKE_RECORD;
    let mut peeked = first.to_vec();
    if tls {
        // The whole first record: its ClientHello tells whether rustls will accept it.
        let read = sni_fallback::read_record(&mut io, &mut peeked);
        if !matches!(tokio::time::timeout(idle, read).await, Ok(Ok(()))) {
            return None;
        }
    }
    let malformed_sni = tls && sni_fallback::needs_fallback(&peeked);
    let mut io = Rewind::new(peeked, io);
    let dest = p.route.dest.clone();
    let bypass = match (tls, p.bypass) {
        (true, Some(upstream)) => Ok(upstream),
        (_, other) => Err(other.is_some()),
    };
    if let Ok(mut upstream) = bypass {
        tracing::info!(dest = %dest, "bypass tunnel (TLS, not inspected)");
        let r = tokio::io::copy_bidirectional(&mut io, &mut upstream).await;
        tracing::debug!(result = ?r, "bypass tunnel closed");
        return None;
    }
    if !tls && !first[0].is_ascii_uppercase() {
        // Neither a TLS ClientHello nor an HTTP request line (methods are upper-case
        // tokens): nothing here can be inspected. Fail closed like an undecodable body,
        // unless the operator chose fail_open or dry-run.
        if !(live.cfg.fail_open || live.dry_run()) {
            tracing::warn!(dest = %dest,
                "tunnel carries neither TLS nor HTTP: closed (uninspectable; fail_open or dry-run would relay it)");
            return None;
        }
        tracing::warn!(dest = %dest,
            "tunnel carries neither TLS nor HTTP: relayed uninspected (fail_open or dry-run)");
        let connect_timeout = Duration::from_secs(live.cfg.connect_timeout_secs);
        if let Ok(Ok(mut upstream)) =
            tokio::time::timeout(connect_timeout, TcpStream::connect(&p.route.addrs[..])).await
        {
            let _ = tokio::io::copy_bidirectional(&mut io, &mut upstream).await;
        }
        return None;
    }
    if matches!(bypass, Err(true)) {
        tracing::info!(dest = %dest, "bypass host, but the tunnel carries plain HTTP: intercepted and inspected");
    }
    let mut route = p.route;
    route.target.https = tls;
    let host = route.target.host.clone();
    let conn = Arc::new(Conn {
        client: p.outer.client,
        tunnel: Some(route),
        user: p.user,
        slot: p.outer.slot.clone(),
    });
    if !tls {
        return Some(Established::Plain(io, conn));
    }
    // The leaf names the CONNECT host (where requests really go), whatever SNI says.
    let leaf = match state.ca.leaf(&host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no certificate for host");
            return None;
        }
    };
    if malformed_sni {
        // rustls refuses a ClientHello whose SNI is not a host name (`host:port`, as the
        // `hey` load generator sends); the CONNECT authority says where the client goes.
        tracing::debug!("malformed SNI: TLS by OpenSSL with the CONNECT host's leaf");
        return match tokio::time::timeout(idle, sni_fallback::accept(&leaf, io)).await {
            Ok(Ok(s)) => Some(Established::OpenSsl(Box::new(s), conn)),
            Ok(Err(e)) => {
                tracing::info!(dest = %dest, error = %e, "client TLS handshake failed");
                None
            }
            Err(_) => None,
        };
    }
    let cfg = leaf.server_config.clone();
    match tokio::time::timeout(idle, tokio_rustls::TlsAcceptor::from(cfg).accept(io)).await {
        Ok(Ok(s)) => Some(Established::Tls(Box::new(s), conn)),
        Ok(Err(e)) => {
            // Typically a client that does not trust our CA.
            tracing::info!(dest = %dest, error = %e, "client TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// Puts the peeked bytes back in front of the stream.
pub(crate) struct Rewind<T> {
    prefix: Vec<u8>,
    pos: usize,
    inner: T,
}

impl<T> Rewind<T> {
    fn new(prefix: Vec<u8>, inner: T) -> Rewind<T> {
        Rewind {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() && buf.remaining() > 0 {
            let n = buf.remaining().min(self.prefix.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
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
        let mut r = Rewind::new(b"G".to_vec(), &b"ET /"[..]);
        let mut s = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut r, &mut s)
            .await
            .unwrap();
        assert_eq!(s, "GET /");
    }
}
