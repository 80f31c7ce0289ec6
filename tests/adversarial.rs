//! The adversarial corpus (issue 9): every evasion that once reached the origin untouched,
//! sent through the real `clawguard run` in enforce mode by curl, over intercepted HTTPS.
//! A credential must be blocked (403, the origin never contacted); personal data must be
//! redacted (the origin receives the request without the value in any form). The same
//! bodies, written to files, must be found by `clawguard scan`, naming their layer.
//!
//! The corpus is the table in [`cases`]: one entry per evasion, built from two values
//! that only long-standing built-in rules match (`aws-access-key-id`, blocked, and
//! a payment card number, redacted). Digit-group separators (`4111.1111…`) and PEM shapes are the
//! rule packs' concern and are tested with the rules.

mod common;

use base64::Engine as _;
use common::*;
use std::io::Write;
use std::path::Path;

/// `aws-access-key-id` (credential, action block).
const KEY: &str = "AKIAQYLPMN5HFIQR7VUX";
/// A Luhn-valid Visa number that is no documented test card (a card rule, redact; which
/// card rule names it is the rule packs' business).
const CARD: &str = "4539148803436467";

fn b64(data: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn b64url(data: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn gzip(data: &[u8], comment: Option<&[u8]>) -> Vec<u8> {
    let mut b = flate2::GzBuilder::new();
    if let Some(c) = comment {
        b = b.comment(c);
    }
    let mut e = b.write(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn utf16le(s: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
    out.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
    out
}

fn utf32be(s: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom {
        vec![0, 0, 0xFE, 0xFF]
    } else {
        Vec::new()
    };
    out.extend(s.chars().flat_map(|c| (c as u32).to_be_bytes()));
    out
}

/// `\u0041KIA…`: the key with its first letter JSON-escaped, so only a reader that
/// unescapes the right JSON string sees it.
fn escaped_key() -> String {
    format!("\\u0041{}", &KEY[1..])
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// 403 naming this rule; the origin never sees the request.
    Block(&'static str),
    /// Forwarded with the value replaced.
    Redact,
}

struct Case {
    name: &'static str,
    method: Option<&'static str>,
    /// Appended to the case's own path (a query string).
    query: String,
    headers: Vec<String>,
    body: Option<Vec<u8>>,
    expect: Expect,
    /// Strings that must not reach the origin (for redactions: the value in the form it
    /// was sent).
    gone: Vec<Vec<u8>>,
    /// Also scanned as a file by `clawguard scan`, expecting this layer in the report.
    scan_layer: Option<&'static str>,
}

impl Case {
    fn new(name: &'static str, expect: Expect) -> Case {
        Case {
            name,
            method: None,
            query: String::new(),
            headers: Vec::new(),
            body: None,
            expect,
            gone: Vec::new(),
            scan_layer: None,
        }
    }

    fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Case {
        self.headers.push(format!("Content-Type: {content_type}"));
        self.body = Some(body.into());
        self
    }

    fn header(mut self, h: impl Into<String>) -> Case {
        self.headers.push(h.into());
        self
    }

    fn gone(mut self, s: impl Into<Vec<u8>>) -> Case {
        self.gone.push(s.into());
        self
    }

    fn scan(mut self, layer: &'static str) -> Case {
        self.scan_layer = Some(layer);
        self
    }
}

fn multipart(parts: &[(&str, &[u8])], preamble: &str, epilogue: &str) -> Vec<u8> {
    let mut out = preamble.as_bytes().to_vec();
    for (headers, body) in parts {
        out.extend_from_slice(b"\r\n--XyZ\r\n");
        out.extend_from_slice(headers.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    }
    out.extend_from_slice(b"\r\n--XyZ--\r\n");
    out.extend_from_slice(epilogue.as_bytes());
    out
}

fn zstd_with_skippable_frame(hidden: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut out = vec![0x50, 0x2A, 0x4D, 0x18];
    out.extend((hidden.len() as u32).to_le_bytes());
    out.extend_from_slice(hidden);
    out.extend(zstd::encode_all(plain, 3).unwrap());
    out
}

fn grpc_frame(flags: u8, msg: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend((msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

fn cases() -> Vec<Case> {
    use Expect::*;
    const AWS: Expect = Block("aws-access-key-id");
    let json = "application/json";
    let pem =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx8YxJ44NshWKdFf6gjZYtmnnC4DFWikcXxbjuf0REKLEpmRJHq\n6cU0Ob4Gdqnvv+Yr0eFSlO+KwlTC\n-----END RSA PRIVATE KEY-----\n";
    let nested_deep = {
        let mut doc = serde_json::json!({ "k": "v" }).to_string();
        doc = doc.replace("\"v\"", &format!("\"{}\"", escaped_key()));
        for _ in 0..12 {
            doc = serde_json::json!({ "v": doc }).to_string();
        }
        doc
    };
    let tool_args_string = {
        let args = format!(
            r#"{{"command": "export AWS_ACCESS_KEY_ID={}"}}"#,
            escaped_key()
        );
        // The arguments are a JSON *string* whose content is the document.
        let as_string = serde_json::to_string(&args).unwrap();
        serde_json::json!({"messages": [{"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "exec", "arguments": as_string}}]}]})
        .to_string()
    };
    let card_fullwidth: String = CARD
        .chars()
        .map(|c| char::from_u32(0xFF10 + c.to_digit(10).unwrap()).unwrap())
        .collect();
    let card_arabic: String = CARD
        .chars()
        .map(|c| char::from_u32(0x0660 + c.to_digit(10).unwrap()).unwrap())
        .collect();
    let card_exponent = format!("{}.{}e15", &CARD[..1], &CARD[1..]);
    let zw_key = format!("{}\u{200B}{}\u{200C}{}", &KEY[..4], &KEY[4..10], &KEY[10..]);
    let shy_key = format!("{}\u{00AD}{}", &KEY[..8], &KEY[8..]);
    let entities: String = KEY.bytes().map(|b| format!("&#{b};")).collect();
    let yaml_escapes: String = KEY.bytes().map(|b| format!("\\x{b:02X}")).collect();
    let qp_key = format!("aws_key=3D{}=\r\n{}", &KEY[..10], &KEY[10..]);
    vec![
        Case::new("base64 of a key in a JSON string", AWS)
            .body(json, format!(r#"{{"content": "{}"}}"#, b64(format!("key={KEY}"))))
            .scan("json content › base64"),
        Case::new("base64 of a PEM key", Block("private-key"))
            .body(json, format!(r#"{{"file": "{}"}}"#, b64(pem)))
            .scan("json file › base64"),
        Case::new("base64 of a JSON document", AWS)
            .body("text/plain", b64(format!(r#"{{"aws_access_key_id": "{}"}}"#, escaped_key())))
            .scan("base64 › json"),
        Case {
            query: format!("?state={}", b64url(format!("{{\"key\":\"{KEY}\"}}>>?"))),
            ..Case::new("base64url in a query", AWS)
        },
        Case::new("percent-encoding inside a JSON string", Redact)
            .body(json, format!(r#"{{"content": "card%3D{}%20ok"}}"#, CARD))
            .gone(CARD)
            .scan("json content › percent-encoding"),
        Case::new("percent-encoded digits inside a JSON string", Redact)
            .body(json, {
                let enc: String = CARD.bytes().map(|b| format!("%{b:02X}")).collect();
                format!(r#"{{"content": "pay {enc} now"}}"#)
            })
            .gone(CARD.bytes().map(|b| format!("%{b:02X}")).collect::<String>())
            .scan("json content › percent-encoding"),
        Case::new("XML numeric entities", AWS)
            .body("application/xml", format!("<key>{entities}</key>"))
            .scan("entities"),
        Case::new("YAML \\x escapes", AWS)
            .body("application/yaml", format!("aws_access_key_id: \"{yaml_escapes}\"\n"))
            .scan("escapes"),
        Case::new("quoted-printable multipart part", AWS).body(
            "multipart/form-data; boundary=XyZ",
            multipart(
                &[(
                    "Content-Disposition: form-data; name=\"cfg\"\r\nContent-Transfer-Encoding: quoted-printable",
                    qp_key.as_bytes(),
                )],
                "",
                "",
            ),
        )
        .scan("part 1 (cfg) › quoted-printable"),
        Case::new("base64 multipart part", AWS).body(
            "multipart/form-data; boundary=XyZ",
            multipart(
                &[(
                    "Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Transfer-Encoding: base64",
                    b64(format!("key {KEY}")).as_bytes(),
                )],
                "",
                "",
            ),
        )
        .scan("part 1 (f) › base64"),
        Case::new("multipart file name", AWS).body(
            "multipart/form-data; boundary=XyZ",
            multipart(
                &[(&format!("Content-Disposition: form-data; name=\"f\"; filename=\"{KEY}.txt\""), b"hello")],
                "",
                "",
            ),
        ),
        Case::new("multipart part headers", AWS)
            .body(
                "multipart/form-data; boundary=XyZ",
                multipart(
                    &[(
                        &format!("Content-Disposition: form-data; name=\"a\"\r\nX-Upload-Token: {}", escaped_key()),
                        b"x",
                    )],
                    "",
                    "",
                ),
            )
            .scan("part 1 headers › escapes"),
        Case::new("multipart field name", AWS)
            .body(
                "multipart/form-data; boundary=XyZ",
                multipart(
                    &[(
                        &format!("Content-Disposition: form-data; name=\"{}\"", escaped_key()),
                        b"x",
                    )],
                    "",
                    "",
                ),
            )
            .scan("part 1 headers › escapes"),
        Case::new("multipart preamble", AWS).body(
            "multipart/form-data; boundary=XyZ",
            multipart(&[("Content-Disposition: form-data; name=\"a\"", b"x")], &format!("note {KEY}"), ""),
        ),
        Case::new("multipart epilogue", AWS).body(
            "multipart/form-data; boundary=XyZ",
            multipart(&[("Content-Disposition: form-data; name=\"a\"", b"x")], "", &format!("note {KEY}")),
        ),
        Case::new("UTF-16 body with BOM", AWS)
            .body(json, utf16le(&format!(r#"{{"k": "{KEY}"}}"#), true))
            .scan("utf-16le › json"),
        Case::new("UTF-16 body without BOM", AWS)
            .body(json, utf16le(&format!(r#"{{"k": "{KEY}"}}"#), false))
            .scan("utf-16le › json"),
        Case::new("UTF-32 body with BOM", AWS)
            .body("text/plain", utf32be(&format!("key {KEY}"), true))
            .scan("utf-32be"),
        Case::new("UTF-32 body without BOM", AWS)
            .body("text/plain", utf32be(&format!("key {KEY}"), false))
            .scan("utf-32be"),
        Case::new("full-width digits", Redact)
            .body(json, format!(r#"{{"content": "card {card_fullwidth}"}}"#))
            .gone(card_fullwidth.clone())
            .scan("json content › unicode"),
        Case::new("Arabic-Indic digits", Redact)
            .body(json, format!(r#"{{"content": "card {card_arabic}"}}"#))
            .gone(card_arabic.clone())
            .scan("json content › unicode"),
        Case::new("zero-width characters inside a key", AWS)
            .body(json, format!(r#"{{"content": "{zw_key}"}}"#))
            .scan("json content › unicode"),
        Case::new("soft hyphen inside a key", AWS)
            .body(json, format!(r#"{{"content": "{shy_key}"}}"#))
            .scan("json content › unicode"),
        Case::new("a JSON number in exponent form", Redact)
            .body(json, format!(r#"{{"amount": 1, "card": {card_exponent}}}"#))
            .gone(card_exponent.clone())
            .scan("json card"),
        Case::new("a form-typed body that is valid JSON", AWS)
            .body("application/x-www-form-urlencoded", format!(r#"{{"k": "{}"}}"#, escaped_key()))
            .scan("json k"),
        Case::new("tool-call arguments that are a JSON string document", AWS)
            .body(json, tool_args_string)
            .scan("json messages[0].tool_calls[0].function.arguments › json › json command"),
        Case::new("JSON nested in strings 12 levels deep", AWS)
            .body(json, nested_deep),
        Case::new("a UTF-8 BOM before the JSON", AWS)
            .body("text/plain", format!("\u{FEFF}{{\"k\": \"{}\"}}", escaped_key()))
            .scan("json k"),
        Case::new("trailing bytes after the JSON", AWS)
            .body(json, format!("{{\"k\": \"{}\"}}\n\0garbage", escaped_key()))
            .scan("json k"),
        Case::new("a zstd skippable frame", AWS)
            .header("Content-Encoding: zstd")
            .body(json, zstd_with_skippable_frame(KEY.as_bytes(), br#"{"a": 1}"#)),
        Case::new("a gzip comment field", AWS)
            .header("Content-Encoding: gzip")
            .body(json, gzip(br#"{"a": 1}"#, Some(KEY.as_bytes()))),
        Case::new("gzip without Content-Encoding", AWS)
            .body("application/octet-stream", gzip(format!("key {KEY}").as_bytes(), None))
            .scan("gzip"),
        Case::new("gRPC message with grpc-encoding gzip", AWS)
            .header("grpc-encoding: gzip")
            .body("application/grpc", grpc_frame(1, &gzip(format!("\n\x14{KEY}").as_bytes(), None)))
            .scan("grpc message 0 › gzip"),
        Case::new("User-Agent", AWS).header(format!("User-Agent: tool/{KEY}")),
        Case::new("Referer", AWS).header(format!("Referer: https://r.example/?k={KEY}")),
        Case::new("Forwarded", AWS).header(format!("Forwarded: for=\"{KEY}\"")),
        Case::new("From", AWS).header(format!("From: {KEY}@example.org")),
        Case::new("Origin", AWS).header(format!("Origin: https://{KEY}.example")),
        Case::new("Private-Token", AWS).header(format!("Private-Token: {KEY}")),
        Case::new("Token", AWS).header(format!("Token: {KEY}")),
        Case::new("a custom header", AWS).header(format!("Deploy-Key: {KEY}")),
        Case::new("a header name", Block("payment-card")).header(format!("X-{CARD}: 1")),
        Case {
            method: Some(KEY),
            ..Case::new("the method", AWS)
        },
        Case::new("Authorization: Basic", AWS).header(format!("Authorization: Basic {}", b64(format!("ci:{KEY}")))),
        Case::new("a cookie pair", AWS).header(format!("Cookie: theme=dark; session={KEY}")),
    ]
}

async fn send(proxy: &Proxy, origin: &Origin, i: usize, case: &Case, dir: &Path) -> CurlOut {
    let url = format!("{}{}", origin.https(&format!("/case/{i}")), case.query);
    let proxy_url = proxy.url();
    let mut args: Vec<String> = vec![
        "-x".into(),
        proxy_url,
        "--cacert".into(),
        path_str(&proxy.ca_pem).into(),
    ];
    if let Some(m) = case.method {
        args.extend(["-X".into(), m.into()]);
    }
    for h in &case.headers {
        args.extend(["-H".into(), h.clone()]);
    }
    if let Some(body) = &case.body {
        let f = dir.join(format!("body-{i}"));
        std::fs::write(&f, body).unwrap();
        args.extend(["--data-binary".into(), format!("@{}", f.display())]);
    }
    args.push(url);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&refs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_evasion_is_blocked_or_redacted_through_the_proxy() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let out = send(&proxy, &origin, i, case, dir.path()).await;
        let path = format!("/case/{i}");
        let reached: Vec<Recorded> = origin
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        match case.expect {
            Expect::Block(rule) => {
                let named = serde_json::from_str::<serde_json::Value>(&out.body)
                    .ok()
                    .and_then(|v| v["findings"].as_array().cloned())
                    .is_some_and(|f| f.iter().any(|f| f["rule"] == rule));
                if out.status != 403 || !named || !reached.is_empty() {
                    failures.push(format!(
                        "{}: want 403 naming {rule}, got {} (origin reached: {}) {}",
                        case.name,
                        out.status,
                        !reached.is_empty(),
                        out.body
                    ));
                }
                if out.body.contains(KEY) || out.body.contains(CARD) {
                    failures.push(format!("{}: the answer echoes the value", case.name));
                }
            }
            Expect::Redact => {
                let body = reached.first().map(|r| r.body.clone()).unwrap_or_default();
                let leaked = case
                    .gone
                    .iter()
                    .any(|g| memchr::memmem::find(&body, g).is_some());
                let marked = memchr::memmem::find(&body, b"[REDACTED:").is_some();
                if out.status != 200 || reached.len() != 1 || leaked || !marked {
                    failures.push(format!(
                        "{}: want a redacted forward, got {} (reached {}, leaked {leaked}): {}",
                        case.name,
                        out.status,
                        reached.len(),
                        String::from_utf8_lossy(&body)
                    ));
                }
                // What arrives is still the body's own syntax.
                if case.headers.iter().any(|h| h.ends_with("application/json")) {
                    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
                        failures.push(format!("{}: redacted JSON does not parse: {e}", case.name));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} evasions got through:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing of either value in the proxy's own log.
    let log = proxy.log();
    assert!(!log.contains(KEY) && !log.contains(CARD), "{log}");
}

/// The same bodies as files: `clawguard scan --format json` finds each and names the
/// layer it was in.
#[test]
fn scan_finds_every_evasion_in_files_and_names_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let (Some(layer), Some(body)) = (case.scan_layer, case.body) else {
            continue;
        };
        let f = dir.path().join(format!("case-{i:02}"));
        std::fs::write(&f, body).unwrap();
        want.push((f.display().to_string(), layer, case.name));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["scan", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut missing = Vec::new();
    for (path, layer, name) in want {
        if !found
            .iter()
            .any(|f| f["path"] == path.as_str() && f["layer"] == layer)
        {
            let got: Vec<String> = found
                .iter()
                .filter(|f| f["path"] == path.as_str())
                .map(|f| format!("{} [{}]", f["rule"], f["layer"]))
                .collect();
            missing.push(format!("{name}: want layer `{layer}`, got {got:?}"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    assert!(!stdout.contains(KEY) && !stdout.contains(CARD), "{stdout}");
}

/// Bodies with nothing to find that still trip every layer's trigger (percent signs,
/// entities, escapes, an image as base64 and as a `data:` URL, a hash, full-width
/// punctuation and digits of no value) reach the origin byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benign_bodies_that_trip_the_triggers_arrive_unchanged() {
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let dir = tempfile::tempdir().unwrap();
    let png: Vec<u8> = [0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]
        .into_iter()
        .chain((0..3000u32).map(|i| (i * 7919 % 251) as u8))
        .collect();
    let content = format!(
        "Progress 100% done &amp; ok &#8212; see \\x41 and \\u00e9; 第１步：完成。 sha256 \
         9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 \
         data:image/png;base64,{} raw {} ConfigurationManagerFactory",
        b64(&png),
        b64(&png)
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "application/json",
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": content}]})
                .to_string()
                .into_bytes(),
        ),
        ("text/plain", content.clone().into_bytes()),
        (
            "application/x-www-form-urlencoded",
            b"q=100%25+done&lang=zh-CN&page=2".to_vec(),
        ),
    ];
    for (i, (ct, body)) in bodies.iter().enumerate() {
        let f = dir.path().join(format!("benign-{i}"));
        std::fs::write(&f, body).unwrap();
        let path = format!("/benign/{i}");
        let out = proxy
            .curl(&[
                "-H",
                &format!("Content-Type: {ct}"),
                "--data-binary",
                &format!("@{}", f.display()),
                &origin.https(&path),
            ])
            .await;
        assert_eq!(out.status, 200, "{ct}: {}", out.body);
        assert_eq!(
            &origin.last(&path).body[..],
            &body[..],
            "{ct}: body changed"
        );
    }
}
