//! Tamper-evident audit log: one JSON record per decision, appended to a file,
//! hash-chained (each record holds the hash of the one before it) and optionally keyed
//! (HMAC-SHA256 with a key file), so an edited, removed, reordered or inserted record
//! is detected by `clawguard audit verify`.
//!
//! Record hash: SHA-256 (or HMAC-SHA256) over the exact bytes of the line up to the
//! `,"hash":` member; no canonicalisation is needed because the verifier hashes the same
//! bytes the writer wrote. Records are written by a background thread and fsync'd in
//! batches; the data path only sends on a channel. A restart continues the chain from the
//! last record on disk; size-based rotation renames the active file to `FILE.NNNNNN`
//! (oldest lowest) and the chain continues across files.
//!
//! Limits: a chain cannot by itself show that records were cut off at the *end* of the
//! newest file; keep the latest hash elsewhere (the metrics endpoint exposes the count) or
//! ship records off the machine if that matters.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HASH_MARK: &str = ",\"hash\":\"";
/// Records written before an fsync at the latest.
const BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: last record is not valid ({reason}); refusing to continue a broken chain")]
    BrokenTail { path: PathBuf, reason: String },
    #[error("audit key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
}

/// One finding as audited: never the raw value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditFinding {
    pub rule: String,
    pub category: String,
    pub location: String,
    /// Keyed fingerprint of the matched value (lets you correlate repeats without storing it).
    pub fingerprint: String,
    /// Masked preview.
    pub preview: String,
}

/// What the data path hands to the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    pub request_id: String,
    pub user: Option<String>,
    pub client: String,
    pub method: String,
    pub host: String,
    /// Path with query values removed (`/a?b=&c=`).
    pub path: String,
    /// allow | block | redact | log | deny | would-block | would-redact | …
    pub decision: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub findings: Vec<AuditFinding>,
}

impl From<&crate::detect::engine::Reported> for AuditFinding {
    /// The masked preview and keyed fingerprint only: the engine never hands out the value.
    fn from(f: &crate::detect::engine::Reported) -> AuditFinding {
        AuditFinding {
            rule: f.rule.clone(),
            category: f.category.as_str().to_string(),
            location: f.location.to_string(),
            fingerprint: f.fingerprint.clone().unwrap_or_default(),
            preview: f.preview.clone(),
        }
    }
}

/// The decision label of an inspection as logs, metrics and audit records spell it
/// (dry-run decisions read `would-block` / `would-redact`).
pub fn decision_label(
    decision: crate::detect::policy::Decision,
    mode: crate::config::Mode,
) -> &'static str {
    use crate::detect::policy::Decision;
    let dry = mode == crate::config::Mode::DryRun;
    match (decision, dry) {
        (Decision::Allow, _) => "allow",
        (Decision::Block, false) => "block",
        (Decision::Redact, false) => "redact",
        (Decision::Block, true) => "would-block",
        (Decision::Redact, true) => "would-redact",
    }
}

/// Keyed fingerprints of matched values: HMAC-SHA256, first 16 bytes in hex.
#[derive(Clone)]
pub struct Fingerprinter {
    key: Vec<u8>,
}

impl Fingerprinter {
    pub fn new(key: &[u8]) -> Fingerprinter {
        Fingerprinter { key: key.to_vec() }
    }

    /// A fresh random key (fingerprints then only correlate within one process).
    pub fn random() -> Fingerprinter {
        let key: [u8; 32] = rand::random();
        Fingerprinter::new(&key)
    }

    pub fn fingerprint(&self, value: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(value);
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// Read a key file (at least 16 bytes; surrounding whitespace is ignored).
pub fn read_key(path: &Path) -> Result<Vec<u8>, AuditError> {
    let raw = std::fs::read(path).map_err(|e| AuditError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let key = raw.trim_ascii().to_vec();
    if key.len() < 16 {
        return Err(AuditError::Key {
            path: path.to_path_buf(),
            reason: "a key must be at least 16 bytes".into(),
        });
    }
    Ok(key)
}

fn record_hash(key: Option<&[u8]>, bytes: &[u8]) -> String {
    match key {
        Some(k) => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(k).expect("any key length");
            mac.update(bytes);
            hex::encode(mac.finalize().into_bytes())
        }
        None => hex::encode(Sha256::digest(bytes)),
    }
}

/// The fields of a record that precede its hash, in writing order.
#[derive(Serialize, Deserialize)]
struct Head<'a> {
    seq: u64,
    time: String,
    #[serde(borrow)]
    prev: std::borrow::Cow<'a, str>,
    #[serde(flatten)]
    event: AuditEvent,
}

/// Chain state: the sequence number and hash of the last record written.
#[derive(Debug, Clone, PartialEq)]
struct ChainTip {
    seq: u64,
    hash: String,
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotate_bytes: Option<u64>,
    key: Option<Vec<u8>>,
    tip: ChainTip,
}

/// Handle to the background writer. Cloning is cheap; dropping the last handle flushes
/// and fsyncs what is queued.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::SyncSender<AuditEvent>,
}

impl AuditLog {
    /// Open (or create) the log, continue the chain from its last record, and start the
    /// writer thread. The file is created 0600.
    pub fn open(
        path: &Path,
        key: Option<Vec<u8>>,
        rotate_bytes: Option<u64>,
    ) -> Result<(AuditLog, std::thread::JoinHandle<()>), AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tip = last_tip(path, key.as_deref())?;
        let file = open_append(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut w = Writer {
            path: path.to_path_buf(),
            file,
            size,
            rotate_bytes,
            key,
            tip,
        };
        let (tx, rx) = mpsc::sync_channel::<AuditEvent>(8192);
        let handle = std::thread::Builder::new()
            .name("clawguard-audit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    w.write(first);
                    for ev in rx.try_iter().take(BATCH - 1) {
                        w.write(ev);
                    }
                    if let Err(e) = w.file.sync_data() {
                        tracing::error!(path = %w.path.display(), error = %e, "audit fsync failed");
                    }
                }
            })
            .map_err(io)?;
        Ok((AuditLog { tx }, handle))
    }

    /// Queue a record without ever blocking. Hands the event back when it was not queued
    /// (queue full, or the writer stopped): the caller then waits where it may block.
    pub fn try_record(&self, event: AuditEvent) -> Option<AuditEvent> {
        match self.tx.try_send(event) {
            Ok(()) => None,
            Err(mpsc::TrySendError::Full(ev) | mpsc::TrySendError::Disconnected(ev)) => Some(ev),
        }
    }

    /// Queue a record. Blocks only when thousands are already queued (backpressure
    /// rather than silently dropping audit records).
    pub fn record(&self, event: AuditEvent) {
        if self.tx.send(event).is_err() {
            tracing::error!("audit writer has stopped; record lost");
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

impl Writer {
    fn write(&mut self, event: AuditEvent) {
        if let Err(e) = self.try_write(event) {
            tracing::error!(path = %self.path.display(), error = %e, "audit write failed");
        }
    }

    fn try_write(&mut self, event: AuditEvent) -> std::io::Result<()> {
        if let Some(limit) = self.rotate_bytes {
            if self.size >= limit {
                self.rotate()?;
            }
        }
        let head = Head {
            seq: self.tip.seq + 1,
            time: now_rfc3339(),
            prev: std::borrow::Cow::Borrowed(&self.tip.hash),
            event,
        };
        let mut line = serde_json::to_string(&head).map_err(std::io::Error::other)?;
        line.pop(); // drop the closing brace; the hash member follows
        let hash = record_hash(self.key.as_deref(), line.as_bytes());
        line.push_str(HASH_MARK);
        line.push_str(&hash);
        line.push_str("\"}\n");
        self.file.write_all(line.as_bytes())?;
        self.size += line.len() as u64;
        self.tip = ChainTip {
            seq: head.seq,
            hash,
        };
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_all()?;
        let next = rotated_files(&self.path)?
            .last()
            .map(|(n, _)| n + 1)
            .unwrap_or(1);
        std::fs::rename(&self.path, rotated_name(&self.path, next))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn rotated_name(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n:06}"));
    PathBuf::from(s)
}

/// `FILE.NNNNNN` siblings, oldest first.
fn rotated_files(path: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        let f = e.file_name().to_string_lossy().to_string();
        if let Some(num) = f.strip_prefix(&name).and_then(|r| r.strip_prefix('.')) {
            if num.len() == 6 {
                if let Ok(n) = num.parse::<u32>() {
                    out.push((n, e.path()));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The chain tip to continue from: the last record of the active file, or of the newest
/// rotated file when the active one is empty or missing.
fn last_tip(path: &Path, key: Option<&[u8]>) -> Result<ChainTip, AuditError> {
    let mut candidates: Vec<PathBuf> = rotated_files(path)
        .map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    candidates.push(path.to_path_buf());
    for p in candidates.iter().rev() {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(AuditError::Io {
                    path: p.clone(),
                    source,
                })
            }
        };
        if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
            let parsed = parse_line(line, key).map_err(|reason| AuditError::BrokenTail {
                path: p.clone(),
                reason,
            })?;
            return Ok(ChainTip {
                seq: parsed.seq,
                hash: parsed.hash,
            });
        }
    }
    Ok(ChainTip {
        seq: 0,
        hash: GENESIS.to_string(),
    })
}

struct ParsedLine {
    seq: u64,
    prev: String,
    hash: String,
}

/// Check one line's own hash; return its seq, prev and hash.
fn parse_line(line: &str, key: Option<&[u8]>) -> Result<ParsedLine, String> {
    let at = line
        .rfind(HASH_MARK)
        .ok_or_else(|| "no hash member".to_string())?;
    let (body, tail) = line.split_at(at);
    let hash = tail[HASH_MARK.len()..]
        .strip_suffix("\"}")
        .ok_or_else(|| "malformed hash member".to_string())?;
    if record_hash(key, body.as_bytes()) != hash {
        return Err("hash does not match the record's contents (edited, or wrong key)".into());
    }
    let json = format!("{body}}}");
    let head: Head = serde_json::from_str(&json).map_err(|e| format!("not a record: {e}"))?;
    Ok(ParsedLine {
        seq: head.seq,
        prev: head.prev.into_owned(),
        hash: hash.to_string(),
    })
}

/// Result of verifying a log (with its rotated predecessors).
#[derive(Debug)]
pub struct Verified {
    pub files: usize,
    pub records: u64,
    pub last_hash: String,
}

/// The first bad record found by [`verify`].
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: record {seq}: {reason}")]
pub struct VerifyError {
    pub path: PathBuf,
    pub line: usize,
    pub seq: String,
    pub reason: String,
}

/// Verify `path` and its rotated predecessors (`path.NNNNNN`, oldest first) as one chain.
pub fn verify(path: &Path, key: Option<&[u8]>) -> Result<Verified, VerifyError> {
    let fail = |p: &Path, line: usize, seq: String, reason: String| VerifyError {
        path: p.to_path_buf(),
        line,
        seq,
        reason,
    };
    let mut files: Vec<PathBuf> = rotated_files(path)
        .map_err(|e| fail(path, 0, "-".into(), e.to_string()))?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if path.exists() || files.is_empty() {
        files.push(path.to_path_buf());
    }
    let mut expect_seq = 1u64;
    let mut prev = GENESIS.to_string();
    let mut records = 0u64;
    for f in &files {
        let file = File::open(f).map_err(|e| fail(f, 0, "-".into(), e.to_string()))?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| fail(f, i + 1, "-".into(), e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let p =
                parse_line(&line, key).map_err(|r| fail(f, i + 1, expect_seq.to_string(), r))?;
            if p.seq != expect_seq {
                return Err(fail(
                    f,
                    i + 1,
                    p.seq.to_string(),
                    format!(
                        "expected record {expect_seq}: a record was removed, inserted or reordered"
                    ),
                ));
            }
            if p.prev != prev {
                return Err(fail(
                    f,
                    i + 1,
                    p.seq.to_string(),
                    "previous-hash link broken: a record before it was removed, changed or reordered".into(),
                ));
            }
            prev = p.hash;
            expect_seq += 1;
            records += 1;
        }
    }
    Ok(Verified {
        files: files.len(),
        records,
        last_hash: prev,
    })
}

/// Remove the values of a query string, keeping the names: `/p?a=1&b=2` → `/p?a=&b=`.
pub fn path_without_query_values(path_and_query: &str) -> String {
    match path_and_query.split_once('?') {
        None => path_and_query.to_string(),
        Some((p, q)) => {
            let names: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}="),
                    None => kv.to_string(),
                })
                .collect();
            format!("{p}?{}", names.join("&"))
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> AuditEvent {
        AuditEvent {
            request_id: format!("req{i}"),
            user: Some("alice".into()),
            client: "127.0.0.1:5000".into(),
            method: "POST".into(),
            host: "api.example.com".into(),
            path: "/v1/chat?x=".into(),
            decision: "block".into(),
            reason: None,
            findings: vec![AuditFinding {
                rule: "aws-access-key-id".into(),
                category: "credential".into(),
                location: "body".into(),
                fingerprint: Fingerprinter::new(b"k").fingerprint(b"AKIA..."),
                preview: "AKIA********UX".into(),
            }],
        }
    }

    fn write(path: &Path, key: Option<Vec<u8>>, rotate: Option<u64>, n: std::ops::Range<usize>) {
        let (log, handle) = AuditLog::open(path, key, rotate).unwrap();
        for i in n {
            log.record(event(i));
        }
        drop(log);
        handle.join().unwrap();
    }

    #[test]
    fn chain_verifies_and_continues_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        write(&p, None, None, 0..5);
        write(&p, None, None, 5..8);
        let v = verify(&p, None).unwrap();
        assert_eq!(v.records, 8);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn put(p: &Path, l: &[String]) {
        std::fs::write(p, l.join("\n") + "\n").unwrap();
    }

    #[test]
    fn tampering_is_detected_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        write(&p, None, None, 0..6);
        let orig = lines(&p);

        // Edited byte.
        let mut l = orig.clone();
        l[2] = l[2].replacen("req2", "req9", 1);
        put(&p, &l);
        let e = verify(&p, None).unwrap_err();
        assert_eq!(e.line, 3, "{e}");

        // Deleted line.
        let mut l = orig.clone();
        l.remove(3);
        put(&p, &l);
        let e = verify(&p, None).unwrap_err();
        assert_eq!(e.line, 4, "{e}");

        // Swapped pair.
        let mut l = orig.clone();
        l.swap(1, 2);
        put(&p, &l);
        let e = verify(&p, None).unwrap_err();
        assert_eq!(e.line, 2, "{e}");

        // Inserted copy of a valid record.
        let mut l = orig.clone();
        l.insert(4, orig[1].clone());
        put(&p, &l);
        let e = verify(&p, None).unwrap_err();
        assert_eq!(e.line, 5, "{e}");

        put(&p, &orig);
        assert_eq!(verify(&p, None).unwrap().records, 6);
    }

    #[test]
    fn keyed_chain_needs_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let key = b"0123456789abcdef0123".to_vec();
        write(&p, Some(key.clone()), None, 0..3);
        assert!(verify(&p, Some(&key)).is_ok());
        assert!(verify(&p, None).is_err());
        assert!(verify(&p, Some(b"another key of 16+ bytes")).is_err());
        // Without the key, a forger can recompute plain SHA-256 but not the HMAC.
    }

    #[test]
    fn rotation_keeps_the_chain_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        write(&p, None, Some(1500), 0..20);
        let rotated = rotated_files(&p).unwrap();
        assert!(rotated.len() >= 2, "{rotated:?}");
        let v = verify(&p, None).unwrap();
        assert_eq!(v.records, 20);
        assert_eq!(v.files, rotated.len() + 1);
        // Removing a middle file breaks the chain.
        std::fs::remove_file(&rotated[1].1).unwrap();
        assert!(verify(&p, None).is_err());
    }

    #[test]
    fn records_never_hold_raw_values_and_strip_query_values() {
        assert_eq!(
            path_without_query_values("/a?key=SECRET&b=2&c"),
            "/a?key=&b=&c"
        );
        assert_eq!(path_without_query_values("/plain"), "/plain");
        let f = Fingerprinter::new(b"key");
        assert_eq!(f.fingerprint(b"x"), f.fingerprint(b"x"));
        assert_ne!(
            f.fingerprint(b"x"),
            Fingerprinter::new(b"other").fingerprint(b"x")
        );
        assert_eq!(f.fingerprint(b"x").len(), 32);
    }
}
