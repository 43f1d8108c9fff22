//! The proof: the ground truth equals what the real rules find. The default scenario is
//! generated, every message decoded as Argus decodes it (argus-ingest), the inputs run through
//! the detection dataflow with the shipped rules, and the alerts fired compared with the truth:
//! 100 % precision and recall for every rule kind, each injected at least five times.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use argus_dataflow::{run_batch, BatchOptions, Input};
use argus_ingest::{DecodeOptions, Decoder, Record};
use argus_model::{Registry, Timestamp};
use argus_rules::{RuleSet, Transition};
use argus_sim::{
    verify, Cause, Generator, Observed, PayloadKind, Report, Scenario, Truth, TruthRecord,
    VerifyOptions, RULE_KINDS,
};

const REGISTRY: &str = include_str!("../../../config/registry.toml");
const RULES: &str = include_str!("../../../config/rules.toml");
/// `[rules] allowed_lateness_secs` of config/argus.toml.
const LATENESS_MS: i64 = 300_000;

/// Generate `scenario`, decode it as Argus does, detect, verify.
fn prove(registry: Registry, scenario: Scenario) -> (Truth, Report) {
    prove_with(registry, scenario, None)
}

/// A source the registry does not know, whose readings stand for Argus's clock moving on after
/// the feed stopped: with them the watermark passes the end of the feed by `after_ms`.
const CLOCK: &str = "SIM-CLOCK";

fn prove_with(registry: Registry, scenario: Scenario, after_ms: Option<i64>) -> (Truth, Report) {
    let clock = Instant::now();
    let registry = Arc::new(registry);
    let rules = Arc::new(RuleSet::compile(RULES, "rules.toml", &registry).unwrap());
    let mut generator =
        Generator::new(Arc::clone(&registry), Arc::clone(&rules), scenario).unwrap();
    let mut truth = Truth::default();
    truth.push(TruthRecord::Header(generator.header()));
    let decoder = Decoder::new(Arc::clone(&registry), DecodeOptions::default());
    let mut inputs = Vec::new();
    let mut messages = 0usize;
    while let Some(group) = generator.next_group().unwrap() {
        for m in &group.messages {
            messages += 1;
            let kind = match m.route.payload_kind() {
                PayloadKind::JsonReadings => argus_ingest::PayloadKind::JsonReadings,
                PayloadKind::Events => argus_ingest::PayloadKind::Events,
                PayloadKind::Hj212 => argus_ingest::PayloadKind::Hj212,
            };
            let records = decoder
                .decode(kind, &m.payload, m.at)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&m.payload)));
            inputs.extend(records.into_iter().map(|r| match r {
                Record::Reading(r) => Input::Reading(r),
                Record::Event(e) => Input::Event(Box::new(e)),
            }));
        }
        for e in group.truth {
            truth.push(TruthRecord::Alert(e));
        }
    }
    for e in generator.finish() {
        truth.push(TruthRecord::Alert(e));
    }
    if let Some(after) = after_ms {
        // Every other source is idle by then (receive time), so the watermark follows these.
        let end = inputs
            .iter()
            .map(|i| i.event_time().as_millis())
            .max()
            .unwrap();
        for k in 0..2 * 4096 {
            let t = Timestamp(end + after + k * 1000);
            inputs.push(Input::Reading(argus_model::Reading {
                source: argus_model::SourceId::new(CLOCK),
                metric: argus_model::MetricCode::Known(argus_model::Metric::So2),
                value: 1.0,
                flag: argus_model::DataFlag::N,
                event_time: t,
                receive_time: t,
                interval: Default::default(),
                corrected: None,
            }));
        }
    }
    let generated = clock.elapsed();
    let judged_until = judged_until(
        &inputs,
        BatchOptions::recorded(LATENESS_MS),
        Arc::clone(&rules),
    );
    let n_inputs = inputs.len();
    let output = run_batch(
        timely::Config::thread(),
        Arc::clone(&rules),
        Arc::new(inputs),
        BatchOptions::recorded(LATENESS_MS),
    )
    .unwrap();
    assert!(output.late.is_empty(), "{} late inputs", output.late.len());
    let observed: Vec<Observed> = output
        .transitions
        .iter()
        .filter_map(|t| match t.transition {
            Transition::Fired { started_at, .. } => Some(Observed {
                alert_id: format!("{:016x}", t.alert_id),
                rule_id: t.instance.rule_id.to_string(),
                kind: t.kind.as_str().to_owned(),
                enterprise: t.instance.enterprise_id.to_string(),
                point: t.instance.point.as_str().to_owned(),
                metric: t.instance.metric.map(|m| m.code().to_owned()),
                started_ms: started_at.as_millis(),
                stored_ms: None,
                muted: t.muted,
            }),
            _ => None,
        })
        .filter(|o| o.point != CLOCK)
        .collect();
    let options = VerifyOptions {
        judged_until_ms: judged_until,
        allowed_lateness_ms: LATENESS_MS,
    };
    let report = verify(&truth, &observed, &options);
    println!(
        "{messages} messages, {n_inputs} inputs, {} truth entries, {} alerts fired; generated in {generated:?}, total {:?}; judged until {}",
        truth.entries.len(),
        observed.len(),
        clock.elapsed(),
        Timestamp(options.judged_until_ms)
    );
    println!("{report}");
    (truth, report)
}

/// The event time one worker's detection has judged at the end of a batch: the frontier of its
/// last advance (every `advance_every` inputs; the end of the input is not a watermark, so the
/// final jump of the frontier judges no window).
fn judged_until(inputs: &[Input], options: BatchOptions, rules: Arc<RuleSet>) -> i64 {
    let mut watermarks = argus_dataflow::Watermarks::new(options.watermarks, rules);
    let mut frontier = 0;
    for (n, input) in inputs.iter().enumerate() {
        if !watermarks.admit(input.source(), input.event_time(), input.receive_time()) {
            continue;
        }
        if (n + 1) % options.advance_every.max(1) == 0 {
            frontier = frontier.max(watermarks.advance(input.receive_time()).as_millis());
        }
    }
    frontier
}

fn county() -> Registry {
    Registry::from_toml_str(REGISTRY, "registry.toml").unwrap()
}

/// Injected violations due per rule kind.
fn injected(truth: &Truth, judged_until_ms: i64) -> BTreeMap<&str, usize> {
    let mut n = BTreeMap::new();
    for e in &truth.entries {
        if e.cause == Cause::Injected && e.due_ms < judged_until_ms {
            *n.entry(e.rule_kind.as_str()).or_default() += 1;
        }
    }
    n
}

fn check(truth: &Truth, report: &Report) {
    assert!(report.passed(), "{report}");
    let n = injected(truth, report.judged_until_ms);
    for kind in RULE_KINDS {
        assert!(
            n.get(kind).copied().unwrap_or(0) >= 5,
            "{kind} injected {n:?}"
        );
    }
    let insufficient = report.row("average/insufficient_data").map_or(0, |r| r.due);
    assert!(
        insufficient >= 5,
        "{insufficient} insufficient-data windows"
    );
    let muted: usize = report.rows.iter().map(|r| r.muted).sum();
    assert!(muted >= 2, "{muted} muted");
}

/// The first eight hours of the default scenario: every rule kind at least five times. Over
/// HJ 212 TCP and MQTT only, like the demo (events on MQTT); the release-only tests below use
/// all three transports (events on Kafka).
#[test]
fn the_truth_is_what_the_rules_find_in_the_first_hours() {
    let scenario = Scenario {
        transports: argus_sim::Transports {
            hj212_tcp: true,
            mqtt: true,
            kafka: false,
        },
        ..Scenario::default_day().with_hours(8.0)
    };
    let (truth, report) = prove(county(), scenario);
    check(&truth, &report);
}

/// The default scenario, a whole day, and one more hour so that the day's averages close.
/// Slow without optimisations: run with `cargo test --release -p argus-sim`.
#[test]
fn the_truth_is_what_the_rules_find_in_the_default_scenario() {
    let (truth, report) = prove(county(), Scenario::default_day());
    check(&truth, &report);
    let (truth, report) = prove(county(), Scenario::default_day().with_hours(25.5));
    check(&truth, &report);
    let daily = truth
        .entries
        .iter()
        .filter(|e| e.rule_id == "daily-average" && e.due_ms < report.judged_until_ms)
        .count();
    assert!(daily >= 2, "{daily} daily averages judged");
}

/// A province of three counties (ids rewritten, violations per county): the truth holds too.
#[test]
fn the_truth_is_what_the_rules_find_in_a_province() {
    let (_, registry) = argus_sim::province::province(&county(), 3).unwrap();
    let (truth, report) = prove(registry, Scenario::default_day().with_hours(8.0));
    check(&truth, &report);
    let n = injected(&truth, report.judged_until_ms);
    assert!(n.values().all(|&k| k >= 15), "{n:?}");
}

/// A run stopped at an odd time (in the middle of violations, look-alikes and windows), with
/// Argus's event time moving on for six hours after it: the truth written up to the stop plus
/// the end of the feed is exactly what the rules find.
#[test]
fn a_stopped_run_is_true_too() {
    let scenario = Scenario {
        transports: argus_sim::Transports::ALL,
        ..Scenario::default_day().with_hours(
            std::env::var("SIM_STOP_HOURS")
                .ok()
                .and_then(|h| h.parse().ok())
                .unwrap_or(3.71),
        )
    };
    let (truth, report) = prove_with(county(), scenario, Some(6 * 3_600_000));
    assert!(report.passed(), "{report}");
    let end_of_feed = truth
        .entries
        .iter()
        .filter(|e| e.cause == Cause::EndOfFeed)
        .count();
    assert!(end_of_feed > 200, "{end_of_feed} end-of-feed entries");
}

/// A start off the hour and second (the demo starts at now - 24 h), over TCP and MQTT: the
/// partial first windows are in the truth.
#[test]
fn an_unaligned_start_is_true_too() {
    let start = argus_sim::DEFAULT_START.plus_millis(37 * 60_000 + 12_345);
    let scenario = Scenario {
        start,
        transports: argus_sim::Transports {
            hj212_tcp: true,
            mqtt: true,
            kafka: false,
        },
        ..Scenario::default_day()
    }
    .with_hours(8.0);
    let (truth, report) = prove(county(), scenario);
    check(&truth, &report);
}
