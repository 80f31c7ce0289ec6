//! Turning a request into scannable segments, each with a map back to the bytes it
//! came from, so a finding in any decoded view names, and redaction edits, the original.
//!
//! Every part of a request is read (see [`request_segments`] and [`body`]):
//! - the method, the authority (host and port), the userinfo (`user:password@`), the
//!   path and query (percent-decoded, `+` as a space in the query);
//! - every header name, and every header value except two that never leave the proxy
//!   as sent: `Proxy-Authorization` (the client's credentials *for ClawGuard*, consumed
//!   and never forwarded) and `Content-Length` (framing: a decimal length the HTTP
//!   parser has already validated and the proxy re-computes). `Authorization: Basic`
//!   is also read decoded (`user:password`, what `curl https://user:KEY@host/` sends),
//!   and a `Cookie` header one pair at a time;
//! - the body, by `Content-Encoding` (undone; the wire bytes are read too, since a
//!   gzip comment or a zstd skippable frame carries plain bytes no decoder returns) and
//!   then by content, the way lenient receivers read it: see [`body`].
//!
//! Each reading becomes a [`Segment`]; [`crate::detect::layers`] then adds the encoding
//! layers found inside any segment (base64, hex, percent, entities, escapes,
//! quoted-printable, `data:` URLs, Unicode compatibility forms). The [`Layer`] list of a
//! segment is its path from the request part, shown as `body › json messages[2].content
//! › base64`.
//!
//! Text and binary alike are scanned (the scanner works on bytes), but only a reading
//! whose bytes can be rewritten in place is redactable: rewriting bytes inside a binary
//! format (an image, a gRPC frame, UTF-16 text) would corrupt it, so a finding there that
//! asks for redaction is escalated to block by the caller.

pub mod body;
pub mod charset;
pub mod decode;
pub mod json;
pub mod offsets;

pub use body::{body_view, body_view_with, form_view, BodyKind, BodyView};
pub use decode::{decode_body, decompress, sniff_compression, Compression};
pub use json::{json_paths, json_prefix, json_view, json_view_lenient};
pub use offsets::OffsetMap;

use memchr::{memchr, memchr2};
use offsets::ViewBuilder;
use serde::{Serialize, Serializer};
use std::borrow::Cow;

/// Where in the request a finding was found. Decides home-host binding (a credential
/// authenticates a request only in the URL or a header value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// The request target: path, query, authority, userinfo.
    Url,
    /// A header value, by its lower-case name.
    Header(String),
    /// A header *name* (a value smuggled as a name authenticates nothing).
    HeaderName,
    /// The request method (an extension method can carry any token).
    Method,
    Body,
}

impl Location {
    pub fn as_str(&self) -> &'static str {
        match self {
            Location::Url => "url",
            Location::Header(_) => "header",
            Location::HeaderName => "header-name",
            Location::Method => "method",
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
    #[error("decoding layers need more than the inspection budget ([inspection] max_layer_bytes)")]
    LayerBudget,
}

// ---------------------------------------------------------------------------------
// Segments

/// Which raw buffer a segment's map points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The request method.
    Method,
    /// The host and port of the request target's authority.
    Authority,
    /// The userinfo (`user:password`) of the request target's authority.
    Userinfo,
    /// The request target's path-and-query string.
    Uri,
    /// The request's header names, joined by `\n` in `HeaderMap::iter()` order.
    HeaderNames,
    /// The value of the n-th entry of `HeaderMap::iter()`.
    Header(usize),
    /// The body after `Content-Encoding` is undone.
    Body,
    /// The body as sent, still `Content-Encoding`d.
    Wire,
}

/// One step of the path from a request part to the bytes a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// The JSON reading of a document. `doc` is the document's range in the source
    /// buffer when it was read straight from it, which lets a finding name its JSON path.
    Json {
        doc: Option<(usize, usize)>,
    },
    /// A body that claims JSON but does not parse, unescaped string by string.
    JsonLenient,
    /// An `application/x-www-form-urlencoded` reading.
    Form,
    /// The plain-text reading beside another (type and content disagree).
    Text,
    /// The n-th part of a multipart body (1-based), with its field name when it has one.
    Part {
        index: usize,
        name: Option<String>,
    },
    /// The header block of the n-th multipart part (names, file names, types).
    PartHeaders {
        index: usize,
    },
    /// Bytes before a multipart body's first boundary.
    Preamble,
    /// Bytes after a multipart body's closing boundary.
    Epilogue,
    /// The n-th gRPC length-prefixed message (0-based).
    Grpc {
        index: usize,
    },
    /// One `name=value` pair of a `Cookie` header.
    Cookie {
        name: String,
    },
    /// `Authorization: Basic` decoded.
    BasicCredentials,
    /// Undone compression: a declared coding (`gzip`, `br`, …) or one found by magic.
    Decompressed(&'static str),
    /// Text transcoded from a wide charset (`utf-16le`, …).
    Charset(&'static str),
    /// The body's wire bytes, before `Content-Encoding` is undone.
    Wire,
    /// Encoding layers (see [`crate::detect::layers`]).
    Base64,
    Base64Url,
    Hex,
    Percent,
    Entities,
    Escapes,
    QuotedPrintable,
    DataUrl,
    /// Unicode compatibility forms folded, format characters dropped.
    Normalized,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::Json { .. } => f.write_str("json"),
            Layer::JsonLenient => f.write_str("json (lenient)"),
            Layer::Form => f.write_str("form"),
            Layer::Text => f.write_str("text"),
            Layer::Part {
                index,
                name: Some(n),
            } => write!(f, "part {index} ({n})"),
            Layer::Part { index, name: None } => write!(f, "part {index}"),
            Layer::PartHeaders { index } => write!(f, "part {index} headers"),
            Layer::Preamble => f.write_str("preamble"),
            Layer::Epilogue => f.write_str("epilogue"),
            Layer::Grpc { index } => write!(f, "grpc message {index}"),
            Layer::Cookie { name } => write!(f, "cookie {name}"),
            Layer::BasicCredentials => f.write_str("basic credentials"),
            Layer::Decompressed(c) => f.write_str(c),
            Layer::Charset(c) => f.write_str(c),
            Layer::Wire => f.write_str("wire bytes"),
            Layer::Base64 => f.write_str("base64"),
            Layer::Base64Url => f.write_str("base64url"),
            Layer::Hex => f.write_str("hex"),
            Layer::Percent => f.write_str("percent-encoding"),
            Layer::Entities => f.write_str("entities"),
            Layer::Escapes => f.write_str("escapes"),
            Layer::QuotedPrintable => f.write_str("quoted-printable"),
            Layer::DataUrl => f.write_str("data-url"),
            Layer::Normalized => f.write_str("unicode"),
        }
    }
}

/// A name (a JSON key, a cookie or form field name) as shown in a layer path: as written
/// when it looks like a field name; masked otherwise, since a name may itself be the
/// value a rule matched.
pub fn show_name(raw: &[u8]) -> String {
    let word = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$' | b' ');
    let separated = raw.iter().any(|b| matches!(b, b'_' | b'-' | b'.' | b' '));
    let lower = raw.iter().filter(|b| b.is_ascii_lowercase()).count();
    let plain = !raw.is_empty()
        && raw.len() <= 32
        && raw.iter().all(word)
        && raw.iter().filter(|b| b.is_ascii_digit()).count() < 4
        // A long name with no separators reads as a field name only when it is mostly
        // lower case (`maxCompletionTokens`), not a key (`AKIAQYLPMN5HFIQR7VUX`).
        && (raw.len() <= 12 || separated || lower * 10 >= raw.len() * 6);
    if plain {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        format!("\"{}\"", crate::detect::scan::preview(raw))
    }
}

/// One piece of the request to scan.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    pub location: Location,
    pub source: Source,
    /// The path from the request part to this view (empty: the part as it is).
    pub layers: Vec<Layer>,
    /// The bytes to scan.
    pub view: Cow<'a, [u8]>,
    /// View offsets → raw offsets in `source`.
    pub map: OffsetMap,
    /// Whether a span in this segment can be replaced without breaking the format.
    pub redactable: bool,
    /// Encoding layers decoded to reach this view (bounded by `max_layer_depth`).
    pub depth: u8,
}

impl<'a> Segment<'a> {
    /// A part of the request read as it is.
    pub fn raw(location: Location, source: Source, view: &'a [u8], redactable: bool) -> Self {
        Segment {
            location,
            source,
            layers: Vec::new(),
            view: Cow::Borrowed(view),
            map: OffsetMap::identity(0),
            redactable,
            depth: 0,
        }
    }

    /// The raw span (in `source`) of a finding at `start..end` of the view.
    pub fn raw_span(&self, start: usize, end: usize) -> (usize, usize) {
        self.map.raw_span(start, end)
    }

    /// A segment read from this one: same part, one more layer.
    pub fn child<'b>(&self, layer: Layer, view: Vec<u8>, map: OffsetMap) -> Segment<'b> {
        let mut layers = self.layers.clone();
        layers.push(layer);
        Segment {
            location: self.location.clone(),
            source: self.source,
            layers,
            view: Cow::Owned(view),
            map,
            redactable: self.redactable,
            depth: self.depth,
        }
    }

    pub fn into_owned<'b>(self) -> Segment<'b> {
        Segment {
            location: self.location,
            source: self.source,
            layers: self.layers,
            view: Cow::Owned(self.view.into_owned()),
            map: self.map,
            redactable: self.redactable,
            depth: self.depth,
        }
    }

    /// The layer path as shown to people (`body › json messages[2].content › base64`),
    /// given the JSON path of the finding in this segment's JSON reading, if any.
    pub fn describe(&self, json_path: Option<&str>) -> String {
        let layers = self.describe_layers(json_path);
        if layers.is_empty() {
            self.location.to_string()
        } else {
            format!("{} › {layers}", self.location)
        }
    }

    /// [`Segment::describe`] without the request part (`json content › base64`).
    pub fn describe_layers(&self, json_path: Option<&str>) -> String {
        let mut out = String::new();
        let mut json_path = json_path.filter(|p| !p.is_empty());
        for l in &self.layers {
            if !out.is_empty() {
                out.push_str(" › ");
            }
            out.push_str(&l.to_string());
            if let (Layer::Json { doc: Some(_) }, Some(p)) = (l, json_path) {
                out.push(' ');
                out.push_str(p);
                json_path = None;
            }
        }
        out
    }

    /// The JSON document (a range of the source) this segment's path names keys in.
    fn json_doc(&self) -> Option<(usize, usize)> {
        self.layers.iter().find_map(|l| match l {
            Layer::Json { doc } => *doc,
            _ => None,
        })
    }
}

/// The JSON paths of many findings at once: `items` are (segment index, raw start);
/// `source` gives a segment's raw buffer. One walk per JSON document, however many
/// findings it holds.
pub fn json_paths_of<'s>(
    segs: &[Segment<'_>],
    items: &[(usize, usize)],
    source: impl Fn(Source) -> Option<&'s [u8]>,
) -> Vec<Option<String>> {
    let mut out = vec![None; items.len()];
    // (source, document range) → (offset in the document, item index).
    type Groups = std::collections::HashMap<(Source, (usize, usize)), Vec<(usize, usize)>>;
    let mut groups = Groups::new();
    for (k, &(seg, raw)) in items.iter().enumerate() {
        let s = &segs[seg];
        if let Some(doc) = s.json_doc() {
            if raw >= doc.0 && raw < doc.1 {
                groups
                    .entry((s.source, doc))
                    .or_default()
                    .push((raw - doc.0, k));
            }
        }
    }
    for ((src, (a, b)), mut offs) in groups {
        let Some(doc) = source(src).and_then(|bytes| bytes.get(a..b)) else {
            continue;
        };
        offs.sort_unstable();
        let offsets: Vec<usize> = offs.iter().map(|o| o.0).collect();
        for (p, (_, k)) in json::json_paths(doc, &offsets).into_iter().zip(offs) {
            out[k] = Some(p);
        }
    }
    out
}

/// Whether a header's value is read at all. `Proxy-Authorization` is the client's
/// credential for ClawGuard itself, consumed by the proxy and never forwarded;
/// `Content-Length` is framing the HTTP parser has already read as a number.
pub fn is_scanned_header(name: &str) -> bool {
    !matches!(name, "proxy-authorization" | "content-length")
}

/// Whether a header's value may be rewritten. `Authorization` is the request's
/// authentication: a partial rewrite makes no sense there, so findings block instead.
pub fn is_redactable_header(name: &str) -> bool {
    name != "authorization"
}

/// Segments for every part of the request but the body: method, authority, userinfo,
/// path and query, header names, header values (cookies pair by pair, Basic credentials
/// decoded). Borrowed where no decoding is needed.
pub fn request_segments<'a>(
    method: &'a http::Method,
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
) -> Vec<Segment<'a>> {
    let mut segs = Vec::with_capacity(headers.len() + 6);
    // Standard methods are plain words no rule matches; only extension methods are read.
    if !is_standard_method(method) {
        segs.push(Segment::raw(
            Location::Method,
            Source::Method,
            method.as_str().as_bytes(),
            false,
        ));
    }
    if let Some(auth) = uri.authority() {
        let a = auth.as_str();
        // `https://user:token@host/`: credentials in the authority. Never rewritten.
        let host_part = match a.rsplit_once('@') {
            Some((userinfo, host)) => {
                let (view, map) = percent_view(userinfo.as_bytes(), false);
                segs.push(Segment {
                    view,
                    map,
                    ..Segment::raw(Location::Url, Source::Userinfo, b"", false)
                });
                host
            }
            None => a,
        };
        let host_off = a.len() - host_part.len();
        segs.push(Segment {
            map: OffsetMap::identity(host_off),
            ..Segment::raw(
                Location::Url,
                Source::Authority,
                host_part.as_bytes(),
                false,
            )
        });
    }
    if let Some(pq) = uri.path_and_query() {
        let s = pq.as_str().as_bytes();
        let (view, map) = url_view(s);
        segs.push(Segment {
            view,
            map,
            ..Segment::raw(Location::Url, Source::Uri, b"", true)
        });
    }
    for (i, (name, value)) in headers.iter().enumerate() {
        let name = name.as_str();
        if !is_scanned_header(name) || value.is_empty() {
            continue;
        }
        let location = Location::Header(name.to_string());
        let redactable = is_redactable_header(name);
        let bytes = value.as_bytes();
        if name == "cookie" {
            cookie_segments(&mut segs, i, bytes);
            continue;
        }
        let seg = Segment::raw(location, Source::Header(i), bytes, redactable);
        if name == "authorization" {
            if let Some(basic) = basic_credentials(&seg) {
                segs.push(basic);
            }
        }
        segs.push(seg);
    }
    segs
}

/// The header names, joined by `\n`: the raw buffer of [`Source::HeaderNames`].
pub fn header_names(headers: &http::HeaderMap) -> String {
    let mut names = String::new();
    for k in headers.keys() {
        for _ in 0..headers.get_all(k).iter().count() {
            names.push_str(k.as_str());
            names.push('\n');
        }
    }
    names
}

/// The segment of the header names ([`header_names`]).
pub fn header_names_segment(names: &str) -> Segment<'_> {
    Segment::raw(
        Location::HeaderName,
        Source::HeaderNames,
        names.as_bytes(),
        false,
    )
}

/// The method as logs and audit records show it: a standard method by name, an
/// extension method masked like a preview (any token can be a method, a key too).
pub fn method_label(m: &http::Method) -> String {
    if is_standard_method(m) {
        m.as_str().to_string()
    } else {
        crate::detect::scan::preview(m.as_str().as_bytes())
    }
}

fn is_standard_method(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::POST
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PATCH
            | http::Method::CONNECT
            | http::Method::TRACE
    )
}

/// `Cookie: a=1; b=2`: one segment per pair, so a finding names its cookie.
fn cookie_segments<'a>(segs: &mut Vec<Segment<'a>>, header: usize, value: &'a [u8]) {
    let mut start = 0;
    for part in value.split(|&b| b == b';') {
        let end = start + part.len();
        let lead = part.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let pair = &value[start + lead..end];
        if !pair.is_empty() {
            let name = pair.split(|&b| b == b'=').next().unwrap_or(b"");
            segs.push(Segment {
                layers: vec![Layer::Cookie {
                    name: show_name(name.trim_ascii()),
                }],
                map: OffsetMap::identity(start + lead),
                ..Segment::raw(
                    Location::Header("cookie".into()),
                    Source::Header(header),
                    pair,
                    true,
                )
            });
        }
        start = end + 1;
    }
}

/// `Authorization: Basic dXNlcjpLRVk=` decoded to `user:KEY` (mapped, as a whole, to the
/// encoded token).
fn basic_credentials(seg: &Segment<'_>) -> Option<Segment<'static>> {
    let v = &seg.view;
    let scheme_end = memchr(b' ', v)?;
    if !v[..scheme_end].eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let token_start = scheme_end + v[scheme_end..].iter().take_while(|&&b| b == b' ').count();
    let token = v[token_start..].trim_ascii_end();
    let decoded = crate::detect::layers::base64_decode(token)?;
    let map = OffsetMap::whole(token_start, token.len());
    Some(seg.child(Layer::BasicCredentials, decoded, map))
}

/// Percent-decode `src[from..to]` into `vb` (raw offsets are offsets in `src`);
/// `plus` turns `+` into a space (query strings and forms).
pub(crate) fn percent_decode_into(
    vb: &mut ViewBuilder,
    src: &[u8],
    from: usize,
    to: usize,
    plus: bool,
) {
    let mut run = from;
    let mut i = from;
    while i < to {
        match src[i] {
            b'%' if i + 2 < to => {
                if let (Some(h), Some(l)) = (json::hex(src[i + 1]), json::hex(src[i + 2])) {
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

/// The percent-decoded view of `s` (borrowed when there is nothing to decode).
fn percent_view(s: &[u8], plus: bool) -> (Cow<'_, [u8]>, OffsetMap) {
    let needs = if plus {
        memchr2(b'%', b'+', s).is_some()
    } else {
        memchr(b'%', s).is_some()
    };
    if !needs {
        return (Cow::Borrowed(s), OffsetMap::identity(0));
    }
    let mut vb = ViewBuilder::default();
    percent_decode_into(&mut vb, s, 0, s.len(), plus);
    (Cow::Owned(vb.out), vb.map)
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

/// Bytes the decoding of one request may still produce (readings of compressed data,
/// transcoded text, encoding layers). Spent, it makes the inspection incomplete, which
/// is treated like any uninspectable body: refused unless `fail_open`.
#[derive(Debug, Clone)]
pub struct Budget {
    left: usize,
    pub exceeded: bool,
}

impl Budget {
    pub fn new(bytes: usize) -> Budget {
        Budget {
            left: bytes,
            exceeded: false,
        }
    }

    /// Bytes that may still be produced.
    pub fn left(&self) -> usize {
        self.left
    }

    /// Spend `n` bytes; false (and `exceeded` set) if there are not that many left.
    pub fn take(&mut self, n: usize) -> bool {
        if n <= self.left {
            self.left -= n;
            true
        } else {
            self.exceeded = true;
            false
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The raw text a view span maps back to.
    fn back<'a>(raw: &'a [u8], map: &OffsetMap, view: &[u8], needle: &str) -> &'a str {
        map.raw_text_of(raw, view, needle)
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
        let segs = request_segments(&http::Method::GET, &uri, &headers);
        let by = |src: Source| segs.iter().find(|s| s.source == src).unwrap();
        let userinfo = by(Source::Userinfo);
        assert_eq!(&userinfo.view[..], b"u:p@ss");
        assert!(!userinfo.redactable);
        let auth = uri.authority().unwrap().as_str().as_bytes();
        assert_eq!(back(auth, &userinfo.map, &userinfo.view, "p@ss"), "p%40ss");
        let host = by(Source::Authority);
        assert_eq!(back(auth, &host.map, &host.view, "h.example"), "h.example");
        let pq_seg = by(Source::Uri);
        assert_eq!(&pq_seg.view[..], b"/a b/c?q=x y@z&t=1");
        let pq = uri.path_and_query().unwrap().as_str().as_bytes();
        assert_eq!(back(pq, &pq_seg.map, &pq_seg.view, "y@z"), "y%40z");
        // Standard methods hold nothing; an extension method is read.
        assert!(!segs.iter().any(|s| s.source == Source::Method));
        let m = http::Method::from_bytes(b"AKIAQYLPMN5HFIQR7VUX").unwrap();
        let segs = request_segments(&m, &uri, &headers);
        assert!(segs
            .iter()
            .any(|s| s.source == Source::Method && s.location == Location::Method));
    }

    #[test]
    fn every_header_but_two_is_read() {
        let mut h = http::HeaderMap::new();
        for (k, v) in [
            (
                "authorization",
                "Basic dXNlcjpBS0lBUVlMUE1ONUhGSVFSN1ZVWA==",
            ),
            ("proxy-authorization", "Basic y"),
            ("cookie", "s=1; token=abc"),
            ("x-api-key", "k"),
            ("x-forwarded-for", "1.2.3.4"),
            ("content-type", "text/plain"),
            ("content-length", "12"),
            ("user-agent", "ua"),
            ("referer", "https://r.example/"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        let uri: http::Uri = "http://h/".parse().unwrap();
        let segs = request_segments(&http::Method::POST, &uri, &h);
        let names: Vec<String> = segs
            .iter()
            .filter_map(|s| match &s.location {
                Location::Header(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                "authorization",
                "authorization",
                "cookie",
                "cookie",
                "x-api-key",
                "x-forwarded-for",
                "content-type",
                "user-agent",
                "referer",
            ]
        );
        // Basic credentials decoded, mapped to the encoded token.
        let basic = segs
            .iter()
            .find(|s| s.layers == [Layer::BasicCredentials])
            .unwrap();
        assert_eq!(basic.layers, [Layer::BasicCredentials]);
        assert_eq!(&basic.view[..], b"user:AKIAQYLPMN5HFIQR7VUX");
        assert_eq!(basic.raw_span(5, 9), (6, 42));
        // Cookies pair by pair, mapped into the header value.
        let token = segs
            .iter()
            .find(|s| {
                s.layers
                    == [Layer::Cookie {
                        name: "token".into(),
                    }]
            })
            .unwrap();
        assert_eq!(&token.view[..], b"token=abc");
        assert_eq!(token.raw_span(6, 9), (11, 14));
        let names = header_names(&h);
        assert!(
            names.starts_with("authorization\nproxy-authorization\n"),
            "{names}"
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
        let part = |i: usize| {
            v.segments
                .iter()
                .find(
                    |s| matches!(s.layers.first(), Some(Layer::Part { index, .. }) if *index == i),
                )
                .unwrap()
        };
        let (a, b) = part(1).raw_span(0, 5);
        assert_eq!(&body[a..b], b"hello");
        assert!(part(1).redactable);
        assert!(!part(2).redactable);
        let (a, b) = part(2).raw_span(0, part(2).view.len());
        assert_eq!(&body[a..b], b"\xff\xfe\x00");
        // Three header blocks, each its own segment.
        let heads = v
            .segments
            .iter()
            .filter(|s| matches!(s.layers[..], [Layer::PartHeaders { .. }]))
            .count();
        assert_eq!(heads, 3);
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
        let out = decode::read_bounded(&data[..], 300_000).unwrap();
        assert_eq!(out.len(), 300_000);
        assert!(out.capacity() <= 300_001, "{}", out.capacity());
        assert_eq!(
            decode::read_bounded(&data[..], 299_999),
            Err(ExtractError::TooLarge)
        );
        assert_eq!(
            decode::read_bounded(&data[..0], 10).unwrap(),
            Vec::<u8>::new()
        );
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
