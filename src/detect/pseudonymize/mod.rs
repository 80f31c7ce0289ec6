//! Pseudonymization for LLM APIs: each finding in a request to an LLM endpoint is
//! replaced by a stable, typed placeholder ([`placeholder`]), and the real value is put
//! back into the model's answer on its way to the agent. The provider never sees the
//! value; the agent's tools (which run locally) get it back.
//!
//! - [`placeholder`]: the grammar, the cheap recogniser other modules use so they never
//!   flag our own placeholders, the entity words, and the keyed derivation.
//! - [`vault`]: placeholder → value per scope, bounded and expiring, memory only (why
//!   that is enough for restarts and fleets is explained there).
//! - [`Pseudonymizer`]: the instance key plus the vault; per request an [`Issuer`]
//!   hands out placeholders, and its [`Restorer`] looks them up for the response.
//!
//! Fail-closed everywhere: a value that cannot be given a placeholder (a collision)
//! makes the engine block the request; a placeholder that cannot be looked up is left
//! in the response as it is.

pub mod placeholder;
pub mod restore;
pub mod vault;

pub use placeholder::{find_placeholders, looks_like_placeholder, PseudonymKey, Scope};
pub use vault::{Secret, Vault, VaultError};

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `matched` with every placeholder-shaped span blanked out (spaces), or `None` when it
/// holds none. A finding whose blanked text no longer matches any rule matched only
/// because of our own placeholder (`password=CG_PASSWORD_…` sent back by the client):
/// it carries no value and is not flagged again. A real value beside a placeholder
/// still matches, so that finding stays.
pub fn blank_placeholders(matched: &[u8]) -> Option<Vec<u8>> {
    let mut spans = find_placeholders(matched).peekable();
    spans.peek()?;
    let mut out = matched.to_vec();
    for sp in spans {
        out[sp].fill(b' ');
    }
    Some(out)
}

/// `[pseudonymize]` in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PseudonymizeConfig {
    /// Pseudonymize findings in the conversation sent to LLM APIs (otherwise they get
    /// the rule's usual block/redact action there too).
    pub enabled: bool,
    /// The instance key (created with 32 random bytes, mode 0600, when missing). Every
    /// instance of a fleet must use the same file content. Default: `pseudonym.key` in
    /// the CA directory, beside the other secret ClawGuard keeps.
    pub key_file: Option<PathBuf>,
    /// Upper bound of the vault's memory, in bytes.
    pub vault_max_bytes: u64,
    /// A vault entry unused for this long expires.
    pub vault_ttl_secs: u64,
    /// LLM hosts (globs) where pseudonymization is off: findings there get the rule's
    /// usual action.
    pub exclude_hosts: Vec<String>,
}

impl Default for PseudonymizeConfig {
    fn default() -> Self {
        PseudonymizeConfig {
            enabled: true,
            key_file: None,
            vault_max_bytes: 64 * 1024 * 1024,
            vault_ttl_secs: 24 * 3600,
            exclude_hosts: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PseudonymizeError {
    #[error("pseudonym key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
}

/// Domain separation for turning the key file's content into the instance key.
const KEY_FILE_LABEL: &[u8] = b"clawguard pseudonym key file v1";

/// Read the key file, or create it (32 random bytes as 64 hex digits, mode 0600, in a
/// directory created 0700) when it does not exist. The content must be at least 16
/// bytes; surrounding whitespace is ignored, so a key copied with a trailing newline
/// to another instance gives the same placeholders.
pub fn load_or_create_key(path: &Path) -> Result<PseudonymKey, PseudonymizeError> {
    let err = |reason: String| PseudonymizeError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let content = match std::fs::read(path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(path)
            .or_else(|e| {
                // Another process (a second `clawguard exec`) may have won the race.
                std::fs::read(path).map_err(|_| e)
            })
            .map_err(|e| err(format!("cannot create: {e}")))?,
        Err(e) => return Err(err(format!("cannot read: {e}"))),
    };
    let trimmed = content.trim_ascii();
    if trimmed.len() < 16 {
        return Err(err("a key must be at least 16 bytes".into()));
    }
    warn_if_readable_by_others(path);
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(KEY_FILE_LABEL).expect("any key length");
    mac.update(trimmed);
    Ok(PseudonymKey::new(mac.finalize().into_bytes().into()))
}

fn create_key_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let bytes: [u8; 32] = rand::random();
    let content = format!("{}\n", hex::encode(bytes)).into_bytes();
    // Created with its final mode: never briefly readable by others.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&content)?;
    f.sync_all()?;
    tracing::info!(path = %path.display(), "created the pseudonym key");
    Ok(content)
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(),
                "the pseudonym key is readable by other users; chmod 600 it");
        }
    }
}

/// The instance key and the vault: one per process, kept across configuration reloads
/// (a reload must not forget what the vault holds).
pub struct Pseudonymizer {
    key: PseudonymKey,
    vault: Arc<Vault>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pseudonymizer({:?})", self.vault)
    }
}

impl Pseudonymizer {
    pub fn new(key: PseudonymKey, vault: Vault) -> Pseudonymizer {
        Pseudonymizer {
            key,
            vault: Arc::new(vault),
        }
    }

    /// The key file and vault bounds of `cfg` (`key_file` with `~` expanded; unset:
    /// `pseudonym.key` in `ca_dir`).
    pub fn from_config(
        cfg: &PseudonymizeConfig,
        ca_dir: &Path,
    ) -> Result<Pseudonymizer, PseudonymizeError> {
        let path = match &cfg.key_file {
            Some(p) => crate::config::expand_home(p),
            None => ca_dir.join("pseudonym.key"),
        };
        let key = load_or_create_key(&path)?;
        Ok(Pseudonymizer::new(
            key,
            Vault::new(cfg.vault_max_bytes, Duration::from_secs(cfg.vault_ttl_secs)),
        ))
    }

    /// A random key and a small vault (tests, tools).
    pub fn ephemeral() -> Pseudonymizer {
        Pseudonymizer::new(
            PseudonymKey::random(),
            Vault::new(16 * 1024 * 1024, Duration::from_secs(3600)),
        )
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// Placeholders for one request of `scope`.
    pub fn issuer(&self, scope: Scope) -> Issuer {
        Issuer {
            key: self.key.scope_key(&scope),
            scope,
            vault: self.vault.clone(),
            issued: HashMap::new(),
        }
    }

    /// A restorer for `scope` that knows only what the vault holds (a response to a
    /// request that issued nothing itself).
    pub fn restorer(&self, scope: Scope) -> Restorer {
        Restorer {
            scope,
            vault: self.vault.clone(),
            issued: Arc::new(HashMap::new()),
        }
    }
}

/// Hands out the placeholders of one request and remembers them, so its response is
/// restored even if the shared vault evicted an entry meanwhile (memory pressure).
pub struct Issuer {
    scope: Scope,
    key: placeholder::ScopeKey,
    vault: Arc<Vault>,
    issued: HashMap<String, Secret>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Issuer({:?}, {} issued)", self.scope, self.issued.len())
    }
}

impl Issuer {
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The placeholder for `value` (as an `entity`), recorded in the vault.
    pub fn issue(&mut self, entity: &str, value: &[u8]) -> Result<String, VaultError> {
        let p = self.key.placeholder(entity, value);
        let secret = match self.issued.get(&p) {
            Some(s) if s.expose() == value => return Ok(p),
            Some(_) => return Err(VaultError::Collision),
            None => Secret::new(value),
        };
        self.vault.insert(&self.scope, &p, &secret)?;
        self.issued.insert(p.clone(), secret);
        Ok(p)
    }

    /// Whether `candidate` is a placeholder this scope was given (and the vault still
    /// knows): a placeholder the client sends back is then left alone.
    pub fn knows(&self, candidate: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(candidate) else {
            return false;
        };
        self.issued.contains_key(s) || self.vault.get(&self.scope, s).is_some()
    }

    pub fn issued_count(&self) -> usize {
        self.issued.len()
    }

    /// What the response to this request may be restored with.
    pub fn into_restorer(self) -> Restorer {
        Restorer {
            scope: self.scope,
            vault: self.vault,
            issued: Arc::new(self.issued),
        }
    }
}

/// Looks placeholders up for one response: this request's own first, then the vault
/// (same scope only).
#[derive(Clone)]
pub struct Restorer {
    scope: Scope,
    vault: Arc<Vault>,
    issued: Arc<HashMap<String, Secret>>,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Restorer({:?})", self.scope)
    }
}

impl Restorer {
    pub fn lookup(&self, placeholder: &[u8]) -> Option<Secret> {
        let p = std::str::from_utf8(placeholder).ok()?;
        if let Some(s) = self.issued.get(p) {
            return Some(s.clone());
        }
        self.vault.get(&self.scope, p)
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_restore_within_a_scope_only() {
        let p = Pseudonymizer::ephemeral();
        let mut alice = p.issuer(Scope::user("alice"));
        let ph = alice.issue("PHONE", b"13800138000").unwrap();
        assert_eq!(alice.issue("PHONE", b"13800138000").unwrap(), ph);
        assert!(alice.knows(ph.as_bytes()));
        let r = alice.into_restorer();
        assert_eq!(r.lookup(ph.as_bytes()).unwrap().expose(), b"13800138000");
        // A later response for alice (vault), never for bob.
        assert!(p
            .restorer(Scope::user("alice"))
            .lookup(ph.as_bytes())
            .is_some());
        assert!(p
            .restorer(Scope::user("bob"))
            .lookup(ph.as_bytes())
            .is_none());
        let bob = p.issuer(Scope::user("bob"));
        assert!(!bob.knows(ph.as_bytes()));
    }

    /// Two instances sharing the key file issue the same placeholders; a fresh instance
    /// (restart, or the other member of a fleet) restores once the conversation that
    /// carries the value passes through it.
    #[test]
    fn same_key_file_same_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = PseudonymizeConfig::default();
        let ca_dir = dir.path().join("sub");
        let a = Pseudonymizer::from_config(&cfg, &ca_dir).unwrap();
        let b = Pseudonymizer::from_config(&cfg, &ca_dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let key_file = ca_dir.join("pseudonym.key");
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let s = Scope::client("10.0.0.7".parse().unwrap());
        let pa = a
            .issuer(s.clone())
            .issue("IDNUM", b"11010519491231002X")
            .unwrap();
        assert!(b.restorer(s.clone()).lookup(pa.as_bytes()).is_none());
        let mut ib = b.issuer(s.clone());
        assert_eq!(ib.issue("IDNUM", b"11010519491231002X").unwrap(), pa);
        assert!(b.restorer(s).lookup(pa.as_bytes()).is_some());
        // Whitespace around the key does not change it.
        let copy = dir.path().join("copy.key");
        let content = std::fs::read_to_string(&key_file).unwrap();
        std::fs::write(&copy, format!("  {}\n\n", content.trim())).unwrap();
        let c = Pseudonymizer::from_config(
            &PseudonymizeConfig {
                key_file: Some(copy),
                ..cfg.clone()
            },
            Path::new("/nonexistent"),
        )
        .unwrap();
        let s = Scope::client("10.0.0.7".parse().unwrap());
        assert_eq!(
            c.issuer(s).issue("IDNUM", b"11010519491231002X").unwrap(),
            pa
        );
    }

    #[test]
    fn blanking_placeholders() {
        assert_eq!(
            blank_placeholders(b"key=CG_KEY_abcdefghijklm;").unwrap(),
            b"key=                    ;"
        );
        assert_eq!(blank_placeholders(b"13800138000"), None);
        assert_eq!(blank_placeholders(b"CG_KEY_abcdefghijk"), None); // not the grammar
    }

    #[test]
    fn short_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "short\n").unwrap();
        let e = load_or_create_key(&path).unwrap_err().to_string();
        assert!(e.contains("at least 16 bytes"), "{e}");
        assert!(!e.contains("short"), "never echo key material: {e}");
    }
}

#[cfg(test)]
mod tests_engine;
