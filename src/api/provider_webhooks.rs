//! Provider-specific webhook routes of the contract: Garmin's deprecated `/garmin/webhooks/…`,
//! Oura's `/oura/webhooks…` and Strava's `/strava/webhooks…` (and its deprecated
//! `/strava/webhook…`) paths, handled as `/providers/{provider}/webhooks` is, and the
//! management of a provider's app-level webhook subscriptions.

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{Object, OpenApi, Tags};
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::sync::{answer_challenge, receive_webhook, Accepted};
use super::{ApiError, AppState};
use crate::auth::DeveloperAuth;
use crate::providers::subscriptions::SubscriptionError;

#[derive(Tags)]
enum Tag {
    /// Provider webhook paths kept for compatibility, and webhook subscriptions
    ProviderWebhooks,
}

#[derive(Object)]
struct WebhookSubscriptionsResponse {
    /// The subscriptions as the provider describes them.
    subscriptions: Vec<Obj>,
}

#[derive(Object)]
struct WebhookSubscriptionResponse {
    subscription: Option<Obj>,
}

#[derive(Object)]
struct WebhookDeletedResponse {
    deleted: Obj,
}

#[derive(Object)]
struct WebhookUpdatedResponse {
    updated: Obj,
}

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Unsupported(_) | SubscriptionError::Operation(..) => {
                ApiError::bad_request(e.to_string())
            }
            SubscriptionError::NotFound(_) => ApiError::not_found(e.to_string()),
            SubscriptionError::Provider(e) => e.into(),
        }
    }
}

/// A free-form JSON object, as the contract declares these answers.
type Obj = BTreeMap<String, Value>;

fn object(v: Value) -> Obj {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        Value::Null => Obj::new(),
        other => Obj::from([("value".to_string(), other)]),
    }
}

/// The answer of a provider route's health check.
fn health(provider: &str) -> Json<Obj> {
    Json(object(json!({"status": "ok", "provider": provider})))
}

/// Where the provider should deliver: this installation's webhook route for it.
fn own_callback(state: &AppState, provider: &str) -> String {
    format!(
        "{}/api/v1/providers/{provider}/webhooks",
        state.config.public_url()
    )
}

/// A callback URL given by the operator must be an absolute http(s) URL.
fn checked_url(url: &str) -> Result<String, ApiError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(url.into()),
        _ => Err(ApiError::bad_request(
            "callback_url must be an absolute http(s) URL",
        )),
    }
}

async fn list(
    state: &AppState,
    provider: &str,
) -> Result<Json<WebhookSubscriptionsResponse>, ApiError> {
    let subscriptions = state
        .providers
        .list_subscriptions(provider)
        .await?
        .into_iter()
        .map(object)
        .collect();
    Ok(Json(WebhookSubscriptionsResponse { subscriptions }))
}

async fn register(
    state: &AppState,
    provider: &str,
    callback_url: &str,
) -> Result<Json<Obj>, ApiError> {
    state.providers.check_subscriptions(provider)?;
    let registered = state
        .providers
        .register_webhooks(provider, callback_url)
        .await?;
    Ok(Json(object(json!({
        "provider": provider,
        "callback_url": callback_url,
        "registered": registered,
    }))))
}

async fn renew(state: &AppState, provider: &str) -> Result<Json<Obj>, ApiError> {
    state.providers.check_subscriptions(provider)?;
    let callback = own_callback(state, provider);
    let (created, renewed) = state
        .providers
        .maintain_subscriptions(provider, &callback)
        .await?;
    Ok(Json(object(json!({
        "provider": provider,
        "callback_url": callback,
        "created": created,
        "renewed": renewed,
    }))))
}

pub struct ProviderWebhooksApi;

#[OpenApi(prefix_path = "/api/v1")]
impl ProviderWebhooksApi {
    /// Garmin ping notifications (deprecated path of `/providers/garmin/webhooks`)
    #[oai(
        path = "/garmin/webhooks/ping",
        method = "post",
        tag = "Tag::ProviderWebhooks",
        deprecated
    )]
    async fn garmin_ping(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Binary<Vec<u8>>,
    ) -> Result<Json<Accepted>, ApiError> {
        receive_webhook(&state, req, "garmin", &body.0).await
    }

    /// Garmin push notifications (deprecated path of `/providers/garmin/webhooks`)
    #[oai(
        path = "/garmin/webhooks/push",
        method = "post",
        tag = "Tag::ProviderWebhooks",
        deprecated
    )]
    async fn garmin_push(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Binary<Vec<u8>>,
    ) -> Result<Json<Accepted>, ApiError> {
        receive_webhook(&state, req, "garmin", &body.0).await
    }

    /// Oura's verification challenge of the webhook URL
    #[oai(path = "/oura/webhooks", method = "get", tag = "Tag::ProviderWebhooks")]
    async fn oura_challenge(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<Json<Value>, ApiError> {
        answer_challenge(&state, req, "oura")
    }

    /// Oura webhook notifications
    #[oai(
        path = "/oura/webhooks",
        method = "post",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn oura_webhook(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Binary<Vec<u8>>,
    ) -> Result<Json<Accepted>, ApiError> {
        receive_webhook(&state, req, "oura", &body.0).await
    }

    /// Whether the Oura webhook route is up
    #[oai(
        path = "/oura/webhooks/health",
        method = "get",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn oura_health(&self) -> Json<Obj> {
        health("oura")
    }

    /// Strava's subscription verification (`hub.challenge`)
    #[oai(
        path = "/strava/webhooks",
        method = "get",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn strava_challenge(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<Json<Value>, ApiError> {
        answer_challenge(&state, req, "strava")
    }

    /// A Strava event (an activity created, updated or deleted; an athlete's deauthorization)
    #[oai(
        path = "/strava/webhooks",
        method = "post",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn strava_webhook(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Binary<Vec<u8>>,
    ) -> Result<Json<Accepted>, ApiError> {
        receive_webhook(&state, req, "strava", &body.0).await
    }

    /// Whether the Strava callback is served
    #[oai(
        path = "/strava/webhooks/health",
        method = "get",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn strava_health(&self) -> Json<Obj> {
        health("strava")
    }

    /// Strava's subscription verification (deprecated path)
    #[oai(
        path = "/strava/webhook",
        method = "get",
        tag = "Tag::ProviderWebhooks",
        deprecated
    )]
    async fn strava_challenge_deprecated(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<Json<Value>, ApiError> {
        answer_challenge(&state, req, "strava")
    }

    /// A Strava event (deprecated path)
    #[oai(
        path = "/strava/webhook",
        method = "post",
        tag = "Tag::ProviderWebhooks",
        deprecated
    )]
    async fn strava_webhook_deprecated(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Binary<Vec<u8>>,
    ) -> Result<Json<Accepted>, ApiError> {
        receive_webhook(&state, req, "strava", &body.0).await
    }

    /// Whether the Strava callback is served (deprecated path)
    #[oai(
        path = "/strava/webhook/health",
        method = "get",
        tag = "Tag::ProviderWebhooks",
        deprecated
    )]
    async fn strava_health_deprecated(&self) -> Json<Obj> {
        health("strava")
    }

    /// Oura's webhook subscriptions
    #[oai(
        path = "/oura/webhooks/subscriptions",
        method = "get",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn oura_list(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
    ) -> Result<Json<WebhookSubscriptionsResponse>, ApiError> {
        list(&state, "oura").await
    }

    /// Subscribes to every Oura data type Oura can notify about
    ///
    /// `callback_url` defaults to this installation's Oura webhook route.
    #[oai(
        path = "/oura/webhooks/subscriptions",
        method = "post",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn oura_register(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        /// Where Oura should deliver (an absolute http(s) URL).
        callback_url: Query<Option<String>>,
    ) -> Result<Json<Obj>, ApiError> {
        let url = match callback_url.0 {
            Some(u) => checked_url(&u)?,
            None => own_callback(&state, "oura"),
        };
        register(&state, "oura", &url).await
    }

    /// Renews Oura subscriptions about to expire and recreates missing ones
    #[oai(
        path = "/oura/webhooks/subscriptions/renew",
        method = "post",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn oura_renew(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
    ) -> Result<Json<Obj>, ApiError> {
        renew(&state, "oura").await
    }

    /// A provider's webhook subscriptions
    #[oai(
        path = "/providers/:provider/webhooks/subscriptions",
        method = "get",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn list_subscriptions(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        /// A provider with app-level webhook subscriptions.
        provider: Path<String>,
    ) -> Result<Json<WebhookSubscriptionsResponse>, ApiError> {
        list(&state, &provider.0).await
    }

    /// Registers a provider's webhook subscriptions pointing at `callback_url`
    #[oai(
        path = "/providers/:provider/webhooks/subscriptions",
        method = "post",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn register_subscriptions(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        /// A provider with app-level webhook subscriptions.
        provider: Path<String>,
        /// Where the provider should deliver (an absolute http(s) URL).
        callback_url: Query<String>,
    ) -> Result<Json<Obj>, ApiError> {
        let url = checked_url(&callback_url.0)?;
        register(&state, &provider.0, &url).await
    }

    /// Renews a provider's subscriptions about to expire and recreates missing ones
    #[oai(
        path = "/providers/:provider/webhooks/subscriptions/renew",
        method = "post",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn renew_subscriptions(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        /// A provider with app-level webhook subscriptions.
        provider: Path<String>,
    ) -> Result<Json<Obj>, ApiError> {
        renew(&state, &provider.0).await
    }

    /// One webhook subscription of a provider
    #[oai(
        path = "/providers/:provider/webhooks/subscriptions/:subscription_id",
        method = "get",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn get_subscription(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        /// A provider with app-level webhook subscriptions.
        provider: Path<String>,
        /// The provider's id of the subscription (URL-safe characters).
        #[oai(validator(pattern = r"^[A-Za-z0-9._~-]{1,200}$"))]
        subscription_id: Path<String>,
    ) -> Result<Json<WebhookSubscriptionResponse>, ApiError> {
        let subscription = state
            .providers
            .subscription(&provider.0, &subscription_id.0)
            .await?
            .map(object);
        Ok(Json(WebhookSubscriptionResponse { subscription }))
    }

    /// Points a webhook subscription at another URL
    #[oai(
        path = "/providers/:provider/webhooks/subscriptions/:subscription_id",
        method = "put",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn update_subscription(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        /// A provider with app-level webhook subscriptions.
        provider: Path<String>,
        /// The provider's id of the subscription (URL-safe characters).
        #[oai(validator(pattern = r"^[A-Za-z0-9._~-]{1,200}$"))]
        subscription_id: Path<String>,
        /// Where the provider should deliver from now on (an absolute http(s) URL).
        callback_url: Query<String>,
    ) -> Result<Json<WebhookUpdatedResponse>, ApiError> {
        let url = checked_url(&callback_url.0)?;
        let updated = state
            .providers
            .update_subscription(&provider.0, &subscription_id.0, &url)
            .await?;
        Ok(Json(WebhookUpdatedResponse {
            updated: object(updated),
        }))
    }

    /// Deletes a webhook subscription at the provider
    #[oai(
        path = "/providers/:provider/webhooks/subscriptions/:subscription_id",
        method = "delete",
        tag = "Tag::ProviderWebhooks"
    )]
    async fn delete_subscription(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
        /// A provider with app-level webhook subscriptions.
        provider: Path<String>,
        /// The provider's id of the subscription (URL-safe characters).
        #[oai(validator(pattern = r"^[A-Za-z0-9._~-]{1,200}$"))]
        subscription_id: Path<String>,
    ) -> Result<Json<WebhookDeletedResponse>, ApiError> {
        let deleted = state
            .providers
            .delete_subscription(&provider.0, &subscription_id.0)
            .await?;
        Ok(Json(WebhookDeletedResponse {
            deleted: object(deleted),
        }))
    }
}
