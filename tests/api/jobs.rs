//! The durable job runner (src/jobs) against a real Postgres: running, retries, failures,
//! idempotent enqueue, resuming the jobs of a dead runner, two runners side by side, draining
//! on shutdown, `wearhouse jobs list` and the `/metrics` lines; and `serve` ending open
//! sync-status streams when SIGTERM arrives.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{TestDb, KEY_HEADER};
use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;
use wearhouse::jobs::{
    BatchHandler, EnqueueOptions, JobContext, JobFailure, JobHandler, JobRunner, Jobs, RunnerConfig,
};

type Run = dyn Fn(JobContext) -> BoxFuture<'static, Result<(), JobFailure>> + Send + Sync;

/// A handler made of a closure.
struct FnHandler(Box<Run>);

#[async_trait]
impl JobHandler for FnHandler {
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure> {
        (self.0)(job.clone()).await
    }
}

fn handler<F, Fut>(f: F) -> Arc<dyn JobHandler>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), JobFailure>> + Send + 'static,
{
    Arc::new(FnHandler(Box::new(move |ctx| Box::pin(f(ctx)))))
}

fn config() -> RunnerConfig {
    RunnerConfig {
        concurrency: 4,
        poll: Duration::from_millis(200),
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        grace: Duration::from_secs(5),
        retention: Duration::from_secs(3600),
    }
}

struct Env {
    db: TestDb,
    pool: deadpool_postgres::Pool,
    pg: tokio_postgres::Config,
    jobs: Jobs,
}

async fn env() -> Env {
    let db = TestDb::new().await;
    let pool = common::pool(&db.url);
    wearhouse::db::migrate(&pool, false).await.expect("migrate");
    let pg: tokio_postgres::Config = db.url.parse().unwrap();
    Env {
        jobs: Jobs::new(pool.clone()),
        db,
        pool,
        pg,
    }
}

/// A running runner; `stop` sends shutdown and waits for it to return.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(env: &Env, runner: JobRunner) -> Running {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(runner.run(env.pg.clone(), rx));
        Running { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

#[derive(Debug)]
struct Row {
    state: String,
    attempts: i32,
    last_error: Option<String>,
    claimed_by: Option<i64>,
}

async fn row(env: &Env, id: Uuid) -> Row {
    let r = env
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT state, attempts, last_error, claimed_by FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    Row {
        state: r.get(0),
        attempts: r.get(1),
        last_error: r.get(2),
        claimed_by: r.get(3),
    }
}

/// Waits until job `id` is in `state` (deadline 30 s).
async fn wait_state(env: &Env, id: Uuid, state: &str) -> Row {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = row(env, id).await;
        if r.state == state {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {state}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_runs_with_its_payload() {
    let env = env().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let runner = JobRunner::new(env.pool.clone(), config()).register(
        "echo",
        handler(move |ctx| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((ctx.payload.clone(), ctx.attempt));
                Ok(())
            }
        }),
    );
    let running = Running::start(&env, runner);
    let id = env
        .jobs
        .enqueue("echo", None, json!({"n": 7}))
        .await
        .unwrap();
    let r = wait_state(&env, id, "done").await;
    assert_eq!(r.attempts, 1);
    assert_eq!(r.last_error, None);
    assert_eq!(*seen.lock().unwrap(), vec![(json!({"n": 7}), 1)]);
    running.stop().await;
}

#[tokio::test]
async fn a_retried_job_backs_off_then_succeeds() {
    let env = env().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let runner = JobRunner::new(env.pool.clone(), config()).register(
        "flaky",
        handler(move |ctx| {
            let t = t.clone();
            async move {
                t.lock().unwrap().push(Instant::now());
                if ctx.attempt < 3 {
                    Err(JobFailure::retry(anyhow::anyhow!(
                        "provider busy (attempt {})",
                        ctx.attempt
                    )))
                } else {
                    Ok(())
                }
            }
        }),
    );
    let running = Running::start(&env, runner);
    let id = env.jobs.enqueue("flaky", None, json!({})).await.unwrap();
    let r = wait_state(&env, id, "done").await;
    assert_eq!(r.attempts, 3);
    assert_eq!(r.last_error, None, "success clears the last error");
    assert_eq!(times.lock().unwrap().len(), 3);
    running.stop().await;
}

#[test]
fn backoff_is_exponential_with_full_jitter() {
    let cfg = RunnerConfig {
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(1000),
        ..RunnerConfig::default()
    };
    for (attempt, ceiling) in [
        (1, 100),
        (2, 200),
        (3, 400),
        (4, 800),
        (5, 1000),
        (30, 1000),
    ] {
        let samples: Vec<u128> = (0..200)
            .map(|_| wearhouse::jobs::backoff(&cfg, attempt).as_millis())
            .collect();
        assert!(
            samples.iter().all(|&ms| ms <= ceiling),
            "{attempt}: {samples:?}"
        );
        // Full jitter: spread over the whole range, not fixed.
        assert!(samples.iter().any(|&ms| ms < ceiling / 3), "{attempt}");
        assert!(samples.iter().any(|&ms| ms > ceiling * 2 / 3), "{attempt}");
    }
}

/// A batch handler that records the batches it got; a job whose payload says `fail` fails
/// permanently, the others succeed.
struct Batches(Arc<Mutex<Vec<Vec<i64>>>>);

#[async_trait]
impl BatchHandler for Batches {
    async fn run_batch(&self, jobs: &[JobContext]) -> Vec<Result<(), JobFailure>> {
        self.0.lock().unwrap().push(
            jobs.iter()
                .map(|j| j.payload["n"].as_i64().unwrap())
                .collect(),
        );
        jobs.iter()
            .map(|j| {
                if j.payload["fail"] == true {
                    Err(JobFailure::permanent(anyhow::anyhow!("bad job")))
                } else {
                    Ok(())
                }
            })
            .collect()
    }
}

#[tokio::test]
async fn a_batch_handler_gets_pending_jobs_together_with_an_outcome_each() {
    let env = env().await;
    // Queued before the runner starts: its first claim takes them in batches of up to 4.
    let mut ids = Vec::new();
    for n in 0..10 {
        let payload = json!({"n": n, "fail": n == 3});
        ids.push(env.jobs.enqueue("batched", None, payload).await.unwrap());
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runner = JobRunner::new(env.pool.clone(), config()).register_batch(
        "batched",
        Arc::new(Batches(seen.clone())),
        2,
        4,
    );
    let running = Running::start(&env, runner);
    for (n, id) in ids.iter().enumerate() {
        let r = wait_state(&env, *id, if n == 3 { "failed" } else { "done" }).await;
        assert_eq!(r.attempts, 1);
        if n == 3 {
            assert_eq!(r.last_error.as_deref(), Some("bad job"));
        }
    }
    let batches = seen.lock().unwrap().clone();
    assert!(
        batches.iter().all(|b| !b.is_empty() && b.len() <= 4),
        "{batches:?}"
    );
    assert!(batches.iter().any(|b| b.len() > 1), "{batches:?}");
    let mut all: Vec<i64> = batches.concat();
    all.sort();
    assert_eq!(
        all,
        (0..10).collect::<Vec<_>>(),
        "each job once: {batches:?}"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_permanent_failure_fails_at_once_and_says_why() {
    let env = env().await;
    let runner = JobRunner::new(env.pool.clone(), config()).register(
        "broken",
        handler(|_| async {
            Err(JobFailure::permanent(
                anyhow::anyhow!("not an export").context("file is unreadable"),
            ))
        }),
    );
    let running = Running::start(&env, runner);
    let id = env.jobs.enqueue("broken", None, json!({})).await.unwrap();
    let r = wait_state(&env, id, "failed").await;
    assert_eq!(r.attempts, 1);
    assert_eq!(
        r.last_error.as_deref(),
        Some("file is unreadable: not an export")
    );
    running.stop().await;
}

#[tokio::test]
async fn a_job_out_of_attempts_fails() {
    let env = env().await;
    let runner = JobRunner::new(env.pool.clone(), config()).register(
        "hopeless",
        handler(|ctx| async move {
            Err(JobFailure::retry(anyhow::anyhow!(
                "timeout #{}",
                ctx.attempt
            )))
        }),
    );
    let running = Running::start(&env, runner);
    let id = env
        .jobs
        .enqueue_with(
            "hopeless",
            None,
            json!({}),
            EnqueueOptions {
                max_attempts: 3,
                run_at: None,
            },
        )
        .await
        .unwrap();
    let r = wait_state(&env, id, "failed").await;
    assert_eq!(r.attempts, 3);
    assert_eq!(r.last_error.as_deref(), Some("timeout #3"));
    running.stop().await;
}

#[tokio::test]
async fn enqueue_by_key_is_idempotent_and_enqueue_in_follows_the_transaction() {
    let env = env().await;
    let a = env
        .jobs
        .enqueue("sync", Some("c1"), json!({"n": 1}))
        .await
        .unwrap();
    let again = env
        .jobs
        .enqueue("sync", Some("c1"), json!({"n": 2}))
        .await
        .unwrap();
    let other_key = env
        .jobs
        .enqueue("sync", Some("c2"), json!({}))
        .await
        .unwrap();
    let other_kind = env
        .jobs
        .enqueue("import", Some("c1"), json!({}))
        .await
        .unwrap();
    let no_key = env.jobs.enqueue("sync", None, json!({})).await.unwrap();
    let no_key_again = env.jobs.enqueue("sync", None, json!({})).await.unwrap();
    assert_eq!(a, again);
    let distinct: std::collections::HashSet<_> =
        [a, other_key, other_kind, no_key, no_key_again].into();
    assert_eq!(distinct.len(), 5);
    let mut client = env.pool.get().await.unwrap();
    let payload: serde_json::Value = client
        .query_one("SELECT payload FROM jobs WHERE id = $1", &[&a])
        .await
        .unwrap()
        .get(0);
    assert_eq!(payload, json!({"n": 1}), "the first enqueue's job is kept");

    // Inside a transaction: exists iff the transaction commits.
    let tx = client.transaction().await.unwrap();
    let rolled_back = Jobs::enqueue_in(&tx, "sync", Some("c3"), json!({}))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let committed = Jobs::enqueue_in(&tx, "sync", Some("c4"), json!({}))
        .await
        .unwrap();
    assert_eq!(
        Jobs::enqueue_in(&tx, "sync", Some("c4"), json!({}))
            .await
            .unwrap(),
        committed
    );
    tx.commit().await.unwrap();
    assert_eq!(env.jobs.state(rolled_back).await.unwrap(), None);
    assert_eq!(
        env.jobs.state(committed).await.unwrap().as_deref(),
        Some("pending")
    );
}

#[tokio::test]
async fn a_job_left_running_by_a_dead_runner_is_resumed_at_once() {
    let env = env().await;
    // A "runner" that claimed a job and is still alive: it holds its instance lock.
    let (dead, conn) = tokio_postgres::connect(&env.db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    dead.execute("SELECT pg_advisory_lock(7261014, 4242)", &[])
        .await
        .unwrap();
    let orphan = env
        .jobs
        .enqueue("work", None, json!({"which": "orphan"}))
        .await
        .unwrap();
    env.pool
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE jobs SET state = 'running', attempts = 1, claimed_by = 4242, claimed_at = now() WHERE id = $1",
            &[&orphan],
        )
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let runner = JobRunner::new(env.pool.clone(), config()).register(
        "work",
        handler(move |ctx| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push((ctx.id, ctx.attempt));
                Ok(())
            }
        }),
    );
    let running = Running::start(&env, runner);
    // A later job runs: the runner has looked at the table, and left the live claim alone.
    let later = env.jobs.enqueue("work", None, json!({})).await.unwrap();
    wait_state(&env, later, "done").await;
    let still = row(&env, orphan).await;
    assert_eq!(
        (still.state.as_str(), still.claimed_by),
        ("running", Some(4242))
    );

    // The claimant dies (its connection drops): the job is claimed again without waiting
    // for any lease, and this run is its second attempt.
    drop(dead);
    let _ = conn.await;
    let started = Instant::now();
    let r = wait_state(&env, orphan, "done").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "resumed after {:?}",
        started.elapsed()
    );
    assert_eq!(r.attempts, 2);
    assert!(runs.lock().unwrap().contains(&(orphan, 2)));
    running.stop().await;
}

#[tokio::test]
async fn a_job_whose_runner_dies_every_time_runs_out_of_attempts() {
    let env = env().await;
    let id = env
        .jobs
        .enqueue_with(
            "crashy",
            None,
            json!({}),
            EnqueueOptions {
                max_attempts: 2,
                run_at: None,
            },
        )
        .await
        .unwrap();
    // Its second attempt was claimed by a runner that is gone (no lock held on 99).
    env.pool
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE jobs SET state = 'running', attempts = 2, claimed_by = 99 WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(0));
    let r = runs.clone();
    let runner = JobRunner::new(env.pool.clone(), config()).register(
        "crashy",
        handler(move |_| {
            let r = r.clone();
            async move {
                *r.lock().unwrap() += 1;
                Ok(())
            }
        }),
    );
    let running = Running::start(&env, runner);
    let r = wait_state(&env, id, "failed").await;
    assert_eq!(r.attempts, 2);
    assert!(r.last_error.unwrap().contains("runner stopped"));
    assert_eq!(*runs.lock().unwrap(), 0);
    running.stop().await;
}

#[tokio::test]
async fn two_runners_never_run_one_job_twice() {
    let env = env().await;
    let counts: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let make = |counts: Arc<Mutex<HashMap<Uuid, u32>>>| {
        JobRunner::new(env.pool.clone(), config()).register(
            "work",
            handler(move |ctx| {
                let counts = counts.clone();
                async move {
                    *counts.lock().unwrap().entry(ctx.id).or_default() += 1;
                    // Some work, so the runners overlap.
                    tokio::task::yield_now().await;
                    Ok(())
                }
            }),
        )
    };
    let a = Running::start(&env, make(counts.clone()));
    let b = Running::start(&env, make(counts.clone()));
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(
            env.jobs
                .enqueue("work", None, json!({ "i": i }))
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        wait_state(&env, *id, "done").await;
    }
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.len(), ids.len());
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn shutdown_stops_claiming_and_lets_running_jobs_finish() {
    let env = env().await;
    let release = Arc::new(tokio::sync::Notify::new());
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let rel = release.clone();
    let runner = JobRunner::new(
        env.pool.clone(),
        RunnerConfig {
            concurrency: 1,
            ..config()
        },
    )
    .register(
        "slow",
        handler(move |ctx| {
            let rel = rel.clone();
            let started = started_tx.clone();
            async move {
                let _ = started.send(ctx.id);
                rel.notified().await;
                Ok(())
            }
        }),
    );
    let running = Running::start(&env, runner);
    let first = env.jobs.enqueue("slow", None, json!({})).await.unwrap();
    assert_eq!(started_rx.recv().await, Some(first));
    let second = env.jobs.enqueue("slow", None, json!({})).await.unwrap();
    let _ = running.stop.send(true);
    // Still draining while the job runs; the pending one is not claimed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.task.is_finished(), "the runner waits for its job");
    release.notify_one();
    running.task.await.unwrap();
    assert_eq!(row(&env, first).await.state, "done");
    let r = row(&env, second).await;
    assert_eq!((r.state.as_str(), r.attempts), ("pending", 0));
}

#[tokio::test]
async fn shutdown_hands_back_jobs_still_running_after_the_grace_period() {
    let env = env().await;
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let runner = JobRunner::new(
        env.pool.clone(),
        RunnerConfig {
            grace: Duration::from_millis(300),
            ..config()
        },
    )
    .register(
        "endless",
        handler(move |ctx| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(ctx.id);
                futures::future::pending::<()>().await;
                Ok(())
            }
        }),
    );
    let running = Running::start(&env, runner);
    let id = env.jobs.enqueue("endless", None, json!({})).await.unwrap();
    assert_eq!(started_rx.recv().await, Some(id));
    let started = Instant::now();
    running.stop().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let r = row(&env, id).await;
    assert_eq!(
        (r.state.as_str(), r.attempts, r.claimed_by),
        ("pending", 0, None),
        "handed back, the cut attempt not counted"
    );
}

#[tokio::test]
async fn jobs_list_shows_one_line_per_job_with_filters() {
    let env = env().await;
    let failed = env
        .jobs
        .enqueue("import", Some("i1"), json!({}))
        .await
        .unwrap();
    env.pool
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE jobs SET state = 'failed', attempts = 5, last_error = E'parse error:\\nbad tag', \
                    created_at = now() - interval '3 hours' WHERE id = $1",
            &[&failed],
        )
        .await
        .unwrap();
    let pending = env.jobs.enqueue("sync", None, json!({})).await.unwrap();
    let out = env.db.run(&["jobs", "list"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!("{pending} sync state=pending attempts=0/5 age=")),
        "{out}"
    );
    assert_eq!(
        lines[1],
        format!(
            "{failed} import state=failed attempts=5/5 age=3h last_error=\"parse error: bad tag\""
        )
    );
    let only_failed = env.db.run(&["jobs", "list", "--state", "failed"]).await;
    assert_eq!(only_failed.lines().count(), 1);
    assert!(only_failed.contains("import"));
    let only_sync = env.db.run(&["jobs", "list", "--kind", "sync"]).await;
    assert_eq!(only_sync.lines().count(), 1);
    assert!(only_sync.contains(&pending.to_string()));
}

#[tokio::test]
async fn metrics_count_jobs_by_kind_and_state_with_the_oldest_pending_age() {
    let db = TestDb::new().await;
    let server = common::Server::start_with(
        db,
        &[("WEARHOUSE_METRICS_TOKEN", "scrape-token-0123456789")],
    )
    .await;
    let pool = common::pool(&server.db.url);
    let jobs = Jobs::new(pool.clone());
    // Kinds no runner handles: they stay as set here.
    let old = jobs.enqueue("test-a", None, json!({})).await.unwrap();
    jobs.enqueue("test-a", None, json!({})).await.unwrap();
    let failed = jobs.enqueue("test-b", None, json!({})).await.unwrap();
    let client = pool.get().await.unwrap();
    client
        .execute(
            "UPDATE jobs SET created_at = now() - interval '90 seconds' WHERE id = $1",
            &[&old],
        )
        .await
        .unwrap();
    client
        .execute("UPDATE jobs SET state = 'failed' WHERE id = $1", &[&failed])
        .await
        .unwrap();
    let text = server
        .req(Method::GET, "/metrics")
        .bearer_auth("scrape-token-0123456789")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("wearhouse_jobs{kind=\"test-a\",state=\"pending\"}"),
        2.0
    );
    assert_eq!(
        value("wearhouse_jobs{kind=\"test-a\",state=\"failed\"}"),
        0.0
    );
    assert_eq!(
        value("wearhouse_jobs{kind=\"test-b\",state=\"failed\"}"),
        1.0
    );
    let age = value("wearhouse_jobs_oldest_pending_age_seconds{kind=\"test-a\"}");
    assert!((90.0..120.0).contains(&age), "{age}");
    assert_eq!(
        value("wearhouse_jobs_oldest_pending_age_seconds{kind=\"test-b\"}"),
        0.0
    );
}

#[tokio::test]
async fn sigterm_ends_open_sync_status_streams_instead_of_waiting_out_the_grace() {
    let db = TestDb::new().await;
    let mut server = common::Server::start_process(
        db,
        &[
            ("WEARHOUSE_SHUTDOWN_GRACE_SECS", "30"),
            ("WEARHOUSE_SSE_HEARTBEAT_SECS", "1"),
        ],
    )
    .await;
    let key = server.api_key().await;
    let user = common::create_user(&server, &key).await;
    let mut stream = server
        .req(Method::GET, &format!("/api/v1/users/{user}/sync/stream"))
        .header(KEY_HEADER, &key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("connected"));
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let s = server.terminate();
        (s, server)
    })
    .await
    .unwrap()
    .0;
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exited after {:?} with a grace of 30 s",
        started.elapsed()
    );
    // The stream was ended by the server, not cut mid-frame.
    while let Ok(Some(_)) = stream.chunk().await {}
}

/// An import whose process died after it had stored the bytes, started and appended part of
/// (here: all of) its data, but before it completed: the job, claimed again by a `serve`,
/// resumes it; the import completes and its user ends with exactly what a clean import gives.
#[tokio::test]
async fn an_import_interrupted_after_writing_resumes_and_counts_nothing_twice() {
    use wearhouse::ingest::import::{self, ImportRequest, Progress};
    use wearhouse::ingest::queue::{ImportJobPayload, KIND};
    use wearhouse_domain::import::{Import, ImportCommand};
    use wearhouse_domain::sync_run::{SyncRun, SyncRunCommand};

    let export = include_bytes!("../fixtures/small_export.xml").to_vec();
    let server = common::Server::start().await;
    let key = server.api_key().await;
    let clean_user = common::create_user(&server, &key).await;
    let clean =
        common::import_export(&server, &key, &clean_user, "export.xml", export.clone()).await;
    assert_eq!(clean["status"], "completed", "{clean}");

    // The interrupted import, done by hand up to the crash.
    let user: Uuid = common::create_user(&server, &key).await.parse().unwrap();
    let pool = common::pool(&server.db.url);
    let commands = wearhouse::store::Commands {
        pool: pool.clone(),
        runner: None,
    };
    let uploads = server.home.join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let id = Uuid::new_v4();
    let path = uploads.join(format!("{id}.upload"));
    std::fs::write(&path, &export).unwrap();
    let req = ImportRequest {
        import_id: id,
        user_id: user,
        path: path.clone(),
        filename: Some("export.xml".into()),
        sha256: None,
        actor: wearhouse::store::Actor {
            kind: "api_key",
            id: "test".into(),
            request_id: None,
        },
        limits: Default::default(),
    };
    import::receive(&pool, &commands, &req).await.unwrap();
    let actor = req.actor.clone();
    commands
        .execute::<SyncRun>(
            &id.to_string(),
            SyncRunCommand::Start {
                id,
                user_id: user,
                provider: "apple".into(),
                source: "xml_import".into(),
                primary_user_id: None,
                at: chrono::Utc::now(),
            },
            &actor,
            Some(user),
            None,
        )
        .await
        .unwrap();
    commands
        .execute::<Import>(
            &id.to_string(),
            ImportCommand::Start {
                at: chrono::Utc::now(),
            },
            &actor,
            Some(user),
            None,
        )
        .await
        .unwrap();
    import::normalize(&pool, &req, Arc::new(Progress::default()))
        .await
        .unwrap();
    // Its job, left running by the dead process (no runner holds claimant 77).
    let job = Jobs::new(pool.clone())
        .enqueue(
            KIND,
            Some(&id.to_string()),
            serde_json::to_value(ImportJobPayload::new(&req)).unwrap(),
        )
        .await
        .unwrap();
    let client = pool.get().await.unwrap();
    client
        .execute(
            "UPDATE jobs SET state = 'running', attempts = 1, claimed_by = 77 WHERE id = $1",
            &[&job],
        )
        .await
        .unwrap();

    let resumed = common::wait_import(&server, &key, &user.to_string(), &id.to_string()).await;
    assert_eq!(resumed["status"], "completed", "{resumed}");
    assert_eq!(resumed["counts"]["samples"], clean["counts"]["samples"]);
    assert_eq!(resumed["counts"]["records"], clean["counts"]["records"]);
    common::settle(&server.db).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .query_one("SELECT state FROM jobs WHERE id = $1", &[&job])
        .await
        .unwrap()
        .get::<_, String>(0)
        != "done"
    {
        assert!(Instant::now() < deadline, "the import job never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!path.exists(), "the upload is removed once its job is done");
    let clean_user: Uuid = clean_user.parse().unwrap();
    for sql in [
        "SELECT count(*) FROM samples WHERE user_id = $1",
        "SELECT coalesce(sum(count), 0)::bigint FROM sample_counts WHERE user_id = $1",
        "SELECT count(*) FROM workouts WHERE user_id = $1",
        "SELECT count(*) FROM sleep_sessions WHERE user_id = $1",
        "SELECT count(*) FROM sync_runs WHERE user_id = $1 AND ended_at IS NOT NULL",
    ] {
        let of = |u: Uuid| {
            let client = &client;
            async move { client.query_one(sql, &[&u]).await.unwrap().get::<_, i64>(0) }
        };
        assert_eq!(of(user).await, of(clean_user).await, "{sql}");
    }
}
