//! Argus storage: the supervision center's record. One [`Store`] contract with two backends:
//! [`ClickHouseStore`] (the supervision center's cluster, with the dashboards' rollups) and
//! [`SqliteStore`] (embedded, for a single node). Versioned migrations ([`migrations`]), the rows
//! Argus writes ([`rows`]) and how inputs become rows ([`Labels`]), retention by month
//! ([`retention`]), and the [`sink`] that batches, retries, spools and acknowledges.

use std::future::Future;

use argus_model::{AlertQuery, TicketQuery, Timestamp};

pub mod audit;
mod clickhouse;
mod labels;
pub mod migrations;
pub mod retention;
pub mod rows;
pub mod search;
pub mod sink;
pub mod spool;
mod sqlite;

pub use crate::clickhouse::ClickHouseStore;
pub use crate::labels::Labels;
pub use crate::sqlite::SqliteStore;

use crate::rows::{
    AlertAckRow, AlertEventRow, AlertRow, CredentialRow, DeliveryRow, EventRow, HourRow, OutboxRow,
    ReadingRow, RejectedRow, TicketEventRow, TicketRow, UserRow,
};
use crate::spool::RowBatch;

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A ClickHouse query or insert failed (server unreachable, refused, timed out ...).
    #[error("clickhouse {what}: {source}")]
    Query {
        /// What Argus was doing.
        what: String,
        /// The client's error.
        source: ::clickhouse::error::Error,
    },
    /// An SQLite statement failed.
    #[error("sqlite {what}: {source}")]
    Sqlite {
        /// What Argus was doing.
        what: String,
        /// The library's error.
        source: rusqlite::Error,
    },
    /// The folder of the embedded store could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The folder.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The thread running an SQLite statement stopped before answering (it panicked).
    #[error("sqlite worker thread failed: {0}")]
    Worker(String),
    /// The spool refused to keep or give back rows.
    #[error(transparent)]
    Spool(crate::spool::SpoolError),
    /// A table's columns are not those Argus writes: writing would store garbage.
    #[error(
        "table {table} has columns {found:?}, argus writes {expected:?}: migrate or fix the table"
    )]
    Schema {
        /// The table.
        table: String,
        /// The columns Argus writes (name, type).
        expected: Vec<(String, String)>,
        /// The columns the store has.
        found: Vec<(String, String)>,
    },
    /// No alert with this id is stored.
    #[error("no alert {0} is stored")]
    UnknownAlert(String),
    /// An idempotency key given again with another request.
    #[error("idempotency key {key:?} was used for another request")]
    RequestKeyReused {
        /// The key.
        key: String,
    },
    /// The alert was acknowledged before; an acknowledgement is recorded once.
    #[error("alert {alert_id} was already acknowledged by {by} at {at}")]
    AlreadyAcknowledged {
        /// The alert.
        alert_id: String,
        /// Who acknowledged it.
        by: String,
        /// When (RFC 3339).
        at: String,
    },
}

impl StoreError {
    /// Whether trying again later may succeed (a server that is down); the others need a
    /// person (a foreign table, a file the system refuses, a request about nothing stored).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Query { .. })
    }
}

/// Rows in each table, duplicates collapsed the way queries see them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Distinct readings (source, metric, event time).
    pub readings: u64,
    /// Distinct alerts.
    pub alerts: u64,
    /// Distinct alert transitions.
    pub alert_events: u64,
    /// Alert acknowledgements.
    pub alert_acks: u64,
    /// Dead letters.
    pub rejected: u64,
    /// Distinct tickets.
    pub tickets: u64,
    /// Ticket events.
    pub ticket_events: u64,
}

/// An acknowledgement of an alert by a person, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledgement {
    /// The alert (16 hex digits).
    pub alert_id: String,
    /// Who.
    pub actor: String,
    /// Why, or what they did.
    pub note: String,
    /// When.
    pub at: Timestamp,
    /// The idempotency key of the request, as stored ([`RequestKey::stored`]); empty: none.
    pub request_key: String,
}

/// The idempotency key of a change a person made through the API, kept on the row that
/// records the change (`ticket_events`, `alert_acks`): the fingerprint of the request (16 hex
/// digits), a colon, the key. A retry with the same key finds the row, and with it the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The client's key.
    pub key: String,
    /// The fingerprint of the request it came with.
    pub fingerprint: u64,
}

/// Whether an acknowledgement's stored request key (`ours`) and an earlier one (`stored`) are
/// the same request (`Some(true)`), the same key for another request (`Some(false)`), or not
/// the same key at all (`None`, also when either has none).
fn same_request(ours: &str, stored: &str) -> Option<bool> {
    RequestKey::parse(ours)?.matches(stored)
}

impl RequestKey {
    /// As stored in a `request_key` column.
    pub fn stored(&self) -> String {
        format!("{:016x}:{}", self.fingerprint, self.key)
    }

    /// A stored `request_key` (none when empty or not one).
    pub fn parse(stored: &str) -> Option<Self> {
        let (fingerprint, key) = stored.split_once(':')?;
        let fingerprint = u64::from_str_radix(fingerprint, 16).ok()?;
        (stored.find(':') == Some(16) && !key.is_empty()).then(|| Self {
            key: key.to_owned(),
            fingerprint,
        })
    }

    /// Whether a stored key is this key: `Some(true)` for this very request, `Some(false)` for
    /// the same key with another request, `None` for another key (or none).
    pub fn matches(&self, stored: &str) -> Option<bool> {
        let other = Self::parse(stored)?;
        (other.key == self.key).then_some(other.fingerprint == self.fingerprint)
    }
}

/// The contract both backends keep; the contract tests (tests/store.rs) run against each.
pub trait Store: Clone + Send + Sync + 'static {
    /// What and where, for logs.
    fn describe(&self) -> String;

    /// Apply the migrations not yet recorded, in order, then check that the tables have the
    /// columns Argus writes; returns the versions applied now. Safe at every start.
    fn prepare(&self) -> impl Future<Output = Result<Vec<u32>, StoreError>> + Send;

    /// Write a batch table by table; the tables written are emptied from `batch`, so after a
    /// failure what is left is exactly what remains to write (the append-only tables are never
    /// written twice). Readings, alerts, alert events and tickets are keyed: writing them again
    /// (a replay) does not duplicate them. A transition written after an acknowledgement keeps
    /// the acknowledgement on the alert's current row.
    fn insert_batch(
        &self,
        batch: &mut RowBatch,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forget which series this process alone has written since it looked them up (another
    /// process may write them now: a Kafka rebalance moved their partitions). The next write
    /// of each looks the record up again; a store that remembers nothing ignores this.
    fn forget_written_series(&self) {}

    /// Record that a person acknowledged an alert: an `alert_acks` row and the alert's current
    /// row carrying who and when. Refused for an alert not stored, or acknowledged before.
    fn acknowledge(
        &self,
        ack: &Acknowledgement,
    ) -> impl Future<Output = Result<AlertRow, StoreError>> + Send;

    /// Drop the readings of every month before `month` (YYYYMM, UTC); returns the months
    /// dropped. Alerts, tickets and their records are kept.
    fn drop_readings_before(
        &self,
        month: u32,
    ) -> impl Future<Output = Result<Vec<u32>, StoreError>> + Send;

    /// The readings of a point in `[from, to)`, by metric and time.
    fn readings(
        &self,
        source: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Future<Output = Result<Vec<ReadingRow>, StoreError>> + Send;

    /// An alert's current row.
    fn alert(
        &self,
        alert_id: &str,
    ) -> impl Future<Output = Result<Option<AlertRow>, StoreError>> + Send;

    /// The current rows of an enterprise's alerts, newest first.
    fn enterprise_alerts(
        &self,
        enterprise_id: &str,
    ) -> impl Future<Output = Result<Vec<AlertRow>, StoreError>> + Send;

    /// An alert's transitions, in the order of its life (fired, updated ..., resolved).
    fn alert_events(
        &self,
        alert_id: &str,
    ) -> impl Future<Output = Result<Vec<AlertEventRow>, StoreError>> + Send;

    /// A ticket's record, in order.
    fn ticket_events(
        &self,
        ticket_id: &str,
    ) -> impl Future<Output = Result<Vec<TicketEventRow>, StoreError>> + Send;

    /// The open tickets (not closed), with the time of each one's latest event: what the
    /// ticket book takes back at start.
    fn open_tickets(
        &self,
    ) -> impl Future<Output = Result<Vec<(TicketRow, i64)>, StoreError>> + Send;

    /// The newest alerts (current rows), newest start first, at most `limit`.
    fn recent_alerts(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AlertRow>, StoreError>> + Send;

    /// Every fired transition stored, oldest record first: when each alert was first stored.
    fn fired_transitions(
        &self,
    ) -> impl Future<Output = Result<Vec<AlertEventRow>, StoreError>> + Send;

    /// The newest tickets (current rows), newest first, at most `limit`.
    fn recent_tickets(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<TicketRow>, StoreError>> + Send;

    /// A ticket's current row.
    fn ticket(
        &self,
        ticket_id: &str,
    ) -> impl Future<Output = Result<Option<TicketRow>, StoreError>> + Send;

    /// The maintenance notices and staff silences whose window ends after `after`, oldest
    /// first: what detection's calendar is rebuilt from at start.
    fn notices_until_after(
        &self,
        after: Timestamp,
    ) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// The event of `ticket_id`'s record that a request with this idempotency key (the key
    /// part of [`RequestKey::stored`]) made, if any.
    fn ticket_event_by_request(
        &self,
        ticket_id: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<TicketEventRow>, StoreError>> + Send;

    /// The staff silence made by the request with idempotency key `key` (the client's key), if
    /// one was stored.
    fn silence_by_request(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<EventRow>, StoreError>> + Send;

    /// Every stored reading and enterprise event with an event time at or after `since`, each in
    /// event-time order: what detection takes again after a restart, from its checkpoint's
    /// frontier on.
    fn inputs_since(
        &self,
        since: Timestamp,
    ) -> impl Future<Output = Result<(Vec<ReadingRow>, Vec<EventRow>), StoreError>> + Send;

    /// The newest dead letters, newest first.
    fn rejected(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RejectedRow>, StoreError>> + Send;

    /// Rows in each table.
    fn counts(&self) -> impl Future<Output = Result<Counts, StoreError>> + Send;

    /// The tickets that list `alert_id` among their alerts.
    fn tickets_with_alert(
        &self,
        alert_id: &str,
    ) -> impl Future<Output = Result<Vec<TicketRow>, StoreError>> + Send;

    /// The alerts a search finds, newest start first (see [`search`]).
    fn find_alerts(
        &self,
        query: &AlertQuery,
    ) -> impl Future<Output = Result<Vec<AlertRow>, StoreError>> + Send;

    /// The tickets a search finds, in its order (see [`search`]).
    fn find_tickets(
        &self,
        query: &TicketQuery,
    ) -> impl Future<Output = Result<Vec<TicketRow>, StoreError>> + Send;

    /// The enterprises with a ticket of this department (all its towns, or one), by id.
    fn ticket_enterprises(
        &self,
        department: &str,
        town: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Hourly aggregates of a point's valid real-time readings of one metric in `[from, to)`,
    /// by hour: ClickHouse reads its `readings_1h` rollup, SQLite groups the readings.
    fn hourly(
        &self,
        source: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Future<Output = Result<Vec<HourRow>, StoreError>> + Send;

    /// Deliveries due by `now_ms` (pending, their next attempt due), oldest change first.
    fn due_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutboxRow>, StoreError>> + Send;

    /// Keep an attempt and the outbox row as it left it (its version raised).
    fn record_attempt(
        &self,
        outbox: &OutboxRow,
        attempt: &DeliveryRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A ticket's deliveries as they stand, by line and target.
    fn outbox_of(
        &self,
        ticket_id: &str,
    ) -> impl Future<Output = Result<Vec<OutboxRow>, StoreError>> + Send;

    /// Every attempt to deliver a ticket's changes, by delivery and attempt.
    fn attempts_of(
        &self,
        ticket_id: &str,
    ) -> impl Future<Output = Result<Vec<DeliveryRow>, StoreError>> + Send;

    /// Every acknowledgement, in the order of its chain (those from before it first).
    fn acknowledgements(&self)
        -> impl Future<Output = Result<Vec<AlertAckRow>, StoreError>> + Send;

    /// Every staff silence, in the order of its chain (those from before it first).
    fn silences(&self) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// Write a user as of a change: the row with the higher version stands.
    fn put_user(&self, user: &UserRow) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A user's current row.
    fn user(&self, name: &str) -> impl Future<Output = Result<Option<UserRow>, StoreError>> + Send;

    /// Every user's current row, by name.
    fn users(&self) -> impl Future<Output = Result<Vec<UserRow>, StoreError>> + Send;

    /// Write a session or token as of a use or revocation: the row with the higher version
    /// stands, so a revocation is never undone by a use.
    fn put_credential(
        &self,
        credential: &CredentialRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The credential whose secret has this SHA-256 (64 hex digits).
    fn credential(
        &self,
        secret_hash: &str,
    ) -> impl Future<Output = Result<Option<CredentialRow>, StoreError>> + Send;

    /// A user's sessions and tokens, newest first.
    fn credentials_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<CredentialRow>, StoreError>> + Send;
}

/// Compare a table's columns (name, type, sorted by name) with those Argus writes.
fn same_columns(
    table: &str,
    expected: Vec<(String, String)>,
    found: Vec<(String, String)>,
) -> Result<(), StoreError> {
    if found == expected {
        return Ok(());
    }
    Err(StoreError::Schema {
        table: table.to_owned(),
        expected,
        found,
    })
}

/// Sort an alert's transitions into the order of its life.
fn life_order(events: &mut [AlertEventRow]) {
    // A `muted` row repeats the alert as it stood: among the updates while it fired, after
    // the end once resolved.
    let rank = |e: &AlertEventRow| match e.transition.as_str() {
        "fired" => 0,
        "updated" => 1,
        "muted" if e.ended_ms == 0 => 1,
        "muted" => 3,
        _ => 2,
    };
    events.sort_by(|a, b| {
        (rank(a), a.recorded_ms)
            .cmp(&(rank(b), b.recorded_ms))
            .then(a.value.total_cmp(&b.value))
    });
}

/// The store `argus run` writes to: ClickHouse, or the embedded SQLite file.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A ClickHouse server (boxed: its client is large).
    ClickHouse(Box<ClickHouseStore>),
    /// An SQLite file.
    Sqlite(SqliteStore),
}

impl Backend {
    /// The store the configuration names: its ClickHouse server, or its SQLite file (created
    /// with its folder when missing). Nothing is read or migrated yet.
    pub fn from_settings(settings: &argus_config::Settings) -> Result<Self, StoreError> {
        Ok(match &settings.store.backend {
            argus_config::StoreBackend::ClickHouse => {
                Backend::ClickHouse(Box::new(ClickHouseStore::new(&settings.clickhouse)))
            }
            argus_config::StoreBackend::Sqlite(path) => Backend::Sqlite(SqliteStore::open(path)?),
        })
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Backend::ClickHouse($s) => $call,
            Backend::Sqlite($s) => $call,
        }
    };
}

impl Store for Backend {
    fn describe(&self) -> String {
        delegate!(self, s => s.describe())
    }
    async fn prepare(&self) -> Result<Vec<u32>, StoreError> {
        delegate!(self, s => s.prepare().await)
    }
    async fn insert_batch(&self, batch: &mut RowBatch) -> Result<(), StoreError> {
        delegate!(self, s => s.insert_batch(batch).await)
    }
    fn forget_written_series(&self) {
        delegate!(self, s => s.forget_written_series())
    }
    async fn acknowledge(&self, ack: &Acknowledgement) -> Result<AlertRow, StoreError> {
        delegate!(self, s => s.acknowledge(ack).await)
    }
    async fn drop_readings_before(&self, month: u32) -> Result<Vec<u32>, StoreError> {
        delegate!(self, s => s.drop_readings_before(month).await)
    }
    async fn readings(
        &self,
        source: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ReadingRow>, StoreError> {
        delegate!(self, s => s.readings(source, from, to).await)
    }
    async fn alert(&self, alert_id: &str) -> Result<Option<AlertRow>, StoreError> {
        delegate!(self, s => s.alert(alert_id).await)
    }
    async fn enterprise_alerts(&self, enterprise_id: &str) -> Result<Vec<AlertRow>, StoreError> {
        delegate!(self, s => s.enterprise_alerts(enterprise_id).await)
    }
    async fn alert_events(&self, alert_id: &str) -> Result<Vec<AlertEventRow>, StoreError> {
        delegate!(self, s => s.alert_events(alert_id).await)
    }
    async fn ticket_events(&self, ticket_id: &str) -> Result<Vec<TicketEventRow>, StoreError> {
        delegate!(self, s => s.ticket_events(ticket_id).await)
    }
    async fn open_tickets(&self) -> Result<Vec<(TicketRow, i64)>, StoreError> {
        delegate!(self, s => s.open_tickets().await)
    }
    async fn recent_alerts(&self, limit: u32) -> Result<Vec<AlertRow>, StoreError> {
        delegate!(self, s => s.recent_alerts(limit).await)
    }
    async fn fired_transitions(&self) -> Result<Vec<AlertEventRow>, StoreError> {
        delegate!(self, s => s.fired_transitions().await)
    }
    async fn recent_tickets(&self, limit: u32) -> Result<Vec<TicketRow>, StoreError> {
        delegate!(self, s => s.recent_tickets(limit).await)
    }
    async fn ticket(&self, ticket_id: &str) -> Result<Option<TicketRow>, StoreError> {
        delegate!(self, s => s.ticket(ticket_id).await)
    }
    async fn notices_until_after(&self, after: Timestamp) -> Result<Vec<EventRow>, StoreError> {
        delegate!(self, s => s.notices_until_after(after).await)
    }
    async fn inputs_since(
        &self,
        since: Timestamp,
    ) -> Result<(Vec<ReadingRow>, Vec<EventRow>), StoreError> {
        delegate!(self, s => s.inputs_since(since).await)
    }
    async fn ticket_event_by_request(
        &self,
        ticket_id: &str,
        key: &str,
    ) -> Result<Option<TicketEventRow>, StoreError> {
        delegate!(self, s => s.ticket_event_by_request(ticket_id, key).await)
    }
    async fn silence_by_request(&self, key: &str) -> Result<Option<EventRow>, StoreError> {
        delegate!(self, s => s.silence_by_request(key).await)
    }
    async fn rejected(&self, limit: u32) -> Result<Vec<RejectedRow>, StoreError> {
        delegate!(self, s => s.rejected(limit).await)
    }
    async fn counts(&self) -> Result<Counts, StoreError> {
        delegate!(self, s => s.counts().await)
    }
    async fn tickets_with_alert(&self, alert_id: &str) -> Result<Vec<TicketRow>, StoreError> {
        delegate!(self, s => s.tickets_with_alert(alert_id).await)
    }
    async fn find_alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRow>, StoreError> {
        delegate!(self, s => s.find_alerts(query).await)
    }
    async fn find_tickets(&self, query: &TicketQuery) -> Result<Vec<TicketRow>, StoreError> {
        delegate!(self, s => s.find_tickets(query).await)
    }
    async fn ticket_enterprises(
        &self,
        department: &str,
        town: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        delegate!(self, s => s.ticket_enterprises(department, town).await)
    }
    async fn hourly(
        &self,
        source: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourRow>, StoreError> {
        delegate!(self, s => s.hourly(source, metric, from, to).await)
    }
    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        delegate!(self, s => s.due_deliveries(now_ms, limit).await)
    }
    async fn record_attempt(
        &self,
        outbox: &OutboxRow,
        attempt: &DeliveryRow,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.record_attempt(outbox, attempt).await)
    }
    async fn outbox_of(&self, ticket_id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        delegate!(self, s => s.outbox_of(ticket_id).await)
    }
    async fn attempts_of(&self, ticket_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        delegate!(self, s => s.attempts_of(ticket_id).await)
    }
    async fn acknowledgements(&self) -> Result<Vec<AlertAckRow>, StoreError> {
        delegate!(self, s => s.acknowledgements().await)
    }
    async fn silences(&self) -> Result<Vec<EventRow>, StoreError> {
        delegate!(self, s => s.silences().await)
    }
    async fn put_user(&self, user: &UserRow) -> Result<(), StoreError> {
        delegate!(self, s => s.put_user(user).await)
    }
    async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        delegate!(self, s => s.user(name).await)
    }
    async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        delegate!(self, s => s.users().await)
    }
    async fn put_credential(&self, credential: &CredentialRow) -> Result<(), StoreError> {
        delegate!(self, s => s.put_credential(credential).await)
    }
    async fn credential(&self, secret_hash: &str) -> Result<Option<CredentialRow>, StoreError> {
        delegate!(self, s => s.credential(secret_hash).await)
    }
    async fn credentials_of(&self, user: &str) -> Result<Vec<CredentialRow>, StoreError> {
        delegate!(self, s => s.credentials_of(user).await)
    }
}
