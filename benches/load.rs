//! Load test: many concurrent keep-alive clients held through the real `clawguard run`
//! binary for a bounded time; counts errors and samples the proxy's RSS. Not part of CI
//! (a smoke run of a few clients under `cargo test`).
//!
//! ```text
//! cargo bench --bench load                      # 1000 clients, 60 s, intercepted HTTPS
//! CLAWGUARD_LOAD_CLIENTS=2000 CLAWGUARD_LOAD_SECS=120 cargo bench --bench load
//! CLAWGUARD_LOAD_PLAIN=1 cargo bench --bench load    # plain HTTP (absolute-form) instead
//! CLAWGUARD_LOAD_CONFIG='max_buffered_bodies = 1024' cargo bench --bench load  # extra TOML
//! CLAWGUARD_BENCH_BIN=/path/to/clawguard cargo bench --bench load
//! ```
//!
//! Each client opens one connection (CONNECT + TLS to the proxy's leaf, or plain HTTP),
//! then loops: a 1 KB JSON `POST`, read the answer, pause 0–200 ms (so all clients stay
//! connected and active at once without saturating two cores), until the time is up.
//! A `503` with `Retry-After` is the proxy shedding load by design (`max_buffered_bodies`,
//! `body_budget_bytes`): the client waits as told and retries, and it is counted as
//! "shed", not as an error. Any other failure (connect, TLS, another status, connection
//! closed) is an error. RSS is the proxy's
//! `VmRSS`, sampled every second once every client is connected: "flat" means the last
//! samples are not above the first ones by more than noise.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

fn received(n: usize) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(format!("{{\"received\":{n}}}"))))
}

const ORIGIN: OriginSpec = OriginSpec {
    ca_name: "load origin CA",
    alpn: &[],
    answer: received,
};

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("connect to the proxy: {0}")]
    Connect(std::io::Error),
    #[error("CONNECT refused: {0}")]
    Refused(String),
    #[error("TLS with the proxy: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(hyper::Error),
    #[error("status {0}")]
    Status(u16),
    #[error("503 busy, retry after {0} s")]
    Busy(u64),
}

struct Client {
    proxy: SocketAddr,
    /// `None`: plain HTTP to `origin_plain`.
    tls: Option<(tokio_rustls::TlsConnector, u16)>,
    origin_plain: SocketAddr,
}

impl Client {
    async fn connect(&self) -> Result<(Sender, String, String), Failure> {
        let mut s = TcpStream::connect(self.proxy)
            .await
            .map_err(Failure::Connect)?;
        s.set_nodelay(true).map_err(Failure::Connect)?;
        let Some((connector, port)) = &self.tls else {
            let host = format!("127.0.0.1:{}", self.origin_plain.port());
            let uri = format!("http://{host}{PATH}");
            return Ok((handshake(s).await.map_err(Failure::Http)?, uri, host));
        };
        let host = format!("localhost:{port}");
        let head = connect_tunnel(&mut s, *port)
            .await
            .map_err(Failure::Connect)?;
        if !head.starts_with(b"HTTP/1.1 200") {
            return Err(Failure::Refused(String::from_utf8_lossy(&head).into()));
        }
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), s)
            .await
            .map_err(Failure::Tls)?;
        Ok((
            handshake(tls).await.map_err(Failure::Http)?,
            PATH.to_string(),
            host,
        ))
    }
}

async fn one(sender: &mut Sender, uri: &str, host: &str, body: &Bytes) -> Result<(), Failure> {
    sender.ready().await.map_err(Failure::Http)?;
    let req = Request::post(uri)
        .header("host", host)
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(Failure::Http)?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    resp.into_body().collect().await.map_err(Failure::Http)?;
    if let (503, Some(secs)) = (status, retry_after) {
        return Err(Failure::Busy(secs));
    }
    if status != 200 {
        return Err(Failure::Status(status));
    }
    Ok(())
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    requests: AtomicU64,
    shed: AtomicU64,
    errors: AtomicU64,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raise this process's open-file limit to its hard limit (the proxy, its child,
/// inherits it): 1000 clients need 1000 sockets here and 1000 at the origin.
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut lim = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let clients = env_or("CLAWGUARD_LOAD_CLIENTS", if bench { 1000 } else { 10 });
    let secs = env_or("CLAWGUARD_LOAD_SECS", if bench { 60 } else { 2 });
    let plain = std::env::var_os("CLAWGUARD_LOAD_PLAIN").is_some();
    raise_nofile();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let origin = start_origin(dir.path(), ORIGIN).await;
        let extra = std::env::var("CLAWGUARD_LOAD_CONFIG").unwrap_or_default();
        let proxy = Proxy::start(dir.path(), &origin.ca_pem, &extra);
        let tls = (!plain).then(|| (tls_client(&proxy.ca_der), origin.tls.port()));
        let client = Arc::new(Client {
            proxy: proxy.addr,
            tls,
            origin_plain: origin.plain,
        });
        let body = Bytes::from(format!(
            "{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
            "lorem ipsum dolor sit amet ".repeat(36)
        ));
        let counters = Arc::new(Counters::default());
        let rss_idle = proxy.rss_kib();
        let started = Instant::now();
        // Connections are opened over the first seconds (a burst of 1000 TLS handshakes
        // on two shared cores would time out in the client, not in the proxy).
        let ramp = Duration::from_secs((secs / 6).clamp(1, 10));
        let stop = started + ramp + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
        for i in 0..clients {
            let (client, body, counters, first_failure) = (
                client.clone(),
                body.clone(),
                counters.clone(),
                first_failure.clone(),
            );
            let delay = ramp.mul_f64(i as f64 / clients as f64);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let fail = |f: Failure| {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    first_failure
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| f.to_string());
                };
                let (mut sender, uri, host) = match client.connect().await {
                    Ok(c) => c,
                    Err(f) => return fail(f),
                };
                counters.connected.fetch_add(1, Ordering::Relaxed);
                let mut pause = 17 * (i + 1); // cheap per-client pseudo-random pauses
                while Instant::now() < stop {
                    match one(&mut sender, &uri, &host, &body).await {
                        Ok(()) => {}
                        Err(Failure::Busy(secs)) => {
                            counters.shed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(secs)).await;
                            continue;
                        }
                        Err(f) => return fail(f),
                    }
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    pause = (pause * 1103515245 + 12345) % (1 << 31);
                    tokio::time::sleep(Duration::from_millis(pause % 200)).await;
                }
            }));
        }
        // RSS once a second while the clients are held.
        let mut samples = Vec::new();
        let mut all_connected_at = None;
        while Instant::now() < stop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let connected = counters.connected.load(Ordering::Relaxed);
            if all_connected_at.is_none() && connected == clients {
                all_connected_at = Some(started.elapsed());
            }
            if started.elapsed() > ramp {
                samples.push((
                    started.elapsed().as_secs(),
                    connected,
                    counters.requests.load(Ordering::Relaxed),
                    proxy.rss_kib(),
                ));
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let requests = counters.requests.load(Ordering::Relaxed);
        let errors = counters.errors.load(Ordering::Relaxed);
        let shed = counters.shed.load(Ordering::Relaxed);
        println!(
            "clients {clients} ({}), held {secs} s after a {} s ramp",
            if plain {
                "plain HTTP"
            } else {
                "intercepted HTTPS"
            },
            ramp.as_secs()
        );
        println!(
            "connected {} (all by {:?}), requests {requests} ({:.0}/s), shed (503 + Retry-After, retried) {shed}, errors {errors}",
            counters.connected.load(Ordering::Relaxed),
            all_connected_at.map(|d| d.as_secs()),
            requests as f64 / elapsed
        );
        if let Some(f) = first_failure.lock().unwrap().as_ref() {
            println!("first failure: {f}");
        }
        println!("proxy RSS before load: {} MiB", rss_idle / 1024);
        println!("| s | clients connected | requests so far | proxy RSS MiB |");
        println!("|---|---|---|---|");
        let step = (samples.len() / 12).max(1);
        for (i, (s, c, r, rss)) in samples.iter().enumerate() {
            if i % step == 0 || i + 1 == samples.len() {
                println!("| {s} | {c} | {r} | {:.1} |", *rss as f64 / 1024.0);
            }
        }
        // Flat: the mean of the last quarter against the mean of the second quarter (the
        // first one still holds the ramp's TLS and allocator warm-up).
        let q = samples.len() / 4;
        if q > 0 {
            let mean = |s: &[(u64, u64, u64, u64)]| {
                s.iter().map(|x| x.3 as f64).sum::<f64>() / s.len() as f64 / 1024.0
            };
            let (early, late) = (mean(&samples[q..2 * q]), mean(&samples[3 * q..]));
            println!(
                "RSS second quarter {early:.1} MiB, last quarter {late:.1} MiB ({:+.1} %)",
                100.0 * (late - early) / early
            );
        }
        assert_eq!(errors, 0, "errors under load");
    });
}
