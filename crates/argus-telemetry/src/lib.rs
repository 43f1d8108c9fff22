//! Argus internal telemetry: every metric Argus exports, named in one place ([`names`]), registered
//! in one Prometheus registry ([`Telemetry`]) and rendered as the text exposition format.
//!
//! Names follow `argus_<subsystem>_<name>_<unit>`, counters end in `_total`, and label values are
//! drawn from bounded sets (reasons, transports, kinds), never from ids.

pub mod ratelimit;
pub mod readiness;

pub use ratelimit::{RateLimited, LOG_EVERY};
pub use readiness::{Readiness, StageState};

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric name Argus exports. Adding a metric means adding it here first.
pub mod names {
    /// Gauge, always 1, labelled with the Argus version.
    pub const BUILD_INFO: &str = "argus_build_info";
    /// Gauge: Unix time (seconds) at which this process started.
    pub const START_TIME_SECONDS: &str = "argus_process_start_time_seconds";
    /// Gauge: objects in the loaded registry, by `kind` (towns, enterprises, points, limits, teams).
    pub const REGISTRY_OBJECTS: &str = "argus_registry_objects";

    /// Counter: payloads received (one MQTT message, Kafka message or HJ 212 packet), by `transport`.
    pub const INGEST_PAYLOADS_TOTAL: &str = "argus_ingest_payloads_total";
    /// Counter: payload bytes received, by `transport`.
    pub const INGEST_BYTES_TOTAL: &str = "argus_ingest_bytes_total";
    /// Counter: canonical records (readings and events) decoded, by `transport`.
    pub const INGEST_RECORDS_TOTAL: &str = "argus_ingest_records_total";
    /// Counter: inputs refused and dead-lettered, by `transport` and `reason`.
    pub const INGEST_DEAD_LETTERS_TOTAL: &str = "argus_ingest_dead_letters_total";
    /// Counter: dead letters published to the dead-letter topic.
    pub const DLQ_PUBLISHED_TOTAL: &str = "argus_dlq_published_total";
    /// Counter: dead letters given up on for the dead-letter topic after bounded retries (kept
    /// in the store's `rejected_inputs` table only).
    pub const DLQ_UNPUBLISHED_TOTAL: &str = "argus_dlq_unpublished_total";
    /// Counter: Kafka offset commits, by `result` (ok, error).
    pub const KAFKA_COMMITS_TOTAL: &str = "argus_kafka_commits_total";
    /// Counter: Kafka partition assignments and revocations, by `event` (assign, revoke).
    pub const KAFKA_REBALANCES_TOTAL: &str = "argus_kafka_rebalances_total";
    /// Counter: MQTT connection events, by `event` (connected, error, subscribed: a topic filter acknowledged by the broker).
    pub const MQTT_CONNECTIONS_TOTAL: &str = "argus_mqtt_connections_total";
    /// Gauge: open HJ 212 data-logger connections.
    pub const GATEWAY_CONNECTIONS: &str = "argus_gateway_connections";
    /// Counter: HJ 212 connections closed, by `cause` (eof, idle, error, garbage, limit, peer_limit, shutdown).
    pub const GATEWAY_CLOSED_TOTAL: &str = "argus_gateway_connections_closed_total";
    /// Counter: HJ 212 replies sent to data loggers.
    pub const GATEWAY_REPLIES_TOTAL: &str = "argus_gateway_replies_total";

    /// Counter: readings and events handed to the detection dataflow, by `kind` (reading, event).
    pub const DETECT_INPUTS_TOTAL: &str = "argus_detect_inputs_total";
    /// Counter: inputs later than the allowed lateness: not judged, kept.
    pub const DETECT_LATE_TOTAL: &str = "argus_detect_late_total";
    /// Counter: inputs whose event time was ahead of the clock by more than the allowed skew:
    /// judged, but not moving event time past the clock plus the skew.
    pub const DETECT_AHEAD_TOTAL: &str = "argus_detect_ahead_total";
    /// Counter: inputs of unregistered sources beyond the bound of tracked ones (judged, no
    /// state kept; together they raise one alert).
    pub const DETECT_UNTRACKED_TOTAL: &str = "argus_detect_untracked_total";
    /// Gauge: how far event time (a worker's watermark) is behind the wall clock, by `worker`.
    pub const DETECT_WATERMARK_LAG_SECONDS: &str = "argus_detect_watermark_lag_seconds";
    /// Gauge: sources holding a worker's watermark (not idle), by `worker`.
    pub const DETECT_ACTIVE_SOURCES: &str = "argus_detect_active_sources";
    /// Counter: detection checkpoints saved (one file per worker, once what they cover is durable).
    pub const DETECT_CHECKPOINTS_TOTAL: &str = "argus_detect_checkpoints_total";
    /// Gauge: size of the last checkpoint saved, bytes.
    pub const DETECT_CHECKPOINT_BYTES: &str = "argus_detect_checkpoint_bytes";
    /// Counter: stored inputs judged again at start, from the checkpoints' event time on.
    pub const DETECT_RESTORED_INPUTS_TOTAL: &str = "argus_detect_restored_inputs_total";
    /// Counter: alert transitions, by alert `kind` and `transition` (fired, updated, resolved,
    /// muted: a notice or silence that arrived after the alert fired).
    pub const ALERT_TRANSITIONS_TOTAL: &str = "argus_alert_transitions_total";

    /// Counter: alerts acknowledged by a person (through the API).
    pub const ALERT_ACKNOWLEDGEMENTS_TOTAL: &str = "argus_alert_acknowledgements_total";

    /// Counter: rows written to the store, by `path` (direct, or spooled first).
    pub const STORE_ROWS_TOTAL: &str = "argus_store_rows_total";
    /// Gauge: bytes of row batches kept in the on-disk spool while the store is unreachable.
    pub const STORE_SPOOL_BYTES: &str = "argus_store_spool_bytes";
    /// Counter: failed write attempts to the store (each retried).
    pub const STORE_WRITE_FAILURES_TOTAL: &str = "argus_store_write_failures_total";
    /// Counter: readings delivered again with the value on record (dropped: first write wins).
    pub const STORE_DUPLICATE_READINGS_TOTAL: &str = "argus_store_duplicate_readings_total";
    /// Counter: readings delivered again with another value or flag (kept in `conflicts`).
    pub const STORE_CONFLICTING_READINGS_TOTAL: &str = "argus_store_conflicting_readings_total";
    /// Counter: months of readings dropped by retention.
    pub const STORE_RETENTION_DROPPED_MONTHS_TOTAL: &str =
        "argus_store_retention_dropped_months_total";

    /// Counter: logins to the API, by `outcome` (accepted, refused, locked_out).
    pub const API_LOGINS_TOTAL: &str = "argus_api_logins_total";

    /// Counter: attempts to deliver a ticket change to a webhook or the tickets topic, by
    /// `target` (`webhook`, `kafka`) and `outcome` (`delivered`, `retry`, `failed`).
    pub const DELIVERY_ATTEMPTS_TOTAL: &str = "argus_delivery_attempts_total";

    /// All names, for the documentation test and for people looking for one.
    pub const ALL: &[&str] = &[
        BUILD_INFO,
        START_TIME_SECONDS,
        REGISTRY_OBJECTS,
        INGEST_PAYLOADS_TOTAL,
        INGEST_BYTES_TOTAL,
        INGEST_RECORDS_TOTAL,
        INGEST_DEAD_LETTERS_TOTAL,
        DLQ_PUBLISHED_TOTAL,
        DLQ_UNPUBLISHED_TOTAL,
        KAFKA_COMMITS_TOTAL,
        KAFKA_REBALANCES_TOTAL,
        MQTT_CONNECTIONS_TOTAL,
        GATEWAY_CONNECTIONS,
        GATEWAY_CLOSED_TOTAL,
        GATEWAY_REPLIES_TOTAL,
        DETECT_INPUTS_TOTAL,
        DETECT_LATE_TOTAL,
        DETECT_AHEAD_TOTAL,
        DETECT_UNTRACKED_TOTAL,
        DETECT_WATERMARK_LAG_SECONDS,
        DETECT_ACTIVE_SOURCES,
        ALERT_TRANSITIONS_TOTAL,
        ALERT_ACKNOWLEDGEMENTS_TOTAL,
        STORE_ROWS_TOTAL,
        STORE_WRITE_FAILURES_TOTAL,
        STORE_DUPLICATE_READINGS_TOTAL,
        STORE_CONFLICTING_READINGS_TOTAL,
        STORE_SPOOL_BYTES,
        STORE_RETENTION_DROPPED_MONTHS_TOTAL,
        API_LOGINS_TOTAL,
        DELIVERY_ATTEMPTS_TOTAL,
    ];
}

/// A metric could not be registered or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Registration or encoding failed inside the Prometheus library.
    #[error("prometheus metric {name}: {source}")]
    Prometheus {
        /// The metric concerned, or `"encoder"`.
        name: &'static str,
        /// The library's error.
        source: prometheus::Error,
    },
}

/// The registry and the handles of all metrics. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Telemetry {
    registry: Registry,
    registry_objects: IntGaugeVec,
    /// Ingest counters, shared by every source.
    pub ingest: IngestMetrics,
    /// Kafka counters.
    pub kafka: KafkaMetrics,
    /// MQTT counters.
    pub mqtt: MqttMetrics,
    /// HJ 212 gateway metrics.
    pub gateway: GatewayMetrics,
    /// Detection metrics.
    pub detect: DetectMetrics,
    /// Progress marks of the service's stages, for `/readyz`.
    pub readiness: Readiness,
    /// Storage metrics.
    pub store: StoreMetrics,
    /// HTTP API metrics.
    pub api: ApiMetrics,
}

/// HTTP API metrics.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    /// Logins by outcome (`accepted`, `refused`, `locked_out`).
    pub logins: IntCounterVec,
    /// Delivery attempts of ticket changes by target kind and outcome.
    pub deliveries: IntCounterVec,
}

/// Storage metrics.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// Rows written by path (`direct`, `spooled`).
    pub rows: IntCounterVec,
    /// Failed write attempts.
    pub write_failures: IntCounter,
    /// Bytes in the spool.
    pub spool_bytes: IntGauge,
    /// Months of readings dropped by retention.
    pub retention_dropped_months: IntCounter,
    /// Readings delivered again with the value on record.
    pub duplicate_readings: IntCounter,
    /// Readings delivered again with another value or flag.
    pub conflicting_readings: IntCounter,
    /// Alerts acknowledged by a person.
    pub acknowledgements: IntCounter,
}

/// Detection metrics: what went into the dataflow, how far behind event time runs, what came out.
#[derive(Debug, Clone)]
pub struct DetectMetrics {
    /// Inputs by kind (`reading`, `event`).
    pub inputs: IntCounterVec,
    /// Inputs later than the allowed lateness.
    pub late: IntCounter,
    /// Inputs ahead of the clock by more than the allowed skew.
    pub ahead: IntCounter,
    /// Inputs of unregistered sources beyond the tracked bound.
    pub untracked: IntCounter,
    /// Watermark lag behind the wall clock, seconds, by worker index.
    pub watermark_lag_seconds: IntGaugeVec,
    /// Active sources by worker index.
    pub active_sources: IntGaugeVec,
    /// Alert transitions by kind and transition.
    pub transitions: IntCounterVec,
    /// Checkpoints saved.
    pub checkpoints: IntCounter,
    /// Size of the last checkpoint saved.
    pub checkpoint_bytes: IntGauge,
    /// Stored inputs judged again at start.
    pub restored_inputs: IntCounter,
}

/// Counters of every source, labelled by transport (and reason for dead letters).
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    payloads: IntCounterVec,
    bytes: IntCounterVec,
    records: IntCounterVec,
    dead_letters: IntCounterVec,
    /// Dead letters published to the dead-letter topic.
    pub dlq_published: IntCounter,
    /// Dead letters given up on for the dead-letter topic (kept in the store only).
    pub dlq_unpublished: IntCounter,
}

impl IngestMetrics {
    /// Count one batch from `transport`: call once per batch, not per record.
    pub fn batch(&self, transport: &str, payloads: u64, bytes: u64, records: u64) {
        self.payloads
            .with_label_values(&[transport])
            .inc_by(payloads);
        self.bytes.with_label_values(&[transport]).inc_by(bytes);
        self.records.with_label_values(&[transport]).inc_by(records);
    }

    /// Count dead letters of one reason from `transport`.
    pub fn dead_letters(&self, transport: &str, reason: &str, count: u64) {
        self.dead_letters
            .with_label_values(&[transport, reason])
            .inc_by(count);
    }
}

/// Kafka counters.
#[derive(Debug, Clone)]
pub struct KafkaMetrics {
    /// Offset commits by result (`ok`, `error`).
    pub commits: IntCounterVec,
    /// Rebalance events by kind (`assign`, `revoke`).
    pub rebalances: IntCounterVec,
}

/// MQTT counters.
#[derive(Debug, Clone)]
pub struct MqttMetrics {
    /// Connection events (`connected`, `error`, `subscribed`).
    pub connections: IntCounterVec,
}

/// HJ 212 gateway metrics.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    /// Open connections.
    pub connections: IntGauge,
    /// Closed connections by cause.
    pub closed: IntCounterVec,
    /// Replies sent.
    pub replies: IntCounter,
}

/// Counts describing the loaded registry, for [`Telemetry::set_registry_objects`].
pub const REGISTRY_OBJECT_KINDS: &[&str] = &[
    "towns",
    "departments",
    "teams",
    "enterprises",
    "points",
    "limits",
];

impl Telemetry {
    /// Register every metric. `version` labels `argus_build_info`; `start_time_secs` is the
    /// process start as Unix seconds.
    pub fn new(version: &str, start_time_secs: i64) -> Result<Self, TelemetryError> {
        let registry = Registry::new();
        let err = |name| move |source| TelemetryError::Prometheus { name, source };

        let build_info = IntGaugeVec::new(
            Opts::new(names::BUILD_INFO, "Argus build, always 1"),
            &["version"],
        )
        .map_err(err(names::BUILD_INFO))?;
        registry
            .register(Box::new(build_info.clone()))
            .map_err(err(names::BUILD_INFO))?;
        build_info.with_label_values(&[version]).set(1);

        let start = IntGauge::new(
            names::START_TIME_SECONDS,
            "Unix time at which the process started",
        )
        .map_err(err(names::START_TIME_SECONDS))?;
        registry
            .register(Box::new(start.clone()))
            .map_err(err(names::START_TIME_SECONDS))?;
        start.set(start_time_secs);

        let registry_objects = IntGaugeVec::new(
            Opts::new(
                names::REGISTRY_OBJECTS,
                "Objects in the loaded registry, by kind",
            ),
            &["kind"],
        )
        .map_err(err(names::REGISTRY_OBJECTS))?;
        registry
            .register(Box::new(registry_objects.clone()))
            .map_err(err(names::REGISTRY_OBJECTS))?;

        let counter_vec = |name: &'static str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).map_err(err(name))?;
            registry.register(Box::new(c.clone())).map_err(err(name))?;
            Ok::<_, TelemetryError>(c)
        };
        let counter = |name: &'static str, help: &str| {
            let c = IntCounter::new(name, help).map_err(err(name))?;
            registry.register(Box::new(c.clone())).map_err(err(name))?;
            Ok::<_, TelemetryError>(c)
        };
        let ingest = IngestMetrics {
            payloads: counter_vec(
                names::INGEST_PAYLOADS_TOTAL,
                "Payloads received",
                &["transport"],
            )?,
            bytes: counter_vec(
                names::INGEST_BYTES_TOTAL,
                "Payload bytes received",
                &["transport"],
            )?,
            records: counter_vec(
                names::INGEST_RECORDS_TOTAL,
                "Canonical records decoded",
                &["transport"],
            )?,
            dead_letters: counter_vec(
                names::INGEST_DEAD_LETTERS_TOTAL,
                "Inputs refused and dead-lettered",
                &["transport", "reason"],
            )?,
            dlq_published: counter(
                names::DLQ_PUBLISHED_TOTAL,
                "Dead letters published to the dead-letter topic",
            )?,
            dlq_unpublished: counter(
                names::DLQ_UNPUBLISHED_TOTAL,
                "Dead letters given up on for the dead-letter topic after bounded retries, kept in the store only",
            )?,
        };
        let kafka = KafkaMetrics {
            commits: counter_vec(
                names::KAFKA_COMMITS_TOTAL,
                "Kafka offset commits",
                &["result"],
            )?,
            rebalances: counter_vec(
                names::KAFKA_REBALANCES_TOTAL,
                "Kafka rebalance events",
                &["event"],
            )?,
        };
        let mqtt = MqttMetrics {
            connections: counter_vec(
                names::MQTT_CONNECTIONS_TOTAL,
                "MQTT connection events",
                &["event"],
            )?,
        };
        let connections = IntGauge::new(
            names::GATEWAY_CONNECTIONS,
            "Open HJ 212 data-logger connections",
        )
        .map_err(err(names::GATEWAY_CONNECTIONS))?;
        registry
            .register(Box::new(connections.clone()))
            .map_err(err(names::GATEWAY_CONNECTIONS))?;
        let gateway = GatewayMetrics {
            connections,
            closed: counter_vec(
                names::GATEWAY_CLOSED_TOTAL,
                "HJ 212 connections closed",
                &["cause"],
            )?,
            replies: counter(
                names::GATEWAY_REPLIES_TOTAL,
                "HJ 212 replies sent to data loggers",
            )?,
        };
        let gauge_vec = |name: &'static str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).map_err(err(name))?;
            registry.register(Box::new(g.clone())).map_err(err(name))?;
            Ok::<_, TelemetryError>(g)
        };
        let detect = DetectMetrics {
            inputs: counter_vec(
                names::DETECT_INPUTS_TOTAL,
                "Readings and events handed to the detection dataflow",
                &["kind"],
            )?,
            late: counter(
                names::DETECT_LATE_TOTAL,
                "Inputs later than the allowed lateness, not judged",
            )?,
            ahead: counter(
                names::DETECT_AHEAD_TOTAL,
                "Inputs ahead of the clock by more than the allowed skew, judged without moving event time past it",
            )?,
            untracked: counter(
                names::DETECT_UNTRACKED_TOTAL,
                "Inputs of unregistered sources beyond the bound of tracked ones, judged without state",
            )?,
            watermark_lag_seconds: gauge_vec(
                names::DETECT_WATERMARK_LAG_SECONDS,
                "How far a worker's event time is behind the wall clock",
                &["worker"],
            )?,
            active_sources: gauge_vec(
                names::DETECT_ACTIVE_SOURCES,
                "Sources holding a worker's event time",
                &["worker"],
            )?,
            transitions: counter_vec(
                names::ALERT_TRANSITIONS_TOTAL,
                "Alert transitions",
                &["kind", "transition"],
            )?,
            checkpoints: counter(
                names::DETECT_CHECKPOINTS_TOTAL,
                "Detection checkpoints saved, once what they cover is durable",
            )?,
            checkpoint_bytes: {
                let g = IntGauge::new(
                    names::DETECT_CHECKPOINT_BYTES,
                    "Size of the last detection checkpoint saved",
                )
                .map_err(err(names::DETECT_CHECKPOINT_BYTES))?;
                registry
                    .register(Box::new(g.clone()))
                    .map_err(err(names::DETECT_CHECKPOINT_BYTES))?;
                g
            },
            restored_inputs: counter(
                names::DETECT_RESTORED_INPUTS_TOTAL,
                "Stored inputs judged again at start, from the checkpoints' event time on",
            )?,
        };
        let store = StoreMetrics {
            rows: counter_vec(
                names::STORE_ROWS_TOTAL,
                "Rows written to the store",
                &["path"],
            )?,
            write_failures: counter(
                names::STORE_WRITE_FAILURES_TOTAL,
                "Failed write attempts to the store, each retried",
            )?,
            retention_dropped_months: counter(
                names::STORE_RETENTION_DROPPED_MONTHS_TOTAL,
                "Months of readings dropped by retention",
            )?,
            duplicate_readings: counter(
                names::STORE_DUPLICATE_READINGS_TOTAL,
                "Readings delivered again with the value on record, dropped (first write wins)",
            )?,
            conflicting_readings: counter(
                names::STORE_CONFLICTING_READINGS_TOTAL,
                "Readings delivered again with another value or flag, kept in the conflicts table",
            )?,
            acknowledgements: counter(
                names::ALERT_ACKNOWLEDGEMENTS_TOTAL,
                "Alerts acknowledged by a person",
            )?,
            spool_bytes: {
                let g = IntGauge::new(
                    names::STORE_SPOOL_BYTES,
                    "Bytes of row batches kept in the on-disk spool",
                )
                .map_err(err(names::STORE_SPOOL_BYTES))?;
                registry
                    .register(Box::new(g.clone()))
                    .map_err(err(names::STORE_SPOOL_BYTES))?;
                g
            },
        };
        let api = ApiMetrics {
            logins: counter_vec(
                names::API_LOGINS_TOTAL,
                "Logins to the API, by outcome",
                &["outcome"],
            )?,
            deliveries: counter_vec(
                names::DELIVERY_ATTEMPTS_TOTAL,
                "Attempts to deliver a ticket change, by target kind and outcome",
                &["target", "outcome"],
            )?,
        };
        for outcome in ["accepted", "refused", "locked_out"] {
            api.logins.with_label_values(&[outcome]).inc_by(0);
        }
        for target in ["webhook", "kafka"] {
            for outcome in ["delivered", "retry", "failed"] {
                api.deliveries
                    .with_label_values(&[target, outcome])
                    .inc_by(0);
            }
        }
        // Vectors appear in the exposition only once a label set is used: touch the common ones
        // so dashboards see zeros instead of gaps.
        for transport in ["mqtt", "kafka", "hj212_tcp"] {
            ingest.batch(transport, 0, 0, 0);
        }
        for result in ["ok", "error"] {
            kafka.commits.with_label_values(&[result]).inc_by(0);
        }
        for event in ["assign", "revoke"] {
            kafka.rebalances.with_label_values(&[event]).inc_by(0);
        }
        for event in ["connected", "error", "subscribed"] {
            mqtt.connections.with_label_values(&[event]).inc_by(0);
        }
        for cause in [
            "eof",
            "idle",
            "error",
            "garbage",
            "limit",
            "peer_limit",
            "shutdown",
        ] {
            gateway.closed.with_label_values(&[cause]).inc_by(0);
        }
        ingest.dead_letters("mqtt", "bad_json", 0);
        for table in ["direct", "spooled"] {
            store.rows.with_label_values(&[table]).inc_by(0);
        }
        for kind in ["reading", "event"] {
            detect.inputs.with_label_values(&[kind]).inc_by(0);
        }
        detect
            .watermark_lag_seconds
            .with_label_values(&["0"])
            .set(0);
        detect.active_sources.with_label_values(&["0"]).set(0);
        detect
            .transitions
            .with_label_values(&["threshold", "fired"])
            .inc_by(0);

        Ok(Self {
            registry,
            registry_objects,
            ingest,
            kafka,
            mqtt,
            gateway,
            detect,
            store,
            api,
            readiness: Readiness::default(),
        })
    }

    /// Record the size of the loaded registry; `counts` pairs a kind of
    /// [`REGISTRY_OBJECT_KINDS`] with its count. Unknown kinds are ignored, keeping labels bounded.
    pub fn set_registry_objects(&self, counts: &[(&str, usize)]) {
        for (kind, count) in counts {
            if REGISTRY_OBJECT_KINDS.contains(kind) {
                let count = i64::try_from(*count).unwrap_or(i64::MAX);
                self.registry_objects.with_label_values(&[*kind]).set(count);
            }
        }
    }

    /// The Prometheus registry, for adapters that register metrics of their own libraries.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Render all metrics in the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, TelemetryError> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(|source| TelemetryError::Prometheus {
                name: "encoder",
                source,
            })?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_metric_is_exported_and_follows_the_naming_rule() {
        let telemetry = Telemetry::new("0.1.0", 1_795_672_800).unwrap_or_else(|e| panic!("{e}"));
        telemetry.set_registry_objects(&[("points", 12), ("enterprises", 3), ("bogus", 9)]);
        let text = telemetry.render().unwrap_or_else(|e| panic!("{e}"));
        for name in names::ALL {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing from:\n{text}"
            );
            assert!(
                name.starts_with("argus_")
                    && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
        assert!(text.contains("argus_build_info{version=\"0.1.0\"} 1"));
        assert!(text.contains("argus_registry_objects{kind=\"points\"} 12"));
        assert!(!text.contains("bogus"), "label values must stay bounded");
    }
}
