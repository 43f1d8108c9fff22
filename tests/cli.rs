//! The `argus` command line: help, config and registry checks, exit codes and messages.

use std::process::{Command, Output};

use crate::util::repo_path;

fn argus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .current_dir(repo_path(""))
        .env_remove("ARGUS_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("running argus {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_the_subcommands() {
    let out = argus(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["run", "config", "registry", "--config"] {
        assert!(help.contains(word), "help lacks {word}:\n{help}");
    }
}

#[test]
fn shipped_config_and_registry_check_clean() {
    let out = argus(&["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("argus-local-writer"),
        "secrets must be redacted"
    );

    let out = argus(&["registry", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Hexi Banner"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_registry_with_a_negative_limit_fails_naming_file_line_and_field() {
    let shipped = std::fs::read_to_string(repo_path("config/registry.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    // Break the first hourly SO2 limit of the shipped registry.
    let needle = "metric = \"a21026\", basis = \"hourly_avg\", max = ";
    let at = shipped
        .find(needle)
        .unwrap_or_else(|| panic!("no hourly SO2 limit in the shipped registry"));
    let line = shipped[..at].matches('\n').count() + 1;
    let broken = format!(
        "{}{needle}-{}",
        &shipped[..at],
        &shipped[at + needle.len()..]
    );
    let dir = std::env::temp_dir().join(crate::util::unique("argus_cli"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("broken-registry.toml");
    std::fs::write(&file, broken).unwrap_or_else(|e| panic!("{e}"));

    let out = argus(&["registry", "check", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("broken-registry.toml line {line} at ")),
        "{stderr}"
    );
    assert!(stderr.contains(".max: must not be negative"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_refuses_to_start_on_an_invalid_config() {
    let dir = std::env::temp_dir().join(crate::util::unique("argus_cfg"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("argus.toml");
    std::fs::write(
        &file,
        "[registry]\npath = \"registry.toml\"\n[kafka]\nsession_timeout_ms = 1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = argus(&["--config", &file.display().to_string(), "run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("kafka.session_timeout_ms"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_cluster_of_processes_is_refused_the_embedded_store() {
    let dir = std::env::temp_dir().join(crate::util::unique("argus_cluster_sqlite"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("argus.toml");
    std::fs::write(
        &file,
        "[registry]\npath = \"registry.toml\"\n[store]\nbackend = \"sqlite\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = file.display().to_string();
    let out = argus(&[
        "--config",
        &config,
        "run",
        "-n",
        "2",
        "-p",
        "0",
        "--hostfile",
        "h.txt",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "serves one process; a cluster of 2 processes needs [store] backend = \"clickhouse\""
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("argus.sqlite").exists(), "nothing started");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_refuses_impossible_cluster_options_before_starting() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "-n", "2"],
            "a cluster of 2 processes needs --hostfile",
        ),
        (
            &["run", "-n", "2", "-p", "2", "--hostfile", "hosts.txt"],
            "--process 2 is not below --processes 2",
        ),
        (&["run", "-w", "0"], "0 is not in 1..=256"),
    ];
    for (args, expected) in cases {
        let out = argus(args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn run_serves_metrics_and_stops_cleanly_on_sigterm() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port());
    let port = port.unwrap_or_else(|e| panic!("free port: {e}"));
    let dir = std::env::temp_dir().join(crate::util::unique("argus_run"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("argus.toml");
    let registry = repo_path("config/registry.toml");
    let rules = repo_path("config/rules.toml");
    let tickets = repo_path("config/tickets.toml");
    let body = format!(
        "[registry]\npath = {:?}\n[metrics]\nlisten_addr = \"127.0.0.1:{port}\"\n[rules]\npath = {:?}\n[tickets]\npath = {:?}\n[store]\nretention_months = 2\n",
        registry.display(),
        rules.display(),
        tickets.display()
    );
    std::fs::write(&config, body).unwrap_or_else(|e| panic!("{e}"));
    // The embedded store (the default) already holds a reading of January 2025 and one of now:
    // keeping two months, the old one goes at start.
    let seeded = seed_old_and_new_readings(&dir.join("argus.sqlite"));

    let child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["--config", &config.display().to_string(), "run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn argus run: {e}"));

    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
            let mut response = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
            {
                break response;
            }
        }
        assert!(
            Instant::now() < deadline,
            "argus run did not serve /metrics within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("argus_build_info{version="), "{response}");
    let dropped = "argus_store_retention_dropped_months_total";
    let mut metrics = String::new();
    while crate::util::sample(&metrics, dropped) != 1 {
        assert!(
            Instant::now() < deadline,
            "retention did not drop one month within 20 s: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
        metrics = crate::util::http_get(port, "/metrics").unwrap_or_default();
    }
    assert!(
        response.contains("argus_registry_objects{kind=\"enterprises\"}"),
        "{response}"
    );

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .map(|s| s.success());
    assert_eq!(killed.ok(), Some(true));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "argus run exited with {:?}",
        out.status
    );
    assert!(
        text(&out.stderr).contains("shut down cleanly"),
        "{}",
        text(&out.stderr)
    );
    // Without a [store] backend the record is the embedded store beside the config.
    assert!(
        text(&out.stderr).contains("schema ready")
            && text(&out.stderr).contains("old readings dropped"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(seeded(), 1, "the reading of this month is kept");
    let _ = std::fs::remove_dir_all(dir);
}

/// Put a reading of January 2025 and one of now into a fresh embedded store at `path`; returns
/// how to count the readings there afterwards.
fn seed_old_and_new_readings(path: &std::path::Path) -> impl Fn() -> u64 {
    use argus_model::{DataFlag, Metric, MetricCode, Reading, SourceId, Timestamp};
    use argus_store::spool::RowBatch;
    use argus_store::{Labels, SqliteStore, Store};

    let store = SqliteStore::open(path).unwrap_or_else(|e| panic!("{e}"));
    let rt = crate::util::runtime();
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let reading = |t: Timestamp| Reading {
        source: SourceId::from("15010201000101"),
        metric: MetricCode::Known(Metric::So2),
        value: 1.0,
        flag: DataFlag::N,
        event_time: t,
        receive_time: t,
        interval: Default::default(),
        corrected: None,
    };
    let mut batch = RowBatch {
        readings: Labels::default()
            .reading_rows(&[reading(Timestamp(1_736_000_000_000)), reading(now)]),
        ..RowBatch::default()
    };
    rt.block_on(async {
        store.prepare().await.unwrap_or_else(|e| panic!("{e}"));
        store
            .insert_batch(&mut batch)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
    move || {
        rt.block_on(store.counts())
            .unwrap_or_else(|e| panic!("{e}"))
            .readings
    }
}

fn conformance(name: &str) -> std::path::PathBuf {
    repo_path("").join("../shared/conformance/hj212").join(name)
}

#[test]
fn hj212_decode_prints_one_json_object_per_valid_packet() {
    let out = argus(&[
        "hj212",
        "decode",
        &conformance("valid.txt").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 6);
    // The 2005 packet (no QN, no Flag) maps its legacy codes to 2017 ones.
    let legacy = &lines[4];
    assert_eq!(legacy["version"], "2005");
    assert_eq!(legacy["mn"], "LD130133000015");
    let metrics: Vec<&str> = legacy["factors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["metric"].as_str())
        .collect();
    assert_eq!(metrics, ["w00000", "w01018", "w21003"]);
    assert_eq!(lines[1]["data_time"], "2019-10-12T05:37:10.000Z");
}

#[test]
fn hj212_decode_reports_bad_packets_and_exits_1() {
    let input = std::fs::read(conformance("bad-crc.txt")).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["hj212", "decode", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(&input).unwrap_or_else(|e| panic!("{e}"));
        stdin
            .write_all(b"\r\nnot a packet\r\n")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], "error: bad crc: stated 0x4981, computed 0x4980");
    assert!(lines[1].starts_with("error: "), "{stdout}");
}
