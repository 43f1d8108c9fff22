//! The rules file (`config/rules.toml`): rules declared once and bound to the registry's limits,
//! with per-enterprise and per-point overrides, compiled into one [`Instance`] per rule, point
//! and metric. Errors name the file, line, field and reason, like the registry's.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use argus_model::registry::{LimitBasis, LimitBound, MonitoringPoint, PointKind};
use argus_model::{AlertKind, Metric, MetricDomain, Registry, Severity, SourceId};
use serde::Deserialize;
use toml::Spanned;

use crate::{AverageParams, Comparison, O2Correction, Period, ThresholdParams};

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
    },
    Average {
        id: String,
        limits: LimitSelector,
        severity: Severity,
        min_valid_samples: u32,
        #[serde(default = "default_o2_max_measured_pct")]
        o2_max_measured_pct: f64,
        #[serde(default = "default_o2_max_age_secs")]
        o2_max_age_secs: u64,
    },
}

fn default_o2_max_measured_pct() -> f64 {
    19.0
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
    /// The enterprise of the point.
    pub enterprise_id: Arc<str>,
    /// The point.
    pub point: SourceId,
    /// The metric judged.
    pub metric: Metric,
    /// The standard the limit comes from.
    pub standard: Arc<str>,
    /// The machine and its parameters.
    pub machine: Machine,
}

/// Every rule instance of a county, by point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    by_point: HashMap<SourceId, Vec<Instance>>,
}

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
            let id = match &rule {
                RawRule::Threshold { id, .. } | RawRule::Average { id, .. } => id.clone(),
            };
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
            if let RawRule::Average { limits, .. } = &rule {
                if !matches!(limits, LimitSelector::HourlyAvg | LimitSelector::DailyAvg) {
                    let reason = "an average rule binds hourly_avg or daily_avg limits".to_owned();
                    return Err(error(Some(span), format!("rules[{id}].limits"), reason));
                }
            }
            if let RawRule::Threshold {
                limits: LimitSelector::HourlyAvg | LimitSelector::DailyAvg,
                ..
            } = &rule
            {
                let reason = "a threshold rule binds instant, methane or gas limits; averages are average rules".to_owned();
                return Err(error(Some(span), format!("rules[{id}].limits"), reason));
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

        let mut by_point: HashMap<SourceId, Vec<Instance>> = HashMap::new();
        for point in registry.points() {
            for (id, (span, rule)) in &rules {
                let (mut severity, mut enabled) = (rule_severity(rule), true);
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
                    let instances = bind(id, rule, severity, point).map_err(|reason| {
                        error(Some(span.clone()), format!("rules[{id}]"), reason)
                    })?;
                    by_point
                        .entry(point.mn.clone())
                        .or_default()
                        .extend(instances);
                }
            }
        }
        Ok(Self { by_point })
    }

    /// The instances that judge readings of `point`.
    pub fn for_point(&self, point: &str) -> &[Instance] {
        self.by_point.get(point).map_or(&[], Vec::as_slice)
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.by_point.values().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn rule_severity(rule: &RawRule) -> Severity {
    match rule {
        RawRule::Threshold { severity, .. } | RawRule::Average { severity, .. } => *severity,
    }
}

/// The instances of one rule at one point: one per matching limit (two for a range).
fn bind(
    id: &str,
    rule: &RawRule,
    severity: Severity,
    point: &MonitoringPoint,
) -> Result<Vec<Instance>, String> {
    let mut out = Vec::new();
    let enterprise_id: Arc<str> = Arc::from(point.enterprise_id.as_str());
    for limit in &point.limits {
        let mut push = |suffix: &str, kind: AlertKind, machine: Machine| {
            out.push(Instance {
                rule_id: Arc::from(format!("{id}{suffix}")),
                kind,
                severity,
                enterprise_id: Arc::clone(&enterprise_id),
                point: point.mn.clone(),
                metric: limit.metric,
                standard: Arc::from(limit.standard.as_str()),
                machine,
            });
        };
        match rule {
            RawRule::Threshold {
                limits,
                for_secs,
                n_consecutive,
                ..
            } => {
                let for_ms =
                    i64::try_from(for_secs.saturating_mul(1_000)).map_err(|e| e.to_string())?;
                let threshold = |comparison, value: f64, clear: f64| {
                    ThresholdParams::new(comparison, value, clear, for_ms, *n_consecutive)
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
                o2_max_measured_pct,
                o2_max_age_secs,
                ..
            } => {
                let period = match (limits, limit.basis) {
                    (LimitSelector::HourlyAvg, LimitBasis::HourlyAvg) => Period::Hour,
                    (LimitSelector::DailyAvg, LimitBasis::DailyAvg) => Period::Day,
                    _ => continue,
                };
                // Flue gas concentrations are judged at the standard's reference O2.
                let o2 = match point.o2_reference_pct {
                    Some(reference_pct)
                        if point.kind == PointKind::FlueGasOutlet
                            && limit.metric.domain() == MetricDomain::Air
                            && limit.metric.unit() == argus_model::Unit::MgPerM3 =>
                    {
                        let max_age_ms = i64::try_from(o2_max_age_secs.saturating_mul(1_000))
                            .map_err(|e| e.to_string())?;
                        Some(O2Correction {
                            reference_pct,
                            max_measured_pct: *o2_max_measured_pct,
                            max_age_ms,
                        })
                    }
                    _ => None,
                };
                let base = AverageParams {
                    period,
                    limit: 0.0,
                    min_valid_samples: *min_valid_samples,
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
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(rules.len(), limits + ranges + methane + gas);
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
            .iter()
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
                .iter()
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
