//! A JSON lexer that keeps raw positions, for rewriting string values in place.
//!
//! Responses are rewritten by splicing bytes, not by parsing into values and printing
//! them again: key order, number spelling, whitespace and every escape the provider
//! chose stay exactly as sent, and only the spans of restored placeholders change.
//! `serde_json` gives no byte positions, hence this small hand-written lexer (strict
//! enough to refuse what is not JSON, so a malformed event passes through untouched).

use std::ops::Range;

/// Deepest nesting accepted (provider events are a few levels deep).
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    /// `true`, `false`, `null`.
    Literal,
}

/// One value of the document, in document order (a parent precedes its children).
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    /// The whole value; for a string the quotes included.
    pub span: Range<usize>,
    pub parent: Option<usize>,
    /// For a member of an object: the raw content of its name (between the quotes).
    pub key: Option<Range<usize>>,
    /// For an element of an array: its position.
    pub pos: usize,
}

impl Node {
    /// A string's raw content, between the quotes.
    pub fn content(&self) -> Range<usize> {
        self.span.start + 1..self.span.end - 1
    }
}

/// A lexed document: the nodes, and the bytes they point into.
#[derive(Debug)]
pub struct Doc<'a> {
    pub src: &'a [u8],
    pub nodes: Vec<Node>,
}

impl<'a> Doc<'a> {
    /// Lex `src` (one JSON value, surrounding whitespace allowed). `None` when it is
    /// not JSON or nests deeper than [`MAX_DEPTH`].
    pub fn parse(src: &'a [u8]) -> Option<Doc<'a>> {
        let mut p = Parser {
            src,
            i: 0,
            nodes: Vec::new(),
        };
        p.ws();
        p.value(None, None, 0, 0)?;
        p.ws();
        (p.i == src.len()).then_some(Doc {
            src,
            nodes: p.nodes,
        })
    }

    /// The name of the member `n` is (if it is one).
    pub fn key(&self, n: usize) -> Option<&'a [u8]> {
        self.nodes[n].key.clone().map(|r| &self.src[r])
    }

    /// The member called `name` of object `obj`.
    pub fn member(&self, obj: usize, name: &[u8]) -> Option<usize> {
        let end = self.nodes[obj].span.end;
        (obj + 1..self.nodes.len())
            .take_while(|&c| self.nodes[c].span.start < end)
            .find(|&c| self.nodes[c].parent == Some(obj) && self.key(c) == Some(name))
    }

    /// The integer value of member `name` of object `obj`.
    pub fn int_member(&self, obj: usize, name: &[u8]) -> Option<i64> {
        let m = self.member(obj, name)?;
        (self.nodes[m].kind == Kind::Number)
            .then(|| std::str::from_utf8(&self.src[self.nodes[m].span.clone()]).ok())
            .flatten()?
            .parse()
            .ok()
    }

    /// The raw content of string member `name` of object `obj`.
    pub fn str_member(&self, obj: usize, name: &[u8]) -> Option<&'a [u8]> {
        let m = self.member(obj, name)?;
        (self.nodes[m].kind == Kind::String).then(|| &self.src[self.nodes[m].content()])
    }

    /// Ancestors of `n`, nearest first.
    pub fn ancestors(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(self.nodes[n].parent, move |&p| self.nodes[p].parent)
    }

    /// Direct children of `n`, in order.
    pub fn children(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.nodes[n].span.end;
        (n + 1..self.nodes.len())
            .take_while(move |&c| self.nodes[c].span.start < end)
            .filter(move |&c| self.nodes[c].parent == Some(n))
    }
}

struct Parser<'a> {
    src: &'a [u8],
    i: usize,
    nodes: Vec<Node>,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.src.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn push(
        &mut self,
        kind: Kind,
        start: usize,
        parent: Option<usize>,
        key: Option<Range<usize>>,
        pos: usize,
    ) -> usize {
        self.nodes.push(Node {
            kind,
            span: start..start,
            parent,
            key,
            pos,
        });
        self.nodes.len() - 1
    }

    fn value(
        &mut self,
        parent: Option<usize>,
        key: Option<Range<usize>>,
        pos: usize,
        depth: usize,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.i;
        match *self.src.get(self.i)? {
            b'{' => {
                let n = self.push(Kind::Object, start, parent, key, pos);
                self.i += 1;
                self.ws();
                if self.src.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        let name = self.string_end()?;
                        let name = name.start + 1..name.end - 1;
                        self.ws();
                        if self.src.get(self.i) != Some(&b':') {
                            return None;
                        }
                        self.i += 1;
                        self.ws();
                        self.value(Some(n), Some(name), 0, depth + 1)?;
                        self.ws();
                        match self.src.get(self.i)? {
                            b',' => self.i += 1,
                            b'}' => {
                                self.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                self.nodes[n].span.end = self.i;
            }
            b'[' => {
                let n = self.push(Kind::Array, start, parent, key, pos);
                self.i += 1;
                self.ws();
                if self.src.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    let mut k = 0;
                    loop {
                        self.ws();
                        self.value(Some(n), None, k, depth + 1)?;
                        k += 1;
                        self.ws();
                        match self.src.get(self.i)? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                self.nodes[n].span.end = self.i;
            }
            b'"' => {
                let span = self.string_end()?;
                let n = self.push(Kind::String, start, parent, key, pos);
                self.nodes[n].span = span;
            }
            b't' | b'f' | b'n' => {
                let word: &[u8] = match self.src[self.i] {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !self.src[self.i..].starts_with(word) {
                    return None;
                }
                self.i += word.len();
                let n = self.push(Kind::Literal, start, parent, key, pos);
                self.nodes[n].span.end = self.i;
            }
            b'-' | b'0'..=b'9' => {
                self.i += 1;
                while matches!(
                    self.src.get(self.i),
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                ) {
                    self.i += 1;
                }
                let n = self.push(Kind::Number, start, parent, key, pos);
                self.nodes[n].span.end = self.i;
            }
            _ => return None,
        }
        Some(())
    }

    /// A string literal starting at `self.i`; returns its span (quotes included).
    fn string_end(&mut self) -> Option<Range<usize>> {
        let start = self.i;
        if self.src.get(start) != Some(&b'"') {
            return None;
        }
        let mut i = start + 1;
        loop {
            let q = i + memchr::memchr2(b'"', b'\\', &self.src[i..])?;
            if self.src[i..q].iter().any(|&b| b < 0x20) {
                return None; // raw control characters are not JSON
            }
            if self.src[q] == b'"' {
                self.i = q + 1;
                return Some(start..q + 1);
            }
            // An escape: `\` and the next byte (a `\uXXXX`'s hex digits are plain bytes).
            if q + 1 >= self.src.len() {
                return None;
            }
            i = q + 2;
        }
    }
}

/// Append `value` escaped as the content of a JSON string: `"`, `\` and control
/// characters escaped, everything else (UTF-8 included) as it is.
pub fn escape_into(value: &[u8], out: &mut Vec<u8>) {
    let mut from = 0;
    for (i, &b) in value.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&value[from..i]);
        if esc.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(esc);
        }
        from = i + 1;
    }
    out.extend_from_slice(&value[from..]);
}

/// Whether `value` needs any escaping inside a JSON string.
pub fn needs_escape(value: &[u8]) -> bool {
    value.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Where the decoded text of a JSON document streamed in fragments (tool-call
/// `arguments`, Anthropic `partial_json`) stands: inside one of its strings or not.
/// Fed the *decoded* bytes of each fragment in order, so an escape or a string split
/// between two fragments is followed exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Inner {
    #[default]
    Outside,
    InString,
    /// Right after a backslash inside a string.
    Escaped,
}

impl Inner {
    pub fn feed(self, b: u8) -> Inner {
        match (self, b) {
            (Inner::Outside, b'"') => Inner::InString,
            (Inner::Outside, _) => Inner::Outside,
            (Inner::InString, b'"') => Inner::Outside,
            (Inner::InString, b'\\') => Inner::Escaped,
            (Inner::InString, _) => Inner::InString,
            // `\uXXXX`: the hex digits are neither quote nor backslash, so treating the
            // escape as two bytes tracks quotes exactly.
            (Inner::Escaped, _) => Inner::InString,
        }
    }
}

/// Decode the raw content of a JSON string, calling `f(raw_offset, decoded_byte)` for
/// each decoded byte (`raw_offset` = where its escape or byte starts). `\uXXXX` escapes
/// are decoded to UTF-8 (a lone surrogate to U+FFFD). Malformed escapes are passed
/// through as bytes: the caller only needs quote and backslash positions to be right.
pub fn decode_each(raw: &[u8], mut f: impl FnMut(usize, u8)) {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 >= raw.len() {
            f(i, b);
            i += 1;
            continue;
        }
        let at = i;
        let simple = match raw[i + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            _ => None,
        };
        if let Some(d) = simple {
            f(at, d);
            i += 2;
            continue;
        }
        if raw[i + 1] == b'u' {
            if let Some((c, used)) = unicode_escape(&raw[i..]) {
                let mut buf = [0u8; 4];
                for &d in c.encode_utf8(&mut buf).as_bytes() {
                    f(at, d);
                }
                i += used;
                continue;
            }
        }
        f(at, b);
        i += 1;
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(s.get(..4)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// `\uXXXX` (or a surrogate pair of two) at the start of `s`: the char and bytes used.
fn unicode_escape(s: &[u8]) -> Option<(char, usize)> {
    let hi = hex4(s.get(2..)?)?;
    if (0xd800..0xdc00).contains(&hi) {
        if s.get(6..8) == Some(b"\\u") {
            if let Some(lo) = hex4(&s[8..]).filter(|lo| (0xdc00..0xe000).contains(lo)) {
                let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                return Some((char::from_u32(c)?, 12));
            }
        }
        return Some(('\u{fffd}', 6));
    }
    Some((char::from_u32(hi).unwrap_or('\u{fffd}'), 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_with_positions() {
        let src = br#" {"a": [1, "x\"y", {"b": null}], "c": true, "d": -1.5e3} "#;
        let d = Doc::parse(src).unwrap();
        let kinds: Vec<Kind> = d.nodes.iter().map(|n| n.kind).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [Object, Array, Number, String, Object, Literal, Literal, Number]
        );
        let s = &d.nodes[3];
        assert_eq!(&src[s.span.clone()], br#""x\"y""#);
        assert_eq!(&src[s.content()], br#"x\"y"#);
        assert_eq!(s.pos, 1);
        assert_eq!(d.key(1), Some(&b"a"[..]));
        assert_eq!(d.member(0, b"c"), Some(6));
        assert_eq!(d.int_member(4, b"b"), None);
        assert_eq!(d.children(1).count(), 3);
        assert_eq!(d.ancestors(5).collect::<Vec<_>>(), [4, 1, 0]);
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\" 1}",
            b"[1,]x",
            b"\"abc",
            b"\"a\nb\"",
            b"{\"a\":1}}",
            b"tru",
            b"[DONE]",
        ] {
            assert!(
                Doc::parse(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(Doc::parse(deep.as_bytes()).is_none());
    }

    #[test]
    fn escaping_round_trips_through_serde() {
        let value = "a\"b\\c\nd\te\u{1}é😀/";
        let mut out = Vec::new();
        escape_into(value.as_bytes(), &mut out);
        let back: String =
            serde_json::from_slice(&[b"\"".as_slice(), &out, b"\""].concat()).unwrap();
        assert_eq!(back, value);
        assert!(needs_escape(value.as_bytes()));
        assert!(!needs_escape(b"13800138000"));
    }

    #[test]
    fn decodes_like_serde() {
        let raw = r#"a\"b\\c\n\u00e9\ud83d\ude00\/z"#;
        let mut got = Vec::new();
        decode_each(raw.as_bytes(), |_, b| got.push(b));
        let want: String = serde_json::from_str(&format!("\"{raw}\"")).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }

    #[test]
    fn inner_state_follows_quotes_and_escapes() {
        let mut s = Inner::Outside;
        let mut trace = Vec::new();
        for &b in br#"{"a":"x\"y\\","b":1}"# {
            s = s.feed(b);
            trace.push(s);
        }
        use Inner::*;
        assert_eq!(trace[1], InString); // opening quote of the key
        assert_eq!(trace[3], Outside);
        assert_eq!(trace[7], Escaped); // the backslash before the escaped quote
        assert_eq!(trace[8], InString); // still inside after \"
        assert_eq!(*trace.last().unwrap(), Outside);
    }
}
