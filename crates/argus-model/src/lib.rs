//! The canonical model of Argus: readings, metric codes, alerts, tickets and the county registry.
//!
//! This crate is the vocabulary every other Argus crate speaks. It is pure: no I/O, no threads,
//! no async runtime. Parsing the registry takes text, never a path; the binary reads the file.
//!
//! Times are UTC internally ([`Timestamp`], milliseconds since the Unix epoch); China Standard
//! Time (UTC+8) appears only where regulations define hours and days ([`time::CHINA_OFFSET_SECS`]).

pub mod account;
pub mod alert;
pub mod event;
pub mod flag;
pub mod metric;
pub mod query;
pub mod reading;
pub mod registry;
pub mod severity;
pub mod ticket;
pub mod time;
pub mod view;

pub use account::{Credential, CredentialKind, Jurisdiction, User, UserRole};
pub use alert::{Alert, AlertKind, AlertStatus};
pub use event::{Event, EventKind};
pub use flag::DataFlag;
pub use metric::{Metric, MetricCode, MetricDomain, Unit};
pub use query::{AlertCursor, AlertQuery, TicketCursor, TicketOrder, TicketQuery};
pub use reading::{Interval, Reading, SourceId};
pub use registry::{Registry, RegistryError};
pub use severity::Severity;
pub use ticket::{Ticket, TicketOutcome, TicketState};
pub use time::Timestamp;
pub use view::{
    AlertView, CredentialView, EnterpriseView, HourView, LimitView, NamedView, PointView,
    ReadingView, RegistryView, SeriesView, TeamView, TicketEventView, TicketView, UserView,
};
