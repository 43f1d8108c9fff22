//! Argus internal telemetry: every metric Argus exports, named in one place ([`names`]), registered
//! in one Prometheus registry ([`Telemetry`]) and rendered as the text exposition format.
//!
//! Names follow `argus_<subsystem>_<name>_<unit>`, counters end in `_total`, and label values are
//! drawn from bounded sets (reasons, transports, kinds), never from ids.

use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every metric name Argus exports. Adding a metric means adding it here first.
pub mod names {
    /// Gauge, always 1, labelled with the Argus version.
    pub const BUILD_INFO: &str = "argus_build_info";
    /// Gauge: Unix time (seconds) at which this process started.
    pub const START_TIME_SECONDS: &str = "argus_process_start_time_seconds";
    /// Gauge: objects in the loaded registry, by `kind` (towns, enterprises, points, limits, teams).
    pub const REGISTRY_OBJECTS: &str = "argus_registry_objects";

    /// All names, for the documentation test and for people looking for one.
    pub const ALL: &[&str] = &[BUILD_INFO, START_TIME_SECONDS, REGISTRY_OBJECTS];
}

/// A metric could not be registered or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Registration or encoding failed inside the Prometheus library.
    #[error("prometheus metric {name}: {source}")]
    Prometheus {
        /// The metric concerned, or `"encoder"`.
        name: &'static str,
        /// The library's error.
        source: prometheus::Error,
    },
}

/// The registry and the handles of all metrics. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Telemetry {
    registry: Registry,
    registry_objects: IntGaugeVec,
}

/// Counts describing the loaded registry, for [`Telemetry::set_registry_objects`].
pub const REGISTRY_OBJECT_KINDS: &[&str] = &[
    "towns",
    "departments",
    "teams",
    "enterprises",
    "points",
    "limits",
];

impl Telemetry {
    /// Register every metric. `version` labels `argus_build_info`; `start_time_secs` is the
    /// process start as Unix seconds.
    pub fn new(version: &str, start_time_secs: i64) -> Result<Self, TelemetryError> {
        let registry = Registry::new();
        let err = |name| move |source| TelemetryError::Prometheus { name, source };

        let build_info = IntGaugeVec::new(
            Opts::new(names::BUILD_INFO, "Argus build, always 1"),
            &["version"],
        )
        .map_err(err(names::BUILD_INFO))?;
        registry
            .register(Box::new(build_info.clone()))
            .map_err(err(names::BUILD_INFO))?;
        build_info.with_label_values(&[version]).set(1);

        let start = IntGauge::new(
            names::START_TIME_SECONDS,
            "Unix time at which the process started",
        )
        .map_err(err(names::START_TIME_SECONDS))?;
        registry
            .register(Box::new(start.clone()))
            .map_err(err(names::START_TIME_SECONDS))?;
        start.set(start_time_secs);

        let registry_objects = IntGaugeVec::new(
            Opts::new(
                names::REGISTRY_OBJECTS,
                "Objects in the loaded registry, by kind",
            ),
            &["kind"],
        )
        .map_err(err(names::REGISTRY_OBJECTS))?;
        registry
            .register(Box::new(registry_objects.clone()))
            .map_err(err(names::REGISTRY_OBJECTS))?;

        Ok(Self {
            registry,
            registry_objects,
        })
    }

    /// Record the size of the loaded registry; `counts` pairs a kind of
    /// [`REGISTRY_OBJECT_KINDS`] with its count. Unknown kinds are ignored, keeping labels bounded.
    pub fn set_registry_objects(&self, counts: &[(&str, usize)]) {
        for (kind, count) in counts {
            if REGISTRY_OBJECT_KINDS.contains(kind) {
                let count = i64::try_from(*count).unwrap_or(i64::MAX);
                self.registry_objects.with_label_values(&[*kind]).set(count);
            }
        }
    }

    /// The Prometheus registry, for adapters that register metrics of their own libraries.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Render all metrics in the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, TelemetryError> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(|source| TelemetryError::Prometheus {
                name: "encoder",
                source,
            })?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_metric_is_exported_and_follows_the_naming_rule() {
        let telemetry = Telemetry::new("0.1.0", 1_795_672_800).unwrap_or_else(|e| panic!("{e}"));
        telemetry.set_registry_objects(&[("points", 12), ("enterprises", 3), ("bogus", 9)]);
        let text = telemetry.render().unwrap_or_else(|e| panic!("{e}"));
        for name in names::ALL {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing from:\n{text}"
            );
            assert!(
                name.starts_with("argus_")
                    && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
        assert!(text.contains("argus_build_info{version=\"0.1.0\"} 1"));
        assert!(text.contains("argus_registry_objects{kind=\"points\"} 12"));
        assert!(!text.contains("bogus"), "label values must stay bounded");
    }
}
