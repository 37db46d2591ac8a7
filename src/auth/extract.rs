//! Request extractors: `AnyCredential` (developer JWT or API key, the contract's "ApiKeyDep"),
//! the developer-JWT-only ones, by role: `DeveloperAuth` (admins and developers), `AdminAuth`
//! (the team routes), `AuditAuth` (admins and auditors: the history) and `AccountAuth` (any
//! role: the account's own profile and password); `MaybeDeveloper` (an admin's or developer's
//! JWT if one is sent) and `SdkAuth` (an SDK user token for the path's `user_id`, or an API
//! key: the contract's "SDKAuthDep"). They fail with the contract's 401 messages, or 403 when
//! the account's role does not reach the route (and, for `SdkAuth`, when the token is another
//! user's).
//!
//! All are poem-openapi security schemes, so the OpenAPI document declares on each operation
//! exactly the credentials it takes: `ApiKeyAuth` or `DeveloperBearer` for `AnyCredential`,
//! `DeveloperBearer` alone for `DeveloperAuth`, `ApiKeyAuth` or `SdkBearer` for `SdkAuth`.
//!
//! An SDK token (scope `sdk`) is accepted by `SdkAuth` only: `DeveloperAuth` refuses it with
//! "SDK tokens cannot access this endpoint", `AnyCredential` ignores it and wants an API key.

use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use uuid::Uuid;

use super::Jwt;
use super::{
    sha256_hex, API_KEY_HEADER, MSG_AUTH_REQUIRED, MSG_BAD_API_KEY, MSG_BAD_JWT,
    MSG_SDK_AUTH_REQUIRED, MSG_SDK_TOKEN, MSG_SDK_WRONG_USER, SDK_SCOPE,
};
pub use wearhouse_domain::developer::Role;

/// What the extractors need from the application to check a credential. The API's state
/// implements it and `api::app` registers it as request data (`Arc<dyn CredentialStore>`), so
/// authentication never imports the API.
pub trait CredentialStore: Send + Sync + 'static {
    fn pool(&self) -> &deadpool_postgres::Pool;
    fn jwt(&self) -> &Jwt;
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Developer(Uuid),
    ApiKey(Uuid),
}

impl Principal {
    pub fn actor(&self, request_id: Option<String>) -> crate::store::Actor {
        let (kind, id) = match self {
            Principal::Developer(id) => ("developer", id),
            Principal::ApiKey(id) => ("api_key", id),
        };
        crate::store::Actor {
            kind,
            id: id.to_string(),
            request_id,
        }
    }
}

/// A missing or invalid developer bearer token: the error handler answers it with
/// `WWW-Authenticate: Bearer`, knowing it by this type.
#[derive(Debug, thiserror::Error)]
#[error("{}", MSG_BAD_JWT)]
pub struct BadBearer;

impl poem::error::ResponseError for BadBearer {
    fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }
}

fn unauthorized(msg: &str) -> poem::Error {
    poem::Error::from_string(msg, StatusCode::UNAUTHORIZED)
}

/// Logs an unexpected failure with its cause and answers a generic 500 (the cause can carry
/// internals that callers must not see).
fn internal(e: impl std::fmt::Display) -> poem::Error {
    tracing::error!(error = %e, "internal error");
    poem::Error::from_string("Internal server error", StatusCode::INTERNAL_SERVER_ERROR)
}

async fn db(state: &dyn CredentialStore) -> poem::Result<deadpool_postgres::Object> {
    state.pool().get().await.map_err(internal)
}

fn state(req: &Request) -> poem::Result<&dyn CredentialStore> {
    req.data::<std::sync::Arc<dyn CredentialStore>>()
        .map(|s| s.as_ref())
        .ok_or_else(|| {
            poem::Error::from_string(
                "application state missing",
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        })
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

enum JwtOutcome {
    Developer(Uuid, Role),
    Sdk,
    Invalid,
}

async fn check_jwt(state: &dyn CredentialStore, token: &str) -> poem::Result<JwtOutcome> {
    let Some(claims) = state.jwt().decode(token) else {
        return Ok(JwtOutcome::Invalid);
    };
    if claims.scope.as_deref() == Some(SDK_SCOPE) {
        return Ok(JwtOutcome::Sdk);
    }
    let Ok(id) = claims.sub.parse::<Uuid>() else {
        return Ok(JwtOutcome::Invalid);
    };
    // A token of a developer that no longer exists, or one revoked by signing out, is not a
    // credential.
    let role = db(state)
        .await?
        .query_opt(
            "SELECT role FROM developers WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $2)",
            &[&id, &claims.jti.unwrap_or_default()],
        )
        .await
        .map_err(internal)?
        .map(|r| r.get::<_, String>(0));
    Ok(match role.as_deref().and_then(Role::parse) {
        Some(role) => JwtOutcome::Developer(id, role),
        None => JwtOutcome::Invalid,
    })
}

/// Name of the API-key security scheme in the OpenAPI document.
pub const API_KEY_SCHEME: &str = "ApiKeyAuth";
/// Name of the developer-JWT security scheme in the OpenAPI document.
pub const BEARER_SCHEME: &str = "DeveloperBearer";
/// Name of the SDK-token security scheme in the OpenAPI document.
pub const SDK_BEARER_SCHEME: &str = "SdkBearer";

fn register_schemes(registry: &mut Registry) {
    registry.create_security_scheme(
        API_KEY_SCHEME,
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some(
                "An API key (`sk-…`) created with `POST /api/v1/developer/api-keys`. Operations \
                 that take it also take a developer bearer token.",
            ),
            name: Some(super::API_KEY_HEADER),
            key_in: Some("header"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        BEARER_SCHEME,
        MetaSecurityScheme {
            ty: "http",
            description: Some(
                "A developer access token from `POST /api/v1/auth/login` or \
                 `POST /api/v1/token/refresh`, sent as `Authorization: Bearer <jwt>`.",
            ),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: Some("JWT"),
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        SDK_BEARER_SCHEME,
        MetaSecurityScheme {
            ty: "http",
            description: Some(
                "An SDK user token (scope `sdk`) from `POST /api/v1/users/{user_id}/token` or \
                 `POST /api/v1/invitation-code/redeem`, sent as `Authorization: Bearer <jwt>`. \
                 It reaches only its own user's `/api/v1/sdk/users/{user_id}/…` routes.",
            ),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: Some("JWT"),
            flows: None,
            openid_connect_url: None,
        },
    );
}

/// Developer JWT or API key.
pub struct AnyCredential(pub Principal);

/// The credentials a request presented: its bearer token and API key header.
#[derive(Clone, Debug, Default)]
pub struct Presented {
    pub bearer: Option<String>,
    pub api_key: Option<String>,
}

impl Presented {
    pub fn of(req: &Request) -> Self {
        Presented {
            bearer: bearer(req).map(String::from),
            api_key: req
                .headers()
                .get(API_KEY_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(String::from),
        }
    }
}

/// Whether credentials accepted earlier still are (a long-lived stream re-checks them: a
/// revoked key or signed-out token ends it).
pub async fn credential_still_valid(state: &impl CredentialStore, presented: &Presented) -> bool {
    any_credential(state, presented).await.is_ok()
}

async fn any_credential(
    state: &dyn CredentialStore,
    presented: &Presented,
) -> poem::Result<Principal> {
    // JWT first; an SDK-scoped or invalid JWT falls through to the API key, as upstream.
    if let Some(token) = presented.bearer.as_deref() {
        if let JwtOutcome::Developer(id, role) = check_jwt(state, token).await? {
            if role == Role::Auditor {
                return Err(forbidden(MSG_AUDITOR));
            }
            return Ok(Principal::Developer(id));
        }
    }
    match presented.api_key.as_deref() {
        None if presented.bearer.is_none() => Err(unauthorized(MSG_AUTH_REQUIRED)),
        None => Err(unauthorized(MSG_BAD_API_KEY)),
        Some(key) => {
            let row = db(state)
                .await?
                .query_opt(
                    "SELECT id FROM api_keys WHERE key_hash = $1",
                    &[&sha256_hex(key.trim())],
                )
                .await
                .map_err(internal)?;
            match row {
                Some(r) => Ok(Principal::ApiKey(r.get(0))),
                None => Err(unauthorized(MSG_BAD_API_KEY)),
            }
        }
    }
}

impl<'a> ApiExtractor<'a> for AnyCredential {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    /// Either credential is enough (two requirement objects: OpenAPI's "or").
    fn security_schemes() -> Vec<&'static str> {
        vec![API_KEY_SCHEME, BEARER_SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        MaybeCredential::from_request(req, body, opts)
            .await?
            .0
            .map(AnyCredential)
    }
}

/// Developer JWT or API key, when the operation may also be called without one (the public
/// authorize setting): the outcome of the check is handed to the handler, which decides.
pub struct MaybeCredential(pub poem::Result<Principal>);

impl<'a> ApiExtractor<'a> for MaybeCredential {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    /// Declared as needing a credential: that is the default behaviour.
    fn security_schemes() -> Vec<&'static str> {
        vec![API_KEY_SCHEME, BEARER_SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = state(req)?;
        Ok(MaybeCredential(
            any_credential(state, &Presented::of(req)).await,
        ))
    }
}

/// The account's role does not reach the route.
fn forbidden(msg: &str) -> poem::Error {
    poem::Error::from_string(msg, StatusCode::FORBIDDEN)
}

const MSG_AUDITOR: &str = "Auditor accounts can only read the audit history";
const MSG_ADMIN: &str = "Only admin accounts can manage the team";
const MSG_NOT_AUDIT: &str = "Only admin and auditor accounts can read the audit history";

/// The developer behind a request's bearer token, whatever its role.
async fn developer(req: &Request) -> poem::Result<(Uuid, Role)> {
    let state = state(req)?;
    let Some(token) = bearer(req) else {
        return Err(BadBearer.into());
    };
    match check_jwt(state, token).await? {
        JwtOutcome::Developer(id, role) => Ok((id, role)),
        JwtOutcome::Sdk => Err(unauthorized(MSG_SDK_TOKEN)),
        JwtOutcome::Invalid => Err(BadBearer.into()),
    }
}

/// Developer-JWT extractors that differ only in the roles they let through.
macro_rules! developer_extractor {
    ($(#[$doc:meta])* $name:ident, $allowed:expr, $refusal:expr) => {
        $(#[$doc])*
        pub struct $name(pub Uuid);

        impl $name {
            pub fn principal(&self) -> Principal {
                Principal::Developer(self.0)
            }
        }

        impl<'a> ApiExtractor<'a> for $name {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                register_schemes(registry);
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![BEARER_SCHEME]
            }

            async fn from_request(
                req: &'a Request,
                _body: &mut RequestBody,
                _opts: ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                let (id, role) = developer(req).await?;
                let allowed: &[Role] = $allowed;
                if !allowed.contains(&role) {
                    return Err(forbidden($refusal));
                }
                Ok($name(id))
            }
        }
    };
}

developer_extractor!(
    /// Developer JWT of an admin or developer account.
    DeveloperAuth,
    &[Role::Admin, Role::Developer],
    MSG_AUDITOR
);
developer_extractor!(
    /// Developer JWT of an admin account.
    AdminAuth,
    &[Role::Admin],
    MSG_ADMIN
);
developer_extractor!(
    /// Developer JWT of an admin or auditor account.
    AuditAuth,
    &[Role::Admin, Role::Auditor],
    MSG_NOT_AUDIT
);
developer_extractor!(
    /// Developer JWT of any account (its own profile, password and sign-out).
    AccountAuth,
    &[Role::Admin, Role::Developer, Role::Auditor],
    MSG_AUDITOR
);

/// An admin's or developer's JWT when the request carries a valid one, else nothing (an
/// auditor's counts as none): for operations that take another credential instead (application
/// credentials in the body). Declared as `DeveloperBearer` or no credential at all.
pub struct MaybeDeveloper(pub Option<Uuid>);

impl<'a> ApiExtractor<'a> for MaybeDeveloper {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER_SCHEME]
    }

    fn has_security_fallback() -> bool {
        true
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = state(req)?;
        let Some(token) = bearer(req) else {
            return Ok(MaybeDeveloper(None));
        };
        Ok(MaybeDeveloper(match check_jwt(state, token).await? {
            JwtOutcome::Developer(id, Role::Admin | Role::Developer) => Some(id),
            JwtOutcome::Developer(_, Role::Auditor) | JwtOutcome::Sdk | JwtOutcome::Invalid => None,
        }))
    }
}

/// Who called an SDK route.
#[derive(Debug, Clone, PartialEq)]
pub enum SdkCaller {
    /// An SDK token of this user, issued for `app_id`.
    User { user: Uuid, app_id: String },
    /// An API key: any user's SDK routes, as upstream.
    ApiKey(Uuid),
}

impl SdkCaller {
    pub fn actor(&self, request_id: Option<String>) -> crate::store::Actor {
        match self {
            SdkCaller::User { user, .. } => crate::store::Actor {
                kind: "sdk_user",
                id: user.to_string(),
                request_id,
            },
            SdkCaller::ApiKey(id) => Principal::ApiKey(*id).actor(request_id),
        }
    }
}

/// Why an SDK route refuses a request.
#[derive(Debug, thiserror::Error)]
pub enum SdkDenied {
    /// No SDK token that is valid, and no API key.
    #[error("{}", MSG_SDK_AUTH_REQUIRED)]
    Missing,
    /// An API key that is not one.
    #[error("{}", MSG_BAD_API_KEY)]
    BadApiKey,
    /// A valid SDK token of another user.
    #[error("{}", MSG_SDK_WRONG_USER)]
    OtherUser,
    #[error("credential check failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl poem::error::ResponseError for SdkDenied {
    fn status(&self) -> StatusCode {
        match self {
            SdkDenied::Missing | SdkDenied::BadApiKey => StatusCode::UNAUTHORIZED,
            SdkDenied::OtherUser => StatusCode::FORBIDDEN,
            SdkDenied::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The check behind `SdkAuth`: an SDK token (scope `sdk`)
/// whose user still exists and whose application was not deleted, for `path_user` (else
/// 403); failing that, an API key; else 401. As upstream, a token that does not check out
/// falls through to the API key, and a developer token is no SDK credential.
pub async fn sdk_credential(
    state: &dyn CredentialStore,
    presented: &Presented,
    path_user: &str,
) -> Result<SdkCaller, SdkDenied> {
    fn store(e: impl std::error::Error + Send + Sync + 'static) -> SdkDenied {
        SdkDenied::Store(Box::new(e))
    }
    if let Some(claims) = presented
        .bearer
        .as_deref()
        .and_then(|t| state.jwt().decode(t))
        .filter(|c| c.scope.as_deref() == Some(SDK_SCOPE))
    {
        if let Ok(user) = claims.sub.parse::<Uuid>() {
            let app_id = claims.app_id.unwrap_or_default();
            // A deleted user's tokens, and those of a deleted application, stop working at once.
            let live: bool = state
                .pool()
                .get()
                .await
                .map_err(store)?
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) \
                     AND ($2::text NOT LIKE 'app\\_%' \
                          OR EXISTS (SELECT 1 FROM applications WHERE app_id = $2))",
                    &[&user, &app_id],
                )
                .await
                .map_err(store)?
                .get(0);
            if live {
                let same = path_user.trim().parse::<Uuid>().is_ok_and(|p| p == user);
                return if same {
                    Ok(SdkCaller::User { user, app_id })
                } else {
                    Err(SdkDenied::OtherUser)
                };
            }
        }
    }
    let Some(key) = presented.api_key.as_deref() else {
        return Err(SdkDenied::Missing);
    };
    let row = state
        .pool()
        .get()
        .await
        .map_err(store)?
        .query_opt(
            "SELECT id FROM api_keys WHERE key_hash = $1",
            &[&sha256_hex(key.trim())],
        )
        .await
        .map_err(store)?;
    match row {
        Some(r) => Ok(SdkCaller::ApiKey(r.get(0))),
        None => Err(SdkDenied::BadApiKey),
    }
}

/// An error and its sources, for the log: `outer: cause: root cause`.
fn with_sources(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// An SDK user token for the `user_id` in the path, or an API key (the contract's
/// "SDKAuthDep"). Use it on `/api/v1/sdk/users/:user_id/…` operations: the user is the path
/// segment after `users`.
pub struct SdkAuth(pub SdkCaller);

impl<'a> ApiExtractor<'a> for SdkAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    /// The API key first, as on every other operation that takes one (clients and test tools
    /// that pick the first scheme listed then need no SDK token).
    fn security_schemes() -> Vec<&'static str> {
        vec![API_KEY_SCHEME, SDK_BEARER_SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = state(req)?;
        // poem-openapi renames path variables (`param0`, …), so the user is read from the path
        // itself: the segment after `users`, as in every `/sdk/users/{user_id}/…` route.
        let path_user = req
            .uri()
            .path()
            .split('/')
            .skip_while(|segment| *segment != "users")
            .nth(1)
            .unwrap_or_default();
        match sdk_credential(state, &Presented::of(req), path_user).await {
            Ok(caller) => Ok(SdkAuth(caller)),
            Err(e @ SdkDenied::Store(_)) => Err(internal(with_sources(&e))),
            Err(denied) => Err(denied.into()),
        }
    }
}
