//! Who may do what through the API, on both stores (issue 14): the authorization matrix, one
//! row per (role, endpoint, in or out of jurisdiction) with the status each must get, run in
//! order against the API in process over the service's real port on ClickHouse and on SQLite;
//! then the life of credentials (logout, a disabled user, a password change, an idle session,
//! failed logins locked out).

use argus_api::AuthSettings;
use argus_model::{Registry, Timestamp, UserRole};
use argus_rules::RuleSet;
use argus_service::harness::ApiHarness;
use argus_store::{Backend, ClickHouseStore, SqliteStore, Store};
use argus_telemetry::Telemetry;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::util::{repo_path, runtime, settings, unique};

pub(crate) const PASSWORD: &str = "matrix password 2026";

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_path(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The shipped registry, rules and ticket policy.
pub(crate) fn county() -> (Registry, RuleSet, argus_tickets::Policy) {
    let registry = Registry::from_toml_str(&read("config/registry.toml"), "registry.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    let rules = RuleSet::compile(&read("config/rules.toml"), "rules.toml", &registry)
        .unwrap_or_else(|e| panic!("{e}"));
    let policy = argus_tickets::Policy::from_toml_str(
        &read("config/tickets.toml"),
        "tickets.toml",
        &registry,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (registry, rules, policy)
}

/// The API over `store` with a methane alarm of a coal mine fired and ticketed to the mine's
/// town's coal team, and a user of every role in and out of its jurisdiction.
async fn world(store: Backend) -> (ApiHarness, String, String, String) {
    let (registry, rules, policy) = county();
    let instance = argus_service::harness::first_instance(&rules, &registry, "methane-alarm")
        .unwrap_or_else(|| panic!("no methane alarm"));
    let town = registry
        .enterprise(&instance.enterprise_id)
        .map(|e| e.town.clone())
        .unwrap_or_default();
    // A coal team of another town.
    let other_town = registry
        .teams()
        .find(|t| t.department == "coal" && t.town != town)
        .map(|t| t.town.clone())
        .unwrap_or_else(|| panic!("no second coal team"));
    let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
    let harness = ApiHarness::start(store, registry, policy, telemetry, AuthSettings::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let alert = harness
        .fire(
            &instance,
            0x00c0_ffee_0000_0001,
            Timestamp(1_795_622_400_000),
            1.3,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let users: [(&str, UserRole, &str, &str); 7] = [
        ("admin", UserRole::Admin, "", ""),
        ("monitor", UserRole::Monitor, "", ""),
        ("dispatcher", UserRole::Dispatcher, "", ""),
        ("team-in", UserRole::Team, &town, "coal"),
        ("team-out", UserRole::Team, &other_town, "coal"),
        ("head-in", UserRole::Head, "", "coal"),
        ("head-out", UserRole::Head, "", "environment"),
    ];
    for (name, role, town, department) in users {
        harness
            .user(name, role, town, department, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let tickets = harness
        .store
        .tickets_with_alert(&alert)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ticket = tickets
        .first()
        .map(|t| t.ticket_id.clone())
        .unwrap_or_else(|| panic!("no ticket"));
    (harness, alert, ticket, town)
}

pub(crate) async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, String, Option<String>) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let request = request
        .body(Body::from(body.to_owned()))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = app
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    // A live stream never ends: its status and type are the answer.
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return (status, "(event stream)".to_owned(), cookie);
    }
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned(), cookie)
}

pub(crate) async fn login(
    app: &axum::Router,
    name: &str,
    password: &str,
) -> (StatusCode, Option<String>) {
    let body = serde_json::json!({ "name": name, "password": password }).to_string();
    let (status, _, cookie) = send(app, "POST", "/api/login", None, &body).await;
    (status, cookie)
}

/// Who asks: a user of the world, or nobody.
const ANON: &str = "anonymous";
const EVERYONE: [&str; 8] = [
    "admin",
    "monitor",
    "dispatcher",
    "team-in",
    "team-out",
    "head-in",
    "head-out",
    ANON,
];

/// One cell: who, what, and the status (with the items of a list, where one is answered).
struct Row {
    who: &'static str,
    method: &'static str,
    path: &'static str,
    body: &'static str,
    status: u16,
    items: Option<(&'static str, usize)>,
}

/// The matrix, in the order it runs (changes after the refusals they must not let through).
fn matrix() -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |who, method, path, body, status, items| {
        rows.push(Row {
            who,
            method,
            path,
            body,
            status,
            items,
        });
    };
    for who in EVERYONE {
        let anon = who == ANON;
        let county = matches!(who, "admin" | "monitor" | "dispatcher");
        let inside = county || who.ends_with("-in");
        let read = |found| {
            if anon {
                401
            } else if inside {
                found
            } else {
                404
            }
        };
        let count = |name| (!anon).then_some((name, usize::from(inside)));
        let (signed_in, refused) = if anon { (401, 401) } else { (200, 403) };
        row(who, "GET", "/api/me", "", signed_in, None);
        row(who, "GET", "/api/tokens", "", signed_in, None);
        row(who, "GET", "/api/alerts", "", signed_in, count("alerts"));
        row(who, "GET", "/api/alerts/{alert}", "", read(200), None);
        row(who, "GET", "/api/tickets", "", signed_in, count("tickets"));
        row(who, "GET", "/api/tickets/{ticket}", "", read(200), None);
        let page = "/api/tickets/{ticket}/record.html";
        row(who, "GET", page, "", read(200), None);
        row(who, "GET", "/api/stream", "", signed_in, None);
        row(who, "GET", "/api/registry", "", signed_in, None);
        let listed = if county { None } else { count("enterprises") };
        row(who, "GET", "/api/enterprises", "", signed_in, listed);
        row(
            who,
            "GET",
            "/api/enterprises/{enterprise}",
            "",
            read(200),
            None,
        );
        let readings = "/api/points/{point}/readings?metric={metric}\
                        &from=2026-11-25T15:00:00Z&to=2026-11-25T17:00:00Z";
        row(who, "GET", readings, "", read(200), None);
        // Refusals: visible but the wrong role (403), invisible (404), nobody (401).
        let (ack, change) = ("/api/alerts/{alert}/ack", "/api/tickets/{ticket}/state");
        if who != "monitor" {
            row(who, "POST", ack, "{}", read(403), None);
            row(who, "POST", "/api/silences", "{silence}", refused, None);
        }
        if who != "team-in" && who != "head-in" {
            row(
                who,
                "POST",
                change,
                r#"{"to": "accepted"}"#,
                read(403),
                None,
            );
        }
        if who != "admin" {
            row(who, "GET", "/api/users", "", refused, None);
            row(who, "POST", "/api/users", "{new_user}", refused, None);
            row(
                who,
                "POST",
                "/api/users/newcomer/disable",
                "",
                refused,
                None,
            );
        }
    }
    // What each may do, once.
    row(
        "monitor",
        "POST",
        "/api/alerts/{alert}/ack",
        r#"{"note": "called the mine"}"#,
        200,
        None,
    );
    row("monitor", "POST", "/api/silences", "{silence}", 200, None);
    row(
        "team-in",
        "POST",
        "/api/tickets/{ticket}/state",
        r#"{"to": "accepted"}"#,
        200,
        None,
    );
    row(
        "head-in",
        "POST",
        "/api/tickets/{ticket}/state",
        r#"{"to": "inspecting"}"#,
        200,
        None,
    );
    row("admin", "GET", "/api/users", "", 200, Some(("users", 7)));
    row("admin", "POST", "/api/users", "{new_user}", 201, None);
    row(
        "admin",
        "POST",
        "/api/users/newcomer/disable",
        "",
        200,
        None,
    );
    rows
}

async fn authorization_matrix(store: Backend) {
    let (mut harness, alert, ticket, _) = world(store).await;
    let silences = harness.store_silences();
    let app = harness.app.clone();
    let mut sessions = std::collections::HashMap::new();
    for who in EVERYONE.iter().filter(|w| **w != ANON) {
        let (status, cookie) = login(&app, who, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{who} logs in");
        sessions.insert(*who, cookie.unwrap_or_else(|| panic!("{who}: no cookie")));
    }
    let stored = harness
        .store
        .alert(&alert)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("alert {alert} not stored"));
    let enterprise = stored.enterprise_id.clone();
    let silence = serde_json::json!({
        "enterprise": enterprise, "from": "2026-11-26T08:00:00+08:00",
        "to": "2026-11-26T12:00:00+08:00", "reason": "ventilation works"
    })
    .to_string();
    let new_user = serde_json::json!({
        "name": "newcomer", "display_name": "新同事", "role": "monitor", "password": PASSWORD
    })
    .to_string();
    let mut failures = Vec::new();
    let rows = matrix();
    for row in &rows {
        let path = row
            .path
            .replace("{alert}", &alert)
            .replace("{ticket}", &ticket)
            .replace("{enterprise}", &stored.enterprise_id)
            .replace("{point}", &stored.source)
            .replace("{metric}", &stored.metric);
        let body = match row.body {
            "{silence}" => silence.clone(),
            "{new_user}" => new_user.clone(),
            other => other.to_owned(),
        };
        let cookie = sessions.get(row.who).map(String::as_str);
        let (status, answer, _) = send(&app, row.method, &path, cookie, &body).await;
        if status.as_u16() != row.status {
            failures.push(format!(
                "{} {} {}: {} (expected {}): {}",
                row.who,
                row.method,
                path,
                status.as_u16(),
                row.status,
                answer.trim()
            ));
            continue;
        }
        if let Some((field, n)) = row.items {
            let json: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            let got = json[field].as_array().map_or(0, Vec::len);
            if got != n {
                failures.push(format!(
                    "{} {} {}: {got} {field}, expected {n}",
                    row.who, row.method, path
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cells wrong:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    // The record names the callers, never a name from a body.
    let record = harness
        .store
        .ticket_events(&ticket)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let people: Vec<(&str, &str, &str)> = record
        .iter()
        .filter(|e| e.role != "system")
        .map(|e| (e.actor.as_str(), e.role.as_str(), e.to_state.as_str()))
        .collect();
    assert_eq!(
        people,
        [
            ("team-in display (team-in)", "team", "accepted"),
            ("head-in display (head-in)", "head", "inspecting")
        ]
    );
    let acknowledged = harness.store.alert(&alert).await.ok().flatten();
    assert_eq!(
        acknowledged.map(|a| a.acknowledged_by),
        Some("monitor display (monitor)".to_owned())
    );
    // The silence's envelope stored: once the API (the pipeline's senders) is gone.
    drop((harness, app));
    assert_eq!(silences.await.unwrap_or_default(), 1, "one silence set");
}

async fn credentials_end_when_they_should(store: Backend) {
    let (harness, ..) = world(store).await;
    let app = harness.app.clone();
    let me = |cookie: String| {
        let app = app.clone();
        async move { send(&app, "GET", "/api/me", Some(&cookie), "").await.0 }
    };
    // Logout ends the session.
    let (_, session) = login(&app, "monitor", PASSWORD).await;
    let session = session.unwrap_or_default();
    assert_eq!(me(session.clone()).await, StatusCode::OK);
    let (status, ..) = send(&app, "POST", "/api/logout", Some(&session), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(session).await, StatusCode::UNAUTHORIZED);

    // A token works until its user is disabled.
    let (_, admin) = login(&app, "admin", PASSWORD).await;
    let admin = admin.unwrap_or_default();
    let (_, dispatcher) = login(&app, "dispatcher", PASSWORD).await;
    let dispatcher = dispatcher.unwrap_or_default();
    let (status, made, _) = send(
        &app,
        "POST",
        "/api/tokens",
        Some(&dispatcher),
        r#"{"name": "city platform", "days": 30}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let made: serde_json::Value = serde_json::from_str(&made).unwrap_or_default();
    let token = made["token"].as_str().unwrap_or_default().to_owned();
    let bearer = |token: &str| {
        let request = Request::builder()
            .uri("/api/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        let app = app.clone();
        async move {
            app.oneshot(request)
                .await
                .map(|r| r.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    assert_eq!(bearer(&token).await, StatusCode::OK);
    assert_eq!(bearer("argus_0000").await, StatusCode::UNAUTHORIZED);
    let stored = harness.store.users().await.unwrap_or_default();
    assert!(
        stored
            .iter()
            .all(|u| u.password_hash.starts_with("$argon2id$")),
        "only hashes are kept"
    );
    let (status, ..) = send(
        &app,
        "POST",
        "/api/users/dispatcher/disable",
        Some(&admin),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bearer(&token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(dispatcher).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&app, "dispatcher", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A new password ends the user's sessions; the old password no longer logs in.
    let (_, before) = login(&app, "team-in", PASSWORD).await;
    let before = before.unwrap_or_default();
    let change = serde_json::json!({ "password": "another long password" }).to_string();
    let (status, ..) = send(
        &app,
        "POST",
        "/api/users/team-in/password",
        Some(&admin),
        &change,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me(before).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&app, "team-in", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "team-in", "another long password").await.0,
        StatusCode::OK
    );

    // A session idle for longer than allowed stops working.
    let (_, idle) = login(&app, "head-in", PASSWORD).await;
    let idle = idle.unwrap_or_default();
    let secret = idle.trim_start_matches("argus_session=");
    let hash = argus_api::auth::secret_hash(secret);
    let mut row = harness
        .store
        .credential(&hash)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no session stored"));
    row.last_used_ms -= 31 * 60_000;
    row.version += 1;
    // Written as the store keeps it (a version above the login's), as if an hour had passed.
    harness
        .store
        .put_credential(&row)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(me(idle).await, StatusCode::UNAUTHORIZED);

    // An unknown name is refused like a wrong password.
    assert_eq!(
        login(&app, "nobody", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Five failed logins lock the name (and the address) out, even with the right password.
    for _ in 0..4 {
        assert_eq!(
            login(&app, "head-out", "wrong password!!").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&app, "head-out", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A ClickHouse database of its own, dropped afterwards.
pub(crate) fn on_clickhouse<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime().block_on(async {
        let db = unique(name);
        let store = ClickHouseStore::with_database(&settings().clickhouse, &db);
        test(Backend::ClickHouse(Box::new(store.clone()))).await;
        let _ = store.query(&format!("DROP DATABASE {db}")).execute().await;
    });
}

/// An SQLite file of its own, removed afterwards.
pub(crate) fn on_sqlite<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(unique(name));
    runtime().block_on(async {
        let store = SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
        test(Backend::Sqlite(store)).await;
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_authorization_matrix_holds_on_clickhouse() {
    on_clickhouse("authz_matrix", authorization_matrix);
}

#[test]
fn the_authorization_matrix_holds_on_sqlite() {
    on_sqlite("authz_matrix", authorization_matrix);
}

#[test]
fn credentials_end_when_they_should_on_clickhouse() {
    on_clickhouse("authz_credentials", credentials_end_when_they_should);
}

#[test]
fn credentials_end_when_they_should_on_sqlite() {
    on_sqlite("authz_credentials", credentials_end_when_they_should);
}
