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
use crate::services::backfills::Backfills;
use crate::services::syncs::{PullOrder, PullReport, PullScope};
use crate::services::webhooks::{Delivery, Webhooks};
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
pub(super) struct Accepted {
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
        let order = PullOrder {
            user_id: user_id.0,
            provider: provider.0,
            since: since.0,
            window_start,
            window_end,
            scope: match data_type.0 {
                DataType::All => PullScope::All,
                DataType::Workouts => PullScope::Workouts,
                DataType::Data247 => PullScope::Data247,
            },
        };
        let pull = state.syncs.plan_pull(order).await?;
        if run_async.0 {
            let name = pull.request.provider.clone();
            let task = state.syncs.start_async(pull.request).await?.to_string();
            return Ok(Json(SyncResponse {
                success: true,
                is_async: Some(true),
                task_id: Some(task),
                message: Some(format!(
                    "Sync task queued for {name}. Check task status for results."
                )),
                details: None,
            }));
        }
        Ok(Json(match state.syncs.run_pull(pull).await? {
            PullReport::Done(details) => SyncResponse {
                success: true,
                is_async: None,
                task_id: None,
                message: None,
                details: Some(details),
            },
            PullReport::Failed(message) => SyncResponse {
                success: false,
                is_async: None,
                task_id: None,
                message: Some(message),
                details: None,
            },
        }))
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
        let h = Backfills::new(state.providers.clone(), state.jobs.clone())
            .historical(user_id.0, &provider.0, days.0)
            .await?;
        Ok(Json(HistoricalResponse {
            success: true,
            provider: h.provider.into(),
            user_id: user_id.0,
            method: h.method.into(),
            task_id: h.task_id.to_string(),
            message: format!("Historical sync of {} days queued", h.days),
            days: h.days,
            start_date: h.start,
            end_date: h.end,
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
        let s = Backfills::new(state.providers.clone(), state.jobs.clone())
            .status(user_id.0)
            .await?;
        Ok(Json(BackfillStatus {
            user_id: user_id.0,
            provider: "garmin".into(),
            overall_status: s.overall_status,
            current_window: s.current_window,
            total_windows: s.total_windows,
            windows: s.windows,
            summary: s.summary,
            in_progress: s.in_progress,
            retry_phase: s.retry_phase,
            retry_type: s.retry_type,
            retry_window: s.retry_window,
            attempt_count: s.attempt_count,
            max_attempts: s.max_attempts,
            permanently_failed: s.permanently_failed,
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
        Backfills::new(state.providers.clone(), state.jobs.clone())
            .cancel(user_id.0)
            .await?;
        Ok(Json(BackfillCancelled {
            success: true,
            user_id: user_id.0,
            message: "Cancel requested. Backfill will stop after current type completes.".into(),
        }))
    }

    /// Request one Garmin backfill type again. While another sync of the connection runs the
    /// retry is not started and the answer is 409 (it would be refused when it ran).
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
        Backfills::new(state.providers.clone(), state.jobs.clone())
            .retry(user_id.0, &type_name.0)
            .await?;
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
        // Shutdown ends the stream, so draining requests does not wait out the grace period.
        let mut stopping = state.stopping.clone();
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let body = poem::Body::from_bytes_stream(connected.chain(live).take_until(stopped));
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
        receive_webhook(&state, req, &provider.0, &body.0).await
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
        answer_challenge(&state, req, &provider.0)
    }
}

/// One inbound delivery for `provider`, whichever route it came by (the provider's own
/// deprecated paths lead here too): verified, stored and queued by the webhook service.
pub(super) async fn receive_webhook(
    state: &AppState,
    req: &Request,
    provider: &str,
    body: &[u8],
) -> Result<Json<Accepted>, ApiError> {
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
    let delivery = Delivery {
        provider,
        headers,
        query: req.uri().query(),
        body,
        request_id: request_id(req),
    };
    let receipt = Webhooks::new(state.providers.clone())
        .receive(delivery)
        .await?;
    Ok(Json(Accepted {
        status: receipt.as_str().into(),
    }))
}

/// The answer to `provider`'s verification challenge of its webhook URL.
pub(super) fn answer_challenge(
    state: &AppState,
    req: &Request,
    provider: &str,
) -> Result<Json<Value>, ApiError> {
    let challenge =
        Webhooks::new(state.providers.clone()).challenge(provider, req.uri().query())?;
    Ok(Json(challenge))
}

/// Waits until the `sync_runs` read model has applied every event of run `run_id`, so a
/// response after a blocking sync is never contradicted by `/sync/runs`.
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
    // The grant is withdrawn at the provider too where it offers that (Strava, Fitbit,
    // Ultrahuman), while the tokens are still readable; best effort.
    state.providers.revoke_at_provider(user, provider).await;
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
