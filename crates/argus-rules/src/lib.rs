//! Violation checks as plain state machines over readings, in event time.
//!
//! A rule's state machine sees the readings of one key (a monitoring point and metric) in
//! event-time order and the advance of event time (the watermark); it answers with alert
//! [`Transition`]s. Ordering, lateness and the exchange of keys between workers are the
//! dataflow's business: this crate is pure (no I/O, no timely, no clock), so the same input
//! always gives the same transitions, whatever the worker count.

pub mod alert_id;
pub mod average;
pub mod consistency;
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

use std::sync::Arc;

use argus_model::{AlertKind, MetricCode, SourceId, Timestamp};

/// What a state machine reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// One alert transition, with the rule instance that raised it (rule id, severity, enterprise,
/// point, metric, standard) for storage and routing.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    /// Deterministic id: hash of rule, key and start time.
    pub alert_id: u64,
    /// The alert kind (an average rule raises `average` and `insufficient_data`).
    pub kind: AlertKind,
    /// The rule instance.
    pub instance: Arc<Instance>,
    /// Fired or resolved, with times and values.
    pub transition: Transition,
    /// Whether an enterprise maintenance notice (or a staff silence) covers its start:
    /// recorded, not notified.
    pub muted: bool,
    /// Set when this transition only records that a notice or silence which arrived after the
    /// alert fired covers its start: it repeats the alert's latest transition, now muted, and
    /// holds the notice's reason (a silence's names who set it).
    pub muted_later: Option<Arc<str>>,
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

impl AlertTransition {
    /// The canonical view of this transition (what `argus replay` prints and the live stream
    /// carries): the alert as the transition leaves it.
    pub fn view(&self) -> argus_model::AlertView {
        let i = &self.instance;
        let (started_at, ended_at, value, peak, mean, status, transition) = match &self.transition {
            Transition::Fired { started_at, value } => {
                (started_at, None, *value, None, None, "firing", "fired")
            }
            Transition::Updated { started_at, value } => {
                (started_at, None, *value, None, None, "firing", "updated")
            }
            Transition::Resolved {
                started_at,
                ended_at,
                peak,
                mean,
            } => (
                started_at,
                Some(ended_at.to_rfc3339()),
                *peak,
                Some(*peak),
                Some(*mean),
                "resolved",
                "resolved",
            ),
        };
        argus_model::AlertView {
            alert_id: format!("{:016x}", self.alert_id),
            rule: i.rule_id.to_string(),
            kind: self.kind.as_str().to_owned(),
            severity: i.severity.as_str().to_owned(),
            status: status.to_owned(),
            enterprise: i.enterprise_id.to_string(),
            town: None,
            point: i.point.as_str().to_owned(),
            metric: i.metric.map(|m| m.code().to_owned()),
            standard: i.standard.to_string(),
            started_at: started_at.to_rfc3339(),
            ended_at,
            value,
            peak,
            mean,
            limit: i.limit_value(),
            muted: self.muted,
            acknowledged_by: None,
            acknowledged_at: None,
            transition: Some(
                if self.muted_later.is_some() {
                    "muted"
                } else {
                    transition
                }
                .to_owned(),
            ),
        }
    }
}
