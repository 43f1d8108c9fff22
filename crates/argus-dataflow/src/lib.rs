//! Streaming detection on timely dataflow: readings and enterprise events enter through input
//! handles, are exchanged by enterprise so that every feed a cross-feed rule joins meets on one
//! worker, and run through the rule state machines of `argus-rules` in event time. The timely
//! timestamp is the watermark (event-time milliseconds): an input is sent at the current
//! watermark and carries its own event time, which is never below it (older ones are late).
//! When the frontier passes F, every input with an event time below F is in, so windows and
//! `for` durations close on the frontier, never on the wall clock. Each input's watermark is
//! kept per source ([`Watermarks`]): a slow source is not made late by a fast one, and an idle
//! one does not hold the stream back.
//!
//! Within a worker, inputs whose time the frontier has passed are taken in a total order
//! (event time, events first, then O2, then source, metric, value), and every state machine is
//! independent of how often the frontier advances: the same input gives the same alert
//! transitions (with deterministic alert ids) whatever the number of workers or processes.

mod checkpoint;
pub mod live;
mod operator;
mod watermark;

use std::sync::{Arc, Mutex, PoisonError};

use argus_model::{Event, Reading, SourceId, Timestamp};
pub use argus_rules::AlertTransition;
use argus_rules::RuleSet;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

pub use checkpoint::{Checkpoint, CheckpointError};
pub use operator::{
    detect, detect_resumable, state_bytes_per_instance, Detected, Resume, MAX_UNREGISTERED_SOURCES,
    OVERFLOW_SOURCE,
};
pub use watermark::{WatermarkParams, Watermarks};

/// One input of the dataflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// A measured value.
    Reading(Reading),
    /// An enterprise event (boxed: events are rare and larger than readings, which are moved
    /// around a lot).
    Event(Box<Event>),
}

impl Input {
    /// Its place in event time: when it happened; for a data logger's average, when its span
    /// is complete ([`Reading::available_at`]). Watermarks, lateness and the order of judging
    /// go by this.
    pub fn event_time(&self) -> Timestamp {
        match self {
            Input::Reading(r) => r.available_at(),
            Input::Event(e) => e.event_time,
        }
    }

    /// When Argus received it.
    pub fn receive_time(&self) -> Timestamp {
        match self {
            Input::Reading(r) => r.receive_time,
            Input::Event(e) => e.receive_time,
        }
    }

    /// The source it came from, if any: what its watermark is kept by.
    pub fn source(&self) -> Option<&SourceId> {
        match self {
            Input::Reading(r) => Some(&r.source),
            Input::Event(e) => e.source.as_ref(),
        }
    }
}

/// What a batch run produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutput {
    /// Every alert transition, in no particular order.
    pub transitions: Vec<AlertTransition>,
    /// Inputs that arrived later than the allowed lateness: not judged, kept here.
    pub late: Vec<Input>,
}

/// How a batch is fed: how the watermark of each worker's input follows the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Per-source lateness and idleness. Processing time is the inputs' receive times.
    pub watermarks: WatermarkParams,
    /// Inputs between two advances of the watermark.
    pub advance_every: usize,
}

impl BatchOptions {
    /// Recorded data: `allowed_lateness_ms` per source, a source idle after 10 minutes of receive
    /// time without input, no clock floor.
    pub fn recorded(allowed_lateness_ms: i64) -> Self {
        Self {
            watermarks: WatermarkParams {
                allowed_lateness_ms,
                idle_after_ms: 600_000,
                max_delay_ms: None,
                max_skew_ms: None,
            },
            advance_every: 4_096,
        }
    }
}

/// Run `inputs` (in arrival order) through the rules on the workers `config` describes (threads
/// of this process, or a cluster of processes: `timely::Config::from_args` with `-w -n -p -h`)
/// and return the transitions produced by this process's workers. Each worker takes every n-th
/// input (n = all workers of the cluster, so every process must be given the same input) and
/// keeps its watermark per source ([`Watermarks`]); an input older than it is late: kept in
/// [`BatchOutput::late`]. Before closing, every worker advances to the newest event time of the
/// whole input less the allowed lateness, so the last windows close the same way whatever the
/// number of workers.
pub fn run_batch(
    config: timely::Config,
    rules: Arc<RuleSet>,
    inputs: Arc<Vec<Input>>,
    options: BatchOptions,
) -> Result<BatchOutput, String> {
    // Where the whole input ends: every worker advances to the newest event time less the
    // allowed lateness before closing (all data is in, but windows the data did not see close
    // stay open), whatever its share of the input.
    let newest = inputs.iter().map(|i| i.event_time().as_millis()).max();
    let first = inputs.iter().map(Input::event_time).min();
    let lateness = options.watermarks.allowed_lateness_ms;
    let end = event_time(Timestamp(newest.unwrap_or(0).saturating_sub(lateness)));
    let collected = Arc::new(Mutex::new(BatchOutput::default()));
    let sink = Arc::clone(&collected);
    let guards = timely::execute(config, move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Input>>>::new();
        let probe = ProbeHandle::new();
        let out = Arc::clone(&sink);
        let rules = Arc::clone(&rules);
        worker.dataflow::<u64, _, _>(|scope| {
            let stream = input.to_stream(scope);
            // Every registered point is expected from the input's first event time.
            detect(stream, Arc::clone(&rules), first)
                .inspect(move |t: &AlertTransition| {
                    out.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .transitions
                        .push(t.clone());
                })
                .probe_with(&probe);
        });
        // The maintenance calendar first: a notice mutes the alerts that start in its window
        // wherever it sits in the input (a notice without `ts` is stamped when read).
        for notice in calendar(&inputs).skip(index).step_by(peers) {
            input.send(notice);
        }
        let mut late = Vec::new();
        let mut watermarks = Watermarks::new(options.watermarks, Arc::clone(&rules));
        for (n, record) in inputs.iter().enumerate().skip(index).step_by(peers) {
            if !watermarks.admit(record.source(), record.event_time(), record.receive_time()) {
                late.push(record.clone());
                continue;
            }
            input.send(record.clone());
            if (n / peers + 1) % options.advance_every.max(1) == 0 {
                let watermark = event_time(watermarks.advance(record.receive_time()));
                if watermark > *input.time() {
                    input.advance_to(watermark);
                    worker.step();
                }
            }
        }
        if end > *input.time() {
            input.advance_to(end);
            // The end is a watermark: judged before the input closes (a closed input is no
            // watermark; a short input would otherwise never see one).
            while probe.less_than(&end) {
                worker.step();
            }
        }
        input.close();
        while worker.step() {}
        sink.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .late
            .extend(late);
    })?;
    guards
        .join()
        .into_iter()
        .collect::<Result<Vec<()>, String>>()?;
    let output = std::mem::take(&mut *collected.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(output)
}

/// The maintenance notices of `inputs`, each as of its window's start at the latest, so that
/// it is taken before any alert it mutes (the notice itself, where it sits in the input, is
/// taken again: the calendar keeps each window once).
fn calendar(inputs: &[Input]) -> impl Iterator<Item = Input> + '_ {
    inputs.iter().filter_map(|input| match input {
        Input::Event(e) => match &e.kind {
            argus_model::EventKind::MaintenanceNotice { from, .. } => {
                let mut notice = e.clone();
                notice.event_time = Timestamp(e.event_time.as_millis().min(from.as_millis()));
                Some(Input::Event(notice))
            }
            _ => None,
        },
        Input::Reading(_) => None,
    })
}

/// Whether a panic message of a timely thread says a process of the cluster is gone: timely
/// takes the computation down when a peer's connection breaks (its communication threads panic
/// with "timely communication error: ...", the workers then find their queues poisoned, and the
/// guard of the communication threads finds them panicked).
/// Not a bug of Argus: every process must stop and the cluster be started again (each worker
/// resumes from its checkpoint).
pub fn peer_gone(panic_message: &str) -> bool {
    panic_message.starts_with("timely communication error")
        || panic_message.contains("MergeQueue poisoned")
        || panic_message.starts_with("Send thread panic")
        || panic_message.starts_with("Recv thread panic")
}

/// The timely timestamp of an event time (times before the epoch are clamped to it).
pub fn event_time(t: Timestamp) -> u64 {
    u64::try_from(t.as_millis()).unwrap_or(0)
}
