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
    pub clickhouse: RawClickHouse,
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
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: String,
    pub password: String,
    pub keep_alive_secs: u64,
    pub tls_ca_file: String,
}

impl Default for RawMqtt {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 1883,
            client_id: "argus".to_owned(),
            username: String::new(),
            password: String::new(),
            keep_alive_secs: 30,
            tls_ca_file: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawKafka {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub session_timeout_ms: u64,
    pub topics: RawKafkaTopics,
}

impl Default for RawKafka {
    fn default() -> Self {
        Self {
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
}

impl Default for RawKafkaTopics {
    fn default() -> Self {
        Self {
            readings: "argus.readings".to_owned(),
            hj212: "argus.hj212".to_owned(),
            events: "argus.events".to_owned(),
            dlq: "argus.dlq".to_owned(),
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
        }
    }
}
