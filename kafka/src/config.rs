//! Kafka settings: environment variables with documented defaults, also accepted as flags.
//! With no brokers configured nothing here is used: the embedded default tails Postgres.

use std::time::Duration;

use clap::Args;
use rdkafka::ClientConfig;

#[derive(Debug, Clone, Args)]
pub struct KafkaConfig {
    /// Kafka bootstrap servers (host:port,…). Unset: no broker; `serve` runs no relay and
    /// projections tail Postgres.
    #[arg(long = "kafka-brokers", env = "WEARHOUSE_KAFKA_BROKERS", global = true)]
    pub brokers: Option<String>,
    /// Prefix of every topic name: `<prefix>.events`, `<prefix>.raw`, `<prefix>.samples`.
    #[arg(
        long = "kafka-topic-prefix",
        env = "WEARHOUSE_KAFKA_TOPIC_PREFIX",
        default_value = "wearhouse",
        global = true
    )]
    pub topic_prefix: String,
    /// Partitions of topics the relay creates. Partitioning is by user, so this caps how many
    /// projection workers of one group do useful work.
    #[arg(
        long = "kafka-partitions",
        env = "WEARHOUSE_KAFKA_PARTITIONS",
        default_value_t = 6,
        global = true
    )]
    pub partitions: i32,
    /// Replication factor of topics the relay creates (1 for a single broker).
    #[arg(
        long = "kafka-replication",
        env = "WEARHOUSE_KAFKA_REPLICATION",
        default_value_t = 1,
        global = true
    )]
    pub replication: i32,
    /// `retention.ms` of topics the relay creates. Default 7 days: the topic holds health
    /// data, so it should not keep it forever; Postgres stays the system of record. -1 keeps
    /// everything (the topic can then bootstrap a new read model without touching Postgres).
    #[arg(
        long = "kafka-retention-ms",
        env = "WEARHOUSE_KAFKA_RETENTION_MS",
        default_value_t = DEFAULT_RETENTION_MS,
        global = true
    )]
    pub retention_ms: i64,
    /// `security.protocol` of every broker connection: plaintext, ssl, sasl_plaintext or
    /// sasl_ssl.
    #[arg(
        long = "kafka-security-protocol",
        env = "WEARHOUSE_KAFKA_SECURITY_PROTOCOL",
        default_value = "plaintext",
        global = true
    )]
    pub security_protocol: String,
    /// PEM file of the CA that signed the brokers' certificates (ssl, sasl_ssl). Unset: the
    /// system's trust store.
    #[arg(
        long = "kafka-ssl-ca-location",
        env = "WEARHOUSE_KAFKA_SSL_CA_LOCATION",
        global = true
    )]
    pub ssl_ca_location: Option<String>,
    /// SASL mechanism (sasl_plaintext, sasl_ssl): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(
        long = "kafka-sasl-mechanism",
        env = "WEARHOUSE_KAFKA_SASL_MECHANISM",
        global = true
    )]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[arg(
        long = "kafka-sasl-username",
        env = "WEARHOUSE_KAFKA_SASL_USERNAME",
        global = true
    )]
    pub sasl_username: Option<String>,
    /// SASL password (never logged or printed).
    #[arg(
        long = "kafka-sasl-password",
        env = "WEARHOUSE_KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub sasl_password: Option<String>,
    /// Log entries the relay reads and publishes per batch (one checkpoint per batch).
    #[arg(
        long = "kafka-relay-batch",
        env = "WEARHOUSE_KAFKA_RELAY_BATCH",
        default_value_t = 1000,
        global = true
    )]
    pub relay_batch: i64,
    /// Consumer group of the projection workers.
    #[arg(
        long = "kafka-group",
        env = "WEARHOUSE_KAFKA_GROUP",
        default_value = "wearhouse-projections",
        global = true
    )]
    pub group: String,
    /// Consumer `session.timeout.ms`. tansu needs ≤ 6000 for quick group joins.
    #[arg(
        long = "kafka-session-timeout-ms",
        env = "WEARHOUSE_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 6000,
        global = true
    )]
    pub session_timeout_ms: u32,
    /// Consumer `max.poll.interval.ms` (also the rebalance timeout). tansu waits a share of it
    /// on every join, so keep it ≤ 10000 there; raise it on real Kafka if batches are slow.
    #[arg(
        long = "kafka-max-poll-interval-ms",
        env = "WEARHOUSE_KAFKA_MAX_POLL_INTERVAL_MS",
        default_value_t = 10000,
        global = true
    )]
    pub max_poll_interval_ms: u32,
    /// After each batch, also publish an empty marker message (header `wearhouse-marker`) to
    /// every partition the batch used. Needed on tansu 0.6, whose high watermark stops at
    /// the base offset of a partition's last record batch, hiding that batch until another
    /// one arrives. Consumers here skip markers. Leave off on Apache Kafka.
    #[arg(
        long = "kafka-flush-markers",
        env = "WEARHOUSE_KAFKA_FLUSH_MARKERS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub flush_markers: bool,
    /// Extra librdkafka producer properties, `key=value,key=value` (applied last).
    #[arg(
        long = "kafka-producer-config",
        env = "WEARHOUSE_KAFKA_PRODUCER_CONFIG",
        default_value = "",
        global = true
    )]
    pub producer_extra: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tls_and_sasl_settings_reach_every_client() {
        let cfg = KafkaConfig {
            brokers: Some("b:9093".into()),
            security_protocol: "sasl_ssl".into(),
            ssl_ca_location: Some("/etc/ssl/certs/ca-certificates.crt".into()),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("relay".into()),
            sasl_password: Some("pw".into()),
            ..KafkaConfig::default()
        };
        for c in [
            cfg.producer_config().unwrap(),
            cfg.group_consumer_config().unwrap(),
            cfg.reader_config().unwrap(),
            cfg.admin_config().unwrap(),
        ] {
            assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(
                c.get("ssl.ca.location"),
                Some("/etc/ssl/certs/ca-certificates.crt")
            );
            assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
            assert_eq!(c.get("sasl.username"), Some("relay"));
            assert_eq!(c.get("sasl.password"), Some("pw"));
        }
        let plain = KafkaConfig {
            brokers: Some("b:9092".into()),
            ..KafkaConfig::default()
        };
        assert_eq!(plain.admin_config().unwrap().get("sasl.username"), None);
        // librdkafka is built with TLS and SCRAM: clients with these settings can be created
        // (without OpenSSL it refuses `sasl_ssl` and SCRAM outright).
        use rdkafka::producer::FutureProducer;
        let created: Result<FutureProducer, _> = cfg.producer_config().unwrap().create();
        assert!(created.is_ok(), "{:?}", created.err());
        assert!(
            plain.retention_ms > 0,
            "retention must be finite by default"
        );
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: None,
            topic_prefix: "wearhouse".into(),
            partitions: 6,
            replication: 1,
            retention_ms: DEFAULT_RETENTION_MS,
            security_protocol: "plaintext".into(),
            ssl_ca_location: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            relay_batch: 1000,
            group: "wearhouse-projections".into(),
            session_timeout_ms: 6000,
            max_poll_interval_ms: 10000,
            producer_extra: String::new(),
            flush_markers: false,
        }
    }
}

/// Topic names derived from the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// JSON envelopes of aggregate events.
    pub events: String,
    /// Raw inbound payload bytes, one message per stored chunk.
    pub raw: String,
    /// Arrow IPC sample batches, as stored.
    pub samples: String,
}

#[derive(Debug, thiserror::Error)]
#[error("WEARHOUSE_KAFKA_BROKERS is not set: this command needs a Kafka broker")]
pub struct NoBrokers;

impl KafkaConfig {
    pub fn topics(&self) -> Topics {
        let p = &self.topic_prefix;
        Topics {
            events: format!("{p}.events"),
            raw: format!("{p}.raw"),
            samples: format!("{p}.samples"),
        }
    }

    pub fn brokers(&self) -> Result<&str, NoBrokers> {
        self.brokers.as_deref().ok_or(NoBrokers)
    }

    /// Every client's settings: brokers, and TLS/SASL for the broker connection.
    fn base(&self) -> Result<ClientConfig, NoBrokers> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers()?)
            .set("security.protocol", &self.security_protocol);
        let optional = [
            ("ssl.ca.location", &self.ssl_ca_location),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                c.set(key, v);
            }
        }
        Ok(c)
    }

    /// The relay's producer: idempotent and `acks=all`, so librdkafka's own retries neither
    /// reorder nor duplicate within a partition.
    pub fn producer_config(&self) -> Result<ClientConfig, NoBrokers> {
        let mut c = self.base()?;
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            // A batch that cannot be delivered within this fails, and the relay retries it
            // from its checkpoint with a fresh producer.
            .set("message.timeout.ms", "30000")
            .set("queue.buffering.max.messages", "200000")
            .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string());
        for (k, v) in self
            .producer_extra
            .split(',')
            .filter_map(|kv| kv.split_once('='))
        {
            c.set(k.trim(), v.trim());
        }
        Ok(c)
    }

    /// Consumers of the projection group: offsets live in Postgres, so Kafka's are only
    /// informational and auto-commit is off.
    pub fn group_consumer_config(&self) -> Result<ClientConfig, NoBrokers> {
        let mut c = self.base()?;
        c.set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "max.poll.interval.ms",
                self.max_poll_interval_ms.to_string(),
            )
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "50");
        Ok(c)
    }

    /// A group-less consumer that reads partitions it assigns itself (replay, tests, bench).
    pub fn reader_config(&self) -> Result<ClientConfig, NoBrokers> {
        let mut c = self.base()?;
        // librdkafka insists on a group.id even for manual assignment; nothing is committed.
        c.set("group.id", "wearhouse-reader")
            .set("isolation.level", "read_uncommitted")
            .set("fetch.wait.max.ms", "50")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        Ok(c)
    }

    pub fn admin_config(&self) -> Result<ClientConfig, NoBrokers> {
        self.base()
    }
}

/// Largest message the relay produces and its topics accept (`max.message.bytes`): a raw
/// payload chunk is up to 8 MiB, plus headers and batch framing. Apache Kafka's default
/// (1 MiB) would refuse chunks.
pub const MAX_MESSAGE_BYTES: usize = 9 << 20;

/// Default `retention.ms` of the topics the relay creates: 7 days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// How long the relay waits for a broker before it retries a batch.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(500);
