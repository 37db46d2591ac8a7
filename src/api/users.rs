//! `/api/v1/users`: create, read, list (the old page envelope), patch and delete users.
//! Writes are commands on the `User` aggregate; reads come from the `users` read model.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use wearhouse_domain::clean;

use super::text::{plain, Text};
use wearhouse_domain::user::{User, UserChanges, UserCommand, UserProfile};

use super::{request_id, ApiError, AppState};
use crate::auth::{AnyCredential, DeveloperAuth, Principal};

#[derive(Tags)]
enum Tag {
    /// Users whose data the platform holds
    Users,
}

#[derive(Object, Debug, Clone)]
pub struct UserRead {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub external_user_id: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_synced_provider: Option<String>,
    pub has_active_connection: bool,
}

#[derive(Object, Debug)]
struct UserCreate {
    first_name: Option<Text>,
    last_name: Option<Text>,
    email: Option<Text>,
    /// Deprecated upstream; unique when set.
    external_user_id: Option<Text>,
}

#[derive(Object, Debug)]
struct UserUpdate {
    first_name: MaybeUndefined<Text>,
    last_name: MaybeUndefined<Text>,
    email: MaybeUndefined<Text>,
    external_user_id: MaybeUndefined<Text>,
}

#[derive(Object)]
struct UserPage {
    items: Vec<UserRead>,
    total: i64,
    page: i64,
    limit: i64,
    pages: i64,
    has_next: bool,
    has_prev: bool,
}

#[derive(Enum, Clone, Copy, PartialEq)]
#[oai(rename_all = "snake_case")]
enum SortBy {
    CreatedAt,
    Email,
    FirstName,
    LastName,
    LastSyncedAt,
}

#[derive(Enum, Clone, Copy, PartialEq)]
#[oai(rename_all = "lowercase")]
pub(crate) enum SortOrder {
    Asc,
    Desc,
}

#[derive(ApiResponse)]
enum Created {
    #[oai(status = 201)]
    Ok(Json<UserRead>),
}

const COLUMNS: &str = "id, created_at, first_name, last_name, email, external_user_id";

/// The list's connection summary per user (the contract fills these in the list only).
const CONNECTION_COLUMNS: &str = "\
    (SELECT max(c.last_synced_at) FROM connections c WHERE c.user_id = users.id) AS last_synced_at, \
    (SELECT c.provider FROM connections c WHERE c.user_id = users.id AND c.last_synced_at IS NOT NULL \
       ORDER BY c.last_synced_at DESC LIMIT 1) AS last_synced_provider, \
    EXISTS (SELECT 1 FROM connections c WHERE c.user_id = users.id AND c.status = 'active') AS has_active_connection";

fn read(row: &tokio_postgres::Row) -> UserRead {
    UserRead {
        id: row.get(0),
        created_at: row.get(1),
        first_name: row.get(2),
        last_name: row.get(3),
        email: row.get(4),
        external_user_id: row.get(5),
        last_synced_at: None,
        last_synced_provider: None,
        has_active_connection: false,
    }
}

/// A row of `COLUMNS, CONNECTION_COLUMNS`: the user with its connection summary.
fn read_full(row: &tokio_postgres::Row) -> UserRead {
    UserRead {
        last_synced_at: row.get(6),
        last_synced_provider: row.get(7),
        has_active_connection: row.get(8),
        ..read(row)
    }
}

/// The user `id` with its connection summary, as the list shows it (upstream leaves the
/// summary empty outside the list; one user read two ways must not disagree), or the 404.
pub async fn load_full(state: &AppState, id: Uuid) -> Result<UserRead, ApiError> {
    let row = state
        .pool
        .get()
        .await?
        .query_opt(
            &format!("SELECT {COLUMNS}, {CONNECTION_COLUMNS} FROM users WHERE id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(read_full).ok_or_else(|| not_found(id))
}

pub fn not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::not_found(format!("User with ID: {id} not found."))
}

/// The user `id` from the read model, or the contract's 404.
pub async fn load(state: &AppState, id: Uuid) -> Result<UserRead, ApiError> {
    let row = state
        .pool
        .get()
        .await?
        .query_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(read).ok_or_else(|| not_found(id))
}

async fn external_id_taken(
    state: &AppState,
    external: &Option<String>,
    except: Option<Uuid>,
) -> Result<bool, ApiError> {
    let Some(external) = external else {
        return Ok(false);
    };
    Ok(state
        .pool
        .get()
        .await?
        .query_opt(
            "SELECT 1 FROM users WHERE external_user_id = $1 AND id IS DISTINCT FROM $2",
            &[external, &except],
        )
        .await?
        .is_some())
}

fn change(v: MaybeUndefined<Text>) -> Option<Option<String>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(s) => Some(clean(Some(s.0))),
    }
}

fn text(v: Option<Text>) -> Option<String> {
    clean(plain(v))
}

pub struct UsersApi;

#[OpenApi(prefix_path = "/api/v1")]
impl UsersApi {
    /// List users (page-based; the contract's old envelope)
    #[oai(path = "/users", method = "get", tag = "Tag::Users")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        #[oai(default = "default_page", validator(minimum(value = "1")))] page: Query<i64>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<i64>,
        #[oai(default = "default_sort_by")] sort_by: Query<SortBy>,
        #[oai(default = "default_sort_order")] sort_order: Query<SortOrder>,
        search: Query<Option<String>>,
        email: Query<Option<String>>,
        external_user_id: Query<Option<String>>,
    ) -> Result<Json<UserPage>, ApiError> {
        let mut filters = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        if let Some(s) = clean(search.0) {
            let escaped = s
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            params.push(Box::new(format!("%{escaped}%")));
            let n = params.len();
            filters.push(format!(
                "(first_name ILIKE ${n} OR last_name ILIKE ${n} OR email ILIKE ${n} OR (coalesce(first_name, '') || ' ' || coalesce(last_name, '')) ILIKE ${n})"
            ));
        }
        if let Some(e) = clean(email.0) {
            params.push(Box::new(e));
            filters.push(format!("lower(email) = lower(${})", params.len()));
        }
        if let Some(x) = clean(external_user_id.0) {
            params.push(Box::new(x));
            filters.push(format!("external_user_id = ${}", params.len()));
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let column = match sort_by.0 {
            SortBy::CreatedAt => "created_at",
            SortBy::LastSyncedAt => "last_synced_at",
            SortBy::Email => "email",
            SortBy::FirstName => "first_name",
            SortBy::LastName => "last_name",
        };
        let dir = if sort_order.0 == SortOrder::Asc {
            "ASC NULLS FIRST"
        } else {
            "DESC NULLS LAST"
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = state.pool.get().await?;
        let total: i64 = client
            .query_one(&format!("SELECT count(*) FROM users {filter}"), &refs)
            .await?
            .get(0);
        let offset = (page.0 - 1).saturating_mul(limit.0);
        let rows = client
            .query(
                &format!(
                    "SELECT * FROM (SELECT {COLUMNS}, {CONNECTION_COLUMNS} FROM users {filter}) u \
                     ORDER BY {column} {dir}, id {dir} LIMIT {} OFFSET {offset}",
                    limit.0
                ),
                &refs,
            )
            .await?;
        let pages = (total + limit.0 - 1) / limit.0;
        Ok(Json(UserPage {
            items: rows.iter().map(read_full).collect(),
            total,
            page: page.0,
            limit: limit.0,
            pages,
            has_next: page.0 < pages,
            has_prev: page.0 > 1,
        }))
    }

    /// Get one user
    #[oai(path = "/users/:user_id", method = "get", tag = "Tag::Users")]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
    ) -> Result<Json<UserRead>, ApiError> {
        Ok(Json(load_full(&state, user_id.0).await?))
    }

    /// Create a user
    #[oai(path = "/users", method = "post", tag = "Tag::Users")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        req: &Request,
        body: Json<UserCreate>,
    ) -> Result<Created, ApiError> {
        let profile = UserProfile {
            first_name: text(body.0.first_name),
            last_name: text(body.0.last_name),
            email: text(body.0.email),
            external_user_id: text(body.0.external_user_id),
        };
        if external_id_taken(&state, &profile.external_user_id, None).await? {
            return Err(ApiError::bad_request(
                "User entity already exists. Details: external_user_id is already in use",
            ));
        }
        let id = Uuid::new_v4();
        let command = UserCommand::Create {
            id,
            profile,
            at: Utc::now(),
        };
        state
            .commands
            .execute::<User>(
                &id.to_string(),
                command,
                &auth.0.actor(request_id(req)),
                Some(id),
                Some("users"),
            )
            .await?;
        Ok(Created::Ok(Json(load(&state, id).await?)))
    }

    /// Change a user's fields (absent fields are kept, `null` clears one)
    #[oai(path = "/users/:user_id", method = "patch", tag = "Tag::Users")]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        user_id: Path<Uuid>,
        body: Json<UserUpdate>,
    ) -> Result<Json<UserRead>, ApiError> {
        let id = user_id.0;
        load(&state, id).await?;
        let changes = UserChanges {
            first_name: change(body.0.first_name),
            last_name: change(body.0.last_name),
            email: change(body.0.email),
            external_user_id: change(body.0.external_user_id),
        };
        if let Some(external) = &changes.external_user_id {
            if external_id_taken(&state, external, Some(id)).await? {
                return Err(ApiError::bad_request(
                    "User entity already exists. Details: external_user_id is already in use",
                ));
            }
        }
        state
            .commands
            .execute::<User>(
                &id.to_string(),
                UserCommand::Update {
                    changes,
                    at: Utc::now(),
                },
                &actor(&auth, req),
                Some(id),
                Some("users"),
            )
            .await?;
        Ok(Json(load_full(&state, id).await?))
    }

    /// Delete a user (the history keeps the record of it)
    #[oai(path = "/users/:user_id", method = "delete", tag = "Tag::Users")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        user_id: Path<Uuid>,
    ) -> Result<Json<UserRead>, ApiError> {
        let id = user_id.0;
        let user = load_full(&state, id).await?;
        state
            .commands
            .execute::<User>(
                &id.to_string(),
                UserCommand::Delete { at: Utc::now() },
                &actor(&auth, req),
                Some(id),
                Some("users"),
            )
            .await?;
        Ok(Json(user))
    }
}

fn actor(auth: &DeveloperAuth, req: &Request) -> crate::store::Actor {
    Principal::Developer(auth.0).actor(request_id(req))
}

fn default_page() -> i64 {
    1
}
fn default_limit() -> i64 {
    20
}
fn default_sort_by() -> SortBy {
    SortBy::CreatedAt
}
fn default_sort_order() -> SortOrder {
    SortOrder::Desc
}
