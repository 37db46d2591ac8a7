//! Black-box tests of the daily summaries and source priorities, on hand-made Apple exports
//! imported through the real import path: iPhone + Watch overlap, a provider daily total plus
//! its epochs, local days across a trip and a DST night, two sleep trackers the same night,
//! naps.

use crate::common;

use common::export::{self, quantity, sleep, steps, WATCH, WATCH_NAME};
use common::{call, Server, KEY_HEADER};
use reqwest::Method;
use serde_json::{json, Value};

fn data(v: &Value) -> &Vec<Value> {
    v["data"].as_array().unwrap()
}

fn by_date(v: &Value, field: &str) -> Vec<(String, Value)> {
    data(v)
        .iter()
        .map(|d| (d["date"].as_str().unwrap().to_string(), d[field].clone()))
        .collect()
}

fn overlap_day() -> String {
    [
        // Watch 08:00-09:00 1000 steps; phone 08:30-10:00 900 steps: the overlap counts the watch.
        steps(
            1000.0,
            "2024-02-10 08:00:00 -0800",
            "2024-02-10 09:00:00 -0800",
            true,
        ),
        steps(
            900.0,
            "2024-02-10 08:30:00 -0800",
            "2024-02-10 10:00:00 -0800",
            false,
        ),
        // Phone alone: counts.
        steps(
            3000.0,
            "2024-02-10 13:00:00 -0800",
            "2024-02-10 14:00:00 -0800",
            false,
        ),
        // Late evening, already the 11th in UTC: still the 10th locally.
        steps(
            200.0,
            "2024-02-10 23:30:00 -0800",
            "2024-02-10 23:50:00 -0800",
            true,
        ),
        quantity(
            "HeartRate",
            "count/min",
            60.0,
            "2024-02-10 08:10:00 -0800",
            "2024-02-10 08:10:00 -0800",
            true,
        ),
        quantity(
            "HeartRate",
            "count/min",
            100.0,
            "2024-02-10 08:20:00 -0800",
            "2024-02-10 08:20:00 -0800",
            true,
        ),
        quantity(
            "HeartRate",
            "count/min",
            140.0,
            "2024-02-10 08:40:00 -0800",
            "2024-02-10 08:40:00 -0800",
            true,
        ),
        quantity(
            "ActiveEnergyBurned",
            "kcal",
            100.0,
            "2024-02-10 08:00:00 -0800",
            "2024-02-10 09:00:00 -0800",
            true,
        ),
        quantity(
            "ActiveEnergyBurned",
            "kcal",
            60.0,
            "2024-02-10 08:00:00 -0800",
            "2024-02-10 09:00:00 -0800",
            false,
        ),
        quantity(
            "BasalEnergyBurned",
            "kcal",
            1500.0,
            "2024-02-10 00:00:00 -0800",
            "2024-02-10 23:59:00 -0800",
            true,
        ),
        quantity(
            "DistanceWalkingRunning",
            "m",
            800.0,
            "2024-02-10 08:00:00 -0800",
            "2024-02-10 09:00:00 -0800",
            true,
        ),
        quantity(
            "FlightsClimbed",
            "count",
            4.0,
            "2024-02-10 13:00:00 -0800",
            "2024-02-10 13:10:00 -0800",
            false,
        ),
    ]
    .join("\n")
}

async fn activity(s: &Server, key: &str, user: &str, q: &str) -> Value {
    let (st, v) = s
        .get(key, &format!("/api/v1/users/{user}/summaries/activity?{q}"))
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

#[tokio::test]
async fn iphone_and_watch_steps_merge_per_segment_and_priorities_change_the_winner() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    s.import(&key, &user, &export::doc(&overlap_day())).await;
    let v = activity(&s, &key, &user, "start_date=2024-02-09&end_date=2024-02-12").await;
    assert_eq!(data(&v).len(), 1, "{v}");
    let d = &data(&v)[0];
    assert_eq!(d["date"], "2024-02-10");
    // 500 (watch alone) + 500 (overlap, watch) + 600 (phone alone) + 3000 + 200.
    assert_eq!(d["steps"], 4800);
    assert_eq!(d["source"]["device_type"], "watch");
    assert_eq!(d["active_calories_kcal"], 100.0);
    assert_eq!(d["total_calories_kcal"], 1600.0);
    assert_eq!(d["distance_meters"], 800.0);
    assert_eq!(d["floors_climbed"], 4);
    // 3000 steps in an hour is 50 a minute: 60 active minutes; 200 minutes with steps.
    assert_eq!(d["active_minutes"], 60);
    assert_eq!(d["sedentary_minutes"], 140);
    // Integers, as the contract declares them.
    assert_eq!(d["heart_rate"]["avg_bpm"].as_i64(), Some(100));
    assert_eq!(d["heart_rate"]["min_bpm"].as_i64(), Some(60));
    assert_eq!(d["heart_rate"]["max_bpm"].as_i64(), Some(140));
    assert!(v["metadata"]["resolution"].is_null(), "{}", v["metadata"]);
    // Born 1990-01-01: max HR 186; 100 bpm is light (54 %), 140 moderate (75 %).
    assert_eq!(
        d["intensity_minutes"],
        json!({"light": 1, "moderate": 1, "vigorous": 0})
    );
    assert_eq!(v["pagination"]["total_count"], 1);

    // Priorities: developer JWT only; defaults first.
    let jwt = s.login().await;
    let (st, _) = s.get(&key, "/api/v1/priorities/device-types").await;
    assert_eq!(st, 401);
    let (st, p) = call(
        s.req(Method::GET, "/api/v1/priorities/providers")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    let first: Vec<(&str, i64)> = p["items"].as_array().unwrap()[..5]
        .iter()
        .map(|i| {
            (
                i["provider"].as_str().unwrap(),
                i["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        first,
        [
            ("apple", 1),
            ("garmin", 2),
            ("polar", 3),
            ("suunto", 4),
            ("whoop", 5)
        ]
    );
    let (_, p) = call(
        s.req(Method::GET, "/api/v1/priorities/device-types")
            .bearer_auth(&jwt),
    )
    .await;
    let dt: Vec<(&str, i64)> = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["device_type"].as_str().unwrap(),
                i["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dt,
        [
            ("watch", 1),
            ("band", 2),
            ("ring", 3),
            ("phone", 4),
            ("scale", 5),
            ("other", 6),
            ("unknown", 99)
        ]
    );
    for (body, path) in [
        (
            json!({"priority": 0}),
            "/api/v1/priorities/device-types/watch",
        ),
        (
            json!({"priority": 3}),
            "/api/v1/priorities/device-types/toaster",
        ),
        (json!({"priority": 3}), "/api/v1/priorities/providers/nope"),
    ] {
        let (st, e) = call(s.req(Method::PUT, path).bearer_auth(&jwt).json(&body)).await;
        assert_eq!(st, 400, "{path} {e}");
        assert!(e["detail"].is_string());
    }
    // The watch now ranks after the phone: the overlap counts the phone.
    let (st, one) = call(
        s.req(Method::PUT, "/api/v1/priorities/device-types/watch")
            .bearer_auth(&jwt)
            .json(&json!({"priority": 5})),
    )
    .await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(
        (one["device_type"].as_str(), one["priority"].as_i64()),
        (Some("watch"), Some(5))
    );
    assert!(one["updated_at"].is_string());
    s.settle().await;
    let v = activity(&s, &key, &user, "start_date=2024-02-09&end_date=2024-02-12").await;
    let d = &data(&v)[0];
    // 500 (watch alone) + 900 (phone) + 3000 + 200.
    assert_eq!(d["steps"], 4600);
    assert_eq!(d["source"]["device_type"], "phone");
    assert_eq!(d["active_calories_kcal"], 60.0);
    // Bulk back to the defaults.
    let (st, all) = call(
        s.req(Method::PUT, "/api/v1/priorities/device-types")
            .bearer_auth(&jwt)
            .json(&json!({"priorities": [{"device_type": "watch", "priority": 1}, {"device_type": "phone", "priority": 4}]})),
    )
    .await;
    assert_eq!(st, 200, "{all}");
    assert_eq!(all["items"][0]["device_type"], "watch");
    s.settle().await;
    let v = activity(&s, &key, &user, "start_date=2024-02-09&end_date=2024-02-12").await;
    assert_eq!(data(&v)[0]["steps"], 4800);
    // Rebuilt from the log, the rollup answers the same.
    s.db.run(&["projections", "rebuild", "daily_rollup"]).await;
    let again = activity(&s, &key, &user, "start_date=2024-02-09&end_date=2024-02-12").await;
    assert_eq!(again["data"], v["data"]);
}

#[tokio::test]
async fn a_provider_daily_total_replaces_its_epochs() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let body = [
        steps(
            1000.0,
            "2024-02-10 08:00:00 -0800",
            "2024-02-10 09:00:00 -0800",
            true,
        ),
        steps(
            2000.0,
            "2024-02-10 12:00:00 -0800",
            "2024-02-10 13:00:00 -0800",
            true,
        ),
    ]
    .join("\n");
    let xml = export::doc(&body);
    s.import(&key, &user, &xml).await;
    let v = activity(&s, &key, &user, "start_date=2024-02-10&end_date=2024-02-11").await;
    assert_eq!(data(&v)[0]["steps"], 3000);
    // The same source's daily total for the 10th (as a provider sync writes it), then the
    // epochs again: the total wins over their sum.
    let db = s.db.client().await;
    db.execute(
        "INSERT INTO samples (time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total) \
         SELECT '2024-02-10T08:00:00Z', user_id, id, 80, 5000, -480, '2024-02-11T08:00:00Z', true \
         FROM data_sources WHERE user_id = $1::text::uuid AND device_type = 'watch'",
        &[&user],
    )
    .await
    .unwrap();
    // Not byte-identical (a duplicate upload is skipped): one more sample on another day.
    let again = export::doc(&format!(
        "{body}\n{}",
        steps(
            10.0,
            "2024-02-12 08:00:00 -0800",
            "2024-02-12 08:05:00 -0800",
            true
        )
    ));
    s.import(&key, &user, &again).await;
    let v = activity(&s, &key, &user, "start_date=2024-02-10&end_date=2024-02-11").await;
    assert_eq!(data(&v)[0]["steps"], 5000);
    // The timeseries still shows all three rows, the total flagged.
    let (_, ts) = s
        .get(&key, &format!("/api/v1/users/{user}/timeseries?start_time=2024-02-10&end_time=2024-02-10&types=steps"))
        .await;
    let flags: Vec<bool> = data(&ts)
        .iter()
        .map(|x| x["is_daily_total"].as_bool().unwrap())
        .collect();
    assert_eq!(flags.iter().filter(|f| **f).count(), 1, "{ts}");
    assert_eq!(flags.len(), 3);
}

#[tokio::test]
async fn local_days_across_a_dst_night_and_a_trip() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let body = [
        // Across local midnight before the DST switch (US, 2024-03-10 02:00 -08:00 → -07:00).
        steps(
            600.0,
            "2024-03-09 23:30:00 -0800",
            "2024-03-10 00:30:00 -0800",
            true,
        ),
        steps(
            1000.0,
            "2024-03-10 09:00:00 -0700",
            "2024-03-10 10:00:00 -0700",
            true,
        ),
        steps(
            500.0,
            "2024-03-12 10:00:00 -0700",
            "2024-03-12 11:00:00 -0700",
            true,
        ),
        // Landed in Tokyo: the morning of the 13th there is still the 12th in UTC and at home.
        steps(
            800.0,
            "2024-03-13 07:00:00 +0900",
            "2024-03-13 08:00:00 +0900",
            true,
        ),
    ]
    .join("\n");
    s.import(&key, &user, &export::doc(&body)).await;
    let v = activity(&s, &key, &user, "start_date=2024-03-01&end_date=2024-03-31").await;
    assert_eq!(
        by_date(&v, "steps"),
        [
            ("2024-03-09".to_string(), json!(300)),
            ("2024-03-10".to_string(), json!(1300)),
            ("2024-03-12".to_string(), json!(500)),
            ("2024-03-13".to_string(), json!(800)),
        ]
    );
    // [start, end): the 13th is outside.
    let v = activity(&s, &key, &user, "start_date=2024-03-10&end_date=2024-03-13").await;
    let dates: Vec<String> = by_date(&v, "steps").into_iter().map(|x| x.0).collect();
    assert_eq!(dates, ["2024-03-10", "2024-03-12"]);
    // Descending, two per page, both ways.
    let q = "start_date=2024-03-01&end_date=2024-03-31&sort_order=desc&limit=2";
    let p1 = activity(&s, &key, &user, q).await;
    let dates: Vec<String> = by_date(&p1, "steps").into_iter().map(|x| x.0).collect();
    assert_eq!(dates, ["2024-03-13", "2024-03-12"]);
    assert_eq!(p1["pagination"]["has_more"], true);
    let next = p1["pagination"]["next_cursor"].as_str().unwrap();
    let p2 = activity(&s, &key, &user, &format!("{q}&cursor={next}")).await;
    let dates: Vec<String> = by_date(&p2, "steps").into_iter().map(|x| x.0).collect();
    assert_eq!(dates, ["2024-03-10", "2024-03-09"]);
    assert_eq!(p2["pagination"]["has_more"], false);
    let prev = p2["pagination"]["previous_cursor"].as_str().unwrap();
    let back = activity(&s, &key, &user, &format!("{q}&cursor={prev}")).await;
    let dates: Vec<String> = by_date(&back, "steps").into_iter().map(|x| x.0).collect();
    assert_eq!(dates, ["2024-03-13", "2024-03-12"]);
    // Errors.
    let base = format!("/api/v1/users/{user}/summaries/activity");
    let (st, e) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-03-01&end_date=2024-03-31&limit=401"),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    let (st, e) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-03-01&end_date=2024-03-31&cursor=%21%21"),
        )
        .await;
    assert_eq!(st, 400);
    assert!(e["detail"]
        .as_str()
        .unwrap()
        .starts_with("Invalid cursor format"));
    let (st, _) = s
        .get(
            &key,
            &format!("{base}?start_date=march&end_date=2024-03-31"),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{}/summaries/activity?start_date=2024-03-01&end_date=2024-03-31",
                uuid::Uuid::new_v4()
            ),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = call(s.req(
        Method::GET,
        &format!("{base}?start_date=2024-03-01&end_date=2024-03-31"),
    ))
    .await;
    assert_eq!(st, 401);
}

fn two_trackers() -> String {
    let oura = |v: &str, a: &str, b: &str| sleep(v, a, b, "Oura", None);
    let watch = |v: &str, a: &str, b: &str| sleep(v, a, b, WATCH_NAME, Some(WATCH));
    [
        watch(
            "AsleepCore",
            "2024-02-10 23:00:00 -0800",
            "2024-02-11 02:00:00 -0800",
        ),
        watch(
            "AsleepDeep",
            "2024-02-11 02:00:00 -0800",
            "2024-02-11 03:00:00 -0800",
        ),
        watch(
            "AsleepREM",
            "2024-02-11 03:00:00 -0800",
            "2024-02-11 07:00:00 -0800",
        ),
        oura(
            "AsleepCore",
            "2024-02-10 22:30:00 -0800",
            "2024-02-11 02:00:00 -0800",
        ),
        oura(
            "Awake",
            "2024-02-11 02:00:00 -0800",
            "2024-02-11 06:00:00 -0800",
        ),
        watch(
            "AsleepUnspecified",
            "2024-02-11 14:00:00 -0800",
            "2024-02-11 14:45:00 -0800",
        ),
        quantity(
            "HeartRate",
            "count/min",
            50.0,
            "2024-02-11 01:00:00 -0800",
            "2024-02-11 01:00:00 -0800",
            true,
        ),
        quantity(
            "HeartRate",
            "count/min",
            60.0,
            "2024-02-11 04:00:00 -0800",
            "2024-02-11 04:00:00 -0800",
            true,
        ),
        quantity(
            "HeartRate",
            "count/min",
            90.0,
            "2024-02-11 12:00:00 -0800",
            "2024-02-11 12:00:00 -0800",
            true,
        ),
    ]
    .join("\n")
}

#[tokio::test]
async fn two_sleep_trackers_the_same_night_make_one_night_and_naps_stay_apart() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    s.import(&key, &user, &export::doc(&two_trackers())).await;
    let (st, v) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/sleep?start_date=2024-02-10&end_date=2024-02-13"
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(data(&v).len(), 1, "{v}");
    let d = &data(&v)[0];
    assert_eq!(d["date"], "2024-02-11");
    assert_eq!(d["start_time"], "2024-02-11T06:30:00+00:00");
    assert_eq!(d["end_time"], "2024-02-11T15:00:00+00:00");
    assert_eq!(d["zone_offset"], "-08:00");
    assert_eq!(d["source"]["device_type"], "watch");
    // Oura's awake where the watch saw deep and REM is clipped away; its extra half hour counts.
    // The contract's key names and integer minutes.
    assert_eq!(
        d["stages"],
        json!({"awake_minutes": 0, "light_minutes": 210, "deep_minutes": 60, "rem_minutes": 240})
    );
    assert_eq!(d["duration_minutes"].as_i64(), Some(510));
    assert_eq!(d["time_in_bed_minutes"].as_i64(), Some(510));
    assert_eq!(d["efficiency_percent"], 100.0);
    assert_eq!(d["nap_count"], 1);
    assert_eq!(d["nap_duration_minutes"].as_i64(), Some(45));
    assert_eq!(d["total_duration_minutes"].as_i64(), Some(555));
    assert_eq!(d["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(d["sessions"][0]["duration_minutes"].as_i64(), Some(510));
    assert_eq!(d["sessions"][1]["duration_minutes"].as_i64(), Some(45));
    assert_eq!(d["avg_heart_rate_bpm"].as_i64(), Some(55));
    assert!(v["metadata"]["resolution"].is_null());
    // Rebuilt from the log, the nights answer the same.
    s.db.run(&["projections", "rebuild", "sleep_nights"]).await;
    let (_, again) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/sleep?start_date=2024-02-10&end_date=2024-02-13"
            ),
        )
        .await;
    assert_eq!(again["data"], v["data"]);

    // Ranking the ring first: its stages win where they overlap, the watch fills the rest.
    let jwt = s.login().await;
    let (st, _) = call(
        s.req(Method::PUT, "/api/v1/priorities/device-types")
            .bearer_auth(&jwt)
            .json(&json!({"priorities": [
                {"device_type": "ring", "priority": 1},
                {"device_type": "watch", "priority": 2}
            ]})),
    )
    .await;
    assert_eq!(st, 200);
    s.settle().await;
    let (_, ringed) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/sleep?start_date=2024-02-10&end_date=2024-02-13"
            ),
        )
        .await;
    let d2 = &data(&ringed)[0];
    assert_eq!(d2["source"]["device_type"], "ring");
    assert_eq!(
        d2["stages"],
        json!({"awake_minutes": 240, "light_minutes": 210, "deep_minutes": 0, "rem_minutes": 60})
    );
    assert_eq!(d2["duration_minutes"].as_i64(), Some(270));
    let (st, _) = call(
        s.req(Method::PUT, "/api/v1/priorities/device-types")
            .bearer_auth(&jwt)
            .json(&json!({"priorities": [
                {"device_type": "ring", "priority": 3},
                {"device_type": "watch", "priority": 1}
            ]})),
    )
    .await;
    assert_eq!(st, 200);
    s.settle().await;

    // The raw sessions: two per night without the filter, the watch's with it.
    let q = format!("/api/v1/users/{user}/events/sleep?start_date=2024-02-10&end_date=2024-02-12");
    let (_, all) = s.get(&key, &q).await;
    assert_eq!(data(&all).len(), 3);
    let (_, best) = s.get(&key, &format!("{q}&filter_by_priority=true")).await;
    let kinds: Vec<(&str, bool)> = data(&best)
        .iter()
        .map(|x| {
            (
                x["source"]["device_type"].as_str().unwrap(),
                x["is_nap"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("watch", true), ("watch", false)]);
    assert_eq!(best["pagination"]["total_count"], 2);

    // The recovery summary carries that main sleep.
    let body = [
        quantity(
            "HeartRateVariabilitySDNN",
            "ms",
            40.0,
            "2024-02-11 03:00:00 -0800",
            "2024-02-11 03:01:00 -0800",
            true,
        ),
        quantity(
            "RestingHeartRate",
            "count/min",
            52.0,
            "2024-02-11 09:00:00 -0800",
            "2024-02-11 09:00:00 -0800",
            true,
        ),
    ]
    .join("\n");
    s.import(
        &key,
        &user,
        &export::doc(&format!("{}\n{body}", two_trackers())),
    )
    .await;
    let (st, r) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/recovery?start_date=2024-02-10&end_date=2024-02-13"
            ),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let d = &data(&r)[0];
    assert_eq!(d["date"], "2024-02-11");
    assert_eq!(d["avg_hrv_sdnn_ms"], 40.0);
    assert!(
        d["avg_hrv_rmssd_ms"].is_null(),
        "SDNN never lands in the RMSSD field"
    );
    assert_eq!(d["resting_heart_rate_bpm"].as_i64(), Some(52));
    assert_eq!(d["sleep_duration_seconds"].as_i64(), Some(510 * 60));
    assert!(d["recovery_score"].is_null());
}

#[tokio::test]
async fn summary_errors() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    for kind in ["sleep", "recovery"] {
        let base = format!("/api/v1/users/{user}/summaries/{kind}");
        let (st, v) = s
            .get(
                &key,
                &format!("{base}?start_date=2024-01-01&end_date=2024-02-01"),
            )
            .await;
        assert_eq!(st, 200);
        assert_eq!(data(&v).len(), 0);
        assert_eq!(v["pagination"]["total_count"], 0);
        let (st, _) = s
            .get(
                &key,
                &format!("{base}?start_date=2024-01-01&end_date=2024-02-01&limit=101"),
            )
            .await;
        assert_eq!(st, 400);
        let (st, _) = s.get(&key, &format!("{base}?start_date=2024-01-01")).await;
        assert_eq!(st, 400);
        let (st, _) = call(s.req(
            Method::GET,
            &format!("{base}?start_date=2024-01-01&end_date=2024-02-01"),
        ))
        .await;
        assert_eq!(st, 401);
        let (st, e) = call(
            s.req(
                Method::GET,
                &format!(
                    "/api/v1/users/{}/summaries/{kind}?start_date=2024-01-01&end_date=2024-02-01",
                    uuid::Uuid::new_v4()
                ),
            )
            .header(KEY_HEADER, &key),
        )
        .await;
        assert_eq!(st, 404, "{e}");
    }
}

/// An Apple `ActivitySummary` (the rings) for a date; energy in kcal, exercise in minutes.
fn rings(date: &str, kcal: f64, exercise: f64) -> String {
    format!(
        r#" <ActivitySummary dateComponents="{date}" activeEnergyBurned="{kcal}" activeEnergyBurnedGoal="500" activeEnergyBurnedUnit="kcal" appleMoveTime="0" appleMoveTimeGoal="0" appleExerciseTime="{exercise}" appleExerciseTimeGoal="30" appleStandHours="9" appleStandHoursGoal="12"/>"#
    )
}

#[tokio::test]
async fn apple_activity_rings_are_the_daily_totals_the_summary_prefers() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let energy = |kcal: f64, a: &str, b: &str, watch: bool| {
        quantity("ActiveEnergyBurned", "kcal", kcal, a, b, watch)
    };
    let body = [
        energy(
            100.0,
            "2024-02-10 08:00:00 -0800",
            "2024-02-10 09:00:00 -0800",
            true,
        ),
        energy(
            50.0,
            "2024-02-10 13:00:00 -0800",
            "2024-02-10 14:00:00 -0800",
            false,
        ),
        quantity(
            "AppleExerciseTime",
            "min",
            12.0,
            "2024-02-10 08:00:00 -0800",
            "2024-02-10 08:12:00 -0800",
            true,
        ),
        energy(
            80.0,
            "2024-02-11 13:00:00 -0800",
            "2024-02-11 14:00:00 -0800",
            false,
        ),
        rings("2024-02-10", 420.0, 35.0),
        // The watch was not worn: an empty ring is no total, the iPhone's energy counts.
        rings("2024-02-11", 0.0, 0.0),
    ]
    .join("\n");
    s.import(&key, &user, &export::doc(&body)).await;
    let q = "start_date=2024-02-10&end_date=2024-02-12";
    let v = activity(&s, &key, &user, q).await;
    assert_eq!(
        by_date(&v, "active_calories_kcal"),
        [
            ("2024-02-10".to_string(), json!(420.0)),
            ("2024-02-11".to_string(), json!(80.0))
        ]
    );
    assert_eq!(data(&v)[0]["active_minutes"], 35);
    assert_eq!(data(&v)[0]["source"]["device_type"], "watch");
    // The rings are visible as daily totals in the timeseries.
    let (_, ts) = s
        .get(
            &key,
            &format!("/api/v1/users/{user}/timeseries?start_time=2024-02-10T00:00:00Z&end_time=2024-02-10T00:00:01Z&types=active_energy&types=exercise_time"),
        )
        .await;
    let totals: Vec<(Value, Value)> = data(&ts)
        .iter()
        .map(|x| (x["value"].clone(), x["is_daily_total"].clone()))
        .collect();
    assert_eq!(
        totals,
        [(json!(420.0), json!(true)), (json!(35.0), json!(true))],
        "{ts}"
    );

    // Ranked below the phone, the watch (and with it the rings) gives way: the merged samples
    // count again, 100 (watch alone) + 50 (phone).
    let jwt = s.login().await;
    let (st, _) = call(
        s.req(Method::PUT, "/api/v1/priorities/device-types/watch")
            .bearer_auth(&jwt)
            .json(&json!({"priority": 5})),
    )
    .await;
    assert_eq!(st, 200);
    s.settle().await;
    let v = activity(&s, &key, &user, q).await;
    assert_eq!(data(&v)[0]["active_calories_kcal"], 150.0);
    let (st, _) = call(
        s.req(Method::PUT, "/api/v1/priorities/device-types/watch")
            .bearer_auth(&jwt)
            .json(&json!({"priority": 1})),
    )
    .await;
    assert_eq!(st, 200);
    s.settle().await;
}

#[tokio::test]
async fn a_priority_change_recomputes_only_dates_where_sources_meet() {
    let s = Server::start().await;
    let (key, a) = s.user().await;
    let (_, b) = s.user().await;
    // User a: watch and iPhone overlap on the 10th; the iPhone alone on the 20th.
    let both = [
        steps(
            1000.0,
            "2024-02-10 08:00:00 -0800",
            "2024-02-10 09:00:00 -0800",
            true,
        ),
        steps(
            900.0,
            "2024-02-10 08:30:00 -0800",
            "2024-02-10 10:00:00 -0800",
            false,
        ),
        steps(
            500.0,
            "2024-02-20 08:00:00 -0800",
            "2024-02-20 09:00:00 -0800",
            false,
        ),
    ]
    .join("\n");
    s.import(&key, &a, &export::doc(&both)).await;
    // User b: the watch alone.
    let one = steps(
        1000.0,
        "2024-02-10 08:00:00 -0800",
        "2024-02-10 09:00:00 -0800",
        true,
    );
    s.import(&key, &b, &export::doc(&one)).await;
    let q = "start_date=2024-02-10&end_date=2024-02-21";
    assert_eq!(
        by_date(&activity(&s, &key, &a, q).await, "steps"),
        [
            ("2024-02-10".into(), json!(1600)),
            ("2024-02-20".into(), json!(500))
        ]
    );
    // Mark the rollup rows that no ranking can change; a recompute would overwrite the mark.
    let db = s.db.client().await;
    db.execute(
        "UPDATE daily_rollup SET value = 7 WHERE metric = 80 AND \
         (user_id = $2::text::uuid OR (user_id = $1::text::uuid AND date = '2024-02-20'))",
        &[&a, &b],
    )
    .await
    .unwrap();
    let jwt = s.login().await;
    let put = |p: i64| {
        s.req(Method::PUT, "/api/v1/priorities/device-types/watch")
            .bearer_auth(&jwt)
            .json(&json!({"priority": p}))
    };
    assert_eq!(call(put(5)).await.0, 200);
    s.settle().await;
    // Where the sources meet, the new ranking counts: 500 (watch alone) + 900 (phone).
    assert_eq!(
        by_date(&activity(&s, &key, &a, q).await, "steps"),
        [
            ("2024-02-10".into(), json!(1400)),
            ("2024-02-20".into(), json!(7))
        ]
    );
    assert_eq!(
        by_date(&activity(&s, &key, &b, q).await, "steps"),
        [("2024-02-10".into(), json!(7))]
    );
    assert_eq!(call(put(1)).await.0, 200);
    s.settle().await;
    assert_eq!(data(&activity(&s, &key, &a, q).await)[0]["steps"], 1600);
}
