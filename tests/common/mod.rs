//! Shared test fixtures: a recording origin (HTTPS with its own test CA, and plain HTTP),
//! the real `clawguard` binary started on 127.0.0.1:0, and client helpers.
//! Everything stays on loopback.
#![allow(dead_code)]

pub mod launch;
pub mod netns;
pub mod openclaw;
pub mod origin_cert;
pub mod squid;

use origin_cert::{origin_cert, OriginCert};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

pub const ORIGIN_CA_CN: &str = "ClawGuard Test Origin CA";

/// Bound for "this should happen": a broken proxy fails the test instead of hanging it.
/// Never used to assert on how long something took.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What the origin saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub version: Version,
    pub headers: http::HeaderMap,
    pub body_len: usize,
    pub body_sha256: [u8; 32],
    /// The body exactly as received (after HTTP framing, before any decoding).
    pub body: Bytes,
}

pub struct Origin {
    pub tls_addr: SocketAddr,
    pub plain_addr: SocketAddr,
    /// PEM of the origin's own CA (give it to the proxy as `--upstream-ca`).
    pub ca_pem: PathBuf,
    pub recorded: Arc<Mutex<Vec<Recorded>>>,
    /// `/sse` sends its second event only after this is notified.
    pub sse_gate: Arc<Notify>,
    _dir: tempfile::TempDir,
}

struct OriginState {
    recorded: Arc<Mutex<Vec<Recorded>>>,
    sse_gate: Arc<Notify>,
}

type OBody = BoxBody<Bytes, Infallible>;

impl Origin {
    pub async fn start() -> Origin {
        install_provider();
        let dir = tempfile::tempdir().unwrap();
        let OriginCert {
            ca_pem,
            server: mut tls,
            ..
        } = origin_cert(dir.path(), ORIGIN_CA_CN, &["localhost", "127.0.0.1"]);
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let state = Arc::new(OriginState {
            recorded: Arc::new(Mutex::new(Vec::new())),
            sse_gate: Arc::new(Notify::new()),
        });
        let tls_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tls_addr, plain_addr) = (tls_l.local_addr().unwrap(), plain_l.local_addr().unwrap());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = tls_l.accept().await.unwrap();
                let (acceptor, st) = (acceptor.clone(), st.clone());
                tokio::spawn(async move {
                    if let Ok(s) = acceptor.accept(s).await {
                        serve_origin(TokioIo::new(s), st).await;
                    }
                });
            }
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = plain_l.accept().await.unwrap();
                tokio::spawn(serve_origin(TokioIo::new(s), st.clone()));
            }
        });
        Origin {
            tls_addr,
            plain_addr,
            ca_pem,
            recorded: state.recorded.clone(),
            sse_gate: state.sse_gate.clone(),
            _dir: dir,
        }
    }

    pub fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.tls_addr.port())
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.plain_addr.port())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    pub fn last(&self, path: &str) -> Recorded {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("origin never saw {path}"))
    }
}

async fn serve_origin<I>(io: I, st: Arc<OriginState>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| origin_handler(st.clone(), req));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, svc)
        .await;
}

fn text(status: StatusCode, s: &'static str) -> Response<OBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(s.as_bytes())).boxed());
    *r.status_mut() = status;
    r
}

async fn origin_handler(
    st: Arc<OriginState>,
    mut req: Request<Incoming>,
) -> Result<Response<OBody>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    if path == "/ws" {
        return Ok(websocket_echo(&mut req));
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    st.recorded.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        version: parts.version,
        headers: parts.headers,
        body_len: body.len(),
        body_sha256: Sha256::digest(&body).into(),
        body: body.clone(),
    });
    if path == "/hang" {
        // Never answers: the proxy's upstream timeout must.
        std::future::pending::<()>().await;
    }
    if path == "/sse" {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let gate = st.sse_gate.clone();
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"data: one\n\n")).await;
            gate.notified().await;
            let _ = tx.send(Bytes::from_static(b"data: two\n\n")).await;
        });
        let mut r = Response::new(ChannelBody(rx).boxed());
        r.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(r);
    }
    let mut r = text(StatusCode::OK, "origin ok");
    r.headers_mut().insert(
        "x-origin-saw-version",
        format!("{:?}", parts.version).parse().unwrap(),
    );
    Ok(r)
}

fn websocket_echo(req: &mut Request<Incoming>) -> Response<OBody> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return text(StatusCode::BAD_REQUEST, "not a websocket handshake");
    };
    let accept = derive_accept_key(key.as_bytes());
    let on = hyper::upgrade::on(req);
    tokio::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        let Ok(up) = on.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(up),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() || m.is_binary() {
                if ws.send(m).await.is_err() {
                    break;
                }
            } else if m.is_close() {
                break;
            }
        }
    });
    let mut r = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("connection", "upgrade".parse().unwrap());
    h.insert("sec-websocket-accept", accept.parse().unwrap());
    r
}

/// A response body fed chunk by chunk from a channel (for SSE).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// The real binary, on a free loopback port, with its own CA directory.
pub struct Proxy {
    child: std::process::Child,
    pub addr: SocketAddr,
    /// The admin listener, when started with `--admin`.
    pub admin: Option<SocketAddr>,
    /// The config file the proxy was started with (tests may rewrite it and reload).
    pub config: PathBuf,
    /// The proxy's CA certificate (what clients trust).
    pub ca_pem: PathBuf,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// `config`: TOML merged over the defaults. `upstream_ca`: the origin's CA.
    pub fn start(config: &str, upstream_ca: &Path) -> Proxy {
        Proxy::start_with(config, upstream_ca, &["--allow-private"])
    }

    /// [`Proxy::start`] with extra `run` arguments instead of `--allow-private` (the test
    /// origins listen on 127.0.0.1, which the default egress policy refuses). Always
    /// `--allow-root`: CI runs as root.
    pub fn start_with(config: &str, upstream_ca: &Path, extra: &[&str]) -> Proxy {
        Proxy::launch(
            "run",
            config,
            upstream_ca,
            extra,
            "clawguard listening on ",
            None,
        )
    }

    /// [`Proxy::start_with`] with a given CA directory (instances of a fleet share it).
    pub fn start_shared(config: &str, upstream_ca: &Path, extra: &[&str], ca_dir: &Path) -> Proxy {
        Proxy::launch(
            "run",
            config,
            upstream_ca,
            extra,
            "clawguard listening on ",
            Some(ca_dir),
        )
    }

    /// `clawguard icap` on a free loopback port (`addr` is the ICAP address), with
    /// `--allow-private` so test origins on 127.0.0.1 pass the egress policy.
    pub fn start_icap(config: &str, extra: &[&str]) -> Proxy {
        let mut args = vec!["--allow-private"];
        args.extend_from_slice(extra);
        Proxy::launch(
            "icap",
            config,
            Path::new(""),
            &args,
            "clawguard icap listening on ",
            None,
        )
    }

    /// Start `clawguard SUBCOMMAND` and wait for the line `ready` + address.
    pub fn launch(
        subcommand: &str,
        config: &str,
        upstream_ca: &Path,
        extra: &[&str],
        ready: &'static str,
        ca_dir: Option<&Path>,
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        std::fs::write(&cfg, config).unwrap();
        let ca_dir = ca_dir.map_or_else(|| dir.path().join("ca"), Path::to_path_buf);
        let upstream_ca = (!upstream_ca.as_os_str().is_empty()).then_some(upstream_ca);
        let bin = OsStr::new(env!("CARGO_BIN_EXE_clawguard"));
        let mut child = launch::clawguard(bin, subcommand, &cfg, &ca_dir, upstream_ca)
            .args(extra)
            .env("RUST_LOG", "info")
            .spawn()
            .expect("start clawguard");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        let admin = Arc::new(Mutex::new(None));
        let admin2 = admin.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("clawguard admin listening on ") {
                    *admin2.lock().unwrap() = a.trim().parse::<SocketAddr>().ok();
                }
                if let Some(a) = line.strip_prefix(ready) {
                    let _ = tx.send(a.trim().parse::<SocketAddr>().unwrap());
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("proxy did not start:\n{}", log.lock().unwrap());
        });
        let admin = *admin.lock().unwrap();
        Proxy {
            child,
            addr,
            admin,
            ca_pem: ca_dir.join("clawguard-ca.pem"),
            config: cfg,
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// [`curl`] through this proxy trusting its CA: `curl -x PROXY --cacert CA ARGS…`.
    pub async fn curl(&self, args: &[&str]) -> CurlOut {
        let url = self.url();
        let mut all = vec!["-x", &url, "--cacert", path_str(&self.ca_pem)];
        all.extend_from_slice(args);
        curl(&all).await
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Send SIGTERM (what service managers use to stop it).
    pub fn terminate(&self) {
        let st = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for the process to exit on its own.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "proxy did not exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Poll the log until `needle` shows up.
    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Peak resident set size (`VmHWM` from /proc/PID/status), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Poll the log until `needle` shows up `n` times (the log is read by a thread, so
    /// it can lag behind the responses a test has already seen).
    pub async fn wait_for_log_count(&self, needle: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.log().matches(needle).count() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{needle}` not logged {n} times:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.log().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{needle}` never logged:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command with every proxy variable from the environment removed, so only the proxy a
/// test names is used.
pub fn command(program: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(program);
    for v in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        c.env_remove(v);
    }
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

pub struct CurlOut {
    pub exit: i32,
    pub status: u16,
    pub http_version: String,
    pub body: String,
    pub stderr: String,
}

/// Run curl with `args`; the status line and HTTP version come from `--write-out`.
pub async fn curl(args: &[&str]) -> CurlOut {
    let out = tokio::time::timeout(
        PATIENCE,
        command("curl")
            .args([
                "-sS",
                "--max-time",
                "60",
                "-w",
                "\n%{http_code} %{http_version}",
            ])
            .args(args)
            .output(),
    )
    .await
    .expect("curl finished")
    .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, meta) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let mut meta = meta.split(' ');
    CurlOut {
        exit: out.status.code().unwrap_or(-1),
        status: meta.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        http_version: meta.next().unwrap_or("").to_string(),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `true` if `program --version` runs.
pub fn have(program: &str) -> bool {
    // `ip --version` exits 255 (iproute2 only knows `-V`): accept either spelling.
    ["--version", "-V"].iter().any(|flag| {
        std::process::Command::new(program)
            .arg(flag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

pub fn cert_der(pem: &Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(pem).unwrap()
}

/// Whether a test peer (`program --version` works) is here. Missing: under `CI=true` the
/// test fails (CI installs its peers, so a gap there is a broken CI, not a skip); on a
/// developer machine it says SKIP and returns false.
pub fn require_peer(program: &str) -> bool {
    let found = have(program)
        || std::process::Command::new(program)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "test peer `{program}` is missing under CI=true (.ci/run must install it)"
    );
    eprintln!("SKIP: {program} not installed");
    false
}

/// Running under CI (`CI=true`): a missing peer or kernel feature fails the test there
/// instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (return `true` after printing `SKIP:`) when `missing` is set, except under CI,
/// where it fails the test.
pub fn skip_if(missing: bool, what: &str) -> bool {
    if !missing {
        return false;
    }
    assert!(!in_ci(), "CI=true and {what}");
    eprintln!("SKIP: {what}");
    true
}

/// `DIR/rules/test.toml` holding `pack`, a rule pack of the test's own (so the test does
/// not depend on the built-in packs' wording); returns the directory (`--rules`,
/// `rules_dir`).
pub fn rules_dir_with(dir: &Path, pack: &str) -> PathBuf {
    let d = dir.join("rules");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("test.toml"), pack).unwrap();
    d
}

/// The proxy's `/metrics` text (it must have been started with `--admin`).
pub async fn metrics(proxy: &Proxy) -> String {
    let admin = proxy.admin.expect("started with --admin");
    let out = curl(&[&format!("http://{admin}/metrics")]).await;
    assert_eq!(out.status, 200);
    out.body
}

/// The value of `name` (with its labels, as rendered) in `/metrics` text; 0 when absent.
pub fn metric(m: &str, name: &str) -> u64 {
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// A `[users]` line for `name` with `password`, made by `clawguard user add` (the password
/// on stdin, as an operator types it).
pub fn user_line(name: &str, password: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["user", "add", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = writeln!(child.stdin.take().unwrap(), "{password}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Skip (`true`, after printing `SKIP:`) without python3 and its `requests` package; under
/// CI that fails the test instead.
pub async fn skip_without_python_requests() -> bool {
    let ok = command("python3")
        .args(["-c", "import requests"])
        .status()
        .await
        .is_ok_and(|s| s.success());
    skip_if(
        !ok,
        "python3 with `requests` is not installed (pip install requests)",
    )
}

/// `tests/node` with its npm dependencies (undici) installed; `None` (after printing
/// `SKIP:`) without node/npm, a failure under CI.
pub async fn node_client_dir() -> Option<PathBuf> {
    if skip_if(!have("node") || !have("npm"), "node/npm are not installed") {
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/undici").exists() {
        let st = command("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .await
            .unwrap();
        assert!(st.success(), "npm ci in tests/node failed");
    }
    Some(dir)
}

/// A child that must have succeeded (if not, the test fails showing both its streams);
/// returns its stdout.
pub fn assert_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether this test process runs as root (CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// What a bounded child left behind (see [`run_bounded`]).
pub struct Output {
    /// `None` when it was killed at the limit (or died by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` in its own process group with stdout/stderr in files beside `log_base`;
/// kill the whole group when `limit` passes (then `code` is `None`). The limit only keeps
/// a broken run from hanging the test; nothing asserts on durations.
pub fn run_bounded(mut cmd: std::process::Command, limit: Duration, log_base: &Path) -> Output {
    use std::os::unix::process::CommandExt;
    let out_p = log_base.with_extension("stdout");
    let err_p = log_base.with_extension("stderr");
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let deadline = std::time::Instant::now() + limit;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if std::time::Instant::now() > deadline {
            kill_group(&mut child);
            eprintln!("{cmd:?} ran past {limit:?}; killed");
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        code,
        stdout: std::fs::read_to_string(&out_p).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_p).unwrap_or_default(),
    }
}

/// SIGKILL the process group `child` leads (spawned with `process_group(0)`), then reap it.
pub fn kill_group(child: &mut std::process::Child) {
    // SAFETY: plain kill(2) on the process group we created for this child.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
}
