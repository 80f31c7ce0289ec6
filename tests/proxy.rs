//! End-to-end: the real `clawguard run` binary between real clients (curl, Python requests,
//! Node undici, a Rust WebSocket client) and a recording origin, all on 127.0.0.1.

mod common;

use common::*;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

fn proxy_for(origin: &Origin) -> Proxy {
    Proxy::start("", &origin.ca_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_absolute_form_is_forwarded() {
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let out = curl(&[
        "-x",
        &proxy.url(),
        "-H",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        &origin.http("/plain?q=1"),
    ])
    .await;
    assert_eq!((out.exit, out.status), (0, 200), "{}", out.stderr);
    assert_eq!(out.body, "origin ok");
    let r = origin.last("/plain?q=1");
    assert_eq!(r.method, "GET");
    // Hop-by-hop headers stop at the proxy.
    assert!(r.headers.get("proxy-authorization").is_none());
    assert!(r.headers.get("proxy-connection").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tls_is_intercepted_with_our_ca() {
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    // Trusting only the proxy's CA works: the client saw our leaf, not the origin's.
    let out = proxy
        .curl(&["--http1.1", "-d", "{\"a\":1}", &origin.https("/tls")])
        .await;
    assert_eq!((out.exit, out.status), (0, 200), "{}", out.stderr);
    assert_eq!(out.http_version, "1.1");
    let r = origin.last("/tls");
    assert_eq!((r.method.as_str(), r.body_len), ("POST", 7));
    // ...and the origin's own CA alone does not.
    let out = curl(&[
        "-x",
        &proxy.url(),
        "--cacert",
        path_str(&origin.ca_pem),
        &origin.https("/tls"),
    ])
    .await;
    assert_eq!(out.exit, 60, "expected a certificate error: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_to_the_client() {
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let out = proxy
        .curl(&[
            "--http2",
            "-H",
            "Cookie: a=1",
            "-H",
            "Cookie: b=2",
            &origin.https("/h2"),
        ])
        .await;
    assert_eq!((out.exit, out.status), (0, 200), "{}", out.stderr);
    assert_eq!(out.http_version, "2");
    let r = origin.last("/h2");
    // The origin offers h2 too, and the proxy's upstream client takes it.
    assert_eq!(r.version, http::Version::HTTP_2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_inside_connect_is_served() {
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let out = curl(&["-p", "-x", &proxy.url(), &origin.http("/tunnelled")]).await;
    assert_eq!((out.exit, out.status), (0, 200), "{}", out.stderr);
    assert_eq!(out.body, "origin ok");
    origin.last("/tunnelled");
    assert!(proxy.log().contains("method=CONNECT"), "{}", proxy.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypassed_host_gets_a_blind_tunnel() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("bypass = [\"localhost\"]\n", &origin.ca_pem);
    // Only the origin's own CA verifies: the bytes were not intercepted.
    let out = curl(&[
        "-v",
        "-x",
        &proxy.url(),
        "--cacert",
        path_str(&origin.ca_pem),
        &origin.https("/bypassed"),
    ])
    .await;
    assert_eq!((out.exit, out.status), (0, 200), "{}", out.stderr);
    assert!(out.stderr.contains(ORIGIN_CA_CN), "{}", out.stderr);
    origin.last("/bypassed");
    let out = proxy.curl(&[&origin.https("/bypassed")]).await;
    assert_eq!(out.exit, 60, "{}", out.stderr);
    assert!(!proxy.log().contains("minted leaf"));
}

fn assert_json_error(body: &str) {
    let v: serde_json::Value = serde_json::from_str(body).expect(body);
    assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    let id = v["request_id"].as_str().expect(body);
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_502_json() {
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let port = closed_port();
    let out = curl(&["-x", &proxy.url(), &format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(out.status, 502, "{}", out.stderr);
    assert_json_error(&out.body);
    let out = proxy.curl(&[&format!("https://127.0.0.1:{port}/")]).await;
    assert_eq!(out.status, 502, "{}", out.stderr);
    assert_json_error(&out.body);
}

async fn raw_exchange(proxy: &Proxy, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out))
        .await
        .expect("proxy answered and closed")
        .unwrap();
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_origin_form_requests_are_400() {
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let r = raw_exchange(
        &proxy,
        b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_json_error(r.split("\r\n\r\n").nth(1).unwrap());
    let r = raw_exchange(&proxy, b"\x01\x02 garbage\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = raw_exchange(&proxy, b"CONNECT nohostport HTTP/1.1\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(origin.requests().is_empty());
}

/// `curl -N` reading the origin's `/sse` through the proxy (intercepted HTTPS).
struct SseStream {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl SseStream {
    fn open(proxy: &Proxy, origin: &Origin) -> SseStream {
        let mut child = command("curl")
            .args([
                "-sS",
                "-N",
                "--max-time",
                "60",
                "-x",
                &proxy.url(),
                "--cacert",
            ])
            .arg(&proxy.ca_pem)
            .arg(origin.https("/sse"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        SseStream { child, lines }
    }

    /// The next `data:` line, as soon as it arrives.
    async fn next_data(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(PATIENCE, self.lines.next_line())
                .await
                .expect("an event arrived (a buffering proxy would stall here)")
                .unwrap()
                .expect("stream still open");
            if line.starts_with("data:") {
                return line;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_arrive_one_by_one() {
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let mut sse = SseStream::open(&proxy, &origin);
    // The origin holds event two back until we have seen event one through the proxy.
    assert_eq!(sse.next_data().await, "data: one");
    origin.sse_gate.notify_one();
    assert_eq!(sse.next_data().await, "data: two");
    assert!(sse.child.wait().await.unwrap().success());
}

fn upload_file(dir: &std::path::Path) -> (std::path::PathBuf, [u8; 32]) {
    use sha2::Digest;
    // 10 MiB of pseudo-random bytes, all >= 0x80: binary, and no ASCII text any scanner
    // could match and rewrite.
    let mut data = vec![0u8; 10 * 1024 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x as u8) | 0x80;
    }
    let p = dir.join("upload.bin");
    std::fs::write(&p, &data).unwrap();
    (p, sha2::Sha256::digest(&data).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_upload_arrives_byte_identical() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, sha) = upload_file(dir.path());
    let data_arg = format!("@{}", file.display());
    // Default cap (16 MiB): buffered and inspected. 1 MiB cap + fail_open: the buffered
    // prefix is chained with the unread rest.
    for config in ["", "max_inspect_bytes = 1048576\nfail_open = true\n"] {
        let proxy = Proxy::start(config, &origin.ca_pem);
        for (path, url) in [
            ("/upload-tls", origin.https("/upload-tls")),
            ("/upload-plain", origin.http("/upload-plain")),
        ] {
            let out = proxy
                .curl(&[
                    "-H",
                    "Content-Type: application/octet-stream",
                    "--data-binary",
                    &data_arg,
                    &url,
                ])
                .await;
            assert_eq!((out.exit, out.status), (0, 200), "{config}: {}", out.stderr);
            let r = origin.last(path);
            assert_eq!(r.body_len, 10 * 1024 * 1024, "{config}");
            assert_eq!(r.body_sha256, sha, "{config}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_body_is_refused_when_fail_closed() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("max_inspect_bytes = 1024\n", &origin.ca_pem);
    let body = "x".repeat(4096);
    let out = curl(&["-x", &proxy.url(), "-d", &body, &origin.http("/big")]).await;
    assert_eq!(out.status, 413, "{}", out.stderr);
    assert!(origin.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_passes_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let port = origin.tls_addr.port();
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(
        format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    // Read the CONNECT answer byte by byte so no TLS byte is swallowed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der(&proxy.ca_pem)).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("wss://localhost:{port}/ws"), tls)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for msg in ["hello", "second message"] {
        ws.send(Message::text(msg)).await.unwrap();
        let echoed = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_mint_one_leaf() {
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let url = origin.https("/mint");
    let ca = path_str(&proxy.ca_pem).to_string();
    let proxy_url = proxy.url();
    let args = [
        "-x",
        proxy_url.as_str(),
        "--cacert",
        ca.as_str(),
        url.as_str(),
    ];
    let runs = (0..8).map(|_| curl(&args));
    for out in futures_util::future::join_all(runs).await {
        assert_eq!((out.exit, out.status), (0, 200), "{}", out.stderr);
    }
    // The log is collected by another thread: wait until it holds all eight requests
    // (a second mint would be logged before its request finished).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while proxy.log().matches("method=GET").count() < 8 {
        assert!(tokio::time::Instant::now() < deadline, "{}", proxy.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = proxy.log();
    let minted = log
        .lines()
        .filter(|l| l.contains("minted leaf certificate"))
        .count();
    assert_eq!(minted, 1, "{log}");
    assert_eq!(origin.requests().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_through_the_proxy() {
    if skip_without_python_requests().await {
        return;
    }
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let script = "import sys, requests\n\
        p = sys.argv[1]\n\
        for url in sys.argv[2:]:\n\
        \x20   r = requests.post(url, json={'k': 'v'}, proxies={'http': p, 'https': p}, timeout=60)\n\
        \x20   print(r.status_code, r.text)\n";
    let out = command("python3")
        .args([
            "-c",
            script,
            &proxy.url(),
            &origin.https("/py-tls"),
            &origin.http("/py-plain"),
        ])
        .env("REQUESTS_CA_BUNDLE", &proxy.ca_pem)
        .output()
        .await
        .unwrap();
    let stdout = assert_success(&out);
    assert_eq!(stdout, "200 origin ok\n200 origin ok\n");
    assert_eq!(origin.last("/py-tls").body_len, 10);
    assert_eq!(origin.last("/py-plain").method, "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_undici_proxy_agent_through_the_proxy() {
    let Some(dir) = node_client_dir().await else {
        return;
    };
    let origin = Origin::start().await;
    let proxy = proxy_for(&origin);
    let out = command("node")
        .arg(dir.join("undici_fetch.mjs"))
        .args([
            &proxy.url(),
            path_str(&proxy.ca_pem),
            &origin.https("/node-tls"),
            &origin.http("/node-plain"),
        ])
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = assert_success(&out);
    assert_eq!(stdout, "200 origin ok\n200 origin ok\n");
    assert_eq!(origin.last("/node-tls").body_len, 23);
    // undici sends http:// through CONNECT too; the proxy served it inside the tunnel.
    assert_eq!(origin.last("/node-plain").method, "POST");
    assert!(proxy.log().contains("method=CONNECT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_is_504_json() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("upstream_timeout_secs = 1\n", &origin.ca_pem);
    let out = curl(&["-x", &proxy.url(), &origin.http("/hang")]).await;
    assert_eq!(out.status, 504, "{}", out.stderr);
    assert_json_error(&out.body);
    let out = proxy.curl(&[&origin.https("/hang")]).await;
    assert_eq!(out.status, 504, "{}", out.stderr);
    assert_json_error(&out.body);
}

#[test]
fn ca_init_and_path_commands() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("certs");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
            .args(args)
            .arg("--ca-dir")
            .arg(&ca_dir)
            .output()
            .unwrap()
    };
    let out = run(&["ca", "init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = ca_dir.join("clawguard-ca.pem");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        pem.to_str().unwrap()
    );
    let key_mode = std::fs::metadata(ca_dir.join("clawguard-ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let first = std::fs::read(&pem).unwrap();
    let out = run(&["ca", "init"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&pem).unwrap(), first);
    assert!(run(&["ca", "init", "--force"]).status.success());
    assert_ne!(std::fs::read(&pem).unwrap(), first);
    let out = run(&["ca", "path"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        pem.to_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_streams_finish() {
    let origin = Origin::start().await;
    let mut proxy = proxy_for(&origin);
    let mut sse = SseStream::open(&proxy, &origin);
    assert_eq!(sse.next_data().await, "data: one");
    proxy.terminate();
    // Logged once the listener is closed (not probed by connecting: a parallel test could
    // already have been given the freed port).
    proxy.wait_for_log("shutting down").await;
    // The stream in flight still completes.
    origin.sse_gate.notify_one();
    assert_eq!(sse.next_data().await, "data: two");
    assert!(sse.child.wait().await.unwrap().success());
    assert!(proxy.wait_exit().await.success(), "{}", proxy.log());
}

/// CONNECT to an echo server, then speak neither TLS nor HTTP. Returns what came back.
async fn opaque_tunnel(config: &str) -> (Vec<u8>, Proxy) {
    let origin = Origin::start().await;
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = Proxy::start(config, &origin.ca_pem);
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\nHost: 127.0.0.1:{echo_port}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut s = reader.into_inner();
    s.write_all(b"\x00\x01binary-protocol\n").await.unwrap();
    // Read until the 18 bytes are back or the proxy closes the tunnel.
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 18 {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .unwrap()
        {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, proxy)
}

#[tokio::test]
async fn tunnel_with_neither_tls_nor_http_is_closed_when_enforcing() {
    let (got, proxy) = opaque_tunnel("").await;
    assert!(got.is_empty(), "nothing relayed: {got:?}");
    proxy
        .wait_for_log("tunnel carries neither TLS nor HTTP: closed")
        .await;
}

#[tokio::test]
async fn tunnel_with_neither_tls_nor_http_is_relayed_in_dry_run() {
    let (got, proxy) = opaque_tunnel("mode = \"dry-run\"\n").await;
    assert_eq!(got, b"\x00\x01binary-protocol\n");
    proxy.wait_for_log("relayed uninspected").await;
}
