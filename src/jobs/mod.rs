//! Durable background work: every task that must survive a restart (an uploaded import, a
//! sync started from the API or the scheduler, the first pull after an OAuth callback) is a row
//! of the `jobs` table, claimed by a [`JobRunner`] with `FOR UPDATE SKIP LOCKED`.
//!
//! Why a table and not commands recorded as events: a job is operational state (claimed,
//! retried, rescheduled, finally deleted), not part of the history; the events a job produces
//! are what goes to the log. Keeping attempts and backoff out of the log keeps it free of
//! retries nobody needs to replay.
//!
//! Delivery is at least once: a job runs again when its runner stopped before recording the
//! outcome, so every handler must be idempotent. A runner proves it is alive by holding a
//! session advisory lock on its instance key; a `running` job whose claimant no longer holds
//! that lock is claimed again at once (no lease to wait out).

mod runner;
mod store;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use runner::{backoff, JobRunner, RunnerConfig};
pub use store::{list, stats, JobRow, KindStats, ListFilter};

/// Channel of the NOTIFY sent when a job is enqueued (wakes idle runners).
pub const CHANNEL: &str = "wearhouse_jobs";

/// Attempts a job gets unless its enqueuer says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

/// Job states, as stored.
pub const STATES: [&str; 4] = ["pending", "running", "done", "failed"];

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("database: {}", wearhouse_log::pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("unknown job state {0:?} (expected pending, running, done or failed)")]
    UnknownState(String),
}

/// How a handler's run failed.
#[derive(Debug)]
pub enum JobFailure {
    /// Worth another attempt (after a backoff), while attempts remain.
    Retry(anyhow::Error),
    /// Retrying cannot help: the job fails now.
    Permanent(anyhow::Error),
    /// Worth another attempt, not before this long (a provider's Retry-After), while
    /// attempts remain.
    RetryAfter(std::time::Duration, anyhow::Error),
}

impl JobFailure {
    pub fn retry(e: impl Into<anyhow::Error>) -> Self {
        JobFailure::Retry(e.into())
    }

    pub fn permanent(e: impl Into<anyhow::Error>) -> Self {
        JobFailure::Permanent(e.into())
    }
}

/// One claimed job, as its handler sees it.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    /// 1 on the first run; counted at claim, so a run cut short by a crash counts too.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Where the request that queued the job came from; what the job appends names it.
    pub origin: Option<wearhouse_log::origin::Origin>,
}

impl JobContext {
    /// Whether a retryable failure now fails the job for good.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Does the job's work. Must be idempotent: it can run again after a crash.
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure>;
}

/// A handler that runs several claimed jobs of its kind at once (registered with
/// [`JobRunner::register_batch`]).
#[async_trait]
pub trait BatchHandler: Send + Sync + 'static {
    /// Does the jobs' work; returns one outcome per job, in the order given. Each job must be
    /// idempotent, as with [`JobHandler`]. Each job's `origin` is its own to name.
    async fn run_batch(&self, jobs: &[JobContext]) -> Vec<Result<(), JobFailure>>;
}

/// Options of one enqueue beyond kind, key and payload.
#[derive(Debug, Clone)]
pub struct EnqueueOptions {
    pub max_attempts: i32,
    /// Not before this time (default: now).
    pub run_at: Option<DateTime<Utc>>,
}

impl Default for EnqueueOptions {
    fn default() -> Self {
        EnqueueOptions {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_at: None,
        }
    }
}

/// Enqueues jobs. Cheap to clone (holds the pool).
#[derive(Clone)]
pub struct Jobs {
    pool: deadpool_postgres::Pool,
}

impl Jobs {
    pub fn new(pool: deadpool_postgres::Pool) -> Self {
        Jobs { pool }
    }

    /// Records a job; `key` makes enqueueing idempotent (same kind+key -> same job, not a
    /// second one).
    pub async fn enqueue(
        &self,
        kind: &str,
        key: Option<&str>,
        payload: serde_json::Value,
    ) -> Result<Uuid, JobError> {
        self.enqueue_with(kind, key, payload, EnqueueOptions::default())
            .await
    }

    /// [`Jobs::enqueue`] with options.
    pub async fn enqueue_with(
        &self,
        kind: &str,
        key: Option<&str>,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<Uuid, JobError> {
        let client = self.pool.get().await?;
        let id = store::insert(&**client, kind, key, &payload, &options).await?;
        // Autocommitted above, so the runner that wakes sees the row.
        store::notify(&**client, kind).await?;
        Ok(id)
    }

    /// Same, inside the caller's transaction, so the job exists iff the caller's writes commit.
    pub async fn enqueue_in(
        tx: &tokio_postgres::Transaction<'_>,
        kind: &str,
        key: Option<&str>,
        payload: serde_json::Value,
    ) -> Result<Uuid, JobError> {
        Self::enqueue_in_with(tx, kind, key, payload, EnqueueOptions::default()).await
    }

    /// [`Jobs::enqueue_in`] with options.
    pub async fn enqueue_in_with(
        tx: &tokio_postgres::Transaction<'_>,
        kind: &str,
        key: Option<&str>,
        payload: serde_json::Value,
        options: EnqueueOptions,
    ) -> Result<Uuid, JobError> {
        let id = store::insert(tx, kind, key, &payload, &options).await?;
        // NOTIFY inside a transaction is delivered at commit, and not at all on rollback.
        store::notify(tx, kind).await?;
        Ok(id)
    }

    /// The job's state, if it exists.
    pub async fn state(&self, id: Uuid) -> Result<Option<String>, JobError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt("SELECT state FROM jobs WHERE id = $1", &[&id])
            .await?
            .map(|r| r.get(0)))
    }
}
