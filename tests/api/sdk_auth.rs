//! Mobile-SDK credentials: applications (secret shown once, kept hashed), SDK user tokens
//! (issue, refresh, revoke, refused by every non-SDK route), the SDK routes' check
//! (`wearhouse::auth::sdk_credential`, behind `SdkAuth`: own user,
//! other user, expired, deleted) and invitation codes (single use, also under concurrent
//! redemption, expiry, throttling, bad bodies).

use crate::common;

use std::time::Duration;

use common::{call, create_user, Server, TestDb, KEY_HEADER, SECRET};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wearhouse::auth::{self, CredentialStore, Jwt, Presented, SdkCaller, SdkDenied};

/// The server's credential tables, checked by the library function the SDK routes use.
struct Store {
    pool: deadpool_postgres::Pool,
    jwt: Jwt,
}

impl CredentialStore for Store {
    fn pool(&self) -> &deadpool_postgres::Pool {
        &self.pool
    }
    fn jwt(&self) -> &Jwt {
        &self.jwt
    }
}

fn store(s: &Server) -> Store {
    Store {
        pool: common::pool(&s.db.url),
        jwt: Jwt::new(SECRET.as_bytes(), 60),
    }
}

async fn sdk_check(
    s: &Store,
    bearer: Option<&str>,
    key: Option<&str>,
    user: &str,
) -> Result<SdkCaller, SdkDenied> {
    let presented = Presented {
        bearer: bearer.map(String::from),
        api_key: key.map(String::from),
    };
    auth::sdk_credential(s, &presented, user).await
}

fn is_detail(body: &Value) -> bool {
    body.as_object().is_some_and(|o| o.len() == 1) && body["detail"].is_string()
}

async fn new_app(s: &Server, jwt: &str, name: &str) -> Value {
    let (st, app) = call(
        s.req(Method::POST, "/api/v1/applications")
            .bearer_auth(jwt)
            .json(&json!({ "name": name })),
    )
    .await;
    assert_eq!(st, 201, "{app}");
    app
}

async fn user_token(s: &Server, user: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = s.req(Method::POST, &format!("/api/v1/users/{user}/token"));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    call(rb).await
}

async fn all_events(s: &Server) -> String {
    s.db.client()
        .await
        .query_one(
            "SELECT coalesce(string_agg(payload::text, ''), '') FROM events",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn application_lifecycle_and_secret_shown_once() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;

    let app = new_app(&s, &jwt, " Mobile ").await;
    let app_id = app["app_id"].as_str().unwrap().to_string();
    let secret = app["app_secret"].as_str().unwrap().to_string();
    assert!(app_id.starts_with("app_") && app_id.len() == 36, "{app}");
    assert!(secret.starts_with("secret_") && secret.len() == 71, "{app}");
    assert_eq!(app["name"], "Mobile");
    assert!(app["id"].as_str().unwrap().parse::<Uuid>().is_ok());
    assert!(app["created_at"].is_string());

    // Listed without the secret; the secret is nowhere in the database.
    let (st, list) = call(s.req(Method::GET, "/api/v1/applications").bearer_auth(&jwt)).await;
    assert_eq!(st, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["app_id"], app_id.as_str());
    assert_eq!(
        (&list[0]["id"], &list[0]["name"], &list[0]["created_at"]),
        (&app["id"], &app["name"], &app["created_at"])
    );
    assert!(list[0].get("app_secret").is_none(), "{list}");
    let db = s.db.client().await;
    let stored: String = db
        .query_one(
            "SELECT string_agg(app_id || name || secret_hash, '') FROM applications",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!stored.contains(&secret) && !stored.contains(&secret[7..]));
    assert!(stored.contains(&wearhouse::auth::sha256_hex(&secret)));
    let events = all_events(&s).await;
    assert!(
        !events.contains(&secret[7..]),
        "the secret is not in the log"
    );

    // The credentials give SDK tokens for the user.
    let creds = json!({"app_id": app_id, "app_secret": secret});
    let (st, t) = user_token(&s, &user, Some(creds.clone())).await;
    assert_eq!(st, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_string();
    let claims = Jwt::new(SECRET.as_bytes(), 60).decode(&access).unwrap();
    assert_eq!(claims.scope.as_deref(), Some("sdk"));
    assert_eq!(claims.sub, user);
    assert_eq!(claims.app_id.as_deref(), Some(app_id.as_str()));
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 3600);
    assert!(t["refresh_token"].as_str().unwrap().starts_with("rt-"));

    // Rotation: a new secret shown once; the old one stops working.
    let (st, rotated) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/applications/{app_id}/rotate-secret"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{rotated}");
    assert_eq!(rotated["app_id"], app_id.as_str());
    assert_eq!(rotated["id"], app["id"]);
    let new_secret = rotated["app_secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let (st, body) = user_token(&s, &user, Some(creds)).await;
    assert_eq!(
        (st, &body),
        (401, &json!({"detail": "Invalid app credentials"}))
    );
    let creds = json!({"app_id": app_id, "app_secret": new_secret});
    let (st, t2) = user_token(&s, &user, Some(creds.clone())).await;
    assert_eq!(st, 200, "{t2}");

    // Unknown applications are not found (for rotation and deletion alike).
    for (m, p) in [
        (Method::DELETE, "/api/v1/applications/app_nope".to_string()),
        (
            Method::POST,
            "/api/v1/applications/app_nope/rotate-secret".to_string(),
        ),
    ] {
        let (st, body) = call(s.req(m, &p).bearer_auth(&jwt)).await;
        assert_eq!(
            (st, &body),
            (404, &json!({"detail": "Application not found"}))
        );
    }

    // Deletion: 204; its credentials and the SDK tokens issued with them stop working.
    let (st, body) = call(
        s.req(Method::DELETE, &format!("/api/v1/applications/{app_id}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!((st, body), (204, Value::Null));
    let (st, _) = user_token(&s, &user, Some(creds)).await;
    assert_eq!(st, 401);
    let checker = store(&s);
    assert!(matches!(
        sdk_check(&checker, Some(&access), None, &user).await,
        Err(SdkDenied::Missing)
    ));
    let (st, body) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({"refresh_token": t2["refresh_token"]})),
    )
    .await;
    assert_eq!(
        (st, &body["detail"]),
        (401, &json!("Invalid or revoked refresh token"))
    );
    let (st, list) = call(s.req(Method::GET, "/api/v1/applications").bearer_auth(&jwt)).await;
    assert_eq!((st, list), (200, json!([])));

    // Applications are a developer's: no API key, no SDK token.
    let (st, body) = call(
        s.req(Method::GET, "/api/v1/applications")
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 401, "{body}");
    let (st, body) = call(
        s.req(Method::GET, "/api/v1/applications")
            .bearer_auth(&access),
    )
    .await;
    assert_eq!(st, 401, "{body}");
}

#[tokio::test]
async fn bad_application_bodies_are_refused_with_detail() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let too_long = "x".repeat(101);
    for body in [
        json!({}),
        json!({"name": 5}),
        json!({"name": null}),
        json!({"name": "   "}),
        json!({"name": too_long}),
        json!([]),
    ] {
        let (st, answer) = call(
            s.req(Method::POST, "/api/v1/applications")
                .bearer_auth(&jwt)
                .json(&body),
        )
        .await;
        assert_eq!(st, 400, "{body}: {answer}");
        assert!(is_detail(&answer), "{answer}");
    }
    let (st, answer) = call(
        s.req(Method::POST, "/api/v1/applications")
            .bearer_auth(&jwt)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(st, 400, "{answer}");
    assert!(is_detail(&answer));
    let (st, list) = call(s.req(Method::GET, "/api/v1/applications").bearer_auth(&jwt)).await;
    assert_eq!((st, list), (200, json!([])), "nothing was written");
}

#[tokio::test]
async fn sdk_tokens_issue_refresh_revoke_and_stay_on_their_routes() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let other = create_user(&s, &key).await;

    // Neither credential: 400; bad ones: 401; unknown user: 404.
    let (st, body) = user_token(&s, &user, None).await;
    assert_eq!(st, 400, "{body}");
    assert!(is_detail(&body));
    for b in [json!(null), json!({}), json!({"app_id": "app_x"})] {
        let (st, body) = user_token(&s, &user, Some(b.clone())).await;
        assert_eq!(st, 400, "{b}: {body}");
    }
    let (st, body) = user_token(
        &s,
        &user,
        Some(json!({"app_id": "app_x", "app_secret": "secret_y"})),
    )
    .await;
    assert_eq!(
        (st, &body),
        (401, &json!({"detail": "Invalid app credentials"}))
    );
    let (st, body) = user_token(&s, &user, Some(json!({"app_id": 5}))).await;
    assert_eq!(st, 400, "{body}");
    let missing = Uuid::new_v4();
    let (st, body) = call(
        s.req(Method::POST, &format!("/api/v1/users/{missing}/token"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 404, "{body}");
    let (st, body) = call(
        s.req(Method::POST, "/api/v1/users/not-a-uuid/token")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 400, "{body}");

    // A developer bearer token issues them.
    let (st, t) = call(
        s.req(Method::POST, &format!("/api/v1/users/{user}/token"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let claims = Jwt::new(SECRET.as_bytes(), 60).decode(&access).unwrap();
    assert_eq!(
        claims.app_id.unwrap(),
        format!("admin:{}", developer_id(&s).await)
    );
    let stored: i64 =
        s.db.client()
            .await
            .query_one(
                "SELECT count(*) FROM sdk_refresh_tokens WHERE token_hash = $1",
                &[&auth::sha256_hex(&refresh)],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(stored, 1, "kept as its hash");
    assert!(!all_events(&s).await.contains(&refresh));

    // The SDK routes' check: own user only, API keys for anyone.
    let checker = store(&s);
    assert_eq!(
        sdk_check(&checker, Some(&access), None, &user)
            .await
            .unwrap(),
        SdkCaller::User {
            user: user.parse().unwrap(),
            app_id: format!("admin:{}", developer_id(&s).await),
        }
    );
    assert!(matches!(
        sdk_check(&checker, Some(&access), None, &other).await,
        Err(SdkDenied::OtherUser)
    ));
    // The token decides even next to a valid key, as upstream.
    assert!(matches!(
        sdk_check(&checker, Some(&access), Some(&key), &other).await,
        Err(SdkDenied::OtherUser)
    ));
    assert!(matches!(
        sdk_check(&checker, Some(&access), None, "not-a-uuid").await,
        Err(SdkDenied::OtherUser)
    ));
    assert!(matches!(
        sdk_check(&checker, None, Some(&key), &other).await,
        Ok(SdkCaller::ApiKey(_))
    ));
    assert!(matches!(
        sdk_check(&checker, None, Some("sk-nope"), &user).await,
        Err(SdkDenied::BadApiKey)
    ));
    assert!(matches!(
        sdk_check(&checker, None, None, &user).await,
        Err(SdkDenied::Missing)
    ));
    // A developer token, a forged one and an expired one are no SDK credential.
    for bad in [
        jwt.clone(),
        Jwt::new(b"another-secret-another-secret-xx", 60).issue_sdk(
            user.parse().unwrap(),
            "admin:x",
            chrono::Utc::now(),
        ),
        Jwt::new(SECRET.as_bytes(), 60).issue_sdk(
            user.parse().unwrap(),
            "admin:x",
            chrono::Utc::now() - chrono::Duration::minutes(61),
        ),
        "garbage".into(),
    ] {
        let denied = sdk_check(&checker, Some(&bad), None, &user).await;
        assert!(matches!(denied, Err(SdkDenied::Missing)), "{denied:?}");
        assert_eq!(
            denied.unwrap_err().to_string(),
            "Authentication required: provide SDK token or API key"
        );
    }

    // Every other route refuses the SDK token, the user's own data included.
    let range = "start_time=2000-01-01T00:00:00Z&end_time=2100-01-01T00:00:00Z";
    for (m, p) in [
        (Method::GET, "/api/v1/users".to_string()),
        (Method::GET, format!("/api/v1/users/{user}")),
        (
            Method::GET,
            format!("/api/v1/users/{user}/timeseries?{range}"),
        ),
        (Method::GET, format!("/api/v1/users/{user}/data-sources")),
        (Method::GET, format!("/api/v1/users/{user}/sync/runs")),
        (Method::GET, "/api/v1/auth/me".to_string()),
        (Method::GET, "/api/v1/developer/api-keys".to_string()),
        (
            Method::POST,
            format!("/api/v1/users/{user}/invitation-code"),
        ),
        (Method::DELETE, format!("/api/v1/users/{user}")),
    ] {
        let (st, body) = call(s.req(m.clone(), &p).bearer_auth(&access)).await;
        assert_eq!(st, 401, "{m} {p}: {body}");
        assert!(is_detail(&body), "{body}");
    }
    let (_, body) = call(s.req(Method::GET, "/api/v1/auth/me").bearer_auth(&access)).await;
    assert_eq!(body["detail"], "SDK tokens cannot access this endpoint");
    // Nor can it mint more tokens.
    let (st, _) = call(
        s.req(Method::POST, &format!("/api/v1/users/{user}/token"))
            .bearer_auth(&access),
    )
    .await;
    assert_eq!(st, 400);

    // Refresh rotates: SDK tokens of the same user and application come back.
    let (st, t2) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({ "refresh_token": refresh })),
    )
    .await;
    assert_eq!(st, 200, "{t2}");
    let access2 = t2["access_token"].as_str().unwrap();
    let refresh2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh);
    let c2 = Jwt::new(SECRET.as_bytes(), 60).decode(access2).unwrap();
    assert_eq!(
        (c2.scope.as_deref(), c2.sub.as_str()),
        (Some("sdk"), user.as_str())
    );
    assert!(sdk_check(&checker, Some(access2), None, &user)
        .await
        .is_ok());
    // The old refresh token is spent; presenting it again ends the chain it started.
    let (st, body) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({ "refresh_token": refresh })),
    )
    .await;
    assert_eq!(
        (st, &body["detail"]),
        (401, &json!("Invalid or revoked refresh token"))
    );
    let (st, _) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({ "refresh_token": refresh2 })),
    )
    .await;
    assert_eq!(st, 401, "reuse of a rotated token revokes its successors");

    // Revocation: 204, then the token is gone (404 to revoke, 401 to refresh).
    let (_, t3) = call(
        s.req(Method::POST, &format!("/api/v1/users/{user}/token"))
            .bearer_auth(&jwt),
    )
    .await;
    let refresh3 = t3["refresh_token"].as_str().unwrap().to_string();
    let (st, body) = call(
        s.req(Method::POST, "/api/v1/token/revoke")
            .json(&json!({ "refresh_token": refresh3 })),
    )
    .await;
    assert_eq!((st, body), (204, Value::Null));
    let (st, body) = call(
        s.req(Method::POST, "/api/v1/token/revoke")
            .json(&json!({ "refresh_token": refresh3 })),
    )
    .await;
    assert_eq!(
        (st, &body),
        (404, &json!({"detail": "Refresh token not found"}))
    );
    let (st, _) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({ "refresh_token": refresh3 })),
    )
    .await;
    assert_eq!(st, 401);

    // A deleted user's tokens stop working, access and refresh alike.
    let (_, t4) = call(
        s.req(Method::POST, &format!("/api/v1/users/{other}/token"))
            .bearer_auth(&jwt),
    )
    .await;
    let other_access = t4["access_token"].as_str().unwrap().to_string();
    assert!(sdk_check(&checker, Some(&other_access), None, &other)
        .await
        .is_ok());
    let (st, _) = call(
        s.req(Method::DELETE, &format!("/api/v1/users/{other}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200);
    assert!(matches!(
        sdk_check(&checker, Some(&other_access), None, &other).await,
        Err(SdkDenied::Missing)
    ));
    let (st, _) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({ "refresh_token": t4["refresh_token"] })),
    )
    .await;
    assert_eq!(st, 401);
}

async fn developer_id(s: &Server) -> String {
    let (_, me) = call(
        s.req(Method::GET, "/api/v1/auth/me")
            .bearer_auth(s.login().await),
    )
    .await;
    me["id"].as_str().unwrap().to_string()
}

async fn new_code(s: &Server, jwt: &str, user: &str) -> Value {
    let (st, code) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/invitation-code"),
        )
        .bearer_auth(jwt),
    )
    .await;
    assert_eq!(st, 201, "{code}");
    code
}

async fn redeem(s: &Server, code: &Value) -> (u16, Value) {
    call(
        s.req(Method::POST, "/api/v1/invitation-code/redeem")
            .json(&json!({ "code": code })),
    )
    .await
}

#[tokio::test]
async fn invitation_codes_redeem_once_into_sdk_tokens() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;

    let created = new_code(&s, &jwt, &user).await;
    let code = created["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8);
    assert!(
        code.bytes().all(|b| auth::CODE_ALPHABET.contains(&b)),
        "{code}"
    );
    assert_eq!(created["user_id"], user.as_str());
    let at = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let lifetime = at(&created["expires_at"]) - at(&created["created_at"]);
    assert_eq!(lifetime, chrono::Duration::days(7));

    // Kept only as a keyed hash.
    let db = s.db.client().await;
    let rows: String = db
        .query_one(
            "SELECT string_agg(code_hash, '') FROM sdk_invitation_codes",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!rows.contains(&code) && !rows.contains(&auth::sha256_hex(&code)));
    assert!(!all_events(&s).await.contains(&code));

    // Redeemed once: the user's SDK token pair.
    let (st, t) = redeem(&s, &json!(code)).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["user_id"], user.as_str());
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 3600);
    let access = t["access_token"].as_str().unwrap();
    let claims = Jwt::new(SECRET.as_bytes(), 60).decode(access).unwrap();
    assert_eq!(
        (claims.scope.as_deref(), claims.sub.as_str()),
        (Some("sdk"), user.as_str())
    );
    let checker = store(&s);
    assert!(sdk_check(&checker, Some(access), None, &user).await.is_ok());
    let (st, t2) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({ "refresh_token": t["refresh_token"] })),
    )
    .await;
    assert_eq!(st, 200, "the redeemed refresh token works: {t2}");

    // Used, unknown: 404 with the contract's detail.
    for c in [json!(code), json!("ABCDEFGH")] {
        let (st, body) = redeem(&s, &c).await;
        assert_eq!(
            (st, &body),
            (
                404,
                &json!({"detail": "Invalid or expired invitation code"})
            ),
            "{c}"
        );
    }

    // A new code retires the older one.
    let first = new_code(&s, &jwt, &user).await;
    let second = new_code(&s, &jwt, &user).await;
    assert_eq!(redeem(&s, &first["code"]).await.0, 404);
    assert_eq!(redeem(&s, &second["code"]).await.0, 200);

    // Bad bodies: 400 {"detail"}.
    for body in [
        json!({}),
        json!({"code": "abcdefgh"}),
        json!({"code": "ABC"}),
        json!({"code": "ABCDEFGHJ"}),
        json!({"code": "ABCDEF0O"}),
        json!({"code": 12345678}),
        json!({"code": null}),
    ] {
        let (st, answer) = call(
            s.req(Method::POST, "/api/v1/invitation-code/redeem")
                .json(&body),
        )
        .await;
        assert_eq!(st, 400, "{body}: {answer}");
        assert!(is_detail(&answer), "{answer}");
    }

    // Creating codes: a developer's, for a user that exists.
    let missing = Uuid::new_v4();
    let (st, body) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{missing}/invitation-code"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 404, "{body}");
    let (st, body) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/invitation-code"),
        )
        .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 401, "{body}");

    // A deleted user's codes die with the user.
    let doomed = create_user(&s, &key).await;
    let code = new_code(&s, &jwt, &doomed).await;
    let (st, _) = call(
        s.req(Method::DELETE, &format!("/api/v1/users/{doomed}"))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(redeem(&s, &code["code"]).await.0, 404);
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_have_one_winner() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let code = new_code(&s, &jwt, &user).await["code"].clone();
    let attempts: Vec<_> = (0..8).map(|_| redeem(&s, &code)).collect();
    let results = futures::future::join_all(attempts).await;
    let won: Vec<_> = results.iter().filter(|(st, _)| *st == 200).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for (st, body) in results.iter().filter(|(st, _)| *st != 200) {
        assert_eq!(*st, 404, "{body}");
        assert!(is_detail(body));
    }
    let tokens: i64 =
        s.db.client()
            .await
            .query_one(
                "SELECT count(*) FROM sdk_refresh_tokens WHERE user_id = $1",
                &[&user.parse::<Uuid>().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(tokens, 1, "one refresh token for one redemption");
}

#[tokio::test]
async fn expired_codes_are_refused() {
    let s = Server::start_with(
        TestDb::new().await,
        &[("WEARHOUSE_INVITATION_CODE_TTL_SECS", "1")],
    )
    .await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let code = new_code(&s, &jwt, &user).await;
    let expires: chrono::DateTime<chrono::Utc> =
        code["expires_at"].as_str().unwrap().parse().unwrap();
    // Waits on the clock passing the code's expiry, not on a fixed pause.
    common::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the code's expiry",
        || async { chrono::Utc::now() > expires },
    )
    .await;
    let (st, body) = redeem(&s, &code["code"]).await;
    assert_eq!(
        (st, body),
        (404, json!({"detail": "Invalid or expired invitation code"}))
    );
}

#[tokio::test]
async fn guessing_codes_is_throttled_per_address() {
    let s = Server::start().await;
    let mut refused = 0;
    let mut throttled = None;
    for i in 0..40u32 {
        // Distinct wrong codes: the per-address count is what stops guessing.
        let guess: String = format!("{:08}", i)
            .bytes()
            .map(|b| auth::CODE_ALPHABET[(b - b'0') as usize] as char)
            .collect();
        let (st, body) = redeem(&s, &json!(guess)).await;
        match st {
            404 => refused += 1,
            429 => {
                throttled = Some(body);
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let body = throttled.expect("throttled within 40 wrong codes");
    assert!(refused >= 20, "{refused} free attempts");
    assert!(is_detail(&body), "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("try again"),
        "{body}"
    );
}

/// An SDK route as the sync and logs routes declare theirs: `SdkAuth` reads `user_id` from the
/// path. Served with the server's credential tables, it shows the extractor's answers on the
/// wire.
struct Probe;

#[poem_openapi::OpenApi]
impl Probe {
    #[oai(path = "/api/v1/sdk/users/:user_id/probe", method = "post")]
    async fn probe(
        &self,
        auth: auth::SdkAuth,
        #[allow(unused_variables)] user_id: poem_openapi::param::Path<String>,
    ) -> poem_openapi::payload::PlainText<String> {
        poem_openapi::payload::PlainText(match auth.0 {
            SdkCaller::User { user, .. } => format!("user {user}"),
            SdkCaller::ApiKey(_) => "api key".into(),
        })
    }
}

#[tokio::test]
async fn the_sdk_extractor_answers_401_and_403_on_the_wire() {
    use std::sync::Arc;
    let s = Server::start().await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let other = create_user(&s, &key).await;
    let (_, t) = call(
        s.req(Method::POST, &format!("/api/v1/users/{user}/token"))
            .bearer_auth(&jwt),
    )
    .await;
    let access = t["access_token"].as_str().unwrap().to_string();

    let service = poem_openapi::OpenApiService::new(Probe, "probe", "1");
    let doc: Value = serde_json::from_str(&service.spec()).unwrap();
    let op = &doc["paths"]["/api/v1/sdk/users/{user_id}/probe"]["post"];
    assert_eq!(
        op["security"],
        json!([{"ApiKeyAuth": []}, {"SdkBearer": []}]),
        "{op}"
    );
    let port = common::free_port();
    let app = poem::EndpointExt::data(
        poem::Route::new().nest("/", service),
        Arc::new(store(&s)) as Arc<dyn CredentialStore>,
    );
    tokio::spawn(
        poem::Server::new(poem::listener::TcpListener::bind(format!(
            "127.0.0.1:{port}"
        )))
        .run(app),
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    common::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "the probe listens",
        || {
            let http = http.clone();
            let base = base.clone();
            async move { http.get(&base).send().await.is_ok() }
        },
    )
    .await;
    let probe = |who: &str| http.post(format!("{base}/api/v1/sdk/users/{who}/probe"));
    let answer = |rb: reqwest::RequestBuilder| async move {
        let r = rb.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(
        answer(probe(&user).bearer_auth(&access)).await,
        (200, format!("user {user}"))
    );
    assert_eq!(
        answer(probe(&other).bearer_auth(&access)).await,
        (403, "Token does not match user_id".to_string())
    );
    assert_eq!(
        answer(probe(&other).header(KEY_HEADER, &key)).await,
        (200, "api key".to_string())
    );
    for rb in [
        probe(&user),
        probe(&user).bearer_auth(&jwt),
        probe(&user).bearer_auth("not-a-jwt"),
    ] {
        assert_eq!(
            answer(rb).await,
            (
                401,
                "Authentication required: provide SDK token or API key".to_string()
            )
        );
    }
    assert_eq!(
        answer(probe(&user).header(KEY_HEADER, "sk-nope")).await,
        (401, "Invalid or missing API key".to_string())
    );
}

#[tokio::test]
async fn a_developer_manages_only_its_own_applications() {
    use wearhouse_domain::developer::{developer_id, Developer, DeveloperCommand, Role};
    let s = Server::start().await;
    let jwt = s.login().await;
    let app = new_app(&s, &jwt, "Admin's").await;
    let app_id = app["app_id"].as_str().unwrap();

    // A second developer, registered through the same command the server's bootstrap uses.
    let (email, password) = ("second@test.local", "second-password-1");
    let commands = wearhouse::store::Commands {
        pool: common::pool(&s.db.url),
        runner: None,
    };
    commands
        .execute::<Developer>(
            &developer_id(email).to_string(),
            DeveloperCommand::Register {
                email: email.into(),
                password_hash: auth::hash_password(password),
                first_name: None,
                last_name: None,
                role: Role::Developer,
                at: chrono::Utc::now(),
            },
            &wearhouse::store::Actor {
                kind: "system",
                id: "test".into(),
                request_id: None,
            },
            None,
            None,
        )
        .await
        .unwrap();
    let login = || {
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", email), ("password", password)])
    };
    common::wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        "the second developer can sign in",
        || async { call(login()).await.0 == 200 },
    )
    .await;
    let second = call(login()).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let (st, list) = call(
        s.req(Method::GET, "/api/v1/applications")
            .bearer_auth(&second),
    )
    .await;
    assert_eq!((st, list), (200, json!([])));
    for (m, p) in [
        (Method::DELETE, format!("/api/v1/applications/{app_id}")),
        (
            Method::POST,
            format!("/api/v1/applications/{app_id}/rotate-secret"),
        ),
    ] {
        let (st, body) = call(s.req(m, &p).bearer_auth(&second)).await;
        assert_eq!(
            (st, &body),
            (404, &json!({"detail": "Application not found"}))
        );
    }
    let (st, list) = call(s.req(Method::GET, "/api/v1/applications").bearer_auth(&jwt)).await;
    assert_eq!(st, 200);
    assert_eq!(list[0]["app_id"], app_id, "untouched: {list}");
    // The secret still works: the other developer's attempts changed nothing.
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let (st, _) = user_token(
        &s,
        &user,
        Some(json!({"app_id": app_id, "app_secret": app["app_secret"]})),
    )
    .await;
    assert_eq!(st, 200);
}

/// The SDK credential read models are what their events say: dropped and rebuilt from the log,
/// they hold the same rows (applications created, rotated, deleted; tokens issued, rotated,
/// revoked; codes issued, retired, redeemed; a deleted user's rows gone).
#[tokio::test]
async fn sdk_credential_read_models_rebuild_from_the_log() {
    let mut s = Server::start().await;
    let jwt = s.login().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let gone = create_user(&s, &key).await;
    let kept = new_app(&s, &jwt, "Kept").await;
    let app_id = kept["app_id"].as_str().unwrap();
    let dropped = new_app(&s, &jwt, "Dropped").await;
    call(
        s.req(
            Method::POST,
            &format!("/api/v1/applications/{app_id}/rotate-secret"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    call(
        s.req(
            Method::DELETE,
            &format!(
                "/api/v1/applications/{}",
                dropped["app_id"].as_str().unwrap()
            ),
        )
        .bearer_auth(&jwt),
    )
    .await;
    for u in [&user, &gone] {
        let (_, t) = call(
            s.req(Method::POST, &format!("/api/v1/users/{u}/token"))
                .bearer_auth(&jwt),
        )
        .await;
        call(
            s.req(Method::POST, "/api/v1/token/refresh")
                .json(&json!({"refresh_token": t["refresh_token"]})),
        )
        .await;
        new_code(&s, &jwt, u).await;
    }
    let code = new_code(&s, &jwt, &user).await;
    assert_eq!(redeem(&s, &code["code"]).await.0, 200);
    new_code(&s, &jwt, &user).await;
    call(
        s.req(Method::DELETE, &format!("/api/v1/users/{gone}"))
            .bearer_auth(&jwt),
    )
    .await;
    s.settle().await;
    s.shutdown().await;

    let dump = |table: &'static str| {
        let url = s.db.url.clone();
        async move {
            let c = common::connect(&url).await;
            let mut rows: Vec<String> = c
                .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            rows.sort();
            rows
        }
    };
    let tables = ["applications", "sdk_refresh_tokens", "sdk_invitation_codes"];
    let mut before = vec![];
    for t in tables {
        before.push(dump(t).await);
    }
    assert_eq!(before[0].len(), 1, "{:?}", before[0]);
    assert_eq!(
        before[1].len(),
        2,
        "the user's rotated and redeemed tokens: {:?}",
        before[1]
    );
    assert_eq!(
        before[2].len(),
        1,
        "the user's newest code: {:?}",
        before[2]
    );
    let pool = common::pool(&s.db.url);
    for p in wearhouse_projections::all()
        .into_iter()
        .filter(|p| ["applications", "sdk_access"].contains(&p.name()))
    {
        wearhouse_projections::runner::reset(&pool, p.as_ref())
            .await
            .unwrap();
        wearhouse_projections::Runner::new(pool.clone(), vec![p.clone()])
            .catch_up()
            .await
            .unwrap();
    }
    for (t, rows) in tables.iter().zip(before) {
        assert_eq!(dump(t).await, rows, "{t} rebuilt differs");
    }
}
