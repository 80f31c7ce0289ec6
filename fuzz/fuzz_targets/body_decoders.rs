//! Content-Encoding decoders (gzip, deflate, br, zstd, stacked) under a size cap: never
//! more than the cap comes out, whatever the input claims.
#![no_main]

use clawguard::detect::extract::{decode_body, ExtractError};
use libfuzzer_sys::fuzz_target;

const CODINGS: &[&str] = &["gzip", "deflate", "br", "zstd", "gzip, zstd", "identity", "br, gzip"];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_static(CODINGS[sel as usize % CODINGS.len()]),
    );
    let cap = 1 << 20;
    match decode_body(&headers, body, cap) {
        Ok(out) => assert!(out.len() <= cap),
        Err(ExtractError::TooLarge | ExtractError::Undecodable(_) | ExtractError::LayerBudget) => {}
    }
});
