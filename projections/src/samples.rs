//! The timeseries read model: every `SamplesRecorded` batch is decoded from its Arrow bytes,
//! loaded with binary COPY into a staging table and merged into the `samples` hypertable on the
//! dedup key (data source, series type, time): the later value wins. `sample_counts` counts the
//! rows that were new.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use futures::{pin_mut, SinkExt};
use uuid::Uuid;
use wearhouse_domain::records::DataEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};
use wearhouse_log::arrow_batch;

pub struct Samples;

fn ts(us: i64) -> DateTime<Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Microseconds between the Unix epoch and Postgres' epoch (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Rows in Postgres' binary COPY format, built by hand: the generic per-value writer costs more
/// CPU than the database spends storing the row.
struct CopyBuffer {
    buf: BytesMut,
}

impl CopyBuffer {
    fn new() -> Self {
        let mut buf = BytesMut::with_capacity(1 << 21);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension length
        CopyBuffer { buf }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }

    /// (time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total)
    fn row(&mut self, row: &arrow_batch::SampleRow, user: &Uuid, source: &Uuid, series_type: i16) {
        let b = &mut self.buf;
        b.put_i16(8);
        b.put_i32(8);
        b.put_i64(row.time - PG_EPOCH_US);
        b.put_i32(16);
        b.put_slice(user.as_bytes());
        b.put_i32(16);
        b.put_slice(source.as_bytes());
        b.put_i32(2);
        b.put_i16(series_type);
        b.put_i32(8);
        b.put_f64(row.value);
        b.put_i32(2);
        b.put_i16(row.zone_offset_min);
        b.put_i32(8);
        b.put_i64(row.end_time - PG_EPOCH_US);
        match row.is_daily_total {
            Some(v) => {
                b.put_i32(1);
                b.put_u8(v as u8);
            }
            None => b.put_i32(-1),
        }
    }
}

const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS samples_staging (
    time timestamptz, user_id uuid, data_source_id uuid, series_type smallint,
    value double precision, zone_offset smallint, end_time timestamptz, is_daily_total boolean
) ON COMMIT DELETE ROWS";

const MERGE: &str = "WITH merged AS (
    INSERT INTO samples (time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total)
    SELECT time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total
      FROM samples_staging
    ON CONFLICT (user_id, series_type, time, data_source_id) DO UPDATE
       SET value = EXCLUDED.value, zone_offset = EXCLUDED.zone_offset,
           end_time = EXCLUDED.end_time, is_daily_total = EXCLUDED.is_daily_total
     WHERE (samples.value, samples.zone_offset, samples.end_time, samples.is_daily_total)
           IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.zone_offset, EXCLUDED.end_time, EXCLUDED.is_daily_total)
    RETURNING user_id, data_source_id, series_type, time, (xmax = 0) AS inserted
)
INSERT INTO sample_counts (user_id, data_source_id, series_type, count, first_time, last_time)
SELECT user_id, data_source_id, series_type, count(*) FILTER (WHERE inserted), min(time), max(time)
  FROM merged GROUP BY 1, 2, 3
ON CONFLICT (user_id, data_source_id, series_type) DO UPDATE
   SET count = sample_counts.count + EXCLUDED.count,
       first_time = least(sample_counts.first_time, EXCLUDED.first_time),
       last_time = greatest(sample_counts.last_time, EXCLUDED.last_time)";

fn corrupt(entry: &LogEntry, e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Corrupt {
        position: entry.position(),
        detail: e.to_string(),
    }
}

#[async_trait]
impl Projection for Samples {
    fn name(&self) -> &'static str {
        "samples"
    }

    fn large_rows(&self) -> bool {
        true
    }

    /// Each entry carries up to 10,000 samples: keep transactions to a few hundred thousand rows.
    fn batch_size(&self) -> i64 {
        20
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "SamplesRecorded",
            "ProviderDataDeleted",
            crate::sample_deletes::EVENT,
            crate::archival::RUN_EVENT,
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["samples", "sample_counts", "sample_tombstones"]
    }

    /// The tables, and the user's archived aggregates (counted out of the archived total).
    async fn purge_user(
        &self,
        tx: &Transaction<'_>,
        user_id: uuid::Uuid,
    ) -> Result<(), ProjectionError> {
        for table in self.user_tables() {
            tx.execute(
                &format!("DELETE FROM {table} WHERE user_id = $1"),
                &[&user_id],
            )
            .await?;
        }
        crate::archival::delete_archived(tx, "user_id = $1", &[&user_id]).await?;
        Ok(())
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute(
            "TRUNCATE samples, sample_counts, sample_tombstones, sample_archive, archival_state; \
             UPDATE record_counts SET count = 0 WHERE kind = 'archived_samples'",
        )
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        // Deletions split the batch so samples recorded after one survive it.
        let mut from = 0;
        for (i, entry) in entries.iter().enumerate() {
            if entry.event_type == crate::archival::RUN_EVENT {
                self.merge(tx, &entries[from..i]).await?;
                crate::archival::apply_run(tx, entry).await?;
                from = i + 1;
            }
            if entry.event_type == crate::sample_deletes::EVENT {
                self.merge(tx, &entries[from..i]).await?;
                crate::sample_deletes::apply(tx, entry).await?;
                from = i + 1;
            }
            if entry.event_type == "ProviderDataDeleted" {
                self.merge(tx, &entries[from..i]).await?;
                if let DataEvent::ProviderDataDeleted {
                    user_id,
                    data_source_ids,
                    ..
                } = decode(entry)?
                {
                    tx.execute(
                        "DELETE FROM samples WHERE user_id = $1 AND data_source_id = ANY($2)",
                        &[&user_id, &data_source_ids],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM sample_counts WHERE data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                    crate::archival::delete_archived(
                        tx,
                        "user_id = $1 AND data_source_id = ANY($2)",
                        &[&user_id, &data_source_ids],
                    )
                    .await?;
                }
                from = i + 1;
            }
        }
        self.merge(tx, &entries[from..]).await?;
        // Samples a provider deleted stay deleted when a later batch brings them again.
        crate::sample_deletes::enforce(tx, entries).await
    }
}

impl Samples {
    async fn merge(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        let mut refs = Vec::new();
        for entry in entries.iter().filter(|e| e.event_type == "SamplesRecorded") {
            if let DataEvent::SamplesRecorded { user_id, batch } = decode(entry)? {
                refs.push((entry, user_id, batch));
            }
        }
        if refs.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = refs.iter().map(|(_, _, b)| b.batch_id).collect();
        let rows = tx
            .query(
                "SELECT id, arrow FROM sample_batches WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
        let bytes: HashMap<i64, Vec<u8>> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        // Most batches are new data. When no batch's time range touches the span its source
        // and type already hold, rows go straight into the hypertable (no staging, no conflict
        // handling) and the counts are known here; otherwise they are merged.
        let (mut users, mut sources, mut types, mut starts, mut ends) =
            (vec![], vec![], vec![], vec![], vec![]);
        for (_, user, b) in &refs {
            users.push(*user);
            sources.push(b.data_source_id);
            types.push(b.series_type);
            starts.push(b.start);
            ends.push(b.end);
        }
        let fresh = tx
            .query_opt(
                "SELECT 1 FROM unnest($1::uuid[], $2::uuid[], $3::int2[], $4::timestamptz[], $5::timestamptz[]) \
                   AS b(user_id, data_source_id, series_type, lo, hi) \
                 JOIN sample_counts c USING (user_id, data_source_id, series_type) \
                 WHERE c.first_time IS NULL OR (c.first_time <= b.hi AND c.last_time >= b.lo) LIMIT 1",
                &[&users, &sources, &types, &starts, &ends],
            )
            .await?
            .is_none();
        let target = if fresh { "samples" } else { "samples_staging" };
        if !fresh {
            tx.batch_execute(STAGING).await?;
        }
        let sink = tx
            .copy_in(&format!(
                "COPY {target} (time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total) \
                 FROM STDIN BINARY"
            ))
            .await?;
        pin_mut!(sink);
        let mut copy = CopyBuffer::new();
        // Newest first, keeping the first row seen per dedup key: the later value wins, and the
        // merge needs no sort (a key may appear once per statement in ON CONFLICT DO UPDATE).
        // Keys are (series index, time). A series whose batches do not overlap in time (an
        // export read in order) can only repeat a key inside one batch, so its keys are only
        // held for that batch; the others' for the whole step.
        let mut series: HashMap<(Uuid, i16), u32> = HashMap::new();
        let keys: Vec<u32> = refs
            .iter()
            .map(|(_, _, b)| {
                let next = series.len() as u32;
                *series
                    .entry((b.data_source_id, b.series_type))
                    .or_insert(next)
            })
            .collect();
        let mut spans: Vec<(u32, DateTime<Utc>, DateTime<Utc>)> = refs
            .iter()
            .zip(&keys)
            .map(|((_, _, b), k)| (*k, b.start, b.end))
            .collect();
        spans.sort_unstable();
        let overlapping: HashSet<u32> = spans
            .windows(2)
            .filter(|w| w[0].0 == w[1].0 && w[1].1 <= w[0].2)
            .map(|w| w[0].0)
            .collect();
        let mut step_seen: HashSet<(u32, i64)> = HashSet::new();
        let mut batch_seen: HashSet<(u32, i64)> = HashSet::new();
        // Per user, source and type: rows, first and last time.
        let mut counts: HashMap<(Uuid, Uuid, i16), (i64, i64, i64)> = HashMap::new();
        for ((entry, user_id, batch), key) in refs.iter().zip(keys).rev() {
            let data = bytes.get(&batch.batch_id).ok_or_else(|| {
                corrupt(entry, format!("sample batch {} is missing", batch.batch_id))
            })?;
            let decoded = arrow_batch::decode(data).map_err(|e| corrupt(entry, e))?;
            let series_type: i16 = batch.series_type;
            let data_source_id: Uuid = batch.data_source_id;
            // A batch in strictly increasing time (the usual case) cannot repeat a key.
            let mut seen = if overlapping.contains(&key) {
                Some(&mut step_seen)
            } else if decoded.rows.windows(2).all(|w| w[0].time < w[1].time) {
                None
            } else {
                batch_seen.clear();
                Some(&mut batch_seen)
            };
            let (mut n, mut first, mut last) = (0, i64::MAX, i64::MIN);
            for row in decoded.rows.iter().rev() {
                if let Some(seen) = seen.as_deref_mut() {
                    if !seen.insert((key, row.time)) {
                        continue;
                    }
                }
                n += 1;
                first = first.min(row.time);
                last = last.max(row.time);
                copy.row(row, user_id, &data_source_id, series_type);
                if copy.len() >= 256 << 10 {
                    sink.send(copy.take()).await?;
                }
            }
            if n > 0 {
                let c = counts
                    .entry((*user_id, data_source_id, series_type))
                    .or_insert((0, i64::MAX, i64::MIN));
                c.0 += n;
                c.1 = c.1.min(first);
                c.2 = c.2.max(last);
            }
        }
        sink.send(copy.finish()).await?;
        sink.finish().await?;
        if !fresh {
            tx.batch_execute(MERGE).await?;
            return Ok(());
        }
        let (mut users, mut sources, mut types, mut ns, mut firsts, mut lasts) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for ((user, source, series), (n, first, last)) in counts {
            users.push(user);
            sources.push(source);
            types.push(series);
            ns.push(n);
            firsts.push(ts(first));
            lasts.push(ts(last));
        }
        tx.execute(
            "INSERT INTO sample_counts (user_id, data_source_id, series_type, count, first_time, last_time) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int2[], $4::int8[], $5::timestamptz[], $6::timestamptz[]) \
             ON CONFLICT (user_id, data_source_id, series_type) DO UPDATE \
               SET count = sample_counts.count + EXCLUDED.count, \
                   first_time = least(sample_counts.first_time, EXCLUDED.first_time), \
                   last_time = greatest(sample_counts.last_time, EXCLUDED.last_time)",
            &[&users, &sources, &types, &ns, &firsts, &lasts],
        )
        .await?;
        Ok(())
    }
}
