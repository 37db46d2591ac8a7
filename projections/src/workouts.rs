//! The `workouts` read model. A record that was deleted stays hidden when it is imported again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use uuid::Uuid;
use wearhouse_domain::records::{DataEvent, RecordKind, WorkoutLap, WorkoutRecord};

use crate::{decode, Latest, LogEntry, Projection, ProjectionError};

pub struct Workouts;

#[async_trait]
impl Projection for Workouts {
    fn name(&self) -> &'static str {
        "workouts"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "WorkoutsRecorded",
            "RecordDeleted",
            "ProviderDataDeleted",
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["workouts"]
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
        // Recorded workouts are written in one statement per run of entries; a delete flushes
        // the run first so it applies after what came before it in the log.
        let mut pending = Latest::default();
        for entry in entries {
            match decode(entry)? {
                DataEvent::RecordDeleted {
                    kind: RecordKind::Workout,
                    record_id,
                    user_id,
                } => {
                    upsert(tx, pending.take()).await?;
                    // The upsert never touches `deleted`, so a re-import stays hidden.
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
                    upsert(tx, pending.take()).await?;
                    tx.execute(
                        "DELETE FROM workouts WHERE data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                }
                DataEvent::WorkoutsRecorded { user_id, workouts } => {
                    for w in workouts {
                        pending.merge(w.id, (user_id, w), |(_, old), (_, new)| {
                            merge_parts(old, new)
                        });
                    }
                }
                _ => {}
            }
        }
        upsert(tx, pending.take()).await
    }
}

/// One workout can be told in parts with the same id (Garmin sends the activity summary and,
/// later or earlier, its FIT file): stats and metadata merge key by key (the newer value
/// wins) and laps stay unless the newer part brings some, so the order of arrival does not
/// lose what either part said. The upsert below does the same against the stored row.
fn merge_parts(old: &mut WorkoutRecord, mut new: WorkoutRecord) {
    let mut stats = std::mem::take(&mut old.stats);
    stats.append(&mut new.stats);
    new.stats = stats;
    let mut metadata = std::mem::take(&mut old.metadata);
    metadata.append(&mut new.metadata);
    new.metadata = metadata;
    if new.laps.is_empty() {
        new.laps = std::mem::take(&mut old.laps);
    }
    *old = new;
}

async fn upsert(
    tx: &Transaction<'_>,
    rows: Vec<(Uuid, WorkoutRecord)>,
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut c = Columns::default();
    for (user_id, w) in rows {
        c.stats.push(Json(w.stats));
        c.metadata.push(Json(w.metadata));
        c.segments.push(Json(w.laps));
        c.id.push(w.id);
        c.user.push(user_id);
        c.source.push(w.data_source_id);
        c.kind.push(w.workout_type);
        c.start.push(w.start);
        c.end.push(w.end);
        c.zone.push(w.zone_offset);
        c.duration.push(w.duration_s);
    }
    tx.execute(
        // Keyed by (id, start_time) (a hypertable on start_time): a record seen before keeps
        // its first start, as it did when the key was the id alone.
        "INSERT INTO workouts (id, user_id, data_source_id, type, start_time, end_time, zone_offset, duration_s, stats, metadata, segments) \
         SELECT u.id, u.user_id, u.data_source_id, u.type, coalesce(w.start_time, u.start_time), u.end_time, u.zone_offset, \
                u.duration_s, u.stats, u.metadata, u.segments \
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[], $6::timestamptz[], \
                       $7::int2[], $8::float8[], $9::jsonb[], $10::jsonb[], $11::jsonb[]) \
                AS u(id, user_id, data_source_id, type, start_time, end_time, zone_offset, duration_s, stats, metadata, segments) \
           LEFT JOIN workouts w ON w.id = u.id \
         ON CONFLICT (id, start_time) DO UPDATE SET type = EXCLUDED.type, zone_offset = EXCLUDED.zone_offset, \
           duration_s = EXCLUDED.duration_s, stats = workouts.stats || EXCLUDED.stats, \
           metadata = workouts.metadata || EXCLUDED.metadata, \
           segments = CASE WHEN jsonb_array_length(EXCLUDED.segments) > 0 THEN EXCLUDED.segments ELSE workouts.segments END",
        &[
            &c.id, &c.user, &c.source, &c.kind, &c.start, &c.end, &c.zone, &c.duration, &c.stats,
            &c.metadata, &c.segments,
        ],
    )
    .await?;
    Ok(())
}

#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    user: Vec<Uuid>,
    source: Vec<Uuid>,
    kind: Vec<String>,
    start: Vec<DateTime<Utc>>,
    end: Vec<DateTime<Utc>>,
    zone: Vec<Option<i16>>,
    duration: Vec<Option<f64>>,
    // Serialized straight into the statement (no `Value` trees in between).
    stats: Vec<Json<BTreeMap<String, f64>>>,
    metadata: Vec<Json<BTreeMap<String, String>>>,
    segments: Vec<Json<Vec<WorkoutLap>>>,
}
