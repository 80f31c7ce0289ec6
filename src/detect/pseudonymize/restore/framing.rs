//! Cutting a response body into the JSON documents [`Events`] restores, as bytes arrive
//! in arbitrary TCP-sized pieces: Server-Sent Events, NDJSON lines, the elements of a
//! streamed JSON array (Gemini without `alt=sse`), one whole JSON document, or plain
//! text. Each framer forwards a unit the moment its last byte arrives; only an
//! incomplete unit is kept (bounded by [`MAX_UNIT`]), which costs a client nothing, since
//! an SSE or NDJSON client acts on complete events and lines only.

use super::events::{Events, Synthetic};
use crate::detect::pseudonymize::placeholder::{find_placeholders, partial_suffix_len};
use crate::detect::pseudonymize::Restorer;

/// Largest event, line or array element kept whole for restoring (a non-streamed
/// document is bounded by the caller's own cap). A larger one ends restoring for the
/// rest of the response: everything from there on passes through unchanged.
pub const MAX_UNIT: usize = 4 * 1024 * 1024;

pub enum Framer {
    Sse(Sse),
    Ndjson(Ndjson),
    Array(ArrayStream),
    Whole(Whole),
    Text(Text),
}

impl Framer {
    pub fn push(&mut self, ev: &mut Events, input: &[u8], out: &mut Vec<u8>) {
        match self {
            Framer::Sse(f) => f.push(ev, input, out, false),
            Framer::Ndjson(f) => f.push(ev, input, out, false),
            Framer::Array(f) => f.push(ev, input, out),
            Framer::Whole(f) => f.push(input, out),
            Framer::Text(f) => f.push(input, out, false),
        }
    }

    pub fn finish(&mut self, ev: &mut Events, out: &mut Vec<u8>) {
        match self {
            Framer::Sse(f) => f.push(ev, &[], out, true),
            Framer::Ndjson(f) => f.push(ev, &[], out, true),
            Framer::Array(f) => f.finish(ev, out),
            Framer::Whole(f) => f.finish(ev, out),
            Framer::Text(f) => f.push(&[], out, true),
        }
    }
}

// ---------------------------------------------------------------------------------
// Server-Sent Events

/// SSE (WHATWG HTML §9.2): lines end in CRLF, LF or CR; an empty line ends an event;
/// `data:` lines carry the payload (several are joined with LF).
#[derive(Default)]
pub struct Sse {
    buf: Vec<u8>,
    /// `buf[..scanned]` holds complete lines of the current, unfinished event.
    scanned: usize,
    /// Too large an event was seen: pass everything through from here on.
    passthrough: bool,
}

impl Sse {
    fn push(&mut self, ev: &mut Events, input: &[u8], out: &mut Vec<u8>, end: bool) {
        if self.passthrough {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        let mut start = 0; // the current event starts here
        let mut i = self.scanned;
        while let Some(p) = memchr::memchr2(b'\n', b'\r', &self.buf[i..]).map(|p| i + p) {
            let next = if self.buf[p] == b'\r' {
                match self.buf.get(p + 1) {
                    Some(b'\n') => p + 2,
                    Some(_) => p + 1,
                    // A CR at the very end: an LF may follow in the next read.
                    None if end => p + 1,
                    None => break,
                }
            } else {
                p + 1
            };
            let empty_line = p == i;
            i = next;
            if empty_line {
                let event = self.buf[start..next].to_vec();
                emit_sse(ev, &event, out);
                start = next;
            }
        }
        self.buf.drain(..start);
        self.scanned = i - start;
        if end && !self.buf.is_empty() {
            // An unterminated last event: a client does not dispatch it either.
            out.append(&mut self.buf);
            self.scanned = 0;
        }
        if end {
            emit_synthetic_sse(ev.finish(), out);
        }
        if self.buf.len() > MAX_UNIT {
            emit_synthetic_sse(ev.finish(), out);
            out.append(&mut self.buf);
            self.passthrough = true;
        }
    }
}

/// One complete event (its terminating empty line included).
fn emit_sse(ev: &mut Events, event: &[u8], out: &mut Vec<u8>) {
    let mut data: Vec<u8> = Vec::new();
    let mut fields: Vec<u8> = Vec::new();
    let mut has_data = false;
    for line in sse_lines(event) {
        let (name, value) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if name == b"data" {
            if has_data {
                data.push(b'\n');
            }
            data.extend_from_slice(value);
            has_data = true;
        } else if !line.is_empty() && name != b"id" {
            // `event:` and the like are kept for events built from this one; `id:`
            // is not (a repeated id would confuse a reconnecting client).
            fields.extend_from_slice(line);
            fields.push(b'\n');
        }
    }
    if !has_data {
        // A comment or keep-alive: not an event; streams continue through it.
        out.extend_from_slice(event);
        return;
    }
    let r = ev.event(&data, &fields);
    emit_synthetic_sse(r.before, out);
    match r.doc {
        std::borrow::Cow::Borrowed(_) => out.extend_from_slice(event),
        std::borrow::Cow::Owned(doc) => {
            // The same lines, `data:` rewritten once with the new payload.
            let mut wrote = false;
            for line in sse_lines(event) {
                if line.is_empty() {
                    continue;
                }
                if line.starts_with(b"data") && matches!(line.get(4), None | Some(b':')) {
                    if !wrote {
                        data_lines(&doc, out);
                        wrote = true;
                    }
                    continue;
                }
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            out.push(b'\n');
        }
    }
}

fn emit_synthetic_sse(events: Vec<Synthetic>, out: &mut Vec<u8>) {
    for s in events {
        out.extend_from_slice(&s.fields);
        data_lines(&s.doc, out);
        out.push(b'\n');
    }
}

fn data_lines(doc: &[u8], out: &mut Vec<u8>) {
    for l in doc.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(l);
        out.push(b'\n');
    }
}

/// The lines of a complete event, without their terminators.
fn sse_lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= event.len() {
            return None;
        }
        let p = memchr::memchr2(b'\n', b'\r', &event[i..]).map_or(event.len(), |p| i + p);
        let line = &event[i..p];
        i = match event.get(p) {
            Some(b'\r') if event.get(p + 1) == Some(&b'\n') => p + 2,
            Some(_) => p + 1,
            None => p,
        };
        Some(line)
    })
}

// ---------------------------------------------------------------------------------
// NDJSON

#[derive(Default)]
pub struct Ndjson {
    buf: Vec<u8>,
    passthrough: bool,
}

impl Ndjson {
    fn push(&mut self, ev: &mut Events, input: &[u8], out: &mut Vec<u8>, end: bool) {
        if self.passthrough {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        let mut start = 0;
        while let Some(p) = memchr::memchr(b'\n', &self.buf[start..]).map(|p| start + p) {
            let line = self.buf[start..p].to_vec();
            self.line(ev, &line, out);
            out.push(b'\n');
            start = p + 1;
        }
        self.buf.drain(..start);
        if end {
            if !self.buf.is_empty() {
                let line = std::mem::take(&mut self.buf);
                self.line(ev, &line, out);
            }
            ndjson_synthetic(ev.finish(), out);
        } else if self.buf.len() > MAX_UNIT {
            ndjson_synthetic(ev.finish(), out);
            out.append(&mut self.buf);
            self.passthrough = true;
        }
    }

    fn line(&mut self, ev: &mut Events, line: &[u8], out: &mut Vec<u8>) {
        let body = line.strip_suffix(b"\r").unwrap_or(line);
        if body.trim_ascii().is_empty() {
            out.extend_from_slice(line);
            return;
        }
        let r = ev.event(body, b"");
        ndjson_synthetic(r.before, out);
        out.extend_from_slice(&r.doc);
        out.extend_from_slice(&line[body.len()..]);
    }
}

fn ndjson_synthetic(events: Vec<Synthetic>, out: &mut Vec<u8>) {
    for s in events {
        out.extend_from_slice(&s.doc);
        out.push(b'\n');
    }
}

// ---------------------------------------------------------------------------------
// A streamed JSON array: `[{…},\r\n{…}\r\n]`, each element an event.

#[derive(Default)]
pub struct ArrayStream {
    /// The current element, from its `{` on.
    elem: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// An element was emitted (a synthetic one is then joined with a comma).
    any: bool,
    passthrough: bool,
}

impl ArrayStream {
    fn push(&mut self, ev: &mut Events, input: &[u8], out: &mut Vec<u8>) {
        if self.passthrough {
            out.extend_from_slice(input);
            return;
        }
        for (k, &b) in input.iter().enumerate() {
            if !self.elem.is_empty() {
                self.elem.push(b);
                self.track(b);
                if self.depth == 1 {
                    let elem = std::mem::take(&mut self.elem);
                    let r = ev.event(&elem, b"");
                    self.synthetic(r.before, out, true);
                    out.extend_from_slice(&r.doc);
                    self.any = true;
                } else if self.elem.len() > MAX_UNIT {
                    out.append(&mut self.elem);
                    out.extend_from_slice(&input[k + 1..]);
                    self.passthrough = true;
                    return;
                }
                continue;
            }
            match (self.depth, b) {
                (1, b'{' | b'[') => {
                    self.elem.push(b);
                    self.depth = 2;
                    continue;
                }
                (1, b']') => {
                    // The array closes: the last held bytes go in before it.
                    let rest = ev.finish();
                    self.synthetic(rest, out, false);
                    self.depth = 0;
                }
                (0, b'[') => self.depth = 1,
                _ => {}
            }
            out.push(b);
        }
    }

    /// Follow strings and nesting inside an element.
    fn track(&mut self, b: u8) {
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
    }

    /// Write synthetic elements: `X,` before a new element, `,X` before the `]`.
    fn synthetic(&mut self, events: Vec<Synthetic>, out: &mut Vec<u8>, before_elem: bool) {
        for s in events {
            if before_elem {
                out.extend_from_slice(&s.doc);
                out.push(b',');
            } else {
                if self.any {
                    out.push(b',');
                }
                out.extend_from_slice(&s.doc);
            }
            self.any = true;
        }
    }

    fn finish(&mut self, ev: &mut Events, out: &mut Vec<u8>) {
        // A truncated array: pass on what is left as it came.
        out.append(&mut self.elem);
        let _ = ev.finish();
    }
}

// ---------------------------------------------------------------------------------
// One whole JSON document

pub struct Whole {
    buf: Vec<u8>,
    cap: usize,
    passthrough: bool,
}

impl Whole {
    pub fn new(cap: usize) -> Whole {
        Whole {
            buf: Vec::new(),
            cap,
            passthrough: false,
        }
    }

    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.passthrough {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        if self.buf.len() > self.cap {
            // Too large to restore: sent on unchanged (placeholders stay, nothing leaks).
            out.append(&mut self.buf);
            self.passthrough = true;
        }
    }

    fn finish(&mut self, ev: &mut Events, out: &mut Vec<u8>) {
        if !self.passthrough {
            let buf = std::mem::take(&mut self.buf);
            out.extend_from_slice(&ev.whole(&buf));
        }
    }
}

// ---------------------------------------------------------------------------------
// Plain text

/// Text: placeholders replaced by the bare value; a possible placeholder start at the
/// end of a read is held until the next one.
pub struct Text {
    restorer: Restorer,
    carry: Vec<u8>,
}

impl Text {
    pub fn new(restorer: Restorer) -> Text {
        Text {
            restorer,
            carry: Vec::new(),
        }
    }

    fn push(&mut self, input: &[u8], out: &mut Vec<u8>, end: bool) {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(input);
        let held = if end { 0 } else { partial_suffix_len(&buf) };
        let (send, keep) = buf.split_at(buf.len() - held);
        let mut from = 0;
        for sp in find_placeholders(send) {
            if let Some(v) = self.restorer.lookup(&send[sp.clone()]) {
                out.extend_from_slice(&send[from..sp.start]);
                out.extend_from_slice(v.expose());
                from = sp.end;
            }
        }
        out.extend_from_slice(&send[from..]);
        self.carry = keep.to_vec();
    }
}
