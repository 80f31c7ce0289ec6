//! Undoing compression: the `Content-Encoding` a request declares (fail-closed when it
//! cannot be undone), and compressed data nobody declared, recognised by its magic bytes
//! (a gzip upload sent without `Content-Encoding`, a base64 run that is a zstd frame).
//! Every decoder streams into a buffer that never grows past its cap, so a compression
//! bomb costs at most the cap.

use super::ExtractError;
use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

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
        reader = coding_reader(c, reader)?;
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
    let zlib = head.len() >= 2 && is_zlib_header(head[0], head[1]);
    Ok(if zlib {
        Box::new(flate2::bufread::ZlibDecoder::new(br))
    } else {
        Box::new(flate2::bufread::DeflateDecoder::new(br))
    })
}

/// Read everything, failing as soon as more than `max` bytes come out. The buffer
/// grows by doubling but never past `max + 1` bytes of capacity, so a compression
/// bomb costs at most the cap in memory (plus one 64 KiB chunk).
pub(crate) fn read_bounded(mut r: impl Read, max: usize) -> Result<Vec<u8>, ExtractError> {
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

/// A compression format recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Zlib,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Zlib => "zlib",
        }
    }
}

/// The compression `data` starts with, by magic bytes: gzip (RFC 1952, `1f 8b 08`), a
/// zstd frame or skippable frame (RFC 8878), a zlib header (RFC 1950: deflate, a window
/// of at most 32 KiB, FCHECK). Brotli has no magic and is only read when declared.
pub fn sniff_compression(data: &[u8]) -> Option<Compression> {
    match data {
        [0x1f, 0x8b, 0x08, ..] => Some(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
        [m, 0x2a, 0x4d, 0x18, ..] if m & 0xf0 == 0x50 => Some(Compression::Zstd),
        [a, b, ..] if is_zlib_header(*a, *b) => Some(Compression::Zlib),
        _ => None,
    }
}

fn is_zlib_header(a: u8, b: u8) -> bool {
    a & 0x0f == 8 && a >> 4 <= 7 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0
}

/// Decompress `data` in `format`, at most `max` bytes out.
pub fn decompress(format: Compression, data: &[u8], max: usize) -> Result<Vec<u8>, ExtractError> {
    let reader: Box<dyn Read + '_> = match format {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Compression::Zlib => Box::new(flate2::read::ZlibDecoder::new(data)),
        Compression::Zstd => zstd_reader(Box::new(data))?,
    };
    read_bounded(reader, max)
}

fn zstd_reader<'a>(r: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>, ExtractError> {
    let mut d = zstd::stream::read::Decoder::new(r)
        .map_err(|e| ExtractError::Undecodable(format!("zstd: {e}")))?;
    // Refuse frames that ask for windows over 8 MiB (the size RFC 8878 recommends
    // decoders support): the window is allocated up front.
    d.window_log_max(23)
        .map_err(|e| ExtractError::Undecodable(format!("zstd: {e}")))?;
    Ok(Box::new(d))
}

/// Decompress one declared coding (`gzip`, `deflate`, `br`, `zstd`, `identity`): gRPC's
/// `grpc-encoding` names the same codings as `Content-Encoding`.
pub fn decode_coding(coding: &str, data: &[u8], max: usize) -> Result<Vec<u8>, ExtractError> {
    let c = coding.trim().to_ascii_lowercase();
    if c.is_empty() || c == "identity" {
        if data.len() > max {
            return Err(ExtractError::TooLarge);
        }
        return Ok(data.to_vec());
    }
    read_bounded(coding_reader(&c, Box::new(data))?, max)
}

fn coding_reader<'a>(
    c: &str,
    reader: Box<dyn Read + 'a>,
) -> Result<Box<dyn Read + 'a>, ExtractError> {
    Ok(match c {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        "deflate" => deflate_reader(reader)?,
        "br" => Box::new(brotli::Decompressor::new(reader, 8192)),
        "zstd" => zstd_reader(reader)?,
        other => {
            return Err(ExtractError::Undecodable(format!(
                "unsupported Content-Encoding `{other}`"
            )))
        }
    })
}
