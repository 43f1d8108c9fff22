//! Outages against the real services. ClickHouse: ClickHouse is stopped for 60 s while about
//! 200,000 readings flow through Kafka into `argus run`, then started again. Every reading and
//! every alert is in ClickHouse exactly once afterwards, and the alerts are exactly those a
//! replay of the same readings gives. Without a spool the Kafka offsets stand still while
//! nothing can be written; with one, consumption goes on and every message committed during the
//! outage has its rows in the spool.
//!
//! A Mosquitto restart with the shipped (plain) subscription loses none of the QoS 1 readings
//! published while Argus reconnects (with a shared subscription, 338 of 720 were lost in the
//! same test).
//!
//! A test binary of its own: it stops servers the other integration tests use, and cargo runs
//! test binaries one after another.

#[path = "util.rs"]
mod util;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_dataflow::{run_batch, BatchOptions, Input};
use argus_model::registry::PointKind;
use argus_model::{DataFlag, Metric, MetricCode, Reading, Registry, SourceId, Timestamp};
use argus_rules::RuleSet;
use argus_store::ClickHouseStore;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use util::{
    argus_config, free_port, http_get, repo_path, runtime, settings, stack, unique, Running, Topics,
};

const MIN: i64 = 60_000;
const LATENESS_MS: i64 = 300_000;

/// Minute data of the example county's stacks (O2, SO2, NOx) and methane sensors, one Kafka
/// message (a JSON array) per minute, ending two minutes ago; and the same as readings.
fn recorded(registry: &Registry, minutes: i64) -> (Vec<String>, Vec<Reading>) {
    let mut points: Vec<_> = registry
        .points()
        .filter(|p| {
            matches!(
                p.kind,
                PointKind::FlueGasOutlet
                    | PointKind::MineWorkingFace
                    | PointKind::MineHeadingFace
                    | PointKind::MineReturnAirway
            )
        })
        .collect();
    points.sort_by(|a, b| a.mn.cmp(&b.mn));
    let now = Timestamp::from_system_time(std::time::SystemTime::now()).as_millis();
    let start = (now - (minutes + 2) * MIN) / MIN * MIN;
    let (mut messages, mut readings) = (Vec::new(), Vec::new());
    for minute in 0..minutes {
        let t = start + minute * MIN;
        let mut objects = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let values: Vec<(Metric, f64)> = if p.kind == PointKind::FlueGasOutlet {
                let hour = minute / 60;
                let so2 = if i % 4 == 0 && hour % 6 == 1 {
                    48.0
                } else {
                    20.0
                } + (minute % 5) as f64;
                vec![
                    (Metric::Oxygen, 8.0 + (minute % 3) as f64 * 0.1),
                    (Metric::So2, so2),
                    (Metric::Nox, 30.0 + (minute % 7) as f64),
                ]
            } else {
                let spike = i % 3 == 0 && minute % 240 == 17;
                vec![(Metric::MineCh4, if spike { 1.6 } else { 0.3 })]
            };
            let json: Vec<String> = values
                .iter()
                .map(|(m, v)| format!("\"{}\":{v}", m.code()))
                .collect();
            objects.push(format!(
                "{{\"source\":\"{}\",\"ts\":{t},\"values\":{{{}}}}}",
                p.mn,
                json.join(",")
            ));
            for (m, v) in values {
                readings.push(Reading {
                    source: SourceId::from(p.mn.as_str()),
                    metric: MetricCode::Known(m),
                    value: v,
                    flag: DataFlag::N,
                    event_time: Timestamp(t),
                    receive_time: Timestamp(t),
                    interval: Default::default(),
                    corrected: None,
                });
            }
        }
        messages.push(format!("[{}]", objects.join(",")));
    }
    (messages, readings)
}

/// The group's committed offset on partition 0 (0 before any commit).
fn committed(bootstrap: &str, group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("committed offsets: {e}"));
    match offsets.find_partition(topic, 0).map(|p| p.offset()) {
        Some(Offset::Offset(n)) => n,
        _ => 0,
    }
}

/// Readings rows in the spool's batch files.
fn spooled_readings(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "batch"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .map(|v| v["readings"].as_array().map_or(0, Vec::len))
        .sum()
}

/// The two scenarios stop the same server: one at a time.
static ONE_OUTAGE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn without_a_spool_offsets_stand_still_and_nothing_is_lost_or_duplicated() {
    let _one = ONE_OUTAGE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    outage(false);
}

#[test]
fn with_a_spool_consumption_goes_on_and_nothing_is_lost_or_duplicated() {
    let _one = ONE_OUTAGE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    outage(true);
}

fn outage(spool: bool) {
    let s = settings();
    let id = unique("outage");
    let registry_text = std::fs::read_to_string(repo_path("config/registry.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let registry =
        Registry::from_toml_str(&registry_text, "registry.toml").unwrap_or_else(|e| panic!("{e}"));
    let rules_text =
        std::fs::read_to_string(repo_path("config/rules.toml")).unwrap_or_else(|e| panic!("{e}"));
    let rules =
        RuleSet::compile(&rules_text, "rules.toml", &registry).unwrap_or_else(|e| panic!("{e}"));
    let (messages, readings) = recorded(&registry, 1_400);
    let per_message = (readings.len() / messages.len()) as i64;
    assert!(readings.len() >= 200_000, "{} readings", readings.len());

    // What a replay of the same readings raises: the alerts expected in ClickHouse.
    let inputs: Vec<Input> = readings.iter().cloned().map(Input::Reading).collect();
    let expected = run_batch(
        timely::Config::thread(),
        Arc::new(rules),
        Arc::new(inputs),
        BatchOptions::recorded(LATENESS_MS),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A replay expects every registered point from the input's first event time; the live
    // service from its start, after this backlog: the points the input never carries are
    // missing in the replay only.
    let carried: BTreeSet<&str> = readings.iter().map(|r| r.source.as_str()).collect();
    let expected_alerts: BTreeSet<String> = expected
        .transitions
        .iter()
        .filter(|t| {
            t.kind != argus_model::AlertKind::MissingData
                || carried.contains(t.instance.point.as_str())
        })
        .map(|t| format!("{:016x}", t.alert_id))
        .collect();
    assert!(
        expected_alerts.len() > 20,
        "{} alerts",
        expected_alerts.len()
    );

    let topics = Topics::named(&id);
    let (metrics_port, gateway_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(&id);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("argus.toml");
    let rules_section = "allowed_lateness_secs = 300\nmax_delay_secs = 604800\n";
    let mut text = argus_config(
        &id,
        metrics_port,
        gateway_port,
        &format!("argus-outage/{id}"),
        &topics,
        rules_section,
    );
    let spool_dir = dir.join("spool");
    let spool_line = if spool {
        format!("\nspool_path = {:?}", spool_dir.display().to_string())
    } else {
        String::new()
    };
    text = text.replace(
        "batch_max_age_ms = 100",
        &format!("batch_max_age_ms = 200\nretry_max_backoff_ms = 1000{spool_line}"),
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));

    let rt = runtime();
    let kafka = || {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &s.kafka.bootstrap_servers);
        c
    };
    // One partition: the minutes arrive in order, none later than the allowed lateness.
    topics.create(&rt, 1);

    let log = std::fs::File::create(dir.join("argus.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["--config", &config.display().to_string(), "run", "-w", "2"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn argus: {e}"));
    let mut argus = Running(child);
    let store = ClickHouseStore::with_database(&s.clickhouse, &id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt
        .block_on(
            store
                .query("SELECT count() FROM readings")
                .fetch_one::<u64>(),
        )
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "argus did not create its tables within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Produce in phases around a 60 s outage, so readings flow while ClickHouse is down however
    // long its shutdown takes: 300 messages before the stop, 800 while it is down (half before
    // the first look at the committed offsets, half paced after it), 300 after it returns.
    let producer: FutureProducer = kafka().create().unwrap_or_else(|e| panic!("{e}"));
    let topic = topics.readings.clone();
    let send = |batch: &[String], pause: Duration| {
        rt.block_on(async {
            for chunk in batch.chunks(70) {
                for m in chunk {
                    producer
                        .send(
                            FutureRecord::to(&topic).key("k").payload(m),
                            Duration::from_secs(30),
                        )
                        .await
                        .unwrap_or_else(|(e, _)| panic!("{e}"));
                }
                tokio::time::sleep(pause).await;
            }
        });
    };
    let (before, rest) = messages.split_at(300);
    let (during, after) = rest.split_at(800);
    let (during_a, during_b) = during.split_at(400);
    send(before, Duration::from_millis(500));
    stack(&["stop", "clickhouse"]); // returns once the server is down
    let down = Instant::now();
    send(during_a, Duration::from_millis(200));
    std::thread::sleep(Duration::from_secs(5));
    let frozen = committed(&s.kafka.bootstrap_servers, &id, &topics.readings);
    send(during_b, Duration::from_millis(1_000));
    std::thread::sleep(Duration::from_secs(60).saturating_sub(down.elapsed()));
    let still = committed(&s.kafka.bootstrap_servers, &id, &topics.readings);
    if spool {
        // Acknowledged from the spool: consumption went on, and every message committed since
        // (all pre-outage acknowledgements were committed within the first seconds) has its
        // rows on disk.
        assert!(
            still > frozen,
            "no progress during the outage: offset {still}"
        );
        let spooled = spooled_readings(&spool_dir);
        assert!(
            (still - frozen) * per_message <= spooled as i64,
            "{} messages committed during the outage, {spooled} readings spooled",
            still - frozen
        );
        let metrics = http_get(metrics_port, "/metrics").unwrap_or_default();
        assert!(util::sample(&metrics, "argus_store_spool_bytes") > 0);
    } else {
        assert_eq!(
            frozen, still,
            "offsets were committed while nothing could be written"
        );
    }
    stack(&["start", "clickhouse"]);

    // Whatever was committed is in ClickHouse; then everything arrives, once.
    let durable: u64 = rt
        .block_on(
            store
                .query("SELECT count() FROM readings FINAL")
                .fetch_one(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    if !spool {
        assert!(
            durable as i64 >= still * per_message,
            "{durable} rows, offset {still}"
        );
    }
    send(after, Duration::from_millis(200));
    let total = readings.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let count: u64 = rt
            .block_on(
                store
                    .query("SELECT count() FROM readings FINAL")
                    .fetch_one(),
            )
            .unwrap_or(0);
        if count == total {
            break;
        }
        assert!(count < total, "{count} readings stored, {total} sent");
        assert!(
            Instant::now() < deadline,
            "{count} of {total} readings stored after 180 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let distinct: u64 = rt
        .block_on(
            store
                .query("SELECT uniqExact(source, metric, event_ms) FROM readings")
                .fetch_one(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(distinct, total);

    // Detection caught up too: the alerts are exactly those of the replay.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stored: BTreeSet<String> = BTreeSet::new();
    while stored != expected_alerts && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        stored = rt
            .block_on(
                store
                    .query("SELECT DISTINCT alert_id FROM alerts")
                    .fetch_all::<String>(),
            )
            .unwrap_or_default()
            .into_iter()
            .collect();
    }
    assert_eq!(
        stored, expected_alerts,
        "stored alerts differ from the replay's"
    );
    let metrics = http_get(metrics_port, "/metrics").unwrap_or_default();
    assert!(metrics.contains("argus_detect_late_total 0"), "late inputs");
    let failures = util::sample(&metrics, "argus_store_write_failures_total");
    assert!(failures > 0, "the outage was not seen");
    // Offsets are committed every second after the acknowledgements: the last ones follow.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut offset = committed(&s.kafka.bootstrap_servers, &id, &topics.readings);
    while offset < 1_400 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        offset = committed(&s.kafka.bootstrap_servers, &id, &topics.readings);
    }
    assert_eq!(
        offset as usize, 1_400,
        "every message committed once written"
    );
    if spool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while spooled_readings(&spool_dir) > 0 {
            assert!(Instant::now() < deadline, "the spool did not drain");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let pid = argus.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = argus.0.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "argus exited with {status:?}");
    util::clean_up(&rt, &topics, &store, &id, &dir);
}

/// Issue 12, item 5: a Mosquitto restart lost 103 of 720 broker-acknowledged QoS 1 readings
/// with the then shipped shared subscription (Mosquitto does not queue a shared subscription's
/// messages for an offline session). With the shipped plain subscription, what is published
/// while Argus reconnects after the restart is queued for its session and arrives, all of it.
#[test]
fn a_mosquitto_restart_loses_nothing_with_the_shipped_subscription() {
    use argus_ingest::{DecodeOptions, Decoder, PayloadKind, Record};
    use argus_mqtt::{MqttSource, Subscription};
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

    let _one = ONE_OUTAGE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = settings();
    assert_eq!(
        s.mqtt.shared_group, None,
        "the shipped config subscribes plainly"
    );
    let id = unique("outage_mqtt");
    let prefix = format!("argus-outage/{id}");
    let mut mqtt = s.mqtt.clone();
    mqtt.client_id = util::client_id("outsrc");
    let registry = Registry::from_toml_str(
        &std::fs::read_to_string(repo_path("config/registry.toml")).unwrap_or_default(),
        "registry.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let decoder = Arc::new(Decoder::new(Arc::new(registry), DecodeOptions::default()));
    let telemetry = argus_telemetry::Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
    let subscriptions = vec![Subscription {
        filter: format!("{prefix}/readings/+/+"),
        kind: PayloadKind::JsonReadings,
    }];
    let source = MqttSource::with_subscriptions(&mqtt, subscriptions, decoder, telemetry)
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = runtime();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(source.run(tx, async {
        let _ = stopped.await;
    }));
    let received: Arc<std::sync::Mutex<BTreeSet<i64>>> = Arc::default();
    let seen = Arc::clone(&received);
    rt.spawn(async move {
        while let Some(envelope) = rx.recv().await {
            let mut seen = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for record in &envelope.records {
                if let Record::Reading(r) = record {
                    seen.insert(r.event_time.as_millis());
                }
            }
            drop(seen);
            envelope.ack.done();
        }
    });
    let base = Timestamp::from_system_time(std::time::SystemTime::now()).as_millis() - 60_000;
    let publish = |from: i64, to: i64| {
        let s = settings();
        let topic = format!("{prefix}/readings/E001/OUTAGE-MQTT-1");
        rt.block_on(async move {
            let mut o =
                MqttOptions::new(util::client_id("outpub"), s.mqtt.host.clone(), s.mqtt.port);
            if let Some(c) = &s.mqtt.credentials {
                o.set_credentials(c.username.clone(), c.password.clone());
            }
            let (client, mut eventloop) = AsyncClient::new(o, 1_000);
            for n in from..to {
                let payload = format!(
                    r#"{{"source":"OUTAGE-MQTT-1","ts":{},"values":{{"a21026":{n}}}}}"#,
                    base + n
                );
                client
                    .publish(&topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let (mut acked, deadline) = (0, tokio::time::Instant::now() + Duration::from_secs(30));
            while acked < to - from {
                match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                    Ok(Ok(_)) => {}
                    other => panic!("publishing: {acked} acknowledged, then {other:?}"),
                }
            }
        });
    };
    let count = || {
        received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    };
    let wait = |n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while count() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {n} readings",
                count()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Argus subscribes, takes a first batch; then the broker restarts and, while Argus is
    // still reconnecting, 360 more readings are published and acknowledged by the broker.
    let started = Instant::now();
    loop {
        publish(0, 1);
        std::thread::sleep(Duration::from_millis(300));
        if count() == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the source never subscribed"
        );
    }
    publish(1, 360);
    wait(360, "before the restart");
    stack(&["stop", "mosquitto"]);
    stack(&["start", "mosquitto"]);
    publish(360, 720);
    wait(720, "after the restart");
    let got = received
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let expected: BTreeSet<i64> = (0..720).map(|n| base + n).collect();
    assert_eq!(got, expected);
    eprintln!(
        "outage: mosquitto restart: 720 of 720 readings arrived in {:?}",
        started.elapsed()
    );
    let _ = stop.send(());
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    });
}
