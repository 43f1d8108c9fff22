//! Ticket changes delivered to the team responsible (issue 14, item 5), against a real Argus
//! process on ClickHouse and Kafka: a local receiver gets every change of its team's ticket
//! exactly once with a valid signature while it is up; all of them after it was down for 30 s;
//! and all of them after a `kill -9` of Argus in the middle of a delivery, the only repeat
//! carrying the same idempotency key. The tickets topic gets every change, keyed by ticket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argus_store::{ClickHouseStore, Store};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;

use crate::end_to_end::{
    dispatched_ticket, kafka_client, methane_alarm, produce, start_argus, stop_argus,
};
use crate::util::{
    argus_user, free_port, http_get_as, http_post, now_ms, runtime, settings, unique, wait_for,
    write_config, Topics,
};

const SECRET: &str = "a webhook key of the coal team, 2026";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    key: String,
    key_id: String,
    signed: bool,
    change: serde_json::Value,
}

/// A team's receiver: records each signed POST, answers 200 after `delay_ms`, or 503 while
/// `down` (to connections Argus kept open; new ones are refused while it is stopped).
#[derive(Debug, Default)]
struct Receiver {
    got: Mutex<Vec<Got>>,
    down: AtomicBool,
    delay_ms: AtomicU64,
}

impl Receiver {
    fn got(&self) -> Vec<Got> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn keys(&self) -> BTreeMap<String, usize> {
        let mut keys = BTreeMap::new();
        for g in self.got() {
            *keys.entry(g.key).or_default() += 1;
        }
        keys
    }
}

async fn receive(
    axum::extract::State(receiver): axum::extract::State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if receiver.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let timestamp: u64 = header("x-argus-timestamp").parse().unwrap_or(0);
    let expected = argus_service::delivery::signature(SECRET.as_bytes(), timestamp, &body);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let got = Got {
        key: header("idempotency-key"),
        key_id: header("x-argus-key-id"),
        signed: header("x-argus-signature") == expected && timestamp > 0,
        change: json["change"].clone(),
    };
    if let Ok(mut all) = receiver.got.lock() {
        all.push(got);
    }
    let delay = receiver.delay_ms.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    StatusCode::OK
}

/// Serve `receiver` on `port` until the task is aborted.
fn serve(
    rt: &tokio::runtime::Runtime,
    port: u16,
    receiver: &Arc<Receiver>,
) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(receiver));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap_or_else(|e| panic!("bind the receiver: {e}"));
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// The record of a ticket as the API answers it: `<ticket>-<seq>` of each line.
fn record_keys(port: u16, token: &str, ticket: &str) -> BTreeSet<String> {
    let answer = http_get_as(port, &format!("/api/tickets/{ticket}"), token).unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(crate::util::body(&answer)).unwrap_or_default();
    json["record"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["seq"].as_u64())
        .map(|seq| format!("{ticket}-{seq}"))
        .collect()
}

fn change(port: u16, token: &str, ticket: &str, body: &str) -> u64 {
    let (status, answer) = http_post(port, &format!("/api/tickets/{ticket}/state"), body, token)
        .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(status, 200, "{answer}");
    let json: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    json["seq"].as_u64().unwrap_or_else(|| panic!("{answer}"))
}

#[test]
fn webhooks_get_every_change_once_while_up_and_all_after_an_outage_and_a_kill_9() {
    let id = unique("delivery");
    let topics = Topics::named(&id);
    let (metrics_port, gateway_port, hook_port) = (free_port(), free_port(), free_port());
    let rules = "allowed_lateness_secs = 1\nmax_delay_secs = 60\nadvance_every_ms = 100\n";
    let (dir, config) = write_config(&id, metrics_port, gateway_port, &topics, rules);
    let key_file = dir.join("coal-shaliang.key");
    std::fs::write(&key_file, SECRET).unwrap_or_else(|e| panic!("{e}"));
    let delivery = format!(
        r#"
[delivery]
retry_initial_ms = 200
retry_max_secs = 2
timeout_secs = 5
[[delivery.webhooks]]
name = "shaliang-coal"
url = "http://127.0.0.1:{hook_port}/hook"
department = "coal"
town = "shaliang"
key_id = "key-2026-12"
secret_file = "coal-shaliang.key"
[[delivery.webhooks]]
name = "housing"
url = "http://127.0.0.1:9/never"
department = "housing"
key_id = "k"
secret_file = "coal-shaliang.key"
"#
    );
    let mut text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    text.push_str(&delivery);
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let rt = runtime();
    topics.create(&rt, 1);
    let receiver = Arc::new(Receiver::default());
    let mut serving = serve(&rt, hook_port, &receiver);

    let team = argus_user(&config, "sun", "team", "shaliang", "coal");
    let argus = start_argus(&config, metrics_port);
    // Methane over the alarm level at a Shaliang mine: an alert, and a ticket for its team.
    let methane = methane_alarm();
    produce(&rt, &topics.readings, &methane);
    let ticket = dispatched_ticket(metrics_port, &team);
    change(metrics_port, &team, &ticket, r#"{"to": "accepted"}"#);

    // Up: every line of the record arrives once, signed, with the key id.
    let all_arrived = |receiver: &Receiver| {
        let record = record_keys(metrics_port, &team, &ticket);
        let got: BTreeSet<String> = receiver.keys().into_keys().collect();
        !record.is_empty() && record == got
    };
    wait_for("the record delivered", Duration::from_secs(30), || {
        all_arrived(&receiver)
    });
    std::thread::sleep(Duration::from_secs(1));
    let once = receiver.keys();
    assert!(
        once.values().all(|n| *n == 1),
        "while up, once each: {once:?}"
    );
    assert!(
        receiver
            .got()
            .iter()
            .all(|g| g.signed && g.key_id == "key-2026-12"),
        "{:?}",
        receiver.got()
    );
    let while_up = once.len();
    assert!(while_up >= 3, "created, dispatched, accepted: {once:?}");

    // Down for 30 s (new connections refused, kept ones answered 503): two changes wait.
    receiver.down.store(true, Ordering::SeqCst);
    serving.abort();
    change(metrics_port, &team, &ticket, r#"{"to": "inspecting"}"#);
    change(
        metrics_port,
        &team,
        &ticket,
        r#"{"to": "rectification_ordered", "note": "fix the fan"}"#,
    );
    std::thread::sleep(Duration::from_secs(30));
    assert_eq!(receiver.keys().len(), while_up, "nothing while down");
    receiver.down.store(false, Ordering::SeqCst);
    serving = serve(&rt, hook_port, &receiver);
    wait_for(
        "the changes made while down",
        Duration::from_secs(30),
        || all_arrived(&receiver),
    );

    // A kill -9 while the receiver holds a delivery: after the restart it comes again, with
    // the same idempotency key.
    receiver.delay_ms.store(3_000, Ordering::SeqCst);
    let before = receiver.got().len();
    let closed = change(
        metrics_port,
        &team,
        &ticket,
        r#"{"to": "closed", "outcome": "violation_confirmed", "note": "fined"}"#,
    );
    wait_for("the delivery under way", Duration::from_secs(30), || {
        receiver.got().len() > before
    });
    drop(argus); // SIGKILL while the receiver has not answered
    receiver.delay_ms.store(0, Ordering::SeqCst);
    let argus = start_argus(&config, metrics_port);
    let closing = format!("{ticket}-{closed}");
    wait_for(
        "the interrupted delivery again",
        Duration::from_secs(30),
        || receiver.keys().get(&closing).copied().unwrap_or(0) >= 2,
    );
    assert!(all_arrived(&receiver));
    let got = receiver.got();
    assert!(got.iter().all(|g| g.signed), "every delivery signed");
    // Repeats only of the interrupted one, each the same change.
    let counts = receiver.keys();
    let repeated: BTreeSet<String> = receiver
        .keys()
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(repeated, BTreeSet::from([closing.clone()]), "{counts:?}");
    let copies: Vec<&serde_json::Value> = got
        .iter()
        .filter(|g| g.key == closing)
        .map(|g| &g.change)
        .collect();
    assert!(copies.windows(2).all(|w| w[0] == w[1]), "{copies:?}");
    assert_eq!(copies[0]["outcome"], "violation_confirmed");

    // The store kept every attempt: the outage's retries, and each delivery as delivered.
    let store = ClickHouseStore::with_database(&settings().clickhouse, &id);
    let attempts = rt
        .block_on(store.attempts_of(&ticket))
        .unwrap_or_else(|e| panic!("{e}"));
    let retried = attempts
        .iter()
        .filter(|a| a.target == "shaliang-coal" && a.outcome == "retry")
        .count();
    assert!(retried >= 2, "{attempts:?}");
    let outbox = rt
        .block_on(store.outbox_of(&ticket))
        .unwrap_or_else(|e| panic!("{e}"));
    let hook_rows: Vec<_> = outbox
        .iter()
        .filter(|o| o.target == "shaliang-coal")
        .collect();
    assert!(
        hook_rows.iter().all(|o| o.state == "delivered"),
        "{hook_rows:?}"
    );
    assert!(
        outbox.iter().all(|o| o.target != "housing"),
        "another department's webhook gets nothing"
    );

    // The tickets topic: every change, keyed by the ticket.
    let record = record_keys(metrics_port, &team, &ticket);
    let _in_runtime = rt.enter();
    let consumer: StreamConsumer = kafka_client()
        .set("group.id", format!("{id}-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    consumer
        .subscribe(&[topics.tickets.as_str()])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut published = BTreeSet::new();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while published != record && tokio::time::Instant::now() < deadline {
            let Ok(Ok(message)) =
                tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await
            else {
                continue;
            };
            assert_eq!(message.key(), Some(ticket.as_bytes()));
            let json: serde_json::Value =
                serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or_default();
            if let Some(key) = json["idempotency_key"].as_str() {
                published.insert(key.to_owned());
            }
        }
    });
    assert_eq!(published, record, "the tickets topic");

    stop_argus(argus);
    serving.abort();
    topics.delete(&rt);
    let _ = rt.block_on(store.query(&format!("DROP DATABASE {id}")).execute());
    let _ = std::fs::remove_dir_all(dir);
}

/// On the embedded store, in process: the deliveries are written with the changes (one SQLite
/// transaction) and each line of a new ticket's record reaches its team's webhook once, signed.
#[test]
fn the_embedded_store_delivers_a_new_tickets_record_once_each() {
    use argus_model::Timestamp;
    use argus_service::delivery::Targets;
    use argus_service::harness::{first_instance, ApiHarness};
    use argus_store::{Backend, SqliteStore};

    use crate::authorization::county;

    let dir = std::env::temp_dir().join(unique("delivery_sqlite"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let key = dir.join("hook.key");
    std::fs::write(&key, SECRET).unwrap_or_else(|e| panic!("{e}"));
    let (registry, rules, policy) = county();
    let instance = first_instance(&rules, &registry, "methane-alarm")
        .unwrap_or_else(|| panic!("no methane alarm"));
    let town = registry
        .enterprise(&instance.enterprise_id)
        .map(|e| e.town.clone())
        .unwrap_or_default();
    let rt = runtime();
    let port = free_port();
    let receiver = Arc::new(Receiver::default());
    let serving = serve(&rt, port, &receiver);
    let settings = argus_config::DeliverySettings {
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        give_up_after: Duration::from_secs(3_600),
        timeout: Duration::from_secs(5),
        webhooks: vec![argus_config::WebhookSettings {
            name: "team".to_owned(),
            url: format!("http://127.0.0.1:{port}/hook"),
            department: "coal".to_owned(),
            town: Some(town),
            key_id: "k1".to_owned(),
            secret_file: key,
        }],
    };
    let targets = Targets::load(&settings, None, &registry).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let store = SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
        let telemetry =
            argus_telemetry::Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
        let harness = ApiHarness::start_delivering(
            Backend::Sqlite(store),
            registry,
            policy,
            telemetry,
            argus_api::AuthSettings::default(),
            targets,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let alert = harness
            .fire(&instance, 0x00de_11ee_0000_0001, Timestamp(now_ms()), 1.4)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let tickets = harness
            .store
            .tickets_with_alert(&alert)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ticket = tickets
            .first()
            .map(|t| t.ticket_id.clone())
            .unwrap_or_else(|| panic!("no ticket"));
        let record: BTreeSet<String> = harness
            .store
            .ticket_events(&ticket)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|l| format!("{ticket}-{}", l.seq))
            .collect();
        for _ in 0..100 {
            if receiver.keys().len() >= record.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let keys = receiver.keys();
        assert_eq!(keys.keys().cloned().collect::<BTreeSet<_>>(), record);
        assert!(keys.values().all(|n| *n == 1), "{keys:?}");
        assert!(receiver.got().iter().all(|g| g.signed && g.key_id == "k1"));
        let outbox = harness
            .store
            .outbox_of(&ticket)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outbox.len(), record.len());
        assert!(outbox
            .iter()
            .all(|o| o.state == "delivered" && o.attempts == 1));
    });
    serving.abort();
    let _ = std::fs::remove_dir_all(dir);
}
