//! TLS for clients whose SNI rustls refuses.
//!
//! Some clients put `host:port` (or another non-host-name) in the ClientHello's
//! `server_name`: the `hey` load generator does, for example. rustls 0.23 rejects such a
//! ClientHello with `illegal_parameter` before any callback can see it (its
//! `server/hs.rs`), while OpenSSL, and so mitmproxy, accept it. Because the leaf names the
//! CONNECT authority anyway (where the client's requests really go), the SNI tells us
//! nothing we need: for those connections only, we peek the first TLS record, and if its
//! SNI is one rustls would refuse, terminate TLS with OpenSSL presenting the same leaf.
//! HTTP/1.1 only on this path (ALPN), served by the same pipeline.

use crate::tls::Leaf;
use openssl::ssl::{AlpnError, Ssl, SslAcceptor, SslMethod};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Largest TLS record we buffer while peeking (RFC 8446 §5.1: 2^14 plus expansion).
const MAX_RECORD: usize = 16 * 1024 + 2048;

#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("TLS handshake: {0}")]
    Handshake(#[from] openssl::ssl::Error),
    #[error("the leaf has no certificate")]
    NoLeaf,
}

/// Read the rest of the TLS record whose first byte is already in `buf`. A record longer
/// than [`MAX_RECORD`] is read only that far (the rest stays in the stream).
pub(crate) async fn read_record<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let have = buf.len();
    if have < 5 {
        buf.resize(5, 0);
        r.read_exact(&mut buf[have..]).await?;
    }
    let len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    let want = 5 + len.min(MAX_RECORD);
    let start = buf.len();
    if want > start {
        buf.resize(want, 0);
        r.read_exact(&mut buf[start..]).await?;
    }
    Ok(())
}

/// Whether the ClientHello in this first record carries an SNI that rustls refuses.
/// `false` when there is no SNI or the record cannot be parsed (rustls then decides).
pub(crate) fn needs_fallback(record: &[u8]) -> bool {
    client_hello_sni(record).is_some_and(|n| !sni_acceptable(&n))
}

/// The host name in a ClientHello's `server_name` extension (RFC 6066 §3), if any.
pub fn client_hello_sni(record: &[u8]) -> Option<Vec<u8>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (h, t) = (b.get(..n)?, b.get(n..)?);
        *b = t;
        Some(h)
    }
    fn len16(b: &mut &[u8]) -> Option<usize> {
        let v = take(b, 2)?;
        Some(u16::from_be_bytes([v[0], v[1]]) as usize)
    }
    let mut b = record.get(5..)?; // record header
    if *take(&mut b, 1)?.first()? != 1 {
        return None; // not a ClientHello
    }
    take(&mut b, 3)?; // handshake length
    take(&mut b, 2 + 32)?; // version, random
    let sid = *take(&mut b, 1)?.first()? as usize;
    take(&mut b, sid)?;
    let cs = len16(&mut b)?;
    take(&mut b, cs)?;
    let comp = *take(&mut b, 1)?.first()? as usize;
    take(&mut b, comp)?;
    let ext_len = len16(&mut b)?;
    let available = ext_len.min(b.len());
    let mut exts = take(&mut b, available)?;
    while exts.len() >= 4 {
        let ty = len16(&mut exts)?;
        let n = len16(&mut exts)?;
        let mut data = take(&mut exts, n)?;
        if ty == 0 {
            len16(&mut data)?; // list length
            while !data.is_empty() {
                let name_type = *take(&mut data, 1)?.first()?;
                let n = len16(&mut data)?;
                let name = take(&mut data, n)?;
                if name_type == 0 {
                    return Some(name.to_vec());
                }
            }
        }
    }
    None
}

/// Whether rustls takes this SNI: a DNS name, or an IP address (which it ignores).
fn sni_acceptable(name: &[u8]) -> bool {
    std::str::from_utf8(name)
        .ok()
        .and_then(|n| rustls::pki_types::ServerName::try_from(n).ok())
        .is_some()
}

/// Terminate TLS with OpenSSL, presenting `leaf`. OpenSSL accepts any SNI bytes. The
/// acceptor is built per connection: this path is rare, and a cache would be a second
/// leaf cache to keep in step with [`crate::tls`]'s.
pub(crate) async fn accept<S>(
    leaf: &Leaf,
    io: S,
) -> Result<tokio_openssl::SslStream<S>, FallbackError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    let cert = openssl::x509::X509::from_der(leaf.chain.first().ok_or(FallbackError::NoLeaf)?)?;
    b.set_certificate(&cert)?;
    for ca in leaf.chain.iter().skip(1) {
        b.add_extra_chain_cert(openssl::x509::X509::from_der(ca)?)?;
    }
    let key = openssl::pkey::PKey::private_key_from_pkcs8(&leaf.key_pkcs8)?;
    b.set_private_key(&key)?;
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x08http/1.1", client).ok_or(AlpnError::NOACK)
    });
    let acceptor = b.build();
    let mut stream = tokio_openssl::SslStream::new(Ssl::new(acceptor.context())?, io)?;
    Pin::new(&mut stream).accept().await?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record carrying `sni`.
    fn hello(sni: &[u8]) -> Vec<u8> {
        let mut name = vec![0u8];
        name.extend((sni.len() as u16).to_be_bytes());
        name.extend(sni);
        let mut ext_data = (name.len() as u16).to_be_bytes().to_vec();
        ext_data.extend(name);
        let mut exts = vec![0, 0];
        exts.extend((ext_data.len() as u16).to_be_bytes());
        exts.extend(ext_data);
        let mut body = vec![3, 3];
        body.extend([0u8; 32]); // random
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn an_sni_with_a_port_needs_the_fallback() {
        assert_eq!(
            client_hello_sni(&hello(b"127.0.0.1:18443")).as_deref(),
            Some(&b"127.0.0.1:18443"[..])
        );
        assert!(needs_fallback(&hello(b"127.0.0.1:18443")));
        assert!(needs_fallback(&hello(b"example.com:443")));
        assert!(!needs_fallback(&hello(b"example.com")));
        assert!(!needs_fallback(b"\x16\x03\x01\x00")); // truncated: rustls decides
    }
}
