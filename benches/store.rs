//! Sustained insert rate of readings through the store's sink, into the real ClickHouse and into
//! the embedded SQLite file: items of
//! 1,000 readings (an envelope's worth) sent to `argus_store::sink::run`, batched at the shipped
//! `batch_max_rows`, written, and acknowledged; timed from the first send to the last
//! acknowledgement; old data (every key looked up before it is written), or with
//! `ARGUS_BENCH_LIVE=1` a live feed's (no lookup). Needs the local stack (`deploy/local/stack
//! up`). `cargo bench --bench store`;
//! under `cargo test` it runs once on a small input as a smoke test. Results in
//! benches/RESULTS.md.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_config::Settings;
use argus_ingest::Ack;
use argus_model::{DataFlag, Metric, MetricCode, Reading, Registry, SourceId, Timestamp};
use argus_store::sink::{run, Item, SinkOptions};
use argus_store::{ClickHouseStore, Labels, SqliteStore, Store};
use argus_telemetry::Telemetry;
use tokio::sync::{mpsc, watch};

const PER_ITEM: usize = 1_000;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings =
        Settings::load(&root.join("config/argus.toml")).unwrap_or_else(|e| panic!("{e}"));
    let registry_text = std::fs::read_to_string(root.join("config/registry.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let registry =
        Registry::from_toml_str(&registry_text, "registry.toml").unwrap_or_else(|e| panic!("{e}"));
    let sources: Vec<SourceId> = registry.points().map(|p| p.mn.clone()).collect();
    let total = if full { 2_000_000 } else { 20_000 };
    let metrics = [
        Metric::So2,
        Metric::Nox,
        Metric::Oxygen,
        Metric::Particulate,
    ];
    // A backfill of old data by default (every key looked up: first write wins); with
    // ARGUS_BENCH_LIVE=1 the readings end now, as a live feed's (newer than what is on record:
    // no lookup).
    let live = std::env::var_os("ARGUS_BENCH_LIVE").is_some();
    let minutes = (total / sources.len() / metrics.len()) as i64 + 1;
    let t0 = if live {
        Timestamp::from_system_time(std::time::SystemTime::now()).as_millis() - minutes * 60_000
    } else {
        1_795_622_400_000_i64
    };
    println!(
        "{}",
        if live {
            "live feed (event times up to now)"
        } else {
            "old data (days ago)"
        }
    );
    let readings: Vec<Reading> = (0..total)
        .map(|i| {
            let source = &sources[i % sources.len()];
            let minute = (i / sources.len() / metrics.len()) as i64;
            Reading {
                source: source.clone(),
                metric: MetricCode::Known(metrics[(i / sources.len()) % metrics.len()]),
                value: (i % 1000) as f64 * 0.1,
                flag: DataFlag::N,
                event_time: Timestamp(t0 + minute * 60_000),
                receive_time: Timestamp(t0 + minute * 60_000 + 3_000),
                interval: Default::default(),
                corrected: None,
            }
        })
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let options = SinkOptions {
        max_rows: settings.clickhouse.batch_max_rows,
        max_age: settings.clickhouse.batch_max_age,
        max_backoff: settings.clickhouse.retry_max_backoff,
        spool: None,
    };
    let labels = Labels::new(&registry);
    let database = format!("argus_bench_{}", std::process::id());
    let store = ClickHouseStore::with_database(&settings.clickhouse, &database);
    // ARGUS_BENCH_SQLITE_ONLY=1 skips ClickHouse (and its merges running meanwhile).
    let clickhouse = std::env::var_os("ARGUS_BENCH_SQLITE_ONLY").is_none();
    rt.block_on(async {
        if !clickhouse {
            return;
        }
        store.prepare().await.unwrap_or_else(|e| panic!("{e}"));
        // ARGUS_BENCH_NO_ROLLUPS=1 measures the readings table alone (what the rollups cost).
        if std::env::var_os("ARGUS_BENCH_NO_ROLLUPS").is_some() {
            for view in ["readings_1m_mv", "readings_1h_mv"] {
                store
                    .query(&format!("DROP TABLE {database}.{view}"))
                    .execute()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            println!("rollup views dropped");
        }
        measure("clickhouse", store.clone(), &labels, &readings, &options).await;
        let _ = store
            .query(&format!("DROP DATABASE {database}"))
            .execute()
            .await;
    });
    let dir = std::env::temp_dir().join(format!("argus_bench_{}", std::process::id()));
    let sqlite = SqliteStore::open(&dir.join("argus.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        sqlite.prepare().await.unwrap_or_else(|e| panic!("{e}"));
        measure("sqlite", sqlite, &labels, &readings, &options).await;
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// Send the readings through the sink into `store`, wait for every acknowledgement, check
/// the count, print the rate.
async fn measure<S: Store>(
    name: &str,
    store: S,
    labels: &Labels,
    readings: &[Reading],
    options: &SinkOptions,
) {
    let total = readings.len();
    let telemetry = Telemetry::new("bench", 0).unwrap_or_else(|e| panic!("{e}"));
    let (_stop, stopping) = watch::channel(false);
    let (tx, rx) = mpsc::channel(1024);
    let sink = tokio::spawn(run(
        store.clone(),
        labels.clone(),
        rx,
        options.clone(),
        telemetry,
        argus_store::sink::Outlets::default(),
        stopping,
    ));
    let acked = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    for chunk in readings.chunks(PER_ITEM) {
        let acked = Arc::clone(&acked);
        let item = Item::Input {
            readings: chunk.to_vec(),
            rejected: Vec::new(),
            events: Vec::new(),
            ack: Ack::new(move || {
                acked.fetch_add(1, Ordering::Relaxed);
            }),
        };
        tx.send(item).await.unwrap_or_else(|e| panic!("{e}"));
    }
    drop(tx);
    sink.await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let elapsed = started.elapsed();
    assert_eq!(acked.load(Ordering::Relaxed), total.div_ceil(PER_ITEM));
    let stored = store.counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.readings, total as u64);
    println!(
        "{name}: {total} readings in {} batches of <= {} rows: {elapsed:?} = {:.0} rows/s (sent, written, acknowledged)",
        total.div_ceil(options.max_rows),
        options.max_rows,
        total as f64 / elapsed.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}
