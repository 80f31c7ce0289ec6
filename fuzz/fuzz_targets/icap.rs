//! ICAP REQMOD requests (RFC 3507) as the ICAP service reads them: the ICAP head, its
//! `Encapsulated` offsets, the encapsulated HTTP head and the chunked body (with
//! `ieof`). Properties: no panic on any bytes, and a body written by `write_chunk` reads
//! back unchanged.
#![no_main]

use clawguard::icap::wire::{
    parse_chunk_size, parse_encapsulated, parse_head, parse_http_head, write_chunk,
    ChunkedReader,
};
use libfuzzer_sys::fuzz_target;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Run a future over an in-memory reader: `&[u8]` never returns `Pending`.
fn ready<T>(f: impl Future<Output = T>) -> T {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-memory reads never wait"),
    }
}

/// Every piece of a chunked body, or `None` at the first error.
fn read_chunked(mut r: &[u8]) -> Option<Vec<u8>> {
    let mut reader = ChunkedReader::new();
    let mut out = Vec::new();
    while let Some(piece) = ready(reader.next(&mut r)).ok()? {
        out.extend_from_slice(&piece);
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some(end) = memchr_crlf2(data) else {
        let _ = parse_chunk_size(data);
        let _ = read_chunked(data);
        return;
    };
    let (icap, rest) = data.split_at(end);
    let Ok(head) = parse_head(icap) else {
        return;
    };
    let _ = head.service();
    let _ = (head.allows_204(), head.preview(), head.wants_close());
    let Some(enc) = head.header("encapsulated").and_then(|v| parse_encapsulated(v).ok())
    else {
        return;
    };
    let (http, body) = rest.split_at(enc.req_hdr_len.min(rest.len()));
    if enc.req_hdr_len > 0 {
        let _ = parse_http_head(http);
    }
    if enc.has_body {
        let _ = read_chunked(body);
        // Whatever the body bytes are, written as chunks they read back unchanged.
        let mut wire = Vec::new();
        for piece in body.chunks(7) {
            write_chunk(&mut wire, piece);
        }
        wire.extend_from_slice(b"0; ieof\r\n\r\n");
        assert_eq!(read_chunked(&wire).as_deref(), Some(body));
    }
});

/// End of the ICAP head (after its empty line).
fn memchr_crlf2(data: &[u8]) -> Option<usize> {
    data.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}
