//! Determinism: one recorded input, shuffled within the allowed lateness, gives exactly the same
//! alert transitions with 1, 2 and 4 workers.

use std::sync::Arc;

use argus_dataflow::{run_batch, AlertTransition};
use argus_model::registry::PointKind;
use argus_model::{DataFlag, Metric, MetricCode, Reading, Registry, Timestamp};
use argus_rules::{RuleSet, Transition};

const MIN: i64 = 60_000;
const LATENESS_MS: i64 = 5 * MIN;
/// 2026-11-26T00:00:00+08:00.
const START: i64 = 1_795_622_400_000;

/// xorshift64*: a small deterministic generator for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn reading(
    source: &argus_model::SourceId,
    metric: Metric,
    minute: i64,
    value: f64,
    flag: DataFlag,
) -> Reading {
    let t = Timestamp(START + minute * MIN);
    Reading {
        source: source.clone(),
        metric: MetricCode::Known(metric),
        value,
        flag,
        event_time: t,
        receive_time: t,
    }
}

/// A day of minute data for the example county's flue gas stacks, methane sensors and gas
/// detectors, with exceedances, spikes and maintenance flags.
fn recorded_day(registry: &Registry, rng: &mut Rng) -> Vec<Reading> {
    let mut points: Vec<_> = registry.points().collect();
    points.sort_by(|a, b| a.mn.cmp(&b.mn));
    let mut out = Vec::new();
    for (i, p) in points.iter().enumerate() {
        for minute in 0..24 * 60 {
            let hour = minute / 60;
            match p.kind {
                PointKind::FlueGasOutlet => {
                    let o2 = 7.0 + 2.0 * rng.unit();
                    out.push(reading(&p.mn, Metric::Oxygen, minute, o2, DataFlag::N));
                    let bad_hours = i % 4 == 0 && (5..8).contains(&hour);
                    let so2 = if bad_hours {
                        45.0 + 10.0 * rng.unit()
                    } else {
                        15.0 + 10.0 * rng.unit()
                    };
                    let flag = if i % 7 == 1 && hour == 12 {
                        DataFlag::M
                    } else {
                        DataFlag::N
                    };
                    out.push(reading(&p.mn, Metric::So2, minute, so2, flag));
                    out.push(reading(
                        &p.mn,
                        Metric::Nox,
                        minute,
                        20.0 + 20.0 * rng.unit(),
                        DataFlag::N,
                    ));
                }
                PointKind::MineWorkingFace
                | PointKind::MineHeadingFace
                | PointKind::MineReturnAirway => {
                    let spike = i % 3 == 0 && minute % 240 < 4;
                    let ch4 = if spike {
                        1.2 + 0.6 * rng.unit()
                    } else {
                        0.2 + 0.3 * rng.unit()
                    };
                    out.push(reading(&p.mn, Metric::MineCh4, minute, ch4, DataFlag::N));
                }
                PointKind::GasDetector => {
                    let spike = i % 5 == 0 && minute % 300 < 3;
                    let value = if spike {
                        30.0 + 30.0 * rng.unit()
                    } else {
                        2.0 * rng.unit()
                    };
                    let metric = if p.limits.iter().any(|l| l.metric == Metric::GasToxic) {
                        Metric::GasToxic
                    } else {
                        Metric::GasCombustible
                    };
                    out.push(reading(&p.mn, metric, minute, value, DataFlag::N));
                }
                _ => {}
            }
        }
    }
    out
}

/// Arrival order: each reading displaced by less than the allowed lateness.
fn shuffle_within_lateness(readings: &mut [Reading], rng: &mut Rng) {
    let mut keyed: Vec<(i64, u64, Reading)> = readings
        .iter()
        .map(|r| {
            let jitter = (rng.next() % (LATENESS_MS as u64)) as i64;
            (r.event_time.as_millis() + jitter, rng.next(), r.clone())
        })
        .collect();
    keyed.sort_by_key(|k| (k.0, k.1));
    for (slot, (_, _, r)) in readings.iter_mut().zip(keyed) {
        *slot = r;
    }
}

fn canonical(mut transitions: Vec<AlertTransition>) -> Vec<String> {
    transitions.sort_by_key(|t| t.alert_id);
    let mut lines: Vec<String> = transitions
        .iter()
        .map(|t| format!("{} {} {:?}", t.alert_id, t.rule_id, t.transition))
        .collect();
    lines.sort();
    lines
}

#[test]
fn same_transitions_with_1_2_and_4_workers() {
    let registry_text = include_str!("../../../config/registry.toml");
    let registry =
        Registry::from_toml_str(registry_text, "registry.toml").unwrap_or_else(|e| panic!("{e}"));
    let rules_text = include_str!("../../../config/rules.toml");
    let rules = Arc::new(
        RuleSet::compile(rules_text, "rules.toml", &registry).unwrap_or_else(|e| panic!("{e}")),
    );
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut readings = recorded_day(&registry, &mut rng);
    shuffle_within_lateness(&mut readings, &mut rng);
    assert!(readings.len() > 100_000, "{} readings", readings.len());
    let readings = Arc::new(readings);

    let one = run_batch(
        timely::Config::thread(),
        Arc::clone(&rules),
        Arc::clone(&readings),
        LATENESS_MS,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(one.late.is_empty(), "{} late readings", one.late.len());
    let fired = one
        .transitions
        .iter()
        .filter(|t| matches!(t.transition, Transition::Fired { .. }))
        .count();
    let resolved = one
        .transitions
        .iter()
        .filter(|t| matches!(t.transition, Transition::Resolved { .. }))
        .count();
    assert!(
        fired > 10 && resolved > 10,
        "fired {fired}, resolved {resolved}"
    );
    let kinds: std::collections::BTreeSet<_> =
        one.transitions.iter().map(|t| t.kind.as_str()).collect();
    assert!(
        kinds.contains("threshold")
            && kinds.contains("average")
            && kinds.contains("insufficient_data"),
        "{kinds:?}"
    );

    eprintln!(
        "{} readings -> {fired} fired, {resolved} resolved, kinds {kinds:?}",
        readings.len()
    );
    let expected = canonical(one.transitions);
    for workers in [2, 4] {
        let run = run_batch(
            timely::Config::process(workers),
            Arc::clone(&rules),
            Arc::clone(&readings),
            LATENESS_MS,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(run.late.is_empty());
        assert_eq!(
            canonical(run.transitions),
            expected,
            "{workers} workers differ from 1"
        );
    }
}
