//! `clawguard exec`: a command wired to an embedded ClawGuard, with and without
//! `--lockdown`. Real binary, real curl, a local HTTPS origin; loopback only.

mod common;

use common::{command, have, Origin};
use std::process::Stdio;

const AWS: &str = "AKIAQYLPMN5HFIQR7VUX";

/// The origin is on loopback: tests opt in to reaching private addresses.
const PROXY_FLAGS: &[&str] = &["--allow-private"];

/// `clawguard exec` with a fresh CA dir, trusting the origin's CA.
fn exec(
    origin: &Origin,
    ca_dir: &std::path::Path,
    extra: &[&str],
    script: &str,
) -> tokio::process::Command {
    let mut c = command(env!("CARGO_BIN_EXE_clawguard"));
    c.arg("exec")
        .arg("--ca-dir")
        .arg(ca_dir)
        .arg("--upstream-ca")
        .arg(&origin.ca_pem)
        .args(PROXY_FLAGS)
        .args(extra)
        .args(["--", "bash", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[tokio::test]
async fn exit_status_and_environment() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = exec(
        &origin,
        dir.path(),
        &[],
        r#"test "$HTTPS_PROXY" = "$OPENCLAW_PROXY_URL" && test "$NODE_USE_ENV_PROXY" = 1 \
           && test -z "$NO_PROXY" && grep -q BEGIN "$NODE_EXTRA_CA_CERTS" \
           && test "$(grep -c BEGIN "$SSL_CERT_FILE")" -gt 1 && exit 7"#,
    )
    .output()
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_commands_traffic_is_inspected() {
    if !have("curl") {
        eprintln!("SKIP: curl not installed");
        return;
    }
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "curl -sS -H 'content-type: application/json' -d '{{\"note\":\"clean\"}}' {clean}; echo; \
         curl -sS -H 'content-type: application/json' -d '{{\"key\":\"{AWS}\"}}' {leak}",
        clean = origin.https("/clean"),
        leak = origin.https("/leak"),
    );
    let out = exec(&origin, dir.path(), &[], &script)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Blocked by ClawGuard"), "{stdout}");
    assert!(!stdout.contains(AWS));
    let paths: Vec<String> = origin.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        vec!["/clean".to_string()],
        "the leaking request never left"
    );
}

#[tokio::test]
async fn lockdown_leaves_only_the_proxy_reachable() {
    if !have("curl") {
        eprintln!("SKIP: curl not installed");
        return;
    }
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "curl -sS -o /dev/null -w 'proxied:%{{http_code}}\\n' {url}; \
         curl -sS --noproxy '*' --cacert \"$SSL_CERT_FILE\" -o /dev/null {url} 2>/dev/null \
           && echo direct:reached || echo direct:failed; \
         getent hosts example.com >/dev/null && echo dns:resolved || echo dns:failed",
        url = origin.https("/through"),
    );
    let out = exec(&origin, dir.path(), &["--lockdown"], &script)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("needs Linux network namespaces") {
        eprintln!("SKIP: network namespaces unavailable here: {stderr}");
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout, "proxied:200\ndirect:failed\ndns:failed\n",
        "{stderr}"
    );
    assert_eq!(
        origin.requests().len(),
        1,
        "only the proxied request arrived"
    );
}

#[tokio::test]
async fn sigterm_is_passed_to_the_command() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = exec(
        &origin,
        dir.path(),
        &[],
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
    )
    .spawn()
    .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    tokio::io::AsyncReadExt::read_exact(&mut stdout, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"ready\n");
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(common::PATIENCE, child.wait())
        .await
        .expect("exec exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(42));
}
