//! The OAuth 2.0 authorization-code flow shared by every provider: authorization URLs with
//! optional PKCE (S256), code exchange and refresh with client credentials in the body.
//! Errors never carry token values: provider bodies are summarized, not echoed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Endpoints, OAuthSettings};

#[derive(Debug, Clone, PartialEq)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scope: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The token endpoint answered 400/401: the grant is invalid or revoked.
    #[error("the provider refused the grant (HTTP {0})")]
    Refused(u16),
    #[error("the token endpoint answered HTTP {0}")]
    Status(u16),
    #[error("could not reach the provider: {0}")]
    Http(String),
    #[error("the token endpoint answered without an access token")]
    Malformed,
}

/// 32 random bytes, URL-safe: OAuth `state` values and PKCE verifiers.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The S256 challenge of a PKCE verifier (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

pub fn authorize_url(
    settings: &OAuthSettings,
    endpoints: &Endpoints,
    redirect_uri: &str,
    state: &str,
    pkce_verifier: Option<&str>,
) -> String {
    let mut url = reqwest::Url::parse(&endpoints.authorize_url)
        .unwrap_or_else(|_| reqwest::Url::parse("http://invalid.invalid/").expect("static"));
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &endpoints.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        if !settings.scopes.is_empty() {
            q.append_pair("scope", settings.scopes);
        }
        if let Some(v) = pkce_verifier {
            q.append_pair("code_challenge", &pkce_challenge(v))
                .append_pair("code_challenge_method", "S256");
        }
    }
    url.to_string()
}

async fn token_request(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    form: &[(&str, &str)],
) -> Result<TokenSet, OAuthError> {
    let mut all: Vec<(&str, &str)> = form.to_vec();
    all.push(("client_id", &endpoints.client_id));
    all.push(("client_secret", &endpoints.client_secret));
    let resp = http
        .post(&endpoints.token_url)
        .form(&all)
        .send()
        .await
        .map_err(|e| OAuthError::Http(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    if status == 400 || status == 401 {
        return Err(OAuthError::Refused(status));
    }
    if !resp.status().is_success() {
        return Err(OAuthError::Status(status));
    }
    let body: Value = resp.json().await.map_err(|_| OAuthError::Malformed)?;
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or(OAuthError::Malformed)?
        .to_string();
    Ok(TokenSet {
        access_token,
        refresh_token: body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(String::from),
        expires_at: body
            .get("expires_in")
            .and_then(Value::as_i64)
            .map(|s| Utc::now() + Duration::seconds(s)),
        scope: body.get("scope").and_then(Value::as_str).map(String::from),
    })
}

pub async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    code: &str,
    redirect_uri: &str,
    pkce_verifier: Option<&str>,
) -> Result<TokenSet, OAuthError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = pkce_verifier {
        form.push(("code_verifier", v));
    }
    token_request(http, endpoints, &form).await
}

pub async fn refresh(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    refresh_token: &str,
) -> Result<TokenSet, OAuthError> {
    token_request(
        http,
        endpoints,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
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
            client_id: "cid".into(),
            ..Endpoints::default()
        };
        let url = authorize_url(&settings, &ep, "http://me/cb", "st", Some("verifier"));
        let parsed = reqwest::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["redirect_uri"], "http://me/cb");
        assert_eq!(q["state"], "st");
        assert_eq!(q["scope"], "a b");
        assert_eq!(q["code_challenge_method"], "S256");
        // RFC 7636 appendix B's example pair.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_ne!(random_token(), random_token());
    }
}
