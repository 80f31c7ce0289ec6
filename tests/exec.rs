//! `clawguard exec`: a command wired to an embedded ClawGuard, with and without
//! `--lockdown`. Real binary, real curl, a local HTTPS origin; loopback only.
//! The ways out of a lockdown are tried one by one in `tests/lockdown_bypass.rs`.

mod common;

use common::{assert_success, command, have, is_root, skip_if, Origin};
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
        // CI runs as root; `exec` refuses root without it.
        .args(if is_root() {
            &["--allow-root"][..]
        } else {
            &[]
        })
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
    if skip_if(!have("curl"), "curl not installed") {
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
    let stdout = assert_success(&out);
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
    if skip_if(!have("curl"), "curl not installed") {
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
    if lockdown_unavailable(&stderr) {
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

/// Skip (`true`) when `exec --lockdown` said the lockdown cannot be set up here (its
/// stderr); under CI that fails the test instead.
fn lockdown_unavailable(stderr: &str) -> bool {
    skip_if(
        stderr.contains("--lockdown: "),
        &format!("the lockdown is unavailable here: {stderr}"),
    )
}

/// SIGTERM sent to `clawguard exec <flags>` reaches the command (which exits 42 on it),
/// and its exit status comes back.
async fn assert_sigterm_reaches_the_command(
    origin: &Origin,
    dir: &std::path::Path,
    flags: &[&str],
) {
    let mut child = exec(
        origin,
        dir,
        flags,
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

#[tokio::test]
async fn sigterm_is_passed_to_the_command() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    assert_sigterm_reaches_the_command(&origin, dir.path(), &[]).await;
}

#[tokio::test]
async fn exec_refuses_root_without_allow_root() {
    if skip_if(!is_root(), "refusing root needs the test to run as root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--lockdown"][..]] {
        let out = command(env!("CARGO_BIN_EXE_clawguard"))
            .arg("exec")
            .arg("--ca-dir")
            .arg(dir.path())
            .args(extra)
            .args(["--", "sh", "-c", "echo ran"])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("refusing to run as root"), "{stderr}");
        assert!(out.stdout.is_empty(), "the command never ran");
    }
}

#[tokio::test]
async fn lockdown_only_flags_need_lockdown() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = exec(&origin, dir.path(), &["--print-profile"], "echo ran")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("need --lockdown"));
    assert!(out.stdout.is_empty());
}

/// `--print-profile json` shows what was applied, measured inside: new namespaces, no
/// capability in any set, no_new_privs, seccomp filters, the mount view.
#[tokio::test]
async fn print_profile_shows_what_the_lockdown_applied() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = exec(
        &origin,
        dir.path(),
        &["--lockdown", "--print-profile", "json"],
        "echo COMMAND-RAN",
    )
    .output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if lockdown_unavailable(&stderr) {
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (json, rest) = stdout.split_at(stdout.find("COMMAND-RAN").expect("the command ran"));
    assert_eq!(rest.trim(), "COMMAND-RAN", "the profile comes first");
    let p: serde_json::Value = serde_json::from_str(json).expect("the profile is JSON");
    for kind in ["net", "mnt", "pid", "ipc", "uts", "cgroup"] {
        let ns = p["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind)
            .unwrap();
        assert_eq!(ns["new"], true, "{kind}: {ns}");
    }
    for set in [
        "effective",
        "permitted",
        "inheritable",
        "bounding",
        "ambient",
    ] {
        let mask = p["capabilities"][set].as_str().unwrap();
        assert_eq!(u64::from_str_radix(mask, 16), Ok(0), "{set}: {mask}");
    }
    assert_eq!(p["no_new_privs"], true);
    assert_eq!(p["seccomp"]["mode"], 2);
    assert!(p["seccomp"]["filters"].as_u64().unwrap() >= 5);
    let denied: Vec<&str> = p["seccomp"]["denied"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["calls"].as_array().unwrap())
        .filter_map(|c| c.as_str())
        .collect();
    for call in [
        "setns",
        "unshare",
        "mount",
        "ptrace",
        "request_key",
        "io_uring_setup",
    ] {
        assert!(denied.contains(&call), "{call} denied: {denied:?}");
    }
    let view = |path: &str| {
        p["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["path"] == path)
            .map(|m| m["view"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    for private in ["/tmp", "/run"] {
        assert!(view(private).starts_with("private tmpfs"), "{private}");
    }
    assert!(view("/").contains("read-only"));
    assert!(view("/proc").contains("PID namespace"));
    assert!(p["network"]["interfaces"][0]
        .as_str()
        .unwrap()
        .starts_with("lo "));
    assert_eq!(p["network"]["proxy"], "127.0.0.1:8383");
}

/// Signals reach the command through both lockdown processes, and its exit status comes
/// back; a signal that kills it gives 128 + signal.
#[tokio::test]
async fn lockdown_passes_signals_and_exit_status() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = exec(&origin, dir.path(), &["--lockdown"], "exit 9")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if lockdown_unavailable(&stderr) {
        return;
    }
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert_sigterm_reaches_the_command(&origin, dir.path(), &["--lockdown"]).await;
}
