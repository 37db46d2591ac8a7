//! The OAuth 2.0 authorization-code flow shared by every provider, on the `oauth2` crate:
//! authorization URLs with optional PKCE (S256), code exchange and refresh with the client
//! credentials in the body. The crate's HTTP goes through the project's reqwest client (the crate
//! only implements its client trait for an older reqwest), via the small adapter below.
//!
//! Only `invalid_grant` means the grant itself is dead (revoked, expired, already used); every
//! other failure, `invalid_client` included, is ours or the provider's to fix and must not cost
//! the user their connection. Errors never carry token values: provider bodies are summarized
//! by their OAuth error code, never echoed.

use std::future::Future;
use std::pin::Pin;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType};
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{ClientAuth, Endpoints, OAuthSettings};

/// The tokens a token endpoint granted. The secrets are `oauth2`'s secret types, whose `Debug`
/// prints `[redacted]`, so a stray `{:?}` cannot leak them.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scope: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider says the grant (code or refresh token) is invalid, expired or revoked.
    /// The only answer that revokes a connection.
    #[error("the provider refused the grant (invalid_grant)")]
    InvalidGrant,
    /// Any other OAuth error (`invalid_client`, `unauthorized_client`, ...): a configuration
    /// or provider problem; the connection stands and the next attempt retries.
    #[error("the token endpoint refused the request: {}", .0.as_ref())]
    Rejected(BasicErrorResponseType),
    #[error("the token endpoint answered HTTP {0}")]
    Status(u16),
    #[error("could not reach the provider")]
    Http(#[source] reqwest::Error),
    #[error("the token endpoint answered with a malformed response")]
    Malformed,
    #[error("the provider's OAuth endpoints are misconfigured: the {what} is not a valid URL")]
    Config {
        what: &'static str,
        #[source]
        source: oauth2::url::ParseError,
    },
}

impl OAuthError {
    /// Whether the connection's grant is gone for good (so the connection must be revoked).
    pub fn revokes(&self) -> bool {
        matches!(self, OAuthError::InvalidGrant)
    }
}

/// Transport failures of the adapter. 5xx and 429 are reported here with their status rather
/// than handed to `oauth2` as (unparseable) error bodies.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("sending the request")]
    Send(#[source] reqwest::Error),
    #[error("HTTP {0}")]
    Status(u16),
}

/// `oauth2`'s async HTTP client over our reqwest client.
struct Http<'a>(&'a reqwest::Client);

type HttpFuture<'c> =
    Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send + 'c>>;

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = TransportError;
    type Future = HttpFuture<'c>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let resp = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| TransportError::Send(e.without_url()))?;
            let status = resp.status();
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(TransportError::Status(status.as_u16()));
            }
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .map_err(|e| TransportError::Send(e.without_url()))?;
            let mut out = oauth2::http::Response::new(body.to_vec());
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn client(
    endpoints: &Endpoints,
    redirect_uri: Option<&str>,
    auth: ClientAuth,
) -> Result<Client, OAuthError> {
    let bad = |what: &'static str| move |source| OAuthError::Config { what, source };
    let mut c = BasicClient::new(ClientId::new(endpoints.client_id.clone()))
        .set_client_secret(ClientSecret::new(endpoints.client_secret.clone()))
        .set_auth_uri(AuthUrl::new(endpoints.authorize_url.clone()).map_err(bad("authorize URL"))?)
        .set_token_uri(TokenUrl::new(endpoints.token_url.clone()).map_err(bad("token URL"))?)
        // Most providers take the client credentials in the form body; Fitbit in Basic auth.
        .set_auth_type(match auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Body | ClientAuth::None => AuthType::RequestBody,
        });
    if let Some(r) = redirect_uri {
        c = c.set_redirect_uri(RedirectUrl::new(r.to_string()).map_err(bad("callback URL"))?);
    }
    Ok(c)
}

/// 32 random bytes, URL-safe: OAuth `state` values and PKCE verifiers.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

pub use crate::crypto::pkce_challenge;

pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

pub fn authorize_url(
    settings: &OAuthSettings,
    endpoints: &Endpoints,
    redirect_uri: &str,
    state: &str,
    pkce_verifier: Option<&str>,
) -> Result<String, OAuthError> {
    let c = client(endpoints, Some(redirect_uri), ClientAuth::Body)?;
    let mut req = c
        .authorize_url(|| CsrfToken::new(state.to_string()))
        .add_scopes(
            settings
                .scopes
                .split_whitespace()
                .map(|s| Scope::new(s.into())),
        );
    if let Some(v) = pkce_verifier {
        req = req.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(
            &PkceCodeVerifier::new(v.to_string()),
        ));
    }
    Ok(req.url().0.to_string())
}

fn token_set<T: TokenResponse>(t: &T) -> TokenSet {
    TokenSet {
        access_token: t.access_token().clone(),
        refresh_token: t.refresh_token().cloned(),
        expires_at: t
            .expires_in()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() + d),
        scope: t
            .scopes()
            .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
    }
}

fn classify(e: RequestTokenError<TransportError, BasicErrorResponse>) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => OAuthError::InvalidGrant,
            other => OAuthError::Rejected(other.clone()),
        },
        RequestTokenError::Request(TransportError::Status(s)) => OAuthError::Status(s),
        RequestTokenError::Request(TransportError::Send(e)) => OAuthError::Http(e),
        // Parse errors carry the body, which may hold tokens: never shown.
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) => OAuthError::Malformed,
    }
}

pub async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    auth: ClientAuth,
    code: &str,
    redirect_uri: &str,
    pkce_verifier: Option<&str>,
) -> Result<TokenSet, OAuthError> {
    let c = client(endpoints, Some(redirect_uri), auth)?;
    let mut req = c.exchange_code(AuthorizationCode::new(code.to_string()));
    if let Some(v) = pkce_verifier {
        req = req.set_pkce_verifier(PkceCodeVerifier::new(v.to_string()));
    }
    let http = Http(http);
    let t = req.request_async(&http).await.map_err(classify)?;
    Ok(token_set(&t))
}

pub async fn refresh(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    auth: ClientAuth,
    refresh_token: &str,
) -> Result<TokenSet, OAuthError> {
    let c = client(endpoints, None, auth)?;
    let rt = RefreshToken::new(refresh_token.to_string());
    let http = Http(http);
    let t = c
        .exchange_refresh_token(&rt)
        .request_async(&http)
        .await
        .map_err(classify)?;
    Ok(token_set(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_carries_state_scope_and_s256_challenge() {
        let settings = OAuthSettings {
            scopes: "a b",
            pkce: true,
            user_info_path: None,
        };
        let ep = Endpoints {
            authorize_url: "http://sim/oauth/authorize".into(),
            token_url: "http://sim/oauth/token".into(),
            client_id: "cid".into(),
            ..Endpoints::default()
        };
        let verifier = random_token();
        let url = authorize_url(&settings, &ep, "http://me/cb", "st", Some(&verifier)).unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["redirect_uri"], "http://me/cb");
        assert_eq!(q["state"], "st");
        assert_eq!(q["scope"], "a b");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce_challenge(&verifier));
        // RFC 7636 appendix B's example pair.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_ne!(random_token(), random_token());
        // No verifier, no challenge.
        let url = authorize_url(&settings, &ep, "http://me/cb", "st", None).unwrap();
        assert!(!url.contains("code_challenge"));
        // A misconfigured endpoint is an error, not a bogus URL.
        let bad = Endpoints {
            authorize_url: "not a url".into(),
            ..ep
        };
        assert!(matches!(
            authorize_url(&settings, &bad, "http://me/cb", "st", None),
            Err(OAuthError::Config { .. })
        ));
    }

    #[test]
    fn debug_of_a_token_set_shows_no_secret() {
        let t = TokenSet {
            access_token: AccessToken::new("access-secret-123".into()),
            refresh_token: Some(RefreshToken::new("refresh-secret-456".into())),
            expires_at: None,
            scope: Some("daily".into()),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("access-secret-123"), "{shown}");
        assert!(!shown.contains("refresh-secret-456"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        // The typed response oauth2 parses is redacted the same way.
        let parsed: oauth2::basic::BasicTokenResponse = serde_json::from_str(
            r#"{"access_token":"access-secret-123","refresh_token":"refresh-secret-456","token_type":"Bearer","expires_in":60}"#,
        )
        .unwrap();
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("access-secret-123"), "{shown}");
        assert!(!shown.contains("refresh-secret-456"), "{shown}");
        let set = token_set(&parsed);
        assert_eq!(set.access_token.secret(), "access-secret-123");
        assert!(set.expires_at.is_some());
    }

    #[test]
    fn only_invalid_grant_revokes() {
        let server = |code: &str| {
            let body = format!(r#"{{"error":"{code}"}}"#);
            RequestTokenError::ServerResponse(serde_json::from_str(&body).unwrap())
        };
        assert!(classify(server("invalid_grant")).revokes());
        for code in [
            "invalid_client",
            "unauthorized_client",
            "invalid_request",
            "weird",
        ] {
            let e = classify(server(code));
            assert!(!e.revokes(), "{code}");
            assert!(e.to_string().contains(code), "{e}");
        }
        assert!(!classify(RequestTokenError::Request(TransportError::Status(503))).revokes());
        assert!(!classify(RequestTokenError::Other("x".into())).revokes());
    }
}
