//! Developer sign-in: `POST /auth/login` (OAuth2 password form), `GET /auth/me`, refresh-token
//! rotation and revocation (`/token/refresh`, `/token/revoke`: developer and SDK refresh
//! tokens alike, each answered with tokens of its own kind).
//!
//! ## SDK routes
//!
//! The mobile-SDK routes (`/api/v1/sdk/users/{user_id}/…`) take an SDK user token (scope
//! `sdk`) of that very user, or an API key — the contract's "SDKAuthDep": they declare the
//! extractor `crate::auth::SdkAuth`, which reads `user_id` from the path and documents the
//! `SdkBearer` / `ApiKeyAuth` schemes. It answers 401 `Authentication required: provide SDK
//! token or API key` (no valid SDK token and no API key: missing, expired, badly signed, its
//! user or application deleted), 401 `Invalid or missing API key`, 403 `Token does not match
//! user_id` (a valid SDK token of another user). Every other route refuses SDK tokens.

use chrono::{DateTime, Duration, Utc};
use poem::Request;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use uuid::Uuid;
use wearhouse_domain::developer::{Developer, DeveloperCommand};

use super::text::{plain, Text};
use super::{request_id, sdk_auth, ApiError, AppState};
use crate::auth::{self, AccountAuth, Principal};

#[derive(Tags)]
enum Tag {
    /// Developer authentication
    Auth,
}

#[derive(Object, Debug, serde::Deserialize)]
struct LoginForm {
    username: Option<String>,
    password: Option<String>,
}

#[derive(Object)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub refresh_token: String,
    pub expires_in: i64,
}

#[derive(Object)]
struct RefreshRequest {
    refresh_token: Text,
}

#[derive(Object)]
pub struct DeveloperRead {
    pub id: Uuid,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: String,
    /// What the account may do (not in upstream, which has no roles).
    pub role: RoleName,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An account's role: `admin` (everything, including the team), `developer` (the platform's
/// API, not the team), `auditor` (the audit history only).
#[derive(poem_openapi::Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum RoleName {
    Admin,
    Developer,
    Auditor,
}

impl From<auth::Role> for RoleName {
    fn from(r: auth::Role) -> Self {
        match r {
            auth::Role::Admin => RoleName::Admin,
            auth::Role::Developer => RoleName::Developer,
            auth::Role::Auditor => RoleName::Auditor,
        }
    }
}

impl From<RoleName> for auth::Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Admin => auth::Role::Admin,
            RoleName::Developer => auth::Role::Developer,
            RoleName::Auditor => auth::Role::Auditor,
        }
    }
}

/// The columns `developer_read` takes, in order.
pub const DEVELOPER_COLUMNS: &str =
    "id, first_name, last_name, email, role, created_at, updated_at";

pub fn developer_read(row: &tokio_postgres::Row) -> DeveloperRead {
    let role: String = row.get(4);
    DeveloperRead {
        id: row.get(0),
        first_name: row.get(1),
        last_name: row.get(2),
        email: row.get(3),
        role: auth::Role::parse(&role).unwrap_or_default().into(),
        created_at: row.get(5),
        updated_at: row.get(6),
    }
}

#[derive(Object)]
pub(super) struct DeveloperUpdate {
    #[oai(validator(max_length = 100))]
    pub first_name: Option<Text>,
    #[oai(validator(max_length = 100))]
    pub last_name: Option<Text>,
    pub email: Option<Text>,
    /// At least 8 characters.
    #[oai(validator(min_length = 8))]
    pub password: Option<Text>,
    /// A new role (not in upstream): only an admin sets it, through
    /// `PATCH /api/v1/developers/{developer_id}`; the last admin cannot be given another.
    pub role: Option<RoleName>,
}

#[derive(Object)]
struct PasswordChange {
    current_password: Text,
    /// At least 8 characters.
    #[oai(validator(min_length = 8))]
    new_password: Text,
    /// Must equal `new_password`.
    confirm_password: Text,
}

#[derive(Object)]
struct Message {
    message: String,
}

/// The contract's minimum password length.
const MIN_PASSWORD_LEN: usize = 8;

/// A developer account from the read model, or the contract's 404.
pub(super) async fn load_developer(state: &AppState, id: Uuid) -> Result<DeveloperRead, ApiError> {
    state
        .pool
        .get()
        .await?
        .query_opt(
            &format!("SELECT {DEVELOPER_COLUMNS} FROM developers WHERE id = $1"),
            &[&id],
        )
        .await?
        .map(|r| developer_read(&r))
        .ok_or_else(|| ApiError::not_found(format!("Developer with ID: {id} not found.")))
}

/// Refuses a change that would leave the installation without an admin.
pub(super) async fn keep_an_admin(state: &AppState, losing: Uuid) -> Result<(), ApiError> {
    let others: i64 = state
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM developers WHERE role = 'admin' AND id <> $1",
            &[&losing],
        )
        .await?
        .get(0);
    if others == 0 {
        return Err(ApiError::bad_request(
            "At least one admin account must remain",
        ));
    }
    Ok(())
}

/// Whether another account (not `except`) has this address.
pub(super) async fn email_taken(
    state: &AppState,
    email: &str,
    except: Option<Uuid>,
) -> Result<bool, ApiError> {
    Ok(state
        .pool
        .get()
        .await?
        .query_opt(
            "SELECT 1 FROM developers WHERE email = lower(trim($1)) AND id IS DISTINCT FROM $2",
            &[&email, &except],
        )
        .await?
        .is_some())
}

/// Applies a `DeveloperUpdate` to account `id` (absent or null fields are kept) and answers
/// the account as it is then.
pub(super) async fn update_developer(
    state: &AppState,
    id: Uuid,
    body: DeveloperUpdate,
    actor: &crate::store::Actor,
) -> Result<DeveloperRead, ApiError> {
    let current = load_developer(state, id).await?;
    let (first_name, last_name, email, password) = (
        plain(body.first_name),
        plain(body.last_name),
        plain(body.email),
        plain(body.password),
    );
    if let Some(p) = &password {
        check_password("password", p)?;
    }
    if let Some(email) = &email {
        if email_taken(state, email, Some(id)).await? {
            return Err(ApiError::bad_request(
                "Developer entity already exists. Details: email is already in use",
            ));
        }
    }
    let role = body.role.map(auth::Role::from);
    if current.role == RoleName::Admin && role.is_some_and(|r| r != auth::Role::Admin) {
        keep_an_admin(state, id).await?;
    }
    let now = Utc::now();
    let mut commands = vec![DeveloperCommand::UpdateProfile {
        first_name,
        last_name,
        email,
        at: now,
    }];
    if let Some(password) = password {
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(super::error::internal_api)?;
        commands.push(DeveloperCommand::ChangePassword {
            password_hash: hash,
            at: now,
        });
    }
    if let Some(role) = role {
        commands.push(DeveloperCommand::ChangeRole { role, at: now });
    }
    let key = id.to_string();
    for command in commands {
        state
            .commands
            .execute::<Developer>(&key, command, actor, None, Some("developers"))
            .await?;
    }
    load_developer(state, id).await
}

pub(super) fn check_password(field: &str, p: &str) -> Result<(), ApiError> {
    if p.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::bad_request(format!(
            "{field}: String should have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

#[derive(ApiResponse)]
enum NoContent {
    #[oai(status = 204)]
    Done,
}

const BAD_LOGIN: &str = "Incorrect email or password";

pub struct AuthApi;

impl AuthApi {
    /// Issues an access token and a new refresh token for `developer`.
    async fn tokens(
        state: &AppState,
        developer: Uuid,
        req: &Request,
        rotate: Option<String>,
    ) -> Result<TokenResponse, ApiError> {
        let now = Utc::now();
        let refresh = auth::new_refresh_token();
        let expires_at = now + Duration::days(state.config.refresh_token_days);
        let command = match rotate {
            Some(old_hash) => DeveloperCommand::RotateRefreshToken {
                old_hash,
                new_hash: auth::sha256_hex(&refresh),
                expires_at,
                at: now,
            },
            None => DeveloperCommand::IssueRefreshToken {
                token_hash: auth::sha256_hex(&refresh),
                expires_at,
                at: now,
            },
        };
        let actor = Principal::Developer(developer).actor(request_id(req));
        state
            .commands
            .execute::<Developer>(
                &developer.to_string(),
                command,
                &actor,
                None,
                Some("developers"),
            )
            .await
            .map_err(|e| match e {
                crate::store::CommandError::Rejected(e) => ApiError::unauthorized(e.to_string()),
                other => other.into(),
            })?;
        Ok(TokenResponse {
            access_token: state.jwt.issue(developer, now),
            token_type: "bearer".into(),
            refresh_token: refresh,
            expires_in: state.jwt.access_minutes * 60,
        })
    }

    async fn refresh_owner(
        state: &AppState,
        token: &str,
    ) -> Result<Option<(Uuid, String)>, ApiError> {
        let hash = auth::sha256_hex(token.trim());
        let row = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT developer_id FROM developer_refresh_tokens WHERE token_hash = $1 AND expires_at > now()",
                &[&hash],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), hash)))
    }
}

/// The client's address (without port) for throttling: the peer of the connection. A proxy in
/// front makes every client one address; its own limits apply then.
pub(super) fn client_address(req: &Request) -> String {
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| req.remote_addr().to_string())
}

fn refused(r: auth::throttle::Refused) -> ApiError {
    use auth::throttle::Refused;
    let detail = match r {
        Refused::Backoff(secs) => {
            format!("Too many failed sign-ins: try again in {secs} s")
        }
        Refused::Busy => "Too many sign-ins at once: try again shortly".to_string(),
    };
    ApiError::TooManyRequests(Json(super::Detail { detail }))
}

impl AuthApi {
    /// Revokes every active refresh token of the developer who was issued `token`, if it was
    /// issued and is no longer active (rotated or revoked): reuse means the chain leaked.
    async fn revoke_chain_if_reused(
        state: &AppState,
        req: &Request,
        token: &str,
    ) -> Result<(), ApiError> {
        let hash = auth::sha256_hex(token.trim());
        let db = state.pool.get().await?;
        let owner = db
            .query_opt(
                "SELECT aggregate_id FROM events WHERE aggregate_type = 'Developer' \
                 AND event_type = 'RefreshTokenRevoked' \
                 AND payload ->> 'token_hash' = $1 LIMIT 1",
                &[&hash],
            )
            .await?;
        let Some(owner) = owner else {
            return Ok(());
        };
        let owner: String = owner.get(0);
        let Ok(developer) = owner.parse::<Uuid>() else {
            return Ok(());
        };
        let active: Vec<String> = db
            .query(
                "SELECT token_hash FROM developer_refresh_tokens WHERE developer_id = $1",
                &[&developer],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !active.is_empty() {
            tracing::warn!(%developer, "a rotated refresh token was reused: revoking the developer's refresh tokens");
        }
        let actor = crate::store::Actor {
            kind: "system",
            id: "refresh-token-reuse".into(),
            request_id: request_id(req),
        };
        for token_hash in active {
            // Another request may have revoked it meanwhile; that is the goal anyway.
            let _ = state
                .commands
                .execute::<Developer>(
                    &developer.to_string(),
                    DeveloperCommand::RevokeRefreshToken {
                        token_hash,
                        at: Utc::now(),
                    },
                    &actor,
                    None,
                    Some("developers"),
                )
                .await;
        }
        Ok(())
    }
}

#[OpenApi(prefix_path = "/api/v1")]
impl AuthApi {
    /// Sign in with e-mail and password (OAuth2 password form: `username`, `password`)
    #[oai(path = "/auth/login", method = "post", tag = "Tag::Auth")]
    async fn login(
        &self,
        state: poem::web::Data<&AppState>,
        req: &Request,
        form: Form<LoginForm>,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let (Some(email), Some(password)) = (form.0.username, form.0.password) else {
            return Err(ApiError::unauthorized(BAD_LOGIN));
        };
        // No account has an empty, control-character or overlong name or password (and the
        // database cannot even compare a NUL).
        if email.trim().is_empty()
            || email.len() > 254
            || email.chars().any(char::is_control)
            || password.is_empty()
            || password.len() > 1024
        {
            return Err(ApiError::unauthorized(BAD_LOGIN));
        }
        // Throttled per account and per client address, and the password hashes themselves
        // are bounded (a flood of sign-ins must not exhaust memory or CPU).
        let address = client_address(req);
        let throttle = &state.login_throttle;
        throttle.check(&email, &address).map_err(refused)?;
        let permit = throttle.hash_permit().await.map_err(refused)?;
        // Waiting for a turn may have taken a while: failures meanwhile count too.
        throttle.check(&email, &address).map_err(refused)?;
        let row = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT id, password_hash FROM developers WHERE email = lower(trim($1))",
                &[&email],
            )
            .await?;
        let (id, hash) = match &row {
            Some(row) => (Some(row.get::<_, Uuid>(0)), row.get::<_, String>(1)),
            // Same work as a real check, so timing does not reveal which addresses exist.
            None => (None, auth::decoy_hash().to_string()),
        };
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        drop(permit);
        let Some(id) = id.filter(|_| ok) else {
            throttle.failed(&email, &address);
            return Err(ApiError::unauthorized(BAD_LOGIN));
        };
        throttle.succeeded(&email, &address);
        Ok(Json(Self::tokens(&state, id, req, None).await?))
    }

    /// Sign out: the access token used stops working at once (revoke the refresh token with
    /// `/token/revoke`)
    #[oai(path = "/auth/logout", method = "post", tag = "Tag::Auth")]
    async fn logout(
        &self,
        state: poem::web::Data<&AppState>,
        req: &Request,
        _auth: AccountAuth,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let claims = req
            .header("authorization")
            .and_then(|v| v.split_once(' '))
            .and_then(|(_, token)| state.jwt.decode(token.trim()));
        if let Some(jti) = claims.as_ref().and_then(|c| c.jti) {
            let expires = DateTime::from_timestamp(claims.as_ref().map_or(0, |c| c.exp), 0)
                .unwrap_or_else(Utc::now);
            // Kept until the token would have expired anyway; older rows are swept here.
            let db = state.pool.get().await?;
            db.execute(
                "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&jti, &expires],
            )
            .await?;
            db.execute(
                "DELETE FROM revoked_access_tokens WHERE expires_at < now() - interval '1 hour'",
                &[],
            )
            .await?;
        }
        Ok(Json(
            serde_json::json!({ "message": "Successfully logged out" }),
        ))
    }

    /// The signed-in developer
    #[oai(path = "/auth/me", method = "get", tag = "Tag::Auth")]
    async fn me(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AccountAuth,
    ) -> Result<Json<DeveloperRead>, ApiError> {
        Ok(Json(load_developer(&state, auth.0).await?))
    }

    /// Change the signed-in developer's profile (absent or null fields are kept)
    #[oai(path = "/auth/me", method = "patch", tag = "Tag::Auth")]
    async fn update_me(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AccountAuth,
        req: &Request,
        body: Json<DeveloperUpdate>,
    ) -> Result<Json<DeveloperRead>, ApiError> {
        if body.0.role.is_some() {
            return Err(ApiError::bad_request(
                "role: an admin changes roles through PATCH /api/v1/developers/{developer_id}",
            ));
        }
        let actor = auth.principal().actor(request_id(req));
        Ok(Json(
            update_developer(&state, auth.0, body.0, &actor).await?,
        ))
    }

    /// Change the signed-in developer's password
    #[oai(path = "/auth/change-password", method = "post", tag = "Tag::Auth")]
    async fn change_password(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AccountAuth,
        req: &Request,
        body: Json<PasswordChange>,
    ) -> Result<Json<Message>, ApiError> {
        let body = body.0;
        let (current, new_password, confirm) = (
            body.current_password.0,
            body.new_password.0,
            body.confirm_password.0,
        );
        check_password("new_password", &new_password)?;
        check_password("confirm_password", &confirm)?;
        if new_password != confirm {
            return Err(ApiError::bad_request(
                "Value error, The confirmation password does not match the new password",
            ));
        }
        let hash: String = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT password_hash FROM developers WHERE id = $1",
                &[&auth.0],
            )
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("Developer with ID: {} not found.", auth.0))
            })?
            .get(0);
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&current, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::bad_request("Incorrect current password"));
        }
        let new = new_password;
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&new))
            .await
            .map_err(super::error::internal_api)?;
        state
            .commands
            .execute::<Developer>(
                &auth.0.to_string(),
                DeveloperCommand::ChangePassword {
                    password_hash: hash,
                    at: Utc::now(),
                },
                &auth.principal().actor(request_id(req)),
                None,
                Some("developers"),
            )
            .await?;
        Ok(Json(Message {
            message: "Password updated successfully".into(),
        }))
    }

    /// Exchange a refresh token for new tokens (the old refresh token stops working)
    #[oai(path = "/token/refresh", method = "post", tag = "Tag::Auth")]
    async fn refresh(
        &self,
        state: poem::web::Data<&AppState>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let token = &body.0.refresh_token.0;
        if let Some((developer, hash)) = Self::refresh_owner(&state, token).await? {
            return Ok(Json(
                Self::tokens(&state, developer, req, Some(hash)).await?,
            ));
        }
        // An SDK refresh token gives SDK tokens for the same user and application.
        if let Some((user, app_id, hash)) = sdk_auth::sdk_refresh_owner(&state, token).await? {
            if sdk_auth::app_live(&state, &app_id).await? {
                let actor = sdk_auth::sdk_actor(user, req);
                return Ok(Json(
                    sdk_auth::sdk_tokens(&state, user, &app_id, &actor, Some(hash)).await?,
                ));
            }
        }
        // A refresh token that was valid once and is presented again after its rotation
        // was stolen (or its holder raced a thief): every session of its owner ends.
        Self::revoke_chain_if_reused(&state, req, token).await?;
        sdk_auth::revoke_sdk_chain_if_reused(&state, req, token).await?;
        Err(ApiError::unauthorized("Invalid or revoked refresh token"))
    }

    /// Revoke a refresh token
    #[oai(path = "/token/revoke", method = "post", tag = "Tag::Auth")]
    async fn revoke(
        &self,
        state: poem::web::Data<&AppState>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> Result<NoContent, ApiError> {
        let token = &body.0.refresh_token.0;
        let Some((developer, hash)) = Self::refresh_owner(&state, token).await? else {
            return match sdk_auth::sdk_refresh_owner(&state, token).await? {
                Some((user, _, hash)) => {
                    sdk_auth::revoke_sdk_token(&state, req, user, hash).await?;
                    Ok(NoContent::Done)
                }
                None => Err(ApiError::not_found("Refresh token not found")),
            };
        };
        let actor = Principal::Developer(developer).actor(request_id(req));
        state
            .commands
            .execute::<Developer>(
                &developer.to_string(),
                DeveloperCommand::RevokeRefreshToken {
                    token_hash: hash,
                    at: Utc::now(),
                },
                &actor,
                None,
                Some("developers"),
            )
            .await?;
        Ok(NoContent::Done)
    }
}
