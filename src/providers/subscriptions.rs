//! Managing a provider's app-level webhook subscriptions on an operator's request (the
//! contract's `/providers/{provider}/webhooks/subscriptions…` routes): list, read, point at
//! another URL, delete, register and renew, each a call with the app's credentials.

use serde_json::{json, Value};

use super::engine::{Engine, SyncError};
use super::{AppRequest, Endpoints, SubscriptionProvider};

/// Why a subscription request cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("Provider {0} does not use webhook subscriptions")]
    Unsupported(String),
    #[error("Provider {0} cannot {1} a webhook subscription")]
    Operation(String, &'static str),
    #[error("Webhook subscription {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Provider(#[from] SyncError),
}

impl Engine {
    /// Whether `provider` holds app-level subscriptions at all (no request is made).
    pub fn check_subscriptions(&self, provider: &str) -> Result<(), SubscriptionError> {
        self.subscriber(provider).map(|_| ())
    }

    fn subscriber(
        &self,
        provider: &str,
    ) -> Result<(std::sync::Arc<dyn super::Provider>, Endpoints), SubscriptionError> {
        let (p, endpoints) = self
            .registry
            .get(provider)
            .ok_or_else(|| SubscriptionError::Unsupported(provider.into()))?;
        subs(&*p, provider)?;
        Ok((p, endpoints))
    }

    /// Sends `r` and reads its JSON answer (`null` for an empty one); a 404 is `Ok(None)`.
    async fn app_call(
        &self,
        endpoints: &Endpoints,
        r: &AppRequest,
    ) -> Result<Option<Value>, SyncError> {
        let resp = self.send_app(endpoints, r).await.map_err(|e| {
            if e.is_timeout() {
                SyncError::Timeout
            } else {
                SyncError::Unreachable
            }
        })?;
        let status = resp.status();
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if status.as_u16() == 429 {
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(60);
            return Err(SyncError::RateLimited(after));
        }
        if !status.is_success() {
            return Err(SyncError::Status(status.as_u16()));
        }
        let bytes = resp.bytes().await.map_err(|_| SyncError::Unreachable)?;
        if bytes.is_empty() {
            return Ok(Some(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| SyncError::Malformed("webhook subscriptions".into()))
    }

    /// The provider's subscriptions, as it describes them.
    pub async fn list_subscriptions(
        &self,
        provider: &str,
    ) -> Result<Vec<Value>, SubscriptionError> {
        let (p, endpoints) = self.subscriber(provider)?;
        let subs = subs(&*p, provider)?;
        let body = self
            .app_call(&endpoints, &subs.list_subscriptions(&endpoints))
            .await?
            .unwrap_or(Value::Null);
        Ok(subs.subscription_items(&body))
    }

    /// One subscription; `None` when the provider has no such id.
    pub async fn subscription(
        &self,
        provider: &str,
        id: &str,
    ) -> Result<Option<Value>, SubscriptionError> {
        let (p, endpoints) = self.subscriber(provider)?;
        if let Some(r) = subs(&*p, provider)?.get_subscription(&endpoints, id) {
            return Ok(self.app_call(&endpoints, &r).await?);
        }
        Ok(self
            .list_subscriptions(provider)
            .await?
            .into_iter()
            .find(|s| s.get("id").and_then(Value::as_str) == Some(id)))
    }

    /// Points subscription `id` at `callback_url`; the provider's answer.
    pub async fn update_subscription(
        &self,
        provider: &str,
        id: &str,
        callback_url: &str,
    ) -> Result<Value, SubscriptionError> {
        let (p, endpoints) = self.subscriber(provider)?;
        let r = subs(&*p, provider)?
            .update_subscription(&endpoints, id, callback_url)
            .ok_or_else(|| SubscriptionError::Operation(provider.into(), "update"))?;
        self.app_call(&endpoints, &r)
            .await?
            .ok_or_else(|| SubscriptionError::NotFound(id.into()))
    }

    /// Deletes subscription `id` at the provider.
    pub async fn delete_subscription(
        &self,
        provider: &str,
        id: &str,
    ) -> Result<Value, SubscriptionError> {
        let (p, endpoints) = self.subscriber(provider)?;
        let r = subs(&*p, provider)?
            .delete_subscription(&endpoints, id)
            .ok_or_else(|| SubscriptionError::Operation(provider.into(), "delete"))?;
        self.app_call(&endpoints, &r)
            .await?
            .ok_or_else(|| SubscriptionError::NotFound(id.into()))?;
        Ok(json!({ "id": id, "deleted": true }))
    }
}

fn subs<'a>(
    p: &'a dyn super::Provider,
    provider: &str,
) -> Result<&'a dyn SubscriptionProvider, SubscriptionError> {
    p.as_subscriptions()
        .ok_or_else(|| SubscriptionError::Unsupported(provider.into()))
}
