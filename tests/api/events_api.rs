//! Black-box tests of `/events/workouts`, `/events/sleep`, `/events/menstrual-cycles` and their
//! deletions, on data imported through the real Apple import path.

use crate::common;

use common::export::{self, sleep, workout, WATCH, WATCH_NAME};
use common::{call, Server, KEY_HEADER};
use reqwest::Method;
use serde_json::Value;

fn body() -> String {
    [
        workout(
            "Running",
            30.0,
            300.0,
            5000.0,
            "2024-02-05 07:00:00 -0800",
            "2024-02-05 07:30:00 -0800",
        ),
        workout(
            "Walking",
            45.0,
            150.0,
            3000.0,
            "2024-02-06 12:00:00 -0800",
            "2024-02-06 12:45:00 -0800",
        ),
        workout(
            "Cycling",
            60.0,
            500.0,
            20000.0,
            "2024-02-07 18:00:00 -0800",
            "2024-02-07 19:00:00 -0800",
        ),
        sleep(
            "InBed",
            "2024-02-05 22:30:00 -0800",
            "2024-02-06 06:30:00 -0800",
            WATCH_NAME,
            Some(WATCH),
        ),
        sleep(
            "AsleepCore",
            "2024-02-05 23:00:00 -0800",
            "2024-02-06 02:00:00 -0800",
            WATCH_NAME,
            Some(WATCH),
        ),
        sleep(
            "AsleepDeep",
            "2024-02-06 02:00:00 -0800",
            "2024-02-06 03:00:00 -0800",
            WATCH_NAME,
            Some(WATCH),
        ),
        sleep(
            "AsleepREM",
            "2024-02-06 03:00:00 -0800",
            "2024-02-06 06:00:00 -0800",
            WATCH_NAME,
            Some(WATCH),
        ),
        sleep(
            "AsleepUnspecified",
            "2024-02-06 14:00:00 -0800",
            "2024-02-06 14:40:00 -0800",
            WATCH_NAME,
            Some(WATCH),
        ),
    ]
    .join("\n")
}

/// The same records plus one more, so the upload is not a byte-identical duplicate (those are
/// recognised and skipped) and every record is imported again.
fn body_again() -> String {
    format!(
        "{}\n{}",
        body(),
        export::steps(
            10.0,
            "2024-02-08 08:00:00 -0800",
            "2024-02-08 08:05:00 -0800",
            true
        )
    )
}

fn data(v: &Value) -> &Vec<Value> {
    v["data"].as_array().unwrap()
}

fn types(v: &Value) -> Vec<&str> {
    data(v)
        .iter()
        .map(|w| w["type"].as_str().unwrap())
        .collect()
}

async fn setup() -> (Server, String, String) {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    s.import(&key, &user, &export::doc(&body())).await;
    (s, key, user)
}

#[tokio::test]
async fn workouts_list_filters_pages_and_deletes() {
    let (s, key, user) = setup().await;
    let base = format!("/api/v1/users/{user}/events/workouts");
    let (st, all) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-02-01&end_date=2024-02-10"),
        )
        .await;
    assert_eq!(st, 200, "{all}");
    // Newest first.
    assert_eq!(types(&all), ["cycling", "walking", "running"]);
    assert_eq!(all["pagination"]["total_count"], 3);
    assert_eq!(all["pagination"]["has_more"], false);
    assert!(all["pagination"]["next_cursor"].is_null());
    let run = &data(&all)[2];
    assert_eq!(run["start_time"], "2024-02-05T15:00:00+00:00");
    assert_eq!(run["end_time"], "2024-02-05T15:30:00+00:00");
    assert_eq!(run["zone_offset"], "-08:00");
    // Integers where the contract declares int; pace from duration and distance.
    assert_eq!(run["duration_seconds"].as_i64(), Some(1800));
    assert_eq!(run["avg_pace_sec_per_km"].as_i64(), Some(360));
    assert_eq!(run["calories_kcal"], 300.0);
    assert_eq!(run["distance_meters"], 5000.0);
    assert!(run["name"].is_null());
    assert_eq!(run["source"]["provider"], "apple");
    assert_eq!(run["source"]["device_type"], "watch");

    // record_type: case-insensitive substring.
    let (_, r) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-02-01&end_date=2024-02-10&record_type=CYCL"),
        )
        .await;
    assert_eq!(types(&r), ["cycling"]);
    let (_, r) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-02-01&end_date=2024-02-10&record_type=%25"),
        )
        .await;
    assert_eq!(data(&r).len(), 0, "a literal % matches nothing");

    // Date edges: start inclusive, end exclusive exactly (`end_time < end_date`): an end at
    // midnight does not extend to that day (that rule is `/timeseries`' only).
    let (_, r) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-02-05T15:00:00Z&end_date=2024-02-06"),
        )
        .await;
    assert_eq!(
        types(&r),
        ["running"],
        "the walk ends on the 6th, after midnight"
    );
    let (_, r) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-02-05T15:00:00Z&end_date=2024-02-07"),
        )
        .await;
    assert_eq!(types(&r), ["walking", "running"]);
    let (_, r) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-02-05T15:00:01Z&end_date=2024-02-06T20:45:00Z"),
        )
        .await;
    assert_eq!(types(&r), Vec::<&str>::new(), "end is exclusive");
    let (_, r) = s
        .get(
            &key,
            &format!("{base}?start_date=1707000000&end_date=2024-02-06T20:45:01Z"),
        )
        .await;
    assert_eq!(types(&r), ["walking", "running"]);

    // Cursor walk forward one by one, then back.
    let q = format!("{base}?start_date=2024-02-01&end_date=2024-02-10&limit=1");
    let (_, p1) = s.get(&key, &q).await;
    assert_eq!(types(&p1), ["cycling"]);
    assert_eq!(p1["pagination"]["has_more"], true);
    assert!(p1["pagination"]["previous_cursor"].is_null());
    let next = p1["pagination"]["next_cursor"].as_str().unwrap();
    let (_, p2) = s.get(&key, &format!("{q}&cursor={next}")).await;
    assert_eq!(types(&p2), ["walking"]);
    assert_eq!(p2["pagination"]["total_count"], 3);
    let next = p2["pagination"]["next_cursor"].as_str().unwrap();
    let (_, p3) = s.get(&key, &format!("{q}&cursor={next}")).await;
    assert_eq!(types(&p3), ["running"]);
    assert_eq!(p3["pagination"]["has_more"], false);
    assert!(p3["pagination"]["next_cursor"].is_null());
    let prev = p3["pagination"]["previous_cursor"].as_str().unwrap();
    assert!(prev.starts_with("prev_"));
    let (_, back) = s.get(&key, &format!("{q}&cursor={prev}")).await;
    assert_eq!(types(&back), ["walking"]);
    assert_eq!(back["pagination"]["has_more"], true);
    let prev = back["pagination"]["previous_cursor"].as_str().unwrap();
    let (_, back) = s.get(&key, &format!("{q}&cursor={prev}")).await;
    assert_eq!(types(&back), ["cycling"]);
    assert_eq!(back["pagination"]["has_more"], false);
    assert!(back["pagination"]["previous_cursor"].is_null());

    // Errors.
    let (st, e) = s.get(&key, &format!("{q}&cursor=garbage")).await;
    assert_eq!(st, 400);
    assert!(e["detail"]
        .as_str()
        .unwrap()
        .starts_with("Invalid cursor format: 'garbage'"));
    let (st, e) = s
        .get(
            &key,
            &format!("{base}?start_date=yesterday&end_date=2024-02-10"),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        e["detail"],
        "Invalid datetime format: 'yesterday'. Expected ISO 8601 format or Unix timestamp."
    );
    for bad in ["limit=0", "limit=101"] {
        let (st, e) = s
            .get(
                &key,
                &format!("{base}?start_date=2024-02-01&end_date=2024-02-10&{bad}"),
            )
            .await;
        assert_eq!(st, 400, "{bad}");
        assert!(e["detail"].is_string());
    }
    let (st, _) = s.get(&key, &format!("{base}?start_date=2024-02-01")).await;
    assert_eq!(st, 400, "end_date is required");
    let unknown = uuid::Uuid::new_v4();
    let (st, e) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{unknown}/events/workouts?start_date=2024-02-01&end_date=2024-02-10"
            ),
        )
        .await;
    assert_eq!(st, 404);
    assert_eq!(e["detail"], format!("User with ID: {unknown} not found."));
    let (st, e) = call(s.req(
        Method::GET,
        &format!("{base}?start_date=2024-02-01&end_date=2024-02-10"),
    ))
    .await;
    assert_eq!(st, 401);
    assert!(e["detail"].is_string());

    // Delete: hidden from then on, also after the same file is imported again.
    let walking = data(&all)[1]["id"].as_str().unwrap().to_string();
    let del = |id: String| {
        s.req(Method::DELETE, &format!("{base}/{id}"))
            .header(KEY_HEADER, &key)
    };
    let (st, _) = call(del(walking.clone())).await;
    assert_eq!(st, 204);
    let (st, e) = call(del(walking.clone())).await;
    assert_eq!(st, 404);
    assert_eq!(e["detail"], "Workout not found");
    let (st, _) = call(del(uuid::Uuid::new_v4().to_string())).await;
    assert_eq!(st, 404);
    let q = format!("{base}?start_date=2024-02-01&end_date=2024-02-10");
    let (_, r) = s.get(&key, &q).await;
    assert_eq!(types(&r), ["cycling", "running"]);
    assert_eq!(r["pagination"]["total_count"], 2);
    s.import(&key, &user, &export::doc(&body_again())).await;
    let (_, r) = s.get(&key, &q).await;
    assert_eq!(
        types(&r),
        ["cycling", "running"],
        "a re-import does not bring it back"
    );
    // The history keeps the workout and records the deletion.
    let db = s.db.client().await;
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'RecordDeleted' AND payload->>'record_id' = $1",
            &[&walking],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let imported: i64 = db
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'WorkoutsRecorded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(imported, 2, "the second import recorded the workouts again");
    // Rebuilt from the log, the read model still hides it.
    s.db.run(&["projections", "rebuild", "workouts"]).await;
    let (_, r) = s.get(&key, &q).await;
    assert_eq!(types(&r), ["cycling", "running"]);
}

#[tokio::test]
async fn sleep_sessions_stages_naps_and_deletes() {
    let (s, key, user) = setup().await;
    let base = format!("/api/v1/users/{user}/events/sleep");
    let q = format!("{base}?start_date=2024-02-05&end_date=2024-02-07");
    let (st, r) = s.get(&key, &q).await;
    assert_eq!(st, 200, "{r}");
    let items = data(&r);
    assert_eq!(items.len(), 2);
    let (nap, night) = (&items[0], &items[1]);
    assert_eq!(nap["is_nap"], true);
    assert_eq!(nap["sleep_duration_seconds"].as_i64(), Some(2400));
    // An unstaged nap: no stage minutes to give, but its timeline is Apple's own.
    assert!(nap["stages"].is_null(), "{nap}");
    assert_eq!(nap["sleep_stage_intervals"][0]["stage"], "sleeping");
    assert_eq!(night["is_nap"], false);
    assert_eq!(night["start_time"], "2024-02-06T06:30:00+00:00");
    assert_eq!(night["end_time"], "2024-02-06T14:30:00+00:00");
    assert_eq!(night["zone_offset"], "-08:00");
    assert_eq!(night["duration_seconds"].as_i64(), Some(28800));
    assert_eq!(night["sleep_duration_seconds"].as_i64(), Some(25200));
    assert_eq!(night["efficiency_percent"], 87.5);
    assert_eq!(
        night["stages"],
        serde_json::json!({"awake_minutes": 0, "light_minutes": 180, "deep_minutes": 60, "rem_minutes": 180})
    );
    // In bed only where no stage is known: the overlapping intervals are clipped.
    let stages: Vec<(&str, &str, &str)> = night["sleep_stage_intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["stage"].as_str().unwrap(),
                i["start_time"].as_str().unwrap(),
                i["end_time"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            (
                "in_bed",
                "2024-02-06T06:30:00+00:00",
                "2024-02-06T07:00:00+00:00"
            ),
            (
                "light",
                "2024-02-06T07:00:00+00:00",
                "2024-02-06T10:00:00+00:00"
            ),
            (
                "deep",
                "2024-02-06T10:00:00+00:00",
                "2024-02-06T11:00:00+00:00"
            ),
            (
                "rem",
                "2024-02-06T11:00:00+00:00",
                "2024-02-06T14:00:00+00:00"
            ),
            (
                "in_bed",
                "2024-02-06T14:00:00+00:00",
                "2024-02-06T14:30:00+00:00"
            ),
        ]
    );
    // filter_by_priority with one source changes nothing.
    let (_, f) = s.get(&key, &format!("{q}&filter_by_priority=true")).await;
    assert_eq!(data(&f).len(), 2);

    let nap_id = nap["id"].as_str().unwrap();
    let (st, _) = call(
        s.req(Method::DELETE, &format!("{base}/{nap_id}"))
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 204);
    let (st, e) = call(
        s.req(Method::DELETE, &format!("{base}/{nap_id}"))
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(
        (st, e["detail"].as_str()),
        (404, Some("Sleep session not found"))
    );
    s.import(&key, &user, &export::doc(&body_again())).await;
    let (_, r) = s.get(&key, &q).await;
    assert_eq!(data(&r).len(), 1);
    assert_eq!(data(&r)[0]["is_nap"], false);
}

#[tokio::test]
async fn menstrual_cycles_answer_an_empty_envelope() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let base = format!("/api/v1/users/{user}/events/menstrual-cycles");
    // end_date is accepted and ignored.
    let (st, r) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-01-01&end_date=2000-01-01&limit=100"),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(data(&r).len(), 0);
    assert_eq!(r["pagination"]["total_count"], 0);
    assert_eq!(r["pagination"]["has_more"], false);
    assert_eq!(r["metadata"]["start_time"], "2024-01-01T00:00:00+00:00");
    let (st, _) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-01-01&end_date=2024-02-01&limit=101"),
        )
        .await;
    assert_eq!(st, 400);
    let (st, e) = call(
        s.req(Method::DELETE, &format!("{base}/{}", uuid::Uuid::new_v4()))
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(
        (st, e["detail"].as_str()),
        (404, Some("Menstrual cycle not found"))
    );
}
