//! The first thing a new user meets, and the proof of detection quality: `argus demo` from a
//! fresh state folder shows alerts and routed tickets within 90 s and passes `argus verify`
//! (then resumes); and the simulator's default scenario, sent through the real Mosquitto and
//! the HJ 212 gateway into a running `argus run`, gives 100 % precision and recall for every
//! rule kind.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    body, free_port, http_get, http_get_as, http_login, repo_path, report, settings, unique,
    wait_for, Running,
};

const ARGUS: &str = env!("CARGO_BIN_EXE_argus");

/// Stop a running Argus with SIGTERM and expect a clean exit.
fn stop(mut argus: Running) {
    let pid = argus.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = argus.0.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "argus exited with {status:?}");
}

/// `argus --config CONFIG verify --truth TRUTH`, its output reported.
fn verify(config: &Path, truth: &Path) -> Output {
    let out = Command::new(ARGUS)
        .args([
            "--config",
            &config.display().to_string(),
            "verify",
            "--truth",
        ])
        .arg(truth)
        .output()
        .unwrap_or_else(|e| panic!("argus verify: {e}"));
    report(&String::from_utf8_lossy(&out.stdout));
    report(&String::from_utf8_lossy(&out.stderr));
    out
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn start_demo(state: &Path, http: u16, mqtt: u16, hj212: u16, fresh: bool) -> Running {
    let mut command = Command::new(ARGUS);
    command
        .args(["demo", "--state"])
        .arg(state)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--mqtt", &format!("127.0.0.1:{mqtt}")])
        .args(["--hj212", &format!("127.0.0.1:{hj212}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if fresh {
        command.arg("--fresh");
    }
    Running(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn argus demo: {e}")),
    )
}

#[test]
fn the_demo_shows_alerts_of_five_kinds_and_a_routed_ticket_within_90_s_and_passes_verify() {
    let state = std::env::temp_dir().join(unique("argus-demo"));
    let (http, mqtt, hj212) = (free_port(), free_port(), free_port());
    let started = Instant::now();
    let demo = start_demo(&state, http, mqtt, hj212, true);

    // The demo prints its accounts; staff log in as its monitor.
    let mut session = None;
    wait_for(
        "the demo's monitor to log in",
        Duration::from_secs(30),
        || {
            session = http_login(http, "monitor", "argus-demo-2026");
            session.is_some()
        },
    );
    let session = session.unwrap_or_default();
    let mut kinds = BTreeSet::new();
    let mut routed: Vec<serde_json::Value> = Vec::new();
    let mut first_alert = None;
    wait_for(
        "alerts of 5 kinds and a routed ticket",
        Duration::from_secs(90),
        || {
            let Some(alerts) = http_get_as(http, "/api/alerts?limit=1000", &session) else {
                return false;
            };
            let alerts = json(body(&alerts));
            kinds = alerts["alerts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|a| a["kind"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if !kinds.is_empty() && first_alert.is_none() {
                first_alert = Some(started.elapsed());
            }
            let tickets = http_get_as(http, "/api/tickets", &session).map(|t| json(body(&t)));
            routed = tickets.map_or_else(Vec::new, |t| {
                t["tickets"].as_array().map_or_else(Vec::new, |t| {
                    t.iter()
                        .filter(|t| t["team"].as_str().is_some_and(|team| !team.is_empty()))
                        .cloned()
                        .collect()
                })
            });
            kinds.len() >= 5 && !routed.is_empty()
        },
    );
    // The team a ticket is routed to logs in and sees its own tickets only.
    let (town, department) = (&routed[0]["town"], &routed[0]["department"]);
    let member = format!(
        "team-{}-{}",
        town.as_str().unwrap_or_default(),
        department.as_str().unwrap_or_default()
    );
    let team_session = http_login(http, &member, "argus-demo-2026")
        .unwrap_or_else(|| panic!("{member} cannot log in"));
    let own = json(body(
        &http_get_as(http, "/api/tickets", &team_session).unwrap_or_default(),
    ));
    let own = own["tickets"].as_array().cloned().unwrap_or_default();
    assert!(!own.is_empty(), "{member} sees no ticket");
    assert!(
        own.iter()
            .all(|t| &t["town"] == town && &t["department"] == department),
        "{member} sees another team's tickets: {own:?}"
    );
    let routed = routed.len();
    report(&format!(
        "demo: first alert after {:.1} s; alert kinds {kinds:?} and {routed} routed tickets after {:.1} s",
        first_alert.unwrap_or_default().as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    stop(demo);
    let config = state.join("argus.toml");
    let truth = state.join("truth.jsonl");
    let out = verify(&config, &truth);
    assert!(out.status.success(), "argus verify failed after the demo");

    // A second run resumes from the state folder: the store and the truth go on.
    let resumed = start_demo(&state, http, mqtt, hj212, false);
    wait_for("the resumed demo to serve", Duration::from_secs(30), || {
        http_get(http, "/api/alerts").is_some()
    });
    std::thread::sleep(Duration::from_secs(10));
    stop(resumed);
    let out = verify(&config, &truth);
    assert!(out.status.success(), "argus verify failed after resuming");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn the_default_scenario_through_mosquitto_and_tcp_is_found_exactly() {
    let s = settings();
    let id = unique("quality");
    let dir = std::env::temp_dir().join(&id);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (http, gateway) = (free_port(), free_port());
    let credentials = s
        .mqtt
        .credentials
        .clone()
        .unwrap_or_else(|| panic!("no mqtt credentials"));
    let prefix = format!("argus-quality/{id}");
    let config = dir.join("argus.toml");
    let text = format!(
        r#"
[registry]
path = {registry:?}
[log]
filter = "warn"
[metrics]
listen_addr = "127.0.0.1:{http}"
[mqtt]
host = "{host}"
port = {port}
client_id = "{client}"
username = "{user}"
password = "{password}"
readings_topic = "{prefix}/readings/+/+"
hj212_topic = "{prefix}/hj212/+"
events_topic = "{prefix}/events/+"
shared_group = ""
max_inflight = 1000
[kafka]
enabled = false
[hj212]
listen_addr = "127.0.0.1:{gateway}"
[store]
backend = "sqlite"
sqlite_path = "argus.sqlite"
[clickhouse]
batch_max_age_ms = 20
[tickets]
path = {tickets:?}
[rules]
path = {rules:?}
allowed_lateness_secs = 120
idle_source_after_secs = 10
max_delay_secs = 259200
advance_every_ms = 100
"#,
        registry = repo_path("config/registry.toml").display().to_string(),
        rules = repo_path("config/rules.toml").display().to_string(),
        tickets = repo_path("config/tickets.toml").display().to_string(),
        host = s.mqtt.host,
        port = s.mqtt.port,
        client = crate::util::client_id("quality"),
        user = credentials.username,
        password = credentials.password,
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let argus = Running(
        Command::new(ARGUS)
            .args(["--config", &config.display().to_string(), "run"])
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn argus: {e}")),
    );
    wait_for("argus to serve", Duration::from_secs(30), || {
        http_get(http, "/healthz").is_some()
    });

    // The default scenario (seed 1, one day), started on the hour a day and two hours ago so
    // that its event times are plausible today, sent as fast as Argus takes it.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0);
    let start = (now_ms - 26 * 3_600_000).div_euclid(3_600_000) * 3_600_000;
    let truth = dir.join("truth.jsonl");
    let started = Instant::now();
    let simulated = Command::new(ARGUS)
        .args(["--config", &config.display().to_string(), "simulate"])
        .args(["--seed", "1", "--hours", "24", "--as-fast"])
        .args(["--start", &argus_model::Timestamp(start).to_rfc3339()])
        .args(["--hj212", &format!("127.0.0.1:{gateway}")])
        .args(["--mqtt", &format!("{}:{}", s.mqtt.host, s.mqtt.port)])
        .args(["--mqtt-user", &credentials.username])
        .args(["--mqtt-password", &credentials.password])
        .args(["--mqtt-topic-prefix", &prefix])
        .arg("--truth")
        .arg(&truth)
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("argus simulate: {e}"));
    let progress = String::from_utf8_lossy(&simulated.stderr);
    report(&format!(
        "quality: simulated a day in {:.0} s\n{}",
        started.elapsed().as_secs_f64(),
        progress
            .lines()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    ));
    assert!(
        simulated.status.success(),
        "argus simulate failed:\n{progress}"
    );

    // Argus judges what the feed's end lets it judge, then stops.
    std::thread::sleep(Duration::from_secs(15));
    stop(argus);
    let out = verify(&config, &truth);
    assert!(out.status.success(), "detection fell short of the truth");
    let table = String::from_utf8_lossy(&out.stdout);
    for kind in argus_sim::RULE_KINDS {
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .unwrap_or_else(|| panic!("no row for {kind}:\n{table}"));
        let due: u64 = row
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(due >= 5, "{kind}: only {due} injected and due:\n{table}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
