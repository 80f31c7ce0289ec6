//! `clawguard scan` over directories like the tools people know: ignore files honoured,
//! `.git/` skipped unless asked, a one-line summary on standard error, and no progress
//! bar when standard error is not a terminal. The real binary on a temporary tree.

use std::path::Path;
use std::process::{Command, Output};

const AWS: &str = "AKIAQYLPMN5HFIQR7VUX";

fn scan(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .arg("scan")
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

fn paths(out: &Output) -> Vec<String> {
    let mut p: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    p.sort();
    p.dedup();
    p
}

/// A project tree with the same credential in a tracked file, an ignored build
/// directory, an ignored log, a dotfile and git's own objects.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let key = format!("aws_access_key_id = {AWS}\n");
    for (p, body) in [
        (".gitignore", "target/\n*.log\n".to_string()),
        ("src/config.py", key.clone()),
        (".env", key.clone()),
        ("target/debug/build.txt", key.clone()),
        ("server.log", key.clone()),
        (".git/config", key.clone()),
    ] {
        let f = dir.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, body).unwrap();
    }
    dir
}

fn rel(dir: &Path, names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .map(|n| dir.join(n).display().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn ignore_files_and_git_are_skipped_by_default() {
    let dir = project();
    let out = scan(&["--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(paths(&out), rel(dir.path(), &[".env", "src/config.py"]));
}

#[test]
fn no_ignore_and_hidden_include_them() {
    let dir = project();
    let out = scan(&["--format", "json", "--no-ignore"], dir.path());
    assert_eq!(
        paths(&out),
        rel(
            dir.path(),
            &[
                ".env",
                "server.log",
                "src/config.py",
                "target/debug/build.txt"
            ]
        )
    );
    let out = scan(&["--format", "json", "--no-ignore", "--hidden"], dir.path());
    assert_eq!(
        paths(&out),
        rel(
            dir.path(),
            &[
                ".env",
                ".git/config",
                "server.log",
                "src/config.py",
                "target/debug/build.txt"
            ]
        )
    );
}

#[test]
fn summary_line_on_stderr_for_clean_and_finished_scans() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "nothing to see\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), "still nothing\n").unwrap();
    let out = scan(&[], dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    // Not a terminal: the summary alone, no progress bar drawing.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("scanned 2 files, 0.0 MB, 0 findings in "),
        "{err}"
    );
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");

    let dir = project();
    let out = scan(&["--format", "json"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("scanned 3 files, 0.0 MB, 2 findings in "),
        "{err}"
    );

    let out = scan(&["--quiet"], dir.path());
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn a_named_file_is_scanned_even_when_ignored() {
    let dir = project();
    let out = scan(&["--format", "json"], &dir.path().join("server.log"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
