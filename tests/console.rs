//! The operator console in headless Chromium (Debian's `chromium`, driven by
//! playwright-core) against a real running proxy: the page loads behind admin
//! authentication, shows a block that was just made (masked, never the value), counts
//! it, shows the configuration, and the try box returns findings. Saves a screenshot to
//! `target/console.png`.

mod common;

use common::{assert_success, curl, require_peer, Origin, Proxy};
use std::path::Path;

const AWS_KEY: &str = "AKIAQYLPMN5HFIQR7VUX";
const EMAIL: &str = "li.wei.leak@example.org";
const TOKEN: &str = "console-test-token-5d1e8a";

#[tokio::test]
async fn console_shows_a_fresh_block_and_the_try_box_finds_things() {
    if !require_peer("chromium") || !require_peer("node") {
        return;
    }
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !node_dir.join("node_modules/playwright-core").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tests/node/node_modules/playwright-core missing under CI=true (npm ci)"
        );
        eprintln!("SKIP: run `npm ci` in tests/node");
        return;
    }
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let cfg = format!("admin_token_file = {:?}\n", token_file.to_str().unwrap());
    let proxy = Proxy::start_with(
        &cfg,
        &origin.ca_pem,
        &["--allow-private", "--admin", "127.0.0.1:0"],
    );
    let out = curl(&[
        "-x",
        &proxy.url(),
        "--data-binary",
        &format!(r#"{{"key":"{AWS_KEY}"}}"#),
        &origin.http("/exfil"),
    ])
    .await;
    assert_eq!(out.status, 403);

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console.png");
    let _ = std::fs::remove_file(&shot);
    let admin = proxy.admin.unwrap();
    let run = common::command("node")
        .current_dir(&node_dir)
        .arg("console.mjs")
        .arg(format!("http://{admin}/"))
        .arg(&shot)
        .args(["token", TOKEN])
        .env("TRY_TEXT", format!("please mail {EMAIL} about the invoice"))
        .output();
    let out = tokio::time::timeout(common::PATIENCE * 2, run)
        .await
        .expect("browser test finished")
        .unwrap();
    let stdout = assert_success(&out);
    let line = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(
        v["blockRules"]
            .as_str()
            .unwrap()
            .contains("aws-access-key-id"),
        "{v}"
    );
    let table = v["tableText"].as_str().unwrap();
    assert!(
        table.contains("/exfil") && !table.contains(AWS_KEY),
        "{table}"
    );
    assert!(v["countsText"]
        .as_str()
        .unwrap()
        .contains("aws-access-key-id"));
    assert!(v["configText"].as_str().unwrap().contains("enforce"));
    assert!(
        v["found"].as_array().unwrap().iter().any(|r| r == "email"),
        "{v}"
    );
    assert_eq!(v["decision"], "redact");
    assert!(
        v["redacted"].as_str().unwrap().contains("[REDACTED:email]"),
        "{v}"
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), 0, "page errors: {v}");
    assert!(shot.exists(), "screenshot saved");
    // Without credentials the console is refused.
    let anon = curl(&[&format!("http://{admin}/")]).await;
    assert_eq!(anon.status, 401);
}
