//! Historical syncs and Garmin backfills: starting one (a pull of the last days, or Garmin's
//! per-type backfill requests whose data then arrives by push), its status per type, cancel,
//! and the retry of one type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wearhouse_domain::sync_run::{SyncRun, SyncRunCommand};

use crate::jobs::{JobContext, JobError, JobFailure, JobHandler, Jobs};
use crate::providers::engine::{Engine, SyncError, SyncRequest};
use crate::providers::garmin;
use crate::store::Actor;

/// The job kind that runs one historical sync or backfill run.
pub const RUN: &str = "backfill.run";

/// Upstream's retry bound, reported as is; wearhouse retries only on request.
pub const MAX_ATTEMPTS: i64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("Unknown provider {0}")]
    UnknownProvider(String),
    #[error("{0} has no historical sync")]
    NoHistory(&'static str),
    #[error("Unknown backfill type {0}")]
    UnknownType(String),
    #[error("No backfill in progress for this user")]
    NothingRunning,
    /// Another sync of the connection (or of its provider account) holds the lock: the
    /// request was not started.
    #[error("A sync of this {0} connection is already running; {1} was not requested again. Retry once it ends.")]
    Busy(&'static str, String),
    #[error("sync")]
    Sync(#[from] SyncError),
    #[error("database")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database")]
    Db(#[from] tokio_postgres::Error),
    #[error("recording the run's job")]
    Job(#[from] JobError),
    #[error("recording the run")]
    Run(#[source] crate::store::CommandError<wearhouse_domain::sync_run::SyncRunError>),
}

/// A started historical sync.
pub struct Historical {
    pub provider: &'static str,
    /// `pull_api` or `webhook_backfill`.
    pub method: &'static str,
    pub task_id: Uuid,
    pub days: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The job of one run: the sync request, recorded so a restart runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    pub source: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub data_types: Vec<String>,
}

impl RunJob {
    fn request(&self) -> SyncRequest {
        SyncRequest {
            run_id: self.run_id,
            user_id: self.user_id,
            provider: self.provider.clone(),
            source: self.source.clone(),
            start: self.start,
            end: self.end,
            data_types: self.data_types.clone(),
        }
    }
}

/// A Garmin backfill's progress, in upstream's shape.
pub struct Status {
    pub overall_status: String,
    pub current_window: i32,
    pub total_windows: i32,
    pub windows: BTreeMap<String, BTreeMap<String, String>>,
    pub summary: BTreeMap<String, BTreeMap<String, i64>>,
    pub in_progress: bool,
    pub retry_phase: bool,
    pub retry_type: Option<String>,
    pub retry_window: Option<i32>,
    pub attempt_count: i64,
    pub max_attempts: i64,
    pub permanently_failed: bool,
}

/// A backfill run: id, status, start, the types it asked for (empty: all), its per-type
/// request outcomes.
type RunRow = (Uuid, String, DateTime<Utc>, Vec<String>, Vec<String>);

#[derive(Clone)]
pub struct Backfills {
    engine: Arc<Engine>,
    jobs: Jobs,
}

impl Backfills {
    pub fn new(engine: Arc<Engine>, jobs: Jobs) -> Backfills {
        Backfills { engine, jobs }
    }

    /// The job handler that runs recorded runs (registered with the job runner).
    pub fn handler(&self) -> Arc<dyn JobHandler> {
        Arc::new(RunHandler(self.clone()))
    }

    /// Starts a historical sync of the last `days` days (capped by the provider): a pull, or
    /// for Garmin the backfill requests.
    pub async fn historical(
        &self,
        user: Uuid,
        provider: &str,
        days: i64,
    ) -> Result<Historical, BackfillError> {
        let (p, _) = self
            .engine
            .registry
            .get(provider)
            .ok_or_else(|| BackfillError::UnknownProvider(provider.into()))?;
        if !p.has_history() {
            return Err(BackfillError::NoHistory(p.name()));
        }
        let caps = p.capabilities();
        let days = caps
            .max_historical_days
            .map_or(days, |max| days.min(max as i64));
        let end = Utc::now();
        let start = end - chrono::Duration::days(days);
        let job = RunJob {
            run_id: Uuid::new_v4(),
            user_id: user,
            provider: p.name().into(),
            source: "backfill".into(),
            start,
            end,
            data_types: vec![],
        };
        let task_id = job.run_id;
        self.enqueue(&job).await?;
        Ok(Historical {
            provider: p.name(),
            method: if caps.rest_pull {
                "pull_api"
            } else {
                "webhook_backfill"
            },
            task_id,
            days,
            start,
            end,
        })
    }

    /// Requests one Garmin backfill type again. Refused (nothing recorded, no attempt counted)
    /// while another sync of the connection runs: it would be refused when it ran.
    pub async fn retry(&self, user: Uuid, type_name: &str) -> Result<(), BackfillError> {
        if !garmin::backfill_type_names().iter().any(|t| t == type_name) {
            return Err(BackfillError::UnknownType(type_name.into()));
        }
        if self.engine.busy(user, "garmin").await? {
            return Err(BackfillError::Busy("Garmin", type_name.into()));
        }
        let end = Utc::now();
        let job = RunJob {
            run_id: Uuid::new_v4(),
            user_id: user,
            provider: "garmin".into(),
            source: "backfill".into(),
            start: end - chrono::Duration::days(30),
            end,
            data_types: vec![type_name.into()],
        };
        self.enqueue(&job).await?;
        Ok(())
    }

    /// Asks the running Garmin backfill of `user` to stop before its next request.
    pub async fn cancel(&self, user: Uuid) -> Result<(), BackfillError> {
        let running = self
            .engine
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM sync_runs WHERE user_id = $1 AND provider = 'garmin' AND source = 'backfill' \
                 AND status = 'in_progress' LIMIT 1",
                &[&user],
            )
            .await?
            .is_some();
        if !running {
            return Err(BackfillError::NothingRunning);
        }
        if let Ok(mut c) = self.engine.cancelled.lock() {
            c.insert((user, "garmin".into()));
        }
        Ok(())
    }

    /// Records the run's job; the job queues the run (so a run is never queued without the
    /// job that runs it) and runs it.
    async fn enqueue(&self, job: &RunJob) -> Result<(), BackfillError> {
        let payload = serde_json::to_value(job).expect("a run job serializes");
        let key = job.run_id.to_string();
        self.jobs.enqueue(RUN, Some(&key), payload).await?;
        Ok(())
    }

    /// Runs a recorded run. Safe to run again: a run that already ended is left alone; one a
    /// crash interrupted is closed as failed and run afresh under a new id. While another sync
    /// of the account runs, it waits for it rather than failing (the API said it would run).
    pub async fn run(&self, job: &RunJob) -> Result<(), BackfillError> {
        let mut req = job.request();
        match self.run_state(req.run_id).await? {
            RunState::Ended => return Ok(()),
            RunState::Unknown => self.engine.queue(&req).await?,
            RunState::Queued => {}
            RunState::Interrupted => {
                let fail = SyncRunCommand::Fail {
                    error: "interrupted by a restart; run again".into(),
                    at: Utc::now(),
                };
                self.run_cmd(req.run_id, req.user_id, fail).await?;
                req.run_id = Uuid::new_v4();
                self.engine.queue(&req).await?;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while self.engine.busy(req.user_id, &req.provider).await?
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        match self.engine.sync(req).await {
            // The run's own failure is recorded on it; nothing to redo.
            Ok(_) | Err(_) => Ok(()),
        }
    }

    async fn run_state(&self, run: Uuid) -> Result<RunState, BackfillError> {
        let types: Vec<String> = self
            .engine
            .pool
            .get()
            .await?
            .query(
                "SELECT event_type FROM events WHERE aggregate_type = 'SyncRun' AND aggregate_id = $1",
                &[&run.to_string()],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let ended = types.iter().any(|t| {
            matches!(
                t.as_str(),
                "SyncRunCompleted" | "SyncRunFailed" | "SyncRunCancelled"
            )
        });
        Ok(if ended {
            RunState::Ended
        } else if types.iter().any(|t| t == "SyncRunStarted") {
            RunState::Interrupted
        } else if types.is_empty() {
            RunState::Unknown
        } else {
            RunState::Queued
        })
    }

    async fn run_cmd(
        &self,
        run: Uuid,
        user: Uuid,
        cmd: SyncRunCommand,
    ) -> Result<(), BackfillError> {
        let actor = Actor {
            kind: "system",
            id: "sync".into(),
            request_id: None,
        };
        self.engine
            .commands
            .execute::<SyncRun>(&run.to_string(), cmd, &actor, Some(user), None)
            .await
            .map_err(BackfillError::Run)
    }

    /// The latest Garmin backfill of `user` and, per type, whether its data arrived. wearhouse
    /// requests the whole window at once, so there is one window ("0").
    pub async fn status(&self, user: Uuid) -> Result<Status, BackfillError> {
        let client = self.engine.pool.get().await?;
        // Every backfill run, oldest first, with the types it asked for (empty: all) and its
        // per-type request outcomes (`type: requested|duplicate|failed`).
        let runs: Vec<RunRow> = client
            .query(
                "SELECT r.id, r.status, r.started_at, \
                   coalesce((SELECT array(SELECT jsonb_array_elements_text(q.payload->'data_types')) FROM events q \
                     WHERE q.aggregate_type = 'SyncRun' AND q.aggregate_id = r.id::text \
                       AND q.event_type = 'SyncRunQueued' AND q.payload ? 'data_types' LIMIT 1), '{}'), \
                   coalesce((SELECT array_agg(e.payload->>'message' ORDER BY e.sequence) FROM events e \
                     WHERE e.aggregate_type = 'SyncRun' AND e.aggregate_id = r.id::text \
                       AND e.event_type = 'SyncRunProgressed' AND e.payload->>'message' IS NOT NULL), '{}') \
                 FROM sync_runs r WHERE r.user_id = $1 AND r.provider = 'garmin' AND r.source = 'backfill' \
                 ORDER BY r.started_at",
                &[&user],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let types = garmin::backfill_type_names();
        // The backfill is the latest run that asked for every type; later runs that asked
        // for some are its retries.
        let main = runs.iter().rposition(|r| r.3.is_empty());
        let Some((_, status, started, _, _)) = main.and_then(|i| runs.get(i)).cloned() else {
            let windows = BTreeMap::from([(
                "0".to_string(),
                types
                    .iter()
                    .map(|t| (t.clone(), "pending".to_string()))
                    .collect(),
            )]);
            let summary = types.iter().map(|t| (t.clone(), zero_counts())).collect();
            return Ok(Status {
                overall_status: "pending".into(),
                current_window: 0,
                total_windows: 1,
                windows,
                summary,
                in_progress: false,
                retry_phase: false,
                retry_type: None,
                retry_window: None,
                attempt_count: 0,
                max_attempts: MAX_ATTEMPTS,
                permanently_failed: false,
            });
        };
        let main = main.unwrap_or_default();
        let retries = &runs[main + 1..];
        // Each type's latest request outcome (`type: requested|duplicate|failed`), retries last.
        let mut requested: BTreeMap<String, String> = BTreeMap::new();
        for run in std::iter::once(&runs[main]).chain(retries) {
            for m in &run.4 {
                if let Some((t, outcome)) = m.split_once(": ") {
                    requested.insert(t.to_string(), outcome.to_string());
                }
            }
        }
        // A type is done once a push of it was handled after the backfill began.
        let arrived: Vec<String> = client
            .query(
                "SELECT DISTINCT split_part(message, ':', 1) FROM sync_runs WHERE user_id = $1 AND provider = 'garmin' \
                 AND source = 'webhook' AND status IN ('success', 'skipped') AND started_at >= $2",
                &[&user, &started],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let waited = Utc::now() - started;
        let mut window = BTreeMap::new();
        let mut summary = BTreeMap::new();
        for t in &types {
            let s = garmin::backfill_type_status(
                requested.get(t).map(String::as_str),
                arrived.iter().any(|a| a == t),
                waited,
            );
            window.insert(t.clone(), s.to_string());
            let mut counts = zero_counts();
            if let Some(n) = counts.get_mut(s) {
                *n += 1;
            }
            summary.insert(t.clone(), counts);
        }
        let retrying = retries.iter().rev().find(|r| r.1 == "in_progress");
        let retry_type = retrying.and_then(|r| r.3.first().cloned());
        let statuses: Vec<&str> = window.values().map(String::as_str).collect();
        let overall = match (status.as_str(), retrying) {
            ("cancelled", _) => "cancelled",
            (_, Some(_)) => "retry_in_progress",
            _ => garmin::backfill_overall(&status, &statuses),
        };
        let done = matches!(overall, "complete" | "permanently_failed" | "cancelled");
        Ok(Status {
            overall_status: overall.into(),
            current_window: i32::from(done),
            total_windows: 1,
            windows: BTreeMap::from([("0".to_string(), window)]),
            summary,
            in_progress: matches!(overall, "in_progress" | "retry_in_progress"),
            retry_phase: retrying.is_some(),
            retry_window: retrying.map(|_| 0),
            retry_type,
            attempt_count: retries.len() as i64,
            max_attempts: MAX_ATTEMPTS,
            permanently_failed: overall == "permanently_failed",
        })
    }
}

/// Runs [`RUN`] jobs.
struct RunHandler(Backfills);

#[async_trait]
impl JobHandler for RunHandler {
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure> {
        let run: RunJob =
            serde_json::from_value(job.payload.clone()).map_err(JobFailure::permanent)?;
        self.0.run(&run).await.map_err(JobFailure::retry)
    }
}

enum RunState {
    /// Not queued yet: the job comes first.
    Unknown,
    Queued,
    Interrupted,
    Ended,
}

fn zero_counts() -> BTreeMap<String, i64> {
    ["done", "timed_out", "failed"]
        .iter()
        .map(|k| (k.to_string(), 0))
        .collect()
}
