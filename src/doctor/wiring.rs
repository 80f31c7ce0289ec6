//! Wiring: OpenClaw is configured to use a proxy (`proxy.proxyUrl` or
//! `OPENCLAW_PROXY_URL`), routes loopback through it (`proxy.loopbackMode`), and Node,
//! curl and Python in its environment trust ClawGuard's CA, which is not about to expire.
//! Whether that proxy really is ClawGuard and really refuses is [`super::live`]'s part.

use super::machine::{owner_mode, Machine};
use super::openclaw::OpenClaw;
use super::privacy::show;
use super::{guide, Check, Options, Status};
use crate::ca_trust;
use crate::tls::CertificateAuthority;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A CA with less time left than this is reported (re-trusting takes planning).
const EXPIRY_WARN_DAYS: i64 = 90;

/// The proxy OpenClaw is configured with, and where that setting comes from.
#[derive(Debug, Clone)]
pub struct ProxySetting {
    pub url: String,
    pub source: String,
}

/// `--proxy`, else `proxy.proxyUrl`, else `OPENCLAW_PROXY_URL` (OpenClaw's precedence);
/// `None` when none is set or `proxy.enabled` is false.
pub fn proxy_setting(m: &Machine, oc: &OpenClaw, opts: &Options) -> Option<ProxySetting> {
    if let Some(url) = &opts.proxy {
        return Some(ProxySetting {
            url: url.clone(),
            source: "--proxy".into(),
        });
    }
    if oc.get("/proxy/enabled") == Some(&Value::Bool(false)) {
        return None;
    }
    if let Some(url) = oc.get("/proxy/proxyUrl").and_then(Value::as_str) {
        return Some(ProxySetting {
            url: url.to_string(),
            source: format!("proxy.proxyUrl in {}", show(m, &oc.config_path)),
        });
    }
    oc.env(m, "OPENCLAW_PROXY_URL")
        .map(|(url, from)| ProxySetting {
            url,
            source: format!("OPENCLAW_PROXY_URL in {from}"),
        })
}

pub fn checks(m: &Machine, oc: &OpenClaw, opts: &Options) -> Vec<Check> {
    let proxy = proxy_setting(m, oc, opts);
    let mut out = vec![proxy_configured(m, oc, proxy.as_ref()), loopback_mode(oc)];
    let ca = ca_check(&opts.ca_dir);
    let der = ca.1;
    out.push(ca.0);
    out.extend(trust_checks(m, oc, der.as_ref(), proxy.is_some()));
    out
}

fn proxy_configured(m: &Machine, oc: &OpenClaw, proxy: Option<&ProxySetting>) -> Check {
    let id = "wiring.proxy-configured";
    let c = Check::new(id, guide::CONTROL_EGRESS, Status::Pass);
    if let Some(p) = proxy {
        return c.evidence(format!("{} = {}", p.source, mask_userinfo(&p.url)));
    }
    let mut c = Check::new(id, guide::CONTROL_EGRESS, Status::Fail);
    c = if oc.get("/proxy/enabled") == Some(&Value::Bool(false)) {
        c.evidence(format!(
            "proxy.enabled is false in {}: OpenClaw ignores its proxy URL",
            show(m, &oc.config_path)
        ))
    } else {
        c.evidence(format!(
            "neither proxy.proxyUrl in {} nor OPENCLAW_PROXY_URL (environment, ~/.openclaw/.env) is set",
            show(m, &oc.config_path)
        ))
    };
    if let Some(e) = &oc.config_error {
        c = c.evidence(format!("the config could not be read: {e}"));
    }
    c.fix("start ClawGuard (`clawguard run`, listening on 127.0.0.1:8383) and `openclaw config set proxy.proxyUrl http://127.0.0.1:8383` (`openclaw config set proxy.enabled true` if it was turned off), then restart OpenClaw; or start OpenClaw with `clawguard exec -- openclaw …`, which sets OPENCLAW_PROXY_URL")
}

fn loopback_mode(oc: &OpenClaw) -> Check {
    let id = "wiring.loopback-mode";
    let mode = oc.get("/proxy/loopbackMode").and_then(Value::as_str);
    match mode {
        Some("proxy") | Some("block") => Check::new(id, guide::CONTROL_EGRESS, Status::Pass)
            .evidence(format!(
                "proxy.loopbackMode is {}: loopback destinations do not bypass the proxy",
                mode.unwrap_or_default()
            )),
        _ => Check::new(id, guide::CONTROL_EGRESS, Status::Warn)
            .evidence(format!(
                "proxy.loopbackMode is {}: OpenClaw connects to loopback destinations directly, uninspected (a local relay such as an SSH tunnel or a local model gateway is a way around ClawGuard)",
                mode.unwrap_or("unset (gateway-only)")
            ))
            .fix("if no local runtime service needs direct loopback access: `openclaw config set proxy.loopbackMode block` (or `proxy`, which ClawGuard then refuses), and restart OpenClaw"),
    }
}

/// The CA itself: present, key private, not expiring. Returns its DER for the trust checks.
fn ca_check(ca_dir: &Path) -> (Check, Option<CertificateDer<'static>>) {
    let id = "wiring.ca";
    let cert = CertificateAuthority::cert_path(ca_dir);
    let Ok(der) = ca_trust::ca_der(&cert) else {
        return (
            Check::new(id, guide::CONTROL_EGRESS, Status::Fail)
                .evidence(format!("no CA certificate at {}", cert.display()))
                .fix(format!(
                    "`clawguard ca init --ca-dir {}` (the first `clawguard run` creates it too); if ClawGuard runs as another user, point the doctor at its CA with --ca-dir",
                    ca_dir.display()
                )),
            None,
        );
    };
    let mut c = Check::new(id, guide::CONTROL_EGRESS, Status::Pass)
        .evidence(format!("CA certificate: {}", cert.display()));
    let mut fixes = Vec::new();
    let key = ca_dir.join(crate::tls::CA_KEY_FILE);
    if let Some((_, mode)) = owner_mode(&key) {
        if mode & 0o077 != 0 {
            c.status = Status::Fail;
            c = c.evidence(format!(
                "the CA key {} is mode {mode:03o}: anyone who can read it can intercept your TLS",
                key.display()
            ));
            fixes.push(format!("chmod 600 {}", key.display()));
        }
    }
    match days_left(&der) {
        Some(d) if d < 0 => {
            c.status = Status::Fail;
            c = c.evidence(format!("the CA expired {} day(s) ago", -d));
            fixes.push(format!(
                "`clawguard ca init --force --ca-dir {}`, then trust the new CA (`clawguard ca trust`) and restart ClawGuard and OpenClaw",
                ca_dir.display()
            ));
        }
        Some(d) if d < EXPIRY_WARN_DAYS => {
            c.status = c.status.max(Status::Warn);
            c = c.evidence(format!("the CA expires in {d} day(s)"));
            fixes.push(format!(
                "plan a new CA: `clawguard ca init --force --ca-dir {}`, then `clawguard ca trust` and restart ClawGuard and OpenClaw",
                ca_dir.display()
            ));
        }
        Some(d) => c = c.evidence(format!("the CA is valid for {d} more day(s)")),
        None => {
            c.status = c.status.max(Status::Warn);
            c = c.evidence("the CA certificate's validity could not be read");
        }
    }
    if !fixes.is_empty() {
        c = c.fix(fixes.join("; "));
    }
    (c, Some(der))
}

/// Days until the certificate's notAfter (negative: expired).
pub fn days_left(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some((not_after - now).div_euclid(86_400))
}

/// The system bundles on this machine (under its root).
fn system_bundle(m: &Machine) -> Option<PathBuf> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .map(|p| m.sys_path(p))
    .find(|p| p.is_file())
}

/// Which file a client reads its roots from, and whether it holds ClawGuard's CA.
struct Roots {
    file: Option<PathBuf>,
    source: String,
    trusted: bool,
}

fn roots_from(
    m: &Machine,
    oc: &OpenClaw,
    der: &CertificateDer<'_>,
    vars: &[&str],
    system: bool,
) -> Roots {
    for v in vars {
        if let Some((file, from)) = oc.env(m, v) {
            let file = PathBuf::from(file);
            return Roots {
                trusted: ca_trust::bundle_contains(&file, der),
                source: format!("{v}={} (from {from})", file.display()),
                file: Some(file),
            };
        }
    }
    match system.then(|| system_bundle(m)).flatten() {
        Some(b) => Roots {
            trusted: ca_trust::bundle_contains(&b, der),
            source: format!("the system bundle {}", b.display()),
            file: Some(b),
        },
        None => Roots {
            file: None,
            source: if system {
                "no system bundle found".into()
            } else {
                "its built-in roots".into()
            },
            trusted: false,
        },
    }
}

fn trust_checks(
    m: &Machine,
    oc: &OpenClaw,
    der: Option<&CertificateDer<'static>>,
    proxied: bool,
) -> Vec<Check> {
    let clients: [(&'static str, &str, &[&str], bool, &str); 3] = [
        (
            "wiring.trust-node",
            "Node.js (OpenClaw)",
            &["NODE_EXTRA_CA_CERTS"],
            false,
            "set NODE_EXTRA_CA_CERTS to ClawGuard's CA where OpenClaw starts: `echo NODE_EXTRA_CA_CERTS=$(clawguard ca path) >> ~/.openclaw/.env` and restart OpenClaw (or start it with `clawguard exec`, which sets it)",
        ),
        (
            "wiring.trust-curl",
            "curl",
            &["CURL_CA_BUNDLE", "SSL_CERT_FILE"],
            true,
            "`sudo clawguard ca trust` (system store), or `eval \"$(clawguard ca env)\"` in the environment OpenClaw's tools run in",
        ),
        (
            "wiring.trust-python",
            "Python (requests)",
            &["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"],
            false,
            "`eval \"$(clawguard ca env)\"` (sets REQUESTS_CA_BUNDLE and SSL_CERT_FILE to a bundle of the system roots plus ClawGuard's CA) in the environment OpenClaw's tools run in",
        ),
    ];
    clients
        .into_iter()
        .map(|(id, name, vars, system, fix)| {
            let Some(der) = der else {
                return Check::new(id, guide::CONTROL_EGRESS, Status::Skip)
                    .evidence("no ClawGuard CA to look for (see wiring.ca)");
            };
            let mut roots = roots_from(m, oc, der, vars, system);
            // Node 23.8+ reads the system store when asked to.
            if id == "wiring.trust-node"
                && roots.file.is_none()
                && oc.env(m, "NODE_USE_SYSTEM_CA").is_some_and(|(v, _)| v == "1")
            {
                roots = roots_from(m, oc, der, &[], true);
            }
            if roots.trusted {
                return Check::new(id, guide::CONTROL_EGRESS, Status::Pass).evidence(format!(
                    "{name} reads {}: it holds ClawGuard's CA",
                    roots.source
                ));
            }
            // Without trust, OpenClaw's HTTPS through ClawGuard fails closed (broken, not
            // leaking): a fail for Node when a proxy is configured, a warning otherwise.
            let status = if id == "wiring.trust-node" && proxied {
                Status::Fail
            } else {
                Status::Warn
            };
            Check::new(id, guide::CONTROL_EGRESS, status)
                .evidence(format!(
                    "{name} reads {}: it does not hold ClawGuard's CA, so {name} refuses intercepted HTTPS",
                    roots.source
                ))
                .fix(fix.to_string())
        })
        .collect()
}

/// A proxy URL for evidence: any `user:password@` replaced.
pub fn mask_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***@{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}
