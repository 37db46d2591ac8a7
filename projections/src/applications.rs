//! The `applications` read model: live SDK applications, with the hash of their secret for
//! checking credentials.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::application::ApplicationEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Applications;

#[async_trait]
impl Projection for Applications {
    fn name(&self) -> &'static str {
        "applications"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "ApplicationCreated",
            "ApplicationSecretRotated",
            "ApplicationDeleted",
        ]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE applications").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| e.aggregate_type == "Application") {
            let id: uuid::Uuid = entry.aggregate_id.parse().unwrap_or_default();
            match decode::<ApplicationEvent>(entry)? {
                ApplicationEvent::ApplicationCreated {
                    id,
                    app_id,
                    name,
                    secret_hash,
                    developer_id,
                    at,
                } => {
                    tx.execute(
                        "INSERT INTO applications (id, app_id, name, secret_hash, developer_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
                        &[&id, &app_id, &name, &secret_hash, &developer_id, &at],
                    )
                    .await?;
                }
                ApplicationEvent::ApplicationSecretRotated { secret_hash, at } => {
                    tx.execute(
                        "UPDATE applications SET secret_hash = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &secret_hash, &at],
                    )
                    .await?;
                }
                ApplicationEvent::ApplicationDeleted { .. } => {
                    tx.execute("DELETE FROM applications WHERE id = $1", &[&id])
                        .await?;
                }
            }
        }
        Ok(())
    }
}
