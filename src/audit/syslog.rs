//! Forwarding audit lines to a syslog collector: RFC 5424 messages with RFC 6587
//! octet-counting framing over TCP, or over TLS (RFC 5425). Each message body is the
//! record line exactly as written to the file (hash and all), so the collector's copy
//! verifies like the file, and its checkpoints are the copy "held elsewhere".
//!
//! Delivery runs on its own thread behind a bounded queue (`queue`): a slow or absent
//! collector never stalls the audit writer. While it is unreachable lines wait in the
//! queue and the thread reconnects with backoff; when the queue is full new lines are
//! not forwarded (they stay in the file) and the loss is counted and logged.

use super::AuditError;
use serde::Deserialize;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// `[audit_syslog]` in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Collector `host:port` (RFC 6587 TCP, 601 or 514 by custom; TLS 6514).
    pub address: String,
    /// TLS to the collector (RFC 5425).
    #[serde(default)]
    pub tls: bool,
    /// Extra PEM roots trusted for the collector's certificate.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Name checked in the collector's certificate (default: the host of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Syslog facility number (16 = local0).
    #[serde(default = "default_facility")]
    pub facility: u8,
    /// Lines held while the collector is slow or away.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_facility() -> u8 {
    16
}

fn default_queue() -> usize {
    10_000
}

impl SyslogConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.facility > 23 {
            return Err("[audit_syslog] facility must be 0..=23".into());
        }
        if self.queue == 0 {
            return Err("[audit_syslog] queue must be at least 1".into());
        }
        if !self.address.contains(':') {
            return Err("[audit_syslog] address must be host:port".into());
        }
        Ok(())
    }
}

/// One line to forward.
struct Message {
    msgid: &'static str,
    severity: u8,
    line: String,
}

/// Handle the audit writer sends lines to.
pub struct Forwarder {
    tx: mpsc::SyncSender<Message>,
    dropped: Arc<AtomicU64>,
    /// Signalled when the delivery thread has sent everything and ended.
    done: mpsc::Receiver<()>,
}

/// RFC 5424 severities used.
pub const NOTICE: u8 = 5;
pub const INFO: u8 = 6;

impl Forwarder {
    pub fn start(cfg: &SyslogConfig) -> Result<Forwarder, AuditError> {
        let tls = if cfg.tls {
            Some(tls_config(cfg)?)
        } else {
            None
        };
        let (tx, rx) = mpsc::sync_channel::<Message>(cfg.queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let link = Link {
            cfg: cfg.clone(),
            tls,
            hostname: hostname(),
            pid: std::process::id(),
            conn: None,
        };
        let (done_tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("clawguard-syslog".into())
            .spawn(move || {
                link.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| AuditError::Forward(e.to_string()))?;
        Ok(Forwarder { tx, dropped, done })
    }

    /// Stop accepting lines and wait up to `wait` for the queued ones to go out.
    pub fn close(self, wait: Duration) {
        drop(self.tx);
        if self.done.recv_timeout(wait).is_err() {
            tracing::warn!("syslog collector did not take every queued audit line before exit");
        }
    }

    /// Queue `line` (without its newline) for the collector; never blocks.
    pub fn send(&self, msgid: &'static str, severity: u8, line: &str) {
        let m = Message {
            msgid,
            severity,
            line: line.to_string(),
        };
        if self.tx.try_send(m).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "syslog forwarding queue full: records kept in the file but not forwarded"
                );
            }
        }
    }
}

fn tls_config(cfg: &SyslogConfig) -> Result<Arc<rustls::ClientConfig>, AuditError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &cfg.ca {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca)
            .map_err(|e| AuditError::Forward(format!("{}: {e}", ca.display())))?;
        for c in certs {
            let c = c.map_err(|e| AuditError::Forward(format!("{}: {e}", ca.display())))?;
            roots
                .add(c)
                .map_err(|e| AuditError::Forward(format!("{}: {e}", ca.display())))?;
        }
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".into())
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(b),
            Conn::Tls(s) => {
                s.write_all(b)?;
                s.flush()
            }
        }
    }
}

struct Link {
    cfg: SyslogConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    hostname: String,
    pid: u32,
    conn: Option<Conn>,
}

impl Link {
    fn run(mut self, rx: mpsc::Receiver<Message>) {
        let mut backoff = Duration::from_millis(200);
        while let Ok(m) = rx.recv() {
            let frame = self.frame(&m);
            // Keep this message until it is written (or the process ends).
            loop {
                if self.conn.is_none() {
                    match self.connect() {
                        Ok(c) => {
                            self.conn = Some(c);
                            backoff = Duration::from_millis(200);
                        }
                        Err(e) => {
                            tracing::warn!(collector = %self.cfg.address, error = %e, "syslog collector unreachable; retrying");
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                            continue;
                        }
                    }
                }
                let conn = self.conn.as_mut().expect("connected above");
                match conn.write_all(&frame) {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(collector = %self.cfg.address, error = %e, "syslog write failed; reconnecting");
                        self.conn = None;
                    }
                }
            }
        }
    }

    fn connect(&self) -> Result<Conn, String> {
        let addr = self
            .cfg
            .address
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        let tcp =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Conn::Plain(tcp));
        };
        let host = self.cfg.server_name.clone().unwrap_or_else(|| {
            let h = self.cfg.address.rsplit_once(':').map_or("", |(h, _)| h);
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        });
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(|e| e.to_string())?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // Complete the handshake now so a certificate problem shows up as a connect error.
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).map_err(|e| e.to_string())?;
        }
        Ok(Conn::Tls(Box::new(s)))
    }

    /// `LEN SP <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG` (RFC 5424 + RFC 6587).
    fn frame(&self, m: &Message) -> Vec<u8> {
        let pri = u16::from(self.cfg.facility) * 8 + u16::from(m.severity);
        let msg = format!(
            "<{pri}>1 {} {} clawguard {} {} - {}",
            super::now_rfc3339(),
            self.hostname,
            self.pid,
            m.msgid,
            m.line
        );
        let mut out = format!("{} ", msg.len()).into_bytes();
        out.extend_from_slice(msg.as_bytes());
        out
    }
}
