//! The upstream phase and the pooled client towards origins: rustls (ring) trusting
//! system roots, Mozilla roots and the configured extra CAs; ALPN offers h2 and
//! http/1.1; idle pooled connections are closed after `upstream_idle_secs`.

use super::body::ProxyBody;
use super::ctx::Route;
use super::refusal::{self, Refusal, UpstreamKind};
use super::resolve::PinnedResolver;
use super::state::{Live, ProxyState};
use super::ProxyError;
use crate::config::Config;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector<PinnedResolver>>, ProxyBody>;

/// Origins are trusted if any of these vouch for them.
pub fn root_store(extra: &[PathBuf]) -> Result<RootCertStore, ProxyError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, errors = native.errors.len(), "system roots");
    for path in extra {
        let path = crate::config::expand_home(path);
        let bad = |message: String| ProxyError::UpstreamCa {
            path: path.clone(),
            message,
        };
        let mut n = 0;
        for cert in CertificateDer::pem_file_iter(&path).map_err(|e| bad(e.to_string()))? {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad("no certificates in file".into()));
        }
    }
    Ok(roots)
}

/// `h2`: offer HTTP/2 via ALPN. WebSocket upgrades need an HTTP/1.1 connection, so they use
/// a client built without it.
/// `resolver` only hands out addresses the egress policy checked (see [`super::resolve`]).
pub fn client(
    cfg: &Config,
    roots: Arc<RootCertStore>,
    h2: bool,
    resolver: PinnedResolver,
) -> UpstreamClient {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(cfg.connect_timeout_secs)));
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = if h2 {
        builder.enable_all_versions().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    };
    Client::builder(TokioExecutor::new())
        // Without a timer the pool never notices idle connections.
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(cfg.upstream_idle_secs))
        .build(connector)
}

/// What goes to the origin: everything the earlier phases decided.
pub(crate) struct Outgoing {
    pub method: Method,
    pub path_and_query: Option<http::uri::PathAndQuery>,
    pub headers: HeaderMap,
    pub body: ProxyBody,
    /// A WebSocket handshake: sent on an HTTP/1.1-only connection.
    pub websocket: bool,
}

/// The upstream phase: send the request to the route's checked addresses, with the
/// route's authority in the URI and `Host` (never one the client wrote).
pub(crate) async fn send(
    state: &ProxyState,
    live: &Live,
    route: &Route,
    out: Outgoing,
) -> Result<Response<Incoming>, Refusal> {
    let uri = route
        .target
        .uri(out.path_and_query.as_ref())
        .ok_or(Refusal::BadRequest("unusable request target"))?;
    let mut headers = out.headers;
    if let Ok(host) = HeaderValue::from_str(&route.target.authority()) {
        headers.insert(header::HOST, host);
    }
    let mut up = Request::new(out.body);
    *up.method_mut() = out.method;
    *up.uri_mut() = uri;
    *up.headers_mut() = headers;
    // The pool speaks whatever ALPN picked; an HTTP/2 version here would be refused on an
    // HTTP/1.1 connection.
    *up.version_mut() = Version::HTTP_11;
    let client = if out.websocket {
        &state.ws_client
    } else {
        &state.client
    };
    // The client's resolver hands out exactly these checked addresses (no second lookup).
    state.pins.pin(&route.target.host, &route.addrs);
    let timeout = Duration::from_secs(live.cfg.upstream_timeout_secs);
    match tokio::time::timeout(timeout, client.request(up)).await {
        Err(_) => Err(Refusal::Upstream {
            kind: UpstreamKind::Timeout,
            cause: "response timeout",
            message: format!("{} did not answer in time", route.dest),
        }),
        Ok(Err(e)) => Err(refusal::upstream(&e, &route.dest)),
        Ok(Ok(r)) => Ok(r),
    }
}
