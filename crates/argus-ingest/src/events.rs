//! Enterprise events as JSON (`config/event.schema.json`): one object or an array, each with a
//! `type`:
//! - `production_state`: `{"type", "source", "ts", "running": bool, "enterprise"?}`
//! - `power`: `{"type", "source", "ts", "kw": number}`: a power meter reading (becomes a Reading)
//! - `maintenance_notice`: `{"type", "enterprise", "from", "to", "points"?: [..], "reason", "ts"?}`
//! - `power_cut_feedback`: `{"type", "source", "ts", "powered": bool, "enterprise"?}`

use argus_model::{DataFlag, Event, EventKind, Metric, MetricCode, Reading, Timestamp};
use serde_json::{Map, Value};

use crate::decode::{IngestError, TimeWindow, TopicNames};
use crate::json::{for_each_object, kind, schema, source_field, timestamp_field};
use crate::{Reason, Record};

/// Decode enterprise events received at `receive_time`. An event without `enterprise` takes the
/// one its topic names (`topic.enterprise`), if any.
pub fn decode_events(
    bytes: &[u8],
    receive_time: Timestamp,
    window: &TimeWindow,
    topic: TopicNames<'_>,
) -> Result<Vec<Record>, IngestError> {
    let value = crate::strict::parse(bytes)?;
    let mut records = Vec::new();
    for_each_object(&value, |path, object| {
        records.push(decode_event(path, object, receive_time, window, topic)?);
        Ok(())
    })?;
    Ok(records)
}

fn decode_event(
    path: &str,
    o: &Map<String, Value>,
    receive_time: Timestamp,
    window: &TimeWindow,
    topic: TopicNames<'_>,
) -> Result<Record, IngestError> {
    let kind_name = match o.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(schema(
                path,
                format!("type: expected a string, got {}", kind(other)),
            ))
        }
        None => return Err(schema(path, "missing field \"type\"".to_owned())),
    };
    let allowed: &[&str] = match kind_name {
        "production_state" => &["type", "source", "ts", "running", "enterprise"],
        "power" => &["type", "source", "ts", "kw"],
        "maintenance_notice" => &["type", "enterprise", "from", "to", "points", "reason", "ts"],
        "power_cut_feedback" => &["type", "source", "ts", "powered", "enterprise"],
        other => {
            let reason = format!(
                "type: unknown event type {other:?} (expected production_state, power, maintenance_notice, power_cut_feedback)"
            );
            return Err(schema(path, reason));
        }
    };
    if let Some(key) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(schema(
            path,
            format!("unknown field {key:?} for a {kind_name} event"),
        ));
    }
    let enterprise = match o.get("enterprise") {
        None => topic.enterprise.map(str::to_owned),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            return Err(schema(
                path,
                format!(
                    "enterprise: expected a non-empty string, got {}",
                    kind(other)
                ),
            ))
        }
    };
    let boolean = |name: &str| match o.get(name) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(schema(
            path,
            format!("{name}: expected true or false, got {}", kind(other)),
        )),
        None => Err(schema(path, format!("missing field {name:?}"))),
    };
    let event = |source, event_time, kind| Event {
        enterprise_id: enterprise.clone(),
        source,
        event_time,
        receive_time,
        kind,
    };
    match kind_name {
        "production_state" => {
            let source = source_field(path, o, "source", topic.source)?;
            let ts = timestamp_field(path, o, "ts", receive_time, window)?;
            Ok(Record::Event(event(
                Some(source),
                ts,
                EventKind::ProductionState {
                    running: boolean("running")?,
                },
            )))
        }
        "power_cut_feedback" => {
            let source = source_field(path, o, "source", topic.source)?;
            let ts = timestamp_field(path, o, "ts", receive_time, window)?;
            Ok(Record::Event(event(
                Some(source),
                ts,
                EventKind::PowerCutFeedback {
                    powered: boolean("powered")?,
                },
            )))
        }
        "power" => {
            let source = source_field(path, o, "source", topic.source)?;
            let event_time = timestamp_field(path, o, "ts", receive_time, window)?;
            let value = match o.get("kw") {
                Some(Value::Number(n)) => {
                    n.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
                        IngestError::new(
                            Reason::NonFinite,
                            format!("{path}kw: {n} is not a finite number"),
                        )
                    })?
                }
                Some(other) => {
                    return Err(schema(
                        path,
                        format!("kw: expected a number, got {}", kind(other)),
                    ))
                }
                None => return Err(schema(path, "missing field \"kw\"".to_owned())),
            };
            Ok(Record::Reading(Reading {
                source,
                metric: MetricCode::Known(Metric::ActivePower),
                value,
                flag: DataFlag::N,
                event_time,
                receive_time,
                interval: argus_model::Interval::RealTime,
                corrected: None,
            }))
        }
        _ => {
            if enterprise.is_none() {
                return Err(schema(
                    path,
                    "a maintenance_notice names its \"enterprise\"".to_owned(),
                ));
            }
            // A notice may announce a window in the future: bound it by the window's future limit
            // only on `from` (when it was filed is `ts`, defaulting to the time of receipt).
            let filed = if o.contains_key("ts") {
                timestamp_field(path, o, "ts", receive_time, window)?
            } else {
                receive_time
            };
            let from = timestamp_field(
                path,
                o,
                "from",
                receive_time,
                &TimeWindow {
                    max_future_ms: i64::MAX,
                    ..*window
                },
            )?;
            let to = timestamp_field(
                path,
                o,
                "to",
                receive_time,
                &TimeWindow {
                    max_future_ms: i64::MAX,
                    ..*window
                },
            )?;
            if to <= from {
                return Err(schema(
                    path,
                    format!("to ({to}) must be after from ({from})"),
                ));
            }
            let points = match o.get("points") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::String(s) if !s.is_empty() => Ok(argus_model::SourceId::new(s)),
                        other => Err(schema(
                            path,
                            format!(
                                "points[{i}]: expected a non-empty string, got {}",
                                kind(other)
                            ),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(schema(
                        path,
                        format!("points: expected an array, got {}", kind(other)),
                    ))
                }
            };
            let reason = match o.get("reason") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                Some(other) if !matches!(other, Value::String(_)) => {
                    return Err(schema(
                        path,
                        format!("reason: expected a string, got {}", kind(other)),
                    ))
                }
                _ => {
                    return Err(schema(
                        path,
                        "a maintenance_notice gives a non-empty \"reason\"".to_owned(),
                    ))
                }
            };
            Ok(Record::Event(event(
                None,
                filed,
                EventKind::MaintenanceNotice {
                    from,
                    to,
                    points,
                    reason,
                    request: String::new(),
                },
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_795_672_800_000);

    fn decode(text: &str) -> Result<Vec<Record>, IngestError> {
        decode_events(
            text.as_bytes(),
            NOW,
            &TimeWindow::default(),
            TopicNames::default(),
        )
    }

    #[test]
    fn every_event_type_decodes() {
        let text = r#"[
            {"type":"production_state","source":"LINE1","ts":"2026-11-26T06:00:00Z","running":true,"enterprise":"E001"},
            {"type":"power","source":"METER1","ts":1795672800000,"kw":812.5},
            {"type":"maintenance_notice","enterprise":"E001","from":"2026-11-27T00:00:00+08:00","to":"2026-11-27T08:00:00+08:00","points":["MN1"],"reason":"FGD overhaul"},
            {"type":"power_cut_feedback","source":"MINE01-PWR-WF1","ts":"2026-11-26T06:00:00Z","powered":false}
        ]"#;
        let records = decode(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 4);
        assert!(
            matches!(&records[0], Record::Event(e) if e.kind == EventKind::ProductionState { running: true } && e.enterprise_id.as_deref() == Some("E001"))
        );
        assert!(
            matches!(&records[1], Record::Reading(r) if r.value == 812.5 && r.metric == MetricCode::Known(Metric::ActivePower))
        );
        match &records[2] {
            Record::Event(Event {
                kind:
                    EventKind::MaintenanceNotice {
                        from, to, points, ..
                    },
                event_time,
                ..
            }) => {
                assert_eq!(to.0 - from.0, 8 * 3_600_000);
                assert_eq!(points.len(), 1);
                assert_eq!(*event_time, NOW);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&records[3], Record::Event(e) if e.kind == EventKind::PowerCutFeedback { powered: false })
        );
    }

    #[test]
    fn bad_events_are_refused_with_their_reason() {
        let cases = [
            (
                r#"{"type":"explosion","source":"A","ts":0}"#,
                "unknown event type",
            ),
            (
                r#"{"type":"power","source":"A","ts":1795672800000,"kw":"lots"}"#,
                "kw: expected a number",
            ),
            (
                r#"{"type":"production_state","source":"A","ts":1795672800000,"running":"yes"}"#,
                "running: expected true or false",
            ),
            (
                r#"{"type":"maintenance_notice","from":"2026-11-27T00:00:00Z","to":"2026-11-28T00:00:00Z","reason":"x"}"#,
                "names its \"enterprise\"",
            ),
            (
                r#"{"type":"maintenance_notice","enterprise":"E1","from":"2026-11-27T00:00:00Z","to":"2026-11-26T00:00:00Z","reason":"x"}"#,
                "must be after",
            ),
            (
                r#"{"type":"power","source":"A","ts":1795672800000,"kw":1,"colour":1}"#,
                "unknown field \"colour\"",
            ),
        ];
        for (input, detail) in cases {
            match decode(input) {
                Ok(r) => panic!("{input} accepted: {r:?}"),
                Err(e) => assert!(e.to_string().contains(detail), "{input}: {e}"),
            }
        }
    }
}
