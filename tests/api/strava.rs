//! Strava end to end against the simulator: the OAuth dance, a paged pull with each
//! activity's streams, the webhook subscription challenge, events verified by fetching the
//! activity back (a forged one brings nothing, a stale one is refused), deletes and
//! deauthorizations, the fixed-window rate budget, and the grant withdrawn on disconnect.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cloud_env::{setup, Env};
use crate::common::{self, call};

const ATHLETE: &str = "134815";

fn start(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(6, 0, 0).unwrap().and_utc()
}

fn activity_id(d: NaiveDate) -> String {
    format!("{}{:02}{:02}1", d.year(), d.month(), d.day())
}

/// The simulated activities a pull of the last `days` days (ending now) brings.
fn expected_days(days: i64) -> Vec<NaiveDate> {
    let now = Utc::now();
    let from = now - Duration::days(days);
    from.date_naive()
        .iter_days()
        .take_while(|d| *d <= now.date_naive())
        .filter(|d| start(*d) > from && start(*d) < now)
        .collect()
}

async fn workouts(e: &Env, user: &str) -> Vec<Value> {
    let path = format!(
        "/api/v1/users/{user}/events/workouts?start_date=2000-01-01&end_date=2100-01-01&limit=100"
    );
    e.get(&path).await["data"].as_array().unwrap().clone()
}

/// Day `d`'s activity heart rate, once the read model holds `n` points.
async fn heart_rate(e: &Env, user: &str, d: NaiveDate, n: usize) -> Vec<Value> {
    let (from, to) = (start(d), start(d) + Duration::hours(1));
    let path = format!(
        "/api/v1/users/{user}/timeseries?types=heart_rate&start_time={}&end_time={}&limit=1000",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        to.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let what = format!("{n} heart rate points on {d}");
    let body = e
        .wait_for(&path, &what, |b| {
            b["data"].as_array().is_some_and(|a| a.len() == n)
        })
        .await;
    body["data"].as_array().unwrap().clone()
}

fn event(object: &str, id: &str, aspect: &str, updates: Value) -> Value {
    json!({"object_type": object, "object_id": id.parse::<i64>().unwrap(), "aspect_type": aspect,
           "updates": updates, "owner_id": ATHLETE.parse::<i64>().unwrap(),
           "subscription_id": 1, "event_time": Utc::now().timestamp()})
}

#[tokio::test]
async fn strava_connects_pulls_pages_with_streams_and_serves_the_data() {
    // Two activities per page: a week is several pages.
    let e = setup(2, &[]).await;
    let user = e.user().await;
    let auth = e.connect("strava", &user).await;
    assert!(
        auth.contains("scope=activity%3Aread_all%2Cprofile%3Aread_all"),
        "{auth}"
    );
    assert_eq!(
        e.connection(&user, "strava").await["provider_user_id"],
        ATHLETE
    );

    let (st, body) = e.sync("strava", &user, 7).await;
    assert_eq!(st, 200, "{body}");
    let days = expected_days(7);
    assert!(days.len() >= 6, "{days:?}");
    let reqs = e.requests().await;
    let pages: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("strava/athlete/activities?"))
        .collect();
    // Pages until an empty one: ceil(n / 2) full pages and the empty one.
    assert_eq!(pages.len(), days.len().div_ceil(2) + 1, "{pages:?}");
    assert!(pages[0].contains("page=1") && pages[1].contains("page=2"));
    let since = (Utc::now() - Duration::days(7)).timestamp();
    assert!(pages[0].contains(&format!("after={since}")) || pages[0].contains("after="));
    for d in &days {
        let streams = format!("strava/activities/{}/streams?", activity_id(*d));
        assert!(reqs.iter().any(|r| r.starts_with(&streams)), "{streams}");
    }

    // Workouts: one a day, in the activity's own offset, units as the contract has them.
    let list = e
        .wait_for(
            &format!("/api/v1/users/{user}/events/workouts?start_date=2000-01-01&end_date=2100-01-01&limit=100"),
            "every activity a workout",
            |b| b["data"].as_array().is_some_and(|a| a.len() == days.len()),
        )
        .await;
    let by_start: BTreeMap<String, &Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["start_time"].as_str().unwrap().to_string(), w))
        .collect();
    let d = days[days.len() - 2];
    let w = by_start
        .values()
        .find(|w| {
            w["start_time"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{d}T06:00:00"))
        })
        .unwrap_or_else(|| panic!("no workout on {d}: {by_start:?}"));
    assert_eq!(w["type"], "cycling");
    assert_eq!(w["zone_offset"], "+01:00");
    assert_eq!(w["duration_seconds"], 3600);
    assert_eq!(w["distance_meters"], 20_000.0 + 100.0 * f64::from(d.day()));
    // 836.8 kJ of work, as kcal (the list summary has no calories of its own).
    assert!(
        (w["calories_kcal"].as_f64().unwrap() - 200.0).abs() < 1e-6,
        "{w}"
    );
    assert_eq!(w["avg_heart_rate_bpm"], 130 + i64::from(d.day() % 10));
    assert_eq!(w["max_heart_rate_bpm"], 172);
    assert_eq!(w["elevation_gain_meters"], 240.0);
    assert_eq!(w["source"]["provider"], "strava");

    // The streams: heart rate every minute for the hour, at the activity's offset.
    let hr = heart_rate(&e, &user, d, 60).await;
    assert_eq!(hr[0]["value"], 120.0);
    assert_eq!(hr[5]["value"], 125.0);
    assert_eq!(hr[0]["zone_offset"], "+01:00");
    for code in ["speed", "cadence", "power"] {
        let path = format!(
            "/api/v1/users/{user}/timeseries?types={code}&start_time={d}T06:00:00Z&end_time={d}T07:00:00Z&limit=1000"
        );
        let got = e.get(&path).await;
        assert_eq!(got["data"].as_array().unwrap().len(), 60, "{code}");
    }

    // A second sync brings nothing new.
    let (st, _) = e.sync("strava", &user, 7).await;
    assert_eq!(st, 200);
    assert_eq!(workouts(&e, &user).await.len(), days.len());

    // The raw responses are stored first: every page and every streams body.
    let c = e.s.db.client().await;
    let kinds: Vec<String> = c
        .query(
            "SELECT DISTINCT split_part(payload->'raw'->>'kind', '/', 1) FROM events \
             WHERE event_type = 'RawPayloadReceived' AND payload->'raw'->>'provider' = 'strava'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(kinds.contains(&"activity".to_string()) && kinds.contains(&"streams".to_string()));
}

#[tokio::test]
async fn strava_faults_are_retried_refresh_refusal_revokes() {
    let e = setup(50, &[]).await;
    let user = e.user().await;
    e.connect("strava", &user).await;
    // 429 with Retry-After, then a 503, then a timeout: all retried within the run.
    for f in [
        json!({"provider": "strava", "path": "/athlete/activities", "kind": "status", "status": 429, "retry_after": 1}),
        json!({"provider": "strava", "path": "/athlete/activities", "kind": "status", "status": 503}),
        json!({"provider": "strava", "path": "/streams", "kind": "timeout"}),
    ] {
        e.sim.post("/_sim/faults", f).await;
    }
    let (st, body) = e.sync("strava", &user, 2).await;
    assert_eq!(st, 200, "{body}");
    assert!(!workouts(&e, &user).await.is_empty());
    // A malformed body fails the run (kept raw all the same).
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "strava", "path": "/athlete/activities", "kind": "malformed"}),
        )
        .await;
    let (_, body) = e.sync("strava", &user, 2).await;
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("malformed"),
        "{body}"
    );
    // An expired token is refreshed on the 401; a refused refresh revokes the connection.
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "strava", "kind": "expire_tokens"}),
        )
        .await;
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "strava", "kind": "refuse_refresh"}),
        )
        .await;
    let (_, body) = e.sync("strava", &user, 2).await;
    assert_eq!(body["success"], false, "{body}");
    e.wait_for(
        &format!("/api/v1/users/{user}/connections"),
        "the connection revoked",
        |b| b[0]["status"] == "revoked",
    )
    .await;
}

#[tokio::test]
async fn strava_webhooks_challenge_events_fetched_back_deletes_and_deauthorization() {
    let e = setup(50, &[]).await;
    let user = e.user().await;
    e.connect("strava", &user).await;

    // The challenge, on the unified route and Strava's own (and its deprecated twin).
    let token = {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(common::sim::SECRET.as_bytes()).unwrap();
        mac.update(b"wearhouse-webhook-verification");
        hex::encode(&mac.finalize().into_bytes()[..16])
    };
    for path in [
        "/api/v1/providers/strava/webhooks",
        "/api/v1/strava/webhooks",
        "/api/v1/strava/webhook",
    ] {
        let q = format!("{path}?hub.mode=subscribe&hub.challenge=ch-1&hub.verify_token={token}");
        let (st, body) = call(e.s.req(Method::GET, &q)).await;
        assert_eq!(
            (st, body),
            (200, json!({"hub.challenge": "ch-1"})),
            "{path}"
        );
        let bad = format!("{path}?hub.mode=subscribe&hub.challenge=ch-1&hub.verify_token=nope");
        assert_eq!(call(e.s.req(Method::GET, &bad)).await.0, 401, "{path}");
        let health = format!("{path}/health");
        if path.starts_with("/api/v1/strava") {
            let (st, body) = call(e.s.req(Method::GET, &health)).await;
            assert_eq!((st, body["status"].as_str()), (200, Some("ok")));
        }
    }
    // Switching Strava to webhook mode creates the push subscription; Strava (the
    // simulator) checked our callback with a challenge first.
    let jwt = e.s.login().await;
    let (st, body) = call(
        e.s.req(Method::PUT, "/api/v1/oauth/providers/strava")
            .bearer_auth(&jwt)
            .json(&json!({"live_sync_mode": "webhook"})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let subscribed = e.requests().await;
    assert!(
        subscribed
            .iter()
            .any(|r| r.starts_with("strava/push_subscriptions ")),
        "{subscribed:?}"
    );

    // A good event: the activity is fetched back (detail: Strava's own calories) with streams.
    let day = Utc::now().date_naive() - Duration::days(1);
    let id = activity_id(day);
    let target = format!("{}/api/v1/strava/webhooks", e.s.url);
    let (st, body) = e
        .sim
        .webhook_at(
            "strava",
            &target,
            event("activity", &id, "create", json!({})),
            false,
            0,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let path = format!(
        "/api/v1/users/{user}/events/workouts?start_date=2000-01-01&end_date=2100-01-01&limit=100"
    );
    let list = e
        .wait_for(&path, "the event's activity", |b| {
            b["data"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    assert_eq!(list["data"][0]["calories_kcal"], 650.0);
    let reqs = e.requests().await;
    assert!(
        reqs.contains(&format!("strava/activities/{id}?")),
        "{reqs:?}"
    );
    heart_rate(&e, &user, day, 60).await;

    // A forged event: Strava holds no such activity, so nothing is recorded.
    let (st, _) = e
        .sim
        .webhook_at(
            "strava",
            &target,
            event("activity", "999", "create", json!({})),
            false,
            0,
        )
        .await;
    assert_eq!(
        st, 200,
        "accepted: its truth is checked by fetching it back"
    );
    let runs = e
        .wait_for(
            &format!("/api/v1/users/{user}/sync/runs"),
            "the forged event's run",
            |b| {
                b.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|r| r["error"].as_str().is_some_and(|m| m.contains("999")))
                })
            },
        )
        .await;
    let forged = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["error"].as_str().is_some_and(|m| m.contains("999")))
        .unwrap();
    assert_eq!(forged["status"], "skipped", "{forged}");
    assert_eq!(workouts(&e, &user).await.len(), 1);
    // A stale signature (a replay an hour later) is refused before anything is stored.
    let (st, _) = e
        .sim
        .webhook_at(
            "strava",
            &target,
            event("activity", &id, "update", json!({})),
            false,
            -3600,
        )
        .await;
    assert_eq!(st, 401);
    // Without the signature header at all: refused too.
    let (st, _) = call(
        e.s.req(Method::POST, "/api/v1/strava/webhooks")
            .json(&event("activity", &id, "update", json!({}))),
    )
    .await;
    assert_eq!(st, 401);

    // A delete is honoured: the workout and its stream samples go.
    let deprecated = format!("{}/api/v1/strava/webhook", e.s.url);
    let (st, _) = e
        .sim
        .webhook_at(
            "strava",
            &deprecated,
            event("activity", &id, "delete", json!({})),
            false,
            0,
        )
        .await;
    assert_eq!(st, 200);
    e.wait_for(&path, "the deleted workout gone", |b| {
        b["data"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    heart_rate(&e, &user, day, 0).await;

    // The athlete deauthorizes the app at Strava: the connection is revoked.
    let (st, _) = e
        .sim
        .webhook_at(
            "strava",
            &target,
            event("athlete", ATHLETE, "update", json!({"authorized": "false"})),
            false,
            0,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(e.connection(&user, "strava").await["status"], "revoked");
}

#[tokio::test]
async fn strava_disconnect_deauthorizes_the_grant() {
    let e = setup(50, &[]).await;
    let user = e.user().await;
    e.connect("strava", &user).await;
    let (st, _) = e.sync("strava", &user, 1).await;
    assert_eq!(st, 200);
    let (st, body) = call(e.req(
        Method::DELETE,
        &format!("/api/v1/users/{user}/connections/strava"),
    ))
    .await;
    assert!(st < 300, "{st} {body}");
    assert!(e.requests().await.contains(&"strava revoke".to_string()));
    assert_eq!(e.connection(&user, "strava").await["status"], "revoked");
}

/// Strava's budget is counted in fixed windows shared through Postgres: with 3 requests per
/// 2-second window, the requests are spread over windows counted at most 3 each.
#[tokio::test]
async fn strava_requests_keep_to_the_fixed_window_budget() {
    let e = setup(1, &[("WEARHOUSE_PROVIDER_RATE_BUDGETS", "strava=3/2")]).await;
    let user = e.user().await;
    e.connect("strava", &user).await;
    let (st, body) = e.sync("strava", &user, 3).await;
    assert_eq!(st, 200, "{body}");
    let times: Vec<i64> = e
        .request_log()
        .await
        .into_iter()
        .filter(|(r, _)| {
            // The pull's requests (the user-info call at connect time is not budgeted).
            r.starts_with("strava/athlete/activities") || r.starts_with("strava/activities")
        })
        .map(|(_, at)| at)
        .collect();
    assert!(times.len() >= 7, "{times:?}");
    let counts = e.window_counts("strava:2s").await;
    crate::cloud_env::assert_spread(&counts, times.len(), 3);
    let span = times.last().unwrap() - times.first().unwrap();
    assert!(span >= 2000, "{} requests in {span} ms", times.len());
}
