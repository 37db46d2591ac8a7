//! `/api/v1/oauth`: sending a user to a provider's consent page and taking them back. Unlike
//! upstream, starting an authorization needs a credential by default: otherwise anyone could
//! link any user's id to their own provider account. `WEARHOUSE_OAUTH_PUBLIC_AUTHORIZE=true`
//! restores the contract's public behaviour.

use chrono::Utc;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use tracing::warn;
use uuid::Uuid;
use wearhouse_domain::connection::{connection_id, Connection, ConnectionCommand};

use wearhouse_domain::provider_setting::{
    ProviderSetting as ProviderSettingAggregate, ProviderSettingCommand, SettingChange,
};

use super::{request_id, users, ApiError, AppState};
use crate::auth::{DeveloperAuth, MaybeCredential};
use crate::crypto::connection_context;
use crate::ingest::sdk::Platform;
use crate::providers::oauth;
use crate::services::connections::{CallbackError, CallbackParams, Connections};

#[derive(Tags)]
enum Tag {
    /// Connecting users to cloud providers
    Oauth,
}

#[derive(Object)]
struct AuthorizationUrl {
    authorization_url: String,
    state: String,
}

#[derive(Object)]
struct OAuthResult {
    success: bool,
    message: String,
    #[oai(skip_serializing_if_is_none)]
    user_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    provider: Option<String>,
}

impl ProviderSetting {
    pub fn provider(&self) -> &str {
        &self.provider
    }
    pub fn live_sync_mode(&self) -> Option<&str> {
        self.live_sync_mode.as_deref()
    }
}

#[derive(Object, Clone)]
pub struct ProviderSetting {
    provider: String,
    name: String,
    has_cloud_api: bool,
    is_enabled: bool,
    icon_url: Option<String>,
    live_sync_mode: Option<String>,
    live_sync_configurable: bool,
    data_granularity: Option<String>,
}

#[derive(ApiResponse)]
enum Redirect {
    #[oai(status = 303)]
    SeeOther(#[oai(header = "Location")] String),
}

pub struct OAuthApi;

fn callback_url(state: &AppState, provider: &str) -> String {
    format!(
        "{}/api/v1/oauth/{provider}/callback",
        state.config.public_url()
    )
}

fn error_redirect(state: &AppState, message: &str) -> Redirect {
    let mut url = reqwest::Url::parse(&format!("{}/api/v1/oauth/error", state.config.public_url()))
        .expect("public URL is absolute");
    url.query_pairs_mut().append_pair("message", message);
    Redirect::SeeOther(url.to_string())
}

/// The integrator's `redirect_uri` with the outcome appended (`success`, `provider`, `user_id`,
/// and on failure `error` and `message`), replacing any of those keys it already carried.
fn app_redirect(target: &str, outcome: &[(&str, &str)]) -> Option<Redirect> {
    let mut url = reqwest::Url::parse(target).ok()?;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| !outcome.iter().any(|(o, _)| o == k))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .extend_pairs(outcome);
    Some(Redirect::SeeOther(url.to_string()))
}

/// A failure once the state is known: to the integrator's `redirect_uri` when it gave one (so
/// the app learns the outcome), else to our error page.
fn failure_redirect(
    state: &AppState,
    stored_redirect: Option<&str>,
    provider: &str,
    user_id: Uuid,
    error: &str,
    message: &str,
) -> Redirect {
    let user = user_id.to_string();
    stored_redirect
        .and_then(|r| {
            app_redirect(
                r,
                &[
                    ("success", "false"),
                    ("provider", provider),
                    ("user_id", &user),
                    ("error", error),
                    ("message", message),
                ],
            )
        })
        .unwrap_or_else(|| error_redirect(state, message))
}

/// Where a failed callback sends the user: before its state is known, our error page; after,
/// the integrator's app when it gave a redirect. Our own failures are errors.
fn callback_failure(state: &AppState, e: CallbackError) -> Result<Redirect, ApiError> {
    use CallbackError as C;
    match &e {
        C::Pool(_) | C::Db(_) | C::Verifier(_) => {
            Err(super::error::internal_api(super::error::error_chain(&e)))
        }
        C::UnknownProvider | C::MissingState | C::InvalidState | C::StateUsed => {
            Ok(error_redirect(state, &e.to_string()))
        }
        C::Denied { consent, .. }
        | C::MissingCode(consent)
        | C::Exchange { consent, .. }
        | C::Record { consent, .. } => {
            if let C::Exchange { source, .. } = &e {
                let error = super::error::error_chain(source);
                warn!(provider = consent.provider, %error, "code exchange failed");
            }
            Ok(failure_redirect(
                state,
                consent.redirect_uri.as_deref(),
                consent.provider,
                consent.user_id,
                e.code(),
                &e.to_string(),
            ))
        }
    }
}

#[OpenApi(prefix_path = "/api/v1")]
impl OAuthApi {
    /// Start connecting a user to a provider: returns the consent page URL
    #[oai(
        path = "/oauth/:provider/authorize",
        method = "get",
        tag = "Tag::Oauth"
    )]
    async fn authorize(
        &self,
        state: Data<&AppState>,
        auth: MaybeCredential,
        req: &Request,
        provider: Path<String>,
        user_id: Query<Uuid>,
        redirect_uri: Query<Option<String>>,
    ) -> Result<Json<AuthorizationUrl>, ApiError> {
        let presented = req.headers().contains_key(crate::auth::API_KEY_HEADER)
            || req
                .headers()
                .contains_key(poem::http::header::AUTHORIZATION);
        let actor = match auth.0 {
            Ok(a) => a.actor(request_id(req)),
            // Public mode admits callers without a credential; one that is presented must
            // still be valid.
            Err(_) if state.config.oauth_public_authorize && !presented => crate::store::Actor {
                kind: "anonymous",
                id: "oauth-authorize".into(),
                request_id: request_id(req),
            },
            Err(e) => return Err(ApiError::unauthorized(e.to_string())),
        };
        let (p, endpoints) = state.providers.registry.get(&provider.0).ok_or_else(|| {
            ApiError::bad_request(format!("Provider {} does not support OAuth", provider.0))
        })?;
        users::load(&state, user_id.0).await?;
        let enabled = settings(&state)
            .await?
            .iter()
            .any(|s| s.provider == p.name() && s.is_enabled);
        if !enabled {
            return Err(ApiError::bad_request(format!(
                "Provider {} is disabled",
                p.name()
            )));
        }
        if let Some(r) = &redirect_uri.0 {
            if reqwest::Url::parse(r).is_err() {
                return Err(ApiError::bad_request(
                    "redirect_uri must be an absolute URL",
                ));
            }
        }
        let st = oauth::random_token();
        let verifier = p.oauth().pkce.then(oauth::random_token);
        let url = oauth::authorize_url(
            &p.oauth(),
            &endpoints,
            &callback_url(&state, p.name()),
            &st,
            verifier.as_deref(),
        )
        .map_err(super::error::internal_api)?;
        let stream = connection_id(user_id.0, p.name());
        let command = ConnectionCommand::StartAuthorization {
            user_id: user_id.0,
            provider: p.name().into(),
            state_hash: oauth::state_hash(&st),
            sealed_pkce_verifier: verifier.map(|v| {
                state
                    .providers
                    .sealer
                    .seal(&v, &connection_context(&stream, "pkce_verifier"))
            }),
            redirect_uri: redirect_uri.0,
            at: Utc::now(),
        };
        state
            .commands
            .execute::<Connection>(
                &stream,
                command,
                &actor,
                Some(user_id.0),
                Some("connections"),
            )
            .await?;
        Ok(Json(AuthorizationUrl {
            authorization_url: url,
            state: st,
        }))
    }

    /// Where the provider sends the user back after consent
    #[oai(path = "/oauth/:provider/callback", method = "get", tag = "Tag::Oauth")]
    async fn callback(
        &self,
        state: Data<&AppState>,
        provider: Path<String>,
        code: Query<Option<String>>,
        #[oai(name = "state")] oauth_state: Query<Option<String>>,
        error: Query<Option<String>>,
        error_description: Query<Option<String>>,
    ) -> Result<Redirect, ApiError> {
        let params = CallbackParams {
            callback_url: callback_url(&state, &provider.0),
            provider: provider.0,
            code: code.0,
            state: oauth_state.0,
            error: error.0,
            error_description: error_description.0,
        };
        let connections = Connections::new(
            state.providers.clone(),
            state.commands.clone(),
            state.syncs.clone(),
        );
        let consent = match connections.callback(params).await {
            Ok(c) => c,
            Err(e) => return callback_failure(&state, e),
        };
        let (p, user_id, stored_redirect) =
            (consent.provider, consent.user_id, consent.redirect_uri);
        let user = user_id.to_string();
        let to_app = stored_redirect.as_deref().and_then(|r| {
            app_redirect(
                r,
                &[("success", "true"), ("provider", p), ("user_id", &user)],
            )
        });
        if let Some(to) = to_app {
            return Ok(to);
        }
        let mut url = reqwest::Url::parse(&format!(
            "{}/api/v1/oauth/success",
            state.config.public_url()
        ))
        .expect("public URL is absolute");
        url.query_pairs_mut()
            .append_pair("provider", p)
            .append_pair("user_id", &user);
        Ok(Redirect::SeeOther(url.to_string()))
    }

    /// Landing page after a successful connection
    #[oai(path = "/oauth/success", method = "get", tag = "Tag::Oauth")]
    async fn success(&self, provider: Query<String>, user_id: Query<Uuid>) -> Json<OAuthResult> {
        Json(OAuthResult {
            success: true,
            message: format!("Successfully connected to {}", provider.0),
            user_id: Some(user_id.0),
            provider: Some(provider.0),
        })
    }

    /// Landing page after a failed connection
    #[oai(path = "/oauth/error", method = "get", tag = "Tag::Oauth")]
    async fn error(&self, message: Query<Option<String>>) -> Json<OAuthResult> {
        Json(OAuthResult {
            success: false,
            message: message
                .0
                .unwrap_or_else(|| "OAuth authorization failed".into()),
            user_id: None,
            provider: None,
        })
    }

    /// Providers and their settings
    #[oai(path = "/oauth/providers", method = "get", tag = "Tag::Oauth")]
    async fn providers(
        &self,
        state: Data<&AppState>,
        #[oai(default)] enabled_only: Query<bool>,
        #[oai(default)] cloud_only: Query<bool>,
    ) -> Result<Json<Vec<ProviderSetting>>, ApiError> {
        let out = settings(&state)
            .await?
            .into_iter()
            .filter(|s| !enabled_only.0 || s.is_enabled)
            .filter(|s| !cloud_only.0 || s.has_cloud_api)
            .collect();
        Ok(Json(out))
    }

    /// Change one provider's settings
    #[oai(
        path = "/oauth/providers/:provider",
        method = "put",
        tag = "Tag::Oauth"
    )]
    async fn update_provider(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        provider: Path<String>,
        body: Json<ProviderSettingUpdate>,
    ) -> Result<Json<ProviderSetting>, ApiError> {
        if body.0.live_sync_mode.is_null() {
            return Err(ApiError::bad_request("live_sync_mode cannot be null"));
        }
        let change = SettingChange {
            is_enabled: body.0.is_enabled,
            live_sync_mode: body.0.live_sync_mode.take(),
            data_granularity: body.0.data_granularity,
        };
        change_setting(&state, &auth, req, &provider.0, change).await?;
        settings(&state)
            .await?
            .into_iter()
            .find(|s| s.provider == provider.0)
            .map(Json)
            .ok_or_else(|| ApiError::internal("Internal server error"))
    }

    /// Enable or disable several providers
    #[oai(path = "/oauth/providers", method = "put", tag = "Tag::Oauth")]
    async fn update_providers(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        body: Json<BulkUpdate>,
    ) -> Result<Json<Vec<ProviderSetting>>, ApiError> {
        for name in body.0.providers.keys() {
            let sdk = Platform::parse(name).is_some_and(|p| p.name() == name);
            if state.providers.registry.get(name).is_none() && !sdk {
                return Err(ApiError::bad_request(format!("Unknown provider {name}")));
            }
        }
        for (name, enabled) in body.0.providers {
            let change = SettingChange {
                is_enabled: Some(enabled),
                live_sync_mode: None,
                data_granularity: None,
            };
            change_setting(&state, &auth, req, &name, change).await?;
        }
        Ok(Json(settings(&state).await?))
    }
}

#[derive(Object)]
struct ProviderSettingUpdate {
    is_enabled: Option<bool>,
    live_sync_mode: MaybeUndefined<String>,
    data_granularity: Option<String>,
}

#[derive(Object)]
struct BulkUpdate {
    providers: std::collections::BTreeMap<String, bool>,
}

async fn change_setting(
    state: &AppState,
    auth: &DeveloperAuth,
    req: &Request,
    provider: &str,
    change: SettingChange,
) -> Result<(), ApiError> {
    // SDK platforms (data pushed by the mobile SDKs) can be enabled or disabled, not synced.
    let (name, configurable) = match state.providers.registry.get(provider) {
        Some((p, _)) => {
            let c = p.capabilities();
            (
                p.name(),
                c.rest_pull && (c.webhook_stream || c.webhook_ping),
            )
        }
        None => match Platform::parse(provider).filter(|p| p.name() == provider) {
            Some(platform) => (platform.name(), false),
            None => {
                return Err(ApiError::bad_request(format!(
                    "Unknown provider {provider}"
                )))
            }
        },
    };
    let to_webhook = change.live_sync_mode.as_deref() == Some("webhook");
    let command = ProviderSettingCommand::Change {
        provider: name.into(),
        change,
        live_sync_configurable: configurable,
        at: Utc::now(),
    };
    state
        .commands
        .execute::<ProviderSettingAggregate>(
            name,
            command,
            &auth.principal().actor(request_id(req)),
            None,
            Some("provider_settings"),
        )
        .await?;
    if to_webhook {
        // Subscriptions are best effort, as upstream: the setting stands, failures are logged.
        let callback = format!(
            "{}/api/v1/providers/{}/webhooks",
            state.config.public_url(),
            name
        );
        let _ = state.providers.register_webhooks(name, &callback).await;
    }
    Ok(())
}

/// Every provider's settings: the stored choices over each provider's defaults.
pub async fn settings(state: &AppState) -> Result<Vec<ProviderSetting>, ApiError> {
    let rows = state
        .pool
        .get()
        .await?
        .query(
            "SELECT provider, is_enabled, live_sync_mode, data_granularity FROM provider_settings",
            &[],
        )
        .await?;
    let mut out: Vec<ProviderSetting> = state
        .providers
        .registry
        .all()
        .map(|p| {
            let c = p.capabilities();
            let row = rows.iter().find(|r| r.get::<_, String>(0) == p.name());
            let default_mode = if c.rest_pull { "pull" } else { "webhook" };
            ProviderSetting {
                provider: p.name().into(),
                name: p.display_name().into(),
                has_cloud_api: true,
                is_enabled: row.map(|r| r.get(1)).unwrap_or(true),
                icon_url: Some(super::icons::icon_url(&state.config.public_url(), p.name())),
                live_sync_mode: Some(
                    row.and_then(|r| r.get::<_, Option<String>>(2))
                        .unwrap_or_else(|| default_mode.into()),
                ),
                live_sync_configurable: c.rest_pull && (c.webhook_stream || c.webhook_ping),
                data_granularity: row.and_then(|r| r.get(3)),
            }
        })
        .collect();
    // The mobile SDK platforms, listed as upstream lists its SDK-only providers.
    out.extend(Platform::ALL.into_iter().map(|p| {
        let row = rows.iter().find(|r| r.get::<_, String>(0) == p.name());
        ProviderSetting {
            provider: p.name().into(),
            name: p.display_name().into(),
            has_cloud_api: false,
            is_enabled: row.map(|r| r.get(1)).unwrap_or(true),
            icon_url: Some(super::icons::icon_url(&state.config.public_url(), p.name())),
            live_sync_mode: None,
            live_sync_configurable: false,
            data_granularity: row.and_then(|r| r.get(3)),
        }
    }));
    out.sort_by(|a, b| a.provider.cmp(&b.provider));
    Ok(out)
}
