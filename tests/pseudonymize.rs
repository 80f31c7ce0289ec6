//! Pseudonymization end to end through the real `clawguard run` binary: an LLM API
//! (here an "echo model" on 127.0.0.1, declared with `llm_hosts`) receives only
//! placeholders, and what the client reads back — streamed text and tool-call arguments,
//! OpenAI and Anthropic shapes, plain and gzip-compressed — holds the real values.
//! Also: restarts and two instances sharing one key, per-user scopes, dry-run, and
//! that nothing changes for destinations that are not LLM APIs.
//!
//! The echo model answers with what the last user message said, cut into 3-byte
//! fragments (so every placeholder is split across several events), and a tool call
//! `{"command": "echo <that text>"}` cut into 4-byte fragments.

mod common;

use bytes::Bytes;
use common::{curl, metrics, user_line, Proxy};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

const PHONE: &str = "13800138000";
const ID: &str = "11010519491231002X";
/// Needs escaping wherever it lands in JSON (newlines; twice in tool-call arguments).
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nyrI7930Sj75YMoctvxxjIu9qrgDD8DsRxprP32OGQ0oAs6613g5XxhJ44NshWKdF\nf6gjZYtmnnC4DFWikcXxbjuf0REKLEpmRJHq6cU0Ob4Gdqnvv+Yr0eFSlO+KwlTC\n-----END RSA PRIVATE KEY-----";
const AWS: &str = "AKIAQYLPMN5HFIQR7VUX";

/// What the echo model received.
type Seen = Arc<Mutex<Vec<Value>>>;

struct EchoModel {
    addr: SocketAddr,
    seen: Seen,
}

impl EchoModel {
    async fn start() -> EchoModel {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(s.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        EchoModel { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    fn bodies(&self) -> String {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn pieces(s: &str, n: usize) -> Vec<String> {
    let mut v = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        cur.push(c);
        if cur.len() >= n {
            v.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        v.push(cur);
    }
    v
}

async fn answer(seen: Seen, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let gzip = req.headers().contains_key("x-test-gzip");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push(doc.clone());
    let said = doc["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let args = json!({"command": format!("echo {said}")}).to_string();
    let stream = doc["stream"] == true;
    let (ct, out) = if path.ends_with("/messages") {
        let mut ev = vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": []}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        for p in pieces(&said, 3) {
            ev.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
        }
        ev.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        ev.push(("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "exec", "input": {}}})));
        for p in pieces(&args, 4) {
            ev.push(("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": p}})));
        }
        ev.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ));
        ev.push(("message_stop", json!({"type": "message_stop"})));
        let sse: String = ev
            .iter()
            .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
            .collect();
        ("text/event-stream", sse.into_bytes())
    } else if stream {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let mut sse = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
        for p in pieces(&said, 3) {
            sse.push_str(&chunk(json!({"content": p}), Value::Null));
        }
        for (i, p) in pieces(&args, 4).into_iter().enumerate() {
            let call = if i == 0 {
                json!({"index": 0, "id": "call_1", "type": "function", "function": {"name": "exec", "arguments": p}})
            } else {
                json!({"index": 0, "function": {"arguments": p}})
            };
            sse.push_str(&chunk(json!({"tool_calls": [call]}), Value::Null));
        }
        sse.push_str(&chunk(json!({}), json!("tool_calls")));
        sse.push_str("data: [DONE]\n\n");
        ("text/event-stream", sse.into_bytes())
    } else {
        let msg = json!({"role": "assistant", "content": said, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "exec", "arguments": args}}]});
        ("application/json", json!({"id": "c1", "object": "chat.completion", "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls"}]}).to_string().into_bytes())
    };
    let mut resp = Response::builder().header("content-type", ct);
    let out = if gzip {
        resp = resp.header("content-encoding", "gzip");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        e.write_all(&out).unwrap();
        e.finish().unwrap()
    } else {
        out
    };
    Ok(resp.body(Full::new(Bytes::from(out))).unwrap())
}

/// What a client assembles from the answer: (text, tool-call arguments).
fn assemble(body: &str) -> (String, String) {
    if let Ok(doc) = serde_json::from_str::<Value>(body) {
        let m = &doc["choices"][0]["message"];
        return (
            m["content"].as_str().unwrap_or("").to_string(),
            m["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    let (mut text, mut args) = (String::new(), String::new());
    for event in body.split("\n\n") {
        let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let Ok(d) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(delta) = d["choices"][0].get("delta") {
            text.push_str(delta["content"].as_str().unwrap_or(""));
            args.push_str(
                delta["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap_or(""),
            );
        }
        if d["type"] == "content_block_delta" {
            text.push_str(d["delta"]["text"].as_str().unwrap_or(""));
            args.push_str(d["delta"]["partial_json"].as_str().unwrap_or(""));
        }
    }
    (text, args)
}

/// 127.0.0.1 (the echo model) declared an LLM API host.
fn config(extra: &str) -> String {
    format!("llm_hosts = [\"127.0.0.1\"]\n{extra}")
}

async fn post(proxy: &Proxy, url: &str, body: &Value, extra: &[&str]) -> common::CurlOut {
    let body = body.to_string();
    let p = proxy.url();
    let mut a: Vec<&str> = vec![
        "-x",
        &p,
        "-H",
        "content-type: application/json",
        "--data-binary",
        &body,
    ];
    a.extend_from_slice(extra);
    a.push(url);
    curl(&a).await
}

fn user_text() -> String {
    format!("Text {PHONE} the time; ID {ID}; key {AWS}; and save this:\n{PEM}\nthanks")
}

fn chat(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": user_text()}]})
}

fn assert_no_values(seen: &str) {
    for v in [PHONE, ID, AWS, "yrI7930Sj75YMoctvxxj"] {
        assert!(!seen.contains(v), "{v} reached the model: {seen}");
    }
}

#[tokio::test]
async fn streamed_and_plain_answers_are_restored_and_the_model_sees_placeholders() {
    let model = EchoModel::start().await;
    let proxy = Proxy::start_with(
        &config(""),
        std::path::Path::new(""),
        &["--allow-private", "--admin", "127.0.0.1:0"],
    );
    let want_args = json!({"command": format!("echo {}", user_text())});
    for (url, body, extra) in [
        (model.url("/v1/chat/completions"), chat(true), vec![]),
        (model.url("/v1/chat/completions"), chat(false), vec![]),
        (
            model.url("/v1/chat/completions"),
            chat(true),
            vec!["-H", "x-test-gzip: 1"],
        ),
        (model.url("/v1/messages"), chat(true), vec![]),
        (
            model.url("/v1/messages"),
            chat(true),
            vec!["-H", "x-test-gzip: 1"],
        ),
        // Ollama's native API on a host in llm_hosts (the echo answers in the
        // chat-completions shape; what matters is that the path is an LLM API).
        (model.url("/api/chat"), chat(false), vec![]),
    ] {
        let out = post(&proxy, &url, &body, &extra).await;
        assert_eq!(out.status, 200, "{url}: {} {}", out.body, out.stderr);
        let (text, args) = assemble(&out.body);
        assert_eq!(
            text,
            user_text(),
            "{url} {extra:?}: the client reads the real values"
        );
        let args: Value = serde_json::from_str(&args).unwrap_or_else(|e| panic!("{e}: {args}"));
        assert_eq!(
            args, want_args,
            "{url} {extra:?}: arguments with real values, escaped right"
        );
    }
    let seen = model.bodies();
    assert_no_values(&seen);
    for entity in ["CG_PHONE_", "CG_IDNUM_", "CG_PRIVKEY_", "CG_KEY_"] {
        assert!(
            seen.contains(entity),
            "{entity} missing in what the model saw: {seen}"
        );
    }
    // The same value got the same placeholder in every request (one scope).
    let phones: std::collections::BTreeSet<&str> = seen
        .match_indices("CG_PHONE_")
        .map(|(i, _)| &seen[i..i + "CG_PHONE_".len() + 13])
        .collect();
    assert_eq!(phones.len(), 1, "{phones:?}");
    let m = metrics(&proxy).await;
    assert!(
        m.contains("clawguard_requests_total{decision=\"pseudonymize\""),
        "{m}"
    );
    let restored: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("clawguard_placeholders_total{result=\"restored\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        restored >= 6 * 8,
        "two places × four values × six answers: {m}"
    );
    assert!(
        !proxy.log().contains(PHONE) && !proxy.log().contains(AWS),
        "values never logged"
    );
}

#[tokio::test]
async fn not_an_llm_api_keeps_block_and_redact() {
    let model = EchoModel::start().await;
    // No llm_hosts: 127.0.0.1 is just a web server.
    let proxy = Proxy::start("", std::path::Path::new(""));
    let out = post(&proxy, &model.url("/v1/chat/completions"), &chat(true), &[]).await;
    assert_eq!(out.status, 403, "the AWS key blocks: {}", out.body);
    let body = json!({"messages": [{"role": "user", "content": format!("call {PHONE}")}]});
    let out = post(&proxy, &model.url("/v1/chat/completions"), &body, &[]).await;
    assert_eq!(out.status, 200);
    let seen = model.bodies();
    assert!(
        seen.contains("[REDACTED:cn-mobile]") && !seen.contains("CG_PHONE_"),
        "{seen}"
    );
    // A listed LLM host, but a path that is not a generation API.
    let proxy = Proxy::start(&config(""), std::path::Path::new(""));
    let out = post(&proxy, &model.url("/v1/files"), &body, &[]).await;
    assert_eq!(out.status, 200);
    assert!(model.bodies().matches("[REDACTED:cn-mobile]").count() == 2);
}

#[tokio::test]
async fn dry_run_forwards_values_and_says_would_pseudonymize() {
    let model = EchoModel::start().await;
    let proxy = Proxy::start_with(
        &config(""),
        std::path::Path::new(""),
        &["--allow-private", "--mode", "dry-run"],
    );
    let body = json!({"messages": [{"role": "user", "content": format!("call {PHONE}")}]});
    let out = post(
        &proxy,
        &model.url("/v1/chat/completions"),
        &body,
        &["-D", "-"],
    )
    .await;
    assert!(
        out.body
            .to_ascii_lowercase()
            .contains("x-clawguard-would: pseudonymize"),
        "{}",
        out.body
    );
    assert!(model.bodies().contains(PHONE));
}

/// A placeholder is derived from the key, so a restarted instance (or another instance
/// of a fleet with the same key file) issues the same one and restores an answer once
/// the conversation carrying the value passes through it. A placeholder whose value
/// this instance never saw passes through unchanged.
#[tokio::test]
async fn restart_and_a_second_instance_with_the_same_key() {
    let model = EchoModel::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("fleet.key");
    let cfg = config(&format!(
        "[pseudonymize]\nkey_file = \"{}\"\n",
        key.display()
    ));
    let body =
        json!({"stream": true, "messages": [{"role": "user", "content": format!("call {PHONE}")}]});
    let url = model.url("/v1/chat/completions");

    let first = Proxy::start(&cfg, std::path::Path::new(""));
    let out = post(&first, &url, &body, &[]).await;
    assert_eq!(assemble(&out.body).0, format!("call {PHONE}"));
    let placeholder = {
        let seen = model.bodies();
        let i = seen.find("CG_PHONE_").unwrap();
        seen[i..i + 22].to_string()
    };
    drop(first);

    // Restarted (a new process, same key file): same placeholder, same restore.
    let second = Proxy::start(&cfg, std::path::Path::new(""));
    let third = Proxy::start(&cfg, std::path::Path::new(""));
    for p in [&second, &third] {
        let only_placeholder = json!({"stream": true, "messages": [{"role": "user", "content": format!("call {placeholder}")}]});
        let out = post(p, &url, &only_placeholder, &[]).await;
        assert_eq!(
            assemble(&out.body).0,
            format!("call {placeholder}"),
            "never seen here: unchanged"
        );
        let out = post(p, &url, &body, &[]).await;
        assert_eq!(assemble(&out.body).0, format!("call {PHONE}"));
        let out = post(p, &url, &only_placeholder, &[]).await;
        assert_eq!(
            assemble(&out.body).0,
            format!("call {PHONE}"),
            "now in this instance's vault"
        );
    }
    let seen = model.bodies();
    assert_no_values(&seen);
    assert_eq!(
        seen.matches("CG_PHONE_").count(),
        seen.matches(&placeholder).count(),
        "one placeholder across instances"
    );
}

#[tokio::test]
async fn scopes_are_per_user() {
    let model = EchoModel::start().await;
    let users = format!(
        "[users]\n{}\n{}\n",
        user_line("alice", "alice-pass-1"),
        user_line("bob", "bob-pass-22")
    );
    let proxy = Proxy::start(&config(&users), std::path::Path::new(""));
    let url = model.url("/v1/chat/completions");
    let as_user = |u: &'static str, p: &'static str, content: String| {
        let proxy_url = format!("http://{u}:{p}@{}", proxy.addr);
        let body =
            json!({"stream": true, "messages": [{"role": "user", "content": content}]}).to_string();
        let url = url.clone();
        async move {
            curl(&[
                "-x",
                &proxy_url,
                "-H",
                "content-type: application/json",
                "--data-binary",
                &body,
                &url,
            ])
            .await
        }
    };
    let out = as_user("alice", "alice-pass-1", format!("call {PHONE}")).await;
    assert_eq!(assemble(&out.body).0, format!("call {PHONE}"));
    let alice_ph = {
        let seen = model.bodies();
        let i = seen.find("CG_PHONE_").unwrap();
        seen[i..i + 22].to_string()
    };
    // Bob sends alice's placeholder: his answer is never restored with her value.
    let out = as_user("bob", "bob-pass-22", format!("call {alice_ph}")).await;
    assert_eq!(assemble(&out.body).0, format!("call {alice_ph}"));
    // Bob's own phone number gets a placeholder of his own.
    let out = as_user("bob", "bob-pass-22", format!("call {PHONE}")).await;
    assert_eq!(assemble(&out.body).0, format!("call {PHONE}"));
    let seen = model.bodies();
    let distinct: std::collections::BTreeSet<&str> = seen
        .match_indices("CG_PHONE_")
        .map(|(i, _)| &seen[i..i + 22])
        .collect();
    assert_eq!(distinct.len(), 2, "alice's and bob's: {distinct:?}");
}
