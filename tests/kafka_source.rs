//! The Kafka source and dead-letter sink against the real broker: 100,000 readings exactly once
//! with offsets committed to the end, good and bad inputs of every topic kind (bad ones in the
//! dead-letter topic with their reason), unacknowledged batches never committed, and a member
//! joining the group taking partitions over without losing anything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argus_config::KafkaSettings;
use argus_ingest::decode::TimeWindow;
use argus_ingest::{DecodeOptions, Decoder, Envelope, PayloadKind, Record, MAX_RAW_BYTES};
use argus_kafka::{DeadLetterSink, KafkaSource, SourceOptions};
use argus_model::{Registry, Timestamp};
use argus_telemetry::Telemetry;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::util::{repo_path, root, runtime, settings, unique};

const TIMEOUT: Duration = Duration::from_secs(10);

fn now_ms() -> i64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn decoder(options: DecodeOptions) -> Arc<Decoder> {
    let text = std::fs::read_to_string(repo_path("config/registry.toml"))
        .unwrap_or_else(|e| panic!("registry: {e}"));
    let registry =
        Registry::from_toml_str(&text, "registry.toml").unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Decoder::new(Arc::new(registry), options))
}

fn telemetry() -> Telemetry {
    Telemetry::new("test", 0).unwrap_or_else(|e| panic!("telemetry: {e}"))
}

/// The shipped Kafka settings with a unique consumer group.
fn kafka_settings(group: &str) -> KafkaSettings {
    let mut kafka = settings().kafka;
    kafka.group_id = group.to_owned();
    kafka
}

fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", settings().kafka.bootstrap_servers);
    config
}

fn admin() -> AdminClient<DefaultClientContext> {
    client_config()
        .create()
        .unwrap_or_else(|e| panic!("admin: {e}"))
}

async fn create_topics(topics: &[(&str, i32)]) {
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let created = admin()
        .create_topics(&new, &options)
        .await
        .unwrap_or_else(|e| panic!("create topics: {e}"));
    assert!(
        created.iter().all(Result::is_ok),
        "create topics: {created:?}"
    );
}

async fn delete_topics(topics: &[&str]) {
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let deleted = admin()
        .delete_topics(topics, &options)
        .await
        .unwrap_or_else(|e| panic!("delete topics: {e}"));
    assert!(
        deleted.iter().all(Result::is_ok),
        "delete topics: {deleted:?}"
    );
}

fn producer() -> FutureProducer {
    client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"))
}

/// Produce one message and return (partition, offset).
async fn produce_one(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: Option<&[u8]>,
) -> (i32, i64) {
    let mut record = FutureRecord::<str, [u8]>::to(topic).key(key);
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    let delivery = producer
        .send(record, TIMEOUT)
        .await
        .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    (delivery.partition, delivery.offset)
}

/// Wait until Kafka has every produced message.
async fn await_deliveries(deliveries: Vec<DeliveryFuture>) {
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => panic!("delivery: {e}"),
            Err(e) => panic!("delivery: {e}"),
        }
    }
}

/// The group's committed offset and the high watermark of each partition of `topic`.
fn committed_and_high(group: &str, topic: &str, partitions: i32) -> Vec<(Offset, i64)> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, TIMEOUT)
        .unwrap_or_else(|e| panic!("committed offsets: {e}"));
    (0..partitions)
        .map(|p| {
            let offset = committed
                .find_partition(topic, p)
                .map_or(Offset::Invalid, |e| e.offset());
            let (_, high) = consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .unwrap_or_else(|e| panic!("watermarks: {e}"));
            (offset, high)
        })
        .collect()
}

fn assert_fully_committed(group: &str, topic: &str, partitions: i32) -> i64 {
    let mut total = 0;
    for (p, (committed, high)) in committed_and_high(group, topic, partitions)
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            committed,
            Offset::Offset(high),
            "{topic}/{p} of group {group}"
        );
        total += high;
    }
    total
}

/// A running source: its envelopes, the switch that stops it, and its task.
struct Running {
    rx: mpsc::Receiver<Envelope>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), argus_kafka::KafkaError>>,
}

fn start(
    rt: &tokio::runtime::Runtime,
    group: &str,
    topics: &[(&str, PayloadKind)],
    decoder: Arc<Decoder>,
    telemetry: Telemetry,
    capacity: usize,
) -> Running {
    start_with(
        rt,
        group,
        topics,
        decoder,
        telemetry,
        capacity,
        SourceOptions::default(),
    )
}

fn start_with(
    rt: &tokio::runtime::Runtime,
    group: &str,
    topics: &[(&str, PayloadKind)],
    decoder: Arc<Decoder>,
    telemetry: Telemetry,
    capacity: usize,
    options: SourceOptions,
) -> Running {
    let source = KafkaSource::with_topics(&kafka_settings(group), topics, decoder, telemetry)
        .unwrap_or_else(|e| panic!("source: {e}"))
        .with_options(options);
    let (tx, rx) = mpsc::channel(capacity);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = rt.spawn(source.run(tx, async {
        let _ = stopped.await;
    }));
    Running { rx, stop, task }
}

impl Running {
    /// Stop the source, wait for its shutdown commit, and return the envelopes it sent but
    /// nobody took.
    async fn stop(self) -> Vec<Envelope> {
        let Running { mut rx, stop, task } = self;
        let _ = stop.send(());
        // Take what the source still sends until it has stopped and dropped its sender.
        let drain = async {
            let mut rest = Vec::new();
            while let Some(envelope) = rx.recv().await {
                rest.push(envelope);
            }
            rest
        };
        let rest = tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .unwrap_or_else(|_| panic!("source did not stop within 30 s"));
        match task.await {
            Ok(Ok(())) => rest,
            Ok(Err(e)) => panic!("source failed: {e}"),
            Err(e) => panic!("source task: {e}"),
        }
    }
}

type ReadingKey = (String, String, i64);

/// Readings as (source, metric, event time) -> value; panics on a duplicate.
fn add_readings(into: &mut HashMap<ReadingKey, f64>, envelope: &Envelope) {
    for record in &envelope.records {
        let Record::Reading(r) = record else {
            panic!("unexpected record {record:?}");
        };
        let key = (
            r.source.as_str().to_owned(),
            r.metric.as_str().to_owned(),
            r.event_time.as_millis(),
        );
        assert!(
            into.insert(key.clone(), r.value).is_none(),
            "reading {key:?} delivered twice"
        );
    }
}

#[test]
fn hundred_thousand_readings_arrive_exactly_once() {
    const MESSAGES: usize = 10_000;
    const PER_MESSAGE: usize = 10;
    const PARTITIONS: i32 = 4;
    const TOTAL: usize = MESSAGES * PER_MESSAGE;
    let rt = runtime();
    rt.block_on(async {
        let topic = unique("argus_ks_readings");
        create_topics(&[(&topic, PARTITIONS)]).await;

        // 10,000 messages of 10 readings each, keyed by 40 sources spread over the partitions.
        let started = Instant::now();
        let base = now_ms() - 3_600_000;
        let producer = producer();
        let mut expected = HashMap::with_capacity(TOTAL);
        let mut deliveries = Vec::with_capacity(MESSAGES);
        for i in 0..MESSAGES {
            let source = format!("KS-{:02}", i % 40);
            let mut items = Vec::with_capacity(PER_MESSAGE);
            for j in 0..PER_MESSAGE {
                let n = i * PER_MESSAGE + j;
                let ts = base + i64::try_from(n).unwrap_or(0);
                let metric = if j % 2 == 0 { "a21026" } else { "a34004" };
                let value = n as f64 * 0.25;
                items.push(format!(
                    r#"{{"source":"{source}","ts":{ts},"values":{{"{metric}":{value}}}}}"#
                ));
                expected.insert((source.clone(), metric.to_owned(), ts), value);
            }
            let payload = format!("[{}]", items.join(","));
            let record = FutureRecord::to(&topic).key(&source).payload(&payload);
            deliveries.push(
                producer
                    .send_result(record)
                    .unwrap_or_else(|(e, _)| panic!("produce: {e}")),
            );
        }
        await_deliveries(deliveries).await;
        assert_eq!(expected.len(), TOTAL);
        let produced = started.elapsed();

        // A small channel: the source waits for the consumer (backpressure) most of the time.
        let group = unique("argus_ks_group");
        let telemetry = telemetry();
        let mut running = start(
            &rt,
            &group,
            &[(&topic, PayloadKind::JsonReadings)],
            decoder(DecodeOptions::default()),
            telemetry.clone(),
            8,
        );
        let mut received = HashMap::with_capacity(TOTAL);
        let mut envelopes = 0;
        let deadline = Instant::now() + Duration::from_secs(90);
        while received.len() < TOTAL {
            let left = deadline.saturating_duration_since(Instant::now());
            let envelope = match tokio::time::timeout(left, running.rx.recv()).await {
                Ok(Some(envelope)) => envelope,
                Ok(None) => panic!("source stopped after {} readings", received.len()),
                Err(_) => panic!("only {} of {TOTAL} readings in time", received.len()),
            };
            assert!(
                envelope.dead_letters.is_empty(),
                "dead letters: {:?}",
                envelope.dead_letters
            );
            add_readings(&mut received, &envelope);
            envelopes += 1;
            envelope.ack.done();
        }
        let consumed = started.elapsed() - produced;
        let rest = running.stop().await;
        assert!(
            rest.iter().all(|e| e.records.is_empty()),
            "readings delivered beyond the 100,000"
        );
        assert_eq!(received.len(), TOTAL);
        assert!(
            received == expected,
            "content differs from what was produced"
        );
        assert!(
            envelopes < MESSAGES,
            "{envelopes} envelopes for {MESSAGES} messages: not batched"
        );

        // The shutdown commit moved the group's offsets to the end of every partition.
        assert_eq!(
            assert_fully_committed(&group, &topic, PARTITIONS),
            MESSAGES as i64
        );
        let metrics = telemetry.render().unwrap_or_else(|e| panic!("render: {e}"));
        assert!(
            metrics.contains(&format!(
                "argus_ingest_records_total{{transport=\"kafka\"}} {TOTAL}"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "argus_ingest_payloads_total{{transport=\"kafka\"}} {MESSAGES}"
            )),
            "{metrics}"
        );
        assert!(telemetry.kafka.commits.with_label_values(&["ok"]).get() >= 1);
        assert_eq!(
            telemetry.kafka.commits.with_label_values(&["error"]).get(),
            0
        );
        assert!(
            telemetry
                .kafka
                .rebalances
                .with_label_values(&["assign"])
                .get()
                >= 1
        );
        eprintln!(
            "kafka_source: produced {MESSAGES} messages in {produced:?}, consumed {TOTAL} readings \
             in {envelopes} envelopes in {consumed:?}"
        );

        delete_topics(&[&topic]).await;
    });
}

/// One input the source must refuse: where it went, why, and its bytes.
#[derive(Debug)]
struct Bad {
    origin: String,
    reason: &'static str,
    raw: Vec<u8>,
}

/// Records compared without their receive time (set by the source).
fn normalized(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|record| match record.clone() {
            Record::Reading(mut r) => {
                r.receive_time = Timestamp(0);
                format!("{:?}", Record::Reading(r))
            }
            Record::Event(mut e) => {
                e.receive_time = Timestamp(0);
                format!("{:?}", Record::Event(e))
            }
        })
        .collect();
    out.sort();
    out
}

fn conformance_line(file: &str, index: usize) -> Vec<u8> {
    // The shared conformance set lives next to the repository: <root>/../shared.
    let path = root().join("../shared/conformance/hj212").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let line = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .nth(index)
        .unwrap_or_else(|| panic!("{} has no line {index}", path.display()));
    line.trim_end().as_bytes().to_vec()
}

#[test]
fn mixed_good_and_bad_inputs() {
    let rt = runtime();
    rt.block_on(async {
        let readings = unique("argus_ks_mix_readings");
        let events = unique("argus_ks_mix_events");
        let hj212 = unique("argus_ks_mix_hj212");
        let dlq = unique("argus_ks_mix_dlq");
        create_topics(&[(&readings, 2), (&events, 1), (&hj212, 1), (&dlq, 1)]).await;

        // The conformance packets are from 2016-2023: accept event times up to 20 years old.
        // Payloads over 64 KiB are refused.
        let options = DecodeOptions {
            window: TimeWindow {
                max_future_ms: 3_600_000,
                max_age_ms: 20 * 366 * 86_400_000,
            },
            max_payload_bytes: 64 * 1024,
            ..DecodeOptions::default()
        };
        let decoder = decoder(options);
        let now = now_ms();
        let producer = producer();

        let good: Vec<(&str, PayloadKind, Vec<u8>)> = vec![
            (
                &readings,
                PayloadKind::JsonReadings,
                format!(r#"{{"source":"MIX-R1","ts":{},"values":{{"a21026":1.5,"a34004":{{"v":20.0,"flag":"N"}}}}}}"#, now - 60_000).into_bytes(),
            ),
            (
                &readings,
                PayloadKind::JsonReadings,
                format!(r#"[{{"source":"MIX-R2","ts":{},"values":{{"a21002":3}}}},{{"source":"MIX-R3","ts":"{}","values":{{"x99999":{{"v":7,"flag":"D"}}}}}}]"#, now - 120_000, Timestamp(now - 7_200_000).to_rfc3339()).into_bytes(),
            ),
            (
                &events,
                PayloadKind::Events,
                format!(r#"{{"type":"production_state","source":"15010201000102","ts":{},"running":false,"enterprise":"E001"}}"#, now - 30_000).into_bytes(),
            ),
            (
                &events,
                PayloadKind::Events,
                format!(r#"[{{"type":"power_cut_feedback","source":"MINE01-PWR-WF1","ts":{now},"powered":true}},{{"type":"power","source":"15010201000103","ts":{now},"kw":412.5}}]"#).into_bytes(),
            ),
            (&hj212, PayloadKind::Hj212, conformance_line("valid.txt", 0)),
            (&hj212, PayloadKind::Hj212, {
                let mut line = conformance_line("valid.txt", 1);
                line.extend_from_slice(b"\r\n");
                line
            }),
        ];
        let oversize = {
            let mut payload = br#"{"source":"MIX-BIG","ts":0,"values":{"a21026":1},"pad":""#.to_vec();
            payload.resize(100_000, b'x');
            payload.extend_from_slice(b"\"}");
            payload
        };
        let bad_inputs: Vec<(&str, Option<Vec<u8>>, &'static str)> = vec![
            (&readings, Some(b"not json {".to_vec()), "bad_json"),
            (
                &readings,
                Some(format!(r#"{{"source":"MIX-R9","ts":{now},"values":{{"a21026":"high"}}}}"#).into_bytes()),
                "bad_schema",
            ),
            (
                &readings,
                Some(format!(r#"{{"source":"MIX-R9","ts":{},"values":{{"a21026":1}}}}"#, now + 2 * 86_400_000).into_bytes()),
                "timestamp_out_of_range",
            ),
            (&readings, Some(oversize), "oversize"),
            (&readings, None, "bad_schema"),
            (
                &events,
                Some(format!(r#"{{"type":"explosion","source":"MIX-L9","ts":{now}}}"#).into_bytes()),
                "bad_schema",
            ),
            (
                &events,
                Some(format!(r#"{{"type":"power_cut_feedback","source":"MIX-L2","ts":{now},"powered":true}}"#).into_bytes()),
                "unregistered",
            ),
            (&hj212, Some(conformance_line("bad-crc.txt", 0)), "bad_crc"),
        ];

        // Interleave good and bad inputs, remembering where each bad one landed.
        let mut expected_records = Vec::new();
        let mut bad = Vec::new();
        for i in 0..good.len().max(bad_inputs.len()) {
            if let Some((topic, kind, payload)) = good.get(i) {
                let decoded = decoder
                    .decode(*kind, payload, Timestamp(now_ms()))
                    .unwrap_or_else(|e| panic!("good input {i} does not decode: {e}"));
                assert!(!decoded.is_empty());
                expected_records.extend(decoded);
                produce_one(&producer, topic, &format!("good-{i}"), Some(payload)).await;
            }
            if let Some((topic, payload, reason)) = bad_inputs.get(i) {
                let (partition, offset) =
                    produce_one(&producer, topic, &format!("bad-{i}"), payload.as_deref()).await;
                let raw = payload.clone().unwrap_or_default();
                bad.push(Bad {
                    origin: format!("kafka:{topic}/{partition}@{offset}"),
                    reason,
                    raw,
                });
            }
        }

        let group = unique("argus_ks_mix_group");
        let telemetry = telemetry();
        let sink = DeadLetterSink::with_topic(&kafka_settings(&group), &dlq, telemetry.clone())
            .unwrap_or_else(|e| panic!("sink: {e}"));
        let topics = [
            (readings.as_str(), PayloadKind::JsonReadings),
            (events.as_str(), PayloadKind::Events),
            (hj212.as_str(), PayloadKind::Hj212),
        ];
        let mut running = start(&rt, &group, &topics, decoder.clone(), telemetry.clone(), 4);
        let mut records = Vec::new();
        let mut letters = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while records.len() < expected_records.len() || letters < bad.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let envelope = match tokio::time::timeout(left, running.rx.recv()).await {
                Ok(Some(envelope)) => envelope,
                Ok(None) => panic!("source stopped"),
                Err(_) => panic!(
                    "only {} of {} records and {letters} of {} dead letters in time",
                    records.len(),
                    expected_records.len(),
                    bad.len()
                ),
            };
            // Dead letters are safe once Kafka has them; only then is the envelope acknowledged.
            sink.publish(&envelope.dead_letters)
                .await
                .unwrap_or_else(|e| panic!("publish: {e}"));
            letters += envelope.dead_letters.len();
            records.extend(envelope.records);
            envelope.ack.done();
        }
        let rest = running.stop().await;
        assert!(
            rest.iter()
                .all(|e| e.records.is_empty() && e.dead_letters.is_empty()),
            "more than was produced: {rest:?}"
        );
        assert_eq!(normalized(&records), normalized(&expected_records));
        assert_eq!(letters, bad.len());
        assert_eq!(
            telemetry.ingest.dlq_published.get(),
            bad.len() as u64
        );

        // Every bad input is in the dead-letter topic exactly once, with its reason, origin and bytes.
        let in_dlq = committed_and_high(&unique("argus_ks_probe"), &dlq, 1)[0].1;
        assert_eq!(in_dlq, bad.len() as i64, "messages in the dead-letter topic");
        let reader: StreamConsumer = client_config()
            .set("group.id", unique("argus_ks_dlq_reader"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap_or_else(|e| panic!("consumer: {e}"));
        reader
            .subscribe(&[&dlq])
            .unwrap_or_else(|e| panic!("subscribe: {e}"));
        let mut published = BTreeMap::new();
        while published.len() < bad.len() {
            let message = tokio::time::timeout(Duration::from_secs(30), reader.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} dead letters read back", published.len()))
                .unwrap_or_else(|e| panic!("consume: {e}"));
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            let mut headers = BTreeMap::new();
            if let Some(h) = message.headers() {
                for header in h.iter() {
                    let value = String::from_utf8_lossy(header.value.unwrap_or_default());
                    headers.insert(header.key.to_owned(), value.into_owned());
                }
            }
            let value = message.payload().unwrap_or_default().to_vec();
            assert!(
                published.insert(key.clone(), (headers, value)).is_none(),
                "dead letter {key} published twice"
            );
        }
        drop(reader);
        for b in &bad {
            let (headers, value) = published
                .get(&b.origin)
                .unwrap_or_else(|| panic!("{} ({}) not in the dead-letter topic", b.origin, b.reason));
            let header = |name: &str| headers.get(name).map(String::as_str);
            assert_eq!(header("argus-reason"), Some(b.reason), "{}: {headers:?}", b.origin);
            assert_eq!(header("argus-origin"), Some(b.origin.as_str()));
            assert_eq!(header("argus-transport"), Some("kafka"));
            assert_eq!(header("argus-raw-len"), Some(b.raw.len().to_string().as_str()));
            assert!(header("argus-received-at").is_some_and(|t| !t.is_empty()));
            let kept = &b.raw[..b.raw.len().min(MAX_RAW_BYTES)];
            assert!(value.as_slice() == kept, "{}: raw bytes differ", b.origin);
        }
        assert_eq!(
            bad.iter().find(|b| b.raw.is_empty()).map(|b| b.reason),
            Some("bad_schema")
        );

        // Everything was acknowledged after its dead letters were published: fully committed.
        assert_fully_committed(&group, &readings, 2);
        assert_fully_committed(&group, &events, 1);
        assert_fully_committed(&group, &hj212, 1);

        delete_topics(&[&readings, &events, &hj212, &dlq]).await;
    });
}

#[test]
fn unacknowledged_batches_are_not_committed() {
    const MESSAGES: usize = 1_000;
    const PARTITIONS: i32 = 2;
    let rt = runtime();
    rt.block_on(async {
        let topic = unique("argus_ks_unacked");
        create_topics(&[(&topic, PARTITIONS)]).await;
        let producer = producer();
        let base = now_ms() - 600_000;
        let mut deliveries = Vec::new();
        for i in 0..MESSAGES {
            let source = format!("KU-{}", i % 10);
            let payload = format!(
                r#"{{"source":"{source}","ts":{},"values":{{"a21026":{i}}}}}"#,
                base + i64::try_from(i).unwrap_or(0)
            );
            let record = FutureRecord::to(&topic).key(&source).payload(&payload);
            deliveries.push(
                producer
                    .send_result(record)
                    .unwrap_or_else(|(e, _)| panic!("produce: {e}")),
            );
        }
        await_deliveries(deliveries).await;

        let group = unique("argus_ks_unacked_group");
        let topics = [(topic.as_str(), PayloadKind::JsonReadings)];
        let receive_all = |mut running: Running, ack: bool| async move {
            let mut readings = HashMap::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while readings.len() < MESSAGES {
                let left = deadline.saturating_duration_since(Instant::now());
                let envelope = match tokio::time::timeout(left, running.rx.recv()).await {
                    Ok(Some(envelope)) => envelope,
                    Ok(None) => panic!("source stopped"),
                    Err(_) => panic!("only {} of {MESSAGES} readings in time", readings.len()),
                };
                add_readings(&mut readings, &envelope);
                if ack {
                    envelope.ack.done();
                } // else: dropped, never acknowledged.
            }
            let rest = running.stop().await;
            assert!(rest.iter().all(|e| e.records.is_empty()), "duplicates");
            readings.into_keys().collect::<HashSet<_>>()
        };

        // First member: receives everything, acknowledges nothing.
        let first = start(
            &rt,
            &group,
            &topics,
            decoder(DecodeOptions::default()),
            telemetry(),
            8,
        );
        let seen_first = receive_all(first, false).await;
        for (p, (committed, high)) in committed_and_high(&group, &topic, PARTITIONS)
            .into_iter()
            .enumerate()
        {
            assert!(high > 0, "partition {p} is empty: keys not spread");
            assert_eq!(
                committed,
                Offset::Invalid,
                "partition {p}: nothing acknowledged, nothing committed"
            );
        }

        // Second member of the same group: everything again; this time acknowledged and committed.
        let second = start(
            &rt,
            &group,
            &topics,
            decoder(DecodeOptions::default()),
            telemetry(),
            8,
        );
        let seen_second = receive_all(second, true).await;
        assert_eq!(seen_first.len(), MESSAGES);
        assert!(
            seen_first == seen_second,
            "the second member saw other readings"
        );
        assert_eq!(
            assert_fully_committed(&group, &topic, PARTITIONS),
            MESSAGES as i64
        );

        delete_topics(&[&topic]).await;
    });
}

/// Produce `count` single readings keyed by 16 sources, returning their keys.
async fn produce_readings(topic: &str, count: usize, prefix: &str) -> HashSet<ReadingKey> {
    let producer = producer();
    let base = now_ms() - 600_000;
    let mut keys = HashSet::with_capacity(count);
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let source = format!("{prefix}-{}", i % 16);
        let ts = base + i64::try_from(i).unwrap_or(0);
        let payload = format!(r#"{{"source":"{source}","ts":{ts},"values":{{"a21026":{i}}}}}"#);
        let record = FutureRecord::to(topic).key(&source).payload(&payload);
        deliveries.push(
            producer
                .send_result(record)
                .unwrap_or_else(|(e, _)| panic!("produce: {e}")),
        );
        keys.insert((source, "a21026".to_owned(), ts));
    }
    await_deliveries(deliveries).await;
    keys
}

#[test]
fn a_joining_member_takes_over_partitions_without_loss() {
    const MESSAGES: usize = 4_000;
    const PARTITIONS: i32 = 4;
    let rt = runtime();
    rt.block_on(async {
        let topic = unique("argus_ks_rebalance");
        create_topics(&[(&topic, PARTITIONS)]).await;
        let expected = produce_readings(&topic, MESSAGES, "KR").await;

        // Small batches and a slow pipeline (100 ms per envelope): the first member alone would
        // need 8 s, so the second one joins while it is busy and takes partitions over.
        let group = unique("argus_ks_rebalance_group");
        let topics = [(topic.as_str(), PayloadKind::JsonReadings)];
        let options = SourceOptions {
            max_messages: 50,
            ..SourceOptions::default()
        };
        let seen: Arc<Mutex<HashMap<ReadingKey, usize>>> = Arc::default();
        let member = |telemetry: Telemetry, assigned: Arc<AtomicUsize>| {
            let source = KafkaSource::with_topics(
                &kafka_settings(&group),
                &topics,
                decoder(DecodeOptions::default()),
                telemetry,
            )
            .unwrap_or_else(|e| panic!("source: {e}"))
            .with_options(options)
            .on_assign(move || {
                assigned.fetch_add(1, Ordering::SeqCst);
            });
            let (tx, mut rx) = mpsc::channel(2);
            let (stop, stopped) = oneshot::channel::<()>();
            let task = rt.spawn(source.run(tx, async {
                let _ = stopped.await;
            }));
            let seen = Arc::clone(&seen);
            let worker = rt.spawn(async move {
                let mut mine = 0;
                while let Some(envelope) = rx.recv().await {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let mut seen = seen.lock().unwrap_or_else(|e| panic!("{e}"));
                    for record in &envelope.records {
                        let Record::Reading(r) = record else {
                            panic!("unexpected record {record:?}");
                        };
                        let key = (
                            r.source.as_str().to_owned(),
                            r.metric.as_str().to_owned(),
                            r.event_time.as_millis(),
                        );
                        *seen.entry(key).or_default() += 1;
                        mine += 1;
                    }
                    drop(seen);
                    envelope.ack.done();
                }
                mine
            });
            (stop, task, worker)
        };
        let seen_count = || seen.lock().unwrap_or_else(|e| panic!("{e}")).len();

        let first_telemetry = telemetry();
        let second_telemetry = telemetry();
        let hooks: [Arc<AtomicUsize>; 2] = Default::default();
        let started = Instant::now();
        let first = member(first_telemetry.clone(), Arc::clone(&hooks[0]));
        while seen_count() == 0 {
            assert!(started.elapsed() < Duration::from_secs(30), "first member got nothing");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let second = member(second_telemetry.clone(), Arc::clone(&hooks[1]));
        while seen_count() < MESSAGES {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "only {} of {MESSAGES} readings in time",
                seen_count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut taken = Vec::new();
        for (stop, task, worker) in [first, second] {
            let _ = stop.send(());
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("source failed: {e}"),
                Err(e) => panic!("source task: {e}"),
            }
            taken.push(worker.await.unwrap_or_else(|e| panic!("worker: {e}")));
        }

        let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| panic!("{e}")));
        let keys: HashSet<ReadingKey> = seen.keys().cloned().collect();
        assert!(keys == expected, "readings differ from what was produced");
        let duplicates: usize = seen.values().map(|n| n - 1).sum();
        assert!(taken[1] > 0, "the second member took nothing over: {taken:?}");
        let rebalances = |t: &Telemetry, event: &str| t.kafka.rebalances.with_label_values(&[event]).get();
        assert!(rebalances(&first_telemetry, "revoke") >= 1);
        assert!(rebalances(&second_telemetry, "assign") >= 1);
        let hooked = hooks.each_ref().map(|h| h.load(Ordering::SeqCst));
        assert!(hooked.iter().all(|&n| n >= 1), "assign hooks ran {hooked:?} times");
        // The first member settles what it sent before giving partitions up, and drops a batch
        // gathered across the rebalance: the second starts where the first stopped.
        assert_eq!(duplicates, 0, "readings delivered twice across the rebalance");
        assert_eq!(assert_fully_committed(&group, &topic, PARTITIONS), MESSAGES as i64);
        eprintln!(
            "kafka_source: rebalance: members took {taken:?} readings, {duplicates} delivered twice, \
             in {:?}",
            started.elapsed()
        );

        delete_topics(&[&topic]).await;
    });
}

/// Issue 12, item 8: with two processes in one group over the readings, HJ 212 and events
/// topics, the cooperative-sticky assignment gave the second process no readings partition:
/// readings did not scale out. Each topic's partitions are now split between the members.
#[test]
fn two_members_share_the_readings_topic() {
    const MESSAGES: usize = 2_000;
    const PARTITIONS: i32 = 4;
    let rt = runtime();
    rt.block_on(async {
        let names = ["readings", "hj212", "events"].map(|t| unique(&format!("argus_ks_split_{t}")));
        let created: Vec<(&str, i32)> = names.iter().map(|t| (t.as_str(), PARTITIONS)).collect();
        create_topics(&created).await;
        let group = unique("argus_ks_split_group");
        let topics = [
            (names[0].as_str(), PayloadKind::JsonReadings),
            (names[1].as_str(), PayloadKind::Hj212),
            (names[2].as_str(), PayloadKind::Events),
        ];
        let counted: Arc<Mutex<[usize; 2]>> = Arc::default();
        let mut members = Vec::new();
        let mut telemetries = Vec::new();
        for m in 0..2 {
            let t = telemetry();
            telemetries.push(t.clone());
            let running = start(
                &rt,
                &group,
                &topics,
                decoder(DecodeOptions::default()),
                t,
                8,
            );
            let Running { mut rx, stop, task } = running;
            let counted = Arc::clone(&counted);
            let worker = rt.spawn(async move {
                while let Some(envelope) = rx.recv().await {
                    counted.lock().unwrap_or_else(|e| panic!("{e}"))[m] += envelope.records.len();
                    envelope.ack.done();
                }
            });
            members.push((stop, task, worker));
        }
        // Both members in the group (each assigned once) before anything is produced.
        let assigned = |t: &Telemetry| t.kafka.rebalances.with_label_values(&["assign"]).get();
        let started = Instant::now();
        while !telemetries.iter().all(|t| assigned(t) >= 1)
            || started.elapsed() < Duration::from_secs(8)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "members not assigned"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        produce_readings(&names[0], MESSAGES, "KS").await;
        let total = || {
            counted
                .lock()
                .unwrap_or_else(|e| panic!("{e}"))
                .iter()
                .sum::<usize>()
        };
        while total() < MESSAGES {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "only {} of {MESSAGES}",
                total()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (stop, task, worker) in members {
            let _ = stop.send(());
            let _ = task.await;
            let _ = worker.await;
        }
        let counted = *counted.lock().unwrap_or_else(|e| panic!("{e}"));
        eprintln!("kafka_source: two members took {counted:?} of {MESSAGES} readings");
        assert!(counted.iter().all(|&n| n >= MESSAGES / 4), "{counted:?}");
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        delete_topics(&names).await;
    });
}
