//! Fuzz target: arbitrary bytes as canonical JSON readings and as enterprise events, with and
//! without topic names, against the example registry. Nothing may panic; what is accepted is
//! bounded (finite values, bounded names); what is refused becomes a bounded dead letter; the
//! strict parser accepts only what serde_json accepts, and the same value.

#![no_main]

use std::sync::{Arc, OnceLock};

use argus_ingest::{
    strict, DeadLetter, DecodeOptions, Decoder, PayloadKind, Record, TimeWindow, TopicNames,
    Transport, MAX_DETAIL_BYTES, MAX_RAW_BYTES,
};
use argus_model::{Registry, Timestamp};
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp(1_795_672_800_000);

fn decoder() -> &'static Decoder {
    static DECODER: OnceLock<Decoder> = OnceLock::new();
    DECODER.get_or_init(|| {
        let text = include_str!("../../../../config/registry.toml");
        let registry = Registry::from_toml_str(text, "registry.toml")
            .unwrap_or_else(|e| panic!("the example registry: {e}"));
        let options = DecodeOptions {
            window: TimeWindow {
                max_future_ms: 3_600_000,
                max_age_ms: i64::MAX,
            },
            ..DecodeOptions::default()
        };
        Decoder::new(Arc::new(registry), options)
    })
}

fuzz_target!(|data: &[u8]| {
    let d = decoder();
    // The strict parser refines serde_json: what it accepts, serde_json reads the same.
    if let Ok(value) = strict::parse(data) {
        let plain: Result<serde_json::Value, _> = serde_json::from_slice(data);
        assert_eq!(plain.ok().as_ref(), Some(&value));
    }
    let point = d
        .registry()
        .points()
        .next()
        .map(|p| (p.enterprise_id.as_str(), p.mn.as_str()));
    let topics = [
        TopicNames::default(),
        TopicNames {
            enterprise: point.map(|p| p.0),
            source: point.map(|p| p.1),
        },
    ];
    for kind in [PayloadKind::JsonReadings, PayloadKind::Events] {
        for topic in topics {
            match d.decode_on_topic(kind, data, NOW, topic) {
                Ok(records) => {
                    for record in records {
                        if let Record::Reading(r) = record {
                            assert!(r.value.is_finite());
                            assert!(!r.source.as_str().is_empty() && r.source.as_str().len() <= 64);
                            assert!(r.metric.as_str().len() <= 32);
                            if let Some(source) = topic.source {
                                assert_eq!(r.source.as_str(), source);
                            }
                        }
                    }
                }
                Err(e) => {
                    let letter = DeadLetter::new(
                        Transport::Mqtt,
                        "mqtt:fuzz".to_owned(),
                        e.reason,
                        e.detail,
                        NOW,
                        data,
                    );
                    assert!(letter.detail.len() <= MAX_DETAIL_BYTES);
                    assert!(letter.raw.len() <= MAX_RAW_BYTES);
                    let headers: usize = letter
                        .headers()
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum();
                    assert!(headers <= 2 * 1024, "headers of {headers} bytes");
                }
            }
        }
    }
});
