//! Argus's HTTP API: [`router`] builds every route over a [`Records`] port that the service
//! implements (and tests implement with the real store), so handlers are tested in process
//! without a socket. [`ApiError`] is the one error type; it renders the response. Bodies are
//! the canonical views of `argus_model::view`.
//!
//! Every `/api/` route but `/api/login` needs a caller ([`auth`]): a session cookie from
//! `/api/login`, or `Authorization: Bearer <token>`. Without one: 401. What lies outside the
//! caller's jurisdiction does not exist for them (404); what they may see but their role may not
//! do is a 403. The person acting on an acknowledgement, silence or ticket change is always the
//! caller, never a field of the body.
//!
//! Routes (described as OpenAPI 3.1 by [`openapi`], served at `GET /api/openapi.json`):
//! - `GET /metrics` (Prometheus text), `GET /healthz` (the process answers);
//! - `GET /readyz`: whether data gets through, `{"ready", "stages": [{"stage", "ready",
//!   "for_ms"}]}` for `pipeline`, `sink` and `detection`: 200 when every stage progresses, 503
//!   when one has held its work (or detection has been silent) for over a minute;
//! - `POST /api/login` `{"name", "password"}`: `{"user": UserView}` and the session cookie;
//!   `POST /api/logout`; `GET /api/me`: `{"user": UserView}`;
//! - `GET /api/users`, `POST /api/users` `{"name", "display_name", "role", "town",
//!   "department", "password"}`, `POST /api/users/{name}/disable` (admins);
//!   `POST /api/users/{name}/password` `{"password", "current_password"}` (admins, or oneself);
//! - `GET /api/tokens`, `POST /api/tokens` `{"name", "days"}` (the secret shown once),
//!   `DELETE /api/tokens/{id}`;
//! - `GET /api/alerts?from&to&town&department&enterprise&point&kind&severity&status&muted&
//!   acknowledged&limit&cursor`: the alerts the caller may see, newest start first, `{"alerts":
//!   [AlertView], "next"}` (`next`: the cursor of the following page, null on the last; see
//!   [`query`]);
//! - `GET /api/alerts/{id}`: `{"alert": AlertView, "transitions": [AlertView], "readings":
//!   SeriesView}` (its point and metric from an hour before it to an hour after);
//! - `POST /api/alerts/{id}/ack` `{"note"}` (monitors): the acknowledged alert;
//! - `GET /api/tickets?department&town&enterprise&state&due_before&order&limit&cursor`: the
//!   tickets the caller may see, newest first or (`order=deadline`) soonest deadline first,
//!   `{"tickets": [TicketView], "next"}`;
//! - `GET /api/tickets/{id}`: `{"ticket": TicketView, "record": [TicketEventView],
//!   "chain_head", "next"}` (the last line's hash: see `argus_store::audit`; the states the
//!   caller may move it to);
//! - `GET /api/tickets/{id}/record.html`: the same record as a printable page (UTC+8, every
//!   line's hash, the chain head);
//! - `POST /api/tickets/{id}/state` `{"to", "note", "outcome"}` (dispatchers, teams, heads): the
//!   event;
//! - `POST /api/silences` `{"enterprise", "points", "from", "to", "reason"}` (monitors);
//! - `GET /api/stream`: Server-Sent Events, `alert` (AlertView with its transition) and
//!   `ticket` (TicketEventView) as they are stored, those the caller may see, ids
//!   `<run>-<seq>`; resumable with `Last-Event-ID`, else a `reload` event;
//! - `GET /api/registry`: `RegistryView` (towns, departments, teams, standards);
//! - `GET /api/enterprises?town&department`: `{"enterprises": [EnterpriseView]}`, those the
//!   caller may see; `GET /api/enterprises/{id}`: `{"enterprise": EnterpriseView}`;
//! - `GET /api/points/{mn}/readings?metric&from&to`: `SeriesView`, each reading up to 12
//!   hours, hourly aggregates beyond.
//!
//! An acknowledgement, a ticket change or a silence may carry an `Idempotency-Key` header: sent again
//! with the same key and request (a retry after a lost answer, or after Argus restarted), it
//! gets the first answer and changes nothing; the same key with another request is a 422.

pub mod accounts;
pub mod auth;
mod error;
mod export;
pub mod openapi;
mod port;
pub mod query;
pub mod stream;

use std::sync::Arc;

use accounts::json_body;
use argus_model::{
    AlertView, Registry, TicketEventView, TicketOutcome, TicketState, TicketView, Timestamp,
};
use argus_telemetry::Telemetry;
use argus_tickets::Change;
use auth::Action;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub use auth::{AuthSettings, Caller};
pub use error::ApiError;
pub use port::{Accounts, Acknowledge, ChangeTicket, IdempotencyKey, Records, Silence};

/// Pages of lists hold at most this many items.
pub const MAX_PAGE: u32 = 1_000;
/// Items of a list when the request does not say.
pub const DEFAULT_PAGE: u32 = 100;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState<R> {
    /// The service behind the API.
    pub records: R,
    /// The registry: requests naming enterprises and points are checked against it.
    pub registry: Arc<Registry>,
    /// The metrics served at `/metrics`.
    pub telemetry: Telemetry,
    /// How sessions live and failed logins are held back.
    pub auth: AuthSettings,
    /// Failed logins per user and address.
    pub login_guard: auth::LoginGuard,
    /// The live stream's recent events: the service publishes what it stores.
    pub hub: Arc<stream::Hub>,
}

impl<R> ApiState<R> {
    /// The state of an API over `records`.
    pub fn new(
        records: R,
        registry: Arc<Registry>,
        telemetry: Telemetry,
        auth: AuthSettings,
    ) -> Self {
        Self {
            records,
            registry,
            telemetry,
            login_guard: auth::LoginGuard::new(&auth),
            auth,
            hub: Arc::new(stream::Hub::new(stream::DEFAULT_STREAM_EVENTS)),
        }
    }
}

impl<R: Records> axum::extract::FromRequestParts<Arc<ApiState<R>>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ApiState<R>>,
    ) -> Result<Self, Self::Rejection> {
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        auth::authenticate(&state.records, &state.auth, &parts.headers, now).await
    }
}

/// Every route of the API over `state`.
pub fn router<R: Records>(state: ApiState<R>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<R>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<R>))
        .route("/api/openapi.json", get(openapi_document))
        .route("/api/login", post(accounts::login::<R>))
        .route("/api/logout", post(accounts::logout::<R>))
        .route("/api/me", get(accounts::me))
        .route(
            "/api/users",
            get(accounts::list_users::<R>).post(accounts::create_user::<R>),
        )
        .route("/api/users/{name}/disable", post(accounts::disable::<R>))
        .route(
            "/api/users/{name}/password",
            post(accounts::change_password::<R>),
        )
        .route(
            "/api/tokens",
            get(accounts::list_tokens::<R>).post(accounts::create_token::<R>),
        )
        .route(
            "/api/tokens/{id}",
            axum::routing::delete(accounts::revoke_token::<R>),
        )
        .route("/api/alerts", get(query::list_alerts::<R>))
        .route("/api/alerts/{id}", get(show_alert::<R>))
        .route("/api/alerts/{id}/ack", post(acknowledge::<R>))
        .route("/api/tickets", get(query::list_tickets::<R>))
        .route("/api/tickets/{id}", get(show_ticket::<R>))
        .route("/api/tickets/{id}/state", post(change_ticket::<R>))
        .route(
            "/api/tickets/{id}/record.html",
            get(ticket_record_page::<R>),
        )
        .route("/api/silences", post(silence::<R>))
        .route("/api/stream", get(live::<R>))
        .route("/api/registry", get(query::registry::<R>))
        .route("/api/enterprises", get(query::list_enterprises::<R>))
        .route("/api/enterprises/{id}", get(query::show_enterprise::<R>))
        .route("/api/points/{mn}/readings", get(query::point_readings::<R>))
        .with_state(Arc::new(state))
}

type Shared<R> = State<Arc<ApiState<R>>>;

/// `GET /api/openapi.json`: the document of [`openapi`], made once.
async fn openapi_document() -> Response {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(openapi::document)).into_response()
}

async fn metrics<R: Records>(State(state): Shared<R>) -> Result<Response, ApiError> {
    let text = state
        .telemetry
        .render()
        .map_err(|e| ApiError::Internal(format!("cannot render metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn readyz<R: Records>(State(state): Shared<R>) -> Response {
    let stages = state.telemetry.readiness.check();
    let ready = stages.iter().all(|s| s.ready);
    let body = serde_json::json!({
        "ready": ready,
        "stages": stages
            .iter()
            .map(|s| serde_json::json!({ "stage": s.stage, "ready": s.ready, "for_ms": s.for_ms }))
            .collect::<Vec<_>>(),
    });
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// 404 unless the alert is stored and the caller may see it: the whole county, or an alert
/// behind one of the caller's tickets.
async fn visible_alert<R: Records>(
    records: &R,
    caller: &Caller,
    id: &str,
) -> Result<(AlertView, Vec<AlertView>), ApiError> {
    let not_found = || ApiError::NotFound(format!("no alert {id} is stored"));
    let found = records.alert(id).await?.ok_or_else(not_found)?;
    if caller.sees_county()
        || records
            .tickets_with_alert(id)
            .await?
            .iter()
            .any(|t| caller.sees(&t.town, &t.department))
    {
        return Ok(found);
    }
    Err(not_found())
}

async fn show_alert<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (alert, transitions) = visible_alert(&state.records, &caller, &id).await?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let readings = query::around_alert(&state.records, &alert, now).await?;
    let body =
        serde_json::json!({ "alert": alert, "transitions": transitions, "readings": readings });
    Ok(Json(body).into_response())
}

/// `GET /api/stream`: Server-Sent Events of what the caller may see, resumable with
/// `Last-Event-ID` (see [`stream`]).
async fn live<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> Response {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    stream::respond(Arc::clone(&state.hub), caller, last)
}

/// `{"note": "called the plant"}` (note optional; an empty body is no note).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    note: String,
}

/// The request's `Idempotency-Key`, if any (1 to 128 visible ASCII characters), with the
/// fingerprint of its path and body.
fn idempotency_key(
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
    body: &[u8],
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Idempotency-Key must be 1 to 128 visible ASCII characters".to_owned(),
            )
        })?;
    let fingerprint = uri
        .path()
        .bytes()
        .chain([0])
        .chain(body.iter().copied())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    Ok(Some(IdempotencyKey {
        key: key.to_owned(),
        fingerprint,
    }))
}

async fn acknowledge<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    visible_alert(&state.records, &caller, &id).await?;
    caller.allow(Action::Acknowledge)?;
    let request = idempotency_key(&headers, &uri, &body)?;
    let body: AckBody = if body.is_empty() {
        AckBody::default()
    } else {
        json_body(&body)?
    };
    let ack = Acknowledge {
        alert_id: id,
        actor: caller.actor(),
        note: body.note,
        request,
    };
    let alert = state.records.acknowledge(ack).await?;
    Ok(Json(alert).into_response())
}

/// A ticket id of the path: 16 hex digits.
fn ticket_id(id: &str) -> Result<u64, ApiError> {
    u64::from_str_radix(id, 16)
        .ok()
        .filter(|_| id.len() == 16)
        .ok_or_else(|| ApiError::NotFound(format!("no ticket {id:?} (16 hex digits)")))
}

/// A ticket with its record, 404 unless stored and within the caller's jurisdiction.
async fn visible_ticket<R: Records>(
    records: &R,
    caller: &Caller,
    id: &str,
) -> Result<(TicketView, Vec<TicketEventView>), ApiError> {
    ticket_id(id)?;
    records
        .ticket(id)
        .await?
        .filter(|(t, _)| caller.sees(&t.town, &t.department))
        .ok_or_else(|| ApiError::NotFound(format!("no ticket {id} is stored")))
}

async fn show_ticket<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (ticket, record) = visible_ticket(&state.records, &caller, &id).await?;
    let head = record.last().map(|e| e.hash.as_str()).unwrap_or_default();
    // What the caller may do next (none for a role that moves no tickets).
    let next: Vec<&str> = match (caller.ticket_role(), TicketState::parse(&ticket.state)) {
        (Ok(role), Some(from)) => role
            .next_states(from)
            .into_iter()
            .map(TicketState::as_str)
            .collect(),
        _ => Vec::new(),
    };
    let body = serde_json::json!({
        "ticket": ticket, "record": record, "chain_head": head, "next": next
    });
    Ok(Json(body).into_response())
}

/// `GET /api/tickets/{id}/record.html`: the ticket's legal record as a printable page.
async fn ticket_record_page<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (ticket, record) = visible_ticket(&state.records, &caller, &id).await?;
    Ok(axum::response::Html(export::record_html(&ticket, &record)).into_response())
}

/// `{"to": "accepted", "note": "...", "outcome": "violation_confirmed"}` (note and outcome
/// optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    to: TicketState,
    #[serde(default)]
    note: String,
    #[serde(default)]
    outcome: Option<TicketOutcome>,
}

async fn change_ticket<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let ticket_id = ticket_id(&id)?;
    visible_ticket(&state.records, &caller, &id).await?;
    let role = caller.ticket_role()?;
    let request = idempotency_key(&headers, &uri, &body)?;
    let body: ChangeBody = json_body(&body)?;
    let change = Change {
        to: body.to,
        actor: caller.actor(),
        role,
        note: body.note,
        outcome: body.outcome,
    };
    let event = state
        .records
        .change_ticket(ChangeTicket {
            ticket_id,
            change,
            request,
        })
        .await?;
    Ok(Json(event).into_response())
}

/// `{"enterprise": "E001", "points": ["MN"], "from": "2026-11-26T08:00:00+08:00", "to":
/// "...", "reason": "..."}` (points optional: all of the enterprise's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    enterprise: String,
    #[serde(default)]
    points: Vec<String>,
    from: String,
    to: String,
    reason: String,
}

async fn silence<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.allow(Action::Silence)?;
    let request = idempotency_key(&headers, &uri, &body)?;
    let body: SilenceBody = json_body(&body)?;
    let enterprise = state
        .registry
        .enterprise(&body.enterprise)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown enterprise {:?}", body.enterprise)))?;
    if let Some(p) = body
        .points
        .iter()
        .find(|p| !enterprise.points.iter().any(|m| m.as_str() == p.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "{p:?} is not a point of {}",
            enterprise.id
        )));
    }
    let (Some(from), Some(to)) = (
        Timestamp::parse_rfc3339(&body.from),
        Timestamp::parse_rfc3339(&body.to),
    ) else {
        return Err(ApiError::BadRequest(
            "from and to must be RFC 3339 times".to_owned(),
        ));
    };
    if to <= from {
        return Err(ApiError::BadRequest("to must be after from".to_owned()));
    }
    let silence = Silence {
        enterprise: enterprise.id.clone(),
        points: body.points,
        from,
        to,
        reason: body.reason,
        actor: caller.actor(),
        request,
    };
    state.records.silence(silence).await?;
    Ok("silence set\n".into_response())
}
