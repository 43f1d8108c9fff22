//! The canonical reading: one value of one metric from one source at one instant.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{DataFlag, MetricCode, Timestamp};

/// Identifier of a data source: the HJ 212 `MN` of a monitoring point, or a device id for
/// feeds that are not HJ 212. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceId(Arc<str>);

impl SourceId {
    /// Wrap a source identifier.
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SourceId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

/// One measured value, as every feed is turned into before checking and storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Where it came from (HJ 212 MN or device id).
    pub source: SourceId,
    /// What was measured.
    pub metric: MetricCode,
    /// The value, in the metric's unit. Always finite: decoders refuse NaN and infinities.
    pub value: f64,
    /// State of the instrument when it was measured.
    pub flag: DataFlag,
    /// When it was measured (the data logger's `DataTime`), UTC.
    pub event_time: Timestamp,
    /// When Argus received it, UTC.
    pub receive_time: Timestamp,
}

impl Reading {
    /// Whether the reading counts as valid data for averages and limit checks.
    pub fn is_valid(&self) -> bool {
        self.flag.is_valid()
    }
}

impl std::borrow::Borrow<str> for SourceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}
