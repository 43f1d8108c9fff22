//! The query API on both stores (issue 14, item 3): alerts searched by every filter and paged
//! with cursors, tickets by department, town, state and deadline, the registry and its
//! enterprises cut to the caller's jurisdiction, a point's readings raw and by the hour, and an
//! alert with the readings around it. Expected answers are computed from the world the test
//! builds, never written down.

use std::collections::BTreeSet;

use argus_api::AuthSettings;
use argus_model::registry::Industry;
use argus_model::{Registry, Timestamp, UserRole};
use argus_rules::{Instance, RuleSet};
use argus_service::harness::ApiHarness;
use argus_store::rows::ReadingRow;
use argus_store::spool::RowBatch;
use argus_store::{Backend, Store};
use argus_telemetry::Telemetry;
use axum::http::StatusCode;
use serde_json::Value;

use crate::authorization::{county, login, on_clickhouse, on_sqlite, send, PASSWORD};

const T0: i64 = 1_795_622_400_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// One alert the world fired.
struct Fired {
    id: String,
    instance: Instance,
    started: i64,
    town: String,
    /// The departments of its tickets.
    departments: Vec<String>,
}

impl Fired {
    fn in_department(&self, department: &str) -> bool {
        self.departments.iter().any(|d| d == department)
    }
}

/// `n` instances of `rule`, each on a point of another enterprise of `industry`, in MN order.
fn instances(
    rules: &RuleSet,
    registry: &Registry,
    rule: &str,
    industry: Industry,
    n: usize,
) -> Vec<Instance> {
    let mut points: Vec<_> = registry
        .points()
        .filter(|p| {
            registry
                .enterprise(&p.enterprise_id)
                .is_some_and(|e| e.industry == industry)
        })
        .collect();
    points.sort_by(|a, b| a.mn.as_str().cmp(b.mn.as_str()));
    let mut enterprises = BTreeSet::new();
    points
        .iter()
        .filter_map(|p| {
            rules
                .for_point(p.mn.as_str())
                .find(|i| i.rule_id.split(':').next() == Some(rule))
                .cloned()
        })
        .filter(|i| enterprises.insert(i.enterprise_id.clone()))
        .take(n)
        .collect()
}

/// A time of the query string.
fn at(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

async fn get(app: &axum::Router, cookie: &str, uri: &str) -> (StatusCode, Value) {
    let (status, body, _) = send(app, "GET", uri, Some(cookie), "").await;
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, json)
}

/// The ids of a list's items under `field`, `key` of each.
fn ids(json: &Value, field: &str, key: &str) -> Vec<String> {
    json[field]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i[key].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every page of a list, following `next` from `uri` (which carries `limit`).
async fn all_pages(
    app: &axum::Router,
    cookie: &str,
    uri: &str,
    field: &str,
    key: &str,
) -> (Vec<String>, usize) {
    let (mut found, mut pages, mut next) = (Vec::new(), 0, None::<String>);
    loop {
        let page_uri = match &next {
            None => uri.to_owned(),
            Some(c) => format!("{uri}&cursor={c}"),
        };
        let (status, json) = get(app, cookie, &page_uri).await;
        assert_eq!(status, StatusCode::OK, "{page_uri}: {json}");
        found.extend(ids(&json, field, key));
        pages += 1;
        match json["next"].as_str() {
            Some(c) => next = Some(c.to_owned()),
            None => return (found, pages),
        }
        assert!(pages < 100, "{uri}: endless pages");
    }
}

async fn queries(store: Backend) {
    let (registry, rules, policy) = county();
    let mut world = instances(&rules, &registry, "methane-alarm", Industry::CoalMine, 3);
    world.extend(instances(
        &rules,
        &registry,
        "instant-limit",
        Industry::WastewaterTreatment,
        2,
    ));
    assert_eq!(
        world.len(),
        5,
        "the registry has the points this test needs"
    );
    let coal_towns: BTreeSet<String> = world[..3]
        .iter()
        .filter_map(|i| registry.enterprise(&i.enterprise_id))
        .map(|e| e.town.clone())
        .collect();
    assert!(coal_towns.len() > 1, "coal mines in more than one town");
    let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
    let harness = ApiHarness::start(
        store,
        registry.clone(),
        policy,
        telemetry,
        AuthSettings::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut fired = Vec::new();
    for (n, instance) in world.into_iter().enumerate() {
        let started = T0 + i64::try_from(n).unwrap_or(0) * 10 * MINUTE;
        let alert_id = 0x0a11_0000_0000_0001 + u64::try_from(n).unwrap_or(0);
        let id = harness
            .fire(&instance, alert_id, Timestamp(started), 2.0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let town = registry
            .enterprise(&instance.enterprise_id)
            .map(|e| e.town.clone())
            .unwrap_or_default();
        let departments = harness
            .store
            .tickets_with_alert(&id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|t| t.department)
            .collect();
        fired.push(Fired {
            id,
            instance,
            started,
            town,
            departments,
        });
    }
    // The first alert resolved five minutes after it started.
    harness
        .resolve(
            &fired[0].instance,
            0x0a11_0000_0000_0001,
            Timestamp(T0),
            Timestamp(T0 + 5 * MINUTE),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Readings of the first alert's point and metric: every minute for four hours around it,
    // value = minute mod 10, the minute 7 of each hour flagged F (stopped, not valid).
    let metric = fired[0]
        .instance
        .metric
        .map(|m| m.code().to_owned())
        .unwrap_or_default();
    let point = fired[0].instance.point.as_str().to_owned();
    let readings: Vec<ReadingRow> = (0..240)
        .map(|m: i64| {
            let at = T0 - 2 * HOUR + m * MINUTE;
            ReadingRow {
                source: point.clone(),
                metric: metric.clone(),
                event_ms: at,
                event_time: u32::try_from(at / 1000).unwrap_or(0),
                value: (m % 10) as f64,
                flag: if m % 60 == 7 { "F" } else { "N" }.to_owned(),
                enterprise_id: fired[0].instance.enterprise_id.to_string(),
                receive_ms: at,
                data_interval: "real_time".to_owned(),
                corrected: None,
            }
        })
        .collect();
    let mut batch = RowBatch {
        readings: readings.clone(),
        ..RowBatch::default()
    };
    harness
        .store
        .insert_batch(&mut batch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let team_town = fired[0].town.clone();
    let other_town = registry
        .towns()
        .find(|t| t.id != team_town)
        .map(|t| t.id.clone())
        .unwrap_or_default();
    // A head of the department of the wastewater alerts' tickets.
    let head_department = fired[3].departments.first().cloned().unwrap_or_default();
    assert_ne!(head_department, "coal");
    for (name, role, town, department) in [
        ("monitor", UserRole::Monitor, "", ""),
        ("team", UserRole::Team, team_town.as_str(), "coal"),
        ("head-env", UserRole::Head, "", head_department.as_str()),
    ] {
        harness
            .user(name, role, town, department, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let app = harness.app.clone();
    let session = |name: &'static str| {
        let app = app.clone();
        async move {
            login(&app, name, PASSWORD)
                .await
                .1
                .unwrap_or_else(|| panic!("{name} cannot log in"))
        }
    };
    let (monitor, team, head) = (
        session("monitor").await,
        session("team").await,
        session("head-env").await,
    );
    let count = |f: &dyn Fn(&Fired) -> bool| fired.iter().filter(|a| f(a)).count();
    let newest_first: Vec<String> = fired.iter().rev().map(|a| a.id.clone()).collect();

    // Every alert, newest start first, on one page and on pages of two.
    let (_, all) = get(&app, &monitor, "/api/alerts").await;
    assert_eq!(ids(&all, "alerts", "alert_id"), newest_first, "{all}");
    assert_eq!(all["next"], Value::Null);
    let (paged, pages) =
        all_pages(&app, &monitor, "/api/alerts?limit=2", "alerts", "alert_id").await;
    assert_eq!((paged, pages), (newest_first.clone(), 3));

    // Each filter.
    let by = |query: String| {
        let app = app.clone();
        let monitor = monitor.clone();
        async move {
            let (status, json) = get(&app, &monitor, &format!("/api/alerts?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {json}");
            ids(&json, "alerts", "alert_id").len()
        }
    };
    let first = &fired[0];
    let cases: Vec<(String, usize)> = vec![
        (
            format!("town={}", first.town),
            count(&|a| a.town == first.town),
        ),
        (
            format!("enterprise={}", first.instance.enterprise_id),
            count(&|a| a.instance.enterprise_id == first.instance.enterprise_id),
        ),
        (
            format!("point={point}"),
            count(&|a| a.instance.point.as_str() == point),
        ),
        ("kind=threshold".to_owned(), 5),
        ("kind=average".to_owned(), 0),
        (
            "severity=orange".to_owned(),
            count(&|a| a.instance.severity.as_str() == "orange"),
        ),
        ("status=resolved".to_owned(), 1),
        ("status=firing".to_owned(), 4),
        ("muted=false".to_owned(), 5),
        ("muted=true".to_owned(), 0),
        (
            "department=coal".to_owned(),
            count(&|a| a.in_department("coal")),
        ),
        (
            format!("department={head_department}"),
            count(&|a| a.in_department(&head_department)),
        ),
        // Active in the range: the first ended at +5 min, the others still fire.
        (format!("to={}", at(T0 + 1)), 1),
        (format!("from={}", at(T0 + 6 * MINUTE)), 4),
        (
            format!(
                "from={}&to={}&department=coal",
                at(T0),
                at(T0 + 15 * MINUTE)
            ),
            count(&|a| a.in_department("coal") && a.started < T0 + 15 * MINUTE),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(by(query.clone()).await, expected, "{query}");
    }
    // Acknowledged or not.
    let acked = &fired[1].id;
    let (status, body, _) = send(
        &app,
        "POST",
        &format!("/api/alerts/{acked}/ack"),
        Some(&monitor),
        r#"{"note": "called"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, yes) = get(&app, &monitor, "/api/alerts?acknowledged=true").await;
    assert_eq!(ids(&yes, "alerts", "alert_id"), std::slice::from_ref(acked));
    assert_eq!(by("acknowledged=false".to_owned()).await, 4);

    // Bad queries are told what is wrong.
    for bad in [
        "limit=0",
        "limit=1001",
        "cursor=nonsense",
        "town=atlantis",
        "department=weather",
        "severity=purple",
        "status=sleeping",
        "from=yesterday",
        "from=2026-11-27T00:00:00Z&to=2026-11-26T00:00:00Z",
        "colour=red",
        "muted=perhaps",
    ] {
        let (status, json) = get(&app, &monitor, &format!("/api/alerts?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {json}");
    }

    // A team sees the alerts behind its team's tickets, and nothing of another department.
    let team_alerts = count(&|a| a.town == team_town && a.in_department("coal"));
    let (_, mine) = get(&app, &team, "/api/alerts").await;
    assert_eq!(
        ids(&mine, "alerts", "alert_id").len(),
        team_alerts,
        "{mine}"
    );
    let (_, other) = get(
        &app,
        &team,
        &format!("/api/alerts?department={head_department}"),
    )
    .await;
    assert_eq!(ids(&other, "alerts", "alert_id").len(), 0, "{other}");

    // Tickets: one per enterprise and department.
    let tickets: BTreeSet<(String, &str)> = fired
        .iter()
        .flat_map(|a| {
            a.departments
                .iter()
                .map(|d| (a.instance.enterprise_id.to_string(), d.as_str()))
        })
        .collect();
    let (_, listed) = get(&app, &monitor, "/api/tickets").await;
    assert_eq!(
        ids(&listed, "tickets", "ticket_id").len(),
        tickets.len(),
        "{listed}"
    );
    let coal = tickets.iter().filter(|t| t.1 == "coal").count();
    let (_, of_coal) = get(
        &app,
        &monitor,
        "/api/tickets?department=coal&state=new,dispatched",
    )
    .await;
    assert_eq!(
        ids(&of_coal, "tickets", "ticket_id").len(),
        coal,
        "{of_coal} {listed}"
    );
    let (_, closed) = get(
        &app,
        &monitor,
        "/api/tickets?state=closed,rectification_ordered",
    )
    .await;
    assert_eq!(ids(&closed, "tickets", "ticket_id").len(), 0);
    let (status, _) = get(&app, &monitor, "/api/tickets?state=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // By deadline, soonest first, a page at a time.
    let (by_deadline, pages) = all_pages(
        &app,
        &monitor,
        "/api/tickets?order=deadline&limit=1",
        "tickets",
        "ticket_id",
    )
    .await;
    assert_eq!(by_deadline.len(), tickets.len());
    assert!(pages >= tickets.len());
    let (_, ordered) = get(&app, &monitor, "/api/tickets?order=deadline").await;
    let deadlines: Vec<String> = ids(&ordered, "tickets", "deadline");
    assert_eq!(
        deadlines.len(),
        tickets.len(),
        "every new ticket has a deadline"
    );
    assert!(deadlines.windows(2).all(|w| w[0] <= w[1]), "{deadlines:?}");
    // A head sees its department's, a team its team's; asking for others' gets none.
    let (_, env) = get(&app, &head, "/api/tickets").await;
    assert_eq!(
        ids(&env, "tickets", "ticket_id").len(),
        tickets.iter().filter(|t| t.1 == head_department).count()
    );
    let (_, theirs) = get(&app, &head, "/api/tickets?department=coal").await;
    assert_eq!(ids(&theirs, "tickets", "ticket_id").len(), 0);
    let (_, own) = get(&app, &team, "/api/tickets").await;
    let own_towns: BTreeSet<String> = ids(&own, "tickets", "town").into_iter().collect();
    assert_eq!(own_towns, BTreeSet::from([team_town.clone()]));
    let (_, elsewhere) = get(&app, &team, &format!("/api/tickets?town={other_town}")).await;
    assert_eq!(elsewhere["tickets"], serde_json::json!([]), "{elsewhere}");

    // The registry and its enterprises.
    let (_, reg) = get(&app, &team, "/api/registry").await;
    assert_eq!(
        reg["towns"].as_array().map(Vec::len),
        Some(registry.towns().count())
    );
    assert_eq!(
        reg["teams"].as_array().map(Vec::len),
        Some(registry.teams().count())
    );
    let (_, every) = get(&app, &monitor, "/api/enterprises").await;
    assert_eq!(
        every["enterprises"].as_array().map(Vec::len),
        Some(registry.enterprises().count())
    );
    let (_, in_town) = get(
        &app,
        &monitor,
        &format!("/api/enterprises?town={team_town}"),
    )
    .await;
    assert_eq!(
        in_town["enterprises"].as_array().map(Vec::len),
        Some(
            registry
                .enterprises()
                .filter(|e| e.town == team_town)
                .count()
        )
    );
    let (_, visible) = get(&app, &team, "/api/enterprises").await;
    let expected: BTreeSet<String> = tickets
        .iter()
        .filter(|(e, d)| {
            *d == "coal" && registry.enterprise(e).is_some_and(|e| e.town == team_town)
        })
        .map(|(e, _)| e.clone())
        .collect();
    let seen: BTreeSet<String> = ids(&visible, "enterprises", "id").into_iter().collect();
    assert_eq!(seen, expected);
    let enterprise = &first.instance.enterprise_id;
    let (status, shown) = get(&app, &team, &format!("/api/enterprises/{enterprise}")).await;
    assert_eq!(status, StatusCode::OK);
    let limits = shown["enterprise"]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["mn"] == point.as_str())
        .map(|p| p["limits"].clone())
        .unwrap_or_default();
    assert!(
        limits
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["metric"] == metric.as_str())),
        "the point's limits include its metric's: {limits}"
    );
    let flue = &fired[3].instance.enterprise_id;
    let (status, _) = get(&app, &team, &format!("/api/enterprises/{flue}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another department's enterprise"
    );

    // A point's readings: each one over four hours, by the hour over two days.
    let range = |from: i64, to: i64| {
        format!(
            "/api/points/{point}/readings?metric={metric}&from={}&to={}",
            at(from),
            at(to)
        )
    };
    let raw = range(T0 - 2 * HOUR, T0 + 2 * HOUR);
    let (status, series) = get(&app, &team, &raw).await;
    assert_eq!(status, StatusCode::OK, "{series}");
    assert_eq!(series["interval"], "real_time");
    assert_eq!(
        series["readings"].as_array().map(Vec::len),
        Some(readings.len())
    );
    let long = range(T0 - 24 * HOUR, T0 + 24 * HOUR);
    let (_, hours) = get(&app, &team, &long).await;
    assert_eq!(hours["interval"], "hour", "{hours}");
    let hours = hours["hours"].as_array().cloned().unwrap_or_default();
    assert_eq!(hours.len(), 4, "{hours:?}");
    for (h, hour) in hours.iter().enumerate() {
        let valid: Vec<f64> = readings[h * 60..(h + 1) * 60]
            .iter()
            .filter(|r| r.flag == "N")
            .map(|r| r.value)
            .collect();
        let avg = valid.iter().sum::<f64>() / valid.len() as f64;
        assert_eq!(hour["samples"], 59, "{hour}");
        assert!(
            (hour["avg"].as_f64().unwrap_or(f64::NAN) - avg).abs() < 1e-9,
            "{hour}"
        );
        assert_eq!(hour["max"], 9.0);
        assert_eq!(
            hour["hour"],
            Timestamp(T0 - 2 * HOUR + i64::try_from(h).unwrap_or(0) * HOUR).to_rfc3339()
        );
    }
    let (status, _) = get(&app, &team, &range(T0 - 401 * 24 * HOUR, T0)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "over 400 days");
    let (status, _) = get(&app, &head, &raw).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a point behind none of the head's tickets"
    );

    // An alert with the readings around it: an hour before its start to an hour after its end.
    let (_, detail) = get(&app, &team, &format!("/api/alerts/{}", first.id)).await;
    let around = detail["readings"]["readings"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    let expected = readings
        .iter()
        .filter(|r| r.event_ms >= first.started - HOUR && r.event_ms < T0 + 5 * MINUTE + HOUR)
        .count();
    assert_eq!(around, expected, "{detail}");
    assert_eq!(detail["readings"]["metric"], metric.as_str());
}

#[test]
fn the_query_api_answers_on_clickhouse() {
    on_clickhouse("queries", queries);
}

#[test]
fn the_query_api_answers_on_sqlite() {
    on_sqlite("queries", queries);
}
