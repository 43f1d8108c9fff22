//! Publishing of ticket changes: one message per change to the tickets topic, keyed by ticket
//! (so each ticket's changes keep their order in one partition), with an idempotent producer
//! (`acks=all`), each send awaited until Kafka has it.

use std::time::Duration;

use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::dlq::{idempotent_producer, ProducerContext};
use crate::KafkaError;

/// Publishes keyed JSON messages to one topic.
pub struct Publisher {
    producer: FutureProducer<ProducerContext>,
    topic: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher to `topic` on the cluster of `settings`, giving up on one message after
    /// `timeout`.
    pub fn new(
        settings: &argus_config::KafkaSettings,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: idempotent_producer(settings, timeout)?,
            topic: topic.to_owned(),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publish `payload` under `key` and wait until Kafka has it (or it failed).
    pub async fn send(&self, key: &str, payload: &[u8]) -> Result<(), KafkaError> {
        let record = FutureRecord::to(&self.topic).key(key).payload(payload);
        let error = |source: RdKafkaError| KafkaError::Send {
            topic: self.topic.clone(),
            key: key.to_owned(),
            source: Box::new(source),
        };
        match self.producer.send(record, Duration::from_secs(1)).await {
            Ok(_) => Ok(()),
            Err((source, _)) => Err(error(source)),
        }
    }
}
