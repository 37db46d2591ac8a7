//! Commands on aggregates: cqrs-es over the log's repository (`wearhouse_log`), and the waits
//! that give the API read-your-writes on the read models.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework};
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;
use wearhouse_log::read::last_cursor_of;
use wearhouse_log::{append, to_payload, AppendError, NewEvent, PgEventRepository};
use wearhouse_projections::Runner;

pub use wearhouse_log::Actor;

pub type Framework<A> = CqrsFramework<A, PersistedEventStore<PgEventRepository, A>>;

/// Runs commands on aggregates and, when asked, waits until a read model shows the result.
#[derive(Clone)]
pub struct Commands {
    pub pool: Pool,
    pub runner: Option<Arc<Runner>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    #[error("{0}")]
    Rejected(E),
    #[error("conflict: the resource was changed concurrently, retry")]
    Conflict,
    #[error("event store: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl<E: std::error::Error> From<AggregateError<E>> for CommandError<E> {
    fn from(e: AggregateError<E>) -> Self {
        match e {
            AggregateError::UserError(e) => CommandError::Rejected(e),
            AggregateError::AggregateConflict => CommandError::Conflict,
            AggregateError::DatabaseConnectionError(e)
            | AggregateError::DeserializationError(e)
            | AggregateError::UnexpectedError(e) => CommandError::Store(e),
        }
    }
}

impl Commands {
    fn framework<A: Aggregate<Services = ()>>(&self) -> Framework<A> {
        let store = PersistedEventStore::new_event_store(PgEventRepository::new(self.pool.clone()));
        CqrsFramework::new(store, vec![], ())
    }

    /// Executes `command` on aggregate `A` `id`. When `read_model` is given, returns only once
    /// that projection has applied the resulting events (read-your-writes for the API).
    pub async fn execute<A: Aggregate<Services = ()>>(
        &self,
        id: &str,
        command: A::Command,
        actor: &Actor,
        user_id: Option<Uuid>,
        read_model: Option<&str>,
    ) -> Result<(), CommandError<A::Error>> {
        let mut metadata = HashMap::new();
        metadata.insert("actor".to_string(), format!("{}:{}", actor.kind, actor.id));
        if let Some(r) = &actor.request_id {
            metadata.insert("request_id".to_string(), r.clone());
        }
        if let Some(u) = user_id {
            metadata.insert("user_id".to_string(), u.to_string());
        }
        let mut origin = serde_json::Map::new();
        wearhouse_log::origin::annotate(&mut origin);
        for (k, v) in origin {
            if let Value::String(v) = v {
                metadata.insert(k, v);
            }
        }
        self.framework::<A>()
            .execute_with_metadata(id, command, metadata)
            .await?;
        if let (Some(name), Some(runner)) = (read_model, &self.runner) {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| CommandError::Store(Box::new(e)))?;
            let cursor = last_cursor_of(&client, A::TYPE, id)
                .await
                .map_err(|e| CommandError::Store(Box::new(e)))?;
            // Give the connection back before waiting: the projection runner may need it.
            drop(client);
            tracing::debug!(read_model = name, ?cursor, "waiting for read model");
            if let Some(cursor) = cursor {
                if !runner.wait_for(name, cursor, Duration::from_secs(10)).await {
                    tracing::warn!(read_model = name, "read model did not catch up within 10 s");
                }
            }
        }
        Ok(())
    }
}

impl Commands {
    /// Records a user's change to their data (a deletion) on its own `UserRecord` stream.
    pub async fn record_user_change(
        &self,
        stream_id: &str,
        event: &wearhouse_domain::records::DataEvent,
        actor: &Actor,
        read_model: Option<&str>,
    ) -> Result<(), AppendError> {
        let payload = serde_json::to_value(event).expect("data events serialize");
        self.record(
            wearhouse_domain::records::RecordKind::AGGREGATE_TYPE,
            stream_id,
            event.event_type(),
            payload,
            actor,
            Some(event.user_id()),
            read_model,
        )
        .await
    }

    /// Appends one event to a stream that has no aggregate to load (its validity was decided by
    /// the caller), at the stream's next sequence, retrying if another writer took it. When
    /// `read_model` is given, returns once that projection has applied the event.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        event_type: &str,
        payload: Value,
        actor: &Actor,
        user_id: Option<Uuid>,
        read_model: Option<&str>,
    ) -> Result<(), AppendError> {
        let mut metadata = serde_json::json!({
            "actor": format!("{}:{}", actor.kind, actor.id),
            "request_id": actor.request_id,
            "user_id": user_id.map(|u| u.to_string()),
        });
        if let Some(m) = metadata.as_object_mut() {
            wearhouse_log::origin::annotate(m);
        }
        let client = self.pool.get().await?;
        let mut attempts = 0;
        let cursor = loop {
            let next: i64 = client
                .query_one(
                    "SELECT coalesce(max(sequence), 0) + 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
                    &[&aggregate_type, &aggregate_id],
                )
                .await?
                .get(0);
            let event = NewEvent {
                aggregate_type: aggregate_type.into(),
                aggregate_id: aggregate_id.into(),
                sequence: next,
                event_type: event_type.into(),
                event_version: "1".into(),
                payload: to_payload(&payload),
                metadata: metadata.clone(),
                user_id,
            };
            match append(&client, &[event]).await {
                Ok(c) => break c,
                Err(AppendError::Conflict) if attempts < 5 => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        if let (Some(name), Some(runner), Some(cursor)) = (read_model, &self.runner, cursor) {
            if !runner.wait_for(name, cursor, Duration::from_secs(10)).await {
                tracing::warn!(read_model = name, "read model did not catch up within 10 s");
            }
        }
        Ok(())
    }
}
