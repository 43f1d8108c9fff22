//! Cross-feed rules: checks that join several feeds of one enterprise.
//!
//! - [`TreatmentStopped`]: the power meter of a pollution-control facility against the meters
//!   of the production lines it serves (separate metering of production and treatment power,
//!   分表计电): treatment stopped while production runs.
//! - [`PowerCutFailure`]: a coal-mine methane sensor against the power-cut feedback of the area
//!   it guards: methane at the power-cut threshold without the power cut in time, or the power
//!   restored while methane is still high.
//! - [`Suppressions`]: the maintenance notices of enterprises, answering whether an alert's start
//!   falls in a notified window (such an alert is muted, still recorded: the caller decides).
//!
//! Like the other machines, these take their inputs in event-time order (the dataflow exchanges
//! them by enterprise, so the related feeds meet on one worker, and sorts them) and the
//! watermark. Inputs that share an event time may come in any order: a machine takes them all
//! and judges that instant only once event time has moved past it (an input at a later time, or
//! a watermark at or after it), so their order never changes the result. A transition caused by
//! an input is therefore reported at the next input or watermark, always with the event time of
//! the input that caused it.

use std::collections::BTreeMap;

use argus_model::{AlertKind, Event, EventKind, Reading, SourceId, Timestamp};

use crate::Transition;

/// The alert being built: since when, the value then, and the worst and mean value since.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Open {
    since: Timestamp,
    value: f64,
    peak: f64,
    sum: f64,
    n: u32,
}

impl Open {
    fn new(since: Timestamp, value: f64) -> Self {
        Self {
            since,
            value,
            peak: value,
            sum: value,
            n: 1,
        }
    }

    /// Count one more value; `worse` picks the more extreme of two (`f64::max` or `f64::min`).
    fn add(&mut self, value: f64, worse: fn(f64, f64) -> f64) {
        self.peak = worse(self.peak, value);
        self.sum += value;
        self.n += 1;
    }

    fn fired(&self) -> Transition {
        Transition::Fired {
            started_at: self.since,
            value: self.value,
        }
    }

    fn resolved(&self, ended_at: Timestamp) -> Transition {
        Transition::Resolved {
            started_at: self.since,
            ended_at,
            peak: self.peak,
            mean: self.sum / f64::from(self.n),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Treatment stopped while production runs.

/// Parameters of a [`TreatmentStopped`] rule, validated by [`TreatmentParams::new`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TreatmentParams {
    treatment_running_kw: f64,
    lines: BTreeMap<SourceId, f64>,
    min_duration_ms: i64,
    max_staleness_ms: i64,
}

/// Parameters that cannot describe a [`TreatmentStopped`] rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TreatmentError {
    /// A running threshold is NaN or infinite.
    #[error("the running threshold of {meter} must be a finite number of kW, got {kw}")]
    NotFinite {
        /// The meter ("treatment" or the production line's source id).
        meter: String,
        /// The threshold.
        kw: f64,
    },
    /// No production line to check the treatment facility against.
    #[error("a treatment facility must serve at least one production line")]
    NoLines,
    /// A negative minimum duration.
    #[error("the minimum duration must not be negative, got {min_duration_ms} ms")]
    NegativeDuration {
        /// The duration.
        min_duration_ms: i64,
    },
    /// A staleness limit that leaves no reading ever current.
    #[error("the staleness limit must be positive, got {max_staleness_ms} ms")]
    NonPositiveStaleness {
        /// The limit.
        max_staleness_ms: i64,
    },
}

impl TreatmentParams {
    /// A treatment meter that runs at or above `treatment_running_kw`, serving the production
    /// `lines` (source id and running threshold in kW, from the registry: the treatment point's
    /// `related` MNs and their `running_threshold_kw`). The violation must hold for more than
    /// `min_duration_ms` of event time; a power reading counts for `max_staleness_ms` after its
    /// time (a meter silent for longer is unknown).
    pub fn new(
        treatment_running_kw: f64,
        lines: impl IntoIterator<Item = (SourceId, f64)>,
        min_duration_ms: i64,
        max_staleness_ms: i64,
    ) -> Result<Self, TreatmentError> {
        let lines: BTreeMap<SourceId, f64> = lines.into_iter().collect();
        let not_finite = std::iter::once(("treatment".to_owned(), treatment_running_kw))
            .chain(lines.iter().map(|(line, &kw)| (line.to_string(), kw)))
            .find(|(_, kw)| !kw.is_finite());
        if let Some((meter, kw)) = not_finite {
            return Err(TreatmentError::NotFinite { meter, kw });
        }
        if lines.is_empty() {
            return Err(TreatmentError::NoLines);
        }
        if min_duration_ms < 0 {
            return Err(TreatmentError::NegativeDuration { min_duration_ms });
        }
        if max_staleness_ms <= 0 {
            return Err(TreatmentError::NonPositiveStaleness { max_staleness_ms });
        }
        Ok(Self {
            treatment_running_kw,
            lines,
            min_duration_ms,
            max_staleness_ms,
        })
    }

    /// The production lines served (their source ids).
    pub fn lines(&self) -> impl Iterator<Item = &SourceId> {
        self.lines.keys()
    }
}

/// What is known of a meter or line: running or not, from `at` until `until` (exclusive) or
/// its next input.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Fact {
    at: Timestamp,
    until: Timestamp,
    running: bool,
    /// The power read (the treatment's value in alerts; unused for lines).
    kw: f64,
}

impl Fact {
    /// Whether it runs at `t`, if known then.
    fn at(&self, t: Timestamp) -> Option<bool> {
        (t < self.until).then_some(self.running)
    }

    /// Replace `old` by `self` unless `old` is newer; two facts of one instant merge, running
    /// winning, so that their order does not matter.
    fn replace(self, old: Option<Fact>) -> Fact {
        match old {
            Some(old) if old.at > self.at => old,
            Some(old) if old.at == self.at => Fact {
                until: old.until.max(self.until),
                running: old.running || self.running,
                kw: old.kw.max(self.kw),
                ..self
            },
            _ => self,
        }
    }
}

/// What is known of a production line: its latest power reading (current for the staleness
/// limit) and its latest production state event (current until the next one). It runs when
/// either says so, is stopped when what is current says so, unknown when nothing is current.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Line {
    reading: Option<Fact>,
    state: Option<Fact>,
}

impl Line {
    /// Whether it runs at `t`, if known then.
    fn at(&self, t: Timestamp) -> Option<bool> {
        let reading = self.reading.and_then(|f| f.at(t));
        let state = self.state.and_then(|f| f.at(t));
        match (reading, state) {
            (None, None) => None,
            (r, s) => Some(r == Some(true) || s == Some(true)),
        }
    }

    /// Until when it is known to run, if it runs at `t`.
    fn running_until(&self, t: Timestamp) -> Option<Timestamp> {
        [self.reading, self.state]
            .into_iter()
            .flatten()
            .filter(|f| f.at(t) == Some(true))
            .map(|f| f.until)
            .max()
    }
}

/// The verdict on one instant.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
enum Verdict {
    /// Treatment stopped while a line runs, as known until `until` (exclusive) at the latest.
    Violating { until: Timestamp, treatment_kw: f64 },
    /// Treatment running, or every line stopped.
    Compliant,
    /// Neither can be asserted: a meter needed is silent.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
enum Run {
    Idle,
    /// Violating since `open.since`, known until `until`; not yet long enough.
    Pending {
        open: Open,
        until: Timestamp,
    },
    /// An alert is open.
    Firing(Open),
}

/// The state machine of one treatment facility and the production lines it serves.
///
/// The condition is treatment power below its running threshold while at least one served
/// line runs (power at or above its own threshold, or a [`EventKind::ProductionState`] event
/// saying so). It fires once it has held for more than the minimum duration, with `started_at`
/// when it began and the treatment power then; it resolves at the input that shows the
/// treatment running again or every line stopped. Peak and mean are the lowest and the mean
/// treatment power read while it held.
///
/// The latest input of each meter holds until the next one (a step function), power readings
/// for at most the staleness limit, production state events (sent on change) until the next
/// one. When a meter needed is unknown the condition cannot be asserted: a pending condition
/// is dropped (it starts again once the data returns), and an open alert stays open; it never
/// resolves on missing data, only on data showing compliance. Invalid readings (flag other than
/// N) and readings or events of lines not given in the parameters are ignored.
///
/// Inputs must come in event-time order (the dataflow sorts them): the machine does not go back
/// to judge the past again for one that does not.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TreatmentStopped {
    params: TreatmentParams,
    treatment: Option<Fact>,
    lines: BTreeMap<SourceId, Line>,
    /// The instant of the inputs taken but not yet judged.
    unsettled: Option<Timestamp>,
    run: Run,
}

impl TreatmentStopped {
    /// A machine that knows nothing yet.
    pub fn new(params: TreatmentParams) -> Self {
        let lines = params
            .lines
            .keys()
            .map(|line| (line.clone(), Line::default()))
            .collect();
        Self {
            params,
            treatment: None,
            lines,
            unsettled: None,
            run: Run::Idle,
        }
    }

    /// Whether an alert is open.
    pub fn is_firing(&self) -> bool {
        matches!(self.run, Run::Firing(_))
    }

    /// Take an active power reading (kW) of the treatment facility's meter.
    pub fn on_treatment(&mut self, reading: &Reading, out: &mut Vec<(AlertKind, Transition)>) {
        if reading.is_valid() {
            let fact = self.reading_fact(reading, self.params.treatment_running_kw);
            self.take(fact.at, out);
            self.treatment = Some(fact.replace(self.treatment));
        }
    }

    /// Take an active power reading (kW) of a production line's meter.
    pub fn on_production(&mut self, reading: &Reading, out: &mut Vec<(AlertKind, Transition)>) {
        let Some(&threshold) = self.params.lines.get(&reading.source) else {
            return;
        };
        if reading.is_valid() {
            let fact = self.reading_fact(reading, threshold);
            self.take_line(&reading.source, fact, false, out);
        }
    }

    /// Take a production state event of a line (started or stopped at `at`).
    pub fn on_production_state(
        &mut self,
        source: &SourceId,
        at: Timestamp,
        running: bool,
        out: &mut Vec<(AlertKind, Transition)>,
    ) {
        let fact = Fact {
            at,
            until: Timestamp(i64::MAX),
            running,
            kw: 0.0,
        };
        self.take_line(source, fact, true, out);
    }

    /// Event time has reached `watermark`: no input at or before it is still to come.
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        self.pass(watermark.plus_millis(1), out);
    }

    fn reading_fact(&self, reading: &Reading, threshold: f64) -> Fact {
        Fact {
            at: reading.event_time,
            until: reading.event_time.plus_millis(self.params.max_staleness_ms),
            running: reading.value >= threshold,
            kw: reading.value,
        }
    }

    /// Take a fact of a line: a production state event (`state`) or a power reading.
    fn take_line(
        &mut self,
        line: &SourceId,
        fact: Fact,
        state: bool,
        out: &mut Vec<(AlertKind, Transition)>,
    ) {
        if !self.lines.contains_key(line) {
            return;
        }
        self.take(fact.at, out);
        if let Some(known) = self.lines.get_mut(line) {
            let slot = if state {
                &mut known.state
            } else {
                &mut known.reading
            };
            *slot = Some(fact.replace(*slot));
        }
    }

    /// An input at `at` is about to be taken: judge what came before.
    fn take(&mut self, at: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        self.pass(at, out);
        self.unsettled = Some(self.unsettled.map_or(at, |taken| taken.max(at)));
    }

    /// Every input before `before` has been taken: judge the last instant before it, then the
    /// time up to it.
    fn pass(&mut self, before: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        if let Some(at) = self.unsettled.filter(|&at| at < before) {
            self.unsettled = None;
            self.settle(at, out);
        }
        let Run::Pending { open, until } = self.run else {
            return;
        };
        let held = until
            .min(before)
            .as_millis()
            .saturating_sub(open.since.as_millis());
        if held > self.params.min_duration_ms {
            self.run = Run::Firing(open);
            out.push((AlertKind::TreatmentStopped, open.fired()));
        } else if until < before {
            // A meter fell silent before the condition had lasted long enough.
            self.run = Run::Idle;
        }
    }

    /// Judge the instant `at`, all of whose inputs have been taken.
    fn settle(&mut self, at: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        let verdict = self.verdict(at);
        // A treatment reading at this instant counts towards peak and mean.
        let read = self.treatment.filter(|fact| fact.at == at).map(|f| f.kw);
        let count = |mut open: Open| {
            if let Some(kw) = read {
                open.add(kw, f64::min);
            }
            open
        };
        self.run = match (self.run, verdict) {
            (
                Run::Idle,
                Verdict::Violating {
                    until,
                    treatment_kw,
                },
            ) => Run::Pending {
                open: Open::new(at, treatment_kw),
                until,
            },
            (Run::Pending { open, .. }, Verdict::Violating { until, .. }) => Run::Pending {
                open: count(open),
                until,
            },
            (Run::Firing(open), Verdict::Compliant) => {
                out.push((AlertKind::TreatmentStopped, open.resolved(at)));
                Run::Idle
            }
            (Run::Firing(open), _) => Run::Firing(count(open)),
            (Run::Idle | Run::Pending { .. }, _) => Run::Idle,
        };
    }

    fn verdict(&self, at: Timestamp) -> Verdict {
        if self.lines.values().all(|line| line.at(at) == Some(false)) {
            return Verdict::Compliant;
        }
        let Some(treatment) = self.treatment.filter(|f| f.at(at).is_some()) else {
            return Verdict::Unknown;
        };
        if treatment.running {
            return Verdict::Compliant;
        }
        // Known to violate as long as the treatment stays known and one running line does.
        let running = self
            .lines
            .values()
            .filter_map(|line| line.running_until(at));
        match running.max() {
            Some(line_until) => Verdict::Violating {
                until: line_until.min(treatment.until),
                treatment_kw: treatment.kw,
            },
            None => Verdict::Unknown,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Methane without the power cut.

/// Parameters of a [`PowerCutFailure`] rule, validated by [`PowerCutParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PowerCutParams {
    power_cut_pct: f64,
    restore_pct: f64,
    max_feedback_delay_ms: i64,
}

/// Parameters that cannot describe a [`PowerCutFailure`] rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PowerCutError {
    /// A threshold is NaN or infinite.
    #[error("methane thresholds must be finite numbers, got power cut {power_cut_pct} and restore {restore_pct}")]
    NotFinite {
        /// The power-cut threshold.
        power_cut_pct: f64,
        /// The restore threshold.
        restore_pct: f64,
    },
    /// The restore threshold is above the power-cut one.
    #[error("the restore threshold {restore_pct} must not exceed the power-cut threshold {power_cut_pct}")]
    RestoreAboveCut {
        /// The power-cut threshold.
        power_cut_pct: f64,
        /// The restore threshold.
        restore_pct: f64,
    },
    /// A negative feedback delay.
    #[error("the feedback delay must not be negative, got {max_feedback_delay_ms} ms")]
    NegativeDelay {
        /// The delay.
        max_feedback_delay_ms: i64,
    },
}

impl PowerCutParams {
    /// Power must be cut once methane reaches `power_cut_pct` (%), reported cut within
    /// `max_feedback_delay_ms`, and may be restored only once methane is below `restore_pct`
    /// (AQ 1029 at a working face: cut at 1.5 %, restore below 1.0 %).
    pub fn new(
        power_cut_pct: f64,
        restore_pct: f64,
        max_feedback_delay_ms: i64,
    ) -> Result<Self, PowerCutError> {
        if !power_cut_pct.is_finite() || !restore_pct.is_finite() {
            return Err(PowerCutError::NotFinite {
                power_cut_pct,
                restore_pct,
            });
        }
        if restore_pct > power_cut_pct {
            return Err(PowerCutError::RestoreAboveCut {
                power_cut_pct,
                restore_pct,
            });
        }
        if max_feedback_delay_ms < 0 {
            return Err(PowerCutError::NegativeDelay {
                max_feedback_delay_ms,
            });
        }
        Ok(Self {
            power_cut_pct,
            restore_pct,
            max_feedback_delay_ms,
        })
    }
}

/// The inputs of one instant: its highest methane value and its power state (cut winning when
/// reports disagree), so that their order does not matter.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Moment {
    at: Timestamp,
    ch4: Option<f64>,
    powered: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
enum Phase {
    /// Methane below the power-cut threshold (or back below the restore one).
    Safe,
    /// Methane reached the power-cut threshold at `open.since`; the cut is due by `deadline`.
    Awaiting { open: Open, deadline: Timestamp },
    /// Power cut while methane is at or above the restore threshold.
    Cut,
    /// An alert is open.
    Failing(Open),
}

/// The state machine of one methane sensor and the power feed of the area it guards.
///
/// When methane reaches the power-cut threshold at `t`, the area must report its power cut by
/// `t + max_feedback_delay` (a cut reported at the deadline itself is in time; an area already
/// reported cut needs no new report). If it has not by then, whether the latest report says
/// powered or there has been no report at all (no feedback is what the rule forbids), the rule
/// fires with `started_at = t` and the methane value then. That is judged once event time has
/// passed the deadline: on a watermark at or after it, or on the next input after it. The alert
/// resolves at the report of the cut, or at the methane reading below the restore threshold.
///
/// Power reported back (powered) after a cut while methane is still at or above the restore
/// threshold fires at once, with `started_at` at that report and the latest methane value; it
/// resolves the same ways. Methane that falls below the restore threshold before the deadline
/// ends the episode without an alert. Peak and mean are the highest and the mean methane while
/// the alert (or the wait for the cut that became it) ran. Invalid methane readings are ignored.
///
/// At one instant, methane is applied before the power state, so power restored at the very
/// reading that shows methane below the restore threshold is in order. Inputs must come in
/// event-time order (the dataflow sorts them): the machine does not go back to judge the past
/// again for one that does not.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PowerCutFailure {
    params: PowerCutParams,
    /// The inputs taken but not yet judged.
    moment: Option<Moment>,
    /// The latest power report, if any.
    powered: Option<bool>,
    /// The latest valid methane value.
    ch4: f64,
    phase: Phase,
}

impl PowerCutFailure {
    /// A machine that has seen nothing yet.
    pub fn new(params: PowerCutParams) -> Self {
        Self {
            params,
            moment: None,
            powered: None,
            ch4: 0.0,
            phase: Phase::Safe,
        }
    }

    /// Whether an alert is open.
    pub fn is_firing(&self) -> bool {
        matches!(self.phase, Phase::Failing(_))
    }

    /// Take a methane reading (%) of the sensor. Invalid readings are ignored.
    pub fn on_methane(&mut self, reading: &Reading, out: &mut Vec<(AlertKind, Transition)>) {
        if !reading.is_valid() {
            return;
        }
        let value = reading.value;
        let moment = self.take(reading.event_time, out);
        moment.ch4 = Some(moment.ch4.map_or(value, |ch4| ch4.max(value)));
    }

    /// Take the power state of the area at `at`: a `mine_power` reading (1 powered, 0 cut) or
    /// a [`EventKind::PowerCutFeedback`] event.
    pub fn on_power_state(
        &mut self,
        at: Timestamp,
        powered: bool,
        out: &mut Vec<(AlertKind, Transition)>,
    ) {
        let moment = self.take(at, out);
        moment.powered = Some(moment.powered.map_or(powered, |p| p && powered));
    }

    /// Event time has reached `watermark`: no input at or before it is still to come.
    pub fn on_watermark(&mut self, watermark: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        self.pass(watermark.plus_millis(1), out);
    }

    /// An input at `at` is about to be taken: judge what came before; the moment to record it.
    fn take(&mut self, at: Timestamp, out: &mut Vec<(AlertKind, Transition)>) -> &mut Moment {
        self.pass(at, out);
        self.moment.get_or_insert(Moment {
            at,
            ch4: None,
            powered: None,
        })
    }

    /// Every input before `before` has been taken: judge the instant and deadline before it.
    fn pass(&mut self, before: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        if let Some(moment) = self.moment.filter(|m| m.at < before) {
            self.moment = None;
            self.check_deadline(moment.at, out);
            self.settle(moment, out);
        }
        self.check_deadline(before, out);
    }

    /// Fire if the cut was due before `before` and has not been reported.
    fn check_deadline(&mut self, before: Timestamp, out: &mut Vec<(AlertKind, Transition)>) {
        if let Phase::Awaiting { open, deadline } = self.phase {
            if deadline < before {
                self.phase = Phase::Failing(open);
                out.push((AlertKind::PowerCutFailure, open.fired()));
            }
        }
    }

    fn settle(&mut self, moment: Moment, out: &mut Vec<(AlertKind, Transition)>) {
        let p = self.params;
        let at = moment.at;
        if let Some(ch4) = moment.ch4 {
            self.ch4 = ch4;
            self.phase = match self.phase {
                Phase::Safe if ch4 < p.power_cut_pct => Phase::Safe,
                Phase::Safe if self.powered == Some(false) => Phase::Cut,
                Phase::Safe => Phase::Awaiting {
                    open: Open::new(at, ch4),
                    deadline: at.plus_millis(p.max_feedback_delay_ms),
                },
                Phase::Failing(open) if ch4 < p.restore_pct => {
                    out.push((AlertKind::PowerCutFailure, open.resolved(at)));
                    Phase::Safe
                }
                _ if ch4 < p.restore_pct => Phase::Safe,
                Phase::Awaiting { mut open, deadline } => {
                    open.add(ch4, f64::max);
                    Phase::Awaiting { open, deadline }
                }
                Phase::Failing(mut open) => {
                    open.add(ch4, f64::max);
                    Phase::Failing(open)
                }
                Phase::Cut => Phase::Cut,
            };
        }
        if let Some(powered) = moment.powered {
            self.powered = Some(powered);
            self.phase = match self.phase {
                Phase::Awaiting { .. } if !powered => Phase::Cut,
                Phase::Cut if powered => {
                    // Restored while methane is still high.
                    let open = Open::new(at, self.ch4);
                    out.push((AlertKind::PowerCutFailure, open.fired()));
                    Phase::Failing(open)
                }
                Phase::Failing(open) if !powered => {
                    out.push((AlertKind::PowerCutFailure, open.resolved(at)));
                    Phase::Cut
                }
                phase => phase,
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Maintenance notices.

/// One notified window `[from, to)` on some points (none listed: every point).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Window {
    from: Timestamp,
    to: Timestamp,
    points: Vec<SourceId>,
}

/// The maintenance windows of enterprises, from their [`EventKind::MaintenanceNotice`] events.
/// An alert whose `started_at` is covered is muted (not notified) but still recorded; the caller
/// decides, this only answers [`Self::covers`]. Bounded by [`Self::prune`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Suppressions {
    windows: BTreeMap<String, Vec<Window>>,
}

impl Suppressions {
    /// No notice yet: nothing is covered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a notice of `enterprise_id` for `[from, to)` on `points` (empty: every point of
    /// the enterprise). An empty or inverted window covers nothing and is not kept; a notice
    /// delivered again is kept once.
    pub fn add(
        &mut self,
        enterprise_id: &str,
        from: Timestamp,
        to: Timestamp,
        points: Vec<SourceId>,
    ) {
        if to <= from {
            return;
        }
        let window = Window { from, to, points };
        let windows = self.windows.entry(enterprise_id.to_owned()).or_default();
        if !windows.contains(&window) {
            windows.push(window);
        }
    }

    /// Record the notice an event carries, if it is a maintenance notice naming its enterprise;
    /// returns whether it was one.
    pub fn add_notice(&mut self, event: &Event) -> bool {
        let (
            Some(enterprise_id),
            EventKind::MaintenanceNotice {
                from, to, points, ..
            },
        ) = (&event.enterprise_id, &event.kind)
        else {
            return false;
        };
        self.add(enterprise_id, *from, *to, points.clone());
        true
    }

    /// Whether a notice of `enterprise_id` covers `source` at `at`.
    pub fn covers(&self, enterprise_id: &str, source: &SourceId, at: Timestamp) -> bool {
        self.windows.get(enterprise_id).is_some_and(|windows| {
            windows.iter().any(|w| {
                (w.from..w.to).contains(&at) && (w.points.is_empty() || w.points.contains(source))
            })
        })
    }

    /// Forget the windows that ended at or before `watermark`. Alerts fire after they start, so
    /// pass the earliest `started_at` still to be asked about (the watermark less the longest
    /// rule duration), not the watermark itself.
    pub fn prune(&mut self, watermark: Timestamp) {
        self.windows.retain(|_, windows| {
            windows.retain(|w| w.to > watermark);
            !windows.is_empty()
        });
    }

    /// How many windows are kept.
    pub fn len(&self) -> usize {
        self.windows.values().map(Vec::len).sum()
    }

    /// Whether no window is kept.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use argus_model::{DataFlag, Metric, MetricCode};

    use super::*;

    const MIN: i64 = 60_000;

    fn at(minute: i64) -> Timestamp {
        Timestamp(minute * MIN)
    }

    fn reading(source: &str, metric: Metric, minute: i64, value: f64, flag: DataFlag) -> Reading {
        Reading {
            source: SourceId::new(source),
            metric: MetricCode::Known(metric),
            value,
            flag,
            event_time: at(minute),
            receive_time: at(minute),
            interval: Default::default(),
            corrected: None,
        }
    }

    /// One input (or watermark) at a minute.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Treatment power, kW.
        Tr(i64, f64),
        /// A production line's power, kW.
        Pl(&'static str, i64, f64),
        /// A production line's state event.
        Ev(&'static str, i64, bool),
        /// Methane, %.
        Ch4(i64, f64),
        /// Power-cut feedback: powered or not.
        Pw(i64, bool),
        /// An invalid (flag D) reading of the treatment meter or methane sensor.
        Bad(i64, f64),
        /// Watermark.
        W(i64),
    }
    use Step::{Bad, Ch4, Ev, Pl, Pw, Tr, W};

    impl Step {
        fn minute(self) -> i64 {
            match self {
                Tr(m, _) | Pl(_, m, _) | Ev(_, m, _) | Ch4(m, _) | Pw(m, _) | Bad(m, _) | W(m) => m,
            }
        }
    }

    /// A machine under test: what kind it reports and how it takes a step.
    trait Machine {
        const KIND: AlertKind;
        fn step(&mut self, step: Step, out: &mut Vec<(AlertKind, Transition)>);
    }

    impl Machine for TreatmentStopped {
        const KIND: AlertKind = AlertKind::TreatmentStopped;
        fn step(&mut self, step: Step, out: &mut Vec<(AlertKind, Transition)>) {
            let power = |source, m, kw, flag| reading(source, Metric::ActivePower, m, kw, flag);
            match step {
                Tr(m, kw) => self.on_treatment(&power("T1", m, kw, DataFlag::N), out),
                Bad(m, kw) => self.on_treatment(&power("T1", m, kw, DataFlag::D), out),
                Pl(line, m, kw) => self.on_production(&power(line, m, kw, DataFlag::N), out),
                Ev(line, m, running) => {
                    self.on_production_state(&SourceId::new(line), at(m), running, out)
                }
                W(m) => self.on_watermark(at(m), out),
                Ch4(..) | Pw(..) => panic!("not a treatment input: {step:?}"),
            }
        }
    }

    impl Machine for PowerCutFailure {
        const KIND: AlertKind = AlertKind::PowerCutFailure;
        fn step(&mut self, step: Step, out: &mut Vec<(AlertKind, Transition)>) {
            let ch4 = |m, pct, flag| reading("MINE01-CH4-WF1", Metric::MineCh4, m, pct, flag);
            match step {
                Ch4(m, pct) => self.on_methane(&ch4(m, pct, DataFlag::N), out),
                Bad(m, pct) => self.on_methane(&ch4(m, pct, DataFlag::D), out),
                Pw(m, powered) => self.on_power_state(at(m), powered, out),
                W(m) => self.on_watermark(at(m), out),
                Tr(..) | Pl(..) | Ev(..) => panic!("not a methane input: {step:?}"),
            }
        }
    }

    /// Run the steps, collecting transitions with the minute of the step that reported them.
    fn run<M: Machine>(mut machine: M, steps: &[Step]) -> Vec<(i64, Transition)> {
        let mut got = Vec::new();
        let mut out = Vec::new();
        for &step in steps {
            machine.step(step, &mut out);
            for (kind, t) in out.drain(..) {
                assert_eq!(kind, M::KIND);
                got.push((step.minute(), t));
            }
        }
        got
    }

    /// A table row: what it shows, the steps and the transitions they should report.
    type Case<'a> = (&'a str, &'a [Step], &'a [(i64, Transition)]);

    /// Run every row on a fresh machine.
    fn check<M: Machine>(new: impl Fn() -> M, cases: &[Case]) {
        for (name, steps, want) in cases {
            assert_eq!(run(new(), steps), *want, "{name}");
        }
    }

    fn fired(step: i64, started: i64, value: f64) -> (i64, Transition) {
        let t = Transition::Fired {
            started_at: at(started),
            value,
        };
        (step, t)
    }

    fn resolved(step: i64, started: i64, ended: i64, peak: f64, mean: f64) -> (i64, Transition) {
        let t = Transition::Resolved {
            started_at: at(started),
            ended_at: at(ended),
            peak,
            mean,
        };
        (step, t)
    }

    /// Treatment runs at 10 kW, lines L1 and L2 at 50 kW, for more than 10 minutes.
    fn treatment(staleness: i64) -> TreatmentStopped {
        let lines = [(SourceId::new("L1"), 50.0), (SourceId::new("L2"), 50.0)];
        TreatmentParams::new(10.0, lines, 10 * MIN, staleness * MIN)
            .map(TreatmentStopped::new)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Cut at 1.5 %, restore below 1.0 %, feedback within 2 minutes.
    fn power_cut() -> PowerCutFailure {
        PowerCutParams::new(1.5, 1.0, 2 * MIN)
            .map(PowerCutFailure::new)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn treatment_stopped_fires_and_resolves_at_the_right_event_times() {
        let cases: &[Case] = &[
            (
                "fires once stopped for more than 10 minutes, resolves when treatment runs",
                &[
                    Tr(0, 30.0),
                    Pl("L1", 0, 80.0),
                    Tr(5, 2.0),
                    Pl("L1", 10, 80.0),
                    Tr(10, 1.0),
                    W(14),
                    W(15),
                    Tr(20, 25.0),
                    W(20),
                ],
                &[fired(15, 5, 2.0), resolved(20, 5, 20, 1.0, 1.5)],
            ),
            (
                "exactly the minimum duration is not more than it",
                &[Pl("L1", 0, 80.0), Tr(5, 2.0), Tr(15, 30.0), W(30)],
                &[],
            ),
            (
                "resolves when every line has stopped",
                &[
                    Tr(0, 2.0),
                    Pl("L1", 0, 80.0),
                    Pl("L2", 0, 80.0),
                    Pl("L1", 10, 0.0),
                    Pl("L2", 10, 80.0),
                    Tr(10, 3.0),
                    W(11),
                    Pl("L2", 14, 0.0),
                    W(14),
                ],
                &[fired(11, 0, 2.0), resolved(14, 0, 14, 2.0, 2.5)],
            ),
            (
                "a late input both fires (the past held long enough) and resolves",
                &[Tr(0, 2.0), Pl("L1", 0, 80.0), Tr(12, 30.0), W(12)],
                &[fired(12, 0, 2.0), resolved(12, 0, 12, 2.0, 2.0)],
            ),
            (
                "production state events hold until the next one",
                &[
                    Ev("L1", 0, true),
                    Ev("L2", 0, false),
                    Tr(0, 2.0),
                    Tr(10, 2.0),
                    W(11),
                    Ev("L1", 30, false),
                    W(30),
                ],
                &[fired(11, 0, 2.0), resolved(30, 0, 30, 2.0, 2.0)],
            ),
            (
                "a condition that held long enough before the data went silent fires",
                &[Tr(0, 2.0), Pl("L1", 0, 80.0), W(40)],
                &[fired(40, 0, 2.0)],
            ),
        ];
        check(|| treatment(15), cases);
    }

    #[test]
    fn a_silent_meter_interrupts_a_pending_condition_but_never_resolves_an_alert() {
        // Staleness 5 minutes: the gap from 0 to 10 breaks the first run; 10 to 20 holds.
        let steps = [
            Tr(0, 2.0),
            Pl("L1", 0, 80.0),
            Tr(10, 2.0),
            Pl("L1", 10, 80.0),
            Tr(15, 2.0),
            Pl("L1", 15, 80.0),
            Tr(20, 2.0),
            Pl("L1", 20, 80.0),
            W(21),
            // Silence: the alert stays open, it does not resolve on missing data.
            W(40),
            Tr(45, 30.0),
            W(45),
        ];
        let want = vec![fired(21, 10, 2.0), resolved(45, 10, 45, 2.0, 2.0)];
        assert_eq!(run(treatment(5), &steps), want);
    }

    #[test]
    fn treatment_stopped_is_quiet_on_compliant_or_unknown_data() {
        let cases: &[(&str, &[Step])] = &[
            (
                "treatment running with production running",
                &[
                    Tr(0, 30.0),
                    Pl("L1", 0, 80.0),
                    Tr(10, 30.0),
                    Pl("L1", 10, 80.0),
                    W(30),
                ],
            ),
            (
                "both stopped",
                &[
                    Tr(0, 1.0),
                    Pl("L1", 0, 5.0),
                    Pl("L2", 0, 0.0),
                    Tr(10, 1.0),
                    Pl("L1", 10, 5.0),
                    Pl("L2", 10, 0.0),
                    W(30),
                ],
            ),
            (
                "treatment meter never heard from",
                &[Pl("L1", 0, 80.0), Pl("L1", 10, 80.0), W(30)],
            ),
            (
                "invalid readings and undeclared lines are ignored",
                &[
                    Tr(0, 30.0),
                    Pl("L9", 0, 80.0),
                    Pl("L1", 0, 80.0),
                    Bad(1, 0.0),
                    Tr(10, 30.0),
                    Pl("L1", 10, 80.0),
                    W(30),
                ],
            ),
        ];
        let cases: Vec<Case> = cases
            .iter()
            .map(|&(name, steps)| (name, steps, &[][..]))
            .collect();
        check(|| treatment(15), &cases);
    }

    #[test]
    fn treatment_stopped_ignores_the_order_of_inputs_at_one_instant() {
        // At minute 12 line L1 stops and L2 starts: production never stopped.
        let before: &[Step] = &[Tr(0, 2.0), Pl("L1", 0, 80.0), Pl("L2", 0, 0.0), W(11)];
        let instant = [Pl("L1", 12, 0.0), Pl("L2", 12, 80.0), Tr(12, 2.0)];
        for order in [[0, 1, 2], [1, 0, 2], [2, 1, 0]] {
            let mut steps = before.to_vec();
            steps.extend(order.map(|i| instant[i]));
            steps.push(W(13));
            assert_eq!(run(treatment(15), &steps), vec![fired(11, 0, 2.0)]);
        }
    }

    #[test]
    fn treatment_parameters_are_validated() {
        let line = || [(SourceId::new("L1"), 50.0)];
        assert!(TreatmentParams::new(10.0, line(), 0, 1).is_ok());
        assert_eq!(
            TreatmentParams::new(10.0, [(SourceId::new("L1"), f64::NAN)], 0, 1)
                .map_err(|e| e.to_string()),
            Err("the running threshold of L1 must be a finite number of kW, got NaN".to_owned())
        );
        assert!(TreatmentParams::new(f64::INFINITY, line(), 0, 1).is_err());
        assert_eq!(
            TreatmentParams::new(10.0, [], 0, 1),
            Err(TreatmentError::NoLines)
        );
        assert!(TreatmentParams::new(10.0, line(), -1, 1).is_err());
        assert!(TreatmentParams::new(10.0, line(), 0, 0).is_err());
    }

    #[test]
    fn power_cut_failure_fires_and_resolves_at_the_right_event_times() {
        let cases: &[Case] = &[
            (
                "no cut: fires on the watermark at the deadline, resolves at the late cut",
                &[
                    Pw(0, true),
                    Ch4(1, 1.6),
                    W(2),
                    Ch4(2, 1.9),
                    W(3),
                    Pw(4, false),
                    W(4),
                ],
                &[fired(3, 1, 1.6), resolved(4, 1, 4, 1.9, (1.6 + 1.9) / 2.0)],
            ),
            (
                "judged on the next input after the deadline, resolved by methane",
                &[Pw(0, true), Ch4(1, 1.6), Ch4(4, 1.7), Ch4(5, 0.9), W(5)],
                &[fired(4, 1, 1.6), resolved(5, 1, 5, 1.7, (1.6 + 1.7) / 2.0)],
            ),
            (
                "no power report at all counts as no cut",
                &[Ch4(1, 1.6), W(3)],
                &[fired(3, 1, 1.6)],
            ),
            (
                "power restored while methane is still at or above 1.0 % fires at once",
                &[
                    Pw(0, true),
                    Ch4(1, 1.6),
                    Pw(2, false),
                    Ch4(4, 1.2),
                    Pw(5, true),
                    W(5),
                    Ch4(6, 1.1),
                    Ch4(7, 0.9),
                    W(7),
                ],
                &[fired(5, 5, 1.2), resolved(7, 5, 7, 1.2, (1.2 + 1.1) / 2.0)],
            ),
            (
                "a late cut resolves, an early restore fires again",
                &[
                    Pw(0, true),
                    Ch4(1, 1.6),
                    Pw(5, false),
                    Pw(6, true),
                    Pw(7, false),
                    W(7),
                ],
                &[
                    fired(5, 1, 1.6),
                    resolved(6, 1, 5, 1.6, 1.6),
                    fired(7, 6, 1.6),
                    resolved(7, 6, 7, 1.6, 1.6),
                ],
            ),
        ];
        check(power_cut, cases);
    }

    #[test]
    fn power_cut_failure_is_quiet_on_compliant_data() {
        let cases: &[(&str, &[Step])] = &[
            (
                "cut in time, restored after methane fell below 1.0 %",
                &[
                    Pw(0, true),
                    Ch4(0, 0.5),
                    Ch4(1, 1.6),
                    Pw(2, false),
                    Ch4(3, 1.8),
                    Ch4(5, 0.8),
                    Pw(6, true),
                    W(10),
                ],
            ),
            (
                "cut reported at the deadline itself",
                &[Pw(0, true), Ch4(1, 1.6), Pw(3, false), W(3), W(10)],
            ),
            (
                "methane below the power-cut threshold",
                &[Pw(0, true), Ch4(0, 1.4), Ch4(1, 1.49), Bad(2, 5.0), W(10)],
            ),
            (
                "methane back below 1.0 % before the deadline",
                &[Pw(0, true), Ch4(1, 1.6), Ch4(2, 0.9), W(10)],
            ),
            (
                "the area was already cut",
                &[Pw(0, false), Ch4(1, 1.6), Ch4(5, 1.7), W(10)],
            ),
            (
                "restored at the reading below 1.0 %, either order",
                &[
                    Pw(0, true),
                    Ch4(1, 1.6),
                    Pw(2, false),
                    Pw(5, true),
                    Ch4(5, 0.8),
                    W(10),
                ],
            ),
            (
                "restored at the reading below 1.0 %, other order",
                &[
                    Pw(0, true),
                    Ch4(1, 1.6),
                    Pw(2, false),
                    Ch4(5, 0.8),
                    Pw(5, true),
                    W(10),
                ],
            ),
        ];
        let cases: Vec<Case> = cases
            .iter()
            .map(|&(name, steps)| (name, steps, &[][..]))
            .collect();
        check(power_cut, &cases);
    }

    #[test]
    fn power_cut_failure_ignores_the_order_of_inputs_at_one_instant() {
        // Firing since the deadline; at minute 5 methane falls and the power is cut.
        let before: &[Step] = &[Pw(0, true), Ch4(1, 1.6), W(3)];
        for instant in [[Ch4(5, 0.8), Pw(5, false)], [Pw(5, false), Ch4(5, 0.8)]] {
            let mut steps = before.to_vec();
            steps.extend(instant);
            steps.push(W(6));
            let want = vec![fired(3, 1, 1.6), resolved(6, 1, 5, 1.6, 1.6)];
            assert_eq!(run(power_cut(), &steps), want);
        }
    }

    #[test]
    fn power_cut_parameters_are_validated() {
        assert!(PowerCutParams::new(1.5, 1.0, 0).is_ok());
        assert!(PowerCutParams::new(1.5, 1.5, 0).is_ok());
        assert!(PowerCutParams::new(f64::NAN, 1.0, 0).is_err());
        assert_eq!(
            PowerCutParams::new(1.0, 1.5, 0),
            Err(PowerCutError::RestoreAboveCut {
                power_cut_pct: 1.0,
                restore_pct: 1.5
            })
        );
        assert!(PowerCutParams::new(1.5, 1.0, -1).is_err());
    }

    fn points(ids: &[&str]) -> Vec<SourceId> {
        ids.iter().copied().map(SourceId::new).collect()
    }

    #[test]
    fn suppressions_cover_notified_points_in_half_open_windows() {
        let mut s = Suppressions::new();
        s.add("E1", at(10), at(20), points(&["P1"]));
        s.add("E2", at(10), at(20), vec![]);
        let ms = |minute: i64, plus: i64| at(minute).plus_millis(plus);
        let cases = [
            ("E1", "P1", ms(10, 0), true),
            ("E1", "P1", ms(15, 0), true),
            ("E1", "P1", ms(19, 59_999), true),
            ("E1", "P1", ms(20, 0), false),
            ("E1", "P1", ms(10, -1), false),
            ("E1", "P2", ms(15, 0), false),
            ("E2", "P1", ms(15, 0), true),
            ("E2", "ANY", ms(15, 0), true),
            ("E2", "ANY", ms(20, 0), false),
            ("E3", "P1", ms(15, 0), false),
        ];
        for (enterprise, point, t, want) in cases {
            assert_eq!(
                s.covers(enterprise, &SourceId::new(point), t),
                want,
                "{enterprise} {point} {t}"
            );
        }
        let none = Suppressions::new();
        assert!(!none.covers("E1", &SourceId::new("P1"), at(15)));
    }

    #[test]
    fn suppressions_overlap_deduplicate_and_prune() {
        let mut s = Suppressions::new();
        let p1 = SourceId::new("P1");
        s.add("E1", at(10), at(20), points(&["P1"]));
        s.add("E1", at(15), at(30), points(&["P1"]));
        s.add("E1", at(10), at(20), points(&["P1"])); // delivered again
        s.add("E1", at(40), at(40), vec![]); // empty: covers nothing
        assert_eq!(s.len(), 2);
        assert!(s.covers("E1", &p1, at(25)));
        s.prune(at(19));
        assert_eq!(s.len(), 2);
        s.prune(at(20));
        assert_eq!(s.len(), 1);
        assert!(!s.covers("E1", &p1, at(12)));
        assert!(s.covers("E1", &p1, at(15)));
        s.prune(at(30));
        assert!(s.is_empty());
    }

    #[test]
    fn suppressions_take_maintenance_notice_events() {
        let notice = |enterprise_id: Option<&str>, kind| Event {
            enterprise_id: enterprise_id.map(str::to_owned),
            source: None,
            event_time: at(0),
            receive_time: at(0),
            kind,
        };
        let maintenance = EventKind::MaintenanceNotice {
            from: at(10),
            to: at(20),
            points: vec![],
            reason: "desulfurisation tower overhaul".to_owned(),
            request: String::new(),
        };
        let mut s = Suppressions::new();
        assert!(!s.add_notice(&notice(None, maintenance.clone())));
        let feedback = EventKind::PowerCutFeedback { powered: false };
        assert!(!s.add_notice(&notice(Some("E1"), feedback)));
        assert!(s.add_notice(&notice(Some("E1"), maintenance)));
        assert!(s.covers("E1", &SourceId::new("P7"), at(10)));
    }
}
