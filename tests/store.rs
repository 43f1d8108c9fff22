//! The ClickHouse store against the real server of the local stack: migrations applied once and
//! recorded, the column check, readings, alert transitions and rejected inputs written and read
//! back, and replays that do not duplicate.

use std::sync::Arc;

use argus_dataflow::AlertTransition;
use argus_ingest::{DeadLetter, Reason, Transport};
use argus_model::{DataFlag, Metric, MetricCode, Reading, Registry, SourceId, Timestamp};
use argus_rules::{alert_id, RuleSet, Transition};
use argus_store::migrations::MIGRATIONS;
use argus_store::{ClickHouseStore, StoreError};

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
    }
}

#[test]
fn migrations_apply_once_and_rows_round_trip_without_duplicates_on_replay() {
    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let registry = registry();
        let db = unique("argus_store");
        let store = ClickHouseStore::with_database(&s.clickhouse, &db, &registry);

        // Migrations: all applied on a fresh database, none the second time, all recorded.
        let applied = store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let all: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(applied, all);
        let again = store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(again.is_empty(), "{again:?}");
        let recorded: Vec<u32> = store
            .query("SELECT version FROM schema_migrations FINAL ORDER BY version")
            .fetch_all()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recorded, all);
        store.check_columns().await.unwrap_or_else(|e| panic!("{e}"));

        // Readings: 3 points x 600 minutes, some invalid; the same batch again (a replay).
        let mut readings = Vec::new();
        for source in ["15010201000101", "15010201000105", "UNKNOWN-LOGGER"] {
            for minute in 0..600 {
                let flag = if minute % 10 == 0 { DataFlag::M } else { DataFlag::N };
                readings.push(reading(source, minute, 20.0 + (minute % 7) as f64, flag));
            }
        }
        store.insert_readings(&readings).await.unwrap_or_else(|e| panic!("{e}"));
        store.insert_readings(&readings).await.unwrap_or_else(|e| panic!("{e}"));
        let (count, sum): (u64, f64) = store
            .query("SELECT count(), sum(value) FROM readings FINAL")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count, readings.len() as u64);
        assert_eq!(sum, readings.iter().map(|r| r.value).sum::<f64>());
        let enterprise: String = store
            .query("SELECT any(enterprise_id) FROM readings WHERE source = '15010201000101'")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(enterprise, "E001");
        // The hourly rollup holds the valid values (54 of every 60 minutes, per insert).
        let (samples, avg): (u64, f64) = store
            .query(
                "SELECT countMerge(samples), avgMerge(avg_value) FROM readings_1h \
                 WHERE source = '15010201000101' AND hour = toDateTime(?)",
            )
            .bind(T0 / 1000 + 3600)
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(samples, 2 * 54, "two inserts of 54 valid minutes");
        let hour: Vec<f64> = readings
            .iter()
            .filter(|r| {
                r.source.as_str() == "15010201000101"
                    && (60..120).contains(&((r.event_time.as_millis() - T0) / 60_000))
                    && r.is_valid()
            })
            .map(|r| r.value)
            .collect();
        let expected = hour.iter().sum::<f64>() / hour.len() as f64;
        assert!((avg - expected).abs() < 1e-9, "{avg} vs {expected}");

        // Alert transitions: fired, updated, resolved, and all of them again.
        let rules = RuleSet::compile(
            &std::fs::read_to_string(repo_path("config/rules.toml")).unwrap_or_else(|e| panic!("{e}")),
            "rules.toml",
            &registry,
        )
        .unwrap_or_else(|e| panic!("{e}"));
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
        };
        let fired = transition(Transition::Fired { started_at: started, value: 1.6 });
        let updated = transition(Transition::Updated { started_at: started, value: 2.1 });
        let resolved = transition(Transition::Resolved {
            started_at: started,
            ended_at: Timestamp(T0 + 300_000),
            peak: 2.1,
            mean: 1.8,
        });
        let now = Timestamp(T0 + 400_000);
        store.insert_transitions(std::slice::from_ref(&fired), now).await.unwrap_or_else(|e| panic!("{e}"));
        let status: String = store
            .query("SELECT status FROM alerts FINAL WHERE alert_id = ?")
            .bind(format!("{id:016x}"))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, "firing");
        let all = [fired, updated, resolved];
        store.insert_transitions(&all[1..], now).await.unwrap_or_else(|e| panic!("{e}"));
        store.insert_transitions(&all, Timestamp(now.as_millis() + 1)).await.unwrap_or_else(|e| panic!("{e}"));
        let (status, town, ended, peak, limit): (String, String, i64, f64, f64) = store
            .query("SELECT status, town, ended_ms, peak, limit_value FROM alerts FINAL WHERE alert_id = ?")
            .bind(format!("{id:016x}"))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((status.as_str(), ended, peak), ("resolved", T0 + 300_000, 2.1));
        assert!(!town.is_empty());
        assert_eq!(limit, 1.5);
        let events: Vec<String> = store
            .query("SELECT transition FROM alert_events FINAL WHERE alert_id = ? ORDER BY transition")
            .bind(format!("{id:016x}"))
            .fetch_all()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(events, ["fired", "resolved", "updated"]);
        let alerts: u64 = store
            .query("SELECT uniqExact(alert_id) FROM alerts")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(alerts, 1);

        // Rejected inputs.
        let letter = DeadLetter::new(
            Transport::Kafka,
            "kafka:argus.readings/0@7".to_owned(),
            Reason::BadJson,
            "not valid JSON: expected value at line 1 column 1".to_owned(),
            now,
            b"{oops",
        );
        store.insert_rejected(&[letter]).await.unwrap_or_else(|e| panic!("{e}"));
        let (reason, origin, raw): (String, String, String) = store
            .query("SELECT reason, origin, raw FROM rejected")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((reason.as_str(), origin.as_str(), raw.as_str()), ("bad_json", "kafka:argus.readings/0@7", "{oops"));

        store.query(&format!("DROP DATABASE {db}")).execute().await.unwrap_or_else(|e| panic!("{e}"));
    });
}

#[test]
fn a_table_with_other_columns_is_refused_naming_it() {
    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let db = unique("argus_store_bad");
        let store = ClickHouseStore::with_database(&s.clickhouse, &db, &registry());
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
fn the_sink_acknowledges_only_once_rows_are_written() {
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
        let store =
            ClickHouseStore::with_database(&unreachable, &unique("argus_sink_down"), &registry);
        let sink = tokio::spawn(run(store, rx, options.clone(), telemetry.clone(), stopping));
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

        // Reachable: every input is acknowledged once its rows are in, and they are.
        let db = unique("argus_sink_up");
        let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
        let (_stop, stopping) = watch::channel(false);
        let (tx, rx) = mpsc::channel(8);
        let store = ClickHouseStore::with_database(&s.clickhouse, &db, &registry);
        let sink = tokio::spawn(run(store.clone(), rx, options, telemetry.clone(), stopping));
        for n in 1..=5 {
            tx.send(item(n)).await.unwrap_or_else(|e| panic!("{e}"));
        }
        drop(tx);
        sink.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(acked.load(Ordering::SeqCst), 5);
        let count: u64 = store
            .query("SELECT count() FROM readings FINAL")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count, 500);
        store
            .query(&format!("DROP DATABASE {db}"))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
}

#[test]
fn while_clickhouse_is_unreachable_rows_are_spooled_acknowledged_and_written_later_in_order() {
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
        let down = ClickHouseStore::with_database(&unreachable, &db, &registry);
        let sink = tokio::spawn(run(down, rx, options.clone(), telemetry.clone(), stopping));
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
        let up = ClickHouseStore::with_database(&s.clickhouse, &db, &registry);
        let sink = tokio::spawn(run(up.clone(), rx, options, telemetry.clone(), stopping));
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

#[test]
fn open_tickets_are_read_back_as_written() {
    use argus_model::{Severity, Ticket, TicketState};
    use argus_store::rows::{TicketEventRow, TicketRow};
    use argus_tickets::{EventKind, Role, TicketEvent};

    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let db = unique("argus_tickets");
        let store = ClickHouseStore::with_database(&s.clickhouse, &db, &registry());
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let ticket = |id: u64, state: TicketState| Ticket {
            ticket_id: id,
            alert_ids: vec![0xabc, 0xdef],
            enterprise_id: "E001".to_owned(),
            town: "T01".to_owned(),
            department: "environment".to_owned(),
            severity: Severity::Red,
            state,
            created_at: Timestamp(T0),
            deadline: Some(Timestamp(T0 + 7_200_000)),
            outcome: None,
        };
        let event = |id: u64, seq: u32, at: i64| TicketEvent {
            ticket_id: id,
            seq,
            at: Timestamp(at),
            actor: "argus".to_owned(),
            role: Role::System,
            kind: EventKind::Created,
            from: None,
            to: TicketState::New,
            note: String::new(),
            alert_ids: vec![0xabc],
            outcome: None,
        };
        let open = ticket(1, TicketState::Dispatched);
        let mut closed = ticket(2, TicketState::Closed);
        closed.outcome = Some(argus_model::TicketOutcome::FalseAlarm);
        let events = vec![
            TicketEventRow::new(&event(1, 1, T0)),
            TicketEventRow::new(&event(1, 2, T0 + 60_000)),
            TicketEventRow::new(&event(2, 1, T0)),
        ];
        let rows = vec![
            TicketRow::new(&ticket(1, TicketState::New), "team", 1),
            TicketRow::new(&open, "team", 2),
            TicketRow::new(&closed, "team", 6),
        ];
        store
            .insert_tickets(events, rows)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let back = store.open_tickets().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.len(), 1, "{back:?}");
        let (row, at) = &back[0];
        assert_eq!((row.version, *at), (2, T0 + 60_000));
        assert_eq!(row.to_ticket(), Some(open));
        store
            .query(&format!("DROP DATABASE {db}"))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
}
