//! Rate-limited logging of per-input conditions (late inputs, ...): one line per interval with
//! the count since the last line, so a flood of bad inputs cannot flood the log.

use std::time::{Duration, Instant};

/// How often a per-input condition is logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts occurrences and says when a line is due.
#[derive(Debug)]
pub struct RateLimited {
    every: Duration,
    last: Option<Instant>,
    pending: u64,
}

impl RateLimited {
    /// At most one line every `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            pending: 0,
        }
    }

    /// Count `n` occurrences at `now`; returns how many to report if a line is due now (the
    /// first occurrence is reported at once, later ones once `every` has passed).
    pub fn note(&mut self, n: u64, now: Instant) -> Option<u64> {
        self.pending += n;
        let due = self
            .last
            .is_none_or(|last| now.duration_since(last) >= self.every);
        if !due || self.pending == 0 {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gives_one_line_per_interval_with_its_count() {
        let mut limit = RateLimited::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.note(1, t0), Some(1), "the first is reported at once");
        let mut lines = Vec::new();
        for ms in (100..=25_000).step_by(100) {
            if let Some(n) = limit.note(1, t0 + Duration::from_millis(ms)) {
                lines.push((ms, n));
            }
        }
        assert_eq!(lines, [(10_000, 100), (20_000, 100)]);
        assert_eq!(limit.note(0, t0 + Duration::from_secs(40)), Some(50));
        assert_eq!(limit.note(0, t0 + Duration::from_secs(60)), None);
    }
}
