//! A loopback stand-in for the cloud providers (`wearhouse simulate providers`), used by the
//! tests and for demos. It serves each provider's authorize and token endpoints and data API
//! with deterministic, realistic payloads, sends signed webhooks, and fails on request.
//!
//! At start it prints the settings that point a server at it (client ids, secret, URLs) and
//! where Garmin pushes go (`--wearhouse-url`, default the server's default address).
//!
//! Control endpoints (JSON): `POST /_sim/faults` adds a fault, `POST /_sim/config` sets the
//! token and subscription lifetimes and Garmin's push target, `POST /_sim/webhook` signs and delivers a webhook (its
//! timestamp optionally shifted), `POST /_sim/garmin/activity` records a Garmin activity and
//! pushes its `activityFiles` notice (the FIT file is then served at the callback URL),
//! `GET /_sim/requests` lists the data requests served and `GET /_sim/request_log` the same
//! with the time each arrived, `POST /_sim/reset` forgets everything. A `sim_account` query
//! parameter on the consent URL makes the user consent as that provider account (default: one
//! account per provider, so users are linked).
//!
//! One workout is served by id where the provider has such an endpoint (the vendor passthrough):
//! Oura's `/v2/usercollection/workout/{id}`, Whoop's `/v2/activity/workout/{id}`, Garmin's
//! `/wellness-api/rest/activities/{id}`, Strava's `/activities/{id}`; an unknown id is a 404.
//!
//! Oura's webhook subscription API is served with expiries: `POST`, `GET` (list),
//! `PUT .../renew/{id}`, and `GET`, `PUT`, `DELETE .../{id}` under `/oura/api/v2/webhook/subscription`.
//!
//! Data values are functions of the day so tests can predict them: Oura daily steps on day D of
//! the month are `5000 + 100·D` (times at +02:00); Garmin's are `7000 + 100·D` (at -05:00).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use poem::http::StatusCode;
use poem::web::{Data, Form, Json, Path, Query};
use poem::{get, handler, post, EndpointExt, IntoResponse, Request, Response, Route};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::crypto::{hmac_sha256, pkce_challenge};

pub mod fit;
pub mod fitbit;
pub mod garmin;
pub mod oura;
pub mod strava;
pub mod ultrahuman;
pub mod whoop;

#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    pub provider: String,
    /// Substring of the request path the fault applies to ("" = any).
    #[serde(default)]
    pub path: String,
    /// `status` (with `status` and optional `retry_after`), `timeout`, `malformed`, `deny`
    /// (consent refused), `refuse_refresh`, `expire_tokens` (every token now expired),
    /// `invalid_client` (the token endpoint rejects our client credentials with 401),
    /// `token_status` (the token endpoint answers `status`, e.g. 503).
    pub kind: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// How many requests it affects.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

struct Grant {
    provider: String,
    redirect_uri: String,
    challenge: Option<String>,
    account: Option<String>,
}

/// An Oura webhook subscription held by the simulator.
#[derive(Clone)]
struct SimSub {
    id: String,
    body: Value,
    expires: DateTime<Utc>,
}

#[derive(Default)]
struct Sim {
    codes: HashMap<String, Grant>,
    access: HashMap<String, (String, DateTime<Utc>)>,
    refresh: HashMap<String, String>,
    /// The provider account each access or refresh token belongs to (absent: the default one).
    accounts: HashMap<String, String>,
    faults: Vec<Fault>,
    /// Requests served, with their arrival (Unix milliseconds).
    requests: Vec<(String, i64)>,
    subscriptions: Vec<SimSub>,
    counter: u64,
    /// Garmin backfill timeframes already requested: a repeat answers 409, as Garmin does.
    backfills: std::collections::HashSet<String>,
    /// Garmin activities recorded through `/_sim/garmin/activity`, by activity id: their FIT
    /// files are served at `/wellness-api/rest/activityFile?id=`.
    activities: HashMap<String, fit::FitActivity>,
    /// Strava's one push subscription: (id, callback URL).
    strava_sub: Option<(i64, String)>,
}

#[derive(Clone)]
struct Shared {
    sim: Arc<Mutex<Sim>>,
    secret: String,
    page_size: usize,
    expires_in: Arc<Mutex<i64>>,
    /// Lifetime of Oura webhook subscriptions (created or renewed), in seconds.
    subscription_ttl: Arc<Mutex<i64>>,
    /// Where Garmin pushes backfilled data, and the client id it sends along.
    garmin: Arc<Mutex<(Option<String>, String)>>,
}

impl Shared {
    fn take_fault(&self, provider: &str, path: &str, kinds: &[&str]) -> Option<Fault> {
        let mut sim = self.sim.lock().expect("sim lock");
        let i = sim.faults.iter().position(|f| {
            f.provider == provider && path.contains(&f.path) && kinds.contains(&f.kind.as_str())
        })?;
        let fault = sim.faults[i].clone();
        sim.faults[i].count -= 1;
        if sim.faults[i].count == 0 {
            sim.faults.remove(i);
        }
        Some(fault)
    }

    fn next(&self) -> u64 {
        let mut sim = self.sim.lock().expect("sim lock");
        sim.counter += 1;
        sim.counter
    }

    fn log(&self, line: String) {
        self.sim
            .lock()
            .expect("sim lock")
            .requests
            .push((line, Utc::now().timestamp_millis()));
    }
}

fn redirect(to: String) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("Location", to)
        .finish()
}

#[handler]
fn authorize(
    Path(provider): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    shared: Data<&Shared>,
) -> Response {
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let state = q.get("state").cloned().unwrap_or_default();
    let mut url = match reqwest::Url::parse(&redirect_uri) {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    if shared
        .take_fault(&provider, "/oauth/authorize", &["deny"])
        .is_some()
    {
        url.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The user denied access")
            .append_pair("state", &state);
        return redirect(url.to_string());
    }
    let code = format!("code-{}", shared.next());
    shared.sim.lock().expect("sim lock").codes.insert(
        code.clone(),
        Grant {
            provider,
            redirect_uri,
            challenge: q.get("code_challenge").cloned(),
            account: q.get("sim_account").cloned(),
        },
    );
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    redirect(url.to_string())
}

fn issue(shared: &Shared, provider: &str, account: Option<String>) -> Value {
    let n = shared.next();
    let access = format!("sim-access-{provider}-{n}");
    let refresh = format!("sim-refresh-{provider}-{n}");
    let expires_in = *shared.expires_in.lock().expect("lock");
    let mut sim = shared.sim.lock().expect("sim lock");
    if let Some(a) = account {
        sim.accounts.insert(access.clone(), a.clone());
        sim.accounts.insert(refresh.clone(), a);
    }
    sim.access.insert(
        access.clone(),
        (
            provider.to_string(),
            Utc::now() + chrono::Duration::seconds(expires_in),
        ),
    );
    sim.refresh.insert(refresh.clone(), provider.to_string());
    json!({"access_token": access, "refresh_token": refresh, "expires_in": expires_in, "token_type": "Bearer"})
}

fn oauth_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

/// The client secret of a `Basic` authorization header.
fn basic_secret(req: &Request) -> Option<String> {
    let encoded = req.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    Some(decoded.split_once(':')?.1.to_string())
}

/// Providers whose token endpoint takes the client credentials in Basic auth only.
const BASIC_AUTH: &[&str] = &["fitbit"];

#[handler]
fn token(
    req: &Request,
    Path(provider): Path<String>,
    Form(f): Form<HashMap<String, String>>,
    shared: Data<&Shared>,
) -> Response {
    if let Some(f) = shared.take_fault(&provider, "/oauth/token", &["token_status"]) {
        let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, "unavailable").into_response();
    }
    let rejected = shared
        .take_fault(&provider, "/oauth/token", &["invalid_client"])
        .is_some();
    let secret = if BASIC_AUTH.contains(&provider.as_str()) {
        basic_secret(req)
    } else {
        f.get("client_secret").cloned()
    };
    if rejected || secret.as_ref() != Some(&shared.secret) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = f.get("code").cloned().unwrap_or_default();
            let Some(grant) = shared.sim.lock().expect("sim lock").codes.remove(&code) else {
                return oauth_error("invalid_grant");
            };
            if grant.provider != provider || f.get("redirect_uri") != Some(&grant.redirect_uri) {
                return oauth_error("invalid_grant");
            }
            if let Some(challenge) = grant.challenge {
                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                if pkce_challenge(&verifier) != challenge {
                    return oauth_error("invalid_grant");
                }
            }
            Json(issue(&shared, &provider, grant.account)).into_response()
        }
        Some("refresh_token") => {
            if shared
                .take_fault(&provider, "/oauth/token", &["refuse_refresh"])
                .is_some()
            {
                return oauth_error("invalid_grant");
            }
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            let (known, account) = {
                let mut sim = shared.sim.lock().expect("sim lock");
                (sim.refresh.remove(&rt), sim.accounts.get(&rt).cloned())
            };
            if known.as_deref() != Some(provider.as_str()) {
                return oauth_error("invalid_grant");
            }
            Json(issue(&shared, &provider, account)).into_response()
        }
        _ => oauth_error("unsupported_grant_type"),
    }
}

fn days(q: &HashMap<String, String>) -> Vec<NaiveDate> {
    let parse = |k: &str| -> Option<NaiveDate> {
        let v = q.get(k)?;
        v.parse::<NaiveDate>()
            .ok()
            .or_else(|| DateTime::parse_from_rfc3339(v).ok().map(|t| t.date_naive()))
    };
    let start = parse("start_date")
        .or_else(|| parse("start_datetime"))
        .or_else(|| parse("start"));
    let end = parse("end_date")
        .or_else(|| parse("end_datetime"))
        .or_else(|| parse("end"));
    match (start, end) {
        (Some(s), Some(e)) => s.iter_days().take_while(|d| *d <= e).take(400).collect(),
        _ => vec![],
    }
}

fn at(d: NaiveDate, h: u32, m: u32) -> String {
    format!("{}T{h:02}:{m:02}:00+02:00", d)
}

#[handler]
async fn api(
    req: &Request,
    Path((provider, path)): Path<(String, String)>,
    shared: Data<&Shared>,
) -> Response {
    let q: HashMap<String, String> = req
        .uri()
        .query()
        .and_then(|q| reqwest::Url::parse(&format!("http://x/?{q}")).ok())
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let path = format!("/{}", path.trim_start_matches('/'));
    shared.log(format!(
        "{provider}{path}?{}",
        req.uri().query().unwrap_or("")
    ));
    let bearer = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    if shared
        .take_fault(&provider, &path, &["expire_tokens"])
        .is_some()
    {
        let mut sim = shared.sim.lock().expect("sim lock");
        for (_, exp) in sim.access.values_mut() {
            *exp = Utc::now() - chrono::Duration::seconds(1);
        }
    }
    let valid = shared
        .sim
        .lock()
        .expect("sim lock")
        .access
        .get(&bearer)
        .is_some_and(|(p, exp)| *p == provider && *exp > Utc::now());
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": "invalid or expired token"})),
        )
            .into_response();
    }
    if let Some(f) = shared.take_fault(&provider, &path, &["status", "timeout", "malformed"]) {
        match f.kind.as_str() {
            "timeout" => tokio::time::sleep(Duration::from_secs(30)).await,
            "malformed" => return (StatusCode::OK, "{\"data\": [").into_response(),
            _ => {
                let mut r = Response::builder().status(
                    StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                );
                if let Some(s) = f.retry_after {
                    r = r.header("Retry-After", s.to_string());
                }
                return r.body("{\"detail\": \"simulated failure\"}");
            }
        }
    }
    let account = shared
        .sim
        .lock()
        .expect("sim lock")
        .accounts
        .get(&bearer)
        .cloned();
    let offset: usize = q
        .get("next_token")
        .or_else(|| q.get("nextToken"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = shared.page_size;
    let body = match (provider.as_str(), path.as_str()) {
        ("oura", "/v2/usercollection/personal_info") => json!(oura::personal_info(account)),
        // One workout document (the vendor passthrough's detail).
        ("oura", p) if p.starts_with("/v2/usercollection/workout/") => {
            match oura::workout_of(&p["/v2/usercollection/workout/".len()..]) {
                Some(w) => w,
                None => return not_found_detail(),
            }
        }
        ("oura", p) if p.starts_with("/v2/usercollection/") => {
            match oura::records(&p["/v2/usercollection/".len()..], &q) {
                Some(all) => json!(oura::page(all, offset, size)),
                None => return StatusCode::NOT_FOUND.into_response(),
            }
        }
        ("garmin", "/wellness-api/rest/user/id") => json!({ "userId": garmin::USER }),
        ("garmin", p) if p.starts_with("/wellness-api/rest/activities/") => {
            match garmin::activity_of(&p["/wellness-api/rest/activities/".len()..]) {
                Some(a) => a,
                None => return not_found_detail(),
            }
        }
        ("garmin", "/wellness-api/rest/activityFile") => {
            let id = q.get("id").cloned().unwrap_or_default();
            let activity = shared
                .sim
                .lock()
                .expect("sim lock")
                .activities
                .get(&id)
                .cloned();
            return match activity {
                Some(a) => Response::builder()
                    .content_type("application/octet-stream")
                    .body(fit::activity_file(&a)),
                None => StatusCode::NOT_FOUND.into_response(),
            };
        }
        // Ping mode: a notification's callback URL returns the summaries uploaded in its window.
        ("garmin", p)
            if p.starts_with("/wellness-api/rest/")
                && q.contains_key("uploadStartTimeInSeconds") =>
        {
            let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
            let kind = &p["/wellness-api/rest/".len()..];
            Value::Array(garmin::items(
                kind,
                num("uploadStartTimeInSeconds"),
                num("uploadEndTimeInSeconds"),
            ))
        }
        ("garmin", p) if p.starts_with("/wellness-api/rest/backfill/") => {
            let kind = p["/wellness-api/rest/backfill/".len()..].to_string();
            let window = format!(
                "{kind}:{}:{}",
                q.get("summaryStartTimeInSeconds")
                    .cloned()
                    .unwrap_or_default(),
                q.get("summaryEndTimeInSeconds")
                    .cloned()
                    .unwrap_or_default()
            );
            if !shared
                .sim
                .lock()
                .expect("sim lock")
                .backfills
                .insert(window)
            {
                return (StatusCode::CONFLICT, "duplicate backfill").into_response();
            }
            let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
            let items = garmin::items(
                &kind,
                num("summaryStartTimeInSeconds"),
                num("summaryEndTimeInSeconds"),
            );
            let (target, client_id) = shared.garmin.lock().expect("lock").clone();
            if let (Some(target), false) = (target, items.is_empty()) {
                tokio::spawn(garmin_push(target, client_id, json!({ kind: items })));
            }
            return StatusCode::ACCEPTED.into_response();
        }
        ("strava", "/athlete") => json!(strava::athlete(account)),
        ("strava", "/athlete/activities") => {
            let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
            let all = strava::activities(num("after").unwrap_or(0), num("before").unwrap_or(0));
            // Strava caps `per_page`; the simulator caps it at its page size.
            let per_page = num("per_page").unwrap_or(30).clamp(1, 200) as usize;
            let size = per_page.min(size);
            let page = num("page").unwrap_or(1).max(1) as usize;
            Value::Array(all.into_iter().skip((page - 1) * size).take(size).collect())
        }
        ("strava", p) if p.starts_with("/activities/") => {
            let rest = &p["/activities/".len()..];
            let found = match rest.strip_suffix("/streams") {
                Some(id) => strava::streams_of(id),
                None => strava::detail_of(rest),
            };
            match found {
                Some(v) => v,
                None => {
                    return (
                        StatusCode::NOT_FOUND,
                        Json(json!({"message": "Record Not Found", "errors": []})),
                    )
                        .into_response()
                }
            }
        }
        ("fitbit", "/1/user/-/profile.json") => json!(fitbit::profile(account)),
        ("fitbit", "/1/user/-/activities/list.json") => {
            let Some(after) = q.get("afterDate").and_then(|d| d.parse::<NaiveDate>().ok()) else {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"errors": [{"errorType": "validation", "message": "afterDate is required"}]})),
                )
                    .into_response();
            };
            let num = |k: &str| q.get(k).and_then(|v| v.parse::<usize>().ok());
            let limit = num("limit").unwrap_or(100).clamp(1, 100).min(size);
            json!(fitbit::list(after, num("offset").unwrap_or(0), limit))
        }
        ("ultrahuman", "/user_data/user_info") => json!(ultrahuman::user_info(account)),
        ("ultrahuman", "/user_data/metrics") => {
            match q.get("date").and_then(|d| d.parse::<NaiveDate>().ok()) {
                Some(d) => json!(ultrahuman::metrics(d)),
                None => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": "date is required", "status": 400})),
                    )
                        .into_response()
                }
            }
        }
        ("whoop", "/v2/user/profile/basic") => {
            let id = account.and_then(|a| a.parse::<i64>().ok()).unwrap_or(10129);
            json!(whoop::profile(id))
        }
        ("whoop", "/v2/user/measurement/body") => json!(whoop::body_measurement()),
        ("whoop", p) if p.starts_with("/v2/activity/workout/") => {
            match whoop::workout_of(&p["/v2/activity/workout/".len()..]) {
                Some(w) => w,
                None => return not_found_detail(),
            }
        }
        ("whoop", "/v2/activity/workout") => {
            json!(whoop::page(whoop::records("workout", &q), offset, size))
        }
        ("whoop", "/v2/activity/sleep") => {
            json!(whoop::page(whoop::records("sleep", &q), offset, size))
        }
        ("whoop", "/v2/recovery") => {
            json!(whoop::page(whoop::records("recovery", &q), offset, size))
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    Json(body).into_response()
}

/// The answer to a record id the provider does not hold.
fn not_found_detail() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"detail": "Document not found"})),
    )
        .into_response()
}

/// Oura's subscription API: checks the app credentials, verifies the callback with a challenge
/// (as Oura does) and keeps the subscription.
#[handler]
async fn subscribe(req: &Request, Json(body): Json<Value>, shared: Data<&Shared>) -> Response {
    if req.header("x-client-secret") != Some(shared.secret.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (Some(url), Some(vtoken)) = (
        body["callback_url"].as_str(),
        body["verification_token"].as_str(),
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let challenge = format!("ch-{}", shared.next());
    let Ok(target) = reqwest::Url::parse_with_params(
        url,
        &[
            ("verification_token", vtoken),
            ("challenge", challenge.as_str()),
        ],
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let check = reqwest::Client::new().get(target).send().await;
    let echoed = match check {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
        _ => None,
    };
    if echoed.as_ref().and_then(|v| v["challenge"].as_str()) != Some(challenge.as_str()) {
        return (StatusCode::BAD_REQUEST, "callback verification failed").into_response();
    }
    // Only verified subscriptions are listed, so tests see that the challenge succeeded.
    shared.log(format!(
        "oura/v2/webhook/subscription {} {}",
        body["data_type"].as_str().unwrap_or(""),
        body["event_type"].as_str().unwrap_or("")
    ));
    let sub = SimSub {
        id: format!("sub-{}", shared.next()),
        body: json!({"callback_url": url, "event_type": body["event_type"], "data_type": body["data_type"]}),
        expires: Utc::now()
            + chrono::Duration::seconds(*shared.subscription_ttl.lock().expect("lock")),
    };
    let out = sub_json(&sub);
    shared.sim.lock().expect("sim lock").subscriptions.push(sub);
    (StatusCode::CREATED, Json(out)).into_response()
}

fn sub_json(s: &SimSub) -> Value {
    let mut v = s.body.clone();
    v["id"] = json!(s.id);
    v["expiration_time"] = json!(s.expires.to_rfc3339());
    v
}

fn app_authorized(req: &Request, shared: &Shared) -> bool {
    req.header("x-client-secret") == Some(shared.secret.as_str())
}

/// Oura's subscription list (expired ones included, as Oura keeps them until deleted).
#[handler]
fn list_subscriptions(req: &Request, shared: Data<&Shared>) -> Response {
    if !app_authorized(req, &shared) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let subs: Vec<Value> = shared
        .sim
        .lock()
        .expect("sim lock")
        .subscriptions
        .iter()
        .map(sub_json)
        .collect();
    Json(subs).into_response()
}

/// Renews a subscription for another lifetime; an expired one cannot be renewed (404).
#[handler]
fn renew_subscription(req: &Request, Path(id): Path<String>, shared: Data<&Shared>) -> Response {
    if !app_authorized(req, &shared) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let ttl = *shared.subscription_ttl.lock().expect("lock");
    let renewed = {
        let mut sim = shared.sim.lock().expect("sim lock");
        sim.subscriptions
            .iter_mut()
            .find(|s| s.id == id && s.expires > Utc::now())
            .map(|s| {
                s.expires = Utc::now() + chrono::Duration::seconds(ttl);
                sub_json(s)
            })
    };
    match renewed {
        Some(v) => {
            shared.log(format!("oura renew {id}"));
            Json(v).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[handler]
fn get_subscription(req: &Request, Path(id): Path<String>, shared: Data<&Shared>) -> Response {
    if !app_authorized(req, &shared) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let sim = shared.sim.lock().expect("sim lock");
    match sim.subscriptions.iter().find(|s| s.id == id) {
        Some(s) => Json(sub_json(s)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Points a subscription at another callback URL (Oura checks the verification token).
#[handler]
fn update_subscription(
    req: &Request,
    Path(id): Path<String>,
    Json(body): Json<Value>,
    shared: Data<&Shared>,
) -> Response {
    if !app_authorized(req, &shared) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (Some(url), Some(_)) = (
        body["callback_url"].as_str(),
        body["verification_token"].as_str(),
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut sim = shared.sim.lock().expect("sim lock");
    match sim.subscriptions.iter_mut().find(|s| s.id == id) {
        Some(s) => {
            s.body["callback_url"] = json!(url);
            Json(sub_json(s)).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[handler]
fn delete_subscription(req: &Request, Path(id): Path<String>, shared: Data<&Shared>) -> Response {
    if !app_authorized(req, &shared) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut sim = shared.sim.lock().expect("sim lock");
    let before = sim.subscriptions.len();
    sim.subscriptions.retain(|s| s.id != id);
    if sim.subscriptions.len() < before {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// Strava's push subscription: one per application. The callback is verified first with a
/// `hub.challenge` GET (as Strava does); an app that already has one gets 409.
#[handler]
async fn strava_subscribe(Json(body): Json<Value>, shared: Data<&Shared>) -> Response {
    if body["client_secret"].as_str() != Some(shared.secret.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (Some(url), Some(vtoken)) = (body["callback_url"].as_str(), body["verify_token"].as_str())
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if shared.sim.lock().expect("sim lock").strava_sub.is_some() {
        return (
            StatusCode::CONFLICT,
            Json(json!({"message": "Bad Request", "errors": [{"resource": "PushSubscription", "code": "already exists"}]})),
        )
            .into_response();
    }
    let challenge = format!("ch-{}", shared.next());
    let Ok(target) = reqwest::Url::parse_with_params(
        url,
        &[
            ("hub.mode", "subscribe"),
            ("hub.challenge", challenge.as_str()),
            ("hub.verify_token", vtoken),
        ],
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let echoed = match reqwest::Client::new().get(target).send().await {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
        _ => None,
    };
    if echoed.as_ref().and_then(|v| v["hub.challenge"].as_str()) != Some(challenge.as_str()) {
        return (StatusCode::BAD_REQUEST, "callback verification failed").into_response();
    }
    let id = shared.next() as i64;
    shared.log(format!("strava/push_subscriptions {url}"));
    shared.sim.lock().expect("sim lock").strava_sub = Some((id, url.to_string()));
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

#[handler]
fn strava_subscriptions(
    Query(q): Query<HashMap<String, String>>,
    shared: Data<&Shared>,
) -> Response {
    if q.get("client_secret") != Some(&shared.secret) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let sub = shared.sim.lock().expect("sim lock").strava_sub.clone();
    let list: Vec<Value> = sub
        .into_iter()
        .map(|(id, url)| {
            json!({"id": id, "resource_state": 2, "application_id": 1, "callback_url": url,
                   "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"})
        })
        .collect();
    Json(list).into_response()
}

#[handler]
fn strava_unsubscribe(
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
    shared: Data<&Shared>,
) -> Response {
    if q.get("client_secret") != Some(&shared.secret) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut sim = shared.sim.lock().expect("sim lock");
    if sim.strava_sub.as_ref().is_some_and(|(s, _)| *s == id) {
        sim.strava_sub = None;
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// Revokes a grant (Strava `deauthorize`, Fitbit and Ultrahuman `revoke`): the access token
/// (from the form or the bearer header) stops working; the request is logged.
#[handler]
fn revoke_grant(
    req: &Request,
    Path(provider): Path<String>,
    Form(f): Form<HashMap<String, String>>,
    shared: Data<&Shared>,
) -> Response {
    let presented = f
        .get("token")
        .or_else(|| f.get("access_token"))
        .cloned()
        .or_else(|| {
            req.header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(String::from)
        })
        .unwrap_or_default();
    let client_ok = match provider.as_str() {
        p if BASIC_AUTH.contains(&p) => basic_secret(req).as_ref() == Some(&shared.secret),
        "strava" => true,
        _ => f.get("client_secret") == Some(&shared.secret),
    };
    if !client_ok {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let known = {
        let mut sim = shared.sim.lock().expect("sim lock");
        let found = sim
            .access
            .get(&presented)
            .is_some_and(|(p, _)| *p == provider);
        if found {
            sim.access.remove(&presented);
        }
        found
    };
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    shared.log(format!("{provider} revoke"));
    Json(json!({})).into_response()
}

#[handler]
fn add_fault(Json(f): Json<Fault>, shared: Data<&Shared>) -> StatusCode {
    shared.sim.lock().expect("sim lock").faults.push(f);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct SimConfig {
    expires_in: Option<i64>,
    subscription_ttl_secs: Option<i64>,
    garmin_push_target: Option<String>,
    garmin_client_id: Option<String>,
}

#[handler]
fn set_config(Json(c): Json<SimConfig>, shared: Data<&Shared>) -> StatusCode {
    if let Some(e) = c.expires_in {
        *shared.expires_in.lock().expect("lock") = e;
    }
    if let Some(t) = c.subscription_ttl_secs {
        *shared.subscription_ttl.lock().expect("lock") = t;
    }
    let mut g = shared.garmin.lock().expect("lock");
    if c.garmin_push_target.is_some() {
        g.0 = c.garmin_push_target;
    }
    if let Some(id) = c.garmin_client_id {
        g.1 = id;
    }
    StatusCode::NO_CONTENT
}

/// Posts `body` to Garmin's configured push target, as Garmin does after a backfill request.
async fn garmin_push(target: String, client_id: String, body: Value) {
    let _ = reqwest::Client::new()
        .post(target)
        .header("garmin-client-id", client_id)
        .json(&body)
        .send()
        .await;
}

#[derive(Deserialize)]
struct ActivityOrder {
    activity_id: u64,
    start: i64,
    offset: i32,
    seconds: u32,
    step: u32,
}

/// Records a Garmin activity and pushes its `activityFiles` notice to the push target, with a
/// callback URL on this simulator (as Garmin's point at its API), like Garmin does after an
/// upload from the watch. Answers with the push's status and body.
#[handler]
async fn garmin_activity(
    req: &Request,
    Json(o): Json<ActivityOrder>,
    shared: Data<&Shared>,
) -> Response {
    let id = o.activity_id.to_string();
    shared.sim.lock().expect("sim lock").activities.insert(
        id.clone(),
        fit::FitActivity {
            start_unix: o.start,
            offset_s: o.offset,
            seconds: o.seconds,
            step: o.step,
        },
    );
    let host = req.header("host").unwrap_or("127.0.0.1").to_string();
    let file_token = format!("ft-{}", shared.next());
    let url = format!(
        "http://{host}/garmin/api/wellness-api/rest/activityFile?id={id}&token={file_token}"
    );
    let body = json!({ "activityFiles": [garmin::activity_file(o.activity_id, o.start, url)] });
    let (target, client_id) = shared.garmin.lock().expect("lock").clone();
    let Some(target) = target else {
        return (StatusCode::BAD_REQUEST, "no garmin_push_target configured").into_response();
    };
    let sent = reqwest::Client::new()
        .post(target)
        .header("garmin-client-id", client_id)
        .json(&body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Json(json!({"status": status, "body": text})).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[handler]
fn requests(shared: Data<&Shared>) -> Json<Vec<String>> {
    let sim = shared.sim.lock().expect("sim lock");
    Json(sim.requests.iter().map(|(r, _)| r.clone()).collect())
}

#[handler]
fn request_log(shared: Data<&Shared>) -> Json<Vec<Value>> {
    let sim = shared.sim.lock().expect("sim lock");
    Json(
        sim.requests
            .iter()
            .map(|(r, at)| json!({"request": r, "at_ms": at}))
            .collect(),
    )
}

#[handler]
fn reset(shared: Data<&Shared>) -> StatusCode {
    *shared.sim.lock().expect("sim lock") = Sim::default();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct WebhookOrder {
    provider: String,
    target: String,
    body: Value,
    /// Sign with this secret instead of the right one (to test rejection).
    #[serde(default)]
    wrong_secret: bool,
    /// Seconds added to the signed timestamp (negative: an old delivery, a replay).
    #[serde(default)]
    timestamp_offset_secs: i64,
}

#[handler]
async fn send_webhook(Json(o): Json<WebhookOrder>, shared: Data<&Shared>) -> Response {
    let body = serde_json::to_vec(&o.body).unwrap_or_default();
    let secret = if o.wrong_secret {
        "not-the-secret"
    } else {
        shared.secret.as_str()
    };
    let ts = (Utc::now() + chrono::Duration::seconds(o.timestamp_offset_secs))
        .timestamp_millis()
        .to_string();
    let sig = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), &body]);
    let http = reqwest::Client::new();
    let mut r = http
        .post(&o.target)
        .header("content-type", "application/json");
    r = match o.provider.as_str() {
        "garmin" => {
            let id = shared.garmin.lock().expect("lock").1.clone();
            r.header(
                "garmin-client-id",
                if o.wrong_secret {
                    "someone-else".into()
                } else {
                    id
                },
            )
        }
        "oura" => r
            .header("x-oura-timestamp", &ts)
            .header("x-oura-signature", hex::encode_upper(&sig)),
        "strava" => {
            let t = (Utc::now() + chrono::Duration::seconds(o.timestamp_offset_secs)).timestamp();
            let signed = hmac_sha256(
                secret.as_bytes(),
                &[format!("{t}.").as_bytes(), body.as_slice()],
            );
            r.header(
                "X-Strava-Signature",
                format!("t={t},v1={}", hex::encode(signed)),
            )
        }
        _ => r
            .header("X-WHOOP-Signature-Timestamp", &ts)
            .header("X-WHOOP-Signature", STANDARD.encode(&sig)),
    };
    match r.body(body).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Json(json!({"status": status, "body": text})).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The client id Garmin sends with its pushes (`garmin-client-id`): the server's
/// WEARHOUSE_GARMIN_CLIENT_ID must match it.
pub const GARMIN_CLIENT_ID: &str = "garmin-client";

pub fn app(secret: String, page_size: usize, garmin_push: Option<String>) -> impl poem::Endpoint {
    let shared = Shared {
        sim: Arc::default(),
        secret,
        page_size: page_size.max(1),
        expires_in: Arc::new(Mutex::new(3600)),
        subscription_ttl: Arc::new(Mutex::new(30 * 86_400)),
        garmin: Arc::new(Mutex::new((garmin_push, GARMIN_CLIENT_ID.into()))),
    };
    Route::new()
        .at("/:provider/oauth/authorize", get(authorize))
        .at("/:provider/oauth/token", post(token))
        .at(
            "/oura/api/v2/webhook/subscription",
            post(subscribe).get(list_subscriptions),
        )
        .at(
            "/oura/api/v2/webhook/subscription/renew/:id",
            poem::put(renew_subscription),
        )
        .at(
            "/oura/api/v2/webhook/subscription/:id",
            poem::delete(delete_subscription)
                .get(get_subscription)
                .put(update_subscription),
        )
        .at(
            "/strava/api/push_subscriptions",
            post(strava_subscribe).get(strava_subscriptions),
        )
        .at(
            "/strava/api/push_subscriptions/:id",
            poem::delete(strava_unsubscribe),
        )
        .at("/:provider/oauth/revoke", post(revoke_grant))
        .at("/:provider/oauth/deauthorize", post(revoke_grant))
        .at("/:provider/api/*path", get(api))
        .at("/_sim/faults", post(add_fault))
        .at("/_sim/config", post(set_config))
        .at("/_sim/requests", get(requests))
        .at("/_sim/request_log", get(request_log))
        .at("/_sim/reset", post(reset))
        .at("/_sim/webhook", post(send_webhook))
        .at("/_sim/garmin/activity", post(garmin_activity))
        .data(shared)
}

/// What a person needs to point a wearhouse server at the simulator: printed at start.
pub fn banner(port: u16, secret: &str, garmin_push: Option<&str>, push_token: &str) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let mut out = format!(
        "provider simulator listening on {base}\n\n\
         Settings for the wearhouse server (any client id works for Oura and Whoop; Garmin's\n\
         pushes carry `garmin-client-id: {GARMIN_CLIENT_ID}`, so the Garmin client id must be that):\n"
    );
    for p in ["oura", "whoop", "garmin", "strava", "ultrahuman", "fitbit"] {
        let up = p.to_uppercase();
        out.push_str(&format!(
            "export WEARHOUSE_{up}_CLIENT_ID={p}-client\n\
             export WEARHOUSE_{up}_CLIENT_SECRET={secret}\n\
             export WEARHOUSE_{up}_AUTHORIZE_URL={base}/{p}/oauth/authorize\n\
             export WEARHOUSE_{up}_TOKEN_URL={base}/{p}/oauth/token\n\
             export WEARHOUSE_{up}_API_URL={base}/{p}/api\n"
        ));
    }
    out.push_str(&format!(
        "export WEARHOUSE_GARMIN_PUSH_TOKEN={push_token}\n"
    ));
    match garmin_push {
        Some(target) => out.push_str(&format!(
            "\nGarmin pushes (backfills, activity files) go to {target}\n\
             (another server: --wearhouse-url URL, or POST {base}/_sim/config {{\"garmin_push_target\": URL}})\n"
        )),
        None => out.push_str(&format!(
            "\nGarmin pushes go nowhere: a Garmin backfill stays in_progress until\n\
             POST {base}/_sim/config {{\"garmin_push_target\": \"<server>/api/v1/providers/garmin/webhooks\"}}\n"
        )),
    }
    out.push_str(&format!(
        "\nControl: POST {base}/_sim/faults, /_sim/config, /_sim/webhook, /_sim/garmin/activity, \
         /_sim/reset; GET {base}/_sim/requests, /_sim/request_log\n"
    ));
    out
}

pub async fn run(
    port: u16,
    secret: String,
    page_size: usize,
    garmin_push: Option<String>,
    push_token: String,
) -> anyhow::Result<()> {
    use poem::listener::{Acceptor, Listener};
    use std::io::Write;
    let acceptor = poem::listener::TcpListener::bind(format!("127.0.0.1:{port}"))
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().map(|s| s.port()))
        .unwrap_or(port);
    print!(
        "{}",
        banner(port, &secret, garmin_push.as_deref(), &push_token)
    );
    std::io::stdout().flush()?;
    tracing::info!(port, "provider simulator listening");
    poem::Server::new_with_acceptor(acceptor)
        .run(app(secret, page_size, garmin_push))
        .await?;
    Ok(())
}
