//! The MQTT source against the real Mosquitto: 100,000 readings exactly once, dead letters with
//! their reasons, and redelivery of what was never acknowledged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argus_ingest::{DecodeOptions, Decoder, Envelope, PayloadKind, Reason, Record};
use argus_model::Registry;
use argus_mqtt::{MqttSource, Subscription};
use argus_telemetry::Telemetry;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::{mpsc, oneshot};

use crate::util::{client_id, repo_path, runtime, settings, unique};

fn decoder() -> Arc<Decoder> {
    let text = std::fs::read_to_string(repo_path("config/registry.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let registry =
        Registry::from_toml_str(&text, "registry.toml").unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Decoder::new(Arc::new(registry), DecodeOptions::default()))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A source on unique topics `<prefix>/readings/+/+` and `<prefix>/hj212/+`, running until the
/// returned sender is used or dropped.
fn start_source(
    rt: &tokio::runtime::Runtime,
    prefix: &str,
    id: &str,
    capacity: usize,
) -> (
    mpsc::Receiver<Envelope>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut s = settings().mqtt;
    s.client_id = id.to_owned();
    s.shared_group = None;
    let subscriptions = vec![
        Subscription {
            filter: format!("{prefix}/readings/+/+"),
            kind: PayloadKind::JsonReadings,
        },
        Subscription {
            filter: format!("{prefix}/hj212/+"),
            kind: PayloadKind::Hj212,
        },
    ];
    let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
    let source = MqttSource::with_subscriptions(&s, subscriptions, decoder(), telemetry)
        .unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = mpsc::channel(capacity);
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = rt.spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        source
            .run(tx, shutdown)
            .await
            .unwrap_or_else(|e| panic!("mqtt source: {e}"));
    });
    (rx, stop, handle)
}

/// A publisher whose event loop runs in the background.
async fn publisher() -> AsyncClient {
    let s = settings().mqtt;
    let mut options = MqttOptions::new(client_id("pub"), s.host.clone(), s.port);
    if let Some(c) = &s.credentials {
        options.set_credentials(c.username.clone(), c.password.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1_000);
    tokio::spawn(async move {
        loop {
            if let Err(e) = eventloop.poll().await {
                panic!("publisher connection: {e}");
            }
        }
    });
    client
}

/// Publish a probe until the source delivers something: then its subscriptions are in place.
async fn wait_until_subscribed(
    client: &AsyncClient,
    topic: &str,
    rx: &mut mpsc::Receiver<Envelope>,
) {
    let probe = format!(
        "{{\"source\":\"PROBE\",\"ts\":{},\"values\":{{\"a21026\":0}}}}",
        now_ms()
    );
    // On the topic of the probe's own source (the topic's names must be the payload's).
    let topic = match topic.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/PROBE"),
        None => "PROBE".to_owned(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client
            .publish(&topic, QoS::AtLeastOnce, false, probe.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if let Ok(Some(envelope)) =
            tokio::time::timeout(Duration::from_millis(300), rx.recv()).await
        {
            envelope.ack.done();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the mqtt source did not subscribe within 20 s"
        );
    }
}

fn is_probe(record: &Record) -> bool {
    matches!(record, Record::Reading(r) if r.source.as_str() == "PROBE")
}

#[test]
fn hundred_thousand_readings_arrive_exactly_once() {
    const COUNT: i64 = 100_000;
    let rt = runtime();
    let prefix = format!("argus-it/{}", unique("mqtt"));
    let (mut rx, stop, handle) = start_source(&rt, &prefix, &client_id("src"), 8);
    rt.block_on(async {
        let client = publisher().await;
        let topic = format!("{prefix}/readings/E001/MN");
        wait_until_subscribed(&client, &topic, &mut rx).await;

        // One reading every 100 ms over the last three hours.
        let base = now_ms() - 3 * 3_600_000;
        let sender = client.clone();
        let topic_for_task = topic.clone();
        let publishing = tokio::spawn(async move {
            for i in 0..COUNT {
                let payload = format!(
                    "{{\"source\":\"MN{:03}\",\"ts\":{},\"values\":{{\"a21026\":{}.5}}}}",
                    i % 100,
                    base + i * 100,
                    i
                );
                sender
                    .publish(
                        format!("{topic_for_task}{:03}", i % 100),
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        });

        let mut seen = HashSet::new();
        let mut total = 0_usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.len() < COUNT as usize {
            let left = deadline.saturating_duration_since(Instant::now());
            let envelope = match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(e)) => e,
                _ => panic!("only {} of {COUNT} readings within 120 s", seen.len()),
            };
            assert!(
                envelope.dead_letters.is_empty(),
                "{:?}",
                envelope.dead_letters
            );
            for record in envelope.records.iter().filter(|r| !is_probe(r)) {
                let Record::Reading(r) = record else {
                    panic!("unexpected record {record:?}")
                };
                let i = (r.event_time.0 - base) / 100;
                assert_eq!(r.source.as_str(), format!("MN{:03}", i % 100));
                assert_eq!(r.value, i as f64 + 0.5);
                assert_eq!(r.metric.as_str(), "a21026");
                seen.insert(i);
                total += 1;
            }
            envelope.ack.done();
        }
        publishing.await.unwrap_or_else(|e| panic!("{e}"));
        // Nothing more may arrive: every reading exactly once.
        while let Ok(Some(envelope)) =
            tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
        {
            total += envelope.records.iter().filter(|r| !is_probe(r)).count();
            envelope.ack.done();
        }
        assert_eq!(
            (seen.len(), total),
            (COUNT as usize, COUNT as usize),
            "duplicates delivered"
        );
    });
    let _ = stop.send(());
    rt.block_on(handle).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn bad_payloads_become_dead_letters_with_reasons() {
    let rt = runtime();
    let prefix = format!("argus-it/{}", unique("mqttdl"));
    let (mut rx, stop, handle) = start_source(&rt, &prefix, &client_id("dl"), 64);
    let valid = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/hj212/valid.txt"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let bad_crc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/hj212/bad-crc.txt"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let client = publisher().await;
        let readings = format!("{prefix}/readings/E001/MN1");
        let hj212 = format!("{prefix}/hj212/MN1");
        wait_until_subscribed(&client, &readings, &mut rx).await;

        let now = now_ms();
        let cases: Vec<(&str, String, Option<Reason>)> = vec![
            (
                &readings,
                format!("{{\"source\":\"MN1\",\"ts\":{now},\"values\":{{\"w01018\":42}}}}"),
                None,
            ),
            (&readings, "{not json".to_owned(), Some(Reason::BadJson)),
            (
                &readings,
                format!("{{\"source\":\"MN1\",\"ts\":{now},\"values\":{{\"w01018\":\"high\"}}}}"),
                Some(Reason::BadSchema),
            ),
            (
                &readings,
                "{\"source\":\"MN1\",\"ts\":0,\"values\":{\"w01018\":1}}".to_owned(),
                Some(Reason::TimestampOutOfRange),
            ),
            (
                &hj212,
                bad_crc.lines().next().unwrap_or_default().to_owned(),
                Some(Reason::BadCrc),
            ),
            (&hj212, "##garbage".to_owned(), Some(Reason::BadFrame)),
        ];
        for (topic, payload, _) in &cases {
            client
                .publish(*topic, QoS::AtLeastOnce, false, payload.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // A valid conformance packet dated 2019 is refused as out of range, with its reason: the
        // source keeps it as a dead letter rather than dropping it.
        let old_packet = valid.lines().nth(1).unwrap_or_default().to_owned();
        client
            .publish(&hj212, QoS::AtLeastOnce, false, old_packet.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let expected_letters = cases.iter().filter(|c| c.2.is_some()).count() + 1;
        let mut letters = Vec::new();
        let mut readings_seen = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while letters.len() < expected_letters || readings_seen < 1 {
            let left = deadline.saturating_duration_since(Instant::now());
            let envelope = match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(e)) => e,
                _ => panic!(
                    "got {} dead letters and {readings_seen} readings",
                    letters.len()
                ),
            };
            readings_seen += envelope.records.iter().filter(|r| !is_probe(r)).count();
            letters.extend(envelope.dead_letters);
            envelope.ack.done();
        }
        assert_eq!(readings_seen, 1);
        for (topic, payload, reason) in cases.iter().filter(|c| c.2.is_some()) {
            let letter = letters
                .iter()
                .find(|l| l.raw == payload.as_bytes())
                .unwrap_or_else(|| panic!("no dead letter for {payload:?}: {letters:?}"));
            assert_eq!(Some(letter.reason), *reason, "{letter:?}");
            assert_eq!(letter.origin, format!("mqtt:{topic}"));
        }
        let old = letters
            .iter()
            .find(|l| l.raw == old_packet.as_bytes())
            .unwrap_or_else(|| panic!("{letters:?}"));
        assert_eq!(old.reason, Reason::TimestampOutOfRange, "{old:?}");
    });
    let _ = stop.send(());
    rt.block_on(handle).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unacknowledged_messages_are_redelivered_to_the_same_session() {
    const COUNT: usize = 50;
    let rt = runtime();
    let prefix = format!("argus-it/{}", unique("mqttre"));
    let id = client_id("re");
    let (mut rx, stop, handle) = start_source(&rt, &prefix, &id, 64);
    let topic = format!("{prefix}/readings/E001/MN1");
    let (client, base) = rt.block_on(async {
        let client = publisher().await;
        wait_until_subscribed(&client, &topic, &mut rx).await;
        let base = now_ms() - 60_000;
        for i in 0..COUNT {
            let payload = format!(
                "{{\"source\":\"MN1\",\"ts\":{},\"values\":{{\"a21026\":{i}}}}}",
                base + i as i64
            );
            client
                .publish(&topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // Receive everything, acknowledge nothing.
        let mut received = 0;
        while received < COUNT {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                Ok(Some(envelope)) => {
                    received += envelope.records.iter().filter(|r| !is_probe(r)).count()
                }
                _ => panic!("first session got only {received} of {COUNT}"),
            }
        }
        (client, base)
    });
    let _ = stop.send(());
    rt.block_on(handle).unwrap_or_else(|e| panic!("{e}"));
    drop(rx);

    // Same client id, persistent session: the broker delivers the unacknowledged messages again.
    let (mut rx, stop, handle) = start_source(&rt, &prefix, &id, 64);
    rt.block_on(async {
        let mut again = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while again.len() < COUNT {
            let left = deadline.saturating_duration_since(Instant::now());
            let envelope = match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(e)) => e,
                _ => panic!("redelivered only {} of {COUNT}", again.len()),
            };
            for record in &envelope.records {
                if let Record::Reading(r) = record {
                    if r.source.as_str() == "MN1" {
                        again.insert(r.event_time.0 - base);
                    }
                }
            }
            envelope.ack.done();
        }
        drop(client);
    });
    let _ = stop.send(());
    rt.block_on(handle).unwrap_or_else(|e| panic!("{e}"));
}
