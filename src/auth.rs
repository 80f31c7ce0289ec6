//! Proxy authentication: `Proxy-Authorization: Basic` against users whose passwords are
//! stored as Argon2id hashes (PHC strings) in the config.
//!
//! Argon2 is deliberately slow, so a credential that verified once is remembered by its
//! SHA-256 digest; a wrong or unknown one is checked in full every time (an unknown user
//! costs the same as a known one, so timing does not reveal user names).

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use base64::Engine as _;
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Remembered good credentials at most; beyond that the cache is cleared.
const CACHE_LIMIT: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("user `{0}`: password hash is not a valid PHC string: {1}")]
    BadHash(String, String),
    #[error("user name must be non-empty and contain no ':' or whitespace")]
    BadName,
    #[error("hashing failed: {0}")]
    Hash(String),
}

pub struct Authenticator {
    users: BTreeMap<String, String>,
    verified: DashMap<[u8; 32], String>,
    /// A hash to verify against for unknown users (equal cost).
    decoy: String,
}

impl Authenticator {
    /// `users` maps a name to its Argon2 PHC hash. Every hash is parsed up front so a typo
    /// in the config fails at start, not at the first login.
    pub fn new(users: &BTreeMap<String, String>) -> Result<Authenticator, AuthError> {
        for (name, hash) in users {
            PasswordHash::new(hash).map_err(|e| AuthError::BadHash(name.clone(), e.to_string()))?;
        }
        Ok(Authenticator {
            users: users.clone(),
            verified: DashMap::new(),
            decoy: hash_password("decoy password, never valid")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user for a header that verified before (no Argon2 work): the data path tries
    /// this first and runs [`Authenticator::check`] off the async workers otherwise.
    pub fn check_cached(&self, header: &[u8]) -> Option<String> {
        let digest: [u8; 32] = Sha256::digest(header).into();
        self.verified.get(&digest).map(|u| u.clone())
    }

    /// The user name if the `Proxy-Authorization` header value holds valid credentials.
    pub fn check(&self, header: Option<&[u8]>) -> Option<String> {
        let header = header?;
        let digest: [u8; 32] = Sha256::digest(header).into();
        if let Some(user) = self.verified.get(&digest) {
            return Some(user.clone());
        }
        let (scheme, rest) = split_scheme(header)?;
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim_ascii())
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let name = std::str::from_utf8(name).ok()?;
        let (hash, known) = match self.users.get(name) {
            Some(h) => (h.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        // PHC hashes were validated in `new`.
        let parsed = PasswordHash::new(hash).ok()?;
        let ok = Argon2::default().verify_password(password, &parsed).is_ok();
        if ok && known {
            if self.verified.len() >= CACHE_LIMIT {
                self.verified.clear();
            }
            self.verified.insert(digest, name.to_string());
            Some(name.to_string())
        } else {
            None
        }
    }
}

fn split_scheme(h: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = h.iter().position(|&b| b == b' ')?;
    Some((&h[..sp], &h[sp + 1..]))
}

/// Whether `hash` is a PHC string (config validation, so a typo fails the load).
pub fn check_hash(name: &str, hash: &str) -> Result<(), AuthError> {
    PasswordHash::new(hash)
        .map(|_| ())
        .map_err(|e| AuthError::BadHash(name.to_string(), e.to_string()))
}

/// Argon2id PHC string for a password (random salt, the crate's default cost).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// The config line `clawguard user add NAME` prints.
pub fn user_line(name: &str, password: &str) -> Result<String, AuthError> {
    if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
        return Err(AuthError::BadName);
    }
    let hash = hash_password(password)?;
    Ok(format!("{} = \"{}\"", toml_key(name), hash))
}

fn toml_key(name: &str) -> String {
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
        .into_bytes()
    }

    #[test]
    fn accepts_right_rejects_wrong() {
        let line = user_line("alice", "correct horse").unwrap();
        let (name, hash) = line.split_once(" = ").unwrap();
        assert_eq!(name, "alice");
        let mut users = BTreeMap::new();
        users.insert("alice".to_string(), hash.trim_matches('"').to_string());
        let a = Authenticator::new(&users).unwrap();
        assert_eq!(
            a.check(Some(&basic("alice", "correct horse"))),
            Some("alice".into())
        );
        // Second time from the cache.
        assert_eq!(
            a.check(Some(&basic("alice", "correct horse"))),
            Some("alice".into())
        );
        assert_eq!(a.check(Some(&basic("alice", "wrong"))), None);
        assert_eq!(a.check(Some(&basic("bob", "correct horse"))), None);
        assert_eq!(a.check(Some(b"Bearer xyz")), None);
        assert_eq!(a.check(Some(b"Basic !!!")), None);
        assert_eq!(a.check(None), None);
    }

    #[test]
    fn bad_hash_fails_at_start() {
        let mut users = BTreeMap::new();
        users.insert("alice".to_string(), "plaintext".to_string());
        assert!(Authenticator::new(&users).is_err());
        assert!(user_line("a b", "x").is_err());
    }
}
