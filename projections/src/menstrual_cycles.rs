//! The `menstrual_cycles` read model: cycles from Apple flow records and Garmin's cycle
//! summaries. A cycle's id is stable per source and start date, so an import or push of the
//! same cycle updates it; a deleted cycle stays hidden when it arrives again.

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
        &[
            "MenstrualCyclesRecorded",
            "MenstrualCyclesDerived",
            "RecordDeleted",
            "ProviderDataDeleted",
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["menstrual_cycles"]
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
            match decode(entry)? {
                DataEvent::MenstrualCyclesRecorded { user_id, cycles } => {
                    for c in cycles {
                        let details = serde_json::to_value(&c.details).unwrap_or_default();
                        // `deleted` is never touched here: a re-import stays hidden.
                        tx.execute(
                            "INSERT INTO menstrual_cycles (id, user_id, data_source_id, start_time, end_time, zone_offset, details) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7) \
                             ON CONFLICT (id) DO UPDATE SET start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time, \
                               zone_offset = EXCLUDED.zone_offset, details = EXCLUDED.details",
                            &[&c.id, &user_id, &c.data_source_id, &c.start, &c.end, &c.zone_offset, &details],
                        )
                        .await?;
                    }
                }
                // A newer derivation replaces the source's cycles it spans; rows a user
                // deleted stay (hidden), so the delete keeps holding.
                DataEvent::MenstrualCyclesDerived {
                    user_id,
                    data_source_id,
                    from,
                    to,
                    ids,
                } => {
                    tx.execute(
                        "DELETE FROM menstrual_cycles WHERE user_id = $1 AND data_source_id = $2 \
                         AND start_time BETWEEN $3 AND $4 AND NOT deleted AND id <> ALL($5)",
                        &[&user_id, &data_source_id, &from, &to, &ids],
                    )
                    .await?;
                }
                DataEvent::RecordDeleted {
                    kind: RecordKind::MenstrualCycle,
                    record_id,
                    user_id,
                } => {
                    tx.execute(
                        "UPDATE menstrual_cycles SET deleted = true WHERE id = $1 AND user_id = $2",
                        &[&record_id, &user_id],
                    )
                    .await?;
                }
                // Disconnect with data deletion: the provider's cycles go.
                DataEvent::ProviderDataDeleted {
                    data_source_ids, ..
                } => {
                    tx.execute(
                        "DELETE FROM menstrual_cycles WHERE data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
