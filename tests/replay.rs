//! `argus replay`: the same recorded readings and enterprise events, shuffled within the allowed
//! lateness, give the same alert transitions with one worker, two threads, and two processes of
//! a timely cluster.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use argus_model::registry::PointKind;
use argus_model::Registry;

use crate::util::{repo_path, unique};

const START_MS: i64 = 1_795_622_400_000; // 2026-11-26T00:00:00+08:00
const MIN: i64 = 60_000;

/// A deterministic generator (xorshift64*).
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Eight hours of minute data of the example county's stacks (and their loggers' hourly
/// values), methane sensors and power meters, with power-cut feedback, production state and
/// maintenance notice events, one JSON object a line, in an arrival order displaced by less than the allowed lateness (300 s), one reading
/// line in 40 delivered twice.
fn recorded_input() -> String {
    let text = std::fs::read_to_string(repo_path("config/registry.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let registry =
        Registry::from_toml_str(&text, "registry.toml").unwrap_or_else(|e| panic!("{e}"));
    let mut points: Vec<_> = registry.points().collect();
    points.sort_by(|a, b| a.mn.cmp(&b.mn));
    let mut rng = 0x0123_4567_89ab_cdef_u64;
    let mut lines: Vec<(i64, u64, String)> = Vec::new();
    let push = |lines: &mut Vec<(i64, u64, String)>,
                rng: &mut u64,
                t: i64,
                source: &str,
                values: String| {
        let arrival = t + (next(rng) % 300_000) as i64;
        let line = format!("{{\"source\":\"{source}\",\"ts\":{t},\"values\":{{{values}}}}}");
        // Delivery is at least once: one line in 40 comes again, within the lateness.
        if next(rng).is_multiple_of(40) {
            lines.push((t + (next(rng) % 300_000) as i64, next(rng), line.clone()));
        }
        lines.push((arrival, next(rng), line));
    };
    // A maintenance notice over the exceedance hours of the first stack that has them.
    if let Some(p) = points
        .iter()
        .enumerate()
        .find(|(i, p)| i % 3 == 0 && p.kind == PointKind::FlueGasOutlet)
        .map(|(_, p)| p)
    {
        let notice = format!(
            "{{\"type\":\"maintenance_notice\",\"enterprise\":\"{}\",\"from\":{},\"to\":{},\"points\":[\"{}\"],\"reason\":\"overhaul\",\"ts\":{START_MS}}}",
            p.enterprise_id,
            START_MS + 60 * MIN,
            START_MS + 360 * MIN,
            p.mn
        );
        lines.push((START_MS, 0, notice));
    }
    for (i, p) in points.iter().enumerate() {
        // The stack's SO2 of the hour so far: its logger sends the hour's average after it (some
        // loggers a tampered one, 60 % of it), again one line in 40 twice.
        let mut hour_so2 = 0.0;
        for minute in 0..8 * 60 {
            let t = START_MS + minute * MIN;
            let noise = (next(&mut rng) % 1000) as f64 / 100.0;
            match p.kind {
                PointKind::FlueGasOutlet => {
                    let so2 = if i % 3 == 0 && (120..300).contains(&minute) {
                        50.0 + noise
                    } else {
                        15.0 + noise
                    };
                    let values = format!(
                        "\"a19001\":{:.2},\"a21026\":{so2:.2},\"a21002\":{:.2}",
                        7.0 + noise / 5.0,
                        25.0 + noise
                    );
                    push(&mut lines, &mut rng, t, p.mn.as_str(), values);
                    hour_so2 += so2;
                    if minute % 60 == 59 {
                        let factor = if i % 5 == 1 { 0.6 } else { 1.0 };
                        let start = t - 59 * MIN;
                        let line = format!(
                            "{{\"source\":\"{}\",\"ts\":{start},\"interval\":\"hour\",\"values\":{{\"a19001\":7.0,\"a21026\":{:.2}}}}}",
                            p.mn,
                            hour_so2 / 60.0 * factor
                        );
                        let copies = if next(&mut rng).is_multiple_of(40) {
                            2
                        } else {
                            1
                        };
                        for _ in 0..copies {
                            let arrival = t + MIN + (next(&mut rng) % 240_000) as i64;
                            lines.push((arrival, next(&mut rng), line.clone()));
                        }
                        hour_so2 = 0.0;
                    }
                }
                PointKind::MineWorkingFace | PointKind::MineReturnAirway => {
                    let ch4 = if i % 2 == 0 && minute % 97 < 3 {
                        1.3 + noise / 20.0
                    } else {
                        0.3 + noise / 50.0
                    };
                    push(
                        &mut lines,
                        &mut rng,
                        t,
                        p.mn.as_str(),
                        format!("\"mine_ch4\":{ch4:.3}"),
                    );
                }
                PointKind::MinePowerFeed if minute % 97 == 0 || minute % 97 == 4 => {
                    // Even feeds cut within the feedback delay; odd ones never do.
                    let powered = i % 2 == 1 || minute % 97 == 4;
                    let arrival = t + (next(&mut rng) % 300_000) as i64;
                    let event = format!(
                        "{{\"type\":\"power_cut_feedback\",\"source\":\"{}\",\"ts\":{t},\"powered\":{powered}}}",
                        p.mn
                    );
                    lines.push((arrival, next(&mut rng), event));
                }
                PointKind::ProductionLinePower => {
                    let kw = p.running_threshold_kw.unwrap_or(100.0) * 1.2;
                    push(
                        &mut lines,
                        &mut rng,
                        t,
                        p.mn.as_str(),
                        format!("\"power_kw\":{kw:.1}"),
                    );
                    if minute == 0 {
                        let event = format!(
                            "{{\"type\":\"production_state\",\"source\":\"{}\",\"ts\":{t},\"running\":true}}",
                            p.mn
                        );
                        lines.push((t, next(&mut rng), event));
                    }
                }
                PointKind::TreatmentPower => {
                    let stopped = i % 2 == 0 && (200..240).contains(&minute);
                    let kw =
                        p.running_threshold_kw.unwrap_or(100.0) * if stopped { 0.1 } else { 1.5 };
                    push(
                        &mut lines,
                        &mut rng,
                        t,
                        p.mn.as_str(),
                        format!("\"power_kw\":{kw:.1}"),
                    );
                }
                _ => {}
            }
        }
    }
    lines.sort_by_key(|(arrival, tie, _)| (*arrival, *tie));
    lines.into_iter().fold(String::new(), |mut out, (_, _, l)| {
        let _ = writeln!(out, "{l}");
        out
    })
}

fn replay(input: &str, timely: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_argus"))
        .args([
            "--config",
            &repo_path("config/argus.toml").display().to_string(),
            "replay",
            input,
            "--",
        ])
        .args(timely)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn argus replay: {e}"))
}

fn lines(out: Output) -> BTreeSet<String> {
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Timely's cluster start-up reports ("awaiting connections ...") share stdout.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn same_transitions_with_one_worker_two_threads_and_two_processes() {
    let dir = std::env::temp_dir().join(unique("argus_replay"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let input = dir.join("readings.jsonl");
    std::fs::write(&input, recorded_input()).unwrap_or_else(|e| panic!("{e}"));
    let input = input.display().to_string();

    let one = lines(
        replay(&input, &["-w", "1"])
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(one.len() > 50, "only {} transitions", one.len());
    assert!(one
        .iter()
        .any(|l| l.contains("\"kind\":\"average\"") && l.contains("\"transition\":\"fired\"")));
    assert!(one
        .iter()
        .any(|l| l.contains("\"rule\":\"methane-power-cut\"")
            && l.contains("\"transition\":\"resolved\"")));

    for wanted in [
        "\"kind\":\"treatment_stopped\"",
        "\"kind\":\"power_cut_failure\"",
        "\"kind\":\"inconsistent_average\"",
        "\"muted\":true",
    ] {
        assert!(
            one.iter().any(|l| l.contains(wanted)),
            "no line with {wanted}"
        );
    }

    let threads = lines(
        replay(&input, &["-w", "2"])
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(threads, one, "two threads differ from one worker");

    let hosts = dir.join("hosts.txt");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hosts = hosts.display().to_string();
    let first = replay(&input, &["-w", "1", "-n", "2", "-p", "0", "-h", &hosts]);
    let second = replay(&input, &["-w", "1", "-n", "2", "-p", "1", "-h", &hosts]);
    let mut cluster = lines(first.wait_with_output().unwrap_or_else(|e| panic!("{e}")));
    cluster.extend(lines(
        second.wait_with_output().unwrap_or_else(|e| panic!("{e}")),
    ));
    assert_eq!(cluster, one, "two processes differ from one worker");
    let _ = std::fs::remove_dir_all(dir);
}
