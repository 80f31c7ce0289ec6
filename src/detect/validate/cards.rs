//! Payment cards: Luhn (ISO/IEC 7812-1 Annex B), the issuer identification number ranges
//! and lengths each network publishes, and how a number may be grouped when written.

use super::{prefix_num, Verdict};

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

/// Lengths as a bit set: bit `n` set when `n` digits are issued.
const fn lens(list: &[u8]) -> u32 {
    let mut m = 0u32;
    let mut i = 0;
    while i < list.len() {
        m |= 1 << list[i];
        i += 1;
    }
    m
}
const L16_19: u32 = lens(&[16, 17, 18, 19]);
const L12_19: u32 = lens(&[12, 13, 14, 15, 16, 17, 18, 19]);

/// One issuer range: IINs `lo..=hi` over the first `digits` digits, the lengths issued,
/// and whether the range is common enough to report without a card word nearby.
struct Iin {
    digits: usize,
    lo: u32,
    hi: u32,
    lengths: u32,
    common: bool,
}

const fn iin(digits: usize, lo: u32, hi: u32, lengths: u32, common: bool) -> Iin {
    Iin {
        digits,
        lo,
        hi,
        lengths,
        common,
    }
}

/// Issuer ranges from the networks' published IIN tables (as collected in ISO/IEC 7812
/// registrations and the networks' own documentation). Uncommon networks, and ranges
/// whose first digit is shared with everyday numbers, need a card word (`common: false`).
const IINS: &[Iin] = &[
    // Visa 4 (13, 16, 19); Visa Electron within it.
    iin(1, 4, 4, lens(&[13, 16, 19]), true),
    // Mastercard 51-55 and 2221-2720.
    iin(2, 51, 55, lens(&[16]), true),
    iin(4, 2221, 2720, lens(&[16]), true),
    // American Express 34, 37.
    iin(2, 34, 34, lens(&[15]), true),
    iin(2, 37, 37, lens(&[15]), true),
    // Diners Club International 36 (14-19), 300-305, 3095, 38, 39 (16-19; 14 legacy).
    iin(2, 36, 36, lens(&[14, 15, 16, 17, 18, 19]), true),
    iin(3, 300, 305, lens(&[14, 16, 17, 18, 19]), true),
    iin(4, 3095, 3095, lens(&[14, 16, 17, 18, 19]), true),
    iin(2, 38, 39, lens(&[14, 16, 17, 18, 19]), true),
    // JCB 3528-3589 (16-19); legacy 15-digit JCB 1800, 2131.
    iin(4, 3528, 3589, L16_19, true),
    iin(4, 1800, 1800, lens(&[15]), true),
    iin(4, 2131, 2131, lens(&[15]), true),
    // Discover 6011, 644-649, 65; 622126-622925 (co-branded UnionPay).
    iin(4, 6011, 6011, L16_19, true),
    iin(3, 644, 649, L16_19, true),
    iin(2, 65, 65, L16_19, true),
    // UnionPay 62 (16-19); China T-Union 31 (19).
    iin(2, 62, 62, L16_19, true),
    iin(2, 31, 31, lens(&[19]), false),
    // Maestro 50, 56-69 (12-19), incl. UK 6759, 676770, 676774.
    iin(2, 50, 50, L12_19, true),
    iin(2, 56, 69, L12_19, true),
    // Mir 2200-2204 (16-19); BORICA 2205.
    iin(4, 2200, 2205, L16_19, true),
    // RuPay 60, 65, 81, 82, 508, 353, 356.
    iin(2, 81, 82, lens(&[16]), true),
    iin(3, 508, 508, lens(&[16]), true),
    iin(3, 353, 353, lens(&[16]), true),
    iin(3, 356, 356, lens(&[16]), true),
    // UzCard 8600, Humo 9860, Troy 9792, Napas 9704, GPN 1946.
    iin(4, 8600, 8600, lens(&[16]), false),
    iin(4, 9860, 9860, lens(&[16]), false),
    iin(4, 9792, 9792, lens(&[16]), false),
    iin(4, 9704, 9704, lens(&[16, 19]), false),
    iin(4, 1946, 1946, lens(&[16, 18, 19]), false),
    // UATP 1 (15).
    iin(1, 1, 1, lens(&[15]), false),
    // Hipercard 3841 (13, 16, 19).
    iin(4, 3841, 3841, lens(&[13, 16, 19]), false),
];

/// How a payment card number was found: its digit values and its group lengths as
/// written (`[4, 4, 4, 4]` for `4111 1111 1111 1111`, `[16]` for the bare form).
pub fn payment_card(d: &[u8], groups: &[usize]) -> Verdict {
    let len = d.len();
    if !(12..=19).contains(&len) || !luhn(d) || d.iter().all(|&x| x == d[0]) {
        return Verdict::Reject;
    }
    if !regular_grouping(groups) {
        return Verdict::Reject;
    }
    let mut best = Verdict::Reject;
    for r in IINS {
        let p = prefix_num(d, r.digits);
        if (r.lo..=r.hi).contains(&p) && r.lengths & (1 << len) != 0 {
            let v = if r.common {
                Verdict::Accept
            } else {
                Verdict::NeedsContext
            };
            best = best.max(v);
        }
    }
    // Written as one bare run, only the usual lengths stand on their own: a 12, 13 or
    // 17-19 digit number without grouping is as often an id or a constant in code. Pairs
    // and triples (`41 11 11 …`) are as often a byte dump: they need a card word too.
    // UnionPay's 62 range issues 16-19 digits and is printed bare as often as not.
    let small_groups = groups.len() > 1 && groups[0] < 4;
    let union_pay = prefix_num(d, 2) == 62 && len >= 16;
    if best == Verdict::Accept
        && ((groups.len() == 1 && !(14..=16).contains(&len) && !union_pay) || small_groups)
    {
        best = Verdict::NeedsContext;
    }
    best
}

/// Card numbers are printed in regular groups: the issuers' layouts (4-4-4-4, 4-6-5,
/// 4-6-4, 6-13, 4-4-4-4-3) or equal groups with a shorter last one (pairs, fours).
fn regular_grouping(g: &[usize]) -> bool {
    const LAYOUTS: &[&[usize]] = &[
        &[4, 6, 5],
        &[4, 6, 4],
        &[4, 6, 6],
        &[6, 13],
        &[6, 12],
        &[6, 10],
        &[4, 4, 4, 7],
        &[4, 4, 5],
    ];
    match g {
        [] => false,
        [_] => true,
        _ if LAYOUTS.contains(&g) => true,
        [init @ .., last] => {
            let k = init[0];
            (2..=6).contains(&k) && init.iter().all(|&x| x == k) && (1..=k).contains(last)
        }
    }
}

/// Mainland bank card: UnionPay's 62 range, 16-19 digits, Luhn. (Cards of other
/// networks issued by mainland banks are reported as payment cards.)
pub fn cn_bank_card(d: &[u8], groups: &[usize]) -> bool {
    (16..=19).contains(&d.len()) && regular_grouping(groups) && prefix_num(d, 2) == 62 && luhn(d)
}

#[cfg(test)]
mod tests {
    use super::super::digit_groups;
    use super::*;

    /// `prefix` plus its Luhn check digit.
    fn with_check(prefix: &str) -> String {
        (0..10)
            .map(|c| format!("{prefix}{c}"))
            .find(|n| luhn(&digit_groups(n.as_bytes()).0))
            .unwrap()
    }

    fn card(s: &str) -> Verdict {
        let (d, g) = digit_groups(s.as_bytes());
        payment_card(&d, &g)
    }

    #[test]
    fn luhn_published_examples() {
        // ISO/IEC 7812 worked example.
        let (d, _) = digit_groups(b"79927398713");
        assert!(luhn(&d));
        let (d, _) = digit_groups(b"79927398710");
        assert!(!luhn(&d));
    }

    #[test]
    fn networks_test_numbers() {
        // The networks' published test numbers.
        for n in [
            "4111 1111 1111 1111",
            "4111.1111.1111.1111",
            "5555-5555-5555-4444",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "3530111333300000",
            "6212345678901265",
            "36227206271667",
            "2223003122003222",
        ] {
            assert_eq!(card(n), Verdict::Accept, "{n}");
        }
        // Short Maestro stands when grouped, bare it needs a card word; so does UATP.
        assert_eq!(card("6759 6498 2606"), Verdict::Accept);
        assert_eq!(card("675964982606"), Verdict::NeedsContext);
        assert_eq!(card(&with_check("18000123456789")), Verdict::Accept);
        assert_eq!(card(&with_check("10000123456789")), Verdict::NeedsContext);
        assert_eq!(card("41 11 11 11 11 11 11 11"), Verdict::NeedsContext);
        assert_eq!(card("4111 1111 1111 1112"), Verdict::Reject);
        // Luhn-valid but no issuer starts with 9 (outside the listed ones).
        assert_eq!(card("9111111111111111"), Verdict::Reject);
        // Irregular grouping is not how a card is written.
        assert_eq!(card("411 11111 1111 111"), Verdict::Reject);
        assert!(cn_bank_card(&digit_groups(b"6212345678901265").0, &[16]));
        assert!(!cn_bank_card(&digit_groups(b"6212345678901266").0, &[16]));
    }
}
