//! The running Argus service as a library: [`run`] builds every part from validated settings,
//! registry, rules and ticket policy (sources chosen by config, the pipeline, detection on
//! timely, the store's sink, the ticket book, the HTTP API) and runs them on the given
//! [`Listeners`] until the shutdown future completes (mini-redis style: tests bind
//! `127.0.0.1:0`). The binary only parses commands and calls it.

mod checkpoints;
pub mod delivery;
mod detect;
mod error;
pub mod harness;
mod pipeline;
mod records;
mod service;
mod stream;
mod tickets;
mod tls;

#[cfg(test)]
mod api_tests;

pub use detect::{install_panic_hook, Cluster};
pub use error::ServiceError;
pub use records::{LiveRecords, StoreAccounts};
pub use service::{run, Listeners, Parts};
pub use tickets::Command as TicketCommand;
