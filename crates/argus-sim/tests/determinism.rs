//! Determinism: one recorded input of readings and events, shuffled within the allowed lateness
//! and with a share of its readings delivered twice, gives exactly the same alert transitions
//! with 1, 2 and 4 workers as the input delivered once, and every rule kind of the shipped rules
//! finds something in it.

use std::sync::Arc;

use argus_dataflow::{run_batch, AlertTransition, BatchOptions, Input};
use argus_model::Registry;
use argus_rules::{RuleSet, Transition};
use argus_sim::sample::{recorded_day, shuffle_within_lateness, Rng, LATENESS_MS};

fn canonical(mut transitions: Vec<AlertTransition>) -> Vec<String> {
    transitions.sort_by_key(|t| t.alert_id);
    let mut lines: Vec<String> = transitions
        .iter()
        .map(|t| {
            format!(
                "{} {} {} {:?}",
                t.alert_id, t.instance.rule_id, t.muted, t.transition
            )
        })
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
    let day = recorded_day(&registry, &mut rng);
    // Delivery is at least once: one reading in 50 comes twice (each copy arriving at its own
    // time within the lateness), and the transitions are those of the input without them.
    let mut inputs = day.clone();
    inputs.extend(
        day.iter()
            .filter(|i| matches!(i, Input::Reading(_)))
            .step_by(50)
            .cloned(),
    );
    inputs.sort_by_key(Input::event_time);
    shuffle_within_lateness(&mut inputs, &mut rng);
    let mut once = day;
    shuffle_within_lateness(&mut once, &mut rng);
    assert!(inputs.len() > 300_000, "{} inputs", inputs.len());
    let events = inputs
        .iter()
        .filter(|i| matches!(i, Input::Event(_)))
        .count();
    assert!(events > 20, "{events} events");
    let readings = Arc::new(inputs);

    let one = run_batch(
        timely::Config::thread(),
        Arc::clone(&rules),
        Arc::clone(&readings),
        BatchOptions::recorded(LATENESS_MS),
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
    for kind in [
        "threshold",
        "average",
        "insufficient_data",
        "constant_value",
        "flag_duration",
        "missing_data",
        "unregistered_source",
        "treatment_stopped",
        "power_cut_failure",
    ] {
        assert!(kinds.contains(kind), "no {kind} alert in {kinds:?}");
    }
    let muted = one.transitions.iter().filter(|t| t.muted).count();
    assert!(muted > 0, "no alert muted by the maintenance notices");

    eprintln!(
        "{} inputs -> {fired} fired, {resolved} resolved, {muted} muted, kinds {kinds:?}",
        readings.len()
    );
    let mut per_rule = std::collections::BTreeMap::new();
    for t in &one.transitions {
        let rule = t
            .instance
            .rule_id
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let counts: &mut (usize, usize, usize) = per_rule.entry(rule).or_default();
        match t.transition {
            Transition::Fired { .. } => counts.0 += 1,
            Transition::Updated { .. } => counts.1 += 1,
            Transition::Resolved { .. } => counts.2 += 1,
        }
    }
    eprintln!("(fired, updated, resolved) per rule: {per_rule:?}");
    let updated = one
        .transitions
        .iter()
        .filter(|t| matches!(t.transition, Transition::Updated { .. }))
        .count();
    assert!(updated > 0, "no alert reported as getting worse");
    let expected = canonical(one.transitions);
    let without_duplicates = run_batch(
        timely::Config::thread(),
        Arc::clone(&rules),
        Arc::new(once),
        BatchOptions::recorded(LATENESS_MS),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        canonical(without_duplicates.transitions),
        expected,
        "readings delivered twice change the transitions"
    );
    for workers in [2, 4] {
        let run = run_batch(
            timely::Config::process(workers),
            Arc::clone(&rules),
            Arc::clone(&readings),
            BatchOptions::recorded(LATENESS_MS),
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
