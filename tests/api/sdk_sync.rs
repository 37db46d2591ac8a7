//! Mobile SDK sync (`POST /api/v1/sdk/users/{user_id}/sync`): realistic batches from the iOS
//! SDK (HealthKit), Health Connect and Samsung Health land in the same read models as every
//! other path, with units converted and zone offsets kept; bad records are dropped and
//! counted; a batch sent twice changes nothing; a night sent in pieces is one session; bad
//! bodies are refused with nothing written.

use crate::common;

use std::time::{Duration, Instant};

use common::{call, Server, KEY_HEADER};
use reqwest::Method;
use serde_json::{json, Value};

/// Posts a batch; returns the answer.
async fn post(s: &Server, key: &str, user: &str, body: &Value) -> (u16, Value) {
    call(
        s.req(Method::POST, &format!("/api/v1/sdk/users/{user}/sync"))
            .header(KEY_HEADER, key)
            .json(body),
    )
    .await
}

/// Waits until no SDK job is pending or running and every read model caught up.
async fn drain(s: &Server) {
    let client = s.db.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM jobs WHERE kind = 'sdk_sync' AND state IN ('pending', 'running')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let failed: i64 = client
            .query_one(
                "SELECT count(*) FROM jobs WHERE kind = 'sdk_sync' AND state = 'failed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(failed, 0, "an SDK job failed");
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "SDK jobs did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.settle().await;
}

/// Posts a batch, expects 202 with the contract's body, and waits until it is mapped.
async fn sync(s: &Server, key: &str, user: &str, body: &Value) {
    let (status, answer) = post(s, key, user, body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status_code"], 202);
    assert_eq!(answer["response"], "Import task queued successfully");
    assert_eq!(answer["user_id"], user);
    drain(s).await;
}

fn batch(provider: &str, records: Value, sleep: Value, workouts: Value) -> Value {
    json!({"provider": provider, "sdkVersion": "0.9.2", "syncTimestamp": "2026-03-03T07:00:00Z",
           "data": {"records": records, "sleep": sleep, "workouts": workouts}})
}

fn watch() -> Value {
    json!({"name": "Apple Watch", "bundleIdentifier": "com.apple.health.8C1F", "productType": "Watch7,5",
           "deviceModel": "Watch", "deviceName": "Ada's Apple Watch", "deviceManufacturer": "Apple Inc.",
           "deviceType": "watch", "operatingSystemVersion": {"majorVersion": 11, "minorVersion": 3, "patchVersion": 1}})
}

fn rec(
    kind: &str,
    value: Value,
    unit: &str,
    start: &str,
    end: &str,
    zone: &str,
    source: &Value,
) -> Value {
    json!({"id": format!("{kind}-{start}"), "type": kind, "value": value, "unit": unit,
           "startDate": start, "endDate": end, "zoneOffset": zone, "source": source})
}

async fn timeseries(s: &Server, key: &str, user: &str, types: &str) -> Vec<Value> {
    let (st, v) = s
        .get(
            key,
            &format!("/api/v1/users/{user}/timeseries?start_time=2026-02-01T00:00:00Z&end_time=2026-04-01T00:00:00Z&types={types}&limit=1000"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

/// (value, zone offset) of the only sample of `types`.
async fn one(s: &Server, key: &str, user: &str, types: &str) -> (f64, String) {
    let items = timeseries(s, key, user, types).await;
    assert_eq!(items.len(), 1, "{types}: {items:?}");
    (
        (items[0]["value"].as_f64().unwrap() * 1000.0).round() / 1000.0,
        items[0]["zone_offset"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

async fn list(s: &Server, key: &str, user: &str, what: &str) -> Vec<Value> {
    let (st, v) = s
        .get(
            key,
            &format!("/api/v1/users/{user}/events/{what}?start_date=2026-02-01&end_date=2026-04-01&limit=100"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

/// The metadata of the user's last finished SDK sync run, from the log.
async fn last_run(s: &Server, user: &str) -> Value {
    let client = s.db.client().await;
    let row = client
        .query_one(
            "SELECT payload FROM events WHERE aggregate_type = 'SyncRun' AND user_id = $1::text::uuid \
             AND event_type = 'SyncRunCompleted' ORDER BY position DESC LIMIT 1",
            &[&user],
        )
        .await
        .unwrap();
    row.get(0)
}

/// One night (UTC+2) of HealthKit stages, as the iOS SDK sends them.
fn apple_night(source: &Value) -> Value {
    let stage = |stage: &str, start: &str, end: &str| {
        json!({"id": format!("sl-{start}"), "stage": stage, "startDate": start, "endDate": end,
               "zoneOffset": "+02:00", "source": source})
    };
    json!([
        stage("in_bed", "2026-03-01T21:00:00Z", "2026-03-02T05:00:00Z"),
        stage("light", "2026-03-01T21:10:00Z", "2026-03-01T23:00:00Z"),
        stage("deep", "2026-03-01T23:00:00Z", "2026-03-02T00:30:00Z"),
        stage("rem", "2026-03-02T00:30:00Z", "2026-03-02T01:30:00Z"),
        stage("awake", "2026-03-02T01:30:00Z", "2026-03-02T01:40:00Z"),
        stage("light", "2026-03-02T01:40:00Z", "2026-03-02T04:50:00Z"),
    ])
}

fn apple_batch() -> Value {
    let w = watch();
    let phone = json!({"name": "iPhone", "bundleIdentifier": "com.apple.health", "deviceModel": "iPhone",
                       "productType": "iPhone15,2", "deviceType": "phone"});
    let z = "+02:00";
    let records = json!([
        rec(
            "HKQuantityTypeIdentifierHeartRate",
            json!(62),
            "count/min",
            "2026-03-02T06:00:00Z",
            "2026-03-02T06:00:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierRestingHeartRate",
            json!(51),
            "count/min",
            "2026-03-02T06:01:00Z",
            "2026-03-02T06:01:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierHeartRateVariabilitySDNN",
            json!(48.5),
            "ms",
            "2026-03-02T06:02:00Z",
            "2026-03-02T06:02:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierOxygenSaturation",
            json!(0.97),
            "%",
            "2026-03-02T06:03:00Z",
            "2026-03-02T06:03:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierRespiratoryRate",
            json!(14.5),
            "count/min",
            "2026-03-02T06:04:00Z",
            "2026-03-02T06:04:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierBloodGlucose",
            json!(5.5),
            "mmol<180.1558800000541>/L",
            "2026-03-02T06:05:00Z",
            "2026-03-02T06:05:00Z",
            z,
            &phone
        ),
        rec(
            "HKQuantityTypeIdentifierHeight",
            json!(1.72),
            "m",
            "2026-03-02T06:06:00Z",
            "2026-03-02T06:06:00Z",
            z,
            &phone
        ),
        rec(
            "HKQuantityTypeIdentifierBodyMass",
            json!(150),
            "lb",
            "2026-03-02T06:07:00Z",
            "2026-03-02T06:07:00Z",
            z,
            &phone
        ),
        rec(
            "HKQuantityTypeIdentifierBodyFatPercentage",
            json!(0.215),
            "%",
            "2026-03-02T06:08:00Z",
            "2026-03-02T06:08:00Z",
            z,
            &phone
        ),
        rec(
            "HKQuantityTypeIdentifierBodyTemperature",
            json!(98.6),
            "degF",
            "2026-03-02T06:09:00Z",
            "2026-03-02T06:09:00Z",
            z,
            &phone
        ),
        rec(
            "HKQuantityTypeIdentifierVO2Max",
            json!(44.1),
            "mL/min·kg",
            "2026-03-02T06:10:00Z",
            "2026-03-02T06:10:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierStepCount",
            json!(1200),
            "count",
            "2026-03-02T07:00:00Z",
            "2026-03-02T07:30:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierActiveEnergyBurned",
            json!(350),
            "kJ",
            "2026-03-02T07:00:00Z",
            "2026-03-02T07:30:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierDistanceWalkingRunning",
            json!(0.9),
            "km",
            "2026-03-02T07:00:00Z",
            "2026-03-02T07:30:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierFlightsClimbed",
            json!(3),
            "count",
            "2026-03-02T07:00:00Z",
            "2026-03-02T07:30:00Z",
            z,
            &phone
        ),
        rec(
            "HKQuantityTypeIdentifierWalkingSpeed",
            json!(5.4),
            "km/hr",
            "2026-03-02T07:31:00Z",
            "2026-03-02T07:31:00Z",
            z,
            &phone
        ),
        rec(
            "HKQuantityTypeIdentifierRunningStrideLength",
            json!(1.1),
            "m",
            "2026-03-02T07:32:00Z",
            "2026-03-02T07:32:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierAppleSleepingWristTemperature",
            json!(35.9),
            "degC",
            "2026-03-02T04:00:00Z",
            "2026-03-02T04:00:00Z",
            z,
            &w
        ),
    ]);
    let workouts = json!([{
        "id": "8F1E-RUN", "type": "running", "startDate": "2026-03-02T16:00:00Z", "endDate": "2026-03-02T16:45:00Z",
        "zoneOffset": z, "source": w, "title": "Evening run",
        "values": [
            {"type": "duration", "unit": "s", "value": 2700},
            {"type": "activeEnergyBurned", "unit": "kcal", "value": 480},
            {"type": "distance", "unit": "m", "value": 7500},
            {"type": "averageHeartRate", "unit": "bpm", "value": 152},
            {"type": "maxHeartRate", "unit": "bpm", "value": 178},
            {"type": "elevationAscended", "unit": "m", "value": 64},
            {"type": "averageRunningStrideLength", "unit": "m", "value": 1.15},
            {"type": "indoorWorkout", "unit": "bool", "value": 0}
        ]
    }]);
    batch("apple", records, apple_night(&w), workouts)
}

#[tokio::test]
async fn a_healthkit_batch_lands_in_every_read_model_with_units_and_offsets() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    sync(&s, &key, &user, &apple_batch()).await;
    let expect = [
        ("heart_rate", 62.0),
        ("resting_heart_rate", 51.0),
        ("heart_rate_variability_sdnn", 48.5),
        ("oxygen_saturation", 97.0),
        ("respiratory_rate", 14.5),
        ("blood_glucose", 99.086),
        ("height", 172.0),
        ("weight", 68.039),
        ("body_fat_percentage", 21.5),
        ("vo2_max", 44.1),
        ("steps", 1200.0),
        ("energy", 83.652),
        ("distance_walking_running", 900.0),
        ("flights_climbed", 3.0),
        ("walking_speed", 1.5),
    ];
    for (code, value) in expect {
        let (v, zone) = one(&s, &key, &user, code).await;
        assert!((v - value).abs() < 0.01, "{code}: {v} != {value}");
        assert_eq!(zone, "+02:00", "{code}");
    }
    // Body and wrist temperatures are one series: 98.6 °F and 35.9 °C.
    let temps = timeseries(&s, &key, &user, "body_temperature").await;
    let mut t: Vec<f64> = temps.iter().map(|i| i["value"].as_f64().unwrap()).collect();
    t.sort_by(f64::total_cmp);
    assert!(
        (t[0] - 35.9).abs() < 0.01 && (t[1] - 37.0).abs() < 0.01,
        "{t:?}"
    );
    // The record's stride (1.1 m), and the workout's average stride as a sample at its end.
    let strides: Vec<(String, f64)> = timeseries(&s, &key, &user, "running_stride_length")
        .await
        .iter()
        .map(|i| {
            (
                i["timestamp"].as_str().unwrap().to_string(),
                i["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        strides,
        vec![
            ("2026-03-02T07:32:00+00:00".to_string(), 110.0),
            ("2026-03-02T16:45:00+00:00".to_string(), 115.0)
        ]
    );

    let workouts = list(&s, &key, &user, "workouts").await;
    assert_eq!(workouts.len(), 1, "{workouts:?}");
    let w = &workouts[0];
    assert_eq!(w["type"], "running");
    assert_eq!(w["zone_offset"], "+02:00");
    assert_eq!(w["duration_seconds"], 2700);
    assert_eq!(w["calories_kcal"], 480.0);
    assert_eq!(w["distance_meters"], 7500.0);
    assert_eq!(w["avg_heart_rate_bpm"], 152);
    assert_eq!(w["max_heart_rate_bpm"], 178);
    assert_eq!(w["elevation_gain_meters"], 64.0);

    let sleep = list(&s, &key, &user, "sleep").await;
    assert_eq!(sleep.len(), 1, "{sleep:?}");
    assert_eq!(sleep[0]["start_time"], "2026-03-01T21:00:00+00:00");
    assert_eq!(sleep[0]["end_time"], "2026-03-02T05:00:00+00:00");
    assert_eq!(sleep[0]["zone_offset"], "+02:00");
    assert_eq!(sleep[0]["is_nap"], false);

    let (st, activity) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/activity?start_date=2026-03-01&end_date=2026-03-04"
            ),
        )
        .await;
    assert_eq!(st, 200, "{activity}");
    let day = activity["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == "2026-03-02")
        .unwrap_or_else(|| panic!("{activity}"));
    assert_eq!(day["steps"], 1200);
    let (st, body) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/body?start_date=2026-03-01&end_date=2026-03-04"
            ),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(body.to_string().contains("172"), "{body}");
    let (st, sleep_summary) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/sleep?start_date=2026-03-01&end_date=2026-03-04"
            ),
        )
        .await;
    assert_eq!(st, 200, "{sleep_summary}");
    assert_eq!(
        sleep_summary["data"].as_array().unwrap().len(),
        1,
        "{sleep_summary}"
    );

    // The night is scored like any other source's.
    let (st, scores) = s
        .get(
            &key,
            &format!("/api/v1/users/{user}/health-scores?category=sleep"),
        )
        .await;
    assert_eq!(st, 200, "{scores}");
    let scores = scores["data"].as_array().unwrap();
    assert_eq!(scores.len(), 1, "{scores:?}");
    assert_eq!(scores[0]["recorded_at"], "2026-03-02T05:00:00+00:00");
    assert!(scores[0]["value"].as_f64().unwrap() > 0.0);

    // The device is the data source, and the run is an `sdk` sync.
    let (_, sources) = s
        .get(&key, &format!("/api/v1/users/{user}/data-sources"))
        .await;
    let text = sources.to_string();
    assert!(
        text.contains("Watch7,5") || text.contains("\"Watch\""),
        "{text}"
    );
    let (_, runs) = s
        .get(&key, &format!("/api/v1/users/{user}/sync/runs"))
        .await;
    let text = runs.to_string();
    assert!(
        text.contains("\"source\":\"sdk\"") && text.contains("\"provider\":\"apple\""),
        "{text}"
    );
    let run = last_run(&s, &user).await;
    assert_eq!(run["metadata"]["records_saved"], 18, "{run}");
    assert_eq!(run["metadata"]["workouts_saved"], 1, "{run}");
    assert_eq!(run["metadata"]["sleep_saved"], 6, "{run}");
    assert_eq!(run["metadata"]["dropped_count"], 0, "{run}");
}

fn android_batch(provider: &str, z: &str) -> Value {
    let src = json!({"appId": "com.google.android.apps.fitness", "deviceModel": "Pixel Watch 2",
                     "deviceManufacturer": "Google", "deviceType": "watch"});
    let records = json!([
        rec(
            "HEART_RATE",
            json!(70),
            "bpm",
            "2026-03-05T12:00:00Z",
            "2026-03-05T12:00:00Z",
            z,
            &src
        ),
        rec(
            "RESTING_HEART_RATE",
            json!(55),
            "bpm",
            "2026-03-05T12:01:00Z",
            "2026-03-05T12:01:00Z",
            z,
            &src
        ),
        rec(
            "HEART_RATE_VARIABILITY",
            json!(41.2),
            "ms",
            "2026-03-05T12:02:00Z",
            "2026-03-05T12:02:00Z",
            z,
            &src
        ),
        rec(
            "OXYGEN_SATURATION",
            json!(96),
            "%",
            "2026-03-05T12:03:00Z",
            "2026-03-05T12:03:00Z",
            z,
            &src
        ),
        rec(
            "BLOOD_GLUCOSE",
            json!(6.1),
            "mmol/L",
            "2026-03-05T12:04:00Z",
            "2026-03-05T12:04:00Z",
            z,
            &src
        ),
        rec(
            "BLOOD_PRESSURE_SYSTOLIC",
            json!(121),
            "mmHg",
            "2026-03-05T12:05:00Z",
            "2026-03-05T12:05:00Z",
            z,
            &src
        ),
        rec(
            "BLOOD_PRESSURE_DIASTOLIC",
            json!(79),
            "mmHg",
            "2026-03-05T12:05:00Z",
            "2026-03-05T12:05:00Z",
            z,
            &src
        ),
        rec(
            "RESPIRATORY_RATE",
            json!(15),
            "rpm",
            "2026-03-05T12:06:00Z",
            "2026-03-05T12:06:00Z",
            z,
            &src
        ),
        rec(
            "HEIGHT",
            json!(1.81),
            "m",
            "2026-03-05T12:07:00Z",
            "2026-03-05T12:07:00Z",
            z,
            &src
        ),
        rec(
            "WEIGHT",
            json!(80.5),
            "kg",
            "2026-03-05T12:08:00Z",
            "2026-03-05T12:08:00Z",
            z,
            &src
        ),
        rec(
            "BODY_FAT",
            json!(18.5),
            "%",
            "2026-03-05T12:09:00Z",
            "2026-03-05T12:09:00Z",
            z,
            &src
        ),
        rec(
            "LEAN_BODY_MASS",
            json!(65.6),
            "kg",
            "2026-03-05T12:10:00Z",
            "2026-03-05T12:10:00Z",
            z,
            &src
        ),
        rec(
            "SKELETAL_MUSCLE_MASS",
            json!(36.2),
            "kg",
            "2026-03-05T12:10:00Z",
            "2026-03-05T12:10:00Z",
            z,
            &src
        ),
        rec(
            "BODY_FAT_MASS",
            json!(14.9),
            "kg",
            "2026-03-05T12:10:00Z",
            "2026-03-05T12:10:00Z",
            z,
            &src
        ),
        rec(
            "BMI",
            json!(24.6),
            "kg/m2",
            "2026-03-05T12:11:00Z",
            "2026-03-05T12:11:00Z",
            z,
            &src
        ),
        rec(
            "BODY_TEMPERATURE",
            json!(36.8),
            "°C",
            "2026-03-05T12:12:00Z",
            "2026-03-05T12:12:00Z",
            z,
            &src
        ),
        rec(
            "VO2_MAX",
            json!(47),
            "mL/kg/min",
            "2026-03-05T12:13:00Z",
            "2026-03-05T12:13:00Z",
            z,
            &src
        ),
        rec(
            "STEP_COUNT",
            json!(2500),
            "count",
            "2026-03-05T13:00:00Z",
            "2026-03-05T14:00:00Z",
            z,
            &src
        ),
        rec(
            "ACTIVE_CALORIES_BURNED",
            json!(210),
            "kcal",
            "2026-03-05T13:00:00Z",
            "2026-03-05T14:00:00Z",
            z,
            &src
        ),
        rec(
            "BASAL_METABOLIC_RATE",
            json!(1650),
            "kcal",
            "2026-03-05T00:00:00Z",
            "2026-03-05T00:00:00Z",
            z,
            &src
        ),
        rec(
            "FLOORS_CLIMBED",
            json!(6),
            "floors",
            "2026-03-05T13:00:00Z",
            "2026-03-05T14:00:00Z",
            z,
            &src
        ),
        rec(
            "DISTANCE",
            json!(1.9),
            "km",
            "2026-03-05T13:00:00Z",
            "2026-03-05T14:00:00Z",
            z,
            &src
        ),
        rec(
            "HYDRATION",
            json!(0.25),
            "L",
            "2026-03-05T12:20:00Z",
            "2026-03-05T12:20:00Z",
            z,
            &src
        ),
        rec(
            "POWER",
            json!(210),
            "W",
            "2026-03-05T12:21:00Z",
            "2026-03-05T12:21:00Z",
            z,
            &src
        ),
        rec(
            "SPEED",
            json!(3.2),
            "m/s",
            "2026-03-05T12:22:00Z",
            "2026-03-05T12:22:00Z",
            z,
            &src
        ),
        rec(
            "CYCLING_PEDALING_CADENCE",
            json!(88),
            "rpm",
            "2026-03-05T12:23:00Z",
            "2026-03-05T12:23:00Z",
            z,
            &src
        ),
    ]);
    let workouts = json!([{
        "id": "hc-1", "type": "RUNNING_TREADMILL", "startDate": "2026-03-05T17:00:00Z",
        "endDate": "2026-03-05T17:30:00Z", "zoneOffset": z, "source": src,
        "values": [{"type": "duration", "unit": "ms", "value": 1800000},
                   {"type": "calories", "unit": "kcal", "value": 300},
                   {"type": "distance", "unit": "km", "value": 5.0},
                   {"type": "averageHeartRate", "unit": "bpm", "value": 148}]
    }]);
    batch(provider, records, json!([]), workouts)
}

#[tokio::test]
async fn health_connect_and_samsung_batches_map_android_names_and_units() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    sync(&s, &key, &user, &android_batch("google", "-05:00")).await;
    let expect = [
        ("heart_rate", 70.0),
        ("resting_heart_rate", 55.0),
        ("heart_rate_variability_rmssd", 41.2),
        ("oxygen_saturation", 96.0),
        ("blood_glucose", 109.911),
        ("blood_pressure_systolic", 121.0),
        ("blood_pressure_diastolic", 79.0),
        ("respiratory_rate", 15.0),
        ("height", 181.0),
        ("weight", 80.5),
        ("body_fat_percentage", 18.5),
        ("lean_body_mass", 65.6),
        ("skeletal_muscle_mass", 36.2),
        ("body_fat_mass", 14.9),
        ("body_mass_index", 24.6),
        ("body_temperature", 36.8),
        ("vo2_max", 47.0),
        ("steps", 2500.0),
        ("basal_energy", 1650.0),
        ("flights_climbed", 6.0),
        ("distance_walking_running", 1900.0),
        ("hydration", 250.0),
        ("power", 210.0),
        ("speed", 3.2),
        ("cadence", 88.0),
    ];
    for (code, value) in expect {
        let (v, zone) = one(&s, &key, &user, code).await;
        assert!((v - value).abs() < 0.01, "{code}: {v} != {value}");
        assert_eq!(zone, "-05:00", "{code}");
    }
    // Android HRV is RMSSD: nothing lands in SDNN.
    assert!(timeseries(&s, &key, &user, "heart_rate_variability_sdnn")
        .await
        .is_empty());
    let workouts = list(&s, &key, &user, "workouts").await;
    assert_eq!(workouts.len(), 1);
    assert_eq!(workouts[0]["type"], "treadmill");
    assert_eq!(workouts[0]["duration_seconds"], 1800);
    assert_eq!(workouts[0]["distance_meters"], 5000.0);
    assert_eq!(workouts[0]["zone_offset"], "-05:00");

    // Samsung: the same names, its own data sources.
    let (_, other) = s.user().await;
    sync(&s, &key, &other, &android_batch("SAMSUNG", "+09:00")).await;
    let (v, zone) = one(&s, &key, &other, "steps").await;
    assert_eq!((v, zone.as_str()), (2500.0, "+09:00"));
    let (_, sources) = s
        .get(&key, &format!("/api/v1/users/{other}/data-sources"))
        .await;
    assert!(sources.to_string().contains("samsung"), "{sources}");
    let (_, runs) = s
        .get(&key, &format!("/api/v1/users/{other}/sync/runs"))
        .await;
    assert!(
        runs.to_string().contains("\"provider\":\"samsung\""),
        "{runs}"
    );
}

#[tokio::test]
async fn bad_records_are_dropped_and_counted_and_the_rest_kept() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let w = watch();
    let z = "+01:00";
    let records = json!([
        rec(
            "HKQuantityTypeIdentifierHeartRate",
            json!(64),
            "count/min",
            "2026-03-02T06:00:00Z",
            "2026-03-02T06:00:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierHeartRate",
            json!("fast"),
            "count/min",
            "2026-03-02T06:01:00Z",
            "2026-03-02T06:01:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierHeartRate",
            json!(64),
            "count/min",
            "not a date",
            "2026-03-02T06:01:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierBodyMass",
            json!(70),
            "parsec",
            "2026-03-02T06:02:00Z",
            "2026-03-02T06:02:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierHeartRate",
            json!(4000),
            "count/min",
            "2026-03-02T06:03:00Z",
            "2026-03-02T06:03:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierDietaryCaffeine",
            json!(95),
            "mg",
            "2026-03-02T06:04:00Z",
            "2026-03-02T06:04:00Z",
            z,
            &w
        ),
        rec(
            "HKQuantityTypeIdentifierStepCount",
            json!(100),
            "count",
            "2026-03-02T06:05:00Z",
            "2026-03-02T06:05:00Z",
            "Mars/Olympus",
            &w
        ),
        json!(42),
    ]);
    let sleep = json!([{"stage": "hibernating", "startDate": "2026-03-01T22:00:00Z", "endDate": "2026-03-02T06:00:00Z"}]);
    let workouts = json!([{"type": "running", "startDate": "2026-03-02T10:00:00Z"}]);
    sync(&s, &key, &user, &batch("apple", records, sleep, workouts)).await;
    let (v, _) = one(&s, &key, &user, "heart_rate").await;
    assert_eq!(v, 64.0);
    let run = last_run(&s, &user).await;
    let m = &run["metadata"];
    assert_eq!(m["records_saved"], 1, "{run}");
    assert_eq!(m["dropped_count"], 9, "{run}");
    let reasons = &m["dropped"];
    for (reason, n) in [
        ("records: invalid value", 1),
        ("records: invalid startDate", 1),
        ("records: unit not convertible", 1),
        ("records: value out of range", 1),
        ("records: unsupported type", 1),
        ("records: invalid zoneOffset", 1),
        ("records: malformed record", 1),
        ("sleep: unknown stage", 1),
        ("workouts: invalid endDate", 1),
    ] {
        assert_eq!(reasons[reason], n, "{reason}: {run}");
    }
    assert_eq!(run["outcome"], "partial", "{run}");
    // The same result is what the sync status API shows.
    let (st, recent) = s
        .get(&key, &format!("/api/v1/users/{user}/sync/recent"))
        .await;
    assert_eq!(st, 200, "{recent}");
    let done = recent
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "completed")
        .unwrap_or_else(|| panic!("{recent}"));
    assert_eq!(done["source"], "sdk");
    assert_eq!(done["status"], "partial");
    assert_eq!(done["metadata"]["dropped_count"], 9, "{done}");
    assert_eq!(
        done["metadata"]["dropped"]["sleep: unknown stage"], 1,
        "{done}"
    );
}

/// Rows of each read model for the user.
async fn counts(s: &Server, user: &str) -> (i64, i64, i64, i64) {
    let c = s.db.client().await;
    let q = |t: &str| format!("SELECT count(*) FROM {t} WHERE user_id = $1::text::uuid");
    let n = |row: tokio_postgres::Row| row.get::<_, i64>(0);
    (
        n(c.query_one(&q("samples"), &[&user]).await.unwrap()),
        n(c.query_one(&q("workouts"), &[&user]).await.unwrap()),
        n(c.query_one(&q("sleep_sessions"), &[&user]).await.unwrap()),
        n(c.query_one(&q("data_sources"), &[&user]).await.unwrap()),
    )
}

#[tokio::test]
async fn the_same_batch_twice_changes_nothing() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let body = apple_batch();
    sync(&s, &key, &user, &body).await;
    let first = counts(&s, &user).await;
    assert!(first.0 >= 19 && first.1 == 1 && first.2 == 1, "{first:?}");
    let sleep_before = list(&s, &key, &user, "sleep").await;
    sync(&s, &key, &user, &body).await;
    assert_eq!(counts(&s, &user).await, first);
    assert_eq!(list(&s, &key, &user, "sleep").await, sleep_before);
    let (_, activity) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/activity?start_date=2026-03-02&end_date=2026-03-03"
            ),
        )
        .await;
    assert_eq!(activity["data"][0]["steps"], 1200, "{activity}");
}

#[tokio::test]
async fn a_night_in_three_syncs_is_one_session_and_a_nap_is_flagged() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let w = watch();
    let night = apple_night(&w);
    let stages = night.as_array().unwrap();
    // The end of the night first, then the start, then the middle (as background delivery
    // hands them over), each its own sync.
    for part in [&stages[4..], &stages[..2], &stages[2..4]] {
        sync(
            &s,
            &key,
            &user,
            &batch("apple", json!([]), json!(part), json!([])),
        )
        .await;
    }
    let sleep = list(&s, &key, &user, "sleep").await;
    assert_eq!(sleep.len(), 1, "{sleep:#?}");
    // Assembled from the SDK runs' own entries, which name the caller that sent them.
    let id: uuid::Uuid = user.parse().unwrap();
    let actors: Vec<String> =
        s.db.client()
            .await
            .query(
                "SELECT DISTINCT metadata->>'actor' FROM events WHERE user_id = $1 \
             AND event_type = 'SleepSessionsRecorded'",
                &[&id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(actors.len(), 1, "{actors:?}");
    assert!(actors[0].starts_with("api_key:"), "{actors:?}");
    assert_eq!(sleep[0]["start_time"], "2026-03-01T21:00:00+00:00");
    assert_eq!(sleep[0]["end_time"], "2026-03-02T05:00:00+00:00");
    assert_eq!(sleep[0]["is_nap"], false);
    // The same as the night in one sync.
    let (_, whole) = s.user().await;
    sync(
        &s,
        &key,
        &whole,
        &batch("apple", json!([]), night.clone(), json!([])),
    )
    .await;
    let one_go = list(&s, &key, &whole, "sleep").await;
    for field in ["start_time", "end_time", "duration_seconds", "stages"] {
        assert_eq!(sleep[0][field], one_go[0][field], "{field}");
    }
    // A 40-minute sleep at 14:20 local: a nap.
    let nap = json!([{"stage": "light", "startDate": "2026-03-02T12:20:00Z", "endDate": "2026-03-02T13:00:00Z",
                      "zoneOffset": "+02:00", "source": w}]);
    sync(&s, &key, &user, &batch("apple", json!([]), nap, json!([]))).await;
    let sleep = list(&s, &key, &user, "sleep").await;
    assert_eq!(sleep.len(), 2, "{sleep:#?}");
    let naps: Vec<&Value> = sleep.iter().filter(|x| x["is_nap"] == true).collect();
    assert_eq!(naps.len(), 1);
    assert_eq!(naps[0]["start_time"], "2026-03-02T12:20:00+00:00");
}

/// Events, stored payloads and jobs: what a refused request must not add to.
async fn written(s: &Server) -> (i64, i64, i64) {
    let c = s.db.client().await;
    let n = |sql: &str| {
        let c = &c;
        let sql = sql.to_string();
        async move { c.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    (
        n("SELECT count(*) FROM events").await,
        n("SELECT count(*) FROM raw_payloads").await,
        n("SELECT count(*) FROM jobs").await,
    )
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_with_nothing_written() {
    let s = Server::start_with(
        common::TestDb::new().await,
        &[("WEARHOUSE_MAX_JSON_BYTES", "65536")],
    )
    .await;
    let (key, user) = s.user().await;
    s.settle().await;
    let before = written(&s).await;
    let path = format!("/api/v1/sdk/users/{user}/sync");
    let raw = |body: Vec<u8>| {
        s.req(Method::POST, &path)
            .header(KEY_HEADER, &key)
            .header("content-type", "application/json")
            .body(body)
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"provider\": \"apple\", ".to_vec(), 400, "not valid JSON"),
        (b"[1, 2, 3]".to_vec(), 400, "JSON object"),
        (br#"{"sdkVersion": "1", "syncTimestamp": "2026-03-01T00:00:00Z"}"#.to_vec(), 400, "'provider'"),
        (br#"{"provider": "fitbit", "sdkVersion": "1", "syncTimestamp": "2026-03-01T00:00:00Z"}"#.to_vec(), 400, "Invalid provider"),
        (br#"{"provider": "apple", "syncTimestamp": "2026-03-01T00:00:00Z"}"#.to_vec(), 400, "sdkVersion"),
        (br#"{"provider": "apple", "sdkVersion": "1", "syncTimestamp": "soon"}"#.to_vec(), 400, "syncTimestamp"),
        (br#"{"provider": "apple", "sdkVersion": "1", "syncTimestamp": "2026-03-01T00:00:00Z", "data": {"records": {"a": 1}}}"#.to_vec(), 400, "data.records"),
        (br#"{"provider": "apple", "sdkVersion": "1", "syncTimestamp": "2026-03-01T00:00:00Z", "data": []}"#.to_vec(), 400, "'data'"),
    ];
    for (body, status, needle) in cases {
        let r = raw(body.clone()).send().await.unwrap();
        let st = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(st, status, "{}: {answer}", String::from_utf8_lossy(&body));
        assert!(
            answer["detail"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    // Over the cap: refused while reading, chunked or declared.
    let mut big = apple_batch();
    big["data"]["records"] = json!(vec![big["data"]["records"][0].clone(); 1000]);
    let (st, answer) = call(
        s.req(Method::POST, &path)
            .header(KEY_HEADER, &key)
            .json(&big),
    )
    .await;
    assert_eq!(st, 413, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("larger than"),
        "{answer}"
    );
    let chunks = futures::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 4096]))),
    );
    // The server may answer and close before the client finished sending: a client of its
    // own, so the closed connection is not reused by the requests below.
    let r = reqwest::Client::new()
        .post(format!("{}{path}", s.url))
        .header(KEY_HEADER, &key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    // No credential, an unknown user.
    let r = s
        .req(Method::POST, &path)
        .json(&apple_batch())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (st, answer) = post(&s, &key, &uuid::Uuid::new_v4().to_string(), &apple_batch()).await;
    assert_eq!(st, 404, "{answer}");
    s.settle().await;
    assert_eq!(written(&s).await, before);
}

#[tokio::test]
async fn sdk_logs_are_stored_and_accepted() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let body = json!({"sdkVersion": "0.9.2", "provider": "apple", "events": [
        {"eventType": "historical_data_sync_start", "timestamp": "2026-03-02T08:00:00Z",
         "dataTypeCounts": [{"type": "HKQuantityTypeIdentifierStepCount", "count": 12000}],
         "timeRange": {"startDate": "2025-03-02T08:00:00Z", "endDate": "2026-03-02T08:00:00Z"}},
        {"eventType": "historical_data_type_sync_end", "timestamp": "2026-03-02T08:03:00Z",
         "dataType": "HKQuantityTypeIdentifierStepCount", "success": true, "recordCount": 12000, "durationMs": 180000},
        {"eventType": "device_state", "timestamp": "2026-03-02T08:03:01Z", "batteryLevel": 0.8,
         "batteryState": "unplugged", "isLowPowerMode": false, "thermalState": "nominal"}
    ]});
    let path = format!("/api/v1/sdk/users/{user}/logs");
    let (st, answer) = call(
        s.req(Method::POST, &path)
            .header(KEY_HEADER, &key)
            .json(&body),
    )
    .await;
    assert_eq!(st, 202, "{answer}");
    assert_eq!(answer["status_code"], 202);
    let c = s.db.client().await;
    let stored: i64 = c
        .query_one(
            "SELECT count(*) FROM raw_payloads WHERE kind = 'sdk_logs'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    for bad in [
        json!({"sdkVersion": "1", "events": []}),
        json!({"events": [{"eventType": "device_state", "timestamp": "2026-03-02T08:03:01Z"}]}),
        json!({"sdkVersion": "1", "events": [{"eventType": "coffee_break", "timestamp": "2026-03-02T08:03:01Z"}]}),
    ] {
        let (st, answer) = call(
            s.req(Method::POST, &path)
                .header(KEY_HEADER, &key)
                .json(&bad),
        )
        .await;
        assert_eq!(st, 400, "{bad}: {answer}");
        assert!(answer["detail"].is_string());
    }
}

/// The user's connections, as `GET /users/{id}/connections` lists them.
async fn connections(s: &Server, key: &str, user: &str) -> Vec<Value> {
    let (st, v) = s
        .get(key, &format!("/api/v1/users/{user}/connections"))
        .await;
    assert_eq!(st, 200, "{v}");
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn the_first_upload_of_each_platform_creates_an_sdk_connection() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    assert!(connections(&s, &key, &user).await.is_empty());
    let android = android_batch("google", "+01:00");
    sync(&s, &key, &user, &android).await;
    let list = connections(&s, &key, &user).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let google = &list[0];
    assert_eq!(google["provider"], "google");
    assert_eq!(google["status"], "active");
    assert_eq!(google["user_id"], user.as_str());
    assert!(google["provider_user_id"].is_null(), "{google}");
    assert!(google["last_synced_at"].is_string(), "{google}");
    for field in ["access_token", "refresh_token"] {
        assert!(google.get(field).is_none(), "{google}");
    }
    // Another upload of the same platform: still one connection, synced again.
    sync(&s, &key, &user, &android_batch("google", "+02:00")).await;
    let again = connections(&s, &key, &user).await;
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["id"], google["id"]);
    assert!(again[0]["last_synced_at"].as_str() >= google["last_synced_at"].as_str());
    // Another platform: a connection of its own.
    sync(&s, &key, &user, &apple_batch()).await;
    let both = connections(&s, &key, &user).await;
    let mut providers: Vec<&str> = both
        .iter()
        .map(|c| c["provider"].as_str().unwrap())
        .collect();
    providers.sort();
    assert_eq!(providers, ["apple", "google"], "{both:#?}");
    // Disconnected, then uploading again: active again.
    let (st, v) = call(
        s.req(
            Method::DELETE,
            &format!("/api/v1/users/{user}/connections/apple"),
        )
        .header(KEY_HEADER, &key),
    )
    .await;
    assert!(st == 204 || st == 200, "{st} {v}");
    s.settle().await;
    let apple = |list: Vec<Value>| {
        list.into_iter()
            .find(|c| c["provider"] == "apple")
            .expect("apple connection")
    };
    assert_eq!(
        apple(connections(&s, &key, &user).await)["status"],
        "revoked"
    );
    sync(&s, &key, &user, &apple_batch()).await;
    assert_eq!(
        apple(connections(&s, &key, &user).await)["status"],
        "active"
    );
}

/// One night (UTC+1) of a single Health Connect "sleeping" stage, `day` days after February 1.
fn night(day: i64, source: &Value) -> Value {
    let start = chrono::DateTime::parse_from_rfc3339("2026-02-01T22:00:00Z").unwrap()
        + chrono::Duration::days(day);
    let end = start + chrono::Duration::hours(8);
    json!({"stage": "sleeping", "startDate": start.to_rfc3339(), "endDate": end.to_rfc3339(),
           "zoneOffset": "+01:00", "source": source})
}

#[tokio::test]
async fn sleep_assembly_reads_only_the_sessions_near_the_new_stages() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let watch = json!({"appId": "com.google.android.apps.fitness", "deviceModel": "Pixel Watch 3",
                       "deviceManufacturer": "Google", "deviceType": "watch"});
    let nights: Vec<Value> = (0..20).map(|d| night(d, &watch)).collect();
    sync(
        &s,
        &key,
        &user,
        &batch("google", json!([]), json!(nights), json!([])),
    )
    .await;
    assert_eq!(list(&s, &key, &user, "sleep").await.len(), 20);
    let id: uuid::Uuid = user.parse().unwrap();
    let c = s.db.client().await;
    let kept: i64 = c
        .query_one(
            "SELECT count(*) FROM sdk_sleep_sessions WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 20);
    // Every session but the last night's made unreadable: a sync that read them would fail.
    let last_start: chrono::DateTime<chrono::Utc> = "2026-02-20T22:00:00Z".parse().unwrap();
    let poisoned = c
        .execute(
            "UPDATE sdk_sleep_sessions SET session = '{\"unreadable\": true}' \
             WHERE user_id = $1 AND start_time < $2",
            &[&id, &last_start],
        )
        .await
        .unwrap();
    assert_eq!(poisoned, 19);
    // 90 minutes after the last night ends: within the 120-minute rule, so it joins it.
    let late = json!([{"stage": "light", "startDate": "2026-02-21T07:30:00Z",
                       "endDate": "2026-02-21T08:00:00Z", "zoneOffset": "+01:00", "source": watch}]);
    sync(
        &s,
        &key,
        &user,
        &batch("google", json!([]), late, json!([])),
    )
    .await;
    let sleep = list(&s, &key, &user, "sleep").await;
    assert_eq!(sleep.len(), 20, "{sleep:#?}");
    let last = sleep
        .iter()
        .find(|x| x["start_time"] == "2026-02-20T22:00:00+00:00")
        .expect("the last night");
    assert_eq!(last["end_time"], "2026-02-21T08:00:00+00:00", "{last}");
    // The stale rows were not touched; the merged night's row holds the new end.
    let end: chrono::DateTime<chrono::Utc> = c
        .query_one(
            "SELECT end_time FROM sdk_sleep_sessions WHERE user_id = $1 AND start_time = $2",
            &[&id, &last_start],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(end.to_rfc3339(), "2026-02-21T08:00:00+00:00");
}

#[tokio::test]
async fn a_batch_resent_before_the_first_is_mapped_creates_no_duplicates() {
    let s = Server::start().await;
    let (key, once) = s.user().await;
    let (_, thrice) = s.user().await;
    let body = apple_batch();
    sync(&s, &key, &once, &body).await;
    // Sent three times at once: the jobs are claimed and written together.
    let (a, b, c) = tokio::join!(
        post(&s, &key, &thrice, &body),
        post(&s, &key, &thrice, &body),
        post(&s, &key, &thrice, &body)
    );
    for (st, v) in [a, b, c] {
        assert_eq!(st, 202, "{v}");
    }
    drain(&s).await;
    assert_eq!(counts(&s, &thrice).await, counts(&s, &once).await);
    // What a session is, without the ids that differ per user.
    let strip = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|x| {
                json!([
                    x["start_time"],
                    x["end_time"],
                    x["duration_seconds"],
                    x["is_nap"],
                    x["stages"]
                ])
            })
            .collect()
    };
    assert_eq!(
        strip(list(&s, &key, &thrice, "sleep").await),
        strip(list(&s, &key, &once, "sleep").await)
    );
    let runs: i64 = s
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE aggregate_type = 'SyncRun' AND user_id = $1::text::uuid \
             AND event_type = 'SyncRunCompleted'",
            &[&thrice],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 3);
}
