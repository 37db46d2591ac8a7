//! The `sleep_sessions` read model, with minutes per stage from the stage timeline.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use uuid::Uuid;
use wearhouse_domain::records::{DataEvent, RecordKind, SleepSessionRecord};

use crate::{decode, Latest, LogEntry, Projection, ProjectionError};

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
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["sleep_sessions"]
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
        // One statement per run of recorded sessions; a delete flushes the run first so it
        // applies after what came before it in the log.
        let mut pending = Latest::default();
        for entry in entries {
            match decode(entry)? {
                DataEvent::RecordDeleted {
                    kind: RecordKind::Sleep,
                    record_id,
                    user_id,
                } => {
                    upsert(tx, pending.take()).await?;
                    // The upsert never touches `deleted`, so a re-import stays hidden.
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
                    upsert(tx, pending.take()).await?;
                    tx.execute(
                        "DELETE FROM sleep_sessions WHERE data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                }
                DataEvent::SleepSessionsRecorded { user_id, sessions } => {
                    for s in sessions {
                        pending.put(s.id, (user_id, s));
                    }
                }
                _ => {}
            }
        }
        upsert(tx, pending.take()).await
    }
}

async fn upsert(
    tx: &Transaction<'_>,
    rows: Vec<(Uuid, SleepSessionRecord)>,
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let (mut id, mut user, mut source) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut start, mut end, mut zone, mut nap) = (vec![], vec![], vec![], vec![]);
    let (mut awake, mut light, mut deep, mut rem, mut asleep, mut in_bed, mut stages) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut from_totals = Vec::with_capacity(n);
    for (user_id, s) in rows {
        let (a, l, d, r, sl) = stage_minutes(&s);
        awake.push(a);
        light.push(l);
        deep.push(d);
        rem.push(r);
        asleep.push(sl);
        in_bed.push((s.end - s.start).num_seconds() as f64 / 60.0);
        stages.push(Json(s.stages));
        from_totals.push(s.stages_from_totals);
        id.push(s.id);
        user.push(user_id);
        source.push(s.data_source_id);
        start.push(s.start);
        end.push(s.end);
        zone.push(s.zone_offset);
        nap.push(s.is_nap);
    }
    tx.execute(
        // Keyed by (id, start_time) (a hypertable on start_time): a session seen before keeps
        // its first start, as it did when the key was the id alone.
        "INSERT INTO sleep_sessions (id, user_id, data_source_id, start_time, end_time, zone_offset, is_nap, \
           awake_minutes, light_minutes, deep_minutes, rem_minutes, asleep_minutes, in_bed_minutes, stages, stages_from_totals) \
         SELECT u.id, u.user_id, u.data_source_id, coalesce(s.start_time, u.start_time), u.end_time, u.zone_offset, u.is_nap, \
                u.awake, u.light, u.deep, u.rem, u.asleep, u.in_bed, u.stages, u.from_totals \
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::int2[], \
           $7::bool[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], $14::jsonb[], $15::bool[]) \
                AS u(id, user_id, data_source_id, start_time, end_time, zone_offset, is_nap, awake, light, deep, rem, asleep, \
                     in_bed, stages, from_totals) \
           LEFT JOIN sleep_sessions s ON s.id = u.id \
         ON CONFLICT (id, start_time) DO UPDATE SET end_time = EXCLUDED.end_time, zone_offset = EXCLUDED.zone_offset, \
           is_nap = EXCLUDED.is_nap, awake_minutes = EXCLUDED.awake_minutes, light_minutes = EXCLUDED.light_minutes, \
           deep_minutes = EXCLUDED.deep_minutes, rem_minutes = EXCLUDED.rem_minutes, \
           asleep_minutes = EXCLUDED.asleep_minutes, in_bed_minutes = EXCLUDED.in_bed_minutes, stages = EXCLUDED.stages, \
           stages_from_totals = EXCLUDED.stages_from_totals",
        &[&id, &user, &source, &start, &end, &zone, &nap, &awake, &light, &deep, &rem, &asleep, &in_bed, &stages, &from_totals],
    )
    .await?;
    Ok(())
}
