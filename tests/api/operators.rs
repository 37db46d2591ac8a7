//! `/dashboard/stats` and `/config`: the counts agree with the read models through imports,
//! a user's deletion and a rebuild from the log.

use crate::common;

use common::export::{doc, quantity, sleep, steps, workout, WATCH, WATCH_NAME};
use common::{call, Server};
use reqwest::Method;
use serde_json::Value;

async fn stats(s: &Server, jwt: &str) -> Value {
    let (st, body) = call(
        s.req(Method::GET, "/api/v1/dashboard/stats")
            .bearer_auth(jwt),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    body
}

async fn count(s: &Server, sql: &str) -> i64 {
    s.db.client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// Every figure equals what the read models hold at that moment.
async fn assert_agrees(s: &Server, jwt: &str) -> Value {
    let body = stats(s, jwt).await;
    let (users, workouts, nights, samples) = (
        count(s, "SELECT count(*) FROM users").await,
        count(s, "SELECT count(*) FROM workouts").await,
        count(s, "SELECT count(*) FROM sleep_sessions").await,
        count(s, "SELECT count(*) FROM samples").await,
    );
    assert_eq!(body["total_users"]["count"].as_i64(), Some(users), "{body}");
    assert_eq!(
        body["event_records"]["workouts"].as_i64(),
        Some(workouts),
        "{body}"
    );
    assert_eq!(
        body["event_records"]["sleep"].as_i64(),
        Some(nights),
        "{body}"
    );
    assert_eq!(
        body["event_records"]["count"].as_i64(),
        Some(workouts + nights),
        "{body}"
    );
    assert_eq!(
        body["data_points"]["count"].as_i64(),
        Some(samples),
        "{body}"
    );
    body
}

#[tokio::test]
async fn dashboard_stats_follow_the_read_models() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let empty = assert_agrees(&s, &jwt).await;
    assert_eq!(empty["active_conn"]["count"], 0);
    assert_eq!(
        empty["connections_coverage"]["top_providers"],
        serde_json::json!([])
    );

    let (key, ada) = s.user().await;
    let (_, alan) = s.user().await;
    let body = [
        steps(
            420.0,
            "2024-03-10 08:00:00 -0800",
            "2024-03-10 08:10:00 -0800",
            true,
        ),
        steps(
            300.0,
            "2024-03-10 09:00:00 -0800",
            "2024-03-10 09:10:00 -0800",
            true,
        ),
        quantity(
            "HeartRate",
            "count/min",
            61.0,
            "2024-03-10 10:00:00 -0800",
            "2024-03-10 10:00:00 -0800",
            true,
        ),
        workout(
            "Running",
            30.0,
            300.0,
            5000.0,
            "2024-03-10 07:00:00 -0800",
            "2024-03-10 07:30:00 -0800",
        ),
        workout(
            "Cycling",
            60.0,
            500.0,
            20000.0,
            "2024-03-11 07:00:00 -0800",
            "2024-03-11 08:00:00 -0800",
        ),
        sleep(
            "AsleepCore",
            "2024-03-09 23:00:00 -0800",
            "2024-03-10 03:00:00 -0800",
            WATCH_NAME,
            Some(WATCH),
        ),
        sleep(
            "AsleepDeep",
            "2024-03-10 03:00:00 -0800",
            "2024-03-10 06:00:00 -0800",
            WATCH_NAME,
            Some(WATCH),
        ),
    ]
    .join("\n");
    s.import(&key, &ada, &doc(&body)).await;
    s.import(&key, &alan, &doc(&body)).await;
    let full = assert_agrees(&s, &jwt).await;
    assert_eq!(full["total_users"]["count"], 2);
    assert_eq!(full["event_records"]["workouts"], 4);
    assert!(
        full["data_points"]["count"].as_i64().unwrap() >= 6,
        "{full}"
    );

    // Deleting a user: the counts follow what the read models keep.
    let (st, _) = call(
        s.req(Method::DELETE, &format!("/api/v1/users/{alan}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert!(st == 200 || st == 204, "{st}");
    s.settle().await;
    let after = assert_agrees(&s, &jwt).await;
    assert_eq!(after["total_users"]["count"], 1);

    // A rebuild from the log counts the same.
    for model in ["users", "workouts", "sleep_sessions"] {
        s.db.run(&["projections", "rebuild", model]).await;
    }
    let rebuilt = assert_agrees(&s, &jwt).await;
    assert_eq!(rebuilt, after);

    // Developer JWT only.
    let (st, _) = call(
        s.req(Method::GET, "/api/v1/dashboard/stats")
            .header("X-Open-Wearables-API-Key", &key),
    )
    .await;
    assert_eq!(st, 401);
    let (st, body) = call(s.req(Method::GET, "/api/v1/config").bearer_auth(&jwt)).await;
    assert_eq!(
        (st, &body["outgoing_webhooks_enabled"]),
        (200, &Value::Bool(true))
    );
}
