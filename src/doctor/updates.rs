//! Updates (guide, personal users): the installed OpenClaw against the newest version the
//! npm registry reports (`GET <registry>/openclaw/latest`), said plainly when the registry
//! cannot be reached.

use super::openclaw::OpenClaw;
use super::{guide, Check, Options, Status};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::cmp::Ordering;
use std::time::Duration;

/// The public npm registry (npm's own default).
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org";

/// A registry answer larger than this is not a version document.
const MAX_ANSWER: usize = 1 << 20;

pub fn checks(oc: &OpenClaw, opts: &Options) -> Vec<Check> {
    let id = "updates.openclaw-version";
    let Some(install) = &oc.install else {
        return vec![Check::new(id, guide::UPDATE, Status::Skip)
            .evidence("no `openclaw` command with a readable package.json on PATH")];
    };
    let installed = format!(
        "installed: openclaw {} ({})",
        install.version,
        install.bin.display()
    );
    let Some(registry) = &opts.registry else {
        return vec![Check::new(id, guide::UPDATE, Status::Skip)
            .evidence(installed)
            .evidence("the registry was not asked (--offline)")];
    };
    match latest(registry, opts.timeout) {
        Err(why) => vec![Check::new(id, guide::UPDATE, Status::Warn)
            .evidence(installed)
            .evidence(format!(
                "could not ask the npm registry {registry} for the newest version: {why}"
            ))
            .fix("compare by hand where the registry is reachable: `npm view openclaw version`")],
        Ok(newest) => match compare(&install.version, &newest) {
            Ordering::Less => vec![Check::new(id, guide::UPDATE, Status::Fail)
                .evidence(installed)
                .evidence(format!("newest on {registry}: {newest}"))
                .fix(format!(
                    "`npm install -g openclaw@{newest}` (as the user that installed it), then restart the gateway: `openclaw gateway restart`"
                ))],
            _ => vec![Check::new(id, guide::UPDATE, Status::Pass)
                .evidence(installed)
                .evidence(format!("newest on {registry}: {newest}"))],
        },
    }
}

/// The `version` of `<registry>/openclaw/latest`.
pub fn latest(registry: &str, timeout: Duration) -> Result<String, String> {
    let url = format!("{}/openclaw/latest", registry.trim_end_matches('/'));
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let (_, _) =
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build::<_, Empty<bytes::Bytes>>(https);
        let req = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("clawguard-doctor/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let fetch = async {
            let resp = client.request(req).await.map_err(|e| {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(inner) = src {
                    s = format!("{s}: {inner}");
                    src = inner.source();
                }
                s
            })?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("{url} answered {status}"));
            }
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON ({e})"))?;
            v["version"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{url}: no version in the answer"))
        };
        tokio::time::timeout(timeout, fetch)
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
    })
}

/// Compare versions like OpenClaw's (`2026.9.6`, `2026.10.1-beta.2`): numeric parts in
/// order; a pre-release sorts before its release.
pub fn compare(a: &str, b: &str) -> Ordering {
    let split = |v: &str| {
        let v = v.trim().trim_start_matches('v');
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c.to_string(), Some(p.to_string())),
            None => (v.to_string(), None),
        };
        let nums: Vec<u64> = core.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        (nums, pre)
    };
    let (an, ap) = split(a);
    let (bn, bp) = split(b);
    let len = an.len().max(bn.len());
    for i in 0..len {
        let (x, y) = (an.get(i).unwrap_or(&0), bn.get(i).unwrap_or(&0));
        match x.cmp(y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    match (ap, bp) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(&y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare("2026.9.6", "2026.10.1"), Ordering::Less);
        assert_eq!(compare("2026.9.6", "2026.9.6"), Ordering::Equal);
        assert_eq!(compare("2026.9.6-beta.1", "2026.9.6"), Ordering::Less);
        assert_eq!(compare("v2026.11.0", "2026.9.6"), Ordering::Greater);
    }
}
