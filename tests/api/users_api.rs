//! Black-box tests of `/api/v1/users` against the real server and database.

use crate::common;

use common::{call, Server};
use reqwest::Method;
use serde_json::{json, Value};

async fn create(s: &Server, key: &str, body: Value) -> Value {
    let (status, user) = call(
        s.req(Method::POST, "/api/v1/users")
            .header("X-Open-Wearables-API-Key", key)
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    user
}

async fn list(s: &Server, key: &str, query: &str) -> (u16, Value) {
    call(
        s.req(Method::GET, &format!("/api/v1/users{query}"))
            .header("X-Open-Wearables-API-Key", key),
    )
    .await
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["first_name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn create_get_patch_delete_round_trip() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let jwt = s.login().await;
    let user = create(&s, &key, json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "external_user_id": "ext-1"})).await;
    let id = user["id"].as_str().unwrap();
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["has_active_connection"], false);
    assert!(user["created_at"].as_str().unwrap().starts_with("20"));

    let (status, got) = call(
        s.req(Method::GET, &format!("/api/v1/users/{id}"))
            .header("X-Open-Wearables-API-Key", &key),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got, user);

    // PATCH: absent fields stay, null clears, values change.
    let (status, patched) = call(
        s.req(Method::PATCH, &format!("/api/v1/users/{id}"))
            .bearer_auth(&jwt)
            .json(&json!({"last_name": null, "email": "ada@lovelace.org"})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["first_name"], "Ada");
    assert_eq!(patched["last_name"], Value::Null);
    assert_eq!(patched["email"], "ada@lovelace.org");

    // PATCH and DELETE are developer-only, as in the contract.
    let (status, body) = call(
        s.req(Method::DELETE, &format!("/api/v1/users/{id}"))
            .header("X-Open-Wearables-API-Key", &key),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Could not validate credentials")
    );

    let (status, deleted) = call(
        s.req(Method::DELETE, &format!("/api/v1/users/{id}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["id"], id);
    let (status, body) = call(
        s.req(Method::GET, &format!("/api/v1/users/{id}"))
            .header("X-Open-Wearables-API-Key", &key),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], format!("User with ID: {id} not found."));
    let (status, _) = call(
        s.req(Method::DELETE, &format!("/api/v1/users/{id}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn list_filters_sorts_and_paginates() {
    let s = Server::start().await;
    let key = s.api_key().await;
    for (first, last, email) in [
        ("Ada", "Lovelace", "ada@example.com"),
        ("Alan", "Turing", "alan@example.com"),
        ("Grace", "Hopper", "grace@navy.mil"),
        ("Edsger", "Dijkstra", "ewd@example.com"),
        ("Barbara", "Liskov", "liskov@mit.edu"),
    ] {
        create(
            &s,
            &key,
            json!({"first_name": first, "last_name": last, "email": email}),
        )
        .await;
    }
    let (status, page) = list(&s, &key, "").await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 5);
    assert_eq!(
        (
            page["page"].clone(),
            page["limit"].clone(),
            page["pages"].clone()
        ),
        (json!(1), json!(20), json!(1))
    );
    // Default order: newest first.
    assert_eq!(names(&page), ["Barbara", "Edsger", "Grace", "Alan", "Ada"]);

    let (_, page) = list(&s, &key, "?sort_by=first_name&sort_order=asc").await;
    assert_eq!(names(&page), ["Ada", "Alan", "Barbara", "Edsger", "Grace"]);
    let (_, page) = list(&s, &key, "?sort_by=last_name&sort_order=desc").await;
    assert_eq!(names(&page), ["Alan", "Ada", "Barbara", "Grace", "Edsger"]);
    let (_, page) = list(&s, &key, "?sort_by=email&sort_order=asc").await;
    assert_eq!(names(&page), ["Ada", "Alan", "Edsger", "Grace", "Barbara"]);
    let (_, page) = list(&s, &key, "?sort_by=created_at&sort_order=asc").await;
    assert_eq!(names(&page), ["Ada", "Alan", "Grace", "Edsger", "Barbara"]);

    // search: partial, case-insensitive, over first, last name and e-mail.
    let (_, page) = list(&s, &key, "?search=AL").await;
    assert_eq!(names(&page), ["Alan"]);
    let (_, page) = list(
        &s,
        &key,
        "?search=example.com&sort_by=first_name&sort_order=asc",
    )
    .await;
    assert_eq!(names(&page), ["Ada", "Alan", "Edsger"]);
    let (_, page) = list(&s, &key, "?search=%25").await;
    assert_eq!(
        page["total"], 0,
        "a % in the search is literal, not a wildcard"
    );
    // email: exact match.
    let (_, page) = list(&s, &key, "?email=grace@navy.mil").await;
    assert_eq!(names(&page), ["Grace"]);
    let (_, page) = list(&s, &key, "?email=grace@navy").await;
    assert_eq!(page["total"], 0);

    // Pages.
    let (_, p1) = list(
        &s,
        &key,
        "?limit=2&page=1&sort_by=first_name&sort_order=asc",
    )
    .await;
    let (_, p2) = list(
        &s,
        &key,
        "?limit=2&page=2&sort_by=first_name&sort_order=asc",
    )
    .await;
    let (_, p3) = list(
        &s,
        &key,
        "?limit=2&page=3&sort_by=first_name&sort_order=asc",
    )
    .await;
    assert_eq!(
        (names(&p1), names(&p2), names(&p3)),
        (
            vec!["Ada".to_string(), "Alan".into()],
            vec!["Barbara".to_string(), "Edsger".into()],
            vec!["Grace".to_string()]
        )
    );
    assert_eq!(
        (
            p1["pages"].clone(),
            p1["has_next"].clone(),
            p1["has_prev"].clone()
        ),
        (json!(3), json!(true), json!(false))
    );
    assert_eq!(
        (p3["has_next"].clone(), p3["has_prev"].clone()),
        (json!(false), json!(true))
    );
    let (_, p9) = list(&s, &key, "?limit=2&page=9").await;
    assert_eq!(p9["items"], json!([]));
}

#[tokio::test]
async fn bad_input_is_400_with_detail() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let jwt = s.login().await;
    for query in [
        "?limit=0",
        "?limit=101",
        "?page=0",
        "?sort_by=password",
        "?sort_order=up",
        "?limit=abc",
    ] {
        let (status, body) = list(&s, &key, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{query}: {body}"
        );
    }
    let post = |body: &'static str| {
        s.req(Method::POST, "/api/v1/users")
            .header("X-Open-Wearables-API-Key", &key)
            .header("content-type", "application/json")
            .body(body)
    };
    for body in [
        r#"{"email": "#,
        r#"{"email": "not-an-email"}"#,
        // A number or boolean is no string: not stored as its text.
        r#"{"external_user_id": false}"#,
        r#"{"first_name": 5}"#,
        "[]",
        "null",
    ] {
        let (status, resp) = call(post(body)).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert!(resp["detail"].is_string(), "{body}: {resp}");
    }
    let long = "x".repeat(101);
    let (status, resp) = call(
        s.req(Method::POST, "/api/v1/users")
            .header("X-Open-Wearables-API-Key", &key)
            .json(&json!({"first_name": long})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        resp["detail"],
        "first_name: String should have at most 100 characters"
    );
    // external_user_id is unique.
    create(&s, &key, json!({"external_user_id": "same"})).await;
    let (status, resp) = call(
        s.req(Method::POST, "/api/v1/users")
            .header("X-Open-Wearables-API-Key", &key)
            .json(&json!({"external_user_id": "same"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(resp["detail"]
        .as_str()
        .unwrap()
        .starts_with("User entity already exists"));
    // A huge body is refused from its declared length, before it is read or parsed.
    let addr = s.url.trim_start_matches("http://").to_string();
    let k = key.clone();
    let raw = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nX-Open-Wearables-API-Key: {k}\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\nConnection: close\r\n\r\n{{\"first_name\": \""
        );
        tcp.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains(r#"{"detail":"#), "{raw}");
    // A chunked body without a declared length is cut off at the limit too. The server stops
    // reading mid-body and closes, so this connection must not go back to the client's pool
    // (the next request would race the close).
    let chunks =
        futures::stream::iter((0..12).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024 * 1024])));
    let r = s
        .req(Method::POST, "/api/v1/users")
        .header("X-Open-Wearables-API-Key", &key)
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    // Malformed and unknown ids.
    let (status, _) = call(
        s.req(Method::GET, "/api/v1/users/not-a-uuid")
            .header("X-Open-Wearables-API-Key", &key),
    )
    .await;
    assert_eq!(status, 400);
    let unknown = uuid::Uuid::new_v4();
    let (status, resp) = call(
        s.req(Method::PATCH, &format!("/api/v1/users/{unknown}"))
            .bearer_auth(&jwt)
            .json(&json!({"first_name": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        resp["detail"],
        format!("User with ID: {unknown} not found.")
    );
    let (status, resp) = call(s.req(Method::GET, "/api/v1/nothing-here")).await;
    assert_eq!(
        (status, resp["detail"].as_str().unwrap()),
        (404, "Not Found")
    );
}

#[tokio::test]
async fn event_log_holds_one_event_per_change_in_order() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let jwt = s.login().await;
    let user = create(&s, &key, json!({"first_name": "Ada"})).await;
    let id = user["id"].as_str().unwrap().to_string();
    for name in ["B", "C"] {
        let (status, _) = call(
            s.req(Method::PATCH, &format!("/api/v1/users/{id}"))
                .bearer_auth(&jwt)
                .json(&json!({"first_name": name})),
        )
        .await;
        assert_eq!(status, 200);
    }
    // A no-op change records nothing.
    let (status, _) = call(
        s.req(Method::PATCH, &format!("/api/v1/users/{id}"))
            .bearer_auth(&jwt)
            .json(&json!({"first_name": "C"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        s.req(Method::DELETE, &format!("/api/v1/users/{id}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 200);

    let db = s.db.client().await;
    let rows = db
        .query(
            "SELECT sequence, event_type, payload, metadata, user_id::text FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 ORDER BY position",
            &[&id],
        )
        .await
        .unwrap();
    let kinds: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        kinds,
        [
            (1, "UserCreated".to_string()),
            (2, "UserUpdated".into()),
            (3, "UserUpdated".into()),
            (4, "UserDeleted".into())
        ]
    );
    let second: Value = rows[1].get(2);
    assert_eq!(second["changes"]["first_name"], "B");
    let meta: Value = rows[3].get(3);
    assert!(
        meta["actor"].as_str().unwrap().starts_with("developer:"),
        "{meta}"
    );
    assert!(rows
        .iter()
        .all(|r| r.get::<_, Option<String>>(4).as_deref() == Some(id.as_str())));
    // Positions and transaction ids are filled and increase.
    let pos = db
        .query("SELECT position, tx::text::bigint FROM events WHERE aggregate_id = $1 ORDER BY sequence", &[&id])
        .await
        .unwrap();
    let positions: Vec<i64> = pos.iter().map(|r| r.get(0)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[tokio::test]
async fn rebuilding_the_users_read_model_gives_identical_answers() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let jwt = s.login().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let u = create(
            &s,
            &key,
            json!({"first_name": format!("U{i:02}"), "email": format!("u{i}@example.com")}),
        )
        .await;
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    call(
        s.req(Method::PATCH, &format!("/api/v1/users/{}", ids[3]))
            .bearer_auth(&jwt)
            .json(&json!({"last_name": "Changed"})),
    )
    .await;
    call(
        s.req(Method::DELETE, &format!("/api/v1/users/{}", ids[5]))
            .bearer_auth(&jwt),
    )
    .await;
    let query = "?sort_by=first_name&sort_order=asc&limit=100";
    let (_, before) = list(&s, &key, query).await;
    assert_eq!(before["total"], 11);

    // Drop the model's rows and rebuild it from the log with the CLI.
    let out = s.db.run(&["projections", "rebuild", "users"]).await;
    assert!(out.contains("users rebuilt"), "{out}");
    let (_, after) = list(&s, &key, query).await;
    assert_eq!(before, after);
    let db = s.db.client().await;
    let n: i64 = db
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 11);
}

/// Every read model holding rows per user, as (table, rebuilt by).
const PER_USER: &[(&str, &str)] = &[
    ("samples", "samples"),
    ("sample_counts", "samples"),
    ("workouts", "workouts"),
    ("sleep_sessions", "sleep_sessions"),
    ("sleep_nights", "sleep_nights"),
    ("daily_rollup", "daily_rollup"),
    ("health_scores", "health_scores"),
    ("activity_summaries", "personal"),
    ("personal_records", "personal"),
    ("menstrual_cycles", "menstrual_cycles"),
    ("data_sources", "data_sources"),
    ("imports", "imports"),
    ("sync_runs", "sync_runs"),
];

async fn rows_per_table(s: &Server, user: &str) -> Vec<(&'static str, i64)> {
    let client = s.db.client().await;
    let id: uuid::Uuid = user.parse().unwrap();
    let mut out = vec![];
    for (table, _) in PER_USER {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE user_id = $1"),
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        out.push((*table, n));
    }
    out
}

#[tokio::test]
async fn deleting_a_user_empties_every_read_model_of_theirs() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let (key, gone) = s.user().await;
    let (_, kept) = s.user().await;
    // Two days of the generator's export: samples, workouts, nights, a cycle, summaries.
    let mut xml = Vec::new();
    wearhouse::ingest::apple::generate(&mut xml, 11, 1_200_000).unwrap();
    let xml = String::from_utf8(xml).unwrap();
    s.import(&key, &gone, &xml).await;
    s.import(&key, &kept, &xml).await;
    let before = rows_per_table(&s, &gone).await;
    for (table, n) in &before {
        assert!(*n > 0, "{table} holds nothing of the user: {before:?}");
    }
    let kept_before = rows_per_table(&s, &kept).await;

    let (st, _) = call(
        s.req(Method::DELETE, &format!("/api/v1/users/{gone}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200);
    s.settle().await;
    let after = rows_per_table(&s, &gone).await;
    assert!(after.iter().all(|(_, n)| *n == 0), "{after:?}");
    assert_eq!(rows_per_table(&s, &kept).await, kept_before);
    // The read API agrees: the user's workouts are gone with them.
    let (st, _) = s
        .get(
            &key,
            &format!(
                "/api/v1/users/{gone}/events/workouts?start_date=2024-01-01&end_date=2024-02-01"
            ),
        )
        .await;
    assert_eq!(st, 404);

    // A rebuild from the log ends the same: the deletion applies in log order.
    let mut models: Vec<&str> = PER_USER.iter().map(|(_, m)| *m).collect();
    models.dedup();
    for model in models {
        s.db.run(&["projections", "rebuild", model]).await;
    }
    let rebuilt = rows_per_table(&s, &gone).await;
    assert!(rebuilt.iter().all(|(_, n)| *n == 0), "{rebuilt:?}");
    assert_eq!(rows_per_table(&s, &kept).await, kept_before);
}
