//! What the API's live stream carries: the alert transitions and ticket changes the sink has
//! stored, as stream events with their audience (a ticket's town and department; for an alert,
//! those of the tickets listing it when it was stored), published to the API's hub in the order
//! they were stored.

use std::collections::HashMap;
use std::sync::Arc;

use argus_api::stream::{Audience, Hub, StreamEvent};
use argus_store::rows::TicketEventRow;
use argus_store::sink::Stored;
use argus_store::{Backend, Store};
use tokio::sync::mpsc;

/// Publish every stored batch until the sink stops.
pub async fn publish(store: Backend, mut stored: mpsc::UnboundedReceiver<Stored>, hub: Arc<Hub>) {
    while let Some(batch) = stored.recv().await {
        let mut events = Vec::new();
        for row in &batch.alert_events {
            let tickets = match store.tickets_with_alert(&row.alert_id).await {
                Ok(tickets) => tickets
                    .into_iter()
                    .map(|t| (t.town, t.department))
                    .collect(),
                Err(e) => {
                    tracing::warn!(alert = %row.alert_id, "stream: cannot read the alert's tickets, county staff only see it: {e}");
                    Vec::new()
                }
            };
            events.push(StreamEvent {
                kind: "alert",
                data: serde_json::to_string(&row.view()).unwrap_or_default(),
                audience: Audience::Alert { tickets },
            });
        }
        let mut places: HashMap<String, (String, String)> = batch
            .tickets
            .iter()
            .map(|t| (t.ticket_id.clone(), (t.town.clone(), t.department.clone())))
            .collect();
        // The lines as stored, with their place in the record's chain (the sink hands them on
        // as they were before the store linked them).
        let mut records: HashMap<String, Vec<TicketEventRow>> = HashMap::new();
        for line in &batch.ticket_events {
            if !places.contains_key(&line.ticket_id) {
                let found = store.ticket(&line.ticket_id).await.ok().flatten();
                let place = found.map(|t| (t.town, t.department)).unwrap_or_default();
                places.insert(line.ticket_id.clone(), place);
            }
            if !records.contains_key(&line.ticket_id) {
                let record = store
                    .ticket_events(&line.ticket_id)
                    .await
                    .unwrap_or_default();
                records.insert(line.ticket_id.clone(), record);
            }
            let stored = records
                .get(&line.ticket_id)
                .and_then(|r| r.iter().find(|l| l.seq == line.seq))
                .unwrap_or(line);
            let (town, department) = places.get(&line.ticket_id).cloned().unwrap_or_default();
            events.push(StreamEvent {
                kind: "ticket",
                data: serde_json::to_string(&stored.view()).unwrap_or_default(),
                audience: Audience::Ticket { town, department },
            });
        }
        hub.publish(events);
    }
}
