//! The ClickHouse schema as versioned migrations, applied in order at startup and recorded in
//! `schema_migrations`. Every statement is idempotent (`IF NOT EXISTS`; an added column is
//! skipped when it exists, see [`added_column`]), so two processes
//! migrating at once, or a migration interrupted half way, are harmless; the one copy between
//! tables (migration 9) goes into a ReplacingMergeTree, where rows copied twice are one. The SQL is valid on
//! ClickHouse 18.16 (the local stack's server) and on current releases: no TTL, DateTime64,
//! LowCardinality, codecs or Map; `{db}` is the database.

/// One schema step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number: migrations apply in increasing order, each once.
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// Its statements, run in order.
    pub statements: &'static [&'static str],
}

/// The table recording applied migrations (created before any migration runs).
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS {db}.schema_migrations \
    (version UInt32, name String, applied_at DateTime) \
    ENGINE = ReplacingMergeTree ORDER BY version";

/// Every migration, in order. Never edit one that has shipped: add another.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "readings",
        statements: &[
            // Every accepted reading, the evidence. A reading sent again (a replay, a
            // redelivery) has the same key and collapses on merge: query with FINAL, or
            // argMax(value, receive_ms), for exact counts.
            "CREATE TABLE IF NOT EXISTS {db}.readings (\
                source String, metric String, event_ms Int64, event_time DateTime, \
                value Float64, flag String, enterprise_id String, receive_ms Int64\
            ) ENGINE = ReplacingMergeTree(receive_ms) \
            PARTITION BY toYYYYMM(event_time) \
            ORDER BY (source, metric, event_ms)",
        ],
    },
    Migration {
        version: 2,
        name: "alerts and alert events",
        statements: &[
            // Every alert transition, append only: the alert's life.
            "CREATE TABLE IF NOT EXISTS {db}.alert_events (\
                alert_id String, transition String, rule_id String, kind String, \
                severity String, enterprise_id String, town String, source String, \
                metric String, standard String, started_at DateTime, started_ms Int64, \
                ended_ms Int64, value Float64, peak Float64, mean Float64, \
                limit_value Float64, muted UInt8, recorded_ms Int64\
            ) ENGINE = ReplacingMergeTree(recorded_ms) \
            PARTITION BY toYYYYMM(started_at) \
            ORDER BY (alert_id, transition, value)",
            // One current row per alert: the latest version wins (FINAL or argMax).
            "CREATE TABLE IF NOT EXISTS {db}.alerts (\
                alert_id String, rule_id String, kind String, severity String, \
                status String, enterprise_id String, town String, source String, \
                metric String, standard String, started_at DateTime, started_ms Int64, \
                ended_ms Int64, value Float64, peak Float64, mean Float64, \
                limit_value Float64, muted UInt8, acknowledged_by String, \
                acknowledged_ms Int64, version UInt64\
            ) ENGINE = ReplacingMergeTree(version) \
            ORDER BY alert_id",
        ],
    },
    Migration {
        version: 3,
        name: "rejected inputs",
        statements: &[
            // The dead letters, so staff can see bad feeds: reason, origin and the raw input.
            "CREATE TABLE IF NOT EXISTS {db}.rejected (\
                received_at DateTime, received_ms Int64, transport String, origin String, \
                reason String, detail String, raw String, raw_len UInt64\
            ) ENGINE = MergeTree \
            PARTITION BY toYYYYMM(received_at) \
            ORDER BY (reason, received_ms)",
        ],
    },
    Migration {
        version: 4,
        name: "reading rollups",
        statements: &[
            // Per point and metric, valid data only, 1-minute and 1-hour aggregates for the
            // dashboards; merge with avgMerge / minMerge / maxMerge / countMerge.
            "CREATE TABLE IF NOT EXISTS {db}.readings_1m (\
                source String, metric String, minute DateTime, \
                avg_value AggregateFunction(avg, Float64), \
                min_value AggregateFunction(min, Float64), \
                max_value AggregateFunction(max, Float64), \
                samples AggregateFunction(count)\
            ) ENGINE = AggregatingMergeTree \
            PARTITION BY toYYYYMM(minute) \
            ORDER BY (source, metric, minute)",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.readings_1m_mv TO {db}.readings_1m AS \
            SELECT source, metric, toStartOfMinute(event_time) AS minute, \
                avgState(value) AS avg_value, minState(value) AS min_value, \
                maxState(value) AS max_value, countState() AS samples \
            FROM {db}.readings WHERE flag = 'N' GROUP BY source, metric, minute",
            "CREATE TABLE IF NOT EXISTS {db}.readings_1h (\
                source String, metric String, hour DateTime, \
                avg_value AggregateFunction(avg, Float64), \
                min_value AggregateFunction(min, Float64), \
                max_value AggregateFunction(max, Float64), \
                samples AggregateFunction(count)\
            ) ENGINE = AggregatingMergeTree \
            PARTITION BY toYYYYMM(hour) \
            ORDER BY (source, metric, hour)",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.readings_1h_mv TO {db}.readings_1h AS \
            SELECT source, metric, toStartOfHour(event_time) AS hour, \
                avgState(value) AS avg_value, minState(value) AS min_value, \
                maxState(value) AS max_value, countState() AS samples \
            FROM {db}.readings WHERE flag = 'N' GROUP BY source, metric, hour",
        ],
    },
    Migration {
        version: 5,
        name: "tickets and ticket events",
        statements: &[
            // The legal record of enforcement: every change of every ticket, who, when, what,
            // in order (seq); append only, never updated or deleted by Argus.
            "CREATE TABLE IF NOT EXISTS {db}.ticket_events (\
                ticket_id String, seq UInt32, at DateTime, at_ms Int64, actor String, \
                role String, event String, from_state String, to_state String, note String, \
                alert_ids Array(String), outcome String\
            ) ENGINE = MergeTree \
            PARTITION BY toYYYYMM(at) \
            ORDER BY (ticket_id, seq)",
            // One current row per ticket (FINAL): the latest seq wins.
            "CREATE TABLE IF NOT EXISTS {db}.tickets (\
                ticket_id String, enterprise_id String, town String, department String, \
                team String, severity String, state String, created_ms Int64, \
                deadline_ms Int64, outcome String, alert_ids Array(String), version UInt32\
            ) ENGINE = ReplacingMergeTree(version) \
            ORDER BY ticket_id",
        ],
    },
    Migration {
        version: 6,
        name: "alert acknowledgements",
        statements: &[
            // Who acknowledged which alert, when, with what note: append only. The alert's
            // current row carries the first acknowledgement too.
            "CREATE TABLE IF NOT EXISTS {db}.alert_acks (\
                alert_id String, actor String, note String, at DateTime, at_ms Int64\
            ) ENGINE = MergeTree \
            PARTITION BY toYYYYMM(at) \
            ORDER BY (alert_id, at_ms)",
        ],
    },
    Migration {
        version: 7,
        name: "current alerts view",
        statements: &[
            // The alerts as they stand (FINAL), with their end and acknowledgement as times
            // (NULL until they happen): what staff and dashboards read.
            "CREATE VIEW IF NOT EXISTS {db}.alerts_current AS \
            SELECT *, \
                if(ended_ms = 0, NULL, toDateTime(intDiv(ended_ms, 1000))) AS ended_at, \
                if(acknowledged_ms = 0, NULL, toDateTime(intDiv(acknowledged_ms, 1000))) \
                    AS acknowledged_at \
            FROM {db}.alerts FINAL",
        ],
    },
    Migration {
        version: 8,
        name: "enterprise events and silences",
        statements: &[
            // Every enterprise event and staff silence as received, append only: detection's
            // maintenance calendar is rebuilt from it at start.
            "CREATE TABLE IF NOT EXISTS {db}.events (\
                enterprise_id String, source String, kind String, event_time DateTime, \
                event_ms Int64, receive_ms Int64, until_ms Int64, transport String, body String\
            ) ENGINE = MergeTree \
            PARTITION BY toYYYYMM(event_time) \
            ORDER BY (enterprise_id, event_ms)",
        ],
    },
    Migration {
        version: 9,
        name: "rejected inputs kept once",
        statements: &[
            // The dead letters, one row per input however often it was delivered (FINAL): a
            // redelivery has the same origin, reason and fingerprint (see `rows::fingerprint`).
            // Not partitioned by month, so that a redelivery in the next month still collapses.
            "CREATE TABLE IF NOT EXISTS {db}.rejected_inputs (\
                received_at DateTime, received_ms Int64, transport String, origin String, \
                reason String, detail String, raw String, raw_len UInt64, fingerprint UInt64\
            ) ENGINE = ReplacingMergeTree \
            ORDER BY (origin, reason, fingerprint)",
            // The rows of `rejected` (migration 3, no longer written) move over; run again, they
            // replace themselves (same key).
            "INSERT INTO {db}.rejected_inputs SELECT received_at, received_ms, transport, \
                origin, reason, detail, raw, raw_len, cityHash64(raw, raw_len, received_ms) \
            FROM {db}.rejected",
        ],
    },
    Migration {
        version: 10,
        name: "request keys",
        statements: &[
            // The idempotency key of the API request that made a ticket change or an
            // acknowledgement, on its row (`RequestKey::stored`; empty for Argus's own
            // events): a retried request finds its answer there, even after a crash.
            // 18.16 has no ADD COLUMN IF NOT EXISTS: the runner skips a column already there.
            "ALTER TABLE {db}.ticket_events ADD COLUMN request_key String DEFAULT ''",
            "ALTER TABLE {db}.alert_acks ADD COLUMN request_key String DEFAULT ''",
        ],
    },
    Migration {
        version: 11,
        name: "conflicting readings",
        statements: &[
            // First write wins: a reading delivered again with another value or flag than the
            // one on record is kept here, one row per delivery (a retried write replaces
            // itself), and the record keeps the first.
            "CREATE TABLE IF NOT EXISTS {db}.conflicts (\
                source String, metric String, event_ms Int64, event_time DateTime, \
                enterprise_id String, stored_value Float64, stored_flag String, \
                stored_receive_ms Int64, value Float64, flag String, receive_ms Int64, \
                received_at DateTime\
            ) ENGINE = ReplacingMergeTree \
            PARTITION BY toYYYYMM(received_at) \
            ORDER BY (source, metric, event_ms, receive_ms)",
        ],
    },
    Migration {
        version: 12,
        name: "silence request keys",
        statements: &[
            // The idempotency key of the API request that set a silence, on its row: a retried
            // request finds it there, even after a crash.
            "ALTER TABLE {db}.events ADD COLUMN request_key String DEFAULT ''",
        ],
    },
    Migration {
        version: 13,
        name: "data intervals",
        statements: &[
            // What span a value stands for. `readings` holds real-time values only (its rollups
            // stay real time); the data logger's own minute, hourly and daily averages (HJ 212
            // 2051, 2061, 2031) are a series apart, in `logger_readings`, keyed by interval: an
            // hourly value at 10:00 is not the real-time value at 10:00.
            "ALTER TABLE {db}.readings ADD COLUMN data_interval String DEFAULT 'real_time'",
            "ALTER TABLE {db}.readings ADD COLUMN corrected Nullable(Float64)",
            "CREATE TABLE IF NOT EXISTS {db}.logger_readings (\
                source String, metric String, event_ms Int64, event_time DateTime, \
                value Float64, flag String, enterprise_id String, receive_ms Int64, \
                data_interval String, corrected Nullable(Float64)\
            ) ENGINE = ReplacingMergeTree(receive_ms) \
            PARTITION BY toYYYYMM(event_time) \
            ORDER BY (source, metric, data_interval, event_ms)",
            "ALTER TABLE {db}.conflicts ADD COLUMN data_interval String DEFAULT 'real_time'",
        ],
    },
    Migration {
        version: 14,
        name: "stopped time per hour",
        statements: &[
            // Per point and metric and hour, the minutes with a reading flagged stopped (F):
            // under HJ 75 a stopped period is neither missing nor invalid data, so the hour's
            // stopped time is kept apart from its valid values (`readings_1h`); merge with
            // uniqExactMerge(stopped_minutes) (minutes since the epoch, one per minute).
            "CREATE TABLE IF NOT EXISTS {db}.readings_1h_stopped (\
                source String, metric String, hour DateTime, \
                stopped_minutes AggregateFunction(uniqExact, UInt32)\
            ) ENGINE = AggregatingMergeTree \
            PARTITION BY toYYYYMM(hour) \
            ORDER BY (source, metric, hour)",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.readings_1h_stopped_mv \
            TO {db}.readings_1h_stopped AS \
            SELECT source, metric, toStartOfHour(event_time) AS hour, \
                uniqExactState(intDiv(toUInt32(event_time), 60)) AS stopped_minutes \
            FROM {db}.readings WHERE flag = 'F' GROUP BY source, metric, hour",
        ],
    },
    Migration {
        version: 15,
        name: "users and credentials",
        statements: &[
            // Who may use Argus: one current row per user (FINAL: the highest version wins).
            "CREATE TABLE IF NOT EXISTS {db}.users (\
                name String, display_name String, role String, town String, \
                department String, password_hash String, disabled UInt8, created_ms Int64, \
                changed_ms Int64, version UInt64\
            ) ENGINE = ReplacingMergeTree(version) \
            ORDER BY name",
            // Sessions and API tokens by the SHA-256 of their secret (never the secret): one
            // current row each (FINAL), a revocation outranking every later use.
            "CREATE TABLE IF NOT EXISTS {db}.credentials (\
                secret_hash String, id String, kind String, user String, name String, \
                created_ms Int64, expires_ms Int64, last_used_ms Int64, revoked_ms Int64, \
                version UInt64\
            ) ENGINE = ReplacingMergeTree(version) \
            ORDER BY secret_hash",
        ],
    },
    Migration {
        version: 16,
        name: "chained ticket records",
        statements: &[
            // Each line of a ticket's record carries the SHA-256 of its content chained to the
            // line before it (`audit.rs`): a changed byte breaks the chain from that line on.
            "ALTER TABLE {db}.ticket_events ADD COLUMN prev_hash String DEFAULT ''",
            "ALTER TABLE {db}.ticket_events ADD COLUMN hash String DEFAULT ''",
        ],
    },
    Migration {
        version: 17,
        name: "delivery outbox",
        statements: &[
            // What is to be delivered where: one row per ticket change and target, written
            // with the change (before it: a row whose change never landed is never sent); one
            // current row each (FINAL), each attempt raising the version.
            "CREATE TABLE IF NOT EXISTS {db}.outbox (\
                delivery_id String, target String, ticket_id String, seq UInt32, \
                idempotency_key String, created_ms Int64, state String, attempts UInt32, \
                next_ms Int64, last_error String, version UInt32\
            ) ENGINE = ReplacingMergeTree(version) \
            ORDER BY delivery_id",
            // Every attempt and its outcome, kept.
            "CREATE TABLE IF NOT EXISTS {db}.deliveries (\
                delivery_id String, target String, ticket_id String, seq UInt32, \
                attempt UInt32, at_ms Int64, outcome String, status UInt16, error String, \
                duration_ms UInt32\
            ) ENGINE = MergeTree \
            ORDER BY (ticket_id, delivery_id, attempt)",
        ],
    },
    Migration {
        version: 18,
        name: "chained acknowledgements and silences",
        statements: &[
            // Staff acknowledgements and silences are legal record too: each is chained to the
            // one before it (`audit.rs`), in one chain per kind, numbered from 1.
            "ALTER TABLE {db}.alert_acks ADD COLUMN seq UInt64 DEFAULT 0",
            "ALTER TABLE {db}.alert_acks ADD COLUMN prev_hash String DEFAULT ''",
            "ALTER TABLE {db}.alert_acks ADD COLUMN hash String DEFAULT ''",
            "ALTER TABLE {db}.events ADD COLUMN chain_seq UInt64 DEFAULT 0",
            "ALTER TABLE {db}.events ADD COLUMN prev_hash String DEFAULT ''",
            "ALTER TABLE {db}.events ADD COLUMN hash String DEFAULT ''",
        ],
    },
    Migration {
        version: 19,
        name: "search order",
        // The embedded store's indexes for the API's searches, newest first; ClickHouse reads
        // its small current tables whole.
        statements: &[],
    },
];

/// The table and column an `ALTER TABLE {db}.T ADD COLUMN C ...` statement adds, if it is one:
/// the runner skips it when the column exists (a migration interrupted half way runs again).
pub fn added_column(statement: &str) -> Option<(&str, &str)> {
    let rest = statement.strip_prefix("ALTER TABLE {db}.")?;
    let (table, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("ADD COLUMN ")?;
    let (column, _) = rest.split_once(' ')?;
    Some((table, column))
}

/// A statement with the database filled in.
pub fn sql(statement: &str, database: &str) -> String {
    statement.replace("{db}", database)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_statements_are_idempotent() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "{} after {last}", m.version);
            last = m.version;
            for s in m.statements {
                // Idempotent: created only if missing, copied into a table that replaces
                // rows by key (`rejected_inputs`), or a column the runner adds only if missing.
                let replacing = s.starts_with("INSERT INTO {db}.rejected_inputs ");
                let added = added_column(s).is_some();
                assert!(s.contains("IF NOT EXISTS") || replacing || added, "{s}");
                assert!(!s.contains("TTL") && !s.contains("DateTime64"), "{s}");
            }
        }
        assert_eq!(sql("{db}.readings", "argus"), "argus.readings");
        assert_eq!(
            added_column("ALTER TABLE {db}.alert_acks ADD COLUMN request_key String DEFAULT ''"),
            Some(("alert_acks", "request_key"))
        );
        assert_eq!(
            added_column("ALTER TABLE {db}.readings DROP PARTITION 1"),
            None
        );
    }
}
