//! Synthetic recorded input for tests and benchmarks: a day of minute data of a county's flue
//! gas stacks, methane sensors and gas detectors, with exceedances, spikes and maintenance flags,
//! and an arrival order shuffled within an allowed lateness. Deterministic for a given seed.

use argus_model::registry::PointKind;
use argus_model::{DataFlag, Metric, MetricCode, Reading, Registry, SourceId, Timestamp};

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

fn reading(source: &SourceId, metric: Metric, minute: i64, value: f64, flag: DataFlag) -> Reading {
    let t = Timestamp(START + minute * MIN);
    Reading {
        source: source.clone(),
        metric: MetricCode::Known(metric),
        value,
        flag,
        event_time: t,
        receive_time: t,
    }
}

/// A day of minute data for the example county's flue gas stacks, methane sensors and gas
/// detectors, with exceedances, spikes and maintenance flags.
pub fn recorded_day(registry: &Registry, rng: &mut Rng) -> Vec<Reading> {
    let mut points: Vec<_> = registry.points().collect();
    points.sort_by(|a, b| a.mn.cmp(&b.mn));
    let mut out = Vec::new();
    for (i, p) in points.iter().enumerate() {
        for minute in 0..24 * 60 {
            let hour = minute / 60;
            match p.kind {
                PointKind::FlueGasOutlet => {
                    let o2 = 7.0 + 2.0 * rng.unit();
                    out.push(reading(&p.mn, Metric::Oxygen, minute, o2, DataFlag::N));
                    let bad_hours = i % 4 == 0 && (5..8).contains(&hour);
                    let so2 = if bad_hours {
                        45.0 + 10.0 * rng.unit()
                    } else {
                        15.0 + 10.0 * rng.unit()
                    };
                    let flag = if i % 7 == 1 && hour == 12 {
                        DataFlag::M
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
                _ => {}
            }
        }
    }
    out
}

/// Arrival order: each reading displaced by less than the allowed lateness.
pub fn shuffle_within_lateness(readings: &mut [Reading], rng: &mut Rng) {
    let mut keyed: Vec<(i64, u64, Reading)> = readings
        .iter()
        .map(|r| {
            let jitter = (rng.next_u64() % (LATENESS_MS as u64)) as i64;
            (r.event_time.as_millis() + jitter, rng.next_u64(), r.clone())
        })
        .collect();
    keyed.sort_by_key(|k| (k.0, k.1));
    for (slot, (_, _, r)) in readings.iter_mut().zip(keyed) {
        *slot = r;
    }
}
