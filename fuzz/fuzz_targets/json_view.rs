//! The JSON body view: any bytes, strict and lenient; every view span maps inside the body.
#![no_main]

use clawguard::detect::extract::{json_view, json_view_lenient, OffsetMap};
use libfuzzer_sys::fuzz_target;

fn check(body: &[u8], view: &[u8], map: &OffsetMap) {
    let n = view.len();
    // A few spans chosen from the data itself, plus the whole view.
    for (a, b) in [(0, n), (n / 3, n / 2), (n / 2, n)] {
        if a < b {
            let (ra, rb) = map.raw_span(a, b);
            assert!(ra <= rb && rb <= body.len(), "{a}..{b} -> {ra}..{rb}");
        }
    }
}

fuzz_target!(|body: &[u8]| {
    if let Some((view, map, _nested)) = json_view(body) {
        check(body, &view, &map);
        // Unescaping shortens; an exponent number grows by a byte at most.
        assert!(view.len() <= 2 * body.len() + 1);
    }
    let (view, map) = json_view_lenient(body);
    check(body, &view, &map);
});
