//! `/api/v1/settings/seed…`: the presets and stage profiles as upstream lists them, bad requests
//! refused before anything is queued, and a seed request's users and data arriving through the
//! import pipeline (in the log, in the read models), once even when its job runs again.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common;
use common::{call, wait_until, Server, KEY_HEADER};

async fn seed(s: &Server, jwt: &str, body: Value) -> (u16, Value) {
    call(
        s.req(Method::POST, "/api/v1/settings/seed")
            .bearer_auth(jwt)
            .json(&body),
    )
    .await
}

async fn jobs_done(s: &Server, task: &str) {
    let client = s.db.client().await;
    let id: uuid::Uuid = task.parse().unwrap();
    wait_until(
        Duration::from_secs(120),
        Duration::from_millis(100),
        "the seed job",
        || {
            let client = &client;
            async move {
                let state: String = client
                    .query_one("SELECT state FROM jobs WHERE id = $1", &[&id])
                    .await
                    .unwrap()
                    .get(0);
                assert_ne!(state, "failed");
                state == "done"
            }
        },
    )
    .await;
    s.settle().await;
}

#[tokio::test]
async fn presets_and_sleep_profiles_are_upstreams() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let (st, presets) = call(
        s.req(Method::GET, "/api/v1/settings/seed/presets")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{presets}");
    let ids: Vec<&str> = presets
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "active_athlete",
            "boxer_footballer",
            "sleep_deprived",
            "weekend_catchup",
            "irregular_sleeper",
            "activity_only",
            "sleep_only",
            "minimal",
            "comprehensive"
        ]
    );
    let minimal = &presets[7];
    assert_eq!(minimal["label"], "Minimal (Quick)");
    assert_eq!(minimal["profile"]["preset"], "minimal");
    assert_eq!(minimal["profile"]["generate_time_series"], false);
    assert_eq!(minimal["profile"]["workout_config"]["count"], 5);
    assert_eq!(
        minimal["profile"]["workout_config"]["hr_min_range"],
        json!([90, 120])
    );
    assert_eq!(
        minimal["profile"]["sleep_config"]["stage_distribution"],
        json!({"deep_pct_range": [15, 25], "rem_pct_range": [20, 25], "awake_pct_range": [2, 8]})
    );
    assert_eq!(
        minimal["profile"]["workout_config"]["workout_types"],
        Value::Null
    );
    assert_eq!(
        presets[0]["profile"]["sleep_config"]["stage_profile"],
        "athlete_recovery"
    );

    let (st, profiles) = call(
        s.req(Method::GET, "/api/v1/settings/seed/sleep-profiles")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{profiles}");
    assert_eq!(profiles.as_array().unwrap().len(), 5);
    assert_eq!(
        profiles[1],
        json!({"id": "deep_deficit", "label": "Deep Sleep Deficit",
               "description": "Low deep sleep - poor physical recovery",
               "distribution": {"deep_pct_range": [5, 10], "rem_pct_range": [20, 25],
                                "awake_pct_range": [5, 10]}})
    );

    // A developer's token, as the other settings routes; an API key is not one.
    let key = s.api_key().await;
    for path in [
        "/api/v1/settings/seed/presets",
        "/api/v1/settings/seed/sleep-profiles",
    ] {
        let (st, _) = call(s.req(Method::GET, path).header(KEY_HEADER, &key)).await;
        assert_eq!(st, 401, "{path}");
    }
    let (st, _) = call(
        s.req(Method::POST, "/api/v1/settings/seed")
            .header(KEY_HEADER, &key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn bad_seed_requests_are_refused_and_queue_nothing() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let cases = [
        json!({"profile": {"preset": "couch_potato"}}),
        json!({"num_users": 11}),
        json!({"num_users": 0}),
        json!({"profile": {"sleep_config": {"stage_profile": "hibernating"}}}),
        json!({"profile": {"sleep_config": {"duration_min_minutes": 600, "duration_max_minutes": 300}}}),
        json!({"profile": {"workout_config": {"count": 501}}}),
        json!({"profile": {"workout_config": {"workout_types": ["underwater_chess"]}}}),
        json!({"profile": {"workout_config": {"hr_min_range": [120, 90]}}}),
        json!({"profile": {"workout_config": {"hr_min_range": [90]}}}),
        json!({"profile": {"time_series_config": {"enabled_types": ["mood"]}}}),
        json!({"profile": {"time_series_config": {"date_range_months": 25}}}),
        json!({"profile": {"providers": ["myspace"]}}),
        // Too many days: an explicit range is capped at two years.
        json!({"profile": {"time_series_config": {"date_from": "2020-01-01", "date_to": "2024-12-31"}}}),
        json!({"profile": {"sleep_config": {"date_from": "2024-02-01", "date_to": "2024-01-01"}}}),
        json!({"profile": {"sleep_config": {"stage_distribution": {
            "deep_pct_range": [40, 50], "rem_pct_range": [30, 40], "awake_pct_range": [5, 10]}}}}),
        json!({"num_users": "two"}),
        // Null only where the contract allows it.
        json!({"num_users": null}),
        json!({"profile": {"time_series_config": {"date_range_months": null}}}),
    ];
    for body in cases {
        let (st, answer) = seed(&s, &jwt, body.clone()).await;
        assert_eq!(st, 400, "{body} -> {answer}");
        assert!(answer["detail"].is_string(), "{body} -> {answer}");
    }
    let queued: i64 =
        s.db.client()
            .await
            .query_one("SELECT count(*) FROM jobs WHERE kind = 'seed_data'", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn a_seed_request_imports_its_users_data_once() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let days = json!({"date_from": "2024-06-01", "date_to": "2024-06-10"});
    let mut workouts = json!({"count": 6, "workout_types": ["boxing", "cycling"]});
    let mut sleep = json!({"count": 5, "stage_profile": "optimal", "nap_chance_pct": 0});
    for part in [&mut workouts, &mut sleep] {
        part.as_object_mut()
            .unwrap()
            .extend(days.as_object().unwrap().clone());
    }
    let request = json!({
        "num_users": 2,
        "random_seed": 42,
        "profile": {
            "preset": "minimal",
            "generate_time_series": true,
            "workout_config": workouts,
            "sleep_config": sleep,
            "time_series_config": {"enabled_types": ["heart_rate", "steps"],
                                   "include_blood_pressure": true,
                                   "date_from": "2024-06-01", "date_to": "2024-06-03"}
        }
    });
    let (st, answer) = seed(&s, &jwt, request.clone()).await;
    assert_eq!(st, 202, "{answer}");
    assert_eq!(answer["status"], "dispatched");
    assert_eq!(answer["seed_used"], 42);
    let task = answer["task_id"].as_str().unwrap().to_string();
    jobs_done(&s, &task).await;

    let (st, users) = call(
        s.req(Method::GET, "/api/v1/users?limit=100")
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 200, "{users}");
    let seeded: Vec<Value> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            u["first_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("[SEED:42|minimal] "))
        })
        .cloned()
        .collect();
    assert_eq!(seeded.len(), 2, "{users}");
    let client = s.db.client().await;
    let figures = |user: uuid::Uuid| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM workouts WHERE user_id = $1), \
                            (SELECT count(*) FROM sleep_sessions WHERE user_id = $1), \
                            (SELECT coalesce(sum(count), 0)::int8 FROM sample_counts WHERE user_id = $1 AND series_type = 1), \
                            (SELECT coalesce(sum(count), 0)::int8 FROM sample_counts WHERE user_id = $1 AND series_type = 22), \
                            (SELECT count(*) FROM events WHERE aggregate_type = 'Import' AND event_type = 'ImportCompleted' AND user_id = $1)",
                    &[&user],
                )
                .await
                .unwrap();
            (0..5).map(|i| row.get::<_, i64>(i)).collect::<Vec<i64>>()
        }
    };
    let mut before = vec![];
    for u in &seeded {
        let id = u["id"].as_str().unwrap();
        // Through the read API: the workouts of the asked types, the nights, the series.
        let (st, w) = s
            .get(
                &key,
                &format!("/api/v1/users/{id}/events/workouts?start_date=2024-05-01&end_date=2024-07-01&limit=100"),
            )
            .await;
        assert_eq!(st, 200, "{w}");
        let types: std::collections::BTreeSet<&str> = w["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["type"].as_str().unwrap())
            .collect();
        assert_eq!(w["data"].as_array().unwrap().len(), 6, "{w}");
        assert!(
            types.iter().all(|t| ["boxing", "cycling"].contains(t)),
            "{types:?}"
        );
        let (st, n) = s
            .get(
                &key,
                &format!("/api/v1/users/{id}/events/sleep?start_date=2024-05-01&end_date=2024-07-01&limit=100"),
            )
            .await;
        assert_eq!(st, 200, "{n}");
        assert_eq!(n["data"].as_array().unwrap().len(), 5, "{n}");
        let (st, hr) = s
            .get(
                &key,
                &format!("/api/v1/users/{id}/timeseries?types=heart_rate&start_time=2024-06-01T00:00:00Z&end_time=2024-06-05T00:00:00Z&limit=10"),
            )
            .await;
        assert_eq!(st, 200, "{hr}");
        assert!(!hr["data"].as_array().unwrap().is_empty(), "{hr}");
        let user: uuid::Uuid = id.parse().unwrap();
        let f = figures(user).await;
        // Three days of the fixture's 240 watch readings, one blood pressure a day, one import.
        assert_eq!(f, vec![6, 5, 3 * 240, 3, 1], "{id}");
        before.push((user, f));
    }
    // Every event names the developer who asked.
    let actors: Vec<String> = client
        .query(
            "SELECT DISTINCT metadata->>'actor' FROM events \
              WHERE user_id = ANY($1) AND aggregate_type IN ('User', 'Import', 'SyncRun')",
            &[&before.iter().map(|(u, _)| *u).collect::<Vec<_>>()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actors.len(), 1, "{actors:?}");
    assert!(actors[0].starts_with("developer:"), "{actors:?}");

    // The job runs again (as after a crash before its end was recorded): nothing doubles.
    let id: uuid::Uuid = task.parse().unwrap();
    client
        .execute(
            "UPDATE jobs SET state = 'pending', run_at = now(), attempts = 0 WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    client
        .batch_execute("NOTIFY wearhouse_jobs, 'seed_data'")
        .await
        .unwrap();
    jobs_done(&s, &task).await;
    for (user, f) in &before {
        assert_eq!(&figures(*user).await, f);
    }
    let seeded_users: i64 = client
        .query_one(
            "SELECT count(*) FROM users WHERE first_name LIKE '[SEED:42|minimal]%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seeded_users, 2);

    // The same seed gives the same data: another request, the same figures.
    let (st, again) = seed(&s, &jwt, request).await;
    assert_eq!(st, 202, "{again}");
    jobs_done(&s, again["task_id"].as_str().unwrap()).await;
    let newest: Vec<uuid::Uuid> = client
        .query(
            "SELECT id FROM users WHERE first_name LIKE '[SEED:42|minimal]%' AND NOT (id = ANY($1))",
            &[&before.iter().map(|(u, _)| *u).collect::<Vec<_>>()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(newest.len(), 2);
    for u in newest {
        assert_eq!(figures(u).await, vec![6, 5, 3 * 240, 3, 1]);
    }
}
