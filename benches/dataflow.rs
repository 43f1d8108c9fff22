//! Detection throughput: readings per second per worker through the timely dataflow with the
//! example county's full rule set (config/rules.toml over config/registry.toml), with 1 and 2
//! workers, and the state kept per rule instance (series). A whole-pipeline measurement, timed
//! directly: `cargo bench --bench dataflow`. Under `cargo test` it runs once on a small input
//! as a smoke test. Results are in benches/RESULTS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_dataflow::{run_batch, state_bytes_per_instance, BatchOptions};
use argus_model::Registry;
use argus_rules::RuleSet;
use argus_sim::sample::{recorded_day, shuffle_within_lateness, Rng, LATENESS_MS};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let registry_text = include_str!("../config/registry.toml");
    let registry =
        Registry::from_toml_str(registry_text, "registry.toml").unwrap_or_else(|e| panic!("{e}"));
    let rules_text = include_str!("../config/rules.toml");
    let rules = Arc::new(
        RuleSet::compile(rules_text, "rules.toml", &registry).unwrap_or_else(|e| panic!("{e}")),
    );
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut readings = recorded_day(&registry, &mut rng);
    shuffle_within_lateness(&mut readings, &mut rng);
    if !full {
        readings.truncate(20_000);
    }
    let readings = Arc::new(readings);
    let runs = if full { 15 } else { 1 };

    let events = readings
        .iter()
        .filter(|i| matches!(i, argus_dataflow::Input::Event(_)))
        .count();
    println!(
        "{} inputs ({} readings, {events} events), {} rule instances",
        readings.len(),
        readings.len() - events,
        rules.len()
    );
    println!(
        "state per rule instance (series): {} bytes",
        state_bytes_per_instance()
    );
    for workers in [1_usize, 2] {
        let cpu_before = cpu_time();
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let out = run_batch(
                    timely::Config::process(workers),
                    Arc::clone(&rules),
                    Arc::clone(&readings),
                    BatchOptions::recorded(LATENESS_MS),
                )
                .unwrap_or_else(|e| panic!("{e}"));
                assert!(out.late.is_empty());
                started.elapsed()
            })
            .collect();
        let cpu = cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        times.sort();
        let median = times[times.len() / 2];
        let best = times[0];
        let rate = |d: Duration| readings.len() as f64 / d.as_secs_f64();
        println!(
            "{workers} worker(s): median {median:?} = {:.2} M inputs/s ({:.2} M/s per worker), best {best:?} = {:.2} M inputs/s",
            rate(median) / 1e6,
            rate(median) / 1e6 / workers as f64,
            rate(best) / 1e6,
        );
        // CPU time is what the VM's other tenants cannot take away: inputs per CPU second of
        // the whole process (workers, input feeding, collection), over all runs.
        if let Some(cpu) = cpu {
            println!(
                "{workers} worker(s): {:.2} M inputs per CPU second ({:.2} s CPU over {runs} runs)",
                (readings.len() * runs) as f64 / cpu / 1e6,
                cpu
            );
        }
    }
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 ticks/s).
fn cpu_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
