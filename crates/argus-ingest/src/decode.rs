//! The decoder sources call: one payload in, canonical records or an [`IngestError`] out, and
//! the error turned into a [`DeadLetter`] by the caller with its transport and origin.

use std::sync::Arc;

use argus_model::{Reading, Registry, Timestamp};

use crate::{events, json, DeadLetter, Reason, Record, Transport};

/// A payload that cannot become records: the reason (bounded, for metrics) and the details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct IngestError {
    /// Bounded reason code.
    pub reason: Reason,
    /// What exactly, with position.
    pub detail: String,
}

impl IngestError {
    /// An error with its reason and detail.
    pub fn new(reason: Reason, detail: String) -> Self {
        Self { reason, detail }
    }
}

/// How far from the time of receipt an event time may lie before it is refused as absurd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Furthest into the future, in ms (logger clocks drift; a day ahead is a broken clock).
    pub max_future_ms: i64,
    /// Furthest into the past, in ms (loggers backfill after outages, but not for years).
    pub max_age_ms: i64,
}

impl Default for TimeWindow {
    fn default() -> Self {
        Self {
            max_future_ms: 3_600_000,
            max_age_ms: 400 * 86_400_000,
        }
    }
}

impl TimeWindow {
    /// Whether `ts` is plausible when received at `now`; the error says how far off it is.
    pub fn check(&self, ts: Timestamp, now: Timestamp) -> Result<(), String> {
        let ahead = ts.0.saturating_sub(now.0);
        if ahead > self.max_future_ms {
            return Err(format!(
                "{ts} is {} s in the future (at most {} s allowed)",
                ahead / 1000,
                self.max_future_ms / 1000
            ));
        }
        let behind = now.0.saturating_sub(ts.0);
        if behind > self.max_age_ms {
            return Err(format!(
                "{ts} is older than {} days",
                self.max_age_ms / 86_400_000
            ));
        }
        Ok(())
    }
}

/// What kind of payload a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// Canonical JSON readings.
    JsonReadings,
    /// Enterprise events as JSON.
    Events,
    /// One raw HJ 212 packet.
    Hj212,
}

/// The names a payload's topic gives (MQTT `argus/v1/readings/{enterprise}/{source}`,
/// `argus/v1/hj212/{source}`, `argus/v1/events/{enterprise}`): a payload may omit them and take
/// the topic's, and must not name others ([`Reason::TopicMismatch`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicNames<'a> {
    /// The enterprise the topic names.
    pub enterprise: Option<&'a str>,
    /// The source (MN) the topic names.
    pub source: Option<&'a str>,
}

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Plausible event times.
    pub window: TimeWindow,
    /// Largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Largest HJ 212 data segment accepted, in bytes (the standard says 1024; the wild sends more).
    pub max_hj212_data_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            window: TimeWindow::default(),
            max_payload_bytes: 1 << 20,
            max_hj212_data_bytes: 4096,
        }
    }
}

/// Decodes payloads of every kind, checking HJ 212 passwords against the registry.
#[derive(Debug, Clone)]
pub struct Decoder {
    registry: Arc<Registry>,
    options: DecodeOptions,
    hj212: argus_hj212::DecodeOptions,
}

impl Decoder {
    /// A decoder over `registry` with `options`.
    pub fn new(registry: Arc<Registry>, options: DecodeOptions) -> Self {
        let hj212 = argus_hj212::DecodeOptions {
            max_data_len: options.max_hj212_data_bytes,
        };
        Self {
            registry,
            options,
            hj212,
        }
    }

    /// The registry the decoder checks against.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Decode one payload received at `receive_time` on a topic that names nothing (Kafka).
    pub fn decode(
        &self,
        kind: PayloadKind,
        bytes: &[u8],
        receive_time: Timestamp,
    ) -> Result<Vec<Record>, IngestError> {
        self.decode_on_topic(kind, bytes, receive_time, TopicNames::default())
    }

    /// Decode one payload received at `receive_time` on a topic naming `topic`: what the
    /// payload omits it takes from the topic, and what it names must be the topic's
    /// ([`Decoder::check_topic`]).
    pub fn decode_on_topic(
        &self,
        kind: PayloadKind,
        bytes: &[u8],
        receive_time: Timestamp,
        topic: TopicNames<'_>,
    ) -> Result<Vec<Record>, IngestError> {
        let records = self.decode_payload(kind, bytes, receive_time, topic)?;
        if topic != TopicNames::default() {
            self.check_topic(&records, topic.enterprise, topic.source)?;
        }
        Ok(records)
    }

    fn decode_payload(
        &self,
        kind: PayloadKind,
        bytes: &[u8],
        receive_time: Timestamp,
        topic: TopicNames<'_>,
    ) -> Result<Vec<Record>, IngestError> {
        if bytes.len() > self.options.max_payload_bytes {
            let detail = format!(
                "payload of {} bytes exceeds the limit of {}",
                bytes.len(),
                self.options.max_payload_bytes
            );
            return Err(IngestError::new(Reason::Oversize, detail));
        }
        match kind {
            PayloadKind::JsonReadings => {
                let window = &self.options.window;
                let readings = json::decode_readings(bytes, receive_time, window, topic)?;
                Ok(readings.into_iter().map(Record::Reading).collect())
            }
            PayloadKind::Events => {
                let window = &self.options.window;
                let records = events::decode_events(bytes, receive_time, window, topic)?;
                self.check_registered(&records)?;
                Ok(records)
            }
            PayloadKind::Hj212 => {
                let packet = self.decode_hj212_packet(bytes)?;
                let readings = self.hj212_readings(&packet, receive_time)?;
                Ok(readings.into_iter().map(Record::Reading).collect())
            }
        }
    }

    /// Decode an HJ 212 packet and check its PW against the registry (a source missing from the
    /// registry is accepted: its readings are kept and flagged as unregistered downstream).
    pub fn decode_hj212_packet<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Result<argus_hj212::Packet<'a>, IngestError> {
        let packet = argus_hj212::decode(bytes, &self.hj212).map_err(|e| {
            let reason = match e.reason_code() {
                "bad_length" => Reason::BadLength,
                "too_long" => Reason::TooLong,
                "bad_crc" => Reason::BadCrc,
                "bad_field" => Reason::BadField,
                _ => Reason::BadFrame,
            };
            IngestError::new(reason, e.to_string())
        })?;
        if let Some(expected) = self
            .registry
            .point(packet.mn())
            .and_then(|p| p.password.as_deref())
        {
            if packet.pw() != Some(expected) {
                let detail = format!("PW of MN {} does not match the registry", packet.mn());
                return Err(IngestError::new(Reason::BadPassword, detail));
            }
        }
        Ok(packet)
    }

    /// The readings of a decoded HJ 212 packet, with event times checked for plausibility.
    pub fn hj212_readings(
        &self,
        packet: &argus_hj212::Packet<'_>,
        receive_time: Timestamp,
    ) -> Result<Vec<Reading>, IngestError> {
        let readings = argus_hj212::readings(packet, receive_time).map_err(|e| {
            let reason = match e.reason_code() {
                "missing_data_time" => Reason::BadTimestamp,
                "repeated_field" => Reason::DuplicateKey,
                _ => Reason::BadValue,
            };
            IngestError::new(reason, e.to_string())
        })?;
        if let Some(r) = readings.first() {
            self.options
                .window
                .check(r.event_time, receive_time)
                .map_err(|reason| {
                    IngestError::new(Reason::TimestampOutOfRange, format!("DataTime: {reason}"))
                })?;
        }
        Ok(readings)
    }

    /// Refuse events that name an enterprise or a source the registry does not know, or
    /// neither: detection could not place them, so they would vanish.
    fn check_registered(&self, records: &[Record]) -> Result<(), IngestError> {
        for record in records {
            let Record::Event(e) = record else { continue };
            let unknown = |what: &str, name: &str| {
                IngestError::new(
                    Reason::Unregistered,
                    format!(
                        "the event names {what} {:?}, which the registry does not know",
                        crate::bounded(name, 64)
                    ),
                )
            };
            if let Some(enterprise) = &e.enterprise_id {
                if self.registry.enterprise(enterprise).is_none() {
                    return Err(unknown("enterprise", enterprise));
                }
            }
            if let Some(source) = &e.source {
                if self.registry.point(source.as_str()).is_none() {
                    return Err(unknown("source", source.as_str()));
                }
            }
            if e.enterprise_id.is_none() && e.source.is_none() {
                return Err(IngestError::new(
                    Reason::Unregistered,
                    "the event names neither an enterprise nor a source".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Check decoded records against the names of the topic they came on (MQTT
    /// `argus/v1/readings/{enterprise}/{source}`, `argus/v1/hj212/{source}`,
    /// `argus/v1/events/{enterprise}`): every reading must be of `source` when the topic names
    /// one, and of a point of `enterprise` (when the registry knows the point); every event
    /// must be of `enterprise`. A feed allowed to publish on one enterprise's topics cannot
    /// write another's data.
    pub fn check_topic(
        &self,
        records: &[Record],
        enterprise: Option<&str>,
        source: Option<&str>,
    ) -> Result<(), IngestError> {
        let mismatch = |what: &str, named: &str, topic: &str| {
            IngestError::new(
                Reason::TopicMismatch,
                format!(
                    "the payload names {what} {:?}, its topic {:?}",
                    crate::bounded(named, 64),
                    crate::bounded(topic, 64)
                ),
            )
        };
        for record in records {
            let (record_source, record_enterprise) = match record {
                Record::Reading(r) => (Some(r.source.as_str()), None),
                Record::Event(e) => (
                    e.source.as_ref().map(|s| s.as_str()),
                    e.enterprise_id.as_deref(),
                ),
            };
            if let (Some(topic), Some(named)) = (source, record_source) {
                if topic != named {
                    return Err(mismatch("source", named, topic));
                }
            }
            let Some(topic) = enterprise else { continue };
            if let Some(named) = record_enterprise.filter(|e| *e != topic) {
                return Err(mismatch("enterprise", named, topic));
            }
            let owner = record_source
                .and_then(|s| self.registry.point(s))
                .map(|p| p.enterprise_id.as_str());
            if let Some(owner) = owner.filter(|e| *e != topic) {
                let point = record_source.unwrap_or_default();
                return Err(mismatch(
                    "a point of enterprise",
                    &format!("{owner} ({point})"),
                    topic,
                ));
            }
        }
        Ok(())
    }

    /// Decode a payload into `records`, or record it in `dead_letters` with its origin. The
    /// origin is built only for a dead letter, so the happy path formats nothing.
    #[allow(clippy::too_many_arguments)] // the two outputs are the sources' batch buffers
    pub fn decode_into(
        &self,
        transport: Transport,
        origin: impl FnOnce() -> String,
        kind: PayloadKind,
        bytes: &[u8],
        receive_time: Timestamp,
        records: &mut Vec<Record>,
        dead_letters: &mut Vec<DeadLetter>,
    ) {
        match self.decode(kind, bytes, receive_time) {
            Ok(decoded) => records.extend(decoded),
            Err(e) => dead_letters.push(DeadLetter::new(
                transport,
                origin(),
                e.reason,
                e.detail,
                receive_time,
                bytes,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = r#"
[county]
name = "t"
[[standards]]
id = "s"
name = "s"
[[towns]]
id = "t"
name = "t"
[[departments]]
id = "d"
name = "d"
head = "h"
[[teams]]
town = "t"
department = "d"
name = "n"
[[enterprises]]
id = "E"
name = "e"
industry = "boiler"
town = "t"
departments = ["d"]
[[enterprises.points]]
mn = "Y80110010000010"
name = "stack"
kind = "flue_gas_outlet"
pw = "654321"
o2_reference_pct = 9.0
limits = [{ metric = "a21026", basis = "hourly_avg", max = 200.0, standard = "s" }]
"#;

    /// A packet of the conformance set (MN Y80110010000010, PW 123456, DataTime 2019-10-12).
    const PACKET: &str = "##0317QN=20191012133710130;ST=22;CN=2011;PW=123456;MN=Y80110010000010;Flag=4;CP=&&DataTime=20191012133710;a21005-Rtd=0.00,a21005-Flag=N;a21004-Rtd=0.00,a21004-Flag=N;a21007-Rtd=0.033,a21007-Flag=N;a21006-Rtd=0.036,a21006-Flag=N;a21001-Rtd=25.40,a21001-Flag=N;a21003-Rtd=101.94,a21003-Flag=N;a21002-Rtd=49.20,a21002-Flag=N&&cc01\r\n";

    /// Regression (issue 11, item 8): events for an unknown enterprise were accepted and then
    /// vanished (neither stored nor dead-lettered).
    #[test]
    fn events_naming_what_the_registry_does_not_know_are_refused() {
        let d = decoder(REGISTRY);
        let at = Timestamp(1_795_622_400_000);
        let event = |body: &str| d.decode(PayloadKind::Events, body.as_bytes(), at);
        let known = r#"{"type": "maintenance_notice", "enterprise": "E", "from": "2026-11-26T00:00:00Z", "to": "2026-11-26T08:00:00Z", "reason": "overhaul", "ts": 1795622400000}"#;
        assert!(event(known).is_ok(), "{:?}", event(known));
        let state = r#"{"type": "production_state", "source": "Y80110010000010", "ts": 1795622400000, "running": true}"#;
        assert!(event(state).is_ok(), "{:?}", event(state));
        for (body, says) in [
            (known.replace("\"E\"", "\"E999\""), "enterprise \"E999\""),
            (
                r#"{"type": "power_cut_feedback", "source": "NOBODY", "ts": 1795622400000, "powered": true}"#.to_owned(),
                "source \"NOBODY\"",
            ),
        ] {
            match event(&body) {
                Err(e) => {
                    assert_eq!(e.reason, Reason::Unregistered, "{body}");
                    assert!(e.detail.contains(says), "{}", e.detail);
                }
                Ok(r) => panic!("{body} accepted: {r:?}"),
            }
        }
    }

    /// Issue 11, item 7: a payload on a topic that names its enterprise and source may omit
    /// them; naming others is a mismatch.
    #[test]
    fn a_payload_takes_the_names_its_topic_gives() {
        let d = decoder(REGISTRY);
        let at = Timestamp(1_795_622_400_000);
        let topic = TopicNames {
            enterprise: Some("E"),
            source: Some("Y80110010000010"),
        };
        let reading = br#"{"ts": 1795622400000, "values": {"a21026": 12}}"#;
        let records = d
            .decode_on_topic(PayloadKind::JsonReadings, reading, at, topic)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(records.as_slice(), [Record::Reading(r)] if r.source.as_str() == "Y80110010000010"),
            "{records:?}"
        );
        // Without a topic the source is required.
        let bare = d.decode(PayloadKind::JsonReadings, reading, at);
        assert_eq!(bare.map_err(|e| e.reason), Err(Reason::BadSchema));
        let notice = br#"{"type": "maintenance_notice", "from": "2026-11-26T00:00:00Z", "to": "2026-11-26T08:00:00Z", "reason": "overhaul"}"#;
        let events = TopicNames {
            enterprise: Some("E"),
            source: None,
        };
        let records = d
            .decode_on_topic(PayloadKind::Events, notice, at, events)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(records.as_slice(), [Record::Event(e)] if e.enterprise_id.as_deref() == Some("E")),
            "{records:?}"
        );
        let other = br#"{"source": "OTHER", "ts": 1795622400000, "values": {"a21026": 12}}"#;
        let mismatch = d.decode_on_topic(PayloadKind::JsonReadings, other, at, topic);
        assert_eq!(mismatch.map_err(|e| e.reason), Err(Reason::TopicMismatch));
    }

    #[test]
    fn duplicate_keys_and_repeated_factor_fields_are_refused() {
        let d = decoder(&REGISTRY.replace("654321", "123456"));
        let at = Timestamp(1_570_858_630_000);
        let json =
            br#"{"source": "A", "ts": 1570858630000, "values": {"a21026": 1, "a21026": 1000}}"#;
        let got = d.decode(PayloadKind::JsonReadings, json, at);
        assert_eq!(got.map_err(|e| e.reason), Err(Reason::DuplicateKey));
        let event = br#"{"type": "production_state", "source": "Y80110010000010", "source": "X", "ts": 1570858630000, "running": true}"#;
        let got = d.decode(PayloadKind::Events, event, at);
        assert_eq!(got.map_err(|e| e.reason), Err(Reason::DuplicateKey));
        let data = "QN=20191012133710130;ST=22;CN=2011;PW=123456;MN=Y80110010000010;Flag=4;CP=&&DataTime=20191012133710;a21026-Rtd=1.0;a21026-Rtd=1000.0&&";
        let crc = argus_hj212::crc::crc16(data.as_bytes());
        let packet = format!("##{:04}{data}{crc:04X}\r\n", data.len());
        let got = d.decode(PayloadKind::Hj212, packet.as_bytes(), at);
        assert_eq!(got.map_err(|e| e.reason), Err(Reason::DuplicateKey));
    }

    fn decoder(registry: &str) -> Decoder {
        let registry =
            Registry::from_toml_str(registry, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let window = TimeWindow {
            max_future_ms: 3_600_000,
            max_age_ms: i64::MAX,
        };
        Decoder::new(
            Arc::new(registry),
            DecodeOptions {
                window,
                ..DecodeOptions::default()
            },
        )
    }

    #[test]
    fn hj212_password_is_checked_against_the_registry() {
        let received = Timestamp(1_795_672_800_000);
        let err = decoder(REGISTRY).decode(PayloadKind::Hj212, PACKET.as_bytes(), received);
        assert_eq!(err.map_err(|e| e.reason), Err(Reason::BadPassword));

        let matching = decoder(&REGISTRY.replace("654321", "123456"));
        let records = matching
            .decode(PayloadKind::Hj212, PACKET.as_bytes(), received)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 7);
        // A source missing from the registry is kept (flagged unregistered downstream).
        let unregistered = decoder(&REGISTRY.replace("Y80110010000010", "OTHER01"));
        assert_eq!(
            unregistered
                .decode(PayloadKind::Hj212, PACKET.as_bytes(), received)
                .map(|r| r.len()),
            Ok(7)
        );
    }

    #[test]
    fn oversize_and_stale_payloads_are_refused() {
        let d = decoder(REGISTRY);
        let big = vec![b' '; DecodeOptions::default().max_payload_bytes + 1];
        assert_eq!(
            d.decode(PayloadKind::JsonReadings, &big, Timestamp(0))
                .map_err(|e| e.reason),
            Err(Reason::Oversize)
        );
        // With the default window, a packet from 2019 is years too old.
        let matching = REGISTRY.replace("654321", "123456");
        let registry = Registry::from_toml_str(&matching, "t").unwrap_or_else(|e| panic!("{e}"));
        let strict = Decoder::new(Arc::new(registry), DecodeOptions::default());
        let stale = strict.decode(
            PayloadKind::Hj212,
            PACKET.as_bytes(),
            Timestamp(1_795_672_800_000),
        );
        assert_eq!(
            stale.map_err(|e| e.reason),
            Err(Reason::TimestampOutOfRange)
        );
    }
}
