//! The ticket policy (`config/tickets.toml`): which alerts become tickets, for which department,
//! how related alerts group, and the deadline of each state. Validated against the registry;
//! errors name the file, line, field and reason.

use std::ops::Range;

use argus_model::{AlertKind, MetricDomain, Registry, Severity, TicketState};
use serde::Deserialize;
use toml::Spanned;

/// A policy file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ticket policy {origin}{}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default(), if field.is_empty() { String::new() } else { format!(" at {field}") })]
pub struct PolicyError {
    /// The file.
    pub origin: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// Field path, empty for a syntax error.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    deadlines: RawDeadlines,
    #[serde(default)]
    auto_dispatch: bool,
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadlines {
    new_secs: u64,
    dispatched_secs: u64,
    accepted_secs: u64,
    inspecting_secs: u64,
    rectification_ordered_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    kinds: Vec<AlertKind>,
    #[serde(default)]
    domains: Vec<String>,
    min_severity: Severity,
    department: String,
    group_window_secs: u64,
}

/// One rule of the policy: alerts it takes become tickets of `department`.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRule {
    /// Its name (in logs and ticket notes).
    pub name: String,
    /// Alert kinds it takes.
    pub kinds: Vec<AlertKind>,
    /// Metric domains it takes (empty: any; alerts about a whole point match any).
    pub domains: Vec<MetricDomain>,
    /// Lowest severity it takes.
    pub min_severity: Severity,
    /// The department whose team gets the tickets.
    pub department: String,
    /// An alert joins the open ticket of its enterprise and department when it starts within
    /// this long after the ticket was created; otherwise it opens a new one.
    pub group_window_ms: i64,
}

/// The validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Rules, first match wins.
    pub rules: Vec<TicketRule>,
    /// Whether tickets are dispatched to their team as soon as created (by `argus`).
    pub auto_dispatch: bool,
    deadlines_ms: [i64; 5],
}

impl Policy {
    /// Parse the policy file and check it against `registry`.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        registry: &Registry,
    ) -> Result<Self, PolicyError> {
        let error = |span: Option<Range<usize>>, field: String, reason: String| PolicyError {
            origin: origin.to_owned(),
            line: span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            field,
            reason,
        };
        let raw: RawPolicy = toml::from_str(text)
            .map_err(|e| error(e.span(), String::new(), e.message().trim_end().to_owned()))?;
        let d = raw.deadlines;
        let secs = [
            ("new_secs", d.new_secs),
            ("dispatched_secs", d.dispatched_secs),
            ("accepted_secs", d.accepted_secs),
            ("inspecting_secs", d.inspecting_secs),
            ("rectification_ordered_secs", d.rectification_ordered_secs),
        ];
        let mut deadlines_ms = [0; 5];
        for (i, (name, value)) in secs.iter().enumerate() {
            if *value == 0 || *value > 366 * 86_400 {
                let reason = format!("must be between 1 and 31622400 seconds, got {value}");
                return Err(error(None, format!("deadlines.{name}"), reason));
            }
            deadlines_ms[i] = i64::try_from(value * 1_000).unwrap_or(i64::MAX);
        }
        let mut rules = Vec::new();
        for rule in raw.rules {
            let span = rule.span();
            let r = rule.into_inner();
            let field = |f: &str| format!("rules[{}].{f}", r.name);
            if r.kinds.is_empty() {
                return Err(error(
                    Some(span),
                    field("kinds"),
                    "name at least one alert kind".to_owned(),
                ));
            }
            let mut domains = Vec::new();
            for name in &r.domains {
                let domain = match name.as_str() {
                    "air" => MetricDomain::Air,
                    "water" => MetricDomain::Water,
                    "safety" => MetricDomain::Safety,
                    "power" => MetricDomain::Power,
                    other => {
                        let reason =
                            format!("unknown domain {other:?} (air, water, safety, power)");
                        return Err(error(Some(span), field("domains"), reason));
                    }
                };
                domains.push(domain);
            }
            if registry.department(&r.department).is_none() {
                let reason = format!("unknown department {:?}", r.department);
                return Err(error(Some(span), field("department"), reason));
            }
            rules.push(TicketRule {
                group_window_ms: i64::try_from(r.group_window_secs.saturating_mul(1_000))
                    .unwrap_or(i64::MAX),
                name: r.name,
                kinds: r.kinds,
                domains,
                min_severity: r.min_severity,
                department: r.department,
            });
        }
        Ok(Self {
            rules,
            auto_dispatch: raw.auto_dispatch,
            deadlines_ms,
        })
    }

    /// How long a ticket may stay in `state` (none once closed).
    pub fn deadline_ms(&self, state: TicketState) -> Option<i64> {
        let i = match state {
            TicketState::New => 0,
            TicketState::Dispatched => 1,
            TicketState::Accepted => 2,
            TicketState::Inspecting => 3,
            TicketState::RectificationOrdered => 4,
            TicketState::Closed => return None,
        };
        Some(self.deadlines_ms[i])
    }

    /// The first rule that takes an alert of `kind`, `severity` and metric `domain`.
    pub fn rule_for(
        &self,
        kind: AlertKind,
        severity: Severity,
        domain: Option<MetricDomain>,
    ) -> Option<&TicketRule> {
        self.rules.iter().find(|r| {
            r.kinds.contains(&kind)
                && severity >= r.min_severity
                && (r.domains.is_empty() || domain.is_none_or(|d| r.domains.contains(&d)))
        })
    }
}
