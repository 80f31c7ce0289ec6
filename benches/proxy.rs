//! Proxy overhead: requests/second and added latency through the real `clawguard run`
//! binary versus direct to a local origin, plus the proxy's CPU time per request.
//!
//! ```text
//! cargo bench --bench proxy            # full run (release), prints a Markdown table
//! cargo test --bench proxy             # smoke run: a few requests per scenario
//! cargo bench --bench proxy -- 64KB-HTTPS             # only matching scenarios
//! CLAWGUARD_BENCH_BIN=/path/to/clawguard cargo bench --bench proxy   # another build
//! CLAWGUARD_BENCH_PII=24 cargo bench --bench proxy    # 24 mobile numbers in the prompt
//! CLAWGUARD_BENCH_PII=24 CLAWGUARD_BENCH_LLM=1 cargo bench --bench proxy
//!                               # … and the origin declared an LLM API: pseudonymized
//! ```
//!
//! Scenarios: 1 KB and 64 KB LLM-style JSON bodies (benign: nothing to block or
//! redact, so every request is fully inspected and forwarded), `POST` over keep-alive
//! HTTP/1.1, plain HTTP (absolute-form to the proxy) and intercepted HTTPS (`CONNECT`,
//! then TLS to the proxy's leaf; the proxy opens its own TLS connection to the origin).
//! Concurrency 1 gives median/p99 latency; concurrency 16 (16 connections) gives
//! throughput. Proxy CPU is utime+stime of the proxy process (/proc/PID/stat) over both
//! phases divided by the requests sent. The load generator, the origin and the proxy
//! all share the machine's cores.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use rustls::pki_types::ServerName;
use std::time::Instant;
use tokio::net::TcpStream;

struct Sizes {
    /// Requests on the serial connection before measuring (TLS, leaf minting, pools).
    warmup: usize,
    /// Direct and proxy alternate this many times.
    rounds: usize,
    /// Requests per round at concurrency 1.
    serial: usize,
    concurrency: usize,
    per_conn: usize,
}

// ---------------------------------------------------------------------------------
// Bodies

/// A chat-completions request of about `target` bytes: system prompt, a few turns, a
/// tool call with JSON `arguments`, tool definitions. Deterministic, and free of anything
/// the rule packs flag.
fn llm_body(target: usize) -> Bytes {
    const WORDS: &[&str] = &[
        "the",
        "agent",
        "reads",
        "files",
        "in",
        "workspace",
        "and",
        "summarises",
        "results",
        "for",
        "user",
        "before",
        "calling",
        "tools",
        "with",
        "care",
        "report",
        "status",
        "of",
        "build",
        "pipeline",
        "version",
        "2026.9.6",
        "returned",
        "3",
        "warnings",
        "when",
        "compiling",
        "module",
        "config",
        "update",
        "schedule",
        "meeting",
        "notes",
        "draft",
        "reply",
        "to",
        "message",
        "about",
        "quarterly",
        "numbers",
        "42",
        "percent",
        "growth",
        "`cargo",
        "test`",
        "passed;",
        "see",
        "README.md",
        "section",
        "Usage:",
        "{\"k\":1}",
    ];
    let mut x: u32 = 0x9E37_79B9;
    let mut prose = |n: usize| {
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            s.push_str(WORDS[x as usize % WORDS.len()]);
            s.push(if x % 11 == 0 { '\n' } else { ' ' });
        }
        s
    };
    let tools: Vec<serde_json::Value> = ["read", "write", "exec", "web_fetch"]
        .iter()
        .map(|name| {
            serde_json::json!({"type": "function", "function": {
                "name": name,
                "description": format!("{name}: run the {name} tool"),
                "parameters": {"type": "object", "properties": {
                    "path": {"type": "string"}, "timeout": {"type": "integer"}},
                    "required": ["path"]},
            }})
        })
        .collect();
    let skeleton = |system: &str| {
        serde_json::json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "max_tokens": 4096,
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "Check the build and tell me what failed."},
                {"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_0001", "type": "function",
                    "function": {"name": "exec",
                        "arguments": "{\"command\":\"cargo build --release\",\"timeout\":120}"},
                }]},
                {"role": "tool", "tool_call_id": "call_0001",
                    "content": "Finished `release` profile [optimized] target(s) in 3m 08s"},
            ],
            "tools": tools,
        })
        .to_string()
    };
    let base = skeleton("").len();
    let body = skeleton(&prose(target.saturating_sub(base + 8)));
    // CLAWGUARD_BENCH_PII=N: N mobile numbers in the user turn (redacted, or pseudonymized
    // with CLAWGUARD_BENCH_LLM=1), instead of a benign body.
    let pii: usize = std::env::var("CLAWGUARD_BENCH_PII")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if pii > 0 {
        let numbers: String = (0..pii)
            .map(|i| format!(" text 1380013{:04} about it.", 8000 + i))
            .collect();
        let mut doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        doc["messages"][1]["content"] =
            serde_json::json!(format!("Check the build and tell me what failed.{numbers}"));
        return Bytes::from(doc.to_string());
    }
    Bytes::from(body)
}

// ---------------------------------------------------------------------------------
// Origin

/// What a chat-completions API answers, in short.
fn chat_answer(received: usize) -> Response<Full<Bytes>> {
    let answer =
        format!("{{\"id\":\"cmpl-1\",\"object\":\"chat.completion\",\"received\":{received}}}");
    let mut r = Response::new(Full::new(Bytes::from(answer)));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

const ORIGIN: OriginSpec = OriginSpec {
    ca_name: "bench origin CA",
    // Like the real APIs: h2 and http/1.1 offered.
    alpn: &[b"h2", b"http/1.1"],
    answer: chat_answer,
};

// ---------------------------------------------------------------------------------
// Load generator: one keep-alive HTTP/1.1 connection per worker

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Plain,
    Https,
}

#[derive(Clone, Copy, PartialEq)]
enum Route {
    Direct,
    Proxy,
}

struct Scenario<'a> {
    transport: Transport,
    route: Route,
    origin: &'a Origin,
    proxy: &'a Proxy,
}

impl Scenario<'_> {
    /// A connected sender and the request URI to use on it.
    async fn connect(&self) -> (Sender, http::Uri) {
        let o = self.origin;
        match (self.route, self.transport) {
            (Route::Direct, Transport::Plain) => {
                let s = TcpStream::connect(o.plain).await.unwrap();
                s.set_nodelay(true).unwrap();
                (handshake(s).await.unwrap(), PATH.parse().unwrap())
            }
            (Route::Direct, Transport::Https) => {
                let s = TcpStream::connect(o.tls).await.unwrap();
                s.set_nodelay(true).unwrap();
                let tls = tls_client(&o.ca_der)
                    .connect(ServerName::try_from("localhost").unwrap(), s)
                    .await
                    .unwrap();
                (handshake(tls).await.unwrap(), PATH.parse().unwrap())
            }
            (Route::Proxy, Transport::Plain) => {
                let s = TcpStream::connect(self.proxy.addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let uri = format!("http://127.0.0.1:{}{PATH}", o.plain.port());
                (handshake(s).await.unwrap(), uri.parse().unwrap())
            }
            (Route::Proxy, Transport::Https) => {
                let mut s = TcpStream::connect(self.proxy.addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let head = connect_tunnel(&mut s, o.tls.port()).await.unwrap();
                assert!(head.starts_with(b"HTTP/1.1 200"), "CONNECT refused");
                let tls = tls_client(&self.proxy.ca_der)
                    .connect(ServerName::try_from("localhost").unwrap(), s)
                    .await
                    .unwrap();
                (handshake(tls).await.unwrap(), PATH.parse().unwrap())
            }
        }
    }

    fn host(&self) -> String {
        match self.transport {
            Transport::Plain => format!("127.0.0.1:{}", self.origin.plain.port()),
            Transport::Https => format!("localhost:{}", self.origin.tls.port()),
        }
    }
}

async fn one(sender: &mut Sender, uri: &http::Uri, host: &str, body: &Bytes) {
    sender.ready().await.unwrap();
    let req = Request::post(uri.clone())
        .header("host", host)
        .header("content-type", "application/json")
        .header("authorization", "Bearer bench-not-a-real-key")
        .header("content-length", body.len())
        .body(Full::new(body.clone()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(got.starts_with(b"{\"id\""));
}

/// Warm keep-alive connections for one route: one for the serial phase, `concurrency`
/// for the concurrent one.
struct Conns {
    serial: (Sender, http::Uri),
    parallel: Vec<(Sender, http::Uri)>,
}

async fn open(sc: &Scenario<'_>, body: &Bytes, sizes: &Sizes) -> Conns {
    let host = sc.host();
    let (mut s, uri) = sc.connect().await;
    for _ in 0..sizes.warmup {
        one(&mut s, &uri, &host, body).await;
    }
    let mut parallel = Vec::new();
    for _ in 0..sizes.concurrency {
        let (mut p, uri) = sc.connect().await;
        one(&mut p, &uri, &host, body).await;
        parallel.push((p, uri));
    }
    Conns {
        serial: (s, uri),
        parallel,
    }
}

/// Per-route results accumulated over the rounds.
#[derive(Default)]
struct Results {
    latencies_us: Vec<f64>,
    rps: Vec<f64>,
    requests: usize,
    proxy_cpu_s: f64,
}

impl Results {
    fn latency(&mut self, p: f64) -> f64 {
        self.latencies_us.sort_by(f64::total_cmp);
        let n = self.latencies_us.len();
        self.latencies_us[((n as f64 * p) as usize).min(n - 1)]
    }

    /// Median over the rounds: robust against a neighbour's burst on a shared machine.
    fn throughput(&mut self) -> f64 {
        self.rps.sort_by(f64::total_cmp);
        self.rps[self.rps.len() / 2]
    }
}

/// One round on one route: `serial` requests one after another, then `per_conn` requests
/// on each of the parallel connections at once.
async fn round(conns: &mut Conns, host: &str, body: &Bytes, sizes: &Sizes, out: &mut Results) {
    let (s, uri) = &mut conns.serial;
    for _ in 0..sizes.serial {
        let t = Instant::now();
        one(s, uri, host, body).await;
        out.latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let t = Instant::now();
    let tasks: Vec<_> = std::mem::take(&mut conns.parallel)
        .into_iter()
        .map(|(mut s, uri)| {
            let (host, body, n) = (host.to_string(), body.clone(), sizes.per_conn);
            tokio::spawn(async move {
                for _ in 0..n {
                    one(&mut s, &uri, &host, &body).await;
                }
                (s, uri)
            })
        })
        .collect();
    for t in tasks {
        conns.parallel.push(t.await.unwrap());
    }
    let n = sizes.concurrency * sizes.per_conn;
    out.rps.push(n as f64 / t.elapsed().as_secs_f64());
    out.requests += sizes.serial + n;
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench proxy -- 64KB-HTTPS` runs only the matching scenarios.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    let sizes = if bench {
        Sizes {
            warmup: 200,
            rounds: 9,
            serial: 400,
            concurrency: 16,
            per_conn: 40,
        }
    } else {
        Sizes {
            warmup: 2,
            rounds: 2,
            serial: 3,
            concurrency: 16,
            per_conn: 1,
        }
    };
    // CLAWGUARD_BENCH_ROUNDS=N: N rounds instead of the default. Two runs with different N
    // under `CLAWGUARD_BENCH_BIN=<callgrind wrapper>` give instructions per request as the
    // difference of the totals (start-up and rule compilation cancel out).
    let mut sizes = sizes;
    if let Some(n) = std::env::var("CLAWGUARD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        sizes.rounds = n;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let origin = start_origin(dir.path(), ORIGIN).await;
        // CLAWGUARD_BENCH_LLM=1: the origin is an LLM API host (pseudonymize + restore).
        let llm = if std::env::var_os("CLAWGUARD_BENCH_LLM").is_some() {
            "llm_hosts = [\"localhost\", \"127.0.0.1\"]\n"
        } else {
            ""
        };
        let proxy = Proxy::start(dir.path(), &origin.ca_pem, llm);
        println!(
            "| body | transport | route | median µs | p99 µs | added median µs | req/s @16 | % of direct | proxy CPU ms/req |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for size in [1024, 64 * 1024] {
            let body = llm_body(size);
            for transport in [Transport::Plain, Transport::Https] {
                let (tname, tag) = match transport {
                    Transport::Plain => ("HTTP", "HTTP"),
                    Transport::Https => ("HTTPS (intercepted)", "HTTPS"),
                };
                let kb = format!("{} KB", size / 1024);
                let name = format!("{}KB-{tag}", size / 1024);
                if !name.contains(&filter) {
                    continue;
                }
                eprintln!("{name}: {} bytes of JSON per request", body.len());
                let sc = |route| Scenario {
                    transport,
                    route,
                    origin: &origin,
                    proxy: &proxy,
                };
                let (direct_sc, proxy_sc) = (sc(Route::Direct), sc(Route::Proxy));
                let host = direct_sc.host();
                let mut dc = open(&direct_sc, &body, &sizes).await;
                let mut pc = open(&proxy_sc, &body, &sizes).await;
                let (mut d, mut p) = (Results::default(), Results::default());
                // Direct and proxy rounds interleaved, so both see the same neighbours.
                for _ in 0..sizes.rounds {
                    round(&mut dc, &host, &body, &sizes, &mut d).await;
                    let cpu0 = proxy.cpu_seconds();
                    round(&mut pc, &host, &body, &sizes, &mut p).await;
                    p.proxy_cpu_s += proxy.cpu_seconds() - cpu0;
                }
                let (dm, pm) = (d.latency(0.5), p.latency(0.5));
                let (drps, prps) = (d.throughput(), p.throughput());
                println!(
                    "| {kb} | {tname} | direct | {dm:.0} | {:.0} | | {drps:.0} | | |",
                    d.latency(0.99)
                );
                println!(
                    "| {kb} | {tname} | proxy | {pm:.0} | {:.0} | {:.0} | {prps:.0} | {:.0}% | {:.3} |",
                    p.latency(0.99),
                    pm - dm,
                    100.0 * prps / drps,
                    1e3 * p.proxy_cpu_s / p.requests as f64
                );
            }
        }
    });
}
