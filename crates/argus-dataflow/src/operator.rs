//! The detection operator: exchange by point, buffer until the frontier passes, run the rule
//! machines in a total order, emit alert transitions.

use std::collections::HashMap;
use std::sync::Arc;

use argus_model::{AlertKind, Metric, MetricCode, Reading, SourceId, Timestamp};
use argus_rules::spec::{Instance, Machine};
use argus_rules::{alert_id, Average, RuleSet, SeriesKey, Threshold, Transition};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::Stream;

use crate::AlertTransition;

/// A rule instance's running state machine.
#[derive(Debug)]
enum Running {
    Threshold(Threshold),
    Average(Average),
}

/// Bytes of state one rule instance keeps on its worker: its instance description (pointers to
/// shared strings) and its machine. Machines keep O(1) state, so this is the whole per-series
/// cost apart from the per-point map entry.
pub fn state_bytes_per_instance() -> usize {
    std::mem::size_of::<(Arc<Instance>, Running)>() + std::mem::size_of::<Instance>()
}

/// The machines of one point.
#[derive(Debug, Default)]
struct Point {
    machines: Vec<(Arc<Instance>, Running)>,
}

impl Point {
    fn new(instances: &[Instance]) -> Self {
        let machines = instances
            .iter()
            .map(|i| {
                let running = match i.machine {
                    Machine::Threshold(p) => Running::Threshold(Threshold::new(p)),
                    Machine::Average(p) => Running::Average(Average::new(p)),
                };
                (Arc::new(i.clone()), running)
            })
            .collect();
        Self { machines }
    }

    fn on_reading(&mut self, reading: &Reading, out: &mut Vec<AlertTransition>) {
        let is_o2 = reading.metric == MetricCode::Known(Metric::Oxygen);
        let mut buf = Vec::new();
        for (instance, machine) in &mut self.machines {
            let judged = reading.metric == MetricCode::Known(instance.metric);
            match machine {
                Running::Threshold(m) if judged => {
                    let mut ts = Vec::new();
                    m.on_reading(reading, &mut ts);
                    buf.extend(ts.into_iter().map(|t| (instance.kind, t)));
                }
                Running::Average(m) => {
                    if is_o2 {
                        m.on_o2(reading);
                    }
                    if judged {
                        m.on_reading(reading, &mut buf);
                    }
                }
                Running::Threshold(_) => {}
            }
            emit(instance, &mut buf, out);
        }
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<AlertTransition>) {
        let mut buf = Vec::new();
        for (instance, machine) in &mut self.machines {
            match machine {
                Running::Threshold(m) => {
                    let mut ts = Vec::new();
                    m.on_watermark(watermark, &mut ts);
                    buf.extend(ts.into_iter().map(|t| (instance.kind, t)));
                }
                Running::Average(m) => m.on_watermark(watermark, &mut buf),
            }
            emit(instance, &mut buf, out);
        }
    }
}

/// Label the transitions of `instance` and move them to `out`.
fn emit(
    instance: &Arc<Instance>,
    buf: &mut Vec<(AlertKind, Transition)>,
    out: &mut Vec<AlertTransition>,
) {
    for (kind, transition) in buf.drain(..) {
        let started_at = match &transition {
            Transition::Fired { started_at, .. } | Transition::Resolved { started_at, .. } => {
                *started_at
            }
        };
        let key = SeriesKey {
            source: instance.point.clone(),
            metric: MetricCode::Known(instance.metric),
        };
        out.push(AlertTransition {
            alert_id: alert_id(&instance.rule_id, &key, started_at),
            kind,
            instance: Arc::clone(instance),
            transition,
        });
    }
}

/// FNV-1a of a point id: the exchange key (stable across processes and builds).
fn route(source: &SourceId) -> u64 {
    source.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The total order readings are judged in: event time, O2 first (averages correct with it),
/// then source, metric, value.
fn order(r: &Reading) -> (i64, bool, &str, &str, u64) {
    let not_o2 = r.metric != MetricCode::Known(Metric::Oxygen);
    (
        r.event_time.as_millis(),
        not_o2,
        r.source.as_str(),
        r.metric.as_str(),
        r.value.to_bits(),
    )
}

/// Run the rules over a stream of readings; returns the alert transitions.
pub fn detect<'scope>(
    readings: Stream<'scope, u64, Vec<Reading>>,
    rules: Arc<RuleSet>,
) -> Stream<'scope, u64, Vec<AlertTransition>> {
    readings.unary_frontier(
        Exchange::new(|r: &Reading| route(&r.source)),
        "Detect",
        move |clock, _info| {
            let mut clock = Some(clock);
            let mut pending: Vec<Reading> = Vec::new();
            let mut points: HashMap<SourceId, Point> = HashMap::new();
            let mut judged_to: u64 = 0;
            move |(input, frontier), output| {
                input.for_each_stamp(|_stamp, data| {
                    for batch in data {
                        pending.append(batch);
                    }
                });
                // Everything before the frontier (all of it once the input is closed) is final.
                let until = frontier.frontier().first().copied().unwrap_or(u64::MAX);
                if until <= judged_to {
                    return;
                }
                let Some(cap) = clock.as_mut() else { return };
                // Only the readings the frontier has passed are sorted and judged; the rest wait.
                let mut ready: Vec<Reading> = pending
                    .extract_if(.., |r| crate::event_time(r.event_time) < until)
                    .collect();
                ready.sort_by(|a, b| order(a).cmp(&order(b)));
                let mut out = Vec::new();
                for reading in ready {
                    let point = points
                        .entry(reading.source.clone())
                        .or_insert_with(|| Point::new(rules.for_point(reading.source.as_str())));
                    point.on_reading(&reading, &mut out);
                }
                // The end of the input is not a watermark: windows and durations the data did not
                // see close stay open rather than being judged on data that never came.
                if until != u64::MAX {
                    let watermark = Timestamp(i64::try_from(until - 1).unwrap_or(i64::MAX));
                    for point in points.values_mut() {
                        point.on_watermark(watermark, &mut out);
                    }
                }
                // Deterministic emission order within a step (content is what matters).
                out.sort_by_key(|t| t.alert_id);
                output.session(cap).give_iterator(out.into_iter());
                judged_to = until;
                if until == u64::MAX {
                    clock = None;
                } else {
                    cap.downgrade(&until);
                }
            }
        },
    )
}
