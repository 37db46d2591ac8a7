//! The `sleep_sessions` read model, with minutes per stage from the stage timeline.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::records::{DataEvent, RecordKind, SleepSessionRecord};

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct SleepSessions;

/// Minutes per stage: (awake, light, deep, rem, asleep in total).
fn stage_minutes(s: &SleepSessionRecord) -> (f64, f64, f64, f64, f64) {
    let mut m = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in &s.stages {
        let minutes = (i.end - i.start).num_seconds() as f64 / 60.0;
        match i.stage.as_str() {
            "awake" => m.0 += minutes,
            "light" => m.1 += minutes,
            "deep" => m.2 += minutes,
            "rem" => m.3 += minutes,
            _ => {}
        }
        if matches!(i.stage.as_str(), "light" | "deep" | "rem" | "sleeping") {
            m.4 += minutes;
        }
    }
    m
}

#[async_trait]
impl Projection for SleepSessions {
    fn name(&self) -> &'static str {
        "sleep_sessions"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "SleepSessionsRecorded",
            "RecordDeleted",
            "ProviderDataDeleted",
        ]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE sleep_sessions").await?;
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
                    kind: RecordKind::Sleep,
                    record_id,
                    user_id,
                } => {
                    // The upsert below never touches `deleted`, so a re-import stays hidden.
                    tx.execute(
                        "UPDATE sleep_sessions SET deleted = true WHERE id = $1 AND user_id = $2",
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
                        "DELETE FROM sleep_sessions WHERE data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                }
                DataEvent::SleepSessionsRecorded { user_id, sessions } => {
                    for s in sessions {
                        let (awake, light, deep, rem, asleep) = stage_minutes(&s);
                        let in_bed = (s.end - s.start).num_seconds() as f64 / 60.0;
                        let stages = serde_json::to_value(&s.stages).unwrap_or_default();
                        tx.execute(
                    "INSERT INTO sleep_sessions (id, user_id, data_source_id, start_time, end_time, zone_offset, is_nap, \
                       awake_minutes, light_minutes, deep_minutes, rem_minutes, asleep_minutes, in_bed_minutes, stages) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (id) DO UPDATE SET end_time = EXCLUDED.end_time, zone_offset = EXCLUDED.zone_offset, \
                       is_nap = EXCLUDED.is_nap, awake_minutes = EXCLUDED.awake_minutes, light_minutes = EXCLUDED.light_minutes, \
                       deep_minutes = EXCLUDED.deep_minutes, rem_minutes = EXCLUDED.rem_minutes, \
                       asleep_minutes = EXCLUDED.asleep_minutes, in_bed_minutes = EXCLUDED.in_bed_minutes, stages = EXCLUDED.stages",
                    &[&s.id, &user_id, &s.data_source_id, &s.start, &s.end, &s.zone_offset, &s.is_nap,
                      &awake, &light, &deep, &rem, &asleep, &in_bed, &stages],
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
