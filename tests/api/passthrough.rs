//! The vendor passthrough (`GET /providers/{provider}/users/{user_id}/workouts[/{workout_id}]`)
//! against the simulator: each provider's own list and detail fetched live with the user's
//! tokens and answered as the provider sent them (and kept raw), the refusals (unknown or
//! unsupported provider, no connection, bad windows and ids), expired tokens refreshed, and the
//! provider's failures mapped by kind.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cloud_env::{setup, Env};
use crate::common::call;

async fn get(e: &Env, path: &str) -> (u16, Value) {
    call(e.req(Method::GET, path)).await
}

/// The listing of the last `days` days (to now).
fn list_path(provider: &str, user: &str, days: i64) -> String {
    let now = Utc::now().timestamp();
    let since = now - days * 86_400;
    format!(
        "/api/v1/providers/{provider}/users/{user}/workouts?summary_start_time={since}&summary_end_time={now}"
    )
}

/// Raw payloads of `kind` stored for `user`.
async fn raw_count(e: &Env, user: &str, kind: &str) -> i64 {
    let user: uuid::Uuid = user.parse().unwrap();
    e.s.db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM raw_payloads WHERE user_id = $1 AND kind = $2",
            &[&user, &kind],
        )
        .await
        .unwrap()
        .get(0)
}

async fn tokens_refreshed(e: &Env) -> i64 {
    e.s.db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'TokensRefreshed'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn each_provider_lists_and_reads_its_own_workouts_live() {
    let e = setup(50, &[]).await;
    let user = e.user().await;
    for p in ["oura", "whoop", "garmin", "strava", "fitbit"] {
        e.connect(p, &user).await;
    }
    let yesterday = (Utc::now() - Duration::days(1)).date_naive();

    // Oura: its collection page as it came, `data` and `next_token`.
    let (st, list) = get(&e, &list_path("oura", &user, 3)).await;
    assert_eq!(st, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&format!("wo-{yesterday}").as_str()), "{list}");
    assert!(list.get("next_token").is_some(), "{list}");
    let (st, w) = get(
        &e,
        &format!("/api/v1/providers/oura/users/{user}/workouts/wo-{yesterday}"),
    )
    .await;
    assert_eq!(st, 200, "{w}");
    assert_eq!(w["id"], format!("wo-{yesterday}"));
    assert_eq!(w["activity"], "running");
    assert_eq!(w["calories"], 350.0);

    // Whoop: `records`, at most 25 a page whatever the limit asked.
    let (st, list) = get(&e, &format!("{}&limit=100", list_path("whoop", &user, 3))).await;
    assert_eq!(st, 200, "{list}");
    let first = list["records"][0]["id"].as_str().unwrap().to_string();
    assert!(first.starts_with("w-"), "{list}");
    let (st, w) = get(
        &e,
        &format!("/api/v1/providers/whoop/users/{user}/workouts/{first}"),
    )
    .await;
    assert_eq!(st, 200, "{w}");
    assert_eq!(
        (w["id"].as_str(), &w["sport_name"]),
        (Some(first.as_str()), &json!("running"))
    );

    // Garmin: a day per request, answered as one array.
    let (st, list) = get(&e, &list_path("garmin", &user, 3)).await;
    assert_eq!(st, 200, "{list}");
    let summaries = list.as_array().unwrap();
    assert!(summaries.len() >= 3, "{list}");
    let garmin_calls = e
        .requests()
        .await
        .into_iter()
        .filter(|r| r.starts_with("garmin/wellness-api/rest/activities?uploadStartTimeInSeconds="))
        .count();
    assert_eq!(garmin_calls, 3);
    let id = format!("a-{yesterday}");
    assert!(
        summaries.iter().any(|s| s["summaryId"] == id.as_str()),
        "{list}"
    );
    let (st, a) = get(
        &e,
        &format!("/api/v1/providers/garmin/users/{user}/workouts/{id}"),
    )
    .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(
        (&a["summaryId"], &a["activityType"]),
        (&json!(id), &json!("RUNNING"))
    );

    // Strava: the activity list paged by `limit` and `offset`, and one activity's detail.
    let (st, list) = get(
        &e,
        &format!("{}&limit=2&offset=2", list_path("strava", &user, 5)),
    )
    .await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert!(e
        .requests()
        .await
        .iter()
        .any(|r| r.starts_with("strava/athlete/activities?")
            && r.contains("page=2")
            && r.contains("per_page=2")),);
    let activity = list[0]["id"].as_i64().unwrap();
    let (st, a) = get(
        &e,
        &format!("/api/v1/providers/strava/users/{user}/workouts/{activity}"),
    )
    .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["id"], activity);
    assert_eq!(
        a["calories"].as_f64(),
        Some(650.0),
        "the detail, not the summary: {a}"
    );

    // Fitbit: the activity log; no detail endpoint (501, as upstream for what it lacks).
    let (st, list) = get(&e, &format!("{}&limit=3", list_path("fitbit", &user, 5))).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["activities"].as_array().unwrap().len(), 3, "{list}");
    let (st, body) = get(
        &e,
        &format!("/api/v1/providers/fitbit/users/{user}/workouts/1"),
    )
    .await;
    assert_eq!(st, 501, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("fitbit"),
        "{body}"
    );

    // A workout the provider does not hold is a 404; an id is one path segment at the provider.
    let profile_reads = |log: Vec<String>| {
        log.iter()
            .filter(|r| r.starts_with("oura/v2/usercollection/personal_info"))
            .count()
    };
    let before = profile_reads(e.requests().await);
    for id in ["wo-nope", "..%2Fpersonal_info"] {
        let (st, body) = get(
            &e,
            &format!("/api/v1/providers/oura/users/{user}/workouts/{id}"),
        )
        .await;
        assert_eq!(st, 404, "{id}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("not found at oura"),
            "{body}"
        );
    }
    let log = e.requests().await;
    assert_eq!(
        profile_reads(log.clone()),
        before,
        "the id reached another endpoint"
    );
    assert!(
        log.iter().any(
            |r| r.starts_with("oura/v2/usercollection/workout/") && r.contains("personal_info")
        ),
        "the id arrived as the workout's: {log:?}"
    );

    // Every answer was kept raw (lists of five providers, five details); nothing was mapped.
    assert!(raw_count(&e, &user, "vendor_workouts").await >= 5);
    assert!(raw_count(&e, &user, "vendor_workout").await >= 4);
    let (_, workouts) = get(
        &e,
        &format!("/api/v1/users/{user}/events/workouts?start_date=2000-01-01&end_date=2100-01-01"),
    )
    .await;
    assert_eq!(
        workouts["data"],
        json!([]),
        "a passthrough writes no workouts"
    );
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let e = setup(50, &[]).await;
    let user = e.user().await;
    let base = format!("/api/v1/providers/oura/users/{user}/workouts");
    // Not connected: 404, list and detail.
    for path in [base.clone(), format!("{base}/wo-2026-03-01")] {
        let (st, body) = get(&e, &path).await;
        assert_eq!(st, 404, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("no active oura connection"),
            "{body}"
        );
    }
    // A provider without a workouts endpoint: 501 with upstream's wording; an unknown one: 400.
    for path in [
        format!("/api/v1/providers/ultrahuman/users/{user}/workouts"),
        format!("/api/v1/providers/ultrahuman/users/{user}/workouts/x"),
    ] {
        let (st, body) = get(&e, &path).await;
        assert_eq!(st, 501, "{body}");
        assert_eq!(
            body["detail"],
            "Provider 'ultrahuman' does not support workouts"
        );
    }
    let (st, body) = get(&e, &format!("/api/v1/providers/nope/users/{user}/workouts")).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["detail"], "Unknown provider nope");
    // No such user, no credential.
    let other = uuid::Uuid::new_v4();
    let (st, body) = get(
        &e,
        &format!("/api/v1/providers/oura/users/{other}/workouts"),
    )
    .await;
    assert_eq!(st, 404, "{body}");
    let (st, _) = call(e.s.req(Method::GET, &base)).await;
    assert_eq!(st, 401);
    // Bad windows and limits, refused before any provider is asked.
    e.connect("garmin", &user).await;
    let before = e.requests().await.len();
    for (path, what) in [
        (format!("{base}?limit=101"), "limit"),
        (format!("{base}?summary_start_time=yesterday"), "Invalid datetime format"),
        (
            format!("{base}?summary_start_time=2026-03-02&summary_end_time=2026-03-01"),
            "before its end",
        ),
        (
            format!(
                "/api/v1/providers/garmin/users/{user}/workouts?summary_start_time=2026-01-01&summary_end_time=2026-03-01"
            ),
            "at most 31 days",
        ),
    ] {
        let (st, body) = get(&e, &path).await;
        assert_eq!(st, 400, "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(what), "{path}: {body}");
    }
    assert_eq!(e.requests().await.len(), before, "no provider request");
}

#[tokio::test]
async fn expired_tokens_are_refreshed_and_provider_failures_mapped() {
    // Tokens that expire within the minute: refreshed before the first request.
    let e = setup(50, &[]).await;
    e.sim.post("/_sim/config", json!({"expires_in": 30})).await;
    let user = e.user().await;
    e.connect("whoop", &user).await;
    e.sim
        .post("/_sim/config", json!({"expires_in": 3600}))
        .await;
    let list = list_path("whoop", &user, 2);
    let refreshed = tokens_refreshed(&e).await;
    let (st, body) = get(&e, &list).await;
    assert_eq!(st, 200, "{body}");
    let after_first = tokens_refreshed(&e).await;
    assert!(after_first > refreshed, "refreshed before the request");
    // A token the provider expired meanwhile (401): refreshed once, the request repeated.
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "expire_tokens"}),
        )
        .await;
    let (st, body) = get(&e, &list).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        tokens_refreshed(&e).await > after_first,
        "refreshed on the 401"
    );
    // A short Retry-After is waited out in place; a long one answers 429.
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "status", "status": 429, "retry_after": 1}),
        )
        .await;
    let (st, body) = get(&e, &list).await;
    assert_eq!(st, 200, "{body}");
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "status", "status": 429, "retry_after": 3600}),
        )
        .await;
    let (st, body) = get(&e, &list).await;
    assert_eq!(st, 429, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("rate limited"),
        "{body}"
    );
    // A timeout and a 503 are retried; an outage that outlasts the retries is a 502, as is a
    // body that is not JSON.
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "timeout"}),
        )
        .await;
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "status", "status": 503}),
        )
        .await;
    let (st, body) = get(&e, &list).await;
    assert_eq!(st, 200, "{body}");
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "status", "status": 503, "count": 4}),
        )
        .await;
    let (st, body) = get(&e, &list).await;
    assert_eq!(st, 502, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("503"), "{body}");
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "malformed"}),
        )
        .await;
    let (st, body) = get(&e, &list).await;
    assert_eq!(st, 502, "{body}");
    // A refused refresh revokes the connection: 502 now, then no connection (404).
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "expire_tokens"}),
        )
        .await;
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "whoop", "kind": "refuse_refresh"}),
        )
        .await;
    let (st, body) = get(&e, &list).await;
    assert_eq!(st, 502, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    // The revocation reaches the connections read model asynchronously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (st, body) = get(&e, &list).await;
        if st == 404 {
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("no active whoop connection"),
                "{body}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {st}: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
