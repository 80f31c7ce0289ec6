//! Redaction round trip: spans chosen by the input inside a JSON or form body's decoded
//! view are redacted in the raw body; a redaction that succeeds keeps the body's syntax
//! (JSON parses with the same nesting; bytes outside the spans are unchanged).
#![no_main]

use clawguard::detect::extract::{body_view, json_view, BodyKind};
use clawguard::detect::redact::{self, Span};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (sel, rest) = data.split_at(3);
    let ct = if sel[0] & 1 == 0 {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let body = rest;
    let v = body_view(Some(ct), body);
    let Some(seg) = v.segments.first() else {
        return;
    };
    let n = seg.view.len();
    if n == 0 {
        return;
    }
    let a = sel[1] as usize % n;
    let b = (a + 1 + sel[2] as usize % 16).min(n);
    let (ra, rb) = seg.raw_span(a, b);
    assert!(ra <= rb && rb <= body.len());
    if ra == rb {
        return;
    }
    let spans = vec![Span {
        start: ra,
        end: rb,
        rule: Arc::from("r"),
        // Half the inputs redact with a pseudonymization placeholder instead of the marker.
        replacement: (sel[0] & 2 != 0).then(|| Arc::from("PH_EMAIL_abcdef")),
    }];
    let out = match v.kind {
        BodyKind::Json => redact::json(body, spans, v.nested_json),
        BodyKind::Form => redact::form(body, spans),
        _ => redact::text(body, spans),
    };
    if let Ok(out) = out {
        assert_eq!(&out[..ra], &body[..ra]);
        assert_eq!(&out[out.len() - (body.len() - rb)..], &body[rb..]);
        if v.kind == BodyKind::Json {
            let (_, _, nested) = json_view(&out).expect("redacted JSON parses");
            assert_eq!(nested, v.nested_json);
        }
    }
});
