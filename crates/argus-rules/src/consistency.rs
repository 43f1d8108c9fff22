//! The consistency check of a data logger's own averages (`inconsistent_average`): the
//! logger's minute or hourly value of a metric against Argus's own average of the real-time
//! values of the same span, and the logger's O2-corrected value (`ZsAvg`) against Argus's O2
//! correction of the logger's value. A logger whose averages are not what its real-time data
//! says is a known pattern of tampered data (the averages, what the regulator judges, are
//! edited; the real-time feed is not).

use argus_model::{AlertKind, DataFlag, Interval, Reading, Timestamp};

use crate::episode::Episode;
use crate::{O2Correction, Transition};

/// A parameter outside its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConsistencyError {
    /// The interval checked is not the logger's minute or hourly values.
    #[error("interval must be minute or hour, got {0}")]
    Interval(Interval),
    /// A tolerance that is negative or not finite, or both zero.
    #[error("tolerance_pct and tolerance_abs must be finite, at least 0 and not both 0, got {pct} and {abs}")]
    Tolerance {
        /// The relative tolerance.
        pct: f64,
        /// The absolute tolerance.
        abs: f64,
    },
    /// Too many or no valid minutes asked of an hour.
    #[error("min_valid_minutes must be 1 to 60, got {0}")]
    MinValidMinutes(u32),
}

/// Parameters of a consistency check.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConsistencyParams {
    interval: Interval,
    tolerance_pct: f64,
    tolerance_abs: f64,
    min_valid_minutes: u32,
    o2: Option<O2Correction>,
}

impl ConsistencyParams {
    /// Check the logger's `interval` values (minute or hour): a difference over
    /// `tolerance_abs` (in the metric's unit) and over `tolerance_pct` % of Argus's value is
    /// inconsistent. An hour is compared when Argus has at least `min_valid_minutes` valid
    /// minutes of it (a minute when it has one valid value). `o2`, for flue gas concentrations,
    /// checks the logger's corrected value too.
    pub fn new(
        interval: Interval,
        tolerance_pct: f64,
        tolerance_abs: f64,
        min_valid_minutes: u32,
        o2: Option<O2Correction>,
    ) -> Result<Self, ConsistencyError> {
        if !matches!(interval, Interval::Minute | Interval::Hour) {
            return Err(ConsistencyError::Interval(interval));
        }
        let fine = |t: f64| t.is_finite() && t >= 0.0;
        if !fine(tolerance_pct) || !fine(tolerance_abs) || tolerance_pct + tolerance_abs == 0.0 {
            return Err(ConsistencyError::Tolerance {
                pct: tolerance_pct,
                abs: tolerance_abs,
            });
        }
        if !(1..=60).contains(&min_valid_minutes) {
            return Err(ConsistencyError::MinValidMinutes(min_valid_minutes));
        }
        Ok(Self {
            interval,
            tolerance_pct,
            tolerance_abs,
            min_valid_minutes,
            o2,
        })
    }

    /// The logger's values it checks.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// Whether it checks the logger's corrected values (and so takes the point's O2).
    pub fn corrects(&self) -> bool {
        self.o2.is_some()
    }

    fn start_of(&self, t: Timestamp) -> Timestamp {
        match self.interval {
            Interval::Hour => t.china_hour_start(),
            _ => Timestamp(t.as_millis() - t.as_millis().rem_euclid(60_000)),
        }
    }

    /// Whether `logger` differs from `argus` by more than the tolerance.
    fn differs(&self, logger: f64, argus: f64) -> bool {
        let diff = (logger - argus).abs();
        diff > self.tolerance_abs && diff > self.tolerance_pct / 100.0 * argus.abs()
    }
}

/// Argus's own sums over the span being filled (a minute or an hour).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Span {
    start: Timestamp,
    sum: f64,
    n: u32,
    /// Bit m: minute m has a valid value (hourly spans).
    valid_minutes: u64,
    o2_sum: f64,
    o2_n: u32,
}

impl Span {
    fn new(start: Timestamp) -> Self {
        Self {
            start,
            sum: 0.0,
            n: 0,
            valid_minutes: 0,
            o2_sum: 0.0,
            o2_n: 0,
        }
    }
}

/// The state machine of one consistency check on one series (and the O2 of its point).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Consistency {
    params: ConsistencyParams,
    span: Option<Span>,
    /// The logger's own O2 value of a span (same interval), when it sent one.
    logger_o2: Option<(Timestamp, f64)>,
    /// Whether the point has sent a logger value of the interval: until then its real-time
    /// values are not summed (most points never send one, and cost nothing here).
    armed: bool,
    episode: Episode,
}

impl Consistency {
    /// The alert kind it raises.
    pub const KIND: AlertKind = AlertKind::InconsistentAverage;

    /// A machine that has seen nothing yet.
    pub fn new(params: ConsistencyParams) -> Self {
        Self {
            params,
            span: None,
            logger_o2: None,
            armed: false,
            episode: Episode::reporting_updates(),
        }
    }

    /// The span `at` lies in, opened if it is later than the one being filled; `None` for a
    /// time before that one.
    fn span_at(&mut self, at: Timestamp) -> Option<&mut Span> {
        let start = self.params.start_of(at);
        let span = self.span.get_or_insert_with(|| Span::new(start));
        if span.start < start {
            *span = Span::new(start);
        }
        (span.start == start).then_some(span)
    }

    /// Take a reading of the point's O2 (in `available_at` order with the other readings).
    pub fn on_o2(&mut self, r: &Reading) {
        if !r.is_valid() || (!self.armed && r.interval == Interval::RealTime) {
            return;
        }
        if r.interval == self.params.interval {
            self.logger_o2 = Some((r.event_time, r.value));
        } else if r.interval == Interval::RealTime {
            if let Some(span) = self.span_at(r.event_time) {
                span.o2_sum += r.value;
                span.o2_n += 1;
            }
        }
    }

    /// Take a reading of the checked metric: a real-time value is summed into its span (once
    /// the point has sent a logger value of the interval: the comparisons start with its
    /// second span); the logger's value of the checked interval is compared with the span it
    /// stands for.
    pub fn on_reading(&mut self, r: &Reading, out: &mut Vec<(AlertKind, Transition)>) {
        if r.interval == Interval::RealTime {
            if !self.armed || !r.is_valid() {
                return;
            }
            let Some(span) = self.span_at(r.event_time) else {
                return;
            };
            let minute =
                (r.event_time.as_millis() - span.start.as_millis()).clamp(0, 3_599_999) / 60_000;
            span.sum += r.value;
            span.n += 1;
            span.valid_minutes |= 1 << minute;
            return;
        }
        if r.interval != self.params.interval {
            return;
        }
        self.armed = true;
        if r.flag != DataFlag::N {
            return;
        }
        if let Some(t) = self.judge(r) {
            out.push((Self::KIND, t));
        }
    }

    /// The verdict on the logger's value `r`: the largest difference found, if any check could
    /// be made.
    fn judge(&mut self, r: &Reading) -> Option<Transition> {
        let p = self.params;
        let start = r.event_time;
        let span = self.span.filter(|s| s.start == start);
        let mut checked = false;
        let mut violated = false;
        let mut worst: f64 = 0.0;
        let mut compare = |logger: f64, argus: f64| {
            checked = true;
            let diff = (logger - argus).abs();
            if p.differs(logger, argus) {
                violated = true;
                worst = worst.max(diff);
            }
        };
        // The logger's average against Argus's own, when Argus has enough of the span.
        if let Some(span) = span {
            let enough = match p.interval {
                Interval::Hour => span.valid_minutes.count_ones() >= p.min_valid_minutes,
                _ => span.n > 0,
            };
            if enough && span.n > 0 {
                compare(r.value, span.sum / f64::from(span.n));
            }
        }
        // The logger's corrected value against Argus's correction of the logger's value, with
        // the logger's O2 of the span, or Argus's average O2 of it.
        if let (Some(zs), Some(o2)) = (r.corrected, p.o2) {
            let measured = match self.logger_o2 {
                Some((at, o2)) if at == start => Some(o2),
                _ => span
                    .filter(|s| s.o2_n > 0)
                    .map(|s| s.o2_sum / f64::from(s.o2_n)),
            };
            let at = r.available_at();
            if let Some(expected) = o2.correct(r.value, measured.map(|m| (at, m)), at) {
                compare(zs, expected);
            }
        }
        if !checked {
            return None;
        }
        self.episode.window(start, violated, worst)
    }
}

#[cfg(test)]
mod tests {
    use argus_model::{Metric, MetricCode, SourceId};

    use super::*;

    const HOUR: i64 = 3_600_000;
    /// 2026-11-26 10:00 China time.
    const T10: i64 = 1_795_622_400_000 + 10 * HOUR;

    fn reading(metric: Metric, interval: Interval, at: i64, value: f64) -> Reading {
        Reading {
            source: SourceId::new("15010201000101"),
            metric: MetricCode::Known(metric),
            value,
            flag: DataFlag::N,
            event_time: Timestamp(at),
            receive_time: Timestamp(at),
            interval,
            corrected: None,
        }
    }

    fn hourly(o2: Option<O2Correction>) -> Consistency {
        let params = ConsistencyParams::new(Interval::Hour, 10.0, 1.0, 45, o2)
            .unwrap_or_else(|e| panic!("{e}"));
        Consistency::new(params)
    }

    /// One real-time SO2 value a minute of the hour starting at `start`, at `value`.
    fn feed_hour(
        m: &mut Consistency,
        start: i64,
        value: f64,
        out: &mut Vec<(AlertKind, Transition)>,
    ) {
        for minute in 0..60 {
            let r = reading(
                Metric::So2,
                Interval::RealTime,
                start + minute * 60_000,
                value,
            );
            m.on_reading(&r, out);
        }
    }

    #[test]
    fn an_hourly_value_unlike_the_hours_real_time_values_is_inconsistent() {
        let mut m = hourly(None);
        let mut out = Vec::new();
        // Real-time values count once the point has sent a logger value: the 09:00 one is
        // not compared (nothing summed), whatever it says.
        feed_hour(&mut m, T10 - HOUR, 50.0, &mut out);
        m.on_reading(
            &reading(Metric::So2, Interval::Hour, T10 - HOUR, 1.0),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // 10:00: real time 50, the logger says 30: inconsistent by 20.
        feed_hour(&mut m, T10, 50.0, &mut out);
        m.on_reading(&reading(Metric::So2, Interval::Hour, T10, 30.0), &mut out);
        let fired = Transition::Fired {
            started_at: Timestamp(T10),
            value: 20.0,
        };
        assert_eq!(out, vec![(AlertKind::InconsistentAverage, fired)]);
        out.clear();
        // 11:00: within 10 %: consistent, the alert resolves.
        feed_hour(&mut m, T10 + HOUR, 50.0, &mut out);
        m.on_reading(
            &reading(Metric::So2, Interval::Hour, T10 + HOUR, 47.0),
            &mut out,
        );
        assert!(
            matches!(out.as_slice(), [(_, Transition::Resolved { ended_at, .. })] if *ended_at == Timestamp(T10 + HOUR)),
            "{out:?}"
        );
        out.clear();
        // 12:00: only 30 real-time minutes: not comparable, no verdict.
        for minute in 0..30 {
            let r = reading(
                Metric::So2,
                Interval::RealTime,
                T10 + 2 * HOUR + minute * 60_000,
                50.0,
            );
            m.on_reading(&r, &mut out);
        }
        m.on_reading(
            &reading(Metric::So2, Interval::Hour, T10 + 2 * HOUR, 5.0),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_corrected_value_unlike_argus_s_correction_is_inconsistent() {
        let o2 = O2Correction {
            reference_pct: 6.0,
            max_measured_pct: 19.0,
            max_age_ms: 300_000,
        };
        let mut m = hourly(Some(o2));
        let mut out = Vec::new();
        // 30 mg/m3 at 9 % O2 is 37.5 at 6 %; the logger says 30 (uncorrected): off by 7.5.
        m.on_o2(&reading(Metric::Oxygen, Interval::Hour, T10, 9.0));
        let mut logger = reading(Metric::So2, Interval::Hour, T10, 30.0);
        logger.corrected = Some(30.0);
        m.on_reading(&logger, &mut out);
        assert_eq!(
            out,
            vec![(
                AlertKind::InconsistentAverage,
                Transition::Fired {
                    started_at: Timestamp(T10),
                    value: 7.5
                }
            )]
        );
        // The logger's own correction, right: consistent.
        let mut m = hourly(Some(o2));
        let mut out = Vec::new();
        m.on_o2(&reading(Metric::Oxygen, Interval::Hour, T10, 9.0));
        logger.corrected = Some(37.4);
        m.on_reading(&logger, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn parameters_are_checked() {
        assert!(ConsistencyParams::new(Interval::Day, 5.0, 0.0, 45, None).is_err());
        assert!(ConsistencyParams::new(Interval::Hour, 0.0, 0.0, 45, None).is_err());
        assert!(ConsistencyParams::new(Interval::Hour, -1.0, 1.0, 45, None).is_err());
        assert!(ConsistencyParams::new(Interval::Hour, 5.0, 0.0, 61, None).is_err());
        assert!(ConsistencyParams::new(Interval::Minute, 5.0, 0.0, 1, None).is_ok());
    }
}
