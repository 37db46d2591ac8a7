//! The HTTP API: the Open Wearables contract under `/api/v1`, the OpenAPI document at
//! `/openapi.json` and its interactive docs at `/docs`.

mod api_keys;
mod auth;
mod daily;
mod data_sources;
mod document;
pub mod envelope;
mod error;
mod events;
mod health_scores;
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
use poem::middleware::{RequestId, Tracing};
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
    let max_body = state.config.max_json_bytes;
    let http_metrics = state.metrics.clone();
    let mut route = Route::new()
        .nest("/", service)
        .at("/openapi.json", poem::get(spec))
        .nest("/docs", docs);
    if state.config.metrics {
        route = route.at("/metrics", poem::get(metrics::endpoint));
    }
    route
        .around(move |ep, req| allow_header(ep, req, allow.clone()))
        .around(move |ep, req| limit_body(ep, req, max_body))
        .around(move |ep, req| metrics::track(ep, req, http_metrics.clone()))
        .with(Tracing)
        .with(RequestId::default())
        .data(state)
        .catch_all_error(error::to_detail)
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
