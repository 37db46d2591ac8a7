//! Connections, pull syncs, sync status (runs, recent events, the SSE stream) and inbound
//! provider webhooks.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use serde_json::Value;
use tracing::warn;
use uuid::Uuid;
use wearhouse_domain::connection::{connection_id, Connection, ConnectionCommand};
use wearhouse_domain::records::DataEvent;
use wearhouse_log::Cursor;

use super::{request_id, users, ApiError, AppState};
use crate::auth::{AnyCredential, DeveloperAuth};
use crate::ingest::raw::{self, RawMeta};
use crate::providers::engine::{SyncError, SyncRequest};
use crate::providers::{check_freshness, garmin, Notice, WebhookError};
use wearhouse_log::writer::{self, Out};

#[derive(Tags)]
enum Tag {
    /// Provider connections of a user
    Connections,
    /// Pulling data from providers
    Sync,
    /// Status of sync runs
    SyncStatus,
    /// Inbound provider webhooks
    Webhooks,
}

#[derive(Object)]
struct ConnectionRead {
    id: Uuid,
    user_id: Uuid,
    provider: String,
    provider_user_id: Option<String>,
    provider_username: Option<String>,
    scope: Option<String>,
    status: String,
    last_synced_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    icon_url: Option<String>,
    max_historical_days: Option<u32>,
    rest_pull: bool,
    webhook_stream: bool,
    webhook_ping: bool,
    webhook_callback: bool,
    live_sync_mode: Option<String>,
    linked_user_ids: Vec<Uuid>,
}

#[derive(Enum, Clone, Copy, PartialEq)]
enum DataType {
    #[oai(rename = "workouts")]
    Workouts,
    #[oai(rename = "247")]
    Data247,
    #[oai(rename = "all")]
    All,
}

#[derive(Object)]
struct SyncResponse {
    success: bool,
    #[oai(rename = "async", skip_serializing_if_is_none)]
    is_async: Option<bool>,
    #[oai(skip_serializing_if_is_none)]
    task_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    message: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    details: Option<Value>,
}

#[derive(Object)]
struct HistoricalResponse {
    success: bool,
    provider: String,
    user_id: Uuid,
    method: String,
    task_id: String,
    message: String,
    days: i64,
    start_date: DateTime<Utc>,
    end_date: DateTime<Utc>,
}

#[derive(Object, Clone)]
struct SyncRunSummary {
    run_id: Uuid,
    user_id: Uuid,
    provider: String,
    source: String,
    stage: String,
    status: String,
    message: Option<String>,
    progress: Option<f64>,
    items_processed: i64,
    items_total: Option<i64>,
    error: Option<String>,
    primary_user_id: Option<Uuid>,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    last_update: DateTime<Utc>,
}

#[derive(Object, Clone)]
struct SyncStatusEvent {
    event_id: Uuid,
    run_id: Uuid,
    user_id: Uuid,
    provider: String,
    /// pull, webhook, backfill, xml_import, linked_account, ...
    source: String,
    /// queued, started, fetching, processing, saving, completed, failed, cancelled
    stage: String,
    /// in_progress, success, partial, failed, cancelled, skipped
    status: String,
    message: Option<String>,
    progress: Option<f64>,
    items_processed: Option<i64>,
    items_total: Option<i64>,
    error: Option<String>,
    /// Linked accounts: the user whose connection pulled the data this run received.
    primary_user_id: Option<Uuid>,
    /// Facts about the run (records saved, per data type, the window it covered).
    metadata: BTreeMap<String, Value>,
    /// When the run began (queued or started).
    started_at: Option<DateTime<Utc>>,
    /// When the run ended; set on its terminal event only.
    ended_at: Option<DateTime<Utc>>,
    timestamp: DateTime<Utc>,
    /// The event's place in the log: the SSE `id:` (`tx.position`) a client resumes from.
    #[oai(skip)]
    cursor: Cursor,
}

#[derive(Object)]
struct Accepted {
    status: String,
}

#[derive(Object)]
struct BackfillStatus {
    user_id: Uuid,
    provider: String,
    /// pending, in_progress, complete, cancelled, retry_in_progress, permanently_failed
    overall_status: String,
    /// The window being worked on (0-based); equal to `total_windows` once all are done.
    current_window: i32,
    total_windows: i32,
    /// Per window index ("0", ...): type → done / pending / timed_out / failed.
    windows: BTreeMap<String, BTreeMap<String, String>>,
    /// Per type: counts of done, timed_out and failed windows.
    summary: BTreeMap<String, BTreeMap<String, i64>>,
    in_progress: bool,
    /// Whether a type is being requested again (`POST …/backfill/{type}/retry`).
    retry_phase: bool,
    retry_type: Option<String>,
    retry_window: Option<i32>,
    /// Retries requested since this backfill began.
    attempt_count: i64,
    max_attempts: i64,
    permanently_failed: bool,
}

/// A backfill run: id, status, start, the types it asked for (empty: all), its per-type
/// request outcomes.
type BackfillRun = (Uuid, String, DateTime<Utc>, Vec<String>, Vec<String>);

/// Upstream's retry bound, reported as is; wearhouse retries only on request.
const BACKFILL_MAX_ATTEMPTS: i64 = 3;

#[derive(Object)]
struct BackfillCancelled {
    success: bool,
    user_id: Uuid,
    message: String,
}

#[derive(ApiResponse)]
enum SseResponse {
    /// `text/event-stream` of `sync.status` events (SyncStatusEvent JSON).
    #[oai(status = 200, content_type = "text/event-stream")]
    Ok(
        Binary<poem::Body>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "X-Accel-Buffering")] String,
    ),
}

/// One `sync.status` frame: the event's log cursor as `id:` (for `Last-Event-ID`), then its
/// JSON as `data:`.
fn sse_frame(e: &SyncStatusEvent) -> String {
    use poem_openapi::types::ToJSON;
    format!(
        "id: {}.{}\nevent: sync.status\ndata: {}\n\n",
        e.cursor.tx,
        e.cursor.position,
        e.to_json_string()
    )
}

#[derive(ApiResponse)]
enum NoContent {
    #[oai(status = 204)]
    Done,
}

fn run_summary(r: &tokio_postgres::Row) -> SyncRunSummary {
    let (stage, status): (String, String) = (r.get(4), r.get(5));
    SyncRunSummary {
        run_id: r.get(0),
        user_id: r.get(1),
        provider: r.get(2),
        source: r.get(3),
        progress: (status != "in_progress").then_some(1.0),
        stage,
        status,
        items_processed: r.get(6),
        message: r.get(7),
        error: r.get(8),
        started_at: r.get(9),
        ended_at: r.get(10),
        last_update: r.get(11),
        items_total: r.get(13),
        primary_user_id: r.get(12),
    }
}

const RUN_COLUMNS: &str =
    "id, user_id, provider, source, stage, status, processed, message, error, started_at, ended_at, updated_at, \
     primary_user_id, items_total";

/// Sync-run events of `user` after `after` in log order (`newest`: the latest first). Like the
/// projection runner, the oldest-first read only returns entries of finished transactions, so a
/// resumed stream never misses an entry that committed late (see `projections/src/log.rs`).
async fn status_events(
    state: &AppState,
    user: Uuid,
    after: Cursor,
    limit: i64,
    newest: bool,
) -> Result<Vec<SyncStatusEvent>, ApiError> {
    let (order, visible) = if newest {
        ("DESC", "")
    } else {
        ("ASC", "AND e.tx < pg_snapshot_xmin(pg_current_snapshot())")
    };
    let rows = state
        .pool
        .get()
        .await?
        .query(
            &format!(
                "SELECT e.position, e.aggregate_id, e.event_type, e.payload, e.recorded_at, r.provider, r.source, \
                   e.tx::text::bigint, r.primary_user_id, \
                   (SELECT f.recorded_at FROM events f WHERE f.aggregate_type = 'SyncRun' \
                      AND f.aggregate_id = e.aggregate_id ORDER BY f.sequence LIMIT 1) \
                 FROM events e LEFT JOIN sync_runs r ON r.id::text = e.aggregate_id \
                 WHERE e.user_id = $1 AND e.aggregate_type = 'SyncRun' \
                   AND (e.tx::text::bigint, e.position) > ($2, $3) {visible} \
                 ORDER BY e.tx {order}, e.position {order} LIMIT $4"
            ),
            &[&user, &after.tx, &after.position, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let payload: Value = r.get(3);
            let kind: String = r.get(2);
            let s = |k: &str| payload.get(k).and_then(Value::as_str).map(String::from);
            let (stage, status) = match kind.as_str() {
                "SyncRunQueued" => ("queued".to_string(), "in_progress".to_string()),
                "SyncRunStarted" => ("started".into(), "in_progress".into()),
                "SyncRunProgressed" => (
                    s("stage").unwrap_or_else(|| "processing".into()),
                    "in_progress".into(),
                ),
                "SyncRunCompleted" => (
                    "completed".into(),
                    s("outcome").unwrap_or_else(|| "success".into()),
                ),
                "SyncRunCancelled" => ("cancelled".into(), "cancelled".into()),
                _ => ("failed".into(), "failed".into()),
            };
            let terminal = matches!(stage.as_str(), "completed" | "failed" | "cancelled");
            let position: i64 = r.get(0);
            let timestamp: DateTime<Utc> = r.get(4);
            SyncStatusEvent {
                event_id: wearhouse_domain::records::record_id(&[
                    "sync-event",
                    &position.to_string(),
                ]),
                run_id: r.get::<_, String>(1).parse().unwrap_or_default(),
                user_id: user,
                provider: r
                    .get::<_, Option<String>>(5)
                    .or_else(|| s("provider"))
                    .unwrap_or_default(),
                source: r
                    .get::<_, Option<String>>(6)
                    .or_else(|| s("source"))
                    .unwrap_or_default(),
                message: s("message"),
                progress: terminal.then_some(1.0),
                items_processed: payload.get("processed").and_then(Value::as_i64),
                items_total: payload.get("total").and_then(Value::as_i64),
                error: s("error"),
                primary_user_id: r.get(8),
                metadata: payload
                    .get("metadata")
                    .and_then(Value::as_object)
                    .map(|m| m.clone().into_iter().collect())
                    .unwrap_or_default(),
                started_at: r.get(9),
                ended_at: terminal.then_some(timestamp),
                stage,
                status,
                timestamp,
                cursor: Cursor {
                    tx: r.get(7),
                    position,
                },
            }
        })
        .collect())
}

pub struct SyncApi;

#[OpenApi(prefix_path = "/api/v1")]
impl SyncApi {
    /// A user's provider connections (tokens are never returned)
    #[oai(
        path = "/users/:user_id/connections",
        method = "get",
        tag = "Tag::Connections"
    )]
    async fn connections(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
    ) -> Result<Json<Vec<ConnectionRead>>, ApiError> {
        users::load(&state, user_id.0).await?;
        let rows = state
            .pool
            .get()
            .await?
            .query(
                "SELECT c.id, c.provider, c.provider_user_id, c.scope, c.status, c.last_synced_at, c.created_at, c.updated_at, \
                   coalesce((SELECT array_agg(o.user_id ORDER BY o.created_at) FROM connections o \
                     WHERE o.provider = c.provider AND o.provider_user_id = c.provider_user_id \
                       AND o.user_id <> c.user_id AND o.status = 'active'), '{}') \
                 FROM connections c WHERE c.user_id = $1 AND c.status <> 'pending' ORDER BY c.created_at",
                &[&user_id.0],
            )
            .await?;
        // The live-sync mode as set with `PUT /oauth/providers/{provider}` (else its default).
        let settings = super::oauth::settings(&state).await?;
        let public_url = state.config.public_url();
        let out = rows
            .iter()
            .map(|r| {
                let provider: String = r.get(1);
                let caps = state
                    .providers
                    .registry
                    .get(&provider)
                    .map(|(p, _)| p.capabilities())
                    .unwrap_or_default();
                let setting = settings.iter().find(|s| s.provider() == provider);
                ConnectionRead {
                    id: r.get(0),
                    user_id: user_id.0,
                    provider_user_id: r.get(2),
                    // None of this server's providers names the account in its user info
                    // (upstream stores null for them too).
                    provider_username: None,
                    scope: r.get(3),
                    status: r.get(4),
                    last_synced_at: r.get(5),
                    created_at: r.get(6),
                    updated_at: r.get(7),
                    icon_url: Some(super::icons::icon_url(&public_url, &provider)),
                    max_historical_days: caps.max_historical_days,
                    rest_pull: caps.rest_pull,
                    webhook_stream: caps.webhook_stream,
                    webhook_ping: caps.webhook_ping,
                    webhook_callback: caps.webhook_callback,
                    live_sync_mode: setting.and_then(|s| s.live_sync_mode().map(String::from)),
                    linked_user_ids: r.get(8),
                    provider,
                }
            })
            .collect();
        Ok(Json(out))
    }

    /// Disconnect a provider (tokens are discarded)
    #[oai(
        path = "/users/:user_id/connections/:provider",
        method = "delete",
        tag = "Tag::Connections"
    )]
    async fn disconnect(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        req: &Request,
        user_id: Path<Uuid>,
        provider: Path<String>,
    ) -> Result<NoContent, ApiError> {
        revoke(&state, &auth, req, user_id.0, &provider.0).await?;
        Ok(NoContent::Done)
    }

    /// Disconnect a provider and delete every record it delivered for the user
    #[oai(
        path = "/users/:user_id/connections/:provider/data",
        method = "delete",
        tag = "Tag::Connections"
    )]
    async fn disconnect_and_delete(
        &self,
        state: Data<&AppState>,
        developer: DeveloperAuth,
        req: &Request,
        user_id: Path<Uuid>,
        provider: Path<String>,
    ) -> Result<NoContent, ApiError> {
        // Deleting data takes the same credential as deleting the user (a developer JWT), not
        // an API key.
        let auth = AnyCredential(developer.principal());
        revoke(&state, &auth, req, user_id.0, &provider.0).await?;
        // Also after an earlier disconnect: the data outlives the connection until purged.
        let ids: Vec<Uuid> = state
            .pool
            .get()
            .await?
            .query(
                "SELECT id FROM data_sources WHERE user_id = $1 AND provider = $2",
                &[&user_id.0, &provider.0],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let event = DataEvent::ProviderDataDeleted {
            user_id: user_id.0,
            provider: provider.0.clone(),
            data_source_ids: ids,
        };
        let stream = Uuid::new_v4();
        let actor = auth.0.actor(request_id(req));
        writer::write_all(
            &state.pool,
            stream,
            user_id.0,
            &actor,
            vec![Out::Event(event)],
        )
        .await
        .map_err(super::error::internal_api)?;
        if let Some(runner) = &state.commands.runner {
            let client = state.pool.get().await?;
            if let Ok(Some(c)) = wearhouse_log::read::last_cursor_of(
                &client,
                DataEvent::AGGREGATE_TYPE,
                &stream.to_string(),
            )
            .await
            {
                for name in ["samples", "workouts", "sleep_sessions", "data_sources"] {
                    runner.wait_for(name, c, Duration::from_secs(10)).await;
                }
            }
        }
        Ok(NoContent::Done)
    }

    /// Pull a user's data from a provider now (`async=false`) or in the background. As
    /// upstream, the background mode refuses provider-specific parameters it would ignore
    /// (400); `summary_start_time` / `summary_end_time` (Unix seconds or ISO 8601) bound the
    /// window in both modes. `limit`, `offset`, `filter_by_modification_time`, `samples`,
    /// `zones` and `route` are Suunto and Polar paging and detail switches: accepted in the
    /// blocking mode, where they change nothing for this server's providers.
    #[oai(
        path = "/providers/:provider/users/:user_id/sync",
        method = "post",
        tag = "Tag::Sync"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn sync(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        provider: Path<String>,
        user_id: Path<Uuid>,
        #[oai(default = "default_all")] data_type: Query<DataType>,
        #[oai(default)] since: Query<i64>,
        #[oai(default = "default_50", validator(maximum(value = "100")))] limit: Query<i64>,
        #[oai(default)] offset: Query<i64>,
        #[oai(default = "default_true")] filter_by_modification_time: Query<bool>,
        #[oai(default)] samples: Query<bool>,
        #[oai(default)] zones: Query<bool>,
        #[oai(default)] route: Query<bool>,
        summary_start_time: Query<Option<String>>,
        summary_end_time: Query<Option<String>>,
        #[oai(name = "async", default = "default_true")] run_async: Query<bool>,
    ) -> Result<Json<SyncResponse>, ApiError> {
        if run_async.0 {
            // Upstream's order and wording (a Python list of the names).
            let unsupported: Vec<String> = [
                ("data_type", data_type.0 != DataType::All),
                ("since", since.0 != 0),
                ("limit", limit.0 != 50),
                ("offset", offset.0 != 0),
                (
                    "filter_by_modification_time",
                    !filter_by_modification_time.0,
                ),
                ("samples", samples.0),
                ("zones", zones.0),
                ("route", route.0),
            ]
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| format!("'{name}'"))
            .collect();
            if !unsupported.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "Parameters [{}] are not supported in async mode. Use async=false or omit \
                     provider-specific parameters.",
                    unsupported.join(", ")
                )));
            }
        }
        let window_start = summary_start_time
            .0
            .as_deref()
            .map(super::params::parse_datetime)
            .transpose()?
            .map(|t| t.with_timezone(&Utc));
        let window_end = summary_end_time
            .0
            .as_deref()
            .map(super::params::parse_datetime)
            .transpose()?
            .map(|t| t.with_timezone(&Utc));
        users::load(&state, user_id.0).await?;
        let (p, _) = state
            .providers
            .registry
            .get(&provider.0)
            .ok_or_else(|| ApiError::bad_request(format!("Unknown provider {}", provider.0)))?;
        if !p.capabilities().rest_pull {
            return Err(ApiError::not_implemented(format!(
                "{} does not support pull sync",
                p.name()
            )));
        }
        let last: Option<DateTime<Utc>> = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT last_synced_at FROM connections WHERE user_id = $1 AND provider = $2 AND status = 'active'",
                &[&user_id.0, &p.name()],
            )
            .await?
            .ok_or_else(|| ApiError::not_found(format!("No active {} connection for this user", p.name())))?
            .get(0);
        let start = if since.0 > 0 {
            DateTime::from_timestamp(since.0, 0).unwrap_or_default()
        } else if let Some(t) = window_start {
            t
        } else {
            last.unwrap_or_else(|| Utc::now() - chrono::Duration::days(1))
        };
        let end = window_end.unwrap_or_else(Utc::now);
        if start >= end {
            return Err(ApiError::bad_request(
                "The sync window is empty: its start must be before its end",
            ));
        }
        let workout_types: Vec<String> = p
            .data_types()
            .iter()
            .filter(|t| **t == "workout")
            .map(|t| t.to_string())
            .collect();
        let other_types: Vec<String> = p
            .data_types()
            .iter()
            .filter(|t| **t != "workout")
            .map(|t| t.to_string())
            .collect();
        let types: Vec<String> = match data_type.0 {
            DataType::All => vec![],
            DataType::Workouts if workout_types.is_empty() => {
                return Err(ApiError::not_implemented(format!(
                    "Provider '{}' does not support workouts",
                    p.name()
                )))
            }
            DataType::Workouts => workout_types,
            DataType::Data247 if other_types.is_empty() => {
                return Err(ApiError::not_implemented(format!(
                    "Provider '{}' does not support 247 data (sleep/recovery/activity)",
                    p.name()
                )))
            }
            DataType::Data247 => other_types,
        };
        let req = SyncRequest {
            run_id: Uuid::new_v4(),
            user_id: user_id.0,
            provider: p.name().into(),
            source: "pull".into(),
            start,
            end,
            data_types: types,
        };
        if run_async.0 {
            let task = req.run_id.to_string();
            state.providers.queue(&req).await?;
            let engine = state.providers.clone();
            tokio::spawn(async move {
                let _ = engine.sync(req).await;
            });
            return Ok(Json(SyncResponse {
                success: true,
                is_async: Some(true),
                task_id: Some(task),
                message: Some(format!(
                    "Sync task queued for {}. Check task status for results.",
                    p.name()
                )),
                details: None,
            }));
        }
        let run_id = req.run_id;
        let result = state.providers.sync(req).await;
        // Read your writes: once this answers, the run's read model shows how it ended.
        wait_for_run(&state, run_id).await;
        match result {
            Ok(o) => {
                // Upstream's shape: `workouts` (records) and `data_247` (per type), for the
                // data types asked for.
                let mut details = serde_json::Map::new();
                if data_type.0 != DataType::Data247 && p.data_types().contains(&"workout") {
                    let workouts: u64 = o
                        .per_type
                        .iter()
                        .filter(|(t, _)| t == "workout")
                        .map(|(_, n)| n)
                        .sum();
                    details.insert("workouts".into(), Value::from(workouts));
                }
                if data_type.0 != DataType::Workouts {
                    let other: serde_json::Map<String, Value> = o
                        .per_type
                        .iter()
                        .filter(|(t, _)| t != "workout")
                        .map(|(t, n)| (t.clone(), Value::from(*n)))
                        .collect();
                    details.insert("data_247".into(), Value::Object(other));
                }
                Ok(Json(SyncResponse {
                    success: true,
                    is_async: None,
                    task_id: None,
                    message: None,
                    details: Some(Value::Object(details)),
                }))
            }
            Err(SyncError::Busy) => Err(SyncError::Busy.into()),
            Err(e) => Ok(Json(SyncResponse {
                success: false,
                is_async: None,
                task_id: None,
                message: Some(e.to_string()),
                details: None,
            })),
        }
    }

    /// Pull the last `days` days in the background
    #[oai(
        path = "/providers/:provider/users/:user_id/sync/historical",
        method = "post",
        tag = "Tag::Sync"
    )]
    async fn historical(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        provider: Path<String>,
        user_id: Path<Uuid>,
        #[oai(
            default = "default_days",
            validator(minimum(value = "1"), maximum(value = "365"))
        )]
        days: Query<i64>,
    ) -> Result<Json<HistoricalResponse>, ApiError> {
        users::load(&state, user_id.0).await?;
        let (p, _) = state
            .providers
            .registry
            .get(&provider.0)
            .ok_or_else(|| ApiError::bad_request(format!("Unknown provider {}", provider.0)))?;
        let caps = p.capabilities();
        if !caps.rest_pull && !caps.webhook_callback {
            return Err(ApiError::bad_request(format!(
                "{} has no historical sync",
                p.name()
            )));
        }
        let days = caps
            .max_historical_days
            .map_or(days.0, |max| days.0.min(max as i64));
        let end = Utc::now();
        let start = end - chrono::Duration::days(days);
        let req = SyncRequest {
            run_id: Uuid::new_v4(),
            user_id: user_id.0,
            provider: p.name().into(),
            source: "backfill".into(),
            start,
            end,
            data_types: vec![],
        };
        state.providers.queue(&req).await?;
        let task = req.run_id.to_string();
        let engine = state.providers.clone();
        tokio::spawn(async move {
            let _ = engine.sync(req).await;
        });
        Ok(Json(HistoricalResponse {
            success: true,
            provider: p.name().into(),
            user_id: user_id.0,
            method: if caps.rest_pull {
                "pull_api"
            } else {
                "webhook_backfill"
            }
            .into(),
            task_id: task,
            message: format!("Historical sync of {days} days queued"),
            days,
            start_date: start,
            end_date: end,
        }))
    }

    /// Garmin backfill progress: the latest backfill and, per type, whether its data arrived.
    /// wearhouse requests the whole window at once, so there is one window ("0").
    #[oai(
        path = "/providers/garmin/users/:user_id/backfill/status",
        method = "get",
        tag = "Tag::Sync"
    )]
    async fn backfill_status(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
    ) -> Result<Json<BackfillStatus>, ApiError> {
        users::load(&state, user_id.0).await?;
        let client = state.pool.get().await?;
        // Every backfill run, oldest first, with the types it asked for (empty: all) and
        // its per-type request outcomes (`type: requested|duplicate|failed`).
        let runs: Vec<BackfillRun> = client
            .query(
                "SELECT r.id, r.status, r.started_at, \
                   coalesce((SELECT array(SELECT jsonb_array_elements_text(q.payload->'data_types')) FROM events q \
                     WHERE q.aggregate_type = 'SyncRun' AND q.aggregate_id = r.id::text \
                       AND q.event_type = 'SyncRunQueued' AND q.payload ? 'data_types' LIMIT 1), '{}'), \
                   coalesce((SELECT array_agg(e.payload->>'message' ORDER BY e.sequence) FROM events e \
                     WHERE e.aggregate_type = 'SyncRun' AND e.aggregate_id = r.id::text \
                       AND e.event_type = 'SyncRunProgressed' AND e.payload->>'message' IS NOT NULL), '{}') \
                 FROM sync_runs r WHERE r.user_id = $1 AND r.provider = 'garmin' AND r.source = 'backfill' \
                 ORDER BY r.started_at",
                &[&user_id.0],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let types = crate::providers::garmin::backfill_type_names();
        // The backfill is the latest run that asked for every type; later runs that asked
        // for some are its retries (`POST …/backfill/{type}/retry`).
        let main = runs.iter().rposition(|r| r.3.is_empty());
        let Some((_, status, started, _, _)) = main.and_then(|i| runs.get(i)).cloned() else {
            let windows = BTreeMap::from([(
                "0".to_string(),
                types
                    .iter()
                    .map(|t| (t.clone(), "pending".to_string()))
                    .collect(),
            )]);
            let summary = types.iter().map(|t| (t.clone(), zero_counts())).collect();
            return Ok(Json(BackfillStatus {
                user_id: user_id.0,
                provider: "garmin".into(),
                overall_status: "pending".into(),
                current_window: 0,
                total_windows: 1,
                windows,
                summary,
                in_progress: false,
                retry_phase: false,
                retry_type: None,
                retry_window: None,
                attempt_count: 0,
                max_attempts: BACKFILL_MAX_ATTEMPTS,
                permanently_failed: false,
            }));
        };
        let main = main.unwrap_or_default();
        let retries = &runs[main + 1..];
        // Each type's latest request outcome (`type: requested|duplicate|failed`), retries last.
        let mut requested: BTreeMap<String, String> = BTreeMap::new();
        for run in std::iter::once(&runs[main]).chain(retries) {
            for m in &run.4 {
                if let Some((t, outcome)) = m.split_once(": ") {
                    requested.insert(t.to_string(), outcome.to_string());
                }
            }
        }
        // A type is done once a push of it was handled after the backfill began.
        let arrived: Vec<String> = client
            .query(
                "SELECT DISTINCT split_part(message, ':', 1) FROM sync_runs WHERE user_id = $1 AND provider = 'garmin' \
                 AND source = 'webhook' AND status IN ('success', 'skipped') AND started_at >= $2",
                &[&user_id.0, &started],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let waited = Utc::now() - started;
        let mut window = BTreeMap::new();
        let mut summary = BTreeMap::new();
        for t in &types {
            let s = garmin::backfill_type_status(
                requested.get(t).map(String::as_str),
                arrived.iter().any(|a| a == t),
                waited,
            );
            window.insert(t.clone(), s.to_string());
            let mut counts = zero_counts();
            if let Some(n) = counts.get_mut(s) {
                *n += 1;
            }
            summary.insert(t.clone(), counts);
        }
        let retrying = retries.iter().rev().find(|r| r.1 == "in_progress");
        let retry_type = retrying.and_then(|r| r.3.first().cloned());
        let statuses: Vec<&str> = window.values().map(String::as_str).collect();
        let overall = match (status.as_str(), retrying) {
            ("cancelled", _) => "cancelled",
            (_, Some(_)) => "retry_in_progress",
            _ => garmin::backfill_overall(&status, &statuses),
        };
        let done = matches!(overall, "complete" | "permanently_failed" | "cancelled");
        Ok(Json(BackfillStatus {
            user_id: user_id.0,
            provider: "garmin".into(),
            overall_status: overall.into(),
            current_window: i32::from(done),
            total_windows: 1,
            windows: BTreeMap::from([("0".to_string(), window)]),
            summary,
            in_progress: matches!(overall, "in_progress" | "retry_in_progress"),
            retry_phase: retrying.is_some(),
            retry_window: retrying.map(|_| 0),
            retry_type,
            attempt_count: retries.len() as i64,
            max_attempts: BACKFILL_MAX_ATTEMPTS,
            permanently_failed: overall == "permanently_failed",
        }))
    }

    /// Stop a running Garmin backfill before its next request
    #[oai(
        path = "/providers/garmin/users/:user_id/backfill/cancel",
        method = "post",
        tag = "Tag::Sync"
    )]
    async fn backfill_cancel(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
    ) -> Result<Json<BackfillCancelled>, ApiError> {
        users::load(&state, user_id.0).await?;
        let running = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM sync_runs WHERE user_id = $1 AND provider = 'garmin' AND source = 'backfill' \
                 AND status = 'in_progress' LIMIT 1",
                &[&user_id.0],
            )
            .await?
            .is_some();
        if !running {
            return Err(ApiError::conflict("No backfill in progress for this user"));
        }
        if let Ok(mut c) = state.providers.cancelled.lock() {
            c.insert((user_id.0, "garmin".into()));
        }
        Ok(Json(BackfillCancelled {
            success: true,
            user_id: user_id.0,
            message: "Cancel requested. Backfill will stop after current type completes.".into(),
        }))
    }

    /// Request one Garmin backfill type again
    #[oai(
        path = "/providers/garmin/users/:user_id/backfill/:type_name/retry",
        method = "post",
        tag = "Tag::Sync"
    )]
    async fn backfill_retry(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        type_name: Path<String>,
    ) -> Result<Json<Value>, ApiError> {
        users::load(&state, user_id.0).await?;
        if !crate::providers::garmin::backfill_type_names().contains(&type_name.0) {
            return Err(ApiError::bad_request(format!(
                "Unknown backfill type {}",
                type_name.0
            )));
        }
        let end = Utc::now();
        let req = SyncRequest {
            run_id: Uuid::new_v4(),
            user_id: user_id.0,
            provider: "garmin".into(),
            source: "backfill".into(),
            start: end - chrono::Duration::days(30),
            end,
            data_types: vec![type_name.0.clone()],
        };
        state.providers.queue(&req).await?;
        let engine = state.providers.clone();
        tokio::spawn(async move {
            let _ = engine.sync(req).await;
        });
        Ok(Json(serde_json::json!({
            "success": true, "user_id": user_id.0, "type": type_name.0, "status": "triggered",
            "message": format!("Backfill of {} requested again", type_name.0)
        })))
    }

    /// A user's sync runs, newest first
    #[oai(
        path = "/users/:user_id/sync/runs",
        method = "get",
        tag = "Tag::SyncStatus"
    )]
    async fn user_runs(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        #[oai(
            default = "default_20",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<i64>,
    ) -> Result<Json<Vec<SyncRunSummary>>, ApiError> {
        users::load(&state, user_id.0).await?;
        let rows = state
            .pool
            .get()
            .await?
            .query(
                &format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE user_id = $1 ORDER BY updated_at DESC LIMIT $2"),
                &[&user_id.0, &limit.0],
            )
            .await?;
        Ok(Json(rows.iter().map(run_summary).collect()))
    }

    /// Every user's sync runs, newest first
    #[oai(path = "/sync/runs", method = "get", tag = "Tag::SyncStatus")]
    #[allow(clippy::too_many_arguments)]
    async fn all_runs(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        #[oai(
            default = "default_50",
            validator(minimum(value = "1"), maximum(value = "10000"))
        )]
        limit: Query<i64>,
        user_id: Query<Option<Uuid>>,
        provider: Query<Option<String>>,
        status: Query<Option<String>>,
        source: Query<Option<String>>,
    ) -> Result<Json<Vec<SyncRunSummary>>, ApiError> {
        let rows = state
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM sync_runs WHERE ($1::uuid IS NULL OR user_id = $1) \
                     AND ($2::text IS NULL OR provider = $2) AND ($3::text IS NULL OR status = $3) \
                     AND ($4::text IS NULL OR source = $4) ORDER BY updated_at DESC LIMIT $5"
                ),
                &[&user_id.0, &provider.0, &status.0, &source.0, &limit.0],
            )
            .await?;
        Ok(Json(rows.iter().map(run_summary).collect()))
    }

    /// A user's latest sync status events, newest first
    #[oai(
        path = "/users/:user_id/sync/recent",
        method = "get",
        tag = "Tag::SyncStatus"
    )]
    async fn recent(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        #[oai(
            default = "default_50",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<i64>,
    ) -> Result<Json<Vec<SyncStatusEvent>>, ApiError> {
        users::load(&state, user_id.0).await?;
        Ok(Json(
            status_events(&state, user_id.0, Cursor::START, limit.0, true).await?,
        ))
    }

    /// Live sync status as Server-Sent Events: a `: connected` comment, the last `replay`
    /// events, then live ones (`event: sync.status`), with a `: heartbeat` comment during
    /// silence. Each event also has an `id:` (its log cursor): a client that reconnects with
    /// `Last-Event-ID` receives exactly what it missed.
    #[oai(
        path = "/users/:user_id/sync/stream",
        method = "get",
        tag = "Tag::SyncStatus"
    )]
    async fn stream(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        req: &Request,
        user_id: Path<Uuid>,
        #[oai(
            default = "default_20",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        replay: Query<i64>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
    ) -> Result<SseResponse, ApiError> {
        users::load(&state, user_id.0).await?;
        // A cap on open streams per credential; the slot is freed when the stream ends.
        let slot = state.streams.acquire(&auth.0).ok_or_else(|| {
            ApiError::TooManyRequests(poem_openapi::payload::Json(super::Detail {
                detail: "Too many open sync-status streams for this credential".into(),
            }))
        })?;
        let presented = crate::auth::Presented::of(req);
        let user = user_id.0;
        let resume = last_event_id.0.and_then(|s| {
            let (tx, position) = s.trim().split_once('.')?;
            Some(Cursor {
                tx: tx.parse().ok()?,
                position: position.parse().ok()?,
            })
        });
        let after = match resume {
            Some(c) => c,
            None => {
                // No resume point: start with the last `replay` events, or from now.
                let last = status_events(&state, user, Cursor::START, replay.0, true).await?;
                match last.last() {
                    Some(oldest) => Cursor {
                        tx: oldest.cursor.tx,
                        position: oldest.cursor.position - 1,
                    },
                    None => {
                        let xmin: i64 = state
                            .pool
                            .get()
                            .await?
                            .query_one(
                                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                                &[],
                            )
                            .await?
                            .get(0);
                        Cursor {
                            tx: xmin - 1,
                            position: i64::MAX,
                        }
                    }
                }
            }
        };
        let heartbeat = Duration::from_secs(state.providers.config.sse_heartbeat_secs.max(1));
        let st = state.clone();
        let connected = futures::stream::once(async {
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b": connected\n\n"))
        });
        // The stream re-checks its credential every few seconds and ends once it is revoked
        // (a deleted API key, a signed-out token); `slot` is held until it ends.
        let recheck = Duration::from_secs(5);
        let now = tokio::time::Instant::now();
        let live = futures::stream::unfold(
            (st, after, now, slot, presented, now),
            move |(st, mut after, mut last_sent, slot, presented, mut checked)| async move {
                loop {
                    if checked.elapsed() >= recheck {
                        if !crate::auth::credential_still_valid(&st, &presented).await {
                            return None;
                        }
                        checked = tokio::time::Instant::now();
                    }
                    match status_events(&st, user, after, 100, false).await {
                        Ok(events) if !events.is_empty() => {
                            after = events.last().map(|e| e.cursor).unwrap_or(after);
                            let frames: String = events.iter().map(sse_frame).collect();
                            let out = Ok::<_, std::io::Error>(bytes::Bytes::from(frames));
                            let now = tokio::time::Instant::now();
                            return Some((out, (st, after, now, slot, presented, checked)));
                        }
                        Ok(_) => {}
                        Err(_) => warn!("sync status stream could not read the log"),
                    }
                    if last_sent.elapsed() >= heartbeat {
                        last_sent = tokio::time::Instant::now();
                        let out = Ok(bytes::Bytes::from_static(b": heartbeat\n\n"));
                        return Some((out, (st, after, last_sent, slot, presented, checked)));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            },
        );
        let body = poem::Body::from_bytes_stream(connected.chain(live));
        Ok(SseResponse::Ok(
            Binary(body),
            "no-cache, no-transform".into(),
            "no".into(),
        ))
    }

    /// Inbound webhook deliveries (push and ping)
    #[oai(
        path = "/providers/:provider/webhooks",
        method = "post",
        tag = "Tag::Webhooks"
    )]
    async fn webhook(
        &self,
        state: Data<&AppState>,
        req: &Request,
        provider: Path<String>,
        body: Binary<Vec<u8>>,
    ) -> Result<Json<Accepted>, ApiError> {
        let (p, endpoints) = state
            .providers
            .registry
            .get(&provider.0)
            .ok_or_else(|| ApiError::not_found(format!("Unknown provider {}", provider.0)))?;
        let headers: BTreeMap<String, String> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        // Garmin signs nothing and its client id is public: a push must carry the installation's
        // own token, given in the push URL registered at Garmin.
        if p.name() == "garmin" {
            let expected = state
                .providers
                .config
                .garmin_push_token
                .as_deref()
                .unwrap_or("");
            let given = req
                .uri()
                .query()
                .map(url_pairs)
                .and_then(|q| q.get("token").cloned())
                .unwrap_or_default();
            if expected.is_empty() || !crate::providers::same(given.as_bytes(), expected.as_bytes())
            {
                return Err(WebhookError::Signature.into());
            }
        }
        p.verify_webhook(&headers, &body.0, &endpoints)?;
        // A validly signed delivery replayed later (or dated ahead) is refused: the signature
        // covers the timestamp, so only the timestamp tells a replay apart.
        if let Some(sent) = p.webhook_timestamp(&headers) {
            check_freshness(
                sent,
                Utc::now(),
                state.providers.config.webhook_tolerance_secs,
            )?;
        }
        let json: Value = serde_json::from_slice(&body.0)
            .map_err(|_| WebhookError::Payload("body is not JSON".into()))?;
        let notices = p.parse_webhook(&json)?;
        check_push_times(&notices, Utc::now())?;
        let meta = RawMeta {
            provider: p.name(),
            kind: "webhook",
            content_type: "application/json",
            user_id: None,
        };
        let raw_ref = raw::store_bytes(&state.pool, &body.0, meta)
            .await
            .map_err(super::error::internal_api)?;
        // A redelivered body (same bytes) was handled the first time.
        let fresh = state
            .pool
            .get()
            .await?
            .execute(
                "INSERT INTO webhook_deliveries (provider, sha256) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&p.name(), &raw_ref.sha256],
            )
            .await?
            == 1;
        if !fresh {
            return Ok(Json(Accepted {
                status: "duplicate".into(),
            }));
        }
        for notice in notices {
            let account = match &notice {
                Notice::Pull {
                    provider_user_id, ..
                }
                | Notice::Data {
                    provider_user_id, ..
                }
                | Notice::Fetch {
                    provider_user_id, ..
                }
                | Notice::Deregistered { provider_user_id }
                | Notice::ScopeChanged {
                    provider_user_id, ..
                }
                | Notice::Deleted {
                    provider_user_id, ..
                } => provider_user_id.clone(),
            };
            // Fan out to every user linked to that provider account.
            let users: Vec<Uuid> = state
                .pool
                .get()
                .await?
                .query(
                    "SELECT user_id FROM connections WHERE provider = $1 AND provider_user_id = $2 AND status = 'active' \
                     ORDER BY created_at",
                    &[&p.name(), &account],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for (i, user) in users.iter().copied().enumerate() {
                match &notice {
                    Notice::ScopeChanged { scope, .. } => {
                        state.providers.change_scope(user, p.name(), scope).await;
                    }
                    Notice::Deregistered { .. } => {
                        state
                            .providers
                            .revoke_for(user, p.name(), "provider_deregistered")
                            .await;
                    }
                    Notice::Data {
                        data_type, items, ..
                    } => {
                        // Files a push points at (Garmin activity files) are served per account:
                        // the first linked user's run downloads them once and fans them out.
                        let linked = if p.file_downloads(data_type, items).is_empty() {
                            Vec::new()
                        } else if i == 0 {
                            users[1..].to_vec()
                        } else {
                            continue;
                        };
                        // Answer at once (Garmin gives up after 30 s); map in the background.
                        let (engine, p, data_type, items, raw_ref) = (
                            state.providers.clone(),
                            p.clone(),
                            data_type.clone(),
                            items.clone(),
                            raw_ref.clone(),
                        );
                        tokio::spawn(async move {
                            let _ = engine
                                .ingest_push(user, &linked, p.as_ref(), &data_type, &items, raw_ref)
                                .await;
                        });
                    }
                    Notice::Fetch { data_type, url, .. } => {
                        // One fetch for the account, by its oldest connection's token; what it
                        // brings is fanned out to every linked user.
                        if i > 0 {
                            continue;
                        }
                        let (engine, p, data_type, url) = (
                            state.providers.clone(),
                            p.clone(),
                            data_type.clone(),
                            url.clone(),
                        );
                        let linked = users[1..].to_vec();
                        tokio::spawn(async move {
                            if let Err(e) = engine
                                .ingest_ping(user, &linked, p.as_ref(), &data_type, &url)
                                .await
                            {
                                warn!(provider = p.name(), data_type, error = %e, "ping not fetched");
                            }
                        });
                    }
                    Notice::Deleted {
                        data_type,
                        external_id,
                        ..
                    } => {
                        // The provider's delete is authoritative: each record mapped from it
                        // is deleted (hidden from the read models, kept in the history), and
                        // stays deleted if a later pull brings it again.
                        let actor = crate::store::Actor {
                            kind: "webhook",
                            id: p.name().into(),
                            request_id: request_id(req),
                        };
                        for (kind, record_id) in p.deleted_records(data_type, external_id, user) {
                            let event = DataEvent::RecordDeleted {
                                user_id: user,
                                kind,
                                record_id,
                            };
                            state
                                .commands
                                .record_user_change(&record_id.to_string(), &event, &actor, None)
                                .await
                                .map_err(super::error::internal_api)?;
                        }
                        if let Some(event) = derived_samples_deleted(
                            &state,
                            p.as_ref(),
                            data_type,
                            external_id,
                            user,
                        )
                        .await?
                        {
                            let stream = format!("{user}/samples/{external_id}");
                            state
                                .commands
                                .record_user_change(&stream, &event, &actor, None)
                                .await
                                .map_err(super::error::internal_api)?;
                        }
                    }
                    Notice::Pull { data_type, .. } => {
                        let raw_event = DataEvent::RawPayloadReceived {
                            user_id: user,
                            raw: raw_ref.clone(),
                            mapping_version: p.mapping_version(),
                            received_at: Some(Utc::now()),
                        };
                        let actor = crate::store::Actor {
                            kind: "webhook",
                            id: p.name().into(),
                            request_id: request_id(req),
                        };
                        writer::write_all(
                            &state.pool,
                            Uuid::new_v4(),
                            user,
                            &actor,
                            vec![Out::Event(raw_event)],
                        )
                        .await
                        .map_err(super::error::internal_api)?;
                        // One pull for the account, by its oldest connection; the engine fans
                        // what it brings out to every linked user.
                        if i > 0 {
                            continue;
                        }
                        let sync = SyncRequest {
                            run_id: Uuid::new_v4(),
                            user_id: user,
                            provider: p.name().into(),
                            source: "webhook".into(),
                            start: Utc::now() - chrono::Duration::days(3),
                            end: Utc::now() + chrono::Duration::days(1),
                            data_types: vec![data_type.clone()],
                        };
                        state.providers.queue(&sync).await?;
                        let engine = state.providers.clone();
                        tokio::spawn(async move {
                            let _ = engine.sync(sync).await;
                        });
                    }
                }
            }
        }
        Ok(Json(Accepted {
            status: "accepted".into(),
        }))
    }

    /// Webhook verification challenges
    #[oai(
        path = "/providers/:provider/webhooks",
        method = "get",
        tag = "Tag::Webhooks"
    )]
    async fn webhook_challenge(
        &self,
        state: Data<&AppState>,
        req: &Request,
        provider: Path<String>,
    ) -> Result<Json<Value>, ApiError> {
        let (p, _) = state
            .providers
            .registry
            .get(&provider.0)
            .ok_or_else(|| ApiError::not_found(format!("Unknown provider {}", provider.0)))?;
        let query: BTreeMap<String, String> = req.uri().query().map(url_pairs).unwrap_or_default();
        let (_, endpoints) = state
            .providers
            .registry
            .get(p.name())
            .ok_or_else(|| ApiError::not_found("Unknown provider"))?;
        Ok(Json(p.challenge(&query, &endpoints)?))
    }
}

/// Waits until the `sync_runs` read model has applied every event of run `run_id`, so a
/// response after a blocking sync is never contradicted by `/sync/runs`.
async fn wait_for_run(state: &AppState, run_id: Uuid) {
    let Some(runner) = &state.commands.runner else {
        return;
    };
    let Ok(client) = state.pool.get().await else {
        return;
    };
    let cursor = wearhouse_log::read::last_cursor_of(&client, "SyncRun", &run_id.to_string()).await;
    drop(client);
    if let Ok(Some(c)) = cursor {
        if !runner
            .wait_for("sync_runs", c, Duration::from_secs(10))
            .await
        {
            warn!(run = %run_id, "sync_runs read model did not catch up within 10 s");
        }
    }
}

/// Refuses a push whose records carry absurd times (Garmin's `…TimeInSeconds` fields before
/// 2000 or days ahead), before anything is stored or mapped.
fn check_push_times(notices: &[Notice], now: DateTime<Utc>) -> Result<(), WebhookError> {
    fn walk(v: &Value, now: DateTime<Utc>) -> Result<(), WebhookError> {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    // Instants, not durations such as `activeTimeInSeconds`.
                    let instant = matches!(
                        k.as_str(),
                        "startTimeInSeconds" | "endTimeInSeconds" | "measurementTimeInSeconds"
                    ) || k.ends_with("StartTimeInSeconds")
                        || k.ends_with("EndTimeInSeconds");
                    if instant {
                        let ok = x
                            .as_i64()
                            .and_then(|t| DateTime::from_timestamp(t, 0))
                            .is_some_and(|t| crate::providers::mapped::plausible(t, now));
                        if !ok {
                            return Err(WebhookError::Payload(format!("{k} is out of range: {x}")));
                        }
                    } else {
                        walk(x, now)?;
                    }
                }
                Ok(())
            }
            Value::Array(a) => a.iter().try_for_each(|x| walk(x, now)),
            _ => Ok(()),
        }
    }
    for n in notices {
        if let Notice::Data { items, .. } = n {
            walk(items, now)?;
        }
    }
    Ok(())
}

fn url_pairs(q: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Revokes the user's connection to `provider`, as upstream: an unknown provider name is 400,
/// no connection at all is 404, and an already revoked one is left as it is (success).
async fn revoke(
    state: &AppState,
    auth: &AnyCredential,
    req: &Request,
    user: Uuid,
    provider: &str,
) -> Result<(), ApiError> {
    if !wearhouse_domain::priority::PROVIDERS.contains(&provider) {
        return Err(ApiError::bad_request(format!(
            "Input should be one of: {}",
            wearhouse_domain::priority::PROVIDERS.join(", ")
        )));
    }
    users::load(state, user).await?;
    let status: Option<String> = state
        .pool
        .get()
        .await?
        .query_opt(
            "SELECT status FROM connections WHERE user_id = $1 AND provider = $2 AND status <> 'pending'",
            &[&user, &provider],
        )
        .await?
        .map(|r| r.get(0));
    match status.as_deref() {
        None => {
            return Err(ApiError::not_found(format!(
                "Connection with ID: {user} not found."
            )))
        }
        Some("active") => {}
        Some(_) => return Ok(()),
    }
    state
        .commands
        .execute::<Connection>(
            &connection_id(user, provider),
            ConnectionCommand::Revoke {
                reason: "user_disconnected".into(),
                at: Utc::now(),
            },
            &auth.0.actor(request_id(req)),
            Some(user),
            Some("connections"),
        )
        .await?;
    Ok(())
}

fn zero_counts() -> BTreeMap<String, i64> {
    ["done", "timed_out", "failed"]
        .iter()
        .map(|k| (k.to_string(), 0))
        .collect()
}

fn default_all() -> DataType {
    DataType::All
}
fn default_true() -> bool {
    true
}
fn default_days() -> i64 {
    90
}
fn default_20() -> i64 {
    20
}
fn default_50() -> i64 {
    50
}

/// The `SamplesDeleted` event for the samples mapped from a provider-deleted record, or `None`
/// when the provider maps none from that type or the record was never stored. The delete
/// notice names only the provider's id, so the samples' time comes from the record's own
/// mapped record (its score or sleep session), as stored by its read model.
async fn derived_samples_deleted(
    state: &AppState,
    p: &dyn crate::providers::Provider,
    data_type: &str,
    external_id: &str,
    user: Uuid,
) -> Result<Option<DataEvent>, ApiError> {
    use crate::providers::SampleAnchor;
    let Some(derived) = p.deleted_samples(data_type, external_id, user) else {
        return Ok(None);
    };
    let (sql, id) = match derived.at {
        SampleAnchor::ScoreTime(id) => (
            "SELECT recorded_at FROM health_scores WHERE id = $1 AND user_id = $2",
            id,
        ),
        SampleAnchor::SleepStart(id) => (
            "SELECT start_time FROM sleep_sessions WHERE id = $1 AND user_id = $2",
            id,
        ),
    };
    let Some(row) = state
        .pool
        .get()
        .await?
        .query_opt(sql, &[&id, &user])
        .await?
    else {
        return Ok(None);
    };
    let at: DateTime<Utc> = row.get(0);
    let series_types = derived
        .series
        .iter()
        .filter_map(|c| wearhouse_domain::series::by_code(c).map(|t| t.id))
        .collect();
    Ok(Some(DataEvent::SamplesDeleted {
        user_id: user,
        data_source_id: derived.data_source_id,
        series_types,
        times: vec![at],
    }))
}
