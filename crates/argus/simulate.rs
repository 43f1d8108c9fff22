//! `argus simulate` and the simulator inside `argus demo`: the county simulator (argus-sim)
//! wired to targets from the command line, the truth written to a file, progress on stderr.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use argus_config::{Credentials, Settings};
use argus_model::{Registry, Timestamp};
use argus_rules::RuleSet;
use argus_sim::send::{self, KafkaTarget, MqttTarget as SimMqtt, Pacing, SendOptions, Targets};
use argus_sim::{Generator, RuleParams, Scenario, TruthWriter};

use crate::cli::SimulateArgs;

/// An MQTT broker to publish to.
#[derive(Debug, Clone)]
pub struct MqttTarget {
    /// Its address.
    pub addr: SocketAddr,
    /// Its user, if it wants one.
    pub credentials: Option<Credentials>,
    /// What topics start with.
    pub topic_prefix: String,
}

/// One run of the simulator.
#[derive(Debug)]
pub struct Simulation {
    /// The registry Argus runs with.
    pub registry: Arc<Registry>,
    /// The rules Argus runs with, compiled against it.
    pub rules: Arc<RuleSet>,
    /// The rules file's text (the durations the scenario is planned around).
    pub rules_text: String,
    /// Seed.
    pub seed: u64,
    /// Simulated start.
    pub start: Timestamp,
    /// A resumed feed: the simulated world is generated from `start` as before, and what comes
    /// at or before this instant (sent by the earlier run) is skipped, so the world goes on
    /// where it stopped instead of starting afresh there.
    pub resume_after: Option<Timestamp>,
    /// Simulated end; none runs until stopped.
    pub end: Option<Timestamp>,
    /// How simulated time follows the clock.
    pub pacing: Pacing,
    /// The HJ 212 gateway.
    pub hj212: Option<SocketAddr>,
    /// The MQTT broker.
    pub mqtt: Option<MqttTarget>,
    /// Kafka brokers and topics.
    pub kafka: Option<KafkaTarget>,
    /// The truth file.
    pub truth: PathBuf,
    /// Append to the truth file (a resumed demo) instead of replacing it.
    pub append_truth: bool,
    /// Print progress lines (`argus simulate`), or keep quiet (the demo prints its own).
    pub progress: bool,
    /// Loggers also send their minute and hourly averages (CN 2051/2061).
    pub logger_averages: bool,
}

/// Run a simulation until its end or `stop`; returns the simulated time the feed reached.
pub async fn run(
    sim: Simulation,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Option<Timestamp>> {
    let targets = Targets {
        hj212: sim.hj212.map(|a| a.to_string()),
        mqtt: sim.mqtt.map(|m| SimMqtt {
            credentials: m.credentials.map(|c| (c.username, c.password)),
            topic_prefix: m.topic_prefix,
            ..SimMqtt::new(&m.addr.ip().to_string(), m.addr.port())
        }),
        kafka: sim.kafka,
    };
    if targets.transports().names().is_empty() {
        anyhow::bail!("nothing to send to: give --hj212, --mqtt or --kafka");
    }
    let scenario = Scenario {
        seed: sim.seed,
        start: sim.start,
        end: sim.end,
        transports: targets.transports(),
        violations: true,
        logger_averages: sim.logger_averages,
        params: RuleParams::from_rules_toml(&sim.rules_text),
    };
    let mut generator = Generator::new(sim.registry, sim.rules, scenario)?;
    if let Some(after) = sim.resume_after {
        let skipped = generator.skip_through(after)?;
        tracing::info!(groups = skipped, until = %after.to_rfc3339(), "simulated feed resumed where it stopped");
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(sim.append_truth)
        .truncate(!sim.append_truth)
        .open(&sim.truth)
        .with_context(|| format!("cannot open the truth file {}", sim.truth.display()))?;
    let mut truth = TruthWriter::new(BufWriter::new(file));
    let print = sim.progress;
    let stats = send::run(
        generator,
        &targets,
        sim.pacing,
        SendOptions::default(),
        &mut truth,
        |p| {
            if print {
                eprintln!("argus simulate: {p}");
            }
        },
        stop,
    )
    .await?;
    truth.flush()?;
    if print {
        let p = &stats.progress;
        let secs = p.elapsed.as_secs_f64().max(0.001);
        eprintln!(
            "argus simulate: {} in {secs:.1} s: delivered hj212 {} ({:.0}/s, {} replies), mqtt {} ({:.0}/s), kafka {} ({:.0}/s), failed {}, {} reconnections",
            if stats.stopped { "stopped" } else { "done" },
            p.delivered[0],
            p.delivered[0] as f64 / secs,
            stats.replies,
            p.delivered[1],
            p.delivered[1] as f64 / secs,
            p.delivered[2],
            p.delivered[2] as f64 / secs,
            p.failed,
            stats.reconnects,
        );
    }
    Ok(stats.feed_end)
}

/// `argus simulate`.
pub fn command(settings: &Settings, o: SimulateArgs) -> anyhow::Result<ExitCode> {
    let county = crate::load_registry(&settings.registry_path)?;
    let (registry_text, registry) =
        argus_sim::province::province(&county, o.scale).context("cannot scale the registry")?;
    if let Some(path) = &o.write_registry {
        std::fs::write(path, &registry_text)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "argus simulate: wrote the registry of {} ({}) to {}",
            registry.county(),
            registry.summary(),
            path.display()
        );
        if o.hj212.is_none() && o.mqtt.is_none() && o.kafka.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let rules_text = std::fs::read_to_string(&settings.rules.path)
        .with_context(|| format!("cannot read rules {}", settings.rules.path.display()))?;
    let rules = RuleSet::compile(
        &rules_text,
        &settings.rules.path.display().to_string(),
        &registry,
    )?;
    let start = match &o.start {
        Some(text) => Timestamp::parse_rfc3339(text)
            .with_context(|| format!("--start {text:?} is not an RFC 3339 time"))?,
        None => argus_sim::DEFAULT_START,
    };
    if !(o.hours.is_finite() && o.hours > 0.0) {
        anyhow::bail!("--hours must be positive, got {}", o.hours);
    }
    let pacing = match o.speed {
        Some(speed) if speed.is_finite() && speed > 0.0 => Pacing::Speed(speed),
        Some(speed) => anyhow::bail!("--speed must be positive, got {speed}"),
        None => Pacing::AsFast,
    };
    let credentials = match (o.mqtt_user, o.mqtt_password) {
        (Some(username), password) => Some(Credentials {
            username,
            password: password.unwrap_or_default(),
        }),
        (None, _) => None,
    };
    let simulation = Simulation {
        registry: Arc::new(registry),
        rules: Arc::new(rules),
        rules_text,
        seed: o.seed,
        start,
        resume_after: None,
        end: Some(Timestamp(
            start.as_millis() + (o.hours * 3_600_000.0).round() as i64,
        )),
        pacing,
        hj212: o.hj212,
        mqtt: o.mqtt.map(|addr| MqttTarget {
            addr,
            credentials,
            topic_prefix: o.mqtt_topic_prefix.clone(),
        }),
        // The topics Argus reads, from its configuration.
        kafka: o.kafka.map(|servers| KafkaTarget {
            readings_topic: settings.kafka.topics.readings.clone(),
            hj212_topic: settings.kafka.topics.hj212.clone(),
            events_topic: settings.kafka.topics.events.clone(),
            ..KafkaTarget::new(&servers)
        }),
        truth: o.truth.clone(),
        append_truth: false,
        progress: true,
        logger_averages: o.logger_averages,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    let reached = runtime.block_on(run(simulation, crate::signal::shutdown()))?;
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "argus simulate: sent up to {}; ground truth in {}",
        reached.map_or("-".to_owned(), Timestamp::to_rfc3339),
        o.truth.display()
    );
    Ok(ExitCode::SUCCESS)
}
