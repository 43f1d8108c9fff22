//! The embedded broker (rumqttd) with the real MQTT source: it accepts its one user and refuses
//! others, a port already taken is a clear error, and a reading published to it reaches the
//! source as an envelope.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use argus_config::Settings;
use argus_ingest::{DecodeOptions, Decoder, Record};
use argus_model::Registry;
use argus_telemetry::Telemetry;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};

const REGISTRY: &str = include_str!("../../../config/registry.toml");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn settings(port: u16) -> Settings {
    let text = format!(
        "[registry]\npath = \"r.toml\"\n[mqtt]\nembedded = true\nport = {port}\n\
         client_id = \"argus-embedded-test\"\nusername = \"argus\"\npassword = \"right\"\n\
         shared_group = \"\"\n"
    );
    Settings::from_toml_str(&text, "test", Path::new("."), |_| None).unwrap()
}

/// The CONNACK a client with `password` gets.
async fn connack(port: u16, password: &str) -> Result<ConnectReturnCode, String> {
    let mut options = MqttOptions::new(format!("probe-{password}"), "127.0.0.1", port);
    options.set_credentials("argus", password);
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => return Ok(ack.code),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no answer".to_owned()),
        }
    }
}

/// The real MQTT source of `s` on its broker: its envelopes, its stop, its task.
fn start_source(
    s: &Settings,
) -> (
    tokio::sync::mpsc::Receiver<argus_ingest::Envelope>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), argus_mqtt::MqttError>>,
) {
    let registry = Arc::new(Registry::from_toml_str(REGISTRY, "registry.toml").unwrap());
    let decoder = Arc::new(Decoder::new(registry, DecodeOptions::default()));
    let telemetry = Telemetry::new("test", 0).unwrap();
    let source = argus_mqtt::MqttSource::new(&s.mqtt, decoder, telemetry).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(source.run(tx, async {
        let _ = stopped.await;
    }));
    (rx, stop, running)
}

/// A publisher with the broker's user.
fn publisher(port: u16) -> AsyncClient {
    let mut options = MqttOptions::new("publisher", "127.0.0.1", port);
    options.set_credentials("argus", "right");
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_broker_takes_its_user_and_hands_readings_to_the_source() {
    let port = free_port();
    let s = settings(port);
    argus_mqtt::start_embedded(&s.mqtt, 1 << 20).unwrap();
    let again = argus_mqtt::start_embedded(&s.mqtt, 1 << 20).unwrap_err();
    assert!(again.to_string().contains("cannot listen"), "{again}");

    assert_eq!(connack(port, "right").await, Ok(ConnectReturnCode::Success));
    let wrong = connack(port, "wrong").await;
    assert!(wrong != Ok(ConnectReturnCode::Success), "{wrong:?}");

    let (mut rx, stop, running) = start_source(&s);
    let client = publisher(port);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let reading =
        format!(r#"{{"source": "15010201000101", "ts": {now_ms}, "values": {{"a21026": 21.4}}}}"#);
    // The source subscribes once connected: publish until an envelope arrives.
    let envelope = loop {
        client
            .publish(
                "argus/v1/readings/E001/15010201000101",
                QoS::AtLeastOnce,
                false,
                reading.clone(),
            )
            .await
            .unwrap();
        if let Ok(Some(envelope)) =
            tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
        {
            break envelope;
        }
    };
    assert!(
        matches!(&envelope.records[..], [Record::Reading(r)] if r.value == 21.4),
        "{:?}",
        envelope.records
    );
    drop(envelope);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

/// Regression (issue 11, item 7): a reading for E002's source published on E001's topic was
/// stored under E002's source, as JSON and as HJ 212. Now the topic's names must be the
/// payload's: a mismatch is a dead letter of its own reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_payload_naming_another_enterprise_or_source_than_its_topic_is_a_dead_letter() {
    let port = free_port();
    let s = settings(port);
    argus_mqtt::start_embedded(&s.mqtt, 1 << 20).unwrap();
    let (mut rx, stop, running) = start_source(&s);
    let client = publisher(port);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let reading =
        |mn: &str| format!(r#"{{"source": "{mn}", "ts": {now_ms}, "values": {{"a21026": 21.4}}}}"#);
    let cases = [
        // (topic, payload, accepted)
        (
            "argus/v1/readings/E001/15010201000101",
            reading("15010201000101"),
            true,
        ),
        (
            "argus/v1/readings/E001/15010201000201",
            reading("15010201000201"),
            false,
        ),
        (
            "argus/v1/readings/E001/15010201000101",
            reading("15010201000201"),
            false,
        ),
        (
            "argus/v1/readings/E002/15010201000201",
            reading("15010201000201"),
            true,
        ),
    ];
    // Publish the first until the source is subscribed, then the others once.
    let mut envelopes = Vec::new();
    loop {
        client
            .publish(cases[0].0, QoS::AtLeastOnce, false, cases[0].1.clone())
            .await
            .unwrap();
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            envelopes.push(e);
            break;
        }
    }
    for (topic, payload, _) in &cases[1..] {
        client
            .publish(*topic, QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
    }
    let (mut records, mut letters) = (0, Vec::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while records + letters.len() < cases.len() - 1 && std::time::Instant::now() < deadline {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            envelopes.push(e);
        }
        records = envelopes.iter().skip(1).map(|e| e.records.len()).sum();
        letters = envelopes
            .iter()
            .skip(1)
            .flat_map(|e| e.dead_letters.iter())
            .map(|d| (d.reason.as_str(), d.detail.clone(), d.origin.clone()))
            .collect();
    }
    assert_eq!(records, 1, "{letters:?}");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters
        .iter()
        .all(|(reason, _, _)| *reason == "topic_mismatch"));
    assert!(
        letters[0].1.contains("a point of enterprise \"E002"),
        "{letters:?}"
    );
    assert!(
        letters[1].1.contains("source \"15010201000201\""),
        "{letters:?}"
    );
    drop(envelopes);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
