//! Checkpoints of a detection worker's state: every unit's machines, maintenance calendar and
//! muted alerts as of a frontier F (every input with an event time below F judged, none at or
//! after it), encoded with bincode. Taking one back and feeding again every stored input with an
//! event time at or after F gives the worker the state, and the transitions, of a run that never
//! stopped: the store holds every accepted input, and inputs below F that arrive again are
//! covered by the state (the operator drops them).

use serde::{Deserialize, Serialize};

use argus_model::Timestamp;
use argus_rules::RuleSet;

/// What a checkpoint file starts with: format and version.
const MAGIC: &[u8; 8] = b"ARGUSCK1";

/// Why a checkpoint cannot be taken back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not a checkpoint of this version, or damaged.
    #[error("unreadable checkpoint: {0}")]
    Unreadable(String),
    /// Written by another worker layout or for other rules.
    #[error("checkpoint of {what}: saved {saved}, running {running}")]
    Mismatch {
        /// What differs.
        what: &'static str,
        /// In the checkpoint.
        saved: String,
        /// Here.
        running: String,
    },
}

/// A worker's detection state as of a frontier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The worker whose state it is (a global index in a cluster).
    pub worker: usize,
    /// How many workers the dataflow had.
    pub peers: usize,
    /// [`RuleSet::fingerprint`] of the rules it ran.
    pub rules: u64,
    /// Every input with an event time (ms) below this is in the state; none at or after it.
    pub until: u64,
    /// The units, encoded (private to the operator).
    pub(crate) state: Vec<u8>,
}

impl Checkpoint {
    /// Every input with an event time before this is in the state.
    pub fn until(&self) -> Timestamp {
        Timestamp(i64::try_from(self.until).unwrap_or(i64::MAX))
    }

    /// Size of the encoded state.
    pub fn state_bytes(&self) -> usize {
        self.state.len()
    }

    /// The bytes of a checkpoint file.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        // A Vec of plain fields cannot fail to encode.
        bytes.extend(bincode::serialize(self).unwrap_or_default());
        bytes
    }

    /// Read the bytes of a checkpoint file.
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| CheckpointError::Unreadable("not an argus checkpoint (v1)".into()))?;
        bincode::deserialize(body).map_err(|e| CheckpointError::Unreadable(e.to_string()))
    }

    /// Whether worker `worker` of `peers` running `rules` can take this checkpoint back: same
    /// worker, same layout, same rules, and a state that decodes against them.
    pub fn check(
        &self,
        worker: usize,
        peers: usize,
        rules: &RuleSet,
    ) -> Result<(), CheckpointError> {
        let mismatch = |what, saved: String, running: String| {
            Err(CheckpointError::Mismatch {
                what,
                saved,
                running,
            })
        };
        if self.worker != worker {
            return mismatch("worker", self.worker.to_string(), worker.to_string());
        }
        if self.peers != peers {
            return mismatch("workers", self.peers.to_string(), peers.to_string());
        }
        let fingerprint = rules.fingerprint();
        if self.rules != fingerprint {
            return mismatch(
                "rules",
                format!("{:016x}", self.rules),
                format!("{fingerprint:016x}"),
            );
        }
        crate::operator::restore_units(&self.state, rules)
            .map(|_| ())
            .map_err(CheckpointError::Unreadable)
    }
}
