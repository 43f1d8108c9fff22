//! The threshold rule: a value beyond a limit, optionally sustained (`for` a duration, or for
//! `n_consecutive` readings), cleared with hysteresis (the coal-mine restore threshold: power
//! cut at 1.5 % CH4, restored only below 1.0 %).
//!
//! Only valid readings (flag N) count: an invalid reading neither breaches nor clears.

use argus_model::{Reading, Timestamp};

use crate::Transition;

/// Which side of the limit is a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Comparison {
    /// Values strictly above the limit violate it (emission limits: "not to exceed").
    Above,
    /// Values at or above the limit violate it (set points: methane "at or above 1.5 %").
    AtOrAbove,
    /// Values strictly below the limit violate it (a pH floor).
    Below,
    /// Values at or below the limit violate it.
    AtOrBelow,
}

impl Comparison {
    /// Whether the violating side is above the limit.
    const fn upward(self) -> bool {
        matches!(self, Comparison::Above | Comparison::AtOrAbove)
    }
}

/// A threshold rule's parameters, validated by [`ThresholdParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThresholdParams {
    comparison: Comparison,
    limit: f64,
    clear: f64,
    for_ms: i64,
    n_consecutive: u32,
    keep_firing_ms: i64,
}

/// Parameters that cannot describe a threshold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// A number is NaN or infinite.
    #[error("threshold values must be finite numbers, got limit {limit} and clear {clear}")]
    NotFinite {
        /// The limit.
        limit: f64,
        /// The clear value.
        clear: f64,
    },
    /// The clear value is on the violating side of the limit.
    #[error("the clear value {clear} must be on the compliant side of the limit {limit}")]
    ClearBeyondLimit {
        /// The limit.
        limit: f64,
        /// The clear value.
        clear: f64,
    },
    /// A negative duration.
    #[error("`for` must not be negative, got {for_ms} ms")]
    NegativeFor {
        /// The duration.
        for_ms: i64,
    },
}

impl ThresholdParams {
    /// A threshold at `limit` that clears once a value is strictly beyond `clear` on the
    /// compliant side (`clear == limit`: no hysteresis), after the condition held for `for_ms`
    /// of event time and over at least `n_consecutive` readings (0 and 1 both mean "one").
    pub fn new(
        comparison: Comparison,
        limit: f64,
        clear: f64,
        for_ms: i64,
        n_consecutive: u32,
    ) -> Result<Self, ThresholdError> {
        if !limit.is_finite() || !clear.is_finite() {
            return Err(ThresholdError::NotFinite { limit, clear });
        }
        let clear_ok = if comparison.upward() {
            clear <= limit
        } else {
            clear >= limit
        };
        if !clear_ok {
            return Err(ThresholdError::ClearBeyondLimit { limit, clear });
        }
        if for_ms < 0 {
            return Err(ThresholdError::NegativeFor { for_ms });
        }
        Ok(Self {
            comparison,
            limit,
            clear,
            for_ms,
            n_consecutive: n_consecutive.max(1),
            keep_firing_ms: 0,
        })
    }

    /// Flapping damping: a firing alert resolves only once values have stayed clear for
    /// `keep_firing_ms` of event time (negative counts as 0); a breach before then continues the
    /// same alert. The alert's end is when values first cleared.
    pub fn with_keep_firing(self, keep_firing_ms: i64) -> Self {
        Self {
            keep_firing_ms: keep_firing_ms.max(0),
            ..self
        }
    }

    /// The limit.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    fn breaches(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value > self.limit,
            Comparison::AtOrAbove => value >= self.limit,
            Comparison::Below => value < self.limit,
            Comparison::AtOrBelow => value <= self.limit,
        }
    }

    /// Whether `value` ends a firing alert: back on the compliant side of `clear` (strictly
    /// beyond it for the at-or-beyond comparisons, at or beyond it for the strict ones, so that
    /// with `clear == limit` exactly the compliant values clear).
    fn clears(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value <= self.clear,
            Comparison::AtOrAbove => value < self.clear,
            Comparison::Below => value >= self.clear,
            Comparison::AtOrBelow => value > self.clear,
        }
    }

    /// The more extreme of two values in the violating direction.
    fn worse(&self, a: f64, b: f64) -> f64 {
        if self.comparison.upward() {
            a.max(b)
        } else {
            a.min(b)
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum State {
    Idle,
    /// Breaching since `since` (with `first` then), over `count` readings whose worst value
    /// is `peak` and sum `sum`; not yet long enough.
    Pending {
        since: Timestamp,
        first: f64,
        count: u32,
        peak: f64,
        sum: f64,
    },
    /// An alert is open; `reported` is its worst value last reported; `clearing` since when
    /// values have been clear (flapping damping).
    Firing {
        since: Timestamp,
        peak: f64,
        sum: f64,
        n: u32,
        reported: f64,
        clearing: Option<Timestamp>,
    },
}

/// The state machine of one threshold rule on one series. Feed it the series' valid readings
/// in event-time order ([`Threshold::on_reading`]) and the watermark ([`Threshold::on_watermark`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Threshold {
    params: ThresholdParams,
    state: State,
}

impl Threshold {
    /// A machine at rest.
    pub fn new(params: ThresholdParams) -> Self {
        Self {
            params,
            state: State::Idle,
        }
    }

    /// Whether an alert is open.
    pub fn is_firing(&self) -> bool {
        matches!(self.state, State::Firing { .. })
    }

    /// Take one reading (in event-time order). Invalid readings are ignored.
    pub fn on_reading(&mut self, reading: &Reading, out: &mut Vec<Transition>) {
        if !reading.is_valid() {
            return;
        }
        let (t, v) = (reading.event_time, reading.value);
        let p = self.params;
        // A condition that lasted long enough before this compliant-looking reading fired
        // already, whether or not a watermark came in between: fire it first, then judge the
        // reading as one of a firing alert (hysteresis). Transitions thus do not depend on the
        // watermark cadence.
        if !p.breaches(v) {
            out.extend(self.fire_if_due(t));
        }
        // A clearing that lasted long enough before this reading resolved the alert already.
        out.extend(self.resolve_if_cleared(t));
        match &mut self.state {
            State::Idle if p.breaches(v) => {
                self.state = State::Pending {
                    since: t,
                    first: v,
                    count: 1,
                    peak: v,
                    sum: v,
                };
                out.extend(self.fire_if_due(t));
            }
            State::Idle => {}
            State::Pending {
                count, peak, sum, ..
            } if p.breaches(v) => {
                *count += 1;
                *peak = p.worse(*peak, v);
                *sum += v;
                out.extend(self.fire_if_due(t));
            }
            State::Pending { .. } => self.state = State::Idle,
            State::Firing {
                since,
                peak,
                sum,
                n,
                reported,
                clearing,
            } => {
                if p.clears(v) {
                    if p.keep_firing_ms == 0 {
                        out.extend(self.resolve(t));
                    } else {
                        clearing.get_or_insert(t);
                        out.extend(self.resolve_if_cleared(t));
                    }
                } else {
                    *clearing = None;
                    *peak = p.worse(*peak, v);
                    *sum += v;
                    *n += 1;
                    // A sustained (`for`) condition may fire on a reading or on the watermark
                    // before it, which would change which readings count before the fire and
                    // so the updates; it reports its worst on resolution only.
                    if p.for_ms == 0
                        && crate::worse_by_a_step(*reported, *peak, p.comparison.upward())
                    {
                        *reported = *peak;
                        out.push(Transition::Updated {
                            started_at: *since,
                            value: *peak,
                        });
                    }
                }
            }
        }
    }

    /// Event time has reached `watermark`: no reading at or before it is still to come. A
    /// sustained condition whose `for` duration has passed fires now.
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<Transition>) {
        out.extend(self.fire_if_due(watermark));
        out.extend(self.resolve_if_cleared(watermark));
    }

    /// Resolve, as of when values first cleared, an alert whose values stayed clear for the
    /// damping time by `now`.
    fn resolve_if_cleared(&mut self, now: Timestamp) -> Option<Transition> {
        let State::Firing {
            clearing: Some(cleared),
            ..
        } = self.state
        else {
            return None;
        };
        let keep = self.params.keep_firing_ms;
        if now.as_millis().saturating_sub(cleared.as_millis()) < keep {
            return None;
        }
        self.resolve(cleared)
    }

    /// End a firing alert at `t`.
    fn resolve(&mut self, t: Timestamp) -> Option<Transition> {
        let State::Firing {
            since,
            peak,
            sum,
            n,
            ..
        } = self.state
        else {
            return None;
        };
        self.state = State::Idle;
        Some(Transition::Resolved {
            started_at: since,
            ended_at: t,
            peak,
            mean: sum / f64::from(n.max(1)),
        })
    }

    fn fire_if_due(&mut self, now: Timestamp) -> Option<Transition> {
        let State::Pending {
            since,
            first,
            count,
            peak,
            sum,
        } = self.state
        else {
            return None;
        };
        let p = self.params;
        if count < p.n_consecutive || now.as_millis().saturating_sub(since.as_millis()) < p.for_ms {
            return None;
        }
        // The condition held from `since`: that is when the alert starts, and its value is the
        // one that started it. Statistics cover every reading since then, so neither depends on
        // when the watermark happened to make the alert due.
        self.state = State::Firing {
            since,
            peak,
            sum,
            n: count,
            reported: first,
            clearing: None,
        };
        Some(Transition::Fired {
            started_at: since,
            value: first,
        })
    }
}

#[cfg(test)]
mod tests {
    use argus_model::{DataFlag, Metric, MetricCode, SourceId};

    use super::*;

    const MIN: i64 = 60_000;

    fn reading(minute: i64, value: f64, flag: DataFlag) -> Reading {
        Reading {
            source: SourceId::new("MINE01-CH4-WF1"),
            metric: MetricCode::Known(Metric::MineCh4),
            value,
            flag,
            event_time: Timestamp(minute * MIN),
            receive_time: Timestamp(minute * MIN),
            interval: Default::default(),
            corrected: None,
        }
    }

    /// Run readings `(minute, value)` (flag N unless given) and watermarks, collecting
    /// transitions with the minute they happened at.
    fn run(params: ThresholdParams, steps: &[Step]) -> Vec<(i64, Transition)> {
        let mut machine = Threshold::new(params);
        let mut out = Vec::new();
        for step in steps {
            let mut t = Vec::new();
            let minute = match *step {
                Step::R(m, v) => {
                    machine.on_reading(&reading(m, v, DataFlag::N), &mut t);
                    m
                }
                Step::Invalid(m, v) => {
                    machine.on_reading(&reading(m, v, DataFlag::D), &mut t);
                    m
                }
                Step::W(m) => {
                    machine.on_watermark(Timestamp(m * MIN), &mut t);
                    m
                }
            };
            out.extend(t.into_iter().map(|t| (minute, t)));
        }
        out
    }

    enum Step {
        R(i64, f64),
        Invalid(i64, f64),
        W(i64),
    }
    use Step::{Invalid, R, W};

    fn fired(at: i64, started: i64, value: f64) -> (i64, Transition) {
        (
            at,
            Transition::Fired {
                started_at: Timestamp(started * MIN),
                value,
            },
        )
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

    fn params(limit: f64, clear: f64, for_min: i64, n: u32) -> ThresholdParams {
        ThresholdParams::new(Comparison::AtOrAbove, limit, clear, for_min * MIN, n)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn methane_power_cut_fires_at_once_and_restores_only_below_the_restore_value() {
        // AQ 1029 working face: cut at >= 1.5 %, restore below 1.0 %.
        let p = params(1.5, 1.0, 0, 1);
        let got = run(
            p,
            &[
                R(0, 0.8),
                R(1, 1.5),
                R(2, 1.9),
                R(3, 1.2),
                R(4, 1.0),
                R(5, 0.9),
                R(6, 1.4),
            ],
        );
        let updated = Transition::Updated {
            started_at: Timestamp(MIN),
            value: 1.9,
        };
        assert_eq!(
            got,
            vec![
                fired(1, 1, 1.5),
                (2, updated),
                resolved(5, 1, 1.9, (1.5 + 1.9 + 1.2 + 1.0) / 4.0)
            ]
        );
    }

    #[test]
    fn a_growing_violation_is_updated_at_each_ten_percent_step_and_never_when_it_eases() {
        let p = ThresholdParams::new(Comparison::Above, 100.0, 100.0, 0, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let updated = |at: i64, value: f64| {
            let t = Transition::Updated {
                started_at: Timestamp(MIN),
                value,
            };
            (at, t)
        };
        let got = run(
            p,
            &[
                R(1, 110.0),
                R(2, 120.0), // 9 % worse than 110: not yet
                R(3, 121.0), // 10 % worse: updated
                R(4, 105.0), // easing: nothing
                R(5, 140.0), // 15.7 % worse than 121: updated
                Invalid(6, 500.0),
                R(7, 99.0),
            ],
        );
        let mean = (110.0 + 120.0 + 121.0 + 105.0 + 140.0) / 5.0;
        assert_eq!(
            got,
            vec![
                fired(1, 1, 110.0),
                updated(3, 121.0),
                updated(5, 140.0),
                resolved(7, 1, 140.0, mean)
            ]
        );
        // Lower limits: worse is lower.
        let p = ThresholdParams::new(Comparison::Below, 6.0, 6.0, 0, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let got = run(p, &[R(1, 5.0), R(2, 4.6), R(3, 4.5), R(4, 7.0)]);
        assert_eq!(
            got,
            vec![
                fired(1, 1, 5.0),
                updated(3, 4.5),
                resolved(4, 1, 4.5, (5.0 + 4.6 + 4.5) / 3.0)
            ]
        );
    }

    #[test]
    fn flapping_is_damped_one_alert_ending_when_values_first_cleared_for_good() {
        let p = params(35.0, 35.0, 0, 1).with_keep_firing(5 * MIN);
        let readings = [
            R(0, 40.0),
            R(1, 30.0), // clear ...
            R(3, 41.0), // ... but breaching again within 5 minutes: the same alert
            R(6, 30.0), // clear from 6
            R(8, 31.0),
            R(12, 32.0), // clear for 6 minutes: resolved as of 6
        ];
        let got = run(p, &readings);
        assert_eq!(
            got,
            vec![fired(0, 0, 40.0), resolved(12, 0, 41.0, 40.5)]
                .into_iter()
                .map(|(at, t)| match t {
                    Transition::Resolved {
                        started_at,
                        peak,
                        mean,
                        ..
                    } => (
                        at,
                        Transition::Resolved {
                            started_at,
                            ended_at: Timestamp(6 * MIN),
                            peak,
                            mean
                        }
                    ),
                    other => (at, other),
                })
                .collect::<Vec<_>>()
        );
        // The same with a watermark after each reading: resolved on the watermark at 11.
        let mut steps = Vec::new();
        for step in readings {
            if let R(m, _) = step {
                steps.push(step);
                steps.push(W(m + 1));
            }
        }
        let dense: Vec<Transition> = run(p, &steps).into_iter().map(|(_, t)| t).collect();
        let sparse: Vec<Transition> = got.into_iter().map(|(_, t)| t).collect();
        assert_eq!(dense, sparse);
    }

    #[test]
    fn sustained_condition_fires_on_the_watermark_with_its_start_time() {
        let p = params(35.0, 35.0, 10, 1);
        let got = run(p, &[R(0, 40.0), R(5, 41.0), W(9), W(10), R(12, 20.0)]);
        assert_eq!(got, vec![fired(10, 0, 40.0), resolved(12, 0, 41.0, 40.5)]);
        // Interrupted before the duration: never fires.
        let got = run(p, &[R(0, 40.0), R(5, 30.0), R(6, 40.0), W(15), W(16)]);
        assert_eq!(got, vec![fired(16, 6, 40.0)]);
        let got = run(p, &[R(0, 40.0), R(5, 30.0), W(12)]);
        assert!(got.is_empty());
        // Long enough before a compliant reading, with no watermark in between: the same alert
        // as with a watermark, fired and resolved at that reading.
        let got = run(p, &[R(0, 40.0), R(11, 30.0)]);
        assert_eq!(got, vec![fired(11, 0, 40.0), resolved(11, 0, 40.0, 40.0)]);
        let with_watermark = run(p, &[R(0, 40.0), W(10), R(11, 30.0)]);
        assert_eq!(
            with_watermark,
            vec![fired(10, 0, 40.0), resolved(11, 0, 40.0, 40.0)]
        );
    }

    #[test]
    fn transitions_do_not_depend_on_the_watermark_cadence() {
        let p = params(35.0, 30.0, 10, 2);
        // Due at 10, then at 12 a value inside the hysteresis band (33: still firing), cleared
        // at 15; a second condition due at 30 and cleared at 40; a last one too short.
        let readings = [
            R(0, 36.0),
            R(4, 50.0),
            R(9, 40.0),
            R(12, 33.0),
            R(15, 29.0),
            R(20, 36.0),
            R(25, 37.0),
            R(40, 20.0),
            R(45, 36.0),
            R(50, 20.0),
        ];
        let strip =
            |got: Vec<(i64, Transition)>| got.into_iter().map(|(_, t)| t).collect::<Vec<_>>();
        let sparse = strip(run(p, &readings));
        let mut steps = Vec::new();
        for step in readings {
            // A watermark just before each reading (all earlier readings are in).
            if let R(m, _) = step {
                steps.push(W(m - 1));
            }
            steps.push(step);
        }
        let dense = strip(run(p, &steps));
        assert_eq!(sparse, dense);
        assert_eq!(
            sparse,
            vec![
                fired(0, 0, 36.0).1,
                resolved(15, 0, 50.0, (36.0 + 50.0 + 40.0 + 33.0) / 4.0).1,
                fired(0, 20, 36.0).1,
                resolved(40, 20, 37.0, 36.5).1,
            ]
        );
    }

    #[test]
    fn consecutive_count_and_invalid_flags() {
        let p = params(24.0, 24.0, 0, 3);
        // Two breaches, a compliant value, then three in a row.
        let got = run(
            p,
            &[
                R(0, 30.0),
                R(1, 30.0),
                R(2, 10.0),
                R(3, 25.0),
                R(4, 26.0),
                R(5, 27.0),
            ],
        );
        assert_eq!(got, vec![fired(5, 3, 25.0)]);
        // Invalid-flagged readings neither breach nor clear.
        let got = run(
            p,
            &[Invalid(0, 99.0), Invalid(1, 99.0), Invalid(2, 99.0), W(10)],
        );
        assert!(got.is_empty());
        let got = run(
            params(24.0, 24.0, 0, 1),
            &[R(0, 30.0), Invalid(1, 0.0), R(2, 10.0)],
        );
        assert_eq!(got, vec![fired(0, 0, 30.0), resolved(2, 0, 30.0, 30.0)]);
    }

    #[test]
    fn lower_limits_mirror_upper_ones() {
        let p = ThresholdParams::new(Comparison::AtOrBelow, 6.0, 6.5, 0, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let got = run(p, &[R(0, 7.0), R(1, 5.5), R(2, 5.0), R(3, 6.4), R(4, 6.6)]);
        assert_eq!(
            got,
            vec![
                fired(1, 1, 5.5),
                resolved(4, 1, 5.0, (5.5 + 5.0 + 6.4) / 3.0)
            ]
        );
    }

    #[test]
    fn emission_limits_are_not_to_exceed_values_at_the_limit_comply() {
        let p = ThresholdParams::new(Comparison::Above, 35.0, 35.0, 0, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let got = run(p, &[R(0, 35.0), R(1, 35.1), R(2, 35.0)]);
        assert_eq!(got, vec![fired(1, 1, 35.1), resolved(2, 1, 35.1, 35.1)]);
        let p = ThresholdParams::new(Comparison::Below, 6.0, 6.0, 0, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let got = run(p, &[R(0, 6.0), R(1, 5.9), R(2, 6.0)]);
        assert_eq!(got, vec![fired(1, 1, 5.9), resolved(2, 1, 5.9, 5.9)]);
    }

    #[test]
    fn impossible_parameters_are_refused() {
        assert!(ThresholdParams::new(Comparison::AtOrAbove, 1.5, 2.0, 0, 1).is_err());
        assert!(ThresholdParams::new(Comparison::AtOrBelow, 6.0, 5.0, 0, 1).is_err());
        assert!(ThresholdParams::new(Comparison::AtOrAbove, f64::NAN, 1.0, 0, 1).is_err());
        assert!(ThresholdParams::new(Comparison::AtOrAbove, 1.0, 1.0, -1, 1).is_err());
    }
}
