//! The live stream (`GET /api/stream`, Server-Sent Events): alert transitions and ticket changes
//! as they are stored, each with an id `<run>-<seq>`, filtered to what the caller may see. The
//! [`Hub`] keeps the newest events in a ring; a client that reconnects with `Last-Event-ID`
//! gets every event after it, once, while the ring still holds it, and a `reload` event
//! otherwise (an id of another run of Argus, or one the ring has let go).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use crate::auth::Caller;

/// Events the ring keeps by default.
pub const DEFAULT_STREAM_EVENTS: usize = 10_000;

/// Who may see an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// A ticket change: those who see the ticket's town and department.
    Ticket {
        /// The ticket's town.
        town: String,
        /// The ticket's department.
        department: String,
    },
    /// An alert transition: the whole county, and those who see one of the tickets listing
    /// the alert when it was stored (town, department).
    Alert {
        /// The tickets' towns and departments.
        tickets: Vec<(String, String)>,
    },
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// `alert` (data: the alert view with its transition) or `ticket` (data: the line of the
    /// ticket's record).
    pub kind: &'static str,
    /// The JSON of the event.
    pub data: String,
    /// Who may see it.
    pub audience: Audience,
}

impl StreamEvent {
    fn visible_to(&self, caller: &Caller) -> bool {
        if caller.sees_county() {
            return true;
        }
        match &self.audience {
            Audience::Ticket { town, department } => caller.sees(town, department),
            Audience::Alert { tickets } => tickets.iter().any(|(t, d)| caller.sees(t, d)),
        }
    }
}

#[derive(Debug)]
struct Ring {
    /// The seq of the next event published (the first is 1).
    next: u64,
    events: VecDeque<Arc<StreamEvent>>,
    capacity: usize,
}

impl Ring {
    /// The seq of the oldest event kept.
    fn oldest(&self) -> u64 {
        self.next - self.events.len() as u64
    }
}

/// The ring of recent events and the wake-up of the streams waiting for more.
#[derive(Debug)]
pub struct Hub {
    /// This run of Argus (its start, ms, in hex): ids of other runs mean nothing here.
    run: String,
    ring: Mutex<Ring>,
    published: tokio::sync::Notify,
}

/// A reconnecting client asked for events the ring no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gone;

impl Hub {
    /// A hub keeping the newest `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Self {
            run: format!("{run:x}"),
            ring: Mutex::new(Ring {
                next: 1,
                events: VecDeque::new(),
                capacity: capacity.max(1),
            }),
            published: tokio::sync::Notify::new(),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add events (in the order they were stored) and wake the streams.
    pub fn publish(&self, events: impl IntoIterator<Item = StreamEvent>) {
        {
            let mut ring = self.ring();
            for event in events {
                if ring.events.len() == ring.capacity {
                    ring.events.pop_front();
                }
                ring.events.push_back(Arc::new(event));
                ring.next += 1;
            }
        }
        self.published.notify_waiters();
    }

    /// The seq of the newest event published (0: none yet).
    fn newest(&self) -> u64 {
        self.ring().next - 1
    }

    /// The events after `seq`, with their seqs; [`Gone`] when some of them are no longer kept.
    fn after(&self, seq: u64) -> Result<Vec<(u64, Arc<StreamEvent>)>, Gone> {
        let ring = self.ring();
        if seq + 1 < ring.oldest() {
            return Err(Gone);
        }
        let skip = usize::try_from(seq + 1 - ring.oldest()).unwrap_or(usize::MAX);
        Ok(ring
            .events
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, e)| (ring.oldest() + i as u64, Arc::clone(e)))
            .collect())
    }

    /// Where a stream starts: after the event `last_event_id` names, or (none, or not one
    /// this hub can resume) now, with the reason to reload.
    fn resume_point(&self, last_event_id: Option<&str>) -> (u64, Option<&'static str>) {
        let Some(id) = last_event_id else {
            return (self.newest(), None);
        };
        let parsed = id
            .split_once('-')
            .filter(|(run, _)| *run == self.run)
            .and_then(|(_, seq)| seq.parse::<u64>().ok())
            .filter(|seq| *seq <= self.newest());
        match parsed {
            Some(seq) if self.after(seq).is_ok() => (seq, None),
            Some(_) => (
                self.newest(),
                Some("the events after Last-Event-ID are no longer kept"),
            ),
            None => (
                self.newest(),
                Some("Last-Event-ID is not of this run of argus"),
            ),
        }
    }
}

/// What a stream has yet to send, and where it stands.
struct Cursor {
    hub: Arc<Hub>,
    caller: Caller,
    seq: u64,
    pending: VecDeque<Event>,
}

fn reload(reason: &str) -> Event {
    let data = serde_json::json!({ "reason": reason, "action": "reload what you show" });
    Event::default().event("reload").data(data.to_string())
}

impl Cursor {
    /// The next event to send, waiting for one.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            let hub = Arc::clone(&self.hub);
            let published = hub.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            match hub.after(self.seq) {
                Ok(events) if events.is_empty() => published.await,
                Ok(events) => {
                    for (seq, event) in events {
                        self.seq = seq;
                        if event.visible_to(&self.caller) {
                            self.pending.push_back(
                                Event::default()
                                    .id(format!("{}-{seq}", hub.run))
                                    .event(event.kind)
                                    .data(event.data.clone()),
                            );
                        }
                    }
                }
                // Too slow: the ring moved past this stream.
                Err(Gone) => {
                    self.seq = hub.newest();
                    self.pending
                        .push_back(reload("the stream fell behind; events were missed"));
                }
            }
        }
    }
}

/// The SSE response for `caller`, resuming after `last_event_id` when it can.
pub fn respond(hub: Arc<Hub>, caller: Caller, last_event_id: Option<&str>) -> Response {
    let (seq, why_reload) = hub.resume_point(last_event_id);
    let mut pending = VecDeque::new();
    if let Some(why) = why_reload {
        pending.push_back(reload(why));
    }
    let cursor = Cursor {
        hub,
        caller,
        seq,
        pending,
    };
    let events = futures_util::stream::unfold(cursor, Cursor::next);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(n: u32) -> StreamEvent {
        StreamEvent {
            kind: "ticket",
            data: n.to_string(),
            audience: Audience::Ticket {
                town: "xinghe".into(),
                department: "coal".into(),
            },
        }
    }

    #[test]
    fn the_ring_resumes_after_a_kept_id_and_refuses_a_forgotten_or_foreign_one() {
        let hub = Hub::new(3);
        hub.publish((1..=5).map(event));
        assert_eq!(hub.newest(), 5);
        let seqs = |v: Vec<(u64, Arc<StreamEvent>)>| v.iter().map(|(s, _)| *s).collect::<Vec<_>>();
        assert_eq!(seqs(hub.after(2).unwrap()), [3, 4, 5]);
        assert_eq!(seqs(hub.after(4).unwrap()), [5]);
        assert!(hub.after(5).unwrap().is_empty());
        assert_eq!(hub.after(1), Err(Gone));
        let id = |seq: u64| format!("{}-{seq}", hub.run);
        assert_eq!(hub.resume_point(Some(&id(3))), (3, None));
        assert!(hub.resume_point(Some(&id(1))).1.is_some());
        assert!(hub.resume_point(Some("0-3")).1.is_some());
        assert!(hub.resume_point(Some(&id(99))).1.is_some());
        assert_eq!(hub.resume_point(None), (5, None));
    }
}
