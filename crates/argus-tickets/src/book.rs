//! The ticket book: alerts become tickets by the policy, routed to the team of the enterprise's
//! town and the rule's department; people move tickets through their states, each change allowed
//! only from the right state and to the right role; missed deadlines escalate to the department
//! head. Every change is a [`TicketEvent`]: the legal record, appended, never changed.

use std::collections::{BTreeMap, HashMap, HashSet};

use argus_model::{
    AlertKind, Metric, Registry, Severity, Ticket, TicketOutcome, TicketState, Timestamp,
};

use crate::policy::Policy;

/// Who makes a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Argus itself (creation, automatic dispatch, escalation).
    System,
    /// Monitoring staff of the supervision center.
    Dispatcher,
    /// The enforcement team the ticket is routed to.
    Team,
    /// The head of the department.
    Head,
}

impl Role {
    /// The snake_case name used in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Dispatcher => "dispatcher",
            Role::Team => "team",
            Role::Head => "head",
        }
    }

    /// The states this role may move a ticket in state `from` to, in the order of its life.
    pub fn next_states(self, from: TicketState) -> Vec<TicketState> {
        TicketState::ALL
            .into_iter()
            .filter(|to| from.may_become(*to) && self.may_move_to(*to))
            .collect()
    }

    /// Whether this role may move a ticket to `to`.
    const fn may_move_to(self, to: TicketState) -> bool {
        use TicketState::*;
        match self {
            Role::Head => true,
            Role::System | Role::Dispatcher => matches!(to, Dispatched),
            Role::Team => matches!(to, Accepted | Inspecting | RectificationOrdered | Closed),
        }
    }
}

/// What happened to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created from an alert.
    Created,
    /// Another alert of the same enterprise joined it.
    AlertAdded,
    /// Moved to another state.
    StateChanged,
    /// Its state's deadline passed: escalated to the department head.
    Escalated,
    /// A maintenance notice or staff silence that arrived after one of its alerts fired covers
    /// that alert's start: recorded on the ticket, which stays as it is.
    AlertMuted,
}

impl EventKind {
    /// The snake_case name used in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::AlertAdded => "alert_added",
            EventKind::StateChanged => "state_changed",
            EventKind::Escalated => "escalated",
            EventKind::AlertMuted => "alert_muted",
        }
    }
}

/// One entry of a ticket's legal record.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketEvent {
    /// The ticket.
    pub ticket_id: u64,
    /// Its position in the ticket's record, from 1.
    pub seq: u32,
    /// When.
    pub at: Timestamp,
    /// Who (a person's name, or `argus`).
    pub actor: String,
    /// In which role.
    pub role: Role,
    /// What happened.
    pub kind: EventKind,
    /// State before (none at creation).
    pub from: Option<TicketState>,
    /// State after.
    pub to: TicketState,
    /// Free text: the rule that created it, the person's note, whom it escalated to.
    pub note: String,
    /// Evidence: the alerts concerned.
    pub alert_ids: Vec<u64>,
    /// The outcome, when closed.
    pub outcome: Option<TicketOutcome>,
}

/// A change a person asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The state to move to.
    pub to: TicketState,
    /// Who asks.
    pub actor: String,
    /// In which role.
    pub role: Role,
    /// Their note.
    pub note: String,
    /// The outcome: required to close, refused otherwise.
    pub outcome: Option<TicketOutcome>,
}

/// A change that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// No such ticket.
    #[error("no ticket {0:016x}")]
    UnknownTicket(u64),
    /// The state machine does not allow it.
    #[error("ticket {id:016x} cannot go from {from} to {to}")]
    IllegalTransition {
        /// The ticket.
        id: u64,
        /// Its state.
        from: TicketState,
        /// The state asked for.
        to: TicketState,
    },
    /// The role may not make it.
    #[error("a {role} may not move ticket {id:016x} to {to}")]
    NotAllowed {
        /// The ticket.
        id: u64,
        /// The role.
        role: &'static str,
        /// The state asked for.
        to: TicketState,
    },
    /// Closing needs an outcome; other changes take none.
    #[error("ticket {id:016x}: an outcome is given exactly when closing")]
    Outcome {
        /// The ticket.
        id: u64,
    },
}

/// An alert that fired, as the ticket book needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredAlert {
    /// Its deterministic id.
    pub alert_id: u64,
    /// Its kind.
    pub kind: AlertKind,
    /// Its severity.
    pub severity: Severity,
    /// The enterprise.
    pub enterprise_id: String,
    /// The metric, if the alert is about one.
    pub metric: Option<Metric>,
    /// Its start.
    pub started_at: Timestamp,
    /// Muted by a maintenance notice: recorded, no ticket.
    pub muted: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    ticket: Ticket,
    team: String,
    seq: u32,
    /// Since when it is in its state.
    since: Timestamp,
    escalated: bool,
}

/// Open and closed tickets, and the routing data of the registry.
#[derive(Debug, Clone)]
pub struct TicketBook {
    policy: Policy,
    town_of: HashMap<String, String>,
    team_of: HashMap<(String, String), String>,
    head_of: HashMap<String, String>,
    tickets: BTreeMap<u64, Entry>,
    open: HashMap<(String, String), u64>,
    /// Every alert a ticket the book holds has taken: an alert delivered again (detection
    /// resumed from a checkpoint judges its last inputs again) makes no second ticket.
    ticketed: HashSet<u64>,
    /// The alerts whose later muting a ticket has recorded (once, however often it comes).
    muted: HashSet<u64>,
}

/// FNV-1a 64: deterministic ticket ids (the same alerts give the same ticket in a replay).
fn ticket_id(enterprise: &str, department: &str, first_alert: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in enterprise
        .bytes()
        .chain([0])
        .chain(department.bytes())
        .chain([0])
        .chain(first_alert.to_le_bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

const ARGUS: &str = "argus";

impl TicketBook {
    /// An empty book for `registry`'s towns, teams and department heads.
    pub fn new(policy: Policy, registry: &Registry) -> Self {
        Self {
            policy,
            town_of: registry
                .enterprises()
                .map(|e| (e.id.clone(), e.town.clone()))
                .collect(),
            team_of: registry
                .teams()
                .map(|t| ((t.town.clone(), t.department.clone()), t.name.clone()))
                .collect(),
            head_of: registry
                .departments()
                .map(|d| (d.id.clone(), d.head.clone()))
                .collect(),
            tickets: BTreeMap::new(),
            open: HashMap::new(),
            ticketed: HashSet::new(),
            muted: HashSet::new(),
        }
    }

    /// Take back a ticket kept from an earlier run (an open one: closed tickets take no more
    /// changes), routed to `team`, whose record has `seq` events, in its state since `since`.
    /// A deadline already passed counts as escalated.
    pub fn restore(
        &mut self,
        ticket: Ticket,
        team: String,
        seq: u32,
        since: Timestamp,
        now: Timestamp,
    ) {
        if ticket.state == TicketState::Closed {
            return;
        }
        let escalated = ticket.deadline.is_some_and(|d| now > d);
        let key = (ticket.enterprise_id.clone(), ticket.department.clone());
        let id = ticket.ticket_id;
        self.ticketed.extend(ticket.alert_ids.iter().copied());
        self.tickets.insert(
            id,
            Entry {
                ticket,
                team,
                seq,
                since,
                escalated,
            },
        );
        self.open.insert(key, id);
    }

    /// Alerts whose later muting the record of a restored ticket already holds (its
    /// `alert_muted` events): not recorded again.
    pub fn restore_muted(&mut self, alert_ids: impl IntoIterator<Item = u64>) {
        self.muted.extend(alert_ids);
    }

    /// A notice or silence (`reason`) that arrived after `alert_id` fired covers its start:
    /// the ticket holding the alert records it (a line of its legal record; its state and
    /// deadline stay). Nothing when no ticket the book holds has the alert, or it is recorded.
    pub fn on_muted(&mut self, alert_id: u64, reason: &str, at: Timestamp) -> Option<TicketEvent> {
        if !self.ticketed.contains(&alert_id) || self.muted.contains(&alert_id) {
            return None;
        }
        let entry = self
            .tickets
            .values_mut()
            .find(|e| e.ticket.alert_ids.contains(&alert_id))?;
        self.muted.insert(alert_id);
        entry.seq += 1;
        Some(TicketEvent {
            ticket_id: entry.ticket.ticket_id,
            seq: entry.seq,
            at,
            actor: ARGUS.to_owned(),
            role: Role::System,
            kind: EventKind::AlertMuted,
            from: Some(entry.ticket.state),
            to: entry.ticket.state,
            note: format!("alert {alert_id:016x} muted: {reason}"),
            alert_ids: vec![alert_id],
            outcome: None,
        })
    }

    /// Open tickets held.
    pub fn open_tickets(&self) -> usize {
        self.open.len()
    }

    /// A ticket, if known.
    pub fn ticket(&self, id: u64) -> Option<&Ticket> {
        self.tickets.get(&id).map(|e| &e.ticket)
    }

    /// The team a ticket is routed to (empty when the registry has none for it).
    pub fn team(&self, id: u64) -> Option<&str> {
        self.tickets.get(&id).map(|e| e.team.as_str())
    }

    /// Take a fired alert: a new ticket, or one more alert on the open ticket of its enterprise
    /// and department; nothing when no rule takes it or it is muted.
    pub fn on_alert(&mut self, alert: &FiredAlert, at: Timestamp) -> Vec<TicketEvent> {
        let domain = alert.metric.map(Metric::domain);
        let Some(rule) = self.policy.rule_for(alert.kind, alert.severity, domain) else {
            return Vec::new();
        };
        if alert.muted || self.ticketed.contains(&alert.alert_id) {
            return Vec::new();
        }
        let key = (alert.enterprise_id.clone(), rule.department.clone());
        if let Some(entry) = self.open.get(&key).and_then(|id| self.tickets.get_mut(id)) {
            let joins = entry.ticket.state != TicketState::Closed
                && alert.started_at.as_millis()
                    < entry
                        .ticket
                        .created_at
                        .as_millis()
                        .saturating_add(rule.group_window_ms);
            if joins {
                entry.ticket.alert_ids.push(alert.alert_id);
                self.ticketed.insert(alert.alert_id);
                entry.ticket.severity = entry.ticket.severity.max(alert.severity);
                entry.seq += 1;
                return vec![TicketEvent {
                    ticket_id: entry.ticket.ticket_id,
                    seq: entry.seq,
                    at,
                    actor: ARGUS.to_owned(),
                    role: Role::System,
                    kind: EventKind::AlertAdded,
                    from: Some(entry.ticket.state),
                    to: entry.ticket.state,
                    note: format!("{} alert joins the ticket", alert.kind.as_str()),
                    alert_ids: vec![alert.alert_id],
                    outcome: None,
                }];
            }
        }
        let town = self
            .town_of
            .get(&alert.enterprise_id)
            .cloned()
            .unwrap_or_default();
        let team = self
            .team_of
            .get(&(town.clone(), rule.department.clone()))
            .cloned()
            .unwrap_or_default();
        let id = ticket_id(&alert.enterprise_id, &rule.department, alert.alert_id);
        let ticket = Ticket {
            ticket_id: id,
            alert_ids: vec![alert.alert_id],
            enterprise_id: alert.enterprise_id.clone(),
            town,
            department: rule.department.clone(),
            severity: alert.severity,
            state: TicketState::New,
            created_at: at,
            deadline: self
                .policy
                .deadline_ms(TicketState::New)
                .map(|ms| at.plus_millis(ms)),
            outcome: None,
        };
        let note = if team.is_empty() {
            format!(
                "rule {}; no team in the registry for this town and department",
                rule.name
            )
        } else {
            format!("rule {}; routed to {team}", rule.name)
        };
        let mut events = vec![TicketEvent {
            ticket_id: id,
            seq: 1,
            at,
            actor: ARGUS.to_owned(),
            role: Role::System,
            kind: EventKind::Created,
            from: None,
            to: TicketState::New,
            note,
            alert_ids: vec![alert.alert_id],
            outcome: None,
        }];
        let auto = self.policy.auto_dispatch && !team.is_empty();
        self.ticketed.insert(alert.alert_id);
        self.tickets.insert(
            id,
            Entry {
                ticket,
                team,
                seq: 1,
                since: at,
                escalated: false,
            },
        );
        self.open.insert(key, id);
        if auto {
            let change = Change {
                to: TicketState::Dispatched,
                actor: ARGUS.to_owned(),
                role: Role::System,
                note: "dispatched automatically".to_owned(),
                outcome: None,
            };
            if let Ok(event) = self.apply(id, change, at) {
                events.push(event);
            }
        }
        events
    }

    /// Make a change a person asked for, if the state machine and their role allow it.
    pub fn apply(
        &mut self,
        id: u64,
        change: Change,
        at: Timestamp,
    ) -> Result<TicketEvent, TicketError> {
        let entry = self
            .tickets
            .get_mut(&id)
            .ok_or(TicketError::UnknownTicket(id))?;
        let from = entry.ticket.state;
        if !from.may_become(change.to) {
            return Err(TicketError::IllegalTransition {
                id,
                from,
                to: change.to,
            });
        }
        if !change.role.may_move_to(change.to) {
            return Err(TicketError::NotAllowed {
                id,
                role: change.role.as_str(),
                to: change.to,
            });
        }
        if change.outcome.is_some() != (change.to == TicketState::Closed) {
            return Err(TicketError::Outcome { id });
        }
        entry.ticket.state = change.to;
        entry.ticket.outcome = change.outcome;
        entry.ticket.deadline = self
            .policy
            .deadline_ms(change.to)
            .map(|ms| at.plus_millis(ms));
        entry.since = at;
        entry.escalated = false;
        entry.seq += 1;
        if change.to == TicketState::Closed {
            let key = (
                entry.ticket.enterprise_id.clone(),
                entry.ticket.department.clone(),
            );
            if self.open.get(&key) == Some(&id) {
                self.open.remove(&key);
            }
        }
        Ok(TicketEvent {
            ticket_id: id,
            seq: entry.seq,
            at,
            actor: change.actor,
            role: change.role,
            kind: EventKind::StateChanged,
            from: Some(from),
            to: change.to,
            note: change.note,
            alert_ids: Vec::new(),
            outcome: change.outcome,
        })
    }

    /// The clock is at `now`: tickets past their state's deadline escalate to the department
    /// head, once per state.
    pub fn on_clock(&mut self, now: Timestamp) -> Vec<TicketEvent> {
        let mut events = Vec::new();
        for (id, entry) in &mut self.tickets {
            let Some(deadline) = entry.ticket.deadline else {
                continue;
            };
            if entry.escalated || now <= deadline {
                continue;
            }
            entry.escalated = true;
            entry.seq += 1;
            let head = self
                .head_of
                .get(&entry.ticket.department)
                .cloned()
                .unwrap_or_default();
            let state = entry.ticket.state;
            events.push(TicketEvent {
                ticket_id: *id,
                seq: entry.seq,
                at: now,
                actor: ARGUS.to_owned(),
                role: Role::System,
                kind: EventKind::Escalated,
                from: Some(state),
                to: state,
                note: format!(
                    "{state} since {} past its deadline {}: escalated to {head}",
                    entry.since.to_rfc3339(),
                    deadline.to_rfc3339()
                ),
                alert_ids: Vec::new(),
                outcome: None,
            });
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn registry() -> Registry {
        let text = include_str!("../../../config/registry.toml");
        Registry::from_toml_str(text, "registry.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn book() -> TicketBook {
        let registry = registry();
        let text = include_str!("../../../config/tickets.toml");
        let policy = Policy::from_toml_str(text, "tickets.toml", &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        TicketBook::new(policy, &registry)
    }

    fn alert(id: u64, kind: AlertKind, severity: Severity, metric: Metric, at: i64) -> FiredAlert {
        FiredAlert {
            alert_id: id,
            kind,
            severity,
            enterprise_id: "E001".to_owned(),
            metric: Some(metric),
            started_at: Timestamp(at),
            muted: false,
        }
    }

    fn change(to: TicketState, role: Role, outcome: Option<TicketOutcome>) -> Change {
        Change {
            to,
            actor: "Inspector Sun".to_owned(),
            role,
            note: String::new(),
            outcome,
        }
    }

    #[test]
    fn an_alert_of_a_configured_kind_makes_one_ticket_routed_to_the_right_team() {
        let registry = registry();
        let mut book = book();
        let e001 = registry
            .enterprise("E001")
            .unwrap_or_else(|| panic!("no E001"));
        let events = book.on_alert(
            &alert(1, AlertKind::Average, Severity::Orange, Metric::So2, 0),
            Timestamp(0),
        );
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            (events[0].kind, events[0].to),
            (EventKind::Created, TicketState::New)
        );
        assert_eq!(
            (events[1].kind, events[1].to),
            (EventKind::StateChanged, TicketState::Dispatched)
        );
        let id = events[0].ticket_id;
        let ticket = book.ticket(id).unwrap_or_else(|| panic!("no ticket"));
        assert_eq!(
            (ticket.town.as_str(), ticket.department.as_str()),
            (e001.town.as_str(), "environment")
        );
        let team = registry
            .team(&e001.town, "environment")
            .unwrap_or_else(|| panic!("no team"));
        assert_eq!(book.team(id), Some(team.name.as_str()));
        assert!(events[0].note.contains(&team.name), "{}", events[0].note);

        // A second alert of the enterprise joins it, raising its severity; the same alert again,
        // a yellow one, a muted one, or one no rule takes make nothing.
        let joined = book.on_alert(
            &alert(2, AlertKind::Threshold, Severity::Red, Metric::Nox, H),
            Timestamp(H),
        );
        assert_eq!(joined.len(), 1);
        assert_eq!(
            (joined[0].kind, joined[0].ticket_id, joined[0].seq),
            (EventKind::AlertAdded, id, 3)
        );
        assert!(book
            .on_alert(
                &alert(2, AlertKind::Threshold, Severity::Red, Metric::Nox, H),
                Timestamp(H)
            )
            .is_empty());
        assert!(book
            .on_alert(
                &alert(3, AlertKind::Average, Severity::Yellow, Metric::So2, H),
                Timestamp(H)
            )
            .is_empty());
        let mut muted = alert(4, AlertKind::Average, Severity::Red, Metric::So2, H);
        muted.muted = true;
        assert!(book.on_alert(&muted, Timestamp(H)).is_empty());
        assert!(book
            .on_alert(
                &alert(
                    5,
                    AlertKind::UnregisteredSource,
                    Severity::Red,
                    Metric::So2,
                    H
                ),
                Timestamp(H)
            )
            .is_empty());
        let ticket = book.ticket(id).unwrap_or_else(|| panic!("no ticket"));
        assert_eq!(ticket.alert_ids, vec![1, 2]);
        assert_eq!(ticket.severity, Severity::Red);

        // Methane goes to the coal department of the mine's town; after the window, a new ticket.
        let mut methane = alert(
            6,
            AlertKind::PowerCutFailure,
            Severity::Red,
            Metric::MineCh4,
            0,
        );
        methane.enterprise_id = "E010".to_owned();
        let events = book.on_alert(&methane, Timestamp(0));
        let mine = book
            .ticket(events[0].ticket_id)
            .unwrap_or_else(|| panic!("no ticket"));
        assert_eq!(mine.department, "coal");
        let later = book.on_alert(
            &alert(7, AlertKind::Average, Severity::Orange, Metric::So2, 25 * H),
            Timestamp(25 * H),
        );
        assert_eq!(later[0].kind, EventKind::Created);
        assert_ne!(later[0].ticket_id, id);
        // The first alert delivered again a day later (detection resumed from a checkpoint
        // judges its last inputs again) joins no ticket and makes none.
        assert!(book
            .on_alert(
                &alert(1, AlertKind::Average, Severity::Orange, Metric::So2, 0),
                Timestamp(30 * H)
            )
            .is_empty());
        let later = book
            .ticket(later[0].ticket_id)
            .unwrap_or_else(|| panic!("no ticket"));
        assert_eq!(later.alert_ids, vec![7]);
    }

    #[test]
    fn illegal_changes_are_refused_with_a_clear_error() {
        let mut book = book();
        let events = book.on_alert(
            &alert(1, AlertKind::Average, Severity::Orange, Metric::So2, 0),
            Timestamp(0),
        );
        let id = events[0].ticket_id;
        let at = Timestamp(H);
        let err = |r: Result<TicketEvent, TicketError>| {
            r.err().map(|e| e.to_string()).unwrap_or_default()
        };
        let skip = err(book.apply(
            id,
            change(
                TicketState::Closed,
                Role::Team,
                Some(TicketOutcome::FalseAlarm),
            ),
            at,
        ));
        assert_eq!(
            skip,
            format!("ticket {id:016x} cannot go from dispatched to closed")
        );
        let role = err(book.apply(
            id,
            change(TicketState::Accepted, Role::Dispatcher, None),
            at,
        ));
        assert_eq!(
            role,
            format!("a dispatcher may not move ticket {id:016x} to accepted")
        );
        assert!(
            err(book.apply(7, change(TicketState::Accepted, Role::Team, None), at))
                .starts_with("no ticket")
        );
        // The team takes it through to closing, which needs an outcome.
        for to in [
            TicketState::Accepted,
            TicketState::Inspecting,
            TicketState::RectificationOrdered,
        ] {
            let e = book
                .apply(id, change(to, Role::Team, None), at)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(e.to, to);
        }
        let no_outcome = err(book.apply(id, change(TicketState::Closed, Role::Team, None), at));
        assert!(
            no_outcome.contains("an outcome is given exactly when closing"),
            "{no_outcome}"
        );
        let closed = book
            .apply(
                id,
                change(
                    TicketState::Closed,
                    Role::Team,
                    Some(TicketOutcome::ViolationConfirmed),
                ),
                at,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (closed.seq, closed.outcome),
            (6, Some(TicketOutcome::ViolationConfirmed))
        );
        assert!(
            err(book.apply(id, change(TicketState::Inspecting, Role::Head, None), at))
                .contains("cannot go from closed")
        );
        // A closed ticket takes no more alerts: the next one opens a new ticket.
        let next = book.on_alert(
            &alert(2, AlertKind::Average, Severity::Orange, Metric::So2, H),
            Timestamp(2 * H),
        );
        assert_eq!(next[0].kind, EventKind::Created);
    }

    #[test]
    fn a_missed_deadline_escalates_once_to_the_department_head() {
        let mut book = book();
        let events = book.on_alert(
            &alert(1, AlertKind::Average, Severity::Orange, Metric::So2, 0),
            Timestamp(0),
        );
        let id = events[0].ticket_id;
        // Dispatched at 0: to be accepted within 2 hours.
        assert!(
            book.on_clock(Timestamp(2 * H)).is_empty(),
            "at the deadline itself: in time"
        );
        let escalated = book.on_clock(Timestamp(2 * H + 1));
        assert_eq!(escalated.len(), 1);
        assert_eq!(
            (escalated[0].kind, escalated[0].ticket_id, escalated[0].seq),
            (EventKind::Escalated, id, 3)
        );
        assert!(
            escalated[0].note.contains("escalated to Director Wang"),
            "{}",
            escalated[0].note
        );
        assert!(book.on_clock(Timestamp(3 * H)).is_empty(), "once per state");
        // Accepted late: the next state's deadline runs from then.
        book.apply(
            id,
            change(TicketState::Accepted, Role::Team, None),
            Timestamp(3 * H),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(book.on_clock(Timestamp(3 * H + 24 * H)).is_empty());
        assert_eq!(book.on_clock(Timestamp(3 * H + 24 * H + 1)).len(), 1);
    }

    #[test]
    fn a_restored_ticket_continues_its_record_and_is_not_escalated_twice() {
        let mut first = book();
        let events = first.on_alert(
            &alert(1, AlertKind::Average, Severity::Orange, Metric::So2, 0),
            Timestamp(0),
        );
        let id = events[0].ticket_id;
        let ticket = first
            .ticket(id)
            .cloned()
            .unwrap_or_else(|| panic!("no ticket"));
        let team = first.team(id).unwrap_or("").to_owned();

        // A new process takes it back 3 hours later: dispatched at 0, its 2-hour deadline passed
        // (escalated by the earlier run), its record at seq 2.
        let mut book = book();
        book.restore(
            ticket.clone(),
            team.clone(),
            2,
            Timestamp(0),
            Timestamp(3 * H),
        );
        assert_eq!(book.open_tickets(), 1);
        assert!(book.on_clock(Timestamp(3 * H)).is_empty());
        let accepted = book
            .apply(
                id,
                change(TicketState::Accepted, Role::Team, None),
                Timestamp(3 * H),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(accepted.seq, 3);
        // Alerts of the enterprise join it instead of opening another ticket.
        let joined = book.on_alert(
            &alert(2, AlertKind::Average, Severity::Orange, Metric::So2, H),
            Timestamp(3 * H),
        );
        assert_eq!(
            (joined[0].kind, joined[0].ticket_id),
            (EventKind::AlertAdded, id)
        );
        // A closed ticket is not taken back.
        let mut closed = ticket;
        closed.state = TicketState::Closed;
        let mut other = self::book();
        other.restore(closed, team, 6, Timestamp(0), Timestamp(H));
        assert_eq!(other.open_tickets(), 0);
    }

    #[test]
    fn a_later_mute_is_a_line_of_the_tickets_record_once() {
        let mut book = book();
        let events = book.on_alert(
            &alert(1, AlertKind::Average, Severity::Orange, Metric::So2, 0),
            Timestamp(0),
        );
        let id = events[0].ticket_id;
        let state = book.ticket(id).map(|t| t.state);
        let line = book
            .on_muted(
                1,
                "silence by Operator Liu: analyser calibration",
                Timestamp(H),
            )
            .unwrap_or_else(|| panic!("no record line"));
        assert_eq!(
            (
                line.ticket_id,
                line.seq,
                line.kind,
                line.alert_ids.as_slice()
            ),
            (id, 3, EventKind::AlertMuted, &[1][..])
        );
        assert_eq!(
            (line.from, Some(line.to)),
            (state, state),
            "the state stays"
        );
        assert!(line.note.contains("Operator Liu"), "{}", line.note);
        // Once only, and nothing for an alert no ticket holds.
        assert_eq!(book.on_muted(1, "again", Timestamp(H)), None);
        assert_eq!(book.on_muted(9, "unknown", Timestamp(H)), None);
        // A restored book knows the mutes its tickets' records hold.
        let mut restored = self::book();
        let ticket = book
            .ticket(id)
            .cloned()
            .unwrap_or_else(|| panic!("no ticket"));
        restored.restore(ticket, "team".to_owned(), 3, Timestamp(0), Timestamp(H));
        restored.restore_muted([1]);
        assert_eq!(restored.on_muted(1, "again", Timestamp(H)), None);
    }

    #[test]
    fn policy_mistakes_are_refused_naming_the_place() {
        let registry = registry();
        let shipped = include_str!("../../../config/tickets.toml");
        for (bad, expected) in [
            (
                shipped.replace("department = \"coal\"", "department = \"police\""),
                "line 45 at rules[mine-safety].department: unknown department \"police\"",
            ),
            (
                shipped.replace("new_secs = 900", "new_secs = 0"),
                "at deadlines.new_secs: must be between",
            ),
            (
                shipped.replace("domains = [\"safety\"]", "domains = [\"noise\"]"),
                "unknown domain \"noise\"",
            ),
            (
                shipped.replace(
                    "kinds = [\"threshold\", \"power_cut_failure\"]",
                    "kinds = [\"meteor\"]",
                ),
                "unknown variant `meteor`",
            ),
            (format!("{shipped}\ncolour = 1\n"), "unknown field `colour`"),
        ] {
            let message = match Policy::from_toml_str(&bad, "tickets.toml", &registry) {
                Ok(_) => panic!("accepted: {expected}"),
                Err(e) => e.to_string(),
            };
            assert!(
                message.starts_with("invalid ticket policy tickets.toml"),
                "{message}"
            );
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn each_role_is_offered_the_changes_it_may_make() {
        use TicketState::*;
        assert_eq!(Role::Dispatcher.next_states(New), [Dispatched]);
        assert_eq!(Role::Team.next_states(New), []);
        assert_eq!(Role::Team.next_states(Dispatched), [Accepted]);
        assert_eq!(
            Role::Team.next_states(Inspecting),
            [RectificationOrdered, Closed]
        );
        assert_eq!(Role::Head.next_states(New), [Dispatched]);
        assert_eq!(Role::Head.next_states(Closed), []);
    }
}
