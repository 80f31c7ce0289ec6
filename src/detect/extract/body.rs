//! Reading a body (after `Content-Encoding` is undone) the way lenient receivers do.
//!
//! - **Charsets**: UTF-16 and UTF-32 (by byte-order mark, by a declared `charset`, or by
//!   the pattern of NUL bytes ASCII text leaves in them) are transcoded, then read by
//!   content like any other body.
//! - **Compression nobody declared** (gzip, zstd, zlib, recognised by magic bytes) is
//!   undone and read as well; the compressed bytes are still scanned as they are.
//! - **gRPC** (`application/grpc*`, `grpc-web`, `grpc-web-text`): each length-prefixed
//!   message, decompressed by `grpc-encoding` when its flag says so.
//! - **Multipart** (`multipart/*` with a boundary; CRLF or bare LF): the preamble, each
//!   part's header block (field names, file names, types), each part body read by its
//!   own type and `Content-Transfer-Encoding` (base64, quoted-printable), the epilogue.
//! - **JSON** by type, or by content whatever the type says (`curl -d '{...}'` labels
//!   JSON as a form): see [`super::json`]. A document that claims JSON but does not
//!   parse is unescaped string by string.
//! - **Forms**: `+` → space and percent-decoding. When the declared type and the content
//!   disagree (a form-typed body that is valid JSON, a JSON-typed body that is a form),
//!   both readings are scanned.
//! - Anything else: the bytes as they are.

use super::charset;
use super::decode::{self, Compression};
use super::json;
use super::offsets::{OffsetMap, ViewBuilder};
use super::{percent_decode_into, show_name, Budget, Layer, Location, Segment, Source};
use memchr::memmem;
use std::borrow::Cow;

/// Readings nest (a part holding gzip holding a multipart body …) at most this deep.
const MAX_READING_DEPTH: usize = 8;

/// How the body was understood, which decides how it is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Json,
    Form,
    Multipart,
    /// Valid UTF-8 of any other type.
    Text,
    /// Not rewritable text (not UTF-8, transcoded, compressed, gRPC): scanned, never
    /// rewritten.
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

/// Where the buffer being read sits.
#[derive(Clone, Copy)]
enum Origin<'m> {
    /// At this offset of the source buffer, byte for byte.
    Raw(usize),
    /// A decoded buffer; the map takes it back to the source.
    Mapped(&'m OffsetMap),
}

impl Origin<'_> {
    /// A local map (view → this buffer) taken to the source.
    fn map(&self, local: OffsetMap, view_len: usize) -> OffsetMap {
        match self {
            Origin::Raw(0) => local,
            Origin::Raw(base) => local.shifted(*base),
            Origin::Mapped(outer) => local.compose(view_len, outer),
        }
    }

    fn identity(&self) -> OffsetMap {
        match self {
            Origin::Raw(base) => OffsetMap::identity(*base),
            Origin::Mapped(outer) => (*outer).clone(),
        }
    }

    /// `start..end` of the buffer as one atomic span of the source: for decoded bytes that
    /// cannot be mapped back one by one (base64, decompression).
    fn whole(&self, start: usize, end: usize) -> OffsetMap {
        match self {
            Origin::Raw(base) => OffsetMap::whole(base + start, end - start),
            Origin::Mapped(m) => {
                let (a, b) = m.raw_span(start, end);
                OffsetMap::whole(a, b - a)
            }
        }
    }

    /// The buffer's range in the source, when it is a slice of it.
    fn doc(&self, len: usize) -> Option<(usize, usize)> {
        match self {
            Origin::Raw(base) => Some((*base, base + len)),
            Origin::Mapped(_) => None,
        }
    }
}

/// What the reader knows besides the bytes.
struct Reader<'b> {
    grpc_encoding: Option<&'b str>,
    budget: &'b mut Budget,
    nested_json: usize,
}

/// The type parameters that matter here.
struct ContentType<'c> {
    essence: String,
    raw: Option<&'c str>,
}

impl<'c> ContentType<'c> {
    fn parse(ct: Option<&'c str>) -> ContentType<'c> {
        ContentType {
            essence: ct
                .and_then(|c| c.split(';').next())
                .map(|s| s.trim().to_ascii_lowercase())
                .unwrap_or_default(),
            raw: ct,
        }
    }

    fn param(&self, name: &str) -> Option<String> {
        self.raw?.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().trim_matches('"').to_string())
        })
    }

    fn is_json(&self) -> bool {
        let e = self.essence.as_str();
        e == "application/json"
            || e.ends_with("+json")
            || e == "text/json"
            || e.ends_with("/x-ndjson")
            || e == "application/jsonl"
    }

    fn is_form(&self) -> bool {
        self.essence == "application/x-www-form-urlencoded"
    }
}

/// Build the scannable view of a decoded body from its `Content-Type` (budget: the
/// body's own size again, for readings of compressed or encoded data inside it).
pub fn body_view<'a>(content_type: Option<&str>, body: &'a [u8]) -> BodyView<'a> {
    let mut budget = Budget::new(body.len().saturating_mul(2).max(1 << 20));
    body_view_with(content_type, None, body, &mut budget)
}

/// [`body_view`] with the request's `grpc-encoding` and a shared decoding budget.
pub fn body_view_with<'a>(
    content_type: Option<&str>,
    grpc_encoding: Option<&str>,
    body: &'a [u8],
    budget: &mut Budget,
) -> BodyView<'a> {
    let mut segments = Vec::new();
    let mut reader = Reader {
        grpc_encoding,
        budget,
        nested_json: 0,
    };
    let kind = reader.read(
        &mut segments,
        body,
        Origin::Raw(0),
        &ContentType::parse(content_type),
        &[],
        true,
        0,
    );
    BodyView {
        kind,
        segments,
        nested_json: reader.nested_json,
    }
}

/// Read a run decoded from `parent` (a base64 run, a `data:` URL payload; `map` takes
/// it to the source) by its content: JSON, compressed, wide text, or as it is.
pub(crate) fn read_decoded(
    parent: &Segment<'_>,
    layer: Layer,
    data: Vec<u8>,
    map: OffsetMap,
    media_type: Option<&str>,
    budget: &mut Budget,
) -> Vec<Segment<'static>> {
    let mut prefix = parent.layers.clone();
    prefix.push(layer);
    let mut reader = Reader {
        grpc_encoding: None,
        budget,
        nested_json: 0,
    };
    let mut local: Vec<Segment<'_>> = Vec::new();
    reader.read(
        &mut local,
        &data,
        Origin::Mapped(&map),
        &ContentType::parse(media_type.filter(|m| !m.is_empty())),
        &prefix,
        parent.redactable,
        1,
    );
    local
        .into_iter()
        .map(|s| Segment {
            location: parent.location.clone(),
            source: parent.source,
            depth: parent.depth + 1,
            ..s.into_owned()
        })
        .collect()
}

fn segment<'d>(
    layers: Vec<Layer>,
    view: Cow<'d, [u8]>,
    map: OffsetMap,
    redactable: bool,
) -> Segment<'d> {
    Segment {
        location: Location::Body,
        source: Source::Body,
        layers,
        view,
        map,
        redactable,
        depth: 0,
    }
}

fn with(prefix: &[Layer], more: &[Layer]) -> Vec<Layer> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(more);
    v
}

/// The first byte that is not whitespace, after an optional UTF-8 byte-order mark.
fn first_meaningful(data: &[u8]) -> Option<u8> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    data.iter().find(|b| !b.is_ascii_whitespace()).copied()
}

impl Reader<'_> {
    /// Read `data` as content of type `ct`, appending its segments to `out`. Returns how
    /// the outermost reading understood it.
    #[allow(clippy::too_many_arguments)]
    fn read<'d>(
        &mut self,
        out: &mut Vec<Segment<'d>>,
        data: &'d [u8],
        origin: Origin<'_>,
        ct: &ContentType<'_>,
        prefix: &[Layer],
        redactable: bool,
        depth: usize,
    ) -> BodyKind {
        if data.is_empty() {
            return BodyKind::Empty;
        }
        if depth >= MAX_READING_DEPTH {
            out.push(segment(
                prefix.to_vec(),
                Cow::Borrowed(data),
                origin.identity(),
                false,
            ));
            return BodyKind::Binary;
        }
        // Wide charsets: transcode, then read the text like any other body.
        if let Some(wide) = charset::detect(data, ct.param("charset").as_deref()) {
            if self.budget.take(data.len() * 2) {
                let (text, local) = charset::transcode(data, wide);
                let map = origin.map(local, text.len());
                let stripped = ct.raw.map(strip_charset);
                let inner = ContentType::parse(stripped.as_deref());
                self.read_owned(
                    out,
                    text,
                    map,
                    &inner,
                    &with(prefix, &[Layer::Charset(wide.name())]),
                    false,
                    depth,
                );
                // The bytes as they are too: a binary file may merely start like UTF-16.
                out.push(segment(
                    prefix.to_vec(),
                    Cow::Borrowed(data),
                    origin.identity(),
                    false,
                ));
                return BodyKind::Binary;
            }
        }
        // Compression nobody declared: read the decompressed bytes too.
        if let Some(c) = decode::sniff_compression(data) {
            self.read_compressed(out, c, data, origin, prefix, depth);
        }
        if ct.essence.starts_with("application/grpc") {
            if let Some(kind) = self.read_grpc(out, data, origin, ct, prefix, depth) {
                return kind;
            }
        }
        if ct.essence.starts_with("multipart/") {
            if let Some(b) = ct
                .param("boundary")
                .filter(|b| !b.is_empty() && b.len() <= 200)
            {
                if let Some(mp) = parse_multipart(data, b.as_bytes()) {
                    self.read_multipart(out, data, &mp, origin, prefix, redactable, depth);
                    return BodyKind::Multipart;
                }
            }
        }
        if !ct.essence.starts_with("multipart/") {
            // A body that opens with a delimiter line is multipart whatever its label
            // says (a saved body given to `clawguard scan`, a mislabelled upload): its
            // parts are read too, and the bytes as they are below.
            if let Some(mp) = sniffed_boundary(data).and_then(|b| parse_multipart(data, b)) {
                if !mp.parts.is_empty() {
                    self.read_multipart(out, data, &mp, origin, prefix, redactable, depth);
                }
            }
        }
        if ct.raw.is_none() && looks_like_compressed_grpc(data) {
            // Unlabelled gRPC frames (a captured stream given to `clawguard scan`): only
            // compressed messages hide anything from the raw reading below.
            let grpc = ContentType::parse(Some("application/grpc"));
            self.read_grpc(out, data, origin, &grpc, prefix, depth);
        }
        let text = std::str::from_utf8(data).is_ok();
        let sniffed_json = !ct.essence.starts_with("multipart/")
            && matches!(first_meaningful(data), Some(b'{' | b'['));
        if ct.is_json() || sniffed_json {
            if let Some(kind) = self.read_json(out, data, origin, prefix, redactable) {
                if ct.is_form() {
                    // Declared a form: a form parser reads it too.
                    self.read_form(out, data, origin, prefix, redactable, true);
                }
                return kind;
            }
            if ct.is_json() {
                // Claims JSON but does not parse: still unescape strings so escapes
                // cannot hide a value; redaction is then plain text replacement.
                let (view, local) = json::json_view_lenient(data);
                let map = origin.map(local, view.len());
                out.push(segment(
                    with(prefix, &[Layer::JsonLenient]),
                    view,
                    map,
                    redactable && text,
                ));
                if looks_like_form(data) {
                    self.read_form(out, data, origin, prefix, redactable && text, true);
                }
                return if text {
                    BodyKind::Text
                } else {
                    BodyKind::Binary
                };
            }
        }
        if ct.is_form() {
            self.read_form(out, data, origin, prefix, redactable, false);
            return BodyKind::Form;
        }
        out.push(segment(
            prefix.to_vec(),
            Cow::Borrowed(data),
            origin.identity(),
            redactable && text,
        ));
        if text {
            BodyKind::Text
        } else {
            BodyKind::Binary
        }
    }

    /// Read a buffer decoded here (owned): its segments own their views.
    #[allow(clippy::too_many_arguments)] // `read`'s arguments, for a buffer it owns
    fn read_owned<'d>(
        &mut self,
        out: &mut Vec<Segment<'d>>,
        data: Vec<u8>,
        map: OffsetMap,
        ct: &ContentType<'_>,
        prefix: &[Layer],
        redactable: bool,
        depth: usize,
    ) {
        let mut local: Vec<Segment<'_>> = Vec::new();
        self.read(
            &mut local,
            &data,
            Origin::Mapped(&map),
            ct,
            prefix,
            redactable,
            depth + 1,
        );
        out.extend(local.into_iter().map(Segment::into_owned));
    }

    fn read_compressed<'d>(
        &mut self,
        out: &mut Vec<Segment<'d>>,
        c: Compression,
        data: &[u8],
        origin: Origin<'_>,
        prefix: &[Layer],
        depth: usize,
    ) {
        if let Ok(plain) = decode::decompress(c, data, self.budget.left()) {
            if self.budget.take(plain.len()) {
                let map = origin.map(OffsetMap::whole(0, data.len()), plain.len());
                let layers = with(prefix, &[Layer::Decompressed(c.name())]);
                self.read_owned(
                    out,
                    plain,
                    map,
                    &ContentType::parse(None),
                    &layers,
                    false,
                    depth,
                );
            }
        } else if self.budget.left() == 0 {
            self.budget.exceeded = true;
        }
    }

    fn read_json<'d>(
        &mut self,
        out: &mut Vec<Segment<'d>>,
        data: &'d [u8],
        origin: Origin<'_>,
        prefix: &[Layer],
        redactable: bool,
    ) -> Option<BodyKind> {
        let (view, local, nested) = json::json_view(data)?;
        self.nested_json += nested;
        let map = origin.map(local, view.len());
        let layer = Layer::Json {
            doc: origin.doc(data.len()),
        };
        out.push(segment(with(prefix, &[layer]), view, map, redactable));
        Some(BodyKind::Json)
    }

    fn read_form<'d>(
        &mut self,
        out: &mut Vec<Segment<'d>>,
        data: &'d [u8],
        origin: Origin<'_>,
        prefix: &[Layer],
        redactable: bool,
        second: bool,
    ) {
        let (view, local) = form_view(data);
        let map = origin.map(local, view.len());
        // As a second reading, only when decoding changed something.
        if second && view == data {
            return;
        }
        out.push(segment(
            with(prefix, &[Layer::Form]),
            Cow::Owned(view),
            map,
            redactable,
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn read_multipart<'d>(
        &mut self,
        out: &mut Vec<Segment<'d>>,
        data: &'d [u8],
        mp: &Multipart,
        origin: Origin<'_>,
        prefix: &[Layer],
        redactable: bool,
        depth: usize,
    ) {
        let sub = |r: (usize, usize)| match origin {
            Origin::Raw(base) => Origin::Raw(base + r.0),
            o => o,
        };
        let slice_map = |r: (usize, usize)| match origin {
            Origin::Raw(base) => OffsetMap::identity(base + r.0),
            Origin::Mapped(m) => {
                let mut local = OffsetMap::default();
                local.push_copy(0, r.0);
                local.compose(r.1 - r.0, m)
            }
        };
        let text_seg = |layer: Layer, r: (usize, usize)| {
            let bytes = &data[r.0..r.1];
            let text = std::str::from_utf8(bytes).is_ok();
            segment(
                with(prefix, &[layer]),
                Cow::Borrowed(bytes),
                slice_map(r),
                redactable && text,
            )
        };
        if !data[mp.preamble.0..mp.preamble.1].trim_ascii().is_empty() {
            out.push(text_seg(Layer::Preamble, mp.preamble));
        }
        for (i, part) in mp.parts.iter().enumerate() {
            let index = i + 1;
            let head = &data[part.headers.0..part.headers.1];
            let headers = PartHeaders::parse(head);
            if !head.is_empty() {
                out.push(text_seg(Layer::PartHeaders { index }, part.headers));
            }
            let layer = Layer::Part {
                index,
                name: headers.name.as_deref().map(|n| show_name(n.as_bytes())),
            };
            let body = &data[part.body.0..part.body.1];
            if body.is_empty() {
                continue;
            }
            let ct = ContentType::parse(headers.content_type.as_deref());
            let layers = with(prefix, &[layer]);
            let encoding = headers.transfer_encoding.as_deref();
            let decoded = match encoding {
                Some("base64") => crate::detect::layers::base64_decode(body)
                    .map(|d| (origin.whole(part.body.0, part.body.1), d, Layer::Base64)),
                Some("quoted-printable") => {
                    let (d, local_map) = crate::detect::layers::quoted_printable(body);
                    let map = local_map.compose(d.len(), &slice_map(part.body));
                    Some((map, d, Layer::QuotedPrintable))
                }
                _ => None,
            };
            if let Some((map, decoded, layer)) = decoded {
                if self.budget.take(decoded.len()) {
                    let l = with(&layers, &[layer]);
                    self.read_owned(out, decoded, map, &ct, &l, redactable, depth);
                }
            }
            match encoding {
                // The encoded text is scanned as well (a value may sit there as is).
                Some("base64") => out.push(text_seg(Layer::Part { index, name: None }, part.body)),
                Some("quoted-printable") => {}
                _ => {
                    self.read(
                        out,
                        body,
                        sub(part.body),
                        &ct,
                        &layers,
                        redactable,
                        depth + 1,
                    );
                }
            }
        }
        if !data[mp.epilogue.0..mp.epilogue.1].trim_ascii().is_empty() {
            out.push(text_seg(Layer::Epilogue, mp.epilogue));
        }
    }

    fn read_grpc<'d>(
        &mut self,
        out: &mut Vec<Segment<'d>>,
        data: &'d [u8],
        origin: Origin<'_>,
        ct: &ContentType<'_>,
        prefix: &[Layer],
        depth: usize,
    ) -> Option<BodyKind> {
        if ct.essence.starts_with("application/grpc-web-text") {
            // Base64 of the frames.
            let frames = crate::detect::layers::base64_decode(data)?;
            if !self.budget.take(frames.len()) {
                return None;
            }
            let map = origin.map(OffsetMap::whole(0, data.len()), frames.len());
            let inner = ContentType::parse(Some("application/grpc-web"));
            let mut local = Vec::new();
            let kind = self.read_grpc(
                &mut local,
                &frames,
                Origin::Mapped(&map),
                &inner,
                &with(prefix, &[Layer::Base64]),
                depth + 1,
            );
            out.extend(local.into_iter().map(Segment::into_owned));
            return kind;
        }
        let frames = grpc_frames(data)?;
        for (index, (flags, r)) in frames.into_iter().enumerate() {
            let msg = &data[r.0..r.1];
            let layers = with(prefix, &[Layer::Grpc { index }]);
            let msg_origin = match origin {
                Origin::Raw(base) => Origin::Raw(base + r.0),
                o => o,
            };
            let slice_map;
            let msg_origin = match msg_origin {
                Origin::Mapped(m) => {
                    let mut local = OffsetMap::default();
                    local.push_copy(0, r.0);
                    slice_map = local.compose(msg.len(), m);
                    Origin::Mapped(&slice_map)
                }
                o => o,
            };
            if flags & 0x01 != 0 {
                let coding = self.grpc_encoding.unwrap_or("gzip").to_string();
                let Ok(plain) = decode::decode_coding(&coding, msg, self.budget.left()) else {
                    out.push(segment(
                        layers,
                        Cow::Borrowed(msg),
                        msg_origin.identity(),
                        false,
                    ));
                    continue;
                };
                if self.budget.take(plain.len()) {
                    let whole = msg_origin.whole(0, msg.len());
                    let name: &'static str = match coding.trim().to_ascii_lowercase().as_str() {
                        "deflate" => "deflate",
                        "br" => "br",
                        "zstd" => "zstd",
                        _ => "gzip",
                    };
                    let l = with(&layers, &[Layer::Decompressed(name)]);
                    self.read_owned(
                        out,
                        plain,
                        whole,
                        &ContentType::parse(None),
                        &l,
                        false,
                        depth,
                    );
                }
            } else {
                self.read(
                    out,
                    msg,
                    msg_origin,
                    &ContentType::parse(None),
                    &layers,
                    false,
                    depth + 1,
                );
            }
        }
        Some(BodyKind::Binary)
    }
}

/// A `Content-Type` without its `charset` parameter (the transcoded text is UTF-8).
fn strip_charset(ct: &str) -> String {
    ct.split(';')
        .filter(|p| {
            !p.split_once('=')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Text a form parser would split into fields: `name=value` pairs, no JSON structure.
fn looks_like_form(data: &[u8]) -> bool {
    memchr::memchr(b'=', data).is_some() && !matches!(first_meaningful(data), Some(b'{' | b'['))
}

/// Whether `data` is exactly a sequence of gRPC frames (flags 0/1, 0x80/0x81 for
/// trailers) with at least one compressed message.
fn looks_like_compressed_grpc(data: &[u8]) -> bool {
    if data.first().is_none_or(|f| f & !0x81 != 0) {
        return false;
    }
    grpc_frames(data).is_some_and(|frames| {
        frames.iter().all(|(f, _)| f & !0x81 == 0) && frames.iter().any(|(f, _)| f & 1 != 0)
    })
}

/// The boundary of a body whose first line (after blank space) is a multipart delimiter
/// (`--` and 1 to 70 RFC 2046 `bchars`, then a line break).
fn sniffed_boundary(data: &[u8]) -> Option<&[u8]> {
    let start = data.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = data[start..].strip_prefix(b"--")?;
    let line_end = memchr::memchr(b'\n', &rest[..rest.len().min(72)])?;
    let line = &rest[..line_end];
    let boundary = line.strip_suffix(b"\r").unwrap_or(line);
    let bchar = |b: &u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(b);
    (!boundary.is_empty()
        && boundary.len() <= 70
        && !boundary.ends_with(b" ")
        && boundary.iter().all(bchar))
    .then_some(boundary)
}

/// gRPC length-prefixed messages: `[flags u8][length u32 BE][message]` until the end.
/// `None` if the body is not exactly a sequence of such frames.
fn grpc_frames(data: &[u8]) -> Option<Vec<(u8, (usize, usize))>> {
    let mut frames = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let head = data.get(i..i + 5)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let start = i + 5;
        let end = start.checked_add(len).filter(|&e| e <= data.len())?;
        frames.push((head[0], (start, end)));
        i = end;
    }
    Some(frames)
}

/// The decoded view of an urlencoded form body.
pub fn form_view(body: &[u8]) -> (Vec<u8>, OffsetMap) {
    let mut vb = ViewBuilder::default();
    percent_decode_into(&mut vb, body, 0, body.len(), true);
    (vb.out, vb.map)
}

// ---------------------------------------------------------------------------------
// Multipart

/// Byte ranges of a multipart body (RFC 2046, read leniently).
#[derive(Debug, PartialEq, Eq)]
struct Multipart {
    preamble: (usize, usize),
    parts: Vec<PartRange>,
    epilogue: (usize, usize),
}

#[derive(Debug, PartialEq, Eq)]
struct PartRange {
    headers: (usize, usize),
    body: (usize, usize),
}

/// Find `--boundary` at the start of a line (after CRLF or LF) at or after `from`.
/// Returns (start of the line break before it or the delimiter itself, delimiter start).
fn find_delimiter(body: &[u8], delim: &[u8], from: usize) -> Option<(usize, usize)> {
    let finder = memmem::Finder::new(delim);
    let mut search = from;
    loop {
        let d = search + finder.find(body.get(search..)?)?;
        if d == 0 {
            return Some((0, 0));
        }
        if body[d - 1] == b'\n' {
            let cut = if d >= 2 && body[d - 2] == b'\r' {
                d - 2
            } else {
                d - 1
            };
            return Some((cut.max(from), d));
        }
        search = d + 1;
    }
}

/// Where the line that starts at `from` ends, after its line break.
fn next_line(body: &[u8], from: usize) -> usize {
    match memchr::memchr(b'\n', &body[from..]) {
        Some(p) => from + p + 1,
        None => body.len(),
    }
}

fn parse_multipart(body: &[u8], boundary: &[u8]) -> Option<Multipart> {
    let delim = [b"--".as_slice(), boundary].concat();
    let (pre_end, mut d) = find_delimiter(body, &delim, 0)?;
    let preamble = (0, pre_end);
    let mut parts = Vec::new();
    loop {
        let after = d + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            // Close delimiter: the rest of its line, then the epilogue.
            let epi = next_line(body, after);
            return Some(Multipart {
                preamble,
                parts,
                epilogue: (epi, body.len()),
            });
        }
        let head_start = next_line(body, after);
        // Headers end at an empty line (CRLF CRLF, or LF LF).
        let (headers, body_start) = if body[head_start..].starts_with(b"\r\n") {
            ((head_start, head_start), head_start + 2)
        } else if body[head_start..].starts_with(b"\n") {
            ((head_start, head_start), head_start + 1)
        } else {
            let rest = &body[head_start..];
            let crlf = memmem::find(rest, b"\r\n\r\n").map(|p| (p, 4));
            let lf = memmem::find(rest, b"\n\n").map(|p| (p, 2));
            let (p, n) = match (crlf, lf) {
                (Some(a), Some(b)) => {
                    if a.0 <= b.0 {
                        a
                    } else {
                        b
                    }
                }
                (a, b) => a.or(b)?,
            };
            ((head_start, head_start + p), head_start + p + n)
        };
        let body_start = body_start.min(body.len());
        match find_delimiter(body, &delim, body_start) {
            Some((cut, next)) => {
                parts.push(PartRange {
                    headers,
                    body: (body_start, cut.max(body_start)),
                });
                d = next;
            }
            None => {
                // No closing delimiter: the part runs to the end (lenient).
                parts.push(PartRange {
                    headers,
                    body: (body_start, body.len()),
                });
                return Some(Multipart {
                    preamble,
                    parts,
                    epilogue: (body.len(), body.len()),
                });
            }
        }
    }
}

/// The part headers that decide how its body is read.
#[derive(Debug, Default)]
struct PartHeaders {
    content_type: Option<String>,
    transfer_encoding: Option<String>,
    name: Option<String>,
}

impl PartHeaders {
    fn parse(block: &[u8]) -> PartHeaders {
        let mut h = PartHeaders::default();
        let text = String::from_utf8_lossy(block);
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-type" => h.content_type = Some(v.to_string()),
                "content-transfer-encoding" => h.transfer_encoding = Some(v.to_ascii_lowercase()),
                "content-disposition" => {
                    h.name = v.split(';').skip(1).find_map(|p| {
                        let (k, v) = p.split_once('=')?;
                        (k.trim().eq_ignore_ascii_case("name"))
                            .then(|| v.trim().trim_matches('"').to_string())
                    })
                }
                _ => {}
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(v: &BodyView<'_>) -> Vec<(String, String)> {
        v.segments
            .iter()
            .map(|s| {
                let path = s
                    .layers
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(" › ");
                (path, String::from_utf8_lossy(&s.view).into_owned())
            })
            .collect()
    }

    #[test]
    fn multipart_every_part_and_lenient_line_ends() {
        let body = b"preamble text\n--b\nContent-Disposition: form-data; name=\"f\"; filename=\"secret.txt\"\nContent-Type: text/plain\n\nhello\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nk=3D4111=\r\n1111\r\n--b--\r\nepilogue here\r\n";
        let v = body_view(Some("multipart/mixed; boundary=b"), body);
        assert_eq!(v.kind, BodyKind::Multipart);
        let got = views(&v);
        let has = |path: &str, view: &str| {
            assert!(
                got.iter().any(|(p, v)| p == path && v == view),
                "{path}: {view:?} not in {got:#?}"
            )
        };
        has("preamble", "preamble text");
        has(
            "part 1 headers",
            "Content-Disposition: form-data; name=\"f\"; filename=\"secret.txt\"\nContent-Type: text/plain",
        );
        has("part 1 (f)", "hello");
        has("part 2 › base64", "hello world");
        has("part 3 › quoted-printable", "k=41111111");
        has("epilogue", "epilogue here\r\n");
        // Each view maps back into the body.
        for s in &v.segments {
            let (a, b) = s.raw_span(0, s.view.len());
            assert!(a <= b && b <= body.len());
        }
        let qp = v
            .segments
            .iter()
            .find(|s| s.layers.last() == Some(&Layer::QuotedPrintable))
            .unwrap();
        let (a, b) = qp.raw_span(0, qp.view.len());
        assert_eq!(&body[a..b], b"k=3D4111=\r\n1111");
    }

    #[test]
    fn a_body_opening_with_a_delimiter_is_read_as_multipart_whatever_its_label() {
        let body = b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"cfg\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nk=3D41=\r\n11\r\n--XyZ--\r\n";
        for ct in [None, Some("text/plain"), Some("application/octet-stream")] {
            let got = views(&body_view(ct, body));
            assert!(
                got.iter()
                    .any(|(p, v)| p == "part 1 (cfg) › quoted-printable" && v == "k=4111"),
                "{ct:?}: {got:#?}"
            );
            // The bytes as they are, too.
            assert!(got.iter().any(|(p, _)| p.is_empty()), "{ct:?}: {got:#?}");
        }
        // Not a delimiter line: no multipart reading.
        for text in [
            &b"-- \nsignature"[..],
            b"--\n",
            b"--a b \r\nx",
            b"x\r\n--XyZ\r\n\r\nx\r\n--XyZ--",
        ] {
            assert!(sniffed_boundary(text).is_none() || parse_multipart(text, b"a b").is_none());
            let got = views(&body_view(None, text));
            assert!(got.iter().all(|(p, _)| !p.starts_with("part")), "{got:#?}");
        }
    }

    #[test]
    fn unlabelled_grpc_frames_with_a_compressed_message_are_read() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, b"\n\x05hello").unwrap();
        let msg = gz.finish().unwrap();
        let mut body = vec![1u8];
        body.extend((msg.len() as u32).to_be_bytes());
        body.extend_from_slice(&msg);
        body.extend_from_slice(&[0, 0, 0, 0, 2, b'o', b'k']);
        let got = views(&body_view(None, &body));
        assert!(
            got.iter()
                .any(|(p, v)| p == "grpc message 0 › gzip" && v == "\n\x05hello"),
            "{got:#?}"
        );
        // Uncompressed frames only, or bytes that are no frame sequence: as they are.
        assert!(!looks_like_compressed_grpc(&[0, 0, 0, 0, 2, b'o', b'k']));
        assert!(!looks_like_compressed_grpc(&[1, 0, 0, 0, 9, b'o', b'k']));
        assert!(!looks_like_compressed_grpc(b"\x01\x00\x00\x00\x00trailing"));
    }

    #[test]
    fn form_typed_json_gets_both_readings() {
        let body = br#"{"note": "a%40b.example", "x": "\u0041"}"#;
        let v = body_view(Some("application/x-www-form-urlencoded"), body);
        assert_eq!(v.kind, BodyKind::Json);
        let got = views(&v);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].0 == "json" && got[0].1.contains("\"x\": \"A\""));
        assert!(got[1].0 == "form" && got[1].1.contains("a@b.example"));
    }

    #[test]
    fn json_typed_form_gets_both_readings() {
        let v = body_view(Some("application/json"), b"user=li&mail=a%40b.example");
        assert_eq!(v.kind, BodyKind::Text);
        let got = views(&v);
        assert!(
            got.iter()
                .any(|(p, v)| p == "form" && v.contains("a@b.example")),
            "{got:?}"
        );
    }

    #[test]
    fn bom_and_trailing_bytes_still_read_as_json() {
        let v = body_view(
            Some("text/plain"),
            b"\xEF\xBB\xBF{\"k\": \"\\u0041\"}\ngarbage",
        );
        assert_eq!(v.kind, BodyKind::Json);
        assert!(String::from_utf8_lossy(&v.segments[0].view).contains("\"k\": \"A\""));
    }

    #[test]
    fn unlabelled_gzip_is_read() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        e.write_all(b"{\"k\": \"v\\u0041\"}").unwrap();
        let gz = e.finish().unwrap();
        let v = body_view(Some("application/octet-stream"), &gz);
        let got = views(&v);
        assert!(
            got.iter()
                .any(|(p, v)| p == "gzip › json" && v == "{\"k\": \"vA\"}"),
            "{got:?}"
        );
        let s = v.segments.iter().find(|s| !s.layers.is_empty()).unwrap();
        assert_eq!(s.raw_span(0, 3), (0, gz.len()));
        assert!(!s.redactable);
    }

    #[test]
    fn utf16_and_utf32_bodies_are_transcoded() {
        let text = "{\"k\": \"AKIA\"}";
        let le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let mut be_bom = vec![0xFE, 0xFF];
        be_bom.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
        let le32: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        for (body, name) in [
            (&le, "utf-16le"),
            (&be_bom, "utf-16be"),
            (&le32, "utf-32le"),
        ] {
            let v = body_view(Some("application/json"), body);
            let got = views(&v);
            assert!(
                got.iter()
                    .any(|(p, v)| p == &format!("{name} › json") && v == text),
                "{name}: {got:?}"
            );
            let s = &v.segments[0];
            let at = s.view.windows(4).position(|w| w == b"AKIA").unwrap();
            let (a, b) = s.raw_span(at, at + 4);
            assert_eq!(b - a, if name == "utf-32le" { 16 } else { 8 }, "{name}");
            assert_eq!(v.kind, BodyKind::Binary);
        }
    }

    #[test]
    fn grpc_messages_are_read_and_decompressed() {
        use std::io::Write;
        let msg1 = b"\x0a\x05hello";
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        e.write_all(b"\x0a\x14AKIAQYLPMN5HFIQR7VUX").unwrap();
        let msg2 = e.finish().unwrap();
        let mut body = vec![0u8];
        body.extend((msg1.len() as u32).to_be_bytes());
        body.extend_from_slice(msg1);
        body.push(1);
        body.extend((msg2.len() as u32).to_be_bytes());
        body.extend_from_slice(&msg2);
        let mut budget = Budget::new(1 << 20);
        let v = body_view_with(
            Some("application/grpc+proto"),
            Some("gzip"),
            &body,
            &mut budget,
        );
        let got = views(&v);
        assert!(
            got.iter()
                .any(|(p, v)| p == "grpc message 0" && v.ends_with("hello")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|(p, v)| p == "grpc message 1 › gzip" && v.contains("AKIAQYLPMN5HFIQR7VUX")),
            "{got:?}"
        );
    }
}
