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
//! A chain alone cannot show that records were cut off at its *end*. With
//! `audit_signing_key`, [`checkpoint`]s signed with Ed25519 go into the chain every
//! `audit_checkpoint_every` records, before each rotation and at shutdown, and are
//! copied to `audit_checkpoint_file` and to the syslog collector ([`syslog`]); `clawguard
//! audit verify --pubkey P --checkpoint C` then detects a log that ends before the last
//! checkpoint held elsewhere, and any checkpoint not signed by the key.
//!
//! Record lines are JSON objects with `seq`, `time`, `prev`, then the event's members
//! (or a `checkpoint` member), then `hash`. Readers ignore members they do not know, so
//! events can grow fields without breaking older verifiers.

pub mod checkpoint;
pub mod syslog;

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
    #[error("audit forwarding: {0}")]
    Forward(String),
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
    /// Why the proxy refused, in a few stable words (`private address`, `metadata
    /// endpoint`, `unresolvable`, `connection refused`, …); `reason` holds the sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
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
        (Decision::Pseudonymize, false) => "pseudonymize",
        (Decision::Pseudonymize, true) => "would-pseudonymize",
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

/// A checkpoint as a chain record.
#[derive(Serialize)]
struct CheckpointHead<'a> {
    seq: u64,
    time: String,
    prev: &'a str,
    checkpoint: checkpoint::Checkpoint,
}

/// How the audit log is written besides its path.
#[derive(Default)]
pub struct AuditOptions {
    /// HMAC key for record hashes.
    pub key: Option<Vec<u8>>,
    /// Rotate past this size.
    pub rotate_bytes: Option<u64>,
    /// Sign checkpoints with this key.
    pub signer: Option<checkpoint::Signer>,
    /// Records between interval checkpoints (0: only at rotation and shutdown).
    pub checkpoint_every: u64,
    /// Append a copy of every checkpoint line here (other storage).
    pub checkpoint_file: Option<PathBuf>,
    /// Forward every line to a syslog collector.
    pub syslog: Option<syslog::SyslogConfig>,
}

impl AuditOptions {
    /// The audit settings of `cfg` (keys read now, so a bad key fails the start).
    pub fn from_config(cfg: &crate::config::Config) -> Result<AuditOptions, AuditError> {
        let expand = |p: &PathBuf| crate::config::expand_home(p);
        Ok(AuditOptions {
            key: cfg
                .audit_key
                .as_ref()
                .map(|k| read_key(&expand(k)))
                .transpose()?,
            rotate_bytes: (cfg.audit_rotate_bytes > 0).then_some(cfg.audit_rotate_bytes),
            signer: cfg
                .audit_signing_key
                .as_ref()
                .map(|k| checkpoint::Signer::load(&expand(k)))
                .transpose()?,
            checkpoint_every: cfg.audit_checkpoint_every,
            checkpoint_file: cfg.audit_checkpoint_file.as_ref().map(expand),
            syslog: cfg.audit_syslog.clone(),
        })
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotate_bytes: Option<u64>,
    key: Option<Vec<u8>>,
    tip: ChainTip,
    signer: Option<checkpoint::Signer>,
    checkpoint_every: u64,
    /// Event records since the last checkpoint.
    since_checkpoint: u64,
    checkpoint_file: Option<(PathBuf, File)>,
    forward: Option<syslog::Forwarder>,
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
        AuditLog::open_with(
            path,
            AuditOptions {
                key,
                rotate_bytes,
                ..AuditOptions::default()
            },
        )
    }

    /// [`AuditLog::open`] with checkpoints and forwarding. At shutdown (the last handle
    /// dropped) a final checkpoint is written before the thread ends.
    pub fn open_with(
        path: &Path,
        opts: AuditOptions,
    ) -> Result<(AuditLog, std::thread::JoinHandle<()>), AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tip = last_tip(path, opts.key.as_deref())?;
        let file = open_append(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let checkpoint_file = match &opts.checkpoint_file {
            Some(p) => Some((
                p.clone(),
                open_append(p).map_err(|source| AuditError::Io {
                    path: p.clone(),
                    source,
                })?,
            )),
            None => None,
        };
        let forward = opts
            .syslog
            .as_ref()
            .map(syslog::Forwarder::start)
            .transpose()?;
        let mut w = Writer {
            path: path.to_path_buf(),
            file,
            size,
            rotate_bytes: opts.rotate_bytes,
            key: opts.key,
            tip,
            signer: opts.signer,
            checkpoint_every: opts.checkpoint_every,
            since_checkpoint: 0,
            checkpoint_file,
            forward,
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
                    w.sync();
                }
                w.finish();
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

    fn sync(&mut self) {
        if let Err(e) = self.file.sync_data() {
            tracing::error!(path = %self.path.display(), error = %e, "audit fsync failed");
        }
    }

    /// Shutdown: a last checkpoint, on disk, and the collector given a moment.
    fn finish(&mut self) {
        if self.since_checkpoint > 0 {
            if let Err(e) = self.checkpoint("shutdown") {
                tracing::error!(path = %self.path.display(), error = %e, "audit checkpoint failed");
            }
        }
        self.sync();
        if let Some(f) = self.forward.take() {
            f.close(std::time::Duration::from_secs(5));
        }
    }

    fn try_write(&mut self, event: AuditEvent) -> std::io::Result<()> {
        if let Some(limit) = self.rotate_bytes {
            if self.size >= limit {
                self.rotate()?;
            }
        }
        let severity = if event.decision == "allow" {
            syslog::INFO
        } else {
            syslog::NOTICE
        };
        let head = Head {
            seq: self.tip.seq + 1,
            time: now_rfc3339(),
            prev: std::borrow::Cow::Borrowed(&self.tip.hash),
            event,
        };
        let json = serde_json::to_string(&head).map_err(std::io::Error::other)?;
        let seq = head.seq;
        self.append(json, seq, "audit", severity)?;
        self.since_checkpoint += 1;
        if self.signer.is_some()
            && self.checkpoint_every > 0
            && self.since_checkpoint >= self.checkpoint_every
        {
            self.checkpoint("interval")?;
        }
        Ok(())
    }

    /// A signed statement that the chain so far ends in the current tip.
    fn checkpoint(&mut self, reason: &str) -> std::io::Result<()> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        let time = now_rfc3339();
        let cp = signer.sign(self.tip.seq, &self.tip.hash, time.clone(), reason);
        let head = CheckpointHead {
            seq: self.tip.seq + 1,
            time,
            prev: &self.tip.hash,
            checkpoint: cp,
        };
        let json = serde_json::to_string(&head).map_err(std::io::Error::other)?;
        let seq = head.seq;
        let line = self.append(json, seq, "checkpoint", syslog::NOTICE)?;
        self.since_checkpoint = 0;
        if let Some((p, f)) = &mut self.checkpoint_file {
            if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.sync_data()) {
                tracing::error!(path = %p.display(), error = %e, "checkpoint copy failed");
            }
        }
        Ok(())
    }

    /// Hash `json` (a serialized record head) into the chain, write and forward it.
    fn append(
        &mut self,
        mut line: String,
        seq: u64,
        msgid: &'static str,
        severity: u8,
    ) -> std::io::Result<String> {
        line.pop(); // drop the closing brace; the hash member follows
        let hash = record_hash(self.key.as_deref(), line.as_bytes());
        line.push_str(HASH_MARK);
        line.push_str(&hash);
        line.push_str("\"}\n");
        self.file.write_all(line.as_bytes())?;
        self.size += line.len() as u64;
        self.tip = ChainTip { seq, hash };
        if let Some(f) = &self.forward {
            f.send(msgid, severity, line.trim_end());
        }
        Ok(line)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        // The rotated file ends signed: nothing can be cut from it unnoticed.
        self.checkpoint("rotation")?;
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
    checkpoint: Option<checkpoint::Checkpoint>,
}

/// What every record line has in common (events and checkpoints alike); other
/// members are ignored here, so records may grow fields.
#[derive(Deserialize)]
struct LineHead {
    seq: u64,
    prev: String,
    #[serde(default)]
    checkpoint: Option<checkpoint::Checkpoint>,
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
    let head: LineHead = serde_json::from_str(&json).map_err(|e| format!("not a record: {e}"))?;
    Ok(ParsedLine {
        seq: head.seq,
        prev: head.prev,
        hash: hash.to_string(),
        checkpoint: head.checkpoint,
    })
}

/// Result of verifying a log (with its rotated predecessors).
#[derive(Debug)]
pub struct Verified {
    pub files: usize,
    /// Lines in the chain (events and checkpoints).
    pub records: u64,
    pub last_hash: String,
    /// Checkpoints found in the chain (signatures checked when a public key was given).
    pub checkpoints: u64,
    /// The last record covered by a checkpoint in the chain.
    pub last_checkpoint: Option<u64>,
    /// Records after the last checkpoint (written since, or left by a crash).
    pub unsigned_tail: u64,
    /// The external checkpoint was matched by the chain.
    pub external_checked: bool,
}

/// What [`verify_with`] checks beyond the hash chain.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// The HMAC key the records were written with.
    pub key: Option<&'a [u8]>,
    /// Every checkpoint must be signed by this key (and at least one must exist).
    pub pubkey: Option<&'a ed25519_dalek::VerifyingKey>,
    /// The latest checkpoint held elsewhere: the chain must reach it with its hash.
    pub external: Option<&'a checkpoint::Checkpoint>,
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
    verify_with(
        path,
        &VerifyOptions {
            key,
            ..VerifyOptions::default()
        },
    )
}

/// [`verify`] plus checkpoint signatures and an external checkpoint.
pub fn verify_with(path: &Path, opts: &VerifyOptions<'_>) -> Result<Verified, VerifyError> {
    let key = opts.key;
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
    let mut checkpoints = 0u64;
    let mut last_checkpoint = None;
    let mut external_checked = false;
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
            if let Some(cp) = &p.checkpoint {
                if cp.covers + 1 != p.seq || cp.covers_hash != prev {
                    return Err(fail(
                        f,
                        i + 1,
                        p.seq.to_string(),
                        "checkpoint does not cover the record before it".into(),
                    ));
                }
                if let Some(pk) = opts.pubkey {
                    cp.verify(pk)
                        .map_err(|r| fail(f, i + 1, p.seq.to_string(), r))?;
                }
                checkpoints += 1;
                last_checkpoint = Some(cp.covers);
            }
            if let Some(ext) = opts.external {
                if ext.covers == p.seq && ext.covers_hash != p.hash {
                    return Err(fail(
                        f,
                        i + 1,
                        p.seq.to_string(),
                        "differs from the record the external checkpoint covers: the log was rewritten".into(),
                    ));
                }
                external_checked |= ext.covers == p.seq;
            }
            prev = p.hash;
            expect_seq += 1;
            records += 1;
        }
    }
    let last = files.last().map_or(path, |p| p.as_path());
    if let Some(ext) = opts.external {
        if let Some(pk) = opts.pubkey {
            ext.verify(pk).map_err(|r| {
                fail(
                    last,
                    0,
                    ext.covers.to_string(),
                    format!("external checkpoint: {r}"),
                )
            })?;
        }
        if !external_checked {
            return Err(fail(
                last,
                0,
                ext.covers.to_string(),
                format!(
                    "the log ends at record {} but the checkpoint held elsewhere covers record {}: records were cut off the end",
                    expect_seq - 1,
                    ext.covers
                ),
            ));
        }
    }
    if opts.pubkey.is_some() && checkpoints == 0 && records > 0 {
        return Err(fail(
            last,
            0,
            "-".into(),
            "no signed checkpoint in the log (was it written with audit_signing_key?)".into(),
        ));
    }
    let unsigned_tail = match last_checkpoint {
        Some(c) => (expect_seq - 1).saturating_sub(c + 1),
        None => records,
    };
    Ok(Verified {
        files: files.len(),
        records,
        last_hash: prev,
        checkpoints,
        last_checkpoint,
        unsigned_tail,
        external_checked,
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
            cause: None,
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

    fn signer(dir: &Path) -> (checkpoint::Signer, ed25519_dalek::VerifyingKey) {
        let k = dir.join("sign.key");
        checkpoint::keygen(&k).unwrap();
        let mut pubp = k.as_os_str().to_owned();
        pubp.push(".pub");
        (
            checkpoint::Signer::load(&k).unwrap(),
            checkpoint::read_public(Path::new(&pubp)).unwrap(),
        )
    }

    fn write_signed(
        path: &Path,
        dir: &Path,
        n: std::ops::Range<usize>,
        every: u64,
        rotate: Option<u64>,
    ) {
        let (s, _) = signer(dir);
        let cps = dir.join("checkpoints.jsonl");
        let (log, handle) = AuditLog::open_with(
            path,
            AuditOptions {
                signer: Some(s),
                checkpoint_every: every,
                checkpoint_file: Some(cps),
                rotate_bytes: rotate,
                ..AuditOptions::default()
            },
        )
        .unwrap();
        for i in n {
            log.record(event(i));
        }
        drop(log);
        handle.join().unwrap();
    }

    #[test]
    fn signed_checkpoints_detect_a_cut_off_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let (_, pk) = signer(&other);
        let sub = dir.path().join("keys");
        std::fs::create_dir(&sub).unwrap();
        let (signer_a, pk_a) = signer(&sub);
        let cps = dir.path().join("checkpoints.jsonl");
        let (log, handle) = AuditLog::open_with(
            &p,
            AuditOptions {
                signer: Some(signer_a),
                checkpoint_every: 3,
                checkpoint_file: Some(cps.clone()),
                ..AuditOptions::default()
            },
        )
        .unwrap();
        for i in 0..7 {
            log.record(event(i));
        }
        drop(log);
        handle.join().unwrap();
        // 7 events, interval checkpoints after 3 and 6, one at shutdown: 10 lines.
        let all = lines(&p);
        assert_eq!(all.len(), 10);
        let opts = VerifyOptions {
            pubkey: Some(&pk_a),
            ..VerifyOptions::default()
        };
        let v = verify_with(&p, &opts).unwrap();
        assert_eq!((v.checkpoints, v.unsigned_tail), (3, 0));
        // Another key's signature does not verify.
        assert!(verify_with(
            &p,
            &VerifyOptions {
                pubkey: Some(&pk),
                ..VerifyOptions::default()
            }
        )
        .is_err());
        // The copy held elsewhere: its newest checkpoint covers the last event.
        let text = std::fs::read_to_string(&cps).unwrap();
        let ext = text
            .lines()
            .filter_map(checkpoint::Checkpoint::from_line)
            .max_by_key(|c| c.covers)
            .unwrap();
        assert_eq!(ext.covers, 9);
        let with_ext = VerifyOptions {
            pubkey: Some(&pk_a),
            external: Some(&ext),
            ..VerifyOptions::default()
        };
        assert!(verify_with(&p, &with_ext).unwrap().external_checked);
        // Cut the last two lines: the chain alone still verifies, the checkpoint does not.
        put(&p, &all[..8]);
        assert!(verify(&p, None).is_ok());
        let e = verify_with(&p, &with_ext).unwrap_err();
        assert!(e.reason.contains("cut off the end"), "{e}");
    }

    #[test]
    fn rotation_writes_a_checkpoint_at_the_end_of_each_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        write_signed(&p, dir.path(), 0..20, 0, Some(1500));
        let rotated = rotated_files(&p).unwrap();
        assert!(!rotated.is_empty());
        for (_, f) in &rotated {
            let last = lines(f).pop().unwrap();
            assert!(last.contains("\"reason\":\"rotation\""), "{last}");
        }
        let pubp = dir.path().join("sign.key.pub");
        let pk = checkpoint::read_public(&pubp).unwrap();
        let v = verify_with(
            &p,
            &VerifyOptions {
                pubkey: Some(&pk),
                ..VerifyOptions::default()
            },
        )
        .unwrap();
        assert_eq!(v.unsigned_tail, 0);
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
