//! Synthetic recorded input for tests and benchmarks (the detection dataflow's determinism test,
//! `benches/dataflow.rs`): a day of minute data of a county's flue
//! gas stacks, methane sensors, power feeds, gas detectors and power meters, with enterprise
//! events, and an arrival order shuffled within an allowed lateness. Every rule kind of the
//! shipped rules has something to find in it. Deterministic for a given seed.

use argus_model::registry::PointKind;
use argus_model::{
    DataFlag, Event, EventKind, Metric, MetricCode, Reading, Registry, SourceId, Timestamp,
};

use argus_dataflow::Input;

/// One minute in milliseconds.
pub const MIN: i64 = 60_000;
/// The allowed lateness the sample is shuffled within.
pub const LATENESS_MS: i64 = 5 * MIN;
/// 2026-11-26T00:00:00+08:00.
pub const START: i64 = 1_795_622_400_000;

/// xorshift64*: a small deterministic generator for test data.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn reading(source: &SourceId, metric: Metric, minute: i64, value: f64, flag: DataFlag) -> Input {
    let t = Timestamp(START + minute * MIN);
    Input::Reading(Reading {
        source: source.clone(),
        metric: MetricCode::Known(metric),
        value,
        flag,
        event_time: t,
        receive_time: t,
        interval: Default::default(),
        corrected: None,
    })
}

fn event(enterprise: &str, source: Option<&SourceId>, minute: i64, kind: EventKind) -> Input {
    let t = Timestamp(START + minute * MIN);
    Input::Event(Box::new(Event {
        enterprise_id: Some(enterprise.to_owned()),
        source: source.cloned(),
        event_time: t,
        receive_time: t,
        kind,
    }))
}

/// A source the example registry does not know.
pub const UNREGISTERED: &str = "UNREGISTERED-LOGGER-1";

/// A day of minute data for the example county, with what each rule kind looks for: limit
/// exceedances (instant, hourly averages, methane, gas), a constant run, a gap, a held fault
/// flag, treatment facilities stopped while production runs, methane without the power cut, a
/// maintenance notice, production state and power-cut feedback events, an unregistered source.
pub fn recorded_day(registry: &Registry, rng: &mut Rng) -> Vec<Input> {
    let mut points: Vec<_> = registry.points().collect();
    points.sort_by(|a, b| a.mn.cmp(&b.mn));
    let mut out = Vec::new();
    let mut noticed = std::collections::BTreeSet::new();
    for (i, p) in points.iter().enumerate() {
        let enterprise = p.enterprise_id.as_str();
        if p.kind == PointKind::FlueGasOutlet && i % 4 == 0 && noticed.insert(enterprise) {
            // Notified maintenance over the bad hours of the enterprise's first such stack.
            let notice = EventKind::MaintenanceNotice {
                from: Timestamp(START + 5 * 60 * MIN),
                to: Timestamp(START + 8 * 60 * MIN),
                points: vec![p.mn.clone()],
                reason: "desulfurisation tower overhaul".to_owned(),
                request: String::new(),
            };
            out.push(event(enterprise, None, 4 * 60, notice));
        }
        for minute in 0..24 * 60 {
            let hour = minute / 60;
            match p.kind {
                PointKind::FlueGasOutlet => {
                    // One stack in seven falls silent 14:00-15:00; one in eleven holds a fault
                    // flag 16:00-21:00; one in thirteen reports a constant SO2 10:00-12:00.
                    if i % 7 == 3 && hour == 14 {
                        continue;
                    }
                    let o2 = 7.0 + 2.0 * rng.unit();
                    out.push(reading(&p.mn, Metric::Oxygen, minute, o2, DataFlag::N));
                    out.push(reading(
                        &p.mn,
                        Metric::FlueGasFlow,
                        minute,
                        50.0 + 10.0 * rng.unit(),
                        DataFlag::N,
                    ));
                    let bad_hours = i % 4 == 0 && (5..8).contains(&hour);
                    let so2 = if i % 13 == 5 && (10..12).contains(&hour) {
                        20.0
                    } else if bad_hours {
                        45.0 + 10.0 * rng.unit()
                    } else {
                        15.0 + 10.0 * rng.unit()
                    };
                    let flag = if i % 7 == 1 && hour == 12 {
                        DataFlag::M
                    } else if i % 11 == 2 && (16..21).contains(&hour) {
                        DataFlag::D
                    } else {
                        DataFlag::N
                    };
                    out.push(reading(&p.mn, Metric::So2, minute, so2, flag));
                    out.push(reading(
                        &p.mn,
                        Metric::Nox,
                        minute,
                        20.0 + 20.0 * rng.unit(),
                        DataFlag::N,
                    ));
                }
                PointKind::MineWorkingFace
                | PointKind::MineHeadingFace
                | PointKind::MineReturnAirway => {
                    let spike = i % 3 == 0 && minute % 240 < 4;
                    let ch4 = if spike {
                        1.2 + 0.6 * rng.unit()
                    } else {
                        0.2 + 0.3 * rng.unit()
                    };
                    out.push(reading(&p.mn, Metric::MineCh4, minute, ch4, DataFlag::N));
                }
                PointKind::MinePowerFeed => {
                    // Half the feeds cut the power over every methane spike window (in time);
                    // the others never do. One feed in four reports by events instead.
                    let cuts = i % 2 == 0;
                    let powered = !(cuts && minute % 240 < 5);
                    if i % 4 == 1 {
                        if minute == 0 || (cuts && minute % 240 == 0) || (cuts && minute % 240 == 5)
                        {
                            let kind = EventKind::PowerCutFeedback { powered };
                            out.push(event(enterprise, Some(&p.mn), minute, kind));
                        }
                    } else {
                        let value = if powered { 1.0 } else { 0.0 };
                        out.push(reading(
                            &p.mn,
                            Metric::MinePower,
                            minute,
                            value,
                            DataFlag::N,
                        ));
                    }
                }
                PointKind::GasDetector => {
                    let spike = i % 5 == 0 && minute % 300 < 3;
                    let value = if spike {
                        30.0 + 30.0 * rng.unit()
                    } else {
                        2.0 * rng.unit()
                    };
                    let metric = if p.limits.iter().any(|l| l.metric == Metric::GasToxic) {
                        Metric::GasToxic
                    } else {
                        Metric::GasCombustible
                    };
                    out.push(reading(&p.mn, metric, minute, value, DataFlag::N));
                }
                PointKind::ProductionLinePower => {
                    // Lines stop 00:00-02:00 and run the rest of the day; every line also
                    // reports its state changes as events.
                    let running_kw = p.running_threshold_kw.unwrap_or(100.0);
                    let kw = if hour < 2 { 0.05 } else { 1.2 } * running_kw;
                    out.push(reading(&p.mn, Metric::ActivePower, minute, kw, DataFlag::N));
                    if minute == 0 || minute == 120 {
                        let kind = EventKind::ProductionState {
                            running: minute == 120,
                        };
                        out.push(event(enterprise, Some(&p.mn), minute, kind));
                    }
                }
                PointKind::TreatmentPower => {
                    // Every other facility stops 10:00-10:40 while production runs (a
                    // violation) and all stop 00:30-01:30 while production is stopped (none).
                    let running_kw = p.running_threshold_kw.unwrap_or(100.0);
                    let stopped =
                        (i % 2 == 0 && (600..640).contains(&minute)) || (30..90).contains(&minute);
                    let kw = if stopped { 0.1 } else { 1.5 } * running_kw;
                    out.push(reading(&p.mn, Metric::ActivePower, minute, kw, DataFlag::N));
                }
                _ => {}
            }
        }
    }
    let unknown = SourceId::from(UNREGISTERED);
    for minute in 600..660 {
        out.push(reading(&unknown, Metric::So2, minute, 30.0, DataFlag::N));
    }
    out
}

/// Arrival order: each input displaced by less than the allowed lateness (its receive time is
/// its event time plus the displacement).
pub fn shuffle_within_lateness(inputs: &mut [Input], rng: &mut Rng) {
    let mut keyed: Vec<(i64, u64, Input)> = inputs
        .iter()
        .map(|input| {
            let jitter = (rng.next_u64() % (LATENESS_MS as u64)) as i64;
            let arrival = input.event_time().as_millis() + jitter;
            let mut input = input.clone();
            match &mut input {
                Input::Reading(r) => r.receive_time = Timestamp(arrival),
                Input::Event(e) => e.receive_time = Timestamp(arrival),
            }
            (arrival, rng.next_u64(), input)
        })
        .collect();
    keyed.sort_by_key(|k| (k.0, k.1));
    for (slot, (_, _, input)) in inputs.iter_mut().zip(keyed) {
        *slot = input;
    }
}
