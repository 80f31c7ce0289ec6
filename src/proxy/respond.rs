//! The respond phase: the origin's answer goes back to the client, streamed, with
//! hop-by-hop headers removed; a `101` only for a WebSocket handshake the client asked
//! for and the origin completed; and, when the rewrite phase set one, a [`BodyFilter`]
//! over the streamed body.
//!
//! The filter is the hook for transformations of answers (restoring pseudonymized values
//! in an LLM's reply): it sees the response head once, then every data chunk in order,
//! and may hold bytes back between chunks (a placeholder split across two chunks) as long
//! as it releases them by the end.

use super::body::{self, BoxError, ProxyBody};
use super::ctx::RequestCtx;
use super::headers::{strip_hop_by_hop, websocket_accept};
use super::refusal::{Refusal, UpstreamKind};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A transformation of a streamed response body, installed per request by the rewrite
/// phase (`RequestCtx::response_filter`).
pub trait BodyFilter: Send + 'static {
    /// The response head, before anything is sent (`Content-Length` is already removed:
    /// a filter may change the length).
    fn on_head(&mut self, _parts: &mut http::response::Parts) {}
    /// One chunk of the body as the origin sent it (after transfer coding, before any
    /// content decoding); returns what to send now.
    fn on_data(&mut self, data: Bytes) -> Bytes;
    /// The origin's body ended: whatever is still held back.
    fn on_end(&mut self) -> Bytes {
        Bytes::new()
    }
}

/// `inner` with a [`BodyFilter`] applied, chunk by chunk.
struct Filtered<B> {
    inner: B,
    filter: Box<dyn BodyFilter>,
    done: bool,
}

impl<B> Body for Filtered<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let out = self.filter.on_data(data);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    self.done = true;
                    let rest = self.filter.on_end();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Whether the origin's `101` completes the client's WebSocket handshake.
fn completes_handshake(resp: &Response<Incoming>, key: &HeaderValue) -> bool {
    let h = resp.headers();
    let upgrade_ws = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let accept_ok = h
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|a| a.as_bytes() == websocket_accept(key.as_bytes()).as_bytes());
    upgrade_ws && accept_ok
}

/// What the response phase needs to know about the request's WebSocket handshake.
pub(crate) struct Handshake {
    /// The client's `Sec-WebSocket-Key`.
    pub key: HeaderValue,
    /// Resolves once our `101` reaches the client.
    pub client: hyper::upgrade::OnUpgrade,
}

/// The respond phase.
pub(crate) fn respond(
    ctx: &mut RequestCtx,
    mut resp: Response<Incoming>,
    handshake: Option<Handshake>,
    on_switch: impl FnOnce(hyper::upgrade::OnUpgrade, hyper::upgrade::OnUpgrade, &http::HeaderMap),
) -> Result<Response<ProxyBody>, Refusal> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let websocket = match (switching, handshake) {
        (false, _) => false,
        (true, Some(hs)) if completes_handshake(&resp, &hs.key) => {
            let server = hyper::upgrade::on(&mut resp);
            on_switch(hs.client, server, resp.headers());
            true
        }
        // A 101 the client did not ask for (or a broken one) would turn the connection
        // into a raw, uninspected pipe.
        (true, _) => {
            return Err(Refusal::Upstream {
                kind: UpstreamKind::Upgrade,
                cause: "unrequested protocol switch",
                message: "the origin switched protocols without completing a WebSocket handshake the client asked for".into(),
            })
        }
    };
    let (mut parts, incoming) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, websocket);
    parts.version = Version::HTTP_11;
    if let Some(action) = ctx.would {
        parts.headers.insert(
            "x-clawguard-would",
            HeaderValue::from_static(action.as_str()),
        );
    }
    let body = body::stream(incoming);
    let body = match ctx.response_filter.take() {
        None => body,
        Some(mut filter) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            filter.on_head(&mut parts);
            Filtered {
                inner: body,
                filter,
                done: false,
            }
            .boxed_unsync()
        }
    };
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upper-cases, holding back a trailing `x` until the next chunk or the end.
    struct Upper {
        held: bool,
    }

    impl BodyFilter for Upper {
        fn on_data(&mut self, data: Bytes) -> Bytes {
            let mut s = String::new();
            if self.held {
                s.push('X');
                self.held = false;
            }
            let mut d = String::from_utf8(data.to_vec()).unwrap();
            if d.ends_with('x') {
                d.pop();
                self.held = true;
            }
            s.push_str(&d.to_uppercase());
            Bytes::from(s)
        }
        fn on_end(&mut self) -> Bytes {
            if self.held {
                Bytes::from_static(b"X")
            } else {
                Bytes::new()
            }
        }
    }

    #[tokio::test]
    async fn filters_see_every_chunk_and_flush_at_the_end() {
        let chunks: Vec<Result<Frame<Bytes>, BoxError>> = ["ab", "x", "cx"]
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::from(c))))
            .collect();
        let inner =
            http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync();
        let f = Filtered {
            inner,
            filter: Box::new(Upper { held: false }),
            done: false,
        };
        let out = f.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"ABXCX");
    }
}
