//! Crash safety: the server is killed with SIGKILL at each stage of its work (while an upload
//! is still arriving, an import's parse, between writer batches, a webhook's mapping, a sync
//! between pages, a projection batch) and started again. After the restart the work completes,
//! the data is there once (the same counts as a clean run of the same work on a fresh
//! database), and every read model equals a rebuild of it from the log.
//!
//! The stages are reached through crash points (`src/crashpoint.rs`): the server is started
//! with `WEARHOUSE_CRASH_AT=<point>` and kills itself there; the upload is killed from outside.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::sim::{Sim, GARMIN_PUSH_TOKEN};
use common::{call, upload_export, Server, TestDb, KEY_HEADER};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const CRASH_AT: &str = "WEARHOUSE_CRASH_AT";
const SIGKILL: i32 = 9;
/// How long resumed work may take before a test gives up on it.
const RESUME_DEADLINE: Duration = Duration::from_secs(60);

/// Tables that are not compared after a rebuild: the log itself and its payload bytes (the
/// rebuild reads them, never writes them), the checkpoints (a rebuild rewinds them) and the
/// outgoing-webhook outbox and delivery state (history of what was sent: a rebuild adds nothing
/// to it and removes nothing from it).
const NOT_COMPARED: &[&str] = &[
    "events",
    "webhook_messages",
    "webhook_deliveries",
    "webhook_attempts",
    "webhook_endpoint_health",
    "snapshots",
    "sample_batches",
    "raw_payload_chunks",
    "checkpoints",
    "schema_migrations",
];

/// The data a client counts: after a crash and a restart each holds exactly as many rows as
/// after a clean run of the same work (run bookkeeping such as `sync_runs` may differ: a run
/// cut by the crash may be recorded as failed next to the run that finished the work).
const DATA_TABLES: &[&str] = &[
    "imports",
    "data_sources",
    "samples",
    "sample_counts",
    "workouts",
    "sleep_sessions",
    "sleep_nights",
    "activity_summaries",
    "daily_rollup",
    "health_scores",
    "personal_records",
    "menstrual_cycles",
    "connections",
];

/// Every table but [`NOT_COMPARED`], each as its rows (JSON text), sorted.
async fn dump(db: &TestDb) -> BTreeMap<String, Vec<String>> {
    let c = db.client().await;
    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .filter(|t: &String| !NOT_COMPARED.contains(&t.as_str()))
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let mut rows: Vec<String> = c
            .query(&format!("SELECT to_jsonb(t)::text FROM \"{t}\" t"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| comparable(r.get(0)))
            .collect();
        rows.sort();
        out.insert(t, rows);
    }
    out
}

/// A dumped row with its fractional numbers rounded to 12 significant digits: a rollup that sums
/// the same values in another order (a batch applied in two steps, then in one) differs in the
/// last bits of a double, which is not a difference of content.
fn comparable(row: String) -> String {
    fn round(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap();
                if let Some(r) = serde_json::Number::from_f64(format!("{x:.11e}").parse().unwrap())
                {
                    *n = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(round),
            Value::Object(o) => o.values_mut().for_each(round),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(&row).unwrap();
    round(&mut v);
    v.to_string()
}

/// Stops the server (SIGTERM), dumps every read model, rebuilds each from the log as
/// `wearhouse projections rebuild <name>` does (reset, then a runner of that model alone catches
/// up; in the order of `projections::all()`, readers of other models after the models they
/// read), dumps again and asserts nothing changed.
async fn assert_read_models_equal_rebuild(s: &mut Server) {
    assert_jobs_drained(&s.db).await;
    s.settle().await;
    let status = s.terminate();
    assert!(status.success(), "server did not stop cleanly: {status}");
    let before = dump(&s.db).await;
    let pool = common::pool(&s.db.url);
    for p in wearhouse_projections::all() {
        wearhouse_projections::runner::reset(&pool, p.as_ref())
            .await
            .unwrap();
        wearhouse_projections::Runner::new(pool.clone(), vec![p.clone()])
            .catch_up()
            .await
            .unwrap_or_else(|e| panic!("rebuilding {}: {e}", p.name()));
    }
    let after = dump(&s.db).await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &before {
        let rebuilt = &after[table];
        if rows != rebuilt {
            let gone: Vec<&String> = rows.iter().filter(|r| !rebuilt.contains(r)).collect();
            let new: Vec<&String> = rebuilt.iter().filter(|r| !rows.contains(r)).collect();
            panic!(
                "read model table {table} differs from its rebuild ({} rows, rebuilt {}):\n\
                 only before: {:?}\nonly rebuilt: {:?}",
                rows.len(),
                rebuilt.len(),
                &gone[..gone.len().min(3)],
                &new[..new.len().min(3)]
            );
        }
    }
}

/// Waits until no job is running or due, and asserts none failed: the work a crash cut
/// short was finished, not given up.
async fn assert_jobs_drained(db: &TestDb) {
    let c = db.client().await;
    wait_for("the jobs draining", || async {
        let busy: Vec<String> = c
            .query(
                "SELECT kind || ' ' || state || ' attempts=' || attempts FROM jobs \
                 WHERE state = 'running' OR (state = 'pending' AND run_at <= now())",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if busy.is_empty() {
            Ok(())
        } else {
            Err(format!("{busy:?}"))
        }
    })
    .await;
    let failed: Vec<String> = c
        .query(
            "SELECT kind || ': ' || coalesce(last_error, '') FROM jobs WHERE state = 'failed'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(failed.is_empty(), "jobs failed: {failed:?}");
}

/// An API key and a user created with it: (key, user id). Under load the key's read model can
/// lag the answer that created it; a refused key created nothing, so the creation is retried.
async fn user(s: &Server) -> (String, String) {
    let key = s.api_key().await;
    let id = wait_for("the new API key working", || async {
        let (status, user) = call(
            s.req(Method::POST, "/api/v1/users")
                .header(KEY_HEADER, &key)
                .json(&json!({"first_name": "Ada"})),
        )
        .await;
        match status {
            201 => Ok(user["id"].as_str().unwrap().to_string()),
            401 => Err(user.to_string()),
            _ => panic!("creating a user: {status} {user}"),
        }
    })
    .await;
    (key, id)
}

/// Row counts of the [`DATA_TABLES`].
async fn data_counts(db: &TestDb) -> BTreeMap<&'static str, i64> {
    let c = db.client().await;
    let mut out = BTreeMap::new();
    for t in DATA_TABLES {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .unwrap()
            .get(0);
        out.insert(*t, n);
    }
    // What clients read as "how many samples": counted once per stored sample.
    let counted: i64 = c
        .query_one(
            "SELECT coalesce(sum(count), 0)::int8 FROM sample_counts",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        counted, out["samples"],
        "sample_counts disagrees with samples"
    );
    out
}

/// Waits until the server process died of SIGKILL (its crash point was reached).
async fn assert_killed(s: &mut Server) {
    let status = s.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "the server was to kill itself at its crash point, but ended with {status}"
    );
}

/// Polls `probe` until it returns `Some`, for up to [`RESUME_DEADLINE`].
async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + RESUME_DEADLINE;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what} did not happen within {RESUME_DEADLINE:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Apple Health imports

/// A small generated export (the same bytes for the clean and the crashed run).
fn export() -> Vec<u8> {
    static EXPORT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    EXPORT
        .get_or_init(|| {
            let path = std::env::temp_dir()
                .join(format!("wearhouse-crash-export-{}.xml", std::process::id()));
            let out = std::process::Command::new(common::bin())
                .args([
                    "generate",
                    "apple-health",
                    "--size",
                    "2MB",
                    "--seed",
                    "5",
                    "-o",
                ])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let bytes = std::fs::read(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            bytes
        })
        .clone()
}

/// Waits until import `task` completes and returns its status document.
async fn import_completed(s: &Server, key: &str, user: &str, task: &str) -> Value {
    let path = format!("/api/v1/users/{user}/imports/{task}");
    wait_for(&format!("import {task} completing"), || async {
        let (status, body) = call(s.req(Method::GET, &path).header(KEY_HEADER, key)).await;
        match body["status"].as_str() {
            Some("completed") => Ok(body),
            Some("failed") => panic!("import failed: {body}"),
            _ => Err(format!("{status} {body}")),
        }
    })
    .await
}

/// What an import leaves: its counts and the data tables' sizes.
#[derive(Debug, PartialEq)]
struct ImportResult {
    counts: Value,
    tables: BTreeMap<&'static str, i64>,
}

/// Imports the export on a fresh server; with `crash_at`, the server kills itself at that
/// point, is started again and the import is expected to complete after the restart.
async fn import(crash_at: Option<&str>) -> ImportResult {
    let env: Vec<(&str, &str)> = crash_at.map(|p| (CRASH_AT, p)).into_iter().collect();
    let mut s = Server::start_process(TestDb::new().await, &env).await;
    let (key, user) = user(&s).await;
    let (status, accepted) = upload_export(&s, &key, &user, "export.xml", export()).await;
    assert_eq!(status, 200, "{accepted}");
    let task = accepted["task_id"].as_str().unwrap().to_string();
    if crash_at.is_some() {
        assert_killed(&mut s).await;
        s.restart(&[CRASH_AT], &[]).await;
    }
    let done = import_completed(&s, &key, &user, &task).await;
    s.settle().await;
    let result = ImportResult {
        counts: done["counts"].clone(),
        tables: data_counts(&s.db).await,
    };
    assert_read_models_equal_rebuild(&mut s).await;
    result
}

/// The clean run every import test compares with (computed once per test binary).
async fn clean_import() -> &'static ImportResult {
    static CLEAN: tokio::sync::OnceCell<ImportResult> = tokio::sync::OnceCell::const_new();
    CLEAN.get_or_init(|| import(None)).await
}

async fn assert_import_survives(point: &str) {
    let crashed = import(Some(point)).await;
    let clean = clean_import().await;
    assert!(clean.tables["samples"] > 0, "{clean:?}");
    assert_eq!(&crashed, clean, "after a crash at {point}");
}

#[tokio::test]
async fn killed_during_upload_the_retried_upload_imports_once() {
    let mut s = Server::start_process(TestDb::new().await, &[]).await;
    let (key, user) = user(&s).await;
    let bytes = export();
    // The client sends half the file, then stalls: the server is killed mid-body.
    let half = bytes[..bytes.len() / 2].to_vec();
    let sent = half.len() as u64;
    let body = reqwest::Body::wrap_stream(
        futures::stream::iter([Ok::<_, std::io::Error>(half)]).chain(futures::stream::pending()),
    );
    let part = reqwest::multipart::Part::stream(body).file_name("export.xml");
    let upload = s
        .req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/direct"),
        )
        .header(KEY_HEADER, &key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send();
    let client = tokio::spawn(upload);
    let uploads = s.home.join("uploads");
    wait_for("the first half arriving", || async {
        let spooled: u64 = std::fs::read_dir(&uploads)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if spooled >= sent {
            Ok(())
        } else {
            Err(format!("{spooled} of {sent} bytes spooled"))
        }
    })
    .await;
    s.kill();
    assert!(
        client.await.unwrap().is_err(),
        "the interrupted upload cannot have been answered"
    );
    s.restart(&[], &[]).await;
    // The interrupted upload left no import behind.
    s.settle().await;
    let imports: i64 =
        s.db.client()
            .await
            .query_one("SELECT count(*) FROM imports", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(imports, 0, "an unanswered upload created an import");
    // The client sends the file again, whole.
    let (status, accepted) = upload_export(&s, &key, &user, "export.xml", bytes).await;
    assert_eq!(status, 200, "{accepted}");
    let done = import_completed(&s, &key, &user, accepted["task_id"].as_str().unwrap()).await;
    s.settle().await;
    let leftover: Vec<_> = std::fs::read_dir(&uploads)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftover.is_empty(), "uploads left behind: {leftover:?}");
    let crashed = ImportResult {
        counts: done["counts"].clone(),
        tables: data_counts(&s.db).await,
    };
    assert_read_models_equal_rebuild(&mut s).await;
    assert_eq!(&crashed, clean_import().await);
}

#[tokio::test]
async fn killed_while_parsing_the_import_completes_after_restart() {
    assert_import_survives("import.parse").await;
}

#[tokio::test]
async fn killed_between_writer_batches_the_import_completes_once() {
    assert_import_survives("writer.batch:2").await;
}

#[tokio::test]
async fn killed_in_a_projection_batch_the_read_models_resume() {
    // The samples read model has written a batch of the import's samples; its checkpoint has
    // not moved. The restart must apply that batch again without counting it twice.
    assert_import_survives("projection.batch.samples:1").await;
}

// ---------------------------------------------------------------------------------------------
// Provider webhooks and pulls (against the simulator)

/// A server using the simulator (2 records per page), with one user connected to `provider`.
async fn provider_server(
    sim: &Sim,
    provider: &str,
    crash_at: Option<&str>,
) -> (Server, String, String) {
    let mut env: Vec<(String, String)> = sim.env();
    env.push(("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT".into(), "0".into()));
    env.push(("WEARHOUSE_PROVIDER_TIMEOUT_SECS".into(), "5".into()));
    // No scheduled pulls: data must come back through the interrupted work itself.
    env.push(("WEARHOUSE_SYNC_INTERVAL_SECS".into(), "0".into()));
    if let Some(p) = crash_at {
        env.push((CRASH_AT.into(), p.into()));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start_process(TestDb::new().await, &refs).await;
    let (key, user) = user(&s).await;
    let (st, body) = call(
        s.req(
            Method::GET,
            &format!("/api/v1/oauth/{provider}/authorize?user_id={user}"),
        )
        .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let consent = sim
        .http
        .get(body["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 302);
    let callback = consent.headers()["location"].to_str().unwrap().to_string();
    let done = sim.http.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 303, "{:?}", done.text().await);
    (s, key, user)
}

/// The user's workouts between `from` and `to` (dates) through the API.
async fn workouts(s: &Server, key: &str, user: &str, from: &str, to: &str) -> Vec<Value> {
    let (st, body) = s
        .get(
            key,
            &format!(
                "/api/v1/users/{user}/events/workouts?start_date={from}&end_date={to}&limit=100"
            ),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Waits until the user has finished sync runs and none in progress.
async fn runs_finished(s: &Server, key: &str, user: &str) -> Vec<Value> {
    wait_for("the sync runs finishing", || async {
        let (st, runs) = s.get(key, &format!("/api/v1/users/{user}/sync/runs")).await;
        assert_eq!(st, 200, "{runs}");
        let runs = runs.as_array().unwrap().clone();
        let done = !runs.is_empty()
            && runs.iter().all(|r| r["status"] != "in_progress")
            && runs.iter().any(|r| r["status"] == "success");
        if done {
            Ok(runs)
        } else {
            Err(format!("{runs:?}"))
        }
    })
    .await
}

/// What a provider scenario leaves: the workouts the API shows and the data tables' sizes.
#[derive(Debug, PartialEq)]
struct ProviderResult {
    workouts: usize,
    tables: BTreeMap<&'static str, i64>,
}

#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// A Garmin push carrying its data (activities and a body composition).
    GarminPush,
    /// An Oura webhook: a notice that makes the server pull the workouts, page by page.
    OuraWebhook,
    /// A pull of every data type started through the API, page by page.
    OuraPull,
}

async fn deliver(which: Delivery, crash_at: Option<&str>) -> ProviderResult {
    let sim = Sim::start(2).await;
    let provider = match which {
        Delivery::GarminPush => "garmin",
        Delivery::OuraWebhook | Delivery::OuraPull => "oura",
    };
    let (mut s, key, user) = provider_server(&sim, provider, crash_at).await;
    match which {
        Delivery::GarminPush => {
            let hook = format!(
                "{}/api/v1/providers/garmin/webhooks?token={GARMIN_PUSH_TOKEN}",
                s.url
            );
            let push = json!({
                "activities": [
                    {"userId": "garmin-user-1", "summaryId": "crash-a1", "activityId": 9101,
                     "activityType": "RUNNING", "startTimeInSeconds": 1772341200,
                     "startTimeOffsetInSeconds": 0, "durationInSeconds": 1800},
                    {"userId": "garmin-user-1", "summaryId": "crash-a2", "activityId": 9102,
                     "activityType": "CYCLING", "startTimeInSeconds": 1772427600,
                     "startTimeOffsetInSeconds": 0, "durationInSeconds": 3600}
                ]
            });
            let (st, body) = sim.webhook_at("garmin", &hook, push, false, 0).await;
            assert_eq!((st, body.contains("accepted")), (200, true), "{body}");
        }
        Delivery::OuraWebhook => {
            let hook = format!("{}/api/v1/providers/oura/webhooks", s.url);
            let notice = json!({"event_type": "create", "data_type": "workout",
                                "object_id": "wo-1", "user_id": "oura-user-1"});
            let (st, body) = sim.webhook_at("oura", &hook, notice, false, 0).await;
            assert_eq!((st, body.contains("accepted")), (200, true), "{body}");
        }
        Delivery::OuraPull => {
            let (st, body) = call(
                s.req(
                    Method::POST,
                    &format!("/api/v1/providers/oura/users/{user}/sync"),
                )
                .header(KEY_HEADER, &key),
            )
            .await;
            assert_eq!(st, 200, "{body}");
        }
    }
    if crash_at.is_some() {
        assert_killed(&mut s).await;
        s.restart(&[CRASH_AT], &[]).await;
    }
    let (from, to) = match which {
        Delivery::GarminPush => ("2026-02-27".to_string(), "2026-03-04".to_string()),
        _ => {
            let today = chrono::Utc::now().date_naive();
            (
                (today - chrono::Duration::days(4)).to_string(),
                (today + chrono::Duration::days(2)).to_string(),
            )
        }
    };
    let shown = wait_for("the delivered workouts appearing in the API", || async {
        let w = workouts(&s, &key, &user, &from, &to).await;
        if w.is_empty() {
            Err("no workouts".to_string())
        } else {
            Ok(w)
        }
    })
    .await;
    runs_finished(&s, &key, &user).await;
    s.settle().await;
    // The API may have answered before the last batch: read it again, settled.
    let shown = shown
        .len()
        .max(workouts(&s, &key, &user, &from, &to).await.len());
    let result = ProviderResult {
        workouts: shown,
        tables: data_counts(&s.db).await,
    };
    assert_read_models_equal_rebuild(&mut s).await;
    result
}

async fn assert_delivery_survives(which: Delivery, point: &str) {
    let clean = deliver(which, None).await;
    assert!(clean.workouts > 0, "{clean:?}");
    let crashed = deliver(which, Some(point)).await;
    assert_eq!(crashed, clean, "{which:?} after a crash at {point}");
}

#[tokio::test]
async fn killed_while_mapping_a_garmin_push_its_data_appears_after_restart() {
    assert_delivery_survives(Delivery::GarminPush, "webhook.map").await;
}

#[tokio::test]
async fn killed_in_the_pull_an_oura_webhook_started_its_data_appears_after_restart() {
    assert_delivery_survives(Delivery::OuraWebhook, "sync.page:1").await;
}

#[tokio::test]
async fn killed_between_pages_of_a_pull_the_sync_completes_after_restart() {
    assert_delivery_survives(Delivery::OuraPull, "sync.page:3").await;
}
