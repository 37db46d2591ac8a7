//! The data lifecycle settings (`/api/v1/settings/archival`) and archival runs: old samples
//! become daily aggregates and leave the timeseries by whole TimescaleDB chunks, the counts
//! follow, and a rebuild from the log ends in the same state.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common;
use common::export::{self, quantity, steps};
use common::{call, wait_until, Server};

async fn put(s: &Server, jwt: &str, body: Value) -> (u16, Value) {
    call(
        s.req(Method::PUT, "/api/v1/settings/archival")
            .bearer_auth(jwt)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn settings_round_trip_within_the_contract_bounds() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let (status, body) = call(
        s.req(Method::GET, "/api/v1/settings/archival")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["settings"],
        json!({"archive_after_days": null, "delete_after_days": null})
    );
    assert_eq!(body["storage"]["growth_class"], "linear");
    assert!(
        body["storage"]["total_bytes"].as_i64().unwrap() > 0,
        "{body}"
    );

    let (status, body) = put(
        &s,
        &jwt,
        json!({"archive_after_days": 90, "delete_after_days": 730}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["settings"],
        json!({"archive_after_days": 90, "delete_after_days": 730})
    );
    assert_eq!(body["storage"]["growth_class"], "bounded");
    // An absent field is kept, null turns a step off.
    let (status, body) = put(&s, &jwt, json!({"delete_after_days": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["settings"],
        json!({"archive_after_days": 90, "delete_after_days": null})
    );
    assert_eq!(body["storage"]["growth_class"], "linear_efficient");
    let (_, body) = call(
        s.req(Method::GET, "/api/v1/settings/archival")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(
        body["settings"],
        json!({"archive_after_days": 90, "delete_after_days": null})
    );

    // Out of bounds or mistyped: 400 with a detail, and nothing changes.
    for bad in [
        json!({"archive_after_days": 0}),
        json!({"archive_after_days": 3651}),
        json!({"delete_after_days": 0}),
        json!({"delete_after_days": 7301}),
        json!({"archive_after_days": "ten"}),
        json!({"archive_after_days": 1.5}),
    ] {
        let (status, body) = put(&s, &jwt, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    let (_, body) = call(
        s.req(Method::GET, "/api/v1/settings/archival")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(
        body["settings"],
        json!({"archive_after_days": 90, "delete_after_days": null})
    );

    // Developer credentials only: an API key is refused.
    let key = s.api_key().await;
    let (status, _) = call(
        s.req(Method::PUT, "/api/v1/settings/archival")
            .header(common::KEY_HEADER, &key)
            .json(&json!({"archive_after_days": 5})),
    )
    .await;
    assert_eq!(status, 401);

    // Each change is an event of the log, naming the developer who made it.
    let client = s.db.client().await;
    let actors: Vec<String> = client
        .query(
            "SELECT metadata->>'actor' FROM events WHERE aggregate_type = 'Archival' \
             AND event_type = 'ArchivalSettingChanged' ORDER BY position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actors.len(), 2);
    assert!(
        actors.iter().all(|a| a.starts_with("developer:")),
        "{actors:?}"
    );
}

/// `2024-03-10 08:00:00 +0000` for `day` at `hour` UTC.
fn at(day: NaiveDate, hour: u32) -> String {
    format!("{day} {hour:02}:00:00 +0000")
}

/// Everything the samples read model holds, as comparable text.
async fn snapshot(client: &tokio_postgres::Client) -> Vec<String> {
    let mut out = vec![];
    for q in [
        "SELECT data_source_id::text || series_type || time::text || value::text FROM samples ORDER BY 1",
        "SELECT data_source_id::text || series_type || count::text || first_time::text || last_time::text \
           FROM sample_counts ORDER BY 1",
        "SELECT data_source_id::text || series_type || day::text || count::text || sum::text || min::text \
           || max::text || daily_total_count::text || daily_total_sum::text FROM sample_archive ORDER BY 1",
        "SELECT coalesce(archived_before::text, '-') || coalesce(live_deleted_before::text, '-') \
           || coalesce(aggregates_deleted_before::text, '-') || runs::text FROM archival_state",
    ] {
        for r in client.query(q, &[]).await.unwrap() {
            out.push(r.get(0));
        }
    }
    out
}

/// The chunks of a hypertable: (start, end) of each.
async fn chunks(
    client: &tokio_postgres::Client,
    table: &str,
) -> Vec<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    client
        .query(
            "SELECT range_start, range_end FROM timescaledb_information.chunks \
             WHERE hypertable_name = $1 ORDER BY range_start",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn run_and_wait(s: &Server, jwt: &str, runs: i64) {
    let (status, body) = call(
        s.req(Method::POST, "/api/v1/settings/archival/run")
            .bearer_auth(jwt),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "dispatched");
    assert!(body["task_id"].as_str().is_some(), "{body}");
    let client = s.db.client().await;
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        "the archival run",
        || {
            let client = &client;
            async move {
                client
                    .query_opt("SELECT 1 FROM archival_state WHERE runs >= $1", &[&runs])
                    .await
                    .unwrap()
                    .is_some()
            }
        },
    )
    .await;
    s.settle().await;
}

#[tokio::test]
async fn a_run_rolls_old_samples_into_daily_aggregates_and_drops_their_chunks() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let (key, user) = s.user().await;
    let today = Utc::now().date_naive();
    let day = |ago: i64| today - chrono::Duration::days(ago);
    // An old set (400 to 190 days ago: seven 30-day chunks and more) and a recent one.
    let mut records = vec![];
    for ago in (190..=400).chain(1..=5) {
        for hour in [2, 8, 14, 20] {
            records.push(quantity(
                "HeartRate",
                "count/min",
                50.0 + hour as f64,
                &at(day(ago), hour),
                &at(day(ago), hour),
                true,
            ));
        }
        records.push(steps(
            1000.0 + ago as f64,
            &at(day(ago), 10),
            &at(day(ago), 11),
            true,
        ));
    }
    s.import(&key, &user, &export::doc(&records.join("\n")))
        .await;

    let client = s.db.client().await;
    let cutoff = day(200).and_hms_opt(0, 0, 0).unwrap().and_utc();
    let count = |q: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(q, &[&cutoff])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let old = count("SELECT count(*) FROM samples WHERE time < $1").await;
    let recent = count("SELECT count(*) FROM samples WHERE time >= $1").await;
    assert_eq!(old, 200 * 5);
    assert_eq!(recent, 16 * 5);
    // What the archive must hold: the old samples' per-day aggregates.
    let expected: Vec<String> = client
        .query(
            "SELECT data_source_id::text || series_type || (time AT TIME ZONE 'UTC')::date::text || count(*)::text \
               || sum(value)::text || min(value)::text || max(value)::text \
             FROM samples WHERE time < $1 GROUP BY data_source_id, series_type, (time AT TIME ZONE 'UTC')::date ORDER BY 1",
            &[&cutoff],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(expected.len(), 200 * 2);
    let before_chunks = chunks(&client, "samples").await;
    let whole_old: Vec<_> = before_chunks
        .iter()
        .filter(|(_, end)| *end <= cutoff)
        .collect();
    assert!(whole_old.len() >= 6, "{before_chunks:?}");
    let steps_day = format!(
        "/api/v1/users/{user}/summaries/activity?start_date={}&end_date={}",
        day(300),
        day(300)
    );
    let (_, before_summary) = s.get(&key, &steps_day).await;

    let (status, body) = put(&s, &jwt, json!({"archive_after_days": 200})).await;
    assert_eq!(status, 200, "{body}");
    run_and_wait(&s, &jwt, 1).await;

    // Exactly the old samples left; the recent ones are untouched.
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE time < $1").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE time >= $1").await,
        recent
    );
    // By whole chunks: every chunk that ended by the cutoff is gone (not emptied), the others
    // are still there.
    let after_chunks = chunks(&client, "samples").await;
    assert!(
        after_chunks.iter().all(|(_, end)| *end > cutoff),
        "{after_chunks:?}"
    );
    let kept: Vec<_> = before_chunks
        .iter()
        .filter(|(_, end)| *end > cutoff)
        .cloned()
        .collect();
    assert_eq!(after_chunks, kept);
    // Their daily aggregates are kept.
    let archived: Vec<String> = client
        .query(
            "SELECT data_source_id::text || series_type || day::text || count::text || sum::text \
               || min::text || max::text FROM sample_archive ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(archived, expected);
    // The counts follow: they equal what the timeseries holds.
    let wrong: i64 = client
        .query_one(
            "SELECT count(*) FROM sample_counts c WHERE c.count <> \
               (SELECT count(*) FROM samples s WHERE s.data_source_id = c.data_source_id AND s.series_type = c.series_type)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0);
    let total: i64 = client
        .query_one("SELECT sum(count)::int8 FROM sample_counts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, recent);
    // The daily summary of an archived day still answers (the rollup is its own read model).
    let (status, after_summary) = s.get(&key, &steps_day).await;
    assert_eq!(status, 200);
    assert_eq!(after_summary, before_summary);
    // The storage estimate reflects it.
    let (_, body) = call(
        s.req(Method::GET, "/api/v1/settings/archival")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(body["storage"]["live_row_count"], recent);
    assert_eq!(body["storage"]["archive_row_count"], 400);
    // The dashboard counts the archived samples apart from the live ones.
    let points = data_points(&s, &jwt).await;
    assert_eq!(points, json!({"count": recent, "archived": old}));
    // The run is in the log, with the developer who asked for it.
    let actor: String = client
        .query_one(
            "SELECT metadata->>'actor' FROM events WHERE event_type = 'SamplesArchived'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(actor.starts_with("developer:"), "{actor}");

    // A rebuild from the log ends in the same state.
    let state = snapshot(&client).await;
    s.db.run(&["projections", "rebuild", "samples"]).await;
    assert_eq!(snapshot(&client).await, state);
    assert_eq!(data_points(&s, &jwt).await, points);

    // Retention: aggregates of days before the deletion cutoff go, live samples stay.
    let (status, body) = put(&s, &jwt, json!({"delete_after_days": 300})).await;
    assert_eq!(status, 200, "{body}");
    run_and_wait(&s, &jwt, 2).await;
    let oldest: NaiveDate = client
        .query_one("SELECT min(day) FROM sample_archive", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(oldest, day(300));
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE time >= $1").await,
        recent
    );
    // The retained aggregates' samples stay counted, the deleted ones' do not.
    let kept: i64 = client
        .query_one("SELECT sum(count)::int8 FROM sample_archive", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, (300 - 200) * 5);
    assert_eq!(
        data_points(&s, &jwt).await,
        json!({"count": recent, "archived": kept})
    );
    let state = snapshot(&client).await;
    s.db.run(&["projections", "rebuild", "samples"]).await;
    assert_eq!(snapshot(&client).await, state);
    assert_eq!(
        data_points(&s, &jwt).await,
        json!({"count": recent, "archived": kept})
    );
}

/// `/dashboard/stats`' `data_points`.
async fn data_points(s: &Server, jwt: &str) -> Value {
    let (status, body) = call(
        s.req(Method::GET, "/api/v1/dashboard/stats")
            .bearer_auth(jwt),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data_points"].clone()
}
