//! `PersistedEventRepository` for cqrs-es on deadpool-postgres (postgres-es's layout).

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

use crate::append::{append, to_payload, AppendError, NewEvent};

#[derive(Clone)]
pub struct PgEventRepository {
    pool: Pool,
}

impl PgEventRepository {
    pub fn new(pool: Pool) -> Self {
        PgEventRepository { pool }
    }

    async fn select(
        &self,
        aggregate_type: &str,
        aggregate_id: Option<&str>,
        after: i64,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let client = self.pool.get().await.map_err(conn)?;
        let rows = client
            .query(
                "SELECT aggregate_id, sequence, aggregate_type, event_type, event_version, payload, metadata \
                 FROM events WHERE aggregate_type = $1 AND ($2::text IS NULL OR aggregate_id = $2) AND sequence > $3 \
                 ORDER BY position",
                &[&aggregate_type, &aggregate_id, &after],
            )
            .await
            .map_err(conn)?;
        Ok(rows
            .iter()
            .map(|r| {
                SerializedEvent::new(
                    r.get(0),
                    r.get::<_, i64>(1) as usize,
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            })
            .collect())
    }

    async fn stream(events: Vec<SerializedEvent>) -> Result<ReplayStream, PersistenceError> {
        let (mut feed, stream) = ReplayStream::new(events.len().max(1));
        tokio::spawn(async move {
            for e in events {
                if feed.push(Ok(e)).await.is_err() {
                    return;
                }
            }
        });
        Ok(stream)
    }
}

fn conn(e: impl std::error::Error + Send + Sync + 'static) -> PersistenceError {
    PersistenceError::ConnectionError(Box::new(e))
}

/// The user an event concerns, for the log's `user_id` column (and Kafka's message key).
fn user_of(event: &SerializedEvent) -> Option<Uuid> {
    event
        .metadata
        .get("user_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

impl PersistedEventRepository for PgEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.select(A::TYPE, Some(id), 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.select(A::TYPE, Some(id), last_sequence as i64).await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        // Aggregates here are short-lived (users, keys, connections): no snapshots needed.
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let rows: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent {
                aggregate_type: e.aggregate_type.clone(),
                aggregate_id: e.aggregate_id.clone(),
                sequence: e.sequence as i64,
                event_type: e.event_type.clone(),
                event_version: e.event_version.clone(),
                payload: to_payload(&e.payload),
                metadata: e.metadata.clone(),
                user_id: user_of(e),
            })
            .collect();
        let client = self.pool.get().await.map_err(conn)?;
        match append(&client, &rows).await {
            Ok(_) => Ok(()),
            Err(AppendError::Conflict) => Err(PersistenceError::OptimisticLockError),
            Err(AppendError::Db(e)) => Err(conn(e)),
            Err(AppendError::Pool(e)) => Err(conn(e)),
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        Self::stream(self.select(A::TYPE, Some(id), 0).await?).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        Self::stream(self.select(A::TYPE, None, 0).await?).await
    }
}
