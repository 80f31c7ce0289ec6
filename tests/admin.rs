//! The admin listener's authentication and CSRF rules, against the real binary.

mod common;

use common::{assert_success, curl, Proxy};

const TOKEN: &str = "test-admin-token-7f3a9c2e51";

fn start(config: &str) -> Proxy {
    Proxy::start_with(
        config,
        std::path::Path::new(""),
        &["--admin", "127.0.0.1:0"],
    )
}

async fn status(args: &[&str]) -> u16 {
    curl(args).await.status
}

#[tokio::test]
async fn loopback_admin_without_credentials_still_refuses_cross_site_writes() {
    let p = start("");
    let a = p.admin.unwrap();
    let reload = format!("http://{a}/reload");
    assert_eq!(status(&[&format!("http://{a}/metrics")]).await, 200);
    // A plain cross-site form POST carries no custom header: refused.
    assert_eq!(status(&["-X", "POST", &reload]).await, 403);
    assert_eq!(
        status(&[
            "-X",
            "POST",
            "-H",
            "x-clawguard-admin: 1",
            "-H",
            "origin: http://evil.example",
            &reload
        ])
        .await,
        403
    );
    assert_eq!(
        status(&[
            "-X",
            "POST",
            "-H",
            "x-clawguard-admin: 1",
            "-H",
            "sec-fetch-site: cross-site",
            &reload
        ])
        .await,
        403
    );
    assert_eq!(
        status(&["-X", "POST", "-H", "x-clawguard-admin: 1", &reload]).await,
        200
    );
    // The CLI sends what the listener needs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["reload", "--admin", &a.to_string()])
        .output()
        .unwrap();
    assert_success(&out);
}

#[tokio::test]
async fn a_token_or_an_admin_user_is_required_once_configured() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let alice = clawguard::auth::hash_password("alice-password-1").unwrap();
    let bob = clawguard::auth::hash_password("bob-password-22").unwrap();
    let cfg = format!(
        "admin_token_file = {:?}\nadmin_users = [\"alice\"]\n[users]\nalice = {alice:?}\nbob = {bob:?}\n",
        token_file.to_str().unwrap()
    );
    let p = start(&cfg);
    let a = p.admin.unwrap();
    let metrics = format!("http://{a}/metrics");
    let out = curl(&["-i", &metrics]).await;
    assert_eq!(out.status, 401);
    assert!(out
        .body
        .to_ascii_lowercase()
        .contains("www-authenticate: basic"));
    assert_eq!(
        status(&["-H", &format!("authorization: Bearer {TOKEN}"), &metrics]).await,
        200
    );
    assert_eq!(
        status(&[
            "-H",
            "authorization: Bearer wrong-token-000000000",
            &metrics
        ])
        .await,
        401
    );
    assert_eq!(
        status(&["-u", &format!("token:{TOKEN}"), &metrics]).await,
        200
    );
    assert_eq!(
        status(&["-u", "alice:alice-password-1", &metrics]).await,
        200
    );
    assert_eq!(status(&["-u", "alice:wrong", &metrics]).await, 401);
    // A proxy user without the admin role.
    assert_eq!(status(&["-u", "bob:bob-password-22", &metrics]).await, 401);
    // Probes stay open for load balancers.
    assert_eq!(status(&[&format!("http://{a}/healthz")]).await, 200);
    assert_eq!(status(&[&format!("http://{a}/readyz")]).await, 200);
    // Authenticated is not enough for a write: the CSRF header is still needed.
    let reload = format!("http://{a}/reload");
    assert_eq!(
        status(&["-X", "POST", "-u", "alice:alice-password-1", &reload]).await,
        403
    );
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["reload", "--admin", &a.to_string(), "--token-file"])
        .arg(&token_file)
        .output()
        .unwrap();
    assert_success(&ok);
    let no_token = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["reload", "--admin", &a.to_string()])
        .output()
        .unwrap();
    assert!(!no_token.status.success());
}

#[test]
fn an_admin_listener_beyond_loopback_without_credentials_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args([
            "run",
            "--allow-root",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "0.0.0.0:0",
            "--ca-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin listener") && err.contains("admin_token_file"),
        "{err}"
    );
}
