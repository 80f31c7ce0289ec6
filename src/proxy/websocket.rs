//! WebSocket relay with inspection of what the client sends.
//!
//! After a completed handshake (see [`super::respond`]) the proxy reads the client's
//! frames (RFC 6455 §5), reassembles fragmented messages, inflates `permessage-deflate`
//! (RFC 7692) and asks the detection engine about every text and binary message before
//! any of its frames reach the origin:
//!
//! - clean (or dry-run): the client's frames go on byte for byte;
//! - redact: the message goes on as one new frame with the redacted payload, unless
//!   compression with context takeover is on (the origin's inflater would lose its
//!   window), in which case it is blocked;
//! - block, an undecodable message, or one over `max_inspect_bytes` (fail-closed): both
//!   sides get a close frame with code 1008 and a reason naming rules, never the value.
//!
//! Control frames pass at once. The origin's frames go back to the client unchanged,
//! frame by frame, so a close frame can be put between two of them.
//!
//! The frame parser is written here rather than taken from tungstenite because the relay
//! must forward the client's exact bytes and act between frames; it is small and fuzzed
//! (`fuzz/`).

use super::ctx::Route;
use super::state::{Live, ProxyState};
use crate::audit::{AuditEvent, AuditFinding};
use crate::detect::engine::{RequestInfo, Verdict};
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;

/// Close codes (RFC 6455 §7.4.1).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// One frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1: the message is compressed (permessage-deflate), on its first frame.
    pub rsv1: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes of header before the payload.
    pub header_len: usize,
}

impl FrameHeader {
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reserved bits set without an extension that defines them")]
    ReservedBits,
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("control frame fragmented or longer than 125 bytes")]
    BadControl,
    #[error("payload length with the most significant bit set")]
    BadLength,
    #[error("client frame not masked")]
    Unmasked,
    #[error("continuation without a message, or a new message inside one")]
    BadFragment,
    #[error("message larger than the inspection cap")]
    TooBig,
    #[error("compressed message does not inflate: {0}")]
    Inflate(String),
}

/// Parse a frame header from the start of `buf`. `Ok(None)`: more bytes needed.
/// `deflate`: permessage-deflate was negotiated (RSV1 allowed on data frames).
pub fn parse_header(buf: &[u8], deflate: bool) -> Result<Option<FrameHeader>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    let opcode = b0 & 0x0f;
    if b0 & 0x30 != 0 {
        return Err(FrameError::ReservedBits);
    }
    if !matches!(opcode, 0x0..=0x2 | 0x8..=0xa) {
        return Err(FrameError::ReservedOpcode(opcode));
    }
    let control = opcode & 0x8 != 0;
    // RSV1 only on the first frame of a compressed data message.
    if rsv1 && (!deflate || control || opcode == OP_CONTINUATION) {
        return Err(FrameError::ReservedBits);
    }
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    let mut pos = 2;
    let payload_len = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            pos = 4;
            u16::from_be_bytes([buf[2], buf[3]]) as u64
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            pos = 10;
            let n = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
            if n >> 63 != 0 {
                return Err(FrameError::BadLength);
            }
            n
        }
        n => n as u64,
    };
    if control && (!fin || payload_len > 125) {
        return Err(FrameError::BadControl);
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let m: [u8; 4] = buf[pos..pos + 4].try_into().expect("4 bytes");
        pos += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        rsv1,
        opcode,
        mask,
        payload_len,
        header_len: pos,
    }))
}

/// XOR `data` with `mask` (masking and unmasking are the same), starting at `offset`
/// into the frame's payload.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) % 4];
    }
}

/// A frame with `payload`: masked with a random key when it goes to the origin.
pub fn frame(opcode: u8, payload: &[u8], to_server: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let mask_bit = if to_server { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len() + if to_server { 4 } else { 0 };
    if to_server {
        let key: [u8; 4] = rand::random();
        out.extend_from_slice(&key);
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], key, 0);
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A close frame with `code` and `reason` (cut to the 123 bytes a control frame allows,
/// on a character boundary).
pub fn close_frame(code: u16, reason: &str, to_server: bool) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    frame(OP_CLOSE, &payload, to_server)
}

/// What `permessage-deflate` the origin accepted, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflate {
    /// `client_no_context_takeover`: every client message is compressed on its own.
    pub no_context_takeover: bool,
}

/// The extension the origin's `101` settled on (the client cannot use one the origin did
/// not accept).
pub fn negotiated_deflate(response: &HeaderMap) -> Option<Deflate> {
    let value = response
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|e| {
            e.split(';')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("permessage-deflate"))
        })?;
    Some(Deflate {
        no_context_takeover: value
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("client_no_context_takeover")),
    })
}

/// The client's compressor, mirrored: raw DEFLATE with the context carried across
/// messages unless `client_no_context_takeover`.
pub struct Inflater {
    inner: flate2::Decompress,
    reset_each: bool,
}

impl Inflater {
    pub fn new(d: Deflate) -> Inflater {
        Inflater {
            inner: flate2::Decompress::new(false),
            reset_each: d.no_context_takeover,
        }
    }

    /// Inflate one message's payload (RFC 7692 §7.2.2: append `00 00 ff ff`), at most
    /// `cap` bytes of output.
    pub fn inflate(&mut self, compressed: &[u8], cap: usize) -> Result<Vec<u8>, FrameError> {
        if self.reset_each {
            self.inner.reset(false);
        }
        let mut input = Vec::with_capacity(compressed.len() + 4);
        input.extend_from_slice(compressed);
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out: Vec<u8> = Vec::new();
        let mut consumed = 0;
        loop {
            if out.len() > cap {
                return Err(FrameError::TooBig);
            }
            if out.len() == out.capacity() {
                out.reserve((cap + 1 - out.len()).clamp(1, 64 * 1024));
            }
            let (in0, out0) = (self.inner.total_in(), out.len());
            self.inner
                .decompress_vec(&input[consumed..], &mut out, flate2::FlushDecompress::Sync)
                .map_err(|e| FrameError::Inflate(e.to_string()))?;
            consumed += (self.inner.total_in() - in0) as usize;
            let progressed = self.inner.total_in() != in0 || out.len() != out0;
            // Done when all input is in and the inflater stopped short of filling `out`.
            if consumed >= input.len() && out.len() < out.capacity() {
                break;
            }
            if !progressed {
                if consumed >= input.len() {
                    break;
                }
                return Err(FrameError::Inflate("stream does not progress".into()));
            }
        }
        if out.len() > cap {
            return Err(FrameError::TooBig);
        }
        Ok(out)
    }
}

/// Everything the relay needs to inspect and account for messages.
pub(crate) struct Session {
    pub state: Arc<ProxyState>,
    pub live: Arc<Live>,
    pub route: Route,
    pub request_id: String,
    pub client: SocketAddr,
    pub user: Option<Arc<str>>,
    pub deflate: Option<Deflate>,
}

/// What the engine decided about one message.
enum MessageVerdict {
    Forward,
    Replace(Bytes),
    Close(u16, String),
}

/// Relay a WebSocket connection: client → origin inspected, origin → client as is.
pub(crate) async fn relay(session: Session, client: Upgraded, server: Upgraded) {
    let (client_r, client_w) = tokio::io::split(TokioIo::new(client));
    let (server_r, server_w) = tokio::io::split(TokioIo::new(server));
    // Frames the client-side reader wants put in front of the client (a close).
    let (inject_tx, inject_rx) = mpsc::channel::<Vec<u8>>(1);
    let down = tokio::spawn(server_to_client(server_r, client_w, inject_rx));
    let up = client_to_server(&session, client_r, server_w, inject_tx).await;
    if let Err(e) = &up {
        tracing::debug!(error = %e, "websocket client side ended");
    }
    // The origin may still be sending (a close handshake); the client side ended.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), down).await;
}

async fn server_to_client<R, W>(mut r: R, mut w: W, mut inject: mpsc::Receiver<Vec<u8>>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        // At a frame boundary: an injected frame goes first.
        let header = loop {
            match parse_header(&buf, true) {
                Ok(Some(h)) => break Some(h),
                Ok(None) => {}
                Err(_) => break None, // the origin's framing is its own business
            }
            tokio::select! {
                // An injected close goes out even if the origin hung up at the same time.
                biased;
                f = inject.recv() => {
                    if let Some(f) = f {
                        let _ = w.write_all(&f).await;
                    }
                    let _ = w.shutdown().await;
                    return;
                }
                n = r.read_buf(&mut buf) => match n {
                    Ok(0) | Err(_) => {
                        let _ = w.write_all(&buf).await;
                        // The client side may still be deciding to close (inspection of
                        // its last message): wait for that before hanging up.
                        if let Ok(Some(f)) = tokio::time::timeout(
                            std::time::Duration::from_secs(5),
                            inject.recv(),
                        )
                        .await
                        {
                            let _ = w.write_all(&f).await;
                        }
                        let _ = w.shutdown().await;
                        return;
                    }
                    Ok(_) => {}
                },
            }
        };
        let Some(h) = header else {
            // Unparseable: stop being frame-aware, copy the rest as bytes.
            let _ = w.write_all(&buf).await;
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
            return;
        };
        let mut left = h.header_len as u64 + h.payload_len;
        while left > 0 {
            if buf.is_empty() {
                match r.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = w.shutdown().await;
                        return;
                    }
                    Ok(_) => {}
                }
            }
            let n = (buf.len() as u64).min(left) as usize;
            if w.write_all(&buf[..n]).await.is_err() {
                return;
            }
            buf.advance(n);
            left -= n as u64;
        }
    }
}

async fn client_to_server<R, W>(
    s: &Session,
    mut r: R,
    mut w: W,
    inject: mpsc::Sender<Vec<u8>>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cap = s.live.cfg.max_inspect_bytes;
    let mut inflater = s.deflate.map(Inflater::new);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // The message being assembled: its raw frames, unmasked payload, first header.
    let mut raw: Vec<u8> = Vec::new();
    let mut payload: Vec<u8> = Vec::new();
    let mut first: Option<FrameHeader> = None;
    let mut messages = 0u64;
    let close_both = |code: u16, reason: &str| {
        (
            close_frame(code, reason, false),
            close_frame(code, reason, true),
        )
    };
    loop {
        let h = loop {
            match parse_header(&buf, s.deflate.is_some()) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => {
                    let (to_client, to_server) =
                        close_both(CLOSE_PROTOCOL_ERROR, "ClawGuard: malformed frame");
                    tracing::warn!(error = %e, "websocket: malformed client frame; closed");
                    let _ = inject.send(to_client).await;
                    let _ = w.write_all(&to_server).await;
                    return Ok(());
                }
            }
            if r.read_buf(&mut buf).await? == 0 {
                let _ = w.shutdown().await;
                return Ok(());
            }
        };
        let Some(mask) = h.mask else {
            let (to_client, to_server) =
                close_both(CLOSE_PROTOCOL_ERROR, "ClawGuard: unmasked frame");
            let _ = inject.send(to_client).await;
            let _ = w.write_all(&to_server).await;
            return Ok(());
        };
        // A data message over the cap is refused before its payload is read.
        let pending = if h.is_control() {
            0
        } else {
            payload.len() as u64
        };
        if pending + h.payload_len > cap as u64 {
            return refuse_too_big(s, &mut w, &inject).await;
        }
        let total = h.header_len + h.payload_len as usize;
        while buf.len() < total {
            if r.read_buf(&mut buf).await? == 0 {
                let _ = w.shutdown().await;
                return Ok(());
            }
        }
        let frame_bytes = buf.split_to(total);
        if h.is_control() {
            w.write_all(&frame_bytes).await?;
            if h.opcode == OP_CLOSE {
                // Keep relaying until the client closes the TCP connection.
                continue;
            }
            continue;
        }
        match (h.opcode, first.is_some()) {
            (OP_CONTINUATION, false) | (OP_TEXT | OP_BINARY, true) => {
                let (to_client, to_server) =
                    close_both(CLOSE_PROTOCOL_ERROR, "ClawGuard: bad fragmentation");
                let _ = inject.send(to_client).await;
                let _ = w.write_all(&to_server).await;
                return Ok(());
            }
            _ => {}
        }
        if first.is_none() {
            first = Some(h);
        }
        let start = payload.len();
        payload.extend_from_slice(&frame_bytes[h.header_len..]);
        apply_mask(&mut payload[start..], mask, 0);
        raw.extend_from_slice(&frame_bytes);
        if !h.fin {
            continue;
        }
        let head = first.take().expect("set above");
        messages += 1;
        let message = std::mem::take(&mut payload);
        let frames = std::mem::take(&mut raw);
        let decoded = match (head.rsv1, inflater.as_mut()) {
            (true, Some(inf)) => inf.inflate(&message, cap),
            _ => Ok(message),
        };
        let verdict = match decoded {
            Ok(m) => inspect(s, head.opcode == OP_TEXT, m, messages, head.rsv1).await,
            Err(e) => uninspectable(s, &e),
        };
        match verdict {
            MessageVerdict::Forward => w.write_all(&frames).await?,
            MessageVerdict::Replace(p) => w.write_all(&frame(head.opcode, &p, true)).await?,
            MessageVerdict::Close(code, reason) => {
                let (to_client, to_server) = close_both(code, &reason);
                let _ = inject.send(to_client).await;
                let _ = w.write_all(&to_server).await;
                let _ = w.shutdown().await;
                return Ok(());
            }
        }
    }
}

async fn refuse_too_big<W: AsyncWrite + Unpin>(
    s: &Session,
    w: &mut W,
    inject: &mpsc::Sender<Vec<u8>>,
) -> std::io::Result<()> {
    match uninspectable(s, &FrameError::TooBig) {
        MessageVerdict::Close(code, reason) => {
            let _ = inject.send(close_frame(code, &reason, false)).await;
            let _ = w.write_all(&close_frame(code, &reason, true)).await;
        }
        // fail_open / dry-run: the rest of this connection is relayed uninspected.
        _ => {
            tracing::warn!("websocket message over the inspection cap: relayed uninspected (fail_open or dry-run)");
            let (to_client, to_server) = (
                close_frame(CLOSE_TOO_BIG, "ClawGuard: message too big", false),
                close_frame(CLOSE_TOO_BIG, "ClawGuard: message too big", true),
            );
            // Relaying a partial message blind would need the rest of the frame stream
            // copied verbatim; closing keeps the promise simpler and still loses nothing
            // silently.
            let _ = inject.send(to_client).await;
            let _ = w.write_all(&to_server).await;
        }
    }
    let _ = w.shutdown().await;
    Ok(())
}

/// A message that cannot be inspected: closed (fail-closed) unless fail_open or dry-run.
fn uninspectable(s: &Session, e: &FrameError) -> MessageVerdict {
    let open = s.live.cfg.fail_open || s.live.dry_run();
    s.state
        .metrics
        .websocket_messages
        .inc(&[if open { "uninspected" } else { "block" }], 1);
    if open && !matches!(e, FrameError::TooBig) {
        tracing::warn!(error = %e, "websocket message not inspected; forwarded (fail_open or dry-run)");
        return MessageVerdict::Forward;
    }
    tracing::warn!(error = %e, "websocket message not inspected; connection closed (fail-closed)");
    let code = if matches!(e, FrameError::TooBig) {
        CLOSE_TOO_BIG
    } else {
        CLOSE_POLICY_VIOLATION
    };
    MessageVerdict::Close(code, format!("ClawGuard: message not inspectable ({e})"))
}

/// Ask the engine about one complete message (on the inspection pool).
async fn inspect(
    s: &Session,
    text: bool,
    message: Vec<u8>,
    n: u64,
    compressed: bool,
) -> MessageVerdict {
    let live = s.live.clone();
    let target = s.route.target.clone();
    let floor = s.route.floor;
    let client = s.client;
    let id = format!("{}-ws{n}", s.request_id);
    let body = Bytes::from(message);
    let small = body.len() <= super::inspect::SMALL_BODY;
    let job = move || {
        let uri = target.uri(None).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let ct = if !text {
            "application/octet-stream"
        } else if body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[')
        {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        let info = RequestInfo {
            method: &Method::POST,
            uri: &uri,
            host: &target.host,
            port: target.port,
            headers: &headers,
            client,
            request_id: &id,
            floor,
        };
        live.engine.inspect_report(&info, &body)
    };
    let (verdict, report) = match s.state.inspect_pool.run(small, job).await {
        Ok(r) => r,
        Err(_) => {
            return MessageVerdict::Close(
                CLOSE_POLICY_VIOLATION,
                "ClawGuard: message could not be inspected".into(),
            )
        }
    };
    let metrics = &s.state.metrics;
    for c in &report.counts {
        metrics
            .findings
            .inc(&[c.rule.as_str(), c.category.as_str()], c.count as u64);
    }
    let rules: Vec<&str> = report.counts.iter().map(|c| c.rule.as_str()).collect();
    let (label, out) = match verdict {
        Verdict::Pass { would } => {
            if let Some(a) = would {
                tracing::warn!(rules = ?rules, "dry-run: would {} a websocket message", a.as_str());
            }
            ("allow", MessageVerdict::Forward)
        }
        Verdict::Rewrite { body, .. }
            if !compressed || s.deflate.is_some_and(|d| d.no_context_takeover) =>
        {
            ("redact", MessageVerdict::Replace(body))
        }
        Verdict::Rewrite { .. } | Verdict::Respond(_) => (
            "block",
            MessageVerdict::Close(
                CLOSE_POLICY_VIOLATION,
                format!("ClawGuard blocked a message: {}", rules.join(", ")),
            ),
        ),
    };
    metrics.websocket_messages.inc(&[label], 1);
    if label != "allow" {
        tracing::warn!(rules = ?rules, decision = label, "websocket message");
    }
    if label != "allow" || !report.findings.is_empty() {
        s.state.audit(AuditEvent {
            request_id: format!("{}-ws{n}", s.request_id),
            user: s.user.as_ref().map(|u| u.to_string()),
            client: s.client.to_string(),
            method: "WEBSOCKET".into(),
            host: s.route.dest.clone(),
            path: String::new(),
            decision: label.to_string(),
            reason: None,
            cause: None,
            findings: report
                .findings
                .iter()
                .map(|f| AuditFinding {
                    rule: f.rule.clone(),
                    category: f.category.as_str().to_string(),
                    location: "websocket".into(),
                    fingerprint: f.fingerprint.clone().unwrap_or_default(),
                    preview: f.preview.clone(),
                })
                .collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = frame(opcode_byte & 0x0f, payload, true);
        f[0] = opcode_byte;
        f
    }

    #[test]
    fn headers_parse_and_reject() {
        let f = frame(OP_TEXT, b"hello", true);
        let h = parse_header(&f, false).unwrap().unwrap();
        assert!(h.fin && h.mask.is_some());
        assert_eq!((h.opcode, h.payload_len, h.header_len), (OP_TEXT, 5, 6));
        for n in [1, 2, 5] {
            assert_eq!(parse_header(&f[..n], false), Ok(None));
        }
        let big = frame(OP_BINARY, &vec![0u8; 70_000], false);
        let h = parse_header(&big, false).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len), (70_000, 10));
        assert_eq!(
            parse_header(&[0xc1, 0x80, 0, 0, 0, 0], false),
            Err(FrameError::ReservedBits)
        );
        assert!(parse_header(&[0xc1, 0x80, 0, 0, 0, 0], true)
            .unwrap()
            .is_some());
        assert_eq!(
            parse_header(&[0x83, 0x80], false),
            Err(FrameError::ReservedOpcode(3))
        );
        assert_eq!(
            parse_header(&[0x09, 0x80], false),
            Err(FrameError::BadControl)
        );
        assert_eq!(
            parse_header(&[0x89, 0xfe, 0, 200], false),
            Err(FrameError::BadControl)
        );
        let mut huge = vec![0x82, 0xff];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse_header(&huge, false), Err(FrameError::BadLength));
    }

    #[test]
    fn masking_round_trips_and_close_reasons_are_bounded() {
        let f = masked(0x81, b"abc");
        let h = parse_header(&f, false).unwrap().unwrap();
        let mut p = f[h.header_len..].to_vec();
        apply_mask(&mut p, h.mask.unwrap(), 0);
        assert_eq!(p, b"abc");
        let c = close_frame(1008, &"é".repeat(100), false);
        let h = parse_header(&c, false).unwrap().unwrap();
        assert!(h.payload_len <= 125);
        assert!(std::str::from_utf8(&c[h.header_len + 2..]).is_ok());
    }

    #[test]
    fn deflate_negotiation_and_inflation() {
        let mut h = HeaderMap::new();
        assert_eq!(negotiated_deflate(&h), None);
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("permessage-deflate; client_no_context_takeover"),
        );
        let d = negotiated_deflate(&h).unwrap();
        assert!(d.no_context_takeover);
        // Compress two messages with one context, as a client with context takeover does.
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let mut msgs = Vec::new();
        for text in ["secret number one", "secret number one again"] {
            let mut out = Vec::with_capacity(256);
            c.compress_vec(text.as_bytes(), &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
            out.truncate(out.len() - 4);
            msgs.push(out);
        }
        let mut inf = Inflater::new(Deflate {
            no_context_takeover: false,
        });
        assert_eq!(inf.inflate(&msgs[0], 1000).unwrap(), b"secret number one");
        assert_eq!(
            inf.inflate(&msgs[1], 1000).unwrap(),
            b"secret number one again"
        );
        // A bomb stops at the cap.
        let mut c = flate2::Compress::new(flate2::Compression::best(), false);
        let mut bomb = Vec::with_capacity(100_000);
        c.compress_vec(
            &vec![b'a'; 1_000_000],
            &mut bomb,
            flate2::FlushCompress::Sync,
        )
        .unwrap();
        bomb.truncate(bomb.len() - 4);
        let mut inf = Inflater::new(d);
        assert_eq!(inf.inflate(&bomb, 10_000), Err(FrameError::TooBig));
    }
}
