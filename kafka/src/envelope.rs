//! The JSON envelope of a `wearhouse.events` message: one log entry, self-describing, so a
//! consumer needs nothing but the message value (the headers repeat a few fields for routing).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_log::{Cursor, LogEntry};

/// Message headers set on every message, so consumers can filter without parsing the value.
pub const HEADER_POSITION: &str = "wearhouse-position";
pub const HEADER_EVENT_TYPE: &str = "wearhouse-event-type";
pub const HEADER_AGGREGATE_TYPE: &str = "wearhouse-aggregate-type";
/// Set on flush markers (empty messages that carry no entry; see `flush_markers`).
pub const HEADER_MARKER: &str = "wearhouse-marker";

/// Whether a message is a flush marker rather than an entry (markers have an empty value).
pub fn is_marker(value: Option<&[u8]>) -> bool {
    value.is_none_or(|v| v.is_empty())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The entry's global position: a unique, stable id (deduplication key).
    pub position: i64,
    /// The writing transaction's id; the log's order is `(tx, position)`.
    pub tx: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub user_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
    /// The payload's JSON text as the log holds it, passed through unparsed.
    pub payload: wearhouse_log::Payload,
    pub metadata: Value,
}

impl Envelope {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            tx: self.tx,
            position: self.position,
        }
    }

    /// The message key: the user, so one user's history stays in one partition, in order;
    /// entries about no user (developers, API keys) are keyed by their aggregate instead.
    pub fn key(&self) -> String {
        entry_key(self.user_id, &self.aggregate_id)
    }
}

pub(crate) fn entry_key(user_id: Option<Uuid>, aggregate_id: &str) -> String {
    match user_id {
        Some(u) => u.to_string(),
        None => aggregate_id.to_string(),
    }
}

impl From<&LogEntry> for Envelope {
    fn from(e: &LogEntry) -> Self {
        Envelope {
            position: e.cursor.position,
            tx: e.cursor.tx,
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type.clone(),
            event_version: e.event_version.clone(),
            user_id: e.user_id,
            recorded_at: e.recorded_at,
            payload: e.payload.clone(),
            metadata: e.metadata.clone(),
        }
    }
}

impl From<Envelope> for LogEntry {
    fn from(e: Envelope) -> Self {
        LogEntry {
            cursor: e.cursor(),
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: e.payload,
            metadata: e.metadata,
            recorded_at: e.recorded_at,
            user_id: e.user_id,
        }
    }
}

/// The message value of an entry (JSON; the payload keeps the text the log stores).
pub fn encode(entry: &LogEntry) -> Vec<u8> {
    serde_json::to_vec(&Envelope::from(entry)).expect("an envelope of JSON values always encodes")
}

pub fn decode(bytes: &[u8]) -> Result<Envelope, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(user: Option<Uuid>) -> LogEntry {
        LogEntry {
            cursor: Cursor {
                tx: 900,
                position: 42,
            },
            aggregate_type: "User".into(),
            aggregate_id: "agg-1".into(),
            sequence: 3,
            event_type: "UserUpdated".into(),
            event_version: "1".into(),
            payload: serde_json::value::to_raw_value(
                &json!({"b": [1, 2.5, null], "a": {"z": "é"}}),
            )
            .unwrap(),
            metadata: json!({"actor": "system:test"}),
            recorded_at: "2024-05-01T10:11:12.345678Z".parse().unwrap(),
            user_id: user,
        }
    }

    #[test]
    fn round_trips_an_entry_exactly() {
        let e = entry(Some(Uuid::new_v4()));
        let back: LogEntry = decode(&encode(&e)).unwrap().into();
        assert_eq!(back, e);
    }

    #[test]
    fn keys_by_user_else_by_aggregate() {
        let u = Uuid::new_v4();
        assert_eq!(Envelope::from(&entry(Some(u))).key(), u.to_string());
        assert_eq!(Envelope::from(&entry(None)).key(), "agg-1");
    }

    #[test]
    fn envelope_fields_are_named_as_documented() {
        let v: Value = serde_json::from_slice(&encode(&entry(None))).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "aggregate_id",
                "aggregate_type",
                "event_type",
                "event_version",
                "metadata",
                "payload",
                "position",
                "recorded_at",
                "sequence",
                "tx",
                "user_id"
            ]
        );
        assert_eq!(v["user_id"], Value::Null);
        assert_eq!(v["recorded_at"], "2024-05-01T10:11:12.345678Z");
    }
}
