//! Latency ClawGuard adds to a Squid fleet as its ICAP REQMOD service: the same POST
//! through Squid alone and through Squid + `clawguard icap`, on loopback.
//!
//! ```text
//! cargo bench --bench squid_icap     # full run (release); prints a Markdown table
//! cargo test --bench squid_icap      # smoke run: a few requests per setup
//! ```
//!
//! One keep-alive HTTP/1.1 connection to Squid, requests one at a time (concurrency 1),
//! a 1 KB benign chat-completions body (fully inspected, nothing to block or redact:
//! ClawGuard answers `204` after a preview, the common case). Rounds alternate between
//! the two Squids so machine load hits both alike. Squid, ClawGuard, the origin and
//! this client share the machine's cores.

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::Bytes;
use common::squid::{Squid, SquidOptions};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};

fn body() -> Bytes {
    let filler = "the agent reads files and summarises them for the user; ".repeat(16);
    Bytes::from(
        serde_json::json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "You are helpful."},
                         {"role": "user", "content": filler}],
        })
        .to_string(),
    )
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(squid: &Squid) -> Sender {
    let s = tokio::net::TcpStream::connect(("127.0.0.1", squid.port))
        .await
        .unwrap();
    s.set_nodelay(true).unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    tx
}

async fn one(tx: &mut Sender, url: &str, body: &Bytes) -> Duration {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .header("host", url.split('/').nth(2).unwrap())
        .body(Full::new(body.clone()))
        .unwrap();
    let t = Instant::now();
    tx.ready().await.unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await.unwrap();
    t.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    if !common::require_peer("squid") {
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (warmup, rounds, per_round) = if full { (200, 10, 300) } else { (5, 2, 5) };
    let origin = common::Origin::start().await;
    let cg = common::Proxy::start_icap("", &[]);
    let plain = Squid::start(SquidOptions::default());
    let with_icap = Squid::start(SquidOptions {
        icap: Some(cg.addr),
        ..Default::default()
    });
    let url = origin.http("/v1/chat/completions");
    let body = body();
    let mut a = connect(&plain).await;
    let mut b = connect(&with_icap).await;
    for _ in 0..warmup {
        one(&mut a, &url, &body).await;
        one(&mut b, &url, &body).await;
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for _ in 0..per_round {
            ta.push(one(&mut a, &url, &body).await);
        }
        for _ in 0..per_round {
            tb.push(one(&mut b, &url, &body).await);
        }
    }
    ta.sort();
    tb.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "| setup ({} requests, 1 KB POST, concurrency 1) | median µs | p99 µs |",
        ta.len()
    );
    println!("|---|---|---|");
    for (name, t) in [("Squid alone", &ta), ("Squid + clawguard icap", &tb)] {
        println!(
            "| {name} | {:.0} | {:.0} |",
            us(percentile(t, 0.5)),
            us(percentile(t, 0.99))
        );
    }
    println!(
        "added by ClawGuard: median {:.0} µs, p99 {:.0} µs",
        us(percentile(&tb, 0.5)) - us(percentile(&ta, 0.5)),
        us(percentile(&tb, 0.99)) - us(percentile(&ta, 0.99))
    );
}
