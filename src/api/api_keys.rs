//! `/api/v1/developer/api-keys`: keys for integrators. A key is shown once, at creation or
//! rotation; only its SHA-256 and a short prefix are kept.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem::Request;
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi, Tags,
};
use uuid::Uuid;
use wearhouse_domain::api_key::{ApiKey, ApiKeyCommand};

use super::text::Text;
use super::{request_id, ApiError, AppState};
use crate::auth::{self, DeveloperAuth, Principal};

#[derive(Tags)]
enum Tag {
    /// API keys for integrators
    ApiKeys,
}

#[derive(Object, Default)]
struct ApiKeyCreate {
    /// Defaults to "Default", as upstream.
    #[oai(default = "default_text_name")]
    name: Text,
}

#[derive(Object)]
struct ApiKeyUpdate {
    /// Absent or null keeps the name, as upstream.
    name: Option<Text>,
}

/// A key as listed: never the key itself.
#[derive(Object)]
struct ApiKeyRead {
    /// The key's id (use it to delete, rename or rotate). Upstream uses the key itself as the
    /// id; keys are kept here only as a hash, so the id is a UUID.
    id: Uuid,
    name: String,
    /// The first characters of the key, to tell keys apart.
    key_prefix: String,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
}

/// A key just created: the only time the key is shown.
#[derive(Object)]
struct ApiKeyCreated {
    /// The key's id, for later delete, rename or rotate calls.
    id: Uuid,
    /// The key itself (`sk-` + 32 hex), the `X-Open-Wearables-API-Key` value. Store it now:
    /// only its hash is kept.
    key: String,
    name: String,
    key_prefix: String,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
}

#[derive(ApiResponse)]
enum CreatedKey {
    #[oai(status = 201)]
    Ok(Json<ApiKeyCreated>),
}

/// A JSON body that may be left out entirely (no body and no Content-Type), as upstream's
/// `POST /developer/api-keys` allows; a body that is there must be valid JSON of `T`.
pub(crate) struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON + Send> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: T::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a poem::Request,
        body: &mut poem::RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        read_optional_json(request, body).await.map(OptionalJson)
    }
}

/// Like [`OptionalJson`], and the body may also be JSON `null` (the contract's
/// `anyOf [T, null]`): both read as `None`, and the document declares the body nullable.
pub(crate) struct NullableJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON + Send> ApiExtractor<'a> for NullableJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: MetaSchemaRef::Inline(Box::new(MetaSchema {
                    all_of: vec![T::schema_ref()],
                    nullable: true,
                    ..MetaSchema::ANY
                })),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a poem::Request,
        body: &mut poem::RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let value: Option<Option<T>> = read_optional_json(request, body).await?;
        Ok(NullableJson(value.flatten()))
    }
}

/// The body as `T`; `None` when there is none (empty or only whitespace).
async fn read_optional_json<T: ParseFromJSON>(
    request: &poem::Request,
    body: &mut poem::RequestBody,
) -> poem::Result<Option<T>> {
    let data = body.take()?.into_vec().await?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Some(ct) = request.content_type() {
        if !ct.starts_with("application/json") {
            return Err(ContentTypeError::NotSupported {
                content_type: ct.to_string(),
            }
            .into());
        }
    }
    let value: serde_json::Value =
        serde_json::from_slice(&data).map_err(|e| ParseRequestPayloadError {
            reason: e.to_string(),
        })?;
    T::parse_from_json(Some(value)).map(Some).map_err(|e| {
        ParseRequestPayloadError {
            reason: e.into_message(),
        }
        .into()
    })
}

fn default_text_name() -> Text {
    Text(default_name())
}

fn default_name() -> String {
    "Default".into()
}

/// Creates a key; used by the API and by `wearhouse` at start for the demo key.
pub async fn create_key(
    state: &AppState,
    name: String,
    created_by: Option<Uuid>,
    actor: &crate::store::Actor,
) -> Result<(String, Uuid, DateTime<Utc>), ApiError> {
    let key = auth::new_api_key();
    let id = Uuid::new_v4();
    let at = Utc::now();
    let command = ApiKeyCommand::Create {
        id,
        name,
        key_hash: auth::sha256_hex(&key),
        key_prefix: auth::key_prefix(&key),
        created_by,
        at,
    };
    state
        .commands
        .execute::<ApiKey>(&id.to_string(), command, actor, None, Some("api_keys"))
        .await?;
    Ok((key, id, at))
}

/// Resolves `{key_id}` (the key's id, never the key itself: a secret has no place in a URL,
/// which ends up in logs) to a key `caller` may manage: one it created, or one created by the
/// system (bootstrap and demo keys have no creator).
async fn resolve(state: &AppState, key_id: &str, caller: Uuid) -> Result<ApiKeyRead, ApiError> {
    let not_found = || ApiError::not_found(format!("API key with ID: {key_id} not found."));
    let id: Uuid = key_id.parse().map_err(|_| not_found())?;
    let row = state
        .pool
        .get()
        .await?
        .query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"),
            &[&id],
        )
        .await?;
    let key = row.as_ref().map(read).ok_or_else(not_found)?;
    match key.created_by {
        Some(creator) if creator != caller => Err(ApiError::Forbidden(Json(super::Detail {
            detail: "This API key was created by another developer".into(),
        }))),
        _ => Ok(key),
    }
}

const KEY_COLUMNS: &str = "id, name, key_prefix, created_by, created_at";

fn read(r: &tokio_postgres::Row) -> ApiKeyRead {
    ApiKeyRead {
        id: r.get(0),
        name: r.get(1),
        key_prefix: r.get(2),
        created_by: r.get(3),
        created_at: r.get(4),
    }
}

async fn revoke(
    state: &AppState,
    id: Uuid,
    reason: &str,
    actor: &crate::store::Actor,
) -> Result<(), ApiError> {
    let command = ApiKeyCommand::Revoke {
        reason: reason.into(),
        at: Utc::now(),
    };
    state
        .commands
        .execute::<ApiKey>(&id.to_string(), command, actor, None, Some("api_keys"))
        .await?;
    Ok(())
}

fn created(
    key: String,
    key_id: Uuid,
    name: String,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
) -> ApiKeyCreated {
    ApiKeyCreated {
        id: key_id,
        key_prefix: auth::key_prefix(&key),
        key,
        name,
        created_by,
        created_at,
    }
}

pub struct ApiKeysApi;

#[OpenApi(prefix_path = "/api/v1/developer")]
impl ApiKeysApi {
    /// List API keys
    #[oai(path = "/api-keys", method = "get", tag = "Tag::ApiKeys")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
    ) -> Result<Json<Vec<ApiKeyRead>>, ApiError> {
        let rows = state
            .pool
            .get()
            .await?
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                &[],
            )
            .await?;
        Ok(Json(rows.iter().map(read).collect()))
    }

    /// Create an API key (shown once; the body is optional, the name defaults to "Default")
    #[oai(path = "/api-keys", method = "post", tag = "Tag::ApiKeys")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        body: OptionalJson<ApiKeyCreate>,
    ) -> Result<CreatedKey, ApiError> {
        let name = body.0.unwrap_or_else(|| ApiKeyCreate {
            name: default_text_name(),
        });
        let name = name.name.0.trim().to_string();
        let actor = auth.principal().actor(request_id(req));
        let (key, id, at) = create_key(&state, name.clone(), Some(auth.0), &actor).await?;
        Ok(CreatedKey::Ok(Json(created(
            key,
            id,
            name,
            Some(auth.0),
            at,
        ))))
    }

    /// Rename an API key (an absent or null name keeps it)
    #[oai(path = "/api-keys/:key_id", method = "patch", tag = "Tag::ApiKeys")]
    async fn rename(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        key_id: Path<String>,
        body: Json<ApiKeyUpdate>,
    ) -> Result<Json<ApiKeyRead>, ApiError> {
        let key = resolve(&state, &key_id.0, auth.0).await?;
        let Some(name) = body.0.name else {
            return Ok(Json(key));
        };
        let command = ApiKeyCommand::Rename {
            name: name.0.trim().to_string(),
            at: Utc::now(),
        };
        state
            .commands
            .execute::<ApiKey>(
                &key.id.to_string(),
                command,
                &auth.principal().actor(request_id(req)),
                None,
                Some("api_keys"),
            )
            .await?;
        Ok(Json(resolve(&state, &key_id.0, auth.0).await?))
    }

    /// Delete an API key (it stops working at once); answers the deleted key, as upstream
    #[oai(path = "/api-keys/:key_id", method = "delete", tag = "Tag::ApiKeys")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        key_id: Path<String>,
    ) -> Result<Json<ApiKeyRead>, ApiError> {
        let key = resolve(&state, &key_id.0, auth.0).await?;
        revoke(
            &state,
            key.id,
            "deleted",
            &auth.principal().actor(request_id(req)),
        )
        .await?;
        Ok(Json(key))
    }

    /// Replace an API key with a new one named "Default" (the old one stops working), as upstream
    #[oai(
        path = "/api-keys/:key_id/rotate",
        method = "post",
        tag = "Tag::ApiKeys"
    )]
    async fn rotate(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        key_id: Path<String>,
    ) -> Result<CreatedKey, ApiError> {
        let old = resolve(&state, &key_id.0, auth.0).await?;
        let actor = Principal::Developer(auth.0).actor(request_id(req));
        revoke(&state, old.id, "rotated", &actor).await?;
        let name = default_name();
        let (key, new_id, at) = create_key(&state, name.clone(), Some(auth.0), &actor).await?;
        Ok(CreatedKey::Ok(Json(created(
            key,
            new_id,
            name,
            Some(auth.0),
            at,
        ))))
    }
}
