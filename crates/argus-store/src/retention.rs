//! Retention by month: which months of readings are older than the configured number of
//! months to keep (pure: the stores drop them).

use argus_model::Timestamp;

/// The month (YYYYMM, UTC) of a time.
pub fn month_of(t: Timestamp) -> u32 {
    let c = t.to_civil(0);
    u32::try_from(i64::from(c.year) * 100 + i64::from(c.month)).unwrap_or(0)
}

/// The first month to keep when keeping `months` months (the current one included) at `now`:
/// the readings of earlier months are dropped. `months` is at least 1.
pub fn first_month_kept(now: Timestamp, months: u32) -> u32 {
    let current = month_of(now);
    let index = i64::from(current / 100) * 12 + i64::from(current % 100 - 1);
    let first = index - i64::from(months.max(1) - 1);
    u32::try_from(first.div_euclid(12) * 100 + first.rem_euclid(12) + 1).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_current_month_and_the_ones_before_it() {
        let now = Timestamp(1_795_672_800_000); // 2026-11-26T06:00:00Z
        assert_eq!(month_of(now), 202_611);
        assert_eq!(first_month_kept(now, 1), 202_611);
        assert_eq!(first_month_kept(now, 11), 202_601);
        assert_eq!(first_month_kept(now, 12), 202_512);
        assert_eq!(first_month_kept(now, 36), 202_312);
        assert_eq!(first_month_kept(Timestamp(0), 2), 196_912);
    }
}
