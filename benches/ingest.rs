//! Canonical JSON reading decode benchmark: one reading per message (the MQTT shape) and
//! arrays of 10 (the batched Kafka shape), in readings/s and bytes/s. Results and the command
//! line are in `benches/RESULTS.md`.

use std::hint::black_box;

use argus_ingest::json::decode_readings;
use argus_ingest::{TimeWindow, TopicNames};
use argus_model::Timestamp;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const NOW: Timestamp = Timestamp(1_795_672_800_000);

fn reading(i: usize) -> String {
    format!(
        r#"{{"source":"150102010001{:02}","ts":"2026-11-26T13:59:{:02}+08:00","values":{{"a21026":{}.25,"a21002":{{"v":38.2,"flag":"N"}},"a19001":6.3}}}}"#,
        i % 100,
        i % 60,
        20 + i % 10
    )
}

fn json_decode(c: &mut Criterion) {
    let window = TimeWindow::default();
    let single = reading(7);
    let batch = format!("[{}]", (0..10).map(reading).collect::<Vec<_>>().join(","));

    let mut group = c.benchmark_group("json_reading_decode");
    group.throughput(Throughput::Bytes(single.len() as u64));
    group.bench_function("one_object_3_values", |b| {
        b.iter(|| {
            decode_readings(
                black_box(single.as_bytes()),
                NOW,
                &window,
                TopicNames::default(),
            )
            .map(|r| r.len())
        })
    });
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("array_of_10_objects_30_values", |b| {
        b.iter(|| {
            decode_readings(
                black_box(batch.as_bytes()),
                NOW,
                &window,
                TopicNames::default(),
            )
            .map(|r| r.len())
        })
    });
    group.finish();
}

criterion_group!(benches, json_decode);
criterion_main!(benches);
