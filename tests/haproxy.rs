//! Many instances: two `clawguard run` behind the distribution's HAProxy (TCP mode,
//! health checks on each admin listener's /healthz), sharing the CA, the audit HMAC key
//! and the checkpoint signing key; each with its own audit file and metrics.
//! Requests spread over both, a reload reaches both, and killing one mid-run costs the
//! client at most retried connections.

mod common;

use common::{assert_success, curl, require_peer, Origin, Proxy};
use std::process::Stdio;
use std::time::Duration;

const EMAIL: &str = "li.wei.leak@example.org";

struct Haproxy {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backends: &[(&Proxy, std::net::SocketAddr)]) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = common::closed_port();
        let mut servers = String::new();
        for (i, (p, admin)) in backends.iter().enumerate() {
            servers.push_str(&format!(
                "    server cg{i} {} check port {} inter 300ms fall 1 rise 1\n",
                p.addr,
                admin.port()
            ));
        }
        let cfg = format!(
            "global\n    maxconn 256\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    retries 3\n    option redispatch 1\n\
             frontend clawguard\n    bind 127.0.0.1:{port}\n    default_backend fleet\n\
             backend fleet\n    balance roundrobin\n    option httpchk GET /healthz\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let check = std::process::Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert_success(&check);
        let child = std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + common::PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "haproxy did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Haproxy {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn requests_total(p: &Proxy, decision: &str) -> u64 {
    let m = curl(&[&format!("http://{}/metrics", p.admin.unwrap())])
        .await
        .body;
    m.lines()
        .filter(|l| {
            l.starts_with("clawguard_requests_total{")
                && l.contains(&format!("decision=\"{decision}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// POST through HAProxy with curl's own retries for refused/reset connections.
async fn post(via: &str, url: &str, body: &str) -> common::CurlOut {
    curl(&[
        "-x",
        via,
        "--retry",
        "5",
        "--retry-all-errors",
        "--retry-delay",
        "0",
        "--data-binary",
        body,
        url,
    ])
    .await
}

#[tokio::test]
async fn two_instances_behind_haproxy_share_load_reload_and_survive_a_kill() {
    if !require_peer("haproxy") || !require_peer("curl") {
        return;
    }
    let origin = Origin::start().await;
    let shared = tempfile::tempdir().unwrap();
    let ca_dir = shared.path().join("ca");
    let hmac = shared.path().join("audit.key");
    std::fs::write(&hmac, "fleet-shared-hmac-key-0123456789").unwrap();
    let signing = shared.path().join("audit-signing.key");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["audit", "keygen", "--out"])
        .arg(&signing)
        .output()
        .unwrap();
    assert!(st.status.success());
    let config = |n: u32| {
        format!(
            "audit_log = {:?}\naudit_key = {:?}\naudit_signing_key = {:?}\n",
            shared
                .path()
                .join(format!("audit-{n}.jsonl"))
                .to_str()
                .unwrap(),
            hmac.to_str().unwrap(),
            signing.to_str().unwrap()
        )
    };
    let extra = ["--allow-private", "--admin", "127.0.0.1:0"];
    // The first instance creates the CA; the second loads the same one.
    let a = Proxy::start_shared(&config(1), &origin.ca_pem, &extra, &ca_dir);
    let mut b = Proxy::start_shared(&config(2), &origin.ca_pem, &extra, &ca_dir);
    assert_eq!(
        std::fs::read(&a.ca_pem).unwrap(),
        std::fs::read(&b.ca_pem).unwrap()
    );
    let lb = Haproxy::start(&[(&a, a.admin.unwrap()), (&b, b.admin.unwrap())]);
    let via = lb.url();

    // Spread: round robin over fresh connections reaches both.
    for i in 0..8 {
        let out = post(&via, &origin.http("/spread"), &format!("{{\"n\":{i}}}")).await;
        assert_eq!(out.status, 200, "{} {}", out.body, out.stderr);
    }
    assert!(
        requests_total(&a, "allow").await > 0,
        "instance a got nothing"
    );
    assert!(
        requests_total(&b, "allow").await > 0,
        "instance b got nothing"
    );

    // Reload both: email becomes a block on every instance.
    for p in [&a, &b] {
        let mut cfg = std::fs::read_to_string(&p.config).unwrap();
        cfg.push_str("[rules.email]\naction = \"block\"\n");
        std::fs::write(&p.config, cfg).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
            .args(["reload", "--admin", &p.admin.unwrap().to_string()])
            .output()
            .unwrap();
        assert_success(&out);
    }
    for _ in 0..6 {
        let out = post(
            &via,
            &origin.http("/mail"),
            &format!("{{\"to\":\"{EMAIL}\"}}"),
        )
        .await;
        assert_eq!(out.status, 403, "{}", out.body);
    }
    assert!(requests_total(&a, "block").await > 0 && requests_total(&b, "block").await > 0);

    // Kill b mid-run: every request still succeeds (HAProxy redispatches refused
    // connections; curl retries a connection cut by the kill).
    let before_a = requests_total(&a, "allow").await;
    for i in 0..20 {
        if i == 5 {
            // SAFETY: kill(2) on the child we started.
            unsafe {
                libc::kill(b.pid() as i32, libc::SIGKILL);
            }
        }
        let out = post(&via, &origin.http("/failover"), &format!("{{\"n\":{i}}}")).await;
        assert_eq!(out.status, 200, "request {i}: {} {}", out.body, out.stderr);
    }
    assert!(!b.alive());
    assert!(requests_total(&a, "allow").await >= before_a + 15);
    let served = origin
        .requests()
        .iter()
        .filter(|r| r.path == "/failover")
        .count();
    assert!(served >= 20, "origin saw {served} of 20");

    // Per-instance audit files, each verifying with the shared keys.
    drop(lb);
    a.terminate();
    for n in [1, 2] {
        let log = shared.path().join(format!("audit-{n}.jsonl"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
            .args(["audit", "verify"])
            .arg(&log)
            .arg("--key")
            .arg(&hmac)
            .output()
            .unwrap();
        assert_success(&out);
    }
}

// ---------------------------------------------------------------------------------------
// Pseudonymization across the fleet (issue 11 item 3, issue 10 item 4): what the
// instances must share is the pseudonym key (`[pseudonymize] key_file`), nothing else.

/// A model on 127.0.0.1 that answers every chat completion with a stream of 3-byte
/// `delta.content` fragments repeating every message of the conversation (so the answer
/// quotes the placeholders the instance in front of it sent), and records what it saw.
async fn start_echo_model() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let text = String::from_utf8_lossy(&body).into_owned();
                            s.lock().unwrap().push(text);
                            let doc: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let said: Vec<&str> = doc["messages"]
                                .as_array()
                                .map(|m| m.iter().filter_map(|m| m["content"].as_str()).collect())
                                .unwrap_or_default();
                            let said = said.join(" | ");
                            let mut sse = String::new();
                            let chars: Vec<char> = said.chars().collect();
                            for piece in chars.chunks(3) {
                                let piece: String = piece.iter().collect();
                                sse.push_str(&format!(
                                "data: {}\n\n",
                                serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}}]})
                            ));
                            }
                            sse.push_str("data: [DONE]\n\n");
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "text/event-stream")
                                    .body(Full::new(bytes::Bytes::from(sse)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// The text a chat-completions client assembles from a streamed answer.
fn streamed_text(body: &str) -> String {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|d| {
            d["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

async fn placeholders_total(p: &Proxy, result: &str) -> u64 {
    let m = curl(&[&format!("http://{}/metrics", p.admin.unwrap())])
        .await
        .body;
    m.lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "clawguard_placeholders_total{{result=\"{result}\"}} "
            ))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Two instances with *separate* CA directories and nothing in common but
/// `[pseudonymize] key_file`: an agent's conversation, spread over both by HAProxy's
/// round robin, gets one placeholder for its mobile number from either instance, and
/// each instance restores in its streamed answer the placeholder the other one minted.
#[tokio::test]
async fn two_instances_sharing_the_pseudonym_key_restore_each_others_placeholders() {
    const PHONE: &str = "13800138000";
    if !require_peer("haproxy") || !require_peer("curl") {
        return;
    }
    let (model, seen) = start_echo_model().await;
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("pseudonym.key");
    let config = format!(
        "llm_hosts = [\"127.0.0.1\"]\n[pseudonymize]\nkey_file = {:?}\n",
        key.to_str().unwrap()
    );
    let extra = ["--allow-private", "--admin", "127.0.0.1:0"];
    let a = Proxy::start_with(&config, std::path::Path::new(""), &extra);
    let b = Proxy::start_with(&config, std::path::Path::new(""), &extra);
    let lb = Haproxy::start(&[(&a, a.admin.unwrap()), (&b, b.admin.unwrap())]);
    let via = lb.url();
    let url = format!("http://{model}/v1/chat/completions");

    // The agent's conversation grows by one turn per request; it holds the real values
    // (its answers came back restored), so every request re-sends the number in clear.
    let mut messages =
        vec![serde_json::json!({"role": "user", "content": format!("text {PHONE} the time")})];
    for turn in 0..6 {
        let body = serde_json::json!({"model": "m", "stream": true, "messages": messages});
        let out = post(&via, &url, &body.to_string()).await;
        assert_eq!(out.status, 200, "turn {turn}: {} {}", out.body, out.stderr);
        let answer = streamed_text(&out.body);
        assert!(
            answer.contains(PHONE) && !answer.contains("CG_PHONE_"),
            "turn {turn}: the answer is restored whichever instance served it: {answer}"
        );
        messages.push(serde_json::json!({"role": "assistant", "content": answer}));
        messages
            .push(serde_json::json!({"role": "user", "content": format!("and again ({turn})")}));
        if placeholders_total(&a, "restored").await > 0
            && placeholders_total(&b, "restored").await > 0
            && turn >= 1
        {
            break;
        }
    }
    assert!(
        placeholders_total(&a, "restored").await > 0,
        "instance a restored nothing"
    );
    assert!(
        placeholders_total(&b, "restored").await > 0,
        "instance b restored nothing"
    );
    let seen = seen.lock().unwrap().join("\n");
    assert!(
        !seen.contains(PHONE),
        "the number reached the model: {seen}"
    );
    let distinct: std::collections::BTreeSet<&str> = seen
        .match_indices("CG_PHONE_")
        .map(|(i, _)| &seen[i..i + "CG_PHONE_".len() + 13])
        .collect();
    assert_eq!(
        distinct.len(),
        1,
        "one placeholder for the number, whichever instance minted it: {distinct:?}"
    );
    // Neither instance got an own CA directory's key: the shared file is the key.
    assert_ne!(
        std::fs::read(&a.ca_pem).unwrap(),
        std::fs::read(&b.ca_pem).unwrap(),
        "the instances share nothing but the pseudonym key"
    );
}
