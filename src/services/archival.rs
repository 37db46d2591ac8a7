//! Archival of old samples (the contract's data lifecycle settings): the policy is an event on
//! the `Archival` settings stream; a run is a durable job that decides the run's cutoffs from
//! the policy and records them as a `SamplesArchived` event, which the samples read model
//! applies (`wearhouse_projections::archival`). `serve` queues one run a day.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::Pool;
use serde_json::json;
use tracing::info;
use uuid::Uuid;
use wearhouse_domain::archival::{self, ArchivalEvent};

use crate::jobs::{JobContext, JobFailure, JobHandler, Jobs};
use crate::store::{Actor, Commands};

/// Job kind of a run.
pub const KIND: &str = "archival_run";

#[derive(Debug, thiserror::Error)]
pub enum ArchivalError {
    #[error("database: {}", wearhouse_log::pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("event store: {0}")]
    Append(#[from] wearhouse_log::AppendError),
    #[error("job queue: {0}")]
    Jobs(#[from] crate::jobs::JobError),
}

/// The policy: days after which samples are archived, and after which data is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Policy {
    pub archive_after_days: Option<i32>,
    pub delete_after_days: Option<i32>,
}

/// Table sizes behind the contract's `StorageEstimate`.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    pub live_data_bytes: i64,
    pub live_index_bytes: i64,
    pub archive_data_bytes: i64,
    pub archive_index_bytes: i64,
    pub total_bytes: i64,
    pub live_row_count: i64,
    pub archive_row_count: i64,
    pub live_data_span_days: i64,
}

#[derive(Clone)]
pub struct Archival {
    pool: Pool,
    commands: Commands,
    jobs: Jobs,
}

impl Archival {
    pub fn new(pool: Pool, commands: Commands, jobs: Jobs) -> Self {
        Archival {
            pool,
            commands,
            jobs,
        }
    }

    pub async fn policy(&self) -> Result<Policy, ArchivalError> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT archive_after_days, delete_after_days FROM archival_settings WHERE id = 1",
                &[],
            )
            .await?;
        Ok(row
            .map(|r| Policy {
                archive_after_days: r.get(0),
                delete_after_days: r.get(1),
            })
            .unwrap_or_default())
    }

    /// Records a new policy (bounds checked by the caller) and returns once it is readable.
    pub async fn change(&self, policy: Policy, actor: &Actor) -> Result<(), ArchivalError> {
        let event = ArchivalEvent::ArchivalSettingChanged {
            archive_after_days: policy.archive_after_days,
            delete_after_days: policy.delete_after_days,
            at: Utc::now(),
        };
        self.commands
            .record(
                archival::AGGREGATE_TYPE,
                archival::SETTINGS_STREAM,
                event.event_type(),
                serde_json::to_value(&event).expect("archival events serialize"),
                actor,
                None,
                Some("archival_settings"),
            )
            .await?;
        Ok(())
    }

    /// Queues a run on behalf of `actor`; `key` makes it one run per key (the daily run).
    pub async fn enqueue(&self, actor: &Actor, key: Option<&str>) -> Result<Uuid, ArchivalError> {
        let payload = json!({
            "actor_kind": actor.kind,
            "actor_id": actor.id,
            "request_id": actor.request_id,
        });
        Ok(self.jobs.enqueue(KIND, key, payload).await?)
    }

    /// One run: its cutoffs from the policy and today's UTC date, recorded as an event. Doing
    /// it again is harmless (the same cutoffs find nothing left to archive).
    pub async fn run(&self, actor: &Actor) -> Result<(), ArchivalError> {
        let policy = self.policy().await?;
        let cutoffs = archival::cutoffs(
            policy.archive_after_days,
            policy.delete_after_days,
            Utc::now().date_naive(),
        );
        if cutoffs.is_empty() {
            info!("archival: no policy set, nothing to do");
            return Ok(());
        }
        let event = ArchivalEvent::SamplesArchived {
            cutoffs,
            at: Utc::now(),
        };
        self.commands
            .record(
                archival::AGGREGATE_TYPE,
                archival::RUNS_STREAM,
                event.event_type(),
                serde_json::to_value(&event).expect("archival events serialize"),
                actor,
                None,
                None,
            )
            .await?;
        info!(?cutoffs, "archival run recorded");
        Ok(())
    }

    /// Sizes of the live timeseries and the archive, and the database's total.
    pub async fn storage(&self, timescaledb: bool) -> Result<Storage, ArchivalError> {
        let client = self.pool.get().await?;
        let sizes = |table: &'static str| {
            let client = &client;
            async move {
                let row = if timescaledb {
                    client
                        .query_one(
                            "SELECT coalesce(table_bytes, 0) + coalesce(toast_bytes, 0), coalesce(index_bytes, 0) \
                             FROM hypertable_detailed_size($1::text::regclass)",
                            &[&table],
                        )
                        .await?
                } else {
                    // A plain table or the partitions of one.
                    client
                        .query_one(
                            "SELECT coalesce(sum(pg_table_size(relid)), 0)::int8, coalesce(sum(pg_indexes_size(relid)), 0)::int8 \
                             FROM pg_partition_tree($1::text::regclass)",
                            &[&table],
                        )
                        .await?
                };
                Ok::<(i64, i64), tokio_postgres::Error>((row.get(0), row.get(1)))
            }
        };
        let (live_data_bytes, live_index_bytes) = sizes("samples").await?;
        let (archive_data_bytes, archive_index_bytes) = sizes("sample_archive").await?;
        // Counts the projections keep, not scans of the timeseries.
        let row = client
            .query_one(
                "SELECT pg_database_size(current_database()), \
                   (SELECT coalesce(sum(count), 0)::int8 FROM sample_counts), \
                   (SELECT count(*) FROM sample_archive), \
                   (SELECT coalesce(extract(day FROM max(c.last_time) - greatest(min(c.first_time), \
                      (SELECT max(archived_before) FROM archival_state))), 0)::int8 \
                      FROM sample_counts c WHERE c.count > 0)",
                &[],
            )
            .await?;
        Ok(Storage {
            live_data_bytes,
            live_index_bytes,
            archive_data_bytes,
            archive_index_bytes,
            total_bytes: row.get(0),
            live_row_count: row.get(1),
            archive_row_count: row.get(2),
            live_data_span_days: row.get::<_, i64>(3).max(0),
        })
    }

    pub fn handler(&self) -> Arc<dyn JobHandler> {
        Arc::new(RunJob(self.clone()))
    }
}

struct RunJob(Archival);

#[async_trait]
impl JobHandler for RunJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure> {
        let kind = match job.payload["actor_kind"].as_str() {
            Some("developer") => "developer",
            Some("api_key") => "api_key",
            _ => "system",
        };
        let actor = Actor {
            kind,
            id: job.payload["actor_id"]
                .as_str()
                .unwrap_or("archival")
                .to_string(),
            request_id: job.payload["request_id"].as_str().map(String::from),
        };
        self.0.run(&actor).await.map_err(JobFailure::retry)
    }
}

/// Queues the day's run once a day (keyed by the date, so several `serve` processes queue
/// one), checking every `every`.
pub async fn schedule(
    archival: Archival,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let actor = Actor {
        kind: "system",
        id: "archival".into(),
        request_id: None,
    };
    loop {
        let key = format!("daily:{}", Utc::now().date_naive());
        let queued = async {
            if archival.policy().await? != Policy::default() {
                archival.enqueue(&actor, Some(&key)).await?;
            }
            Ok::<(), ArchivalError>(())
        };
        if let Err(e) = queued.await {
            tracing::warn!(error = %e, "could not queue the daily archival run");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
