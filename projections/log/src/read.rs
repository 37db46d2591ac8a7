//! Reading the event log in order.
//!
//! Positions come from a sequence, so they are handed out before commit: a transaction that
//! took position 10 can commit after one that took 11. A reader that only remembered "the last
//! position seen" would skip 10. Each row therefore also carries the id of the transaction
//! that wrote it (`xid8`), and readers
//!  - only read rows whose transaction is older than the oldest transaction still running
//!    (`tx < pg_snapshot_xmin(pg_current_snapshot())`): those rows are final, and every row
//!    committed later has a larger `tx`;
//!  - order by `(tx, position)` and resume after the last `(tx, position)` pair they applied.
//!
//! So the log's order is `(tx, position)`; `position` alone is a unique, stable entry id.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures::TryStreamExt;
use serde_json::Value;
use uuid::Uuid;

/// Where a reader stands in the log: the last entry it has applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub tx: i64,
    pub position: i64,
}

impl Cursor {
    pub const START: Cursor = Cursor { tx: 0, position: 0 };
}

/// An event's payload as the JSON text the log holds: decoded straight into the reader's own
/// types, it never becomes a `serde_json::Value` tree (several times the text's size).
pub type Payload = Box<serde_json::value::RawValue>;

/// One committed entry of the log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub cursor: Cursor,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Payload,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    pub user_id: Option<Uuid>,
}

impl PartialEq for LogEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cursor == other.cursor
            && self.aggregate_type == other.aggregate_type
            && self.aggregate_id == other.aggregate_id
            && self.sequence == other.sequence
            && self.event_type == other.event_type
            && self.event_version == other.event_version
            && self.payload.get() == other.payload.get()
            && self.metadata == other.metadata
            && self.recorded_at == other.recorded_at
            && self.user_id == other.user_id
    }
}

impl LogEntry {
    pub fn position(&self) -> i64 {
        self.cursor.position
    }
}

/// Every column of an entry, as [`entry`] reads them.
pub const SELECT: &str =
    "SELECT tx::text::bigint, position, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at, user_id FROM events";

/// An entry from a row selected with [`SELECT`].
pub fn entry(row: &tokio_postgres::Row) -> LogEntry {
    LogEntry {
        cursor: Cursor {
            tx: row.get(0),
            position: row.get(1),
        },
        aggregate_type: row.get(2),
        aggregate_id: row.get(3),
        sequence: row.get(4),
        event_type: row.get(5),
        event_version: row.get(6),
        payload: row.get::<_, tokio_postgres::types::Json<Payload>>(7).0,
        metadata: row.get(8),
        recorded_at: row.get(9),
        user_id: row.get(10),
    }
}

/// Up to `limit` committed entries after `after`, in log order. Entries whose transaction is
/// still open are not returned yet, and neither is anything after them, so a later call
/// never finds an entry that sorts before what it already returned.
pub async fn read_after(
    client: &impl GenericClient,
    after: Cursor,
    limit: i64,
) -> Result<Vec<LogEntry>, tokio_postgres::Error> {
    let sql = format!(
        "{SELECT} WHERE (tx, position) > ($1::bigint::text::xid8, $2) \
         AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY tx, position LIMIT $3"
    );
    let rows = client
        .query(&sql, &[&after.tx, &after.position, &limit])
        .await?;
    Ok(rows.iter().map(entry).collect())
}

/// The transaction horizon: every transaction older than this has ended, so the log below it is
/// final. It only moves forward.
pub async fn horizon(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let statement = client
        .prepare_cached("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        .await?;
    Ok(client.query_one(&statement, &[]).await?.get(0))
}

/// What a reader learns of an entry before loading it: where it is, when it was written and
/// about how many bytes its payload takes (a compressed one is counted at eight times its
/// stored size, about what JSON shrinks to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    pub cursor: Cursor,
    pub recorded_at: DateTime<Utc>,
    pub bytes: i64,
}

const TYPES_FILTER: &str = "(cardinality($4::text[]) = 0 OR event_type = ANY($4))";

/// Up to `limit` entries after `after` and below `horizon`, in log order, of the given event
/// types (all when `types` is empty), without their payloads.
pub async fn peek_below(
    client: &impl GenericClient,
    after: Cursor,
    horizon: i64,
    limit: i64,
    types: &[&str],
) -> Result<Vec<Peek>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT tx::text::bigint, position, recorded_at, pg_column_size(payload)::int8 \
             * CASE WHEN pg_column_compression(payload) IS NULL THEN 1 ELSE 8 END FROM events \
             WHERE (tx, position) > ($1::bigint::text::xid8, $2) AND tx < $3::bigint::text::xid8 \
             AND {TYPES_FILTER} ORDER BY tx, position LIMIT $5"
        ))
        .await?;
    let types: Vec<&str> = types.to_vec();
    Ok(client
        .query(
            &statement,
            &[&after.tx, &after.position, &horizon, &types, &limit],
        )
        .await?
        .iter()
        .map(|r| Peek {
            cursor: Cursor {
                tx: r.get(0),
                position: r.get(1),
            },
            recorded_at: r.get(2),
            bytes: r.get(3),
        })
        .collect())
}

/// The entries after `after` up to and including `through`, of the given event types (all
/// when `types` is empty), in log order. `through` must be below the horizon (from
/// [`peek_below`]).
pub async fn read_through(
    client: &impl GenericClient,
    after: Cursor,
    through: Cursor,
    types: &[&str],
) -> Result<Vec<LogEntry>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(&format!(
            "{SELECT} WHERE (tx, position) > ($1::bigint::text::xid8, $2) \
             AND (tx, position) <= ($3::bigint::text::xid8, $5) AND {TYPES_FILTER} \
             ORDER BY tx, position"
        ))
        .await?;
    let types: Vec<&str> = types.to_vec();
    // Rows are decoded as they arrive, so a batch is never held twice (raw and decoded).
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
        &after.tx,
        &after.position,
        &through.tx,
        &types,
        &through.position,
    ];
    let rows = client.query_raw(&statement, params).await?;
    futures::pin_mut!(rows);
    let mut entries = Vec::new();
    while let Some(row) = rows.try_next().await? {
        entries.push(entry(&row));
    }
    Ok(entries)
}

/// The last entry below `horizon`: where a reader that has seen everything it needs below the
/// horizon can move its checkpoint to.
pub async fn last_below(
    client: &impl GenericClient,
    horizon: i64,
) -> Result<Option<Cursor>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "SELECT tx::text::bigint, position FROM events WHERE tx < $1::bigint::text::xid8 \
             ORDER BY tx DESC, position DESC LIMIT 1",
        )
        .await?;
    let row = client.query_opt(&statement, &[&horizon]).await?;
    Ok(row.map(|r| Cursor {
        tx: r.get(0),
        position: r.get(1),
    }))
}

/// The newest committed entry's cursor.
pub async fn head(client: &impl GenericClient) -> Result<Option<Cursor>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT tx::text::bigint, position FROM events ORDER BY tx DESC, position DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| Cursor {
        tx: r.get(0),
        position: r.get(1),
    }))
}

/// The cursor of the entry at `position`, to resume "after position P" (for example from a
/// position a data engineer noted down). `None` when no such entry exists.
pub async fn cursor_of(
    client: &impl GenericClient,
    position: i64,
) -> Result<Option<Cursor>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT tx::text::bigint FROM events WHERE position = $1",
            &[&position],
        )
        .await?;
    Ok(row.map(|r| Cursor {
        tx: r.get(0),
        position,
    }))
}

/// The cursor of the newest entry of one aggregate (what a writer waits for after a command).
pub async fn last_cursor_of(
    client: &impl GenericClient,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<Cursor>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT tx::text::bigint, position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1",
            &[&aggregate_type, &aggregate_id],
        )
        .await?;
    Ok(row.map(|r| Cursor {
        tx: r.get(0),
        position: r.get(1),
    }))
}
