//! The `source_priorities` read model: provider and device-type priorities that were set.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::priority::PriorityEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Priorities;

#[async_trait]
impl Projection for Priorities {
    fn name(&self) -> &'static str {
        "source_priorities"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["ProviderPrioritiesSet", "DeviceTypePrioritiesSet"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE source_priorities").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries {
            let (kind, priorities) = match decode(entry)? {
                PriorityEvent::ProviderPrioritiesSet { priorities } => ("provider", priorities),
                PriorityEvent::DeviceTypePrioritiesSet { priorities } => {
                    ("device_type", priorities)
                }
            };
            for (name, priority) in priorities {
                tx.execute(
                    "INSERT INTO source_priorities (kind, name, priority, updated_at, created_at) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (kind, name) DO UPDATE SET priority = EXCLUDED.priority, updated_at = EXCLUDED.updated_at",
                    &[&kind, &name, &priority, &entry.recorded_at],
                )
                .await?;
            }
        }
        Ok(())
    }
}
