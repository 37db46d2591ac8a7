//! Outgoing webhooks end to end: endpoints registered through the API receive the events of
//! an Apple import, a provider connection and sync, signed per Standard Webhooks (checked by
//! the verifier below, written from the specification) and in order; filters and per-user
//! channels; a receiver that fails, times out and recovers; disabling after the failure
//! window, with the engine's clock moved forward.

use crate::common;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::sim::Sim;
use common::{call, create_user, import_export, settle, Server, TestDb, KEY_HEADER};
use poem::web::Data;
use poem::{handler, EndpointExt};
use reqwest::Method;
use serde_json::{json, Value};

const SMALL: &str = include_str!("../fixtures/small_export.xml");
const ALLOW: (&str, &str) = ("WEARHOUSE_WEBHOOKS_ALLOW_PRIVATE", "true");

/// What a receiver does with the next request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Fail,
    Hang,
}

#[derive(Clone, Debug)]
struct Got {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// Whether the receiver answered 2xx (a hung or failed request was seen but not accepted).
    accepted: bool,
}

impl Got {
    fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Book {
    got: Vec<Got>,
    plan: VecDeque<Reply>,
    always_fail: bool,
    /// Every request hangs (past any timeout).
    always_hang: bool,
    /// Requests about this user fail.
    fail_user: Option<String>,
}

/// A loopback receiver built on poem; `plan` scripts its first answers.
struct Receiver {
    url: String,
    book: Arc<Mutex<Book>>,
}

#[handler]
async fn receive(
    req: &poem::Request,
    body: Vec<u8>,
    book: Data<&Arc<Mutex<Book>>>,
) -> poem::http::StatusCode {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let reply = {
        let mut b = book.lock().unwrap();
        let about = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["data"]["user_id"].as_str().map(str::to_string));
        let r = if b.always_hang {
            Some(Reply::Hang)
        } else if b.always_fail || (b.fail_user.is_some() && b.fail_user == about) {
            Some(Reply::Fail)
        } else {
            b.plan.pop_front()
        };
        let hang = if b.always_hang { 60 } else { 4 };
        b.got.push(Got {
            headers,
            body,
            accepted: r.is_none(),
        });
        (r, hang)
    };
    let (reply, hang) = reply;
    match reply {
        None => poem::http::StatusCode::NO_CONTENT,
        Some(Reply::Fail) => poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        Some(Reply::Hang) => {
            // Longer than the engine's timeout in these tests.
            tokio::time::sleep(Duration::from_secs(hang)).await;
            poem::http::StatusCode::OK
        }
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let book = Arc::new(Mutex::new(Book::default()));
        let app = poem::Route::new()
            .at("/hook", poem::post(receive))
            .data(book.clone());
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            book,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.book.lock().unwrap().got.clone()
    }

    fn accepted(&self) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.accepted).collect()
    }

    /// The same receiver under a name rather than an address.
    fn by_name(&self) -> String {
        self.url.replace("127.0.0.1", "localhost")
    }
}

/// Standard Webhooks verification, from the specification: the signed content is
/// `{webhook-id}.{webhook-timestamp}.{body}`, the key is the base64 after `whsec_`, the header
/// is a space-separated list of `v1,<base64 HMAC-SHA256>`, and the timestamp must be within
/// five minutes of now.
fn verify(secret: &str, g: &Got) -> Result<(), String> {
    verify_at(secret, g, chrono::Utc::now().timestamp())
}

/// `verify` as a receiver whose clock reads `now` would (the engine's clock is moved forward
/// in some tests).
fn verify_at(secret: &str, g: &Got, now: i64) -> Result<(), String> {
    use hmac::Mac;
    let h = |n: &str| g.headers.get(n).cloned().ok_or(format!("{n} missing"));
    let (id, ts, sigs) = (
        h("webhook-id")?,
        h("webhook-timestamp")?,
        h("webhook-signature")?,
    );
    let t: i64 = ts.parse().map_err(|_| "bad timestamp")?;
    if (now - t).abs() > 300 {
        return Err("timestamp outside tolerance".into());
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").ok_or("secret prefix")?)
        .map_err(|_| "secret not base64")?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&g.body);
    let expected = b64.encode(mac.finalize().into_bytes());
    let ok = sigs
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .any(|(v, sig)| v == "v1" && sig == expected);
    if !ok {
        return Err(format!("no valid signature in {sigs}"));
    }
    // The svix-* headers carry the same, for consumers of the Svix libraries.
    for (a, b) in [
        ("svix-id", "webhook-id"),
        ("svix-timestamp", "webhook-timestamp"),
        ("svix-signature", "webhook-signature"),
    ] {
        if g.headers.get(a) != g.headers.get(b) {
            return Err(format!("{a} differs from {b}"));
        }
    }
    Ok(())
}

async fn create_endpoint(s: &Server, jwt: &str, body: Value) -> (String, String) {
    let (st, ep) = call(
        s.req(Method::POST, "/api/v1/webhooks/endpoints")
            .bearer_auth(jwt)
            .json(&body),
    )
    .await;
    assert_eq!(st, 201, "{ep}");
    let id = ep["id"].as_str().unwrap().to_string();
    let (st, secret) = call(
        s.req(
            Method::GET,
            &format!("/api/v1/webhooks/endpoints/{id}/secret"),
        )
        .bearer_auth(jwt),
    )
    .await;
    assert_eq!(st, 200, "{secret}");
    (id, secret["key"].as_str().unwrap().to_string())
}

/// Waits until the log is applied (so the outbox holds every delivery) and none is pending.
async fn drained(s: &Server) {
    settle(&s.db).await;
    let client = s.db.client().await;
    common::wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        "deliveries drained",
        || {
            let client = &client;
            async move {
                let pending: i64 = client
                    .query_one(
                        "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                pending == 0
            }
        },
    )
    .await;
}

/// The message ids (`webhook-id`) an endpoint was sent, in the order the outbox queued them.
async fn queued(s: &Server, endpoint: &str) -> Vec<String> {
    let id = wearhouse::webhooks::parse_endpoint_ref(endpoint).unwrap();
    s.db.client()
        .await
        .query(
            "SELECT d.message_id FROM webhook_deliveries d WHERE d.endpoint_id = $1 ORDER BY d.seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Arrival order, first accepted delivery of each id.
fn arrival(got: &[Got]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    got.iter()
        .filter(|g| g.accepted)
        .map(|g| g.id().to_string())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

#[tokio::test]
async fn an_import_reaches_a_registered_endpoint_signed_and_in_order() {
    let s = Server::start_with(TestDb::new().await, &[ALLOW]).await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let rx = Receiver::start().await;
    let (ep, secret) = create_endpoint(&s, &jwt, json!({"url": rx.url})).await;
    let done = import_export(&s, &key, &user, "export.xml", SMALL.as_bytes().to_vec()).await;
    assert_eq!(done["status"], "completed", "{done}");
    drained(&s).await;

    let got = rx.accepted();
    assert!(!got.is_empty());
    for g in &got {
        verify(&secret, g).unwrap_or_else(|e| panic!("{e}: {:?}", g.headers));
    }
    let types: Vec<String> = got
        .iter()
        .map(|g| g.json()["type"].as_str().unwrap().to_string())
        .collect();
    for t in [
        "workout.created",
        "sleep.created",
        "heart_rate.created",
        "series.heart_rate.created",
        "sync.started",
        "sync.completed",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} not delivered: {types:?}");
    }
    // Everything queued arrived, in the order it was committed.
    assert_eq!(arrival(&got), queued(&s, &ep).await);
    // Payloads as the contract's §8.
    let workout = got
        .iter()
        .map(Got::json)
        .find(|v| v["type"] == "workout.created")
        .unwrap();
    let d = &workout["data"];
    assert_eq!(d["user_id"], user.as_str());
    for f in [
        "id",
        "type",
        "start_time",
        "end_time",
        "duration_seconds",
        "source",
    ] {
        assert!(!d[f].is_null(), "workout.{f}: {workout}");
    }
    assert_eq!(
        got.iter()
            .find(|g| g.json()["type"] == "workout.created")
            .unwrap()
            .id(),
        // As Svix: the webhook id is the message id, derived from the idempotency key.
        wearhouse_projections::webhook_outbox::message_id(&format!(
            "workout.created.{}",
            d["id"].as_str().unwrap()
        ))
    );
    let hr = got
        .iter()
        .map(Got::json)
        .find(|v| v["type"] == "series.heart_rate.created")
        .unwrap();
    assert_eq!(hr["data"]["series_type"], "heart_rate");
    assert_eq!(
        hr["data"]["sample_count"],
        hr["data"]["samples"].as_array().unwrap().len()
    );
    assert_eq!(hr["data"]["samples"][0]["unit"], "bpm");

    // Messages and attempts are listed.
    let (st, msgs) = call(
        s.req(Method::GET, "/api/v1/webhooks/messages?limit=2")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{msgs}");
    assert_eq!(msgs["data"].as_array().unwrap().len(), 2);
    assert_eq!(msgs["done"], false);
    let it = msgs["iterator"].as_str().unwrap();
    let (st, next) = call(
        s.req(
            Method::GET,
            &format!("/api/v1/webhooks/messages?limit=250&iterator={it}"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{next}");
    assert_eq!(
        next["data"].as_array().unwrap().len() + 2,
        queued(&s, &ep).await.len()
    );
    let (st, attempts) = call(
        s.req(
            Method::GET,
            &format!("/api/v1/webhooks/endpoints/{ep}/attempts?limit=250"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{attempts}");
    let a = &attempts["data"][0];
    assert_eq!(a["status"], 0);
    assert_eq!(a["responseStatusCode"], 204);
    assert_eq!(a["endpointId"], ep.as_str());

    // Re-importing the same file sends nothing new (same idempotency keys).
    let before = queued(&s, &ep).await.len();
    import_export(&s, &key, &user, "export.xml", SMALL.as_bytes().to_vec()).await;
    drained(&s).await;
    let again: Vec<String> = queued(&s, &ep).await;
    let sync_messages: Vec<String> =
        s.db.client()
            .await
            .query(
                "SELECT id FROM webhook_messages WHERE event_type LIKE 'sync.%'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let new_types: Vec<&String> = again[before..]
        .iter()
        .filter(|id| !sync_messages.contains(*id))
        .collect();
    assert!(new_types.is_empty(), "re-import re-sent {new_types:?}");
}

#[tokio::test]
async fn filters_and_user_channels_select_what_each_endpoint_receives() {
    let s = Server::start_with(TestDb::new().await, &[ALLOW]).await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let (u1, u2) = (create_user(&s, &key).await, create_user(&s, &key).await);
    let (a, b, c) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    create_endpoint(
        &s,
        &jwt,
        json!({"url": a.url, "user_id": u1, "filter_types": ["workout.created"]}),
    )
    .await;
    create_endpoint(&s, &jwt, json!({"url": b.url, "user_id": u2})).await;
    let (ep_c, _) = create_endpoint(
        &s,
        &jwt,
        json!({"url": c.url, "filter_types": ["sleep.created", "series.heart_rate.created"]}),
    )
    .await;
    // An unknown type is refused.
    let (st, body) = call(
        s.req(Method::POST, "/api/v1/webhooks/endpoints")
            .bearer_auth(&jwt)
            .json(&json!({"url": a.url, "filter_types": ["nope.created"]})),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    for u in [&u1, &u2] {
        import_export(&s, &key, u, "export.xml", SMALL.as_bytes().to_vec()).await;
    }
    drained(&s).await;
    let data = |g: &Got| g.json();
    let ga = a.accepted();
    assert!(!ga.is_empty());
    assert!(
        ga.iter()
            .all(|g| data(g)["type"] == "workout.created"
                && data(g)["data"]["user_id"] == u1.as_str())
    );
    let gb = b.accepted();
    assert!(gb.len() > ga.len());
    assert!(gb.iter().all(|g| data(g)["data"]["user_id"] == u2.as_str()));
    let gc = c.accepted();
    let users: std::collections::HashSet<String> = gc
        .iter()
        .map(|g| data(g)["data"]["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users.len(), 2);
    assert!(gc
        .iter()
        .all(|g| ["sleep.created", "series.heart_rate.created"]
            .contains(&data(g)["type"].as_str().unwrap())));

    // PATCH: user_id null removes the user filter, [] removes the type filter; absent keeps.
    let (st, ep) = call(
        s.req(Method::PATCH, &format!("/api/v1/webhooks/endpoints/{ep_c}"))
            .bearer_auth(&jwt)
            .json(&json!({"filter_types": ["workout.created"], "user_id": u1})),
    )
    .await;
    assert_eq!(st, 200, "{ep}");
    assert_eq!(ep["user_id"], u1.as_str());
    assert_eq!(ep["url"], c.url.as_str());
    let (st, ep) = call(
        s.req(Method::PATCH, &format!("/api/v1/webhooks/endpoints/{ep_c}"))
            .bearer_auth(&jwt)
            .json(&json!({"user_id": null, "filter_types": []})),
    )
    .await;
    assert_eq!(st, 200, "{ep}");
    assert!(
        ep["user_id"].is_null() && ep["filter_types"].is_null(),
        "{ep}"
    );
    let (st, list) = call(
        s.req(Method::GET, "/api/v1/webhooks/endpoints")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let (st, _) = call(
        s.req(
            Method::DELETE,
            &format!("/api/v1/webhooks/endpoints/{ep_c}"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 204);
    let (st, body) = call(
        s.req(Method::GET, &format!("/api/v1/webhooks/endpoints/{ep_c}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 404, "{body}");
    // Without a developer token: 401.
    let (st, _) = call(
        s.req(Method::GET, "/api/v1/webhooks/endpoints")
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 401);
    let (st, types) = call(s.req(Method::GET, "/api/v1/webhooks/event-types")).await;
    assert_eq!(st, 200);
    assert_eq!(types.as_array().unwrap().len(), 8 + 16 + 93);
}

/// The engine's clock for tests: moved forward by hand.
struct TestClock(AtomicI64);

impl wearhouse::webhooks::Clock for TestClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::TimeDelta::seconds(self.0.load(Ordering::SeqCst))
    }
}

/// A second delivery engine on the server's database, with its own clock (the server's own
/// engine keeps real time, so retries scheduled hours ahead are this one's to make).
fn engine_at(s: &Server, clock: Arc<TestClock>) -> wearhouse::webhooks::delivery::Engine {
    let pool = common::pool(&s.db.url);
    let sealer = wearhouse::crypto::Sealer::load(None, &s.home).unwrap();
    wearhouse::webhooks::delivery::Engine::new(
        pool.clone(),
        sealer,
        wearhouse::store::Commands { pool, runner: None },
        wearhouse::webhooks::delivery::Settings {
            allow_private: true,
            concurrency: 8,
            timeout: Duration::from_secs(2),
        },
        clock,
    )
}

async fn send_tests(s: &Server, jwt: &str, ep: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let (st, body) = call(
            s.req(
                Method::POST,
                &format!("/api/v1/webhooks/endpoints/{ep}/test"),
            )
            .bearer_auth(jwt),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        ids.push(body["message_id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn a_failing_then_hanging_receiver_loses_nothing_and_keeps_the_order() {
    let s = Server::start_with(
        TestDb::new().await,
        &[ALLOW, ("WEARHOUSE_WEBHOOKS_TIMEOUT_SECS", "2")],
    )
    .await;
    let jwt = s.login().await;
    let rx = Receiver::start().await;
    rx.book.lock().unwrap().plan = [Reply::Fail, Reply::Fail, Reply::Hang, Reply::Fail].into();
    let (ep, secret) = create_endpoint(&s, &jwt, json!({"url": rx.url})).await;
    send_tests(&s, &jwt, &ep, 5).await;
    let clock = Arc::new(TestClock(AtomicI64::new(0)));
    let engine = engine_at(&s, clock.clone());
    let client = s.db.client().await;
    // Retries come on the schedule (5 s, 5 min, 30 min, ...): move the clock an hour per step.
    for step in 0..100 {
        let pending: i64 = client
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            break;
        }
        assert!(step < 99, "deliveries still pending");
        clock.0.fetch_add(3600, Ordering::SeqCst);
        engine.tick().await.unwrap();
    }
    let got = rx.got();
    // Signed at the time of the engine that sent it (this one's clock moved an hour a step).
    for g in got.iter().filter(|g| g.accepted) {
        let sent: i64 = g.headers["webhook-timestamp"].parse().unwrap();
        verify_at(&secret, g, sent).unwrap();
    }
    // Nothing lost, nothing reordered; the failed and hung attempts were retried with the
    // same webhook-id.
    let ids = queued(&s, &ep).await;
    assert_eq!(ids.len(), 5);
    assert_eq!(arrival(&got), ids);
    assert_eq!(got[0].id(), got[1].id());
    assert_eq!(got.iter().filter(|g| g.id() == ids[0]).count(), 5);
    let (st, attempts) = call(
        s.req(
            Method::GET,
            &format!("/api/v1/webhooks/endpoints/{ep}/attempts?status=2"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{attempts}");
    let failed = attempts["data"].as_array().unwrap();
    assert_eq!(failed.len(), 4, "{attempts}");
    assert!(
        failed
            .iter()
            .any(|a| a["response"].as_str().unwrap().contains("timed out")),
        "{attempts}"
    );
    assert!(
        failed.iter().any(|a| a["responseStatusCode"] == 500),
        "{attempts}"
    );

    // A manual resend is one more attempt with the same id.
    let before = rx.got().len();
    let (st, body) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/webhooks/endpoints/{ep}/messages/{}/resend", ids[4]),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    common::wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "resent",
        || async { rx.got().len() > before },
    )
    .await;
    assert_eq!(rx.got().last().unwrap().id(), ids[4]);
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled() {
    let s = Server::start_with(TestDb::new().await, &[ALLOW]).await;
    let jwt = s.login().await;
    let rx = Receiver::start().await;
    rx.book.lock().unwrap().always_fail = true;
    let (ep, _) = create_endpoint(&s, &jwt, json!({"url": rx.url})).await;
    send_tests(&s, &jwt, &ep, 2).await;
    let clock = Arc::new(TestClock(AtomicI64::new(0)));
    let engine = engine_at(&s, clock.clone());
    let client = s.db.client().await;
    let mut disabled_after = None;
    for day in 1..=8 {
        clock.0.store(day * 86_400, Ordering::SeqCst);
        engine.tick().await.unwrap();
        let disabled: i64 = client
            .query_one(
                "SELECT count(*) FROM events WHERE event_type = 'WebhookEndpointDisabled'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if disabled > 0 {
            disabled_after = Some(day);
            break;
        }
    }
    let day = disabled_after.expect("never disabled");
    assert!((5..=6).contains(&day), "disabled after {day} days");
    common::wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "disabled",
        || async {
            let (_, e) = call(
                s.req(Method::GET, &format!("/api/v1/webhooks/endpoints/{ep}"))
                    .bearer_auth(&jwt),
            )
            .await;
            e["disabled"] == true
                && e["disabled_reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("5 days")
        },
    )
    .await;
    // Disabled: nothing more is attempted, even when due.
    let n = rx.got().len();
    clock.0.store(30 * 86_400, Ordering::SeqCst);
    assert_eq!(engine.tick().await.unwrap(), 0);
    assert_eq!(rx.got().len(), n);
    // A PATCH enables it again.
    let (st, e) = call(
        s.req(Method::PATCH, &format!("/api/v1/webhooks/endpoints/{ep}"))
            .bearer_auth(&jwt)
            .json(&json!({"url": rx.url})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(e["disabled"], false);
}

#[tokio::test]
async fn a_connection_and_a_provider_sync_arrive_in_order_and_rotation_signs_with_both_secrets() {
    let sim = Sim::start(2).await;
    let env = sim.env();
    let mut refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    refs.extend([
        ALLOW,
        ("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT", "0"),
        ("WEARHOUSE_SYNC_INTERVAL_SECS", "0"),
    ]);
    let s = Server::start_with(TestDb::new().await, &refs).await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let rx = Receiver::start().await;
    let (ep, old) = create_endpoint(&s, &jwt, json!({"url": rx.url, "user_id": user})).await;
    let (st, body) = call(
        s.req(
            Method::GET,
            &format!("/api/v1/oauth/oura/authorize?user_id={user}"),
        )
        .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let r = sim
        .http
        .get(body["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    let r = sim.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let since = (chrono::Utc::now() - chrono::Duration::days(7)).timestamp();
    let (st, body) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/providers/oura/users/{user}/sync?async=false&since={since}"),
        )
        .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    drained(&s).await;
    let got = rx.accepted();
    for g in &got {
        verify(&old, g).unwrap();
    }
    let types: Vec<String> = got
        .iter()
        .map(|g| g.json()["type"].as_str().unwrap().to_string())
        .collect();
    let pos = |t: &str| {
        types
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("{t} missing: {types:?}"))
    };
    assert!(pos("connection.created") < pos("sync.started"));
    assert!(pos("sync.started") < pos("workout.created"));
    assert!(pos("sync.started") < pos("sync.completed"));
    let c = got[pos("connection.created")].json();
    assert_eq!(c["data"]["provider"], "oura");
    assert_eq!(c["data"]["user_id"], user.as_str());
    assert_eq!(arrival(&got), queued(&s, &ep).await);

    // Rotation: the new secret signs, and the old one still does for a day.
    let (st, new) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/webhooks/endpoints/{ep}/secret/rotate"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{new}");
    let new = new["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let n = rx.got().len();
    send_tests(&s, &jwt, &ep, 1).await;
    common::wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "test event",
        || async { rx.got().len() > n },
    )
    .await;
    let last = rx.got().pop().unwrap();
    verify(&new, &last).unwrap();
    verify(&old, &last).unwrap();
    // Disconnecting sends connection.revoked.
    let (st, _) = call(
        s.req(
            Method::DELETE,
            &format!("/api/v1/users/{user}/connections/oura"),
        )
        .header(KEY_HEADER, &key),
    )
    .await;
    assert!(st < 300, "{st}");
    drained(&s).await;
    let last = rx.accepted().pop().unwrap();
    assert_eq!(
        last.json()["type"],
        "connection.revoked",
        "{:?}",
        last.json()
    );
}

/// The webhook ids queued for one user's lane of an endpoint, in order.
async fn lane(s: &Server, endpoint: &str, user: &str) -> Vec<String> {
    let id = wearhouse::webhooks::parse_endpoint_ref(endpoint).unwrap();
    s.db.client()
        .await
        .query(
            "SELECT message_id FROM webhook_deliveries WHERE endpoint_id = $1 AND lane = $2 ORDER BY seq",
            &[&id, &user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_hanging_or_failing_lane_does_not_hold_up_the_others() {
    // The timeout is the default 15 s: every check below must pass well before it.
    let s = Server::start_with(TestDb::new().await, &[ALLOW]).await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let (u1, u2) = (create_user(&s, &key).await, create_user(&s, &key).await);
    let (hung, picky) = (Receiver::start().await, Receiver::start().await);
    hung.book.lock().unwrap().always_hang = true;
    picky.book.lock().unwrap().fail_user = Some(u1.clone());
    let (ep_hung, _) = create_endpoint(&s, &jwt, json!({"url": hung.url})).await;
    // Named by host name: with the allow setting, names that resolve to loopback are fine.
    let (ep_picky, secret) = create_endpoint(&s, &jwt, json!({"url": picky.by_name()})).await;
    for u in [&u1, &u2] {
        import_export(&s, &key, u, "export.xml", SMALL.as_bytes().to_vec()).await;
    }
    settle(&s.db).await;
    let started = std::time::Instant::now();
    let want = lane(&s, &ep_picky, &u2).await;
    assert!(want.len() > 3, "{want:?}");
    // u2's lane of the picky endpoint is delivered while the hung endpoint's requests wait for
    // their timeout and u1's lane of the same endpoint fails.
    common::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "the healthy lane delivered",
        || async { arrival(&picky.got()).len() >= want.len() },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(arrival(&picky.got()), want);
    for g in picky.accepted() {
        verify(&secret, &g).unwrap();
    }
    // In order per lane: u1's lane is stuck on its first message, and each lane of the hung
    // endpoint has one request in flight, its first.
    let first_u1 = lane(&s, &ep_picky, &u1).await[0].clone();
    let u1_tries: Vec<Got> = picky.got().into_iter().filter(|g| !g.accepted).collect();
    assert!(!u1_tries.is_empty());
    assert!(u1_tries.iter().all(|g| g.id() == first_u1));
    let firsts = [
        lane(&s, &ep_hung, &u1).await[0].clone(),
        lane(&s, &ep_hung, &u2).await[0].clone(),
    ];
    let hung_ids: Vec<String> = hung.got().iter().map(|g| g.id().to_string()).collect();
    assert!(hung_ids.len() <= 2, "{hung_ids:?}");
    assert!(
        hung_ids.iter().all(|id| firsts.contains(id)),
        "{hung_ids:?}"
    );
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_without_the_allow_setting() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let rx = Receiver::start().await;
    let (ep, _) = create_endpoint(&s, &jwt, json!({"url": rx.by_name()})).await;
    send_tests(&s, &jwt, &ep, 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let attempt = loop {
        let (_, a) = call(
            s.req(
                Method::GET,
                &format!("/api/v1/webhooks/endpoints/{ep}/attempts"),
            )
            .bearer_auth(&jwt),
        )
        .await;
        if let Some(first) = a["data"].as_array().and_then(|d| d.first().cloned()) {
            break first;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(attempt["status"], 2, "{attempt}");
    assert!(
        attempt["response"]
            .as_str()
            .unwrap()
            .contains("non-public address"),
        "{attempt}"
    );
    assert!(rx.got().is_empty(), "the receiver was reached");
}
