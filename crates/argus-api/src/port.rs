//! What the API needs from the running service, as a trait the service implements: the
//! store's reads and the changes people make (acknowledgements, ticket changes, silences). The
//! API depends on no adapter; tests and the service plug in the real thing.

use std::future::Future;

use argus_model::{
    AlertQuery, AlertView, Credential, HourView, ReadingView, TicketEventView, TicketQuery,
    TicketView, Timestamp, User,
};

use crate::ApiError;

/// The `Idempotency-Key` of a change request, with a fingerprint of the request it came with:
/// the same key again with the same request gets the first answer; with another, a 422.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key as the client sent it (1 to 128 visible ASCII characters).
    pub key: String,
    /// FNV-1a of the request's path and body.
    pub fingerprint: u64,
}

/// An acknowledgement a person asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledge {
    /// The alert (16 hex digits).
    pub alert_id: String,
    /// Who.
    pub actor: String,
    /// Why, or what they did.
    pub note: String,
    /// Its idempotency key, if the client gave one.
    pub request: Option<IdempotencyKey>,
}

/// A ticket change a person asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeTicket {
    /// The ticket.
    pub ticket_id: u64,
    /// The change, as the ticket book takes it.
    pub change: argus_tickets::Change,
    /// Its idempotency key, if the client gave one.
    pub request: Option<IdempotencyKey>,
}

/// A window in which an enterprise's (or some of its points') alerts are muted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// The enterprise (known to the registry).
    pub enterprise: String,
    /// Its points concerned; empty: all of them.
    pub points: Vec<String>,
    /// Start of the window.
    pub from: Timestamp,
    /// End of the window (after `from`).
    pub to: Timestamp,
    /// Why.
    pub reason: String,
    /// Who set it.
    pub actor: String,
    /// Its idempotency key, if the client gave one.
    pub request: Option<IdempotencyKey>,
}

/// Users and their sessions and tokens, as kept in the store: what authentication reads and
/// account management writes (the API's handlers and `argus user` alike).
pub trait Accounts: Send + Sync + 'static {
    /// A user, if one has this name.
    fn user(&self, name: &str) -> impl Future<Output = Result<Option<User>, ApiError>> + Send;

    /// Every user, by name.
    fn users(&self) -> impl Future<Output = Result<Vec<User>, ApiError>> + Send;

    /// Keep a user as changed (the higher `version` stands).
    fn put_user(&self, user: &User) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// The credential whose secret has this SHA-256 (64 hex digits).
    fn credential(
        &self,
        secret_hash: &str,
    ) -> impl Future<Output = Result<Option<Credential>, ApiError>> + Send;

    /// A user's sessions and tokens, newest first.
    fn credentials_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<Credential>, ApiError>> + Send;

    /// Keep a credential as made, used or revoked (a revocation is never undone).
    fn put_credential(
        &self,
        credential: &Credential,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// The service behind the API.
pub trait Records: Accounts {
    /// An alert as stored, with its transitions in the order of its life; none if not stored.
    fn alert(
        &self,
        alert_id: &str,
    ) -> impl Future<Output = Result<Option<(AlertView, Vec<AlertView>)>, ApiError>> + Send;

    /// Record an acknowledgement; the alert as it stands after it.
    fn acknowledge(
        &self,
        ack: Acknowledge,
    ) -> impl Future<Output = Result<AlertView, ApiError>> + Send;

    /// A ticket with its whole record; none if not stored.
    fn ticket(
        &self,
        ticket_id: &str,
    ) -> impl Future<Output = Result<Option<(TicketView, Vec<TicketEventView>)>, ApiError>> + Send;

    /// Move a ticket; the event recorded.
    fn change_ticket(
        &self,
        change: ChangeTicket,
    ) -> impl Future<Output = Result<TicketEventView, ApiError>> + Send;

    /// Set a silence.
    fn silence(&self, silence: Silence) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// The tickets that list an alert.
    fn tickets_with_alert(
        &self,
        alert_id: &str,
    ) -> impl Future<Output = Result<Vec<TicketView>, ApiError>> + Send;

    /// The alerts a search finds, newest start first.
    fn find_alerts(
        &self,
        query: &AlertQuery,
    ) -> impl Future<Output = Result<Vec<AlertView>, ApiError>> + Send;

    /// The tickets a search finds, in its order.
    fn find_tickets(
        &self,
        query: &TicketQuery,
    ) -> impl Future<Output = Result<Vec<TicketView>, ApiError>> + Send;

    /// The ids of the enterprises with a ticket of this department (all towns, or one).
    fn ticket_enterprises(
        &self,
        department: &str,
        town: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;

    /// A point's real-time readings of `metric` in `[from, to)`, oldest first.
    fn readings(
        &self,
        point: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Future<Output = Result<Vec<ReadingView>, ApiError>> + Send;

    /// Hourly aggregates of a point's valid readings of `metric` in `[from, to)`, oldest first.
    fn hourly(
        &self,
        point: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Future<Output = Result<Vec<HourView>, ApiError>> + Send;
}
