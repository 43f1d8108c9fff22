//! Round trip through the real ClickHouse server of the local stack: the writer creates, inserts
//! and selects; the read-only reader (Grafana's user) can select but not insert or create.

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use crate::util::{runtime, settings, unique};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct TestReading {
    source: String,
    metric: String,
    event_ms: i64,
    value: f64,
    flag: u8,
}

fn client(user: &str, password: &str) -> Client {
    // Schema validation must be off with ClickHouse 18.16 (../shared/notes/dependency-facts.md).
    Client::default()
        .with_url(settings().clickhouse.url)
        .with_user(user)
        .with_password(password)
        .with_validation(false)
}

fn rows(count: usize) -> Vec<TestReading> {
    (0..count)
        .map(|i| TestReading {
            source: format!("MN{:05}", i % 50),
            metric: if i % 2 == 0 {
                "a21026".to_owned()
            } else {
                "a21002".to_owned()
            },
            event_ms: 1_795_672_800_000 + i as i64 * 1_000,
            value: i as f64 * 0.25,
            flag: b'N',
        })
        .collect()
}

#[test]
fn writer_round_trips_rows_and_reader_is_refused_writes() {
    const COUNT: usize = 20_000;
    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let writer = client(&s.clickhouse.writer.username, &s.clickhouse.writer.password);
        let reader = client(&s.clickhouse.reader.username, &s.clickhouse.reader.password);
        let db = unique("argus_it");
        let table = format!("{db}.readings");

        writer.query(&format!("CREATE DATABASE {db}")).execute().await.unwrap_or_else(|e| panic!("create db: {e}"));
        let ddl = format!(
            "CREATE TABLE {table} (source String, metric String, event_ms Int64, value Float64, flag UInt8) \
             ENGINE = MergeTree ORDER BY (source, metric, event_ms)"
        );
        writer.query(&ddl).execute().await.unwrap_or_else(|e| panic!("create table: {e}"));

        // The crate does not check column types with validation off: the table's columns are
        // checked against system.columns instead, as Argus does at startup.
        // (18.16 has no `position` column there: compare sorted by name.)
        let columns: Vec<(String, String)> = writer
            .query("SELECT name, type FROM system.columns WHERE database = ? AND table = 'readings' ORDER BY name")
            .bind(&db)
            .fetch_all()
            .await
            .unwrap_or_else(|e| panic!("system.columns: {e}"));
        let expected_columns = [("source", "String"), ("metric", "String"), ("event_ms", "Int64"), ("value", "Float64"), ("flag", "UInt8")];
        let mut expected_columns: Vec<(String, String)> =
            expected_columns.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
        expected_columns.sort();
        assert_eq!(columns, expected_columns);

        let sent = rows(COUNT);
        // `insert` takes a bare table name; the database comes from the client.
        let mut insert = writer.clone().with_database(&db).insert::<TestReading>("readings").await.unwrap_or_else(|e| panic!("insert: {e}"));
        for row in &sent {
            insert.write(row).await.unwrap_or_else(|e| panic!("write: {e}"));
        }
        insert.end().await.unwrap_or_else(|e| panic!("insert end: {e}"));

        let (count, sum): (u64, f64) = writer
            .query(&format!("SELECT count(), sum(value) FROM {table}"))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("count: {e}"));
        assert_eq!(count, COUNT as u64);
        assert_eq!(sum, sent.iter().map(|r| r.value).sum::<f64>());

        let back: Vec<TestReading> = writer
            .query(&format!("SELECT ?fields FROM {table} WHERE source = ? ORDER BY metric, event_ms"))
            .bind("MN00007")
            .fetch_all()
            .await
            .unwrap_or_else(|e| panic!("select: {e}"));
        let mut want: Vec<TestReading> = sent.iter().filter(|r| r.source == "MN00007").cloned().collect();
        want.sort_by(|a, b| (&a.metric, a.event_ms).cmp(&(&b.metric, b.event_ms)));
        assert_eq!(back, want);

        // The reader sees the data ...
        let seen: u64 = reader
            .query(&format!("SELECT count() FROM {table}"))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("reader select: {e}"));
        assert_eq!(seen, COUNT as u64);
        // ... and cannot change it.
        let refused = async {
            let mut insert = reader.clone().with_database(&db).insert::<TestReading>("readings").await?;
            insert.write(&sent[0]).await?;
            insert.end().await
        }
        .await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_else(|| panic!("reader insert was accepted"));
        assert!(message.contains("readonly"), "unexpected refusal: {message}");
        let ddl = ddl_as_reader(&reader, &db).await;
        assert!(ddl.contains("readonly"), "unexpected refusal: {ddl}");
        let count_after: u64 = writer
            .query(&format!("SELECT count() FROM {table}"))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("count: {e}"));
        assert_eq!(count_after, COUNT as u64, "the refused insert changed the table");

        writer.query(&format!("DROP DATABASE {db}")).execute().await.unwrap_or_else(|e| panic!("drop db: {e}"));
    });
}

/// Try a CREATE TABLE as the reader; return the error text (panics if it was accepted).
async fn ddl_as_reader(reader: &Client, db: &str) -> String {
    let result = reader
        .query(&format!(
            "CREATE TABLE {db}.sneaky (x UInt8) ENGINE = Memory"
        ))
        .execute()
        .await;
    result
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("reader CREATE TABLE was accepted"))
}
