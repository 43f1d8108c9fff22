//! The generator's contracts: same seed and options give the same bytes; a province of
//! repeated counties runs; the truth file reads back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use argus_model::Registry;
use argus_rules::RuleSet;
use argus_sim::province::province;
use argus_sim::{Generator, Scenario, Truth, TruthRecord, TruthWriter};

const REGISTRY: &str = include_str!("../../../config/registry.toml");
const RULES: &str = include_str!("../../../config/rules.toml");

fn generator(registry: Registry, scenario: Scenario) -> Generator {
    let rules = RuleSet::compile(RULES, "rules.toml", &registry).unwrap();
    Generator::new(Arc::new(registry), Arc::new(rules), scenario).unwrap()
}

/// Every message (time, route, bytes) and truth entry of `generator`, as text.
fn everything(mut generator: Generator) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(group) = generator.next_group().unwrap() {
        for m in group.messages {
            out.push(format!(
                "{} {:?} {}",
                m.at,
                m.route,
                String::from_utf8_lossy(&m.payload)
            ));
        }
        for e in group.truth {
            out.push(serde_json::to_string(&e).unwrap());
        }
    }
    for e in generator.finish() {
        out.push(serde_json::to_string(&e).unwrap());
    }
    out
}

#[test]
fn same_seed_same_bytes() {
    let county = || Registry::from_toml_str(REGISTRY, "registry.toml").unwrap();
    let scenario = Scenario::default_day().with_hours(2.0);
    let a = everything(generator(county(), scenario.clone()));
    let b = everything(generator(county(), scenario.clone()));
    assert!(a.len() > 10_000, "{}", a.len());
    assert!(a == b, "two runs of one scenario differ");
    let other = Scenario {
        seed: 2,
        ..scenario
    };
    let c = everything(generator(county(), other));
    assert!(a != c, "another seed gives the same stream");
}

#[test]
fn a_province_is_simulated_with_its_own_violations() {
    let county = Registry::from_toml_str(REGISTRY, "registry.toml").unwrap();
    let (text, two) = province(&county, 2).unwrap();
    assert!(text.contains("E001-02"));
    let scenario = Scenario::default_day().with_hours(1.0);
    let count = |g: &mut Generator| {
        let (mut messages, mut truth) = (0, 0);
        while let Some(group) = g.next_group().unwrap() {
            messages += group.messages.len();
            truth += group.truth.len();
        }
        (messages, truth)
    };
    let (messages_one, truth_one) = count(&mut generator(county, scenario.clone()));
    let (messages, truth) = count(&mut generator(two, scenario));
    let ratio = messages as f64 / messages_one as f64;
    assert!(
        (1.9..2.1).contains(&ratio),
        "{messages} messages for two counties, {messages_one} for one"
    );
    assert!(
        truth as f64 >= 1.8 * truth_one as f64,
        "{truth} entries for two counties, {truth_one} for one"
    );
}

#[test]
fn the_truth_file_reads_back() {
    let county = Registry::from_toml_str(REGISTRY, "registry.toml").unwrap();
    let mut g = generator(county, Scenario::default_day().with_hours(0.5));
    let mut writer = TruthWriter::new(Vec::new());
    writer.write(&TruthRecord::Header(g.header())).unwrap();
    let mut written = Vec::new();
    while let Some(group) = g.next_group().unwrap() {
        for e in group.truth {
            writer.alert(&e).unwrap();
            written.push(e);
        }
    }
    writer
        .write(&TruthRecord::End {
            feed_end_ms: 1,
            wall_ms: 2,
        })
        .unwrap();
    let text = String::from_utf8(writer.into_inner()).unwrap();
    let truth = Truth::parse(&text).unwrap();
    assert_eq!(truth.entries, written);
    assert!(truth.header.is_some());
    assert_eq!(truth.feed_end_ms, Some(1));
    assert!(Truth::parse("{\"record\":\"nonsense\"}").is_err());
}

/// A resumed feed (`argus demo` run again) goes on where it stopped: skipping what an earlier
/// run sent gives exactly the groups (messages and truth) an uninterrupted run sends after it;
/// a scenario started afresh at the resume point does not (its world would jump there).
#[test]
fn a_feed_skipped_through_an_instant_goes_on_as_if_never_stopped() {
    let registry = || Registry::from_toml_str(REGISTRY, "registry.toml").unwrap();
    let scenario = Scenario::default_day().with_hours(3.0);
    let after = scenario.start.plus_millis(75 * 60_000 + 7_000);
    // Every group after `after`, as text, then what the end commits to.
    let groups_after = |mut g: Generator| {
        let mut out = Vec::new();
        while let Some(group) = g.next_group().unwrap() {
            if group.at <= after {
                continue;
            }
            for m in &group.messages {
                out.push(format!(
                    "{} {:?} {}",
                    m.at,
                    m.route,
                    String::from_utf8_lossy(&m.payload)
                ));
            }
            out.extend(
                group
                    .truth
                    .iter()
                    .map(|e| serde_json::to_string(e).unwrap()),
            );
        }
        out.extend(g.finish().iter().map(|e| serde_json::to_string(e).unwrap()));
        out
    };
    let whole = groups_after(generator(registry(), scenario.clone()));
    let mut resumed = generator(registry(), scenario.clone());
    let skipped = resumed.skip_through(after).unwrap();
    assert!(skipped > 100, "{skipped} groups skipped");
    let rest = groups_after(resumed);
    assert!(rest.len() > 1_000, "{}", rest.len());
    assert!(
        rest == whole,
        "the resumed feed differs from the uninterrupted one"
    );
    let afresh = groups_after(generator(
        registry(),
        Scenario {
            start: after.plus_millis(1),
            ..scenario
        },
    ));
    assert!(afresh != rest, "a scenario started afresh is another world");
}
