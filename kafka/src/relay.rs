//! The relay: publishes every committed log entry, in log order, to Kafka.
//!
//! Loop: read a batch after the `relay` checkpoint, map each entry to its messages, produce
//! them all (idempotent producer, `acks=all`), wait until the broker has confirmed every one,
//! and only then store the new checkpoint. A crash or broker outage therefore never loses an
//! entry; it can at worst publish the unconfirmed batch again, which consumers recognise by the
//! position each message carries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};
use wearhouse_log::read::read_after;
use wearhouse_log::{Cursor, LogEntry};
use wearhouse_projections::pglock::{LockKey, SessionLock};

use crate::blobs::{self, Attachment};
use crate::config::{KafkaConfig, NoBrokers, Topics, RETRY_PAUSE};
use crate::envelope::{self, entry_key};

/// The relay's row in `checkpoints`.
pub const CHECKPOINT: &str = "relay";
/// Session advisory lock held by the active relay, so a second one waits as a standby.
const LOCK_KEY: i64 = 7_261_002;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    NoBrokers(#[from] NoBrokers),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Blob(#[from] blobs::BlobError),
    #[error("delivery of entry {position} not confirmed: {reason}")]
    Delivery { position: i64, reason: String },
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    pub topic: String,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// The log entry it came from (for error reports and deduplication).
    pub position: i64,
}

/// The envelope message of one log entry on the events topic. Entries that refer to stored
/// bytes (raw payloads, sample batches) also get messages on the raw and samples topics,
/// built in `Relay::step` because their bytes are read from Postgres while publishing.
pub fn messages_for(topics: &Topics, entry: &LogEntry) -> Vec<OutMessage> {
    // Secrets and hashes never reach the topic.
    let redacted = crate::redact::redacted(entry);
    let entry = redacted.as_ref().unwrap_or(entry);
    vec![OutMessage {
        topic: topics.events.clone(),
        key: entry_key(entry.user_id, &entry.aggregate_id),
        value: envelope::encode(entry),
        headers: vec![
            (
                envelope::HEADER_POSITION,
                entry.position().to_string().into_bytes(),
            ),
            (
                envelope::HEADER_EVENT_TYPE,
                entry.event_type.clone().into_bytes(),
            ),
            (
                envelope::HEADER_AGGREGATE_TYPE,
                entry.aggregate_type.clone().into_bytes(),
            ),
        ],
        position: entry.position(),
    }]
}

/// Creates the topics with the configured partitions and retention; existing ones are kept.
pub async fn ensure_topics(cfg: &KafkaConfig) -> Result<(), RelayError> {
    let admin: AdminClient<DefaultClientContext> = cfg.admin_config()?.create()?;
    let topics = cfg.topics();
    let retention = cfg.retention_ms.to_string();
    let max_bytes = crate::config::MAX_MESSAGE_BYTES.to_string();
    let new: Vec<NewTopic<'_>> = [&topics.events, &topics.raw, &topics.samples]
        .into_iter()
        .map(|name| {
            NewTopic::new(
                name,
                cfg.partitions,
                TopicReplication::Fixed(cfg.replication),
            )
            .set("retention.ms", &retention)
            .set("max.message.bytes", &max_bytes)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(name) => info!(topic = name, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                warn!(topic = name, error = %code, "topic creation failed");
                return Err(KafkaError::AdminOp(code).into());
            }
        }
    }
    Ok(())
}

/// Entries committed to the log that the relay has not published yet (for `/metrics`).
pub async fn relay_lag(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) FROM events, \
               (SELECT coalesce(max(tx), 0) AS tx, coalesce(max(position), 0) AS position \
                  FROM checkpoints WHERE name = $1) c \
             WHERE (events.tx, events.position) > (c.tx::text::xid8, c.position)",
            &[&CHECKPOINT],
        )
        .await?;
    Ok(row.get(0))
}

/// The relay's stored checkpoint (created at the start of the log when missing).
pub async fn checkpoint(client: &impl GenericClient) -> Result<Cursor, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&CHECKPOINT],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT tx, position FROM checkpoints WHERE name = $1",
            &[&CHECKPOINT],
        )
        .await?;
    Ok(Cursor {
        tx: row.get(0),
        position: row.get(1),
    })
}

pub struct Relay {
    pool: Pool,
    cfg: KafkaConfig,
    topics: Topics,
    wake: Notify,
    progress: watch::Sender<Cursor>,
}

impl Relay {
    pub fn new(pool: Pool, cfg: KafkaConfig) -> Arc<Self> {
        let topics = cfg.topics();
        Arc::new(Relay {
            pool,
            cfg,
            topics,
            wake: Notify::new(),
            progress: watch::channel(Cursor::START).0,
        })
    }

    /// The last checkpoint this relay stored.
    pub fn progress(&self) -> watch::Receiver<Cursor> {
        self.progress.subscribe()
    }

    /// Wakes the relay at once (a writer in this process just committed).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    pub fn producer(&self) -> Result<FutureProducer, RelayError> {
        Ok(self.cfg.producer_config()?.create()?)
    }

    /// Publishes one batch after `cursor` and, once all of it is confirmed, stores the
    /// checkpoint and advances `cursor`. Returns how many entries it published.
    ///
    /// Raw payload chunks and sample batches are read one at a time while publishing, and the
    /// relay waits for confirmations whenever `IN_FLIGHT_BYTES` are unconfirmed, so a large
    /// payload never sits in memory whole.
    pub async fn step(
        &self,
        client: &impl GenericClient,
        producer: &FutureProducer,
        cursor: &mut Cursor,
    ) -> Result<usize, RelayError> {
        let entries = read_after(client, *cursor, self.cfg.relay_batch).await?;
        let Some(last) = entries.last().map(|e| e.cursor) else {
            return Ok(0);
        };
        let mut out = InFlight::default();
        for e in &entries {
            for m in messages_for(&self.topics, e) {
                out.send(producer, m).await?;
            }
            match blobs::attachment(e) {
                Some(Attachment::Raw(r)) => {
                    let mut offset = 0i64;
                    for chunk in 0..r.chunks {
                        let value = blobs::raw_chunk(client, &r.sha256, chunk).await?;
                        let headers = blobs::raw_headers(e, &r, chunk, offset);
                        offset += value.len() as i64;
                        let m = OutMessage {
                            topic: self.topics.raw.clone(),
                            key: blobs::key(e),
                            value,
                            headers,
                            position: e.position(),
                        };
                        out.send(producer, m).await?;
                    }
                }
                Some(Attachment::Samples(b)) => {
                    let m = OutMessage {
                        topic: self.topics.samples.clone(),
                        key: blobs::key(e),
                        value: blobs::sample_batch(client, b.batch_id).await?,
                        headers: blobs::sample_headers(e, &b),
                        position: e.position(),
                    };
                    out.send(producer, m).await?;
                }
                None => {}
            }
        }
        out.confirm().await?;
        if self.cfg.flush_markers {
            self.publish_markers(producer, last.position, &out.offsets)
                .await?;
        }
        client
            .execute(
                "UPDATE checkpoints SET tx = $2, position = $3, updated_at = now() WHERE name = $1",
                &[&CHECKPOINT, &last.tx, &last.position],
            )
            .await?;
        *cursor = last;
        self.progress.send_replace(last);
        debug!(entries = entries.len(), position = last.position, last_offsets = ?out.offsets, "relayed");
        Ok(entries.len())
    }

    /// One empty marker per partition used, so the batch's last record batch is not the
    /// partition's last (see `KafkaConfig::flush_markers`).
    async fn publish_markers(
        &self,
        producer: &FutureProducer,
        position: i64,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), RelayError> {
        let mut pending = Vec::new();
        for (topic, partition) in offsets.keys() {
            let headers = OwnedHeaders::new().insert(Header {
                key: envelope::HEADER_MARKER,
                value: Some("1"),
            });
            let record = FutureRecord::<(), [u8]>::to(topic)
                .partition(*partition)
                .payload(&[])
                .headers(headers);
            match producer.send_result(record) {
                Ok(d) => pending.push(d),
                Err((e, _)) => {
                    return Err(RelayError::Delivery {
                        position,
                        reason: e.to_string(),
                    })
                }
            }
        }
        for d in pending {
            let reason = match d.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => e.to_string(),
                Err(_) => "producer dropped".into(),
            };
            return Err(RelayError::Delivery { position, reason });
        }
        Ok(())
    }

    /// Relays until `shutdown` turns true, retrying through broker and database outages.
    /// Woken by NOTIFY from committing writers (when `listen` is given), `nudge`, or a poll.
    pub async fn run(
        self: Arc<Self>,
        listen: Option<tokio_postgres::Config>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if let Some(config) = listen {
            let me = self.clone();
            tokio::spawn(
                async move { crate::wake::forward_notifications(config, || me.nudge()).await },
            );
        }
        let mut failures = 0u32;
        let mut session = None;
        loop {
            if *shutdown.borrow() {
                info!("relay stopped");
                return;
            }
            let result = match &mut session {
                Some(s) => self.pass(s).await,
                None => match self.open().await {
                    Ok(s) => {
                        info!(topics = ?self.topics, from = s.cursor.position, "relay started");
                        session = Some(s);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            let pause = match result {
                Ok(n) if n > 0 => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    Duration::from_millis(200)
                }
                Err(e) => {
                    // Start over with a fresh connection and producer: an idempotent producer
                    // may be unusable after a failed delivery, and the checkpoint is the truth.
                    warn!(error = %e, "relay batch failed; retrying from the checkpoint");
                    session = None;
                    failures = (failures + 1).min(4);
                    RETRY_PAUSE * (1 << failures)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn open(&self) -> Result<Session, RelayError> {
        let lock = loop {
            let client = self.pool.get().await?;
            if let Some(lock) = SessionLock::try_acquire(client, LockKey::Id(LOCK_KEY)).await? {
                break lock;
            }
            debug!("another relay is active; standing by");
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        // From here any early return drops the guard, which closes its connection and so
        // frees the lock for a standby.
        let cursor = checkpoint(lock.client()).await?;
        ensure_topics(&self.cfg).await?;
        let producer = self.producer()?;
        self.progress.send_replace(cursor);
        Ok(Session {
            lock,
            producer,
            cursor,
        })
    }

    async fn pass(&self, s: &mut Session) -> Result<usize, RelayError> {
        self.step(s.lock.client(), &s.producer, &mut s.cursor).await
    }
}

/// Unconfirmed bytes after which the relay waits for the broker before producing more.
const IN_FLIGHT_BYTES: usize = 64 << 20;

/// Messages produced but not yet confirmed, and the last offset confirmed per partition.
#[derive(Default)]
struct InFlight {
    pending: Vec<(i64, String, DeliveryFuture)>,
    bytes: usize,
    offsets: BTreeMap<(String, i32), i64>,
}

impl InFlight {
    async fn send(&mut self, producer: &FutureProducer, m: OutMessage) -> Result<(), RelayError> {
        let headers = m.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        let mut record = FutureRecord::to(&m.topic)
            .key(&m.key)
            .payload(&m.value)
            .headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    self.pending.push((m.position, m.topic.clone(), delivery));
                    break;
                }
                // The local queue is full: let librdkafka drain it, then enqueue again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    return Err(RelayError::Delivery {
                        position: m.position,
                        reason: e.to_string(),
                    })
                }
            }
        }
        self.bytes += m.value.len();
        if self.bytes >= IN_FLIGHT_BYTES {
            self.confirm().await?;
        }
        Ok(())
    }

    /// Waits until every message produced so far is confirmed.
    async fn confirm(&mut self) -> Result<(), RelayError> {
        for (position, topic, delivery) in self.pending.drain(..) {
            match delivery.await {
                Ok(Ok(d)) => {
                    self.offsets.insert((topic, d.partition), d.offset);
                }
                Ok(Err((e, _))) => {
                    return Err(RelayError::Delivery {
                        position,
                        reason: e.to_string(),
                    })
                }
                Err(_) => {
                    return Err(RelayError::Delivery {
                        position,
                        reason: "producer dropped".into(),
                    })
                }
            }
        }
        self.bytes = 0;
        Ok(())
    }
}

struct Session {
    /// The active relay's lock, held for as long as the session lives; its connection is the
    /// one the relay reads the log on.
    lock: SessionLock,
    producer: FutureProducer,
    cursor: Cursor,
}
