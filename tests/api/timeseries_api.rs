//! Black-box tests of the read side: `/timeseries`, `/data-sources`, `/summaries/data` and
//! `/meta/coverage`, against the real server and database.
//!
//! The rows are written with plain SQL into the read models (`data_sources`, `samples`,
//! `sample_counts`, `workouts`, `sleep_sessions`) until the Apple import lands; then these
//! fixtures switch to the real import path.

use crate::common;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use common::{call, Server, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const KEY_HEADER: &str = "X-Open-Wearables-API-Key";

struct Fixture {
    s: Server,
    key: String,
    user: String,
    db: tokio_postgres::Client,
    watch: Uuid,
    phone: Uuid,
}

async fn fixture_with(s: Server) -> Fixture {
    let key = s.api_key().await;
    let (status, user) = call(
        s.req(Method::POST, "/api/v1/users")
            .header(KEY_HEADER, &key)
            .json(&json!({"first_name": "Ada"})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let user = user["id"].as_str().unwrap().to_string();
    let db = s.db.client().await;
    let (watch, phone) = (Uuid::new_v4(), Uuid::new_v4());
    let uid: Uuid = user.parse().unwrap();
    // Until the import lands: data sources written directly, as the projection will.
    db.execute(
        "INSERT INTO data_sources (id, user_id, provider, device_model, software_version, source, \
             device_type, original_source_name, device_name) VALUES \
         ($1, $3, 'apple', 'Watch6,1', '9.5', 'com.apple.health.watch', 'watch', 'Ada''s Watch', 'Apple Watch'), \
         ($2, $3, 'apple', NULL, NULL, 'com.apple.Health', 'phone', 'Ada''s iPhone', NULL)",
        &[&watch, &phone, &uid],
    )
    .await
    .unwrap();
    Fixture {
        s,
        key,
        user,
        db,
        watch,
        phone,
    }
}

async fn fixture() -> Fixture {
    fixture_with(Server::start().await).await
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

impl Fixture {
    fn uid(&self) -> Uuid {
        self.user.parse().unwrap()
    }

    /// Until the import lands: one row of the `samples` read model.
    async fn sample(
        &self,
        source: Uuid,
        series: i16,
        time: &str,
        value: f64,
        zone: Option<i16>,
        daily: Option<bool>,
    ) {
        self.db
            .execute(
                "INSERT INTO samples (time, user_id, data_source_id, series_type, value, zone_offset, \
                     end_time, is_daily_total) VALUES ($1, $2, $3, $4, $5, $6, $1, $7)",
                &[&t(time), &self.uid(), &source, &series, &value, &zone, &daily],
            )
            .await
            .unwrap();
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        call(
            self.s
                .req(Method::GET, path_and_query)
                .header(KEY_HEADER, &self.key),
        )
        .await
    }

    async fn ts(&self, query: &str) -> (u16, Value) {
        self.get(&format!("/api/v1/users/{}/timeseries?{query}", self.user))
            .await
    }

    async fn ts_ok(&self, query: &str) -> Value {
        let (status, body) = self.ts(query).await;
        assert_eq!(status, 200, "{query}: {body}");
        body
    }
}

fn items(page: &Value) -> &Vec<Value> {
    page["data"].as_array().unwrap()
}

fn values(page: &Value) -> Vec<f64> {
    items(page)
        .iter()
        .map(|i| i["value"].as_f64().unwrap())
        .collect()
}

/// A point's identity in a response: (UTC instant, device type, type code).
fn key(item: &Value) -> (DateTime<Utc>, String, String) {
    (
        t(item["timestamp"].as_str().unwrap()),
        item["source"]["device_type"].as_str().unwrap().to_string(),
        item["type"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn raw_samples_filter_by_type_and_range_with_the_end_of_day_rule() {
    let f = fixture().await;
    let (w, p) = (f.watch, f.phone);
    f.sample(w, 1, "2024-03-10T00:00:00Z", 61.0, Some(0), None)
        .await;
    f.sample(w, 1, "2024-03-10T09:59:00Z", 60.0, Some(-480), None)
        .await;
    f.sample(w, 1, "2024-03-10T23:59:59Z", 63.0, Some(330), None)
        .await;
    f.sample(w, 1, "2024-03-11T00:00:00Z", 62.0, None, None)
        .await;
    f.sample(w, 1, "2024-03-09T23:59:59Z", 59.0, None, None)
        .await;
    f.sample(p, 80, "2024-03-10T10:00:00Z", 100.0, Some(60), Some(false))
        .await;
    f.sample(w, 81, "2024-03-10T11:00:00Z", 12.5, Some(60), Some(true))
        .await;

    // Date-only end covers the whole day; start is inclusive, the next midnight exclusive.
    let page = f
        .ts_ok("start_time=2024-03-10&end_time=2024-03-10&types=heart_rate")
        .await;
    assert_eq!(values(&page), vec![61.0, 60.0, 63.0]);
    assert_eq!(page["pagination"]["total_count"], 3);
    assert_eq!(page["pagination"]["has_more"], false);
    assert!(page["pagination"]["next_cursor"].is_null());
    assert!(page["pagination"]["previous_cursor"].is_null());
    assert_eq!(page["metadata"]["resolution"], "raw");
    assert_eq!(page["metadata"]["sample_count"], 3);
    let second = &items(&page)[1];
    assert_eq!(
        t(second["timestamp"].as_str().unwrap()),
        t("2024-03-10T01:59:00-08:00")
    );
    assert_eq!(second["zone_offset"], "-08:00");
    assert_eq!(second["type"], "heart_rate");
    assert_eq!(second["unit"], "bpm");
    assert_eq!(second["is_daily_total"], Value::Null);
    assert_eq!(
        second["source"],
        json!({"provider": "apple", "source": "com.apple.health.watch", "device": "Watch6,1",
               "device_type": "watch", "device_name": "Apple Watch"})
    );
    assert_eq!(items(&page)[2]["zone_offset"], "+05:30");

    // An end with a time of day is exclusive as written: no extension.
    let page = f
        .ts_ok("start_time=2024-03-10T00:00:00Z&end_time=2024-03-10T23:00:00Z&types=heart_rate")
        .await;
    assert_eq!(values(&page), vec![61.0, 60.0]);
    // Local midnight in the written offset extends too: 2024-03-11T08:00Z exclusive.
    let page = f
        .ts_ok(
            "start_time=2024-03-10T00:00:00Z&end_time=2024-03-10T00:00:00-08:00&types=heart_rate",
        )
        .await;
    assert_eq!(values(&page), vec![61.0, 60.0, 63.0, 62.0]);
    // Unix seconds: 1710028800 = 2024-03-10T00:00Z; 1710064800 = 10:00Z (exclusive).
    let page = f.ts_ok("start_time=1710028800&end_time=1710064800").await;
    assert_eq!(values(&page), vec![61.0, 60.0]);

    // No types: every type, ordered by time.
    let page = f.ts_ok("start_time=2024-03-10&end_time=2024-03-10").await;
    assert_eq!(values(&page), vec![61.0, 60.0, 100.0, 12.5, 63.0]);
    let steps = &items(&page)[2];
    assert_eq!(steps["type"], "steps");
    assert_eq!(steps["is_daily_total"], false);
    assert_eq!(steps["source"]["device"], Value::Null);
    assert_eq!(steps["source"]["device_name"], Value::Null);
    assert_eq!(steps["source"]["device_type"], "phone");

    // Repeated `types`, and the newer `active_energy` spelling answers as the contract's `energy`.
    let page = f
        .ts_ok("start_time=2024-03-10&end_time=2024-03-10&types=active_energy&types=steps")
        .await;
    assert_eq!(values(&page), vec![100.0, 12.5]);
    assert_eq!(items(&page)[1]["type"], "energy");
    assert_eq!(items(&page)[1]["unit"], "kcal");
    assert_eq!(items(&page)[1]["is_daily_total"], true);
    assert_eq!(page["pagination"]["total_count"], 2);
}

async fn check_resolutions(f: &Fixture) {
    let (w, p) = (f.watch, f.phone);
    for (src, series, time, v) in [
        (w, 1, "2024-03-10T10:00:10Z", 60.0),
        (w, 1, "2024-03-10T10:00:40Z", 80.0),
        (w, 1, "2024-03-10T10:03:00Z", 90.0),
        (w, 1, "2024-03-10T10:20:00Z", 100.0),
        (p, 1, "2024-03-10T10:00:30Z", 50.0),
        (w, 80, "2024-03-10T10:00:05Z", 10.0),
        (w, 80, "2024-03-10T10:00:50Z", 20.0),
        (w, 80, "2024-03-10T10:07:00Z", 5.0),
        (w, 61, "2024-03-10T10:01:00Z", 400.0),
        (w, 61, "2024-03-10T10:02:00Z", 450.0),
    ] {
        f.sample(src, series, time, v, Some(-480), Some(false))
            .await;
    }
    let points = |page: &Value| -> BTreeMap<(DateTime<Utc>, String, String), f64> {
        items(page)
            .iter()
            .map(|i| (key(i), i["value"].as_f64().unwrap()))
            .collect()
    };
    let k = |time: &str, device: &str, code: &str| (t(time), device.to_string(), code.to_string());
    let range = "start_time=2024-03-10T10:00:00Z&end_time=2024-03-10T11:00:00Z";

    let page = f.ts_ok(&format!("{range}&resolution=1min")).await;
    assert_eq!(page["metadata"]["resolution"], "1min");
    assert_eq!(page["pagination"]["total_count"], Value::Null);
    let got = points(&page);
    let expected: BTreeMap<_, _> = [
        // Two devices in one bucket stay two points.
        (k("2024-03-10T10:00:00Z", "watch", "heart_rate"), 70.0),
        (k("2024-03-10T10:00:00Z", "phone", "heart_rate"), 50.0),
        (k("2024-03-10T10:03:00Z", "watch", "heart_rate"), 90.0),
        (k("2024-03-10T10:20:00Z", "watch", "heart_rate"), 100.0),
        (k("2024-03-10T10:00:00Z", "watch", "steps"), 30.0),
        (k("2024-03-10T10:07:00Z", "watch", "steps"), 5.0),
        (
            k(
                "2024-03-10T10:01:00Z",
                "watch",
                "six_minute_walk_test_distance",
            ),
            400.0,
        ),
        (
            k(
                "2024-03-10T10:02:00Z",
                "watch",
                "six_minute_walk_test_distance",
            ),
            450.0,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, expected);
    assert_eq!(items(&page).len(), 8);
    let times: Vec<DateTime<Utc>> = items(&page).iter().map(|i| key(i).0).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let first = &items(&page)[0];
    assert_eq!(first["zone_offset"], "-08:00");
    assert_eq!(first["is_daily_total"], false);

    let got = points(&f.ts_ok(&format!("{range}&resolution=5min")).await);
    let hr5 = got[&k("2024-03-10T10:00:00Z", "watch", "heart_rate")];
    assert!((hr5 - 230.0 / 3.0).abs() < 1e-9, "{hr5}");
    assert_eq!(got[&k("2024-03-10T10:00:00Z", "phone", "heart_rate")], 50.0);
    assert_eq!(got[&k("2024-03-10T10:00:00Z", "watch", "steps")], 30.0);
    assert_eq!(got[&k("2024-03-10T10:05:00Z", "watch", "steps")], 5.0);
    // Max where the catalog says max.
    assert_eq!(
        got[&k(
            "2024-03-10T10:00:00Z",
            "watch",
            "six_minute_walk_test_distance"
        )],
        450.0
    );
    assert_eq!(got.len(), 6);

    let got = points(&f.ts_ok(&format!("{range}&resolution=15min")).await);
    assert!((got[&k("2024-03-10T10:00:00Z", "watch", "heart_rate")] - 230.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        got[&k("2024-03-10T10:15:00Z", "watch", "heart_rate")],
        100.0
    );
    assert_eq!(got[&k("2024-03-10T10:00:00Z", "watch", "steps")], 35.0);
    assert_eq!(got.len(), 5);

    let page = f
        .ts_ok(&format!(
            "{range}&resolution=1hour&types=heart_rate&types=steps"
        ))
        .await;
    let got = points(&page);
    assert_eq!(got[&k("2024-03-10T10:00:00Z", "watch", "heart_rate")], 82.5);
    assert_eq!(got[&k("2024-03-10T10:00:00Z", "phone", "heart_rate")], 50.0);
    assert_eq!(got[&k("2024-03-10T10:00:00Z", "watch", "steps")], 35.0);
    assert_eq!(got.len(), 3);
    assert_eq!(page["metadata"]["resolution"], "1hour");

    let page = f.ts_ok(&format!("{range}&resolution=raw")).await;
    assert_eq!(items(&page).len(), 10);
    assert_eq!(page["pagination"]["total_count"], 10);

    // Aggregated pages walk with cursors too: same points as one big page.
    let all = f.ts_ok(&format!("{range}&resolution=1min")).await;
    let walked = walk_forward(f, &format!("{range}&resolution=1min"), 3).await;
    assert_eq!(&walked, items(&all));
    let back = walk_backward(f, &format!("{range}&resolution=1min"), 3, &walked).await;
    assert_eq!(&back, items(&all));
}

#[tokio::test]
async fn every_resolution_aggregates_per_bucket_source_and_type_with_timescaledb() {
    let f = fixture().await;
    check_resolutions(&f).await;
}

#[tokio::test]
async fn every_resolution_aggregates_the_same_with_date_bin_without_timescaledb() {
    let s = Server::start_with(TestDb::new().await, &[("WEARHOUSE_TIMESCALEDB", "off")]).await;
    let f = fixture_with(s).await;
    let ext =
        f.db.query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await
        .unwrap();
    assert!(ext.is_none(), "this database must not have TimescaleDB");
    check_resolutions(&f).await;
}

/// Follows `next_cursor` from the first page to the end; checks the page invariants on the way.
async fn walk_forward(f: &Fixture, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            None => format!("{query}&limit={limit}"),
            Some(c) => format!("{query}&limit={limit}&cursor={c}"),
        };
        let page = f.ts_ok(&q).await;
        let pg = &page["pagination"];
        let n = items(&page).len();
        assert!(n <= limit);
        // `previous_cursor` only when the page was reached with a cursor.
        assert_eq!(pg["previous_cursor"].is_string(), cursor.is_some(), "{pg}");
        out.extend(items(&page).iter().cloned());
        if pg["has_more"] == true {
            assert_eq!(n, limit);
            cursor = Some(pg["next_cursor"].as_str().unwrap().to_string());
        } else {
            assert!(pg["next_cursor"].is_null(), "{pg}");
            return out;
        }
    }
}

/// Starts at the last page of `forward` (reached by a forward cursor) and follows
/// `previous_cursor` back to the start; returns everything in ascending order.
async fn walk_backward(f: &Fixture, query: &str, limit: usize, forward: &[Value]) -> Vec<Value> {
    // Re-read the last forward page to get its `previous_cursor`.
    let mut cursor: Option<String> = None;
    let mut last_page;
    loop {
        let q = match &cursor {
            None => format!("{query}&limit={limit}"),
            Some(c) => format!("{query}&limit={limit}&cursor={c}"),
        };
        last_page = f.ts_ok(&q).await;
        match last_page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut out: Vec<Value> = items(&last_page).clone();
    let mut prev = last_page["pagination"]["previous_cursor"]
        .as_str()
        .map(str::to_string);
    if forward.len() <= limit {
        assert!(prev.is_none());
    }
    while let Some(c) = prev {
        assert!(c.starts_with("prev_"), "{c}");
        let page = f.ts_ok(&format!("{query}&limit={limit}&cursor={c}")).await;
        let pg = &page["pagination"];
        let n = items(&page).len();
        assert!(n > 0 && n <= limit);
        // A backward page always leads forward again, to the first item after it.
        let next = pg["next_cursor"].as_str().unwrap();
        let after = f.ts_ok(&format!("{query}&limit=1&cursor={next}")).await;
        assert_eq!(items(&after)[0], out[0]);
        let mut page_items = items(&page).clone();
        page_items.extend(out);
        out = page_items;
        prev = pg["previous_cursor"].as_str().map(str::to_string);
        assert_eq!(pg["has_more"] == true, prev.is_some(), "{pg}");
    }
    out
}

#[tokio::test]
async fn cursors_walk_a_whole_range_forward_and_back_without_gaps_or_duplicates() {
    let f = fixture().await;
    // Until the import lands: 3 series × 2 sources × 11 minutes, many sharing a timestamp,
    // plus a sample in the excluded end minute.
    f.db.execute(
        "INSERT INTO samples (time, user_id, data_source_id, series_type, value, zone_offset) \
         SELECT TIMESTAMPTZ '2024-05-01 08:00:00+00' + m * INTERVAL '1 minute', $1, ds, st, m * 10 + st, 120 \
         FROM generate_series(0, 11) m, unnest($2::uuid[]) ds, unnest(ARRAY[1, 80, 81]::smallint[]) st",
        &[&f.uid(), &vec![f.watch, f.phone]],
    )
    .await
    .unwrap();
    let query = "start_time=2024-05-01T08:00:00Z&end_time=2024-05-01T08:11:00Z";
    let all = f.ts_ok(&format!("{query}&limit=1000")).await;
    let all = items(&all).clone();
    assert_eq!(all.len(), 66);
    let keys: HashSet<_> = all.iter().map(key).collect();
    assert_eq!(keys.len(), 66, "the full page has no duplicates");

    for limit in [1, 7, 66] {
        let forward = walk_forward(&f, query, limit).await;
        assert_eq!(forward, all, "forward walk with limit {limit}");
        let back = walk_backward(&f, query, limit, &forward).await;
        assert_eq!(back, all, "backward walk with limit {limit}");
    }
    // The total ignores the cursor.
    let first = f.ts_ok(&format!("{query}&limit=7")).await;
    let next = first["pagination"]["next_cursor"].as_str().unwrap();
    let second = f.ts_ok(&format!("{query}&limit=7&cursor={next}")).await;
    assert_eq!(second["pagination"]["total_count"], 66);
    assert_eq!(items(&second)[0], all[7]);
    assert_eq!(items(&first)[0]["zone_offset"], "+02:00");
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_detail() {
    let f = fixture().await;
    f.sample(f.watch, 1, "2024-03-10T10:00:00Z", 60.0, None, None)
        .await;
    let range = "start_time=2024-03-10&end_time=2024-03-11";
    let detail = |body: &Value| body["detail"].as_str().unwrap().to_string();

    for limit in ["0", "1001", "-1", "x"] {
        let (status, body) = f.ts(&format!("{range}&limit={limit}")).await;
        assert_eq!(status, 400, "limit {limit}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    for limit in ["1", "1000"] {
        let (status, body) = f.ts(&format!("{range}&limit={limit}")).await;
        assert_eq!(status, 200, "limit {limit}: {body}");
        assert_eq!(values(&body), vec![60.0]);
    }
    let (status, body) = f.ts("start_time=yesterday&end_time=2024-03-11").await;
    assert_eq!(status, 400);
    assert_eq!(
        detail(&body),
        "Invalid datetime format: 'yesterday'. Expected ISO 8601 format or Unix timestamp."
    );
    let (status, body) = f.ts("start_time=2024-03-10&end_time=2024-02-30").await;
    assert_eq!(status, 400);
    assert!(detail(&body).starts_with("Invalid datetime format: '2024-02-30'"));
    let (status, body) = f.ts("end_time=2024-03-11").await;
    assert_eq!(status, 400, "start_time is required: {body}");
    assert!(body["detail"].is_string());
    let (status, body) = f.ts("start_time=2024-03-10").await;
    assert_eq!(status, 400, "end_time is required: {body}");

    for cursor in ["garbage!", "prev_Zm9v", "MjAyNC0wMy0xMA"] {
        let (status, body) = f.ts(&format!("{range}&cursor={cursor}")).await;
        assert_eq!(status, 400, "{cursor}: {body}");
        assert!(
            detail(&body).starts_with(&format!("Invalid cursor format: '{cursor}'.")),
            "{body}"
        );
    }
    let (status, body) = f.ts(&format!("{range}&types=heart_rate&types=nope")).await;
    assert_eq!(status, 400);
    assert_eq!(detail(&body), "Invalid series type: 'nope'");
    let (status, body) = f.ts(&format!("{range}&resolution=2min")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn unknown_or_deleted_users_are_404_and_credentials_are_required() {
    let f = fixture().await;
    let range = "start_time=2024-03-10&end_time=2024-03-11";
    let ghost = Uuid::new_v4();
    for path in [
        format!("/api/v1/users/{ghost}/timeseries?{range}"),
        format!("/api/v1/users/{ghost}/data-sources"),
        format!("/api/v1/users/{ghost}/summaries/data"),
    ] {
        let (status, body) = f.get(&path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            body,
            json!({"detail": format!("User with ID: {ghost} not found.")})
        );
    }
    for path in [
        format!("/api/v1/users/{}/timeseries?{range}", f.user),
        format!("/api/v1/users/{}/data-sources", f.user),
        format!("/api/v1/users/{}/summaries/data", f.user),
    ] {
        let (status, body) = call(f.s.req(Method::GET, &path)).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(
            body["detail"],
            "Authentication required: provide JWT token or API key"
        );
        // A developer JWT works as well as the API key.
        let jwt = f.s.login().await;
        let (status, _) = call(f.s.req(Method::GET, &path).bearer_auth(jwt)).await;
        assert_eq!(status, 200, "{path}");
    }

    let jwt = f.s.login().await;
    let (status, _) = call(
        f.s.req(Method::DELETE, &format!("/api/v1/users/{}", f.user))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = f.ts(range).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["detail"],
        format!("User with ID: {} not found.", f.user)
    );
}

#[tokio::test]
async fn data_sources_and_the_data_summary_count_what_is_stored() {
    let f = fixture().await;
    let (w, p) = (f.watch, f.phone);
    let (status, list) = f
        .get(&format!("/api/v1/users/{}/data-sources", f.user))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 2);
    let by_type: BTreeMap<&str, &Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["device_type"].as_str().unwrap(), i))
        .collect();
    assert_eq!(by_type["watch"]["display_name"], "Apple - Watch6,1");
    assert_eq!(by_type["watch"]["id"], w.to_string());
    assert_eq!(by_type["watch"]["user_id"], f.user);
    assert_eq!(by_type["watch"]["software_version"], "9.5");
    assert_eq!(by_type["watch"]["user_connection_id"], Value::Null);
    assert_eq!(by_type["phone"]["display_name"], "Apple - Ada's iPhone");
    assert_eq!(by_type["phone"]["original_source_name"], "Ada's iPhone");

    // Until the import lands: samples, their per-source counts, workouts and sleep, as the
    // projections will write them.
    for (src, series, time) in [
        (w, 1, "2024-03-01T10:00:00Z"),
        (w, 1, "2024-03-02T10:00:00Z"),
        (w, 1, "2024-03-03T10:00:00Z"),
        (p, 80, "2024-03-01T10:00:00Z"),
        (p, 80, "2024-03-03T10:00:00Z"),
        (w, 81, "2024-03-02T12:00:00Z"),
    ] {
        f.sample(src, series, time, 1.0, None, None).await;
    }
    f.db.execute(
        "INSERT INTO sample_counts (user_id, data_source_id, series_type, count) \
         SELECT user_id, data_source_id, series_type, count(*) FROM samples GROUP BY 1, 2, 3",
        &[],
    )
    .await
    .unwrap();
    for (ty, start, deleted) in [
        ("running", "2024-03-01T07:00:00Z", false),
        ("running", "2024-03-02T07:00:00Z", false),
        ("cycling", "2024-03-03T07:00:00Z", false),
        ("running", "2024-03-02T09:00:00Z", true),
    ] {
        f.db.execute(
            "INSERT INTO workouts (id, user_id, data_source_id, type, start_time, end_time, deleted) \
             VALUES ($1, $2, $3, $4, $5, $5::timestamptz + INTERVAL '30 minutes', $6)",
            &[&Uuid::new_v4(), &f.uid(), &w, &ty, &t(start), &deleted],
        )
        .await
        .unwrap();
    }
    for (start, deleted) in [
        ("2024-03-01T23:00:00Z", false),
        ("2024-03-02T23:00:00Z", true),
    ] {
        f.db.execute(
            "INSERT INTO sleep_sessions (id, user_id, data_source_id, start_time, end_time, is_nap, \
                 awake_minutes, light_minutes, deep_minutes, rem_minutes, asleep_minutes, in_bed_minutes, \
                 stages, deleted) \
             VALUES ($1, $2, $3, $4, $4::timestamptz + INTERVAL '8 hours', false, 10, 200, 100, 90, 390, 480, '[]', $5)",
            &[&Uuid::new_v4(), &f.uid(), &p, &t(start), &deleted],
        )
        .await
        .unwrap();
    }

    let path = format!("/api/v1/users/{}/summaries/data", f.user);
    let (status, all) = f.get(&path).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        all,
        json!({
            "user_id": f.user,
            "total_data_points": 6,
            "total_workouts": 3,
            "total_sleep_events": 1,
            "series_type_counts": {"heart_rate": 3, "steps": 2, "energy": 1},
            "workout_type_counts": {"running": 2, "cycling": 1},
            "by_provider": [{
                "provider": "apple",
                "data_points": 6,
                "series_counts": {"heart_rate": 3, "steps": 2, "energy": 1},
                "workout_count": 3,
                "sleep_count": 1,
            }],
            "has_womens_health_data": false,
        })
    );

    // With dates the counts come from the samples in [start, end).
    let (status, day) = f
        .get(&format!("{path}?start_date=2024-03-02&end_date=2024-03-03"))
        .await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["total_data_points"], 2);
    assert_eq!(
        day["series_type_counts"],
        json!({"heart_rate": 1, "energy": 1})
    );
    assert_eq!(day["total_workouts"], 1);
    assert_eq!(day["workout_type_counts"], json!({"running": 1}));
    assert_eq!(day["total_sleep_events"], 0);
    assert_eq!(day["by_provider"][0]["sleep_count"], 0);
    // One bound only.
    let (_, from) = f.get(&format!("{path}?start_date=2024-03-02")).await;
    assert_eq!(from["total_data_points"], 4);
    assert_eq!(from["total_workouts"], 2);
    let (status, body) = f.get(&format!("{path}?start_date=soon")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "Invalid datetime format: 'soon'. Expected ISO 8601 format or Unix timestamp."
    );
}

#[tokio::test]
async fn coverage_lists_what_the_apple_importer_and_the_providers_map() {
    let s = Server::start().await;
    let (status, doc) = call(s.req(Method::GET, "/api/v1/meta/coverage")).await;
    assert_eq!(status, 200);
    assert_eq!(
        doc["providers"],
        json!([
            "apple",
            "fitbit",
            "garmin",
            "google",
            "oura",
            "samsung",
            "strava",
            "ultrahuman",
            "whoop"
        ])
    );
    let categories = doc["timeseries"].as_array().unwrap();
    // Health Connect's HRV is RMSSD; HealthKit's is SDNN.
    let providers_of = |code: &str| {
        categories
            .iter()
            .flat_map(|c| c["metrics"].as_array().unwrap())
            .find(|m| m["code"] == code)
            .map(|m| m["providers"].clone())
    };
    let rmssd = providers_of("heart_rate_variability_rmssd").unwrap();
    assert!(
        rmssd.as_array().unwrap().contains(&json!("google")),
        "{rmssd}"
    );
    let sdnn = providers_of("heart_rate_variability_sdnn").unwrap();
    assert!(
        !sdnn.as_array().unwrap().contains(&json!("google")),
        "{sdnn}"
    );
    assert_eq!(categories[0]["name"], "Heart & Cardiovascular");
    let codes: Vec<&str> = categories
        .iter()
        .flat_map(|c| c["metrics"].as_array().unwrap())
        .map(|m| m["code"].as_str().unwrap())
        .collect();
    for code in ["heart_rate", "steps", "energy", "blood_pressure_systolic"] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    // Provider-specific series are listed for their provider only.
    let battery = categories
        .iter()
        .flat_map(|c| c["metrics"].as_array().unwrap())
        .find(|m| m["code"] == "garmin_body_battery")
        .expect("Garmin's body battery is mapped");
    assert_eq!(battery["providers"], json!(["garmin"]));
    let cycles = doc["menstrual_cycle_fields"].as_array().unwrap();
    assert!(cycles
        .iter()
        .any(|f| f["code"] == "current_phase" && f["providers"] == json!(["garmin"])));
    assert!(doc["workout_fields"].as_array().unwrap().len() > 3);
    assert!(doc["sleep_fields"].as_array().unwrap().len() > 3);
}
