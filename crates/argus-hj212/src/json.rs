//! The JSON form of a decoded packet, printed by `argus hj212 decode` and read by other tools.
//!
//! This format is an interface: keep it stable. One object per packet:
//!
//! ```json
//! {
//!   "cn": "2011",
//!   "data_time": "2019-10-12T05:37:10.000Z",
//!   "factors": [
//!     {"code": "a21005", "fields": {"Flag": "N", "Rtd": "0.00"}, "metric": "a21005"}
//!   ],
//!   "flag": 4,
//!   "mn": "Y80110010000010",
//!   "params": {"DataTime": "20191012133710"},
//!   "pno": null,
//!   "pnum": null,
//!   "pw": "123456",
//!   "qn": "20191012133710130",
//!   "st": "22",
//!   "version": "2017"
//! }
//! ```
//!
//! - `version`: `"2005"`, `"2017"`, `"2025"`, or `"unknown(N)"` with the version bits of `Flag`.
//! - `qn`, `st`, `pw`: strings as sent, `null` if absent; `cn`, `mn`: strings as sent.
//! - `flag`, `pnum`, `pno`: numbers, `null` if absent.
//! - `data_time`: the CP's `DataTime` as RFC 3339 UTC with milliseconds, `null` if absent.
//! - `params`: the CP keys without `-`, values as sent.
//! - `factors`: in the order of their first field; `code` as sent, `metric` the code it resolves
//!   to (the 2017 code for a known 2005 code, else the code as sent), `fields` the field suffixes
//!   (`Rtd`, `Avg`, `Flag`, unknown ones as sent) with their values as sent.
//! - Values are always the strings sent, never converted to numbers.
//! - Object keys are sorted by byte order (serde_json's default `BTreeMap` order; the keys are also
//!   inserted in that order, so the output is the same with serde_json's `preserve_order`). Where a
//!   key repeats in `params` or in one factor's `fields`, the first value sent is kept.

use serde_json::{Map, Value};

use crate::decode::decode;
use crate::error::DecodeError;
use crate::packet::{DecodeOptions, Packet};

/// The JSON form of a packet (see the module docs).
pub fn to_json(packet: &Packet<'_>) -> Value {
    let text = |v: Option<&str>| v.map_or(Value::Null, |s| Value::String(s.to_owned()));
    let number = |v: Option<u32>| v.map_or(Value::Null, Value::from);
    let factors: Vec<Value> = packet
        .factors()
        .map(|factor| {
            let fields = sorted_object(factor.fields().iter().map(|f| (f.kind.as_str(), f.value)));
            let mut object = Map::new();
            object.insert("code".into(), Value::String(factor.code().to_owned()));
            object.insert("fields".into(), fields);
            object.insert("metric".into(), Value::String(factor.metric().to_string()));
            Value::Object(object)
        })
        .collect();
    let mut object = Map::new();
    object.insert("cn".into(), Value::String(packet.cn().to_owned()));
    object.insert(
        "data_time".into(),
        packet
            .data_time()
            .map_or(Value::Null, |t| Value::String(t.to_rfc3339())),
    );
    object.insert("factors".into(), Value::Array(factors));
    object.insert(
        "flag".into(),
        packet.flag().map_or(Value::Null, Value::from),
    );
    object.insert("mn".into(), Value::String(packet.mn().to_owned()));
    object.insert(
        "params".into(),
        sorted_object(packet.cp_params().iter().copied()),
    );
    object.insert("pno".into(), number(packet.pno()));
    object.insert("pnum".into(), number(packet.pnum()));
    object.insert("pw".into(), text(packet.pw()));
    object.insert("qn".into(), text(packet.qn()));
    object.insert("st".into(), text(packet.st()));
    object.insert(
        "version".into(),
        Value::String(packet.version().to_string()),
    );
    Value::Object(object)
}

/// An object of string values, keys inserted in sorted order, the first of repeated keys kept.
fn sorted_object<'s>(pairs: impl Iterator<Item = (&'s str, &'s str)>) -> Value {
    let mut pairs: Vec<(&str, &str)> = pairs.collect();
    pairs.sort_by_key(|(key, _)| *key); // stable: the first of repeated keys comes first
    pairs.dedup_by_key(|(key, _)| *key);
    let object = pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), Value::String(value.to_owned())))
        .collect::<Map<String, Value>>();
    Value::Object(object)
}

/// Decode one line holding a packet, with or without a trailing CR LF or LF, into its JSON form.
/// Error offsets are byte offsets in `line`.
pub fn decode_line(line: &[u8], options: &DecodeOptions) -> Result<Value, DecodeError> {
    let frame = match line {
        [rest @ .., b'\r', b'\n'] | [rest @ .., b'\n'] => rest,
        _ => line,
    };
    decode(frame, options).map(|packet| to_json(&packet))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::frame;

    #[test]
    fn repeated_keys_keep_the_first_value_and_absent_fields_are_null() {
        let data = "CN=3020;MN=A;CP=&&PolId=b;PolId=a;x-Info=1,x-Info=2,x-Avg=3&&";
        let f = frame(data.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let json = decode_line(&f, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let text = serde_json::to_string(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            concat!(
                r#"{"cn":"3020","data_time":null,"factors":[{"code":"x","fields":{"Avg":"3","Info":"1"},"metric":"x"}],"#,
                r#""flag":null,"mn":"A","params":{"PolId":"b"},"pno":null,"pnum":null,"pw":null,"qn":null,"st":null,"version":"2005"}"#
            )
        );
    }

    #[test]
    fn decode_line_takes_crlf_lf_or_nothing_and_reports_line_offsets() {
        let data = "CN=2011;MN=A;CP=&&&&";
        let f = frame(data.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let bare = &f[..f.len() - 2];
        let options = DecodeOptions::default();
        let with_lf = [bare, b"\n"].concat();
        for line in [f.as_slice(), bare, &with_lf] {
            assert!(decode_line(line, &options).is_ok());
        }
        let bad = [bare, b"\n\n"].concat();
        assert_eq!(
            decode_line(&bad, &options).err(),
            Some(DecodeError::BadFrame {
                offset: bare.len(),
                reason: "line ending is not cr lf"
            })
        );
    }
}
