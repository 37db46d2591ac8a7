//! Syncs as durable jobs (kind [`KIND`]): a sync started from the API (`async=true`), the
//! first pull after a connection, and the scheduler's due pulls. The run (`SyncRun` in the log)
//! is what clients watch; the job makes sure the run happens, once, even across restarts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};
use uuid::Uuid;

use crate::jobs::{EnqueueOptions, JobContext, JobError, JobFailure, JobHandler, Jobs};
use crate::providers::engine::{Engine, SyncError, SyncRequest};

pub const KIND: &str = "provider_sync";

/// Attempts of a scheduled pull before it waits for the next interval.
const SCHEDULED_ATTEMPTS: i32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum SyncsError {
    /// Refused or failed before the job existed (unknown provider, no connection, ...).
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("recording the sync job: {0}")]
    Jobs(#[from] JobError),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", wearhouse_projections::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// What a sync job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncJobPayload {
    pub request: SyncRequest,
    /// A scheduled pull: each attempt is a run of its own (a failed run is final), its window
    /// ending when it starts, and a Retry-After postpones the next attempt.
    #[serde(default)]
    pub scheduled: bool,
}

#[derive(Clone)]
pub struct Syncs {
    engine: Arc<Engine>,
    jobs: Jobs,
}

impl Syncs {
    pub fn new(engine: Arc<Engine>, jobs: Jobs) -> Self {
        Syncs { engine, jobs }
    }

    /// Queues the run (visible at once as `queued`) and records the job that runs it.
    pub async fn start_async(&self, req: SyncRequest) -> Result<Uuid, SyncsError> {
        self.engine.queue(&req).await?;
        self.enqueue(req).await
    }

    /// Records a job running `req` (keyed by its run id).
    pub async fn enqueue(&self, req: SyncRequest) -> Result<Uuid, SyncsError> {
        let run_id = req.run_id;
        let payload = SyncJobPayload {
            request: req,
            scheduled: false,
        };
        self.jobs
            .enqueue(
                KIND,
                Some(&run_id.to_string()),
                serde_json::to_value(payload).expect("sync payloads serialize"),
            )
            .await?;
        Ok(run_id)
    }

    /// Records the scheduled pull of one connection for the interval `slot`, unless one is
    /// already waiting or running for it (several processes' schedulers share the jobs).
    pub async fn enqueue_scheduled(&self, req: SyncRequest, slot: i64) -> Result<bool, SyncsError> {
        let connection = format!("{}:{}", req.user_id, req.provider);
        let waiting = self
            .engine
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM jobs WHERE kind = $1 AND key LIKE $2 || ':%' \
                   AND state IN ('pending', 'running') LIMIT 1",
                &[&KIND, &format!("scheduled:{connection}")],
            )
            .await?
            .is_some();
        if waiting {
            return Ok(false);
        }
        let payload = SyncJobPayload {
            request: req,
            scheduled: true,
        };
        self.jobs
            .enqueue_with(
                KIND,
                Some(&format!("scheduled:{connection}:{slot}")),
                serde_json::to_value(payload).expect("sync payloads serialize"),
                EnqueueOptions {
                    max_attempts: SCHEDULED_ATTEMPTS,
                    run_at: None,
                },
            )
            .await?;
        Ok(true)
    }
}

/// How far a run got, from its stream in the log.
#[derive(Debug, PartialEq)]
enum RunState {
    Unknown,
    Queued,
    Started,
    Ended,
}

async fn run_state(engine: &Engine, run: Uuid) -> Result<RunState, SyncError> {
    let rows = engine
        .pool
        .get()
        .await
        .map_err(|e| SyncError::Store(e.to_string()))?
        .query(
            "SELECT DISTINCT event_type FROM events WHERE aggregate_type = 'SyncRun' AND aggregate_id = $1",
            &[&run.to_string()],
        )
        .await
        .map_err(|e| SyncError::Store(wearhouse_projections::pg_message(&e)))?;
    let types: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
    Ok(
        if types.iter().any(|t| {
            matches!(
                *t,
                "SyncRunCompleted" | "SyncRunFailed" | "SyncRunCancelled"
            )
        }) {
            RunState::Ended
        } else if types.contains(&"SyncRunStarted") {
            RunState::Started
        } else if types.contains(&"SyncRunQueued") {
            RunState::Queued
        } else {
            RunState::Unknown
        },
    )
}

/// Runs sync jobs.
pub struct SyncJob {
    pub engine: Arc<Engine>,
}

/// The run id of attempt `attempt` of scheduled job `job`: stable across a crash of that
/// attempt's process, distinct per attempt.
fn attempt_run(job: Uuid, attempt: i32) -> Uuid {
    Uuid::new_v5(&job, format!("attempt-{attempt}").as_bytes())
}

#[async_trait]
impl JobHandler for SyncJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure> {
        let payload: SyncJobPayload =
            serde_json::from_value(job.payload.clone()).map_err(JobFailure::permanent)?;
        let mut req = payload.request;
        if payload.scheduled {
            req.run_id = attempt_run(job.id, job.attempt);
            req.end = Utc::now();
            if job.attempt > 1 {
                self.close_interrupted(attempt_run(job.id, job.attempt - 1), req.user_id)
                    .await;
            }
            debug!(user = %req.user_id, provider = %req.provider, "scheduled pull");
        }
        let run = req.run_id;
        let state = run_state(&self.engine, run)
            .await
            .map_err(JobFailure::retry)?;
        let result = match state {
            RunState::Ended => return Ok(()),
            RunState::Started => {
                info!(%run, "resuming a sync interrupted by a restart");
                self.engine.resume(req).await
            }
            RunState::Queued | RunState::Unknown => self.engine.sync(req).await,
        };
        match result {
            Ok(_) => Ok(()),
            // Another run of the connection holds it: this one is recorded as refused.
            Err(SyncError::Busy) => Ok(()),
            Err(SyncError::RateLimited(secs)) if payload.scheduled => Err(JobFailure::RetryAfter(
                Duration::from_secs(secs),
                SyncError::RateLimited(secs).into(),
            )),
            Err(e) if payload.scheduled => Err(JobFailure::retry(e)),
            Err(e) => {
                // The run records how it ended; the job retries only if even that failed.
                match run_state(&self.engine, run).await {
                    Ok(RunState::Ended) => Ok(()),
                    _ => Err(JobFailure::retry(e)),
                }
            }
        }
    }
}

impl SyncJob {
    /// Ends a run whose process stopped mid-run (a scheduled pull's next attempt is a new run).
    async fn close_interrupted(&self, run: Uuid, user: Uuid) {
        if matches!(run_state(&self.engine, run).await, Ok(RunState::Started)) {
            let _ = self
                .engine
                .fail_run(run, user, "interrupted: the server stopped during this run")
                .await;
        }
    }
}
