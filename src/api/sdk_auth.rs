//! Who may call the mobile-SDK routes: SDK applications (`/api/v1/applications`: an `app_id`
//! and an `app_secret` shown once, kept as SHA-256), user-scoped SDK tokens
//! (`POST /api/v1/users/{user_id}/token`, scope `sdk`, with a refresh token that
//! `/token/refresh` rotates and `/token/revoke` revokes) and invitation codes
//! (`POST /api/v1/users/{user_id}/invitation-code`, redeemed once for a token pair at
//! `POST /api/v1/invitation-code/redeem`).
//!
//! Applications are `Application` aggregates; a user's SDK refresh tokens and invitation codes
//! are the `SdkAccess` aggregate of that user (one stream, so a code redeems once even when
//! redeemed concurrently). The SDK routes check callers with `crate::auth::SdkAuth`.

use chrono::{DateTime, Duration, Utc};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use uuid::Uuid;
use wearhouse_domain::application::{Application, ApplicationCommand};
use wearhouse_domain::sdk_access::{invite_app_id, SdkAccess, SdkAccessCommand};

use super::api_keys::NullableJson;
use super::auth::TokenResponse;
use super::text::Text;
use super::{request_id, ApiError, AppState};
use crate::auth::{self, DeveloperAuth, MaybeDeveloper};
use crate::store::{Actor, CommandError};

#[derive(Tags)]
enum Tag {
    /// SDK applications: credentials a mobile app's backend exchanges for user tokens
    Applications,
    /// Mobile SDK credentials: user tokens and invitation codes
    MobileSdk,
}

#[derive(Object)]
struct ApplicationCreate {
    /// 1 to 100 characters.
    #[oai(validator(max_length = 100))]
    name: Text,
}

#[derive(Object)]
struct ApplicationRead {
    id: Uuid,
    /// The application's public id (`app_` + 32 hex), sent with its secret.
    app_id: String,
    name: String,
    created_at: DateTime<Utc>,
}

/// An application with its secret: answered once, at creation or rotation.
#[derive(Object)]
struct ApplicationReadWithSecret {
    id: Uuid,
    app_id: String,
    name: String,
    created_at: DateTime<Utc>,
    /// `secret_` + 64 hex. Store it now: only its hash is kept.
    app_secret: String,
}

#[derive(ApiResponse)]
enum CreatedApplication {
    #[oai(status = 201)]
    Ok(Json<ApplicationReadWithSecret>),
}

#[derive(ApiResponse)]
enum Deleted {
    #[oai(status = 204)]
    Done,
}

#[derive(Object)]
struct SdkTokenRequest {
    app_id: Option<Text>,
    app_secret: Option<Text>,
}

#[derive(Object)]
struct UserInvitationCodeRead {
    id: Uuid,
    /// 8 characters from `ABCDEFGHJKLMNPQRSTUVWXYZ23456789`, shown once.
    code: String,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

#[derive(ApiResponse)]
enum CreatedCode {
    #[oai(status = 201)]
    Ok(Json<UserInvitationCodeRead>),
}

#[derive(Object)]
struct UserInvitationCodeRedeem {
    #[oai(validator(min_length = 8, max_length = 8, pattern = "^[A-Z2-9]{8}$"))]
    code: Text,
}

#[derive(Object)]
struct InvitationCodeRedeemResponse {
    access_token: String,
    token_type: String,
    refresh_token: String,
    expires_in: i64,
    user_id: Uuid,
}

const APP_NOT_FOUND: &str = "Application not found";
const BAD_APP_CREDENTIALS: &str = "Invalid app credentials";
const BAD_CODE: &str = "Invalid or expired invitation code";
const NO_CREDENTIAL: &str = "Either app credentials (app_id, app_secret) or admin authentication (Bearer token) is required";

fn read(r: &tokio_postgres::Row) -> ApplicationRead {
    ApplicationRead {
        id: r.get(0),
        app_id: r.get(1),
        name: r.get(2),
        created_at: r.get(3),
    }
}

/// The application `app_id` if `developer` owns it; another developer's is not found, as
/// upstream.
async fn owned(
    state: &AppState,
    app_id: &str,
    developer: Uuid,
) -> Result<ApplicationRead, ApiError> {
    state
        .pool
        .get()
        .await?
        .query_opt(
            "SELECT id, app_id, name, created_at FROM applications \
             WHERE app_id = $1 AND developer_id = $2",
            &[&app_id, &developer],
        )
        .await?
        .as_ref()
        .map(read)
        .ok_or_else(|| ApiError::not_found(APP_NOT_FOUND))
}

async fn user_exists(state: &AppState, user: Uuid) -> Result<(), ApiError> {
    let found = state
        .pool
        .get()
        .await?
        .query_opt("SELECT 1 FROM users WHERE id = $1", &[&user])
        .await?
        .is_some();
    if found {
        Ok(())
    } else {
        Err(super::users::not_found(user))
    }
}

/// Whether tokens recorded under `app_id` may still be used: an application's only while it
/// exists (deleting it ends its users' SDK sessions); a developer's or an invitation's always.
pub(super) async fn app_live(state: &AppState, app_id: &str) -> Result<bool, ApiError> {
    if !app_id.starts_with("app_") {
        return Ok(true);
    }
    Ok(state
        .pool
        .get()
        .await?
        .query_opt("SELECT 1 FROM applications WHERE app_id = $1", &[&app_id])
        .await?
        .is_some())
}

pub(super) fn sdk_actor(user: Uuid, req: &Request) -> Actor {
    Actor {
        kind: "sdk_user",
        id: user.to_string(),
        request_id: request_id(req),
    }
}

/// Runs `command` on the user's `SdkAccess` and waits for its read model; an optimistic-lock
/// conflict (a concurrent command on the same user) is retried once on the new state.
async fn on_access(
    state: &AppState,
    user: Uuid,
    command: SdkAccessCommand,
    actor: &Actor,
) -> Result<(), CommandError<wearhouse_domain::sdk_access::SdkAccessError>> {
    let id = user.to_string();
    let mut attempt = 0;
    loop {
        let result = state
            .commands
            .execute::<SdkAccess>(&id, command.clone(), actor, Some(user), Some("sdk_access"))
            .await;
        match result {
            Err(CommandError::Conflict) if attempt < 3 => attempt += 1,
            other => return other,
        }
    }
}

fn refresh_expiry(state: &AppState, now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(state.config.refresh_token_days)
}

/// Issues an SDK access token and a new refresh token for `user` under `app_id`; with
/// `rotate`, the refresh token of that hash is exchanged (and must be active).
pub(super) async fn sdk_tokens(
    state: &AppState,
    user: Uuid,
    app_id: &str,
    actor: &Actor,
    rotate: Option<String>,
) -> Result<TokenResponse, ApiError> {
    let now = Utc::now();
    let refresh = auth::new_refresh_token();
    let expires_at = refresh_expiry(state, now);
    let command = match rotate {
        Some(old_hash) => SdkAccessCommand::RotateToken {
            old_hash,
            new_hash: auth::sha256_hex(&refresh),
            expires_at,
            at: now,
        },
        None => SdkAccessCommand::IssueToken {
            token_hash: auth::sha256_hex(&refresh),
            app_id: app_id.to_string(),
            expires_at,
            at: now,
        },
    };
    on_access(state, user, command, actor)
        .await
        .map_err(|e| match e {
            CommandError::Rejected(e) => ApiError::unauthorized(e.to_string()),
            other => other.into(),
        })?;
    Ok(TokenResponse {
        access_token: state.jwt.issue_sdk(user, app_id, now),
        token_type: "bearer".into(),
        refresh_token: refresh,
        expires_in: state.jwt.access_minutes * 60,
    })
}

/// The user and application of an active SDK refresh token, with its hash.
pub(super) async fn sdk_refresh_owner(
    state: &AppState,
    token: &str,
) -> Result<Option<(Uuid, String, String)>, ApiError> {
    let hash = auth::sha256_hex(token.trim());
    let row = state
        .pool
        .get()
        .await?
        .query_opt(
            "SELECT user_id, app_id FROM sdk_refresh_tokens t \
             WHERE token_hash = $1 AND expires_at > now() \
             AND EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)",
            &[&hash],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1), hash)))
}

/// Revokes every SDK refresh token of the user who was issued `token`, if it was issued and
/// was rotated or revoked since: presenting it again means the chain leaked.
pub(super) async fn revoke_sdk_chain_if_reused(
    state: &AppState,
    req: &Request,
    token: &str,
) -> Result<(), ApiError> {
    let hash = auth::sha256_hex(token.trim());
    let owner = state
        .pool
        .get()
        .await?
        .query_opt(
            "SELECT aggregate_id FROM events WHERE aggregate_type = 'SdkAccess' \
             AND event_type = 'SdkRefreshTokenRevoked' \
             AND payload ->> 'token_hash' = $1 LIMIT 1",
            &[&hash],
        )
        .await?;
    let Some(user) = owner.and_then(|r| r.get::<_, String>(0).parse::<Uuid>().ok()) else {
        return Ok(());
    };
    tracing::warn!(%user, "a rotated SDK refresh token was reused: revoking the user's SDK refresh tokens");
    let actor = Actor {
        kind: "system",
        id: "refresh-token-reuse".into(),
        request_id: request_id(req),
    };
    on_access(
        state,
        user,
        SdkAccessCommand::RevokeAllTokens { at: Utc::now() },
        &actor,
    )
    .await?;
    Ok(())
}

/// Revokes the SDK refresh token of `hash` held by `user`.
pub(super) async fn revoke_sdk_token(
    state: &AppState,
    req: &Request,
    user: Uuid,
    hash: String,
) -> Result<(), ApiError> {
    on_access(
        state,
        user,
        SdkAccessCommand::RevokeToken {
            token_hash: hash,
            at: Utc::now(),
        },
        &sdk_actor(user, req),
    )
    .await
    .map_err(|e| match e {
        CommandError::Rejected(_) => ApiError::not_found("Refresh token not found"),
        other => other.into(),
    })
}

fn throttled(r: auth::throttle::Refused) -> ApiError {
    use auth::throttle::Refused;
    let detail = match r {
        Refused::Backoff(secs) => {
            format!("Too many invalid invitation codes: try again in {secs} s")
        }
        Refused::Busy => "Too many redemptions at once: try again shortly".to_string(),
    };
    ApiError::TooManyRequests(Json(super::Detail { detail }))
}

/// Creates an application for `developer` and returns it with its secret.
async fn create_application(
    state: &AppState,
    developer: Uuid,
    name: String,
    actor: &Actor,
) -> Result<ApplicationReadWithSecret, ApiError> {
    let (id, app_id, secret, at) = (
        Uuid::new_v4(),
        auth::new_app_id(),
        auth::new_app_secret(),
        // Microseconds, as the read model keeps it: listing shows the same instant.
        chrono::SubsecRound::trunc_subsecs(Utc::now(), 6),
    );
    let command = ApplicationCommand::Create {
        id,
        app_id: app_id.clone(),
        name: name.clone(),
        secret_hash: auth::sha256_hex(&secret),
        developer_id: developer,
        at,
    };
    state
        .commands
        .execute::<Application>(&id.to_string(), command, actor, None, Some("applications"))
        .await?;
    Ok(ApplicationReadWithSecret {
        id,
        app_id,
        // As the aggregate keeps it.
        name: name.trim().to_string(),
        created_at: at,
        app_secret: secret,
    })
}

pub struct ApplicationsApi;

#[OpenApi(prefix_path = "/api/v1")]
impl ApplicationsApi {
    /// List the signed-in developer's SDK applications
    #[oai(path = "/applications", method = "get", tag = "Tag::Applications")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
    ) -> Result<Json<Vec<ApplicationRead>>, ApiError> {
        let rows = state
            .pool
            .get()
            .await?
            .query(
                "SELECT id, app_id, name, created_at FROM applications \
                 WHERE developer_id = $1 ORDER BY created_at, id",
                &[&auth.0],
            )
            .await?;
        Ok(Json(rows.iter().map(read).collect()))
    }

    /// Create an SDK application (its `app_secret` is shown once)
    #[oai(path = "/applications", method = "post", tag = "Tag::Applications")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        body: Json<ApplicationCreate>,
    ) -> Result<CreatedApplication, ApiError> {
        let actor = auth.principal().actor(request_id(req));
        let app = create_application(&state, auth.0, body.0.name.0, &actor).await?;
        Ok(CreatedApplication::Ok(Json(app)))
    }

    /// Delete an SDK application: its secret and the SDK tokens issued with it stop working
    #[oai(
        path = "/applications/:app_id",
        method = "delete",
        tag = "Tag::Applications"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        app_id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let app = owned(&state, &app_id.0, auth.0).await?;
        state
            .commands
            .execute::<Application>(
                &app.id.to_string(),
                ApplicationCommand::Delete { at: Utc::now() },
                &auth.principal().actor(request_id(req)),
                None,
                Some("applications"),
            )
            .await?;
        Ok(Deleted::Done)
    }

    /// Replace an SDK application's secret (the new one is shown once; the old one stops
    /// working)
    #[oai(
        path = "/applications/:app_id/rotate-secret",
        method = "post",
        tag = "Tag::Applications"
    )]
    async fn rotate_secret(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        app_id: Path<String>,
    ) -> Result<Json<ApplicationReadWithSecret>, ApiError> {
        let app = owned(&state, &app_id.0, auth.0).await?;
        let secret = auth::new_app_secret();
        state
            .commands
            .execute::<Application>(
                &app.id.to_string(),
                ApplicationCommand::RotateSecret {
                    secret_hash: auth::sha256_hex(&secret),
                    at: Utc::now(),
                },
                &auth.principal().actor(request_id(req)),
                None,
                Some("applications"),
            )
            .await?;
        Ok(Json(ApplicationReadWithSecret {
            id: app.id,
            app_id: app.app_id,
            name: app.name,
            created_at: app.created_at,
            app_secret: secret,
        }))
    }
}

pub struct SdkTokensApi;

#[OpenApi(prefix_path = "/api/v1")]
impl SdkTokensApi {
    /// Issue an SDK token pair for a user: application credentials in the body, or a developer
    /// bearer token (the access token reaches only this user's SDK routes)
    #[oai(
        path = "/users/:user_id/token",
        method = "post",
        tag = "Tag::MobileSdk"
    )]
    async fn user_token(
        &self,
        state: Data<&AppState>,
        developer: MaybeDeveloper,
        req: &Request,
        user_id: Path<Uuid>,
        body: NullableJson<SdkTokenRequest>,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let credentials = body.0.and_then(|b| {
            let id = b.app_id.map(|t| t.0).filter(|s| !s.is_empty())?;
            let secret = b.app_secret.map(|t| t.0).filter(|s| !s.is_empty())?;
            Some((id, secret))
        });
        let (app_id, actor) = match (credentials, developer.0) {
            (Some((app_id, secret)), _) => {
                let stored: Option<String> = state
                    .pool
                    .get()
                    .await?
                    .query_opt(
                        "SELECT secret_hash FROM applications WHERE app_id = $1",
                        &[&app_id],
                    )
                    .await?
                    .map(|r| r.get(0));
                let ok = stored.is_some_and(|h| auth::same_hash(&h, &auth::sha256_hex(&secret)));
                if !ok {
                    return Err(ApiError::unauthorized(BAD_APP_CREDENTIALS));
                }
                let actor = Actor {
                    kind: "application",
                    id: app_id.clone(),
                    request_id: request_id(req),
                };
                (app_id, actor)
            }
            (None, Some(dev)) => (
                format!("admin:{dev}"),
                auth::Principal::Developer(dev).actor(request_id(req)),
            ),
            (None, None) => return Err(ApiError::bad_request(NO_CREDENTIAL)),
        };
        user_exists(&state, user_id.0).await?;
        Ok(Json(
            sdk_tokens(&state, user_id.0, &app_id, &actor, None).await?,
        ))
    }

    /// Create a single-use invitation code for a user (8 characters, valid 7 days); the user's
    /// earlier codes stop working
    #[oai(
        path = "/users/:user_id/invitation-code",
        method = "post",
        tag = "Tag::MobileSdk"
    )]
    async fn invitation_code(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        user_id: Path<Uuid>,
    ) -> Result<CreatedCode, ApiError> {
        let user = user_id.0;
        user_exists(&state, user).await?;
        let (id, code, at) = (Uuid::new_v4(), auth::new_invitation_code(), Utc::now());
        let expires_at = at + Duration::seconds(state.config.invitation_code_ttl_secs);
        let command = SdkAccessCommand::IssueInvitationCode {
            id,
            code_hash: auth::keyed_hash(&state.code_key, &code),
            created_by: auth.0,
            expires_at,
            at,
        };
        on_access(
            &state,
            user,
            command,
            &auth.principal().actor(request_id(req)),
        )
        .await?;
        Ok(CreatedCode::Ok(Json(UserInvitationCodeRead {
            id,
            code,
            user_id: user,
            expires_at,
            created_at: at,
        })))
    }

    /// Redeem an invitation code for the user's SDK token pair (no credential but the code;
    /// each code works once)
    #[oai(
        path = "/invitation-code/redeem",
        method = "post",
        tag = "Tag::MobileSdk"
    )]
    async fn redeem(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<UserInvitationCodeRedeem>,
    ) -> Result<Json<InvitationCodeRedeemResponse>, ApiError> {
        let code = body.0.code.0;
        let address = super::auth::client_address(req);
        let throttle = &state.redeem_throttle;
        throttle.check(&code, &address).map_err(throttled)?;
        let refused = || {
            throttle.failed(&code, &address);
            ApiError::not_found(BAD_CODE)
        };
        let hash = auth::keyed_hash(&state.code_key, &code);
        let row = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT user_id, created_by FROM sdk_invitation_codes c WHERE code_hash = $1 \
                 AND EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id)",
                &[&hash],
            )
            .await?;
        let Some((user, created_by)) = row.map(|r| (r.get::<_, Uuid>(0), r.get::<_, Uuid>(1)))
        else {
            return Err(refused());
        };
        let now = Utc::now();
        let refresh = auth::new_refresh_token();
        let command = SdkAccessCommand::RedeemInvitationCode {
            code_hash: hash,
            token_hash: auth::sha256_hex(&refresh),
            token_expires_at: refresh_expiry(&state, now),
            at: now,
        };
        match on_access(&state, user, command, &sdk_actor(user, req)).await {
            Ok(()) => {}
            // Expired, or redeemed by a concurrent request that won.
            Err(CommandError::Rejected(_)) => return Err(refused()),
            Err(e) => return Err(e.into()),
        }
        throttle.succeeded(&code, &address);
        let app_id = invite_app_id(created_by);
        Ok(Json(InvitationCodeRedeemResponse {
            access_token: state.jwt.issue_sdk(user, &app_id, now),
            token_type: "bearer".into(),
            refresh_token: refresh,
            expires_in: state.jwt.access_minutes * 60,
            user_id: user,
        }))
    }
}
