//! Enforcement tickets (pure: no I/O, no clock): the policy that turns alerts into tickets
//! ([`policy`]) and the ticket book that routes them to the responsible team, moves them through
//! their states by role, and escalates missed deadlines ([`book`]), every change recorded as a
//! [`TicketEvent`].

pub mod book;
pub mod policy;

pub use book::{Change, EventKind, FiredAlert, Role, TicketBook, TicketError, TicketEvent};
pub use policy::{Policy, PolicyError, TicketRule};
