//! The read routes against the Open Wearables contract, on provider data pulled from the
//! provider simulator (`wearhouse simulate providers`) through the real server: every field of
//! the contract's schemas present with its JSON type (an integer where the contract declares
//! `int`), nullability as the contract allows, and the values that were wrong (issue 12).

use crate::common;

use std::collections::BTreeSet;

use chrono::Utc;
use common::sim::Sim;
use common::{call, Server, TestDb, KEY_HEADER};
use reqwest::Method;
use serde_json::{json, Value};

struct Env {
    sim: Sim,
    s: Server,
    key: String,
    user: String,
}

impl Env {
    async fn get(&self, path: &str) -> Value {
        let (st, body) = self.s.get(&self.key, path).await;
        assert_eq!(st, 200, "{path}: {body}");
        body
    }

    /// Authorizes `provider` for the user through the simulator's consent page, then pulls the
    /// last three days synchronously and waits for the read models.
    async fn connect_and_sync(&self, provider: &str) {
        let (st, body) = self
            .s
            .get(
                &self.key,
                &format!("/api/v1/oauth/{provider}/authorize?user_id={}", self.user),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        let consent = self
            .sim
            .http
            .get(body["authorization_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(consent.status(), 302);
        let callback = consent.headers()["location"].to_str().unwrap().to_string();
        let done = self.sim.http.get(&callback).send().await.unwrap();
        assert_eq!(done.status(), 303);
        let since = (Utc::now() - chrono::Duration::days(3)).timestamp();
        let (st, res) = call(
            self.s
                .req(
                    Method::POST,
                    &format!(
                        "/api/v1/providers/{provider}/users/{}/sync?async=false&since={since}",
                        self.user
                    ),
                )
                .header(KEY_HEADER, &self.key),
        )
        .await;
        assert_eq!((st, &res["success"]), (200, &json!(true)), "{res}");
        self.s.settle().await;
    }

    /// `…/{route}?start_date=…&end_date=…` around the simulated days.
    async fn range(&self, route: &str, extra: &str) -> Value {
        let today = Utc::now().date_naive();
        let start = today - chrono::Duration::days(6);
        let end = today + chrono::Duration::days(2);
        self.get(&format!(
            "/api/v1/users/{}/{route}?start_date={start}&end_date={end}{extra}",
            self.user
        ))
        .await
    }
}

async fn setup() -> Env {
    let sim = Sim::start(10).await;
    let mut env = sim.env();
    env.push(("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT".into(), "0".into()));
    env.push(("WEARHOUSE_PROVIDER_TIMEOUT_SECS".into(), "5".into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start_with(TestDb::new().await, &refs).await;
    let (key, user) = s.user().await;
    Env { sim, s, key, user }
}

/// A JSON type the contract allows for a field.
#[derive(Clone, Copy, Debug, PartialEq)]
enum J {
    Int,
    Num,
    Str,
    Bool,
    Obj,
    Arr,
    Null,
}

fn kind_ok(v: &Value, k: J) -> bool {
    match k {
        // `as_i64` is none for 510.0: an integer field must be written without a fraction.
        J::Int => v.as_i64().is_some(),
        J::Num => v.is_number(),
        J::Str => v.is_string(),
        J::Bool => v.is_boolean(),
        J::Obj => v.is_object(),
        J::Arr => v.is_array(),
        J::Null => v.is_null(),
    }
}

/// Every field of the contract's schema is present with an allowed type; any other key must
/// be one of our documented extras (a client of the contract ignores them).
fn shape(what: &str, v: &Value, fields: &[(&str, &[J])], extras: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"));
    for (name, kinds) in fields {
        let f = obj
            .get(*name)
            .unwrap_or_else(|| panic!("{what}: no `{name}` in {v}"));
        assert!(
            kinds.iter().any(|k| kind_ok(f, *k)),
            "{what}.{name} = {f} is not one of {kinds:?}"
        );
    }
    let known: BTreeSet<&str> = fields
        .iter()
        .map(|f| f.0)
        .chain(extras.iter().copied())
        .collect();
    for k in obj.keys() {
        assert!(known.contains(k.as_str()), "{what}: unexpected field `{k}`");
    }
}

const INT_N: &[J] = &[J::Int, J::Null];
const NUM_N: &[J] = &[J::Num, J::Null];
const STR_N: &[J] = &[J::Str, J::Null];
const OBJ_N: &[J] = &[J::Obj, J::Null];

fn source_shape(what: &str, v: &Value) {
    shape(
        what,
        v,
        &[
            ("provider", &[J::Str]),
            ("device_name", STR_N),
            ("device", STR_N),
            ("device_type", STR_N),
            ("source", STR_N),
        ],
        &[],
    );
    if let Some(t) = v["device_type"].as_str() {
        assert!(
            ["watch", "band", "phone", "scale", "ring", "other", "unknown"].contains(&t),
            "{what}.device_type {t}"
        );
    }
}

/// The page envelope; `resolution` must be in the contract's enum or null.
fn envelope_shape(what: &str, v: &Value) -> Vec<Value> {
    shape(
        what,
        v,
        &[
            ("data", &[J::Arr]),
            ("pagination", &[J::Obj]),
            ("metadata", &[J::Obj]),
        ],
        &[],
    );
    shape(
        &format!("{what}.pagination"),
        &v["pagination"],
        &[
            ("has_more", &[J::Bool]),
            ("next_cursor", STR_N),
            ("previous_cursor", STR_N),
            ("total_count", INT_N),
        ],
        &[],
    );
    let m = &v["metadata"];
    shape(
        &format!("{what}.metadata"),
        m,
        &[
            ("resolution", STR_N),
            ("sample_count", INT_N),
            ("start_time", STR_N),
            ("end_time", STR_N),
        ],
        &[],
    );
    if let Some(r) = m["resolution"].as_str() {
        assert!(
            ["raw", "1min", "5min", "15min", "1hour"].contains(&r),
            "{what}: resolution {r} is not in the contract's enum"
        );
    }
    let data = v["data"].as_array().unwrap().clone();
    assert!(!data.is_empty(), "{what}: no data to check");
    data
}

fn stages_shape(what: &str, v: &Value) {
    if v.is_null() {
        return;
    }
    shape(
        what,
        v,
        &[
            ("awake_minutes", INT_N),
            ("light_minutes", INT_N),
            ("deep_minutes", INT_N),
            ("rem_minutes", INT_N),
        ],
        &[],
    );
}

fn activity_shape(d: &Value) {
    shape(
        "ActivitySummary",
        d,
        &[
            ("date", &[J::Str]),
            ("source", &[J::Obj]),
            ("steps", INT_N),
            ("distance_meters", NUM_N),
            ("floors_climbed", INT_N),
            ("elevation_meters", NUM_N),
            ("active_calories_kcal", NUM_N),
            ("total_calories_kcal", NUM_N),
            ("active_minutes", INT_N),
            ("sedentary_minutes", INT_N),
            ("intensity_minutes", OBJ_N),
            ("heart_rate", OBJ_N),
        ],
        &[],
    );
    source_shape("ActivitySummary.source", &d["source"]);
    if !d["heart_rate"].is_null() {
        shape(
            "HeartRateStats",
            &d["heart_rate"],
            &[("avg_bpm", INT_N), ("max_bpm", INT_N), ("min_bpm", INT_N)],
            &[],
        );
    }
    if !d["intensity_minutes"].is_null() {
        shape(
            "IntensityMinutes",
            &d["intensity_minutes"],
            &[("light", INT_N), ("moderate", INT_N), ("vigorous", INT_N)],
            &[],
        );
    }
}

fn sleep_summary_shape(d: &Value) {
    shape(
        "SleepSummary",
        d,
        &[
            ("date", &[J::Str]),
            ("source", &[J::Obj]),
            ("start_time", STR_N),
            ("end_time", STR_N),
            ("zone_offset", STR_N),
            ("duration_minutes", INT_N),
            ("total_duration_minutes", INT_N),
            ("time_in_bed_minutes", INT_N),
            ("efficiency_percent", NUM_N),
            ("stages", OBJ_N),
            ("interruptions_count", INT_N),
            ("nap_count", INT_N),
            ("nap_duration_minutes", INT_N),
            ("sessions", &[J::Arr, J::Null]),
            ("avg_heart_rate_bpm", INT_N),
            ("avg_hrv_sdnn_ms", NUM_N),
            ("avg_hrv_rmssd_ms", NUM_N),
            ("avg_respiratory_rate", NUM_N),
            ("avg_spo2_percent", NUM_N),
        ],
        &[],
    );
    source_shape("SleepSummary.source", &d["source"]);
    stages_shape("SleepSummary.stages", &d["stages"]);
    for s in d["sessions"].as_array().into_iter().flatten() {
        shape(
            "SleepSessionSummary",
            s,
            &[
                ("start_time", &[J::Str]),
                ("end_time", &[J::Str]),
                ("zone_offset", STR_N),
                ("duration_minutes", INT_N),
                ("is_nap", &[J::Bool]),
            ],
            &[],
        );
    }
}

fn recovery_shape(d: &Value) {
    shape(
        "RecoverySummary",
        d,
        &[
            ("date", &[J::Str]),
            ("source", &[J::Obj]),
            ("sleep_duration_seconds", INT_N),
            ("sleep_efficiency_percent", NUM_N),
            ("resting_heart_rate_bpm", INT_N),
            ("avg_hrv_sdnn_ms", NUM_N),
            ("avg_spo2_percent", NUM_N),
            ("recovery_score", INT_N),
        ],
        &["avg_hrv_rmssd_ms"],
    );
    source_shape("RecoverySummary.source", &d["source"]);
}

fn workout_shape(w: &Value) {
    shape(
        "Workout",
        w,
        &[
            ("id", &[J::Str]),
            ("type", &[J::Str]),
            ("name", STR_N),
            ("start_time", &[J::Str]),
            ("end_time", &[J::Str]),
            ("zone_offset", STR_N),
            ("duration_seconds", INT_N),
            ("source", &[J::Obj]),
            ("calories_kcal", NUM_N),
            ("distance_meters", NUM_N),
            ("avg_heart_rate_bpm", INT_N),
            ("max_heart_rate_bpm", INT_N),
            ("avg_pace_sec_per_km", NUM_N),
            ("elevation_gain_meters", NUM_N),
        ],
        &[],
    );
    source_shape("Workout.source", &w["source"]);
}

fn sleep_event_shape(s: &Value) {
    shape(
        "SleepSession",
        s,
        &[
            ("id", &[J::Str]),
            ("start_time", &[J::Str]),
            ("end_time", &[J::Str]),
            ("zone_offset", STR_N),
            ("source", &[J::Obj]),
            ("duration_seconds", &[J::Int]),
            ("sleep_duration_seconds", INT_N),
            ("efficiency_percent", NUM_N),
            ("stages", OBJ_N),
            ("sleep_stage_intervals", &[J::Arr, J::Null]),
            ("is_nap", &[J::Bool]),
        ],
        &[],
    );
    source_shape("SleepSession.source", &s["source"]);
    stages_shape("SleepSession.stages", &s["stages"]);
    for i in s["sleep_stage_intervals"].as_array().into_iter().flatten() {
        shape(
            "SleepStage",
            i,
            &[
                ("stage", &[J::Str]),
                ("start_time", &[J::Str]),
                ("end_time", &[J::Str]),
            ],
            &[],
        );
        let stage = i["stage"].as_str().unwrap();
        assert!(
            ["in_bed", "awake", "sleeping", "light", "deep", "rem", "unknown"].contains(&stage),
            "{stage}"
        );
    }
}

async fn oura() -> Env {
    let e = setup().await;
    e.connect_and_sync("oura").await;
    e
}

/// Issue 12: `active_minutes` was 0 while Oura's `active_time` series held 30 minutes a day,
/// and `total_calories_kcal` was the active part only. Oura's active_time is high + medium
/// activity (600 s + 1200 s = 30 min); its total_calories is 2200.
#[tokio::test]
async fn oura_activity_has_the_providers_active_minutes_and_total_calories() {
    let e = oura().await;
    let page = e.range("summaries/activity", "").await;
    let mut checked = 0;
    for d in page["data"].as_array().unwrap() {
        if d["active_calories_kcal"].is_null() {
            continue;
        }
        checked += 1;
        assert_eq!(d["active_minutes"].as_i64(), Some(30), "{d}");
        assert_eq!(d["total_calories_kcal"].as_f64(), Some(2200.0), "{d}");
        assert_eq!(d["source"]["provider"], "oura");
    }
    assert!(checked >= 3, "{page}");
}

/// Issue 12: the sleep summary showed `nap_duration_minutes: -0` and no SpO2 while the
/// recovery summary had 96 (Oura's daily_spo2) for the same date.
#[tokio::test]
async fn oura_sleep_summary_has_integer_minutes_and_the_nights_spo2() {
    let e = oura().await;
    let page = e.range("summaries/sleep", "").await;
    let nights = page["data"].as_array().unwrap().clone();
    assert!(nights.len() >= 3, "{page}");
    for d in &nights {
        assert_eq!(d["avg_spo2_percent"].as_f64(), Some(96.0), "{d}");
        assert!(d["start_time"].is_string(), "{d}");
        assert_eq!(d["nap_count"].as_i64(), Some(0));
        assert_eq!(
            serde_json::to_string(&d["nap_duration_minutes"]).unwrap(),
            "0",
            "{d}"
        );
        // 23:00 to 01:00, 6600 s asleep.
        assert_eq!(d["duration_minutes"].as_i64(), Some(110), "{d}");
        assert_eq!(d["time_in_bed_minutes"].as_i64(), Some(120), "{d}");
        assert!(d["stages"]["deep_minutes"].as_i64().is_some(), "{d}");
    }
    let recovery = e.range("summaries/recovery", "").await;
    let mut same_dates = 0;
    for d in recovery["data"].as_array().unwrap() {
        if let Some(n) = nights.iter().find(|n| n["date"] == d["date"]) {
            same_dates += 1;
            assert_eq!(d["avg_spo2_percent"], n["avg_spo2_percent"], "{d} {n}");
        }
    }
    assert!(same_dates >= 3, "{recovery}");
}

/// Issue 12: `avg_pace_sec_per_km` was null although distance and duration exist; Oura's
/// workouts are 5 km in 30 minutes: 360 s/km, an integer.
#[tokio::test]
async fn oura_workouts_have_a_pace() {
    let e = oura().await;
    let page = e.range("events/workouts", "").await;
    let workouts = page["data"].as_array().unwrap();
    assert!(workouts.len() >= 3, "{page}");
    for w in workouts {
        assert_eq!(w["avg_pace_sec_per_km"].as_i64(), Some(360), "{w}");
        assert_eq!(w["duration_seconds"].as_i64(), Some(1800), "{w}");
    }
}

/// Issue 12: the data source was "Oura Oura" with a null `user_connection_id`.
#[tokio::test]
async fn oura_data_source_is_named_once_and_points_at_its_connection() {
    let e = oura().await;
    let user = e.user.clone();
    // Data sources: "Oura" (never "Oura Oura"), from the user's Oura connection.
    let conns = e.get(&format!("/api/v1/users/{user}/connections")).await;
    let conn_id = conns[0]["id"].as_str().unwrap().to_string();
    let list = e.get(&format!("/api/v1/users/{user}/data-sources")).await;
    shape(
        "DataSourceListResponse",
        &list,
        &[("items", &[J::Arr]), ("total", &[J::Int])],
        &[],
    );
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let ds = &items[0];
    shape(
        "DataSourceResponse",
        ds,
        &[
            ("id", &[J::Str]),
            ("user_id", &[J::Str]),
            ("provider", &[J::Str]),
            ("user_connection_id", STR_N),
            ("device_model", STR_N),
            ("software_version", STR_N),
            ("source", STR_N),
            ("device_type", STR_N),
            ("original_source_name", STR_N),
            ("display_name", STR_N),
        ],
        &[],
    );
    assert_eq!(ds["display_name"], "Oura");
    assert_eq!(ds["user_connection_id"].as_str(), Some(conn_id.as_str()));
}

/// Every read route touched, on Oura's data: the contract's fields with their JSON types.
#[tokio::test]
async fn oura_read_routes_have_the_contracts_shapes() {
    let e = oura().await;
    let user = e.user.clone();

    let page = e.range("summaries/activity", "").await;
    assert!(
        page["metadata"]["resolution"].is_null(),
        "{}",
        page["metadata"]
    );
    for d in envelope_shape("activity", &page) {
        activity_shape(&d);
    }
    let page = e.range("summaries/sleep", "").await;
    assert!(page["metadata"]["resolution"].is_null());
    for d in envelope_shape("sleep summary", &page) {
        sleep_summary_shape(&d);
    }
    let page = e.range("summaries/recovery", "").await;
    assert!(page["metadata"]["resolution"].is_null());
    for d in envelope_shape("recovery", &page) {
        recovery_shape(&d);
    }
    let page = e.range("events/workouts", "").await;
    for w in envelope_shape("workouts", &page) {
        workout_shape(&w);
    }
    // Sleep events: Oura's hypnogram is a real timeline, served as intervals.
    let page = e.range("events/sleep", "").await;
    for s in envelope_shape("sleep events", &page) {
        sleep_event_shape(&s);
        assert!(!s["sleep_stage_intervals"].as_array().unwrap().is_empty());
        assert_eq!(s["sleep_duration_seconds"].as_i64(), Some(6600), "{s}");
    }

    // Health scores.
    let page = e.get(&format!("/api/v1/users/{user}/health-scores")).await;
    for h in envelope_shape("health scores", &page) {
        shape(
            "HealthScoreResponse",
            &h,
            &[
                ("id", &[J::Str]),
                ("category", &[J::Str]),
                ("value", NUM_N),
                ("qualifier", STR_N),
                ("recorded_at", &[J::Str]),
                ("zone_offset", STR_N),
                ("components", OBJ_N),
                ("data_source_id", STR_N),
                ("provider", STR_N),
            ],
            &[],
        );
        // Oura's own scores and the platform's (`internal`).
        let p = h["provider"].as_str().unwrap();
        assert!(p == "oura" || p == "internal", "{h}");
    }

    // Timeseries.
    let today = Utc::now().date_naive();
    let page = e
        .get(&format!(
            "/api/v1/users/{user}/timeseries?start_time={}&end_time={}&types=steps",
            today - chrono::Duration::days(6),
            today + chrono::Duration::days(2)
        ))
        .await;
    assert_eq!(page["metadata"]["resolution"], "raw");
    for t in envelope_shape("timeseries", &page) {
        shape(
            "TimeSeriesSample",
            &t,
            &[
                ("timestamp", &[J::Str]),
                ("type", &[J::Str]),
                ("value", &[J::Num]),
                ("unit", &[J::Str]),
                ("zone_offset", STR_N),
                ("source", OBJ_N),
                ("is_daily_total", &[J::Bool, J::Null]),
            ],
            &[],
        );
        source_shape("TimeSeriesSample.source", &t["source"]);
    }

    // Body: Oura's profile weight.
    let body = e.get(&format!("/api/v1/users/{user}/summaries/body")).await;
    shape(
        "BodySummary",
        &body,
        &[
            ("source", &[J::Obj]),
            ("slow_changing", &[J::Obj]),
            ("averaged", &[J::Obj]),
            ("latest", &[J::Obj]),
        ],
        &[],
    );
    source_shape("BodySummary.source", &body["source"]);
    shape(
        "BodyAveraged",
        &body["averaged"],
        &[
            ("period_days", &[J::Int]),
            ("period_start", &[J::Str]),
            ("period_end", &[J::Str]),
            ("resting_heart_rate_bpm", INT_N),
            ("avg_hrv_sdnn_ms", NUM_N),
            ("avg_hrv_rmssd_ms", NUM_N),
        ],
        &[],
    );
    shape(
        "BodySlowChanging",
        &body["slow_changing"],
        &[
            ("age", INT_N),
            ("bmi", NUM_N),
            ("body_fat_percent", NUM_N),
            ("height_cm", NUM_N),
            ("muscle_mass_kg", NUM_N),
            ("weight_kg", NUM_N),
        ],
        &[],
    );
    assert_eq!(body["slow_changing"]["weight_kg"].as_f64(), Some(70.5));
}

/// Whoop gives per-stage totals only: the stage minutes are served, intervals are not
/// invented; recovery values the contract declares `int` are integers.
#[tokio::test]
async fn whoop_sleep_has_stage_totals_but_no_invented_intervals() {
    let e = setup().await;
    e.connect_and_sync("whoop").await;

    let page = e.range("events/sleep", "").await;
    let sessions = envelope_shape("whoop sleep events", &page);
    for s in &sessions {
        assert!(s["sleep_stage_intervals"].is_null(), "{s}");
        sleep_event_shape(s);
        assert_eq!(
            s["stages"],
            json!({"awake_minutes": 30, "light_minutes": 210, "deep_minutes": 100, "rem_minutes": 120}),
            "{s}"
        );
        assert_eq!(s["sleep_duration_seconds"].as_i64(), Some(430 * 60), "{s}");
        assert_eq!(s["duration_seconds"].as_i64(), Some(8 * 3600), "{s}");
    }
    // The nights keep the minutes.
    let page = e.range("summaries/sleep", "").await;
    for d in envelope_shape("whoop sleep summary", &page) {
        sleep_summary_shape(&d);
        assert_eq!(d["stages"]["deep_minutes"].as_i64(), Some(100), "{d}");
    }
    let page = e.range("summaries/recovery", "").await;
    let mut scored = 0;
    for d in envelope_shape("whoop recovery", &page) {
        recovery_shape(&d);
        if d["recovery_score"].is_null() {
            continue;
        }
        scored += 1;
        assert!(d["resting_heart_rate_bpm"].as_i64().is_some(), "{d}");
        assert_eq!(d["source"]["provider"], "whoop");
    }
    assert!(scored >= 3);
    // 8 km in an hour: 450 s/km.
    let page = e.range("events/workouts", "").await;
    for w in envelope_shape("whoop workouts", &page) {
        workout_shape(&w);
        assert_eq!(w["avg_pace_sec_per_km"].as_i64(), Some(450), "{w}");
        assert!(w["avg_heart_rate_bpm"].as_i64().is_some(), "{w}");
    }
    let list = e
        .get(&format!("/api/v1/users/{}/data-sources", e.user))
        .await;
    assert_eq!(list["items"][0]["display_name"], "Whoop");
    assert!(list["items"][0]["user_connection_id"].is_string());
}
