//! The shared write path of normalized data: sample batches (Arrow bytes into `sample_batches`)
//! and data events, appended in short transactions. The Apple import and provider syncs both
//! feed it, so every source lands in the same read models the same way.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;
use wearhouse_domain::records::{DataEvent, SampleBatchRef};

use crate::append::{append, to_payload, Actor, AppendError, NewEvent};

/// Why a write of normalized data failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("database: {}", crate::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("appending events: {0}")]
    Append(#[from] AppendError),
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// What the parser thread hands to the writer, in order.
pub enum Out {
    Event(DataEvent),
    Batch {
        data_source_id: Uuid,
        series_type: i16,
        count: i32,
        start: i64,
        end: i64,
        arrow: Vec<u8>,
    },
}

/// Sample batch bytes per write transaction.
const MAX_GROUP_BYTES: usize = 1 << 20;

impl Out {
    fn bytes(&self) -> usize {
        match self {
            Out::Batch { arrow, .. } => arrow.len(),
            Out::Event(_) => 0,
        }
    }
}

/// Appends what the parser produced, grouping whatever is queued into one transaction.
pub async fn writer(
    pool: Pool,
    stream_id: Uuid,
    user_id: Uuid,
    actor: Actor,
    mut rx: mpsc::Receiver<Out>,
) -> Result<u64, WriteError> {
    let mut client = pool.get().await?;
    // After the stream's last event: an import re-run after a crash appends after what the
    // interrupted run wrote (the read models' dedup keys absorb the repeats).
    let mut sequence: i64 = client
        .query_one(
            "SELECT coalesce(max(sequence), 0) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
            &[&DataEvent::AGGREGATE_TYPE, &stream_id.to_string()],
        )
        .await?
        .get(0);
    let mut samples = 0u64;
    let mut metadata = json!({
        "actor": format!("{}:{}", actor.kind, actor.id),
        "request_id": actor.request_id,
        "user_id": user_id.to_string(),
        "import_id": stream_id.to_string(),
    });
    if let Some(m) = metadata.as_object_mut() {
        crate::origin::annotate(m);
    }
    while let Some(first) = rx.recv().await {
        // Whatever is queued goes in one transaction, up to a few MB of batches: each
        // connection keeps a write buffer as large as the largest statement it ever sent.
        let mut bytes = first.bytes();
        let mut group = vec![first];
        while group.len() < 64 && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(m) => {
                    bytes += m.bytes();
                    group.push(m);
                }
                Err(_) => break,
            }
        }
        let tx = client.transaction().await?;
        let batches = group
            .iter()
            .filter(|m| matches!(m, Out::Batch { .. }))
            .count() as i64;
        let mut ids: Vec<i64> = Vec::new();
        if batches > 0 {
            ids = tx
                .query(
                    "SELECT nextval('sample_batches_id_seq') FROM generate_series(1, $1::bigint)",
                    &[&batches],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        }
        let (mut b_ids, mut b_ds, mut b_types, mut b_counts, mut b_start, mut b_end, mut b_data) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut events = Vec::with_capacity(group.len());
        let mut next_id = ids.into_iter();
        for message in group {
            let event = match message {
                Out::Event(e) => e,
                Out::Batch {
                    data_source_id,
                    series_type,
                    count,
                    start,
                    end,
                    arrow,
                } => {
                    let batch_id = next_id.next().expect("one id per batch");
                    samples += count as u64;
                    b_ids.push(batch_id);
                    b_ds.push(data_source_id);
                    b_types.push(series_type);
                    b_counts.push(count);
                    b_start.push(ts(start));
                    b_end.push(ts(end));
                    b_data.push(arrow);
                    DataEvent::SamplesRecorded {
                        user_id,
                        batch: SampleBatchRef {
                            batch_id,
                            data_source_id,
                            series_type,
                            count,
                            start: ts(start),
                            end: ts(end),
                        },
                    }
                }
            };
            sequence += 1;
            events.push(NewEvent {
                aggregate_type: DataEvent::AGGREGATE_TYPE.into(),
                aggregate_id: stream_id.to_string(),
                sequence,
                event_type: event.event_type().into(),
                event_version: "1".into(),
                payload: to_payload(&event),
                metadata: metadata.clone(),
                user_id: Some(user_id),
            });
        }
        if !b_ids.is_empty() {
            let users = vec![user_id; b_ids.len()];
            tx.execute(
                "INSERT INTO sample_batches (id, user_id, data_source_id, series_type, count, start_time, end_time, arrow) \
                 SELECT * FROM unnest($1::int8[], $2::uuid[], $3::uuid[], $4::int2[], $5::int4[], $6::timestamptz[], $7::timestamptz[], $8::bytea[])",
                &[&b_ids, &users, &b_ds, &b_types, &b_counts, &b_start, &b_end, &b_data],
            )
            .await?;
        }
        append(&tx, &events).await?;
        tx.commit().await?;
        // One group is in the log, the rest of the stream is not.
        wearhouse_domain::crashpoint::hit("writer.batch");
    }
    // Megabyte statements grew this connection's buffers; close it rather than pool them.
    drop(deadpool_postgres::Object::take(client));
    Ok(samples)
}

/// Writes `items` to data stream `stream_id` in one pass; returns the samples.
pub async fn write_all(
    pool: &Pool,
    stream_id: Uuid,
    user_id: Uuid,
    actor: &Actor,
    items: Vec<Out>,
) -> Result<u64, WriteError> {
    let (tx, rx) = mpsc::channel(items.len().max(1));
    for item in items {
        // The channel holds every item, so this never waits.
        let _ = tx.send(item).await;
    }
    drop(tx);
    writer(pool.clone(), stream_id, user_id, actor.clone(), rx).await
}

/// The items of one data stream for [`stage_streams`].
pub struct StreamItems {
    pub stream_id: Uuid,
    pub user_id: Uuid,
    /// The metadata of each of the stream's entries (actor, request id, origin).
    pub metadata: serde_json::Value,
    /// The stream's last sequence so far (0: a new stream).
    pub after_sequence: i64,
    pub items: Vec<Out>,
}

/// The metadata [`writer`] gives a stream's entries, for callers that stage streams themselves.
pub fn stream_metadata(actor: &Actor, user_id: Uuid, stream_id: Uuid) -> serde_json::Value {
    json!({
        "actor": format!("{}:{}", actor.kind, actor.id),
        "request_id": actor.request_id,
        "user_id": user_id.to_string(),
        "import_id": stream_id.to_string(),
    })
}

/// One `sample_batches` row: id, user, source, series type, count, start, end, Arrow bytes.
type BatchRow = (
    i64,
    Uuid,
    Uuid,
    i16,
    i32,
    DateTime<Utc>,
    DateTime<Utc>,
    Vec<u8>,
);

/// Writes the sample batches of several data streams in the caller's transaction with one
/// binary COPY, and returns each stream's events (its samples' `SamplesRecorded` in place of
/// the batches), numbered after its `after_sequence`, for the caller to append with whatever
/// else belongs in the same transaction. Returns the events per stream and the samples.
pub async fn stage_streams(
    tx: &tokio_postgres::Transaction<'_>,
    streams: Vec<StreamItems>,
) -> Result<(Vec<Vec<NewEvent>>, u64), WriteError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};

    let batches: i64 = streams
        .iter()
        .flat_map(|s| &s.items)
        .filter(|m| matches!(m, Out::Batch { .. }))
        .count() as i64;
    let mut ids = Vec::new();
    if batches > 0 {
        ids = tx
            .query(
                "SELECT nextval('sample_batches_id_seq') FROM generate_series(1, $1::bigint)",
                &[&batches],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .collect();
    }
    let mut next_id = ids.into_iter();
    let mut rows: Vec<BatchRow> = Vec::with_capacity(batches as usize);
    let mut samples = 0u64;
    let mut out = Vec::with_capacity(streams.len());
    for stream in streams {
        let mut events = Vec::with_capacity(stream.items.len());
        for (sequence, item) in (stream.after_sequence + 1..).zip(stream.items) {
            let event = match item {
                Out::Event(e) => e,
                Out::Batch {
                    data_source_id,
                    series_type,
                    count,
                    start,
                    end,
                    arrow,
                } => {
                    let batch_id = next_id.next().expect("one id per batch");
                    samples += count as u64;
                    rows.push((
                        batch_id,
                        stream.user_id,
                        data_source_id,
                        series_type,
                        count,
                        ts(start),
                        ts(end),
                        arrow,
                    ));
                    DataEvent::SamplesRecorded {
                        user_id: stream.user_id,
                        batch: SampleBatchRef {
                            batch_id,
                            data_source_id,
                            series_type,
                            count,
                            start: ts(start),
                            end: ts(end),
                        },
                    }
                }
            };
            events.push(NewEvent {
                aggregate_type: DataEvent::AGGREGATE_TYPE.into(),
                aggregate_id: stream.stream_id.to_string(),
                sequence,
                event_type: event.event_type().into(),
                event_version: "1".into(),
                payload: to_payload(&event),
                metadata: stream.metadata.clone(),
                user_id: Some(stream.user_id),
            });
        }
        out.push(events);
    }
    if !rows.is_empty() {
        let sink = tx
            .copy_in(
                "COPY sample_batches (id, user_id, data_source_id, series_type, count, start_time, end_time, arrow) \
                 FROM STDIN BINARY",
            )
            .await?;
        let writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::UUID,
                Type::UUID,
                Type::INT2,
                Type::INT4,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::BYTEA,
            ],
        );
        futures::pin_mut!(writer);
        for (id, user, ds, st, count, start, end, arrow) in &rows {
            let row: [&(dyn ToSql + Sync); 8] = [id, user, ds, st, count, start, end, arrow];
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await?;
    }
    Ok((out, samples))
}
