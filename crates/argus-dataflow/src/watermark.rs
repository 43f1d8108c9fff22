//! Per-source event-time watermarks for a dataflow input: each source's watermark is the
//! largest event time it has sent minus the allowed lateness; the input's watermark is the
//! smallest of them over the sources still sending, so a source whose clock runs behind is not
//! made late by a faster one, and a source that fell idle (nothing received for a while, in
//! processing time) no longer holds the others back.
//!
//! Processing time is whatever the caller says it is: the wall clock in a live service, the
//! receive times recorded with the input in a replay, so a replay is deterministic.
//!
//! Bounded: sources the rules do not know are tracked up to [`MAX_UNREGISTERED_SOURCES`]; records
//! of further unknown sources are judged against the watermark but leave no state and cannot
//! hold it back (counted, [`Watermarks::take_untracked`]). Registered sources are bounded by the
//! registry.

use std::sync::Arc;

use argus_model::{SourceId, Timestamp};

use argus_rules::fnv::FnvHashMap;
use argus_rules::RuleSet;

use crate::MAX_UNREGISTERED_SOURCES;

/// How a [`Watermarks`] tracker judges lateness and idleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkParams {
    /// How far behind its own newest record a source's record may be and still be judged.
    pub allowed_lateness_ms: i64,
    /// A source with nothing received for this long (processing time) is idle: it no longer
    /// holds the watermark back, until it sends again.
    pub idle_after_ms: i64,
    /// When set, event time follows the clock: it is at least processing time minus this, so a
    /// source whose clock lags (or that sends old data) holds the others back this long at most,
    /// and the watermark moves on while every source is silent (missing-data rules fire). A
    /// record further behind the clock is late. Live service only; a replay of recorded data has
    /// no such clock.
    pub max_delay_ms: Option<i64>,
    /// When set, event time never runs ahead of the clock: the watermark is at most processing
    /// time minus the allowed lateness, and a record further ahead of its arrival than this
    /// skew does not count for its source's watermark at all (it is judged, and counted,
    /// [`Watermarks::take_ahead`]). A reading from the future (a logger's clock an hour fast)
    /// cannot make every other source late. Live service only, like `max_delay_ms`.
    pub max_skew_ms: Option<i64>,
}

/// What a source has shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    newest_event_ms: i64,
    last_arrival_ms: i64,
    registered: bool,
}

/// The watermark of one input, from the event and arrival times of the records it takes.
#[derive(Debug, Clone)]
pub struct Watermarks {
    params: WatermarkParams,
    rules: Arc<RuleSet>,
    sources: FnvHashMap<SourceId, Seen>,
    unregistered: usize,
    watermark_ms: i64,
    now_ms: i64,
    ahead: u64,
    untracked: u64,
}

impl Watermarks {
    /// A tracker that has seen nothing: its watermark is the earliest time. `rules` tell which
    /// sources are registered (the others are tracked up to a bound).
    pub fn new(params: WatermarkParams, rules: Arc<RuleSet>) -> Self {
        Self {
            params,
            rules,
            sources: FnvHashMap::default(),
            unregistered: 0,
            watermark_ms: i64::MIN,
            now_ms: i64::MIN,
            ahead: 0,
            untracked: 0,
        }
    }

    /// Records seen since the last call of sources the rules do not know, beyond
    /// [`MAX_UNREGISTERED_SOURCES`] of them: judged, but not tracked.
    pub fn take_untracked(&mut self) -> u64 {
        std::mem::take(&mut self.untracked)
    }

    /// Records seen since the last call whose event time was further ahead of their arrival
    /// than `max_skew_ms` (judged, but not moving the watermark).
    pub fn take_ahead(&mut self) -> u64 {
        std::mem::take(&mut self.ahead)
    }

    /// The current watermark: every record with an earlier event time is late.
    pub fn watermark(&self) -> Timestamp {
        Timestamp(self.watermark_ms)
    }

    /// Sources currently holding the watermark (not idle).
    pub fn active_sources(&self) -> usize {
        self.sources.len()
    }

    /// Take a record of `source` (none for records about no source) with its event time and
    /// arrival time; returns whether it is on time (at or after the watermark). A late record
    /// still shows its source is alive.
    pub fn admit(
        &mut self,
        source: Option<&SourceId>,
        event_time: Timestamp,
        arrival: Timestamp,
    ) -> bool {
        let (event_ms, arrival_ms) = (event_time.as_millis(), arrival.as_millis());
        self.now_ms = self.now_ms.max(arrival_ms);
        let on_time = event_ms >= self.watermark_ms;
        if let Some(source) = source {
            let ahead = self
                .params
                .max_skew_ms
                .is_some_and(|skew| event_ms > arrival_ms.saturating_add(skew));
            self.ahead += u64::from(ahead);
            let newest_event_ms = if on_time && !ahead {
                event_ms
            } else {
                i64::MIN
            };
            match self.sources.get_mut(source) {
                Some(seen) => {
                    seen.newest_event_ms = seen.newest_event_ms.max(newest_event_ms);
                    seen.last_arrival_ms = seen.last_arrival_ms.max(arrival_ms);
                }
                None => {
                    let registered = self.rules.enterprise_of(source.as_str()).is_some();
                    if !registered {
                        if self.unregistered >= MAX_UNREGISTERED_SOURCES {
                            self.untracked += 1;
                            return on_time;
                        }
                        self.unregistered += 1;
                    }
                    let seen = Seen {
                        newest_event_ms,
                        last_arrival_ms: arrival_ms,
                        registered,
                    };
                    self.sources.insert(source.clone(), seen);
                }
            }
        }
        on_time
    }

    /// Processing time is now `now` (never going back): idle sources are let go and the
    /// watermark moves to the smallest watermark of the sources still sending (bounded by the
    /// clock when `max_delay_ms` is set). Returns the watermark, which never decreases.
    pub fn advance(&mut self, now: Timestamp) -> Timestamp {
        self.now_ms = self.now_ms.max(now.as_millis());
        let idle_before = self.now_ms.saturating_sub(self.params.idle_after_ms);
        self.sources
            .retain(|_, seen| seen.last_arrival_ms >= idle_before);
        self.unregistered = self.sources.values().filter(|s| !s.registered).count();
        let lateness = self.params.allowed_lateness_ms;
        let slowest = self
            .sources
            .values()
            .filter(|seen| seen.newest_event_ms != i64::MIN)
            .map(|seen| seen.newest_event_ms.saturating_sub(lateness))
            .min();
        let floor = self
            .params
            .max_delay_ms
            .map(|delay| self.now_ms.saturating_sub(delay));
        let candidate = match (slowest, floor) {
            (Some(s), Some(f)) => Some(s.max(f)),
            (s, f) => s.or(f),
        };
        // Live, event time trusts no clock ahead of its own.
        let ceiling = self
            .params
            .max_skew_ms
            .map(|_| self.now_ms.saturating_sub(lateness));
        let candidate = match (candidate, ceiling) {
            (Some(c), Some(ceiling)) => Some(c.min(ceiling)),
            (c, _) => c,
        };
        if let Some(candidate) = candidate {
            self.watermark_ms = self.watermark_ms.max(candidate);
        }
        self.watermark()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn params(max_delay_ms: Option<i64>) -> WatermarkParams {
        WatermarkParams {
            allowed_lateness_ms: 5 * MIN,
            idle_after_ms: 10 * MIN,
            max_delay_ms,
            max_skew_ms: None,
        }
    }

    fn source(id: &str) -> SourceId {
        SourceId::from(id)
    }

    fn at(minute: i64) -> Timestamp {
        Timestamp(minute * MIN)
    }

    #[test]
    fn the_slowest_active_source_sets_the_watermark() {
        let mut w = Watermarks::new(params(None), Arc::default());
        let (fast, slow) = (source("FAST"), source("SLOW"));
        // The slow source's clock runs 20 minutes behind the fast one's.
        assert!(w.admit(Some(&fast), at(100), at(100)));
        assert!(w.admit(Some(&slow), at(80), at(100)));
        assert_eq!(w.advance(at(100)), at(75));
        // A fast source far ahead does not make the slow one's records late.
        assert!(w.admit(Some(&fast), at(130), at(101)));
        assert_eq!(w.advance(at(101)), at(75));
        assert!(
            w.admit(Some(&slow), at(78), at(101)),
            "within its own lateness"
        );
        assert!(
            !w.admit(Some(&slow), at(74), at(101)),
            "behind the watermark"
        );
        assert!(w.admit(Some(&slow), at(90), at(102)));
        assert_eq!(w.advance(at(102)), at(85));
    }

    #[test]
    fn an_idle_source_stops_holding_the_watermark_back_until_it_sends_again() {
        let mut w = Watermarks::new(params(None), Arc::default());
        let (busy, quiet) = (source("BUSY"), source("QUIET"));
        w.admit(Some(&quiet), at(10), at(10));
        w.admit(Some(&busy), at(10), at(10));
        assert_eq!(w.advance(at(10)), at(5));
        for minute in 11..=30 {
            w.admit(Some(&busy), at(minute), at(minute));
            w.advance(at(minute));
        }
        // QUIET went idle after 10 minutes without arrivals; BUSY alone sets the watermark.
        assert_eq!(w.watermark(), at(25));
        assert_eq!(w.active_sources(), 1);
        // QUIET comes back with old data: late, but alive again; its newer data holds it back.
        assert!(!w.admit(Some(&quiet), at(12), at(31)));
        assert!(w.admit(Some(&quiet), at(26), at(31)));
        w.admit(Some(&busy), at(40), at(31));
        assert_eq!(
            w.advance(at(31)),
            at(25),
            "never goes back, held by QUIET at 26 - 5"
        );
        assert_eq!(w.active_sources(), 2);
    }

    #[test]
    fn the_clock_bounds_a_lagging_source_and_moves_event_time_on_in_silence() {
        let mut w = Watermarks::new(params(Some(15 * MIN)), Arc::default());
        let (s, stuck) = (source("S"), source("STUCK"));
        // A source whose clock is stuck an hour back holds event time 15 minutes at most.
        w.admit(Some(&s), at(100), at(100));
        w.admit(Some(&stuck), at(40), at(100));
        assert_eq!(w.advance(at(100)), at(85));
        for minute in 102..=120 {
            w.admit(Some(&stuck), at(40), at(minute));
            w.admit(Some(&s), at(minute), at(minute));
        }
        assert_eq!(w.advance(at(120)), at(105));
        // Silence: no records for an hour; event time follows the clock, max_delay behind.
        assert_eq!(w.advance(at(180)), at(165));
        assert_eq!(w.active_sources(), 0);
        assert!(
            !w.admit(Some(&s), at(164), at(180)),
            "further behind the clock"
        );
        assert!(w.admit(Some(&s), at(170), at(180)));
        // Without the floor (a replay) the watermark waits for data.
        let mut replay = Watermarks::new(params(None), Arc::default());
        replay.admit(Some(&s), at(100), at(100));
        assert_eq!(replay.advance(at(100)), at(95));
        assert_eq!(replay.advance(at(160)), at(95));
    }

    #[test]
    fn records_without_a_source_are_judged_but_hold_nothing() {
        let mut w = Watermarks::new(params(None), Arc::default());
        assert!(w.admit(None, at(50), at(50)));
        assert_eq!(w.active_sources(), 0);
        assert_eq!(w.advance(at(50)), Timestamp(i64::MIN));
        w.admit(Some(&source("S")), at(60), at(60));
        assert_eq!(w.advance(at(60)), at(55));
        assert!(!w.admit(None, at(54), at(60)));
    }

    /// Regression (issue 11, item 2): one reading 58 minutes ahead, from a source nobody knew,
    /// moved event time ahead and made every other source's readings late for an hour.
    #[test]
    fn a_reading_from_the_future_does_not_drag_event_time_ahead_of_the_clock() {
        let mut p = params(Some(900_000));
        p.max_skew_ms = Some(300_000);
        let mut w = Watermarks::new(p, Arc::default());
        let now = 1_795_622_400_000_i64;
        let (a, future) = (SourceId::from("A"), SourceId::from("FUTURE"));
        assert!(w.admit(Some(&a), Timestamp(now - 1_000), Timestamp(now)));
        // Source A falls idle; a clock-skewed logger sends a reading 58 minutes ahead.
        let later = now + 700_000;
        assert!(w.admit(
            Some(&future),
            Timestamp(later + 58 * 60_000),
            Timestamp(later)
        ));
        assert_eq!(w.take_ahead(), 1);
        let watermark = w.advance(Timestamp(later)).as_millis();
        assert!(
            watermark <= later - p.allowed_lateness_ms,
            "watermark {} ms ahead of the clock",
            watermark - later
        );
        // A's next reading, stamped by a right clock as it arrives, is judged.
        assert!(w.admit(Some(&a), Timestamp(later + 1_000), Timestamp(later + 1_000)));
        // Without the guard, the same input makes it late.
        let mut unguarded = Watermarks::new(params(Some(900_000)), Arc::default());
        unguarded.admit(Some(&a), Timestamp(now - 1_000), Timestamp(now));
        unguarded.admit(
            Some(&future),
            Timestamp(later + 58 * 60_000),
            Timestamp(later),
        );
        unguarded.advance(Timestamp(later));
        assert!(!unguarded.admit(Some(&a), Timestamp(later + 1_000), Timestamp(later + 1_000)));
    }

    /// A logger a little fast (within the skew), alone on the input for a moment, cannot move
    /// event time ahead of the clock either: found by the hostile-input test, where with a short
    /// allowed lateness it made the next readings of every other source late.
    #[test]
    fn event_time_stays_behind_the_clock_whatever_one_source_says() {
        let mut p = params(Some(60_000));
        p.allowed_lateness_ms = 1_000;
        p.max_skew_ms = Some(300_000);
        let mut w = Watermarks::new(p, Arc::default());
        let now = 1_795_622_400_000_i64;
        let fast = SourceId::from("FAST");
        assert!(w.admit(Some(&fast), Timestamp(now + 200_000), Timestamp(now)));
        assert_eq!(w.take_ahead(), 0, "within the skew");
        assert_eq!(w.advance(Timestamp(now)), Timestamp(now - 1_000));
        // A right clock's reading a moment later is on time.
        let right = SourceId::from("RIGHT");
        assert!(w.admit(Some(&right), Timestamp(now + 500), Timestamp(now + 500)));
    }

    /// Issue 11, item 4: sources nobody registered cannot grow the tracker without bound, and
    /// while they flood it a registered source still holds the watermark.
    #[test]
    fn unregistered_sources_are_tracked_up_to_a_bound() {
        let registry = argus_model::Registry::from_toml_str(
            include_str!("../../../config/registry.toml"),
            "registry.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rules = RuleSet::compile(
            include_str!("../../../config/rules.toml"),
            "rules.toml",
            &registry,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let known = registry
            .points()
            .next()
            .map(|p| p.mn.clone())
            .unwrap_or_else(|| panic!("the example registry has points"));
        let mut w = Watermarks::new(params(None), Arc::new(rules));
        assert!(w.admit(Some(&known), at(100), at(100)));
        let invented = 2 * MAX_UNREGISTERED_SOURCES;
        for i in 0..invented {
            let fake = source(&format!("FAKE{i:07}"));
            assert!(w.admit(Some(&fake), at(200), at(100)));
        }
        assert_eq!(w.active_sources(), 1 + MAX_UNREGISTERED_SOURCES);
        assert_eq!(
            w.take_untracked(),
            (invented - MAX_UNREGISTERED_SOURCES) as u64
        );
        assert_eq!(w.take_untracked(), 0);
        // The registered source is the slowest and holds the watermark.
        assert_eq!(w.advance(at(100)), at(95));
        // Once the invented ones fall idle, new unknown sources are tracked again.
        w.admit(Some(&known), at(120), at(120));
        w.advance(at(120));
        assert_eq!(w.active_sources(), 1);
        assert!(w.admit(Some(&source("LATER")), at(120), at(120)));
        assert_eq!(w.active_sources(), 2);
        assert_eq!(w.take_untracked(), 0);
    }
}
