//! Architecture invariants that can be checked mechanically (see ARCHITECTURE.md).

use crate::util::repo_path;

/// The names in a crate manifest's `[dependencies]` table.
fn dependencies(krate: &str) -> Vec<String> {
    let path = repo_path(&format!("crates/{krate}/Cargo.toml"));
    let manifest =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.to_owned());
        }
    }
    names
}

#[test]
fn the_pure_core_has_no_io_runtime_or_client_dependencies() {
    const FORBIDDEN: &[&str] = &[
        "tokio",
        "rdkafka",
        "rumqttc",
        "clickhouse",
        "axum",
        "hyper",
        "reqwest",
        "timely",
    ];
    for krate in [
        "argus-model",
        "argus-hj212",
        "argus-ingest",
        "argus-rules",
        "argus-tickets",
    ] {
        let deps = dependencies(krate);
        assert!(
            deps.contains(&"thiserror".to_owned()),
            "manifest of {krate} not parsed: {deps:?}"
        );
        for dep in &deps {
            assert!(
                !FORBIDDEN.contains(&dep.as_str()),
                "{krate} depends on {dep}: the core does no I/O"
            );
        }
    }
}

#[test]
fn adapters_never_depend_on_each_other() {
    const ADAPTERS: &[&str] = &["argus-mqtt", "argus-kafka", "argus-gateway", "argus-store"];
    for krate in ADAPTERS {
        let deps = dependencies(krate);
        assert!(
            deps.contains(&"argus-ingest".to_owned()),
            "manifest of {krate} not parsed: {deps:?}"
        );
        for other in ADAPTERS {
            assert!(
                !deps.contains(&other.to_string()),
                "{krate} depends on {other}"
            );
        }
    }
}

#[test]
fn only_the_service_and_the_binary_depend_on_adapters_and_the_api_on_none() {
    const ADAPTERS: &[&str] = &["argus-mqtt", "argus-kafka", "argus-gateway", "argus-store"];
    let crates = std::fs::read_dir(repo_path("crates")).unwrap_or_else(|e| panic!("crates/: {e}"));
    let mut checked = Vec::new();
    for entry in crates {
        let name = entry
            .unwrap_or_else(|e| panic!("crates/: {e}"))
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name == "argus" || name == "argus-service" || ADAPTERS.contains(&name.as_str()) {
            continue; // the binary's manifest is the root one; adapters are checked above
        }
        if !repo_path(&format!("crates/{name}/Cargo.toml")).exists() {
            continue;
        }
        let deps = dependencies(&name);
        for adapter in ADAPTERS {
            assert!(
                !deps.contains(&adapter.to_string()),
                "{name} depends on the adapter {adapter}: only argus-service and the binary wire adapters"
            );
        }
        checked.push(name);
    }
    assert!(
        checked.contains(&"argus-api".to_owned()),
        "argus-api not checked: {checked:?}"
    );
    let service = dependencies("argus-service");
    assert!(service.contains(&"argus-api".to_owned()), "{service:?}");
}

#[test]
fn the_store_does_not_depend_on_the_dataflow() {
    let deps = dependencies("argus-store");
    assert!(deps.contains(&"argus-rules".to_owned()), "{deps:?}");
    assert!(
        !deps.contains(&"argus-dataflow".to_owned()) && !deps.contains(&"timely".to_owned()),
        "argus-store depends on the dataflow: {deps:?}"
    );
}
