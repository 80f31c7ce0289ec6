//! What of a request may appear in logs and audit records: never a path segment, a
//! `;param`, a query name, a value-less query item or a host label that holds a finding.
//! Those are replaced by their masked preview, like findings themselves.

use crate::detect::scan::{preview, Scanner};

/// Byte ranges of `s` that hold a finding, scanning the text as written and each
/// percent-decoded piece (a value spelled `%41KIA…` is still the value).
fn finding_spans(scanner: &Scanner, s: &str) -> Vec<(usize, usize)> {
    scanner
        .scan(s.as_bytes())
        .into_iter()
        .map(|f| (f.start, f.end))
        .collect()
}

fn holds_finding(scanner: &Scanner, piece: &str, start: usize, spans: &[(usize, usize)]) -> bool {
    let end = start + piece.len();
    if spans.iter().any(|&(s, e)| s < end && e > start) {
        return true;
    }
    if piece.contains('%') || piece.contains('+') {
        let decoded: Vec<u8> = percent_decode(piece.as_bytes());
        return !scanner.scan(&decoded).is_empty();
    }
    false
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match s[i] {
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The host for logs: each label that holds (part of) a finding masked. `None` when
/// nothing in it is a finding.
pub fn mask_host(scanner: &Scanner, host: &str) -> Option<String> {
    let spans = finding_spans(scanner, host);
    let mut start = 0;
    let mut masked = false;
    let mut out = Vec::new();
    for label in host.split('.') {
        if holds_finding(scanner, label, start, &spans) {
            out.push(preview(label.as_bytes()));
            masked = true;
        } else {
            out.push(label.to_string());
        }
        start += label.len() + 1;
    }
    masked.then(|| out.join("."))
}

/// The path and query for an audit record: query values dropped (`?a=&b=`), and every
/// path segment, `;param`, query name or value-less item that holds a finding masked.
/// `url_findings`: the engine reported a finding somewhere in the URL; if none of the
/// pieces can be pinned down as holding it (an encoding only the engine's layers
/// undo), every piece is masked rather than risk writing it out.
pub fn audit_path(scanner: &Scanner, path_and_query: &str, url_findings: bool) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let spans = finding_spans(scanner, path_and_query);
    // Pieces: (start offset in path_and_query, text, keep-as-is separator after it).
    let mut pieces: Vec<(usize, &str, bool)> = Vec::new();
    let mut off = 0;
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            off += 1;
        }
        let mut p_off = off;
        for (j, part) in seg.split(';').enumerate() {
            if j > 0 {
                p_off += 1;
            }
            pieces.push((p_off, part, false));
            p_off += part.len();
        }
        off += seg.len();
    }
    let query_start = path.len() + 1;
    if let Some(q) = query {
        let mut q_off = query_start;
        for (i, item) in q.split('&').enumerate() {
            if i > 0 {
                q_off += 1;
            }
            let name = item.split_once('=').map_or(item, |(k, _)| k);
            pieces.push((q_off, name, item.contains('=')));
            q_off += item.len();
        }
    }
    let flagged: Vec<bool> = pieces
        .iter()
        .map(|(start, text, _)| !text.is_empty() && holds_finding(scanner, text, *start, &spans))
        .collect();
    let mask_all = url_findings && !flagged.iter().any(|&f| f);
    let mask = |i: usize, text: &str| -> String {
        if !text.is_empty() && (flagged[i] || mask_all) {
            preview(text.as_bytes())
        } else {
            text.to_string()
        }
    };
    // Rebuild with the original separators.
    let mut out = String::with_capacity(path_and_query.len());
    let mut i = 0;
    for (si, seg) in path.split('/').enumerate() {
        if si > 0 {
            out.push('/');
        }
        for (j, _) in seg.split(';').enumerate() {
            if j > 0 {
                out.push(';');
            }
            out.push_str(&mask(i, pieces[i].1));
            i += 1;
        }
    }
    if query.is_some() {
        out.push('?');
        let mut first = true;
        while i < pieces.len() {
            if !first {
                out.push('&');
            }
            first = false;
            out.push_str(&mask(i, pieces[i].1));
            if pieces[i].2 {
                out.push('=');
            }
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::RulePack;

    fn scanner() -> Scanner {
        Scanner::new(&RulePack::builtin()).unwrap()
    }

    const KEY: &str = "AKIAQYLPMN5HFIQR7VUX";

    #[test]
    fn clean_paths_keep_names_and_drop_values() {
        let s = scanner();
        assert_eq!(audit_path(&s, "/a/b?x=1&y", false), "/a/b?x=&y");
        assert_eq!(audit_path(&s, "/", false), "/");
        assert_eq!(audit_path(&s, "/a;v=1/b", false), "/a;v=1/b");
    }

    #[test]
    fn findings_are_masked_wherever_they_are() {
        let s = scanner();
        for pq in [
            format!("/files/{KEY}/x"),
            format!("/files/x;{KEY}"),
            format!("/q?{KEY}"),
            format!("/q?{KEY}=1"),
            format!("/q?a=1&{KEY}"),
            "/files/%41KIAQYLPMN5HFIQR7VUX".to_string(),
        ] {
            let out = audit_path(&s, &pq, true);
            assert!(!out.contains("QYLPMN5HFIQR7"), "{pq} -> {out}");
            assert!(out.starts_with('/'), "{out}");
        }
        assert_eq!(
            audit_path(&s, &format!("/keep/{KEY}?n=1"), true)
                .split('/')
                .nth(1),
            Some("keep")
        );
    }

    #[test]
    fn host_labels_are_masked() {
        let s = scanner();
        assert_eq!(mask_host(&s, "api.example.com"), None);
        let m = mask_host(&s, &format!("{}.evil.example", KEY.to_ascii_lowercase()))
            .or_else(|| mask_host(&s, &format!("{KEY}.evil.example")))
            .unwrap();
        assert!(m.ends_with(".evil.example"), "{m}");
        assert!(!m.contains("QYLPMN5HFIQR7"), "{m}");
    }
}
