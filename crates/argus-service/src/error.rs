//! The service's one error type: what stops Argus, with the part that failed and why.

use std::net::SocketAddr;

/// Why the service could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A listener could not be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        /// The config field naming the address.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A part could not be built from its settings.
    #[error("cannot create the {what}: {source}")]
    Build {
        /// The part (`kafka source`, `embedded store`, ...).
        what: &'static str,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A part the others need has stopped (its own error, if any, is logged and reported too).
    #[error("the {0} has stopped")]
    Stopped(&'static str),
    /// A part failed while running.
    #[error("{name} failed: {source}")]
    Task {
        /// The part.
        name: &'static str,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A task panicked.
    #[error("{0} panicked")]
    Panicked(String),
    /// The detection dataflow failed (timely's error text).
    #[error("dataflow failed: {0}")]
    Dataflow(String),
    /// Bad cluster options (host file, process index).
    #[error("bad cluster options: {0}")]
    Cluster(String),
    /// Draining at shutdown took too long.
    #[error("shutdown took longer than {0} s; some inputs may be redelivered after restart")]
    ShutdownTimeout(u64),
    /// The metrics registry could not be built.
    #[error(transparent)]
    Telemetry(#[from] argus_telemetry::TelemetryError),
}

impl ServiceError {
    /// A part that failed while running.
    pub(crate) fn task(
        name: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Task {
            name,
            source: Box::new(source),
        }
    }

    /// A part that could not be built.
    pub(crate) fn build(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Build {
            what,
            source: Box::new(source),
        }
    }
}
