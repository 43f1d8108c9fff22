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
    /// An open alert got worse: `value` is its new worst value, at least
    /// [`UPDATE_STEP`] (relative) worse than the value last reported (fired or updated). Raised
    /// by threshold rules without a `for` duration and by regulatory averages; other rules
    /// report their worst on resolution.
    Updated {
        /// Event time at which the condition began (the alert's start, part of its id).
        started_at: Timestamp,
        /// The new worst value.
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

/// How much worse than the value last reported an open alert's worst value must be to be
/// reported again (10 %): enough to tell staff a violation is growing, few enough to bound the
/// updates (a value a hundred times the first gives at most 49).
pub const UPDATE_STEP: f64 = 0.1;

/// Whether `value` is [`UPDATE_STEP`] worse than `reported`, worse being higher when `upward`.
pub fn worse_by_a_step(reported: f64, value: f64, upward: bool) -> bool {
    let step = UPDATE_STEP * reported.abs();
    if upward {
        value > reported && value - reported >= step
    } else {
        value < reported && reported - value >= step
    }
}

/// The key a state machine runs for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The source (MN or device id).
    pub source: SourceId,
    /// The metric.
    pub metric: MetricCode,
}
