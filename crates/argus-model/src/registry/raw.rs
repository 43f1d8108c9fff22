//! The registry file as written: serde shapes of `config/registry.toml`, before validation.
//!
//! Every table denies unknown fields, so a misspelt key is an error, not a silent default.
//! Spans are kept on the tables so that validation errors can name a line.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegistry {
    pub county: RawCounty,
    #[serde(default)]
    pub standards: Vec<Spanned<RawStandard>>,
    #[serde(default)]
    pub towns: Vec<Spanned<RawTown>>,
    #[serde(default)]
    pub departments: Vec<Spanned<RawDepartment>>,
    #[serde(default)]
    pub teams: Vec<Spanned<RawTeam>>,
    #[serde(default)]
    pub limit_sets: Vec<Spanned<RawLimitSet>>,
    #[serde(default)]
    pub enterprises: Vec<Spanned<RawEnterprise>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCounty {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStandard {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTown {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDepartment {
    pub id: String,
    pub name: String,
    pub head: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTeam {
    pub town: String,
    pub department: String,
    pub name: String,
    #[serde(default)]
    pub contact: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimitSet {
    pub id: String,
    pub limits: Vec<Spanned<RawLimit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnterprise {
    pub id: String,
    pub name: String,
    pub industry: super::Industry,
    pub town: String,
    pub departments: Vec<String>,
    #[serde(default)]
    pub points: Vec<Spanned<RawPoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoint {
    pub mn: String,
    pub name: String,
    pub kind: super::PointKind,
    #[serde(default)]
    pub pw: Option<String>,
    #[serde(default)]
    pub o2_reference_pct: Option<f64>,
    #[serde(default)]
    pub running_threshold_kw: Option<f64>,
    #[serde(default)]
    pub related: Vec<String>,
    #[serde(default)]
    pub limit_sets: Vec<String>,
    #[serde(default)]
    pub limits: Vec<Spanned<RawLimit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimit {
    pub metric: String,
    pub standard: String,
    #[serde(default)]
    pub basis: Option<super::LimitBasis>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub alarm: Option<f64>,
    #[serde(default)]
    pub power_cut: Option<f64>,
    #[serde(default)]
    pub restore: Option<f64>,
    #[serde(default)]
    pub level1: Option<f64>,
    #[serde(default)]
    pub level2: Option<f64>,
}
