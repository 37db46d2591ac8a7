//! wearhouse-kafka: topics, the envelope of `wearhouse.events`, the relay that publishes the
//! Postgres log to Kafka, the consumer-group projection worker, and replay for data engineers.
//!
//! Ordering: the relay publishes in global log order, but Kafka keeps order only within a
//! partition, and messages are keyed by user. Consumers (and every projection run from Kafka)
//! may therefore rely on per-user order (per aggregate for entries without a user) only.

pub mod blobs;
pub mod config;
pub mod envelope;
pub mod redact;
pub mod relay;
pub mod replay;
mod wake;
pub mod worker;

pub use config::{KafkaConfig, Topics};
pub use envelope::Envelope;
pub use rdkafka;
pub use relay::{messages_for, relay_lag, OutMessage, Relay, RelayError};
