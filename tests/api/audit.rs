//! Tamper evidence: the log sealed by `wearhouse audit seal` (and by `serve` on its own), then
//! edited behind the platform's back in every way a database user could; the verification,
//! through the API and the CLI, names each change.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::{call, export, wait_until, Server, TestDb, KEY_HEADER};

async fn verify(s: &Server, jwt: &str) -> Value {
    let (status, body) = call(s.req(Method::GET, "/api/v1/audit/verify").bearer_auth(jwt)).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn problems(report: &Value) -> Vec<(String, Option<i64>)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["position"].as_i64(),
            )
        })
        .collect()
}

/// The CLI's verdict: its JSON report and whether it exited successfully.
async fn verify_cli(db: &TestDb) -> (Value, bool) {
    let out = tokio::process::Command::new(crate::common::bin())
        .args(["audit", "verify"])
        .env("DATABASE_URL", &db.url)
        .env("WEARHOUSE_LOG", "warn")
        .output()
        .await
        .unwrap();
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        out.status.success(),
    )
}

#[tokio::test]
async fn edited_deleted_and_inserted_entries_and_rewritten_seals_are_named() {
    let s = Server::start_with(TestDb::new().await, &[("WEARHOUSE_AUDIT_SEAL_SECS", "0")]).await;
    let jwt = s.login().await;
    let (key, user) = s.user().await;
    let xml = export::doc(
        &[
            export::steps(
                120.0,
                "2024-03-10 08:00:00 -0800",
                "2024-03-10 08:10:00 -0800",
                true,
            ),
            export::steps(
                80.0,
                "2024-03-10 09:00:00 -0800",
                "2024-03-10 09:05:00 -0800",
                false,
            ),
            export::workout(
                "Running",
                30.0,
                300.0,
                5000.0,
                "2024-03-10 07:00:00 -0800",
                "2024-03-10 07:30:00 -0800",
            ),
        ]
        .join("\n"),
    );
    s.import(&key, &user, &xml).await;

    // Nothing sealed yet: intact, but everything is still unsealed.
    let report = verify(&s, &jwt).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["seals"], 0);
    let db = s.db.client().await;
    let total: i64 = db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(report["unsealed_entries"], total);

    let out = s.db.run(&["audit", "seal"]).await;
    assert_eq!(out.trim(), format!("sealed {total} entries"));
    let report = verify(&s, &jwt).await;
    assert_eq!(
        (
            &report["intact"],
            &report["entries_sealed"],
            &report["unsealed_entries"]
        ),
        (&Value::Bool(true), &Value::from(total), &Value::from(0)),
        "{report}"
    );
    let max: i64 = db
        .query_one("SELECT max(position) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(report["sealed_through_position"], max);
    let head = report["head_digest"].as_str().unwrap().to_string();
    assert_eq!(head.len(), 64);

    // An edited payload is named by its position; put back, the log is intact again.
    let (created, original): (i64, Value) = {
        let r = db
            .query_one(
                "SELECT position, payload FROM events WHERE event_type = 'UserCreated'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    db.execute(
        "UPDATE events SET payload = jsonb_set(payload, '{profile,first_name}', '\"Eve\"') WHERE position = $1",
        &[&created],
    )
    .await
    .unwrap();
    let report = verify(&s, &jwt).await;
    assert_eq!(report["intact"], false);
    assert_eq!(problems(&report), vec![("modified".into(), Some(created))]);
    let (cli, ok) = verify_cli(&s.db).await;
    assert!(!ok, "the CLI fails on a tampered log");
    assert_eq!(problems(&cli), problems(&report));
    db.execute(
        "UPDATE events SET payload = $2 WHERE position = $1",
        &[&created, &original],
    )
    .await
    .unwrap();
    assert_eq!(verify(&s, &jwt).await["intact"], true);
    assert!(verify_cli(&s.db).await.1);

    // Metadata (who did it) is covered too.
    db.execute(
        "UPDATE events SET metadata = metadata || '{\"actor\": \"developer:someone-else\"}' WHERE position = $1",
        &[&created],
    )
    .await
    .unwrap();
    assert_eq!(
        problems(&verify(&s, &jwt).await),
        vec![("modified".into(), Some(created))]
    );

    // Rewritten sample bytes show on the entry that recorded the batch.
    let samples: i64 = db
        .query_one(
            "SELECT position FROM events WHERE event_type = 'SamplesRecorded' ORDER BY position LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.execute(
        "UPDATE sample_batches SET arrow = arrow || '\\x00'::bytea WHERE id = \
         (SELECT (payload->'batch'->>'batch_id')::bigint FROM events WHERE position = $1)",
        &[&samples],
    )
    .await
    .unwrap();
    // A deleted entry, and an entry slipped into a sealed range (an old transaction id).
    let last: i64 = db
        .query_one(
            "SELECT position FROM events ORDER BY tx DESC, position DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.execute("DELETE FROM events WHERE position = $1", &[&last])
        .await
        .unwrap();
    let inserted: i64 = db
        .query_one(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, tx) SELECT 'Note', gen_random_uuid()::text, 1, 'Noted', '1', \
             '{}', '{}', tx FROM events WHERE position = $1 RETURNING position",
            &[&created],
        )
        .await
        .unwrap()
        .get(0);
    let mut found = problems(&verify(&s, &jwt).await);
    found.sort();
    let mut expected = vec![
        ("deleted".to_string(), Some(last)),
        ("inserted".to_string(), Some(inserted)),
        ("modified".to_string(), Some(created)),
        ("modified".to_string(), Some(samples)),
    ];
    expected.sort();
    assert_eq!(found, expected);

    // A rewritten seal breaks the chain where it was rewritten.
    db.execute(
        "UPDATE audit_seals SET digest = sha256(digest) WHERE seal = 1",
        &[],
    )
    .await
    .unwrap();
    let report = verify(&s, &jwt).await;
    assert!(
        problems(&report).contains(&("seal_altered".into(), None)),
        "{report}"
    );
    assert_ne!(report["head_digest"].as_str().unwrap(), head);

    // Only a developer may ask.
    let (status, _) = call(
        s.req(Method::GET, "/api/v1/audit/verify")
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(s.req(Method::GET, "/api/v1/audit/verify")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn serve_seals_what_is_committed() {
    let s = Server::start_with(TestDb::new().await, &[("WEARHOUSE_AUDIT_SEAL_SECS", "1")]).await;
    let jwt = s.login().await;
    let (_key, _user) = s.user().await;
    let db = s.db.client().await;
    let total: i64 = db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        "the log sealed",
        || async {
            let report = verify(&s, &jwt).await;
            report["unsealed_entries"] == 0 && report["entries_sealed"].as_i64() >= Some(total)
        },
    )
    .await;
    assert_eq!(verify(&s, &jwt).await["intact"], true);
}

/// An auditor account made through an invitation; returns its access token.
async fn auditor(s: &Server, admin: &str) -> String {
    let (status, inv) = call(
        s.req(Method::POST, "/api/v1/invitations")
            .bearer_auth(admin)
            .json(&serde_json::json!({"email": "auditor@example.com", "role": "auditor"})),
    )
    .await;
    assert_eq!(status, 201, "{inv}");
    let password = "auditor-Passw0rd";
    let (status, _) = call(s.req(Method::POST, "/api/v1/invitations/accept").json(
        &serde_json::json!({"token": inv["token"], "first_name": "Aud", "last_name": "Itor",
                            "password": password}),
    ))
    .await;
    assert_eq!(status, 201);
    let (_, t) = call(
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", "auditor@example.com"), ("password", password)]),
    )
    .await;
    t["access_token"].as_str().unwrap().to_string()
}

async fn get(s: &Server, jwt: &str, path: &str) -> (u16, Value) {
    call(s.req(Method::GET, path).bearer_auth(jwt)).await
}

#[tokio::test]
async fn an_auditor_answers_what_was_recorded_about_a_user_when_by_whom_from_which_bytes() {
    let s = Server::start().await;
    let admin = s.login().await;
    let (key, user) = s.user().await;
    let xml = export::doc(&export::steps(
        120.0,
        "2024-03-10 08:00:00 -0800",
        "2024-03-10 08:10:00 -0800",
        true,
    ));
    s.import(&key, &user, &xml).await;
    let (status, _) = call(
        s.req(Method::PATCH, &format!("/api/v1/users/{user}"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"first_name": "Grace"})),
    )
    .await;
    assert_eq!(status, 200);
    s.settle().await;
    let audit = auditor(&s, &admin).await;

    // Everything about the user, oldest first, paged.
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users/{user}/history?limit=2&cursor={c}"),
            None => format!("/api/v1/users/{user}/history?limit=2"),
        };
        let (status, page) = get(&s, &audit, &path).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["read_at_position"].as_i64().unwrap() > 0);
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let db = s.db.client().await;
    let id: uuid::Uuid = user.parse().unwrap();
    let expected: i64 = db
        .query_one("SELECT count(*) FROM events WHERE user_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all.len() as i64, expected);
    let positions: Vec<i64> = all
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // When and by whom: created with the API key, renamed by the admin developer.
    let created = all
        .iter()
        .find(|e| e["event_type"] == "UserCreated")
        .unwrap();
    let key_actor = created["actor"].as_str().unwrap().to_string();
    assert!(key_actor.starts_with("api_key:"), "{created}");
    assert!(created["recorded_at"].is_string() && created["request_id"].is_string());
    let renamed = all
        .iter()
        .find(|e| e["event_type"] == "UserUpdated")
        .unwrap();
    assert!(renamed["actor"].as_str().unwrap().starts_with("developer:"));
    let (_, by_key) = get(
        &s,
        &audit,
        &format!("/api/v1/audit/events?actor={key_actor}&event_type=UserCreated"),
    )
    .await;
    assert_eq!(by_key["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_key["data"][0]["aggregate_id"], user.as_str());

    // From which bytes: the raw payload is the export, byte for byte.
    let raw = all
        .iter()
        .find_map(|e| e["raw_payload_sha256"].as_str())
        .expect("the import's raw payload is referenced");
    let r = s
        .req(Method::GET, &format!("/api/v1/audit/raw/{raw}"))
        .bearer_auth(&audit)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), xml.as_bytes());

    // The user as it was before the rename, and as it is.
    let before = created["position"].as_i64().unwrap();
    let (status, then) = get(
        &s,
        &audit,
        &format!("/api/v1/audit/aggregates/User/{user}?position={before}"),
    )
    .await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["events_applied"], 1);
    assert_eq!(then["state"]["profile"]["first_name"], "Ada", "{then}");
    let (_, now) = get(&s, &audit, &format!("/api/v1/audit/aggregates/User/{user}")).await;
    assert_eq!(now["state"]["profile"]["first_name"], "Grace", "{now}");

    // Newest first starts at the end.
    let (_, newest) = get(
        &s,
        &audit,
        &format!("/api/v1/users/{user}/history?order=newest&limit=1"),
    )
    .await;
    assert_eq!(
        newest["data"][0]["position"].as_i64(),
        positions.last().copied()
    );

    // Secrets never show, in entries or states.
    let (_, devs) = get(&s, &audit, "/api/v1/audit/events?aggregate_type=Developer").await;
    assert!(!devs["data"].as_array().unwrap().is_empty());
    let text = devs.to_string();
    assert!(
        !text.contains("password_hash") && !text.contains("argon2"),
        "{text}"
    );
    let admin_id = devs["data"][0]["aggregate_id"].as_str().unwrap();
    let (_, dev) = get(
        &s,
        &audit,
        &format!("/api/v1/audit/aggregates/Developer/{admin_id}"),
    )
    .await;
    assert!(!dev.to_string().contains("argon2"), "{dev}");

    // Refusals.
    for (path, status) in [
        (format!("/api/v1/audit/raw/{}", "0".repeat(64)), 404),
        ("/api/v1/audit/raw/not-a-hash".to_string(), 400),
        (format!("/api/v1/audit/aggregates/Nothing/{user}"), 400),
        (
            format!("/api/v1/audit/aggregates/User/{}", uuid::Uuid::new_v4()),
            404,
        ),
        ("/api/v1/audit/events?cursor=abc".to_string(), 400),
        ("/api/v1/audit/events?limit=0".to_string(), 400),
        (
            "/api/v1/audit/events?since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z"
                .to_string(),
            400,
        ),
    ] {
        let (got, body) = get(&s, &audit, &path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
    let (status, _) = call(
        s.req(Method::GET, &format!("/api/v1/users/{user}/history"))
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(status, 401, "an API key does not read the history");
}

#[tokio::test]
async fn entries_name_the_client_address_and_user_agent_also_when_a_job_wrote_them() {
    let s = Server::start().await;
    let admin = s.login().await;
    let key = s.api_key().await;
    let ua = "integrator-app/2.1 (audit test)";
    let (status, user) = call(
        s.req(Method::POST, "/api/v1/users")
            .header(KEY_HEADER, &key)
            .header("user-agent", ua)
            .json(&serde_json::json!({"first_name": "Ada"})),
    )
    .await;
    assert_eq!(status, 201);
    let user = user["id"].as_str().unwrap().to_string();
    // The upload is mapped later by a durable job: its entries still name the request.
    let xml = export::doc(&export::steps(
        120.0,
        "2024-03-10 08:00:00 -0800",
        "2024-03-10 08:10:00 -0800",
        true,
    ));
    let part = reqwest::multipart::Part::bytes(xml.into_bytes()).file_name("export.xml");
    let (status, accepted) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/direct"),
        )
        .header(KEY_HEADER, &key)
        .header("user-agent", ua)
        .multipart(reqwest::multipart::Form::new().part("file", part)),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    crate::common::wait_import(&s, &key, &user, accepted["task_id"].as_str().unwrap()).await;
    s.settle().await;
    let audit = auditor(&s, &admin).await;
    let (_, page) = get(
        &s,
        &audit,
        &format!("/api/v1/users/{user}/history?limit=1000"),
    )
    .await;
    let entries = page["data"].as_array().unwrap();
    for event_type in ["UserCreated", "RawPayloadReceived", "SamplesRecorded"] {
        let e = entries
            .iter()
            .find(|e| e["event_type"] == event_type)
            .unwrap_or_else(|| panic!("no {event_type}: {page}"));
        assert_eq!(e["metadata"]["client_ip"], "127.0.0.1", "{e}");
        assert_eq!(e["metadata"]["user_agent"], ua, "{e}");
    }
}
