//! Multipart bodies: the first line of the input is the boundary, the rest the body.
#![no_main]

use clawguard::detect::extract::body_view;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"b"[..], data),
    };
    let ct = format!(
        "multipart/form-data; boundary=\"{}\"",
        String::from_utf8_lossy(boundary)
    );
    let v = body_view(Some(&ct), body);
    for seg in &v.segments {
        let n = seg.view.len();
        if n > 0 {
            let (a, b) = seg.raw_span(0, n);
            assert!(a <= b && b <= body.len());
        }
    }
});
