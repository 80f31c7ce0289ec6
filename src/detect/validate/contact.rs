//! E-mail addresses.

/// File extensions that follow `@` in asset names (`icon@2x.png`), not mail domains.
const NOT_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "js", "ts", "css", "map", "json", "py",
    "rs", "go", "md", "txt", "html", "xml", "yaml", "yml", "toml", "lock", "zip", "gz", "tar",
    "exe", "dll", "so", "wasm", "pdf",
];

/// E-mail: the domain has a dot, labels of letters/digits/hyphens, an alphabetic TLD.
pub fn email(v: &[u8]) -> bool {
    let Some(at) = v.iter().rposition(|&b| b == b'@') else {
        return false;
    };
    let (local, domain) = (&v[..at], &v[at + 1..]);
    if local.is_empty() || local.len() > 64 || local[0] == b'.' || local.ends_with(b".") {
        return false;
    }
    let labels: Vec<&[u8]> = domain.split(|&b| b == b'.').collect();
    if labels.len() < 2 {
        return false;
    }
    for l in &labels {
        if l.is_empty() || l.len() > 63 || l[0] == b'-' || l[l.len() - 1] == b'-' {
            return false;
        }
    }
    let tld = labels[labels.len() - 1];
    tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic)
        && !NOT_TLDS
            .iter()
            .any(|t| t.as_bytes().eq_ignore_ascii_case(tld))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(email(b"alice@example.com"));
        assert!(email(b"a.b+tag@mail.example.co.uk"));
        assert!(!email(b"icon@2x.png"));
        assert!(!email(b"user@localhost"));
        assert!(!email(b".a@example.com"));
    }
}
