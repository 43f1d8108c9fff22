//! The canonical JSON reading (`config/reading.schema.json`): one object or an array of them,
//! `{"source": "<MN or device id>", "ts": "<RFC 3339 with offset>" | <epoch ms>,
//!   "interval": "real_time" | "minute" | "hour" | "day",
//!   "values": {"<code>": <number> | {"v": <number>, "flag": "N", "zs": <number>}}}`.
//! `interval` (default `real_time`) says what span the values stand for: a logger's minute,
//! hourly or daily averages start at `ts`; `zs` is the O2-corrected value sent with an average.
//!
//! Unknown metric codes are kept (as unknown), never dropped. Errors name the element and field.

use argus_model::{DataFlag, Interval, MetricCode, Reading, SourceId, Timestamp};
use serde_json::{Map, Value};

use crate::decode::{IngestError, TimeWindow, TopicNames};
use crate::Reason;

/// Longest source id accepted.
pub const MAX_SOURCE_LEN: usize = 64;
/// Longest metric code accepted (HJ 212 codes have 6 or 7 characters, Argus's own names fewer
/// than 20).
pub const MAX_METRIC_LEN: usize = 32;

/// Decode canonical JSON readings received at `receive_time`. A reading without `source`
/// takes the one its topic names (`topic.source`), if any.
pub fn decode_readings(
    bytes: &[u8],
    receive_time: Timestamp,
    window: &TimeWindow,
    topic: TopicNames<'_>,
) -> Result<Vec<Reading>, IngestError> {
    let value = crate::strict::parse(bytes)?;
    let mut readings = Vec::new();
    for_each_object(&value, |path, object| {
        decode_object(path, object, receive_time, window, topic, &mut readings)
    })?;
    Ok(readings)
}

/// Call `f` for the top-level object, or for each object of a top-level array, with the path
/// prefix used in error messages (`""` or `"[3]"`).
pub(crate) fn for_each_object(
    value: &Value,
    mut f: impl FnMut(&str, &Map<String, Value>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    match value {
        Value::Object(object) => f("", object),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| match item {
                Value::Object(object) => f(&format!("[{i}]"), object),
                other => Err(schema(
                    &format!("[{i}]"),
                    format!("expected an object, got {}", kind(other)),
                )),
            }),
        other => Err(schema(
            "",
            format!(
                "expected an object or an array of objects, got {}",
                kind(other)
            ),
        )),
    }
}

fn decode_object(
    path: &str,
    object: &Map<String, Value>,
    receive_time: Timestamp,
    window: &TimeWindow,
    topic: TopicNames<'_>,
    out: &mut Vec<Reading>,
) -> Result<(), IngestError> {
    for key in object.keys() {
        if !matches!(key.as_str(), "source" | "ts" | "interval" | "values") {
            return Err(schema(
                path,
                format!("unknown field {key:?} (expected source, ts, interval, values)"),
            ));
        }
    }
    let interval = match object.get("interval") {
        None => Interval::RealTime,
        Some(Value::String(name)) => Interval::parse(name).ok_or_else(|| {
            schema(
                path,
                format!("interval: {name:?} is not an interval (real_time, minute, hour, day)"),
            )
        })?,
        Some(other) => {
            return Err(schema(
                path,
                format!("interval: expected a string, got {}", kind(other)),
            ))
        }
    };
    let source = source_field(path, object, "source", topic.source)?;
    let event_time = timestamp_field(path, object, "ts", receive_time, window)?;
    let values = match object.get("values") {
        Some(Value::Object(values)) if !values.is_empty() => values,
        Some(Value::Object(_)) => {
            return Err(schema(
                path,
                "values: must hold at least one metric".to_owned(),
            ))
        }
        Some(other) => {
            return Err(schema(
                path,
                format!("values: expected an object, got {}", kind(other)),
            ))
        }
        None => return Err(schema(path, "missing field \"values\"".to_owned())),
    };
    for (code, entry) in values {
        if code.is_empty() || code.len() > MAX_METRIC_LEN || code.chars().any(char::is_control) {
            return Err(schema(
                path,
                format!(
                    "values: a metric code of {} bytes (1 to {MAX_METRIC_LEN} characters without control characters)",
                    code.len()
                ),
            ));
        }
        let at = || format!("values.{code}");
        let (value, flag, corrected) = match entry {
            Value::Number(n) => (number(path, &at(), n)?, DataFlag::N, None),
            Value::Object(fields) => {
                for key in fields.keys() {
                    if !matches!(key.as_str(), "v" | "flag" | "zs") {
                        return Err(schema(
                            path,
                            format!("{}: unknown field {key:?} (expected v, flag, zs)", at()),
                        ));
                    }
                }
                let corrected = match fields.get("zs") {
                    None => None,
                    Some(Value::Number(n)) if interval != Interval::RealTime => {
                        Some(number(path, &format!("{}.zs", at()), n)?)
                    }
                    Some(Value::Number(_)) => {
                        return Err(schema(
                            path,
                            format!(
                                "{}.zs: a corrected value belongs to an average (an interval other than real_time)",
                                at()
                            ),
                        ))
                    }
                    Some(other) => {
                        return Err(schema(
                            path,
                            format!("{}.zs: expected a number, got {}", at(), kind(other)),
                        ))
                    }
                };
                let value = match fields.get("v") {
                    Some(Value::Number(n)) => number(path, &at(), n)?,
                    Some(other) => {
                        return Err(schema(
                            path,
                            format!("{}.v: expected a number, got {}", at(), kind(other)),
                        ))
                    }
                    None => return Err(schema(path, format!("{}: missing \"v\"", at()))),
                };
                let flag = match fields.get("flag") {
                    None => DataFlag::N,
                    Some(Value::String(s)) => {
                        let mut chars = s.chars();
                        match (chars.next().and_then(DataFlag::from_char), chars.next()) {
                            (Some(flag), None) => flag,
                            _ => {
                                let reason = format!(
                                    "{}.flag: {s:?} is not a data flag (N F M S D C T B)",
                                    at()
                                );
                                return Err(schema(path, reason));
                            }
                        }
                    }
                    Some(other) => {
                        return Err(schema(
                            path,
                            format!("{}.flag: expected a string, got {}", at(), kind(other)),
                        ))
                    }
                };
                (value, flag, corrected)
            }
            other => {
                let reason = format!(
                    "{}: expected a number or {{\"v\": number, \"flag\": \"N\"}}, got {}",
                    at(),
                    kind(other)
                );
                return Err(schema(path, reason));
            }
        };
        out.push(Reading {
            source: source.clone(),
            metric: MetricCode::parse(code),
            value,
            flag,
            event_time,
            receive_time,
            interval,
            corrected,
        });
    }
    Ok(())
}

fn number(path: &str, field: &str, n: &serde_json::Number) -> Result<f64, IngestError> {
    match n.as_f64() {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(IngestError::new(
            Reason::NonFinite,
            at(path, format!("{field}: {n} is not a finite number")),
        )),
    }
}

/// A non-empty string field naming a source; when absent, `default` (the topic's) if given.
pub(crate) fn source_field(
    path: &str,
    object: &Map<String, Value>,
    name: &str,
    default: Option<&str>,
) -> Result<SourceId, IngestError> {
    match object.get(name) {
        None if default.is_some() => Ok(SourceId::new(default.unwrap_or_default())),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_SOURCE_LEN && !s.chars().any(char::is_control) =>
        {
            Ok(SourceId::new(s))
        }
        Some(Value::String(_)) => Err(schema(
            path,
            format!("{name}: must be 1 to {MAX_SOURCE_LEN} characters without control characters"),
        )),
        Some(other) => Err(schema(
            path,
            format!("{name}: expected a string, got {}", kind(other)),
        )),
        None => Err(schema(path, format!("missing field {name:?}"))),
    }
}

/// A timestamp field: RFC 3339 with an offset, or integer epoch milliseconds, within `window`
/// of `receive_time`.
pub(crate) fn timestamp_field(
    path: &str,
    object: &Map<String, Value>,
    name: &str,
    receive_time: Timestamp,
    window: &TimeWindow,
) -> Result<Timestamp, IngestError> {
    let ts = match object.get(name) {
        Some(Value::String(s)) => Timestamp::parse_rfc3339(s).ok_or_else(|| {
            let reason = format!("{name}: {s:?} is not an RFC 3339 time with an offset");
            IngestError::new(Reason::BadTimestamp, at(path, reason))
        })?,
        Some(Value::Number(n)) => n.as_i64().map(Timestamp).ok_or_else(|| {
            let reason = format!("{name}: {n} is not an integer of epoch milliseconds");
            IngestError::new(Reason::BadTimestamp, at(path, reason))
        })?,
        Some(other) => {
            return Err(schema(
                path,
                format!(
                    "{name}: expected a string or an integer, got {}",
                    kind(other)
                ),
            ))
        }
        None => return Err(schema(path, format!("missing field {name:?}"))),
    };
    window.check(ts, receive_time).map_err(|reason| {
        IngestError::new(
            Reason::TimestampOutOfRange,
            at(path, format!("{name}: {reason}")),
        )
    })?;
    Ok(ts)
}

pub(crate) fn schema(path: &str, reason: String) -> IngestError {
    IngestError::new(Reason::BadSchema, at(path, reason))
}

fn at(path: &str, reason: String) -> String {
    if path.is_empty() {
        reason
    } else {
        format!("{path}.{reason}")
    }
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use argus_model::Metric;

    use super::*;

    const NOW: Timestamp = Timestamp(1_795_672_800_000); // 2026-11-26T06:00:00Z

    fn decode(text: &str) -> Result<Vec<Reading>, IngestError> {
        decode_readings(
            text.as_bytes(),
            NOW,
            &TimeWindow::default(),
            TopicNames::default(),
        )
    }

    #[test]
    fn single_object_array_flags_and_unknown_codes() {
        let one = r#"{"source":"MN1","ts":"2026-11-26T13:59:00+08:00","values":{"a21026":12.5,"x999":{"v":3,"flag":"D"}}}"#;
        let readings = decode(one).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].metric, MetricCode::Known(Metric::So2));
        assert_eq!((readings[0].value, readings[0].flag), (12.5, DataFlag::N));
        assert_eq!(readings[0].event_time, Timestamp(NOW.0 - 60_000));
        assert_eq!(readings[1].metric.as_str(), "x999");
        assert_eq!(readings[1].flag, DataFlag::D);
        assert_eq!(readings[1].receive_time, NOW);

        let many = format!(
            r#"[{one}, {{"source":"MN2","ts":{},"values":{{"w01018":40}}}}]"#,
            NOW.0
        );
        let readings = decode(&many).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(readings.len(), 3);
        assert_eq!(
            (readings[2].source.as_str(), readings[2].event_time),
            ("MN2", NOW)
        );
    }

    #[test]
    fn an_interval_and_a_corrected_value_are_kept() {
        let text = r#"{"source":"MN1","ts":"2026-11-26T06:00:00Z","interval":"hour","values":{"a21026":{"v":30,"zs":36.5},"a19001":9}}"#;
        let r = decode(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| r.interval == Interval::Hour));
        let so2 = r.iter().find(|r| r.metric.as_str() == "a21026");
        assert_eq!(so2.and_then(|r| r.corrected), Some(36.5));
        let plain = decode(r#"{"source":"MN1","ts":"2026-11-26T06:00:00Z","values":{"a":1}}"#)
            .unwrap_or_default();
        assert_eq!(plain[0].interval, Interval::RealTime);
        assert_eq!(plain[0].corrected, None);
    }

    #[test]
    fn bad_inputs_are_refused_with_reason_and_place() {
        let cases: &[(&str, Reason, &str)] = &[
            ("{not json", Reason::BadJson, "not valid JSON"),
            ("42", Reason::BadSchema, "expected an object or an array"),
            (
                r#"{"source":"MN1","ts":0,"values":{"a":1},"extra":1}"#,
                Reason::BadSchema,
                "unknown field \"extra\"",
            ),
            (
                r#"{"source":7,"ts":0,"values":{"a":1}}"#,
                Reason::BadSchema,
                "source: expected a string",
            ),
            (
                r#"{"source":"MN1","ts":0,"interval":"week","values":{"a":1}}"#,
                Reason::BadSchema,
                "interval: \"week\" is not an interval",
            ),
            (
                r#"{"source":"MN1","ts":"2026-11-26T06:00:00Z","values":{"a":{"v":1,"zs":2}}}"#,
                Reason::BadSchema,
                "values.a.zs: a corrected value belongs to an average",
            ),
            (
                r#"{"source":"MN1","ts":"yesterday","values":{"a":1}}"#,
                Reason::BadTimestamp,
                "ts: \"yesterday\"",
            ),
            (
                r#"{"source":"MN1","ts":"2026-11-26T06:00:00Z","values":{"a":"1"}}"#,
                Reason::BadSchema,
                "values.a: expected a number",
            ),
            (
                r#"{"source":"MN1","ts":"2026-11-26T06:00:00Z","values":{"a":{"v":1,"flag":"Q"}}}"#,
                Reason::BadSchema,
                "values.a.flag",
            ),
            (
                r#"{"source":"MN1","ts":"2026-11-26T06:00:00Z","values":{"a":1e999}}"#,
                Reason::BadJson,
                "number out of range",
            ),
            (
                r#"{"source":"MN1","ts":"2126-11-26T06:00:00Z","values":{"a":1}}"#,
                Reason::TimestampOutOfRange,
                "in the future",
            ),
            (
                r#"{"source":"MN1","ts":0,"values":{"a":1}}"#,
                Reason::TimestampOutOfRange,
                "older than",
            ),
            (
                r#"[{"source":"MN1","ts":"2026-11-26T06:00:00Z","values":{}}]"#,
                Reason::BadSchema,
                "[0].values: must hold",
            ),
            // Regression (issue 11, item 8): a 200 KB metric code was accepted and stored.
            (
                &format!(
                    r#"{{"source":"MN1","ts":"2026-11-26T06:00:00Z","values":{{"{}":1}}}}"#,
                    "m".repeat(200_000)
                ),
                Reason::BadSchema,
                "a metric code of 200000 bytes",
            ),
        ];
        for (input, reason, detail) in cases {
            match decode(input) {
                Ok(r) => panic!("{input} accepted: {r:?}"),
                Err(e) => {
                    assert_eq!(e.reason, *reason, "{input}: {e}");
                    assert!(e.detail.contains(detail), "{input}: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod schema_examples {
    use super::*;
    use crate::events::decode_events;
    use crate::TopicNames;

    /// The examples in the documented JSON Schemas decode: the documentation cannot drift.
    #[test]
    fn documented_examples_decode() {
        let window = TimeWindow {
            max_future_ms: i64::MAX,
            max_age_ms: i64::MAX,
        };
        let now = Timestamp(1_795_672_800_000);
        for (schema, is_events) in [
            (include_str!("../../../config/reading.schema.json"), false),
            (include_str!("../../../config/event.schema.json"), true),
        ] {
            let schema: Value = serde_json::from_str(schema).unwrap_or_else(|e| panic!("{e}"));
            let examples = schema["examples"].as_array().cloned().unwrap_or_default();
            assert!(!examples.is_empty());
            for example in examples {
                let bytes = example.to_string();
                let decoded = if is_events {
                    decode_events(bytes.as_bytes(), now, &window, TopicNames::default())
                        .map(|r| r.len())
                } else {
                    decode_readings(bytes.as_bytes(), now, &window, TopicNames::default())
                        .map(|r| r.len())
                };
                assert!(matches!(decoded, Ok(n) if n > 0), "{bytes}: {decoded:?}");
            }
        }
    }
}
