//! `clawguard scan` output: scan one input, print findings as text, JSON lines or
//! SARIF 2.1.0, or print the input redacted. Which files are scanned, progress and the
//! summary line live in [`crate::file_scan`].
//!
//! Each input is read the way the proxy reads a request body with no declared type
//! (JSON, compressed data by magic, UTF-16/32, …) and every encoding layer inside it is
//! decoded ([`crate::detect::layers`]); a finding names its layer path. Inputs larger than
//! [`MAX_DOCUMENT`] are scanned as raw bytes in bounded memory instead.

use crate::detect::extract::{self, Budget};
use crate::detect::layers;
use crate::detect::limits::Limits;
use crate::detect::scan::{preview, Finding, Scanner};
use serde_json::json;
use std::io::{self, Read, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            _ => Err(format!("unknown format `{s}` (text, json or sarif)")),
        }
    }
}

/// Read size for streaming scans; windows overlap by the scanner's max span.
const CHUNK: usize = 4 << 20;

/// Inputs up to this size are read whole, with every reading and layer; larger ones are
/// streamed and scanned as raw bytes.
pub const MAX_DOCUMENT: usize = 64 << 20;

/// One finding as reported: everything but the raw value.
#[derive(Debug, Clone)]
pub struct Reported {
    pub path: String,
    /// Byte offsets are of the input as read (for a decoded layer, the encoded run).
    pub finding: Finding,
    pub line: usize,
    pub preview: String,
    /// Where inside the input (`json messages[0].content › base64`); empty when the
    /// value sits in the input as it is.
    pub layer: String,
}

/// What scanning one input produced.
pub struct FileResult {
    pub path: String,
    pub findings: Vec<Reported>,
    pub error: Option<String>,
}

/// Scan one input: read whole (up to [`MAX_DOCUMENT`]) and read by content with every
/// layer, or streamed as raw bytes in bounded memory when larger.
pub fn scan_one<R: Read>(scanner: &Scanner, path: &str, mut reader: R) -> FileResult {
    let mut head = Vec::new();
    if let Err(e) = (&mut reader)
        .take(MAX_DOCUMENT as u64 + 1)
        .read_to_end(&mut head)
    {
        return FileResult {
            path: path.to_string(),
            findings: Vec::new(),
            error: Some(format!("{path}: {e}")),
        };
    }
    if head.len() <= MAX_DOCUMENT {
        let (findings, note) = scan_document(scanner, path, &head);
        return FileResult {
            path: path.to_string(),
            findings,
            error: note.map(|n| format!("{path}: {n}")),
        };
    }
    scan_stream(scanner, path, io::Cursor::new(head).chain(reader))
}

/// Every finding in `data` read as a document, sorted by offset, each (rule, span)
/// once; plus a note when the decoding budget ran out (the raw bytes are still scanned).
pub fn scan_document(
    scanner: &Scanner,
    path: &str,
    data: &[u8],
) -> (Vec<Reported>, Option<String>) {
    let limits = Limits::default();
    let mut budget = Budget::new(limits.max_layer_bytes);
    let view = extract::body_view_with(None, None, data, &mut budget);
    let mut segs = view.segments;
    layers::expand(&mut segs, &mut budget, limits.max_layer_depth);
    let mut seen = std::collections::HashSet::new();
    let mut found: Vec<Reported> = Vec::new();
    let mut items: Vec<(usize, usize)> = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        for f in scanner.scan(&seg.view) {
            let (rs, re) = seg.raw_span(f.start, f.end);
            if !seen.insert((rs, re, f.rule_index)) {
                continue;
            }
            items.push((i, rs));
            found.push(Reported {
                path: path.to_string(),
                preview: preview(&seg.view[f.start..f.end]),
                line: 0,
                layer: String::new(),
                finding: Finding {
                    start: rs,
                    end: re,
                    ..f
                },
            });
        }
    }
    let json = extract::json_paths_of(&segs, &items, |_| Some(data));
    for ((r, &(i, _)), p) in found.iter_mut().zip(&items).zip(json) {
        r.layer = segs[i].describe_layers(p.as_deref());
    }
    found.sort_by_key(|r| (r.finding.start, r.finding.end));
    let (mut cursor, mut line) = (0usize, 1usize);
    for r in &mut found {
        line += memchr::memchr_iter(b'\n', &data[cursor..r.finding.start]).count();
        cursor = r.finding.start;
        r.line = line;
    }
    let note = budget
        .exceeded
        .then(|| "decoding layers exceeded their budget; some layers were not read".to_string());
    (found, note)
}

/// Scan a reader in bounded memory (raw bytes only), with line numbers and previews.
fn scan_stream<R: Read>(scanner: &Scanner, path: &str, reader: R) -> FileResult {
    let mut findings = Vec::new();
    let res = scanner.scan_reader_lines(reader, CHUNK, |f, line, value| {
        findings.push(Reported {
            path: path.to_string(),
            preview: preview(value),
            line,
            finding: f,
            layer: String::new(),
        })
    });
    FileResult {
        path: path.to_string(),
        findings,
        error: res.err().map(|e| format!("{path}: {e}")),
    }
}

/// Print results; returns (number of findings, number of errors).
pub fn print(
    scanner: &Scanner,
    results: &[FileResult],
    format: Format,
    color: bool,
    out: &mut dyn Write,
) -> io::Result<(usize, usize)> {
    let mut n = 0;
    let mut errors = 0;
    for r in results {
        if let Some(e) = &r.error {
            errors += 1;
            eprintln!("clawguard: error: {e}");
        }
        n += r.findings.len();
    }
    match format {
        Format::Json => {
            for f in results.iter().flat_map(|r| &r.findings) {
                let v = json!({
                    "path": f.path,
                    "rule": &*f.finding.rule,
                    "category": f.finding.category.as_str(),
                    "start": f.finding.start,
                    "end": f.finding.end,
                    "line": f.line,
                    "layer": f.layer,
                    "preview": f.preview,
                });
                writeln!(out, "{v}")?;
            }
        }
        Format::Text => {
            for f in results.iter().flat_map(|r| &r.findings) {
                let rule = scanner.rule(&f.finding);
                let layer = if f.layer.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", f.layer)
                };
                if color {
                    writeln!(
                        out,
                        "\x1b[1m{}:{}\x1b[0m: \x1b[31m{}\x1b[0m ({}) {}{}  \x1b[2m{}\x1b[0m",
                        f.path, f.line, rule.id, rule.category, f.preview, layer, rule.description
                    )?;
                } else {
                    writeln!(
                        out,
                        "{}:{}: {} ({}) {}{}  {}",
                        f.path, f.line, rule.id, rule.category, f.preview, layer, rule.description
                    )?;
                }
            }
            if n > 0 && color {
                writeln!(out, "{n} finding(s)")?;
            }
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif(scanner, results))?;
            writeln!(out)?;
        }
    }
    Ok((n, errors))
}

fn sarif(scanner: &Scanner, results: &[FileResult]) -> serde_json::Value {
    let rules: Vec<_> = scanner
        .rules()
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "shortDescription": {"text": if r.description.is_empty() { &r.id } else { &r.description }},
                "properties": {"category": r.category.as_str(), "action": r.action().as_str()},
            })
        })
        .collect();
    let found: Vec<_> = results
        .iter()
        .flat_map(|r| &r.findings)
        .map(|f| {
            let rule = scanner.rule(&f.finding);
            json!({
                "ruleId": rule.id,
                "ruleIndex": f.finding.rule_index,
                "level": "error",
                "message": {"text": if f.layer.is_empty() {
                    format!("{} ({}): {}", rule.description, rule.category, f.preview)
                } else {
                    format!("{} ({}): {} in {}", rule.description, rule.category, f.preview, f.layer)
                }},
                "properties": {"layer": f.layer},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path},
                        "region": {
                            "startLine": f.line,
                            "byteOffset": f.finding.start,
                            "byteLength": f.finding.end - f.finding.start,
                        }
                    }
                }]
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ClawGuard",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": found,
        }]
    })
}

/// The input with every finding replaced by `[REDACTED:<rule-id>]` (a finding in a
/// decoded layer replaces the whole encoded run it came from).
pub fn redact_all(scanner: &Scanner, input: &[u8]) -> (Vec<u8>, usize) {
    let (findings, _) = scan_document(scanner, "-", input);
    let mut out = Vec::with_capacity(input.len());
    let mut pos = 0;
    for f in &findings {
        if f.finding.start < pos {
            continue; // inside a run already replaced
        }
        out.extend_from_slice(&input[pos..f.finding.start]);
        out.extend_from_slice(format!("[REDACTED:{}]", f.finding.rule).as_bytes());
        pos = f.finding.end;
    }
    out.extend_from_slice(&input[pos..]);
    (out, findings.len())
}
