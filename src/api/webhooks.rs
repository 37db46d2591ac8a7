//! `/api/v1/webhooks`: outgoing webhook endpoints, their secrets, the event types, the messages
//! sent and the attempts made, as the contract's routes (upstream fronts Svix; here the
//! `WebhookEndpoint` aggregate, the outbox and the delivery engine in `src/webhooks` do it).
//! Beyond the contract: `POST …/secret/rotate` and `POST …/messages/{id}/resend`.

use chrono::{DateTime, TimeDelta, Utc};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use serde_json::{json, Value};
use uuid::Uuid;
use wearhouse_domain::webhook_endpoint::{WebhookEndpoint, WebhookEndpointCommand};
use wearhouse_domain::webhook_events;

use super::api_keys::OptionalJson;
use super::{request_id, ApiError, AppState};
use crate::auth::DeveloperAuth;
use crate::webhooks::{endpoint_ref, parse_endpoint_ref, secret_context, signing};

#[derive(Tags)]
enum Tag {
    /// Outgoing webhooks to integrators
    Webhooks,
}

const READ_MODEL: Option<&str> = Some("webhook_endpoints");
/// How long a rotated-out secret still signs.
const PREVIOUS_SECRET_VALIDITY: TimeDelta = TimeDelta::hours(24);

#[derive(Object)]
struct EndpointCreateRequest {
    /// Absolute http(s) URL the events are POSTed to.
    url: String,
    description: Option<String>,
    /// Event types to receive; absent or null: all.
    filter_types: Option<Vec<String>>,
    /// Only this user's events (channel `user.<user_id>`); absent or null: every user's.
    user_id: Option<Uuid>,
}

#[derive(Object)]
struct EndpointUpdateRequest {
    url: MaybeUndefined<String>,
    description: MaybeUndefined<String>,
    /// `null` or `[]` receives every event type again.
    filter_types: MaybeUndefined<Vec<String>>,
    /// An explicit `null` removes the user filter.
    user_id: MaybeUndefined<Uuid>,
}

#[derive(Object)]
struct EndpointResponse {
    /// `ep_` + 32 hex.
    id: String,
    url: String,
    description: Option<String>,
    filter_types: Option<Vec<String>>,
    user_id: Option<Uuid>,
    /// Whether delivery stopped because the endpoint failed for five days (a PATCH enables it).
    disabled: bool,
    disabled_reason: Option<String>,
}

#[derive(Object)]
struct EndpointSecretResponse {
    /// `whsec_` + base64: the key receivers verify signatures with.
    key: String,
}

#[derive(Object)]
struct EventTypeResponse {
    name: String,
    description: String,
    /// For a grouped timeseries event: the granular `series.<type>.created` events it covers.
    child_events: Option<Vec<String>>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
struct WebhookMessageResponse {
    id: String,
    event_type: String,
    /// The idempotency key, also sent as `webhook-id`.
    event_id: Option<String>,
    timestamp: String,
    channels: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    /// The body sent: `{type, timestamp, data}`.
    payload: Option<Value>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
struct WebhookMessageAttemptResponse {
    id: String,
    endpoint_id: String,
    msg_id: String,
    url: String,
    /// The receiver's answer, first 4 KiB (or why there was none).
    response: String,
    /// 0 when no HTTP answer came (refused destination, timeout, connection error).
    response_status_code: i32,
    response_duration_ms: i64,
    /// 0 success, 2 failed (as Svix).
    status: i16,
    status_text: Option<String>,
    /// 0 scheduled, 1 manual (as Svix).
    trigger_type: i16,
    timestamp: String,
    msg: Option<WebhookMessageResponse>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
struct MessagePage {
    data: Vec<WebhookMessageResponse>,
    done: bool,
    iterator: Option<String>,
    prev_iterator: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
struct AttemptPage {
    data: Vec<WebhookMessageAttemptResponse>,
    done: bool,
    iterator: Option<String>,
    prev_iterator: Option<String>,
}

#[derive(Object)]
struct TestEventRequest {
    #[oai(default = "default_test_type")]
    event_type: String,
}

fn default_test_type() -> String {
    "workout.created".into()
}

#[derive(Object)]
struct TestEventResponse {
    message: String,
    message_id: String,
}

#[derive(ApiResponse)]
enum Created {
    #[oai(status = 201)]
    Ok(Json<EndpointResponse>),
}

#[derive(ApiResponse)]
enum NoContent {
    #[oai(status = 204)]
    Done,
}

const ENDPOINT_COLUMNS: &str =
    "id, url, description, user_id, filter_types, disabled, disabled_reason";

fn endpoint(r: &tokio_postgres::Row) -> EndpointResponse {
    EndpointResponse {
        id: endpoint_ref(r.get(0)),
        url: r.get(1),
        description: r.get(2),
        user_id: r.get(3),
        filter_types: r.get(4),
        disabled: r.get(5),
        disabled_reason: r.get(6),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Webhook endpoint {id} not found"))
}

async fn load(state: &AppState, id: &str) -> Result<(Uuid, EndpointResponse), ApiError> {
    let uuid = parse_endpoint_ref(id).ok_or_else(|| not_found(id))?;
    let row = state
        .pool
        .get()
        .await?
        .query_opt(
            &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"),
            &[&uuid],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok((uuid, endpoint(&row)))
}

/// `[]` means no filter, as upstream (Svix treats an empty filter as none).
fn filter(types: Option<Vec<String>>) -> Option<Vec<String>> {
    types.filter(|t| !t.is_empty())
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Iterators are `<microseconds>.<id>` of the last item of the previous page (newest first).
fn parse_iterator(it: &Option<String>) -> Result<Option<(DateTime<Utc>, String)>, ApiError> {
    let Some(it) = it.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = || ApiError::bad_request("iterator: not an iterator this API returned");
    let (us, id) = it.split_once('.').ok_or_else(bad)?;
    let us: i64 = us.parse().map_err(|_| bad())?;
    let t = DateTime::from_timestamp_micros(us).ok_or_else(bad)?;
    Ok(Some((t, id.to_string())))
}

fn iterator_of(t: DateTime<Utc>, id: &str) -> String {
    format!("{}.{id}", t.timestamp_micros())
}

fn check_limit(limit: i64) -> Result<i64, ApiError> {
    if !(1..=250).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 250"));
    }
    Ok(limit)
}

fn message(r: &tokio_postgres::Row, at: usize) -> WebhookMessageResponse {
    let payload: Value = r.get(at + 5);
    WebhookMessageResponse {
        id: r.get(at),
        event_id: Some(r.get(at + 1)),
        event_type: r.get(at + 2),
        timestamp: stamp(r.get(at + 3)),
        channels: Some(r.get(at + 4)),
        tags: None,
        payload: Some(payload).filter(Value::is_object),
    }
}

const MESSAGE_COLUMNS: &str = "m.id, m.event_id, m.event_type, m.created_at, m.channels, m.payload";

/// A canned example of `event_type`'s data, for test events.
fn canned(event_type: &str) -> Value {
    let now = Utc::now();
    let source = json!({"provider": "apple", "device": "Apple Watch"});
    match event_type {
        "workout.created" => json!({"id": Uuid::nil(), "user_id": Uuid::nil(), "type": "running",
            "start_time": now - TimeDelta::hours(1), "end_time": now, "zone_offset": "+00:00",
            "duration_seconds": 3600, "source": source, "calories_kcal": 512.0,
            "distance_meters": 10000.0, "avg_heart_rate_bpm": 150, "max_heart_rate_bpm": 180,
            "avg_pace_sec_per_km": 360, "elevation_gain_meters": 42.0}),
        "sleep.created" => json!({"id": Uuid::nil(), "user_id": Uuid::nil(),
            "start_time": now - TimeDelta::hours(8), "end_time": now, "zone_offset": "+00:00",
            "duration_seconds": 28800, "source": source, "efficiency_percent": 91.0,
            "stages": {"awake": 20, "light": 240, "deep": 100, "rem": 120}, "is_nap": false}),
        t => json!({"user_id": Uuid::nil(), "event_type": t, "test": true}),
    }
}

pub struct WebhooksApi;

#[OpenApi(prefix_path = "/api/v1/webhooks")]
impl WebhooksApi {
    /// List webhook endpoints
    #[oai(path = "/endpoints", method = "get", tag = "Tag::Webhooks")]
    async fn list_endpoints(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
    ) -> Result<Json<Vec<EndpointResponse>>, ApiError> {
        let rows = state
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
                ),
                &[],
            )
            .await?;
        Ok(Json(rows.iter().map(endpoint).collect()))
    }

    /// Create a webhook endpoint (it receives what is committed from now on)
    #[oai(path = "/endpoints", method = "post", tag = "Tag::Webhooks")]
    async fn create_endpoint(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        body: Json<EndpointCreateRequest>,
    ) -> Result<Created, ApiError> {
        let id = Uuid::new_v4();
        let b = body.0;
        let secret = signing::new_secret();
        let sealed = state.providers.sealer.seal(&secret, &secret_context(id));
        let command = WebhookEndpointCommand::Create {
            id,
            url: b.url.trim().to_string(),
            description: wearhouse_domain::clean(b.description),
            user_id: b.user_id,
            filter_types: filter(b.filter_types),
            sealed_secret: sealed,
            at: Utc::now(),
        };
        state
            .commands
            .execute::<WebhookEndpoint>(
                &id.to_string(),
                command,
                &auth.principal().actor(request_id(req)),
                b.user_id,
                READ_MODEL,
            )
            .await?;
        let (_, e) = load(&state, &endpoint_ref(id)).await?;
        Ok(Created::Ok(Json(e)))
    }

    /// Get a webhook endpoint
    #[oai(
        path = "/endpoints/:endpoint_id",
        method = "get",
        tag = "Tag::Webhooks"
    )]
    async fn get_endpoint(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        endpoint_id: Path<String>,
    ) -> Result<Json<EndpointResponse>, ApiError> {
        Ok(Json(load(&state, &endpoint_id.0).await?.1))
    }

    /// Update a webhook endpoint (absent fields are kept; `user_id: null` removes the user filter)
    #[oai(
        path = "/endpoints/:endpoint_id",
        method = "patch",
        tag = "Tag::Webhooks"
    )]
    async fn update_endpoint(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        endpoint_id: Path<String>,
        body: Json<EndpointUpdateRequest>,
    ) -> Result<Json<EndpointResponse>, ApiError> {
        let (id, _) = load(&state, &endpoint_id.0).await?;
        let b = body.0;
        let url = match b.url {
            MaybeUndefined::Value(u) => Some(u.trim().to_string()),
            MaybeUndefined::Null => {
                return Err(ApiError::bad_request("url: may not be null"));
            }
            MaybeUndefined::Undefined => None,
        };
        let command = WebhookEndpointCommand::Update {
            url,
            description: opt(b.description).map(wearhouse_domain::clean),
            user_id: opt(b.user_id),
            filter_types: opt(b.filter_types).map(filter),
            at: Utc::now(),
        };
        state
            .commands
            .execute::<WebhookEndpoint>(
                &id.to_string(),
                command,
                &auth.principal().actor(request_id(req)),
                None,
                READ_MODEL,
            )
            .await?;
        Ok(Json(load(&state, &endpoint_id.0).await?.1))
    }

    /// Delete a webhook endpoint (its pending deliveries are dropped)
    #[oai(
        path = "/endpoints/:endpoint_id",
        method = "delete",
        tag = "Tag::Webhooks"
    )]
    async fn delete_endpoint(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        endpoint_id: Path<String>,
    ) -> Result<NoContent, ApiError> {
        let (id, _) = load(&state, &endpoint_id.0).await?;
        state
            .commands
            .execute::<WebhookEndpoint>(
                &id.to_string(),
                WebhookEndpointCommand::Delete { at: Utc::now() },
                &auth.principal().actor(request_id(req)),
                None,
                READ_MODEL,
            )
            .await?;
        state
            .pool
            .get()
            .await?
            .execute(
                "UPDATE webhook_deliveries SET state = 'failed' WHERE endpoint_id = $1 AND state = 'pending'",
                &[&id],
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// The endpoint's signing secret
    #[oai(
        path = "/endpoints/:endpoint_id/secret",
        method = "get",
        tag = "Tag::Webhooks"
    )]
    async fn get_secret(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        endpoint_id: Path<String>,
    ) -> Result<Json<EndpointSecretResponse>, ApiError> {
        let (id, _) = load(&state, &endpoint_id.0).await?;
        let sealed: String = state
            .pool
            .get()
            .await?
            .query_one("SELECT secret FROM webhook_endpoints WHERE id = $1", &[&id])
            .await?
            .get(0);
        let key = state
            .providers
            .sealer
            .open(&sealed, &secret_context(id))
            .map_err(super::error::internal_api)?
            .plain;
        Ok(Json(EndpointSecretResponse { key }))
    }

    /// Rotate the endpoint's signing secret; the old one keeps signing (alongside) for 24 hours
    #[oai(
        path = "/endpoints/:endpoint_id/secret/rotate",
        method = "post",
        tag = "Tag::Webhooks"
    )]
    async fn rotate_secret(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        endpoint_id: Path<String>,
    ) -> Result<Json<EndpointSecretResponse>, ApiError> {
        let (id, _) = load(&state, &endpoint_id.0).await?;
        let secret = signing::new_secret();
        let now = Utc::now();
        let command = WebhookEndpointCommand::RotateSecret {
            sealed_secret: state.providers.sealer.seal(&secret, &secret_context(id)),
            previous_valid_until: now + PREVIOUS_SECRET_VALIDITY,
            at: now,
        };
        state
            .commands
            .execute::<WebhookEndpoint>(
                &id.to_string(),
                command,
                &auth.principal().actor(request_id(req)),
                None,
                READ_MODEL,
            )
            .await?;
        Ok(Json(EndpointSecretResponse { key: secret }))
    }

    /// Every event type (session, grouped timeseries and granular series events)
    #[oai(path = "/event-types", method = "get", tag = "Tag::Webhooks")]
    async fn event_types(&self) -> Json<Vec<EventTypeResponse>> {
        Json(
            webhook_events::catalog()
                .into_iter()
                .map(|(name, description, child_events)| EventTypeResponse {
                    name,
                    description,
                    child_events,
                })
                .collect(),
        )
    }

    /// Messages sent, newest first
    #[oai(path = "/messages", method = "get", tag = "Tag::Webhooks")]
    async fn list_messages(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        #[oai(default = "default_limit")] limit: Query<i64>,
        iterator: Query<Option<String>>,
        before: Query<Option<DateTime<Utc>>>,
        after: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<MessagePage>, ApiError> {
        let limit = check_limit(limit.0)?;
        let it = parse_iterator(&iterator.0)?;
        let (it_t, it_id) = (it.as_ref().map(|i| i.0), it.map(|i| i.1));
        let rows = state
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM webhook_messages m \
                     WHERE ($1::timestamptz IS NULL OR (m.created_at, m.id) < ($1, $2::text)) \
                       AND ($3::timestamptz IS NULL OR m.created_at < $3) \
                       AND ($4::timestamptz IS NULL OR m.created_at > $4) \
                     ORDER BY m.created_at DESC, m.id DESC LIMIT $5"
                ),
                &[&it_t, &it_id, &before.0, &after.0, &(limit + 1)],
            )
            .await?;
        let done = rows.len() as i64 <= limit;
        let rows = &rows[..rows.len().min(limit as usize)];
        let iterator = rows
            .last()
            .map(|r| iterator_of(r.get(3), &r.get::<_, String>(0)));
        Ok(Json(MessagePage {
            data: rows.iter().map(|r| message(r, 0)).collect(),
            done,
            iterator,
            prev_iterator: None,
        }))
    }

    /// Delivery attempts to an endpoint, newest first
    #[oai(
        path = "/endpoints/:endpoint_id/attempts",
        method = "get",
        tag = "Tag::Webhooks"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_attempts(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        endpoint_id: Path<String>,
        #[oai(default = "default_limit")] limit: Query<i64>,
        iterator: Query<Option<String>>,
        before: Query<Option<DateTime<Utc>>>,
        after: Query<Option<DateTime<Utc>>>,
        status: Query<Option<i16>>,
        event_types: Query<Vec<String>>,
    ) -> Result<Json<AttemptPage>, ApiError> {
        let limit = check_limit(limit.0)?;
        let (id, _) = load(&state, &endpoint_id.0).await?;
        let it = parse_iterator(&iterator.0)?;
        let (it_t, it_id) = (it.as_ref().map(|i| i.0), it.map(|i| i.1));
        let types: Option<Vec<String>> = Some(event_types.0).filter(|t| !t.is_empty());
        let rows = state
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT a.id, a.endpoint_id, a.message_id, a.url, a.response, a.status_code, a.duration_ms, \
                            a.status, a.trigger_type, a.at, {MESSAGE_COLUMNS} \
                       FROM webhook_attempts a JOIN webhook_messages m ON m.id = a.message_id \
                      WHERE a.endpoint_id = $1 \
                        AND ($2::timestamptz IS NULL OR (a.at, a.id) < ($2, $3::text)) \
                        AND ($4::timestamptz IS NULL OR a.at < $4) \
                        AND ($5::timestamptz IS NULL OR a.at > $5) \
                        AND ($6::int2 IS NULL OR a.status = $6) \
                        AND ($7::text[] IS NULL OR m.event_type = ANY($7)) \
                      ORDER BY a.at DESC, a.id DESC LIMIT $8"
                ),
                &[&id, &it_t, &it_id, &before.0, &after.0, &status.0, &types, &(limit + 1)],
            )
            .await?;
        let done = rows.len() as i64 <= limit;
        let rows = &rows[..rows.len().min(limit as usize)];
        let iterator = rows
            .last()
            .map(|r| iterator_of(r.get(9), &r.get::<_, String>(0)));
        let data = rows
            .iter()
            .map(|r| {
                let status: i16 = r.get(7);
                WebhookMessageAttemptResponse {
                    id: r.get(0),
                    endpoint_id: endpoint_ref(r.get(1)),
                    msg_id: r.get(2),
                    url: r.get(3),
                    response: r.get(4),
                    response_status_code: r.get(5),
                    response_duration_ms: r.get(6),
                    status,
                    status_text: Some(if status == 0 { "success" } else { "failed" }.into()),
                    trigger_type: r.get(8),
                    timestamp: stamp(r.get(9)),
                    msg: Some(message(r, 10)),
                }
            })
            .collect();
        Ok(Json(AttemptPage {
            data,
            done,
            iterator,
            prev_iterator: None,
        }))
    }

    /// Send a test event (canned payload) to one endpoint; its filter's first type when it has one
    #[oai(
        path = "/endpoints/:endpoint_id/test",
        method = "post",
        tag = "Tag::Webhooks"
    )]
    async fn send_test(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        endpoint_id: Path<String>,
        body: OptionalJson<TestEventRequest>,
    ) -> Result<Json<TestEventResponse>, ApiError> {
        let (id, ep) = load(&state, &endpoint_id.0).await?;
        let event_type = match (&ep.filter_types, body.0) {
            (Some(f), _) if !f.is_empty() => f[0].clone(),
            (_, Some(b)) => b.event_type,
            _ => default_test_type(),
        };
        if !webhook_events::is_known(&event_type) {
            return Err(ApiError::bad_request(format!(
                "event_type: unknown event type '{event_type}'"
            )));
        }
        let now = Utc::now();
        let event_id = format!("test.{}.{}", event_type, Uuid::new_v4().simple());
        let message_id = wearhouse_projections::webhook_outbox::message_id(&event_id);
        let payload = json!({"type": event_type, "timestamp": now, "data": canned(&event_type)});
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO webhook_messages (id, event_id, event_type, user_id, channels, payload, created_at) \
             VALUES ($1, $2, $3, NULL, '{}', $4, $5)",
            &[&message_id, &event_id, &event_type, &payload, &now],
        )
        .await?;
        tx.execute(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, lane, next_at, committed_at, trigger_type) \
             VALUES ($1, $2, 'test', $3, $3, 1)",
            &[&message_id, &id, &now],
        )
        .await?;
        tx.commit().await?;
        state.webhooks.wake();
        Ok(Json(TestEventResponse {
            message: format!("Test event {event_type} sent"),
            message_id,
        }))
    }

    /// Send a message to an endpoint again (one manual attempt, out of the retry schedule)
    #[oai(
        path = "/endpoints/:endpoint_id/messages/:message_id/resend",
        method = "post",
        tag = "Tag::Webhooks"
    )]
    async fn resend(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        endpoint_id: Path<String>,
        message_id: Path<String>,
    ) -> Result<Json<TestEventResponse>, ApiError> {
        let (id, _) = load(&state, &endpoint_id.0).await?;
        let n = state
            .pool
            .get()
            .await?
            .execute(
                "UPDATE webhook_deliveries SET next_at = now(), trigger_type = 1, lease_until = NULL, \
                   attempts = CASE WHEN state = 'pending' THEN attempts ELSE $3 END, state = 'pending' \
                 WHERE endpoint_id = $1 AND message_id = $2",
                &[
                    &id,
                    &message_id.0,
                    &(crate::webhooks::delivery::SCHEDULE.len() as i32),
                ],
            )
            .await?;
        if n == 0 {
            return Err(ApiError::not_found(format!(
                "Message {} was not sent to this endpoint",
                message_id.0
            )));
        }
        state.webhooks.wake();
        Ok(Json(TestEventResponse {
            message: "Message queued for resending".into(),
            message_id: message_id.0,
        }))
    }
}

/// Absent: keep (`None`); null: clear (`Some(None)`); a value: set.
fn opt<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Value(v) => Some(Some(v)),
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Undefined => None,
    }
}

fn default_limit() -> i64 {
    50
}
