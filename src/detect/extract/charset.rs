//! Wide charsets: UTF-16 and UTF-32 text, recognised by byte-order mark, by a declared
//! `charset`, or (without either) by the NUL bytes ASCII characters leave in it, and
//! transcoded to UTF-8 with every character mapped to its code units. Rules match ASCII
//! shapes; in UTF-16 `4111` is `4\0 1\0 1\0 1\0`, which no rule sees.

use super::offsets::OffsetMap;

/// Bytes looked at to recognise a wide charset without a byte-order mark.
const SNIFF: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wide {
    Utf16Le,
    Utf16Be,
    Utf32Le,
    Utf32Be,
}

impl Wide {
    pub fn name(self) -> &'static str {
        match self {
            Wide::Utf16Le => "utf-16le",
            Wide::Utf16Be => "utf-16be",
            Wide::Utf32Le => "utf-32le",
            Wide::Utf32Be => "utf-32be",
        }
    }

    fn unit(self) -> usize {
        match self {
            Wide::Utf16Le | Wide::Utf16Be => 2,
            Wide::Utf32Le | Wide::Utf32Be => 4,
        }
    }
}

/// The wide charset `data` is in, if any: its byte-order mark, else the declared
/// `charset` (UTF-16 without an order is told apart by its NUL bytes), else the NUL
/// pattern alone.
pub fn detect(data: &[u8], declared: Option<&str>) -> Option<Wide> {
    match data {
        [0xFF, 0xFE, 0, 0, ..] => return Some(Wide::Utf32Le),
        [0, 0, 0xFE, 0xFF, ..] => return Some(Wide::Utf32Be),
        [0xFF, 0xFE, ..] => return Some(Wide::Utf16Le),
        [0xFE, 0xFF, ..] => return Some(Wide::Utf16Be),
        [0xEF, 0xBB, 0xBF, ..] => return None,
        _ => {}
    }
    let sniffed = sniff(data);
    match declared.map(|c| c.trim().to_ascii_lowercase()).as_deref() {
        Some("utf-16le" | "utf16le") => Some(Wide::Utf16Le),
        Some("utf-16be" | "utf16be") => Some(Wide::Utf16Be),
        Some("utf-32le" | "utf32le") => Some(Wide::Utf32Le),
        Some("utf-32be" | "utf32be") => Some(Wide::Utf32Be),
        Some("utf-16" | "utf16" | "ucs-2") => match sniffed {
            Some(w @ (Wide::Utf16Le | Wide::Utf16Be)) => Some(w),
            _ => Some(Wide::Utf16Be), // RFC 2781: big-endian without a BOM
        },
        Some("utf-32" | "utf32") => match sniffed {
            Some(w @ (Wide::Utf32Le | Wide::Utf32Be)) => Some(w),
            _ => Some(Wide::Utf32Be),
        },
        _ => sniffed,
    }
}

/// ASCII (and Latin) characters in UTF-16 have a NUL high byte; in UTF-32 three of four
/// bytes are NUL. Text in other scripts has fewer NULs, but rarely none; binary formats
/// have NULs evenly at every position. UTF-8 text has none.
fn sniff(data: &[u8]) -> Option<Wide> {
    let n = data.len().min(SNIFF) & !3;
    if n < 4 {
        return None;
    }
    let mut zeros = [0usize; 4];
    for (i, &b) in data[..n].iter().enumerate() {
        if b == 0 {
            zeros[i % 4] += 1;
        }
    }
    let quarter = n / 4;
    let high = |c: usize| c * 10 >= quarter * 9; // ≥ 90 % of positions
    let low = |c: usize| c * 20 <= quarter; // ≤ 5 %
    if high(zeros[1]) && high(zeros[2]) && high(zeros[3]) && low(zeros[0]) {
        return Some(Wide::Utf32Le);
    }
    if high(zeros[0]) && high(zeros[1]) && high(zeros[2]) && low(zeros[3]) {
        return Some(Wide::Utf32Be);
    }
    let (even, odd) = (zeros[0] + zeros[2], zeros[1] + zeros[3]);
    let half = n / 2;
    // At least a quarter of the characters ASCII, and NULs on one side only.
    if odd * 4 >= half && even * 16 <= odd {
        return Some(Wide::Utf16Le);
    }
    if even * 4 >= half && odd * 16 <= even {
        return Some(Wide::Utf16Be);
    }
    None
}

/// `data` as UTF-8, each character mapped (as a whole) to its code units; the
/// byte-order mark is dropped, unpaired surrogates become U+FFFD.
pub fn transcode(data: &[u8], wide: Wide) -> (Vec<u8>, OffsetMap) {
    let unit = wide.unit();
    let bom = match (wide, data) {
        (Wide::Utf16Le, [0xFF, 0xFE, ..]) | (Wide::Utf16Be, [0xFE, 0xFF, ..]) => 2,
        (Wide::Utf32Le, [0xFF, 0xFE, 0, 0, ..]) | (Wide::Utf32Be, [0, 0, 0xFE, 0xFF, ..]) => 4,
        _ => 0,
    };
    let units = (data.len() - bom) / unit;
    let read = |i: usize| -> u32 {
        let b = &data[bom + i * unit..bom + (i + 1) * unit];
        match wide {
            Wide::Utf16Le => u32::from(u16::from_le_bytes([b[0], b[1]])),
            Wide::Utf16Be => u32::from(u16::from_be_bytes([b[0], b[1]])),
            Wide::Utf32Le => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Wide::Utf32Be => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        }
    };
    let mut out = Vec::with_capacity(units);
    let mut map = OffsetMap::default();
    let mut buf = [0u8; 4];
    let mut i = 0;
    while i < units {
        let u = read(i);
        let (c, n) = match (wide.unit(), u) {
            (2, 0xD800..=0xDBFF) if i + 1 < units && (0xDC00..=0xDFFF).contains(&read(i + 1)) => {
                let lo = read(i + 1);
                (0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00), 2)
            }
            _ => (u, 1),
        };
        let ch = char::from_u32(c).unwrap_or('\u{FFFD}');
        map.push_atomic(out.len(), bom + i * unit, n * unit);
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        i += n;
    }
    (out, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_bom_declaration_and_nuls() {
        let le: Vec<u8> = "hello 4111"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let be: Vec<u8> = "hello 4111"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(detect(&le, None), Some(Wide::Utf16Le));
        assert_eq!(detect(&be, None), Some(Wide::Utf16Be));
        assert_eq!(detect(&be, Some("UTF-16")), Some(Wide::Utf16Be));
        assert_eq!(detect(b"plain ascii text", None), None);
        assert_eq!(detect("中文 text".as_bytes(), None), None);
        assert_eq!(detect(b"\xEF\xBB\xBF{}", Some("utf-16")), None);
        // Binary with NULs everywhere is not text.
        let bin: Vec<u8> = (0..256u32).flat_map(|i| [0, (i % 7) as u8, 0, 1]).collect();
        assert_eq!(detect(&bin, None), None);
    }

    #[test]
    fn transcodes_with_surrogates_and_maps_units() {
        let s = "a😀中b";
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(s.encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        let (out, map) = transcode(&le, Wide::Utf16Le);
        assert_eq!(std::str::from_utf8(&out).unwrap(), s);
        assert_eq!(map.raw_span(0, 1), (2, 4));
        assert_eq!(map.raw_span(1, 5), (4, 8)); // the surrogate pair
        assert_eq!(map.raw_span(5, 8), (8, 10));
        let (out, _) = transcode(&[0x00, 0xD8, 0x41, 0x00], Wide::Utf16Le);
        assert_eq!(std::str::from_utf8(&out).unwrap(), "\u{FFFD}A");
    }
}
