//! Alerts: a rule's finding that something at a source is wrong, from its start to its end.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{MetricCode, Severity, SourceId, Timestamp};

/// The kind of check that raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A value beyond a limit, instantaneous or sustained.
    Threshold,
    /// A regulatory (hourly or daily) average beyond its limit.
    Average,
    /// A regulatory window with too little valid data to judge compliance.
    InsufficientData,
    /// A run of readings too flat to be real (rule kind `constant_value`).
    ConstantValue,
    /// A zero held while the point operates (rule kind `zero_while_operating`).
    ZeroWhileOperating,
    /// A value outside the instrument's range, or a negative concentration (`out_of_range`).
    OutOfRange,
    /// A step too large for the time between two readings (`sudden_jump`).
    SuddenJump,
    /// Any of the four kinds above, as alerts stored before each had its own kind were named
    /// (kept so that those rows still read; never raised now).
    DataQuality,
    /// Fault, maintenance or calibration flags held longer than allowed.
    FlagDuration,
    /// No data from a source for longer than allowed.
    MissingData,
    /// Data from a source the registry does not know.
    UnregisteredSource,
    /// Treatment facility stopped while production runs.
    TreatmentStopped,
    /// Methane at or over the power-cut threshold without the power being cut.
    PowerCutFailure,
    /// A reading delivered again with another value than the one on record: the record keeps
    /// the first, the later one is kept apart (the store's `conflicts` table).
    DataIntegrity,
    /// A data logger's own minute or hourly average (or its O2-corrected value) unlike what
    /// its real-time values (or Argus's O2 correction) give: a known pattern of tampered data.
    InconsistentAverage,
}

impl AlertKind {
    /// The snake_case name used in configuration, storage and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::Threshold => "threshold",
            AlertKind::Average => "average",
            AlertKind::InsufficientData => "insufficient_data",
            AlertKind::ConstantValue => "constant_value",
            AlertKind::ZeroWhileOperating => "zero_while_operating",
            AlertKind::OutOfRange => "out_of_range",
            AlertKind::SuddenJump => "sudden_jump",
            AlertKind::DataQuality => "data_quality",
            AlertKind::FlagDuration => "flag_duration",
            AlertKind::MissingData => "missing_data",
            AlertKind::UnregisteredSource => "unregistered_source",
            AlertKind::TreatmentStopped => "treatment_stopped",
            AlertKind::PowerCutFailure => "power_cut_failure",
            AlertKind::DataIntegrity => "data_integrity",
            AlertKind::InconsistentAverage => "inconsistent_average",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an alert is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition ended at `ended_at`.
    Resolved,
}

/// One alert: what fired, where, since when, and (once resolved) until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic id: a hash of rule, key and start time, so replays give the same ids.
    pub alert_id: u64,
    /// The rule that raised it.
    pub rule_id: String,
    /// What kind of check it is.
    pub kind: AlertKind,
    /// How serious.
    pub severity: Severity,
    /// The enterprise concerned (empty for an unregistered source).
    pub enterprise_id: String,
    /// The source (monitoring point MN or device id).
    pub source: SourceId,
    /// The metric concerned.
    pub metric: MetricCode,
    /// Event time at which the condition began.
    pub started_at: Timestamp,
    /// Event time at which it ended, once resolved.
    pub ended_at: Option<Timestamp>,
    /// The value that triggered it.
    pub value: f64,
    /// The limit it was compared with, where there is one.
    pub limit_value: Option<f64>,
    /// The standard the limit comes from (e.g. `GB 13223-2011`).
    pub standard: String,
    /// Highest value seen while firing.
    pub peak_value: f64,
    /// Current status.
    pub status: AlertStatus,
}
