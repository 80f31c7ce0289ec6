//! The JSON reading of a document: string literals unescaped in place (structure and keys
//! kept, so rules that need a key such as `"password": "…"` still see it), a string whose
//! content is itself JSON (LLM tool-call `arguments`, a JSON string holding a JSON string)
//! read recursively, and numbers in exponent form (`4.111111111111111e15`) read as the
//! digit string a receiver's number parser produces. Every view byte maps back to the raw
//! bytes it came from ([`OffsetMap`]).
//!
//! Lenient like the receivers it stands in for: a UTF-8 byte-order mark and bytes after
//! the document are tolerated ([`json_prefix`]); a document that does not parse at all is
//! still unescaped string by string ([`json_view_lenient`]).
//!
//! Following nested documents is bounded by total work (bytes decoded for nested
//! documents, at most [`NESTED_WORK_FACTOR`] times the document plus a constant), not by a
//! fixed depth: an attacker gains nothing from nesting deeper, and a string left unfollowed
//! past the budget is still unescaped once (its letters and digits are unchanged by JSON
//! escaping, so most values stay visible). [`MAX_NESTING`] only keeps the stack bounded.

use super::offsets::{OffsetMap, ViewBuilder};
use memchr::{memchr, memchr2};
use std::borrow::Cow;

/// Nested documents may cost this many times the outer document's length in decoding.
const NESTED_WORK_FACTOR: usize = 4;
/// ... plus this many bytes, so small documents can nest freely.
const NESTED_WORK_BASE: usize = 1 << 20;
/// Recursion stops here whatever the budget says (each level needs escaped quotes, which
/// double per level, so real documents never come near it).
const MAX_NESTING: usize = 64;
/// Exponent-form numbers whose digit string would be longer than this stay as written.
const MAX_NUMBER_DIGITS: usize = 40;

/// Where a JSON string literal is and whether its content has escapes.
struct StrLit {
    /// Offset of the opening quote.
    open: usize,
    /// Offset of the closing quote.
    close: usize,
    escaped: bool,
}

/// Find the string literal that opens at `open` (which holds `"`).
fn string_at(src: &[u8], open: usize) -> Option<StrLit> {
    let mut i = open + 1;
    let mut escaped = false;
    loop {
        i += memchr2(b'"', b'\\', src.get(i..)?)?;
        if src[i] == b'"' {
            return Some(StrLit {
                open,
                close: i,
                escaped,
            });
        }
        escaped = true;
        i += 2;
        if i > src.len() {
            return None;
        }
    }
}

pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode one JSON string's content `src[from..to]` into `vb`; `tr` maps offsets in
/// `src` to raw (`None`: `src` is raw). Each escape becomes one atomic run.
fn unescape_into(vb: &mut ViewBuilder, src: &[u8], from: usize, to: usize, tr: Option<&OffsetMap>) {
    let mut run = from;
    let mut i = from;
    let mut buf = [0u8; 4];
    while let Some(p) = memchr(b'\\', &src[i..to]) {
        i += p;
        vb.copy_via(&src[run..i], run, tr);
        let (n, len) = match src.get(i + 1) {
            Some(b'n') => (one(&mut buf, b'\n'), 2),
            Some(b't') => (one(&mut buf, b'\t'), 2),
            Some(b'r') => (one(&mut buf, b'\r'), 2),
            Some(b'b') => (one(&mut buf, 8), 2),
            Some(b'f') => (one(&mut buf, 12), 2),
            Some(&c @ (b'"' | b'\\' | b'/')) => (one(&mut buf, c), 2),
            Some(b'u') => match hex4(src, i + 2) {
                Some(hi @ 0xD800..=0xDBFF) => match (src.get(i + 6..i + 8), hex4(src, i + 8)) {
                    (Some(b"\\u"), Some(lo @ 0xDC00..=0xDFFF)) => {
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        (utf8(&mut buf, c), 12)
                    }
                    _ => (utf8(&mut buf, 0xFFFD), 6), // lone high surrogate
                },
                Some(c) => (utf8(&mut buf, c), 6),
                None => (one(&mut buf, b'\\'), 1),
            },
            _ => (one(&mut buf, b'\\'), 1),
        };
        let len = len.min(to - i);
        vb.atomic_via(&buf[..n], i, i + len, tr);
        i += len;
        run = i;
    }
    vb.copy_via(&src[run..to], run, tr);
}

fn one(buf: &mut [u8; 4], b: u8) -> usize {
    buf[0] = b;
    1
}

fn hex4(src: &[u8], at: usize) -> Option<u32> {
    let h = src.get(at..at + 4)?;
    h.iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | u32::from(hex(b)?)))
}

fn utf8(buf: &mut [u8; 4], c: u32) -> usize {
    let ch = char::from_u32(c).unwrap_or('\u{FFFD}'); // lone low surrogate
    ch.encode_utf8(buf).len()
}

/// The first byte of a string's decoded content that is not whitespace, looking
/// through escapes (`\n`, `\u0020`, `\u007b`: an escaped brace must not hide a
/// nested document). Non-ASCII yields 0x80.
fn first_decoded(raw: &[u8]) -> Option<u8> {
    let mut i = 0;
    while i < raw.len() {
        let (c, len) = match raw[i] {
            b'\\' => match raw.get(i + 1) {
                Some(b'n') => (b'\n', 2),
                Some(b'r') => (b'\r', 2),
                Some(b't') => (b'\t', 2),
                Some(b'u') => match hex4(raw, i + 2) {
                    Some(c) if c < 0x80 => (c as u8, 6),
                    _ => (0x80, 6),
                },
                Some(&c) => (c, 2),
                None => (b'\\', 1),
            },
            c => (c, 1),
        };
        if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            return Some(c);
        }
        i += len;
    }
    None
}

/// Whether a string whose decoded content starts with `first` may hold a document worth
/// reading: an object, an array, or a string (a JSON string whose content is a JSON
/// string literal). Numbers, `true`, `false` and `null` hold nothing a rule could match
/// that the string itself does not show.
fn may_nest(first: Option<u8>) -> bool {
    matches!(first, Some(b'{' | b'[' | b'"'))
}

/// Decoded content that is itself a JSON document (a BOM and trailing bytes tolerated,
/// as at the top level).
fn looks_like_json(content: &[u8]) -> bool {
    json_prefix(content).is_some()
}

/// Skip a UTF-8 byte-order mark.
fn skip_bom(doc: &[u8]) -> usize {
    if doc.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    }
}

/// Where the JSON value at the start of `doc` ends, if one parses there: after an
/// optional UTF-8 BOM and whitespace, one complete value; whatever follows it (a second
/// document, a newline, garbage) is tolerated, as lenient parsers do.
pub fn json_prefix(doc: &[u8]) -> Option<usize> {
    let bom = skip_bom(doc);
    let mut it =
        serde_json::Deserializer::from_slice(&doc[bom..]).into_iter::<serde::de::IgnoredAny>();
    match it.next() {
        Some(Ok(_)) => Some(bom + it.byte_offset()),
        _ => None,
    }
}

/// The decoded view of a JSON document, or `None` if no JSON value starts it (a BOM and
/// trailing bytes are tolerated). Borrows the document when nothing needed decoding.
/// Returns the view, its map, and how many nested documents were read.
pub fn json_view(body: &[u8]) -> Option<(Cow<'_, [u8]>, OffsetMap, usize)> {
    json_prefix(body)?;
    Some(json_view_unchecked(body))
}

/// The view of a document that claims to be JSON but does not parse: its string literals
/// (as far as quotes can be paired) are unescaped all the same. Nothing is verified.
pub fn json_view_lenient(body: &[u8]) -> (Cow<'_, [u8]>, OffsetMap) {
    let (view, map, _) = json_view_unchecked(body);
    (view, map)
}

struct Work {
    left: usize,
}

impl Work {
    fn for_doc(len: usize) -> Work {
        Work {
            left: len
                .saturating_mul(NESTED_WORK_FACTOR)
                .saturating_add(NESTED_WORK_BASE),
        }
    }

    fn take(&mut self, n: usize) -> bool {
        if n <= self.left {
            self.left -= n;
            true
        } else {
            false
        }
    }
}

fn json_view_unchecked(body: &[u8]) -> (Cow<'_, [u8]>, OffsetMap, usize) {
    // The view is about as long as the body (unescaping only shortens; an exponent number
    // grows by a byte at most): sized once instead of regrown by doubling.
    let mut vb = ViewBuilder::with_capacity(body.len());
    let mut nested = 0;
    let mut work = Work::for_doc(body.len());
    if json_into(&mut vb, body, None, 0, &mut nested, &mut work) {
        (Cow::Owned(vb.out), vb.map, nested)
    } else {
        (Cow::Borrowed(body), OffsetMap::identity(0), 0)
    }
}

/// Append the view of the JSON document `src` to `vb` (it need not be valid: a stray
/// quote only shifts what is treated as a string); `tr` maps offsets in
/// `src` to raw (`None`: `src` is raw). Returns whether the view differs from `src`.
fn json_into(
    vb: &mut ViewBuilder,
    src: &[u8],
    tr: Option<&OffsetMap>,
    depth: usize,
    nested: &mut usize,
    work: &mut Work,
) -> bool {
    let mut flushed = 0; // src[flushed..] is not yet in the view
    let mut i = 0;
    let mut changed = false;
    // Outside strings no other byte can be a quote, so quotes delimit all strings.
    loop {
        let next_quote = memchr(b'"', &src[i..]).map(|p| i + p);
        // Between strings: numbers in exponent form.
        let stretch_end = next_quote.unwrap_or(src.len());
        if let Some(e) = memchr2(b'e', b'E', &src[i..stretch_end]) {
            changed |= exponent_numbers(vb, src, i + e, stretch_end, &mut flushed, tr);
        }
        let Some(q) = next_quote else {
            break;
        };
        let Some(lit) = string_at(src, q) else {
            break;
        };
        i = lit.close + 1;
        let (cs, ce) = (lit.open + 1, lit.close);
        let maybe_json = depth < MAX_NESTING && may_nest(first_decoded(&src[cs..ce]));
        if !lit.escaped && !maybe_json {
            continue; // verbatim: stays in the pending copy run
        }
        vb.copy_via(&src[flushed..cs], flushed, tr);
        flushed = ce;
        changed |= lit.escaped;
        if maybe_json && work.take(ce - cs) {
            // Decode into a buffer of its own: it is the source of the inner view.
            let mut content = ViewBuilder::default();
            unescape_into(&mut content, src, cs, ce, None);
            if looks_like_json(&content.out) {
                let composed = match tr {
                    None => content.map,
                    Some(outer) => content.map.compose(content.out.len(), outer),
                };
                *nested += 1;
                changed = true;
                json_into(vb, &content.out, Some(&composed), depth + 1, nested, work);
                continue;
            }
        }
        unescape_into(vb, src, cs, ce, tr);
    }
    vb.copy_via(&src[flushed..], flushed, tr);
    changed || tr.is_some()
}

/// Rewrite numbers in exponent form found in `src[from..to]` (outside strings; `from` is
/// at an `e`/`E`) as their digit strings. Returns whether any was rewritten.
fn exponent_numbers(
    vb: &mut ViewBuilder,
    src: &[u8],
    from: usize,
    to: usize,
    flushed: &mut usize,
    tr: Option<&OffsetMap>,
) -> bool {
    let mut changed = false;
    let mut i = from;
    while i < to {
        let Some(p) = memchr2(b'e', b'E', &src[i..to]) else {
            break;
        };
        let e = i + p;
        i = e + 1;
        if e == 0 || !src[e - 1].is_ascii_digit() {
            continue; // `true`, `false`: not a number
        }
        let is_num = |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E');
        let start = src[..e]
            .iter()
            .rposition(|&b| !is_num(b))
            .map_or(0, |p| p + 1);
        let end = e + src[e..to]
            .iter()
            .position(|&b| !is_num(b))
            .unwrap_or(to - e);
        i = end;
        if start < *flushed {
            continue;
        }
        if let Some(digits) = exponent_digits(&src[start..end]) {
            vb.copy_via(&src[*flushed..start], *flushed, tr);
            vb.atomic_via(&digits, start, end, tr);
            *flushed = end;
            changed = true;
        }
    }
    changed
}

/// `4.111111111111111e15` → `4111111111111111`; `1.5E+3` → `1500`; `25e-1` → `2.5`. The
/// sign is dropped (a value's digits are what rules match). `None` for anything that is
/// not one number with an exponent, or whose digit string would be longer than the
/// number as written (plus one): the view never grows by more than a byte a number.
fn exponent_digits(num: &[u8]) -> Option<Vec<u8>> {
    let written = num.len();
    let num = num.strip_prefix(b"-").unwrap_or(num);
    let e = num.iter().position(|&b| b == b'e' || b == b'E')?;
    let (mantissa, exp) = (&num[..e], &num[e + 1..]);
    let exp = std::str::from_utf8(exp).ok()?.parse::<i32>().ok()?;
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(d) => (&mantissa[..d], &mantissa[d + 1..]),
        None => (mantissa, &b""[..]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let digits: Vec<u8> = int.iter().chain(frac).copied().collect();
    let point = int.len() as i64 + i64::from(exp);
    if point <= 0 || point as usize > MAX_NUMBER_DIGITS {
        return None;
    }
    let point = point as usize;
    let mut out = Vec::with_capacity(point.max(digits.len()) + 1);
    if point >= digits.len() {
        out.extend_from_slice(&digits);
        out.resize(point, b'0');
    } else {
        out.extend_from_slice(&digits[..point]);
        out.push(b'.');
        out.extend_from_slice(&digits[point..]);
    }
    // Leading zeros of the integer part (`0.4111e16`) are not part of the value.
    let lead = out.iter().take_while(|&&b| b == b'0').count();
    let lead = lead.min(out.len().saturating_sub(1));
    out.drain(..lead);
    // Values worth reading have as many significant digits as they are long; a short
    // number with a large exponent (`1e39`) would only pad the view with zeros (and a body
    // of them would multiply its size).
    (out.len() <= written + 1).then_some(out)
}

// ---------------------------------------------------------------------------------
// Paths

/// One level of a JSON path.
enum Frame {
    Object { key: Option<String>, want_key: bool },
    Array { index: usize },
}

fn render(stack: &[Frame]) -> String {
    let mut out = String::new();
    for f in stack {
        match f {
            Frame::Object { key: Some(k), .. } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => {
                out.push_str(&format!("[{index}]"));
            }
        }
    }
    out
}

/// The JSON path of each offset (sorted ascending) into the JSON document `src`:
/// `messages[2].content`, and through nested documents
/// `messages[1].tool_calls[0].function.arguments › json command`. One pass over the
/// document for all offsets. Offsets outside any value get the path of their container.
pub fn json_paths(src: &[u8], offsets: &[usize]) -> Vec<String> {
    let mut out = vec![String::new(); offsets.len()];
    paths_into(src, offsets, &mut out, 0);
    out
}

fn paths_into(src: &[u8], offsets: &[usize], out: &mut [String], depth: usize) {
    debug_assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    let mut stack: Vec<Frame> = Vec::new();
    let mut next = 0; // first offset not yet given a path
    let mut i = skip_bom(src);
    // Offsets before position `upto` get the current path.
    let settle = |upto: usize, stack: &[Frame], next: &mut usize, out: &mut [String]| {
        while *next < offsets.len() && offsets[*next] < upto {
            out[*next] = render(stack);
            *next += 1;
        }
    };
    while i < src.len() && next < offsets.len() {
        match src[i] {
            b'{' => {
                settle(i + 1, &stack, &mut next, out);
                stack.push(Frame::Object {
                    key: None,
                    want_key: true,
                });
            }
            b'[' => {
                settle(i + 1, &stack, &mut next, out);
                stack.push(Frame::Array { index: 0 });
            }
            b'}' | b']' => {
                settle(i + 1, &stack, &mut next, out);
                stack.pop();
            }
            b',' => {
                settle(i + 1, &stack, &mut next, out);
                match stack.last_mut() {
                    Some(Frame::Array { index }) => *index += 1,
                    Some(Frame::Object { key, want_key }) => {
                        *key = None;
                        *want_key = true;
                    }
                    None => {}
                }
            }
            b':' => {
                settle(i + 1, &stack, &mut next, out);
                if let Some(Frame::Object { want_key, .. }) = stack.last_mut() {
                    *want_key = false;
                }
            }
            b'"' => {
                let Some(lit) = string_at(src, i) else {
                    break;
                };
                let is_key = matches!(stack.last(), Some(Frame::Object { want_key: true, .. }));
                let (cs, ce) = (lit.open + 1, lit.close);
                if is_key {
                    settle(lit.close + 1, &stack, &mut next, out);
                    let mut k = ViewBuilder::default();
                    unescape_into(&mut k, src, cs, ce, None);
                    if let Some(Frame::Object { key, .. }) = stack.last_mut() {
                        *key = Some(super::show_name(&k.out));
                    }
                } else {
                    let here = render(&stack);
                    let first = next;
                    while next < offsets.len() && offsets[next] <= lit.close {
                        out[next] = here.clone();
                        next += 1;
                    }
                    let inside = &offsets[first..next];
                    if !inside.is_empty()
                        && depth < MAX_NESTING
                        && may_nest(first_decoded(&src[cs..ce]))
                    {
                        let mut content = ViewBuilder::default();
                        unescape_into(&mut content, src, cs, ce, None);
                        if looks_like_json(&content.out) {
                            let inner: Vec<usize> = inside
                                .iter()
                                .map(|&o| content.map.view_offset(o.max(cs)))
                                .collect();
                            let mut inner_out = vec![String::new(); inner.len()];
                            paths_into(&content.out, &inner, &mut inner_out, depth + 1);
                            for (o, p) in out[first..next].iter_mut().zip(inner_out) {
                                o.push_str(" › json");
                                if !p.is_empty() && !p.starts_with(" ›") {
                                    o.push(' ');
                                }
                                o.push_str(&p);
                            }
                        }
                    }
                }
                i = lit.close;
            }
            _ => {}
        }
        i += 1;
    }
    settle(usize::MAX, &stack, &mut next, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw text a view span maps back to.
    fn back<'a>(raw: &'a [u8], map: &OffsetMap, view: &[u8], needle: &str) -> &'a str {
        map.raw_text_of(raw, view, needle)
    }

    #[test]
    fn exponent_numbers_read_as_digits() {
        for (num, want) in [
            ("4.111111111111111e15", Some("4111111111111111")),
            ("4.111111111111111E+15", Some("4111111111111111")),
            ("-1.5e3", Some("1500")),
            ("25e-1", Some("2.5")),
            ("0.4111111111111111e16", Some("4111111111111111")),
            ("1e2", Some("100")),
            ("1e12", None),
            ("1e-5", None),
            ("1e400", None),
            ("1.2.3e4", None),
        ] {
            let got = exponent_digits(num.as_bytes()).map(|d| String::from_utf8(d).unwrap());
            assert_eq!(got.as_deref(), want, "{num}");
        }
        let raw = br#"{"card": 4.111111111111111e15, "ok": true, "n": 1E2}"#;
        let (view, map, _) = json_view(raw).unwrap();
        let v = std::str::from_utf8(&view).unwrap();
        assert_eq!(v, r#"{"card": 4111111111111111, "ok": true, "n": 100}"#);
        assert_eq!(back(raw, &map, &view, "111111111"), "4.111111111111111e15");
    }

    #[test]
    fn bom_and_trailing_bytes_are_tolerated() {
        let raw = b"\xEF\xBB\xBF{\"k\": \"a\\u0041\"}\r\ntrailing \"x\\u0042\"";
        assert_eq!(json_prefix(raw), Some(3 + 14 + 2)); // the document and the whitespace after it
        let (view, _, _) = json_view(raw).unwrap();
        let v = String::from_utf8_lossy(&view);
        assert!(v.contains("\"aA\"") && v.contains("\"xB\""), "{v}");
        assert!(json_view(b"  [1, 2] [3]").is_some());
        assert!(json_view(b"nope").is_none());
    }

    #[test]
    fn string_holding_a_json_string_is_followed() {
        // arguments = "\"{\\\"key\\\": \\\"AKIA\\\"}\"": a JSON string literal whose
        // content is a JSON document.
        let inner = serde_json::json!({"key": "a\tb"}).to_string();
        let as_string = serde_json::to_string(&inner).unwrap();
        let raw = serde_json::json!({ "arguments": as_string }).to_string();
        let (view, map, nested) = json_view(raw.as_bytes()).unwrap();
        assert_eq!(nested, 2);
        let v = std::str::from_utf8(&view).unwrap();
        assert!(v.contains("\"key\":\"a\tb\""), "{v}");
        let got = back(raw.as_bytes(), &map, &view, "a\tb");
        assert!(got.starts_with('a') && got.ends_with('b'), "{got}");
    }

    #[test]
    fn nesting_deeper_than_eight_is_followed() {
        let mut doc = serde_json::json!({"secret": "x\ty"}).to_string();
        for _ in 0..12 {
            doc = serde_json::json!({ "v": doc }).to_string();
        }
        let (view, _, nested) = json_view(doc.as_bytes()).unwrap();
        assert_eq!(nested, 12);
        assert!(std::str::from_utf8(&view)
            .unwrap()
            .contains("\"secret\":\"x\ty\""));
    }

    #[test]
    fn nested_work_is_bounded() {
        // Many copies of a nested document: each is followed until the budget is spent,
        // and the rest are unescaped once.
        let inner = serde_json::json!({"k": "v"}).to_string();
        let many: Vec<String> = (0..20_000).map(|_| inner.clone()).collect();
        let raw = serde_json::json!({ "list": many }).to_string();
        let (_, _, nested) = json_view(raw.as_bytes()).unwrap();
        assert!(nested > 100 && nested <= 20_000, "{nested}");
    }

    #[test]
    fn paths_name_keys_indexes_and_nested_documents() {
        let args = serde_json::json!({"command": "echo hi", "n": [1, 2]}).to_string();
        let raw = serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "tool_calls": [{"function": {"arguments": args}}]},
                {"role": "user", "content": "third"},
            ],
        })
        .to_string();
        let at = |needle: &str| raw.find(needle).unwrap();
        let offsets = [at("first"), at("echo"), at("third")];
        let paths = json_paths(raw.as_bytes(), &offsets);
        assert_eq!(
            paths,
            [
                "messages[0].content",
                "messages[1].tool_calls[0].function.arguments › json command",
                "messages[2].content",
            ]
        );
        // A key that looks like a value is masked.
        let raw = r#"{"AKIAQYLPMN5HFIQR7VUX": "v", "first name": ["x"]}"#;
        let p = json_paths(
            raw.as_bytes(),
            &[raw.find('v').unwrap(), raw.find('x').unwrap()],
        );
        assert!(p[0].starts_with("\"AKIA") && p[0].contains('*'), "{p:?}");
        assert!(!p[0].contains("QYLPMN5HFIQR7VUX"), "{p:?}");
        assert_eq!(p[1], "first name[0]");
    }
}
