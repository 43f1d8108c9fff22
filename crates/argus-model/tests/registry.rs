//! Registry validation: a good registry loads, and each kind of mistake is refused with an error
//! that names the line, the field and the reason.

use argus_model::registry::{LimitBasis, LimitBound, PointKind};
use argus_model::{Metric, Registry};

const BASE: &str = r#"
[county]
name = "Test County"

[[standards]]
id = "ULE"
name = "ultra-low emission"

[[standards]]
id = "AQ1029"
name = "coal mine methane"

[[towns]]
id = "t1"
name = "Town One"

[[departments]]
id = "environment"
name = "Environment"
head = "Head E"

[[departments]]
id = "coal"
name = "Coal"
head = "Head C"

[[teams]]
town = "t1"
department = "environment"
name = "Env squad"

[[teams]]
town = "t1"
department = "coal"
name = "Coal squad"

[[limit_sets]]
id = "ule"
limits = [
  { metric = "a21026", basis = "hourly_avg", max = 35.0, standard = "ULE" },
  { metric = "a21002", basis = "hourly_avg", max = 50.0, standard = "ULE" },
]

[[enterprises]]
id = "E1"
name = "Plant"
industry = "thermal_power"
town = "t1"
departments = ["environment"]

[[enterprises.points]]
mn = "MN0001"
name = "stack"
kind = "flue_gas_outlet"
o2_reference_pct = 6.0
limit_sets = ["ule"]
limits = [{ metric = "a21002", basis = "hourly_avg", max = 100.0, standard = "ULE" }]

[[enterprises]]
id = "M1"
name = "Mine"
industry = "coal_mine"
town = "t1"
departments = ["coal"]

[[enterprises.points]]
mn = "MINE-CH4-01"
name = "working face T0"
kind = "mine_working_face"
related = ["MINE-PWR-01"]
limits = [{ metric = "mine_ch4", alarm = 1.0, power_cut = 1.5, restore = 1.0, standard = "AQ1029" }]

[[enterprises.points]]
mn = "MINE-PWR-01"
name = "working face feed"
kind = "mine_power_feed"
"#;

#[test]
fn a_valid_registry_loads_with_limit_sets_resolved_and_overridden() {
    let registry = Registry::from_toml_str(BASE, "base.toml").unwrap_or_else(|e| panic!("{e}"));
    let summary = registry.summary();
    assert_eq!(
        (
            summary.towns,
            summary.enterprises,
            summary.points,
            summary.teams
        ),
        (1, 2, 3, 2)
    );

    let stack = registry
        .point("MN0001")
        .unwrap_or_else(|| panic!("stack missing"));
    assert_eq!(stack.kind, PointKind::FlueGasOutlet);
    let nox: Vec<_> = stack.limits_for(Metric::Nox).collect();
    assert_eq!(nox.len(), 1, "the point's own NOx limit replaces the set's");
    assert_eq!(nox[0].bound, LimitBound::Max(100.0));
    assert_eq!(nox[0].basis, LimitBasis::HourlyAvg);
    assert_eq!(stack.limits_for(Metric::So2).count(), 1);

    let ch4 = registry
        .point("MINE-CH4-01")
        .unwrap_or_else(|| panic!("ch4 missing"));
    assert_eq!(ch4.related[0].as_str(), "MINE-PWR-01");
    assert_eq!(
        ch4.limits[0].bound,
        LimitBound::Methane {
            alarm: 1.0,
            power_cut: 1.5,
            restore: 1.0
        }
    );
    assert_eq!(
        registry.team("t1", "coal").map(|t| t.name.as_str()),
        Some("Coal squad")
    );
}

/// Replace the first occurrence of `from` in the base registry and expect a load error
/// containing each of `expected`, at `line` when given.
fn refused(from: &str, to: &str, line: Option<usize>, expected: &[&str]) {
    assert!(BASE.contains(from), "test setup: {from:?} not in base");
    let text = BASE.replacen(from, to, 1);
    let err = match Registry::from_toml_str(&text, "broken.toml") {
        Ok(_) => panic!("registry with {to:?} was accepted"),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(
        message.starts_with("invalid registry broken.toml line "),
        "{message}"
    );
    for part in expected {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    if let Some(line) = line {
        assert_eq!(err.line, Some(line), "{message}");
    }
}

fn line_of(needle: &str) -> usize {
    let offset = BASE
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in base"));
    BASE[..offset].matches('\n').count() + 1
}

#[test]
fn a_negative_limit_is_refused_naming_the_place() {
    let line = line_of("{ metric = \"a21002\", basis = \"hourly_avg\", max = 100.0");
    refused(
        "max = 100.0",
        "max = -100.0",
        Some(line),
        &[
            "enterprises[E1].points[MN0001].limits[0].max",
            "must not be negative",
        ],
    );
}

#[test]
fn an_unknown_metric_code_is_refused_naming_the_place() {
    let line = line_of("{ metric = \"a21026\"");
    refused(
        "metric = \"a21026\"",
        "metric = \"a99999\"",
        Some(line),
        &[
            "limit_sets[ule].limits[0].metric",
            "unknown metric code \"a99999\"",
        ],
    );
}

#[test]
fn syntax_and_schema_errors_name_the_line() {
    refused(
        "kind = \"flue_gas_outlet\"",
        "kind = \"chimney\"",
        Some(line_of("kind = \"flue_gas_outlet\"")),
        &["unknown variant `chimney`"],
    );
    refused(
        "o2_reference_pct = 6.0",
        "o2_reference_pct = 6.0\ncolour = \"red\"",
        None,
        &["unknown field `colour`"],
    );
    refused("name = \"stack\"", "name = ", None, &["line"]);
}

#[test]
fn broken_references_and_impossible_limits_are_refused() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("town = \"t1\"\ndepartments = [\"environment\"]", "town = \"t9\"\ndepartments = [\"environment\"]", &["enterprises[E1].town", "unknown town \"t9\""]),
        ("departments = [\"coal\"]", "departments = [\"safety\"]", &["unknown department \"safety\""]),
        ("limit_sets = [\"ule\"]", "limit_sets = [\"nope\"]", &["unknown limit set \"nope\""]),
        ("related = [\"MINE-PWR-01\"]", "related = [\"MN0001\"]", &["belongs to another enterprise"]),
        ("mn = \"MINE-PWR-01\"", "mn = \"MN0001\"", &["MN already used by a point of enterprise \"E1\""]),
        ("alarm = 1.0, power_cut = 1.5", "alarm = 2.0, power_cut = 1.5", &["restore <= alarm <= power_cut"]),
        ("o2_reference_pct = 6.0\n", "o2_reference_pct = 21.0\n", &["reference O2"]),
        ("o2_reference_pct = 6.0\n", "\n", &["needs the reference O2"]),
        ("standard = \"AQ1029\"", "standard = \"AQ9999\"", &["unknown standard \"AQ9999\""]),
        ("basis = \"hourly_avg\", max = 100.0", "max = 100.0", &["say which basis"]),
        ("kind = \"mine_power_feed\"", "kind = \"mine_power_feed\"\nlimits = [{ metric = \"a21026\", basis = \"instant\", max = 1.0, standard = \"ULE\" }]", &["does not belong on a mine_power_feed point"]),
        ("[[teams]]\ntown = \"t1\"\ndepartment = \"coal\"", "[[teams]]\ntown = \"t1\"\ndepartment = \"environment\"", &["duplicate team"]),
    ];
    for (from, to, expected) in cases {
        refused(from, to, None, expected);
    }
}

#[test]
fn the_shipped_example_registry_is_valid_and_complete() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/registry.toml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let registry = Registry::from_toml_str(&text, path).unwrap_or_else(|e| panic!("{e}"));
    let summary = registry.summary();
    assert_eq!(summary.towns, 7, "{summary}");
    assert!(summary.enterprises >= 40, "{summary}");
    for point in registry.points() {
        match point.kind {
            PointKind::MinePowerFeed => {}
            kind if kind.is_power_meter() => assert!(point.running_threshold_kw.is_some()),
            _ => assert!(!point.limits.is_empty(), "point {} has no limits", point.mn),
        }
    }
}
