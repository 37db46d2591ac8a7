//! Replay for data engineers: the log (from Postgres, or from the topics) from a position or
//! a time, filtered by user, event type, provider and kind, as JSON lines (exactly the
//! envelopes of the events topic), raw payload files (the original bytes, one file per
//! payload named by its SHA-256) or Arrow IPC files (one per sample batch, as stored).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use uuid::Uuid;
use wearhouse_log::read::read_after;
use wearhouse_log::{Cursor, LogEntry};

use crate::blobs::{self, Attachment};
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
    #[error("{0}")]
    Blob(#[from] crate::blobs::BlobError),
    #[error("message at partition {partition} offset {offset}: {reason}")]
    BadMessage {
        partition: i32,
        offset: i64,
        reason: String,
    },
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
    /// Only raw payloads of these providers / kinds (so only `RawPayloadReceived` entries).
    pub providers: Vec<String>,
    pub kinds: Vec<String>,
    /// Stop after this many lines (or files).
    pub limit: Option<u64>,
}

/// What the filter looks at, from an entry or from a message's headers.
struct Facts<'a> {
    position: i64,
    time: DateTime<Utc>,
    user: Option<Uuid>,
    event_type: &'a str,
    /// Provider and kind of a raw payload entry.
    raw: Option<(&'a str, &'a str)>,
}

impl Filter {
    pub fn matches(&self, e: &Envelope) -> bool {
        let entry = LogEntry::from(e.clone());
        let raw = match blobs::attachment(&entry) {
            Some(Attachment::Raw(r)) => Some((r.provider, r.kind)),
            _ => None,
        };
        self.admits(&Facts {
            position: e.position,
            time: e.recorded_at,
            user: e.user_id,
            event_type: &e.event_type,
            raw: raw.as_ref().map(|(p, k)| (p.as_str(), k.as_str())),
        })
    }

    fn admits(&self, f: &Facts<'_>) -> bool {
        let one_of = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
        };
        self.from_position.is_none_or(|p| f.position >= p)
            && self.from_time.is_none_or(|t| f.time >= t)
            && (self.users.is_empty() || f.user.is_some_and(|u| self.users.contains(&u)))
            && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == f.event_type))
            && one_of(&self.providers, f.raw.map(|r| r.0))
            && one_of(&self.kinds, f.raw.map(|r| r.1))
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
    let Some(mut cursor) = start(client, filter).await? else {
        return Ok(0);
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
                // The same view of the log as the topic: no secrets.
                let redacted = crate::redact::redacted(e);
                out.write_all(&envelope::encode(redacted.as_ref().unwrap_or(e)))?;
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
    let mut seen = HashSet::new();
    let mut written = 0;
    each_message(cfg, &cfg.topics().events, |m, value| {
        let e = envelope::decode(value).map_err(|e| bad(m, e))?;
        if filter.full(written) {
            return Ok(false);
        }
        if filter.matches(&e) && seen.insert(e.position) {
            out.write_all(value)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        Ok(true)
    })
    .await?;
    out.flush()?;
    Ok(written)
}

/// The cursor just before the first entry (in log order) that passes the position and time
/// bounds; every later entry that passes them sorts after it. None: no entry passes.
async fn start(
    client: &impl GenericClient,
    filter: &Filter,
) -> Result<Option<Cursor>, ReplayError> {
    let row = client
        .query_opt(
            "SELECT tx::text::bigint, position FROM events \
             WHERE position >= $1 AND ($2::timestamptz IS NULL OR recorded_at >= $2) \
             ORDER BY tx, position LIMIT 1",
            &[&filter.from_position.unwrap_or(i64::MIN), &filter.from_time],
        )
        .await?;
    Ok(row.map(|r| Cursor {
        tx: r.get(0),
        position: r.get::<_, i64>(1) - 1,
    }))
}

/// Calls `visit` with each entry of the Postgres log that passes `filter`, in log order,
/// until it returns false or the log ends.
async fn each_entry(
    client: &impl GenericClient,
    filter: &Filter,
    mut visit: impl AsyncFnMut(&LogEntry) -> Result<bool, ReplayError>,
) -> Result<(), ReplayError> {
    let Some(mut cursor) = start(client, filter).await? else {
        return Ok(());
    };
    loop {
        let entries = read_after(client, cursor, 1000).await?;
        let Some(last) = entries.last() else {
            return Ok(());
        };
        cursor = last.cursor;
        for e in &entries {
            if filter.matches(&Envelope::from(e)) && !visit(e).await? {
                return Ok(());
            }
        }
    }
}

fn bad(m: &BorrowedMessage<'_>, reason: impl std::fmt::Display) -> ReplayError {
    ReplayError::BadMessage {
        partition: m.partition(),
        offset: m.offset(),
        reason: reason.to_string(),
    }
}

/// Reads every partition of `topic` up to the end it had at the start, one after another,
/// skipping flush markers, until `visit` returns false.
async fn each_message(
    cfg: &KafkaConfig,
    topic: &str,
    mut visit: impl FnMut(&BorrowedMessage<'_>, &[u8]) -> Result<bool, ReplayError>,
) -> Result<(), ReplayError> {
    let consumer: StreamConsumer = cfg.reader_config()?.create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReplayError::NoTopic(topic.to_string()));
    }
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        tracing::debug!(partition, low, high, "replaying partition");
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        loop {
            let m = consumer.recv().await?;
            let last = m.offset() + 1 >= high;
            if !envelope::is_marker(m.payload()) && !visit(&m, m.payload().unwrap_or_default())? {
                return Ok(());
            }
            if last {
                break;
            }
        }
    }
    Ok(())
}

/// A message header as text.
pub fn header<'m>(m: &'m impl Message, name: &str) -> Option<&'m str> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

fn parsed<T: std::str::FromStr>(m: &BorrowedMessage<'_>, name: &str) -> Result<T, ReplayError> {
    header(m, name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad(m, format!("header {name} missing or invalid")))
}

/// Writes `bytes` to `dir/name` through a temporary file, so a file under its final name is
/// always complete.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let part = dir.join(format!("{name}.part"));
    std::fs::write(&part, bytes)?;
    std::fs::rename(part, dir.join(name))
}

/// Writes each raw payload that a passing `RawPayloadReceived` entry refers to as
/// `dir/<sha256>`, with its original bytes (decompressed chunk by chunk). A payload received
/// several times is written once. Returns the number of files.
pub async fn raw_from_postgres(
    client: &impl GenericClient,
    filter: &Filter,
    dir: &Path,
) -> Result<u64, ReplayError> {
    std::fs::create_dir_all(dir)?;
    let mut done = HashSet::new();
    each_entry(client, filter, async |e| {
        let Some(Attachment::Raw(r)) = blobs::attachment(e) else {
            return Ok(true);
        };
        if filter.full(done.len() as u64) {
            return Ok(false);
        }
        if done.contains(&r.sha256) {
            return Ok(true);
        }
        let part = dir.join(format!("{}.part", r.sha256));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&part)?);
        for chunk in 0..r.chunks {
            file.write_all(&blobs::raw_chunk(client, &r.sha256, chunk).await?)?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&part, dir.join(&r.sha256))?;
        done.insert(r.sha256);
        Ok(true)
    })
    .await?;
    Ok(done.len() as u64)
}

/// Reassembles the raw payloads of the raw topic into `dir/<sha256>`: each chunk message is
/// written at its `wearhouse-offset` into `<sha256>.part`, which is renamed once every chunk
/// arrived. Only one chunk is in memory at a time. Returns the number of files.
pub async fn raw_from_kafka(
    cfg: &KafkaConfig,
    filter: &Filter,
    dir: &Path,
) -> Result<u64, ReplayError> {
    std::fs::create_dir_all(dir)?;
    let mut chunks: HashMap<String, BTreeSet<i32>> = HashMap::new();
    let mut done = HashSet::new();
    each_message(cfg, &cfg.topics().raw, |m, value| {
        let sha256: String = parsed(m, blobs::HEADER_SHA256)?;
        let user = header(m, blobs::HEADER_USER).and_then(|u| u.parse().ok());
        let (provider, kind) = (
            header(m, blobs::HEADER_PROVIDER).unwrap_or_default(),
            header(m, blobs::HEADER_KIND).unwrap_or_default(),
        );
        let facts = Facts {
            position: parsed(m, envelope::HEADER_POSITION)?,
            time: parsed(m, blobs::HEADER_RECEIVED_AT)?,
            user,
            event_type: blobs::RAW_EVENT,
            raw: Some((provider, kind)),
        };
        if !filter.admits(&facts) || done.contains(&sha256) {
            return Ok(true);
        }
        if filter.full(done.len() as u64) {
            return Ok(false);
        }
        let (chunk, count, offset): (i32, usize, u64) = (
            parsed(m, blobs::HEADER_CHUNK)?,
            parsed(m, blobs::HEADER_CHUNKS)?,
            parsed(m, blobs::HEADER_OFFSET)?,
        );
        let part = dir.join(format!("{sha256}.part"));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&part)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(value)?;
        let got = chunks.entry(sha256.clone()).or_default();
        got.insert(chunk);
        if got.len() == count {
            file.sync_all()?;
            std::fs::rename(&part, dir.join(&sha256))?;
            chunks.remove(&sha256);
            done.insert(sha256);
        }
        Ok(true)
    })
    .await?;
    if !chunks.is_empty() {
        tracing::warn!(incomplete = ?chunks.keys().collect::<Vec<_>>(), "payloads with missing chunks left as .part files");
    }
    Ok(done.len() as u64)
}

/// Writes each sample batch that a passing `SamplesRecorded` entry refers to as
/// `dir/<batch id>.arrow`: the Arrow IPC stream as stored. Returns the number of files.
pub async fn arrow_from_postgres(
    client: &impl GenericClient,
    filter: &Filter,
    dir: &Path,
) -> Result<u64, ReplayError> {
    std::fs::create_dir_all(dir)?;
    let mut written = 0u64;
    each_entry(client, filter, async |e| {
        let Some(Attachment::Samples(b)) = blobs::attachment(e) else {
            return Ok(true);
        };
        if filter.full(written) {
            return Ok(false);
        }
        let bytes = blobs::sample_batch(client, b.batch_id).await?;
        write_file(dir, &arrow_name(b.batch_id), &bytes)?;
        written += 1;
        Ok(true)
    })
    .await?;
    Ok(written)
}

/// The same files as `arrow_from_postgres`, from the samples topic.
pub async fn arrow_from_kafka(
    cfg: &KafkaConfig,
    filter: &Filter,
    dir: &Path,
) -> Result<u64, ReplayError> {
    std::fs::create_dir_all(dir)?;
    let mut done = HashSet::new();
    each_message(cfg, &cfg.topics().samples, |m, value| {
        let facts = Facts {
            position: parsed(m, envelope::HEADER_POSITION)?,
            time: parsed(m, blobs::HEADER_RECORDED_AT)?,
            user: header(m, blobs::HEADER_USER).and_then(|u| u.parse().ok()),
            event_type: blobs::SAMPLES_EVENT,
            raw: None,
        };
        if !filter.admits(&facts) {
            return Ok(true);
        }
        if filter.full(done.len() as u64) {
            return Ok(false);
        }
        let id: i64 = parsed(m, blobs::HEADER_BATCH_ID)?;
        if done.insert(id) {
            write_file(dir, &arrow_name(id), value)?;
        }
        Ok(true)
    })
    .await?;
    Ok(done.len() as u64)
}

pub fn arrow_name(batch_id: i64) -> String {
    format!("{batch_id}.arrow")
}
