//! The ingest core every source adapter shares: decoding payloads (canonical JSON readings,
//! enterprise events, raw HJ 212 packets) into [`Record`]s, turning what cannot be decoded into
//! [`DeadLetter`]s with a reason, and the [`Envelope`] a source hands to the pipeline together
//! with its acknowledgement.
//!
//! Pure: no I/O and no async runtime. Adapters (MQTT, Kafka, the HJ 212 gateway) do the I/O and
//! call into this crate, so they never need each other.

pub mod dead_letter;
pub mod decode;
pub mod envelope;
pub mod events;
pub mod json;
pub mod strict;

pub use dead_letter::{
    bounded, count_by_reason, DeadLetter, Reason, MAX_DETAIL_BYTES, MAX_ORIGIN_BYTES, MAX_RAW_BYTES,
};
pub use decode::{DecodeOptions, Decoder, IngestError, PayloadKind, TimeWindow, TopicNames};
pub use envelope::{Ack, Envelope, Record, Transport};
