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

/// What span of time a value stands for: an instantaneous (real-time) value, or the data
/// logger's own average over a minute, an hour or a day (HJ 212 CN 2011, 2051, 2061, 2031).
/// Values of different intervals are different series: a logger's hourly average is never
/// judged as if it were a real-time value.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// A real-time value (CN 2011), measured at its event time.
    #[default]
    RealTime,
    /// The logger's minute value (CN 2051): the average of the minute data interval starting
    /// at its event time.
    Minute,
    /// The logger's hourly value (CN 2061): the average of the natural hour starting at its
    /// event time.
    Hour,
    /// The logger's daily value (CN 2031): the average of the natural day starting at its event
    /// time.
    Day,
}

impl Interval {
    /// Every interval, finest first.
    pub const ALL: [Interval; 4] = [
        Interval::RealTime,
        Interval::Minute,
        Interval::Hour,
        Interval::Day,
    ];

    /// The name used in JSON and in the store: `real_time`, `minute`, `hour`, `day`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Interval::RealTime => "real_time",
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }

    /// The interval of a name given by [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == name)
    }

    /// The length of the span a value stands for, in ms (0 for a real-time value). A minute
    /// value is taken to stand for one minute (HJ 212's default minute data interval).
    pub const fn length_ms(self) -> i64 {
        match self {
            Interval::RealTime => 0,
            Interval::Minute => 60_000,
            Interval::Hour => 3_600_000,
            Interval::Day => 86_400_000,
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// What span of time the value stands for (real time unless the logger sent an average).
    #[serde(default)]
    pub interval: Interval,
    /// The O2-corrected value the logger sent with an average (HJ 212 `ZsAvg`), if any.
    /// (Always serialized: timely exchanges readings between processes with bincode, which
    /// cannot skip a field.)
    #[serde(default)]
    pub corrected: Option<f64>,
}

impl Reading {
    /// A real-time reading.
    pub fn real_time(
        source: SourceId,
        metric: MetricCode,
        value: f64,
        flag: DataFlag,
        event_time: Timestamp,
        receive_time: Timestamp,
    ) -> Self {
        Self {
            source,
            metric,
            value,
            flag,
            event_time,
            receive_time,
            interval: Interval::RealTime,
            corrected: None,
        }
    }

    /// When the value is complete, in event time: its event time for a real-time value, the
    /// last millisecond of its span for a logger's average (an hourly value of 09:00 is known at
    /// 10:00). Detection orders and waits for readings by this, so an hourly value sent after
    /// its hour is on time, and judged with the hour it stands for.
    pub fn available_at(&self) -> Timestamp {
        match self.interval.length_ms() {
            0 => self.event_time,
            length => self.event_time.plus_millis(length - 1),
        }
    }

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
