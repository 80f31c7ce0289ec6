//! The engine's cost per request on benign LLM request bodies (nothing to block or
//! redact): every reading and every layer trigger runs, nothing fires.
//!
//! ```text
//! cargo bench --bench inspect                      # criterion, wall clock
//! CLAWGUARD_INSPECT_ITERS=200 valgrind --tool=callgrind \
//!     target/release/deps/inspect-HASH --bench     # instruction counts, load-independent
//! ```
//!
//! Bodies: OpenAI chat-completions JSON of ~1 KB and ~64 KB (system prompt, turns with
//! prose, code and Chinese text, a tool call whose `arguments` is a JSON document, tool
//! definitions), deterministic.

use bytes::Bytes;
use clawguard::config::Mode;
use clawguard::detect::engine::{Engine, RequestInfo, Verdict};
use clawguard::detect::rules::RulePack;
use criterion::{Criterion, Throughput};

fn llm_body(target: usize) -> Bytes {
    const PROSE: &[&str] = &[
        "The agent reads the files in the workspace and summarises the results for the user.",
        "def load(path):\n    with open(path) as f:\n        return json.load(f)  # 100% of cases",
        "请帮我总结一下这个项目的构建状态，并列出失败的测试。",
        "fn main() { let v: Vec<u32> = (0..10).collect(); println!(\"{v:?}\"); }",
        "Build finished in 3m 08s; 412 tests passed, 2 skipped. See https://ci.example.com/run/8812?tab=logs&x=1",
        "<p>Release notes &amp; changes: faster startup, fewer allocations.</p>",
    ];
    let mut messages = vec![
        serde_json::json!({"role": "system", "content": "You are a helpful coding assistant."}),
    ];
    let mut i = 0;
    while serde_json::to_vec(&messages).unwrap().len() < target.saturating_sub(600) {
        let text: Vec<&str> = (0..4).map(|k| PROSE[(i + k) % PROSE.len()]).collect();
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(serde_json::json!({"role": role, "content": text.join("\n")}));
        i += 1;
    }
    let args = serde_json::json!({"command": "cargo test --release", "timeout": 120}).to_string();
    messages.push(
        serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_8f2a", "type": "function", "function": {"name": "exec", "arguments": args}}]}),
    );
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "messages": messages,
        "tools": [{"type": "function", "function": {"name": "exec", "description": "Run a shell command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}],
    });
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

struct Request {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl Request {
    fn new() -> Request {
        let mut headers = http::HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("authorization", "Bearer not-a-real-token"),
            ("user-agent", "OpenAI/JS 4.77.0"),
            ("accept", "application/json"),
            ("x-stainless-os", "Linux"),
            ("x-stainless-lang", "js"),
        ] {
            headers.insert(k, v.parse().unwrap());
        }
        Request {
            method: http::Method::POST,
            uri: "https://api.openai.com/v1/chat/completions"
                .parse()
                .unwrap(),
            headers,
        }
    }

    fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: &self.method,
            uri: &self.uri,
            host: "api.openai.com",
            port: 443,
            headers: &self.headers,
            client: "127.0.0.1:5000".parse().unwrap(),
            request_id: "bench",
            floor: None,
        }
    }
}

fn main() {
    let engine = Engine::with_pack(&RulePack::builtin(), Mode::Enforce, false, 16 << 20).unwrap();
    let req = Request::new();
    let bodies = [("1KB", llm_body(1024)), ("64KB", llm_body(64 * 1024))];
    for (name, b) in &bodies {
        assert!(
            matches!(
                engine.inspect(&req.info(), b),
                Verdict::Pass { would: None }
            ),
            "{name} body is not benign"
        );
    }
    if let Some(n) = std::env::var("CLAWGUARD_INSPECT_ITERS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        // A fixed amount of work for instruction counting.
        for _ in 0..n {
            for (_, b) in &bodies {
                std::hint::black_box(engine.inspect(&req.info(), b));
            }
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("inspect");
    g.sample_size(30);
    for (name, b) in &bodies {
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(format!("benign_llm_{name}"), |bench| {
            bench.iter(|| engine.inspect(&req.info(), b))
        });
    }
    g.finish();
    c.final_summary();
}
