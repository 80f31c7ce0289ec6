//! `clawguard scan` output: scan one input, print findings as text, JSON lines or
//! SARIF 2.1.0, or print the input redacted. Which files are scanned, progress and the
//! summary line live in [`crate::file_scan`].

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

/// One finding as reported: everything but the raw value.
#[derive(Debug, Clone)]
pub struct Reported {
    pub path: String,
    pub finding: Finding,
    pub line: usize,
    pub preview: String,
}

/// What scanning one input produced.
pub struct FileResult {
    pub path: String,
    pub findings: Vec<Reported>,
    pub error: Option<String>,
}

/// Scan one reader in bounded memory, with line numbers and previews.
pub fn scan_one<R: Read>(scanner: &Scanner, path: &str, reader: R) -> FileResult {
    let mut findings = Vec::new();
    let res = scanner.scan_reader_lines(reader, CHUNK, |f, line, value| {
        findings.push(Reported {
            path: path.to_string(),
            preview: preview(value),
            line,
            finding: f,
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
                    "preview": f.preview,
                });
                writeln!(out, "{v}")?;
            }
        }
        Format::Text => {
            for f in results.iter().flat_map(|r| &r.findings) {
                let rule = scanner.rule(&f.finding);
                if color {
                    writeln!(
                        out,
                        "\x1b[1m{}:{}\x1b[0m: \x1b[31m{}\x1b[0m ({}) {}  \x1b[2m{}\x1b[0m",
                        f.path, f.line, rule.id, rule.category, f.preview, rule.description
                    )?;
                } else {
                    writeln!(
                        out,
                        "{}:{}: {} ({}) {}  {}",
                        f.path, f.line, rule.id, rule.category, f.preview, rule.description
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
                "message": {"text": format!("{} ({}): {}", rule.description, rule.category, f.preview)},
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

/// The input with every finding replaced by `[REDACTED:<rule-id>]`.
pub fn redact_all(scanner: &Scanner, input: &[u8]) -> (Vec<u8>, usize) {
    let findings = scanner.scan(input);
    let mut out = Vec::with_capacity(input.len());
    let mut pos = 0;
    for f in &findings {
        out.extend_from_slice(&input[pos..f.start]);
        out.extend_from_slice(format!("[REDACTED:{}]", f.rule).as_bytes());
        pos = f.end;
    }
    out.extend_from_slice(&input[pos..]);
    (out, findings.len())
}
