//! The placeholder that stands in for a sensitive value on its way to an LLM API.
//!
//! # Grammar (exact; ABNF, RFC 5234)
//!
//! ```text
//! placeholder = "CG_" entity "_" tag
//! entity      = 2*12 %x41-5A              ; A–Z: what the value is (PHONE, IDNUM, KEY, …)
//! tag         = 13 %x61-7A                ; a–z: 61 bits of a keyed MAC
//! ```
//!
//! For example `CG_PHONE_qvtxamkbkazep` (a mobile number) or `CG_KEY_hvrqsonfjeuwx` (a cloud
//! key). A placeholder is 19 to 29 bytes long. No boundary is required around it: a
//! placeholder glued to other text (`file_CG_PHONE_qvtxamkbkazep.txt`) is still one.
//!
//! # Why this shape
//!
//! - **Safe verbatim everywhere an agent copies it**: upper- and lower-case letters and `_` only, so it
//!   needs no escaping in a JSON string (at any nesting depth), a shell word, a URL path
//!   or query, a file name, or a form value.
//! - **Typed**: the entity word tells the model what it is handling ("a phone number"),
//!   so it can still reason about the task ("text CG_PHONE_… the meeting time").
//! - **Deterministic within a scope**: the tag is a keyed MAC of (scope, entity, value),
//!   so the same number gets the same placeholder on every turn (the conversation stays
//!   coherent and provider-side prompt caching keeps working), while another user (or
//!   client) gets an unrelated one: placeholders cannot be correlated across scopes.
//! - **Not reversible without ClawGuard's key**: the tag is HMAC-SHA256 output under a
//!   256-bit key; guessing a phone number's placeholder needs the key, not just the
//!   (small) space of phone numbers.
//! - **Collision-free with real text**: the fixed `CG_` + upper-case word + `_` + 12
//!   lower-case letters does not occur in prose or code by accident, and a look-alike is
//!   only ever restored if the vault holds exactly that placeholder for the requesting
//!   scope. 61 bits of tag make two values of one scope colliding negligible (about
//!   2·10⁻⁷ for a million values); the vault refuses one anyway.
//! - **Invisible to the scanner**: no digits at all and no upper case after the entity
//!   word, so the digit-run and keyword triggers of the built-in rules never fire inside
//!   it; [`looks_like_placeholder`] lets a rule that does match around one (an
//!   `api_key = …` assignment) skip it.

use crate::detect::rules::Category;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::ops::Range;

/// `CG_`: every placeholder starts with it.
pub const PREFIX: &[u8] = b"CG_";
/// Length of the tag: 13 letters, 61 bits (26¹³ ≈ 2⁶¹).
pub const TAG_LEN: usize = 13;
pub const ENTITY_MIN: usize = 2;
pub const ENTITY_MAX: usize = 12;
/// The shortest and longest placeholder.
pub const MIN_LEN: usize = PREFIX.len() + ENTITY_MIN + 1 + TAG_LEN;
pub const MAX_LEN: usize = PREFIX.len() + ENTITY_MAX + 1 + TAG_LEN;

fn is_entity_byte(b: u8) -> bool {
    b.is_ascii_uppercase()
}

fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_lowercase()
}

/// The length of the placeholder that starts at `s[0]`, if one does. The tag has a
/// fixed length, so whatever follows it (letters included) is not part of it.
pub fn match_at(s: &[u8]) -> Option<usize> {
    if !s.starts_with(PREFIX) {
        return None;
    }
    let rest = &s[PREFIX.len()..];
    let entity = rest.iter().take_while(|&&b| is_entity_byte(b)).count();
    if !(ENTITY_MIN..=ENTITY_MAX).contains(&entity) || rest.get(entity) != Some(&b'_') {
        return None;
    }
    let tag = &rest[entity + 1..];
    if tag.len() < TAG_LEN || !tag[..TAG_LEN].iter().all(|&b| is_tag_byte(b)) {
        return None;
    }
    Some(PREFIX.len() + entity + 1 + TAG_LEN)
}

/// Whether `s` is exactly one placeholder (nothing before or after it). Cheap: no
/// allocation, no key, at most [`MAX_LEN`] bytes looked at. This says the *shape* is
/// right; only the vault knows whether ClawGuard issued it.
pub fn looks_like_placeholder(s: &[u8]) -> bool {
    s.len() <= MAX_LEN && match_at(s) == Some(s.len())
}

/// Every placeholder-shaped span in `hay`, left to right, not overlapping.
pub fn find_placeholders(hay: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let finder = memchr::memmem::Finder::new(PREFIX);
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < hay.len() {
            let at = pos + finder.find(&hay[pos..])?;
            match match_at(&hay[at..]) {
                Some(n) => {
                    pos = at + n;
                    return Some(at..at + n);
                }
                None => pos = at + 1,
            }
        }
        None
    })
}

/// Whether `s` could still grow into a placeholder: it is a proper, non-empty prefix
/// of some placeholder (`C`, `CG_`, `CG_PHO`, `CG_PHONE_q7t`, …).
pub fn is_partial(s: &[u8]) -> bool {
    if s.is_empty() || s.len() >= MAX_LEN {
        return false;
    }
    let p = PREFIX.len();
    if s.len() <= p {
        return PREFIX.starts_with(s);
    }
    if !s.starts_with(PREFIX) {
        return false;
    }
    let rest = &s[p..];
    let entity = rest.iter().take_while(|&&b| is_entity_byte(b)).count();
    if entity == rest.len() {
        return entity <= ENTITY_MAX;
    }
    if !(ENTITY_MIN..=ENTITY_MAX).contains(&entity) || rest[entity] != b'_' {
        return false;
    }
    let tag = &rest[entity + 1..];
    tag.len() < TAG_LEN && tag.iter().all(|&b| is_tag_byte(b))
}

/// The length of the longest suffix of `s` that could still grow into a placeholder:
/// the bytes a streaming filter must hold back at the end of a fragment (0 when the
/// fragment cannot end inside a placeholder, which is almost always).
pub fn partial_suffix_len(s: &[u8]) -> usize {
    let window = s.len().min(MAX_LEN - 1);
    let tail = &s[s.len() - window..];
    // Candidates start at a `C`; try the longest first.
    for (i, _) in tail.iter().enumerate().filter(|(_, &b)| b == b'C') {
        if is_partial(&tail[i..]) {
            return window - i;
        }
    }
    0
}

/// What kind of value a rule finds, as the placeholder's entity word: the model sees
/// "a phone number", "a key". Derived from the rule id (and category for rules this
/// table does not know, such as a user's own), so a new rule needs no extra setting.
pub fn entity_for(rule_id: &str, category: Category) -> &'static str {
    let id = rule_id.to_ascii_lowercase();
    let has = |w: &str| id.contains(w);
    match category {
        Category::Pii => {
            if has("mobile") || has("phone") || has("tel") {
                "PHONE"
            } else if has("email") || has("mail") {
                "EMAIL"
            } else if has("passport") {
                "PASSPORT"
            } else if has("card") {
                "CARD"
            } else if has("iban") || has("account") {
                "IBAN"
            } else if has("ssn") {
                "SSN"
            } else if has("id") {
                "IDNUM"
            } else {
                "PII"
            }
        }
        Category::Credential => {
            if has("private-key") || has("privkey") {
                "PRIVKEY"
            } else if has("webhook") {
                "WEBHOOK"
            } else if has("password") || has("passwd") {
                "PASSWORD"
            } else if has("token") || has("jwt") || has("pat") {
                "TOKEN"
            } else {
                "KEY"
            }
        }
    }
}

/// Identifies whose values a placeholder belongs to: the authenticated proxy user in
/// gateway mode, otherwise the client's address. A response is only ever restored with
/// values of its own request's scope.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn user(name: &str) -> Scope {
        Scope(format!("user:{name}"))
    }

    pub fn client(addr: std::net::IpAddr) -> Scope {
        Scope(format!("client:{addr}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({})", self.0)
    }
}

/// The instance key placeholders are derived from: 32 bytes, shared by every instance
/// of a fleet so they all issue the same placeholder for the same value and scope.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: the key is used for nothing else.
const SCOPE_LABEL: &[u8] = b"clawguard pseudonym scope v1\0";

impl PseudonymKey {
    pub fn new(bytes: [u8; 32]) -> PseudonymKey {
        PseudonymKey(bytes)
    }

    /// A fresh random key (placeholders then change when the process restarts).
    pub fn random() -> PseudonymKey {
        PseudonymKey(rand::random())
    }

    /// The key of one scope: `HMAC(key, label ‖ scope)`.
    pub fn scope_key(&self, scope: &Scope) -> ScopeKey {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("any key length");
        mac.update(SCOPE_LABEL);
        mac.update(scope.0.as_bytes());
        let derived = mac.finalize().into_bytes();
        ScopeKey(<HmacSha256 as KeyInit>::new_from_slice(&derived).expect("any key length"))
    }
}

/// A keyed MAC ready for one scope's values (cloned per value: no key schedule redone).
#[derive(Clone)]
pub struct ScopeKey(HmacSha256);

impl fmt::Debug for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopeKey(..)")
    }
}

impl ScopeKey {
    /// The placeholder of `value` as an `entity`: `CG_<entity>_<tag>`, where tag is the
    /// first 64 bits of `HMAC(scope key, entity ‖ 0 ‖ value)` written as 13 base-26
    /// letters (the top bits; 61 bits survive).
    ///
    /// # Panics
    /// When `entity` does not match the grammar (a bug: entities come from
    /// [`entity_for`]).
    pub fn placeholder(&self, entity: &str, value: &[u8]) -> String {
        assert!(
            (ENTITY_MIN..=ENTITY_MAX).contains(&entity.len()) && entity.bytes().all(is_entity_byte),
            "entity word {entity:?} outside the placeholder grammar"
        );
        let mut mac = self.0.clone();
        mac.update(entity.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let bits = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        let mut out = String::with_capacity(PREFIX.len() + entity.len() + 1 + TAG_LEN);
        out.push_str("CG_");
        out.push_str(entity);
        out.push('_');
        // Base 26, most significant letter first: letters only, so no digit run exists
        // for a digit-triggered rule to look at. A division loop over one u64 is all
        // this needs, so no encoding crate is pulled in.
        let mut tag = [b'a'; TAG_LEN];
        let mut rest = bits;
        for slot in tag.iter_mut().rev() {
            *slot = b'a' + (rest % 26) as u8;
            rest /= 26;
        }
        out.push_str(std::str::from_utf8(&tag).expect("ASCII letters"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ScopeKey {
        PseudonymKey::new([7; 32]).scope_key(&Scope::client("127.0.0.1".parse().unwrap()))
    }

    #[test]
    fn shape_of_a_derived_placeholder() {
        let p = key().placeholder("PHONE", b"13800138000");
        assert!(p.starts_with("CG_PHONE_"), "{p}");
        assert_eq!(p.len(), "CG_PHONE_".len() + TAG_LEN);
        assert!(looks_like_placeholder(p.as_bytes()), "{p}");
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }

    #[test]
    fn deterministic_per_scope_and_distinct_across_scopes() {
        let k = PseudonymKey::new([7; 32]);
        let a = k.scope_key(&Scope::user("alice"));
        let b = k.scope_key(&Scope::user("bob"));
        let v = b"11010519491231002X";
        assert_eq!(a.placeholder("IDNUM", v), a.placeholder("IDNUM", v));
        assert_ne!(a.placeholder("IDNUM", v), b.placeholder("IDNUM", v));
        // Another key (another deployment): unrelated placeholders.
        let other = PseudonymKey::new([8; 32]).scope_key(&Scope::user("alice"));
        assert_ne!(a.placeholder("IDNUM", v), other.placeholder("IDNUM", v));
        // Entity and value both count.
        assert_ne!(a.placeholder("IDNUM", v), a.placeholder("CARD", v));
        assert_ne!(
            a.placeholder("PHONE", b"13800138000"),
            a.placeholder("PHONE", b"13800138001")
        );
        // A scope for a user and one for an address never meet.
        assert_ne!(
            k.scope_key(&Scope::user("127.0.0.1")).placeholder("KEY", v),
            k.scope_key(&Scope::client("127.0.0.1".parse().unwrap()))
                .placeholder("KEY", v)
        );
    }

    #[test]
    fn recogniser_exact_grammar() {
        for ok in [
            "CG_PHONE_qvtxamkbkazep",
            "CG_ID_aaaaaaaaaaaaa",
            "CG_ABCDEFGHIJKL_zzzzzzzzzzzzz",
        ] {
            assert!(looks_like_placeholder(ok.as_bytes()), "{ok}");
            assert_eq!(match_at(ok.as_bytes()), Some(ok.len()));
        }
        for bad in [
            "",
            "CG_",
            "CG_PHONE_",
            "CG_PHONE_qvtxamkbkaze",   // tag too short
            "CG_PHONE_qvtxamkbkazepa", // trailing byte
            "CG_P_qvtxamkbkazep",      // entity too short
            "CG_ABCDEFGHIJKLM_qvtxamkbkazep",
            "CG_Phone_qvtxamkbkazep",
            "CG_PHONE_QVTXAMKBKAZEP", // upper-case tag
            "CG_PHONE_qvtxamkbkaze2", // digits are not tag letters
            "CG_PHONE_qvtxamkbkaze_",
            "cg_PHONE_qvtxamkbkazep",
            " CG_PHONE_qvtxamkbkazep",
            "CG__qvtxamkbkazep",
            "CG_PHONE-qvtxamkbkazep",
            "CG_PH0NE_qvtxamkbkazep",
        ] {
            assert!(!looks_like_placeholder(bad.as_bytes()), "{bad}");
        }
        // Followed by more text, the placeholder is the fixed-length prefix.
        assert_eq!(match_at(b"CG_PHONE_qvtxamkbkazepXYZ"), Some(22));
        assert_eq!(match_at(b"CG_PHONE_qvtxamkbkazepxyz"), Some(22));
    }

    #[test]
    fn finds_every_placeholder_in_text() {
        let a = "CG_PHONE_qvtxamkbkazep";
        let b = "CG_KEY_hvrqsonfjeuwx";
        let text = format!("call {a}, key={b}; CG_NOPE CG_ CG_{a}x");
        let found: Vec<&str> = find_placeholders(text.as_bytes())
            .map(|r| &text[r])
            .collect();
        assert_eq!(found, [a, b, a]);
    }

    #[test]
    fn partial_suffixes() {
        for (s, n) in [
            ("hello", 0),
            ("hello C", 1),
            ("hello CG", 2),
            ("hello CG_", 3),
            ("hello CG_PHONE", 8),
            ("hello CG_PHONE_", 9),
            ("hello CG_PHONE_qvtxamkbkaze", 21),
            ("hello CG_PHONE_qvtxamkbkazep", 0), // complete: nothing to wait for
            ("hello CG_phone", 0),
            ("hello CG_P_", 0),
            ("CC", 1),
            ("CG_ABCDEFGHIJKLM", 0),
            ("CG_CG_", 6), // entity `CG`: still a prefix
        ] {
            assert_eq!(partial_suffix_len(s.as_bytes()), n, "{s}");
        }
    }

    /// Every proper prefix of a placeholder is partial and held back whole; nothing
    /// longer than a placeholder is ever held.
    #[test]
    fn every_prefix_of_a_placeholder_is_partial() {
        let p = key().placeholder("PASSWORD", b"hunter2");
        for i in 1..p.len() {
            let s = format!("some text {}", &p[..i]);
            assert_eq!(partial_suffix_len(s.as_bytes()), i, "{s}");
        }
        let s = format!("x {p}");
        assert_eq!(partial_suffix_len(s.as_bytes()), 0);
    }

    /// Against a brute-force definition, on random text dense in grammar bytes.
    #[test]
    fn partial_suffix_matches_brute_force() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(10);
        let alphabet = b"CG_PHONEabcxyz C2";
        let real = key().placeholder("PHONE", b"13800138000");
        for _ in 0..20_000 {
            let mut s: Vec<u8> = (0..rng.random_range(0..40))
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if rng.random_bool(0.3) {
                s.extend_from_slice(&real.as_bytes()[..rng.random_range(0..real.len())]);
            }
            // The longest suffix that some completion turns into a placeholder.
            let brute = (1..=s.len().min(MAX_LEN - 1))
                .rev()
                .find(|&n| {
                    let tail = &s[s.len() - n..];
                    let mut t = tail.to_vec();
                    // Complete it the only ways the grammar allows.
                    if t.len() < PREFIX.len() {
                        return PREFIX.starts_with(&t);
                    }
                    let ent = t[3..].iter().take_while(|b| b.is_ascii_uppercase()).count();
                    if 3 + ent == t.len() {
                        while t.len() < 3 + ENTITY_MIN {
                            t.push(b'X');
                        }
                        t.push(b'_');
                    }
                    while !looks_like_placeholder(&t) && t.len() < MAX_LEN {
                        t.push(b'a');
                    }
                    looks_like_placeholder(&t) && t.len() > tail.len()
                })
                .unwrap_or(0);
            assert_eq!(
                partial_suffix_len(&s),
                brute,
                "{:?}",
                String::from_utf8_lossy(&s)
            );
        }
    }

    #[test]
    fn entity_words() {
        use Category::*;
        for (id, cat, want) in [
            ("cn-mobile", Pii, "PHONE"),
            ("phone-intl", Pii, "PHONE"),
            ("phone-national", Pii, "PHONE"),
            ("cn-resident-id", Pii, "IDNUM"),
            ("hk-id", Pii, "IDNUM"),
            ("tw-id", Pii, "IDNUM"),
            ("cn-passport", Pii, "PASSPORT"),
            ("payment-card", Pii, "CARD"),
            ("cn-bank-card", Pii, "CARD"),
            ("email", Pii, "EMAIL"),
            ("iban", Pii, "IBAN"),
            ("us-ssn", Pii, "SSN"),
            ("aws-access-key-id", Credential, "KEY"),
            ("azure-storage-account-key", Credential, "KEY"),
            ("github-token", Credential, "TOKEN"),
            ("github-fine-grained-pat", Credential, "TOKEN"),
            ("jwt", Credential, "TOKEN"),
            ("private-key", Credential, "PRIVKEY"),
            ("dingtalk-webhook", Credential, "WEBHOOK"),
            ("password-assignment", Credential, "PASSWORD"),
            ("url-password", Credential, "PASSWORD"),
            ("my-own-rule", Pii, "PII"),
        ] {
            let e = entity_for(id, cat);
            assert_eq!(e, want, "{id}");
            // Every entity word fits the grammar.
            assert!(e.len() >= ENTITY_MIN && e.len() <= ENTITY_MAX);
            assert!(e.bytes().all(is_entity_byte));
        }
    }
}
