//! `clawguard ca path`, `ca trust`, `ca untrust` and `ca env` with the real binary.

use std::process::{Command, Output};

fn clawguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ca_path_fails_clearly_without_a_ca_and_prints_it_once_created() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("certs");
    let ca = ca_dir.to_str().unwrap();
    let out = clawguard(&["ca", "path", "--ca-dir", ca]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no CA in") && err.contains("clawguard ca init"),
        "{err}"
    );

    let init = clawguard(&["ca", "init", "--ca-dir", ca]);
    assert!(init.status.success(), "{init:?}");
    let out = clawguard(&["ca", "path", "--ca-dir", ca]);
    assert!(out.status.success(), "{out:?}");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(path, ca_dir.join("clawguard-ca.pem").display().to_string());
    assert!(std::path::Path::new(&path).is_file());
}
