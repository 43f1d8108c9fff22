//! The regulatory average rule: the average of valid data over each natural hour (or day) in
//! China Standard Time, O2-corrected where the standard says so, compared with its limit when
//! the window closes on the watermark. A window with too little valid data is reported as
//! insufficient (its own alert kind), never as compliant.

use argus_model::{AlertKind, Reading, Timestamp};

use crate::episode::Episode;
use crate::Transition;

const HOUR_MS: i64 = 3_600_000;
/// At most this many empty windows are closed in one step (a watermark that jumps years would
/// otherwise produce millions); later steps close the rest.
const MAX_WINDOWS_PER_STEP: usize = 24 * 31;

/// The regulatory period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Period {
    /// Natural hour (UTC+8; China's offset is whole hours, so UTC hours too).
    Hour,
    /// Natural day, 00:00 to 24:00 UTC+8.
    Day,
}

impl Period {
    fn start_of(self, t: Timestamp) -> Timestamp {
        match self {
            Period::Hour => t.china_hour_start(),
            Period::Day => t.china_day_start(),
        }
    }

    fn length_ms(self) -> i64 {
        match self {
            Period::Hour => HOUR_MS,
            Period::Day => 24 * HOUR_MS,
        }
    }
}

/// Correction of a concentration to the reference O2 of the point's standard:
/// `c * (21 - reference) / (21 - measured)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct O2Correction {
    /// Reference O2 of the standard, in % (6 coal, 3 gas boiler, 15 turbine, 9 industrial boiler).
    pub reference_pct: f64,
    /// Measured O2 at or above this (air ingress, a stopped boiler) makes a value unusable: the
    /// factor would explode near 21 %. HJ 75-2017 practice is 19 %.
    pub max_measured_pct: f64,
    /// The O2 reading used is the latest valid one at most this old at the value's time.
    pub max_age_ms: i64,
}

impl O2Correction {
    /// The corrected value, or `None` when no usable O2 reading is at hand.
    pub fn correct(&self, value: f64, o2: Option<(Timestamp, f64)>, at: Timestamp) -> Option<f64> {
        let (o2_time, measured) = o2?;
        let age = at.as_millis() - o2_time.as_millis();
        if !(0..=self.max_age_ms).contains(&age)
            || !(0.0..self.max_measured_pct).contains(&measured)
        {
            return None;
        }
        Some(value * (21.0 - self.reference_pct) / (21.0 - measured))
    }
}

/// Parameters of an average rule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AverageParams {
    /// The period averaged over.
    pub period: Period,
    /// The limit; an average strictly above it violates.
    pub limit: f64,
    /// Fewest valid values for the average to count (e.g. 45 minute values an hour; 20 hourly
    /// values a day).
    pub min_valid_samples: u32,
    /// O2 correction, for flue gas concentrations judged at a reference O2.
    pub o2: Option<O2Correction>,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Window {
    start: Timestamp,
    sum: f64,
    n: u32,
}

/// The state machine of one average rule on one series (and the O2 series of its point).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Average {
    params: AverageParams,
    current: Option<Window>,
    latest_o2: Option<(Timestamp, f64)>,
    exceeded: Episode,
    insufficient: Episode,
}

impl Average {
    /// A machine that has seen nothing yet; it starts judging windows at its first reading.
    pub fn new(params: AverageParams) -> Self {
        Self {
            params,
            current: None,
            latest_o2: None,
            exceeded: Episode::reporting_updates(),
            insufficient: Episode::default(),
        }
    }

    /// Take an O2 reading of the same point (in event-time order with the other readings).
    pub fn on_o2(&mut self, reading: &Reading) {
        if reading.is_valid() {
            self.latest_o2 = Some((reading.event_time, reading.value));
        }
    }

    /// Take a reading of the averaged metric (in event-time order). Windows before its window
    /// are closed first.
    pub fn on_reading(&mut self, reading: &Reading, out: &mut Vec<(AlertKind, Transition)>) {
        let start = self.params.period.start_of(reading.event_time);
        self.close_before(start, out);
        let window = self.current.get_or_insert(Window {
            start,
            sum: 0.0,
            n: 0,
        });
        if !reading.is_valid() {
            return;
        }
        let value = match &self.params.o2 {
            Some(o2) => o2.correct(reading.value, self.latest_o2, reading.event_time),
            None => Some(reading.value),
        };
        if let Some(value) = value {
            window.sum += value;
            window.n += 1;
        }
    }

    /// Event time has reached `watermark`: every window that ended by then is judged, empty
    /// ones included (as insufficient).
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        let start = self.params.period.start_of(watermark);
        self.close_before(start, out);
    }

    /// Judge every window that starts before `start`, and open the window at `start`.
    fn close_before(&mut self, start: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        let length = self.params.period.length_ms();
        for _ in 0..MAX_WINDOWS_PER_STEP {
            let Some(window) = self.current else { return };
            if window.start >= start {
                return;
            }
            self.judge(window, out);
            self.current = Some(Window {
                start: window.start.plus_millis(length),
                sum: 0.0,
                n: 0,
            });
        }
    }

    fn judge(&mut self, window: Window, out: &mut Vec<(AlertKind, Transition)>) {
        let p = self.params;
        let sufficient = window.n >= p.min_valid_samples.max(1);
        if let Some(t) = self
            .insufficient
            .window(window.start, !sufficient, f64::from(window.n))
        {
            out.push((AlertKind::InsufficientData, t));
        }
        if sufficient {
            let average = window.sum / f64::from(window.n);
            if let Some(t) = self
                .exceeded
                .window(window.start, average > p.limit, average)
            {
                out.push((AlertKind::Average, t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use argus_model::time::{CivilDateTime, CHINA_OFFSET_SECS};
    use argus_model::{DataFlag, Metric, MetricCode, SourceId};

    use super::*;

    /// 2026-11-26 at `hour:minute` China time, as UTC.
    fn local(hour: u8, minute: u8) -> Timestamp {
        let civil = CivilDateTime {
            year: 2026,
            month: 11,
            day: 26,
            hour,
            minute,
            second: 0,
            millisecond: 0,
        };
        Timestamp::from_civil(civil, CHINA_OFFSET_SECS).unwrap_or_else(|| panic!("bad time"))
    }

    fn reading(metric: Metric, at: Timestamp, value: f64, flag: DataFlag) -> Reading {
        Reading {
            source: SourceId::new("15010201000101"),
            metric: MetricCode::Known(metric),
            value,
            flag,
            event_time: at,
            receive_time: at,
        }
    }

    fn hourly(limit: f64, min: u32) -> AverageParams {
        AverageParams {
            period: Period::Hour,
            limit,
            min_valid_samples: min,
            o2: None,
        }
    }

    /// Feed one SO2 value per minute of local hour `hour` (flag N), `value(minute)`.
    fn feed_hour(
        m: &mut Average,
        hour: u8,
        value: impl Fn(u8) -> f64,
        out: &mut Vec<(AlertKind, Transition)>,
    ) {
        for minute in 0..60 {
            m.on_reading(
                &reading(Metric::So2, local(hour, minute), value(minute), DataFlag::N),
                out,
            );
        }
    }

    #[test]
    fn hourly_average_fires_at_hour_close_and_resolves_on_a_compliant_hour() {
        let mut m = Average::new(hourly(35.0, 45));
        let mut out = Vec::new();
        feed_hour(&mut m, 9, |_| 30.0, &mut out);
        // Spikes to 100 for 10 minutes do not matter: the hourly average is what is limited.
        feed_hour(
            &mut m,
            10,
            |min| if min < 10 { 100.0 } else { 30.0 },
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // The 10:00 window (avg 41.67) is judged when the watermark reaches 11:00 local.
        m.on_watermark(local(11, 0), &mut out);
        let avg = (10.0 * 100.0 + 50.0 * 30.0) / 60.0;
        assert_eq!(
            out,
            vec![(
                AlertKind::Average,
                Transition::Fired {
                    started_at: local(10, 0),
                    value: avg
                }
            )]
        );
        out.clear();
        // A worse hour (more than 10 % above the reported average) updates the alert; a
        // slightly better one does not.
        feed_hour(&mut m, 11, |_| 50.0, &mut out);
        feed_hour(&mut m, 12, |_| 45.0, &mut out);
        m.on_watermark(local(13, 0).plus_millis(1), &mut out);
        let updated = Transition::Updated {
            started_at: local(10, 0),
            value: 50.0,
        };
        assert_eq!(out, vec![(AlertKind::Average, updated)]);
        out.clear();
        feed_hour(&mut m, 13, |_| 20.0, &mut out);
        m.on_watermark(local(14, 0).plus_millis(1), &mut out);
        let resolved = Transition::Resolved {
            started_at: local(10, 0),
            ended_at: local(13, 0),
            peak: 50.0,
            mean: (avg + 50.0 + 45.0) / 3.0,
        };
        assert_eq!(out, vec![(AlertKind::Average, resolved)]);
    }

    #[test]
    fn hours_are_natural_hours_of_china_time() {
        // 23:59 local on the 26th and 00:00 local on the 27th fall in different windows.
        let mut m = Average::new(AverageParams {
            period: Period::Day,
            limit: 10.0,
            min_valid_samples: 1,
            o2: None,
        });
        let mut out = Vec::new();
        m.on_reading(
            &reading(Metric::So2, local(23, 59), 50.0, DataFlag::N),
            &mut out,
        );
        m.on_reading(
            &reading(
                Metric::So2,
                local(23, 59).plus_millis(60_000),
                1.0,
                DataFlag::N,
            ),
            &mut out,
        );
        let day_start = local(0, 0);
        assert_eq!(
            out,
            vec![(
                AlertKind::Average,
                Transition::Fired {
                    started_at: day_start,
                    value: 50.0
                }
            )]
        );
        assert_eq!(
            day_start.to_civil(0).hour,
            16,
            "local midnight is 16:00 UTC the day before"
        );
    }

    #[test]
    fn invalid_flags_are_excluded_and_too_little_valid_data_is_insufficient_not_compliant() {
        let mut m = Average::new(hourly(35.0, 45));
        let mut out = Vec::new();
        // 40 minutes of maintenance-flagged zeros and 20 valid minutes at 30: only 20 valid.
        for minute in 0..60 {
            let flag = if minute < 40 {
                DataFlag::M
            } else {
                DataFlag::N
            };
            let value = if minute < 40 { 0.0 } else { 30.0 };
            m.on_reading(
                &reading(Metric::So2, local(9, minute), value, flag),
                &mut out,
            );
        }
        // Then nothing at all for two hours: empty windows are insufficient too.
        m.on_watermark(local(12, 0), &mut out);
        assert_eq!(
            out,
            vec![(
                AlertKind::InsufficientData,
                Transition::Fired {
                    started_at: local(9, 0),
                    value: 20.0
                }
            )]
        );
        out.clear();
        feed_hour(&mut m, 12, |_| 30.0, &mut out);
        m.on_watermark(local(13, 0), &mut out);
        let resolved = Transition::Resolved {
            started_at: local(9, 0),
            ended_at: local(12, 0),
            peak: 20.0,
            mean: 20.0 / 3.0,
        };
        assert_eq!(out, vec![(AlertKind::InsufficientData, resolved)]);
        // A 40-flagged-minute hour never counted as a compliant average: no Average transitions.
    }

    #[test]
    fn o2_correction_uses_the_points_o2_and_guards_near_21_percent() {
        let o2 = O2Correction {
            reference_pct: 6.0,
            max_measured_pct: 19.0,
            max_age_ms: 120_000,
        };
        // 30 mg/m3 at 9 % O2 is 30 * 15 / 12 = 37.5 at 6 %: over the 35 limit.
        assert_eq!(
            o2.correct(30.0, Some((local(9, 0), 9.0)), local(9, 0)),
            Some(37.5)
        );
        assert_eq!(
            o2.correct(30.0, Some((local(9, 0), 19.5)), local(9, 0)),
            None,
            "near 21 %"
        );
        assert_eq!(
            o2.correct(30.0, Some((local(9, 0), 9.0)), local(9, 5)),
            None,
            "stale O2"
        );
        assert_eq!(o2.correct(30.0, None, local(9, 0)), None);

        let mut m = Average::new(AverageParams {
            o2: Some(o2),
            ..hourly(35.0, 45)
        });
        let mut out = Vec::new();
        for minute in 0..60 {
            m.on_o2(&reading(Metric::Oxygen, local(9, minute), 9.0, DataFlag::N));
            m.on_reading(
                &reading(Metric::So2, local(9, minute), 30.0, DataFlag::N),
                &mut out,
            );
        }
        m.on_watermark(local(10, 0), &mut out);
        assert_eq!(
            out,
            vec![(
                AlertKind::Average,
                Transition::Fired {
                    started_at: local(9, 0),
                    value: 37.5
                }
            )]
        );
        // Uncorrected, the same hour is compliant.
        let mut plain = Average::new(hourly(35.0, 45));
        let mut out = Vec::new();
        feed_hour(&mut plain, 9, |_| 30.0, &mut out);
        plain.on_watermark(local(10, 0), &mut out);
        assert!(out.is_empty());
    }
}
