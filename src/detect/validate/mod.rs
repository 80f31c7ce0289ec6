//! Checksum and shape validators that confirm a regex match is the real thing.
//!
//! Each validator sees the bytes of the finding (the `secret` group when the rule has
//! one, and the `key` group for assignment rules) and answers with a [`Verdict`]: the
//! item stands on its own, it is plausible but needs one of the rule's context words
//! nearby, or it is not the item. They are pure functions of the input and allocate at
//! most a few bytes, so they can run on every regex match.
//!
//! This module is a leaf: `rules` parses validator names at load time, `scan` runs them.

mod cards;
mod contact;
mod iban;
mod ids;
mod phone;
mod secrets;

pub use cards::{cn_bank_card, luhn, payment_card};
pub use contact::email;
pub use iban::iban;
pub use ids::{
    cn_plate, cn_resident_id, cn_resident_id_15, cn_uscc, hkid, is_real_date, mo_id, twid,
};
pub use phone::{
    cn_landline, cn_mobile, phone, phone_may_stand_alone, us_ssn, warm_up_phone_metadata,
};
pub use secrets::{
    assignment, base64_userpass, entropy, github_crc32, is_filler, jwt, key_kind, secret_value,
    token_value, KeyKind,
};

/// A validator's answer, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Not the item.
    Reject,
    /// The item's shape and checks hold, but they are too weak alone (no checksum, or a
    /// number that is as often something else): report it only next to a context word.
    NeedsContext,
    /// The item.
    Accept,
}

impl From<bool> for Verdict {
    fn from(ok: bool) -> Verdict {
        if ok {
            Verdict::Accept
        } else {
            Verdict::Reject
        }
    }
}

/// A validator named in a rule file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    Luhn,
    PaymentCard,
    CnBankCard,
    CnResidentId,
    CnResidentId15,
    CnMobile,
    CnLandline,
    CnUscc,
    CnPlate,
    Iban,
    Hkid,
    Twid,
    MoId,
    GithubCrc32,
    UsSsn,
    /// Any country's number, by libphonenumber's metadata.
    Phone,
    Email,
    Jwt,
    /// A value assigned to a password key that looks like a password, not code.
    SecretValue,
    /// A machine-generated token: letters and digits, random, not filler.
    TokenValue,
    /// The generic assignment check over the rule's `key` and `secret` groups.
    Assignment,
    /// Base64 of `user:password`.
    Base64UserPass,
    /// Shannon entropy of the value, in bits per byte, at least this much.
    Entropy(f64),
}

const NAMES: &str = "luhn, payment_card, cn_bank_card, cn_resident_id, cn_resident_id_15, \
    cn_mobile, cn_landline, cn_uscc, cn_plate, iban, hkid, twid, mo_id, github_crc32, us_ssn, \
    phone, email, jwt, secret_value, token_value, assignment, base64_userpass, entropy(N)";

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
            "cn_resident_id_15" => Validator::CnResidentId15,
            "cn_mobile" => Validator::CnMobile,
            "cn_landline" => Validator::CnLandline,
            "cn_uscc" => Validator::CnUscc,
            "cn_plate" => Validator::CnPlate,
            "iban" => Validator::Iban,
            "hkid" => Validator::Hkid,
            "twid" => Validator::Twid,
            "mo_id" => Validator::MoId,
            "github_crc32" => Validator::GithubCrc32,
            "us_ssn" => Validator::UsSsn,
            // `phone_intl` and `phone_national` were separate hand-written checks; both
            // are now the metadata-driven one.
            "phone" | "phone_intl" | "phone_national" => Validator::Phone,
            "email" => Validator::Email,
            "jwt" => Validator::Jwt,
            "secret_value" => Validator::SecretValue,
            "token_value" => Validator::TokenValue,
            "assignment" => Validator::Assignment,
            "base64_userpass" => Validator::Base64UserPass,
            other => return Err(format!("unknown validator `{other}` (known: {NAMES})")),
        })
    }

    /// Judge `value`; `key` is the rule's `key` group where it has one.
    /// Whether [`Validator::check`] could say [`Verdict::Accept`] for `value`, decided
    /// cheaply and conservatively (`true` when unsure). A rule whose context words are
    /// only needed for weak matches skips the full check where this is `false` and no
    /// context word is near: the check could at best ask for that context.
    pub fn may_accept_without_context(&self, value: &[u8]) -> bool {
        match *self {
            Validator::Phone => phone_may_stand_alone(value),
            _ => true,
        }
    }

    pub fn check(&self, value: &[u8], key: Option<&[u8]>) -> Verdict {
        match *self {
            Validator::Luhn => luhn(&digit_groups(value).0).into(),
            Validator::PaymentCard => {
                let (d, g) = digit_groups(value);
                payment_card(&d, &g)
            }
            Validator::CnBankCard => {
                let (d, g) = digit_groups(value);
                cn_bank_card(&d, &g).into()
            }
            Validator::CnResidentId => cn_resident_id(value).into(),
            Validator::CnResidentId15 => cn_resident_id_15(value),
            Validator::CnMobile => cn_mobile(&digit_groups(value).0).into(),
            Validator::CnLandline => cn_landline(value).into(),
            Validator::CnUscc => cn_uscc(value).into(),
            Validator::CnPlate => cn_plate(value).into(),
            Validator::Iban => iban(value).into(),
            Validator::Hkid => hkid(value).into(),
            Validator::Twid => twid(value).into(),
            Validator::MoId => mo_id(value),
            Validator::GithubCrc32 => github_crc32(value).into(),
            Validator::UsSsn => us_ssn(&digit_groups(value).0).into(),
            Validator::Phone => phone(value),
            Validator::Email => email(value).into(),
            Validator::Jwt => jwt(value).into(),
            Validator::SecretValue => secret_value(value).into(),
            Validator::TokenValue => token_value(value).into(),
            Validator::Assignment => assignment(key.unwrap_or_default(), value).into(),
            Validator::Base64UserPass => base64_userpass(value).into(),
            Validator::Entropy(min) => (entropy(value) >= min && !is_filler(value)).into(),
        }
    }
}

/// The digit values of `v` (separators dropped) and the lengths of its digit groups as
/// written: `4111 1111-1111.1111` → 16 digits in groups `[4, 4, 4, 4]`.
pub fn digit_groups(v: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut d = Vec::with_capacity(v.len());
    let mut groups = Vec::new();
    let mut run = 0;
    for &b in v {
        if b.is_ascii_digit() {
            d.push(b - b'0');
            run += 1;
        } else if run > 0 {
            groups.push(run);
            run = 0;
        }
    }
    if run > 0 {
        groups.push(run);
    }
    (d, groups)
}

/// The number formed by the first `n` digit values.
fn prefix_num(d: &[u8], n: usize) -> u32 {
    d.iter().take(n).fold(0u32, |acc, &x| acc * 10 + x as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert!(Validator::parse("entropy(3.5)").is_ok());
        assert!(Validator::parse("entropy(x)").is_err());
        assert!(Validator::parse("nope").is_err());
        assert_eq!(Validator::parse("phone_intl"), Ok(Validator::Phone));
    }

    #[test]
    fn groups() {
        assert_eq!(
            digit_groups(b"4111 1111-1111.1111"),
            (
                vec![4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
                vec![4, 4, 4, 4]
            )
        );
    }
}
