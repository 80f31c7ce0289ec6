//! Body readings and every encoding layer: the first byte picks a content type, the rest
//! is the body. Every segment (readings, charsets, decompressed data, base64/hex runs,
//! percent, entities, escapes, quoted-printable, data: URLs, Unicode normalisation) maps
//! back inside the body, and the decoding budget holds.
#![no_main]

use clawguard::detect::extract::{body_view_with, Budget};
use clawguard::detect::layers;
use libfuzzer_sys::fuzz_target;

const TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=b"),
    Some("text/plain; charset=utf-16"),
    Some("application/grpc"),
    Some("application/grpc-web-text"),
    Some("text/html"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let ct = TYPES[sel as usize % TYPES.len()];
    let cap = 4 * body.len() + 4096;
    let mut budget = Budget::new(cap);
    let view = body_view_with(ct, Some("gzip"), body, &mut budget);
    let mut segs = view.segments;
    layers::expand(&mut segs, &mut budget, 4);
    let produced: usize = segs.iter().map(|s| s.view.len()).sum();
    // Borrowed readings cost nothing; decoded ones come out of the budget.
    assert!(produced <= cap + 4 * body.len(), "{produced} > {cap}");
    for s in &segs {
        assert!(s.depth <= 4);
        let n = s.view.len();
        for (a, b) in [(0, n), (0, n.min(1)), (n / 2, n)] {
            if a < b {
                let (ra, rb) = s.raw_span(a, b);
                assert!(ra <= rb && rb <= body.len(), "{:?} {a}..{b} -> {ra}..{rb}", s.layers);
            }
        }
    }
});
