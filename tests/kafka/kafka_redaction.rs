//! Secrets never leave Postgres through Kafka: a developer's creation, a login, an API key's
//! creation, a password change and a provider connection (with PKCE) are relayed, and no
//! password hash, key hash, refresh-token hash, OAuth state hash, PKCE verifier or sealed
//! provider token that Postgres holds for them appears in any message of the events topic.
//! Needs WEARHOUSE_TEST_PG and WEARHOUSE_TEST_KAFKA.

use crate::common;
use crate::kafka_support;

use std::time::{Duration, Instant};

use common::sim::Sim;
use common::{call, Server, TestDb};
use kafka_support::{reader, receive_until, Msg};
use reqwest::Method;
use serde_json::{json, Value};
use wearhouse_kafka::KafkaConfig;

/// Every string value at any depth of `v` under a key that names a secret.
fn secret_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let k = k.to_ascii_lowercase();
                let secret = k.ends_with("_hash")
                    || k.contains("password")
                    || k.contains("token")
                    || k.contains("verifier");
                match v {
                    Value::String(s) if secret => out.push(s.clone()),
                    _ if secret => {
                        let mut inner = vec![];
                        all_strings(v, &mut inner);
                        out.extend(inner);
                    }
                    _ => secret_values(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| secret_values(i, out)),
        _ => {}
    }
}

fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Object(m) => m.values().for_each(|v| all_strings(v, out)),
        Value::Array(a) => a.iter().for_each(|v| all_strings(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_key_password_and_connection_events_reach_kafka_without_secrets() {
    // The provider simulator, for a real OAuth connection.
    let sim = Sim::start(25).await;
    let (sim_url, http) = (sim.url.clone(), sim.http.clone());

    let brokers = kafka_support::test_kafka();
    let db = TestDb::new().await;
    let prefix = db.name.clone();
    let env = [
        ("WEARHOUSE_KAFKA_BROKERS", brokers.clone()),
        ("WEARHOUSE_KAFKA_TOPIC_PREFIX", prefix.clone()),
        ("WEARHOUSE_KAFKA_PARTITIONS", "4".into()),
        ("WEARHOUSE_KAFKA_FLUSH_MARKERS", "true".into()),
        ("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT", "0".into()),
        ("WEARHOUSE_GARMIN_CLIENT_ID", "garmin-client".into()),
        ("WEARHOUSE_GARMIN_CLIENT_SECRET", common::sim::SECRET.into()),
        (
            "WEARHOUSE_GARMIN_AUTHORIZE_URL",
            format!("{sim_url}/garmin/oauth/authorize"),
        ),
        (
            "WEARHOUSE_GARMIN_TOKEN_URL",
            format!("{sim_url}/garmin/oauth/token"),
        ),
        ("WEARHOUSE_GARMIN_API_URL", format!("{sim_url}/garmin/api")),
    ];
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Starting creates the developer (DeveloperRegistered with its password hash).
    let s = Server::start_with(db, &refs).await;
    // Login (RefreshTokenIssued) and an API key (ApiKeyCreated with its hash).
    let key = s.api_key().await;
    let c = s.db.client().await;
    // A password change (no HTTP route changes passwords: appended as the store would).
    let (dev, seq): (uuid::Uuid, i64) = {
        let r = c
            .query_one(
                "SELECT aggregate_id::uuid, max(sequence) FROM events WHERE aggregate_type = 'Developer' GROUP BY 1",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    c.execute(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Developer', $1, $2, 'PasswordChanged', '1', $3, '{}')",
        &[
            &dev.to_string(),
            &(seq + 1),
            &json!({"type": "PasswordChanged", "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$bmV3LXBhc3N3b3JkLWhhc2g", "at": chrono::Utc::now()}),
        ],
    )
    .await
    .unwrap();
    // A connection authorised over PKCE (Garmin): state hash, sealed verifier, sealed tokens.
    let (st, u) = call(
        s.req(Method::POST, "/api/v1/users")
            .header("X-Open-Wearables-API-Key", &key)
            .json(&json!({"first_name": "Ada"})),
    )
    .await;
    assert_eq!(st, 201);
    let user = u["id"].as_str().unwrap();
    let (st, body) = call(
        s.req(
            Method::GET,
            &format!("/api/v1/oauth/garmin/authorize?user_id={user}"),
        )
        .header("X-Open-Wearables-API-Key", &key),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let r = http
        .get(body["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let cb = r.headers()["location"].to_str().unwrap().to_string();
    let r = http.get(&cb).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap();
    assert!(to.contains("/api/v1/oauth/success"), "{to}");

    // Everything Postgres holds as a secret for these entries.
    let rows = c
        .query(
            "SELECT event_type, payload FROM events WHERE aggregate_type IN ('Developer', 'ApiKey', 'Connection')",
            &[],
        )
        .await
        .unwrap();
    let mut secrets = vec![];
    let mut types = vec![];
    for r in &rows {
        types.push(r.get::<_, String>(0));
        secret_values(&r.get::<_, Value>(1), &mut secrets);
    }
    for t in [
        "DeveloperRegistered",
        "RefreshTokenIssued",
        "ApiKeyCreated",
        "PasswordChanged",
        "AuthorizationStarted",
        "ConnectionAuthorized",
    ] {
        assert!(types.iter().any(|x| x == t), "no {t} in {types:?}");
    }
    secrets.retain(|s| s.len() >= 16);
    assert!(
        secrets.len() >= 7,
        "expected hashes and sealed tokens, found {secrets:?}"
    );

    // Wait until the relay has published everything, then read the whole events topic.
    let pool = common::pool(&s.db.url);
    let client = pool.get().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while wearhouse_kafka::relay_lag(&client).await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "relay did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kafka = KafkaConfig {
        brokers: Some(brokers),
        topic_prefix: prefix,
        partitions: kafka_support::PARTITIONS,
        flush_markers: true,
        ..KafkaConfig::default()
    };
    let consumer = reader(&kafka, &kafka.topics().events);
    let mut got: Vec<Msg> = vec![];
    let want = rows.len();
    receive_until(&consumer, &mut got, Duration::from_secs(60), |m| {
        m.iter()
            .filter(|m| {
                let v: Value = serde_json::from_slice(&m.value).unwrap();
                ["Developer", "ApiKey", "Connection"]
                    .contains(&v["aggregate_type"].as_str().unwrap())
            })
            .count()
            >= want
    })
    .await;
    let mut relayed_types = vec![];
    for m in &got {
        let text = String::from_utf8_lossy(&m.value);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret reached Kafka: {text}"
            );
        }
        assert!(
            !text.contains("$argon2"),
            "a password hash reached Kafka: {text}"
        );
        for h in m.headers.values() {
            let h = String::from_utf8_lossy(h);
            assert!(!secrets.iter().any(|s| h.contains(s.as_str())));
        }
        let v: Value = serde_json::from_slice(&m.value).unwrap();
        relayed_types.push(v["event_type"].as_str().unwrap().to_string());
        // What is not secret still travels.
        if v["event_type"] == "DeveloperRegistered" {
            assert!(text.contains("@"), "{text}");
        }
        if v["event_type"] == "ConnectionAuthorized" {
            assert_eq!(v["user_id"], user, "{text}");
        }
    }
    for t in ["PasswordChanged", "ApiKeyCreated", "ConnectionAuthorized"] {
        assert!(relayed_types.iter().any(|x| x == t), "{t} not relayed");
    }
    drop(sim);
}

/// SDK credentials: an application (created, secret rotated), SDK refresh tokens (issued,
/// rotated) and an invitation code (issued, redeemed) are relayed without the hashes of the
/// secret, the tokens or the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_credential_events_reach_kafka_without_hashes() {
    let brokers = kafka_support::test_kafka();
    let db = TestDb::new().await;
    let prefix = db.name.clone();
    let env = [
        ("WEARHOUSE_KAFKA_BROKERS", brokers.clone()),
        ("WEARHOUSE_KAFKA_TOPIC_PREFIX", prefix.clone()),
        ("WEARHOUSE_KAFKA_PARTITIONS", "4".into()),
        ("WEARHOUSE_KAFKA_FLUSH_MARKERS", "true".into()),
    ];
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = Server::start_with(db, &refs).await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = common::create_user(&s, &key).await;
    let (st, app) = call(
        s.req(Method::POST, "/api/v1/applications")
            .bearer_auth(&jwt)
            .json(&json!({"name": "Mobile"})),
    )
    .await;
    assert_eq!(st, 201, "{app}");
    let app_id = app["app_id"].as_str().unwrap();
    let (st, app) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/applications/{app_id}/rotate-secret"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{app}");
    let (st, t) = call(
        s.req(Method::POST, &format!("/api/v1/users/{user}/token"))
            .json(&json!({"app_id": app_id, "app_secret": app["app_secret"]})),
    )
    .await;
    assert_eq!(st, 200, "{t}");
    let (st, _) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({"refresh_token": t["refresh_token"]})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, code) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/invitation-code"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 201, "{code}");
    let (st, _) = call(
        s.req(Method::POST, "/api/v1/invitation-code/redeem")
            .json(&json!({"code": code["code"]})),
    )
    .await;
    assert_eq!(st, 200);

    let c = s.db.client().await;
    let rows = c
        .query(
            "SELECT event_type, payload FROM events WHERE aggregate_type IN ('Application', 'SdkAccess')",
            &[],
        )
        .await
        .unwrap();
    let mut secrets = vec![];
    for r in &rows {
        secret_values(&r.get::<_, Value>(1), &mut secrets);
    }
    // Two secret hashes, three refresh-token hashes, one code hash.
    assert!(secrets.len() >= 6, "{secrets:?}");

    let pool = common::pool(&s.db.url);
    let client = pool.get().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while wearhouse_kafka::relay_lag(&client).await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "relay did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kafka = KafkaConfig {
        brokers: Some(brokers),
        topic_prefix: prefix,
        partitions: kafka_support::PARTITIONS,
        flush_markers: true,
        ..KafkaConfig::default()
    };
    let consumer = reader(&kafka, &kafka.topics().events);
    let mut got: Vec<Msg> = vec![];
    let sdk = |m: &Msg| {
        let v: Value = serde_json::from_slice(&m.value).unwrap();
        ["Application", "SdkAccess"].contains(&v["aggregate_type"].as_str().unwrap())
    };
    receive_until(&consumer, &mut got, Duration::from_secs(60), |m| {
        m.iter().filter(|m| sdk(m)).count() >= rows.len()
    })
    .await;
    let mut relayed = vec![];
    for m in got.iter().filter(|m| sdk(m)) {
        let text = String::from_utf8_lossy(&m.value);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a hash reached Kafka: {text}"
            );
        }
        let v: Value = serde_json::from_slice(&m.value).unwrap();
        relayed.push(v["event_type"].as_str().unwrap().to_string());
        if v["event_type"] == "ApplicationCreated" {
            assert!(text.contains(app_id), "the app_id still travels: {text}");
        }
    }
    for t in [
        "ApplicationCreated",
        "ApplicationSecretRotated",
        "SdkRefreshTokenIssued",
        "SdkRefreshTokenRevoked",
        "InvitationCodeIssued",
        "InvitationCodeRedeemed",
    ] {
        assert!(
            relayed.iter().any(|x| x == t),
            "{t} not relayed: {relayed:?}"
        );
    }
}
