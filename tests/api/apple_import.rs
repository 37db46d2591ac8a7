//! The Apple Health import through its real entry points: HTTP (direct and signed-URL uploads)
//! and the CLI, against the real server and database.

use crate::common;

use common::{
    call, create_user, import_export, settle, upload_export, wait_import, Server, KEY_HEADER,
};
use reqwest::Method;
use serde_json::Value;

const SMALL: &str = include_str!("../fixtures/small_export.xml");

async fn timeseries(s: &Server, key: &str, user: &str, query: &str) -> Vec<Value> {
    let (status, body) = call(
        s.req(Method::GET, &format!("/api/v1/users/{user}/timeseries?start_time=2024-03-01&end_time=2024-04-01&limit=1000{query}"))
            .header(KEY_HEADER, key),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// A generated export and what importing it must find.
fn generated(size: &str, seed: u64) -> (Vec<u8>, Value) {
    let path = std::env::temp_dir().join(format!(
        "wearhouse-gen-{size}-{seed}-{}.xml",
        std::process::id()
    ));
    let out = std::process::Command::new(common::bin())
        .args([
            "generate",
            "apple-health",
            "--size",
            size,
            "--seed",
            &seed.to_string(),
            "-o",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    (bytes, serde_json::from_slice(&out.stdout).unwrap())
}

fn zip(name: &str, data: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    z.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut z, data).unwrap();
    z.finish().unwrap();
    buf.into_inner()
}

#[tokio::test]
async fn values_units_offsets_and_sources_reach_the_api() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let done = import_export(&s, &key, &user, "export.xml", SMALL.as_bytes().to_vec()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let counts = &done["counts"];
    assert_eq!(counts["per_series"]["heart_rate"], 2);
    assert_eq!(
        counts["unknown_types"]["HKQuantityTypeIdentifierMadeUpThing"],
        1
    );
    assert_eq!(counts["workouts"], 1);
    assert_eq!(counts["sleep_sessions"], 1);
    settle(&s.db).await;

    // Heart rate across the DST change keeps each sample's own offset.
    let hr = timeseries(&s, &key, &user, "&types=heart_rate").await;
    let got: Vec<(String, String, f64)> = hr
        .iter()
        .map(|i| {
            (
                i["timestamp"].as_str().unwrap().to_string(),
                i["zone_offset"].as_str().unwrap().to_string(),
                i["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{hr:?}");
    assert!(got[0].0.starts_with("2024-03-10T09:59:00"), "{got:?}");
    assert_eq!((got[0].1.as_str(), got[0].2), ("-08:00", 62.0));
    assert!(got[1].0.starts_with("2024-03-10T10:01:00"), "{got:?}");
    assert_eq!((got[1].1.as_str(), got[1].2), ("-07:00", 58.0));
    assert_eq!(hr[0]["unit"], "bpm");
    assert_eq!(hr[0]["source"]["provider"], "apple");
    assert_eq!(hr[0]["source"]["device_type"], "watch");

    // Units converted to the canonical ones.
    let one = |items: Vec<Value>| items[0]["value"].as_f64().unwrap();
    let weight = one(timeseries(&s, &key, &user, "&types=weight").await);
    assert!((weight - 70.0).abs() < 0.01, "{weight}");
    let spo2 = one(timeseries(&s, &key, &user, "&types=oxygen_saturation").await);
    assert!((spo2 - 97.0).abs() < 1e-9, "{spo2}");
    let glucose = one(timeseries(&s, &key, &user, "&types=blood_glucose").await);
    assert!((glucose - 99.09).abs() < 0.05, "{glucose}");
    let steps = timeseries(&s, &key, &user, "&types=steps").await;
    assert_eq!(steps[0]["zone_offset"], "+01:00");
    assert_eq!(steps[0]["is_daily_total"], false);

    // Each writer became a data source.
    let (status, sources) = call(
        s.req(Method::GET, &format!("/api/v1/users/{user}/data-sources"))
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = sources["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["original_source_name"].as_str())
        .collect();
    for expected in ["Ada’s Apple Watch", "Withings", "Dexcom G7", "Ada’s iPhone"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // The watch wrote some records with its device description and some without: two sources.
    let watch = sources["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["original_source_name"] == "Ada’s Apple Watch" && d["device_model"] == "Watch")
        .unwrap_or_else(|| panic!("{sources}"));
    assert_eq!(watch["software_version"], "10.3");

    // Workouts, sleep, characteristics landed in their read models.
    let db = s.db.client().await;
    let w = db
        .query_one("SELECT type, stats FROM workouts", &[])
        .await
        .unwrap();
    assert_eq!(w.get::<_, String>(0), "running");
    let stats: Value = w.get(1);
    assert_eq!(stats["energy_kcal"], 300.0);
    assert_eq!(stats["distance_m"], 5000.0);
    let sleep = db
        .query_one(
            "SELECT light_minutes, deep_minutes, rem_minutes, zone_offset FROM sleep_sessions",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            sleep.get::<_, f64>(0),
            sleep.get::<_, f64>(1),
            sleep.get::<_, f64>(2),
            sleep.get::<_, Option<i16>>(3)
        ),
        (150.0, 60.0, 210.0, Some(-420))
    );
    let me = db
        .query_one("SELECT birth_date::text, sex FROM personal_records", &[])
        .await
        .unwrap();
    assert_eq!(
        (me.get::<_, String>(0), me.get::<_, String>(1)),
        ("1990-05-01".to_string(), "female".to_string())
    );
    // The raw bytes were kept, byte for byte.
    let sha = done["sha256"].as_str().unwrap();
    // Awaited, never blocking: the in-process server must keep running (and release its
    // locks) while a command works on its database.
    let exported = tokio::process::Command::new(common::bin())
        .args(["raw", "export", sha])
        .env("DATABASE_URL", &s.db.url)
        .env("WEARHOUSE_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(exported.status.success());
    assert_eq!(exported.stdout, SMALL.as_bytes());
}

#[tokio::test]
async fn reimports_and_overlapping_exports_create_no_duplicates() {
    // Generated first: it blocks this thread, which the in-process server shares.
    let (data, expected) = generated("2MB", 7);
    let s = Server::start().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let first = import_export(&s, &key, &user, "export.xml", data.clone()).await;
    assert_eq!(first["status"], "completed", "{first}");
    // Per-type counts match what the file holds.
    assert_eq!(first["counts"]["per_series"], expected["per_series"]);
    assert_eq!(first["counts"]["unknown_types"], expected["unknown_types"]);
    assert_eq!(first["counts"]["workouts"], expected["workouts"]);
    assert_eq!(
        first["counts"]["activity_summaries"],
        expected["activity_summaries"]
    );
    settle(&s.db).await;
    let (status, summary) = call(
        s.req(Method::GET, &format!("/api/v1/users/{user}/summaries/data"))
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(status, 200);
    let stored: u64 = summary["series_type_counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(summary["total_data_points"].as_u64().unwrap(), stored);
    let db = s.db.client().await;
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let samples = count("SELECT count(*) FROM samples").await;
    let workouts = count("SELECT count(*) FROM workouts").await;
    let sleeps = count("SELECT count(*) FROM sleep_sessions").await;
    assert!(
        samples > 1000 && workouts > 0 && sleeps > 0,
        "{samples} {workouts} {sleeps}"
    );
    let stored: i64 = count("SELECT sum(count)::bigint FROM sample_counts").await;
    assert_eq!(stored, samples, "per-user counts match the timeseries");

    // The same file again: recognised, nothing re-parsed.
    let again = import_export(&s, &key, &user, "export.xml", data.clone()).await;
    assert_eq!(again["status"], "completed");
    assert_eq!(again["counts"]["duplicate_of"], first["id"]);
    // The same data in a zip (other bytes): parsed again, deduplicated on the sample key.
    let zipped = import_export(
        &s,
        &key,
        &user,
        "export.zip",
        zip("apple_health_export/export.xml", &data),
    )
    .await;
    assert_eq!(zipped["status"], "completed", "{zipped}");
    assert_eq!(zipped["counts"]["samples"], first["counts"]["samples"]);
    settle(&s.db).await;
    assert_eq!(count("SELECT count(*) FROM samples").await, samples);
    assert_eq!(count("SELECT count(*) FROM workouts").await, workouts);
    assert_eq!(count("SELECT count(*) FROM sleep_sessions").await, sleeps);
    assert_eq!(
        count("SELECT sum(count)::bigint FROM sample_counts").await,
        samples
    );

    // A newer export that overlaps: later values win, no extra rows for the overlap.
    let newer = SMALL.replace(r#"value="62""#, r#"value="64""#);
    import_export(&s, &key, &user, "newer.xml", SMALL.as_bytes().to_vec()).await;
    settle(&s.db).await;
    let before = count("SELECT count(*) FROM samples").await;
    import_export(&s, &key, &user, "newer2.xml", newer.into_bytes()).await;
    settle(&s.db).await;
    assert_eq!(count("SELECT count(*) FROM samples").await, before);
    let hr = timeseries(&s, &key, &user, "&types=heart_rate").await;
    let first_hr = hr
        .iter()
        .find(|i| {
            i["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2024-03-10T09:59")
        })
        .unwrap();
    assert_eq!(first_hr["value"], 64.0);
}

#[tokio::test]
async fn malformed_truncated_and_empty_files_fail_cleanly() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let truncated = &SMALL.as_bytes()[..SMALL.len() / 2];
    let malformed = SMALL.replace("</Workout>", "</Workuot>");
    for (name, bytes, expected) in [
        ("truncated.xml", truncated.to_vec(), "truncated"),
        ("malformed.xml", malformed.into_bytes(), "byte"),
        (
            "garbage.zip",
            b"PK\x03\x04 this is not a zip at all".to_vec(),
            "export",
        ),
        ("garbage.xml", b"\x00\x01\x02 not xml".to_vec(), "byte"),
    ] {
        let done = import_export(&s, &key, &user, name, bytes).await;
        assert_eq!(done["status"], "failed", "{name}: {done}");
        let error = done["error"].as_str().unwrap();
        assert!(error.to_lowercase().contains(expected), "{name}: {error}");
    }
    settle(&s.db).await;
    let db = s.db.client().await;
    let samples: i64 = db
        .query_one("SELECT count(*) FROM samples", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(samples, 0, "a failed import appends no data");
    let batches: i64 = db
        .query_one("SELECT count(*) FROM sample_batches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(batches, 0);
    // Every failed file was still kept raw, and its import has a history.
    let raws: i64 = db
        .query_one("SELECT count(*) FROM raw_payloads", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(raws, 4);
    let failed: i64 = db
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'ImportFailed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 4);
    let sync_failed: i64 = db
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'SyncRunFailed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sync_failed, 4);

    // An empty upload and a missing file field are refused at once.
    let (status, body) = upload_export(&s, &key, &user, "empty.xml", Vec::new()).await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (400, "The uploaded file is empty")
    );
    let (status, body) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/direct"),
        )
        .header(KEY_HEADER, &key)
        .multipart(reqwest::multipart::Form::new().text("other", "x")),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (400, "Missing multipart field 'file'")
    );
}

#[tokio::test]
async fn unknown_users_and_missing_credentials_are_refused() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) =
        upload_export(&s, &key, &unknown, "export.xml", SMALL.as_bytes().to_vec()).await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap().to_string()),
        (404, format!("User with ID: {unknown} not found."))
    );
    let user = create_user(&s, &key).await;
    let part = reqwest::multipart::Part::bytes(SMALL.as_bytes().to_vec()).file_name("export.xml");
    let (status, _) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/direct"),
        )
        .multipart(reqwest::multipart::Form::new().part("file", part)),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(s.req(
        Method::GET,
        &format!("/api/v1/users/{user}/timeseries?start_time=2024-01-01&end_time=2024-02-01"),
    ))
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        s.req(
            Method::GET,
            &format!("/api/v1/users/{user}/imports/{unknown}"),
        )
        .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn signed_upload_urls_are_single_use_size_limited_and_unforgeable() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let (status, grant) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/s3"),
        )
        .header(KEY_HEADER, &key)
        .json(&serde_json::json!({"filename": "my export.xml", "max_file_size": 16384})),
    )
    .await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["file_key"], format!("{user}/raw/my_export.xml"));
    assert_eq!(grant["expires_in"], 300);
    let url = grant["upload_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&s.url), "{url}");
    let post = |url: String, bytes: Vec<u8>| {
        let http = s.http.clone();
        async move {
            let part = reqwest::multipart::Part::bytes(bytes).file_name("export.xml");
            call(
                http.post(url).multipart(
                    reqwest::multipart::Form::new()
                        .text("key", "k")
                        .part("file", part),
                ),
            )
            .await
        }
    };
    // Over the granted size: refused, and the URL stays usable.
    let (status, _) = post(url.clone(), vec![b' '; 20000]).await;
    assert_eq!(status, 413);
    let (status, accepted) = post(url.clone(), SMALL.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{accepted}");
    let done = wait_import(&s, &key, &user, accepted["task_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    let (status, _) = post(url.clone(), SMALL.as_bytes().to_vec()).await;
    assert_eq!(status, 409, "a URL uploads once");
    let forged = format!("{}x", url);
    let (status, body) = post(forged, SMALL.as_bytes().to_vec()).await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (403, "Invalid or expired upload URL")
    );
    // Validation of the request itself.
    let (status, _) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/s3"),
        )
        .header(KEY_HEADER, &key)
        .json(&serde_json::json!({"expiration_seconds": 10})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_cli_imports_with_the_same_result() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let path = std::env::temp_dir().join(format!("wearhouse-cli-{}.xml", uuid::Uuid::new_v4()));
    std::fs::write(&path, SMALL).unwrap();
    let out =
        s.db.run(&[
            "import",
            "apple-health",
            path.to_str().unwrap(),
            "--user",
            &user,
        ])
        .await;
    let _ = std::fs::remove_file(&path);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["status"], "completed");
    assert_eq!(report["counts"]["per_series"]["heart_rate"], 2);
    settle(&s.db).await;
    assert_eq!(
        timeseries(&s, &key, &user, "&types=heart_rate").await.len(),
        2
    );
    // An unknown user is refused by the CLI too.
    // Awaited: a blocked thread would freeze the in-process server mid-transaction while the
    // command waits for the same checkpoint rows (a deadlock).
    let bad = tokio::process::Command::new(common::bin())
        .args([
            "import",
            "apple-health",
            "/dev/null",
            "--user",
            &uuid::Uuid::new_v4().to_string(),
        ])
        .env("DATABASE_URL", &s.db.url)
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not found"));
}

/// A generated export as a real iPhone writes it: every record of a device carries its own
/// HKDevice address, the phone and watch update their software mid-night, a third-party scale,
/// late-synced sleep records, naps, and cycling rides with the watch's distance series.
#[tokio::test]
async fn device_addresses_third_party_devices_and_rides_read_right() {
    // Generated first: it blocks this thread, which the in-process server shares.
    let (data, expected) = generated("3MB", 11);
    let s = Server::start().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let days = expected["activity_summaries"].as_u64().unwrap();
    assert!(days >= 8, "{days}");
    let done = import_export(&s, &key, &user, "export.xml", data).await;
    assert_eq!(done["status"], "completed", "{done}");
    settle(&s.db).await;

    // One data source per device, whatever its address or software version.
    let (status, sources) = s
        .get(&key, &format!("/api/v1/users/{user}/data-sources"))
        .await;
    assert_eq!(status, 200, "{sources}");
    let items = sources["items"].as_array().unwrap();
    let named = |name: &str| -> Vec<&Value> {
        items
            .iter()
            .filter(|d| d["original_source_name"] == name)
            .collect()
    };
    let watch = named("Anna’s Apple Watch");
    assert_eq!(watch.len(), 1, "{sources}");
    assert_eq!(watch[0]["device_model"], "Watch");
    assert_eq!(watch[0]["display_name"], "Apple - Watch");
    assert_eq!(watch[0]["device_type"], "watch");
    let phone = named("Anna’s iPhone");
    assert_eq!(phone.len(), 1, "{sources}");
    assert_eq!(phone[0]["device_model"], "iPhone");
    let acme = named("Acme Scale");
    assert_eq!(acme.len(), 1, "{sources}");
    assert_eq!(acme[0]["device_model"], "BS-200");
    assert_eq!(acme[0]["display_name"], "Acme - BS-200");
    assert_eq!(acme[0]["device_type"], "scale");
    // The export's nine writers, and the activity rings' own source.
    assert_eq!(items.len(), 10, "{sources}");
    assert_eq!(done["counts"]["sources"], 9, "{done}");
    let db = s.db.client().await;
    let row = db
        .query_one(
            "SELECT manufacturer, hardware FROM data_sources WHERE original_source_name = 'Anna’s Apple Watch'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("Apple Inc.".to_string(), "Watch6,1".to_string())
    );

    // One sleep session per night per device, naps once, none overlapping.
    let mut sessions: Vec<Value> = Vec::new();
    let (status, body) = s
        .get(
            &key,
            &format!("/api/v1/users/{user}/events/sleep?start_date=2023-12-30&end_date=2024-02-01&limit=100&filter_by_priority=true"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    sessions.extend(body["data"].as_array().unwrap().iter().cloned());
    assert!(body["pagination"]["has_more"] != true, "{body}");
    let naps = (0..days).filter(|n| n % 3 == 0).count();
    let watch_sessions: Vec<&Value> = sessions
        .iter()
        .filter(|x| x["source"]["device"] == "Watch")
        .collect();
    assert_eq!(
        watch_sessions.len(),
        days as usize + naps,
        "{:#?}",
        sessions
            .iter()
            .map(|x| (&x["start_time"], &x["end_time"], &x["source"]["device"]))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        watch_sessions
            .iter()
            .filter(|x| x["is_nap"] == true)
            .count(),
        naps
    );
    let mut spans: Vec<(String, String)> = sessions
        .iter()
        .map(|x| {
            (
                x["start_time"].as_str().unwrap().to_string(),
                x["end_time"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping sessions {w:?}");
    }
    // Every night holds all its stages, the late-synced last one included.
    for x in watch_sessions.iter().filter(|x| x["is_nap"] == false) {
        let total = x["duration_seconds"].as_f64().unwrap();
        assert!(total > 6.0 * 3600.0, "{x}");
    }

    // Each workout once, under the watch's one source.
    let (status, all) = s
        .get(
            &key,
            &format!("/api/v1/users/{user}/events/workouts?start_date=2023-12-30&end_date=2024-02-01&limit=100"),
        )
        .await;
    assert_eq!(status, 200, "{all}");
    let workouts = all["data"].as_array().unwrap();
    assert_eq!(
        workouts.len() as u64,
        expected["workouts"].as_u64().unwrap(),
        "{all}"
    );
    assert!(
        workouts.iter().all(|w| w["source"]["device"] == "Watch"),
        "{all}"
    );

    // Daily distance is the walking and running distance, not the ride's 27.9 km. Day 2
    // (2024-01-03, -08:00) has a cycling workout.
    let (status, w) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/events/workouts?start_date=2024-01-03&end_date=2024-01-05"
            ),
        )
        .await;
    assert_eq!(status, 200, "{w}");
    let ride = w["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "cycling")
        .unwrap_or_else(|| panic!("{w}"));
    assert!(
        (ride["distance_meters"].as_f64().unwrap() - 27_900.0).abs() < 1.0,
        "{ride}"
    );
    let walked: f64 = timeseries_range(
        &s,
        &key,
        &user,
        "2024-01-03T08:00:00Z",
        "2024-01-04T08:00:00Z",
        "distance_walking_running",
    )
    .await
    .iter()
    .map(|i| i["value"].as_f64().unwrap())
    .sum();
    assert!(walked > 1000.0 && walked < 27_900.0, "{walked}");
    let (status, a) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{user}/summaries/activity?start_date=2024-01-03&end_date=2024-01-04"
            ),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    let distance = a["data"][0]["distance_meters"].as_f64().unwrap();
    assert!((distance - walked).abs() < 0.5, "{distance} vs {walked}");
}

async fn timeseries_range(
    s: &Server,
    key: &str,
    user: &str,
    start: &str,
    end: &str,
    types: &str,
) -> Vec<Value> {
    let (status, body) = s
        .get(
            key,
            &format!("/api/v1/users/{user}/timeseries?start_time={start}&end_time={end}&types={types}&limit=1000"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["pagination"]["has_more"] != true, "{body}");
    body["data"].as_array().unwrap().clone()
}
