//! HJ 212 decode benchmark: decode, and decode plus conversion to readings, of a typical
//! HJ 212-2017 real-time packet (CN 2011, 7 flue gas factors with Rtd and Flag, ~330 bytes), in
//! bytes/s and packets/s. Results and the command line are in `benches/RESULTS.md`.

use std::hint::black_box;

use argus_hj212::{
    crc::crc16, decode, encode, readings, CpBuilder, DecodeOptions, FieldKind, Header,
};
use argus_model::Timestamp;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A real-time data packet as a flue gas CEMS data logger sends it every 30 s or so.
fn typical_packet() -> Vec<u8> {
    let factors = [
        ("a21026", "35.21"),   // SO2
        ("a21002", "49.20"),   // NOx
        ("a34013", "4.837"),   // particulate
        ("a19001", "10.62"),   // O2
        ("a01012", "126.4"),   // temperature
        ("a01011", "12.93"),   // velocity
        ("a00000", "101.942"), // flow
    ];
    let mut cp = CpBuilder::new().param("DataTime", "20191012133710");
    for (code, value) in factors {
        cp = cp.factor(code, &[(FieldKind::Rtd, value), (FieldKind::Flag, "N")]);
    }
    let cp = cp.finish().unwrap_or_else(|e| panic!("{e}"));
    let header = Header {
        qn: Some("20191012133710130"),
        st: Some("31"),
        cn: "2011",
        pw: Some("123456"),
        mn: "Y80110010000010",
        flag: Some(5),
        ..Header::default()
    };
    encode(&header, &cp).unwrap_or_else(|e| panic!("{e}"))
}

fn bench(c: &mut Criterion) {
    let frame = typical_packet();
    let options = DecodeOptions::default();
    let received = Timestamp(1_570_858_640_000);
    // Sanity: it decodes to 7 readings.
    let packet = decode(&frame, &options).unwrap_or_else(|e| panic!("{e}"));
    let n = readings(&packet, received).map(|r| r.len());
    assert_eq!(n, Ok(7));
    drop(packet);
    eprintln!("hj212 bench packet: {} bytes", frame.len());

    let len = frame.len() as u64;
    for (name, throughput) in [
        ("bytes", Throughput::Bytes(len)),
        ("packets", Throughput::Elements(1)),
    ] {
        let mut group = c.benchmark_group(format!("hj212_{name}"));
        group.throughput(throughput);
        group.bench_function("decode", |b| {
            b.iter(|| decode(black_box(&frame), &options).map(|p| p.factors().len()))
        });
        group.bench_function("decode_readings", |b| {
            b.iter(|| {
                decode(black_box(&frame), &options).map(|p| readings(&p, received).map(|r| r.len()))
            })
        });
        if name == "bytes" {
            let data = &frame[6..frame.len() - 6];
            group.throughput(Throughput::Bytes(data.len() as u64));
            group.bench_function("crc16", |b| b.iter(|| crc16(black_box(data))));
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
