//! Restoring placeholders inside JSON documents: a whole response body, or one event of
//! a stream (an SSE `data:` payload, an NDJSON line, an element of a streamed array).
//!
//! # Streams and fragments
//!
//! Streaming APIs send the model's output in *fragments*: a string field whose values
//! over successive events concatenate to the output (`choices[i].delta.content`,
//! `delta.tool_calls[j].function.arguments`, Anthropic's `delta.text` and
//! `delta.partial_json`, the Responses API's `delta`, Gemini's `parts[].text`). A
//! placeholder may be split between two fragments of one stream. So, per stream (keyed
//! by the fragment's path with every array position replaced by the element's own
//! `index` where it has one, plus the event's top-level `type`/`index`/`output_index`/
//! `content_index`):
//!
//! - a fragment that ends with bytes that could still be the start of a placeholder
//!   (`…call CG_PHO`) is sent without them; they are held back (at most 28 bytes) and
//!   put in front of the next fragment of the same stream, where the placeholder is
//!   complete and restored;
//! - when the stream does not continue (an event with no fragment at all — a finish,
//!   stop, done or ping event — or the end of the response), the held bytes are sent in
//!   an event of their own, built from the last fragment's event with only its
//!   structural members (`index`, `type`, the top-level envelope) and the held text;
//! - an event that holds no placeholder and ends no fragment with a possible prefix is
//!   passed on unchanged, without being parsed, in the same call.
//!
//! # Escaping
//!
//! The value goes back escaped for where it lands: once inside a JSON string (text
//! fragments, any string of a whole document), twice when the fragment is itself JSON
//! (tool-call arguments) and the placeholder sits inside one of *its* strings. For that
//! the decoded text of each JSON-fragment stream is followed with [`Inner`] across
//! fragments, so a string or an escape split between events is tracked exactly.
//!
//! Fail-closed: a document that does not lex as JSON is passed on unchanged (held
//! bytes of other streams are sent first); a placeholder the restorer does not know
//! stays as it is.

use super::json::{self, Doc, Inner, Kind};
use super::ApiKind;
use crate::detect::pseudonymize::placeholder::{self, find_placeholders, partial_suffix_len};
use crate::detect::pseudonymize::Restorer;
use memchr::memmem;
use std::borrow::Cow;
use std::collections::HashMap;

/// Streams followed at once per response (choices × tool calls × content blocks); more
/// are restored without carrying held bytes across events.
const MAX_STREAMS: usize = 256;

/// String members never restored into: identifiers and enumerations, not model text.
const NOT_TEXT: &[&[u8]] = &[
    b"id",
    b"type",
    b"role",
    b"name",
    b"object",
    b"model",
    b"signature",
    b"stop_reason",
    b"stop_sequence",
    b"finish_reason",
    b"finishReason",
    b"status",
    b"system_fingerprint",
    b"service_tier",
    b"obfuscation",
    b"encrypted_content",
    b"modelVersion",
    b"responseId",
];

/// Members whose string value is itself a JSON document (tool-call arguments).
const JSON_TEXT: &[&[u8]] = &[b"arguments", b"partial_json"];

/// Counters for one response (what was restored; never which values).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub restored: u64,
    /// Placeholder-shaped text the restorer did not know (left as it was).
    pub unknown: u64,
}

/// An event the filter adds: the held-back tail of a stream that did not continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synthetic {
    /// The framing's own lines of the event it was built from (SSE `event:` line).
    pub fields: Vec<u8>,
    pub doc: Vec<u8>,
}

/// What one event became.
#[derive(Debug)]
pub struct Processed<'a> {
    /// Events to send before this one (held bytes of streams that ended).
    pub before: Vec<Synthetic>,
    pub doc: Cow<'a, [u8]>,
}

#[derive(Debug, Default)]
struct Stream {
    json: bool,
    inner: Inner,
    /// Held-back bytes (a possible placeholder start; raw = decoded, ASCII).
    carry: Vec<u8>,
    /// The held bytes' event: document before and after the fragment's content.
    template: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Skip,
    Whole { json: bool },
    Fragment { json: bool },
}

/// Restores placeholders in the JSON documents of one response.
pub struct Events {
    restorer: Restorer,
    kind: ApiKind,
    streams: HashMap<Vec<u8>, Stream>,
    /// Streams with held bytes.
    pending: usize,
    pub stats: Stats,
    prefix: memmem::Finder<'static>,
}

impl Events {
    pub fn new(restorer: Restorer, kind: ApiKind) -> Events {
        Events {
            restorer,
            kind,
            streams: HashMap::new(),
            pending: 0,
            stats: Stats::default(),
            prefix: memmem::Finder::new(placeholder::PREFIX),
        }
    }

    /// Restore a complete, non-streamed document.
    pub fn whole<'a>(&mut self, doc: &'a [u8]) -> Cow<'a, [u8]> {
        if self.prefix.find(doc).is_none() {
            return Cow::Borrowed(doc);
        }
        let Some(d) = Doc::parse(doc) else {
            return Cow::Borrowed(doc);
        };
        let mut edits = Vec::new();
        for n in 0..d.nodes.len() {
            if let Class::Whole { json } = self.classify(&d, n, false) {
                let content = d.nodes[n].content();
                let mut inner = Inner::Outside;
                let mut out = Vec::new();
                if self.restore_into(&doc[content.clone()], json.then_some(&mut inner), &mut out) {
                    edits.push((content, out));
                }
            }
        }
        splice(doc, edits)
    }

    /// Restore one event of a stream. `fields` are the framing's own lines of this
    /// event (kept for an event built from it later).
    pub fn event<'a>(&mut self, doc: &'a [u8], fields: &[u8]) -> Processed<'a> {
        if self.pending == 0 && !self.may_need_work(doc) {
            return Processed {
                before: Vec::new(),
                doc: Cow::Borrowed(doc),
            };
        }
        let Some(d) = Doc::parse(doc) else {
            // Not JSON (`[DONE]`, a comment): the streams cannot continue through it.
            return Processed {
                before: self.finish(),
                doc: Cow::Borrowed(doc),
            };
        };
        let mut edits = Vec::new();
        let mut fragments = 0;
        for n in 0..d.nodes.len() {
            match self.classify(&d, n, true) {
                Class::Skip => {}
                Class::Whole { json } => {
                    let content = d.nodes[n].content();
                    let mut inner = Inner::Outside;
                    let mut out = Vec::new();
                    if self.restore_into(
                        &doc[content.clone()],
                        json.then_some(&mut inner),
                        &mut out,
                    ) {
                        edits.push((content, out));
                    }
                }
                Class::Fragment { json } => {
                    fragments += 1;
                    if let Some(e) = self.fragment(&d, n, json, fields) {
                        edits.push(e);
                    }
                }
            }
        }
        let before = if fragments == 0 {
            self.finish()
        } else {
            Vec::new()
        };
        Processed {
            before,
            doc: splice(doc, edits),
        }
    }

    /// The held bytes of every stream, as events of their own (end of the response, or
    /// an event through which no stream continues).
    pub fn finish(&mut self) -> Vec<Synthetic> {
        if self.pending == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for s in self.streams.values_mut() {
            if s.carry.is_empty() {
                continue;
            }
            let carry = std::mem::take(&mut s.carry);
            if let Some((fields, before, after)) = &s.template {
                // Held bytes are placeholder-grammar ASCII: valid JSON string content.
                out.push(Synthetic {
                    fields: fields.clone(),
                    doc: [before.as_slice(), &carry, after].concat(),
                });
            }
        }
        self.pending = 0;
        out
    }

    /// Cheap test whether `doc` needs parsing: it holds `CG_`, a string that ends with a
    /// possible placeholder start, or a JSON-fragment stream whose state must be followed.
    fn may_need_work(&self, doc: &[u8]) -> bool {
        if self.prefix.find(doc).is_some() {
            return true;
        }
        if memmem::find(doc, b"arguments").is_some() || memmem::find(doc, b"partial_json").is_some()
        {
            return true;
        }
        // `…C"`, `…CG"` at the end of some string.
        memchr::memchr_iter(b'C', doc).any(|i| {
            let window = &doc[i..doc.len().min(i + placeholder::MAX_LEN)];
            memchr::memchr(b'"', window).is_some_and(|q| placeholder::is_partial(&window[..q]))
        })
    }

    fn classify(&self, d: &Doc<'_>, n: usize, streaming: bool) -> Class {
        let node = &d.nodes[n];
        if node.kind != Kind::String {
            return Class::Skip;
        }
        let key = d.key(n);
        if let Some(k) = key {
            if NOT_TEXT.contains(&k) || k.ends_with(b"_id") {
                return Class::Skip;
            }
        }
        let json = key.is_some_and(|k| JSON_TEXT.contains(&k));
        if !streaming {
            return Class::Whole { json };
        }
        let top_type = d.str_member(0, b"type").unwrap_or_default();
        if key == Some(b"delta") && d.nodes[n].parent == Some(0) {
            // Responses API: `{"type": "response.function_call_arguments.delta", "delta": …}`.
            let json = memmem::find(top_type, b"arguments").is_some();
            return Class::Fragment { json };
        }
        if d.ancestors(n).any(|a| d.key(a) == Some(b"delta")) {
            return Class::Fragment { json };
        }
        let under = |name: &[u8]| d.ancestors(n).any(|a| d.key(a) == Some(name));
        match self.kind {
            ApiKind::Gemini | ApiKind::GeminiStream if key == Some(b"text") && under(b"parts") => {
                Class::Fragment { json: false }
            }
            ApiKind::Completions if key == Some(b"text") && under(b"choices") => {
                Class::Fragment { json: false }
            }
            // Ollama-style NDJSON: `{"message": {"content": …}}`, `{"response": …}`.
            ApiKind::Generic
                if (key == Some(b"content") && under(b"message"))
                    || (key == Some(b"response") && node.parent == Some(0)) =>
            {
                Class::Fragment { json: false }
            }
            _ => Class::Whole { json },
        }
    }

    /// Restore placeholders in `raw` (a JSON string's raw content) into `out`; with
    /// `inner`, `raw` is a fragment of a JSON document whose state is followed. Returns
    /// whether anything changed (`out` is then the new content).
    fn restore_into(&mut self, raw: &[u8], inner: Option<&mut Inner>, out: &mut Vec<u8>) -> bool {
        let spans: Vec<_> = if self.prefix.find(raw).is_some() {
            find_placeholders(raw).collect()
        } else {
            Vec::new()
        };
        let mut changed = false;
        let mut from = 0;
        let mut state = inner.as_deref().copied();
        for sp in &spans {
            if let Some(s) = state.as_mut() {
                json::decode_each(&raw[from..sp.start], |_, b| *s = s.feed(b));
            }
            match self.restorer.lookup(&raw[sp.clone()]) {
                Some(value) => {
                    self.stats.restored += 1;
                    changed = true;
                    out.extend_from_slice(&raw[from..sp.start]);
                    match state {
                        Some(Inner::InString | Inner::Escaped) => {
                            let mut once = Vec::with_capacity(value.len() + 8);
                            json::escape_into(value.expose(), &mut once);
                            json::escape_into(&once, out);
                        }
                        _ => json::escape_into(value.expose(), out),
                    }
                }
                None => {
                    self.stats.unknown += 1;
                    out.extend_from_slice(&raw[from..sp.end]);
                }
            }
            // The placeholder's own letters never change the state.
            from = sp.end;
        }
        if let Some(s) = state.as_mut() {
            json::decode_each(&raw[from..], |_, b| *s = s.feed(b));
        }
        if let (Some(i), Some(s)) = (inner, state) {
            *i = s;
        }
        out.extend_from_slice(&raw[from..]);
        changed
    }

    /// Handle fragment string `n`: held bytes of its stream in front, placeholders
    /// restored, a possible placeholder start at its end held back. Returns the edit.
    fn fragment(
        &mut self,
        d: &Doc<'_>,
        n: usize,
        json: bool,
        fields: &[u8],
    ) -> Option<(std::ops::Range<usize>, Vec<u8>)> {
        let content = d.nodes[n].content();
        let raw = &d.src[content.clone()];
        let key = stream_key(d, n);
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            // Too many streams: restore what is complete here, carry nothing.
            let mut out = Vec::new();
            return self
                .restore_into(raw, None, &mut out)
                .then_some((content, out));
        }
        let mut stream = self.streams.remove(&key).unwrap_or(Stream {
            json,
            ..Stream::default()
        });
        let had_carry = !stream.carry.is_empty();
        if had_carry {
            self.pending -= 1;
        }
        let merged: Cow<[u8]> = if had_carry {
            Cow::Owned([stream.carry.as_slice(), raw].concat())
        } else {
            Cow::Borrowed(raw)
        };
        // The last fragment of its stream (a finish reason beside it) holds nothing back.
        let last = d.ancestors(n).any(|a| {
            [&b"finish_reason"[..], b"finishReason"].iter().any(|k| {
                d.member(a, k)
                    .is_some_and(|m| d.nodes[m].kind == Kind::String)
            })
        });
        let held = if last { 0 } else { partial_suffix_len(&merged) };
        let (send, keep) = merged.split_at(merged.len() - held);
        let mut out = Vec::with_capacity(send.len() + 16);
        let mut inner = stream.inner;
        let changed = self.restore_into(send, stream.json.then_some(&mut inner), &mut out);
        stream.inner = inner;
        stream.carry = keep.to_vec();
        if held > 0 {
            self.pending += 1;
            stream.template = Some(template(d, n, fields));
        }
        self.streams.insert(key, stream);
        (changed || had_carry || held > 0).then_some((content, out))
    }
}

/// Replace each `(range, bytes)` of `src` (ranges ascending, not overlapping).
fn splice(src: &[u8], edits: Vec<(std::ops::Range<usize>, Vec<u8>)>) -> Cow<'_, [u8]> {
    if edits.is_empty() {
        return Cow::Borrowed(src);
    }
    let extra: usize = edits.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(src.len() + extra);
    let mut from = 0;
    for (r, b) in edits {
        out.extend_from_slice(&src[from..r.start]);
        out.extend_from_slice(&b);
        from = r.end;
    }
    out.extend_from_slice(&src[from..]);
    Cow::Owned(out)
}

/// Which stream fragment `n` belongs to: its path, each array position replaced by
/// the element's `index` member where it has one (Gemini's `parts` positions dropped:
/// parts continue across events), plus the event's identifying top-level members.
fn stream_key(d: &Doc<'_>, n: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    if d.nodes[0].kind == Kind::Object {
        for name in [&b"type"[..], b"index", b"output_index", b"content_index"] {
            if let Some(m) = d.member(0, name) {
                key.extend_from_slice(name);
                key.push(b'=');
                key.extend_from_slice(&d.src[d.nodes[m].span.clone()]);
                key.push(b';');
            }
        }
    }
    let mut path: Vec<usize> = d.ancestors(n).collect();
    path.reverse();
    path.push(n);
    for &p in path.iter().skip(1) {
        match d.key(p) {
            Some(k) => {
                key.push(b'/');
                key.extend_from_slice(k);
            }
            None => {
                let array = d.nodes[p].parent.expect("an element has a parent");
                if d.key(array) == Some(b"parts") {
                    key.extend_from_slice(b"#*");
                } else if let Some(i) = (d.nodes[p].kind == Kind::Object)
                    .then(|| d.int_member(p, b"index"))
                    .flatten()
                {
                    key.extend_from_slice(format!("#{i}").as_bytes());
                } else {
                    key.extend_from_slice(format!("@{}", d.nodes[p].pos).as_bytes());
                }
            }
        }
    }
    key
}

/// The event that carries a stream's held bytes on their own: fragment `n`'s event
/// reduced to the path to `n` (objects on it keep only numbers and `type`; arrays only
/// the element on it) and the top-level scalars (id, model, created, …). Names and
/// ids deeper down are left out: clients concatenate string fragments, so a repeated
/// tool-call `id` or `name` would corrupt them. Returns (fields, before, after).
fn template(d: &Doc<'_>, n: usize, fields: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut on_path: Vec<usize> = d.ancestors(n).collect();
    on_path.push(n);
    let mut out = Vec::new();
    let mut split = 0;
    emit(d, 0, n, &on_path, &mut out, &mut split);
    let after = out.split_off(split);
    (fields.to_vec(), out, after)
}

fn emit(
    d: &Doc<'_>,
    m: usize,
    target: usize,
    on_path: &[usize],
    out: &mut Vec<u8>,
    split: &mut usize,
) {
    let node = &d.nodes[m];
    if m == target {
        out.push(b'"');
        *split = out.len();
        out.push(b'"');
        return;
    }
    match node.kind {
        Kind::Object => {
            out.push(b'{');
            let mut first = true;
            for c in d.children(m) {
                let child = &d.nodes[c];
                let on = on_path.contains(&c);
                let keep = on
                    || (m == 0 && !matches!(child.kind, Kind::Object | Kind::Array))
                    || child.kind == Kind::Number
                    || (child.kind == Kind::String && d.key(c) == Some(b"type"));
                if !keep {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.push(b'"');
                out.extend_from_slice(d.key(c).unwrap_or_default());
                out.extend_from_slice(b"\":");
                if on {
                    emit(d, c, target, on_path, out, split);
                } else {
                    out.extend_from_slice(&d.src[child.span.clone()]);
                }
            }
            out.push(b'}');
        }
        Kind::Array => {
            out.push(b'[');
            if let Some(c) = d.children(m).find(|c| on_path.contains(c)) {
                emit(d, c, target, on_path, out, split);
            }
            out.push(b']');
        }
        _ => out.extend_from_slice(&d.src[node.span.clone()]),
    }
}
