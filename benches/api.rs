//! Latency of the HTTP API under load from a second process on loopback: `argus run` (release,
//! the embedded store, shipped settings but its sources off) on a store holding 20,000 alerts
//! and 5,000 dispatched tickets of one department; this process drives it with 100 concurrent
//! clients (each its own HTTP/1.1 keep-alive connection, a head's API token): first listing
//! alerts (`GET /api/alerts?limit=100`, a page of 100) for 20 s, then one ticket change each
//! (`POST /api/tickets/{id}/state` to `accepted`, answered once durable) until every ticket has
//! been accepted. Prints p50, p90, p99 and the maximum latency and the throughput of each.
//! `cargo bench --bench api`; under `cargo test` it runs once small (10 clients, 200 tickets)
//! as a smoke test. Results in benches/RESULTS.md.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_model::{Severity, Ticket, TicketState, Timestamp};
use argus_store::rows::{AlertRow, TicketEventRow, TicketRow};
use argus_store::spool::RowBatch;
use argus_store::{SqliteStore, Store};
use argus_tickets::{EventKind, Role, TicketEvent};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A running `argus`, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Shape {
    clients: usize,
    alerts: usize,
    tickets: usize,
    listing: Duration,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let shape = if full {
        Shape {
            clients: 100,
            alerts: 20_000,
            tickets: 5_000,
            listing: Duration::from_secs(20),
        }
    } else {
        Shape {
            clients: 10,
            alerts: 500,
            tickets: 200,
            listing: Duration::from_secs(2),
        }
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("argus-bench-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let config = dir.join("argus.toml");
    let repo = |p: &str| format!("{:?}", root.join(p).display().to_string());
    let text = format!(
        "[registry]\npath = {}\n[metrics]\nlisten_addr = \"127.0.0.1:{port}\"\n\
         [log]\nfilter = \"warn\"\n[mqtt]\nenabled = false\n[kafka]\nenabled = false\n\
         [hj212]\nenabled = false\n[store]\nbackend = \"sqlite\"\nsqlite_path = \"argus.sqlite\"\n\
         [tickets]\npath = {}\n[rules]\npath = {}\n",
        repo("config/registry.toml"),
        repo("config/tickets.toml"),
        repo("config/rules.toml"),
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));

    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let ids = rt.block_on(populate(&dir.join("argus.sqlite"), &shape));
    let token = head_token(&config);
    let argus = Running(
        Command::new(env!("CARGO_BIN_EXE_argus"))
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn argus: {e}")),
    );
    println!(
        "argus run (embedded store: {} alerts, {} dispatched tickets), {} clients",
        shape.alerts, shape.tickets, shape.clients
    );
    rt.block_on(async {
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&base).await;
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(shape.clients)
            .build(HttpConnector::new());
        let auth = format!("Bearer {token}");

        // Listing alerts, for a fixed time.
        let until = Instant::now() + shape.listing;
        let started = Instant::now();
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..shape.clients {
            let (client, auth, uri) = (
                client.clone(),
                auth.clone(),
                format!("{base}/api/alerts?limit=100"),
            );
            clients.spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    let status = call(&client, "GET", &uri, &auth, None).await;
                    latencies.push(t.elapsed());
                    assert_eq!(status, 200, "list alerts");
                }
                latencies
            });
        }
        let listed = gather(&mut clients).await;
        report("GET /api/alerts?limit=100", &listed, started.elapsed());

        // One change per ticket: dispatched -> accepted, each answered once durable.
        let next = Arc::new(AtomicUsize::new(0));
        let ids = Arc::new(ids);
        let started = Instant::now();
        for _ in 0..shape.clients {
            let (client, auth, base, next, ids) = (
                client.clone(),
                auth.clone(),
                base.clone(),
                Arc::clone(&next),
                Arc::clone(&ids),
            );
            clients.spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else {
                        return latencies;
                    };
                    let uri = format!("{base}/api/tickets/{id}/state");
                    let t = Instant::now();
                    let body = r#"{"to": "accepted", "note": "on our way"}"#;
                    let status = call(&client, "POST", &uri, &auth, Some(body)).await;
                    latencies.push(t.elapsed());
                    assert_eq!(status, 200, "change ticket {id}");
                }
            });
        }
        let changed = gather(&mut clients).await;
        report("POST /api/tickets/{id}/state", &changed, started.elapsed());
    });
    drop(argus);
    let _ = std::fs::remove_dir_all(dir);
}

async fn gather(clients: &mut tokio::task::JoinSet<Vec<Duration>>) -> Vec<Duration> {
    let mut all = Vec::new();
    while let Some(latencies) = clients.join_next().await {
        all.extend(latencies.unwrap_or_else(|e| panic!("{e}")));
    }
    all
}

fn report(what: &str, latencies: &[Duration], elapsed: Duration) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1e3
    };
    println!(
        "{what}: {} requests in {:.1} s = {:.0}/s; latency ms p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        sorted.len(),
        elapsed.as_secs_f64(),
        sorted.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    );
}

async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    uri: &str,
    auth: &str,
    body: Option<&str>,
) -> u16 {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", auth)
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = client
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
    let status = response.status().as_u16();
    // Read the whole answer: the time to the last byte is the latency.
    let _ = response.into_body().collect().await;
    status
}

async fn wait_ready(base: &str) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    for _ in 0..600 {
        let request = axum::http::Request::get(format!("{base}/healthz"))
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|e| panic!("{e}"));
        if client
            .request(request)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("argus did not answer within 60 s");
}

/// A head of the coal department and its API token, made with `argus user`.
fn head_token(config: &std::path::Path) -> String {
    let argus = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_argus"))
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("argus {args:?}: {e}"));
        assert!(out.status.success(), "argus {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    argus(&[
        "user",
        "add",
        "zhao",
        "--display-name",
        "赵处长",
        "--role",
        "head",
        "--department",
        "coal",
    ]);
    let out = argus(&["user", "token", "zhao", "--token-name", "bench"]);
    out.lines()
        .last()
        .filter(|l| l.starts_with("argus_"))
        .unwrap_or_else(|| panic!("no token in {out:?}"))
        .to_owned()
}

/// The store before Argus starts: alerts of a Shaliang mine, and tickets of its coal team,
/// each created and dispatched (the ticket book takes them back at start). The tickets' ids.
async fn populate(path: &std::path::Path, shape: &Shape) -> Vec<String> {
    let store = SqliteStore::open(path).unwrap_or_else(|e| panic!("{e}"));
    store.prepare().await.unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp::from_system_time(std::time::SystemTime::now()).as_millis();
    let alerts: Vec<AlertRow> = (0..shape.alerts)
        .map(|i| {
            let started = now - 86_400_000 + i as i64 * 1_000;
            AlertRow {
                alert_id: format!("{:016x}", 0xa000_0000_0000_0000_u64 + i as u64),
                rule_id: "methane-alarm".to_owned(),
                kind: "threshold".to_owned(),
                severity: "orange".to_owned(),
                status: "firing".to_owned(),
                enterprise_id: "E008".to_owned(),
                town: "shaliang".to_owned(),
                source: "MINE01-CH4-WF1".to_owned(),
                metric: "mine_ch4".to_owned(),
                standard: "AQ1029-2019".to_owned(),
                started_at: u32::try_from(started / 1_000).unwrap_or(0),
                started_ms: started,
                ended_ms: 0,
                value: 1.2,
                peak: 1.4,
                mean: 1.2,
                limit_value: 1.0,
                muted: 0,
                acknowledged_by: String::new(),
                acknowledged_ms: 0,
                version: 2,
            }
        })
        .collect();
    let mut batch = RowBatch {
        alerts,
        ..RowBatch::default()
    };
    let mut ids = Vec::new();
    for i in 0..shape.tickets {
        let id = 0x7000_0000_0000_0000_u64 + i as u64;
        // Each ticket lists one alert, spread over the day: a quarter of the alerts are the
        // department's (20,000 alerts, 5,000 tickets), the others another department's.
        let alert = 0xa000_0000_0000_0000_u64 + (i * shape.alerts / shape.tickets) as u64;
        let created = now - 3_600_000;
        let ticket = Ticket {
            ticket_id: id,
            alert_ids: vec![alert],
            enterprise_id: "E008".to_owned(),
            town: "shaliang".to_owned(),
            department: "coal".to_owned(),
            severity: Severity::Orange,
            state: TicketState::Dispatched,
            created_at: Timestamp(created),
            deadline: Some(Timestamp(now + 86_400_000)),
            outcome: None,
        };
        let event = |seq: u32, kind: EventKind, to: TicketState, role: Role| TicketEvent {
            ticket_id: id,
            seq,
            at: Timestamp(created + i64::from(seq)),
            actor: "argus".to_owned(),
            role,
            kind,
            from: (seq > 1).then_some(TicketState::New),
            to,
            note: String::new(),
            alert_ids: vec![alert],
            outcome: None,
        };
        batch.ticket_events.push(TicketEventRow::new(&event(
            1,
            EventKind::Created,
            TicketState::New,
            Role::System,
        )));
        batch.ticket_events.push(TicketEventRow::new(&event(
            2,
            EventKind::StateChanged,
            TicketState::Dispatched,
            Role::System,
        )));
        batch.tickets.push(TicketRow::new(
            &ticket,
            "Shaliang coal-mine safety supervision station",
            2,
        ));
        ids.push(format!("{id:016x}"));
    }
    store
        .insert_batch(&mut batch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ids
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}
