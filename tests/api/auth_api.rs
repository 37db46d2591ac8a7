//! Credentials: API keys (create, list, rename, rotate, delete), developer JWTs, login,
//! refresh tokens, and the contract's 401 messages.

use crate::common;

use common::{call, Server, ADMIN_EMAIL, ADMIN_PASSWORD, SECRET};
use reqwest::Method;
use serde_json::{json, Value};

async fn users_with_key(s: &Server, key: &str) -> (u16, Value) {
    call(
        s.req(Method::GET, "/api/v1/users")
            .header("X-Open-Wearables-API-Key", key),
    )
    .await
}

#[tokio::test]
async fn api_key_lifecycle() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let (status, created) = call(
        s.req(Method::POST, "/api/v1/developer/api-keys")
            .bearer_auth(&jwt)
            .json(&json!({"name": "ci"})),
    )
    .await;
    assert_eq!(status, 201);
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-") && key.len() == 35, "{key}");
    // The id is the key's id (keys are kept hashed), never the key.
    let key_id = created["id"].as_str().unwrap().to_string();
    assert!(key_id.parse::<uuid::Uuid>().is_ok(), "{created}");
    assert_eq!(created["name"], "ci");
    assert!(created["created_at"].is_string() && created["created_by"].is_string());
    assert_eq!(users_with_key(&s, &key).await.0, 200);

    // Listing never shows the key, and the database never holds it.
    let (status, listed) = call(
        s.req(Method::GET, "/api/v1/developer/api-keys")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], key_id.as_str());
    assert_eq!(listed[0]["name"], "ci");
    assert!(!listed.to_string().contains(&key));
    let db = s.db.client().await;
    let dump: String = db
        .query_one(
            "SELECT coalesce(string_agg(payload::text, ''), '') FROM events",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(&key), "the key must not be stored in clear");
    let keys: String = db
        .query_one(
            "SELECT string_agg(key_hash || key_prefix, '') FROM api_keys",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!keys.contains(&key));

    // The key itself is never accepted in a URL (it would end up in access logs).
    for (m, path) in [
        (Method::PATCH, format!("/api/v1/developer/api-keys/{key}")),
        (Method::DELETE, format!("/api/v1/developer/api-keys/{key}")),
        (
            Method::POST,
            format!("/api/v1/developer/api-keys/{key}/rotate"),
        ),
    ] {
        let (status, body) = call(
            s.req(m, &path)
                .bearer_auth(&jwt)
                .json(&json!({"name": "x"})),
        )
        .await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_eq!(users_with_key(&s, &key).await.0, 200, "still valid");

    // Rename; a PATCH without a name keeps it (the name is optional upstream).
    let (status, renamed) = call(
        s.req(
            Method::PATCH,
            &format!("/api/v1/developer/api-keys/{key_id}"),
        )
        .bearer_auth(&jwt)
        .json(&json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(
        (status, renamed["name"].as_str().unwrap()),
        (200, "renamed")
    );
    for body in [json!({}), json!({"name": null})] {
        let (status, kept) = call(
            s.req(
                Method::PATCH,
                &format!("/api/v1/developer/api-keys/{key_id}"),
            )
            .bearer_auth(&jwt)
            .json(&body),
        )
        .await;
        assert_eq!((status, &kept["name"]), (200, &json!("renamed")), "{kept}");
        assert_eq!(kept["id"], key_id.as_str());
    }

    // Rotate: 201, a new key named "Default" as upstream; the old key stops, the new works.
    let (status, rotated) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/developer/api-keys/{key_id}/rotate"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(rotated["name"], "Default");
    let new_key = rotated["key"].as_str().unwrap().to_string();
    let new_id = rotated["id"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_ne!(new_id, key_id);
    let (status, body) = users_with_key(&s, &key).await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Invalid or missing API key")
    );
    assert_eq!(users_with_key(&s, &new_key).await.0, 200);

    // Delete: 200 with the deleted key (upstream's ApiKeyRead); it stops working at once.
    let (status, deleted) = call(
        s.req(
            Method::DELETE,
            &format!("/api/v1/developer/api-keys/{new_id}"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        (&deleted["id"], &deleted["name"]),
        (&json!(new_id), &json!("Default"))
    );
    assert!(deleted["created_at"].is_string() && !deleted.to_string().contains(&new_key));
    assert_eq!(users_with_key(&s, &new_key).await.0, 401);
    let (status, _) = call(
        s.req(
            Method::DELETE,
            &format!("/api/v1/developer/api-keys/{new_id}"),
        )
        .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 404);

    // Key management needs a developer JWT, not an API key.
    let other = s.api_key().await;
    let (status, body) = call(
        s.req(Method::GET, "/api/v1/developer/api-keys")
            .header("X-Open-Wearables-API-Key", &other),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Could not validate credentials")
    );
}

#[tokio::test]
async fn api_key_create_body_is_optional() {
    let s = Server::start().await;
    let jwt = s.login().await;
    // No body and no Content-Type at all, an empty JSON object, and a name.
    let bare = s
        .req(Method::POST, "/api/v1/developer/api-keys")
        .bearer_auth(&jwt);
    let empty = s
        .req(Method::POST, "/api/v1/developer/api-keys")
        .bearer_auth(&jwt)
        .json(&json!({}));
    let named = s
        .req(Method::POST, "/api/v1/developer/api-keys")
        .bearer_auth(&jwt)
        .json(&json!({"name": "ci"}));
    for (rb, name) in [(bare, "Default"), (empty, "Default"), (named, "ci")] {
        let (status, created) = call(rb).await;
        assert_eq!((status, &created["name"]), (201, &json!(name)), "{created}");
        let key = created["key"].as_str().unwrap();
        assert_eq!(users_with_key(&s, key).await.0, 200);
    }
    // A body that is there must be valid.
    let (status, body) = call(
        s.req(Method::POST, "/api/v1/developer/api-keys")
            .bearer_auth(&jwt)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].is_string());
    let (status, _) = call(
        s.req(Method::POST, "/api/v1/developer/api-keys")
            .bearer_auth(&jwt)
            .json(&json!({"name": ["not", "a", "name"]})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn developer_profile_and_password_change() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let (status, me) = call(
        s.req(Method::PATCH, "/api/v1/auth/me")
            .bearer_auth(&jwt)
            .json(&json!({"first_name": "Grace", "last_name": "Hopper"})),
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (&me["first_name"], &me["last_name"], &me["email"]),
        (&json!("Grace"), &json!("Hopper"), &json!(ADMIN_EMAIL))
    );
    assert!(me["updated_at"].as_str().unwrap() > me["created_at"].as_str().unwrap());
    let (_, again) = call(s.req(Method::GET, "/api/v1/auth/me").bearer_auth(&jwt)).await;
    assert_eq!(again, me);
    // Absent fields are kept; bad values are 400 with a detail.
    let (status, me2) = call(
        s.req(Method::PATCH, "/api/v1/auth/me")
            .bearer_auth(&jwt)
            .json(&json!({"last_name": "H."})),
    )
    .await;
    assert_eq!((status, &me2["first_name"]), (200, &json!("Grace")));
    for bad in [
        json!({"email": "not-an-email"}),
        json!({"first_name": "x".repeat(101)}),
        json!({"password": "short"}),
    ] {
        let (status, body) = call(
            s.req(Method::PATCH, "/api/v1/auth/me")
                .bearer_auth(&jwt)
                .json(&bad),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["detail"].is_string());
    }
    // An API key is not a developer credential.
    let key = s.api_key().await;
    let (status, _) = call(
        s.req(Method::PATCH, "/api/v1/auth/me")
            .header("X-Open-Wearables-API-Key", &key)
            .json(&json!({"first_name": "x"})),
    )
    .await;
    assert_eq!(status, 401);

    // Change the password: the wrong current one, a mismatch and a short one are 400.
    let change = |cur: &str, new: &str, confirm: &str| {
        s.req(Method::POST, "/api/v1/auth/change-password")
            .bearer_auth(&jwt)
            .json(
                &json!({"current_password": cur, "new_password": new, "confirm_password": confirm}),
            )
    };
    let (status, body) = call(change("wrong-password", "new-password-1", "new-password-1")).await;
    assert_eq!(
        (status, &body["detail"]),
        (400, &json!("Incorrect current password"))
    );
    let (status, _) = call(change(ADMIN_PASSWORD, "new-password-1", "new-password-2")).await;
    assert_eq!(status, 400);
    let (status, _) = call(change(ADMIN_PASSWORD, "short", "short")).await;
    assert_eq!(status, 400);
    let (status, body) = call(change(ADMIN_PASSWORD, "new-password-1", "new-password-1")).await;
    assert_eq!(
        (status, body),
        (200, json!({"message": "Password updated successfully"}))
    );
    let login = |password: &str| {
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", ADMIN_EMAIL), ("password", password)])
    };
    assert_eq!(call(login(ADMIN_PASSWORD)).await.0, 401);
    assert_eq!(call(login("new-password-1")).await.0, 200);

    // A new e-mail: login with it works, the old one no longer does.
    let (status, me) = call(
        s.req(Method::PATCH, "/api/v1/auth/me")
            .bearer_auth(&jwt)
            .json(&json!({"email": "New.Admin@Example.com"})),
    )
    .await;
    assert_eq!(
        (status, &me["email"]),
        (200, &json!("new.admin@example.com"))
    );
    let (status, _) = call(s.req(Method::POST, "/api/v1/auth/login").form(&[
        ("username", "new.admin@example.com"),
        ("password", "new-password-1"),
    ]))
    .await;
    assert_eq!(status, 200);
    assert_eq!(call(login("new-password-1")).await.0, 401);
}

#[tokio::test]
async fn cors_follows_wearhouse_cors_origins() {
    // Not configured: no CORS headers, as upstream with no CORS_ORIGINS.
    let s = Server::start().await;
    let r = s
        .req(Method::GET, "/")
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    drop(s);

    let s = Server::start_with(
        common::TestDb::new().await,
        &[(
            "WEARHOUSE_CORS_ORIGINS",
            "https://app.example.com, http://localhost:3000",
        )],
    )
    .await;
    let key = s.api_key().await;
    let preflight = s
        .req(Method::OPTIONS, "/api/v1/users")
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-open-wearables-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-open-wearables-api-key"));
    let r = s
        .req(Method::GET, "/api/v1/users")
        .header("Origin", "https://app.example.com")
        .header("X-Open-Wearables-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Another origin is served without CORS headers (the browser withholds the answer).
    let r = s
        .req(Method::GET, "/")
        .header("Origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    drop(s);

    // `*`: every origin.
    let s = Server::start_with(
        common::TestDb::new().await,
        &[("WEARHOUSE_CORS_ORIGINS", "*")],
    )
    .await;
    let r = s
        .req(Method::GET, "/")
        .header("Origin", "https://anything.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://anything.example.org"
    );
}

#[tokio::test]
async fn missing_wrong_and_expired_credentials_are_401() {
    let s = Server::start().await;
    let (status, body) = call(s.req(Method::GET, "/api/v1/users")).await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Authentication required: provide JWT token or API key")
    );
    let (status, body) = users_with_key(&s, "sk-00000000000000000000000000000000").await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Invalid or missing API key")
    );
    let (status, body) = users_with_key(&s, "").await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Invalid or missing API key")
    );

    // An expired JWT signed with the right key, a JWT signed with another key, garbage.
    let claims = |exp: i64| json!({"sub": wearhouse_domain::developer::developer_id(ADMIN_EMAIL).to_string(), "exp": exp, "iat": exp - 3600});
    let now = chrono::Utc::now().timestamp();
    let sign = |c: &Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            c,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let valid = sign(&claims(now + 600), SECRET);
    let expired = sign(&claims(now - 10), SECRET);
    let forged = sign(&claims(now + 600), "some-other-secret-some-other-secret");
    let sdk = sign(
        &json!({"sub": uuid::Uuid::new_v4().to_string(), "exp": now + 600, "scope": "sdk"}),
        SECRET,
    );
    let (status, _) = call(s.req(Method::GET, "/api/v1/auth/me").bearer_auth(&valid)).await;
    assert_eq!(status, 200);
    for (token, expected) in [
        (&expired, "Could not validate credentials"),
        (&forged, "Could not validate credentials"),
        (&"garbage".to_string(), "Could not validate credentials"),
        (&sdk, "SDK tokens cannot access this endpoint"),
    ] {
        let r = s
            .req(Method::GET, "/api/v1/auth/me")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        if expected == "Could not validate credentials" {
            assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["detail"], expected);
        // On API-key endpoints a bad JWT without a key is refused too.
        let (status, _) = call(s.req(Method::GET, "/api/v1/users").bearer_auth(token)).await;
        assert_eq!(status, 401);
    }
    // A JWT and a good API key: the key still lets the caller in, as upstream.
    let key = s.api_key().await;
    let (status, _) = call(
        s.req(Method::GET, "/api/v1/users")
            .bearer_auth(&expired)
            .header("X-Open-Wearables-API-Key", &key),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn login_me_refresh_and_revoke() {
    let s = Server::start().await;
    let (status, body) = call(
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", ADMIN_EMAIL), ("password", "wrong")]),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Incorrect email or password")
    );
    let (status, body) = call(
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", "nobody@x.io"), ("password", ADMIN_PASSWORD)]),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Incorrect email or password")
    );
    let (status, _) = call(
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", ADMIN_EMAIL)]),
    )
    .await;
    assert_eq!(status, 401);

    let (status, tokens) = call(s.req(Method::POST, "/api/v1/auth/login").form(&[
        ("username", ADMIN_EMAIL.to_uppercase().as_str()),
        ("password", ADMIN_PASSWORD),
    ]))
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    assert!(refresh.starts_with("rt-"));

    let (status, me) = call(s.req(Method::GET, "/api/v1/auth/me").bearer_auth(access)).await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], ADMIN_EMAIL);
    let (status, body) = call(s.req(Method::GET, "/api/v1/auth/me")).await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (401, "Could not validate credentials")
    );

    // Refresh rotates: the new pair works, the old refresh token does not.
    let (status, next) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, 200, "{next}");
    let next_refresh = next["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next_refresh, refresh);
    let (status, _) = call(
        s.req(Method::GET, "/api/v1/auth/me")
            .bearer_auth(next["access_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, 401);
    // That reuse of a rotated token revoked the rest of its chain.
    let (status, _) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({"refresh_token": next_refresh})),
    )
    .await;
    assert_eq!(status, 401);

    // Revoke (a fresh sign-in's refresh token).
    let (status, fresh) = call(
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)]),
    )
    .await;
    assert_eq!(status, 200, "{fresh}");
    let next_refresh = fresh["refresh_token"].as_str().unwrap().to_string();
    let (status, _) = call(
        s.req(Method::POST, "/api/v1/token/revoke")
            .json(&json!({"refresh_token": next_refresh})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        s.req(Method::POST, "/api/v1/token/refresh")
            .json(&json!({"refresh_token": next_refresh})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        s.req(Method::POST, "/api/v1/token/revoke")
            .json(&json!({"refresh_token": next_refresh})),
    )
    .await;
    assert_eq!(status, 404);

    // Passwords are stored as argon2 hashes only.
    let db = s.db.client().await;
    let hash: String = db
        .query_one("SELECT password_hash FROM developers", &[])
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"));
    let all: String = db
        .query_one(
            "SELECT string_agg(payload::text || metadata::text, '') FROM events",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!all.contains(ADMIN_PASSWORD) && !all.contains(&refresh));
}

#[tokio::test]
async fn docs_openapi_health_and_graceful_shutdown() {
    // The binary: the test is its exit status after SIGTERM.
    let mut s = Server::start_process(common::TestDb::new().await, &[]).await;
    let (status, body) = call(s.req(Method::GET, "/")).await;
    assert_eq!(
        (status, body),
        (200, json!({"message": "Server is running!"}))
    );
    let (status, spec) = call(s.req(Method::GET, "/openapi.json")).await;
    assert_eq!(status, 200);
    let paths = spec["paths"].as_object().unwrap();
    for p in [
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/auth/login",
        "/api/v1/developer/api-keys",
        "/api/v1/meta/coverage",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    let html = s
        .req(Method::GET, "/docs")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.to_lowercase().contains("swagger"),
        "docs page: {}",
        &html[..html.len().min(200)]
    );
    let (status, coverage) = call(s.req(Method::GET, "/api/v1/meta/coverage")).await;
    assert_eq!(status, 200);
    assert!(coverage["providers"].is_array() && coverage["timeseries"].is_array());
    let exit = s.terminate();
    assert!(
        exit.success(),
        "SIGTERM must lead to a clean exit, got {exit}"
    );
}

#[tokio::test]
async fn generated_admin_is_written_once_to_a_private_file() {
    // No WEARHOUSE_ADMIN_*: the first start generates a developer and prints it; the second does not.
    let db = common::TestDb::new().await;
    let home = std::env::temp_dir().join(format!("wearhouse-admin-{}", db.name));
    let run = || {
        let port = common::free_port();
        let mut child = std::process::Command::new(common::bin())
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("WEARHOUSE_HOME", &home)
            .env("WEARHOUSE_BIND", format!("127.0.0.1:{port}"))
            .env("WEARHOUSE_LOG", "warn")
            .env_remove("WEARHOUSE_ADMIN_EMAIL")
            .env_remove("WEARHOUSE_ADMIN_PASSWORD")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
            s
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();
        reader.join().unwrap()
    };
    // The password goes to a 0600 file, never to the log; the log says where.
    let first = run();
    assert!(first.contains("first developer account created"), "{first}");
    assert!(first.contains("admin-credentials"), "{first}");
    let file = home.join("admin-credentials");
    let text = std::fs::read_to_string(&file).unwrap();
    let password = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(password.len() >= 16);
    assert!(!first.contains(&password), "{first}");
    let second = run();
    assert!(
        !second.contains("first developer account created"),
        "{second}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

/// Priority items carry upstream's `id`, `created_at` and `updated_at` (never null), for
/// defaults never changed as well as for ones set.
#[tokio::test]
async fn priorities_items_have_ids_and_times() {
    let s = Server::start().await;
    let jwt = s.login().await;
    let check = |item: &Value, name_key: &str| {
        assert!(
            item["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok(),
            "{item}"
        );
        assert!(item["priority"].is_i64(), "{item}");
        assert!(item[name_key].is_string(), "{item}");
        for k in ["created_at", "updated_at"] {
            assert!(item[k].is_string(), "{k} must be a time: {item}");
        }
    };
    let (status, before) = call(
        s.req(Method::GET, "/api/v1/priorities/providers")
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(status, 200);
    let items = before["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for i in items {
        check(i, "provider");
    }
    let garmin_before = items
        .iter()
        .find(|i| i["provider"] == "garmin")
        .unwrap()
        .clone();
    let (status, set) = call(
        s.req(Method::PUT, "/api/v1/priorities/providers/garmin")
            .bearer_auth(&jwt)
            .json(&json!({"priority": 1})),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    check(&set, "provider");
    // Same id, same creation, a later update.
    assert_eq!(set["id"], garmin_before["id"]);
    assert_eq!(set["created_at"], garmin_before["created_at"]);
    assert!(set["updated_at"].as_str().unwrap() > garmin_before["updated_at"].as_str().unwrap());
    let (_, after) = call(
        s.req(Method::GET, "/api/v1/priorities/providers")
            .bearer_auth(&jwt),
    )
    .await;
    let ids: std::collections::HashSet<&str> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        after["items"].as_array().unwrap().len(),
        "ids are distinct"
    );

    let (status, devices) = call(
        s.req(Method::PUT, "/api/v1/priorities/device-types")
            .bearer_auth(&jwt)
            .json(&json!({"priorities": [{"device_type": "ring", "priority": 1}]})),
    )
    .await;
    assert_eq!(status, 200, "{devices}");
    for i in devices["items"].as_array().unwrap() {
        check(i, "device_type");
    }
    let (status, one) = call(
        s.req(Method::PUT, "/api/v1/priorities/device-types/watch")
            .bearer_auth(&jwt)
            .json(&json!({"priority": 2})),
    )
    .await;
    assert_eq!(status, 200);
    check(&one, "device_type");
}
