//! The sink: rows from the pipeline and the detection workers written in batches (bounded in
//! rows and in age), retried with backoff while ClickHouse fails, and the inputs they came from
//! acknowledged only once their rows are written. While writes fail the sink's queue fills and
//! the sources wait: backpressure, not memory growth.

use std::time::Duration;

use argus_dataflow::AlertTransition;
use argus_ingest::{Ack, DeadLetter};
use argus_model::{Reading, Timestamp};
use argus_telemetry::Telemetry;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::rows::{TicketEventRow, TicketRow};
use crate::{ClickHouseStore, StoreError};

/// What the sink takes.
#[derive(Debug)]
pub enum Item {
    /// Accepted readings and refused inputs of one envelope; `ack` runs once they are written.
    Input {
        /// Readings to store.
        readings: Vec<Reading>,
        /// Dead letters to store.
        rejected: Vec<DeadLetter>,
        /// The envelope's acknowledgement.
        ack: Ack,
    },
    /// Alert transitions from a detection worker.
    Transitions(Vec<AlertTransition>),
    /// Ticket events and the tickets they changed.
    Tickets {
        /// The events, in order.
        events: Vec<TicketEventRow>,
        /// The tickets as of those events.
        tickets: Vec<TicketRow>,
    },
}

/// How the sink batches and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkOptions {
    /// A batch is written once it holds this many rows ...
    pub max_rows: usize,
    /// ... or its first row has waited this long.
    pub max_age: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

#[derive(Debug, Default)]
struct Batch {
    readings: Vec<Reading>,
    rejected: Vec<DeadLetter>,
    transitions: Vec<AlertTransition>,
    ticket_events: Vec<TicketEventRow>,
    tickets: Vec<TicketRow>,
    acks: Vec<Ack>,
}

impl Batch {
    fn rows(&self) -> usize {
        self.readings.len()
            + self.rejected.len()
            + self.transitions.len()
            + self.ticket_events.len()
    }

    fn add(&mut self, item: Item) {
        match item {
            Item::Input {
                readings,
                rejected,
                ack,
            } => {
                self.readings.extend(readings);
                self.rejected.extend(rejected);
                self.acks.push(ack);
            }
            Item::Transitions(t) => self.transitions.extend(t),
            Item::Tickets { events, tickets } => {
                self.ticket_events.extend(events);
                self.tickets.extend(tickets);
            }
        }
    }
}

/// Prepare the database (migrations, column check; retried while ClickHouse is unreachable),
/// then write what `rx` brings until every sender is gone, and flush. On shutdown a batch that
/// cannot be written is left unacknowledged (its inputs are delivered again after a restart).
/// Fails only on tables whose columns are not Argus's: writing would store garbage.
pub async fn run(
    store: ClickHouseStore,
    mut rx: mpsc::Receiver<Item>,
    options: SinkOptions,
    telemetry: Telemetry,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let prepared = match store.migrate().await {
            Ok(applied) => store.check_columns().await.map(|()| applied),
            Err(e) => Err(e),
        };
        match prepared {
            Ok(applied) => {
                tracing::info!(
                    database = store.database(),
                    ?applied,
                    "clickhouse schema ready"
                );
                break;
            }
            Err(e @ StoreError::Schema { .. }) => return Err(e),
            Err(e) => {
                telemetry.store.write_failures.inc();
                if *shutdown.borrow() {
                    tracing::error!("shutting down before clickhouse was ready: {e}");
                    return Ok(());
                }
                tracing::warn!(retry_in = ?backoff, "cannot prepare the clickhouse schema: {e}");
                tokio::select! {
                    _ = shutdown.changed() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(options.max_backoff);
            }
        }
    }
    let mut batch = Batch::default();
    let mut deadline: Option<Instant> = None;
    let mut open = true;
    while open || batch.rows() > 0 || !batch.acks.is_empty() {
        let due = batch.rows() >= options.max_rows
            || deadline.is_some_and(|d| Instant::now() >= d)
            || (!open && (batch.rows() > 0 || !batch.acks.is_empty()));
        if due {
            let full = std::mem::take(&mut batch);
            deadline = None;
            write(&store, full, options, &telemetry, shutdown.clone()).await;
            continue;
        }
        let received = match deadline {
            Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
            None => Some(rx.recv().await),
        };
        match received {
            Some(Some(item)) => {
                if deadline.is_none() {
                    deadline = Some(Instant::now() + options.max_age);
                }
                batch.add(item);
            }
            Some(None) => open = false,
            None => {} // the batch's age is up
        }
    }
    tracing::info!("store sink drained");
    Ok(())
}

/// Write a batch, retrying with backoff; acknowledge its inputs once written.
async fn write(
    store: &ClickHouseStore,
    batch: Batch,
    options: SinkOptions,
    telemetry: &Telemetry,
    mut shutdown: watch::Receiver<bool>,
) {
    // Acknowledgements are not shared across the awaits below (they need not be Sync).
    let Batch {
        readings,
        rejected,
        transitions,
        ticket_events,
        tickets,
        acks,
    } = batch;
    let rows = Rows {
        readings,
        rejected,
        transitions,
        ticket_events,
        tickets,
    };
    let mut backoff = Duration::from_millis(100);
    let mut written = Written::default();
    loop {
        match attempt(store, &rows, &mut written, telemetry).await {
            Ok(()) => break,
            Err(e) => {
                telemetry.store.write_failures.inc();
                if *shutdown.borrow() {
                    tracing::error!(
                        rows = rows.len(),
                        "cannot write to clickhouse while shutting down: {e}; the inputs stay unacknowledged and will be delivered again"
                    );
                    return;
                }
                tracing::warn!(retry_in = ?backoff, rows = rows.len(), "cannot write to clickhouse: {e}");
                tokio::select! {
                    _ = shutdown.changed() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(options.max_backoff);
            }
        }
    }
    for ack in acks {
        ack.done();
    }
}

/// Which parts of a batch are written already (a retry does not write them twice).
#[derive(Debug, Default)]
struct Written {
    readings: bool,
    rejected: bool,
    transitions: bool,
    tickets: bool,
}

/// The rows of a batch.
#[derive(Debug)]
struct Rows {
    readings: Vec<Reading>,
    rejected: Vec<DeadLetter>,
    transitions: Vec<AlertTransition>,
    ticket_events: Vec<TicketEventRow>,
    tickets: Vec<TicketRow>,
}

impl Rows {
    fn len(&self) -> usize {
        self.readings.len()
            + self.rejected.len()
            + self.transitions.len()
            + self.ticket_events.len()
    }
}

async fn attempt(
    store: &ClickHouseStore,
    batch: &Rows,
    written: &mut Written,
    telemetry: &Telemetry,
) -> Result<(), StoreError> {
    let rows = &telemetry.store.rows;
    if !written.readings {
        store.insert_readings(&batch.readings).await?;
        written.readings = true;
        rows.with_label_values(&["readings"])
            .inc_by(batch.readings.len() as u64);
    }
    if !written.rejected {
        store.insert_rejected(&batch.rejected).await?;
        written.rejected = true;
        rows.with_label_values(&["rejected"])
            .inc_by(batch.rejected.len() as u64);
    }
    if !written.transitions {
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        store.insert_transitions(&batch.transitions, now).await?;
        written.transitions = true;
        rows.with_label_values(&["alert_events"])
            .inc_by(batch.transitions.len() as u64);
    }
    if !written.tickets {
        // Alerts before the tickets that cite them.
        store
            .insert_tickets(batch.ticket_events.clone(), batch.tickets.clone())
            .await?;
        written.tickets = true;
        rows.with_label_values(&["ticket_events"])
            .inc_by(batch.ticket_events.len() as u64);
    }
    Ok(())
}
