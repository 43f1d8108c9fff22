//! End to end through the `argus` binary and the real services: bad inputs on every transport
//! (MQTT, Kafka, HJ 212 over TCP) land in the dead-letter topic with their reason and origin,
//! and good ones are counted as records.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use rumqttc::{AsyncClient, MqttOptions, QoS};

use crate::util::{client_id, repo_path, runtime, settings, unique};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// GET a path of the metrics endpoint; `None` until it answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Poll until `f` holds or `limit` passes.
fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let text = format!(
        r#"
[registry]
path = {registry:?}
[metrics]
listen_addr = "127.0.0.1:{metrics_port}"
[mqtt]
host = "{host}"
port = {port}
client_id = "{client}"
username = "{user}"
password = "{password}"
readings_topic = "{mqtt_prefix}/readings/+/+"
hj212_topic = "{mqtt_prefix}/hj212/+"
shared_group = ""
[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{id}"
[kafka.topics]
readings = "{readings}"
hj212 = "{hj212}"
events = "{events}"
dlq = "{dlq}"
[hj212]
listen_addr = "127.0.0.1:{gateway_port}"
"#,
        registry = repo_path("config/registry.toml").display().to_string(),
        host = s.mqtt.host,
        port = s.mqtt.port,
        client = client_id("e2e"),
        user = credentials.username,
        password = credentials.password,
        bootstrap = s.kafka.bootstrap_servers,
    );
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
    });
    let _ = std::fs::remove_dir_all(dir);
}
