//! Comparing the alerts Argus stored with the ground truth: per rule kind, true positives,
//! false positives, misses, precision, recall and detection delay.
//!
//! An alert matches a truth entry with the same rule id, point and metric whose start is
//! within the kind's tolerance of the alert's `started_at` (the closest such entry not matched
//! yet): every rule reports `started_at` at an event time the simulator chose (the breaching
//! reading, the window start, the reading before a gap, the first reading of a run), so the
//! tolerance only absorbs one reporting interval (60 s) for the rules whose start is a
//! reading of a run, and is 0 for regulatory windows. Each entry matches at most one alert;
//! alerts left over are false positives; a match whose `muted` differs counts as both a false
//! positive and a miss. Recall is demanded only of entries due before `judged_until_ms` (what
//! Argus's event time has passed); precision uses every entry, due or not.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Truth, TruthEntry};

/// An alert as Argus stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The alert id.
    pub alert_id: String,
    /// The rule id (with `:min`/`:max`/`:<feed>` suffixes as stored).
    pub rule_id: String,
    /// The alert kind (`AlertKind::as_str`).
    pub kind: String,
    /// The enterprise.
    pub enterprise: String,
    /// The point.
    pub point: String,
    /// The metric code; none, empty or `*` for rules about a whole point.
    pub metric: Option<String>,
    /// `started_at`, epoch ms.
    pub started_ms: i64,
    /// When the alert row was first written, epoch ms (wall clock); none when unknown.
    pub stored_ms: Option<i64>,
    /// Whether it was stored muted.
    pub muted: bool,
}

/// How to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Recall is demanded of entries due before this event time (epoch ms).
    pub judged_until_ms: i64,
    /// Argus's allowed lateness: an entry is judgeable once the simulator has sent data this
    /// much past its due time (for detection delays).
    pub allowed_lateness_ms: i64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            judged_until_ms: i64::MAX,
            allowed_lateness_ms: 300_000,
        }
    }
}

/// One line of the report: a rule kind (`average/insufficient_data` for the second alert kind
/// of the average rule).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The rule kind.
    pub kind: String,
    /// Truth entries of this kind.
    pub expected: usize,
    /// Of which due (recall is demanded).
    pub due: usize,
    /// Of which muted.
    pub muted: usize,
    /// Alerts matching an entry.
    pub true_positives: usize,
    /// Alerts matching no entry.
    pub false_positives: usize,
    /// Due entries no alert matched.
    pub missed: usize,
    /// true / (true + false positives); 1 when there were no alerts.
    pub precision: f64,
    /// matched due / due; 1 when nothing was due.
    pub recall: f64,
    /// Median detection delay (alert stored minus when it became judgeable), ms.
    pub delay_p50_ms: Option<i64>,
    /// Largest detection delay, ms.
    pub delay_max_ms: Option<i64>,
}

/// The comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Up to which event time recall was demanded.
    pub judged_until_ms: i64,
    /// Per rule kind, sorted.
    pub rows: Vec<Row>,
    /// Alerts no entry explains (at most 50).
    pub false_positives: Vec<Observed>,
    /// Due entries no alert matched (at most 50).
    pub missed: Vec<TruthEntry>,
}

impl Report {
    /// Every kind at 100 % precision and recall, and something was due.
    pub fn passed(&self) -> bool {
        self.rows.iter().any(|r| r.due > 0)
            && self
                .rows
                .iter()
                .all(|r| r.false_positives == 0 && r.missed == 0)
    }

    /// The row of `kind`.
    pub fn row(&self, kind: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.kind == kind)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<34} {:>6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7} {:>9} {:>9}",
            "kind",
            "truth",
            "due",
            "muted",
            "found",
            "false",
            "missed",
            "precision",
            "recall",
            "delay p50",
            "delay max"
        )?;
        let secs = |ms: Option<i64>| {
            ms.map_or("-".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
        };
        for r in &self.rows {
            writeln!(
                f,
                "{:<34} {:>6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8.1}% {:>6.1}% {:>9} {:>9}",
                r.kind,
                r.expected,
                r.due,
                r.muted,
                r.true_positives,
                r.false_positives,
                r.missed,
                100.0 * r.precision,
                100.0 * r.recall,
                secs(r.delay_p50_ms),
                secs(r.delay_max_ms)
            )?;
        }
        for o in &self.false_positives {
            writeln!(
                f,
                "false positive: {} {} {} {} started {}{}",
                o.rule_id,
                o.kind,
                o.point,
                o.metric.as_deref().unwrap_or("-"),
                argus_model::Timestamp(o.started_ms),
                if o.muted { " (muted)" } else { "" }
            )?;
        }
        for e in &self.missed {
            writeln!(
                f,
                "missed: {} {} {} {} started {}{}: {}",
                e.rule_id,
                e.kind,
                e.point,
                e.metric.as_deref().unwrap_or("-"),
                argus_model::Timestamp(e.start_ms),
                if e.muted { " (muted)" } else { "" },
                e.what
            )?;
        }
        writeln!(f, "{}", if self.passed() { "PASSED" } else { "FAILED" })
    }
}

/// The metric of a rule about a whole point, however it is written.
pub(crate) fn norm_metric(metric: Option<&str>) -> &str {
    match metric {
        None | Some("") | Some("*") => "",
        Some(m) => m,
    }
}

/// Tolerance on `started_at`, per rule kind.
fn tolerance_ms(rule_kind: &str) -> i64 {
    match rule_kind {
        "average" => 0,
        _ => 60_000,
    }
}

fn row_kind(rule_kind: &str, alert_kind: &str) -> String {
    if rule_kind == "average" && alert_kind == "insufficient_data" {
        "average/insufficient_data".to_owned()
    } else {
        rule_kind.to_owned()
    }
}

/// The rule kind of an alert no entry explains: by its rule id's base (before `:`) among the
/// entries, else by its alert kind.
fn guess_rule_kind(o: &Observed, by_rule: &BTreeMap<String, String>) -> String {
    let base = o.rule_id.split(':').next().unwrap_or(&o.rule_id);
    if let Some(k) = by_rule.get(base) {
        return k.clone();
    }
    match o.kind.as_str() {
        "insufficient_data" | "average" => "average".to_owned(),
        other => other.to_owned(),
    }
}

fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(idx).copied()
}

/// Compare `observed` alerts with `truth`.
pub fn verify(truth: &Truth, observed: &[Observed], options: &VerifyOptions) -> Report {
    let entries = &truth.entries;
    let mut by_key: BTreeMap<(&str, &str, &str), Vec<usize>> = BTreeMap::new();
    let mut by_rule = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_key.entry(e.key()).or_default().push(i);
        let base = e.rule_id.split(':').next().unwrap_or(&e.rule_id).to_owned();
        by_rule.entry(base).or_insert_with(|| e.rule_kind.clone());
    }
    let mut matched: Vec<Option<usize>> = vec![None; entries.len()];
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut delays: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut report = Report {
        judged_until_ms: options.judged_until_ms,
        ..Report::default()
    };
    let mut order: Vec<usize> = (0..observed.len()).collect();
    order.sort_by_key(|&i| (observed[i].started_ms, observed[i].alert_id.clone()));
    for oi in order {
        let o = &observed[oi];
        let key = (
            o.rule_id.as_str(),
            o.point.as_str(),
            norm_metric(o.metric.as_deref()),
        );
        let best = by_key.get(&key).and_then(|candidates| {
            candidates
                .iter()
                .copied()
                .filter(|&i| matched[i].is_none())
                .filter(|&i| {
                    (entries[i].start_ms - o.started_ms).abs()
                        <= tolerance_ms(&entries[i].rule_kind)
                })
                .filter(|&i| entries[i].kind == o.kind)
                .min_by_key(|&i| (entries[i].start_ms - o.started_ms).abs())
        });
        match best {
            Some(i) if entries[i].muted == o.muted => {
                matched[i] = Some(oi);
                let e = &entries[i];
                let kind = row_kind(&e.rule_kind, &e.kind);
                rows.entry(kind.clone()).or_default().true_positives += 1;
                let judgeable = truth.wall_when_sent(e.due_ms + options.allowed_lateness_ms);
                if let (Some(stored), Some(judgeable)) = (o.stored_ms, judgeable) {
                    delays.entry(kind).or_default().push(stored - judgeable);
                }
            }
            _ => {
                let kind = guess_rule_kind(o, &by_rule);
                rows.entry(row_kind(&kind, &o.kind))
                    .or_default()
                    .false_positives += 1;
                if report.false_positives.len() < 50 {
                    report.false_positives.push(o.clone());
                }
            }
        }
    }
    for (i, e) in entries.iter().enumerate() {
        let row = rows.entry(row_kind(&e.rule_kind, &e.kind)).or_default();
        row.expected += 1;
        row.muted += usize::from(e.muted);
        let due = e.due_ms < options.judged_until_ms;
        if due {
            row.due += 1;
            if matched[i].is_none() {
                row.missed += 1;
                if report.missed.len() < 50 {
                    report.missed.push(e.clone());
                }
            }
        }
    }
    for (kind, mut row) in rows {
        row.kind = kind.clone();
        let found = row.true_positives + row.false_positives;
        row.precision = if found == 0 {
            1.0
        } else {
            row.true_positives as f64 / found as f64
        };
        row.recall = if row.due == 0 {
            1.0
        } else {
            (row.due - row.missed) as f64 / row.due as f64
        };
        if let Some(d) = delays.get_mut(&kind) {
            d.sort_unstable();
            row.delay_p50_ms = percentile(d, 0.5);
            row.delay_max_ms = d.last().copied();
        }
        report.rows.push(row);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cause;

    fn entry(rule: &str, start: i64, due: i64) -> TruthEntry {
        TruthEntry {
            rule_kind: "threshold".to_owned(),
            kind: "threshold".to_owned(),
            rule_id: rule.to_owned(),
            enterprise: "E1".to_owned(),
            point: "P1".to_owned(),
            metric: Some("a21026".to_owned()),
            start_ms: start,
            due_ms: due,
            muted: false,
            cause: Cause::Injected,
            what: String::new(),
        }
    }

    fn alert(rule: &str, start: i64) -> Observed {
        Observed {
            alert_id: format!("{rule}{start}"),
            rule_id: rule.to_owned(),
            kind: "threshold".to_owned(),
            enterprise: "E1".to_owned(),
            point: "P1".to_owned(),
            metric: Some("a21026".to_owned()),
            started_ms: start,
            stored_ms: None,
            muted: false,
        }
    }

    #[test]
    fn matches_count_once_and_recall_waits_for_the_watermark() {
        let truth = Truth {
            entries: vec![entry("r", 1_000, 1_000), entry("r", 500_000, 500_000)],
            ..Truth::default()
        };
        let options = VerifyOptions {
            judged_until_ms: 100_000,
            ..VerifyOptions::default()
        };
        // The second entry is not due: its absence is no miss.
        let report = verify(&truth, &[alert("r", 1_000)], &options);
        assert!(report.passed(), "{report}");
        // Two alerts for one entry: one is a false positive; another rule is one too.
        let report = verify(
            &truth,
            &[alert("r", 1_000), alert("r", 2_000), alert("s", 1_000)],
            &options,
        );
        let row = report.row("threshold").cloned().unwrap_or_default();
        assert_eq!(
            (row.true_positives, row.false_positives, row.missed),
            (1, 2, 0)
        );
        assert!(!report.passed());
        // Nothing found: a miss.
        let report = verify(&truth, &[], &options);
        assert_eq!(report.row("threshold").map(|r| r.missed), Some(1));
        assert!(report.to_string().contains("FAILED"));
    }
}
