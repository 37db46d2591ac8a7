//! Fitbit end to end against the simulator: the OAuth dance with PKCE and Basic client
//! authentication (the simulator refuses body credentials for Fitbit), a pull following
//! `pagination.next`, the workouts' units and offsets, the per-user hourly budget, and the
//! grant revoked on disconnect.

use chrono::{Datelike, Duration, Utc};
use reqwest::Method;
use serde_json::Value;

use crate::cloud_env::setup;
use crate::common::call;

#[tokio::test]
async fn fitbit_connects_with_pkce_pulls_pages_and_serves_workouts() {
    // Two runs a page.
    let e = setup(2, &[]).await;
    let user = e.user().await;
    let auth = e.connect("fitbit", &user).await;
    assert!(auth.contains("code_challenge_method=S256"), "{auth}");
    assert_eq!(
        e.connection(&user, "fitbit").await["provider_user_id"],
        "FB1234"
    );
    let (st, body) = e.sync("fitbit", &user, 6).await;
    assert_eq!((st, body["success"].as_bool()), (200, Some(true)), "{body}");
    let pages: Vec<String> = e
        .requests()
        .await
        .into_iter()
        .filter(|r| r.starts_with("fitbit/1/user/-/activities/list.json?"))
        .collect();
    assert!(pages.len() >= 3, "{pages:?}");
    assert!(
        pages[1].contains("offset=2") && pages[2].contains("offset=4"),
        "{pages:?}"
    );

    let path = format!(
        "/api/v1/users/{user}/events/workouts?start_date=2000-01-01&end_date=2100-01-01&limit=100"
    );
    let list = e
        .wait_for(&path, "the runs", |b| {
            b["data"].as_array().is_some_and(|a| a.len() >= 5)
        })
        .await;
    let d = Utc::now().date_naive() - Duration::days(1);
    let run: &Value = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| {
            w["start_time"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{d}T12:00:00"))
        })
        .unwrap_or_else(|| panic!("no run on {d}: {list}"));
    let n = f64::from(d.day());
    assert_eq!(run["type"], "running");
    assert_eq!(run["zone_offset"], "-05:00");
    assert_eq!(run["duration_seconds"], 1830);
    assert!((run["distance_meters"].as_f64().unwrap() - (5.0 + n / 10.0) * 1000.0).abs() < 1e-6);
    assert_eq!(run["calories_kcal"], 300.0 + n);
    assert_eq!(run["avg_heart_rate_bpm"], 145 + i64::from(d.day() % 10));

    // Disconnecting revokes the grant at Fitbit (Basic client authentication).
    let (st, body) = call(e.req(
        Method::DELETE,
        &format!("/api/v1/users/{user}/connections/fitbit"),
    ))
    .await;
    assert!(st < 300, "{st} {body}");
    assert!(e.requests().await.contains(&"fitbit revoke".to_string()));
}

/// Fitbit's 150 an hour is per user: with a configured 2 per 2-second window per user, one
/// user's pull spreads over windows while another user's window is their own.
#[tokio::test]
async fn fitbit_budget_is_per_user() {
    let e = setup(1, &[("WEARHOUSE_PROVIDER_RATE_BUDGETS", "fitbit=2/2/user")]).await;
    let user = e.user().await;
    e.connect("fitbit", &user).await;
    // Five days: at least three runs (at noon) whatever the time of day, one a page.
    let (st, body) = e.sync("fitbit", &user, 5).await;
    assert_eq!((st, body["success"].as_bool()), (200, Some(true)), "{body}");
    let times: Vec<i64> = e
        .request_log()
        .await
        .into_iter()
        .filter(|(r, _)| r.starts_with("fitbit/1/user/-/activities"))
        .map(|(_, at)| at)
        .collect();
    assert!(times.len() >= 3, "{times:?}");
    let counts = e.window_counts("fitbit:2s:").await;
    crate::cloud_env::assert_spread(&counts, times.len(), 2);
}
