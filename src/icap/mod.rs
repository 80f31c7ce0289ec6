//! ICAP service (RFC 3507) for Squid fleets and ICAP appliances: `REQMOD` at
//! `icap://HOST:PORT/reqmod`, answering with the decision of the very same
//! [`Engine`](crate::detect::engine::Engine) and live configuration the proxy uses (one
//! [`ProxyState`]: rules, policy, reloads, audit log and metrics are shared code, not a
//! second implementation).
//!
//! Answers: `204` unchanged; `200` with the rewritten HTTP request (redaction, lengths
//! fixed); `200` with an HTTP response (block or egress denial: the origin is never
//! contacted). `OPTIONS` advertises `Preview`, `Allow: 204`, `Max-Connections` and an
//! `ISTag` that changes whenever a reload swaps the configuration, so clients drop
//! cached verdicts.
//!
//! Bounds: the ICAP head and the encapsulated HTTP head are capped
//! (`[icap] max_head_bytes`), bodies are buffered up to `max_inspect_bytes` (beyond it
//! the engine's too-large verdict applies: blocked in enforce mode, streamed back
//! unchanged when `fail_open` or dry-run), every read has a timeout, and connections
//! over `max_connections` get `503` and are closed. A malformed request gets a clear
//! 4xx with an `X-ClawGuard-Error` header; only that connection is closed, and only
//! when its framing is lost.
//!
//! What ICAP cannot do here: the client (Squid) connects to the origin, so egress is
//! checked on the host *name* and IP literals only (no DNS pinning); dry-run cannot mark
//! responses with `X-ClawGuard-Would` (REQMOD never sees the response).

pub mod wire;

use crate::audit::{AuditEvent, AuditFinding};
use crate::config::{Config, ConfigSource, Mode};
use crate::detect::engine::{Inspection, RequestInfo, Verdict};
use crate::proxy::{Live, ProxyError, ProxyState};
use crate::tls::CertificateAuthority;
use bytes::Bytes;
use serde::Deserialize;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use wire::{ChunkedReader, HttpHead, IcapHead, WireError};

/// The one service this server offers.
pub const SERVICE_PATH: &str = "/reqmod";
/// How long in-flight ICAP exchanges may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `[icap]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcapConfig {
    /// Where `clawguard icap` listens (`--listen` overrides).
    pub listen: SocketAddr,
    /// Concurrent connections; advertised as `Max-Connections`. More get `503`.
    pub max_connections: usize,
    /// Cap for the ICAP head and, separately, for the encapsulated HTTP head.
    pub max_head_bytes: usize,
    /// Body bytes asked for as a preview (`Preview:`); the whole body when it fits, so a
    /// small request costs one round trip.
    pub preview_bytes: usize,
    /// Seconds an idle persistent connection is kept.
    pub idle_timeout_secs: u64,
    /// Seconds one read inside a request may take.
    pub read_timeout_secs: u64,
    /// `Options-TTL`: how long a client may cache the OPTIONS answer (and its ISTag).
    pub options_ttl_secs: u64,
}

impl Default for IcapConfig {
    fn default() -> Self {
        IcapConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1344)),
            max_connections: 256,
            max_head_bytes: 64 * 1024,
            preview_bytes: 4096,
            idle_timeout_secs: 120,
            read_timeout_secs: 30,
            options_ttl_secs: 60,
        }
    }
}

impl IcapConfig {
    /// Values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("[icap] max_connections must be at least 1".into());
        }
        if self.max_head_bytes < 1024 {
            return Err("[icap] max_head_bytes must be at least 1024".into());
        }
        if self.idle_timeout_secs == 0 || self.read_timeout_secs == 0 {
            return Err("[icap] timeouts must be at least 1 second".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IcapError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "refusing to serve ICAP on {0} (not loopback): ICAP has no authentication; \
         set allow_unauthenticated = true and restrict who can reach the port"
    )]
    OpenListen(SocketAddr),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The `ISTag`: a per-process nonce plus a generation that moves on every reload.
/// Watches the live snapshot itself, so SIGHUP, `POST /reload` and `clawguard reload`
/// all change it.
struct ServiceTag {
    nonce: u32,
    seen: Mutex<(Arc<Live>, u64)>,
}

impl ServiceTag {
    fn new(live: Arc<Live>) -> ServiceTag {
        ServiceTag {
            nonce: rand::random(),
            seen: Mutex::new((live, 0)),
        }
    }

    /// Holding the last snapshot keeps its address from being reused by a later one.
    fn current(&self, live: &Arc<Live>) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&seen.0, live) {
            *seen = (live.clone(), seen.1 + 1);
        }
        format!("\"CG-{:08x}-{}\"", self.nonce, seen.1)
    }
}

/// The ICAP front end over a [`ProxyState`].
pub struct IcapService {
    state: Arc<ProxyState>,
    cfg: IcapConfig,
    slots: Arc<Semaphore>,
    tag: ServiceTag,
}

impl IcapService {
    /// `cfg`: the `[icap]` settings fixed at start (listen address, connection limit).
    pub fn new(state: Arc<ProxyState>, cfg: IcapConfig) -> Arc<IcapService> {
        let live = state.live();
        Arc::new(IcapService {
            slots: Arc::new(Semaphore::new(cfg.max_connections)),
            tag: ServiceTag::new(live),
            state,
            cfg,
        })
    }

    pub fn state(&self) -> &Arc<ProxyState> {
        &self.state
    }

    fn istag(&self, live: &Arc<Live>) -> String {
        self.tag.current(live)
    }
}

/// Serve ICAP connections until `shutdown` completes; then stop accepting, let idle
/// connections go and give busy ones [`SHUTDOWN_GRACE`].
pub async fn serve_with_shutdown(
    listener: TcpListener,
    svc: Arc<IcapService>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "icap accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = svc.slots.clone().try_acquire_owned() else {
            // Over Max-Connections: say so and close; the client opens another later.
            tokio::spawn(refuse_busy(svc.clone(), stream));
            continue;
        };
        let (svc, stop) = (svc.clone(), stop_rx.clone());
        tokio::spawn(async move {
            connection(&svc, stream, peer, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = svc.cfg.max_connections as u32;
    if tokio::time::timeout(SHUTDOWN_GRACE, svc.slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("icap connections still open after the grace period; closing them");
    }
}

async fn refuse_busy(svc: Arc<IcapService>, mut stream: TcpStream) {
    let live = svc.state.live();
    let reply = status_reply(
        503,
        "Service Unavailable",
        &svc.istag(&live),
        "too many connections",
        true,
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&reply)).await;
}

/// What one exchange leaves the connection in.
enum After {
    KeepOpen,
    Close,
}

async fn connection(
    svc: &IcapService,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(16 * 1024, rd);
    loop {
        let (idle, limit) = (
            Duration::from_secs(svc.cfg.idle_timeout_secs),
            svc.cfg.max_head_bytes,
        );
        let head = tokio::select! {
            r = tokio::time::timeout(idle, wire::read_head(&mut rd, limit)) => r,
            _ = stop.changed() => return,
        };
        let raw = match head {
            Ok(Ok(Some(raw))) => raw,
            // Idle timeout, a clean close between requests, or a dead peer.
            Err(_) | Ok(Ok(None)) | Ok(Err(WireError::Eof | WireError::Io(_))) => return,
            Ok(Err(e)) => {
                let live = svc.state.live();
                let (code, reason) = e.status();
                let reply = status_reply(code, reason, &svc.istag(&live), &e.to_string(), true);
                let _ = wr.write_all(&reply).await;
                linger_close(&mut rd, &mut wr).await;
                return;
            }
        };
        let after = exchange(svc, &mut rd, &mut wr, &raw, peer).await;
        if matches!(after, After::Close) || *stop.borrow() {
            linger_close(&mut rd, &mut wr).await;
            return;
        }
    }
}

/// Close after an answer while the peer may still be sending: shut our side, then read
/// and discard for a moment, so the kernel does not reset the connection (and throw
/// away our error answer) because unread bytes were pending.
async fn linger_close<R, W>(rd: &mut R, wr: &mut W)
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    let mut sink = [0u8; 8192];
    let mut budget: usize = 1 << 20;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while budget > 0 {
        match tokio::time::timeout_at(deadline, rd.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => budget = budget.saturating_sub(n),
            _ => break,
        }
    }
}

/// Answer one ICAP request whose head is `raw`.
async fn exchange<R, W>(
    svc: &IcapService,
    rd: &mut BufReader<R>,
    wr: &mut W,
    raw: &[u8],
    peer: SocketAddr,
) -> After
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let live = svc.state.live();
    let istag = svc.istag(&live);
    let head = match wire::parse_head(raw) {
        Ok(h) => h,
        Err(e) => {
            // The head is framed (read up to its blank line), but an unparseable one may
            // announce a body we cannot find: close after answering.
            let (code, reason) = e.status();
            let _ = wr
                .write_all(&status_reply(code, reason, &istag, &e.to_string(), true))
                .await;
            return After::Close;
        }
    };
    // Without a parseable Encapsulated header we cannot tell where the next request
    // starts, so any error before the body is read closes the connection.
    let enc = head
        .header("encapsulated")
        .map(wire::parse_encapsulated)
        .transpose();
    let unframed = |enc: &Result<Option<wire::Encapsulated>, WireError>| match enc {
        Ok(Some(e)) => e.req_hdr_len > 0 || e.has_body,
        Ok(None) => false,
        Err(_) => true,
    };
    let close = head.wants_close();
    let refuse = |code: u16, reason: &'static str, why: &str, must_close: bool| {
        status_reply(code, reason, &istag, why, must_close || close)
    };
    if head.service() != SERVICE_PATH {
        let c = unframed(&enc);
        let _ = wr
            .write_all(&refuse(
                404,
                "ICAP Service Not Found",
                "the service is /reqmod",
                c,
            ))
            .await;
        return after(c || close);
    }
    let reply = match head.method.as_str() {
        "OPTIONS" => {
            if let Ok(Some(e)) = &enc {
                if e.has_body {
                    // An opt-body (never sent in practice): read and ignore it.
                    let mut c = ChunkedReader::new();
                    if drain(&mut c, rd, svc.read_timeout()).await.is_err() {
                        return After::Close;
                    }
                }
            }
            options_reply(svc, &istag, close)
        }
        "REQMOD" => {
            let enc = match enc {
                Ok(Some(e)) if e.req_hdr_len > 0 => e,
                Ok(_) => {
                    let _ = wr
                        .write_all(&refuse(
                            400,
                            "Bad Request",
                            "REQMOD needs Encapsulated: req-hdr=0, ...",
                            true,
                        ))
                        .await;
                    return After::Close;
                }
                Err(e) => {
                    let _ = wr
                        .write_all(&refuse(400, "Bad Request", &e.to_string(), true))
                        .await;
                    return After::Close;
                }
            };
            return reqmod(svc, rd, wr, &head, enc, &live, &istag, peer).await;
        }
        "RESPMOD" => {
            let c = unframed(&enc);
            let _ = wr
                .write_all(&refuse(
                    405,
                    "Method Not Allowed For Service",
                    "this service only does REQMOD",
                    c,
                ))
                .await;
            return after(c || close);
        }
        _ => {
            let c = unframed(&enc);
            let _ = wr
                .write_all(&refuse(
                    501,
                    "Method Not Implemented",
                    "use OPTIONS or REQMOD",
                    c,
                ))
                .await;
            return after(c || close);
        }
    };
    if wr.write_all(&reply).await.is_err() {
        return After::Close;
    }
    after(close)
}

fn after(close: bool) -> After {
    if close {
        After::Close
    } else {
        After::KeepOpen
    }
}

impl IcapService {
    fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.read_timeout_secs)
    }
}

/// Read and discard the rest of a chunked run.
async fn drain<R: tokio::io::AsyncBufRead + Unpin>(
    c: &mut ChunkedReader,
    rd: &mut R,
    t: Duration,
) -> Result<(), WireError> {
    while timed(t, c.next(rd)).await?.is_some() {}
    Ok(())
}

async fn timed<T>(
    t: Duration,
    f: impl std::future::Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    tokio::time::timeout(t, f)
        .await
        .map_err(|_| WireError::Timeout)?
}

fn options_reply(svc: &IcapService, istag: &str, close: bool) -> Vec<u8> {
    let mut r = String::from("ICAP/1.0 200 OK\r\n");
    let _ = write!(
        r,
        "Methods: REQMOD\r\nService: ClawGuard {} DLP\r\nISTag: {istag}\r\n\
         Max-Connections: {}\r\nOptions-TTL: {}\r\nAllow: 204\r\nPreview: {}\r\n\
         Transfer-Preview: *\r\nEncapsulated: null-body=0\r\n",
        env!("CARGO_PKG_VERSION"),
        svc.cfg.max_connections,
        svc.cfg.options_ttl_secs,
        svc.cfg.preview_bytes,
    );
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// An ICAP answer without an encapsulated message (errors, 204, 503).
fn status_reply(code: u16, reason: &str, istag: &str, why: &str, close: bool) -> Vec<u8> {
    let mut r = format!("ICAP/1.0 {code} {reason}\r\nISTag: {istag}\r\n");
    if code >= 400 {
        // Our own error texts name no request content; keep them header-safe anyway.
        let why: String = why
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let _ = write!(r, "X-ClawGuard-Error: {why}\r\n");
    }
    r.push_str("Encapsulated: null-body=0\r\n");
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Who and where, from the encapsulated request and Squid's `X-Client-*` headers.
struct Origin {
    uri: http::Uri,
    host: String,
    port: u16,
    client: SocketAddr,
    user: Option<String>,
}

fn origin_of(head: &IcapHead, http: &HttpHead, peer: SocketAddr) -> Result<Origin, &'static str> {
    let target = http.target.as_str();
    let uri: http::Uri = if http.method == http::Method::CONNECT {
        format!("https://{target}/")
            .parse()
            .map_err(|_| "unusable CONNECT target")?
    } else if target.starts_with('/') {
        // Origin-form (a transparent interception client): the Host header names it.
        let host = http
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or("origin-form request without Host")?;
        format!("http://{host}{target}")
            .parse()
            .map_err(|_| "unusable request target")?
    } else {
        target.parse().map_err(|_| "unusable request target")?
    };
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("request target without a host")?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let client = head
        .header("x-client-ip")
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .map_or(peer, |ip| SocketAddr::new(ip, 0));
    Ok(Origin {
        uri,
        host,
        port,
        client,
        user: client_user(head),
    })
}

/// `X-Client-Username` (Squid's default, plain) or `X-Authenticated-User` (the ICAP
/// extension draft: base64 of `Scheme://name`).
fn client_user(head: &IcapHead) -> Option<String> {
    use base64::Engine as _;
    if let Some(u) = head.header("x-client-username") {
        let u = u.trim();
        if !u.is_empty() && u != "-" {
            return Some(u.to_string());
        }
    }
    let raw = head.header("x-authenticated-user")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let name = text.rsplit_once("://").map_or(text.as_str(), |(_, n)| n);
    (!name.is_empty()).then(|| name.to_string())
}

#[allow(clippy::too_many_arguments)]
async fn reqmod<R, W>(
    svc: &IcapService,
    rd: &mut BufReader<R>,
    wr: &mut W,
    head: &IcapHead,
    enc: wire::Encapsulated,
    live: &Arc<Live>,
    istag: &str,
    peer: SocketAddr,
) -> After
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let started = Instant::now();
    let t = svc.read_timeout();
    let close = head.wants_close();
    let fail = |e: WireError| {
        let (code, reason) = e.status();
        status_reply(code, reason, istag, &e.to_string(), true)
    };
    if enc.req_hdr_len > svc.cfg.max_head_bytes {
        let _ = wr
            .write_all(&fail(WireError::HttpHeadTooLarge(svc.cfg.max_head_bytes)))
            .await;
        return After::Close;
    }
    let mut raw_http = vec![0u8; enc.req_hdr_len];
    if let Err(e) = timed(t, async {
        rd.read_exact(&mut raw_http).await.map_err(WireError::from)
    })
    .await
    {
        let _ = wr.write_all(&fail(e)).await;
        return After::Close;
    }
    let http = match wire::parse_http_head(&raw_http) {
        Ok(h) => h,
        Err(e) => {
            let _ = wr.write_all(&fail(e)).await;
            return After::Close;
        }
    };
    let origin = match origin_of(head, &http, peer) {
        Ok(o) => o,
        Err(why) => {
            let _ = wr
                .write_all(&status_reply(400, "Bad Request", istag, why, true))
                .await;
            return After::Close;
        }
    };
    let id = format!("{:016x}", rand::random::<u64>());
    let preview = head.preview();
    let cap = live.cfg.max_inspect_bytes;

    // Egress on the name (and IP literals): Squid, not us, connects to the origin.
    let literal: Vec<SocketAddr> = crate::egress::parse_ip_host(&origin.host)
        .map(|ip| vec![SocketAddr::new(ip, origin.port)])
        .unwrap_or_default();
    let egress = live.cfg.egress.check(&origin.host, origin.port, &literal);

    // Read the preview (or the whole body without one), up to the cap.
    let mut body = if enc.has_body {
        match read_first(rd, cap, preview.is_some(), t).await {
            Ok(b) => b,
            Err(e) => {
                let _ = wr.write_all(&fail(e)).await;
                return After::Close;
            }
        }
    } else {
        Body::Complete(Bytes::new())
    };
    // `100 Continue` was sent: the client now expects a full answer (no 204 unless
    // it allowed one).
    let mut continued = false;
    let mut audit = Audited {
        id: id.clone(),
        decision: "invalid",
        reason: None,
        findings: Vec::new(),
    };

    if let Err(denied) = &egress {
        audit.decision = "deny";
        audit.reason = Some(denied.to_string());
        let resp = json_response(http::StatusCode::FORBIDDEN, &denied.to_string(), &id);
        // Answering a preview early is allowed (the client sends no more); an unread
        // remainder of a body sent without preview forces a close.
        let must_close = close || matches!(body, Body::TooLarge { .. });
        let r = wr
            .write_all(&response_reply(istag, &resp, must_close))
            .await;
        let _ = wr.flush().await;
        finish(svc, &origin, &http, audit, started);
        return after(must_close || r.is_err());
    }

    // A preview of a request that announces a body over the cap: decide now, unread.
    if let Body::PreviewOnly(p) = &body {
        let too_big = http
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > cap as u64);
        body = if too_big {
            Body::TooLarge {
                prefix: p.clone(),
                reader: ChunkedReader::new(),
            }
        } else {
            if wr
                .write_all(b"ICAP/1.0 100 Continue\r\n\r\n")
                .await
                .is_err()
            {
                return After::Close;
            }
            let _ = wr.flush().await;
            continued = true;
            match read_rest(rd, p.clone(), cap, t).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = wr.write_all(&fail(e)).await;
                    return After::Close;
                }
            }
        };
    }
    // Only a preview that was not continued may be answered without reading the rest.
    let preview_pending = preview.is_some() && !continued;

    let info = InfoOwned {
        method: http.method.clone(),
        uri: origin.uri.clone(),
        host: origin.host.clone(),
        port: origin.port,
        headers: http.headers.clone(),
        client: origin.client,
        id: id.clone(),
        floor: egress.as_ref().ok().and_then(|a| a.findings),
    };
    let complete = match &body {
        Body::Complete(b) => Some(b.clone()),
        _ => None,
    };
    if let Some(b) = &complete {
        svc.state
            .metrics
            .bytes_inspected
            .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
    } else {
        tracing::info!(request_id = %id, cap, "icap body larger than the inspection cap");
    }
    let inspect_started = Instant::now();
    let engine_live = live.clone();
    // Inspection is CPU work: keep it off the async workers.
    let judged = tokio::task::spawn_blocking(move || {
        let view = info.view();
        match complete {
            Some(b) => engine_live.engine.inspect_report(&view, &b),
            None => engine_live.engine.too_large_report(&view),
        }
    })
    .await;
    svc.state
        .metrics
        .inspect_latency
        .observe(inspect_started.elapsed());
    let Ok((verdict, report)) = judged else {
        let _ = wr
            .write_all(&status_reply(
                500,
                "Server Error",
                istag,
                "inspection failed",
                true,
            ))
            .await;
        return After::Close;
    };
    audit.take(&report, live.engine.mode(), &svc.state);

    let mut must_close = close;
    let written: Result<(), WireError> = match (verdict, body) {
        (Verdict::Respond(resp), body) => {
            // Unread body remains unless a pending preview is being answered.
            must_close |= matches!(body, Body::TooLarge { .. }) && !preview_pending;
            wr.write_all(&response_reply(istag, &resp, must_close))
                .await
                .map_err(WireError::from)
        }
        (Verdict::Rewrite { headers, body: new }, Body::Complete(_)) => wr
            .write_all(&request_reply(istag, &http, headers, &new, close))
            .await
            .map_err(WireError::from),
        (Verdict::Pass { .. }, Body::Complete(b)) => {
            let reply = if head.allows_204() || preview_pending {
                status_reply(204, "No Content", istag, "", close)
            } else {
                request_reply(istag, &http, http.headers.clone(), &b, close)
            };
            wr.write_all(&reply).await.map_err(WireError::from)
        }
        (Verdict::Pass { .. }, Body::TooLarge { prefix, mut reader }) => {
            if preview_pending {
                // 204 in answer to a preview: the client forwards its own copy.
                wr.write_all(&status_reply(204, "No Content", istag, "", close))
                    .await
                    .map_err(WireError::from)
            } else {
                stream_back(wr, rd, istag, &http, prefix, &mut reader, t).await
            }
        }
        (Verdict::Rewrite { .. }, _) | (Verdict::Pass { .. }, Body::PreviewOnly(_)) => {
            // The engine never rewrites a body it did not see, and a preview is
            // continued or replaced above; answer rather than assume.
            must_close = true;
            wr.write_all(&status_reply(
                500,
                "Server Error",
                istag,
                "internal state error",
                true,
            ))
            .await
            .map_err(WireError::from)
        }
    };
    let _ = wr.flush().await;
    finish(svc, &origin, &http, audit, started);
    if let Err(e) = &written {
        tracing::debug!(request_id = %id, error = %e, "icap answer not delivered");
    }
    after(must_close || written.is_err())
}

/// The encapsulated body as far as it was read.
enum Body {
    /// All of it.
    Complete(Bytes),
    /// Over the inspection cap: the part read so far; the rest is still on the wire,
    /// `reader` positioned inside the current run of chunks (or before the continuation
    /// when a preview has not been continued).
    TooLarge {
        prefix: Bytes,
        reader: ChunkedReader,
    },
    /// A preview ended (no `ieof`) and the rest has not been asked for yet.
    PreviewOnly(Bytes),
}

/// Read one run of chunks into `buf` up to `cap` bytes. `Ok(true)`: the run ended;
/// `Ok(false)`: the cap was reached with the run still going.
async fn read_run<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut ChunkedReader,
    rd: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
    t: Duration,
) -> Result<bool, WireError> {
    while let Some(piece) = timed(t, reader.next(rd)).await? {
        buf.extend_from_slice(&piece);
        if buf.len() > cap {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The first run: a preview (bounded by the cap: a preview larger than what we inspect
/// is refused) or, without one, the whole body.
async fn read_first<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    cap: usize,
    preview: bool,
    t: Duration,
) -> Result<Body, WireError> {
    let mut reader = ChunkedReader::new();
    let mut buf = Vec::new();
    let ended = read_run(&mut reader, rd, &mut buf, cap, t).await?;
    Ok(match (ended, preview) {
        (true, true) if !reader.ieof => Body::PreviewOnly(buf.into()),
        (true, _) => Body::Complete(buf.into()),
        (false, true) => return Err(WireError::Chunk),
        (false, false) => Body::TooLarge {
            prefix: buf.into(),
            reader,
        },
    })
}

/// The continuation after `100 Continue`, appended to the preview.
async fn read_rest<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    preview: Bytes,
    cap: usize,
    t: Duration,
) -> Result<Body, WireError> {
    let mut reader = ChunkedReader::new();
    let mut buf = preview.to_vec();
    Ok(if read_run(&mut reader, rd, &mut buf, cap, t).await? {
        Body::Complete(buf.into())
    } else {
        Body::TooLarge {
            prefix: buf.into(),
            reader,
        }
    })
}

/// Owned request facts, so the inspection can run on the blocking pool.
struct InfoOwned {
    method: http::Method,
    uri: http::Uri,
    host: String,
    port: u16,
    headers: http::HeaderMap,
    client: SocketAddr,
    id: String,
    floor: Option<crate::detect::rules::Action>,
}

impl InfoOwned {
    fn view(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: &self.method,
            uri: &self.uri,
            host: &self.host,
            port: self.port,
            headers: &self.headers,
            client: self.client,
            request_id: &self.id,
            floor: self.floor,
        }
    }
}

/// What one REQMOD came to, for metrics, the log line and the audit log.
struct Audited {
    id: String,
    decision: &'static str,
    reason: Option<String>,
    findings: Vec<AuditFinding>,
}

impl Audited {
    fn take(&mut self, r: &Inspection, mode: Mode, state: &ProxyState) {
        self.decision = crate::audit::decision_label(r.decision, mode);
        self.reason = r.error.clone();
        // Every finding, listed or not (`[inspection] max_findings` caps the list).
        for c in &r.counts {
            state
                .metrics
                .findings
                .inc(&[c.rule.as_str(), c.category.as_str()], c.count as u64);
        }
        if state.audit_enabled() {
            self.findings = r.findings.iter().map(AuditFinding::from).collect();
        }
    }
}

fn finish(svc: &IcapService, origin: &Origin, http: &HttpHead, a: Audited, started: Instant) {
    let state = &svc.state;
    let user = origin.user.as_deref().unwrap_or("-");
    state.metrics.requests.inc(&[a.decision, user], 1);
    state.metrics.request_latency.observe(started.elapsed());
    let dest = format!("{}:{}", origin.host, origin.port);
    tracing::info!(request_id = %a.id, client = %origin.client, user, method = %http.method,
        dest = %dest, decision = a.decision, via = "icap", "request");
    if state.audit_enabled() {
        let path = if http.method == http::Method::CONNECT {
            String::new()
        } else {
            origin.uri.path_and_query().map_or_else(
                || "/".to_string(),
                |p| crate::audit::path_without_query_values(p.as_str()),
            )
        };
        state.audit(AuditEvent {
            request_id: a.id,
            user: origin.user.clone(),
            client: origin.client.to_string(),
            method: http.method.to_string(),
            host: dest,
            path,
            decision: a.decision.to_string(),
            reason: a.reason,
            cause: None,
            findings: a.findings,
        });
    }
}

/// The proxy's error body shape: `{"error": ..., "request_id": ...}`.
fn json_response(status: http::StatusCode, message: &str, id: &str) -> http::Response<Bytes> {
    let body = serde_json::json!({ "error": message, "request_id": id }).to_string();
    let mut r = http::Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn write_headers(out: &mut Vec<u8>, headers: &http::HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// ICAP 200 around an HTTP message: `hdr` (the serialized HTTP head) and `body`.
fn encapsulate(istag: &str, kind: &str, hdr: &[u8], body: Option<&[u8]>, close: bool) -> Vec<u8> {
    let mut out = format!("ICAP/1.0 200 OK\r\nISTag: {istag}\r\n").into_bytes();
    let section = match body {
        Some(b) if !b.is_empty() => "body",
        _ => "null",
    };
    let enc = if section == "null" {
        format!("Encapsulated: {kind}-hdr=0, null-body={}\r\n", hdr.len())
    } else {
        format!("Encapsulated: {kind}-hdr=0, {kind}-body={}\r\n", hdr.len())
    };
    out.extend_from_slice(enc.as_bytes());
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(hdr);
    if let Some(b) = body.filter(|b| !b.is_empty()) {
        wire::write_chunk(&mut out, b);
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

/// 200 with an HTTP response for the client (block, denial): request satisfaction.
fn response_reply(istag: &str, resp: &http::Response<Bytes>, close: bool) -> Vec<u8> {
    let mut hdr = format!(
        "HTTP/1.1 {} {}\r\n",
        resp.status().as_u16(),
        resp.status().canonical_reason().unwrap_or("Blocked")
    )
    .into_bytes();
    let mut headers = resp.headers().clone();
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(resp.body().len()),
    );
    headers.remove(http::header::TRANSFER_ENCODING);
    write_headers(&mut hdr, &headers);
    encapsulate(istag, "res", &hdr, Some(resp.body()), close)
}

fn request_head(http: &HttpHead, headers: &http::HeaderMap) -> Vec<u8> {
    let mut hdr = format!(
        "{} {} HTTP/1.{}\r\n",
        http.method, http.target, http.minor_version
    )
    .into_bytes();
    write_headers(&mut hdr, headers);
    hdr
}

/// 200 with the (rewritten or echoed) HTTP request; Content-Length set to the body sent.
fn request_reply(
    istag: &str,
    http: &HttpHead,
    mut headers: http::HeaderMap,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    if !headers.contains_key(http::header::HOST) {
        if let Some(h) = http.headers.get(http::header::HOST) {
            headers.insert(http::header::HOST, h.clone());
        }
    }
    headers.remove(http::header::TRANSFER_ENCODING);
    if !body.is_empty() || headers.contains_key(http::header::CONTENT_LENGTH) {
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len()),
        );
    }
    encapsulate(
        istag,
        "req",
        &request_head(http, &headers),
        Some(body),
        close,
    )
}

/// A body over the cap that policy lets through, when the client must get it back
/// (no preview to answer with 204): echo it chunk by chunk as it arrives, so memory
/// stays at one piece.
#[allow(clippy::too_many_arguments)]
async fn stream_back<R, W>(
    wr: &mut W,
    rd: &mut R,
    istag: &str,
    http: &HttpHead,
    prefix: Bytes,
    reader: &mut ChunkedReader,
    t: Duration,
) -> Result<(), WireError>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hdr = request_head(http, &http.headers);
    let mut out = format!(
        "ICAP/1.0 200 OK\r\nISTag: {istag}\r\nEncapsulated: req-hdr=0, req-body={}\r\n\r\n",
        hdr.len()
    )
    .into_bytes();
    out.extend_from_slice(&hdr);
    wire::write_chunk(&mut out, &prefix);
    wr.write_all(&out).await?;
    while let Some(piece) = timed(t, reader.next(rd)).await? {
        let mut chunk = Vec::with_capacity(piece.len() + 16);
        wire::write_chunk(&mut chunk, &piece);
        wr.write_all(&chunk).await?;
    }
    wr.write_all(b"0\r\n\r\n").await?;
    Ok(())
}

/// Bind `[icap] listen` (or `listen`), load the shared state exactly as `run` does,
/// and serve until Ctrl-C or SIGTERM; SIGHUP reloads (and moves the ISTag).
///
/// Prints `clawguard icap listening on ADDR` (and the admin address) once ready.
pub async fn run(cfg: Config, source: ConfigSource) -> Result<(), IcapError> {
    let icap_cfg = cfg.icap.clone();
    if !icap_cfg.listen.ip().is_loopback() && !cfg.allow_unauthenticated {
        return Err(IcapError::OpenListen(icap_cfg.listen));
    }
    // The same state type as the proxy (rules, reload, audit, metrics). It carries the
    // CA too; an ICAP-only instance loads the fleet's CA like any other instance.
    let ca = Arc::new(CertificateAuthority::load_or_create(&cfg.ca_dir())?);
    let admin_addr = cfg.admin;
    let state = ProxyState::new(cfg, ca, Some(source))?;
    let listener = TcpListener::bind(icap_cfg.listen)
        .await
        .map_err(|source| IcapError::Bind {
            addr: icap_cfg.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    if let Some(a) = admin_addr {
        let l = TcpListener::bind(a)
            .await
            .map_err(|source| IcapError::Bind { addr: a, source })?;
        eprintln!("clawguard admin listening on {}", l.local_addr()?);
        crate::admin::spawn(l, state.clone()).map_err(ProxyError::from)?;
    }
    crate::proxy::reload_on_sighup(state.clone());
    let svc = IcapService::new(state.clone(), icap_cfg);
    state.set_ready();
    eprintln!("clawguard icap listening on {addr}");
    serve_with_shutdown(listener, svc, crate::proxy::shutdown_signal()).await;
    state.close_audit().await;
    Ok(())
}
