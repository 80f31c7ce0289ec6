//! Replacing findings in the raw bytes they came from, so JSON stays JSON and forms
//! stay forms. Spans are raw spans (already mapped back from a decoded view, so they
//! never cut an escape sequence); each becomes `[REDACTED:<rule-id>]`, percent-encoded
//! where the surrounding syntax is percent-encoded. Nothing outside the spans changes.
//!
//! The marker is safe inside a JSON string at any nesting depth: rule ids are limited
//! to `[A-Za-z0-9._-]` (see `rules::check_rule`), so it holds no quote or backslash.
//! Still, every JSON result is parsed again and the caller must block if that fails.

use std::sync::Arc;

/// A raw byte range to replace and the rule that found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub rule: Arc<str>,
    /// Written instead of the `[REDACTED:<rule>]` marker: a pseudonymization
    /// placeholder (letters and `_`, so the same in every style and at any JSON depth).
    pub replacement: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("a span lies outside the data it should redact")]
    OutOfRange,
    #[error("redaction would change the {0} structure")]
    Structure(&'static str),
    #[error("the redacted JSON no longer parses the same way")]
    InvalidJson,
    #[error("the redacted value is not a valid {0}")]
    Invalid(&'static str),
}

/// How the marker is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `[REDACTED:rule]`
    Plain,
    /// `%5BREDACTED%3Arule%5D`, for URLs and urlencoded forms.
    Percent,
}

pub fn marker(rule: &str, style: Style) -> String {
    match style {
        Style::Plain => format!("[REDACTED:{rule}]"),
        Style::Percent => format!("%5BREDACTED%3A{rule}%5D"),
    }
}

/// Sort spans and merge overlapping ones (the earlier span's rule names the result).
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start < last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// Whether a span with a replacement overlaps another span.
fn has_overlapping_replacement(spans: &[Span]) -> bool {
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| (s.start, s.end));
    sorted.windows(2).any(|w| {
        w[1].start < w[0].end && (w[0].replacement.is_some() || w[1].replacement.is_some())
    })
}

/// Replace every span of `src` with its marker. `forbidden` bytes inside a span mean
/// the span crosses the surrounding syntax (a form's `&`), which is refused.
fn replace(
    src: &[u8],
    spans: Vec<Span>,
    style: Style,
    forbidden: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, RedactError> {
    // Merging would make one placeholder stand for more than its value.
    if has_overlapping_replacement(&spans) {
        return Err(RedactError::Structure("overlapping placeholder"));
    }
    let spans = merge(spans);
    let mut out = Vec::with_capacity(src.len() + spans.len() * 24);
    let mut pos = 0;
    for s in &spans {
        if s.start >= s.end || s.end > src.len() {
            return Err(RedactError::OutOfRange);
        }
        if src[s.start..s.end].iter().any(|b| forbidden.contains(b)) {
            return Err(RedactError::Structure(what));
        }
        out.extend_from_slice(&src[pos..s.start]);
        match &s.replacement {
            Some(r) => out.extend_from_slice(r.as_bytes()),
            None => out.extend_from_slice(marker(&s.rule, style).as_bytes()),
        }
        pos = s.end;
    }
    out.extend_from_slice(&src[pos..]);
    Ok(out)
}

/// Redact a JSON document. The result must parse, and must hold as many JSON-in-a-string
/// documents as before (`nested`, from [`crate::detect::extract::BodyView::nested_json`]), so a
/// redaction that broke a tool call's `arguments` is caught too.
pub fn json(src: &[u8], spans: Vec<Span>, nested: usize) -> Result<Vec<u8>, RedactError> {
    let out = replace(src, spans, Style::Plain, b"", "JSON")?;
    match crate::detect::extract::json_view(&out) {
        Some((_, _, n)) if n == nested => Ok(out),
        _ => Err(RedactError::InvalidJson),
    }
}

/// Redact an `application/x-www-form-urlencoded` body. Spans must stay inside one
/// name or value.
pub fn form(src: &[u8], spans: Vec<Span>) -> Result<Vec<u8>, RedactError> {
    replace(src, spans, Style::Percent, b"&=", "form")
}

/// Redact text (plain text, a multipart part body, any UTF-8 body).
pub fn text(src: &[u8], spans: Vec<Span>) -> Result<Vec<u8>, RedactError> {
    replace(src, spans, Style::Plain, b"", "text")
}

/// Redact a header value; the result must still be a valid header value.
pub fn header_value(
    value: &http::HeaderValue,
    spans: Vec<Span>,
) -> Result<http::HeaderValue, RedactError> {
    let out = replace(value.as_bytes(), spans, Style::Plain, b"", "header")?;
    http::HeaderValue::from_bytes(&out).map_err(|_| RedactError::Invalid("header value"))
}

/// Redact spans of the request target's path-and-query string (the URL segment's raw
/// source) and rebuild the absolute URI around it. Spans may not cross `?`, `&`, `=`
/// or `#`, which would change how the query splits.
pub fn uri(uri: &http::Uri, spans: Vec<Span>) -> Result<http::Uri, RedactError> {
    let pq = uri.path_and_query().ok_or(RedactError::OutOfRange)?;
    let out = replace(
        pq.as_str().as_bytes(),
        spans,
        Style::Percent,
        b"?&=#",
        "URL",
    )?;
    let pq = http::uri::PathAndQuery::try_from(out).map_err(|_| RedactError::Invalid("URL"))?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    http::Uri::from_parts(parts).map_err(|_| RedactError::Invalid("URL"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::extract::{body_view, json_view, BodyKind};

    fn span(s: usize, e: usize, rule: &str) -> Span {
        Span {
            start: s,
            end: e,
            rule: Arc::from(rule),
            replacement: None,
        }
    }

    #[test]
    fn replacements_instead_of_markers() {
        let body = br#"{"a": "call 13800138000 now", "b": "x"}"#;
        let s = body.windows(11).position(|w| w == b"13800138000").unwrap();
        let mut sp = span(s, s + 11, "cn-mobile");
        sp.replacement = Some(Arc::from("CG_PHONE_abcdefghijklm"));
        let out = json(body, vec![sp.clone()], 0).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"a": "call CG_PHONE_abcdefghijklm now", "b": "x"}"#
        );
        // A placeholder may not be merged with another finding.
        assert_eq!(
            json(body, vec![sp, span(s + 5, s + 13, "other")], 0),
            Err(RedactError::Structure("overlapping placeholder"))
        );
    }

    /// Raw spans of `needle` found in a body's decoded view.
    fn spans_of(body: &[u8], ct: &str, needle: &str, rule: &str) -> (Vec<Span>, BodyKind, usize) {
        let v = body_view(Some(ct), body);
        let mut out = Vec::new();
        for seg in &v.segments {
            for (i, _) in seg
                .view
                .windows(needle.len())
                .enumerate()
                .filter(|(_, w)| *w == needle.as_bytes())
            {
                let (a, b) = seg.raw_span(i, i + needle.len());
                out.push(span(a, b, rule));
            }
        }
        (out, v.kind, v.nested_json)
    }

    #[test]
    fn merge_overlapping() {
        let m = merge(vec![
            span(5, 9, "b"),
            span(0, 3, "a"),
            span(2, 6, "c"),
            span(9, 10, "d"),
        ]);
        assert_eq!(m, vec![span(0, 9, "a"), span(9, 10, "d")]);
    }

    #[test]
    fn json_escaped_value_is_replaced_whole() {
        let body = br#"{"note": "call me at \u0035551234\n", "n": 1}"#;
        let (spans, kind, nested) = spans_of(body, "application/json", "5551234\n", "phone");
        assert_eq!(kind, BodyKind::Json);
        let out = json(body, spans, nested).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"note": "call me at [REDACTED:phone]", "n": 1}"#
        );
    }

    #[test]
    fn nested_redaction_keeps_both_levels_valid() {
        let args = serde_json::json!({"cmd": "echo", "key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"}).to_string();
        let body =
            serde_json::json!({"tool_calls": [{"function": {"arguments": args}}], "z": "after"})
                .to_string();
        let (spans, _, nested) = spans_of(
            body.as_bytes(),
            "application/json",
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
            "private-key",
        );
        assert_eq!((spans.len(), nested), (1, 1));
        let out = json(body.as_bytes(), spans, nested).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let args = v["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let inner: serde_json::Value = serde_json::from_str(args).unwrap();
        assert_eq!(inner["key"], "[REDACTED:private-key]");
        assert_eq!(inner["cmd"], "echo");
        assert_eq!(v["z"], "after");
        // Outside the span nothing changed.
        let s = body.find("-----BEGIN").unwrap();
        assert_eq!(&out[..s], &body.as_bytes()[..s]);
        assert!(out.ends_with(br#"[REDACTED:private-key]\"}"}}],"z":"after"}"#));
    }

    #[test]
    fn random_spans_in_nested_strings_redact_cleanly() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet: Vec<char> = "ab \"\\\n\t/é中😀{}[]:,".chars().collect();
        for _ in 0..500 {
            let len = rng.random_range(1..30);
            let value: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let inner = serde_json::json!({"v": format!("~~{value}")}).to_string();
            let raw = serde_json::json!({"args": inner, "n": 1}).to_string();
            let (view, map, nested) = json_view(raw.as_bytes()).unwrap();
            let view = std::str::from_utf8(&view).unwrap();
            let at = view.find(&format!("~~{value}")).unwrap() + 2;
            let bounds: Vec<usize> = value
                .char_indices()
                .map(|(i, _)| i)
                .chain([value.len()])
                .collect();
            let a = bounds[rng.random_range(0..bounds.len() - 1)];
            let b = bounds
                [rng.random_range(bounds.iter().position(|&x| x == a).unwrap() + 1..bounds.len())];
            let (ra, rb) = map.raw_span(at + a, at + b);
            let out = json(raw.as_bytes(), vec![span(ra, rb, "r")], nested).unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let inner: serde_json::Value =
                serde_json::from_str(doc["args"].as_str().unwrap()).unwrap();
            assert_eq!(
                inner["v"].as_str().unwrap(),
                format!("~~{}[REDACTED:r]{}", &value[..a], &value[b..])
            );
            assert_eq!(doc["n"], 1);
        }
    }

    #[test]
    fn json_that_would_break_is_refused() {
        let body = br#"{"a": "x", "b": "y"}"#;
        // A span swallowing a quote breaks the document.
        assert_eq!(
            json(body, vec![span(7, 10, "r")], 0),
            Err(RedactError::InvalidJson)
        );
        // Breaking an inner document is caught too.
        let body = br#"{"a": "{\"k\": \"v\"}"}"#;
        let q = body.iter().rposition(|&b| b == b'v').unwrap();
        assert_eq!(
            json(body, vec![span(q - 1, q + 1, "r")], 1),
            Err(RedactError::InvalidJson)
        );
        assert!(json(body, vec![span(q, q + 1, "r")], 1).is_ok());
        assert!(json_view(&json(body, vec![span(q, q + 1, "r")], 1).unwrap()).is_some());
    }

    #[test]
    fn form_redaction_is_percent_encoded() {
        let body = b"name=Li+Lei&card=4111%201111%201111%201111&x=1";
        let (spans, kind, _) = spans_of(
            body,
            "application/x-www-form-urlencoded",
            "4111 1111 1111 1111",
            "card",
        );
        assert_eq!(kind, BodyKind::Form);
        let out = form(body, spans).unwrap();
        assert_eq!(&out[..], b"name=Li+Lei&card=%5BREDACTED%3Acard%5D&x=1");
        assert_eq!(
            form(body, vec![span(5, 14, "r")]),
            Err(RedactError::Structure("form"))
        );
    }

    #[test]
    fn multipart_redaction_keeps_boundaries() {
        let body = b"--b1\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nmail alice@example.com now\r\n--b1--\r\n";
        let (spans, kind, _) = spans_of(
            body,
            "multipart/form-data; boundary=b1",
            "alice@example.com",
            "email",
        );
        assert_eq!(kind, BodyKind::Multipart);
        let out = text(body, spans).unwrap();
        assert_eq!(
            &out[..],
            b"--b1\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nmail [REDACTED:email] now\r\n--b1--\r\n"
        );
        let v = body_view(Some("multipart/form-data; boundary=b1"), &out);
        assert_eq!(&v.segments[0].view[..], b"mail [REDACTED:email] now");
    }

    #[test]
    fn headers_and_urls() {
        let v = http::HeaderValue::from_static("id=alice@example.com; theme=dark");
        let out = header_value(&v, vec![span(3, 20, "email")]).unwrap();
        assert_eq!(out, "id=[REDACTED:email]; theme=dark");

        let u: http::Uri = "https://api.example.com/v1/find?email=alice%40example.com&x=1"
            .parse()
            .unwrap();
        let pq = u.path_and_query().unwrap().as_str();
        let s = pq.find("alice").unwrap();
        let e = pq.find("&x").unwrap();
        let out = uri(&u, vec![span(s, e, "email")]).unwrap();
        assert_eq!(
            out.to_string(),
            "https://api.example.com/v1/find?email=%5BREDACTED%3Aemail%5D&x=1"
        );
        assert_eq!(
            uri(&u, vec![span(s, e + 1, "email")]),
            Err(RedactError::Structure("URL"))
        );
    }
}
