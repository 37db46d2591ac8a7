//! Appending to the log: many events in one statement, inside the caller's transaction.

use deadpool_postgres::GenericClient;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::read::{Cursor, Payload};

/// The JSON text of an event payload.
pub fn to_payload(value: &impl serde::Serialize) -> Payload {
    serde_json::value::to_raw_value(value).expect("event payloads serialize to JSON")
}

/// Who caused a change, kept in each event's metadata for auditors.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub kind: &'static str,
    pub id: String,
    pub request_id: Option<String>,
}

/// One event to append (what `SerializedEvent` carries, plus the user it concerns).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// JSON text: an import's events go from their types to text without a `Value` tree.
    pub payload: Payload,
    pub metadata: Value,
    pub user_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("optimistic lock: another writer appended to this aggregate first")]
    Conflict,
    #[error("database: {}", crate::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Appends `events` with one INSERT … SELECT FROM unnest(…), inside whatever transaction the
/// client is in. Returns the cursor of the last appended entry.
pub async fn append(
    client: &impl GenericClient,
    events: &[NewEvent],
) -> Result<Option<Cursor>, AppendError> {
    if events.is_empty() {
        return Ok(None);
    }
    let col = |f: fn(&NewEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
    let types = col(|e| e.aggregate_type.clone());
    let ids = col(|e| e.aggregate_id.clone());
    let event_types = col(|e| e.event_type.clone());
    let versions = col(|e| e.event_version.clone());
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    let payloads: Vec<Json<&RawValue>> = events.iter().map(|e| Json(&*e.payload)).collect();
    let metadata: Vec<&Value> = events.iter().map(|e| &e.metadata).collect();
    let users: Vec<Option<Uuid>> = events.iter().map(|e| e.user_id).collect();
    let rows = client
        .query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, user_id) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::uuid[]) \
             RETURNING tx::text::bigint, position",
            &[&types, &ids, &sequences, &event_types, &versions, &payloads, &metadata, &users],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                AppendError::Conflict
            } else {
                AppendError::Db(e)
            }
        })?;
    Ok(rows
        .iter()
        .map(|r| Cursor {
            tx: r.get(0),
            position: r.get(1),
        })
        .max())
}
