//! Argus's HTTP API: [`router`] builds every route over a [`Records`] port that the service
//! implements (and tests implement with the real store), so handlers are tested in process
//! without a socket. [`ApiError`] is the one error type; it renders the response. Bodies are
//! the canonical views of `argus_model::view`.
//!
//! Routes:
//! - `GET /metrics` (Prometheus text), `GET /healthz` (the process answers);
//! - `GET /readyz`: whether data gets through, `{"ready", "stages": [{"stage", "ready",
//!   "for_ms"}]}` for `pipeline`, `sink` and `detection`: 200 when every stage progresses, 503
//!   when one has held its work (or detection has been silent) for over a minute;
//! - `GET /api/alerts?limit=N`: the newest alerts, `{"alerts": [AlertView]}`;
//! - `GET /api/alerts/{id}`: `{"alert": AlertView, "transitions": [AlertView]}`;
//! - `POST /api/alerts/{id}/ack` `{"actor", "note"}`: the acknowledged alert;
//! - `GET /api/tickets?limit=N`: the newest tickets, `{"tickets": [TicketView]}`;
//! - `GET /api/tickets/{id}`: `{"ticket": TicketView, "record": [TicketEventView]}`;
//! - `POST /api/tickets/{id}/state` `{"to", "actor", "role", "note", "outcome"}`: the event;
//! - `POST /api/silences` `{"enterprise", "points", "from", "to", "reason", "actor"}`.
//!
//! An acknowledgement, a ticket change or a silence may carry an `Idempotency-Key` header: sent again
//! with the same key and request (a retry after a lost answer, or after Argus restarted), it
//! gets the first answer and changes nothing; the same key with another request is a 422.

mod error;
mod port;

use std::sync::Arc;

use argus_model::{Registry, TicketOutcome, TicketState, Timestamp};
use argus_telemetry::Telemetry;
use argus_tickets::{Change, Role};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub use error::ApiError;
pub use port::{Acknowledge, ChangeTicket, IdempotencyKey, Records, Silence};

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
}

/// Every route of the API over `state`.
pub fn router<R: Records>(state: ApiState<R>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<R>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<R>))
        .route("/api/alerts", get(list_alerts::<R>))
        .route("/api/alerts/{id}", get(show_alert::<R>))
        .route("/api/alerts/{id}/ack", post(acknowledge::<R>))
        .route("/api/tickets", get(list_tickets::<R>))
        .route("/api/tickets/{id}", get(show_ticket::<R>))
        .route("/api/tickets/{id}/state", post(change_ticket::<R>))
        .route("/api/silences", post(silence::<R>))
        .with_state(Arc::new(state))
}

type Shared<R> = State<Arc<ApiState<R>>>;

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

/// `?limit=N` of a list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<u32>,
}

impl Page {
    fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_PAGE}, got {n}"
            ))),
        }
    }
}

/// The query string of a list, or a 400 naming what is wrong with it.
fn page(
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<u32, ApiError> {
    let Query(page) = query.map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))?;
    page.limit()
}

async fn list_alerts<R: Records>(
    State(state): Shared<R>,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let alerts = state.records.recent_alerts(page(query)?).await?;
    Ok(Json(serde_json::json!({ "alerts": alerts })).into_response())
}

async fn show_alert<R: Records>(
    State(state): Shared<R>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (alert, transitions) = state
        .records
        .alert(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id} is stored")))?;
    Ok(Json(serde_json::json!({ "alert": alert, "transitions": transitions })).into_response())
}

/// A JSON body of `T` naming the person acting (`actor`), or a 400 saying why not.
fn staff_request<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    actor: fn(&T) -> &str,
) -> Result<T, ApiError> {
    let body: T = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))?;
    if actor(&body).trim().is_empty() {
        return Err(ApiError::BadRequest("actor must name a person".to_owned()));
    }
    Ok(body)
}

/// `{"actor": "Operator Liu", "note": "called the plant"}` (note optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    actor: String,
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
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request = idempotency_key(&headers, &uri, &body)?;
    let body: AckBody = staff_request(&body, |b: &AckBody| &b.actor)?;
    let ack = Acknowledge {
        alert_id: id,
        actor: body.actor,
        note: body.note,
        request,
    };
    let alert = state.records.acknowledge(ack).await?;
    Ok(Json(alert).into_response())
}

async fn list_tickets<R: Records>(
    State(state): Shared<R>,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let tickets = state.records.recent_tickets(page(query)?).await?;
    Ok(Json(serde_json::json!({ "tickets": tickets })).into_response())
}

/// A ticket id of the path: 16 hex digits.
fn ticket_id(id: &str) -> Result<u64, ApiError> {
    u64::from_str_radix(id, 16)
        .ok()
        .filter(|_| id.len() == 16)
        .ok_or_else(|| ApiError::NotFound(format!("no ticket {id:?} (16 hex digits)")))
}

async fn show_ticket<R: Records>(
    State(state): Shared<R>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ticket_id(&id)?;
    let (ticket, record) = state
        .records
        .ticket(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no ticket {id} is stored")))?;
    Ok(Json(serde_json::json!({ "ticket": ticket, "record": record })).into_response())
}

/// `{"to": "accepted", "actor": "Inspector Sun", "role": "team", "note": "...", "outcome":
/// "violation_confirmed"}` (note and outcome optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    to: TicketState,
    actor: String,
    role: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    outcome: Option<TicketOutcome>,
}

async fn change_ticket<R: Records>(
    State(state): Shared<R>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let ticket_id = ticket_id(&id)?;
    let request = idempotency_key(&headers, &uri, &body)?;
    let body: ChangeBody = staff_request(&body, |b: &ChangeBody| &b.actor)?;
    let role = match body.role.as_str() {
        "dispatcher" => Role::Dispatcher,
        "team" => Role::Team,
        "head" => Role::Head,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown role {other:?} (dispatcher, team, head)"
            )))
        }
    };
    let change = Change {
        to: body.to,
        actor: body.actor,
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
/// "...", "reason": "...", "actor": "Operator Liu"}` (points optional: all of the enterprise's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    enterprise: String,
    #[serde(default)]
    points: Vec<String>,
    from: String,
    to: String,
    reason: String,
    actor: String,
}

async fn silence<R: Records>(
    State(state): Shared<R>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request = idempotency_key(&headers, &uri, &body)?;
    let body: SilenceBody = staff_request(&body, |b: &SilenceBody| &b.actor)?;
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
        actor: body.actor,
        request,
    };
    state.records.silence(silence).await?;
    Ok("silence set\n".into_response())
}
