//! The inspect phase: the detection engine runs on a bounded pool of its own threads,
//! never on the async workers, so a pathological body occupies an inspection thread
//! while every other connection keeps being served.
//!
//! Two lanes: requests whose inspection cost is bounded by a small size (an identity-
//! encoded body of at most [`SMALL_BODY`] bytes) never queue behind large or
//! compressed ones, so a clean request completes promptly however long a hostile upload
//! takes to scan. Each lane has as many threads as the machine has cores (or
//! `inspect_threads`), and at most that many inspections run in it at once; further
//! requests wait (asynchronously) for a thread.
//!
//! The threads are plain OS threads (a rayon pool), not tokio's blocking pool: at
//! shutdown the process exits after the grace period even if a scan is still running,
//! instead of waiting for it.

use super::ctx::{RequestCtx, Route};
use super::refusal::Refusal;
use super::state::Live;
use crate::detect::engine::{Inspection, RequestInfo, Verdict};
use bytes::Bytes;
use http::{header, HeaderMap, Method, Uri};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Bodies up to this size (identity-encoded) go to the small lane.
pub const SMALL_BODY: usize = 256 * 1024;

struct Lane {
    pool: rayon::ThreadPool,
    permits: Arc<Semaphore>,
}

impl Lane {
    fn new(name: &'static str, threads: usize) -> Lane {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("clawguard-{name}-{i}"))
            .panic_handler(|_| tracing::error!("inspection panicked; the request is refused"))
            .build()
            .expect("spawning inspection threads");
        Lane {
            pool,
            permits: Arc::new(Semaphore::new(threads)),
        }
    }
}

/// The inspection threads.
pub struct InspectPool {
    small: Lane,
    large: Lane,
}

impl InspectPool {
    /// `threads` per lane; 0 = one per core.
    pub fn new(threads: usize) -> InspectPool {
        let n = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        InspectPool {
            small: Lane::new("inspect", n),
            large: Lane::new("inspect-large", n),
        }
    }

    /// Run `job` on a lane's thread; `small` picks the lane.
    pub async fn run<T: Send + 'static>(
        &self,
        small: bool,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refusal> {
        let lane = if small { &self.small } else { &self.large };
        let _permit = lane
            .permits
            .acquire()
            .await
            .map_err(|_| Refusal::Internal("inspection pool closed"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        lane.pool.spawn(move || {
            let _in = span.enter();
            let _ = tx.send(job());
        });
        // A panicking job drops its sender: refuse (fail-closed) rather than forward.
        rx.await.map_err(|_| Refusal::Internal("inspection failed"))
    }
}

/// What the body read phase handed over.
pub(crate) enum ReadBody {
    Complete(Bytes),
    /// Over the inspection cap: only the URL and headers can be judged.
    TooLarge,
}

/// What inspection decided, with the headers handed back.
pub(crate) struct Inspected {
    pub verdict: Verdict,
    pub headers: HeaderMap,
    /// For an LLM API call: what its answer is restored with.
    pub restore: Option<crate::detect::pseudonymize::Restorer>,
}

/// The inspect phase: judge URL, headers and body on the pool; record the report.
pub(crate) async fn run(
    state: &super::state::ProxyState,
    ctx: &mut RequestCtx,
    route: &Route,
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    body: &ReadBody,
) -> Result<Inspected, Refusal> {
    let (pool, metrics) = (&state.inspect_pool, &state.metrics);
    let started = std::time::Instant::now();
    let small = match body {
        ReadBody::Complete(b) => {
            b.len() <= SMALL_BODY && !headers.contains_key(header::CONTENT_ENCODING)
        }
        ReadBody::TooLarge => true,
    };
    let job = Job {
        live: ctx.live.clone(),
        method: method.clone(),
        uri: uri.clone(),
        host: route.target.host.clone(),
        port: route.target.port,
        headers,
        client: ctx.conn.client,
        user: ctx.user.clone(),
        id: ctx.id.clone(),
        floor: route.floor,
        body: match body {
            ReadBody::Complete(b) => Some(b.clone()),
            ReadBody::TooLarge => None,
        },
    };
    let inspected_bytes = job.body.as_ref().map_or(0, |b| b.len() as u64);
    let (verdict, mut report, headers) = pool.run(small, move || job.inspect()).await?;
    metrics
        .bytes_inspected
        .fetch_add(inspected_bytes, std::sync::atomic::Ordering::Relaxed);
    metrics.inspect_latency.observe(started.elapsed());
    ctx.record_inspection(&report, metrics);
    Ok(Inspected {
        verdict,
        headers,
        restore: report.restore.take(),
    })
}

/// Everything one inspection needs, owned, so it can move to a pool thread.
struct Job {
    live: Arc<Live>,
    method: Method,
    uri: Uri,
    host: String,
    port: u16,
    headers: HeaderMap,
    client: SocketAddr,
    /// The authenticated proxy user: the scope of pseudonyms (else the client address).
    user: Option<std::sync::Arc<str>>,
    id: String,
    floor: Option<crate::detect::rules::Action>,
    body: Option<Bytes>,
}

impl Job {
    fn inspect(self) -> (Verdict, Inspection, HeaderMap) {
        let info = RequestInfo {
            method: &self.method,
            uri: &self.uri,
            host: &self.host,
            port: self.port,
            headers: &self.headers,
            client: self.client,
            request_id: &self.id,
            floor: self.floor,
        };
        let engine = &self.live.engine;
        let (verdict, report) = match &self.body {
            // The respond phase restores the answer (`Inspected::restore`), so LLM API
            // calls may be pseudonymized.
            Some(b) => engine.inspect_for_llm(&info, b, self.user.as_deref()),
            None => {
                tracing::info!(
                    cap = self.live.cfg.max_inspect_bytes,
                    "body larger than the inspection cap"
                );
                engine.too_large_for_llm(&info, self.user.as_deref())
            }
        };
        (verdict, report, self.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_large_lane_does_not_hold_up_the_small_one() {
        let pool = Arc::new(InspectPool::new(1));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let long = tokio::spawn(async move {
            p.run(false, move || {
                let _ = release_rx.recv();
                1
            })
            .await
        });
        // The large lane's only thread is busy; the small lane still answers.
        assert_eq!(pool.run(true, || 2).await.unwrap(), 2);
        release_tx.send(()).unwrap();
        assert_eq!(long.await.unwrap().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_panicking_job_is_refused_not_forwarded() {
        let pool = InspectPool::new(1);
        let r: Result<(), _> = pool.run(true, || panic!("boom")).await;
        assert!(r.is_err());
        assert_eq!(pool.run(true, || 3).await.unwrap(), 3);
    }
}
