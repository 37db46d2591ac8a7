//! The team routes and roles: invitations accepted once with their token, each role reaching
//! exactly its routes, the last admin kept, a removed account's token refused.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{call, Server, KEY_HEADER};

const PASSWORD: &str = "a long Passw0rd";

async fn sign_in(s: &Server, email: &str) -> String {
    let (status, body) = call(
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", email), ("password", PASSWORD)]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

async fn invite(s: &Server, admin: &str, email: &str, role: Option<&str>) -> Value {
    let mut body = json!({ "email": email });
    if let Some(r) = role {
        body["role"] = json!(r);
    }
    let (status, inv) = call(
        s.req(Method::POST, "/api/v1/invitations")
            .bearer_auth(admin)
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{inv}");
    inv
}

async fn accept(s: &Server, token: &str) -> (u16, Value) {
    call(
        s.req(Method::POST, "/api/v1/invitations/accept")
            .json(&json!({
                "token": token, "first_name": "Ann", "last_name": "Lee", "password": PASSWORD
            })),
    )
    .await
}

async fn status_of(s: &Server, method: Method, path: &str, jwt: &str) -> u16 {
    call(s.req(method, path).bearer_auth(jwt)).await.0
}

#[tokio::test]
async fn invitations_make_accounts_whose_roles_reach_exactly_their_routes() {
    let s = Server::start().await;
    let admin = s.login().await;
    let (status, team) = call(s.req(Method::GET, "/api/v1/developers").bearer_auth(&admin)).await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team.as_array().unwrap().len(), 1);
    assert_eq!(team[0]["role"], "admin");
    let admin_id = team[0]["id"].as_str().unwrap().to_string();

    // An auditor invited; the token is shown once, the list shows it empty.
    let inv = invite(&s, &admin, "Audit@Example.com", Some("auditor")).await;
    assert_eq!(
        (
            &inv["email"],
            &inv["status"],
            &inv["role"],
            &inv["invited_by_id"]
        ),
        (
            &json!("audit@example.com"),
            &json!("pending"),
            &json!("auditor"),
            &json!(admin_id)
        )
    );
    let token = inv["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 32, "{inv}");
    let (_, list) = call(
        s.req(Method::GET, "/api/v1/invitations")
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["token"], "");
    let db = s.db.client().await;
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "only the token's hash is kept");
    // A second invitation of the same address is refused while the first is active.
    let (status, _) = call(
        s.req(Method::POST, "/api/v1/invitations")
            .bearer_auth(&admin)
            .json(&json!({"email": "audit@example.com"})),
    )
    .await;
    assert_eq!(status, 400);

    // Accepted once, with the right token only.
    assert_eq!(accept(&s, "inv-not-the-token").await.0, 400);
    let (status, account) = accept(&s, &token).await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(
        (&account["email"], &account["role"], &account["first_name"]),
        (
            &json!("audit@example.com"),
            &json!("auditor"),
            &json!("Ann")
        )
    );
    let (status, again) = accept(&s, &token).await;
    assert_eq!(status, 400, "{again}");
    let (_, list) = call(
        s.req(Method::GET, "/api/v1/invitations")
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(
        list,
        json!([]),
        "an accepted invitation is no longer active"
    );

    // The auditor reads the history and nothing else.
    let auditor = sign_in(&s, "audit@example.com").await;
    assert_eq!(
        status_of(&s, Method::GET, "/api/v1/audit/verify", &auditor).await,
        200
    );
    let (status, me) = call(s.req(Method::GET, "/api/v1/auth/me").bearer_auth(&auditor)).await;
    assert_eq!((status, &me["role"]), (200, &json!("auditor")));
    for (method, path) in [
        (Method::GET, "/api/v1/users"),
        (Method::GET, "/api/v1/developers"),
        (Method::GET, "/api/v1/developer/api-keys"),
        (Method::GET, "/api/v1/invitations"),
        (Method::POST, "/api/v1/users"),
    ] {
        let (status, body) = call(s.req(method, path).bearer_auth(&auditor)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }

    // A developer works with the platform, not the team or the history.
    let inv = invite(&s, &admin, "dev@example.com", None).await;
    assert_eq!(inv["role"], "developer");
    assert_eq!(accept(&s, inv["token"].as_str().unwrap()).await.0, 201);
    let dev = sign_in(&s, "dev@example.com").await;
    assert_eq!(status_of(&s, Method::GET, "/api/v1/users", &dev).await, 200);
    assert_eq!(
        status_of(&s, Method::GET, "/api/v1/developers", &dev).await,
        403
    );
    assert_eq!(
        status_of(&s, Method::GET, "/api/v1/audit/verify", &dev).await,
        403
    );

    // Roles change through PATCH; the last admin stays one, and cannot remove itself.
    let (_, team) = call(s.req(Method::GET, "/api/v1/developers").bearer_auth(&admin)).await;
    let id_of = |email: &str| {
        team.as_array()
            .unwrap()
            .iter()
            .find(|d| d["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (dev_id, auditor_id) = (id_of("dev@example.com"), id_of("audit@example.com"));
    let (status, body) = call(
        s.req(Method::PATCH, &format!("/api/v1/developers/{admin_id}"))
            .bearer_auth(&admin)
            .json(&json!({"role": "developer"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        status_of(
            &s,
            Method::DELETE,
            &format!("/api/v1/developers/{admin_id}"),
            &admin
        )
        .await,
        400
    );
    let (status, body) = call(
        s.req(Method::PATCH, &format!("/api/v1/developers/{dev_id}"))
            .bearer_auth(&admin)
            .json(&json!({"role": "admin", "last_name": "Root"})),
    )
    .await;
    assert_eq!(
        (status, &body["role"], &body["last_name"]),
        (200, &json!("admin"), &json!("Root"))
    );
    assert_eq!(
        status_of(&s, Method::GET, "/api/v1/developers", &dev).await,
        200
    );

    // A removed account's token stops working at once.
    let (status, removed) = call(
        s.req(Method::DELETE, &format!("/api/v1/developers/{auditor_id}"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(
        (status, &removed["email"]),
        (200, &json!("audit@example.com"))
    );
    assert_eq!(
        status_of(&s, Method::GET, "/api/v1/audit/verify", &auditor).await,
        401
    );
    assert_eq!(
        status_of(
            &s,
            Method::GET,
            &format!("/api/v1/developers/{auditor_id}"),
            &admin
        )
        .await,
        404
    );
}

#[tokio::test]
async fn resent_invitations_take_the_new_token_and_revoked_ones_none() {
    let s = Server::start().await;
    let admin = s.login().await;
    let inv = invite(&s, &admin, "late@example.com", None).await;
    let id = inv["id"].as_str().unwrap();
    let (status, resent) = call(
        s.req(Method::POST, &format!("/api/v1/invitations/{id}/resend"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{resent}");
    assert_ne!(resent["token"], inv["token"]);
    assert_eq!(accept(&s, inv["token"].as_str().unwrap()).await.0, 400);

    let (status, revoked) = call(
        s.req(Method::DELETE, &format!("/api/v1/invitations/{id}"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!((status, &revoked["status"]), (200, &json!("revoked")));
    assert_eq!(accept(&s, resent["token"].as_str().unwrap()).await.0, 400);
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        status_of(
            &s,
            Method::DELETE,
            &format!("/api/v1/invitations/{unknown}"),
            &admin
        )
        .await,
        404
    );

    // Team routes take a developer token, never an API key or nothing.
    let key = s.api_key().await;
    let (status, _) = call(
        s.req(Method::GET, "/api/v1/developers")
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(s.req(Method::GET, "/api/v1/invitations")).await;
    assert_eq!(status, 401);
    // Bad bodies: a short password, a blank name.
    let (status, body) = call(
        s.req(Method::POST, "/api/v1/invitations/accept")
            .json(&json!({
                "token": "x", "first_name": "A", "last_name": "B", "password": "short"
            })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        s.req(Method::POST, "/api/v1/invitations/accept")
            .json(&json!({
                "token": "x", "first_name": "  ", "last_name": "B", "password": PASSWORD
            })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
