//! A province: a county registry repeated K times under new ids (towns, enterprises, MNs), and
//! its registry file, for `argus simulate --scale K --write-registry FILE`. Copy 1 keeps the
//! county's ids; copy k > 1 gets town and enterprise ids suffixed `-kk` and MNs with the county
//! digits of a 14-digit HJ 212 MN shifted by k - 1 (others prefixed `Pkk-`). Standards and
//! departments are shared; teams are repeated per town. Limits are written out per point.

use std::collections::HashSet;
use std::fmt::Write as _;

use argus_model::registry::{Industry, LimitBasis, LimitBound, MonitoringPoint};
use argus_model::Registry;

use crate::SimError;

/// The MN of `mn` in copy `copy` (1-based; copy 1 is the county itself).
pub fn copy_mn(mn: &str, copy: u32) -> String {
    if copy <= 1 {
        return mn.to_owned();
    }
    let shift = copy - 1;
    if mn.len() == 14 && mn.bytes().all(|b| b.is_ascii_digit()) {
        let county: u32 = mn[4..6].parse().unwrap_or(0);
        return format!("{}{:02}{}", &mn[..4], (county + shift) % 100, &mn[6..]);
    }
    let prefix = format!("P{copy:02}-");
    let keep = 24usize.saturating_sub(prefix.len()).min(mn.len());
    format!("{prefix}{}", &mn[mn.len() - keep..])
}

fn copy_id(id: &str, copy: u32) -> String {
    if copy <= 1 {
        id.to_owned()
    } else {
        format!("{id}-{copy:02}")
    }
}

fn copy_name(name: &str, copy: u32) -> String {
    if copy <= 1 {
        name.to_owned()
    } else {
        format!("{name} ({copy})")
    }
}

/// A TOML basic string.
fn q(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML float.
fn num(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn industry(i: Industry) -> &'static str {
    match i {
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

fn basis(b: LimitBasis) -> &'static str {
    match b {
        LimitBasis::Instant => "instant",
        LimitBasis::HourlyAvg => "hourly_avg",
        LimitBasis::DailyAvg => "daily_avg",
    }
}

fn point_toml(out: &mut String, p: &MonitoringPoint, mn_of: &dyn Fn(&str) -> String) {
    out.push_str("\n[[enterprises.points]]\n");
    let _ = writeln!(out, "mn = {}", q(&mn_of(p.mn.as_str())));
    let _ = writeln!(out, "name = {}", q(&p.name));
    let _ = writeln!(out, "kind = {}", q(p.kind.as_str()));
    if let Some(pw) = &p.password {
        let _ = writeln!(out, "pw = {}", q(pw));
    }
    if let Some(o2) = p.o2_reference_pct {
        let _ = writeln!(out, "o2_reference_pct = {}", num(o2));
    }
    if let Some(kw) = p.running_threshold_kw {
        let _ = writeln!(out, "running_threshold_kw = {}", num(kw));
    }
    if !p.related.is_empty() {
        let related: Vec<String> = p.related.iter().map(|m| q(&mn_of(m.as_str()))).collect();
        let _ = writeln!(out, "related = [{}]", related.join(", "));
    }
    if !p.limits.is_empty() {
        out.push_str("limits = [\n");
        for l in &p.limits {
            let metric = q(l.metric.code());
            let standard = q(&l.standard);
            let bound = match l.bound {
                LimitBound::Max(m) => format!("basis = {}, max = {}", q(basis(l.basis)), num(m)),
                LimitBound::Min(m) => format!("basis = {}, min = {}", q(basis(l.basis)), num(m)),
                LimitBound::Range { min, max } => {
                    format!(
                        "basis = {}, min = {}, max = {}",
                        q(basis(l.basis)),
                        num(min),
                        num(max)
                    )
                }
                LimitBound::Methane {
                    alarm,
                    power_cut,
                    restore,
                } => format!(
                    "alarm = {}, power_cut = {}, restore = {}",
                    num(alarm),
                    num(power_cut),
                    num(restore)
                ),
                LimitBound::GasAlarm { level1, level2 } => {
                    format!("level1 = {}, level2 = {}", num(level1), num(level2))
                }
            };
            let _ = writeln!(
                out,
                "  {{ metric = {metric}, {bound}, standard = {standard} }},"
            );
        }
        out.push_str("]\n");
    }
}

/// The registry file of `registry` repeated `copies` times (at least once).
pub fn province_toml(registry: &Registry, copies: u32) -> String {
    let copies = copies.max(1);
    let mut out = String::new();
    let county = if copies == 1 {
        registry.county().to_owned()
    } else {
        format!(
            "{}, repeated {copies} times (simulated province)",
            registry.county()
        )
    };
    out.push_str("# Generated by argus-sim (province of repeated counties). Limits are written per point.\n\n");
    let _ = writeln!(out, "[county]\nname = {}", q(&county));
    // The standards the limits cite (the registry lists them by id only).
    let mut cited: Vec<&str> = registry
        .points()
        .flat_map(|p| p.limits.iter().map(|l| l.standard.as_str()))
        .collect();
    cited.sort_unstable();
    cited.dedup();
    for s in cited.into_iter().filter_map(|id| registry.standard(id)) {
        let _ = writeln!(
            out,
            "\n[[standards]]\nid = {}\nname = {}",
            q(&s.id),
            q(&s.name)
        );
    }
    for d in registry.departments() {
        let _ = writeln!(
            out,
            "\n[[departments]]\nid = {}\nname = {}\nhead = {}",
            q(&d.id),
            q(&d.name),
            q(&d.head)
        );
    }
    // MNs of all copies must be distinct: a shifted MN that meets another falls back to a prefix.
    let mut taken: HashSet<String> = HashSet::new();
    let mut mns = std::collections::HashMap::new();
    for copy in 1..=copies {
        let mut points: Vec<&MonitoringPoint> = registry.points().collect();
        points.sort_by(|a, b| a.mn.cmp(&b.mn));
        for p in points {
            let mut mn = copy_mn(p.mn.as_str(), copy);
            if !taken.insert(mn.clone()) {
                mn = format!("P{copy:02}-{}", p.mn.as_str());
                mn.truncate(24);
                taken.insert(mn.clone());
            }
            mns.insert((copy, p.mn.as_str().to_owned()), mn);
        }
    }
    for copy in 1..=copies {
        let mn_of = |mn: &str| {
            mns.get(&(copy, mn.to_owned()))
                .cloned()
                .unwrap_or_else(|| copy_mn(mn, copy))
        };
        for t in registry.towns() {
            let _ = writeln!(
                out,
                "\n[[towns]]\nid = {}\nname = {}",
                q(&copy_id(&t.id, copy)),
                q(&copy_name(&t.name, copy))
            );
        }
        for t in registry.teams() {
            let _ = writeln!(
                out,
                "\n[[teams]]\ntown = {}\ndepartment = {}\nname = {}\ncontact = {}",
                q(&copy_id(&t.town, copy)),
                q(&t.department),
                q(&copy_name(&t.name, copy)),
                q(&t.contact)
            );
        }
        for e in registry.enterprises() {
            out.push_str("\n[[enterprises]]\n");
            let _ = writeln!(out, "id = {}", q(&copy_id(&e.id, copy)));
            let _ = writeln!(out, "name = {}", q(&copy_name(&e.name, copy)));
            let _ = writeln!(out, "industry = {}", q(industry(e.industry)));
            let _ = writeln!(out, "town = {}", q(&copy_id(&e.town, copy)));
            let departments: Vec<String> = e.departments.iter().map(|d| q(d)).collect();
            let _ = writeln!(out, "departments = [{}]", departments.join(", "));
            for mn in &e.points {
                if let Some(p) = registry.point(mn.as_str()) {
                    point_toml(&mut out, p, &mn_of);
                }
            }
        }
    }
    out
}

/// The province of `copies` counties: its registry file and the registry parsed from it
/// (which is what Argus will load).
pub fn province(registry: &Registry, copies: u32) -> Result<(String, Registry), SimError> {
    let text = province_toml(registry, copies);
    let parsed = Registry::from_toml_str(&text, "province.toml")?;
    Ok((text, parsed))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_province_is_a_valid_registry_with_every_point_repeated() {
        let county = Registry::from_toml_str(
            include_str!("../../../config/registry.toml"),
            "registry.toml",
        )
        .unwrap();
        let (text, one) = province(&county, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.points().count(), county.points().count());
        assert_eq!(one.summary(), county.summary(), "{}", &text[..200]);
        let (_, three) = province(&county, 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(three.points().count(), 3 * county.points().count());
        assert_eq!(
            three.enterprises().count(),
            3 * county.enterprises().count()
        );
        let copied = three.point(&copy_mn("15010201000103", 3)).unwrap();
        assert_eq!(copied.enterprise_id, "E001-03");
        assert_eq!(copied.related[0].as_str(), copy_mn("15010201000102", 3));
        assert_eq!(copy_mn("15010201000103", 3), "15010401000103");
        assert_eq!(copy_mn("MINE01-CH4-WF1", 2), "P02-MINE01-CH4-WF1");
        for p in county.points() {
            assert_eq!(
                three.point(p.mn.as_str()).map(|q| &q.limits),
                Some(&p.limits)
            );
        }
    }
}
