//! Reading the history: entries of the log by user, aggregate, event type, actor and time, and
//! the state of one aggregate as of a past position.
//!
//! Entries are paged by log position (their stable id) and only once their transaction is
//! final (below the transaction horizon), so a page never changes once read. A transaction
//! that commits late can still place an entry below a position already paged past (see
//! `wearhouse_log::read`): a feed in commit order is Kafka's or `wearhouse replay`'s job.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use wearhouse_domain as domain;
use wearhouse_log::{Cursor, LogEntry};

use super::AuditError;

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<Uuid>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: Option<String>,
    /// `kind:id`, as entries record it (`api_key:…`, `developer:…`, `system:…`).
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries after this position (before it, newest first).
    pub after: Option<i64>,
    pub newest_first: bool,
    pub limit: i64,
}

/// One page of entries.
pub struct Page {
    pub entries: Vec<LogEntry>,
    pub has_more: bool,
    /// The last final position when the page was read: nothing at or below it changes.
    pub read_at: i64,
}

const COLUMNS: &str = "tx::text::bigint, position, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at, user_id";

fn entry(row: &tokio_postgres::Row) -> LogEntry {
    LogEntry {
        cursor: Cursor {
            tx: row.get(0),
            position: row.get(1),
        },
        aggregate_type: row.get(2),
        aggregate_id: row.get(3),
        sequence: row.get(4),
        event_type: row.get(5),
        event_version: row.get(6),
        payload: row
            .get::<_, tokio_postgres::types::Json<Box<serde_json::value::RawValue>>>(7)
            .0,
        metadata: row.get(8),
        recorded_at: row.get(9),
        user_id: row.get(10),
    }
}

/// Entries matching `filter`, in position order.
pub async fn entries(client: &impl GenericClient, filter: &Filter) -> Result<Page, AuditError> {
    let horizon = "pg_snapshot_xmin(pg_current_snapshot())";
    let read_at: i64 = client
        .query_one(
            &format!("SELECT coalesce(max(position), 0) FROM events WHERE tx < {horizon}"),
            &[],
        )
        .await?
        .get(0);
    let mut clauses = vec![format!("tx < {horizon}")];
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut add = |clause: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        clauses.push(clause.replace('?', &format!("${}", params.len())));
    };
    if let Some(v) = filter.user_id {
        add("user_id = ?", Box::new(v));
    }
    if let Some(v) = &filter.aggregate_type {
        add("aggregate_type = ?", Box::new(v.clone()));
    }
    if let Some(v) = &filter.aggregate_id {
        add("aggregate_id = ?", Box::new(v.clone()));
    }
    if let Some(v) = &filter.event_type {
        add("event_type = ?", Box::new(v.clone()));
    }
    if let Some(v) = &filter.actor {
        add("metadata->>'actor' = ?", Box::new(v.clone()));
    }
    if let Some(v) = filter.since {
        add("recorded_at >= ?", Box::new(v));
    }
    if let Some(v) = filter.until {
        add("recorded_at < ?", Box::new(v));
    }
    if let Some(v) = filter.after {
        let op = if filter.newest_first { "<" } else { ">" };
        add(&format!("position {op} ?"), Box::new(v));
    }
    let order = if filter.newest_first { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE {} ORDER BY position {order} LIMIT {}",
        clauses.join(" AND "),
        filter.limit + 1
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &refs).await?;
    let has_more = rows.len() as i64 > filter.limit;
    Ok(Page {
        entries: rows.iter().take(filter.limit as usize).map(entry).collect(),
        has_more,
        read_at,
    })
}

/// The raw payload an entry records, when it records one (`RawPayloadReceived`).
pub fn raw_payload_sha256(entry: &LogEntry) -> Option<String> {
    if entry.event_type != "RawPayloadReceived" {
        return None;
    }
    let v: Value = serde_json::from_str(entry.payload.get()).ok()?;
    v.pointer("/raw/sha256")?.as_str().map(String::from)
}

/// The state of an aggregate after the entries up to `position`.
pub struct State {
    pub state: Value,
    pub events_applied: usize,
    /// The position of the last entry applied (0 when none).
    pub last_position: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no state model for aggregate type {0}")]
    UnknownType(String),
    #[error("aggregate {0} {1} has no entries at or before that position")]
    NotFound(String, String),
    #[error("entry at position {0} cannot be read as an event of its aggregate: {1}")]
    Decode(i64, serde_json::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

fn fold<A: Aggregate>(entries: &[LogEntry]) -> Result<Value, StateError> {
    let mut aggregate = A::default();
    for e in entries {
        let event: A::Event = serde_json::from_str(e.payload.get())
            .map_err(|err| StateError::Decode(e.position(), err))?;
        aggregate.apply(event);
    }
    serde_json::to_value(&aggregate).map_err(|err| StateError::Decode(0, err))
}

/// Replays one aggregate's entries up to `position` (all of them when `None`).
pub async fn state_at(
    client: &impl GenericClient,
    aggregate_type: &str,
    aggregate_id: &str,
    position: Option<i64>,
) -> Result<State, StateError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
                 AND position <= $3 ORDER BY sequence"
            ),
            &[
                &aggregate_type,
                &aggregate_id,
                &position.unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(AuditError::from)?;
    let entries: Vec<LogEntry> = rows.iter().map(entry).collect();
    let folded = match aggregate_type {
        "User" => fold::<domain::user::User>(&entries),
        "Developer" => fold::<domain::developer::Developer>(&entries),
        "ApiKey" => fold::<domain::api_key::ApiKey>(&entries),
        "Connection" => fold::<domain::connection::Connection>(&entries),
        "Import" => fold::<domain::import::Import>(&entries),
        "SyncRun" => fold::<domain::sync_run::SyncRun>(&entries),
        "ProviderSetting" => fold::<domain::provider_setting::ProviderSetting>(&entries),
        "Invitation" => fold::<domain::invitation::Invitation>(&entries),
        other => return Err(StateError::UnknownType(other.to_string())),
    }?;
    if entries.is_empty() {
        return Err(StateError::NotFound(
            aggregate_type.to_string(),
            aggregate_id.to_string(),
        ));
    }
    Ok(State {
        state: folded,
        events_applied: entries.len(),
        last_position: entries.iter().map(LogEntry::position).max().unwrap_or(0),
    })
}
