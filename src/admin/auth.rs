//! Who may use the admin listener, and which requests may change state.
//!
//! Credentials: `Authorization: Bearer TOKEN` (the token file's contents), `Basic` with
//! user `token` and the token as password (what a browser prompt can send), or `Basic`
//! with a `[users]` name listed in `admin_users` and its password. Required whenever
//! any of them is configured, and configuration refuses a non-loopback admin listener
//! without one (see [`crate::config::Config::validate`]). `/healthz` and `/readyz` stay
//! open: load balancers probe them.
//!
//! CSRF: a browser holding Basic credentials (or any page reaching a loopback listener)
//! could be made to POST cross-site. State-changing requests therefore need the
//! `X-ClawGuard-Admin` header, which a cross-origin page cannot add without a CORS
//! preflight this listener never grants, and are refused when `Origin` names another
//! host or `Sec-Fetch-Site` says cross-site.

use crate::proxy::Live;
use base64::Engine as _;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The header state-changing admin requests must carry.
pub const CSRF_HEADER: &str = "x-clawguard-admin";
/// The Basic user name that means "the password is the admin token".
pub const TOKEN_USER: &str = "token";

#[derive(Debug, thiserror::Error)]
pub enum AdminAuthError {
    #[error("admin token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
}

/// The token, fixed at start (held as its digest).
pub struct AdminAuth {
    token_digest: Option<[u8; 32]>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or wrong credentials: 401 with a Basic challenge.
    Unauthenticated,
    /// A state-changing request without the CSRF header, or from another origin: 403.
    CrossSite,
}

impl AdminAuth {
    /// Read `admin_token_file` (at least 16 bytes after trimming whitespace).
    pub fn load(token_file: Option<&Path>) -> Result<AdminAuth, AdminAuthError> {
        let token_digest = match token_file {
            None => None,
            Some(p) => {
                let err = |reason: String| AdminAuthError::TokenFile {
                    path: p.display().to_string(),
                    reason,
                };
                let raw = std::fs::read(p).map_err(|e| err(e.to_string()))?;
                let token = raw.trim_ascii();
                if token.len() < 16 {
                    return Err(err("a token must be at least 16 bytes".into()));
                }
                Some(Sha256::digest(token).into())
            }
        };
        Ok(AdminAuth { token_digest })
    }

    /// Whether any credential is configured (then every non-health request needs one).
    pub fn required(&self, live: &Live) -> bool {
        self.token_digest.is_some() || !live.cfg.admin_users.is_empty()
    }

    fn token_ok(&self, presented: &[u8]) -> bool {
        let Some(want) = &self.token_digest else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(presented).into();
        // Constant-time over the digests.
        got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// The authenticated principal (`token` or the admin user's name); `Ok(None)` when
    /// no credentials are configured (loopback only). Argon2 runs here for user
    /// credentials: call it off the async workers.
    pub fn authenticate(
        &self,
        live: &Live,
        headers: &HeaderMap,
    ) -> Result<Option<String>, Refusal> {
        if !self.required(live) {
            return Ok(None);
        }
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(Refusal::Unauthenticated)?
            .as_bytes();
        let (scheme, rest) = value
            .iter()
            .position(|&b| b == b' ')
            .map(|i| (&value[..i], value[i + 1..].trim_ascii()))
            .ok_or(Refusal::Unauthenticated)?;
        if scheme.eq_ignore_ascii_case(b"bearer") {
            return if self.token_ok(rest) {
                Ok(Some(TOKEN_USER.into()))
            } else {
                Err(Refusal::Unauthenticated)
            };
        }
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return Err(Refusal::Unauthenticated);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Refusal::Unauthenticated)?;
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(Refusal::Unauthenticated)?;
        let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
        if name == TOKEN_USER.as_bytes() && self.token_ok(password) {
            return Ok(Some(TOKEN_USER.into()));
        }
        let user = live
            .auth
            .as_ref()
            .and_then(|a| a.check(Some(value)))
            .ok_or(Refusal::Unauthenticated)?;
        if live.cfg.admin_users.contains(&user) {
            Ok(Some(user))
        } else {
            Err(Refusal::Unauthenticated)
        }
    }
}

/// A state-changing request must carry [`CSRF_HEADER`] and come from this origin.
pub fn same_origin_write(headers: &HeaderMap) -> Result<(), Refusal> {
    if !headers.contains_key(CSRF_HEADER) {
        return Err(Refusal::CrossSite);
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(Refusal::CrossSite);
        }
    }
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let host = headers
            .get(http::header::HOST)
            .map(|h| h.as_bytes())
            .unwrap_or_default();
        let origin_host = origin
            .as_bytes()
            .splitn(2, |&b| b == b':')
            .nth(1)
            .and_then(|r| r.strip_prefix(b"//"))
            .unwrap_or_default();
        if !origin_host.eq_ignore_ascii_case(host) {
            return Err(Refusal::CrossSite);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn csrf_needs_the_header_and_the_same_origin() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:9383"));
        assert_eq!(same_origin_write(&h), Err(Refusal::CrossSite));
        h.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert_eq!(same_origin_write(&h), Ok(()));
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:9383"));
        assert_eq!(same_origin_write(&h), Ok(()));
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert_eq!(same_origin_write(&h), Err(Refusal::CrossSite));
        h.remove("origin");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert_eq!(same_origin_write(&h), Err(Refusal::CrossSite));
    }

    #[test]
    fn token_is_checked_in_both_header_forms() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "s3cret-admin-token-0123\n").unwrap();
        let auth = AdminAuth::load(Some(&f)).unwrap();
        assert!(auth.token_ok(b"s3cret-admin-token-0123"));
        assert!(!auth.token_ok(b"s3cret-admin-token-0124"));
        std::fs::write(&f, "short").unwrap();
        assert!(AdminAuth::load(Some(&f)).is_err());
    }
}
