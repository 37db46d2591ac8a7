//! The team: `/api/v1/developers` (accounts and their roles) and `/api/v1/invitations` (an
//! admin invites an address with a role; the token, shown once, accepts it). Admins only,
//! except accepting an invitation, which needs the token alone.
//!
//! No e-mail is sent: the admin hands the token (or a link built from it) to the person. The
//! token is kept as a SHA-256, so it is shown at creation and resend only; lists show it empty.

use chrono::{DateTime, Duration, Utc};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use uuid::Uuid;
use wearhouse_domain::developer::{developer_id, Developer, DeveloperCommand, Role};
use wearhouse_domain::invitation::{Invitation, InvitationCommand, InvitationError};

use super::auth::{
    check_password, developer_read, email_taken, keep_an_admin, load_developer, update_developer,
    DeveloperRead, DeveloperUpdate, RoleName, DEVELOPER_COLUMNS,
};
use super::text::Text;
use super::{request_id, ApiError, AppState};
use crate::auth::{self, AdminAuth};
use crate::store::{Actor, CommandError};

/// How long an invitation can be accepted.
const INVITATION_DAYS: i64 = 7;

#[derive(Tags)]
enum Tag {
    /// Developer accounts of this installation and their roles
    Developers,
    /// Invitations to the team
    Invitations,
}

#[derive(Object)]
struct InvitationCreate {
    email: Text,
    /// The role the account will have (not in upstream); `developer` when absent.
    role: Option<RoleName>,
}

#[derive(Object)]
struct InvitationAccept {
    token: Text,
    #[oai(validator(min_length = 1, max_length = 100))]
    first_name: Text,
    #[oai(validator(min_length = 1, max_length = 100))]
    last_name: Text,
    /// At least 8 characters.
    #[oai(validator(min_length = 8))]
    password: Text,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum InvitationStatus {
    Pending,
    Sent,
    Failed,
    Accepted,
    Expired,
    Revoked,
}

#[derive(Object)]
struct InvitationRead {
    id: Uuid,
    email: String,
    /// The invitation token: shown when the invitation is created or resent, empty otherwise
    /// (only its hash is kept).
    token: String,
    status: InvitationStatus,
    /// The role the account will have (not in upstream).
    role: RoleName,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    invited_by_id: Option<Uuid>,
}

#[derive(ApiResponse)]
enum Created<T: poem_openapi::types::ToJSON + Send + Sync> {
    #[oai(status = 201)]
    Ok(Json<T>),
}

const INVITATION_COLUMNS: &str =
    "id, email, status, role, expires_at, created_at, invited_by_id, now() >= expires_at";

fn invitation_read(row: &tokio_postgres::Row, token: String) -> InvitationRead {
    let status: String = row.get(2);
    let expired: bool = row.get(7);
    let role: String = row.get(3);
    InvitationRead {
        id: row.get(0),
        email: row.get(1),
        token,
        status: match status.as_str() {
            "accepted" => InvitationStatus::Accepted,
            "revoked" => InvitationStatus::Revoked,
            _ if expired => InvitationStatus::Expired,
            _ => InvitationStatus::Pending,
        },
        role: Role::parse(&role).unwrap_or(Role::Developer).into(),
        expires_at: row.get(4),
        created_at: row.get(5),
        invited_by_id: row.get(6),
    }
}

async fn invitation_row(state: &AppState, id: Uuid) -> Result<tokio_postgres::Row, ApiError> {
    state
        .pool
        .get()
        .await?
        .query_opt(
            &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Invitation with ID: {id} not found.")))
}

/// Runs a command on invitation `id`; returns once the `invitations` read model shows it.
async fn invitation_command(
    state: &AppState,
    id: Uuid,
    command: InvitationCommand,
    actor: &Actor,
) -> Result<(), CommandError<InvitationError>> {
    state
        .commands
        .execute::<Invitation>(&id.to_string(), command, actor, None, Some("invitations"))
        .await
}

fn new_token() -> String {
    format!("inv-{}", auth::random_hex(16))
}

pub struct TeamApi;

#[OpenApi(prefix_path = "/api/v1")]
impl TeamApi {
    /// List developer accounts
    #[oai(path = "/developers", method = "get", tag = "Tag::Developers")]
    async fn list_developers(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> Result<Json<Vec<DeveloperRead>>, ApiError> {
        let rows = state
            .pool
            .get()
            .await?
            .query(
                &format!("SELECT {DEVELOPER_COLUMNS} FROM developers ORDER BY created_at, id"),
                &[],
            )
            .await?;
        Ok(Json(rows.iter().map(developer_read).collect()))
    }

    /// Get a developer account
    #[oai(
        path = "/developers/:developer_id",
        method = "get",
        tag = "Tag::Developers"
    )]
    async fn get_developer(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        /// The developer account's id.
        developer_id: Path<Uuid>,
    ) -> Result<Json<DeveloperRead>, ApiError> {
        Ok(Json(load_developer(&state, developer_id.0).await?))
    }

    /// Change a developer account: profile, password, role (absent or null fields are kept)
    #[oai(
        path = "/developers/:developer_id",
        method = "patch",
        tag = "Tag::Developers"
    )]
    async fn update_developer(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        req: &Request,
        /// The developer account's id.
        developer_id: Path<Uuid>,
        body: Json<DeveloperUpdate>,
    ) -> Result<Json<DeveloperRead>, ApiError> {
        let actor = auth.principal().actor(request_id(req));
        Ok(Json(
            update_developer(&state, developer_id.0, body.0, &actor).await?,
        ))
    }

    /// Remove a developer account (its tokens stop working at once)
    #[oai(
        path = "/developers/:developer_id",
        method = "delete",
        tag = "Tag::Developers"
    )]
    async fn delete_developer(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        req: &Request,
        /// The developer account's id.
        developer_id: Path<Uuid>,
    ) -> Result<Json<DeveloperRead>, ApiError> {
        let id = developer_id.0;
        let removed = load_developer(&state, id).await?;
        if id == auth.0 {
            return Err(ApiError::bad_request("You cannot delete your own account"));
        }
        if removed.role == RoleName::Admin {
            keep_an_admin(&state, id).await?;
        }
        state
            .commands
            .execute::<Developer>(
                &id.to_string(),
                DeveloperCommand::Remove { at: Utc::now() },
                &auth.principal().actor(request_id(req)),
                None,
                Some("developers"),
            )
            .await?;
        Ok(Json(removed))
    }

    /// Invite an address to the team (the answer's token is the only copy)
    #[oai(path = "/invitations", method = "post", tag = "Tag::Invitations")]
    async fn create_invitation(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        req: &Request,
        body: Json<InvitationCreate>,
    ) -> Result<Created<InvitationRead>, ApiError> {
        let email = body.0.email.0.trim().to_lowercase();
        auth::check_email(&email).map_err(ApiError::bad_request)?;
        if email_taken(&state, &email, None).await? {
            return Err(ApiError::bad_request(
                "A developer with this email already exists",
            ));
        }
        let pending = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM invitations WHERE email = $1 AND status = 'pending' AND expires_at > now()",
                &[&email],
            )
            .await?
            .is_some();
        if pending {
            return Err(ApiError::bad_request(
                "An active invitation for this email already exists",
            ));
        }
        let id = Uuid::new_v4();
        let token = new_token();
        let now = Utc::now();
        let command = InvitationCommand::Create {
            id,
            email,
            role: body.0.role.map(Role::from).unwrap_or(Role::Developer),
            token_hash: auth::sha256_hex(&token),
            expires_at: now + Duration::days(INVITATION_DAYS),
            invited_by: Some(auth.0),
            at: now,
        };
        invitation_command(
            &state,
            id,
            command,
            &auth.principal().actor(request_id(req)),
        )
        .await?;
        Ok(Created::Ok(Json(invitation_read(
            &invitation_row(&state, id).await?,
            token,
        ))))
    }

    /// List the invitations that can still be accepted
    #[oai(path = "/invitations", method = "get", tag = "Tag::Invitations")]
    async fn list_invitations(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> Result<Json<Vec<InvitationRead>>, ApiError> {
        let rows = state
            .pool
            .get()
            .await?
            .query(
                &format!(
                    "SELECT {INVITATION_COLUMNS} FROM invitations \
                     WHERE status = 'pending' AND expires_at > now() ORDER BY created_at, id"
                ),
                &[],
            )
            .await?;
        Ok(Json(
            rows.iter()
                .map(|r| invitation_read(r, String::new()))
                .collect(),
        ))
    }

    /// Revoke an invitation
    #[oai(
        path = "/invitations/:invitation_id",
        method = "delete",
        tag = "Tag::Invitations"
    )]
    async fn revoke_invitation(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        req: &Request,
        /// The invitation's id.
        invitation_id: Path<Uuid>,
    ) -> Result<Json<InvitationRead>, ApiError> {
        let id = invitation_id.0;
        invitation_row(&state, id).await?;
        invitation_command(
            &state,
            id,
            InvitationCommand::Revoke { at: Utc::now() },
            &auth.principal().actor(request_id(req)),
        )
        .await?;
        Ok(Json(invitation_read(
            &invitation_row(&state, id).await?,
            String::new(),
        )))
    }

    /// Issue a new token for a pending invitation, valid for another 7 days (the old token
    /// stops working)
    #[oai(
        path = "/invitations/:invitation_id/resend",
        method = "post",
        tag = "Tag::Invitations"
    )]
    async fn resend_invitation(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        req: &Request,
        /// The invitation's id.
        invitation_id: Path<Uuid>,
    ) -> Result<Json<InvitationRead>, ApiError> {
        let id = invitation_id.0;
        invitation_row(&state, id).await?;
        let token = new_token();
        let now = Utc::now();
        invitation_command(
            &state,
            id,
            InvitationCommand::Resend {
                token_hash: auth::sha256_hex(&token),
                expires_at: now + Duration::days(INVITATION_DAYS),
                at: now,
            },
            &auth.principal().actor(request_id(req)),
        )
        .await?;
        Ok(Json(invitation_read(
            &invitation_row(&state, id).await?,
            token,
        )))
    }

    /// Accept an invitation: creates the account, with the invitation's role
    #[oai(
        path = "/invitations/accept",
        method = "post",
        tag = "Tag::Invitations"
    )]
    async fn accept_invitation(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<InvitationAccept>,
    ) -> Result<Created<DeveloperRead>, ApiError> {
        let body = body.0;
        check_password("password", &body.password.0)?;
        let (first_name, last_name) = (body.first_name.0.trim(), body.last_name.0.trim());
        if first_name.is_empty() || last_name.is_empty() {
            return Err(ApiError::bad_request(
                "first_name and last_name must not be blank",
            ));
        }
        let token_hash = auth::sha256_hex(body.token.0.trim());
        let invalid = || ApiError::bad_request("Invalid or expired invitation");
        let row = state
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT id, email, role FROM invitations WHERE token_hash = $1",
                &[&token_hash],
            )
            .await?
            .ok_or_else(invalid)?;
        let (invitation, email, role): (Uuid, String, String) =
            (row.get(0), row.get(1), row.get(2));
        if email_taken(&state, &email, None).await? {
            return Err(ApiError::bad_request(
                "A developer with this email already exists",
            ));
        }
        let developer = developer_id(&email);
        let actor = Actor {
            kind: "invitation",
            id: invitation.to_string(),
            request_id: request_id(req),
        };
        // The invitation aggregate makes the token single-use (and checks it and its expiry
        // again); only then is the account made.
        invitation_command(
            &state,
            invitation,
            InvitationCommand::Accept {
                token_hash,
                developer_id: developer,
                at: Utc::now(),
            },
            &actor,
        )
        .await
        .map_err(|e| match e {
            // Used, expired, revoked, or accepted by a concurrent request first.
            CommandError::Rejected(_) | CommandError::Conflict => invalid(),
            other => ApiError::from(other),
        })?;
        let password = body.password.0;
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(super::error::internal_api)?;
        state
            .commands
            .execute::<Developer>(
                &developer.to_string(),
                DeveloperCommand::Register {
                    email,
                    password_hash: hash,
                    first_name: Some(first_name.to_string()),
                    last_name: Some(last_name.to_string()),
                    role: Role::parse(&role).unwrap_or(Role::Developer),
                    at: Utc::now(),
                },
                &actor,
                None,
                Some("developers"),
            )
            .await?;
        Ok(Created::Ok(Json(load_developer(&state, developer).await?)))
    }
}
