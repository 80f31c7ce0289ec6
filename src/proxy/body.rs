//! Bodies: the types every part of the proxy sends, and the read phase that buffers a
//! request body for inspection under limits no client can exceed.
//!
//! Limits (all from the config): a body must keep arriving (`body_idle_timeout_secs`
//! between chunks, at least `body_min_rate` bytes/s on average after that same grace,
//! and all of it within `body_deadline_secs`); buffered bodies share one global budget
//! (`body_budget_bytes`, at most `max_buffered_bodies` at once). Over the budget the
//! answer is `503` with `Retry-After`, never an allocation the machine cannot afford.

use super::refusal::Refusal;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

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

/// How fast a body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Longest gap between two chunks; also the grace before the minimum rate applies.
    pub idle: Duration,
    /// Bytes per second, averaged since the first byte was awaited (0 = no minimum).
    pub min_rate: u64,
    /// The whole body, however fast it trickles.
    pub deadline: Duration,
}

impl BodyLimits {
    pub fn from_config(cfg: &crate::config::Config) -> BodyLimits {
        BodyLimits {
            idle: Duration::from_secs(cfg.body_idle_timeout_secs),
            min_rate: cfg.body_min_rate,
            deadline: Duration::from_secs(cfg.body_deadline_secs),
        }
    }

    /// When the next chunk must have arrived, given `read` bytes since `start`.
    fn next_deadline(&self, start: Instant, last: Instant, read: u64) -> (Instant, &'static str) {
        let mut at = (last + self.idle, "no data for the idle timeout");
        let total = start + self.deadline;
        if total < at.0 {
            at = (total, "body deadline");
        }
        if self.min_rate > 0 {
            // The average stays above min_rate until start + read/min_rate (after the grace).
            let owed = Duration::from_secs_f64(read as f64 / self.min_rate as f64).max(self.idle);
            let rate = start + owed;
            if rate < at.0 {
                at = (rate, "below the minimum rate");
            }
        }
        at
    }
}

/// Memory for buffered request bodies, shared by all requests.
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    slots: Arc<Semaphore>,
    capacity: usize,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Holds a buffered body's share of the budget until the body is gone.
pub struct BudgetGuard {
    _slot: OwnedSemaphorePermit,
    bytes: Option<OwnedSemaphorePermit>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        let held = self.bytes.as_ref().map_or(0, |p| p.num_permits()) as u64;
        self.metrics
            .buffered_body_bytes
            .fetch_sub(held, std::sync::atomic::Ordering::Relaxed);
    }
}

impl BodyBudget {
    pub fn new(bytes: usize, slots: usize, metrics: Arc<crate::metrics::Metrics>) -> BodyBudget {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            slots: Arc::new(Semaphore::new(slots.min(Semaphore::MAX_PERMITS))),
            capacity: bytes,
            metrics,
        }
    }

    /// Bytes of buffered bodies right now.
    pub fn in_use(&self) -> usize {
        self.capacity.saturating_sub(self.bytes.available_permits())
    }

    fn admit(&self) -> Result<BudgetGuard, Refusal> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy("too many request bodies buffered at once"))?;
        Ok(BudgetGuard {
            _slot: slot,
            bytes: None,
            metrics: self.metrics.clone(),
        })
    }

    fn reserve(&self, guard: &mut BudgetGuard, n: usize) -> Result<(), Refusal> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| Refusal::Busy("request body budget exhausted"))?;
        let p = self
            .bytes
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Refusal::Busy("request body budget exhausted"))?;
        match &mut guard.bytes {
            Some(held) => held.merge(p),
            None => guard.bytes = Some(p),
        }
        self.metrics
            .buffered_body_bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn held(guard: &BudgetGuard) -> usize {
        guard.bytes.as_ref().map_or(0, |p| p.num_permits())
    }
}

/// The body a request arrived with, read up to the inspection cap.
pub enum Collected {
    /// All of it (`guard` holds its memory in the budget; `None` for an empty body).
    Complete {
        body: Bytes,
        guard: Option<BudgetGuard>,
    },
    /// Over the cap: what was read so far and the unread remainder.
    TooLarge {
        prefix: Bytes,
        rest: Incoming,
        guard: Option<BudgetGuard>,
    },
}

/// The read phase: buffer `body` until it ends or exceeds `cap` bytes, within `limits`
/// and the shared `budget`. Trailers are dropped.
pub async fn read(
    mut body: Incoming,
    cap: usize,
    limits: &BodyLimits,
    budget: &BodyBudget,
) -> Result<Collected, Refusal> {
    if body.is_end_stream() {
        return Ok(Collected::Complete {
            body: Bytes::new(),
            guard: None,
        });
    }
    // A declared length over the cap needs no buffering to know the answer.
    if body.size_hint().lower() > cap as u64 {
        return Ok(Collected::TooLarge {
            prefix: Bytes::new(),
            rest: body,
            guard: None,
        });
    }
    let mut guard = budget.admit()?;
    // Sized from Content-Length when there is one: growing by doubling would copy a
    // 64 KiB body five times over. Reserved up front so a budget refusal comes first.
    let hint = body.size_hint().lower() as usize; // <= cap, checked above
    budget.reserve(&mut guard, hint)?;
    let start = Instant::now();
    let mut last = start;
    let mut buf = BytesMut::new();
    loop {
        let (at, why) = limits.next_deadline(start, last, buf.len() as u64);
        let frame = match tokio::time::timeout_at(at, body.frame()).await {
            Err(_) => return Err(Refusal::BodyTimeout(why)),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "client body read failed");
                return Err(Refusal::BodyRead);
            }
            Ok(Some(Ok(f))) => f,
        };
        last = Instant::now();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.is_empty() && body.is_end_stream() && data.len() <= cap {
            // One frame, the common case: no copy.
            let extra = data.len().saturating_sub(BodyBudget::held(&guard));
            budget.reserve(&mut guard, extra)?;
            return Ok(Collected::Complete {
                body: data,
                guard: Some(guard),
            });
        }
        let after = buf.len() + data.len();
        let extra = after.min(cap + 1).saturating_sub(BodyBudget::held(&guard));
        budget.reserve(&mut guard, extra)?;
        if buf.is_empty() {
            buf.reserve(hint.max(data.len()));
        }
        buf.extend_from_slice(&data);
        if buf.len() > cap {
            return Ok(Collected::TooLarge {
                prefix: buf.freeze(),
                rest: body,
                guard: Some(guard),
            });
        }
    }
    Ok(Collected::Complete {
        body: buf.freeze(),
        guard: Some(guard),
    })
}

/// A body that keeps its budget share until it has been sent (or dropped).
pub struct Guarded<B> {
    inner: B,
    _guard: Option<BudgetGuard>,
}

impl<B> Guarded<B> {
    pub fn new(inner: B, guard: Option<BudgetGuard>) -> Guarded<B> {
        Guarded {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body + Unpin> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The already-read prefix followed by the rest of the stream: nothing lost, nothing
/// buffered beyond what inspection already read. The rest must keep arriving within
/// the idle timeout.
pub struct Prefixed {
    prefix: Option<Bytes>,
    rest: Incoming,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Prefixed {
    pub fn new(prefix: Bytes, rest: Incoming, idle: Duration) -> Prefixed {
        Prefixed {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
            idle,
            timer: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body idle for too long")]
pub struct IdleTimeout;

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        match Pin::new(&mut self.rest).poll_frame(cx) {
            Poll::Ready(r) => {
                self.timer = None;
                Poll::Ready(r.map(|f| f.map_err(BoxError::from)))
            }
            Poll::Pending => {
                let idle = self.idle;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(IdleTimeout)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
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

use std::future::Future;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_admits_until_full() {
        let b = BodyBudget::new(100, 2, Default::default());
        let mut g1 = b.admit().unwrap();
        b.reserve(&mut g1, 60).unwrap();
        let mut g2 = b.admit().unwrap();
        assert!(b.reserve(&mut g2, 50).is_err());
        assert!(b.admit().is_err(), "two slots only");
        assert_eq!(b.in_use(), 60);
        drop(g1);
        b.reserve(&mut g2, 50).unwrap();
        assert_eq!(b.in_use(), 50);
        assert_eq!(
            b.metrics
                .buffered_body_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            50
        );
    }

    #[test]
    fn deadlines() {
        let l = BodyLimits {
            idle: Duration::from_secs(10),
            min_rate: 1000,
            deadline: Duration::from_secs(300),
        };
        let t0 = Instant::now();
        // Nothing read yet: the idle timeout (which is also the rate grace).
        assert_eq!(l.next_deadline(t0, t0, 0).0, t0 + Duration::from_secs(10));
        // 50 kB read by t0+9: the rate allows until t0+50, the idle gap until t0+19.
        let t9 = t0 + Duration::from_secs(9);
        assert_eq!(
            l.next_deadline(t0, t9, 50_000).0,
            t9 + Duration::from_secs(10)
        );
        // 12 kB by t0+9: the average falls below 1 kB/s at t0+12.
        let (at, why) = l.next_deadline(t0, t9, 12_000);
        assert_eq!(
            (at, why),
            (t0 + Duration::from_secs(12), "below the minimum rate")
        );
        // Near the overall deadline.
        let late = t0 + Duration::from_secs(295);
        assert_eq!(
            l.next_deadline(t0, late, 10_000_000).0,
            t0 + Duration::from_secs(300)
        );
    }
}
