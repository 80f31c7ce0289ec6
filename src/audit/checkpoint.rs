//! Signed checkpoints: an Ed25519 signature over "the chain up to record N ends in
//! hash H", written into the chain every `audit_checkpoint_every` records, before a
//! rotation and at shutdown, and copied where an attacker on this machine cannot reach
//! (`audit_checkpoint_file` on other storage, the syslog collector). A log cut short
//! then no longer reaches the last checkpoint held elsewhere, and a rewritten one cannot
//! carry a valid signature without the key.
//!
//! Key files: the signing key is the 32-byte Ed25519 seed in hex (0600); the public key
//! is 32 bytes in hex (`clawguard audit keygen` writes both).

use super::AuditError;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Domain separation: a checkpoint signature can never be mistaken for another message.
const CONTEXT: &str = "clawguard-audit-checkpoint/1";

/// The signed statement, as it appears in the `checkpoint` member of a chain record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record covered (the record just before this checkpoint in the chain).
    pub covers: u64,
    /// That record's hash.
    pub covers_hash: String,
    pub time: String,
    /// interval | rotation | shutdown
    pub reason: String,
    /// Public key (hex) that signed it.
    pub key: String,
    /// Ed25519 signature (hex) over [`Checkpoint::message`].
    pub sig: String,
}

impl Checkpoint {
    fn message(covers: u64, covers_hash: &str, time: &str, reason: &str) -> Vec<u8> {
        format!("{CONTEXT}\n{covers}\n{covers_hash}\n{time}\n{reason}").into_bytes()
    }

    /// Whether `pubkey` signed this checkpoint.
    pub fn verify(&self, pubkey: &VerifyingKey) -> Result<(), String> {
        let sig = hex::decode(&self.sig).map_err(|_| "signature is not hex".to_string())?;
        let sig = Signature::from_slice(&sig).map_err(|_| "malformed signature".to_string())?;
        let msg = Checkpoint::message(self.covers, &self.covers_hash, &self.time, &self.reason);
        pubkey
            .verify(&msg, &sig)
            .map_err(|_| "checkpoint signature does not verify with this public key".to_string())
    }

    /// The checkpoint inside a chain line (a syslog line may carry a prefix before it).
    pub fn from_line(line: &str) -> Option<Checkpoint> {
        #[derive(Deserialize)]
        struct Holder {
            checkpoint: Checkpoint,
        }
        let start = line.find('{')?;
        serde_json::from_str::<Holder>(&line[start..])
            .ok()
            .map(|h| h.checkpoint)
    }
}

/// The signing key of this instance (shared by a fleet that wants one verifier key).
pub struct Signer {
    key: SigningKey,
}

fn key_err(path: &Path, reason: impl Into<String>) -> AuditError {
    AuditError::Key {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_hex32(path: &Path) -> Result<[u8; 32], AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_err(path, e.to_string()))?;
    let bytes = hex::decode(text.trim()).map_err(|_| key_err(path, "expected 64 hex digits"))?;
    bytes
        .try_into()
        .map_err(|_| key_err(path, "expected 32 bytes (64 hex digits)"))
}

impl Signer {
    pub fn load(path: &Path) -> Result<Signer, AuditError> {
        Ok(Signer {
            key: SigningKey::from_bytes(&read_hex32(path)?),
        })
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    pub fn sign(&self, covers: u64, covers_hash: &str, time: String, reason: &str) -> Checkpoint {
        let sig = self
            .key
            .sign(&Checkpoint::message(covers, covers_hash, &time, reason));
        Checkpoint {
            covers,
            covers_hash: covers_hash.to_string(),
            time,
            reason: reason.to_string(),
            key: self.public_hex(),
            sig: hex::encode(sig.to_bytes()),
        }
    }
}

/// Read a public key file (64 hex digits).
pub fn read_public(path: &Path) -> Result<VerifyingKey, AuditError> {
    VerifyingKey::from_bytes(&read_hex32(path)?)
        .map_err(|_| key_err(path, "not an Ed25519 public key"))
}

/// Write a new signing key to `out` (0600, refusing to replace one) and its public key
/// to `out.pub`; returns the public key in hex.
pub fn keygen(out: &Path) -> Result<String, AuditError> {
    use std::io::Write;
    let seed: [u8; 32] = rand::random();
    let signer = Signer {
        key: SigningKey::from_bytes(&seed),
    };
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let io = |e: std::io::Error| key_err(out, e.to_string());
    let mut f = o.open(out).map_err(io)?;
    writeln!(f, "{}", hex::encode(seed)).map_err(io)?;
    let public = signer.public_hex();
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    std::fs::write(&pub_path, format!("{public}\n")).map_err(io)?;
    Ok(public)
}
