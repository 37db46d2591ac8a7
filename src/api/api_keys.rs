//! `/api/v1/developer/api-keys`: keys for integrators. A key is shown once, at creation or
//! rotation; only its SHA-256 and a short prefix are kept.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use uuid::Uuid;
use wearhouse_domain::api_key::{ApiKey, ApiKeyCommand};

use super::{request_id, ApiError, AppState};
use crate::auth::{self, DeveloperAuth, Principal};

#[derive(Tags)]
enum Tag {
    /// API keys for integrators
    ApiKeys,
}

#[derive(Object)]
struct ApiKeyCreate {
    #[oai(default = "default_name")]
    name: String,
}

#[derive(Object)]
struct ApiKeyUpdate {
    name: String,
}

/// A key as listed: never the key itself.
#[derive(Object)]
struct ApiKeyRead {
    /// The key's id (use it to delete, rename or rotate).
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
    /// The key itself, as upstream returns it (`sk-` + 32 hex). Store it now: it is not kept.
    id: String,
    /// The same key.
    key: String,
    /// The key's id, for later delete, rename or rotate calls.
    key_id: Uuid,
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

#[derive(ApiResponse)]
enum NoContent {
    #[oai(status = 204)]
    Done,
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
async fn resolve(state: &AppState, key_id: &str, caller: Uuid) -> Result<Uuid, ApiError> {
    let not_found = || ApiError::not_found(format!("API key with ID: {key_id} not found."));
    let id = key_id.parse::<Uuid>().map_err(|_| not_found())?;
    let row = state
        .pool
        .get()
        .await?
        .query_opt("SELECT created_by FROM api_keys WHERE id = $1", &[&id])
        .await?
        .ok_or_else(not_found)?;
    match row.get::<_, Option<Uuid>>(0) {
        Some(creator) if creator != caller => Err(ApiError::Forbidden(Json(super::Detail {
            detail: "This API key was created by another developer".into(),
        }))),
        _ => Ok(id),
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
        id: key.clone(),
        key_prefix: auth::key_prefix(&key),
        key,
        key_id,
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
            .query("SELECT id, name, key_prefix, created_by, created_at FROM api_keys ORDER BY created_at, id", &[])
            .await?;
        Ok(Json(
            rows.iter()
                .map(|r| ApiKeyRead {
                    id: r.get(0),
                    name: r.get(1),
                    key_prefix: r.get(2),
                    created_by: r.get(3),
                    created_at: r.get(4),
                })
                .collect(),
        ))
    }

    /// Create an API key (shown once)
    #[oai(path = "/api-keys", method = "post", tag = "Tag::ApiKeys")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        body: Json<ApiKeyCreate>,
    ) -> Result<CreatedKey, ApiError> {
        let name = body.0.name.trim().to_string();
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

    /// Rename an API key
    #[oai(path = "/api-keys/:key_id", method = "patch", tag = "Tag::ApiKeys")]
    async fn rename(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        key_id: Path<String>,
        body: Json<ApiKeyUpdate>,
    ) -> Result<Json<ApiKeyRead>, ApiError> {
        let id = resolve(&state, &key_id.0, auth.0).await?;
        let command = ApiKeyCommand::Rename {
            name: body.0.name.trim().to_string(),
            at: Utc::now(),
        };
        state
            .commands
            .execute::<ApiKey>(
                &id.to_string(),
                command,
                &auth.principal().actor(request_id(req)),
                None,
                Some("api_keys"),
            )
            .await?;
        let r = state
            .pool
            .get()
            .await?
            .query_one(
                "SELECT id, name, key_prefix, created_by, created_at FROM api_keys WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(Json(ApiKeyRead {
            id: r.get(0),
            name: r.get(1),
            key_prefix: r.get(2),
            created_by: r.get(3),
            created_at: r.get(4),
        }))
    }

    /// Delete an API key (it stops working at once)
    #[oai(path = "/api-keys/:key_id", method = "delete", tag = "Tag::ApiKeys")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        key_id: Path<String>,
    ) -> Result<NoContent, ApiError> {
        let id = resolve(&state, &key_id.0, auth.0).await?;
        revoke(
            &state,
            id,
            "deleted",
            &auth.principal().actor(request_id(req)),
        )
        .await?;
        Ok(NoContent::Done)
    }

    /// Replace an API key with a new one (the old one stops working)
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
    ) -> Result<Json<ApiKeyCreated>, ApiError> {
        let id = resolve(&state, &key_id.0, auth.0).await?;
        let name: String = state
            .pool
            .get()
            .await?
            .query_one("SELECT name FROM api_keys WHERE id = $1", &[&id])
            .await?
            .get(0);
        let actor = Principal::Developer(auth.0).actor(request_id(req));
        revoke(&state, id, "rotated", &actor).await?;
        let (key, new_id, at) = create_key(&state, name.clone(), Some(auth.0), &actor).await?;
        Ok(Json(created(key, new_id, name, Some(auth.0), at)))
    }
}
