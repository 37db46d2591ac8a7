//! The hostile-input corpus: malformed path ids, query values, JSON bodies, headers,
//! credentials, webhook deliveries, XML and zip uploads, generated route by route. Each must be
//! answered with a 4xx `{"detail": ...}` (an upload may instead be accepted and then fail with a
//! clear message), nothing may be partially written, and the server's memory stays bounded.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The number of cases; README's Security section states it.
const CORPUS_SIZE: usize = 324;

enum Body {
    None,
    Json(Vec<u8>),
    Form(Vec<(String, String)>),
    Raw(&'static str, Vec<u8>),
}

struct Case {
    name: String,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    /// Sent with the valid API key unless false.
    with_key: bool,
    body: Body,
}

fn case(name: impl Into<String>, method: Method, path: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        method,
        path: path.into(),
        headers: vec![],
        with_key: true,
        body: Body::None,
    }
}

/// Malformed ids for `{user_id}`-like path segments (already percent-encoded where needed).
fn bad_ids() -> Vec<String> {
    vec![
        "not-a-uuid".into(),
        "123".into(),
        "%00".into(),
        "%27%20OR%201%3D1%20--".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
        "a".repeat(4000),
        "00000000-0000-0000-0000-00000000000g".into(),
        "%F0%9F%92%A5".into(),
        "%FF%FE".into(),
        "00000000-0000-0000-0000-000000000000".into(),
    ]
}

fn bad_query_values() -> Vec<String> {
    vec![
        "garbage".into(),
        "9999999-01-01".into(),
        "2026-13-01".into(),
        "2026-02-30T25:61:00Z".into(),
        "%00".into(),
        "1e309".into(),
        "x".repeat(3000),
        "%27%3B%20DROP%20TABLE%20events%3B--".into(),
    ]
}

fn corpus(user: &str) -> Vec<Case> {
    let mut out = Vec::new();
    // Path ids, on every route taking a user id (and the ids under it).
    let user_routes: &[(&str, &str)] = &[
        ("GET", "/api/v1/users/{}"),
        ("PATCH", "/api/v1/users/{}"),
        ("DELETE", "/api/v1/users/{}"),
        ("GET", "/api/v1/users/{}/timeseries?start_time=2026-01-01T00:00:00Z&end_time=2026-01-02T00:00:00Z"),
        ("GET", "/api/v1/users/{}/events/workouts?start_date=2026-01-01&end_date=2026-01-02"),
        ("GET", "/api/v1/users/{}/events/sleep?start_date=2026-01-01&end_date=2026-01-02"),
        ("GET", "/api/v1/users/{}/summaries/activity?start_date=2026-01-01&end_date=2026-01-02"),
        ("GET", "/api/v1/users/{}/summaries/sleep?start_date=2026-01-01&end_date=2026-01-02"),
        ("GET", "/api/v1/users/{}/health-scores?start_date=2026-01-01&end_date=2026-01-02"),
        ("GET", "/api/v1/users/{}/data-sources"),
        ("GET", "/api/v1/users/{}/connections"),
        ("GET", "/api/v1/users/{}/sync/runs"),
    ];
    for (m, route) in user_routes {
        for id in bad_ids() {
            let mut c = case(
                format!("{m} {route} id={}", &id[..id.len().min(24)]),
                Method::from_bytes(m.as_bytes()).unwrap(),
                route.replace("{}", &id),
            );
            if *m == "PATCH" {
                c.body = Body::Json(br#"{"first_name":"x"}"#.to_vec());
            }
            out.push(c);
        }
    }
    // Ids under a real user.
    for sub in ["events/workouts", "events/sleep", "imports"] {
        for id in bad_ids().into_iter().take(5) {
            out.push(case(
                format!("GET {sub}/id={}", &id[..id.len().min(24)]),
                Method::GET,
                format!("/api/v1/users/{user}/{sub}/{id}"),
            ));
        }
    }
    // Query values.
    let q_routes = [
        ("timeseries", "start_time", "end_time", "&types=heart_rate"),
        ("events/workouts", "start_date", "end_date", ""),
        ("summaries/activity", "start_date", "end_date", ""),
    ];
    for (route, start, end, extra) in q_routes {
        for v in bad_query_values() {
            out.push(case(
                format!("query {route} {start}={}", &v[..v.len().min(24)]),
                Method::GET,
                format!("/api/v1/users/{user}/{route}?{start}={v}&{end}=2026-01-02{extra}"),
            ));
        }
    }
    for v in ["-1", "0", "99999999999999999999", "abc", "NaN", "1.5"] {
        out.push(case(
            format!("query limit={v}"),
            Method::GET,
            format!("/api/v1/users/{user}/events/workouts?start_date=2026-01-01&end_date=2026-01-02&limit={v}"),
        ));
        out.push(case(
            format!("query users limit={v}"),
            Method::GET,
            format!("/api/v1/users?limit={v}"),
        ));
    }
    for v in ["bogus", "2min", "%00", ""] {
        out.push(case(
            format!("query resolution={v}"),
            Method::GET,
            format!("/api/v1/users/{user}/timeseries?start_time=2026-01-01T00:00:00Z&end_time=2026-01-02T00:00:00Z&types=heart_rate&resolution={v}"),
        ));
    }
    for v in ["not-a-cursor", "%00%00", "eyJhIjoxfQ", "-1"] {
        out.push(case(
            format!("query cursor={v}"),
            Method::GET,
            format!("/api/v1/users/{user}/events/workouts?start_date=2026-01-01&end_date=2026-01-02&cursor={v}"),
        ));
    }
    // JSON bodies.
    let mut deep = "[".repeat(100_000);
    deep.push_str(&"]".repeat(100_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", b"{".to_vec()),
        ("array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("array field", br#"{"first_name": ["a"], "refresh_token": ["a"], "filename": ["a"]}"#.to_vec()),
        ("object field", br#"{"email": {"$gt": ""}, "refresh_token": {"$gt": ""}, "filename": {"$gt": ""}}"#.to_vec()),
        ("NUL character", br#"{"first_name": "a\u0000b", "refresh_token": "rt-\u0000", "filename": "x\u0000.xml"}"#.to_vec()),
        ("trailing garbage", br#"{"first_name": "a"} xyz"#.to_vec()),
        ("invalid utf-8", b"{\"first_name\": \"\xff\xfe\"}".to_vec()),
        ("NaN", br#"{"first_name": NaN}"#.to_vec()),
        ("deep nesting", deep.into_bytes()),
        ("bare words", b"hello".to_vec()),
        ("empty", Vec::new()),
    ];
    let json_routes = [
        (Method::POST, "/api/v1/users".to_string()),
        (Method::PATCH, format!("/api/v1/users/{user}")),
        (Method::POST, "/api/v1/token/refresh".to_string()),
        (
            Method::POST,
            format!("/api/v1/users/{user}/import/apple/xml/s3"),
        ),
    ];
    for (m, route) in &json_routes {
        for (name, b) in &bodies {
            let mut c = case(format!("json {m} {route} {name}"), m.clone(), route.clone());
            c.body = Body::Json(b.clone());
            out.push(c);
        }
    }
    // NUL characters, which no text column can hold.
    for (m, route, b) in [
        (
            Method::POST,
            "/api/v1/developer/api-keys".to_string(),
            json!({"name": "k\u{0}"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{user}"),
            json!({"last_name": "\u{0}"}),
        ),
        (
            Method::POST,
            "/api/v1/users".to_string(),
            json!({"external_user_id": "e\u{0}"}),
        ),
    ] {
        let mut c = case(format!("NUL {m} {route}"), m, route);
        c.body = Body::Json(serde_json::to_vec(&b).unwrap());
        out.push(c);
    }
    // Content types that lie.
    for (ct, b) in [
        ("text/plain", br#"{"first_name":"x"}"#.to_vec()),
        ("application/xml", b"<user/>".to_vec()),
        ("multipart/form-data", b"--x\r\n".to_vec()),
        ("application/octet-stream", vec![0u8; 64]),
        ("application/zip", b"PK\x03\x04".to_vec()),
    ] {
        let mut c = case(format!("content-type {ct}"), Method::POST, "/api/v1/users");
        c.body = Body::Raw(ct, b);
        out.push(c);
    }
    // Presign bodies out of range.
    for b in [
        json!({"expiration_seconds": 1}),
        json!({"expiration_seconds": 999999}),
        json!({"max_file_size": 1}),
        json!({"max_file_size": -5}),
        json!({"max_file_size": 1u64 << 62}),
        json!({"filename": "x".repeat(500)}),
    ] {
        let mut c = case(
            format!("presign {b}"),
            Method::POST,
            format!("/api/v1/users/{user}/import/apple/xml/s3"),
        );
        c.body = Body::Json(serde_json::to_vec(&b).unwrap());
        out.push(c);
    }
    // Credentials in headers.
    let jwt_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAiLCJleHAiOjk5OTk5OTk5OTl9.";
    let jwt_other_key = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAiLCJleHAiOjk5OTk5OTk5OTl9.c2lnbmF0dXJl";
    let long_key = format!("sk-{}", "a".repeat(8000));
    let header_cases: Vec<(&str, String)> = vec![
        ("x-open-wearables-api-key", String::new()),
        ("x-open-wearables-api-key", "sk-".into()),
        ("x-open-wearables-api-key", long_key.clone()),
        ("x-open-wearables-api-key", "' OR 1=1 --".into()),
        (
            "x-open-wearables-api-key",
            "sk-00000000000000000000000000000000".into(),
        ),
        ("x-open-wearables-api-key", "Bearer sk-x".into()),
        ("authorization", "Bearer".into()),
        ("authorization", "Bearer ".into()),
        ("authorization", "Basic YWRtaW46YWRtaW4=".into()),
        ("authorization", format!("Bearer {jwt_none}")),
        ("authorization", format!("Bearer {jwt_other_key}")),
        ("authorization", "Bearer a.b.c".into()),
        ("authorization", format!("Bearer {}", "x".repeat(8000))),
        ("authorization", "bearer sk-0123".into()),
    ];
    for route in [
        "/api/v1/users",
        "/api/v1/developer/api-keys",
        "/api/v1/auth/me",
    ] {
        for (h, v) in &header_cases {
            let mut c = case(
                format!("header {route} {h}={}", &v[..v.len().min(20)]),
                Method::GET,
                route,
            );
            c.with_key = false;
            c.headers.push((h.to_string(), v.clone()));
            out.push(c);
        }
    }
    // Sign-in credentials.
    let creds: Vec<(String, String)> = vec![
        (String::new(), String::new()),
        (ADMIN_EMAIL.into(), String::new()),
        (String::new(), ADMIN_PASSWORD.into()),
        ("' OR 1=1 --".into(), "x".into()),
        (ADMIN_EMAIL.into(), "x".repeat(5000)),
        ("a".repeat(5000), "password".into()),
        (format!("{ADMIN_EMAIL}\0"), ADMIN_PASSWORD.into()),
        (ADMIN_EMAIL.to_uppercase(), "wrong".into()),
        ("admin@test.local ".into(), "test-password-2".into()),
        ("%00".into(), "%00".into()),
    ];
    for (u, p) in creds {
        let mut c = case(
            format!("login {}", &u[..u.len().min(20)]),
            Method::POST,
            "/api/v1/auth/login",
        );
        c.with_key = false;
        c.body = Body::Form(vec![("username".into(), u), ("password".into(), p)]);
        out.push(c);
    }
    for b in [
        json!({"refresh_token": ""}),
        json!({"refresh_token": "rt-0000"}),
        json!({"refresh_token": "x".repeat(5000)}),
    ] {
        let mut c = case("refresh token", Method::POST, "/api/v1/token/refresh");
        c.with_key = false;
        c.body = Body::Json(serde_json::to_vec(&b).unwrap());
        out.push(c);
    }
    // Webhook deliveries: unsigned, badly signed, unknown provider, garbage.
    for p in ["garmin", "whoop", "oura", "nope"] {
        for (name, b) in [
            ("garbage", b"\x00\x01\x02".to_vec()),
            ("json", br#"{"deregistrations":[{"userId":"u"}]}"#.to_vec()),
            ("empty", Vec::new()),
        ] {
            let mut c = case(
                format!("webhook {p} {name}"),
                Method::POST,
                format!("/api/v1/providers/{p}/webhooks"),
            );
            c.with_key = false;
            c.headers.push(("x-whoop-signature".into(), "AAAA".into()));
            c.headers.push(("x-oura-signature".into(), "00".into()));
            c.headers
                .push(("x-oura-timestamp".into(), "nonsense".into()));
            c.body = Body::Raw("application/json", b);
            out.push(c);
        }
    }
    // Signed upload URLs that are not.
    for t in ["", "x", "a.b", "eyJ1c2VyIjoiMDAwIn0.00", "%00.%00"] {
        let mut c = case(
            format!("upload token {t}"),
            Method::POST,
            format!("/api/v1/uploads/{t}x"),
        );
        c.with_key = false;
        c.body = Body::Raw("multipart/form-data; boundary=b", b"--b--\r\n".to_vec());
        out.push(c);
    }
    out
}

async fn send(s: &Server, key: &str, c: &Case) -> (u16, Value) {
    let mut rb = s
        .req(c.method.clone(), &c.path)
        .timeout(Duration::from_secs(60));
    if c.with_key {
        rb = rb.header(KEY_HEADER, key);
    }
    for (h, v) in &c.headers {
        rb = rb.header(h.as_str(), v.as_str());
    }
    rb = match &c.body {
        Body::None => rb,
        Body::Json(b) => rb
            .header("content-type", "application/json")
            .body(b.clone()),
        Body::Form(f) => rb.form(f),
        Body::Raw(ct, b) => rb.header("content-type", *ct).body(b.clone()),
    };
    match rb.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// Uploads that are not Apple Health exports: refused, or accepted and then failed with a
/// message.
fn bad_uploads() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let zip_of = |name: &str, data: &[u8]| {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            w.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut w, data).unwrap();
            w.finish().unwrap();
        }
        buf.into_inner()
    };
    vec![
        (
            "unclosed xml",
            "export.xml",
            b"<HealthData><Record type=\"x\"".to_vec(),
        ),
        ("binary as xml", "export.xml", vec![0xffu8; 4096]),
        (
            "not health data",
            "export.xml",
            b"<?xml version=\"1.0\"?><html><body/></html>".to_vec(),
        ),
        (
            "zip garbage",
            "export.zip",
            b"PK\x03\x04garbage-garbage".to_vec(),
        ),
        (
            "zip without export",
            "export.zip",
            zip_of("readme.txt", b"hello"),
        ),
        (
            "zip with broken xml",
            "export.zip",
            zip_of("apple_health_export/export.xml", b"<HealthData><Record"),
        ),
        ("empty", "export.xml", Vec::new()),
    ]
}

#[tokio::test]
async fn hostile_inputs_get_4xx_details_and_write_nothing() {
    // The binary: the server's own peak memory is checked at the end.
    let s = Server::start_process(common::TestDb::new().await, &[]).await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let db = s.db.client().await;
    let counts = || async {
        let mut m = BTreeMap::new();
        for (name, sql) in [
            (
                "non-import events",
                "SELECT count(*) FROM events WHERE aggregate_type NOT IN ('Import', 'SyncRun')",
            ),
            ("users", "SELECT count(*) FROM users"),
            ("api keys", "SELECT count(*) FROM api_keys"),
            ("sample batches", "SELECT count(*) FROM sample_batches"),
            ("samples", "SELECT count(*) FROM samples"),
            (
                "webhook payloads",
                "SELECT count(*) FROM raw_payloads WHERE kind = 'webhook'",
            ),
        ] {
            let n: i64 = db.query_one(sql, &[]).await.unwrap().get(0);
            m.insert(name.to_string(), n);
        }
        for r in db
            .query(
                "SELECT aggregate_type || '/' || event_type, count(*) FROM events GROUP BY 1",
                &[],
            )
            .await
            .unwrap()
        {
            m.insert(format!("events {}", r.get::<_, String>(0)), r.get(1));
        }
        m
    };
    let before = counts().await;

    let cases = corpus(&user);
    let mut failures = Vec::new();
    for c in &cases {
        let (status, body) = send(&s, &key, c).await;
        let ok = (400..500).contains(&status) && body["detail"].is_string();
        if !ok {
            failures.push(format!(
                "{}: {status} {}",
                c.name,
                body.to_string().chars().take(200).collect::<String>()
            ));
        }
    }

    let uploads = bad_uploads();
    for (name, file, bytes) in &uploads {
        let (status, body) = upload_export(&s, &key, &user, file, bytes.clone()).await;
        if (400..500).contains(&status) && body["detail"].is_string() {
            continue;
        }
        if status != 200 {
            failures.push(format!("upload {name}: {status} {body}"));
            continue;
        }
        let task = body["task_id"].as_str().unwrap();
        let done = wait_import(&s, &key, &user, task).await;
        let message = done["error"].as_str().unwrap_or("");
        if done["status"] != "failed" || message.is_empty() {
            failures.push(format!("upload {name}: import ended {done}"));
        }
    }
    let total = cases.len() + uploads.len();
    println!("hostile corpus: {total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total} cases misanswered:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total, CORPUS_SIZE, "update CORPUS_SIZE and the README");

    // Settle (no import running, every read model caught up), then nothing was written but
    // failed-import records.
    common::settle(&s.db).await;
    // A failed import is recorded (its raw bytes, its start and failure, and its sync run's);
    // nothing else may change.
    let failed_import_records = [
        "events Import/ImportStarted",
        "events Import/RawPayloadReceived",
        "events Import/ImportFailed",
        "events SyncRun/SyncRunStarted",
        "events SyncRun/SyncRunFailed",
    ];
    let keep = |m: BTreeMap<String, i64>| -> BTreeMap<String, i64> {
        m.into_iter()
            .filter(|(k, _)| !failed_import_records.contains(&k.as_str()))
            .collect()
    };
    let after = counts().await;
    assert_eq!(keep(before), keep(after), "partial writes");
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let peak: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    assert!(peak / 1024 < 300, "server peak RSS {} MiB", peak / 1024);
}
