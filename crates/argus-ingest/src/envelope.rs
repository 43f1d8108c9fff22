//! What a source hands to the pipeline: decoded records, dead letters, and an acknowledgement
//! that the source's position (a Kafka offset, say) may advance once the records are safe.

use std::fmt;

use argus_model::{Event, Reading};

use crate::DeadLetter;

/// The transport a payload arrived on. A bounded set: used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// MQTT broker subscription.
    Mqtt,
    /// Kafka consumer group.
    Kafka,
    /// HJ 212 data logger over TCP.
    Hj212Tcp,
    /// Argus's own HTTP API (staff actions such as silences).
    Api,
}

impl Transport {
    /// Lowercase name for labels, headers and storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::Kafka => "kafka",
            Transport::Hj212Tcp => "hj212_tcp",
            Transport::Api => "api",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One canonical record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A measured value.
    Reading(Reading),
    /// An enterprise event.
    Event(Event),
}

/// Called once what an envelope carried is safe downstream. Dropping it without calling
/// [`Ack::done`] leaves the source's position where it was: the input is delivered again after
/// a restart (at-least-once), never lost.
pub struct Ack(Option<Box<dyn FnOnce() + Send>>);

impl Ack {
    /// An acknowledgement that runs `f` when done.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    /// An acknowledgement with nothing to do (transports without positions).
    pub fn none() -> Self {
        Self(None)
    }

    /// Whether someone waits for it (it has something to do).
    pub fn is_awaited(&self) -> bool {
        self.0.is_some()
    }

    /// Acknowledge.
    pub fn done(mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Ack(pending)"
        } else {
            "Ack(none)"
        })
    }
}

/// A batch from one source: records and dead letters decoded from one or more inputs, and the
/// acknowledgement covering them all.
#[derive(Debug)]
pub struct Envelope {
    /// Where it came from.
    pub transport: Transport,
    /// Decoded records.
    pub records: Vec<Record>,
    /// Inputs that could not be decoded, each with its reason and raw bytes.
    pub dead_letters: Vec<DeadLetter>,
    /// Acknowledge once records and dead letters are safe downstream.
    pub ack: Ack,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn ack_runs_once_when_done_and_never_when_dropped() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        Ack::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .done();
        let c = Arc::clone(&count);
        drop(Ack::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        Ack::none().done();
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
