//! A real OpenClaw for tests: Node 24 and OpenClaw installed with npm into
//! `target/e2e-cache/` (one install serves every test binary), or `CLAWGUARD_E2E_CACHE`.
//! Without npm/node the tests skip (after printing `SKIP:`), except under `CI=true`,
//! where that fails them; an install that fails or runs past its bound always fails.

use super::{run_bounded, Output};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub const OPENCLAW_VERSION: &str = "2026.9.6";
const OPENCLAW: &str = "openclaw@2026.9.6";
const NODE: &str = "node@24";
/// OpenClaw 2026.9.6 needs Node >= 24.16.
const NODE_MIN: (u32, u32) = (24, 16);
/// Only bounds a broken install (a hung registry); a normal one takes a few minutes.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

pub struct Tooling {
    /// Directory holding Node 24's `node` (first on PATH for OpenClaw).
    pub node_bin: PathBuf,
    /// `node_modules/.bin` holding `openclaw`.
    pub openclaw_bin: PathBuf,
}

impl Tooling {
    pub fn openclaw(&self) -> PathBuf {
        self.openclaw_bin.join("openclaw")
    }

    /// PATH with Node 24 and OpenClaw first.
    pub fn path(&self) -> std::ffi::OsString {
        path_with(&[&self.openclaw_bin, &self.node_bin])
    }

    /// PATH with Node 24 first (OpenClaw itself is run by its full path).
    pub fn node_path(&self) -> std::ffi::OsString {
        path_with(&[&self.node_bin])
    }
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CLAWGUARD_E2E_CACHE") {
        return PathBuf::from(d);
    }
    // target/<profile>/clawguard → target/e2e-cache (follows CARGO_TARGET_DIR).
    Path::new(env!("CARGO_BIN_EXE_clawguard"))
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in target/<profile>/")
        .join("e2e-cache")
}

pub fn path_with(first: &[&Path]) -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = first.iter().map(|p| p.to_path_buf()).collect();
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).expect("PATH entries are joinable")
}

fn node_ok(node: &Path) -> bool {
    let Ok(out) = Command::new(node).arg("--version").output() else {
        return false;
    };
    let v = String::from_utf8_lossy(&out.stdout);
    let mut it = v.trim().trim_start_matches('v').split('.');
    let major: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor) >= NODE_MIN
}

/// `npm install --prefix` into a temporary directory renamed into place, so an
/// interrupted install is never taken for a finished one. Panics when npm fails.
fn npm_install(cache: &Path, name: &str, spec: &str, path: &std::ffi::OsStr) {
    let done = cache.join(name);
    let tmp = cache.join(format!("{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    eprintln!("npm install {spec} into {} …", done.display());
    let mut cmd = Command::new("npm");
    cmd.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "--prefix",
    ])
    .arg(&tmp)
    .arg(spec)
    .env("PATH", path);
    let out: Output = run_bounded(cmd, INSTALL_TIMEOUT, &tmp.join("npm-install.log"));
    assert!(
        out.code == Some(0),
        "npm install {spec} failed ({:?}):\n{}\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&done);
    if std::fs::rename(&tmp, &done).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // another process finished first; use its copy
    }
}

/// `Err` only when npm/node are missing; a failed install panics.
fn install() -> Result<Tooling, String> {
    if !which("npm") || !which("node") {
        return Err("npm/node not installed".into());
    }
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    let node_bin = cache.join("node24/node_modules/.bin");
    if !node_ok(&node_bin.join("node")) {
        npm_install(
            &cache,
            "node24",
            NODE,
            &path_with(&[Path::new("/nonexistent")]),
        );
        assert!(
            node_ok(&node_bin.join("node")),
            "npm install {NODE} did not give Node >= {}.{} in {}",
            NODE_MIN.0,
            NODE_MIN.1,
            node_bin.display()
        );
    }
    let dir = format!("openclaw-{OPENCLAW_VERSION}");
    let t = Tooling {
        openclaw_bin: cache.join(&dir).join("node_modules/.bin"),
        node_bin,
    };
    let version_ok = || {
        Command::new(t.openclaw())
            .arg("--version")
            .env("PATH", t.node_path())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(OPENCLAW_VERSION))
    };
    if !version_ok() {
        npm_install(&cache, &dir, OPENCLAW, &t.node_path());
        assert!(version_ok(), "{} --version failed", t.openclaw().display());
    }
    Ok(t)
}

/// The installed tooling; `None` (after printing `SKIP:`) without npm/node. Under
/// `CI=true` a missing npm/node fails the test: CI installs them (`.ci/run`).
pub fn tooling(test: &str) -> Option<&'static Tooling> {
    static T: OnceLock<Result<Tooling, String>> = OnceLock::new();
    match T.get_or_init(install) {
        Ok(t) => Some(t),
        Err(why) => {
            assert!(
                !super::in_ci(),
                "{test}: {why} under CI=true (.ci/run must install nodejs and npm)"
            );
            eprintln!("SKIP: {test}: {why}");
            None
        }
    }
}
