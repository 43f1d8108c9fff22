//! Helpers shared by the integration tests: settings of the local stack, unique names, ports,
//! the metrics endpoint, and configurations for an `argus run` of a test's own.
#![allow(dead_code)] // each test binary uses some

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use argus_config::Settings;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a file under the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    root().join(relative)
}

/// The shipped configuration, as Argus would load it.
pub fn settings() -> Settings {
    let path = repo_path("config/argus.toml");
    Settings::load(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// A name unique to this test run and call, safe for topics, tables and client ids.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A small multi-threaded tokio runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

/// A unique MQTT client id: at most 23 characters, as MQTT 3.1.1 brokers require.
pub fn client_id(prefix: &str) -> String {
    unique(prefix).chars().take(23).collect()
}

/// The clock, UTC ms.
pub fn now_ms() -> i64 {
    argus_model::Timestamp::from_system_time(std::time::SystemTime::now()).as_millis()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// GET a path of the metrics endpoint; `None` until it answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    http_request(port, "GET", path, "", &[])
}

/// GET a path of the API with a credential: a bearer token (see [`argus_user`]), or a session
/// cookie `argus_session=...` (see [`http_login`]). The whole response; `None` until it answers.
pub fn http_get_as(port: u16, path: &str, credential: &str) -> Option<String> {
    let header = if credential.starts_with("argus_session=") {
        ("Cookie", credential.to_owned())
    } else {
        ("Authorization", format!("Bearer {credential}"))
    };
    http_request(port, "GET", path, "", &[(header.0, &header.1)])
}

/// Log in through `POST /api/login`: the session cookie (`argus_session=...`), if the login
/// was accepted.
pub fn http_login(port: u16, name: &str, password: &str) -> Option<String> {
    let body = serde_json::json!({ "name": name, "password": password }).to_string();
    let response = http_request(port, "POST", "/api/login", &body, &[])?;
    response
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .filter(|c| c.starts_with("argus_session=") && c.len() > "argus_session=".len())
        .map(str::to_owned)
}

/// POST a JSON body to a path of Argus's HTTP API as the holder of a bearer token: the status
/// code and the body.
pub fn http_post(port: u16, path: &str, body: &str, token: &str) -> Option<(u16, String)> {
    http_post_keyed(port, path, body, None, token)
}

/// [`http_post`] with an `Idempotency-Key`, when given.
pub fn http_post_keyed(
    port: u16,
    path: &str,
    body: &str,
    key: Option<&str>,
    token: &str,
) -> Option<(u16, String)> {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    let response = http_request(port, "POST", path, body, &headers)?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}

/// One HTTP/1.1 request on a new connection: the whole response.
fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let length = if method == "GET" {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}{length}Connection: close\r\n\r\n{body}"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Create a user of `role` in the store `config` names (`argus user add`) and give it an API
/// token (`argus user token`): the token.
pub fn argus_user(
    config: &std::path::Path,
    name: &str,
    role: &str,
    town: &str,
    department: &str,
) -> String {
    let argus = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_argus"))
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("argus {args:?}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "argus {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let display = format!("{name} display");
    argus(&[
        "user",
        "add",
        name,
        "--display-name",
        &display,
        "--role",
        role,
        "--town",
        town,
        "--department",
        department,
    ]);
    let out = argus(&["user", "token", name, "--token-name", "tests"]);
    out.lines()
        .last()
        .filter(|l| l.starts_with("argus_"))
        .unwrap_or_else(|| panic!("no token in {out:?}"))
        .to_owned()
}

impl Topics {
    /// The topics of test `id`: `<id>.readings`, `.hj212`, `.events`, `.dlq`, `.tickets`.
    pub fn named(id: &str) -> Self {
        Self {
            readings: format!("{id}.readings"),
            hj212: format!("{id}.hj212"),
            events: format!("{id}.events"),
            dlq: format!("{id}.dlq"),
            tickets: format!("{id}.tickets"),
        }
    }

    /// All five.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.readings,
            &self.hj212,
            &self.events,
            &self.dlq,
            &self.tickets,
        ]
    }

    /// Create them on the local Kafka, `partitions` each.
    pub fn create(&self, rt: &tokio::runtime::Runtime, partitions: i32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &settings().kafka.bootstrap_servers)
            .create()
            .unwrap_or_else(|e| panic!("{e}"));
        let options =
            AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(10)));
        let new: Vec<NewTopic> = self
            .all()
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
            .collect();
        let created = rt
            .block_on(admin.create_topics(&new, &options))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(created.iter().all(Result::is_ok), "{created:?}");
    }

    /// Delete them (best effort, at the end of a test).
    pub fn delete(&self, rt: &tokio::runtime::Runtime) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        let admin: Result<AdminClient<DefaultClientContext>, _> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &settings().kafka.bootstrap_servers)
            .create();
        if let Ok(admin) = admin {
            let _ = rt.block_on(admin.delete_topics(&self.all(), &AdminOptions::new()));
        }
    }
}

/// Write the config of test `id` (see [`argus_config`]) into a fresh folder of its own; returns
/// the folder and the file.
pub fn write_config(
    id: &str,
    metrics_port: u16,
    gateway_port: u16,
    topics: &Topics,
    rules: &str,
) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(id);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("argus.toml");
    let text = argus_config(
        id,
        metrics_port,
        gateway_port,
        &format!("argus-e2e/{id}"),
        topics,
        rules,
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

/// The Kafka topics of one test's Argus.
pub struct Topics {
    /// Readings topic.
    pub readings: String,
    /// HJ 212 topic.
    pub hj212: String,
    /// Events topic.
    pub events: String,
    /// Dead-letter topic.
    pub dlq: String,
    /// Ticket changes.
    pub tickets: String,
}

/// A config for an Argus of its own: its own ports, MQTT topic prefix, Kafka group and topics,
/// the shipped registry and rules; `extra` is appended (a `[rules]` section, say).
pub fn argus_config(
    id: &str,
    metrics_port: u16,
    gateway_port: u16,
    mqtt_prefix: &str,
    topics: &Topics,
    extra: &str,
) -> String {
    let s = settings();
    let credentials = s
        .mqtt
        .credentials
        .clone()
        .unwrap_or_else(|| panic!("no mqtt credentials"));
    format!(
        r#"
[registry]
path = {registry:?}
[metrics]
listen_addr = "127.0.0.1:{metrics_port}"
[mqtt]
host = "{host}"
port = {port}
client_id = "{client}"
username = "{user}"
password = "{password}"
readings_topic = "{mqtt_prefix}/readings/+/+"
hj212_topic = "{mqtt_prefix}/hj212/+"
events_topic = "{mqtt_prefix}/events/+"
shared_group = ""
[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{id}"
[kafka.topics]
readings = "{readings}"
hj212 = "{hj212}"
events = "{events}"
dlq = "{dlq}"
tickets = "{tickets_topic}"
[hj212]
listen_addr = "127.0.0.1:{gateway_port}"
[store]
backend = "clickhouse"
[clickhouse]
url = "{clickhouse_url}"
database = "{id}"
writer_user = "{writer_user}"
writer_password = "{writer_password}"
batch_max_age_ms = 100
[tickets]
path = {tickets:?}
[rules]
path = {rules:?}
{extra}
"#,
        registry = repo_path("config/registry.toml").display().to_string(),
        rules = repo_path("config/rules.toml").display().to_string(),
        tickets = repo_path("config/tickets.toml").display().to_string(),
        host = s.mqtt.host,
        port = s.mqtt.port,
        client = client_id("e2e"),
        user = credentials.username,
        password = credentials.password,
        bootstrap = s.kafka.bootstrap_servers,
        clickhouse_url = s.clickhouse.url,
        writer_user = s.clickhouse.writer.username,
        writer_password = s.clickhouse.writer.password,
        readings = topics.readings,
        hj212 = topics.hj212,
        events = topics.events,
        dlq = topics.dlq,
        tickets_topic = topics.tickets,
    )
}

/// A running `argus` process, killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of one sample of the metrics text, 0 when absent.
pub fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Poll until `f` holds or `limit` passes.
pub fn wait_for(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The body of an HTTP response read by [`http_get`].
pub fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Write a line to the test's real stderr, past libtest's capture: what a test reports even
/// when it passes (a results table).
pub fn report(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Leave nothing of a test behind: its Kafka topics, its ClickHouse database (`id`), its folder.
pub fn clean_up(
    rt: &tokio::runtime::Runtime,
    topics: &Topics,
    store: &argus_store::ClickHouseStore,
    id: &str,
    dir: &Path,
) {
    topics.delete(rt);
    rt.block_on(async {
        let _ = store.query(&format!("DROP DATABASE {id}")).execute().await;
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// Run `deploy/local/stack ARGS` (stop or start one service, say), which must succeed.
pub fn stack(args: &[&str]) {
    let status = std::process::Command::new(repo_path("deploy/local/stack"))
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("deploy/local/stack {args:?}: {e}"));
    assert!(status.success(), "deploy/local/stack {args:?} failed");
}
