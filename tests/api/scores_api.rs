//! Black-box tests of the platform's own health scores (sleep, resilience) computed by
//! projections from imported data, `/health-scores`, the recovery summary's HRV fields and the
//! body summary.

use crate::common;

use chrono::{Duration, Utc};
use common::export::{self, quantity, sleep, WATCH, WATCH_NAME};
use common::{call, Server, KEY_HEADER};
use reqwest::Method;
use serde_json::{json, Value};

fn data(v: &Value) -> &Vec<Value> {
    v["data"].as_array().unwrap()
}

fn night(stage: &str, a: &str, b: &str) -> String {
    sleep(stage, a, b, WATCH_NAME, Some(WATCH))
}

fn hr(v: f64, at: &str) -> String {
    quantity("HeartRate", "count/min", v, at, at, true)
}

/// RMSSD readings (UTC): Apple exports carry none (HealthKit only has SDNN), so they are
/// written into the samples read model the way a provider sync (Oura, Garmin) records them.
const RMSSD: [(&str, f64); 6] = [
    ("2024-02-02T10:00:00Z", 40.0),
    ("2024-02-03T10:00:00Z", 50.0),
    ("2024-02-03T23:00:00Z", 500.0),
    ("2024-02-04T10:00:00Z", 60.0),
    ("2024-02-05T10:00:00Z", 50.0),
    ("2024-02-06T10:00:00Z", 50.0),
];

async fn write_rmssd(s: &Server, user: &str) {
    let db = s.db.client().await;
    let ring = uuid::Uuid::new_v4();
    for (t, v) in RMSSD {
        db.execute(
            "INSERT INTO samples (time, user_id, data_source_id, series_type, value, zone_offset, end_time) \
             VALUES ($1::text::timestamptz, $2::text::uuid, $3, 7, $4, -480, $1::text::timestamptz)",
            &[&t, &user, &ring, &v],
        )
        .await
        .unwrap();
    }
}

/// Three regular nights, the scored night (bed at midnight, 6 h asleep, one 43-minute
/// awakening), one more night, and a heart rate each day (its batch makes the daily rollup
/// read those dates).
fn body() -> String {
    [
        night(
            "AsleepCore",
            "2024-02-01 23:00:00 -0800",
            "2024-02-02 07:00:00 -0800",
        ),
        night(
            "AsleepCore",
            "2024-02-02 23:00:00 -0800",
            "2024-02-03 07:00:00 -0800",
        ),
        night(
            "AsleepCore",
            "2024-02-03 23:30:00 -0800",
            "2024-02-04 07:30:00 -0800",
        ),
        night(
            "AsleepCore",
            "2024-02-05 00:00:00 -0800",
            "2024-02-05 03:15:00 -0800",
        ),
        night(
            "Awake",
            "2024-02-05 03:15:00 -0800",
            "2024-02-05 03:58:00 -0800",
        ),
        night(
            "AsleepDeep",
            "2024-02-05 03:58:00 -0800",
            "2024-02-05 04:43:00 -0800",
        ),
        night(
            "AsleepREM",
            "2024-02-05 04:43:00 -0800",
            "2024-02-05 06:43:00 -0800",
        ),
        // After midnight, so its local start date (6 Feb) is not the scored night's (5 Feb):
        // the score rates one night per local start date.
        night(
            "AsleepCore",
            "2024-02-06 00:30:00 -0800",
            "2024-02-06 07:00:00 -0800",
        ),
        hr(55.0, "2024-02-02 12:00:00 -0800"),
        hr(55.0, "2024-02-06 12:00:00 -0800"),
    ]
    .join("\n")
}

fn component(score: &Value, name: &str) -> Value {
    score["components"][name]["value"].clone()
}

#[tokio::test]
async fn sleep_and_resilience_scores_match_the_golden_values_and_follow_deletes() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    write_rmssd(&s, &user).await;
    s.import(&key, &user, &export::doc(&body())).await;
    let base = format!("/api/v1/users/{user}/health-scores");

    let (st, sl) = s.get(&key, &format!("{base}?category=sleep")).await;
    assert_eq!(st, 200, "{sl}");
    assert_eq!(data(&sl).len(), 5, "{sl}");
    // Newest first: the last night, then the scored one.
    let scored = &data(&sl)[1];
    assert_eq!(scored["provider"], "internal");
    assert_eq!(scored["category"], "sleep");
    assert_eq!(scored["recorded_at"], "2024-02-05T14:43:00+00:00");
    assert_eq!(scored["zone_offset"], "-08:00");
    // 6 h → 85; deep 45 / REM 120 → 75; an hour later than the 23:00/23:00/23:30 median → 57;
    // WASO 43 with one awakening → 73; 0.4·85 + 0.2·(75 + 57 + 73) = 75.
    assert_eq!(component(scored, "duration"), 85.0);
    assert_eq!(component(scored, "stages"), 75.0);
    assert_eq!(component(scored, "consistency"), 57.0);
    assert_eq!(component(scored, "interruptions"), 73.0);
    assert_eq!(scored["value"], 75.0);
    // The first night has no bedtime history: consistency 0.
    let first = &data(&sl)[4];
    assert_eq!(component(first, "consistency"), 0.0);
    assert_eq!(component(first, "duration"), 100.0);

    // Resilience: nightly RMSSD means 40, 50, 60, 50, 50 (the afternoon 500 is outside sleep):
    // CV 14.1 % → 78, for each reference date whose 7-day window holds five of them.
    let (_, res) = s.get(&key, &format!("{base}?category=resilience")).await;
    let dates: Vec<&str> = data(&res)
        .iter()
        .map(|r| r["recorded_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        dates,
        [
            "2024-02-09T00:00:00+00:00",
            "2024-02-08T00:00:00+00:00",
            "2024-02-07T00:00:00+00:00"
        ]
    );
    let r = &data(&res)[0];
    assert_eq!(r["value"], 0.141);
    assert_eq!(component(r, "resilience_score"), 78.0);
    assert_eq!(component(r, "days_counted"), 5.0);
    assert_eq!(r["components"]["metric_type"]["qualifier"], "RMSSD");

    // Offset pagination and filters.
    let (_, p) = s
        .get(&key, &format!("{base}?provider=internal&limit=3&offset=6"))
        .await;
    assert_eq!(data(&p).len(), 2);
    assert_eq!(p["pagination"]["total_count"], 8);
    assert_eq!(p["pagination"]["has_more"], false);
    assert!(p["pagination"]["next_cursor"].is_null());
    let (_, p) = s.get(&key, &format!("{base}?limit=3&offset=0")).await;
    assert_eq!(p["pagination"]["has_more"], true);
    let (_, p) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-02-05&end_date=2024-02-08"),
        )
        .await;
    assert_eq!(data(&p).len(), 3, "{p}");
    for bad in [
        "start_date=2024-02-08&end_date=2024-02-05",
        "category=mood",
        "provider=nope",
        "limit=1001",
        "offset=-1",
    ] {
        let (st, e) = s.get(&key, &format!("{base}?{bad}")).await;
        assert_eq!(st, 400, "{bad}: {e}");
        assert!(e["detail"].is_string());
    }
    let (st, _) = s
        .get(
            &key,
            &format!("/api/v1/users/{}/health-scores", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = call(s.req(Method::GET, &base)).await;
    assert_eq!(st, 401);

    // Recovery: RMSSD in the RMSSD field, the day's mean of all readings.
    let (_, rec) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/recovery?start_date=2024-02-03&end_date=2024-02-05"
            ),
        )
        .await;
    let got: Vec<(Value, Value, Value)> = data(&rec)
        .iter()
        .map(|d| {
            (
                d["date"].clone(),
                d["avg_hrv_rmssd_ms"].clone(),
                d["avg_hrv_sdnn_ms"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (json!("2024-02-03"), json!(275.0), Value::Null),
            (json!("2024-02-04"), json!(60.0), Value::Null)
        ]
    );

    // Deleting the scored night removes its score and, with its RMSSD no longer asleep, the
    // resilience scores that needed it.
    let (_, sessions) = s
        .get(&key, &format!("/api/v1/users/{user}/events/sleep?start_date=2024-02-05&end_date=2024-02-05T15:00:00Z"))
        .await;
    let id = data(&sessions)[0]["id"].as_str().unwrap().to_string();
    let (st, _) = call(
        s.req(
            Method::DELETE,
            &format!("/api/v1/users/{user}/events/sleep/{id}"),
        )
        .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 204);
    s.settle().await;
    let (_, sl) = s.get(&key, &format!("{base}?category=sleep")).await;
    let at: Vec<&str> = data(&sl)
        .iter()
        .map(|r| r["recorded_at"].as_str().unwrap())
        .collect();
    assert!(!at.contains(&"2024-02-05T14:43:00+00:00"), "{at:?}");
    assert_eq!(at.len(), 4);
    let (_, res) = s.get(&key, &format!("{base}?category=resilience")).await;
    assert_eq!(data(&res).len(), 0, "{res}");
}

#[tokio::test]
async fn body_summary_latest_values_and_null_without_data() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let path = format!("/api/v1/users/{user}/summaries/body");
    let (st, v) = s.get(&key, &path).await;
    assert_eq!(st, 200);
    assert!(v.is_null(), "{v}");
    let at = |ago: Duration| {
        (Utc::now() - ago)
            .format("%Y-%m-%d %H:%M:%S +0000")
            .to_string()
    };
    let (h1, h2, d3) = (
        at(Duration::hours(1)),
        at(Duration::hours(2)),
        at(Duration::days(3)),
    );
    let long_ago = at(Duration::hours(30));
    let body = [
        quantity("BodyMass", "kg", 70.0, &h2, &h2, false),
        quantity("Height", "cm", 175.0, &d3, &d3, false),
        quantity("BodyTemperature", "degC", 36.6, &h1, &h1, false),
        quantity("BodyTemperature", "degC", 38.0, &long_ago, &long_ago, false),
        quantity("BloodPressureSystolic", "mmHg", 120.0, &h1, &h1, false),
        quantity("BloodPressureDiastolic", "mmHg", 80.0, &h1, &h1, false),
        quantity("RestingHeartRate", "count/min", 50.0, &d3, &d3, true),
        quantity("RestingHeartRate", "count/min", 60.0, &h2, &h2, true),
    ]
    .join("\n");
    s.import(&key, &user, &export::doc(&body)).await;
    let (st, v) = s.get(&key, &path).await;
    assert_eq!(st, 200, "{v}");
    let sc = &v["slow_changing"];
    assert_eq!(sc["weight_kg"], 70.0);
    let h = sc["height_cm"].as_f64().unwrap();
    assert!((h - 175.0).abs() < 1e-9, "{h}");
    assert_eq!(sc["bmi"], 22.9);
    assert!(sc["age"].as_i64().unwrap() >= 34);
    assert_eq!(v["averaged"]["period_days"], 7);
    assert_eq!(v["averaged"]["resting_heart_rate_bpm"], 55.0);
    let latest = &v["latest"];
    assert_eq!(latest["body_temperature_celsius"], 36.6);
    assert_eq!(latest["blood_pressure"]["avg_systolic_mmhg"], 120.0);
    assert_eq!(latest["blood_pressure"]["avg_diastolic_mmhg"], 80.0);
    assert_eq!(latest["blood_pressure"]["reading_count"], 1);
    // A one-day average leaves the three-day-old reading out; a short window hides the latest.
    let (_, v) = s
        .get(
            &key,
            &format!("{path}?average_period=1&latest_window_hours=1"),
        )
        .await;
    assert_eq!(v["averaged"]["resting_heart_rate_bpm"], 60.0);
    assert!(
        v["latest"]["blood_pressure"].is_null()
            || v["latest"]["blood_pressure"]["reading_count"] == 1
    );
    let (st, _) = s.get(&key, &format!("{path}?average_period=8")).await;
    assert_eq!(st, 400);
    let (st, _) = s.get(&key, &format!("{path}?latest_window_hours=0")).await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn the_sleep_score_rates_the_longest_night_of_each_local_start_date() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    // Both nights begin on 1 March local time (UTC−8) and wake on different dates, so both are
    // main sleeps in the sleep summary; in UTC they begin on different dates. The score rates
    // only the longer one, as the contract (§7.1) and upstream do.
    let body = [
        night(
            "AsleepCore",
            "2024-03-01 00:30:00 -0800",
            "2024-03-01 04:30:00 -0800",
        ),
        night(
            "AsleepCore",
            "2024-03-01 22:00:00 -0800",
            "2024-03-02 06:00:00 -0800",
        ),
    ]
    .join("\n");
    s.import(&key, &user, &export::doc(&body)).await;
    let (_, sl) = s
        .get(
            &key,
            &format!("/api/v1/users/{user}/health-scores?category=sleep"),
        )
        .await;
    let at: Vec<&str> = data(&sl)
        .iter()
        .map(|r| r["recorded_at"].as_str().unwrap())
        .collect();
    assert_eq!(at, ["2024-03-02T14:00:00+00:00"], "{sl}");
    // 8 h, no stages, no history: duration 100, stages 0, consistency 0, interruptions 100.
    assert_eq!(data(&sl)[0]["value"], 60.0);
    let (_, summary) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/sleep?start_date=2024-03-01&end_date=2024-03-03"
            ),
        )
        .await;
    assert_eq!(data(&summary).len(), 2, "{summary}");
}

#[tokio::test]
async fn provider_scores_reach_health_scores_and_the_recovery_summary() {
    use wearhouse_domain::records::{DataEvent, DataSourceInfo, HealthScoreRecord, ScoreComponent};
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let uid: uuid::Uuid = user.parse().unwrap();
    let ds = DataSourceInfo::id_for(uid, "whoop", None, Some("whoop"));
    let source = DataSourceInfo {
        id: ds,
        provider: "whoop".into(),
        source: Some("whoop".into()),
        original_source_name: Some("Whoop".into()),
        device_model: None,
        device_name: None,
        manufacturer: Some("Whoop".into()),
        hardware: None,
        software_version: None,
        device_type: Some("band".into()),
    };
    let comp = |v: f64| ScoreComponent {
        value: Some(v),
        qualifier: None,
    };
    let score =
        |category: &str, value: f64, at: &str, components: Vec<(&str, f64)>| HealthScoreRecord {
            id: uuid::Uuid::new_v4(),
            data_source_id: ds,
            category: category.into(),
            value: Some(value),
            qualifier: None,
            recorded_at: at.parse().unwrap(),
            zone_offset: Some(-300),
            components: components
                .into_iter()
                .map(|(k, v)| (k.to_string(), comp(v)))
                .collect(),
        };
    let events = [
        DataEvent::SourcesDiscovered {
            user_id: uid,
            sources: vec![source],
        },
        DataEvent::HealthScoresRecorded {
            user_id: uid,
            scores: vec![
                // 01:30 UTC on the 5th is still the 4th at −05:00.
                score(
                    "recovery",
                    66.0,
                    "2024-03-05T01:30:00Z",
                    vec![
                        ("resting_heart_rate", 52.0),
                        ("hrv_rmssd_milli", 71.5),
                        ("spo2_percentage", 96.0),
                    ],
                ),
                score("strain", 12.5, "2024-03-05T01:30:00Z", vec![]),
            ],
        },
    ];
    let db = s.db.client().await;
    for (i, e) in events.iter().enumerate() {
        db.execute(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, user_id) \
             VALUES ('DataStream', $1, $2, $3, '1', $4, '{\"actor\": \"test\"}', $5)",
            &[
                &format!("test-{uid}"),
                &(i as i64 + 1),
                &e.event_type(),
                &serde_json::to_value(e).unwrap(),
                &uid,
            ],
        )
        .await
        .unwrap();
    }
    s.settle().await;
    let (st, v) = s
        .get(
            &key,
            &format!("/api/v1/users/{user}/health-scores?provider=whoop"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["pagination"]["total_count"], 2, "{v}");
    let rec = data(&v)
        .iter()
        .find(|x| x["category"] == "recovery")
        .unwrap();
    assert_eq!(rec["provider"], "whoop");
    assert_eq!(rec["value"], 66.0);
    assert_eq!(rec["zone_offset"], "-05:00");
    assert_eq!(rec["data_source_id"], ds.to_string());
    assert_eq!(rec["components"]["hrv_rmssd_milli"]["value"], 71.5);
    // The recovery summary lists the score's local date, with the components where no samples
    // exist, RMSSD in the RMSSD field.
    let (_, r) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/recovery?start_date=2024-03-01&end_date=2024-03-10"
            ),
        )
        .await;
    assert_eq!(data(&r).len(), 1, "{r}");
    let d = &data(&r)[0];
    assert_eq!(d["date"], "2024-03-04");
    assert_eq!(d["recovery_score"], 66.0);
    assert_eq!(d["resting_heart_rate_bpm"], 52.0);
    assert_eq!(d["avg_hrv_rmssd_ms"], 71.5);
    assert!(d["avg_hrv_sdnn_ms"].is_null());
    assert_eq!(d["avg_spo2_percent"], 96.0);
    assert_eq!(d["source"]["provider"], "whoop");
    // Rebuilt from the log, the provider rows come back; the internal ones are not touched.
    s.db.run(&["projections", "rebuild", "provider_scores"])
        .await;
    let (_, v) = s
        .get(
            &key,
            &format!("/api/v1/users/{user}/health-scores?provider=whoop"),
        )
        .await;
    assert_eq!(v["pagination"]["total_count"], 2, "{v}");
}
