//! Shared harness of the Kafka integration tests: a fresh database per test (migrated by the
//! built binary), unique topic names, SQL appends, and an independent consumer.
//!
//! Needs WEARHOUSE_TEST_PG (admin URL of a Postgres cluster) and WEARHOUSE_TEST_KAFKA
//! (bootstrap servers of a running broker, e.g. from `scripts/kafka.sh start`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use rand::Rng;
use serde_json::{json, Value};
use uuid::Uuid;
use wearhouse_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use wearhouse_kafka::rdkafka::message::Headers;
use wearhouse_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use wearhouse_kafka::KafkaConfig;
use wearhouse_log::read::read_after;
use wearhouse_log::{Cursor, LogEntry};

pub const PARTITIONS: i32 = 4;

pub struct Env {
    pub db_url: String,
    pub pool: Pool,
    pub pg: tokio_postgres::Config,
    pub kafka: KafkaConfig,
}

fn required(var: &str, example: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: the Kafka integration tests need it (e.g. {var}={example}); see kafka/README.md")
    })
}

pub fn test_kafka() -> String {
    required("WEARHOUSE_TEST_KAFKA", "127.0.0.1:19092")
}

fn suffix() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// A migrated database of its own and topics of its own on the test broker.
pub async fn setup() -> Env {
    setup_with_brokers(&test_kafka()).await
}

pub async fn setup_with_brokers(brokers: &str) -> Env {
    let admin_url = required(
        "WEARHOUSE_TEST_PG",
        "postgres://postgres@127.0.0.1:55460/postgres",
    );
    let name = format!("t_{}", suffix());
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to WEARHOUSE_TEST_PG={admin_url}: {e}"));
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let mut pg = tokio_postgres::Config::from_str(&admin_url).expect("WEARHOUSE_TEST_PG is a URL");
    pg.dbname(&name);
    let db_url = format!(
        "{}/{name}",
        admin_url.rsplit_once('/').expect("URL with a database").0
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wearhouse"))
        .arg("migrate")
        .env("DATABASE_URL", &db_url)
        .output()
        .expect("run wearhouse migrate");
    assert!(
        out.status.success(),
        "wearhouse migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manager = deadpool_postgres::Manager::new(pg.clone(), tokio_postgres::NoTls);
    let pool = Pool::builder(manager).max_size(8).build().expect("pool");
    let kafka = KafkaConfig {
        brokers: Some(brokers.to_string()),
        topic_prefix: name.clone(),
        partitions: PARTITIONS,
        relay_batch: 100,
        // tansu hides each partition's last record batch (see KafkaConfig::flush_markers).
        flush_markers: true,
        group: format!("{name}-group"),
        ..KafkaConfig::default()
    };
    Env {
        db_url,
        pool,
        pg,
        kafka,
    }
}

impl Env {
    /// The wearhouse binary with this test's database and Kafka settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wearhouse"));
        c.args(args)
            .env("DATABASE_URL", &self.db_url)
            .env(
                "WEARHOUSE_KAFKA_BROKERS",
                self.kafka.brokers.as_deref().unwrap_or_default(),
            )
            .env("WEARHOUSE_KAFKA_TOPIC_PREFIX", &self.kafka.topic_prefix)
            .env("WEARHOUSE_KAFKA_PARTITIONS", PARTITIONS.to_string())
            .env("WEARHOUSE_KAFKA_GROUP", &self.kafka.group)
            .env(
                "WEARHOUSE_KAFKA_RELAY_BATCH",
                self.kafka.relay_batch.to_string(),
            )
            .env("WEARHOUSE_KAFKA_FLUSH_MARKERS", "true")
            .env("WEARHOUSE_LOG", "info,rdkafka=warn")
            .stdin(Stdio::null());
        c
    }

    /// Starts `wearhouse <args>`; the process is killed when the handle is dropped, so a
    /// failing test leaves no worker behind.
    pub fn spawn(&self, args: &[&str], log: &str) -> Spawned {
        let file = std::fs::File::create(std::env::temp_dir().join(log)).expect("log file");
        Spawned(
            self.command(args)
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .expect("spawn wearhouse"),
        )
    }

    pub async fn client(&self) -> deadpool_postgres::Object {
        self.pool.get().await.expect("database connection")
    }

    /// The whole committed log, in log order.
    /// The whole committed log, in log order. Transactions of other tests in the same cluster
    /// can hold the reader's horizon back for a moment, so read until every committed row is in.
    pub async fn log(&self) -> Vec<LogEntry> {
        let client = self.client().await;
        let committed: i64 = client
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .expect("count log")
            .get(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut all = Vec::new();
        let mut cursor = Cursor::START;
        while (all.len() as i64) < committed {
            let batch = read_after(&client, cursor, 10_000).await.expect("read log");
            match batch.last() {
                Some(last) => cursor = last.cursor,
                None => {
                    assert!(
                        Instant::now() < deadline,
                        "log reader stuck behind the horizon"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            all.extend(batch);
        }
        all
    }

    pub async fn relay_checkpoint(&self) -> i64 {
        let client = self.client().await;
        client
            .query_opt("SELECT position FROM checkpoints WHERE name = 'relay'", &[])
            .await
            .expect("checkpoint")
            .map_or(0, |r| r.get(0))
    }

    pub async fn relay_lag(&self) -> i64 {
        wearhouse_kafka::relay_lag(&self.client().await)
            .await
            .expect("relay lag")
    }

    /// Waits until the relay has published everything committed so far.
    pub async fn wait_relayed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let lag = self.relay_lag().await;
            if lag == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "relay still {lag} entries behind after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A child process killed on drop.
pub struct Spawned(Child);

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One event to append: (user, aggregate type, aggregate id, sequence, event type, payload).
pub struct Ev {
    pub user: Option<Uuid>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub payload: Value,
}

/// Appends in one transaction, as the event store does (one INSERT … unnest).
pub async fn append(client: &deadpool_postgres::Object, events: &[Ev]) {
    let col = |f: &dyn Fn(&Ev) -> String| events.iter().map(f).collect::<Vec<_>>();
    let types = col(&|e| e.aggregate_type.clone());
    let ids = col(&|e| e.aggregate_id.clone());
    let event_types = col(&|e| e.event_type.clone());
    let versions = col(&|_| "1".to_string());
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    let payloads: Vec<&Value> = events.iter().map(|e| &e.payload).collect();
    let metadata: Vec<Value> = events
        .iter()
        .map(|e| json!({"actor": "test", "user_id": e.user}))
        .collect();
    let users: Vec<Option<Uuid>> = events.iter().map(|e| e.user).collect();
    client
        .execute(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, user_id) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::uuid[])",
            &[&types, &ids, &sequences, &event_types, &versions, &payloads, &metadata, &users],
        )
        .await
        .expect("append events");
}

/// Writes realistic `User` histories: each user is created, then updated many times (the
/// last update wins, so a re-applied old update shows in the read model), some are deleted.
/// Also entries without a user (keyed by aggregate). `rounds` transactions of ~`per_tx` events.
pub struct Writer {
    pub users: Vec<Uuid>,
    sequences: HashMap<Uuid, i64>,
    deleted: Vec<Uuid>,
    round: usize,
}

impl Writer {
    pub fn new(users: usize) -> Self {
        Writer {
            users: (0..users).map(|_| Uuid::new_v4()).collect(),
            sequences: HashMap::new(),
            deleted: Vec::new(),
            round: 0,
        }
    }

    fn next(&mut self, i: usize) -> Ev {
        let index = (self.round * 7 + i) % self.users.len();
        let user = self.users[index];
        let seq = self.sequences.entry(user).or_insert(0);
        *seq += 1;
        let at = chrono::Utc::now().to_rfc3339();
        let (event_type, payload) = if *seq == 1 {
            (
                "UserCreated",
                json!({"type": "UserCreated", "id": user, "at": at,
                       "profile": {"first_name": "F", "last_name": "L", "email": format!("{user}@example.com"), "external_user_id": null}}),
            )
        } else if index.is_multiple_of(5) && *seq >= 20 && !self.deleted.contains(&user) {
            self.deleted.push(user);
            ("UserDeleted", json!({"type": "UserDeleted", "at": at}))
        } else {
            (
                "UserUpdated",
                json!({"type": "UserUpdated", "at": at,
                       "changes": {"first_name": format!("name-{seq}"), "last_name": format!("é\"\\ {}", self.round)}}),
            )
        };
        Ev {
            user: Some(user),
            aggregate_type: "User".into(),
            aggregate_id: user.to_string(),
            sequence: *seq,
            event_type: event_type.into(),
            payload,
        }
    }

    /// One transaction of `n` user events plus one entry that concerns no user.
    pub async fn write(&mut self, client: &deadpool_postgres::Object, n: usize) {
        let mut events: Vec<Ev> = (0..n).map(|i| self.next(i)).collect();
        events.push(Ev {
            user: None,
            aggregate_type: "Bench".into(),
            aggregate_id: format!("system-{}", self.round % 3),
            sequence: (self.round / 3 + 1) as i64,
            event_type: "Noted".into(),
            payload: json!({"round": self.round, "nested": {"b": [1, 2.5, null], "a": true}}),
        });
        // Sequences of the system aggregates must stay unique per aggregate id.
        self.round += 1;
        append(client, &events).await;
    }
}

/// One message as an independent consumer sees it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: HashMap<String, Vec<u8>>,
}

/// An independent, group-less consumer of every partition of `topic` from the beginning.
pub fn reader(kafka: &KafkaConfig, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = kafka
        .reader_config()
        .expect("brokers")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Receives until `want(received)` holds; panics after `timeout`.
pub async fn receive_until(
    consumer: &StreamConsumer,
    received: &mut Vec<Msg>,
    timeout: Duration,
    want: impl Fn(&[Msg]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !want(received) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out after {timeout:?} with {} messages",
            received.len()
        );
        match tokio::time::timeout(left.min(Duration::from_millis(500)), consumer.recv()).await {
            Ok(Ok(m)) if wearhouse_kafka::envelope::is_marker(m.payload()) => {}
            Ok(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                received.push(Msg {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: String::from_utf8(m.key().unwrap_or_default().to_vec())
                        .expect("utf-8 key"),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Ok(Err(e)) => eprintln!("consumer: {e}"),
            Err(_) => {}
        }
    }
}

/// Receives until `want` distinct entries arrived (repeats allowed).
pub async fn receive_all(
    consumer: &StreamConsumer,
    received: &mut Vec<Msg>,
    want: usize,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let distinct = positions(received).len();
        if distinct >= want {
            return;
        }
        // Counting distinct positions decodes every message, so only recount after at
        // least as many new messages as are still missing.
        let target = received.len() + (want - distinct);
        let left = deadline.saturating_duration_since(Instant::now());
        receive_until(consumer, received, left, |r| r.len() >= target).await;
    }
}

/// Whatever entry messages arrive within `wait`.
pub async fn drain(consumer: &StreamConsumer, wait: Duration) -> Vec<Msg> {
    let mut got = Vec::new();
    let until = Instant::now() + wait;
    while Instant::now() < until {
        let before = got.len();
        receive_until(consumer, &mut got, wait, |r| {
            r.len() > before || Instant::now() >= until
        })
        .await;
    }
    got
}

pub fn positions(received: &[Msg]) -> std::collections::HashSet<i64> {
    received
        .iter()
        .map(|m| {
            wearhouse_kafka::envelope::decode(&m.value)
                .expect("envelope")
                .position
        })
        .collect()
}

/// The key each log entry is published under.
pub fn key_of(e: &LogEntry) -> String {
    e.user_id
        .map_or_else(|| e.aggregate_id.clone(), |u| u.to_string())
}

/// Asserts that every log entry was received, and that per key the entries arrived in log
/// order once repeats (a relay re-publishing an unconfirmed batch) are dropped.
pub fn assert_complete_and_ordered(log: &[LogEntry], received: &[Msg]) {
    let mut expected: HashMap<String, Vec<i64>> = HashMap::new();
    for e in log {
        expected.entry(key_of(e)).or_default().push(e.position());
    }
    let mut got: HashMap<String, Vec<i64>> = HashMap::new();
    let mut last: HashMap<String, Cursor> = HashMap::new();
    for m in received {
        let env = wearhouse_kafka::envelope::decode(&m.value).expect("envelope");
        assert_eq!(m.key, env.key(), "message key is the user (or aggregate)");
        let seen = last.entry(m.key.clone()).or_default();
        if env.cursor() > *seen {
            *seen = env.cursor();
            got.entry(m.key.clone()).or_default().push(env.position);
        }
    }
    assert_eq!(got.len(), expected.len(), "keys received");
    for (key, want) in &expected {
        assert_eq!(
            got.get(key),
            Some(want),
            "entries of key {key}, in log order"
        );
    }
}
