//! The detection operator: exchange by enterprise, buffer until the frontier passes, run the
//! rule machines in a total order (each reading once), emit alert transitions and, when asked,
//! checkpoints of its state.

use std::sync::Arc;

use argus_model::{
    AlertKind, EventKind, Interval, Metric, MetricCode, Reading, SourceId, Timestamp,
};
use argus_rules::consistency::Consistency;
use argus_rules::crossfeed::{PowerCutFailure, Suppressions, TreatmentStopped};
use argus_rules::quality::{
    ConstantValue, FlagDuration, MissingData, OutOfRange, ReadingConflict, SuddenJump,
    ZeroWhileOperating,
};
use argus_rules::spec::{Instance, Machine};
use argus_rules::{alert_id, Average, RuleSet, Threshold, Transition};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Operator;
use timely::dataflow::Stream;

use crate::checkpoint::Checkpoint;
use crate::{AlertTransition, Input};
use argus_rules::fnv::{hash_str, FnvHashMap, FnvHashSet};

/// Unregistered sources a worker raises alerts for (and the watermark tracker follows), at most:
/// a sender inventing ids cannot grow the state without bound. Readings of further unknown
/// sources are still stored upstream and counted (`argus_detect_untracked_total`); together
/// they raise one alert per worker, of the source [`OVERFLOW_SOURCE`], and keep no state.
pub const MAX_UNREGISTERED_SOURCES: usize = 10_000;

/// The source the `unregistered_source` alert names for the unknown sources beyond
/// [`MAX_UNREGISTERED_SOURCES`].
pub const OVERFLOW_SOURCE: &str = "unregistered-beyond-limit";

/// A rule instance's running state machine.
#[derive(Debug, Serialize, Deserialize)]
enum Running {
    Threshold(Threshold),
    Average(Average),
    ConstantValue(ConstantValue),
    ZeroWhileOperating(ZeroWhileOperating),
    OutOfRange(OutOfRange),
    SuddenJump(SuddenJump),
    FlagDuration(FlagDuration),
    MissingData(MissingData),
    TreatmentStopped(TreatmentStopped),
    PowerCutFailure(PowerCutFailure),
    /// Whether the alert was raised.
    Unregistered(bool),
    // Last: checkpoints name variants by their index.
    ReadingConflict(ReadingConflict),
    Consistency(Consistency),
}

type Out = Vec<(AlertKind, Transition)>;

impl Running {
    fn new(machine: &Machine) -> Self {
        match machine {
            Machine::Threshold(p) => Running::Threshold(Threshold::new(*p)),
            Machine::Average(p) => Running::Average(Average::new(*p)),
            Machine::ConstantValue(p) => Running::ConstantValue(ConstantValue::new(*p)),
            Machine::ZeroWhileOperating { params, .. } => {
                Running::ZeroWhileOperating(ZeroWhileOperating::new(*params))
            }
            Machine::OutOfRange(p) => Running::OutOfRange(OutOfRange::new(*p)),
            Machine::SuddenJump(p) => Running::SuddenJump(SuddenJump::new(*p)),
            Machine::FlagDuration(p) => Running::FlagDuration(FlagDuration::new(*p)),
            Machine::MissingData(p) => Running::MissingData(MissingData::new(*p)),
            Machine::TreatmentStopped(p) => {
                Running::TreatmentStopped(TreatmentStopped::new(p.clone()))
            }
            Machine::PowerCutFailure { params, .. } => {
                Running::PowerCutFailure(PowerCutFailure::new(*params))
            }
            Machine::Unregistered => Running::Unregistered(false),
            Machine::ReadingConflict(p) => Running::ReadingConflict(ReadingConflict::new(*p)),
            Machine::Consistency(p) => Running::Consistency(Consistency::new(*p)),
        }
    }

    /// Whether the machine takes readings of `interval`: the logger's averages go to the
    /// average and consistency rules only (and count as the point reporting when they are
    /// minute values); every other rule judges real-time values.
    fn takes(&self, interval: Interval) -> bool {
        match self {
            Running::Average(_) => matches!(interval, Interval::RealTime | Interval::Hour),
            Running::Consistency(_) => interval != Interval::Day,
            Running::MissingData(_) => matches!(interval, Interval::RealTime | Interval::Minute),
            Running::Unregistered(_) => true,
            _ => interval == Interval::RealTime,
        }
    }

    /// Take a reading in `role` (its metric already matched).
    fn on_reading(&mut self, role: Role, kind: AlertKind, r: &Reading, out: &mut Out) {
        let mut ts = Vec::new();
        match (self, role) {
            (Running::Threshold(m), _) => m.on_reading(r, &mut ts),
            (Running::Average(m), Role::Oxygen) => m.on_o2(r),
            (Running::Average(m), _) => m.on_reading(r, out),
            (Running::ConstantValue(m), _) => ts.extend(m.on_reading(r)),
            (Running::ZeroWhileOperating(m), Role::Operation(_)) => m.on_operation(r, &mut ts),
            (Running::ZeroWhileOperating(m), _) => m.on_reading(r, &mut ts),
            (Running::OutOfRange(m), _) => ts.extend(m.on_reading(r)),
            (Running::SuddenJump(m), _) => ts.extend(m.on_reading(r)),
            (Running::FlagDuration(m), _) => m.on_reading(r, &mut ts),
            (Running::MissingData(m), _) => m.on_reading(r, &mut ts),
            (Running::TreatmentStopped(m), Role::Line) => m.on_production(r, out),
            (Running::TreatmentStopped(m), _) => m.on_treatment(r, out),
            (Running::PowerCutFailure(m), Role::Feed) => {
                if r.is_valid() {
                    m.on_power_state(r.event_time, r.value >= 0.5, out);
                }
            }
            (Running::PowerCutFailure(m), _) => m.on_methane(r, out),
            (Running::Consistency(m), Role::Oxygen) => m.on_o2(r),
            (Running::Consistency(m), _) => m.on_reading(r, out),
            // Conflicts come as events, found by the store.
            (Running::ReadingConflict(_), _) => {}
            (Running::Unregistered(raised), _) => {
                if !*raised {
                    *raised = true;
                    ts.push(Transition::Fired {
                        started_at: r.event_time,
                        value: r.value,
                    });
                }
            }
        }
        out.extend(ts.into_iter().map(|t| (kind, t)));
    }

    /// Take an event about a source it takes in `role`.
    fn on_event(
        &mut self,
        role: Role,
        source: &SourceId,
        at: Timestamp,
        kind: &EventKind,
        out: &mut Out,
    ) {
        match (self, kind, role) {
            (Running::TreatmentStopped(m), EventKind::ProductionState { running }, Role::Line) => {
                m.on_production_state(source, at, *running, out);
            }
            (
                Running::PowerCutFailure(m),
                EventKind::PowerCutFeedback { powered },
                Role::Feed | Role::Judged(_),
            ) => {
                m.on_power_state(at, *powered, out);
            }
            (Running::ReadingConflict(m), EventKind::ReadingConflict { .. }, Role::Any) => {
                let mut ts = Vec::new();
                m.on_conflict(at, &mut ts);
                out.extend(ts.into_iter().map(|t| (ReadingConflict::KIND, t)));
            }
            _ => {}
        }
    }

    fn on_watermark(&mut self, kind: AlertKind, watermark: Timestamp, out: &mut Out) {
        let mut ts = Vec::new();
        match self {
            Running::Threshold(m) => m.on_watermark(watermark, &mut ts),
            Running::Average(m) => m.on_watermark(watermark, out),
            Running::ZeroWhileOperating(m) => m.on_watermark(watermark, &mut ts),
            Running::FlagDuration(m) => m.on_watermark(watermark, &mut ts),
            Running::MissingData(m) => m.on_watermark(watermark, &mut ts),
            Running::TreatmentStopped(m) => m.on_watermark(watermark, out),
            Running::PowerCutFailure(m) => m.on_watermark(watermark, out),
            Running::ReadingConflict(m) => m.on_watermark(watermark, &mut ts),
            Running::ConstantValue(_)
            | Running::Consistency(_)
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

/// What a machine takes from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Readings of the metric it judges, at its own point.
    Judged(Metric),
    /// O2 readings of its own point (O2-corrected averages).
    Oxygen,
    /// The operation signal of its own point (zero while operating).
    Operation(Metric),
    /// Every reading of its own point (missing data, unregistered source).
    Any,
    /// Power readings and production state events of a production line it serves.
    Line,
    /// Power state readings and power-cut feedback events of the power feed it watches.
    Feed,
}

impl Role {
    fn takes(self, metric: &MetricCode) -> bool {
        let known = metric.known();
        match self {
            Role::Judged(m) | Role::Operation(m) => known == Some(m),
            Role::Oxygen => known == Some(Metric::Oxygen),
            Role::Any => true,
            Role::Line => known == Some(Metric::ActivePower),
            Role::Feed => known == Some(Metric::MinePower),
        }
    }
}

/// The sources a rule instance takes, and in which role.
fn subscriptions(instance: &Instance) -> Vec<(SourceId, Role)> {
    let own = |role| (instance.point.clone(), role);
    let judged = instance.metric.map_or(Role::Any, Role::Judged);
    match &instance.machine {
        Machine::Average(p) if p.o2.is_some() => vec![own(judged), own(Role::Oxygen)],
        Machine::Consistency(p) if p.corrects() => vec![own(judged), own(Role::Oxygen)],
        Machine::ZeroWhileOperating { operation, .. } => {
            vec![own(judged), own(Role::Operation(*operation))]
        }
        Machine::TreatmentStopped(p) => std::iter::once(own(judged))
            .chain(p.lines().map(|line| (line.clone(), Role::Line)))
            .collect(),
        Machine::PowerCutFailure { power_feed, .. } => {
            vec![own(judged), (power_feed.clone(), Role::Feed)]
        }
        Machine::MissingData(_) | Machine::Unregistered | Machine::ReadingConflict(_) => {
            vec![own(Role::Any)]
        }
        _ => vec![own(judged)],
    }
}

/// Which rules a unit runs: how it is built again from the rule set when taken back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Origin {
    /// An enterprise's instances.
    #[default]
    Enterprise,
    /// The alert of one unregistered source (the unit's key).
    Unregistered,
    /// The shared alert of the unregistered sources beyond the bound.
    Overflow,
}

/// The machines of one enterprise (or one unregistered source), all on one worker.
#[derive(Debug, Default)]
struct Unit {
    enterprise: Arc<str>,
    origin: Origin,
    machines: Vec<(Arc<Instance>, Running)>,
    /// The machines that take each source's readings and events, and in which role.
    by_source: FnvHashMap<SourceId, Vec<(u32, Role)>>,
    suppressions: Suppressions,
    /// The alerts the unit raised, with their latest transition: open ones, and resolved ones
    /// until they fall out of the lookback. A notice or silence that arrives after an alert
    /// fired mutes it if its window covers the alert's start.
    recent: FnvHashMap<u64, Recent>,
}

/// An alert a unit raised, as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Recent {
    /// Its machine (index in the unit).
    machine: u32,
    kind: AlertKind,
    /// Its latest transition.
    last: Transition,
    muted: bool,
}

impl Recent {
    fn started_at(&self) -> Timestamp {
        match &self.last {
            Transition::Fired { started_at, .. }
            | Transition::Updated { started_at, .. }
            | Transition::Resolved { started_at, .. } => *started_at,
        }
    }
}

impl Unit {
    fn new(
        enterprise: Arc<str>,
        origin: Origin,
        instances: impl IntoIterator<Item = Instance>,
    ) -> Self {
        let mut unit = Unit {
            enterprise,
            origin,
            ..Unit::default()
        };
        for instance in instances {
            let index = u32::try_from(unit.machines.len()).unwrap_or(u32::MAX);
            for (source, role) in subscriptions(&instance) {
                unit.by_source
                    .entry(source)
                    .or_default()
                    .push((index, role));
            }
            let running = Running::new(&instance.machine);
            unit.machines.push((Arc::new(instance), running));
        }
        unit
    }

    /// The machines that take `source`, and in which role.
    fn subscribed(&self, source: &SourceId) -> Subscribed {
        self.by_source
            .get(source)
            .map_or_else(|| Arc::from([]), |subs| Arc::from(subs.as_slice()))
    }

    /// Take a reading, given the machines of its source (from [`Self::subscribed`]).
    fn on_reading(
        &mut self,
        r: &Reading,
        subscribed: &[(u32, Role)],
        out: &mut Vec<AlertTransition>,
    ) {
        let mut buf = Vec::new();
        for &(i, role) in subscribed {
            if !role.takes(&r.metric) {
                continue;
            }
            let (instance, machine) = &mut self.machines[i as usize];
            if !machine.takes(r.interval) {
                continue;
            }
            machine.on_reading(role, instance.kind, r, &mut buf);
            emit(
                i,
                instance,
                &mut buf,
                &self.suppressions,
                &mut self.recent,
                out,
            );
        }
    }

    fn on_input(&mut self, input: &Input, out: &mut Vec<AlertTransition>) {
        let mut buf = Vec::new();
        match input {
            Input::Reading(r) => {
                let subscribed = self.subscribed(&r.source);
                self.on_reading(r, &subscribed, out);
            }
            Input::Event(e) => {
                if let EventKind::MaintenanceNotice {
                    from,
                    to,
                    points,
                    reason,
                    ..
                } = &e.kind
                {
                    self.suppressions
                        .add(&self.enterprise, *from, *to, points.clone());
                    self.mute_later(reason, out);
                    return;
                }
                let Some(source) = &e.source else { return };
                for &(i, role) in self.by_source.get(source).map_or(&[][..], Vec::as_slice) {
                    let (instance, machine) = &mut self.machines[i as usize];
                    machine.on_event(role, source, e.event_time, &e.kind, &mut buf);
                    emit(
                        i,
                        instance,
                        &mut buf,
                        &self.suppressions,
                        &mut self.recent,
                        out,
                    );
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
        for (i, (instance, machine)) in self.machines.iter_mut().enumerate() {
            machine.on_watermark(instance.kind, watermark, &mut buf);
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            emit(
                i,
                instance,
                &mut buf,
                &self.suppressions,
                &mut self.recent,
                out,
            );
        }
        let cutoff = Timestamp(watermark.as_millis().saturating_sub(lookback_ms));
        self.suppressions.prune(cutoff);
        self.recent.retain(|_, r| match r.last {
            Transition::Resolved { ended_at, .. } => ended_at >= cutoff,
            _ => true,
        });
    }

    /// A notice or silence has just been added: the alerts already raised that it covers and
    /// that were not muted are muted now, each with a transition repeating its latest one.
    fn mute_later(&mut self, reason: &str, out: &mut Vec<AlertTransition>) {
        let mut ids: Vec<u64> = self
            .recent
            .iter()
            .filter(|(_, r)| {
                self.machines.get(r.machine as usize).is_some_and(|(i, _)| {
                    !r.muted
                        && self
                            .suppressions
                            .covers(&i.enterprise_id, &i.point, r.started_at())
                })
            })
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return;
        }
        ids.sort_unstable();
        let reason: Arc<str> = Arc::from(reason);
        for id in ids {
            let Some(r) = self.recent.get_mut(&id) else {
                continue;
            };
            let Some((instance, _)) = self.machines.get(r.machine as usize) else {
                continue;
            };
            r.muted = true;
            out.push(AlertTransition {
                alert_id: id,
                kind: r.kind,
                instance: Arc::clone(instance),
                transition: r.last.clone(),
                muted: true,
                muted_later: Some(Arc::clone(&reason)),
            });
        }
    }
}

/// Label the transitions of `instance` (machine `index` of its unit), mute those a maintenance
/// notice covers, note each alert as it stands in `recent`, and move them to `out`.
fn emit(
    index: u32,
    instance: &Arc<Instance>,
    buf: &mut Out,
    suppressions: &Suppressions,
    recent: &mut FnvHashMap<u64, Recent>,
    out: &mut Vec<AlertTransition>,
) {
    if buf.is_empty() {
        return;
    }
    let key = instance.series_key();
    for (kind, transition) in buf.drain(..) {
        let started_at = match &transition {
            Transition::Fired { started_at, .. }
            | Transition::Updated { started_at, .. }
            | Transition::Resolved { started_at, .. } => *started_at,
        };
        let id = alert_id(&instance.rule_id, &key, started_at);
        let is_muted = match &transition {
            Transition::Fired { .. } => {
                suppressions.covers(&instance.enterprise_id, &instance.point, started_at)
            }
            Transition::Updated { .. } | Transition::Resolved { .. } => {
                recent.get(&id).is_some_and(|r| r.muted)
            }
        };
        recent.insert(
            id,
            Recent {
                machine: index,
                kind,
                last: transition.clone(),
                muted: is_muted,
            },
        );
        out.push(AlertTransition {
            alert_id: id,
            kind,
            instance: Arc::clone(instance),
            transition,
            muted: is_muted,
            muted_later: None,
        });
    }
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

/// The order inputs are judged in: event time (a logger's average at the end of its span,
/// [`Reading::available_at`]), events first (a maintenance notice before the alerts it mutes),
/// then O2 (averages correct with it), then by metric, interval, value and flag. That
/// orders every series (and the series of one point) the same way whatever the arrival order;
/// inputs of different sources that tie feed different machines, or cross-feed machines that
/// take all inputs of an instant before judging it, so their relative order changes nothing.
fn order(input: &Input) -> (i64, u8, u32, u8, u64, u8) {
    match input {
        Input::Event(e) => (e.event_time.as_millis(), 0, 0, 0, 0, 0),
        Input::Reading(r) => {
            let (class, metric) = match &r.metric {
                MetricCode::Known(Metric::Oxygen) => (1, 0),
                MetricCode::Known(m) => (2, *m as u32),
                MetricCode::Unknown(code) => (2, 0x8000_0000 | (hash_str(code) as u32 >> 1)),
            };
            let flag = r.flag as u8;
            (
                r.available_at().as_millis(),
                class,
                metric,
                r.interval as u8,
                r.value.to_bits(),
                flag,
            )
        }
    }
}

/// Run the rules over a stream of readings and events, every registered point expected from
/// `watch_from` (see [`Resume::watch_from`]); returns the alert transitions.
pub fn detect<'scope>(
    inputs: Stream<'scope, u64, Vec<Input>>,
    rules: Arc<RuleSet>,
    watch_from: Option<Timestamp>,
) -> Stream<'scope, u64, Vec<AlertTransition>> {
    let resume = Resume {
        watch_from,
        ..Resume::default()
    };
    detect_resumable(inputs, rules, resume).flat_map(|d| match d {
        Detected::Transition(t) => Some(t),
        Detected::Checkpoint(_) => None,
    })
}

/// What the detection operator gives: alert transitions and, when asked, checkpoints of its
/// state, each after the transitions it covers.
#[derive(Debug, Clone)]
pub enum Detected {
    /// An alert transition.
    Transition(AlertTransition),
    /// The worker's state as of a frontier.
    Checkpoint(Box<Checkpoint>),
}

/// Where a worker's detection starts and how often it saves its state.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Checkpoint whenever the frontier has moved this far (event-time ms) since the last one
    /// (and at the first frontier, and before the input's end); `None`: never.
    pub every_ms: Option<u64>,
    /// When set, a checkpoint is also only taken once this says one is due (it is cleared
    /// then): the live service raises it on a wall-clock interval, so a fast backlog (event
    /// time racing ahead) is not checkpointed at every step.
    pub due: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The state to start from (checked by [`Checkpoint::check`]; one that does not decode
    /// starts empty).
    pub from: Option<Checkpoint>,
    /// The end of the input is a pause, not the end of the data: the inputs the frontier has
    /// not passed are left unjudged (a restart takes them again from the store, after the last
    /// checkpoint) instead of judged without a watermark as at the end of a recorded input.
    pub pause_at_end: bool,
    /// From when every registered point is expected to report (missing data counts from then
    /// for a point that has not reported): the input's first event time for a recorded input;
    /// `None`, the first frontier the worker sees (when the live service starts watching).
    pub watch_from: Option<Timestamp>,
}

/// [`detect`], starting from a checkpoint and saving checkpoints as `resume` says. Inputs with
/// an event time below the checkpoint's frontier are covered by it and dropped.
pub fn detect_resumable<'scope>(
    inputs: Stream<'scope, u64, Vec<Input>>,
    rules: Arc<RuleSet>,
    resume: Resume,
) -> Stream<'scope, u64, Vec<Detected>> {
    let routing = Arc::clone(&rules);
    let (worker, peers) = (inputs.scope().index(), inputs.scope().peers());
    let fingerprint = rules.fingerprint();
    inputs.unary_frontier(
        Exchange::new(move |input: &Input| hash_str(unit_key(input, &routing))),
        "Detect",
        move |clock, _info| {
            let mut clock = Some(clock);
            let mut pending: Vec<Input> = Vec::new();
            let restored = resume
                .from
                .as_ref()
                .and_then(|cp| Some((cp.until, restore_units(&cp.state, &rules).ok()?)));
            let (mut judged_to, (mut units, mut unregistered)) =
                restored.unwrap_or_else(|| (0, (Units::default(), 0)));
            let every_ms = resume.every_ms;
            let mut next_checkpoint = every_ms.map_or(u64::MAX, |every| {
                if judged_to == 0 {
                    0
                } else {
                    judged_to.saturating_add(every)
                }
            });
            let lookback_ms = rules.longest_lookback_ms();
            let watch_from = resume.watch_from;
            let mut watching = false;
            let save = move |units: &Units, unregistered: usize, until: u64| {
                Detected::Checkpoint(Box::new(Checkpoint {
                    worker,
                    peers,
                    rules: fingerprint,
                    until,
                    state: save_units(units, unregistered),
                }))
            };
            move |(input, frontier), output| {
                input.for_each_stamp(|_stamp, data| {
                    for batch in data {
                        // Inputs the state already covers (sent again after a restart).
                        batch.retain(|i| crate::event_time(i.event_time()) >= judged_to);
                        pending.append(batch);
                    }
                });
                // Everything before the frontier (all of it once the input is closed) is final.
                let until = frontier.frontier().first().copied().unwrap_or(u64::MAX);
                if until <= judged_to {
                    return;
                }
                let Some(cap) = clock.as_mut() else { return };
                let mut out = Vec::new();
                // At the end of the input, the state before its last inputs: a restart takes them
                // again from the store.
                if until == u64::MAX && every_ms.is_some() && judged_to > 0 {
                    out.push(save(&units, unregistered, judged_to));
                }
                if until == u64::MAX && resume.pause_at_end {
                    pending.clear();
                    output.session(cap).give_iterator(out.into_iter());
                    clock = None;
                    judged_to = until;
                    return;
                }
                // Every registered point of this worker's enterprises is expected from now on.
                if !watching {
                    watching = true;
                    let first_frontier = (until != u64::MAX)
                        .then(|| Timestamp(i64::try_from(until).unwrap_or(i64::MAX)));
                    if let Some(since) = watch_from.or(first_frontier) {
                        units.expect_all(&rules, worker, peers, since);
                    }
                }
                // Only the inputs the frontier has passed are sorted and judged; the rest wait.
                let mut ready: Vec<Input> = pending
                    .extract_if(.., |i| crate::event_time(i.event_time()) < until)
                    .collect();
                once_each(&mut ready);
                ready.sort_unstable_by_key(order);
                let mut transitions = Vec::new();
                for input in &ready {
                    units.take(input, &rules, &mut unregistered, &mut transitions);
                }
                // The end of the input is not a watermark: windows and durations the data did not
                // see close stay open rather than being judged on data that never came.
                if until != u64::MAX {
                    let watermark = Timestamp(i64::try_from(until - 1).unwrap_or(i64::MAX));
                    for unit in &mut units.units {
                        unit.on_watermark(watermark, lookback_ms, &mut transitions);
                    }
                }
                // Deterministic emission order within a step (content is what matters).
                transitions.sort_by_key(|t| t.alert_id);
                out.extend(transitions.into_iter().map(Detected::Transition));
                let due = || {
                    resume
                        .due
                        .as_ref()
                        .is_none_or(|d| d.swap(false, std::sync::atomic::Ordering::SeqCst))
                };
                if until != u64::MAX && until >= next_checkpoint && due() {
                    out.push(save(&units, unregistered, until));
                    next_checkpoint = every_ms.map_or(u64::MAX, |e| until.saturating_add(e));
                }
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

/// Keep the first of each reading (source, metric, interval, event time) and of each event, in arrival
/// order: delivery is at least once, and a reading delivered again (or taken again from the
/// store after a restart) counts once.
fn once_each(ready: &mut Vec<Input>) {
    let keep: Vec<bool> = {
        let mut readings = FnvHashSet::default();
        let mut events: Vec<&argus_model::Event> = Vec::new();
        ready
            .iter()
            .map(|input| match input {
                Input::Reading(r) => {
                    readings.insert((&r.source, &r.metric, r.interval, r.event_time))
                }
                Input::Event(e) => {
                    let again = events.iter().any(|seen| {
                        seen.event_time == e.event_time
                            && seen.source == e.source
                            && seen.enterprise_id == e.enterprise_id
                            && seen.kind == e.kind
                    });
                    if !again {
                        events.push(e);
                    }
                    !again
                }
            })
            .collect()
    };
    if keep.iter().all(|&k| k) {
        return;
    }
    let mut keep = keep.into_iter();
    ready.retain(|_| keep.next().unwrap_or(true));
}

/// A unit as saved (borrowed) and taken back (owned): the same encoding.
#[derive(Debug, Serialize)]
struct SavedUnit<'a> {
    key: &'a str,
    origin: Origin,
    machines: Vec<&'a Running>,
    suppressions: &'a Suppressions,
    recent: Vec<(u64, &'a Recent)>,
}

#[derive(Debug, Deserialize)]
struct LoadedUnit {
    key: String,
    origin: Origin,
    machines: Vec<Running>,
    suppressions: Suppressions,
    recent: Vec<(u64, Recent)>,
}

/// The encoded state of a worker's units (and its count of unregistered sources).
fn save_units(units: &Units, unregistered: usize) -> Vec<u8> {
    let saved: Vec<SavedUnit<'_>> = units
        .units
        .iter()
        .map(|u| {
            let mut recent: Vec<(u64, &Recent)> = u.recent.iter().map(|(id, r)| (*id, r)).collect();
            recent.sort_unstable_by_key(|(id, _)| *id);
            SavedUnit {
                key: &u.enterprise,
                origin: u.origin,
                machines: u.machines.iter().map(|(_, m)| m).collect(),
                suppressions: &u.suppressions,
                recent,
            }
        })
        .collect();
    // Plain data: encoding cannot fail.
    bincode::serialize(&(saved, unregistered)).unwrap_or_default()
}

/// Units taken back from [`save_units`]'s bytes, bound again to `rules` (which must be the
/// rules they were saved under: every unit must find its instances).
pub(crate) fn restore_units(bytes: &[u8], rules: &RuleSet) -> Result<(Units, usize), String> {
    let (loaded, unregistered): (Vec<LoadedUnit>, usize) =
        bincode::deserialize(bytes).map_err(|e| format!("state does not decode: {e}"))?;
    let mut units = Units::default();
    for saved in loaded {
        let instances = match saved.origin {
            Origin::Enterprise => rules.for_enterprise(&saved.key).to_vec(),
            Origin::Unregistered | Origin::Overflow => rules
                .unregistered()
                .map(|rule| vec![rule.instance(&SourceId::from(saved.key.as_str()))])
                .unwrap_or_default(),
        };
        if instances.len() != saved.machines.len() {
            return Err(format!(
                "unit {:?} has {} machines saved, {} rule instances now",
                saved.key,
                saved.machines.len(),
                instances.len()
            ));
        }
        let mut unit = Unit::new(Arc::from(saved.key.as_str()), saved.origin, instances);
        for ((_, running), machine) in unit.machines.iter_mut().zip(saved.machines) {
            *running = machine;
        }
        unit.suppressions = saved.suppressions;
        unit.recent = saved.recent.into_iter().collect();
        units.units.push(unit);
        let i = units.units.len() - 1;
        match saved.origin {
            Origin::Overflow => units.overflow = Some(i),
            Origin::Enterprise | Origin::Unregistered => {
                units.by_key.insert(Arc::from(saved.key.as_str()), i);
            }
        }
    }
    Ok((units, unregistered))
}

/// The machines of a unit a source feeds (by index), and in which role.
type Subscribed = Arc<[(u32, Role)]>;

/// The units of a worker, found by unit key and, for readings, by source directly (with the
/// machines the source feeds: one lookup per reading).
#[derive(Debug, Default)]
pub(crate) struct Units {
    units: Vec<Unit>,
    by_key: FnvHashMap<Arc<str>, usize>,
    by_source: FnvHashMap<SourceId, (usize, Subscribed)>,
    /// The unit of the unregistered sources beyond the bound, once there are any.
    overflow: Option<usize>,
}

impl Units {
    /// Create the units of the enterprises this worker owns (`worker` of `peers`, as the
    /// exchange routes them) that have none yet, and expect each of their points from `since`
    /// (missing data counts from then for a point that has not reported).
    fn expect_all(&mut self, rules: &RuleSet, worker: usize, peers: usize, since: Timestamp) {
        let peers = u64::try_from(peers.max(1)).unwrap_or(1);
        for key in rules.enterprises() {
            if usize::try_from(hash_str(key) % peers).ok() != Some(worker) {
                continue;
            }
            let i = match self.by_key.get(&**key) {
                Some(&i) => i,
                None => {
                    let instances = rules.for_enterprise(key).to_vec();
                    self.keep(
                        key,
                        Unit::new(Arc::clone(key), Origin::Enterprise, instances),
                    )
                }
            };
            if let Some(unit) = self.units.get_mut(i) {
                for (_, machine) in &mut unit.machines {
                    if let Running::MissingData(m) = machine {
                        m.expect_from(since);
                    }
                }
            }
        }
    }

    /// Keep a new unit under `key`; returns its index.
    fn keep(&mut self, key: &str, unit: Unit) -> usize {
        self.units.push(unit);
        let i = self.units.len() - 1;
        self.by_key.insert(Arc::from(key), i);
        i
    }

    /// Hand `input` to the unit that judges it, created when first needed.
    fn take(
        &mut self,
        input: &Input,
        rules: &RuleSet,
        unregistered: &mut usize,
        out: &mut Vec<AlertTransition>,
    ) {
        if let Input::Reading(r) = input {
            if let Some((i, subscribed)) = self.by_source.get(&r.source) {
                if let Some(unit) = self.units.get_mut(*i) {
                    unit.on_reading(r, subscribed, out);
                }
                return;
            }
        }
        let key = unit_key(input, rules);
        let i = match self.by_key.get(key) {
            Some(&i) => i,
            None => match new_unit(key, input, rules, unregistered) {
                New::Unit(unit) => self.keep(key, unit),
                New::Overflow(instance) => {
                    let i = *self.overflow.get_or_insert_with(|| {
                        self.units.push(Unit::new(
                            Arc::from(OVERFLOW_SOURCE),
                            Origin::Overflow,
                            [instance],
                        ));
                        self.units.len() - 1
                    });
                    // One shared machine, no state per source.
                    if let (Input::Reading(r), Some(unit)) = (input, self.units.get_mut(i)) {
                        unit.on_reading(r, &[(0, Role::Any)], out);
                    }
                    return;
                }
                New::Nothing => return,
            },
        };
        let Some(unit) = self.units.get_mut(i) else {
            return;
        };
        if let Input::Reading(r) = input {
            self.by_source
                .insert(r.source.clone(), (i, unit.subscribed(&r.source)));
        }
        unit.on_input(input, out);
    }
}

/// What a key seen for the first time gets.
enum New {
    /// An enterprise's machines, or the alert of an unregistered source.
    Unit(Unit),
    /// An unregistered source beyond [`MAX_UNREGISTERED_SOURCES`]: the shared instance of the
    /// overflow alert.
    Overflow(Instance),
    /// Nothing judges it.
    Nothing,
}

/// The unit for `key`, seen for the first time: an enterprise's machines, or the alert of an
/// unregistered source (while fewer than [`MAX_UNREGISTERED_SOURCES`]).
fn new_unit(key: &str, input: &Input, rules: &RuleSet, unregistered: &mut usize) -> New {
    let registered = match input {
        Input::Reading(r) => rules.enterprise_of(r.source.as_str()).is_some(),
        // An event about an enterprise without rules, or an unknown one, concerns no machine.
        Input::Event(_) => {
            if rules.for_enterprise(key).is_empty() {
                return New::Nothing;
            }
            true
        }
    };
    if registered {
        let instances = rules.for_enterprise(key).to_vec();
        return New::Unit(Unit::new(Arc::from(key), Origin::Enterprise, instances));
    }
    let (Some(rule), Input::Reading(r)) = (rules.unregistered(), input) else {
        return New::Nothing;
    };
    if *unregistered >= MAX_UNREGISTERED_SOURCES {
        return New::Overflow(rule.instance(&SourceId::from(OVERFLOW_SOURCE)));
    }
    *unregistered += 1;
    New::Unit(Unit::new(
        Arc::from(key),
        Origin::Unregistered,
        [rule.instance(&r.source)],
    ))
}
