//! The HTTP API's handlers tested in process (tower `oneshot`, no socket) over the service's
//! real port implementation on the embedded store: a real ticket book, a real sink, no stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use argus_api::AuthSettings;
use argus_model::{Registry, Timestamp, UserRole};
use argus_rules::RuleSet;
use argus_store::{Backend, SqliteStore, Store};
use argus_telemetry::Telemetry;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::harness::ApiHarness;

const REGISTRY: &str = include_str!("../../../config/registry.toml");
const RULES: &str = include_str!("../../../config/rules.toml");
const POLICY: &str = include_str!("../../../config/tickets.toml");

/// The one password of the fixture's users.
const PASSWORD: &str = "a long test password";

/// The API over a fresh embedded store with one fired methane alarm and its ticket; sessions of a monitor (`monitor`) and of a
/// member of the ticket's team (`team`).
struct Fixture {
    app: axum::Router,
    store: Backend,
    alert_id: String,
    /// The rule instance of the fixture's alert (a methane alarm).
    instance: argus_rules::Instance,
    monitor: String,
    team: String,
    /// The API's parts (held so the ticket book runs as long as the test).
    harness: ApiHarness,
    _dir: TempDir,
}

/// A folder removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn fixture(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("argus-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir = TempDir(dir);
    let registry = Registry::from_toml_str(REGISTRY, "registry.toml").unwrap();
    let rules = RuleSet::compile(RULES, "rules.toml", &registry).unwrap();
    let policy = argus_tickets::Policy::from_toml_str(POLICY, "tickets.toml", &registry).unwrap();
    let store = Backend::Sqlite(SqliteStore::open(&dir.0.join("argus.sqlite")).unwrap());
    let mut telemetry = Telemetry::new("test", 0).unwrap();
    // Stalls show after 1.5 s here (a minute in service), so the test can see one.
    telemetry.readiness = argus_telemetry::Readiness::new(std::time::Duration::from_millis(1_500));
    // A methane alarm at a coal mine's working face, stored and made a ticket.
    let instance = crate::harness::first_instance(&rules, &registry, "methane-alarm").unwrap();
    let town = registry
        .enterprise(&instance.enterprise_id)
        .unwrap()
        .town
        .clone();
    let harness = ApiHarness::start(
        store.clone(),
        registry,
        policy,
        telemetry,
        AuthSettings::default(),
    )
    .await
    .unwrap();
    let alert_id = harness
        .fire(
            &instance.clone(),
            0x0123_4567_89ab_cdef,
            Timestamp(1_795_622_400_000),
            1.2,
        )
        .await
        .unwrap();
    harness
        .user("liu", UserRole::Monitor, "", "", PASSWORD)
        .await
        .unwrap();
    harness
        .user("sun", UserRole::Team, &town, "coal", PASSWORD)
        .await
        .unwrap();
    let app = harness.app.clone();
    let monitor = login(&app, "liu").await;
    let team = login(&app, "sun").await;
    Fixture {
        app,
        store,
        alert_id,
        instance,
        monitor,
        team,
        harness,
        _dir: dir,
    }
}

/// Log `name` in; the session cookie's `name=value`.
async fn login(app: &axum::Router, name: &str) -> String {
    let body = format!(r#"{{"name": "{name}", "password": "{PASSWORD}"}}"#);
    let request = Request::builder()
        .method("POST")
        .uri("/api/login")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// A request as `who` (a session cookie).
async fn call_as(
    app: &axum::Router,
    who: &str,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", who);
    send(app, request, body).await
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    send(app, Request::builder().method(method).uri(uri), body).await
}

/// A POST as `who` with an `Idempotency-Key`.
async fn call_keyed(
    app: &axum::Router,
    who: &str,
    uri: &str,
    body: &str,
    key: &str,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method("POST")
        .uri(uri)
        .header("cookie", who)
        .header("idempotency-key", key);
    send(app, request, body).await
}

async fn send(
    app: &axum::Router,
    request: axum::http::request::Builder,
    body: &str,
) -> (StatusCode, String) {
    let request = request.body(Body::from(body.to_owned())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn alerts_are_listed_shown_and_acknowledged_once() {
    let f = fixture("alerts").await;
    let (status, body) = call_as(&f.app, &f.monitor, "GET", "/api/alerts", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = json(&body);
    let alerts = list["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["alert_id"], f.alert_id.as_str());
    assert_eq!(alerts[0]["rule"], "methane-alarm");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["started_at"], "2026-11-25T16:00:00.000Z");
    assert!(alerts[0]["town"].as_str().is_some_and(|t| !t.is_empty()));

    let (status, body) = call_as(
        &f.app,
        &f.monitor,
        "GET",
        &format!("/api/alerts/{}", f.alert_id),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shown = json(&body);
    assert_eq!(shown["transitions"][0]["transition"], "fired");

    let ack = r#"{"note": "called the mine"}"#;
    let path = format!("/api/alerts/{}/ack", f.alert_id);
    // The team sees the alert behind its ticket, but only monitors acknowledge.
    let (status, body) = call_as(&f.app, &f.team, "POST", &path, ack).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call_as(&f.app, &f.monitor, "POST", &path, ack).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["acknowledged_by"], "liu display (liu)");
    let (status, body) = call_as(&f.app, &f.monitor, "POST", &path, ack).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains("already acknowledged by liu display (liu)"),
        "{body}"
    );
    let (status, _) = call_as(
        &f.app,
        &f.monitor,
        "POST",
        "/api/alerts/00000000000000ff/ack",
        ack,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The person acting is the caller: a body naming one is refused.
    let (status, body) = call_as(
        &f.app,
        &f.monitor,
        "POST",
        &path,
        r#"{"actor": "Inspector Sun"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = call_as(
        &f.app,
        &f.monitor,
        "GET",
        "/api/alerts/00000000000000ff",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call_as(&f.app, &f.monitor, "GET", "/api/alerts?limit=0", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call_as(&f.app, &f.monitor, "GET", "/api/alerts?limit=x", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let stored = f.store.alert(&f.alert_id).await.unwrap().unwrap();
    assert_eq!(stored.acknowledged_by, "liu display (liu)");
}

#[tokio::test]
async fn tickets_are_listed_shown_and_moved_by_role() {
    let f = fixture("tickets").await;
    let (status, body) = call_as(&f.app, &f.monitor, "GET", "/api/tickets", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = json(&body);
    let ticket = &list["tickets"][0];
    assert_eq!(ticket["department"], "coal", "{body}");
    assert_eq!(ticket["alert_ids"][0], f.alert_id.as_str());
    let id = ticket["ticket_id"].as_str().unwrap().to_owned();
    let events = ticket["events"].as_u64().unwrap();

    let accept = r#"{"to": "accepted", "note": "on our way"}"#;
    let path = format!("/api/tickets/{id}/state");
    // A monitor sees the ticket but moves none.
    let (status, body) = call_as(&f.app, &f.monitor, "POST", &path, accept).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call_as(&f.app, &f.team, "POST", &path, accept).await;
    // Dispatched at once by the shipped policy, so the team may accept.
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = json(&body);
    assert_eq!(event["to"], "accepted");
    assert_eq!(event["from"], "dispatched");
    assert_eq!(event["actor"], "sun display (sun)");
    assert_eq!(event["role"], "team");
    assert_eq!(event["seq"].as_u64(), Some(events + 1));
    let (status, body) = call_as(&f.app, &f.team, "POST", &path, accept).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = call_as(
        &f.app,
        &f.team,
        "POST",
        "/api/tickets/00000000000000ff/state",
        accept,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without credentials, nothing: not even whether the ticket exists.
    let (status, body) = call(&f.app, "POST", &path, accept).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = call_as(&f.app, &f.team, "POST", &path, r#"{"to": "nowhere"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let claimed = r#"{"to": "inspecting", "actor": "Sun", "role": "head"}"#;
    let (status, body) = call_as(&f.app, &f.team, "POST", &path, claimed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The record shows the change once it is stored.
    let mut record = serde_json::Value::Null;
    for _ in 0..200 {
        let (status, body) =
            call_as(&f.app, &f.monitor, "GET", &format!("/api/tickets/{id}"), "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        record = json(&body);
        if record["record"].as_array().unwrap().len() as u64 == events + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = record["record"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last["actor"], "sun display (sun)", "{record}");
    assert_eq!(last["note"], "on our way");
    assert_eq!(record["ticket"]["state"], "accepted");
    assert_eq!(record["chain_head"], last["hash"]);
    // What each may do next: a monitor nothing, the team inspect.
    assert_eq!(record["next"], serde_json::json!([]));
    let (_, mine) = call_as(&f.app, &f.team, "GET", &format!("/api/tickets/{id}"), "").await;
    assert_eq!(json(&mine)["next"], serde_json::json!(["inspecting"]));

    // The printable record: every line, its hash and the chain head; what people wrote is
    // shown as text, never run.
    let inspect = r#"{"to": "inspecting", "note": "<script>alert(1)</script> & co"}"#;
    let (status, body) = call_as(&f.app, &f.team, "POST", &path, inspect).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let head = json(&body)["hash"].as_str().unwrap().to_owned();
    let page_path = format!("/api/tickets/{id}/record.html");
    let (status, page) = call_as(&f.app, &f.team, "GET", &page_path, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains(&format!("<dt>链头 Chain head</dt><dd><code>{head}</code>")));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("sun display (sun)") && page.contains("accepted → inspecting"));
    assert_eq!(
        page.matches("<tr><td>").count() as u64,
        events + 2,
        "one row per line"
    );
    let (status, _) = call(&f.app, "GET", &page_path, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call_as(
        &f.app,
        &f.monitor,
        "GET",
        "/api/tickets/00000000000000ff",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call_as(&f.app, &f.monitor, "GET", "/api/tickets/zz", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_silence_goes_to_the_pipeline_and_bad_ones_are_refused() {
    let mut f = fixture("silences").await;
    let (status, body) = call_as(&f.app, &f.monitor, "GET", "/api/alerts", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let enterprise = json(&body)["alerts"][0]["enterprise"]
        .as_str()
        .unwrap()
        .to_owned();
    let silence = format!(
        r#"{{"enterprise": "{enterprise}", "from": "2026-11-26T08:00:00+08:00",
            "to": "2026-11-26T12:00:00+08:00", "reason": "ventilation works"}}"#
    );
    // The answer waits until the pipeline has made the silence durable (runs its ack).
    let pipeline = async {
        let envelope = f.harness.pipeline.recv().await.unwrap();
        match &envelope.records[..] {
            [argus_ingest::Record::Event(e)] => {
                assert_eq!(e.enterprise_id.as_deref(), Some(enterprise.as_str()));
            }
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let before_ack = std::time::Instant::now();
        envelope.ack.done();
        before_ack
    };
    let answer = async {
        let answer = call_as(&f.app, &f.monitor, "POST", "/api/silences", &silence).await;
        (answer, std::time::Instant::now())
    };
    let (((status, body), answered_at), acked_at) = tokio::join!(answer, pipeline);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        answered_at >= acked_at,
        "answered before the silence was stored"
    );
    let unknown = silence.replace(&enterprise, "NOBODY");
    let (status, body) = call_as(&f.app, &f.monitor, "POST", "/api/silences", &unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let backwards = silence.replace("12:00:00", "07:00:00");
    let (status, body) = call_as(&f.app, &f.monitor, "POST", "/api/silences", &backwards).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("to must be after from"), "{body}");
    let (status, _) = call_as(&f.app, &f.monitor, "GET", "/healthz", "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call_as(&f.app, &f.monitor, "GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        json(&body)["stages"].as_array().map(Vec::len),
        Some(3),
        "{body}"
    );
    // No detection runs in this fixture: once its silence outlasts the limit, not ready.
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    let (status, body) = call_as(&f.app, &f.monitor, "GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let answer = json(&body);
    let stalled: Vec<&str> = answer["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["ready"] == false)
        .filter_map(|s| s["stage"].as_str())
        .collect();
    assert_eq!(stalled, ["detection"], "{body}");
    let (status, body) = call_as(&f.app, &f.monitor, "GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("argus_"), "{body}");
}

#[tokio::test]
async fn changes_retried_with_their_idempotency_key_get_the_first_answer() {
    let f = fixture("idempotent").await;
    let ack = r#"{"note": "called the mine"}"#;
    let path = format!("/api/alerts/{}/ack", f.alert_id);
    let (status, first) = call_keyed(&f.app, &f.monitor, &path, ack, "ack-7f3a").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = call_keyed(&f.app, &f.monitor, &path, ack, "ack-7f3a").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(json(&again)["acknowledged_by"], "liu display (liu)");
    let other = r#"{"note": "another note"}"#;
    let (status, body) = call_keyed(&f.app, &f.monitor, &path, other, "ack-7f3a").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = call_as(&f.app, &f.monitor, "POST", &path, ack).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "without the key it is a second one: {body}"
    );
    assert_eq!(f.store.counts().await.unwrap().alert_acks, 1);
    for bad in ["", "key with spaces", &"k".repeat(129)] {
        let (status, body) = call_keyed(&f.app, &f.monitor, &path, ack, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
    }

    let (_, body) = call_as(&f.app, &f.monitor, "GET", "/api/tickets", "").await;
    let id = json(&body)["tickets"][0]["ticket_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/tickets/{id}/state");
    let accept = r#"{"to": "accepted", "note": "on our way"}"#;
    let (status, first) = call_keyed(&f.app, &f.team, &path, accept, "accept-1").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = call_keyed(&f.app, &f.team, &path, accept, "accept-1").await;
    assert_eq!((status, json(&again)), (StatusCode::OK, json(&first)));
    let later = accept.replace("on our way", "later");
    let (status, body) = call_keyed(&f.app, &f.team, &path, &later, "accept-1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = call_as(&f.app, &f.team, "POST", &path, accept).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // The record holds the change once, with the key of the request that made it.
    let record = f.store.ticket_events(&id).await.unwrap();
    let accepted: Vec<_> = record.iter().filter(|e| e.to_state == "accepted").collect();
    assert_eq!(accepted.len(), 1, "{record:?}");
    let found = f
        .store
        .ticket_event_by_request(&id, "accept-1")
        .await
        .unwrap();
    assert_eq!(found.as_ref(), accepted.first().copied());
}

/// A silence retried with its idempotency key is set once (issue 12): the retry answers 200
/// from the store without a second silence, the same key with another body is refused (422).
#[tokio::test]
async fn a_silence_retried_with_its_idempotency_key_is_set_once() {
    let mut f = fixture("silence_key").await;
    let (_, body) = call_as(&f.app, &f.monitor, "GET", "/api/alerts", "").await;
    let enterprise = json(&body)["alerts"][0]["enterprise"]
        .as_str()
        .unwrap()
        .to_owned();
    // The pipeline's part: store the silence, then acknowledge it.
    let stored = f.harness.store_silences();
    let silence = format!(
        r#"{{"enterprise": "{enterprise}", "from": "2026-11-26T08:00:00+08:00",
            "to": "2026-11-26T12:00:00+08:00", "reason": "ventilation works"}}"#
    );
    let (first, again) = tokio::join!(
        call_keyed(&f.app, &f.monitor, "/api/silences", &silence, "silence-1"),
        call_keyed(&f.app, &f.monitor, "/api/silences", &silence, "silence-1"),
    );
    assert_eq!(
        (first.0, again.0),
        (StatusCode::OK, StatusCode::OK),
        "{first:?} {again:?}"
    );
    let (status, _) = call_keyed(&f.app, &f.monitor, "/api/silences", &silence, "silence-1").await;
    assert_eq!(status, StatusCode::OK);
    let other = silence.replace("ventilation works", "another reason");
    let (status, body) = call_keyed(&f.app, &f.monitor, "/api/silences", &other, "silence-1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let notices = f.store.notices_until_after(Timestamp(0)).await.unwrap();
    assert_eq!(notices.len(), 1, "one silence: {notices:?}");
    let found = f.store.silence_by_request("silence-1").await.unwrap();
    assert_eq!(found.as_ref(), notices.first());
    drop(f);
    assert_eq!(stored.await.unwrap(), 1, "one silence went to the pipeline");
}

/// The events of an SSE body as (id, event, data), read until `enough` holds or `within` has
/// passed (keep-alive comments are not events).
async fn sse_events(
    body: &mut Body,
    enough: impl Fn(&[(String, String, String)]) -> bool,
    within: Duration,
) -> Vec<(String, String, String)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut text = String::new();
    let mut events = Vec::new();
    while !enough(&events) {
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await else {
            break;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        text.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_owned())
                    .unwrap_or_default()
            };
            if !block.trim().starts_with(':') {
                events.push((field("id:"), field("event:"), field("data:")));
            }
        }
    }
    events
}

async fn open_stream(f: &Fixture, who: &str, last_event_id: Option<&str>) -> Body {
    let mut request = Request::builder().uri("/api/stream").header("cookie", who);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = f
        .app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    response.into_body()
}

/// Issue 14, item 4: a client of the live stream that disconnects and reconnects with
/// `Last-Event-ID` while alerts keep coming misses none and sees none twice; an id of another
/// run gets a `reload` event; a team of another town sees none of it.
#[tokio::test]
async fn the_stream_resumed_with_last_event_id_misses_nothing_and_repeats_nothing() {
    let f = fixture("stream").await;
    let mut first = open_stream(&f, &f.monitor, None).await;
    let mut other_team = {
        let town = &f
            .harness
            .registry
            .enterprise(&f.instance.enterprise_id)
            .unwrap()
            .town;
        let other = f
            .harness
            .registry
            .teams()
            .find(|t| t.department == "coal" && &t.town != town)
            .unwrap()
            .town
            .clone();
        f.harness
            .user("zhou", UserRole::Team, &other, "coal", PASSWORD)
            .await
            .unwrap();
        let session = login(&f.app, "zhou").await;
        open_stream(&f, &session, None).await
    };
    const ALERTS: u64 = 30;
    let flow = async {
        for i in 1..=ALERTS {
            let started = Timestamp(1_795_622_400_000 + i as i64 * 600_000);
            f.harness
                .fire(&f.instance, 0x5000 + i, started, 1.1)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let client = async {
        // Some events, then the connection drops.
        let before = sse_events(&mut first, |e| e.len() >= 6, Duration::from_secs(10)).await;
        drop(first);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let last = before.last().map(|e| e.0.clone()).unwrap_or_default();
        let mut second = open_stream(&f, &f.monitor, Some(&last)).await;
        let fired = |e: &[(String, String, String)]| {
            e.iter()
                .filter(|(_, kind, data)| kind == "alert" && data.contains("\"fired\""))
                .count()
        };
        let already = fired(&before);
        let after = sse_events(
            &mut second,
            |e| already + fired(e) >= ALERTS as usize,
            Duration::from_secs(20),
        )
        .await;
        (before, after)
    };
    let ((), (before, after)) = tokio::join!(flow, client);
    let all: Vec<&(String, String, String)> = before.iter().chain(&after).collect();
    let seqs: Vec<u64> = all
        .iter()
        .map(|(id, _, _)| id.rsplit_once('-').unwrap().1.parse().unwrap())
        .collect();
    let first_seq = seqs[0];
    let expected: Vec<u64> = (first_seq..first_seq + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "missed or repeated across the reconnect");
    let fired = all
        .iter()
        .filter(|(_, kind, data)| kind == "alert" && data.contains("\"fired\""))
        .count();
    assert_eq!(fired, ALERTS as usize);
    let lines: Vec<_> = all.iter().filter(|(_, kind, _)| kind == "ticket").collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|(_, _, data)| data.contains("\"hash\":\"") && !data.contains("\"hash\":\"\"")),
        "ticket lines carry their place in the chain: {lines:?}"
    );
    assert!(!before.is_empty() && !after.is_empty());

    // Another run's id: reload.
    let mut stale = open_stream(&f, &f.monitor, Some("1-5")).await;
    let reload = sse_events(&mut stale, |e| !e.is_empty(), Duration::from_secs(5)).await;
    assert_eq!(reload.first().map(|e| e.1.as_str()), Some("reload"));
    // A coal team of another town saw none of this town's events.
    let theirs = sse_events(
        &mut other_team,
        |e| !e.is_empty(),
        Duration::from_millis(300),
    )
    .await;
    assert!(theirs.is_empty(), "{theirs:?}");
}

/// The document served at `/api/openapi.json` is the one kept in `docs/openapi.json` (write it
/// again with `argus openapi > docs/openapi.json`), and every operation it lists is routed:
/// without credentials, the router answers 401 (or the public route's own answer), never the
/// 404 or 405 of a route that does not exist.
#[tokio::test]
async fn the_openapi_document_is_the_one_kept_and_names_only_routes_that_exist() {
    let f = fixture("openapi").await;
    let (status, served) = call(&f.app, "GET", "/api/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let served = json(&served);
    let kept = include_str!("../../../docs/openapi.json");
    assert!(
        served == json(kept),
        "docs/openapi.json differs from the served document: run `argus openapi > docs/openapi.json`"
    );
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, methods) in paths {
        let uri = path
            .replace("{id}", "0000000000000000")
            .replace("{name}", "nobody")
            .replace("{mn}", "X");
        for (method, operation) in methods.as_object().unwrap() {
            if uri == "/api/stream" {
                continue; // never ends
            }
            operations += 1;
            let public = operation["security"] == serde_json::json!([]);
            let (status, body) = call(&f.app, &method.to_uppercase(), &uri, "").await;
            if public {
                assert!(
                    !matches!(status.as_u16(), 404 | 405),
                    "{method} {uri}: {status} {body}"
                );
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {body}");
            }
        }
    }
    assert!(operations >= 25, "{operations} operations");
}
