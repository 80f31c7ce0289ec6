//! A minimal origin for load tests: answers every request with a small JSON body after
//! reading the request body. `cargo run --release --example bench_origin -- 127.0.0.1:18080`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".into());
    let l = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("bench origin on {}", l.local_addr().unwrap());
    loop {
        let (s, _) = l.accept().await.expect("accept");
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                    b"{\"ok\":true}",
                ))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}
