//! Request extractors: `AnyCredential` (developer JWT or API key, the contract's "ApiKeyDep")
//! and `DeveloperAuth` (developer JWT only). They fail with the contract's 401 messages.

use poem::http::StatusCode;
use poem::{FromRequest, Request, RequestBody};
use uuid::Uuid;

use super::{
    sha256_hex, API_KEY_HEADER, MSG_AUTH_REQUIRED, MSG_BAD_API_KEY, MSG_BAD_JWT, MSG_SDK_TOKEN,
};
use crate::api::AppState;

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

fn unauthorized(msg: &str) -> poem::Error {
    poem::Error::from_string(msg, StatusCode::UNAUTHORIZED)
}

fn state(req: &Request) -> poem::Result<&AppState> {
    req.data::<AppState>().ok_or_else(|| {
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
    Developer(Uuid),
    Sdk,
    Invalid,
}

async fn check_jwt(state: &AppState, token: &str) -> poem::Result<JwtOutcome> {
    let Some(claims) = state.jwt.decode(token) else {
        return Ok(JwtOutcome::Invalid);
    };
    if claims.scope.as_deref() == Some("sdk") {
        return Ok(JwtOutcome::Sdk);
    }
    let Ok(id) = claims.sub.parse::<Uuid>() else {
        return Ok(JwtOutcome::Invalid);
    };
    // A token of a developer that no longer exists is not a credential.
    let exists = state
        .db()
        .await?
        .query_opt("SELECT 1 FROM developers WHERE id = $1", &[&id])
        .await
        .map_err(crate::api::internal)?
        .is_some();
    Ok(if exists {
        JwtOutcome::Developer(id)
    } else {
        JwtOutcome::Invalid
    })
}

/// Developer JWT or API key.
pub struct AnyCredential(pub Principal);

impl<'a> FromRequest<'a> for AnyCredential {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = state(req)?;
        // JWT first; an SDK-scoped or invalid JWT falls through to the API key, as upstream.
        if let Some(token) = bearer(req) {
            if let JwtOutcome::Developer(id) = check_jwt(state, token).await? {
                return Ok(AnyCredential(Principal::Developer(id)));
            }
        }
        let key = req
            .headers()
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok());
        match key {
            None if bearer(req).is_none() => Err(unauthorized(MSG_AUTH_REQUIRED)),
            None => Err(unauthorized(MSG_BAD_API_KEY)),
            Some(key) => {
                let row = state
                    .db()
                    .await?
                    .query_opt(
                        "SELECT id FROM api_keys WHERE key_hash = $1",
                        &[&sha256_hex(key.trim())],
                    )
                    .await
                    .map_err(crate::api::internal)?;
                match row {
                    Some(r) => Ok(AnyCredential(Principal::ApiKey(r.get(0)))),
                    None => Err(unauthorized(MSG_BAD_API_KEY)),
                }
            }
        }
    }
}

/// Developer JWT only.
pub struct DeveloperAuth(pub Uuid);

impl DeveloperAuth {
    pub fn principal(&self) -> Principal {
        Principal::Developer(self.0)
    }
}

impl<'a> FromRequest<'a> for DeveloperAuth {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = state(req)?;
        let Some(token) = bearer(req) else {
            return Err(unauthorized(MSG_BAD_JWT));
        };
        match check_jwt(state, token).await? {
            JwtOutcome::Developer(id) => Ok(DeveloperAuth(id)),
            JwtOutcome::Sdk => Err(unauthorized(MSG_SDK_TOKEN)),
            JwtOutcome::Invalid => Err(unauthorized(MSG_BAD_JWT)),
        }
    }
}
