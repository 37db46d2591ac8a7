//! The `workouts` read model. A record that was deleted stays hidden when it is imported again.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::records::{DataEvent, RecordKind};

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Workouts;

#[async_trait]
impl Projection for Workouts {
    fn name(&self) -> &'static str {
        "workouts"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["WorkoutsRecorded", "RecordDeleted", "ProviderDataDeleted"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE workouts").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries {
            match decode(entry)? {
                DataEvent::RecordDeleted {
                    kind: RecordKind::Workout,
                    record_id,
                    user_id,
                } => {
                    // The upsert below never touches `deleted`, so a re-import stays hidden.
                    tx.execute(
                        "UPDATE workouts SET deleted = true WHERE id = $1 AND user_id = $2",
                        &[&record_id, &user_id],
                    )
                    .await?;
                }
                // Disconnect with data deletion: the provider's records go (a reconnect may
                // bring them back).
                DataEvent::ProviderDataDeleted {
                    data_source_ids, ..
                } => {
                    tx.execute(
                        "DELETE FROM workouts WHERE data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                }
                DataEvent::WorkoutsRecorded { user_id, workouts } => {
                    for w in workouts {
                        let stats = serde_json::to_value(&w.stats).unwrap_or_default();
                        let metadata = serde_json::to_value(&w.metadata).unwrap_or_default();
                        let segments = serde_json::to_value(&w.laps).unwrap_or_default();
                        // One workout can be told in parts with the same id (Garmin sends the
                        // activity summary and, later or earlier, its FIT file): stats and
                        // metadata merge key by key (the newer value wins) and laps stay
                        // unless the newer record brings some, so the order of arrival does
                        // not lose what either part said.
                        tx.execute(
                    "INSERT INTO workouts (id, user_id, data_source_id, type, start_time, end_time, zone_offset, duration_s, stats, metadata, segments) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type, zone_offset = EXCLUDED.zone_offset, \
                       duration_s = EXCLUDED.duration_s, stats = workouts.stats || EXCLUDED.stats, \
                       metadata = workouts.metadata || EXCLUDED.metadata, \
                       segments = CASE WHEN jsonb_array_length(EXCLUDED.segments) > 0 THEN EXCLUDED.segments ELSE workouts.segments END",
                    &[&w.id, &user_id, &w.data_source_id, &w.workout_type, &w.start, &w.end, &w.zone_offset, &w.duration_s, &stats, &metadata, &segments],
                )
                .await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
