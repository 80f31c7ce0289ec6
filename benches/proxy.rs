//! Proxy overhead: requests/second and added latency through the real `clawguard run`
//! binary versus direct to a local origin, plus the proxy's CPU time per request.
//!
//! ```text
//! cargo bench --bench proxy            # full run (release), prints a Markdown table
//! cargo test --bench proxy             # smoke run: a few requests per scenario
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

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Sizes {
    warmup: usize,
    serial: usize,
    concurrency: usize,
    per_conn: usize,
}

const PATH: &str = "/v1/chat/completions";

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
    Bytes::from(body)
}

// ---------------------------------------------------------------------------------
// Origin

struct Origin {
    plain: SocketAddr,
    tls: SocketAddr,
    ca_pem: std::path::PathBuf,
    ca_der: CertificateDer<'static>,
}

async fn origin_handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let answer = format!(
        "{{\"id\":\"cmpl-1\",\"object\":\"chat.completion\",\"received\":{}}}",
        body.len()
    );
    let mut r = Response::new(Full::new(Bytes::from(answer)));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(r)
}

async fn serve<I>(io: I)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, hyper::service::service_fn(origin_handler))
        .await;
}

async fn start_origin(dir: &Path) -> Origin {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench origin CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_pem = dir.join("origin-ca.pem");
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    let ca_der = ca_cert.der().clone();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    // Like the real APIs: h2 and http/1.1 offered.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let tls_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tls_addr, plain) = (tls_l.local_addr().unwrap(), plain_l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((s, _)) = tls_l.accept().await {
            let _ = s.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(s).await {
                    serve(TokioIo::new(s)).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        while let Ok((s, _)) = plain_l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(serve(TokioIo::new(s)));
        }
    });
    Origin {
        plain,
        tls: tls_addr,
        ca_pem,
        ca_der,
    }
}

// ---------------------------------------------------------------------------------
// Proxy process

struct Proxy {
    child: std::process::Child,
    addr: SocketAddr,
    ca_der: CertificateDer<'static>,
}

impl Proxy {
    fn start(dir: &Path, origin_ca: &Path) -> Proxy {
        let cfg = dir.join("proxy.toml");
        // The origin is on loopback, which the egress policy denies by default.
        std::fs::write(&cfg, "[egress]\nallow_private = true\n").unwrap();
        let ca_dir = dir.join("proxy-ca");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
            .args(["run", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .arg("--ca-dir")
            .arg(&ca_dir)
            .arg("--upstream-ca")
            .arg(origin_ca)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start clawguard");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Drain the log (default level: one info line per request) so the proxy never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("clawguard listening on ") {
                    let _ = tx.send(a.trim().parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("proxy started");
        use rustls::pki_types::pem::PemObject;
        let ca_der = CertificateDer::from_pem_file(ca_dir.join("clawguard-ca.pem")).unwrap();
        Proxy {
            child,
            addr,
            ca_der,
        }
    }

    /// utime + stime of the proxy process, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesised command name; utime and stime are fields 14, 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks as f64 / hz
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

fn tls_client(root: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

async fn handshake<I>(io: I) -> Sender
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

impl Scenario<'_> {
    /// A connected sender and the request URI to use on it.
    async fn connect(&self) -> (Sender, http::Uri) {
        let o = self.origin;
        match (self.route, self.transport) {
            (Route::Direct, Transport::Plain) => {
                let s = TcpStream::connect(o.plain).await.unwrap();
                s.set_nodelay(true).unwrap();
                (handshake(s).await, PATH.parse().unwrap())
            }
            (Route::Direct, Transport::Https) => {
                let s = TcpStream::connect(o.tls).await.unwrap();
                s.set_nodelay(true).unwrap();
                let tls = tls_client(&o.ca_der)
                    .connect(ServerName::try_from("localhost").unwrap(), s)
                    .await
                    .unwrap();
                (handshake(tls).await, PATH.parse().unwrap())
            }
            (Route::Proxy, Transport::Plain) => {
                let s = TcpStream::connect(self.proxy.addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let uri = format!("http://127.0.0.1:{}{PATH}", o.plain.port());
                (handshake(s).await, uri.parse().unwrap())
            }
            (Route::Proxy, Transport::Https) => {
                let mut s = TcpStream::connect(self.proxy.addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let port = o.tls.port();
                s.write_all(
                    format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    head.push(s.read_u8().await.unwrap());
                }
                assert!(head.starts_with(b"HTTP/1.1 200"), "CONNECT refused");
                let tls = tls_client(&self.proxy.ca_der)
                    .connect(ServerName::try_from("localhost").unwrap(), s)
                    .await
                    .unwrap();
                (handshake(tls).await, PATH.parse().unwrap())
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

struct Measured {
    median_us: f64,
    p99_us: f64,
    rps: f64,
    requests: usize,
}

async fn measure(sc: &Scenario<'_>, body: &Bytes, sizes: &Sizes) -> Measured {
    let host = sc.host();
    // Concurrency 1: latency of each request on one warm keep-alive connection.
    let (mut sender, uri) = sc.connect().await;
    for _ in 0..sizes.warmup {
        one(&mut sender, &uri, &host, body).await;
    }
    let mut lat = Vec::with_capacity(sizes.serial);
    for _ in 0..sizes.serial {
        let t = Instant::now();
        one(&mut sender, &uri, &host, body).await;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(sender);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    // Concurrency N: N warm connections, each sending `per_conn` requests back to back.
    let mut conns = Vec::new();
    for _ in 0..sizes.concurrency {
        let (mut s, uri) = sc.connect().await;
        one(&mut s, &uri, &host, body).await;
        conns.push((s, uri));
    }
    let t = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(mut s, uri)| {
            let (host, body, n) = (host.clone(), body.clone(), sizes.per_conn);
            tokio::spawn(async move {
                for _ in 0..n {
                    one(&mut s, &uri, &host, &body).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = sizes.concurrency * sizes.per_conn;
    let rps = total as f64 / t.elapsed().as_secs_f64();
    Measured {
        median_us: pct(0.5),
        p99_us: pct(0.99),
        rps,
        requests: sizes.warmup + sizes.serial + sizes.concurrency * (sizes.per_conn + 1),
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes = if bench {
        Sizes {
            warmup: 200,
            serial: 3000,
            concurrency: 16,
            per_conn: 300,
        }
    } else {
        Sizes {
            warmup: 2,
            serial: 5,
            concurrency: 16,
            per_conn: 2,
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let origin = start_origin(dir.path()).await;
        let proxy = Proxy::start(dir.path(), &origin.ca_pem);
        println!(
            "| body | transport | route | median µs | p99 µs | added median µs | req/s @16 | % of direct | proxy CPU ms/req |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for size in [1024, 64 * 1024] {
            let body = llm_body(size);
            eprintln!("{} KB body: {} bytes of JSON", size / 1024, body.len());
            for transport in [Transport::Plain, Transport::Https] {
                let tname = match transport {
                    Transport::Plain => "HTTP",
                    Transport::Https => "HTTPS (intercepted)",
                };
                let mut direct: Option<Measured> = None;
                for route in [Route::Direct, Route::Proxy] {
                    let sc = Scenario {
                        transport,
                        route,
                        origin: &origin,
                        proxy: &proxy,
                    };
                    let cpu0 = proxy.cpu_seconds();
                    let m = measure(&sc, &body, &sizes).await;
                    let cpu = proxy.cpu_seconds() - cpu0;
                    let kb = format!("{} KB", size / 1024);
                    match (&direct, route) {
                        (None, Route::Direct) => {
                            println!(
                                "| {kb} | {tname} | direct | {:.0} | {:.0} | | {:.0} | | |",
                                m.median_us, m.p99_us, m.rps
                            );
                            direct = Some(m);
                        }
                        (Some(d), Route::Proxy) => {
                            println!(
                                "| {kb} | {tname} | proxy | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% | {:.3} |",
                                m.median_us,
                                m.p99_us,
                                m.median_us - d.median_us,
                                m.rps,
                                100.0 * m.rps / d.rps,
                                1e3 * cpu / m.requests as f64
                            );
                        }
                        _ => unreachable!(),
                    }
                }
            }
        }
    });
}
