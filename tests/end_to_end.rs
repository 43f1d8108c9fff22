//! End to end through the `argus` binary and the real services: bad inputs on every transport
//! (MQTT, Kafka, HJ 212 over TCP) land in the dead-letter topic with their reason and origin,
//! and good ones are counted as records.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use rumqttc::{AsyncClient, MqttOptions, QoS};

use crate::util::{
    argus_config, argus_user, client_id, free_port, http_get, http_get_as, http_post, now_ms,
    repo_path, runtime, sample, settings, unique, wait_for, write_config, Running, Topics,
};

#[test]
fn bad_inputs_on_every_transport_reach_the_dead_letter_topic() {
    let s = settings();
    let id = unique("e2e");
    let topic = |name: &str| format!("{id}.{name}");
    let (readings, hj212, events, dlq) = (
        topic("readings"),
        topic("hj212"),
        topic("events"),
        topic("dlq"),
    );
    let (metrics_port, gateway_port) = (free_port(), free_port());
    let mqtt_prefix = format!("argus-e2e/{id}");
    let credentials = s
        .mqtt
        .credentials
        .clone()
        .unwrap_or_else(|| panic!("no mqtt credentials"));

    let dir = std::env::temp_dir().join(&id);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("argus.toml");
    let topics = Topics {
        readings: readings.clone(),
        hj212: hj212.clone(),
        events: events.clone(),
        dlq: dlq.clone(),
        tickets: format!("{id}.tickets"),
    };
    let text = argus_config(&id, metrics_port, gateway_port, &mqtt_prefix, &topics, "");
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));

    let rt = runtime();
    let kafka_config = || {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &s.kafka.bootstrap_servers);
        c
    };
    let admin: AdminClient<DefaultClientContext> =
        kafka_config().create().unwrap_or_else(|e| panic!("{e}"));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    rt.block_on(async {
        let new: Vec<NewTopic> = [&readings, &hj212, &events, &dlq]
            .iter()
            .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
            .collect();
        let created = admin
            .create_topics(&new, &options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(created.iter().all(Result::is_ok), "{created:?}");
    });

    let child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["--config", &config.display().to_string(), "run"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn argus: {e}"));
    let mut argus = Running(child);
    let connected = "argus_mqtt_connections_total{event=\"connected\"} 1";
    wait_for("argus to connect to mqtt", Duration::from_secs(30), || {
        http_get(metrics_port, "/metrics").is_some_and(|m| m.contains(connected))
    });

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let good =
        format!("{{\"source\":\"15010201000101\",\"ts\":{now},\"values\":{{\"a21026\":20.5}}}}");
    let mqtt_topic = format!("{mqtt_prefix}/readings/E001/15010201000101");
    let bad_crc =
        std::fs::read_to_string(repo_path("").join("../shared/conformance/hj212/bad-crc.txt"))
            .unwrap_or_else(|e| panic!("{e}"));
    let bad_crc = format!("{}\r\n", bad_crc.trim_end());
    rt.block_on(async {
        // MQTT: one bad, one good.
        let mut o = MqttOptions::new(client_id("e2epub"), s.mqtt.host.clone(), s.mqtt.port);
        o.set_credentials(credentials.username.clone(), credentials.password.clone());
        let (client, mut eventloop) = AsyncClient::new(o, 10);
        let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        // The SUBSCRIBE follows the CONNACK: send the good reading until Argus has counted it,
        // then the bad one, which is then sure to be seen.
        let deadline = Instant::now() + Duration::from_secs(20);
        let counted = "argus_ingest_records_total{transport=\"mqtt\"} ";
        loop {
            client
                .publish(&mqtt_topic, QoS::AtLeastOnce, false, good.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            tokio::time::sleep(Duration::from_millis(200)).await;
            let metrics = http_get(metrics_port, "/metrics").unwrap_or_default();
            if metrics
                .lines()
                .any(|l| l.starts_with(counted) && !l.ends_with(" 0"))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "argus did not receive mqtt readings within 20 s"
            );
        }
        client
            .publish(&mqtt_topic, QoS::AtLeastOnce, false, "{oops")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        poller.abort();

        // Kafka: one bad event, one good reading.
        let producer: FutureProducer = kafka_config().create().unwrap_or_else(|e| panic!("{e}"));
        for (t, payload) in [
            (&events, "{\"type\":\"meteor\"}"),
            (&readings, good.as_str()),
        ] {
            let record = FutureRecord::to(t).key("k").payload(payload);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("{e}"));
        }
    });
    // HJ 212 over TCP: a packet with a bad CRC.
    let mut logger =
        TcpStream::connect(("127.0.0.1", gateway_port)).unwrap_or_else(|e| panic!("gateway: {e}"));
    logger
        .write_all(bad_crc.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));

    // Every bad input appears in the dead-letter topic with its transport, origin and reason.
    let letters: BTreeMap<String, (String, String, Vec<u8>)> = rt.block_on(async {
        let consumer: StreamConsumer = kafka_config()
            .set("group.id", unique("e2e_dlq_reader"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap_or_else(|e| panic!("{e}"));
        consumer
            .subscribe(&[&dlq])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut letters = BTreeMap::new();
        while letters.len() < 3 {
            let m = match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
                Ok(Ok(m)) => m,
                other => panic!("dead letters so far {letters:?}, then {other:?}"),
            };
            let header = |name: &str| {
                m.headers()
                    .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            let raw = m.payload().unwrap_or_default().to_vec();
            letters.insert(
                header("argus-transport"),
                (header("argus-reason"), header("argus-origin"), raw),
            );
        }
        letters
    });
    assert_eq!(letters["mqtt"].0, "bad_json");
    assert_eq!(
        letters["mqtt"].1,
        format!("mqtt:{mqtt_prefix}/readings/E001/15010201000101")
    );
    assert_eq!(letters["mqtt"].2, b"{oops");
    assert_eq!(letters["kafka"].0, "bad_schema");
    assert_eq!(letters["kafka"].1, format!("kafka:{events}/0@0"));
    assert_eq!(letters["hj212_tcp"].0, "bad_crc");
    assert!(
        letters["hj212_tcp"].1.starts_with("tcp:127.0.0.1:"),
        "{:?}",
        letters["hj212_tcp"]
    );
    assert_eq!(letters["hj212_tcp"].2, bad_crc.as_bytes());

    // The good Kafka reading went through as a record (the MQTT ones were counted above).
    wait_for("records counted", Duration::from_secs(10), || {
        http_get(metrics_port, "/metrics")
            .is_some_and(|m| m.contains("argus_ingest_records_total{transport=\"kafka\"} 1"))
    });

    // The dead letters are also in ClickHouse's `rejected_inputs`, for staff to see per feed.
    let store = argus_store::ClickHouseStore::with_database(&s.clickhouse, &id);
    let mut reasons: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while reasons.len() < 3 && Instant::now() < deadline {
        reasons = rt
            .block_on(
                store
                    .query("SELECT transport, reason FROM rejected_inputs FINAL ORDER BY transport")
                    .fetch_all(),
            )
            .unwrap_or_default();
        std::thread::sleep(Duration::from_millis(200));
    }
    let reasons: Vec<(&str, &str)> = reasons
        .iter()
        .map(|(t, r)| (t.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("hj212_tcp", "bad_crc"),
            ("kafka", "bad_schema"),
            ("mqtt", "bad_json")
        ]
    );

    let pid = argus.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .map(|s| s.success());
    assert_eq!(killed.ok(), Some(true));
    let status = argus.0.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "argus exited with {status:?}");

    rt.block_on(async {
        let _ = admin
            .delete_topics(&[&readings, &hj212, &events, &dlq], &options)
            .await;
        let _ = store.query(&format!("DROP DATABASE {id}")).execute().await;
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn readings_and_events_through_kafka_raise_and_resolve_alerts_on_two_workers() {
    let s = settings();
    let id = unique("e2e_detect");
    let topics = Topics::named(&id);
    let (metrics_port, gateway_port) = (free_port(), free_port());
    // Event time one second behind each source; never more than a minute behind the clock.
    let rules = "allowed_lateness_secs = 1\nmax_delay_secs = 60\nadvance_every_ms = 100\n";
    let (dir, config) = write_config(&id, metrics_port, gateway_port, &topics, rules);
    let rt = runtime();
    let kafka_config = || {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &s.kafka.bootstrap_servers);
        c
    };
    topics.create(&rt, 2);

    // The coal-mine team of Shaliang (E008's town), a dispatcher and a monitor, each with a
    // token, in the store before Argus starts.
    let team = argus_user(&config, "sun", "team", "shaliang", "coal");
    let dispatcher = argus_user(&config, "chen", "dispatcher", "", "");
    let monitor = argus_user(&config, "liu", "monitor", "", "");

    let log = dir.join("argus.log");
    let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["--config", &config.display().to_string(), "run", "-w", "2"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn argus: {e}"));
    let mut argus = Running(child);
    wait_for("argus to serve metrics", Duration::from_secs(30), || {
        http_get(metrics_port, "/metrics").is_some_and(|m| m.contains("argus_detect_inputs_total"))
    });

    // A working-face methane sensor reaches the power-cut level and its area's power is never
    // reported cut; methane falls back below the restore level 35 s later.
    let now = now_ms();
    let base = now - 50_000;
    let methane = |t: i64, v: f64| {
        format!("{{\"source\":\"MINE01-CH4-WF1\",\"ts\":{t},\"values\":{{\"mine_ch4\":{v}}}}}")
    };
    // The event is of now: timestamped like the readings (50 s ago), it was late once the
    // readings' source had moved event time past it first (which topic is polled first).
    let messages = [
        (
            &topics.events,
            "15010201000102",
            format!(
                "{{\"type\":\"production_state\",\"source\":\"15010201000102\",\"ts\":{now},\"running\":true}}"
            ),
        ),
        (&topics.readings, "MINE01-CH4-WF1", methane(base, 0.3)),
        (&topics.readings, "MINE01-CH4-WF1", methane(base + 5_000, 1.6)),
        (&topics.readings, "MINE01-CH4-WF1", methane(base + 40_000, 0.5)),
        (&topics.readings, "MINE01-CH4-WF1", methane(base + 45_000, 0.4)),
    ];
    rt.block_on(async {
        let producer: FutureProducer = kafka_config().create().unwrap_or_else(|e| panic!("{e}"));
        for (topic, key, payload) in &messages {
            let record = FutureRecord::to(topic).key(*key).payload(payload.as_str());
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("{e}"));
        }
    });

    // The alarm and power-cut thresholds fire and resolve; the missing power cut fires after
    // its 30 s feedback delay and resolves with the methane.
    let expected = [
        (
            "argus_alert_transitions_total{kind=\"threshold\",transition=\"fired\"}",
            2,
        ),
        (
            "argus_alert_transitions_total{kind=\"threshold\",transition=\"resolved\"}",
            2,
        ),
        (
            "argus_alert_transitions_total{kind=\"power_cut_failure\",transition=\"fired\"}",
            1,
        ),
        (
            "argus_alert_transitions_total{kind=\"power_cut_failure\",transition=\"resolved\"}",
            1,
        ),
        ("argus_detect_inputs_total{kind=\"reading\"}", 4),
        ("argus_detect_inputs_total{kind=\"event\"}", 1),
    ];
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        last = http_get(metrics_port, "/metrics").unwrap_or(last);
        if expected
            .iter()
            .all(|(series, n)| sample(&last, series) == *n)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert transitions not as expected within 120 s: {:?}",
            expected
                .iter()
                .map(|(series, _)| (series, sample(&last, series)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(sample(&last, "argus_detect_late_total"), 0);

    // The coal department's team accepts the ticket through the API; the same change again, a
    // dispatcher starting the inspection, or a ticket that does not exist are refused.
    let store = argus_store::ClickHouseStore::with_database(&s.clickhouse, &id);
    let mut ticket = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ticket.is_empty() {
        assert!(Instant::now() < deadline, "no ticket stored within 20 s");
        std::thread::sleep(Duration::from_millis(200));
        ticket = rt
            .block_on(
                store
                    .query("SELECT any(ticket_id) FROM tickets")
                    .fetch_one::<String>(),
            )
            .unwrap_or_default();
    }
    let path = format!("/api/tickets/{ticket}/state");
    let accept = r#"{"to": "accepted", "note": "on our way"}"#;
    let post = |path: &str, body: &str, token: &str| {
        http_post(metrics_port, path, body, token).unwrap_or_else(|| panic!("no answer"))
    };
    let (status, body) = post(&path, accept, "argus_not_a_token");
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(&path, accept, &team);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"seq\":5")
            && body.contains("\"to\":\"accepted\"")
            && body.contains("\"actor\":\"sun display (sun)\""),
        "{body}"
    );
    let (status, body) = post(&path, accept, &team);
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("cannot go from accepted to accepted"),
        "{body}"
    );
    let inspect = r#"{"to": "inspecting"}"#;
    let (status, body) = post(&path, inspect, &dispatcher);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("a dispatcher may not move"), "{body}");
    let (status, _) = post("/api/tickets/00000000000000ff/state", accept, &team);
    assert_eq!(status, 404);
    let (status, body) = post(&path, "{\"to\": \"nowhere\"}", &team);
    assert_eq!(status, 400, "{body}");

    // Staff acknowledge the methane alarm, once; the alert shows who did.
    let alarm: String = rt
        .block_on(
            store
                .query("SELECT any(alert_id) FROM alerts FINAL WHERE rule_id = 'methane-alarm'")
                .fetch_one(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let ack_path = format!("/api/alerts/{alarm}/ack");
    let ack = r#"{"note": "called the mine's dispatcher"}"#;
    let (status, body) = post(&ack_path, ack, &team);
    assert_eq!(status, 403, "only monitors acknowledge: {body}");
    let (status, body) = post(&ack_path, ack, &monitor);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"acknowledged_by\":\"liu display (liu)\""),
        "{body}"
    );
    let (status, body) = post(&ack_path, ack, &monitor);
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("already acknowledged by liu display (liu)"),
        "{body}"
    );
    let metrics = http_get(metrics_port, "/metrics").unwrap_or_default();
    assert_eq!(sample(&metrics, "argus_alert_acknowledgements_total"), 1);
    let (status, _) = post("/api/alerts/00000000000000ff/ack", ack, &monitor);
    assert_eq!(status, 404);
    let (status, _) = post(&ack_path, r#"{"actor": "Inspector Sun"}"#, &monitor);
    assert_eq!(status, 400);
    let shown = http_get_as(metrics_port, &format!("/api/alerts/{alarm}"), &team)
        .unwrap_or_else(|| panic!("no answer"));
    assert!(
        shown.contains("\"acknowledged_by\":\"liu display (liu)\"")
            && shown.contains("\"transition\":\"fired\"")
            && shown.contains("\"transition\":\"resolved\""),
        "{shown}"
    );

    let pid = argus.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .map(|s| s.success());
    assert_eq!(killed.ok(), Some(true));
    let status = argus.0.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "argus exited with {status:?}");
    let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{e}"));
    let fired = log
        .lines()
        .find(|l| l.contains("alert fired") && l.contains("power-cut-failure"))
        .unwrap_or_else(|| panic!("no power-cut-failure alert in the log:\n{log}"));
    assert!(fired.contains("MINE01-CH4-WF1"), "{fired}");
    assert!(log.contains("detection drained"), "{log}");
    assert!(log.contains("store sink drained"), "{log}");

    // The record in ClickHouse: the readings, and the alerts with their transitions.
    let store = argus_store::ClickHouseStore::with_database(&s.clickhouse, &id);
    rt.block_on(async {
        let readings: u64 = store
            .query("SELECT count() FROM readings FINAL WHERE source = 'MINE01-CH4-WF1'")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(readings, 4);
        let mut alerts: Vec<(String, String, String)> = store
            .query("SELECT rule_id, status, town FROM alerts FINAL ORDER BY rule_id")
            .fetch_all()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        alerts.sort();
        let rules: Vec<(&str, &str)> = alerts
            .iter()
            .map(|(rule, status, _)| (rule.as_str(), status.as_str()))
            .collect();
        assert_eq!(
            rules,
            [
                ("methane-alarm", "resolved"),
                ("methane-power-cut", "resolved"),
                ("power-cut-failure", "resolved")
            ]
        );
        assert!(
            alerts.iter().all(|(_, _, town)| !town.is_empty()),
            "{alerts:?}"
        );
        let acknowledged: String = store
            .query("SELECT acknowledged_by FROM alerts FINAL WHERE rule_id = 'methane-alarm'")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(acknowledged, "liu display (liu)");
        let events: u64 = store
            .query("SELECT count() FROM alert_events FINAL")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(events, 6, "three alerts fired and resolved");
        // One enforcement ticket for the mine's coal department team, its record in order:
        // created, dispatched, and the two other alerts of the episode joining it.
        let record: Vec<(u32, String, String)> = store
            .query("SELECT seq, event, to_state FROM ticket_events ORDER BY seq")
            .fetch_all()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let record: Vec<(u32, &str, &str)> = record
            .iter()
            .map(|(seq, event, to)| (*seq, event.as_str(), to.as_str()))
            .collect();
        assert_eq!(
            record,
            [
                (1, "created", "new"),
                (2, "state_changed", "dispatched"),
                (3, "alert_added", "dispatched"),
                (4, "alert_added", "dispatched"),
                (5, "state_changed", "accepted")
            ]
        );
        let (actor, role, note): (String, String, String) = store
            .query("SELECT actor, role, note FROM ticket_events WHERE seq = 5")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (actor.as_str(), role.as_str(), note.as_str()),
            ("sun display (sun)", "team", "on our way")
        );
        let (department, team, state, alerts): (String, String, String, u64) = store
            .query("SELECT department, team, state, length(alert_ids) FROM tickets FINAL")
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((department.as_str(), state.as_str()), ("coal", "accepted"));
        assert!(!team.is_empty());
        assert_eq!(alerts, 3);
        let _ = store.query(&format!("DROP DATABASE {id}")).execute().await;
    });

    topics.delete(&rt);
    let _ = std::fs::remove_dir_all(dir);
}

/// The config of a single-node Argus on the embedded store (SQLite in its folder), with quick
/// event time: the folder and the file.
pub(crate) fn embedded_store_config(
    id: &str,
    metrics_port: u16,
    gateway_port: u16,
    topics: &Topics,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let rules = "allowed_lateness_secs = 1\nmax_delay_secs = 60\nadvance_every_ms = 100\n";
    let (dir, config) = write_config(id, metrics_port, gateway_port, topics, rules);
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    let embedded = "backend = \"sqlite\"\nsqlite_path = \"argus.sqlite\"";
    std::fs::write(&config, text.replace("backend = \"clickhouse\"", embedded))
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

/// A single node on the embedded store, with topics of its own (one partition each).
struct Node {
    topics: Topics,
    metrics_port: u16,
    dir: std::path::PathBuf,
    config: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
}

fn embedded_node(prefix: &str) -> Node {
    let id = unique(prefix);
    let topics = Topics::named(&id);
    let (metrics_port, gateway_port) = (free_port(), free_port());
    let (dir, config) = embedded_store_config(&id, metrics_port, gateway_port, &topics);
    let rt = runtime();
    topics.create(&rt, 1);
    Node {
        topics,
        metrics_port,
        dir,
        config,
        rt,
    }
}

/// `argus run` on `config`, once it serves its metrics.
pub(crate) fn start_argus(config: &std::path::Path, metrics_port: u16) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["--config", &config.display().to_string(), "run"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn argus: {e}"));
    let argus = Running(child);
    wait_for("argus to serve", Duration::from_secs(30), || {
        http_get(metrics_port, "/metrics").is_some_and(|m| m.contains("argus_detect_inputs_total"))
    });
    argus
}

/// Methane over the alarm level at a Shaliang mine (MINE01-CH4-WF1), now, then back below it
/// five seconds later: one alert, and a ticket for the town's coal team.
pub(crate) fn methane_alarm() -> Vec<String> {
    let now = now_ms();
    [(now, 1.2), (now + 5_000, 0.4)]
        .iter()
        .map(|(t, v)| {
            format!(r#"{{"source":"MINE01-CH4-WF1","ts":{t},"values":{{"mine_ch4":{v}}}}}"#)
        })
        .collect()
}

/// The id of the first dispatched ticket `token`'s user sees, once there is one (60 s).
pub(crate) fn dispatched_ticket(port: u16, token: &str) -> String {
    let mut ticket = String::new();
    wait_for("a dispatched ticket", Duration::from_secs(60), || {
        let answer = http_get_as(port, "/api/tickets", token).unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_str(crate::util::body(&answer)).unwrap_or_default();
        ticket = json["tickets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["state"] == "dispatched")
            .and_then(|t| t["ticket_id"].as_str())
            .unwrap_or_default()
            .to_owned();
        !ticket.is_empty()
    });
    ticket
}

/// SIGTERM, and a clean exit.
pub(crate) fn stop_argus(mut argus: Running) {
    let pid = argus.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = argus.0.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "argus exited with {status:?}");
}

/// Send `payloads` to `topic` of the local Kafka, each acknowledged by the broker.
pub(crate) fn produce(rt: &tokio::runtime::Runtime, topic: &str, payloads: &[String]) {
    rt.block_on(async {
        let producer: FutureProducer = kafka_client().create().unwrap_or_else(|e| panic!("{e}"));
        for payload in payloads {
            let record = FutureRecord::to(topic).key("k").payload(payload.as_str());
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("{e}"));
        }
    });
}

/// A Kafka client config for the local stack.
pub(crate) fn kafka_client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings().kafka.bootstrap_servers);
    c
}

/// On a single node with the embedded store (SQLite) instead of ClickHouse: a staff silence and
/// an enterprise's maintenance notice, both set before a restart, still mute after it.
#[test]
fn a_silence_and_a_notice_set_before_a_restart_mute_alerts_recorded_without_tickets() {
    use argus_store::Store;
    let Node {
        topics,
        metrics_port,
        dir,
        config,
        rt,
    } = embedded_node("e2e_silence");
    let monitor = argus_user(&config, "liu", "monitor", "", "");
    let start = || start_argus(&config, metrics_port);
    let stop = stop_argus;
    let argus = start();

    // Staff silence the mine for two hours around now; refused requests say why.
    let now = now_ms();
    let rfc = |ms: i64| argus_model::Timestamp(ms).to_rfc3339();
    let silence = format!(
        r#"{{"enterprise": "E009", "from": "{}", "to": "{}", "reason": "ventilation works"}}"#,
        rfc(now - 3_600_000),
        rfc(now + 3_600_000)
    );
    let (status, body) = http_post(metrics_port, "/api/silences", &silence, &monitor)
        .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(status, 200, "{body}");
    for (bad, expected) in [
        (silence.replace("E009", "E999"), "unknown enterprise"),
        (
            silence.replace("\"E009\"", "\"E009\", \"points\": [\"15010201000101\"]"),
            "is not a point of E009",
        ),
        (
            format!(
                r#"{{"enterprise": "E009", "from": "{}", "to": "{}", "reason": "x"}}"#,
                rfc(now),
                rfc(now - 1)
            ),
            "to must be after from",
        ),
    ] {
        let (status, body) = http_post(metrics_port, "/api/silences", &bad, &monitor)
            .unwrap_or_else(|| panic!("no answer"));
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(expected), "{body:?} lacks {expected:?}");
    }

    // Another mine notifies maintenance of its working face over the same hours.
    let notice = format!(
        r#"{{"type": "maintenance_notice", "enterprise": "E008", "from": "{}", "to": "{}", "points": ["MINE01-CH4-WF1"], "reason": "sensor calibration"}}"#,
        rfc(now - 3_600_000),
        rfc(now + 3_600_000)
    );
    let produce = |topic: &str, payloads: Vec<String>| produce(&rt, topic, &payloads);
    produce(&topics.events, vec![notice]);

    // Both are kept in the store; then Argus restarts.
    let store =
        argus_store::SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "the silence and the notice stored",
        Duration::from_secs(30),
        || {
            rt.block_on(store.notices_until_after(argus_model::Timestamp(0)))
                .is_ok_and(|n| n.len() == 2)
        },
    );
    stop(argus);
    let argus = start();

    // Methane over the power-cut level at both mines, in event time after the restart.
    let base = now + 1_000;
    let methane = |source: &str, t: i64, v: f64| {
        format!("{{\"source\":\"{source}\",\"ts\":{t},\"values\":{{\"mine_ch4\":{v}}}}}")
    };
    let mut readings = Vec::new();
    for source in ["MINE02-CH4-WF1", "MINE01-CH4-WF1"] {
        readings.extend([
            methane(source, base, 0.3),
            methane(source, base + 5_000, 1.6),
            methane(source, base + 40_000, 0.5),
            methane(source, base + 45_000, 0.4),
        ]);
    }
    produce(&topics.readings, readings);
    let fired = "argus_alert_transitions_total{kind=\"power_cut_failure\",transition=\"resolved\"}";
    wait_for("the alerts", Duration::from_secs(120), || {
        http_get(metrics_port, "/metrics").is_some_and(|m| sample(&m, fired) == 2)
    });

    // Muted alerts are still there to acknowledge.
    let mut alerts = Vec::new();
    wait_for("three stored alerts", Duration::from_secs(10), || {
        alerts = rt
            .block_on(store.enterprise_alerts("E009"))
            .unwrap_or_default();
        alerts.len() == 3
    });
    let (status, body) = http_post(
        metrics_port,
        &format!("/api/alerts/{}/ack", alerts[0].alert_id),
        "{}",
        &monitor,
    )
    .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(status, 200, "{body}");

    stop(argus);

    // Recorded in the embedded store, muted, and no ticket.
    rt.block_on(async {
        for enterprise in ["E009", "E008"] {
            let alerts = store
                .enterprise_alerts(enterprise)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let muted: Vec<(u8, &str)> = alerts
                .iter()
                .map(|a| (a.muted, a.status.as_str()))
                .collect();
            assert_eq!(
                muted,
                [(1, "resolved"); 3],
                "{enterprise}: three alerts, all muted"
            );
        }
        let alerts = store.enterprise_alerts("E009").await.unwrap_or_default();
        assert_eq!(alerts[0].acknowledged_by, "liu display (liu)");
        let counts = store.counts().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((counts.readings, counts.ticket_events), (8, 0));
    });
    topics.delete(&rt);
    let _ = std::fs::remove_dir_all(dir);
}

/// Regression (issue 11, item 1): a dead letter the broker refuses (here: a dead-letter topic
/// that takes no message of its size) held every transport's good input back forever, retried
/// every 30 s. Now it is given up on for the topic after a few attempts, kept in the store's
/// `rejected_inputs` once, and the good input behind it is stored; the huge field name's detail is
/// bounded.
#[test]
fn a_dead_letter_the_broker_refuses_does_not_hold_back_the_inputs_behind_it() {
    use argus_store::Store;
    let id = unique("e2e_refused");
    let topics = Topics::named(&id);
    let (metrics_port, gateway_port) = (free_port(), free_port());
    let (dir, config) = embedded_store_config(&id, metrics_port, gateway_port, &topics);
    let rt = runtime();
    let kafka_config = kafka_client;
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> =
            kafka_config().create().unwrap_or_else(|e| panic!("{e}"));
        let mut new: Vec<NewTopic> = [&topics.readings, &topics.hj212, &topics.events]
            .iter()
            .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
            .collect();
        new.push(
            NewTopic::new(&topics.dlq, 1, TopicReplication::Fixed(1))
                .set("max.message.bytes", "100"),
        );
        let created = admin
            .create_topics(&new, &AdminOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(created.iter().all(Result::is_ok), "{created:?}");
    });
    let argus = start_argus(&config, metrics_port);

    let now = now_ms();
    let huge = format!("{{\"{}\": 1}}", "K".repeat(990_000));
    let good = |n: i64| {
        format!(
            "{{\"source\":\"15010201000101\",\"ts\":{},\"values\":{{\"a21026\":{n}}}}}",
            now - 60_000 + n * 1_000
        )
    };
    rt.block_on(async {
        let producer: FutureProducer = kafka_config()
            .set("message.max.bytes", "2000000")
            .create()
            .unwrap_or_else(|e| panic!("{e}"));
        for payload in std::iter::once(huge).chain((1..=5).map(good)) {
            let record = FutureRecord::to(&topics.readings)
                .key("k")
                .payload(payload.as_str());
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("{e}"));
        }
    });

    let store =
        argus_store::SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    wait_for("the good readings stored", Duration::from_secs(60), || {
        rt.block_on(store.counts())
            .is_ok_and(|c| c.readings == 5 && c.rejected == 1)
    });
    let metrics = http_get(metrics_port, "/metrics").unwrap_or_default();
    assert_eq!(
        sample(&metrics, "argus_dlq_unpublished_total"),
        1,
        "{metrics}"
    );
    let rejected = rt
        .block_on(store.rejected(10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].reason, "bad_schema");
    assert!(
        rejected[0].detail.len() <= argus_ingest::MAX_DETAIL_BYTES
            && rejected[0].detail.contains("unknown field"),
        "{}",
        &rejected[0].detail[..rejected[0].detail.len().min(200)]
    );
    assert_eq!(rejected[0].raw_len, 990_000 + 7);
    stop_argus(argus);
    topics.delete(&rt);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 12, item 3: a ticket change answered 200 was lost on `kill -9` (the answer came when
/// the change was queued, not stored). Now the answer waits for the row: kill Argus right after
/// it, restart, and the change is in the record, once.
#[test]
fn a_ticket_change_answered_200_survives_kill_9() {
    let Node {
        topics,
        metrics_port,
        dir,
        config,
        rt,
    } = embedded_node("e2e_durable");
    let team = argus_user(&config, "sun", "team", "shaliang", "coal");
    let argus = start_argus(&config, metrics_port);

    // Methane over the alarm level at a mine: an alert, and a ticket dispatched to its team.
    let methane = methane_alarm();
    produce(&rt, &topics.readings, &methane);
    let ticket = dispatched_ticket(metrics_port, &team);
    let accept = r#"{"to": "accepted", "note": "on our way"}"#;
    let path = format!("/api/tickets/{ticket}/state");
    let key = Some("accept-before-the-crash");
    let (status, body) = crate::util::http_post_keyed(metrics_port, &path, accept, key, &team)
        .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(status, 200, "{body}");
    drop(argus); // SIGKILL, at once
    let answered: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let seq = answered["seq"].as_u64().unwrap_or_else(|| panic!("{body}"));

    let argus = start_argus(&config, metrics_port);
    let answer =
        http_get_as(metrics_port, &format!("/api/tickets/{ticket}"), &team).unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(crate::util::body(&answer)).unwrap_or_default();
    assert_eq!(json["ticket"]["state"], "accepted", "{answer}");
    let accepted: Vec<u64> = json["record"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["to"] == "accepted")
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(accepted, [seq], "{answer}");
    // Retried with its idempotency key (the answer lost in the crash), it gets the same answer.
    let (status, again) = crate::util::http_post_keyed(metrics_port, &path, accept, key, &team)
        .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(status, 200, "{again}");
    let again: serde_json::Value = serde_json::from_str(&again).unwrap_or_default();
    assert_eq!(again, answered, "the retry's answer");
    // The same change again without the key is refused: it was made.
    let (status, body) = http_post(
        metrics_port,
        &format!("/api/tickets/{ticket}/state"),
        accept,
        &team,
    )
    .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(status, 409, "{body}");
    stop_argus(argus);
    topics.delete(&rt);
    let _ = std::fs::remove_dir_all(dir);
}

/// First write wins (issue 12, item 6): a reading sent again with another value leaves the
/// record as it was, is kept in `conflicts`, and raises a `data_integrity` alert of its point,
/// made a ticket for the environment department's monitoring-data team; the same reading sent
/// again with its value is a duplicate, counted.
#[test]
fn a_reading_sent_again_with_another_value_is_a_conflict_with_an_alert_and_the_record_stays() {
    use argus_store::Store;
    let Node {
        topics,
        metrics_port,
        dir,
        config,
        rt,
    } = embedded_node("e2e_conflict");
    let argus = start_argus(&config, metrics_port);

    let now = now_ms();
    let methane = |t: i64, v: f64| {
        format!("{{\"source\":\"MINE02-CH4-WF1\",\"ts\":{t},\"values\":{{\"mine_ch4\":{v}}}}}")
    };
    let first: Vec<String> = (0..5)
        .map(|i| methane(now - 10_000 + i * 1_000, 0.3))
        .collect();
    produce(&rt, &topics.readings, &first);
    let store =
        argus_store::SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    wait_for("five readings stored", Duration::from_secs(30), || {
        rt.block_on(store.counts()).is_ok_and(|c| c.readings == 5)
    });
    // The second reading again with its value, then with another one.
    produce(&rt, &topics.readings, &[methane(now - 9_000, 0.3)]);
    produce(&rt, &topics.readings, &[methane(now - 9_000, 0.9)]);
    let fired = "argus_alert_transitions_total{kind=\"data_integrity\",transition=\"fired\"}";
    let mut metrics = String::new();
    let mut t = now;
    wait_for("the data_integrity alert", Duration::from_secs(90), || {
        // Later readings move event time past the conflict.
        t += 1_000;
        produce(&rt, &topics.readings, &[methane(t, 0.3)]);
        metrics = http_get(metrics_port, "/metrics").unwrap_or_default();
        sample(&metrics, fired) == 1
    });
    assert_eq!(sample(&metrics, "argus_store_duplicate_readings_total"), 1);
    assert_eq!(
        sample(&metrics, "argus_store_conflicting_readings_total"),
        1
    );
    wait_for("its ticket", Duration::from_secs(30), || {
        rt.block_on(store.open_tickets()).is_ok_and(|t| {
            t.iter()
                .any(|(t, _)| t.enterprise_id == "E009" && t.department == "environment")
        })
    });
    stop_argus(argus);

    rt.block_on(async {
        let back = store
            .readings(
                "MINE02-CH4-WF1",
                argus_model::Timestamp(now - 9_000),
                argus_model::Timestamp(now - 8_999),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let values: Vec<f64> = back.iter().map(|r| r.value).collect();
        assert_eq!(values, [0.3], "the record keeps the first value");
        let alerts = store.enterprise_alerts("E009").await.unwrap_or_default();
        let integrity: Vec<(&str, &str, &str)> = alerts
            .iter()
            .filter(|a| a.kind == "data_integrity")
            .map(|a| (a.source.as_str(), a.rule_id.as_str(), a.status.as_str()))
            .collect();
        assert_eq!(
            integrity,
            [("MINE02-CH4-WF1", "reading-conflict", "firing")],
            "{alerts:?}"
        );
    });
    topics.delete(&rt);
    let _ = std::fs::remove_dir_all(dir);
}

/// One HTTP/1.1 request over TLS to 127.0.0.1:`port`, trusting only the test certificate
/// (`tests/fixtures/api-test.crt`, for `localhost`): the whole response, or why not.
fn https(rt: &tokio::runtime::Runtime, port: u16, request: &str) -> Result<String, String> {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let pem = std::fs::read(repo_path("tests/fixtures/api-test.crt")).map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let name = "localhost".try_into().map_err(|e| format!("{e:?}"))?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        // The server may close without TLS close_notify once it has answered.
        let _ = tls.read_to_end(&mut response).await;
        Ok(String::from_utf8_lossy(&response).into_owned())
    })
}

/// Issue 14, item 1: with a certificate and key configured, the API speaks TLS only, and its
/// session cookie is marked Secure.
#[test]
fn the_api_is_served_over_tls_with_a_secure_session_cookie() {
    let Node {
        topics,
        metrics_port,
        dir,
        config,
        rt,
    } = embedded_node("e2e_tls");
    let tls = format!(
        "\n[api]\ntls_cert_path = {:?}\ntls_key_path = {:?}\n",
        repo_path("tests/fixtures/api-test.crt")
            .display()
            .to_string(),
        repo_path("tests/fixtures/api-test.key")
            .display()
            .to_string()
    );
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&config, text + &tls).unwrap_or_else(|e| panic!("{e}"));
    argus_user(&config, "liu", "monitor", "", "");
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args([
            "--config",
            &config.display().to_string(),
            "user",
            "passwd",
            "liu",
        ])
        .args(["--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(stdin) = child.stdin.as_mut() {
                stdin.write_all(b"a long tls password\n")?;
            }
            child.wait()
        })
        .unwrap_or_else(|e| panic!("argus user passwd: {e}"));
    assert!(out.success());
    let child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["--config", &config.display().to_string(), "run"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn argus: {e}"));
    let argus = Running(child);
    let health = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    wait_for("argus to serve over tls", Duration::from_secs(30), || {
        https(&rt, metrics_port, health).is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
    });
    let body = r#"{"name": "liu", "password": "a long tls password"}"#;
    let login = format!(
        "POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = https(&rt, metrics_port, &login).unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {answer}"));
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
    // Plain HTTP gets no answer from the TLS port.
    let plain = http_get(metrics_port, "/healthz").unwrap_or_default();
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain:?}");
    stop_argus(argus);
    topics.delete(&rt);
    let _ = std::fs::remove_dir_all(dir);
}
