//! Audit you can take to court: signed checkpoints written by the real proxy, every
//! record forwarded to a syslog collector on loopback (RFC 5424, octet-counted, over TCP
//! and over TLS), and `clawguard audit verify --pubkey --checkpoint` catching a log whose
//! end was cut off, against the collector's copy.

mod common;

use common::{curl, Origin, Proxy};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;

const AWS_KEY: &str = "AKIAQYLPMN5HFIQR7VUX";

/// A syslog collector: stores every framed message.
struct Collector {
    addr: std::net::SocketAddr,
    messages: Arc<Mutex<Vec<String>>>,
}

async fn read_frames<S: AsyncRead + Unpin>(mut s: S, out: Arc<Mutex<Vec<String>>>) {
    loop {
        let mut len = Vec::new();
        loop {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).await.is_err() {
                return;
            }
            if b[0] == b' ' {
                break;
            }
            len.push(b[0]);
        }
        let n: usize = String::from_utf8(len)
            .unwrap()
            .parse()
            .expect("octet count");
        let mut msg = vec![0u8; n];
        if s.read_exact(&mut msg).await.is_err() {
            return;
        }
        out.lock().unwrap().push(String::from_utf8(msg).unwrap());
    }
}

impl Collector {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Collector {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = messages.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                let (m, tls) = (m.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(a) => {
                            if let Ok(s) = a.accept(s).await {
                                read_frames(s, m).await;
                            }
                        }
                        None => read_frames(s, m).await,
                    }
                });
            }
        });
        Collector { addr, messages }
    }

    fn lines(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

fn keygen(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join("audit-signing.key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = dir.join("audit-signing.key.pub");
    (key, public)
}

fn verify(log: &Path, public: &Path, checkpoint: Option<&Path>) -> (bool, String) {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_clawguard"));
    c.args(["audit", "verify"])
        .arg(log)
        .arg("--pubkey")
        .arg(public);
    if let Some(cp) = checkpoint {
        c.arg("--checkpoint").arg(cp);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

async fn run_and_forward(collector: &Collector, syslog_extra: &str) {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let log = dir.path().join("audit.jsonl");
    let cfg = format!(
        "audit_log = {:?}\naudit_signing_key = {:?}\naudit_checkpoint_every = 2\n\
         [audit_syslog]\naddress = \"{}\"\n{syslog_extra}",
        log.to_str().unwrap(),
        key.to_str().unwrap(),
        collector.addr
    );
    let mut proxy = Proxy::start(&cfg, &origin.ca_pem);
    for i in 0..3 {
        let out = curl(&[
            "-x",
            &proxy.url(),
            "--data-binary",
            &format!("{{\"n\":{i}}}"),
            &origin.http("/ok"),
        ])
        .await;
        assert_eq!(out.status, 200);
    }
    let out = curl(&[
        "-x",
        &proxy.url(),
        "--data-binary",
        &format!("{{\"k\":\"{AWS_KEY}\"}}"),
        &origin.http("/leak"),
    ])
    .await;
    assert_eq!(out.status, 403);
    proxy.terminate();
    assert!(proxy.wait_exit().await.success());

    // The file: 4 events, checkpoints after 2 and 4 (none pending at shutdown).
    let file_lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(file_lines.len(), 6, "{file_lines:#?}");
    let (ok, said) = verify(&log, &public, None);
    assert!(ok, "{said}");

    // The collector got every line, byte for byte, as RFC 5424 messages.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while collector.lines().len() < file_lines.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "collector got {:?}",
            collector.lines()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = collector.lines();
    for (msg, line) in got.iter().zip(&file_lines) {
        assert!(
            msg.starts_with("<13") || msg.starts_with("<134>1 ") || msg.starts_with("<133>1 "),
            "{msg}"
        );
        assert!(msg.ends_with(line.as_str()), "{msg}\n{line}");
        assert!(!msg.contains(AWS_KEY));
    }
    assert!(got.iter().any(|m| m.contains(" checkpoint - {")));

    // Cut the last event and its checkpoint off the file: the chain alone cannot tell,
    // the collector's checkpoint can.
    let collector_copy = dir.path().join("collector.log");
    std::fs::write(&collector_copy, got.join("\n")).unwrap();
    std::fs::write(&log, file_lines[..4].join("\n") + "\n").unwrap();
    let (ok, said) = verify(&log, &public, None);
    assert!(ok, "a shortened chain still links: {said}");
    let (ok, said) = verify(&log, &public, Some(&collector_copy));
    assert!(!ok);
    assert!(said.contains("cut off the end"), "{said}");
}

#[tokio::test]
async fn checkpoints_and_records_reach_a_tcp_collector() {
    let c = Collector::start(None).await;
    run_and_forward(&c, "").await;
}

#[tokio::test]
async fn records_reach_a_tls_collector() {
    common::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("collector.pem");
    let tls = common::origin_cert::self_signed(&ca, &["localhost"], false);
    let c = Collector::start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))).await;
    run_and_forward(
        &c,
        &format!(
            "tls = true\nca = {:?}\nserver_name = \"localhost\"\n",
            ca.to_str().unwrap()
        ),
    )
    .await;
}
