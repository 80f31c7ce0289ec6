//! The interception CA and the per-host leaf certificates it signs.
//!
//! The CA is an ECDSA P-256 key pair stored in `ca_dir` as `clawguard-ca.pem` (0644, given
//! to clients) and `clawguard-ca.key` (0600, never leaves the machine). Every intercepted
//! host gets its own leaf with its own fresh P-256 key: the CA key only signs, it is never
//! served. Leaves live in memory only: short-lived (a day), kept in a bounded cache and
//! minted again on demand once half their life is over.

use moka::sync::Cache;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::ServerConfig;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

pub const CA_CERT_FILE: &str = "clawguard-ca.pem";
pub const CA_KEY_FILE: &str = "clawguard-ca.key";
/// Held while a first start creates the CA, so concurrent first starts create one.
const CA_LOCK_FILE: &str = ".clawguard-ca.lock";
pub const CA_COMMON_NAME: &str = "ClawGuard Local CA";

/// CA lifetime: long enough that users do not have to re-trust it every year.
const CA_VALIDITY_DAYS: i64 = 3650;
/// Leaf lifetime: one day, like OpenClaw's own egress proxy (a leaf that leaks is soon
/// useless). Back-dating an hour tolerates clients whose clock is slightly behind.
const LEAF_VALIDITY: Duration = Duration::days(1);
const LEAF_BACKDATE: Duration = Duration::hours(1);
/// A cached leaf is served for half its life, then minted again on the next request.
const LEAF_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
// Every leaf a client is handed has at least half its validity left.
const _: () = assert!(LEAF_CACHE_TTL.as_secs() * 2 <= LEAF_VALIDITY.whole_seconds() as u64);
/// Hosts with a cached leaf at most (least recently used go first).
const LEAF_CACHE_CAPACITY: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a CA already exists in {0} (use --force to replace it; clients trusting the old one must re-trust)")]
    Exists(PathBuf),
    #[error("no CA in {0} (create one with `clawguard ca init`)")]
    Missing(PathBuf),
    #[error("{0}: incomplete CA (one of {CA_CERT_FILE} / {CA_KEY_FILE} is missing)")]
    Incomplete(PathBuf),
    #[error(
        "{dir}: the CA key does not match the CA certificate or cannot sign leaves: {message}"
    )]
    Mismatch { dir: PathBuf, message: String },
    #[error("`{0}` is not a host name or IP address a certificate can be issued for")]
    InvalidHost(String),
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The loaded CA plus the cache of leaves it minted.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    cert_path: PathBuf,
    /// Leaves by host. Concurrent first requests for a host wait for a single mint
    /// (moka's `try_get_with`); a failed mint caches nothing, so the next request retries.
    leaves: Cache<String, Arc<Leaf>>,
    minted: AtomicUsize,
}

/// One host's leaf: the rustls configuration that presents it, and the certificate and
/// key themselves (for a TLS stack other than rustls: see `proxy::connect`).
pub struct Leaf {
    pub server_config: Arc<ServerConfig>,
    /// DER, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_path", &self.cert_path)
            .field("leaves", &self.leaves.entry_count())
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `data` to `path` via a temporary file created with `mode` from the start (so a key
/// is never readable by others, not even for an instant), then rename it into place.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Lower-case, strip IPv6 brackets and a trailing dot: the cache key and certificate name.
fn normalize_host(host: &str) -> String {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.trim_end_matches('.').to_ascii_lowercase()
}

impl CertificateAuthority {
    /// Where the CA certificate lives (the file clients must trust).
    pub fn cert_path(dir: &Path) -> PathBuf {
        dir.join(CA_CERT_FILE)
    }

    /// Create a new CA in `dir`. Refuses to replace an existing one unless `force`.
    pub fn init(dir: &Path, force: bool) -> Result<CertificateAuthority, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if !force && (cert_path.exists() || key_path.exists()) {
            return Err(TlsError::Exists(dir.to_path_buf()));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        dn.push(DnType::OrganizationName, "ClawGuard");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;

        // Key first: a crash in between leaves "incomplete", never a cert without its key.
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
        tracing::info!(path = %cert_path.display(), "created CA");
        Ok(CertificateAuthority {
            issuer: Issuer::new(params, key),
            ca_der: cert.der().clone(),
            cert_path,
            leaves: leaf_cache(LEAF_CACHE_TTL),
            minted: AtomicUsize::new(0),
        })
    }

    /// Load the CA from `dir` and check that its key signs leaves the certificate verifies.
    pub fn load(dir: &Path) -> Result<CertificateAuthority, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (false, false) => return Err(TlsError::Missing(dir.to_path_buf())),
            (true, true) => {}
            _ => return Err(TlsError::Incomplete(dir.to_path_buf())),
        }
        if let Ok(meta) = std::fs::metadata(&key_path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %key_path.display(),
                    "the CA key is readable by other users: run `chmod 600` on it");
            }
        }
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let mismatch = |message: String| TlsError::Mismatch {
            dir: dir.to_path_buf(),
            message,
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| mismatch(e.to_string()))?;
        let ca_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| mismatch(format!("{CA_CERT_FILE}: {e}")))?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| mismatch(e.to_string()))?;
        let ca = CertificateAuthority {
            issuer,
            ca_der,
            cert_path,
            leaves: leaf_cache(LEAF_CACHE_TTL),
            minted: AtomicUsize::new(0),
        };
        // A key that does not belong to the certificate would only show up as TLS failures
        // in every client; catch it here with a clear message instead.
        let (chain, _) = ca.mint("clawguard-self-check.invalid")?;
        ca.verify_leaf(&chain[0], "clawguard-self-check.invalid")
            .map_err(|e| mismatch(e.to_string()))?;
        Ok(ca)
    }

    /// Load the CA from `dir`, creating it on first use.
    pub fn load_or_create(dir: &Path) -> Result<CertificateAuthority, TlsError> {
        match CertificateAuthority::load(dir) {
            // Incomplete may be another start half-way through creating it: look again
            // under the lock, where it is the truth.
            Err(TlsError::Missing(_) | TlsError::Incomplete(_)) => {}
            other => return other,
        }
        // Two instances started at once (a fleet sharing one CA directory, a service and
        // `exec`) must not both create a CA: each would rename its files over the other's.
        // An exclusive lock on a file beside them serialises creation; whoever comes
        // second loads what the first wrote. Released when `lock` is dropped.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let lock_path = dir.join(CA_LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // rustix's flock: std's `File::lock` is newer than our MSRV.
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(&lock_path)(e.into()))?;
        match CertificateAuthority::load(dir) {
            Err(TlsError::Missing(_)) => CertificateAuthority::init(dir, false),
            other => other,
        }
    }

    /// Path of this CA's certificate file.
    pub fn path(&self) -> &Path {
        &self.cert_path
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// How many leaves this CA has minted (each host once).
    pub fn minted(&self) -> usize {
        self.minted.load(Ordering::Relaxed)
    }

    /// The rustls server configuration presenting a leaf for `host` (ALPN h2, http/1.1),
    /// minted on first use and cached.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, TlsError> {
        Ok(self.leaf(host)?.server_config.clone())
    }

    /// The leaf for `host`, minted on first use and cached.
    pub fn leaf(&self, host: &str) -> Result<Arc<Leaf>, TlsError> {
        let host = normalize_host(host);
        self.leaves
            .try_get_with_by_ref(&host, || self.new_leaf(&host))
            .map_err(|e| match Arc::try_unwrap(e) {
                Ok(e) => e,
                Err(shared) => TlsError::Rustls(rustls::Error::General(shared.to_string())),
            })
    }

    fn new_leaf(&self, host: &str) -> Result<Arc<Leaf>, TlsError> {
        let (chain, key) = self.mint(host)?;
        let key_pkcs8 = key.secret_der().to_vec();
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        self.minted.fetch_add(1, Ordering::Relaxed);
        // The host is not logged: it may hold a finding in dry-run.
        tracing::info!("minted leaf certificate");
        Ok(Arc::new(Leaf {
            server_config: Arc::new(cfg),
            chain,
            key_pkcs8,
        }))
    }

    /// Sign a leaf for `host` with a fresh key.
    fn mint(
        &self,
        host: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let params = leaf_params(host)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone()], key_der))
    }

    /// Verify `leaf` for `host` against this CA alone, as a client trusting it would.
    pub fn verify_leaf(&self, leaf: &CertificateDer<'_>, host: &str) -> Result<(), TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| TlsError::InvalidHost(host.to_string()))?;
        verifier.verify_server_cert(leaf, &[], &name, &[], UnixTime::now())?;
        Ok(())
    }
}

/// The leaf certificate for `host`: DNS or IP SAN, server auth only, bounded validity.
fn leaf_params(host: &str) -> Result<CertificateParams, TlsError> {
    let invalid = || TlsError::InvalidHost(host.to_string());
    let san = match host.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => {
            // Reject what a certificate cannot name (and keep junk out of the cache).
            rustls::pki_types::DnsName::try_from(host).map_err(|_| invalid())?;
            SanType::DnsName(host.to_string().try_into().map_err(|_| invalid())?)
        }
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // A CN is limited to 64 bytes; the SAN is what clients check anyway.
    if host.len() <= 64 {
        dn.push(DnType::CommonName, host);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = vec![san];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - LEAF_BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// Leaves by host, each dropped `ttl` after it was minted (however often it is used), so
/// the next request for that host mints a fresh one.
fn leaf_cache(ttl: std::time::Duration) -> Cache<String, Arc<Leaf>> {
    Cache::builder()
        .max_capacity(LEAF_CACHE_CAPACITY)
        .time_to_live(ttl)
        .build()
}

fn random_serial() -> rcgen::SerialNumber {
    // 16 random bytes with the top bit cleared: a positive serial, unique in practice.
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    rcgen::SerialNumber::from_slice(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_files_with_safe_modes_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("certs");
        let ca = CertificateAuthority::init(&d, false).unwrap();
        assert_eq!(ca.path(), CertificateAuthority::cert_path(&d));
        assert_eq!(mode(&d.join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&d.join(CA_CERT_FILE)) & 0o600, 0o600);
        let pem = std::fs::read_to_string(d.join(CA_KEY_FILE)).unwrap();
        assert!(pem.contains("PRIVATE KEY"));
        let before = std::fs::read(d.join(CA_CERT_FILE)).unwrap();
        assert!(matches!(
            CertificateAuthority::init(&d, false),
            Err(TlsError::Exists(_))
        ));
        assert_eq!(std::fs::read(d.join(CA_CERT_FILE)).unwrap(), before);
        CertificateAuthority::init(&d, true).unwrap();
        assert_ne!(std::fs::read(d.join(CA_CERT_FILE)).unwrap(), before);
        assert_eq!(mode(&d.join(CA_KEY_FILE)), 0o600);
    }

    #[test]
    fn concurrent_first_starts_create_one_ca() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ca");
        let ders: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| CertificateAuthority::load_or_create(&dir).unwrap()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().ca_der().to_vec())
                .collect()
        });
        assert!(
            ders.windows(2).all(|w| w[0] == w[1]),
            "more than one CA was created"
        );
    }

    #[test]
    fn load_or_create_round_trips_and_leaves_verify() {
        let dir = tempfile::tempdir().unwrap();
        let a = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let b = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert_eq!(a.ca_der(), b.ca_der());
        // A leaf minted by the reloaded CA verifies against the original certificate.
        for host in ["api.openai.com", "127.0.0.1", "[::1]", "Example.COM."] {
            let (chain, _) = b.mint(&normalize_host(host)).unwrap();
            a.verify_leaf(&chain[0], &normalize_host(host)).unwrap();
        }
        let (chain, _) = b.mint("a.example").unwrap();
        assert!(a.verify_leaf(&chain[0], "b.example").is_err());
    }

    #[test]
    fn load_rejects_missing_incomplete_and_foreign_key() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            CertificateAuthority::load(dir.path()),
            Err(TlsError::Missing(_))
        ));
        CertificateAuthority::init(dir.path(), false).unwrap();
        let other = tempfile::tempdir().unwrap();
        CertificateAuthority::init(other.path(), false).unwrap();
        std::fs::copy(other.path().join(CA_KEY_FILE), dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(matches!(
            CertificateAuthority::load(dir.path()),
            Err(TlsError::Mismatch { .. })
        ));
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(matches!(
            CertificateAuthority::load(dir.path()),
            Err(TlsError::Incomplete(_))
        ));
    }

    #[test]
    fn leaf_has_own_key_and_bounded_validity() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(dir.path(), false).unwrap();
        let (chain, key) = ca.mint("x.example").unwrap();
        let ca_key = std::fs::read_to_string(dir.path().join(CA_KEY_FILE)).unwrap();
        let ca_key = KeyPair::from_pem(&ca_key).unwrap().serialize_der();
        assert_ne!(key.secret_der(), &ca_key[..]);
        ca.verify_leaf(&chain[0], "x.example").unwrap();
        let p = leaf_params("x.example").unwrap();
        assert!(p.not_after - p.not_before <= Duration::days(2));
        assert!(p.not_after > OffsetDateTime::now_utc() + Duration::hours(12));
        assert!(p.not_before < OffsetDateTime::now_utc());
        assert!(matches!(p.is_ca, IsCa::ExplicitNoCa));
    }

    /// A cached leaf is handed out until the cache's time to live (half the leaf's
    /// validity) is over, then minted again with a new key. The real TTL is 12 h; the same
    /// cache built with a 2 s one lets the test see it pass.
    #[test]
    fn a_leaf_is_minted_again_when_its_cache_entry_expires() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateAuthority::init(dir.path(), false).unwrap();
        let ttl = std::time::Duration::from_secs(2);
        ca.leaves = leaf_cache(ttl);
        let first = ca.leaf("renew.example").unwrap();
        assert!(Arc::ptr_eq(&first, &ca.leaf("renew.example").unwrap()));
        assert_eq!(ca.minted(), 1);

        std::thread::sleep(ttl + std::time::Duration::from_millis(300));
        let renewed = ca.leaf("renew.example").unwrap();
        assert_eq!(ca.minted(), 2);
        assert!(!Arc::ptr_eq(&first, &renewed));
        assert_ne!(first.chain[0], renewed.chain[0]);
        assert_ne!(first.key_pkcs8, renewed.key_pkcs8);
        ca.verify_leaf(&renewed.chain[0], "renew.example").unwrap();
        // And the renewed one is cached in turn.
        assert!(Arc::ptr_eq(
            &renewed.server_config,
            &ca.server_config("renew.example").unwrap()
        ));
        assert_eq!(ca.minted(), 2);
    }

    #[test]
    fn invalid_hosts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(dir.path(), false).unwrap();
        assert!(ca.server_config("bad host").is_err());
        assert!(ca.server_config("").is_err());
        assert_eq!(ca.minted(), 0);
    }

    #[test]
    fn concurrent_first_requests_mint_once() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(CertificateAuthority::init(dir.path(), false).unwrap());
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (ca, barrier) = (ca.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    ca.server_config("same.example").unwrap()
                })
            })
            .collect();
        let cfgs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(ca.minted(), 1);
        assert!(cfgs.iter().all(|c| Arc::ptr_eq(c, &cfgs[0])));
        assert_eq!(
            cfgs[0].alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        ca.server_config("other.example").unwrap();
        assert_eq!(ca.minted(), 2);
    }
}
