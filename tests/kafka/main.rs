//! Tests against a real Kafka-protocol broker (WEARHOUSE_TEST_KAFKA): the relay, its payloads
//! and redaction, replay and the consumer-group worker. See tests/README.md.

#[path = "../common/mod.rs"]
mod common;
#[path = "../kafka_support/mod.rs"]
mod kafka_support;

mod kafka_outage;
mod kafka_payloads;
mod kafka_redaction;
mod kafka_relay;
mod kafka_replay;
mod kafka_worker;
