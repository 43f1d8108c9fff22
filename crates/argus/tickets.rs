//! Enforcement tickets in the running service: alerts fired by the detection workers go through
//! the ticket book (policy, routing, grouping), deadlines are checked on a timer (missed ones
//! escalate to the department head), and every ticket event goes to the store's sink with the
//! ticket as of that event.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use argus_model::Timestamp;
use argus_store::rows::{TicketEventRow, TicketRow};
use argus_store::sink::Item;
use argus_tickets::{FiredAlert, TicketBook, TicketEvent};
use tokio::sync::mpsc;

/// Run until every sender of fired alerts is gone (the dataflow has drained).
pub async fn run(
    mut book: TicketBook,
    mut fired: mpsc::Receiver<Vec<FiredAlert>>,
    sink: mpsc::Sender<Item>,
    check_every: Duration,
) -> anyhow::Result<()> {
    let mut clock = tokio::time::interval(check_every);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut created, mut escalated) = (0_u64, 0_u64);
    loop {
        let now = || Timestamp::from_system_time(SystemTime::now());
        let events = tokio::select! {
            alerts = fired.recv() => match alerts {
                Some(alerts) => {
                    let at = now();
                    let events: Vec<TicketEvent> =
                        alerts.iter().flat_map(|a| book.on_alert(a, at)).collect();
                    created += events.iter().filter(|e| e.seq == 1).count() as u64;
                    events
                }
                None => break,
            },
            _ = clock.tick() => {
                let events = book.on_clock(now());
                escalated += events.len() as u64;
                events
            }
        };
        if events.is_empty() {
            continue;
        }
        for e in &events {
            tracing::info!(
                ticket = %format!("{:016x}", e.ticket_id),
                seq = e.seq,
                event = e.kind.as_str(),
                to = e.to.as_str(),
                team = book.team(e.ticket_id).unwrap_or(""),
                note = %e.note,
                "ticket"
            );
        }
        // The tickets as of their latest event here.
        let mut latest: BTreeMap<u64, u32> = BTreeMap::new();
        for e in &events {
            latest.insert(e.ticket_id, e.seq);
        }
        let tickets = latest
            .iter()
            .filter_map(|(id, seq)| {
                let ticket = book.ticket(*id)?;
                Some(TicketRow::new(ticket, book.team(*id).unwrap_or(""), *seq))
            })
            .collect();
        let item = Item::Tickets {
            events: events.iter().map(TicketEventRow::new).collect(),
            tickets,
        };
        sink.send(item)
            .await
            .map_err(|_| anyhow::anyhow!("the store sink has stopped"))?;
    }
    tracing::info!(created, escalated, "tickets drained");
    Ok(())
}
