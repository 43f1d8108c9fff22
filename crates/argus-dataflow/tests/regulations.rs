//! Detection against the regulations' own semantics (issue 13): each test is one defect found
//! when detection was checked against `config/rules.toml`'s documentation and HJ 75 / HJ 212,
//! reproduced on the shipped registry and rules as `argus replay` would run it.

use std::sync::Arc;

use argus_dataflow::{run_batch, AlertTransition, BatchOptions, Input};
use argus_model::time::{CivilDateTime, CHINA_OFFSET_SECS};
use argus_model::{
    AlertKind, DataFlag, Event, EventKind, Interval, MetricCode, Reading, SourceId, Timestamp,
};
use argus_rules::Transition;

mod shipped;
use shipped::rules;

/// E002's final outlet (wastewater, COD daily average limit 50 mg/L).
const WASTEWATER: &str = "15010201000201";
/// E001 unit 1 stack (flue gas, SO2 hourly average limit 35 mg/m3 at 6 % O2).
const STACK: &str = "15010201000101";
/// E001 unit 1 generator (production line, running at or above 30,000 kW).
const GENERATOR: &str = "15010201000102";
/// E001 unit 1 desulphurisation (treatment, running at or above 1,200 kW; serves the generator).
const DESULPHURISATION: &str = "15010201000103";

/// 2026-11-26 + `day` at `hour:minute` China time.
fn at(day: i64, hour: u8, minute: u8) -> Timestamp {
    let civil = CivilDateTime {
        year: 2026,
        month: 11,
        day: 26,
        hour,
        minute,
        second: 0,
        millisecond: 0,
    };
    let t = Timestamp::from_civil(civil, CHINA_OFFSET_SECS).unwrap_or_else(|| panic!("time"));
    t.plus_millis(day * 86_400_000)
}

fn reading(source: &str, metric: &str, t: Timestamp, value: f64, flag: DataFlag) -> Input {
    Input::Reading(Reading {
        source: SourceId::from(source),
        metric: MetricCode::parse(metric),
        value,
        flag,
        event_time: t,
        receive_time: t,
        interval: Default::default(),
        corrected: None,
    })
}

fn run(inputs: Vec<Input>) -> Vec<AlertTransition> {
    run_batch(
        timely::Config::thread(),
        rules(),
        Arc::new(inputs),
        BatchOptions::recorded(300_000),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .transitions
}

/// The transitions of rule `rule` at `point`: (kind, fired/resolved, started_at, value).
fn of(
    out: &[AlertTransition],
    rule: &str,
    point: &str,
) -> Vec<(AlertKind, &'static str, Timestamp, f64)> {
    out.iter()
        .filter(|t| &*t.instance.rule_id == rule && t.instance.point.as_str() == point)
        .map(|t| match t.transition {
            Transition::Fired { started_at, value } => (t.kind, "fired", started_at, value),
            Transition::Updated { started_at, value } => (t.kind, "updated", started_at, value),
            Transition::Resolved {
                started_at, peak, ..
            } => (t.kind, "resolved", started_at, peak),
        })
        .collect()
}

/// O2 and SO2 of the stack at `t`, flagged `flag`.
fn stack(t: Timestamp, o2: f64, so2: f64, flag: DataFlag) -> [Input; 2] {
    [
        reading(STACK, "a19001", t, o2, flag),
        reading(STACK, "a21026", t, so2, flag),
    ]
}

/// A valid COD value of the outlet at `t`.
fn outlet(t: Timestamp, value: f64) -> Input {
    reading(WASTEWATER, "w01018", t, value, DataFlag::N)
}

/// One COD value a minute at the outlet, `value(hour, minute)`, over the hours given of day 0.
fn cod(hours: impl IntoIterator<Item = u8>, minutes: u8, value: f64) -> Vec<Input> {
    hours
        .into_iter()
        .flat_map(|h| (0..minutes).map(move |m| outlet(at(0, h, m), value)))
        .collect()
}

/// The daily-average transitions of the outlet for `inputs` of day 0, closed by a reading
/// after midnight.
fn daily(mut inputs: Vec<Input>) -> Vec<(AlertKind, &'static str, Timestamp, f64)> {
    inputs.push(outlet(at(1, 0, 5), 10.0));
    of(&run(inputs), "daily-average", WASTEWATER)
}

#[test]
fn a_daily_average_counts_hours_not_minute_values() {
    // Thirty minute values at 80 mg/L, 10:00-10:29, then one reading after midnight: no valid
    // hour, so the day is insufficient, not an exceedance at 80.
    assert_eq!(
        daily(cod([10], 30, 80.0)),
        vec![(AlertKind::InsufficientData, "fired", at(0, 0, 0), 0.0)]
    );
    // Eighteen valid hours (the outlet down for six): insufficient too, 18 of the 20 needed.
    assert_eq!(
        daily(cod(0..18, 60, 40.0)),
        vec![(AlertKind::InsufficientData, "fired", at(0, 0, 0), 18.0)]
    );
    // Twenty valid hours at 60 and one of ten minutes at 900: the mean of the valid hours.
    let mut inputs = cod(0..20, 60, 60.0);
    inputs.extend(cod([20], 10, 900.0));
    assert_eq!(
        daily(inputs),
        vec![(AlertKind::Average, "fired", at(0, 0, 0), 60.0)]
    );
}

#[test]
fn redelivered_readings_are_judged_once() {
    // Forty minute values of SO2 (with O2), each delivered twice: 40 valid minutes, too few
    // for the hour.
    let mut inputs = Vec::new();
    for minute in 0..40 {
        for _ in 0..2 {
            inputs.extend(stack(at(0, 9, minute), 6.0, 20.0, DataFlag::N));
        }
    }
    inputs.push(reading(STACK, "a21026", at(0, 10, 30), 20.0, DataFlag::N));
    let out = run(inputs);
    assert_eq!(
        of(&out, "hourly-average", STACK)
            .into_iter()
            .filter(|(kind, ..)| *kind == AlertKind::InsufficientData)
            .collect::<Vec<_>>(),
        vec![(AlertKind::InsufficientData, "fired", at(0, 9, 0), 40.0)]
    );

    // 48 equal COD values a minute apart, each delivered twice (the second copy an hour later,
    // beyond the allowed lateness, too): 48 readings, short of constant-value's 60.
    let mut inputs = cod([8], 48, 33.0);
    let again: Vec<Input> = inputs.clone();
    inputs.extend(again.iter().cloned());
    for input in &again {
        if let Input::Reading(r) = input {
            let mut r = r.clone();
            r.receive_time = r.receive_time.plus_millis(3_600_000);
            inputs.push(Input::Reading(r));
        }
    }
    inputs.push(outlet(at(0, 12, 0), 34.0));
    let out = run(inputs);
    assert_eq!(of(&out, "constant-value", WASTEWATER), vec![]);
}

#[test]
fn a_registered_point_that_never_reports_is_missing() {
    // Only the stack reports, for two hours: the outlet of E002 never does. It is expected from
    // the input's first event time and missing 30 minutes later: one alert for the point.
    let inputs: Vec<Input> = (0..120)
        .map(|m| {
            reading(
                STACK,
                "a21026",
                at(0, 9, 0).plus_millis(m * 60_000),
                20.0,
                DataFlag::N,
            )
        })
        .collect();
    let out = run(inputs);
    assert_eq!(
        of(&out, "missing-data", WASTEWATER),
        vec![(AlertKind::MissingData, "fired", at(0, 9, 0), 30.0)]
    );
    // The generator of the stack's own enterprise, silent too, is missing as well.
    assert_eq!(of(&out, "missing-data", GENERATOR).len(), 1);
    // The stack itself reported throughout.
    assert_eq!(of(&out, "missing-data", STACK), vec![]);
}

#[test]
fn shutdown_is_not_missing_data() {
    // Two hours of SO2 and O2 all flagged F (the unit stopped), then an hour running.
    let mut inputs = Vec::new();
    for hour in 9..11u8 {
        for minute in 0..60 {
            inputs.extend(stack(at(0, hour, minute), 20.9, 0.0, DataFlag::F));
        }
    }
    for minute in 0..60 {
        inputs.extend(stack(at(0, 11, minute), 6.0, 20.0, DataFlag::N));
    }
    inputs.push(reading(STACK, "a21026", at(0, 12, 30), 20.0, DataFlag::N));
    let out = run(inputs);
    assert_eq!(of(&out, "hourly-average", STACK), vec![]);
}

#[test]
fn a_running_production_state_holds_whatever_the_arrival_order() {
    // The generator says it runs at 09:55, its meter reads 09:56-09:59 and then falls silent;
    // the desulphurisation draws 1 kW from 10:00 to 10:40. The event holds until the next
    // state event: treatment stopped while production runs, from 10:00.
    let running = |t: Timestamp| {
        Input::Event(Box::new(Event {
            enterprise_id: Some("E001".to_owned()),
            source: Some(SourceId::from(GENERATOR)),
            event_time: t,
            receive_time: t,
            kind: EventKind::ProductionState { running: true },
        }))
    };
    let scenario = |state_at: Timestamp| {
        let mut inputs = vec![running(state_at)];
        for minute in 56..60 {
            inputs.push(reading(
                GENERATOR,
                "power_kw",
                at(0, 9, minute),
                300_000.0,
                DataFlag::N,
            ));
        }
        for minute in 0..=40 {
            inputs.push(reading(
                DESULPHURISATION,
                "power_kw",
                at(0, 10, minute),
                1.0,
                DataFlag::N,
            ));
        }
        inputs.sort_by_key(Input::event_time);
        run(inputs)
    };
    let early = scenario(at(0, 9, 55));
    let late = scenario(at(0, 10, 0));
    let fired = |out: &[AlertTransition]| {
        of(out, "treatment-stopped", DESULPHURISATION)
            .into_iter()
            .filter(|(_, what, ..)| *what == "fired")
            .map(|(kind, _, started, _)| (kind, started))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        fired(&early),
        vec![(AlertKind::TreatmentStopped, at(0, 10, 0))],
        "the state event before the meter's last readings"
    );
    assert_eq!(fired(&late), fired(&early), "the state event after them");
}

#[test]
fn the_output_kind_names_the_rule_kind() {
    // Seventy equal COD values a minute apart (constant-value), and a negative one
    // (negative-value, an out-of-range rule): each alert's kind is its rule's kind.
    let mut inputs = cod([8], 60, 33.0);
    inputs.extend(cod([9], 10, 33.0));
    inputs.push(outlet(at(0, 9, 30), -5.0));
    inputs.push(outlet(at(0, 10, 0), 20.0));
    let out = run(inputs);
    let kinds = |rule: &str| -> Vec<String> {
        out.iter()
            .filter(|t| &*t.instance.rule_id == rule)
            .map(|t| t.view().kind)
            .collect()
    };
    assert_eq!(
        kinds("constant-value"),
        ["constant_value", "constant_value"]
    );
    assert_eq!(kinds("negative-value"), ["out_of_range", "out_of_range"]);
}

#[test]
fn a_notice_mutes_by_its_window_not_by_when_it_arrived() {
    // A negative COD value at 09:30, inside a maintenance notice's window 09:00-11:00 that comes
    // last in the input, stamped when it was read (no `ts`): the alert is muted.
    let mut inputs = cod([9], 60, 20.0);
    inputs.retain(|i| i.event_time() != at(0, 9, 30));
    inputs.push(outlet(at(0, 9, 30), -5.0));
    inputs.sort_by_key(Input::event_time);
    inputs.push(outlet(at(0, 12, 0), 20.0));
    let read_at = at(0, 12, 5);
    inputs.push(Input::Event(Box::new(Event {
        enterprise_id: Some("E002".to_owned()),
        source: None,
        event_time: read_at,
        receive_time: read_at,
        kind: EventKind::MaintenanceNotice {
            from: at(0, 9, 0),
            to: at(0, 11, 0),
            points: vec![SourceId::from(WASTEWATER)],
            reason: "COD analyser maintenance".to_owned(),
            request: String::new(),
        },
    })));
    let out = run(inputs);
    let muted: Vec<(String, bool)> = out
        .iter()
        .filter(|t| &*t.instance.rule_id == "negative-value")
        .map(|t| (t.view().transition.unwrap_or_default(), t.muted))
        .collect();
    assert_eq!(
        muted,
        [("fired".to_owned(), true), ("resolved".to_owned(), true)]
    );
}

/// The logger's own value of `interval` (HJ 212 2051/2061) of the span starting at `t`, sent
/// at `received`.
fn logger(
    metric: &str,
    interval: Interval,
    t: Timestamp,
    value: f64,
    corrected: Option<f64>,
    received: Timestamp,
) -> Input {
    Input::Reading(Reading {
        source: SourceId::from(STACK),
        metric: MetricCode::parse(metric),
        value,
        flag: DataFlag::N,
        event_time: t,
        receive_time: received,
        interval,
        corrected,
    })
}

/// Real-time O2 (6 %, the reference: no correction) and SO2 of the stack, one a minute over
/// `minutes` of `hour` on day 0, SO2 `so2` and `so2 + 1` in turn (never constant).
fn stack_hour(hour: u8, minutes: std::ops::Range<u8>, so2: f64) -> Vec<Input> {
    minutes
        .flat_map(|m| stack(at(0, hour, m), 6.0, so2 + f64::from(m % 2), DataFlag::N))
        .collect()
}

/// The stack's transitions of every rule but missing data (the test feeds one point).
fn stack_alerts(out: &[AlertTransition]) -> Vec<(String, &'static str, Timestamp, f64)> {
    let mut alerts: Vec<_> = out
        .iter()
        .filter(|t| t.instance.point.as_str() == STACK && t.kind != AlertKind::MissingData)
        .map(|t| {
            let (what, started_at, value) = match t.transition {
                Transition::Fired { started_at, value } => ("fired", started_at, value),
                Transition::Updated { started_at, value } => ("updated", started_at, value),
                Transition::Resolved {
                    started_at, peak, ..
                } => ("resolved", started_at, peak),
            };
            (t.instance.rule_id.to_string(), what, started_at, value)
        })
        .collect();
    alerts.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    alerts
}

#[test]
fn the_loggers_own_averages_are_kept_apart_from_the_real_time_series() {
    // 09:00-09:29 real-time SO2 about 20 (too few minutes for Argus's own hourly value), then
    // 10:00-10:02; the logger's hourly values of 09:00 (SO2 50 mg/m3, O2 6 %) arrive at 10:01,
    // an hour after their event time. They are the hour's regulatory value, on time (taken at
    // the end of their hour) and not a real-time value at 09:00.
    let mut inputs = stack_hour(9, 0..30, 20.0);
    inputs.extend(stack_hour(10, 0..2, 20.0));
    let sent = at(0, 10, 1);
    inputs.push(logger(
        "a19001",
        Interval::Hour,
        at(0, 9, 0),
        6.0,
        None,
        sent,
    ));
    inputs.push(logger(
        "a21026",
        Interval::Hour,
        at(0, 9, 0),
        50.0,
        None,
        sent,
    ));
    inputs.extend(stack_hour(10, 2..60, 20.0));
    inputs.extend(stack_hour(11, 0..5, 20.0));
    let out = run(inputs);
    assert_eq!(
        of(&out, "hourly-average", STACK),
        vec![
            (AlertKind::Average, "fired", at(0, 9, 0), 50.0),
            (AlertKind::Average, "resolved", at(0, 9, 0), 50.0),
        ],
        "09:00 judged on the logger's 50, 10:00 on Argus's own 20.5"
    );
    // With the logger's ZsAvg, that is the value judged (here under the limit).
    let mut inputs = stack_hour(9, 0..30, 20.0);
    inputs.push(logger(
        "a21026",
        Interval::Hour,
        at(0, 9, 0),
        50.0,
        Some(30.0),
        at(0, 10, 1),
    ));
    inputs.extend(stack_hour(10, 0..5, 20.0));
    assert_eq!(of(&run(inputs), "hourly-average", STACK), vec![]);
}

#[test]
fn a_logger_average_unlike_its_real_time_values_is_inconsistent() {
    // The logger's hourly value of 08:00 (its first: Argus compares from the next span on).
    // 09:00: real-time SO2 20/21 (mean 20.5), the logger's hourly value 10: inconsistent by
    // 10.5 mg/m3. 10:00: the logger's 20.5 with a ZsAvg of 30 at 9 % O2, where Argus corrects
    // 20.5 to 25.625: inconsistent by 4.375. 11:00: consistent, the alert resolves. And the
    // logger's minute values: 11:28 (its first), 11:29 as its real-time values say, 11:30 says
    // 50 where the minute's real-time value is 20.
    let hour = |h: u8, metric: &str, value: f64, zs: Option<f64>| {
        logger(
            metric,
            Interval::Hour,
            at(0, h, 0),
            value,
            zs,
            at(0, h + 1, 0),
        )
    };
    let minute = |m: u8, value: f64| {
        logger(
            "a21026",
            Interval::Minute,
            at(0, 11, m),
            value,
            None,
            at(0, 11, m + 1),
        )
    };
    let mut inputs = stack_hour(8, 0..60, 20.0);
    inputs.push(hour(8, "a21026", 20.5, None));
    inputs.extend(stack_hour(9, 0..60, 20.0));
    inputs.push(hour(9, "a21026", 10.0, None));
    inputs.extend(stack_hour(10, 0..60, 20.0));
    inputs.push(hour(10, "a19001", 9.0, None));
    inputs.push(hour(10, "a21026", 20.5, Some(30.0)));
    inputs.extend(stack_hour(11, 0..29, 20.0));
    inputs.push(minute(28, 5.0));
    inputs.extend(stack_hour(11, 29..30, 20.0));
    inputs.push(minute(29, 21.0));
    inputs.extend(stack_hour(11, 30..31, 20.0));
    inputs.push(minute(30, 50.0));
    inputs.extend(stack_hour(11, 31..60, 20.0));
    inputs.push(hour(11, "a21026", 20.6, None));
    inputs.extend(stack_hour(12, 0..5, 20.0));
    let out = run(inputs);
    assert_eq!(
        stack_alerts(&out),
        vec![
            (
                "inconsistent-hourly-average".to_owned(),
                "fired",
                at(0, 9, 0),
                10.5
            ),
            (
                "inconsistent-hourly-average".to_owned(),
                "resolved",
                at(0, 9, 0),
                10.5
            ),
            (
                "inconsistent-minute-average".to_owned(),
                "fired",
                at(0, 11, 30),
                30.0
            ),
        ]
    );
}

/// `inputs` through the detection operator as a live service feeds it: in the order given,
/// event time advancing with each input (no maintenance calendar sent first).
fn run_live(inputs: Vec<Input>) -> Vec<AlertTransition> {
    use std::cell::RefCell;
    use std::rc::Rc;
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::operators::core::Inspect;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::{InputHandle, ProbeHandle};
    let first = inputs.iter().map(Input::event_time).min();
    timely::execute_directly(move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Input>>>::new();
        let probe = ProbeHandle::new();
        let out = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&out);
        worker.dataflow::<u64, _, _>(|scope| {
            argus_dataflow::detect(input.to_stream(scope), rules(), first)
                .inspect(move |t: &AlertTransition| sink.borrow_mut().push(t.clone()))
                .probe_with(&probe);
        });
        for i in inputs {
            let t = argus_dataflow::event_time(i.event_time());
            if t > *input.time() {
                input.advance_to(t);
                while probe.less_than(input.time()) {
                    worker.step();
                }
            }
            input.send(i);
        }
        input.close();
        while worker.step() {}
        let transitions = out.borrow().clone();
        transitions
    })
}

#[test]
fn a_silence_set_after_an_alert_fired_mutes_it_by_its_window() {
    // Live: a negative COD value at 09:30 (an alert fired and resolved at 09:31), another from
    // 09:40 still going at 09:42, when a staff silence for 09:00-11:00 is set. Both started in
    // its window: both are muted now, each with a `muted` transition, and the open one
    // resolves muted. A negative value at 11:30, after the window, is not muted.
    let mut inputs = cod([9], 42, 20.0);
    for minute in [30, 40, 41] {
        inputs.retain(|i| i.event_time() != at(0, 9, minute));
        inputs.push(outlet(at(0, 9, minute), -5.0));
    }
    inputs.sort_by_key(Input::event_time);
    let set_at = at(0, 9, 42);
    inputs.push(Input::Event(Box::new(Event {
        enterprise_id: Some("E002".to_owned()),
        source: None,
        event_time: set_at,
        receive_time: set_at,
        kind: EventKind::MaintenanceNotice {
            from: at(0, 9, 0),
            to: at(0, 11, 0),
            points: vec![SourceId::from(WASTEWATER)],
            reason: "silence by 值班员 李: 分析仪校准".to_owned(),
            request: String::new(),
        },
    })));
    inputs.extend((42..60).map(|m| outlet(at(0, 9, m), 20.0)));
    inputs.push(outlet(at(0, 11, 30), -1.0));
    inputs.push(outlet(at(0, 11, 31), 20.0));
    inputs.push(outlet(at(0, 11, 40), 20.0));
    let out = run_live(inputs);
    let mut seen: Vec<(String, Timestamp, bool, Option<String>)> = out
        .iter()
        .filter(|t| &*t.instance.rule_id == "negative-value")
        .map(|t| {
            let view = t.view();
            (
                view.transition.unwrap_or_default(),
                Timestamp::parse_rfc3339(&view.started_at).unwrap_or(Timestamp(0)),
                t.muted,
                t.muted_later.as_deref().map(str::to_owned),
            )
        })
        .collect();
    // Each alert's transitions in order (alerts of one step come in id order).
    seen.sort_by_key(|s| s.1);
    let reason = Some("silence by 值班员 李: 分析仪校准".to_owned());
    assert_eq!(
        seen,
        [
            ("fired".to_owned(), at(0, 9, 30), false, None),
            ("resolved".to_owned(), at(0, 9, 30), false, None),
            ("muted".to_owned(), at(0, 9, 30), true, reason.clone()),
            ("fired".to_owned(), at(0, 9, 40), false, None),
            ("muted".to_owned(), at(0, 9, 40), true, reason),
            ("resolved".to_owned(), at(0, 9, 40), true, None),
            ("fired".to_owned(), at(0, 11, 30), false, None),
            ("resolved".to_owned(), at(0, 11, 30), false, None),
        ]
    );
}
