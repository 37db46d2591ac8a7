//! The `webhook_endpoints` read model: integrators' destinations with their sealed secrets
//! (ciphertext only), for the management API, the outbox's fan-out and the delivery engine.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::webhook_endpoint::{WebhookEndpointEvent, EVENT_TYPES};

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct WebhookEndpoints;

#[async_trait]
impl Projection for WebhookEndpoints {
    fn name(&self) -> &'static str {
        "webhook_endpoints"
    }

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE webhook_endpoints").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        use WebhookEndpointEvent as E;
        for entry in entries
            .iter()
            .filter(|e| e.aggregate_type == "WebhookEndpoint")
        {
            let id: uuid::Uuid = entry.aggregate_id.parse().unwrap_or_default();
            match decode::<WebhookEndpointEvent>(entry)? {
                E::WebhookEndpointCreated {
                    url,
                    description,
                    user_id,
                    filter_types,
                    sealed_secret,
                    at,
                    ..
                } => {
                    tx.execute(
                        "INSERT INTO webhook_endpoints (id, url, description, user_id, filter_types, secret, created_at, created_position) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                        &[&id, &url, &description, &user_id, &filter_types, &sealed_secret, &at, &entry.position()],
                    )
                    .await?;
                }
                E::WebhookEndpointUpdated {
                    url,
                    description,
                    user_id,
                    filter_types,
                    ..
                } => {
                    tx.execute(
                        "UPDATE webhook_endpoints SET url = $2, description = $3, user_id = $4, filter_types = $5, \
                           disabled = false, disabled_reason = NULL WHERE id = $1",
                        &[&id, &url, &description, &user_id, &filter_types],
                    )
                    .await?;
                }
                E::WebhookSecretRotated {
                    sealed_secret,
                    previous_valid_until,
                    ..
                } => {
                    tx.execute(
                        "UPDATE webhook_endpoints SET previous_secret = secret, previous_valid_until = $3, secret = $2 \
                         WHERE id = $1",
                        &[&id, &sealed_secret, &previous_valid_until],
                    )
                    .await?;
                }
                E::WebhookEndpointDisabled { reason, .. } => {
                    tx.execute(
                        "UPDATE webhook_endpoints SET disabled = true, disabled_reason = $2 WHERE id = $1",
                        &[&id, &reason],
                    )
                    .await?;
                }
                E::WebhookEndpointDeleted { .. } => {
                    tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id])
                        .await?;
                }
            }
        }
        Ok(())
    }
}
