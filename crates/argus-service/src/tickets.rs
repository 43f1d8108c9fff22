//! Enforcement tickets in the running service: alerts fired by the detection workers go through
//! the ticket book (policy, routing, grouping), deadlines are checked on a timer (missed ones
//! escalate to the department head), and every ticket event goes to the store's sink with the
//! ticket as of that event; a change a person made is answered once its row is durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use argus_ingest::Ack;
use argus_model::Timestamp;
use argus_store::rows::{TicketEventRow, TicketRow};
use argus_store::sink::Item;
use argus_store::{Backend, RequestKey, Store};
use argus_tickets::{Change, EventKind, FiredAlert, TicketBook, TicketError, TicketEvent};
use tokio::sync::{mpsc, oneshot};

use crate::delivery::Targets;
use crate::ServiceError;

/// A change a person asks for through the API, with where to send the answer.
#[derive(Debug)]
pub struct Command {
    /// The ticket.
    pub id: u64,
    /// The change.
    pub change: Change,
    /// The request's idempotency key, as stored on the event's row (`RequestKey::stored`).
    pub request: Option<String>,
    /// The event recorded, or why the change was refused.
    pub reply: oneshot::Sender<Result<TicketEvent, Refused>>,
}

/// Why a change was not made.
#[derive(Debug)]
pub enum Refused {
    /// The ticket book refused it.
    Ticket(TicketError),
    /// Its idempotency key came before with another request.
    KeyReused(String),
}

/// The answers to the keyed requests of this run, by key: pending until durable (retries wait
/// for the first answer), then done. Bounded: past [`REQUESTS_KEPT`], the done ones are let go
/// (their rows answer retries from the store).
type Requests = Arc<Mutex<HashMap<String, (u64, Answer)>>>;

/// How many answers to keyed requests the book keeps in memory.
const REQUESTS_KEPT: usize = 10_000;

#[derive(Debug)]
enum Answer {
    /// Made, not yet durable: who else waits for it.
    Pending(Vec<oneshot::Sender<Result<TicketEvent, Refused>>>),
    /// Durable.
    Done(TicketEvent),
}

/// What detection hands the ticket book, in order.
#[derive(Debug)]
pub enum ToBook {
    /// Alerts fired by a worker.
    Fired(Vec<FiredAlert>),
    /// Alerts a notice or silence that arrived after they fired mutes (with its reason).
    Muted(Vec<(u64, std::sync::Arc<str>)>),
    /// Runs once the tickets of every alert before it are durable (a checkpoint is saved).
    After(Ack),
}

/// How long the book tries to take back the open tickets of an earlier run before it starts
/// without them (ClickHouse unreachable): alerts meanwhile wait.
const RESTORE_FOR: Duration = Duration::from_secs(30);

/// Take back the open tickets kept in the store by an earlier run.
async fn restore(book: &mut TicketBook, store: &Backend) {
    let deadline = tokio::time::Instant::now() + RESTORE_FOR;
    loop {
        match store.open_tickets().await {
            Ok(rows) => {
                let now = Timestamp::from_system_time(SystemTime::now());
                let mut unreadable = 0;
                for (row, at_ms) in rows {
                    match row.to_ticket() {
                        Some(ticket) => book.restore(
                            ticket,
                            row.team.clone(),
                            row.version,
                            Timestamp(at_ms),
                            now,
                        ),
                        None => unreadable += 1,
                    }
                    // The later mutes its record holds are not recorded again.
                    match store.ticket_events(&row.ticket_id).await {
                        Ok(events) => book.restore_muted(
                            events
                                .iter()
                                .filter(|e| e.event == EventKind::AlertMuted.as_str())
                                .flat_map(|e| &e.alert_ids)
                                .filter_map(|id| u64::from_str_radix(id, 16).ok()),
                        ),
                        Err(e) => tracing::warn!(
                            ticket = %row.ticket_id,
                            "cannot read the record of an open ticket: a later mute may be recorded on it again: {e}"
                        ),
                    }
                }
                if unreadable > 0 {
                    tracing::error!(
                        unreadable,
                        "ticket rows Argus cannot read were not taken back"
                    );
                }
                tracing::info!(open = book.open_tickets(), "open tickets taken back");
                return;
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!("cannot read open tickets yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!("starting without the open tickets of the earlier run: {e}; new alerts of their enterprises open new tickets");
                return;
            }
        }
    }
}

/// Take back the open tickets, then run until every sender of fired alerts is gone (the
/// dataflow has drained).
pub async fn run(
    mut book: TicketBook,
    store: Backend,
    mut fired: mpsc::Receiver<ToBook>,
    mut commands: mpsc::Receiver<Command>,
    sink: mpsc::Sender<Item>,
    check_every: Duration,
    targets: Arc<Targets>,
) -> Result<(), ServiceError> {
    restore(&mut book, &store).await;
    let mut clock = tokio::time::interval(check_every);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut created, mut escalated) = (0_u64, 0_u64);
    let mut refused_log = argus_telemetry::RateLimited::new(argus_telemetry::LOG_EVERY);
    let requests: Requests = Arc::default();
    loop {
        let now = || Timestamp::from_system_time(SystemTime::now());
        let events = tokio::select! {
            alerts = fired.recv() => match alerts {
                Some(ToBook::After(ack)) => {
                    sink.send(Item::After(ack))
                        .await
                        .map_err(|_| ServiceError::Stopped("store sink"))?;
                    continue;
                }
                Some(ToBook::Fired(alerts)) => {
                    let at = now();
                    let events: Vec<TicketEvent> =
                        alerts.iter().flat_map(|a| book.on_alert(a, at)).collect();
                    created += events.iter().filter(|e| e.seq == 1).count() as u64;
                    events
                }
                Some(ToBook::Muted(alerts)) => {
                    let at = now();
                    alerts
                        .iter()
                        .filter_map(|(id, reason)| book.on_muted(*id, reason, at))
                        .collect()
                }
                None => break,
            },
            _ = clock.tick() => {
                let events = book.on_clock(now());
                escalated += events.len() as u64;
                events
            }
            Some(command) = commands.recv() => {
                let key = command.request.as_deref().and_then(RequestKey::parse);
                let Some(command) = answered(&requests, key.as_ref(), command) else {
                    continue;
                };
                match book.apply(command.id, command.change, now()) {
                    Ok(event) => {
                        // Confirmed only once its row is durable (the sink runs the ack then):
                        // a crash before that answers nothing, and the change can be made
                        // again after the restart (or found by its idempotency key).
                        if let Some(key) = &key {
                            let mut requests = requests.lock().unwrap_or_else(PoisonError::into_inner);
                            if requests.len() >= REQUESTS_KEPT {
                                requests.retain(|_, (_, a)| matches!(a, Answer::Pending(_)));
                            }
                            requests.insert(key.key.clone(), (key.fingerprint, Answer::Pending(Vec::new())));
                        }
                        let (reply, confirmed, shared) = (command.reply, event.clone(), Arc::clone(&requests));
                        let ack = Ack::new(move || {
                            let waiters = key.map_or_else(Vec::new, |key| {
                                let done = (key.fingerprint, Answer::Done(confirmed.clone()));
                                let mut requests = shared.lock().unwrap_or_else(PoisonError::into_inner);
                                match requests.insert(key.key, done) {
                                    Some((_, Answer::Pending(waiters))) => waiters,
                                    _ => Vec::new(),
                                }
                            });
                            for waiter in waiters {
                                let _ = waiter.send(Ok(confirmed.clone()));
                            }
                            let _ = reply.send(Ok(confirmed));
                        });
                        let mut rows = vec![TicketEventRow::new(&event)];
                        rows[0].request_key = command.request.unwrap_or_default();
                        record_rows(&book, std::slice::from_ref(&event), rows, (&sink, &targets), ack).await?;
                    }
                    Err(e) => {
                        if let Some(count) = refused_log.note(1, std::time::Instant::now()) {
                            tracing::warn!(count, error = ?e.to_string(), "ticket changes refused since the last line (the last of them)");
                        }
                        let _ = command.reply.send(Err(Refused::Ticket(e)));
                    }
                }
                continue;
            }
        };
        if events.is_empty() {
            continue;
        }
        record(&book, &events, (&sink, &targets), Ack::none()).await?;
    }
    tracing::info!(created, escalated, "tickets drained");
    Ok(())
}

/// A keyed request this run has seen: answered here (its answer once durable, or a refusal of
/// the key with another request), and `None`; otherwise the command, to be applied.
fn answered(requests: &Requests, key: Option<&RequestKey>, command: Command) -> Option<Command> {
    let Some(key) = key else {
        return Some(command);
    };
    let mut requests = requests.lock().unwrap_or_else(PoisonError::into_inner);
    let Some((fingerprint, answer)) = requests.get_mut(&key.key) else {
        return Some(command);
    };
    if *fingerprint != key.fingerprint {
        let _ = command.reply.send(Err(Refused::KeyReused(key.key.clone())));
        return None;
    }
    match answer {
        Answer::Done(event) => {
            let _ = command.reply.send(Ok(event.clone()));
        }
        Answer::Pending(waiters) => waiters.push(command.reply),
    }
    None
}

/// Log ticket events and hand them to the sink with the tickets as of them.
async fn record(
    book: &TicketBook,
    events: &[TicketEvent],
    to: (&mpsc::Sender<Item>, &Targets),
    ack: Ack,
) -> Result<(), ServiceError> {
    let rows = events.iter().map(TicketEventRow::new).collect();
    record_rows(book, events, rows, to, ack).await
}

/// [`record`] with the events' rows given.
async fn record_rows(
    book: &TicketBook,
    events: &[TicketEvent],
    rows: Vec<TicketEventRow>,
    (sink, targets): (&mpsc::Sender<Item>, &Targets),
    ack: Ack,
) -> Result<(), ServiceError> {
    {
        for e in events {
            tracing::info!(
                ticket = %format!("{:016x}", e.ticket_id),
                seq = e.seq,
                event = e.kind.as_str(),
                to = e.to.as_str(),
                team = book.team(e.ticket_id).unwrap_or(""),
                note = ?e.note,
                "ticket"
            );
        }
        // The tickets as of their latest event here.
        let mut latest: BTreeMap<u64, u32> = BTreeMap::new();
        for e in events {
            latest.insert(e.ticket_id, e.seq);
        }
        let tickets = latest
            .iter()
            .filter_map(|(id, seq)| {
                let ticket = book.ticket(*id)?;
                Some(TicketRow::new(ticket, book.team(*id).unwrap_or(""), *seq))
            })
            .collect();
        // Each line's deliveries, written with it.
        let outbox = rows
            .iter()
            .filter_map(|line| {
                let id = u64::from_str_radix(&line.ticket_id, 16).ok()?;
                let ticket = book.ticket(id)?;
                Some(targets.outbox(
                    &ticket.town,
                    &ticket.department,
                    &line.ticket_id,
                    line.seq,
                    line.at_ms,
                ))
            })
            .flatten()
            .collect();
        let item = Item::Tickets {
            events: rows,
            tickets,
            outbox,
            ack,
        };
        sink.send(item)
            .await
            .map_err(|_| ServiceError::Stopped("store sink"))?;
    }
    Ok(())
}
