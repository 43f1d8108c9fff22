//! The sink: rows from the pipeline, the detection workers and the ticket book written in
//! batches (bounded in rows and in age), and the inputs they came from acknowledged only once
//! their rows are durable: written to the store (ClickHouse or SQLite), or kept in the on-disk
//! [`Spool`] while the store is unreachable. Spooled batches are written oldest first when it
//! returns, and while any are left new batches queue behind them, so rows arrive in order.
//! Without a spool (or with a full one) a failed write is retried with backoff and the sources
//! wait: backpressure, not memory growth. A batch holding a ticket change a person waits for is
//! written within [`AWAITED_MAX_AGE`] (group commit), whatever its configured age.

use std::path::PathBuf;
use std::time::Duration;

use argus_ingest::{Ack, DeadLetter};
use argus_model::{Event, Reading, Timestamp};
use argus_rules::AlertTransition;
use argus_telemetry::Telemetry;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::rows::{
    AlertEventRow, ConflictRow, EventRow, OutboxRow, RejectedRow, TicketEventRow, TicketRow,
};
use crate::spool::{RowBatch, Spool, SpoolError};
use crate::{Labels, Store, StoreError};

/// What the sink takes.
#[derive(Debug)]
pub enum Item {
    /// Accepted readings and refused inputs of one envelope; `ack` runs once they are durable.
    Input {
        /// Readings to store.
        readings: Vec<Reading>,
        /// Dead letters to store.
        rejected: Vec<DeadLetter>,
        /// Enterprise events and staff silences to store, with their transport.
        events: Vec<EventRow>,
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
        /// Their deliveries to the teams and systems that get them.
        outbox: Vec<OutboxRow>,
        /// Runs once they are durable: a change a person made is confirmed then.
        ack: Ack,
    },
    /// Runs once everything sent to the sink before it is durable (detection's checkpoint is
    /// saved then: never ahead of the transitions and tickets it covers).
    After(Ack),
}

/// Where the spool lives and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Its directory.
    pub dir: PathBuf,
    /// Its size limit.
    pub max_bytes: u64,
}

/// How the sink batches, retries and spools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    /// A batch is written once it holds this many rows ...
    pub max_rows: usize,
    /// ... or its first row has waited this long.
    pub max_age: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// The spool, if any.
    pub spool: Option<SpoolOptions>,
}

/// How long a batch holding a person's ticket change waits for more rows before it is written:
/// long enough to write changes made at once in one transaction, short enough to answer at once.
pub const AWAITED_MAX_AGE: Duration = Duration::from_millis(5);

impl Item {
    /// Whether a person waits for the item to be durable (a ticket change made through the API,
    /// answered once stored): its batch is written within [`AWAITED_MAX_AGE`], not `max_age`.
    fn is_awaited(&self) -> bool {
        matches!(self, Item::Tickets { ack, .. } if ack.is_awaited())
    }
}

#[derive(Debug, Default)]
struct Batch {
    readings: Vec<Reading>,
    rejected: Vec<DeadLetter>,
    events: Vec<EventRow>,
    transitions: Vec<AlertTransition>,
    ticket_events: Vec<TicketEventRow>,
    tickets: Vec<TicketRow>,
    outbox: Vec<OutboxRow>,
    acks: Vec<Ack>,
}

impl Batch {
    fn rows(&self) -> usize {
        self.readings.len()
            + self.rejected.len()
            + self.events.len()
            + self.transitions.len()
            + self.ticket_events.len()
    }

    fn is_empty(&self) -> bool {
        self.rows() == 0 && self.acks.is_empty() && self.tickets.is_empty()
    }

    fn add(&mut self, item: Item) {
        match item {
            Item::Input {
                readings,
                rejected,
                events,
                ack,
            } => {
                self.readings.extend(readings);
                self.rejected.extend(rejected);
                self.events.extend(events);
                self.acks.push(ack);
            }
            Item::Transitions(t) => self.transitions.extend(t),
            Item::Tickets {
                events,
                tickets,
                outbox,
                ack,
            } => {
                self.ticket_events.extend(events);
                self.tickets.extend(tickets);
                self.outbox.extend(outbox);
                self.acks.push(ack);
            }
            Item::After(ack) => self.acks.push(ack),
        }
    }
}

/// Rows of a batch that is in the store, for those who follow what is stored (the API's live
/// stream): alert transitions, ticket changes and the tickets they changed.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Alert transitions.
    pub alert_events: Vec<AlertEventRow>,
    /// Lines of tickets' records.
    pub ticket_events: Vec<TicketEventRow>,
    /// The tickets as those lines left them.
    pub tickets: Vec<TicketRow>,
}

impl Stored {
    fn of(rows: &RowBatch) -> Option<Self> {
        let stored = Self {
            alert_events: rows.alert_events.clone(),
            ticket_events: rows.ticket_events.clone(),
            tickets: rows.tickets.clone(),
        };
        (!stored.alert_events.is_empty() || !stored.ticket_events.is_empty()).then_some(stored)
    }
}

/// Where the sink hands on what it learns as it writes.
#[derive(Debug, Clone, Default)]
pub struct Outlets {
    /// The conflicting readings a write finds (as events, to detection).
    pub conflicts: Option<mpsc::UnboundedSender<Vec<Event>>>,
    /// The transitions and ticket changes of each batch once it is in the store.
    pub stored: Option<mpsc::UnboundedSender<Stored>>,
}

/// The sink's state between batches.
struct Sink<S> {
    store: S,
    labels: Labels,
    options: SinkOptions,
    telemetry: Telemetry,
    spool: Option<Spool>,
    /// Whether the schema is known to be in place.
    ready: bool,
    backoff: Duration,
    /// When the store may be tried again after a failure.
    next_try: Instant,
    /// Where conflicts and stored rows go.
    outlets: Outlets,
}

impl<S: Store> Sink<S> {
    fn failed(&mut self, what: &str, e: &StoreError) {
        self.telemetry.store.write_failures.inc();
        tracing::warn!(retry_in = ?self.backoff, "{what}: {e}");
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.options.max_backoff);
    }

    fn succeeded(&mut self) {
        self.backoff = Duration::from_millis(100);
        self.next_try = Instant::now();
    }

    fn gauge(&self) {
        let bytes = self.spool.as_ref().map_or(0, Spool::bytes);
        self.telemetry
            .store
            .spool_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Migrate and check the schema, once; fails only on foreign columns.
    async fn prepare(&mut self) -> Result<bool, StoreError> {
        if self.ready {
            return Ok(true);
        }
        match self.store.prepare().await {
            Ok(applied) => {
                tracing::info!(store = %self.store.describe(), ?applied, "schema ready");
                self.ready = true;
                self.succeeded();
                Ok(true)
            }
            Err(e) if !e.is_transient() => Err(e),
            Err(e) => {
                self.failed("cannot prepare the schema", &e);
                Ok(false)
            }
        }
    }

    /// Write spooled batches, oldest first, while the store takes them.
    async fn drain(&mut self) -> Result<(), StoreError> {
        if Instant::now() < self.next_try || !self.prepare().await? {
            return Ok(());
        }
        let Some(spool) = self.spool.as_mut() else {
            return Ok(());
        };
        loop {
            let spooled = match spool.oldest() {
                Ok(Some(s)) => s,
                Ok(None) => break,
                // Set aside with a `.bad` suffix, reported; the next one follows.
                Err(e @ SpoolError::SetAside { .. }) => {
                    tracing::error!("{e}");
                    continue;
                }
                // The disk refuses: stop rather than retry it in a loop.
                Err(e) => return Err(StoreError::Spool(e)),
            };
            let mut batch = spooled.batch;
            let rows = batch.len();
            let stored = self.outlets.stored.as_ref().and(Stored::of(&batch));
            match self.store.insert_batch(&mut batch).await {
                Ok(()) => {
                    spool.pop(spooled.seq).map_err(StoreError::Spool)?;
                    written(&self.telemetry, &self.outlets, &mut batch, stored);
                    self.telemetry
                        .store
                        .rows
                        .with_label_values(&["spooled"])
                        .inc_by(rows as u64);
                }
                Err(e) => {
                    if batch.len() < rows {
                        // Part of it is in: keep only the rest.
                        spool.pop(spooled.seq).map_err(StoreError::Spool)?;
                        spool.push_front(&batch).map_err(StoreError::Spool)?;
                    }
                    self.failed("cannot write spooled rows to the store", &e);
                    break;
                }
            }
        }
        if self.spool.as_ref().is_some_and(Spool::is_empty) {
            tracing::info!("spool drained");
        }
        self.succeeded_if_empty();
        self.gauge();
        Ok(())
    }

    fn succeeded_if_empty(&mut self) {
        if self.spool.as_ref().is_none_or(Spool::is_empty) && Instant::now() >= self.next_try {
            self.succeeded();
        }
    }

    /// Make a batch durable and acknowledge its inputs (the sink counts as busy meanwhile, for
    /// `/readyz`).
    async fn flush(
        &mut self,
        batch: Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        self.telemetry.readiness.sink_busy();
        let flushed = self.make_durable(batch, shutdown).await;
        self.telemetry.readiness.sink_idle();
        flushed
    }

    /// Make a batch durable and acknowledge its inputs; on shutdown, give up on what cannot
    /// be made durable (unacknowledged: delivered again after a restart).
    async fn make_durable(
        &mut self,
        batch: Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let Batch {
            readings,
            rejected,
            events,
            transitions,
            ticket_events,
            tickets,
            outbox,
            acks,
        } = batch;
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        let (alert_events, alerts) = self.labels.transition_rows(&transitions, now);
        let mut rows = RowBatch {
            readings: self.labels.reading_rows(&readings),
            rejected: rejected.iter().map(RejectedRow::new).collect(),
            alert_events,
            alerts,
            ticket_events,
            tickets,
            events,
            outbox,
            conflicts: Vec::new(),
            duplicates: 0,
        };
        let total = rows.len();
        let stored = self.outlets.stored.as_ref().and(Stored::of(&rows));
        loop {
            let spooling = self.spool.as_ref().is_some_and(|s| !s.is_empty());
            if !spooling && Instant::now() >= self.next_try && self.prepare().await? {
                match self.store.insert_batch(&mut rows).await {
                    Ok(()) => {
                        self.succeeded();
                        written(&self.telemetry, &self.outlets, &mut rows, stored);
                        self.telemetry
                            .store
                            .rows
                            .with_label_values(&["direct"])
                            .inc_by(total as u64);
                        break;
                    }
                    Err(e) => self.failed("cannot write to the store", &e),
                }
            }
            if let Some(spool) = self.spool.as_mut() {
                match spool.push(&rows) {
                    Ok(()) => {
                        self.gauge();
                        break;
                    }
                    Err(e @ SpoolError::Full { .. }) => {
                        tracing::warn!("{e}: waiting for the store");
                        self.drain().await?;
                    }
                    Err(e) => return Err(StoreError::Spool(e)),
                }
            }
            if *shutdown.borrow() {
                tracing::error!(
                    rows = rows.len(),
                    "shutting down with rows neither in the store nor spooled; their inputs stay unacknowledged and will be delivered again"
                );
                return Ok(());
            }
            let wait = self
                .next_try
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(50));
            tokio::select! {
                _ = shutdown.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        for ack in acks {
            ack.done();
        }
        Ok(())
    }
}

/// A batch is in: count its duplicates, hand on its conflicts and what it stored.
fn written(telemetry: &Telemetry, outlets: &Outlets, batch: &mut RowBatch, stored: Option<Stored>) {
    if let (Some(tx), Some(stored)) = (&outlets.stored, stored) {
        // The stream may have stopped first (at shutdown): the rows are stored anyway.
        let _ = tx.send(stored);
    }
    let store = &telemetry.store;
    store
        .duplicate_readings
        .inc_by(std::mem::take(&mut batch.duplicates));
    let conflicts = std::mem::take(&mut batch.conflicts);
    let Some(first) = conflicts.first() else {
        return;
    };
    store.conflicting_readings.inc_by(conflicts.len() as u64);
    tracing::warn!(
        count = conflicts.len(),
        source = ?first.source,
        metric = ?first.metric,
        stored = first.stored_value,
        received = first.value,
        "readings delivered again with another value: the record keeps the first, the later ones are in the conflicts table; the first of these"
    );
    if let Some(tx) = &outlets.conflicts {
        // Detection may have stopped first (at shutdown): the events are stored anyway.
        let _ = tx.send(conflicts.iter().map(ConflictRow::to_event).collect());
    }
}

/// Prepare the database (migrations and the column check, retried while the store is
/// unreachable), then make durable what `rx` brings until every sender is gone, and flush.
/// Readings are written first-write-wins (see [`crate::rows::first_writes`]); the conflicts a
/// write finds go to `outlets.conflicts`, as events, and its transitions and ticket changes to
/// `outlets.stored`, once the batch is in.
/// Fails only on what retrying cannot mend: tables whose columns are not Argus's (writing would
/// store garbage), an SQLite file that cannot be migrated, and a spool the file system refuses.
pub async fn run<S: Store>(
    store: S,
    labels: Labels,
    mut rx: mpsc::Receiver<Item>,
    options: SinkOptions,
    telemetry: Telemetry,
    outlets: Outlets,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let spool = match &options.spool {
        Some(s) => Some(Spool::open(&s.dir, s.max_bytes).map_err(StoreError::Spool)?),
        None => None,
    };
    if let Some(s) = &spool {
        if !s.is_empty() {
            tracing::info!(
                batches = s.len(),
                bytes = s.bytes(),
                "spooled batches from an earlier run"
            );
        }
    }
    let mut sink = Sink {
        store,
        labels,
        options,
        telemetry,
        spool,
        ready: false,
        backoff: Duration::from_millis(100),
        next_try: Instant::now(),
        outlets,
    };
    sink.gauge();
    sink.prepare().await?;
    let mut batch = Batch::default();
    let mut deadline: Option<Instant> = None;
    let mut open = true;
    while open || !batch.is_empty() {
        let due = batch.rows() >= sink.options.max_rows
            || deadline.is_some_and(|d| Instant::now() >= d)
            || (!open && !batch.is_empty());
        if due {
            let full = std::mem::take(&mut batch);
            deadline = None;
            sink.flush(full, &mut shutdown).await?;
            continue;
        }
        let spooled = sink.spool.as_ref().is_some_and(|s| !s.is_empty());
        // Wake for the batch's age, or to retry the spool.
        let wake = match (deadline, spooled) {
            (Some(d), true) => Some(d.min(sink.next_try)),
            (Some(d), false) => Some(d),
            (None, true) => Some(sink.next_try),
            (None, false) => None,
        };
        let received = match wake {
            Some(at) => tokio::time::timeout_at(at, rx.recv()).await.ok(),
            None => Some(rx.recv().await),
        };
        match received {
            Some(Some(item)) => {
                let age = if item.is_awaited() {
                    AWAITED_MAX_AGE.min(sink.options.max_age)
                } else {
                    sink.options.max_age
                };
                let by = Instant::now() + age;
                deadline = Some(deadline.map_or(by, |d| d.min(by)));
                batch.add(item);
            }
            Some(None) => open = false,
            None => {
                if spooled {
                    sink.drain().await?;
                }
            }
        }
    }
    // Last chance to empty the spool before stopping; what stays is written at the next start.
    if sink.spool.as_ref().is_some_and(|s| !s.is_empty()) && !*shutdown.borrow() {
        sink.drain().await?;
    }
    tracing::info!(
        spooled_batches = sink.spool.as_ref().map_or(0, Spool::len),
        "store sink drained"
    );
    Ok(())
}
