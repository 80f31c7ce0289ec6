//! A CA of its own and a leaf it signed, for a test origin's TLS (or a self-signed
//! certificate). Shared by the tests'
//! recording origin (`tests/common/mod.rs`) and the benches' origin
//! (`benches/common/mod.rs` includes this file by path).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};

pub struct OriginCert {
    /// The CA's PEM, written as `origin-ca.pem` in the given directory (what the proxy
    /// gets as `--upstream-ca`).
    pub ca_pem: PathBuf,
    pub ca_der: CertificateDer<'static>,
    /// Presents the leaf; no ALPN set (the caller chooses).
    pub server: rustls::ServerConfig,
}

/// A CA named `ca_name` and a leaf for `names` (DNS names or IP addresses) signed by it.
pub fn origin_cert(dir: &Path, ca_name: &str, names: &[&str]) -> OriginCert {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_pem = dir.join("origin-ca.pem");
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    let ca_der = ca_cert.der().clone();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    OriginCert {
        ca_pem,
        ca_der,
        server,
    }
}

/// A self-signed certificate for `names` (a CA certificate when `is_ca`: what a
/// misconfigured origin may serve as its own), written as PEM to `pem`; the server
/// configuration presenting it (no ALPN).
pub fn self_signed(pem: &Path, names: &[&str], is_ca: bool) -> rustls::ServerConfig {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(pem, cert.pem()).unwrap();
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap()
}
