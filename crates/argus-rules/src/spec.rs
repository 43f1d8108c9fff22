//! The rules file (`config/rules.toml`): rules declared once and bound to the registry's limits,
//! with per-enterprise and per-point overrides, compiled into one [`Instance`] per rule, point
//! and metric. Errors name the file, line, field and reason, like the registry's.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use argus_model::registry::{LimitBasis, LimitBound, MonitoringPoint, PointKind};
use argus_model::{
    AlertKind, DataFlag, Interval, Metric, MetricCode, MetricDomain, Registry, Severity, SourceId,
};
use serde::Deserialize;
use toml::Spanned;

use crate::consistency::{Consistency, ConsistencyParams};
use crate::crossfeed::{PowerCutParams, TreatmentParams};
use crate::fnv::FnvHashMap;
use crate::quality::{
    ConstantValue, ConstantValueParams, FlagDuration, FlagDurationParams, MissingData,
    MissingDataParams, OutOfRange, OutOfRangeParams, ReadingConflict, ReadingConflictParams,
    SuddenJump, SuddenJumpParams, ZeroWhileOperating, ZeroWhileOperatingParams,
};
use crate::{AverageParams, Comparison, O2Correction, Period, SeriesKey, ThresholdParams};

/// A rules file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rules {origin}{}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default(), if field.is_empty() { String::new() } else { format!(" at {field}") })]
pub struct RulesError {
    /// The file.
    pub origin: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// Field path, empty for a syntax error.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Which registry limits a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSelector {
    /// Max, min and range limits judged on each value.
    Instant,
    /// Max, min and range limits judged on hourly averages.
    HourlyAvg,
    /// Max, min and range limits judged on daily averages.
    DailyAvg,
    /// Coal-mine methane: the alarm level, cleared below the restore level.
    MethaneAlarm,
    /// Coal-mine methane: the power-cut level, cleared below the restore level.
    MethanePowerCut,
    /// Gas detectors: the level-1 alarm.
    GasLevel1,
    /// Gas detectors: the level-2 alarm.
    GasLevel2,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    overrides: Vec<Spanned<RawOverride>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "kind")]
enum RawRule {
    Threshold {
        id: String,
        limits: LimitSelector,
        severity: Severity,
        #[serde(default)]
        for_secs: u64,
        #[serde(default)]
        n_consecutive: u32,
        #[serde(default)]
        keep_firing_for_secs: u64,
    },
    Average {
        id: String,
        limits: LimitSelector,
        severity: Severity,
        min_valid_samples: u32,
        #[serde(default = "default_min_valid_minutes")]
        min_valid_minutes: u32,
        #[serde(default = "default_o2_max_measured_pct")]
        o2_max_measured_pct: f64,
        #[serde(default = "default_o2_max_age_secs")]
        o2_max_age_secs: u64,
    },
    ConstantValue {
        id: String,
        severity: Severity,
        #[serde(default)]
        point_kinds: Vec<PointKind>,
        #[serde(default)]
        metrics: Vec<String>,
        min_readings: u32,
        #[serde(default)]
        min_duration_secs: u64,
        #[serde(default)]
        epsilon: f64,
    },
    ZeroWhileOperating {
        id: String,
        severity: Severity,
        #[serde(default)]
        point_kinds: Vec<PointKind>,
        #[serde(default)]
        metrics: Vec<String>,
        operation_metric: String,
        operating_above: f64,
        #[serde(default)]
        zero_epsilon: f64,
        min_duration_secs: u64,
    },
    OutOfRange {
        id: String,
        severity: Severity,
        #[serde(default)]
        point_kinds: Vec<PointKind>,
        #[serde(default)]
        metrics: Vec<String>,
        range_min: f64,
        range_max: f64,
    },
    SuddenJump {
        id: String,
        severity: Severity,
        #[serde(default)]
        point_kinds: Vec<PointKind>,
        #[serde(default)]
        metrics: Vec<String>,
        max_step: f64,
        max_gap_secs: u64,
    },
    FlagDuration {
        id: String,
        severity: Severity,
        #[serde(default)]
        point_kinds: Vec<PointKind>,
        #[serde(default)]
        metrics: Vec<String>,
        max_flag_secs: u64,
        #[serde(default)]
        flags: Vec<char>,
    },
    MissingData {
        id: String,
        severity: Severity,
        #[serde(default)]
        point_kinds: Vec<PointKind>,
        max_gap_secs: u64,
    },
    ReadingConflict {
        id: String,
        severity: Severity,
        #[serde(default)]
        point_kinds: Vec<PointKind>,
        quiet_secs: u64,
    },
    InconsistentAverage {
        id: String,
        severity: Severity,
        #[serde(default)]
        point_kinds: Vec<PointKind>,
        #[serde(default)]
        metrics: Vec<String>,
        interval: Interval,
        tolerance_pct: f64,
        #[serde(default)]
        tolerance_abs: f64,
        #[serde(default = "default_min_valid_minutes")]
        min_valid_minutes: u32,
        #[serde(default = "default_o2_max_measured_pct")]
        o2_max_measured_pct: f64,
        #[serde(default = "default_o2_max_age_secs")]
        o2_max_age_secs: u64,
    },
    TreatmentStopped {
        id: String,
        severity: Severity,
        min_duration_secs: u64,
        max_staleness_secs: u64,
    },
    PowerCutFailure {
        id: String,
        severity: Severity,
        max_feedback_delay_secs: u64,
    },
    UnregisteredSource {
        id: String,
        severity: Severity,
    },
}

impl RawRule {
    fn id(&self) -> &str {
        match self {
            RawRule::Threshold { id, .. }
            | RawRule::Average { id, .. }
            | RawRule::ConstantValue { id, .. }
            | RawRule::ZeroWhileOperating { id, .. }
            | RawRule::OutOfRange { id, .. }
            | RawRule::SuddenJump { id, .. }
            | RawRule::FlagDuration { id, .. }
            | RawRule::MissingData { id, .. }
            | RawRule::ReadingConflict { id, .. }
            | RawRule::InconsistentAverage { id, .. }
            | RawRule::TreatmentStopped { id, .. }
            | RawRule::PowerCutFailure { id, .. }
            | RawRule::UnregisteredSource { id, .. } => id,
        }
    }

    fn severity(&self) -> Severity {
        match self {
            RawRule::Threshold { severity, .. }
            | RawRule::Average { severity, .. }
            | RawRule::ConstantValue { severity, .. }
            | RawRule::ZeroWhileOperating { severity, .. }
            | RawRule::OutOfRange { severity, .. }
            | RawRule::SuddenJump { severity, .. }
            | RawRule::FlagDuration { severity, .. }
            | RawRule::MissingData { severity, .. }
            | RawRule::ReadingConflict { severity, .. }
            | RawRule::InconsistentAverage { severity, .. }
            | RawRule::TreatmentStopped { severity, .. }
            | RawRule::PowerCutFailure { severity, .. }
            | RawRule::UnregisteredSource { severity, .. } => *severity,
        }
    }

    /// Check what can be checked without a point; parameters are checked when bound.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let scope = match self {
            RawRule::Average { limits, .. }
                if !matches!(limits, LimitSelector::HourlyAvg | LimitSelector::DailyAvg) =>
            {
                let reason = "an average rule binds hourly_avg or daily_avg limits";
                return Err(("limits", reason.to_owned()));
            }
            RawRule::Threshold {
                limits: LimitSelector::HourlyAvg | LimitSelector::DailyAvg,
                ..
            } => {
                let reason = "a threshold rule binds instant, methane or gas limits; averages are average rules";
                return Err(("limits", reason.to_owned()));
            }
            RawRule::OutOfRange { metrics, .. } | RawRule::SuddenJump { metrics, .. }
                if metrics.is_empty() =>
            {
                let reason = "name the metrics: ranges and steps differ from one metric to another";
                return Err(("metrics", reason.to_owned()));
            }
            RawRule::ZeroWhileOperating {
                operation_metric,
                metrics,
                ..
            } => {
                metric(operation_metric).map_err(|reason| ("operation_metric", reason))?;
                Some(metrics)
            }
            RawRule::ConstantValue { metrics, .. }
            | RawRule::InconsistentAverage { metrics, .. }
            | RawRule::OutOfRange { metrics, .. }
            | RawRule::SuddenJump { metrics, .. }
            | RawRule::FlagDuration { metrics, .. } => Some(metrics),
            _ => None,
        };
        if let Some(metrics) = scope {
            for code in metrics {
                metric(code).map_err(|reason| ("metrics", reason))?;
            }
        }
        if let RawRule::FlagDuration { flags, .. } = self {
            for c in flags {
                if DataFlag::from_char(*c).is_none() {
                    return Err(("flags", format!("unknown data flag {c:?}")));
                }
            }
        }
        Ok(())
    }
}

fn metric(code: &str) -> Result<Metric, String> {
    Metric::from_code(code).ok_or_else(|| format!("unknown metric code {code:?}"))
}

fn default_o2_max_measured_pct() -> f64 {
    19.0
}

/// HJ 75-2017: an hourly value needs at least 45 valid minute values.
fn default_min_valid_minutes() -> u32 {
    45
}

fn default_o2_max_age_secs() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    rule: String,
    #[serde(default)]
    enterprise: Option<String>,
    #[serde(default)]
    point: Option<String>,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// What a compiled rule instance runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Machine {
    /// A threshold state machine.
    Threshold(ThresholdParams),
    /// A regulatory average state machine.
    Average(AverageParams),
    /// Constant values.
    ConstantValue(ConstantValueParams),
    /// Zero values while the point operates, operation read from `operation` of the same point.
    ZeroWhileOperating {
        /// The machine's parameters.
        params: ZeroWhileOperatingParams,
        /// The metric that shows operation (flue gas flow, temperature).
        operation: Metric,
    },
    /// Values beyond the instrument's range.
    OutOfRange(OutOfRangeParams),
    /// Sudden jumps.
    SuddenJump(SuddenJumpParams),
    /// Fault, maintenance or calibration flags held too long.
    FlagDuration(FlagDurationParams),
    /// No reading of the point, whatever its metric, for too long in event time.
    MissingData(MissingDataParams),
    /// Readings of the point delivered again with another value than the one on record.
    ReadingConflict(ReadingConflictParams),
    /// The logger's own averages against Argus's (`inconsistent_average`).
    Consistency(ConsistencyParams),
    /// Treatment power below its running threshold while a served production line runs.
    TreatmentStopped(TreatmentParams),
    /// Methane at the power-cut level without the power cut of `power_feed` in time.
    PowerCutFailure {
        /// The machine's parameters.
        params: PowerCutParams,
        /// The power feed (its `mine_power` readings and power-cut feedback events).
        power_feed: SourceId,
    },
    /// A source the registry does not know: one alert, fired by its first reading, never
    /// resolved (the registry, not the data, settles it).
    Unregistered,
}

/// One rule bound to one point and metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Rule id, with a `:min` / `:max` suffix for the two sides of a range limit. Part of the
    /// deterministic alert id.
    pub rule_id: Arc<str>,
    /// The alert kind it raises.
    pub kind: AlertKind,
    /// Severity of its alerts.
    pub severity: Severity,
    /// The enterprise of the point (empty for an unregistered source).
    pub enterprise_id: Arc<str>,
    /// The point.
    pub point: SourceId,
    /// The metric judged; none for rules about the whole point (missing data, unregistered).
    pub metric: Option<Metric>,
    /// The standard the limit comes from (empty for rules not bound to a limit).
    pub standard: Arc<str>,
    /// The machine and its parameters.
    pub machine: Machine,
}

impl Instance {
    /// The key of its alerts: point and metric (`*` for rules about the whole point).
    pub fn series_key(&self) -> SeriesKey {
        SeriesKey {
            source: self.point.clone(),
            metric: match self.metric {
                Some(metric) => MetricCode::Known(metric),
                None => MetricCode::Unknown(Arc::from("*")),
            },
        }
    }

    /// The limit its alerts are judged against, for limit rules (threshold, average).
    pub fn limit_value(&self) -> Option<f64> {
        match &self.machine {
            Machine::Threshold(p) => Some(p.limit()),
            Machine::Average(p) => Some(p.limit),
            _ => None,
        }
    }

    /// The sources whose readings (or events) it takes: its point and, for cross-feed rules,
    /// the related points.
    pub fn sources(&self) -> Vec<SourceId> {
        let mut sources = vec![self.point.clone()];
        match &self.machine {
            Machine::TreatmentStopped(params) => sources.extend(params.lines().cloned()),
            Machine::PowerCutFailure { power_feed, .. } => sources.push(power_feed.clone()),
            _ => {}
        }
        sources
    }
}

/// The rule for readings of sources the registry does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct UnregisteredRule {
    /// Rule id.
    pub rule_id: Arc<str>,
    /// Severity of its alerts.
    pub severity: Severity,
}

impl UnregisteredRule {
    /// The instance for one unknown source: one alert per source, started by its first reading.
    pub fn instance(&self, source: &SourceId) -> Instance {
        Instance {
            rule_id: Arc::clone(&self.rule_id),
            kind: AlertKind::UnregisteredSource,
            severity: self.severity,
            enterprise_id: Arc::from(""),
            point: source.clone(),
            metric: None,
            standard: Arc::from(""),
            machine: Machine::Unregistered,
        }
    }
}

/// Every rule instance of a county, grouped by enterprise: the unit the dataflow keeps on one
/// worker, so that cross-feed rules see all the feeds they join.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    by_enterprise: FnvHashMap<Arc<str>, Vec<Instance>>,
    enterprise_of: FnvHashMap<SourceId, Arc<str>>,
    unregistered: Option<UnregisteredRule>,
    longest_lookback_ms: i64,
}

/// Events of a day: how far back an alert's start may lie behind the event time that fires it,
/// at least (daily averages fire after their day).
const DAY_MS: i64 = 86_400_000;

impl RuleSet {
    /// Parse the rules file and bind it to `registry`.
    pub fn compile(text: &str, origin: &str, registry: &Registry) -> Result<Self, RulesError> {
        let error = |span: Option<Range<usize>>, field: String, reason: String| RulesError {
            origin: origin.to_owned(),
            line: span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            field,
            reason,
        };
        let raw: RawRules = toml::from_str(text)
            .map_err(|e| error(e.span(), String::new(), e.message().trim_end().to_owned()))?;

        let mut rules: BTreeMap<String, (Range<usize>, RawRule)> = BTreeMap::new();
        for rule in raw.rules {
            let span = rule.span();
            let rule = rule.into_inner();
            let id = rule.id().to_owned();
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(error(
                    Some(span),
                    format!("rules[{id}].id"),
                    "ids are letters, digits, - and _".to_owned(),
                ));
            }
            if let Err((field, reason)) = rule.check() {
                return Err(error(Some(span), format!("rules[{id}].{field}"), reason));
            }
            if rules.insert(id.clone(), (span.clone(), rule)).is_some() {
                return Err(error(
                    Some(span),
                    format!("rules[{id}]"),
                    "duplicate rule id".to_owned(),
                ));
            }
        }

        let mut overrides = Vec::with_capacity(raw.overrides.len());
        for o in raw.overrides {
            let span = o.span();
            let o = o.into_inner();
            let field = format!("overrides[{}]", o.rule);
            if !rules.contains_key(&o.rule) {
                return Err(error(
                    Some(span),
                    format!("{field}.rule"),
                    format!("unknown rule {:?}", o.rule),
                ));
            }
            if let Some(e) = &o.enterprise {
                if registry.enterprise(e).is_none() {
                    return Err(error(
                        Some(span),
                        format!("{field}.enterprise"),
                        format!("unknown enterprise {e:?}"),
                    ));
                }
            }
            if let Some(p) = &o.point {
                if registry.point(p).is_none() {
                    return Err(error(
                        Some(span),
                        format!("{field}.point"),
                        format!("unknown point {p:?}"),
                    ));
                }
            }
            overrides.push(o);
        }

        let mut set = RuleSet::default();
        for (id, (span, rule)) in &rules {
            if let RawRule::UnregisteredSource { severity, .. } = rule {
                if set.unregistered.is_some() {
                    let reason = "one unregistered_source rule at most".to_owned();
                    return Err(error(Some(span.clone()), format!("rules[{id}]"), reason));
                }
                set.unregistered = Some(UnregisteredRule {
                    rule_id: Arc::from(id.as_str()),
                    severity: *severity,
                });
            }
            set.longest_lookback_ms = set.longest_lookback_ms.max(lookback_ms(rule));
        }
        // Points in MN order: an enterprise's instances come in the same order in every run
        // (a checkpoint's machines are taken back by position).
        let mut points: Vec<_> = registry.points().collect();
        points.sort_by(|a, b| a.mn.cmp(&b.mn));
        for point in points {
            let enterprise: Arc<str> = Arc::from(point.enterprise_id.as_str());
            set.enterprise_of
                .insert(point.mn.clone(), Arc::clone(&enterprise));
            for (id, (span, rule)) in &rules {
                let (mut severity, mut enabled) = (rule.severity(), true);
                // Later overrides win; a point override is more specific than an enterprise one
                // only by order in the file, which the file's documentation asks to respect.
                for o in overrides.iter().filter(|o| &o.rule == id) {
                    let enterprise_matches = o
                        .enterprise
                        .as_deref()
                        .is_none_or(|e| e == point.enterprise_id);
                    let point_matches = o.point.as_deref().is_none_or(|p| p == point.mn.as_str());
                    if enterprise_matches && point_matches {
                        severity = o.severity.unwrap_or(severity);
                        enabled = o.enabled.unwrap_or(enabled);
                    }
                }
                if enabled {
                    let instances =
                        bind(id, rule, severity, point, registry).map_err(|reason| {
                            error(Some(span.clone()), format!("rules[{id}]"), reason)
                        })?;
                    set.by_enterprise
                        .entry(Arc::clone(&enterprise))
                        .or_default()
                        .extend(instances);
                }
            }
        }
        Ok(set)
    }

    /// The instances of an enterprise's points.
    pub fn for_enterprise(&self, enterprise_id: &str) -> &[Instance] {
        self.by_enterprise
            .get(enterprise_id)
            .map_or(&[], Vec::as_slice)
    }

    /// The instances whose alerts are about `point`.
    pub fn for_point<'a>(&'a self, point: &'a str) -> impl Iterator<Item = &'a Instance> + 'a {
        let enterprise = self.enterprise_of.get(point).map_or("", |e| e);
        self.for_enterprise(enterprise)
            .iter()
            .filter(move |i| i.point.as_str() == point)
    }

    /// The enterprise of a registered point.
    pub fn enterprise_of(&self, point: &str) -> Option<&Arc<str>> {
        self.enterprise_of.get(point)
    }

    /// The rule for unregistered sources, if one is declared.
    pub fn unregistered(&self) -> Option<&UnregisteredRule> {
        self.unregistered.as_ref()
    }

    /// How far before the event time that fires it an alert may start: maintenance notices
    /// must be kept this long after their window ends to answer for it.
    pub fn longest_lookback_ms(&self) -> i64 {
        self.longest_lookback_ms
    }

    /// The enterprises that have rule instances, sorted.
    pub fn enterprises(&self) -> Vec<&Arc<str>> {
        let mut enterprises: Vec<&Arc<str>> = self.by_enterprise.keys().collect();
        enterprises.sort();
        enterprises
    }

    /// A fingerprint of every instance and its parameters (FNV-1a of their descriptions, by
    /// enterprise in order): equal for the same rules bound to the same registry. Detection
    /// state saved under one fingerprint is only taken back under the same one.
    pub fn fingerprint(&self) -> u64 {
        let mut text = format!("{:?}|{}", self.unregistered, self.longest_lookback_ms);
        for enterprise in self.enterprises() {
            text.push_str(&format!(
                "|{enterprise}:{:?}",
                self.for_enterprise(enterprise)
            ));
        }
        crate::fnv::hash_str(&text)
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.by_enterprise.values().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1_000)).unwrap_or(i64::MAX)
}

/// How long before the event time that fires it an alert of `rule` may start.
fn lookback_ms(rule: &RawRule) -> i64 {
    let secs = match rule {
        RawRule::Threshold { for_secs, .. } => *for_secs,
        RawRule::Average { .. } => 0,
        RawRule::ConstantValue {
            min_duration_secs, ..
        }
        | RawRule::ZeroWhileOperating {
            min_duration_secs, ..
        }
        | RawRule::TreatmentStopped {
            min_duration_secs, ..
        } => *min_duration_secs,
        RawRule::FlagDuration { max_flag_secs, .. } => *max_flag_secs,
        RawRule::ReadingConflict { quiet_secs, .. } => *quiet_secs,
        RawRule::MissingData { max_gap_secs, .. } | RawRule::SuddenJump { max_gap_secs, .. } => {
            *max_gap_secs
        }
        RawRule::PowerCutFailure {
            max_feedback_delay_secs,
            ..
        } => *max_feedback_delay_secs,
        RawRule::OutOfRange { .. }
        | RawRule::UnregisteredSource { .. }
        | RawRule::InconsistentAverage { .. } => 0,
    };
    secs_to_ms(secs).saturating_add(DAY_MS)
}

/// The metrics a data-quality rule watches at `point`: those named that a point of its kind can
/// carry, or the point's limited ones.
fn watched(metrics: &[String], point: &MonitoringPoint) -> Vec<Metric> {
    let mut out: Vec<Metric> = if metrics.is_empty() {
        point.limits.iter().map(|l| l.metric).collect()
    } else {
        metrics
            .iter()
            .filter_map(|c| Metric::from_code(c))
            .filter(|m| point.kind.accepts(*m))
            .collect()
    };
    out.sort();
    out.dedup();
    out
}

fn applies(point_kinds: &[PointKind], point: &MonitoringPoint) -> bool {
    point_kinds.is_empty() || point_kinds.contains(&point.kind)
}

/// The instances of one rule at one point: one per matching limit (two for a range) for limit
/// rules, one per watched metric for data-quality rules, one per point or pair for the others.
fn bind(
    id: &str,
    rule: &RawRule,
    severity: Severity,
    point: &MonitoringPoint,
    registry: &Registry,
) -> Result<Vec<Instance>, String> {
    let mut out = Vec::new();
    let enterprise_id: Arc<str> = Arc::from(point.enterprise_id.as_str());
    let mut push = |rule_id: String, kind, metric, standard: &str, machine| {
        out.push(Instance {
            rule_id: Arc::from(rule_id),
            kind,
            severity,
            enterprise_id: Arc::clone(&enterprise_id),
            point: point.mn.clone(),
            metric,
            standard: Arc::from(standard),
            machine,
        });
    };
    let per_metric = |point_kinds: &[PointKind], metrics: &[String]| {
        if applies(point_kinds, point) {
            watched(metrics, point)
        } else {
            Vec::new()
        }
    };
    let quality = |e: crate::quality::QualityError| e.to_string();
    match rule {
        RawRule::Threshold { .. } | RawRule::Average { .. } => {
            bind_limits(id, rule, point, &mut push)?;
        }
        RawRule::ConstantValue {
            point_kinds,
            metrics,
            min_readings,
            min_duration_secs,
            epsilon,
            ..
        } => {
            let params =
                ConstantValueParams::new(*min_readings, secs_to_ms(*min_duration_secs), *epsilon)
                    .map_err(quality)?;
            for metric in per_metric(point_kinds, metrics) {
                let machine = Machine::ConstantValue(params);
                push(
                    id.to_owned(),
                    ConstantValue::KIND,
                    Some(metric),
                    "",
                    machine,
                );
            }
        }
        RawRule::ZeroWhileOperating {
            point_kinds,
            metrics,
            operation_metric,
            operating_above,
            zero_epsilon,
            min_duration_secs,
            ..
        } => {
            let params = ZeroWhileOperatingParams::new(
                *zero_epsilon,
                *operating_above,
                secs_to_ms(*min_duration_secs),
            )
            .map_err(quality)?;
            let operation = metric(operation_metric)?;
            for judged in per_metric(point_kinds, metrics) {
                if judged != operation {
                    let machine = Machine::ZeroWhileOperating { params, operation };
                    push(
                        id.to_owned(),
                        ZeroWhileOperating::KIND,
                        Some(judged),
                        "",
                        machine,
                    );
                }
            }
        }
        RawRule::OutOfRange {
            point_kinds,
            metrics,
            range_min,
            range_max,
            ..
        } => {
            let params = OutOfRangeParams::new(*range_min, *range_max).map_err(quality)?;
            for metric in per_metric(point_kinds, metrics) {
                let machine = Machine::OutOfRange(params);
                push(id.to_owned(), OutOfRange::KIND, Some(metric), "", machine);
            }
        }
        RawRule::SuddenJump {
            point_kinds,
            metrics,
            max_step,
            max_gap_secs,
            ..
        } => {
            let params =
                SuddenJumpParams::new(*max_step, secs_to_ms(*max_gap_secs)).map_err(quality)?;
            for metric in per_metric(point_kinds, metrics) {
                let machine = Machine::SuddenJump(params);
                push(id.to_owned(), SuddenJump::KIND, Some(metric), "", machine);
            }
        }
        RawRule::FlagDuration {
            point_kinds,
            metrics,
            max_flag_secs,
            flags,
            ..
        } => {
            let max_ms = secs_to_ms(*max_flag_secs);
            let params = if flags.is_empty() {
                FlagDurationParams::with_default_flags(max_ms)
            } else {
                let flags: Vec<DataFlag> = flags
                    .iter()
                    .filter_map(|c| DataFlag::from_char(*c))
                    .collect();
                FlagDurationParams::new(max_ms, &flags)
            }
            .map_err(quality)?;
            for metric in per_metric(point_kinds, metrics) {
                let machine = Machine::FlagDuration(params);
                push(id.to_owned(), FlagDuration::KIND, Some(metric), "", machine);
            }
        }
        RawRule::MissingData {
            point_kinds,
            max_gap_secs,
            ..
        } => {
            if applies(point_kinds, point) {
                let params = MissingDataParams::new(secs_to_ms(*max_gap_secs)).map_err(quality)?;
                let machine = Machine::MissingData(params);
                push(id.to_owned(), MissingData::KIND, None, "", machine);
            }
        }
        RawRule::ReadingConflict {
            point_kinds,
            quiet_secs,
            ..
        } => {
            if applies(point_kinds, point) {
                let params =
                    ReadingConflictParams::new(secs_to_ms(*quiet_secs)).map_err(quality)?;
                let machine = Machine::ReadingConflict(params);
                push(id.to_owned(), ReadingConflict::KIND, None, "", machine);
            }
        }
        RawRule::InconsistentAverage {
            point_kinds,
            metrics,
            interval,
            tolerance_pct,
            tolerance_abs,
            min_valid_minutes,
            o2_max_measured_pct,
            o2_max_age_secs,
            ..
        } => {
            for metric in per_metric(point_kinds, metrics) {
                let o2 = o2_correction(point, metric, *o2_max_measured_pct, *o2_max_age_secs);
                let params = ConsistencyParams::new(
                    *interval,
                    *tolerance_pct,
                    *tolerance_abs,
                    *min_valid_minutes,
                    o2,
                )
                .map_err(|e| e.to_string())?;
                let machine = Machine::Consistency(params);
                push(id.to_owned(), Consistency::KIND, Some(metric), "", machine);
            }
        }
        RawRule::TreatmentStopped {
            min_duration_secs,
            max_staleness_secs,
            ..
        } => {
            if point.kind != PointKind::TreatmentPower || point.related.is_empty() {
                return Ok(out);
            }
            // The registry guarantees power meters a running threshold; a missing one is a bug
            // there, reported rather than guessed.
            let running = |p: &MonitoringPoint| {
                p.running_threshold_kw
                    .ok_or_else(|| format!("power meter {} has no running threshold", p.mn))
            };
            let mut lines = Vec::new();
            for mn in &point.related {
                let line = registry
                    .point(mn.as_str())
                    .ok_or_else(|| format!("{} relates to unknown point {mn}", point.mn))?;
                if line.kind == PointKind::ProductionLinePower {
                    lines.push((line.mn.clone(), running(line)?));
                }
            }
            if lines.is_empty() {
                return Ok(out);
            }
            let params = TreatmentParams::new(
                running(point)?,
                lines,
                secs_to_ms(*min_duration_secs),
                secs_to_ms(*max_staleness_secs),
            )
            .map_err(|e| e.to_string())?;
            let machine = Machine::TreatmentStopped(params);
            push(
                id.to_owned(),
                AlertKind::TreatmentStopped,
                Some(Metric::ActivePower),
                "",
                machine,
            );
        }
        RawRule::PowerCutFailure {
            max_feedback_delay_secs,
            ..
        } => {
            let feeds: Vec<&SourceId> = point
                .related
                .iter()
                .filter(|mn| {
                    registry
                        .point(mn.as_str())
                        .is_some_and(|p| p.kind == PointKind::MinePowerFeed)
                })
                .collect();
            for limit in &point.limits {
                let LimitBound::Methane {
                    power_cut, restore, ..
                } = limit.bound
                else {
                    continue;
                };
                let params =
                    PowerCutParams::new(power_cut, restore, secs_to_ms(*max_feedback_delay_secs))
                        .map_err(|e| e.to_string())?;
                for feed in &feeds {
                    let rule_id = if feeds.len() == 1 {
                        id.to_owned()
                    } else {
                        format!("{id}:{feed}")
                    };
                    let machine = Machine::PowerCutFailure {
                        params,
                        power_feed: (*feed).clone(),
                    };
                    push(
                        rule_id,
                        AlertKind::PowerCutFailure,
                        Some(limit.metric),
                        &limit.standard,
                        machine,
                    );
                }
            }
        }
        RawRule::UnregisteredSource { .. } => {}
    }
    Ok(out)
}

/// The O2 correction of `metric` at `point`: flue gas concentrations are judged at the
/// standard's reference O2.
fn o2_correction(
    point: &MonitoringPoint,
    metric: Metric,
    max_measured_pct: f64,
    max_age_secs: u64,
) -> Option<O2Correction> {
    match point.o2_reference_pct {
        Some(reference_pct)
            if point.kind == PointKind::FlueGasOutlet
                && metric.domain() == MetricDomain::Air
                && metric.unit() == argus_model::Unit::MgPerM3 =>
        {
            Some(O2Correction {
                reference_pct,
                max_measured_pct,
                max_age_ms: secs_to_ms(max_age_secs),
            })
        }
        _ => None,
    }
}

/// The instances of a threshold or average rule: one per matching limit (two for a range).
fn bind_limits(
    id: &str,
    rule: &RawRule,
    point: &MonitoringPoint,
    push: &mut impl FnMut(String, AlertKind, Option<Metric>, &str, Machine),
) -> Result<(), String> {
    for limit in &point.limits {
        let mut push = |suffix: &str, kind: AlertKind, machine: Machine| {
            push(
                format!("{id}{suffix}"),
                kind,
                Some(limit.metric),
                &limit.standard,
                machine,
            );
        };
        match rule {
            RawRule::Threshold {
                limits,
                for_secs,
                n_consecutive,
                keep_firing_for_secs,
                ..
            } => {
                let for_ms = secs_to_ms(*for_secs);
                let keep_ms = secs_to_ms(*keep_firing_for_secs);
                let threshold = |comparison, value: f64, clear: f64| {
                    ThresholdParams::new(comparison, value, clear, for_ms, *n_consecutive)
                        .map(|p| p.with_keep_firing(keep_ms))
                        .map_err(|e| e.to_string())
                };
                let kind = AlertKind::Threshold;
                match (limits, limit.basis, limit.bound) {
                    (LimitSelector::Instant, LimitBasis::Instant, LimitBound::Max(max)) => {
                        push(
                            "",
                            kind,
                            Machine::Threshold(threshold(Comparison::Above, max, max)?),
                        );
                    }
                    (LimitSelector::Instant, LimitBasis::Instant, LimitBound::Min(min)) => {
                        push(
                            "",
                            kind,
                            Machine::Threshold(threshold(Comparison::Below, min, min)?),
                        );
                    }
                    (
                        LimitSelector::Instant,
                        LimitBasis::Instant,
                        LimitBound::Range { min, max },
                    ) => {
                        push(
                            ":min",
                            kind,
                            Machine::Threshold(threshold(Comparison::Below, min, min)?),
                        );
                        push(
                            ":max",
                            kind,
                            Machine::Threshold(threshold(Comparison::Above, max, max)?),
                        );
                    }
                    (
                        LimitSelector::MethaneAlarm,
                        _,
                        LimitBound::Methane { alarm, restore, .. },
                    ) => {
                        push(
                            "",
                            kind,
                            Machine::Threshold(threshold(Comparison::AtOrAbove, alarm, restore)?),
                        );
                    }
                    (
                        LimitSelector::MethanePowerCut,
                        _,
                        LimitBound::Methane {
                            power_cut, restore, ..
                        },
                    ) => {
                        push(
                            "",
                            kind,
                            Machine::Threshold(threshold(
                                Comparison::AtOrAbove,
                                power_cut,
                                restore,
                            )?),
                        );
                    }
                    (LimitSelector::GasLevel1, _, LimitBound::GasAlarm { level1, .. }) => {
                        push(
                            "",
                            kind,
                            Machine::Threshold(threshold(Comparison::AtOrAbove, level1, level1)?),
                        );
                    }
                    (LimitSelector::GasLevel2, _, LimitBound::GasAlarm { level2, .. }) => {
                        push(
                            "",
                            kind,
                            Machine::Threshold(threshold(Comparison::AtOrAbove, level2, level2)?),
                        );
                    }
                    _ => {}
                }
            }
            RawRule::Average {
                limits,
                min_valid_samples,
                min_valid_minutes,
                o2_max_measured_pct,
                o2_max_age_secs,
                ..
            } => {
                let period = match (limits, limit.basis) {
                    (LimitSelector::HourlyAvg, LimitBasis::HourlyAvg) => Period::Hour,
                    (LimitSelector::DailyAvg, LimitBasis::DailyAvg) => Period::Day,
                    _ => continue,
                };
                // Minute values of an hour, hourly values of a day: more can never be had.
                let (most, unit) = match period {
                    Period::Hour => (60, "minute values an hour"),
                    Period::Day => (24, "hourly values a day"),
                };
                if !(1..=most).contains(min_valid_samples) {
                    return Err(format!(
                        "min_valid_samples must be 1 to {most} ({unit}), not {min_valid_samples}"
                    ));
                }
                if !(1..=60).contains(min_valid_minutes) {
                    return Err(format!(
                        "min_valid_minutes must be 1 to 60 (valid minute values of an hour), \
                         not {min_valid_minutes}"
                    ));
                }
                let o2 = o2_correction(point, limit.metric, *o2_max_measured_pct, *o2_max_age_secs);
                let base = AverageParams {
                    period,
                    limit: 0.0,
                    min_valid_samples: *min_valid_samples,
                    min_valid_minutes: *min_valid_minutes,
                    o2,
                };
                match limit.bound {
                    LimitBound::Max(max) => push(
                        "",
                        AlertKind::Average,
                        Machine::Average(AverageParams { limit: max, ..base }),
                    ),
                    // Averages below a floor (a minimum flow, say) are rare; not supported yet.
                    _ => {
                        return Err(format!(
                            "average rules support max limits only; {} at {} has another",
                            limit.metric, point.mn
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_rules_and_registry_bind_the_same_instances_in_the_same_order() {
        // Two parses of the registry (each with its own hash map order).
        let compile = || {
            let registry =
                Registry::from_toml_str(include_str!("../../../config/registry.toml"), "r.toml")
                    .unwrap_or_else(|e| panic!("{e}"));
            RuleSet::compile(
                include_str!("../../../config/rules.toml"),
                "rules.toml",
                &registry,
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let (a, b) = (compile(), compile());
        assert_eq!(a.fingerprint(), b.fingerprint());
        let ids = |set: &RuleSet| -> Vec<String> {
            set.for_enterprise("E008")
                .iter()
                .map(|i| format!("{} {}", i.rule_id, i.point))
                .collect()
        };
        assert!(ids(&a).len() > 10);
        assert_eq!(ids(&a), ids(&b));
    }

    fn registry() -> Registry {
        let text = include_str!("../../../config/registry.toml");
        Registry::from_toml_str(text, "registry.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    const SHIPPED: &str = include_str!("../../../config/rules.toml");

    #[test]
    fn the_shipped_rules_bind_every_limit_of_the_example_county() {
        let registry = registry();
        let rules =
            RuleSet::compile(SHIPPED, "rules.toml", &registry).unwrap_or_else(|e| panic!("{e}"));
        let limits: usize = registry.points().map(|p| p.limits.len()).sum();
        let ranges = registry
            .points()
            .flat_map(|p| &p.limits)
            .filter(|l| matches!(l.bound, LimitBound::Range { .. }))
            .count();
        let methane = registry
            .points()
            .flat_map(|p| &p.limits)
            .filter(|l| matches!(l.bound, LimitBound::Methane { .. }))
            .count();
        let gas = registry
            .points()
            .flat_map(|p| &p.limits)
            .filter(|l| matches!(l.bound, LimitBound::GasAlarm { .. }))
            .count();
        // One instance per limit; a range has two sides; methane and gas limits have two levels.
        let limit_rules = registry
            .points()
            .flat_map(|p| rules.for_point(p.mn.as_str()))
            .filter(|i| matches!(i.machine, Machine::Threshold(_) | Machine::Average(_)))
            .count();
        assert_eq!(limit_rules, limits + ranges + methane + gas);
    }

    #[test]
    fn cross_feed_rules_bind_through_related_points() {
        let registry = registry();
        let rules =
            RuleSet::compile(SHIPPED, "rules.toml", &registry).unwrap_or_else(|e| panic!("{e}"));
        let mut treatment = 0;
        for point in registry.points() {
            let bound: Vec<&Instance> = rules
                .for_point(point.mn.as_str())
                .filter(|i| i.kind == AlertKind::TreatmentStopped)
                .collect();
            let serves_a_line = point.related.iter().any(|mn| {
                registry
                    .point(mn.as_str())
                    .is_some_and(|p| p.kind == PointKind::ProductionLinePower)
            });
            if point.kind == PointKind::TreatmentPower && serves_a_line {
                assert_eq!(bound.len(), 1, "{}", point.mn);
                let Machine::TreatmentStopped(params) = &bound[0].machine else {
                    panic!("{:?}", bound[0])
                };
                let lines: Vec<&SourceId> = params.lines().collect();
                assert!(lines.iter().all(|l| point.related.contains(l)));
                assert_eq!(bound[0].sources().len(), 1 + lines.len());
                treatment += 1;
            } else {
                assert!(bound.is_empty(), "{}", point.mn);
            }
        }
        assert!(treatment >= 6, "only {treatment} treatment meters bound");

        let face = registry
            .point("MINE01-CH4-WF1")
            .unwrap_or_else(|| panic!("no MINE01-CH4-WF1"));
        let power_cut: Vec<&Instance> = rules
            .for_point(face.mn.as_str())
            .filter(|i| i.kind == AlertKind::PowerCutFailure)
            .collect();
        assert_eq!(power_cut.len(), 1);
        assert_eq!(power_cut[0].metric, Some(Metric::MineCh4));
        let Machine::PowerCutFailure { power_feed, .. } = &power_cut[0].machine else {
            panic!("{:?}", power_cut[0])
        };
        assert_eq!(power_feed.as_str(), "MINE01-PWR-WF1");
        assert_eq!(
            rules.enterprise_of("MINE01-PWR-WF1"),
            rules.enterprise_of("MINE01-CH4-WF1")
        );

        // Point-level rules: one missing-data instance per point that reports periodically
        // (every kind but the mine power feeds, which report on change), with no metric.
        let missing = registry
            .points()
            .flat_map(|p| rules.for_point(p.mn.as_str()))
            .filter(|i| i.kind == AlertKind::MissingData)
            .inspect(|i| assert_eq!(i.series_key().metric.as_str(), "*"))
            .count();
        let periodic = registry
            .points()
            .filter(|p| p.kind != PointKind::MinePowerFeed)
            .count();
        assert_eq!(missing, periodic);
        let unregistered = rules.unregistered().unwrap_or_else(|| panic!("no rule"));
        let instance = unregistered.instance(&SourceId::from("NOBODY"));
        assert_eq!(instance.kind, AlertKind::UnregisteredSource);
        assert!(rules.longest_lookback_ms() >= DAY_MS + 14_400_000);
    }

    #[test]
    fn quality_rules_watch_the_named_or_the_limited_metrics() {
        let registry = registry();
        let rules =
            RuleSet::compile(SHIPPED, "rules.toml", &registry).unwrap_or_else(|e| panic!("{e}"));
        let stack = registry
            .points()
            .find(|p| p.kind == PointKind::FlueGasOutlet)
            .unwrap_or_else(|| panic!("no stack"));
        let of = |rule: &str| -> Vec<Metric> {
            rules
                .for_point(stack.mn.as_str())
                .filter(|i| &*i.rule_id == rule)
                .filter_map(|i| i.metric)
                .collect()
        };
        assert_eq!(of("oxygen-range"), vec![Metric::Oxygen]);
        let mut limited: Vec<Metric> = stack.limits.iter().map(|l| l.metric).collect();
        limited.sort();
        limited.dedup();
        assert_eq!(of("constant-value"), limited);
        assert_eq!(of("flag-held"), limited);
        // The operation metric itself is not judged for zeros.
        assert!(!of("zero-while-operating").contains(&Metric::FlueGasFlow));
        // Mines are not watched for constant values, nor for flue gas or water metrics.
        assert!(rules
            .for_point("MINE01-CH4-WF1")
            .all(|i| &*i.rule_id != "constant-value" && &*i.rule_id != "negative-value"));
        assert_eq!(
            rules
                .for_point("MINE01-CH4-WF1")
                .filter(|i| &*i.rule_id == "methane-range")
                .count(),
            1
        );
    }

    #[test]
    fn flue_gas_averages_are_o2_corrected_and_overrides_apply() {
        let registry = registry();
        let stack = registry
            .points()
            .find(|p| {
                p.kind == PointKind::FlueGasOutlet
                    && p.limits.iter().any(|l| l.basis == LimitBasis::HourlyAvg)
            })
            .unwrap_or_else(|| panic!("no flue gas point with hourly limits"));
        let text = format!(
            "{SHIPPED}\n[[overrides]]\nrule = \"hourly-average\"\npoint = \"{}\"\nseverity = \"red\"\n\n[[overrides]]\nrule = \"instant-limit\"\nenterprise = \"{}\"\nenabled = false\n",
            stack.mn, stack.enterprise_id
        );
        let rules =
            RuleSet::compile(&text, "rules.toml", &registry).unwrap_or_else(|e| panic!("{e}"));
        let hourly: Vec<&Instance> = rules
            .for_point(stack.mn.as_str())
            .filter(|i| i.kind == AlertKind::Average)
            .collect();
        assert!(!hourly.is_empty());
        for instance in hourly {
            assert_eq!(instance.severity, Severity::Red);
            let Machine::Average(params) = &instance.machine else {
                panic!("{instance:?}")
            };
            assert_eq!(params.o2.map(|o| o.reference_pct), stack.o2_reference_pct);
        }
        let enterprise = registry
            .enterprise(&stack.enterprise_id)
            .unwrap_or_else(|| panic!("no enterprise"));
        for mn in &enterprise.points {
            assert!(rules
                .for_point(mn.as_str())
                .all(|i| !i.rule_id.starts_with("instant-limit")));
        }
    }

    #[test]
    fn mistakes_are_refused_naming_the_place() {
        let registry = registry();
        let cases: &[(&str, &str)] = &[
            ("[[rules]]\nid = \"x\"\nkind = \"magic\"\nlimits = \"instant\"\nseverity = \"red\"\n", "unknown variant `magic`"),
            ("[[rules]]\nid = \"x\"\nkind = \"threshold\"\nlimits = \"instant\"\nseverity = \"red\"\ncolour = 1\n", "unknown field `colour`"),
            ("[[rules]]\nid = \"x\"\nkind = \"threshold\"\nlimits = \"hourly_avg\"\nseverity = \"red\"\n", "rules[x].limits"),
            ("[[rules]]\nid = \"x\"\nkind = \"average\"\nlimits = \"instant\"\nseverity = \"red\"\nmin_valid_samples = 1\n", "rules[x].limits"),
            ("[[overrides]]\nrule = \"nope\"\n", "unknown rule \"nope\""),
            ("[[overrides]]\nrule = \"instant-limit\"\npoint = \"NOPE\"\n", "unknown point \"NOPE\""),
            ("[[rules]]\nid = \"instant-limit\"\nkind = \"threshold\"\nlimits = \"instant\"\nseverity = \"red\"\n", "duplicate rule id"),
            ("[[rules]]\nid = \"x\"\nkind = \"out_of_range\"\nseverity = \"red\"\nrange_min = 0\nrange_max = 1\n", "rules[x].metrics: name the metrics"),
            ("[[rules]]\nid = \"x\"\nkind = \"sudden_jump\"\nseverity = \"red\"\nmetrics = [\"a99999\"]\nmax_step = 1\nmax_gap_secs = 60\n", "unknown metric code \"a99999\""),
            ("[[rules]]\nid = \"x\"\nkind = \"flag_duration\"\nseverity = \"red\"\nmax_flag_secs = 60\nflags = [\"Q\"]\n", "unknown data flag 'Q'"),
            ("[[rules]]\nid = \"x\"\nkind = \"flag_duration\"\nseverity = \"red\"\nmax_flag_secs = 60\nflags = [\"N\"]\n", "must not include N"),
            ("[[rules]]\nid = \"x\"\nkind = \"constant_value\"\nseverity = \"red\"\nmin_readings = 1\n", "min_readings must be 2 or more"),
            ("[[rules]]\nid = \"x\"\nkind = \"out_of_range\"\nseverity = \"red\"\nmetrics = [\"a19001\"]\nrange_min = 5\nrange_max = 1\n", "range_max must be at least range_min"),
            ("[[rules]]\nid = \"x\"\nkind = \"zero_while_operating\"\nseverity = \"red\"\noperation_metric = \"flow\"\noperating_above = 1\nmin_duration_secs = 1\n", "rules[x].operation_metric"),
            ("[[rules]]\nid = \"x\"\nkind = \"missing_data\"\nseverity = \"red\"\nmax_gap_secs = 60\nmetrics = [\"a19001\"]\n", "unknown field `metrics`"),
            ("[[rules]]\nid = \"x\"\nkind = \"unregistered_source\"\nseverity = \"red\"\n", "one unregistered_source rule at most"),
        ];
        for (extra, expected) in cases {
            let text = format!("{SHIPPED}\n{extra}");
            match RuleSet::compile(&text, "rules.toml", &registry) {
                Ok(_) => panic!("accepted: {extra}"),
                Err(e) => {
                    let message = e.to_string();
                    assert!(
                        message.starts_with("invalid rules rules.toml line "),
                        "{message}"
                    );
                    assert!(message.contains(expected), "{message:?} lacks {expected:?}");
                }
            }
        }
    }
}
