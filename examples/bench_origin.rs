//! A minimal origin for load tests: answers every request with a small JSON body after
//! reading the request body.
//!
//! `cargo run --release --example bench_origin -- 127.0.0.1:18080 [127.0.0.1:18443 CERT.pem]`
//! The optional second address serves HTTPS (h1/h2) with a fresh self-signed certificate
//! for `localhost`, written to CERT.pem (give it to the proxy as `--upstream-ca`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::Arc;

async fn serve<IO>(io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
        let _ = req.into_body().collect().await;
        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
            b"{\"ok\":true}",
        ))))
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:18080".into());
    if let (Some(tls_addr), Some(cert_path)) = (args.get(2), args.get(3)) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("self-signed");
        std::fs::write(cert_path, cert.pem()).expect("write cert");
        let mut cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("tls config");
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = tokio::net::TcpListener::bind(tls_addr)
            .await
            .expect("bind tls");
        eprintln!("bench origin (TLS) on {}", l.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.expect("accept");
                let _ = s.set_nodelay(true);
                let a = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(s) = a.accept(s).await {
                        serve(s).await;
                    }
                });
            }
        });
    }
    let l = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("bench origin on {}", l.local_addr().unwrap());
    loop {
        let (s, _) = l.accept().await.expect("accept");
        let _ = s.set_nodelay(true);
        tokio::spawn(serve(s));
    }
}
