//! Replay for data engineers: the log (from Postgres, or from the events topic) from a
//! position or a time, filtered by user and event type, as JSON lines. Each line is exactly
//! the envelope published on the events topic.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use uuid::Uuid;
use wearhouse_projections::log::read_after;
use wearhouse_projections::Cursor;

use crate::config::KafkaConfig;
use crate::envelope::{self, Envelope};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    NoBrokers(#[from] crate::config::NoBrokers),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    #[error("topic {0} does not exist")]
    NoTopic(String),
}

/// Which entries to replay. Empty lists mean "all".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only entries whose position is at least this.
    pub from_position: Option<i64>,
    /// Only entries recorded at or after this time.
    pub from_time: Option<DateTime<Utc>>,
    pub users: Vec<Uuid>,
    pub event_types: Vec<String>,
    /// Stop after this many lines.
    pub limit: Option<u64>,
}

impl Filter {
    pub fn matches(&self, e: &Envelope) -> bool {
        self.from_position.is_none_or(|p| e.position >= p)
            && self.from_time.is_none_or(|t| e.recorded_at >= t)
            && (self.users.is_empty() || e.user_id.is_some_and(|u| self.users.contains(&u)))
            && (self.event_types.is_empty() || self.event_types.contains(&e.event_type))
    }

    fn full(&self, written: u64) -> bool {
        self.limit.is_some_and(|l| written >= l)
    }
}

/// Replays the Postgres log in log order `(tx, position)` up to its current end. Returns the
/// number of lines written.
pub async fn from_postgres(
    client: &impl GenericClient,
    filter: &Filter,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    // Start just before the first entry (in log order) that passes the position and time
    // bounds; every later entry that passes them sorts after it.
    let start = client
        .query_opt(
            "SELECT tx::text::bigint, position FROM events \
             WHERE position >= $1 AND ($2::timestamptz IS NULL OR recorded_at >= $2) \
             ORDER BY tx, position LIMIT 1",
            &[&filter.from_position.unwrap_or(i64::MIN), &filter.from_time],
        )
        .await?;
    let Some(start) = start else {
        return Ok(0);
    };
    let mut cursor = Cursor {
        tx: start.get(0),
        position: start.get::<_, i64>(1) - 1,
    };
    let mut written = 0;
    loop {
        let entries = read_after(client, cursor, 5000).await?;
        let Some(last) = entries.last() else {
            break;
        };
        cursor = last.cursor;
        for e in &entries {
            if filter.full(written) {
                return Ok(written);
            }
            if filter.matches(&Envelope::from(e)) {
                out.write_all(&envelope::encode(e))?;
                out.write_all(b"\n")?;
                written += 1;
            }
        }
    }
    out.flush()?;
    Ok(written)
}

/// Replays the events topic up to the end each partition had when the replay started, one
/// partition after another in offset order (so per-user order, not global order). Repeats
/// published by the relay after a failure are written once.
pub async fn from_kafka(
    cfg: &KafkaConfig,
    filter: &Filter,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    let topic = cfg.topics().events;
    let consumer: StreamConsumer = cfg.reader_config()?.create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReplayError::NoTopic(topic));
    }
    let mut seen = HashSet::new();
    let mut written = 0;
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
        tracing::debug!(partition, low, high, "replaying partition");
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        loop {
            let m = consumer.recv().await?;
            if envelope::is_marker(m.payload()) {
                if m.offset() + 1 >= high {
                    break;
                }
                continue;
            }
            let e = envelope::decode(m.payload().unwrap_or_default()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("partition {partition} offset {}: {e}", m.offset()),
                )
            })?;
            if filter.full(written) {
                return Ok(written);
            }
            if filter.matches(&e) && seen.insert(e.position) {
                out.write_all(m.payload().unwrap_or_default())?;
                out.write_all(b"\n")?;
                written += 1;
            }
            if m.offset() + 1 >= high {
                break;
            }
        }
    }
    out.flush()?;
    Ok(written)
}
