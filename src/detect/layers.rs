//! Encoding layers inside any segment, decoded recursively to a bounded depth and size:
//! base64 and base64url runs, hex runs, percent-encoding, HTML/XML entities
//! (`&#65;`, `&#x41;`, `&commat;`), backslash escapes (`\x41`, `\u0041`, `\U00000041`,
//! `\u{41}`, octal `\101`), quoted-printable, `data:` URLs, and Unicode compatibility
//! forms ([`crate::detect::normalize`]).
//!
//! Each decoded layer is a *new* segment beside the one it was found in, never a
//! replacement: the original reading is always scanned too, so a decoder that misreads
//! plain text (a hex-looking word, a `%` sign) costs a little work and never hides a
//! value. The engine drops a finding a layer repeats at the same raw span.
//!
//! Cheap triggers keep benign text on the fast path: a run of the base64 or hex alphabet
//! of plausible length (found by probing every 16th byte), `%XX`, `&#`/`&name;`, `\x`/
//! `\u`, `=XX`, `data:`, and non-ASCII lead bytes of the blocks normalisation rewrites.
//! A decoded run is kept only when it is plausible: text (UTF-8 or wide), or compressed
//! data recognised by its magic (then read decompressed).
//!
//! Where a finding maps back to: an in-place decoding (percent, entities, escapes,
//! quoted-printable, normalisation) maps each decoded character to its own escape, so
//! redaction edits exactly those bytes; a decoded base64 or hex run maps as a whole to
//! the encoded run (no decoded byte has a place of its own in it), so redaction replaces
//! the whole run, and blocks where that would break the body.

use crate::detect::extract::offsets::{OffsetMap, ViewBuilder};
use crate::detect::extract::{self, Budget, Layer, Segment};
use crate::detect::normalize;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use memchr::memmem;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The shortest base64 run decoded (12 bytes of plain text); shorter ones are too
/// common in ordinary words and identifiers to be worth it. `data:` URLs and
/// `Authorization: Basic` are decoded at any length.
pub const MIN_BASE64_RUN: usize = 16;
/// The shortest hex run decoded (8 bytes of plain text).
pub const MIN_HEX_RUN: usize = 16;
/// Bytes of context kept either side of an in-place decoding (a rule's context word).
const CONTEXT: usize = 96;
/// Decoded runs shorter than this are not worth a segment.
const MIN_DECODED: usize = 6;
/// Decoded bytes looked at before a long run is decoded whole.
const PREFIX_CHECK: usize = 96;

/// Add to `segs` the layers decoded from every segment in it (and from what those
/// decode to), at most `max_depth` layers deep and within `budget`.
pub fn expand(segs: &mut Vec<Segment<'_>>, budget: &mut Budget, max_depth: u8) {
    let mut i = 0;
    while i < segs.len() {
        if segs[i].depth < max_depth && !budget.exceeded {
            let children = decode(&segs[i], budget);
            segs.extend(children);
        }
        i += 1;
    }
}

/// The layers decoded from one segment.
fn decode(seg: &Segment<'_>, budget: &mut Budget) -> Vec<Segment<'static>> {
    let v: &[u8] = &seg.view;
    let mut out: Vec<Segment<'static>> = Vec::new();
    // In-place decodings, region by region.
    for (view, local) in normalize::regions(v) {
        push(seg, &mut out, budget, Layer::Normalized, view, local);
    }
    for (layer, positions) in [
        (Layer::Percent, percent_escapes(v)),
        (Layer::Entities, entity_escapes(v)),
        (Layer::Escapes, backslash_escapes(v)),
        (Layer::QuotedPrintable, qp_escapes(v)),
    ] {
        for (from, to) in regions(&positions, v.len()) {
            let (view, local) = match layer {
                Layer::Percent => decode_region(v, from, to, percent_at),
                Layer::Entities => decode_region(v, from, to, entity_at),
                Layer::Escapes => decode_region(v, from, to, backslash_at),
                _ => decode_region(v, from, to, qp_at),
            };
            push(seg, &mut out, budget, layer.clone(), view, local);
        }
    }
    // Runs decoded as a whole: data: URLs, base64, hex.
    let mut decoded_runs: Vec<DecodedRun> = Vec::new();
    let data_urls = data_urls(v);
    for &(s, e, ref media, b64) in &data_urls {
        let payload = &v[s..e];
        let decoded = if b64 {
            base64_decode(payload)
        } else {
            let (d, _) = decode_region(payload, 0, payload.len(), percent_at);
            Some(d)
        };
        // Text media types are read whatever they hold; anything else (an image) only
        // when it decodes to text or compressed data.
        let texty = is_text_media(media);
        if let Some(d) = decoded.filter(|d| !d.is_empty() && (texty || plausible(d))) {
            decoded_runs.push((Layer::DataUrl, s, e, d, Some(media.clone())));
        }
    }
    for (s, e, _) in runs(v, MIN_BASE64_RUN, is_base64_byte) {
        // A data: URL's payload is decoded above, with its media type.
        if data_urls.iter().any(|&(ds, de, _, _)| ds <= s && e <= de) {
            continue;
        }
        if jwt_claims(v, s) {
            continue;
        }
        let run = &v[s..e];
        // Decode a prefix first: a long run of image or other binary data is dropped
        // without decoding all of it.
        if run.len() > 4 * PREFIX_CHECK {
            match base64_decode(&run[..4 * PREFIX_CHECK]) {
                Some(head) if plausible(&head) => {}
                _ => continue,
            }
        }
        let url = run.iter().any(|&b| b == b'-' || b == b'_');
        let Some(d) = base64_decode(run) else {
            continue;
        };
        if plausible(&d) {
            let layer = if url { Layer::Base64Url } else { Layer::Base64 };
            decoded_runs.push((layer, s, e, d, None));
        }
    }
    for (s, e, _) in runs(v, MIN_HEX_RUN, |b| b.is_ascii_hexdigit()) {
        let d = hex_decode(&v[s..e]);
        if plausible(&d) {
            decoded_runs.push((Layer::Hex, s, e, d, None));
        }
    }
    for (layer, s, e, data, media) in decoded_runs {
        if data.len() < MIN_DECODED && layer != Layer::DataUrl {
            continue;
        }
        if !budget.take(data.len()) {
            break;
        }
        let (rs, re) = seg.map.raw_span(s, e);
        let whole = OffsetMap::whole(rs, re - rs);
        out.extend(extract::body::read_decoded(
            seg,
            layer,
            data,
            whole,
            media.as_deref(),
            budget,
        ));
    }
    out
}

/// A run decoded as a whole: its layer, its span in the parent view, the decoded bytes
/// and (for a `data:` URL) the media type.
type DecodedRun = (Layer, usize, usize, Vec<u8>, Option<String>);

/// Add an in-place decoding of `seg` (its view and a map into `seg.view`).
fn push(
    seg: &Segment<'_>,
    out: &mut Vec<Segment<'static>>,
    budget: &mut Budget,
    layer: Layer,
    view: Vec<u8>,
    local: OffsetMap,
) {
    if !budget.take(view.len()) {
        return;
    }
    let map = local.compose(view.len(), &seg.map);
    let mut child = seg.child(layer, view, map);
    child.depth = seg.depth + 1;
    out.push(child);
}

/// Merge escape positions into regions with [`CONTEXT`] bytes either side.
fn regions(positions: &[(usize, usize)], len: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &(s, e) in positions {
        let (from, to) = (s.saturating_sub(CONTEXT), (e + CONTEXT).min(len));
        match out.last_mut() {
            Some(last) if from <= last.1 + CONTEXT => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    }
    out
}

/// An escape decoded at `i`: (decoded bytes, escape length), or `None` if none starts there.
type EscapeAt = fn(&[u8], usize, &mut Vec<u8>) -> Option<usize>;

/// Decode every escape in `v[from..to]`, copying the rest; the map points into `v`.
fn decode_region(v: &[u8], from: usize, to: usize, at: EscapeAt) -> (Vec<u8>, OffsetMap) {
    let mut vb = ViewBuilder::with_capacity(to - from);
    let mut run = from;
    let mut i = from;
    let mut buf = Vec::with_capacity(8);
    while i < to {
        buf.clear();
        match at(&v[..to], i, &mut buf) {
            Some(n) => {
                vb.copy(&v[run..i], run);
                vb.atomic(&buf, i, n);
                i += n;
                run = i;
            }
            None => i += 1,
        }
    }
    vb.copy(&v[run..to], run);
    (vb.out, vb.map)
}

fn hex_val(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn hex_digits(v: &[u8], at: usize, n: usize) -> Option<u32> {
    let h = v.get(at..at + n)?;
    h.iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | hex_val(b)?))
}

fn push_char(out: &mut Vec<u8>, c: u32) {
    let ch = char::from_u32(c).unwrap_or('\u{FFFD}');
    let mut b = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
}

// --- percent-encoding --------------------------------------------------------------

fn percent_at(v: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    if v[i] != b'%' {
        return None;
    }
    if let Some(b) = hex_digits(v, i + 1, 2) {
        out.push(b as u8);
        return Some(3);
    }
    // `%uXXXX` (JavaScript's `escape()`, IIS).
    if matches!(v.get(i + 1), Some(b'u' | b'U')) {
        let c = hex_digits(v, i + 2, 4)?;
        push_char(out, c);
        return Some(6);
    }
    None
}

fn percent_escapes(v: &[u8]) -> Vec<(usize, usize)> {
    memchr::memchr_iter(b'%', v)
        .filter_map(|i| {
            let mut tmp = Vec::new();
            percent_at(v, i, &mut tmp).map(|n| (i, i + n))
        })
        .collect()
}

// --- HTML/XML entities -------------------------------------------------------------

/// `&name;` → characters, from the HTML5 entity table (which also holds the legacy
/// forms without `;`).
fn entity_table() -> &'static HashMap<&'static [u8], &'static str> {
    static T: OnceLock<HashMap<&'static [u8], &'static str>> = OnceLock::new();
    T.get_or_init(|| {
        entities::ENTITIES
            .iter()
            .map(|e| (e.entity.as_bytes(), e.characters))
            .collect()
    })
}

fn entity_at(v: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    if v[i] != b'&' {
        return None;
    }
    if v.get(i + 1) == Some(&b'#') {
        let (radix, start) = match v.get(i + 2) {
            Some(b'x' | b'X') => (16, i + 3),
            _ => (10, i + 2),
        };
        let digits = v[start..]
            .iter()
            .take(8)
            .take_while(|b| (**b as char).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let s = std::str::from_utf8(&v[start..start + digits]).ok()?;
        let c = u32::from_str_radix(s, radix).ok()?;
        push_char(out, c);
        let mut end = start + digits;
        if v.get(end) == Some(&b';') {
            end += 1;
        }
        return Some(end - i);
    }
    // Named: the longest name (with or without `;`) in the table.
    let name_len = v[i + 1..]
        .iter()
        .take(32)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    if name_len == 0 {
        return None;
    }
    let table = entity_table();
    for len in (1..=name_len).rev() {
        let with_semi = v.get(i + 1 + len) == Some(&b';');
        let cand = &v[i..i + 1 + len + usize::from(with_semi)];
        if let Some(chars) = table.get(cand) {
            out.extend_from_slice(chars.as_bytes());
            return Some(cand.len());
        }
        if with_semi {
            if let Some(chars) = table.get(&v[i..i + 1 + len]) {
                out.extend_from_slice(chars.as_bytes());
                return Some(1 + len);
            }
        }
    }
    None
}

fn entity_escapes(v: &[u8]) -> Vec<(usize, usize)> {
    memchr::memchr_iter(b'&', v)
        .filter(|&i| match v.get(i + 1) {
            Some(b'#') => true,
            // A named entity must end in `;` to trigger (legacy forms without it are
            // decoded inside a region, not looked for).
            Some(b) if b.is_ascii_alphabetic() => v[i + 1..]
                .iter()
                .take(33)
                .position(|&b| !b.is_ascii_alphanumeric())
                .is_some_and(|p| v[i + 1 + p] == b';'),
            _ => false,
        })
        .filter_map(|i| {
            let mut tmp = Vec::new();
            entity_at(v, i, &mut tmp).map(|n| (i, i + n))
        })
        .collect()
}

// --- backslash escapes -------------------------------------------------------------

fn backslash_at(v: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    if v[i] != b'\\' {
        return None;
    }
    match *v.get(i + 1)? {
        b'x' => {
            let b = hex_digits(v, i + 2, 2)?;
            out.push(b as u8);
            Some(4)
        }
        b'u' if v.get(i + 2) == Some(&b'{') => {
            let close = v[i + 3..].iter().take(7).position(|&b| b == b'}')?;
            let c = hex_digits(v, i + 3, close)?;
            push_char(out, c);
            Some(close + 4)
        }
        b'u' => {
            let hi = hex_digits(v, i + 2, 4)?;
            if (0xD800..0xDC00).contains(&hi) && v.get(i + 6..i + 8) == Some(b"\\u") {
                if let Some(lo @ 0xDC00..=0xDFFF) = hex_digits(v, i + 8, 4) {
                    push_char(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                    return Some(12);
                }
            }
            push_char(out, hi);
            Some(6)
        }
        b'U' => {
            let c = hex_digits(v, i + 2, 8)?;
            push_char(out, c);
            Some(10)
        }
        d @ b'0'..=b'3' => {
            // Octal `\101`: exactly three digits (shorter forms are too common in text).
            let o = v.get(i + 2..i + 4)?;
            if o.iter().all(|b| (b'0'..=b'7').contains(b)) {
                out.push((d - b'0') << 6 | (o[0] - b'0') << 3 | (o[1] - b'0'));
                return Some(4);
            }
            None
        }
        c @ (b'n' | b't' | b'r' | b'"' | b'\'' | b'\\' | b'/') => {
            out.push(match c {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                c => c,
            });
            Some(2)
        }
        _ => None,
    }
}

fn backslash_escapes(v: &[u8]) -> Vec<(usize, usize)> {
    memchr::memchr_iter(b'\\', v)
        .filter(|&i| matches!(v.get(i + 1), Some(b'x' | b'u' | b'U' | b'0'..=b'3')))
        .filter_map(|i| {
            let mut tmp = Vec::new();
            backslash_at(v, i, &mut tmp).map(|n| (i, i + n))
        })
        .collect()
}

// --- quoted-printable --------------------------------------------------------------

fn qp_at(v: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    if v[i] != b'=' {
        return None;
    }
    // Soft line break: `=` then optional spaces, then CRLF or LF: nothing.
    let sp = v[i + 1..]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match v.get(i + 1 + sp..) {
        Some([b'\r', b'\n', ..]) => return Some(sp + 3),
        Some([b'\n', ..]) => return Some(sp + 2),
        _ => {}
    }
    let b = hex_digits(v, i + 1, 2)?;
    out.push(b as u8);
    Some(3)
}

/// Quoted-printable escapes, when they look like quoted-printable: a soft line break,
/// or at least two `=XX` in upper-case hex (RFC 2045's form; `a=1f` in a query is not).
fn qp_escapes(v: &[u8]) -> Vec<(usize, usize)> {
    let mut soft = false;
    let found: Vec<(usize, usize)> = memchr::memchr_iter(b'=', v)
        .filter_map(|i| {
            let mut tmp = Vec::new();
            let n = qp_at(v, i, &mut tmp)?;
            if tmp.is_empty() {
                soft = true;
                return Some((i, i + n));
            }
            v[i + 1..i + 3]
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
                .then_some((i, i + n))
        })
        .collect();
    if soft || found.len() >= 2 {
        found
    } else {
        Vec::new()
    }
}

/// Decode a quoted-printable body (a `Content-Transfer-Encoding: quoted-printable`
/// part): the view and its map into `data`.
pub fn quoted_printable(data: &[u8]) -> (Vec<u8>, OffsetMap) {
    decode_region(data, 0, data.len(), qp_at)
}

// --- base64 and hex runs -----------------------------------------------------------

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Runs of at least `min` bytes of class `class` (base64 runs also take up to two `=`
/// of padding, and continue over a line break after a line of 40+ characters whose
/// length is a multiple of four, as `base64` and MIME wrap them). Found by probing every
/// `min`-th byte: a run that long must cover a probe.
fn runs(v: &[u8], min: usize, class: fn(u8) -> bool) -> Vec<(usize, usize, bool)> {
    let base64 = class(b'+');
    let mut out = Vec::new();
    let n = v.len();
    let mut lo = 0;
    let mut i = min - 1;
    while i < n {
        if !class(v[i]) {
            i += min;
            continue;
        }
        let mut s = i;
        while s > lo && class(v[s - 1]) {
            s -= 1;
        }
        let mut e = i + 1;
        while e < n && class(v[e]) {
            e += 1;
        }
        let mut wrapped = false;
        if base64 {
            // Line-wrapped: continue on the next line.
            let mut line_start = s;
            loop {
                let len = e - line_start;
                let nl = match v.get(e..) {
                    Some([b'\r', b'\n', ..]) => 2,
                    Some([b'\n', ..]) => 1,
                    _ => 0,
                };
                if nl == 0 || len < 40 || len % 4 != 0 {
                    break;
                }
                let next = e + nl;
                let mut ne = next;
                while ne < n && class(v[ne]) {
                    ne += 1;
                }
                if ne == next {
                    break;
                }
                wrapped = true;
                line_start = next;
                e = ne;
            }
            let pad = v[e..].iter().take(2).take_while(|&&b| b == b'=').count();
            e += pad;
        }
        if e - s >= min {
            out.push((s, e, wrapped));
        }
        lo = e;
        i = e + min;
    }
    out
}

fn lenient_engine(alphabet: &base64::alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// Decode base64 or base64url leniently, as receivers do: either alphabet (mixed `-_`
/// and `+/` too), padding optional, whitespace and line breaks ignored, a dangling
/// final character dropped. `None` if it is not base64 at all.
pub fn base64_decode(data: &[u8]) -> Option<Vec<u8>> {
    static STD: OnceLock<GeneralPurpose> = OnceLock::new();
    let engine = STD.get_or_init(|| lenient_engine(&base64::alphabet::STANDARD));
    let mut clean: Vec<u8> = data
        .iter()
        .filter(|b| !b.is_ascii_whitespace() && **b != b'=')
        .map(|&b| match b {
            b'-' => b'+',
            b'_' => b'/',
            b => b,
        })
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    if clean.is_empty() {
        return None;
    }
    engine.decode(&clean).ok()
}

fn hex_decode(run: &[u8]) -> Vec<u8> {
    run.chunks_exact(2)
        .map(|p| (hex_val(p[0]).unwrap_or(0) << 4 | hex_val(p[1]).unwrap_or(0)) as u8)
        .collect()
}

/// Whether decoded bytes are worth reading: text (mostly printable UTF-8, or UTF-16/32),
/// or compressed data recognised by its magic.
fn plausible(d: &[u8]) -> bool {
    if d.len() < MIN_DECODED {
        return false;
    }
    if extract::sniff_compression(d).is_some() || extract::charset::detect(d, None).is_some() {
        return true;
    }
    let text = String::from_utf8_lossy(d);
    let (mut good, mut all) = (0usize, 0usize);
    for c in text.chars() {
        all += 1;
        if c != '\u{FFFD}' && (!c.is_control() || matches!(c, '\n' | '\r' | '\t')) {
            good += 1;
        }
    }
    good * 10 >= all * 9
}

/// Whether the run at `s` is the claims part of a JWS/JWT (`eyJ….<here>.…` whose first
/// part decodes to a JOSE header naming its `alg`). The token is a credential that the
/// rule packs match as a whole; its claims (an e-mail address, a subject id) belong to
/// it, and decoding them would make every bearer token with an `email` claim a finding.
fn jwt_claims(v: &[u8], s: usize) -> bool {
    if s < 2 || v[s - 1] != b'.' {
        return false;
    }
    let head_start = v[..s - 1]
        .iter()
        .rposition(|&b| !is_base64_byte(b))
        .map_or(0, |p| p + 1);
    let head = &v[head_start..s - 1];
    head.starts_with(b"eyJ")
        && base64_decode(head).is_some_and(|h| memmem::find(&h, b"\"alg\"").is_some())
}

/// Media types whose content is text (read whatever a plausibility check says).
fn is_text_media(media: &str) -> bool {
    let m = media.trim().to_ascii_lowercase();
    m.is_empty()
        || m.starts_with("text/")
        || m.ends_with("json")
        || m.ends_with("xml")
        || m.contains("javascript")
        || m.contains("x-www-form-urlencoded")
        || m.contains("yaml")
        || m.contains("toml")
}

// --- data: URLs --------------------------------------------------------------------

/// `data:[<media type>][;base64],<data>`: (payload start, payload end, media type,
/// base64?).
fn data_urls(v: &[u8]) -> Vec<(usize, usize, String, bool)> {
    let mut out = Vec::new();
    for at in memmem::find_iter(v, b"data:") {
        let head_start = at + 5;
        let Some(comma) = v[head_start..]
            .iter()
            .take(256)
            .position(|&b| b == b',')
            .map(|p| head_start + p)
        else {
            continue;
        };
        let head = &v[head_start..comma];
        if head.iter().any(|b| b.is_ascii_whitespace() || *b == b'"') {
            continue;
        }
        let b64 = head.len() >= 7 && head[head.len() - 7..].eq_ignore_ascii_case(b";base64");
        let media =
            String::from_utf8_lossy(head.split(|&b| b == b';').next().unwrap_or(b"")).into_owned();
        let start = comma + 1;
        let end = start
            + v[start..]
                .iter()
                .take_while(|&&b| {
                    if b64 {
                        is_base64_byte(b) || b == b'=' || b == b'%'
                    } else {
                        !b.is_ascii_whitespace() && !matches!(b, b'"' | b'\'' | b')' | b'<' | b'>')
                    }
                })
                .count();
        if end > start {
            out.push((start, end, media, b64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::extract::{Location, Source};

    fn seg(text: &str) -> Segment<'_> {
        Segment::raw(Location::Body, Source::Body, text.as_bytes(), true)
    }

    /// Every layer decoded from `text`: (path, view).
    fn layers_of(text: &str) -> Vec<(String, String)> {
        let mut segs = vec![seg(text)];
        let mut budget = Budget::new(1 << 20);
        expand(&mut segs, &mut budget, 4);
        segs[1..]
            .iter()
            .map(|s| {
                let p = s
                    .layers
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(" › ");
                (p, String::from_utf8_lossy(&s.view).into_owned())
            })
            .collect()
    }

    fn finds(text: &str, path: &str, needle: &str) {
        let got = layers_of(text);
        assert!(
            got.iter().any(|(p, v)| p == path && v.contains(needle)),
            "{path} ∌ {needle}: {got:#?}"
        );
    }

    /// The raw text a finding of `needle` in the layer maps back to.
    fn raw_of(text: &str, path: &str, needle: &str) -> String {
        let mut segs = vec![seg(text)];
        let mut budget = Budget::new(1 << 20);
        expand(&mut segs, &mut budget, 4);
        for s in &segs[1..] {
            let p = s
                .layers
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(" › ");
            if p == path {
                if let Some(at) = memmem::find(&s.view, needle.as_bytes()) {
                    let (a, b) = s.raw_span(at, at + needle.len());
                    return text[a..b].to_string();
                }
            }
        }
        panic!("{needle} not in {path}");
    }

    const KEY: &str = "AKIAQYLPMN5HFIQR7VUX";

    #[test]
    fn base64_and_base64url_runs() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let b = STANDARD.encode(format!("aws_access_key_id={KEY}"));
        finds(&format!("config: {b} end"), "base64", KEY);
        assert_eq!(raw_of(&format!("config: {b} end"), "base64", KEY), b);
        let u = URL_SAFE_NO_PAD.encode(format!("{{\"k\":\"{KEY}\"}}??>>"));
        assert!(u.contains('-') || u.contains('_'), "{u}");
        finds(&format!("/cb?state={u}&x=1"), "base64url › json", KEY);
        // Wrapped at 76 columns, as `base64` prints it.
        let long = STANDARD.encode(format!("{}{KEY}", "x".repeat(100)));
        let wrapped: Vec<String> = long
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        finds(&wrapped.join("\n"), "base64", KEY);
        // Base64 of a PEM and of a JSON document.
        let pem = STANDARD
            .encode("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n");
        finds(&pem, "base64", "BEGIN RSA PRIVATE KEY");
    }

    #[test]
    fn jwt_claims_and_images_are_not_decoded() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(r#"{"email":"li.wei@example.org","sub":"1234567890"}"#);
        let jwt = format!("{head}.{claims}.c2lnbmF0dXJlc2lnbmF0dXJl");
        let got = layers_of(&format!("Bearer {jwt}"));
        assert!(got.iter().all(|(_, v)| !v.contains("li.wei")), "{got:?}");
        // The same claims, not in a JWT, are read.
        // (No `-` or `_` in this encoding, so it is named plain base64.)
        finds(
            &format!("x {claims} y"),
            "base64 › json",
            "li.wei@example.org",
        );
        // An image's base64 is dropped after a prefix; a data: URL of one too.
        let png: Vec<u8> = [0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]
            .into_iter()
            .chain((0..4000u32).map(|i| (i * 7919 % 251) as u8))
            .collect();
        assert!(layers_of(&STANDARD.encode(&png)).is_empty());
        assert!(layers_of(&format!("data:image/png;base64,{}", STANDARD.encode(&png))).is_empty());
    }

    #[test]
    fn identifiers_and_hashes_are_not_decoded() {
        let text = "ConfigurationManagerFactory snake_case_identifier_name 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(layers_of(text).is_empty(), "{:?}", layers_of(text));
    }

    #[test]
    fn hex_runs() {
        let h: String = KEY.bytes().map(|b| format!("{b:02x}")).collect();
        finds(&format!("blob {h}"), "hex", KEY);
        let card: String = "4111111111111111"
            .bytes()
            .map(|b| format!("{b:02X}"))
            .collect();
        finds(&card, "hex", "4111111111111111");
    }

    #[test]
    fn percent_entities_escapes_qp() {
        finds(
            "mail=li.wei%40example.org",
            "percent-encoding",
            "li.wei@example.org",
        );
        assert_eq!(
            raw_of("mail=li.wei%40example.org", "percent-encoding", "@"),
            "%40"
        );
        finds("%u0041KIA", "percent-encoding", "AKIA");
        finds("<k>&#65;&#x4B;&#73;&#x41;QYLP</k>", "entities", "AKIAQYLP");
        finds("a&commat;b&period;example", "entities", "a@b.example");
        finds(r#"key: "\x41\x4B\x49\x41""#, "escapes", "AKIA");
        finds(r"\u0041\U0000004B\u{49}\101", "escapes", "AKIA");
        finds("k=3D41=\r\n11 1111=20", "quoted-printable", "k=4111 1111 ");
        assert!(layers_of("a=1f and b=2").is_empty());
    }

    #[test]
    fn layers_nest() {
        use base64::engine::general_purpose::STANDARD;
        // base64 of percent-encoded text.
        let b = STANDARD.encode("mail: li.wei%40example.org please");
        finds(&b, "base64 › percent-encoding", "li.wei@example.org");
        // Entities of percent-encoding.
        finds("&#37;40 then x&#37;41y", "entities › percent-encoding", "@");
    }

    #[test]
    fn data_urls_and_compressed_runs() {
        use base64::engine::general_purpose::STANDARD;
        use std::io::Write;
        let json = STANDARD.encode(format!("{{\"key\": \"{KEY}\"}}"));
        finds(
            &format!("<img src=\"data:application/json;base64,{json}\">"),
            "data-url › json",
            KEY,
        );
        finds("data:,hi%20AKIA", "data-url", "hi AKIA");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        e.write_all(format!("secret {KEY}").as_bytes()).unwrap();
        let gz = STANDARD.encode(e.finish().unwrap());
        finds(&gz, "base64 › gzip", KEY);
    }

    #[test]
    fn depth_and_budget_are_bounded() {
        use base64::engine::general_purpose::STANDARD;
        let mut s = format!("k {KEY}");
        for _ in 0..8 {
            s = STANDARD.encode(s);
        }
        let mut segs = vec![seg(&s)];
        let mut budget = Budget::new(1 << 20);
        expand(&mut segs, &mut budget, 4);
        assert!(segs.iter().all(|x| x.depth <= 4));
        assert_eq!(segs.len(), 5);
        let mut segs = vec![seg(&s)];
        let mut budget = Budget::new(10);
        expand(&mut segs, &mut budget, 4);
        assert!(budget.exceeded);
    }
}
