//! Offset maps: every view the scanner reads (an unescaped JSON document, a decoded
//! form, a base64 run decoded, a UTF-16 body transcoded) keeps a map from each of its
//! bytes back to the raw bytes of the request part it came from, so a finding in any
//! view names, and redaction edits, exactly the bytes that were sent.

/// One run of the view. Copy runs map byte for byte; an atomic run (an escape such as
/// `\n`, `\u00e9` or `%41`) maps as a whole to its raw escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Anchor {
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
pub(crate) enum Piece {
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

    /// The raw text the first occurrence of `needle` in `view` maps back to (tests of
    /// the views built over this map).
    #[cfg(test)]
    pub(crate) fn raw_text_of<'a>(&self, raw: &'a [u8], view: &[u8], needle: &str) -> &'a str {
        let s = memchr::memmem::find(view, needle.as_bytes()).expect("needle in view");
        let (a, b) = self.raw_span(s, s + needle.len());
        std::str::from_utf8(&raw[a..b]).unwrap()
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
    pub(crate) fn pieces(&self, start: usize, end: usize, mut f: impl FnMut(usize, usize, Piece)) {
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

    pub(crate) fn push_copy(&mut self, view: usize, raw: usize) {
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

    pub(crate) fn push_atomic(&mut self, view: usize, raw: usize, raw_len: usize) {
        self.anchors.push(Anchor {
            view: view as u32,
            raw: raw as u32,
            raw_len: raw_len.max(1) as u32,
        });
    }

    /// `self` maps a view to some intermediate buffer, `outer` maps that buffer to raw;
    /// the result maps the view straight to raw.
    pub(crate) fn compose(&self, len: usize, outer: &OffsetMap) -> OffsetMap {
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
pub(crate) struct ViewBuilder {
    pub(crate) out: Vec<u8>,
    pub(crate) map: OffsetMap,
}

impl ViewBuilder {
    pub(crate) fn copy(&mut self, bytes: &[u8], raw: usize) {
        if !bytes.is_empty() {
            self.map.push_copy(self.out.len(), raw);
            self.out.extend_from_slice(bytes);
        }
    }

    pub(crate) fn atomic(&mut self, bytes: &[u8], raw: usize, raw_len: usize) {
        if !bytes.is_empty() {
            self.map.push_atomic(self.out.len(), raw, raw_len);
            self.out.extend_from_slice(bytes);
        }
    }

    /// Append `bytes` (offsets `local..` of a buffer that `tr` maps to raw; `None` =
    /// the buffer is raw).
    pub(crate) fn copy_via(&mut self, bytes: &[u8], local: usize, tr: Option<&OffsetMap>) {
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

    pub(crate) fn atomic_via(
        &mut self,
        bytes: &[u8],
        ls: usize,
        le: usize,
        tr: Option<&OffsetMap>,
    ) {
        let (rs, re) = match tr {
            None => (ls, le),
            Some(m) => m.raw_span(ls, le),
        };
        self.atomic(bytes, rs, re - rs);
    }
}

impl OffsetMap {
    /// A whole view that maps, as one unit, onto `raw..raw+len` (a decoded base64 run:
    /// no byte of the decoded text has a place of its own in the encoded run).
    pub fn whole(raw: usize, len: usize) -> OffsetMap {
        let mut m = OffsetMap::default();
        m.push_atomic(0, raw, len);
        m
    }

    /// The view offset of the first view byte that maps at or after raw offset `raw`
    /// (maps are monotone: later view bytes never map to earlier raw bytes).
    pub fn view_offset(&self, raw: usize) -> usize {
        if self.anchors.is_empty() {
            return raw;
        }
        let i = self
            .anchors
            .partition_point(|a| a.raw as usize <= raw)
            .saturating_sub(1);
        let a = self.anchors[i];
        if a.raw_len == 0 && raw >= a.raw as usize {
            a.view as usize + (raw - a.raw as usize)
        } else {
            a.view as usize
        }
    }
}

impl ViewBuilder {
    pub(crate) fn with_capacity(n: usize) -> ViewBuilder {
        ViewBuilder {
            out: Vec::with_capacity(n),
            map: OffsetMap::default(),
        }
    }
}

impl OffsetMap {
    /// The same map with every raw offset moved `base` bytes on (a view of a slice that
    /// starts at `base` of its source).
    pub fn shifted(mut self, base: usize) -> OffsetMap {
        for a in &mut self.anchors {
            a.raw += base as u32;
        }
        self
    }
}
