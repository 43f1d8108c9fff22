//! The dead-letter sink: publishes refused inputs to the dead-letter topic with an idempotent
//! producer (`acks=all`), the raw bytes as the value, the origin as the key and the metadata
//! (transport, origin, reason, detail, receive time, original length) as headers.

use std::time::Duration;

use argus_ingest::DeadLetter;
use argus_telemetry::Telemetry;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::KafkaError;

/// How long librdkafka keeps trying to deliver one dead letter before reporting failure.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait before retrying when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

/// Client context of the producer: librdkafka logs and errors go to `tracing`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProducerContext;

impl ClientContext for ProducerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::forward_log(level, fac, log_message);
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "kafka producer error: {reason}");
    }
}

/// An idempotent producer (`acks=all`) on the cluster of `settings`, giving up on a message
/// after `timeout`; librdkafka's logs and errors go to `tracing`.
pub(crate) fn idempotent_producer(
    settings: &argus_config::KafkaSettings,
    timeout: Duration,
) -> Result<FutureProducer<ProducerContext>, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", timeout.as_millis().to_string())
        .set("linger.ms", "5")
        .create_with_context(ProducerContext)
        .map_err(|source| KafkaError::Client {
            role: "producer",
            brokers: settings.bootstrap_servers.clone(),
            source: Box::new(source),
        })
}

/// Publishes dead letters to the dead-letter topic and waits until Kafka has them.
pub struct DeadLetterSink {
    producer: FutureProducer<ProducerContext>,
    topic: String,
    telemetry: Telemetry,
}

impl std::fmt::Debug for DeadLetterSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterSink")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetterSink {
    /// A sink publishing to `settings.topics.dlq`.
    pub fn new(
        settings: &argus_config::KafkaSettings,
        telemetry: Telemetry,
    ) -> Result<Self, KafkaError> {
        Self::with_topic(settings, &settings.topics.dlq, telemetry)
    }

    /// A sink publishing to `topic` on the cluster of `settings` (tests use unique topics).
    pub fn with_topic(
        settings: &argus_config::KafkaSettings,
        topic: &str,
        telemetry: Telemetry,
    ) -> Result<Self, KafkaError> {
        let producer = idempotent_producer(settings, DELIVERY_TIMEOUT)?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            telemetry,
        })
    }

    /// The topic dead letters are published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publish `letters` and wait for every delivery report. Returns the first failure once
    /// all reports are in: the caller must then not acknowledge the envelope the letters came
    /// from, so its input is read again (a letter may then be published twice, never zero
    /// times). Counts `argus_dlq_published_total` once per call.
    pub async fn publish(&self, letters: &[DeadLetter]) -> Result<(), KafkaError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut pending = Vec::with_capacity(letters.len());
        let mut first_error = None;
        for letter in letters {
            let headers = letter.headers();
            let owned = headers.iter().fold(
                OwnedHeaders::new_with_capacity(headers.len()),
                |h, (key, value)| {
                    h.insert(Header {
                        key,
                        value: Some(value.as_bytes()),
                    })
                },
            );
            let mut record = FutureRecord::to(&self.topic)
                .key(&letter.origin)
                .payload(&letter.raw)
                .headers(owned);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push((delivery, letter));
                        break;
                    }
                    Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // librdkafka's local queue is full: let earlier letters drain first.
                        record = back;
                        tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                    }
                    Err((source, _)) => {
                        first_error = Some(self.publish_error(letter, source));
                        break;
                    }
                }
            }
            if first_error.is_some() {
                break;
            }
        }
        let mut delivered = 0u64;
        for (delivery, letter) in pending {
            match delivery.await {
                Ok(Ok(_)) => delivered += 1,
                Ok(Err((source, _))) => {
                    let error = self.publish_error(letter, source);
                    first_error.get_or_insert(error);
                }
                Err(_) => {
                    let error = KafkaError::DeliveryLost {
                        topic: self.topic.clone(),
                        origin: letter.origin.clone(),
                    };
                    first_error.get_or_insert(error);
                }
            }
        }
        self.telemetry.ingest.dlq_published.inc_by(delivered);
        match first_error {
            None => Ok(()),
            Some(error) => {
                tracing::warn!(
                    topic = %self.topic,
                    delivered,
                    letters = letters.len(),
                    %error,
                    "dead letters not all published"
                );
                Err(error)
            }
        }
    }

    fn publish_error(&self, letter: &DeadLetter, source: RdKafkaError) -> KafkaError {
        KafkaError::Publish {
            topic: self.topic.clone(),
            origin: letter.origin.clone(),
            source: Box::new(source),
        }
    }
}
