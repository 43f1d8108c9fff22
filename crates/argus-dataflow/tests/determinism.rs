//! Determinism: one recorded input, shuffled within the allowed lateness, gives exactly the same
//! alert transitions with 1, 2 and 4 workers.

use std::sync::Arc;

use argus_dataflow::sample::{recorded_day, shuffle_within_lateness, Rng, LATENESS_MS};
use argus_dataflow::{run_batch, AlertTransition};
use argus_model::Registry;
use argus_rules::{RuleSet, Transition};

fn canonical(mut transitions: Vec<AlertTransition>) -> Vec<String> {
    transitions.sort_by_key(|t| t.alert_id);
    let mut lines: Vec<String> = transitions
        .iter()
        .map(|t| format!("{} {} {:?}", t.alert_id, t.instance.rule_id, t.transition))
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
