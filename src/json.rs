//! A REST answer's JSON, read in place: strings and keys borrow from the answer's bytes
//! (unless they hold an escape), objects are small vectors in document order. The mapping
//! reads a few fields of each answer once, so a `serde_json::Value` (a `String` per key and
//! value, a `BTreeMap` per object, all dropped again) cost a read 20-30% of its
//! instructions on the converter's side of the call (docs/performance.md).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value borrowing from the text it was read from.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// A number that is not an `i64` (a fraction, an exponent, or out of range).
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Reads one JSON document; an empty text is `Null` (a 2xx without a body).
    pub fn parse(text: &'a [u8]) -> serde_json::Result<Json<'a>> {
        if text.is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_slice(text)
    }

    /// A member of an object (the last of that name, as `serde_json::Value` keeps it);
    /// `None` for anything else.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Obj(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a path of member names, if present and not null.
    pub fn at<S: AsRef<str>>(&self, path: &[S]) -> Option<&Json<'a>> {
        path.iter()
            .try_fold(self, |v, seg| v.get(seg.as_ref()))
            .filter(|v| !matches!(v, Json::Null))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Arr(items) => Some(items),
            _ => None,
        }
    }
}

/// A string that borrows when it can (a key or value without escapes).
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
                Ok(Json::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Json<'de>, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Json<'de>, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<Json<'de>, E> {
                Ok(Json::Int(i))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<Json<'de>, E> {
                Ok(i64::try_from(u).map_or(Json::Float(u as f64), Json::Int))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Json<'de>, E> {
                Ok(Json::Float(f))
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Json<'de>, E> {
                Ok(Json::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Json<'de>, E> {
                Ok(Json::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Json<'de>, E> {
                Ok(Json::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((Text(k), v)) = map.next_entry()? {
                    members.push((k, v));
                }
                Ok(Json::Obj(members))
            }
        }
        d.deserialize_any(V)
    }
}

/// The member paths a mapping reads of each item of a collection, as a tree of member
/// names; each leaf is a slot of [`Paths::pluck`]'s output. Built once per call.
#[derive(Debug, Default)]
pub struct Paths {
    members: Vec<(String, Node)>,
    slots: usize,
}

#[derive(Debug)]
enum Node {
    Slot(usize),
    Object(Vec<(String, Node)>),
}

impl Paths {
    /// The tree of `paths`; the i-th path's value lands in slot i.
    pub fn new<S: AsRef<str>>(paths: &[&[S]]) -> Paths {
        let mut tree = Paths::default();
        for (slot, path) in paths.iter().enumerate() {
            let mut level = &mut tree.members;
            for (depth, seg) in path.iter().enumerate() {
                let last = depth + 1 == path.len();
                let at = match level.iter().position(|(k, _)| k == seg.as_ref()) {
                    Some(i) => i,
                    None => {
                        let node = if last {
                            Node::Slot(slot)
                        } else {
                            Node::Object(Vec::new())
                        };
                        level.push((seg.as_ref().to_owned(), node));
                        level.len() - 1
                    }
                };
                match &mut level[at].1 {
                    Node::Object(children) if !last => level = children,
                    // A path that is a prefix of another (or the same twice) keeps the first.
                    _ => break,
                }
            }
        }
        tree.slots = paths.len();
        tree
    }

    /// The values at the paths in one JSON document, in one pass that builds nothing else:
    /// every member nobody reads is skipped (and checked) by serde_json. A missing member,
    /// `null`, or a path through something that is not an object leaves its slot `None`;
    /// a member named twice keeps the last value, as [`Json::get`] does.
    pub fn pluck<'a>(
        &self,
        text: &'a [u8],
        slots: &mut Vec<Option<Json<'a>>>,
    ) -> serde_json::Result<()> {
        slots.clear();
        slots.resize(self.slots, None);
        // UTF-8 checked once for the whole text, not once per string as `from_slice` does
        // (which was a fifth of a pluck): a text that is not UTF-8 is refused either way.
        let text = std::str::from_utf8(text).map_err(|_| de::Error::custom("not UTF-8"))?;
        let mut de = serde_json::Deserializer::from_str(text);
        de::DeserializeSeed::deserialize(
            Pluck {
                members: &self.members,
                slots,
            },
            &mut de,
        )?;
        de.end()
    }
}

/// One object level of a pluck.
struct Pluck<'t, 's, 'a> {
    members: &'t [(String, Node)],
    slots: &'s mut Vec<Option<Json<'a>>>,
}

impl<'de> de::DeserializeSeed<'de> for Pluck<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pluck<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    // Anything but an object has none of the members: its slots stay empty.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            match self.members.iter().find(|(k, _)| *k == key) {
                Some((_, Node::Slot(i))) => {
                    let v: Json<'de> = map.next_value()?;
                    self.slots[*i] = Some(v).filter(|v| !matches!(v, Json::Null));
                }
                Some((_, Node::Object(children))) => map.next_value_seed(Pluck {
                    members: children,
                    slots: &mut *self.slots,
                })?,
                None => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_place_what_serde_json_reads() {
        let text = br#"{"kontaktgrupper":[{"id":"9b2c","kontaktgruppetype":2,"slutdato":null,
            "oprettetAf":{"organisationstype":1,"organisationskode":"K\u00f8ge \"101\""}}],
            "n":-3,"big":18446744073709551615,"f":1.5,"t":true,"e":[],"o":{}}"#;
        let j = Json::parse(text).unwrap();
        let item = &j.get("kontaktgrupper").unwrap().as_array().unwrap()[0];
        assert!(matches!(
            item.get("id"),
            Some(Json::Str(Cow::Borrowed("9b2c")))
        ));
        assert_eq!(item.at(&["kontaktgruppetype"]).unwrap().as_i64(), Some(2));
        assert_eq!(item.at(&["slutdato"]), None, "null is absent");
        assert_eq!(item.get("slutdato"), Some(&Json::Null));
        assert_eq!(
            item.at(&["oprettetAf", "organisationskode"])
                .unwrap()
                .as_str(),
            Some("Køge \"101\"")
        );
        assert_eq!(item.at(&["oprettetAf", "nope"]), None);
        assert_eq!(j.get("n"), Some(&Json::Int(-3)));
        assert_eq!(j.get("big"), Some(&Json::Float(18446744073709551615.0)));
        assert_eq!(j.get("f"), Some(&Json::Float(1.5)));
        assert_eq!(j.get("t"), Some(&Json::Bool(true)));
        assert_eq!(j.get("e").unwrap().as_array(), Some(&[][..]));
        assert_eq!(j.get("o"), Some(&Json::Obj(Vec::new())));
        assert_eq!(j.get("e").unwrap().get("x"), None);
        assert_eq!(Json::parse(b"").unwrap(), Json::Null);
        let twice = Json::parse(br#"{"fejlkode":1,"fejlkode":100028}"#).unwrap();
        assert_eq!(
            twice.get("fejlkode"),
            Some(&Json::Int(100028)),
            "the last wins"
        );
        for bad in [&b"{"[..], b"[1,]", b"nul", b"{\"a\" 1}", b"\"\xff\""] {
            assert!(Json::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pluck_reads_the_paths_and_skips_the_rest() {
        let text = br#"{"id":"9b2c","skip":{"deep":[1,{"id":"no"}],"s":"}]\""},
            "registreretAf":{"organisationstype":1,"organisationskode":"K\u00f8ge"},
            "slutdato":null,"n":7,"oprettetAf":"not an object","n":8}"#;
        let paths: [&[&str]; 6] = [
            &["id"],
            &["registreretAf", "organisationstype"],
            &["registreretAf", "organisationskode"],
            &["slutdato"],
            &["n"],
            &["oprettetAf", "brugerId"],
        ];
        let tree = Paths::new(&paths);
        let mut slots = Vec::new();
        tree.pluck(text, &mut slots).unwrap();
        let whole = Json::parse(text).unwrap();
        for (path, got) in paths.iter().zip(&slots) {
            assert_eq!(got.as_ref(), whole.at(path), "{path:?}");
        }
        assert_eq!(slots[2].as_ref().and_then(Json::as_str), Some("Køge"));
        assert_eq!(slots[4], Some(Json::Int(8)), "the last wins");
        for bad in [
            &b"{"[..],
            b"{\"id\":1,}",
            b"[1,]",
            b"{\"id\":\"\xff\"}",
            // Not UTF-8 in a member nobody reads: refused too, as `Json::parse` refuses it.
            b"{\"skip\":\"\xff\",\"id\":\"a\"}",
            b"{} x",
        ] {
            assert!(tree.pluck(bad, &mut slots).is_err(), "{bad:?}");
        }
        tree.pluck(b"[1,2]", &mut slots).unwrap();
        assert!(slots.iter().all(Option::is_none));
    }
}
