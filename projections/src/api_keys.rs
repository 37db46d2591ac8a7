//! The `api_keys` read model: live keys by hash, for authentication and listing.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::api_key::ApiKeyEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct ApiKeys;

#[async_trait]
impl Projection for ApiKeys {
    fn name(&self) -> &'static str {
        "api_keys"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["ApiKeyCreated", "ApiKeyRenamed", "ApiKeyRevoked"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE api_keys").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| e.aggregate_type == "ApiKey") {
            let id: uuid::Uuid = entry.aggregate_id.parse().unwrap_or_default();
            match decode::<ApiKeyEvent>(entry)? {
                ApiKeyEvent::ApiKeyCreated {
                    id,
                    name,
                    key_hash,
                    key_prefix,
                    created_by,
                    at,
                } => {
                    tx.execute(
                        "INSERT INTO api_keys (id, name, key_hash, key_prefix, created_by, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                        &[&id, &name, &key_hash, &key_prefix, &created_by, &at],
                    )
                    .await?;
                }
                ApiKeyEvent::ApiKeyRenamed { name, .. } => {
                    tx.execute("UPDATE api_keys SET name = $2 WHERE id = $1", &[&id, &name])
                        .await?;
                }
                ApiKeyEvent::ApiKeyRevoked { .. } => {
                    tx.execute("DELETE FROM api_keys WHERE id = $1", &[&id])
                        .await?;
                }
            }
        }
        Ok(())
    }
}
