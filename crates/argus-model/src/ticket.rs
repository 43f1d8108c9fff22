//! Enforcement tickets: the work order an enforcement team receives for a violation.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Severity, Timestamp};

/// The life of a ticket. Transitions are allowed only forward along this order (and to
/// `Closed` from `Inspecting` or `RectificationOrdered`); the store enforces who may make them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Created from one or more alerts, not yet sent to a team.
    New,
    /// Sent to the responsible team.
    Dispatched,
    /// The team has taken it on.
    Accepted,
    /// An inspector is on site or reviewing evidence.
    Inspecting,
    /// The enterprise has been ordered to rectify.
    RectificationOrdered,
    /// Finished, with an outcome.
    Closed,
}

impl TicketState {
    /// The snake_case name used in storage and APIs.
    pub const fn as_str(self) -> &'static str {
        match self {
            TicketState::New => "new",
            TicketState::Dispatched => "dispatched",
            TicketState::Accepted => "accepted",
            TicketState::Inspecting => "inspecting",
            TicketState::RectificationOrdered => "rectification_ordered",
            TicketState::Closed => "closed",
        }
    }

    /// Every state, in the order of a ticket's life.
    pub const ALL: [TicketState; 6] = [
        TicketState::New,
        TicketState::Dispatched,
        TicketState::Accepted,
        TicketState::Inspecting,
        TicketState::RectificationOrdered,
        TicketState::Closed,
    ];

    /// The state of a snake_case name, as stored.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether a ticket may move from `self` to `to`.
    pub const fn may_become(self, to: TicketState) -> bool {
        use TicketState::*;
        matches!(
            (self, to),
            (New, Dispatched)
                | (Dispatched, Accepted)
                | (Accepted, Inspecting)
                | (Inspecting, RectificationOrdered)
                | (Inspecting, Closed)
                | (RectificationOrdered, Closed)
        )
    }
}

impl fmt::Display for TicketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a closed ticket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketOutcome {
    /// The violation was confirmed.
    ViolationConfirmed,
    /// The alert was a false alarm.
    FalseAlarm,
    /// The cause was a fault of the monitoring equipment.
    EquipmentFault,
}

/// An enforcement ticket routed to the team of one town and one department.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Ticket id.
    pub ticket_id: u64,
    /// The alerts grouped into this ticket.
    pub alert_ids: Vec<u64>,
    /// The enterprise concerned.
    pub enterprise_id: String,
    /// Town (jurisdiction) of the enterprise.
    pub town: String,
    /// Department responsible.
    pub department: String,
    /// Highest severity among its alerts.
    pub severity: Severity,
    /// Current state.
    pub state: TicketState,
    /// When it was created.
    pub created_at: Timestamp,
    /// When the current state must be left by, if it has a deadline.
    pub deadline: Option<Timestamp>,
    /// Outcome, once closed.
    pub outcome: Option<TicketOutcome>,
}

#[cfg(test)]
mod tests {
    use super::TicketState::*;

    #[test]
    fn only_forward_transitions_are_allowed() {
        assert!(New.may_become(Dispatched));
        assert!(Inspecting.may_become(Closed));
        assert!(!New.may_become(Closed));
        assert!(!Closed.may_become(New));
        assert!(!Accepted.may_become(Dispatched));
    }
}
