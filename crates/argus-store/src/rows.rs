//! The rows Argus writes, and how readings, alert transitions and dead letters become rows
//! (pure: no I/O). Column names and types are listed once per table ([`COLUMNS`]) and checked
//! against the server's at startup, because the ClickHouse client cannot check them on 18.16.

use std::hash::Hasher;

use argus_ingest::DeadLetter;
use argus_model::{
    Credential, CredentialKind, Event, EventKind, Interval, Jurisdiction, Reading, Ticket,
    TicketOutcome, TicketState, Timestamp, User, UserRole,
};
use argus_rules::AlertTransition;
use argus_rules::Transition;
use argus_tickets::TicketEvent;
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// The columns of `readings` and `logger_readings` (one row type, [`ReadingRow`]).
const READING_COLUMNS: &[(&str, &str)] = &[
    ("corrected", "Nullable(Float64)"),
    ("data_interval", "String"),
    ("enterprise_id", "String"),
    ("event_ms", "Int64"),
    ("event_time", "DateTime"),
    ("flag", "String"),
    ("metric", "String"),
    ("receive_ms", "Int64"),
    ("source", "String"),
    ("value", "Float64"),
];

/// The columns of each table Argus writes, as the server reports them (name, type), by name.
pub const COLUMNS: &[(&str, &[(&str, &str)])] = &[
    ("readings", READING_COLUMNS),
    ("logger_readings", READING_COLUMNS),
    (
        "alert_events",
        &[
            ("alert_id", "String"),
            ("ended_ms", "Int64"),
            ("enterprise_id", "String"),
            ("kind", "String"),
            ("limit_value", "Float64"),
            ("mean", "Float64"),
            ("metric", "String"),
            ("muted", "UInt8"),
            ("peak", "Float64"),
            ("recorded_ms", "Int64"),
            ("rule_id", "String"),
            ("severity", "String"),
            ("source", "String"),
            ("standard", "String"),
            ("started_at", "DateTime"),
            ("started_ms", "Int64"),
            ("town", "String"),
            ("transition", "String"),
            ("value", "Float64"),
        ],
    ),
    (
        "alerts",
        &[
            ("acknowledged_by", "String"),
            ("acknowledged_ms", "Int64"),
            ("alert_id", "String"),
            ("ended_ms", "Int64"),
            ("enterprise_id", "String"),
            ("kind", "String"),
            ("limit_value", "Float64"),
            ("mean", "Float64"),
            ("metric", "String"),
            ("muted", "UInt8"),
            ("peak", "Float64"),
            ("rule_id", "String"),
            ("severity", "String"),
            ("source", "String"),
            ("standard", "String"),
            ("started_at", "DateTime"),
            ("started_ms", "Int64"),
            ("status", "String"),
            ("town", "String"),
            ("value", "Float64"),
            ("version", "UInt64"),
        ],
    ),
    (
        "ticket_events",
        &[
            ("actor", "String"),
            ("alert_ids", "Array(String)"),
            ("at", "DateTime"),
            ("at_ms", "Int64"),
            ("event", "String"),
            ("from_state", "String"),
            ("hash", "String"),
            ("note", "String"),
            ("outcome", "String"),
            ("prev_hash", "String"),
            ("request_key", "String"),
            ("role", "String"),
            ("seq", "UInt32"),
            ("ticket_id", "String"),
            ("to_state", "String"),
        ],
    ),
    (
        "tickets",
        &[
            ("alert_ids", "Array(String)"),
            ("created_ms", "Int64"),
            ("deadline_ms", "Int64"),
            ("department", "String"),
            ("enterprise_id", "String"),
            ("outcome", "String"),
            ("severity", "String"),
            ("state", "String"),
            ("team", "String"),
            ("ticket_id", "String"),
            ("town", "String"),
            ("version", "UInt32"),
        ],
    ),
    (
        "alert_acks",
        &[
            ("actor", "String"),
            ("alert_id", "String"),
            ("at", "DateTime"),
            ("at_ms", "Int64"),
            ("hash", "String"),
            ("note", "String"),
            ("prev_hash", "String"),
            ("request_key", "String"),
            ("seq", "UInt64"),
        ],
    ),
    (
        "rejected_inputs",
        &[
            ("detail", "String"),
            ("fingerprint", "UInt64"),
            ("origin", "String"),
            ("raw", "String"),
            ("raw_len", "UInt64"),
            ("reason", "String"),
            ("received_at", "DateTime"),
            ("received_ms", "Int64"),
            ("transport", "String"),
        ],
    ),
    (
        "conflicts",
        &[
            ("data_interval", "String"),
            ("enterprise_id", "String"),
            ("event_ms", "Int64"),
            ("event_time", "DateTime"),
            ("flag", "String"),
            ("metric", "String"),
            ("receive_ms", "Int64"),
            ("received_at", "DateTime"),
            ("source", "String"),
            ("stored_flag", "String"),
            ("stored_receive_ms", "Int64"),
            ("stored_value", "Float64"),
            ("value", "Float64"),
        ],
    ),
    (
        "users",
        &[
            ("changed_ms", "Int64"),
            ("created_ms", "Int64"),
            ("department", "String"),
            ("disabled", "UInt8"),
            ("display_name", "String"),
            ("name", "String"),
            ("password_hash", "String"),
            ("role", "String"),
            ("town", "String"),
            ("version", "UInt64"),
        ],
    ),
    (
        "credentials",
        &[
            ("created_ms", "Int64"),
            ("expires_ms", "Int64"),
            ("id", "String"),
            ("kind", "String"),
            ("last_used_ms", "Int64"),
            ("name", "String"),
            ("revoked_ms", "Int64"),
            ("secret_hash", "String"),
            ("user", "String"),
            ("version", "UInt64"),
        ],
    ),
    (
        "outbox",
        &[
            ("attempts", "UInt32"),
            ("created_ms", "Int64"),
            ("delivery_id", "String"),
            ("idempotency_key", "String"),
            ("last_error", "String"),
            ("next_ms", "Int64"),
            ("seq", "UInt32"),
            ("state", "String"),
            ("target", "String"),
            ("ticket_id", "String"),
            ("version", "UInt32"),
        ],
    ),
    (
        "deliveries",
        &[
            ("at_ms", "Int64"),
            ("attempt", "UInt32"),
            ("delivery_id", "String"),
            ("duration_ms", "UInt32"),
            ("error", "String"),
            ("outcome", "String"),
            ("seq", "UInt32"),
            ("status", "UInt16"),
            ("target", "String"),
            ("ticket_id", "String"),
        ],
    ),
    (
        "events",
        &[
            ("body", "String"),
            ("chain_seq", "UInt64"),
            ("enterprise_id", "String"),
            ("event_ms", "Int64"),
            ("event_time", "DateTime"),
            ("hash", "String"),
            ("kind", "String"),
            ("prev_hash", "String"),
            ("receive_ms", "Int64"),
            ("request_key", "String"),
            ("source", "String"),
            ("transport", "String"),
            ("until_ms", "Int64"),
        ],
    ),
];

/// Seconds since the epoch for a DateTime column (clamped to its range).
fn seconds(t: Timestamp) -> u32 {
    u32::try_from(t.as_millis().div_euclid(1_000)).unwrap_or(if t.as_millis() < 0 {
        0
    } else {
        u32::MAX
    })
}

/// A row of `readings`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ReadingRow {
    /// The source (MN or device id).
    pub source: String,
    /// The metric code.
    pub metric: String,
    /// Event time, UTC ms.
    pub event_ms: i64,
    /// Event time, seconds (partitioning and rollups).
    pub event_time: u32,
    /// The value.
    pub value: f64,
    /// The data flag (N valid).
    pub flag: String,
    /// The enterprise of a registered source, else empty.
    pub enterprise_id: String,
    /// When Argus received it, UTC ms.
    pub receive_ms: i64,
    /// What span the value stands for (`real_time`, `minute`, `hour`, `day`): real-time
    /// readings go to `readings`, the logger's averages to `logger_readings`.
    #[serde(default = "real_time")]
    pub data_interval: String,
    /// The logger's O2-corrected value of an average (`ZsAvg`), if sent.
    #[serde(default)]
    pub corrected: Option<f64>,
}

fn real_time() -> String {
    Interval::RealTime.as_str().to_owned()
}

impl ReadingRow {
    /// Whether the row is a real-time reading (table `readings`), not a logger's average
    /// (table `logger_readings`).
    pub fn is_real_time(&self) -> bool {
        self.data_interval == Interval::RealTime.as_str()
    }

    /// The table the row belongs in.
    pub fn table(&self) -> &'static str {
        if self.is_real_time() {
            "readings"
        } else {
            "logger_readings"
        }
    }

    /// The row's key: source, metric, data_interval, event time.
    pub fn key(&self) -> ReadingKey {
        (
            self.source.clone(),
            self.metric.clone(),
            self.data_interval.clone(),
            self.event_ms,
        )
    }

    /// The row of a reading of `enterprise_id` (empty when unregistered).
    pub fn new(r: &Reading, enterprise_id: &str) -> Self {
        Self {
            source: r.source.as_str().to_owned(),
            metric: r.metric.as_str().to_owned(),
            event_ms: r.event_time.as_millis(),
            event_time: seconds(r.event_time),
            value: r.value,
            flag: r.flag.as_char().to_string(),
            enterprise_id: enterprise_id.to_owned(),
            receive_ms: r.receive_time.as_millis(),
            data_interval: r.interval.as_str().to_owned(),
            corrected: r.corrected,
        }
    }

    /// The reading a row holds, if it is a row Argus wrote (a known data flag and interval).
    pub fn to_reading(&self) -> Option<Reading> {
        let mut flag = self.flag.chars();
        let flag = argus_model::DataFlag::from_char(flag.next()?)?;
        let interval = Interval::parse(&self.data_interval)?;
        Some(Reading {
            source: argus_model::SourceId::from(self.source.as_str()),
            metric: argus_model::MetricCode::parse(&self.metric),
            value: self.value,
            flag,
            event_time: Timestamp(self.event_ms),
            receive_time: Timestamp(self.receive_ms),
            interval,
            corrected: self.corrected,
        })
    }
}

/// A row of `alert_events` (one transition).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct AlertEventRow {
    /// Deterministic alert id, 16 hex digits.
    pub alert_id: String,
    /// `fired`, `updated` or `resolved`.
    pub transition: String,
    /// Rule id.
    pub rule_id: String,
    /// Alert kind.
    pub kind: String,
    /// Severity.
    pub severity: String,
    /// Enterprise.
    pub enterprise_id: String,
    /// The enterprise's town.
    pub town: String,
    /// The point.
    pub source: String,
    /// The metric (`*` for rules about a whole point).
    pub metric: String,
    /// The standard the limit comes from.
    pub standard: String,
    /// Start, seconds (partitioning).
    pub started_at: u32,
    /// Start, ms.
    pub started_ms: i64,
    /// End, ms (0 unless resolved).
    pub ended_ms: i64,
    /// The value that fired it, its new worst (updated), or its worst (resolved).
    pub value: f64,
    /// Worst value while firing (resolved), else `value`.
    pub peak: f64,
    /// Mean value while firing (resolved), else `value`.
    pub mean: f64,
    /// The limit, for limit rules (else 0).
    pub limit_value: f64,
    /// 1 when a maintenance notice covers its start.
    pub muted: u8,
    /// When Argus stored it, ms.
    pub recorded_ms: i64,
}

/// A row of `alerts`: the alert as of its latest transition.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct AlertRow {
    /// Deterministic alert id, 16 hex digits.
    pub alert_id: String,
    /// Rule id.
    pub rule_id: String,
    /// Alert kind.
    pub kind: String,
    /// Severity.
    pub severity: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Enterprise.
    pub enterprise_id: String,
    /// The enterprise's town.
    pub town: String,
    /// The point.
    pub source: String,
    /// The metric.
    pub metric: String,
    /// The standard.
    pub standard: String,
    /// Start, seconds.
    pub started_at: u32,
    /// Start, ms.
    pub started_ms: i64,
    /// End, ms (0 while firing).
    pub ended_ms: i64,
    /// The value that fired it, or its latest worst.
    pub value: f64,
    /// Worst value.
    pub peak: f64,
    /// Mean value (resolved), else the latest value.
    pub mean: f64,
    /// The limit.
    pub limit_value: f64,
    /// 1 when muted by a maintenance notice.
    pub muted: u8,
    /// Who acknowledged it (empty: nobody yet).
    pub acknowledged_by: String,
    /// When, ms (0: not yet).
    pub acknowledged_ms: i64,
    /// Replacing version: see [`version`] (the latest state wins; an acknowledged row wins
    /// over the same state unacknowledged).
    pub version: u64,
}

/// The versions of `alerts` rows: each state an even number, plus one once acknowledged, so
/// that a later state replaces an earlier one and an acknowledgement is never replaced by the
/// same state without it.
pub mod version {
    /// Fired.
    pub const FIRED: u64 = 2;
    /// Updated (a new worst value).
    pub const UPDATED: u64 = 4;
    /// Resolved.
    pub const RESOLVED: u64 = 6;
    /// Added once acknowledged.
    pub const ACKNOWLEDGED: u64 = 1;
    /// Added when muted (from its start, or later by a notice or silence that arrived after
    /// it fired): a muted row replaces the unmuted one of the same transition, and once muted
    /// every later transition of the alert is muted too, so the order holds.
    pub const MUTED: u64 = 8;
}

impl AlertRow {
    /// The row acknowledged by `by` at `at_ms`.
    pub fn acknowledge(&mut self, by: &str, at_ms: i64) {
        by.clone_into(&mut self.acknowledged_by);
        self.acknowledged_ms = at_ms;
        self.version |= version::ACKNOWLEDGED;
    }
}

/// A row of `alert_acks`: a person acknowledged an alert (append only).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct AlertAckRow {
    /// The alert.
    pub alert_id: String,
    /// Who.
    pub actor: String,
    /// Why, or what they did.
    pub note: String,
    /// When, seconds.
    pub at: u32,
    /// When, ms.
    pub at_ms: i64,
    /// The idempotency key of the request (`RequestKey::stored`), or empty.
    pub request_key: String,
    /// Its place in the chain of acknowledgements, from 1 (0: written before the chain).
    #[serde(default)]
    pub seq: u64,
    /// The hash of the acknowledgement before it (empty for the first).
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 of its content and `prev_hash` (`audit::ack_hash`).
    #[serde(default)]
    pub hash: String,
}

impl AlertAckRow {
    /// The row of an acknowledgement.
    pub fn new(a: &crate::Acknowledgement) -> Self {
        Self {
            alert_id: a.alert_id.clone(),
            actor: a.actor.clone(),
            note: a.note.clone(),
            at: seconds(a.at),
            at_ms: a.at.as_millis(),
            request_key: a.request_key.clone(),
            seq: 0,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// The rows of one transition: its event and the alert's current row.
pub fn alert_rows(
    t: &AlertTransition,
    town: &str,
    recorded: Timestamp,
) -> (AlertEventRow, AlertRow) {
    let i = &t.instance;
    let (name, version, status) = match t.transition {
        Transition::Fired { .. } => ("fired", version::FIRED, "firing"),
        Transition::Updated { .. } => ("updated", version::UPDATED, "firing"),
        Transition::Resolved { .. } => ("resolved", version::RESOLVED, "resolved"),
    };
    // A notice or silence that arrived later: the alert as it stands, now muted.
    let name = if t.muted_later.is_some() {
        "muted"
    } else {
        name
    };
    let version = if t.muted {
        version | version::MUTED
    } else {
        version
    };
    let (started, ended, value, peak, mean) = match t.transition {
        Transition::Fired { started_at, value } | Transition::Updated { started_at, value } => {
            (started_at, 0, value, value, value)
        }
        Transition::Resolved {
            started_at,
            ended_at,
            peak,
            mean,
        } => (started_at, ended_at.as_millis(), peak, peak, mean),
    };
    let event = AlertEventRow {
        alert_id: format!("{:016x}", t.alert_id),
        transition: name.to_owned(),
        rule_id: i.rule_id.to_string(),
        kind: t.kind.as_str().to_owned(),
        severity: i.severity.as_str().to_owned(),
        enterprise_id: i.enterprise_id.to_string(),
        town: town.to_owned(),
        source: i.point.as_str().to_owned(),
        metric: i.metric.map_or("*", |m| m.code()).to_owned(),
        standard: i.standard.to_string(),
        started_at: seconds(started),
        started_ms: started.as_millis(),
        ended_ms: ended,
        value,
        peak,
        mean,
        limit_value: i.limit_value().unwrap_or(0.0),
        muted: u8::from(t.muted),
        recorded_ms: recorded.as_millis(),
    };
    let alert = AlertRow {
        alert_id: event.alert_id.clone(),
        rule_id: event.rule_id.clone(),
        kind: event.kind.clone(),
        severity: event.severity.clone(),
        status: status.to_owned(),
        enterprise_id: event.enterprise_id.clone(),
        town: event.town.clone(),
        source: event.source.clone(),
        metric: event.metric.clone(),
        standard: event.standard.clone(),
        started_at: event.started_at,
        started_ms: event.started_ms,
        ended_ms: event.ended_ms,
        value,
        peak,
        mean,
        limit_value: event.limit_value,
        muted: event.muted,
        acknowledged_by: String::new(),
        acknowledged_ms: 0,
        version,
    };
    (event, alert)
}

/// One hour of a point's valid real-time readings of one metric (the `readings_1h` rollup).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct HourRow {
    /// Start of the hour, UTC ms.
    pub hour_ms: i64,
    /// Mean of the valid values.
    pub avg: f64,
    /// Lowest valid value.
    pub min: f64,
    /// Highest valid value.
    pub max: f64,
    /// How many valid values.
    pub samples: u64,
}

/// A row of `rejected_inputs` (one dead letter).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct RejectedRow {
    /// When received, seconds.
    pub received_at: u32,
    /// When received, ms.
    pub received_ms: i64,
    /// Transport.
    pub transport: String,
    /// Where exactly.
    pub origin: String,
    /// Why (a bounded reason code).
    pub reason: String,
    /// The decoder's message.
    pub detail: String,
    /// The raw input (at most 16 KiB; bytes that are not UTF-8 replaced).
    pub raw: String,
    /// The input's full length.
    pub raw_len: u64,
    /// With `origin` and `reason`, what makes two rows one dead letter ([`fingerprint`]): the
    /// store keeps one of them.
    #[serde(default)]
    pub fingerprint: u64,
}

/// What identifies a dead letter delivered again (after a crash or a broker restart): its bytes
/// and length, and, unless it came from Kafka, its receive time. A Kafka origin names one
/// message (topic, partition, offset), so a redelivery has the same origin and fingerprint and
/// is kept once; an MQTT topic or a TCP peer carries many messages, and a resend of the same
/// bytes cannot be told from a redelivery, so each is kept.
pub fn fingerprint(d: &DeadLetter) -> u64 {
    let mut h = argus_rules::fnv::Fnv::default();
    h.write(&d.raw);
    h.write(&(d.raw_len as u64).to_le_bytes());
    if d.transport != argus_ingest::Transport::Kafka {
        h.write(&d.received_at.as_millis().to_le_bytes());
    }
    h.finish()
}

impl RejectedRow {
    /// The row of a dead letter.
    pub fn new(d: &DeadLetter) -> Self {
        Self {
            fingerprint: fingerprint(d),
            received_at: seconds(d.received_at),
            received_ms: d.received_at.as_millis(),
            transport: d.transport.as_str().to_owned(),
            origin: d.origin.clone(),
            reason: d.reason.as_str().to_owned(),
            detail: d.detail.clone(),
            raw: String::from_utf8_lossy(&d.raw).into_owned(),
            raw_len: d.raw_len as u64,
        }
    }
}

fn outcome_name(outcome: Option<TicketOutcome>) -> String {
    match outcome {
        Some(TicketOutcome::ViolationConfirmed) => "violation_confirmed",
        Some(TicketOutcome::FalseAlarm) => "false_alarm",
        Some(TicketOutcome::EquipmentFault) => "equipment_fault",
        None => "",
    }
    .to_owned()
}

/// A row of `ticket_events`: one entry of a ticket's legal record.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TicketEventRow {
    /// Ticket id, 16 hex digits.
    pub ticket_id: String,
    /// Position in the ticket's record, from 1.
    pub seq: u32,
    /// When, seconds.
    pub at: u32,
    /// When, ms.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// In which role.
    pub role: String,
    /// What happened (created, alert_added, state_changed, escalated, alert_muted).
    pub event: String,
    /// State before (empty at creation).
    pub from_state: String,
    /// State after.
    pub to_state: String,
    /// Note.
    pub note: String,
    /// Evidence: alert ids.
    pub alert_ids: Vec<String>,
    /// Outcome, when closed.
    pub outcome: String,
    /// The idempotency key of the request that made it (`RequestKey::stored`); empty for
    /// Argus's own events and requests without one.
    pub request_key: String,
    /// The `hash` of the line before it in the ticket's record (empty for the first, and after
    /// lines written before the chain): see [`crate::audit`].
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 of this line's content and `prev_hash`, 64 hex digits; set by the store when it
    /// writes the line (empty for lines written before migration 16).
    #[serde(default)]
    pub hash: String,
}

impl TicketEventRow {
    /// The row of a ticket event.
    pub fn new(e: &TicketEvent) -> Self {
        Self {
            ticket_id: format!("{:016x}", e.ticket_id),
            seq: e.seq,
            at: seconds(e.at),
            at_ms: e.at.as_millis(),
            actor: e.actor.clone(),
            role: e.role.as_str().to_owned(),
            event: e.kind.as_str().to_owned(),
            from_state: e.from.map_or("", TicketState::as_str).to_owned(),
            to_state: e.to.as_str().to_owned(),
            note: e.note.clone(),
            alert_ids: e.alert_ids.iter().map(|a| format!("{a:016x}")).collect(),
            outcome: outcome_name(e.outcome),
            request_key: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// A row of `tickets`: a ticket as of its latest event.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TicketRow {
    /// Ticket id, 16 hex digits.
    pub ticket_id: String,
    /// Enterprise.
    pub enterprise_id: String,
    /// Town.
    pub town: String,
    /// Department.
    pub department: String,
    /// The team it is routed to.
    pub team: String,
    /// Highest severity of its alerts.
    pub severity: String,
    /// Current state.
    pub state: String,
    /// Created, ms.
    pub created_ms: i64,
    /// Deadline of the current state, ms (0: none).
    pub deadline_ms: i64,
    /// Outcome, when closed.
    pub outcome: String,
    /// Its alerts.
    pub alert_ids: Vec<String>,
    /// Replacing version: the seq of its latest event.
    pub version: u32,
}

impl TicketRow {
    /// The ticket a row holds, if it is a row Argus wrote.
    pub fn to_ticket(&self) -> Option<Ticket> {
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        let outcome = match self.outcome.as_str() {
            "violation_confirmed" => Some(TicketOutcome::ViolationConfirmed),
            "false_alarm" => Some(TicketOutcome::FalseAlarm),
            "equipment_fault" => Some(TicketOutcome::EquipmentFault),
            _ => None,
        };
        Some(Ticket {
            ticket_id: hex(&self.ticket_id)?,
            alert_ids: self
                .alert_ids
                .iter()
                .map(|a| hex(a))
                .collect::<Option<_>>()?,
            enterprise_id: self.enterprise_id.clone(),
            town: self.town.clone(),
            department: self.department.clone(),
            severity: self.severity.parse().ok()?,
            state: TicketState::parse(&self.state)?,
            created_at: Timestamp(self.created_ms),
            deadline: (self.deadline_ms != 0).then_some(Timestamp(self.deadline_ms)),
            outcome,
        })
    }

    /// The row of a ticket routed to `team`, as of event `seq`.
    pub fn new(t: &Ticket, team: &str, seq: u32) -> Self {
        Self {
            ticket_id: format!("{:016x}", t.ticket_id),
            enterprise_id: t.enterprise_id.clone(),
            town: t.town.clone(),
            department: t.department.clone(),
            team: team.to_owned(),
            severity: t.severity.as_str().to_owned(),
            state: t.state.as_str().to_owned(),
            created_ms: t.created_at.as_millis(),
            deadline_ms: t.deadline.map_or(0, Timestamp::as_millis),
            outcome: outcome_name(t.outcome),
            alert_ids: t.alert_ids.iter().map(|a| format!("{a:016x}")).collect(),
            version: seq,
        }
    }
}

/// An RFC 3339 time of `ms`, or none for 0 (the store's "not yet").
fn time_or_none(ms: i64) -> Option<String> {
    (ms != 0).then(|| Timestamp(ms).to_rfc3339())
}

/// An optional text: none when empty (the store's "none").
fn text_or_none(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl AlertRow {
    /// The canonical view of the alert as stored.
    pub fn view(&self) -> argus_model::AlertView {
        let resolved = self.status == "resolved";
        argus_model::AlertView {
            alert_id: self.alert_id.clone(),
            rule: self.rule_id.clone(),
            kind: self.kind.clone(),
            severity: self.severity.clone(),
            status: self.status.clone(),
            enterprise: self.enterprise_id.clone(),
            town: Some(self.town.clone()),
            point: self.source.clone(),
            metric: text_or_none(&self.metric).filter(|m| m != "*"),
            standard: self.standard.clone(),
            started_at: Timestamp(self.started_ms).to_rfc3339(),
            ended_at: time_or_none(self.ended_ms),
            value: self.value,
            peak: Some(self.peak),
            mean: resolved.then_some(self.mean),
            limit: (self.limit_value != 0.0).then_some(self.limit_value),
            muted: self.muted != 0,
            acknowledged_by: text_or_none(&self.acknowledged_by),
            acknowledged_at: time_or_none(self.acknowledged_ms),
            transition: None,
        }
    }
}

impl TicketRow {
    /// The canonical view of the ticket as stored.
    pub fn view(&self) -> argus_model::TicketView {
        argus_model::TicketView {
            ticket_id: self.ticket_id.clone(),
            enterprise: self.enterprise_id.clone(),
            town: self.town.clone(),
            department: self.department.clone(),
            team: self.team.clone(),
            severity: self.severity.clone(),
            state: self.state.clone(),
            created_at: Timestamp(self.created_ms).to_rfc3339(),
            deadline: time_or_none(self.deadline_ms),
            outcome: text_or_none(&self.outcome),
            alert_ids: self.alert_ids.clone(),
            events: self.version,
        }
    }
}

impl TicketEventRow {
    /// The canonical view of this line of a ticket's record.
    pub fn view(&self) -> argus_model::TicketEventView {
        argus_model::TicketEventView {
            ticket_id: self.ticket_id.clone(),
            seq: self.seq,
            at: Timestamp(self.at_ms).to_rfc3339(),
            actor: self.actor.clone(),
            role: self.role.clone(),
            event: self.event.clone(),
            from: text_or_none(&self.from_state),
            to: self.to_state.clone(),
            note: self.note.clone(),
            alert_ids: self.alert_ids.clone(),
            outcome: text_or_none(&self.outcome),
            hash: self.hash.clone(),
        }
    }
}

impl AlertEventRow {
    /// The canonical view of the alert as this transition left it.
    pub fn view(&self) -> argus_model::AlertView {
        let resolved = self.transition == "resolved";
        argus_model::AlertView {
            alert_id: self.alert_id.clone(),
            rule: self.rule_id.clone(),
            kind: self.kind.clone(),
            severity: self.severity.clone(),
            status: if resolved { "resolved" } else { "firing" }.to_owned(),
            enterprise: self.enterprise_id.clone(),
            town: Some(self.town.clone()),
            point: self.source.clone(),
            metric: text_or_none(&self.metric).filter(|m| m != "*"),
            standard: self.standard.clone(),
            started_at: Timestamp(self.started_ms).to_rfc3339(),
            ended_at: time_or_none(self.ended_ms),
            value: self.value,
            peak: resolved.then_some(self.peak),
            mean: resolved.then_some(self.mean),
            limit: (self.limit_value != 0.0).then_some(self.limit_value),
            muted: self.muted != 0,
            acknowledged_by: None,
            acknowledged_at: None,
            transition: Some(self.transition.clone()),
        }
    }
}

/// What the record holds for a reading key (source, metric, data_interval, event time): the first
/// value received, which stays.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct StoredReading {
    /// The source.
    pub source: String,
    /// The metric code.
    pub metric: String,
    /// The interval.
    pub data_interval: String,
    /// Event time, UTC ms.
    pub event_ms: i64,
    /// The value on record.
    pub value: f64,
    /// Its data flag.
    pub flag: String,
    /// When it was received, UTC ms.
    pub receive_ms: i64,
}

/// A row of `conflicts`: a reading delivered again with another value or flag than the one on
/// record, kept apart (the record keeps the first). One row per conflicting delivery.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ConflictRow {
    /// The source (MN or device id).
    pub source: String,
    /// The metric code.
    pub metric: String,
    /// The reading's event time, UTC ms.
    pub event_ms: i64,
    /// The reading's event time, seconds.
    pub event_time: u32,
    /// The reading's interval.
    #[serde(default = "real_time")]
    pub data_interval: String,
    /// The enterprise of a registered source, else empty.
    pub enterprise_id: String,
    /// The value on record (the first received).
    pub stored_value: f64,
    /// Its data flag.
    pub stored_flag: String,
    /// When the value on record was received, UTC ms.
    pub stored_receive_ms: i64,
    /// The value delivered later.
    pub value: f64,
    /// Its data flag.
    pub flag: String,
    /// When the later delivery was received, UTC ms.
    pub receive_ms: i64,
    /// The same, seconds (partitioning).
    pub received_at: u32,
}

impl ConflictRow {
    fn new(stored: OnRecord<'_>, later: &ReadingRow) -> Self {
        Self {
            source: later.source.clone(),
            metric: later.metric.clone(),
            event_ms: later.event_ms,
            event_time: later.event_time,
            data_interval: later.data_interval.clone(),
            enterprise_id: later.enterprise_id.clone(),
            stored_value: stored.value,
            stored_flag: stored.flag.to_owned(),
            stored_receive_ms: stored.receive_ms,
            value: later.value,
            flag: later.flag.clone(),
            receive_ms: later.receive_ms,
            received_at: seconds(Timestamp(later.receive_ms)),
        }
    }

    /// The conflict as an input to detection (a `data_integrity` alert of the point): an event
    /// at the later delivery's receive time.
    pub fn to_event(&self) -> Event {
        Event {
            enterprise_id: (!self.enterprise_id.is_empty()).then(|| self.enterprise_id.clone()),
            source: Some(argus_model::SourceId::from(self.source.as_str())),
            event_time: Timestamp(self.receive_ms),
            receive_time: Timestamp(self.receive_ms),
            kind: EventKind::ReadingConflict {
                metric: argus_model::MetricCode::parse(&self.metric),
                reading_time: Timestamp(self.event_ms),
                stored: self.stored_value,
                received: self.value,
            },
        }
    }

    fn same_delivery(&self, other: &ConflictRow) -> bool {
        (
            &self.source,
            &self.metric,
            &self.data_interval,
            self.event_ms,
            self.receive_ms,
        ) == (
            &other.source,
            &other.metric,
            &other.data_interval,
            other.event_ms,
            other.receive_ms,
        )
    }
}

/// A reading key: source, metric, data_interval, event time (ms).
pub type ReadingKey = (String, String, String, i64);

/// The value on record of a reading key (the first received), borrowed.
#[derive(Debug, Clone, Copy)]
pub struct OnRecord<'a> {
    /// The value.
    pub value: f64,
    /// Its data flag.
    pub flag: &'a str,
    /// When it was received, UTC ms.
    pub receive_ms: i64,
}

impl<'a> From<&'a StoredReading> for OnRecord<'a> {
    fn from(s: &'a StoredReading) -> Self {
        Self {
            value: s.value,
            flag: &s.flag,
            receive_ms: s.receive_ms,
        }
    }
}

impl<'a> From<&'a ReadingRow> for OnRecord<'a> {
    fn from(r: &'a ReadingRow) -> Self {
        Self {
            value: r.value,
            flag: &r.flag,
            receive_ms: r.receive_ms,
        }
    }
}

/// A reading whose key is on record: whether it is a duplicate (the same value and flag);
/// otherwise it is a conflict, added to `conflicts` with its event in `events` unless already
/// there (a retried batch).
pub fn settle(
    later: &ReadingRow,
    on_record: OnRecord<'_>,
    conflicts: &mut Vec<ConflictRow>,
    events: &mut Vec<EventRow>,
) -> bool {
    if on_record.value.to_bits() == later.value.to_bits() && on_record.flag == later.flag {
        return true;
    }
    let conflict = ConflictRow::new(on_record, later);
    if !conflicts.iter().any(|c| c.same_delivery(&conflict)) {
        events.push(EventRow::new(&conflict.to_event(), "store"));
        conflicts.push(conflict);
    }
    false
}

/// Readings sorted by what the record already holds (first write wins): those to write (the
/// first of each key) stay, the others are [`settle`]d against the value on record or the first
/// of their key in the batch; returns the duplicates. Allocates nothing for a batch of new,
/// distinct keys (a steady feed).
pub fn first_writes(
    readings: &mut Vec<ReadingRow>,
    stored: &std::collections::HashMap<ReadingKey, StoredReading>,
    conflicts: &mut Vec<ConflictRow>,
    events: &mut Vec<EventRow>,
) -> u64 {
    // For each reading: the index of the first reading of its key in the batch, if not itself.
    let mut first: std::collections::HashMap<(&str, &str, &str, i64), usize> =
        std::collections::HashMap::with_capacity(readings.len());
    let earlier: Vec<Option<usize>> = readings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key = (
                r.source.as_str(),
                r.metric.as_str(),
                r.data_interval.as_str(),
                r.event_ms,
            );
            match first.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                    None
                }
            }
        })
        .collect();
    drop(first);
    if stored.is_empty() && earlier.iter().all(Option::is_none) {
        return 0;
    }
    let mut duplicates = 0;
    let keep: Vec<bool> = readings
        .iter()
        .zip(&earlier)
        .map(|(r, earlier)| {
            let on_record = (!stored.is_empty())
                .then(|| stored.get(&r.key()))
                .flatten()
                .map(OnRecord::from)
                .or_else(|| earlier.map(|j| OnRecord::from(&readings[j])));
            let Some(on_record) = on_record else {
                return true;
            };
            if settle(r, on_record, conflicts, events) {
                duplicates += 1;
            }
            false
        })
        .collect();
    let mut keep = keep.into_iter();
    readings.retain(|_| keep.next().unwrap_or(true));
    duplicates
}

/// A row of `events`: an enterprise event (production state, power-cut feedback, maintenance
/// notice) or a staff silence, as received (append only). `body` is the event as JSON, so it
/// can be taken back whole; `until_ms` is a notice's window end (else the event time).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct EventRow {
    /// The enterprise (empty if the event names none).
    pub enterprise_id: String,
    /// The source it concerns (empty for enterprise-wide events).
    pub source: String,
    /// `production_state`, `power_cut_feedback`, `maintenance_notice`, `reading_conflict`
    /// (found by the store, transport `store`).
    pub kind: String,
    /// Event time, seconds (partitioning).
    pub event_time: u32,
    /// Event time, ms.
    pub event_ms: i64,
    /// When Argus received it, ms.
    pub receive_ms: i64,
    /// A notice's window end, ms (else the event time).
    pub until_ms: i64,
    /// How it came (`kafka`, `mqtt`, `api` for a staff silence, `store` for a conflict).
    pub transport: String,
    /// The event as JSON.
    pub body: String,
    /// A staff silence's request key (`RequestKey::stored`), else empty.
    #[serde(default)]
    pub request_key: String,
    /// A staff silence's place in the chain of silences, from 1 (0: not a silence, or written
    /// before the chain).
    #[serde(default)]
    pub chain_seq: u64,
    /// A staff silence's link: the hash of the silence before it.
    #[serde(default)]
    pub prev_hash: String,
    /// A staff silence's SHA-256 of its content and `prev_hash` (`audit::silence_hash`).
    #[serde(default)]
    pub hash: String,
}

impl EventRow {
    /// The row of an event that came by `transport`.
    pub fn new(e: &Event, transport: &str) -> Self {
        let (kind, until) = match &e.kind {
            EventKind::ProductionState { .. } => ("production_state", e.event_time),
            EventKind::PowerCutFeedback { .. } => ("power_cut_feedback", e.event_time),
            EventKind::MaintenanceNotice { to, .. } => ("maintenance_notice", *to),
            EventKind::ReadingConflict { .. } => ("reading_conflict", e.event_time),
        };
        Self {
            enterprise_id: e.enterprise_id.clone().unwrap_or_default(),
            source: e
                .source
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            kind: kind.to_owned(),
            event_time: seconds(e.event_time),
            event_ms: e.event_time.as_millis(),
            receive_ms: e.receive_time.as_millis(),
            until_ms: until.as_millis(),
            transport: transport.to_owned(),
            body: serde_json::to_string(e).unwrap_or_default(),
            request_key: match &e.kind {
                EventKind::MaintenanceNotice { request, .. } => request.clone(),
                _ => String::new(),
            },
            chain_seq: 0,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// The event a row holds, if it is a row Argus wrote.
    pub fn to_event(&self) -> Option<Event> {
        serde_json::from_str(&self.body).ok()
    }
}

/// A row of `users`: a user as of its latest change (the highest version wins).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct UserRow {
    /// Login name.
    pub name: String,
    /// The name shown in the legal record.
    pub display_name: String,
    /// `admin`, `monitor`, `dispatcher`, `team` or `head`.
    pub role: String,
    /// A team member's town; empty otherwise.
    pub town: String,
    /// A team member's or head's department; empty otherwise.
    pub department: String,
    /// Argon2id hash (PHC string); empty: no password.
    pub password_hash: String,
    /// 1 when disabled.
    pub disabled: u8,
    /// Created, ms.
    pub created_ms: i64,
    /// Last changed, ms.
    pub changed_ms: i64,
    /// Replacing version.
    pub version: u64,
}

impl UserRow {
    /// The row of `user`.
    pub fn new(user: &User) -> Self {
        Self {
            name: user.name.clone(),
            display_name: user.display_name.clone(),
            role: user.role.as_str().to_owned(),
            town: user.jurisdiction.town().unwrap_or_default().to_owned(),
            department: user
                .jurisdiction
                .department()
                .unwrap_or_default()
                .to_owned(),
            password_hash: user.password_hash.clone(),
            disabled: u8::from(user.disabled),
            created_ms: user.created.as_millis(),
            changed_ms: user.changed.as_millis(),
            version: user.version,
        }
    }

    /// The user a row holds, if it is a row Argus wrote.
    pub fn to_user(&self) -> Option<User> {
        let role = UserRole::parse(&self.role)?;
        let jurisdiction = match role {
            UserRole::Team => Jurisdiction::Team {
                town: self.town.clone(),
                department: self.department.clone(),
            },
            UserRole::Head => Jurisdiction::Department(self.department.clone()),
            _ => Jurisdiction::County,
        };
        Some(User {
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            role,
            jurisdiction,
            password_hash: self.password_hash.clone(),
            disabled: self.disabled != 0,
            created: Timestamp(self.created_ms),
            changed: Timestamp(self.changed_ms),
            version: self.version,
        })
    }
}

/// A row of `credentials`: a session or API token as of its latest use or revocation (the
/// highest version wins, see [`argus_model::account::credential_version`]).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct CredentialRow {
    /// SHA-256 of the secret, 64 hex digits.
    pub secret_hash: String,
    /// Public id: the hash's first 16 hex digits.
    pub id: String,
    /// `session` or `token`.
    pub kind: String,
    /// Whose.
    pub user: String,
    /// A token's name.
    pub name: String,
    /// Made, ms.
    pub created_ms: i64,
    /// Stops working, ms.
    pub expires_ms: i64,
    /// Last used, ms.
    pub last_used_ms: i64,
    /// Revoked, ms (0: not revoked).
    pub revoked_ms: i64,
    /// Replacing version.
    pub version: u64,
}

impl CredentialRow {
    /// The row of `credential`.
    pub fn new(c: &Credential) -> Self {
        Self {
            secret_hash: c.secret_hash.clone(),
            id: c.id.clone(),
            kind: c.kind.as_str().to_owned(),
            user: c.user.clone(),
            name: c.name.clone(),
            created_ms: c.created.as_millis(),
            expires_ms: c.expires.as_millis(),
            last_used_ms: c.last_used.as_millis(),
            revoked_ms: c.revoked.map_or(0, Timestamp::as_millis),
            version: argus_model::account::credential_version(c),
        }
    }

    /// The credential a row holds, if it is a row Argus wrote.
    pub fn to_credential(&self) -> Option<Credential> {
        Some(Credential {
            secret_hash: self.secret_hash.clone(),
            id: self.id.clone(),
            kind: CredentialKind::parse(&self.kind)?,
            user: self.user.clone(),
            name: self.name.clone(),
            created: Timestamp(self.created_ms),
            expires: Timestamp(self.expires_ms),
            last_used: Timestamp(self.last_used_ms),
            revoked: (self.revoked_ms != 0).then_some(Timestamp(self.revoked_ms)),
        })
    }
}

/// A row of `outbox`: one ticket change to deliver to one target (a webhook, or the Kafka
/// topic), as of its latest attempt (the highest version wins).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct OutboxRow {
    /// `<target>/<ticket id>/<seq>`.
    pub delivery_id: String,
    /// The webhook's name, or `kafka:<topic>`.
    pub target: String,
    /// The ticket changed.
    pub ticket_id: String,
    /// Which line of its record.
    pub seq: u32,
    /// `<ticket id>-<seq>`: the same for every target and attempt.
    pub idempotency_key: String,
    /// When the change was made, ms.
    pub created_ms: i64,
    /// `pending`, `delivered` or `failed` (given up).
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due, ms.
    pub next_ms: i64,
    /// Why the latest attempt failed; empty once delivered.
    pub last_error: String,
    /// Replacing version: twice the attempts, plus one once delivered or given up.
    pub version: u32,
}

impl OutboxRow {
    /// A pending delivery of line `seq` of ticket `ticket_id` to `target`, made at `at_ms`.
    pub fn pending(target: &str, ticket_id: &str, seq: u32, at_ms: i64) -> Self {
        Self {
            delivery_id: format!("{target}/{ticket_id}/{seq}"),
            target: target.to_owned(),
            ticket_id: ticket_id.to_owned(),
            seq,
            idempotency_key: format!("{ticket_id}-{seq}"),
            created_ms: at_ms,
            state: "pending".to_owned(),
            attempts: 0,
            next_ms: at_ms,
            last_error: String::new(),
            version: 0,
        }
    }
}

/// A row of `deliveries`: one attempt to deliver an outbox row, and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DeliveryRow {
    /// The outbox row.
    pub delivery_id: String,
    /// Its target.
    pub target: String,
    /// The ticket changed.
    pub ticket_id: String,
    /// Which line of its record.
    pub seq: u32,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When it was made, ms.
    pub at_ms: i64,
    /// `delivered`, `retry` (failed, tried again later) or `failed` (given up).
    pub outcome: String,
    /// The HTTP status answered (0: none, or Kafka).
    pub status: u16,
    /// What went wrong; empty when delivered.
    pub error: String,
    /// How long it took, ms.
    pub duration_ms: u32,
}
