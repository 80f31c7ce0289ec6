//! Checksum and shape validators that confirm a regex match is the real thing.
//!
//! Each validator sees the bytes of the finding (the `secret` group when the rule
//! has one) and answers yes or no. They are pure functions of the input and allocate
//! at most a few bytes, so they can run on every regex match.

/// A validator named in a rule file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    Luhn,
    PaymentCard,
    CnBankCard,
    CnResidentId,
    CnMobile,
    Iban,
    Hkid,
    Twid,
    GithubCrc32,
    UsSsn,
    PhoneIntl,
    Email,
    Jwt,
    /// A value assigned to a password/secret/token key that looks like a secret, not code.
    SecretValue,
    /// A national-format phone number (NANP, mainland China, trunk-prefix `0…`).
    PhoneNational,
    /// Shannon entropy of the value, in bits per byte, at least this much.
    Entropy(f64),
}

impl Validator {
    pub fn parse(s: &str) -> Result<Validator, String> {
        let s = s.trim();
        if let Some(arg) = s.strip_prefix("entropy(").and_then(|r| r.strip_suffix(')')) {
            let v: f64 = arg.trim().parse().map_err(|_| {
                format!("validator `{s}`: entropy needs a number, e.g. entropy(3.5)")
            })?;
            if !(0.0..=8.0).contains(&v) {
                return Err(format!("validator `{s}`: entropy must be between 0 and 8"));
            }
            return Ok(Validator::Entropy(v));
        }
        Ok(match s {
            "luhn" => Validator::Luhn,
            "payment_card" => Validator::PaymentCard,
            "cn_bank_card" => Validator::CnBankCard,
            "cn_resident_id" => Validator::CnResidentId,
            "cn_mobile" => Validator::CnMobile,
            "iban" => Validator::Iban,
            "hkid" => Validator::Hkid,
            "twid" => Validator::Twid,
            "github_crc32" => Validator::GithubCrc32,
            "us_ssn" => Validator::UsSsn,
            "phone_intl" => Validator::PhoneIntl,
            "email" => Validator::Email,
            "jwt" => Validator::Jwt,
            "secret_value" => Validator::SecretValue,
            "phone_national" => Validator::PhoneNational,
            other => {
                return Err(format!(
                    "unknown validator `{other}` (known: luhn, payment_card, cn_bank_card, \
                     cn_resident_id, cn_mobile, iban, hkid, twid, github_crc32, us_ssn, \
                     phone_intl, phone_national, email, jwt, secret_value, entropy(N))"
                ))
            }
        })
    }

    pub fn check(&self, v: &[u8]) -> bool {
        match *self {
            Validator::Luhn => luhn(&digits(v)),
            Validator::PaymentCard => payment_card(&digits(v)),
            Validator::CnBankCard => cn_bank_card(&digits(v)),
            Validator::CnResidentId => cn_resident_id(v),
            Validator::CnMobile => cn_mobile(&digits(v)),
            Validator::Iban => iban(v),
            Validator::Hkid => hkid(v),
            Validator::Twid => twid(v),
            Validator::GithubCrc32 => github_crc32(v),
            Validator::UsSsn => us_ssn(&digits(v)),
            Validator::PhoneIntl => phone_intl(v),
            Validator::Email => email(v),
            Validator::Jwt => jwt(v),
            Validator::SecretValue => secret_value(v),
            Validator::PhoneNational => phone_national(&digits(v)),
            Validator::Entropy(min) => entropy(v) >= min,
        }
    }
}

/// The ASCII digits of `v`, separators dropped.
fn digits(v: &[u8]) -> Vec<u8> {
    v.iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect()
}

/// Luhn mod-10 over digit values (not ASCII).
pub fn luhn(d: &[u8]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut x = x as u32;
        if i % 2 == 1 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    sum % 10 == 0
}

fn prefix_num(d: &[u8], n: usize) -> u32 {
    d.iter().take(n).fold(0u32, |acc, &x| acc * 10 + x as u32)
}

/// Payment card: Luhn, a length its issuer uses and a known issuer prefix (IIN).
pub fn payment_card(d: &[u8]) -> bool {
    let len = d.len();
    if !(13..=19).contains(&len) || !luhn(d) || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let p1 = prefix_num(d, 1);
    let p2 = prefix_num(d, 2);
    let p3 = prefix_num(d, 3);
    let p4 = prefix_num(d, 4);
    let p6 = prefix_num(d, 6);
    match p1 {
        // Visa
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55, 2221-2720; Mir 2200-2204
        5 if (51..=55).contains(&p2) => len == 16,
        2 if (2221..=2720).contains(&p4) || (2200..=2204).contains(&p4) => len == 16,
        // Amex 34, 37; Diners 300-305, 36, 38, 39; JCB 3528-3589
        3 if p2 == 34 || p2 == 37 => len == 15,
        3 if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 => {
            (14..=19).contains(&len)
        }
        3 if (3528..=3589).contains(&p4) => (16..=19).contains(&len),
        // Discover 6011, 644-649, 65, 622126-622925; UnionPay 62, 81; Maestro 50, 56-69
        6 if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 => (16..=19).contains(&len),
        6 if p2 == 62 || (622126..=622925).contains(&p6) => (16..=19).contains(&len),
        6 | 5 if p2 == 50 || (56..=69).contains(&p2) => (12..=19).contains(&len),
        8 if p2 == 81 => (16..=19).contains(&len),
        _ => false,
    }
}

/// Mainland bank card (UnionPay and co-branded debit cards): 16-19 digits, Luhn,
/// issuer prefix 62 (UnionPay) or a payment-network prefix.
pub fn cn_bank_card(d: &[u8]) -> bool {
    (16..=19).contains(&d.len()) && (payment_card(d) || (prefix_num(d, 2) == 62 && luhn(d)))
}

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

/// 18-character resident identity number, GB 11643-1999: region, real birth date,
/// sequence, ISO 7064 MOD 11-2 check character (`0-9` or `X`).
pub fn cn_resident_id(v: &[u8]) -> bool {
    // Grouped forms (`110105 19491231 002X`) are checked without their separators.
    let compact: Vec<u8>;
    let v = if v.len() > 18 {
        compact = v
            .iter()
            .copied()
            .filter(|b| !matches!(b, b' ' | b'-'))
            .collect();
        &compact[..]
    } else {
        v
    };
    if v.len() != 18 || !v[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = v[..17].iter().map(|b| (b - b'0') as u32).collect();
    if !CN_PROVINCES.contains(&((d[0] * 10 + d[1]) as u8)) {
        return false;
    }
    let year = d[6] * 1000 + d[7] * 100 + d[8] * 10 + d[9];
    let month = d[10] * 10 + d[11];
    let day = d[12] * 10 + d[13];
    if !(1900..=2100).contains(&year) || !is_real_date(year, month, day) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = d.iter().zip(W).map(|(a, w)| a * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    v[17].to_ascii_uppercase() == check
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
        && d != [1, 7, 1, 7, 9, 8, 6, 9, 1, 8, 4]
}

/// IBAN length per country (ISO 13616 registry).
fn iban_length(cc: &[u8]) -> Option<usize> {
    const T: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    T.iter().find(|(c, _)| &c[..] == cc).map(|&(_, n)| n)
}

/// IBAN: known country, that country's length, check digits by ISO 7064 mod 97-10.
pub fn iban(v: &[u8]) -> bool {
    let s: Vec<u8> = v
        .iter()
        .filter(|b| !matches!(b, b' ' | b'-'))
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if s.len() < 15 || !s.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    if iban_length(&s[..2]) != Some(s.len()) || !s[2].is_ascii_digit() || !s[3].is_ascii_digit() {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in s[4..].iter().chain(&s[..4]) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + (b - b'0') as u32) % 97;
        } else {
            rem = (rem * 100 + (b - b'A' + 10) as u32) % 97;
        }
    }
    rem == 1
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
    let check = (11 - sum % 11) % 11;
    let expect = match check {
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

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// GitHub classic/OAuth/app tokens (`ghp_` etc.): 30 random base62 characters followed
/// by the base62 CRC32 of those characters, zero-padded to six.
pub fn github_crc32(v: &[u8]) -> bool {
    let Some(us) = v.iter().position(|&b| b == b'_') else {
        return false;
    };
    let body = &v[us + 1..];
    if body.len() != 36 || !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (random, check) = body.split_at(30);
    base62_6(crc32fast::hash(random)) == check
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

/// National significant number lengths (min, max) by ITU-T E.164 country code.
fn phone_lengths(cc: u32) -> Option<(usize, usize)> {
    Some(match cc {
        1 => (10, 10),
        7 => (10, 10),
        20 => (9, 10),
        27 => (9, 9),
        30 => (10, 10),
        31 => (9, 9),
        32 => (8, 9),
        33 => (9, 9),
        34 => (9, 9),
        36 => (8, 9),
        39 => (6, 11),
        40 => (9, 9),
        41 => (9, 9),
        43 => (4, 13),
        44 => (9, 10),
        45 => (8, 8),
        46 => (7, 13),
        47 => (8, 8),
        48 => (9, 9),
        49 => (6, 13),
        51 => (8, 11),
        52 => (10, 10),
        54 => (10, 11),
        55 => (10, 11),
        56 => (8, 9),
        57 => (8, 10),
        60 => (7, 10),
        61 => (9, 9),
        62 => (8, 12),
        63 => (8, 10),
        64 => (8, 10),
        65 => (8, 8),
        66 => (8, 9),
        81 => (9, 10),
        82 => (8, 11),
        84 => (9, 10),
        86 => (10, 12),
        90 => (10, 10),
        91 => (10, 10),
        92 => (9, 10),
        351 => (9, 9),
        353 => (7, 9),
        358 => (5, 12),
        852 => (8, 8),
        853 => (8, 8),
        855 => (8, 9),
        880 => (10, 10),
        886 => (8, 9),
        966 => (9, 9),
        971 => (8, 9),
        972 => (8, 9),
        _ => return None,
    })
}

/// An international number `+CC …`: a known country code and a national number of a
/// length that country uses, at most 15 digits in all (E.164).
pub fn phone_intl(v: &[u8]) -> bool {
    let d = digits(v);
    if d.len() > 15 || d.len() < 8 {
        return false;
    }
    // Country codes are prefix-free: try 1, 2 and 3 digits.
    for cc_len in 1..=3 {
        let cc = prefix_num(&d, cc_len);
        if let Some((lo, hi)) = phone_lengths(cc) {
            let n = d.len() - cc_len;
            return (lo..=hi).contains(&n);
        }
    }
    false
}

/// A national-format number next to a phone context word: North American (NANP,
/// optionally with the `1` prefix; no N00/N11/toll-free area codes, no 555-01xx
/// fiction numbers), a mainland mobile, or a trunk-prefixed number `0…` of 10-12 digits
/// (mainland landlines `010-…`, `0755-…`, most European national forms).
/// Service numbers (`400`/`800` hotlines) are not personal and are rejected.
pub fn phone_national(d: &[u8]) -> bool {
    if cn_mobile(d) {
        return true;
    }
    if d.first() == Some(&0) {
        return (10..=12).contains(&d.len()) && d[1] != 0;
    }
    let d = if d.len() == 11 && d[0] == 1 {
        &d[1..]
    } else {
        d
    };
    if d.len() != 10 || d[0] < 2 || d[3] < 2 {
        return false;
    }
    let area = prefix_num(d, 3);
    let exch = prefix_num(&d[3..], 3);
    let line = prefix_num(&d[6..], 4);
    let toll_free = matches!(area, 800 | 833 | 844 | 855 | 866 | 877 | 888);
    area % 100 != 0
        && area % 100 != 11
        && !toll_free
        && exch % 100 != 11
        && !(exch == 555 && (100..=199).contains(&line))
}

/// Does `v` look like a secret someone assigned to a `password`/`secret`/`token` key,
/// rather than code (`getpass.getpass`, `self.password`, `os.environ`), a variable
/// reference (`$DB_PASS`), a type name or a plain word? Printable ASCII, 8-200 bytes, not
/// a dotted identifier path, at least three character classes (lower, upper, digit,
/// symbol other than `_ . -`), or two classes when at least 10 long and not a camelCase
/// word; and some randomness (entropy >= 2.5 bits per byte).
pub fn secret_value(v: &[u8]) -> bool {
    if !(8..=200).contains(&v.len()) || !v.iter().all(|b| (0x21..0x7f).contains(b)) {
        return false;
    }
    if matches!(
        v[0],
        b'$' | b'%' | b'{' | b'(' | b'[' | b'&' | b'*' | b'@' | b'/' | b'~'
    ) || v.starts_with(b"./")
        || v.starts_with(b"../")
        || memchr::memmem::find(v, b"://").is_some()
    {
        return false;
    }
    // A file name, not a secret: `key.pem`, `secrets.json`.
    const FILE_EXT: &[&[u8]] = &[
        b".pem", b".key", b".json", b".txt", b".yaml", b".yml", b".toml", b".env", b".crt",
        b".cfg", b".conf", b".ini", b".py", b".js", b".p12", b".pfx", b".jks", b".gpg",
    ];
    if FILE_EXT
        .iter()
        .any(|e| v.len() > e.len() && v[v.len() - e.len()..].eq_ignore_ascii_case(e))
    {
        return false;
    }
    let ident = |p: &[u8]| {
        !p.is_empty()
            && (p[0].is_ascii_alphabetic() || p[0] == b'_')
            && p.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    if v.contains(&b'.') && v.split(|&b| b == b'.').all(ident) {
        return false;
    }
    // Characters per class: lower, upper, digit, symbol (other than `_ . -`).
    let mut n = [0usize; 4];
    for &b in v {
        match b {
            b'a'..=b'z' => n[0] += 1,
            b'A'..=b'Z' => n[1] += 1,
            b'0'..=b'9' => n[2] += 1,
            b'_' | b'.' | b'-' => {}
            _ => n[3] += 1,
        }
    }
    let classes = n.iter().filter(|&&c| c > 0).count();
    // With only two classes, a lone character of one (`anonymous@`, `Config1`) is not
    // enough mixing.
    let two_mixed = classes == 2 && n.iter().all(|&c| c == 0 || c >= 2);
    // Letters only, lower-case runs of three or more on average and at most one of
    // length one: words joined in camel case (`PasswordField`, `CFStringRef`,
    // `ZeroizeOnDrop`), not random mixed case (`WqxMbTsQRvEk`).
    let camel_word = v.iter().all(u8::is_ascii_alphabetic) && {
        let runs = v.split(u8::is_ascii_uppercase).filter(|r| !r.is_empty());
        let (count, ones, total) = runs.fold((0, 0, 0), |(c, o, t), r| {
            (c + 1, o + usize::from(r.len() == 1), t + r.len())
        });
        count > 0 && ones <= 1 && total >= 3 * count
    };
    // A snake_case identifier (`_bindgen_ty_22`) needs all three letter/digit classes.
    let snake_ident = v.contains(&b'_')
        && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && n[..3].contains(&0);
    if snake_ident {
        return false;
    }
    let shaped = classes >= 3 || (two_mixed && v.len() >= 10 && !camel_word);
    shaped && entropy(v) >= 2.5
}

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

/// JWT: the first segment is base64url JSON with an `alg` member.
pub fn jwt(v: &[u8]) -> bool {
    use base64::Engine;
    let Some(head) = v.split(|&b| b == b'.').next() else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.strip_suffix(b"=").unwrap_or(head))
    else {
        return false;
    };
    decoded.windows(5).any(|w| w == b"\"alg\"")
}

/// Shannon entropy in bits per byte.
pub fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        counts[b as usize] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        digits(s.as_bytes())
    }

    #[test]
    fn luhn_published_examples() {
        // ISO/IEC 7812 worked example and well-known test card numbers.
        assert!(luhn(&d("79927398713")));
        assert!(!luhn(&d("79927398710")));
        assert!(payment_card(&d("4111 1111 1111 1111")));
        assert!(payment_card(&d("5555-5555-5555-4444")));
        assert!(payment_card(&d("378282246310005")));
        assert!(payment_card(&d("6011111111111117")));
        assert!(payment_card(&d("3530111333300000")));
        assert!(payment_card(&d("6212345678901265")));
        assert!(!payment_card(&d("4111 1111 1111 1112")));
        // Luhn-valid but no issuer starts with 9.
        assert!(!payment_card(&d("9111111111111111")));
        assert!(cn_bank_card(&d("6212345678901265")));
        assert!(!cn_bank_card(&d("6212345678901266")));
    }

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
    }

    #[test]
    fn iban_mod97() {
        // Examples from the ISO 13616 registry / ECBS.
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"NL91ABNA0417164300"));
        assert!(!iban(b"GB82WEST12345698765433"));
        // Right checksum shape but wrong length for the country.
        assert!(!iban(b"DE8937040044053201300"));
    }

    #[test]
    fn hkid_check_digit() {
        // Commonly cited valid examples.
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
    fn github_checksum() {
        // Build a token with the published scheme and check both directions.
        let random = b"abcdefghijABCDEFGHIJ0123456789";
        let mut tok = b"ghp_".to_vec();
        tok.extend_from_slice(random);
        tok.extend_from_slice(&base62_6(crc32fast::hash(random)));
        assert!(github_crc32(&tok));
        let last = tok.len() - 1;
        tok[last] = if tok[last] == b'a' { b'b' } else { b'a' };
        assert!(!github_crc32(&tok));
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

    #[test]
    fn phones() {
        assert!(cn_mobile(&d("138 0013 8000")));
        assert!(cn_mobile(&d("+86 138-0013-8000")));
        assert!(!cn_mobile(&d("12800138000")));
        assert!(!cn_mobile(&d("15000000000")));
        assert!(!cn_mobile(&d("17179869184")));
        assert!(phone_intl(b"+44 20 7946 0958"));
        assert!(phone_intl(b"+1 415 555 2671"));
        assert!(phone_intl(b"+86 138 0013 8000"));
        assert!(!phone_intl(b"+1 415 555 267"));
        assert!(!phone_intl(b"+999 1234 5678"));
    }

    #[test]
    fn national_phones() {
        assert!(phone_national(&d("(415) 555-2671")));
        assert!(phone_national(&d("1-415-555-2671")));
        assert!(phone_national(&d("010-6552 9988")));
        assert!(phone_national(&d("0755-8613 0000")));
        assert!(phone_national(&d("139 1234 5678")));
        assert!(!phone_national(&d("400-617-3052")));
        assert!(!phone_national(&d("800-555-0199")));
        assert!(!phone_national(&d("212-555-0123")));
        assert!(!phone_national(&d("123-456-7890")));
    }

    #[test]
    fn secret_values() {
        assert!(secret_value(b"Tq7#vLp2xW9m"));
        assert!(secret_value(b"hunter2hunter42"));
        assert!(secret_value(b"WqxLMbTsQRvE"));
        assert!(!secret_value(b"getpass.getpass"));
        assert!(!secret_value(b"self._password"));
        assert!(!secret_value(b"DB_PASSWORD"));
        assert!(!secret_value(b"PasswordField"));
        assert!(!secret_value(b"password"));
        assert!(!secret_value(b"$DB_PASS_1"));
        assert!(!secret_value(b"aaaaaaaaA1"));
        assert!(!secret_value(b"/etc/app/secrets/key.pem"));
        assert!(!secret_value(b"https://example.org/reset"));
        assert!(!secret_value(b"config/Secrets.json"));
        assert!(!secret_value(b"anonymous@"));
        assert!(!secret_value(b"CFStringRef"));
        assert!(!secret_value(b"ZeroizeOnDrop"));
        assert!(!secret_value(b"_bindgen_ty_22"));
        assert!(secret_value(b"WqxMbTsQRvEk"));
    }

    #[test]
    fn emails() {
        assert!(email(b"alice@example.com"));
        assert!(email(b"a.b+tag@mail.example.co.uk"));
        assert!(!email(b"icon@2x.png"));
        assert!(!email(b"user@localhost"));
        assert!(!email(b".a@example.com"));
    }

    #[test]
    fn jwt_header() {
        assert!(jwt(
            b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.sig"
        ));
        assert!(!jwt(b"eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.sig"));
    }

    #[test]
    fn entropy_measures_randomness() {
        assert!(entropy(b"aaaaaaaaaaaaaaaa") < 0.1);
        assert!(entropy(b"Tq7vLp2xW9mK4nR8") > 3.0);
        assert!(Validator::parse("entropy(3.5)").is_ok());
        assert!(Validator::parse("entropy(x)").is_err());
        assert!(Validator::parse("nope").is_err());
    }
}
