//! `clawguard ca path`, `ca trust`, `ca untrust` and `ca env` with the real binary, the
//! real system trust store (as root, as here and in CI) and real clients (curl, Python)
//! through a real proxy to a loopback origin.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn clawguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(args)
        .env_remove("SSL_CERT_FILE")
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
    assert!(Path::new(&path).is_file());
}

#[test]
fn ca_env_names_the_ca_for_node_and_the_exec_bundle_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().to_str().unwrap();
    assert!(clawguard(&["ca", "init", "--ca-dir", ca]).status.success());
    let out = clawguard(&["ca", "env", "--ca-dir", ca]);
    assert!(out.status.success(), "{out:?}");
    let env = exports(&out);
    let ca_pem = dir.path().join("clawguard-ca.pem");
    let bundle = dir.path().join("clawguard-bundle.pem");
    assert_eq!(env["NODE_EXTRA_CA_CERTS"], ca_pem);
    for v in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        assert_eq!(env[v], bundle, "{v}");
    }
    // The bundle holds the CA (and the system roots, where there are any).
    let ca_der = cert_der(&ca_pem);
    assert!(pem_certs(&bundle).contains(&ca_der.to_vec()));
    // Run again with the bundle exported: it is not built from itself (no second copy).
    let again = Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["ca", "env", "--ca-dir", ca])
        .env("SSL_CERT_FILE", &bundle)
        .output()
        .unwrap();
    assert!(again.status.success());
    let copies = pem_certs(&bundle)
        .iter()
        .filter(|c| **c == ca_der.to_vec())
        .count();
    assert_eq!(copies, 1);
}

/// `export NAME=VALUE   # comment` lines → NAME → VALUE.
fn exports(out: &Output) -> std::collections::HashMap<String, PathBuf> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .map(|l| {
            let (kv, _) = l.split_once("   #").unwrap_or((l, ""));
            let (k, v) = kv.trim().split_once('=').unwrap();
            (k.to_string(), PathBuf::from(v.trim_matches('\'')))
        })
        .collect()
}

fn pem_certs(path: &Path) -> Vec<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(|c| c.unwrap().to_vec())
        .collect()
}

const DEBIAN_TOOL: &str = "/usr/sbin/update-ca-certificates";
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What clients see of the store `update-ca-certificates` maintains: the bundle's bytes
/// and every entry of /etc/ssl/certs with the bytes it resolves to. (Whether an entry is a
/// plain file or a link is left out: any `update-ca-certificates` run turns a certificate
/// copied there by hand into a link to the same certificate in
/// /usr/local/share/ca-certificates.)
fn store_state() -> (String, Vec<(String, String)>) {
    let sha = |p: &Path| match std::fs::read(p) {
        Ok(bytes) => hex::encode(Sha256::digest(bytes)),
        Err(e) => format!("({e})"),
    };
    let bundle = sha(Path::new(SYSTEM_BUNDLE));
    let mut entries: Vec<(String, String)> = std::fs::read_dir("/etc/ssl/certs")
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), sha(&p))
        })
        .collect();
    entries.sort();
    (bundle, entries)
}

/// Untrusts on drop, so a failing assertion never leaves a test CA in the system store.
struct Untrust(String);

impl Drop for Untrust {
    fn drop(&mut self) {
        let _ = clawguard(&["ca", "untrust", "--ca-dir", &self.0]);
    }
}

/// curl through the proxy with no CA option and no CA variable: the system store decides.
async fn curl_with_system_roots(proxy: &Proxy, url: &str) -> CurlOut {
    let out = command("curl")
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x"])
        .arg(proxy.url())
        .arg(url)
        .output()
        .await
        .unwrap();
    CurlOut {
        exit: out.status.code().unwrap_or(-1),
        status: String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0),
        http_version: String::new(),
        body: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// Python's `ssl` default context (what urllib uses) through the proxy.
async fn python_urllib(proxy: &Proxy, url: &str, env: &[(&str, &Path)]) -> Output {
    let script = "import sys, urllib.request\n\
        h = urllib.request.ProxyHandler({'https': sys.argv[1]})\n\
        print(urllib.request.build_opener(h).open(sys.argv[2], timeout=60).status)\n";
    let mut c = command("python3");
    c.env_remove("SSL_CERT_FILE")
        .env_remove("REQUESTS_CA_BUNDLE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["-c", script, &proxy.url(), url])
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_installs_into_the_system_store_and_untrust_restores_it() {
    let root = unsafe { libc::geteuid() } == 0;
    let tool = Path::new(DEBIAN_TOOL).is_file() && Path::new(SYSTEM_BUNDLE).is_file();
    if !root || !tool {
        assert!(
            !in_ci(),
            "CI runs as root with ca-certificates installed (.ci/run)"
        );
        eprintln!("SKIP: needs root and update-ca-certificates");
        return;
    }
    let origin = Origin::start().await;
    let proxy = Proxy::start("", &origin.ca_pem);
    let ca_dir = proxy.ca_pem.parent().unwrap().to_str().unwrap().to_string();
    let url = origin.https("/trusted");
    let before = store_state();

    // Not trusted yet: curl refuses the proxy's leaf.
    let out = curl_with_system_roots(&proxy, &url).await;
    assert_eq!(out.exit, 60, "{}", out.stderr);

    let guard = Untrust(ca_dir.clone());
    let out = clawguard(&["ca", "trust", "--ca-dir", &ca_dir]);
    assert!(out.status.success(), "{out:?}");
    let ca_der = cert_der(&proxy.ca_pem).to_vec();
    assert!(pem_certs(Path::new(SYSTEM_BUNDLE)).contains(&ca_der));
    // curl and Python's default context read the system store.
    let out = curl_with_system_roots(&proxy, &url).await;
    assert_eq!((out.exit, out.status), (0, 200), "{}", out.stderr);
    let py = python_urllib(&proxy, &url, &[]).await;
    assert!(py.status.success(), "{py:?}");
    // The printed variables cover a client with its own roots: Python requests (certifi).
    let env = exports(&out_of(&["ca", "env", "--ca-dir", &ca_dir]));
    if have("python3") {
        let script = "import sys, requests\n\
            r = requests.get(sys.argv[2], proxies={'https': sys.argv[1]}, timeout=60)\n\
            print(r.status_code)\n";
        let out = command("python3")
            .env("REQUESTS_CA_BUNDLE", &env["REQUESTS_CA_BUNDLE"])
            .args(["-c", script, &proxy.url(), &url])
            .output()
            .await
            .unwrap();
        let requests_missing = String::from_utf8_lossy(&out.stderr).contains("No module named");
        assert!(
            out.status.success() || (requests_missing && !in_ci()),
            "{out:?}"
        );
    }

    let out = clawguard(&["ca", "untrust", "--ca-dir", &ca_dir]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(store_state(), before, "untrust restores the store exactly");
    let out = curl_with_system_roots(&proxy, &url).await;
    assert_eq!(out.exit, 60, "{}", out.stderr);
    // Untrusting twice is not an error.
    let out = clawguard(&["ca", "untrust", "--ca-dir", &ca_dir]);
    assert!(out.status.success(), "{out:?}");
    drop(guard);
}

fn out_of(args: &[&str]) -> Output {
    let out = clawguard(args);
    assert!(out.status.success(), "{out:?}");
    out
}
