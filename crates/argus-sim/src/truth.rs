//! The ground truth: one JSON object per line, tagged by `record`.
//!
//! - `header` (first line): seed, start, end, transports, whether events can be delivered.
//! - `alert`: one expected alert ([`TruthEntry`]): rule kind, alert kind (as Argus stores it),
//!   rule id (as Argus stores it: the rules file's id, with `:min`/`:max` for the two sides of a
//!   range and `:<feed>` for a sensor with several power feeds), enterprise, point, metric (null
//!   for rules about a whole point), `start_ms` (the alert's `started_at`, epoch ms UTC),
//!   `due_ms` (the event time Argus's watermark must pass for the alert to be judged), `muted`,
//!   `cause`, and a short description. An entry is written as soon as the data sent commits
//!   Argus to the alert (never later than Argus could store it), so a stopped run's truth is
//!   complete for what was sent; at the end of a run the alerts the end of the feed itself
//!   causes (missing data, insufficient data, flags still held) are added (`cause:
//!   "end_of_feed"`).
//! - `clock`: simulated time `sim_ms` was reached at wall time `wall_ms` (every second or
//!   simulated minute), for detection delays.
//! - `end`: the run stopped; data was sent up to `feed_end_ms`.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Version of the truth format, in the header.
pub const TRUTH_VERSION: u32 = 1;

/// Why an alert is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A violation the scenario injected.
    Injected,
    /// A regulatory window with too little valid data (calibration, the feed's first or a
    /// flagged window), found by counting what was sent.
    Window,
    /// The run stopped: Argus sees the silence (missing data, empty windows, held flags).
    EndOfFeed,
}

/// One expected alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthEntry {
    /// The rule's kind in the rules file (`threshold`, `average`, `constant_value`, ...).
    pub rule_kind: String,
    /// The alert kind Argus stores (`AlertKind::as_str`).
    pub kind: String,
    /// The rule id Argus stores.
    pub rule_id: String,
    /// The enterprise (empty for an unregistered source).
    pub enterprise: String,
    /// The point (MN or device id).
    pub point: String,
    /// The metric code, none for rules about the whole point.
    pub metric: Option<String>,
    /// The alert's start (`started_at`), epoch ms UTC.
    pub start_ms: i64,
    /// The event time Argus's watermark must pass for the alert to be judged, epoch ms UTC.
    pub due_ms: i64,
    /// Whether a maintenance notice mutes it (Argus stores it with `muted = 1`).
    pub muted: bool,
    /// Why it is expected.
    pub cause: Cause,
    /// What was done, for people.
    pub what: String,
}

impl TruthEntry {
    /// The key alerts are matched on: rule id, point, metric.
    pub fn key(&self) -> (&str, &str, &str) {
        (
            &self.rule_id,
            &self.point,
            crate::verify::norm_metric(self.metric.as_deref()),
        )
    }
}

/// The first line of a truth file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthHeader {
    /// [`TRUTH_VERSION`].
    pub version: u32,
    /// The scenario's seed.
    pub seed: u64,
    /// Simulated start, epoch ms.
    pub start_ms: i64,
    /// Simulated end, none for an open-ended run.
    pub end_ms: Option<i64>,
    /// Number of registry points fed.
    pub points: usize,
    /// Transports the feeds were spread over (`hj212_tcp`, `mqtt`, `kafka`).
    pub transports: Vec<String>,
    /// Whether enterprise events can be delivered (Kafka or MQTT): without them no maintenance
    /// notice is sent and no muted alert expected.
    pub events: bool,
    /// Whether loggers also send minute and hourly packets (CN 2051/2061).
    pub logger_averages: bool,
    /// Notes for the reader.
    pub note: String,
}

/// Simulated time reached at a wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockMark {
    /// Simulated time, epoch ms.
    pub sim_ms: i64,
    /// Wall time, epoch ms.
    pub wall_ms: i64,
}

/// One line of a truth file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum TruthRecord {
    /// The header.
    Header(TruthHeader),
    /// An expected alert.
    Alert(TruthEntry),
    /// Simulated time reached at a wall time.
    Clock(ClockMark),
    /// The run stopped.
    End {
        /// Data was sent up to this simulated time, epoch ms.
        feed_end_ms: i64,
        /// When, epoch ms.
        wall_ms: i64,
    },
}

/// Writes truth records as JSON lines.
#[derive(Debug)]
pub struct TruthWriter<W: Write> {
    out: W,
    alerts: u64,
}

impl<W: Write> TruthWriter<W> {
    /// A writer to `out` (buffer it: one line is written per record).
    pub fn new(out: W) -> Self {
        Self { out, alerts: 0 }
    }

    /// Write one record.
    pub fn write(&mut self, record: &TruthRecord) -> Result<(), SimError> {
        if matches!(record, TruthRecord::Alert(_)) {
            self.alerts += 1;
        }
        let line = serde_json::to_string(record).map_err(|e| SimError::Io {
            context: "serializing a record".to_owned(),
            source: std::io::Error::other(e),
        })?;
        writeln!(self.out, "{line}").map_err(|source| SimError::Io {
            context: "writing a record".to_owned(),
            source,
        })
    }

    /// Write an expected alert.
    pub fn alert(&mut self, entry: &TruthEntry) -> Result<(), SimError> {
        self.write(&TruthRecord::Alert(entry.clone()))
    }

    /// Flush what was written.
    pub fn flush(&mut self) -> Result<(), SimError> {
        self.out.flush().map_err(|source| SimError::Io {
            context: "flushing".to_owned(),
            source,
        })
    }

    /// Expected alerts written so far.
    pub fn alerts(&self) -> u64 {
        self.alerts
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A truth file read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// The header, if the file has one.
    pub header: Option<TruthHeader>,
    /// The expected alerts.
    pub entries: Vec<TruthEntry>,
    /// Clock marks, in order.
    pub clock: Vec<ClockMark>,
    /// Where the feed ended, if the run stopped cleanly.
    pub feed_end_ms: Option<i64>,
}

impl Truth {
    /// Parse a truth file (JSON lines; blank lines are skipped).
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let mut truth = Truth::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record: TruthRecord =
                serde_json::from_str(line).map_err(|e| SimError::TruthLine {
                    line: i + 1,
                    reason: e.to_string(),
                })?;
            truth.push(record);
        }
        Ok(truth)
    }

    /// Add one record.
    pub fn push(&mut self, record: TruthRecord) {
        match record {
            TruthRecord::Header(h) => self.header = Some(h),
            TruthRecord::Alert(e) => self.entries.push(e),
            TruthRecord::Clock(c) => self.clock.push(c),
            TruthRecord::End { feed_end_ms, .. } => self.feed_end_ms = Some(feed_end_ms),
        }
    }

    /// The newest simulated time the clock marks reached.
    pub fn sim_reached_ms(&self) -> Option<i64> {
        self.clock.iter().map(|c| c.sim_ms).max()
    }

    /// Up to which event time Argus has judged, for a live Argus: its watermark is the slowest
    /// source's newest event time less `allowed_lateness_ms`, and never more than
    /// `max_delay_ms` behind the clock `now_ms`. An estimate from the truth alone; less a minute
    /// of margin for the time Argus takes to advance.
    pub fn judged_until_ms(&self, now_ms: i64, allowed_lateness_ms: i64, max_delay_ms: i64) -> i64 {
        let from_data = self
            .sim_reached_ms()
            .map_or(i64::MIN, |s| s - allowed_lateness_ms);
        from_data.max(now_ms - max_delay_ms) - 60_000
    }

    /// The wall time at which the simulator had sent data up to simulated time `sim_ms`
    /// (interpolated between clock marks), if it got that far.
    pub fn wall_when_sent(&self, sim_ms: i64) -> Option<i64> {
        let after = self.clock.iter().position(|c| c.sim_ms >= sim_ms)?;
        let b = self.clock[after];
        let Some(a) = after.checked_sub(1).map(|i| self.clock[i]) else {
            return Some(b.wall_ms);
        };
        if b.sim_ms == a.sim_ms {
            return Some(b.wall_ms);
        }
        let f = (sim_ms - a.sim_ms) as f64 / (b.sim_ms - a.sim_ms) as f64;
        Some(a.wall_ms + ((b.wall_ms - a.wall_ms) as f64 * f).round() as i64)
    }
}
