//! The detection operator: exchange by enterprise, buffer until the frontier passes, run the
//! rule machines in a total order, emit alert transitions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use argus_model::{AlertKind, EventKind, Metric, MetricCode, Reading, SourceId, Timestamp};
use argus_rules::crossfeed::{PowerCutFailure, Suppressions, TreatmentStopped};
use argus_rules::quality::{
    ConstantValue, FlagDuration, MissingData, OutOfRange, SuddenJump, ZeroWhileOperating,
};
use argus_rules::spec::{Instance, Machine};
use argus_rules::{alert_id, Average, RuleSet, Threshold, Transition};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::Stream;

use crate::{AlertTransition, Input};

/// Unregistered sources a worker raises alerts for, at most: a sender inventing ids cannot grow
/// the state without bound. Readings of further unknown sources are still counted and stored
/// upstream; they raise no alert.
pub const MAX_UNREGISTERED_SOURCES: usize = 10_000;

/// A rule instance's running state machine.
#[derive(Debug)]
enum Running {
    Threshold(Threshold),
    Average(Average),
    ConstantValue(ConstantValue),
    ZeroWhileOperating(ZeroWhileOperating, Metric),
    OutOfRange(OutOfRange),
    SuddenJump(SuddenJump),
    FlagDuration(FlagDuration),
    MissingData(MissingData),
    TreatmentStopped(TreatmentStopped),
    PowerCutFailure(PowerCutFailure, SourceId),
    /// Whether the alert was raised.
    Unregistered(bool),
}

type Out = Vec<(AlertKind, Transition)>;

impl Running {
    fn new(machine: &Machine) -> Self {
        match machine {
            Machine::Threshold(p) => Running::Threshold(Threshold::new(*p)),
            Machine::Average(p) => Running::Average(Average::new(*p)),
            Machine::ConstantValue(p) => Running::ConstantValue(ConstantValue::new(*p)),
            Machine::ZeroWhileOperating { params, operation } => {
                Running::ZeroWhileOperating(ZeroWhileOperating::new(*params), *operation)
            }
            Machine::OutOfRange(p) => Running::OutOfRange(OutOfRange::new(*p)),
            Machine::SuddenJump(p) => Running::SuddenJump(SuddenJump::new(*p)),
            Machine::FlagDuration(p) => Running::FlagDuration(FlagDuration::new(*p)),
            Machine::MissingData(p) => Running::MissingData(MissingData::new(*p)),
            Machine::TreatmentStopped(p) => {
                Running::TreatmentStopped(TreatmentStopped::new(p.clone()))
            }
            Machine::PowerCutFailure { params, power_feed } => {
                Running::PowerCutFailure(PowerCutFailure::new(*params), power_feed.clone())
            }
            Machine::Unregistered => Running::Unregistered(false),
        }
    }

    /// Take a reading of one of the instance's sources.
    fn on_reading(&mut self, instance: &Instance, r: &Reading, out: &mut Out) {
        let own = r.source == instance.point;
        let judged = own && instance.metric.is_some_and(|m| r.metric.known() == Some(m));
        let kind = instance.kind;
        let mut ts = Vec::new();
        match self {
            Running::Threshold(m) if judged => m.on_reading(r, &mut ts),
            Running::Average(m) => {
                if own && r.metric.known() == Some(Metric::Oxygen) {
                    m.on_o2(r);
                }
                if judged {
                    m.on_reading(r, out);
                }
            }
            Running::ConstantValue(m) if judged => ts.extend(m.on_reading(r)),
            Running::ZeroWhileOperating(m, operation) => {
                if judged {
                    m.on_reading(r, &mut ts);
                } else if own && r.metric.known() == Some(*operation) {
                    m.on_operation(r, &mut ts);
                }
            }
            Running::OutOfRange(m) if judged => ts.extend(m.on_reading(r)),
            Running::SuddenJump(m) if judged => ts.extend(m.on_reading(r)),
            Running::FlagDuration(m) if judged => m.on_reading(r, &mut ts),
            Running::MissingData(m) if own => m.on_reading(r, &mut ts),
            Running::TreatmentStopped(m) if r.metric.known() == Some(Metric::ActivePower) => {
                if own {
                    m.on_treatment(r, out);
                } else {
                    m.on_production(r, out);
                }
            }
            Running::PowerCutFailure(m, feed) => {
                if judged {
                    m.on_methane(r, out);
                } else if r.source == *feed
                    && r.metric.known() == Some(Metric::MinePower)
                    && r.is_valid()
                {
                    m.on_power_state(r.event_time, r.value >= 0.5, out);
                }
            }
            Running::Unregistered(raised) if !*raised => {
                *raised = true;
                ts.push(Transition::Fired {
                    started_at: r.event_time,
                    value: r.value,
                });
            }
            _ => {}
        }
        out.extend(ts.into_iter().map(|t| (kind, t)));
    }

    /// Take an event about one of the instance's sources.
    fn on_event(
        &mut self,
        instance: &Instance,
        source: &SourceId,
        at: Timestamp,
        kind: &EventKind,
        out: &mut Out,
    ) {
        match (self, kind) {
            (Running::TreatmentStopped(m), EventKind::ProductionState { running }) => {
                m.on_production_state(source, at, *running, out);
            }
            (Running::PowerCutFailure(m, feed), EventKind::PowerCutFeedback { powered })
                if source == feed || *source == instance.point =>
            {
                m.on_power_state(at, *powered, out);
            }
            _ => {}
        }
    }

    fn on_watermark(&mut self, kind: AlertKind, watermark: Timestamp, out: &mut Out) {
        let mut ts = Vec::new();
        match self {
            Running::Threshold(m) => m.on_watermark(watermark, &mut ts),
            Running::Average(m) => m.on_watermark(watermark, out),
            Running::ZeroWhileOperating(m, _) => m.on_watermark(watermark, &mut ts),
            Running::FlagDuration(m) => m.on_watermark(watermark, &mut ts),
            Running::MissingData(m) => m.on_watermark(watermark, &mut ts),
            Running::TreatmentStopped(m) => m.on_watermark(watermark, out),
            Running::PowerCutFailure(m, _) => m.on_watermark(watermark, out),
            Running::ConstantValue(_)
            | Running::OutOfRange(_)
            | Running::SuddenJump(_)
            | Running::Unregistered(_) => {}
        }
        out.extend(ts.into_iter().map(|t| (kind, t)));
    }
}

/// Bytes of state one rule instance keeps on its worker: its instance description (pointers to
/// shared strings) and its machine, the largest kind. Machines keep O(1) state (a treatment
/// facility one fact per production line it serves), so this is the per-series cost apart from
/// the map entries.
pub fn state_bytes_per_instance() -> usize {
    std::mem::size_of::<(Arc<Instance>, Running)>() + std::mem::size_of::<Instance>()
}

/// The machines of one enterprise (or one unregistered source), all on one worker.
#[derive(Debug, Default)]
struct Unit {
    enterprise: Arc<str>,
    machines: Vec<(Arc<Instance>, Running)>,
    /// The machines that take each source's readings and events.
    by_source: HashMap<SourceId, Vec<u32>>,
    suppressions: Suppressions,
    /// Open alerts that were muted when they fired.
    muted: HashSet<u64>,
}

impl Unit {
    fn new(enterprise: Arc<str>, instances: impl IntoIterator<Item = Instance>) -> Self {
        let mut unit = Unit {
            enterprise,
            ..Unit::default()
        };
        for instance in instances {
            let index = u32::try_from(unit.machines.len()).unwrap_or(u32::MAX);
            for source in instance.sources() {
                unit.by_source.entry(source).or_default().push(index);
            }
            let running = Running::new(&instance.machine);
            unit.machines.push((Arc::new(instance), running));
        }
        unit
    }

    fn on_input(&mut self, input: &Input, out: &mut Vec<AlertTransition>) {
        let mut buf = Vec::new();
        match input {
            Input::Reading(r) => {
                for &i in self.by_source.get(&r.source).map_or(&[][..], Vec::as_slice) {
                    let (instance, machine) = &mut self.machines[i as usize];
                    machine.on_reading(instance, r, &mut buf);
                    emit(instance, &mut buf, &self.suppressions, &mut self.muted, out);
                }
            }
            Input::Event(e) => {
                if let EventKind::MaintenanceNotice {
                    from, to, points, ..
                } = &e.kind
                {
                    self.suppressions
                        .add(&self.enterprise, *from, *to, points.clone());
                    return;
                }
                let Some(source) = &e.source else { return };
                for &i in self.by_source.get(source).map_or(&[][..], Vec::as_slice) {
                    let (instance, machine) = &mut self.machines[i as usize];
                    machine.on_event(instance, source, e.event_time, &e.kind, &mut buf);
                    emit(instance, &mut buf, &self.suppressions, &mut self.muted, out);
                }
            }
        }
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        lookback_ms: i64,
        out: &mut Vec<AlertTransition>,
    ) {
        let mut buf = Vec::new();
        for (instance, machine) in &mut self.machines {
            machine.on_watermark(instance.kind, watermark, &mut buf);
            emit(instance, &mut buf, &self.suppressions, &mut self.muted, out);
        }
        self.suppressions
            .prune(Timestamp(watermark.as_millis().saturating_sub(lookback_ms)));
    }
}

/// Label the transitions of `instance`, mute those a maintenance notice covers, and move them to
/// `out`.
fn emit(
    instance: &Arc<Instance>,
    buf: &mut Out,
    suppressions: &Suppressions,
    muted: &mut HashSet<u64>,
    out: &mut Vec<AlertTransition>,
) {
    if buf.is_empty() {
        return;
    }
    let key = instance.series_key();
    for (kind, transition) in buf.drain(..) {
        let (started_at, fired) = match &transition {
            Transition::Fired { started_at, .. } => (*started_at, true),
            Transition::Resolved { started_at, .. } => (*started_at, false),
        };
        let id = alert_id(&instance.rule_id, &key, started_at);
        let is_muted = if fired {
            let covered = suppressions.covers(&instance.enterprise_id, &instance.point, started_at);
            if covered {
                muted.insert(id);
            }
            covered
        } else {
            muted.remove(&id)
        };
        out.push(AlertTransition {
            alert_id: id,
            kind,
            instance: Arc::clone(instance),
            transition,
            muted: is_muted,
        });
    }
}

/// FNV-1a of a unit key: the exchange key (stable across processes and builds).
fn route(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The unit an input belongs to: the enterprise of its source (or the one an event names), or
/// the source itself when the registry does not know it.
fn unit_key<'a>(input: &'a Input, rules: &'a RuleSet) -> &'a str {
    match input {
        Input::Reading(r) => rules
            .enterprise_of(r.source.as_str())
            .map_or(r.source.as_str(), |e| e),
        Input::Event(e) => match (&e.enterprise_id, &e.source) {
            (Some(enterprise), _) => enterprise,
            (None, Some(source)) => rules
                .enterprise_of(source.as_str())
                .map_or(source.as_str(), |e| e),
            (None, None) => "",
        },
    }
}

/// The total order inputs are judged in: event time, events first (a maintenance notice before
/// the alerts it mutes), then O2 (averages correct with it), then source, metric, value.
fn order(input: &Input) -> (i64, u8, &str, &str, u64) {
    match input {
        Input::Event(e) => (
            e.event_time.as_millis(),
            0,
            e.source.as_ref().map_or("", SourceId::as_str),
            "",
            0,
        ),
        Input::Reading(r) => (
            r.event_time.as_millis(),
            if r.metric == MetricCode::Known(Metric::Oxygen) {
                1
            } else {
                2
            },
            r.source.as_str(),
            r.metric.as_str(),
            r.value.to_bits(),
        ),
    }
}

/// Run the rules over a stream of readings and events; returns the alert transitions.
pub fn detect<'scope>(
    inputs: Stream<'scope, u64, Vec<Input>>,
    rules: Arc<RuleSet>,
) -> Stream<'scope, u64, Vec<AlertTransition>> {
    let routing = Arc::clone(&rules);
    inputs.unary_frontier(
        Exchange::new(move |input: &Input| route(unit_key(input, &routing))),
        "Detect",
        move |clock, _info| {
            let mut clock = Some(clock);
            let mut pending: Vec<Input> = Vec::new();
            let mut units: HashMap<Arc<str>, Unit> = HashMap::new();
            let mut unregistered = 0_usize;
            let mut judged_to: u64 = 0;
            let lookback_ms = rules.longest_lookback_ms();
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
                // Only the inputs the frontier has passed are sorted and judged; the rest wait.
                let mut ready: Vec<Input> = pending
                    .extract_if(.., |i| crate::event_time(i.event_time()) < until)
                    .collect();
                ready.sort_by(|a, b| order(a).cmp(&order(b)));
                let mut out = Vec::new();
                for input in &ready {
                    let key = unit_key(input, &rules);
                    let unit = match units.get_mut(key) {
                        Some(unit) => unit,
                        None => {
                            let Some(unit) = new_unit(key, input, &rules, &mut unregistered) else {
                                continue;
                            };
                            units.entry(Arc::clone(&unit.enterprise)).or_insert(unit)
                        }
                    };
                    unit.on_input(input, &mut out);
                }
                // The end of the input is not a watermark: windows and durations the data did not
                // see close stay open rather than being judged on data that never came.
                if until != u64::MAX {
                    let watermark = Timestamp(i64::try_from(until - 1).unwrap_or(i64::MAX));
                    for unit in units.values_mut() {
                        unit.on_watermark(watermark, lookback_ms, &mut out);
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

/// The unit for `key`, seen for the first time: an enterprise's machines, or the alert of an
/// unregistered source (while fewer than [`MAX_UNREGISTERED_SOURCES`]); none when nothing
/// judges it.
fn new_unit(key: &str, input: &Input, rules: &RuleSet, unregistered: &mut usize) -> Option<Unit> {
    let registered = match input {
        Input::Reading(r) => rules.enterprise_of(r.source.as_str()).is_some(),
        // An event about an enterprise without rules, or an unknown one, concerns no machine.
        Input::Event(_) => {
            if rules.for_enterprise(key).is_empty() {
                return None;
            }
            true
        }
    };
    if registered {
        let instances = rules.for_enterprise(key).to_vec();
        return Some(Unit::new(Arc::from(key), instances));
    }
    let rule = rules.unregistered()?;
    if *unregistered >= MAX_UNREGISTERED_SOURCES {
        return None;
    }
    *unregistered += 1;
    let Input::Reading(r) = input else {
        return None;
    };
    Some(Unit::new(Arc::from(key), [rule.instance(&r.source)]))
}
