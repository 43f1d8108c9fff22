//! Enterprise events: facts about production and safety state that are not measured values
//! (a production line started or stopped, a maintenance notice, coal-mine power-cut feedback).

use serde::{Deserialize, Serialize};

use crate::{SourceId, Timestamp};

/// What happened. Serialized externally tagged (`{"production_state": {..}}`) so that binary
/// formats without self-description (bincode, between timely processes) can carry it; the JSON
/// that senders write is `config/event.schema.json`, decoded by `argus-ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A production line (identified by its power meter or line id) started or stopped.
    ProductionState {
        /// Whether the line is now running.
        running: bool,
    },
    /// The enterprise filed a maintenance or shutdown notice: alerts on the covered points are
    /// muted (still recorded) during `[from, to)`.
    MaintenanceNotice {
        /// Start of the window.
        from: Timestamp,
        /// End of the window.
        to: Timestamp,
        /// The points covered; empty means every point of the enterprise.
        points: Vec<SourceId>,
        /// Why, as filed.
        reason: String,
        /// The stored idempotency key of the staff request that set it (a silence through the
        /// API); empty for a notice an enterprise filed.
        #[serde(default)]
        request: String,
    },
    /// Coal-mine power-cut feedback: whether the area a methane sensor guards is powered.
    PowerCutFeedback {
        /// Whether the area still has power.
        powered: bool,
    },
    /// Found by the store, never sent by a feed: a reading of `source` delivered again with
    /// another value or flag than the one on record (the first received, which stays). The
    /// event time is when the later delivery was received.
    ReadingConflict {
        /// The reading's metric.
        metric: crate::MetricCode,
        /// The reading's event time.
        reading_time: Timestamp,
        /// The value on record.
        stored: f64,
        /// The value delivered later.
        received: f64,
    },
}

/// One enterprise event, in the same time model as readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The enterprise, when the sender names it (maintenance notices always do).
    pub enterprise_id: Option<String>,
    /// The point or device the event is about, if any.
    pub source: Option<SourceId>,
    /// When it happened (for a notice: when it was filed), UTC.
    pub event_time: Timestamp,
    /// When Argus received it, UTC.
    pub receive_time: Timestamp,
    /// What happened.
    pub kind: EventKind,
}
