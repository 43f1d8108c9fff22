//! The query API: searches of alerts and tickets (filters, keyset cursors, bounded pages), the
//! registry and its enterprises, a point's readings over a range; each answer cut to the
//! caller's jurisdiction. A team or head sees the tickets of its team or department and what
//! lies behind them (their alerts, enterprises, points and readings); the county roles see all.

use std::sync::Arc;

use argus_model::{
    AlertCursor, AlertQuery, EnterpriseView, RegistryView, SeriesView, TicketCursor, TicketOrder,
    TicketQuery, TicketState, Timestamp,
};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::{ApiError, ApiState, Caller, Records, DEFAULT_PAGE, MAX_PAGE};

type Shared<R> = State<Arc<ApiState<R>>>;
type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// Ranges up to this long are answered reading by reading; longer ones by the hour.
pub const RAW_RANGE_MS: i64 = 12 * 3_600_000;
/// The longest range of readings one request may ask for.
pub const MAX_RANGE_MS: i64 = 400 * 86_400_000;
/// Before an alert's start and after its end, the readings shown around it.
pub const ALERT_MARGIN_MS: i64 = 3_600_000;

/// The query string, or a 400 naming what is wrong with it.
fn params<T>(query: QueryResult<T>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("bad query: {e}")))
}

/// `limit` of a page: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
pub(crate) fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}, got {n}"
        ))),
    }
}

/// An RFC 3339 time of the query string, as ms.
fn time(name: &str, text: Option<&String>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        Timestamp::parse_rfc3339(t)
            .map(Timestamp::as_millis)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be an RFC 3339 time with an offset, got {t:?}"
                ))
            })
    })
    .transpose()
}

/// A filter value that must be one of `allowed`.
fn one_of(name: &str, value: Option<&String>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::BadRequest(format!(
            "{name} must be one of {}, got {v:?}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// A free-form filter value (a point, a kind): at most 64 characters.
fn short(name: &str, value: Option<&String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > 64 => Err(ApiError::BadRequest(format!(
            "{name} must be 1 to 64 characters"
        ))),
        _ => Ok(()),
    }
}

/// The `cursor` of a query string, parsed, or a 400.
fn cursor<C>(text: Option<&str>, parse: fn(&str) -> Option<C>) -> Result<Option<C>, ApiError> {
    text.map(|c| parse(c).ok_or_else(|| ApiError::BadRequest(format!("bad cursor {c:?}"))))
        .transpose()
}

/// A page of `items` under `field`, with the cursor of the next page when it is full.
fn page<T: serde::Serialize>(
    field: &str,
    items: &[T],
    limit: u32,
    cursor_of: impl Fn(&T) -> Option<String>,
) -> Response {
    let next = (items.len() == limit as usize)
        .then(|| items.last())
        .flatten()
        .and_then(cursor_of);
    Json(serde_json::json!({ field: items, "next": next })).into_response()
}

/// Filters naming the registry must name what it holds.
fn known<R>(
    state: &ApiState<R>,
    town: Option<&String>,
    department: Option<&String>,
    enterprise: Option<&String>,
) -> Result<(), ApiError> {
    let registry = &state.registry;
    if let Some(t) = town.filter(|t| registry.town(t).is_none()) {
        return Err(ApiError::BadRequest(format!("unknown town {t:?}")));
    }
    if let Some(d) = department.filter(|d| registry.department(d).is_none()) {
        return Err(ApiError::BadRequest(format!("unknown department {d:?}")));
    }
    if let Some(e) = enterprise.filter(|e| registry.enterprise(e).is_none()) {
        return Err(ApiError::BadRequest(format!("unknown enterprise {e:?}")));
    }
    Ok(())
}

/// `GET /api/alerts` filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertParams {
    from: Option<String>,
    to: Option<String>,
    town: Option<String>,
    department: Option<String>,
    enterprise: Option<String>,
    point: Option<String>,
    kind: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    muted: Option<bool>,
    acknowledged: Option<bool>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The search a caller's alert filters make, cut to the caller's jurisdiction; none when the
/// filters ask for what lies outside it (an empty page, not an error: it exists for others).
fn alert_query<R>(
    state: &ApiState<R>,
    caller: &Caller,
    p: AlertParams,
) -> Result<Option<AlertQuery>, ApiError> {
    known(
        state,
        p.town.as_ref(),
        p.department.as_ref(),
        p.enterprise.as_ref(),
    )?;
    short("point", p.point.as_ref())?;
    short("kind", p.kind.as_ref())?;
    one_of(
        "severity",
        p.severity.as_ref(),
        &["blue", "yellow", "orange", "red"],
    )?;
    one_of("status", p.status.as_ref(), &["firing", "resolved"])?;
    let (from_ms, to_ms) = (time("from", p.from.as_ref())?, time("to", p.to.as_ref())?);
    if let (Some(from), Some(to)) = (from_ms, to_ms) {
        if to <= from {
            return Err(ApiError::BadRequest("to must be after from".to_owned()));
        }
    }
    let after = cursor(p.cursor.as_deref(), AlertCursor::parse)?;
    let jurisdiction = &caller.user.jurisdiction;
    let (ticket_department, ticket_town) = match jurisdiction.department() {
        None => (p.department, None),
        Some(own) => {
            if p.department.as_deref().is_some_and(|d| d != own) {
                return Ok(None);
            }
            (Some(own.to_owned()), jurisdiction.town().map(str::to_owned))
        }
    };
    Ok(Some(AlertQuery {
        from_ms,
        to_ms,
        town: p.town,
        ticket_department,
        ticket_town,
        enterprise: p.enterprise,
        point: p.point,
        kind: p.kind,
        severity: p.severity,
        status: p.status,
        muted: p.muted,
        acknowledged: p.acknowledged,
        after,
        limit: page_size(p.limit)?,
    }))
}

/// `GET /api/alerts`: `{"alerts": [AlertView], "next": cursor or null}`.
pub(crate) async fn list_alerts<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    query: QueryResult<AlertParams>,
) -> Result<Response, ApiError> {
    let Some(q) = alert_query(&state, &caller, params(query)?)? else {
        return Ok(Json(serde_json::json!({ "alerts": [], "next": null })).into_response());
    };
    let alerts = state.records.find_alerts(&q).await?;
    Ok(page("alerts", &alerts, q.limit, |a| {
        let started_ms = Timestamp::parse_rfc3339(&a.started_at)?.as_millis();
        Some(
            AlertCursor {
                started_ms,
                alert_id: a.alert_id.clone(),
            }
            .to_string(),
        )
    }))
}

/// `GET /api/tickets` filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketParams {
    department: Option<String>,
    town: Option<String>,
    enterprise: Option<String>,
    /// Comma-separated states.
    state: Option<String>,
    due_before: Option<String>,
    order: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The search a caller's ticket filters make, cut to the caller's jurisdiction; none when the
/// filters ask for another team's or department's tickets.
fn ticket_query<R>(
    state: &ApiState<R>,
    caller: &Caller,
    p: TicketParams,
) -> Result<Option<TicketQuery>, ApiError> {
    known(
        state,
        p.town.as_ref(),
        p.department.as_ref(),
        p.enterprise.as_ref(),
    )?;
    let states = p
        .state
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|one| {
                    TicketState::parse(one)
                        .map(|st| st.as_str().to_owned())
                        .ok_or_else(|| ApiError::BadRequest(format!("unknown state {one:?}")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let order = match p.order.as_deref() {
        None | Some("created") => TicketOrder::Created,
        Some("deadline") => TicketOrder::Deadline,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "order must be created or deadline, got {other:?}"
            )))
        }
    };
    let after = cursor(p.cursor.as_deref(), TicketCursor::parse)?;
    let jurisdiction = &caller.user.jurisdiction;
    let mine = |asked: Option<String>, own: Option<&str>| match (asked, own) {
        (Some(a), Some(o)) if a != o => Err(()),
        (asked, own) => Ok(own.map(str::to_owned).or(asked)),
    };
    let (Ok(department), Ok(town)) = (
        mine(p.department, jurisdiction.department()),
        mine(p.town, jurisdiction.town()),
    ) else {
        return Ok(None);
    };
    Ok(Some(TicketQuery {
        department,
        town,
        enterprise: p.enterprise,
        states,
        due_before_ms: time("due_before", p.due_before.as_ref())?,
        order,
        after,
        limit: page_size(p.limit)?,
    }))
}

/// `GET /api/tickets`: `{"tickets": [TicketView], "next": cursor or null}`.
pub(crate) async fn list_tickets<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    query: QueryResult<TicketParams>,
) -> Result<Response, ApiError> {
    let Some(q) = ticket_query(&state, &caller, params(query)?)? else {
        return Ok(Json(serde_json::json!({ "tickets": [], "next": null })).into_response());
    };
    let tickets = state.records.find_tickets(&q).await?;
    Ok(page("tickets", &tickets, q.limit, |t| {
        let key = match q.order {
            TicketOrder::Created => Some(t.created_at.as_str()),
            TicketOrder::Deadline => t.deadline.as_deref(),
        }?;
        let key_ms = Timestamp::parse_rfc3339(key)?.as_millis();
        Some(
            TicketCursor {
                key_ms,
                ticket_id: t.ticket_id.clone(),
            }
            .to_string(),
        )
    }))
}

/// `GET /api/registry`: the county's towns, departments, teams and standards (everyone may
/// know who is who).
pub(crate) async fn registry<R: Records>(
    State(state): Shared<R>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    Ok(Json(RegistryView::of(&state.registry)).into_response())
}

/// The enterprises the caller may see: all for the county roles, else those with a ticket of
/// the caller's team or department.
async fn visible_enterprises<R: Records>(
    state: &ApiState<R>,
    caller: &Caller,
) -> Result<Option<Vec<String>>, ApiError> {
    let jurisdiction = &caller.user.jurisdiction;
    match jurisdiction.department() {
        None => Ok(None),
        Some(department) => state
            .records
            .ticket_enterprises(department, jurisdiction.town())
            .await
            .map(Some),
    }
}

/// `GET /api/enterprises` filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnterpriseParams {
    town: Option<String>,
    department: Option<String>,
}

/// `GET /api/enterprises`: `{"enterprises": [EnterpriseView]}`, by id.
pub(crate) async fn list_enterprises<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    query: QueryResult<EnterpriseParams>,
) -> Result<Response, ApiError> {
    let p = params(query)?;
    known(&state, p.town.as_ref(), p.department.as_ref(), None)?;
    let visible = visible_enterprises(&state, &caller).await?;
    let enterprises: Vec<EnterpriseView> = state
        .registry
        .enterprises()
        .filter(|e| p.town.as_ref().is_none_or(|t| &e.town == t))
        .filter(|e| {
            p.department
                .as_ref()
                .is_none_or(|d| e.departments.contains(d))
        })
        .filter(|e| visible.as_ref().is_none_or(|v| v.contains(&e.id)))
        .map(|e| EnterpriseView::of(&state.registry, e))
        .collect();
    Ok(Json(serde_json::json!({ "enterprises": enterprises })).into_response())
}

/// 404 unless the enterprise is registered and the caller may see it.
async fn visible_enterprise<R: Records>(
    state: &ApiState<R>,
    caller: &Caller,
    id: &str,
) -> Result<EnterpriseView, ApiError> {
    let not_found = || ApiError::NotFound(format!("no enterprise {id:?}"));
    let enterprise = state.registry.enterprise(id).ok_or_else(not_found)?;
    if let Some(visible) = visible_enterprises(state, caller).await? {
        if !visible.iter().any(|v| v == id) {
            return Err(not_found());
        }
    }
    Ok(EnterpriseView::of(&state.registry, enterprise))
}

/// `GET /api/enterprises/{id}`: `{"enterprise": EnterpriseView}`.
pub(crate) async fn show_enterprise<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let enterprise = visible_enterprise(&state, &caller, &id).await?;
    Ok(Json(serde_json::json!({ "enterprise": enterprise })).into_response())
}

/// `GET /api/points/{mn}/readings` parameters: all required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadingParams {
    metric: String,
    from: String,
    to: String,
}

/// A point's readings of `metric` in `[from, to)`: each reading up to [`RAW_RANGE_MS`], hourly
/// aggregates beyond.
pub(crate) async fn series<R: Records>(
    records: &R,
    point: &str,
    metric: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<SeriesView, ApiError> {
    let raw = to.as_millis() - from.as_millis() <= RAW_RANGE_MS;
    let (readings, hours) = if raw {
        (Some(records.readings(point, metric, from, to).await?), None)
    } else {
        (None, Some(records.hourly(point, metric, from, to).await?))
    };
    Ok(SeriesView {
        point: point.to_owned(),
        metric: metric.to_owned(),
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        interval: if raw { "real_time" } else { "hour" }.to_owned(),
        readings,
        hours,
    })
}

/// `GET /api/points/{mn}/readings?metric=a21026&from=...&to=...`: a [`SeriesView`]. A team
/// or head may read the points of the enterprises behind its tickets; the county roles any
/// point, registered or not.
pub(crate) async fn point_readings<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(mn): Path<String>,
    query: QueryResult<ReadingParams>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no point {mn:?}"));
    if !caller.sees_county() {
        let point = state.registry.point(&mn).ok_or_else(not_found)?;
        visible_enterprise(&state, &caller, &point.enterprise_id)
            .await
            .map_err(|_| not_found())?;
    }
    let p = params(query)?;
    short("metric", Some(&p.metric))?;
    let (Some(from), Some(to)) = (
        time("from", Some(&p.from))?.map(Timestamp),
        time("to", Some(&p.to))?.map(Timestamp),
    ) else {
        return Err(ApiError::BadRequest("from and to are required".to_owned()));
    };
    let span = to.as_millis() - from.as_millis();
    if span <= 0 || span > MAX_RANGE_MS {
        return Err(ApiError::BadRequest(format!(
            "to must be after from, by at most {} days",
            MAX_RANGE_MS / 86_400_000
        )));
    }
    let series = series(&state.records, &mn, &p.metric, from, to).await?;
    Ok(Json(series).into_response())
}

/// The readings around an alert: its point and metric from an hour before it started to an
/// hour after it ended (or now, while it fires); none for an alert on a whole point.
pub(crate) async fn around_alert<R: Records>(
    records: &R,
    alert: &argus_model::AlertView,
    now: Timestamp,
) -> Result<Option<SeriesView>, ApiError> {
    let (Some(metric), Some(start)) = (
        alert.metric.as_deref(),
        Timestamp::parse_rfc3339(&alert.started_at),
    ) else {
        return Ok(None);
    };
    let end = alert
        .ended_at
        .as_deref()
        .and_then(Timestamp::parse_rfc3339)
        .unwrap_or(now)
        .max(start);
    let from = start.plus_millis(-ALERT_MARGIN_MS);
    let to = end
        .plus_millis(ALERT_MARGIN_MS)
        .min(from.plus_millis(MAX_RANGE_MS));
    series(records, &alert.point, metric, from, to)
        .await
        .map(Some)
}
