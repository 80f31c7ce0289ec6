//! Gateway features through the real binary and real clients: egress policy, proxy
//! authentication, the audit log, metrics, live reload and the start-up refusals.
//! Traffic goes to loopback only; the two tests that aim at metadata / private addresses
//! run the proxy and the client inside their own network namespace.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A rule pack of our own, so these tests do not depend on the built-in packs' wording.
const RULES: &str = r#"
[[rule]]
id = "test-canary"
category = "credential"
description = "Test canary token"
keywords = ["CANARY-"]
regex = '''CANARY-[A-Z0-9]{12}'''
action = "block"
match = ["CANARY-ABCDEF123456"]

[[rule]]
id = "test-note"
category = "pii"
description = "Log-only marker"
keywords = ["NOTE-"]
regex = '''NOTE-[0-9]{6}'''
action = "log"
match = ["NOTE-123456"]
"#;

const CANARY: &str = "CANARY-ABCDEF123456";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clawguard")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `curl -x proxy [args] url` with a JSON body.
async fn post(proxy: &str, url: &str, body: &str, extra: &[&str]) -> CurlOut {
    let mut args = vec![
        "-x",
        proxy,
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
    ];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args).await
}

async fn get(proxy: &str, url: &str, extra: &[&str]) -> CurlOut {
    let mut args = vec!["-x", proxy];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args).await
}

/// Run a shell script inside a fresh network namespace (only `lo`, nothing routes out).
/// `None` when `ip`, `unshare -n` or python3 (the scripts' origins) is not
/// available here: the test is skipped locally and fails under `CI=true` (CI runs as
/// root with iproute2, util-linux and python3).
fn in_netns(script: &str) -> Option<String> {
    if skip_if(
        !have("python3"),
        "python3 not available for the namespace origin",
    ) || netns::namespaces_missing("-n")
    {
        return None;
    }
    Some(netns::run_in_namespace("-n", script, &[]))
}

/// A missing test peer skips the test locally and fails it in CI.
fn skip(why: &str) {
    skip_if(true, why);
}

/// The script's `REASONS:` line: the distinct `reason=` fields of its proxy's refusals.
fn reasons(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("REASONS:"))
        .unwrap_or("")
        .trim()
}

/// Shell helpers for the namespace scripts: an origin on ADDR:PORT (python's http.server,
/// answers 200 to GET /), a proxy on a fixed port, bounded waits.
const NETNS_PRELUDE: &str = r#"
set -u
ip link set lo up
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT
wait_http() { # url [proxy]
  for _ in $(seq 1 300); do
    if [ -n "${2:-}" ]; then code=$(curl -s -o /dev/null -w '%{http_code}' -x "$2" "$1" 2>/dev/null)
    else code=$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null); fi
    [ "$code" != "000" ] && return 0
    sleep 0.1
  done
  echo "TIMEOUT waiting for $1"; return 1
}
origin() { # addr port
  (cd "$TMP" && echo origin-ok > index.html && exec python3 -m http.server --bind "$1" "$2" >/dev/null 2>&1) &
  wait_http "http://$1:$2/"
}
proxy() { # port extra-args...
  local port=$1; shift
  "$CLAWGUARD" run --listen "127.0.0.1:$port" --ca-dir "$TMP/ca$port" --allow-root "$@" 2>"$TMP/proxy$port.log" &
  wait_http "http://127.0.0.1:$port/"
}
"#;

#[test]
fn netns_metadata_endpoint_is_refused_even_with_allow_private() {
    let script = format!(
        r#"{NETNS_PRELUDE}
ip addr add 169.254.169.254/32 dev lo
origin 169.254.169.254 80 || exit 1
echo "DIRECT=$(curl -s -o /dev/null -w '%{{http_code}}' http://169.254.169.254/)"
proxy 18383 --allow-private || exit 1
echo "PLAIN=$(curl -s -w ' %{{http_code}}' -x http://127.0.0.1:18383 http://169.254.169.254/latest/meta-data/)"
echo "DECIMAL=$(curl -s -o /dev/null -w '%{{http_code}}' -x http://127.0.0.1:18383 http://2852039166/)"
echo "MAPPED=$(curl -s -o /dev/null -w '%{{http_code}}' -x http://127.0.0.1:18383 'http://[::ffff:169.254.169.254]/')"
echo "CONNECT=$(curl -s -o /dev/null -w '%{{http_connect}}' -x http://127.0.0.1:18383 -k https://169.254.169.254/)"
"#
    );
    let Some(out) = in_netns(&script) else {
        return; // skipped (failed under CI) by in_netns
    };
    // The origin is really there: a proxy that let the request through would get its 200.
    assert!(out.contains("DIRECT=200"), "{out}");
    assert!(out.contains("cloud metadata endpoint"), "{out}");
    assert!(out.contains("PLAIN={") && out.contains("} 403"), "{out}");
    assert!(out.contains("DECIMAL=403"), "{out}");
    assert!(out.contains("MAPPED=403"), "{out}");
    assert!(out.contains("CONNECT=403"), "{out}");
}

#[test]
fn netns_every_metadata_endpoint_and_wrapped_form_is_refused() {
    let script = format!(
        r#"{NETNS_PRELUDE}
for a in 169.254.170.2 169.254.170.23 169.254.0.23 168.63.129.16 192.0.0.192 100.100.100.200; do
  ip addr add $a/32 dev lo
done
for a in fd00:ec2::23 fd00:ec2::254 fd20:ce::254; do ip addr add $a/128 dev lo; done
origin 168.63.129.16 80 || exit 1
echo "DIRECT=$(curl -s -o /dev/null -w '%{{http_code}}' http://168.63.129.16/)"
proxy 18386 --allow-private || exit 1
for u in http://169.254.170.2/v2/credentials http://169.254.170.23/v1/credentials \
         http://169.254.0.23/meta-data/ http://168.63.129.16/machine http://192.0.0.192/ \
         http://100.100.100.200/latest/meta-data/ 'http://[fd00:ec2::23]/' \
         'http://[fd00:ec2::254]/' 'http://[fd20:ce::254]/' \
         'http://[64:ff9b::a9fe:a9fe]/' 'http://[64:ff9b:1::a9fe:a9fe]/' \
         'http://[2002:a9fe:a9fe::1]/' 'http://[::ffff:0:a83f:8110]/' \
         'http://[2001:0:4136:e378:8000:63bf:5601:5601]/' http://metadata.tencentyun.com/; do
  echo "URL $u $(curl -s -o /dev/null -w '%{{http_code}}' -x http://127.0.0.1:18386 "$u")"
done
echo "CONNECT=$(curl -s -o /dev/null -w '%{{http_connect}}' -x http://127.0.0.1:18386 -k https://168.63.129.16/)"
echo "LOG: $(grep -c 'cloud metadata endpoint' "$TMP/proxy18386.log")"
echo "REASONS: $(grep 'status=403' "$TMP/proxy18386.log" | grep -o 'reason="[^"]*"' | sort -u | tr '\n' ' ')"
"#
    );
    let Some(out) = in_netns(&script) else {
        return; // skipped (failed under CI) by in_netns
    };
    // WireServer is a public address and really answers here: only the policy refuses.
    assert!(out.contains("DIRECT=200"), "{out}");
    let urls: Vec<&str> = out.lines().filter(|l| l.starts_with("URL ")).collect();
    assert_eq!(urls.len(), 15, "{out}");
    for l in urls {
        assert!(l.ends_with(" 403"), "{l}\n{out}");
    }
    assert!(out.contains("CONNECT=403"), "{out}");
    // Each refusal's log line says why, as a field of its own.
    assert_eq!(
        reasons(&out),
        r#"REASONS: reason="metadata endpoint""#,
        "{out}"
    );
}

/// A DNS server on 127.0.0.1:53 (in the namespace) that logs every query name to
/// `$TMP/queries` and answers NXDOMAIN.
const FAKE_DNS: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
log = open(sys.argv[1], "a", buffering=1)
while True:
    data, peer = s.recvfrom(512)
    i, labels = 12, []
    while i < len(data) and data[i]:
        n = data[i]; labels.append(data[i+1:i+1+n].decode("ascii", "replace")); i += 1 + n
    log.write(".".join(labels) + chr(10))
    s.sendto(data[:2] + bytes([0x81, 0x83]) + data[4:6] + bytes(6) + data[12:i+5], peer)
"#;

#[test]
fn netns_a_secret_in_a_host_name_never_becomes_a_dns_query() {
    // A mount namespace too (its own resolv.conf), so not `in_netns`.
    if !have("python3") {
        return skip("python3 not available for the fake DNS server");
    }
    if netns::namespaces_missing("-mn") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir_with(dir.path(), RULES);
    let dns = dir.path().join("dns.py");
    std::fs::write(&dns, FAKE_DNS).unwrap();
    let script = format!(
        r#"{NETNS_PRELUDE}
echo "nameserver 127.0.0.1" > "$TMP/resolv.conf"
mount --bind "$TMP/resolv.conf" /etc/resolv.conf || {{ echo NO_MOUNT; exit 0; }}
python3 {dns} "$TMP/queries" & 
sleep 0.5
proxy 18387 --rules {rules} || exit 1
echo "SECRET=$(curl -s -o /dev/null -w '%{{http_code}}' -x http://127.0.0.1:18387 http://{CANARY}.example/)"
echo "SECRET_CONNECT=$(curl -s -o /dev/null -w '%{{http_connect}}' -x http://127.0.0.1:18387 -k https://x.{CANARY}.example/)"
echo "CLEAN=$(curl -s -o /dev/null -w '%{{http_code}}' -x http://127.0.0.1:18387 http://clean-name.example/)"
sleep 0.5
echo "QUERIES:"; cat "$TMP/queries"
echo "LOGGED:"; cat "$TMP/proxy18387.log"
"#,
        dns = dns.display(),
        rules = rules.display(),
    );
    let out = netns::run_in_namespace("-mn", &script, &[]);
    if out.contains("NO_MOUNT") {
        return skip("cannot bind-mount /etc/resolv.conf in a mount namespace");
    }
    assert!(out.contains("SECRET=403"), "{out}");
    assert!(out.contains("SECRET_CONNECT=403"), "{out}");
    let queries = out.split("QUERIES:").nth(1).unwrap_or_default();
    let queries = queries.split("LOGGED:").next().unwrap_or_default();
    // The control: a clean name is looked up (and does not exist).
    assert!(queries.contains("clean-name.example"), "{out}");
    assert!(
        !queries.to_ascii_uppercase().contains("ABCDEF123456"),
        "the secret left as a DNS query:\n{out}"
    );
    let logged = out.split("LOGGED:").nth(1).unwrap_or_default();
    assert!(
        !logged.contains("ABCDEF123456"),
        "the proxy log holds the secret:\n{out}"
    );
    // The clean name does not exist: refused, and the log line says why.
    assert!(out.contains("CLEAN=403"), "{out}");
    assert!(logged.contains(r#"reason="unresolvable""#), "{out}");
}

#[test]
fn netns_private_address_is_refused_without_allow_private() {
    let script = format!(
        r#"{NETNS_PRELUDE}
ip addr add 10.20.30.40/32 dev lo
origin 10.20.30.40 8080 || exit 1
echo "DIRECT=$(curl -s -o /dev/null -w '%{{http_code}}' http://10.20.30.40:8080/)"
proxy 18384 || exit 1
proxy 18385 --allow-private || exit 1
echo "STRICT=$(curl -s -w ' %{{http_code}}' -x http://127.0.0.1:18384 http://10.20.30.40:8080/)"
echo "STRICT_CONNECT=$(curl -s -o /dev/null -w '%{{http_connect}}' -x http://127.0.0.1:18384 -p http://10.20.30.40:8080/)"
echo "LAB=$(curl -s -o /dev/null -w '%{{http_code}}' -x http://127.0.0.1:18385 http://10.20.30.40:8080/)"
echo "REASONS: $(grep 'status=403' "$TMP/proxy18384.log" | grep -o 'reason="[^"]*"' | sort -u | tr '\n' ' ')"
"#
    );
    let Some(out) = in_netns(&script) else {
        return; // skipped (failed under CI) by in_netns
    };
    assert!(out.contains("DIRECT=200"), "{out}");
    assert!(
        out.contains("private address") && out.contains("} 403"),
        "{out}"
    );
    assert!(out.contains("STRICT_CONNECT=403"), "{out}");
    // The same request passes once private ranges are allowed: the refusal was the policy.
    assert!(out.contains("LAB=200"), "{out}");
    assert_eq!(
        reasons(&out),
        r#"REASONS: reason="private address""#,
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_names_and_spellings_are_refused_without_allow_private() {
    let origin = Origin::start().await;
    let proxy = Proxy::start_with("", &origin.ca_pem, &[]);
    let port = origin.plain_addr.port();
    for url in [
        format!("http://localhost:{port}/by-name"),
        format!("http://2130706433:{port}/decimal"),
        format!("http://0177.0.0.1:{port}/octal"),
        format!("http://0x7f.1:{port}/hex"),
        format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
    ] {
        let out = get(&proxy.url(), &url, &[]).await;
        assert_eq!(out.status, 403, "{url}: {}", out.body);
        let v: serde_json::Value = serde_json::from_str(&out.body).unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("private"),
            "{url}: {}",
            out.body
        );
        assert!(v["request_id"].is_string());
    }
    // CONNECT is checked too.
    let out = proxy
        .curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            &origin.https("/tls"),
        ])
        .await;
    // `-w %{http_connect}` replaces the helper's write-out: the CONNECT status.
    assert_eq!(out.status, 403, "{}", out.stderr);
    assert!(origin.requests().is_empty(), "the origin must see nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_mode() {
    let origin = Origin::start().await;
    let config =
        "[egress]\ndefault = \"deny\"\n[[egress.rule]]\nhost = \"localhost\"\naction = \"allow\"\n";
    let proxy = Proxy::start_with(config, &origin.ca_pem, &["--allow-private"]);
    let port = origin.plain_addr.port();
    let ok = get(
        &proxy.url(),
        &format!("http://localhost:{port}/listed"),
        &[],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let tls = proxy.curl(&[&origin.https("/listed-tls")]).await;
    assert_eq!(tls.status, 200, "{}", tls.stderr);
    let no = get(&proxy.url(), &origin.http("/unlisted"), &[]).await;
    assert_eq!(no.status, 403, "{}", no.body);
    assert!(no.body.contains("not on the allow list"), "{}", no.body);
    assert!(origin.requests().iter().all(|r| r.path != "/unlisted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_bypass_rule_gives_a_blind_tunnel() {
    let origin = Origin::start().await;
    let config = "[[egress.rule]]\nhost = \"localhost\"\naction = \"bypass\"\n";
    let proxy = Proxy::start_with(config, &origin.ca_pem, &["--allow-private"]);
    // Not intercepted: the client sees the origin's own certificate (trusting only the
    // origin's CA works, trusting only ours would not).
    let out = curl(&[
        "-x",
        &proxy.url(),
        "--cacert",
        path_str(&origin.ca_pem),
        &origin.https("/blind"),
    ])
    .await;
    assert_eq!(
        (out.status, out.body.as_str()),
        (200, "origin ok"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_destination_findings_floor_blocks_log_only_findings() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir_with(dir.path(), RULES);
    // `localhost` is a "paste site": any finding sent there blocks. 127.0.0.1 is not.
    let config = format!(
        "rules_dir = {:?}\n[[egress.rule]]\nhost = \"localhost\"\naction = \"allow\"\nfindings = \"block\"\n",
        rules.display().to_string()
    );
    let proxy = Proxy::start_with(&config, &origin.ca_pem, &["--allow-private"]);
    let port = origin.plain_addr.port();
    let body = r#"{"note":"NOTE-123456"}"#;
    let paste = post(
        &proxy.url(),
        &format!("http://localhost:{port}/paste"),
        body,
        &[],
    )
    .await;
    assert_eq!(paste.status, 403, "{}", paste.body);
    assert!(paste.body.contains("test-note"), "{}", paste.body);
    assert!(!paste.body.contains("NOTE-123456"), "never echo the value");
    let tls = proxy
        .curl(&["--data-binary", body, &origin.https("/paste-tls")])
        .await;
    assert_eq!(tls.status, 403, "{}", tls.body);
    let elsewhere = post(&proxy.url(), &origin.http("/elsewhere"), body, &[]).await;
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.body);
    let paths: Vec<String> = origin.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/elsewhere"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_authentication() {
    let origin = Origin::start().await;
    let config = format!("[users]\n{}\n", user_line("alice", "correct horse battery"));
    let proxy = Proxy::start_with(
        &config,
        &origin.ca_pem,
        &["--allow-private", "--admin", "127.0.0.1:0"],
    );
    let url = origin.http("/auth");
    let none = get(&proxy.url(), &url, &["-D", "-"]).await;
    assert_eq!(none.status, 407, "{}", none.body);
    assert!(
        none.body
            .to_ascii_lowercase()
            .contains("proxy-authenticate: basic realm=\"clawguard\""),
        "{}",
        none.body
    );
    assert!(none.body.contains("\"request_id\""), "{}", none.body);
    let wrong = get(&proxy.url(), &url, &["-U", "alice:wrong password"]).await;
    assert_eq!(wrong.status, 407);
    let stranger = get(&proxy.url(), &url, &["-U", "mallory:correct horse battery"]).await;
    assert_eq!(stranger.status, 407);
    let right = get(&proxy.url(), &url, &["-U", "alice:correct horse battery"]).await;
    assert_eq!((right.status, right.body.as_str()), (200, "origin ok"));
    // A tunnel authenticates once at CONNECT; its requests inherit the user.
    let tls_no = proxy.curl(&[&origin.https("/auth-tls")]).await;
    assert_ne!(tls_no.status, 200);
    let tls = curl(&[
        "-x",
        &proxy.url(),
        "-U",
        "alice:correct horse battery",
        "--cacert",
        path_str(&proxy.ca_pem),
        &origin.https("/auth-tls"),
    ])
    .await;
    assert_eq!(tls.status, 200, "{}", tls.stderr);
    // The credentials are for the proxy: the origin never sees them.
    let seen = origin.last("/auth");
    assert!(seen.headers.get("proxy-authorization").is_none());
    let m = metrics(&proxy).await;
    assert!(
        m.contains("clawguard_requests_total{decision=\"allow\",user=\"alice\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("clawguard_requests_total{decision=\"auth-failure\",user=\"-\"}"),
        "{m}"
    );
}

fn verify(log: &Path, key: &Path) -> (bool, String) {
    let out = std::process::Command::new(bin())
        .args(["audit", "verify"])
        .arg(log)
        .arg("--key")
        .arg(key)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "audit log has {} of {n} records",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_is_written_verified_and_tamper_evident() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir_with(dir.path(), RULES);
    let log = dir.path().join("audit.jsonl");
    let key = dir.path().join("audit.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    let config = format!(
        "rules_dir = {:?}\n[[egress.rule]]\nhost = \"denied.test\"\naction = \"deny\"\n",
        rules.display().to_string()
    );
    let args = [
        "--allow-private",
        "--audit-log",
        path_str(&log),
        "--audit-key",
        path_str(&key),
    ];
    {
        let proxy = Proxy::start_with(&config, &origin.ca_pem, &args);
        let ok = get(&proxy.url(), &origin.http("/fine?token=qvalZZ&x=1"), &[]).await;
        assert_eq!(ok.status, 200);
        let blocked = post(
            &proxy.url(),
            &origin.http("/leak"),
            &format!(r#"{{"k":"{CANARY}"}}"#),
            &[],
        )
        .await;
        assert_eq!(blocked.status, 403);
        // Denied by name, before any DNS lookup (nothing leaves loopback).
        let denied = get(&proxy.url(), "http://denied.test/latest/", &[]).await;
        assert_eq!(denied.status, 403);
        let lines = wait_lines(&log, 3).await;
        let recs: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(recs[0]["decision"], "allow");
        assert_eq!(
            recs[0]["path"], "/fine?token=&x=",
            "query values are dropped"
        );
        assert_eq!(recs[1]["decision"], "block");
        let f = &recs[1]["findings"][0];
        assert_eq!(f["rule"], "test-canary");
        assert_eq!(f["location"], "body");
        assert_eq!(f["fingerprint"].as_str().unwrap().len(), 32);
        assert_eq!(recs[2]["decision"], "deny");
        assert!(recs[2]["reason"]
            .as_str()
            .unwrap()
            .contains("denied by egress rule #1"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            !text.contains(CANARY),
            "raw values never reach the audit log"
        );
        assert!(!text.contains("qvalZZ"), "nor query values");
        let (ok, msg) = verify(&log, &key);
        assert!(ok, "{msg}");
        // The same value in a second request has the same keyed fingerprint.
        let again = post(
            &proxy.url(),
            &origin.http("/leak-again"),
            &format!(r#"{{"other":"{CANARY}"}}"#),
            &[],
        )
        .await;
        assert_eq!(again.status, 403);
        let lines = wait_lines(&log, 4).await;
        let r4: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(
            r4["findings"][0]["fingerprint"],
            *f["fingerprint"].as_str().unwrap()
        );
    }
    // A restart continues the chain.
    {
        let proxy = Proxy::start_with(&config, &origin.ca_pem, &args);
        let ok = get(&proxy.url(), &origin.http("/after-restart"), &[]).await;
        assert_eq!(ok.status, 200);
        let lines = wait_lines(&log, 5).await;
        let r5: serde_json::Value = serde_json::from_str(&lines[4]).unwrap();
        assert_eq!(r5["seq"], 5);
    }
    let (ok, msg) = verify(&log, &key);
    assert!(ok, "{msg}");
    assert!(msg.contains("5 record"), "{msg}");

    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let tampered = |name: &str, text: String, needle: &str| {
        std::fs::write(&log, text).unwrap();
        let (ok, msg) = verify(&log, &key);
        assert!(!ok, "{name}: verify must fail:\n{msg}");
        assert!(msg.contains(needle), "{name}: {msg}");
    };
    // Edit one byte of record 2 (its decision).
    tampered(
        "edit",
        original.replacen("\"decision\":\"block\"", "\"decision\":\"blocc\"", 1),
        "record 2",
    );
    // Delete record 3.
    let mut del = lines.clone();
    del.remove(2);
    tampered("delete", del.join("\n") + "\n", "record 4");
    // Swap records 2 and 3.
    let mut swap = lines.clone();
    swap.swap(1, 2);
    tampered("swap", swap.join("\n") + "\n", "record 3");
    std::fs::write(&log, &original).unwrap();
    assert!(verify(&log, &key).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_decisions_are_audited_as_would() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir_with(dir.path(), RULES);
    let log = dir.path().join("audit.jsonl");
    let config = format!("rules_dir = {:?}\n", rules.display().to_string());
    let proxy = Proxy::start_with(
        &config,
        &origin.ca_pem,
        &[
            "--allow-private",
            "--mode",
            "dry-run",
            "--audit-log",
            path_str(&log),
        ],
    );
    let out = post(
        &proxy.url(),
        &origin.http("/dry"),
        &format!(r#"{{"k":"{CANARY}"}}"#),
        &["-D", "-"],
    )
    .await;
    assert_eq!(out.status, 200);
    assert!(out
        .body
        .to_ascii_lowercase()
        .contains("x-clawguard-would: block"));
    let lines = wait_lines(&log, 1).await;
    let r: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(r["decision"], "would-block");
    assert_eq!(r["findings"][0]["rule"], "test-canary");
    // No --audit-key: fingerprints use a per-process random key, still never the value.
    assert_eq!(r["findings"][0]["fingerprint"].as_str().unwrap().len(), 32);
    assert!(!lines[0].contains(CANARY));
    let v = std::process::Command::new(bin())
        .args(["audit", "verify"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(v.status.success());
}

/// A proxy with the test rules as its config's `rules_dir` (what a reload re-reads) and an
/// admin listener; the rules directory, kept as long as the returned `TempDir`.
fn proxy_with_rules_and_admin(origin: &Origin) -> (Proxy, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir_with(dir.path(), RULES);
    let config = format!("rules_dir = {:?}\n", rules.display().to_string());
    let proxy = Proxy::start_with(
        &config,
        &origin.ca_pem,
        &["--allow-private", "--admin", "127.0.0.1:0"],
    );
    (proxy, rules, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_endpoints() {
    let origin = Origin::start().await;
    let (proxy, _rules, _dir) = proxy_with_rules_and_admin(&origin);
    let admin = proxy.admin.unwrap();
    for path in ["/healthz", "/readyz"] {
        let out = curl(&[&format!("http://{admin}{path}")]).await;
        assert_eq!(out.status, 200, "{path}");
    }
    assert_eq!(
        get(&proxy.url(), &origin.http("/m1"), &[]).await.status,
        200
    );
    let body = format!(r#"{{"k":"{CANARY}"}}"#);
    assert_eq!(
        post(&proxy.url(), &origin.http("/m2"), &body, &[])
            .await
            .status,
        403
    );
    let closed = closed_port();
    let refused = get(&proxy.url(), &format!("http://127.0.0.1:{closed}/"), &[]).await;
    assert_eq!(refused.status, 502);
    let m = metrics(&proxy).await;
    for needle in [
        "clawguard_requests_total{decision=\"allow\",user=\"-\"} 2",
        "clawguard_requests_total{decision=\"block\",user=\"-\"} 1",
        "clawguard_findings_total{rule=\"test-canary\",category=\"credential\"} 1",
        "clawguard_upstream_errors_total{kind=\"connect\"} 1",
        "clawguard_inspect_duration_seconds_count 3",
        "clawguard_request_duration_seconds_count 3",
    ] {
        assert!(m.contains(needle), "missing `{needle}`:\n{m}");
    }
    let inspected: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("clawguard_inspected_bytes_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(inspected, body.len() as u64);
    // The admin endpoints are not reachable through the proxy port.
    let out = curl(&[&format!("{}/metrics", proxy.url())]).await;
    assert_eq!(out.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_old_rules_on_error_and_applies_good_changes() {
    let origin = Origin::start().await;
    let (proxy, rules, _dir) = proxy_with_rules_and_admin(&origin);
    let admin = proxy.admin.unwrap().to_string();
    let body = format!(r#"{{"k":"{CANARY}"}}"#);
    let status = || async {
        post(&proxy.url(), &origin.http("/r"), &body, &[])
            .await
            .status
    };
    assert_eq!(status().await, 403);

    let reload = || {
        std::process::Command::new(bin())
            .args(["reload", "--admin", &admin])
            .output()
            .unwrap()
    };
    // A broken rule file: rejected with a reason; the old rules keep serving.
    std::fs::write(
        rules.join("test.toml"),
        "[[rule]]\nid = \"x\"\nregex = '''(('''\n",
    )
    .unwrap();
    let out = reload();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("\"reloaded\":false"), "{said}");
    proxy.wait_for_log("reload rejected").await;
    assert_eq!(status().await, 403, "old rules still block");
    // A broken config file: same.
    let config = std::fs::read_to_string(&proxy.config).unwrap();
    std::fs::write(&proxy.config, "mode = \"loud\"\n").unwrap();
    assert!(!reload().status.success());
    assert_eq!(status().await, 403);

    // A good change through SIGHUP: the canary rule becomes log-only.
    std::fs::write(&proxy.config, &config).unwrap();
    std::fs::write(
        rules.join("test.toml"),
        RULES.replacen("action = \"block\"", "action = \"log\"", 1),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &proxy.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    proxy.wait_for_log("configuration reloaded").await;
    assert_eq!(status().await, 200, "the new rules apply");

    // And back to blocking through the CLI.
    std::fs::write(rules.join("test.toml"), RULES).unwrap();
    let out = reload();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(status().await, 403);
}

fn run_refused(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(bin())
        .arg("run")
        .args(args)
        .arg("--ca-dir")
        .arg(dir.path().join("ca"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a proxy that wrongly starts is killed and the test fails on its status.
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn running_as_root_is_refused_without_allow_root() {
    if skip_if(!is_root(), "not running as root") {
        return;
    }
    let (code, err) = run_refused(&["--listen", "127.0.0.1:0"]);
    assert!(code.is_some_and(|c| c != 0), "{code:?} {err}");
    assert!(err.contains("refusing to run as root"), "{err}");
    assert!(err.contains("--allow-root"), "{err}");
}

#[test]
fn open_listen_without_users_is_refused() {
    let (code, err) = run_refused(&["--listen", "0.0.0.0:0", "--allow-root"]);
    assert!(code.is_some_and(|c| c != 0), "{code:?} {err}");
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("allow_unauthenticated"), "{err}");
}
