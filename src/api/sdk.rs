//! The mobile SDKs' routes (`/api/v1/sdk/users/{user_id}/…`): sync batches and SDK logs. The
//! body is read as bytes (bounded by `WEARHOUSE_MAX_JSON_BYTES` while it is read, see
//! `super::limit_body`) so exactly what arrived is stored before anything maps it.

use poem::web::Data;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi, Tags,
};
use uuid::Uuid;

use super::{request_id, users, ApiError, AppState};
use crate::auth::SdkAuth;
use crate::services::sdk::SdkError;

#[derive(Tags)]
enum Tag {
    /// Mobile SDK (HealthKit, Health Connect, Samsung Health)
    #[oai(rename = "External: Mobile SDK")]
    MobileSdk,
}

/// A JSON body kept as the bytes that arrived (whatever Content-Type the SDK sent: the bytes
/// are checked as JSON by the service), declared as a JSON object in the document.
pub struct RawJson(pub Vec<u8>);

impl<'a> ApiExtractor<'a> for RawJson {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: MetaSchemaRef::Inline(Box::new(MetaSchema {
                    additional_properties: Some(Box::new(MetaSchemaRef::Inline(Box::new(
                        MetaSchema::ANY,
                    )))),
                    ..MetaSchema::new("object")
                })),
            }],
            required: true,
        })
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        Ok(RawJson(
            <Vec<u8> as FromRequest>::from_request(req, body).await?,
        ))
    }
}

/// The contract's `UploadDataResponse`.
#[derive(Object)]
struct UploadDataResponse {
    status_code: i32,
    response: String,
    user_id: Option<String>,
    dropped_count: i64,
    records_saved: i64,
    workouts_saved: i64,
    sleep_saved: i64,
}

impl UploadDataResponse {
    fn accepted(user: Uuid, response: &str) -> Self {
        UploadDataResponse {
            status_code: 202,
            response: response.into(),
            user_id: Some(user.to_string()),
            dropped_count: 0,
            records_saved: 0,
            workouts_saved: 0,
            sleep_saved: 0,
        }
    }
}

#[derive(ApiResponse)]
enum Accepted {
    /// Stored; processed in the background as a sync run (source `sdk`).
    #[oai(status = 202)]
    Accepted(Json<UploadDataResponse>),
}

impl From<SdkError> for ApiError {
    fn from(e: SdkError) -> Self {
        match e {
            SdkError::Envelope(e) => ApiError::bad_request(e.to_string()),
            SdkError::Logs(msg) => ApiError::bad_request(msg),
            other => super::error::internal_api(super::error::Chain(&other)),
        }
    }
}

pub struct SdkApi;

#[OpenApi(prefix_path = "/api/v1")]
impl SdkApi {
    /// Upload a mobile SDK sync batch (HealthKit, Health Connect, Samsung Health)
    ///
    /// The body (`provider`, `sdkVersion`, `syncTimestamp`, `data.records|sleep|workouts`) is
    /// stored as received and answered 202; its records are mapped in the background as a
    /// sync run with source `sdk`. Invalid records are dropped and counted in the run's
    /// result; a body that is not such an object is refused with 400 and nothing is kept.
    #[oai(
        path = "/sdk/users/:user_id/sync",
        method = "post",
        tag = "Tag::MobileSdk"
    )]
    async fn sync(
        &self,
        state: Data<&AppState>,
        auth: SdkAuth,
        req: &Request,
        user_id: Path<Uuid>,
        body: RawJson,
    ) -> Result<Accepted, ApiError> {
        users::load(&state, user_id.0).await?;
        state
            .sdk
            .accept(user_id.0, body.0, &auth.0.actor(request_id(req)))
            .await?;
        Ok(Accepted::Accepted(Json(UploadDataResponse::accepted(
            user_id.0,
            "Import task queued successfully",
        ))))
    }

    /// Upload mobile SDK diagnostic logs
    ///
    /// `SDKLogRequest`: `sdkVersion`, optional `provider` and 1–100 `events`
    /// (`historical_data_sync_start`, `historical_data_type_sync_end`, `device_state`). Stored
    /// as received and answered 202.
    #[oai(
        path = "/sdk/users/:user_id/logs",
        method = "post",
        tag = "Tag::MobileSdk"
    )]
    async fn logs(
        &self,
        state: Data<&AppState>,
        auth: SdkAuth,
        req: &Request,
        user_id: Path<Uuid>,
        body: RawJson,
    ) -> Result<Accepted, ApiError> {
        users::load(&state, user_id.0).await?;
        state
            .sdk
            .accept_logs(user_id.0, &body.0, &auth.0.actor(request_id(req)))
            .await?;
        Ok(Accepted::Accepted(Json(UploadDataResponse::accepted(
            user_id.0,
            "Logs stored successfully",
        ))))
    }
}
