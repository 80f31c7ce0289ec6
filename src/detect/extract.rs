//! Turning a request into scannable segments, each with a map back to the bytes it
//! came from, so a finding in a decoded view can be redacted in the original.
//!
//! Three sources of raw bytes exist:
//! - the URL: the request target's path-and-query string (`/p?q=1`); the view
//!   percent-decodes it (and `+` → space in the query);
//! - a header value (the raw value bytes, scanned as they are);
//! - the body *after* `Content-Encoding` is undone ([`decode_body`]), which is the
//!   buffer every body span refers to. A redacted body is sent identity-encoded.
//!
//! Body views by `Content-Type`:
//! - JSON (by type, or any non-multipart body that parses as JSON): string literals are
//!   unescaped in place, structure and keys kept, and a string whose content is itself
//!   JSON (LLM tool-call `arguments`) is viewed recursively. A body labelled JSON that
//!   does not parse is still unescaped for scanning, but redacted as plain text;
//! - `application/x-www-form-urlencoded`: `+` → space and percent-decoding;
//! - `multipart/form-data`: one segment per part body;
//! - anything else: the bytes as they are. Text and binary alike are scanned (the
//!   scanner works on bytes), but only text is redactable: rewriting bytes inside a
//!   binary format (an image, a zip) would corrupt it, so a finding there that asks for
//!   redaction is escalated to block by the caller.

use memchr::{memchr, memchr2};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

/// How deep JSON strings that contain JSON are followed.
const MAX_JSON_DEPTH: usize = 8;

/// Where a finding was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    Url,
    /// A header, by its lower-case name.
    Header(String),
    Body,
}

impl Location {
    pub fn as_str(&self) -> &'static str {
        match self {
            Location::Url => "url",
            Location::Header(_) => "header",
            Location::Body => "body",
        }
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Header(name) => write!(f, "header {name}"),
            other => f.write_str(other.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("body is larger than the inspection limit after decoding")]
    TooLarge,
    #[error("body cannot be decoded: {0}")]
    Undecodable(String),
}

// ---------------------------------------------------------------------------------
// Offset maps

/// One run of the view. Copy runs map byte for byte; an atomic run (an escape such as
/// `\n`, `\u00e9` or `%41`) maps as a whole to its raw escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    view: u32,
    raw: u32,
    /// 0 for a copy run, else the raw length of the escape.
    raw_len: u32,
}

/// Maps view offsets back to raw offsets. Compact: one anchor where the mapping
/// changes (at escapes), found by binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetMap {
    anchors: Vec<Anchor>,
}

/// What a stretch of the view maps to.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// Byte for byte, starting at this raw offset.
    Copy(usize),
    /// As a whole to `raw..raw+len`.
    Atomic(usize, usize),
}

impl OffsetMap {
    /// A view identical to `raw[base..]`.
    pub fn identity(base: usize) -> OffsetMap {
        OffsetMap {
            anchors: vec![Anchor {
                view: 0,
                raw: base as u32,
                raw_len: 0,
            }],
        }
    }

    fn index(&self, v: usize) -> usize {
        self.anchors
            .partition_point(|a| a.view as usize <= v)
            .saturating_sub(1)
    }

    /// The raw span for the view span `start..end`. A span that starts or ends inside
    /// an escape is widened to the whole escape, so the raw span never cuts one.
    pub fn raw_span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.anchors.is_empty() {
            return (start, end);
        }
        let a = self.anchors[self.index(start)];
        let rs = if a.raw_len == 0 {
            a.raw as usize + (start - a.view as usize)
        } else {
            a.raw as usize
        };
        if end <= start {
            return (rs, rs);
        }
        let b = self.anchors[self.index(end - 1)];
        let re = if b.raw_len == 0 {
            b.raw as usize + (end - b.view as usize)
        } else {
            (b.raw + b.raw_len) as usize
        };
        (rs, re.max(rs))
    }

    /// Call `f(view_start, view_end, piece)` for the pieces covering `start..end`.
    fn pieces(&self, start: usize, end: usize, mut f: impl FnMut(usize, usize, Piece)) {
        if self.anchors.is_empty() {
            f(start, end, Piece::Copy(start));
            return;
        }
        let mut i = self.index(start);
        let mut pos = start;
        while pos < end {
            let a = self.anchors[i];
            let next = self
                .anchors
                .get(i + 1)
                .map_or(usize::MAX, |n| n.view as usize);
            let stop = next.min(end);
            let piece = if a.raw_len == 0 {
                Piece::Copy(a.raw as usize + (pos - a.view as usize))
            } else {
                Piece::Atomic(a.raw as usize, a.raw_len as usize)
            };
            f(pos, stop, piece);
            pos = stop;
            i += 1;
        }
    }

    fn push_copy(&mut self, view: usize, raw: usize) {
        if let Some(a) = self.anchors.last() {
            if a.raw_len == 0 && a.raw as usize + (view - a.view as usize) == raw {
                return; // continues the current copy run
            }
        }
        self.anchors.push(Anchor {
            view: view as u32,
            raw: raw as u32,
            raw_len: 0,
        });
    }

    fn push_atomic(&mut self, view: usize, raw: usize, raw_len: usize) {
        self.anchors.push(Anchor {
            view: view as u32,
            raw: raw as u32,
            raw_len: raw_len.max(1) as u32,
        });
    }

    /// `self` maps a view to some intermediate buffer, `outer` maps that buffer to raw;
    /// the result maps the view straight to raw.
    fn compose(&self, len: usize, outer: &OffsetMap) -> OffsetMap {
        let mut out = OffsetMap::default();
        self.pieces(0, len, |vs, ve, p| match p {
            Piece::Copy(r) => outer.pieces(r, r + (ve - vs), |is, _, q| match q {
                Piece::Copy(rr) => out.push_copy(vs + (is - r), rr),
                Piece::Atomic(rr, l) => out.push_atomic(vs + (is - r), rr, l),
            }),
            Piece::Atomic(r, l) => {
                let (a, b) = outer.raw_span(r, r + l);
                out.push_atomic(vs, a, b - a);
            }
        });
        out
    }
}

/// A view under construction: bytes plus the map of each byte to raw.
#[derive(Default)]
struct ViewBuilder {
    out: Vec<u8>,
    map: OffsetMap,
}

impl ViewBuilder {
    fn copy(&mut self, bytes: &[u8], raw: usize) {
        if !bytes.is_empty() {
            self.map.push_copy(self.out.len(), raw);
            self.out.extend_from_slice(bytes);
        }
    }

    fn atomic(&mut self, bytes: &[u8], raw: usize, raw_len: usize) {
        if !bytes.is_empty() {
            self.map.push_atomic(self.out.len(), raw, raw_len);
            self.out.extend_from_slice(bytes);
        }
    }

    /// Append `bytes` (offsets `local..` of a buffer that `tr` maps to raw; `None` =
    /// the buffer is raw).
    fn copy_via(&mut self, bytes: &[u8], local: usize, tr: Option<&OffsetMap>) {
        match tr {
            None => self.copy(bytes, local),
            Some(m) => m.pieces(local, local + bytes.len(), |s, e, p| {
                let b = &bytes[s - local..e - local];
                match p {
                    Piece::Copy(r) => self.copy(b, r),
                    Piece::Atomic(r, l) => self.atomic(b, r, l),
                }
            }),
        }
    }

    fn atomic_via(&mut self, bytes: &[u8], ls: usize, le: usize, tr: Option<&OffsetMap>) {
        let (rs, re) = match tr {
            None => (ls, le),
            Some(m) => m.raw_span(ls, le),
        };
        self.atomic(bytes, rs, re - rs);
    }
}

// ---------------------------------------------------------------------------------
// Segments

/// Which raw buffer a segment's map points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request target's path-and-query string.
    Uri,
    /// The userinfo (`user:password`) of the request target's authority.
    Userinfo,
    /// The n-th entry of `HeaderMap::iter()`.
    Header(usize),
    /// The decoded body.
    Body,
}

/// One piece of the request to scan.
#[derive(Debug)]
pub struct Segment<'a> {
    pub location: Location,
    pub source: Source,
    /// The bytes to scan.
    pub view: Cow<'a, [u8]>,
    /// View offsets → raw offsets in `source`.
    pub map: OffsetMap,
    /// Whether a span in this segment can be replaced without breaking the format.
    pub redactable: bool,
}

impl Segment<'_> {
    /// The raw span (in `source`) of a finding at `start..end` of the view.
    pub fn raw_span(&self, start: usize, end: usize) -> (usize, usize) {
        self.map.raw_span(start, end)
    }
}

/// Headers whose values carry data worth scanning. `Proxy-Authorization` is consumed
/// by the proxy itself and never forwarded, so it is not scanned.
pub fn is_data_header(name: &str) -> bool {
    match name {
        "authorization" | "cookie" | "x-api-key" | "api-key" => true,
        n => n.starts_with("x-") && !n.starts_with("x-forwarded-"),
    }
}

/// Whether a header's value may be rewritten. `Authorization` is the request's
/// authentication: a partial rewrite makes no sense there, so findings block instead.
pub fn is_redactable_header(name: &str) -> bool {
    name != "authorization"
}

/// Segments for the URL and the data-carrying headers. Borrowed, no copies unless
/// the URL has percent-escapes.
pub fn request_segments<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Vec<Segment<'a>> {
    let mut segs = Vec::new();
    // `https://user:token@host/`: credentials in the authority. Never rewritten.
    if let Some((userinfo, _)) = uri.authority().and_then(|a| a.as_str().rsplit_once('@')) {
        segs.push(Segment {
            location: Location::Url,
            source: Source::Userinfo,
            view: Cow::Borrowed(userinfo.as_bytes()),
            map: OffsetMap::identity(0),
            redactable: false,
        });
    }
    if let Some(pq) = uri.path_and_query() {
        let s = pq.as_str().as_bytes();
        let (view, map) = url_view(s);
        segs.push(Segment {
            location: Location::Url,
            source: Source::Uri,
            view,
            map,
            redactable: true,
        });
    }
    for (i, (name, value)) in headers.iter().enumerate() {
        let name = name.as_str();
        if is_data_header(name) && !value.is_empty() {
            segs.push(Segment {
                location: Location::Header(name.to_string()),
                source: Source::Header(i),
                view: Cow::Borrowed(value.as_bytes()),
                map: OffsetMap::identity(0),
                redactable: is_redactable_header(name),
            });
        }
    }
    segs
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode `src[from..to]` into `vb` (raw offsets are offsets in `src`);
/// `plus` turns `+` into a space (query strings and forms).
fn percent_decode_into(vb: &mut ViewBuilder, src: &[u8], from: usize, to: usize, plus: bool) {
    let mut run = from;
    let mut i = from;
    while i < to {
        match src[i] {
            b'%' if i + 2 < to => {
                if let (Some(h), Some(l)) = (hex(src[i + 1]), hex(src[i + 2])) {
                    vb.copy(&src[run..i], run);
                    vb.atomic(&[h << 4 | l], i, 3);
                    i += 3;
                    run = i;
                    continue;
                }
                i += 1;
            }
            b'+' if plus => {
                vb.copy(&src[run..i], run);
                // Same length: a copy run maps it positionally.
                vb.copy(b" ", i);
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    vb.copy(&src[run..to], run);
}

/// The percent-decoded view of a path-and-query string.
fn url_view(s: &[u8]) -> (Cow<'_, [u8]>, OffsetMap) {
    if memchr2(b'%', b'+', s).is_none() {
        return (Cow::Borrowed(s), OffsetMap::identity(0));
    }
    let mut vb = ViewBuilder::default();
    let q = memchr(b'?', s).unwrap_or(s.len());
    percent_decode_into(&mut vb, s, 0, q, false);
    percent_decode_into(&mut vb, s, q, s.len(), true);
    (Cow::Owned(vb.out), vb.map)
}

/// The decoded view of an urlencoded form body.
pub fn form_view(body: &[u8]) -> (Vec<u8>, OffsetMap) {
    let mut vb = ViewBuilder::default();
    percent_decode_into(&mut vb, body, 0, body.len(), true);
    (vb.out, vb.map)
}

// ---------------------------------------------------------------------------------
// Content-Encoding

/// Undo `Content-Encoding` (a list: applied in order, so undone in reverse), streaming
/// the decoders into a buffer that never grows past `max` bytes: a compression bomb
/// stops at the cap. Identity bodies are borrowed.
pub fn decode_body<'a>(
    headers: &http::HeaderMap,
    body: &'a [u8],
    max: usize,
) -> Result<Cow<'a, [u8]>, ExtractError> {
    let mut codings: Vec<String> = Vec::new();
    for v in headers.get_all(http::header::CONTENT_ENCODING) {
        let v = v
            .to_str()
            .map_err(|_| ExtractError::Undecodable("Content-Encoding is not ASCII".into()))?;
        for c in v.split(',') {
            let c = c.trim().to_ascii_lowercase();
            if !c.is_empty() && c != "identity" {
                codings.push(c);
            }
        }
    }
    let max = max.min(u32::MAX as usize - 1); // offset maps use u32
    if codings.is_empty() || body.is_empty() {
        if body.len() > max {
            return Err(ExtractError::TooLarge);
        }
        return Ok(Cow::Borrowed(body));
    }
    let mut reader: Box<dyn Read + 'a> = Box::new(body);
    for c in codings.iter().rev() {
        reader = match c.as_str() {
            "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            "deflate" => deflate_reader(reader)?,
            "br" => Box::new(brotli::Decompressor::new(reader, 8192)),
            "zstd" => {
                let mut d = zstd::stream::read::Decoder::new(reader)
                    .map_err(|e| ExtractError::Undecodable(format!("zstd: {e}")))?;
                // Refuse frames that ask for windows over 8 MiB (the size RFC 8878
                // recommends decoders support): the window is allocated up front.
                d.window_log_max(23)
                    .map_err(|e| ExtractError::Undecodable(format!("zstd: {e}")))?;
                Box::new(d)
            }
            other => {
                return Err(ExtractError::Undecodable(format!(
                    "unsupported Content-Encoding `{other}`"
                )))
            }
        };
    }
    read_bounded(reader, max).map(Cow::Owned)
}

/// `deflate` is zlib-wrapped per RFC 9110, but some senders use raw deflate: peek at
/// the first two bytes for a zlib header (CM = 8, FCHECK makes it a multiple of 31).
fn deflate_reader<'a>(r: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>, ExtractError> {
    let mut br = BufReader::new(r);
    let head = br
        .fill_buf()
        .map_err(|e| ExtractError::Undecodable(format!("deflate: {e}")))?;
    let zlib = head.len() >= 2
        && head[0] & 0x0f == 8
        && head[0] >> 4 <= 7
        && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
    Ok(if zlib {
        Box::new(flate2::bufread::ZlibDecoder::new(br))
    } else {
        Box::new(flate2::bufread::DeflateDecoder::new(br))
    })
}

/// Read everything, failing as soon as more than `max` bytes come out. The buffer
/// grows by doubling but never past `max + 1` bytes of capacity, so a compression
/// bomb costs at most the cap in memory (plus one 64 KiB chunk).
fn read_bounded(mut r: impl Read, max: usize) -> Result<Vec<u8>, ExtractError> {
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Never ask for more than one byte past the cap: that byte proves "too large".
        let room = (max + 1 - out.len()).min(chunk.len());
        let n = match r.read(&mut chunk[..room]) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ExtractError::Undecodable(e.to_string())),
        };
        if out.len() + n > max {
            return Err(ExtractError::TooLarge);
        }
        if out.len() + n > out.capacity() {
            let cap = (out.capacity() * 2).max(out.len() + n).min(max + 1);
            out.reserve_exact(cap - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

// ---------------------------------------------------------------------------------
// Body views

/// How the body was understood, which decides how it is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Json,
    Form,
    Multipart,
    /// Valid UTF-8 of any other type.
    Text,
    /// Not UTF-8: scanned raw, never rewritten.
    Binary,
}

/// The body's segments (all with `source: Body`) and how it was parsed.
#[derive(Debug)]
pub struct BodyView<'a> {
    pub kind: BodyKind,
    pub segments: Vec<Segment<'a>>,
    /// JSON strings that held JSON and were viewed recursively (for redaction checks).
    pub nested_json: usize,
}

fn mime_essence(ct: Option<&str>) -> String {
    ct.and_then(|c| c.split(';').next())
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_json_type(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json") || essence == "text/json"
}

fn body_segment(view: Cow<'_, [u8]>, map: OffsetMap, redactable: bool) -> Segment<'_> {
    Segment {
        location: Location::Body,
        source: Source::Body,
        view,
        map,
        redactable,
    }
}

/// Build the scannable view of a decoded body from its `Content-Type`.
pub fn body_view<'a>(content_type: Option<&str>, body: &'a [u8]) -> BodyView<'a> {
    if body.is_empty() {
        return BodyView {
            kind: BodyKind::Empty,
            segments: Vec::new(),
            nested_json: 0,
        };
    }
    let essence = mime_essence(content_type);
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let json_typed = is_json_type(&essence);
    let is_multipart = essence == "multipart/form-data";
    // JSON by type, or sniffed whatever the type says (`curl -d '{...}'` sends JSON
    // labelled as a form): a document that parses is viewed and redacted as JSON.
    if json_typed || (!is_multipart && matches!(first, Some(b'{' | b'['))) {
        if let Some((view, map, nested)) = json_view(body) {
            return BodyView {
                kind: BodyKind::Json,
                segments: vec![body_segment(view, map, true)],
                nested_json: nested,
            };
        }
        if json_typed {
            // Claims JSON but does not parse: still unescape strings so escapes cannot
            // hide a secret; redaction is then plain text replacement.
            let text = std::str::from_utf8(body).is_ok();
            let (view, map) = json_view_lenient(body);
            return BodyView {
                kind: if text {
                    BodyKind::Text
                } else {
                    BodyKind::Binary
                },
                segments: vec![body_segment(view, map, text)],
                nested_json: 0,
            };
        }
    }
    if essence == "application/x-www-form-urlencoded" {
        let (view, map) = form_view(body);
        return BodyView {
            kind: BodyKind::Form,
            segments: vec![body_segment(Cow::Owned(view), map, true)],
            nested_json: 0,
        };
    } else if is_multipart {
        if let Some(segments) = content_type
            .and_then(boundary)
            .and_then(|b| multipart(body, &b))
        {
            return BodyView {
                kind: BodyKind::Multipart,
                segments,
                nested_json: 0,
            };
        }
    }
    let text = std::str::from_utf8(body).is_ok();
    BodyView {
        kind: if text {
            BodyKind::Text
        } else {
            BodyKind::Binary
        },
        segments: vec![body_segment(
            Cow::Borrowed(body),
            OffsetMap::identity(0),
            text,
        )],
        nested_json: 0,
    }
}

/// The `boundary` parameter of a multipart Content-Type.
fn boundary(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        (!v.is_empty() && v.len() <= 200).then(|| v.to_string())
    })
}

/// Split a multipart body (RFC 7578) into one segment per part body. Parts that are
/// not UTF-8 are still scanned but marked not redactable. `None` if malformed.
fn multipart<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Segment<'a>>> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let finder = memchr::memmem::Finder::new(delim);
    // The first delimiter: at the start or after a CRLF (a preamble may precede it).
    let mut pos = if body.starts_with(delim) {
        0
    } else {
        let crlf_delim = [b"\r\n".as_slice(), delim].concat();
        memchr::memmem::find(body, &crlf_delim)? + 2
    };
    let mut segments = Vec::new();
    loop {
        let after = pos + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            return Some(segments); // close delimiter
        }
        // Skip transport padding to the end of the delimiter line.
        let line_end = after + memchr::memmem::find(body.get(after..)?, b"\r\n")? + 2;
        let headers_end = if body.get(line_end..line_end + 2) == Some(b"\r\n") {
            line_end + 2
        } else {
            line_end + memchr::memmem::find(&body[line_end..], b"\r\n\r\n")? + 4
        };
        // The part ends at CRLF + delimiter.
        let mut search = headers_end;
        let end = loop {
            let d = search + finder.find(&body[search..])?;
            if d >= headers_end + 2 && &body[d - 2..d] == b"\r\n" {
                break d - 2;
            }
            search = d + 1;
        };
        let end = end.max(headers_end);
        let part = &body[headers_end..end];
        if !part.is_empty() {
            let text = std::str::from_utf8(part).is_ok();
            segments.push(body_segment(
                Cow::Borrowed(part),
                OffsetMap::identity(headers_end),
                text,
            ));
        }
        pos = end + 2;
    }
}

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
        i += memchr2(b'"', b'\\', &src[i..])?;
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

/// Decoded content that is itself a JSON document (an object or array).
fn looks_like_json(content: &[u8]) -> bool {
    matches!(
        content.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    ) && serde_json::from_slice::<serde::de::IgnoredAny>(content).is_ok()
}

/// The decoded view of a JSON body, or `None` if it does not parse. Borrows the body
/// when nothing needed decoding.
pub fn json_view(body: &[u8]) -> Option<(Cow<'_, [u8]>, OffsetMap, usize)> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    Some(json_view_unchecked(body))
}

/// The view of a body that claims to be JSON but does not parse: its string literals
/// (as far as quotes can be paired) are unescaped all the same. Nothing is verified.
pub fn json_view_lenient(body: &[u8]) -> (Cow<'_, [u8]>, OffsetMap) {
    let (view, map, _) = json_view_unchecked(body);
    (view, map)
}

fn json_view_unchecked(body: &[u8]) -> (Cow<'_, [u8]>, OffsetMap, usize) {
    // The view is at most as long as the body (unescaping only shortens): sized once
    // instead of regrown (and recopied) by doubling.
    let mut vb = ViewBuilder {
        out: Vec::with_capacity(body.len()),
        map: OffsetMap::default(),
    };
    let mut nested = 0;
    if json_into(&mut vb, body, None, 0, &mut nested) {
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
) -> bool {
    let mut flushed = 0; // src[flushed..] is not yet in the view
    let mut i = 0;
    let mut changed = false;
    // Outside strings no other byte can be a quote, so quotes delimit all strings.
    while let Some(p) = memchr(b'"', &src[i..]) {
        let Some(lit) = string_at(src, i + p) else {
            break;
        };
        i = lit.close + 1;
        let (cs, ce) = (lit.open + 1, lit.close);
        let maybe_json =
            depth < MAX_JSON_DEPTH && matches!(first_decoded(&src[cs..ce]), Some(b'{' | b'['));
        if !lit.escaped && !maybe_json {
            continue; // verbatim: stays in the pending copy run
        }
        vb.copy_via(&src[flushed..cs], flushed, tr);
        flushed = ce;
        changed |= lit.escaped;
        if maybe_json {
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
                json_into(vb, &content.out, Some(&composed), depth + 1, nested);
                continue;
            }
        }
        unescape_into(vb, src, cs, ce, tr);
    }
    vb.copy_via(&src[flushed..], flushed, tr);
    changed || tr.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The raw text a view span maps back to.
    fn back<'a>(raw: &'a [u8], map: &OffsetMap, view: &[u8], needle: &str) -> &'a str {
        let s = memchr::memmem::find(view, needle.as_bytes()).expect("needle in view");
        let (a, b) = map.raw_span(s, s + needle.len());
        std::str::from_utf8(&raw[a..b]).unwrap()
    }

    #[test]
    fn json_escapes_and_surrogates_map_back() {
        let raw = br#"{"password": "a\"b\\c\n\u00e9\ud83d\ude00z", "k\u0041y": 1}"#;
        let (view, map, nested) = json_view(raw).unwrap();
        assert_eq!(nested, 0);
        let v = std::str::from_utf8(&view).unwrap();
        assert_eq!(
            v,
            "{\"password\": \"a\"b\\c\n\u{e9}\u{1F600}z\", \"kAy\": 1}"
        );
        // Every char boundary of the view maps onto an escape boundary of the raw text.
        assert_eq!(back(raw, &map, &view, "\u{e9}"), r"\u00e9");
        assert_eq!(back(raw, &map, &view, "\u{1F600}"), r"\ud83d\ude00");
        assert_eq!(back(raw, &map, &view, "b\\c\n"), r#"b\\c\n"#);
        assert_eq!(back(raw, &map, &view, "\"b"), r#"\"b"#);
        assert_eq!(back(raw, &map, &view, "kAy"), r"k\u0041y");
        assert_eq!(back(raw, &map, &view, "password"), "password");
        // A span ending inside a multi-byte char widens to the whole escape.
        let s = memchr::memmem::find(&view, "\u{1F600}".as_bytes()).unwrap();
        assert_eq!(map.raw_span(s, s + 1), map.raw_span(s, s + 4));
    }

    /// Escape `s` as a JSON string body, choosing randomly among equivalent escapes.
    fn escape_randomly(s: &str, rng: &mut impl rand::Rng) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '"' => out.push_str(r#"\""#),
                '\\' => out.push_str(r"\\"),
                '\n' => out.push_str(r"\n"),
                c if (c as u32) < 0x20 || rng.random_bool(0.2) => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn every_char_span_maps_to_an_equivalent_raw_span() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet: Vec<char> = "ab \"\\\n\t/é中😀{}[]:,".chars().collect();
        for round in 0..300 {
            let len = rng.random_range(1..40);
            let value: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            // Every other round the value sits inside a JSON-in-a-string document.
            let (raw, levels) = if round % 2 == 0 {
                let marked = format!("~~{value}");
                (
                    format!(r#"{{"k": "{}"}}"#, escape_randomly(&marked, &mut rng)),
                    1,
                )
            } else {
                let marked = format!("~~{value}");
                let inner = format!(r#"{{"v": "{}"}}"#, escape_randomly(&marked, &mut rng));
                (
                    format!(r#"{{"args": "{}"}}"#, escape_randomly(&inner, &mut rng)),
                    2,
                )
            };
            let (view, map, _) = json_view(raw.as_bytes()).unwrap();
            let view = std::str::from_utf8(&view).unwrap();
            // `~~` (never in the alphabet) marks where the value starts.
            let Some(at) = view.find(&format!("~~{value}")).map(|i| i + 2) else {
                panic!("value not in view: {raw} -> {view}");
            };
            let bounds: Vec<usize> = value
                .char_indices()
                .map(|(i, _)| i)
                .chain([value.len()])
                .collect();
            for _ in 0..10 {
                let mut a = bounds[rng.random_range(0..bounds.len())];
                let mut b = bounds[rng.random_range(0..bounds.len())];
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                if a == b {
                    continue;
                }
                let (ra, rb) = map.raw_span(at + a, at + b);
                // Unescaping the raw span `levels` times gives back the view span.
                let mut text = raw[ra..rb].to_string();
                for _ in 0..levels {
                    text = serde_json::from_str::<String>(&format!("\"{text}\"")).unwrap_or_else(
                        |e| panic!("raw span {ra}..{rb} of {raw} is not whole escapes: {e}"),
                    );
                }
                assert_eq!(text, &value[a..b], "{raw}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_map_in_bounds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let alphabet = b"\"\\u0dD8fFa{}[]:, n%+&=\r\n-\xc3\xa9\xff";
        for _ in 0..3000 {
            let len = rng.random_range(0..60);
            let body: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            for ct in [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=--",
                "text/plain",
            ] {
                let v = body_view(Some(ct), &body);
                for seg in &v.segments {
                    let n = seg.view.len();
                    for _ in 0..5 {
                        if n == 0 {
                            break;
                        }
                        let a = rng.random_range(0..n);
                        let b = rng.random_range(a + 1..=n);
                        let (ra, rb) = seg.raw_span(a, b);
                        assert!(
                            ra <= rb && rb <= body.len(),
                            "{ct} {body:?}: {a}..{b} -> {ra}..{rb}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn lone_surrogate_becomes_replacement_char() {
        let raw = br#"["x\ud800y"]"#;
        let (view, map, _) = json_view(raw).unwrap();
        assert_eq!(std::str::from_utf8(&view).unwrap(), "[\"x\u{FFFD}y\"]");
        assert_eq!(back(raw, &map, &view, "\u{FFFD}"), r"\ud800");
    }

    #[test]
    fn plain_json_is_borrowed() {
        let raw = br#"{"a": "b", "n": [1, 2]}"#;
        let (view, _, _) = json_view(raw).unwrap();
        assert!(matches!(view, Cow::Borrowed(_)));
        assert!(json_view(b"{not json").is_none());
    }

    #[test]
    fn tool_call_arguments_are_viewed_recursively() {
        // A PEM key inside tool-call arguments: its newlines are `\\n` in the raw body.
        let args = serde_json::json!({
            "path": "/tmp/k.pem",
            "content": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        })
        .to_string();
        let body = serde_json::json!({"messages": [{"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "write", "arguments": args}}]}]})
        .to_string();
        let raw = body.as_bytes();
        assert!(body.contains(r"KEY-----\\nMIIEow\\n"));
        let (view, map, nested) = json_view(raw).unwrap();
        assert_eq!(nested, 1);
        let v = std::str::from_utf8(&view).unwrap();
        assert!(
            v.contains("\"content\":\"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END"),
            "{v}"
        );
        assert_eq!(
            back(raw, &map, &view, "KEY-----\nMIIEow\n"),
            r"KEY-----\\nMIIEow\\n"
        );
        assert_eq!(back(raw, &map, &view, "\"content\""), r#"\"content\""#);
        assert_eq!(back(raw, &map, &view, "MIIEow"), "MIIEow");
    }

    #[test]
    fn triple_nesting_composes_maps() {
        let inner = serde_json::json!({"secret": "a\tb"}).to_string();
        let mid = serde_json::json!({"args": inner}).to_string();
        let raw = serde_json::json!({"outer": mid}).to_string();
        let (view, map, nested) = json_view(raw.as_bytes()).unwrap();
        assert_eq!(nested, 2);
        assert!(std::str::from_utf8(&view)
            .unwrap()
            .contains("\"secret\":\"a\tb\""));
        assert_eq!(back(raw.as_bytes(), &map, &view, "a\tb"), r"a\\\\tb");
    }

    #[test]
    fn non_json_string_starting_with_brace_stays_text() {
        let raw = br#"{"t": "{not json\n}"}"#;
        let (view, _, nested) = json_view(raw).unwrap();
        assert_eq!(nested, 0);
        assert_eq!(&view[..], b"{\"t\": \"{not json\n}\"}");
    }

    #[test]
    fn form_and_url_views() {
        let raw = b"user=a+b&card=4111%201111&x=%zz";
        let (view, map) = form_view(raw);
        assert_eq!(&view[..], b"user=a b&card=4111 1111&x=%zz");
        assert_eq!(back(raw, &map, &view, "4111 1111"), "4111%201111");
        assert_eq!(back(raw, &map, &view, "1 1"), "1%201");

        let uri: http::Uri = "http://u:p%40ss@h.example/a%20b/c?q=x+y%40z&t=1"
            .parse()
            .unwrap();
        let headers = http::HeaderMap::new();
        let mut segs = request_segments(&uri, &headers);
        assert_eq!(segs.len(), 2);
        let userinfo = segs.remove(0);
        assert_eq!(
            (userinfo.source, &userinfo.view[..]),
            (Source::Userinfo, &b"u:p%40ss"[..])
        );
        assert!(!userinfo.redactable);
        assert_eq!(&segs[0].view[..], b"/a b/c?q=x y@z&t=1");
        let pq = uri.path_and_query().unwrap().as_str().as_bytes();
        assert_eq!(back(pq, &segs[0].map, &segs[0].view, "y@z"), "y%40z");
    }

    #[test]
    fn selected_headers() {
        let mut h = http::HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer x"),
            ("proxy-authorization", "Basic y"),
            ("cookie", "s=1"),
            ("x-api-key", "k"),
            ("api-key", "k2"),
            ("x-custom", "c"),
            ("x-forwarded-for", "1.2.3.4"),
            ("content-type", "text/plain"),
            ("user-agent", "ua"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        let uri: http::Uri = "http://h/".parse().unwrap();
        let names: Vec<String> = request_segments(&uri, &h)
            .into_iter()
            .filter_map(|s| match s.location {
                Location::Header(n) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                "authorization",
                "cookie",
                "x-api-key",
                "api-key",
                "x-custom"
            ]
        );
        assert_eq!(
            serde_json::to_string(&Location::Header("x".into())).unwrap(),
            "\"header\""
        );
    }

    #[test]
    fn multipart_parts() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"b.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xfe\x00\r\n--XyZ\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--XyZ--\r\n";
        let v = body_view(Some("multipart/form-data; boundary=\"XyZ\""), body);
        assert_eq!(v.kind, BodyKind::Multipart);
        assert_eq!(v.segments.len(), 2);
        let (a, b) = v.segments[0].raw_span(0, 5);
        assert_eq!(&body[a..b], b"hello");
        assert!(v.segments[0].redactable);
        assert_eq!(&v.segments[1].view[..], b"\xff\xfe\x00");
        assert!(!v.segments[1].redactable);
        // Malformed multipart is scanned as plain text.
        let v = body_view(Some("multipart/form-data; boundary=nope"), b"hello");
        assert_eq!(v.kind, BodyKind::Text);
    }

    #[test]
    fn body_kinds() {
        assert_eq!(body_view(None, b"{\"a\":1}").kind, BodyKind::Json);
        assert_eq!(
            body_view(Some("application/json"), b"{bad").kind,
            BodyKind::Text
        );
        assert_eq!(body_view(Some("text/xml"), b"<a/>").kind, BodyKind::Text);
        assert_eq!(
            body_view(Some("image/png"), b"\x89PNG\xff").kind,
            BodyKind::Binary
        );
        assert_eq!(
            body_view(Some("application/json"), b"").kind,
            BodyKind::Empty
        );
    }

    fn headers_with_encoding(enc: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, enc.parse().unwrap());
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn content_encodings_round_trip() {
        let data = b"{\"msg\": \"hello hello hello AKIAQYLPMN5HFIQR7VUX\"}".repeat(20);
        let zlib = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let raw_deflate = {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let br = {
            let mut out = Vec::new();
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(&data).unwrap();
            drop(w);
            out
        };
        let zst = zstd::encode_all(&data[..], 3).unwrap();
        for (enc, body) in [
            ("gzip", gzip(&data)),
            ("x-gzip", gzip(&data)),
            ("deflate", zlib),
            ("deflate", raw_deflate),
            ("br", br),
            ("zstd", zst),
            ("identity", data.clone()),
            // Stacked: gzip applied first, then zstd.
            ("gzip, zstd", zstd::encode_all(&gzip(&data)[..], 1).unwrap()),
        ] {
            let out = decode_body(&headers_with_encoding(enc), &body, 1 << 20)
                .unwrap_or_else(|e| panic!("{enc}: {e}"));
            assert_eq!(&out[..], &data[..], "{enc}");
        }
        assert!(matches!(
            decode_body(&headers_with_encoding("compress"), b"x", 100),
            Err(ExtractError::Undecodable(_))
        ));
        assert!(matches!(
            decode_body(&headers_with_encoding("gzip"), b"not gzip", 100),
            Err(ExtractError::Undecodable(_))
        ));
        assert_eq!(
            decode_body(&headers_with_encoding("gzip"), &gzip(&data), 100),
            Err(ExtractError::TooLarge)
        );
        assert_eq!(
            decode_body(&http::HeaderMap::new(), &data, 100),
            Err(ExtractError::TooLarge)
        );
    }

    #[test]
    fn bounded_buffer_never_grows_past_the_cap() {
        let data = vec![7u8; 300_000];
        let out = read_bounded(&data[..], 300_000).unwrap();
        assert_eq!(out.len(), 300_000);
        assert!(out.capacity() <= 300_001, "{}", out.capacity());
        assert_eq!(
            read_bounded(&data[..], 299_999),
            Err(ExtractError::TooLarge)
        );
        assert_eq!(read_bounded(&data[..0], 10).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn empty_encoded_body_is_empty() {
        let out = decode_body(&headers_with_encoding("gzip"), b"", 100).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn gzip_bomb_stops_at_the_cap() {
        // 1 GiB of zeros, compressed by streaming the encoder (~1 MB output).
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
        let cap = 16 << 20;
        let started = std::time::Instant::now();
        assert_eq!(
            decode_body(&headers_with_encoding("gzip"), &bomb, cap),
            Err(ExtractError::TooLarge)
        );
        // Stopping at the cap means decoding ~16 MiB, not 1 GiB.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
