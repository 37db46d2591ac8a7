//! The history, for admin and auditor accounts: `/api/v1/audit/events` (the log, filtered),
//! `/api/v1/users/{user_id}/history`, the raw bytes of a stored payload, the state of one
//! aggregate at a past position, and the log's tamper evidence (see `crate::audit`). Each
//! answer names the log position it was read at. Secrets never appear: entries and states of
//! secret-bearing aggregates lose their secret fields, as on Kafka.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_kafka::redact;
use wearhouse_log::LogEntry;

use super::{error::internal_api, ApiError, AppState};
use crate::audit::history::{self, Filter, StateError};
use crate::audit::{self, chain::Problem};
use crate::auth::AuditAuth;

#[derive(Tags)]
enum Tag {
    /// Tamper evidence of the event log
    Audit,
}

#[derive(Enum)]
#[oai(rename_all = "snake_case")]
enum ProblemKind {
    /// The entry is not what was sealed.
    Modified,
    /// The entry was sealed and is gone.
    Deleted,
    /// The entry sits inside a sealed range but was not sealed with it.
    Inserted,
    /// The seal's digest does not follow from its entry hashes.
    SealAltered,
    /// The seal does not continue the chain (a seal removed or rewritten).
    ChainBroken,
}

#[derive(Object)]
struct AuditProblem {
    kind: ProblemKind,
    /// The seal (numbered from 1 in log order) the problem was found in.
    seal: i64,
    /// The log position of the entry concerned; null for problems of the seal itself.
    position: Option<i64>,
}

impl From<&Problem> for AuditProblem {
    fn from(p: &Problem) -> Self {
        let (kind, seal, position) = match *p {
            Problem::Modified { seal, position } => (ProblemKind::Modified, seal, Some(position)),
            Problem::Deleted { seal, position } => (ProblemKind::Deleted, seal, Some(position)),
            Problem::Inserted { seal, position } => (ProblemKind::Inserted, seal, Some(position)),
            Problem::SealAltered { seal } => (ProblemKind::SealAltered, seal, None),
            Problem::ChainBroken { seal } => (ProblemKind::ChainBroken, seal, None),
        };
        AuditProblem {
            kind,
            seal,
            position,
        }
    }
}

#[derive(Object)]
struct AuditVerification {
    /// True when every sealed entry is as it was sealed and the chain is whole.
    intact: bool,
    seals: i64,
    entries_sealed: i64,
    /// The log position of the last sealed entry (0 when nothing is sealed yet): the position
    /// this answer was read at.
    sealed_through_position: i64,
    /// The last seal's digest (hex). Keep it outside this database: a later verification whose
    /// chain does not pass through it was rewritten.
    head_digest: String,
    /// Committed entries not sealed yet (`serve` seals every WEARHOUSE_AUDIT_SEAL_SECS).
    unsealed_entries: i64,
    problems: Vec<AuditProblem>,
}

/// One entry of the log.
#[derive(Object)]
struct AuditEntry {
    /// The entry's log position: its stable id.
    position: i64,
    recorded_at: DateTime<Utc>,
    aggregate_type: String,
    aggregate_id: String,
    /// The entry's number within its aggregate.
    sequence: i64,
    event_type: String,
    event_version: String,
    /// The user the entry concerns, if any.
    user_id: Option<Uuid>,
    /// Who caused it: `api_key:<id>`, `developer:<id>`, `system:<what>`, ...
    actor: Option<String>,
    request_id: Option<String>,
    /// For a `RawPayloadReceived` entry: the SHA-256 of the stored bytes (read them with
    /// `GET /api/v1/audit/raw/{sha256}`).
    raw_payload_sha256: Option<String>,
    /// The event (secret fields removed).
    payload: Value,
    /// Everything recorded with the event (actor, request id, ...).
    metadata: Value,
}

impl From<&LogEntry> for AuditEntry {
    fn from(e: &LogEntry) -> Self {
        let shown = redact::redacted(e);
        let e_shown = shown.as_ref().unwrap_or(e);
        let text = |k: &str| e.metadata.get(k).and_then(Value::as_str).map(String::from);
        AuditEntry {
            position: e.position(),
            recorded_at: e.recorded_at,
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type.clone(),
            event_version: e.event_version.clone(),
            user_id: e.user_id,
            actor: text("actor"),
            request_id: text("request_id"),
            raw_payload_sha256: history::raw_payload_sha256(e),
            payload: serde_json::from_str(e_shown.payload.get()).unwrap_or(Value::Null),
            metadata: e.metadata.clone(),
        }
    }
}

#[derive(Object)]
struct AuditPage {
    data: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
    has_more: bool,
    /// The last final log position when this page was read: entries up to it no longer
    /// change.
    read_at_position: i64,
}

#[derive(Object)]
struct AggregateState {
    aggregate_type: String,
    aggregate_id: String,
    /// The position of the last entry applied.
    position: i64,
    events_applied: i64,
    /// The aggregate's state after those entries (secret fields removed).
    state: Value,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
enum Order {
    /// Oldest first (ascending log position).
    Oldest,
    /// Newest first.
    Newest,
}

/// The aggregates whose state can be replayed.
#[derive(Enum, Clone, Copy)]
enum AggregateType {
    User,
    Developer,
    ApiKey,
    Connection,
    Import,
    SyncRun,
    ProviderSetting,
    Invitation,
}

impl AggregateType {
    fn as_str(self) -> &'static str {
        match self {
            AggregateType::User => "User",
            AggregateType::Developer => "Developer",
            AggregateType::ApiKey => "ApiKey",
            AggregateType::Connection => "Connection",
            AggregateType::Import => "Import",
            AggregateType::SyncRun => "SyncRun",
            AggregateType::ProviderSetting => "ProviderSetting",
            AggregateType::Invitation => "Invitation",
        }
    }
}

#[derive(ApiResponse)]
enum RawBytes {
    /// The payload exactly as received.
    #[oai(status = 200, content_type = "application/octet-stream")]
    Ok(
        Binary<poem::Body>,
        /// The content type it arrived with.
        #[oai(header = "X-Wearhouse-Content-Type")]
        String,
    ),
}

const MAX_LIMIT: i64 = 1000;

fn cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|c| {
        c.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid cursor format: '{c}'. Expected a log position."
            ))
        })
    })
    .transpose()
}

/// The page size (its range is checked by the parameter's validator).
fn limit(l: Option<i64>) -> i64 {
    l.unwrap_or(100).clamp(1, MAX_LIMIT)
}

async fn page(state: &AppState, filter: Filter) -> Result<Json<AuditPage>, ApiError> {
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if since > until {
            return Err(ApiError::bad_request("since must not be after until"));
        }
    }
    let client = state.pool.get().await?;
    let page = history::entries(&client, &filter)
        .await
        .map_err(internal_api)?;
    let next_cursor = page
        .has_more
        .then(|| page.entries.last().map(|e| e.position().to_string()))
        .flatten();
    Ok(Json(AuditPage {
        data: page.entries.iter().map(AuditEntry::from).collect(),
        next_cursor,
        has_more: page.has_more,
        read_at_position: page.read_at,
    }))
}

pub struct AuditApi;

#[OpenApi(prefix_path = "/api/v1")]
impl AuditApi {
    /// Entries of the event log: who did what, to whom, when (filters combine)
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/audit/events", method = "get", tag = "Tag::Audit")]
    async fn events(
        &self,
        state: Data<&AppState>,
        _auth: AuditAuth,
        /// Only entries concerning this user.
        user_id: Query<Option<Uuid>>,
        /// Only entries of this aggregate type (`User`, `Connection`, `Import`, ...).
        aggregate_type: Query<Option<String>>,
        /// Only entries of this aggregate id (with `aggregate_type`).
        aggregate_id: Query<Option<String>>,
        /// Only entries of this event type.
        event_type: Query<Option<String>>,
        /// Only entries caused by this actor (`api_key:<id>`, `developer:<id>`, ...).
        actor: Query<Option<String>>,
        /// Only entries recorded at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Only entries recorded before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `oldest` (default) or `newest` first.
        order: Query<Option<Order>>,
        /// Entries per page, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<i64>>,
    ) -> Result<Json<AuditPage>, ApiError> {
        let filter = Filter {
            user_id: user_id.0,
            aggregate_type: aggregate_type.0,
            aggregate_id: aggregate_id.0,
            event_type: event_type.0,
            actor: actor.0,
            since: since.0,
            until: until.0,
            after: self::cursor(cursor.0.as_deref())?,
            newest_first: order.0 == Some(Order::Newest),
            limit: self::limit(limit.0),
        };
        page(&state, filter).await
    }

    /// Everything recorded about one user, raw payload references included (also after the
    /// user was deleted)
    #[oai(path = "/users/:user_id/history", method = "get", tag = "Tag::Audit")]
    async fn user_history(
        &self,
        state: Data<&AppState>,
        _auth: AuditAuth,
        /// The user's id.
        user_id: Path<Uuid>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `oldest` (default) or `newest` first.
        order: Query<Option<Order>>,
        /// Entries per page, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<i64>>,
    ) -> Result<Json<AuditPage>, ApiError> {
        let filter = Filter {
            user_id: Some(user_id.0),
            after: self::cursor(cursor.0.as_deref())?,
            newest_first: order.0 == Some(Order::Newest),
            limit: self::limit(limit.0),
            ..Filter::default()
        };
        page(&state, filter).await
    }

    /// The bytes of a stored raw payload, exactly as received
    #[oai(path = "/audit/raw/:sha256", method = "get", tag = "Tag::Audit")]
    async fn raw(
        &self,
        state: Data<&AppState>,
        _auth: AuditAuth,
        /// The payload's SHA-256 (64 lowercase hex characters).
        #[oai(validator(pattern = "^[0-9a-f]{64}$"))]
        sha256: Path<String>,
    ) -> Result<RawBytes, ApiError> {
        let (content_type, body) = crate::ingest::raw::stream(&state.pool, &sha256.0)
            .await
            .map_err(|e| match e {
                crate::ingest::raw::RawError::NotFound(_) => {
                    ApiError::not_found(format!("Raw payload {} not found.", sha256.0))
                }
                other => internal_api(other),
            })?;
        Ok(RawBytes::Ok(
            Binary(poem::Body::from_bytes_stream(body)),
            content_type,
        ))
    }

    /// The state of one aggregate as of a log position (its current state without one)
    #[oai(
        path = "/audit/aggregates/:aggregate_type/:aggregate_id",
        method = "get",
        tag = "Tag::Audit"
    )]
    async fn aggregate_state(
        &self,
        state: Data<&AppState>,
        _auth: AuditAuth,
        /// The aggregate's type.
        aggregate_type: Path<AggregateType>,
        /// The aggregate's id.
        aggregate_id: Path<String>,
        /// Apply only the entries at or before this log position.
        position: Query<Option<i64>>,
    ) -> Result<Json<AggregateState>, ApiError> {
        let aggregate_type = aggregate_type.0.as_str().to_string();
        let client = state.pool.get().await?;
        let found = history::state_at(&client, &aggregate_type, &aggregate_id.0, position.0)
            .await
            .map_err(|e| match e {
                StateError::UnknownType(_) => ApiError::bad_request(e.to_string()),
                StateError::NotFound(..) => ApiError::not_found(e.to_string()),
                other => internal_api(other),
            })?;
        let mut shown = found.state;
        if redact::SECRET_BEARING_AGGREGATES.contains(&aggregate_type.as_str()) {
            redact::strip_secrets(&mut shown);
        }
        Ok(Json(AggregateState {
            aggregate_type,
            aggregate_id: aggregate_id.0,
            position: found.last_position,
            events_applied: found.events_applied as i64,
            state: shown,
        }))
    }

    /// Verify the event log against its seals (names every entry edited, deleted or inserted
    /// since it was sealed, and every seal rewritten or removed)
    #[oai(path = "/audit/verify", method = "get", tag = "Tag::Audit")]
    async fn verify(
        &self,
        state: Data<&AppState>,
        _auth: AuditAuth,
    ) -> Result<Json<AuditVerification>, ApiError> {
        let report = audit::verify(&state.pool).await.map_err(internal_api)?;
        Ok(Json(AuditVerification {
            intact: report.intact,
            seals: report.seals,
            entries_sealed: report.entries_sealed as i64,
            sealed_through_position: report.sealed_through_position,
            head_digest: report.head_digest,
            unsealed_entries: report.unsealed_entries,
            problems: report.problems.iter().map(AuditProblem::from).collect(),
        }))
    }
}
