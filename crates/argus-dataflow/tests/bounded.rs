//! Detection state is bounded whatever the input invents (issue 11, item 4): sources nobody
//! registered raise one alert each up to a bound, then one alert together, with no state each.

use std::sync::Arc;

use argus_dataflow::{run_batch, BatchOptions, Input, MAX_UNREGISTERED_SOURCES, OVERFLOW_SOURCE};
use argus_model::{AlertKind, DataFlag, MetricCode, Reading, SourceId, Timestamp};
use argus_rules::Transition;

mod shipped;

#[test]
fn invented_sources_beyond_the_bound_share_one_alert() {
    let rules = shipped::rules();
    let invented = MAX_UNREGISTERED_SOURCES + 500;
    let at = Timestamp(1_795_672_800_000);
    let inputs: Vec<Input> = (0..invented)
        .flat_map(|i| {
            let source = SourceId::from(format!("FAKE{i:07}").as_str());
            (0..2).map(move |k| {
                Input::Reading(Reading {
                    source: source.clone(),
                    metric: MetricCode::parse("a21026"),
                    value: 1.0,
                    flag: DataFlag::N,
                    event_time: Timestamp(at.0 + k * 60_000),
                    receive_time: Timestamp(at.0 + k * 60_000),
                    interval: Default::default(),
                    corrected: None,
                })
            })
        })
        .collect();
    let out = run_batch(
        timely::Config::thread(),
        rules,
        Arc::new(inputs),
        BatchOptions::recorded(300_000),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let fired: Vec<&str> = out
        .transitions
        .iter()
        .filter(|t| t.kind == AlertKind::UnregisteredSource)
        .filter(|t| matches!(t.transition, Transition::Fired { .. }))
        .map(|t| t.instance.point.as_str())
        .collect();
    assert_eq!(fired.len(), MAX_UNREGISTERED_SOURCES + 1);
    assert_eq!(fired.iter().filter(|p| **p == OVERFLOW_SOURCE).count(), 1);
}
