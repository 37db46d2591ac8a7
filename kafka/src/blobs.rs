//! The bytes behind two kinds of log entries, published next to their envelopes:
//! `RawPayloadReceived` → the raw payload on `<prefix>.raw`, one message per stored chunk
//! (decompressed, so a consumer concatenating the chunks in index order gets the original
//! bytes); `SamplesRecorded` → the Arrow IPC stream of the batch on `<prefix>.samples`, as
//! stored (zstd-compressed buffers inside the IPC stream, readable by any Arrow reader).

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;
use wearhouse_log::LogEntry;

use crate::envelope::{entry_key, HEADER_POSITION};

/// Raw payload headers (UTF-8 text values).
pub const HEADER_PROVIDER: &str = "wearhouse-provider";
pub const HEADER_KIND: &str = "wearhouse-kind";
pub const HEADER_USER: &str = "wearhouse-user";
pub const HEADER_SHA256: &str = "wearhouse-sha256";
/// When the log recorded the payload's receipt (RFC 3339, UTC); the time filters use it.
pub const HEADER_RECEIVED_AT: &str = "wearhouse-received-at";
pub const HEADER_CONTENT_TYPE: &str = "wearhouse-content-type";
/// Index of this chunk (0-based) and how many chunks the payload has.
pub const HEADER_CHUNK: &str = "wearhouse-chunk";
pub const HEADER_CHUNKS: &str = "wearhouse-chunks";
/// Byte offset of this chunk in the payload, and the payload's total size.
pub const HEADER_OFFSET: &str = "wearhouse-offset";
pub const HEADER_SIZE: &str = "wearhouse-size";

/// Sample batch headers.
pub const HEADER_BATCH_ID: &str = "wearhouse-batch-id";
/// The series type code (e.g. `heart_rate`), and its numeric id.
pub const HEADER_SERIES_TYPE: &str = "wearhouse-series-type";
pub const HEADER_SERIES_TYPE_ID: &str = "wearhouse-series-type-id";
/// The data source id.
pub const HEADER_SOURCE: &str = "wearhouse-source";
pub const HEADER_COUNT: &str = "wearhouse-count";
/// Time range of the samples (RFC 3339, UTC; end inclusive).
pub const HEADER_START: &str = "wearhouse-start";
pub const HEADER_END: &str = "wearhouse-end";
/// When the log recorded the batch.
pub const HEADER_RECORDED_AT: &str = "wearhouse-recorded-at";

pub const RAW_EVENT: &str = "RawPayloadReceived";
pub const SAMPLES_EVENT: &str = "SamplesRecorded";

/// What a `RawPayloadReceived` entry refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRef {
    pub sha256: String,
    pub size: i64,
    pub chunks: i32,
    pub content_type: String,
    pub provider: String,
    pub kind: String,
}

/// What a `SamplesRecorded` entry refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRef {
    pub batch_id: i64,
    pub data_source_id: Uuid,
    pub series_type: i16,
    pub count: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The bytes an entry refers to, if any.
#[derive(Debug, Clone, PartialEq)]
pub enum Attachment {
    Raw(RawRef),
    Samples(BatchRef),
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_string)
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key)?.as_str()?.parse().ok()
}

/// Reads the reference out of the entry's payload (the domain's serde shape).
pub fn attachment(entry: &LogEntry) -> Option<Attachment> {
    if ![RAW_EVENT, SAMPLES_EVENT].contains(&entry.event_type.as_str()) {
        return None;
    }
    let p: Value = serde_json::from_str(entry.payload.get()).ok()?;
    match entry.event_type.as_str() {
        RAW_EVENT => {
            let r = p.get("raw")?;
            Some(Attachment::Raw(RawRef {
                sha256: text(r, "sha256")?,
                size: r.get("size")?.as_i64()?,
                chunks: i32::try_from(r.get("chunks")?.as_i64()?).ok()?,
                content_type: text(r, "content_type")?,
                provider: text(r, "provider")?,
                kind: text(r, "kind")?,
            }))
        }
        SAMPLES_EVENT => {
            let b = p.get("batch")?;
            Some(Attachment::Samples(BatchRef {
                batch_id: b.get("batch_id")?.as_i64()?,
                data_source_id: text(b, "data_source_id")?.parse().ok()?,
                series_type: i16::try_from(b.get("series_type")?.as_i64()?).ok()?,
                count: b.get("count")?.as_i64()?,
                start: time(b, "start")?,
                end: time(b, "end")?,
            }))
        }
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("raw payload {sha256} chunk {chunk} is missing")]
    MissingChunk { sha256: String, chunk: i32 },
    #[error("sample batch {0} is missing")]
    MissingBatch(i64),
    #[error("raw payload {sha256} chunk {chunk} does not decompress: {source}")]
    Corrupt {
        sha256: String,
        chunk: i32,
        source: std::io::Error,
    },
}

/// One stored chunk of a raw payload, decompressed (at most 8 MiB).
pub async fn raw_chunk(
    client: &impl GenericClient,
    sha256: &str,
    chunk: i32,
) -> Result<Vec<u8>, BlobError> {
    let row = client
        .query_opt(
            "SELECT data FROM raw_payload_chunks WHERE sha256 = $1 AND chunk = $2",
            &[&sha256, &chunk],
        )
        .await?
        .ok_or_else(|| BlobError::MissingChunk {
            sha256: sha256.into(),
            chunk,
        })?;
    let data: &[u8] = row.get(0);
    zstd::stream::decode_all(data).map_err(|source| BlobError::Corrupt {
        sha256: sha256.into(),
        chunk,
        source,
    })
}

/// The Arrow IPC bytes of a sample batch, as stored.
pub async fn sample_batch(client: &impl GenericClient, id: i64) -> Result<Vec<u8>, BlobError> {
    client
        .query_opt("SELECT arrow FROM sample_batches WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0))
        .ok_or(BlobError::MissingBatch(id))
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Headers of one raw chunk message (see `RAW_*` constants).
pub fn raw_headers(
    entry: &LogEntry,
    r: &RawRef,
    chunk: i32,
    offset: i64,
) -> Vec<(&'static str, Vec<u8>)> {
    let user = entry.user_id.map(|u| u.to_string()).unwrap_or_default();
    [
        (HEADER_POSITION, entry.position().to_string()),
        (HEADER_PROVIDER, r.provider.clone()),
        (HEADER_KIND, r.kind.clone()),
        (HEADER_USER, user),
        (HEADER_SHA256, r.sha256.clone()),
        (HEADER_RECEIVED_AT, rfc3339(entry.recorded_at)),
        (HEADER_CONTENT_TYPE, r.content_type.clone()),
        (HEADER_CHUNK, chunk.to_string()),
        (HEADER_CHUNKS, r.chunks.to_string()),
        (HEADER_OFFSET, offset.to_string()),
        (HEADER_SIZE, r.size.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.into_bytes()))
    .collect()
}

/// Headers of one sample batch message.
pub fn sample_headers(entry: &LogEntry, b: &BatchRef) -> Vec<(&'static str, Vec<u8>)> {
    let user = entry.user_id.map(|u| u.to_string()).unwrap_or_default();
    let code = wearhouse_domain::series::by_id(b.series_type)
        .map(|s| s.code.to_string())
        .unwrap_or_else(|| b.series_type.to_string());
    [
        (HEADER_POSITION, entry.position().to_string()),
        (HEADER_BATCH_ID, b.batch_id.to_string()),
        (HEADER_SERIES_TYPE, code),
        (HEADER_SERIES_TYPE_ID, b.series_type.to_string()),
        (HEADER_USER, user),
        (HEADER_SOURCE, b.data_source_id.to_string()),
        (HEADER_COUNT, b.count.to_string()),
        (HEADER_START, rfc3339(b.start)),
        (HEADER_END, rfc3339(b.end)),
        (HEADER_RECORDED_AT, rfc3339(entry.recorded_at)),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.into_bytes()))
    .collect()
}

/// The message key of an entry's attachments: the same as its envelope's.
pub fn key(entry: &LogEntry) -> String {
    entry_key(entry.user_id, &entry.aggregate_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wearhouse_log::Cursor;

    fn entry(event_type: &str, payload: Value) -> LogEntry {
        LogEntry {
            cursor: Cursor { tx: 5, position: 7 },
            aggregate_type: "Import".into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: event_type.into(),
            event_version: "1".into(),
            payload: serde_json::value::to_raw_value(&payload).unwrap(),
            metadata: json!({}),
            recorded_at: "2024-05-01T10:11:12.5Z".parse().unwrap(),
            user_id: Some(Uuid::nil()),
        }
    }

    #[test]
    fn reads_raw_and_sample_references_from_the_domain_payloads() {
        let raw = entry(
            RAW_EVENT,
            json!({"type": RAW_EVENT, "raw": {"sha256": "ab", "size": 10, "chunks": 2,
                   "content_type": "application/zip", "provider": "apple", "kind": "k"}}),
        );
        let Some(Attachment::Raw(r)) = attachment(&raw) else {
            panic!("raw reference expected");
        };
        assert_eq!((r.sha256.as_str(), r.size, r.chunks), ("ab", 10, 2));
        let h = raw_headers(&raw, &r, 1, 8);
        let get = |k: &str| {
            String::from_utf8(h.iter().find(|(n, _)| *n == k).unwrap().1.clone()).unwrap()
        };
        assert_eq!(get(HEADER_CHUNK), "1");
        assert_eq!(get(HEADER_OFFSET), "8");
        assert_eq!(get(HEADER_RECEIVED_AT), "2024-05-01T10:11:12.500000Z");

        let ds = Uuid::new_v4();
        let samples = entry(
            SAMPLES_EVENT,
            json!({"type": SAMPLES_EVENT, "batch": {"batch_id": 3, "data_source_id": ds,
                   "series_type": 1, "count": 4, "start": "2024-01-01T00:00:00Z",
                   "end": "2024-01-02T00:00:00Z"}}),
        );
        let Some(Attachment::Samples(b)) = attachment(&samples) else {
            panic!("batch reference expected");
        };
        assert_eq!((b.batch_id, b.data_source_id, b.count), (3, ds, 4));
        assert_eq!(attachment(&entry("UserUpdated", json!({}))), None);
    }
}
