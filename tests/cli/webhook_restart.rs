//! Outgoing webhooks across a SIGKILL: the server is killed while deliveries are in flight
//! and started again; every message still arrives, in order, and a message sent twice
//! (at-least-once) carries the same `webhook-id` both times.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{call, create_user, import_export, Server, TestDb};
use poem::web::Data;
use poem::{handler, EndpointExt};
use reqwest::Method;
use serde_json::json;

const SMALL: &str = include_str!("../fixtures/small_export.xml");

/// Webhook ids in order of arrival.
type Log = Arc<Mutex<Vec<String>>>;

#[handler]
async fn slow_receiver(req: &poem::Request, log: Data<&Log>) -> poem::http::StatusCode {
    let id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    log.lock().unwrap().push(id);
    // Slow enough that a kill lands while deliveries are in flight.
    tokio::time::sleep(Duration::from_millis(150)).await;
    poem::http::StatusCode::OK
}

#[tokio::test]
async fn deliveries_survive_a_kill_without_loss_or_reordering() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let app = poem::Route::new()
        .at("/hook", poem::post(slow_receiver))
        .data(log.clone());
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });

    let mut s = Server::start_process(
        TestDb::new().await,
        &[("WEARHOUSE_WEBHOOKS_ALLOW_PRIVATE", "true")],
    )
    .await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let (st, ep) = call(
        s.req(Method::POST, "/api/v1/webhooks/endpoints")
            .bearer_auth(&jwt)
            .json(&json!({"url": format!("http://127.0.0.1:{port}/hook")})),
    )
    .await;
    assert_eq!(st, 201, "{ep}");
    let done = import_export(&s, &key, &user, "export.xml", SMALL.as_bytes().to_vec()).await;
    assert_eq!(done["status"], "completed", "{done}");
    common::wait_until(
        Duration::from_secs(60),
        Duration::from_millis(10),
        "first deliveries",
        || async { log.lock().unwrap().len() >= 3 },
    )
    .await;
    s.kill();
    let before = log.lock().unwrap().len();
    s.restart(&[], &[]).await;

    let client = s.db.client().await;
    common::wait_until(
        Duration::from_secs(120),
        Duration::from_millis(100),
        "every delivery made",
        || async {
            let pending: i64 = client
                .query_one(
                    "SELECT count(*) FROM webhook_deliveries WHERE state <> 'succeeded'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            let settled =
                wearhouse_projections::caught_up(&common::pool(&s.db.url).get().await.unwrap())
                    .await
                    .unwrap();
            pending == 0 && settled
        },
    )
    .await;
    let queued: Vec<String> = client
        .query(
            "SELECT message_id FROM webhook_deliveries ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let got = log.lock().unwrap().clone();
    assert!(
        before < queued.len(),
        "the kill came after every delivery ({before} of {})",
        queued.len()
    );
    let mut seen = std::collections::HashSet::new();
    let first: Vec<String> = got
        .iter()
        .filter(|id| seen.insert((*id).clone()))
        .cloned()
        .collect();
    assert_eq!(first, queued, "lost or reordered");
    // Duplicates (at least once) are resends of queued messages under their own id.
    assert!(got.iter().all(|id| queued.contains(id)));
}
