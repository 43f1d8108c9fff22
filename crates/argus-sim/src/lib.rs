//! The county simulator: realistic feeds for a registry over the real protocols (HJ 212 over
//! TCP, MQTT, Kafka), violations of every rule kind injected at known times together with
//! look-alikes that must not alert, the ground truth of the alerts Argus must raise, and the
//! comparison of stored alerts with that truth.
//!
//! - [`Generator`] turns a [`Registry`](argus_model::Registry), the compiled
//!   [`RuleSet`](argus_rules::RuleSet) and a [`Scenario`] into a lazy stream of [`Group`]s: the
//!   [`Message`]s of one simulated instant (each saying how it travels, [`Route`]) and the
//!   [`TruthEntry`]s the data sent so far commits Argus to. Same seed and options, same bytes.
//! - [`send::run`] sends that stream to the [`send::Targets`] at a [`send::Pacing`], writing the
//!   truth as it goes ([`TruthWriter`]).
//! - [`verify()`] compares the alerts Argus stored ([`Observed`]) with the truth: per rule kind
//!   true and false positives, misses, precision, recall and detection delay ([`Report`]).
//! - [`province`] repeats a county K times under new ids and renders the registry file.
//! - [`sample`] is the synthetic recorded day the dataflow tests and benchmarks use.

mod generate;
mod noise;
mod params;
pub mod province;
pub mod sample;
pub mod send;
mod truth;
mod verify;
mod wire;

pub use generate::{Generator, Group, Scenario, Transports, DEFAULT_START};
pub use params::RuleParams;
pub use truth::{
    Cause, ClockMark, Truth, TruthEntry, TruthHeader, TruthRecord, TruthWriter, TRUTH_VERSION,
};
pub use verify::{verify, Observed, Report, Row, VerifyOptions};
pub use wire::{Message, PayloadKind, Route, Transport};

/// Every rule kind of the rules file, each of which the default scenario injects at least five
/// times a day: what the proof and the quality test demand precision and recall of.
pub const RULE_KINDS: [&str; 11] = [
    "threshold",
    "average",
    "constant_value",
    "zero_while_operating",
    "out_of_range",
    "sudden_jump",
    "flag_duration",
    "missing_data",
    "treatment_stopped",
    "power_cut_failure",
    "unregistered_source",
];

/// What can go wrong in the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A packet could not be encoded (a registry value HJ 212 cannot carry).
    #[error("cannot encode an hj212 packet for {mn}: {source}")]
    Encode {
        /// The point.
        mn: String,
        /// Why.
        source: argus_hj212::EncodeError,
    },
    /// The scenario cannot be run as given.
    #[error("invalid scenario: {0}")]
    Scenario(String),
    /// The scaled registry does not validate.
    #[error("the scaled registry does not validate: {0}")]
    Registry(#[from] argus_model::registry::RegistryError),
    /// Reading or writing the truth failed.
    #[error("truth file: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A truth file line is not a truth record.
    #[error("truth file line {line}: {reason}")]
    TruthLine {
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
    /// A transport could not be set up or failed for good.
    #[error("{transport}: {reason}")]
    Transport {
        /// `hj212_tcp`, `mqtt` or `kafka`.
        transport: &'static str,
        /// What happened.
        reason: String,
    },
}
