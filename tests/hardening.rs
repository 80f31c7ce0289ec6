//! Issue 8: what one hostile client (or origin) must not be able to do to the proxy.
//! Each test is one class of attack, run through the real binary on loopback with real
//! sockets; assertions are on behaviour and on `/metrics`, never on how long something
//! took (bounds like PATIENCE only stop a broken proxy from hanging the suite).

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A rule pack of our own: the tests do not depend on the built-in packs' wording.
const RULES: &str = r#"
[[rule]]
id = "test-canary"
category = "credential"
description = "Test canary token"
keywords = ["CANARY"]
regex = '''CANARY[A-Z0-9]{12}'''
action = "block"
match = ["CANARYABCDEF123456"]

[[rule]]
id = "test-mail"
category = "pii"
description = "Test mail address"
keywords = [".bc", ".com"]
regex = '''[a-z]+@[a-z]+\.[a-z]{2,}'''
action = "redact"
match = ["a@a.bc", "ab@cd.com"]
"#;

const CANARY: &str = "CANARYABCDEF123456";

/// A proxy with the test rules, an admin listener and `--allow-private` (origins are on
/// loopback). `config`: extra TOML.
fn proxy(dir: &Path, config: &str, origin_ca: &Path) -> Proxy {
    let rules = rules_dir_with(dir, RULES);
    Proxy::start_with(
        config,
        origin_ca,
        &[
            "--allow-private",
            "--admin",
            "127.0.0.1:0",
            "--rules",
            rules.to_str().unwrap(),
        ],
    )
}

/// An origin and a [`proxy`] in a fresh directory (kept as long as the returned `TempDir`).
async fn origin_and_proxy(config: &str) -> (Origin, tempfile::TempDir, Proxy) {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy(dir.path(), config, &origin.ca_pem);
    (origin, dir, proxy)
}

/// Send `head` on a new connection to the proxy and read the response head.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let head = read_head(&mut s).await;
    (s, head)
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while !head.ends_with(b"\r\n\r\n") {
            match s.read_u8().await {
                Ok(b) => head.push(b),
                Err(_) => break,
            }
        }
    })
    .await
    .expect("a response head");
    String::from_utf8_lossy(&head).to_string()
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------
// Class 1: pathological bodies on the inspection pool; SIGTERM still stops the proxy.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pathological_bodies_do_not_freeze_a_clean_request_and_sigterm_stops() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Built-in rules (the e-mail rule is what `a@a.bc` trips), 2 MiB bodies.
    let mut proxy = Proxy::start_with(
        "shutdown_grace_secs = 2\n",
        &origin.ca_pem,
        &["--allow-private", "--admin", "127.0.0.1:0"],
    );
    let body: String = "a@a.bc ".repeat(2 * 1024 * 1024 / 7);
    let file = dir.path().join("body.txt");
    std::fs::write(&file, &body).unwrap();
    let at = format!("@{}", file.display());
    let url = origin.http("/pathological");
    let hostile: Vec<_> = (0..2)
        .map(|_| {
            let (p, u, a) = (proxy.url(), url.clone(), at.clone());
            tokio::spawn(async move {
                curl(&[
                    "-x",
                    &p,
                    "-H",
                    "Content-Type: text/plain",
                    "--data-binary",
                    &a,
                    &u,
                ])
                .await
            })
        })
        .collect();
    // Both uploads are buffered (held for inspection) before the clean request goes.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&metrics(&proxy).await, "clawguard_buffered_body_bytes") < 2 * body.len() as u64 {
        if hostile.iter().all(|h| h.is_finished()) {
            break; // already inspected and answered: nothing left to race
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "uploads never buffered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let clean = curl(&["-x", &proxy.url(), &origin.http("/clean")]).await;
    assert_eq!(
        (clean.status, clean.body.as_str()),
        (200, "origin ok"),
        "{}",
        clean.stderr
    );
    // SIGTERM is honoured with the scans possibly still running.
    proxy.terminate();
    let st = proxy.wait_exit().await;
    assert!(st.success(), "{st:?}\n{}", proxy.log());
    for h in hostile {
        let out = tokio::time::timeout(PATIENCE, h)
            .await
            .expect("curl ended")
            .unwrap();
        // Blocked (redact of a text body, or block) or cut by the shutdown: never hung.
        assert_ne!(out.status, 200, "{}", out.body);
    }
}

// ---------------------------------------------------------------------------------
// Class 2: slow bodies time out; buffered bodies share one budget; connections are
// limited with a clear refusal.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_time_out_and_the_budget_answers_503() {
    // The idle timeout is long enough that the stalled upload still holds the slot
    // while the busy probes below run on a loaded machine (at 1 s it sometimes did not).
    let (origin, _dir, proxy) = origin_and_proxy("body_idle_timeout_secs = 8\nmax_inspect_bytes = 4096\nbody_budget_bytes = 6000\nmax_buffered_bodies = 1\n").await;
    let target = origin.http("/upload");
    // A stalled upload holds the only buffered-body slot until its idle timeout.
    let req = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 4000\r\n\r\nsome bytes"
    );
    let mut stalled = TcpStream::connect(proxy.addr).await.unwrap();
    stalled.write_all(req.as_bytes()).await.unwrap();
    // While it holds the slot, another upload is refused at once: 503 + Retry-After.
    let mut busy_head = String::new();
    for _ in 0..50 {
        let (_, head) = exchange(proxy.addr, format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        ).as_bytes()).await;
        if status(&head) == 503 {
            busy_head = head;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&busy_head), 503, "{busy_head}");
    assert!(
        busy_head.to_ascii_lowercase().contains("retry-after: 1"),
        "{busy_head}"
    );
    // The stalled one gets 408 (no data for the idle timeout).
    let head = read_head(&mut stalled).await;
    assert_eq!(status(&head), 408, "{head}");
    // Then the slot is free again.
    let ok = curl(&["-x", &proxy.url(), "--data-binary", "hello", &target]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let m = metrics(&proxy).await;
    assert!(
        m.contains("clawguard_refusals_total{class=\"busy\"}"),
        "{m}"
    );
    assert!(
        m.contains("clawguard_refusals_total{class=\"body-timeout\"} 1"),
        "{m}"
    );
    // Nothing of the refused uploads reached the origin.
    assert_eq!(origin.requests().len(), 1);
}

/// A body that keeps trickling (never idle long enough for the idle timeout) but stays
/// below `body_min_rate` is cut off with `408` once the grace is over, freeing its share
/// of the budget; a normal request on another connection meanwhile is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_below_the_minimum_rate_is_cut_off_and_others_are_served() {
    // One byte every 200 ms never reaches the 4 s idle timeout, and stays far below
    // 1000 bytes/s: only the minimum rate can end it (the deadline is 10 minutes away).
    let (origin, _dir, proxy) = origin_and_proxy(
        "body_idle_timeout_secs = 4\nbody_min_rate = 1000\nbody_deadline_secs = 600\n",
    )
    .await;
    let target = origin.http("/trickle");
    let (mut from_proxy, mut to_proxy) = TcpStream::connect(proxy.addr).await.unwrap().into_split();
    to_proxy
        .write_all(
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 4000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Stops by itself when the proxy closes the connection.
    let trickle = tokio::spawn(async move {
        for _ in 0..4000 {
            if to_proxy.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // The trickling upload holds no one else up: a normal request while it runs.
    let ok = curl(&["-x", &proxy.url(), "--data-binary", "hello", &target]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let head = read_head(&mut from_proxy).await;
    assert_eq!(status(&head), 408, "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    let mut body = vec![0; len];
    tokio::time::timeout(PATIENCE, from_proxy.read_exact(&mut body))
        .await
        .expect("the answer's body")
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // Said why, so the client knows it is the rate and not an idle connection.
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("minimum rate")),
        "{answer}"
    );
    trickle.abort();

    let m = metrics(&proxy).await;
    assert_eq!(
        metric(&m, "clawguard_refusals_total{class=\"body-timeout\"}"),
        1,
        "{m}"
    );
    assert_eq!(metric(&m, "clawguard_buffered_body_bytes"), 0, "{m}");
    // Only the normal request reached the origin.
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_ref(), b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_clearly() {
    let (origin, _dir, proxy) = origin_and_proxy("max_connections = 2\n").await;
    let _a = TcpStream::connect(proxy.addr).await.unwrap();
    let _b = TcpStream::connect(proxy.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, head) = exchange(
        proxy.addr,
        b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(status(&head), 503, "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    drop((_a, _b));
    // Room again once they are gone.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let out = curl(&["-x", &proxy.url(), &origin.http("/after")]).await;
        if out.status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", out.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = metrics(&proxy).await;
    assert!(
        metric(&m, "clawguard_connections_refused_total") >= 1,
        "{m}"
    );
}

/// Out of file descriptors (EMFILE), the accept loop backs off instead of spinning, and
/// serves again once descriptors are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_back_off_and_recover() {
    if skip_if(!have("prlimit"), "prlimit (util-linux) is missing") {
        return;
    }
    let (origin, _dir, proxy) = origin_and_proxy("").await;
    // Leave the running proxy a handful of descriptors beyond those it holds.
    let open = std::fs::read_dir(format!("/proc/{}/fd", proxy.pid()))
        .unwrap()
        .count();
    // The soft limit only: raising it back later needs no privilege.
    let limit = format!("--nofile={}:", open + 4);
    let st = std::process::Command::new("prlimit")
        .args(["--pid", &proxy.pid().to_string(), &limit])
        .status()
        .unwrap();
    assert!(st.success());
    // More idle connections than it can accept: the rest wait in the backlog while
    // accept(2) fails with EMFILE.
    let started = std::time::Instant::now();
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(TcpStream::connect(proxy.addr).await.unwrap());
    }
    proxy.wait_for_log("accept failed").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(held);
    let raise = format!("--nofile={}:", open + 256);
    let st = std::process::Command::new("prlimit")
        .args(["--pid", &proxy.pid().to_string(), &raise])
        .status()
        .unwrap();
    assert!(st.success());
    // Serving again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let out = curl(&["-x", &proxy.url(), &origin.http("/after-emfile")]).await;
        if out.status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", out.stderr);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A spinning loop fails accept(2) hundreds of thousands of times a second; backing
    // off (5 ms doubling to 1 s) fails a few times plus about once a second. The bound
    // grows with the time the test really took, so a slow machine cannot fail it.
    let errors = metric(&metrics(&proxy).await, "clawguard_accept_errors_total");
    let bound = 50 + 4 * started.elapsed().as_secs();
    assert!(
        errors >= 1 && errors <= bound,
        "{errors} accept errors (bound {bound})"
    );
}

// ---------------------------------------------------------------------------------
// Class 3: Argon2 is bounded, cached and throttled.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_credentials_cannot_exhaust_memory_or_lock_out_a_user() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[users]\n{}\n", user_line("alice", "correct horse battery"));
    let proxy = proxy(dir.path(), &config, &origin.ca_pem);
    let url = origin.http("/auth");
    // 150 concurrent attempts with distinct wrong passwords from one client address.
    let attempts: Vec<_> = (0..150)
        .map(|i| {
            let (p, u) = (proxy.url(), url.clone());
            tokio::spawn(async move {
                curl(&["-x", &p, "-U", &format!("alice:wrong-{i}"), &u])
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| [407, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "back-off never engaged: {statuses:?}"
    );
    // A real user from another address is not held back.
    let right = curl(&[
        "-x",
        &proxy.url(),
        "--interface",
        "127.0.0.2",
        "-U",
        "alice:correct horse battery",
        &url,
    ])
    .await;
    assert_eq!(right.status, 200, "{}", right.stderr);
    // At most one Argon2 (19 MiB) per core at once: no gigabytes.
    let peak = proxy.peak_rss_kib().unwrap();
    assert!(peak < 600 * 1024, "peak RSS {peak} KiB");
    let m = metrics(&proxy).await;
    assert!(
        m.contains("clawguard_refusals_total{class=\"auth-throttled\"}"),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------
// Class 4: idle upstream connections are closed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_closed() {
    // An origin that answers one keep-alive request and reports when its peer hangs up.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel::<()>(4);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = closed_tx.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                if head.is_empty() {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await; // until the proxy closes it
                let _ = tx.send(()).await;
            });
        }
    });
    // The recording origin only lends the proxy its CA file here.
    let (_origin, _dir, proxy) = origin_and_proxy("upstream_idle_secs = 1\n").await;
    let out = curl(&["-x", &proxy.url(), &format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!((out.status, out.body.as_str()), (200, "ok"));
    tokio::time::timeout(PATIENCE, closed_rx.recv())
        .await
        .expect("the proxy closed its idle upstream connection");
}

// ---------------------------------------------------------------------------------
// Class 5: the Host sent upstream is the authority policy decided on.

async fn connect_tls(proxy: &Proxy, port: u16) -> tokio_rustls::client::TlsStream<TcpStream> {
    let (tcp, head) = exchange(
        proxy.addr,
        format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&head), 200, "{head}");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der(&proxy.ca_pem)).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_fronting_inside_a_tunnel_is_refused() {
    install_provider();
    let (origin, _dir, proxy) = origin_and_proxy("").await;
    let port = origin.tls_addr.port();
    let mut tls = connect_tls(&proxy, port).await;
    tls.write_all(
        b"POST /front HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer sk-not-for-evil\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut tls).await;
    assert_eq!(status(&head), 421, "{head}");
    assert!(origin.requests().iter().all(|r| r.path != "/front"));
    // The tunnel's own host passes, and the origin sees that Host.
    let mut tls = connect_tls(&proxy, port).await;
    tls.write_all(
        format!("GET /fine HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut tls).await;
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(
        origin.last("/fine").headers["host"],
        format!("localhost:{port}")
    );
    // Absolute-form: the URI's authority wins over a different Host header.
    let out = curl(&[
        "-x",
        &proxy.url(),
        "-H",
        "Host: evil.example",
        &origin.http("/abs"),
    ])
    .await;
    assert_eq!(out.status, 200);
    assert_eq!(
        origin.last("/abs").headers["host"],
        format!("127.0.0.1:{}", origin.plain_addr.port())
    );
    let m = metrics(&proxy).await;
    assert!(
        m.contains("clawguard_refusals_total{class=\"misdirected\"} 1"),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------
// Class 6: a 101 only for a real WebSocket handshake; client messages inspected.

/// What the WebSocket test origin saw: unmasked payloads of complete frames.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

/// An origin on plain HTTP. `/ws`: completes a WebSocket handshake (with
/// permessage-deflate when offered) and records every frame's payload, echoing text.
/// Anything else: answers `101` without being asked (a hostile origin).
async fn ws_origin() -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Default::default();
    let st = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = st.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                let key = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("sec-websocket-key: ")
                            .or_else(|| l.strip_prefix("Sec-WebSocket-Key: "))
                    })
                    .map(str::trim)
                    .unwrap_or("");
                if !head.starts_with("GET /ws") {
                    let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\nRAW PIPE").await;
                    let mut sink = Vec::new();
                    let _ = s.read_to_end(&mut sink).await;
                    seen.lock().unwrap().push(sink);
                    return;
                }
                let deflate = head.to_ascii_lowercase().contains("permessage-deflate");
                let accept = ws_accept(key);
                let ext = if deflate {
                    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
                } else {
                    ""
                };
                let _ = s.write_all(format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{ext}\r\n").as_bytes()).await;
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some((op, payload, used)) = parse_frame(&buf) {
                        buf.drain(..used);
                        seen.lock().unwrap().push(payload.clone());
                        if op == 1 {
                            let mut echo = vec![0x81, payload.len() as u8];
                            echo.extend_from_slice(&payload);
                            let _ = s.write_all(&echo).await;
                        }
                        if op == 8 {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, seen)
}

fn ws_accept(key: &str) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// (opcode, unmasked payload, bytes used) of a complete small frame at the start of `b`.
fn parse_frame(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if b.len() < 2 {
        return None;
    }
    let op = b[0] & 0x0f;
    let masked = b[1] & 0x80 != 0;
    let (len, mut pos) = match b[1] & 0x7f {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => return None,
        n => (n as usize, 2),
    };
    let mask = if masked {
        let m = [
            *b.get(pos)?,
            *b.get(pos + 1)?,
            *b.get(pos + 2)?,
            *b.get(pos + 3)?,
        ];
        pos += 4;
        Some(m)
    } else {
        None
    };
    if b.len() < pos + len {
        return None;
    }
    let mut p = b[pos..pos + len].to_vec();
    if let Some(m) = mask {
        for (i, x) in p.iter_mut().enumerate() {
            *x ^= m[i % 4];
        }
    }
    Some((op, p, pos + len))
}

/// A masked client frame.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    let m = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&m);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
    f
}

async fn ws_open(proxy: &Proxy, port: u16, deflate: bool) -> (TcpStream, String) {
    let ext = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
    } else {
        ""
    };
    exchange(
        proxy.addr,
        format!(
            "GET http://127.0.0.1:{port}/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{ext}\r\n"
        )
        .as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrequested_101_is_refused_and_websocket_messages_are_inspected() {
    let (_origin, _dir, proxy) = origin_and_proxy("").await;
    let (port, seen) = ws_origin().await;

    // A plain GET answered by 101: no raw pipe, a 502.
    let (_, head) = exchange(
        proxy.addr,
        format!("GET http://127.0.0.1:{port}/plain HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&head), 502, "{head}");

    // A clean text message goes through and is echoed.
    let (mut ws, head) = ws_open(&proxy, port, false).await;
    assert_eq!(status(&head), 101, "{head}");
    ws.write_all(&client_frame(0x81, b"hello there"))
        .await
        .unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(PATIENCE, ws.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parse_frame(&buf[..n]).unwrap().1, b"hello there");

    // A secret split over three fragments: the origin never gets any of it; the client
    // gets a 1008 close that names the rule, not the value.
    let msg = format!("key={CANARY} end");
    let (a, rest) = msg.as_bytes().split_at(6);
    let (b, c) = rest.split_at(7);
    for f in [
        client_frame(0x01, a),
        client_frame(0x00, b),
        client_frame(0x80, c),
    ] {
        ws.write_all(&f).await.unwrap();
    }
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1008, "{reason}\n{}", proxy.log());
    assert!(reason.contains("test-canary"), "{reason}");
    assert!(!reason.contains("ABCDEF"), "{reason}");

    // Compressed (permessage-deflate) and binary: inflated and inspected too.
    let (mut ws, head) = ws_open(&proxy, port, true).await;
    assert_eq!(status(&head), 101, "{head}");
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut z = Vec::with_capacity(256);
    c.compress_vec(
        format!("bin {CANARY}").as_bytes(),
        &mut z,
        flate2::FlushCompress::Sync,
    )
    .unwrap();
    z.truncate(z.len() - 4);
    ws.write_all(&client_frame(0x80 | 0x40 | 0x02, &z))
        .await
        .unwrap();
    let (code, _) = close_of(&mut ws).await;
    assert_eq!(code, 1008);

    let seen = seen.lock().unwrap().clone();
    let all: Vec<u8> = seen.concat();
    assert!(
        !String::from_utf8_lossy(&all).contains("ABCDEF"),
        "origin saw the secret"
    );
    assert!(
        !String::from_utf8_lossy(&all).contains("key="),
        "a fragment leaked"
    );
    let m = metrics(&proxy).await;
    assert!(
        m.contains("clawguard_websocket_messages_total{decision=\"block\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("clawguard_websocket_messages_total{decision=\"allow\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("clawguard_upstream_errors_total{kind=\"upgrade\"} 1"),
        "{m}"
    );
}

async fn close_of(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            while let Some((op, p, used)) = parse_frame(&buf) {
                buf.drain(..used);
                if op == 8 {
                    return (
                        u16::from_be_bytes([p[0], p[1]]),
                        String::from_utf8_lossy(&p[2..]).to_string(),
                    );
                }
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return (0, "connection closed without a close frame".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("a close frame")
}

// ---------------------------------------------------------------------------------
// Class 7: bypass is for TLS only.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bypass_tunnel_carrying_plain_http_is_inspected() {
    let (origin, _dir, proxy) = origin_and_proxy("bypass = [\"127.0.0.1\"]\n").await;
    // What undici does for http:// URLs: CONNECT, then plain HTTP inside.
    let out = curl(&[
        "-p",
        "-x",
        &proxy.url(),
        "--data-binary",
        &format!("token={CANARY}"),
        &origin.http("/through-bypass"),
    ])
    .await;
    assert_eq!(out.status, 403, "{}", out.body);
    assert!(origin
        .requests()
        .iter()
        .all(|r| r.path != "/through-bypass"));
}

// ---------------------------------------------------------------------------------
// Class 8: the proxy's own listeners are never a destination.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_listeners_are_never_a_destination() {
    let (_origin, _dir, proxy) = origin_and_proxy("").await;
    let admin = proxy.admin.unwrap();
    for url in [
        format!("http://{admin}/metrics"),
        format!("http://localhost:{}/reload", admin.port()),
        format!("http://{}/", proxy.addr),
        format!("http://0.0.0.0:{}/metrics", admin.port()),
    ] {
        let out = curl(&["-x", &proxy.url(), &url]).await;
        assert_eq!(out.status, 403, "{url}: {}", out.body);
        assert!(out.body.contains("own listener"), "{}", out.body);
    }
    let connect = curl(&["-x", &proxy.url(), "-p", &format!("http://{admin}/metrics")]).await;
    assert_ne!(connect.status, 200);
    let m = metrics(&proxy).await;
    assert!(
        m.contains("clawguard_refusals_total{class=\"egress\"} 5"),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------
// Class 12 and issue 12 item 3: reasons in logs and audit; no raw value anywhere.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_logs_carry_reasons_but_never_a_value() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let proxy = proxy(
        dir.path(),
        &format!("audit_log = \"{}\"\n", log.display()),
        &origin.ca_pem,
    );
    let base = origin.http("");
    for path in [
        format!("/files/{CANARY}/x"),
        format!("/files/x;{CANARY}"),
        format!("/q?{CANARY}"),
        format!("/q?{CANARY}=1"),
        format!("/q?a=1&{CANARY}"),
    ] {
        let out = curl(&["-x", &proxy.url(), &format!("{base}{path}")]).await;
        assert_eq!(out.status, 403, "{path}: {}", out.body);
    }
    // A secret in a host label: refused before any lookup; stderr shows it masked.
    let out = curl(&["-x", &proxy.url(), &format!("http://{CANARY}.example/")]).await;
    assert_eq!(out.status, 403, "{}", out.body);
    // A refusal says why in the log line and the audit record.
    let closed = closed_port();
    let out = curl(&["-x", &proxy.url(), &format!("http://127.0.0.1:{closed}/")]).await;
    assert_eq!(out.status, 502);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let audit = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 7 {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    proxy.wait_for_log_count("status=502", 1).await;
    for (what, text) in [("audit log", &audit), ("proxy log", &proxy.log())] {
        assert!(
            !text.contains("ABCDEF123456"),
            "{what} holds the value:\n{text}"
        );
    }
    // The cause is a field of its own in both: what to filter on.
    assert!(
        audit.contains("upstream-connect: cannot connect"),
        "{audit}"
    );
    assert!(audit.contains(r#""cause":"connection refused""#), "{audit}");
    let log = proxy.log();
    assert!(log.contains(r#"reason="connection refused""#), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_presenting_a_ca_certificate_is_explained() {
    install_provider();
    // A self-signed CA:TRUE certificate served as the origin's own (openssl req -x509).
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("origin.pem");
    let tls = origin_cert::self_signed(&pem, &["localhost"], true);
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let a = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = a.accept(s).await {
                    let _ = read_head(&mut s).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    let proxy = proxy(dir.path(), "", &pem);
    let out = proxy.curl(&[&format!("https://localhost:{port}/")]).await;
    assert_eq!(out.status, 502, "{}", out.body);
    assert!(
        out.body.contains("CA certificate (CA:TRUE) as its own")
            && out.body.contains("--upstream-ca"),
        "{}\n{}",
        out.body,
        proxy.log()
    );
    assert!(!out.body.contains("OtherError"), "{}", out.body);
    proxy.wait_for_log_count("status=502", 1).await;
    let log = proxy.log();
    assert!(log.contains(r#"reason="CA certificate as leaf""#), "{log}");
}

// ---------------------------------------------------------------------------------
// Class 13: an SNI with a port (or otherwise malformed) falls back to the CONNECT host.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sni_with_a_port_falls_back_to_the_connect_authority() {
    if skip_if(!have_openssl(), "the openssl command is missing") {
        return;
    }
    let (origin, _dir, proxy) = origin_and_proxy("").await;
    let port = origin.tls_addr.port();
    // What the `hey` load generator does: SNI `host:port`.
    let mut child = command("openssl")
        .args([
            "s_client",
            "-quiet",
            "-proxy",
            &proxy.addr.to_string(),
            "-connect",
            &format!("localhost:{port}"),
            "-servername",
            &format!("localhost:{port}"),
            "-CAfile",
            path_str(&proxy.ca_pem),
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            format!("GET /sni HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("openssl finished")
        .unwrap();
    drop(stdin);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("HTTP/1.1 200"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
    origin.last("/sni");
}

fn have_openssl() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}
