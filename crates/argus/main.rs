//! The `argus` binary: parses the command line, loads and validates configuration and registry,
//! and wires the adapters together. All logic lives in the library crates; this stays thin.

mod audit;
mod cli;
mod demo;
mod hj212;
mod logging;
mod replay;
mod signal;
mod simulate;
mod user;
mod verify;

use std::process::ExitCode;

use anyhow::Context;
use argus_config::Settings;
use argus_model::Registry;
use clap::Parser;

use cli::{AuditCommand, Cli, Command, ConfigCommand, Hj212Command, RegistryCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The whole chain, outermost first: "cannot start: invalid registry ...: reason".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            workers,
            processes,
            process,
            hostfile,
        } => {
            if process >= processes {
                anyhow::bail!("--process {process} is not below --processes {processes}");
            }
            if processes > 1 && hostfile.is_none() {
                anyhow::bail!("a cluster of {processes} processes needs --hostfile");
            }
            let cluster = argus_service::Cluster {
                workers: usize::from(workers),
                processes: usize::from(processes),
                process: usize::from(process),
                hostfile,
            };
            let settings = Settings::load(&cli.config)?;
            if let (argus_config::StoreBackend::Sqlite(path), true) =
                (&settings.store.backend, processes > 1)
            {
                anyhow::bail!(
                    "the embedded store ({}) serves one process; a cluster of {processes} processes needs [store] backend = \"clickhouse\"",
                    path.display()
                );
            }
            logging::init(&settings.log)?;
            argus_service::install_panic_hook();
            let registry = load_registry(&settings.registry_path)?;
            let rules = load_rules(&settings.rules.path, &registry)?;
            let policy = load_ticket_policy(&settings.tickets.path, &registry)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
            let parts = argus_service::Parts {
                settings,
                registry,
                rules,
                policy,
                cluster,
            };
            let result = runtime.block_on(async {
                let listeners = argus_service::Listeners::bind(&parts.settings).await?;
                argus_service::run(parts, listeners, signal::shutdown()).await
            });
            // What did not drain in time (a detection cluster whose other processes still
            // run) is left to the process's end.
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            result?;
        }
        Command::Demo(args) => {
            if !(args.speed.is_finite() && args.speed >= 1.0) {
                anyhow::bail!("--speed must be at least 1, got {}", args.speed);
            }
            demo::run(args)?;
        }
        Command::Simulate(args) => {
            let settings = Settings::load(&cli.config)?;
            return simulate::command(&settings, args);
        }
        Command::Verify { truth, json } => {
            let settings = Settings::load(&cli.config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
            return runtime.block_on(verify::run(&settings, &truth, json));
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let settings = Settings::load(&cli.config)?;
            say(&format!(
                "config {} is valid:\n{settings:#?}",
                cli.config.display()
            ))?;
        }
        Command::Registry {
            command: RegistryCommand::Check { file },
        } => {
            let path = match file {
                Some(path) => path,
                None => Settings::load(&cli.config)?.registry_path,
            };
            let registry = load_registry(&path)?;
            say(&format!(
                "registry {} is valid: {} ({})",
                path.display(),
                registry.county(),
                registry.summary()
            ))?;
        }
        Command::Replay { input, timely } => {
            let settings = Settings::load(&cli.config)?;
            let registry = load_registry(&settings.registry_path)?;
            replay::run(&settings, &registry, &input, timely)?;
        }
        Command::Audit {
            command: AuditCommand::Verify { ticket },
        } => {
            let settings = Settings::load(&cli.config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
            return runtime.block_on(audit::verify(&settings, ticket.as_deref()));
        }
        Command::User { command } => {
            let settings = Settings::load(&cli.config)?;
            let registry = load_registry(&settings.registry_path)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
            runtime.block_on(user::run(&settings, &registry, command))?;
        }
        Command::Openapi => {
            let text = serde_json::to_string_pretty(&argus_api::openapi::document())
                .context("cannot render the openapi document")?;
            println!("{text}");
        }
        Command::Hj212 {
            command:
                Hj212Command::Decode {
                    file,
                    max_data_bytes,
                },
        } => {
            return hj212::decode(file.as_deref(), usize::from(max_data_bytes));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Read and validate the registry file.
pub(crate) fn load_registry(path: &std::path::Path) -> anyhow::Result<Registry> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read registry {}", path.display()))?;
    Ok(Registry::from_toml_str(&text, &path.display().to_string())?)
}

/// Read the rules file and bind it to the registry.
pub(crate) fn load_rules(
    path: &std::path::Path,
    registry: &Registry,
) -> anyhow::Result<argus_rules::RuleSet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read rules {}", path.display()))?;
    Ok(argus_rules::RuleSet::compile(
        &text,
        &path.display().to_string(),
        registry,
    )?)
}

/// Read the ticket policy and check it against the registry.
pub(crate) fn load_ticket_policy(
    path: &std::path::Path,
    registry: &Registry,
) -> anyhow::Result<argus_tickets::Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read ticket policy {}", path.display()))?;
    Ok(argus_tickets::Policy::from_toml_str(
        &text,
        &path.display().to_string(),
        registry,
    )?)
}

/// Print a line on stdout; a reader that went away (`argus ... | head`) is not an error.
pub(crate) fn say(line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}
