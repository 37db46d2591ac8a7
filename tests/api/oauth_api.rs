//! OAuth against the provider simulator (`wearhouse simulate providers`): which token-endpoint
//! errors revoke a connection, PKCE, what the app's `redirect_uri` learns, the public-authorize
//! setting, and tokens sealed before they were bound to their connection.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use common::sim::Sim;
use common::{call, Server, TestDb};
use reqwest::Method;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use serde_json::{json, Value};

const ENCRYPTION_KEY: [u8; 32] = [0x42; 32];

struct Env {
    sim: Sim,
    s: Server,
    key: String,
    /// The server's log, when it runs as a process (`setup_logged`).
    log: Option<std::path::PathBuf>,
}

/// The platform in-process against the simulator.
async fn setup(extra: &[(&str, &str)]) -> Env {
    start(extra, false).await
}

/// The binary against the simulator, its debug log kept: for tests that read the log.
async fn setup_logged(extra: &[(&str, &str)]) -> Env {
    start(extra, true).await
}

async fn start(extra: &[(&str, &str)], logged: bool) -> Env {
    let sim = Sim::start(50).await;
    let mut env = sim.env();
    env.push(("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT".into(), "0".into()));
    env.push(("WEARHOUSE_PROVIDER_TIMEOUT_SECS".into(), "2".into()));
    env.push(("WEARHOUSE_LOG".into(), "debug".into()));
    env.push((
        "WEARHOUSE_ENCRYPTION_KEY".into(),
        hex::encode(ENCRYPTION_KEY),
    ));
    for (k, v) in extra {
        env.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, log) = if logged {
        let log =
            std::env::temp_dir().join(format!("wearhouse-oauth-{}.log", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&log).unwrap();
        let s = Server::start_logging(TestDb::new().await, &refs, Stdio::from(file)).await;
        (s, Some(log))
    } else {
        (Server::start_with(TestDb::new().await, &refs).await, None)
    };
    let key = s.api_key().await;
    Env { sim, s, key, log }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

impl Env {
    fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.s
            .req(m, path)
            .header("X-Open-Wearables-API-Key", &self.key)
    }

    async fn user(&self) -> String {
        common::create_user(&self.s, &self.key).await
    }

    /// Starts an authorization and follows the consent redirect; returns the callback URL.
    async fn consent(&self, provider: &str, user: &str, redirect: Option<&str>) -> String {
        let mut path = format!("/api/v1/oauth/{provider}/authorize?user_id={user}");
        if let Some(r) = redirect {
            path.push_str(&format!("&redirect_uri={}", urlencode(r)));
        }
        let (st, body) = call(self.req(Method::GET, &path)).await;
        assert_eq!(st, 200, "{body}");
        let url = body["authorization_url"].as_str().unwrap();
        let r = self.sim.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// Calls the callback and returns where it redirects.
    async fn callback(&self, url: &str) -> String {
        let r = self.sim.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 303, "{:?}", r.text().await);
        r.headers()["location"].to_str().unwrap().to_string()
    }

    async fn connect(&self, provider: &str, user: &str) {
        let cb = self.consent(provider, user, None).await;
        let to = self.callback(&cb).await;
        assert!(to.contains("/api/v1/oauth/success"), "{to}");
    }

    async fn sync(&self, user: &str) -> Value {
        let since = (Utc::now() - chrono::Duration::days(1)).timestamp();
        let (_, body) = call(self.req(
            Method::POST,
            &format!("/api/v1/providers/oura/users/{user}/sync?async=false&since={since}"),
        ))
        .await;
        body
    }

    async fn connection(&self, user: &str) -> Value {
        let (st, body) =
            call(self.req(Method::GET, &format!("/api/v1/users/{user}/connections"))).await;
        assert_eq!(st, 200, "{body}");
        body[0].clone()
    }

    async fn events(&self, event_type: &str) -> i64 {
        self.s
            .db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM events WHERE event_type = $1",
                &[&event_type],
            )
            .await
            .unwrap()
            .get(0)
    }
}

#[tokio::test]
async fn only_invalid_grant_revokes_other_token_errors_are_reported_and_retried() {
    let e = setup_logged(&[]).await;
    let user = e.user().await;
    // Tokens that expire within the minute are refreshed before every run.
    e.sim.post("/_sim/config", json!({"expires_in": 30})).await;
    e.connect("oura", &user).await;
    let refreshed = e.events("TokensRefreshed").await;

    // The token endpoint rejects our client (a mistyped secret): 401 invalid_client.
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "oura", "kind": "invalid_client"}),
        )
        .await;
    let res = e.sync(&user).await;
    assert_eq!(res["success"], false, "{res}");
    let message = res["message"].as_str().unwrap();
    assert!(message.contains("invalid_client"), "{res}");
    assert!(!message.contains("revoked"), "{res}");
    let c = e.connection(&user).await;
    assert_eq!(c["status"], "active", "{c}");
    assert_eq!(e.events("ConnectionRevoked").await, 0);
    // The failed run is reported with its reason.
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let (_, runs) = call(e.req(Method::GET, &format!("/api/v1/users/{user}/sync/runs"))).await;
        let failed: Vec<Value> = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "failed")
            .cloned()
            .collect();
        if !failed.is_empty() {
            break failed;
        }
        assert!(Instant::now() < deadline, "no failed run: {runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{failed:?}"
    );

    // The next run retries the refresh, which now succeeds.
    let res = e.sync(&user).await;
    assert_eq!(res["success"], true, "{res}");
    assert!(e.events("TokensRefreshed").await > refreshed);

    // A token endpoint that is briefly unavailable is retried within the run.
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "oura", "kind": "token_status", "status": 503, "count": 2}),
        )
        .await;
    let res = e.sync(&user).await;
    assert_eq!(res["success"], true, "{res}");
    // One that stays unavailable fails the run, reported, and the connection stands.
    e.sim
        .post(
            "/_sim/faults",
            // As many as the engine's attempts, so none is left over.
            json!({"provider": "oura", "kind": "token_status", "status": 503, "count": 4}),
        )
        .await;
    let res = e.sync(&user).await;
    assert_eq!(res["success"], false, "{res}");
    assert!(res["message"].as_str().unwrap().contains("503"), "{res}");
    assert_eq!(e.connection(&user).await["status"], "active");

    // invalid_grant: the grant is dead, the connection is revoked.
    e.sim
        .post(
            "/_sim/faults",
            json!({"provider": "oura", "kind": "refuse_refresh"}),
        )
        .await;
    let res = e.sync(&user).await;
    assert_eq!(res["success"], false, "{res}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.connection(&user).await["status"] != "revoked" {
        assert!(Instant::now() < deadline, "connection not revoked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reason: String =
        e.s.db
            .client()
            .await
            .query_one("SELECT revoked_reason FROM connections", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(reason, "refresh_failed");

    // No token the simulator issued reached the server's (debug) log.
    let log = std::fs::read_to_string(e.log.as_ref().expect("started by setup_logged")).unwrap();
    assert!(!log.is_empty());
    assert!(!log.contains("sim-access-") && !log.contains("sim-refresh-"));
}

#[tokio::test]
async fn pkce_binds_the_code_to_the_authorization_that_asked_for_it() {
    let e = setup(&[]).await;
    let (a, b) = (e.user().await, e.user().await);
    // Garmin uses PKCE: the consent URL carries an S256 challenge.
    let (st, body) = call(e.req(
        Method::GET,
        &format!("/api/v1/oauth/garmin/authorize?user_id={a}"),
    ))
    .await;
    assert_eq!(st, 200);
    let q = query(body["authorization_url"].as_str().unwrap());
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);

    let cb_a = e.consent("garmin", &a, None).await;
    let cb_b = e.consent("garmin", &b, None).await;
    // A's code presented with B's state: the exchange sends B's verifier, which does not
    // match the challenge A's code was issued for, so the provider refuses it.
    let swapped = format!(
        "{}/api/v1/oauth/garmin/callback?code={}&state={}",
        e.s.url,
        query(&cb_a)["code"],
        query(&cb_b)["state"]
    );
    let to = e.callback(&swapped).await;
    assert!(to.contains("/api/v1/oauth/error"), "{to}");
    let (_, conns) = call(e.req(Method::GET, &format!("/api/v1/users/{b}/connections"))).await;
    assert!(
        conns
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "active"),
        "{conns}"
    );
    // B's own code with B's state (and so B's verifier) connects: the state was fine, the
    // refusal was the verifier. (A's code was spent by the refused attempt: codes are single-use.)
    let to = e.callback(&cb_b).await;
    assert!(to.contains("/api/v1/oauth/success"), "{to}");
    let cb_a = e.consent("garmin", &a, None).await;
    let to = e.callback(&cb_a).await;
    assert!(to.contains("/api/v1/oauth/success"), "{to}");
}

#[tokio::test]
async fn the_apps_redirect_uri_learns_the_outcome() {
    let e = setup(&[]).await;
    let user = e.user().await;
    // Success: the app's own query is kept, the outcome appended.
    let cb = e
        .consent("oura", &user, Some("https://app.example/done?session=7"))
        .await;
    let to = e.callback(&cb).await;
    assert!(to.starts_with("https://app.example/done?"), "{to}");
    let q = query(&to);
    assert_eq!(q["session"], "7");
    assert_eq!(q["success"], "true");
    assert_eq!(q["provider"], "oura");
    assert_eq!(q["user_id"], user);
    assert!(!q.contains_key("error"));

    // Denied consent: back to the app, not to our error page.
    e.sim
        .post("/_sim/faults", json!({"provider": "whoop", "kind": "deny"}))
        .await;
    let cb = e
        .consent("whoop", &user, Some("https://app.example/done"))
        .await;
    assert!(cb.contains("error=access_denied"), "{cb}");
    let to = e.callback(&cb).await;
    assert!(to.starts_with("https://app.example/done?"), "{to}");
    let q = query(&to);
    assert_eq!(q["success"], "false");
    assert_eq!(q["provider"], "whoop");
    assert_eq!(q["user_id"], user);
    assert_eq!(q["error"], "access_denied");
    assert!(q["message"].contains("denied"), "{to}");

    // Without a redirect_uri a denial still lands on our error page.
    e.sim
        .post("/_sim/faults", json!({"provider": "whoop", "kind": "deny"}))
        .await;
    let cb = e.consent("whoop", &user, None).await;
    let to = e.callback(&cb).await;
    assert!(to.contains("/api/v1/oauth/error?message="), "{to}");
}

#[tokio::test]
async fn authorize_needs_a_credential_unless_the_public_setting_is_on() {
    // Default: a credential is required.
    let e = setup(&[]).await;
    let user = e.user().await;
    let path = format!("/api/v1/oauth/oura/authorize?user_id={user}");
    let (st, body) = call(e.s.req(Method::GET, &path)).await;
    assert_eq!(st, 401, "{body}");
    assert!(body["detail"].is_string(), "{body}");
    let (st, _) = call(e.req(Method::GET, &path)).await;
    assert_eq!(st, 200);
    drop(e);

    // Public: the contract's behaviour, no credential needed.
    let e = setup(&[("WEARHOUSE_OAUTH_PUBLIC_AUTHORIZE", "true")]).await;
    let user = e.user().await;
    let path = format!("/api/v1/oauth/oura/authorize?user_id={user}");
    let (st, body) = call(e.s.req(Method::GET, &path)).await;
    assert_eq!(st, 200, "{body}");
    assert!(body["authorization_url"].is_string());
    // ... and the anonymous authorization completes.
    let url = body["authorization_url"].as_str().unwrap();
    let r = e.sim.http.get(url).send().await.unwrap();
    let cb = r.headers()["location"].to_str().unwrap().to_string();
    assert!(e.callback(&cb).await.contains("/api/v1/oauth/success"));
    // A credential that is presented must still be valid.
    let (st, body) = call(
        e.s.req(Method::GET, &path)
            .header("X-Open-Wearables-API-Key", "sk-not-a-key"),
    )
    .await;
    assert_eq!(st, 401, "{body}");
    // Unknown users are still refused.
    let (st, _) = call(e.s.req(
        Method::GET,
        &format!(
            "/api/v1/oauth/oura/authorize?user_id={}",
            uuid::Uuid::new_v4()
        ),
    ))
    .await;
    assert_eq!(st, 404);
}

fn key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &ENCRYPTION_KEY).unwrap())
}

fn open(sealed: &str, aad: &[u8]) -> String {
    let b = sealed
        .strip_prefix("v2.")
        .or(sealed.strip_prefix("v1."))
        .unwrap();
    let raw = URL_SAFE_NO_PAD.decode(b).unwrap();
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let mut buf = ct.to_vec();
    let plain = key()
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::from(aad),
            &mut buf,
        )
        .unwrap();
    String::from_utf8(plain.to_vec()).unwrap()
}

/// Seals as wearhouse did before tokens were bound to their connection.
fn seal_v1(plain: &str) -> String {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut buf = plain.as_bytes().to_vec();
    key()
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .unwrap();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    format!("v1.{}", URL_SAFE_NO_PAD.encode(out))
}

async fn sealed_tokens(c: &tokio_postgres::Client, user: &str) -> (String, String, String) {
    let id: uuid::Uuid = user.parse().unwrap();
    let row = c
        .query_one(
            "SELECT stream_id, access_token, refresh_token FROM connections WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn tokens_are_bound_to_their_connection_and_old_unbound_ones_still_open() {
    let e = setup(&[]).await;
    let (a, b) = (e.user().await, e.user().await);
    e.connect("oura", &a).await;
    e.connect("oura", &b).await;
    let c = e.s.db.client().await;
    let (stream_a, access_a, refresh_a) = sealed_tokens(&c, &a).await;
    assert!(access_a.starts_with("v2.") && refresh_a.starts_with("v2."));
    // Bound: the associated data names the connection and the field.
    let ctx = |field: &str| format!("wearhouse/connection/{stream_a}/{field}");
    let access = open(&access_a, ctx("access_token").as_bytes());
    let refresh = open(&refresh_a, ctx("refresh_token").as_bytes());
    assert!(access.starts_with("sim-access-"));

    // A's sealed tokens copied onto B's connection do not open there.
    let id_b: uuid::Uuid = b.parse().unwrap();
    c.execute(
        "UPDATE connections SET access_token = $1, refresh_token = $2 WHERE user_id = $3",
        &[&access_a, &refresh_a, &id_b],
    )
    .await
    .unwrap();
    let (_, res) = call(e.req(
        Method::POST,
        &format!(
            "/api/v1/providers/oura/users/{b}/sync?async=false&since={}",
            Utc::now().timestamp() - 86400
        ),
    ))
    .await;
    assert_eq!(res["success"], false, "{res}");

    // A's tokens re-sealed the old way (no associated data) still work...
    c.execute(
        "UPDATE connections SET access_token = $1, refresh_token = $2 WHERE stream_id = $3",
        &[&seal_v1(&access), &seal_v1(&refresh), &stream_a],
    )
    .await
    .unwrap();
    let res = e.sync(&a).await;
    assert_eq!(res["success"], true, "{res}");
    // ... and the next refresh replaces them with bound ones.
    c.execute(
        "UPDATE connections SET token_expires_at = now() WHERE stream_id = $1",
        &[&stream_a],
    )
    .await
    .unwrap();
    let res = e.sync(&a).await;
    assert_eq!(res["success"], true, "{res}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, access_now, refresh_now) = sealed_tokens(&c, &a).await;
        if access_now.starts_with("v2.") && refresh_now.starts_with("v2.") {
            let fresh = open(&access_now, ctx("access_token").as_bytes());
            assert!(fresh.starts_with("sim-access-") && fresh != access);
            break;
        }
        assert!(Instant::now() < deadline, "tokens were not re-sealed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
