//! Identity and registration numbers with a published structure: mainland resident
//! identity numbers (GB 11643-1999 and the older 15-digit form), unified social credit
//! codes (GB 32100-2015 with the GB 11714-1997 organisation code inside), Hong Kong,
//! Taiwan and Macau identity numbers, and vehicle plates (GA 36-2018).

use super::Verdict;

/// Province-level codes (first two digits) of GB/T 2260.
const CN_PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
];

pub fn is_real_date(y: u32, m: u32, d: u32) -> bool {
    if !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if leap => 29,
        _ => 28,
    };
    d <= days
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |a, &b| a * 10 + (b - b'0') as u32)
}

/// The value without the separators a writer may put between digit groups.
fn compact(v: &[u8]) -> Vec<u8> {
    v.iter()
        .copied()
        .filter(|b| !matches!(b, b' ' | b'-' | b'.'))
        .collect()
}

/// 18-character resident identity number, GB 11643-1999: region, real birth date,
/// sequence, ISO 7064 MOD 11-2 check character (`0-9` or `X`).
pub fn cn_resident_id(v: &[u8]) -> bool {
    let v = compact(v);
    if v.len() != 18 || !v[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if !CN_PROVINCES.contains(&(num(&v[..2]) as u8)) {
        return false;
    }
    let year = num(&v[6..10]);
    if !(1900..=2100).contains(&year) || !is_real_date(year, num(&v[10..12]), num(&v[12..14])) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = v[..17]
        .iter()
        .zip(W)
        .map(|(a, w)| (a - b'0') as u32 * w)
        .sum();
    v[17].to_ascii_uppercase() == b"10X98765432"[(sum % 11) as usize]
}

/// The first-generation 15-digit resident number (issued until 2004): region, `YYMMDD`
/// birth date in the 1900s, three-digit sequence, no check digit. Having no checksum it
/// is only reported next to an ID word.
pub fn cn_resident_id_15(v: &[u8]) -> Verdict {
    let v = compact(v);
    if v.len() != 15 || !v.iter().all(u8::is_ascii_digit) {
        return Verdict::Reject;
    }
    let ok = CN_PROVINCES.contains(&(num(&v[..2]) as u8))
        && is_real_date(1900 + num(&v[6..8]), num(&v[8..10]), num(&v[10..12]));
    if ok {
        Verdict::NeedsContext
    } else {
        Verdict::Reject
    }
}

/// The 31 characters GB 32100-2015 uses (digits and capitals without I, O, S, V, Z).
const USCC_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Unified social credit code (统一社会信用代码), GB 32100-2015: registration authority
/// (`1-9`, `A`, `N`, `Y`), organisation type, six-digit region code (GB/T 2260), the
/// nine-character organisation code of GB 11714-1997 (its own mod-11 check), and a
/// mod-31 check character over the first seventeen.
pub fn cn_uscc(v: &[u8]) -> bool {
    if v.len() != 18 {
        return false;
    }
    let v: Vec<u8> = v.iter().map(u8::to_ascii_uppercase).collect();
    let mut vals = [0u32; 18];
    for (i, b) in v.iter().enumerate() {
        match USCC_CHARS.iter().position(|c| c == b) {
            Some(p) => vals[i] = p as u32,
            None => return false,
        }
    }
    if !matches!(v[0], b'1'..=b'9' | b'A' | b'N' | b'Y') || !v[1].is_ascii_digit() {
        return false;
    }
    if !v[2..8].iter().all(u8::is_ascii_digit) || !CN_PROVINCES.contains(&(num(&v[2..4]) as u8)) {
        return false;
    }
    const W: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let sum: u32 = vals[..17].iter().zip(W).map(|(a, w)| a * w).sum();
    let check = (31 - sum % 31) % 31;
    check == vals[17] && org_code_check(&v[8..17])
}

/// GB 11714-1997 organisation code: eight characters (digits and capitals, valued 0-35)
/// and a check character, `11 - Σ c·w mod 11` (10 → `X`, 11 → `0`).
fn org_code_check(v: &[u8]) -> bool {
    const W: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let mut sum = 0;
    for (b, w) in v[..8].iter().zip(W) {
        let val = match b {
            b'0'..=b'9' => (b - b'0') as u32,
            b'A'..=b'Z' => (b - b'A') as u32 + 10,
            _ => return false,
        };
        sum += val * w;
    }
    let c = 11 - sum % 11;
    let expect = match c {
        10 => b'X',
        11 => b'0',
        c => b'0' + c as u8,
    };
    v[8] == expect
}

/// Hong Kong identity card: one or two letters, six digits, check digit (0-9 or A),
/// the check often written in parentheses: `A123456(3)`.
pub fn hkid(v: &[u8]) -> bool {
    let s: Vec<u8> = v
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let letters = s.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if !(1..=2).contains(&letters) || s.len() != letters + 7 {
        return false;
    }
    if !s[letters..letters + 6].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut vals: Vec<u32> = Vec::with_capacity(8);
    if letters == 1 {
        vals.push(36); // a single-letter prefix is weighted as a leading space
    }
    for &b in &s[..letters] {
        vals.push((b - b'A') as u32 + 10);
    }
    for &b in &s[letters..letters + 6] {
        vals.push((b - b'0') as u32);
    }
    let sum: u32 = vals.iter().zip((2..=9).rev()).map(|(v, w)| v * w).sum();
    let expect = match (11 - sum % 11) % 11 {
        10 => b'A',
        c => b'0' + c as u8,
    };
    s[letters + 6] == expect
}

/// Taiwan national ID: letter, `1`/`2` (or `8`/`9` for residents), eight digits, check.
pub fn twid(v: &[u8]) -> bool {
    if v.len() != 10 || !v[0].is_ascii_alphabetic() || !v[1..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if !matches!(v[1], b'1' | b'2' | b'8' | b'9') {
        return false;
    }
    const CODES: &[u8; 26] = &[
        10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21, 22, 35, 23, 24, 25, 26, 27, 28, 29, 32,
        30, 31, 33,
    ];
    let code = CODES[(v[0].to_ascii_uppercase() - b'A') as usize] as u32;
    let mut sum = code / 10 + (code % 10) * 9;
    for (i, &b) in v[1..9].iter().enumerate() {
        sum += (b - b'0') as u32 * (8 - i as u32);
    }
    sum += (v[9] - b'0') as u32;
    sum % 10 == 0
}

/// Macau resident identity card (BIR): `1`, `5` or `7`, six digits, a check digit in
/// parentheses (`1234567(8)`). The check algorithm is not published, so the shape is
/// all there is: the parenthesised form stands on its own, the bare one needs an ID word.
pub fn mo_id(v: &[u8]) -> Verdict {
    let d: Vec<u8> = v.iter().copied().filter(u8::is_ascii_digit).collect();
    if d.len() != 8 || !matches!(d[0], b'1' | b'5' | b'7') || d[1..7].iter().all(|&x| x == d[1]) {
        return Verdict::Reject;
    }
    if v.contains(&b'(') {
        Verdict::Accept
    } else {
        Verdict::NeedsContext
    }
}

/// Provincial abbreviations that open a mainland plate (GA 36-2018 §5).
const PLATE_PROVINCES: &[&str] = &[
    "京", "津", "沪", "渝", "冀", "豫", "云", "辽", "黑", "湘", "皖", "鲁", "新", "苏", "浙", "赣",
    "鄂", "桂", "甘", "晋", "蒙", "陕", "吉", "闽", "贵", "粤", "青", "藏", "川", "宁", "琼",
];

/// Mainland vehicle plate, GA 36-2018: a provincial abbreviation, the issuing authority's
/// letter (not `I`/`O`), an optional separator, then either five characters (digits and
/// letters without `I`/`O`, at most two letters, some classes ending in 学/警/挂/港/澳/领/试/超)
/// or, for new-energy vehicles, six: `D`/`F` (or `A`-`K` for the newer allocation) then
/// five digits for small cars, five digits then `D`/`F` for large ones.
pub fn cn_plate(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let mut chars = s.chars();
    let Some(p) = chars.next() else {
        return false;
    };
    if !PLATE_PROVINCES.iter().any(|x| x.starts_with(p)) {
        return false;
    }
    let Some(auth) = chars.next() else {
        return false;
    };
    if !auth.is_ascii_uppercase() || matches!(auth, 'I' | 'O') {
        return false;
    }
    let rest: Vec<char> = chars
        .filter(|c| !matches!(c, ' ' | '·' | '•' | '-' | '.' | '・'))
        .collect();
    let plain =
        |c: &char| c.is_ascii_digit() || (c.is_ascii_uppercase() && !matches!(c, 'I' | 'O'));
    match rest.len() {
        5 => {
            let (body, last) = rest.split_at(4);
            let suffix = "学警挂港澳领试超".contains(last[0]);
            if !body.iter().all(plain) || !(plain(&last[0]) || suffix) {
                return false;
            }
            let letters = rest.iter().filter(|c| c.is_ascii_uppercase()).count();
            letters <= 2 && rest.iter().filter(|c| c.is_ascii_digit()).count() >= 3
        }
        6 => {
            let small = matches!(rest[0], 'A'..='H' | 'J' | 'K')
                && plain(&rest[1])
                && rest[2..].iter().all(char::is_ascii_digit);
            let large = rest[..5].iter().all(char::is_ascii_digit) && matches!(rest[5], 'D' | 'F');
            small || large
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_gb11643() {
        // The example of GB 11643-1999 itself.
        assert!(cn_resident_id(b"11010519491231002X"));
        assert!(cn_resident_id(b"11010519491231002x"));
        assert!(cn_resident_id(b"110105 19491231 002X"));
        assert!(cn_resident_id(b"110105-19491231-002X"));
        assert!(!cn_resident_id(b"110105194912310021"));
        // Calendar: 30 February does not exist.
        assert!(!cn_resident_id(b"110105194902300027"));
        // Region 99 does not exist.
        assert!(!cn_resident_id(b"990105194912310025"));
        assert_eq!(cn_resident_id_15(b"110105491231002"), Verdict::NeedsContext);
        assert_eq!(cn_resident_id_15(b"110105491331002"), Verdict::Reject);
    }

    #[test]
    fn uscc_gb32100() {
        // Published examples of unified social credit codes.
        assert!(cn_uscc(b"91350100M000100Y43"));
        assert!(!cn_uscc(b"91350100M000100Y44"));
        assert!(!cn_uscc(b"91350100M000100Y4"));
    }

    #[test]
    fn hkid_check_digit() {
        assert!(hkid(b"A123456(3)"));
        assert!(!hkid(b"C668668(E)"));
        assert!(hkid(b"G123456(A)"));
        assert!(!hkid(b"A123456(4)"));
    }

    #[test]
    fn twid_check_digit() {
        assert!(twid(b"A123456789"));
        assert!(!twid(b"A123456788"));
        assert!(!twid(b"A323456789"));
    }

    #[test]
    fn macau_and_plates() {
        assert_eq!(mo_id(b"1234567(8)"), Verdict::Accept);
        assert_eq!(mo_id(b"12345678"), Verdict::NeedsContext);
        assert_eq!(mo_id(b"2234567(8)"), Verdict::Reject);
        for p in [
            "京A12345",
            "苏P 92N1S",
            "青D21814",
            "赣X5P464",
            "粤B·D12345",
            "沪A12345D",
            "京A1234学",
        ] {
            assert!(cn_plate(p.as_bytes()), "{p}");
        }
        for p in ["京I12345", "京AABCDE", "X京12345", "京A1234", "京AD1234X"] {
            assert!(!cn_plate(p.as_bytes()), "{p}");
        }
    }
}
