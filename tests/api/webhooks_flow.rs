//! Inbound webhooks and Garmin backfills as an integrator meets them: the real server against
//! the provider simulator, whose Garmin answers each backfill request with pushes of the same
//! deterministic data (the same bytes for the same days).

use crate::common;

use std::time::{Duration, Instant};

use common::sim::{Sim, GARMIN_PUSH_TOKEN};
use common::{call, Server, TestDb};
use reqwest::Method;
use serde_json::{json, Value};

struct Env {
    sim: Sim,
    s: Server,
    key: String,
    hook: String,
}

async fn setup() -> Env {
    let sim = Sim::start(2).await;
    let mut env = sim.env();
    env.push(("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT".into(), "0".into()));
    env.push(("WEARHOUSE_PROVIDER_TIMEOUT_SECS".into(), "2".into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start_with(TestDb::new().await, &refs).await;
    let key = s.api_key().await;
    let hook = format!(
        "{}/api/v1/providers/garmin/webhooks?token={GARMIN_PUSH_TOKEN}",
        s.url
    );
    sim.post(
        "/_sim/config",
        json!({"garmin_push_target": hook, "garmin_client_id": "garmin-client"}),
    )
    .await;
    Env { sim, s, key, hook }
}

impl Env {
    fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.s
            .req(m, path)
            .header("X-Open-Wearables-API-Key", &self.key)
    }

    async fn user(&self) -> String {
        common::create_user(&self.s, &self.key).await
    }

    /// Consents at the simulated Garmin (always account `garmin-user-1`) and completes the
    /// callback.
    async fn connect(&self, user: &str) {
        let (st, body) = call(self.req(
            Method::GET,
            &format!("/api/v1/oauth/garmin/authorize?user_id={user}"),
        ))
        .await;
        assert_eq!(st, 200, "{body}");
        let url = body["authorization_url"].as_str().unwrap();
        let r = self.sim.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let cb = r.headers()["location"].to_str().unwrap().to_string();
        let r = self.sim.http.get(&cb).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str().unwrap();
        assert!(to.contains("/api/v1/oauth/success"), "{to}");
    }

    async fn historical(&self, user: &str) {
        let (st, h) = call(self.req(
            Method::POST,
            &format!("/api/v1/providers/garmin/users/{user}/sync/historical?days=3"),
        ))
        .await;
        assert_eq!(
            (st, h["method"].as_str()),
            (200, Some("webhook_backfill")),
            "{h}"
        );
    }

    async fn status(&self, user: &str) -> Value {
        let (st, s) = call(self.req(
            Method::GET,
            &format!("/api/v1/providers/garmin/users/{user}/backfill/status"),
        ))
        .await;
        assert_eq!(st, 200, "{s}");
        s
    }

    /// Waits until the user's backfill is `complete` with every type `done`.
    async fn backfill_complete(&self, user: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status(user).await;
            let all_done = s["windows"]["0"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v == "done");
            if s["overall_status"] == "complete" && all_done {
                return s;
            }
            assert!(Instant::now() < deadline, "backfill never completed: {s}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn runs(&self, user: &str) -> Vec<Value> {
        let (st, body) =
            call(self.req(Method::GET, &format!("/api/v1/users/{user}/sync/runs"))).await;
        assert_eq!(st, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    /// `sql` (with `$1` the user) once no job is waiting or running, the read models have
    /// caught up and its value is positive and stopped changing; or after 30 s. (A value that
    /// merely paused under load is not settled while its mapping jobs are still queued.)
    async fn settled(&self, sql: &str, user: &str) -> i64 {
        let c = self.s.db.client().await;
        let id: uuid::Uuid = user.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = -1;
        loop {
            let active: i64 = c
                .query_one(
                    "SELECT count(*) FROM jobs WHERE state = 'running' OR (state = 'pending' AND run_at <= now())",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            self.s.settle().await;
            let n: i64 = c.query_one(sql, &[&id]).await.unwrap().get(0);
            if active == 0 && n == last && n > 0 || Instant::now() > deadline {
                return n;
            }
            last = n;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        let c = self.s.db.client().await;
        c.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// POSTs a push as Garmin does: (status, body).
    async fn push(&self, body: &Value) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(&self.hook)
            .header("garmin-client-id", "garmin-client")
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

const SAMPLES: &str = "SELECT count(*) FROM samples WHERE user_id = $1";
const WORKOUTS: &str = "SELECT count(*) FROM workouts WHERE user_id = $1";
const RAW_WEBHOOKS: &str = "SELECT count(*) FROM raw_payloads WHERE kind = 'webhook'";

/// A user deletes their Garmin data and connects again: the new backfill's pushes carry the
/// very bytes of the first one's, and they are its answer, not a resend. The data comes back,
/// once, and the bytes are stored once.
#[tokio::test]
async fn garmin_data_comes_back_after_deletion_and_reconnect() {
    let e = setup().await;
    let user = e.user().await;
    e.connect(&user).await;
    e.historical(&user).await;
    e.backfill_complete(&user).await;
    let samples = e.settled(SAMPLES, &user).await;
    let workouts = e.settled(WORKOUTS, &user).await;
    assert!(samples > 0 && workouts > 0);
    let raw = e.count(RAW_WEBHOOKS).await;

    let jwt = e.s.login().await;
    let (st, _) = call(
        e.s.req(
            Method::DELETE,
            &format!("/api/v1/users/{user}/connections/garmin/data"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 204);
    e.s.settle().await;
    let c = e.s.db.client().await;
    let id: uuid::Uuid = user.parse().unwrap();
    let left: i64 = c.query_one(SAMPLES, &[&id]).await.unwrap().get(0);
    assert_eq!(left, 0, "the data was deleted");

    e.connect(&user).await;
    e.historical(&user).await;
    let status = e.backfill_complete(&user).await;
    assert_eq!(status["in_progress"], false, "{status}");
    assert_eq!(e.settled(SAMPLES, &user).await, samples);
    assert_eq!(e.settled(WORKOUTS, &user).await, workouts);
    assert_eq!(e.count(RAW_WEBHOOKS).await, raw, "same bytes, stored once");
}

/// Garmin resends a push it already delivered (no new request in between): it is a duplicate,
/// nothing is mapped twice; the same records revised are new.
#[tokio::test]
async fn a_resent_garmin_push_is_a_duplicate_and_a_revised_one_is_not() {
    let e = setup().await;
    let user = e.user().await;
    e.connect(&user).await;
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).timestamp() / 86_400 * 86_400;
    let push = |steps: i64| {
        json!({"dailies": [{"userId": "garmin-user-1", "summaryId": "d-resend",
            "calendarDate": "2026-01-01", "startTimeInSeconds": day, "startTimeOffsetInSeconds": 0,
            "durationInSeconds": 86400, "steps": steps}]})
    };
    let (st, body) = e.push(&push(8000)).await;
    assert_eq!((st, body.contains("accepted")), (200, true), "{body}");
    let steps = "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 80";
    assert_eq!(e.settled(steps, &user).await, 1);
    // The same records with the keys in another order: the same delivery.
    let reordered = r#"{"dailies":[{"steps":8000,"durationInSeconds":86400,"startTimeOffsetInSeconds":0,
        "startTimeInSeconds":DAY,"calendarDate":"2026-01-01","summaryId":"d-resend","userId":"garmin-user-1"}]}"#
        .replace("DAY", &day.to_string());
    let r = reqwest::Client::new()
        .post(&e.hook)
        .header("garmin-client-id", "garmin-client")
        .header("content-type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("duplicate"));
    let webhook_runs = |runs: Vec<Value>| runs.iter().filter(|r| r["source"] == "webhook").count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while webhook_runs(e.runs(&user).await) < 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A revision of the same day under the same id is new data: mapped, still one sample.
    let (st, body) = e.push(&push(9000)).await;
    assert_eq!((st, body.contains("accepted")), (200, true), "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while webhook_runs(e.runs(&user).await) < 2 {
        assert!(Instant::now() < deadline, "the revision was not mapped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(e.settled(steps, &user).await, 1);
    let c = e.s.db.client().await;
    let id: uuid::Uuid = user.parse().unwrap();
    let value: f64 = c
        .query_one(
            "SELECT value FROM samples WHERE user_id = $1 AND series_type = 80",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(value, 9000.0);
}

/// A second user linked to the same Garmin account asks for its own backfill: Garmin pushes
/// the account's data again (the same bytes), and this time it answers that user's request.
#[tokio::test]
async fn a_second_linked_user_gets_its_own_backfill() {
    let e = setup().await;
    let first = e.user().await;
    e.connect(&first).await;
    e.historical(&first).await;
    e.backfill_complete(&first).await;
    let samples = e.settled(SAMPLES, &first).await;
    assert!(samples > 0);

    let second = e.user().await;
    e.connect(&second).await;
    e.historical(&second).await;
    e.backfill_complete(&second).await;
    assert_eq!(e.settled(SAMPLES, &second).await, samples);
    assert_eq!(
        e.settled(WORKOUTS, &second).await,
        e.settled(WORKOUTS, &first).await
    );
    // The first user's data is unchanged by the second's backfill (records keep their ids).
    assert_eq!(e.settled(SAMPLES, &first).await, samples);
}

/// Retrying the one type Garmin refused leaves the other types as they were: done stays done.
#[tokio::test]
async fn a_retry_of_one_type_leaves_the_others_alone() {
    let e = setup().await;
    let user = e.user().await;
    e.connect(&user).await;
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "garmin", "path": "backfill/sleeps", "kind": "status", "status": 400}),
        )
        .await;
    e.historical(&user).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let s = e.status(&user).await;
        let w = s["windows"]["0"].as_object().unwrap();
        let others_done = w.iter().all(|(t, v)| t == "sleeps" || v == "done");
        if w["sleeps"] == "failed" && others_done && s["in_progress"] == false {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the partial backfill never settled: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (st, r) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/garmin/users/{user}/backfill/sleeps/retry"),
    ))
    .await;
    assert_eq!((st, &r["status"]), (200, &json!("triggered")), "{r}");
    // Watch the status through the retry until it ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = e.status(&user).await;
        for (t, v) in s["windows"]["0"].as_object().unwrap() {
            if t != "sleeps" {
                assert_eq!(v, "done", "{t} was reset by the retry of sleeps: {s}");
            }
        }
        let ended = s["attempt_count"] == 1 && s["overall_status"] == "complete";
        if ended {
            let mut want = before["windows"].clone();
            want["0"]["sleeps"] = json!("done");
            assert_eq!(s["windows"], want, "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "the retry never ended: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A retry while another sync of the connection runs would be refused by the lock when it
/// ran: the answer says so (409) and nothing is recorded; once the sync ended, it is started.
#[tokio::test]
async fn a_retry_during_another_sync_says_it_was_not_started() {
    let e = setup().await;
    let user = e.user().await;
    e.connect(&user).await;
    // The first backfill request hangs until the provider timeout, every attempt: the
    // backfill holds the connection's lock meanwhile.
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "garmin", "path": "backfill", "kind": "timeout", "count": 4}),
        )
        .await;
    e.historical(&user).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let runs = e.runs(&user).await;
        if runs
            .iter()
            .any(|r| r["stage"] == "fetching" || r["stage"] == "started")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backfill never started: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retry = format!("/api/v1/providers/garmin/users/{user}/backfill/sleeps/retry");
    let (st, r) = call(e.req(Method::POST, &retry)).await;
    assert_eq!(st, 409, "{r}");
    assert!(
        r["detail"].as_str().unwrap().contains("already running"),
        "{r}"
    );
    assert_eq!(e.runs(&user).await.len(), 1, "nothing was queued");
    // Once the backfill ended, the retry runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while e
        .runs(&user)
        .await
        .iter()
        .any(|r| r["status"] == "in_progress")
    {
        assert!(Instant::now() < deadline, "the backfill never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (st, r) = call(e.req(Method::POST, &retry)).await;
    assert_eq!((st, &r["status"]), (200, &json!("triggered")), "{r}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.status(&user).await["attempt_count"] != 1 {
        assert!(Instant::now() < deadline, "the retry was not recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
