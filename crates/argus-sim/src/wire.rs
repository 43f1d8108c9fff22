//! What the generator hands to the senders: messages with their route, and the payload
//! encoders (HJ 212 packets with argus-hj212's encoder, canonical JSON readings, events).

use argus_hj212::{CpBuilder, FieldKind, Header};
use argus_model::time::CHINA_OFFSET_SECS;
use argus_model::{DataFlag, Metric, MetricDomain, Timestamp};
use serde_json::{json, Map, Value};

use crate::SimError;

/// The transport a message travels by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// HJ 212 over TCP, one connection per data logger.
    Hj212Tcp,
    /// MQTT, QoS 1.
    Mqtt,
    /// Kafka.
    Kafka,
}

impl Transport {
    /// `hj212_tcp`, `mqtt` or `kafka`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Hj212Tcp => "hj212_tcp",
            Transport::Mqtt => "mqtt",
            Transport::Kafka => "kafka",
        }
    }
}

/// What a payload holds, as Argus decodes it (`argus_ingest::PayloadKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// Canonical JSON readings.
    JsonReadings,
    /// Enterprise events as JSON.
    Events,
    /// One raw HJ 212 packet.
    Hj212,
}

/// How one message travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// HJ 212 over TCP on the connection of data logger `logger` (its MN); `reply`: the packet
    /// asks for a 9014 data reply (Flag bit A), which the sender waits for.
    Hj212Tcp {
        /// The data logger (MN) whose connection carries it.
        logger: String,
        /// Whether a reply is asked for.
        reply: bool,
    },
    /// MQTT topic `argus/v1/readings/{enterprise}/{source}`: canonical JSON readings.
    MqttReadings {
        /// The topic.
        topic: String,
    },
    /// MQTT topic `argus/v1/hj212/{source}`: one raw HJ 212 packet.
    MqttHj212 {
        /// The topic.
        topic: String,
    },
    /// MQTT topic `argus/v1/events/{enterprise}`: enterprise events.
    MqttEvents {
        /// The topic.
        topic: String,
    },
    /// Kafka `argus.readings`, keyed by source.
    KafkaReadings {
        /// The message key.
        key: String,
    },
    /// Kafka `argus.hj212`, keyed by source.
    KafkaHj212 {
        /// The message key.
        key: String,
    },
    /// Kafka `argus.events`, keyed by enterprise.
    KafkaEvents {
        /// The message key.
        key: String,
    },
}

impl Route {
    /// The transport.
    pub fn transport(&self) -> Transport {
        match self {
            Route::Hj212Tcp { .. } => Transport::Hj212Tcp,
            Route::MqttReadings { .. } | Route::MqttHj212 { .. } | Route::MqttEvents { .. } => {
                Transport::Mqtt
            }
            Route::KafkaReadings { .. } | Route::KafkaHj212 { .. } | Route::KafkaEvents { .. } => {
                Transport::Kafka
            }
        }
    }

    /// How Argus decodes the payload.
    pub fn payload_kind(&self) -> PayloadKind {
        match self {
            Route::Hj212Tcp { .. } | Route::MqttHj212 { .. } | Route::KafkaHj212 { .. } => {
                PayloadKind::Hj212
            }
            Route::MqttReadings { .. } | Route::KafkaReadings { .. } => PayloadKind::JsonReadings,
            Route::KafkaEvents { .. } | Route::MqttEvents { .. } => PayloadKind::Events,
        }
    }

    /// The route of an enterprise event: Kafka `argus.events` when Kafka is a target, else
    /// MQTT `argus/v1/events/{enterprise}`; none without either.
    pub(crate) fn event(transports: crate::Transports, enterprise: &str) -> Option<Route> {
        if transports.kafka {
            Some(Route::KafkaEvents {
                key: enterprise.to_owned(),
            })
        } else if transports.mqtt {
            Some(Route::MqttEvents {
                topic: format!("argus/v1/events/{}", topic_level(enterprise)),
            })
        } else {
            None
        }
    }
}

/// A topic level made of `text`: MQTT wildcards and separators replaced.
pub(crate) fn topic_level(text: &str) -> String {
    text.chars()
        .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })
        .collect()
}

/// One message to send: at simulated time `at` (its data's event time), by `route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Simulated send time.
    pub at: Timestamp,
    /// How it travels.
    pub route: Route,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// One measured value of a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub metric: Metric,
    pub value: f64,
    pub flag: DataFlag,
    /// The O2-corrected value (HJ 212 `ZsRtd`), for flue gas pollutants.
    pub corrected: Option<f64>,
}

/// A value as loggers print it: four significant digits.
pub(crate) fn round(value: f64) -> f64 {
    text(value).parse().unwrap_or(value)
}

/// The text of a value: four significant digits, no exponent.
pub(crate) fn text(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 8) as usize;
    let s = format!("{value:.decimals$}");
    if s == "-0" || s.chars().all(|c| matches!(c, '-' | '0' | '.')) {
        "0".to_owned()
    } else {
        s
    }
}

/// China time `yyyyMMddHHmmss` (HJ 212 DataTime), with `millis` the 3 extra QN digits.
fn china(t: Timestamp, millis: bool) -> String {
    let c = t.to_civil(CHINA_OFFSET_SECS);
    let base = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    if millis {
        format!("{base}{:03}", c.millisecond)
    } else {
        base
    }
}

/// The HJ 212 system code of a point's data.
fn system_code(samples: &[Sample]) -> &'static str {
    match samples.first().map(|s| s.metric.domain()) {
        Some(MetricDomain::Air) => "31",
        Some(MetricDomain::Water) => "32",
        _ => "39",
    }
}

/// A real-time data packet (CN 2011, HJ 212-2017): `Rtd`, `ZsRtd` for O2-corrected pollutants
/// and `Flag` of each factor. `reply` sets Flag bit A.
pub(crate) fn hj212_realtime(
    mn: &str,
    pw: Option<&str>,
    t: Timestamp,
    samples: &[Sample],
    reply: bool,
) -> Result<Vec<u8>, SimError> {
    let mut cp = CpBuilder::new().param("DataTime", &china(t, false));
    for s in samples {
        let value = text(s.value);
        let flag = s.flag.as_char().to_string();
        let corrected = s.corrected.map(text);
        let mut fields = vec![(FieldKind::Rtd, value.as_str())];
        if let Some(z) = &corrected {
            fields.push((FieldKind::ZsRtd, z.as_str()));
        }
        fields.push((FieldKind::Flag, flag.as_str()));
        cp = cp.factor(s.metric.code(), &fields);
    }
    encode_packet(mn, pw, t, "2011", system_code(samples), reply, cp)
}

/// A minute (2051) or hourly (2061) data packet: `Avg`, `Min`, `Max`, `ZsAvg`, `Flag` per
/// factor, DataTime the start of the period.
pub(crate) fn hj212_period(
    mn: &str,
    pw: Option<&str>,
    cn: &str,
    period_start: Timestamp,
    sent: Timestamp,
    stats: &[(Metric, [f64; 4], DataFlag)],
    reply: bool,
) -> Result<Vec<u8>, SimError> {
    let mut cp = CpBuilder::new().param("DataTime", &china(period_start, false));
    let domain = stats.first().map(|s| s.0.domain());
    for (metric, [avg, min, max, zs], flag) in stats {
        let has_zs = *zs > 0.0;
        let (avg, min, max, zs) = (text(*avg), text(*min), text(*max), text(*zs));
        let flag = flag.as_char().to_string();
        let mut fields = vec![
            (FieldKind::Avg, avg.as_str()),
            (FieldKind::Min, min.as_str()),
            (FieldKind::Max, max.as_str()),
        ];
        if has_zs {
            fields.push((FieldKind::ZsAvg, zs.as_str()));
        }
        fields.push((FieldKind::Flag, flag.as_str()));
        cp = cp.factor(metric.code(), &fields);
    }
    let st = match domain {
        Some(MetricDomain::Water) => "32",
        _ => "31",
    };
    encode_packet(mn, pw, sent, cn, st, reply, cp)
}

fn encode_packet(
    mn: &str,
    pw: Option<&str>,
    sent: Timestamp,
    cn: &str,
    st: &str,
    reply: bool,
    cp: CpBuilder,
) -> Result<Vec<u8>, SimError> {
    let encode_error = |source| SimError::Encode {
        mn: mn.to_owned(),
        source,
    };
    let cp = cp.finish().map_err(encode_error)?;
    let qn = china(sent, true);
    let header = Header {
        qn: Some(&qn),
        st: Some(st),
        cn,
        pw,
        mn,
        // Version bits 1 (HJ 212-2017), A bit when a reply is wanted.
        flag: Some(4 | u16::from(reply)),
        pnum: None,
        pno: None,
    };
    argus_hj212::encode(&header, &cp).map_err(encode_error)
}

/// Canonical JSON readings of one tick: one object, `ts` as epoch ms or RFC 3339.
pub(crate) fn json_readings(
    source: &str,
    t: Timestamp,
    rfc3339: bool,
    samples: &[Sample],
) -> Vec<u8> {
    let mut values = Map::new();
    for s in samples {
        let v = if s.flag == DataFlag::N {
            json!(s.value)
        } else {
            json!({"v": s.value, "flag": s.flag.as_char().to_string()})
        };
        values.insert(s.metric.code().to_owned(), v);
    }
    let ts = if rfc3339 {
        Value::String(t.to_rfc3339())
    } else {
        json!(t.as_millis())
    };
    let object = json!({"source": source, "ts": ts, "values": values});
    object.to_string().into_bytes()
}

/// A `power` event (a power meter reading sent as an event).
pub(crate) fn power_event(source: &str, t: Timestamp, kw: f64) -> Vec<u8> {
    json!({"type": "power", "source": source, "ts": t.as_millis(), "kw": kw})
        .to_string()
        .into_bytes()
}

/// A `power_cut_feedback` event.
pub(crate) fn feedback_event(
    source: &str,
    enterprise: &str,
    t: Timestamp,
    powered: bool,
) -> Vec<u8> {
    json!({"type": "power_cut_feedback", "source": source, "ts": t.as_millis(), "powered": powered, "enterprise": enterprise})
        .to_string()
        .into_bytes()
}

/// A `production_state` event.
pub(crate) fn production_event(
    source: &str,
    enterprise: &str,
    t: Timestamp,
    running: bool,
) -> Vec<u8> {
    json!({"type": "production_state", "source": source, "ts": t.as_millis(), "running": running, "enterprise": enterprise})
        .to_string()
        .into_bytes()
}

/// A `maintenance_notice` event filed at `t` for `[from, to)` on `points`.
pub(crate) fn notice_event(
    enterprise: &str,
    t: Timestamp,
    from: Timestamp,
    to: Timestamp,
    points: &[&str],
    reason: &str,
) -> Vec<u8> {
    json!({"type": "maintenance_notice", "enterprise": enterprise, "ts": t.as_millis(),
           "from": from.to_rfc3339(), "to": to.to_rfc3339(), "points": points, "reason": reason})
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_four_significant_digits() {
        assert_eq!(text(12.3456), "12.35");
        assert_eq!(text(0.00123456), "0.001235");
        assert_eq!(text(123456.7), "123457");
        assert_eq!(text(-2.4), "-2.400");
        assert_eq!(text(0.0), "0");
        assert_eq!(round(7.77777), 7.778);
    }
}
