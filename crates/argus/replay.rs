//! `argus replay`: recorded readings and enterprise events through the rules on timely, alert
//! transitions out as JSON lines. The same input gives the same lines whatever the number of
//! workers or processes.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use argus_config::Settings;
use argus_dataflow::{run_batch, AlertTransition, BatchOptions, Input};
use argus_ingest::events::decode_events;
use argus_ingest::json::decode_readings;
use argus_ingest::{Record, TimeWindow, TopicNames};
use argus_model::{Registry, Timestamp};

/// Run the replay; prints transitions on stdout and a summary on stderr.
pub fn run(
    settings: &Settings,
    registry: &Registry,
    input: &Path,
    timely_args: Vec<String>,
) -> anyhow::Result<()> {
    let rules = crate::load_rules(&settings.rules.path, registry)?;
    let inputs = read_input(input)?;
    let config = timely::Config::from_args(timely_args.into_iter())
        .map_err(|e| anyhow::anyhow!("bad timely arguments: {e}"))?;
    let lateness = i64::try_from(settings.rules.allowed_lateness.as_millis()).unwrap_or(i64::MAX);
    let count = inputs.len();
    let options = BatchOptions::recorded(lateness);
    let output = run_batch(config, Arc::new(rules), Arc::new(inputs), options)
        .map_err(|e| anyhow::anyhow!("dataflow failed: {e}"))?;
    let mut lines: Vec<(u64, String)> = output
        .transitions
        .iter()
        .map(|t| (t.alert_id, line(t)))
        .collect();
    lines.sort();
    for (_, l) in &lines {
        crate::say(l)?;
    }
    eprintln!(
        "replayed {count} readings and events: {} transitions, {} late inputs not judged",
        lines.len(),
        output.late.len()
    );
    Ok(())
}

fn read_input(path: &Path) -> anyhow::Result<Vec<Input>> {
    let input: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )
    };
    // Recorded data is judged as recorded: no plausibility window on its event times.
    let window = TimeWindow {
        max_future_ms: i64::MAX,
        max_age_ms: i64::MAX,
    };
    let received = Timestamp::from_system_time(SystemTime::now());
    let mut inputs = Vec::new();
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let line =
            line.with_context(|| format!("cannot read {} line {}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let decoded = if is_event(&line) {
            decode_events(line.as_bytes(), received, &window, TopicNames::default()).map(
                |records| {
                    records
                        .into_iter()
                        .map(|record| match record {
                            Record::Reading(r) => Input::Reading(r),
                            Record::Event(e) => Input::Event(Box::new(e)),
                        })
                        .collect::<Vec<_>>()
                },
            )
        } else {
            decode_readings(line.as_bytes(), received, &window, TopicNames::default())
                .map(|readings| readings.into_iter().map(Input::Reading).collect())
        };
        match decoded {
            Ok(decoded) => inputs.extend(decoded),
            Err(e) => bail!("{} line {}: {e}", path.display(), n + 1),
        }
    }
    Ok(inputs)
}

/// Whether a line holds enterprise events (objects with a `type`) rather than readings.
fn is_event(line: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(o)) => o.contains_key("type"),
        Ok(serde_json::Value::Array(a)) => a
            .first()
            .and_then(serde_json::Value::as_object)
            .is_some_and(|o| o.contains_key("type")),
        _ => false,
    }
}

fn line(t: &AlertTransition) -> String {
    serde_json::to_string(&t.view()).unwrap_or_default()
}
