//! Restore and pseudonymization costs: `cargo bench --bench restore`.
//!
//! - `restore/*`: [`ResponseRestorer`] over 1 MiB SSE streams of small Chat Completions
//!   events, fed in 16 KiB reads like a TCP stream: text deltas without placeholders,
//!   with a placeholder split across two events in one event out of ten, and tool-call
//!   argument fragments (every event of such a stream is lexed to follow the JSON it
//!   carries). Throughput is in events, so time per event = 1 / (events/s).
//! - `restore/first_event`: building the restorer for a response and passing its first
//!   event: what restoring adds to the time to first byte.
//! - `pseudonymize/*`: the detection engine on the 64 KiB chat body of
//!   `benches/proxy.rs`'s kind with 24 findings planted, to an LLM API (pseudonymized)
//!   and to another host (redacted): what pseudonymizing costs over redacting.

use bytes::Bytes;
use clawguard::config::Config;
use clawguard::detect::engine::{Engine, RequestInfo};
use clawguard::detect::policy::Decision;
use clawguard::detect::pseudonymize::restore::{ApiKind, ResponseRestorer};
use clawguard::detect::pseudonymize::{Pseudonymizer, Restorer, Scope};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::HeaderMap;
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;

const READ: usize = 16 * 1024;
const STREAM: usize = 1 << 20;

fn restorer() -> (Restorer, Vec<String>) {
    let p = Pseudonymizer::ephemeral();
    let mut issuer = p.issuer(Scope::user("bench"));
    let phs = (0..50)
        .map(|i| {
            issuer
                .issue("PHONE", format!("138001380{i:02}").as_bytes())
                .unwrap()
        })
        .collect();
    (issuer.into_restorer(), phs)
}

fn chunk(delta: serde_json::Value) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
    )
}

/// About 1 MiB of SSE: (bytes, events). `every`: one event in `every` starts a
/// placeholder that the next event finishes (0: none). `args`: tool-call fragments.
fn stream(phs: &[String], every: usize, args: bool) -> (Vec<u8>, u64) {
    let words = [
        "the ", "agent ", "reads ", "files ", "and ", "writes ", "a ", "reply. ",
    ];
    let mut out = String::new();
    let mut n = 0u64;
    let mut i = 0usize;
    while out.len() < STREAM {
        let text = if every > 0 && i % every == 0 {
            let p = &phs[i % phs.len()];
            format!("call {}", &p[..10])
        } else if every > 0 && i % every == 1 {
            let p = &phs[(i - 1) % phs.len()];
            format!("{} now ", &p[10..])
        } else {
            words[i % words.len()].to_string()
        };
        out.push_str(&if args {
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": text}}]}))
        } else {
            chunk(json!({"content": text}))
        });
        n += 1;
        i += 1;
    }
    (out.into_bytes(), n)
}

fn sse_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", "text/event-stream".parse().unwrap());
    h
}

fn run(r: &Restorer, body: &[u8]) -> usize {
    let mut f = ResponseRestorer::new(r.clone(), ApiKind::ChatCompletions, &sse_headers(), 1 << 20)
        .unwrap();
    let mut total = 0;
    let mut out = Vec::with_capacity(READ * 2);
    for piece in body.chunks(READ) {
        f.push(piece, &mut out).unwrap();
        total += out.len();
        out.clear();
    }
    f.finish(&mut out).unwrap();
    total + out.len()
}

fn restored(r: &Restorer, body: &[u8]) -> Vec<u8> {
    let mut f = ResponseRestorer::new(r.clone(), ApiKind::ChatCompletions, &sse_headers(), 1 << 20)
        .unwrap();
    let mut out = Vec::new();
    for piece in body.chunks(READ) {
        f.push(piece, &mut out).unwrap();
    }
    f.finish(&mut out).unwrap();
    out
}

fn restore(c: &mut Criterion) {
    let (r, phs) = restorer();
    let mut g = c.benchmark_group("restore");
    g.sample_size(20);
    for (name, every, args) in [
        ("sse_1MiB_text_no_placeholders", 0, false),
        ("sse_1MiB_text_placeholder_every_10th_event", 10, false),
        ("sse_1MiB_tool_arguments_no_placeholders", 0, true),
        (
            "sse_1MiB_tool_arguments_placeholder_every_10th_event",
            10,
            true,
        ),
    ] {
        let (body, events) = stream(&phs, every, args);
        // Sanity, outside the timing: every placeholder restored, nothing else changed.
        let out = restored(&r, &body);
        assert!(memchr::memmem::find(&out, b"CG_PHONE_").is_none());
        if every == 0 {
            assert_eq!(out, body);
        }
        g.throughput(Throughput::Elements(events));
        g.bench_function(name, |b| b.iter(|| run(&r, black_box(&body))));
    }
    let first = chunk(json!({"role": "assistant", "content": "Hello"}));
    g.throughput(Throughput::Elements(1));
    g.bench_function("first_event", |b| {
        b.iter(|| {
            let mut f =
                ResponseRestorer::new(r.clone(), ApiKind::ChatCompletions, &sse_headers(), 1 << 20)
                    .unwrap();
            let mut out = Vec::new();
            f.push(black_box(first.as_bytes()), &mut out).unwrap();
            out.len()
        })
    });
    g.finish();
}

/// A 64 KiB chat-completions body like benches/proxy.rs's, with `findings` planted.
fn chat_body(findings: usize) -> Bytes {
    let filler = "the agent reads files in the workspace and summarises results for the user. ";
    let mut messages = vec![json!({"role": "system", "content": filler.repeat(200)})];
    for i in 0..findings {
        let phone = format!("1380013{:04}", 8000 + i);
        messages.push(json!({"role": "user", "content": format!("{} text {phone} about it. {}", filler.repeat(4), filler.repeat(4))}));
    }
    let mut body = json!({"model": "m", "stream": true, "messages": messages});
    while body.to_string().len() < 64 * 1024 {
        body["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "assistant", "content": filler.repeat(8)}));
    }
    Bytes::from(body.to_string())
}

fn pseudonymize(c: &mut Criterion) {
    let engine = Engine::new(&Config::embedded())
        .unwrap()
        .with_pseudonymizer(Arc::new(Pseudonymizer::ephemeral()));
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let method = http::Method::POST;
    let mut g = c.benchmark_group("pseudonymize");
    g.sample_size(30);
    for findings in [0, 24] {
        let body = chat_body(findings);
        g.throughput(Throughput::Bytes(body.len() as u64));
        for (route, host) in [("llm", "api.openai.com"), ("other", "api.example.com")] {
            let uri: http::Uri = format!("https://{host}/v1/chat/completions")
                .parse()
                .unwrap();
            let info = RequestInfo {
                method: &method,
                uri: &uri,
                host,
                port: 443,
                headers: &headers,
                client: "127.0.0.1:1".parse().unwrap(),
                request_id: "bench",
                floor: None,
            };
            let decision = engine.inspect_for_llm(&info, &body, None).1.decision;
            let want = match (findings, route) {
                (0, _) => Decision::Allow,
                (_, "llm") => Decision::Pseudonymize,
                _ => Decision::Redact,
            };
            assert_eq!(decision, want, "{route} with {findings} findings");
            g.bench_function(format!("64KiB_{findings}_findings_to_{route}"), |b| {
                b.iter(|| {
                    engine
                        .inspect_for_llm(&info, black_box(&body), None)
                        .1
                        .decision
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, restore, pseudonymize);
criterion_main!(benches);
