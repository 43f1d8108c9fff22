//! The store contract, run against both backends: the real ClickHouse server of the local stack
//! and the embedded SQLite file. Migrations applied once, rows round trip, replays do not
//! duplicate, acknowledgements survive later transitions, tickets are read back, retention
//! drops old months, the first value of a reading stays (a different later one is a conflict);
//! then what only one backend has (ClickHouse's rollups, its column check
//! against a foreign table, the sink while the server is unreachable; SQLite's append-only
//! triggers).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use argus_dataflow::AlertTransition;
use argus_ingest::{DeadLetter, Reason, Transport};
use argus_model::{DataFlag, Metric, MetricCode, Reading, Registry, SourceId, Timestamp};
use argus_rules::{alert_id, RuleSet, Transition};
use argus_store::migrations::MIGRATIONS;
use argus_store::rows::{RejectedRow, TicketEventRow, TicketRow};
use argus_store::spool::RowBatch;
use argus_store::{Acknowledgement, ClickHouseStore, Labels, SqliteStore, Store, StoreError};

use crate::util::{repo_path, runtime, settings, unique};

fn registry() -> Registry {
    let text = std::fs::read_to_string(repo_path("config/registry.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    Registry::from_toml_str(&text, "registry.toml").unwrap_or_else(|e| panic!("{e}"))
}

const T0: i64 = 1_795_622_400_000; // 2026-11-26T00:00:00+08:00

fn reading(source: &str, minute: i64, value: f64, flag: DataFlag) -> Reading {
    Reading {
        source: SourceId::from(source),
        metric: MetricCode::Known(Metric::So2),
        value,
        flag,
        event_time: Timestamp(T0 + minute * 60_000),
        receive_time: Timestamp(T0 + minute * 60_000 + 5_000),
        interval: Default::default(),
        corrected: None,
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A ClickHouse database of its own, dropped afterwards.
fn on_clickhouse<F, Fut>(name: &str, test: F)
where
    F: FnOnce(ClickHouseStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = runtime();
    rt.block_on(async {
        let db = unique(name);
        let store = ClickHouseStore::with_database(&settings().clickhouse, &db);
        test(store.clone()).await;
        ok(store.query(&format!("DROP DATABASE {db}")).execute().await);
    });
}

/// An SQLite file of its own, removed afterwards.
fn on_sqlite<F, Fut>(name: &str, test: F)
where
    F: FnOnce(SqliteStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir: PathBuf = std::env::temp_dir().join(unique(name));
    let rt = runtime();
    rt.block_on(async {
        let store = ok(SqliteStore::open(&dir.join("argus.sqlite")));
        test(store).await;
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// One contract, one test per backend.
macro_rules! contract {
    ($name:ident) => {
        mod $name {
            #[test]
            fn clickhouse() {
                super::on_clickhouse(stringify!($name), super::$name);
            }
            #[test]
            fn sqlite() {
                super::on_sqlite(stringify!($name), super::$name);
            }
        }
    };
}

contract!(migrations_apply_once_and_rows_round_trip_without_duplicates_on_replay);
contract!(an_acknowledgement_is_recorded_once_and_survives_later_transitions);
contract!(twenty_concurrent_acknowledgements_of_one_alert_give_one);
contract!(open_tickets_and_their_record_are_read_back_as_written);
contract!(retention_drops_the_readings_of_old_months_only);
contract!(the_sink_acknowledges_inputs_once_their_rows_are_stored);
contract!(maintenance_notices_and_silences_are_kept_and_read_back_by_window);
contract!(the_inputs_since_a_checkpoint_are_read_back_in_event_time_order);
contract!(a_change_retried_with_its_idempotency_key_finds_its_answer);
contract!(the_first_value_of_a_reading_stays_and_a_different_later_one_is_a_conflict);
contract!(a_loggers_averages_are_series_apart_from_its_real_time_values);
contract!(an_alert_muted_after_it_fired_stays_muted_through_its_later_transitions);

async fn write<S: Store>(store: &S, mut batch: RowBatch) {
    ok(store.insert_batch(&mut batch).await);
    assert!(
        batch.is_empty(),
        "written tables are emptied from the batch"
    );
}

fn readings_batch(readings: &[Reading]) -> RowBatch {
    RowBatch {
        readings: Labels::new(&registry()).reading_rows(readings),
        ..RowBatch::default()
    }
}

fn transitions_batch(transitions: &[AlertTransition], recorded: Timestamp) -> RowBatch {
    let (alert_events, alerts) = Labels::new(&registry()).transition_rows(transitions, recorded);
    RowBatch {
        alert_events,
        alerts,
        ..RowBatch::default()
    }
}

/// A methane power-cut alert's fired, updated and resolved transitions, and its id.
fn methane_alert(registry: &Registry) -> ([AlertTransition; 3], String) {
    let rules = ok(RuleSet::compile(
        &ok(std::fs::read_to_string(repo_path("config/rules.toml"))),
        "rules.toml",
        registry,
    ));
    let instance = rules
        .for_point("MINE01-CH4-WF1")
        .find(|i| &*i.rule_id == "methane-power-cut")
        .cloned()
        .unwrap_or_else(|| panic!("no methane-power-cut instance"));
    let started = Timestamp(T0 + 60_000);
    let id = alert_id(&instance.rule_id, &instance.series_key(), started);
    let instance = Arc::new(instance);
    let transition = |t: Transition| AlertTransition {
        alert_id: id,
        kind: instance.kind,
        instance: Arc::clone(&instance),
        transition: t,
        muted: false,
        muted_later: None,
    };
    let all = [
        transition(Transition::Fired {
            started_at: started,
            value: 1.6,
        }),
        transition(Transition::Updated {
            started_at: started,
            value: 2.1,
        }),
        transition(Transition::Resolved {
            started_at: started,
            ended_at: Timestamp(T0 + 300_000),
            peak: 2.1,
            mean: 1.8,
        }),
    ];
    (all, format!("{id:016x}"))
}

async fn migrations_apply_once_and_rows_round_trip_without_duplicates_on_replay<S: Store>(
    store: S,
) {
    // Migrations: all applied on a fresh store, none the second time.
    let all: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(ok(store.prepare().await), all);
    assert!(ok(store.prepare().await).is_empty());

    // Readings: 3 points x 600 minutes, some invalid; the same batch again (a replay).
    let mut readings = Vec::new();
    for source in ["15010201000101", "15010201000105", "UNKNOWN-LOGGER"] {
        for minute in 0..600 {
            let flag = if minute % 10 == 0 {
                DataFlag::M
            } else {
                DataFlag::N
            };
            readings.push(reading(source, minute, 20.0 + (minute % 7) as f64, flag));
        }
    }
    write(&store, readings_batch(&readings)).await;
    write(&store, readings_batch(&readings)).await;
    assert_eq!(ok(store.counts().await).readings, readings.len() as u64);
    let back = ok(store
        .readings(
            "15010201000101",
            Timestamp(T0 + 60 * 60_000),
            Timestamp(T0 + 120 * 60_000),
        )
        .await);
    assert_eq!(back.len(), 60);
    assert_eq!(back[0].enterprise_id, "E001");
    assert_eq!(back[0].event_ms, T0 + 60 * 60_000);
    assert_eq!(back[0].flag, "M");
    let expected: f64 = readings[60..120].iter().map(|r| r.value).sum();
    assert_eq!(back.iter().map(|r| r.value).sum::<f64>(), expected);
    let unknown = ok(store
        .readings("UNKNOWN-LOGGER", Timestamp(T0), Timestamp(T0 + 60_000))
        .await);
    assert_eq!(unknown.len(), 1);
    assert_eq!(
        unknown[0].enterprise_id, "",
        "unregistered sources have no enterprise"
    );

    // Alert transitions: fired, then updated and resolved, then all of them again.
    let registry = registry();
    let (all, id) = methane_alert(&registry);
    let now = Timestamp(T0 + 400_000);
    write(&store, transitions_batch(&all[..1], now)).await;
    let fired = ok(store.alert(&id).await).unwrap_or_else(|| panic!("alert {id} not stored"));
    assert_eq!((fired.status.as_str(), fired.value), ("firing", 1.6));
    write(&store, transitions_batch(&all[1..], now)).await;
    write(
        &store,
        transitions_batch(&all, Timestamp(now.as_millis() + 1)),
    )
    .await;
    let alert = ok(store.alert(&id).await).unwrap_or_else(|| panic!("alert {id} not stored"));
    assert_eq!(
        (
            alert.status.as_str(),
            alert.ended_ms,
            alert.peak,
            alert.limit_value
        ),
        ("resolved", T0 + 300_000, 2.1, 1.5)
    );
    assert!(!alert.town.is_empty());
    let life: Vec<String> = ok(store.alert_events(&id).await)
        .into_iter()
        .map(|e| e.transition)
        .collect();
    assert_eq!(life, ["fired", "updated", "resolved"]);
    let counts = ok(store.counts().await);
    assert_eq!((counts.alerts, counts.alert_events), (1, 3));
    let of_mine = ok(store.enterprise_alerts(&alert.enterprise_id).await);
    assert_eq!(of_mine, std::slice::from_ref(&alert));
    assert!(ok(store.enterprise_alerts("E999").await).is_empty());

    // Rejected inputs, newest first.
    let letter = |n: i64, raw: &[u8]| {
        DeadLetter::new(
            Transport::Kafka,
            format!("kafka:argus.readings/0@{n}"),
            Reason::BadJson,
            "not valid JSON: expected value at line 1 column 1".to_owned(),
            Timestamp(now.as_millis() + n),
            raw,
        )
    };
    let rejected = vec![
        RejectedRow::new(&letter(7, b"{oops")),
        RejectedRow::new(&letter(8, b"]")),
    ];
    write(
        &store,
        RowBatch {
            rejected,
            ..RowBatch::default()
        },
    )
    .await;
    let back = ok(store.rejected(10).await);
    let seen: Vec<(&str, &str, &str)> = back
        .iter()
        .map(|r| (r.reason.as_str(), r.origin.as_str(), r.raw.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("bad_json", "kafka:argus.readings/0@8", "]"),
            ("bad_json", "kafka:argus.readings/0@7", "{oops")
        ]
    );
    // Issue 11: delivered again after a crash (same message, received later), a Kafka dead
    // letter is kept once; the same bytes sent twice on an MQTT topic are two inputs.
    let mut again = letter(7, b"{oops");
    again.received_at = Timestamp(now.as_millis() + 60_000);
    let mqtt = |at: i64| {
        DeadLetter::new(
            Transport::Mqtt,
            "mqtt:argus/v1/readings/E001/15010201000101".to_owned(),
            Reason::BadJson,
            "not valid JSON".to_owned(),
            Timestamp(now.as_millis() + at),
            b"{oops",
        )
    };
    let rows = [again, mqtt(1_000), mqtt(2_000)];
    write(
        &store,
        RowBatch {
            rejected: rows.iter().map(RejectedRow::new).collect(),
            ..RowBatch::default()
        },
    )
    .await;
    let back = ok(store.rejected(10).await);
    let kafka = back.iter().filter(|r| r.transport == "kafka").count();
    let mqtt = back.iter().filter(|r| r.transport == "mqtt").count();
    assert_eq!((kafka, mqtt), (2, 2), "{back:?}");
    assert_eq!(ok(store.counts().await).rejected, 4);
}

async fn an_acknowledgement_is_recorded_once_and_survives_later_transitions<S: Store>(store: S) {
    ok(store.prepare().await);
    let (all, id) = methane_alert(&registry());
    let ack = |actor: &str, at: i64| Acknowledgement {
        alert_id: id.clone(),
        actor: actor.to_owned(),
        note: "called the mine's dispatcher".to_owned(),
        at: Timestamp(at),
        request_key: String::new(),
    };

    // Nothing stored yet: refused.
    match store.acknowledge(&ack("Operator Liu", T0 + 120_000)).await {
        Err(StoreError::UnknownAlert(a)) => assert_eq!(a, id),
        other => panic!("expected an unknown alert, got {other:?}"),
    }
    write(&store, transitions_batch(&all[..1], Timestamp(T0 + 61_000))).await;
    let acked = ok(store.acknowledge(&ack("Operator Liu", T0 + 120_000)).await);
    assert_eq!(
        (
            acked.status.as_str(),
            acked.acknowledged_by.as_str(),
            acked.acknowledged_ms
        ),
        ("firing", "Operator Liu", T0 + 120_000)
    );
    // A second acknowledgement is refused, naming the first.
    match store.acknowledge(&ack("Operator Wang", T0 + 180_000)).await {
        Err(e @ StoreError::AlreadyAcknowledged { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("already acknowledged by Operator Liu"),
                "{text}"
            );
        }
        other => panic!("expected already acknowledged, got {other:?}"),
    }
    // Later transitions (and a replay of the first) keep the acknowledgement.
    write(
        &store,
        transitions_batch(&all[1..2], Timestamp(T0 + 200_000)),
    )
    .await;
    let updated = ok(store.alert(&id).await).unwrap_or_else(|| panic!("alert gone"));
    assert_eq!(
        (updated.value, updated.acknowledged_by.as_str()),
        (2.1, "Operator Liu")
    );
    write(&store, transitions_batch(&all, Timestamp(T0 + 400_000))).await;
    let resolved = ok(store.alert(&id).await).unwrap_or_else(|| panic!("alert gone"));
    assert_eq!(
        (
            resolved.status.as_str(),
            resolved.acknowledged_by.as_str(),
            resolved.acknowledged_ms
        ),
        ("resolved", "Operator Liu", T0 + 120_000)
    );
    let counts = ok(store.counts().await);
    assert_eq!((counts.alerts, counts.alert_acks), (1, 1));
}

/// Issue 12, item 4: twenty concurrent acknowledgements of one alert gave four successes and
/// four rows on ClickHouse (check, then insert, nothing in between).
async fn twenty_concurrent_acknowledgements_of_one_alert_give_one<S: Store>(store: S) {
    ok(store.prepare().await);
    let (all, id) = methane_alert(&registry());
    write(&store, transitions_batch(&all[..1], Timestamp(T0 + 61_000))).await;
    let mut racing = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (store, id) = (store.clone(), id.clone());
        racing.spawn(async move {
            let ack = Acknowledgement {
                alert_id: id,
                actor: format!("Operator {n}"),
                note: "seen".to_owned(),
                at: Timestamp(T0 + 120_000 + n),
                request_key: String::new(),
            };
            store.acknowledge(&ack).await
        });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(answer) = racing.join_next().await {
        match ok(answer) {
            Ok(_) => accepted += 1,
            Err(StoreError::AlreadyAcknowledged { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((accepted, refused), (1, 19));
    assert_eq!(ok(store.counts().await).alert_acks, 1);
}

fn ticket(id: u64, state: argus_model::TicketState) -> argus_model::Ticket {
    argus_model::Ticket {
        ticket_id: id,
        alert_ids: vec![0xabc, 0xdef],
        enterprise_id: "E001".to_owned(),
        town: "T01".to_owned(),
        department: "environment".to_owned(),
        severity: argus_model::Severity::Red,
        state,
        created_at: Timestamp(T0),
        deadline: Some(Timestamp(T0 + 7_200_000)),
        outcome: None,
    }
}

fn ticket_event(id: u64, seq: u32, at: i64, to: argus_model::TicketState) -> TicketEventRow {
    use argus_tickets::{EventKind, Role, TicketEvent};
    TicketEventRow::new(&TicketEvent {
        ticket_id: id,
        seq,
        at: Timestamp(at),
        actor: if seq == 1 { "argus" } else { "Dispatcher Zhao" }.to_owned(),
        role: if seq == 1 {
            Role::System
        } else {
            Role::Dispatcher
        },
        kind: if seq == 1 {
            EventKind::Created
        } else {
            EventKind::StateChanged
        },
        from: None,
        to,
        note: format!("step {seq}"),
        alert_ids: vec![0xabc],
        outcome: None,
    })
}

async fn open_tickets_and_their_record_are_read_back_as_written<S: Store>(store: S) {
    use argus_model::TicketState;
    ok(store.prepare().await);
    let open = ticket(1, TicketState::Dispatched);
    let mut closed = ticket(2, TicketState::Closed);
    closed.outcome = Some(argus_model::TicketOutcome::FalseAlarm);
    let batch = RowBatch {
        ticket_events: vec![
            ticket_event(1, 1, T0, TicketState::New),
            ticket_event(1, 2, T0 + 60_000, TicketState::Dispatched),
            ticket_event(2, 1, T0, TicketState::New),
        ],
        tickets: vec![
            TicketRow::new(&ticket(1, TicketState::New), "team", 1),
            TicketRow::new(&open, "team", 2),
            TicketRow::new(&closed, "team", 6),
        ],
        ..RowBatch::default()
    };
    write(&store, batch).await;
    let back = ok(store.open_tickets().await);
    assert_eq!(back.len(), 1, "{back:?}");
    let (row, at) = &back[0];
    assert_eq!((row.version, *at), (2, T0 + 60_000));
    assert_eq!(row.to_ticket(), Some(open));
    let record = ok(store.ticket_events(&format!("{:016x}", 1)).await);
    let steps: Vec<(u32, &str, &str, &str)> = record
        .iter()
        .map(|e| {
            (
                e.seq,
                e.actor.as_str(),
                e.to_state.as_str(),
                e.note.as_str(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (1, "argus", "new", "step 1"),
            (2, "Dispatcher Zhao", "dispatched", "step 2")
        ]
    );
    assert_eq!(record[0].alert_ids, [format!("{:016x}", 0xabc)]);
    // A later ticket row replaces the earlier; an earlier one written late does not.
    write(
        &store,
        RowBatch {
            tickets: vec![TicketRow::new(&ticket(1, TicketState::New), "team", 1)],
            ..RowBatch::default()
        },
    )
    .await;
    let back = ok(store.open_tickets().await);
    assert_eq!(back[0].0.state, "dispatched");
    let counts = ok(store.counts().await);
    assert_eq!((counts.tickets, counts.ticket_events), (2, 3));
}

async fn retention_drops_the_readings_of_old_months_only<S: Store>(store: S) {
    // Before the schema exists (retention may start before the sink has migrated): nothing.
    assert!(ok(store.drop_readings_before(202_610).await).is_empty());
    ok(store.prepare().await);
    // Readings in September, October and November 2026 (UTC, mid-month).
    let month = |m: i64| T0 - (11 - m) * 30 * 86_400_000 - 10 * 86_400_000;
    let mut readings = Vec::new();
    for m in [9, 10, 11] {
        for minute in 0..10 {
            let mut r = reading("15010201000101", minute, 1.0, DataFlag::N);
            r.event_time = Timestamp(month(m) + minute * 60_000);
            readings.push(r);
        }
    }
    let months: Vec<u32> = readings
        .iter()
        .map(|r| argus_store::retention::month_of(r.event_time))
        .collect();
    assert_eq!(
        (months[0], months[10], months[20]),
        (202_609, 202_610, 202_611)
    );
    write(&store, readings_batch(&readings)).await;
    assert_eq!(ok(store.drop_readings_before(202_610).await), [202_609]);
    assert_eq!(ok(store.counts().await).readings, 20);
    assert!(ok(store.drop_readings_before(202_610).await).is_empty());
    let left = ok(store
        .readings("15010201000101", Timestamp(0), Timestamp(i64::MAX))
        .await);
    assert!(left.iter().all(|r| r.event_ms >= month(10)), "{left:?}");
}

async fn the_sink_acknowledges_inputs_once_their_rows_are_stored<S: Store>(store: S) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use argus_ingest::Ack;
    use argus_store::sink::{run, Item, SinkOptions};
    use argus_telemetry::Telemetry;
    use tokio::sync::{mpsc, watch};

    let acked = Arc::new(AtomicUsize::new(0));
    let telemetry = ok(Telemetry::new("test", 0));
    let (_stop, stopping) = watch::channel(false);
    let (tx, rx) = mpsc::channel(8);
    let options = SinkOptions {
        max_rows: 1_000,
        max_age: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        spool: None,
    };
    let sink = tokio::spawn(run(
        store.clone(),
        Labels::new(&registry()),
        rx,
        options,
        telemetry.clone(),
        argus_store::sink::Outlets::default(),
        stopping,
    ));
    for n in 0..5 {
        let counter = Arc::clone(&acked);
        let item = Item::Input {
            readings: (0..100)
                .map(|m| reading("15010201000101", n * 100 + m, 1.0, DataFlag::N))
                .collect(),
            rejected: Vec::new(),
            events: Vec::new(),
            ack: Ack::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        };
        ok(tx.send(item).await);
    }
    drop(tx);
    ok(ok(sink.await));
    assert_eq!(acked.load(Ordering::SeqCst), 5);
    assert_eq!(ok(store.counts().await).readings, 500);
    assert_eq!(
        argus_telemetry::Telemetry::render(&telemetry)
            .map(|t| t.contains("argus_store_rows_total{path=\"direct\"} 500"))
            .ok(),
        Some(true)
    );
}

// What only ClickHouse has.

/// The rollups count each reading once, however often it was delivered (issue 12: they
/// counted every delivery, 800 samples for 720 readings after a Kafka broker restart).
#[test]
fn clickhouse_rollups_aggregate_valid_values_per_hour() {
    on_clickhouse("argus_rollups", |store| async move {
        ok(store.prepare().await);
        let readings: Vec<Reading> = (0..180)
            .map(|minute| {
                let flag = if minute % 10 == 0 {
                    DataFlag::M
                } else {
                    DataFlag::N
                };
                reading("15010201000101", minute, 20.0 + (minute % 7) as f64, flag)
            })
            .collect();
        for _ in 0..3 {
            write(&store, readings_batch(&readings)).await;
        }
        let (samples, avg): (u64, f64) = ok(store
            .query(
                "SELECT countMerge(samples), avgMerge(avg_value) FROM readings_1h \
                 WHERE source = '15010201000101' AND hour = toDateTime(?)",
            )
            .bind(T0 / 1000 + 3600)
            .fetch_one()
            .await);
        assert_eq!(samples, 54, "54 valid minutes of 60");
        let hour: Vec<f64> = readings[60..120]
            .iter()
            .filter(|r| r.is_valid())
            .map(|r| r.value)
            .collect();
        let expected = hour.iter().sum::<f64>() / hour.len() as f64;
        assert!((avg - expected).abs() < 1e-9, "{avg} vs {expected}");
    });
}

/// Issue 13, item 5: a stopped period is kept apart, per hour: the minutes with a reading
/// flagged F (`readings_1h_stopped`), however often delivered, while `readings_1h` holds the
/// hour's valid values only.
#[test]
fn clickhouse_keeps_stopped_time_per_hour_apart_from_valid_values() {
    on_clickhouse("argus_stopped", |store| async move {
        ok(store.prepare().await);
        // 09:00-09:59 stopped throughout (two readings a minute), 10:00-10:19 stopped, then
        // valid; minute values of SO2 and O2 both.
        let mut readings = Vec::new();
        for minute in 0..120 {
            let flag = if minute < 80 {
                DataFlag::F
            } else {
                DataFlag::N
            };
            for half in [0, 30_000] {
                let mut r = reading("15010201000101", minute, 0.0, flag);
                r.event_time = r.event_time.plus_millis(half);
                readings.push(r);
            }
        }
        for _ in 0..2 {
            write(&store, readings_batch(&readings)).await;
        }
        let hours: Vec<(u32, u64)> = ok(store
            .query(
                "SELECT toUInt32(hour), uniqExactMerge(stopped_minutes) FROM readings_1h_stopped \
                 WHERE source = '15010201000101' GROUP BY hour ORDER BY hour",
            )
            .fetch_all()
            .await);
        let t0 = u32::try_from(T0 / 1000).unwrap_or(0);
        assert_eq!(hours, [(t0, 60), (t0 + 3600, 20)]);
        let valid: Vec<(u32, u64)> = ok(store
            .query(
                "SELECT toUInt32(hour), countMerge(samples) FROM readings_1h \
                 WHERE source = '15010201000101' GROUP BY hour ORDER BY hour",
            )
            .fetch_all()
            .await);
        assert_eq!(
            valid,
            [(t0 + 3600, 80)],
            "40 valid minutes, two readings each"
        );
    });
}

#[test]
fn clickhouse_current_alerts_view_gives_end_and_acknowledgement_as_times() {
    on_clickhouse("argus_alerts_view", |store| async move {
        ok(store.prepare().await);
        let (all, id) = methane_alert(&registry());
        write(&store, transitions_batch(&all[..1], Timestamp(T0 + 61_000))).await;
        let firing: (String, Option<u32>, Option<u32>) = ok(store
            .query(
                "SELECT status, ended_at, acknowledged_at FROM alerts_current WHERE alert_id = ?",
            )
            .bind(&id)
            .fetch_one()
            .await);
        assert_eq!(firing, ("firing".to_owned(), None, None));
        let ack = Acknowledgement {
            alert_id: id.clone(),
            actor: "Operator Liu".to_owned(),
            note: String::new(),
            at: Timestamp(T0 + 120_500),
            request_key: String::new(),
        };
        ok(store.acknowledge(&ack).await);
        write(
            &store,
            transitions_batch(&all[1..], Timestamp(T0 + 400_000)),
        )
        .await;
        let resolved: (String, Option<u32>, Option<u32>) = ok(store
            .query(
                "SELECT status, ended_at, acknowledged_at FROM alerts_current WHERE alert_id = ?",
            )
            .bind(&id)
            .fetch_one()
            .await);
        let seconds = |ms: i64| u32::try_from(ms / 1000).ok();
        assert_eq!(
            resolved,
            (
                "resolved".to_owned(),
                seconds(T0 + 300_000),
                seconds(T0 + 120_500)
            )
        );
    });
}

// What only the embedded store has.

#[test]
fn sqlite_refuses_to_change_or_delete_the_legal_record() {
    on_sqlite("argus_sqlite_append_only", |store| async move {
        ok(store.prepare().await);
        let batch = RowBatch {
            ticket_events: vec![ticket_event(1, 1, T0, argus_model::TicketState::New)],
            ..RowBatch::default()
        };
        write(&store, batch).await;
        for statement in [
            "UPDATE ticket_events SET actor = 'someone else'",
            "DELETE FROM ticket_events",
        ] {
            match store.execute(statement).await {
                Err(e) => assert!(e.to_string().contains("append only"), "{statement}: {e}"),
                Ok(n) => panic!("{statement} changed {n} rows of the legal record"),
            }
        }
        let record = ok(store.ticket_events(&format!("{:016x}", 1)).await);
        assert_eq!(record.len(), 1);
        assert_eq!(record[0].actor, "argus");
    });
}

#[test]
fn sqlite_refuses_a_table_with_other_columns_naming_it() {
    on_sqlite("argus_sqlite_bad", |store| async move {
        ok(store.prepare().await);
        ok(store.execute("DROP TABLE readings").await);
        ok(store
            .execute(
                "CREATE TABLE readings (source TEXT, metric TEXT, event_ms INTEGER, \
                 event_time INTEGER, value TEXT, flag TEXT, enterprise_id TEXT, receive_ms INTEGER)",
            )
            .await);
        match store.prepare().await {
            Err(StoreError::Schema { table, found, .. }) => {
                assert_eq!(table, "readings");
                assert!(
                    found.contains(&("value".to_owned(), "TEXT".to_owned())),
                    "{found:?}"
                );
            }
            other => panic!("expected a schema error, got {other:?}"),
        }
    });
}

#[test]
fn clickhouse_refuses_a_table_with_other_columns_naming_it() {
    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let db = unique("argus_store_bad");
        let store = ClickHouseStore::with_database(&s.clickhouse, &db);
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        // Someone re-created `readings` by hand, with a value column of another type.
        store
            .query(&format!("DROP TABLE {db}.readings"))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .query(&format!(
                "CREATE TABLE {db}.readings (source String, metric String, event_ms Int64, \
                 event_time DateTime, value Float32, flag String, enterprise_id String, \
                 receive_ms Int64) ENGINE = MergeTree ORDER BY (source, metric, event_ms)"
            ))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Migrations are recorded as done: nothing is re-created over it.
        assert!(store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
        match store.check_columns().await {
            Err(StoreError::Schema { table, found, .. }) => {
                assert_eq!(table, "readings");
                assert!(
                    found.contains(&("value".to_owned(), "Float32".to_owned())),
                    "{found:?}"
                );
            }
            other => panic!("expected a schema error, got {other:?}"),
        }
        store
            .query(&format!("DROP DATABASE {db}"))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
}

#[test]
fn clickhouse_unreachable_without_a_spool_nothing_is_acknowledged() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use argus_ingest::Ack;
    use argus_store::sink::{run, Item, SinkOptions};
    use argus_telemetry::Telemetry;
    use tokio::sync::{mpsc, watch};

    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let registry = registry();
        let options = SinkOptions {
            max_rows: 1_000,
            max_age: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            spool: None,
        };
        let acked = Arc::new(AtomicUsize::new(0));
        let item = |n: i64| {
            let acked = Arc::clone(&acked);
            Item::Input {
                readings: (0..100)
                    .map(|m| reading("15010201000101", n * 100 + m, 1.0, DataFlag::N))
                    .collect(),
                rejected: Vec::new(),
                events: Vec::new(),
                ack: Ack::new(move || {
                    acked.fetch_add(1, Ordering::SeqCst);
                }),
            }
        };

        // ClickHouse unreachable: nothing is acknowledged, failures are counted, and on
        // shutdown the inputs stay unacknowledged (they will be delivered again).
        let mut unreachable = s.clickhouse.clone();
        unreachable.url = "http://127.0.0.1:9".to_owned();
        let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
        let (stop, stopping) = watch::channel(false);
        let (tx, rx) = mpsc::channel(8);
        let store = ClickHouseStore::with_database(&unreachable, &unique("argus_sink_down"));
        let sink = tokio::spawn(run(
            store,
            Labels::new(&registry),
            rx,
            options.clone(),
            telemetry.clone(),
            argus_store::sink::Outlets::default(),
            stopping,
        ));
        tx.send(item(0)).await.unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(acked.load(Ordering::SeqCst), 0);
        assert!(
            telemetry.store.write_failures.get() >= 2,
            "retries are counted"
        );
        let _ = stop.send(true);
        drop(tx);
        sink.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            acked.load(Ordering::SeqCst),
            0,
            "acknowledged without being written"
        );
    });
}

#[test]
fn clickhouse_unreachable_rows_are_spooled_acknowledged_and_written_later_in_order() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use argus_ingest::Ack;
    use argus_store::sink::{run, Item, SinkOptions, SpoolOptions};
    use argus_telemetry::Telemetry;
    use tokio::sync::{mpsc, watch};

    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let registry = registry();
        let spool_dir = std::env::temp_dir().join(unique("argus_spool"));
        let options = SinkOptions {
            max_rows: 1_000,
            max_age: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            spool: Some(SpoolOptions {
                dir: spool_dir.clone(),
                max_bytes: 64 << 20,
            }),
        };
        let acked = Arc::new(AtomicUsize::new(0));
        let item = |n: i64| {
            let acked = Arc::clone(&acked);
            Item::Input {
                readings: (0..100)
                    .map(|m| reading("15010201000101", n * 100 + m, n as f64, DataFlag::N))
                    .collect(),
                rejected: Vec::new(),
                events: Vec::new(),
                ack: Ack::new(move || {
                    acked.fetch_add(1, Ordering::SeqCst);
                }),
            }
        };

        // ClickHouse unreachable: the rows go to the spool, and the inputs are acknowledged.
        let mut unreachable = s.clickhouse.clone();
        unreachable.url = "http://127.0.0.1:9".to_owned();
        let db = unique("argus_spooled");
        let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
        let (_stop, stopping) = watch::channel(false);
        let (tx, rx) = mpsc::channel(8);
        let down = ClickHouseStore::with_database(&unreachable, &db);
        let sink = tokio::spawn(run(
            down,
            Labels::new(&registry),
            rx,
            options.clone(),
            telemetry.clone(),
            argus_store::sink::Outlets::default(),
            stopping,
        ));
        for n in 0..5 {
            tx.send(item(n)).await.unwrap_or_else(|e| panic!("{e}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(tx);
        sink.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            acked.load(Ordering::SeqCst),
            5,
            "spooled inputs are acknowledged"
        );
        assert!(telemetry.store.spool_bytes.get() > 0);
        let files = std::fs::read_dir(&spool_dir)
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(files >= 1, "no spool files");

        // ClickHouse back (a restart of Argus, say): the spool drains into it, then is empty.
        let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
        let (_stop, stopping) = watch::channel(false);
        let (tx, rx) = mpsc::channel(8);
        let up = ClickHouseStore::with_database(&s.clickhouse, &db);
        let sink = tokio::spawn(run(
            up.clone(),
            Labels::new(&registry),
            rx,
            options,
            telemetry.clone(),
            argus_store::sink::Outlets::default(),
            stopping,
        ));
        tx.send(item(5)).await.unwrap_or_else(|e| panic!("{e}"));
        drop(tx);
        sink.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(acked.load(Ordering::SeqCst), 6);
        assert_eq!(telemetry.store.spool_bytes.get(), 0);
        let (count, sum): (u64, f64) = up
            .query("SELECT count(), sum(value) FROM readings FINAL")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count, 600);
        assert_eq!(sum, (0..6).map(|n| 100.0 * n as f64).sum::<f64>());
        let left = std::fs::read_dir(&spool_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "batch"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(left, 0, "spool files left");
        up.query(&format!("DROP DATABASE {db}"))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(spool_dir);
    });
}

async fn maintenance_notices_and_silences_are_kept_and_read_back_by_window<S: Store>(store: S) {
    use argus_model::{Event, EventKind};
    use argus_store::rows::EventRow;
    ok(store.prepare().await);
    let event = |minute: i64, kind: EventKind| Event {
        enterprise_id: Some("E009".to_owned()),
        source: None,
        event_time: Timestamp(T0 + minute * 60_000),
        receive_time: Timestamp(T0 + minute * 60_000),
        kind,
    };
    let notice = |from: i64, to: i64, reason: &str| EventKind::MaintenanceNotice {
        from: Timestamp(T0 + from * 60_000),
        to: Timestamp(T0 + to * 60_000),
        points: vec![SourceId::from("MINE02-CH4-WF1")],
        reason: reason.to_owned(),
        request: String::new(),
    };
    let ended = event(0, notice(0, 60, "over before"));
    let silence = event(
        10,
        notice(30, 240, "silence by Operator Liu: ventilation works"),
    );
    let state = event(20, EventKind::ProductionState { running: true });
    let batch = RowBatch {
        events: vec![
            EventRow::new(&ended, "kafka"),
            EventRow::new(&silence, "api"),
            EventRow::new(&state, "kafka"),
        ],
        ..RowBatch::default()
    };
    write(&store, batch).await;
    let rows = ok(store
        .notices_until_after(Timestamp(T0 + 120 * 60_000))
        .await);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].transport, "api");
    assert_eq!(rows[0].to_event(), Some(silence));
    let all = ok(store.notices_until_after(Timestamp(0)).await);
    assert_eq!(all.len(), 2, "production states are no notices: {all:?}");
    assert_eq!(all[0].to_event(), Some(ended));
}

/// What detection takes again after a restart: every reading (once, whatever was delivered
/// again) and every event at or after the frontier, in event-time order, as they were.
async fn the_inputs_since_a_checkpoint_are_read_back_in_event_time_order<S: Store>(store: S) {
    use argus_model::{Event, EventKind};
    use argus_store::rows::EventRow;
    ok(store.prepare().await);
    let mut readings: Vec<Reading> = (0..40)
        .rev()
        .map(|m| reading("15010201000101", m, m as f64, DataFlag::N))
        .collect();
    readings.push(reading("UNREGISTERED-1", 30, 1.5, DataFlag::F));
    write(&store, readings_batch(&readings)).await;
    write(&store, readings_batch(&readings[..5])).await; // delivered again
    let event = |minute: i64| Event {
        enterprise_id: Some("E009".to_owned()),
        source: Some(SourceId::from("MINE02-PWR-L1")),
        event_time: Timestamp(T0 + minute * 60_000),
        receive_time: Timestamp(T0 + minute * 60_000 + 1),
        kind: EventKind::ProductionState {
            running: minute % 2 == 0,
        },
    };
    let batch = RowBatch {
        events: [25, 5, 35]
            .map(|m| EventRow::new(&event(m), "kafka"))
            .to_vec(),
        ..RowBatch::default()
    };
    write(&store, batch).await;

    let (rows, events) = ok(store.inputs_since(Timestamp(T0 + 20 * 60_000)).await);
    let back: Vec<Reading> = rows.iter().filter_map(|r| r.to_reading()).collect();
    assert_eq!(back.len(), rows.len(), "every row is a reading again");
    let times: Vec<i64> = back.iter().map(|r| r.event_time.as_millis()).collect();
    assert!(times.is_sorted(), "in event-time order: {times:?}");
    let mut expected: Vec<Reading> = readings
        .iter()
        .filter(|r| r.event_time.as_millis() >= T0 + 20 * 60_000)
        .cloned()
        .collect();
    expected.sort_by_key(|r| (r.event_time, r.source.clone()));
    let mut got = back.clone();
    got.sort_by_key(|r| (r.event_time, r.source.clone()));
    assert_eq!(
        got, expected,
        "21 readings of the point and the unregistered one"
    );
    let events: Vec<Event> = events.iter().filter_map(EventRow::to_event).collect();
    assert_eq!(events, vec![event(25), event(35)]);
}

/// A retried request finds what it did: twenty acknowledgements of one alert under one
/// idempotency key (a client retrying) all get the alert and record one row; the key with
/// another request is refused as reused, another key as a second acknowledgement. A ticket
/// event is found by the key of the request that made it.
async fn a_change_retried_with_its_idempotency_key_finds_its_answer<S: Store>(store: S) {
    use argus_store::RequestKey;
    ok(store.prepare().await);
    let (all, id) = methane_alert(&registry());
    write(&store, transitions_batch(&all[..1], Timestamp(T0 + 61_000))).await;
    let key = |fingerprint: u64, key: &str| RequestKey {
        key: key.to_owned(),
        fingerprint,
    };
    let ack = |request: &RequestKey| Acknowledgement {
        alert_id: id.clone(),
        actor: "Operator Liu".to_owned(),
        note: "seen".to_owned(),
        at: Timestamp(T0 + 120_000),
        request_key: request.stored(),
    };
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, ack) = (store.clone(), ack(&key(7, "ack-1")));
        retries.spawn(async move { store.acknowledge(&ack).await });
    }
    while let Some(answer) = retries.join_next().await {
        let alert = ok(ok(answer));
        assert_eq!(alert.acknowledged_by, "Operator Liu");
    }
    assert_eq!(ok(store.counts().await).alert_acks, 1);
    match store.acknowledge(&ack(&key(8, "ack-1"))).await {
        Err(StoreError::RequestKeyReused { key }) => assert_eq!(key, "ack-1"),
        other => panic!("expected a reused key, got {other:?}"),
    }
    match store.acknowledge(&ack(&key(7, "ack-2"))).await {
        Err(StoreError::AlreadyAcknowledged { .. }) => {}
        other => panic!("expected a second acknowledgement refused, got {other:?}"),
    }

    let mut accepted = ticket_event(0xabc, 3, T0, argus_model::TicketState::Accepted);
    accepted.request_key = key(9, "change:1").stored();
    let batch = RowBatch {
        ticket_events: vec![
            ticket_event(0xabc, 1, T0, argus_model::TicketState::New),
            accepted.clone(),
        ],
        ..RowBatch::default()
    };
    write(&store, batch).await;
    let ticket = format!("{:016x}", 0xabc);
    let found = ok(store.ticket_event_by_request(&ticket, "change:1").await);
    // As written, with the hash the store chained it with (no line 2: it follows nothing).
    accepted.hash = argus_store::audit::line_hash(&accepted);
    assert_eq!(found, Some(accepted));
    assert_eq!(
        ok(store.ticket_event_by_request(&ticket, "change:2").await),
        None
    );
    assert_eq!(ok(store.ticket_event_by_request(&ticket, "").await), None);
}

/// First write wins (issue 12): a reading delivered again with its value is a duplicate (not
/// written again, counted), with another value or flag a conflict (kept apart, with an event
/// for detection, read back after a restart); the record keeps the first value. Recent
/// readings (the remembered newest event time) and old ones (looked up) alike; within a batch
/// too; and a batch written again (a retry after a write that went in) adds nothing.
async fn the_first_value_of_a_reading_stays_and_a_different_later_one_is_a_conflict<S: Store>(
    store: S,
) {
    use argus_model::EventKind;
    use argus_store::rows::EventRow;
    ok(store.prepare().await);
    let now = Timestamp::from_system_time(std::time::SystemTime::now()).as_millis();
    // A recent series (minutes ago) and an old one (days ago), 30 readings each.
    let recent = |i: i64, value: f64, received: i64| Reading {
        source: SourceId::from("15010201000101"),
        metric: MetricCode::Known(Metric::So2),
        value,
        flag: DataFlag::N,
        event_time: Timestamp(now - 3_600_000 + i * 60_000),
        receive_time: Timestamp(now - 3_600_000 + i * 60_000 + received),
        interval: Default::default(),
        corrected: None,
    };
    let old = |i: i64, value: f64, received: i64| {
        let mut r = reading("15010201000105", i, value, DataFlag::N);
        r.receive_time = Timestamp(r.receive_time.as_millis() + received);
        r
    };
    let first: Vec<Reading> = (0..30)
        .flat_map(|i| [recent(i, 10.0, 0), old(i, 20.0, 0)])
        .collect();
    let mut batch = readings_batch(&first);
    ok(store.insert_batch(&mut batch).await);
    assert_eq!((batch.duplicates, batch.conflicts.len()), (0, 0));
    assert_eq!(ok(store.counts().await).readings, 60);

    // Delivered again: 10 of each with their value, 3 of each with another value, 1 of each
    // with another flag; and within the batch one new key twice with two values.
    let mut again: Vec<Reading> = (0..10)
        .flat_map(|i| [recent(i, 10.0, 1), old(i, 20.0, 1)])
        .collect();
    again.extend((10..13).flat_map(|i| [recent(i, 1000.0, 2), old(i, 2000.0, 2)]));
    let mut flagged = [recent(13, 10.0, 3), old(13, 20.0, 3)];
    for r in &mut flagged {
        r.flag = DataFlag::D;
    }
    again.extend(flagged);
    again.push(recent(40, 7.0, 0));
    again.push(recent(40, 8.0, 5));
    let mut batch = readings_batch(&again);
    ok(store.insert_batch(&mut batch).await);
    assert_eq!(batch.duplicates, 20, "the same value again is a duplicate");
    assert_eq!(
        batch.conflicts.len(),
        9,
        "another value or flag is a conflict"
    );
    assert!(
        batch.readings.is_empty() && batch.events.is_empty(),
        "written"
    );
    assert_eq!(ok(store.counts().await).readings, 61, "one new key");
    let conflict = batch
        .conflicts
        .iter()
        .find(|c| c.source == "15010201000105" && c.value == 2000.0)
        .unwrap_or_else(|| panic!("no conflict of the old series: {:?}", batch.conflicts));
    assert_eq!(
        (conflict.stored_value, conflict.stored_flag.as_str()),
        (20.0, "N")
    );

    // The record keeps the first values.
    let back = ok(store
        .readings(
            "15010201000101",
            Timestamp(now - 3_600_000),
            Timestamp(now + 3_600_000),
        )
        .await);
    assert_eq!(back.len(), 31);
    assert!(
        back[..30].iter().all(|r| r.value == 10.0 && r.flag == "N"),
        "{back:?}"
    );
    assert_eq!(back[30].value, 7.0, "the first of the batch");
    let back = ok(store
        .readings("15010201000105", Timestamp(T0), Timestamp(T0 + 3_600_000))
        .await);
    assert!(
        back.iter().all(|r| r.value == 20.0 && r.flag == "N"),
        "{back:?}"
    );

    // The same batch written again (delivered again with the same receive times): no reading
    // is added, the one new key of before is a duplicate now, the conflicts are found again.
    let mut batch = readings_batch(&again);
    ok(store.insert_batch(&mut batch).await);
    assert_eq!((batch.duplicates, batch.conflicts.len()), (21, 9));
    assert_eq!(ok(store.counts().await).readings, 61);

    // The conflicts are inputs of detection after a restart: events at their receive time.
    let (_, events) = ok(store.inputs_since(Timestamp(T0)).await);
    let conflicts: Vec<_> = events
        .iter()
        .filter_map(EventRow::to_event)
        .filter(|e| matches!(e.kind, EventKind::ReadingConflict { .. }))
        .collect();
    // Found twice: the same event twice (detection judges each event once).
    let distinct = conflicts.iter().fold(Vec::new(), |mut seen, e| {
        if !seen.contains(&e) {
            seen.push(e);
        }
        seen
    });
    assert_eq!(
        distinct.len(),
        9,
        "each conflicting delivery: {conflicts:?}"
    );
    let old_one = conflicts
        .iter()
        .find(
            |e| matches!(e.kind, EventKind::ReadingConflict { received, .. } if received == 2000.0),
        )
        .unwrap_or_else(|| panic!("{conflicts:?}"));
    assert_eq!(old_one.event_time, old(10, 0.0, 2).receive_time);
    assert_eq!(old_one.enterprise_id.as_deref(), Some("E001"));
}

/// A logger's hourly and minute values at 10:00 are not the real-time value at 10:00: each is
/// kept (with its corrected value) and read back with its interval, and first-write-wins holds
/// per interval (the same hourly value again is a duplicate, another one a conflict, never a
/// conflict with the real-time value).
async fn a_loggers_averages_are_series_apart_from_its_real_time_values<S: Store>(store: S) {
    use argus_model::Interval;
    ok(store.prepare().await);
    let at = |interval: Interval, value: f64, corrected: Option<f64>| Reading {
        interval,
        corrected,
        ..reading("15010201000101", 600, value, DataFlag::N)
    };
    let first = [
        at(Interval::RealTime, 30.0, None),
        at(Interval::Minute, 31.0, Some(37.0)),
        at(Interval::Hour, 29.0, Some(35.5)),
        at(Interval::Day, 28.0, None),
    ];
    let mut batch = readings_batch(&first);
    ok(store.insert_batch(&mut batch).await);
    assert_eq!((batch.duplicates, batch.conflicts.len()), (0, 0));
    assert_eq!(ok(store.counts().await).readings, 4);
    let mut again = readings_batch(&[
        at(Interval::Hour, 29.0, Some(35.5)),
        at(Interval::Hour, 50.0, None),
    ]);
    ok(store.insert_batch(&mut again).await);
    assert_eq!(again.duplicates, 1, "the same hourly value again");
    assert_eq!(again.conflicts.len(), 1, "another hourly value");
    assert_eq!(again.conflicts[0].data_interval, "hour");
    assert_eq!(again.conflicts[0].stored_value, 29.0);
    assert_eq!(ok(store.counts().await).readings, 4);

    let back = ok(store
        .readings("15010201000101", Timestamp(T0), Timestamp(T0 + 86_400_000))
        .await);
    let back: Vec<Reading> = back.iter().filter_map(|r| r.to_reading()).collect();
    let mut expected = first.to_vec();
    expected.sort_by_key(|r| r.interval);
    let mut back_sorted = back.clone();
    back_sorted.sort_by_key(|r| r.interval);
    assert_eq!(back_sorted, expected);
    // And after a restart, the inputs since a checkpoint hold them all.
    let (since, _) = ok(store.inputs_since(Timestamp(T0)).await);
    assert_eq!(since.len(), 4, "{since:?}");
}

/// Issue 13, item 7: a notice or silence that arrives after an alert fired mutes it: a `muted`
/// transition in its life, the current row muted (and acknowledged still), and its later
/// transitions muted too, whatever order the rows are written in again.
async fn an_alert_muted_after_it_fired_stays_muted_through_its_later_transitions<S: Store>(
    store: S,
) {
    ok(store.prepare().await);
    let ([fired, updated, resolved], id) = methane_alert(&registry());
    write(
        &store,
        transitions_batch(std::slice::from_ref(&fired), Timestamp(T0 + 61_000)),
    )
    .await;
    let ack = Acknowledgement {
        alert_id: id.clone(),
        actor: "Operator Liu".to_owned(),
        note: String::new(),
        at: Timestamp(T0 + 90_000),
        request_key: String::new(),
    };
    ok(store.acknowledge(&ack).await);
    let muted = AlertTransition {
        muted: true,
        muted_later: Some(Arc::from("silence by Operator Wang: drill")),
        ..fired.clone()
    };
    let later = |t: &AlertTransition| AlertTransition {
        muted: true,
        ..t.clone()
    };
    write(&store, transitions_batch(&[muted], Timestamp(T0 + 100_000))).await;
    let row = ok(store.alert(&id).await).unwrap_or_else(|| panic!("alert gone"));
    assert_eq!(
        (row.status.as_str(), row.muted, row.acknowledged_by.as_str()),
        ("firing", 1, "Operator Liu")
    );
    write(
        &store,
        transitions_batch(
            &[later(&updated), later(&resolved)],
            Timestamp(T0 + 400_000),
        ),
    )
    .await;
    // The first transitions written again (a replay after a restart) change nothing.
    write(&store, transitions_batch(&[fired], Timestamp(T0 + 500_000))).await;
    let row = ok(store.alert(&id).await).unwrap_or_else(|| panic!("alert gone"));
    assert_eq!(
        (row.status.as_str(), row.muted, row.acknowledged_by.as_str()),
        ("resolved", 1, "Operator Liu")
    );
    let life: Vec<String> = ok(store.alert_events(&id).await)
        .into_iter()
        .map(|e| e.transition)
        .collect();
    assert_eq!(life, ["fired", "muted", "updated", "resolved"]);
}

/// A ticket's record written in two batches (lines 1-2, then 3): chained across them.
async fn three_lines_of_record<S: Store>(store: &S) {
    use argus_model::TicketState;
    ok(store.prepare().await);
    let first = RowBatch {
        ticket_events: vec![
            ticket_event(7, 2, T0 + 60_000, TicketState::Dispatched),
            ticket_event(7, 1, T0, TicketState::New),
        ],
        ..RowBatch::default()
    };
    write(store, first).await;
    let second = RowBatch {
        ticket_events: vec![ticket_event(7, 3, T0 + 120_000, TicketState::Accepted)],
        tickets: vec![TicketRow::new(&ticket(7, TicketState::Accepted), "team", 3)],
        ..RowBatch::default()
    };
    write(store, second).await;
    let record = ok(store.ticket_events(&format!("{:016x}", 7)).await);
    assert_eq!(record.len(), 3);
    assert!(record.iter().all(|l| l.hash.len() == 64), "{record:?}");
    assert_eq!(record[2].prev_hash, record[1].hash, "linked across batches");

    // An acknowledgement, and two staff silences in two batches: chained too.
    let (all, id) = methane_alert(&registry());
    write(store, transitions_batch(&all[..1], Timestamp(T0 + 61_000))).await;
    let ack = Acknowledgement {
        alert_id: id,
        actor: "Operator Liu".to_owned(),
        note: "called the mine".to_owned(),
        at: Timestamp(T0 + 120_000),
        request_key: String::new(),
    };
    ok(store.acknowledge(&ack).await);
    for minute in [10, 20] {
        let silence = argus_model::Event {
            enterprise_id: Some("E009".to_owned()),
            source: None,
            event_time: Timestamp(T0 + minute * 60_000),
            receive_time: Timestamp(T0 + minute * 60_000),
            kind: argus_model::EventKind::MaintenanceNotice {
                from: Timestamp(T0),
                to: Timestamp(T0 + minute * 60_000),
                points: Vec::new(),
                reason: format!("silence {minute}"),
                request: String::new(),
            },
        };
        let batch = RowBatch {
            events: vec![argus_store::rows::EventRow::new(&silence, "api")],
            ..RowBatch::default()
        };
        write(store, batch).await;
    }
    let silences = ok(store.silences().await);
    assert_eq!(
        silences.iter().map(|s| s.chain_seq).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(silences[1].prev_hash, silences[0].hash);
    let acks = ok(store.acknowledgements().await);
    assert_eq!((acks.len(), acks[0].seq, acks[0].hash.len()), (1, 1, 64));
}

/// `argus audit verify` on the store `config` names: success, and what it printed.
fn audit_verify(config: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_argus"))
        .arg("--config")
        .arg(config)
        .args(["audit", "verify"])
        .output()
        .unwrap_or_else(|e| panic!("argus audit verify: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `argus audit verify` on `config` succeeds (or fails) and prints `expected`.
fn assert_audit(config: &std::path::Path, clean: bool, expected: &str) {
    let (succeeded, text) = audit_verify(config);
    assert!(succeeded == clean && text.contains(expected), "{text}");
}

/// The line `argus audit verify` must name once a byte of line 2 of ticket 7 changed.
const CHANGED: &str = "ticket 0000000000000007: line 2 was changed after it was written";
/// ... once a byte of the acknowledgement changed.
const ACK_CHANGED: &str = "acknowledgements: line 1 was changed after it was written";
/// ... once a byte of the second silence changed.
const SILENCE_CHANGED: &str = "silences: line 2 was changed after it was written";
/// What a clean audit of [`three_lines_of_record`] prints.
const CLEAN: [&str; 3] = [
    "1 tickets, 3 lines verified",
    "ok      acknowledgements     1 lines",
    "ok      silences             2 lines",
];

#[test]
fn audit_verify_finds_a_changed_byte_in_a_ticket_record_on_clickhouse() {
    let id = unique("audit_chain");
    let topics = crate::util::Topics::named(&id);
    let (dir, config) = crate::util::write_config(&id, 0, 0, &topics, "");
    let store = ClickHouseStore::with_database(&settings().clickhouse, &id);
    let rt = runtime();
    rt.block_on(three_lines_of_record(&store));
    for clean in CLEAN {
        assert_audit(&config, true, clean);
    }
    // One byte of one line: "step 2" becomes "step 3" (mutations, applied in the background);
    // of the acknowledgement ("mine" to "mind") and of the second silence ("20" to "21").
    for mutation in [
        "ALTER TABLE ticket_events UPDATE note = 'step 3' WHERE seq = 2",
        "ALTER TABLE alert_acks UPDATE note = 'called the mind' WHERE seq = 1",
        "ALTER TABLE events UPDATE body = replace(body, 'silence 20', 'silence 21') \
         WHERE chain_seq = 2",
    ] {
        ok(rt.block_on(store.query(mutation).execute()));
    }
    crate::util::wait_for("the mutations", std::time::Duration::from_secs(30), || {
        let (ticket, acks, silences) = rt.block_on(async {
            (
                store.ticket_events("0000000000000007").await,
                store.acknowledgements().await,
                store.silences().await,
            )
        });
        ticket.is_ok_and(|r| r.get(1).is_some_and(|l| l.note == "step 3"))
            && acks.is_ok_and(|a| a.first().is_some_and(|a| a.note.ends_with("mind")))
            && silences.is_ok_and(|s| s.get(1).is_some_and(|s| s.body.contains("silence 21")))
    });
    for broken in [CHANGED, ACK_CHANGED, SILENCE_CHANGED] {
        assert_audit(&config, false, broken);
    }
    ok(rt.block_on(store.query(&format!("DROP DATABASE {id}")).execute()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn audit_verify_finds_a_changed_byte_in_a_ticket_record_on_sqlite() {
    let id = unique("audit_chain");
    let topics = crate::util::Topics::named(&id);
    let (dir, config) = crate::util::write_config(&id, 0, 0, &topics, "");
    let text = ok(std::fs::read_to_string(&config));
    let embedded = format!(
        "backend = \"sqlite\"\nsqlite_path = {:?}",
        dir.join("argus.sqlite").display().to_string()
    );
    ok(std::fs::write(
        &config,
        text.replace("backend = \"clickhouse\"", &embedded),
    ));
    let store = ok(SqliteStore::open(&dir.join("argus.sqlite")));
    let rt = runtime();
    rt.block_on(three_lines_of_record(&store));
    for clean in CLEAN {
        assert_audit(&config, true, clean);
    }
    // The record refuses updates; someone with the file drops the guards and edits one byte of
    // a ticket's line, of the acknowledgement and of a silence.
    rt.block_on(async {
        for statement in [
            "DROP TRIGGER ticket_events_append_only_update",
            "DROP TRIGGER alert_acks_append_only_update",
            "DROP TRIGGER events_append_only_update",
        ] {
            ok(store.execute(statement).await);
        }
        for statement in [
            "UPDATE ticket_events SET note = 'step 3' WHERE seq = 2",
            "UPDATE alert_acks SET note = 'called the mind' WHERE seq = 1",
            "UPDATE events SET body = replace(body, 'silence 20', 'silence 21') \
             WHERE chain_seq = 2",
        ] {
            assert_eq!(ok(store.execute(statement).await), 1, "{statement}");
        }
    });
    for broken in [CHANGED, ACK_CHANGED, SILENCE_CHANGED] {
        assert_audit(&config, false, broken);
    }
    let _ = std::fs::remove_dir_all(dir);
}
