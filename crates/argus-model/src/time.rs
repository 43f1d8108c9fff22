//! Timestamps: UTC milliseconds since the Unix epoch, with the civil-calendar arithmetic needed to
//! format them and to find the natural hour or day in China Standard Time (UTC+8).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Offset of China Standard Time from UTC, in seconds. Regulatory hours and days (hourly and
/// daily averages of HJ 212 data) are natural hours and days in this zone.
pub const CHINA_OFFSET_SECS: i64 = 8 * 3600;

const MS_PER_SEC: i64 = 1_000;
const MS_PER_HOUR: i64 = 3_600 * MS_PER_SEC;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// An instant in UTC, as milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// A civil date and time of day, without a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilDateTime {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millisecond: u16,
}

impl Timestamp {
    /// The instant as milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Convert a system time (say `SystemTime::now()`, read by the caller: this crate reads no
    /// clock) to a timestamp, saturating outside the representable range.
    pub fn from_system_time(time: std::time::SystemTime) -> Self {
        let ms = match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        };
        Self(ms)
    }

    /// Build an instant from a civil date and time in UTC plus a fixed offset in seconds
    /// (`+28800` for China Standard Time). Returns `None` for an impossible date or time.
    pub fn from_civil(dt: CivilDateTime, offset_secs: i64) -> Option<Self> {
        let valid = (1..=12).contains(&dt.month)
            && dt.day >= 1
            && dt.day <= days_in_month(dt.year, dt.month)
            && dt.hour < 24
            && dt.minute < 60
            && dt.second < 60
            && dt.millisecond < 1000;
        if !valid {
            return None;
        }
        let days = days_from_civil(dt.year, dt.month, dt.day);
        let secs = days * 86_400
            + i64::from(dt.hour) * 3_600
            + i64::from(dt.minute) * 60
            + i64::from(dt.second)
            - offset_secs;
        Some(Self(secs * MS_PER_SEC + i64::from(dt.millisecond)))
    }

    /// The civil date and time of this instant seen at a fixed offset from UTC.
    pub fn to_civil(self, offset_secs: i64) -> CivilDateTime {
        let local_ms = self.0 + offset_secs * MS_PER_SEC;
        let days = local_ms.div_euclid(MS_PER_DAY);
        let ms_of_day = local_ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // ms_of_day < 86_400_000, so every part below fits its type.
        let secs_of_day = ms_of_day / MS_PER_SEC;
        CivilDateTime {
            year,
            month,
            day,
            hour: (secs_of_day / 3_600) as u8,
            minute: (secs_of_day % 3_600 / 60) as u8,
            second: (secs_of_day % 60) as u8,
            millisecond: (ms_of_day % MS_PER_SEC) as u16,
        }
    }

    /// Start of the natural hour (UTC+8) that contains this instant. China has no daylight
    /// saving and its offset is whole hours, so this is also the UTC hour start.
    pub fn china_hour_start(self) -> Self {
        Self(self.0.div_euclid(MS_PER_HOUR) * MS_PER_HOUR)
    }

    /// Start of the natural day (00:00 UTC+8) that contains this instant, as a UTC instant.
    pub fn china_day_start(self) -> Self {
        let offset_ms = CHINA_OFFSET_SECS * MS_PER_SEC;
        Self((self.0 + offset_ms).div_euclid(MS_PER_DAY) * MS_PER_DAY - offset_ms)
    }

    /// The instant `ms` milliseconds later (saturating).
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-26T06:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }

    /// Parse an RFC 3339 date-time with an explicit offset: `2026-11-26T14:00:00+08:00`,
    /// `2026-11-26T06:00:00.250Z`. A space may stand for the `T`; fractions beyond milliseconds
    /// are truncated. Returns `None` for anything else, including a missing offset.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            let digits = b.get(range)?;
            digits.iter().try_fold(0_u32, |acc, &d| {
                d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
            })
        };
        let year = i32::try_from(num(0..4)?).ok()?;
        let (month, day) = (
            u8::try_from(num(5..7)?).ok()?,
            u8::try_from(num(8..10)?).ok()?,
        );
        let (hour, minute) = (
            u8::try_from(num(11..13)?).ok()?,
            u8::try_from(num(14..16)?).ok()?,
        );
        let second = u8::try_from(num(17..19)?).ok()?;
        let mut i = 19;
        let mut millisecond = 0_u16;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            i = start;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
            let mut ms = 0_u16;
            for k in 0..3 {
                let digit = b
                    .get(start + k)
                    .filter(|_| start + k < i)
                    .map_or(0, |d| u16::from(d - b'0'));
                ms = ms * 10 + digit;
            }
            millisecond = ms;
        }
        let offset_secs = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let hours = i64::from(num(i + 1..i + 3)?);
                let minutes = i64::from(num(i + 4..i + 6)?);
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let secs = hours * 3_600 + minutes * 60;
                if *sign == b'-' {
                    -secs
                } else {
                    secs
                }
            }
            _ => return None,
        };
        let civil = CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millisecond,
        };
        Self::from_civil(civil, offset_secs)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.to_civil(0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.millisecond
        )
    }
}

/// Whether `year` is a leap year in the proleptic Gregorian calendar.
pub const fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` (1-12) of `year`; 0 for a month out of range.
pub const fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn civil(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> CivilDateTime {
        CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millisecond: 0,
        }
    }

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(
            Timestamp::from_civil(civil(1970, 1, 1, 0, 0, 0), 0),
            Some(Timestamp(0))
        );
        // 2026-11-26T14:00:00+08:00 == 2026-11-26T06:00:00Z == 1795672800 s.
        let t = Timestamp::from_civil(civil(2026, 11, 26, 14, 0, 0), CHINA_OFFSET_SECS);
        assert_eq!(t, Some(Timestamp(1_795_672_800_000)));
        assert_eq!(
            Timestamp(1_795_672_800_000).to_string(),
            "2026-11-26T06:00:00.000Z"
        );
    }

    #[test]
    fn civil_round_trip_across_leap_days_and_before_epoch() {
        for ms in [
            -86_400_001_i64,
            -1,
            0,
            951_782_400_000,
            1_709_164_800_123,
            4_107_542_399_999,
        ] {
            let t = Timestamp(ms);
            assert_eq!(
                Timestamp::from_civil(t.to_civil(CHINA_OFFSET_SECS), CHINA_OFFSET_SECS),
                Some(t)
            );
        }
        assert_eq!(Timestamp(951_782_400_000).to_civil(0).day, 29); // 2000-02-29
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        let utc = Some(Timestamp(1_795_672_800_000));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-26T06:00:00Z"), utc);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-26T14:00:00+08:00"), utc);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-26 05:30:00-00:30"), utc);
        let frac = Timestamp::parse_rfc3339("2026-11-26T06:00:00.25Z");
        assert_eq!(frac, Some(Timestamp(1_795_672_800_250)));
        let nanos = Timestamp::parse_rfc3339("2026-11-26T06:00:00.123456789Z");
        assert_eq!(nanos, Some(Timestamp(1_795_672_800_123)));
        for bad in [
            "2026-11-26T06:00:00",
            "2026-11-26",
            "2026-02-30T00:00:00Z",
            "2026-11-26T06:00:00.Z",
            "x",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(Timestamp::parse_rfc3339("2026-11-26T06:00:00+24:00"), None);
    }

    #[test]
    fn system_times_convert_on_both_sides_of_the_epoch() {
        use std::time::{Duration, UNIX_EPOCH};
        let after = UNIX_EPOCH + Duration::from_millis(1_795_672_800_123);
        assert_eq!(
            Timestamp::from_system_time(after),
            Timestamp(1_795_672_800_123)
        );
        let before = UNIX_EPOCH - Duration::from_millis(1_500);
        assert_eq!(Timestamp::from_system_time(before), Timestamp(-1_500));
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert_eq!(Timestamp::from_civil(civil(2026, 2, 29, 0, 0, 0), 0), None);
        assert_eq!(Timestamp::from_civil(civil(2026, 13, 1, 0, 0, 0), 0), None);
        assert_eq!(Timestamp::from_civil(civil(2026, 1, 1, 24, 0, 0), 0), None);
    }

    #[test]
    fn china_day_starts_at_local_midnight() {
        // 2026-11-26T15:59:59Z is 23:59:59 local on the 26th; one second later is the 27th.
        let before =
            Timestamp::from_civil(civil(2026, 11, 26, 15, 59, 59), 0).unwrap_or(Timestamp(0));
        let local_midnight = Timestamp::from_civil(civil(2026, 11, 26, 0, 0, 0), CHINA_OFFSET_SECS);
        assert_eq!(Some(before.china_day_start()), local_midnight);
        let after = before.plus_millis(1_000);
        assert_eq!(after.china_day_start(), after);
        assert_eq!(
            before.china_hour_start().to_civil(CHINA_OFFSET_SECS).hour,
            23
        );
    }
}
