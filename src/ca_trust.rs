//! Trusting ClawGuard's CA: where its certificate is (`ca path`), installing it into and
//! removing it from the system trust store (`ca trust` / `ca untrust`), and the
//! variables for clients that read their own roots instead of the system store.
//!
//! The system store is changed only through the distribution's own tool
//! (`update-ca-certificates`, `update-ca-trust`, p11-kit's `trust`): each keeps its
//! generated bundles consistent, which editing a bundle file by hand would not.

use crate::tls::{CertificateAuthority, TlsError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "no CA in {0} yet: `clawguard ca init` creates one (the first `clawguard run` or \
         `clawguard exec` does too)"
    )]
    NoCa(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not a PEM certificate")]
    NotPem(PathBuf),
    #[error(
        "writing {path} needs root ({source}): run `sudo clawguard ca trust --ca-dir {ca_dir}` \
         (sudo changes HOME, so name the CA directory), or trust the CA per client with \
         `clawguard ca env`"
    )]
    NeedsRoot {
        path: PathBuf,
        ca_dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no system trust store tool found (looked for update-ca-certificates, update-ca-trust \
         and p11-kit's trust; on Debian/Ubuntu `apt-get install ca-certificates`): trust the CA \
         per client with `clawguard ca env`"
    )]
    NoStore,
    #[error(transparent)]
    Ca(#[from] TlsError),
    #[error("writing the client bundle next to {0}: {1}")]
    Bundle(PathBuf, std::io::Error),
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool {
        command: String,
        status: String,
        stderr: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The CA certificate in `ca_dir`, or a clear error when there is none yet.
pub fn ca_cert_path(ca_dir: &Path) -> Result<PathBuf, TrustError> {
    let path = CertificateAuthority::cert_path(ca_dir);
    if path.is_file() {
        Ok(path)
    } else {
        Err(TrustError::NoCa(ca_dir.to_path_buf()))
    }
}

/// Every certificate in a PEM file, DER-encoded (an unreadable file gives none).
pub fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .map(|it| it.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// The CA certificate's DER (the first certificate of its PEM file).
pub fn ca_der(cert: &Path) -> Result<CertificateDer<'static>, TrustError> {
    if !cert.is_file() {
        return Err(TrustError::Io {
            path: cert.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    pem_certs(cert)
        .into_iter()
        .next()
        .ok_or_else(|| TrustError::NotPem(cert.to_path_buf()))
}

/// Whether the PEM bundle at `bundle` contains `der`.
pub fn bundle_contains(bundle: &Path, der: &CertificateDer<'_>) -> bool {
    pem_certs(bundle).iter().any(|c| c.as_ref() == der.as_ref())
}

/// How this machine maintains its trust store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Debian, Ubuntu, Alpine: `*.crt` files in /usr/local/share/ca-certificates.
    UpdateCaCertificates,
    /// Fedora, RHEL, CentOS, Amazon Linux: anchors in /etc/pki/ca-trust/source/anchors.
    UpdateCaTrust,
    /// Arch and other p11-kit systems: `trust anchor --store` / `--remove`.
    P11Kit,
}

/// The system trust store: where an anchor goes, the tool that rebuilds the bundles, and
/// the bundle OpenSSL-based clients read.
#[derive(Debug, Clone)]
pub struct SystemStore {
    pub kind: StoreKind,
    pub anchor_dir: PathBuf,
    pub bundle: PathBuf,
}

/// Bundles OpenSSL-based clients read, per family (the same list `clawguard exec` reads).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system bundle file, if any.
pub fn system_bundle() -> Option<PathBuf> {
    SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .any(|d| d.join(program).is_file())
}

impl SystemStore {
    /// The store this machine uses, by the tool that is installed.
    pub fn detect() -> Result<SystemStore, TrustError> {
        let bundle = |default: &str| system_bundle().unwrap_or_else(|| default.into());
        if on_path("update-ca-certificates") {
            Ok(SystemStore {
                kind: StoreKind::UpdateCaCertificates,
                anchor_dir: "/usr/local/share/ca-certificates".into(),
                bundle: bundle("/etc/ssl/certs/ca-certificates.crt"),
            })
        } else if on_path("update-ca-trust") {
            Ok(SystemStore {
                kind: StoreKind::UpdateCaTrust,
                anchor_dir: "/etc/pki/ca-trust/source/anchors".into(),
                bundle: bundle("/etc/pki/tls/certs/ca-bundle.crt"),
            })
        } else if on_path("trust") {
            Ok(SystemStore {
                kind: StoreKind::P11Kit,
                anchor_dir: "/etc/ca-certificates/trust-source/anchors".into(),
                bundle: bundle("/etc/ssl/certs/ca-certificates.crt"),
            })
        } else {
            Err(TrustError::NoStore)
        }
    }

    /// The anchor file for `der`: named after the certificate's fingerprint, so two
    /// ClawGuard CAs (two users, two CA directories) never overwrite each other and
    /// `untrust` removes exactly the one it is asked to.
    pub fn anchor_path(&self, der: &CertificateDer<'_>) -> PathBuf {
        let fp = hex::encode(&Sha256::digest(der.as_ref())[..8]);
        // update-ca-certificates only picks up `*.crt`.
        let ext = match self.kind {
            StoreKind::UpdateCaCertificates => "crt",
            StoreKind::UpdateCaTrust | StoreKind::P11Kit => "pem",
        };
        self.anchor_dir.join(format!("clawguard-{fp}.{ext}"))
    }

    /// The command that maintains this store.
    pub fn tool(&self) -> &'static str {
        match self.kind {
            StoreKind::UpdateCaCertificates => "update-ca-certificates",
            StoreKind::UpdateCaTrust => "update-ca-trust",
            StoreKind::P11Kit => "trust anchor",
        }
    }

    /// Whether the system bundle already holds the CA.
    pub fn trusts(&self, der: &CertificateDer<'_>) -> bool {
        bundle_contains(&self.bundle, der)
    }

    /// Add the CA certificate at `cert` (from `ca_dir`) to the system store.
    pub fn install(&self, cert: &Path, ca_dir: &Path) -> Result<PathBuf, TrustError> {
        let der = ca_der(cert)?;
        let anchor = self.anchor_path(&der);
        let pem = std::fs::read(cert).map_err(io_err(cert))?;
        match self.kind {
            StoreKind::P11Kit => run(Command::new("trust").args(["anchor", "--store"]).arg(cert))?,
            StoreKind::UpdateCaCertificates | StoreKind::UpdateCaTrust => {
                std::fs::create_dir_all(&self.anchor_dir)
                    .and_then(|()| std::fs::write(&anchor, &pem))
                    .map_err(|source| needs_root(&anchor, ca_dir, source))?;
                self.refresh()?;
            }
        }
        Ok(anchor)
    }

    /// Remove the CA certificate (by its DER) from the system store. Returns whether it
    /// was installed.
    pub fn remove(
        &self,
        der: &CertificateDer<'_>,
        cert: &Path,
        ca_dir: &Path,
    ) -> Result<bool, TrustError> {
        let anchor = self.anchor_path(der);
        match self.kind {
            StoreKind::P11Kit => {
                let was = self.trusts(der);
                if was {
                    run(Command::new("trust").args(["anchor", "--remove"]).arg(cert))?;
                }
                Ok(was)
            }
            StoreKind::UpdateCaCertificates | StoreKind::UpdateCaTrust => {
                let was = match std::fs::remove_file(&anchor) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                    Err(source) => return Err(needs_root(&anchor, ca_dir, source)),
                };
                if was || self.trusts(der) {
                    if self.kind == StoreKind::UpdateCaCertificates {
                        remove_debian_links(&anchor)?;
                    }
                    self.refresh()?;
                }
                Ok(was)
            }
        }
    }

    fn refresh(&self) -> Result<(), TrustError> {
        match self.kind {
            StoreKind::UpdateCaCertificates => run(&mut Command::new("update-ca-certificates")),
            StoreKind::UpdateCaTrust => run(Command::new("update-ca-trust").arg("extract")),
            StoreKind::P11Kit => Ok(()),
        }
    }
}

/// Where `update-ca-certificates` keeps its links and the bundle.
const DEBIAN_CERTS_DIR: &str = "/etc/ssl/certs";

/// Remove the links `update-ca-certificates` made for `anchor`: `NAME.pem` pointing at
/// it and the `HASH.N` link(s) pointing at that. It does not remove them itself when a
/// local certificate disappears (only `--fresh` would, and `--fresh` rebuilds every link
/// in the directory, turning other people's plain files into links); so untrust removes
/// exactly these two and lets a plain run rebuild the bundle.
fn remove_debian_links(anchor: &Path) -> Result<(), TrustError> {
    let dir = Path::new(DEBIAN_CERTS_DIR);
    let Some(stem) = anchor.file_stem() else {
        return Ok(());
    };
    let mut name = stem.to_os_string();
    name.push(".pem");
    let link = dir.join(&name);
    if std::fs::read_link(&link).is_ok_and(|t| t == anchor) {
        let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if std::fs::read_link(&p).is_ok_and(|t| t.as_os_str() == name) {
                std::fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        std::fs::remove_file(&link).map_err(io_err(&link))?;
    }
    Ok(())
}

fn needs_root(path: &Path, ca_dir: &Path, source: std::io::Error) -> TrustError {
    if source.kind() == std::io::ErrorKind::PermissionDenied {
        TrustError::NeedsRoot {
            path: path.to_path_buf(),
            ca_dir: ca_dir.to_path_buf(),
            source,
        }
    } else {
        TrustError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), TrustError> {
    let command = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| TrustError::Tool {
        command: command.clone(),
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TrustError::Tool {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// What `ca trust` did.
pub struct Trusted {
    pub store: SystemStore,
    /// The CA certificate that is now trusted.
    pub ca_cert: PathBuf,
    /// The anchor file written (or the store's own copy, for p11-kit).
    pub anchor: PathBuf,
    /// No CA existed: `trust` created one first.
    pub created_ca: bool,
}

/// Install the CA of `ca_dir` (creating it if there is none yet) into the system store.
pub fn trust(ca_dir: &Path) -> Result<Trusted, TrustError> {
    let store = SystemStore::detect()?;
    let created_ca = ca_cert_path(ca_dir).is_err();
    let ca = CertificateAuthority::load_or_create(ca_dir)?;
    let ca_cert = ca.path().to_path_buf();
    let anchor = store.install(&ca_cert, ca_dir)?;
    Ok(Trusted {
        store,
        ca_cert,
        anchor,
        created_ca,
    })
}

/// What `ca untrust` did.
pub struct Untrusted {
    pub store: SystemStore,
    pub anchor: PathBuf,
    /// The CA was installed (false: nothing to remove).
    pub was_trusted: bool,
}

/// Remove the CA of `ca_dir` from the system store.
pub fn untrust(ca_dir: &Path) -> Result<Untrusted, TrustError> {
    let store = SystemStore::detect()?;
    let cert = ca_cert_path(ca_dir)?;
    let der = ca_der(&cert)?;
    let was_trusted = store.remove(&der, &cert, ca_dir)?;
    Ok(Untrusted {
        anchor: store.anchor_path(&der),
        store,
        was_trusted,
    })
}

/// The bundle `clawguard exec` gives clients whose CA variable replaces their roots
/// (system roots plus ClawGuard's CA, `clawguard-bundle.pem` beside the CA), written now.
pub fn client_bundle(ca_cert: &Path) -> Result<PathBuf, TrustError> {
    crate::exec::trust_bundle(ca_cert).map_err(|e| TrustError::Bundle(ca_cert.to_path_buf(), e))
}

/// One client that keeps its own roots, and the variable that points it at ours.
pub struct ClientVar {
    pub name: &'static str,
    /// The value is ClawGuard's CA alone (added to the client's roots) rather than a
    /// bundle that replaces them.
    pub additive: bool,
    pub clients: &'static str,
}

/// Variables for clients that do not read the system store, in the order `exec` sets
/// them. Node adds `NODE_EXTRA_CA_CERTS` to its built-in roots; the others *replace*
/// their roots, so they get a bundle of the system roots plus the CA.
pub const CLIENT_VARS: &[ClientVar] = &[
    ClientVar {
        name: "NODE_EXTRA_CA_CERTS",
        additive: true,
        clients: "Node.js and OpenClaw (read at start only)",
    },
    ClientVar {
        name: "SSL_CERT_FILE",
        additive: false,
        clients: "OpenSSL-based tools, Python's ssl and httpx, Rust's native-certs",
    },
    ClientVar {
        name: "REQUESTS_CA_BUNDLE",
        additive: false,
        clients: "Python requests (certifi's roots otherwise)",
    },
    ClientVar {
        name: "CURL_CA_BUNDLE",
        additive: false,
        clients: "curl",
    },
    ClientVar {
        name: "GIT_SSL_CAINFO",
        additive: false,
        clients: "git",
    },
];

/// `export NAME=VALUE` lines (with a comment naming the clients) for [`CLIENT_VARS`]:
/// `ca` is ClawGuard's CA, `bundle` the system roots plus the CA.
pub fn export_lines(ca: &Path, bundle: &Path) -> String {
    let mut out = String::new();
    for v in CLIENT_VARS {
        let value = if v.additive { ca } else { bundle };
        out.push_str(&format!(
            "export {}={}   # {}\n",
            v.name,
            shell_quote(&value.display().to_string()),
            v.clients
        ));
    }
    out
}

/// Single-quote for POSIX shells unless the value is plainly safe.
fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ca_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ca_cert_path(dir.path()).unwrap_err().to_string();
        assert!(err.contains("clawguard ca init"), "{err}");
    }

    #[test]
    fn exports_point_node_at_the_ca_and_the_rest_at_the_bundle() {
        let lines = export_lines(Path::new("/c/ca.pem"), Path::new("/c/my bundle.pem"));
        assert!(
            lines.contains("export NODE_EXTRA_CA_CERTS=/c/ca.pem "),
            "{lines}"
        );
        assert!(
            lines.contains("export SSL_CERT_FILE='/c/my bundle.pem' "),
            "{lines}"
        );
        assert!(lines.contains("export REQUESTS_CA_BUNDLE='/c/my bundle.pem' "));
        assert!(lines.contains("export CURL_CA_BUNDLE="));
    }

    #[test]
    fn anchor_names_differ_per_ca_and_end_in_crt_for_debian() {
        let store = SystemStore {
            kind: StoreKind::UpdateCaCertificates,
            anchor_dir: "/usr/local/share/ca-certificates".into(),
            bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
        };
        let a = store.anchor_path(&CertificateDer::from(vec![1u8, 2, 3]));
        let b = store.anchor_path(&CertificateDer::from(vec![4u8, 5, 6]));
        assert_ne!(a, b);
        assert!(a.to_str().unwrap().ends_with(".crt"));
    }
}
