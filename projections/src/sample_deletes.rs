//! Deleting samples from the timeseries read model (`SamplesDeleted`): each named
//! (source, series type, time) becomes a tombstone and its row goes. Kept apart from the
//! sample merge itself; the `samples` projection calls in here for the events and after
//! each merge, so a later batch with a tombstoned key does not bring it back.

use deadpool_postgres::Transaction;
use wearhouse_domain::records::DataEvent;

use crate::{decode, LogEntry, ProjectionError};

/// The event type this module applies.
pub const EVENT: &str = "SamplesDeleted";

/// Records the tombstones of one `SamplesDeleted` entry and removes the rows they name.
pub async fn apply(tx: &Transaction<'_>, entry: &LogEntry) -> Result<(), ProjectionError> {
    let DataEvent::SamplesDeleted {
        user_id,
        data_source_id,
        series_types,
        times,
    } = decode(entry)?
    else {
        return Ok(());
    };
    tx.execute(
        "INSERT INTO sample_tombstones (user_id, data_source_id, series_type, time) \
         SELECT $1, $2, s, t FROM unnest($3::int2[]) s, unnest($4::timestamptz[]) t \
         ON CONFLICT DO NOTHING",
        &[&user_id, &data_source_id, &series_types, &times],
    )
    .await?;
    remove_tombstoned(tx, &[data_source_id]).await
}

/// After samples were merged from `entries`: removes any of their rows a tombstone names.
/// Costs one lookup in the (small) tombstone table when nothing was ever deleted.
pub async fn enforce(tx: &Transaction<'_>, entries: &[LogEntry]) -> Result<(), ProjectionError> {
    let mut sources = Vec::new();
    for entry in entries.iter().filter(|e| e.event_type == "SamplesRecorded") {
        if let DataEvent::SamplesRecorded { batch, .. } = decode(entry)? {
            if !sources.contains(&batch.data_source_id) {
                sources.push(batch.data_source_id);
            }
        }
    }
    if sources.is_empty() {
        return Ok(());
    }
    let any = tx
        .query_opt(
            "SELECT 1 FROM sample_tombstones WHERE data_source_id = ANY($1) LIMIT 1",
            &[&sources],
        )
        .await?
        .is_some();
    if any {
        remove_tombstoned(tx, &sources).await?;
    }
    Ok(())
}

async fn remove_tombstoned(
    tx: &Transaction<'_>,
    sources: &[uuid::Uuid],
) -> Result<(), ProjectionError> {
    // The per-source counts shrink by what went; their time span is left as is (it only
    // decides whether a later batch is merged or appended, and a wider span merges).
    tx.execute(
        "WITH gone AS ( \
           DELETE FROM samples s USING sample_tombstones t \
            WHERE t.data_source_id = ANY($1) AND s.user_id = t.user_id \
              AND s.series_type = t.series_type AND s.time = t.time \
              AND s.data_source_id = t.data_source_id \
           RETURNING s.user_id, s.data_source_id, s.series_type) \
         UPDATE sample_counts c SET count = greatest(c.count - g.n, 0) \
           FROM (SELECT user_id, data_source_id, series_type, count(*) AS n FROM gone GROUP BY 1, 2, 3) g \
          WHERE (c.user_id, c.data_source_id, c.series_type) = (g.user_id, g.data_source_id, g.series_type)",
        &[&sources],
    )
    .await?;
    Ok(())
}
