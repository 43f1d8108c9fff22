//! The live dataflow of the running service: each worker starts from its [`Feed`]'s checkpoint
//! (if any), takes inputs from it (the service's pipeline), keeps its watermark per source
//! against the wall clock, and reports alert transitions, checkpoints, late inputs and progress
//! to an [`Observer`]. Threads of one process or a timely cluster of processes, as
//! `timely::Config` says.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use argus_model::Timestamp;
use argus_rules::RuleSet;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::Inspect;
use timely::dataflow::InputHandle;

use crate::{
    detect_resumable, event_time, AlertTransition, Checkpoint, Detected, Input, Resume,
    WatermarkParams, Watermarks,
};

/// Where a worker's inputs come from.
pub trait Feed {
    /// Move the inputs ready now into `into`, without blocking. Returns `false` once the feed has
    /// ended (shutdown): the worker then closes its input and drains.
    fn poll(&mut self, into: &mut Vec<Input>) -> bool;

    /// The worker's state to start from (asked once, before any input): none starts empty.
    fn resume(&mut self) -> Option<Checkpoint> {
        None
    }

    /// Stored inputs to judge again after the checkpoint (asked once, after [`Feed::resume`],
    /// before the first poll). They enter before event time first moves, without counting for
    /// the watermark: their sources may now send to another process of the cluster, and must
    /// not hold this worker's event time back.
    fn restored(&mut self) -> Vec<Input> {
        Vec::new()
    }
}

/// What the workers report, on their own threads.
pub trait Observer: Send + Sync + 'static {
    /// Alert transitions produced by `worker`.
    fn transitions(&self, worker: usize, transitions: &[AlertTransition]);

    /// `worker`'s state as of a frontier, reported after every transition it covers.
    fn checkpoint(&self, _worker: usize, _checkpoint: Checkpoint) {}

    /// Inputs later than the allowed lateness: not judged; the observer keeps them.
    fn late(&self, worker: usize, inputs: Vec<Input>);

    /// `worker` advanced its watermark at wall-clock `now`, with `active_sources` holding it;
    /// `readings` and `events` entered since the last report.
    fn progress(&self, worker: usize, progress: Progress);
}

/// A worker's progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The wall clock.
    pub now: Timestamp,
    /// The worker's watermark.
    pub watermark: Timestamp,
    /// Sources holding it.
    pub active_sources: usize,
    /// Readings that entered since the last report.
    pub readings: u64,
    /// Events that entered since the last report.
    pub events: u64,
    /// Inputs since the last report whose event time was ahead of the clock by more than the
    /// allowed skew (judged; not moving event time past the clock plus the skew).
    pub ahead: u64,
    /// Inputs since the last report of unregistered sources beyond the tracker's bound
    /// ([`crate::MAX_UNREGISTERED_SOURCES`]): judged, not tracked.
    pub untracked: u64,
}

/// How the live dataflow follows the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    /// Per-source lateness, idleness and the clock bound (`max_delay_ms` should be set).
    pub watermarks: WatermarkParams,
    /// How often the watermark is advanced and progress reported.
    pub advance_every: Duration,
    /// How often (wall clock) a checkpoint is taken; `None`: no checkpoints.
    pub checkpoint_every: Option<Duration>,
    /// From when every registered point is expected to report (the service's start, in event
    /// time); `None`: the first frontier ([`Resume::watch_from`]).
    pub watch_from: Option<argus_model::Timestamp>,
}

/// How long an idle worker sleeps before looking at its feed again.
const PARK: Duration = Duration::from_millis(20);

/// Start the workers `config` describes; each takes its inputs from `feed(worker index)` and
/// runs until its feed ends and the dataflow has drained. Returns once they are started (in a
/// single-thread configuration, once it has finished); join the guards to wait. In a cluster,
/// the dataflow drains only once every process's feeds have ended: processes stop together.
pub fn run_live<F, M>(
    config: timely::Config,
    rules: Arc<RuleSet>,
    options: LiveOptions,
    feed: M,
    observer: Arc<dyn Observer>,
) -> Result<timely::communication::WorkerGuards<()>, String>
where
    F: Feed,
    M: Fn(usize) -> F + Send + Sync + 'static,
{
    timely::execute(config, move |worker| {
        let index = worker.index();
        let mut feed = feed(index);
        // A checkpoint at the first frontier, then one every interval of the clock.
        let due = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let resume = Resume {
            every_ms: options.checkpoint_every.map(|_| 0),
            due: Some(Arc::clone(&due)),
            from: feed.resume(),
            // Checkpointed, a stop is a pause: what the frontier has not passed is judged after
            // the restart, from the store.
            pause_at_end: options.checkpoint_every.is_some(),
            watch_from: options.watch_from,
        };
        let mut last_checkpoint = Instant::now();
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Input>>>::new();
        let rules = Arc::clone(&rules);
        let sink = Arc::clone(&observer);
        worker.dataflow::<u64, _, _>(|scope| {
            let stream = input.to_stream(scope);
            let mut transitions = Vec::new();
            detect_resumable(stream, Arc::clone(&rules), resume).inspect_core(move |event| {
                let Ok((_time, batch)) = event else { return };
                for detected in batch.iter() {
                    match detected {
                        Detected::Transition(t) => transitions.push(t.clone()),
                        Detected::Checkpoint(cp) => {
                            if !transitions.is_empty() {
                                sink.transitions(index, &std::mem::take(&mut transitions));
                            }
                            sink.checkpoint(index, (**cp).clone());
                        }
                    }
                }
                if !transitions.is_empty() {
                    sink.transitions(index, &std::mem::take(&mut transitions));
                }
            });
        });
        let mut watermarks = Watermarks::new(options.watermarks, Arc::clone(&rules));
        let mut buf = Vec::new();
        let mut late = Vec::new();
        let (mut readings, mut events) = (0_u64, 0_u64);
        for record in feed.restored() {
            input.send(record);
        }
        let mut last_advance = Instant::now();
        loop {
            let open = feed.poll(&mut buf);
            for record in buf.drain(..) {
                if watermarks.admit(record.source(), record.event_time(), record.receive_time()) {
                    match record {
                        Input::Reading(_) => readings += 1,
                        Input::Event(_) => events += 1,
                    }
                    input.send(record);
                } else {
                    late.push(record);
                }
            }
            if !late.is_empty() {
                observer.late(index, std::mem::take(&mut late));
            }
            if options
                .checkpoint_every
                .is_some_and(|every| last_checkpoint.elapsed() >= every)
            {
                due.store(true, std::sync::atomic::Ordering::SeqCst);
                last_checkpoint = Instant::now();
            }
            if !open || last_advance.elapsed() >= options.advance_every {
                let now = Timestamp::from_system_time(SystemTime::now());
                let watermark = watermarks.advance(now);
                let time = event_time(watermark);
                if time > *input.time() {
                    input.advance_to(time);
                }
                let progress = Progress {
                    now,
                    watermark,
                    active_sources: watermarks.active_sources(),
                    readings: std::mem::take(&mut readings),
                    events: std::mem::take(&mut events),
                    ahead: watermarks.take_ahead(),
                    untracked: watermarks.take_untracked(),
                };
                observer.progress(index, progress);
                last_advance = Instant::now();
            }
            if !open {
                break;
            }
            worker.step_or_park(Some(PARK));
        }
        input.close();
        while worker.step() {}
    })
}
