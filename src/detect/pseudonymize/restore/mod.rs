//! Restoring real values into an LLM API's response on its way back to the agent.
//!
//! [`ResponseRestorer`] is pure: bytes in, bytes out, no I/O. It undoes the response's
//! `Content-Encoding` (gzip, deflate, br, zstd; the result goes to the client
//! identity-encoded), cuts the body into documents by its type ([`framing`]) and
//! restores placeholders in each ([`events`]). The proxy's respond phase runs it over the
//! streamed answer (`proxy::pseudonym`).
//!
//! Memory per response is bounded: one incomplete event or line (at most
//! [`framing::MAX_UNIT`]), or for a non-streamed JSON document the caller's cap; the
//! few held-back bytes per stream; decompression is fed in small slices so one read
//! cannot inflate into an unbounded buffer.
//!
//! Fail-closed: what cannot be restored (an unknown placeholder, a document that is not
//! JSON, an oversized unit, a stacked or unknown encoding) passes through unchanged —
//! the agent then sees the placeholder, and the value still never left.

pub mod events;
pub mod framing;
pub mod json;

use super::Restorer;
use events::Events;
pub use events::Stats;
use framing::Framer;
use http::{header, HeaderMap};
use std::io::Write;

/// Which API a response answers, from the request path: it decides which string
/// fields are streamed fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    /// OpenAI Chat Completions and its many compatibles (`…/chat/completions`).
    ChatCompletions,
    /// OpenAI Responses API (`…/responses`).
    Responses,
    /// Legacy text completions (`…/completions`).
    Completions,
    /// Anthropic Messages (`…/v1/messages`).
    Messages,
    /// Google Gemini `…:generateContent`.
    Gemini,
    /// Google Gemini `…:streamGenerateContent` (SSE with `alt=sse`, else one JSON array
    /// sent element by element).
    GeminiStream,
    /// Anything else on an LLM host: whole strings are restored.
    Generic,
}

impl ApiKind {
    pub fn from_path(path: &str) -> ApiKind {
        let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
        if path.ends_with(":streamGenerateContent") {
            ApiKind::GeminiStream
        } else if path.ends_with(":generateContent") {
            ApiKind::Gemini
        } else if path.ends_with("/chat/completions") || path.ends_with("/chatcompletion_v2") {
            ApiKind::ChatCompletions
        } else if path.ends_with("/responses") {
            ApiKind::Responses
        } else if path.ends_with("/completions") {
            ApiKind::Completions
        } else if path.ends_with("/messages") {
            ApiKind::Messages
        } else {
            ApiKind::Generic
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the response's {encoding} body cannot be decoded: {source}")]
    Decode {
        encoding: &'static str,
        source: std::io::Error,
    },
}

/// Slice size fed to a decompressor at a time: its output per slice stays bounded
/// (deflate inflates at most ~1 000×, zstd's RLE blocks ~32 000×: 2 MiB).
const DECODE_SLICE: usize = 64;

enum Decoder {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Decoder {
    /// The decoder for a `Content-Encoding` header; `Ok(None)` for identity, `Err(())`
    /// for what this cannot undo (stacked or unknown codings).
    fn for_headers(headers: &HeaderMap) -> Result<Option<Decoder>, ()> {
        let codings: Vec<String> = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c != "identity")
            .collect();
        match codings.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(match one.as_str() {
                "gzip" | "x-gzip" => Decoder::Gzip(flate2::write::GzDecoder::new(Vec::new())),
                "deflate" => Decoder::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
                "br" => Decoder::Br(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
                "zstd" => {
                    Decoder::Zstd(zstd::stream::write::Decoder::new(Vec::new()).map_err(|_| ())?)
                }
                _ => return Err(()),
            })),
            _ => Err(()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Decoder::Gzip(_) => "gzip",
            Decoder::Deflate(_) => "deflate",
            Decoder::Br(_) => "br",
            Decoder::Zstd(_) => "zstd",
        }
    }

    /// Decode `input` piecewise, calling `sink` with each piece of output.
    fn push(&mut self, input: &[u8], mut sink: impl FnMut(&[u8])) -> std::io::Result<()> {
        for piece in input.chunks(DECODE_SLICE) {
            let out = match self {
                Decoder::Gzip(d) => {
                    d.write_all(piece)?;
                    d.flush()?;
                    d.get_mut()
                }
                Decoder::Deflate(d) => {
                    d.write_all(piece)?;
                    d.flush()?;
                    d.get_mut()
                }
                Decoder::Br(d) => {
                    d.write_all(piece)?;
                    d.flush()?;
                    d.get_mut()
                }
                Decoder::Zstd(d) => {
                    d.write_all(piece)?;
                    d.flush()?;
                    d.get_mut()
                }
            };
            if !out.is_empty() {
                sink(out);
                out.clear();
            }
        }
        Ok(())
    }
}

/// Restores one response body. Built per response from the request's [`Restorer`].
pub struct ResponseRestorer {
    decoder: Option<Decoder>,
    framer: Framer,
    events: Events,
    scratch: Vec<u8>,
}

impl ResponseRestorer {
    /// A restorer for a response with these headers, or `None` when its body cannot
    /// hold restorable text (binary types) or is encoded in a way this cannot undo —
    /// such a body is passed on untouched. `whole_cap` bounds a non-streamed JSON body.
    pub fn new(
        restorer: Restorer,
        kind: ApiKind,
        headers: &HeaderMap,
        whole_cap: usize,
    ) -> Option<ResponseRestorer> {
        let essence = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let framer = match essence.as_str() {
            "text/event-stream" => Framer::Sse(Default::default()),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/jsonlines" => Framer::Ndjson(Default::default()),
            // Gemini's streamGenerateContent without `alt=sse`: one JSON array, element
            // by element.
            "application/json" if kind == ApiKind::GeminiStream => {
                Framer::Array(Default::default())
            }
            e if e == "application/json" || e.ends_with("+json") || e.is_empty() => {
                Framer::Whole(framing::Whole::new(whole_cap))
            }
            e if e.starts_with("text/") => Framer::Text(framing::Text::new(restorer.clone())),
            _ => return None,
        };
        let decoder = Decoder::for_headers(headers).ok()?;
        Some(ResponseRestorer {
            decoder,
            framer,
            events: Events::new(restorer, kind),
            scratch: Vec::new(),
        })
    }

    /// Fix the response headers for the restored body: its length changes, and a
    /// decoded body goes out identity-encoded.
    pub fn fix_headers(&self, headers: &mut HeaderMap) {
        headers.remove(header::CONTENT_LENGTH);
        if self.decoder.is_some() {
            headers.remove(header::CONTENT_ENCODING);
        }
    }

    /// Feed the next bytes of the body; what can be sent now is appended to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RestoreError> {
        let (framer, events) = (&mut self.framer, &mut self.events);
        match &mut self.decoder {
            None => framer.push(events, input, out),
            Some(d) => {
                let scratch = &mut self.scratch;
                let name = d.name();
                d.push(input, |piece| scratch.extend_from_slice(piece))
                    .map_err(|source| RestoreError::Decode {
                        encoding: name,
                        source,
                    })?;
                framer.push(events, scratch, out);
                scratch.clear();
            }
        }
        Ok(())
    }

    /// The body ended: send everything still held.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), RestoreError> {
        if let Some(d) = self.decoder.take() {
            let name = d.name();
            let rest = match d {
                Decoder::Gzip(d) => d.finish(),
                Decoder::Deflate(d) => d.finish(),
                Decoder::Br(mut d) => d.flush().map(|_| std::mem::take(d.get_mut())),
                Decoder::Zstd(mut d) => d.flush().map(|_| std::mem::take(d.get_mut())),
            }
            .map_err(|source| RestoreError::Decode {
                encoding: name,
                source,
            })?;
            self.framer.push(&mut self.events, &rest, out);
        }
        self.framer.finish(&mut self.events, out);
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        self.events.stats
    }
}

#[cfg(test)]
mod tests;
