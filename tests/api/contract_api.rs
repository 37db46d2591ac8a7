//! The Open Wearables contract, checked on the wire: every OW operation wearhouse implements is
//! called on a real server holding realistic data (an Apple Health import through the CLI and
//! provider syncs through the loopback simulator), and each answer is validated against the
//! response schema OW's own document (`tests/contract/open-wearables-openapi.json`) gives for
//! that operation and status. Failures name the operation and the field.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::sim::{Sim, GARMIN_PUSH_TOKEN, SECRET};
use common::{call, Server, TestDb, ADMIN_EMAIL, ADMIN_PASSWORD, KEY_HEADER};
use reqwest::Method;
use serde_json::{json, Value};

/// The OW operations wearhouse implements (method, path), as in OW's document.
const IMPLEMENTED: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/api/v1/meta/coverage"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/me"),
    ("PATCH", "/api/v1/auth/me"),
    ("POST", "/api/v1/auth/change-password"),
    ("POST", "/api/v1/token/refresh"),
    ("POST", "/api/v1/token/revoke"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/{user_id}"),
    ("PATCH", "/api/v1/users/{user_id}"),
    ("DELETE", "/api/v1/users/{user_id}"),
    ("GET", "/api/v1/developer/api-keys"),
    ("POST", "/api/v1/developer/api-keys"),
    ("PATCH", "/api/v1/developer/api-keys/{key_id}"),
    ("DELETE", "/api/v1/developer/api-keys/{key_id}"),
    ("POST", "/api/v1/developer/api-keys/{key_id}/rotate"),
    ("POST", "/api/v1/users/{user_id}/import/apple/xml/direct"),
    ("POST", "/api/v1/users/{user_id}/import/apple/xml/s3"),
    ("GET", "/api/v1/users/{user_id}/timeseries"),
    ("GET", "/api/v1/users/{user_id}/data-sources"),
    ("GET", "/api/v1/users/{user_id}/summaries/data"),
    ("GET", "/api/v1/users/{user_id}/events/workouts"),
    ("GET", "/api/v1/users/{user_id}/events/sleep"),
    ("GET", "/api/v1/users/{user_id}/events/menstrual-cycles"),
    (
        "DELETE",
        "/api/v1/users/{user_id}/events/workouts/{workout_id}",
    ),
    ("DELETE", "/api/v1/users/{user_id}/events/sleep/{sleep_id}"),
    (
        "DELETE",
        "/api/v1/users/{user_id}/events/menstrual-cycles/{cycle_id}",
    ),
    ("GET", "/api/v1/users/{user_id}/summaries/activity"),
    ("GET", "/api/v1/users/{user_id}/summaries/sleep"),
    ("GET", "/api/v1/users/{user_id}/summaries/recovery"),
    ("GET", "/api/v1/users/{user_id}/summaries/body"),
    ("GET", "/api/v1/users/{user_id}/health-scores"),
    ("GET", "/api/v1/priorities/providers"),
    ("PUT", "/api/v1/priorities/providers"),
    ("PUT", "/api/v1/priorities/providers/{provider}"),
    ("GET", "/api/v1/priorities/device-types"),
    ("PUT", "/api/v1/priorities/device-types"),
    ("PUT", "/api/v1/priorities/device-types/{device_type}"),
    ("GET", "/api/v1/oauth/{provider}/authorize"),
    ("GET", "/api/v1/oauth/{provider}/callback"),
    ("GET", "/api/v1/oauth/success"),
    ("GET", "/api/v1/oauth/error"),
    ("GET", "/api/v1/oauth/providers"),
    ("PUT", "/api/v1/oauth/providers"),
    ("PUT", "/api/v1/oauth/providers/{provider}"),
    ("GET", "/api/v1/users/{user_id}/connections"),
    ("DELETE", "/api/v1/users/{user_id}/connections/{provider}"),
    (
        "DELETE",
        "/api/v1/users/{user_id}/connections/{provider}/data",
    ),
    ("POST", "/api/v1/providers/{provider}/users/{user_id}/sync"),
    (
        "POST",
        "/api/v1/providers/{provider}/users/{user_id}/sync/historical",
    ),
    (
        "GET",
        "/api/v1/providers/garmin/users/{user_id}/backfill/status",
    ),
    (
        "POST",
        "/api/v1/providers/garmin/users/{user_id}/backfill/cancel",
    ),
    (
        "POST",
        "/api/v1/providers/garmin/users/{user_id}/backfill/{type_name}/retry",
    ),
    ("GET", "/api/v1/users/{user_id}/sync/runs"),
    ("GET", "/api/v1/sync/runs"),
    ("GET", "/api/v1/users/{user_id}/sync/recent"),
    ("GET", "/api/v1/users/{user_id}/sync/stream"),
    ("POST", "/api/v1/providers/{provider}/webhooks"),
    ("GET", "/api/v1/providers/{provider}/webhooks"),
    ("GET", "/api/v1/strava/webhooks"),
    ("POST", "/api/v1/strava/webhooks"),
    ("GET", "/api/v1/strava/webhooks/health"),
    ("GET", "/api/v1/strava/webhook"),
    ("POST", "/api/v1/strava/webhook"),
    ("GET", "/api/v1/strava/webhook/health"),
    ("GET", "/api/v1/applications"),
    ("POST", "/api/v1/applications"),
    ("DELETE", "/api/v1/applications/{app_id}"),
    ("POST", "/api/v1/applications/{app_id}/rotate-secret"),
    ("POST", "/api/v1/users/{user_id}/token"),
    ("POST", "/api/v1/users/{user_id}/invitation-code"),
    ("POST", "/api/v1/invitation-code/redeem"),
    ("GET", "/api/v1/developers"),
    ("GET", "/api/v1/developers/{developer_id}"),
    ("PATCH", "/api/v1/developers/{developer_id}"),
    ("DELETE", "/api/v1/developers/{developer_id}"),
    ("POST", "/api/v1/invitations"),
    ("GET", "/api/v1/invitations"),
    ("DELETE", "/api/v1/invitations/{invitation_id}"),
    ("POST", "/api/v1/invitations/{invitation_id}/resend"),
    ("POST", "/api/v1/invitations/accept"),
    ("GET", "/api/v1/webhooks/endpoints"),
    ("POST", "/api/v1/webhooks/endpoints"),
    ("GET", "/api/v1/webhooks/endpoints/{endpoint_id}"),
    ("PATCH", "/api/v1/webhooks/endpoints/{endpoint_id}"),
    ("DELETE", "/api/v1/webhooks/endpoints/{endpoint_id}"),
    ("GET", "/api/v1/webhooks/endpoints/{endpoint_id}/secret"),
    ("GET", "/api/v1/webhooks/endpoints/{endpoint_id}/attempts"),
    ("POST", "/api/v1/webhooks/endpoints/{endpoint_id}/test"),
    ("GET", "/api/v1/webhooks/event-types"),
    ("GET", "/api/v1/webhooks/messages"),
    ("POST", "/api/v1/sdk/users/{user_id}/sync"),
    ("POST", "/api/v1/sdk/users/{user_id}/logs"),
    ("GET", "/api/v1/dashboard/stats"),
    ("GET", "/api/v1/config"),
    ("POST", "/api/v1/garmin/webhooks/ping"),
    ("POST", "/api/v1/garmin/webhooks/push"),
    ("GET", "/api/v1/oura/webhooks"),
    ("POST", "/api/v1/oura/webhooks"),
    ("GET", "/api/v1/oura/webhooks/health"),
    ("GET", "/api/v1/oura/webhooks/subscriptions"),
    ("POST", "/api/v1/oura/webhooks/subscriptions"),
    ("POST", "/api/v1/oura/webhooks/subscriptions/renew"),
    ("GET", "/api/v1/providers/{provider}/webhooks/subscriptions"),
    (
        "POST",
        "/api/v1/providers/{provider}/webhooks/subscriptions",
    ),
    (
        "POST",
        "/api/v1/providers/{provider}/webhooks/subscriptions/renew",
    ),
    (
        "GET",
        "/api/v1/providers/{provider}/webhooks/subscriptions/{subscription_id}",
    ),
    (
        "PUT",
        "/api/v1/providers/{provider}/webhooks/subscriptions/{subscription_id}",
    ),
    (
        "DELETE",
        "/api/v1/providers/{provider}/webhooks/subscriptions/{subscription_id}",
    ),
    ("GET", "/api/v1/settings/archival"),
    ("PUT", "/api/v1/settings/archival"),
    ("POST", "/api/v1/settings/archival/run"),
    ("POST", "/api/v1/settings/seed"),
    ("GET", "/api/v1/settings/seed/presets"),
    ("GET", "/api/v1/settings/seed/sleep-profiles"),
    (
        "GET",
        "/api/v1/providers/{provider}/users/{user_id}/workouts",
    ),
    (
        "GET",
        "/api/v1/providers/{provider}/users/{user_id}/workouts/{workout_id}",
    ),
];

/// The id of one of Oura's subscriptions at the simulator, registering them first.
async fn oura_subscription(w: &World) -> String {
    let callback = format!("{}/api/v1/providers/oura/webhooks", w.s.url);
    let (st, body) = call(
        w.s.req(
            Method::POST,
            &format!("/api/v1/providers/oura/webhooks/subscriptions?callback_url={callback}"),
        )
        .bearer_auth(&w.jwt),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = call(
        w.s.req(Method::GET, "/api/v1/providers/oura/webhooks/subscriptions")
            .bearer_auth(&w.jwt),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    body["subscriptions"][0]["id"].as_str().unwrap().to_string()
}

/// A fresh invitation: (id, token).
async fn new_invitation(w: &World) -> (String, String) {
    let email = format!("{}@team.example.com", uuid::Uuid::new_v4().simple());
    let (status, inv) = call(
        w.s.req(Method::POST, "/api/v1/invitations")
            .bearer_auth(&w.jwt)
            .json(&json!({ "email": email })),
    )
    .await;
    assert_eq!(status, 201, "{inv}");
    (
        inv["id"].as_str().unwrap().to_string(),
        inv["token"].as_str().unwrap().to_string(),
    )
}

const TEAM_PASSWORD: &str = "team-password-1";

/// The admin's own developer id.
async fn admin_id(w: &World) -> String {
    let (_, me) = call(w.s.req(Method::GET, "/api/v1/auth/me").bearer_auth(&w.jwt)).await;
    me["id"].as_str().unwrap().to_string()
}

fn contract() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/contract/open-wearables-openapi.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

async fn our_document(s: &Server) -> Value {
    let (status, doc) = call(s.req(Method::GET, "/openapi.json")).await;
    assert_eq!(status, 200);
    doc
}

// ---------------------------------------------------------------------------------------------
// A validator for the JSON Schema subset OW's document uses.

struct Validator<'a> {
    root: &'a Value,
}

impl Validator<'_> {
    fn resolve<'b>(&'b self, schema: &'b Value) -> &'b Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                let target = self
                    .root
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("unresolvable $ref {r}"));
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// Adds to `errs` each problem (`path: what is wrong`) with the first value showing it, so a
    /// list of a thousand rows reports a wrong field once.
    fn check(&self, schema: &Value, v: &Value, path: &str, errs: &mut Errors) {
        let schema = self.resolve(schema);
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                // A value that is not null is judged by the branches that are not `null`.
                let results: Vec<Errors> = branches
                    .iter()
                    .filter(|b| v.is_null() || self.resolve(b).get("type") != Some(&json!("null")))
                    .map(|b| {
                        let mut e = Errors::new();
                        self.check(b, v, path, &mut e);
                        e
                    })
                    .collect();
                if !results.iter().any(Errors::is_empty) {
                    // Report the branch that came closest.
                    if let Some(best) = results.into_iter().min_by_key(Errors::len) {
                        for (k, e) in best {
                            errs.entry(k).or_insert(e);
                        }
                    }
                }
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, v, path, errs);
            }
        }
        if let Some(ty) = schema.get("type") {
            let types: Vec<&str> = match ty {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|t| type_matches(t, v)) {
                add(errs, format!("{path}: expected {}", types.join("|")), v);
                return;
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.contains(v) {
                let mut listed: Vec<String> = values.iter().take(8).map(Value::to_string).collect();
                if values.len() > 8 {
                    listed.push(format!("… {} more", values.len() - 8));
                }
                add(
                    errs,
                    format!("{path}: not one of [{}]", listed.join(",")),
                    v,
                );
            }
        }
        if let Some(c) = schema.get("const") {
            if c != v {
                add(errs, format!("{path}: expected the constant {c}"), v);
            }
        }
        if let (Some(format), Some(s)) = (schema.get("format").and_then(Value::as_str), v.as_str())
        {
            let ok = match format {
                "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
                "uuid" => uuid::Uuid::parse_str(s).is_ok(),
                _ => true,
            };
            if !ok {
                add(errs, format!("{path}: not a valid {format}"), v);
            }
        }
        if let Some(obj) = v.as_object() {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(name) {
                        add(errs, format!("{path}.{name}: required field missing"), v);
                    }
                }
            }
            for (name, value) in obj {
                match props.and_then(|p| p.get(name)) {
                    Some(s) => self.check(s, value, &format!("{path}.{name}"), errs),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            add(
                                errs,
                                format!("{path}.{name}: field not in the contract"),
                                value,
                            );
                        }
                        Some(s @ Value::Object(_)) => {
                            self.check(s, value, &format!("{path}.{name}"), errs)
                        }
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for item in arr {
                self.check(items, item, &format!("{path}[*]"), errs);
            }
        }
    }
}

type Errors = BTreeMap<String, String>;

fn add(errs: &mut Errors, problem: String, example: &Value) {
    errs.entry(problem).or_insert_with(|| short(example));
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        // Typed clients (Pydantic strict, Go, Swift) refuse `510.0` for an int.
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

#[test]
fn validator_catches_what_the_contract_forbids() {
    let root = json!({"components": {"schemas": {
        "S": {"type": "object", "required": ["id", "n"], "properties": {
            "id": {"type": "string", "format": "uuid"},
            "n": {"type": "integer"},
            "at": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "xs": {"type": "array", "items": {"$ref": "#/components/schemas/S"}}
        }}
    }}});
    let v = Validator { root: &root };
    let schema = json!({"$ref": "#/components/schemas/S"});
    let mut errs = Errors::new();
    let ok = json!({"id": "7f1d3c1e-2b0a-4c55-9a57-1b3a0f1f9d10", "n": 3, "at": null, "kind": "a",
                    "xs": [{"id": "7f1d3c1e-2b0a-4c55-9a57-1b3a0f1f9d10", "n": 1, "at": "2024-01-01T00:00:00Z"}]});
    v.check(&schema, &ok, "$", &mut errs);
    assert!(errs.is_empty(), "{errs:?}");
    let bad = json!({"id": "x", "n": 3.0, "at": "yesterday", "kind": "c", "xs": [{"n": 1}]});
    v.check(&schema, &bad, "$", &mut errs);
    let errs: Vec<(&str, &str)> = errs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        errs,
        vec![
            ("$.at: not a valid date-time", "\"yesterday\""),
            ("$.id: not a valid uuid", "\"x\""),
            ("$.kind: not one of [\"a\",\"b\"]", "\"c\""),
            ("$.n: expected integer", "3.0"),
            ("$.xs[*].id: required field missing", "{\"n\":1}"),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The provider simulator, as tests/providers_api.rs runs it.

// ---------------------------------------------------------------------------------------------

struct World {
    sim: Sim,
    s: Server,
    jwt: String,
    key: String,
    refresh: String,
    user: String,
    victim: String,
    /// An API key made to be renamed, rotated and deleted.
    spare_key: String,
    workout: String,
    sleep: String,
    cycle: String,
    /// An outgoing webhook endpoint, registered before the data arrived.
    endpoint: String,
}

/// Connects `provider` for `user` through the real consent flow at the simulator.
async fn connect(w: &World, provider: &str, user: &str) {
    let (st, body) = call(
        w.s.req(
            Method::GET,
            &format!("/api/v1/oauth/{provider}/authorize?user_id={user}"),
        )
        .header(KEY_HEADER, &w.key),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let r = w
        .sim
        .http
        .get(body["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    let r = w.sim.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
}

async fn first_id(w: &World, path: &str) -> String {
    let (st, body) = call(w.s.req(Method::GET, path).header(KEY_HEADER, &w.key)).await;
    assert_eq!(st, 200, "{path}: {body}");
    body["data"]
        .as_array()
        .and_then(|d| d.first())
        .and_then(|x| x["id"].as_str())
        .map(str::to_string)
        // No such record: a well-formed id that exists nowhere (the call then shows the 404).
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

async fn world() -> World {
    let sim = Sim::start(2).await;
    let env = sim.env();
    let mut refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    refs.push(("WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT", "0"));
    refs.push(("WEARHOUSE_SSE_HEARTBEAT_SECS", "1"));
    refs.push(("WEARHOUSE_SYNC_INTERVAL_SECS", "0"));
    refs.push(("WEARHOUSE_WEBHOOKS_ALLOW_PRIVATE", "true"));
    let s = Server::start_with(TestDb::new().await, &refs).await;
    let (st, tokens) = call(
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)]),
    )
    .await;
    assert_eq!(st, 200, "{tokens}");
    let jwt = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let key = s.api_key().await;
    let user = common::create_user(&s, &key).await;
    let victim = common::create_user(&s, &key).await;
    let (st, spare) = call(
        s.req(Method::POST, "/api/v1/developer/api-keys")
            .bearer_auth(&jwt)
            .json(&json!({"name": "spare"})),
    )
    .await;
    assert_eq!(st, 201, "{spare}");
    let spare_key = spare["id"].as_str().unwrap().to_string();
    // Outgoing webhooks to the simulator (which answers 404): messages and failed attempts.
    let (st, ep) = call(
        s.req(Method::POST, "/api/v1/webhooks/endpoints")
            .bearer_auth(&jwt)
            .json(&json!({"url": format!("{}/no-such-receiver", sim.url), "filter_types": ["workout.created", "sleep.created"]})),
    )
    .await;
    assert_eq!(st, 201, "{ep}");
    let endpoint = ep["id"].as_str().unwrap().to_string();

    // Realistic Apple data through the CLI, as an operator would load it.
    let export = s.home.join("export.xml");
    s.db.run(&[
        "generate",
        "apple-health",
        "--size",
        "1MB",
        "--output",
        export.to_str().unwrap(),
    ])
    .await;
    s.db.run(&[
        "import",
        "apple-health",
        "--user",
        &user,
        export.to_str().unwrap(),
    ])
    .await;
    let mut w = World {
        sim,
        s,
        jwt,
        key,
        refresh,
        user,
        victim,
        spare_key,
        workout: String::new(),
        sleep: String::new(),
        cycle: String::new(),
        endpoint,
    };
    // Provider data: Oura and Garmin connected through OAuth and pulled.
    for p in ["oura", "garmin"] {
        connect(&w, p, &w.user.clone()).await;
    }
    let since = (chrono::Utc::now() - chrono::Duration::days(7)).timestamp();
    let (st, body) = call(
        w.s.req(
            Method::POST,
            &format!(
                "/api/v1/providers/oura/users/{}/sync?async=false&since={since}",
                w.user
            ),
        )
        .header(KEY_HEADER, &w.key),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    w.s.settle().await;
    let range = "start_date=2000-01-01&end_date=2100-01-01&limit=1";
    let u = w.user.clone();
    w.workout = first_id(&w, &format!("/api/v1/users/{u}/events/workouts?{range}")).await;
    w.sleep = first_id(&w, &format!("/api/v1/users/{u}/events/sleep?{range}")).await;
    w.cycle = first_id(
        &w,
        &format!("/api/v1/users/{u}/events/menstrual-cycles?{range}"),
    )
    .await;
    w
}

/// Destructive calls go last, the main user's deletion never (the victim is deleted instead).
fn rank(method: &str, path: &str) -> u8 {
    match (method, path) {
        ("DELETE", p) if p.contains("/api-keys/") => 2,
        (_, p) if p.contains("/api-keys/") => 1,
        ("POST", "/api/v1/token/revoke") | ("POST", "/api/v1/auth/logout") => 2,
        ("DELETE", p) if p.contains("/events/") => 3,
        ("DELETE", p) if p.contains("/connections/") => 4,
        ("DELETE", _) => 5,
        _ => 0,
    }
}

const RANGE: &str = "start_date=2000-01-01&end_date=2100-01-01";

/// The request that exercises one operation with realistic values. Every request carries both
/// credentials; operations that take either use the bearer token first, as upstream.
async fn send(w: &World, method: &str, path: &str) -> Option<(u16, String)> {
    let u = &w.user;
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let req = |p: String| {
        w.s.req(m.clone(), &p)
            .header(KEY_HEADER, &w.key)
            .bearer_auth(&w.jwt)
    };
    let rb = match (method, path) {
        ("GET", "/") | ("GET", "/api/v1/meta/coverage") | ("GET", "/api/v1/auth/me") => {
            req(path.into())
        }
        ("POST", "/api/v1/auth/login") => w
            .s
            .req(m.clone(), path)
            .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)]),
        ("POST", "/api/v1/auth/logout") => {
            // Logging out revokes the token it is called with: use a token of its own.
            let (_, t) = call(
                w.s.req(Method::POST, "/api/v1/auth/login")
                    .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)]),
            )
            .await;
            w.s.req(m.clone(), path)
                .bearer_auth(t["access_token"].as_str().unwrap_or_default())
        }
        ("PATCH", "/api/v1/auth/me") => req(path.into()).json(&json!({"first_name": "Ada"})),
        ("POST", "/api/v1/auth/change-password") => {
            // Changed and changed back, so later logins still work; the first answer is checked.
            let change = |from: &str, to: &str| {
                req(path.into()).json(&json!({"current_password": from,
                    "new_password": to, "confirm_password": to}))
            };
            let first = change(ADMIN_PASSWORD, "contract-password-2").send().await.unwrap();
            let status = first.status().as_u16();
            let body = first.text().await.unwrap();
            let back = change("contract-password-2", ADMIN_PASSWORD).send().await.unwrap();
            assert_eq!(back.status(), 200, "changing the password back");
            return Some((status, body));
        }
        ("POST", "/api/v1/token/refresh") => w
            .s
            .req(m.clone(), path)
            .json(&json!({"refresh_token": w.refresh})),
        ("POST", "/api/v1/token/revoke") => {
            // A refresh token of its own, so the revocation is real.
            let (_, t) = call(
                w.s.req(Method::POST, "/api/v1/auth/login")
                    .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)]),
            )
            .await;
            w.s.req(m.clone(), path)
                .json(&json!({"refresh_token": t["refresh_token"]}))
        }
        ("GET", "/api/v1/users") => req(format!("{path}?limit=5")),
        ("POST", "/api/v1/users") => req(path.into()).json(&json!({
            "first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com",
            "external_user_id": "ext-grace"})),
        ("GET", "/api/v1/users/{user_id}") => req(format!("/api/v1/users/{u}")),
        ("PATCH", "/api/v1/users/{user_id}") => {
            req(format!("/api/v1/users/{u}")).json(&json!({"last_name": "Lovelace"}))
        }
        ("DELETE", "/api/v1/users/{user_id}") => req(format!("/api/v1/users/{}", w.victim)),
        ("GET", "/api/v1/developer/api-keys") => req(path.into()),
        ("POST", "/api/v1/developer/api-keys") => req(path.into()).json(&json!({"name": "ci"})),
        ("PATCH", "/api/v1/developer/api-keys/{key_id}") => {
            req(format!("/api/v1/developer/api-keys/{}", w.spare_key))
                .json(&json!({"name": "renamed"}))
        }
        ("POST", "/api/v1/developer/api-keys/{key_id}/rotate") => req(format!(
            "/api/v1/developer/api-keys/{}/rotate",
            w.spare_key
        )),
        ("DELETE", "/api/v1/developer/api-keys/{key_id}") => {
            // Rotation replaced the spare key: delete whichever spare key is listed now.
            let (_, keys) = call(
                w.s.req(Method::GET, "/api/v1/developer/api-keys")
                    .bearer_auth(&w.jwt),
            )
            .await;
            let id = keys
                .as_array()
                .and_then(|k| k.iter().find(|k| k["name"] != "tests"))
                .and_then(|k| k["id"].as_str())
                .unwrap_or(&w.spare_key)
                .to_string();
            req(format!("/api/v1/developer/api-keys/{id}"))
        }
        ("POST", "/api/v1/users/{user_id}/import/apple/xml/direct") => {
            let xml = common::export::doc(&common::export::steps(
                120.0,
                "2024-03-10 08:00:00 -0800",
                "2024-03-10 08:10:00 -0800",
                true,
            ));
            let part = reqwest::multipart::Part::bytes(xml.into_bytes()).file_name("export.xml");
            req(format!("/api/v1/users/{u}/import/apple/xml/direct"))
                .multipart(reqwest::multipart::Form::new().part("file", part))
        }
        ("POST", "/api/v1/users/{user_id}/import/apple/xml/s3") => {
            req(format!("/api/v1/users/{u}/import/apple/xml/s3"))
                .json(&json!({"filename": "export.zip"}))
        }
        ("GET", "/api/v1/users/{user_id}/timeseries") => req(format!(
            "/api/v1/users/{u}/timeseries?start_time=2000-01-01T00:00:00Z&end_time=2100-01-01T00:00:00Z&limit=50"
        )),
        ("GET", "/api/v1/users/{user_id}/data-sources")
        | ("GET", "/api/v1/users/{user_id}/connections")
        | ("GET", "/api/v1/users/{user_id}/sync/runs")
        | ("GET", "/api/v1/users/{user_id}/sync/recent") => {
            req(path.replace("{user_id}", u))
        }
        ("GET", p) if p.contains("/summaries/") || p.contains("/events/") => {
            req(format!("{}?{RANGE}&limit=20", p.replace("{user_id}", u)))
        }
        ("GET", "/api/v1/users/{user_id}/health-scores") => {
            req(format!("/api/v1/users/{u}/health-scores?{RANGE}"))
        }
        ("DELETE", "/api/v1/users/{user_id}/events/workouts/{workout_id}") => req(format!(
            "/api/v1/users/{u}/events/workouts/{}",
            w.workout
        )),
        ("DELETE", "/api/v1/users/{user_id}/events/sleep/{sleep_id}") => {
            req(format!("/api/v1/users/{u}/events/sleep/{}", w.sleep))
        }
        ("DELETE", "/api/v1/users/{user_id}/events/menstrual-cycles/{cycle_id}") => req(format!(
            "/api/v1/users/{u}/events/menstrual-cycles/{}",
            w.cycle
        )),
        ("GET", "/api/v1/priorities/providers") | ("GET", "/api/v1/priorities/device-types") => {
            req(path.into())
        }
        ("PUT", "/api/v1/priorities/providers") => req(path.into()).json(
            &json!({"priorities": [{"provider": "apple", "priority": 1}, {"provider": "oura", "priority": 2}]}),
        ),
        ("PUT", "/api/v1/priorities/providers/{provider}") => {
            req("/api/v1/priorities/providers/garmin".into()).json(&json!({"priority": 3}))
        }
        ("PUT", "/api/v1/priorities/device-types") => req(path.into()).json(
            &json!({"priorities": [{"device_type": "watch", "priority": 1}, {"device_type": "ring", "priority": 2}]}),
        ),
        ("PUT", "/api/v1/priorities/device-types/{device_type}") => {
            req("/api/v1/priorities/device-types/phone".into()).json(&json!({"priority": 3}))
        }
        ("GET", "/api/v1/oauth/{provider}/authorize") => req(format!(
            "/api/v1/oauth/whoop/authorize?user_id={u}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fdone"
        )),
        ("GET", "/api/v1/oauth/{provider}/callback") => {
            req("/api/v1/oauth/whoop/callback?error=access_denied&state=unknown".into())
        }
        ("GET", "/api/v1/oauth/success") => {
            req(format!("/api/v1/oauth/success?provider=oura&user_id={u}"))
        }
        ("GET", "/api/v1/oauth/error") => {
            req("/api/v1/oauth/error?message=The+user+declined".into())
        }
        ("GET", "/api/v1/oauth/providers") => req(path.into()),
        ("PUT", "/api/v1/oauth/providers") => {
            req(path.into()).json(&json!({"providers": {"whoop": true}}))
        }
        ("PUT", "/api/v1/oauth/providers/{provider}") => {
            req("/api/v1/oauth/providers/whoop".into()).json(&json!({"is_enabled": true}))
        }
        ("DELETE", "/api/v1/users/{user_id}/connections/{provider}") => {
            req(format!("/api/v1/users/{u}/connections/garmin"))
        }
        ("DELETE", "/api/v1/users/{user_id}/connections/{provider}/data") => {
            req(format!("/api/v1/users/{u}/connections/oura/data"))
        }
        ("POST", "/api/v1/providers/{provider}/users/{user_id}/sync") => {
            req(format!("/api/v1/providers/oura/users/{u}/sync?async=true"))
        }
        ("POST", "/api/v1/providers/{provider}/users/{user_id}/sync/historical") => req(format!(
            "/api/v1/providers/oura/users/{u}/sync/historical?days=2"
        )),
        ("GET", "/api/v1/providers/garmin/users/{user_id}/backfill/status")
        | ("POST", "/api/v1/providers/garmin/users/{user_id}/backfill/cancel") => {
            req(path.replace("{user_id}", u))
        }
        ("POST", "/api/v1/providers/garmin/users/{user_id}/backfill/{type_name}/retry") => req(
            format!("/api/v1/providers/garmin/users/{u}/backfill/sleeps/retry"),
        ),
        ("GET", "/api/v1/sync/runs") => req(format!("/api/v1/sync/runs?user_id={u}")),
        ("GET", "/api/v1/users/{user_id}/sync/stream") => {
            // The stream never ends: its status and first event are what can be checked.
            let r = req(format!("/api/v1/users/{u}/sync/stream?replay=5"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let mut r = r;
            let first = tokio::time::timeout(Duration::from_secs(5), r.chunk())
                .await
                .ok()
                .and_then(|c| c.ok().flatten())
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_default();
            return Some((status, first));
        }
        ("GET", "/api/v1/webhooks/endpoints")
        | ("GET", "/api/v1/webhooks/event-types")
        | ("GET", "/api/v1/webhooks/messages") => req(path.into()),
        ("POST", "/api/v1/webhooks/endpoints") => req(path.into()).json(
            &json!({"url": "https://hooks.example.com/wearhouse", "user_id": u, "filter_types": ["sync.completed"]}),
        ),
        ("GET", p) if p.starts_with("/api/v1/webhooks/endpoints/{endpoint_id}") => {
            req(p.replace("{endpoint_id}", &w.endpoint))
        }
        ("PATCH", "/api/v1/webhooks/endpoints/{endpoint_id}") => {
            req(path.replace("{endpoint_id}", &w.endpoint))
                .json(&json!({"description": "contract", "user_id": null}))
        }
        ("POST", "/api/v1/webhooks/endpoints/{endpoint_id}/test") => {
            req(path.replace("{endpoint_id}", &w.endpoint)).json(&json!({"event_type": "sleep.created"}))
        }
        ("DELETE", "/api/v1/webhooks/endpoints/{endpoint_id}") => {
            req(path.replace("{endpoint_id}", &w.endpoint))
        }
        ("POST", "/api/v1/providers/{provider}/webhooks") => {
            let target = format!("{}/api/v1/providers/oura/webhooks", w.s.url);
            let body = json!({"event_type": "create", "data_type": "workout",
                              "object_id": "wo-contract", "user_id": "oura-user-1"});
            return Some(w.sim.webhook_at("oura", &target, body, false, 0).await);
        }
        ("GET", "/api/v1/providers/{provider}/webhooks") => {
            // The token wearhouse registers with Oura: derived from the client secret.
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(b"wearhouse-webhook-verification");
            let token = hex::encode(&mac.finalize().into_bytes()[..16]);
            req(format!(
                "/api/v1/providers/oura/webhooks?verification_token={token}&challenge=c-123"
            ))
        }
        ("GET", "/api/v1/dashboard/stats")
        | ("GET", "/api/v1/config")
        | ("GET", "/api/v1/oura/webhooks/health")
        | ("GET", "/api/v1/oura/webhooks/subscriptions")
        | ("POST", "/api/v1/oura/webhooks/subscriptions")
        | ("POST", "/api/v1/oura/webhooks/subscriptions/renew") => req(path.into()),
        ("GET", "/api/v1/providers/{provider}/webhooks/subscriptions")
        | ("POST", "/api/v1/providers/{provider}/webhooks/subscriptions/renew") => {
            req(path.replace("{provider}", "oura"))
        }
        ("POST", "/api/v1/providers/{provider}/webhooks/subscriptions") => {
            let callback = format!("{}/api/v1/providers/oura/webhooks", w.s.url);
            req(format!(
                "{}?callback_url={callback}",
                path.replace("{provider}", "oura")
            ))
        }
        ("GET", "/api/v1/providers/{provider}/webhooks/subscriptions/{subscription_id}")
        | ("DELETE", "/api/v1/providers/{provider}/webhooks/subscriptions/{subscription_id}") => {
            let id = oura_subscription(w).await;
            req(path.replace("{provider}", "oura").replace("{subscription_id}", &id))
        }
        ("PUT", "/api/v1/providers/{provider}/webhooks/subscriptions/{subscription_id}") => {
            let id = oura_subscription(w).await;
            req(format!(
                "{}?callback_url=https://hooks.example.com/oura",
                path.replace("{provider}", "oura")
                    .replace("{subscription_id}", &id)
            ))
        }
        ("POST", "/api/v1/garmin/webhooks/ping") | ("POST", "/api/v1/garmin/webhooks/push") => {
            let target = format!("{}{path}?token={GARMIN_PUSH_TOKEN}", w.s.url);
            let body = json!({"bodyComps": [{"userId": "garmin-user-1",
                "measurementTimeInSeconds": 1772341200, "measurementTimeOffsetInSeconds": 0,
                "weightInGrams": 71200}]});
            return Some(w.sim.webhook_at("garmin", &target, body, false, 0).await);
        }
        ("POST", "/api/v1/oura/webhooks") => {
            let target = format!("{}/api/v1/oura/webhooks", w.s.url);
            let body = json!({"event_type": "create", "data_type": "sleep",
                              "object_id": "sl-contract", "user_id": "oura-user-1"});
            return Some(w.sim.webhook_at("oura", &target, body, false, 0).await);
        }
        ("GET", "/api/v1/oura/webhooks") => {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(b"wearhouse-webhook-verification");
            let token = hex::encode(&mac.finalize().into_bytes()[..16]);
            req(format!(
                "/api/v1/oura/webhooks?verification_token={token}&challenge=c-456"
            ))
        }
        ("GET", "/api/v1/strava/webhooks") | ("GET", "/api/v1/strava/webhook") => {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(b"wearhouse-webhook-verification");
            let token = hex::encode(&mac.finalize().into_bytes()[..16]);
            req(format!(
                "{path}?hub.mode=subscribe&hub.challenge=c-123&hub.verify_token={token}"
            ))
        }
        ("POST", "/api/v1/strava/webhooks") | ("POST", "/api/v1/strava/webhook") => {
            // An athlete update that changes nothing wearhouse keeps: accepted, no effect.
            let target = format!("{}{path}", w.s.url);
            let body = json!({"object_type": "athlete", "object_id": 134815, "aspect_type": "update",
                              "updates": {"firstname": "Ada"}, "owner_id": 134815,
                              "subscription_id": 1, "event_time": 1_772_323_200});
            return Some(w.sim.webhook_at("strava", &target, body, false, 0).await);
        }
        ("GET", "/api/v1/strava/webhooks/health") | ("GET", "/api/v1/strava/webhook/health") => {
            req(path.into())
        }
        ("GET", "/api/v1/applications") => req(path.into()),
        ("POST", "/api/v1/applications") => req(path.into()).json(&json!({"name": "Mobile"})),
        ("DELETE", "/api/v1/applications/{app_id}")
        | ("POST", "/api/v1/applications/{app_id}/rotate-secret") => {
            // An application of its own for each.
            let (st, app) = call(
                w.s.req(Method::POST, "/api/v1/applications")
                    .bearer_auth(&w.jwt)
                    .json(&json!({"name": "Spare"})),
            )
            .await;
            assert_eq!(st, 201, "{app}");
            req(path.replace("{app_id}", app["app_id"].as_str().unwrap()))
        }
        ("POST", "/api/v1/users/{user_id}/token") => req(format!("/api/v1/users/{u}/token")),
        ("POST", "/api/v1/users/{user_id}/invitation-code") => {
            req(format!("/api/v1/users/{u}/invitation-code"))
        }
        ("POST", "/api/v1/invitation-code/redeem") => {
            let (st, code) = call(
                w.s.req(
                    Method::POST,
                    &format!("/api/v1/users/{u}/invitation-code"),
                )
                .bearer_auth(&w.jwt),
            )
            .await;
            assert_eq!(st, 201, "{code}");
            w.s.req(m.clone(), path)
                .json(&json!({"code": code["code"]}))
        }
        ("GET", "/api/v1/developers") | ("GET", "/api/v1/invitations") => req(path.into()),
        ("GET", "/api/v1/developers/{developer_id}") => {
            req(format!("/api/v1/developers/{}", admin_id(w).await))
        }
        ("PATCH", "/api/v1/developers/{developer_id}") => {
            req(format!("/api/v1/developers/{}", admin_id(w).await))
                .json(&json!({"last_name": "Admin"}))
        }
        ("DELETE", "/api/v1/developers/{developer_id}") => {
            let (_, token) = new_invitation(w).await;
            let (status, dev) = call(w.s.req(Method::POST, "/api/v1/invitations/accept").json(
                &json!({"token": token, "first_name": "Tim", "last_name": "Berners",
                        "password": TEAM_PASSWORD}),
            ))
            .await;
            assert_eq!(status, 201, "{dev}");
            req(format!("/api/v1/developers/{}", dev["id"].as_str().unwrap()))
        }
        ("POST", "/api/v1/invitations") => req(path.into()).json(&json!({
            "email": format!("{}@team.example.com", uuid::Uuid::new_v4().simple())})),
        ("DELETE", "/api/v1/invitations/{invitation_id}") => {
            req(format!("/api/v1/invitations/{}", new_invitation(w).await.0))
        }
        ("POST", "/api/v1/invitations/{invitation_id}/resend") => req(format!(
            "/api/v1/invitations/{}/resend",
            new_invitation(w).await.0
        )),
        ("POST", "/api/v1/invitations/accept") => {
            let (_, token) = new_invitation(w).await;
            w.s.req(m.clone(), path).json(&json!({"token": token, "first_name": "Ada",
                "last_name": "Byron", "password": TEAM_PASSWORD}))
        }
        ("POST", "/api/v1/sdk/users/{user_id}/sync") => {
            req(format!("/api/v1/sdk/users/{u}/sync")).json(&json!({
                "provider": "apple", "sdkVersion": "0.9.2", "syncTimestamp": "2024-03-11T07:00:00Z",
                "data": {
                    "records": [{"id": "r-1", "type": "HKQuantityTypeIdentifierHeartRate", "value": 61,
                        "unit": "count/min", "startDate": "2024-03-10T06:00:00Z",
                        "endDate": "2024-03-10T06:00:00Z", "zoneOffset": "-08:00",
                        "source": {"name": "Apple Watch", "deviceModel": "Watch", "deviceType": "watch"}}],
                    "sleep": [{"stage": "deep", "startDate": "2024-03-10T07:00:00Z",
                        "endDate": "2024-03-10T08:00:00Z", "zoneOffset": "-08:00"}],
                    "workouts": [{"type": "walking", "startDate": "2024-03-10T18:00:00Z",
                        "endDate": "2024-03-10T18:30:00Z", "zoneOffset": "-08:00",
                        "values": [{"type": "distance", "unit": "m", "value": 2400}]}]
                }
            }))
        }
        ("POST", "/api/v1/sdk/users/{user_id}/logs") => {
            req(format!("/api/v1/sdk/users/{u}/logs")).json(&json!({
                "sdkVersion": "0.9.2", "provider": "apple",
                "events": [{"eventType": "device_state", "timestamp": "2024-03-11T07:00:00Z",
                            "batteryLevel": 0.7, "isLowPowerMode": false}]
            }))
        }
        ("GET", "/api/v1/settings/archival") | ("POST", "/api/v1/settings/archival/run") => {
            req(path.into())
        }
        ("GET", "/api/v1/settings/seed/presets") | ("GET", "/api/v1/settings/seed/sleep-profiles") => {
            req(path.into())
        }
        ("POST", "/api/v1/settings/seed") => req(path.into()).json(&json!({
            "num_users": 1, "random_seed": 7,
            "profile": {"preset": "minimal", "workout_config": {"count": 1}, "sleep_config": {"count": 1}}
        })),
        // The vendor passthrough: Oura's own workout list and one of its workouts, live.
        ("GET", "/api/v1/providers/{provider}/users/{user_id}/workouts") => req(format!(
            "/api/v1/providers/oura/users/{u}/workouts?summary_start_time={}",
            (chrono::Utc::now() - chrono::Duration::days(3)).timestamp()
        )),
        ("GET", "/api/v1/providers/{provider}/users/{user_id}/workouts/{workout_id}") => {
            let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
            req(format!("/api/v1/providers/oura/users/{u}/workouts/wo-{day}"))
        }
        ("PUT", "/api/v1/settings/archival") => {
            req(path.into()).json(&json!({"archive_after_days": 3650, "delete_after_days": null}))
        }
        _ => return None,
    };
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap()))
}

/// Checks one answer against the contract; returns the problems found.
fn check_answer(
    contract: &Value,
    method: &str,
    path: &str,
    status: u16,
    body: &str,
) -> Vec<String> {
    let op = &contract["paths"][path][method.to_lowercase()];
    let responses = op["responses"].as_object().unwrap();
    // Statuses Open Wearables answers with that its generated document leaves out: FastAPI
    // documents the decorator's status (200) and 422 only, not a `Response(status_code=204)`
    // or an HTTPException. Each is checked for its exact shape here.
    match (method, path, status) {
        ("DELETE", "/api/v1/users/{user_id}/connections/{provider}", 204)
        | ("DELETE", "/api/v1/users/{user_id}/connections/{provider}/data", 204) => {
            return if body.is_empty() {
                vec![]
            } else {
                vec![format!("a 204 carries no body, got {body:.200}")]
            };
        }
        ("POST", "/api/v1/providers/garmin/users/{user_id}/backfill/cancel", 409) => {
            let detail = serde_json::from_str::<Value>(body).ok();
            return match detail.as_ref().and_then(|d| d["detail"].as_str()) {
                Some(_) => vec![],
                None => vec![format!("a 409 is {{\"detail\": string}}, got {body:.200}")],
            };
        }
        _ => {}
    }
    let Some(response) = responses.get(&status.to_string()) else {
        let documented: Vec<&String> = responses.keys().collect();
        return vec![format!(
            "status {status} is not in the contract (documented: {documented:?}); body: {}",
            body.chars().take(200).collect::<String>()
        )];
    };
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return if body.is_empty() {
            vec![]
        } else {
            vec![format!(
                "the contract has no body for {status}, got {body:.200}"
            )]
        };
    };
    let Some(schema) = content.get("application/json").map(|c| &c["schema"]) else {
        // text/event-stream: OW gives no schema for it.
        return vec![];
    };
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return vec![format!("body is not JSON ({e}): {body:.200}")],
    };
    let mut errs = Errors::new();
    Validator { root: contract }.check(schema, &value, "$", &mut errs);
    errs.into_iter()
        .map(|(problem, example)| format!("{problem} (e.g. {example})"))
        .collect()
}

#[tokio::test]
async fn responses_match_the_open_wearables_contract() {
    let contract = contract();
    let w = world().await;
    let ours = operations(&our_document(&w.s).await);
    let mut ops: Vec<(String, String)> =
        operations(&contract).intersection(&ours).cloned().collect();
    ops.sort_by_key(|(m, p)| rank(m, p));
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (method, path) in &ops {
        let Some((status, body)) = send(&w, method, path).await else {
            failures
                .entry(format!("{method} {path}"))
                .or_default()
                .push("no request recipe in this test".into());
            continue;
        };
        if status >= 500 {
            failures
                .entry(format!("{method} {path}"))
                .or_default()
                .push(format!("server error {status}: {body:.200}"));
            continue;
        }
        let problems = check_answer(&contract, method, path, status, &body);
        if !problems.is_empty() {
            failures
                .entry(format!("{method} {path} -> {status}"))
                .or_default()
                .extend(problems);
        }
    }
    let mut report = String::new();
    for (op, problems) in &failures {
        report.push_str(&format!("\n{op}\n"));
        for p in problems {
            report.push_str(&format!("    {p}\n"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} Open Wearables operations differ from the contract:{report}",
        failures.len(),
        ops.len()
    );
}

#[tokio::test]
async fn implemented_operations_are_in_both_documents() {
    let contract = operations(&contract());
    let s = Server::start().await;
    let ours = operations(&our_document(&s).await);
    let listed: BTreeSet<(String, String)> = IMPLEMENTED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let not_in_contract: Vec<_> = listed.difference(&contract).collect();
    assert!(
        not_in_contract.is_empty(),
        "listed but not Open Wearables operations: {not_in_contract:?}"
    );
    let missing: Vec<_> = listed.difference(&ours).collect();
    assert!(
        missing.is_empty(),
        "Open Wearables operations listed as implemented but absent from /openapi.json: {missing:?}"
    );
    // And the other way: an OW operation we serve is listed (so the contract test covers it).
    let unlisted: Vec<_> = contract
        .intersection(&ours)
        .filter(|op| !listed.contains(*op))
        .collect();
    assert!(
        unlisted.is_empty(),
        "served Open Wearables operations missing from IMPLEMENTED: {unlisted:?}"
    );
}

/// Our own document tells the truth about credentials, statuses, parameters and methods.
#[tokio::test]
async fn our_document_declares_credentials_statuses_and_descriptions() {
    let s = Server::start().await;
    let doc = our_document(&s).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["ApiKeyAuth"]["type"], "apiKey");
    assert_eq!(schemes["ApiKeyAuth"]["in"], "header");
    assert_eq!(schemes["ApiKeyAuth"]["name"], KEY_HEADER);
    assert_eq!(schemes["DeveloperBearer"]["type"], "http");
    assert_eq!(schemes["DeveloperBearer"]["scheme"], "bearer");
    let mut problems = vec![];
    let names = |op: &Value| -> Vec<String> {
        op["security"]
            .as_array()
            .map(|reqs| {
                reqs.iter()
                    .flat_map(|r| r.as_object().unwrap().keys().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = format!("{} {path}", method.to_uppercase());
            let security = names(op);
            let developer_only = path.starts_with("/api/v1/developer/")
                || (path.starts_with("/api/v1/webhooks/") && path != "/api/v1/webhooks/event-types")
                || path.starts_with("/api/v1/applications")
                || path.ends_with("/invitation-code")
                // Application credentials in the body, or a developer token.
                || path == "/api/v1/users/{user_id}/token"
                || path.starts_with("/api/v1/priorities/")
                || path.starts_with("/api/v1/auth/")
                || path.starts_with("/api/v1/audit/")
                || path == "/api/v1/users/{user_id}/history"
                || path.starts_with("/api/v1/developers")
                || path.starts_with("/api/v1/settings/")
                || (path.starts_with("/api/v1/invitations") && path != "/api/v1/invitations/accept")
                // Deleting provider data takes the credential that deleting the user takes.
                || path == "/api/v1/users/{user_id}/connections/{provider}/data"
                || (method == "put" && path.starts_with("/api/v1/oauth/providers"))
                || (path == "/api/v1/users/{user_id}" && method != "get")
                || path.starts_with("/api/v1/dashboard/")
                || path == "/api/v1/config"
                || path.contains("/webhooks/subscriptions");
            let public = path == "/"
                || path == "/api/v1/auth/login"
                || path == "/api/v1/invitation-code/redeem"
                || path == "/api/v1/invitations/accept"
                || path.starts_with("/api/v1/token/")
                || path.starts_with("/api/v1/uploads/")
                || path.ends_with("/webhooks")
                || path.starts_with("/api/v1/garmin/webhooks/")
                || path == "/api/v1/oura/webhooks/health"
                // Strava's own callback routes (and their health checks): called by Strava.
                || path.starts_with("/api/v1/strava/webhook")
                || path == "/api/v1/webhooks/event-types"
                || (method == "get"
                    && path.starts_with("/api/v1/oauth/")
                    && !path.ends_with("/authorize"))
                || path == "/api/v1/meta/coverage";
            let expected: Vec<&str> = if public {
                vec![]
            } else if path.starts_with("/api/v1/sdk/") {
                vec!["ApiKeyAuth", "SdkBearer"]
            } else if developer_only {
                vec!["DeveloperBearer"]
            } else {
                vec!["ApiKeyAuth", "DeveloperBearer"]
            };
            if security != expected {
                problems.push(format!(
                    "{id}: security {security:?}, expected {expected:?}"
                ));
            }
            if op["summary"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{id}: no summary"));
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["description"].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("{id}: parameter {} has no description", p["name"]));
                }
            }
            let responses = op["responses"].as_object().unwrap();
            let mut needed = vec![];
            if !security.is_empty() {
                needed.push("401");
            }
            if op.get("requestBody").is_some() || op.get("parameters").is_some() {
                needed.push("400");
            }
            if op.get("requestBody").is_some() {
                needed.push("413");
            }
            for status in needed {
                if !responses.contains_key(status) {
                    problems.push(format!("{id}: status {status} is not documented"));
                }
            }
        }
        // Every method the path does not declare is refused with 405 and an Allow header.
        let declared: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        let concrete = path
            .replace("{user_id}", &uuid::Uuid::new_v4().to_string())
            .replace(['{', '}'], "");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if declared.iter().any(|d| d == method) {
                continue;
            }
            let r = s
                .req(Method::from_bytes(method.as_bytes()).unwrap(), &concrete)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let allow = r
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let allowed_ok = allow
                .as_deref()
                .is_some_and(|a| declared.iter().all(|d| a.split(", ").any(|x| x == d)));
            if status != 405 || body != json!({"detail": "Method Not Allowed"}) || !allowed_ok {
                problems.push(format!(
                    "{method} {concrete}: {status} {body} Allow: {allow:?} (declared {declared:?})"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
