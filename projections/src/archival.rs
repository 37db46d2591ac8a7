//! Archival: the `archival_settings` read model (the policy), and what a `SamplesArchived`
//! run does to the timeseries read model (applied by `samples`, in log order, so a rebuild
//! archives the same samples at the same point of the history).
//!
//! A run rolls the samples before its cutoff into per-day aggregates (`sample_archive`),
//! takes them out of `sample_counts`, and removes them: whole TimescaleDB chunks with
//! `drop_chunks` where the extension is present, then the rows left in the boundary chunk.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use wearhouse_domain::archival::{ArchivalEvent, Cutoffs};

use crate::{decode, LogEntry, Projection, ProjectionError};

pub const SETTING_EVENT: &str = "ArchivalSettingChanged";
pub const RUN_EVENT: &str = "SamplesArchived";

pub struct ArchivalSettings;

#[async_trait]
impl Projection for ArchivalSettings {
    fn name(&self) -> &'static str {
        "archival_settings"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[SETTING_EVENT]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE archival_settings").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries {
            if let ArchivalEvent::ArchivalSettingChanged {
                archive_after_days,
                delete_after_days,
                at,
            } = decode(entry)?
            {
                tx.execute(
                    "INSERT INTO archival_settings (id, archive_after_days, delete_after_days, updated_at) \
                     VALUES (1, $1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET archive_after_days = $1, delete_after_days = $2, updated_at = $3",
                    &[&archive_after_days, &delete_after_days, &at],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Whether `table` is a TimescaleDB hypertable here.
async fn is_hypertable(tx: &Transaction<'_>, table: &str) -> Result<bool, tokio_postgres::Error> {
    let ext = tx
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await?
        .is_some();
    if !ext {
        return Ok(false);
    }
    Ok(tx
        .query_opt(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = $1",
            &[&table],
        )
        .await?
        .is_some())
}

/// The timeseries' rows before `before` leave it: counted out of `sample_counts` (and rolled
/// into `sample_archive` when `roll_up`), then whole chunks are dropped and the boundary
/// chunk's older rows deleted.
async fn remove_samples_before(
    tx: &Transaction<'_>,
    before: DateTime<Utc>,
    roll_up: bool,
    hypertable: bool,
) -> Result<(), tokio_postgres::Error> {
    let archive = if roll_up {
        ", rolled AS (
            INSERT INTO sample_archive (user_id, data_source_id, series_type, day, count, sum, min, max,
                                        daily_total_count, daily_total_sum)
            SELECT * FROM agg
            ON CONFLICT (user_id, series_type, day, data_source_id) DO UPDATE
               SET count = sample_archive.count + EXCLUDED.count, sum = sample_archive.sum + EXCLUDED.sum,
                   min = least(sample_archive.min, EXCLUDED.min), max = greatest(sample_archive.max, EXCLUDED.max),
                   daily_total_count = sample_archive.daily_total_count + EXCLUDED.daily_total_count,
                   daily_total_sum = sample_archive.daily_total_sum + EXCLUDED.daily_total_sum),
            counted AS (
            UPDATE record_counts SET count = count + (SELECT coalesce(sum(count), 0) FROM agg)
             WHERE kind = 'archived_samples')"
    } else {
        ""
    };
    // Samples that arrive for archived days after a run (a late import) are rolled up by the
    // next run into the same day's aggregate.
    tx.execute(
        &format!(
            "WITH agg AS (
                SELECT user_id, data_source_id, series_type, (time AT TIME ZONE 'UTC')::date AS day,
                       count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
                       count(*) FILTER (WHERE is_daily_total) AS daily_total_count,
                       coalesce(sum(value) FILTER (WHERE is_daily_total), 0) AS daily_total_sum
                  FROM samples WHERE time < $1 GROUP BY 1, 2, 3, 4){archive}
             UPDATE sample_counts c SET count = greatest(c.count - g.n, 0)
               FROM (SELECT user_id, data_source_id, series_type, sum(count) AS n FROM agg GROUP BY 1, 2, 3) g
              WHERE (c.user_id, c.data_source_id, c.series_type) = (g.user_id, g.data_source_id, g.series_type)"
        ),
        &[&before],
    )
    .await?;
    if hypertable {
        tx.execute(
            "SELECT count(*) FROM drop_chunks('samples', older_than => $1::timestamptz)",
            &[&before],
        )
        .await?;
    }
    tx.execute("DELETE FROM samples WHERE time < $1", &[&before])
        .await?;
    Ok(())
}

/// Deletes the archived aggregates matching `filter` (on `sample_archive`'s columns) and counts
/// their samples out of `archived_samples`.
pub(crate) async fn delete_archived(
    tx: &Transaction<'_>,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        &format!(
            "WITH gone AS (DELETE FROM sample_archive WHERE {filter} RETURNING count) \
             UPDATE record_counts SET count = greatest(count - (SELECT coalesce(sum(count), 0) FROM gone), 0)::int8 \
              WHERE kind = 'archived_samples'"
        ),
        params,
    )
    .await?;
    Ok(())
}

/// Applies one `SamplesArchived` entry to the timeseries read model.
pub(crate) async fn apply_run(
    tx: &Transaction<'_>,
    entry: &LogEntry,
) -> Result<(), ProjectionError> {
    let ArchivalEvent::SamplesArchived { cutoffs, at } = decode(entry)? else {
        return Ok(());
    };
    let Cutoffs {
        archived_before,
        live_deleted_before,
        aggregates_deleted_before,
    } = cutoffs;
    let samples_hypertable = is_hypertable(tx, "samples").await?;
    if let Some(before) = live_deleted_before {
        remove_samples_before(tx, before, false, samples_hypertable).await?;
    }
    if let Some(before) = archived_before {
        remove_samples_before(tx, before, true, samples_hypertable).await?;
    }
    if let Some(day) = aggregates_deleted_before {
        // Counted out before the chunks go: dropping a chunk reports no rows.
        tx.execute(
            "UPDATE record_counts SET count = greatest(count - \
               (SELECT coalesce(sum(count), 0) FROM sample_archive WHERE day < $1), 0)::int8 \
              WHERE kind = 'archived_samples'",
            &[&day],
        )
        .await?;
        if is_hypertable(tx, "sample_archive").await? {
            tx.execute(
                "SELECT count(*) FROM drop_chunks('sample_archive', older_than => $1::date)",
                &[&day],
            )
            .await?;
        }
        tx.execute("DELETE FROM sample_archive WHERE day < $1", &[&day])
            .await?;
    }
    let deleted_day: Option<NaiveDate> = aggregates_deleted_before;
    tx.execute(
        "INSERT INTO archival_state (id, archived_before, live_deleted_before, aggregates_deleted_before, runs, updated_at) \
         VALUES (1, $1, $2, $3, 1, $4) \
         ON CONFLICT (id) DO UPDATE SET \
           archived_before = greatest(archival_state.archived_before, $1), \
           live_deleted_before = greatest(archival_state.live_deleted_before, $2), \
           aggregates_deleted_before = greatest(archival_state.aggregates_deleted_before, $3), \
           runs = archival_state.runs + 1, updated_at = $4",
        &[&archived_before, &live_deleted_before, &deleted_day, &at],
    )
    .await?;
    Ok(())
}
