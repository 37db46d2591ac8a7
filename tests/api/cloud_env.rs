//! A small harness for the cloud providers added after the first three (Strava, Ultrahuman,
//! Fitbit): the platform in-process against the simulator, with the OAuth dance, blocking
//! syncs and the read endpoints their tests check.

use crate::common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::sim::Sim;
use common::{call, Server, TestDb};
use reqwest::Method;
use serde_json::Value;

pub struct Env {
    pub sim: Sim,
    pub s: Server,
    pub key: String,
}

/// The platform against a simulator serving `page_size` records per page.
pub async fn setup(page_size: usize, extra: &[(&str, &str)]) -> Env {
    let sim = Sim::start(page_size).await;
    let mut env: Vec<(String, String)> = sim.env();
    env.push(("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT".into(), "0".into()));
    env.push(("WEARHOUSE_PROVIDER_TIMEOUT_SECS".into(), "2".into()));
    for (k, v) in extra {
        env.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start_with(TestDb::new().await, &refs).await;
    let key = s.api_key().await;
    Env { sim, s, key }
}

impl Env {
    pub fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.s.req(m, path).header(common::KEY_HEADER, &self.key)
    }

    pub async fn user(&self) -> String {
        common::create_user(&self.s, &self.key).await
    }

    /// The OAuth dance over HTTP: authorize, the simulator's consent page, our callback.
    /// Returns the authorization URL it followed.
    pub async fn connect(&self, provider: &str, user: &str) -> String {
        let (st, body) = call(self.req(
            Method::GET,
            &format!("/api/v1/oauth/{provider}/authorize?user_id={user}"),
        ))
        .await;
        assert_eq!(st, 200, "{body}");
        let url = body["authorization_url"].as_str().unwrap().to_string();
        let r = self.sim.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let callback = r.headers()["location"].to_str().unwrap().to_string();
        let r = self.sim.http.get(&callback).send().await.unwrap();
        assert_eq!(r.status(), 303, "{:?}", r.text().await);
        let to = r.headers()["location"].to_str().unwrap().to_string();
        assert!(to.contains("/api/v1/oauth/success"), "{to}");
        url
    }

    /// A blocking sync of the last `days` days: (status, body).
    pub async fn sync(&self, provider: &str, user: &str, days: i64) -> (u16, Value) {
        let since = (Utc::now() - chrono::Duration::days(days)).timestamp();
        call(self.req(
            Method::POST,
            &format!("/api/v1/providers/{provider}/users/{user}/sync?async=false&since={since}"),
        ))
        .await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (st, body) = call(self.req(Method::GET, path)).await;
        assert_eq!(st, 200, "{path}: {body}");
        body
    }

    /// Polls `path` until `check` holds on its body (read models settle asynchronously).
    pub async fn wait_for(&self, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let body = self.get(path).await;
            if check(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{what}: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The data requests the simulator served.
    pub async fn requests(&self) -> Vec<String> {
        self.sim.requests().await
    }

    /// Every request served, with its arrival in Unix milliseconds.
    pub async fn request_log(&self) -> Vec<(String, i64)> {
        self.sim.request_log().await
    }

    pub async fn connection(&self, user: &str, provider: &str) -> Value {
        let list = self.get(&format!("/api/v1/users/{user}/connections")).await;
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["provider"] == provider)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

impl Env {
    /// Requests counted per fixed window of a budget (`provider_rate_windows`), oldest first.
    pub async fn window_counts(&self, budget_prefix: &str) -> Vec<i32> {
        self.s
            .db
            .client()
            .await
            .query(
                "SELECT used FROM provider_rate_windows WHERE budget LIKE $1 ORDER BY window_start",
                &[&format!("{budget_prefix}%")],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

/// The requests were spread over fixed windows of at most `limit` each, as counted in Postgres
/// when they were reserved (the simulator's arrival times lag reservations under load, so a
/// request reserved at a window's end may arrive in the next one).
pub fn assert_spread(counts: &[i32], requests: usize, limit: i32) {
    assert!(counts.iter().all(|n| *n <= limit), "{counts:?}");
    let total: i32 = counts.iter().sum();
    assert!(
        total as usize >= requests,
        "{counts:?} for {requests} requests"
    );
    let needed = requests.div_ceil(limit as usize);
    assert!(
        counts.len() >= needed,
        "{counts:?}: fewer than {needed} windows"
    );
}
