//! Projection workers as a Kafka consumer group: the same `Projection` implementations as the
//! Postgres runner, fed from the events topic.
//!
//! Exactly-once effect: for each (projection, topic, partition) the worker stores the next
//! offset in `kafka_offsets`, in the transaction that writes the read model. The row is
//! locked for the batch, so a worker that lost its partitions in a rebalance cannot apply a
//! batch twice. On assignment the consumer starts at the stored offsets, not at Kafka's.
//!
//! Order is per partition, i.e. per user: a projection run from Kafka must not depend on the
//! relative order of entries of different users.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};
use wearhouse_log::{Cursor, LogEntry};
use wearhouse_projections::{Projection, ProjectionError};

use crate::config::{KafkaConfig, NoBrokers};
use crate::envelope::{self, Envelope};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    NoBrokers(#[from] NoBrokers),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("partition {partition} offset {offset}: not an envelope: {source}")]
    Decode {
        partition: i32,
        offset: i64,
        source: serde_json::Error,
    },
    #[error("partition {partition}: got offset {got}, expected {expected}; seeking back")]
    Gap {
        partition: i32,
        got: i64,
        expected: i64,
    },
}

/// One consumed message, detached from the consumer.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    /// None for a flush marker (it only advances the offset).
    pub envelope: Option<Envelope>,
}

/// Where each assigned partition should start: the smallest stored next offset over all
/// projections; the beginning when some projection has never seen the partition.
async fn start_offsets(
    client: &impl tokio_postgres::GenericClient,
    topic: &str,
    projections: &[String],
    partitions: &[i32],
) -> Result<HashMap<i32, i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT partition, min(next_offset), count(*) FROM kafka_offsets \
             WHERE topic = $1 AND projection = ANY($2) AND partition = ANY($3) GROUP BY partition",
            &[&topic, &projections, &partitions],
        )
        .await?;
    Ok(rows
        .iter()
        .filter(|r| r.get::<_, i64>(2) == projections.len() as i64)
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Seeks newly assigned partitions to the offsets stored in Postgres. The callback is
/// synchronous, so the lookup runs on its own thread with its own connection.
struct SeekContext {
    pg: tokio_postgres::Config,
    topic: String,
    projections: Vec<String>,
}

impl ClientContext for SeekContext {}

impl SeekContext {
    fn stored(&self, partitions: Vec<i32>) -> Result<HashMap<i32, i64>, String> {
        let (pg, topic, projections) = (
            self.pg.clone(),
            self.topic.clone(),
            self.projections.clone(),
        );
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let (client, connection) = pg
                    .connect(wearhouse_projections::pgtls::connector())
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                start_offsets(&client, &topic, &projections, &partitions)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join()
        .map_err(|_| "offset lookup panicked".to_string())?
    }
}

impl ConsumerContext for SeekContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mine: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                let partitions = mine.iter().map(|(_, p)| *p).collect();
                match self.stored(partitions) {
                    Ok(stored) => {
                        for (topic, p) in &mine {
                            let offset = stored
                                .get(p)
                                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                            if let Err(e) = tpl.set_partition_offset(topic, *p, offset) {
                                warn!(partition = p, error = %e, "cannot set start offset");
                            }
                        }
                    }
                    // Kafka's committed offsets never run ahead of Postgres (they are committed
                    // after it), and the gap check in `apply_partition` seeks back if needed.
                    Err(e) => warn!(error = %e, "stored offsets unavailable; using Kafka's"),
                }
                info!(partitions = ?mine.iter().map(|(_, p)| p).collect::<Vec<_>>(), "partitions assigned");
                if let Err(e) = consumer.assign(tpl) {
                    error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!("partitions revoked");
                if let Err(e) = consumer.unassign() {
                    error!(error = %e, "unassign failed");
                }
            }
            other => error!(error = ?other, "rebalance error"),
        }
    }
}

pub struct Worker {
    pool: Pool,
    cfg: KafkaConfig,
    pg: tokio_postgres::Config,
    projections: Vec<Arc<dyn Projection>>,
    topic: String,
    batch: usize,
}

impl Worker {
    pub fn new(
        pool: Pool,
        pg: tokio_postgres::Config,
        cfg: KafkaConfig,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Self {
        let topic = cfg.topics().events;
        Worker {
            pool,
            cfg,
            pg,
            projections,
            topic,
            batch: 1000,
        }
    }

    fn names(&self) -> Vec<String> {
        self.projections
            .iter()
            .map(|p| p.name().to_string())
            .collect()
    }

    /// Consumes until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        let context = SeekContext {
            pg: self.pg.clone(),
            topic: self.topic.clone(),
            projections: self.names(),
        };
        let consumer: StreamConsumer<SeekContext> = self
            .cfg
            .group_consumer_config()?
            .create_with_context(context)?;
        consumer.subscribe(&[&self.topic])?;
        info!(topic = %self.topic, group = %self.cfg.group, projections = ?self.names(), "kafka projection worker started");
        let mut failures = 0u32;
        loop {
            let first = tokio::select! {
                m = consumer.recv() => m,
                _ = shutdown.changed() => {
                    info!("kafka projection worker stopped");
                    return Ok(());
                }
            };
            let first = match first {
                Ok(m) => to_consumed(m),
                Err(e) => {
                    warn!(error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut batch = vec![first];
            // Gather whatever else is already there, briefly, so one transaction covers many.
            while batch.len() < self.batch {
                match tokio::time::timeout(Duration::from_millis(10), consumer.recv()).await {
                    Ok(Ok(m)) => batch.push(to_consumed(m)),
                    Ok(Err(e)) => {
                        warn!(error = %e, "consumer error");
                        break;
                    }
                    Err(_) => break,
                }
            }
            let mut by_partition: BTreeMap<i32, Vec<Consumed>> = BTreeMap::new();
            let mut poisoned = Vec::new();
            for c in batch {
                match c {
                    Ok(c) if !poisoned.contains(&c.partition) => {
                        by_partition.entry(c.partition).or_default().push(c)
                    }
                    Ok(_) => {}
                    // An undecodable message stops its partition (like a projection error
                    // stops the Postgres runner) rather than being skipped silently.
                    Err((partition, e)) => {
                        error!(partition, error = %e, "undecodable message");
                        by_partition.remove(&partition);
                        poisoned.push(partition);
                    }
                }
            }
            let mut commit = TopicPartitionList::new();
            let mut failed = !poisoned.is_empty();
            for partition in poisoned {
                self.rewind(&consumer, partition).await;
            }
            for (partition, messages) in by_partition {
                match self.apply_partition(partition, &messages).await {
                    Ok(next) => {
                        commit.add_partition_offset(
                            &self.topic,
                            partition,
                            Offset::Offset(next),
                        )?;
                    }
                    Err(e) => {
                        failed = true;
                        warn!(partition, error = %e, "batch not applied; rewinding the partition");
                        self.rewind(&consumer, partition).await;
                    }
                }
            }
            // Informational only (lag tools): the truth is in kafka_offsets.
            if commit.count() > 0 {
                if let Err(e) = consumer.commit(&commit, CommitMode::Async) {
                    debug!(error = %e, "offset commit to Kafka failed");
                }
            }
            failures = if failed { (failures + 1).min(5) } else { 0 };
            if failed {
                tokio::time::sleep(Duration::from_millis(100 << failures)).await;
            }
        }
    }

    async fn rewind(&self, consumer: &StreamConsumer<SeekContext>, partition: i32) {
        let offset = match self.pool.get().await {
            Ok(client) => start_offsets(&**client, &self.topic, &self.names(), &[partition])
                .await
                .ok()
                .map(|m| m.get(&partition).copied().unwrap_or(0)),
            Err(_) => None,
        };
        let target = offset.map_or(Offset::Stored, Offset::Offset);
        if let Err(e) = consumer.seek(&self.topic, partition, target, Duration::from_secs(5)) {
            warn!(partition, error = %e, "seek failed");
        }
    }

    /// Applies one partition's messages to every projection in one transaction. Returns the
    /// next offset to read.
    pub async fn apply_partition(
        &self,
        partition: i32,
        messages: &[Consumed],
    ) -> Result<i64, WorkerError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for p in &self.projections {
            apply_one(&tx, p.as_ref(), &self.topic, partition, messages).await?;
        }
        tx.commit().await?;
        Ok(messages.last().map_or(0, |m| m.offset + 1))
    }
}

async fn apply_one(
    tx: &Transaction<'_>,
    projection: &dyn Projection,
    topic: &str,
    partition: i32,
    messages: &[Consumed],
) -> Result<(), WorkerError> {
    let name = projection.name();
    tx.execute(
        "INSERT INTO kafka_offsets (projection, topic, partition) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
        &[&name, &topic, &partition],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT next_offset, tx, position FROM kafka_offsets \
             WHERE projection = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
            &[&name, &topic, &partition],
        )
        .await?;
    let next: i64 = row.get(0);
    let mut seen = Cursor {
        tx: row.get(1),
        position: row.get(2),
    };
    // Entries the Postgres runner already applied to this read model (before a switch to
    // Kafka) are not applied again.
    let baseline = tx
        .query_opt(
            "SELECT tx, position FROM checkpoints WHERE name = $1",
            &[&name],
        )
        .await?
        .map_or(Cursor::START, |r| Cursor {
            tx: r.get(0),
            position: r.get(1),
        });
    let first = messages[0].offset;
    if next > 0 && first > next {
        return Err(WorkerError::Gap {
            partition,
            got: first,
            expected: next,
        });
    }
    let mut entries: Vec<LogEntry> = Vec::new();
    for e in messages
        .iter()
        .filter(|m| m.offset >= next)
        .filter_map(|m| m.envelope.as_ref())
    {
        let cursor = e.cursor();
        // A repeat from the relay sorts at or before what this partition already delivered.
        // Only the kinds of entries the model reads, as the Postgres reader would hand it.
        let wanted = projection.event_types();
        if cursor > seen
            && cursor > baseline
            && (wanted.is_empty() || wanted.contains(&e.event_type.as_str()))
        {
            entries.push(e.clone().into());
        }
        seen = seen.max(cursor);
    }
    let last_offset = messages[messages.len() - 1].offset;
    if last_offset < next {
        return Ok(());
    }
    if !entries.is_empty() {
        wearhouse_projections::runner::apply_purging(projection, tx, &entries).await?;
    }
    tx.execute(
        "UPDATE kafka_offsets SET next_offset = $4, tx = $5, position = $6, updated_at = now() \
         WHERE projection = $1 AND topic = $2 AND partition = $3",
        &[
            &name,
            &topic,
            &partition,
            &(last_offset + 1),
            &seen.tx,
            &seen.position,
        ],
    )
    .await?;
    Ok(())
}

fn to_consumed(m: rdkafka::message::BorrowedMessage<'_>) -> Result<Consumed, (i32, WorkerError)> {
    let (partition, offset) = (m.partition(), m.offset());
    if envelope::is_marker(m.payload()) {
        return Ok(Consumed {
            partition,
            offset,
            envelope: None,
        });
    }
    let envelope = envelope::decode(m.payload().unwrap_or_default()).map_err(|source| {
        (
            partition,
            WorkerError::Decode {
                partition,
                offset,
                source,
            },
        )
    })?;
    Ok(Consumed {
        partition,
        offset,
        envelope: Some(envelope),
    })
}
