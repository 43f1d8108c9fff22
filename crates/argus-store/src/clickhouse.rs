//! The ClickHouse store: schema migrations at startup, a column check, and batched inserts with
//! the writer user.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use argus_config::ClickHouseSettings;
use argus_model::{AlertQuery, Interval, TicketQuery, Timestamp};
use clickhouse::Client;

use crate::migrations::{sql, MIGRATIONS, MIGRATIONS_TABLE};
use crate::rows::{
    first_writes, AlertAckRow, AlertEventRow, AlertRow, CredentialRow, DeliveryRow, EventRow,
    HourRow, OutboxRow, ReadingKey, ReadingRow, RejectedRow, StoredReading, TicketEventRow,
    TicketRow, UserRow, COLUMNS,
};
use crate::search::{self, Dialect, Param};
use crate::spool::RowBatch;
use crate::{life_order, same_columns, Acknowledgement, Counts, Store, StoreError};

/// The record in one ClickHouse database, written by the writer user.
#[derive(Clone)]
pub struct ClickHouseStore {
    client: Client,
    database: String,
    /// Acknowledgements one at a time (ClickHouse has no transactions: check, then insert):
    /// shared by every clone of the store in this process, so concurrent requests for one alert
    /// give one acknowledgement.
    acknowledging: Arc<tokio::sync::Mutex<()>>,
    /// Per series (source, metric), an event time at or after which the table holds no reading
    /// of it but those this process wrote (see [`ClickHouseStore::on_record`]).
    newest: Arc<std::sync::Mutex<Newest>>,
}

/// Per source, per metric, per interval (by [`slot`]): the newest event time (ms) on record
/// that this process knows of.
type Newest = HashMap<String, HashMap<String, [Option<i64>; 4]>>;

/// The place of an interval (by name) in a [`Newest`] entry.
fn slot(interval: &str) -> usize {
    Interval::parse(interval).map_or(0, |i| i as usize)
}

fn newest_of(newest: &Newest, r: &ReadingRow) -> Option<i64> {
    newest.get(&r.source)?.get(&r.metric)?[slot(&r.data_interval)]
}

/// How far back the newest reading of a series is looked for the first time a process writes
/// it: a reading older than that, or older than the newest written since, is looked up.
const FIRST_WRITE_HORIZON_MS: i64 = 2 * 86_400_000;

/// Series or ranges per lookup query (well within ClickHouse's 256 KiB `max_query_size`).
const LOOKUP_CHUNK: usize = 500;

/// Series remembered at most (beyond, the memory starts over: more lookups, same answers).
const MAX_SERIES: usize = 200_000;

/// Keys of one series closer than this in event time are read as one range.
const RANGE_GAP_MS: i64 = 3_600_000;

/// Event times `from..=to` (ms) of one series (source, metric, interval): a primary-key range.
type Range = (String, String, String, i64, i64);

/// The ranges covering sorted, distinct `keys`: one per series, split where keys lie more than
/// [`RANGE_GAP_MS`] apart.
fn key_ranges(keys: &[ReadingKey]) -> Vec<Range> {
    let mut ranges: Vec<Range> = Vec::new();
    for (source, metric, interval, ms) in keys {
        match ranges.last_mut() {
            Some((s, m, i, _, to))
                if s == source && m == metric && i == interval && ms - *to <= RANGE_GAP_MS =>
            {
                *to = *ms;
            }
            _ => ranges.push((source.clone(), metric.clone(), interval.clone(), *ms, *ms)),
        }
    }
    ranges
}

/// `n` primary-key range conditions joined by OR (ClickHouse reads only their granules), bound
/// by [`bind_ranges`].
fn range_conditions(n: usize) -> String {
    vec!["(source = ? AND metric = ? AND data_interval = ? AND event_ms >= ? AND event_ms <= ?)"; n]
        .join(" OR ")
}

fn bind_ranges(mut query: clickhouse::query::Query, ranges: &[Range]) -> clickhouse::query::Query {
    for (source, metric, interval, from, to) in ranges {
        query = query
            .bind(source)
            .bind(metric)
            .bind(interval)
            .bind(*from)
            .bind(*to);
    }
    query
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

fn query_error(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Query { what, source }
}

impl ClickHouseStore {
    /// A store writing as the configured writer into `database` (instead of the configured
    /// one, for tests).
    pub fn with_database(settings: &ClickHouseSettings, database: &str) -> Self {
        // Schema validation must be off with ClickHouse 18.16 (its server lacks the format the
        // client checks with); the column check at startup stands in for it.
        let client = Client::default()
            .with_url(&settings.url)
            .with_user(&settings.writer.username)
            .with_password(&settings.writer.password)
            .with_validation(false);
        Self {
            client,
            database: database.to_owned(),
            acknowledging: Arc::default(),
            newest: Arc::default(),
        }
    }

    /// A store writing into the configured database.
    pub fn new(settings: &ClickHouseSettings) -> Self {
        Self::with_database(settings, &settings.database)
    }

    /// Create the database and apply the migrations not yet recorded, in order; returns the
    /// versions applied now. Safe to run at every start and from several processes.
    pub async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        let db = &self.database;
        self.execute(
            &format!("CREATE DATABASE IF NOT EXISTS {db}"),
            "create database",
        )
        .await?;
        self.execute(&sql(MIGRATIONS_TABLE, db), "create schema_migrations")
            .await?;
        let done: Vec<u32> = self
            .client
            .query(&format!(
                "SELECT DISTINCT version FROM {db}.schema_migrations"
            ))
            .fetch_all()
            .await
            .map_err(query_error("read schema_migrations"))?;
        let mut applied = Vec::new();
        for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            for statement in m.statements {
                let what = format!("migration {} ({})", m.version, m.name);
                if let Some((table, column)) = crate::migrations::added_column(statement) {
                    let present: u64 = self
                        .client
                        .query(
                            "SELECT count() FROM system.columns WHERE database = ? AND table = ? \
                             AND name = ?",
                        )
                        .bind(db)
                        .bind(table)
                        .bind(column)
                        .fetch_one()
                        .await
                        .map_err(query_error("read the columns of a table"))?;
                    if present > 0 {
                        continue;
                    }
                }
                self.execute(&sql(statement, db), &what).await?;
            }
            let record = format!(
                "INSERT INTO {db}.schema_migrations (version, name, applied_at) VALUES ({}, '{}', now())",
                m.version,
                m.name.replace('\'', "")
            );
            self.execute(&record, "record migration").await?;
            tracing::info!(version = m.version, name = m.name, database = %db, "migration applied");
            applied.push(m.version);
        }
        Ok(applied)
    }

    /// Check that every table Argus writes has exactly the columns of its rows (with schema
    /// validation off, the client would otherwise store mismatched rows as garbage).
    pub async fn check_columns(&self) -> Result<(), StoreError> {
        for (table, columns) in COLUMNS {
            // 18.16 has no `position` in system.columns: compare sorted by name.
            let found: Vec<(String, String)> = self
                .client
                .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ? ORDER BY name")
                .bind(&self.database)
                .bind(*table)
                .fetch_all()
                .await
                .map_err(query_error(format!("read the columns of {table}")))?;
            let expected = columns
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect();
            same_columns(table, expected, found)?;
        }
        Ok(())
    }

    /// Chain the lines of a ticket's record about to be written to the last line on record of
    /// each ticket (see [`crate::audit::link`]).
    async fn link_ticket_events(&self, lines: &mut Vec<TicketEventRow>) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<&str> = lines.iter().map(|l| l.ticket_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let stored: Vec<(String, u32, String)> = self
            .query(
                "SELECT ticket_id, max(seq), argMax(hash, seq) FROM ticket_events \
                 WHERE has(?, ticket_id) GROUP BY ticket_id",
            )
            .bind(ids)
            .fetch_all()
            .await
            .map_err(query_error("read the last line of ticket records"))?;
        let stored = stored
            .into_iter()
            .map(|(id, seq, hash)| (id, (seq, hash)))
            .collect();
        crate::audit::link(lines, &stored);
        Ok(())
    }

    /// Run a query returning rows (for tests and tools), against the store's database.
    pub fn query(&self, sql: &str) -> clickhouse::query::Query {
        self.client.clone().with_database(&self.database).query(sql)
    }

    async fn execute(&self, statement: &str, what: &str) -> Result<(), StoreError> {
        self.client
            .query(statement)
            .execute()
            .await
            .map_err(query_error(what))
    }

    async fn insert<T>(&self, table: &str, rows: &[T]) -> Result<(), StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let what = || format!("insert into {table}");
        // `insert` takes a bare table name; the database comes from the client.
        let client = self.client.clone().with_database(&self.database);
        let mut insert = client
            .insert::<T>(table)
            .await
            .map_err(query_error(what()))?;
        for row in rows {
            insert.write(row).await.map_err(query_error(what()))?;
        }
        insert.end().await.map_err(query_error(what()))
    }
}

impl ClickHouseStore {
    /// What `table` (`readings` or `logger_readings`) holds for the keys of `readings` that
    /// may be on record: each series' newest event time is looked up once (over
    /// [`FIRST_WRITE_HORIZON_MS`]) and remembered with what this process writes, so that a
    /// reading newer than that needs no lookup: in a steady feed, none does. Redeliveries,
    /// backfills and late readings are looked up by key (the table's primary key). Exact while
    /// this process is the only one writing the series (a Kafka partition, a plain subscription
    /// per process, one gateway per logger).
    async fn on_record(
        &self,
        table: &str,
        readings: &[ReadingRow],
    ) -> Result<HashMap<ReadingKey, StoredReading>, StoreError> {
        let floor_ms = Timestamp::from_system_time(std::time::SystemTime::now())
            .as_millis()
            .saturating_sub(FIRST_WRITE_HORIZON_MS);
        let unknown: Vec<(String, String, String)> = {
            let newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
            let mut unknown: Vec<(String, String, String)> = readings
                .iter()
                .filter(|r| newest_of(&newest, r).is_none())
                .map(|r| (r.source.clone(), r.metric.clone(), r.data_interval.clone()))
                .collect();
            unknown.sort_unstable();
            unknown.dedup();
            unknown
        };
        let mut found = HashMap::new();
        for chunk in unknown.chunks(LOOKUP_CHUNK) {
            // One primary-key range per series: (source, metric, interval, event_ms >= floor).
            let ranges: Vec<Range> = chunk
                .iter()
                .map(|(s, m, i)| (s.clone(), m.clone(), i.clone(), floor_ms, i64::MAX))
                .collect();
            let sql = format!(
                "SELECT source, metric, data_interval, max(event_ms) FROM {table} \
                 WHERE event_time >= toDateTime(?) AND ({}) GROUP BY source, metric, data_interval",
                range_conditions(ranges.len())
            );
            let query = bind_ranges(self.query(&sql).bind(floor_ms.max(0) / 1_000), &ranges);
            let rows: Vec<(String, String, String, i64)> = query.fetch_all().await.map_err(
                query_error(format!("read the newest rows of series in {table}")),
            )?;
            found.extend(rows.into_iter().map(|(s, m, i, t)| ((s, m, i), t)));
        }
        let mut keys: Vec<ReadingKey> = {
            let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
            let series: usize = newest.values().map(HashMap::len).sum();
            if series + unknown.len() > MAX_SERIES {
                newest.clear();
            }
            for key in unknown {
                let t = found.get(&key).copied().unwrap_or(floor_ms - 1);
                let (source, metric, interval) = key;
                let slot = slot(&interval);
                newest.entry(source).or_default().entry(metric).or_default()[slot] =
                    Some(t.max(floor_ms - 1));
            }
            readings
                .iter()
                .filter(|r| newest_of(&newest, r).is_none_or(|t| r.event_ms <= t))
                .map(ReadingRow::key)
                .collect()
        };
        keys.sort_unstable();
        keys.dedup();
        let mut stored = HashMap::new();
        for chunk in key_ranges(&keys).chunks(LOOKUP_CHUNK) {
            let (from, to) = chunk.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
                (lo.min(r.3), hi.max(r.4))
            });
            // The first received of each key (a row written twice by a race is one).
            let sql = format!(
                "SELECT source, metric, data_interval, event_ms, argMin(value, receive_ms), \
                 argMin(flag, receive_ms), min(receive_ms) FROM {table} \
                 WHERE event_time >= toDateTime(?) AND event_time <= toDateTime(?) AND ({}) \
                 GROUP BY source, metric, data_interval, event_ms",
                range_conditions(chunk.len())
            );
            let query = self
                .query(&sql)
                .bind(from.max(0) / 1_000)
                .bind(to.max(0) / 1_000);
            let rows: Vec<StoredReading> = bind_ranges(query, chunk)
                .fetch_all()
                .await
                .map_err(query_error(format!("read the rows on record in {table}")))?;
            stored.extend(rows.into_iter().map(|r| {
                (
                    (
                        r.source.clone(),
                        r.metric.clone(),
                        r.data_interval.clone(),
                        r.event_ms,
                    ),
                    r,
                )
            }));
        }
        Ok(stored)
    }

    /// Remember the newest event time written of each series in `readings`.
    fn written(&self, readings: &[ReadingRow]) {
        let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        for r in readings {
            let slot = slot(&r.data_interval);
            if let Some(Some(t)) = newest
                .get_mut(&r.source)
                .and_then(|m| m.get_mut(&r.metric))
                .map(|slots| &mut slots[slot])
            {
                *t = (*t).max(r.event_ms);
            }
        }
    }

    /// Carry earlier acknowledgements onto alert rows that would replace an acknowledged row
    /// (updated and resolved ones): an acknowledgement survives the alert's later transitions.
    async fn carry_acknowledgements(&self, alerts: &mut [AlertRow]) -> Result<(), StoreError> {
        let pending: Vec<&str> = alerts
            .iter()
            .filter(|a| a.version >= crate::rows::version::UPDATED && a.acknowledged_ms == 0)
            .map(|a| a.alert_id.as_str())
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let acks: Vec<(String, String, i64)> = self
            .query(
                "SELECT alert_id, argMin(actor, at_ms), min(at_ms) FROM alert_acks \
                 WHERE has(?, alert_id) GROUP BY alert_id",
            )
            .bind(pending)
            .fetch_all()
            .await
            .map_err(query_error("read alert acknowledgements"))?;
        let acks: HashMap<String, (String, i64)> = acks
            .into_iter()
            .map(|(id, by, at)| (id, (by, at)))
            .collect();
        for alert in alerts.iter_mut() {
            if let Some((by, at)) = acks.get(&alert.alert_id) {
                alert.acknowledge(by, *at);
            }
        }
        Ok(())
    }
}

impl Store for ClickHouseStore {
    fn describe(&self) -> String {
        format!("clickhouse database {}", self.database)
    }

    async fn prepare(&self) -> Result<Vec<u32>, StoreError> {
        let applied = self.migrate().await?;
        self.check_columns().await?;
        Ok(applied)
    }

    async fn insert_batch(&self, batch: &mut RowBatch) -> Result<(), StoreError> {
        // First write wins: readings on record already are dropped (the same value) or kept
        // apart (another one); sorted again on a retry, so a write that failed after it was
        // in counts once.
        if !batch.readings.is_empty() {
            // Real-time readings first, then the logger's averages (their own table).
            batch.readings.sort_by_key(|r| !r.is_real_time());
            let split = batch.readings.partition_point(ReadingRow::is_real_time);
            let (real_time, logger) = batch.readings.split_at(split);
            let mut stored = HashMap::new();
            if !real_time.is_empty() {
                stored = self.on_record("readings", real_time).await?;
            }
            if !logger.is_empty() {
                stored.extend(self.on_record("logger_readings", logger).await?);
            }
            batch.duplicates += first_writes(
                &mut batch.readings,
                &stored,
                &mut batch.conflicts,
                &mut batch.events,
            );
        }
        // Replacing tables first: a retry of them is harmless.
        self.insert("conflicts", &batch.conflicts).await?;
        let split = batch.readings.partition_point(ReadingRow::is_real_time);
        let (real_time, logger) = batch.readings.split_at(split);
        self.insert("readings", real_time).await?;
        self.insert("logger_readings", logger).await?;
        self.written(&batch.readings);
        batch.readings.clear();
        self.insert("alert_events", &batch.alert_events).await?;
        batch.alert_events.clear();
        self.carry_acknowledgements(&mut batch.alerts).await?;
        self.insert("alerts", &batch.alerts).await?;
        batch.alerts.clear();
        self.insert("tickets", &batch.tickets).await?;
        batch.tickets.clear();
        self.insert("rejected_inputs", &batch.rejected).await?;
        batch.rejected.clear();
        if batch.events.iter().any(crate::audit::is_silence) {
            // Staff silences chained to the last one on record (the sink writes one batch at
            // a time).
            let last: Vec<(u64, String)> = self
                .query(
                    "SELECT chain_seq, hash FROM events WHERE chain_seq > 0 \
                     ORDER BY chain_seq DESC LIMIT 1",
                )
                .fetch_all()
                .await
                .map_err(query_error("read the last silence"))?;
            crate::audit::link_silences(
                &mut batch.events,
                last.into_iter().next().unwrap_or_default(),
            );
        }
        self.insert("events", &batch.events).await?;
        batch.events.clear();
        // The deliveries before the changes they deliver: a crash between the two leaves a
        // delivery whose change never landed (never sent), never a change without delivery.
        self.insert("outbox", &batch.outbox).await?;
        batch.outbox.clear();
        self.link_ticket_events(&mut batch.ticket_events).await?;
        self.insert("ticket_events", &batch.ticket_events).await?;
        batch.ticket_events.clear();
        Ok(())
    }

    fn forget_written_series(&self) {
        self.newest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    async fn acknowledge(&self, ack: &Acknowledgement) -> Result<AlertRow, StoreError> {
        let _one_at_a_time = self.acknowledging.lock().await;
        let id = &ack.alert_id;
        if self.alert(id).await?.is_none() {
            return Err(StoreError::UnknownAlert(id.clone()));
        }
        let earlier: Vec<(String, i64, String)> = self
            .query(
                "SELECT actor, at_ms, request_key FROM alert_acks WHERE alert_id = ? \
                 ORDER BY at_ms LIMIT 1",
            )
            .bind(id)
            .fetch_all()
            .await
            .map_err(query_error("read alert acknowledgements"))?;
        let retried = match earlier.into_iter().next() {
            None => false,
            Some((by, at, stored)) => match crate::same_request(&ack.request_key, &stored) {
                // The same request again: its answer (the row below carries the acknowledgement).
                Some(true) => true,
                Some(false) => {
                    return Err(StoreError::RequestKeyReused {
                        key: crate::RequestKey::parse(&ack.request_key)
                            .map(|k| k.key)
                            .unwrap_or_default(),
                    })
                }
                None => {
                    return Err(StoreError::AlreadyAcknowledged {
                        alert_id: id.clone(),
                        by,
                        at: Timestamp(at).to_rfc3339(),
                    })
                }
            },
        };
        // The acknowledgement first: a transition written from now on carries it ...
        if !retried {
            // Chained to the last acknowledgement on record (one at a time: the lock above).
            let last: Vec<(u64, String)> = self
                .query("SELECT seq, hash FROM alert_acks ORDER BY seq DESC LIMIT 1")
                .fetch_all()
                .await
                .map_err(query_error("read the last acknowledgement"))?;
            let mut row = [AlertAckRow::new(ack)];
            crate::audit::link_acks(&mut row, last.into_iter().next().unwrap_or_default());
            self.insert("alert_acks", &row).await?;
        }
        // ... then the current row; should a transition read the acknowledgements just before
        // they held this one, its row wins over ours and is written again with it.
        let mut current = None;
        for _ in 0..5 {
            let Some(mut row) = self.alert(id).await? else {
                return Err(StoreError::UnknownAlert(id.clone()));
            };
            if row.acknowledged_ms != 0 {
                return Ok(row);
            }
            row.acknowledge(&ack.actor, ack.at.as_millis());
            self.insert("alerts", std::slice::from_ref(&row)).await?;
            current = Some(row);
        }
        current.ok_or_else(|| StoreError::UnknownAlert(id.clone()))
    }

    async fn drop_readings_before(&self, month: u32) -> Result<Vec<u32>, StoreError> {
        let mut dropped: Vec<u32> = Vec::new();
        for table in ["readings", "logger_readings"] {
            let partitions: Vec<String> = self
                .client
                .query(
                    "SELECT DISTINCT partition FROM system.parts \
                     WHERE database = ? AND table = ? AND active",
                )
                .bind(&self.database)
                .bind(table)
                .fetch_all()
                .await
                .map_err(query_error(format!("list the partitions of {table}")))?;
            let mut old: Vec<u32> = partitions
                .iter()
                .filter_map(|p| p.trim_matches('\'').parse::<u32>().ok())
                .filter(|&p| p < month)
                .collect();
            old.sort_unstable();
            for p in &old {
                let statement = format!("ALTER TABLE {}.{table} DROP PARTITION {p}", self.database);
                self.execute(&statement, &format!("drop partition {p} of {table}"))
                    .await?;
            }
            dropped.extend(old);
        }
        dropped.sort_unstable();
        dropped.dedup();
        Ok(dropped)
    }

    async fn readings(
        &self,
        source: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ReadingRow>, StoreError> {
        let mut rows = Vec::new();
        for table in ["readings", "logger_readings"] {
            let sql = format!(
                "SELECT ?fields FROM {table} FINAL WHERE source = ? AND event_ms >= ? \
                 AND event_ms < ? ORDER BY metric, data_interval, event_ms"
            );
            let found: Vec<ReadingRow> = self
                .query(&sql)
                .bind(source)
                .bind(from.as_millis())
                .bind(to.as_millis())
                .fetch_all()
                .await
                .map_err(query_error(format!("read {table}")))?;
            rows.extend(found);
        }
        rows.sort_by(|a, b| {
            (&a.metric, &a.data_interval, a.event_ms).cmp(&(
                &b.metric,
                &b.data_interval,
                b.event_ms,
            ))
        });
        Ok(rows)
    }

    async fn alert(&self, alert_id: &str) -> Result<Option<AlertRow>, StoreError> {
        let rows: Vec<AlertRow> = self
            .query("SELECT ?fields FROM alerts FINAL WHERE alert_id = ?")
            .bind(alert_id)
            .fetch_all()
            .await
            .map_err(query_error("read an alert"))?;
        Ok(rows.into_iter().next())
    }

    async fn enterprise_alerts(&self, enterprise_id: &str) -> Result<Vec<AlertRow>, StoreError> {
        self.query(
            "SELECT ?fields FROM alerts FINAL WHERE enterprise_id = ? \
             ORDER BY started_ms DESC, alert_id",
        )
        .bind(enterprise_id)
        .fetch_all()
        .await
        .map_err(query_error("read an enterprise's alerts"))
    }

    async fn alert_events(&self, alert_id: &str) -> Result<Vec<AlertEventRow>, StoreError> {
        let mut rows: Vec<AlertEventRow> = self
            .query("SELECT ?fields FROM alert_events FINAL WHERE alert_id = ?")
            .bind(alert_id)
            .fetch_all()
            .await
            .map_err(query_error("read alert events"))?;
        life_order(&mut rows);
        Ok(rows)
    }

    async fn ticket_events(&self, ticket_id: &str) -> Result<Vec<TicketEventRow>, StoreError> {
        self.query("SELECT ?fields FROM ticket_events WHERE ticket_id = ? ORDER BY seq")
            .bind(ticket_id)
            .fetch_all()
            .await
            .map_err(query_error("read ticket events"))
    }

    async fn open_tickets(&self) -> Result<Vec<(TicketRow, i64)>, StoreError> {
        let rows: Vec<TicketRow> = self
            .query("SELECT ?fields FROM tickets FINAL WHERE state != 'closed'")
            .fetch_all()
            .await
            .map_err(query_error("read open tickets"))?;
        let latest: Vec<(String, i64)> = self
            .query("SELECT ticket_id, max(at_ms) FROM ticket_events GROUP BY ticket_id")
            .fetch_all()
            .await
            .map_err(query_error("read ticket events"))?;
        let latest: HashMap<String, i64> = latest.into_iter().collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let at = latest
                    .get(&row.ticket_id)
                    .copied()
                    .unwrap_or(row.created_ms);
                (row, at)
            })
            .collect())
    }

    async fn recent_alerts(&self, limit: u32) -> Result<Vec<AlertRow>, StoreError> {
        self.query("SELECT ?fields FROM alerts FINAL ORDER BY started_ms DESC, alert_id LIMIT ?")
            .bind(limit)
            .fetch_all()
            .await
            .map_err(query_error("read recent alerts"))
    }

    async fn fired_transitions(&self) -> Result<Vec<AlertEventRow>, StoreError> {
        self.query(
            "SELECT ?fields FROM alert_events FINAL WHERE transition = 'fired' \
             ORDER BY recorded_ms, alert_id",
        )
        .fetch_all()
        .await
        .map_err(query_error("read fired transitions"))
    }

    async fn recent_tickets(&self, limit: u32) -> Result<Vec<TicketRow>, StoreError> {
        self.query("SELECT ?fields FROM tickets FINAL ORDER BY created_ms DESC, ticket_id LIMIT ?")
            .bind(limit)
            .fetch_all()
            .await
            .map_err(query_error("read recent tickets"))
    }

    async fn ticket(&self, ticket_id: &str) -> Result<Option<TicketRow>, StoreError> {
        let rows: Vec<TicketRow> = self
            .query("SELECT ?fields FROM tickets FINAL WHERE ticket_id = ?")
            .bind(ticket_id)
            .fetch_all()
            .await
            .map_err(query_error("read a ticket"))?;
        Ok(rows.into_iter().next())
    }

    async fn notices_until_after(&self, after: Timestamp) -> Result<Vec<EventRow>, StoreError> {
        self.query(
            "SELECT ?fields FROM events WHERE kind = 'maintenance_notice' AND until_ms > ? \
             ORDER BY event_ms",
        )
        .bind(after.as_millis())
        .fetch_all()
        .await
        .map_err(query_error("read maintenance notices"))
    }

    async fn silence_by_request(&self, key: &str) -> Result<Option<EventRow>, StoreError> {
        let rows: Vec<EventRow> = self
            .query(
                "SELECT ?fields FROM events WHERE kind = 'maintenance_notice' \
                 AND request_key != '' AND substring(request_key, 18, 256) = ? \
                 ORDER BY event_ms LIMIT 1",
            )
            .bind(key)
            .fetch_all()
            .await
            .map_err(query_error("read a silence by its request"))?;
        Ok(rows.into_iter().next())
    }

    async fn ticket_event_by_request(
        &self,
        ticket_id: &str,
        key: &str,
    ) -> Result<Option<TicketEventRow>, StoreError> {
        let rows: Vec<TicketEventRow> = self
            .query(
                "SELECT ?fields FROM ticket_events WHERE ticket_id = ? AND request_key != '' \
                 AND substring(request_key, 18, 256) = ? ORDER BY seq LIMIT 1",
            )
            .bind(ticket_id)
            .bind(key)
            .fetch_all()
            .await
            .map_err(query_error("read a ticket event by its request"))?;
        Ok(rows.into_iter().next())
    }

    async fn inputs_since(
        &self,
        since: Timestamp,
    ) -> Result<(Vec<ReadingRow>, Vec<EventRow>), StoreError> {
        let mut readings = Vec::new();
        // A logger's average counts at the end of its span: a day's value from a day earlier.
        for (table, back_ms) in [("readings", 0), ("logger_readings", 86_400_000)] {
            let from = since.as_millis().saturating_sub(back_ms);
            let sql = format!(
                "SELECT ?fields FROM {table} FINAL WHERE event_time >= ? AND event_ms >= ? \
                 ORDER BY event_ms"
            );
            let found: Vec<ReadingRow> = self
                .query(&sql)
                .bind(u32::try_from(from.max(0) / 1_000).unwrap_or(u32::MAX))
                .bind(from)
                .fetch_all()
                .await
                .map_err(query_error(format!("read the {table} since a checkpoint")))?;
            readings.extend(found);
        }
        let events = self
            .query("SELECT ?fields FROM events WHERE event_ms >= ? ORDER BY event_ms")
            .bind(since.as_millis())
            .fetch_all()
            .await
            .map_err(query_error("read the events since a checkpoint"))?;
        Ok((readings, events))
    }

    async fn rejected(&self, limit: u32) -> Result<Vec<RejectedRow>, StoreError> {
        self.query("SELECT ?fields FROM rejected_inputs FINAL ORDER BY received_ms DESC LIMIT ?")
            .bind(limit)
            .fetch_all()
            .await
            .map_err(query_error("read rejected inputs"))
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        let (readings, alerts, alert_events, alert_acks, rejected, tickets, ticket_events): (
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
        ) = self
            .query(
                "SELECT (SELECT count() FROM readings FINAL) \
                 + (SELECT count() FROM logger_readings FINAL), \
                 (SELECT uniqExact(alert_id) FROM alerts), \
                 (SELECT count() FROM alert_events FINAL), \
                 (SELECT count() FROM alert_acks), (SELECT count() FROM rejected_inputs FINAL), \
                 (SELECT uniqExact(ticket_id) FROM tickets), (SELECT count() FROM ticket_events)",
            )
            .fetch_one()
            .await
            .map_err(query_error("count rows"))?;
        Ok(Counts {
            readings,
            alerts,
            alert_events,
            alert_acks,
            rejected,
            tickets,
            ticket_events,
        })
    }

    async fn tickets_with_alert(&self, alert_id: &str) -> Result<Vec<TicketRow>, StoreError> {
        self.query("SELECT ?fields FROM tickets FINAL WHERE has(alert_ids, ?) ORDER BY ticket_id")
            .bind(alert_id)
            .fetch_all()
            .await
            .map_err(query_error("read the tickets of an alert"))
    }

    async fn find_alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRow>, StoreError> {
        let (sql, params) = search::alerts(Dialect::ClickHouse, "?fields", query);
        bind_all(self.query(&sql), params)
            .fetch_all()
            .await
            .map_err(query_error("search alerts"))
    }

    async fn find_tickets(&self, query: &TicketQuery) -> Result<Vec<TicketRow>, StoreError> {
        let (sql, params) = search::tickets(Dialect::ClickHouse, "?fields", query);
        bind_all(self.query(&sql), params)
            .fetch_all()
            .await
            .map_err(query_error("search tickets"))
    }

    async fn ticket_enterprises(
        &self,
        department: &str,
        town: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        self.query(
            "SELECT DISTINCT enterprise_id FROM tickets FINAL \
             WHERE department = ? AND (? = '' OR town = ?) ORDER BY enterprise_id",
        )
        .bind(department)
        .bind(town.unwrap_or_default())
        .bind(town.unwrap_or_default())
        .fetch_all()
        .await
        .map_err(query_error(
            "read the enterprises of a department's tickets",
        ))
    }

    async fn hourly(
        &self,
        source: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourRow>, StoreError> {
        let seconds = |t: Timestamp| u32::try_from(t.as_millis().div_euclid(1000)).unwrap_or(0);
        self.query(
            "SELECT toInt64(toUInt32(hour)) * 1000 AS hour_ms, avgMerge(avg_value) AS avg, \
             minMerge(min_value) AS min, maxMerge(max_value) AS max, \
             countMerge(samples) AS samples FROM readings_1h \
             WHERE source = ? AND metric = ? AND hour >= toDateTime(?) AND hour < toDateTime(?) \
             GROUP BY hour ORDER BY hour",
        )
        .bind(source)
        .bind(metric)
        .bind(seconds(from))
        .bind(seconds(to))
        .fetch_all()
        .await
        .map_err(query_error("read hourly readings"))
    }

    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.query(
            "SELECT ?fields FROM (SELECT * FROM outbox FINAL) \
             WHERE state = 'pending' AND next_ms <= ? \
             ORDER BY created_ms, ticket_id, seq, target LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all()
        .await
        .map_err(query_error("read due deliveries"))
    }

    async fn record_attempt(
        &self,
        outbox: &OutboxRow,
        attempt: &DeliveryRow,
    ) -> Result<(), StoreError> {
        self.insert("deliveries", std::slice::from_ref(attempt))
            .await?;
        self.insert("outbox", std::slice::from_ref(outbox)).await
    }

    async fn outbox_of(&self, ticket_id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        self.query("SELECT ?fields FROM outbox FINAL WHERE ticket_id = ? ORDER BY seq, target")
            .bind(ticket_id)
            .fetch_all()
            .await
            .map_err(query_error("read a ticket's deliveries"))
    }

    async fn attempts_of(&self, ticket_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        self.query(
            "SELECT ?fields FROM deliveries WHERE ticket_id = ? ORDER BY delivery_id, attempt",
        )
        .bind(ticket_id)
        .fetch_all()
        .await
        .map_err(query_error("read a ticket's delivery attempts"))
    }

    async fn acknowledgements(&self) -> Result<Vec<AlertAckRow>, StoreError> {
        self.query("SELECT ?fields FROM alert_acks ORDER BY seq, at_ms, alert_id")
            .fetch_all()
            .await
            .map_err(query_error("read the acknowledgements"))
    }

    async fn silences(&self) -> Result<Vec<EventRow>, StoreError> {
        self.query(
            "SELECT ?fields FROM events WHERE transport = 'api' \
             ORDER BY chain_seq, receive_ms, event_ms",
        )
        .fetch_all()
        .await
        .map_err(query_error("read the silences"))
    }

    async fn put_user(&self, user: &UserRow) -> Result<(), StoreError> {
        self.insert("users", std::slice::from_ref(user)).await
    }

    async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        let rows: Vec<UserRow> = self
            .query("SELECT ?fields FROM users FINAL WHERE name = ?")
            .bind(name)
            .fetch_all()
            .await
            .map_err(query_error("read a user"))?;
        Ok(rows.into_iter().next())
    }

    async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.query("SELECT ?fields FROM users FINAL ORDER BY name")
            .fetch_all()
            .await
            .map_err(query_error("read users"))
    }

    async fn put_credential(&self, credential: &CredentialRow) -> Result<(), StoreError> {
        self.insert("credentials", std::slice::from_ref(credential))
            .await
    }

    async fn credential(&self, secret_hash: &str) -> Result<Option<CredentialRow>, StoreError> {
        let rows: Vec<CredentialRow> = self
            .query("SELECT ?fields FROM credentials FINAL WHERE secret_hash = ?")
            .bind(secret_hash)
            .fetch_all()
            .await
            .map_err(query_error("read a credential"))?;
        Ok(rows.into_iter().next())
    }

    async fn credentials_of(&self, user: &str) -> Result<Vec<CredentialRow>, StoreError> {
        self.query(
            "SELECT ?fields FROM credentials FINAL WHERE user = ? \
             ORDER BY created_ms DESC, secret_hash",
        )
        .bind(user)
        .fetch_all()
        .await
        .map_err(query_error("read a user's credentials"))
    }
}

/// A search's parameters bound in order.
fn bind_all(mut query: clickhouse::query::Query, params: Vec<Param>) -> clickhouse::query::Query {
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text),
            Param::Int(n) => query.bind(n),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_one_range_per_series_split_at_long_gaps() {
        let key = |s: &str, i: &str, ms: i64| (s.to_owned(), "a21026".to_owned(), i.to_owned(), ms);
        let keys = [
            key("A", "hour", 0),
            key("A", "real_time", 0),
            key("A", "real_time", 60_000),
            key("A", "real_time", 60_000 + RANGE_GAP_MS),
            key("A", "real_time", 60_001 + 2 * RANGE_GAP_MS),
            key("B", "real_time", 5),
        ];
        let ranges = key_ranges(&keys);
        let ranges: Vec<(&str, &str, i64, i64)> = ranges
            .iter()
            .map(|(s, _, i, from, to)| (s.as_str(), i.as_str(), *from, *to))
            .collect();
        // An interval is a series of its own.
        assert_eq!(
            ranges,
            [
                ("A", "hour", 0, 0),
                ("A", "real_time", 0, 60_000 + RANGE_GAP_MS),
                (
                    "A",
                    "real_time",
                    60_001 + 2 * RANGE_GAP_MS,
                    60_001 + 2 * RANGE_GAP_MS
                ),
                ("B", "real_time", 5, 5)
            ]
        );
        assert_eq!(
            range_conditions(2).matches('?').count(),
            10,
            "five binds a range"
        );
    }
}
