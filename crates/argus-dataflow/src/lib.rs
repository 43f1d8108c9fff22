//! Streaming detection on timely dataflow: readings enter through input handles, are exchanged
//! by monitoring point so that all series of a point meet on one worker, and run through the
//! rule state machines of `argus-rules` in event time. The timely timestamp is the watermark
//! (event-time milliseconds): a reading is sent at the current watermark and carries its own
//! event time, which is never below it (older ones are late). When the frontier passes F, every
//! reading with an event time below F is in, so windows and `for` durations close on the
//! frontier, never on the wall clock.
//!
//! Within a worker, readings whose time the frontier has passed are taken in a total order
//! (event time, O2 before the rest, source, metric, value), and every state machine is
//! independent of how often the frontier advances: the same input gives the same alert
//! transitions (with deterministic alert ids) whatever the number of workers or processes.

mod operator;
pub mod sample;

use std::sync::{Arc, Mutex, PoisonError};

use argus_model::{AlertKind, Reading, Timestamp};
use argus_rules::{Instance, RuleSet, Transition};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

pub use operator::{detect, state_bytes_per_instance};

/// One alert transition, with the rule instance that raised it (rule id, severity, enterprise,
/// point, metric, standard) for storage and routing.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    /// Deterministic id: hash of rule, key and start time.
    pub alert_id: u64,
    /// The alert kind (an average rule raises `average` and `insufficient_data`).
    pub kind: AlertKind,
    /// The rule instance.
    pub instance: Arc<Instance>,
    /// Fired or resolved, with times and values.
    pub transition: Transition,
}

/// What a batch run produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutput {
    /// Every alert transition, in no particular order.
    pub transitions: Vec<AlertTransition>,
    /// Readings that arrived later than the allowed lateness: not judged, kept here.
    pub late: Vec<Reading>,
}

/// Run `readings` (in arrival order) through the rules on the workers `config` describes (threads
/// of this process, or a cluster of processes: `timely::Config::from_args` with `-w -n -p -h`)
/// and return the transitions produced by this process's workers. Each worker takes every n-th
/// reading (n = all workers of the cluster, so every process must be given the same input); the
/// watermark of a worker's input is the largest event time it has seen minus
/// `allowed_lateness_ms`, and a reading older than it is late: kept in [`BatchOutput::late`].
pub fn run_batch(
    config: timely::Config,
    rules: Arc<RuleSet>,
    readings: Arc<Vec<Reading>>,
    allowed_lateness_ms: i64,
) -> Result<BatchOutput, String> {
    let collected = Arc::new(Mutex::new(BatchOutput::default()));
    let sink = Arc::clone(&collected);
    let guards = timely::execute(config, move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let probe = ProbeHandle::new();
        let out = Arc::clone(&sink);
        let rules = Arc::clone(&rules);
        worker.dataflow::<u64, _, _>(|scope| {
            let readings = input.to_stream(scope);
            detect(readings, rules)
                .inspect(move |t: &AlertTransition| {
                    out.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .transitions
                        .push(t.clone());
                })
                .probe_with(&probe);
        });
        let mut late = Vec::new();
        let mut max_seen = i64::MIN;
        for reading in readings.iter().skip(index).step_by(peers) {
            let time = event_time(reading.event_time);
            if time < *input.time() {
                late.push(reading.clone());
                continue;
            }
            // Sent at the current watermark; the operator orders readings by their own event
            // time and judges those before the frontier.
            input.send(reading.clone());
            max_seen = max_seen.max(reading.event_time.as_millis());
            let watermark = event_time(Timestamp(max_seen.saturating_sub(allowed_lateness_ms)));
            if watermark > *input.time() {
                input.advance_to(watermark);
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

/// The timely timestamp of an event time (times before the epoch are clamped to it).
pub fn event_time(t: Timestamp) -> u64 {
    u64::try_from(t.as_millis()).unwrap_or(0)
}
