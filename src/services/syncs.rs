//! Syncs as durable jobs (kind [`KIND`]): a sync started from the API (`async=true`), the
//! first pull after a connection, and the scheduler's due pulls. The run (`SyncRun` in the log)
//! is what clients watch; the job makes sure the run happens, once, even across restarts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::jobs::{EnqueueOptions, JobContext, JobError, JobFailure, JobHandler, Jobs};
use crate::providers::engine::{store_err, Engine, SyncError, SyncRequest};
use wearhouse_projections::Runner;

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
    #[error("database: {}", wearhouse_log::pg_message(.0))]
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
    /// The projection runner, when this process runs one: a pull run from the API answers
    /// once its run's read model caught up.
    runner: Option<Arc<Runner>>,
}

impl Syncs {
    pub fn new(engine: Arc<Engine>, jobs: Jobs) -> Self {
        Syncs {
            engine,
            jobs,
            runner: None,
        }
    }

    /// The same, waiting on `runner` for read-your-writes.
    pub fn with_runner(self, runner: Option<Arc<Runner>>) -> Self {
        Syncs { runner, ..self }
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

/// Which data types a pull from the API asks for (upstream's `data_type`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PullScope {
    All,
    Workouts,
    /// Everything but workouts (sleep, recovery, activity, ...).
    Data247,
}

/// A pull asked for from the API.
#[derive(Debug, Clone)]
pub struct PullOrder {
    pub user_id: Uuid,
    pub provider: String,
    /// The window's start in Unix seconds; 0: not given.
    pub since: i64,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub scope: PullScope,
}

/// Why a pull from the API was refused or could not run.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("Unknown provider {0}")]
    UnknownProvider(String),
    #[error("{0} does not support pull sync")]
    NotPullable(&'static str),
    #[error("No active {0} connection for this user")]
    NoConnection(&'static str),
    #[error("The sync window is empty: its start must be before its end")]
    EmptyWindow,
    #[error("Provider '{0}' does not support workouts")]
    NoWorkouts(&'static str),
    #[error("Provider '{0}' does not support 247 data (sleep/recovery/activity)")]
    NoData247(&'static str),
    /// Refused by the engine before running (another run of the connection holds it).
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Syncs(#[from] SyncsError),
    #[error("connection pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", wearhouse_log::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// A pull checked and ready to run or queue.
#[derive(Debug, Clone)]
pub struct Pull {
    pub request: SyncRequest,
    pub scope: PullScope,
    /// Whether the provider pulls workouts (reported apart from the other types).
    pulls_workouts: bool,
}

/// How a pull run to its end went, in upstream's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum PullReport {
    /// `workouts` (records) and `data_247` (per type), for the data types asked for.
    Done(Value),
    /// The run failed (it records why); the message says it.
    Failed(String),
}

impl Syncs {
    /// Checks a pull asked for from the API and resolves its window and data types: from
    /// `since`, else the window's start, else the connection's last sync (else a day ago), to
    /// the window's end or now.
    pub async fn plan_pull(&self, order: PullOrder) -> Result<Pull, PullError> {
        let (p, _) = self
            .engine
            .registry
            .get(&order.provider)
            .ok_or_else(|| PullError::UnknownProvider(order.provider.clone()))?;
        let name = p.name();
        let pull = p.as_pull().ok_or(PullError::NotPullable(name))?;
        let last: Option<DateTime<Utc>> = self
            .engine
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT last_synced_at FROM connections WHERE user_id = $1 AND provider = $2 AND status = 'active'",
                &[&order.user_id, &name],
            )
            .await?
            .ok_or(PullError::NoConnection(name))?
            .get(0);
        let start = if order.since > 0 {
            DateTime::from_timestamp(order.since, 0).unwrap_or_default()
        } else if let Some(t) = order.window_start {
            t
        } else {
            last.unwrap_or_else(|| Utc::now() - chrono::Duration::days(1))
        };
        let end = order.window_end.unwrap_or_else(Utc::now);
        if start >= end {
            return Err(PullError::EmptyWindow);
        }
        let (workouts, other): (Vec<&str>, Vec<&str>) =
            pull.data_types().iter().partition(|t| **t == "workout");
        let owned = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
        let pulls_workouts = !workouts.is_empty();
        let data_types = match order.scope {
            PullScope::All => vec![],
            PullScope::Workouts if workouts.is_empty() => return Err(PullError::NoWorkouts(name)),
            PullScope::Workouts => owned(workouts),
            PullScope::Data247 if other.is_empty() => return Err(PullError::NoData247(name)),
            PullScope::Data247 => owned(other),
        };
        Ok(Pull {
            request: SyncRequest {
                run_id: Uuid::new_v4(),
                user_id: order.user_id,
                provider: name.into(),
                source: "pull".into(),
                start,
                end,
                data_types,
            },
            scope: order.scope,
            pulls_workouts,
        })
    }

    /// Runs `pull` now and answers once the run's read model shows how it ended (read your
    /// writes). Refused (`Busy`) when another run of the connection holds it.
    pub async fn run_pull(&self, pull: Pull) -> Result<PullReport, PullError> {
        let run_id = pull.request.run_id;
        let result = self.engine.sync(pull.request).await;
        self.wait_for_run(run_id).await;
        match result {
            Ok(o) => {
                let mut details = serde_json::Map::new();
                if pull.scope != PullScope::Data247 && pull.pulls_workouts {
                    let workouts: u64 = o
                        .per_type
                        .iter()
                        .filter(|(t, _)| t == "workout")
                        .map(|(_, n)| n)
                        .sum();
                    details.insert("workouts".into(), Value::from(workouts));
                }
                if pull.scope != PullScope::Workouts {
                    let other: serde_json::Map<String, Value> = o
                        .per_type
                        .iter()
                        .filter(|(t, _)| t != "workout")
                        .map(|(t, n)| (t.clone(), Value::from(*n)))
                        .collect();
                    details.insert("data_247".into(), Value::Object(other));
                }
                Ok(PullReport::Done(Value::Object(details)))
            }
            Err(SyncError::Busy) => Err(SyncError::Busy.into()),
            Err(e) => Ok(PullReport::Failed(e.to_string())),
        }
    }

    /// Waits (up to 10 s) for the `sync_runs` read model to show everything run `run_id` wrote.
    async fn wait_for_run(&self, run_id: Uuid) {
        let Some(runner) = &self.runner else {
            return;
        };
        let Ok(client) = self.engine.pool.get().await else {
            return;
        };
        let cursor =
            wearhouse_log::read::last_cursor_of(&client, "SyncRun", &run_id.to_string()).await;
        drop(client);
        if let Ok(Some(c)) = cursor {
            if !runner
                .wait_for("sync_runs", c, Duration::from_secs(10))
                .await
            {
                warn!(run = %run_id, "sync_runs read model did not catch up within 10 s");
            }
        }
    }
}

/// How far a run got, from its stream in the log.
#[derive(Debug, PartialEq)]
pub(crate) enum RunState {
    Unknown,
    Queued,
    Started,
    Ended,
}

pub(crate) async fn run_state(engine: &Engine, run: Uuid) -> Result<RunState, SyncError> {
    let rows = engine
        .pool
        .get()
        .await
        .map_err(store_err)?
        .query(
            "SELECT DISTINCT event_type FROM events WHERE aggregate_type = 'SyncRun' AND aggregate_id = $1",
            &[&run.to_string()],
        )
        .await
        .map_err(store_err)?;
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
