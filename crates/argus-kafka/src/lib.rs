//! Argus Kafka adapter: a consumer-group [`KafkaSource`] that batches messages of the readings,
//! HJ 212 and events topics into [`argus_ingest::Envelope`]s and commits offsets only once their
//! envelope is acknowledged (at-least-once), and a [`DeadLetterSink`] that publishes dead letters
//! to the dead-letter topic with their reason in headers, and a [`Publisher`] of keyed
//! messages (ticket changes for government systems).
//!
//! - `source.rs`: the consumer, its batching loop and its rebalance and commit callbacks.
//! - `offsets.rs`: pure bookkeeping of delivered and acknowledged offsets per partition.
//! - `dlq.rs`: the idempotent dead-letter producer.
//! - `publish.rs`: the idempotent producer of keyed messages, each send awaited.

pub mod dlq;
pub mod offsets;
pub mod publish;
pub mod source;

pub use dlq::DeadLetterSink;
pub use offsets::OffsetTracker;
pub use publish::Publisher;
pub use source::{KafkaSource, SourceOptions};

use rdkafka::config::RDKafkaLogLevel;

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client could not be created (bad configuration value, for instance).
    #[error("cannot create kafka {role} for brokers {brokers}: {source}")]
    Client {
        /// `consumer` or `producer`.
        role: &'static str,
        /// The bootstrap servers.
        brokers: String,
        /// The library's error.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A source was given no topics, or one topic twice.
    #[error("kafka source of group {group}: {reason}")]
    Topics {
        /// The consumer group.
        group: String,
        /// What is wrong with the topic list.
        reason: String,
    },
    /// Subscribing to the topics failed.
    #[error("kafka group {group} cannot subscribe to {topics}: {source}")]
    Subscribe {
        /// The consumer group.
        group: String,
        /// The topics, comma-separated.
        topics: String,
        /// The library's error.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// The consumer hit a fatal error and cannot go on.
    #[error("kafka consumer of group {group} failed fatally: {source}")]
    Consume {
        /// The consumer group.
        group: String,
        /// The library's error.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A dead letter could not be handed to the producer or was not delivered.
    #[error("cannot publish dead letter {origin} to kafka topic {topic}: {source}")]
    Publish {
        /// The dead-letter topic.
        topic: String,
        /// Origin of the dead letter (`kafka:argus.readings/2@1234`).
        origin: String,
        /// The library's error.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// The producer went away before reporting a delivery.
    #[error(
        "kafka producer for topic {topic} dropped the delivery report of dead letter {origin}"
    )]
    DeliveryLost {
        /// The dead-letter topic.
        topic: String,
        /// Origin of the dead letter.
        origin: String,
    },
    /// A message could not be published.
    #[error("cannot publish message {key} to kafka topic {topic}: {source}")]
    Send {
        /// The topic.
        topic: String,
        /// The message's key.
        key: String,
        /// The library's error.
        source: Box<rdkafka::error::KafkaError>,
    },
}

/// Forward a librdkafka log line to `tracing` (target `librdkafka`), so it follows the log
/// filter and format of the rest of Argus.
pub(crate) fn forward_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}
