//! MQTT source: subscribes (QoS 1, persistent session, optionally a shared subscription) to
//! canonical JSON readings and raw HJ 212 packets, and hands them to the pipeline.
//!
//! Messages are acknowledged to the broker (manual PUBACK) only when the envelope carrying them
//! is acknowledged downstream, so the broker redelivers whatever Argus had not secured.
//!
//! [`start_embedded`] runs an MQTT broker (rumqttd) inside Argus for a single node.

mod broker;
mod source;
mod topic;

pub use broker::start_embedded;
pub use source::{MqttError, MqttSource, Subscription};
pub use topic::{matches, wildcard_levels};
