//! The route phase: which destination a request goes to, and whether it may.
//!
//! In order: the host name is inspected by the detection engine *before* any DNS lookup
//! (a secret in a host label must not leave as the proxy's own query); the egress policy
//! resolves the name once and checks every address; the proxy's own listeners are never
//! a destination; inside a tunnel, every authority the request names must be the
//! tunnel's (the `Host` sent upstream is always the one policy decided on).

use super::ctx::{normalize_host, RequestCtx, Route, Target};
use super::hygiene;
use super::pipeline::Stop;
use super::refusal::Refusal;
use super::state::ProxyState;
use crate::detect::engine::{RequestInfo, Verdict};
use bytes::Bytes;
use http::{header, HeaderMap, Request};
use std::sync::Arc;

/// A destination approved by policy, and whether it is a `bypass` candidate.
pub(crate) struct Approved {
    pub route: Route,
    pub bypass: bool,
}

/// The route of a request that is not a CONNECT.
pub(crate) async fn request<B>(
    state: &ProxyState,
    ctx: &mut RequestCtx,
    req: &Request<B>,
) -> Result<Route, Stop> {
    if let Some(tunnel) = &ctx.conn.tunnel {
        check_tunnel_authority(tunnel, req)?;
        return Ok(tunnel.clone());
    }
    let Some(target) = Target::from_absolute(req.uri()) else {
        return Err(Refusal::BadRequest(
            "this is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port",
        )
        .into());
    };
    // RFC 9112 §3.2.2: a proxy ignores the `Host` of an absolute-form request; the
    // upstream phase writes the target's authority in its place.
    let written = req.uri().host().unwrap_or_default().to_string();
    Ok(destination(state, ctx, target, &written).await?.route)
}

/// Approve `target` (`written_host`: the host as the client spelled it, for inspection).
pub(crate) async fn destination(
    state: &ProxyState,
    ctx: &mut RequestCtx,
    target: Target,
    written_host: &str,
) -> Result<Approved, Stop> {
    let dest_host = inspect_host(state, ctx, &target, written_host)?;
    let dest = if dest_host.contains(':') {
        format!("[{dest_host}]:{}", target.port)
    } else {
        format!("{dest_host}:{}", target.port)
    };
    ctx.dest = dest.clone();
    let live = ctx.live.clone();
    let allowed = live
        .cfg
        .egress
        .resolve_and_check(&target.host, target.port)
        .await
        .map_err(|d| {
            // Denials name the destination; never with a label that holds a finding.
            Refusal::Egress {
                cause: d.cause(),
                message: d.to_string().replace(&target.host, &dest_host),
            }
        })?;
    if let Some(own) = allowed.addrs.iter().find(|a| state.is_own_listener(a)) {
        return Err(Refusal::Egress {
            cause: "own listener",
            message: format!("destination {dest} ({own}) is this proxy's own listener"),
        }
        .into());
    }
    let bypass = allowed.bypass || live.bypassed(&target.host);
    Ok(Approved {
        route: Route {
            target,
            addrs: Arc::from(allowed.addrs),
            floor: allowed.findings,
            dest,
        },
        bypass,
    })
}

/// Inspect the host name before anything resolves it. Returns the host as logs may
/// show it (labels holding a finding masked); a block answers the client right here.
fn inspect_host(
    state: &ProxyState,
    ctx: &mut RequestCtx,
    target: &Target,
    written_host: &str,
) -> Result<String, Stop> {
    // An IP literal causes no lookup, and digits alone are no host name.
    if crate::egress::parse_ip_host(&target.host).is_some() {
        return Ok(target.host.clone());
    }
    let live = ctx.live.clone();
    let engine = &live.engine;
    let written = normalize_host_keep_case(written_host);
    // DNS names are case-insensitive and clients lower-case them: a single-case secret
    // (an AWS key id, hex) survives as its lower-case spelling. Judge the name as
    // written and, if that finds nothing, upper-cased.
    let upper = written.to_ascii_uppercase();
    let spellings: &[&str] = if upper == written {
        &[&written]
    } else {
        &[&written, &upper]
    };
    let headers = HeaderMap::new();
    let mut found = None;
    for spelling in spellings {
        // The engine reads the path of a URL, not its authority: hand the name over as a
        // path so every rule sees it.
        let Ok(uri) = format!("http://host-name.invalid/{spelling}").parse::<http::Uri>() else {
            continue;
        };
        let info = RequestInfo {
            method: &ctx.method,
            uri: &uri,
            host: &target.host,
            port: target.port,
            headers: &headers,
            client: ctx.conn.client,
            request_id: &ctx.id,
            floor: None,
        };
        let (verdict, report) = engine.inspect_report(&info, &Bytes::new());
        if !report.counts.is_empty() || !report.findings.is_empty() {
            found = Some((verdict, report, *spelling));
            break;
        }
    }
    let Some((verdict, report, spelling)) = found else {
        return Ok(target.host.clone());
    };
    ctx.record_inspection(&report, &state.metrics);
    let masked = hygiene::mask_host(engine.scanner(), spelling)
        .map(|m| m.to_ascii_lowercase())
        .unwrap_or_else(|| crate::detect::scan::preview(written.as_bytes()));
    ctx.dest = format!("{masked}:{}", target.port);
    match verdict {
        Verdict::Respond(r) => {
            tracing::warn!(dest = %masked, "host name holds a finding: refused before any DNS lookup");
            Err(Stop::Answer(Box::new(r.map(super::body::full))))
        }
        Verdict::Pass { would } => {
            ctx.note_would(would);
            Ok(masked)
        }
        // Nothing in a host name can be rewritten; the engine never asks to.
        Verdict::Rewrite { .. } => Err(Refusal::Internal("host name cannot be rewritten").into()),
    }
}

/// Without brackets and trailing dot, case kept (rules may care about case).
fn normalize_host_keep_case(host: &str) -> String {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.trim_end_matches('.').to_string()
}

/// Inside a tunnel the destination was decided at CONNECT. A request that names
/// another authority (`Host`, `:authority`, an absolute URI) is domain fronting: the
/// origin's front would deliver it to a host policy never saw. Refused with 421.
fn check_tunnel_authority<B>(tunnel: &Route, req: &Request<B>) -> Result<(), Refusal> {
    let t = &tunnel.target;
    let misdirected = || {
        Refusal::Misdirected(format!(
            "this tunnel goes to {}; the request names another host (refused: the Host must be the tunnel's)",
            tunnel.dest
        ))
    };
    if let Some(a) = req.uri().authority() {
        if !t.matches_authority(a.as_str()) {
            return Err(misdirected());
        }
    }
    for v in req.headers().get_all(header::HOST) {
        match v.to_str() {
            Ok(h) if t.matches_authority(h.trim()) => {}
            _ => return Err(misdirected()),
        }
    }
    Ok(())
}

/// `host[:port]` of a CONNECT request target, validated.
pub(crate) fn connect_target(uri: &http::Uri) -> Result<(Target, String), Refusal> {
    let bad = Refusal::BadRequest("CONNECT needs host:port");
    let authority = uri
        .authority()
        .ok_or(Refusal::BadRequest("CONNECT needs host:port"))?;
    let port = authority.port_u16().ok_or(bad)?;
    let host = normalize_host(authority.host());
    if host.is_empty() {
        return Err(Refusal::BadRequest("CONNECT needs host:port"));
    }
    Ok((
        Target {
            https: false, // decided by the tunnel's first byte
            host,
            port,
        },
        authority.host().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn tunnel() -> Route {
        Route {
            target: Target {
                https: true,
                host: "api.example.com".into(),
                port: 443,
            },
            addrs: Arc::from(vec!["93.184.216.34:443".parse::<SocketAddr>().unwrap()]),
            floor: None,
            dest: "api.example.com:443".into(),
        }
    }

    fn req(uri: &str, host: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn fronting_inside_a_tunnel_is_misdirected() {
        let t = tunnel();
        assert!(check_tunnel_authority(&t, &req("/v1", Some("api.example.com"))).is_ok());
        assert!(check_tunnel_authority(&t, &req("/v1", Some("API.example.com:443"))).is_ok());
        assert!(check_tunnel_authority(&t, &req("/v1", None)).is_ok());
        for (uri, host) in [
            ("/v1", Some("evil.example")),
            ("/v1", Some("api.example.com:8443")),
            ("https://evil.example/v1", None),
            ("https://evil.example/v1", Some("api.example.com")),
        ] {
            let e = check_tunnel_authority(&t, &req(uri, host)).unwrap_err();
            assert_eq!(e.status(), 421, "{uri} {host:?}");
            assert!(!e.to_string().contains("evil"), "{e}");
        }
    }

    #[test]
    fn connect_targets() {
        let (t, _) = connect_target(&"Example.COM:443".parse().unwrap()).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", 443));
        let (t, _) = connect_target(&"[::1]:8443".parse().unwrap()).unwrap();
        assert_eq!(t.host, "::1");
        assert!(connect_target(&"example.com".parse().unwrap()).is_err());
    }
}
