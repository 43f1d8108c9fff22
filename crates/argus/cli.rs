//! The command line: subcommands and their arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Argus: big-data monitoring hub for environmental and safety enforcement supervision.
///
/// Ingests HJ 212, MQTT and Kafka feeds, checks them for pollution-control and safety violations,
/// stores readings, alerts and enforcement tickets in ClickHouse, and exports Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "argus", version, about, long_about)]
pub struct Cli {
    /// Configuration file (documented TOML; see config/argus.toml).
    #[arg(
        short,
        long,
        global = true,
        env = "ARGUS_CONFIG",
        default_value = "config/argus.toml"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch Argus work: the example county simulated into Argus on this machine alone.
    ///
    /// Starts the embedded MQTT broker, the HJ 212 gateway, the embedded store in the state
    /// folder, detection, tickets and the HTTP API, and the county simulator feeding them over
    /// MQTT and TCP: the last day at --speed times the clock, then in real time. Prints where to
    /// look and a summary every few seconds. Ctrl-C stops; a second run resumes from the state
    /// folder. Ignores --config: it writes its own (config/demo.toml) into the state folder.
    Demo(DemoArgs),
    /// Feed a running Argus with a simulated county over the real protocols, and write the
    /// ground truth of the alerts it must raise.
    ///
    /// The registry is the configuration's (or, with --scale K, K copies of it under new ids:
    /// write the matching registry with --write-registry and give it to Argus). Violations of
    /// every rule kind and look-alikes are injected at known times. Progress on stderr.
    Simulate(SimulateArgs),
    /// Compare the alerts in the store with a simulator's ground truth: per rule kind true
    /// positives, false positives, misses and detection delay. Exit 1 if anything falls short.
    Verify {
        /// The ground-truth file `argus simulate` or `argus demo` wrote.
        #[arg(long)]
        truth: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run Argus: sources, detection and metrics, until Ctrl-C or SIGTERM.
    ///
    /// Detection runs on timely dataflow: `-w N` worker threads; for a cluster of processes give
    /// every process the same `-w`, `-n` and `--hostfile` and its own `-p` (0 to n-1). Kafka
    /// partitions and MQTT shared subscriptions split the input between the processes; every
    /// process must run with the same registry and rules. A cluster stops together.
    Run {
        /// Detection worker threads in this process.
        #[arg(short = 'w', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: u16,
        /// Processes in the detection cluster.
        #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
        processes: u16,
        /// This process's index in the cluster, 0 to processes - 1.
        #[arg(short = 'p', long, default_value_t = 0)]
        process: u16,
        /// The cluster's host file: one `host:port` a line, process 0 first (with -n > 1).
        #[arg(long)]
        hostfile: Option<PathBuf>,
    },
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work with the county registry.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Replay recorded readings through the rules and print the alert transitions, one JSON
    /// object per line (sorted by alert id). Exit 1 on unreadable input.
    ///
    /// Timely arguments follow `--`: `-w THREADS`, and for a cluster of processes
    /// `-n PROCESSES -p INDEX -h HOSTFILE` (one host:port a line); give every process the same
    /// input, each prints the transitions of its own workers.
    Replay {
        /// Canonical JSON readings (config/reading.schema.json), one object or array a line;
        /// `-` reads standard input.
        input: PathBuf,
        /// Arguments for timely (after `--`).
        #[arg(last = true)]
        timely: Vec<String>,
    },
    /// Work with HJ 212 packets.
    Hj212 {
        #[command(subcommand)]
        command: Hj212Command,
    },
    /// Check the legal record: recompute the chain of hashes of every ticket's record (or one
    /// ticket's) and name the first line that does not match. Exit 1 if any does.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the HTTP API's OpenAPI 3.1 document (as served at /api/openapi.json; the
    /// repository keeps it in docs/openapi.json).
    Openapi,
    /// Manage the users of the API and console, in the configured store (migrated first).
    ///
    /// Roles: admin (users and tokens), monitor (the whole county: acknowledges alerts, sets
    /// silences), dispatcher (dispatches new tickets), team (one team: --town and
    /// --department), head (one department in every town: --department). A password is read
    /// from the first line of standard input with --password-stdin; otherwise a strong one is
    /// made and printed once.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the chained records in the configured store: one line per ticket checked (lines,
    /// chain head), then the breaks found.
    Verify {
        /// Only this ticket (16 hex digits).
        #[arg(long)]
        ticket: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        /// Login name: a-z, 0-9, '.', '_' or '-', at most 64.
        name: String,
        /// The name the legal record shows (孙检查员, Inspector Sun).
        #[arg(long)]
        display_name: String,
        /// admin, monitor, dispatcher, team or head.
        #[arg(long)]
        role: String,
        /// A team member's town (registry id).
        #[arg(long, default_value = "")]
        town: String,
        /// A team member's or head's department (registry id).
        #[arg(long, default_value = "")]
        department: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users: name, role, jurisdiction, disabled or not.
    List,
    /// Disable a user: no login, every session and token revoked.
    Disable {
        /// Login name.
        name: String,
    },
    /// Set a user's password; their sessions end.
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make an API token for a user (for a machine: Grafana, a city platform) and print it
    /// once: send it as `Authorization: Bearer <token>`.
    Token {
        /// Login name of the user the token acts as.
        name: String,
        /// The token's name, to tell it apart when listing and revoking.
        #[arg(long = "token-name")]
        token_name: String,
        /// Days until it expires.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum Hj212Command {
    /// Decode packets (one per line, or CR LF framed) and print one JSON object per packet, or
    /// `error: <reason>` for a bad one; exit 1 if any packet was bad. The output is stable.
    Decode {
        /// File to read; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// Longest data segment accepted, in bytes.
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u16).range(1..=9999))]
        max_data_bytes: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the settings it yields (secrets redacted).
    Check,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Validate a registry file and print its size; exit 1 with the place and reason if invalid.
    Check {
        /// Registry file; defaults to the one named by the configuration.
        file: Option<PathBuf>,
    },
}

/// The options of `argus demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// State folder: configuration, store, ground truth, progress.
    #[arg(long, default_value = ".state/demo")]
    pub state: PathBuf,
    /// Remove the state folder first and start afresh.
    #[arg(long)]
    pub fresh: bool,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:9898")]
    pub http: std::net::SocketAddr,
    /// Address of the embedded MQTT broker (loopback).
    #[arg(long, default_value = "127.0.0.1:1884")]
    pub mqtt: std::net::SocketAddr,
    /// Address of the HJ 212 gateway.
    #[arg(long, default_value = "127.0.0.1:9212")]
    pub hj212: std::net::SocketAddr,
    /// Simulated seconds per second until the simulation catches up with the clock.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Hours back from now the simulated day starts.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=168))]
    pub hours_back: u32,
    /// The simulator's seed: the same seed gives the same feeds.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Detection worker threads.
    #[arg(short = 'w', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
}

/// The options of `argus simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Seed: the same seed and options give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated start (RFC 3339); default 2026-11-26T00:00:00+08:00.
    #[arg(long)]
    pub start: Option<String>,
    /// Simulated hours to run.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Simulated seconds per second (1 = real time, 60 = an hour a minute).
    #[arg(long, conflicts_with = "as_fast")]
    pub speed: Option<f64>,
    /// As fast as the receiver takes it (the default unless --speed is given).
    #[arg(long)]
    pub as_fast: bool,
    /// Repeat the county this many times under new ids (a province).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub scale: u32,
    /// Write the registry of the scaled county here (and exit unless targets are given).
    #[arg(long)]
    pub write_registry: Option<PathBuf>,
    /// Where to write the ground truth (JSON lines).
    #[arg(long, default_value = "truth.jsonl")]
    pub truth: PathBuf,
    /// HJ 212 gateway to connect the data loggers to.
    #[arg(long)]
    pub hj212: Option<std::net::SocketAddr>,
    /// MQTT broker (host:port).
    #[arg(long)]
    pub mqtt: Option<std::net::SocketAddr>,
    /// MQTT user.
    #[arg(long, requires = "mqtt")]
    pub mqtt_user: Option<String>,
    /// MQTT password (or ARGUS_SIM_MQTT_PASSWORD).
    #[arg(long, env = "ARGUS_SIM_MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<String>,
    /// What MQTT topics start with instead of `argus/v1` (match Argus's [mqtt] topics).
    #[arg(long, default_value = "argus/v1")]
    pub mqtt_topic_prefix: String,
    /// Kafka bootstrap servers; the topics are the configuration's `[kafka.topics]`.
    #[arg(long)]
    pub kafka: Option<String>,
    /// Data loggers also send their own minute and hourly averages (HJ 212 CN 2051/2061 with
    /// Avg, ZsAvg, Min, Max, Cou). Argus today judges those averages like real-time values of
    /// the same series, so the ground truth is exact only without them.
    #[arg(long)]
    pub logger_averages: bool,
}
