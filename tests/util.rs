//! Helpers shared by the integration tests: settings of the local stack, unique names.

use std::path::{Path, PathBuf};
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
