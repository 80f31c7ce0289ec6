//! Shared by `benches/proxy.rs` and `benches/load.rs`: a local origin (plain HTTP and
//! HTTPS with a test CA of its own) that answers every `POST` with the size it received,
//! the real `clawguard run` binary in front of it, and the client side's connection set-up.
#![allow(dead_code)]

#[path = "../../tests/common/launch.rs"]
mod launch;
#[path = "../../tests/common/origin_cert.rs"]
mod origin_cert;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const PATH: &str = "/v1/chat/completions";

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The load generator's and the origin's runtime: two workers (the proxy, a separate
/// process, shares the machine with them), with rustls' provider installed.
pub fn runtime() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------
// Origin

pub struct Origin {
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub ca_pem: PathBuf,
    pub ca_der: CertificateDer<'static>,
}

/// How the origin is set up: its CA's name, the ALPN protocols it offers, and the answer
/// to a body of `n` bytes.
pub struct OriginSpec {
    pub ca_name: &'static str,
    pub alpn: &'static [&'static [u8]],
    pub answer: fn(usize) -> Response<Full<Bytes>>,
}

async fn serve<I>(io: I, answer: fn(usize) -> Response<Full<Bytes>>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let handler = move |req: Request<Incoming>| async move {
        let body = req.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>(answer(body.len()))
    };
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, hyper::service::service_fn(handler))
        .await;
}

pub async fn start_origin(dir: &Path, spec: OriginSpec) -> Origin {
    let cert = origin_cert::origin_cert(dir, spec.ca_name, &["localhost"]);
    let mut tls = cert.server;
    tls.alpn_protocols = spec.alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let tls_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tls, plain) = (tls_l.local_addr().unwrap(), plain_l.local_addr().unwrap());
    let answer = spec.answer;
    tokio::spawn(async move {
        while let Ok((s, _)) = tls_l.accept().await {
            let _ = s.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(s).await {
                    serve(TokioIo::new(s), answer).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        while let Ok((s, _)) = plain_l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(serve(TokioIo::new(s), answer));
        }
    });
    Origin {
        plain,
        tls,
        ca_pem: cert.ca_pem,
        ca_der: cert.ca_der,
    }
}

// ---------------------------------------------------------------------------------
// Proxy process

pub struct Proxy {
    child: std::process::Child,
    pub addr: SocketAddr,
    /// The proxy's own CA (clients of intercepted HTTPS trust it).
    pub ca_der: CertificateDer<'static>,
}

impl Proxy {
    /// `clawguard run` on 127.0.0.1:0 (or `CLAWGUARD_BENCH_BIN=path`, another build) with
    /// `config` (TOML) plus `allow_private` (the origin is on loopback, which the egress
    /// policy denies by default).
    pub fn start(dir: &Path, origin_ca: &Path, config: &str) -> Proxy {
        let cfg = dir.join("proxy.toml");
        std::fs::write(&cfg, format!("{config}\n[egress]\nallow_private = true\n")).unwrap();
        let ca_dir = dir.join("proxy-ca");
        let bin = std::env::var_os("CLAWGUARD_BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_clawguard").into());
        let mut child = launch::clawguard(&bin, "run", &cfg, &ca_dir, Some(origin_ca))
            .env_remove("RUST_LOG")
            .spawn()
            .expect("start clawguard");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Drain the log (default level: one info line per request) so the proxy never
        // blocks on a full pipe; keep the first WARN/ERROR lines: a refusal under load is
        // worth seeing.
        std::thread::spawn(move || {
            let mut shown = 0;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("clawguard listening on ") {
                    let _ = tx.send(a.trim().parse::<SocketAddr>().unwrap());
                } else if (line.contains(" WARN ") || line.contains(" ERROR ")) && shown < 20 {
                    shown += 1;
                    eprintln!("proxy: {line}");
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
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesised command name; utime and stime are fields 14, 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks as f64 / hz
    }

    /// The proxy's resident set size, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proxy {
    /// SIGTERM first, so a proxy run under a profiler (callgrind, see `benches/proxy.rs`)
    /// exits normally and writes its output; SIGKILL if it has not gone after a while.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..600 {
            if self.child.try_wait().is_ok_and(|s| s.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------
// Client side

/// A TLS client trusting `root` alone, speaking HTTP/1.1.
pub fn tls_client(root: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// An HTTP/1.1 client connection on `io` (its driver spawned).
pub async fn handshake<I>(io: I) -> Result<Sender, hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// `CONNECT localhost:PORT` on a connection to the proxy; the proxy's answer head.
pub async fn connect_tunnel(s: &mut TcpStream, port: u16) -> std::io::Result<Vec<u8>> {
    let host = format!("localhost:{port}");
    s.write_all(format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await?);
    }
    Ok(head)
}
