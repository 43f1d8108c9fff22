//! `argus demo`: Argus you can watch working, on nothing but itself. The embedded MQTT broker,
//! the HJ 212 gateway, the embedded store in a state folder, detection and tickets, the HTTP
//! API, and the county simulator feeding it over MQTT and TCP: the last day at 60 times the
//! clock, then in real time. Prints where to look and a one-line summary every few seconds;
//! Ctrl-C stops everything; a second run resumes from the state folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use argus_config::Settings;
use argus_model::Timestamp;
use argus_store::{SqliteStore, Store};
use tokio::sync::watch;

use crate::cli::DemoArgs;

/// The demo's configuration, built in (config/demo.toml).
const CONFIG: &str = include_str!("../../config/demo.toml");
/// The example county, its rules and ticket policy, built in.
const FILES: &[(&str, &str)] = &[
    ("registry.toml", include_str!("../../config/registry.toml")),
    ("rules.toml", include_str!("../../config/rules.toml")),
    ("tickets.toml", include_str!("../../config/tickets.toml")),
];
/// How often the summary line is printed.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// The demo's progress kept in the state folder, so a second run resumes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Resume {
    /// The simulator's seed.
    seed: u64,
    /// Where the simulated feed has got to, epoch ms.
    reached_ms: i64,
    /// Where it started (the first run's start), epoch ms: a resumed feed is generated from
    /// there, so that its world goes on (absent in files of earlier releases).
    #[serde(default)]
    started_ms: Option<i64>,
}

/// Write the demo's files into the state folder (the county's files only if missing, so edits
/// survive) and load its configuration.
fn prepare(options: &DemoArgs) -> anyhow::Result<Settings> {
    if options.fresh && options.state.exists() {
        std::fs::remove_dir_all(&options.state)
            .with_context(|| format!("cannot remove {}", options.state.display()))?;
    }
    std::fs::create_dir_all(&options.state)
        .with_context(|| format!("cannot create the state folder {}", options.state.display()))?;
    for (name, text) in FILES {
        let path = options.state.join(name);
        if !path.exists() {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let config = CONFIG
        .replace("127.0.0.1:9898", &options.http.to_string())
        .replace("127.0.0.1:9212", &options.hj212.to_string())
        .replace("port = 1884", &format!("port = {}", options.mqtt.port()))
        .replace(
            "host = \"127.0.0.1\"",
            &format!("host = \"{}\"", options.mqtt.ip()),
        );
    let path = options.state.join("argus.toml");
    std::fs::write(&path, config).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Settings::load(&path)?)
}

fn resume_path(state: &Path) -> PathBuf {
    state.join("demo.json")
}

fn read_resume(state: &Path, seed: u64) -> Option<Resume> {
    let text = std::fs::read_to_string(resume_path(state)).ok()?;
    let resume: Resume = serde_json::from_str(&text).ok()?;
    (resume.seed == seed).then_some(resume)
}

fn write_resume(state: &Path, resume: &Resume) -> anyhow::Result<()> {
    let text = serde_json::to_string(resume)?;
    let path = resume_path(state);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Run the demo until Ctrl-C.
pub fn run(options: DemoArgs) -> anyhow::Result<()> {
    let settings = prepare(&options)?;
    crate::logging::init(&settings.log)?;
    let state = &options.state;
    let registry = crate::load_registry(&settings.registry_path)?;
    let rules_text = std::fs::read_to_string(&settings.rules.path)
        .with_context(|| format!("cannot read rules {}", settings.rules.path.display()))?;
    let rules = crate::load_rules(&settings.rules.path, &registry)?;
    let policy = crate::load_ticket_policy(&settings.tickets.path, &registry)?;
    let store_path = state.join("argus.sqlite");
    let truth_path = state.join("truth.jsonl");
    let now = Timestamp::from_system_time(SystemTime::now());
    // On a whole hour, so the first regulatory hour is whole too.
    let day_back = (now.as_millis() - i64::from(options.hours_back) * 3_600_000)
        .div_euclid(3_600_000)
        * 3_600_000;
    // A resumed feed starts where the first run did and skips what that sent.
    let resume = read_resume(state, options.seed).filter(|r| r.reached_ms > day_back);
    let resumed = resume.is_some();
    let (start, resume_after) = match &resume {
        Some(r) => match r.started_ms {
            Some(started) => (started, Some(Timestamp(r.reached_ms))),
            None => (r.reached_ms, None),
        },
        None => (day_back, None),
    };

    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let accounts = demo_accounts(&store_path, &registry).await?;
        let listeners = argus_service::Listeners::bind(&settings).await?;
        // Ctrl-C stops the simulator first, and Argus once what the simulator handed over is
        // delivered (the truth counts it as sent): Argus stopping meanwhile would drop it.
        let (stop, stopping) = watch::channel(false);
        let (stop_service, service_stopping) = watch::channel(false);
        let parts = argus_service::Parts {
            settings: settings.clone(),
            registry: registry.clone(),
            rules: rules.clone(),
            policy,
            cluster: argus_service::Cluster {
                workers: usize::from(options.workers),
                processes: 1,
                process: 0,
                hostfile: None,
            },
        };
        let service_stop = wait_for(service_stopping);
        let http_addr = listeners
            .http
            .local_addr()
            .context("cannot read the api's address")?;
        let service = tokio::spawn(argus_service::run(parts, listeners, service_stop));
        // The simulator starts once Argus has subscribed to its topics: what the broker
        // receives before that reaches nobody.
        subscribed(http_addr, &service).await?;
        let summary = registry.summary();
        let simulation = crate::simulate::Simulation {
            registry: Arc::new(registry),
            rules: Arc::new(rules),
            rules_text,
            seed: options.seed,
            start: Timestamp(start),
            resume_after,
            end: None,
            pacing: argus_sim::send::Pacing::CatchUp {
                speed: options.speed,
            },
            hj212: Some(options.hj212),
            mqtt: Some(crate::simulate::MqttTarget {
                addr: options.mqtt,
                credentials: settings.mqtt.credentials.clone(),
                topic_prefix: argus_sim::send::DEFAULT_TOPIC_PREFIX.to_owned(),
            }),
            kafka: None,
            truth: truth_path.clone(),
            append_truth: resumed,
            progress: false,
            logger_averages: false,
        };
        let simulator = tokio::spawn(crate::simulate::run(simulation, wait_for(stopping.clone())));

        let base = format!("http://{}", settings.metrics.listen_addr);
        let say = |line: String| eprintln!("{line}");
        say(format!(
            "argus demo: the example county ({}), simulated from {} at {}x the clock{}",
            summary,
            resume_after.unwrap_or(Timestamp(start)).to_rfc3339(),
            options.speed,
            if resumed { " (resumed)" } else { "" }
        ));
        say(format!("  console       {base}/console/  (log in as monitor, or team-shaliang-coal)"));
        say(format!("  alerts        {base}/api/alerts"));
        say(format!("  tickets       {base}/api/tickets"));
        say(format!("  metrics       {base}/metrics"));
        say(format!("  store         {}", store_path.display()));
        say(format!("  ground truth  {}", truth_path.display()));
        say(format!(
            "  check it      argus --config {} verify --truth {}",
            state.join("argus.toml").display(),
            truth_path.display()
        ));
        say(format!(
            "  feeds         HJ 212 over TCP to {}, MQTT to {} (user {})",
            options.hj212,
            options.mqtt,
            settings
                .mqtt
                .credentials
                .as_ref()
                .map_or("-", |c| c.username.as_str())
        ));
        say(format!(
            "  accounts      password {DEMO_PASSWORD:?} (demo only): {}",
            accounts.join(", ")
        ));
        say(format!(
            "  log in        curl -c cookies -d '{{\"name\":\"monitor\",\"password\":\"{DEMO_PASSWORD}\"}}' {base}/api/login"
        ));
        say("  Ctrl-C stops; run again to resume, --fresh to start over".to_owned());

        let summary = summarize(store_path.clone(), wait_for(stopping.clone()));
        let summary = tokio::spawn(summary);
        tokio::select! {
            () = crate::signal::shutdown() => {}
            () = wait_for(stopping.clone()) => {}
        }
        let _ = stop.send(true);
        let simulated = simulator.await;
        let _ = stop_service.send(true);
        let reached = simulated
            .context("the simulator panicked")?
            .context("the simulator failed")?;
        if let Some(reached) = reached {
            let resume = Resume {
                seed: options.seed,
                reached_ms: reached.as_millis(),
                started_ms: Some(start),
            };
            write_resume(state, &resume)?;
        }
        service.await.context("the service panicked")??;
        summary.abort();
        eprintln!(
            "argus demo stopped; run it again to resume from {}",
            state.display()
        );
        Ok(())
    })
}

/// The password of every account the demo creates: a demo on loopback, never a deployment.
pub const DEMO_PASSWORD: &str = "argus-demo-2026";

/// The demo's accounts, created in its store when missing: an admin, a monitor, a dispatcher,
/// the head of each department (`head-<department>`) and a member of each team
/// (`team-<town>-<department>`). Returns what to print about them.
async fn demo_accounts(
    store_path: &Path,
    registry: &argus_model::Registry,
) -> anyhow::Result<Vec<String>> {
    use argus_api::accounts::{add_user, NewUser};
    use argus_api::Accounts;
    use argus_model::UserRole;
    let store = SqliteStore::open(store_path).context("cannot open the demo's store")?;
    store
        .prepare()
        .await
        .context("cannot prepare the demo's store")?;
    let accounts = argus_service::StoreAccounts(argus_store::Backend::Sqlite(store));
    let user = |name: String, display_name: &str, role, town: &str, department: &str| NewUser {
        name,
        display_name: display_name.to_owned(),
        role,
        town: town.to_owned(),
        department: department.to_owned(),
        password: DEMO_PASSWORD.to_owned(),
    };
    let mut wanted = vec![
        user("admin".into(), "管理员", UserRole::Admin, "", ""),
        user("monitor".into(), "监控员 刘", UserRole::Monitor, "", ""),
        user(
            "dispatcher".into(),
            "调度员 陈",
            UserRole::Dispatcher,
            "",
            "",
        ),
    ];
    for d in registry.departments() {
        wanted.push(user(
            format!("head-{}", d.id),
            &d.head,
            UserRole::Head,
            "",
            &d.id,
        ));
    }
    for t in registry.teams() {
        let name = format!("team-{}-{}", t.town, t.department);
        wanted.push(user(name, &t.name, UserRole::Team, &t.town, &t.department));
    }
    let now = Timestamp::from_system_time(SystemTime::now());
    let (heads, teams) = (registry.departments().count(), registry.teams().count());
    let example_team = wanted.last().map(|u| u.name.clone()).unwrap_or_default();
    for new in wanted {
        if accounts.user(&new.name).await?.is_none() {
            add_user(&accounts, registry, new, now).await?;
        }
    }
    Ok(vec![
        "admin".to_owned(),
        "monitor".to_owned(),
        "dispatcher".to_owned(),
        format!("head-<department> ({heads})"),
        format!("team-<town>-<department> ({teams}, e.g. {example_team})"),
    ])
}

/// How long the service may take to subscribe to its MQTT topics.
const SUBSCRIBED_WITHIN: Duration = Duration::from_secs(30);

/// Wait until the service's MQTT source has its three topic filters acknowledged (its own
/// metrics say so), or fail if the service stops first.
async fn subscribed(
    http: SocketAddr,
    service: &tokio::task::JoinHandle<Result<(), argus_service::ServiceError>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + SUBSCRIBED_WITHIN;
    let series = "argus_mqtt_connections_total{event=\"subscribed\"}";
    loop {
        if service.is_finished() {
            anyhow::bail!("argus stopped while starting (see the log above)");
        }
        let subscriptions = metrics(http).await.and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        });
        if subscriptions.is_some_and(|n| n >= 3.0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "argus has not subscribed to its mqtt topics after {} s",
                SUBSCRIBED_WITHIN.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of `GET /metrics` on `addr`, if it answers.
async fn metrics(addr: SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// Resolves once `stop` is set.
async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Print one line every few seconds: readings per second, open alerts by kind, tickets by
/// state, read from the store itself.
async fn summarize(path: PathBuf, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let started = Instant::now();
    let mut store = None;
    let mut last: Option<(Instant, u64)> = None;
    let mut every = tokio::time::interval(SUMMARY_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = every.tick() => {}
        }
        if store.is_none() {
            store = SqliteStore::open(&path).ok();
        }
        let Some(s) = &store else { continue };
        let (Ok(counts), Ok(alerts), Ok(tickets)) = (
            s.counts().await,
            s.recent_alerts(argus_api::MAX_PAGE).await,
            s.recent_tickets(argus_api::MAX_PAGE).await,
        ) else {
            continue;
        };
        let rate = last.map_or(0.0, |(at, n)| {
            counts.readings.saturating_sub(n) as f64 / at.elapsed().as_secs_f64().max(0.001)
        });
        last = Some((Instant::now(), counts.readings));
        let mut open = std::collections::BTreeMap::<&str, usize>::new();
        for a in alerts.iter().filter(|a| a.status == "firing") {
            *open.entry(a.kind.as_str()).or_default() += 1;
        }
        let mut states = std::collections::BTreeMap::<&str, usize>::new();
        for t in &tickets {
            *states.entry(t.state.as_str()).or_default() += 1;
        }
        let list = |m: &std::collections::BTreeMap<&str, usize>| {
            if m.is_empty() {
                "none".to_owned()
            } else {
                m.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        eprintln!(
            "[{:>5} s] {:>7.0} readings/s, {} stored | alerts {} (open: {}) | tickets {} ({})",
            started.elapsed().as_secs(),
            rate,
            counts.readings,
            counts.alerts,
            list(&open),
            counts.tickets,
            list(&states)
        );
    }
}
