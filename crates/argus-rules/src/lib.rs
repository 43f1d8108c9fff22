//! Violation checks as plain state machines over readings, in event time.
//!
//! A rule's state machine sees the readings of one key (a monitoring point and metric) in
//! event-time order and the advance of event time (the watermark); it answers with alert
//! [`Transition`]s. Ordering, lateness and the exchange of keys between workers are the
//! dataflow's business: this crate is pure (no I/O, no timely, no clock), so the same input
//! always gives the same transitions, whatever the worker count.

pub mod alert_id;
pub mod average;
pub mod crossfeed;
pub mod episode;
pub mod fnv;
pub mod quality;
pub mod spec;
pub mod threshold;

pub use alert_id::alert_id;
pub use average::{Average, AverageParams, O2Correction, Period};
pub use episode::Episode;
pub use spec::{Instance, LimitSelector, Machine, RuleSet, RulesError};
pub use threshold::{Comparison, Threshold, ThresholdParams};

use argus_model::{MetricCode, SourceId, Timestamp};

/// What a state machine reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The condition began at `started_at` and now counts as a violation.
    Fired {
        /// Event time at which the condition began.
        started_at: Timestamp,
        /// The value that completed the condition.
        value: f64,
    },
    /// The condition ended.
    Resolved {
        /// Event time at which the condition began.
        started_at: Timestamp,
        /// Event time of the reading that ended it.
        ended_at: Timestamp,
        /// Highest (for upper limits; lowest for lower limits) value while firing.
        peak: f64,
        /// Mean of the valid values while firing.
        mean: f64,
    },
}

/// The key a state machine runs for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The source (MN or device id).
    pub source: SourceId,
    /// The metric.
    pub metric: MetricCode,
}
