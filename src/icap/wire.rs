//! ICAP/1.0 wire format (RFC 3507): the request head, the `Encapsulated` header, the
//! encapsulated HTTP request head and the chunked body with its preview.
//!
//! Hand-written because no maintained crate parses ICAP: `httparse` rejects the
//! `ICAP/1.0` version token, so it reads only the *encapsulated* HTTP head here. The
//! parsing functions take byte slices (fuzzable, no I/O); [`ChunkedReader`] drives them
//! over an async stream with every size bounded by the caller.

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Why a request could not be read; each maps to the ICAP status the client gets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed ICAP request line")]
    RequestLine,
    #[error("unsupported ICAP version (ICAP/1.0 only)")]
    Version,
    #[error("malformed ICAP header line")]
    HeaderLine,
    #[error("ICAP head larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("malformed Encapsulated header: {0}")]
    Encapsulated(&'static str),
    #[error("malformed encapsulated HTTP request head")]
    HttpHead,
    #[error("encapsulated HTTP head larger than {0} bytes")]
    HttpHeadTooLarge(usize),
    #[error("malformed chunk in the encapsulated body")]
    Chunk,
    #[error("connection closed in the middle of a request")]
    Eof,
    #[error("timed out reading the request")]
    Timeout,
    #[error("read failed: {0}")]
    Io(String),
}

impl WireError {
    /// The ICAP status for this error (RFC 3507 §4.3.3).
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            WireError::Version => (505, "ICAP Version Not Supported"),
            WireError::Timeout => (408, "Request Timeout"),
            WireError::HeadTooLarge(_) | WireError::HttpHeadTooLarge(_) => {
                (400, "Bad Request (head too large)")
            }
            _ => (400, "Bad Request"),
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Eof
        } else {
            WireError::Io(e.to_string())
        }
    }
}

/// An ICAP request line plus headers (names lower-cased, values trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcapHead {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl IcapHead {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The service path of the ICAP URI (`icap://host:port/reqmod?x` → `/reqmod`).
    pub fn service(&self) -> &str {
        let rest = self
            .uri
            .split_once("://")
            .map_or(self.uri.as_str(), |(_, r)| r);
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        path.split(['?', '#']).next().unwrap_or("/")
    }

    /// `Allow: 204` was sent (the client keeps a copy and accepts "unchanged").
    pub fn allows_204(&self) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == "allow")
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim() == "204")
    }

    /// The preview size announced by the client, if it sends a preview.
    pub fn preview(&self) -> Option<usize> {
        self.header("preview").and_then(|v| v.trim().parse().ok())
    }

    /// The client asked to close the connection after this exchange.
    pub fn wants_close(&self) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("close"))
    }
}

/// Parse an ICAP head (request line and headers, up to and including the empty line).
/// Lenient where receivers are (bare LF line ends, folded lines, spaces around colons);
/// strict where it matters (the version, header names without controls).
pub fn parse_head(bytes: &[u8]) -> Result<IcapHead, WireError> {
    let text = std::str::from_utf8(bytes).map_err(|_| WireError::HeaderLine)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(WireError::RequestLine)?;
    let mut parts = request_line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::RequestLine);
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(WireError::RequestLine);
    }
    if !version.eq_ignore_ascii_case("ICAP/1.0") {
        return Err(if version.to_ascii_uppercase().starts_with("ICAP/") {
            WireError::Version
        } else {
            WireError::RequestLine
        });
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: continue the previous value.
            let last = headers.last_mut().ok_or(WireError::HeaderLine)?;
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(WireError::HeaderLine)?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WireError::HeaderLine);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(IcapHead {
        method: method.to_string(),
        uri: uri.to_string(),
        headers,
    })
}

/// Which sections follow the ICAP head, with their offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encapsulated {
    /// Length of the encapsulated HTTP request head (0 when there is none).
    pub req_hdr_len: usize,
    /// A chunked body follows the head.
    pub has_body: bool,
}

/// Parse `Encapsulated: req-hdr=0, req-body=412` (or `null-body=`, `opt-body=`).
/// Offsets must start at 0 and increase; response sections are refused (REQMOD only).
pub fn parse_encapsulated(value: &str) -> Result<Encapsulated, WireError> {
    let mut entries = Vec::new();
    for part in value.split(',') {
        let (name, off) = part
            .trim()
            .split_once('=')
            .ok_or(WireError::Encapsulated("expected name=offset"))?;
        let off: usize = off
            .trim()
            .parse()
            .map_err(|_| WireError::Encapsulated("offset is not a number"))?;
        entries.push((name.trim().to_ascii_lowercase(), off));
    }
    if entries.windows(2).any(|w| w[0].1 > w[1].1) {
        return Err(WireError::Encapsulated("offsets must increase"));
    }
    let mut out = Encapsulated {
        req_hdr_len: 0,
        has_body: false,
    };
    let last = entries.len().saturating_sub(1);
    for (i, (name, off)) in entries.iter().enumerate() {
        match name.as_str() {
            "req-hdr" if i == 0 && *off == 0 => {
                out.req_hdr_len = entries.get(1).map_or(0, |e| e.1);
            }
            "req-hdr" => return Err(WireError::Encapsulated("req-hdr must come first at 0")),
            "req-body" | "opt-body" if i == last => out.has_body = true,
            "null-body" if i == last => {}
            "req-body" | "opt-body" | "null-body" => {
                return Err(WireError::Encapsulated("a body section must come last"))
            }
            "res-hdr" | "res-body" => {
                return Err(WireError::Encapsulated(
                    "response sections in a request modification",
                ))
            }
            _ => return Err(WireError::Encapsulated("unknown section")),
        }
    }
    if entries.len() == 1 && entries[0].0 != "req-hdr" && entries[0].1 != 0 {
        return Err(WireError::Encapsulated("a lone body section must be at 0"));
    }
    Ok(out)
}

/// The encapsulated HTTP request head.
#[derive(Debug, Clone)]
pub struct HttpHead {
    pub method: http::Method,
    /// The request target exactly as sent (absolute-form from Squid).
    pub target: String,
    /// 0 or 1 (HTTP/1.x).
    pub minor_version: u8,
    pub headers: http::HeaderMap,
}

/// Most headers an encapsulated request may carry.
const MAX_HTTP_HEADERS: usize = 256;

/// Parse the encapsulated HTTP request head (`httparse`, as hyper reads requests).
pub fn parse_http_head(bytes: &[u8]) -> Result<HttpHead, WireError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let status = req.parse(bytes).map_err(|_| WireError::HttpHead)?;
    if status.is_partial() {
        return Err(WireError::HttpHead);
    }
    let method = http::Method::from_bytes(req.method.ok_or(WireError::HttpHead)?.as_bytes())
        .map_err(|_| WireError::HttpHead)?;
    let target = req.path.ok_or(WireError::HttpHead)?.to_string();
    let minor_version = req.version.ok_or(WireError::HttpHead)?;
    let mut headers = http::HeaderMap::new();
    for h in req.headers.iter() {
        let name =
            http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| WireError::HttpHead)?;
        let value = http::HeaderValue::from_bytes(h.value).map_err(|_| WireError::HttpHead)?;
        headers.append(name, value);
    }
    Ok(HttpHead {
        method,
        target,
        minor_version,
        headers,
    })
}

/// Parse one chunk-size line (without its line end): `1a2b`, `0; ieof`, `10;name=value`.
/// Returns the size and whether the `ieof` extension is present.
pub fn parse_chunk_size(line: &[u8]) -> Result<(u64, bool), WireError> {
    let text = std::str::from_utf8(line).map_err(|_| WireError::Chunk)?;
    let (size, ext) = text.split_once(';').unwrap_or((text, ""));
    let size = size.trim();
    if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WireError::Chunk);
    }
    let n = u64::from_str_radix(size, 16).map_err(|_| WireError::Chunk)?;
    let ieof = ext
        .split(';')
        .any(|e| e.trim().eq_ignore_ascii_case("ieof"));
    Ok((n, ieof))
}

/// Read one line (up to `\n`) of at most `limit` bytes, without its line end.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<Vec<u8>, WireError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Err(WireError::Eof);
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > limit {
            return Err(WireError::Chunk);
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
    }
}

/// Read an ICAP head up to its empty line. `Ok(None)`: the peer closed cleanly between
/// requests (the normal end of a persistent connection).
pub async fn read_head<R: AsyncBufRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, WireError> {
    let mut head: Vec<u8> = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return if head.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(None)
            } else {
                Err(WireError::Eof)
            };
        }
        let mut end = None;
        // Look for the blank line across the boundary of what we have and what came in.
        let start = head.len().saturating_sub(3);
        let old = head.len();
        let take = buf.len().min(limit + 1 - head.len().min(limit));
        head.extend_from_slice(&buf[..take]);
        for i in start..head.len() {
            if head[i] == b'\n'
                && (head[i + 1..].starts_with(b"\r\n") || head[i + 1..].starts_with(b"\n"))
            {
                let skip = if head[i + 1] == b'\r' { 3 } else { 2 };
                end = Some(i + skip);
                break;
            }
        }
        match end {
            Some(e) => {
                r.consume(e - old);
                head.truncate(e);
                // Tolerate stray line ends between pipelined requests.
                let lead = head
                    .iter()
                    .take_while(|b| **b == b'\r' || **b == b'\n')
                    .count();
                head.drain(..lead);
                if head.is_empty() {
                    continue;
                }
                return Ok(Some(head));
            }
            None => {
                r.consume(take);
                if head.len() > limit {
                    return Err(WireError::HeadTooLarge(limit));
                }
            }
        }
    }
}

/// Reads a chunked encapsulated body piece by piece, so a caller can buffer up to its
/// cap and stream the rest without holding a whole chunk of any announced size.
#[derive(Debug, Default)]
pub struct ChunkedReader {
    /// Bytes left in the current chunk.
    remaining: u64,
    done: bool,
    /// The last chunk carried `ieof`: the preview was the whole body.
    pub ieof: bool,
}

/// Longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest piece handed out at once.
const PIECE: usize = 64 * 1024;

impl ChunkedReader {
    /// A reader for the next run of chunks (a preview, or what follows `100 Continue`).
    pub fn new() -> ChunkedReader {
        ChunkedReader::default()
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next piece of body data; `None` after the last chunk and its trailers.
    pub async fn next<R: AsyncBufRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<Option<Bytes>, WireError> {
        if self.done {
            return Ok(None);
        }
        if self.remaining == 0 {
            let line = read_line(r, MAX_CHUNK_LINE).await?;
            let (size, ieof) = parse_chunk_size(&line)?;
            if size == 0 {
                // Trailers (rare) up to the empty line.
                loop {
                    let t = read_line(r, MAX_CHUNK_LINE).await?;
                    if t.is_empty() {
                        break;
                    }
                }
                self.done = true;
                self.ieof = ieof;
                return Ok(None);
            }
            self.remaining = size;
        }
        let n = (self.remaining as usize).min(PIECE);
        let mut piece = vec![0u8; n];
        r.read_exact(&mut piece).await?;
        self.remaining -= n as u64;
        if self.remaining == 0 {
            let end = read_line(r, 2).await.map_err(|_| WireError::Chunk)?;
            if !end.is_empty() {
                return Err(WireError::Chunk);
            }
        }
        Ok(Some(Bytes::from(piece)))
    }
}

/// Append `data` as one chunk (nothing for empty data).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parses_leniently() {
        let h = parse_head(
            b"REQMOD icap://127.0.0.1:1344/reqmod?x=1 ICAP/1.0\r\nHost: a\r\nAllow: 204, trailers\r\nPreview:  10 \r\nX-Long: a\r\n b\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.method, "REQMOD");
        assert_eq!(h.service(), "/reqmod");
        assert!(h.allows_204());
        assert_eq!(h.preview(), Some(10));
        assert_eq!(h.header("x-long"), Some("a b"));
        let h =
            parse_head(b"OPTIONS icap://h/reqmod ICAP/1.0\nEncapsulated: null-body=0\n\n").unwrap();
        assert_eq!(h.header("encapsulated"), Some("null-body=0"));
        assert!(!h.allows_204());
    }

    #[test]
    fn bad_heads_are_refused() {
        assert_eq!(
            parse_head(b"REQMOD icap://h/reqmod ICAP/2.0\r\n\r\n"),
            Err(WireError::Version)
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n"),
            Err(WireError::RequestLine)
        );
        assert_eq!(
            parse_head(b"REQMOD icap://h/reqmod ICAP/1.0\r\nno colon\r\n\r\n"),
            Err(WireError::HeaderLine)
        );
        assert!(parse_head(b"reqmod x ICAP/1.0\r\n\r\n").is_err());
    }

    #[test]
    fn encapsulated_offsets() {
        assert_eq!(
            parse_encapsulated("req-hdr=0, req-body=412").unwrap(),
            Encapsulated {
                req_hdr_len: 412,
                has_body: true
            }
        );
        assert_eq!(
            parse_encapsulated("req-hdr=0, null-body=170").unwrap(),
            Encapsulated {
                req_hdr_len: 170,
                has_body: false
            }
        );
        assert!(!parse_encapsulated("null-body=0").unwrap().has_body);
        assert!(parse_encapsulated("req-body=0").unwrap().has_body);
        assert!(parse_encapsulated("req-hdr=0, req-body=5, null-body=9").is_err());
        assert!(parse_encapsulated("req-hdr=10, req-body=5").is_err());
        assert!(parse_encapsulated("res-hdr=0, res-body=10").is_err());
        assert!(parse_encapsulated("req-hdr=0, req-body=x").is_err());
        assert!(parse_encapsulated("req-hdr=5").is_err());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), (26, false));
        assert_eq!(parse_chunk_size(b"0; ieof").unwrap(), (0, true));
        assert_eq!(parse_chunk_size(b"10;x=y").unwrap(), (16, false));
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"-1").is_err());
        assert!(parse_chunk_size(b"ffffffffffffffffff").is_err());
    }

    /// Until the fuzz/ infrastructure lands: mutated valid inputs (seeded, so a failure
    /// reproduces) never panic the parsers, and whatever parses keeps its invariants.
    #[test]
    fn mutated_inputs_never_panic() {
        use rand::{Rng, SeedableRng};
        let seeds: [&[u8]; 4] = [
            b"REQMOD icap://127.0.0.1:1344/reqmod ICAP/1.0\r\nHost: h\r\nAllow: 204\r\nPreview: 10\r\nEncapsulated: req-hdr=0, req-body=60\r\n\r\n",
            b"POST http://a.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\n",
            b"req-hdr=0, req-body=412",
            b"1a; ieof",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x1CA9);
        for _ in 0..20_000 {
            let mut v = seeds[rng.random_range(0..seeds.len())].to_vec();
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..=v.len());
                match rng.random_range(0..3) {
                    0 if i < v.len() => v[i] = rng.random(),
                    1 if i < v.len() => {
                        v.remove(i);
                    }
                    _ => v.insert(i, rng.random()),
                }
            }
            if let Ok(h) = parse_head(&v) {
                let _ = (h.service(), h.allows_204(), h.preview(), h.wants_close());
            }
            if let Ok(text) = std::str::from_utf8(&v) {
                let _ = parse_encapsulated(text);
            }
            let _ = parse_http_head(&v);
            if let Ok((n, _)) = parse_chunk_size(&v) {
                assert!(n < 1 << 60);
            }
        }
    }

    #[tokio::test]
    async fn chunked_body_with_preview_and_continuation() {
        let wire: &[u8] = b"5\r\nhello\r\n0\r\n\r\n6\r\n world\r\n0\r\n\r\n";
        let mut r = tokio::io::BufReader::new(wire);
        let mut c = ChunkedReader::new();
        let mut got = Vec::new();
        while let Some(p) = c.next(&mut r).await.unwrap() {
            got.extend_from_slice(&p);
        }
        assert!(!c.ieof);
        let mut c = ChunkedReader::new();
        while let Some(p) = c.next(&mut r).await.unwrap() {
            got.extend_from_slice(&p);
        }
        assert_eq!(got, b"hello world");
        let mut r = tokio::io::BufReader::new(&b"3\r\nabc\r\n0; ieof\r\n\r\n"[..]);
        let mut c = ChunkedReader::new();
        while c.next(&mut r).await.unwrap().is_some() {}
        assert!(c.ieof);
    }

    #[tokio::test]
    async fn heads_are_bounded_and_split_reads_work() {
        let wire: &[u8] = b"\r\nOPTIONS icap://h/reqmod ICAP/1.0\r\nHost: h\r\n\r\nREST";
        // A tiny buffer forces the blank line to straddle reads.
        let mut r = tokio::io::BufReader::with_capacity(3, wire);
        let head = read_head(&mut r, 1000).await.unwrap().unwrap();
        assert!(head.starts_with(b"OPTIONS"));
        assert!(head.ends_with(b"\r\n\r\n"));
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut r, &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, "REST");
        let big = vec![b'a'; 5000];
        let mut r = tokio::io::BufReader::new(&big[..]);
        assert_eq!(
            read_head(&mut r, 100).await,
            Err(WireError::HeadTooLarge(100))
        );
        let mut r = tokio::io::BufReader::new(&b""[..]);
        assert_eq!(read_head(&mut r, 100).await, Ok(None));
    }
}
