//! Crash consistency of detection: a run that stops abruptly after a checkpoint and resumes from
//! it, fed again the stored inputs at or after the checkpoint's frontier (and, as Kafka and MQTT
//! do, a share of earlier ones delivered again), gives exactly the transitions of a run that
//! never stopped: none missing, none that the uninterrupted run does not give.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use argus_dataflow::{
    event_time, run_batch, AlertTransition, BatchOptions, Checkpoint, Detected, Input, Resume,
    Watermarks,
};
use argus_model::Registry;
use argus_rules::RuleSet;
use argus_sim::sample::{recorded_day, shuffle_within_lateness, Rng, LATENESS_MS};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::Inspect;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandle, ProbeHandle};

/// An hour of event time between checkpoints.
const EVERY_MS: u64 = 3_600_000;

fn line(t: &AlertTransition) -> String {
    format!(
        "{} {} {} {:?}",
        t.alert_id, t.instance.rule_id, t.muted, t.transition
    )
}

/// What each worker gave, in order.
type Outputs = Vec<Vec<Detected>>;

/// Feed `inputs` (in arrival order, each worker every n-th) to `workers` workers starting from
/// `from` (per worker), checkpointing every hour; `end` closes the input after advancing to the
/// end of the data (a clean end), otherwise the workers stop where they are (a crash).
fn run(
    workers: usize,
    rules: &Arc<RuleSet>,
    inputs: Arc<Vec<Input>>,
    from: Vec<Option<Checkpoint>>,
    end: bool,
) -> Outputs {
    let options = BatchOptions::recorded(LATENESS_MS);
    let newest = inputs.iter().map(|i| i.event_time().as_millis()).max();
    let first = inputs.iter().map(Input::event_time).min();
    let end_time = u64::try_from(newest.unwrap_or(0) - LATENESS_MS).unwrap_or(0);
    let outputs = Arc::new(Mutex::new(vec![Vec::new(); workers]));
    let sink = Arc::clone(&outputs);
    let rules = Arc::clone(rules);
    let from = Arc::new(from);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Input>>>::new();
        let probe = ProbeHandle::new();
        let out = Arc::clone(&sink);
        let resume = Resume {
            every_ms: Some(EVERY_MS),
            due: None,
            from: from[index].clone(),
            pause_at_end: false,
            watch_from: first,
        };
        let rules = Arc::clone(&rules);
        worker.dataflow::<u64, _, _>(|scope| {
            argus_dataflow::detect_resumable(input.to_stream(scope), Arc::clone(&rules), resume)
                .inspect(move |d: &Detected| {
                    out.lock().unwrap_or_else(PoisonError::into_inner)[index].push(d.clone());
                })
                .probe_with(&probe);
        });
        let mut watermarks = Watermarks::new(options.watermarks, Arc::clone(&rules));
        for (n, record) in inputs.iter().enumerate().skip(index).step_by(peers) {
            if !watermarks.admit(record.source(), record.event_time(), record.receive_time()) {
                panic!("late input {record:?}");
            }
            input.send(record.clone());
            if (n / peers + 1) % options.advance_every == 0 {
                let watermark = event_time(watermarks.advance(record.receive_time()));
                if watermark > *input.time() {
                    input.advance_to(watermark);
                    worker.step();
                }
            }
        }
        if end {
            if end_time > *input.time() {
                input.advance_to(end_time);
            }
            input.close();
            while worker.step() {}
        } else {
            // Everything sent so far reaches the operator; then the worker stops without closing.
            let at = *input.time();
            input.advance_to(at + 1);
            while probe.less_than(&(at + 1)) {
                worker.step();
            }
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    for result in guards.join() {
        result.unwrap_or_else(|e| panic!("{e}"));
    }
    let outputs = std::mem::take(&mut *outputs.lock().unwrap_or_else(PoisonError::into_inner));
    outputs
}

#[test]
fn a_run_resumed_from_a_checkpoint_gives_the_transitions_of_one_that_never_stopped() {
    let registry_text = include_str!("../../../config/registry.toml");
    let registry =
        Registry::from_toml_str(registry_text, "registry.toml").unwrap_or_else(|e| panic!("{e}"));
    let rules_text = include_str!("../../../config/rules.toml");
    let rules = Arc::new(
        RuleSet::compile(rules_text, "rules.toml", &registry).unwrap_or_else(|e| panic!("{e}")),
    );
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut inputs = recorded_day(&registry, &mut rng);
    shuffle_within_lateness(&mut inputs, &mut rng);
    let all = Arc::new(inputs.clone());
    let whole = run_batch(
        timely::Config::process(2),
        Arc::clone(&rules),
        Arc::clone(&all),
        BatchOptions::recorded(LATENESS_MS),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let expected: BTreeSet<String> = whole.transitions.iter().map(line).collect();
    assert_eq!(expected.len(), whole.transitions.len());

    for (workers, crash_at) in [(1, 0.37), (2, 0.81)] {
        let k = (inputs.len() as f64 * crash_at) as usize;
        let first = run(
            workers,
            &rules,
            Arc::new(inputs[..k].to_vec()),
            vec![None; workers],
            false,
        );
        // The last checkpoint of each worker, and what it gave up to the crash.
        let mut from = Vec::new();
        let mut given = BTreeSet::new();
        for out in &first {
            let last = out.iter().rev().find_map(|d| match d {
                Detected::Checkpoint(cp) => Some((**cp).clone()),
                Detected::Transition(_) => None,
            });
            let last = last.unwrap_or_else(|| panic!("no checkpoint in {} outputs", out.len()));
            last.check(last.worker, workers, &rules)
                .unwrap_or_else(|e| panic!("{e}"));
            let bytes = last.encode();
            let back = Checkpoint::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, last);
            for d in out {
                if let Detected::Transition(t) = d {
                    given.insert(line(t));
                }
            }
            from.push(Some(back));
        }
        let since = from
            .iter()
            .flatten()
            .map(|cp| cp.until().as_millis())
            .min()
            .unwrap_or(0);
        // The store's inputs at or after the oldest frontier, in event-time order, then a share
        // of earlier inputs delivered again (covered by the checkpoints), then the rest.
        let mut again: Vec<Input> = inputs[..k]
            .iter()
            .filter(|i| i.event_time().as_millis() >= since)
            .cloned()
            .collect();
        again.sort_by_key(|i| i.event_time());
        let stored = again.len();
        again.extend(inputs[k.saturating_sub(2_000)..k].iter().cloned());
        again.extend(inputs[k..].iter().cloned());
        let second = run(workers, &rules, Arc::new(again), from, true);
        let mut resumed = BTreeSet::new();
        for out in &second {
            for d in out {
                if let Detected::Transition(t) = d {
                    resumed.insert(line(t));
                }
            }
        }
        let extra: Vec<&String> = given
            .union(&resumed)
            .filter(|l| !expected.contains(*l))
            .collect();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|l| !given.contains(*l) && !resumed.contains(*l))
            .collect();
        eprintln!(
            "{workers} worker(s), crash after {k} of {} inputs: {} transitions before, {} after \
             ({stored} stored inputs fed again), {} expected; {} extra, {} missing",
            inputs.len(),
            given.len(),
            resumed.len(),
            expected.len(),
            extra.len(),
            missing.len()
        );
        assert!(extra.is_empty(), "not in the uninterrupted run: {extra:#?}");
        assert!(missing.is_empty(), "missing after the resume: {missing:#?}");
        assert!(!given.is_empty() && !resumed.is_empty());
    }
}
