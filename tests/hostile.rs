//! Hostile input (issue 11) against a running `argus run` on the local stack: a corpus of bad
//! inputs (broken JSON, absurd numbers, deep nesting, duplicate keys, huge names and payloads,
//! bad HJ 212 frames, payloads naming another enterprise, garbage bytes, a reading an hour in
//! the future, a burst of late readings) through Kafka, MQTT and the HJ 212 gateway, then good
//! inputs behind them. Every bad input is in `rejected_inputs` exactly once with its reason, every good
//! one is stored and raises the alerts it raises alone, memory stays bounded and the log short.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use argus_model::Timestamp;
use argus_store::Store;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::end_to_end::{embedded_store_config, kafka_client};
use crate::util::{
    client_id, free_port, http_get, report, runtime, sample, settings, unique, wait_for, Running,
    Topics,
};

/// Peak resident memory allowed for Argus through the whole corpus (the 10 MB payloads pass
/// through the MQTT client and the Kafka consumer whole before they are refused).
const MAX_PEAK_RSS_MIB: u64 = 128;
/// Lines Argus may log (at `info`) through the whole test: start-up, shutdown and one line per
/// kind of refusal per interval, whatever the number of bad inputs.
const MAX_LOG_LINES: usize = 80;
/// Readings an hour old sent in one burst: late, stored, logged in a line or two.
const LATE_READINGS: usize = 5_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0)
}

/// An HJ 212 frame around `data` with its length and CRC; `length` overrides the length field.
fn frame(data: &str, length: Option<usize>) -> Vec<u8> {
    let crc = argus_hj212::crc::crc16(data.as_bytes());
    format!("##{:04}{data}{crc:04X}\r\n", length.unwrap_or(data.len())).into_bytes()
}

/// A real-time (CN 2011) packet of `mn` with `pw` and factors `cp` at `ts`, reply requested.
fn packet(mn: &str, pw: &str, cp: &str, ts: i64) -> String {
    let c = Timestamp(ts).plus_millis(8 * 3_600_000).to_civil(0);
    let time = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    format!("QN={ts:017}000;ST=32;CN=2011;PW={pw};MN={mn};Flag=5;CP=&&DataTime={time};{cp}&&")
}

/// Garbage without `#`, so it cannot start a frame.
fn garbage(n: usize) -> Vec<u8> {
    let mut state: u32 = 7;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            match (state >> 16) as u8 {
                b'#' => b'.',
                b => b,
            }
        })
        .collect()
}

/// The JSON part of the corpus, for every transport that takes JSON readings: (payload, reason).
fn json_corpus(source: &str, now: i64) -> Vec<(Vec<u8>, &'static str)> {
    let reading = |values: &str| format!(r#"{{"source":"{source}","ts":{now},"values":{values}}}"#);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let many: Vec<String> = (0..50_000).map(|i| i.to_string()).collect();
    vec![
        (b"{oops".to_vec(), "bad_json"),
        (b"42".to_vec(), "bad_schema"),
        (reading(r#"{"a21026": NaN}"#).into_bytes(), "bad_json"),
        (reading(r#"{"a21026": Infinity}"#).into_bytes(), "bad_json"),
        (reading(r#"{"a21026": 1e400}"#).into_bytes(), "bad_json"),
        (deep.into_bytes(), "bad_json"),
        (
            reading(&format!("[{}]", many.join(","))).into_bytes(),
            "bad_schema",
        ),
        (
            format!(
                r#"{{"source":"{source}","source":"OTHER","ts":{now},"values":{{"a21026":1}}}}"#
            )
            .into_bytes(),
            "duplicate_key",
        ),
        (
            reading(r#"{"a21026": 1, "a21026": 1000}"#).into_bytes(),
            "duplicate_key",
        ),
        (
            format!(r#"{{"source":"{source}","ts":"yesterday","values":{{"a21026":1}}}}"#)
                .into_bytes(),
            "bad_timestamp",
        ),
        (
            format!(
                r#"{{"source":"{source}","ts":"2126-01-01T00:00:00Z","values":{{"a21026":1}}}}"#
            )
            .into_bytes(),
            "timestamp_out_of_range",
        ),
        (
            reading(&format!(r#"{{"{}": 1}}"#, "m".repeat(200_000))).into_bytes(),
            "bad_schema",
        ),
        // The input that once stopped all ingestion: a ~990 KB unknown field name, quoted in
        // the error text.
        (
            format!(r#"{{"{}": 1}}"#, "K".repeat(990_000)).into_bytes(),
            "bad_schema",
        ),
        (vec![0xff, 0xfe, 0x00, 0x81, 0x7f, b'{'], "bad_json"),
        (vec![b' '; 10 << 20], "oversize"),
    ]
}

/// The events part: (payload, reason).
fn event_corpus(now: i64) -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (
            format!(r#"{{"type":"{}"}}"#, "T".repeat(500_000)).into_bytes(),
            "bad_schema",
        ),
        (
            format!(r#"{{"type":"production_state","source":"NOBODY","ts":{now},"running":true}}"#)
                .into_bytes(),
            "unregistered",
        ),
        (
            format!(r#"{{"type":"production_state","type":"power","source":"15010201000102","ts":{now},"running":true}}"#)
                .into_bytes(),
            "duplicate_key",
        ),
    ]
}

/// The HJ 212 part, for every transport that takes packets: (payload, reason).
fn hj212_corpus(now: i64) -> Vec<(Vec<u8>, &'static str)> {
    let (mn, pw) = ("15010201000201", "923284");
    let good_cp = "w01001-Rtd=7.1,w01001-Flag=N";
    let mut bad_crc = frame(&packet(mn, pw, good_cp, now), None);
    let at = bad_crc.len() - 6;
    bad_crc[at] = if bad_crc[at] == b'0' { b'1' } else { b'0' };
    vec![
        (bad_crc, "bad_crc"),
        (
            frame(&packet(mn, "000000", good_cp, now), None),
            "bad_password",
        ),
        (
            frame(&packet(mn, pw, "w01001-Rtd=7.1;w01001-Rtd=12.0", now), None),
            "duplicate_key",
        ),
        (
            frame(&packet(mn, pw, "w01001-Rtd=NaN", now), None),
            "bad_value",
        ),
    ]
}

#[test]
fn hostile_inputs_are_kept_once_and_good_ones_behind_them_still_raise_their_alerts() {
    let id = unique("e2e_hostile");
    let topics = Topics::named(&id);
    let (metrics_port, gateway_port) = (free_port(), free_port());
    let (dir, config) = embedded_store_config(&id, metrics_port, gateway_port, &topics);
    let rt = runtime();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> =
            kafka_client().create().unwrap_or_else(|e| panic!("{e}"));
        let mut new: Vec<NewTopic> = [&topics.readings, &topics.hj212, &topics.events]
            .iter()
            .map(|t| {
                NewTopic::new(t, 1, TopicReplication::Fixed(1)).set("max.message.bytes", "12000000")
            })
            .collect();
        // The dead-letter topic keeps Kafka's default limit (1 MB), which a dead letter quoting
        // the 990 KB name in full would exceed.
        new.push(NewTopic::new(&topics.dlq, 1, TopicReplication::Fixed(1)));
        let created = admin
            .create_topics(&new, &AdminOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(created.iter().all(Result::is_ok), "{created:?}");
    });
    let monitor = crate::util::argus_user(&config, "liu", "monitor", "", "");
    let log_path = dir.join("argus.log");
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["--config", &config.display().to_string(), "run"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn argus: {e}"));
    let argus = Running(child);
    let pid = argus.0.id();
    wait_for(
        "argus to subscribe to mqtt",
        Duration::from_secs(30),
        || {
            http_get(metrics_port, "/metrics").is_some_and(|m| {
                sample(&m, "argus_mqtt_connections_total{event=\"subscribed\"}") >= 1
            })
        },
    );

    let now = now_ms();
    let prefix = format!("argus-e2e/{id}");
    let mut expected: Vec<(String, String)> = Vec::new();
    let mut expect = |transport: &str, reason: &str| {
        expected.push((transport.to_owned(), reason.to_owned()));
    };

    // Kafka: the JSON, event and HJ 212 corpora, a reading from an hour in the future (an
    // unknown logger whose clock runs fast) and a burst of readings an hour old.
    let mut kafka: Vec<(&str, Vec<u8>)> = Vec::new();
    for (payload, reason) in json_corpus("15010201000101", now) {
        kafka.push((topics.readings.as_str(), payload));
        expect("kafka", reason);
    }
    for (payload, reason) in event_corpus(now) {
        kafka.push((topics.events.as_str(), payload));
        expect("kafka", reason);
    }
    for (payload, reason) in hj212_corpus(now) {
        kafka.push((topics.hj212.as_str(), payload));
        expect("kafka", reason);
    }
    kafka.push((topics.hj212.as_str(), garbage(2_000)));
    expect("kafka", "bad_frame");
    let future = format!(
        r#"{{"source":"FAST-CLOCK-01","ts":{},"values":{{"a21026":1}}}}"#,
        now + 58 * 60_000
    );
    kafka.push((topics.readings.as_str(), future.into_bytes()));
    let late: Vec<String> = (0..LATE_READINGS)
        .map(|i| {
            let ts = now - 3_600_000 + i as i64 * 100;
            format!(r#"{{"source":"15010201000101","ts":{ts},"values":{{"a21026":20}}}}"#)
        })
        .collect();
    kafka.push((
        topics.readings.as_str(),
        format!("[{}]", late.join(",")).into_bytes(),
    ));

    // MQTT: the same corpora on the topics that name enterprise and source, plus payloads
    // naming another enterprise's source or another MN than their topic.
    let readings_topic = format!("{prefix}/readings/E001/15010201000101");
    let hj212_topic = format!("{prefix}/hj212/15010201000201");
    let events_topic = format!("{prefix}/events/E001");
    let mut mqtt: Vec<(String, Vec<u8>)> = Vec::new();
    for (payload, reason) in json_corpus("15010201000101", now) {
        mqtt.push((readings_topic.clone(), payload));
        expect("mqtt", reason);
    }
    mqtt.push((
        readings_topic.clone(),
        format!(r#"{{"source":"15010201000201","ts":{now},"values":{{"w01001":7}}}}"#).into_bytes(),
    ));
    expect("mqtt", "topic_mismatch");
    for (payload, reason) in event_corpus(now) {
        mqtt.push((events_topic.clone(), payload));
        expect("mqtt", reason);
    }
    for (payload, reason) in hj212_corpus(now) {
        mqtt.push((hj212_topic.clone(), payload));
        expect("mqtt", reason);
    }
    let other_mn = frame(
        &packet("15010201000101", "269497", "a21026-Rtd=20", now),
        None,
    );
    mqtt.push((hj212_topic.clone(), other_mn));
    expect("mqtt", "topic_mismatch");

    // HJ 212 over TCP: the packets on one connection, a frame whose length field lies, then
    // garbage past the gateway's limit: the peer is cut off, every byte it sent kept.
    let mut tcp: Vec<u8> = Vec::new();
    for (payload, reason) in hj212_corpus(now) {
        tcp.extend(payload);
        expect("hj212_tcp", reason);
    }
    tcp.extend(frame(
        &packet("15010201000201", "923284", "w01001-Rtd=7.1", now),
        Some(40),
    ));
    expect("hj212_tcp", "bad_length");
    let garbage_bytes = garbage(100_000);

    rt.block_on(async {
        let producer: FutureProducer = kafka_client()
            .set("message.max.bytes", "12000000")
            .create()
            .unwrap_or_else(|e| panic!("{e}"));
        for (topic, payload) in &kafka {
            let record = FutureRecord::to(topic).key("k").payload(payload.as_slice());
            producer
                .send(record, Duration::from_secs(30))
                .await
                .unwrap_or_else(|(e, _)| panic!("{e}"));
        }
        publish_mqtt(&mqtt).await;
    });
    let mut logger =
        TcpStream::connect(("127.0.0.1", gateway_port)).unwrap_or_else(|e| panic!("{e}"));
    logger.write_all(&tcp).unwrap_or_else(|e| panic!("{e}"));
    // The lying length swallows bytes up to the next `##`: mark its end with a good frame.
    let marker = frame(
        &packet("15010201000201", "923284", "w01001-Rtd=7.2", now - 1_000),
        None,
    );
    logger.write_all(&marker).unwrap_or_else(|e| panic!("{e}"));
    logger
        .write_all(&garbage_bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    expect("hj212_tcp", "bad_frame");
    let mut rest = Vec::new();
    logger
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = logger.read_to_end(&mut rest);

    // Good inputs behind the bad ones, one violation through each transport: methane over the
    // alarm level at two mines (Kafka, MQTT), pH out of range at a wastewater outlet (TCP);
    // each followed 5 s later (event time) by a normal value, which moves event time past it.
    let good_at = now_ms();
    let methane = |mn: &str, t: i64, v: f64| {
        format!(r#"{{"source":"{mn}","ts":{t},"values":{{"mine_ch4":{v}}}}}"#)
    };
    rt.block_on(async {
        let producer: FutureProducer = kafka_client().create().unwrap_or_else(|e| panic!("{e}"));
        for payload in [
            methane("MINE01-CH4-WF1", good_at, 1.2),
            methane("MINE01-CH4-WF1", good_at + 5_000, 0.4),
        ] {
            let record = FutureRecord::to(&topics.readings)
                .key("k")
                .payload(payload.as_bytes());
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("{e}"));
        }
        // On the topic that names it, without naming the source: it takes the topic's.
        let topic = format!("{prefix}/readings/E009/MINE02-CH4-WF1");
        let named = |t: i64, v: f64| format!(r#"{{"ts":{t},"values":{{"mine_ch4":{v}}}}}"#);
        publish_mqtt(&[
            (topic.clone(), named(good_at, 1.2).into_bytes()),
            (topic, named(good_at + 5_000, 0.4).into_bytes()),
        ])
        .await;
    });
    let mut good_logger =
        TcpStream::connect(("127.0.0.1", gateway_port)).unwrap_or_else(|e| panic!("{e}"));
    for (ph, t) in [("10.5", good_at), ("7.0", good_at + 5_000)] {
        let cp = format!("w01001-Rtd={ph},w01001-Flag=N");
        good_logger
            .write_all(&frame(&packet("15010201000201", "923284", &cp, t), None))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    good_logger
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut reply = [0u8; 256];
    let n = good_logger.read(&mut reply).unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&reply[..n]).contains("CN=9014"),
        "no 9014 reply to the good packet: {:?}",
        String::from_utf8_lossy(&reply[..n])
    );

    // Stored: the future reading (its unregistered-source alert waits for event time to reach
    // it, an hour from now: it cannot drag event time ahead), the late burst, the marker and
    // the three good readings.
    let good_readings = 1 + LATE_READINGS + 1 + 6;
    let store =
        argus_store::SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    wait_for("every input stored", Duration::from_secs(90), || {
        rt.block_on(store.counts()).is_ok_and(|c| {
            c.readings == good_readings as u64 && c.rejected >= expected.len() as u64
        })
    });
    let mut alerts: Vec<(String, String)> = Vec::new();
    wait_for(
        "the alerts of the good inputs",
        Duration::from_secs(60),
        || {
            let body = crate::util::http_get_as(metrics_port, "/api/alerts?limit=100", &monitor)
                .unwrap_or_default();
            let json: serde_json::Value =
                serde_json::from_str(crate::util::body(&body)).unwrap_or_default();
            alerts = json["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let field = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                    (field("rule"), field("point"))
                })
                .collect();
            alerts.sort();
            alerts.len() >= 3
        },
    );
    let took = started.elapsed();
    assert_eq!(
        alerts,
        [
            ("instant-limit:max".to_owned(), "15010201000201".to_owned()),
            ("methane-alarm".to_owned(), "MINE01-CH4-WF1".to_owned()),
            ("methane-alarm".to_owned(), "MINE02-CH4-WF1".to_owned()),
        ]
    );

    // Every bad input once, with its reason; the garbage sender's bytes all accounted for.
    let rows = rt
        .block_on(store.rejected(1_000))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.transport.clone(), r.reason.clone()))
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert!(rows
        .iter()
        .all(|r| r.detail.len() <= argus_ingest::MAX_DETAIL_BYTES));
    let tcp_garbage: u64 = rows
        .iter()
        .filter(|r| r.transport == "hj212_tcp" && r.reason == "bad_frame")
        .map(|r| r.raw_len)
        .sum();
    assert_eq!(tcp_garbage, garbage_bytes.len() as u64);

    let metrics = http_get(metrics_port, "/metrics").unwrap_or_default();
    assert_eq!(
        sample(&metrics, "argus_dlq_unpublished_total"),
        0,
        "every dead letter fits its topic"
    );
    assert!(
        sample(&metrics, "argus_detect_ahead_total") >= 1,
        "the reading from the future is counted"
    );
    assert!(sample(&metrics, "argus_detect_late_total") >= LATE_READINGS as u64);
    let ready = http_get(metrics_port, "/readyz").unwrap_or_default();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    let peak_rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    crate::end_to_end::stop_argus(argus);
    let lines = std::fs::read_to_string(&log_path).unwrap_or_default();
    let line_count = lines.lines().count();
    report(&format!(
        "hostile corpus: {} bad inputs kept once, {good_readings} good readings stored and 3 alerts in {took:?}; peak RSS {} MiB; {line_count} log lines",
        expected.len(),
        peak_rss_kib / 1024
    ));
    assert!(
        peak_rss_kib > 0 && peak_rss_kib / 1024 < MAX_PEAK_RSS_MIB,
        "peak RSS {peak_rss_kib} KiB"
    );
    assert!(
        line_count <= MAX_LOG_LINES,
        "{line_count} log lines:\n{lines}"
    );
    assert!(
        !lines.contains("KKKKKKKKKKKKKKKK") && !lines.contains("mmmmmmmmmmmmmmmm"),
        "the log quotes huge inputs"
    );

    topics.delete(&rt);
    let _ = std::fs::remove_dir_all(dir);
}

/// Publish `messages` (topic, payload) at QoS 1 to the local Mosquitto and wait until the broker
/// has acknowledged each.
async fn publish_mqtt(messages: &[(String, Vec<u8>)]) {
    let s = settings();
    let credentials = s
        .mqtt
        .credentials
        .clone()
        .unwrap_or_else(|| panic!("no mqtt credentials"));
    let mut o = MqttOptions::new(client_id("hostile"), s.mqtt.host.clone(), s.mqtt.port);
    o.set_credentials(credentials.username, credentials.password)
        .set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, messages.len() + 10);
    for (topic, payload) in messages {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked < messages.len() {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!(
                "mqtt publishing: {acked} of {} acknowledged, then {other:?}",
                messages.len()
            ),
        }
    }
    let _ = client.disconnect().await;
}
