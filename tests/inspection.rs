//! End-to-end inspection (issue 3): the real `clawguard run` binary between real clients
//! (curl, Python `requests`, Node undici) and a recording origin, all on 127.0.0.1.
//!
//! Only rules that exist in every version of the built-in packs are relied on
//! (`aws-access-key-id`, `cn-resident-id`, `email`); anything else comes from a rule
//! directory written by the test and passed with `--rules`.
//!
//! No assertion is about time: waits are bounded by `PATIENCE` only so that a broken proxy
//! fails instead of hanging.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `aws-access-key-id` (credential, action block).
const AWS_KEY: &str = "AKIAQYLPMN5HFIQR7VUX";
/// `cn-resident-id` (pii, action redact).
const RESIDENT_ID: &str = "11010519491231002X";
/// `email` (pii, action redact).
const EMAIL: &str = "li.wei.leak@example.org";
/// Matched by the test rule `test-agent-key` (home host: localhost).
const AGENT_KEY: &str = "cgkey_Zq8vN3kLm2Rt5Xw9Yb4Hc7Jd";

fn chat_body(content: &str) -> String {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": content},
        ],
    })
    .to_string()
}

/// An OpenAI chat request shaped like OpenClaw's: the personal data is in the user turn,
/// in a tool call's `arguments` (a JSON document inside a JSON string) and in the tool
/// result.
fn tool_call_body() -> String {
    let arguments = serde_json::json!({
        "command": format!("notify --to {EMAIL} --id {RESIDENT_ID}"),
        "timeout": 30,
    })
    .to_string();
    serde_json::json!({
        "model": "fake-model",
        "stream": true,
        "messages": [
            {"role": "system", "content": "You are a personal assistant running inside OpenClaw."},
            {"role": "user", "content": format!("Mail {EMAIL} that ID {RESIDENT_ID} was verified.")},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1",
                "type": "function",
                "function": {"name": "exec", "arguments": arguments},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": format!("sent to {EMAIL}")},
        ],
        "tools": [{"type": "function", "function": {
            "name": "exec",
            "description": "Run shell; pty for TTY CLIs",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        }}],
    })
    .to_string()
}

/// The body with every personal value replaced by its redaction marker, and nothing else
/// changed (markers need no JSON escaping, so plain text replacement is exact even inside
/// the nested `arguments` string).
fn redacted(body: &str) -> String {
    body.replace(EMAIL, "[REDACTED:email]")
        .replace(RESIDENT_ID, "[REDACTED:cn-resident-id]")
}

/// Every 5-character window of `secret`: a masked preview shows at most 4 characters of
/// the head and 2 of the tail, never 5 in a row.
fn assert_no_part_of(secret: &str, haystack: &str, what: &str) {
    for i in 0..=secret.len() - 5 {
        let w = &secret[i..i + 5];
        assert!(
            !haystack.contains(w),
            "`{w}` (part of a matched value) appears in {what}:\n{haystack}"
        );
    }
}

/// The 403 body: `{"error", "request_id", "findings": [{"rule", "category", "location",
/// "path"}]}`; the path starts at the location (`body › json messages[1].content`).
fn assert_block_json(body: &str, rule: &str, category: &str, location: &str) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    let id = v["request_id"].as_str().expect(body);
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{body}"
    );
    let findings = v["findings"].as_array().expect(body);
    assert!(
        findings
            .iter()
            .any(|f| f["rule"] == rule && f["category"] == category && f["location"] == location),
        "no {rule}/{category}/{location} finding: {body}"
    );
    for f in findings {
        let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["category", "location", "path", "rule"], "{body}");
        let path = f["path"].as_str().expect(body);
        let loc = f["location"].as_str().expect(body);
        assert!(path.starts_with(loc), "{body}");
    }
}

/// Refused with 403 and the JSON reason naming `rule`/`category`/`location`, and no part
/// of `secret` in the answer's body.
fn assert_blocked(s: &Sent, rule: &str, category: &str, location: &str, secret: &str) {
    assert_eq!((s.out.exit, s.out.status), (0, 403), "{}", s.out.stderr);
    assert_block_reason(&s.out.body, rule, category, location, secret);
}

/// [`assert_block_json`], and no part of `secret` in the 403 body.
fn assert_block_reason(body: &str, rule: &str, category: &str, location: &str, secret: &str) {
    assert_block_json(body, rule, category, location);
    assert_no_part_of(secret, body, "the 403 body");
}

/// The two bodies the transport and client tests send, as files (every client sends
/// them byte for byte): a chat body leaking [`AWS_KEY`], and [`tool_call_body`].
struct Bodies {
    leak: PathBuf,
    pii: PathBuf,
    /// The tool-call body as sent (compare with [`redacted`]).
    original: String,
    _dir: tempfile::TempDir,
}

fn bodies() -> Bodies {
    let dir = tempfile::tempdir().unwrap();
    let leak = write(
        dir.path(),
        "leak.json",
        chat_body(&format!("key {AWS_KEY}")),
    );
    let original = tool_call_body();
    let pii = write(dir.path(), "pii.json", &original);
    Bodies {
        leak,
        pii,
        original,
        _dir: dir,
    }
}

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// A rule directory with `test-agent-key`, a credential whose home host is `localhost`
/// (the name the HTTPS origin is reached by; the plain origin is `127.0.0.1`).
fn agent_key_rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    write(
        &rules,
        "agent.toml",
        format!(
            r#"[[rule]]
id = "test-agent-key"
category = "credential"
description = "Test agent API key"
keywords = ["cgkey_"]
regex = '''\bcgkey_[A-Za-z0-9]{{24}}\b'''
action = "block"
home_hosts = ["localhost"]
match = ["Bearer {AGENT_KEY}"]
no_match = ["cgkey_short"]
"#
        ),
    );
    rules
}

/// curl through the proxy trusting its CA, keeping the response headers.
struct Sent {
    out: CurlOut,
    headers: String,
}

impl Sent {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().rev().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

async fn send(proxy: &Proxy, extra: &[&str], url: &str) -> Sent {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("headers");
    let proxy_url = proxy.url();
    let mut args = vec![
        "-x",
        &proxy_url,
        "--cacert",
        path_str(&proxy.ca_pem),
        "-D",
        path_str(&head),
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = curl(&args).await;
    let headers = std::fs::read_to_string(&head).unwrap_or_default();
    Sent { out, headers }
}

/// POST `body` (a file, so binary bodies survive) with `content_type`.
async fn post(proxy: &Proxy, body: &Path, content_type: &str, extra: &[&str], url: &str) -> Sent {
    let data = format!("@{}", body.display());
    let ct = format!("Content-Type: {content_type}");
    let mut args = vec!["--data-binary", &data, "-H", &ct];
    args.extend_from_slice(extra);
    send(proxy, &args, url).await
}

// ---------------------------------------------------------------------------------
// Block

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_in_json_body_is_blocked_and_never_echoed() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    let body = write(
        dir.path(),
        "b.json",
        chat_body(&format!("deploy with aws_access_key_id={AWS_KEY} please")),
    );
    for url in [origin.https("/block"), origin.http("/block")] {
        let s = post(&proxy, &body, "application/json", &[], &url).await;
        assert_blocked(&s, "aws-access-key-id", "credential", "body", AWS_KEY);
        assert_no_part_of(AWS_KEY, &s.headers, "the 403 headers");
        assert!(
            s.header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "{}",
            s.headers
        );
    }
    assert!(
        origin.requests().is_empty(),
        "the origin was contacted: {:?}",
        origin.requests()
    );
    // The request line is logged after the findings.
    proxy.wait_for_log_count("status=403", 2).await;
    let log = proxy.log();
    assert!(log.contains("aws-access-key-id"), "{log}");
    assert_no_part_of(AWS_KEY, &log, "the proxy log");
}

// ---------------------------------------------------------------------------------
// Redact

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_in_json_is_redacted_also_inside_tool_call_arguments() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    let original = tool_call_body();
    let body = write(dir.path(), "b.json", &original);
    for (path, url) in [
        ("/redact-tls", origin.https("/redact-tls")),
        ("/redact-plain", origin.http("/redact-plain")),
    ] {
        let s = post(&proxy, &body, "application/json", &[], &url).await;
        assert_eq!((s.out.exit, s.out.status), (0, 200), "{}", s.out.stderr);
        assert_eq!(s.out.body, "origin ok");
        let r = origin.last(path);
        let got = std::str::from_utf8(&r.body).unwrap();
        // Only the spans changed.
        assert_eq!(got, redacted(&original));
        assert!(!got.contains(EMAIL) && !got.contains(RESIDENT_ID), "{got}");
        assert_eq!(
            r.headers["content-length"].to_str().unwrap(),
            r.body_len.to_string()
        );
        // Still JSON, and the nested arguments are still JSON with the markers in place.
        let doc: serde_json::Value = serde_json::from_str(got).unwrap();
        let args = doc["messages"][2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let inner: serde_json::Value = serde_json::from_str(args).unwrap();
        assert_eq!(
            inner["command"],
            "notify --to [REDACTED:email] --id [REDACTED:cn-resident-id]"
        );
        assert_eq!(inner["timeout"], 30);
    }
    proxy.wait_for_log_count("status=200", 2).await;
    let log = proxy.log();
    assert!(
        log.contains("email") && log.contains("cn-resident-id"),
        "{log}"
    );
    assert!(
        !log.contains(EMAIL) && !log.contains(RESIDENT_ID),
        "raw value in the log:\n{log}"
    );
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_body_is_redacted_and_stays_a_form() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    let form = format!(
        "name=Li+Wei&contact={}&id={RESIDENT_ID}&note=see+you%21",
        EMAIL.replace('@', "%40")
    );
    let body = write(dir.path(), "b.form", &form);
    let s = post(
        &proxy,
        &body,
        "application/x-www-form-urlencoded",
        &[],
        &origin.https("/form"),
    )
    .await;
    assert_eq!((s.out.exit, s.out.status), (0, 200), "{}", s.out.stderr);
    let r = origin.last("/form");
    assert_eq!(
        form_fields(&r.body),
        [
            ("name".to_string(), "Li Wei".to_string()),
            ("contact".into(), "[REDACTED:email]".into()),
            ("id".into(), "[REDACTED:cn-resident-id]".into()),
            ("note".into(), "see you!".into()),
        ]
    );
    assert_eq!(
        r.headers["content-length"].to_str().unwrap(),
        r.body_len.to_string()
    );
    assert_eq!(
        r.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_body_is_redacted_part_by_part() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    let notes = write(
        dir.path(),
        "notes.txt",
        format!("customer {EMAIL}\nresident id {RESIDENT_ID}\n"),
    );
    let field = format!("comment=reach me at {EMAIL}");
    let file = format!("file=@{};type=text/plain", notes.display());
    let s = send(
        &proxy,
        &["-F", &field, "-F", &file],
        &origin.https("/multipart"),
    )
    .await;
    assert_eq!((s.out.exit, s.out.status), (0, 200), "{}", s.out.stderr);
    let r = origin.last("/multipart");
    let got = std::str::from_utf8(&r.body).unwrap();
    assert!(!got.contains(EMAIL) && !got.contains(RESIDENT_ID), "{got}");
    let ct = r.headers["content-type"].to_str().unwrap();
    let boundary = ct.split("boundary=").nth(1).expect(ct);
    // Both parts are still there, framed by the same boundary, with markers in place.
    assert_eq!(got.matches(&format!("--{boundary}")).count(), 3, "{got}");
    assert!(got.ends_with(&format!("--{boundary}--\r\n")), "{got}");
    assert!(
        got.contains("name=\"comment\"\r\n\r\nreach me at [REDACTED:email]\r\n"),
        "{got}"
    );
    assert!(
        got.contains("filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\ncustomer [REDACTED:email]\nresident id [REDACTED:cn-resident-id]\n\r\n"),
        "{got}"
    );
    assert_eq!(
        r.headers["content-length"].to_str().unwrap(),
        r.body_len.to_string()
    );
}

// ---------------------------------------------------------------------------------
// Dry run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_forwards_unchanged_and_says_what_it_would_do() {
    let origin = Origin::start().await;
    let proxy = Proxy::start_with(
        "",
        &origin.ca_pem,
        &["--allow-private", "--mode", "dry-run"],
    );
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "/dry-block",
            chat_body(&format!("key {AWS_KEY}")),
            "block",
            "aws-access-key-id",
        ),
        ("/dry-redact", tool_call_body(), "redact", "cn-resident-id"),
    ];
    for (i, (path, text, would, rule)) in cases.into_iter().enumerate() {
        let body = write(dir.path(), "b.json", &text);
        let s = post(&proxy, &body, "application/json", &[], &origin.https(path)).await;
        assert_eq!((s.out.exit, s.out.status), (0, 200), "{}", s.out.stderr);
        assert_eq!(s.out.body, "origin ok");
        assert_eq!(
            s.header("x-clawguard-would").as_deref(),
            Some(would),
            "{}",
            s.headers
        );
        let r = origin.last(path);
        assert_eq!(&r.body[..], text.as_bytes(), "{path}: body changed");
        proxy.wait_for_log_count("status=200", i + 1).await;
        let log = proxy.log();
        let line = log
            .lines()
            .find(|l| l.contains(&format!("{rule}=")) && l.contains("would"))
            .unwrap_or_else(|| panic!("no dry-run line for {rule}:\n{log}"));
        assert!(line.contains("locations=body"), "{line}");
        assert!(line.contains("examples="), "{line}");
    }
    // A masked preview (first 4, last 2 characters) is all the log holds of the key.
    let log = proxy.log();
    assert!(log.contains("AKIA********UX"), "{log}");
    assert_no_part_of(AWS_KEY, &log, "the proxy log");
    assert!(!log.contains(EMAIL) && !log.contains(RESIDENT_ID), "{log}");
    // A clean request carries no verdict header.
    let body = write(dir.path(), "clean.json", chat_body("hello"));
    let s = post(
        &proxy,
        &body,
        "application/json",
        &[],
        &origin.https("/dry-clean"),
    )
    .await;
    assert_eq!(s.out.status, 200, "{}", s.out.stderr);
    assert_eq!(s.header("x-clawguard-would"), None, "{}", s.headers);
}

// ---------------------------------------------------------------------------------
// Home host

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_goes_to_its_home_host_only_in_a_header() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = agent_key_rules(dir.path());
    let proxy = Proxy::start_with(
        "",
        &origin.ca_pem,
        &["--allow-private", "--rules", path_str(&rules)],
    );
    let auth = format!("Authorization: Bearer {AGENT_KEY}");
    let body = write(dir.path(), "b.json", chat_body("hello"));

    // Its own key, in Authorization, to its home host (https://localhost:PORT): passes.
    let s = post(
        &proxy,
        &body,
        "application/json",
        &["-H", &auth],
        &origin.https("/home"),
    )
    .await;
    assert_eq!((s.out.exit, s.out.status), (0, 200), "{}", s.out.stderr);
    let r = origin.last("/home");
    assert_eq!(
        r.headers["authorization"].to_str().unwrap(),
        format!("Bearer {AGENT_KEY}")
    );
    proxy.wait_for_log("home-host").await;

    // The same header to another host (127.0.0.1 is not `localhost`): a leak.
    let s = post(
        &proxy,
        &body,
        "application/json",
        &["-H", &auth],
        &origin.http("/elsewhere"),
    )
    .await;
    assert_blocked(&s, "test-agent-key", "credential", "header", AGENT_KEY);

    // In the body, even to its home host: content, not authentication.
    let leaked = write(
        dir.path(),
        "leak.json",
        chat_body(&format!("my key is {AGENT_KEY}")),
    );
    let s = post(
        &proxy,
        &leaked,
        "application/json",
        &["-H", &auth],
        &origin.https("/home-body"),
    )
    .await;
    assert_blocked(&s, "test-agent-key", "credential", "body", AGENT_KEY);

    let seen: Vec<String> = origin.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/home"]);
    proxy.wait_for_log_count("status=403", 2).await;
    assert_no_part_of(AGENT_KEY, &proxy.log(), "the proxy log");
}

// ---------------------------------------------------------------------------------
// Benign bodies are not touched

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_json_body_arrives_byte_identical() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    let json = chat_body(&"Summarise the quarterly report, please. ".repeat(200));
    let wire = gzip(json.as_bytes());
    let body = write(dir.path(), "b.json.gz", &wire);
    for (path, url) in [
        ("/gz-tls", origin.https("/gz-tls")),
        ("/gz-plain", origin.http("/gz-plain")),
    ] {
        let s = post(
            &proxy,
            &body,
            "application/json",
            &["-H", "Content-Encoding: gzip"],
            &url,
        )
        .await;
        assert_eq!((s.out.exit, s.out.status), (0, 200), "{}", s.out.stderr);
        let r = origin.last(path);
        assert_eq!(&r.body[..], &wire[..], "{path}: compressed bytes changed");
        assert_eq!(r.headers["content-encoding"], "gzip");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_binary_upload_arrives_byte_identical() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    // 12 MiB of pseudo-random bytes (under the default 16 MiB cap, so it is inspected).
    // `@` is remapped: uniformly random bytes hold about one e-mail-shaped run (`5@x.yz`)
    // per 12 MiB, and a `redact` finding in a binary body escalates to block (a known
    // false-positive risk for real uploads). This test is about byte identity.
    let mut data = vec![0u8; 12 << 20];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = match x as u8 {
            b'@' => 0xC0,
            v => v,
        };
    }
    let body = write(dir.path(), "upload.bin", &data);
    let s = post(
        &proxy,
        &body,
        "application/octet-stream",
        &[],
        &origin.https("/upload"),
    )
    .await;
    assert_eq!(
        (s.out.exit, s.out.status),
        (0, 200),
        "{}{}",
        s.out.stderr,
        s.out.body
    );
    let r = origin.last("/upload");
    assert_eq!(r.body_len, data.len());
    assert!(r.body[..] == data[..], "upload changed on the way");
}

// ---------------------------------------------------------------------------------
// Bodies that cannot be inspected

/// ~1 GiB of zeros, gzip-compressed (~1 MiB), built by streaming.
fn gzip_bomb(path: &Path) -> u64 {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap().flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_is_refused_without_exhausting_memory() {
    let origin = Origin::start().await;
    let mut proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.gz");
    let size = gzip_bomb(&bomb);
    assert!(size < 8 << 20, "the bomb is {size} bytes compressed");
    for url in [origin.https("/bomb"), origin.http("/bomb")] {
        let s = post(
            &proxy,
            &bomb,
            "application/json",
            &["-H", "Content-Encoding: gzip"],
            &url,
        )
        .await;
        assert_eq!(s.out.status, 413, "{}", s.out.stderr);
        let v: serde_json::Value = serde_json::from_str(&s.out.body).expect(&s.out.body);
        assert!(v["error"].as_str().is_some(), "{}", s.out.body);
    }
    assert!(origin.requests().is_empty());
    // Still alive, still serving.
    assert!(proxy.alive(), "{}", proxy.log());
    let s = send(&proxy, &[], &origin.https("/after-bomb")).await;
    assert_eq!((s.out.exit, s.out.status), (0, 200), "{}", s.out.stderr);
    let peak = proxy.peak_rss_kib().expect("VmHWM readable");
    eprintln!("proxy peak RSS (VmHWM) after two 1 GiB gzip bombs: {peak} KiB");
    assert!(
        peak < 512 * 1024,
        "proxy peak RSS {peak} KiB after a gzip bomb"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_body_is_422_unless_fail_open() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"\x1f\x8b\x08\x00this is not a deflate stream at all \xff\xfe\xfd".repeat(8);
    let body = write(dir.path(), "garbage.gz", &garbage);
    let gz = ["-H", "Content-Encoding: gzip"];

    let proxy = Proxy::start("", &origin.ca_pem);
    let s = post(
        &proxy,
        &body,
        "application/json",
        &gz,
        &origin.https("/garbage"),
    )
    .await;
    assert_eq!(s.out.status, 422, "{}", s.out.stderr);
    let v: serde_json::Value = serde_json::from_str(&s.out.body).expect(&s.out.body);
    assert!(v["error"].as_str().is_some() && v["request_id"].as_str().is_some());
    assert!(origin.requests().is_empty());
    drop(proxy);

    let proxy = Proxy::start("fail_open = true\n", &origin.ca_pem);
    let s = post(
        &proxy,
        &body,
        "application/json",
        &gz,
        &origin.https("/garbage"),
    )
    .await;
    assert_eq!((s.out.exit, s.out.status), (0, 200), "{}", s.out.stderr);
    let r = origin.last("/garbage");
    assert_eq!(&r.body[..], &garbage[..]);
    assert_eq!(r.headers["content-encoding"], "gzip");
}

// ---------------------------------------------------------------------------------
// Other transports: h2 to the client, plain HTTP inside CONNECT

/// Over one transport (`extra` curl arguments, `url` building the origin's URL): a
/// credential in a chat body is blocked with the JSON reason and never reaches the origin;
/// the tool-call body arrives with its personal data redacted and nothing else changed.
/// Returns the two answers for the transport's own checks.
async fn block_then_redact(
    origin: &Origin,
    proxy: &Proxy,
    extra: &[&str],
    url: fn(&Origin, &str) -> String,
    (block_path, redact_path): (&str, &str),
) -> (Sent, Sent) {
    let b = bodies();
    let blocked = post(
        proxy,
        &b.leak,
        "application/json",
        extra,
        &url(origin, block_path),
    )
    .await;
    assert_blocked(&blocked, "aws-access-key-id", "credential", "body", AWS_KEY);

    let passed = post(
        proxy,
        &b.pii,
        "application/json",
        extra,
        &url(origin, redact_path),
    )
    .await;
    assert_eq!(
        (passed.out.exit, passed.out.status),
        (0, 200),
        "{}",
        passed.out.stderr
    );
    let r = origin.last(redact_path);
    assert_eq!(std::str::from_utf8(&r.body).unwrap(), redacted(&b.original));
    let paths: Vec<String> = origin.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [redact_path]);
    (blocked, passed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_inside_h2() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let (blocked, passed) = block_then_redact(
        &origin,
        &proxy,
        &["--http2"],
        Origin::https,
        ("/h2-block", "/h2-redact"),
    )
    .await;
    assert_eq!(blocked.out.http_version, "2");
    assert_eq!(passed.out.http_version, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_of_plain_http_inside_connect() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    block_then_redact(
        &origin,
        &proxy,
        &["-p"],
        Origin::http,
        ("/tunnel-block", "/tunnel-redact"),
    )
    .await;
    proxy.wait_for_log("method=CONNECT").await;
}

// ---------------------------------------------------------------------------------
// Other clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_block_and_redact() {
    if skip_without_python_requests().await {
        return;
    }
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let b = bodies();
    // requests sends the file's bytes as given; one JSON line per response.
    let script = "import sys, json, requests\n\
        p = sys.argv[1]\n\
        for url, path in zip(sys.argv[2::2], sys.argv[3::2]):\n\
        \x20   with open(path, 'rb') as f: data = f.read()\n\
        \x20   r = requests.post(url, data=data, headers={'Content-Type': 'application/json'}, proxies={'http': p, 'https': p}, timeout=60)\n\
        \x20   print(json.dumps({'status': r.status_code, 'body': r.text}))\n";
    let out = command("python3")
        .args([
            "-c",
            script,
            &proxy.url(),
            &origin.https("/py-block"),
            path_str(&b.leak),
            &origin.https("/py-redact"),
            path_str(&b.pii),
            &origin.http("/py-redact-plain"),
            path_str(&b.pii),
        ])
        .env("REQUESTS_CA_BUNDLE", &proxy.ca_pem)
        .output()
        .await
        .unwrap();
    let stdout = assert_success(&out);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["status"], 403, "{stdout}");
    let blocked = lines[0]["body"].as_str().unwrap();
    assert_block_reason(blocked, "aws-access-key-id", "credential", "body", AWS_KEY);
    for (i, path) in [(1, "/py-redact"), (2, "/py-redact-plain")] {
        assert_eq!(lines[i]["status"], 200, "{stdout}");
        let r = origin.last(path);
        assert_eq!(std::str::from_utf8(&r.body).unwrap(), redacted(&b.original));
    }
    assert!(origin.requests().iter().all(|r| r.path != "/py-block"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_undici_block_and_redact() {
    let Some(node_dir) = node_client_dir().await else {
        return;
    };
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let b = bodies();
    let run = async |url: String, body: &Path| {
        let out = command("node")
            .arg(node_dir.join("post_body.mjs"))
            .args([
                &proxy.url(),
                path_str(&proxy.ca_pem),
                &url,
                "application/json",
                path_str(body),
            ])
            .current_dir(&node_dir)
            .output()
            .await
            .unwrap();
        let stdout = assert_success(&out);
        serde_json::from_str::<serde_json::Value>(stdout.trim()).expect(&stdout)
    };
    let v = run(origin.https("/node-block"), &b.leak).await;
    assert_eq!(v["status"], 403, "{v}");
    let blocked = v["body"].as_str().unwrap();
    assert_block_reason(blocked, "aws-access-key-id", "credential", "body", AWS_KEY);
    // undici sends http:// through CONNECT too (plain HTTP inside the tunnel).
    for path in ["/node-redact", "/node-redact-plain"] {
        let url = if path.ends_with("plain") {
            origin.http(path)
        } else {
            origin.https(path)
        };
        let v = run(url, &b.pii).await;
        assert_eq!(v["status"], 200, "{v}");
        let r = origin.last(path);
        assert_eq!(std::str::from_utf8(&r.body).unwrap(), redacted(&b.original));
        assert_eq!(
            r.headers["content-length"].to_str().unwrap(),
            r.body_len.to_string()
        );
    }
    assert!(origin.requests().iter().all(|r| r.path != "/node-block"));
}

// ---------------------------------------------------------------------------------
// Many findings (issue 8, item 1)

/// A body that is nothing but e-mail addresses (one finding every 7 bytes): the request is
/// decided (redaction would need more spans than `max_findings`, so it blocks), the log
/// holds one line about it rather than one per finding, and `/metrics` counts every
/// finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_findings_is_decided_with_one_log_line() {
    let origin = Origin::start().await;
    let proxy = Proxy::start_with(
        "",
        &origin.ca_pem,
        &["--allow-private", "--admin", "127.0.0.1:0"],
    );
    let dir = tempfile::tempdir().unwrap();
    let n = (2 << 20) / 7;
    let body = write(dir.path(), "many.txt", "a@a.bc ".repeat(n));
    let s = post(&proxy, &body, "text/plain", &[], &origin.https("/many")).await;
    assert_eq!((s.out.exit, s.out.status), (0, 403), "{}", s.out.stderr);
    assert!(origin.requests().is_empty(), "the origin was contacted");
    proxy.wait_for_log_count("status=403", 1).await;
    let log = proxy.log();
    assert_eq!(
        log.lines().filter(|l| l.contains("email")).count(),
        1,
        "{log}"
    );
    let admin = proxy.admin.expect("started with --admin");
    let metrics = curl(&[&format!("http://{admin}/metrics")]).await.body;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("clawguard_findings_total{rule=\"email\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.ends_with(&format!(" {n}")), "{line}");
}
