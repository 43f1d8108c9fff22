//! The regulatory average rule: the average of valid data over each natural hour (or day) in
//! China Standard Time, O2-corrected where the standard says so, compared with its limit when
//! the window closes on the watermark. A window with too little valid data is reported as
//! insufficient (its own alert kind), never as compliant. A data logger's own hourly value
//! (HJ 212 CN 2061), when it sends one, is the hour's regulatory value.

use argus_model::{AlertKind, DataFlag, Interval, Reading, Timestamp};

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
    /// Fewest valid values for the average to count: minute values for an hour (a minute with
    /// at least one valid reading; 45 under HJ 75), hourly values for a day (20).
    pub min_valid_samples: u32,
    /// For a daily average, fewest valid minute values for one of its hours to be a valid
    /// hourly value (45); unused for an hourly average.
    pub min_valid_minutes: u32,
    /// O2 correction, for flue gas concentrations judged at a reference O2.
    pub o2: Option<O2Correction>,
}

/// One natural hour of a series: the sum and count of its valid values, and which of its
/// minutes have a valid value, or a stopped one (flag F) and none valid.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Hour {
    start: Timestamp,
    sum: f64,
    n: u32,
    /// Bit m: minute m has a valid value.
    valid_minutes: u64,
    /// Bit m: minute m has a reading flagged stopped (F).
    stopped_minutes: u64,
    /// The data logger's own hourly value of this hour, if it sent a usable one.
    logger: Option<LoggerHour>,
}

/// A data logger's hourly value (CN 2061): the regulatory value of its hour.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
enum LoggerHour {
    /// A valid value (flag N), O2-corrected where the rule corrects.
    Valid(f64),
    /// The logger marks the hour stopped (flag F).
    Stopped,
}

impl Hour {
    fn new(start: Timestamp) -> Self {
        Self {
            start,
            sum: 0.0,
            n: 0,
            valid_minutes: 0,
            stopped_minutes: 0,
            logger: None,
        }
    }

    fn minute_bit(&self, at: Timestamp) -> u64 {
        let minute = (at.as_millis() - self.start.as_millis()).clamp(0, HOUR_MS - 1) / 60_000;
        1 << minute
    }

    /// Valid minutes, and minutes stopped with no valid value.
    fn minutes(&self) -> (u32, u32) {
        (
            self.valid_minutes.count_ones(),
            (self.stopped_minutes & !self.valid_minutes).count_ones(),
        )
    }

    /// The logger's own valid hourly value, when it sent one, else the average of the hour's
    /// valid values if it has enough valid minutes.
    fn judge(&self, min_valid_minutes: u32) -> Outcome {
        match self.logger {
            Some(LoggerHour::Valid(value)) => return Outcome::Valid(value),
            Some(LoggerHour::Stopped) => return Outcome::Stopped,
            None => {}
        }
        let (valid, stopped) = self.minutes();
        Outcome::of(valid, stopped, 60, min_valid_minutes, || {
            self.sum / f64::from(self.n)
        })
    }
}

/// What a window (an hour, or a day of hours) comes to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Enough valid values: their average is judged against the limit.
    Valid(f64),
    /// The facility stopped for the whole window (flag F): neither judged nor insufficient.
    Stopped,
    /// Too few valid values for the time it ran: the count of valid values.
    Insufficient(u32),
}

impl Outcome {
    /// `valid` and `stopped` units (minutes, hours) of `total`: stopped time does not count as
    /// expected, so the fewest valid units needed shrink in proportion to the time it ran
    /// (`min_valid` of `total` when it never stopped).
    fn of(
        valid: u32,
        stopped: u32,
        total: u32,
        min_valid: u32,
        average: impl FnOnce() -> f64,
    ) -> Self {
        let running = total.saturating_sub(stopped);
        let needed =
            (u64::from(min_valid.max(1)) * u64::from(running)).div_ceil(u64::from(total.max(1)));
        if valid == 0 && running == 0 {
            Outcome::Stopped
        } else if valid > 0 && u64::from(valid) >= needed {
            Outcome::Valid(average())
        } else {
            Outcome::Insufficient(valid)
        }
    }
}

/// The window being filled: its current hour and, for a day, what its earlier hours came to.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Window {
    start: Timestamp,
    hour: Hour,
    /// Sum of the valid hourly averages of the day's closed hours.
    hours_sum: f64,
    /// Valid hours among the day's closed hours.
    hours_valid: u32,
    /// Stopped hours among the day's closed hours.
    hours_stopped: u32,
}

impl Window {
    fn new(start: Timestamp) -> Self {
        Self {
            start,
            hour: Hour::new(start),
            hours_sum: 0.0,
            hours_valid: 0,
            hours_stopped: 0,
        }
    }

    /// A day's hour is over: count what it came to and start the hour at `next`.
    fn close_hour(&mut self, min_valid_minutes: u32, next: Timestamp) {
        match self.hour.judge(min_valid_minutes) {
            Outcome::Valid(average) => {
                self.hours_sum += average;
                self.hours_valid += 1;
            }
            Outcome::Stopped => self.hours_stopped += 1,
            Outcome::Insufficient(_) => {}
        }
        self.hour = Hour::new(next);
    }
}

/// The state machine of one average rule on one series (and the O2 series of its point).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Average {
    params: AverageParams,
    current: Option<Window>,
    latest_o2: Option<(Timestamp, f64)>,
    /// The logger's hourly O2 value of an hour (its start), for correcting its hourly values.
    logger_o2: Option<(Timestamp, f64)>,
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
            logger_o2: None,
            exceeded: Episode::reporting_updates(),
            insufficient: Episode::default(),
        }
    }

    /// Take an O2 reading of the same point (in `available_at` order with the other readings):
    /// a real-time one, or the logger's hourly value.
    pub fn on_o2(&mut self, reading: &Reading) {
        if !reading.is_valid() {
            return;
        }
        match reading.interval {
            Interval::RealTime => self.latest_o2 = Some((reading.event_time, reading.value)),
            Interval::Hour => self.logger_o2 = Some((reading.event_time, reading.value)),
            Interval::Minute | Interval::Day => {}
        }
    }

    /// Take a reading of the averaged metric (in `available_at` order): a real-time value, or
    /// the logger's hourly value (minute and daily values are not averaged). Windows before its
    /// window are closed first. A real-time value counts where its minute is: a minute with
    /// several valid values is one minute value.
    pub fn on_reading(&mut self, reading: &Reading, out: &mut Vec<(AlertKind, Transition)>) {
        match reading.interval {
            Interval::RealTime => self.on_real_time(reading, out),
            Interval::Hour => self.on_logger_hour(reading, out),
            Interval::Minute | Interval::Day => {}
        }
    }

    /// The window being filled at `at`, opened at its hour if there is none.
    fn window_at(&mut self, at: Timestamp) -> &mut Window {
        let start = self.params.period.start_of(at);
        self.current.get_or_insert_with(|| {
            let mut w = Window::new(start);
            w.hour = Hour::new(at.china_hour_start());
            w
        })
    }

    /// The logger's hourly value, taken at the end of its hour: valid (corrected with its own
    /// ZsAvg, or by Argus with the logger's hourly O2, or the latest O2), it is the hour's
    /// value; flagged stopped, the hour is stopped; otherwise Argus's own minutes judge it.
    fn on_logger_hour(&mut self, reading: &Reading, out: &mut Vec<(AlertKind, Transition)>) {
        let at = reading.available_at();
        self.advance(at, out);
        let value = match (reading.flag, &self.params.o2) {
            (DataFlag::F, _) => Some(LoggerHour::Stopped),
            (DataFlag::N, None) => Some(LoggerHour::Valid(reading.value)),
            (DataFlag::N, Some(o2)) => reading
                .corrected
                .or_else(|| {
                    let o2_at = match self.logger_o2 {
                        Some((start, value)) if start == reading.event_time => Some((at, value)),
                        _ => self.latest_o2,
                    };
                    o2.correct(reading.value, o2_at, at)
                })
                .map(LoggerHour::Valid),
            _ => None,
        };
        let hour = &mut self.window_at(at).hour;
        if hour.start == reading.event_time && value.is_some() {
            hour.logger = value;
        }
    }

    fn on_real_time(&mut self, reading: &Reading, out: &mut Vec<(AlertKind, Transition)>) {
        let at = reading.event_time;
        self.advance(at, out);
        let o2 = self.params.o2;
        let latest_o2 = self.latest_o2;
        let hour = &mut self.window_at(at).hour;
        let bit = hour.minute_bit(at);
        if reading.flag == argus_model::DataFlag::F {
            hour.stopped_minutes |= bit;
        }
        if !reading.is_valid() {
            return;
        }
        let value = match &o2 {
            Some(o2) => o2.correct(reading.value, latest_o2, at),
            None => Some(reading.value),
        };
        if let Some(value) = value {
            hour.sum += value;
            hour.n += 1;
            hour.valid_minutes |= bit;
        }
    }

    /// Event time has reached `watermark`: every window that ended by then is judged, empty
    /// ones included (as insufficient).
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        self.advance(watermark, out);
    }

    /// Judge every window that ends by `at`, and, within a day, close its hours that end by
    /// `at`.
    fn advance(&mut self, at: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        let start = self.params.period.start_of(at);
        self.close_before(start, out);
        let min_minutes = self.params.min_valid_minutes;
        if let (Period::Day, Some(window)) = (self.params.period, self.current.as_mut()) {
            let hour_start = at.china_hour_start();
            if window.hour.start < hour_start {
                window.close_hour(min_minutes, hour_start);
            }
        }
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
            self.current = Some(Window::new(window.start.plus_millis(length)));
        }
    }

    fn judge(&mut self, mut window: Window, out: &mut Vec<(AlertKind, Transition)>) {
        let p = self.params;
        let outcome = match p.period {
            Period::Hour => window.hour.judge(p.min_valid_samples),
            Period::Day => {
                window.close_hour(p.min_valid_minutes, window.start);
                Outcome::of(
                    window.hours_valid,
                    window.hours_stopped,
                    24,
                    p.min_valid_samples,
                    || window.hours_sum / f64::from(window.hours_valid),
                )
            }
        };
        let (insufficient, valid) = match outcome {
            Outcome::Insufficient(n) => (true, n),
            Outcome::Valid(_) | Outcome::Stopped => (false, 0),
        };
        if let Some(t) = self
            .insufficient
            .window(window.start, insufficient, f64::from(valid))
        {
            out.push((AlertKind::InsufficientData, t));
        }
        if let Outcome::Valid(average) = outcome {
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
            interval: Default::default(),
            corrected: None,
        }
    }

    fn hourly(limit: f64, min: u32) -> AverageParams {
        AverageParams {
            period: Period::Hour,
            limit,
            min_valid_samples: min,
            min_valid_minutes: 45,
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
            min_valid_minutes: 1,
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
        assert_eq!(out, insufficient(local(9, 0), 20.0));
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

    fn daily(limit: f64, min_hours: u32) -> AverageParams {
        AverageParams {
            period: Period::Day,
            limit,
            min_valid_samples: min_hours,
            min_valid_minutes: 45,
            o2: None,
        }
    }

    /// 2026-11-26 + `day` days at `hour:minute` China time.
    fn on_day(day: i64, hour: u8, minute: u8) -> Timestamp {
        local(hour, minute).plus_millis(day * 86_400_000)
    }

    /// One `insufficient_data` alert fired for the window starting at `started_at`.
    fn insufficient(started_at: Timestamp, valid: f64) -> Vec<(AlertKind, Transition)> {
        let fired = Transition::Fired {
            started_at,
            value: valid,
        };
        vec![(AlertKind::InsufficientData, fired)]
    }

    #[test]
    fn a_day_is_the_mean_of_its_valid_hours_and_needs_20_of_them() {
        // 20 full hours: 10 at 40, 10 at 60 (minute values every 30 s, so 120 values an hour),
        // and one hour of 30 minutes at 500 (too few minutes: not a valid hour, not averaged).
        let mut m = Average::new(daily(45.0, 20));
        let mut out = Vec::new();
        for hour in 0..21u8 {
            for half_minute in 0..120i64 {
                let at = on_day(0, hour, 0).plus_millis(half_minute * 30_000);
                let value = match hour {
                    0..=9 => 40.0,
                    10..=19 => 60.0,
                    _ if half_minute < 60 => 500.0,
                    _ => continue,
                };
                m.on_reading(&reading(Metric::So2, at, value, DataFlag::N), &mut out);
            }
        }
        m.on_watermark(on_day(1, 0, 0), &mut out);
        // The mean of 20 hourly values (50), not of 2,460 readings (62.2).
        assert_eq!(
            out,
            vec![(
                AlertKind::Average,
                Transition::Fired {
                    started_at: on_day(0, 0, 0),
                    value: 50.0
                }
            )]
        );
        // A day with 19 valid hours is insufficient, whatever its minute values.
        let mut m = Average::new(daily(45.0, 20));
        let mut out = Vec::new();
        for hour in 0..19u8 {
            feed_hour(&mut m, hour, |_| 60.0, &mut out);
        }
        m.on_watermark(on_day(1, 0, 0), &mut out);
        assert_eq!(out, insufficient(on_day(0, 0, 0), 19.0));
    }

    #[test]
    fn minutes_count_once_however_many_values_they_hold() {
        // 40 minutes, each with three values: 40 minute values, not 120.
        let mut m = Average::new(hourly(35.0, 45));
        let mut out = Vec::new();
        for minute in 0..40u8 {
            for k in 0..3 {
                let at = local(9, minute).plus_millis(k * 10_000);
                m.on_reading(&reading(Metric::So2, at, 10.0, DataFlag::N), &mut out);
            }
        }
        m.on_watermark(local(10, 0), &mut out);
        assert_eq!(out, insufficient(local(9, 0), 40.0));
    }

    #[test]
    fn stopped_time_is_not_expected() {
        let mut m = Average::new(hourly(35.0, 45));
        let mut out = Vec::new();
        // Two hours flagged F throughout: stopped, neither insufficient nor judged.
        for hour in 9..11u8 {
            for minute in 0..60 {
                let r = reading(Metric::So2, local(hour, minute), 0.0, DataFlag::F);
                m.on_reading(&r, &mut out);
            }
        }
        // Then 20 stopped minutes and 40 valid ones at 50: judged on the 40 it ran (30 needed).
        for minute in 0..60 {
            let flag = if minute < 20 {
                DataFlag::F
            } else {
                DataFlag::N
            };
            let r = reading(Metric::So2, local(11, minute), 50.0, flag);
            m.on_reading(&r, &mut out);
        }
        // And 10 stopped, 30 valid, 20 missing: 38 needed for the 50 minutes it ran.
        for minute in 0..40 {
            let flag = if minute < 10 {
                DataFlag::F
            } else {
                DataFlag::N
            };
            let r = reading(Metric::So2, local(12, minute), 20.0, flag);
            m.on_reading(&r, &mut out);
        }
        m.on_watermark(local(13, 0), &mut out);
        assert_eq!(
            out,
            vec![
                (
                    AlertKind::Average,
                    Transition::Fired {
                        started_at: local(11, 0),
                        value: 50.0
                    }
                ),
                (
                    AlertKind::InsufficientData,
                    Transition::Fired {
                        started_at: local(12, 0),
                        value: 30.0
                    }
                ),
            ]
        );
    }
}
