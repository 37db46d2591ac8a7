//! The HTTP API: the Open Wearables contract under `/api/v1`, the OpenAPI document at
//! `/openapi.json` and its interactive docs at `/docs`.

mod api_keys;
mod archival;
mod audit;
mod auth;
mod daily;
mod data_sources;
mod document;
pub mod envelope;
mod error;
mod events;
mod health_scores;
pub mod icons;
mod imports;
mod meta;
pub mod metrics;
mod oauth;
mod operators;
pub mod params;
mod priorities;
mod provider_webhooks;
mod sdk;
mod sdk_auth;
mod seed;
mod summaries;
mod sync;
mod team;
mod text;
mod timeseries;
mod users;
mod vendor_workouts;
mod webhooks;

use std::sync::Arc;

use deadpool_postgres::Pool;
use poem::middleware::{Cors, RequestId};
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

pub use api_keys::create_key;
pub use error::{internal, ApiError, Detail};

use crate::auth::Jwt;
use crate::config::ServeConfig;
use crate::store::Commands;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub commands: Commands,
    pub jwt: Jwt,
    pub config: Arc<ServeConfig>,
    pub imports: crate::services::imports::Imports,
    /// Enqueues durable background work (src/jobs).
    pub jobs: crate::jobs::Jobs,
    /// Syncs run as jobs (API, first pull, scheduler).
    pub syncs: crate::services::syncs::Syncs,
    /// Mobile SDK uploads (stored raw, mapped as jobs).
    pub sdk: crate::services::sdk::Sdk,
    /// Turns true when shutdown starts: open streams end, so draining does not wait on them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// HMAC key of signed upload URLs.
    pub upload_secret: Vec<u8>,
    /// Whether the database has TimescaleDB (picks `time_bucket` over `date_bin`).
    pub timescaledb: bool,
    /// HTTP request counts and latencies for `/metrics`.
    pub metrics: Arc<metrics::HttpMetrics>,
    /// Whether this process runs the Kafka relay (so `/metrics` reports its lag).
    pub relay: bool,
    /// The broker, when configured: `/metrics` reports the consumer group's lag from it.
    pub kafka_brokers: Option<String>,
    /// Cloud providers: registry, token sealing and the sync engine.
    pub providers: Arc<crate::providers::engine::Engine>,
    /// Failed sign-ins per account and address, and the bound on concurrent password hashes.
    pub login_throttle: Arc<crate::auth::throttle::LoginThrottle>,
    /// Failed invitation-code redemptions per client address (the code guessed is the
    /// "account"), throttled as sign-ins are.
    pub redeem_throttle: Arc<crate::auth::throttle::LoginThrottle>,
    /// HMAC key of stored invitation codes (derived from the JWT key, never in the database).
    pub code_key: Vec<u8>,
    /// Open sync-status streams per credential.
    pub streams: Arc<crate::auth::streams::StreamSlots>,
    /// Outgoing webhook delivery (woken by test events and resends).
    pub webhooks: crate::webhooks::delivery::Engine,
    /// Archival of old samples (the data lifecycle settings).
    pub archival: crate::services::archival::Archival,
}

impl crate::auth::CredentialStore for AppState {
    fn pool(&self) -> &Pool {
        &self.pool
    }
    fn jwt(&self) -> &Jwt {
        &self.jwt
    }
}

impl AppState {
    pub async fn db(&self) -> poem::Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(internal)
    }
}

pub fn app(state: AppState) -> impl Endpoint {
    let public_url = state.config.public_url();
    let apis = document::Documented((
        meta::MetaApi,
        auth::AuthApi,
        users::UsersApi,
        api_keys::ApiKeysApi,
        imports::ImportsApi,
        timeseries::TimeseriesApi,
        data_sources::DataSourcesApi,
        summaries::SummariesApi,
        events::EventsApi,
        daily::DailyApi,
        daily::BodyApi,
        health_scores::HealthScoresApi,
        priorities::PrioritiesApi,
        oauth::OAuthApi,
        sync::SyncApi,
        // poem-openapi implements OpenApi for tuples of up to 16: later groups nest.
        (
            audit::AuditApi,
            team::TeamApi,
            webhooks::WebhooksApi,
            sdk_auth::ApplicationsApi,
            sdk_auth::SdkTokensApi,
            sdk::SdkApi,
            operators::OperatorsApi,
            provider_webhooks::ProviderWebhooksApi,
            archival::ArchivalApi,
            seed::SeedApi,
            vendor_workouts::VendorWorkoutsApi,
        ),
    ));
    let allow = Arc::new(document::AllowTable::of(
        &apis,
        &["/openapi.json", "/metrics"],
    ));
    let service = OpenApiService::new(
        apis,
        "wearhouse",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Self-hosted health-data platform speaking the Open Wearables API. Authenticate with the \
         `X-Open-Wearables-API-Key` header or a developer `Authorization: Bearer <jwt>` from \
         `POST /api/v1/auth/login`.",
    )
    .server(public_url);
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let caps = BodyCaps {
        json: state.config.max_json_bytes,
        webhook: state.config.max_webhook_bytes,
        // Multipart framing around the file is small; the handlers bound the file itself.
        upload: state.config.max_upload_bytes.saturating_add(1 << 20),
    };
    let http_metrics = state.metrics.clone();
    let mut route = Route::new()
        .nest("/", service)
        .at("/openapi.json", poem::get(spec))
        .nest("/docs", docs);
    // On the API address only behind its token; WEARHOUSE_METRICS_BIND serves it apart.
    if state.config.metrics && state.config.metrics_token().is_some() {
        route = route.at("/metrics", poem::get(metrics::endpoint));
    }
    route = route.at(icons::ROUTE, poem::get(icons::serve));
    let cors = cors(&state.config.cors_origins);
    let listed = listed_origins(&state.config.cors_origins);
    route
        .around(move |ep, req| allow_header(ep, req, allow.clone()))
        .around(move |ep, req| limit_body(ep, req, caps))
        .around(move |ep, req| metrics::track(ep, req, http_metrics.clone()))
        .around(log_request)
        .around(with_origin)
        .with(RequestId::default())
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .around(move |ep, req| unlisted_origin(ep, req, listed.clone()))
        .data(Arc::new(state.clone()) as Arc<dyn crate::auth::CredentialStore>)
        .data(state)
        .catch_all_error(error::to_detail)
}

/// CORS from `WEARHOUSE_CORS_ORIGINS`, as upstream's `CORS_ORIGINS` / `CORS_ALLOW_ALL`: any
/// method and header, credentials allowed; `*` allows every origin. `None` when no origin is
/// configured: then no CORS headers are sent at all (poem's `Cors` with no origin would
/// allow every one).
fn cors(origins: &[String]) -> Option<Cors> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let cors = Cors::new().allow_credentials(true);
    if origins.contains(&"*") {
        return Some(cors);
    }
    Some(cors.allow_origins(origins))
}

/// The configured origins when they are a list (not empty, not `*`).
fn listed_origins(origins: &[String]) -> Arc<Vec<String>> {
    let list: Vec<String> = origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    Arc::new(if list.iter().any(|o| o == "*") {
        Vec::new()
    } else {
        list
    })
}

/// A request from an origin not listed is served without CORS headers (the browser then
/// withholds the answer), as upstream; poem's `Cors` would refuse it with 403. Preflights
/// from such origins are still refused.
async fn unlisted_origin<E: Endpoint>(
    ep: Arc<E>,
    mut req: poem::Request,
    listed: Arc<Vec<String>>,
) -> poem::Result<poem::Response> {
    if !listed.is_empty() && req.method() != poem::http::Method::OPTIONS {
        let unlisted = req
            .header("origin")
            .is_some_and(|o| !listed.iter().any(|l| l == o));
        if unlisted {
            req.headers_mut().remove("origin");
        }
    }
    ep.call(req).await.map(poem::IntoResponse::into_response)
}

/// The app serving only `GET /metrics`, for WEARHOUSE_METRICS_BIND.
pub fn metrics_app(state: AppState) -> impl Endpoint {
    Route::new()
        .at("/metrics", poem::get(metrics::endpoint))
        .data(state)
        .catch_all_error(error::to_detail)
}

/// The largest body each kind of route accepts.
#[derive(Clone, Copy)]
struct BodyCaps {
    json: usize,
    webhook: usize,
    upload: u64,
}

/// Whether `path` receives export uploads (streamed to disk by their handlers).
fn is_upload_route(path: &str) -> bool {
    path.starts_with("/api/v1/uploads/")
        || (path.starts_with("/api/v1/users/") && path.ends_with("/import/apple/xml/direct"))
}

fn is_webhook_route(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return false;
    };
    // `/providers/{p}/webhooks…` and the providers' own paths (`/garmin/webhooks/push`, …),
    // not the outgoing-webhook management under `/webhooks/`.
    (rest.starts_with("providers/") && rest.contains("/webhooks"))
        || matches!(rest.split('/').nth(1), Some("webhooks" | "webhook"))
}

fn too_large(max: u64) -> poem::Error {
    poem::Error::from_string(
        format!("Request body larger than {max} bytes"),
        poem::http::StatusCode::PAYLOAD_TOO_LARGE,
    )
}

/// A method the path does not have is answered 405 with the `Allow` header RFC 9110 requires.
async fn allow_header<E: Endpoint>(
    ep: Arc<E>,
    req: poem::Request,
    allow: Arc<document::AllowTable>,
) -> poem::Result<poem::Response> {
    use poem::http::{header, HeaderValue, StatusCode};
    let path = req.uri().path().to_string();
    match ep.call(req).await {
        Err(e) if e.status() == StatusCode::METHOD_NOT_ALLOWED => {
            let mut resp = error::to_detail(e).await;
            if let Some(value) = allow
                .header(&path)
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                resp.headers_mut().insert(header::ALLOW, value);
            }
            Ok(resp)
        }
        other => other.map(poem::IntoResponse::into_response),
    }
}

/// Bounds every request body while it is read, whatever its Content-Type claims, so no body
/// can exhaust memory before authentication: uploads stream through a counter (their handlers
/// write them to disk); every other route's body is buffered up to its cap (webhooks: a small
/// one, before their signature is checked) and refused with 413 beyond it.
async fn limit_body<E: Endpoint>(
    ep: Arc<E>,
    mut req: poem::Request,
    caps: BodyCaps,
) -> poem::Result<poem::Response> {
    let path = req.uri().path().to_string();
    // No text column can hold a NUL character, and no id or name contains one: a path or query
    // carrying one (`%00`) is refused before any handler passes it to Postgres.
    let raw = req.uri().path_and_query().map_or("", |p| p.as_str());
    if raw
        .as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"%00"))
    {
        return Err(poem::Error::from_string(
            "NUL characters (%00) are not accepted",
            poem::http::StatusCode::BAD_REQUEST,
        ));
    }
    let declared = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if is_upload_route(&path) {
        let max = caps.upload;
        if declared.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        use futures::StreamExt;
        let mut seen = 0u64;
        let limited = req.take_body().into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > max {
                return Err(std::io::Error::other(format!(
                    "request body larger than {max} bytes"
                )));
            }
            Ok(chunk)
        });
        req.set_body(poem::Body::from_bytes_stream(limited));
    } else {
        let max = if is_webhook_route(&path) {
            caps.webhook
        } else {
            caps.json
        };
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large(max as u64));
        }
        let body = req
            .take_body()
            .into_bytes_limit(max)
            .await
            .map_err(|_| too_large(max as u64))?;
        // No text column can hold a NUL character: refused here rather than failing in
        // the database.
        let json = req
            .content_type()
            .is_some_and(|ct| ct.starts_with("application/json"));
        if json && body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
            return Err(poem::Error::from_string(
                "NUL characters (\\u0000) are not accepted",
                poem::http::StatusCode::BAD_REQUEST,
            ));
        }
        req.set_body(body);
    }
    ep.call(req).await.map(poem::IntoResponse::into_response)
}

/// The request path as it may be logged: never the query string (OAuth `code`/`state`,
/// tokens), and with credential-bearing segments replaced (signed upload URLs, API keys).
pub fn loggable_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut previous = "";
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let secret = previous == "uploads"
            || segment.starts_with("sk-")
            || segment.starts_with("rt-")
            || (previous == "webhooks" && !segment.is_empty());
        out.push_str(if secret { "[redacted]" } else { segment });
        previous = segment;
    }
    out
}

/// One log line per request: method, redacted path, status, duration, request id and peer.
async fn log_request<E: Endpoint>(ep: Arc<E>, req: poem::Request) -> poem::Result<poem::Response> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "request",
        method = %metrics::method_label(req.method().as_str()),
        path = %loggable_path(req.uri().path()),
        request_id = %request_id(&req).unwrap_or_default(),
        remote_addr = %req.remote_addr(),
    );
    async move {
        let started = std::time::Instant::now();
        let result = ep.call(req).await.map(poem::IntoResponse::into_response);
        let duration = started.elapsed();
        match &result {
            Ok(resp) => tracing::info!(status = %resp.status(), ?duration, "response"),
            Err(err) => tracing::info!(status = %err.status(), ?duration, "error"),
        }
        result
    }
    .instrument(span)
    .await
}

/// The longest user agent kept in an entry's metadata (characters).
const MAX_USER_AGENT: usize = 256;

/// Runs the request with its client address and user agent as the origin of whatever it
/// appends to the log (see `wearhouse_log::origin`). The address is the TCP peer's: a
/// forwarding header is not trusted.
async fn with_origin<E: Endpoint>(ep: Arc<E>, req: poem::Request) -> poem::Result<poem::Response> {
    let origin = wearhouse_log::origin::Origin {
        client_ip: Some(auth::client_address(&req)),
        user_agent: req
            .header("user-agent")
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
    };
    wearhouse_log::origin::scope(origin, async move {
        ep.call(req).await.map(poem::IntoResponse::into_response)
    })
    .await
}

/// The request id the RequestId middleware assigned, for event metadata.
pub fn request_id(req: &poem::Request) -> Option<String> {
    req.data::<poem::middleware::ReqId>().map(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_paths_carry_no_credentials() {
        assert_eq!(
            loggable_path("/api/v1/uploads/eyJ1c2VyIjoi.abcdef"),
            "/api/v1/uploads/[redacted]"
        );
        assert_eq!(
            loggable_path("/api/v1/developer/api-keys/sk-0123456789abcdef"),
            "/api/v1/developer/api-keys/[redacted]"
        );
        assert_eq!(
            loggable_path("/api/v1/providers/garmin/webhooks/push-token"),
            "/api/v1/providers/garmin/webhooks/[redacted]"
        );
        assert_eq!(
            loggable_path("/api/v1/users/5d3c/timeseries"),
            "/api/v1/users/5d3c/timeseries"
        );
    }
}
