//! Argus storage: the supervision center's record in ClickHouse. Versioned migrations
//! ([`migrations`]), the rows Argus writes ([`rows`]), [`ClickHouseStore`], which applies the
//! schema, checks the server's columns against the rows, and inserts readings, alert transitions
//! and rejected inputs, and the [`sink`] that batches, retries and acknowledges.

pub mod migrations;
pub mod rows;
pub mod sink;
pub mod spool;
mod store;

pub use store::ClickHouseStore;

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query or insert failed (server unreachable, refused, timed out ...).
    #[error("clickhouse {what}: {source}")]
    Query {
        /// What Argus was doing.
        what: String,
        /// The client's error.
        source: clickhouse::error::Error,
    },
    /// The spool refused to keep or give back rows.
    #[error(transparent)]
    Spool(crate::spool::SpoolError),
    /// A table's columns are not those Argus writes: writing would store garbage.
    #[error("clickhouse table {table} has columns {found:?}, argus writes {expected:?}: migrate or fix the table")]
    Schema {
        /// The table.
        table: String,
        /// The columns Argus writes (name, type).
        expected: Vec<(String, String)>,
        /// The columns the server has.
        found: Vec<(String, String)>,
    },
}
