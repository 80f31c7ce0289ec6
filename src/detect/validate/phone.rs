//! Phone numbers. Mainland mobiles and landlines have their own rules (the most common
//! personal data in the traffic we guard); every other country is checked against
//! libphonenumber's metadata (the `phonenumber` crate) instead of hand-written tables:
//! number lengths and number ranges per country, kept up to date upstream.

use super::{prefix_num, Verdict};
use phonenumber::country::Id;

/// Load libphonenumber's metadata and compile the patterns of the regions we try, so the
/// first number checked does not pay for it.
pub fn warm_up_phone_metadata() {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        for (region, sample) in [
            (Id::US, "(415) 555-2671"),
            (Id::GB, "020 7946 0958"),
            (Id::CN, "010 6552 9988"),
        ] {
            let _ = phonenumber::parse(Some(region), sample).map(|n| n.is_valid());
        }
        for &region in NATIONAL_REGIONS {
            let _ = phonenumber::parse(Some(region), "0301234567").map(|n| n.is_valid());
        }
    });
}

/// Mainland mobile number: 11 digits `1[3-9]…`, optional `86` country code.
pub fn cn_mobile(d: &[u8]) -> bool {
    let d = if d.len() == 13 && d[0] == 8 && d[1] == 6 {
        &d[2..]
    } else {
        d
    };
    d.len() == 11
        && d[0] == 1
        && (3..=9).contains(&d[1])
        // Round numbers and 2^34 are constants in code, not subscribers.
        && !d[3..].iter().all(|&x| x == d[3])
        // 2^34 and 2^34 - 1, which look like mobile numbers.
        && d != [1, 7, 1, 7, 9, 8, 6, 9, 1, 8, 4]
        && d != [1, 7, 1, 7, 9, 8, 6, 9, 1, 8, 3]
}

/// Mainland fixed-line number with its area code and trunk `0` (`010-6552 9988`,
/// `0755-86130042`, `0991-398 9510`), valid in libphonenumber's CN fixed-line ranges.
pub fn cn_landline(v: &[u8]) -> bool {
    let d: Vec<u8> = v.iter().copied().filter(u8::is_ascii_digit).collect();
    if !(10..=12).contains(&d.len()) || d[0] != b'0' || d[1] == b'0' {
        return false;
    }
    // Area codes: 010 and 02x are two digits after the trunk 0, the rest three. Local
    // numbers start with 2-8 (0 and 1 open other area and service codes, 9 special ones).
    let area = if matches!(d[1], b'1' | b'2') { 2 } else { 3 };
    let local = &d[1 + area..];
    if !(7..=8).contains(&local.len()) || !(b'2'..=b'8').contains(&local[0]) {
        return false;
    }
    let Ok(s) = std::str::from_utf8(&d) else {
        return false;
    };
    matches!(
        phonenumber::parse(Some(Id::CN), s)
            .map(|n| n.number_type(&phonenumber::metadata::DATABASE)),
        Ok(phonenumber::Type::FixedLine | phonenumber::Type::FixedLineOrMobile)
    )
}

/// Regions a number written without a country code is tried in: the national formats
/// most often seen in English-language text (North America, the UK and Ireland, the
/// large EU countries, India, Australia, Brazil, Israel).
const NATIONAL_REGIONS: &[Id] = &[
    Id::US,
    Id::CA,
    Id::GB,
    Id::IE,
    Id::DE,
    Id::FR,
    Id::IT,
    Id::ES,
    Id::NL,
    Id::IN,
    Id::AU,
    Id::BR,
    Id::IL,
];

/// A phone number as written in text: international (`+44 (0)20 7946 0958`,
/// `0049 30 901820`, `001-415-555-2671x123`) or national with a trunk prefix or area
/// code in parentheses (`(415) 555-2671`, `020 7946 0958`, `030/901820`). An extension
/// (`x123`, `ext. 12`, `#45`) is allowed and ignored. International numbers must be
/// valid for their country; national ones valid in one of [`NATIONAL_REGIONS`]. A bare
/// run of digits (no `+`, no grouping) could be anything, so it needs a phone word.
pub fn phone(v: &[u8]) -> Verdict {
    let Some(shape) = PhoneShape::read(v) else {
        return Verdict::Reject;
    };
    let head = shape.head;
    if shape.international {
        let rest = head.trim_start_matches('+');
        let rest = rest
            .strip_prefix("011")
            .or_else(|| rest.strip_prefix("00"))
            .filter(|_| !head.starts_with('+'))
            .unwrap_or(rest);
        // `+44 (0)20 …`: the national trunk prefix in parentheses is not dialled.
        let e164 = format!("+{}", rest.replace("(0)", ""));
        return match phonenumber::parse(None, &e164) {
            Ok(n) if n.is_valid() => Verdict::Accept,
            _ => Verdict::Reject,
        };
    }
    if !(shape.nanp || shape.trunk) {
        return no_trunk_national(head, shape.formatted);
    }
    // A North American layout is only tried as North American, a trunk-prefixed one
    // only in the other regions: many numbering plans accept almost any digits.
    let regions = NATIONAL_REGIONS
        .iter()
        .filter(|&&r| matches!(r, Id::US | Id::CA) == shape.nanp);
    for &region in regions {
        if let Ok(n) = phonenumber::parse(Some(region), head) {
            if n.is_valid() && n.code().value() == region_code(region) {
                return if shape.formatted {
                    Verdict::Accept
                } else {
                    Verdict::NeedsContext
                };
            }
        }
    }
    Verdict::Reject
}

/// Whether [`phone`] could accept `v` without a phone word nearby: only an international
/// number or a formatted national one with a trunk prefix or the North American layout.
/// Read from the layout alone, without the metadata: a scanner that finds no phone word
/// near a bare run of digits skips the (costly) metadata lookup that could at best say
/// "needs context".
pub fn phone_may_stand_alone(v: &[u8]) -> bool {
    PhoneShape::read(v).is_some_and(|s| s.international || (s.formatted && (s.nanp || s.trunk)))
}

/// What the layout of a candidate says before any metadata is read.
struct PhoneShape<'a> {
    /// The number without an extension, trimmed.
    head: &'a str,
    /// Opens with `+`, `00` or `011`.
    international: bool,
    /// Written with separators or parentheses, not as a bare run of digits.
    formatted: bool,
    /// The North American 3-3-4 layout.
    nanp: bool,
    /// Opens with a trunk prefix `0` or an area code in parentheses.
    trunk: bool,
}

impl<'a> PhoneShape<'a> {
    /// `None` where the layout alone rules a phone number out (digit count, one repeated
    /// digit, a date, groups no one writes a phone number in).
    fn read(v: &'a [u8]) -> Option<PhoneShape<'a>> {
        let s = std::str::from_utf8(v).ok()?;
        let head = strip_extension(s).trim();
        let digits: Vec<u8> = head.bytes().filter(u8::is_ascii_digit).collect();
        if !(7..=15).contains(&digits.len())
            || digits.iter().all(|&x| x == digits[0])
            || looks_like_date(head)
        {
            return None;
        }
        let international = head.starts_with('+')
            || (head.starts_with("00") && !head.starts_with("000"))
            || head.starts_with("011");
        let formatted = head.bytes().any(|b| !b.is_ascii_digit());
        // Written nationally, a number opens with its trunk prefix `0` or an area code in
        // parentheses, or has the North American 3-3-4 layout: digit groups of any other
        // layout (addresses, versions, byte dumps) are not read as phone numbers.
        if !international && !plausible_grouping(head) {
            return None;
        }
        let first_group = head
            .trim_start_matches('(')
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        Some(PhoneShape {
            head,
            international,
            formatted,
            nanp: !international && nanp_layout(head),
            trunk: (head.starts_with('0') || head.starts_with('(')) && first_group >= 2,
        })
    }
}

/// Regions whose national numbers carry no trunk prefix (`912 345 678` in Spain,
/// `22 123 45 67` in Poland, `06 1234 5678` in Italy, where the 0 is part of the
/// number), so nothing in the digits says "phone": tried only for grouped numbers, and
/// only next to a phone word.
const NO_TRUNK_REGIONS: &[Id] = &[
    Id::ES,
    Id::PT,
    Id::PL,
    Id::IT,
    Id::DK,
    Id::NO,
    Id::GR,
    Id::CZ,
    Id::SK,
    Id::LU,
    Id::SG,
    Id::HK,
];

fn no_trunk_national(head: &str, formatted: bool) -> Verdict {
    // Three or more groups of two or more digits, one separator throughout, a space or a
    // dash: `0.9999999` is a decimal, `192.168.100.200` an address, `252.227-7013` a
    // clause.
    let groups = digit_group_lengths(head);
    let mut seps = head.bytes().filter(|b| !b.is_ascii_digit());
    let one_sep = match seps.next() {
        Some(first @ (b' ' | b'-')) => seps.all(|b| b == first),
        _ => false,
    };
    if !formatted || !one_sep || groups.len() < 3 || groups.iter().any(|&g| g < 2) {
        return Verdict::Reject;
    }
    let valid = NO_TRUNK_REGIONS.iter().any(|&region| {
        phonenumber::parse(Some(region), head)
            .is_ok_and(|n| n.is_valid() && n.country().id() == Some(region))
    });
    if valid {
        Verdict::NeedsContext
    } else {
        Verdict::Reject
    }
}

fn region_code(id: Id) -> u16 {
    match id {
        Id::US | Id::CA => 1,
        Id::GB => 44,
        Id::IE => 353,
        Id::DE => 49,
        Id::FR => 33,
        Id::IT => 39,
        Id::ES => 34,
        Id::NL => 31,
        Id::IN => 91,
        Id::AU => 61,
        Id::BR => 55,
        Id::IL => 972,
        _ => 0,
    }
}

fn digit_group_lengths(s: &str) -> Vec<usize> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect()
}

/// `415-555-2671`, `415.555.2671`, `415 555 2671`, `(415) 555-2671`, `1-415-555-2671`,
/// `4155552671`: the 3-3-4 layout, its separators the same where no parenthesis is.
fn nanp_layout(s: &str) -> bool {
    let groups = digit_group_lengths(s);
    let layout = matches!(groups.as_slice(), [10] | [3, 3, 4] | [1, 3, 3, 4] | [11])
        && (groups.len() != 1 || groups[0] == 10 || s.starts_with('1'));
    let seps: Vec<&str> = s
        .trim_start_matches(['(', '+'])
        .split(|c: char| c.is_ascii_digit())
        .filter(|x| !x.is_empty())
        .collect();
    layout && (s.contains('(') || seps.windows(2).all(|w| w[0] == w[1]))
}

/// Digit groups the way people write phone numbers: single separators (not the column
/// spacing of a table), not a ZIP+4 code (`02110-1301`), and not a run of two-digit
/// groups other than the French-style five pairs (`06 12 34 56 78`; byte dumps are
/// `30 0a 02 03 01 00`).
fn plausible_grouping(s: &str) -> bool {
    // Separators are single characters once parentheses are set aside (`(0)20 7946`,
    // `(415) 555-2671`); `040---2023` or column spacing are something else.
    let bare: String = s.chars().filter(|c| !matches!(c, '(' | ')')).collect();
    let seps_ok = bare
        .split(|c: char| c.is_ascii_digit())
        .filter(|x| !x.is_empty())
        .enumerate()
        .all(|(i, x)| x.len() == 1 || (i == 0 && x == "+"));
    if !seps_ok {
        return false;
    }
    let groups = digit_group_lengths(s);
    // A number does not end in a lone digit (`01234567.0` is a file name).
    if groups.len() > 1 && groups.last() == Some(&1) {
        return false;
    }
    if groups == [5, 4] && s.contains('-') {
        return false;
    }
    let pairs = groups.len() > 2 && groups.iter().all(|&g| g == 2);
    !(pairs && groups.len() != 5)
}

/// The number without a trailing extension (`x123`, `ext. 123`, `extension 12`, `#12`).
fn strip_extension(s: &str) -> &str {
    let lower = s.to_ascii_lowercase();
    let cut = ["ext", "x", "#"]
        .iter()
        .filter_map(|m| {
            let at = lower.find(m)?;
            // Only after the number has started.
            lower[..at]
                .bytes()
                .any(|b| b.is_ascii_digit())
                .then_some(at)
        })
        .min();
    match cut {
        Some(at) => &s[..at],
        None => s,
    }
}

/// `2024-01-15`, `15.01.2024`, `01/15/2024`, `2024.01.15 10`: dates, not numbers.
fn looks_like_date(s: &str) -> bool {
    let groups: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let ymd = |y: &str, m: &str, d: &str| {
        y.len() == 4
            && (y.starts_with("19") || y.starts_with("20"))
            && m.len() <= 2
            && d.len() <= 2
            && (1..=12).contains(&m.parse::<u32>().unwrap_or(0))
            && (1..=31).contains(&d.parse::<u32>().unwrap_or(0))
    };
    groups
        .windows(3)
        .any(|w| ymd(w[0], w[1], w[2]) || ymd(w[2], w[1], w[0]) || ymd(w[2], w[0], w[1]))
}

/// US Social Security number ranges (SSA): area 001-899 except 666, group 01-99,
/// serial 0001-9999.
pub fn us_ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = prefix_num(d, 3);
    let group = prefix_num(&d[3..], 2);
    let serial = prefix_num(&d[5..], 4);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
        // advertising and documentation numbers the SSA voided
        && !(area == 987 || (area == 78 && group == 5 && serial == 1120))
}

#[cfg(test)]
mod tests {
    use super::super::digit_groups;
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        digit_groups(s.as_bytes()).0
    }

    #[test]
    fn mainland() {
        assert!(cn_mobile(&d("138 0013 8000")));
        assert!(cn_mobile(&d("+86 138-0013-8000")));
        assert!(!cn_mobile(&d("12800138000")));
        assert!(!cn_mobile(&d("15000000000")));
        assert!(!cn_mobile(&d("17179869184")));
        assert!(cn_landline(b"010-65529988"));
        assert!(cn_landline(b"0755-8613 0042"));
        assert!(cn_landline(b"0991-398 9510"));
        assert!(!cn_landline(b"0755-1613 0042"));
    }

    #[test]
    fn international_and_national() {
        for ok in [
            "+44 20 7946 0958",
            "+44 (0)20 7946 0958",
            "+1 (415) 555-2671",
            "+1-415-555-2671x1234",
            "001-415-555-2671",
            "+49 30 901820",
            "+86 138 0013 8000",
            "(415) 555-2671",
            "415.555.2671",
            "415-555-2671 ext. 12",
            "020 7946 0958",
            "030 901820",
        ] {
            assert_eq!(phone(ok.as_bytes()), Verdict::Accept, "{ok}");
        }
        assert_eq!(phone(b"4155552671"), Verdict::NeedsContext);
        // No trunk prefix: a phone word must be near.
        for national in ["912 345 678", "22 123 45 67", "21 234 5678"] {
            assert_eq!(
                phone(national.as_bytes()),
                Verdict::NeedsContext,
                "{national}"
            );
        }
        for bad in [
            "+1 415 555 267",
            "+999 1234 5678",
            "2024-01-15 10",
            "1111111111",
            "123",
            "400-666-7638",
            "0.9999999",
            "0-999999",
            "192.168.100.200",
            "02110-1301",
            "252.227-7013",
            "01 02 01 01",
            "01  012 0123",
            "040---2023-03-18",
            "01234567.0",
        ] {
            assert_eq!(phone(bad.as_bytes()), Verdict::Reject, "{bad}");
        }
    }

    #[test]
    fn ssn_ranges() {
        assert!(us_ssn(&d("123-45-6789")));
        assert!(!us_ssn(&d("000-12-3456")));
        assert!(!us_ssn(&d("666-12-3456")));
        assert!(!us_ssn(&d("912-12-3456")));
        assert!(!us_ssn(&d("123-00-3456")));
        assert!(!us_ssn(&d("123-45-0000")));
        assert!(!us_ssn(&d("078-05-1120")));
    }
}
