//! The timeseries read model: every `SamplesRecorded` batch is decoded from its Arrow bytes,
//! loaded with binary COPY into a staging table and merged into the `samples` hypertable on the
//! dedup key (data source, series type, time): the later value wins. `sample_counts` counts the
//! rows that were new.

use async_trait::async_trait;
use chrono::DateTime;
use deadpool_postgres::Transaction;
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;
use wearhouse_domain::records::DataEvent;

use crate::arrow_batch;
use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Samples;

const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS samples_staging (
    ord bigint, time timestamptz, user_id uuid, data_source_id uuid, series_type smallint,
    value double precision, zone_offset smallint, end_time timestamptz, is_daily_total boolean
) ON COMMIT DELETE ROWS";

const MERGE: &str = "WITH merged AS (
    INSERT INTO samples (time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total)
    SELECT DISTINCT ON (data_source_id, series_type, time)
           time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total
      FROM samples_staging
     ORDER BY data_source_id, series_type, time, ord DESC
    ON CONFLICT (data_source_id, series_type, time) DO UPDATE
       SET value = EXCLUDED.value, zone_offset = EXCLUDED.zone_offset,
           end_time = EXCLUDED.end_time, is_daily_total = EXCLUDED.is_daily_total
     WHERE (samples.value, samples.zone_offset, samples.end_time, samples.is_daily_total)
           IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.zone_offset, EXCLUDED.end_time, EXCLUDED.is_daily_total)
    RETURNING user_id, data_source_id, series_type, (xmax = 0) AS inserted
)
INSERT INTO sample_counts (user_id, data_source_id, series_type, count)
SELECT user_id, data_source_id, series_type, count(*) FROM merged WHERE inserted GROUP BY 1, 2, 3
ON CONFLICT (user_id, data_source_id, series_type) DO UPDATE SET count = sample_counts.count + EXCLUDED.count";

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

    /// Each entry carries up to 10,000 samples: keep transactions to a few hundred thousand rows.
    fn batch_size(&self) -> i64 {
        20
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["SamplesRecorded", "ProviderDataDeleted"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE samples, sample_counts").await?;
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
            if entry.event_type == "ProviderDataDeleted" {
                self.merge(tx, &entries[from..i]).await?;
                if let DataEvent::ProviderDataDeleted {
                    data_source_ids, ..
                } = decode(entry)?
                {
                    tx.execute(
                        "DELETE FROM samples WHERE data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM sample_counts WHERE data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                }
                from = i + 1;
            }
        }
        self.merge(tx, &entries[from..]).await
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
        let bytes: std::collections::HashMap<i64, Vec<u8>> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        tx.batch_execute(STAGING).await?;
        let sink = tx
            .copy_in(
                "COPY samples_staging (ord, time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total) \
                 FROM STDIN BINARY",
            )
            .await?;
        let writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::TIMESTAMPTZ,
                Type::UUID,
                Type::UUID,
                Type::INT2,
                Type::FLOAT8,
                Type::INT2,
                Type::TIMESTAMPTZ,
                Type::BOOL,
            ],
        );
        pin_mut!(writer);
        for (entry, user_id, batch) in &refs {
            let data = bytes.get(&batch.batch_id).ok_or_else(|| {
                corrupt(entry, format!("sample batch {} is missing", batch.batch_id))
            })?;
            let decoded = arrow_batch::decode(data).map_err(|e| corrupt(entry, e))?;
            let series_type: i16 = batch.series_type;
            let data_source_id: Uuid = batch.data_source_id;
            // Later entries (and later rows) win on the dedup key.
            let base = entry.position() << 20;
            for (i, row) in decoded.rows.iter().enumerate() {
                let ord = base + i as i64;
                let time = DateTime::from_timestamp_micros(row.time)
                    .ok_or_else(|| corrupt(entry, "time out of range"))?;
                let end = DateTime::from_timestamp_micros(row.end_time);
                let offset = Some(row.zone_offset_min);
                writer
                    .as_mut()
                    .write(&[
                        &ord,
                        &time,
                        user_id,
                        &data_source_id,
                        &series_type,
                        &row.value,
                        &offset,
                        &end,
                        &row.is_daily_total,
                    ])
                    .await?;
            }
        }
        writer.finish().await?;
        tx.batch_execute(MERGE).await?;
        Ok(())
    }
}
