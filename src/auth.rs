//! Proxy authentication: `Proxy-Authorization: Basic` against users whose passwords are
//! stored as Argon2id hashes (PHC strings) in the config.
//!
//! Argon2 is deliberately slow and memory-hungry (19 MiB per check with the default
//! cost), so nobody may make the proxy run it at will:
//!
//! - at most one check per core runs at once, on tokio's blocking threads; a bounded
//!   number wait for one ([`MAX_WAITING`]), beyond that the answer is "busy";
//! - a credential that verified is remembered, one that failed too (for
//!   [`NEGATIVE_TTL`]): repeating it costs nothing. Both caches are keyed by an HMAC of
//!   the presented header under a per-process random key, never by the credential;
//! - a client address that keeps failing waits: after [`FREE_FAILURES`] failures each
//!   further attempt needs a pause that doubles up to [`MAX_BACKOFF`], and is answered
//!   `429` without any Argon2 work until then.
//!
//! An unknown user costs the same as a known one, so timing does not reveal user names.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use moka::sync::Cache;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Verified credentials remembered at most, and for how long.
const POSITIVE_CAPACITY: u64 = 10_000;
const POSITIVE_TTL: Duration = Duration::from_secs(3600);
/// Failed credentials remembered at most, and for how long.
const NEGATIVE_CAPACITY: u64 = 100_000;
pub const NEGATIVE_TTL: Duration = Duration::from_secs(600);
/// Failures per client address before back-off starts.
pub const FREE_FAILURES: u32 = 5;
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Checks waiting for an Argon2 slot at most.
pub const MAX_WAITING: usize = 64;
/// Client addresses tracked for back-off at most.
const CLIENTS_CAPACITY: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("user `{0}`: password hash is not a valid PHC string: {1}")]
    BadHash(String, String),
    #[error("user name must be non-empty and contain no ':' or whitespace")]
    BadName,
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Missing, malformed or wrong credentials (407).
    Invalid,
    /// This client failed too often; try again after this long (429).
    Throttled { retry_after: Duration },
    /// Too many checks queued already (503).
    Busy,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

struct Inner {
    users: BTreeMap<String, String>,
    /// A hash to verify against for unknown users (equal cost).
    decoy: String,
    cache_key: [u8; 32],
    verified: Cache<[u8; 32], Arc<str>>,
    refused: Cache<[u8; 32], ()>,
    clients: Cache<IpAddr, Failures>,
    slots: tokio::sync::Semaphore,
    waiting: AtomicUsize,
}

/// The user table plus its caches and limits. Cheap to clone (shared).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl Authenticator {
    /// `users` maps a name to its Argon2 PHC hash. Every hash is parsed up front so a typo
    /// in the config fails at start, not at the first login.
    pub fn new(users: &BTreeMap<String, String>) -> Result<Authenticator, AuthError> {
        for (name, hash) in users {
            PasswordHash::new(hash).map_err(|e| AuthError::BadHash(name.clone(), e.to_string()))?;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Authenticator {
            inner: Arc::new(Inner {
                users: users.clone(),
                decoy: hash_password("decoy password, never valid")?,
                cache_key: rand::random(),
                verified: Cache::builder()
                    .max_capacity(POSITIVE_CAPACITY)
                    .time_to_live(POSITIVE_TTL)
                    .build(),
                refused: Cache::builder()
                    .max_capacity(NEGATIVE_CAPACITY)
                    .time_to_live(NEGATIVE_TTL)
                    .build(),
                clients: Cache::builder()
                    .max_capacity(CLIENTS_CAPACITY)
                    .time_to_idle(MAX_BACKOFF * 10)
                    .build(),
                slots: tokio::sync::Semaphore::new(cores),
                waiting: AtomicUsize::new(0),
            }),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.inner.users.is_empty()
    }

    /// The cache key of a presented header: keyed, so memory never holds a plain
    /// (brute-forceable) digest of a password.
    fn key(&self, header: &[u8]) -> [u8; 32] {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.inner.cache_key)
            .expect("HMAC takes any key length");
        mac.update(header);
        mac.finalize().into_bytes().into()
    }

    /// The data path's check: the user, or why not.
    pub async fn verify(
        &self,
        header: Option<&[u8]>,
        client: IpAddr,
    ) -> Result<Arc<str>, Rejected> {
        let header = header.ok_or(Rejected::Invalid)?;
        let key = self.key(header);
        if let Some(user) = self.inner.verified.get(&key) {
            return Ok(user);
        }
        if let Some(wait) = self.backoff(client) {
            return Err(Rejected::Throttled { retry_after: wait });
        }
        if self.inner.refused.contains_key(&key) {
            self.failed(client);
            return Err(Rejected::Invalid);
        }
        // Bounded queue, then at most one Argon2 per core.
        if self.inner.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejected::Busy);
        }
        let permit = self.inner.slots.acquire().await;
        self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| Rejected::Busy)?;
        // Failures may have piled up while this one waited.
        if let Some(wait) = self.backoff(client) {
            return Err(Rejected::Throttled { retry_after: wait });
        }
        if self.inner.refused.contains_key(&key) {
            self.failed(client);
            return Err(Rejected::Invalid);
        }
        let this = self.clone();
        let owned = header.to_vec();
        let user = tokio::task::spawn_blocking(move || this.check_slow(&owned))
            .await
            .map_err(|_| Rejected::Busy)?;
        match user {
            Some(u) => {
                let u: Arc<str> = u.into();
                self.inner.verified.insert(key, u.clone());
                self.inner.clients.invalidate(&client);
                Ok(u)
            }
            None => {
                self.inner.refused.insert(key, ());
                self.failed(client);
                Err(Rejected::Invalid)
            }
        }
    }

    /// How long `client` must still wait, if it failed too often.
    fn backoff(&self, client: IpAddr) -> Option<Duration> {
        let f = self.inner.clients.get(&client)?;
        let over = f.count.checked_sub(FREE_FAILURES)?;
        let pause = Duration::from_secs(1u64 << over.min(6)).min(MAX_BACKOFF);
        let elapsed = f.last.elapsed();
        (elapsed < pause).then(|| pause - elapsed)
    }

    fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        self.inner.clients.entry(client).and_upsert_with(|e| {
            let count = e.map_or(0, |e| e.into_value().count);
            Failures {
                count: count.saturating_add(1),
                last: now,
            }
        });
    }

    /// Synchronous check (tools and tests): the user name if the header holds valid
    /// credentials.
    pub fn check(&self, header: Option<&[u8]>) -> Option<String> {
        let header = header?;
        let key = self.key(header);
        if let Some(user) = self.inner.verified.get(&key) {
            return Some(user.to_string());
        }
        let user = self.check_slow(header)?;
        self.inner.verified.insert(key, user.as_str().into());
        Some(user)
    }

    /// Parse and verify with Argon2 (no caches).
    fn check_slow(&self, header: &[u8]) -> Option<String> {
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
        let (hash, known) = match self.inner.users.get(name) {
            Some(h) => (h.as_str(), true),
            None => (self.inner.decoy.as_str(), false),
        };
        // PHC hashes were validated in `new`.
        let parsed = PasswordHash::new(hash).ok()?;
        let ok = Argon2::default().verify_password(password, &parsed).is_ok();
        (ok && known).then(|| name.to_string())
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

    #[tokio::test]
    async fn failures_are_cached_and_throttled() {
        let line = user_line("alice", "correct horse").unwrap();
        let (_, hash) = line.split_once(" = ").unwrap();
        let mut users = BTreeMap::new();
        users.insert("alice".to_string(), hash.trim_matches('"').to_string());
        let a = Authenticator::new(&users).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(a.verify(None, ip).await, Err(Rejected::Invalid));
        let wrong = basic("alice", "wrong");
        for _ in 0..FREE_FAILURES {
            assert_eq!(a.verify(Some(&wrong), ip).await, Err(Rejected::Invalid));
        }
        assert!(matches!(
            a.verify(Some(&wrong), ip).await,
            Err(Rejected::Throttled { .. })
        ));
        // Another client is not held back, and the right password still works there.
        let right = basic("alice", "correct horse");
        assert_eq!(a.verify(Some(&right), other).await.as_deref(), Ok("alice"));
        // The failed credential is remembered by its keyed hash, not re-hashed.
        assert!(a.inner.refused.contains_key(&a.key(&wrong)));
        assert_ne!(
            a.key(&wrong),
            Authenticator::new(&users).unwrap().key(&wrong)
        );
    }

    #[test]
    fn bad_hash_fails_at_start() {
        let mut users = BTreeMap::new();
        users.insert("alice".to_string(), "plaintext".to_string());
        assert!(Authenticator::new(&users).is_err());
        assert!(user_line("a b", "x").is_err());
    }
}
