//! Body types shared by the listener, the tunnels and the upstream client, and the proxy's
//! own JSON error responses.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the proxy sends, to clients and to origins: streamed, never re-buffered.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(b: impl Into<Bytes>) -> ProxyBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

pub fn empty() -> ProxyBody {
    full(Bytes::new())
}

pub fn stream(b: Incoming) -> ProxyBody {
    b.map_err(BoxError::from).boxed_unsync()
}

/// A proxy-generated error: `{"error": "...", "request_id": "..."}`.
pub fn error_response(status: StatusCode, message: &str, request_id: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": message, "request_id": request_id }).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-clawguard-request-id", v);
    }
    resp
}

/// The body a request arrived with, read up to the inspection cap.
pub enum Collected {
    Complete(Bytes),
    /// Over the cap: what was read so far and the unread remainder.
    TooLarge {
        prefix: Bytes,
        rest: Incoming,
    },
}

/// Read `body` until it ends or exceeds `cap` bytes. Trailers are dropped.
pub async fn collect_capped(mut body: Incoming, cap: usize) -> Result<Collected, hyper::Error> {
    // A declared length over the cap needs no buffering to know the answer.
    if body.size_hint().lower() > cap as u64 {
        return Ok(Collected::TooLarge {
            prefix: Bytes::new(),
            rest: body,
        });
    }
    // Sized from Content-Length when there is one: growing by doubling would copy a
    // 64 KiB body five times over. A body that arrives in one frame is not copied.
    let hint = body.size_hint().lower() as usize; // <= cap, checked above
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buf.is_empty() {
                if body.is_end_stream() && data.len() <= cap {
                    return Ok(Collected::Complete(data));
                }
                buf.reserve(hint.max(data.len()));
            }
            buf.extend_from_slice(&data);
            if buf.len() > cap {
                return Ok(Collected::TooLarge {
                    prefix: buf.freeze(),
                    rest: body,
                });
            }
        }
    }
    Ok(Collected::Complete(buf.freeze()))
}

/// The already-read prefix followed by the rest of the stream: nothing lost, nothing
/// buffered beyond what inspection already read.
pub struct Prefixed {
    prefix: Option<Bytes>,
    rest: Incoming,
}

impl Prefixed {
    pub fn new(prefix: Bytes, rest: Incoming) -> Prefixed {
        Prefixed {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
        }
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let inner = self.rest.size_hint();
        let mut h = SizeHint::new();
        h.set_lower(inner.lower() + extra);
        if let Some(u) = inner.upper() {
            h.set_upper(u + extra);
        }
        h
    }
}
