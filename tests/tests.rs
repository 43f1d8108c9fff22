//! Argus integration tests: the binary's command line, and round trips through the real
//! services of the local stack (`deploy/local/stack up`: Mosquitto, Kafka, ClickHouse).
//!
//! Service tests read connection settings from `config/argus.toml`, the same file Argus runs
//! with, so a passing suite also proves the shipped configuration matches the stack.

mod architecture;
mod authorization;
mod cli;
mod clickhouse;
mod console;
mod delivery;
mod demo;
mod end_to_end;
mod gateway;
mod hostile;
mod kafka;
mod kafka_source;
mod mosquitto;
mod mqtt_source;
mod queries;
mod replay;
mod store;
mod util;
