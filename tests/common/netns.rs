//! Shell scripts run in a network namespace of their own (only `lo`, nothing routes out),
//! for the tests that aim at addresses other than loopback. Needs root (as CI runs),
//! iproute2 and util-linux; without them the test is skipped locally and fails under
//! `CI=true`.

use std::process::{Command, Stdio};

/// Skip (`true`, after printing `SKIP:`) unless `ip` and `unshare <flags>` work here.
pub fn namespaces_missing(unshare_flags: &str) -> bool {
    let works = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // iproute2's `ip` answers `-V`, not `--version`.
    if super::skip_if(
        !works(Command::new("ip").arg("-V")),
        "iproute2 (`ip`) is not installed",
    ) {
        return true;
    }
    super::skip_if(
        !works(Command::new("unshare").args([unshare_flags, "true"])),
        &format!("`unshare {unshare_flags}` is not available here (needs CAP_SYS_ADMIN)"),
    )
}

/// `timeout 120 unshare <flags> bash -c <script>` with `CLAWGUARD` naming the binary, `env`
/// added and no proxy variable inherited (the script's clients reach what they name);
/// its stdout, then `--- stderr ---` and its stderr.
pub fn run_in_namespace(unshare_flags: &str, script: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new("timeout")
        .args(["120", "unshare", unshare_flags, "bash", "-c", script])
        .env("CLAWGUARD", env!("CARGO_BIN_EXE_clawguard"))
        .envs(env.iter().copied())
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
