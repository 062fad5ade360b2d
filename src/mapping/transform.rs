//! The typed transforms of the mapping language. Every value passes through one canonical
//! form (`Canon`) on its way between SOAP text and JSON, so the two directions and the
//! comparison of rule 4 agree by construction.

use jiff::{Timestamp, civil::Date};
use serde::Deserialize;
use uuid::Uuid;

use crate::dktime;
use crate::json::Json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// A CPR number: text both ways. Its validity is the REST service's to judge, so the
    /// caller sees the REST service's code.
    Cpr,
    /// xs:int ↔ JSON integer.
    Int,
    /// xs:boolean ↔ JSON boolean.
    Bool,
    /// Text both ways.
    String,
    /// A UUID, written lower-case and hyphenated.
    Uuid,
    /// xs:dateTime naming a day ↔ JSON date: the Danish date; written as Danish midnight
    /// with its offset.
    Date,
    /// xs:dateTime ↔ JSON instant; without an offset, Danish local time; written in Danish
    /// time with its offset.
    Datetime,
}

/// A value in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Canon {
    Text(String),
    Int(i64),
    Bool(bool),
    Uuid(Uuid),
    Day(Date),
    Instant(Timestamp),
}

/// The value does not have the transform's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {0:?}")]
pub struct BadValue(pub Transform);

impl Transform {
    /// What OpenAPI type and format a JSON field needs to take this transform's value.
    pub fn json_type(self) -> (&'static str, Option<&'static str>) {
        match self {
            Transform::Cpr | Transform::String => ("string", None),
            Transform::Int => ("integer", None),
            Transform::Bool => ("boolean", None),
            Transform::Uuid => ("string", Some("uuid")),
            Transform::Date => ("string", Some("date")),
            Transform::Datetime => ("string", Some("date-time")),
        }
    }

    /// Which XSD built-in types (local names) can carry this transform's value.
    pub fn xsd_types(self) -> &'static [&'static str] {
        match self {
            Transform::Cpr | Transform::String | Transform::Uuid => {
                &["string", "token", "normalizedString"]
            }
            Transform::Int => &[
                "int",
                "integer",
                "long",
                "short",
                "nonNegativeInteger",
                "positiveInteger",
            ],
            Transform::Bool => &["boolean"],
            Transform::Date => &["dateTime", "date"],
            Transform::Datetime => &["dateTime"],
        }
    }

    /// SOAP element text → canonical.
    pub fn from_soap(self, text: &str) -> Result<Canon, BadValue> {
        let t = text.trim();
        let bad = BadValue(self);
        match self {
            Transform::Cpr | Transform::String => Ok(Canon::Text(t.to_owned())),
            Transform::Int => t.parse().map(Canon::Int).map_err(|_| bad),
            Transform::Bool => match t {
                "true" | "1" => Ok(Canon::Bool(true)),
                "false" | "0" => Ok(Canon::Bool(false)),
                _ => Err(bad),
            },
            Transform::Uuid => Uuid::parse_str(t).map(Canon::Uuid).map_err(|_| bad),
            Transform::Date => dktime::parse_xs_day(t).map(Canon::Day).map_err(|_| bad),
            Transform::Datetime => dktime::parse_xs_datetime(t)
                .map(Canon::Instant)
                .map_err(|_| bad),
        }
    }

    /// JSON value → canonical.
    pub fn from_json(self, v: &Json<'_>) -> Result<Canon, BadValue> {
        let bad = BadValue(self);
        match (self, v) {
            (Transform::Int, Json::Int(n)) => Ok(Canon::Int(*n)),
            (Transform::Bool, Json::Bool(b)) => Ok(Canon::Bool(*b)),
            (Transform::Cpr | Transform::String, Json::Str(s)) => {
                Ok(Canon::Text(s.as_ref().to_owned()))
            }
            (Transform::Uuid, Json::Str(s)) => Uuid::parse_str(s).map(Canon::Uuid).map_err(|_| bad),
            (Transform::Date, Json::Str(s)) => s.parse().map(Canon::Day).map_err(|_| bad),
            (Transform::Datetime, Json::Str(s)) => s.parse().map(Canon::Instant).map_err(|_| bad),
            _ => Err(bad),
        }
    }
}

/// A value on its way from JSON (or an input) into a SOAP answer: a text borrowed from
/// where it was read, or any other canonical value. Read per item of a collection, where a
/// `String` per text field was a cost of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapValue<'a> {
    Text(&'a str),
    Canon(Canon),
}

impl SoapValue<'_> {
    /// The text of the SOAP element (unescaped; the writer escapes).
    pub fn to_soap(&self) -> String {
        match self {
            SoapValue::Text(s) => (*s).to_owned(),
            SoapValue::Canon(c) => c.to_soap(),
        }
    }
}

impl Transform {
    /// JSON value → canonical, as a SOAP answer takes it (a text borrowed from `v`).
    pub fn from_json_soap<'v>(self, v: &'v Json<'_>) -> Result<SoapValue<'v>, BadValue> {
        match (self, v) {
            (Transform::Cpr | Transform::String, Json::Str(s)) => Ok(SoapValue::Text(s)),
            _ => self.from_json(v).map(SoapValue::Canon),
        }
    }
}

impl Canon {
    /// The value as a SOAP answer takes it (a text borrowed from `self`).
    pub fn soap_value(&self) -> SoapValue<'_> {
        match self {
            Canon::Text(s) => SoapValue::Text(s),
            other => SoapValue::Canon(other.clone()),
        }
    }
}

/// `i`'s decimal digits, written into `buf`.
fn itoa(i: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = i.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    // Only ASCII digits and '-' were written.
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

impl Canon {
    /// The JSON text of the value, appended to `out` (a string is escaped as JSON wants).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = match self {
            Canon::Text(s) => serde_json::to_writer(&mut *out, s).map_err(std::io::Error::from),
            Canon::Int(i) => write!(out, "{i}"),
            Canon::Bool(b) => write!(out, "{b}"),
            Canon::Uuid(u) => write!(out, "\"{}\"", u.hyphenated()),
            Canon::Day(d) => write!(out, "\"{d}\""),
            Canon::Instant(t) => write!(out, "\"{t}\""),
        };
    }

    /// The text of a SOAP element (unescaped; the writer escapes).
    pub fn to_soap(&self) -> String {
        let mut out = String::new();
        self.write_soap(&mut out);
        out
    }

    /// [`Canon::to_soap`], appended to `out`.
    pub fn write_soap(&self, out: &mut String) {
        match self {
            Canon::Text(s) => out.push_str(s),
            Canon::Int(i) => out.push_str(itoa(*i, &mut [0; 20])),
            Canon::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Canon::Uuid(u) => out.push_str(u.hyphenated().encode_lower(&mut Uuid::encode_buffer())),
            Canon::Day(d) => dktime::write_xs_day(out, *d),
            Canon::Instant(t) => dktime::write_xs_datetime(out, *t),
        }
    }

    /// The text for a URL path or a header (no JSON quoting).
    pub fn to_text(&self) -> String {
        match self {
            Canon::Text(s) => s.clone(),
            Canon::Int(i) => i.to_string(),
            Canon::Bool(b) => b.to_string(),
            Canon::Uuid(u) => u.hyphenated().to_string(),
            Canon::Day(d) => d.to_string(),
            Canon::Instant(t) => t.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(c: &Canon) -> String {
        let mut out = Vec::new();
        c.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn parse(text: &str) -> Json<'_> {
        Json::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn soap_to_json_and_back() {
        let day = Transform::Date
            .from_soap("2024-07-01T00:00:00+02:00")
            .unwrap();
        assert_eq!(json(&day), r#""2024-07-01""#);
        assert_eq!(
            Transform::Date
                .from_json(&parse(r#""2024-07-01""#))
                .unwrap()
                .to_soap(),
            "2024-07-01T00:00:00+02:00"
        );
        let t = Transform::Datetime
            .from_soap("2024-03-31T10:00:00")
            .unwrap();
        assert_eq!(json(&t), r#""2024-03-31T08:00:00Z""#);
        assert_eq!(t.to_soap(), "2024-03-31T10:00:00+02:00");
        let u = Transform::Uuid
            .from_soap(" 7D444840-9DC0-11D1-B245-5FFDCE74FAD2 ")
            .unwrap();
        assert_eq!(u.to_soap(), "7d444840-9dc0-11d1-b245-5ffdce74fad2");
        assert_eq!(json(&Transform::Int.from_soap("13").unwrap()), "13");
        for i in [0, 7, -7, 1_000_000, i64::MAX, i64::MIN] {
            assert_eq!(Canon::Int(i).to_soap(), i.to_string());
        }
        assert_eq!(Canon::Bool(true).to_soap(), "true");
        assert_eq!(json(&Canon::Bool(false)), "false");
        assert_eq!(json(&u), r#""7d444840-9dc0-11d1-b245-5ffdce74fad2""#);
        assert_eq!(
            json(&Canon::Text("Køge \"5\"\n".into())),
            r#""Køge \"5\"\n""#
        );
        assert_eq!(Transform::Int.from_json(&parse("13")), Ok(Canon::Int(13)));
        assert_eq!(
            Transform::Int.from_json(&parse("13.0")),
            Err(BadValue(Transform::Int))
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_type() {
        assert_eq!(
            Transform::Int.from_soap("1.5"),
            Err(BadValue(Transform::Int))
        );
        assert_eq!(
            Transform::Uuid.from_soap("nope"),
            Err(BadValue(Transform::Uuid))
        );
        assert_eq!(
            Transform::Date.from_soap("2024-02-30T00:00:00"),
            Err(BadValue(Transform::Date))
        );
        assert_eq!(
            Transform::Int.from_json(&parse(r#""1""#)),
            Err(BadValue(Transform::Int))
        );
    }

    #[test]
    fn the_same_instant_in_two_offsets_is_equal() {
        let a = Transform::Datetime
            .from_soap("2024-03-31T10:00:00+02:00")
            .unwrap();
        let b = Transform::Datetime
            .from_json(&parse(r#""2024-03-31T08:00:00Z""#))
            .unwrap();
        assert_eq!(a, b);
    }
}
