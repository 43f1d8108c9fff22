//! Round trip through the real Kafka broker of the local stack: produce to a fresh topic, consume
//! in a consumer group, commit offsets, and see a restarted member resume after them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::util::{runtime, settings, unique};

const PARTITIONS: i32 = 2;

fn base_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", settings().kafka.bootstrap_servers);
    config
}

fn consumer(group: &str) -> StreamConsumer {
    base_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .unwrap_or_else(|e| panic!("consumer: {e}"))
}

/// Receive `count` messages (or fail after `limit`), returning key -> payload.
async fn receive(
    consumer: &StreamConsumer,
    count: usize,
    limit: Duration,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + limit;
    let mut seen = BTreeMap::new();
    while seen.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("consume: {e}"),
            Err(_) => panic!("only {} of {count} messages within {limit:?}", seen.len()),
        };
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        assert!(
            seen.insert(key.clone(), payload).is_none(),
            "message {key} delivered twice"
        );
    }
    seen
}

#[test]
fn produced_messages_are_consumed_by_a_group_and_committed_offsets_hold() {
    const COUNT: usize = 1_000;
    let rt = runtime();
    rt.block_on(async {
        let topic = unique("argus_test");
        let admin: AdminClient<DefaultClientContext> = base_config()
            .create()
            .unwrap_or_else(|e| panic!("admin: {e}"));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let created = admin
            .create_topics(
                &[NewTopic::new(
                    &topic,
                    PARTITIONS,
                    TopicReplication::Fixed(1),
                )],
                &options,
            )
            .await
            .unwrap_or_else(|e| panic!("create topic: {e}"));
        assert!(
            created.iter().all(Result::is_ok),
            "create topic: {created:?}"
        );

        let producer: FutureProducer = base_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create()
            .unwrap_or_else(|e| panic!("producer: {e}"));
        let mut expected = BTreeMap::new();
        for i in 0..COUNT {
            let key = format!("MN{i:05}");
            let payload = format!("{{\"source\":\"{key}\",\"values\":{{\"a21026\":{i}.5}}}}");
            let record = FutureRecord::to(&topic).key(&key).payload(&payload);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            expected.insert(key, payload);
        }

        let group = unique("argus_test_group");
        let first = consumer(&group);
        first
            .subscribe(&[&topic])
            .unwrap_or_else(|e| panic!("subscribe: {e}"));
        let received = receive(&first, COUNT, Duration::from_secs(60)).await;
        assert_eq!(received, expected, "content differs from what was produced");
        first
            .commit_consumer_state(CommitMode::Sync)
            .unwrap_or_else(|e| panic!("commit: {e}"));

        // The committed offsets are the partitions' high watermarks: everything is accounted for.
        let mut partitions = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            partitions.add_partition(&topic, p);
        }
        let committed = first
            .committed_offsets(partitions, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("committed: {e}"));
        let mut total = 0;
        for p in 0..PARTITIONS {
            let (_, high) = first
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("watermarks: {e}"));
            let offset = committed.find_partition(&topic, p).map(|e| e.offset());
            assert_eq!(offset, Some(Offset::Offset(high)), "partition {p}");
            total += high;
        }
        assert_eq!(total, COUNT as i64);
        drop(first);

        // A new member of the same group resumes after the commit: it sees only newer messages.
        let producer_key = "after-commit".to_owned();
        let record = FutureRecord::to(&topic).key(&producer_key).payload("late");
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        let second = consumer(&group);
        second
            .subscribe(&[&topic])
            .unwrap_or_else(|e| panic!("subscribe: {e}"));
        let resumed = receive(&second, 1, Duration::from_secs(60)).await;
        assert_eq!(
            resumed.into_iter().collect::<Vec<_>>(),
            vec![(producer_key, "late".to_owned())]
        );
        drop(second);

        let deleted = admin
            .delete_topics(&[&topic], &options)
            .await
            .unwrap_or_else(|e| panic!("delete topic: {e}"));
        assert!(
            deleted.iter().all(Result::is_ok),
            "delete topic: {deleted:?}"
        );
    });
}
