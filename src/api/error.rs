//! The one place where errors become HTTP: every error body is `{"detail": "..."}`.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use wearhouse_domain::rejection::{Rejection, RejectionKind};

#[derive(Debug, Object)]
pub struct Detail {
    pub detail: String,
}

#[derive(Debug, ApiResponse)]
pub enum ApiError {
    #[oai(status = 400)]
    BadRequest(Json<Detail>),
    #[oai(status = 401)]
    Unauthorized(Json<Detail>),
    #[oai(status = 403)]
    Forbidden(Json<Detail>),
    #[oai(status = 404)]
    NotFound(Json<Detail>),
    #[oai(status = 409)]
    Conflict(Json<Detail>),
    #[oai(status = 413)]
    PayloadTooLarge(Json<Detail>),
    #[oai(status = 429)]
    TooManyRequests(Json<Detail>),
    #[oai(status = 500)]
    Internal(Json<Detail>),
    #[oai(status = 501)]
    NotImplemented(Json<Detail>),
    #[oai(status = 502)]
    BadGateway(Json<Detail>),
}

fn d(msg: impl Into<String>) -> Json<Detail> {
    Json(Detail { detail: msg.into() })
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(d(msg))
    }
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        ApiError::Unauthorized(d(msg))
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError::NotFound(d(msg))
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        ApiError::Conflict(d(msg))
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        ApiError::Internal(d(msg))
    }
    pub fn not_implemented(msg: impl Into<String>) -> Self {
        ApiError::NotImplemented(d(msg))
    }
}

/// Logs an unexpected failure with its cause and answers a generic 500 (causes can carry
/// internals that callers must not see).
pub fn internal(e: impl std::fmt::Display) -> poem::Error {
    tracing::error!(error = %e, "internal error");
    poem::Error::from_string("Internal server error", StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error with its sources, for the log: `outer: cause: root cause`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

pub fn internal_api(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "internal error");
    ApiError::internal("Internal server error")
}

impl<E: Rejection> From<crate::store::CommandError<E>> for ApiError {
    fn from(e: crate::store::CommandError<E>) -> Self {
        match e {
            crate::store::CommandError::Rejected(e) => match e.kind() {
                RejectionKind::NotFound => ApiError::not_found(e.to_string()),
                RejectionKind::Invalid => ApiError::bad_request(e.to_string()),
            },
            crate::store::CommandError::Conflict => {
                ApiError::conflict("The resource was changed concurrently; retry the request")
            }
            crate::store::CommandError::Store(e) => internal_api(Chain(&*e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        internal_api(e)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        internal_api(wearhouse_log::pg_message(&e))
    }
}

/// Turns every error that escapes a handler (bad parameters, bad JSON, unknown routes, failed
/// credentials) into the contract's shape. Request validation errors are 400, as upstream.
pub async fn to_detail(err: poem::Error) -> Response {
    // Handlers' own `ApiError`s are already complete responses in the contract's shape.
    if err.is_from_response() {
        return err.into_response();
    }
    let mut status = err.status();
    if status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        status = StatusCode::BAD_REQUEST;
    }
    let detail = if err.is::<poem::error::NotFoundError>() {
        "Not Found".to_string()
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        // The path exists, the method does not: the contract's (FastAPI's) wording.
        "Method Not Allowed".to_string()
    } else if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(error = %err, "request failed");
        "Internal server error".to_string()
    } else {
        err.to_string()
    };
    let mut resp = poem::web::Json(serde_json::json!({ "detail": detail }))
        .with_status(status)
        .into_response();
    if err.is::<crate::auth::BadBearer>() {
        resp.headers_mut()
            .insert("WWW-Authenticate", "Bearer".parse().expect("static header"));
    }
    resp
}

impl From<crate::providers::engine::SyncError> for ApiError {
    fn from(e: crate::providers::engine::SyncError) -> Self {
        use crate::providers::engine::SyncError as S;
        match e {
            S::UnknownProvider(_) => ApiError::bad_request(e.to_string()),
            S::NoConnection(_) => ApiError::not_found(e.to_string()),
            S::Busy => ApiError::conflict(e.to_string()),
            S::RateLimited(_) => ApiError::TooManyRequests(d(e.to_string())),
            S::Store(_) => internal_api(error_chain(&e)),
            _ => ApiError::BadGateway(d(e.to_string())),
        }
    }
}

impl From<crate::providers::WebhookError> for ApiError {
    fn from(e: crate::providers::WebhookError) -> Self {
        use crate::providers::WebhookError as W;
        match e {
            W::Signature | W::Stale(_) => ApiError::unauthorized(e.to_string()),
            W::Payload(_) => ApiError::bad_request(e.to_string()),
            W::Unsupported => ApiError::not_implemented(e.to_string()),
        }
    }
}

impl From<crate::services::webhooks::WebhookFailure> for ApiError {
    fn from(e: crate::services::webhooks::WebhookFailure) -> Self {
        use crate::services::webhooks::WebhookFailure as F;
        match e {
            F::UnknownProvider(_) => ApiError::not_found(e.to_string()),
            F::Rejected(w) => w.into(),
            F::Raw(_)
            | F::Pool(_)
            | F::Db(_)
            | F::Linked(_)
            | F::Record(_)
            | F::Write(_)
            | F::Job(_)
            | F::Vanished(..) => internal_api(error_chain(&e)),
            F::Sync(s) => s.into(),
        }
    }
}

impl From<crate::services::backfills::BackfillError> for ApiError {
    fn from(e: crate::services::backfills::BackfillError) -> Self {
        use crate::services::backfills::BackfillError as B;
        match e {
            B::UnknownProvider(_) | B::NoHistory(_) | B::UnknownType(_) => {
                ApiError::bad_request(e.to_string())
            }
            B::NothingRunning | B::Busy(..) => ApiError::conflict(e.to_string()),
            B::Sync(s) => s.into(),
            B::Pool(_) | B::Db(_) | B::Run(_) | B::Job(_) => internal_api(error_chain(&e)),
        }
    }
}

/// An error and its sources, for the log.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<crate::services::imports::ImportsError> for ApiError {
    fn from(e: crate::services::imports::ImportsError) -> Self {
        // Nothing a client did: the database or the job table failed.
        internal_api(e)
    }
}

impl From<crate::services::syncs::SyncsError> for ApiError {
    fn from(e: crate::services::syncs::SyncsError) -> Self {
        use crate::services::syncs::SyncsError as S;
        match e {
            S::Sync(e) => e.into(),
            S::Jobs(_) | S::Pool(_) | S::Db(_) => internal_api(e),
        }
    }
}

impl From<crate::services::syncs::PullError> for ApiError {
    fn from(e: crate::services::syncs::PullError) -> Self {
        use crate::services::syncs::PullError as P;
        match e {
            P::UnknownProvider(_) | P::EmptyWindow => ApiError::bad_request(e.to_string()),
            P::NotPullable(_) | P::NoWorkouts(_) | P::NoData247(_) => {
                ApiError::not_implemented(e.to_string())
            }
            P::NoConnection(_) => ApiError::not_found(e.to_string()),
            P::Sync(s) => s.into(),
            P::Syncs(s) => s.into(),
            P::Pool(_) | P::Db(_) => internal_api(error_chain(&e)),
        }
    }
}

impl From<crate::services::vendor_workouts::PassthroughError> for ApiError {
    fn from(e: crate::services::vendor_workouts::PassthroughError) -> Self {
        use crate::services::vendor_workouts::PassthroughError as P;
        match e {
            P::UnknownProvider(_) | P::EmptyWindow | P::WindowTooLong(..) | P::BadId => {
                ApiError::bad_request(e.to_string())
            }
            P::Unsupported(_) | P::NoDetail(_) => ApiError::not_implemented(e.to_string()),
            P::NotFound(..) => ApiError::not_found(e.to_string()),
            P::Shape(..) => ApiError::BadGateway(d(e.to_string())),
            P::Sync(s) => s.into(),
        }
    }
}
