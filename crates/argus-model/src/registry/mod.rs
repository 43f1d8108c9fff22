//! The county registry: towns, departments, enforcement teams, enterprises, monitoring points and
//! the limits that apply at each point, with the standard each limit comes from.
//!
//! The registry is written as TOML (`config/registry.toml` documents the format) and validated
//! into the types here by [`Registry::from_toml_str`]; nothing starts on an invalid registry.

mod error;
mod raw;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;

use crate::{Metric, MetricDomain, SourceId};

pub use error::RegistryError;

/// What an enterprise does; decides which rules and departments apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Industry {
    /// Coal-fired or gas-fired power plant (GB 13223-2011).
    ThermalPower,
    /// Coal mine (AQ 1029 methane and safety monitoring).
    CoalMine,
    /// Hazardous-chemical plant (GB/T 50493-2019 gas detection).
    Chemical,
    /// Municipal or industrial wastewater treatment plant.
    WastewaterTreatment,
    /// Industrial or heating boiler house (GB 13271-2014).
    Boiler,
    /// Cement plant.
    Cement,
    /// Coking plant.
    Coking,
    /// Anything else.
    Other,
}

impl Industry {
    /// The snake_case name used in the registry file and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Industry::ThermalPower => "thermal_power",
            Industry::CoalMine => "coal_mine",
            Industry::Chemical => "chemical",
            Industry::WastewaterTreatment => "wastewater_treatment",
            Industry::Boiler => "boiler",
            Industry::Cement => "cement",
            Industry::Coking => "coking",
            Industry::Other => "other",
        }
    }
}

/// What a monitoring point is; decides which metrics it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// Flue gas outlet (stack) with a CEMS.
    FlueGasOutlet,
    /// Wastewater outlet with online water-quality analysers.
    WastewaterOutlet,
    /// Coal-mine working face (采煤工作面).
    MineWorkingFace,
    /// Coal-mine heading face (掘进工作面).
    MineHeadingFace,
    /// Return airway of a working face (回风巷).
    MineReturnAirway,
    /// Other mine location (main return, belt roadway ...).
    MineOther,
    /// Power-cut feedback of a mine area: reports whether the area is powered.
    MinePowerFeed,
    /// Gas detector at a chemical plant (combustible or toxic).
    GasDetector,
    /// Storage tank (level, pressure, temperature).
    Tank,
    /// Power meter of a production line.
    ProductionLinePower,
    /// Power meter of a pollution-control (treatment) facility.
    TreatmentPower,
}

impl PointKind {
    /// Whether the point is a power meter (needs a running threshold).
    pub const fn is_power_meter(self) -> bool {
        matches!(
            self,
            PointKind::ProductionLinePower | PointKind::TreatmentPower
        )
    }
}

impl PointKind {
    /// The snake_case name used in the registry file and storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            PointKind::FlueGasOutlet => "flue_gas_outlet",
            PointKind::WastewaterOutlet => "wastewater_outlet",
            PointKind::MineWorkingFace => "mine_working_face",
            PointKind::MineHeadingFace => "mine_heading_face",
            PointKind::MineReturnAirway => "mine_return_airway",
            PointKind::MineOther => "mine_other",
            PointKind::MinePowerFeed => "mine_power_feed",
            PointKind::GasDetector => "gas_detector",
            PointKind::Tank => "tank",
            PointKind::ProductionLinePower => "production_line_power",
            PointKind::TreatmentPower => "treatment_power",
        }
    }

    /// Whether a point of this kind can carry `metric`.
    pub fn accepts(self, metric: Metric) -> bool {
        use Metric::*;
        match self {
            PointKind::FlueGasOutlet => metric.domain() == MetricDomain::Air,
            PointKind::WastewaterOutlet => metric.domain() == MetricDomain::Water,
            PointKind::MineWorkingFace
            | PointKind::MineHeadingFace
            | PointKind::MineReturnAirway
            | PointKind::MineOther => matches!(metric, MineCh4 | MineCo),
            PointKind::MinePowerFeed => metric == MinePower,
            PointKind::GasDetector => matches!(metric, GasCombustible | GasToxic),
            PointKind::Tank => matches!(metric, TankLevel | ProcessPressure | ProcessTemperature),
            PointKind::ProductionLinePower | PointKind::TreatmentPower => {
                metric.domain() == MetricDomain::Power
            }
        }
    }
}

impl fmt::Display for PointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Over what a limit is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitBasis {
    /// Each value as measured.
    Instant,
    /// Average over a natural hour in UTC+8, valid data only.
    HourlyAvg,
    /// Average over a natural day in UTC+8, valid data only.
    DailyAvg,
}

impl LimitBasis {
    /// The snake_case name used in the registry file and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitBasis::Instant => "instant",
            LimitBasis::HourlyAvg => "hourly_avg",
            LimitBasis::DailyAvg => "daily_avg",
        }
    }
}

/// The shape of a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitBound {
    /// Value must not exceed `max`.
    Max(f64),
    /// Value must not fall below `min`.
    Min(f64),
    /// Value must stay within `min..=max` (pH 6-9).
    Range {
        /// Lowest allowed value.
        min: f64,
        /// Highest allowed value.
        max: f64,
    },
    /// Coal-mine methane (AQ 1029): alarm at `alarm`, cut the power at `power_cut`, restore power
    /// only once below `restore` (all in % CH4).
    Methane {
        /// Alarm concentration.
        alarm: f64,
        /// Power-cut concentration.
        power_cut: f64,
        /// Power may be restored below this concentration.
        restore: f64,
    },
    /// Two-level gas alarm of GB/T 50493-2019 (level 1 warns, level 2 is the high alarm).
    GasAlarm {
        /// Level-1 alarm set point.
        level1: f64,
        /// Level-2 alarm set point.
        level2: f64,
    },
}

/// One limit that applies at a monitoring point.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// The metric limited.
    pub metric: Metric,
    /// Over what it is judged.
    pub basis: LimitBasis,
    /// The values.
    pub bound: LimitBound,
    /// Id of the standard it comes from (see [`Registry::standard`]).
    pub standard: String,
}

/// A standard (regulation) that limits come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standard {
    /// Short id used in the registry (`GB13223-2011`).
    pub id: String,
    /// Full title.
    pub name: String,
}

/// A town: the jurisdiction enforcement is organised by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Town {
    /// Id used in the registry.
    pub id: String,
    /// Name.
    pub name: String,
}

/// A supervising department (environment, safety, coal ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// Id used in the registry.
    pub id: String,
    /// Name.
    pub name: String,
    /// The department head, who receives escalations of missed deadlines.
    pub head: String,
}

/// The enforcement team of one department in one town: where tickets are routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// Town id.
    pub town: String,
    /// Department id.
    pub department: String,
    /// Team name.
    pub name: String,
    /// How to reach it (phone, duty roster), free text.
    pub contact: String,
}

/// A production unit under supervision.
#[derive(Debug, Clone, PartialEq)]
pub struct Enterprise {
    /// Id used in the registry and in alerts.
    pub id: String,
    /// Name.
    pub name: String,
    /// Industry.
    pub industry: Industry,
    /// Town id.
    pub town: String,
    /// Ids of the departments that supervise it.
    pub departments: Vec<String>,
    /// MNs of its monitoring points.
    pub points: Vec<SourceId>,
}

/// A monitoring point: one data source (HJ 212 MN or device id) of one enterprise.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoringPoint {
    /// The MN (HJ 212) or device id.
    pub mn: SourceId,
    /// Name.
    pub name: String,
    /// The enterprise it belongs to.
    pub enterprise_id: String,
    /// What it is.
    pub kind: PointKind,
    /// HJ 212 access password (`PW`) the data logger must send, if checked.
    pub password: Option<String>,
    /// Reference O2 of the point's standard, in %, for O2-corrected concentrations.
    pub o2_reference_pct: Option<f64>,
    /// For power meters: the active power (kW) above which the metered line or facility counts
    /// as running.
    pub running_threshold_kw: Option<f64>,
    /// Points this one is checked against (the production line a treatment meter serves, the
    /// power feed a methane sensor cuts, ...); all of the same enterprise.
    pub related: Vec<SourceId>,
    /// Limits in force here (limit sets resolved, point-level limits overriding them).
    pub limits: Vec<Limit>,
}

impl MonitoringPoint {
    /// The limits on `metric`, any basis.
    pub fn limits_for(&self, metric: Metric) -> impl Iterator<Item = &Limit> {
        self.limits
            .iter()
            .filter(move |limit| limit.metric == metric)
    }
}

/// The validated registry of one county (or province).
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    county: String,
    standards: BTreeMap<String, Standard>,
    towns: BTreeMap<String, Town>,
    departments: BTreeMap<String, Department>,
    teams: BTreeMap<(String, String), Team>,
    enterprises: BTreeMap<String, Enterprise>,
    points: HashMap<SourceId, MonitoringPoint>,
}

impl Registry {
    /// Parse and validate a registry. `origin` (usually the file path) is named in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, RegistryError> {
        validate::parse(text, origin)
    }

    /// Name of the county.
    pub fn county(&self) -> &str {
        &self.county
    }

    /// A monitoring point by MN or device id.
    pub fn point(&self, mn: &str) -> Option<&MonitoringPoint> {
        self.points.get(mn)
    }

    /// All monitoring points, in no particular order.
    pub fn points(&self) -> impl Iterator<Item = &MonitoringPoint> {
        self.points.values()
    }

    /// An enterprise by id.
    pub fn enterprise(&self, id: &str) -> Option<&Enterprise> {
        self.enterprises.get(id)
    }

    /// All enterprises, by id.
    pub fn enterprises(&self) -> impl Iterator<Item = &Enterprise> {
        self.enterprises.values()
    }

    /// A town by id.
    pub fn town(&self, id: &str) -> Option<&Town> {
        self.towns.get(id)
    }

    /// All towns, by id.
    pub fn towns(&self) -> impl Iterator<Item = &Town> {
        self.towns.values()
    }

    /// A department by id.
    pub fn department(&self, id: &str) -> Option<&Department> {
        self.departments.get(id)
    }

    /// All departments, by id.
    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }

    /// A standard by id.
    pub fn standard(&self, id: &str) -> Option<&Standard> {
        self.standards.get(id)
    }

    /// The standards, by id.
    pub fn standards(&self) -> impl Iterator<Item = &Standard> {
        self.standards.values()
    }

    /// The enforcement team of `department` in `town`. Validation guarantees one exists for
    /// every (town, department) pair that supervises an enterprise.
    pub fn team(&self, town: &str, department: &str) -> Option<&Team> {
        self.teams.get(&(town.to_owned(), department.to_owned()))
    }

    /// All teams.
    pub fn teams(&self) -> impl Iterator<Item = &Team> {
        self.teams.values()
    }

    /// Counts for logs and metrics.
    pub fn summary(&self) -> RegistrySummary {
        RegistrySummary {
            towns: self.towns.len(),
            departments: self.departments.len(),
            teams: self.teams.len(),
            enterprises: self.enterprises.len(),
            points: self.points.len(),
            limits: self.points.values().map(|p| p.limits.len()).sum(),
        }
    }
}

/// How big a registry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrySummary {
    /// Number of towns.
    pub towns: usize,
    /// Number of departments.
    pub departments: usize,
    /// Number of enforcement teams.
    pub teams: usize,
    /// Number of enterprises.
    pub enterprises: usize,
    /// Number of monitoring points.
    pub points: usize,
    /// Number of limits over all points.
    pub limits: usize,
}

impl fmt::Display for RegistrySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} towns, {} departments, {} teams, {} enterprises, {} monitoring points, {} limits",
            self.towns, self.departments, self.teams, self.enterprises, self.points, self.limits
        )
    }
}
