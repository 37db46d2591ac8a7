//! Ultrahuman end to end against the simulator: the OAuth dance, a pull one day per call,
//! every metric in its day's offset (+05:30) through /timeseries, the night in /events/sleep,
//! the daily summaries, faults, and the grant revoked on disconnect.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cloud_env::{setup, Env};
use crate::common::call;

/// Local midnight (+05:30) of `d` as an RFC 3339 UTC instant.
fn local_midnight(d: NaiveDate) -> String {
    (d.and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::minutes(330))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn series(e: &Env, user: &str, code: &str, d: NaiveDate, n: usize) -> Vec<Value> {
    let from = local_midnight(d);
    let to = local_midnight(d + Duration::days(1));
    let path = format!(
        "/api/v1/users/{user}/timeseries?types={code}&start_time={from}&end_time={to}&limit=1000"
    );
    let body = e
        .wait_for(&path, &format!("{n} {code} points on {d}"), |b| {
            b["data"].as_array().is_some_and(|a| a.len() == n)
        })
        .await;
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn ultrahuman_connects_pulls_day_by_day_and_serves_every_metric() {
    let e = setup(50, &[]).await;
    let user = e.user().await;
    let auth = e.connect("ultrahuman", &user).await;
    assert!(auth.contains("scope=ring_data+cgm_data+profile"), "{auth}");
    assert_eq!(
        e.connection(&user, "ultrahuman").await["provider_user_id"],
        "uh-user-1"
    );
    let (st, body) = e.sync("ultrahuman", &user, 3).await;
    assert_eq!(st, 200, "{body}");
    // One call per day of the window, each naming its date.
    let today = Utc::now().date_naive();
    let first = (Utc::now() - Duration::days(3)).date_naive();
    let days: Vec<String> = e
        .requests()
        .await
        .into_iter()
        .filter_map(|r| {
            r.strip_prefix("ultrahuman/user_data/metrics?date=")
                .map(String::from)
        })
        .collect();
    let expected: Vec<String> = first
        .iter_days()
        .take_while(|d| *d <= today)
        .map(|d| d.to_string())
        .collect();
    assert_eq!(days, expected);

    let d = today - Duration::days(1);
    let n = f64::from(d.day());
    let hr = series(&e, &user, "heart_rate", d, 24).await;
    assert_eq!(hr[0]["timestamp"], local_midnight(d).replace('Z', "+00:00"));
    assert_eq!(hr[0]["zone_offset"], "+05:30");
    assert_eq!(hr[3]["value"], 63.0);
    let hrv = series(&e, &user, "heart_rate_variability_sdnn", d, 24).await;
    assert_eq!(hrv[2]["value"], 42.0);
    assert_eq!(hrv[2]["unit"], "ms");
    let temp = series(&e, &user, "body_temperature", d, 8).await;
    assert_eq!(temp[0]["value"], 36.1);
    let steps = series(&e, &user, "steps", d, 13).await;
    assert_eq!(steps[0]["value"], 200.0 + 10.0 * n);
    let vo2 = series(&e, &user, "vo2_max", d, 1).await;
    assert_eq!(vo2[0]["value"], 45.0 + f64::from(d.day() % 3));
    let active = series(&e, &user, "active_time", d, 1).await;
    assert_eq!(
        (active[0]["value"].as_f64(), active[0]["unit"].as_str()),
        (Some(30.0 + n), Some("minutes"))
    );

    // The night before `d` ends at 06:30 local: 510 minutes with its stage totals.
    let path = format!(
        "/api/v1/users/{user}/events/sleep?start_date={}&end_date={}&limit=10",
        d - Duration::days(1),
        d + Duration::days(1)
    );
    let sleep = e
        .wait_for(&path, "the nights", |b| {
            b["data"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s["zone_offset"] == "+05:30"))
        })
        .await;
    let night = sleep["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["end_time"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{d}T01:00:00"))
        })
        .unwrap_or_else(|| panic!("no night ending on {d}: {sleep}"))
        .clone();
    assert_eq!(night["duration_seconds"], 30_600);
    assert_eq!(night["is_nap"], false);
    assert_eq!(
        night["stages"],
        json!({"awake_minutes": 30, "light_minutes": 240, "deep_minutes": 90, "rem_minutes": 100})
    );
    assert_eq!(night["sleep_duration_seconds"], 430 * 60);
    // Totals only: never served as a timeline.
    assert!(night["sleep_stage_intervals"]
        .as_array()
        .is_none_or(|a| a.is_empty()));

    // The daily activity summary counts the day's steps.
    let path = format!(
        "/api/v1/users/{user}/summaries/activity?start_date={d}&end_date={}",
        d + Duration::days(1)
    );
    let summary = e
        .wait_for(&path, "the day's steps", |b| {
            b["data"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["steps"].as_f64() == Some(13.0 * (200.0 + 10.0 * n)))
            })
        })
        .await;
    assert!(!summary["data"].as_array().unwrap().is_empty());

    // Pulled again: nothing doubles.
    let (st, _) = e.sync("ultrahuman", &user, 3).await;
    assert_eq!(st, 200);
    series(&e, &user, "heart_rate", d, 24).await;
}

#[tokio::test]
async fn ultrahuman_faults_and_revocation_on_disconnect() {
    let e = setup(50, &[]).await;
    let user = e.user().await;
    e.connect("ultrahuman", &user).await;
    for f in [
        json!({"provider": "ultrahuman", "path": "/user_data/metrics", "kind": "status", "status": 429, "retry_after": 1}),
        json!({"provider": "ultrahuman", "path": "/user_data/metrics", "kind": "status", "status": 502}),
        json!({"provider": "ultrahuman", "path": "/user_data/metrics", "kind": "timeout"}),
    ] {
        e.sim.post("/_sim/faults", f).await;
    }
    let (st, body) = e.sync("ultrahuman", &user, 1).await;
    assert_eq!((st, body["success"].as_bool()), (200, Some(true)), "{body}");
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "ultrahuman", "path": "/user_data/metrics", "kind": "malformed"}),
        )
        .await;
    let (_, body) = e.sync("ultrahuman", &user, 1).await;
    assert_eq!(body["success"], false, "{body}");
    // Disconnecting revokes the grant at Ultrahuman (client credentials in the form).
    let (st, body) = call(e.req(
        Method::DELETE,
        &format!("/api/v1/users/{user}/connections/ultrahuman"),
    ))
    .await;
    assert!(st < 300, "{st} {body}");
    assert!(e
        .requests()
        .await
        .contains(&"ultrahuman revoke".to_string()));
    // A refused refresh revokes a connection (a fresh one).
    let other = e.user().await;
    e.connect("ultrahuman", &other).await;
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "ultrahuman", "kind": "expire_tokens"}),
        )
        .await;
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "ultrahuman", "kind": "refuse_refresh"}),
        )
        .await;
    let (_, body) = e.sync("ultrahuman", &other, 1).await;
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(
        e.connection(&other, "ultrahuman").await["status"],
        "revoked"
    );
}
