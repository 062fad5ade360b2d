//! The CPR number: toxic data (rules.md rule 10). Its `Debug` and `Display` mask it, it has
//! no `Serialize` of its own beyond the contract types, and it never becomes a span field, a
//! metric label or part of a URL.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CPR number as a caller sent it, not yet checked. Masked in `Debug`, so a request body
/// that is logged by mistake still shows no CPR.
#[derive(Clone, PartialEq, Eq)]
pub struct CprInput(String);

/// A checked CPR number: ten digits, the first four a day (01-31) and a month (01-12).
/// The modulus-11 check is not applied: CPR numbers issued since 2007 need not satisfy it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cpr(String);

/// The pattern of a valid CPR number, also published in the OpenAPI document.
pub const CPR_PATTERN: &str = "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid CPR number")]
pub struct InvalidCpr;

impl CprInput {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn validate(&self) -> Result<Cpr, InvalidCpr> {
        Cpr::parse(&self.0)
    }
}

impl Cpr {
    pub fn parse(s: &str) -> Result<Self, InvalidCpr> {
        let b = s.as_bytes();
        if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
            return Err(InvalidCpr);
        }
        let day = (b[0] - b'0') * 10 + (b[1] - b'0');
        let month = (b[2] - b'0') * 10 + (b[3] - b'0');
        if !(1..=31).contains(&day) || !(1..=12).contains(&month) {
            return Err(InvalidCpr);
        }
        Ok(Self(s.to_owned()))
    }

    /// The digits, for the store and for the body of an upstream request. Never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const MASK: &str = "CPR(**********)";

impl fmt::Debug for CprInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}
impl fmt::Debug for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}
impl fmt::Display for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<'de> Deserialize<'de> for CprInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}
impl Serialize for CprInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl From<&Cpr> for CprInput {
    fn from(c: &Cpr) -> Self {
        Self(c.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ten_digits_with_day_and_month() {
        assert!(Cpr::parse("0101801234").is_ok());
        assert!(Cpr::parse("3112991234").is_ok());
    }

    #[test]
    fn refuses_wrong_length_letters_and_impossible_dates() {
        for bad in [
            "",
            "010180123",
            "01018012345",
            "01018O1234",
            "0001801234",
            "3201801234",
            "0113801234",
            "0100801234",
            "+101801234",
        ] {
            assert_eq!(Cpr::parse(bad), Err(InvalidCpr), "{bad}");
        }
    }

    #[test]
    fn debug_and_display_never_show_the_digits() {
        let c = Cpr::parse("0101801234").unwrap();
        assert!(!format!("{c:?} {c} {:?}", CprInput::new("0101801234")).contains("0101801234"));
    }

    #[test]
    fn the_published_pattern_matches_what_parse_accepts() {
        // The pattern is the OpenAPI contract; parse is the implementation. Sample both ways.
        assert_eq!(
            CPR_PATTERN,
            "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$"
        );
        for day in 0..=32u32 {
            for month in 0..=13u32 {
                let s = format!("{day:02}{month:02}801234");
                let pattern_ok = (1..=31).contains(&day) && (1..=12).contains(&month);
                assert_eq!(Cpr::parse(&s).is_ok(), pattern_ok, "{s}");
            }
        }
    }
}
