//! Data-quality rules: signs that monitoring data is broken or falsified, rather than a limit
//! being exceeded.
//!
//! | machine | kind | fires | resolves at |
//! | --- | --- | --- | --- |
//! | [`ConstantValue`] | `ConstantValue` | a run of readings too flat to be real | the first valid reading off the run |
//! | [`ZeroWhileOperating`] | `ZeroWhileOperating` | a zero held while the point operates | a non-zero value, or operation stopping |
//! | [`OutOfRange`] | `OutOfRange` | a value outside the instrument's range | the first in-range valid reading |
//! | [`SuddenJump`] | `SuddenJump` | a step too large for the time between readings | the next valid reading that is no jump |
//! | [`FlagDuration`] | `FlagDuration` | fault or maintenance flags held too long | the first reading without such a flag |
//! | [`MissingData`] | `MissingData` | no reading for too long in event time | the next reading |
//! | [`ReadingConflict`] | `DataIntegrity` | a reading delivered again with another value | `quiet_ms` without another |
//!
//! Like the other rules, each machine sees one series' readings in event-time order and the
//! watermark, and raises one kind of alert (its `KIND`). The first four judge valid readings
//! only (flag N): an invalid reading neither starts nor ends their alerts.
//!
//! The rules about how long something lasted (zero while operating, flag duration, missing data)
//! take the condition to hold until an event says otherwise, and judge its duration on the
//! watermark and again on the event that ends it. So whether an alert is raised, and its start
//! and end (hence its id), depend on the readings alone, not on the watermark's cadence: a
//! condition first seen to be long enough by the event that ends it gives `Fired` and
//! `Resolved` together.
//!
//! [`MissingData`] sees event time only. A whole source falling silent in processing time (a
//! logger that stopped sending, so its event time no longer advances) is the dataflow's job.

use argus_model::{AlertKind, DataFlag, Reading, Timestamp};

use crate::episode::Episode;
use crate::Transition;

const MINUTE_MS: f64 = 60_000.0;

/// Parameters that cannot describe a data-quality rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityError {
    /// A number outside what the parameter can be.
    #[error("{name} must be {expected}, got {value}")]
    OutOfDomain {
        /// The parameter.
        name: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        value: f64,
    },
    /// No flag to watch, or flag N (valid data) among them.
    #[error("the watched flags must be at least one and must not include N (valid data)")]
    BadFlags,
}

/// Whether parameter `name`, with `value`, is what it must be (`ok`).
fn check(
    name: &'static str,
    ok: bool,
    expected: &'static str,
    value: f64,
) -> Result<(), QualityError> {
    if ok {
        return Ok(());
    }
    Err(QualityError::OutOfDomain {
        name,
        expected,
        value,
    })
}

fn finite(name: &'static str, value: f64) -> Result<f64, QualityError> {
    check(name, value.is_finite(), "a finite number", value)?;
    Ok(value)
}

fn non_negative(name: &'static str, value: f64) -> Result<f64, QualityError> {
    let ok = value.is_finite() && value >= 0.0;
    check(name, ok, "a finite number, 0 or more", value)?;
    Ok(value)
}

fn duration(name: &'static str, ms: i64) -> Result<i64, QualityError> {
    check(name, ms >= 0, "0 ms or more", ms as f64)?;
    Ok(ms)
}

/// Event time from `from` to `to`, in ms.
fn elapsed_ms(from: Timestamp, to: Timestamp) -> i64 {
    to.as_millis().saturating_sub(from.as_millis())
}

fn minutes(ms: i64) -> f64 {
    ms as f64 / MINUTE_MS
}

/// A condition without values (a flag held, a silence) that began at `since` and fires once it
/// has lasted longer than a limit. Values are minutes: `Fired` carries the limit (the condition
/// is known to have lasted longer), `Resolved` its whole length as `peak` and `mean`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Lasting {
    since: Timestamp,
    fired: bool,
}

impl Lasting {
    fn new(since: Timestamp) -> Self {
        let fired = false;
        Self { since, fired }
    }

    /// Fire, once, if at `now` the condition has lasted longer than `max_ms`.
    fn fire_if_over(&mut self, now: Timestamp, max_ms: i64) -> Option<Transition> {
        if self.fired || elapsed_ms(self.since, now) <= max_ms {
            return None;
        }
        self.fired = true;
        Some(Transition::Fired {
            started_at: self.since,
            value: minutes(max_ms),
        })
    }

    /// The condition ended at `at`: fired now if it had lasted long enough, then resolved.
    fn end(mut self, at: Timestamp, max_ms: i64, out: &mut Vec<Transition>) {
        out.extend(self.fire_if_over(at, max_ms));
        if self.fired {
            let length = minutes(elapsed_ms(self.since, at));
            out.push(Transition::Resolved {
                started_at: self.since,
                ended_at: at,
                peak: length,
                mean: length,
            });
        }
    }
}

/// Parameters of [`ConstantValue`], validated by [`ConstantValueParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConstantValueParams {
    min_readings: u32,
    min_duration_ms: i64,
    epsilon: f64,
}

impl ConstantValueParams {
    /// A run of at least `min_readings` (2 or more) valid readings, spanning at least
    /// `min_duration_ms` of event time, whose values all lie within `epsilon` (max - min).
    pub fn new(
        min_readings: u32,
        min_duration_ms: i64,
        epsilon: f64,
    ) -> Result<Self, QualityError> {
        let value = f64::from(min_readings);
        check("min_readings", min_readings >= 2, "2 or more", value)?;
        Ok(Self {
            min_readings,
            min_duration_ms: duration("min_duration_ms", min_duration_ms)?,
            epsilon: non_negative("epsilon", epsilon)?,
        })
    }
}

/// The current run of close values: its first reading's time, its band and its length.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Run {
    first: Timestamp,
    min: f64,
    max: f64,
    n: u32,
}

/// Constant values, a falsification signal: a working analyser's readings always wander.
///
/// The alert starts at the first reading of the run. Memory is one run: a value that would
/// widen the band beyond `epsilon` starts a new run from that value alone. The exact run would
/// be the longest tail of readings within `epsilon`, which can begin before the breaking value
/// (0.0, 0.6, 1.2 with `epsilon` 1: the run restarts at 1.2, though 0.6 and 1.2 are close); so
/// a drifting series may fire later than exactly, never sooner, and never falsely.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConstantValue {
    params: ConstantValueParams,
    run: Option<Run>,
    episode: Episode,
}

impl ConstantValue {
    /// The kind of alert it raises.
    pub const KIND: AlertKind = AlertKind::ConstantValue;

    /// A machine that has seen nothing yet.
    pub fn new(params: ConstantValueParams) -> Self {
        Self {
            params,
            run: None,
            episode: Episode::default(),
        }
    }

    /// Take one reading (in event-time order). Invalid readings are ignored.
    pub fn on_reading(&mut self, reading: &Reading) -> Option<Transition> {
        if !reading.is_valid() {
            return None;
        }
        let (t, v, p) = (reading.event_time, reading.value, self.params);
        let run = match self.run {
            Some(run) if run.max.max(v) - run.min.min(v) <= p.epsilon => Run {
                min: run.min.min(v),
                max: run.max.max(v),
                n: run.n.saturating_add(1),
                ..run
            },
            _ => Run {
                first: t,
                min: v,
                max: v,
                n: 1,
            },
        };
        self.run = Some(run);
        let constant = run.n >= p.min_readings && elapsed_ms(run.first, t) >= p.min_duration_ms;
        // Readings as one-reading windows of an episode that starts at the run's first reading.
        let at = if constant { run.first } else { t };
        self.episode.window(at, constant, v)
    }
}

/// Parameters of [`ZeroWhileOperating`], validated by [`ZeroWhileOperatingParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZeroWhileOperatingParams {
    zero_epsilon: f64,
    operating_above: f64,
    min_duration_ms: i64,
}

impl ZeroWhileOperatingParams {
    /// Values at or below `zero_epsilon` for at least `min_duration_ms` of event time while the
    /// operation signal (flue gas flow, temperature) is above `operating_above`.
    pub fn new(
        zero_epsilon: f64,
        operating_above: f64,
        min_duration_ms: i64,
    ) -> Result<Self, QualityError> {
        Ok(Self {
            zero_epsilon: finite("zero_epsilon", zero_epsilon)?,
            operating_above: finite("operating_above", operating_above)?,
            min_duration_ms: duration("min_duration_ms", min_duration_ms)?,
        })
    }
}

/// Zero (or near-zero) values while the point operates: an analyser unplugged, a sample line
/// cut, or a value forced to zero.
///
/// Operation is read from another series of the same point (its flue gas flow `a00000` or
/// temperature `a01012`), passed in through [`ZeroWhileOperating::on_operation`] in event-time
/// order with the judged readings; until a valid one arrives the point counts as not
/// operating. The condition starts at the later of the zero value and the start of operation,
/// and fires once it has held `min_duration_ms` (on the watermark, or on the next event,
/// whatever it says). `value` is the latest zero when it fires; `peak` (the highest) and `mean`
/// are of the zeros from then on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZeroWhileOperating {
    params: ZeroWhileOperatingParams,
    operating: bool,
    /// The latest valid value, while it is a zero.
    zero: Option<f64>,
    /// Since when the value is zero while operating.
    since: Option<Timestamp>,
    episode: Episode,
}

impl ZeroWhileOperating {
    /// The kind of alert it raises.
    pub const KIND: AlertKind = AlertKind::ZeroWhileOperating;

    /// A machine that has seen nothing yet.
    pub fn new(params: ZeroWhileOperatingParams) -> Self {
        Self {
            params,
            operating: false,
            zero: None,
            since: None,
            episode: Episode::default(),
        }
    }

    /// Take a reading of the judged metric. Invalid readings are ignored.
    pub fn on_reading(&mut self, reading: &Reading, out: &mut Vec<Transition>) {
        if !reading.is_valid() {
            return;
        }
        let (t, v) = (reading.event_time, reading.value);
        if v > self.params.zero_epsilon {
            self.end(t, out);
            self.zero = None;
            return;
        }
        self.zero = Some(v);
        if self.episode.is_open() {
            // Counted into the open alert's peak and mean.
            out.extend(self.episode.window(t, true, v));
        }
        self.begin(t, out);
    }

    /// Take a reading of the point's operation signal. Invalid readings are ignored.
    pub fn on_operation(&mut self, reading: &Reading, out: &mut Vec<Transition>) {
        if !reading.is_valid() {
            return;
        }
        self.operating = reading.value > self.params.operating_above;
        if self.operating {
            self.begin(reading.event_time, out);
        } else {
            self.end(reading.event_time, out);
        }
    }

    /// Event time has reached `watermark`: a zero held long enough fires now.
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<Transition>) {
        self.fire_if_due(watermark, out);
    }

    /// The condition may hold from `at`.
    fn begin(&mut self, at: Timestamp, out: &mut Vec<Transition>) {
        if self.operating && self.zero.is_some() {
            self.since.get_or_insert(at);
            self.fire_if_due(at, out);
        }
    }

    /// The condition stops at `at`.
    fn end(&mut self, at: Timestamp, out: &mut Vec<Transition>) {
        self.fire_if_due(at, out);
        self.since = None;
        out.extend(self.episode.window(at, false, 0.0));
    }

    fn fire_if_due(&mut self, now: Timestamp, out: &mut Vec<Transition>) {
        if let (Some(since), false, Some(value)) = (self.since, self.episode.is_open(), self.zero) {
            if elapsed_ms(since, now) >= self.params.min_duration_ms {
                out.extend(self.episode.window(since, true, value));
            }
        }
    }
}

/// Parameters of [`OutOfRange`], validated by [`OutOfRangeParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutOfRangeParams {
    range_min: f64,
    range_max: f64,
}

impl OutOfRangeParams {
    /// The instrument's measuring range, both ends included.
    pub fn new(range_min: f64, range_max: f64) -> Result<Self, QualityError> {
        let (min, max) = (
            finite("range_min", range_min)?,
            finite("range_max", range_max)?,
        );
        check("range_max", max >= min, "at least range_min", max)?;
        Ok(Self {
            range_min: min,
            range_max: max,
        })
    }

    /// How far `value` lies outside the range (0 or less inside it).
    fn excess(&self, value: f64) -> f64 {
        (self.range_min - value).max(value - self.range_max)
    }
}

/// A valid value outside the instrument's measuring range: it cannot have been measured. Fires
/// at once; `peak` is the value farthest outside the range. (A T flag, over the upper limit, is
/// an invalid reading: [`FlagDuration`] watches it.)
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutOfRange {
    params: OutOfRangeParams,
    episode: Episode,
    /// The value farthest outside the range while the alert is open.
    farthest: f64,
}

impl OutOfRange {
    /// The kind of alert it raises.
    pub const KIND: AlertKind = AlertKind::OutOfRange;

    /// A machine that has seen nothing yet.
    pub fn new(params: OutOfRangeParams) -> Self {
        Self {
            params,
            episode: Episode::default(),
            farthest: 0.0,
        }
    }

    /// Take one reading (in event-time order). Invalid readings are ignored.
    pub fn on_reading(&mut self, reading: &Reading) -> Option<Transition> {
        if !reading.is_valid() {
            return None;
        }
        let (t, v, p) = (reading.event_time, reading.value, self.params);
        let outside = p.excess(v) > 0.0;
        if outside && (!self.episode.is_open() || p.excess(v) > p.excess(self.farthest)) {
            self.farthest = v;
        }
        match self.episode.window(t, outside, v) {
            // The episode's peak is the highest value; here it is the farthest outside.
            Some(Transition::Resolved {
                started_at,
                ended_at,
                mean,
                ..
            }) => Some(Transition::Resolved {
                started_at,
                ended_at,
                peak: self.farthest,
                mean,
            }),
            other => other,
        }
    }
}

/// Parameters of [`SuddenJump`], validated by [`SuddenJumpParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SuddenJumpParams {
    max_step: f64,
    max_gap_ms: i64,
}

impl SuddenJumpParams {
    /// A step of more than `max_step` from the previous valid value, when that value is at
    /// most `max_gap_ms` of event time older (after a longer gap a change is no jump).
    pub fn new(max_step: f64, max_gap_ms: i64) -> Result<Self, QualityError> {
        Ok(Self {
            max_step: non_negative("max_step", max_step)?,
            max_gap_ms: duration("max_gap_ms", max_gap_ms)?,
        })
    }
}

/// A sudden jump between consecutive valid values. A one-reading event: it fires at the
/// jumping reading and resolves at the next valid reading that is no jump itself, so a spike
/// and its fall back (two jumps in a row) make one alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SuddenJump {
    params: SuddenJumpParams,
    previous: Option<(Timestamp, f64)>,
    episode: Episode,
}

impl SuddenJump {
    /// The kind of alert it raises.
    pub const KIND: AlertKind = AlertKind::SuddenJump;

    /// A machine that has seen nothing yet.
    pub fn new(params: SuddenJumpParams) -> Self {
        Self {
            params,
            previous: None,
            episode: Episode::default(),
        }
    }

    /// Take one reading (in event-time order). Invalid readings are ignored.
    pub fn on_reading(&mut self, reading: &Reading) -> Option<Transition> {
        if !reading.is_valid() {
            return None;
        }
        let (t, v, p) = (reading.event_time, reading.value, self.params);
        let jump = self.previous.is_some_and(|(before, previous)| {
            elapsed_ms(before, t) <= p.max_gap_ms && (v - previous).abs() > p.max_step
        });
        self.previous = Some((t, v));
        self.episode.window(t, jump, v)
    }
}

/// Parameters of [`FlagDuration`], validated by [`FlagDurationParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlagDurationParams {
    max_flag_ms: i64,
    /// The watched flags, one bit per flag.
    flags: u8,
}

impl FlagDurationParams {
    /// Any of `flags` (not N) held for longer than `max_flag_ms` of event time.
    pub fn new(max_flag_ms: i64, flags: &[DataFlag]) -> Result<Self, QualityError> {
        if flags.is_empty() || flags.contains(&DataFlag::N) {
            return Err(QualityError::BadFlags);
        }
        Ok(Self {
            max_flag_ms: duration("max_flag_ms", max_flag_ms)?,
            flags: flags.iter().fold(0, |set, &flag| set | bit(flag)),
        })
    }

    /// The default: every flag but N (valid data) and F (stopped: a facility that is not
    /// operating rightly reports F for as long as it stands still).
    pub fn with_default_flags(max_flag_ms: i64) -> Result<Self, QualityError> {
        let watched = |flag: &DataFlag| !matches!(flag, DataFlag::N | DataFlag::F);
        let flags: Vec<DataFlag> = DataFlag::ALL.into_iter().filter(watched).collect();
        Self::new(max_flag_ms, &flags)
    }

    /// Whether `flag` is watched.
    pub fn watches(&self, flag: DataFlag) -> bool {
        self.flags & bit(flag) != 0
    }
}

fn bit(flag: DataFlag) -> u8 {
    1 << flag as u8
}

/// Fault, maintenance, calibration and the like held too long: the data of that time is not
/// valid, and a flag held for hours hides an analyser that is not measuring.
///
/// A run is a stretch of readings whose flags are all watched (D then M then C is one run); it
/// starts at its first reading and ends at the first reading with another flag (N, or F when F
/// is not watched). It fires once it lasted longer than `max_flag_ms`, on a reading or on the
/// watermark (the flag counts as held until a reading says otherwise). Values are minutes:
/// `Fired` carries the limit, `Resolved` the run's length, first flagged reading to ending
/// reading, as `peak` and `mean`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlagDuration {
    params: FlagDurationParams,
    run: Option<Lasting>,
}

impl FlagDuration {
    /// The kind of alert it raises.
    pub const KIND: AlertKind = AlertKind::FlagDuration;

    /// A machine that has seen nothing yet.
    pub fn new(params: FlagDurationParams) -> Self {
        Self { params, run: None }
    }

    /// Take one reading, whatever its flag (in event-time order).
    pub fn on_reading(&mut self, reading: &Reading, out: &mut Vec<Transition>) {
        let t = reading.event_time;
        let max_ms = self.params.max_flag_ms;
        if self.params.watches(reading.flag) {
            let run = self.run.get_or_insert(Lasting::new(t));
            out.extend(run.fire_if_over(t, max_ms));
        } else if let Some(run) = self.run.take() {
            run.end(t, max_ms, out);
        }
    }

    /// Event time has reached `watermark`: a flag held longer than allowed fires now.
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<Transition>) {
        if let Some(run) = &mut self.run {
            out.extend(run.fire_if_over(watermark, self.params.max_flag_ms));
        }
    }
}

/// Parameters of [`MissingData`], validated by [`MissingDataParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MissingDataParams {
    max_gap_ms: i64,
}

impl MissingDataParams {
    /// No reading for longer than `max_gap_ms` of event time.
    pub fn new(max_gap_ms: i64) -> Result<Self, QualityError> {
        Ok(Self {
            max_gap_ms: duration("max_gap_ms", max_gap_ms)?,
        })
    }
}

/// A gap in the series: no reading, whatever its flag, for longer than `max_gap_ms` of event
/// time after the last one. The alert starts at the last reading before the gap, fires when the
/// watermark (or the next reading) is more than `max_gap_ms` past it and resolves at the next
/// reading. Values are minutes: `Fired` carries the limit (the silence is known to be longer),
/// `Resolved` the gap's length as `peak` and `mean`. Before a first reading, nothing fires
/// unless the point is expected ([`MissingData::expect_from`]).
/// Silence in processing time is the dataflow's job (see the module documentation).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MissingData {
    params: MissingDataParams,
    /// Since the last reading.
    gap: Option<Lasting>,
}

impl MissingData {
    /// The kind of alert it raises.
    pub const KIND: AlertKind = AlertKind::MissingData;

    /// A machine that has seen nothing yet.
    pub fn new(params: MissingDataParams) -> Self {
        Self { params, gap: None }
    }

    /// Take one reading, whatever its flag (in event-time order).
    pub fn on_reading(&mut self, reading: &Reading, out: &mut Vec<Transition>) {
        let max_ms = self.params.max_gap_ms;
        if let Some(gap) = self.gap.replace(Lasting::new(reading.event_time)) {
            gap.end(reading.event_time, max_ms, out);
        }
    }

    /// The point is expected to report from `since` on (when Argus starts watching it): if it
    /// has not reported yet, its silence counts from then, so a point that never reports is
    /// missing too. Changes nothing once it has reported.
    pub fn expect_from(&mut self, since: Timestamp) {
        self.gap.get_or_insert_with(|| Lasting::new(since));
    }

    /// Event time has reached `watermark`: a gap longer than allowed fires now.
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<Transition>) {
        let max_ms = self.params.max_gap_ms;
        if let Some(gap) = &mut self.gap {
            out.extend(gap.fire_if_over(watermark, max_ms));
        }
    }
}

/// Parameters of [`ReadingConflict`], validated by [`ReadingConflictParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadingConflictParams {
    quiet_ms: i64,
}

impl ReadingConflictParams {
    /// An episode of conflicts ends `quiet_ms` (more than 0) after its last conflict.
    pub fn new(quiet_ms: i64) -> Result<Self, QualityError> {
        check("quiet_ms", quiet_ms > 0, "more than 0 ms", quiet_ms as f64)?;
        Ok(Self { quiet_ms })
    }
}

/// Readings of a point delivered again with another value or flag than the one on record
/// (found by the store, which keeps the first value and the later one apart). The alert starts
/// at the first conflict's receive time, counts the conflicting deliveries, and resolves once
/// the watermark is `quiet_ms` past the last one (`ended_at` the last conflict). Values are
/// counts: `Fired` 1, `Resolved` the episode's number of conflicts as `peak` and `mean`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadingConflict {
    params: ReadingConflictParams,
    /// The open episode: its start, its last conflict, how many.
    open: Option<(Timestamp, Timestamp, u64)>,
}

impl ReadingConflict {
    /// The kind of alert it raises.
    pub const KIND: AlertKind = AlertKind::DataIntegrity;

    /// A machine that has seen no conflict.
    pub fn new(params: ReadingConflictParams) -> Self {
        Self { params, open: None }
    }

    /// A conflicting delivery received at `at` (in event-time order).
    pub fn on_conflict(&mut self, at: Timestamp, out: &mut Vec<Transition>) {
        self.on_watermark(at, out);
        match &mut self.open {
            Some((_, last, count)) => {
                *last = (*last).max(at);
                *count += 1;
            }
            None => {
                self.open = Some((at, at, 1));
                out.push(Transition::Fired {
                    started_at: at,
                    value: 1.0,
                });
            }
        }
    }

    /// Event time has reached `watermark`: an episode quiet for `quiet_ms` resolves.
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<Transition>) {
        let Some((started_at, last, count)) = self.open else {
            return;
        };
        if elapsed_ms(last, watermark) >= self.params.quiet_ms {
            self.open = None;
            out.push(Transition::Resolved {
                started_at,
                ended_at: last,
                peak: count as f64,
                mean: count as f64,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use argus_model::{Metric, MetricCode, SourceId};

    use super::*;

    const MIN: i64 = 60_000;

    fn reading(minute: i64, value: f64, flag: DataFlag) -> Reading {
        Reading {
            source: SourceId::new("32050000000001"),
            metric: MetricCode::Known(Metric::So2),
            value,
            flag,
            event_time: Timestamp(minute * MIN),
            receive_time: Timestamp(minute * MIN),
            interval: Default::default(),
            corrected: None,
        }
    }

    /// The six machines behind one interface, for the scripts below.
    trait Machine {
        fn reading(&mut self, r: &Reading, out: &mut Vec<Transition>);
        fn operation(&mut self, _r: &Reading, _out: &mut Vec<Transition>) {}
        fn watermark(&mut self, _w: Timestamp, _out: &mut Vec<Transition>) {}
    }

    macro_rules! by_reading {
        ($($m:ty),*) => {$(
            impl Machine for $m {
                fn reading(&mut self, r: &Reading, out: &mut Vec<Transition>) {
                    out.extend(self.on_reading(r));
                }
            }
        )*};
    }
    by_reading!(ConstantValue, OutOfRange, SuddenJump);

    macro_rules! with_watermark {
        ($m:ty $(, $operation:ident)?) => {
            impl Machine for $m {
                fn reading(&mut self, r: &Reading, out: &mut Vec<Transition>) {
                    self.on_reading(r, out);
                }
                $(fn operation(&mut self, r: &Reading, out: &mut Vec<Transition>) {
                    self.$operation(r, out);
                })?
                fn watermark(&mut self, w: Timestamp, out: &mut Vec<Transition>) {
                    self.on_watermark(w, out);
                }
            }
        };
    }
    with_watermark!(ZeroWhileOperating, on_operation);
    with_watermark!(FlagDuration);
    with_watermark!(MissingData);

    /// Run a script of steps in minutes, collecting transitions with the minute of their step:
    /// `5=1.2` a valid reading at minute 5, `D5=1.2` one flagged D, `op5=900` an operation
    /// reading, `w5` the watermark reaching minute 5.
    fn run(mut machine: impl Machine, script: &str) -> Vec<(i64, Transition)> {
        let mut got = Vec::new();
        for step in script.split_whitespace() {
            let bad = |why: &dyn std::fmt::Display| -> ! { panic!("step {step}: {why}") };
            let at = step
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or_else(|| bad(&"no minute"));
            let (prefix, rest) = step.split_at(at);
            let (minute, value) = rest.split_once('=').unwrap_or((rest, "0"));
            let minute: i64 = minute.parse().unwrap_or_else(|e| bad(&e));
            let value: f64 = value.parse().unwrap_or_else(|e| bad(&e));
            let mut out = Vec::new();
            match prefix {
                "op" => machine.operation(&reading(minute, value, DataFlag::N), &mut out),
                "w" => machine.watermark(Timestamp(minute * MIN), &mut out),
                flag => {
                    let flag = DataFlag::ALL.into_iter().find(|f| f.to_string() == flag);
                    let flag = match (prefix, flag) {
                        ("", _) => DataFlag::N,
                        (_, Some(flag)) => flag,
                        (_, None) => bad(&"unknown prefix"),
                    };
                    machine.reading(&reading(minute, value, flag), &mut out);
                }
            }
            got.extend(out.into_iter().map(|t| (minute, t)));
        }
        got
    }

    fn fired(at: i64, started: i64, value: f64) -> (i64, Transition) {
        let started_at = Timestamp(started * MIN);
        (at, Transition::Fired { started_at, value })
    }

    fn resolved(at: i64, started: i64, peak: f64, mean: f64) -> (i64, Transition) {
        let t = Transition::Resolved {
            started_at: Timestamp(started * MIN),
            ended_at: Timestamp(at * MIN),
            peak,
            mean,
        };
        (at, t)
    }

    fn ok<T>(params: Result<T, QualityError>) -> T {
        params.unwrap_or_else(|e| panic!("{e}"))
    }

    fn constant() -> ConstantValue {
        ConstantValue::new(ok(ConstantValueParams::new(3, 10 * MIN, 0.1)))
    }

    fn zero() -> ZeroWhileOperating {
        ZeroWhileOperating::new(ok(ZeroWhileOperatingParams::new(0.1, 100.0, 10 * MIN)))
    }

    fn range() -> OutOfRange {
        OutOfRange::new(ok(OutOfRangeParams::new(0.0, 500.0)))
    }

    fn jump() -> SuddenJump {
        SuddenJump::new(ok(SuddenJumpParams::new(50.0, 5 * MIN)))
    }

    fn flags() -> FlagDuration {
        FlagDuration::new(ok(FlagDurationParams::with_default_flags(60 * MIN)))
    }

    fn missing() -> MissingData {
        MissingData::new(ok(MissingDataParams::new(10 * MIN)))
    }

    /// Run each script on a new machine and compare with what it should give.
    fn expect<M: Machine>(machine: fn() -> M, table: &[(&str, Vec<(i64, Transition)>)]) {
        for (script, want) in table {
            assert_eq!(&run(machine(), script), want, "{script}");
        }
    }

    #[test]
    fn constant_values_fire_from_the_runs_first_reading_and_resolve_on_a_break() {
        // Three close readings in 2 minutes are too short; an invalid 99 breaks nothing; 6
        // breaks the band and starts the next run.
        let mean = (5.02 + 5.0) / 2.0;
        expect(
            constant,
            &[(
                "0=5 1=5.05 2=5.02 D5=99 10=5.02 15=5 20=6 25=6 30=6.05",
                vec![
                    fired(10, 0, 5.02),
                    resolved(20, 0, 5.02, mean),
                    fired(30, 20, 6.05),
                ],
            )],
        );
    }

    #[test]
    fn zero_while_operating_fires_after_its_duration_and_resolves_when_it_stops() {
        let (zero_fired, zero_resolved) = (fired(10, 0, 0.0), resolved(20, 0, 0.0, 0.0));
        expect(
            zero,
            &[
                // On the watermark; resolved by a non-zero value.
                (
                    "op0=5000 0=0 5=0.05 w9 w10 12=0 15=20",
                    vec![fired(10, 0, 0.05), resolved(15, 0, 0.05, 0.025)],
                ),
                // On a reading; resolved by operation stopping.
                (
                    "op0=5000 0=0 10=0 op20=0 25=0",
                    vec![zero_fired, zero_resolved],
                ),
                // Only the ending reading shows the duration: both together.
                (
                    "op0=5000 0=0 30=12",
                    vec![fired(30, 0, 0.0), resolved(30, 0, 0.0, 0.0)],
                ),
                // Operation starting while the value is zero starts the condition.
                ("0=0 op5=5000 w14 w15", vec![fired(15, 5, 0.0)]),
                // Zeros while stopped, short zeros: nothing.
                ("op0=20 0=0 w30 31=0", vec![]),
                ("op0=5000 0=0 5=0 w9 9=3 w30", vec![]),
            ],
        );
    }

    #[test]
    fn out_of_range_fires_at_once_with_the_farthest_value_as_peak() {
        // Both ends are in range; a T-flagged value is the flag rule's business.
        let want = vec![
            fired(1, 1, 600.0),
            resolved(4, 1, 700.0, 650.0),
            fired(5, 5, -20.0),
            resolved(7, 5, -50.0, -35.0),
        ];
        expect(
            range,
            &[("0=0 1=600 2=700 T3=999 4=500 5=-20 6=-50 7=10", want)],
        );
    }

    #[test]
    fn a_jump_is_a_one_reading_event_and_a_spike_with_its_fall_is_one() {
        // A step that stays (2), a spike and its fall (4, 5), a change after a long gap (20).
        let want = vec![
            fired(2, 2, 300.0),
            resolved(3, 2, 300.0, 300.0),
            fired(4, 4, 500.0),
            resolved(6, 4, 500.0, 400.0),
        ];
        let script = "0=100 1=110 2=300 3=305 4=500 5=300 6=300 20=900 D21=0 22=905";
        expect(jump, &[(script, want)]);
    }

    #[test]
    fn held_flags_fire_past_the_limit_on_readings_or_the_watermark() {
        expect(
            flags,
            &[
                // D, M and C are one run; it ends at the N reading.
                (
                    "D0 D30 M61 C90 100=1",
                    vec![fired(61, 0, 60.0), resolved(100, 0, 100.0, 100.0)],
                ),
                // The watermark fires before a reading crosses the limit.
                (
                    "D0 D30 w60 w61 D62 70=1",
                    vec![fired(61, 0, 60.0), resolved(70, 0, 70.0, 70.0)],
                ),
                // Only the ending reading shows the duration.
                (
                    "D0 90=1",
                    vec![fired(90, 0, 60.0), resolved(90, 0, 90.0, 90.0)],
                ),
                // F (stopped) is not watched by default.
                ("F0 w600 601=1", vec![]),
            ],
        );
        let stopped = || FlagDuration::new(ok(FlagDurationParams::new(60 * MIN, &[DataFlag::F])));
        let want = vec![fired(600, 0, 60.0), resolved(601, 0, 601.0, 601.0)];
        expect(stopped, &[("F0 w600 601=1", want)]);
    }

    #[test]
    fn conflicts_are_one_episode_until_a_quiet_spell() {
        let mut m = ReadingConflict::new(ok(ReadingConflictParams::new(60 * MIN)));
        let mut out = Vec::new();
        m.on_conflict(Timestamp(10 * MIN), &mut out);
        m.on_conflict(Timestamp(30 * MIN), &mut out);
        m.on_watermark(Timestamp(89 * MIN), &mut out);
        m.on_conflict(Timestamp(80 * MIN), &mut out);
        assert_eq!(
            out,
            vec![Transition::Fired {
                started_at: Timestamp(10 * MIN),
                value: 1.0
            }]
        );
        out.clear();
        m.on_watermark(Timestamp(140 * MIN), &mut out);
        assert_eq!(
            out,
            vec![Transition::Resolved {
                started_at: Timestamp(10 * MIN),
                ended_at: Timestamp(80 * MIN),
                peak: 3.0,
                mean: 3.0
            }]
        );
        // A conflict after the quiet spell is a new episode, even before the watermark says so.
        out.clear();
        m.on_conflict(Timestamp(150 * MIN), &mut out);
        m.on_conflict(Timestamp(300 * MIN), &mut out);
        let starts: Vec<_> = out
            .iter()
            .map(|t| match t {
                Transition::Fired { started_at, .. } => ("fired", *started_at),
                Transition::Resolved { started_at, .. } => ("resolved", *started_at),
                Transition::Updated { started_at, .. } => ("updated", *started_at),
            })
            .collect();
        assert_eq!(
            starts,
            vec![
                ("fired", Timestamp(150 * MIN)),
                ("resolved", Timestamp(150 * MIN)),
                ("fired", Timestamp(300 * MIN))
            ]
        );
        assert!(ReadingConflictParams::new(0).is_err());
    }

    #[test]
    fn missing_data_starts_at_the_last_reading_and_resolves_at_the_next() {
        // Nothing before a first reading; exactly the limit (w115) is not yet a gap; any
        // reading ends a gap; the last gap is seen only by the reading that ends it.
        let want = vec![
            fired(116, 105, 10.0),
            resolved(140, 105, 35.0, 35.0),
            fired(160, 140, 10.0),
            resolved(160, 140, 20.0, 20.0),
        ];
        let script = "w100 100=1 105=1 w115 w116 w130 D140=1 160=1";
        expect(missing, &[(script, want)]);
    }

    #[test]
    fn compliant_or_invalid_data_raises_nothing() {
        // Two hours of wandering values every minute while operating, the watermark just
        // behind, a 5-minute fault flag and a 3-minute gap: no rule fires.
        let compliant: String = (0..120)
            .filter(|m| !(70..73).contains(m))
            .map(|m| {
                let flag = if (40..45).contains(&m) { "D" } else { "" };
                let value = 30.0 + (m % 7) as f64 * 1.3;
                format!("op{m}=5000 {flag}{m}={value} w{m} ")
            })
            .collect();
        let table = [(compliant.as_str(), vec![])];
        expect(constant, &table);
        expect(zero, &table);
        expect(range, &table);
        expect(jump, &table);
        expect(flags, &table);
        expect(missing, &table);
        // An hour of maintenance-flagged values, zero, constant, out of range and jumping,
        // while operating: no evidence for the value rules.
        let flagged: String = (0..60)
            .map(|m| format!("op{m}=5000 M{m}={} w{m} ", if m % 2 == 0 { 0 } else { 900 }))
            .collect();
        let table = [(flagged.as_str(), vec![])];
        expect(constant, &table);
        expect(zero, &table);
        expect(range, &table);
        expect(jump, &table);
    }

    #[test]
    fn impossible_parameters_are_refused() {
        let refused = [
            ConstantValueParams::new(1, 0, 0.1).is_err(),
            ConstantValueParams::new(3, -1, 0.1).is_err(),
            ConstantValueParams::new(3, 0, -0.1).is_err(),
            ZeroWhileOperatingParams::new(f64::NAN, 100.0, 0).is_err(),
            ZeroWhileOperatingParams::new(0.1, f64::INFINITY, 0).is_err(),
            OutOfRangeParams::new(500.0, 0.0).is_err(),
            SuddenJumpParams::new(-1.0, 0).is_err(),
            FlagDurationParams::new(0, &[]).is_err(),
            FlagDurationParams::new(0, &[DataFlag::D, DataFlag::N]).is_err(),
            FlagDurationParams::new(-1, &[DataFlag::D]).is_err(),
            MissingDataParams::new(-1).is_err(),
        ];
        for (case, refused) in refused.iter().enumerate() {
            assert!(refused, "case {case} accepted");
        }
        let message = ConstantValueParams::new(1, 0, 0.1)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("min_readings must be 2 or more, got 1")
        );
        let default = ok(FlagDurationParams::with_default_flags(0));
        let watched: Vec<char> = DataFlag::ALL
            .into_iter()
            .filter(|f| default.watches(*f))
            .map(DataFlag::as_char)
            .collect();
        assert_eq!(watched, ['M', 'S', 'D', 'C', 'T', 'B']);
    }
}
