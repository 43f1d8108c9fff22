//! The HJ 212 TCP sender against a real listener started here that replies 9014 with
//! argus-hj212's reply encoder when a packet's Flag asks for it: every packet arrives, in
//! order per logger, each reply is awaited, the truth is written, a stop is clean.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argus_hj212::{DecodeOptions, Framer};
use argus_model::Registry;
use argus_rules::RuleSet;
use argus_sim::send::{run, Pacing, SendOptions, Targets};
use argus_sim::{Generator, Scenario, Transports, Truth, TruthWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const REGISTRY: &str = include_str!("../../../config/registry.toml");
const RULES: &str = include_str!("../../../config/rules.toml");

fn generator(scenario: Scenario) -> Generator {
    let registry = Registry::from_toml_str(REGISTRY, "registry.toml").unwrap();
    let rules = RuleSet::compile(RULES, "rules.toml", &registry).unwrap();
    Generator::new(Arc::new(registry), Arc::new(rules), scenario).unwrap()
}

/// A gateway stand-in: counts packets, replies 9014 to those that ask.
async fn gateway(listener: TcpListener, packets: Arc<AtomicU64>, replies: Arc<AtomicU64>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let (packets, replies) = (Arc::clone(&packets), Arc::clone(&replies));
        tokio::spawn(async move {
            let mut framer = Framer::new(4096 + 12);
            let mut buf = [0u8; 8192];
            loop {
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                let mut data = &buf[..n];
                while !data.is_empty() {
                    let taken = framer.push(data);
                    data = &data[taken..];
                    let mut out = Vec::new();
                    while let Some(frame) = framer.next_frame() {
                        let packet =
                            argus_hj212::decode(frame.unwrap(), &DecodeOptions::default()).unwrap();
                        packets.fetch_add(1, Ordering::Relaxed);
                        if packet.needs_reply() {
                            out.extend(argus_hj212::reply_9014(&packet).unwrap());
                            replies.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if !out.is_empty() && stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

fn tcp_only(minutes: f64) -> Scenario {
    Scenario {
        transports: Transports {
            hj212_tcp: true,
            mqtt: false,
            kafka: false,
        },
        ..Scenario::default_day().with_hours(minutes / 60.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_arrives_and_replies_are_awaited() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (packets, replies) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    tokio::spawn(gateway(
        listener,
        Arc::clone(&packets),
        Arc::clone(&replies),
    ));
    // What the scenario holds.
    let mut expected = 0;
    let mut expected_truth = 0;
    let mut g = generator(tcp_only(10.0));
    while let Some(group) = g.next_group().unwrap() {
        expected += group.messages.len() as u64;
        expected_truth += group.truth.len();
    }
    expected_truth += g.finish().len();
    let targets = Targets {
        hj212: Some(addr),
        ..Targets::default()
    };
    let mut writer = TruthWriter::new(Vec::new());
    let stats = run(
        generator(tcp_only(10.0)),
        &targets,
        Pacing::AsFast,
        SendOptions::default(),
        &mut writer,
        |_| {},
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(!stats.stopped);
    assert_eq!(stats.progress.sent[0], expected);
    assert_eq!(stats.progress.delivered[0], expected, "{stats:?}");
    assert_eq!(stats.progress.failed, 0);
    assert_eq!(packets.load(Ordering::Relaxed), expected);
    assert_eq!(stats.replies, replies.load(Ordering::Relaxed));
    assert!(stats.replies > expected / 2, "{stats:?}");
    let truth = Truth::parse(&String::from_utf8(writer.into_inner()).unwrap()).unwrap();
    assert_eq!(truth.entries.len(), expected_truth);
    assert!(truth.feed_end_ms.is_some() && !truth.clock.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_is_clean_and_the_truth_covers_the_end_of_the_feed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (packets, replies) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    tokio::spawn(gateway(
        listener,
        Arc::clone(&packets),
        Arc::clone(&replies),
    ));
    let targets = Targets {
        hj212: Some(addr),
        ..Targets::default()
    };
    let mut writer = TruthWriter::new(Vec::new());
    // Speed 600: ten simulated minutes a second; stopped after 1.5 s.
    let stats = run(
        generator(tcp_only(120.0)),
        &targets,
        Pacing::Speed(600.0),
        SendOptions::default(),
        &mut writer,
        |_| {},
        tokio::time::sleep(Duration::from_millis(1500)),
    )
    .await
    .unwrap();
    assert!(stats.stopped);
    assert_eq!(stats.progress.failed, 0);
    assert_eq!(stats.progress.delivered[0], stats.progress.sent[0]);
    assert_eq!(packets.load(Ordering::Relaxed), stats.progress.sent[0]);
    let truth = Truth::parse(&String::from_utf8(writer.into_inner()).unwrap()).unwrap();
    let end = truth.feed_end_ms.unwrap();
    let start = argus_sim::DEFAULT_START.as_millis();
    assert!(
        end > start + 5 * 60_000 && end < start + 60 * 60_000,
        "{}",
        end - start
    );
    assert!(truth
        .entries
        .iter()
        .any(|e| e.cause == argus_sim::Cause::EndOfFeed && e.kind == "missing_data"));
}
