//! Header rules every hop applies: hop-by-hop fields removed (RFC 9110 §7.6.1), split
//! cookies joined (RFC 9113 §8.2.3), and what makes a request a WebSocket handshake
//! (RFC 6455 §4.1).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};

/// A well-formed client WebSocket handshake: `GET` over HTTP/1.1 with `Upgrade:
/// websocket`, `Connection: upgrade`, version 13 and a key of 16 base64-encoded bytes.
pub fn is_websocket_handshake(method: &Method, version: Version, h: &HeaderMap) -> bool {
    use base64::Engine as _;
    method == Method::GET
        && version == Version::HTTP_11
        && is_websocket(h)
        && tokens(h, &header::CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade"))
        && h.get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13")
        && h.get(header::SEC_WEBSOCKET_KEY).is_some_and(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k.as_bytes())
                .is_ok_and(|d| d.len() == 16)
        })
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2): base64(SHA-1(key + GUID)).
pub fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let mut sha = sha1::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

fn tokens<'a>(h: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

pub fn is_websocket(h: &HeaderMap) -> bool {
    h.get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

/// RFC 9110 §7.6.1: headers for this hop only. With `keep_upgrade` (a WebSocket handshake)
/// `Upgrade` and `Connection: upgrade` survive so the origin can switch protocols.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if !(keep_upgrade && name == header::UPGRADE) {
            h.remove(name);
        }
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("proxy-connection"),
        HeaderName::from_static("keep-alive"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        h.remove(name);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 origins expect one
/// (RFC 9113 §8.2.3).
pub fn join_cookies(h: &mut HeaderMap) {
    let all: Vec<&[u8]> = h
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if all.len() < 2 {
        return;
    }
    let joined = all.join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("proxy-connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-authenticate", "Basic"),
            ("authorization", "Bearer x"),
            ("content-type", "application/json"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["authorization", "content-type"]);
    }

    #[test]
    fn websocket_handshake_keeps_upgrade() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("sec-websocket-key", HeaderValue::from_static("k"));
        assert!(is_websocket(&h));
        assert!(!is_websocket_handshake(&Method::GET, Version::HTTP_11, &h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["sec-websocket-key"], "k");
    }

    #[test]
    fn handshake_and_accept() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("sec-websocket-version", HeaderValue::from_static("13"));
        h.insert(
            "sec-websocket-key",
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert!(is_websocket_handshake(&Method::GET, Version::HTTP_11, &h));
        assert!(!is_websocket_handshake(&Method::POST, Version::HTTP_11, &h));
        // RFC 6455 §1.3's example.
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        h.insert("sec-websocket-key", HeaderValue::from_static("c2hvcnQ="));
        assert!(!is_websocket_handshake(&Method::GET, Version::HTTP_11, &h));
    }

    #[test]
    fn cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }
}
