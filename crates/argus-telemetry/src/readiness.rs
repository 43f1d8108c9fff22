//! Readiness: whether each stage of the running service makes progress. A stage holding work
//! (the pipeline with an envelope in hand, the store sink with a batch to make durable) for
//! longer than [`STALL_AFTER`], or detection reporting no progress for that long, is stalled:
//! `/readyz` answers 503 and names it, so an orchestrator or the wall screen sees a service that
//! is up (`/healthz`) but no longer getting data through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stage may hold work, or detection stay silent, before it counts as stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(60);

/// The stages watched, in the order they are reported.
pub const STAGES: [&str; 3] = ["pipeline", "sink", "detection"];

/// Progress marks of the service's stages; cheap to clone (one shared set).
#[derive(Debug, Clone)]
pub struct Readiness(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    origin: Instant,
    stall_after: Duration,
    /// Per stage: for the pipeline and the sink, when the work in hand was taken (ms since
    /// `origin`, plus one; 0 when idle); for detection, its last progress report.
    marks: [AtomicU64; 3],
}

/// One stage's state, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageState {
    /// `pipeline`, `sink` or `detection`.
    pub stage: &'static str,
    /// Whether it progresses.
    pub ready: bool,
    /// For how long it has held its work (pipeline, sink) or been silent (detection).
    pub for_ms: u64,
}

const PIPELINE: usize = 0;
const SINK: usize = 1;
const DETECTION: usize = 2;

impl Default for Readiness {
    fn default() -> Self {
        Self::new(STALL_AFTER)
    }
}

impl Readiness {
    /// Marks with the given stall limit; detection counts as just heard from.
    pub fn new(stall_after: Duration) -> Self {
        let inner = Inner {
            origin: Instant::now(),
            stall_after,
            marks: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(1)],
        };
        Self(Arc::new(inner))
    }

    fn stamp(&self, at: Instant) -> u64 {
        let ms = at.saturating_duration_since(self.0.origin).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1
    }

    /// The pipeline took an envelope.
    pub fn pipeline_busy(&self) {
        self.0.marks[PIPELINE].store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    /// The pipeline handed its envelope on.
    pub fn pipeline_idle(&self) {
        self.0.marks[PIPELINE].store(0, Ordering::Relaxed);
    }

    /// The sink started making a batch durable.
    pub fn sink_busy(&self) {
        self.0.marks[SINK].store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    /// The sink's batch is durable (stored or spooled).
    pub fn sink_idle(&self) {
        self.0.marks[SINK].store(0, Ordering::Relaxed);
    }

    /// Detection reported progress.
    pub fn detection_progressed(&self) {
        self.0.marks[DETECTION].store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    /// Every stage's state now.
    pub fn check(&self) -> Vec<StageState> {
        self.check_at(Instant::now())
    }

    /// Every stage's state at `now`.
    pub fn check_at(&self, now: Instant) -> Vec<StageState> {
        let now = self.stamp(now);
        let limit = u64::try_from(self.0.stall_after.as_millis()).unwrap_or(u64::MAX);
        STAGES
            .iter()
            .zip(&self.0.marks)
            .map(|(&stage, mark)| {
                let mark = mark.load(Ordering::Relaxed);
                let for_ms = if mark == 0 {
                    0
                } else {
                    now.saturating_sub(mark)
                };
                StageState {
                    stage,
                    ready: for_ms <= limit,
                    for_ms,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_holding_work_or_silent_too_long_is_stalled() {
        let r = Readiness::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let ready = |at: Instant| -> Vec<bool> { r.check_at(at).iter().map(|s| s.ready).collect() };
        assert_eq!(ready(t0), [true, true, true]);
        r.pipeline_busy();
        r.sink_busy();
        assert_eq!(ready(t0 + Duration::from_secs(30)), [true, true, true]);
        // Detection has not reported for 61 s either.
        assert_eq!(ready(t0 + Duration::from_secs(61)), [false, false, false]);
        r.pipeline_idle();
        r.sink_idle();
        r.detection_progressed();
        assert_eq!(
            ready(Instant::now() + Duration::from_secs(59)),
            [true, true, true]
        );
        let states = r.check_at(Instant::now() + Duration::from_secs(90));
        assert_eq!(
            states
                .iter()
                .map(|s| (s.stage, s.ready))
                .collect::<Vec<_>>(),
            [("pipeline", true), ("sink", true), ("detection", false)]
        );
        assert!(states[2].for_ms >= 90_000);
    }
}
