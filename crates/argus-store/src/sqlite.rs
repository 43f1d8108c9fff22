//! The embedded store: the same record in one SQLite file, for a single node without a
//! ClickHouse server. Same tables and columns (no dashboard rollups), keyed tables upsert the
//! way ClickHouse's replacing tables collapse, the append-only tables refuse updates and
//! deletes (triggers), and a batch is one transaction. Statements run on tokio's blocking
//! threads, one at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use argus_model::time::CivilDateTime;
use argus_model::{AlertQuery, TicketQuery, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::migrations::Migration;
use crate::rows::{
    settle, AlertAckRow, AlertEventRow, AlertRow, CredentialRow, DeliveryRow, EventRow, HourRow,
    OnRecord, OutboxRow, ReadingRow, RejectedRow, TicketEventRow, TicketRow, UserRow, COLUMNS,
};
use crate::search::{self, Dialect, Param};
use crate::spool::RowBatch;
use crate::{life_order, same_columns, Acknowledgement, Counts, Store, StoreError};

/// The embedded schema: the versions and names of the ClickHouse migrations, in SQLite.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "readings",
        statements: &["CREATE TABLE IF NOT EXISTS readings (\
            source TEXT NOT NULL, metric TEXT NOT NULL, event_ms INTEGER NOT NULL, \
            event_time INTEGER NOT NULL, value REAL NOT NULL, flag TEXT NOT NULL, \
            enterprise_id TEXT NOT NULL, receive_ms INTEGER NOT NULL, \
            PRIMARY KEY (source, metric, event_ms)) STRICT, WITHOUT ROWID"],
    },
    Migration {
        version: 2,
        name: "alerts and alert events",
        statements: &[
            "CREATE TABLE IF NOT EXISTS alert_events (\
                alert_id TEXT NOT NULL, transition TEXT NOT NULL, rule_id TEXT NOT NULL, \
                kind TEXT NOT NULL, severity TEXT NOT NULL, enterprise_id TEXT NOT NULL, \
                town TEXT NOT NULL, source TEXT NOT NULL, metric TEXT NOT NULL, \
                standard TEXT NOT NULL, started_at INTEGER NOT NULL, started_ms INTEGER NOT NULL, \
                ended_ms INTEGER NOT NULL, value REAL NOT NULL, peak REAL NOT NULL, \
                mean REAL NOT NULL, limit_value REAL NOT NULL, muted INTEGER NOT NULL, \
                recorded_ms INTEGER NOT NULL, PRIMARY KEY (alert_id, transition, value)) STRICT",
            "CREATE TABLE IF NOT EXISTS alerts (\
                alert_id TEXT NOT NULL PRIMARY KEY, rule_id TEXT NOT NULL, kind TEXT NOT NULL, \
                severity TEXT NOT NULL, status TEXT NOT NULL, enterprise_id TEXT NOT NULL, \
                town TEXT NOT NULL, source TEXT NOT NULL, metric TEXT NOT NULL, \
                standard TEXT NOT NULL, started_at INTEGER NOT NULL, started_ms INTEGER NOT NULL, \
                ended_ms INTEGER NOT NULL, value REAL NOT NULL, peak REAL NOT NULL, \
                mean REAL NOT NULL, limit_value REAL NOT NULL, muted INTEGER NOT NULL, \
                acknowledged_by TEXT NOT NULL, acknowledged_ms INTEGER NOT NULL, \
                version INTEGER NOT NULL) STRICT",
        ],
    },
    Migration {
        version: 3,
        name: "rejected inputs",
        statements: &[
            "CREATE TABLE IF NOT EXISTS rejected (\
                received_at INTEGER NOT NULL, received_ms INTEGER NOT NULL, \
                transport TEXT NOT NULL, origin TEXT NOT NULL, reason TEXT NOT NULL, \
                detail TEXT NOT NULL, raw TEXT NOT NULL, raw_len INTEGER NOT NULL) STRICT",
            "CREATE INDEX IF NOT EXISTS rejected_by_time ON rejected (received_ms)",
        ],
    },
    // The dashboards' rollups live in ClickHouse only.
    Migration {
        version: 4,
        name: "reading rollups",
        statements: &[],
    },
    Migration {
        version: 5,
        name: "tickets and ticket events",
        statements: &[
            "CREATE TABLE IF NOT EXISTS ticket_events (\
                ticket_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, \
                at_ms INTEGER NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, \
                event TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, \
                note TEXT NOT NULL, alert_ids TEXT NOT NULL, outcome TEXT NOT NULL, \
                PRIMARY KEY (ticket_id, seq)) STRICT",
            "CREATE TRIGGER IF NOT EXISTS ticket_events_append_only_update \
                BEFORE UPDATE ON ticket_events \
                BEGIN SELECT RAISE(ABORT, 'ticket_events is append only'); END",
            "CREATE TRIGGER IF NOT EXISTS ticket_events_append_only_delete \
                BEFORE DELETE ON ticket_events \
                BEGIN SELECT RAISE(ABORT, 'ticket_events is append only'); END",
            "CREATE TABLE IF NOT EXISTS tickets (\
                ticket_id TEXT NOT NULL PRIMARY KEY, enterprise_id TEXT NOT NULL, \
                town TEXT NOT NULL, department TEXT NOT NULL, team TEXT NOT NULL, \
                severity TEXT NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL, \
                deadline_ms INTEGER NOT NULL, outcome TEXT NOT NULL, alert_ids TEXT NOT NULL, \
                version INTEGER NOT NULL) STRICT",
        ],
    },
    Migration {
        version: 6,
        name: "alert acknowledgements",
        statements: &[
            "CREATE TABLE IF NOT EXISTS alert_acks (\
                alert_id TEXT NOT NULL, actor TEXT NOT NULL, note TEXT NOT NULL, \
                at INTEGER NOT NULL, at_ms INTEGER NOT NULL) STRICT",
            "CREATE INDEX IF NOT EXISTS alert_acks_by_alert ON alert_acks (alert_id, at_ms)",
            "CREATE TRIGGER IF NOT EXISTS alert_acks_append_only_update \
                BEFORE UPDATE ON alert_acks \
                BEGIN SELECT RAISE(ABORT, 'alert_acks is append only'); END",
            "CREATE TRIGGER IF NOT EXISTS alert_acks_append_only_delete \
                BEFORE DELETE ON alert_acks \
                BEGIN SELECT RAISE(ABORT, 'alert_acks is append only'); END",
        ],
    },
    Migration {
        version: 7,
        name: "current alerts view",
        statements: &["CREATE VIEW IF NOT EXISTS alerts_current AS \
            SELECT *, \
                CASE WHEN ended_ms = 0 THEN NULL \
                    ELSE datetime(ended_ms / 1000, 'unixepoch') END AS ended_at, \
                CASE WHEN acknowledged_ms = 0 THEN NULL \
                    ELSE datetime(acknowledged_ms / 1000, 'unixepoch') END AS acknowledged_at \
            FROM alerts"],
    },
    Migration {
        version: 8,
        name: "enterprise events and silences",
        statements: &[
            "CREATE TABLE IF NOT EXISTS events (\
                enterprise_id TEXT NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL, \
                event_time INTEGER NOT NULL, event_ms INTEGER NOT NULL, \
                receive_ms INTEGER NOT NULL, until_ms INTEGER NOT NULL, \
                transport TEXT NOT NULL, body TEXT NOT NULL) STRICT",
            "CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, until_ms)",
            "CREATE TRIGGER IF NOT EXISTS events_append_only_update \
                BEFORE UPDATE ON events \
                BEGIN SELECT RAISE(ABORT, 'events is append only'); END",
            "CREATE TRIGGER IF NOT EXISTS events_append_only_delete \
                BEFORE DELETE ON events \
                BEGIN SELECT RAISE(ABORT, 'events is append only'); END",
        ],
    },
    Migration {
        version: 9,
        name: "rejected inputs kept once",
        statements: &[
            "CREATE TABLE IF NOT EXISTS rejected_inputs (\
                received_at INTEGER NOT NULL, received_ms INTEGER NOT NULL, \
                transport TEXT NOT NULL, origin TEXT NOT NULL, reason TEXT NOT NULL, \
                detail TEXT NOT NULL, raw TEXT NOT NULL, raw_len INTEGER NOT NULL, \
                fingerprint INTEGER NOT NULL, UNIQUE (origin, reason, fingerprint)) STRICT",
            "CREATE INDEX IF NOT EXISTS rejected_inputs_by_time ON rejected_inputs (received_ms)",
            // The rows of `rejected` (migration 3, no longer written), each its own.
            "INSERT OR IGNORE INTO rejected_inputs SELECT received_at, received_ms, transport, \
                origin, reason, detail, raw, raw_len, -rowid FROM rejected",
        ],
    },
    Migration {
        version: 10,
        name: "request keys",
        statements: &[
            "ALTER TABLE ticket_events ADD COLUMN request_key TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE alert_acks ADD COLUMN request_key TEXT NOT NULL DEFAULT ''",
        ],
    },
    Migration {
        version: 11,
        name: "conflicting readings",
        statements: &[
            "CREATE TABLE IF NOT EXISTS conflicts (\
                source TEXT NOT NULL, metric TEXT NOT NULL, event_ms INTEGER NOT NULL, \
                event_time INTEGER NOT NULL, enterprise_id TEXT NOT NULL, \
                stored_value REAL NOT NULL, stored_flag TEXT NOT NULL, \
                stored_receive_ms INTEGER NOT NULL, value REAL NOT NULL, flag TEXT NOT NULL, \
                receive_ms INTEGER NOT NULL, received_at INTEGER NOT NULL, \
                PRIMARY KEY (source, metric, event_ms, receive_ms)) STRICT",
            "CREATE TRIGGER IF NOT EXISTS conflicts_append_only_update \
                BEFORE UPDATE ON conflicts \
                BEGIN SELECT RAISE(ABORT, 'conflicts is append only'); END",
            "CREATE TRIGGER IF NOT EXISTS conflicts_append_only_delete \
                BEFORE DELETE ON conflicts \
                BEGIN SELECT RAISE(ABORT, 'conflicts is append only'); END",
        ],
    },
    Migration {
        version: 12,
        name: "silence request keys",
        statements: &["ALTER TABLE events ADD COLUMN request_key TEXT NOT NULL DEFAULT ''"],
    },
    Migration {
        version: 13,
        name: "data intervals",
        statements: &[
            "ALTER TABLE readings ADD COLUMN data_interval TEXT NOT NULL DEFAULT 'real_time'",
            "ALTER TABLE readings ADD COLUMN corrected REAL",
            "CREATE TABLE IF NOT EXISTS logger_readings (\
                source TEXT NOT NULL, metric TEXT NOT NULL, event_ms INTEGER NOT NULL, \
                event_time INTEGER NOT NULL, value REAL NOT NULL, flag TEXT NOT NULL, \
                enterprise_id TEXT NOT NULL, receive_ms INTEGER NOT NULL, \
                data_interval TEXT NOT NULL, corrected REAL, \
                PRIMARY KEY (source, metric, data_interval, event_ms)) STRICT, WITHOUT ROWID",
            "ALTER TABLE conflicts ADD COLUMN data_interval TEXT NOT NULL DEFAULT 'real_time'",
        ],
    },
    Migration {
        version: 14,
        name: "stopped time per hour",
        // The rollups are ClickHouse's: SQLite keeps the readings they are made of.
        statements: &[],
    },
    Migration {
        version: 15,
        name: "users and credentials",
        statements: &[
            "CREATE TABLE IF NOT EXISTS users (\
                name TEXT NOT NULL PRIMARY KEY, display_name TEXT NOT NULL, \
                role TEXT NOT NULL, town TEXT NOT NULL, department TEXT NOT NULL, \
                password_hash TEXT NOT NULL, disabled INTEGER NOT NULL, \
                created_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL, \
                version INTEGER NOT NULL) STRICT",
            "CREATE TABLE IF NOT EXISTS credentials (\
                secret_hash TEXT NOT NULL PRIMARY KEY, id TEXT NOT NULL, kind TEXT NOT NULL, \
                user TEXT NOT NULL, name TEXT NOT NULL, created_ms INTEGER NOT NULL, \
                expires_ms INTEGER NOT NULL, last_used_ms INTEGER NOT NULL, \
                revoked_ms INTEGER NOT NULL, version INTEGER NOT NULL) STRICT",
            "CREATE INDEX IF NOT EXISTS credentials_by_user ON credentials (user)",
        ],
    },
    Migration {
        version: 16,
        name: "chained ticket records",
        statements: &[
            "ALTER TABLE ticket_events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE ticket_events ADD COLUMN hash TEXT NOT NULL DEFAULT ''",
        ],
    },
    Migration {
        version: 17,
        name: "delivery outbox",
        statements: &[
            "CREATE TABLE IF NOT EXISTS outbox (\
                delivery_id TEXT NOT NULL PRIMARY KEY, target TEXT NOT NULL, \
                ticket_id TEXT NOT NULL, seq INTEGER NOT NULL, idempotency_key TEXT NOT NULL, \
                created_ms INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, \
                next_ms INTEGER NOT NULL, last_error TEXT NOT NULL, \
                version INTEGER NOT NULL) STRICT",
            "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_ms)",
            "CREATE INDEX IF NOT EXISTS outbox_by_ticket ON outbox (ticket_id)",
            "CREATE TABLE IF NOT EXISTS deliveries (\
                delivery_id TEXT NOT NULL, target TEXT NOT NULL, ticket_id TEXT NOT NULL, \
                seq INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL, \
                outcome TEXT NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL, \
                duration_ms INTEGER NOT NULL) STRICT",
            "CREATE INDEX IF NOT EXISTS deliveries_by_ticket ON deliveries (ticket_id)",
        ],
    },
    Migration {
        version: 18,
        name: "chained acknowledgements and silences",
        statements: &[
            "ALTER TABLE alert_acks ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE alert_acks ADD COLUMN prev_hash TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE alert_acks ADD COLUMN hash TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE events ADD COLUMN chain_seq INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT ''",
        ],
    },
    Migration {
        version: 19,
        name: "search order",
        statements: &[
            // The API's searches (`search.rs`), in their keyset order: newest first.
            "CREATE INDEX IF NOT EXISTS alerts_by_start ON alerts (started_ms DESC, alert_id)",
            "CREATE INDEX IF NOT EXISTS tickets_by_creation ON tickets (created_ms DESC, ticket_id)",
            "CREATE INDEX IF NOT EXISTS tickets_by_team ON tickets \
                (department, town, created_ms DESC, ticket_id)",
            // Which tickets list which alerts (a ticket's alert ids, one row each): a team's
            // or head's alert search walks the alerts newest first and looks each up here.
            "CREATE TABLE IF NOT EXISTS ticket_alerts (\
                alert_id TEXT NOT NULL, ticket_id TEXT NOT NULL, department TEXT NOT NULL, \
                town TEXT NOT NULL, PRIMARY KEY (alert_id, ticket_id)) STRICT, WITHOUT ROWID",
            "INSERT OR IGNORE INTO ticket_alerts (alert_id, ticket_id, department, town) \
                SELECT j.value, t.ticket_id, t.department, t.town \
                FROM tickets AS t, json_each(t.alert_ids) AS j",
        ],
    },
];

/// The SQLite type of a column Argus writes, from its ClickHouse type.
fn sqlite_type(clickhouse: &str) -> &'static str {
    match clickhouse {
        "String" | "Array(String)" => "TEXT",
        "Float64" | "Nullable(Float64)" => "REAL",
        _ => "INTEGER",
    }
}

const READINGS: &str = "source, metric, event_ms, event_time, value, flag, enterprise_id, \
    receive_ms, data_interval, corrected";
const CONFLICTS: &str = "source, metric, event_ms, event_time, enterprise_id, stored_value, \
    stored_flag, stored_receive_ms, value, flag, receive_ms, received_at, data_interval";
const ALERT_EVENTS: &str = "alert_id, transition, rule_id, kind, severity, enterprise_id, \
    town, source, metric, standard, started_at, started_ms, ended_ms, value, peak, mean, \
    limit_value, muted, recorded_ms";
const ALERTS: &str = "alert_id, rule_id, kind, severity, status, enterprise_id, town, source, \
    metric, standard, started_at, started_ms, ended_ms, value, peak, mean, limit_value, muted, \
    acknowledged_by, acknowledged_ms, version";
const EVENTS: &str = "enterprise_id, source, kind, event_time, event_ms, receive_ms, until_ms, \
    transport, body, request_key, chain_seq, prev_hash, hash";
const ACKS: &str = "alert_id, actor, note, at, at_ms, request_key, seq, prev_hash, hash";
const REJECTED: &str =
    "received_at, received_ms, transport, origin, reason, detail, raw, raw_len, fingerprint";
const TICKET_EVENTS: &str = "ticket_id, seq, at, at_ms, actor, role, event, from_state, \
    to_state, note, alert_ids, outcome, request_key, prev_hash, hash";
const OUTBOX: &str = "delivery_id, target, ticket_id, seq, idempotency_key, created_ms, state, \
    attempts, next_ms, last_error, version";
const DELIVERIES: &str = "delivery_id, target, ticket_id, seq, attempt, at_ms, outcome, status, \
    error, duration_ms";
const TICKETS: &str = "ticket_id, enterprise_id, town, department, team, severity, state, \
    created_ms, deadline_ms, outcome, alert_ids, version";
const USERS: &str = "name, display_name, role, town, department, password_hash, disabled, \
    created_ms, changed_ms, version";
const CREDENTIALS: &str = "secret_hash, id, kind, user, name, created_ms, expires_ms, \
    last_used_ms, revoked_ms, version";

/// The record in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn sqlite_error(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Sqlite { what, source }
}

fn ids_json(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

fn ids_from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl SqliteStore {
    /// Open (or create) the file at `path`, creating its folder; durable commits (WAL, full
    /// sync), so a batch committed is a batch kept.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let what = format!("open {}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(sqlite_error(what.clone()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite_error(what.clone()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite_error(what.clone()))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite_error(what))?;
        Ok(Self {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` with the connection on a blocking thread.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Run one statement (for tests and tools), returning the rows changed.
    pub async fn execute(&self, statement: &str) -> Result<usize, StoreError> {
        let statement = statement.to_owned();
        self.with(move |c| {
            c.execute(&statement, [])
                .map_err(sqlite_error(statement.clone()))
        })
        .await
    }
}

fn migrate(conn: &mut Connection) -> Result<Vec<u32>, StoreError> {
    let tx = conn
        .transaction()
        .map_err(sqlite_error("begin migrations"))?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, \
         name TEXT NOT NULL, applied_ms INTEGER NOT NULL) STRICT",
        [],
    )
    .map_err(sqlite_error("create schema_migrations"))?;
    let done: Vec<u32> = {
        let mut stmt = tx
            .prepare("SELECT version FROM schema_migrations")
            .map_err(sqlite_error("read schema_migrations"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(sqlite_error("read schema_migrations"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sqlite_error("read schema_migrations"))?
    };
    let now = Timestamp::from_system_time(std::time::SystemTime::now()).as_millis();
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let what = format!("migration {} ({})", m.version, m.name);
        for statement in m.statements {
            tx.execute(statement, [])
                .map_err(sqlite_error(what.clone()))?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, now],
        )
        .map_err(sqlite_error("record migration"))?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        applied.push(m.version);
    }
    tx.commit().map_err(sqlite_error("commit migrations"))?;
    Ok(applied)
}

fn check_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, columns) in COLUMNS {
        let what = format!("read the columns of {table}");
        let mut stmt = conn
            .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY name")
            .map_err(sqlite_error(what.clone()))?;
        let found: Vec<(String, String)> = stmt
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(sqlite_error(what))?;
        let expected = columns
            .iter()
            .map(|(n, t)| ((*n).to_owned(), sqlite_type(t).to_owned()))
            .collect();
        same_columns(table, expected, found)?;
    }
    Ok(())
}

/// First write wins: each reading is inserted unless its key is on record (or earlier in the
/// batch); one that is not inserted is [`settle`]d against the value on record. Returns the
/// duplicates.
fn write_readings(tx: &Transaction<'_>, batch: &mut RowBatch) -> rusqlite::Result<u64> {
    // Per table (real-time readings, the loggers' averages): the insert and the lookup of the
    // value on record, prepared once per batch.
    let statements = |table: &str| -> rusqlite::Result<_> {
        let insert = tx.prepare_cached(&format!(
            "INSERT INTO {table} ({READINGS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT DO NOTHING"
        ))?;
        let on_record = tx.prepare_cached(&format!(
            "SELECT value, flag, receive_ms FROM {table} \
             WHERE source = ?1 AND metric = ?2 AND data_interval = ?3 AND event_ms = ?4"
        ))?;
        Ok((insert, on_record))
    };
    let mut real_time = statements("readings")?;
    let mut logger = statements("logger_readings")?;
    let mut duplicates = 0;
    for r in &batch.readings {
        let (insert, on_record) = if r.is_real_time() {
            &mut real_time
        } else {
            &mut logger
        };
        let inserted = insert.execute(params![
            r.source,
            r.metric,
            r.event_ms,
            r.event_time,
            r.value,
            r.flag,
            r.enterprise_id,
            r.receive_ms,
            r.data_interval,
            r.corrected
        ])?;
        if inserted > 0 {
            continue;
        }
        let (value, flag, receive_ms): (f64, String, i64) = on_record.query_row(
            params![r.source, r.metric, r.data_interval, r.event_ms],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let first = OnRecord {
            value,
            flag: &flag,
            receive_ms,
        };
        if settle(r, first, &mut batch.conflicts, &mut batch.events) {
            duplicates += 1;
        }
    }
    Ok(duplicates)
}

fn write_batch(tx: &Transaction<'_>, batch: &RowBatch) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO conflicts ({CONFLICTS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?;
    for c in &batch.conflicts {
        stmt.execute(params![
            c.source,
            c.metric,
            c.event_ms,
            c.event_time,
            c.enterprise_id,
            c.stored_value,
            c.stored_flag,
            c.stored_receive_ms,
            c.value,
            c.flag,
            c.receive_ms,
            c.received_at,
            c.data_interval
        ])?;
    }
    // The readings are in already (`write_readings`).
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO alert_events ({ALERT_EVENTS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
         ON CONFLICT (alert_id, transition, value) DO UPDATE SET rule_id = excluded.rule_id, \
         kind = excluded.kind, severity = excluded.severity, \
         enterprise_id = excluded.enterprise_id, town = excluded.town, source = excluded.source, \
         metric = excluded.metric, standard = excluded.standard, \
         started_at = excluded.started_at, started_ms = excluded.started_ms, \
         ended_ms = excluded.ended_ms, peak = excluded.peak, mean = excluded.mean, \
         limit_value = excluded.limit_value, muted = excluded.muted, \
         recorded_ms = excluded.recorded_ms WHERE excluded.recorded_ms >= alert_events.recorded_ms"
    ))?;
    for e in &batch.alert_events {
        stmt.execute(params![
            e.alert_id,
            e.transition,
            e.rule_id,
            e.kind,
            e.severity,
            e.enterprise_id,
            e.town,
            e.source,
            e.metric,
            e.standard,
            e.started_at,
            e.started_ms,
            e.ended_ms,
            e.value,
            e.peak,
            e.mean,
            e.limit_value,
            e.muted,
            e.recorded_ms
        ])?;
    }
    // A later state replaces an earlier one; an acknowledgement stays on the row.
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO alerts ({ALERTS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
         ?20, ?21) \
         ON CONFLICT (alert_id) DO UPDATE SET rule_id = excluded.rule_id, kind = excluded.kind, \
         severity = excluded.severity, status = excluded.status, \
         enterprise_id = excluded.enterprise_id, town = excluded.town, source = excluded.source, \
         metric = excluded.metric, standard = excluded.standard, \
         started_at = excluded.started_at, started_ms = excluded.started_ms, \
         ended_ms = excluded.ended_ms, value = excluded.value, peak = excluded.peak, \
         mean = excluded.mean, limit_value = excluded.limit_value, muted = excluded.muted, \
         acknowledged_by = CASE WHEN alerts.acknowledged_ms = 0 \
             THEN excluded.acknowledged_by ELSE alerts.acknowledged_by END, \
         acknowledged_ms = CASE WHEN alerts.acknowledged_ms = 0 \
             THEN excluded.acknowledged_ms ELSE alerts.acknowledged_ms END, \
         version = excluded.version | (alerts.version & 1) \
         WHERE (excluded.version | (alerts.version & 1)) >= alerts.version"
    ))?;
    for a in &batch.alerts {
        stmt.execute(params![
            a.alert_id,
            a.rule_id,
            a.kind,
            a.severity,
            a.status,
            a.enterprise_id,
            a.town,
            a.source,
            a.metric,
            a.standard,
            a.started_at,
            a.started_ms,
            a.ended_ms,
            a.value,
            a.peak,
            a.mean,
            a.limit_value,
            a.muted,
            a.acknowledged_by,
            a.acknowledged_ms,
            a.version
        ])?;
    }
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO tickets ({TICKETS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (ticket_id) DO UPDATE SET enterprise_id = excluded.enterprise_id, \
         town = excluded.town, department = excluded.department, team = excluded.team, \
         severity = excluded.severity, state = excluded.state, \
         created_ms = excluded.created_ms, deadline_ms = excluded.deadline_ms, \
         outcome = excluded.outcome, alert_ids = excluded.alert_ids, version = excluded.version \
         WHERE excluded.version >= tickets.version"
    ))?;
    for t in &batch.tickets {
        stmt.execute(params![
            t.ticket_id,
            t.enterprise_id,
            t.town,
            t.department,
            t.team,
            t.severity,
            t.state,
            t.created_ms,
            t.deadline_ms,
            t.outcome,
            ids_json(&t.alert_ids),
            t.version
        ])?;
    }
    // Which tickets list which alerts, for the searches of a team's or head's alerts.
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO ticket_alerts (alert_id, ticket_id, department, town) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for t in &batch.tickets {
        for alert in &t.alert_ids {
            stmt.execute(params![alert, t.ticket_id, t.department, t.town])?;
        }
    }
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO rejected_inputs ({REJECTED}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?;
    for r in &batch.rejected {
        stmt.execute(params![
            r.received_at,
            r.received_ms,
            r.transport,
            r.origin,
            r.reason,
            r.detail,
            r.raw,
            r.raw_len,
            r.fingerprint as i64
        ])?;
    }
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO events ({EVENTS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?;
    // Staff silences are chained, from the last one on record.
    let last: Option<(u64, String)> = tx
        .query_row(
            "SELECT chain_seq, hash FROM events WHERE chain_seq > 0 \
             ORDER BY chain_seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let mut events = batch.events.clone();
    crate::audit::link_silences(&mut events, last.unwrap_or_default());
    for e in &events {
        stmt.execute(params![
            e.enterprise_id,
            e.source,
            e.kind,
            e.event_time,
            e.event_ms,
            e.receive_ms,
            e.until_ms,
            e.transport,
            e.body,
            e.request_key,
            e.chain_seq,
            e.prev_hash,
            e.hash
        ])?;
    }
    // Deliveries of the changes: once written, a row only moves on (`record_attempt`).
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO outbox ({OUTBOX}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?;
    for o in &batch.outbox {
        insert_outbox(&mut stmt, o)?;
    }
    // The legal record: an event already recorded (same ticket and seq) stays as it was; the
    // others are chained to the line before them.
    let mut last = tx.prepare_cached(
        "SELECT seq, hash FROM ticket_events WHERE ticket_id = ?1 ORDER BY seq DESC LIMIT 1",
    )?;
    let mut stored = std::collections::HashMap::new();
    for e in &batch.ticket_events {
        if !stored.contains_key(&e.ticket_id) {
            let found: Option<(u32, String)> = last
                .query_row([&e.ticket_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            stored.insert(e.ticket_id.clone(), found.unwrap_or((0, String::new())));
        }
    }
    let mut lines = batch.ticket_events.clone();
    crate::audit::link(&mut lines, &stored);
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO ticket_events ({TICKET_EVENTS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?;
    for e in &lines {
        stmt.execute(params![
            e.ticket_id,
            e.seq,
            e.at,
            e.at_ms,
            e.actor,
            e.role,
            e.event,
            e.from_state,
            e.to_state,
            e.note,
            ids_json(&e.alert_ids),
            e.outcome,
            e.request_key,
            e.prev_hash,
            e.hash
        ])?;
    }
    Ok(())
}

fn insert_outbox(
    stmt: &mut rusqlite::CachedStatement<'_>,
    o: &OutboxRow,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        o.delivery_id,
        o.target,
        o.ticket_id,
        o.seq,
        o.idempotency_key,
        o.created_ms,
        o.state,
        o.attempts,
        o.next_ms,
        o.last_error,
        o.version
    ])
}

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        delivery_id: r.get(0)?,
        target: r.get(1)?,
        ticket_id: r.get(2)?,
        seq: r.get(3)?,
        idempotency_key: r.get(4)?,
        created_ms: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        next_ms: r.get(8)?,
        last_error: r.get(9)?,
        version: r.get(10)?,
    })
}

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        delivery_id: r.get(0)?,
        target: r.get(1)?,
        ticket_id: r.get(2)?,
        seq: r.get(3)?,
        attempt: r.get(4)?,
        at_ms: r.get(5)?,
        outcome: r.get(6)?,
        status: r.get(7)?,
        error: r.get(8)?,
        duration_ms: r.get(9)?,
    })
}

fn reading_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReadingRow> {
    Ok(ReadingRow {
        source: r.get(0)?,
        metric: r.get(1)?,
        event_ms: r.get(2)?,
        event_time: r.get(3)?,
        value: r.get(4)?,
        flag: r.get(5)?,
        enterprise_id: r.get(6)?,
        receive_ms: r.get(7)?,
        data_interval: r.get(8)?,
        corrected: r.get(9)?,
    })
}

fn alert_event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertEventRow> {
    Ok(AlertEventRow {
        alert_id: r.get(0)?,
        transition: r.get(1)?,
        rule_id: r.get(2)?,
        kind: r.get(3)?,
        severity: r.get(4)?,
        enterprise_id: r.get(5)?,
        town: r.get(6)?,
        source: r.get(7)?,
        metric: r.get(8)?,
        standard: r.get(9)?,
        started_at: r.get(10)?,
        started_ms: r.get(11)?,
        ended_ms: r.get(12)?,
        value: r.get(13)?,
        peak: r.get(14)?,
        mean: r.get(15)?,
        limit_value: r.get(16)?,
        muted: r.get(17)?,
        recorded_ms: r.get(18)?,
    })
}

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        alert_id: r.get(0)?,
        rule_id: r.get(1)?,
        kind: r.get(2)?,
        severity: r.get(3)?,
        status: r.get(4)?,
        enterprise_id: r.get(5)?,
        town: r.get(6)?,
        source: r.get(7)?,
        metric: r.get(8)?,
        standard: r.get(9)?,
        started_at: r.get(10)?,
        started_ms: r.get(11)?,
        ended_ms: r.get(12)?,
        value: r.get(13)?,
        peak: r.get(14)?,
        mean: r.get(15)?,
        limit_value: r.get(16)?,
        muted: r.get(17)?,
        acknowledged_by: r.get(18)?,
        acknowledged_ms: r.get(19)?,
        version: r.get(20)?,
    })
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        enterprise_id: r.get(0)?,
        source: r.get(1)?,
        kind: r.get(2)?,
        event_time: r.get(3)?,
        event_ms: r.get(4)?,
        receive_ms: r.get(5)?,
        until_ms: r.get(6)?,
        transport: r.get(7)?,
        body: r.get(8)?,
        request_key: r.get(9)?,
        chain_seq: r.get(10)?,
        prev_hash: r.get(11)?,
        hash: r.get(12)?,
    })
}

fn rejected_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RejectedRow> {
    Ok(RejectedRow {
        received_at: r.get(0)?,
        received_ms: r.get(1)?,
        transport: r.get(2)?,
        origin: r.get(3)?,
        reason: r.get(4)?,
        detail: r.get(5)?,
        raw: r.get(6)?,
        raw_len: r.get(7)?,
        // Stored as SQLite's signed integer, bit for bit.
        fingerprint: r.get::<_, i64>(8)? as u64,
    })
}

fn ticket_event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketEventRow> {
    Ok(TicketEventRow {
        ticket_id: r.get(0)?,
        seq: r.get(1)?,
        at: r.get(2)?,
        at_ms: r.get(3)?,
        actor: r.get(4)?,
        role: r.get(5)?,
        event: r.get(6)?,
        from_state: r.get(7)?,
        to_state: r.get(8)?,
        note: r.get(9)?,
        alert_ids: ids_from_json(&r.get::<_, String>(10)?),
        outcome: r.get(11)?,
        request_key: r.get(12)?,
        prev_hash: r.get(13)?,
        hash: r.get(14)?,
    })
}

fn ticket_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketRow> {
    Ok(TicketRow {
        ticket_id: r.get(0)?,
        enterprise_id: r.get(1)?,
        town: r.get(2)?,
        department: r.get(3)?,
        team: r.get(4)?,
        severity: r.get(5)?,
        state: r.get(6)?,
        created_ms: r.get(7)?,
        deadline_ms: r.get(8)?,
        outcome: r.get(9)?,
        alert_ids: ids_from_json(&r.get::<_, String>(10)?),
        version: r.get(11)?,
    })
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: r.get(0)?,
        display_name: r.get(1)?,
        role: r.get(2)?,
        town: r.get(3)?,
        department: r.get(4)?,
        password_hash: r.get(5)?,
        disabled: r.get(6)?,
        created_ms: r.get(7)?,
        changed_ms: r.get(8)?,
        version: r.get::<_, i64>(9).map(|v| u64::try_from(v).unwrap_or(0))?,
    })
}

fn credential_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CredentialRow> {
    Ok(CredentialRow {
        secret_hash: r.get(0)?,
        id: r.get(1)?,
        kind: r.get(2)?,
        user: r.get(3)?,
        name: r.get(4)?,
        created_ms: r.get(5)?,
        expires_ms: r.get(6)?,
        last_used_ms: r.get(7)?,
        revoked_ms: r.get(8)?,
        version: r.get::<_, i64>(9).map(|v| u64::try_from(v).unwrap_or(0))?,
    })
}

/// Rows of a query with positional parameters.
/// A search's parameters as SQLite values.
fn values(params: Vec<Param>) -> rusqlite::ParamsFromIter<Vec<rusqlite::types::Value>> {
    rusqlite::params_from_iter(
        params
            .into_iter()
            .map(|p| match p {
                Param::Text(text) => rusqlite::types::Value::Text(text),
                Param::Int(n) => rusqlite::types::Value::Integer(n),
            })
            .collect::<Vec<_>>(),
    )
}

fn select<T, P>(
    conn: &Connection,
    what: &str,
    sql: &str,
    params: P,
    row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError>
where
    P: rusqlite::Params,
{
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error(what))?;
    let rows = stmt
        .query_map(params, row)
        .and_then(Iterator::collect)
        .map_err(sqlite_error(what));
    rows
}

fn find_alert(conn: &Connection, alert_id: &str) -> Result<Option<AlertRow>, StoreError> {
    let sql = format!("SELECT {ALERTS} FROM alerts WHERE alert_id = ?1");
    Ok(select(conn, "read an alert", &sql, [alert_id], alert_row)?
        .into_iter()
        .next())
}

/// The first instant of a month (YYYYMM, UTC).
fn month_start(month: u32) -> Timestamp {
    let civil = CivilDateTime {
        year: i32::try_from(month / 100).unwrap_or(i32::MAX),
        month: u8::try_from(month % 100).unwrap_or(1),
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        millisecond: 0,
    };
    Timestamp::from_civil(civil, 0).unwrap_or(Timestamp(i64::MIN))
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    async fn prepare(&self) -> Result<Vec<u32>, StoreError> {
        self.with(|c| {
            let applied = migrate(c)?;
            check_columns(c)?;
            Ok(applied)
        })
        .await
    }

    async fn insert_batch(&self, batch: &mut RowBatch) -> Result<(), StoreError> {
        let mut rows = std::mem::take(batch);
        let (result, rows) = self
            .with(move |c| {
                let written = c.transaction().and_then(|tx| {
                    let duplicates = write_readings(&tx, &mut rows)?;
                    write_batch(&tx, &rows)?;
                    tx.commit()?;
                    Ok(duplicates)
                });
                Ok((written.map_err(sqlite_error("write a batch")), rows))
            })
            .await?;
        // One transaction: all of it is in, or none of it (sorted again on a retry).
        *batch = match result {
            Ok(duplicates) => RowBatch {
                conflicts: rows.conflicts,
                duplicates: rows.duplicates + duplicates,
                ..RowBatch::default()
            },
            Err(_) => rows,
        };
        result.map(|_| ())
    }

    async fn acknowledge(&self, ack: &Acknowledgement) -> Result<AlertRow, StoreError> {
        let ack = ack.clone();
        self.with(move |c| {
            let tx = c
                .transaction()
                .map_err(sqlite_error("begin an acknowledgement"))?;
            let id = &ack.alert_id;
            if find_alert(&tx, id)?.is_none() {
                return Err(StoreError::UnknownAlert(id.clone()));
            }
            let earlier: Option<(String, i64, String)> = tx
                .query_row(
                    "SELECT actor, at_ms, request_key FROM alert_acks WHERE alert_id = ?1 \
                     ORDER BY at_ms LIMIT 1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(sqlite_error("read alert acknowledgements"))?;
            if let Some((by, at, stored)) = earlier {
                return match crate::same_request(&ack.request_key, &stored) {
                    // The same request again: its answer, nothing recorded twice.
                    Some(true) => {
                        find_alert(&tx, id)?.ok_or_else(|| StoreError::UnknownAlert(id.clone()))
                    }
                    Some(false) => Err(StoreError::RequestKeyReused {
                        key: crate::RequestKey::parse(&ack.request_key)
                            .map(|k| k.key)
                            .unwrap_or_default(),
                    }),
                    None => Err(StoreError::AlreadyAcknowledged {
                        alert_id: id.clone(),
                        by,
                        at: Timestamp(at).to_rfc3339(),
                    }),
                };
            }
            // Chained to the last acknowledgement on record (in this transaction).
            let last: Option<(u64, String)> = tx
                .query_row(
                    "SELECT seq, hash FROM alert_acks ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sqlite_error("read the last acknowledgement"))?;
            let mut row = [AlertAckRow::new(&ack)];
            crate::audit::link_acks(&mut row, last.unwrap_or_default());
            let [row] = row;
            tx.execute(
                &format!(
                    "INSERT INTO alert_acks ({ACKS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    row.alert_id,
                    row.actor,
                    row.note,
                    row.at,
                    row.at_ms,
                    row.request_key,
                    row.seq,
                    row.prev_hash,
                    row.hash
                ],
            )
            .map_err(sqlite_error("record an acknowledgement"))?;
            tx.execute(
                "UPDATE alerts SET acknowledged_by = ?2, acknowledged_ms = ?3, \
                 version = version | 1 WHERE alert_id = ?1",
                params![id, ack.actor, ack.at.as_millis()],
            )
            .map_err(sqlite_error("acknowledge an alert"))?;
            let current =
                find_alert(&tx, id)?.ok_or_else(|| StoreError::UnknownAlert(id.clone()))?;
            tx.commit()
                .map_err(sqlite_error("commit an acknowledgement"))?;
            Ok(current)
        })
        .await
    }

    async fn drop_readings_before(&self, month: u32) -> Result<Vec<u32>, StoreError> {
        let before = month_start(month).as_millis();
        self.with(move |c| {
            let mut months: Vec<u32> = Vec::new();
            for table in ["readings", "logger_readings"] {
                // Before the migrations (retention may start before the sink) there is nothing.
                let tables: u32 = c
                    .query_row(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                        [table],
                        |r| r.get(0),
                    )
                    .map_err(sqlite_error(format!("look for the {table} table")))?;
                if tables == 0 {
                    continue;
                }
                months.extend(select(
                    c,
                    &format!("list the months of {table}"),
                    &format!(
                        "SELECT DISTINCT CAST(strftime('%Y%m', event_ms / 1000, 'unixepoch') \
                         AS INTEGER) FROM {table} WHERE event_ms < ?1 ORDER BY 1"
                    ),
                    [before],
                    |r| r.get::<_, u32>(0),
                )?);
                c.execute(
                    &format!("DELETE FROM {table} WHERE event_ms < ?1"),
                    [before],
                )
                .map_err(sqlite_error(format!("drop old {table}")))?;
            }
            months.sort_unstable();
            months.dedup();
            Ok(months)
        })
        .await
    }

    async fn readings(
        &self,
        source: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ReadingRow>, StoreError> {
        let source = source.to_owned();
        self.with(move |c| {
            let sql = format!(
                "SELECT {READINGS} FROM readings WHERE source = ?1 AND event_ms >= ?2 \
                 AND event_ms < ?3 UNION ALL \
                 SELECT {READINGS} FROM logger_readings WHERE source = ?1 AND event_ms >= ?2 \
                 AND event_ms < ?3 ORDER BY metric, data_interval, event_ms"
            );
            select(
                c,
                "read readings",
                &sql,
                params![source, from.as_millis(), to.as_millis()],
                reading_row,
            )
        })
        .await
    }

    async fn alert(&self, alert_id: &str) -> Result<Option<AlertRow>, StoreError> {
        let id = alert_id.to_owned();
        self.with(move |c| find_alert(c, &id)).await
    }

    async fn enterprise_alerts(&self, enterprise_id: &str) -> Result<Vec<AlertRow>, StoreError> {
        let id = enterprise_id.to_owned();
        self.with(move |c| {
            let sql = format!(
                "SELECT {ALERTS} FROM alerts WHERE enterprise_id = ?1 \
                 ORDER BY started_ms DESC, alert_id"
            );
            select(c, "read an enterprise's alerts", &sql, [id], alert_row)
        })
        .await
    }

    async fn alert_events(&self, alert_id: &str) -> Result<Vec<AlertEventRow>, StoreError> {
        let id = alert_id.to_owned();
        let mut rows = self
            .with(move |c| {
                let sql = format!("SELECT {ALERT_EVENTS} FROM alert_events WHERE alert_id = ?1");
                select(c, "read alert events", &sql, [id], alert_event_row)
            })
            .await?;
        life_order(&mut rows);
        Ok(rows)
    }

    async fn ticket_events(&self, ticket_id: &str) -> Result<Vec<TicketEventRow>, StoreError> {
        let id = ticket_id.to_owned();
        self.with(move |c| {
            let sql = format!(
                "SELECT {TICKET_EVENTS} FROM ticket_events WHERE ticket_id = ?1 ORDER BY seq"
            );
            select(c, "read ticket events", &sql, [id], ticket_event_row)
        })
        .await
    }

    async fn open_tickets(&self) -> Result<Vec<(TicketRow, i64)>, StoreError> {
        self.with(|c| {
            let sql = format!("SELECT {TICKETS} FROM tickets WHERE state != 'closed'");
            let rows = select(c, "read open tickets", &sql, [], ticket_row)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let latest: Option<i64> = c
                    .query_row(
                        "SELECT max(at_ms) FROM ticket_events WHERE ticket_id = ?1",
                        [&row.ticket_id],
                        |r| r.get(0),
                    )
                    .map_err(sqlite_error("read ticket events"))?;
                let at = latest.unwrap_or(row.created_ms);
                out.push((row, at));
            }
            Ok(out)
        })
        .await
    }

    async fn recent_alerts(&self, limit: u32) -> Result<Vec<AlertRow>, StoreError> {
        self.with(move |c| {
            let sql =
                format!("SELECT {ALERTS} FROM alerts ORDER BY started_ms DESC, alert_id LIMIT ?1");
            select(c, "read recent alerts", &sql, [limit], alert_row)
        })
        .await
    }

    async fn fired_transitions(&self) -> Result<Vec<AlertEventRow>, StoreError> {
        self.with(|c| {
            let sql = format!(
                "SELECT {ALERT_EVENTS} FROM alert_events WHERE transition = 'fired' \
                 ORDER BY recorded_ms, alert_id"
            );
            select(c, "read fired transitions", &sql, [], alert_event_row)
        })
        .await
    }

    async fn recent_tickets(&self, limit: u32) -> Result<Vec<TicketRow>, StoreError> {
        self.with(move |c| {
            let sql = format!(
                "SELECT {TICKETS} FROM tickets ORDER BY created_ms DESC, ticket_id LIMIT ?1"
            );
            select(c, "read recent tickets", &sql, [limit], ticket_row)
        })
        .await
    }

    async fn ticket(&self, ticket_id: &str) -> Result<Option<TicketRow>, StoreError> {
        let id = ticket_id.to_owned();
        let rows = self
            .with(move |c| {
                let sql = format!("SELECT {TICKETS} FROM tickets WHERE ticket_id = ?1");
                select(c, "read a ticket", &sql, [id], ticket_row)
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn silence_by_request(&self, key: &str) -> Result<Option<EventRow>, StoreError> {
        let key = key.to_owned();
        self.with(move |c| {
            let sql = format!(
                "SELECT {EVENTS} FROM events WHERE kind = 'maintenance_notice' \
                 AND request_key != '' AND substr(request_key, 18, 256) = ?1 \
                 ORDER BY event_ms, rowid LIMIT 1"
            );
            let rows = select(c, "read a silence by its request", &sql, [key], event_row)?;
            Ok(rows.into_iter().next())
        })
        .await
    }

    async fn notices_until_after(&self, after: Timestamp) -> Result<Vec<EventRow>, StoreError> {
        let after = after.as_millis();
        self.with(move |c| {
            let sql = format!(
                "SELECT {EVENTS} FROM events WHERE kind = 'maintenance_notice' AND until_ms > ?1 \
                 ORDER BY event_ms, rowid"
            );
            select(c, "read maintenance notices", &sql, [after], event_row)
        })
        .await
    }

    async fn ticket_event_by_request(
        &self,
        ticket_id: &str,
        key: &str,
    ) -> Result<Option<TicketEventRow>, StoreError> {
        let (ticket_id, key) = (ticket_id.to_owned(), key.to_owned());
        self.with(move |c| {
            let sql = format!(
                "SELECT {TICKET_EVENTS} FROM ticket_events WHERE ticket_id = ?1 \
                 AND request_key != '' AND substr(request_key, 18, 256) = ?2 ORDER BY seq LIMIT 1"
            );
            let rows = select(
                c,
                "read a ticket event by its request",
                &sql,
                params![ticket_id, key],
                ticket_event_row,
            )?;
            Ok(rows.into_iter().next())
        })
        .await
    }

    async fn inputs_since(
        &self,
        since: Timestamp,
    ) -> Result<(Vec<ReadingRow>, Vec<EventRow>), StoreError> {
        let since = since.as_millis();
        self.with(move |c| {
            // A logger's average counts at the end of its span: a day's value from a day earlier.
            let sql = format!(
                "SELECT {READINGS} FROM readings WHERE event_ms >= ?1 UNION ALL \
                 SELECT {READINGS} FROM logger_readings WHERE event_ms >= ?2 ORDER BY event_ms"
            );
            let readings = select(
                c,
                "read the readings since a checkpoint",
                &sql,
                [since, since.saturating_sub(86_400_000)],
                reading_row,
            )?;
            let sql = format!(
                "SELECT {EVENTS} FROM events WHERE event_ms >= ?1 ORDER BY event_ms, rowid"
            );
            let events = select(
                c,
                "read the events since a checkpoint",
                &sql,
                [since],
                event_row,
            )?;
            Ok((readings, events))
        })
        .await
    }

    async fn rejected(&self, limit: u32) -> Result<Vec<RejectedRow>, StoreError> {
        self.with(move |c| {
            let sql = format!(
                "SELECT {REJECTED} FROM rejected_inputs ORDER BY received_ms DESC, rowid DESC LIMIT ?1"
            );
            select(c, "read rejected inputs", &sql, [limit], rejected_row)
        })
        .await
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        self.with(|c| {
            let count = |table: &str| -> Result<u64, StoreError> {
                c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                    .map_err(sqlite_error(format!("count {table}")))
            };
            Ok(Counts {
                readings: count("readings")? + count("logger_readings")?,
                alerts: count("alerts")?,
                alert_events: count("alert_events")?,
                alert_acks: count("alert_acks")?,
                rejected: count("rejected_inputs")?,
                tickets: count("tickets")?,
                ticket_events: count("ticket_events")?,
            })
        })
        .await
    }

    async fn tickets_with_alert(&self, alert_id: &str) -> Result<Vec<TicketRow>, StoreError> {
        let id = alert_id.to_owned();
        self.with(move |c| {
            let sql = format!(
                "SELECT {TICKETS} FROM tickets WHERE EXISTS \
                 (SELECT 1 FROM json_each(tickets.alert_ids) WHERE value = ?1) ORDER BY ticket_id"
            );
            select(c, "read the tickets of an alert", &sql, [id], ticket_row)
        })
        .await
    }

    async fn find_alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRow>, StoreError> {
        let (sql, params) = search::alerts(Dialect::Sqlite, ALERTS, query);
        self.with(move |c| select(c, "search alerts", &sql, values(params), alert_row))
            .await
    }

    async fn find_tickets(&self, query: &TicketQuery) -> Result<Vec<TicketRow>, StoreError> {
        let (sql, params) = search::tickets(Dialect::Sqlite, TICKETS, query);
        self.with(move |c| select(c, "search tickets", &sql, values(params), ticket_row))
            .await
    }

    async fn ticket_enterprises(
        &self,
        department: &str,
        town: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let department = department.to_owned();
        let town = town.unwrap_or_default().to_owned();
        self.with(move |c| {
            select(
                c,
                "read the enterprises of a department's tickets",
                "SELECT DISTINCT enterprise_id FROM tickets \
                 WHERE department = ?1 AND (?2 = '' OR town = ?2) ORDER BY enterprise_id",
                params![department, town],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn hourly(
        &self,
        source: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourRow>, StoreError> {
        let (source, metric) = (source.to_owned(), metric.to_owned());
        self.with(move |c| {
            select(
                c,
                "read hourly readings",
                "SELECT (event_ms / 3600000) * 3600000 AS hour_ms, avg(value), min(value), \
                 max(value), count(*) FROM readings WHERE source = ?1 AND metric = ?2 \
                 AND flag = 'N' AND event_ms >= ?3 AND event_ms < ?4 \
                 GROUP BY hour_ms ORDER BY hour_ms",
                params![source, metric, from.as_millis(), to.as_millis()],
                |r| {
                    Ok(HourRow {
                        hour_ms: r.get(0)?,
                        avg: r.get(1)?,
                        min: r.get(2)?,
                        max: r.get(3)?,
                        samples: r.get(4)?,
                    })
                },
            )
        })
        .await
    }

    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.with(move |c| {
            let sql = format!(
                "SELECT {OUTBOX} FROM outbox WHERE state = 'pending' AND next_ms <= ?1 \
                 ORDER BY created_ms, ticket_id, seq, target LIMIT ?2"
            );
            select(
                c,
                "read due deliveries",
                &sql,
                params![now_ms, limit],
                outbox_row,
            )
        })
        .await
    }

    async fn record_attempt(
        &self,
        outbox: &OutboxRow,
        attempt: &DeliveryRow,
    ) -> Result<(), StoreError> {
        let (o, a) = (outbox.clone(), attempt.clone());
        self.with(move |c| {
            let what = "record a delivery attempt";
            let tx = c.transaction().map_err(sqlite_error(what))?;
            tx.execute(
                &format!(
                    "INSERT INTO deliveries ({DELIVERIES}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    a.delivery_id,
                    a.target,
                    a.ticket_id,
                    a.seq,
                    a.attempt,
                    a.at_ms,
                    a.outcome,
                    a.status,
                    a.error,
                    a.duration_ms
                ],
            )
            .map_err(sqlite_error(what))?;
            let mut stmt = tx
                .prepare_cached(&format!(
                    "INSERT INTO outbox ({OUTBOX}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                     ON CONFLICT (delivery_id) DO UPDATE SET state = excluded.state, \
                     attempts = excluded.attempts, next_ms = excluded.next_ms, \
                     last_error = excluded.last_error, version = excluded.version \
                     WHERE excluded.version > outbox.version"
                ))
                .map_err(sqlite_error(what))?;
            insert_outbox(&mut stmt, &o).map_err(sqlite_error(what))?;
            drop(stmt);
            tx.commit().map_err(sqlite_error(what))
        })
        .await
    }

    async fn outbox_of(&self, ticket_id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let id = ticket_id.to_owned();
        self.with(move |c| {
            let sql =
                format!("SELECT {OUTBOX} FROM outbox WHERE ticket_id = ?1 ORDER BY seq, target");
            select(c, "read a ticket's deliveries", &sql, [id], outbox_row)
        })
        .await
    }

    async fn attempts_of(&self, ticket_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let id = ticket_id.to_owned();
        self.with(move |c| {
            let sql = format!(
                "SELECT {DELIVERIES} FROM deliveries WHERE ticket_id = ?1 \
                 ORDER BY delivery_id, attempt"
            );
            select(
                c,
                "read a ticket's delivery attempts",
                &sql,
                [id],
                delivery_row,
            )
        })
        .await
    }

    async fn acknowledgements(&self) -> Result<Vec<AlertAckRow>, StoreError> {
        self.with(|c| {
            let sql = format!("SELECT {ACKS} FROM alert_acks ORDER BY seq, at_ms, alert_id");
            select(c, "read the acknowledgements", &sql, [], |r| {
                Ok(AlertAckRow {
                    alert_id: r.get(0)?,
                    actor: r.get(1)?,
                    note: r.get(2)?,
                    at: r.get(3)?,
                    at_ms: r.get(4)?,
                    request_key: r.get(5)?,
                    seq: r.get(6)?,
                    prev_hash: r.get(7)?,
                    hash: r.get(8)?,
                })
            })
        })
        .await
    }

    async fn silences(&self) -> Result<Vec<EventRow>, StoreError> {
        self.with(|c| {
            let sql = format!(
                "SELECT {EVENTS} FROM events WHERE transport = 'api' \
                 ORDER BY chain_seq, receive_ms, event_ms"
            );
            select(c, "read the silences", &sql, [], event_row)
        })
        .await
    }

    async fn put_user(&self, user: &UserRow) -> Result<(), StoreError> {
        let u = user.clone();
        self.with(move |c| {
            let sql = format!(
                "INSERT INTO users ({USERS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, \
                 role = excluded.role, town = excluded.town, department = excluded.department, \
                 password_hash = excluded.password_hash, disabled = excluded.disabled, \
                 changed_ms = excluded.changed_ms, version = excluded.version \
                 WHERE excluded.version > users.version"
            );
            c.execute(
                &sql,
                params![
                    u.name,
                    u.display_name,
                    u.role,
                    u.town,
                    u.department,
                    u.password_hash,
                    u.disabled,
                    u.created_ms,
                    u.changed_ms,
                    i64::try_from(u.version).unwrap_or(i64::MAX)
                ],
            )
            .map(|_| ())
            .map_err(sqlite_error("write a user"))
        })
        .await
    }

    async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        let name = name.to_owned();
        let rows = self
            .with(move |c| {
                let sql = format!("SELECT {USERS} FROM users WHERE name = ?1");
                select(c, "read a user", &sql, [name], user_row)
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.with(move |c| {
            let sql = format!("SELECT {USERS} FROM users ORDER BY name");
            select(c, "read users", &sql, [], user_row)
        })
        .await
    }

    async fn put_credential(&self, credential: &CredentialRow) -> Result<(), StoreError> {
        let k = credential.clone();
        self.with(move |c| {
            let sql = format!(
                "INSERT INTO credentials ({CREDENTIALS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (secret_hash) DO UPDATE SET last_used_ms = excluded.last_used_ms, \
                 revoked_ms = excluded.revoked_ms, version = excluded.version \
                 WHERE excluded.version > credentials.version"
            );
            c.execute(
                &sql,
                params![
                    k.secret_hash,
                    k.id,
                    k.kind,
                    k.user,
                    k.name,
                    k.created_ms,
                    k.expires_ms,
                    k.last_used_ms,
                    k.revoked_ms,
                    i64::try_from(k.version).unwrap_or(i64::MAX)
                ],
            )
            .map(|_| ())
            .map_err(sqlite_error("write a credential"))
        })
        .await
    }

    async fn credential(&self, secret_hash: &str) -> Result<Option<CredentialRow>, StoreError> {
        let hash = secret_hash.to_owned();
        let rows = self
            .with(move |c| {
                let sql = format!("SELECT {CREDENTIALS} FROM credentials WHERE secret_hash = ?1");
                select(c, "read a credential", &sql, [hash], credential_row)
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn credentials_of(&self, user: &str) -> Result<Vec<CredentialRow>, StoreError> {
        let user = user.to_owned();
        self.with(move |c| {
            let sql = format!(
                "SELECT {CREDENTIALS} FROM credentials WHERE user = ?1 \
                 ORDER BY created_ms DESC, secret_hash"
            );
            select(c, "read a user's credentials", &sql, [user], credential_row)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_schema_follows_the_clickhouse_migrations() {
        let clickhouse: Vec<(u32, &str)> = crate::migrations::MIGRATIONS
            .iter()
            .map(|m| (m.version, m.name))
            .collect();
        let embedded: Vec<(u32, &str)> = MIGRATIONS.iter().map(|m| (m.version, m.name)).collect();
        assert_eq!(embedded, clickhouse);
    }

    #[test]
    fn the_current_alerts_view_gives_end_and_acknowledgement_as_times() {
        let dir = std::env::temp_dir().join(format!("argus_sqlite_view_{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
        let mut conn = store.conn.lock().unwrap_or_else(PoisonError::into_inner);
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        conn.execute(
            &format!(
                "INSERT INTO alerts ({ALERTS}) VALUES ('a1', 'r', 'threshold', 'red', \
                 'resolved', 'E001', 'T01', 'MN', 'a21026', 'GB', 1795622400, 1795622400000, \
                 1795622460000, 1.0, 1.0, 1.0, 0.5, 0, 'Operator Liu', 1795622430500, 7)"
            ),
            [],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let times: (String, String) = conn
            .query_row(
                "SELECT ended_at, acknowledged_at FROM alerts_current WHERE alert_id = 'a1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            times,
            (
                "2026-11-25 16:01:00".to_owned(),
                "2026-11-25 16:00:30".to_owned()
            )
        );
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn migration_19_lists_the_alerts_of_tickets_already_stored() {
        let dir = std::env::temp_dir().join(format!("argus_sqlite_m19_{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
        let mut conn = store.conn.lock().unwrap_or_else(PoisonError::into_inner);
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        // A store as migration 18 left it: a ticket, no ticket_alerts.
        conn.execute_batch(
            "DROP TABLE ticket_alerts; DELETE FROM schema_migrations WHERE version = 19;",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        conn.execute(
            &format!(
                "INSERT INTO tickets ({TICKETS}) VALUES ('t1', 'E001', 'T01', 'coal', 'team', \
                 'red', 'new', 1, 0, '', '[\"a1\",\"a2\"]', 1)"
            ),
            [],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let pairs: Vec<(String, String, String)> = conn
            .prepare("SELECT alert_id, ticket_id, department FROM ticket_alerts ORDER BY alert_id")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let pair = |a: &str| (a.to_owned(), "t1".to_owned(), "coal".to_owned());
        assert_eq!(pairs, [pair("a1"), pair("a2")]);
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn months_start_at_midnight_utc() {
        assert_eq!(month_start(202_611), Timestamp(1_793_491_200_000));
        assert_eq!(crate::retention::month_of(month_start(202_611)), 202_611);
        assert_eq!(
            crate::retention::month_of(Timestamp(month_start(202_611).as_millis() - 1)),
            202_610
        );
    }
}
