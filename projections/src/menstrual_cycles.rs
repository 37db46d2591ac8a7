//! The `menstrual_cycles` read model. No importer produces cycles yet; deletions already apply
//! so the endpoint's contract (hide, keep history) holds once one does.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::records::{DataEvent, RecordKind};

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct MenstrualCycles;

#[async_trait]
impl Projection for MenstrualCycles {
    fn name(&self) -> &'static str {
        "menstrual_cycles"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["RecordDeleted"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE menstrual_cycles").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries {
            if let DataEvent::RecordDeleted {
                kind: RecordKind::MenstrualCycle,
                record_id,
                user_id,
            } = decode(entry)?
            {
                tx.execute(
                    "UPDATE menstrual_cycles SET deleted = true WHERE id = $1 AND user_id = $2",
                    &[&record_id, &user_id],
                )
                .await?;
            }
        }
        Ok(())
    }
}
