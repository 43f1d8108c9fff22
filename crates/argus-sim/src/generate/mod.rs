//! The generator: every point of the registry becomes a feed that ticks in simulated time
//! (flue gas loggers every 30-60 s, wastewater every minute, coal-mine sensors and power feeds
//! every 15 s, gas detectors, tanks and power meters every minute), with a diurnal load curve
//! and instrument noise; each simulated day gets a plan of violations of every rule kind and of
//! look-alikes that must not alert, placed on points the compiled rules check for them. The
//! stream is produced lazily, one simulated instant ([`Group`]) at a time, and is a function of
//! the registry, the rules and the [`Scenario`] alone: same seed and options, same bytes.
//!
//! Truth entries come with the group whose data commits Argus to the alert, never later than
//! Argus could store it: a threshold at the breaching reading, a sustained condition once the
//! data sent so far makes it certain (Argus judges silence as the condition going on), an
//! hourly average once the hour holds enough violating values to count. Windows with too few
//! valid values are found by counting what was sent, like Argus does. [`Generator::finish`]
//! adds what the end of the feed itself makes Argus find.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::f64::consts::TAU;
use std::sync::Arc;

use argus_model::registry::{LimitBasis, LimitBound, MonitoringPoint, PointKind};
use argus_model::time::CHINA_OFFSET_SECS;
use argus_model::{AlertKind, DataFlag, Metric, Registry, Timestamp};
use argus_rules::{Instance, Machine, Period, RuleSet};
use serde::{Deserialize, Serialize};

use crate::noise::{fnv, Rng};
use crate::truth::{Cause, TruthEntry, TruthHeader, TRUTH_VERSION};
use crate::wire::{self, Message, Route, Sample};
use crate::{RuleParams, SimError};

mod plan;

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Free time kept around an injection on the same point.
const MARGIN: i64 = 30 * MIN;

/// 2026-11-26T00:00:00+08:00, the default scenario's start.
pub const DEFAULT_START: Timestamp = Timestamp(1_795_622_400_000);

/// Which transports the feeds may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Transports {
    /// HJ 212 over TCP to the gateway.
    pub hj212_tcp: bool,
    /// MQTT (readings and raw HJ 212; MQTT carries no events).
    pub mqtt: bool,
    /// Kafka (readings, raw HJ 212, events).
    pub kafka: bool,
}

impl Transports {
    /// All three.
    pub const ALL: Transports = Transports {
        hj212_tcp: true,
        mqtt: true,
        kafka: true,
    };

    /// Their names.
    pub fn names(&self) -> Vec<String> {
        [
            (self.hj212_tcp, "hj212_tcp"),
            (self.mqtt, "mqtt"),
            (self.kafka, "kafka"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_owned())
        .collect()
    }
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Seed of all randomness.
    pub seed: u64,
    /// Simulated start.
    pub start: Timestamp,
    /// Simulated end (exclusive); `None` runs forever.
    pub end: Option<Timestamp>,
    /// Transports the feeds are spread over. Enterprise events (production state, maintenance
    /// notices, power-cut feedback and power as events) go to Kafka `argus.events`, or to MQTT
    /// `argus/v1/events/{enterprise}` without Kafka; with HJ 212 TCP alone the same facts go as
    /// readings and no maintenance notice (hence no muted alert) is sent.
    pub transports: Transports,
    /// Inject violations and look-alikes (false: clean data only).
    pub violations: bool,
    /// Loggers also send minute and hourly data (CN 2051/2061). Off by default: Argus today
    /// takes their averages as instant readings of the same series, which changes what the
    /// data-quality and average rules see, so the truth is exact only without them.
    pub logger_averages: bool,
    /// The rules' durations the plan is built around.
    pub params: RuleParams,
}

impl Scenario {
    /// The default scenario: one day from [`DEFAULT_START`], seed 1, all transports.
    pub fn default_day() -> Self {
        Self {
            seed: 1,
            start: DEFAULT_START,
            end: Some(DEFAULT_START.plus_millis(DAY)),
            transports: Transports::ALL,
            violations: true,
            logger_averages: false,
            params: RuleParams::default(),
        }
    }

    /// The same, ending `hours` after the start.
    pub fn with_hours(mut self, hours: f64) -> Self {
        self.end = Some(self.start.plus_millis((hours * HOUR as f64).round() as i64));
        self
    }
}

/// One simulated instant: the messages to send and the truth entries they commit to.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Simulated time.
    pub at: Timestamp,
    /// Messages, in sending order.
    pub messages: Vec<Message>,
    /// Expected alerts the data sent up to and with this group commits Argus to.
    pub truth: Vec<TruthEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeedRoute {
    Tcp { reply: bool },
    MqttJson,
    MqttHj212,
    KafkaJson,
    KafkaHj212,
    EventPower,
    EventFeedback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Flue,
    Water,
    Methane,
    Feed,
    Gas,
    Tank,
    Power,
    Unregistered,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    /// A flue gas concentration judged at the reference O2: `base` is the corrected level.
    Corrected,
    /// Follows the load (flows).
    Load,
    /// Steady with noise.
    Flat,
    /// O2, from the reference O2 and the load.
    Oxygen,
    /// pH around the middle of its range.
    Ph,
    /// Coal-mine methane, slowly breathing.
    Methane,
}

#[derive(Debug, Clone)]
struct Series {
    metric: Metric,
    base: f64,
    model: Model,
    /// Flag-duration, zero-while-operating watched; last value sent.
    flags_watched: bool,
    zero_watched: bool,
    flag_since: Option<i64>,
    zero_since: Option<i64>,
    last: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Effect {
    Value {
        metric: Metric,
        value: f64,
    },
    Corrected {
        metric: Metric,
        value: f64,
    },
    Hold {
        metric: Metric,
        held: Option<f64>,
    },
    Flag {
        metric: Metric,
        flag: DataFlag,
    },
    Silent,
    O2Ramp {
        start: i64,
        peak: f64,
        steps: u32,
        interval: i64,
    },
    O2Delta {
        delta: f64,
    },
    PowerOff,
    FeedCut,
}

#[derive(Debug, Clone, PartialEq)]
struct Injection {
    from: i64,
    to: i64,
    effect: Effect,
}

/// Counts what an average rule will count, to find windows with too little valid data.
#[derive(Debug, Clone)]
struct AvgCounter {
    instance: Arc<Instance>,
    metric: Metric,
    period: Period,
    /// Valid values a window needs: minute values of an hour, hourly values of a day.
    min: u32,
    /// Valid minute values an hour of a day needs.
    min_minutes: u32,
    o2: Option<argus_rules::O2Correction>,
    /// The window's start and what it counted so far.
    window: Option<(i64, Tally)>,
    open: bool,
}

/// What the data sent gives a regulatory window: the valid minutes of its current hour and,
/// for a day, the valid hours before it (the simulator sends no stopped flags).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    hour: i64,
    minutes: u64,
    hours: u32,
}

impl Tally {
    fn new(t: i64) -> Self {
        Self {
            hour: china_hour_start(t),
            ..Self::default()
        }
    }

    /// A valid value at `t` (in the window, in time order).
    fn add(&mut self, t: i64, min_minutes: u32) {
        let hour = china_hour_start(t);
        if hour != self.hour {
            self.hours += u32::from(self.minutes.count_ones() >= min_minutes);
            *self = Self {
                hour,
                minutes: 0,
                hours: self.hours,
            };
        }
        self.minutes |= 1 << ((t - hour) / MIN).clamp(0, 59);
    }

    /// Valid values of the window: minutes of an hour, valid hours of a day.
    fn valid(&self, period: Period, min_minutes: u32) -> u32 {
        match period {
            Period::Hour => self.minutes.count_ones(),
            Period::Day => self.hours + u32::from(self.minutes.count_ones() >= min_minutes),
        }
    }
}

#[derive(Debug, Clone)]
struct Feed {
    mn: String,
    enterprise: String,
    role: Role,
    pw: Option<String>,
    route: FeedRoute,
    interval: i64,
    first: i64,
    until: Option<i64>,
    series: Vec<Series>,
    o2_ref: f64,
    running_kw: f64,
    rng: Rng,
    rfc3339: bool,
    instances: Vec<Arc<Instance>>,
    injections: Vec<Injection>,
    busy: Vec<(i64, i64)>,
    last_reading: Option<i64>,
    latest_o2: Option<(i64, f64)>,
    averages: Vec<AvgCounter>,
    state: Option<bool>,
    ticks: u64,
    /// Logger averages: per series (minute start, sum, min, max, corrected sum, n, flag).
    minute: Vec<Acc>,
    hour: Vec<Acc>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    start: i64,
    sum: f64,
    min: f64,
    max: f64,
    zs: f64,
    n: u32,
    flag: Option<DataFlag>,
}

/// A maintenance notice: `[from, to)` on `point` of `enterprise`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Notice {
    enterprise: String,
    point: String,
    from: i64,
    to: i64,
}

/// The lazy stream of a scenario: see the module documentation.
#[derive(Debug)]
pub struct Generator {
    registry: Arc<Registry>,
    scenario: Scenario,
    base: i64,
    feeds: Vec<Feed>,
    by_mn: HashMap<String, usize>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    extra: BTreeMap<(i64, u64), (Message, Option<Notice>)>,
    /// Maintenance notices sent: alerts starting in their window on their point are muted.
    notices: Vec<Notice>,
    pending: BTreeMap<(i64, u64), TruthEntry>,
    stops: Vec<(i64, i64, TruthEntry)>,
    emitted: HashSet<(String, String, String, i64)>,
    seq: u64,
    planned_days: i64,
    cursors: HashMap<&'static str, usize>,
    last_at: Option<i64>,
    unregistered_rule: Option<Arc<str>>,
}

fn rule_kind(instance: &Instance) -> &'static str {
    match instance.machine {
        Machine::Threshold(_) => "threshold",
        Machine::Average(_) => "average",
        Machine::ConstantValue(_) => "constant_value",
        Machine::ZeroWhileOperating { .. } => "zero_while_operating",
        Machine::OutOfRange(_) => "out_of_range",
        Machine::SuddenJump(_) => "sudden_jump",
        Machine::FlagDuration(_) => "flag_duration",
        Machine::MissingData(_) => "missing_data",
        Machine::TreatmentStopped(_) => "treatment_stopped",
        Machine::PowerCutFailure { .. } => "power_cut_failure",
        Machine::Unregistered => "unregistered_source",
        Machine::ReadingConflict(_) => "reading_conflict",
        Machine::Consistency(_) => "inconsistent_average",
    }
}

fn entry(
    instance: &Instance,
    kind: AlertKind,
    start: i64,
    due: i64,
    muted: bool,
    cause: Cause,
    what: String,
) -> TruthEntry {
    TruthEntry {
        rule_kind: rule_kind(instance).to_owned(),
        kind: kind.as_str().to_owned(),
        rule_id: instance.rule_id.to_string(),
        enterprise: instance.enterprise_id.to_string(),
        point: instance.point.as_str().to_owned(),
        metric: instance.metric.map(|m| m.code().to_owned()),
        start_ms: start,
        due_ms: due,
        muted,
        cause,
        what,
    }
}

/// The load of production at `t`: 0.65 at 02:00 to 0.95 at 14:00 China time.
fn load(t: i64) -> f64 {
    let c = Timestamp(t).to_civil(CHINA_OFFSET_SECS);
    let h = f64::from(c.hour) + f64::from(c.minute) / 60.0;
    0.8 + 0.15 * ((h - 8.0) / 24.0 * TAU).sin()
}

fn china_hour_start(t: i64) -> i64 {
    Timestamp(t).china_hour_start().as_millis()
}

fn china_day_start(t: i64) -> i64 {
    Timestamp(t).china_day_start().as_millis()
}

/// The first natural hour starting at or after `t`.
fn next_hour(t: i64) -> i64 {
    let h = china_hour_start(t);
    if h == t {
        h
    } else {
        h + HOUR
    }
}

fn role_of(kind: PointKind) -> Role {
    match kind {
        PointKind::FlueGasOutlet => Role::Flue,
        PointKind::WastewaterOutlet => Role::Water,
        PointKind::MineWorkingFace
        | PointKind::MineHeadingFace
        | PointKind::MineReturnAirway
        | PointKind::MineOther => Role::Methane,
        PointKind::MinePowerFeed => Role::Feed,
        PointKind::GasDetector => Role::Gas,
        PointKind::Tank => Role::Tank,
        PointKind::ProductionLinePower | PointKind::TreatmentPower => Role::Power,
    }
}

/// The level a metric normally sits at, from its limits: well inside them.
fn base_level(point: &MonitoringPoint, metric: Metric, default: f64) -> f64 {
    let mut max = f64::INFINITY;
    let mut min = f64::NEG_INFINITY;
    for limit in point.limits_for(metric) {
        match limit.bound {
            LimitBound::Max(m) => max = max.min(m),
            LimitBound::Min(m) => min = min.max(m),
            LimitBound::Range { min: lo, max: hi } => {
                max = max.min(hi);
                min = min.max(lo);
            }
            LimitBound::Methane { alarm, .. } => max = max.min(alarm),
            LimitBound::GasAlarm { level1, .. } => max = max.min(level1),
        }
    }
    match (min.is_finite(), max.is_finite()) {
        (true, true) => (min + max) / 2.0,
        // Well under the limit; a limit at or below zero (a cryogenic tank's temperature) is
        // kept a margin below.
        (false, true) if max > 0.0 => 0.45 * max,
        (false, true) => max - (0.25 * max.abs()).max(10.0),
        (true, false) => 1.6 * min,
        (false, false) => default,
    }
}

fn series(metric: Metric, base: f64, model: Model) -> Series {
    Series {
        metric,
        base,
        model,
        flags_watched: false,
        zero_watched: false,
        flag_since: None,
        zero_since: None,
        last: None,
    }
}

fn series_of(point: &MonitoringPoint, role: Role, h: u64) -> Vec<Series> {
    let limited = |m: Metric| point.limits_for(m).next().is_some();
    let mut out = Vec::new();
    match role {
        Role::Flue => {
            let flow = 60.0 + (h % 300) as f64;
            out.push(series(Metric::FlueGasFlow, flow, Model::Load));
            out.push(series(
                Metric::FlueGasTemperature,
                55.0 + (h % 60) as f64,
                Model::Flat,
            ));
            out.push(series(Metric::Oxygen, 0.0, Model::Oxygen));
            let mut pollutants = vec![Metric::So2, Metric::Nox, Metric::Particulate];
            for limit in &point.limits {
                if limit.metric.domain() == argus_model::MetricDomain::Air
                    && !pollutants.contains(&limit.metric)
                    && !matches!(limit.metric, Metric::FlueGasFlow | Metric::Oxygen)
                {
                    pollutants.push(limit.metric);
                }
            }
            for m in pollutants {
                let default = match m {
                    Metric::So2 => 20.0,
                    Metric::Nox => 30.0,
                    Metric::Particulate => 5.0,
                    _ => 10.0,
                };
                let model = if m.unit() == argus_model::Unit::MgPerM3 {
                    Model::Corrected
                } else {
                    Model::Flat
                };
                out.push(series(m, base_level(point, m, default), model));
            }
        }
        Role::Water => {
            out.push(series(
                Metric::WastewaterFlow,
                80.0 + (h % 200) as f64,
                Model::Load,
            ));
            out.push(series(
                Metric::Ph,
                base_level(point, Metric::Ph, 7.3),
                Model::Ph,
            ));
            let mut metrics = vec![Metric::Cod, Metric::AmmoniaNitrogen];
            for limit in &point.limits {
                if !metrics.contains(&limit.metric)
                    && !matches!(limit.metric, Metric::Ph | Metric::WastewaterFlow)
                {
                    metrics.push(limit.metric);
                }
            }
            for m in metrics {
                let default = match m {
                    Metric::Cod => 25.0,
                    Metric::AmmoniaNitrogen => 1.5,
                    _ => 2.0,
                };
                out.push(series(m, base_level(point, m, default), Model::Flat));
            }
        }
        Role::Methane => {
            out.push(series(
                Metric::MineCh4,
                0.18 + (h % 10) as f64 * 0.02,
                Model::Methane,
            ));
            if limited(Metric::MineCo) || point.kind == PointKind::MineReturnAirway {
                out.push(series(
                    Metric::MineCo,
                    base_level(point, Metric::MineCo, 4.0) * 0.4,
                    Model::Flat,
                ));
            }
        }
        Role::Gas => {
            let metric = if limited(Metric::GasToxic) {
                Metric::GasToxic
            } else {
                Metric::GasCombustible
            };
            let level = base_level(point, metric, 2.0 / 0.45) / 0.45;
            out.push(series(metric, (0.05 * level).max(0.2), Model::Flat));
        }
        Role::Tank => {
            out.push(series(
                Metric::TankLevel,
                base_level(point, Metric::TankLevel, 6.0),
                Model::Flat,
            ));
            out.push(series(
                Metric::ProcessPressure,
                base_level(point, Metric::ProcessPressure, 0.1),
                Model::Flat,
            ));
            out.push(series(
                Metric::ProcessTemperature,
                base_level(point, Metric::ProcessTemperature, 18.0),
                Model::Flat,
            ));
        }
        Role::Feed | Role::Power | Role::Unregistered => {}
    }
    out
}

fn route_of(role: Role, h: u64, t: Transports) -> Option<FeedRoute> {
    let tcp = t.hj212_tcp.then_some(FeedRoute::Tcp { reply: h % 4 != 3 });
    let mqtt_hj = t.mqtt.then_some(FeedRoute::MqttHj212);
    let kafka_hj = t.kafka.then_some(FeedRoute::KafkaHj212);
    let mqtt_json = t.mqtt.then_some(FeedRoute::MqttJson);
    let kafka_json = t.kafka.then_some(FeedRoute::KafkaJson);
    let pick = |options: &[Option<FeedRoute>]| options.iter().flatten().next().copied();
    match role {
        Role::Flue | Role::Water => {
            if h.is_multiple_of(5) && t.mqtt {
                mqtt_hj
            } else if h.is_multiple_of(7) && t.kafka {
                kafka_hj
            } else {
                pick(&[tcp, mqtt_hj, kafka_hj])
            }
        }
        Role::Methane | Role::Gas | Role::Tank => {
            if h.is_multiple_of(5) && t.kafka {
                kafka_json
            } else if h.is_multiple_of(4) && t.mqtt && role != Role::Methane {
                mqtt_hj
            } else {
                pick(&[mqtt_json, kafka_json, tcp])
            }
        }
        Role::Feed => {
            if h % 4 == 1 && (t.kafka || t.mqtt) {
                Some(FeedRoute::EventFeedback)
            } else {
                pick(&[mqtt_json, kafka_json, tcp])
            }
        }
        Role::Power => {
            if h.is_multiple_of(3) && (t.kafka || t.mqtt) {
                Some(FeedRoute::EventPower)
            } else if h % 4 == 1 && t.hj212_tcp {
                tcp
            } else {
                pick(&[mqtt_json, kafka_json, tcp])
            }
        }
        Role::Unregistered => pick(&[tcp, mqtt_hj, kafka_hj]),
    }
}

/// Which kind of methane spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The area's power is never cut: a power-cut failure.
    Never,
    /// Cut at the feed's next report: no failure.
    InTime,
    /// Cut, then restored while methane is still high: a failure at the restore.
    RestoredEarly,
}

impl Generator {
    /// A generator for `registry` checked by `rules` (compiled against it).
    pub fn new(
        registry: Arc<Registry>,
        rules: Arc<RuleSet>,
        scenario: Scenario,
    ) -> Result<Self, SimError> {
        let t = scenario.transports;
        if !(t.hj212_tcp || t.mqtt || t.kafka) {
            return Err(SimError::Scenario("no transport to send by".to_owned()));
        }
        if scenario.end.is_some_and(|end| end <= scenario.start) {
            return Err(SimError::Scenario(
                "the end is not after the start".to_owned(),
            ));
        }
        // Ticks are on whole seconds: HJ 212 DataTime has no milliseconds.
        let base = (scenario.start.as_millis() + SEC - 1).div_euclid(SEC) * SEC;
        let mut points: Vec<&MonitoringPoint> = registry.points().collect();
        points.sort_by(|a, b| a.mn.cmp(&b.mn));
        let mut feeds = Vec::with_capacity(points.len());
        for point in points {
            let role = role_of(point.kind);
            let h = fnv(point.mn.as_str()) ^ scenario.seed.rotate_left(7);
            let Some(route) = route_of(role, h, t) else {
                continue;
            };
            let interval = match role {
                Role::Flue => [30, 40, 45, 60][(h % 4) as usize] * SEC,
                Role::Methane | Role::Feed => 15 * SEC,
                _ => MIN,
            };
            let phase = match role {
                // Power meters of an enterprise report together.
                Role::Power => (fnv(&point.enterprise_id) % 60) as i64 * SEC,
                _ => ((h >> 8) % (interval / SEC) as u64) as i64 * SEC,
            };
            let instances: Vec<Arc<Instance>> = rules
                .for_point(point.mn.as_str())
                .cloned()
                .map(Arc::new)
                .collect();
            let mut series = series_of(point, role, h);
            for s in &mut series {
                s.flags_watched = instances.iter().any(|i| {
                    matches!(i.machine, Machine::FlagDuration(_)) && i.metric == Some(s.metric)
                });
                s.zero_watched = instances.iter().any(|i| {
                    matches!(i.machine, Machine::ZeroWhileOperating { .. })
                        && i.metric == Some(s.metric)
                });
            }
            let averages = instances
                .iter()
                .filter_map(|i| match &i.machine {
                    Machine::Average(p) => Some(AvgCounter {
                        instance: Arc::clone(i),
                        metric: i.metric?,
                        period: p.period,
                        min: p.min_valid_samples.max(1),
                        min_minutes: p.min_valid_minutes,
                        o2: p.o2,
                        window: None,
                        open: false,
                    }),
                    _ => None,
                })
                .collect();
            let n = series.len();
            feeds.push(Feed {
                mn: point.mn.as_str().to_owned(),
                enterprise: point.enterprise_id.clone(),
                role,
                pw: point.password.clone(),
                route,
                interval,
                first: base + phase,
                until: None,
                series,
                o2_ref: point.o2_reference_pct.unwrap_or(6.0),
                running_kw: point.running_threshold_kw.unwrap_or(100.0),
                rng: Rng::new(scenario.seed, point.mn.as_str()),
                rfc3339: h % 3 == 1,
                instances,
                injections: Vec::new(),
                busy: Vec::new(),
                last_reading: None,
                latest_o2: None,
                averages,
                state: None,
                ticks: 0,
                minute: vec![Acc::default(); n],
                hour: vec![Acc::default(); n],
            });
        }
        let by_mn = feeds
            .iter()
            .enumerate()
            .map(|(i, f)| (f.mn.clone(), i))
            .collect();
        let heap = feeds
            .iter()
            .enumerate()
            .map(|(i, f)| Reverse((f.first, i)))
            .collect();
        Ok(Self {
            unregistered_rule: rules.unregistered().map(|u| Arc::clone(&u.rule_id)),
            registry,
            scenario,
            base,
            feeds,
            by_mn,
            heap,
            extra: BTreeMap::new(),
            notices: Vec::new(),
            pending: BTreeMap::new(),
            stops: Vec::new(),
            emitted: HashSet::new(),
            seq: 0,
            planned_days: 0,
            cursors: HashMap::new(),
            last_at: None,
        })
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The truth file's header for this run.
    pub fn header(&self) -> TruthHeader {
        let events = self.scenario.transports.kafka || self.scenario.transports.mqtt;
        TruthHeader {
            version: TRUTH_VERSION,
            seed: self.scenario.seed,
            start_ms: self.scenario.start.as_millis(),
            end_ms: self.scenario.end.map(Timestamp::as_millis),
            points: self.registry.points().count(),
            transports: self.scenario.transports.names(),
            events,
            logger_averages: self.scenario.logger_averages,
            note: if events {
                String::new()
            } else {
                "neither kafka nor mqtt: enterprise events cannot be delivered, so no maintenance notice is sent and no muted alert is expected".to_owned()
            },
        }
    }

    /// Simulated time of the next group, if any.
    pub fn peek_time(&self) -> Option<Timestamp> {
        let feed = self.heap.peek().map(|Reverse((t, _))| *t);
        let extra = self.extra.keys().next().map(|(t, _)| *t);
        let t = match (feed, extra) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        match self.scenario.end {
            Some(end) if t >= end.as_millis() => None,
            _ => Some(Timestamp(t)),
        }
    }

    /// Generate and drop every instant at or before `t` (what an earlier run of the same
    /// scenario sent), so the next group is the one that run would have sent next; returns how
    /// many were dropped.
    pub fn skip_through(&mut self, t: Timestamp) -> Result<u64, SimError> {
        let mut skipped = 0;
        while self.peek_time().is_some_and(|at| at <= t) {
            if self.next_group()?.is_none() {
                break;
            }
            skipped += 1;
        }
        Ok(skipped)
    }

    /// The next simulated instant, or `None` once the scenario's end is reached.
    pub fn next_group(&mut self) -> Result<Option<Group>, SimError> {
        let Some(at) = self.peek_time() else {
            return Ok(None);
        };
        let t = at.as_millis();
        while self.scenario.violations && self.day_start(self.planned_days) <= t + 12 * HOUR {
            let d = self.planned_days;
            self.planned_days += 1;
            if self
                .scenario
                .end
                .is_none_or(|end| self.day_start(d) < end.as_millis())
            {
                self.plan_day(d);
            }
        }
        let mut group = Group {
            at,
            messages: Vec::new(),
            truth: Vec::new(),
        };
        while let Some(&Reverse((tick, i))) = self.heap.peek() {
            if tick != t {
                break;
            }
            self.heap.pop();
            self.tick(i, t, &mut group)?;
            let next = t + self.feeds[i].interval;
            if self.feeds[i].until.is_none_or(|until| next < until) {
                self.heap.push(Reverse((next, i)));
            }
        }
        while let Some(entry) = self.extra.first_entry() {
            if entry.key().0 != t {
                break;
            }
            let (message, notice) = entry.remove();
            group.messages.push(message);
            self.notices.extend(notice);
        }
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > t {
                break;
            }
            let e = entry.remove();
            self.emit(e, &mut group.truth);
        }
        self.last_at = Some(t);
        Ok(Some(group))
    }

    /// The alerts the end of the feed (after the last group returned) makes Argus raise once
    /// its event time moves on: every point's silence, the windows left without data, flags
    /// and zeros still held, conditions sent long enough to count.
    pub fn finish(&mut self) -> Vec<TruthEntry> {
        let mut out = Vec::new();
        let Some(end) = self.last_at else {
            return out;
        };
        let p = self.scenario.params;
        let mut found = Vec::new();
        for feed in &self.feeds {
            if feed.role == Role::Unregistered {
                continue;
            }
            if let Some(last) = feed.last_reading {
                for i in &feed.instances {
                    if matches!(i.machine, Machine::MissingData(_)) {
                        let what = format!("the feed ended: no data after {}", Timestamp(last));
                        found.push(entry(
                            i,
                            i.kind,
                            last,
                            last + p.missing_gap_ms + SEC,
                            false,
                            Cause::EndOfFeed,
                            what,
                        ));
                    }
                }
            }
            for s in &feed.series {
                for i in feed.instances.iter().filter(|i| i.metric == Some(s.metric)) {
                    match (&i.machine, s.flag_since, s.zero_since) {
                        (Machine::FlagDuration(_), Some(since), _) => {
                            let what = "the feed ended while a flag was held".to_owned();
                            found.push(entry(
                                i,
                                i.kind,
                                since,
                                since + p.flag_max_ms + SEC,
                                false,
                                Cause::EndOfFeed,
                                what,
                            ));
                        }
                        (Machine::ZeroWhileOperating { .. }, _, Some(since)) => {
                            let what = "the feed ended on zeros while operating".to_owned();
                            found.push(entry(
                                i,
                                i.kind,
                                since,
                                since + p.zero_min_ms + SEC,
                                false,
                                Cause::EndOfFeed,
                                what,
                            ));
                        }
                        _ => {}
                    }
                }
            }
            for c in &feed.averages {
                let Some((start, tally)) = c.window else {
                    continue;
                };
                let n = tally.valid(c.period, c.min_minutes);
                let length = period_ms(c.period, start);
                let (start, what) = if n < c.min {
                    (
                        start,
                        format!("the feed ended in a window with {n} valid values"),
                    )
                } else {
                    (
                        start + length,
                        "the feed ended: the next window gets no data".to_owned(),
                    )
                };
                if n < c.min && c.open {
                    continue;
                }
                let due = start + period_ms(c.period, start) + SEC;
                found.push(entry(
                    &c.instance,
                    AlertKind::InsufficientData,
                    start,
                    due,
                    false,
                    Cause::EndOfFeed,
                    what,
                ));
            }
        }
        for (from, to, e) in &self.stops {
            if (*from..*to).contains(&end) {
                found.push(e.clone());
            }
        }
        for e in found {
            self.emit(e, &mut out);
        }
        out
    }

    fn emit(&mut self, mut e: TruthEntry, out: &mut Vec<TruthEntry>) {
        // Whatever its cause, an alert starting under a notice sent is muted.
        e.muted |= self.notices.iter().any(|n| {
            n.enterprise == e.enterprise
                && n.point == e.point
                && (n.from..n.to).contains(&e.start_ms)
        });
        let key = (
            e.rule_id.clone(),
            e.point.clone(),
            e.metric.clone().unwrap_or_default(),
            e.start_ms,
        );
        if self.emitted.insert(key) {
            out.push(e);
        }
    }

    fn day_start(&self, d: i64) -> i64 {
        self.base + d * DAY
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn commit(&mut self, at: i64, e: TruthEntry) {
        let seq = self.next_seq();
        self.pending.insert((at, seq), e);
    }

    // ----------------------------------------------------------------------------- ticking

    fn tick(&mut self, i: usize, t: i64, group: &mut Group) -> Result<(), SimError> {
        let transports = self.scenario.transports;
        let logger_averages = self.scenario.logger_averages;
        let feed = &mut self.feeds[i];
        feed.ticks += 1;
        let active = |f: &Feed, pred: &dyn Fn(&Effect) -> bool| {
            f.injections
                .iter()
                .any(|inj| inj.from <= t && t < inj.to && pred(&inj.effect))
        };
        if active(feed, &|e| matches!(e, Effect::Silent)) {
            feed.injections.retain(|inj| inj.to > t);
            return Ok(());
        }
        let at = Timestamp(t);
        let mut samples: Vec<Sample> = Vec::new();
        let mut events: Vec<Message> = Vec::new();
        match feed.role {
            Role::Power => {
                let on = !active(feed, &|e| matches!(e, Effect::PowerOff));
                let n = feed.rng.noise();
                let kw = if on {
                    feed.running_kw * (1.3 + 0.1 * load(t) + 0.02 * n)
                } else {
                    feed.running_kw * (0.03 + 0.005 * n)
                };
                let is_line = feed
                    .instances
                    .iter()
                    .all(|i| !matches!(i.machine, Machine::TreatmentStopped(_)));
                if let Some(route) = Route::event(transports, &feed.enterprise)
                    .filter(|_| is_line && feed.state.is_some_and(|s| s != on))
                {
                    events.push(Message {
                        at,
                        route,
                        payload: wire::production_event(&feed.mn, &feed.enterprise, at, on),
                    });
                }
                feed.state = Some(on);
                samples.push(Sample {
                    metric: Metric::ActivePower,
                    value: wire::round(kw),
                    flag: DataFlag::N,
                    corrected: None,
                });
            }
            Role::Feed => {
                let powered = !active(feed, &|e| matches!(e, Effect::FeedCut));
                if feed.route == FeedRoute::EventFeedback {
                    let route = Route::event(transports, &feed.enterprise);
                    if let Some(route) =
                        route.filter(|_| feed.state != Some(powered) || feed.ticks % 20 == 1)
                    {
                        events.push(Message {
                            at,
                            route,
                            payload: wire::feedback_event(&feed.mn, &feed.enterprise, at, powered),
                        });
                    }
                } else {
                    samples.push(Sample {
                        metric: Metric::MinePower,
                        value: if powered { 1.0 } else { 0.0 },
                        flag: DataFlag::N,
                        corrected: None,
                    });
                }
                feed.state = Some(powered);
            }
            _ => measure(feed, t, &mut samples),
        }
        feed.injections.retain(|inj| inj.to > t);

        // What Argus will see: the ledger of the end of the feed, windows, values sent.
        let mut truth = Vec::new();
        if !samples.is_empty() {
            observe(feed, t, &samples, &mut truth);
        }
        if !samples.is_empty() || !events.is_empty() {
            let route = feed.route;
            let enterprise = feed.enterprise.clone();
            let mn = feed.mn.clone();
            let message = match route {
                FeedRoute::Tcp { reply } => Some(Message {
                    at,
                    route: Route::Hj212Tcp {
                        logger: mn.clone(),
                        reply,
                    },
                    payload: wire::hj212_realtime(&mn, feed.pw.as_deref(), at, &samples, reply)?,
                }),
                FeedRoute::MqttHj212 => Some(Message {
                    at,
                    route: Route::MqttHj212 {
                        topic: format!("argus/v1/hj212/{mn}"),
                    },
                    payload: wire::hj212_realtime(&mn, feed.pw.as_deref(), at, &samples, false)?,
                }),
                FeedRoute::KafkaHj212 => Some(Message {
                    at,
                    route: Route::KafkaHj212 { key: mn.clone() },
                    payload: wire::hj212_realtime(&mn, feed.pw.as_deref(), at, &samples, false)?,
                }),
                FeedRoute::MqttJson => Some(Message {
                    at,
                    route: Route::MqttReadings {
                        topic: format!("argus/v1/readings/{}/{mn}", wire::topic_level(&enterprise)),
                    },
                    payload: wire::json_readings(&mn, at, feed.rfc3339, &samples),
                }),
                FeedRoute::KafkaJson => Some(Message {
                    at,
                    route: Route::KafkaReadings { key: mn.clone() },
                    payload: wire::json_readings(&mn, at, feed.rfc3339, &samples),
                }),
                FeedRoute::EventPower => samples
                    .first()
                    .zip(Route::event(transports, &enterprise))
                    .map(|(s, route)| Message {
                        at,
                        route,
                        payload: wire::power_event(&mn, at, s.value),
                    }),
                FeedRoute::EventFeedback => None,
            };
            if logger_averages && matches!(feed.role, Role::Flue | Role::Water) {
                let extra = period_packets(feed, t, &samples)?;
                group
                    .messages
                    .extend(message.into_iter().chain(events).chain(extra));
            } else {
                group.messages.extend(message.into_iter().chain(events));
            }
        }
        for e in truth {
            self.emit(e, &mut group.truth);
        }
        Ok(())
    }
}

fn period_ms(period: Period, start: i64) -> i64 {
    match period {
        Period::Hour => HOUR,
        // A natural day of China time (no daylight saving): 24 h, but computed, not assumed.
        Period::Day => china_day_start(start + DAY + HOUR) - start,
    }
}

fn window_start(period: Period, t: i64) -> i64 {
    match period {
        Period::Hour => china_hour_start(t),
        Period::Day => china_day_start(t),
    }
}

/// The O2-free level of O2 at a flue gas outlet.
fn o2_nominal(feed: &Feed, t: i64) -> f64 {
    feed.o2_ref + 0.6 + 1.5 * (0.95 - load(t))
}

/// The measured values of a tick, normal ones with the plan's injections applied.
fn measure(feed: &mut Feed, t: i64, out: &mut Vec<Sample>) {
    let l = match feed.role {
        Role::Flue | Role::Water => load(t),
        _ => 1.0,
    };
    let mut o2 = o2_nominal(feed, t) + 0.15 * feed.rng.noise();
    for inj in feed.injections.iter().filter(|i| i.from <= t && t < i.to) {
        match inj.effect {
            Effect::O2Ramp {
                start,
                peak,
                steps,
                interval,
            } => {
                let nominal = o2_nominal(feed, start);
                let k = ((t - start) / interval.max(1)) as u32;
                let s = f64::from(steps.max(1));
                let up = |k: u32| nominal + (peak - nominal) * f64::from(k) / s;
                o2 = if k <= steps {
                    up(k)
                } else if k <= steps + 1 {
                    peak
                } else {
                    up((2 * steps + 1).saturating_sub(k))
                };
            }
            Effect::O2Delta { delta } => o2 += delta,
            _ => {}
        }
    }
    let o2 = wire::round(o2.max(0.0));
    let ref_factor = 21.0 - feed.o2_ref;
    let dilution = (21.0 - o2.min(20.0)).max(1.0);
    for idx in 0..feed.series.len() {
        let (metric, base, model) = {
            let s = &feed.series[idx];
            (s.metric, s.base, s.model)
        };
        let n = feed.rng.noise();
        let mut corrected = None;
        let mut value = match model {
            Model::Oxygen => o2,
            Model::Corrected => {
                let c = base * l * (1.0 + 0.03 * n);
                corrected = Some(c);
                c * dilution / ref_factor
            }
            Model::Load => base * l * (1.0 + 0.02 * n),
            Model::Flat => base * (1.0 + 0.03 * n + 0.02 * ((t / MIN) as f64 / 97.0).sin()),
            Model::Ph => base + 0.15 * ((t / MIN) as f64 / 131.0).sin() + 0.05 * n,
            Model::Methane => {
                (base * (1.0 + 0.2 * ((t / MIN) as f64 / 53.0).sin()) + 0.02 * n).max(0.02)
            }
        };
        let mut flag = DataFlag::N;
        let last = feed.series[idx].last;
        for inj in feed
            .injections
            .iter_mut()
            .filter(|i| i.from <= t && t < i.to)
        {
            match &mut inj.effect {
                Effect::Value {
                    metric: m,
                    value: v,
                } if *m == metric => {
                    value = *v;
                    corrected = None;
                }
                Effect::Corrected {
                    metric: m,
                    value: v,
                } if *m == metric => {
                    let c = *v * (1.0 + 0.02 * n);
                    corrected = Some(c);
                    value = if model == Model::Corrected {
                        c * dilution / ref_factor
                    } else {
                        c
                    };
                }
                Effect::Hold { metric: m, held } if *m == metric => {
                    let v = *held.get_or_insert_with(|| {
                        let mut v = wire::round(value * 1.0007);
                        if Some(v) == last {
                            v = wire::round(v * 1.003);
                        }
                        v
                    });
                    value = v;
                    corrected = None;
                }
                Effect::Flag { metric: m, flag: f } if *m == metric => flag = *f,
                _ => {}
            }
        }
        let value = wire::round(value);
        let corrected = match (model, corrected) {
            (Model::Corrected, Some(c)) => Some(wire::round(c)),
            (Model::Corrected, None) => Some(wire::round(value * ref_factor / dilution)),
            _ => None,
        };
        feed.series[idx].last = Some(value);
        out.push(Sample {
            metric,
            value,
            flag,
            corrected,
        });
    }
}

/// Follow what Argus's rules will count from the values sent: the last reading (missing data),
/// flags and zeros held, and the valid values of each average window; windows closing with too
/// few become truth entries.
fn observe(feed: &mut Feed, t: i64, samples: &[Sample], out: &mut Vec<TruthEntry>) {
    feed.last_reading = Some(t);
    let operating = samples
        .iter()
        .find(|s| s.metric == Metric::FlueGasFlow)
        .is_some_and(|s| s.flag == DataFlag::N && s.value > 1.0);
    for s in samples {
        if s.metric == Metric::Oxygen && s.flag == DataFlag::N {
            feed.latest_o2 = Some((t, s.value));
        }
        if let Some(series) = feed.series.iter_mut().find(|x| x.metric == s.metric) {
            if series.flags_watched {
                if matches!(s.flag, DataFlag::N | DataFlag::F) {
                    series.flag_since = None;
                } else {
                    series.flag_since.get_or_insert(t);
                }
            }
            if series.zero_watched && s.flag == DataFlag::N {
                if s.value <= 0.0 && operating {
                    series.zero_since.get_or_insert(t);
                } else {
                    series.zero_since = None;
                }
            }
        }
    }
    let latest_o2 = feed.latest_o2;
    for c in &mut feed.averages {
        let Some(s) = samples.iter().find(|s| s.metric == c.metric) else {
            continue;
        };
        let start = window_start(c.period, t);
        let mut steps = 0;
        while let Some((w, tally)) = c.window {
            if w >= start || steps > 24 * 31 {
                break;
            }
            steps += 1;
            let n = tally.valid(c.period, c.min_minutes);
            if n < c.min {
                if !c.open {
                    c.open = true;
                    let what = format!("{} valid values in the window ({} needed)", n, c.min);
                    let due = w + period_ms(c.period, w) + SEC;
                    out.push(entry(
                        &c.instance,
                        AlertKind::InsufficientData,
                        w,
                        due,
                        false,
                        Cause::Window,
                        what,
                    ));
                }
            } else {
                c.open = false;
            }
            let next = w + period_ms(c.period, w);
            c.window = Some((next, Tally::new(next)));
        }
        let window = c.window.get_or_insert((start, Tally::new(t)));
        if s.flag != DataFlag::N {
            continue;
        }
        let usable = match c.o2 {
            None => true,
            Some(o2) => latest_o2.is_some_and(|(at, v)| {
                (0..=o2.max_age_ms).contains(&(t - at)) && (0.0..o2.max_measured_pct).contains(&v)
            }),
        };
        if usable {
            window.1.add(t, c.min_minutes);
        }
    }
}

/// Minute (2051) and hourly (2061) packets of a logger, when a period ends.
fn period_packets(feed: &mut Feed, t: i64, samples: &[Sample]) -> Result<Vec<Message>, SimError> {
    let mut out = Vec::new();
    let route = |reply| match feed.route {
        FeedRoute::Tcp { .. } => Route::Hj212Tcp {
            logger: feed.mn.clone(),
            reply,
        },
        FeedRoute::MqttHj212 => Route::MqttHj212 {
            topic: format!("argus/v1/hj212/{}", feed.mn),
        },
        _ => Route::KafkaHj212 {
            key: feed.mn.clone(),
        },
    };
    let reply = matches!(feed.route, FeedRoute::Tcp { reply: true });
    for (cn, hourly) in [("2051", false), ("2061", true)] {
        let start = if hourly {
            china_hour_start(t)
        } else {
            t - t.rem_euclid(MIN)
        };
        let accs = if hourly {
            &mut feed.hour
        } else {
            &mut feed.minute
        };
        let done = accs.first().is_some_and(|a| a.n > 0 && a.start != start);
        if done {
            let stats: Vec<(Metric, [f64; 4], DataFlag)> = feed
                .series
                .iter()
                .zip(accs.iter())
                .map(|(s, a)| {
                    let n = f64::from(a.n.max(1));
                    (
                        s.metric,
                        [a.sum / n, a.min, a.max, a.zs / n],
                        a.flag.unwrap_or(DataFlag::N),
                    )
                })
                .collect();
            let period_start = Timestamp(accs.first().map_or(start, |a| a.start));
            let payload = wire::hj212_period(
                &feed.mn,
                feed.pw.as_deref(),
                cn,
                period_start,
                Timestamp(t),
                &stats,
                reply,
            )?;
            out.push(Message {
                at: Timestamp(t),
                route: route(reply),
                payload,
            });
        }
        for (a, s) in accs.iter_mut().zip(samples) {
            if a.n == 0 || a.start != start {
                *a = Acc {
                    start,
                    sum: 0.0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    zs: 0.0,
                    n: 0,
                    flag: None,
                };
            }
            a.sum += s.value;
            a.min = a.min.min(s.value);
            a.max = a.max.max(s.value);
            a.zs += s.corrected.unwrap_or(0.0);
            a.n += 1;
            if s.flag != DataFlag::N {
                a.flag.get_or_insert(s.flag);
            }
        }
    }
    Ok(out)
}
