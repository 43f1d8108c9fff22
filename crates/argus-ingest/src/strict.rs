//! Parsing JSON input strictly: an object that names a key twice is refused (serde_json keeps
//! the last silently, so two readers of the same payload could disagree on what it said).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use crate::decode::IngestError;
use crate::Reason;

/// Parse `bytes` as one JSON value. A duplicate key is [`Reason::DuplicateKey`]; anything else
/// that is not JSON (syntax, a number out of range, nesting deeper than serde_json's limit of
/// 128) is [`Reason::BadJson`].
pub fn parse(bytes: &[u8]) -> Result<Value, IngestError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict::deserialize(&mut de).and_then(|Strict(value)| {
        de.end()?;
        Ok(value)
    });
    parsed.map_err(|e| {
        // Our visitor accepts every JSON value, so its only data error is a duplicate key.
        if e.classify() == serde_json::error::Category::Data {
            IngestError::new(Reason::DuplicateKey, e.to_string())
        } else {
            IngestError::new(Reason::BadJson, format!("not valid JSON: {e}"))
        }
    })
}

/// A [`Value`] whose objects have no key twice.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    #[inline]
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    #[inline]
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    #[inline]
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    #[inline]
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // The parser yields only finite numbers (1e400 is its own error).
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    #[inline]
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    #[inline]
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    #[inline]
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    #[inline]
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match object.entry(key) {
                Entry::Vacant(slot) => {
                    let Strict(value) = map.next_value()?;
                    slot.insert(value);
                }
                Entry::Occupied(taken) => {
                    return Err(de::Error::custom(format_args!(
                        "duplicate key {:?}",
                        crate::bounded(taken.key(), 64)
                    )))
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        for input in [
            r#"{"source": "A", "source": "B"}"#,
            r#"[{"values": {"a21026": 1, "a21026": 1000}}]"#,
            r#"{"values": {"a": {"v": 1, "v": 2}}}"#,
        ] {
            let e = parse(input.as_bytes()).err();
            assert_eq!(
                e.as_ref().map(|e| e.reason),
                Some(Reason::DuplicateKey),
                "{input}"
            );
            assert!(
                e.is_some_and(|e| e.detail.contains("duplicate key")),
                "{input}"
            );
        }
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        for input in [
            r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#,
            "[]",
            r#""text""#,
            "-0.0",
        ] {
            let strict = parse(input.as_bytes()).unwrap_or_else(|e| panic!("{input}: {e}"));
            let plain: Value = serde_json::from_str(input).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(strict, plain, "{input}");
        }
        for (input, says) in [
            ("{not json", "not valid JSON"),
            ("[1e400]", "number out of range"),
            ("{} {}", "trailing characters"),
            (&"[".repeat(10_000), "recursion limit exceeded"),
        ] {
            match parse(input.as_bytes()) {
                Err(e) => {
                    assert_eq!(e.reason, Reason::BadJson, "{e}");
                    assert!(e.detail.contains(says), "{e}");
                }
                Ok(v) => panic!("{input} parsed: {v}"),
            }
        }
    }
}
