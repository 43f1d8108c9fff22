//! The canonical JSON views of Argus's domain objects: what the HTTP API answers, what
//! `argus replay` prints and what the live stream and webhooks will carry. One view per object,
//! defined once here; every field is documented and its JSON name is the field's name.

use serde::{Deserialize, Serialize};

/// An alert as the outside sees it: as stored (the API), or as one of its transitions (replay,
/// the live stream). Times are RFC 3339 in UTC; ids are 16 hex digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlertView {
    /// Deterministic id: a hash of rule, point, metric and start, so a replay gives the same id.
    pub alert_id: String,
    /// The rule that raised it: an id of `config/rules.toml`, with `:min` or `:max` for the
    /// lower or upper side of a range limit (`instant-limit:max`), and `:<feed MN>` for a
    /// methane sensor watched against several power feeds.
    pub rule: String,
    /// The alert kind, the rule kind that raised it (`config/rules.toml`): `threshold`,
    /// `average` and `insufficient_data` (both raised by an average rule), `constant_value`,
    /// `zero_while_operating`, `out_of_range`, `sudden_jump`, `flag_duration`, `missing_data`,
    /// `unregistered_source`, `treatment_stopped`, `power_cut_failure`, `data_integrity` (a
    /// `reading_conflict` rule), `inconsistent_average`; `data_quality` on alerts stored before
    /// the four data-quality kinds had their own names.
    pub kind: String,
    /// `blue` < `yellow` < `orange` < `red`.
    pub severity: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// The enterprise (empty for an unregistered source).
    pub enterprise: String,
    /// The enterprise's town, where known (the store knows it; a replay does not).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub town: Option<String>,
    /// The monitoring point (MN) or device id.
    pub point: String,
    /// The metric code, or null for rules that watch a whole point (missing data, cross-feed).
    pub metric: Option<String>,
    /// The standard the limit comes from (e.g. `GB 13223-2011`), or empty.
    pub standard: String,
    /// Event time at which the condition began.
    pub started_at: String,
    /// Event time at which it ended; null while firing.
    pub ended_at: Option<String>,
    /// The value that fired it, or its latest worst value, in the metric's unit: the reading or
    /// average judged; for `insufficient_data` the valid minutes (or hours) counted; for
    /// `inconsistent_average` the difference between the logger's value and Argus's.
    pub value: f64,
    /// The worst value while firing (known once resolved, or from the store).
    pub peak: Option<f64>,
    /// The mean of the valid values while firing (known once resolved).
    pub mean: Option<f64>,
    /// The limit it was compared with, where there is one.
    pub limit: Option<f64>,
    /// Whether a maintenance notice or a staff silence covers its start: recorded, no ticket.
    pub muted: bool,
    /// Who acknowledged it; null until someone does.
    pub acknowledged_by: Option<String>,
    /// When it was acknowledged; null until then.
    pub acknowledged_at: Option<String>,
    /// For a transition (replay, live stream): `fired`, `updated` or `resolved`, or `muted` when
    /// a maintenance notice or silence that arrived after the alert fired covers its start (the
    /// alert as it stands, now muted); absent for an
    /// alert as stored.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transition: Option<String>,
}

/// An enforcement ticket as the outside sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TicketView {
    /// Deterministic id, 16 hex digits.
    pub ticket_id: String,
    /// The enterprise.
    pub enterprise: String,
    /// The enterprise's town.
    pub town: String,
    /// The department responsible (`environment`, `coal`, ...).
    pub department: String,
    /// The team it is routed to (town and department).
    pub team: String,
    /// The highest severity of its alerts.
    pub severity: String,
    /// `new`, `dispatched`, `accepted`, `inspecting`, `rectification_ordered` or `closed`.
    pub state: String,
    /// When it was created.
    pub created_at: String,
    /// The deadline of its current state; null when the state has none.
    pub deadline: Option<String>,
    /// Once closed: `violation_confirmed`, `false_alarm` or `equipment_fault`; else null.
    pub outcome: Option<String>,
    /// Its alerts (16 hex digits each).
    pub alert_ids: Vec<String>,
    /// The number of events in its record (the `seq` of the latest).
    pub events: u32,
}

/// One line of a ticket's record: a change, who made it, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TicketEventView {
    /// The ticket.
    pub ticket_id: String,
    /// Position in the ticket's record, from 1.
    pub seq: u32,
    /// When.
    pub at: String,
    /// Who (a person, or `argus` for what Argus did itself).
    pub actor: String,
    /// In which role: `system`, `dispatcher`, `team` or `head`.
    pub role: String,
    /// What happened: `created`, `alert_added`, `state_changed`, `escalated` or `alert_muted`
    /// (a notice or silence that arrived after one of its alerts fired covers that alert's
    /// start).
    pub event: String,
    /// The state before; null at creation.
    pub from: Option<String>,
    /// The state after.
    pub to: String,
    /// The note given with it.
    pub note: String,
    /// Evidence: alert ids.
    pub alert_ids: Vec<String>,
    /// The outcome, when it closed the ticket.
    pub outcome: Option<String>,
    /// SHA-256 (64 hex digits) of this line's content chained to the line before it: the
    /// record's last `hash` is its chain head, and `argus audit verify` recomputes the chain.
    /// Empty for lines written before the chain existed.
    #[serde(default)]
    pub hash: String,
}

/// A user as the outside sees it (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// The name the legal record shows.
    pub display_name: String,
    /// `admin`, `monitor`, `dispatcher`, `team` or `head`.
    pub role: String,
    /// A team member's town; null for the other roles.
    pub town: Option<String>,
    /// A team member's or head's department; null for the county-wide roles.
    pub department: Option<String>,
    /// Whether the user is disabled (cannot log in; sessions and tokens refused).
    pub disabled: bool,
    /// When the user was created.
    pub created_at: String,
}

impl UserView {
    /// The view of `user`.
    pub fn of(user: &crate::User) -> Self {
        Self {
            name: user.name.clone(),
            display_name: user.display_name.clone(),
            role: user.role.as_str().to_owned(),
            town: user.jurisdiction.town().map(str::to_owned),
            department: user.jurisdiction.department().map(str::to_owned),
            disabled: user.disabled,
            created_at: user.created.to_rfc3339(),
        }
    }
}

/// An API token (or session) as its owner sees it: never the secret, which is shown once, when
/// the token is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CredentialView {
    /// Public id (16 hex digits): how it is revoked.
    pub id: String,
    /// `token` or `session`.
    pub kind: String,
    /// Whose.
    pub user: String,
    /// A token's name; empty for a session.
    pub name: String,
    /// When it was made.
    pub created_at: String,
    /// When it stops working.
    pub expires_at: String,
    /// When it was last used (to the minute).
    pub last_used_at: String,
    /// When it was revoked; null while it works.
    pub revoked_at: Option<String>,
}

impl CredentialView {
    /// The view of `credential`.
    pub fn of(c: &crate::Credential) -> Self {
        Self {
            id: c.id.clone(),
            kind: c.kind.as_str().to_owned(),
            user: c.user.clone(),
            name: c.name.clone(),
            created_at: c.created.to_rfc3339(),
            expires_at: c.expires.to_rfc3339(),
            last_used_at: c.last_used.to_rfc3339(),
            revoked_at: c.revoked.map(crate::Timestamp::to_rfc3339),
        }
    }
}

/// The county's organisation as the API answers it (`GET /api/registry`): who is who, not
/// what is watched (enterprises are [`EnterpriseView`]s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegistryView {
    /// The county (or province) the registry describes.
    pub county: String,
    /// Its towns: `{"id", "name"}`.
    pub towns: Vec<NamedView>,
    /// Its supervising departments: `{"id", "name"}`.
    pub departments: Vec<NamedView>,
    /// Its enforcement teams, one per town and department.
    pub teams: Vec<TeamView>,
    /// The standards limits come from: `{"id", "name"}`.
    pub standards: Vec<NamedView>,
}

/// Something the registry names: a town, department or standard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NamedView {
    /// Its id in the registry.
    pub id: String,
    /// Its name, as written.
    pub name: String,
}

/// An enforcement team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TeamView {
    /// Its town's id.
    pub town: String,
    /// Its department's id.
    pub department: String,
    /// Its name.
    pub name: String,
    /// How to reach it (phone, duty roster), free text.
    pub contact: String,
}

impl RegistryView {
    /// The view of `registry`.
    pub fn of(registry: &crate::Registry) -> Self {
        let named = |id: &str, name: &str| NamedView {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        Self {
            county: registry.county().to_owned(),
            towns: registry.towns().map(|t| named(&t.id, &t.name)).collect(),
            departments: registry
                .departments()
                .map(|d| named(&d.id, &d.name))
                .collect(),
            teams: registry
                .teams()
                .map(|t| TeamView {
                    town: t.town.clone(),
                    department: t.department.clone(),
                    name: t.name.clone(),
                    contact: t.contact.clone(),
                })
                .collect(),
            standards: registry
                .standards()
                .map(|s| named(&s.id, &s.name))
                .collect(),
        }
    }
}

/// An enterprise under supervision, with its monitoring points and their limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnterpriseView {
    /// Its id in the registry and in alerts.
    pub id: String,
    /// Its name, as written.
    pub name: String,
    /// `thermal_power`, `coal_mine`, `chemical`, `wastewater_treatment`, `boiler`, `cement`,
    /// `coking` or `other`.
    pub industry: String,
    /// Its town's id.
    pub town: String,
    /// The ids of the departments that supervise it.
    pub departments: Vec<String>,
    /// Its monitoring points, by MN.
    pub points: Vec<PointView>,
}

/// A monitoring point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PointView {
    /// The MN (HJ 212) or device id.
    pub mn: String,
    /// Its name, as written.
    pub name: String,
    /// What it is: `flue_gas_outlet`, `wastewater_outlet`, `mine_working_face`, ... (the
    /// registry's point kinds).
    pub kind: String,
    /// The reference O2 (%) its concentrations are corrected to, where the standard has one.
    pub o2_reference_pct: Option<f64>,
    /// The points it is checked against (a treatment meter's production line, ...).
    pub related: Vec<String>,
    /// The limits in force here.
    pub limits: Vec<LimitView>,
}

/// A limit in force at a point. Of the bounds, those of its `kind` are set, the others absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LimitView {
    /// The metric code (`a21026`, `w01018`, ...).
    pub metric: String,
    /// The metric's unit (`mg/m3`, `%`, ...).
    pub unit: String,
    /// Over what it is judged: `instant`, `hourly_avg` or `daily_avg`.
    pub basis: String,
    /// `max`, `min`, `range` (both), `methane` (alarm, power cut, restore) or `gas_alarm`
    /// (level 1, level 2).
    pub kind: String,
    /// The highest allowed value (`max`, `range`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<f64>,
    /// The lowest allowed value (`min`, `range`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min: Option<f64>,
    /// Methane alarm concentration, % CH4.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alarm: Option<f64>,
    /// Methane power-cut concentration, % CH4.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub power_cut: Option<f64>,
    /// Power may be restored below this methane concentration, % CH4.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub restore: Option<f64>,
    /// Gas alarm level 1 set point.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub level1: Option<f64>,
    /// Gas alarm level 2 set point.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub level2: Option<f64>,
    /// The id of the standard it comes from.
    pub standard: String,
}

impl EnterpriseView {
    /// The view of `enterprise`, its points as the registry has them.
    pub fn of(registry: &crate::Registry, enterprise: &crate::registry::Enterprise) -> Self {
        Self {
            id: enterprise.id.clone(),
            name: enterprise.name.clone(),
            industry: enterprise.industry.as_str().to_owned(),
            town: enterprise.town.clone(),
            departments: enterprise.departments.clone(),
            points: enterprise
                .points
                .iter()
                .filter_map(|mn| registry.point(mn.as_str()))
                .map(PointView::of)
                .collect(),
        }
    }
}

impl PointView {
    /// The view of `point`.
    pub fn of(point: &crate::registry::MonitoringPoint) -> Self {
        Self {
            mn: point.mn.as_str().to_owned(),
            name: point.name.clone(),
            kind: point.kind.as_str().to_owned(),
            o2_reference_pct: point.o2_reference_pct,
            related: point
                .related
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            limits: point.limits.iter().map(LimitView::of).collect(),
        }
    }
}

impl LimitView {
    /// The view of `limit`.
    pub fn of(limit: &crate::registry::Limit) -> Self {
        use crate::registry::LimitBound;
        let mut view = Self {
            metric: limit.metric.code().to_owned(),
            unit: limit.metric.unit().symbol().to_owned(),
            basis: limit.basis.as_str().to_owned(),
            kind: String::new(),
            max: None,
            min: None,
            alarm: None,
            power_cut: None,
            restore: None,
            level1: None,
            level2: None,
            standard: limit.standard.clone(),
        };
        view.kind = match limit.bound {
            LimitBound::Max(max) => {
                view.max = Some(max);
                "max"
            }
            LimitBound::Min(min) => {
                view.min = Some(min);
                "min"
            }
            LimitBound::Range { min, max } => {
                (view.min, view.max) = (Some(min), Some(max));
                "range"
            }
            LimitBound::Methane {
                alarm,
                power_cut,
                restore,
            } => {
                (view.alarm, view.power_cut, view.restore) =
                    (Some(alarm), Some(power_cut), Some(restore));
                "methane"
            }
            LimitBound::GasAlarm { level1, level2 } => {
                (view.level1, view.level2) = (Some(level1), Some(level2));
                "gas_alarm"
            }
        }
        .to_owned();
        view
    }
}

/// One reading of a point as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReadingView {
    /// Event time (RFC 3339, UTC).
    pub at: String,
    /// The value, in the metric's unit.
    pub value: f64,
    /// The data flag (`N` valid; `F` stopped, `M` maintenance, `D` fault, ... of HJ 212).
    pub flag: String,
}

/// One hour of a point's valid readings of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HourView {
    /// Start of the hour (RFC 3339, UTC).
    pub hour: String,
    /// Mean of the valid values.
    pub avg: f64,
    /// Lowest valid value.
    pub min: f64,
    /// Highest valid value.
    pub max: f64,
    /// How many valid values.
    pub samples: u64,
}

/// A point's readings of one metric over a range: each reading where the range is short,
/// hourly aggregates of the valid ones where it is long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeriesView {
    /// The point.
    pub point: String,
    /// The metric code.
    pub metric: String,
    /// Start of the range (RFC 3339, inclusive).
    pub from: String,
    /// End of the range (RFC 3339, exclusive).
    pub to: String,
    /// `real_time` (`readings` set) or `hour` (`hours` set).
    pub interval: String,
    /// Each real-time reading, oldest first (`real_time`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub readings: Option<Vec<ReadingView>>,
    /// Hourly aggregates, oldest first (`hour`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hours: Option<Vec<HourView>>,
}
