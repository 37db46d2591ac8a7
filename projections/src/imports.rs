//! The `imports` read model: each import's status, counts and error.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use uuid::Uuid;
use wearhouse_domain::import::ImportEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Imports;

#[async_trait]
impl Projection for Imports {
    fn name(&self) -> &'static str {
        "imports"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "RawPayloadReceived",
            "ImportStarted",
            "ImportCompleted",
            "ImportFailed",
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["imports"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE imports").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| e.aggregate_type == "Import") {
            let id: Uuid = entry.aggregate_id.parse().unwrap_or_default();
            match decode::<ImportEvent>(entry)? {
                ImportEvent::RawPayloadReceived {
                    id,
                    user_id,
                    filename,
                    raw,
                    at,
                } => {
                    tx.execute(
                        "INSERT INTO imports (id, user_id, status, filename, sha256, size, created_at, updated_at) \
                         VALUES ($1, $2, 'received', $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
                        &[&id, &user_id, &filename, &raw.sha256, &raw.size, &at],
                    )
                    .await?;
                }
                ImportEvent::ImportStarted { at } => {
                    tx.execute(
                        "UPDATE imports SET status = 'processing', updated_at = $2 WHERE id = $1",
                        &[&id, &at],
                    )
                    .await?;
                }
                ImportEvent::ImportCompleted {
                    counts,
                    duplicate_of,
                    at,
                } => {
                    let mut counts = serde_json::to_value(&counts).unwrap_or_default();
                    if let Some(d) = duplicate_of {
                        counts["duplicate_of"] = serde_json::Value::String(d.to_string());
                    }
                    tx.execute(
                        "UPDATE imports SET status = 'completed', counts = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &counts, &at],
                    )
                    .await?;
                }
                ImportEvent::ImportFailed { error, at, .. } => {
                    tx.execute(
                        "UPDATE imports SET status = 'failed', error = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &error, &at],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
