//! The urlencoded form view: percent-decoding with `+` as space, mapped back.
#![no_main]

use clawguard::detect::extract::form_view;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let (view, map) = form_view(body);
    assert!(view.len() <= body.len());
    for i in 0..view.len() {
        let (a, b) = map.raw_span(i, i + 1);
        assert!(a < b && b <= body.len());
        // Bytes that were not escapes map to themselves.
        if b - a == 1 && body[a] != b'+' {
            assert_eq!(body[a], view[i]);
        }
    }
});
