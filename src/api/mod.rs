//! The HTTP API: the Open Wearables contract under `/api/v1`, the OpenAPI document at
//! `/openapi.json` and its interactive docs at `/docs`.

mod api_keys;
mod auth;
mod daily;
mod data_sources;
pub mod envelope;
mod error;
mod events;
mod health_scores;
pub mod icons;
mod imports;
mod meta;
pub mod metrics;
mod oauth;
pub mod params;
mod priorities;
mod summaries;
mod sync;
mod timeseries;
mod users;

use std::sync::Arc;

use deadpool_postgres::Pool;
use poem::middleware::{Cors, RequestId, Tracing};
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

pub use api_keys::create_key;
pub use error::{internal, ApiError, Detail};

use crate::auth::Jwt;
use crate::config::ServeConfig;
use crate::ingest::queue::ImportQueue;
use crate::store::Commands;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub commands: Commands,
    pub jwt: Jwt,
    pub config: Arc<ServeConfig>,
    pub imports: ImportQueue,
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
}

impl AppState {
    pub async fn db(&self) -> poem::Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(internal)
    }
}

pub fn app(state: AppState) -> impl Endpoint {
    let public_url = state.config.public_url();
    let service = OpenApiService::new(
        (
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
        ),
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
    let max_body = state.config.max_json_bytes;
    let http_metrics = state.metrics.clone();
    let mut route = Route::new()
        .nest("/", service)
        .at("/openapi.json", spec)
        .nest("/docs", docs);
    if state.config.metrics {
        route = route.at("/metrics", poem::get(metrics::endpoint));
    }
    route = route.at(icons::ROUTE, poem::get(icons::serve));
    let cors = cors(&state.config.cors_origins);
    let listed = listed_origins(&state.config.cors_origins);
    route
        .around(move |ep, req| limit_body(ep, req, max_body))
        .around(move |ep, req| metrics::track(ep, req, http_metrics.clone()))
        .with(Tracing)
        .with(RequestId::default())
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .around(move |ep, req| unlisted_origin(ep, req, listed.clone()))
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

/// Buffers JSON and form bodies up to `max` bytes and refuses larger ones with 413 before
/// anything parses them (a chunked body has no Content-Length to check up front). Uploads
/// (multipart, octet-stream) stream through untouched: their handlers bound them.
async fn limit_body<E: Endpoint>(
    ep: Arc<E>,
    mut req: poem::Request,
    max: usize,
) -> poem::Result<poem::Response> {
    use poem::http::StatusCode;
    let streamed = req.content_type().is_some_and(|ct| {
        ct.starts_with("multipart/")
            || ct.starts_with("application/octet-stream")
            || ct.starts_with("application/zip")
    });
    if !streamed {
        let too_large = || {
            poem::Error::from_string(
                format!("Request body larger than {max} bytes"),
                StatusCode::PAYLOAD_TOO_LARGE,
            )
        };
        let declared = req
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let body = req
            .take_body()
            .into_bytes_limit(max)
            .await
            .map_err(|_| too_large())?;
        req.set_body(body);
    }
    ep.call(req).await.map(poem::IntoResponse::into_response)
}

/// The request id the RequestId middleware assigned, for event metadata.
pub fn request_id(req: &poem::Request) -> Option<String> {
    req.data::<poem::middleware::ReqId>().map(|r| r.to_string())
}
