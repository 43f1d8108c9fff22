//! The plan of one simulated day: which point gets which violation or look-alike when, the
//! truth entries they commit to, and when. Offsets are minutes from the start of the simulated
//! day (the scenario's start plus whole days), dense in the first hour so that a demo shows
//! alerts at once, then spread over the day; each kind has at least five violations per day,
//! once more per 244 points of a larger registry (a province of repeated counties).

use super::*;

/// Minutes into the day of each slot, per kind of injection.
mod at {
    pub const TANK: &[i64] = &[4, 190, 610];
    pub const TANK_LOOK: &[i64] = &[50, 700];
    pub const PH_MAX: &[i64] = &[14, 900];
    pub const PH_MIN: &[i64] = &[260];
    pub const PH_LOOK: &[i64] = &[120];
    pub const CO: &[i64] = &[33, 1000];
    pub const CO_LOOK: &[i64] = &[400];
    pub const METHANE_NO_CUT: &[i64] = &[6, 52, 130, 230, 520, 1130];
    pub const METHANE_RESTORED_EARLY: &[i64] = &[340];
    pub const METHANE_CUT_IN_TIME: &[i64] = &[21, 480, 840];
    pub const METHANE_ALARM: &[i64] = &[9, 700];
    pub const METHANE_LOOK: &[i64] = &[100, 600];
    pub const METHANE_NEGATIVE: &[i64] = &[27, 760];
    pub const GAS_1: &[i64] = &[3, 300, 950];
    pub const GAS_2: &[i64] = &[17, 1200];
    pub const GAS_LOOK: &[i64] = &[70, 500];
    pub const HOURLY: &[i64] = &[0, 30, 90, 150, 240, 600, 840, 1020];
    pub const HOURLY_MUTED: &[i64] = &[420];
    pub const HOURLY_LOOK: &[i64] = &[180, 660];
    pub const HOURLY_SHORT: &[i64] = &[330];
    pub const CALIBRATION: &[i64] = &[45, 100, 160, 220, 280, 700, 1100];
    pub const CALIBRATION_LOOK: &[i64] = &[150, 600];
    pub const CONSTANT: &[i64] = &[20, 50, 80, 140, 200, 620, 1000];
    pub const CONSTANT_LOOK: &[i64] = &[90, 800];
    pub const ZERO: &[i64] = &[11, 40, 100, 160, 220, 700, 1050];
    pub const ZERO_LOOK: &[i64] = &[60, 900];
    pub const NEGATIVE: &[i64] = &[12, 60, 130, 250, 330, 870];
    pub const NEGATIVE_LOOK: &[i64] = &[300];
    pub const O2_RANGE: &[i64] = &[37, 170, 560];
    pub const O2_RANGE_LOOK: &[i64] = &[210];
    pub const JUMP: &[i64] = &[5, 23, 80, 160, 290, 640, 1180];
    pub const JUMP_LOOK: &[i64] = &[150];
    pub const FLAG: &[i64] = &[15, 30, 45, 70, 95, 600];
    pub const FLAG_LOOK: &[i64] = &[200];
    pub const MISSING: &[i64] = &[8, 25, 55, 85, 140, 980];
    pub const MISSING_LOOK: &[i64] = &[130, 700];
    pub const TREATMENT: &[i64] = &[7, 26, 48, 100, 690, 1110];
    pub const TREATMENT_MUTED: &[i64] = &[200];
    pub const TREATMENT_SHORT: &[i64] = &[140];
    pub const PRODUCTION_STOP: &[i64] = &[360];
    pub const UNREGISTERED: &[i64] = &[2, 16, 41, 120, 380, 1000];
}

impl Generator {
    /// Plan simulated day `d`.
    pub(super) fn plan_day(&mut self, d: i64) {
        let day = self.day_start(d);
        for feed in &mut self.feeds {
            feed.busy.retain(|&(_, to)| to + DAY > day);
        }
        // One set of injections per 244 points (the example county), at least one.
        let reps = ((self.registry.points().count() + 122) / 244).max(1) as i64;
        for rep in 0..reps {
            // Repetitions (larger registries) a few minutes apart, on other points.
            let base = day + rep * 3 * MIN;
            let times =
                |offsets: &[i64]| offsets.iter().map(|m| base + m * MIN).collect::<Vec<_>>();
            for t in times(at::TANK) {
                self.instant(
                    Role::Tank,
                    Metric::TankLevel,
                    1.04,
                    t,
                    "tank level above its limit",
                );
            }
            for t in times(at::TANK_LOOK) {
                self.instant(
                    Role::Tank,
                    Metric::TankLevel,
                    1.0,
                    t,
                    "look-alike: tank level at its limit (complies)",
                );
            }
            for t in times(at::PH_MAX) {
                self.instant(Role::Water, Metric::Ph, 1.06, t, "pH above its range");
            }
            for t in times(at::PH_MIN) {
                self.instant(Role::Water, Metric::Ph, -0.94, t, "pH below its range");
            }
            for t in times(at::PH_LOOK) {
                self.instant(
                    Role::Water,
                    Metric::Ph,
                    1.0,
                    t,
                    "look-alike: pH at the top of its range (complies)",
                );
            }
            for t in times(at::CO) {
                self.instant(
                    Role::Methane,
                    Metric::MineCo,
                    1.25,
                    t,
                    "mine CO above its limit",
                );
            }
            for t in times(at::CO_LOOK) {
                self.instant(
                    Role::Methane,
                    Metric::MineCo,
                    1.0,
                    t,
                    "look-alike: mine CO at its limit (complies)",
                );
            }
            for t in times(at::METHANE_NO_CUT) {
                self.methane(t, Spike::PowerCut(Cut::Never));
            }
            for t in times(at::METHANE_RESTORED_EARLY) {
                self.methane(t, Spike::PowerCut(Cut::RestoredEarly));
            }
            for t in times(at::METHANE_CUT_IN_TIME) {
                self.methane(t, Spike::PowerCut(Cut::InTime));
            }
            for t in times(at::METHANE_ALARM) {
                self.methane(t, Spike::Alarm);
            }
            for t in times(at::METHANE_LOOK) {
                self.methane(t, Spike::Below);
            }
            for t in times(at::METHANE_NEGATIVE) {
                self.methane(t, Spike::Negative);
            }
            for t in times(at::GAS_1) {
                self.gas(t, 1.2, false);
            }
            for t in times(at::GAS_2) {
                self.gas(t, 1.2, true);
            }
            for t in times(at::GAS_LOOK) {
                self.gas(t, 0.96, false);
            }
            let hourly = [Metric::So2, Metric::Nox, Metric::Particulate];
            for (k, t) in times(at::HOURLY).into_iter().enumerate() {
                self.hourly(t, hourly[k % 3], Hourly::Violation { muted: false });
            }
            for t in times(at::HOURLY_MUTED) {
                self.hourly(t, Metric::So2, Hourly::Violation { muted: true });
            }
            for (k, t) in times(at::HOURLY_LOOK).into_iter().enumerate() {
                self.hourly(t, hourly[(k + 1) % 3], Hourly::JustUnder);
            }
            for t in times(at::HOURLY_SHORT) {
                self.hourly(t, Metric::Nox, Hourly::ShortSpike);
            }
            for j in 0..2 {
                self.daily(base, j, 1.4);
            }
            self.daily(base, 2, 0.8);
            for t in times(at::CALIBRATION) {
                self.calibration(t, 50);
            }
            for t in times(at::CALIBRATION_LOOK) {
                self.calibration(t, 10);
            }
            for (k, t) in times(at::CONSTANT).into_iter().enumerate() {
                let role = if k % 3 == 2 { Role::Water } else { Role::Flue };
                self.constant(t, role, 80);
            }
            for t in times(at::CONSTANT_LOOK) {
                self.constant(t, Role::Flue, 45);
            }
            for t in times(at::ZERO) {
                self.zero(t, 40);
            }
            for t in times(at::ZERO_LOOK) {
                self.zero(t, 20);
            }
            for (k, t) in times(at::NEGATIVE).into_iter().enumerate() {
                let role = if k % 3 == 2 { Role::Water } else { Role::Flue };
                self.negative(t, role, -2.4);
            }
            for t in times(at::NEGATIVE_LOOK) {
                self.negative(t, Role::Flue, 0.0);
            }
            for t in times(at::O2_RANGE) {
                self.o2_range(t, 0.5);
            }
            for t in times(at::O2_RANGE_LOOK) {
                self.o2_range(t, 0.0);
            }
            for t in times(at::JUMP) {
                self.jump(t, 1.5);
            }
            for t in times(at::JUMP_LOOK) {
                self.jump(t, -1.0);
            }
            for (k, t) in times(at::FLAG).into_iter().enumerate() {
                let role = if k % 2 == 0 { Role::Gas } else { Role::Tank };
                self.flag_held(t, role, 270);
            }
            for t in times(at::FLAG_LOOK) {
                self.flag_held(t, Role::Gas, 180);
            }
            for (k, t) in times(at::MISSING).into_iter().enumerate() {
                let role = if k % 2 == 0 { Role::Tank } else { Role::Gas };
                self.gap(t, role, 45);
            }
            for t in times(at::MISSING_LOOK) {
                self.gap(t, Role::Gas, 20);
            }
            for t in times(at::TREATMENT) {
                self.treatment(t, Treatment::Violation { muted: false });
            }
            for t in times(at::TREATMENT_MUTED) {
                self.treatment(t, Treatment::Violation { muted: true });
            }
            for t in times(at::TREATMENT_SHORT) {
                self.treatment(t, Treatment::Short);
            }
            for t in times(at::PRODUCTION_STOP) {
                self.treatment(t, Treatment::ProductionStopped);
            }
            for (j, t) in times(at::UNREGISTERED).into_iter().enumerate() {
                self.unregistered(d, rep, j, t);
            }
        }
    }

    // ------------------------------------------------------------------------ choosing points

    fn pool(&self, role: Role) -> Vec<usize> {
        (0..self.feeds.len())
            .filter(|&i| self.feeds[i].role == role)
            .collect()
    }

    fn free(&self, i: usize, from: i64, to: i64) -> bool {
        self.feeds[i]
            .busy
            .iter()
            .all(|&(a, b)| to + MARGIN <= a || b + MARGIN <= from)
    }

    /// The next point of `candidates` (round robin per `name`) that is free over
    /// `[from, to)` and passes `ok`.
    fn find(
        &self,
        name: &'static str,
        candidates: &[usize],
        from: i64,
        to: i64,
        ok: impl Fn(&Generator, usize) -> bool,
    ) -> Option<(usize, usize)> {
        let n = candidates.len();
        let cursor = self.cursors.get(name).copied().unwrap_or(0);
        (0..n)
            .map(|k| (cursor + k) % n)
            .map(|pos| (pos, candidates[pos]))
            .find(|&(_, i)| ok(self, i) && self.free(i, from, to))
    }

    fn take(
        &mut self,
        name: &'static str,
        n: usize,
        pos: usize,
        points: &[usize],
        from: i64,
        to: i64,
    ) {
        self.cursors.insert(name, (pos + 1) % n.max(1));
        for &i in points {
            self.feeds[i].busy.push((from, to));
        }
    }

    /// Find, reserve and return a point.
    fn reserve(
        &mut self,
        name: &'static str,
        role: Role,
        from: i64,
        to: i64,
        ok: impl Fn(&Generator, usize) -> bool,
    ) -> Option<usize> {
        let candidates = self.pool(role);
        let (pos, i) = self.find(name, &candidates, from, to, ok)?;
        self.take(name, candidates.len(), pos, &[i], from, to);
        Some(i)
    }

    fn instance(&self, i: usize, pred: impl Fn(&Instance) -> bool) -> Option<Arc<Instance>> {
        self.feeds[i].instances.iter().find(|x| pred(x)).cloned()
    }

    fn has_series(&self, i: usize, metric: Metric) -> bool {
        self.feeds[i].series.iter().any(|s| s.metric == metric)
    }

    /// The threshold instances of point `i` on `metric` that `value` breaches.
    fn thresholds_hit(&self, i: usize, metric: Metric, value: f64) -> Vec<Arc<Instance>> {
        let point = self.registry.point(&self.feeds[i].mn);
        self.feeds[i]
            .instances
            .iter()
            .filter(|x| x.metric == Some(metric))
            .filter(|x| match &x.machine {
                Machine::Threshold(p) => {
                    let limit = p.limit();
                    let downward = x.rule_id.ends_with(":min")
                        || point.is_some_and(|pt| {
                            pt.limits_for(metric).any(|l| {
                                l.basis == LimitBasis::Instant && l.bound == LimitBound::Min(limit)
                            })
                        });
                    if downward {
                        value < limit
                    } else {
                        value > limit
                    }
                }
                _ => false,
            })
            .cloned()
            .collect()
    }

    fn next_tick(&self, i: usize, t: i64) -> i64 {
        let f = &self.feeds[i];
        if t <= f.first {
            return f.first;
        }
        let k = (t - f.first + f.interval - 1) / f.interval;
        f.first + k * f.interval
    }

    fn add(&mut self, i: usize, from: i64, to: i64, effect: Effect) {
        self.feeds[i]
            .injections
            .push(Injection { from, to, effect });
    }

    fn notice(&mut self, i: usize, filed: i64, from: i64, to: i64, reason: &str) -> bool {
        if filed < self.base {
            return false;
        }
        let f = &self.feeds[i];
        let Some(route) = Route::event(self.scenario.transports, &f.enterprise) else {
            return false;
        };
        let payload = wire::notice_event(
            &f.enterprise,
            Timestamp(filed),
            Timestamp(from),
            Timestamp(to),
            &[f.mn.as_str()],
            reason,
        );
        let message = Message {
            at: Timestamp(filed),
            route,
            payload,
        };
        let notice = Notice {
            enterprise: f.enterprise.clone(),
            point: f.mn.clone(),
            from,
            to,
        };
        let seq = self.next_seq();
        self.extra.insert((filed, seq), (message, Some(notice)));
        true
    }

    /// Commit, with the group at `commit`, to the alert of `instance` from `start` (judged by
    /// `due`).
    fn injected(
        &mut self,
        commit: i64,
        instance: &Instance,
        kind: AlertKind,
        (start, due): (i64, i64),
        muted: bool,
        what: &str,
    ) {
        let e = entry(
            instance,
            kind,
            start,
            due,
            muted,
            Cause::Injected,
            what.to_owned(),
        );
        self.commit(commit, e);
    }

    // ------------------------------------------------------------------------ injections

    /// An instant limit of `metric` passed (`factor` of the limit: above 1 beyond the upper
    /// limit, negative for the lower limit at |factor|, 1 exactly at the limit) for 3 readings.
    fn instant(&mut self, role: Role, metric: Metric, factor: f64, t: i64, what: &str) {
        let limit_of = |g: &Generator, i: usize| {
            let point = g.registry.point(&g.feeds[i].mn)?;
            point
                .limits_for(metric)
                .filter(|l| l.basis == LimitBasis::Instant)
                .find_map(|l| match (l.bound, factor < 0.0) {
                    (LimitBound::Max(m) | LimitBound::Range { max: m, .. }, false) => Some(m),
                    (LimitBound::Min(m) | LimitBound::Range { min: m, .. }, true) => Some(m),
                    _ => None,
                })
        };
        let to = t + 10 * MIN;
        let name = match (role, factor < 0.0) {
            (Role::Water, true) => "instant-low",
            _ => "instant",
        };
        let Some(i) = self.reserve(name, role, t, to, |g, i| {
            limit_of(g, i).is_some() && g.has_series(i, metric)
        }) else {
            return;
        };
        let Some(limit) = limit_of(self, i) else {
            return;
        };
        let value = wire::round(limit * factor.abs());
        let from = self.next_tick(i, t);
        self.spike(i, metric, value, 3, from, what);
    }

    /// `metric` at `value` for `ticks` readings from `from`, and the thresholds it passes.
    fn spike(&mut self, i: usize, metric: Metric, value: f64, ticks: i64, from: i64, what: &str) {
        let interval = self.feeds[i].interval;
        self.add(
            i,
            from,
            from + (ticks - 1) * interval + 1,
            Effect::Value { metric, value },
        );
        for instance in self.thresholds_hit(i, metric, value) {
            self.injected(
                from,
                &instance,
                instance.kind,
                (from, from + SEC),
                false,
                what,
            );
        }
    }

    fn methane(&mut self, t: i64, spike: Spike) {
        let feed_of = |g: &Generator, i: usize| {
            g.feeds[i].instances.iter().find_map(|x| match &x.machine {
                Machine::PowerCutFailure { power_feed, .. } => {
                    g.by_mn.get(power_feed.as_str()).copied()
                }
                _ => None,
            })
        };
        let levels = |g: &Generator, i: usize| {
            g.registry
                .point(&g.feeds[i].mn)?
                .limits_for(Metric::MineCh4)
                .find_map(|l| match l.bound {
                    LimitBound::Methane {
                        alarm,
                        power_cut,
                        restore,
                    } => Some((alarm, power_cut, restore)),
                    _ => None,
                })
        };
        let to = t + 10 * MIN;
        let ok = |g: &Generator, i: usize| {
            let Some((alarm, power_cut, _)) = levels(g, i) else {
                return false;
            };
            let feed_free = feed_of(g, i).is_some_and(|f| g.free(f, t, to));
            match spike {
                Spike::PowerCut(Cut::InTime | Cut::RestoredEarly) => {
                    feed_free
                        && feed_of(g, i).is_some_and(|f| {
                            g.feeds[f].interval <= g.scenario.params.feedback_delay_ms / 2
                        })
                }
                Spike::PowerCut(Cut::Never) => feed_free,
                Spike::Alarm => power_cut > alarm + 0.1,
                Spike::Below | Spike::Negative => true,
            }
        };
        let candidates = self.pool(Role::Methane);
        let Some((pos, i)) = self.find("methane", &candidates, t, to, ok) else {
            return;
        };
        let Some((alarm, power_cut, _restore)) = levels(self, i) else {
            return;
        };
        let power_feed = feed_of(self, i);
        let mut reserved = vec![i];
        reserved.extend(power_feed.filter(|_| matches!(spike, Spike::PowerCut(_))));
        self.take("methane", candidates.len(), pos, &reserved, t, to);
        let from = self.next_tick(i, t);
        let interval = self.feeds[i].interval;
        let (value, what) = match spike {
            Spike::PowerCut(_) => ((power_cut + 0.2).max(1.7), "methane at the power-cut level"),
            Spike::Alarm => ((alarm + power_cut) / 2.0, "methane at the alarm level"),
            Spike::Below => (
                alarm - 0.05,
                "look-alike: methane just under the alarm level",
            ),
            Spike::Negative => {
                let instance = self.instance(i, |x| {
                    matches!(x.machine, Machine::OutOfRange(_)) && x.metric == Some(Metric::MineCh4)
                });
                self.add(
                    i,
                    from,
                    from + 1,
                    Effect::Value {
                        metric: Metric::MineCh4,
                        value: -1.0,
                    },
                );
                if let Some(x) = instance {
                    self.injected(
                        from,
                        &x,
                        x.kind,
                        (from, from + SEC),
                        false,
                        "methane sensor reads -1 %: out of its range",
                    );
                }
                return;
            }
        };
        let value = wire::round(value);
        // Six readings (90 s at 15 s) at the level, then back to normal.
        self.spike(i, Metric::MineCh4, value, 6, from, what);
        let back = from + 6 * interval;
        let Spike::PowerCut(cut) = spike else { return };
        let Some(f) = power_feed else { return };
        let Some(pcf) = self.instance(i, |x| matches!(x.machine, Machine::PowerCutFailure { .. }))
        else {
            return;
        };
        let delay = self.scenario.params.feedback_delay_ms;
        let failure = |start: i64, cause: Cause, what: &str| {
            entry(
                &pcf,
                pcf.kind,
                start,
                start + delay + SEC,
                false,
                cause,
                what.to_owned(),
            )
        };
        match cut {
            Cut::Never => {
                let e = failure(
                    from,
                    Cause::Injected,
                    "methane at the power-cut level, the area's power never cut",
                );
                self.commit(from, e);
            }
            Cut::InTime => {
                let cut_at = self.next_tick(f, from);
                self.add(f, from, back + 15 * SEC, Effect::FeedCut);
                let e = failure(
                    from,
                    Cause::EndOfFeed,
                    "the feed ended before the power cut was reported",
                );
                self.stops.push((from, cut_at, e));
            }
            Cut::RestoredEarly => {
                let cut_at = self.next_tick(f, from);
                let restore = self.next_tick(f, from + 45 * SEC);
                if restore >= back {
                    return;
                }
                self.add(f, from, from + 45 * SEC, Effect::FeedCut);
                let e = failure(
                    from,
                    Cause::EndOfFeed,
                    "the feed ended before the power cut was reported",
                );
                self.stops.push((from, cut_at, e));
                let e = entry(
                    &pcf,
                    pcf.kind,
                    restore,
                    restore + SEC,
                    false,
                    Cause::Injected,
                    "power restored while methane is still above the restore level".to_owned(),
                );
                self.commit(restore, e);
            }
        }
    }

    fn gas(&mut self, t: i64, factor: f64, level2: bool) {
        let levels = |g: &Generator, i: usize| {
            let metric = g.feeds[i].series.first()?.metric;
            g.registry
                .point(&g.feeds[i].mn)?
                .limits_for(metric)
                .find_map(|l| match l.bound {
                    LimitBound::GasAlarm { level1, level2 } => Some((metric, level1, level2)),
                    _ => None,
                })
        };
        let Some(i) = self.reserve("gas", Role::Gas, t, t + 10 * MIN, |g, i| {
            levels(g, i).is_some()
        }) else {
            return;
        };
        let Some((metric, l1, l2)) = levels(self, i) else {
            return;
        };
        let (value, what) = match (level2, factor >= 1.0) {
            (true, _) => (l2 * factor, "gas detector above its level-2 alarm"),
            (false, true) => (
                (l1 * factor).min((l1 + l2) / 2.0),
                "gas detector above its level-1 alarm",
            ),
            (false, false) => (l1 * factor, "look-alike: gas just under the level-1 alarm"),
        };
        let from = self.next_tick(i, t);
        self.spike(i, metric, wire::round(value), 3, from, what);
    }

    fn hourly(&mut self, t: i64, metric: Metric, kind: Hourly) {
        let h = next_hour(t);
        let average = |g: &Generator, i: usize| {
            g.instance(i, |x| {
                matches!(&x.machine, Machine::Average(p) if p.period == Period::Hour)
                    && x.metric == Some(metric)
            })
        };
        let Some(i) = self.reserve("hourly", Role::Flue, h, h + HOUR, |g, i| {
            average(g, i).is_some()
        }) else {
            return;
        };
        let Some(instance) = average(self, i) else {
            return;
        };
        let Machine::Average(p) = &instance.machine else {
            return;
        };
        let limit = p.limit;
        match kind {
            Hourly::Violation { muted } => {
                self.add(
                    i,
                    h,
                    h + HOUR,
                    Effect::Corrected {
                        metric,
                        value: limit * 1.3,
                    },
                );
                let muted = muted
                    && self.notice(
                        i,
                        h - 30 * MIN,
                        h - 10 * MIN,
                        h + 70 * MIN,
                        "desulphurisation tower overhaul",
                    );
                // Committed once the last minute the hour needs has its value.
                let commit =
                    self.next_tick(i, h + (i64::from(p.min_valid_samples.max(1)) - 1) * MIN);
                let what = format!(
                    "{} hourly average 1.3 times its limit{}",
                    metric.code(),
                    if muted {
                        " under a maintenance notice"
                    } else {
                        ""
                    }
                );
                self.injected(
                    commit,
                    &instance,
                    AlertKind::Average,
                    (h, h + HOUR + SEC),
                    muted,
                    &what,
                );
            }
            Hourly::JustUnder => self.add(
                i,
                h,
                h + HOUR,
                Effect::Corrected {
                    metric,
                    value: limit * 0.9,
                },
            ),
            Hourly::ShortSpike => self.add(
                i,
                h + 40 * MIN,
                h + 55 * MIN,
                Effect::Corrected {
                    metric,
                    value: limit * 1.6,
                },
            ),
        }
    }

    fn daily(&mut self, day: i64, j: usize, factor: f64) {
        let start = china_day_start(day);
        let start = if start < day { start + DAY } else { start };
        let metric = [Metric::Cod, Metric::AmmoniaNitrogen, Metric::Cod][j % 3];
        let average = |g: &Generator, i: usize| {
            g.instance(i, |x| {
                matches!(&x.machine, Machine::Average(p) if p.period == Period::Day)
                    && x.metric == Some(metric)
            })
        };
        let Some(i) = self.reserve("daily", Role::Water, start, start + DAY, |g, i| {
            average(g, i).is_some()
        }) else {
            return;
        };
        let Some(instance) = average(self, i) else {
            return;
        };
        let Machine::Average(p) = &instance.machine else {
            return;
        };
        let end = start + period_ms(Period::Day, start);
        self.add(
            i,
            start,
            end,
            Effect::Corrected {
                metric,
                value: p.limit * factor,
            },
        );
        if factor > 1.0 {
            // Committed once the last hour the day needs has the minutes it needs.
            let last_hour = start + (i64::from(p.min_valid_samples.max(1)) - 1) * HOUR;
            let commit = self.next_tick(
                i,
                last_hour + (i64::from(p.min_valid_minutes.max(1)) - 1) * MIN,
            );
            let what = format!("{} daily average {factor} times its limit", metric.code());
            self.injected(
                commit,
                &instance,
                AlertKind::Average,
                (start, end + SEC),
                false,
                &what,
            );
        }
    }

    /// A calibration (flag C) of the SO2 analyser for `minutes` of one natural hour: with 50 the
    /// hour has too few valid values (found by the window count), with 10 enough.
    fn calibration(&mut self, t: i64, minutes: i64) {
        let metric = Metric::So2;
        let h = next_hour(t);
        let ok = |g: &Generator, i: usize| {
            g.instance(i, |x| {
                matches!(&x.machine, Machine::Average(p) if p.period == Period::Hour)
                    && x.metric == Some(metric)
            })
            .is_some()
        };
        let Some(i) = self.reserve("calibration", Role::Flue, h, h + HOUR, ok) else {
            return;
        };
        let from = h + (55 - minutes) * MIN;
        self.add(
            i,
            from,
            h + 55 * MIN,
            Effect::Flag {
                metric,
                flag: DataFlag::C,
            },
        );
    }

    fn constant(&mut self, t: i64, role: Role, minutes: i64) {
        let metric = if role == Role::Water {
            Metric::Cod
        } else {
            Metric::So2
        };
        let find = |g: &Generator, i: usize| {
            g.instance(i, |x| {
                matches!(x.machine, Machine::ConstantValue(_)) && x.metric == Some(metric)
            })
        };
        let to = t + (minutes + 2) * MIN;
        let Some(i) = self.reserve("constant", role, t, to, |g, i| find(g, i).is_some()) else {
            return;
        };
        let from = self.next_tick(i, t);
        self.add(
            i,
            from,
            from + minutes * MIN,
            Effect::Hold { metric, held: None },
        );
        if let Some(instance) =
            find(self, i).filter(|_| minutes * MIN > self.scenario.params.constant_min_ms)
        {
            let p = self.scenario.params;
            let interval = self.feeds[i].interval;
            let k =
                (p.constant_min_readings - 1).max((p.constant_min_ms + interval - 1) / interval);
            let commit = from + k * interval;
            let what = format!("{} stuck at one value for {minutes} min", metric.code());
            self.injected(
                commit,
                &instance,
                instance.kind,
                (from, commit + SEC),
                false,
                &what,
            );
        }
    }

    fn zero(&mut self, t: i64, minutes: i64) {
        let metric = Metric::Nox;
        let find = |g: &Generator, i: usize| {
            g.instance(i, |x| {
                matches!(x.machine, Machine::ZeroWhileOperating { .. }) && x.metric == Some(metric)
            })
        };
        let to = t + (minutes + 2) * MIN;
        let Some(i) = self.reserve("zero", Role::Flue, t, to, |g, i| find(g, i).is_some()) else {
            return;
        };
        let from = self.next_tick(i, t);
        self.add(
            i,
            from,
            from + minutes * MIN,
            Effect::Value { metric, value: 0.0 },
        );
        let min = self.scenario.params.zero_min_ms;
        if let Some(instance) = find(self, i).filter(|_| minutes * MIN > min) {
            let what = format!(
                "{} reads 0 for {minutes} min while the stack operates",
                metric.code()
            );
            self.injected(
                from,
                &instance,
                instance.kind,
                (from, from + min + SEC),
                false,
                &what,
            );
        }
    }

    fn negative(&mut self, t: i64, role: Role, value: f64) {
        let metric = if role == Role::Water {
            Metric::AmmoniaNitrogen
        } else {
            Metric::Particulate
        };
        let find = |g: &Generator, i: usize| {
            g.instance(i, |x| {
                matches!(x.machine, Machine::OutOfRange(_)) && x.metric == Some(metric)
            })
        };
        let Some(i) = self.reserve("negative", role, t, t + 5 * MIN, |g, i| {
            find(g, i).is_some() && g.has_series(i, metric)
        }) else {
            return;
        };
        let from = self.next_tick(i, t);
        self.add(i, from, from + 1, Effect::Value { metric, value });
        if let Some(instance) = find(self, i).filter(|_| value < 0.0) {
            let what = format!("{} reads {value}", metric.code());
            self.injected(
                from,
                &instance,
                instance.kind,
                (from, from + SEC),
                false,
                &what,
            );
        }
    }

    /// O2 ramped (steps under the jump limit) to `over` above the instrument range and back.
    fn o2_range(&mut self, t: i64, over: f64) {
        let find = |g: &Generator, i: usize| {
            g.instance(i, |x| {
                matches!(x.machine, Machine::OutOfRange(_)) && x.metric == Some(Metric::Oxygen)
            })
        };
        let Some(i) = self.reserve("o2-range", Role::Flue, t, t + 15 * MIN, |g, i| {
            find(g, i).is_some()
        }) else {
            return;
        };
        let p = self.scenario.params;
        let from = self.next_tick(i, t);
        let interval = self.feeds[i].interval;
        let peak = p.o2_range_max + over;
        let nominal = o2_nominal(&self.feeds[i], from);
        let step = (p.jump_max_step - 2.0).max(1.0);
        let steps = ((peak - nominal) / step).ceil().max(1.0) as u32;
        let to = from + i64::from(2 * steps + 2) * interval;
        self.add(
            i,
            from,
            to,
            Effect::O2Ramp {
                start: from,
                peak,
                steps,
                interval,
            },
        );
        if let Some(instance) = find(self, i).filter(|_| over > 0.0) {
            let start = from + i64::from(steps) * interval;
            let what = format!("O2 ramps up to {peak} %, beyond the analyser's range");
            self.injected(
                start,
                &instance,
                instance.kind,
                (start, start + SEC),
                false,
                &what,
            );
        }
    }

    /// One O2 reading `over` beyond the jump step (negative: under it, a look-alike).
    fn jump(&mut self, t: i64, over: f64) {
        let find = |g: &Generator, i: usize| {
            g.instance(i, |x| {
                matches!(x.machine, Machine::SuddenJump(_)) && x.metric == Some(Metric::Oxygen)
            })
        };
        let Some(i) = self.reserve("jump", Role::Flue, t, t + 5 * MIN, |g, i| {
            find(g, i).is_some()
        }) else {
            return;
        };
        let p = self.scenario.params;
        let from = self.next_tick(i, t);
        let size = p.jump_max_step + over;
        let nominal = o2_nominal(&self.feeds[i], from);
        let delta = if nominal + size < p.o2_range_max - 1.0 {
            size
        } else {
            -size
        };
        self.add(i, from, from + 1, Effect::O2Delta { delta });
        if let Some(instance) = find(self, i).filter(|_| over > 0.0) {
            let what = format!("O2 jumps by {delta} % for one reading");
            self.injected(
                from,
                &instance,
                instance.kind,
                (from, from + SEC),
                false,
                &what,
            );
        }
    }

    fn flag_held(&mut self, t: i64, role: Role, minutes: i64) {
        let find = |g: &Generator, i: usize| {
            let metric = g.feeds[i].series.first()?.metric;
            g.instance(i, |x| {
                matches!(x.machine, Machine::FlagDuration(_)) && x.metric == Some(metric)
            })
        };
        let to = t + (minutes + 2) * MIN;
        let Some(i) = self.reserve("flag", role, t, to, |g, i| find(g, i).is_some()) else {
            return;
        };
        let Some(instance) = find(self, i) else {
            return;
        };
        let Some(metric) = instance.metric else {
            return;
        };
        let from = self.next_tick(i, t);
        let max = self.scenario.params.flag_max_ms;
        let flag = if minutes * MIN > max {
            DataFlag::D
        } else {
            DataFlag::M
        };
        self.add(i, from, from + minutes * MIN, Effect::Flag { metric, flag });
        if minutes * MIN > max {
            let what = format!("fault flag D held {minutes} min");
            self.injected(
                from,
                &instance,
                instance.kind,
                (from, from + max + SEC),
                false,
                &what,
            );
        }
    }

    fn gap(&mut self, t: i64, role: Role, minutes: i64) {
        let find = |g: &Generator, i: usize| {
            g.instance(i, |x| matches!(x.machine, Machine::MissingData(_)))
        };
        let to = t + (minutes + 2) * MIN;
        let ok =
            |g: &Generator, i: usize| find(g, i).is_some() && g.next_tick(i, t) > g.feeds[i].first;
        let Some(i) = self.reserve("gap", role, t, to, ok) else {
            return;
        };
        let from = self.next_tick(i, t);
        let last = from - self.feeds[i].interval;
        self.add(i, from, from + minutes * MIN, Effect::Silent);
        let gap = self.scenario.params.missing_gap_ms;
        if let Some(instance) = find(self, i).filter(|_| minutes * MIN > gap) {
            let what = format!("the point falls silent for {minutes} min");
            self.injected(
                from,
                &instance,
                instance.kind,
                (last, last + gap + SEC),
                false,
                &what,
            );
        }
    }

    fn treatment(&mut self, t: i64, kind: Treatment) {
        let lines_of = |g: &Generator, i: usize| -> Option<Vec<usize>> {
            g.feeds[i].instances.iter().find_map(|x| match &x.machine {
                Machine::TreatmentStopped(p) => p
                    .lines()
                    .map(|l| g.by_mn.get(l.as_str()).copied())
                    .collect(),
                _ => None,
            })
        };
        let minutes = match kind {
            Treatment::Violation { .. } => 20,
            Treatment::Short => 8,
            Treatment::ProductionStopped => 100,
        };
        let to = t + (minutes + 2) * MIN;
        // The production stop stops the lines, so every facility serving them is kept free.
        let treatments = self.pool(Role::Power);
        let serving = |g: &Generator, lines: &[usize]| -> Vec<usize> {
            treatments
                .iter()
                .copied()
                .filter(|&x| lines_of(g, x).is_some_and(|l| l.iter().any(|y| lines.contains(y))))
                .collect()
        };
        let ok = |g: &Generator, i: usize| {
            let Some(lines) = lines_of(g, i) else {
                return false;
            };
            let mut all = lines.clone();
            if kind == Treatment::ProductionStopped {
                all.extend(serving(g, &lines));
            }
            all.iter().all(|&x| g.free(x, t, to))
        };
        let candidates: Vec<usize> = treatments
            .iter()
            .copied()
            .filter(|&i| lines_of(self, i).is_some())
            .collect();
        let Some((pos, i)) = self.find("treatment", &candidates, t, to, ok) else {
            return;
        };
        let Some(lines) = lines_of(self, i) else {
            return;
        };
        let mut reserved = vec![i];
        reserved.extend(&lines);
        if kind == Treatment::ProductionStopped {
            reserved.extend(serving(self, &lines));
        }
        self.take("treatment", candidates.len(), pos, &reserved, t, to);
        let from = self.next_tick(i, t);
        let p = self.scenario.params;
        let commit = self.next_tick(i, from + p.treatment_staleness_ms + 1);
        let Some(instance) =
            self.instance(i, |x| matches!(x.machine, Machine::TreatmentStopped(_)))
        else {
            return;
        };
        match kind {
            Treatment::Violation { muted } => {
                self.add(i, from, from + minutes * MIN, Effect::PowerOff);
                let muted = muted
                    && self.notice(
                        i,
                        from - 15 * MIN,
                        from - 5 * MIN,
                        from + 30 * MIN,
                        "treatment facility maintenance",
                    );
                let what = format!(
                    "treatment facility stopped {minutes} min while production runs{}",
                    if muted {
                        " under a maintenance notice"
                    } else {
                        ""
                    }
                );
                self.injected(
                    commit,
                    &instance,
                    instance.kind,
                    (from, from + p.treatment_min_ms + SEC),
                    muted,
                    &what,
                );
            }
            Treatment::Short => {
                self.add(i, from, from + minutes * MIN, Effect::PowerOff);
                let e = entry(
                    &instance,
                    instance.kind,
                    from,
                    from + p.treatment_min_ms + SEC,
                    false,
                    Cause::EndOfFeed,
                    "the feed ended while a short treatment stop was still known".to_owned(),
                );
                self.stops.push((commit, from + minutes * MIN, e));
            }
            Treatment::ProductionStopped => {
                for &line in &lines {
                    let start = self.next_tick(line, from);
                    self.add(line, start, start + minutes * MIN, Effect::PowerOff);
                }
                self.add(i, from + 20 * MIN, from + 80 * MIN, Effect::PowerOff);
            }
        }
    }

    fn unregistered(&mut self, d: i64, rep: i64, j: usize, t: i64) {
        let Some(rule_id) = self.unregistered_rule.clone() else {
            return;
        };
        let mut mn = format!("SIM{:04}U{rep}{j:02}", d.rem_euclid(10_000));
        while self.registry.point(&mn).is_some() || self.by_mn.contains_key(&mn) {
            mn.push('X');
        }
        let h = fnv(&mn);
        let Some(route) = route_of(Role::Unregistered, h, self.scenario.transports) else {
            return;
        };
        let first = (t + SEC - 1).div_euclid(SEC) * SEC;
        let feed = Feed {
            mn: mn.clone(),
            enterprise: String::new(),
            role: Role::Unregistered,
            pw: None,
            route,
            interval: MIN,
            first,
            until: Some(first + 10 * MIN),
            series: vec![
                series(Metric::So2, 30.0, Model::Flat),
                series(Metric::Nox, 45.0, Model::Flat),
            ],
            o2_ref: 6.0,
            running_kw: 0.0,
            rng: Rng::new(self.scenario.seed, &mn),
            rfc3339: false,
            instances: Vec::new(),
            injections: Vec::new(),
            busy: Vec::new(),
            last_reading: None,
            latest_o2: None,
            averages: Vec::new(),
            state: None,
            ticks: 0,
            minute: vec![Acc::default(); 2],
            hour: vec![Acc::default(); 2],
        };
        let idx = self.feeds.len();
        self.feeds.push(feed);
        self.by_mn.insert(mn.clone(), idx);
        self.heap.push(Reverse((first, idx)));
        let e = TruthEntry {
            rule_kind: "unregistered_source".to_owned(),
            kind: AlertKind::UnregisteredSource.as_str().to_owned(),
            rule_id: rule_id.to_string(),
            enterprise: String::new(),
            point: mn,
            metric: None,
            start_ms: first,
            due_ms: first + SEC,
            muted: false,
            cause: Cause::Injected,
            what: "a data logger the registry does not know sends for 10 min".to_owned(),
        };
        self.commit(first, e);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spike {
    PowerCut(Cut),
    Alarm,
    Below,
    Negative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hourly {
    Violation { muted: bool },
    JustUnder,
    ShortSpike,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    Violation { muted: bool },
    Short,
    ProductionStopped,
}
