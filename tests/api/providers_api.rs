//! Cloud providers end to end: the real server talks to the provider simulator
//! (`wearhouse simulate providers`) over HTTP for OAuth, pulls and webhooks.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use common::sim::{Sim, GARMIN_PUSH_TOKEN, SECRET};
use common::{call, Server, TestDb};
use reqwest::Method;
use serde_json::{json, Value};

impl Sim {
    async fn fault(&self, f: Value) {
        self.post("/_sim/faults", f).await
    }

    async fn config(&self, c: Value) {
        self.post("/_sim/config", c).await
    }

    async fn expires_in(&self, secs: i64) {
        let r = self
            .http
            .post(format!("{}/_sim/config", self.url))
            .json(&json!({ "expires_in": secs }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// Oura's webhook subscriptions as the simulator holds them.
    async fn oura_subscriptions(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/oura/api/v2/webhook/subscription", self.url))
            .header("x-client-secret", SECRET)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn webhook(
        &self,
        provider: &str,
        target: &str,
        body: Value,
        wrong: bool,
    ) -> (u16, String) {
        self.webhook_at(provider, target, body, wrong, 0).await
    }
}

struct Env {
    sim: Sim,
    s: Server,
    key: String,
    /// The server's log, when it runs as a process (`setup_logged`).
    log: Option<std::path::PathBuf>,
}

/// The platform in-process against the simulator.
async fn setup(extra: &[(&str, &str)]) -> Env {
    start(extra, false).await
}

/// The binary against the simulator, its debug log kept: for tests that read the log.
async fn setup_logged(extra: &[(&str, &str)]) -> Env {
    start(extra, true).await
}

async fn start(extra: &[(&str, &str)], logged: bool) -> Env {
    let sim = Sim::start(2).await;
    let mut env: Vec<(String, String)> = sim.env();
    env.push(("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT".into(), "0".into()));
    env.push(("WEARHOUSE_PROVIDER_TIMEOUT_SECS".into(), "2".into()));
    env.push(("WEARHOUSE_SSE_HEARTBEAT_SECS".into(), "1".into()));
    env.push(("WEARHOUSE_LOG".into(), "debug".into()));
    for (k, v) in extra {
        env.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, log) = if logged {
        let log =
            std::env::temp_dir().join(format!("wearhouse-providers-{}.log", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&log).unwrap();
        let s = Server::start_logging(TestDb::new().await, &refs, Stdio::from(file)).await;
        (s, Some(log))
    } else {
        (Server::start_with(TestDb::new().await, &refs).await, None)
    };
    let key = s.api_key().await;
    Env { sim, s, key, log }
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

    /// Starts an authorization and follows the consent redirect; returns the callback URL.
    async fn consent(&self, provider: &str, user: &str, redirect: Option<&str>) -> String {
        self.consent_as(provider, user, redirect, None).await
    }

    /// Like `consent`, the user consenting as provider account `account` at the simulator.
    async fn consent_as(
        &self,
        provider: &str,
        user: &str,
        redirect: Option<&str>,
        account: Option<&str>,
    ) -> String {
        let mut path = format!("/api/v1/oauth/{provider}/authorize?user_id={user}");
        if let Some(r) = redirect {
            path.push_str(&format!("&redirect_uri={}", urlencode(r)));
        }
        let (st, body) = call(self.req(Method::GET, &path)).await;
        assert_eq!(st, 200, "{body}");
        let mut url = body["authorization_url"].as_str().unwrap().to_string();
        assert!(url.contains(&format!("state={}", body["state"].as_str().unwrap())));
        if let Some(a) = account {
            url.push_str(&format!("&sim_account={a}"));
        }
        let r = self.sim.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// Calls the callback and returns where it redirects.
    async fn callback(&self, url: &str) -> String {
        let r = self.sim.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 303, "{:?}", r.text().await);
        r.headers()["location"].to_str().unwrap().to_string()
    }

    async fn connect(&self, provider: &str, user: &str) {
        self.connect_as(provider, user, None).await
    }

    async fn connect_as(&self, provider: &str, user: &str, account: Option<&str>) {
        let cb = self.consent_as(provider, user, None, account).await;
        let to = self.callback(&cb).await;
        assert!(to.contains("/api/v1/oauth/success"), "{to}");
    }

    async fn sync(&self, provider: &str, user: &str, since_days: i64) -> (u16, Value) {
        let since = (Utc::now() - chrono::Duration::days(since_days)).timestamp();
        call(self.req(
            Method::POST,
            &format!("/api/v1/providers/{provider}/users/{user}/sync?async=false&since={since}"),
        ))
        .await
    }

    async fn connections(&self, user: &str) -> Vec<Value> {
        let (st, body) =
            call(self.req(Method::GET, &format!("/api/v1/users/{user}/connections"))).await;
        assert_eq!(st, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    async fn runs(&self, user: &str) -> Vec<Value> {
        let (st, body) =
            call(self.req(Method::GET, &format!("/api/v1/users/{user}/sync/runs"))).await;
        assert_eq!(st, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    /// Waits until the user has `n` finished runs.
    async fn finished_runs(&self, user: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let runs = self.runs(user).await;
            let done: Vec<Value> = runs
                .into_iter()
                .filter(|r| r["status"] != "in_progress")
                .collect();
            if done.len() >= n {
                return done;
            }
            assert!(Instant::now() < deadline, "runs did not finish: {done:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn count(&self, sql: &str, user: &str) -> i64 {
        let c = self.s.db.client().await;
        let id: uuid::Uuid = user.parse().unwrap();
        // Read models are eventually consistent: wait until they settle.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = -1;
        loop {
            let n: i64 = c.query_one(sql, &[&id]).await.unwrap().get(0);
            if n == last && n > 0 || Instant::now() > deadline {
                return n;
            }
            last = n;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The user's health scores through the API (waiting for the read model to settle).
async fn health_scores(e: &Env, user: &str, filter: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last: Option<Vec<Value>> = None;
    loop {
        let (st, body) = call(e.req(
            Method::GET,
            &format!("/api/v1/users/{user}/health-scores?limit=1000&{filter}"),
        ))
        .await;
        assert_eq!(st, 200, "{body}");
        let items = body["data"].as_array().unwrap().clone();
        if last.as_ref() == Some(&items) || Instant::now() > deadline {
            return items;
        }
        last = Some(items);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// Nothing the simulator issued as a token may appear in the log, the event store, or a body.
async fn assert_no_tokens(e: &Env, bodies: &[String]) {
    let log = std::fs::read_to_string(e.log.as_ref().expect("started by setup_logged")).unwrap();
    assert!(!log.is_empty(), "the server log was captured");
    for needle in ["sim-access-", "sim-refresh-"] {
        assert!(!log.contains(needle), "a token reached the log");
        for b in bodies {
            assert!(!b.contains(needle), "a token reached a response: {b}");
        }
    }
    let c = e.s.db.client().await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM events WHERE payload::text LIKE '%sim-access-%' OR payload::text LIKE '%sim-refresh-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "tokens are stored in clear in the event store");
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM connections WHERE access_token LIKE 'sim-%' OR refresh_token LIKE 'sim-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "tokens are stored in clear in the read model");
}

#[tokio::test]
async fn oura_connect_sync_and_data_end_to_end() {
    let e = setup_logged(&[]).await;
    let user = e.user().await;
    let cb = e.consent("oura", &user, None).await;
    let to = e.callback(&cb).await;
    let (st, ok) = call(e.s.req(Method::GET, to.trim_start_matches(&e.s.url))).await;
    assert_eq!(
        (st, &ok["success"], ok["provider"].as_str()),
        (200, &json!(true), Some("oura"))
    );
    // The same state cannot be redeemed twice.
    let again = e.callback(&cb).await;
    assert!(
        again.contains("/api/v1/oauth/error") && again.contains("already+used"),
        "{again}"
    );

    let conns = e.connections(&user).await;
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0]["status"], "active");
    assert_eq!(conns[0]["provider_user_id"], "oura-user-1");
    assert_eq!(conns[0]["rest_pull"], true);
    assert!(conns[0].get("access_token").is_none());

    let (st, res) = e.sync("oura", &user, 3).await;
    assert_eq!(st, 200, "{res}");
    assert_eq!(res["success"], true, "{res}");
    // Four days in the window, two per page: the second page was requested with the token.
    let reqs = e.sim.requests().await;
    let activity: Vec<&String> = reqs
        .iter()
        .filter(|r| r.contains("daily_activity"))
        .collect();
    assert_eq!(activity.len(), 2, "{activity:?}");
    assert!(activity[0].contains("start_date=") && activity[0].contains("end_date="));
    assert!(activity[1].contains("next_token=2"));
    assert!(reqs.iter().any(|r| r.contains("heartrate?start_datetime=")));

    // Steps land in /timeseries as daily totals at local midnight (+02:00), value 5000 + 100·day.
    let today = Utc::now().date_naive();
    let start = (today - chrono::Duration::days(5)).format("%Y-%m-%d");
    let end = (today + chrono::Duration::days(2)).format("%Y-%m-%d");
    let steps_count = e
        .count(
            "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 80",
            &user,
        )
        .await;
    assert!(steps_count >= 4, "{steps_count}");
    let (st, ts) = call(e.req(
        Method::GET,
        &format!("/api/v1/users/{user}/timeseries?start_time={start}&end_time={end}&types=steps&limit=100"),
    ))
    .await;
    assert_eq!(st, 200, "{ts}");
    let first = &ts["data"][0];
    let ts0 = chrono::DateTime::parse_from_rfc3339(first["timestamp"].as_str().unwrap()).unwrap();
    let local_day = (ts0 + chrono::Duration::hours(2)).date_naive();
    assert_eq!(
        first["value"].as_f64().unwrap(),
        5000.0 + 100.0 * local_day.day() as f64
    );
    assert_eq!(first["zone_offset"], "+02:00");
    assert_eq!(first["source"]["provider"], "oura");

    let workouts = e
        .count(
            "SELECT count(*) FROM workouts WHERE user_id = $1 AND type = 'running'",
            &user,
        )
        .await;
    assert!(workouts >= 3, "{workouts}");
    let c = e.s.db.client().await;
    let row = c
        .query_one(
            "SELECT w.zone_offset, (stats->>'energy_kcal')::float8, deep_minutes FROM workouts w, sleep_sessions s \
             WHERE w.user_id = $1 AND s.user_id = $1 LIMIT 1",
            &[&user.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i16>>(0), Some(120));
    assert_eq!(row.get::<_, f64>(1), 350.0);
    assert_eq!(row.get::<_, f64>(2), 40.0);
    // Profile weight is a snapshot of the day it arrived.
    let weight: f64 = c
        .query_one(
            "SELECT value FROM samples WHERE user_id = $1 AND series_type = 41",
            &[&user.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(weight, 70.5);
    // Provider scores are recorded as data events (the health-score read model reads them).
    let scores: Vec<serde_json::Value> = c
        .query(
            "SELECT jsonb_array_elements(payload->'scores') FROM events WHERE event_type = 'HealthScoresRecorded' AND user_id = $1",
            &[&user.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for cat in ["activity", "readiness", "sleep"] {
        assert!(
            scores.iter().any(|s| s["category"] == cat),
            "no {cat} score"
        );
    }
    // ... and served by /health-scores with Oura as their provider and the simulator's values
    // (activity 80, readiness 75, sleep 70 + day % 20, at local midnight +02:00).
    for (cat, value) in [
        ("activity", Some(80.0)),
        ("readiness", Some(75.0)),
        ("sleep", None),
    ] {
        let items = health_scores(&e, &user, &format!("provider=oura&category={cat}")).await;
        assert!(items.len() >= 3, "{cat}: {items:?}");
        for it in &items {
            assert_eq!(
                (it["provider"].as_str(), it["zone_offset"].as_str()),
                (Some("oura"), Some("+02:00")),
                "{it}"
            );
            let at =
                chrono::DateTime::parse_from_rfc3339(it["recorded_at"].as_str().unwrap()).unwrap();
            let local = at + chrono::Duration::hours(2);
            let want = value.unwrap_or(70.0 + (local.day() % 20) as f64);
            assert_eq!(it["value"].as_f64(), Some(want), "{cat}: {it}");
        }
    }
    let readiness = health_scores(&e, &user, "category=readiness").await;
    assert!(readiness[0]["data_source_id"].is_string());
    // Every response was kept raw.
    let raw: i64 = c
        .query_one(
            "SELECT count(*) FROM raw_payloads WHERE provider = 'oura'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(raw >= 7, "{raw}");

    let runs = e.finished_runs(&user, 1).await;
    assert_eq!(runs[0]["status"], "success");
    assert_eq!(runs[0]["source"], "pull");
    let (_, list) = call(e.req(Method::GET, "/api/v1/users?sort_by=last_synced_at")).await;
    let me = &list["items"][0];
    assert_eq!(
        (
            me["has_active_connection"].as_bool(),
            me["last_synced_provider"].as_str()
        ),
        (Some(true), Some("oura"))
    );
    assert!(me["last_synced_at"].is_string());
    assert_eq!(runs[0]["provider"], "oura");
    let (st, all) = call(e.req(Method::GET, "/api/v1/sync/runs?provider=oura")).await;
    assert_eq!((st, all.as_array().unwrap().len()), (200, 1));

    let bodies = vec![ok.to_string(), json!(conns).to_string(), res.to_string()];
    assert_no_tokens(&e, &bodies).await;
}

#[tokio::test]
async fn oauth_failures_redirect_to_the_error_page() {
    let e = setup(&[]).await;
    let user = e.user().await;
    // Unknown state.
    let to = e
        .callback(&format!(
            "{}/api/v1/oauth/oura/callback?code=x&state=bogus",
            e.s.url
        ))
        .await;
    assert!(to.contains("/api/v1/oauth/error?message=Invalid"), "{to}");
    // Denied consent.
    e.sim
        .fault(json!({"provider": "oura", "kind": "deny"}))
        .await;
    let cb = e.consent("oura", &user, None).await;
    assert!(cb.contains("error=access_denied"));
    let to = e.callback(&cb).await;
    assert!(to.contains("denied"), "{to}");
    assert!(e.connections(&user).await.is_empty());
    // Expired state (15 minutes): aged in place.
    let cb = e
        .consent("oura", &user, Some("https://app.example/done"))
        .await;
    e.s.db
        .client()
        .await
        .execute(
            "UPDATE connections SET state_started_at = now() - interval '16 minutes'",
            &[],
        )
        .await
        .unwrap();
    let to = e.callback(&cb).await;
    assert!(to.contains("/api/v1/oauth/error"), "{to}");
    // A fresh one succeeds and goes to the integrator's redirect URI.
    let cb = e
        .consent("oura", &user, Some("https://app.example/done"))
        .await;
    let to = e.callback(&cb).await;
    assert!(
        to.starts_with("https://app.example/done?success=true&provider=oura"),
        "{to}"
    );
    // Authorization needs a credential, unlike upstream.
    let (st, _) = call(e.s.req(
        Method::GET,
        &format!("/api/v1/oauth/oura/authorize?user_id={user}"),
    ))
    .await;
    assert_eq!(st, 401);
    let (st, _) = call(e.req(
        Method::GET,
        &format!("/api/v1/oauth/sensorbio/authorize?user_id={user}"),
    ))
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn tokens_refresh_before_expiry_and_a_refused_refresh_revokes() {
    let e = setup_logged(&[]).await;
    let user = e.user().await;
    // Tokens that expire within the minute are refreshed before the first request.
    e.sim.expires_in(30).await;
    e.connect("oura", &user).await;
    let (_, res) = e.sync("oura", &user, 1).await;
    assert_eq!(res["success"], true, "{res}");
    let c = e.s.db.client().await;
    let refreshed: i64 = c
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'TokensRefreshed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refreshed, 1);
    // A 401 mid-run (the provider expired the token) refreshes once and carries on.
    e.sim.expires_in(3600).await;
    e.sim
        .fault(json!({"provider": "oura", "kind": "expire_tokens", "path": "daily_spo2"}))
        .await;
    let (_, res) = e.sync("oura", &user, 1).await;
    assert_eq!(res["success"], true, "{res}");
    // A refused refresh revokes the connection with reason refresh_failed.
    e.sim
        .fault(json!({"provider": "oura", "kind": "expire_tokens", "path": "daily_activity"}))
        .await;
    e.sim
        .fault(json!({"provider": "oura", "kind": "refuse_refresh"}))
        .await;
    let (_, res) = e.sync("oura", &user, 1).await;
    assert_eq!(res["success"], false, "{res}");
    assert!(
        res["message"].as_str().unwrap().contains("refused"),
        "{res}"
    );
    let conns = e.connections(&user).await;
    assert_eq!(conns[0]["status"], "revoked");
    let reason: String = c
        .query_one("SELECT revoked_reason FROM connections", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "refresh_failed");
    let runs = e.finished_runs(&user, 3).await;
    assert_eq!(runs[0]["status"], "failed");
    assert!(runs[0]["error"].as_str().unwrap().contains("revoked"));
    assert_no_tokens(&e, &[]).await;
}

#[tokio::test]
async fn rate_limits_server_errors_timeouts_and_bad_json() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("oura", &user).await;
    // 429 with Retry-After, then two 500s: retried, the run succeeds.
    e.sim.fault(json!({"provider": "oura", "kind": "status", "status": 429, "retry_after": 1, "path": "daily_activity"})).await;
    e.sim.fault(json!({"provider": "oura", "kind": "status", "status": 500, "count": 2, "path": "sleep"})).await;
    let started = Instant::now();
    let (_, res) = e.sync("oura", &user, 1).await;
    assert_eq!(res["success"], true, "{res}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    // A Retry-After longer than the cap ends the run as rate limited.
    e.sim
        .fault(json!({"provider": "oura", "kind": "status", "status": 429, "retry_after": 3600}))
        .await;
    let (_, res) = e.sync("oura", &user, 1).await;
    assert_eq!(res["success"], false);
    assert!(
        res["message"].as_str().unwrap().contains("rate limited"),
        "{res}"
    );
    // Persistent 5xx fails after the retries.
    e.sim
        .fault(json!({"provider": "oura", "kind": "status", "status": 503, "count": 4}))
        .await;
    let (_, res) = e.sync("oura", &user, 1).await;
    assert_eq!(res["success"], false);
    assert!(res["message"].as_str().unwrap().contains("503"), "{res}");
    // Malformed JSON fails the run; the body was still stored raw.
    e.sim
        .fault(json!({"provider": "oura", "kind": "malformed", "path": "daily_activity"}))
        .await;
    let (_, res) = e.sync("oura", &user, 1).await;
    assert!(
        res["message"].as_str().unwrap().contains("malformed"),
        "{res}"
    );
    let c = e.s.db.client().await;
    let raw: i64 = c
        .query_one("SELECT count(*) FROM raw_payloads WHERE size = 10", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw, 1, "the malformed body is kept");
    // A timeout fails after retries (2 s timeout per attempt in this setup).
    e.sim
        .fault(json!({"provider": "oura", "kind": "timeout", "count": 4, "path": "daily_activity"}))
        .await;
    let (_, res) = e.sync("oura", &user, 1).await;
    assert!(
        res["message"].as_str().unwrap().contains("in time"),
        "{res}"
    );
    let runs = e.finished_runs(&user, 5).await;
    assert_eq!(runs.iter().filter(|r| r["status"] == "failed").count(), 4);
}

#[tokio::test]
async fn webhooks_verify_signatures_dedupe_and_trigger_pulls() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("oura", &user).await;
    let target = format!("{}/api/v1/providers/oura/webhooks", e.s.url);
    let body = json!({"event_type": "create", "data_type": "workout", "object_id": "wo-1", "user_id": "oura-user-1"});
    let (st, text) = e.sim.webhook("oura", &target, body.clone(), true).await;
    assert_eq!(st, 401, "{text}");
    let (st, text) = e.sim.webhook("oura", &target, body.clone(), false).await;
    assert_eq!((st, text.contains("accepted")), (200, true), "{text}");
    let runs = e.finished_runs(&user, 1).await;
    assert_eq!(
        (runs[0]["source"].as_str(), runs[0]["status"].as_str()),
        (Some("webhook"), Some("success"))
    );
    assert!(
        e.count("SELECT count(*) FROM workouts WHERE user_id = $1", &user)
            .await
            >= 3
    );
    // The same delivery again (the sim signs with a fresh timestamp, the body is identical).
    let (st, text) = e.sim.webhook("oura", &target, body, false).await;
    assert_eq!((st, text.contains("duplicate")), (200, true), "{text}");
    assert_eq!(e.runs(&user).await.len(), 1);
    // Verification challenge.
    // A challenge with someone else's verification token is refused (the right one is
    // exercised by the simulator when subscriptions are registered).
    let (st, _) = call(e.s.req(
        Method::GET,
        "/api/v1/providers/oura/webhooks?verification_token=t&challenge=xyz",
    ))
    .await;
    assert_eq!(st, 401);
    // Whoop signatures are base64 and checked too.
    let w = format!("{}/api/v1/providers/whoop/webhooks", e.s.url);
    let (st, _) = e
        .sim
        .webhook(
            "whoop",
            &w,
            json!({"user_id": 1, "id": "x", "type": "sleep.updated"}),
            true,
        )
        .await;
    assert_eq!(st, 401);
    let (st, _) = e
        .sim
        .webhook(
            "whoop",
            &w,
            json!({"user_id": 1, "id": "x", "type": "sleep.updated"}),
            false,
        )
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn whoop_connect_and_sync() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("whoop", &user).await;
    assert_eq!(e.connections(&user).await[0]["provider_user_id"], "10129");
    let (_, res) = e.sync("whoop", &user, 3).await;
    assert_eq!(res["success"], true, "{res}");
    assert!(e
        .sim
        .requests()
        .await
        .iter()
        .any(|r| r.contains("nextToken=2")));
    assert!(
        e.count("SELECT count(*) FROM workouts WHERE user_id = $1", &user)
            .await
            >= 4
    );
    let c = e.s.db.client().await;
    let row = c
        .query_one(
            "SELECT zone_offset, round((stats->>'energy_kcal')::numeric)::float8 FROM workouts WHERE user_id = $1 LIMIT 1",
            &[&user.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i16>>(0), Some(-300));
    assert_eq!(row.get::<_, f64>(1), 500.0);
    // Async mode: queued at once, finished in the background. As upstream, it refuses
    // parameters the background run would ignore.
    let (st, refused) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/whoop/users/{user}/sync?data_type=workouts"),
    ))
    .await;
    assert_eq!(st, 400, "{refused}");
    let (st, queued) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/whoop/users/{user}/sync"),
    ))
    .await;
    assert_eq!((st, &queued["async"]), (200, &json!(true)), "{queued}");
    let task = queued["task_id"].as_str().unwrap().to_string();
    let runs = e.finished_runs(&user, 2).await;
    let run = runs
        .iter()
        .find(|r| r["run_id"] == task.as_str())
        .expect("the queued run");
    assert_eq!(run["status"], "success");
    let rmssd = e
        .count(
            "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 7",
            &user,
        )
        .await;
    assert!(rmssd >= 4);
}

#[tokio::test]
async fn disconnect_and_delete_data() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("oura", &user).await;
    let (_, res) = e.sync("oura", &user, 2).await;
    assert_eq!(res["success"], true);
    let samples = e
        .count("SELECT count(*) FROM samples WHERE user_id = $1", &user)
        .await;
    let workouts = e
        .count("SELECT count(*) FROM workouts WHERE user_id = $1", &user)
        .await;
    assert!(samples > 0 && workouts > 0);
    let (st, _) = call(e.req(
        Method::DELETE,
        &format!("/api/v1/users/{user}/connections/oura"),
    ))
    .await;
    assert_eq!(st, 204);
    assert_eq!(e.connections(&user).await[0]["status"], "revoked");
    // Already revoked: 204 again, as upstream.
    let (st, _) = call(e.req(
        Method::DELETE,
        &format!("/api/v1/users/{user}/connections/oura"),
    ))
    .await;
    assert_eq!(st, 204);
    // The data outlives the disconnect until it is purged: purging after it works. Deleting
    // data takes a developer JWT, as deleting the user does.
    let jwt = e.s.login().await;
    let (st, _) = call(
        e.s.req(
            Method::DELETE,
            &format!("/api/v1/users/{user}/connections/oura/data"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 204);
    let c = e.s.db.client().await;
    let id = user.parse::<uuid::Uuid>().unwrap();
    for table in ["samples", "workouts", "sleep_sessions", "data_sources"] {
        let n: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE user_id = $1"),
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} still has rows");
    }
    let (st, _) = e.sync("oura", &user, 1).await;
    assert_eq!(st, 404, "no active connection any more");
    // The raw payloads stayed: replaying them restores exactly what was there, twice over.
    for _ in 0..2 {
        let out = e.s.db.run(&["providers", "replay", "--user", &user]).await;
        assert!(out.contains("payload(s) replayed"), "{out}");
        assert!(!out.starts_with("0 "), "{out}");
    }
    // The replayed stream is applied in several batches; a loaded machine can pause between
    // them longer than `count` waits for a stable figure, so wait for the expected one.
    for (sql, want) in [
        ("SELECT count(*) FROM samples WHERE user_id = $1", samples),
        ("SELECT count(*) FROM workouts WHERE user_id = $1", workouts),
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = e.count(sql, &user).await;
            if n == want || Instant::now() > deadline {
                assert_eq!(n, want, "{sql}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Reads SSE frames until `n` events arrived; returns their ids and whether a heartbeat came.
async fn read_events(resp: reqwest::Response, n: usize) -> (Vec<(i64, i64)>, bool) {
    read_events_told(resp, n, None).await
}

/// `read_events`, telling `on_heartbeat` when the first heartbeat comment arrives.
async fn read_events_told(
    resp: reqwest::Response,
    n: usize,
    mut on_heartbeat: Option<tokio::sync::oneshot::Sender<()>>,
) -> (Vec<(i64, i64)>, bool) {
    use futures::StreamExt;
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut ids = vec![];
    let mut heartbeat = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids.len() < n && Instant::now() < deadline {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await
        else {
            break;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame = buf[..end].to_string();
            buf.drain(..end + 2);
            if frame == ": heartbeat" {
                heartbeat = true;
                if let Some(tell) = on_heartbeat.take() {
                    let _ = tell.send(());
                }
            }
            for line in frame.lines() {
                if let Some(id) = line.strip_prefix("id:") {
                    let (tx, pos) = id.trim().split_once('.').expect("id is tx.position");
                    ids.push((tx.parse().unwrap(), pos.parse().unwrap()));
                }
            }
        }
    }
    (ids, heartbeat)
}

#[tokio::test]
async fn sync_status_stream_resumes_from_last_event_id() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("oura", &user).await;
    let (_, res) = e.sync("oura", &user, 1).await;
    assert_eq!(res["success"], true);
    // Started, fetching, one processing per data type (8), saving, completed.
    let (st, recent) = call(e.req(Method::GET, &format!("/api/v1/users/{user}/sync/recent"))).await;
    assert_eq!(st, 200);
    let recent = recent.as_array().unwrap().clone();
    assert_eq!(recent.len(), 12, "{recent:?}");
    assert_eq!(recent[0]["stage"], "completed");
    let path = format!("/api/v1/users/{user}/sync/stream");
    let resp = e.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (ids, _) = read_events(resp, 12).await;
    assert_eq!(ids.len(), 12);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // Resume after the fourth: exactly the last eight come back, then heartbeats.
    let resp = e
        .req(Method::GET, &path)
        .header("Last-Event-ID", format!("{}.{}", ids[3].0, ids[3].1))
        .send()
        .await
        .unwrap();
    let (resumed, _) = read_events(resp, 8).await;
    assert_eq!(resumed, ids[4..].to_vec());
    // Live: a new run's events arrive on an open stream, after a heartbeat.
    let resp = e
        .req(Method::GET, &path)
        .header("Last-Event-ID", format!("{}.{}", ids[11].0, ids[11].1))
        .send()
        .await
        .unwrap();
    let (told, heard) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(read_events_told(resp, 12, Some(told)));
    // The run starts once the open stream has been silent long enough for a heartbeat.
    tokio::time::timeout(Duration::from_secs(10), heard)
        .await
        .expect("no heartbeat within 10 s of silence")
        .expect("the stream ended before a heartbeat");
    let (_, res) = e.sync("oura", &user, 1).await;
    assert_eq!(res["success"], true);
    let (live, heartbeat) = reader.await.unwrap();
    assert_eq!(live.len(), 12);
    assert!(live[0] > ids[11]);
    assert!(heartbeat, "a heartbeat comment was sent during silence");
}

#[tokio::test]
async fn scheduler_pulls_and_respects_rate_limits_and_the_per_connection_lock() {
    let e = setup(&[("WEARHOUSE_SYNC_INTERVAL_SECS", "1")]).await;
    let jwt = e.s.login().await;
    let mode = |m: &'static str| {
        e.s.req(Method::PUT, "/api/v1/oauth/providers/oura")
            .bearer_auth(&jwt)
            .json(&json!({ "live_sync_mode": m }))
    };
    // In webhook mode the scheduler leaves the connection alone.
    assert_eq!(call(mode("webhook")).await.0, 200);
    let user = e.user().await;
    e.connect("oura", &user).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(e.runs(&user).await.is_empty());
    assert_eq!(call(mode("pull")).await.0, 200);
    let runs = e.finished_runs(&user, 1).await;
    assert_eq!(
        (runs[0]["source"].as_str(), runs[0]["status"].as_str()),
        (Some("scheduled"), Some("success"))
    );
    // A 429 beyond the wait cap pauses this connection for its Retry-After.
    e.sim
        .fault(json!({"provider": "oura", "kind": "status", "status": 429, "retry_after": 3600, "count": 100}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = e.runs(&user).await;
        if runs.iter().any(|r| {
            r["error"]
                .as_str()
                .is_some_and(|m| m.contains("rate limited"))
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "no rate-limited run: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = e.runs(&user).await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        e.runs(&user).await.len(),
        before,
        "no pull during Retry-After"
    );
}

#[tokio::test]
async fn one_connection_never_syncs_twice_at_once() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("oura", &user).await;
    // The first run waits 2 s on a Retry-After, holding the connection's lock.
    e.sim
        .fault(json!({"provider": "oura", "kind": "status", "status": 429, "retry_after": 2, "path": "daily_activity"}))
        .await;
    let first = e.sync("oura", &user, 1);
    let second = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        e.sync("oura", &user, 1).await
    };
    let ((s1, r1), (s2, r2)) = tokio::join!(first, second);
    assert_eq!((s1, &r1["success"]), (200, &json!(true)), "{r1}");
    assert_eq!(s2, 409, "{r2}");
}

#[tokio::test]
async fn garmin_pkce_backfill_push_fan_out_and_deregistration() {
    let e = setup_logged(&[]).await;
    let hook = format!(
        "{}/api/v1/providers/garmin/webhooks?token={GARMIN_PUSH_TOKEN}",
        e.s.url
    );
    e.sim
        .config(json!({"garmin_push_target": hook, "garmin_client_id": "garmin-client"}))
        .await;
    let user = e.user().await;
    // PKCE: the consent URL carries an S256 challenge, and a wrong verifier burns the code.
    let cb = e.consent("garmin", &user, None).await;
    let code = reqwest::Url::parse(&cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let r = e
        .sim
        .http
        .post(format!("{}/garmin/oauth/token", e.sim.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            (
                "redirect_uri",
                &format!("{}/api/v1/oauth/garmin/callback", e.s.url),
            ),
            ("code_verifier", "wrong"),
            ("client_id", "garmin-client"),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(e.callback(&cb).await.contains("/api/v1/oauth/error"));
    e.connect("garmin", &user).await;
    let conn = &e.connections(&user).await[0];
    assert_eq!(
        (
            conn["provider_user_id"].as_str(),
            conn["max_historical_days"].as_i64()
        ),
        (Some("garmin-user-1"), Some(30))
    );
    assert_eq!(
        (
            conn["webhook_stream"].as_bool(),
            conn["rest_pull"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let (st, _) = e.sync("garmin", &user, 1).await;
    assert_eq!(st, 501, "Garmin has no pull");

    // Backfill: capped at 30 days, requested per type, the data arrives by push.
    let (st, h) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/garmin/users/{user}/sync/historical?days=3"),
    ))
    .await;
    assert_eq!(
        (st, h["method"].as_str(), h["days"].as_i64()),
        (200, Some("webhook_backfill"), Some(3))
    );
    let runs = e.finished_runs(&user, 6).await;
    assert!(runs.iter().all(|r| r["status"] == "success"), "{runs:?}");
    let (st, status) = call(e.req(
        Method::GET,
        &format!("/api/v1/providers/garmin/users/{user}/backfill/status"),
    ))
    .await;
    assert_eq!(st, 200);
    assert_eq!(status["overall_status"], "complete", "{status}");
    // Upstream's shape: windows keyed by index, the retry fields, integer counts.
    assert_eq!(status["windows"]["0"]["sleeps"], "done", "{status}");
    assert_eq!(
        status["summary"]["sleeps"],
        json!({"done": 1, "timed_out": 0, "failed": 0})
    );
    assert_eq!(
        (&status["current_window"], &status["total_windows"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(
        (
            &status["retry_phase"],
            &status["retry_type"],
            &status["retry_window"],
            &status["attempt_count"],
            &status["max_attempts"],
            &status["in_progress"],
            &status["permanently_failed"],
        ),
        (
            &json!(false),
            &Value::Null,
            &Value::Null,
            &json!(0),
            &json!(3),
            &json!(false),
            &json!(false)
        ),
        "{status}"
    );
    let reqs = e.sim.requests().await;
    let sleeps: Vec<&String> = reqs
        .iter()
        .filter(|r| r.contains("backfill/sleeps"))
        .collect();
    assert_eq!(sleeps.len(), 1);
    // The first backfill is complete: nothing is left to cancel.
    let (st, _) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/garmin/users/{user}/backfill/cancel"),
    ))
    .await;
    assert_eq!(st, 409, "nothing is running");
    let (st, h) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/garmin/users/{user}/sync/historical?days=90"),
    ))
    .await;
    assert_eq!(h["days"], 30, "{h}");
    assert_eq!(st, 200);
    let (st, _) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/garmin/users/{user}/backfill/epochs/retry"),
    ))
    .await;
    assert_eq!(st, 400);
    let (st, _) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/garmin/users/{user}/backfill/cancel"),
    ))
    .await;
    // The second backfill may still run here, so cancel answers 200 or 409; that it answers
    // 409 when nothing runs was checked before the second request.
    assert!(st == 200 || st == 409, "{st}");

    // Values: steps 7000 + 100·day at local (-05:00) midnight, a running workout, sleep stages.
    let c = e.s.db.client().await;
    let id = user.parse::<uuid::Uuid>().unwrap();
    assert!(
        e.count(
            "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 80",
            &user
        )
        .await
            >= 3
    );
    let rows = c
        .query("SELECT time, value, zone_offset, is_daily_total FROM samples WHERE user_id = $1 AND series_type = 80", &[&id])
        .await
        .unwrap();
    for r in rows {
        let t: chrono::DateTime<Utc> = r.get(0);
        let local = t - chrono::Duration::hours(5);
        assert_eq!(local.format("%H:%M").to_string(), "00:00");
        assert_eq!(r.get::<_, f64>(1), 7000.0 + 100.0 * local.day() as f64);
        assert_eq!(
            (r.get::<_, Option<i16>>(2), r.get::<_, Option<bool>>(3)),
            (Some(-300), Some(true))
        );
    }
    let w = c
        .query_one(
            "SELECT type, zone_offset, duration_s FROM workouts WHERE user_id = $1 LIMIT 1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            w.get::<_, String>(0),
            w.get::<_, Option<i16>>(1),
            w.get::<_, Option<f64>>(2)
        ),
        ("running".into(), Some(-300), Some(2400.0))
    );
    let deep: f64 = c
        .query_one(
            "SELECT deep_minutes FROM sleep_sessions WHERE user_id = $1 AND NOT is_nap LIMIT 1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(deep, 90.0);
    // Each day's sleep summary lists a 25-minute afternoon nap: it is served as its own session
    // flagged `is_nap`, and the night it came with keeps its window and stages.
    let today = Utc::now().date_naive();
    let window = format!(
        "start_date={}&end_date={}",
        today - chrono::Duration::days(5),
        today + chrono::Duration::days(2)
    );
    let (st, sl) = call(e.req(
        Method::GET,
        &format!("/api/v1/users/{user}/events/sleep?{window}&limit=100"),
    ))
    .await;
    assert_eq!(st, 200, "{sl}");
    let items = sl["data"].as_array().unwrap();
    let naps: Vec<&Value> = items.iter().filter(|s| s["is_nap"] == true).collect();
    let nights: Vec<&Value> = items.iter().filter(|s| s["is_nap"] == false).collect();
    assert!(!naps.is_empty() && naps.len() == nights.len(), "{sl}");
    for n in &naps {
        assert_eq!(n["duration_seconds"].as_f64(), Some(1500.0), "{n}");
        assert_eq!(n["sleep_duration_seconds"].as_f64(), Some(1500.0), "{n}");
        assert_eq!(n["zone_offset"], "-05:00", "{n}");
        // 14:10 local (-05:00) is 19:10 UTC.
        assert!(
            n["start_time"].as_str().unwrap().contains("T19:10:00"),
            "{n}"
        );
        assert_eq!(n["source"]["provider"], "garmin");
    }
    for n in &nights {
        assert_eq!(n["duration_seconds"].as_f64(), Some(25200.0), "{n}");
        assert_eq!(n["stages"]["deep_minutes"].as_f64(), Some(90.0), "{n}");
        assert!(
            n["start_time"].as_str().unwrap().contains("T04:00:00"),
            "{n}"
        );
    }

    // A second user linked to the same Garmin account gets pushes too.
    let other = e.user().await;
    e.connect("garmin", &other).await;
    assert_eq!(
        e.connections(&other).await[0]["linked_user_ids"],
        json!([user])
    );
    let push = json!({"bodyComps": [{"userId": "garmin-user-1", "measurementTimeInSeconds": 1772341200,
        "measurementTimeOffsetInSeconds": 0, "weightInGrams": 71200}]});
    let (st, _) = e.sim.webhook("garmin", &hook, push.clone(), true).await;
    assert_eq!(st, 401, "wrong client id");
    let (st, body) = e.sim.webhook("garmin", &hook, push, false).await;
    assert_eq!((st, body.contains("accepted")), (200, true), "{body}");
    for u in [&user, &other] {
        assert_eq!(
            e.count(
                "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 41",
                u
            )
            .await,
            1
        );
    }
    // A menstrual cycle summary (mct) reaches the cycles endpoint of every linked user.
    let mct = json!({"mct": [{"userId": "garmin-user-1", "summaryId": "g-mct-1",
        "periodStartDate": "2026-02-02", "cycleLength": 28, "periodLength": 5,
        "currentPhaseType": "LUTEAL", "dayInCycle": 20, "isPredictedCycle": false}]});
    let (st, _) = e.sim.webhook("garmin", &hook, mct, false).await;
    assert_eq!(st, 200);
    for u in [&user, &other] {
        assert_eq!(
            e.count(
                "SELECT count(*) FROM menstrual_cycles WHERE user_id = $1",
                u
            )
            .await,
            1
        );
        let (st, c) = e
            .s
            .get(
                &e.key,
                &format!("/api/v1/users/{u}/events/menstrual-cycles?start_date=2026-01-01&end_date=2026-01-02"),
            )
            .await;
        assert_eq!(st, 200, "{c}");
        let c = &c["data"][0];
        assert_eq!(c["start_time"], "2026-02-02T00:00:00+00:00", "{c}");
        assert_eq!(c["end_time"], "2026-03-02T00:00:00+00:00");
        assert_eq!(c["source"]["provider"], "garmin");
        assert_eq!(
            (
                &c["cycle_length"],
                &c["period_length"],
                &c["current_phase_type"],
                &c["day_in_cycle"]
            ),
            (&json!(28), &json!(5), &json!("LUTEAL"), &json!(20))
        );
    }
    // A permission change updates the scope of every linked connection.
    let perms = json!({"userPermissionsChange": [{"userId": "garmin-user-1", "permissions": ["HEALTH_EXPORT"]}]});
    let (st, _) = e.sim.webhook("garmin", &hook, perms, false).await;
    assert_eq!(st, 200);
    for u in [&user, &other] {
        assert_eq!(e.connections(u).await[0]["scope"], "HEALTH_EXPORT");
    }
    // Deregistration revokes every linked connection.
    let (st, _) = e
        .sim
        .webhook(
            "garmin",
            &hook,
            json!({"deregistrations": [{"userId": "garmin-user-1"}]}),
            false,
        )
        .await;
    assert_eq!(st, 200);
    for u in [&user, &other] {
        assert_eq!(e.connections(u).await[0]["status"], "revoked");
    }
    assert_no_tokens(&e, &[]).await;
}

#[tokio::test]
async fn provider_settings_enable_disable_and_live_sync_mode() {
    let e = setup(&[]).await;
    let jwt = e.s.login().await;
    let (st, list) = call(e.s.req(Method::GET, "/api/v1/oauth/providers")).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "apple",
            "fitbit",
            "garmin",
            "google",
            "oura",
            "samsung",
            "strava",
            "ultrahuman",
            "whoop"
        ]
    );
    assert_eq!(list[4]["live_sync_mode"], "pull");
    assert_eq!(list[4]["live_sync_configurable"], true);
    assert_eq!(list[2]["live_sync_configurable"], false);
    // The mobile SDK platforms: no cloud API, nothing to sync from here.
    for (i, name) in [
        (0, "Apple Health"),
        (3, "Google Health Connect"),
        (5, "Samsung Health"),
    ] {
        assert_eq!(list[i]["name"], name);
        assert_eq!(list[i]["has_cloud_api"], false);
        assert_eq!(list[i]["live_sync_mode"], Value::Null);
        assert_eq!(list[i]["is_enabled"], true);
    }
    let (_, cloud) = call(e.s.req(Method::GET, "/api/v1/oauth/providers?cloud_only=true")).await;
    assert_eq!(cloud.as_array().unwrap().len(), 6);
    // Developer-only.
    let (st, _) = call(
        e.req(Method::PUT, "/api/v1/oauth/providers/oura")
            .json(&json!({"is_enabled": false})),
    )
    .await;
    assert_eq!(st, 401);
    let (st, oura) = call(
        e.s.req(Method::PUT, "/api/v1/oauth/providers/oura")
            .bearer_auth(&jwt)
            .json(&json!({"live_sync_mode": "webhook", "data_granularity": "raw"})),
    )
    .await;
    assert_eq!(
        (
            st,
            oura["live_sync_mode"].as_str(),
            oura["data_granularity"].as_str()
        ),
        (200, Some("webhook"), Some("raw"))
    );
    // Switching to webhook mode registered Oura's subscriptions; the simulator verified our
    // callback with the challenge before accepting each one.
    let subs = e
        .sim
        .requests()
        .await
        .iter()
        .filter(|r| r.starts_with("oura/v2/webhook/subscription"))
        .count();
    assert_eq!(subs, 12);

    let (st, _) = call(
        e.s.req(Method::PUT, "/api/v1/oauth/providers/garmin")
            .bearer_auth(&jwt)
            .json(&json!({"live_sync_mode": "pull"})),
    )
    .await;
    assert_eq!(st, 400, "Garmin's live sync mode is not configurable");
    let (st, _) = call(
        e.s.req(Method::PUT, "/api/v1/oauth/providers/oura")
            .bearer_auth(&jwt)
            .json(&json!({"live_sync_mode": null})),
    )
    .await;
    assert_eq!(st, 400);
    let (st, all) = call(
        e.s.req(Method::PUT, "/api/v1/oauth/providers")
            .bearer_auth(&jwt)
            .json(&json!({"providers": {"whoop": false, "samsung": false}})),
    )
    .await;
    let entry = |name: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!((st, &entry("whoop")["is_enabled"]), (200, &json!(false)));
    assert_eq!(
        entry("samsung")["is_enabled"],
        false,
        "an SDK platform can be disabled"
    );
    let (_, enabled) =
        call(e.s.req(Method::GET, "/api/v1/oauth/providers?enabled_only=true")).await;
    assert_eq!(
        enabled.as_array().unwrap().len(),
        all.as_array().unwrap().len() - 2
    );
    let user = e.user().await;
    let (st, body) = call(e.req(
        Method::GET,
        &format!("/api/v1/oauth/whoop/authorize?user_id={user}"),
    ))
    .await;
    assert_eq!(
        (st, body["detail"].as_str()),
        (400, Some("Provider whoop is disabled"))
    );
    let (st, _) = call(
        e.s.req(Method::PUT, "/api/v1/oauth/providers")
            .bearer_auth(&jwt)
            .json(&json!({"providers": {"coros": true}})),
    )
    .await;
    assert_eq!(st, 400);
}

/// Garmin's Activity API end to end: activity details pushed (samples and laps), re-delivered,
/// Move IQ ignored as the contract says, then the activity's FIT file announced by push,
/// downloaded from the simulator with the user's token, kept raw, parsed into the same workout
/// and into samples; finally everything is deleted and replayed from the raw payloads.
#[tokio::test]
async fn garmin_activity_details_and_fit_files_end_to_end() {
    // 2026-03-01T07:00:00-05:00.
    const START: i64 = 1_772_366_400;
    let e = setup(&[]).await;
    let hook = format!(
        "{}/api/v1/providers/garmin/webhooks?token={GARMIN_PUSH_TOKEN}",
        e.s.url
    );
    e.sim
        .config(json!({"garmin_push_target": hook, "garmin_client_id": "garmin-client"}))
        .await;
    let user = e.user().await;
    e.connect("garmin", &user).await;
    let samples: Vec<Value> = (0..4)
        .map(|i| {
            json!({"startTimeInSeconds": START + 15 * i, "heartRate": 100 + i,
            "speedMetersPerSecond": 2.9, "stepsPerMinute": 166, "powerInWatts": 240,
            "elevationInMeters": 12.5, "totalDistanceInMeters": 43.5 * i as f64})
        })
        .collect();
    let details = json!([{"userId": "garmin-user-1", "summaryId": "555-detail", "activityId": 555,
        "summary": {"summaryId": "555", "activityType": "RUNNING", "startTimeInSeconds": START,
            "startTimeOffsetInSeconds": -18000, "durationInSeconds": 600,
            "averageHeartRateInBeatsPerMinute": 101, "activeKilocalories": 140,
            "deviceName": "Forerunner 265"},
        "samples": samples, "laps": [{"startTimeInSeconds": START}]}]);
    let (st, body) = e
        .sim
        .webhook(
            "garmin",
            &hook,
            json!({ "activityDetails": details }),
            false,
        )
        .await;
    assert_eq!((st, body.contains("accepted")), (200, true), "{body}");
    e.finished_runs(&user, 1).await;
    let hr_sql = "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 1";
    assert_eq!(e.count(hr_sql, &user).await, 4);
    let window = "start_time=2026-03-01T11:00:00Z&end_time=2026-03-01T13:00:00Z";
    let (st, ts) = call(e.req(
        Method::GET,
        &format!("/api/v1/users/{user}/timeseries?{window}&types=heart_rate&limit=100"),
    ))
    .await;
    assert_eq!(st, 200, "{ts}");
    let first = &ts["data"][0];
    assert_eq!(
        (
            first["timestamp"].as_str(),
            first["value"].as_f64(),
            first["zone_offset"].as_str(),
            first["source"]["provider"].as_str()
        ),
        (
            Some("2026-03-01T12:00:00+00:00"),
            Some(100.0),
            Some("-05:00"),
            Some("garmin")
        ),
        "{ts}"
    );
    let (_, cad) = call(e.req(
        Method::GET,
        &format!("/api/v1/users/{user}/timeseries?{window}&types=cadence&limit=100"),
    ))
    .await;
    assert_eq!(cad["data"][0]["value"], 166.0, "{cad}");

    // Re-delivered in another envelope (so not the same bytes), next to a Move IQ event: the
    // details are the same records (a resend: not mapped again), and Move IQ makes no workout.
    let again = json!({"activityDetails": details, "moveIQActivities": [{"userId": "garmin-user-1",
        "summaryId": "miq-1", "calendarDate": "2026-03-01", "startTimeInSeconds": START + 7200,
        "offsetInSeconds": -18000, "durationInSeconds": 900, "activityType": "Walking"}]});
    let (st, _) = e.sim.webhook("garmin", &hook, again, false).await;
    assert_eq!(st, 200);
    e.finished_runs(&user, 2).await;
    assert_eq!(e.count(hr_sql, &user).await, 4);
    let workouts_sql = "SELECT count(*) FROM workouts WHERE user_id = $1";
    assert_eq!(e.count(workouts_sql, &user).await, 1);

    // The FIT file: a sample every 10 s for 10 minutes, two laps, the same activity.
    let r: Value = e
        .sim
        .http
        .post(format!("{}/_sim/garmin/activity", e.sim.url))
        .json(&json!({"activity_id": 555, "start": START, "offset": -18000, "seconds": 600, "step": 10}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], 200, "{r}");
    let runs = e.finished_runs(&user, 3).await;
    // The Move IQ delivery saved nothing: skipped, as upstream reports such deliveries.
    for r in &runs {
        let want = if r["message"].as_str().unwrap_or("").starts_with("moveIQ") {
            "skipped"
        } else {
            "success"
        };
        assert_eq!(r["status"], want, "{runs:?}");
    }
    assert!(e
        .sim
        .requests()
        .await
        .iter()
        .any(|r| r.starts_with("garmin/wellness-api/rest/activityFile?id=555")));
    // 60 records; the two at 0 s and 30 s share their key with detail samples and replace them.
    assert_eq!(e.count(hr_sql, &user).await, 62);
    let c = e.s.db.client().await;
    let id = user.parse::<uuid::Uuid>().unwrap();
    let raw: (String, i64) = {
        let r = c
            .query_one(
                "SELECT content_type, size FROM raw_payloads WHERE kind = 'activityFiles:FIT:555'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(raw.0, "application/vnd.ant.fit");
    assert!(raw.1 > 1000, "{raw:?}");
    let (st, ts) = call(e.req(
        Method::GET,
        &format!("/api/v1/users/{user}/timeseries?{window}&types=heart_rate&limit=100"),
    ))
    .await;
    assert_eq!(st, 200);
    let at = |t: &str| {
        ts["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["timestamp"] == t)
            .map(|s| (s["value"].as_f64().unwrap(), s["zone_offset"].clone()))
    };
    // From the file: 130 + i % 30 at START + 10·i.
    assert_eq!(
        at("2026-03-01T12:00:20+00:00"),
        Some((132.0, json!("-05:00")))
    );
    assert_eq!(
        at("2026-03-01T12:00:15+00:00"),
        Some((101.0, json!("-05:00")))
    );
    assert!(
        e.count(
            "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 210",
            &user
        )
        .await
            >= 60
    );
    assert_eq!(e.count(workouts_sql, &user).await, 1);
    let w = c
        .query_one(
            "SELECT type, zone_offset, stats, metadata, segments FROM workouts WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let (stats, metadata, segments): (Value, Value, Value) = (w.get(2), w.get(3), w.get(4));
    assert_eq!(
        (w.get::<_, String>(0), w.get::<_, Option<i16>>(1)),
        ("running".into(), Some(-300))
    );
    // The file's totals join the summary's (the device name stays from the summary).
    assert_eq!(stats["heart_rate_max"], 159.0, "{stats}");
    assert_eq!(stats["distance_m"], 1920.0, "{stats}");
    assert_eq!(metadata["device_name"], "Forerunner 265", "{metadata}");
    let laps = segments.as_array().unwrap();
    assert_eq!(laps.len(), 2, "{segments}");
    assert_eq!(laps[1]["stats"]["distance_m"], 960.0);
    let (st, list) = call(e.req(
        Method::GET,
        &format!("/api/v1/users/{user}/events/workouts?start_date=2026-03-01&end_date=2026-03-02"),
    ))
    .await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["data"][0]["max_heart_rate_bpm"], 159.0, "{list}");
    assert_eq!(list["data"][0]["distance_meters"], 1920.0, "{list}");

    // Delete the data, then replay the raw payloads (webhook bodies and the FIT file).
    // Deleting data takes a developer JWT, as deleting the user does.
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
    // The read models apply the deletion.
    let deadline = Instant::now() + Duration::from_secs(20);
    let n = loop {
        let n: i64 = c
            .query_one("SELECT count(*) FROM samples WHERE user_id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        if n == 0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(n, 0);
    let out = e.s.db.run(&["providers", "replay", "--user", &user]).await;
    assert!(out.contains("payload(s) replayed"), "{out}");
    assert_eq!(e.count(hr_sql, &user).await, 62);
    let stats: Value = c
        .query_one("SELECT stats FROM workouts WHERE user_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stats["heart_rate_max"], 159.0, "{stats}");
}

/// Users linked to one Garmin account all get an activity's FIT file, downloaded once: Garmin
/// serves the file per account, and the first user's run fans it out to the others.
#[tokio::test]
async fn garmin_activity_files_download_once_for_linked_users() {
    // 2026-03-02T07:00:00-05:00.
    const START: i64 = 1_772_452_800;
    let e = setup_logged(&[]).await;
    let hook = format!(
        "{}/api/v1/providers/garmin/webhooks?token={GARMIN_PUSH_TOKEN}",
        e.s.url
    );
    e.sim
        .config(json!({"garmin_push_target": hook, "garmin_client_id": "garmin-client"}))
        .await;
    let (first, second) = (e.user().await, e.user().await);
    e.connect("garmin", &first).await;
    e.connect("garmin", &second).await;
    assert_eq!(
        e.connections(&second).await[0]["linked_user_ids"],
        json!([first])
    );
    let r: Value = e
        .sim
        .http
        .post(format!("{}/_sim/garmin/activity", e.sim.url))
        .json(&json!({"activity_id": 777, "start": START, "offset": -18000, "seconds": 600, "step": 10}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], 200, "{r}");
    // Each user gets the file's 60 heart-rate records, the workout, and its own push run.
    let hr_sql = "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 1";
    for u in [&first, &second] {
        let runs = e.finished_runs(u, 1).await;
        assert!(runs.iter().all(|r| r["status"] == "success"), "{runs:?}");
        assert_eq!(e.count(hr_sql, u).await, 60, "{u}");
        assert_eq!(
            e.count("SELECT count(*) FROM workouts WHERE user_id = $1", u)
                .await,
            1
        );
    }
    let downloads = e
        .sim
        .requests()
        .await
        .iter()
        .filter(|r| r.starts_with("garmin/wellness-api/rest/activityFile?id=777"))
        .count();
    assert_eq!(downloads, 1, "one download for the account");
    // The file is kept once, and each user's history references it.
    let c = e.s.db.client().await;
    let refs: i64 = c
        .query_one(
            "SELECT count(DISTINCT user_id) FROM events WHERE event_type = 'RawPayloadReceived' \
             AND payload->'raw'->>'kind' = 'activityFiles:FIT:777'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refs, 2);
    assert_no_tokens(&e, &[]).await;
}

/// Whoop's scores reach /health-scores and /summaries/recovery with the simulator's values;
/// its `*.deleted` webhooks delete the record and its score from the read models (the history
/// keeps them), and a later pull of the same records does not bring them back.
#[tokio::test]
async fn whoop_scores_and_provider_side_deletes() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("whoop", &user).await;
    let (_, res) = e.sync("whoop", &user, 3).await;
    assert_eq!(res["success"], true, "{res}");
    let id: uuid::Uuid = user.parse().unwrap();

    // Recovery: 60 + day, at created_at (12:30Z), with the inputs as components.
    let recovery = health_scores(&e, &user, "provider=whoop&category=recovery").await;
    assert!(recovery.len() >= 4, "{recovery:?}");
    for r in &recovery {
        let at = chrono::DateTime::parse_from_rfc3339(r["recorded_at"].as_str().unwrap()).unwrap();
        assert_eq!(at.format("%H:%M").to_string(), "12:30");
        assert_eq!(r["value"].as_f64(), Some(60.0 + at.day() as f64), "{r}");
        assert_eq!(
            r["components"]["resting_heart_rate"]["value"].as_f64(),
            Some(50.0 + (at.day() % 5) as f64)
        );
        assert_eq!(
            r["components"]["hrv_rmssd_milli"]["value"].as_f64(),
            Some(60.5)
        );
    }
    // Sleep performance (80 + day % 10, at the wake time) and workout strain (10).
    let sleep = health_scores(&e, &user, "provider=whoop&category=sleep").await;
    assert!(sleep.len() >= 4);
    for s in &sleep {
        let at = chrono::DateTime::parse_from_rfc3339(s["recorded_at"].as_str().unwrap()).unwrap();
        assert_eq!(s["value"].as_f64(), Some(80.0 + (at.day() % 10) as f64));
        assert_eq!(s["zone_offset"], "-05:00");
        assert_eq!(
            s["components"]["sleep_efficiency_percentage"]["value"].as_f64(),
            Some(90.0)
        );
    }
    let strain = health_scores(&e, &user, "provider=whoop&category=strain").await;
    assert!(strain.len() >= 4);
    assert!(strain.iter().all(|s| s["value"].as_f64() == Some(10.0)));

    // The recovery summary of a day carries the provider's score and the recovery's vitals.
    let day = Utc::now().date_naive() - chrono::Duration::days(1);
    let range = format!(
        "start_date={}&end_date={}",
        day,
        day + chrono::Duration::days(1)
    );
    let (st, summary) = call(e.req(
        Method::GET,
        &format!("/api/v1/users/{user}/summaries/recovery?{range}"),
    ))
    .await;
    assert_eq!(st, 200, "{summary}");
    let row = &summary["data"][0];
    assert_eq!(row["date"], day.to_string(), "{summary}");
    assert_eq!(
        row["recovery_score"].as_f64(),
        Some(60.0 + day.day() as f64)
    );
    assert_eq!(
        row["resting_heart_rate_bpm"].as_f64(),
        Some(50.0 + (day.day() % 5) as f64)
    );
    assert_eq!(row["avg_hrv_rmssd_ms"].as_f64(), Some(60.5));
    assert_eq!(row["avg_spo2_percent"].as_f64(), Some(95.5));

    // The samples that day's recovery (12:30Z) and sleep (starts 04:00Z) were mapped to.
    let derived = || async {
        let window = format!("start_time={day}T00:00:00Z&end_time={day}T23:59:59Z");
        let mut got = Vec::new();
        for t in [
            "resting_heart_rate",
            "heart_rate_variability_rmssd",
            "oxygen_saturation",
            "skin_temperature",
            "respiratory_rate",
        ] {
            let (st, ts) = call(e.req(
                Method::GET,
                &format!("/api/v1/users/{user}/timeseries?{window}&types={t}&limit=100"),
            ))
            .await;
            assert_eq!(st, 200, "{ts}");
            for x in ts["data"].as_array().unwrap() {
                got.push((t, x["timestamp"].as_str().unwrap().to_string()));
            }
        }
        got
    };
    let before = derived().await;
    assert_eq!(before.len(), 5, "{before:?}");
    assert!(before.contains(&("respiratory_rate", format!("{day}T04:00:00+00:00"))));
    assert!(before.contains(&("resting_heart_rate", format!("{day}T12:30:00+00:00"))));

    // Provider-side deletes of that day's workout, sleep and recovery.
    let hook = format!("{}/api/v1/providers/whoop/webhooks", e.s.url);
    for (kind, rid) in [
        ("workout", format!("w-{day}")),
        ("sleep", format!("s-{day}")),
        ("recovery", format!("s-{day}")),
    ] {
        let body = json!({"user_id": 10129, "id": rid, "type": format!("{kind}.deleted"), "trace_id": kind});
        let (st, text) = e.sim.webhook("whoop", &hook, body, false).await;
        assert_eq!((st, text.contains("accepted")), (200, true), "{text}");
    }
    let window = format!(
        "start_date={}&end_date={}&limit=100",
        day - chrono::Duration::days(5),
        day + chrono::Duration::days(3)
    );
    let gone = |list: &Value, start: &str| {
        !list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["start_time"].as_str().unwrap().starts_with(start))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, workouts) = call(e.req(
            Method::GET,
            &format!("/api/v1/users/{user}/events/workouts?{window}"),
        ))
        .await;
        let (_, sleeps) = call(e.req(
            Method::GET,
            &format!("/api/v1/users/{user}/events/sleep?{window}"),
        ))
        .await;
        let day_start = format!("{day}T");
        if gone(&workouts, &day_start) && gone(&sleeps, &day_start) {
            assert!(!workouts["data"].as_array().unwrap().is_empty());
            break;
        }
        assert!(Instant::now() < deadline, "{workouts} {sleeps}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let on_day = |items: &[Value]| {
        items
            .iter()
            .filter(|s| {
                s["recorded_at"]
                    .as_str()
                    .unwrap()
                    .starts_with(&day.to_string())
            })
            .count()
    };
    let scores_left = || async {
        let all = health_scores(&e, &user, "provider=whoop").await;
        let by = |c: &str| {
            all.iter()
                .filter(|s| s["category"] == c)
                .cloned()
                .collect::<Vec<_>>()
        };
        (
            on_day(&by("recovery")),
            on_day(&by("sleep")),
            on_day(&by("strain")),
        )
    };
    assert_eq!(scores_left().await, (0, 0, 0));
    // The samples mapped from the deleted recovery and sleep go with them.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !derived().await.is_empty() {
        assert!(Instant::now() < deadline, "{:?}", derived().await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let recovery_day = || async {
        let (_, summary) = call(e.req(
            Method::GET,
            &format!("/api/v1/users/{user}/summaries/recovery?{range}"),
        ))
        .await;
        // The day is either gone or has none of the deleted recovery's values.
        let row = summary["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["date"] == day.to_string())
            .cloned();
        row.map(|r| {
            (
                r["recovery_score"].clone(),
                r["resting_heart_rate_bpm"].clone(),
                r["avg_hrv_rmssd_ms"].clone(),
                r["avg_spo2_percent"].clone(),
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = recovery_day().await;
        if left.is_none() || left == Some((Value::Null, Value::Null, Value::Null, Value::Null)) {
            break;
        }
        assert!(Instant::now() < deadline, "{left:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The history keeps the samples and names the deletion.
    let sample_deletions: i64 =
        e.s.db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM events WHERE event_type = 'SamplesDeleted' AND user_id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(
        sample_deletions, 2,
        "one for the recovery, one for the sleep"
    );
    // The history keeps the records and says who deleted them.
    let c = e.s.db.client().await;
    let deletions: i64 = c
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'RecordDeleted' AND user_id = $1 \
             AND metadata::text LIKE '%webhook%'",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        deletions, 5,
        "workout + strain, sleep + its score, recovery"
    );
    // A later pull of the same window brings the deleted records again: they stay deleted.
    let (_, res) = e.sync("whoop", &user, 3).await;
    assert_eq!(res["success"], true, "{res}");
    // Every read model has applied the re-pull before the deleted samples are looked for.
    common::settle(&e.s.db).await;
    assert_eq!(scores_left().await, (0, 0, 0));
    assert_eq!(derived().await, vec![], "deleted samples stay deleted");
    assert!(recovery_day().await.is_none_or(|r| r.1.is_null()));
    // Other days keep theirs.
    let other_day = day - chrono::Duration::days(1);
    let (_, ts) = call(e.req(
        Method::GET,
        &format!("/api/v1/users/{user}/timeseries?start_time={other_day}T00:00:00Z&end_time={other_day}T23:59:59Z&types=resting_heart_rate"),
    ))
    .await;
    assert_eq!(ts["data"].as_array().unwrap().len(), 1, "{ts}");
    let hidden: i64 = c
        .query_one(
            "SELECT count(*) FROM workouts WHERE user_id = $1 AND NOT deleted AND start_time::date = $2",
            &[&id, &day],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hidden, 0);
    // A deletion naming nothing is still a valid delivery.
    let (st, _) = e
        .sim
        .webhook(
            "whoop",
            &hook,
            json!({"user_id": 10129, "id": "never-seen", "type": "workout.deleted"}),
            false,
        )
        .await;
    assert_eq!(st, 200);
    let (st, text) = e
        .sim
        .webhook(
            "whoop",
            &hook,
            json!({"user_id": 10129, "type": "workout.deleted"}),
            false,
        )
        .await;
    assert_eq!(st, 400, "{text}");
}

/// Signed webhooks older or newer than the tolerance (here 60 s) are refused with 401 and a
/// `detail`, for Oura and Whoop alike; within it they are accepted.
#[tokio::test]
async fn webhook_timestamps_outside_the_tolerance_are_refused() {
    let e = setup(&[("WEARHOUSE_WEBHOOK_TOLERANCE_SECS", "60")]).await;
    let user = e.user().await;
    e.connect("oura", &user).await;
    for (provider, body) in [
        (
            "oura",
            json!({"event_type": "create", "data_type": "workout", "object_id": "x", "user_id": "nobody"}),
        ),
        (
            "whoop",
            json!({"user_id": 1, "id": "x", "type": "sleep.updated"}),
        ),
    ] {
        let target = format!("{}/api/v1/providers/{provider}/webhooks", e.s.url);
        for offset in [-120, 120, -3600] {
            let (st, text) = e
                .sim
                .webhook_at(provider, &target, body.clone(), false, offset)
                .await;
            assert_eq!(st, 401, "{provider} {offset}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(
                v["detail"].as_str().unwrap().contains("60 s"),
                "{provider}: {text}"
            );
        }
        // A refused delivery was not recorded as handled: the same body within the tolerance
        // is accepted, not a duplicate.
        let (st, text) = e
            .sim
            .webhook_at(provider, &target, body.clone(), false, -30)
            .await;
        assert_eq!(
            (st, text.contains("accepted")),
            (200, true),
            "{provider}: {text}"
        );
    }
    assert!(e.runs(&user).await.is_empty(), "nothing was pulled");
}

/// While Oura is in webhook mode, missing subscriptions are created and expiring ones renewed
/// against the simulator's subscription API; in pull mode nothing is touched.
#[tokio::test]
async fn oura_subscriptions_are_renewed_before_expiry_and_recreated() {
    let e = setup(&[("WEARHOUSE_WEBHOOK_SUBSCRIPTION_CHECK_SECS", "1")]).await;
    let jwt = e.s.login().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        e.sim.oura_subscriptions().await.is_empty(),
        "pull mode: no subscriptions"
    );
    // Subscriptions made now expire within the hour, well inside the 7-day renewal window.
    e.sim.config(json!({"subscription_ttl_secs": 3600})).await;
    let (st, _) = call(
        e.s.req(Method::PUT, "/api/v1/oauth/providers/oura")
            .bearer_auth(&jwt)
            .json(&json!({"live_sync_mode": "webhook"})),
    )
    .await;
    assert_eq!(st, 200);
    // Renewals from now on last 30 days; one subscription disappears at Oura.
    e.sim
        .config(json!({"subscription_ttl_secs": 30 * 86_400}))
        .await;
    let subs = e.sim.oura_subscriptions().await;
    assert!(subs.len() >= 12, "{subs:?}");
    let dropped = subs
        .iter()
        .find(|s| s["data_type"] == "sleep" && s["event_type"] == "update")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = e
        .sim
        .http
        .delete(format!(
            "{}/oura/api/v2/webhook/subscription/{dropped}",
            e.sim.url
        ))
        .header("x-client-secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let callback = format!("{}/api/v1/providers/oura/webhooks", e.s.url);
    let week = Utc::now() + chrono::Duration::days(7);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let subs = e.sim.oura_subscriptions().await;
        let healthy = [
            "workout",
            "sleep",
            "daily_sleep",
            "daily_readiness",
            "daily_activity",
            "daily_spo2",
        ]
        .iter()
        .flat_map(|d| ["create", "update"].map(|t| (*d, t)))
        .all(|(d, t)| {
            subs.iter().any(|s| {
                s["data_type"] == d
                    && s["event_type"] == t
                    && s["callback_url"] == callback.as_str()
                    && chrono::DateTime::parse_from_rfc3339(s["expiration_time"].as_str().unwrap())
                        .unwrap()
                        > week
            })
        });
        if healthy {
            break;
        }
        assert!(Instant::now() < deadline, "not maintained: {subs:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let reqs = e.sim.requests().await;
    let renewals = reqs.iter().filter(|r| r.starts_with("oura renew")).count();
    assert!(renewals >= 11, "{reqs:?}");
    // The missing one was created again, through the verification challenge.
    let sleep_updates = reqs
        .iter()
        .filter(|r| *r == "oura/v2/webhook/subscription sleep update")
        .count();
    assert!(sleep_updates >= 2, "{reqs:?}");
}

/// Two users linked to one Oura account: a sync pulls once and both receive the data; the
/// other user's run says whose connection pulled. A ping for the account pulls once too.
#[tokio::test]
async fn linked_accounts_pull_once_and_fan_out() {
    let e = setup(&[]).await;
    let first = e.user().await;
    let second = e.user().await;
    e.connect("oura", &first).await;
    e.connect("oura", &second).await;
    assert_eq!(
        e.connections(&second).await[0]["linked_user_ids"],
        json!([first])
    );
    let (_, res) = e.sync("oura", &second, 1).await;
    assert_eq!(res["success"], true, "{res}");
    let reqs = e.sim.requests().await;
    let activity = reqs
        .iter()
        .filter(|r| r.contains("usercollection/daily_activity"))
        .count();
    assert_eq!(activity, 1, "one pull for both users: {reqs:?}");
    let steps = "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 80";
    let (a, b) = (e.count(steps, &first).await, e.count(steps, &second).await);
    assert!(a >= 2 && a == b, "{a} {b}");
    let runs = e.finished_runs(&first, 1).await;
    assert_eq!(
        (
            runs[0]["source"].as_str(),
            runs[0]["status"].as_str(),
            runs[0]["primary_user_id"].as_str()
        ),
        (
            Some("linked_account"),
            Some("success"),
            Some(second.as_str())
        )
    );
    let (_, recent) = call(e.req(Method::GET, &format!("/api/v1/users/{first}/sync/recent"))).await;
    assert!(recent
        .as_array()
        .unwrap()
        .iter()
        .any(|ev| ev["primary_user_id"] == second.as_str()));
    assert_eq!(e.runs(&second).await[0]["source"], "pull");
    // A ping for the account: one webhook run (the oldest connection pulls), one fan-out.
    let hook = format!("{}/api/v1/providers/oura/webhooks", e.s.url);
    let body = json!({"event_type": "create", "data_type": "workout", "object_id": "wo-1", "user_id": "oura-user-1"});
    let (st, _) = e.sim.webhook("oura", &hook, body, false).await;
    assert_eq!(st, 200);
    let runs = e.finished_runs(&first, 2).await;
    assert_eq!(runs[0]["source"], "webhook", "{runs:?}");
    let runs = e.finished_runs(&second, 2).await;
    assert_eq!(
        (
            runs[0]["source"].as_str(),
            runs[0]["primary_user_id"].as_str()
        ),
        (Some("linked_account"), Some(first.as_str()))
    );
    let workouts = reqs.len();
    let after = e.sim.requests().await;
    assert_eq!(
        after[workouts..]
            .iter()
            .filter(|r| r.contains("usercollection/workout") && !r.contains("next_token"))
            .count(),
        1,
        "one pull (its first page) for both users: {after:?}"
    );
    for u in [&first, &second] {
        assert!(
            e.count("SELECT count(*) FROM workouts WHERE user_id = $1", u)
                .await
                >= 1
        );
    }
}

/// The per-app budget is one budget for every `serve` process on the database: two processes'
/// schedulers pulling two Oura accounts at once keep the spacing between all their requests.
#[tokio::test]
async fn rate_budget_is_shared_across_processes() {
    // 300 a minute: one request every 200 ms across the whole installation.
    let budget = [
        ("WEARHOUSE_PROVIDER_RATE_BUDGETS", "oura=300"),
        ("WEARHOUSE_SYNC_INTERVAL_SECS", "1"),
        // One pull at a time per process: of the two due pulls (jobs), each process runs one.
        ("WEARHOUSE_JOB_CONCURRENCY", "1"),
    ];
    let e = setup_logged(&budget).await;
    let a = e.user().await;
    let b = e.user().await;
    e.connect_as("oura", &a, Some("ring-a")).await;
    e.connect_as("oura", &b, Some("ring-b")).await;
    assert_eq!(e.connections(&a).await[0]["linked_user_ids"], json!([]));
    // A second process on the same database (and home, for the sealing key).
    let log2 =
        std::env::temp_dir().join(format!("wearhouse-providers-{}.log", uuid::Uuid::new_v4()));
    let mut env: Vec<(String, String)> = e.sim.env();
    env.push(("WEARHOUSE_LOG".into(), "debug".into()));
    env.push(("WEARHOUSE_PROVIDER_TIMEOUT_SECS".into(), "5".into()));
    for (k, v) in budget {
        env.push((k.into(), v.into()));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let db = TestDb {
        name: e.s.db.name.clone(),
        url: e.s.db.url.clone(),
    };
    let s2 = Server::start_logging(
        db,
        &refs,
        Stdio::from(std::fs::File::create(&log2).unwrap()),
    )
    .await;
    let started = Utc::now().timestamp_millis();
    // Let both schedulers pull (each connection is due every second) until both processes have
    // completed a pull and twenty requests went out: enough windows to judge the spacing.
    let logs = [e.log.clone().unwrap(), log2.clone()];
    let pulled = |log: &std::path::Path| {
        let text = std::fs::read_to_string(log).unwrap();
        text.contains("scheduled pull") && text.contains("sync completed")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut times: Vec<i64> = loop {
        let times: Vec<i64> = e
            .sim
            .request_log()
            .await
            .into_iter()
            .filter(|(r, at)| r.starts_with("oura/v2/usercollection/") && *at >= started)
            .map(|(_, at)| at)
            .collect();
        if times.len() >= 20 && logs.iter().all(|l| pulled(l)) || Instant::now() > deadline {
            break times;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    times.sort();
    assert!(times.len() >= 10, "{times:?}");
    // Slots are 200 ms apart on the database's clock; a busy machine may delay one send and
    // not the next, so windows of five are checked (800 ms nominal) with room for that jitter.
    // Two processes each keeping their own budget would fit five requests in about 400 ms.
    let spans: Vec<i64> = times.windows(5).map(|w| w[4] - w[0]).collect();
    assert!(
        spans.iter().all(|s| *s >= 600),
        "requests closer than the budget allows: {times:?}"
    );
    // Both processes did pull, by their schedulers.
    for log in [e.log.as_ref().unwrap(), &log2] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.contains("scheduled pull") && text.contains("sync completed"),
            "{log:?} shows no pull"
        );
    }
    drop(s2);
    let _ = std::fs::remove_file(log2);
}

/// The scheduler pulls a linked account once per interval, through its oldest connection; the
/// newer linked connection only receives the data (never pulled on its own).
#[tokio::test]
async fn scheduler_pulls_a_linked_account_through_its_primary() {
    let e = setup(&[("WEARHOUSE_SYNC_INTERVAL_SECS", "1")]).await;
    let first = e.user().await;
    let second = e.user().await;
    e.connect("oura", &first).await;
    e.connect("oura", &second).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = (e.runs(&first).await, e.runs(&second).await);
        let done = |runs: &[Value]| runs.iter().filter(|r| r["status"] == "success").count();
        if done(&a) >= 2 && done(&b) >= 2 {
            assert!(a.iter().all(|r| r["source"] == "scheduled"), "{a:?}");
            assert!(
                b.iter()
                    .all(|r| r["source"] == "linked_account"
                        && r["primary_user_id"] == first.as_str()),
                "{b:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Connections as upstream: `icon_url` served by this server, `live_sync_mode` following
/// `PUT /oauth/providers/{provider}`, the status codes of a disconnect, and one user read
/// the same way alone and in the list.
#[tokio::test]
async fn connections_match_upstream_fields_and_statuses() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("oura", &user).await;
    let (st, _) = e.sync("oura", &user, 1).await;
    assert_eq!(st, 200);
    let conn = e.connections(&user).await[0].clone();
    let icon = format!("{}/static/provider-icons/oura.svg", e.s.url);
    assert_eq!(conn["icon_url"], icon.as_str(), "{conn}");
    assert_eq!(conn["provider_username"], Value::Null);
    assert_eq!(conn["live_sync_mode"], "pull");
    let r = e.s.http.get(&icon).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await.unwrap().starts_with("<svg"));
    let (st, _) = call(e.s.req(Method::GET, "/static/provider-icons/nope.svg")).await;
    assert_eq!(st, 404);
    let (st, providers) = call(e.s.req(Method::GET, "/api/v1/oauth/providers")).await;
    assert_eq!(st, 200);
    for p in providers.as_array().unwrap() {
        let name = p["provider"].as_str().unwrap();
        let url = p["icon_url"].as_str().unwrap();
        assert_eq!(url, format!("{}/static/provider-icons/{name}.svg", e.s.url));
        let r = e.s.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
    }

    // The provider setting decides the connection's live-sync mode.
    let jwt = e.s.login().await;
    let (st, set) = call(
        e.s.req(Method::PUT, "/api/v1/oauth/providers/oura")
            .bearer_auth(&jwt)
            .json(&json!({"live_sync_mode": "webhook"})),
    )
    .await;
    assert_eq!(st, 200, "{set}");
    assert_eq!(e.connections(&user).await[0]["live_sync_mode"], "webhook");

    // GET /users/{id} agrees with GET /users.
    let (st, one) = call(e.req(Method::GET, &format!("/api/v1/users/{user}"))).await;
    assert_eq!(st, 200);
    let (_, list) = call(e.req(Method::GET, "/api/v1/users")).await;
    let listed = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == user.as_str())
        .unwrap()
        .clone();
    assert_eq!(one, listed);
    assert_eq!(one["has_active_connection"], true);
    assert_eq!(one["last_synced_provider"], "oura");
    assert!(one["last_synced_at"].is_string(), "{one}");

    // Disconnect statuses: unknown provider 400, no connection 404, revoked twice 204.
    let (st, body) = call(e.req(
        Method::DELETE,
        &format!("/api/v1/users/{user}/connections/nosuch"),
    ))
    .await;
    assert_eq!(st, 400, "{body}");
    assert!(body["detail"].is_string());
    let (st, _) = call(e.req(
        Method::DELETE,
        &format!("/api/v1/users/{user}/connections/polar"),
    ))
    .await;
    assert_eq!(st, 404);
    for _ in 0..2 {
        let (st, _) = call(e.req(
            Method::DELETE,
            &format!("/api/v1/users/{user}/connections/oura"),
        ))
        .await;
        assert_eq!(st, 204);
    }
    let (_, one) = call(e.req(Method::GET, &format!("/api/v1/users/{user}"))).await;
    assert_eq!(one["has_active_connection"], false);
    assert!(one["last_synced_at"].is_string());
}

/// POST sync as upstream: async mode refuses what it would ignore (400, upstream's wording),
/// the blocking mode answers `details` as `{workouts, data_247}` and, once it answered, the
/// run reads as finished everywhere; status events carry `metadata`, `started_at`,
/// `ended_at` and the fetching and saving stages.
#[tokio::test]
async fn sync_parameters_details_and_status_events_as_upstream() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("whoop", &user).await;
    let path = |q: &str| format!("/api/v1/providers/whoop/users/{user}/sync?{q}");
    let (st, body) = call(e.req(Method::POST, &path("since=5&limit=10&zones=true"))).await;
    assert_eq!(st, 400);
    assert_eq!(
        body["detail"],
        "Parameters ['since', 'limit', 'zones'] are not supported in async mode. Use async=false \
         or omit provider-specific parameters."
    );
    for q in [
        "async=false&limit=101",
        "async=false&summary_start_time=yesterday",
        "async=false&data_type=sleep",
    ] {
        let (st, body) = call(e.req(Method::POST, &path(q))).await;
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body["detail"].is_string());
    }
    let start = (Utc::now() - chrono::Duration::days(3)).timestamp();
    // Workouts only: `workouts` is the number of workouts, no `data_247`.
    let (st, res) = call(e.req(
        Method::POST,
        &path(&format!(
            "async=false&data_type=workouts&summary_start_time={start}"
        )),
    ))
    .await;
    assert_eq!(st, 200, "{res}");
    assert_eq!(res["success"], true);
    let details = res["details"].as_object().unwrap();
    assert!(details["workouts"].as_u64().unwrap() >= 4, "{res}");
    assert!(!details.contains_key("data_247"), "{res}");
    assert!(
        res.get("async").is_none() && res.get("task_id").is_none(),
        "{res}"
    );
    // Read your writes: no waiting, the run already reads as finished.
    let (_, runs) = call(e.req(Method::GET, &format!("/api/v1/users/{user}/sync/runs"))).await;
    let run = &runs[0];
    assert_eq!(
        (&run["status"], &run["stage"], &run["progress"]),
        (&json!("success"), &json!("completed"), &json!(1.0)),
        "{runs}"
    );
    assert!(
        run["items_processed"].is_i64() && run["items_total"].is_i64(),
        "{run}"
    );
    assert!(run["ended_at"].is_string());
    let (_, all) = call(e.req(
        Method::GET,
        &format!("/api/v1/sync/runs?user_id={user}&status=in_progress"),
    ))
    .await;
    assert_eq!(all, json!([]));
    // 247 data only: `data_247` per type, no `workouts`.
    let (st, res) = call(e.req(
        Method::POST,
        &path(&format!("async=false&data_type=247&since={start}")),
    ))
    .await;
    assert_eq!(st, 200, "{res}");
    let details = res["details"].as_object().unwrap();
    assert!(!details.contains_key("workouts"), "{res}");
    let per = details["data_247"].as_object().unwrap();
    assert!(!per.is_empty() && per.values().all(Value::is_u64), "{res}");

    // Status events: every field of upstream's SyncStatusEvent, typed as upstream.
    let (_, recent) = call(e.req(Method::GET, &format!("/api/v1/users/{user}/sync/recent"))).await;
    let recent = recent.as_array().unwrap();
    let stages: Vec<&str> = recent
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    for want in ["started", "fetching", "processing", "saving", "completed"] {
        assert!(stages.contains(&want), "{stages:?}");
    }
    for ev in recent {
        for k in [
            "metadata",
            "started_at",
            "ended_at",
            "items_total",
            "progress",
        ] {
            assert!(ev.get(k).is_some(), "{k} missing: {ev}");
        }
        assert!(ev["metadata"].is_object());
        assert!(ev["started_at"].is_string());
        let terminal = ev["stage"] == "completed";
        assert_eq!(ev["ended_at"].is_string(), terminal, "{ev}");
        assert!(ev["items_processed"].is_i64() || ev["items_processed"].is_null());
    }
    let done = &recent[0];
    assert_eq!(
        (&done["stage"], &done["status"]),
        (&json!("completed"), &json!("success"))
    );
    assert!(done["metadata"]["records_saved"].is_u64(), "{done}");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(time(&done["ended_at"]) >= time(&done["started_at"]));
    let saving = recent.iter().find(|e| e["stage"] == "saving").unwrap();
    assert!(saving["items_total"].is_u64(), "{saving}");

    // The stream opens with upstream's `: connected` comment.
    let resp = e
        .req(
            Method::GET,
            &format!("/api/v1/users/{user}/sync/stream?replay=1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-cache, no-transform");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    use futures::StreamExt;
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with(": connected\n\n"), "{text}");
    while !text.contains("event: sync.status") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Garmin backfill cancel and a partly refused backfill, as upstream reports them: cancel
/// answers `{success, user_id, message}` and the run ends `cancelled`; a type the provider
/// refused leaves the run `partial` and the type `failed`; a retry counts as an attempt.
#[tokio::test]
async fn garmin_backfill_cancel_partial_and_retry_as_upstream() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("garmin", &user).await;
    // The first backfill request hangs until the provider timeout: time to cancel.
    e.sim
        .fault(json!({"provider": "garmin", "path": "backfill", "kind": "timeout"}))
        .await;
    let historical = format!("/api/v1/providers/garmin/users/{user}/sync/historical?days=3");
    let (st, _) = call(e.req(Method::POST, &historical)).await;
    assert_eq!(st, 200);
    let cancel = format!("/api/v1/providers/garmin/users/{user}/backfill/cancel");
    let deadline = Instant::now() + Duration::from_secs(10);
    let cancelled = loop {
        let (st, body) = call(e.req(Method::POST, &cancel)).await;
        if st == 200 {
            break body;
        }
        assert_eq!(st, 409, "{body}");
        assert!(Instant::now() < deadline, "the backfill never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        cancelled,
        json!({"success": true, "user_id": user,
               "message": "Cancel requested. Backfill will stop after current type completes."})
    );
    let runs = e.finished_runs(&user, 1).await;
    assert_eq!(
        (&runs[0]["status"], &runs[0]["stage"]),
        (&json!("cancelled"), &json!("cancelled"))
    );
    let status_path = format!("/api/v1/providers/garmin/users/{user}/backfill/status");
    let (_, status) = call(e.req(Method::GET, &status_path)).await;
    assert_eq!(status["overall_status"], "cancelled", "{status}");
    assert_eq!(status["current_window"], 1);
    let (_, recent) = call(e.req(Method::GET, &format!("/api/v1/users/{user}/sync/recent"))).await;
    assert_eq!(
        (&recent[0]["stage"], &recent[0]["status"]),
        (&json!("cancelled"), &json!("cancelled"))
    );
    assert!(recent[0]["ended_at"].is_string());

    // Garmin refuses one type: the run is partial, the type failed, the others requested.
    e.sim
        .fault(json!({"provider": "garmin", "path": "backfill/sleeps", "kind": "status", "status": 400}))
        .await;
    let (st, _) = call(e.req(Method::POST, &historical)).await;
    assert_eq!(st, 200);
    let runs = e.finished_runs(&user, 2).await;
    assert_eq!(runs[0]["status"], "partial", "{runs:?}");
    assert!(
        runs[0]["error"].as_str().unwrap().contains("sleeps"),
        "{runs:?}"
    );
    let (_, recent) = call(e.req(Method::GET, &format!("/api/v1/users/{user}/sync/recent"))).await;
    assert_eq!(
        (&recent[0]["stage"], &recent[0]["status"]),
        (&json!("completed"), &json!("partial"))
    );
    let (_, status) = call(e.req(Method::GET, &status_path)).await;
    assert_eq!(status["windows"]["0"]["sleeps"], "failed", "{status}");
    assert_eq!(status["summary"]["sleeps"]["failed"], 1);
    assert_eq!(status["attempt_count"], 0);

    // A retry of that type is an attempt.
    let (st, retry) = call(e.req(
        Method::POST,
        &format!("/api/v1/providers/garmin/users/{user}/backfill/sleeps/retry"),
    ))
    .await;
    assert_eq!(
        (st, &retry["status"]),
        (200, &json!("triggered")),
        "{retry}"
    );
    e.finished_runs(&user, 3).await;
    let (_, status) = call(e.req(Method::GET, &status_path)).await;
    assert_eq!(status["attempt_count"], 1, "{status}");
    assert_eq!(status["max_attempts"], 3);
    assert_ne!(status["windows"]["0"]["sleeps"], "failed", "{status}");
}

#[tokio::test]
async fn garmin_ping_mode_fetches_the_data_back_with_the_users_token() {
    let e = setup(&[]).await;
    let user = e.user().await;
    e.connect("garmin", &user).await;
    let hook = format!("/api/v1/providers/garmin/webhooks?token={GARMIN_PUSH_TOKEN}");
    let start = (Utc::now() - chrono::Duration::days(2)).timestamp();
    let end = start + 86_400;
    let window = format!("uploadStartTimeInSeconds={start}&uploadEndTimeInSeconds={end}");
    let ping = |callback: String| {
        json!({"dailies": [{"userId": "garmin-user-1", "userAccessToken": "t",
            "uploadStartTimeInSeconds": start, "uploadEndTimeInSeconds": end,
            "callbackURL": callback}]})
    };
    // As Garmin sends it: the client id header, and the push token in the URL.
    let send = |body: Value| {
        e.s.req(Method::POST, &hook)
            .header("garmin-client-id", "garmin-client")
            .json(&body)
            .send()
    };
    let samples = "SELECT count(*) FROM samples WHERE user_id = $1";
    let raw_dailies = "SELECT count(*) FROM raw_payloads WHERE user_id = $1 AND kind = 'dailies'";
    let id: uuid::Uuid = user.parse().unwrap();
    let db = e.s.db.client().await;
    let n = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[&id]).await.unwrap().get::<_, i64>(0) }
    };

    // A callback outside Garmin's API is never followed: the user's token would go with it.
    let foreign = ping(format!(
        "http://127.0.0.1:9/wellness-api/rest/dailies?{window}"
    ));
    assert_eq!(send(foreign).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((n(samples).await, n(raw_dailies).await), (0, 0));

    // A ping carries no data: what lands was fetched from Garmin with the user's token, stored
    // raw first, then mapped.
    let good = ping(format!(
        "{}/garmin/api/wellness-api/rest/dailies?{window}",
        e.sim.url
    ));
    assert_eq!(send(good).await.unwrap().status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while n(samples).await == 0 {
        assert!(Instant::now() < deadline, "the ping's data never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(n(raw_dailies).await, 1);
    // Steps (series 80) from the fetched dailies.
    let steps: i64 = db
        .query_one(
            "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 80",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(steps > 0);
}

/// The providers' own webhook paths and the subscription management routes, against the
/// simulator's Oura subscription API: registering at `/oura/webhooks` passes Oura's challenge
/// there, each subscription can be read, pointed elsewhere and deleted, renew recreates what
/// is missing; Oura and Garmin deliveries on their own paths are verified as on the generic one.
#[tokio::test]
async fn provider_webhook_paths_and_subscription_management() {
    let e = setup(&[]).await;
    let jwt = e.s.login().await;
    let dev = |m: Method, path: &str| e.s.req(m, path).bearer_auth(&jwt);
    // A developer JWT is required; an API key is not one.
    let (st, _) = call(e.req(Method::GET, "/api/v1/oura/webhooks/subscriptions")).await;
    assert_eq!(st, 401);
    let (st, body) = call(dev(
        Method::GET,
        "/api/v1/providers/whoop/webhooks/subscriptions",
    ))
    .await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = call(dev(
        Method::POST,
        "/api/v1/providers/oura/webhooks/subscriptions?callback_url=not-a-url",
    ))
    .await;
    assert_eq!(st, 400, "{body}");

    // Registering: the simulator verifies the callback with a GET challenge on /oura/webhooks.
    let oura_path = format!("{}/api/v1/oura/webhooks", e.s.url);
    let (st, body) = call(dev(
        Method::POST,
        &format!("/api/v1/providers/oura/webhooks/subscriptions?callback_url={oura_path}"),
    ))
    .await;
    assert_eq!((st, body["registered"].as_u64()), (200, Some(12)), "{body}");
    let (st, body) = call(dev(Method::GET, "/api/v1/oura/webhooks/subscriptions")).await;
    assert_eq!(st, 200, "{body}");
    let subs = body["subscriptions"].as_array().unwrap().clone();
    assert_eq!(subs.len(), 12, "{body}");
    assert!(subs.iter().all(|s| s["callback_url"] == oura_path.as_str()));
    let id = subs[0]["id"].as_str().unwrap().to_string();
    let one = format!("/api/v1/providers/oura/webhooks/subscriptions/{id}");

    let (st, body) = call(dev(Method::GET, &one)).await;
    assert_eq!(
        (st, body["subscription"]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let (st, body) = call(dev(
        Method::PUT,
        &format!("{one}?callback_url=https://hooks.example.com/oura"),
    ))
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["updated"]["callback_url"],
        "https://hooks.example.com/oura"
    );
    let held = e.sim.oura_subscriptions().await;
    let moved = held.iter().find(|s| s["id"] == id.as_str()).unwrap();
    assert_eq!(moved["callback_url"], "https://hooks.example.com/oura");

    let (st, body) = call(dev(Method::DELETE, &one)).await;
    assert_eq!(
        (st, body["deleted"]["id"].as_str()),
        (200, Some(id.as_str())),
        "{body}"
    );
    assert_eq!(e.sim.oura_subscriptions().await.len(), 11);
    let (st, body) = call(dev(Method::GET, &one)).await;
    assert_eq!((st, &body["subscription"]), (200, &Value::Null), "{body}");
    let (st, body) = call(dev(Method::DELETE, &one)).await;
    assert_eq!(st, 404, "{body}");

    // Renew keeps the installation's own callback served: all twelve are created there.
    let (st, body) = call(dev(
        Method::POST,
        "/api/v1/oura/webhooks/subscriptions/renew",
    ))
    .await;
    assert_eq!((st, body["created"].as_u64()), (200, Some(12)), "{body}");
    let canonical = format!("{}/api/v1/providers/oura/webhooks", e.s.url);
    let held = e.sim.oura_subscriptions().await;
    assert_eq!(
        held.iter()
            .filter(|s| s["callback_url"] == canonical.as_str())
            .count(),
        12
    );
    let (st, body) = call(e.s.req(Method::GET, "/api/v1/oura/webhooks/health")).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("ok")));

    // Deliveries on the providers' own paths.
    let user = e.user().await;
    e.connect("oura", &user).await;
    let ping = json!({"event_type": "create", "data_type": "workout", "object_id": "wo-9", "user_id": "oura-user-1"});
    let (st, text) = e.sim.webhook("oura", &oura_path, ping.clone(), true).await;
    assert_eq!(st, 401, "{text}");
    let (st, text) = e.sim.webhook("oura", &oura_path, ping, false).await;
    assert_eq!((st, text.contains("accepted")), (200, true), "{text}");
    e.connect("garmin", &user).await;
    let push = json!({"bodyComps": [{"userId": "garmin-user-1", "measurementTimeInSeconds": 1772341200,
        "measurementTimeOffsetInSeconds": 0, "weightInGrams": 71200}]});
    for path in ["push", "ping"] {
        let hook = format!(
            "{}/api/v1/garmin/webhooks/{path}?token={GARMIN_PUSH_TOKEN}",
            e.s.url
        );
        let (st, _) = e.sim.webhook("garmin", &hook, push.clone(), true).await;
        assert_eq!(st, 401, "{path}: wrong client id");
    }
    let hook = format!(
        "{}/api/v1/garmin/webhooks/push?token={GARMIN_PUSH_TOKEN}",
        e.s.url
    );
    let (st, body) = e.sim.webhook("garmin", &hook, push, false).await;
    assert_eq!((st, body.contains("accepted")), (200, true), "{body}");
    common::wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        "the Garmin push's weight",
        || async {
            e.count(
                "SELECT count(*) FROM samples WHERE user_id = $1 AND series_type = 41",
                &user,
            )
            .await
                == 1
        },
    )
    .await;
}
