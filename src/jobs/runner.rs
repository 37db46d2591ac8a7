//! Claiming and running jobs: bounded concurrency, retries with backoff, liveness by advisory
//! lock, draining on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wearhouse_log::origin::Origin;

use futures::{FutureExt, StreamExt};
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::{BatchHandler, JobContext, JobError, JobFailure, JobHandler, CHANNEL};

/// First key of the two-key advisory locks runners hold on their instance key (the second).
const LOCK_SPACE: i32 = 7_261_014;

/// True when the runner that claimed job `j` still holds its instance lock in this database.
const CLAIMANT_ALIVE: &str = "EXISTS (SELECT 1 FROM pg_locks l \
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
       AND l.classid = 7261014::oid AND l.objid = j.claimed_by::oid)";

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Jobs run at the same time by this runner.
    pub concurrency: usize,
    /// Longest wait between claim passes when no NOTIFY arrives.
    pub poll: Duration,
    /// Backoff of the first retry; doubles per attempt, with full jitter.
    pub retry_base: Duration,
    /// Largest backoff.
    pub retry_max: Duration,
    /// On shutdown, how long running jobs may take to finish before they are cut.
    pub grace: Duration,
    /// Finished jobs are deleted this long after they finish.
    pub retention: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            concurrency: 4,
            poll: Duration::from_secs(5),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
            grace: Duration::from_secs(10),
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

enum Handler {
    One(Arc<dyn JobHandler>),
    /// Up to this many claimed jobs are handed over at once.
    Batch(Arc<dyn BatchHandler>, usize),
}

struct Registered {
    handler: Handler,
    /// Most runs of this kind's handler at once in this runner.
    limit: usize,
}

pub struct JobRunner {
    pool: deadpool_postgres::Pool,
    config: RunnerConfig,
    handlers: HashMap<String, Registered>,
}

/// The full-jitter backoff before attempt `attempt + 1`: uniform in [0, min(max, base·2^(attempt-1))].
pub fn backoff(config: &RunnerConfig, attempt: i32) -> Duration {
    let exp = (attempt.max(1) - 1).min(30) as u32;
    let ceiling = config
        .retry_base
        .saturating_mul(1u32 << exp)
        .min(config.retry_max);
    let ms = ceiling.as_millis() as u64;
    Duration::from_millis(if ms == 0 {
        0
    } else {
        rand::rng().random_range(0..=ms)
    })
}

/// Jobs claimed for one run of their handler: one, or a batch for a batch handler.
struct Claimed {
    jobs: Vec<JobContext>,
}

impl JobRunner {
    pub fn new(pool: deadpool_postgres::Pool, config: RunnerConfig) -> Self {
        JobRunner {
            pool,
            config,
            handlers: HashMap::new(),
        }
    }

    /// Runs jobs of `kind` with `handler`.
    pub fn register(self, kind: &str, handler: Arc<dyn JobHandler>) -> Self {
        let limit = self.config.concurrency;
        self.register_limited(kind, handler, limit)
    }

    /// Same, with at most `limit` jobs of this kind at once (heavy work such as imports).
    pub fn register_limited(
        mut self,
        kind: &str,
        handler: Arc<dyn JobHandler>,
        limit: usize,
    ) -> Self {
        self.handlers.insert(
            kind.to_string(),
            Registered {
                handler: Handler::One(handler),
                limit: limit.max(1),
            },
        );
        self
    }

    /// Runs jobs of `kind` with a batch handler: each run gets up to `max_batch` jobs claimed
    /// in one statement, at most `limit` runs at once. For work that is cheaper written
    /// together (many small uploads).
    pub fn register_batch(
        mut self,
        kind: &str,
        handler: Arc<dyn BatchHandler>,
        limit: usize,
        max_batch: usize,
    ) -> Self {
        self.handlers.insert(
            kind.to_string(),
            Registered {
                handler: Handler::Batch(handler, max_batch.max(1)),
                limit: limit.max(1),
            },
        );
        self
    }

    /// Claims and runs jobs until `shutdown` turns true, then stops claiming, lets running jobs
    /// finish within the grace period and hands the rest back. `pg` opens the runner's own
    /// connection: it holds the instance lock and listens for enqueues.
    pub async fn run(self, pg: tokio_postgres::Config, mut shutdown: watch::Receiver<bool>) {
        let runner = Arc::new(self);
        let kinds: Vec<String> = runner.handlers.keys().cloned().collect();
        info!(
            ?kinds,
            concurrency = runner.config.concurrency,
            "job runner started"
        );
        loop {
            if *shutdown.borrow() {
                break;
            }
            let session = match Session::open(&pg).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "job runner cannot connect; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.changed() => break,
                    }
                }
            };
            match runner.clone().serve(&session, &mut shutdown).await {
                Ended::Shutdown => {
                    session.close().await;
                    break;
                }
                Ended::LostSession => {
                    warn!(
                        instance = session.instance,
                        "job runner lost its database session; its jobs are handed back"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
        info!("job runner stopped");
    }

    async fn serve(
        self: Arc<Self>,
        session: &Session,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let me = session.instance;
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut lost = session.lost.clone();
        // None: not yet pruned by this session (an Instant an hour back could underflow on a
        // machine booted less than an hour ago).
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if *lost.borrow() {
                // Another runner may now take these jobs: they must not go on here too.
                tasks.shutdown().await;
                return Ended::LostSession;
            }
            let mut wait = self.config.poll;
            match self.claim_pass(me, &running).await {
                Ok((claimed, next_due)) => {
                    for job in claimed {
                        let kind = job.jobs[0].kind.clone();
                        let runner = self.clone();
                        let handle = tasks.spawn(async move { runner.execute(me, job).await });
                        running.insert(handle.id(), kind);
                    }
                    if let Some(due) = next_due {
                        wait = wait.min(due);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "claiming jobs failed; retrying");
                    wait = wait.min(Duration::from_secs(1));
                }
            }
            if last_prune.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                last_prune = Some(tokio::time::Instant::now());
                if let Err(e) = self.prune().await {
                    warn!(error = %e, "pruning finished jobs failed");
                }
            }
            tokio::select! {
                _ = session.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(done) = tasks.join_next_with_id() => {
                    let id = match done { Ok((id, ())) => id, Err(e) => e.id() };
                    running.remove(&id);
                }
                _ = lost.changed() => {}
                _ = shutdown.changed() => {
                    self.drain(me, &mut tasks).await;
                    return Ended::Shutdown;
                }
            }
        }
    }

    /// Stops claiming; waits up to the grace period for running jobs, then cuts the rest and
    /// hands them back as pending (the cut attempt not counted).
    async fn drain(&self, me: i64, tasks: &mut JoinSet<()>) {
        if tasks.is_empty() {
            return;
        }
        info!(running = tasks.len(), grace = ?self.config.grace, "draining jobs");
        let deadline = tokio::time::Instant::now() + self.config.grace;
        while !tasks.is_empty() {
            if tokio::time::timeout_at(deadline, tasks.join_next())
                .await
                .is_err()
            {
                warn!(
                    cut = tasks.len(),
                    "jobs still running at the end of the grace period; handed back"
                );
                tasks.shutdown().await;
                break;
            }
        }
        // Whatever this runner still has running was cut: pending again, at once.
        let handed_back = async {
            let client = self.pool.get().await?;
            let n = client
                .execute(
                    "UPDATE jobs SET state = 'pending', attempts = greatest(attempts - 1, 0), \
                            claimed_by = NULL, run_at = now(), updated_at = now() \
                      WHERE state = 'running' AND claimed_by = $1",
                    &[&me],
                )
                .await?;
            Ok::<u64, JobError>(n)
        }
        .await;
        if let Err(e) = handed_back {
            // Releasing the instance lock (the session closes next) makes them claimable anyway.
            warn!(error = %e, "handing back cut jobs failed");
        }
    }

    /// Claims as many due jobs as capacity allows. Returns them, and how long until the next
    /// pending job is due (when none is due now).
    async fn claim_pass(
        &self,
        me: i64,
        running: &HashMap<tokio::task::Id, String>,
    ) -> Result<(Vec<Claimed>, Option<Duration>), JobError> {
        let mut free = self.config.concurrency.saturating_sub(running.len());
        let client = self.pool.get().await?;
        // Jobs whose runner died during their last attempt: failed, not run again.
        let kinds: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        let abandoned = client
            .query(
                &format!(
                    "UPDATE jobs j SET state = 'failed', finished_at = now(), updated_at = now(), \
                            last_error = 'its runner stopped during each of ' || attempts || ' attempts' \
                            || coalesce(' (last error: ' || last_error || ')', '') \
                      WHERE j.state = 'running' AND j.attempts >= j.max_attempts AND j.kind = ANY($1) \
                        AND NOT {CLAIMANT_ALIVE} \
                     RETURNING id, kind"
                ),
                &[&kinds],
            )
            .await?;
        for r in &abandoned {
            let (id, kind): (Uuid, String) = (r.get(0), r.get(1));
            error!(%id, kind, "job failed: its runner stopped during every attempt");
        }
        let mut claimed = Vec::new();
        for (kind, reg) in &self.handlers {
            if free == 0 {
                break;
            }
            let busy = running.values().filter(|k| *k == kind).count();
            let room = reg.limit.saturating_sub(busy).min(free);
            // One job per statement (a batch handler: one batch): runners woken together by
            // one NOTIFY then share a burst (each skips the rows another is locking) instead of
            // the fastest taking it all.
            let per_claim = match reg.handler {
                Handler::One(_) => 1i64,
                Handler::Batch(_, n) => n as i64,
            };
            for _ in 0..room {
                let rows = client
                .query(
                    &format!(
                        "UPDATE jobs SET state = 'running', attempts = attempts + 1, claimed_by = $1, \
                                claimed_at = now(), updated_at = now() \
                          WHERE id IN (SELECT j.id FROM jobs j \
                                        WHERE j.kind = $2 AND j.state IN ('pending', 'running') \
                                          AND ((j.state = 'pending' AND j.run_at <= now()) \
                                               OR (j.state = 'running' AND NOT {CLAIMANT_ALIVE})) \
                                        ORDER BY j.run_at, j.created_at LIMIT $3 \
                                        FOR UPDATE SKIP LOCKED) \
                         RETURNING id, kind, payload, attempts, max_attempts, origin"
                    ),
                    &[&me, kind, &per_claim],
                )
                .await?;
                if rows.is_empty() {
                    break;
                }
                free -= 1;
                let jobs: Vec<JobContext> = rows
                    .iter()
                    .map(|r| JobContext {
                        id: r.get(0),
                        kind: r.get(1),
                        payload: r.get(2),
                        attempt: r.get(3),
                        max_attempts: r.get(4),
                        origin: r
                            .get::<_, Option<tokio_postgres::types::Json<Origin>>>(5)
                            .map(|o| o.0),
                    })
                    .collect();
                claimed.push(Claimed { jobs });
            }
        }
        let next: Option<f64> = client
            .query_one(
                "SELECT extract(epoch FROM min(run_at) - now())::float8 FROM jobs \
                  WHERE state = 'pending' AND kind = ANY($1)",
                &[&kinds],
            )
            .await?
            .get(0);
        let next_due = next.map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
        Ok((claimed, next_due))
    }

    async fn execute(self: Arc<Self>, me: i64, claimed: Claimed) {
        let Some(first) = claimed.jobs.first() else {
            return;
        };
        let Some(reg) = self.handlers.get(&first.kind) else {
            return;
        };
        let outcomes: Vec<Result<(), JobFailure>> = match &reg.handler {
            Handler::One(handler) => {
                let ctx = first;
                let origin = ctx.origin.clone().unwrap_or_default();
                let run = wearhouse_log::origin::scope(origin, handler.run(ctx));
                vec![std::panic::AssertUnwindSafe(run)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|p| {
                        Err(JobFailure::Retry(anyhow::anyhow!(
                            "handler panicked: {}",
                            panic_message(p)
                        )))
                    })]
            }
            Handler::Batch(handler, _) => {
                // Each job's origin goes with it: the handler names it in what it appends.
                let run = handler.run_batch(&claimed.jobs);
                match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                    Ok(outcomes) if outcomes.len() == claimed.jobs.len() => outcomes,
                    Ok(outcomes) => {
                        let n = outcomes.len();
                        claimed
                            .jobs
                            .iter()
                            .map(|_| {
                                Err(JobFailure::Retry(anyhow::anyhow!(
                                    "batch handler gave {n} outcomes for {} jobs",
                                    claimed.jobs.len()
                                )))
                            })
                            .collect()
                    }
                    Err(p) => {
                        let what = panic_message(p);
                        claimed
                            .jobs
                            .iter()
                            .map(|_| {
                                Err(JobFailure::Retry(anyhow::anyhow!(
                                    "handler panicked: {what}"
                                )))
                            })
                            .collect()
                    }
                }
            }
        };
        let mut done = Vec::new();
        for (ctx, outcome) in claimed.jobs.iter().zip(outcomes) {
            if outcome.is_ok() {
                done.push(ctx.id);
                continue;
            }
            if let Err(e) = self.record(me, ctx, outcome).await {
                // The job stays `running` under this (live) runner until it stops; then it is
                // claimed again, which is safe for an idempotent handler.
                error!(id = %ctx.id, kind = ctx.kind, error = %e, "recording a job's outcome failed");
            }
        }
        if !done.is_empty() {
            if let Err(e) = self.record_done(me, &done).await {
                error!(jobs = done.len(), kind = first.kind, error = %e, "recording jobs' outcome failed");
            }
        }
    }

    /// Marks finished jobs done in one statement (see [`Self::record`]).
    async fn record_done(&self, me: i64, ids: &[Uuid]) -> Result<(), JobError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE jobs SET state = 'done', finished_at = now(), updated_at = now(), last_error = NULL \
                  WHERE id = ANY($1) AND claimed_by = $2 AND state = 'running'",
                &[&ids, &me],
            )
            .await?;
        Ok(())
    }

    async fn record(
        &self,
        me: i64,
        ctx: &JobContext,
        outcome: Result<(), JobFailure>,
    ) -> Result<(), JobError> {
        let client = self.pool.get().await?;
        // Only while this runner still owns the claim: a runner that lost its session must not
        // overwrite the outcome of the one that took the job over.
        const MINE: &str = "WHERE id = $1 AND claimed_by = $2 AND state = 'running'";
        match outcome {
            Ok(()) => {
                client
                    .execute(
                        &format!(
                            "UPDATE jobs SET state = 'done', finished_at = now(), updated_at = now(), \
                                    last_error = NULL {MINE}"
                        ),
                        &[&ctx.id, &me],
                    )
                    .await?;
            }
            Err(failure @ (JobFailure::Retry(_) | JobFailure::RetryAfter(..)))
                if ctx.attempt < ctx.max_attempts =>
            {
                let (delay, e) = match failure {
                    JobFailure::RetryAfter(at_least, e) => {
                        (backoff(&self.config, ctx.attempt).max(at_least), e)
                    }
                    JobFailure::Retry(e) | JobFailure::Permanent(e) => {
                        (backoff(&self.config, ctx.attempt), e)
                    }
                };
                let message = format!("{e:#}");
                warn!(id = %ctx.id, kind = ctx.kind, attempt = ctx.attempt, retry_in = ?delay, error = %message, "job failed; will retry");
                client
                    .execute(
                        &format!(
                            "UPDATE jobs SET state = 'pending', claimed_by = NULL, updated_at = now(), \
                                    run_at = now() + make_interval(secs => $3), last_error = $4 {MINE}"
                        ),
                        &[&ctx.id, &me, &delay.as_secs_f64(), &message],
                    )
                    .await?;
            }
            Err(JobFailure::Retry(e))
            | Err(JobFailure::Permanent(e))
            | Err(JobFailure::RetryAfter(_, e)) => {
                let message = format!("{e:#}");
                error!(id = %ctx.id, kind = ctx.kind, attempt = ctx.attempt, error = %message, "job failed");
                client
                    .execute(
                        &format!(
                            "UPDATE jobs SET state = 'failed', finished_at = now(), updated_at = now(), \
                                    last_error = $3 {MINE}"
                        ),
                        &[&ctx.id, &me, &message],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn prune(&self) -> Result<(), JobError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM jobs WHERE state = 'done' AND finished_at < now() - make_interval(secs => $1)",
                &[&self.config.retention.as_secs_f64()],
            )
            .await?;
        Ok(())
    }
}

/// What a handler's panic said.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

enum Ended {
    Shutdown,
    LostSession,
}

/// The runner's own connection: holds the instance lock for as long as it is open, and
/// receives the NOTIFYs of enqueues.
struct Session {
    instance: i64,
    client: tokio_postgres::Client,
    wake: Arc<Notify>,
    lost: watch::Receiver<bool>,
    pump: tokio::task::JoinHandle<()>,
}

impl Session {
    async fn open(pg: &tokio_postgres::Config) -> Result<Session, JobError> {
        let (client, mut connection) = pg
            .connect(wearhouse_projections::pgtls::connector())
            .await?;
        let wake = Arc::new(Notify::new());
        let (lost_tx, lost) = watch::channel(false);
        let w = wake.clone();
        let pump = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(msg)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(_) = msg {
                    w.notify_one();
                }
            }
            let _ = lost_tx.send(true);
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // A random key; retried in the unlikely case another live runner holds it.
        let instance = loop {
            let key: i32 = rand::rng().random_range(1..i32::MAX);
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_SPACE, &key])
                .await?
                .get(0);
            if got {
                break i64::from(key);
            }
        };
        info!(instance, "job runner holds its instance lock");
        Ok(Session {
            instance,
            client,
            wake,
            lost,
            pump,
        })
    }

    /// Closes the connection, which releases the instance lock.
    async fn close(self) {
        drop(self.client);
        let _ = self.pump.await;
    }
}
