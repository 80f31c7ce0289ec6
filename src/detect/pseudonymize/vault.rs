//! The vault: placeholder → real value, per scope, in memory only.
//!
//! # Design (why a derivable vault, not values carried inside placeholders)
//!
//! Placeholders are a keyed MAC of the value ([`super::placeholder`]), so they are short
//! (19–29 bytes whatever the value: a 1.7 KB PEM key too) and the model copies them
//! reliably. The price is that the value is not *in* the placeholder: something must
//! map it back. That map is this vault, and it needs no sharing and no disk because it
//! is **derivable**:
//!
//! - every instance holding the same key derives the same placeholder for the same
//!   (scope, value);
//! - LLM chat APIs are stateless: every request re-sends the whole conversation, and the
//!   conversation the agent holds has the *real* values (it received them restored). So
//!   the request a response answers always carries, in clear, every value that response
//!   can legitimately mention; pseudonymizing that request re-fills the vault of
//!   whichever instance handles it, before its response arrives.
//!
//! Hence after a restart, or on another instance of a fleet behind a load balancer,
//! restore keeps working with nothing shared but the key file. What cannot be restored
//! there is a placeholder whose value is in neither this request nor this instance's
//! vault — a provider-side conversation (`previous_response_id` of the Responses API,
//! Assistants threads) continued on another instance or after a restart: it passes
//! through unchanged (fail-closed: the agent sees the placeholder, the value still
//! never leaves).
//!
//! The alternative, values encrypted into the placeholder (deterministic AEAD: a 16-byte
//! synthetic IV plus the ciphertext), makes a placeholder grow with its value: 55
//! characters for an 11-digit mobile number instead of 22, 67 for an 18-character
//! resident ID, ~2 900 for a PEM key (`placeholder_length_of_the_alternative` below) —
//! long random strings a model copies less reliably and pays tokens for on every turn.
//!
//! # Bounds and hygiene
//!
//! - memory: weighed in bytes (key + value + a fixed overhead per entry), capped by
//!   `pseudonymize.vault_max_bytes`; entries expire `vault_ttl_secs` after their last
//!   use (moka's time-to-idle), least-recently-used entries go first when full;
//! - values are zeroed when dropped, never `Debug`-printed, logged, audited, exported as
//!   metrics, or written anywhere.

use super::placeholder::Scope;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Bytes counted per entry on top of the placeholder and value (key struct, `Arc`s,
/// moka's bookkeeping), so many tiny entries cannot exceed the cap.
const ENTRY_OVERHEAD: usize = 160;

/// A sensitive value: opaque to `Debug`, zeroed on drop, cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<Zeroizing<Vec<u8>>>);

impl Secret {
    pub fn new(bytes: &[u8]) -> Secret {
        Secret(Arc::new(Zeroizing::new(bytes.to_vec())))
    }

    /// The value itself, for writing it back into a response.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: Scope,
    placeholder: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Two different values of one scope derived the same placeholder (61-bit tags: about
    /// 2·10⁻⁷ for a million values in one scope). The caller must not use it.
    #[error("placeholder collision in one scope")]
    Collision,
}

/// Placeholder → value, per scope; bounded and expiring. Share behind an `Arc`.
pub struct Vault {
    cache: moka::sync::Cache<Key, Secret>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vault({} entries)", self.cache.entry_count())
    }
}

impl Vault {
    /// A vault holding at most `max_bytes` (weighed as above); an entry unused for `ttl`
    /// expires.
    pub fn new(max_bytes: u64, ttl: Duration) -> Vault {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Key, v: &Secret| {
                (ENTRY_OVERHEAD + k.placeholder.len() + k.scope.as_str().len() + v.len())
                    .try_into()
                    .unwrap_or(u32::MAX)
            })
            .time_to_idle(ttl)
            .build();
        Vault { cache }
    }

    /// Record that `placeholder` stands for `value` in `scope` (refreshing its expiry).
    pub fn insert(
        &self,
        scope: &Scope,
        placeholder: &str,
        value: &Secret,
    ) -> Result<(), VaultError> {
        let key = Key {
            scope: scope.clone(),
            placeholder: placeholder.into(),
        };
        let entry = self.cache.entry(key).or_insert_with(|| value.clone());
        if entry.is_fresh() || entry.value() == value {
            Ok(())
        } else {
            Err(VaultError::Collision)
        }
    }

    /// The value `placeholder` stands for in `scope`, if this vault knows it.
    pub fn get(&self, scope: &Scope, placeholder: &str) -> Option<Secret> {
        // The lookup key is built per call; restores are rare (only where a placeholder
        // actually occurs), so this allocation is not on any hot path.
        self.cache.get(&Key {
            scope: scope.clone(),
            placeholder: placeholder.into(),
        })
    }

    /// Approximate number of entries (for tests and the README's measurements).
    pub fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Approximate weight in bytes.
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(n: &str) -> Scope {
        Scope::user(n)
    }

    #[test]
    fn insert_get_and_scope_isolation() {
        let v = Vault::new(1 << 20, Duration::from_secs(60));
        let secret = Secret::new(b"13800138000");
        v.insert(&scope("alice"), "CG_PHONE_aaaaaaaaaaaaa", &secret)
            .unwrap();
        assert_eq!(
            v.get(&scope("alice"), "CG_PHONE_aaaaaaaaaaaaa"),
            Some(secret.clone())
        );
        // Another scope never sees it.
        assert_eq!(v.get(&scope("bob"), "CG_PHONE_aaaaaaaaaaaaa"), None);
        assert_eq!(v.get(&scope("alice"), "CG_PHONE_aaaaaaaaaaaab"), None);
        // Re-inserting the same value is fine; another value under it is a collision.
        v.insert(&scope("alice"), "CG_PHONE_aaaaaaaaaaaaa", &secret)
            .unwrap();
        assert_eq!(
            v.insert(
                &scope("alice"),
                "CG_PHONE_aaaaaaaaaaaaa",
                &Secret::new(b"13800138001")
            ),
            Err(VaultError::Collision)
        );
        assert_eq!(
            v.get(&scope("alice"), "CG_PHONE_aaaaaaaaaaaaa"),
            Some(secret)
        );
    }

    #[test]
    fn memory_is_bounded_by_bytes() {
        let cap = 64 * 1024;
        let v = Vault::new(cap, Duration::from_secs(60));
        let big = Secret::new(&[b'x'; 1000]);
        for i in 0..1000 {
            v.insert(&scope("a"), &format!("CG_KEY_{i:013}"), &big)
                .unwrap();
        }
        assert!(v.weighted_size() <= cap, "{}", v.weighted_size());
        assert!(v.entry_count() < 1000);
    }

    #[test]
    fn entries_expire_when_idle() {
        let v = Vault::new(1 << 20, Duration::from_millis(50));
        v.insert(&scope("a"), "CG_KEY_aaaaaaaaaaaaa", &Secret::new(b"k"))
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(v.get(&scope("a"), "CG_KEY_aaaaaaaaaaaaa"), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new(b"hunter2-password");
        assert_eq!(format!("{s:?}"), "Secret(16 bytes)");
        let v = Vault::new(1 << 20, Duration::from_secs(60));
        v.insert(&scope("a"), "CG_KEY_aaaaaaaaaaaaa", &s).unwrap();
        assert!(!format!("{v:?}").contains("hunter2"));
    }

    /// The figures quoted in the module docs: how long a placeholder that carried its
    /// value (16-byte synthetic IV + ciphertext, in base-26 letters like our tag) would be.
    #[test]
    fn placeholder_length_of_the_alternative() {
        let letters = |bytes: usize| ((bytes * 8) as f64 / 26f64.log2()).ceil() as usize;
        assert_eq!(letters(16 + 11), 46); // mobile number, before the entity prefix
        let sealed = |value: usize| "CG_PHONE_".len() + letters(16 + value);
        assert_eq!(sealed(11), 55);
        assert_eq!(sealed(18), 67);
        assert!(sealed(1700) > 2900);
        // Ours: fixed.
        assert_eq!("CG_PHONE_".len() + super::super::placeholder::TAG_LEN, 22);
    }
}
