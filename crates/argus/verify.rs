//! `argus verify`: the alerts in the store (either backend, as the configuration says) against a
//! simulator's ground truth: per rule kind true and false positives, misses, and the delay from
//! a violation becoming judgeable to its alert being stored. Exit 1 if anything falls short.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use argus_config::{Settings, StoreBackend};
use argus_sim::{Observed, Truth, VerifyOptions};
use argus_store::{Backend, ClickHouseStore, SqliteStore, Store};

/// Simulated time per wall time over the truth's last clock marks (1 without two of them).
fn speed(truth: &Truth) -> f64 {
    let marks = &truth.clock;
    let (Some(first), Some(last)) = (marks.iter().rev().nth(10).or(marks.first()), marks.last())
    else {
        return 1.0;
    };
    let wall = (last.wall_ms - first.wall_ms) as f64;
    if wall <= 0.0 {
        return 1.0;
    }
    ((last.sim_ms - first.sim_ms) as f64 / wall).max(1.0)
}

/// Compare the store of `settings` with the truth file; print a table (or JSON).
pub async fn run(settings: &Settings, truth: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(truth)
        .with_context(|| format!("cannot read truth file {}", truth.display()))?;
    let truth = Truth::parse(&text).with_context(|| format!("truth file {}", truth.display()))?;
    let store = match &settings.store.backend {
        StoreBackend::ClickHouse => {
            Backend::ClickHouse(Box::new(ClickHouseStore::new(&settings.clickhouse)))
        }
        StoreBackend::Sqlite(path) => {
            if !path.exists() {
                anyhow::bail!("no embedded store at {}", path.display());
            }
            Backend::Sqlite(SqliteStore::open(path).context("cannot open the embedded store")?)
        }
    };
    let fired = store
        .fired_transitions()
        .await
        .with_context(|| format!("cannot read the alerts of {}", store.describe()))?;
    let observed: Vec<Observed> = fired
        .iter()
        .map(|row| Observed {
            alert_id: row.alert_id.clone(),
            rule_id: row.rule_id.clone(),
            kind: row.kind.clone(),
            enterprise: row.enterprise_id.clone(),
            point: row.source.clone(),
            metric: Some(row.metric.clone()),
            started_ms: row.started_ms,
            stored_ms: Some(row.recorded_ms),
            muted: row.muted != 0,
        })
        .collect();
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let now = argus_model::Timestamp::from_system_time(SystemTime::now()).as_millis();
    let lateness = ms(settings.rules.allowed_lateness);
    // A source that falls silent holds Argus's event time back until it has been idle for
    // `idle_source_after` of wall time: in simulated time, that times the simulator's speed.
    let held_back = (ms(settings.rules.idle_source_after) as f64 * speed(&truth)) as i64;
    let judged_until = truth.judged_until_ms(
        now,
        lateness.saturating_add(held_back),
        ms(settings.rules.max_delay),
    );
    let options = VerifyOptions {
        judged_until_ms: judged_until,
        allowed_lateness_ms: lateness,
    };
    let report = argus_sim::verify(&truth, &observed, &options);
    if json {
        crate::say(&serde_json::to_string_pretty(&report).context("cannot render the report")?)?;
    } else {
        crate::say(&format!(
            "{} alerts stored in {}, {} expected; recall demanded up to {}",
            observed.len(),
            store.describe(),
            truth.entries.len(),
            argus_model::Timestamp(judged_until).to_rfc3339()
        ))?;
        crate::say(&report.to_string())?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
