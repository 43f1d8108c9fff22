//! The configuration file as written: serde shapes of `config/argus.toml`. Every field is
//! documented in that file; here each struct denies unknown fields and fills defaults.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub registry: RawRegistry,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub mqtt: RawMqtt,
    #[serde(default)]
    pub kafka: RawKafka,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub clickhouse: RawClickHouse,
    #[serde(default)]
    pub ingest: RawIngest,
    #[serde(default)]
    pub hj212: RawHj212,
    #[serde(default)]
    pub rules: RawRulesSection,
    #[serde(default)]
    pub tickets: RawTickets,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub delivery: RawDelivery,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDelivery {
    pub retry_initial_ms: u64,
    pub retry_max_secs: u64,
    pub give_up_after_hours: u64,
    pub timeout_secs: u64,
    pub webhooks: Vec<RawWebhook>,
}

impl Default for RawDelivery {
    fn default() -> Self {
        Self {
            retry_initial_ms: 1_000,
            retry_max_secs: 300,
            give_up_after_hours: 72,
            timeout_secs: 10,
            webhooks: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub name: String,
    pub url: String,
    pub department: String,
    #[serde(default)]
    pub town: String,
    pub key_id: String,
    pub secret_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawApi {
    pub session_idle_minutes: u64,
    pub session_max_hours: u64,
    pub login_lockout_failures: u64,
    pub login_lockout_minutes: u64,
    pub tls_cert_path: String,
    pub tls_key_path: String,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            session_idle_minutes: 30,
            session_max_hours: 12,
            login_lockout_failures: 5,
            login_lockout_minutes: 15,
            tls_cert_path: String::new(),
            tls_key_path: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStore {
    pub backend: String,
    pub sqlite_path: String,
    pub retention_months: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            backend: "sqlite".to_owned(),
            sqlite_path: "argus.sqlite".to_owned(),
            retention_months: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTickets {
    pub path: String,
    pub check_every_secs: u64,
}

impl Default for RawTickets {
    fn default() -> Self {
        Self {
            path: "tickets.toml".to_owned(),
            check_every_secs: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRulesSection {
    pub path: String,
    pub allowed_lateness_secs: u64,
    pub idle_source_after_secs: u64,
    pub max_delay_secs: u64,
    pub max_clock_skew_secs: u64,
    pub advance_every_ms: u64,
    pub checkpoint_path: String,
    pub checkpoint_every_secs: u64,
}

impl Default for RawRulesSection {
    fn default() -> Self {
        Self {
            path: "rules.toml".to_owned(),
            allowed_lateness_secs: 300,
            idle_source_after_secs: 600,
            max_delay_secs: 900,
            max_clock_skew_secs: 300,
            advance_every_ms: 1_000,
            checkpoint_path: "checkpoints".to_owned(),
            checkpoint_every_secs: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawIngest {
    pub max_future_secs: u64,
    pub max_age_days: u64,
    pub max_payload_bytes: u64,
    pub pipeline_capacity: u64,
}

impl Default for RawIngest {
    fn default() -> Self {
        Self {
            max_future_secs: 3_600,
            max_age_days: 400,
            max_payload_bytes: 1 << 20,
            pipeline_capacity: 1_024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHj212 {
    pub enabled: bool,
    pub listen_addr: String,
    pub max_connections: u64,
    pub max_connections_per_peer: u64,
    pub idle_timeout_secs: u64,
    pub max_data_bytes: u64,
}

impl Default for RawHj212 {
    fn default() -> Self {
        Self {
            enabled: true,
            listen_addr: "127.0.0.1:9212".to_owned(),
            max_connections: 2_000,
            max_connections_per_peer: 100,
            idle_timeout_secs: 600,
            max_data_bytes: 4_096,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegistry {
    pub path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub filter: String,
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            filter: "info".to_owned(),
            format: "text".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMetrics {
    pub listen_addr: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:9898".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMqtt {
    pub enabled: bool,
    pub embedded: bool,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: String,
    pub password: String,
    pub keep_alive_secs: u64,
    pub tls_ca_file: String,
    pub readings_topic: String,
    pub hj212_topic: String,
    pub events_topic: String,
    pub shared_group: String,
    pub max_inflight: u64,
}

impl Default for RawMqtt {
    fn default() -> Self {
        Self {
            enabled: true,
            embedded: false,
            host: "127.0.0.1".to_owned(),
            port: 1883,
            client_id: "argus".to_owned(),
            username: String::new(),
            password: String::new(),
            keep_alive_secs: 30,
            tls_ca_file: String::new(),
            readings_topic: "argus/v1/readings/+/+".to_owned(),
            hj212_topic: "argus/v1/hj212/+".to_owned(),
            events_topic: "argus/v1/events/+".to_owned(),
            shared_group: String::new(),
            max_inflight: 100,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawKafka {
    pub enabled: bool,
    pub bootstrap_servers: String,
    pub group_id: String,
    pub session_timeout_ms: u64,
    pub topics: RawKafkaTopics,
}

impl Default for RawKafka {
    fn default() -> Self {
        Self {
            enabled: true,
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            group_id: "argus".to_owned(),
            session_timeout_ms: 10_000,
            topics: RawKafkaTopics::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawKafkaTopics {
    pub readings: String,
    pub hj212: String,
    pub events: String,
    pub dlq: String,
    pub tickets: String,
}

impl Default for RawKafkaTopics {
    fn default() -> Self {
        Self {
            readings: "argus.readings".to_owned(),
            hj212: "argus.hj212".to_owned(),
            events: "argus.events".to_owned(),
            dlq: "argus.dlq".to_owned(),
            tickets: "argus.tickets".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawClickHouse {
    pub url: String,
    pub database: String,
    pub writer_user: String,
    pub writer_password: String,
    pub reader_user: String,
    pub reader_password: String,
    pub request_timeout_ms: u64,
    pub batch_max_rows: u64,
    pub batch_max_age_ms: u64,
    pub retry_max_backoff_ms: u64,
    pub spool_path: String,
    pub spool_max_mib: u64,
}

impl Default for RawClickHouse {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".to_owned(),
            database: "argus".to_owned(),
            writer_user: "argus_writer".to_owned(),
            writer_password: String::new(),
            reader_user: "argus_reader".to_owned(),
            reader_password: String::new(),
            request_timeout_ms: 30_000,
            batch_max_rows: 50_000,
            batch_max_age_ms: 1_000,
            retry_max_backoff_ms: 30_000,
            spool_path: String::new(),
            spool_max_mib: 1_024,
        }
    }
}
