//! Apple Health export uploads: `…/import/apple/xml/direct` (multipart, streamed to disk),
//! `…/import/apple/xml/s3` (a signed, expiring, size-limited upload URL served by wearhouse
//! itself), the upload URL, and import status.

use std::path::PathBuf;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use poem::web::{Data, Multipart};
use poem::Request;
use poem::{FromRequest, RequestBody};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, Object, OpenApi, Tags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::text::Text;
use super::{request_id, users, ApiError, AppState};
use crate::auth::AnyCredential;
use crate::services::imports::Upload;
use crate::store::Actor;

#[derive(Tags)]
enum Tag {
    /// Apple Health export import
    Import,
}

#[derive(Object)]
struct ImportAccepted {
    status: String,
    task_id: Uuid,
    user_id: Uuid,
}

#[derive(Object)]
struct PresignedUrlRequest {
    #[oai(default, validator(max_length = 200))]
    filename: Text,
    #[oai(
        default = "default_expiration",
        validator(minimum(value = "60"), maximum(value = "3600"))
    )]
    expiration_seconds: i64,
    /// Bytes; 1 KiB up to the server's upload limit (WEARHOUSE_MAX_UPLOAD_BYTES).
    #[oai(default = "default_max_size", validator(minimum(value = "1024")))]
    max_file_size: i64,
}

#[derive(Object)]
struct PresignedUrl {
    upload_url: String,
    form_fields: std::collections::BTreeMap<String, String>,
    file_key: String,
    expires_in: i64,
    max_file_size: i64,
    bucket: String,
}

#[derive(Object)]
struct ImportStatus {
    id: Uuid,
    user_id: Uuid,
    status: String,
    filename: Option<String>,
    sha256: Option<String>,
    size: Option<i64>,
    counts: Option<serde_json::Value>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn default_expiration() -> i64 {
    300
}
fn default_max_size() -> i64 {
    50 * 1024 * 1024
}

/// What a signed upload URL allows: one upload for one user, until `exp`, up to `max` bytes.
#[derive(Serialize, Deserialize)]
struct UploadGrant {
    user: Uuid,
    import: Uuid,
    key: String,
    exp: i64,
    max: i64,
}

fn sign(secret: &[u8], payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn grant_token(secret: &[u8], grant: &UploadGrant) -> String {
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(grant).expect("grant serializes"));
    let signature = sign(secret, &body);
    format!("{body}.{signature}")
}

fn check_grant(secret: &[u8], token: &str) -> Result<UploadGrant, ApiError> {
    let denied = || {
        ApiError::Forbidden(Json(super::Detail {
            detail: "Invalid or expired upload URL".into(),
        }))
    };
    let (body, signature) = token.split_once('.').ok_or_else(denied)?;
    let expected = sign(secret, body);
    // Constant-time comparison of the signatures.
    if expected.len() != signature.len()
        || expected
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            != 0
    {
        return Err(denied());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| denied())?;
    let grant: UploadGrant = serde_json::from_slice(&bytes).map_err(|_| denied())?;
    if grant.exp < Utc::now().timestamp() {
        return Err(denied());
    }
    Ok(grant)
}

fn sanitize(filename: &str) -> String {
    let clean: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_matches('.').to_string();
    if clean.is_empty() {
        format!("{}.xml", Utc::now().format("%Y%m%d%H%M%S"))
    } else {
        clean
    }
}

/// Streams the multipart field `file` to a new file under the uploads directory, hashing it on
/// the way and refusing more than `max` bytes. Returns (path, sha256, original filename).
async fn receive_upload(
    state: &AppState,
    mut multipart: Multipart,
    max: u64,
) -> Result<(PathBuf, String, Option<String>), ApiError> {
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state.imports.uploads)
        .await
        .map_err(super::error::internal_api)?;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("Malformed multipart body: {e}")))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().map(String::from);
        let path = state
            .imports
            .uploads
            .join(format!("{}.upload", Uuid::new_v4()));
        // Readable by this user only: an export is a person's whole health history.
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(super::error::internal_api)?;
        let mut reader = field.into_async_read();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        let result: Result<(), ApiError> = async {
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(|e| ApiError::bad_request(format!("Upload interrupted: {e}")))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > max {
                    return Err(ApiError::PayloadTooLarge(Json(super::Detail {
                        detail: format!("File larger than the limit of {max} bytes"),
                    })));
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .await
                    .map_err(super::error::internal_api)?;
            }
            out.flush().await.map_err(super::error::internal_api)?;
            if total == 0 {
                return Err(ApiError::bad_request("The uploaded file is empty"));
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        return Ok((path, hex::encode(hasher.finalize()), filename));
    }
    Err(ApiError::bad_request("Missing multipart field 'file'"))
}

async fn start(
    state: &AppState,
    import_id: Uuid,
    user_id: Uuid,
    upload: (PathBuf, String, Option<String>),
    actor: Actor,
) -> Result<ImportAccepted, ApiError> {
    let (path, sha256, filename) = upload;
    let upload = Upload {
        path,
        sha256,
        filename,
    };
    state
        .imports
        .accept(import_id, user_id, upload, actor)
        .await?;
    Ok(ImportAccepted {
        status: "processing".into(),
        task_id: import_id,
        user_id,
    })
}

pub struct ImportsApi;

#[OpenApi(prefix_path = "/api/v1")]
impl ImportsApi {
    /// Upload an Apple Health `export.xml` or `export.zip` (multipart field `file`)
    ///
    /// The body is streamed to disk, never held in memory; processing runs in the background
    /// (follow it with `GET /users/{user_id}/imports/{task_id}`).
    #[oai(
        path = "/users/:user_id/import/apple/xml/direct",
        method = "post",
        tag = "Tag::Import"
    )]
    async fn direct(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        req: &Request,
        user_id: Path<Uuid>,
        UploadBody(multipart): UploadBody,
    ) -> Result<Json<ImportAccepted>, ApiError> {
        users::load(&state, user_id.0).await?;
        let upload = receive_upload(&state, multipart, state.config.max_upload_bytes).await?;
        Ok(Json(
            start(
                &state,
                Uuid::new_v4(),
                user_id.0,
                upload,
                auth.0.actor(request_id(req)),
            )
            .await?,
        ))
    }

    /// Get a signed, expiring, size-limited URL to upload an export to (S3-style POST form)
    #[oai(
        path = "/users/:user_id/import/apple/xml/s3",
        method = "post",
        tag = "Tag::Import"
    )]
    async fn presign(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        body: Json<PresignedUrlRequest>,
    ) -> Result<Json<PresignedUrl>, ApiError> {
        users::load(&state, user_id.0).await?;
        let limit = state.config.max_upload_bytes as i64;
        if body.0.max_file_size > limit {
            return Err(ApiError::bad_request(format!(
                "max_file_size: must be at most {limit}"
            )));
        }
        let key = format!(
            "{}/raw/{}",
            user_id.0,
            sanitize(if body.0.filename.0.is_empty() {
                ""
            } else {
                &body.0.filename.0
            })
        );
        let grant = UploadGrant {
            user: user_id.0,
            import: Uuid::new_v4(),
            key: key.clone(),
            exp: Utc::now().timestamp() + body.0.expiration_seconds,
            max: body.0.max_file_size,
        };
        let token = grant_token(&state.upload_secret, &grant);
        let mut form_fields = std::collections::BTreeMap::new();
        form_fields.insert("key".to_string(), key.clone());
        Ok(Json(PresignedUrl {
            upload_url: format!("{}/api/v1/uploads/{token}", state.config.public_url()),
            form_fields,
            file_key: key,
            expires_in: body.0.expiration_seconds,
            max_file_size: body.0.max_file_size,
            bucket: "wearhouse".into(),
        }))
    }

    /// Upload to a signed URL from `…/import/apple/xml/s3` (multipart field `file`); starts the import
    #[oai(path = "/uploads/:token", method = "post", tag = "Tag::Import")]
    async fn upload(
        &self,
        state: Data<&AppState>,
        req: &Request,
        token: Path<String>,
        UploadBody(multipart): UploadBody,
    ) -> Result<Json<ImportAccepted>, ApiError> {
        let grant = check_grant(&state.upload_secret, &token.0)?;
        users::load(&state, grant.user).await?;
        // One upload per URL, claimed atomically before the body is read: of two concurrent
        // uploads to one URL, exactly one proceeds.
        let claimed = state
            .pool
            .get()
            .await?
            .execute(
                "INSERT INTO used_upload_grants (import_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&grant.import],
            )
            .await?
            == 1;
        if !claimed {
            return Err(ApiError::conflict("This upload URL was already used"));
        }
        let upload = match receive_upload(&state, multipart, grant.max as u64).await {
            Ok(upload) => upload,
            Err(e) => {
                // Nothing was kept: the URL may be used again until it expires.
                state
                    .pool
                    .get()
                    .await?
                    .execute(
                        "DELETE FROM used_upload_grants WHERE import_id = $1",
                        &[&grant.import],
                    )
                    .await?;
                return Err(e);
            }
        };
        let actor = Actor {
            kind: "upload_url",
            id: grant.key.clone(),
            request_id: request_id(req),
        };
        Ok(Json(
            start(&state, grant.import, grant.user, upload, actor).await?,
        ))
    }

    /// Status, counts and error of one import
    #[oai(
        path = "/users/:user_id/imports/:import_id",
        method = "get",
        tag = "Tag::Import"
    )]
    async fn status(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        import_id: Path<Uuid>,
    ) -> Result<Json<ImportStatus>, ApiError> {
        users::load(&state, user_id.0).await?;
        let row = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT id, user_id, status, filename, sha256, size, counts, error, created_at, updated_at FROM imports WHERE id = $1 AND user_id = $2",
                &[&import_id.0, &user_id.0],
            )
            .await?;
        let Some(r) = row else {
            // Accepted but not yet recorded (its bytes are still being stored).
            if state.imports.is_pending(import_id.0).await? {
                let now = Utc::now();
                return Ok(Json(ImportStatus {
                    id: import_id.0,
                    user_id: user_id.0,
                    status: "processing".into(),
                    filename: None,
                    sha256: None,
                    size: None,
                    counts: None,
                    error: None,
                    created_at: now,
                    updated_at: now,
                }));
            }
            return Err(ApiError::not_found(format!(
                "Import with ID: {} not found.",
                import_id.0
            )));
        };
        Ok(Json(ImportStatus {
            id: r.get(0),
            user_id: r.get(1),
            status: r.get(2),
            filename: r.get(3),
            sha256: r.get(4),
            size: r.get(5),
            counts: r.get(6),
            error: r.get(7),
            created_at: r.get(8),
            updated_at: r.get(9),
        }))
    }
}

/// The upload body: `multipart/form-data` with the export in its `file` part. It is read as a
/// stream (the handlers bound its size), and declared in the OpenAPI document as what it is.
pub struct UploadBody(pub Multipart);

impl<'a> ApiExtractor<'a> for UploadBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        let file = MetaSchema {
            description: Some("The Apple Health `export.zip` or `export.xml` (not empty)"),
            min_length: Some(1),
            ..MetaSchema::new_with_format("string", "binary")
        };
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "multipart/form-data",
                schema: MetaSchemaRef::Inline(Box::new(MetaSchema {
                    properties: vec![("file", MetaSchemaRef::Inline(Box::new(file)))],
                    required: vec!["file"],
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
        Ok(UploadBody(
            <Multipart as FromRequest>::from_request(req, body).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_signed_and_expire() {
        let secret = b"secret";
        let grant = |exp| UploadGrant {
            user: Uuid::nil(),
            import: Uuid::nil(),
            key: "k".into(),
            exp,
            max: 10,
        };
        let good = grant_token(secret, &grant(Utc::now().timestamp() + 60));
        assert!(check_grant(secret, &good).is_ok());
        assert!(check_grant(b"other", &good).is_err());
        let expired = grant_token(secret, &grant(Utc::now().timestamp() - 1));
        assert!(check_grant(secret, &expired).is_err());
        let (body, sig) = good.split_once('.').unwrap();
        let tampered_body = format!("{}A.{sig}", body);
        assert!(check_grant(secret, &tampered_body).is_err());
        assert!(check_grant(secret, "garbage").is_err());
    }

    #[test]
    fn filenames_are_sanitized() {
        assert_eq!(sanitize("export.zip"), "export.zip");
        assert_eq!(sanitize("../../etc/passwd"), "_.._etc_passwd");
        assert!(sanitize("").ends_with(".xml"));
    }
}
