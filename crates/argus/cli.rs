//! The command line: subcommands and their arguments (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
