//! `clawguard icap`: the real binary on a loopback port, spoken to over raw TCP the way
//! Squid and c-icap clients do (RFC 3507), checking answers, persistence, bounds, the
//! ISTag across a reload, and the shared metrics.

mod common;

use common::{metrics, Proxy, PATIENCE};
use std::collections::HashMap;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// `aws-access-key-id` (credential, action block).
const AWS_KEY: &str = "AKIAQYLPMN5HFIQR7VUX";
/// `email` (pii, action redact).
const EMAIL: &str = "li.wei.leak@example.org";

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    /// The encapsulated HTTP head, if any.
    http_head: String,
    /// The de-chunked encapsulated body.
    body: Vec<u8>,
}

struct Client {
    rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(p: &Proxy) -> Client {
        let s = TcpStream::connect(p.addr).await.unwrap();
        let (rd, wr) = s.into_split();
        Client {
            rd: BufReader::new(rd),
            wr,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
    }

    async fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        let n = tokio::time::timeout(PATIENCE, self.rd.read_line(&mut l))
            .await
            .expect("answer in time")
            .ok()?;
        (n > 0).then(|| l.trim_end().to_string())
    }

    /// Read one ICAP answer; `None` when the server closed the connection.
    async fn reply(&mut self) -> Option<Reply> {
        let status_line = self.line().await?;
        let status: u16 = status_line
            .strip_prefix("ICAP/1.0 ")
            .and_then(|s| s.get(..3))
            .unwrap_or_else(|| panic!("not an ICAP status line: {status_line:?}"))
            .parse()
            .unwrap();
        let mut headers = HashMap::new();
        loop {
            let l = self.line().await.expect("header line");
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let mut http_head = String::new();
        let mut body = Vec::new();
        if let Some(enc) = headers.get("encapsulated").cloned() {
            let parts: Vec<(String, usize)> = enc
                .split(',')
                .map(|p| {
                    let (n, o) = p.trim().split_once('=').unwrap();
                    (n.to_string(), o.parse().unwrap())
                })
                .collect();
            let last = parts.last().unwrap();
            if parts.len() == 2 {
                let mut h = vec![0u8; last.1];
                self.rd.read_exact(&mut h).await.unwrap();
                http_head = String::from_utf8(h).unwrap();
            }
            if last.0.ends_with("-body") && last.0 != "null-body" {
                loop {
                    let size = self.line().await.unwrap();
                    let n =
                        usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
                    if n == 0 {
                        assert_eq!(self.line().await.unwrap(), "");
                        break;
                    }
                    let mut chunk = vec![0u8; n + 2];
                    self.rd.read_exact(&mut chunk).await.unwrap();
                    body.extend_from_slice(&chunk[..n]);
                }
            }
        }
        Some(Reply {
            status,
            headers,
            http_head,
            body,
        })
    }
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if !body.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A REQMOD as Squid sends it: `Allow: 204`, the request head, the chunked body.
fn reqmod(target: &str, body: &[u8], extra_icap: &str) -> Vec<u8> {
    let http_head = if body.is_empty() {
        format!("GET {target} HTTP/1.1\r\nHost: origin.test\r\nUser-Agent: curl/8\r\n\r\n")
    } else {
        format!(
            "POST {target} HTTP/1.1\r\nHost: origin.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
    };
    let enc = if body.is_empty() {
        format!("req-hdr=0, null-body={}", http_head.len())
    } else {
        format!("req-hdr=0, req-body={}", http_head.len())
    };
    let mut out = format!(
        "REQMOD icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\n{extra_icap}Encapsulated: {enc}\r\n\r\n{http_head}"
    )
    .into_bytes();
    if !body.is_empty() {
        out.extend(chunked(body));
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

fn icap() -> Proxy {
    Proxy::start_icap("", &["--admin", "127.0.0.1:0"])
}

#[tokio::test]
async fn options_advertise_the_service() {
    let p = icap();
    let mut c = Client::connect(&p).await;
    c.send(b"OPTIONS icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n")
        .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["methods"], "REQMOD");
    assert_eq!(r.headers["allow"], "204");
    assert!(r.headers["preview"].parse::<usize>().unwrap() > 0);
    assert!(r.headers["max-connections"].parse::<usize>().unwrap() > 0);
    assert!(r.headers["istag"].starts_with('"'));
    // The connection stays open for the next request.
    c.send(b"OPTIONS icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert_eq!(c.reply().await.unwrap().status, 200);
}

#[tokio::test]
async fn reqmod_answers_unchanged_blocked_and_redacted_on_one_connection() {
    let p = icap();
    let mut c = Client::connect(&p).await;

    // Clean: 204, the client forwards its own copy.
    c.send(&reqmod("http://origin.test/chat", br#"{"q":"hello"}"#, ""))
        .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 204);

    // A credential: 200 with an HTTP response (request satisfaction), never the value.
    let body = format!(r#"{{"key":"{AWS_KEY}"}}"#);
    c.send(&reqmod("http://origin.test/upload", body.as_bytes(), ""))
        .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers["encapsulated"].starts_with("res-hdr=0, res-body="));
    assert!(r.http_head.starts_with("HTTP/1.1 403 "), "{}", r.http_head);
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.contains("aws-access-key-id"), "{text}");
    assert!(!text.contains(AWS_KEY) && !r.http_head.contains(AWS_KEY));
    let cl = r
        .http_head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap();
    assert_eq!(cl.parse::<usize>().unwrap(), r.body.len());

    // Personal data: 200 with the rewritten request, Content-Length fixed.
    let body = format!(r#"{{"messages":[{{"role":"user","content":"mail {EMAIL} now"}}]}}"#);
    c.send(&reqmod("http://origin.test/v1/chat", body.as_bytes(), ""))
        .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers["encapsulated"].starts_with("req-hdr=0, req-body="));
    assert!(
        r.http_head
            .starts_with("POST http://origin.test/v1/chat HTTP/1.1\r\n"),
        "{}",
        r.http_head
    );
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(text, body.replace(EMAIL, "[REDACTED:email]"));
    let cl = r
        .http_head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap();
    assert_eq!(cl.parse::<usize>().unwrap(), r.body.len());

    // A secret in the URL of a body-less request is blocked too.
    c.send(&reqmod(
        &format!("http://origin.test/q?k={AWS_KEY}"),
        b"",
        "",
    ))
    .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.http_head.starts_with("HTTP/1.1 403 "));

    // The same metrics as the proxy, labelled by decision.
    let m = metrics(&p).await;
    for needle in [
        r#"decision="allow""#,
        r#"decision="block""#,
        r#"decision="redact""#,
        r#"rule="aws-access-key-id""#,
    ] {
        assert!(m.contains(needle), "{needle} missing:\n{m}");
    }
}

#[tokio::test]
async fn preview_then_100_continue_and_ieof() {
    let p = icap();
    let mut c = Client::connect(&p).await;
    let body = format!(r#"{{"pad":"{}","key":"{AWS_KEY}"}}"#, "x".repeat(100));
    let http_head = format!(
        "POST http://origin.test/p HTTP/1.1\r\nHost: origin.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // A 10-byte preview without ieof: the server must ask for the rest.
    let mut req = format!(
        "REQMOD icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: x\r\nAllow: 204\r\nPreview: 10\r\nEncapsulated: req-hdr=0, req-body={}\r\n\r\n{http_head}",
        http_head.len()
    )
    .into_bytes();
    req.extend(chunked(&body.as_bytes()[..10]));
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req).await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 100, "expected 100 Continue");
    let mut rest = chunked(&body.as_bytes()[10..]);
    rest.extend_from_slice(b"0\r\n\r\n");
    c.send(&rest).await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.http_head.starts_with("HTTP/1.1 403 "));

    // The whole body in the preview (ieof): answered at once.
    let clean = br#"{"q":"fine"}"#;
    let http_head = format!(
        "POST http://origin.test/p HTTP/1.1\r\nHost: origin.test\r\nContent-Length: {}\r\n\r\n",
        clean.len()
    );
    let mut req = format!(
        "REQMOD icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: x\r\nPreview: 4096\r\nEncapsulated: req-hdr=0, req-body={}\r\n\r\n{http_head}",
        http_head.len()
    )
    .into_bytes();
    req.extend(chunked(clean));
    req.extend_from_slice(b"0; ieof\r\n\r\n");
    c.send(&req).await;
    // 204 is allowed in answer to a preview even without `Allow: 204`.
    assert_eq!(c.reply().await.unwrap().status, 204);
}

#[tokio::test]
async fn without_allow_204_a_clean_request_comes_back_whole() {
    let p = icap();
    let mut c = Client::connect(&p).await;
    let body = br#"{"q":"hello"}"#;
    let req = reqmod("http://origin.test/x", body, "").replace_allow();
    c.send(&req).await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert!(r
        .http_head
        .starts_with("POST http://origin.test/x HTTP/1.1"));
}

trait NoAllow {
    fn replace_allow(self) -> Vec<u8>;
}

impl NoAllow for Vec<u8> {
    fn replace_allow(self) -> Vec<u8> {
        let s = String::from_utf8(self).unwrap();
        s.replacen("Allow: 204\r\n", "", 1).into_bytes()
    }
}

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_other_connections_keep_working() {
    let p = icap();
    // Unknown service: 404, and the connection stays usable (no body was announced).
    let mut c = Client::connect(&p).await;
    c.send(b"OPTIONS icap://127.0.0.1/respmod-nope ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 404);
    c.send(
        b"RESPMOD icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: x\r\nEncapsulated: null-body=0\r\n\r\n",
    )
    .await;
    assert_eq!(c.reply().await.unwrap().status, 405);
    c.send(b"OPTIONS icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(c.reply().await.unwrap().status, 200);

    // Garbage, a wrong version, broken offsets, a broken chunk: 4xx/5xx, then close.
    let cases: Vec<(&[u8], u16)> = vec![
        (b"HELLO\r\n\r\n", 400),
        (b"REQMOD icap://h/reqmod ICAP/2.0\r\nHost: x\r\n\r\n", 505),
        (
            b"REQMOD icap://h/reqmod ICAP/1.0\r\nEncapsulated: req-hdr=0, req-body=x\r\n\r\n",
            400,
        ),
        (
            b"REQMOD icap://h/reqmod ICAP/1.0\r\nEncapsulated: req-hdr=0, req-body=27\r\n\r\nPOST http://a/ HTTP/1.1\r\n\r\nzz\r\nbad\r\n",
            400,
        ),
        (b"FROB icap://h/reqmod ICAP/1.0\r\nHost: x\r\n\r\n", 501),
    ];
    for (bytes, want) in cases {
        let mut c = Client::connect(&p).await;
        c.send(bytes).await;
        let r = c.reply().await.unwrap();
        assert_eq!(r.status, want, "for {:?}", String::from_utf8_lossy(bytes));
        if want != 501 {
            assert!(r.headers.contains_key("x-clawguard-error"));
            assert!(
                c.reply().await.is_none(),
                "connection closed after an error"
            );
        }
    }
    // An oversized head is refused, not buffered.
    let mut c = Client::connect(&p).await;
    let mut big = b"REQMOD icap://h/reqmod ICAP/1.0\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 200_000));
    let _ = c.wr.write_all(&big).await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status, 400);

    // The service still answers everyone else.
    let mut c = Client::connect(&p).await;
    c.send(&reqmod("http://origin.test/ok", b"{}", "")).await;
    assert_eq!(c.reply().await.unwrap().status, 204);
}

#[tokio::test]
async fn istag_changes_on_reload() {
    let p = icap();
    let tag = |p: &Proxy| {
        let addr = p.addr;
        async move {
            let s = TcpStream::connect(addr).await.unwrap();
            let (rd, wr) = s.into_split();
            let mut c = Client {
                rd: BufReader::new(rd),
                wr,
            };
            c.send(b"OPTIONS icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: x\r\n\r\n")
                .await;
            c.reply().await.unwrap().headers["istag"].clone()
        }
    };
    let before = tag(&p).await;
    assert_eq!(tag(&p).await, before, "stable without a reload");
    let admin = p.admin.unwrap();
    let out = common::curl(&[
        "-X",
        "POST",
        "-H",
        "x-clawguard-admin: 1",
        &format!("http://{admin}/reload"),
    ])
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let after = tag(&p).await;
    assert_ne!(after, before);
}
