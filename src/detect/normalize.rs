//! Unicode normalisation before matching, offsets kept. Rules match ASCII shapes; these
//! characters read the same to a person or a model and hide a value from a byte matcher:
//!
//! - compatibility forms of letters, digits and `@ . + - _` and spaces (NFKC to one ASCII
//!   character: full-width `４１１１`, `ａ＠ｂ．ｃｏｍ`, mathematical `𝟒`, circled `①`,
//!   superscripts, small `﹫`), dashes and minus signs to `-`, and `。` between ASCII
//!   letters or digits to `.`;
//! - every decimal digit of any script (Unicode `Nd`: Arabic-Indic `٤١١١`, Devanagari,
//!   …) to its ASCII digit;
//! - default-ignorable and format characters dropped (zero-width space and joiners, soft
//!   hyphen, byte-order mark, bidirectional controls, variation selectors, tags).
//!
//! Only the neighbourhood of such characters is rewritten ([`CONTEXT`] bytes either side,
//! so a rule's context word nearby is still seen); text without them (ASCII, and CJK text
//! whose punctuation is not folded) costs one pass over its lead bytes.

use crate::detect::extract::offsets::{OffsetMap, ViewBuilder};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Bytes kept either side of a rewritten character.
pub const CONTEXT: usize = 96;

/// What a character becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    Drop,
    Ascii(u8),
}

/// UTF-8 lead bytes of the blocks that hold characters we rewrite. CJK ideographs and
/// Hangul (lead bytes E4–E9, EB–ED) never need it and are skipped without decoding.
fn interesting_lead(b: u8) -> bool {
    matches!(b, 0xC2 | 0xCD | 0xD8..=0xDF | 0xE0..=0xE3 | 0xEA | 0xEF | 0xF0 | 0xF3)
}

/// Default_Ignorable_Code_Point (DerivedCoreProperties.txt) and the format characters
/// (`Cf`) that render as nothing.
fn is_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
        || c.general_category() == GeneralCategory::Format
}

/// The value of a decimal digit of any script. Unicode encodes every `Nd` digit in a
/// contiguous run of ten starting at its zero (a stability guarantee), and runs of
/// several scripts' digits lie back to back, so the value is the distance from the start
/// of the `Nd` stretch modulo ten.
fn digit_value(c: char) -> Option<u8> {
    if c.general_category() != GeneralCategory::DecimalNumber {
        return None;
    }
    let mut start = c as u32;
    while let Some(p) = start.checked_sub(1).and_then(char::from_u32) {
        if p.general_category() != GeneralCategory::DecimalNumber {
            break;
        }
        start -= 1;
    }
    Some(((c as u32 - start) % 10) as u8)
}

fn normal_form(c: char) -> Option<Norm> {
    if c.is_ascii() {
        return None;
    }
    if is_ignorable(c) {
        return Some(Norm::Drop);
    }
    if let Some(d) = digit_value(c) {
        return Some(Norm::Ascii(b'0' + d));
    }
    if matches!(
        c as u32,
        0x2010..=0x2015 | 0x2212 | 0xFE58 | 0xFE63 | 0xFF0D
    ) {
        return Some(Norm::Ascii(b'-'));
    }
    let mut one = None;
    let mut count = 0;
    unicode_normalization::char::decompose_compatible(c, |d| {
        count += 1;
        one = Some(d);
    });
    match (count, one) {
        (1, Some(d))
            if d.is_ascii_alphanumeric() || matches!(d, '@' | '.' | '+' | '-' | '_' | ' ') =>
        {
            Some(Norm::Ascii(d as u8))
        }
        _ => None,
    }
}

/// The next character at `i` (which starts one) and its length.
fn char_at(v: &[u8], i: usize) -> Option<(char, usize)> {
    let len = match v[i] {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(v.get(i..i + len)?).ok()?;
    s.chars().next().map(|c| (c, len))
}

/// Positions of characters to rewrite: (start, end, what).
fn changes(v: &[u8]) -> Vec<(usize, usize, Norm)> {
    let mut out = Vec::new();
    if v.is_ascii() {
        return out;
    }
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        if b < 0x80 || !interesting_lead(b) {
            i += 1;
            continue;
        }
        let Some((c, len)) = char_at(v, i) else {
            i += 1;
            continue;
        };
        let norm = if c == '\u{3002}' || c == '\u{FF61}' {
            // An ideographic full stop between ASCII letters or digits: a domain's dot.
            let before = i > 0 && v[i - 1].is_ascii_alphanumeric();
            let after = v.get(i + len).is_some_and(u8::is_ascii_alphanumeric);
            (before && after).then_some(Norm::Ascii(b'.'))
        } else {
            normal_form(c)
        };
        if let Some(n) = norm {
            out.push((i, i + len, n));
        }
        i += len;
    }
    out
}

/// The normalised views of the neighbourhoods in `v` that need it: (view, map to `v`).
/// Empty when nothing in `v` changes.
pub fn regions(v: &[u8]) -> Vec<(Vec<u8>, OffsetMap)> {
    let changes = changes(v);
    let mut out = Vec::new();
    let mut k = 0;
    while k < changes.len() {
        // Grow a region while the next change lies within reach.
        let start = changes[k].0.saturating_sub(CONTEXT);
        let mut last = k;
        while last + 1 < changes.len() && changes[last + 1].0 <= changes[last].1 + 2 * CONTEXT {
            last += 1;
        }
        let end = (changes[last].1 + CONTEXT).min(v.len());
        let mut vb = ViewBuilder::with_capacity(end - start);
        let mut pos = start;
        for &(s, e, n) in &changes[k..=last] {
            vb.copy(&v[pos..s], pos);
            if let Norm::Ascii(b) = n {
                vb.atomic(&[b], s, e - s);
            }
            pos = e;
        }
        vb.copy(&v[pos..end], pos);
        out.push((vb.out, vb.map));
        k = last + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        let r = regions(s.as_bytes());
        assert!(r.len() <= 1);
        r.into_iter()
            .next()
            .map(|(v, _)| String::from_utf8(v).unwrap())
            .unwrap_or_else(|| s.to_string())
    }

    #[test]
    fn folds_digits_letters_and_at() {
        assert_eq!(norm("卡号４１１１ １１１１"), "卡号4111 1111");
        assert_eq!(norm("٤١١١-١١١١"), "4111-1111");
        assert_eq!(norm("۴۱۱۱"), "4111"); // extended Arabic-Indic
        assert_eq!(norm("४१११"), "4111"); // Devanagari
        assert_eq!(norm("𝟒𝟏𝟏𝟏"), "4111"); // mathematical bold
        assert_eq!(
            norm("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
            "alice@example.com"
        );
        assert_eq!(norm("alice﹫example。com"), "alice@example.com");
        assert_eq!(norm("138−0013−8000"), "138-0013-8000");
        assert_eq!(norm("①②③"), "123");
    }

    #[test]
    fn drops_invisible_characters() {
        assert_eq!(
            norm("AKIA\u{200B}QYLP\u{00AD}MN5H\u{FEFF}FIQR\u{202E}7VUX\u{2060}"),
            "AKIAQYLPMN5HFIQR7VUX"
        );
        assert_eq!(norm("a\u{E0041}b"), "ab"); // tag characters
    }

    #[test]
    fn leaves_cjk_and_plain_text_alone() {
        assert!(regions("你好，世界：这是（一段）中文。".as_bytes()).is_empty());
        assert!(regions(b"plain ascii").is_empty());
        assert!(regions("café naïve".as_bytes()).is_empty());
    }

    #[test]
    fn maps_back_to_the_original_characters() {
        let s = "id: １２3\u{200B}4 end";
        let (view, map) = regions(s.as_bytes()).remove(0);
        let v = std::str::from_utf8(&view).unwrap();
        assert_eq!(v, "id: 1234 end");
        let at = v.find("1234").unwrap();
        let (a, b) = map.raw_span(at, at + 4);
        assert_eq!(&s[a..b], "１２3\u{200B}4");
    }

    #[test]
    fn regions_keep_context_and_merge() {
        let far = format!("x４{}y５", "-".repeat(1000));
        assert_eq!(regions(far.as_bytes()).len(), 2);
        let near = format!("x４{}y５", "-".repeat(50));
        assert_eq!(regions(near.as_bytes()).len(), 1);
    }
}
