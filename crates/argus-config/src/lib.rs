//! Argus configuration: `config/argus.toml` read, secrets taken from the environment, and every
//! value validated into typed [`Settings`] before anything starts (Vector's config -> validated
//! pattern). The file documents every field; this crate refuses unknown ones.

mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raw::RawConfig;

/// Environment variables that override secrets in the file, and the field each replaces.
pub const SECRET_ENV: &[(&str, &str)] = &[
    ("ARGUS_MQTT_PASSWORD", "mqtt.password"),
    (
        "ARGUS_CLICKHOUSE_WRITER_PASSWORD",
        "clickhouse.writer_password",
    ),
    (
        "ARGUS_CLICKHOUSE_READER_PASSWORD",
        "clickhouse.reader_password",
    ),
];

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (unknown field, wrong type).
    #[error("invalid config {origin}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse {
        /// The file.
        origin: String,
        /// 1-based line, where known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A value is out of its allowed range or malformed.
    #[error("invalid config {origin}: {field}: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// The field, as `section.key`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A user name and its password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Filter directives (`info`, `argus=debug,rdkafka=warn`); `RUST_LOG` overrides it.
    pub filter: String,
    /// Line format.
    pub format: LogFormat,
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Address `/metrics` and `/healthz` are served on.
    pub listen_addr: SocketAddr,
}

/// The MQTT broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// Whether Argus subscribes to the broker at all.
    pub enabled: bool,
    /// Whether Argus runs the broker itself (rumqttd) on `host:port`, a loopback address, with
    /// `credentials` as its one user: feeds publish without a Mosquitto.
    pub embedded: bool,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id; several Argus processes need distinct ids.
    pub client_id: String,
    /// User and password, if the broker wants them.
    pub credentials: Option<Credentials>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// CA certificate (PEM) to verify the broker with; TLS is used when set.
    pub tls_ca_file: Option<PathBuf>,
    /// Topic filter of canonical JSON readings (`argus/v1/readings/{enterprise}/{source}`).
    pub readings_topic: String,
    /// Topic filter of raw HJ 212 packets (`argus/v1/hj212/{source}`).
    pub hj212_topic: String,
    /// Topic filter of enterprise events as JSON (`argus/v1/events/{enterprise}`).
    pub events_topic: String,
    /// Shared-subscription group (`$share/<group>/<filter>`) so Argus processes split the load;
    /// `None` subscribes plainly.
    pub shared_group: Option<String>,
    /// QoS 1 messages in flight at once.
    pub max_inflight: u16,
}

/// Limits applied to every input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSettings {
    /// Event times further ahead of the time of receipt are refused.
    pub max_future: Duration,
    /// Event times further behind the time of receipt are refused.
    pub max_age: Duration,
    /// Largest payload (message or packet) accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Envelopes buffered between the sources and the pipeline; a full buffer slows the sources.
    pub pipeline_capacity: usize,
}

/// The HJ 212 TCP gateway for data loggers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hj212Settings {
    /// Whether the gateway listens at all.
    pub enabled: bool,
    /// Address data loggers connect to.
    pub listen_addr: SocketAddr,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Connections served at once from one peer address (at most `max_connections`), so that
    /// one address cannot lock the other data loggers out.
    pub max_connections_per_peer: usize,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// Largest HJ 212 data segment accepted, in bytes.
    pub max_data_bytes: usize,
}

/// Kafka topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTopics {
    /// Canonical JSON readings.
    pub readings: String,
    /// Raw HJ 212 packets.
    pub hj212: String,
    /// Enterprise events.
    pub events: String,
    /// Dead letters: inputs that could not be decoded, with the reason.
    pub dlq: String,
    /// Every change of every ticket, keyed by ticket, for government systems.
    pub tickets: String,
}

/// The Kafka cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Whether Argus consumes from Kafka and publishes dead letters there (they are stored in
    /// the store's `rejected_inputs` table either way).
    pub enabled: bool,
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Consumer group shared by all Argus processes.
    pub group_id: String,
    /// Consumer session timeout.
    pub session_timeout: Duration,
    /// Topic names.
    pub topics: KafkaTopics,
}

/// The ClickHouse server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseSettings {
    /// HTTP interface URL.
    pub url: String,
    /// Database Argus owns.
    pub database: String,
    /// User that inserts and migrates.
    pub writer: Credentials,
    /// Read-only user (queries, dashboards).
    pub reader: Credentials,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// A batch of rows is written once it holds this many ...
    pub batch_max_rows: usize,
    /// ... or its oldest row has waited this long.
    pub batch_max_age: Duration,
    /// Longest wait between two attempts at a failed write (the wait doubles up to it).
    pub retry_max_backoff: Duration,
    /// Where rows are kept while ClickHouse is unreachable (resolved against the config file's
    /// folder), if anywhere.
    pub spool_dir: Option<PathBuf>,
    /// The spool's size limit.
    pub spool_max_bytes: u64,
}

/// Where the record is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The ClickHouse server of `[clickhouse]`.
    ClickHouse,
    /// An embedded SQLite file (resolved against the config file's folder).
    Sqlite(PathBuf),
}

/// The store: which backend, and how long readings are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Where the record is kept.
    pub backend: StoreBackend,
    /// Readings are kept this many months (the current one included); `None`: forever.
    pub retention_months: Option<u32>,
}

/// Detection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesSettings {
    /// The rules file, resolved against the config file's folder.
    pub path: PathBuf,
    /// How far behind its source's newest event time a reading may arrive and still be judged.
    pub allowed_lateness: Duration,
    /// A source with nothing received for this long no longer holds event time back.
    pub idle_source_after: Duration,
    /// Event time is taken to be at least the clock minus this, so it moves on while sources
    /// are silent (missing-data rules fire); readings further behind are late. More than
    /// `allowed_lateness`.
    pub max_delay: Duration,
    /// A reading further ahead of its arrival than this does not count for event time (which
    /// never runs ahead of the clock): a logger whose clock runs fast is judged, but cannot make
    /// every other source late.
    pub max_clock_skew: Duration,
    /// How often the live dataflow's watermark is advanced (and idle sources let go).
    pub advance_every: Duration,
    /// Where detection saves its state (one file per worker), resolved against the config
    /// file's folder; `None`: nowhere (a restart starts detection empty).
    pub checkpoint_dir: Option<PathBuf>,
    /// How often (wall clock) detection saves a checkpoint.
    pub checkpoint_every: Duration,
}

/// Enforcement ticket settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketsSettings {
    /// The ticket policy file, resolved against the config file's folder.
    pub path: PathBuf,
    /// How often deadlines are checked.
    pub check_every: Duration,
}

/// The HTTP API's sessions and login lockout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// A browser session unused this long stops working.
    pub session_idle: Duration,
    /// A browser session stops working this long after its login.
    pub session_max: Duration,
    /// Failed logins (per user name, and per address) before attempts are refused.
    pub login_lockout_failures: u32,
    /// How long failed logins count, and how long attempts are then refused.
    pub login_lockout: Duration,
    /// The certificate chain and private key (PEM) to serve the API over TLS; none: plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// Where ticket changes are delivered: the webhooks of teams and departments (and the Kafka
/// topic `kafka.topics.tickets` when Kafka is on), from the store's outbox, retried until
/// delivered or given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The wait after a first failed attempt; doubled after each (with jitter).
    pub retry_initial: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// A change not delivered this long after it was made is given up (marked `failed`).
    pub give_up_after: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// The webhooks, by name.
    pub webhooks: Vec<WebhookSettings>,
}

/// A team's or department's webhook: every change of its tickets is POSTed there, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Its name (lowercase letters, digits, `-`): the deliveries' key.
    pub name: String,
    /// The `http://` or `https://` URL changes are POSTed to.
    pub url: String,
    /// The department whose tickets it gets.
    pub department: String,
    /// The town: only that team's tickets; none: the department's in every town.
    pub town: Option<String>,
    /// The id of the signing key, sent with each signature.
    pub key_id: String,
    /// The file holding the signing key (read at start, at least 16 bytes).
    pub secret_file: PathBuf,
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS #8, PKCS #1 or SEC1).
    pub key: PathBuf,
}

/// Validated settings: everything Argus needs to start, with defaults filled and values checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The registry file, resolved against the config file's folder.
    pub registry_path: PathBuf,
    /// Logging.
    pub log: LogSettings,
    /// Prometheus endpoint.
    pub metrics: MetricsSettings,
    /// MQTT broker.
    pub mqtt: MqttSettings,
    /// Kafka cluster.
    pub kafka: KafkaSettings,
    /// The store.
    pub store: StoreSettings,
    /// ClickHouse server.
    pub clickhouse: ClickHouseSettings,
    /// Input limits and the pipeline buffer.
    pub ingest: IngestSettings,
    /// HJ 212 TCP gateway.
    pub hj212: Hj212Settings,
    /// Detection.
    pub rules: RulesSettings,
    /// Enforcement tickets.
    pub tickets: TicketsSettings,
    /// The HTTP API.
    pub api: ApiSettings,
    /// Delivery of ticket changes.
    pub delivery: DeliverySettings,
}

impl Settings {
    /// Read `path`, apply secret overrides from the process environment, and validate.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml_str(&text, &path.display().to_string(), base, |name| {
            std::env::var(name).ok()
        })
    }

    /// Parse and validate config text. `origin` is named in errors, relative paths are resolved
    /// against `base_dir`, and `env` looks up the secret overrides of [`SECRET_ENV`].
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            line: e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
            reason: e.message().trim_end().to_owned(),
        })?;
        for (var, field) in SECRET_ENV {
            if let Some(value) = env(var) {
                match *field {
                    "mqtt.password" => raw.mqtt.password = value,
                    "clickhouse.writer_password" => raw.clickhouse.writer_password = value,
                    _ => raw.clickhouse.reader_password = value,
                }
            }
        }
        validate(raw, origin, base_dir)
    }
}

fn validate(raw: RawConfig, origin: &str, base_dir: &Path) -> Result<Settings, ConfigError> {
    let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        field,
        reason,
    };
    let non_empty = |field: &'static str, value: &str| {
        if value.trim().is_empty() {
            Err(invalid(field, "must not be empty".to_owned()))
        } else {
            Ok(())
        }
    };
    let in_range = |field: &'static str, value: u64, min: u64, max: u64, unit: &str| {
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(invalid(
                field,
                format!("must be between {min} and {max} {unit}, got {value}"),
            ))
        }
    };

    non_empty("registry.path", &raw.registry.path)?;
    let registry_path = base_dir.join(&raw.registry.path);

    let format = match raw.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log.format",
                format!("must be \"text\" or \"json\", got {other:?}"),
            ))
        }
    };
    non_empty("log.filter", &raw.log.filter)?;

    let listen_addr = raw.metrics.listen_addr.parse::<SocketAddr>().map_err(|e| {
        invalid(
            "metrics.listen_addr",
            format!(
                "{:?} is not an ip:port address: {e}",
                raw.metrics.listen_addr
            ),
        )
    })?;

    let m = raw.mqtt;
    non_empty("mqtt.host", &m.host)?;
    if m.port == 0 {
        return Err(invalid("mqtt.port", "must not be 0".to_owned()));
    }
    non_empty("mqtt.client_id", &m.client_id)?;
    if m.client_id.len() > 23 {
        // MQTT 3.1.1 brokers need only accept ids of up to 23 characters.
        return Err(invalid(
            "mqtt.client_id",
            format!("must be at most 23 characters, got {}", m.client_id.len()),
        ));
    }
    let credentials = match (m.username.is_empty(), m.password.is_empty()) {
        (true, true) => None,
        (false, _) => Some(Credentials {
            username: m.username,
            password: m.password,
        }),
        (true, false) => {
            return Err(invalid(
                "mqtt.username",
                "a password is set but no username".to_owned(),
            ))
        }
    };
    let keep_alive = Duration::from_secs(in_range(
        "mqtt.keep_alive_secs",
        m.keep_alive_secs,
        5,
        3_600,
        "seconds",
    )?);
    let tls_ca_file = (!m.tls_ca_file.is_empty()).then(|| base_dir.join(&m.tls_ca_file));
    let topic_filter = |field: &'static str, filter: &str| {
        let ok = !filter.is_empty() && !filter.starts_with('$') && !filter.contains(['#', '\0']);
        if ok {
            Ok(filter.to_owned())
        } else {
            Err(invalid(
                field,
                format!("{filter:?} is not a plain MQTT topic filter ('+' allowed, no '#' or '$')"),
            ))
        }
    };
    let embedded = m.enabled && m.embedded;
    if embedded {
        let loopback = m
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(invalid(
                "mqtt.host",
                format!(
                    "the embedded broker listens on a loopback address (127.0.0.1), got {:?}",
                    m.host
                ),
            ));
        }
        if credentials.is_none() {
            return Err(invalid(
                "mqtt.username",
                "the embedded broker needs a username and password for its one user".to_owned(),
            ));
        }
        if tls_ca_file.is_some() {
            return Err(invalid(
                "mqtt.tls_ca_file",
                "the embedded broker serves plain MQTT on loopback: leave it empty".to_owned(),
            ));
        }
    }
    let readings_topic = topic_filter("mqtt.readings_topic", &m.readings_topic)?;
    let hj212_topic = topic_filter("mqtt.hj212_topic", &m.hj212_topic)?;
    let events_topic = topic_filter("mqtt.events_topic", &m.events_topic)?;
    let shared_group = match m.shared_group.as_str() {
        "" => None,
        group
            if group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Some(group.to_owned())
        }
        group => {
            return Err(invalid(
                "mqtt.shared_group",
                format!("{group:?} must be letters, digits, _ or -"),
            ))
        }
    };
    let max_inflight = u16::try_from(in_range(
        "mqtt.max_inflight",
        m.max_inflight,
        1,
        65_535,
        "messages",
    )?)
    .unwrap_or(100);

    let k = raw.kafka;
    non_empty("kafka.bootstrap_servers", &k.bootstrap_servers)?;
    non_empty("kafka.group_id", &k.group_id)?;
    let session_timeout = Duration::from_millis(in_range(
        "kafka.session_timeout_ms",
        k.session_timeout_ms,
        1_000,
        300_000,
        "ms",
    )?);
    let topic = |field: &'static str, name: String| {
        let ok = !name.is_empty()
            && name.len() <= 249
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(name)
        } else {
            Err(invalid(
                field,
                format!("{name:?} is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"),
            ))
        }
    };
    let topics = KafkaTopics {
        readings: topic("kafka.topics.readings", k.topics.readings)?,
        hj212: topic("kafka.topics.hj212", k.topics.hj212)?,
        events: topic("kafka.topics.events", k.topics.events)?,
        dlq: topic("kafka.topics.dlq", k.topics.dlq)?,
        tickets: topic("kafka.topics.tickets", k.topics.tickets)?,
    };

    let st = raw.store;
    let backend = match st.backend.as_str() {
        "clickhouse" => StoreBackend::ClickHouse,
        "sqlite" => {
            non_empty("store.sqlite_path", &st.sqlite_path)?;
            StoreBackend::Sqlite(base_dir.join(&st.sqlite_path))
        }
        other => {
            return Err(invalid(
                "store.backend",
                format!("must be \"clickhouse\" or \"sqlite\", got {other:?}"),
            ))
        }
    };
    let retention = in_range(
        "store.retention_months",
        st.retention_months,
        0,
        1_200,
        "months",
    )?;
    let store = StoreSettings {
        backend,
        retention_months: u32::try_from(retention).ok().filter(|&m| m > 0),
    };

    let c = raw.clickhouse;
    if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
        return Err(invalid(
            "clickhouse.url",
            format!("must start with http:// or https://, got {:?}", c.url),
        ));
    }
    let identifier = |field: &'static str, value: &str| {
        let ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !value.as_bytes()[0].is_ascii_digit();
        if ok {
            Ok(())
        } else {
            Err(invalid(
                field,
                format!("{value:?} is not a plain identifier (letters, digits, _)"),
            ))
        }
    };
    identifier("clickhouse.database", &c.database)?;
    non_empty("clickhouse.writer_user", &c.writer_user)?;
    non_empty("clickhouse.reader_user", &c.reader_user)?;
    let request_timeout = Duration::from_millis(in_range(
        "clickhouse.request_timeout_ms",
        c.request_timeout_ms,
        100,
        600_000,
        "ms",
    )?);
    let batch_max_rows = usize::try_from(in_range(
        "clickhouse.batch_max_rows",
        c.batch_max_rows,
        1,
        10_000_000,
        "rows",
    )?)
    .unwrap_or(usize::MAX);
    let batch_max_age = Duration::from_millis(in_range(
        "clickhouse.batch_max_age_ms",
        c.batch_max_age_ms,
        1,
        600_000,
        "ms",
    )?);
    let spool_dir = (!c.spool_path.trim().is_empty()).then(|| base_dir.join(&c.spool_path));
    let spool_max_bytes = in_range(
        "clickhouse.spool_max_mib",
        c.spool_max_mib,
        1,
        1_048_576,
        "MiB",
    )? * 1_048_576;
    let retry_max_backoff = Duration::from_millis(in_range(
        "clickhouse.retry_max_backoff_ms",
        c.retry_max_backoff_ms,
        100,
        600_000,
        "ms",
    )?);

    let i = raw.ingest;
    let ingest = IngestSettings {
        max_future: Duration::from_secs(in_range(
            "ingest.max_future_secs",
            i.max_future_secs,
            1,
            86_400 * 30,
            "seconds",
        )?),
        max_age: Duration::from_secs(
            86_400 * in_range("ingest.max_age_days", i.max_age_days, 1, 3_650, "days")?,
        ),
        max_payload_bytes: usize::try_from(in_range(
            "ingest.max_payload_bytes",
            i.max_payload_bytes,
            1_024,
            64 << 20,
            "bytes",
        )?)
        .unwrap_or(1 << 20),
        pipeline_capacity: usize::try_from(in_range(
            "ingest.pipeline_capacity",
            i.pipeline_capacity,
            1,
            1_000_000,
            "envelopes",
        )?)
        .unwrap_or(1_024),
    };

    let h = raw.hj212;
    let hj212 = Hj212Settings {
        enabled: h.enabled,
        listen_addr: h.listen_addr.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "hj212.listen_addr",
                format!("{:?} is not an ip:port address: {e}", h.listen_addr),
            )
        })?,
        max_connections: usize::try_from(in_range(
            "hj212.max_connections",
            h.max_connections,
            1,
            100_000,
            "connections",
        )?)
        .unwrap_or(2_000),
        max_connections_per_peer: usize::try_from(in_range(
            "hj212.max_connections_per_peer",
            h.max_connections_per_peer,
            1,
            h.max_connections,
            "connections (at most hj212.max_connections)",
        )?)
        .unwrap_or(100),
        idle_timeout: Duration::from_secs(in_range(
            "hj212.idle_timeout_secs",
            h.idle_timeout_secs,
            1,
            86_400,
            "seconds",
        )?),
        max_data_bytes: usize::try_from(in_range(
            "hj212.max_data_bytes",
            h.max_data_bytes,
            1_024,
            9_999,
            "bytes",
        )?)
        .unwrap_or(4_096),
    };

    non_empty("tickets.path", &raw.tickets.path)?;
    let tickets = TicketsSettings {
        path: base_dir.join(&raw.tickets.path),
        check_every: Duration::from_secs(in_range(
            "tickets.check_every_secs",
            raw.tickets.check_every_secs,
            1,
            3_600,
            "seconds",
        )?),
    };
    let a = &raw.api;
    let mut api = ApiSettings {
        session_idle: Duration::from_secs(
            60 * in_range(
                "api.session_idle_minutes",
                a.session_idle_minutes,
                1,
                1_440,
                "minutes",
            )?,
        ),
        session_max: Duration::from_secs(
            3_600
                * in_range(
                    "api.session_max_hours",
                    a.session_max_hours,
                    1,
                    168,
                    "hours",
                )?,
        ),
        login_lockout_failures: u32::try_from(in_range(
            "api.login_lockout_failures",
            a.login_lockout_failures,
            1,
            100,
            "failures",
        )?)
        .unwrap_or(5),
        login_lockout: Duration::from_secs(
            60 * in_range(
                "api.login_lockout_minutes",
                a.login_lockout_minutes,
                1,
                1_440,
                "minutes",
            )?,
        ),
        tls: None,
    };
    let tls = match (a.tls_cert_path.is_empty(), a.tls_key_path.is_empty()) {
        (true, true) => None,
        (false, false) => Some(TlsFiles {
            cert: base_dir.join(&a.tls_cert_path),
            key: base_dir.join(&a.tls_key_path),
        }),
        _ => {
            return Err(invalid(
                "api.tls_cert_path",
                "give tls_cert_path and tls_key_path together, or neither".to_owned(),
            ))
        }
    };
    api.tls = tls;
    let d = raw.delivery;
    let mut webhooks: Vec<WebhookSettings> = Vec::new();
    for w in d.webhooks {
        let named = !w.name.is_empty()
            && w.name.len() <= 64
            && w.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !named {
            return Err(invalid(
                "delivery.webhooks.name",
                format!("{:?}: 1 to 64 lowercase letters, digits and -", w.name),
            ));
        }
        if webhooks.iter().any(|o| o.name == w.name) {
            return Err(invalid(
                "delivery.webhooks.name",
                format!("{:?} is given twice", w.name),
            ));
        }
        let (scheme, rest) = w.url.split_once("://").unwrap_or_default();
        if !matches!(scheme, "http" | "https")
            || rest.is_empty()
            || w.url.contains(char::is_whitespace)
        {
            return Err(invalid(
                "delivery.webhooks.url",
                format!("{}: {:?} is not an http:// or https:// URL", w.name, w.url),
            ));
        }
        non_empty("delivery.webhooks.department", &w.department)?;
        non_empty("delivery.webhooks.key_id", &w.key_id)?;
        non_empty("delivery.webhooks.secret_file", &w.secret_file)?;
        webhooks.push(WebhookSettings {
            name: w.name,
            url: w.url,
            department: w.department,
            town: (!w.town.is_empty()).then_some(w.town),
            key_id: w.key_id,
            secret_file: base_dir.join(&w.secret_file),
        });
    }
    let delivery = DeliverySettings {
        retry_initial: Duration::from_millis(in_range(
            "delivery.retry_initial_ms",
            d.retry_initial_ms,
            10,
            60_000,
            "ms",
        )?),
        retry_max: Duration::from_secs(in_range(
            "delivery.retry_max_secs",
            d.retry_max_secs,
            1,
            86_400,
            "seconds",
        )?),
        give_up_after: Duration::from_secs(
            3_600
                * in_range(
                    "delivery.give_up_after_hours",
                    d.give_up_after_hours,
                    1,
                    8_760,
                    "hours",
                )?,
        ),
        timeout: Duration::from_secs(in_range(
            "delivery.timeout_secs",
            d.timeout_secs,
            1,
            300,
            "seconds",
        )?),
        webhooks,
    };
    non_empty("rules.path", &raw.rules.path)?;
    let rules = RulesSettings {
        path: base_dir.join(&raw.rules.path),
        allowed_lateness: Duration::from_secs(in_range(
            "rules.allowed_lateness_secs",
            raw.rules.allowed_lateness_secs,
            0,
            86_400,
            "seconds",
        )?),
        idle_source_after: Duration::from_secs(in_range(
            "rules.idle_source_after_secs",
            raw.rules.idle_source_after_secs,
            10,
            86_400,
            "seconds",
        )?),
        max_delay: Duration::from_secs(in_range(
            "rules.max_delay_secs",
            raw.rules.max_delay_secs,
            60,
            7 * 86_400,
            "seconds",
        )?),
        max_clock_skew: Duration::from_secs(in_range(
            "rules.max_clock_skew_secs",
            raw.rules.max_clock_skew_secs,
            0,
            86_400,
            "seconds",
        )?),
        advance_every: Duration::from_millis(in_range(
            "rules.advance_every_ms",
            raw.rules.advance_every_ms,
            10,
            60_000,
            "milliseconds",
        )?),
        checkpoint_dir: (!raw.rules.checkpoint_path.trim().is_empty())
            .then(|| base_dir.join(&raw.rules.checkpoint_path)),
        checkpoint_every: Duration::from_secs(in_range(
            "rules.checkpoint_every_secs",
            raw.rules.checkpoint_every_secs,
            1,
            86_400,
            "seconds",
        )?),
    };
    if rules.max_delay <= rules.allowed_lateness {
        return Err(invalid(
            "rules.max_delay_secs",
            format!(
                "must be more than rules.allowed_lateness_secs ({}), got {}",
                rules.allowed_lateness.as_secs(),
                rules.max_delay.as_secs()
            ),
        ));
    }

    Ok(Settings {
        registry_path,
        log: LogSettings {
            filter: raw.log.filter,
            format,
        },
        metrics: MetricsSettings { listen_addr },
        mqtt: MqttSettings {
            enabled: m.enabled,
            embedded,
            host: m.host,
            port: m.port,
            client_id: m.client_id,
            credentials,
            keep_alive,
            tls_ca_file,
            readings_topic,
            hj212_topic,
            events_topic,
            shared_group,
            max_inflight,
        },
        kafka: KafkaSettings {
            enabled: k.enabled,
            bootstrap_servers: k.bootstrap_servers,
            group_id: k.group_id,
            session_timeout,
            topics,
        },
        clickhouse: ClickHouseSettings {
            url: c.url,
            database: c.database,
            writer: Credentials {
                username: c.writer_user,
                password: c.writer_password,
            },
            reader: Credentials {
                username: c.reader_user,
                password: c.reader_password,
            },
            request_timeout,
            batch_max_rows,
            batch_max_age,
            retry_max_backoff,
            spool_dir,
            spool_max_bytes,
        },
        ingest,
        hj212,
        rules,
        tickets,
        api,
        store,
        delivery,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml_str(text, "test.toml", Path::new("/etc/argus"), |_| None)
    }

    fn error(text: &str) -> String {
        match load(text) {
            Ok(settings) => panic!("accepted: {settings:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_file_gets_defaults_and_relative_paths_resolve_against_its_folder() {
        let s = load("[registry]\npath = \"registry.toml\"\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.registry_path, PathBuf::from("/etc/argus/registry.toml"));
        assert_eq!(s.metrics.listen_addr.port(), 9898);
        assert_eq!(s.kafka.topics.dlq, "argus.dlq");
        assert_eq!(s.kafka.session_timeout, Duration::from_secs(10));
        assert_eq!(s.mqtt.credentials, None);
        assert_eq!(s.log.format, LogFormat::Text);
        assert_eq!(s.rules.path, PathBuf::from("/etc/argus/rules.toml"));
        assert_eq!(s.rules.allowed_lateness, Duration::from_secs(300));
        assert_eq!(s.rules.idle_source_after, Duration::from_secs(600));
        assert_eq!(s.rules.max_delay, Duration::from_secs(900));
        assert_eq!(s.rules.advance_every, Duration::from_secs(1));
        assert_eq!(
            s.store.backend,
            StoreBackend::Sqlite(PathBuf::from("/etc/argus/argus.sqlite"))
        );
        assert_eq!(s.store.retention_months, None);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_with_their_name() {
        let base = "[registry]\npath = \"r.toml\"\n";
        assert!(error(&format!("{base}[mqtt]\nhots = \"x\"\n")).contains("unknown field `hots`"));
        assert!(error(&format!("{base}[mqtt]\nhots = \"x\"\n")).contains("line 4"));
        assert!(error(&format!("{base}[kafka]\nsession_timeout_ms = 5\n"))
            .contains("kafka.session_timeout_ms"));
        assert!(
            error(&format!("{base}[metrics]\nlisten_addr = \"nowhere\"\n"))
                .contains("metrics.listen_addr")
        );
        assert!(error(&format!("{base}[log]\nformat = \"xml\"\n")).contains("log.format"));
        assert!(
            error(&format!("{base}[clickhouse]\ndatabase = \"a;drop\"\n"))
                .contains("clickhouse.database")
        );
        assert!(
            error(&format!("{base}[kafka.topics]\ndlq = \"bad topic\"\n"))
                .contains("kafka.topics.dlq")
        );
        assert!(error(&format!("{base}[mqtt]\npassword = \"p\"\n")).contains("mqtt.username"));
        let backend = error(&format!("{base}[store]\nbackend = \"postgres\"\n"));
        assert!(
            backend.contains(r#"store.backend: must be "clickhouse" or "sqlite", got "postgres""#),
            "{backend}"
        );
        assert!(error(&format!("{base}[store]\nretention_months = 5000\n"))
            .contains("store.retention_months"));
        assert!(error("[log]\nfilter = \"info\"\n").contains("missing field `registry`"));
        let delay = error(&format!(
            "{base}[rules]\nallowed_lateness_secs = 600\nmax_delay_secs = 600\n"
        ));
        assert!(
            delay.contains("rules.max_delay_secs: must be more than rules.allowed_lateness_secs (600), got 600"),
            "{delay}"
        );
        assert!(
            error(&format!("{base}[rules]\nidle_source_after_secs = 1\n"))
                .contains("rules.idle_source_after_secs")
        );
        assert!(error(&format!("{base}[api]\nsession_idle_minutes = 0\n"))
            .contains("api.session_idle_minutes"));
        assert!(error(&format!("{base}[api]\nlogin_lockout_failures = 0\n"))
            .contains("api.login_lockout_failures"));
        assert!(error(&format!("{base}[api]\nsession_max_days = 1\n"))
            .contains("unknown field `session_max_days`"));
    }

    #[test]
    fn sources_are_switched_by_config_and_the_embedded_broker_is_checked() {
        let base = "[registry]\npath = \"r.toml\"\n";
        let s = load(base).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.kafka.enabled && s.mqtt.enabled && s.hj212.enabled && !s.mqtt.embedded);
        let off = format!("{base}[kafka]\nenabled = false\n[hj212]\nenabled = false\n");
        let s = load(&off).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.kafka.enabled && !s.hj212.enabled && s.mqtt.enabled);
        let embedded =
            format!("{base}[mqtt]\nembedded = true\nusername = \"u\"\npassword = \"p\"\n");
        assert!(load(&embedded).is_ok_and(|s| s.mqtt.embedded));
        let anonymous = format!("{base}[mqtt]\nembedded = true\n");
        assert!(
            error(&anonymous).contains("mqtt.username"),
            "{}",
            error(&anonymous)
        );
        let remote = embedded.replace("embedded = true", "embedded = true\nhost = \"10.0.0.5\"");
        assert!(error(&remote).contains("loopback"), "{}", error(&remote));
        let switched_off = format!("{base}[mqtt]\nenabled = false\nembedded = true\n");
        assert!(load(&switched_off).is_ok_and(|s| !s.mqtt.embedded));
    }

    #[test]
    fn secrets_come_from_the_environment_and_never_show_in_debug() {
        let text =
            "[registry]\npath = \"r.toml\"\n[mqtt]\nusername = \"argus\"\npassword = \"in-file\"\n";
        let env = |name: &str| (name == "ARGUS_MQTT_PASSWORD").then(|| "from-env".to_owned());
        let s = Settings::from_toml_str(text, "t", Path::new("."), env)
            .unwrap_or_else(|e| panic!("{e}"));
        let credentials = s
            .mqtt
            .credentials
            .unwrap_or_else(|| panic!("no credentials"));
        assert_eq!(credentials.password, "from-env");
        assert!(!format!("{credentials:?}").contains("from-env"));
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/argus.toml"
        ));
        let s = Settings::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.registry_path.ends_with("registry.toml"));
        assert!(s.mqtt.credentials.is_some());
    }

    #[test]
    fn webhooks_are_checked_and_their_key_files_resolve_against_the_folder() {
        let base = "[registry]\npath = \"r.toml\"\n";
        let hook = |name: &str, url: &str| {
            format!(
                "[[delivery.webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\n\
                 department = \"coal\"\nkey_id = \"k\"\nsecret_file = \"keys/coal.key\"\n"
            )
        };
        let one = format!("{base}{}", hook("coal", "https://example.gov.cn/hook"));
        let s = load(&one).unwrap_or_else(|e| panic!("{e}"));
        let w = &s.delivery.webhooks[0];
        assert_eq!(w.secret_file, PathBuf::from("/etc/argus/keys/coal.key"));
        assert_eq!(
            (w.town.as_deref(), s.delivery.retry_max.as_secs()),
            (None, 300)
        );
        let twice = format!("{one}{}", hook("coal", "http://127.0.0.1:1/"));
        assert!(
            error(&twice).contains("\"coal\" is given twice"),
            "{}",
            error(&twice)
        );
        let bad_url = format!("{base}{}", hook("coal", "ftp://example/"));
        assert!(error(&bad_url).contains("delivery.webhooks.url"));
        let bad_name = format!("{base}{}", hook("Coal Team", "http://a/"));
        assert!(error(&bad_name).contains("delivery.webhooks.name"));
        let retry = format!("{base}[delivery]\nretry_initial_ms = 5\n");
        assert!(error(&retry).contains("delivery.retry_initial_ms"));
    }
}
