//! The ClickHouse store: schema migrations at startup, a column check, and batched inserts with
//! the writer user.

use std::collections::HashMap;

use argus_config::ClickHouseSettings;
use argus_dataflow::AlertTransition;
use argus_ingest::DeadLetter;
use argus_model::{Reading, Registry, Timestamp};
use clickhouse::Client;

use crate::migrations::{sql, MIGRATIONS, MIGRATIONS_TABLE};
use crate::rows::{
    alert_rows, AlertEventRow, AlertRow, ReadingRow, RejectedRow, TicketEventRow, TicketRow,
    COLUMNS,
};
use crate::spool::RowBatch;
use crate::StoreError;

/// Readings, alerts and rejected inputs in one ClickHouse database.
#[derive(Clone)]
pub struct ClickHouseStore {
    client: Client,
    database: String,
    enterprise_of: HashMap<String, String>,
    town_of: HashMap<String, String>,
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
    /// one, for tests), with the registry's enterprises and towns to label rows.
    pub fn with_database(
        settings: &ClickHouseSettings,
        database: &str,
        registry: &Registry,
    ) -> Self {
        // Schema validation must be off with ClickHouse 18.16 (its server lacks the format the
        // client checks with); the column check at startup stands in for it.
        let client = Client::default()
            .with_url(&settings.url)
            .with_user(&settings.writer.username)
            .with_password(&settings.writer.password)
            .with_validation(false);
        let enterprise_of = registry
            .points()
            .map(|p| (p.mn.as_str().to_owned(), p.enterprise_id.clone()))
            .collect();
        let town_of = registry
            .enterprises()
            .map(|e| (e.id.clone(), e.town.clone()))
            .collect();
        Self {
            client,
            database: database.to_owned(),
            enterprise_of,
            town_of,
        }
    }

    /// A store writing into the configured database.
    pub fn new(settings: &ClickHouseSettings, registry: &Registry) -> Self {
        Self::with_database(settings, &settings.database, registry)
    }

    /// The database written to.
    pub fn database(&self) -> &str {
        &self.database
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
            let expected: Vec<(String, String)> = columns
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect();
            if found != expected {
                return Err(StoreError::Schema {
                    table: (*table).to_owned(),
                    expected,
                    found,
                });
            }
        }
        Ok(())
    }

    /// The rows of readings (labelled with their enterprise).
    pub fn reading_rows(&self, readings: &[Reading]) -> Vec<ReadingRow> {
        readings
            .iter()
            .map(|r| {
                let enterprise = self
                    .enterprise_of
                    .get(r.source.as_str())
                    .map_or("", String::as_str);
                ReadingRow::new(r, enterprise)
            })
            .collect()
    }

    /// The rows of alert transitions: their events and the alerts' current rows (labelled with
    /// the enterprise's town).
    pub fn transition_rows(
        &self,
        transitions: &[AlertTransition],
        recorded: Timestamp,
    ) -> (Vec<AlertEventRow>, Vec<AlertRow>) {
        transitions
            .iter()
            .map(|t| {
                let town = self
                    .town_of
                    .get(&*t.instance.enterprise_id)
                    .map_or("", String::as_str);
                alert_rows(t, town, recorded)
            })
            .unzip()
    }

    /// Insert readings (one request).
    pub async fn insert_readings(&self, readings: &[Reading]) -> Result<(), StoreError> {
        self.insert("readings", &self.reading_rows(readings)).await
    }

    /// Insert alert transitions: their events and the alerts' current rows (two requests).
    pub async fn insert_transitions(
        &self,
        transitions: &[AlertTransition],
        recorded: Timestamp,
    ) -> Result<(), StoreError> {
        let (events, alerts) = self.transition_rows(transitions, recorded);
        self.insert("alert_events", &events).await?;
        self.insert("alerts", &alerts).await
    }

    /// Insert a batch of rows, table by table; the tables written are emptied from `batch`, so
    /// after a failure what is left is exactly what remains to write (the tables that only
    /// append, `rejected` and `ticket_events`, are never written twice).
    pub async fn insert_batch(&self, batch: &mut RowBatch) -> Result<(), StoreError> {
        // Replacing tables first: a retry of them is harmless.
        self.insert("readings", &batch.readings).await?;
        batch.readings.clear();
        self.insert("alert_events", &batch.alert_events).await?;
        batch.alert_events.clear();
        self.insert("alerts", &batch.alerts).await?;
        batch.alerts.clear();
        self.insert("tickets", &batch.tickets).await?;
        batch.tickets.clear();
        self.insert("rejected", &batch.rejected).await?;
        batch.rejected.clear();
        self.insert("ticket_events", &batch.ticket_events).await?;
        batch.ticket_events.clear();
        Ok(())
    }

    /// Insert ticket events and the tickets' current rows (two requests).
    pub async fn insert_tickets(
        &self,
        events: Vec<TicketEventRow>,
        tickets: Vec<TicketRow>,
    ) -> Result<(), StoreError> {
        self.insert("ticket_events", &events).await?;
        self.insert("tickets", &tickets).await
    }

    /// The open tickets (not closed), with the time of each one's latest event: what the ticket
    /// book takes back at start.
    pub async fn open_tickets(&self) -> Result<Vec<(TicketRow, i64)>, StoreError> {
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

    /// Insert dead letters (one request).
    pub async fn insert_rejected(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        let rows: Vec<RejectedRow> = letters.iter().map(RejectedRow::new).collect();
        self.insert("rejected", &rows).await
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
