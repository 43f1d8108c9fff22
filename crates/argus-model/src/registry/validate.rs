//! Validation of the raw registry into [`Registry`]: every reference resolved, every number
//! checked, every error naming the file, line, field and reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use toml::Spanned;

use super::error::line_of;
use super::raw::{RawLimit, RawPoint, RawRegistry};
use super::{
    Department, Enterprise, Limit, LimitBasis, LimitBound, MonitoringPoint, PointKind, Registry,
    RegistryError, Standard, Team, Town,
};
use crate::{Metric, SourceId, Unit};

/// Longest MN HJ 212 allows.
const MAX_MN_LEN: usize = 24;
/// Longest PW accepted. HJ 212 specifies 6 characters, but loggers in the field send up to 24
/// (hex digests), so the registry allows some room.
const MAX_PW_LEN: usize = 32;

pub(super) fn parse(text: &str, origin: &str) -> Result<Registry, RegistryError> {
    let raw: RawRegistry = toml::from_str(text).map_err(|e| RegistryError {
        origin: origin.to_owned(),
        line: e.span().map(|span| line_of(text, span.start)),
        field: String::new(),
        reason: e.message().trim_end().to_owned(),
    })?;
    Validator { text, origin }.registry(raw)
}

struct Validator<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Validator<'_> {
    fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> RegistryError {
        RegistryError {
            origin: self.origin.to_owned(),
            line: Some(line_of(self.text, span.start)),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn id(&self, span: Range<usize>, field: &str, id: &str) -> Result<(), RegistryError> {
        if id.trim().is_empty() || id.trim() != id {
            return Err(self.error(
                span,
                field,
                "id must be non-empty and have no surrounding spaces",
            ));
        }
        Ok(())
    }

    fn registry(&self, raw: RawRegistry) -> Result<Registry, RegistryError> {
        if raw.county.name.trim().is_empty() {
            return Err(self.error(0..0, "county.name", "must not be empty"));
        }

        let mut standards = BTreeMap::new();
        for s in raw.standards {
            let span = s.span();
            let s = s.into_inner();
            let field = format!("standards[{}]", s.id);
            self.id(span.clone(), &field, &s.id)?;
            if standards
                .insert(
                    s.id.clone(),
                    Standard {
                        id: s.id,
                        name: s.name,
                    },
                )
                .is_some()
            {
                return Err(self.error(span, field, "duplicate standard id"));
            }
        }

        let mut towns = BTreeMap::new();
        for t in raw.towns {
            let span = t.span();
            let t = t.into_inner();
            let field = format!("towns[{}]", t.id);
            self.id(span.clone(), &field, &t.id)?;
            if towns
                .insert(
                    t.id.clone(),
                    Town {
                        id: t.id,
                        name: t.name,
                    },
                )
                .is_some()
            {
                return Err(self.error(span, field, "duplicate town id"));
            }
        }

        let mut departments = BTreeMap::new();
        for d in raw.departments {
            let span = d.span();
            let d = d.into_inner();
            let field = format!("departments[{}]", d.id);
            self.id(span.clone(), &field, &d.id)?;
            let department = Department {
                id: d.id.clone(),
                name: d.name,
                head: d.head,
            };
            if departments.insert(d.id, department).is_some() {
                return Err(self.error(span, field, "duplicate department id"));
            }
        }

        let mut teams = BTreeMap::new();
        for t in raw.teams {
            let span = t.span();
            let t = t.into_inner();
            let field = format!("teams[{}/{}]", t.town, t.department);
            if !towns.contains_key(&t.town) {
                return Err(self.error(
                    span,
                    format!("{field}.town"),
                    format!("unknown town {:?}", t.town),
                ));
            }
            if !departments.contains_key(&t.department) {
                let reason = format!("unknown department {:?}", t.department);
                return Err(self.error(span, format!("{field}.department"), reason));
            }
            let key = (t.town.clone(), t.department.clone());
            let team = Team {
                town: t.town,
                department: t.department,
                name: t.name,
                contact: t.contact,
            };
            if teams.insert(key, team).is_some() {
                return Err(self.error(
                    span,
                    field,
                    "a town has one team per department: duplicate team",
                ));
            }
        }

        let mut limit_sets: HashMap<String, Vec<Spanned<Limit>>> = HashMap::new();
        for set in raw.limit_sets {
            let span = set.span();
            let set = set.into_inner();
            let field = format!("limit_sets[{}]", set.id);
            self.id(span.clone(), &field, &set.id)?;
            let limits = self.limits(&field, set.limits, &standards)?;
            if limit_sets.insert(set.id, limits).is_some() {
                return Err(self.error(span, field, "duplicate limit set id"));
            }
        }

        let mut enterprises = BTreeMap::new();
        let mut points: HashMap<SourceId, MonitoringPoint> = HashMap::new();
        let mut related_refs = Vec::new();
        for e in raw.enterprises {
            let span = e.span();
            let e = e.into_inner();
            let field = format!("enterprises[{}]", e.id);
            self.id(span.clone(), &field, &e.id)?;
            if enterprises.contains_key(&e.id) {
                return Err(self.error(span, field, "duplicate enterprise id"));
            }
            if !towns.contains_key(&e.town) {
                return Err(self.error(
                    span,
                    format!("{field}.town"),
                    format!("unknown town {:?}", e.town),
                ));
            }
            if e.departments.is_empty() {
                return Err(self.error(
                    span,
                    format!("{field}.departments"),
                    "at least one department supervises an enterprise",
                ));
            }
            for d in &e.departments {
                if !departments.contains_key(d) {
                    return Err(self.error(
                        span,
                        format!("{field}.departments"),
                        format!("unknown department {d:?}"),
                    ));
                }
                if !teams.contains_key(&(e.town.clone(), d.clone())) {
                    let reason = format!(
                        "no team of department {d:?} in town {:?}: its tickets could not be routed",
                        e.town
                    );
                    return Err(self.error(span, format!("{field}.departments"), reason));
                }
            }
            let mut mns = Vec::with_capacity(e.points.len());
            for p in e.points {
                let point_span = p.span();
                let p = p.into_inner();
                let point_field = format!("{field}.points[{}]", p.mn);
                let related = p.related.clone();
                let point = self.point(
                    point_span.clone(),
                    &point_field,
                    &e.id,
                    p,
                    &standards,
                    &limit_sets,
                )?;
                if let Some(other) = points.get(&point.mn) {
                    let reason = format!(
                        "MN already used by a point of enterprise {:?}",
                        other.enterprise_id
                    );
                    return Err(self.error(point_span, format!("{point_field}.mn"), reason));
                }
                related_refs.push((point_span, point_field, point.mn.clone(), related));
                mns.push(point.mn.clone());
                points.insert(point.mn.clone(), point);
            }
            let enterprise = Enterprise {
                id: e.id.clone(),
                name: e.name,
                industry: e.industry,
                town: e.town,
                departments: e.departments,
                points: mns,
            };
            enterprises.insert(e.id, enterprise);
        }

        for (span, field, mn, related) in related_refs {
            let enterprise = points
                .get(&mn)
                .map(|p| p.enterprise_id.clone())
                .unwrap_or_default();
            let mut resolved = Vec::with_capacity(related.len());
            for other in related {
                let reason = match points.get(other.as_str()) {
                    None => Some(format!("unknown point {other:?}")),
                    Some(_) if other == mn.as_str() => {
                        Some("a point cannot be related to itself".to_owned())
                    }
                    Some(p) if p.enterprise_id != enterprise => Some(format!(
                        "point {other:?} belongs to another enterprise ({:?})",
                        p.enterprise_id
                    )),
                    Some(p) => {
                        resolved.push(p.mn.clone());
                        None
                    }
                };
                if let Some(reason) = reason {
                    return Err(self.error(span, format!("{field}.related"), reason));
                }
            }
            if let Some(point) = points.get_mut(&mn) {
                point.related = resolved;
            }
        }

        Ok(Registry {
            county: raw.county.name,
            standards,
            towns,
            departments,
            teams,
            enterprises,
            points,
        })
    }

    fn point(
        &self,
        span: Range<usize>,
        field: &str,
        enterprise_id: &str,
        p: RawPoint,
        standards: &BTreeMap<String, Standard>,
        limit_sets: &HashMap<String, Vec<Spanned<Limit>>>,
    ) -> Result<MonitoringPoint, RegistryError> {
        let mn_ok = !p.mn.is_empty()
            && p.mn.len() <= MAX_MN_LEN
            && p.mn
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !mn_ok {
            let reason =
                format!("MN must be 1 to {MAX_MN_LEN} characters of letters, digits, '-' or '_'");
            return Err(self.error(span, format!("{field}.mn"), reason));
        }
        if let Some(pw) = &p.pw {
            let pw_ok = !pw.is_empty()
                && pw.len() <= MAX_PW_LEN
                && pw.bytes().all(|b| b.is_ascii_alphanumeric());
            if !pw_ok {
                let reason = format!("PW must be 1 to {MAX_PW_LEN} letters or digits");
                return Err(self.error(span, format!("{field}.pw"), reason));
            }
        }
        match (p.kind, p.o2_reference_pct) {
            (PointKind::FlueGasOutlet, None) => {
                let reason = "a flue gas outlet needs the reference O2 of its standard (6 coal, 3 gas boiler, 15 turbine, 9 industrial boiler)";
                return Err(self.error(span, format!("{field}.o2_reference_pct"), reason));
            }
            (PointKind::FlueGasOutlet, Some(o2)) if !(0.0..20.0).contains(&o2) => {
                let reason = format!("reference O2 must be at least 0 and below 20 %, got {o2}");
                return Err(self.error(span, format!("{field}.o2_reference_pct"), reason));
            }
            (PointKind::FlueGasOutlet, Some(_)) | (_, None) => {}
            (kind, Some(_)) => {
                let reason = format!("only flue gas outlets have a reference O2, not a {kind}");
                return Err(self.error(span, format!("{field}.o2_reference_pct"), reason));
            }
        }

        match (p.kind.is_power_meter(), p.running_threshold_kw) {
            (true, None) => {
                let reason = "a power meter needs the power above which its line or facility counts as running";
                return Err(self.error(span, format!("{field}.running_threshold_kw"), reason));
            }
            (true, Some(kw)) if !(kw.is_finite() && kw > 0.0) => {
                let reason = format!("running threshold must be a positive number of kW, got {kw}");
                return Err(self.error(span, format!("{field}.running_threshold_kw"), reason));
            }
            (false, Some(_)) => {
                let reason = format!(
                    "only power meters have a running threshold, not a {}",
                    p.kind
                );
                return Err(self.error(span, format!("{field}.running_threshold_kw"), reason));
            }
            _ => {}
        }

        let mut limits: Vec<Spanned<Limit>> = Vec::new();
        for set_id in &p.limit_sets {
            let Some(set) = limit_sets.get(set_id) else {
                return Err(self.error(
                    span,
                    format!("{field}.limit_sets"),
                    format!("unknown limit set {set_id:?}"),
                ));
            };
            limits.extend(set.iter().cloned());
        }
        // Point-level limits override limit-set limits on the same (metric, basis).
        for own in self.limits(field, p.limits, standards)? {
            limits.retain(|l| {
                (l.as_ref().metric, l.as_ref().basis) != (own.as_ref().metric, own.as_ref().basis)
            });
            limits.push(own);
        }
        let mut seen = HashSet::new();
        for limit in &limits {
            let l = limit.as_ref();
            if !p.kind.accepts(l.metric) {
                let reason = format!(
                    "metric {} ({}) does not belong on a {} point",
                    l.metric,
                    l.metric.name(),
                    p.kind
                );
                return Err(self.error(limit.span(), format!("{field}.limits"), reason));
            }
            if !seen.insert((l.metric, l.basis)) {
                let reason = format!(
                    "two limit sets both limit {} on the {:?} basis",
                    l.metric, l.basis
                );
                return Err(self.error(span, format!("{field}.limit_sets"), reason));
            }
        }

        Ok(MonitoringPoint {
            mn: SourceId::new(&p.mn),
            name: p.name,
            enterprise_id: enterprise_id.to_owned(),
            kind: p.kind,
            password: p.pw,
            o2_reference_pct: p.o2_reference_pct,
            running_threshold_kw: p.running_threshold_kw,
            related: Vec::new(),
            limits: limits.into_iter().map(Spanned::into_inner).collect(),
        })
    }

    /// Validate a list of limits; two limits of the list on the same (metric, basis) are an error.
    fn limits(
        &self,
        field: &str,
        raw: Vec<Spanned<RawLimit>>,
        standards: &BTreeMap<String, Standard>,
    ) -> Result<Vec<Spanned<Limit>>, RegistryError> {
        let mut out: Vec<Spanned<Limit>> = Vec::with_capacity(raw.len());
        for (i, l) in raw.into_iter().enumerate() {
            let span = l.span();
            let limit_field = format!("{field}.limits[{i}]");
            let limit = self.limit(span.clone(), &limit_field, l.into_inner(), standards)?;
            if out
                .iter()
                .any(|o| (o.as_ref().metric, o.as_ref().basis) == (limit.metric, limit.basis))
            {
                let reason = format!(
                    "{} already has a limit on the {:?} basis in this list",
                    limit.metric, limit.basis
                );
                return Err(self.error(span, limit_field, reason));
            }
            out.push(Spanned::new(span, limit));
        }
        Ok(out)
    }

    fn limit(
        &self,
        span: Range<usize>,
        field: &str,
        l: RawLimit,
        standards: &BTreeMap<String, Standard>,
    ) -> Result<Limit, RegistryError> {
        let err =
            |sub: &str, reason: String| self.error(span.clone(), format!("{field}{sub}"), reason);
        let metric = Metric::from_code(&l.metric)
            .ok_or_else(|| err(".metric", format!("unknown metric code {:?}", l.metric)))?;
        if !standards.contains_key(&l.standard) {
            return Err(err(
                ".standard",
                format!("unknown standard {:?}", l.standard),
            ));
        }
        let values = [
            ("max", l.max),
            ("min", l.min),
            ("alarm", l.alarm),
            ("power_cut", l.power_cut),
            ("restore", l.restore),
            ("level1", l.level1),
            ("level2", l.level2),
        ];
        for (name, value) in values {
            match value {
                Some(v) if !v.is_finite() => {
                    return Err(err(
                        &format!(".{name}"),
                        format!("must be a finite number, got {v}"),
                    ))
                }
                Some(v) if v < 0.0 && metric.unit() != Unit::Celsius => {
                    return Err(err(
                        &format!(".{name}"),
                        format!(
                            "must not be negative for {metric} ({}), got {v}",
                            metric.unit().symbol()
                        ),
                    ));
                }
                _ => {}
            }
        }
        let bound = match (
            l.max,
            l.min,
            l.alarm,
            l.power_cut,
            l.restore,
            l.level1,
            l.level2,
        ) {
            (Some(max), None, None, None, None, None, None) => LimitBound::Max(max),
            (None, Some(min), None, None, None, None, None) => LimitBound::Min(min),
            (Some(max), Some(min), None, None, None, None, None) => {
                if min >= max {
                    return Err(err(
                        ".min",
                        format!("min ({min}) must be below max ({max})"),
                    ));
                }
                LimitBound::Range { min, max }
            }
            (None, None, Some(alarm), Some(power_cut), Some(restore), None, None) => {
                if metric != Metric::MineCh4 {
                    return Err(err(
                        ".alarm",
                        format!("alarm/power_cut/restore limits are for mine_ch4, not {metric}"),
                    ));
                }
                if !(restore <= alarm && alarm <= power_cut) {
                    let reason = format!(
                        "need restore <= alarm <= power_cut, got {restore} / {alarm} / {power_cut}"
                    );
                    return Err(err(".restore", reason));
                }
                LimitBound::Methane {
                    alarm,
                    power_cut,
                    restore,
                }
            }
            (None, None, None, None, None, Some(level1), Some(level2)) => {
                if !matches!(metric, Metric::GasCombustible | Metric::GasToxic) {
                    return Err(err(
                        ".level1",
                        format!("level1/level2 alarms are for gas detectors, not {metric}"),
                    ));
                }
                if level1 >= level2 {
                    return Err(err(
                        ".level1",
                        format!("level1 ({level1}) must be below level2 ({level2})"),
                    ));
                }
                LimitBound::GasAlarm { level1, level2 }
            }
            _ => {
                let reason = "a limit has exactly one of: max; min; min and max; alarm, power_cut and restore; level1 and level2";
                return Err(err("", reason.to_owned()));
            }
        };
        let basis = match (bound, l.basis) {
            (
                LimitBound::Methane { .. } | LimitBound::GasAlarm { .. },
                None | Some(LimitBasis::Instant),
            ) => LimitBasis::Instant,
            (LimitBound::Methane { .. } | LimitBound::GasAlarm { .. }, Some(other)) => {
                return Err(err(
                    ".basis",
                    format!("safety alarm limits are instantaneous, not {other:?}"),
                ));
            }
            (_, Some(basis)) => basis,
            (_, None) => {
                return Err(err(
                    ".basis",
                    "say which basis the limit is judged on: instant, hourly_avg or daily_avg"
                        .to_owned(),
                ));
            }
        };
        Ok(Limit {
            metric,
            basis,
            bound,
            standard: l.standard,
        })
    }
}
