//! Cloud providers. Each folder implements [`Provider`] (its OAuth settings and a pure,
//! versioned mapping from its payloads, typed in its `payload` module, to normalized records)
//! and the capability traits it has: [`PullProvider`], [`PushProvider`], [`BackfillProvider`],
//! [`SubscriptionProvider`], [`VendorWorkouts`]. Everything that does I/O (HTTP, tokens,
//! storage) lives in `engine` and `oauth` and is shared by every provider.

pub mod engine;
pub mod fitbit;
pub mod garmin;
pub mod linked;
pub mod mapped;
pub mod oauth;
pub mod oura;
pub mod pacer;
pub mod payload;
pub mod scheduler;
pub mod strava;
pub mod subscriptions;
pub mod ultrahuman;
pub mod whoop;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::RecordKind;

pub use mapped::{MapError, Mapped};

use crate::config::ProvidersConfig;

/// What a provider can do (the contract's `ProviderCapabilities`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capabilities {
    pub rest_pull: bool,
    pub webhook_stream: bool,
    pub webhook_ping: bool,
    pub webhook_callback: bool,
    pub max_historical_days: Option<u32>,
}

/// What a provider's mapper delivers, for `/meta/coverage`. The tests check each list against
/// what the mapper produces from the simulator's payloads.
#[derive(Debug, Clone, Copy)]
pub struct Coverage {
    /// Series codes of the samples it maps.
    pub series: &'static [&'static str],
    /// Workout item fields it fills.
    pub workout_fields: &'static [&'static str],
    /// Sleep item fields it fills.
    pub sleep_fields: &'static [&'static str],
    /// Menstrual cycle fields it fills.
    pub menstrual_cycle_fields: &'static [&'static str],
    /// Categories of the provider's own health scores.
    pub scores: &'static [&'static str],
}

/// Workout item fields the `workouts` read model can fill (columns plus its `stats`).
pub const WORKOUT_FIELDS: &[&str] = &[
    "type",
    "start_time",
    "end_time",
    "zone_offset",
    "duration_seconds",
    "calories_kcal",
    "distance_meters",
    "avg_heart_rate_bpm",
    "max_heart_rate_bpm",
    "elevation_gain_meters",
];

/// Sleep item fields the `sleep_sessions` read model can fill.
pub const SLEEP_FIELDS: &[&str] = &[
    "start_time",
    "end_time",
    "zone_offset",
    "duration_seconds",
    "sleep_duration_seconds",
    "efficiency_percent",
    "stages",
    "sleep_stage_intervals",
    "is_nap",
];

/// A request budget the provider documents: at most `requests` in each fixed window of
/// `window_secs` (windows start at multiples of their length since the Unix epoch, as Strava's
/// quarter hours and UTC days and Fitbit's hours do), for the whole app or per user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateWindow {
    pub requests: u32,
    pub window_secs: u32,
    pub per_user: bool,
}

/// How the client authenticates to the provider's token endpoints (and revocation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClientAuth {
    /// Not at all (Strava's deauthorization takes the user's token only).
    None,
    /// `client_id` and `client_secret` in the form body.
    Body,
    /// HTTP Basic with the client id and secret (Fitbit).
    Basic,
}

/// Revoking the user's grant at the provider when they disconnect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Revocation {
    /// Replaces the last path segment of the token URL (`…/oauth/token` → `…/oauth/revoke`).
    pub endpoint: &'static str,
    /// The form field carrying the access token.
    pub token_field: &'static str,
    pub client_auth: ClientAuth,
}

impl Revocation {
    /// The revocation URL beside `token_url`.
    pub fn url(&self, token_url: &str) -> Option<String> {
        let (base, _) = token_url.rsplit_once('/')?;
        Some(format!("{base}/{}", self.endpoint))
    }
}

/// Static OAuth facts of a provider; URLs and credentials come from [`Endpoints`].
#[derive(Debug, Clone, Copy)]
pub struct OAuthSettings {
    pub scopes: &'static str,
    pub pkce: bool,
    /// The user-info request made right after the code exchange (path under the API URL).
    pub user_info_path: Option<&'static str>,
}

pub use crate::config::Endpoints;

/// One GET against the provider's API.
#[derive(Debug, Clone, PartialEq)]
pub struct PullRequest {
    pub path: String,
    pub query: Vec<(String, String)>,
}

/// Samples a record's mapping derived from it, at one instant of another mapped record.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedSamples {
    pub data_source_id: Uuid,
    pub series: &'static [&'static str],
    pub at: SampleAnchor,
}

/// Where the derived samples sit in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleAnchor {
    /// At the `recorded_at` of this health score.
    ScoreTime(Uuid),
    /// At the start of this sleep session.
    SleepStart(Uuid),
    /// At every instant within this workout's span (a workout's recorded streams).
    WorkoutSpan(Uuid),
}

/// What a verified webhook delivery asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Ping: something changed, pull `data_type` for that provider user (Oura, Whoop).
    Pull {
        provider_user_id: String,
        data_type: String,
    },
    /// Push: the records themselves (Garmin); `items` is a JSON array for [`Provider::map`].
    Data {
        provider_user_id: String,
        data_type: String,
        items: Value,
    },
    /// Ping with a callback (Garmin's ping mode): fetch `url` with the user's token, then map
    /// what it returns as `data_type`.
    Fetch {
        provider_user_id: String,
        data_type: String,
        url: String,
    },
    /// Ping naming one record (Strava): it is fetched by id with the user's token (see
    /// [`PullProvider::record_request`]), which also proves the provider holds it, then mapped
    /// with what [`PullProvider::follow_ups`] asks for it.
    Record {
        provider_user_id: String,
        data_type: String,
        external_id: String,
    },
    /// The user withdrew consent at the provider.
    Deregistered { provider_user_id: String },
    /// The user changed what they share (Garmin permissions): the connection's new scope.
    ScopeChanged {
        provider_user_id: String,
        scope: String,
    },
    /// The provider deleted one of its records (Whoop `*.deleted`): authoritative, so what was
    /// mapped from it goes (see [`PushedDeletes`]).
    Deleted {
        provider_user_id: String,
        data_type: String,
        external_id: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WebhookError {
    #[error("invalid webhook signature")]
    Signature,
    #[error("malformed webhook payload: {0}")]
    Payload(String),
    #[error("webhook verification is not supported by this provider")]
    Unsupported,
    /// The signed timestamp is further than the tolerance (seconds) from now: a replay, or a
    /// clock far off.
    #[error("webhook timestamp is more than {0} s away from the current time")]
    Stale(u64),
}

/// How a provider's webhooks deliver data (the contract's `webhook_*` flags).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PushModes {
    /// Deliveries carry the records themselves ([`Notice::Data`]).
    pub stream: bool,
    /// Deliveries only say what changed; the data is pulled ([`Notice::Pull`]).
    pub ping: bool,
    /// Deliveries carry a URL to fetch the data from ([`Notice::Fetch`]).
    pub callback: bool,
}

/// A provider integration: what every provider has (identity, OAuth, its mapping), plus the
/// capabilities it implements, each its own trait reached through an `as_*` accessor. Callers
/// ask for the capability they need (`p.as_pull()`), so a provider implements only what it
/// does, and [`Provider::capabilities`] follows from that. Every method is pure: no I/O, no
/// clock, no randomness.
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    fn display_name(&self) -> &'static str;
    fn oauth(&self) -> OAuthSettings;
    /// The provider's id of the user, from the user-info response.
    fn provider_user_id(&self, user_info: &Value) -> Option<String>;
    /// The app-wide request budget per minute (all users together); `None` for no pacing.
    fn requests_per_minute(&self) -> Option<u32>;
    /// Budgets in fixed windows besides the per-minute pacing (Strava's 15 minutes and day,
    /// Fitbit's hour per user).
    fn rate_windows(&self) -> &'static [RateWindow] {
        &[]
    }
    /// How the token endpoint takes the client credentials.
    fn token_auth(&self) -> ClientAuth {
        ClientAuth::Body
    }
    /// The grant revocation sent when a user disconnects; `None`: the provider has none.
    fn revocation(&self) -> Option<Revocation> {
        None
    }
    /// Bumped whenever [`Provider::map`] changes output for the same input.
    fn mapping_version(&self) -> u32;
    /// What [`Provider::map`] delivers (listed by `/meta/coverage`).
    fn coverage(&self) -> Coverage;
    /// Maps one response (or pushed batch) of `data_type` for `user_id` to records.
    fn map(&self, data_type: &str, body: &Value, user_id: Uuid) -> Result<Mapped, MapError>;

    /// Pulls data over REST ([`PullProvider`]).
    fn as_pull(&self) -> Option<&dyn PullProvider> {
        None
    }
    /// Receives webhooks ([`PushProvider`]).
    fn as_push(&self) -> Option<&dyn PushProvider> {
        None
    }
    /// Answers history requests by push ([`BackfillProvider`]).
    fn as_backfill(&self) -> Option<&dyn BackfillProvider> {
        None
    }
    /// Needs app-level webhook subscriptions kept alive ([`SubscriptionProvider`]).
    fn as_subscriptions(&self) -> Option<&dyn SubscriptionProvider> {
        None
    }

    /// Lists and reads its workouts live for the vendor passthrough routes
    /// ([`VendorWorkouts`]); `None`: the provider has no workouts endpoint to pass through.
    fn as_vendor_workouts(&self) -> Option<&dyn VendorWorkouts> {
        None
    }

    /// The contract's flags, from the capabilities implemented.
    fn capabilities(&self) -> Capabilities {
        let modes = self.as_push().map(|p| p.modes()).unwrap_or_default();
        Capabilities {
            rest_pull: self.as_pull().is_some(),
            webhook_stream: modes.stream,
            webhook_ping: modes.ping,
            webhook_callback: modes.callback,
            max_historical_days: self.as_backfill().map(|b| b.max_historical_days()),
        }
    }

    /// Whether a first history can be fetched for a new connection: pulled, or requested by
    /// backfill.
    fn has_history(&self) -> bool {
        self.as_pull().is_some() || self.as_backfill().is_some()
    }
}

/// Pulls data from the provider's REST API, page by page over a time window.
pub trait PullProvider: Send + Sync {
    /// The data types pulled by a sync, in order.
    fn data_types(&self) -> &'static [&'static str];
    /// The first page of `data_type` over `[start, end)`.
    fn first_page(&self, data_type: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> PullRequest;
    /// The next page after `previous`, whose response was `body`; `None` at the end.
    fn next_page(&self, previous: &PullRequest, body: &Value) -> Option<PullRequest>;
    /// Maps a response that describes the user as of now rather than at a time of its own
    /// (profile weight and height). `received_at` is when the response arrived, so a replay
    /// gives the same result. `None`: `data_type` is not such a snapshot (mapped by
    /// [`Provider::map`]).
    fn map_snapshot(
        &self,
        data_type: &str,
        body: &Value,
        user_id: Uuid,
        received_at: DateTime<Utc>,
    ) -> Option<Result<Mapped, MapError>>;
    /// The next page, knowing the sync's window (for providers whose pages are days, or whose
    /// paging must stop past the window's end). Defaults to [`PullProvider::next_page`].
    fn next_page_in(
        &self,
        previous: &PullRequest,
        body: &Value,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
    ) -> Option<PullRequest> {
        self.next_page(previous, body)
    }
    /// Requests a fetched response of `data_type` leads to (Strava: each activity's streams),
    /// each with the kind it is stored and mapped as.
    fn follow_ups(&self, _data_type: &str, _body: &Value) -> Vec<(String, PullRequest)> {
        vec![]
    }
    /// The request fetching one record of `data_type` by the provider's id
    /// ([`Notice::Record`]); `None`: not fetchable by id.
    fn record_request(&self, _data_type: &str, _external_id: &str) -> Option<PullRequest> {
        None
    }
}

/// The window and page of a live workout listing (`GET /providers/{provider}/users/{user_id}/
/// workouts`), resolved by the caller: `start < end`, `limit` in 1..=100.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkoutListQuery {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub limit: u32,
    pub offset: u32,
}

/// The provider's own workouts, fetched live with the user's token and answered as the
/// provider sent them (the vendor passthrough routes).
pub trait VendorWorkouts: Send + Sync {
    /// How far back a listing reaches when the caller gives no start.
    fn default_lookback(&self) -> chrono::Duration {
        chrono::Duration::days(30)
    }
    /// The longest window one listing may cover (the requests it takes grow with it);
    /// `None`: any.
    fn max_window(&self) -> Option<chrono::Duration> {
        None
    }
    /// The requests listing the workouts of `q` (within [`VendorWorkouts::max_window`]).
    /// Several (Garmin answers a day per request) are answered together as one array of their
    /// items.
    fn list_requests(&self, q: &WorkoutListQuery) -> Vec<PullRequest>;
    /// The request reading workout `id` (already a safe path segment, see [`path_segment`]);
    /// `None`: the provider has no such endpoint.
    fn detail_request(&self, id: &str) -> Option<PullRequest>;
}

/// `id` as one URL path segment: every byte outside RFC 3986's unreserved set percent-encoded,
/// so a caller's id can never reach another path of the provider's API with the user's token.
/// `None` for the empty, `.` and `..` segments (URL parsers resolve dot segments).
pub fn path_segment(id: &str) -> Option<String> {
    if id.is_empty() || id == "." || id == ".." {
        return None;
    }
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Some(out)
}

/// Receives the provider's webhook deliveries.
pub trait PushProvider: Send + Sync {
    /// What its deliveries carry.
    fn modes(&self) -> PushModes;
    /// Checks a webhook delivery's signature. `headers` have lower-case names.
    fn verify_webhook(
        &self,
        headers: &BTreeMap<String, String>,
        body: &[u8],
        endpoints: &Endpoints,
    ) -> Result<(), WebhookError>;
    /// When a signed delivery says it was sent (its signed timestamp header), so stale or
    /// future-dated deliveries (replays) can be refused; `None`: not timestamped.
    fn webhook_timestamp(&self, headers: &BTreeMap<String, String>) -> Option<DateTime<Utc>>;
    /// What a verified delivery asks for.
    fn parse_webhook(&self, body: &Value) -> Result<Vec<Notice>, WebhookError>;
    /// Files its pushes point at ([`PushedFiles`]).
    fn as_files(&self) -> Option<&dyn PushedFiles> {
        None
    }
    /// What its delete notices ([`Notice::Deleted`]) remove ([`PushedDeletes`]).
    fn as_deletes(&self) -> Option<&dyn PushedDeletes> {
        None
    }
}

/// Pushes that point at files (Garmin's activity files): the engine downloads each with the
/// user's token, stores the bytes raw under their kind, then maps them with
/// [`PushedFiles::map_file`].
pub trait PushedFiles: Send + Sync {
    /// The files a pushed batch of `data_type` points at.
    fn file_downloads(&self, data_type: &str, items: &Value) -> Vec<FileDownload>;
    /// Maps a downloaded file stored raw under `kind` (as [`PushedFiles::file_downloads`]
    /// named it). `None`: `kind` is not a file of this provider.
    fn map_file(&self, kind: &str, bytes: &[u8], user_id: Uuid)
        -> Option<Result<Mapped, MapError>>;
}

/// The records a provider-side delete ([`Notice::Deleted`]) removes.
pub trait PushedDeletes: Send + Sync {
    /// The records mapped from the provider's `data_type` record `external_id` for `user_id`
    /// (the record and what derives from it, such as its score).
    fn deleted_records(
        &self,
        data_type: &str,
        external_id: &str,
        user_id: Uuid,
    ) -> Vec<(RecordKind, Uuid)>;
    /// The samples mapped from that record: which series of which source, at the time of which
    /// of the record's mapped records (the deletion reads that time from its read model, since
    /// the delete notice names only the provider's id).
    fn deleted_samples(
        &self,
        data_type: &str,
        external_id: &str,
        user_id: Uuid,
    ) -> Option<DerivedSamples>;
}

/// History requested from the provider, which pushes the result to the webhook (Garmin).
pub trait BackfillProvider: Send + Sync {
    /// Data types whose history is requested by backfill.
    fn backfill_types(&self) -> &'static [&'static str];
    /// The backfill request of `data_type` over `[start, end)`; `None`: not a backfill type.
    fn backfill_request(
        &self,
        data_type: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<PullRequest>;
    /// How far before the user's consent history can be requested.
    fn max_historical_days(&self) -> u32;
}

/// App-level webhook subscriptions that must be created and renewed for the provider to ping
/// (Oura), with the GET challenge that verifies the callback URL.
pub trait SubscriptionProvider: Send + Sync {
    /// The subscriptions to create so the provider pings `callback_url`; each request's `key`
    /// names the subscription it creates (as [`Subscription::key`]).
    fn subscription_requests(&self, endpoints: &Endpoints, callback_url: &str) -> Vec<AppRequest>;
    /// The request listing the app's subscriptions.
    fn list_subscriptions(&self, endpoints: &Endpoints) -> AppRequest;
    /// The subscriptions in a listing response.
    fn parse_subscriptions(&self, body: &Value) -> Vec<Subscription>;
    /// The request renewing subscription `id` before it expires.
    fn renew_subscription(&self, endpoints: &Endpoints, id: &str) -> AppRequest;
    /// The request reading subscription `id`; `None`: the provider has none, so it is looked
    /// up in the list.
    fn get_subscription(&self, _endpoints: &Endpoints, _id: &str) -> Option<AppRequest> {
        None
    }
    /// The request pointing subscription `id` at `callback_url`; `None`: not possible at
    /// this provider (delete and register again).
    fn update_subscription(
        &self,
        _endpoints: &Endpoints,
        _id: &str,
        _callback_url: &str,
    ) -> Option<AppRequest> {
        None
    }
    /// The request deleting subscription `id`; `None`: not possible at this provider.
    fn delete_subscription(&self, _endpoints: &Endpoints, _id: &str) -> Option<AppRequest> {
        None
    }
    /// The subscriptions in a listing response as the provider describes them, for the
    /// management routes (each object as the provider sent it).
    fn subscription_items(&self, body: &Value) -> Vec<Value> {
        body.as_array().cloned().unwrap_or_default()
    }
    /// The answer to the GET verification challenge of the callback URL.
    fn challenge(
        &self,
        query: &BTreeMap<String, String>,
        endpoints: &Endpoints,
    ) -> Result<Value, WebhookError>;
}

/// A file to download for a pushed batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDownload {
    /// As the provider sent it; the engine only follows URLs under the provider's API URL,
    /// since it sends the user's token along.
    pub url: String,
    /// The raw payload kind, which carries what the mapping needs besides the bytes.
    pub kind: String,
    pub content_type: &'static str,
}

/// A request made with the app's own credentials (not a user's token).
#[derive(Debug, Clone, PartialEq)]
pub struct AppRequest {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// For a subscription request: the key of the subscription it creates.
    pub key: Option<String>,
}

/// An app-level webhook subscription held at a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    /// What it delivers, e.g. `sleep/create`.
    pub key: String,
    pub callback_url: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What keeps the wanted subscriptions alive at `now`: those to create (no live one delivers
/// their key to `callback_url`; an expired one is as good as none) and the ids to renew (live
/// but expiring before `renew_by`). A subscription without an expiry never needs renewing.
pub fn plan_subscriptions<'a>(
    wanted: &'a [AppRequest],
    existing: &[Subscription],
    callback_url: &str,
    now: DateTime<Utc>,
    renew_by: DateTime<Utc>,
) -> (Vec<&'a AppRequest>, Vec<String>) {
    let mine: Vec<&Subscription> = existing
        .iter()
        .filter(|s| s.callback_url == callback_url)
        .collect();
    let create = wanted
        .iter()
        .filter(|w| {
            !mine
                .iter()
                .any(|s| Some(&s.key) == w.key.as_ref() && s.expires_at.is_none_or(|e| e > now))
        })
        .collect();
    let renew = mine
        .iter()
        .filter(|s| {
            wanted.iter().any(|w| w.key.as_ref() == Some(&s.key))
                && s.expires_at.is_some_and(|e| e <= renew_by && e > now)
        })
        .map(|s| s.id.clone())
        .collect();
    (create, renew)
}

/// The token a provider echoes back when it verifies our webhook endpoint: derived from the
/// client secret, so it needs no storage and proves the challenge came for our subscription.
pub fn verification_token(endpoints: &Endpoints) -> String {
    hex::encode(
        &hmac_sha256(
            endpoints.client_secret.as_bytes(),
            &[b"wearhouse-webhook-verification"],
        )[..16],
    )
}

/// Every provider compiled into this build (the order [`Registry::new`] pairs endpoints in).
pub fn all() -> Vec<Arc<dyn Provider>> {
    vec![
        Arc::new(oura::Oura),
        Arc::new(whoop::Whoop),
        Arc::new(garmin::Garmin),
        Arc::new(strava::Strava),
        Arc::new(ultrahuman::Ultrahuman),
        Arc::new(fitbit::Fitbit),
    ]
}

/// The registered providers with their endpoints.
#[derive(Clone)]
pub struct Registry {
    providers: Vec<(Arc<dyn Provider>, Endpoints)>,
}

impl Registry {
    pub fn new(cfg: &ProvidersConfig) -> Registry {
        let endpoints = [
            cfg.oura(),
            cfg.whoop(),
            cfg.garmin(),
            cfg.strava(),
            cfg.ultrahuman(),
            cfg.fitbit(),
        ];
        Registry {
            providers: all().into_iter().zip(endpoints).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<(Arc<dyn Provider>, Endpoints)> {
        self.providers
            .iter()
            .find(|(p, _)| p.name() == name)
            .map(|(p, e)| (p.clone(), e.clone()))
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.iter().map(|(p, _)| p)
    }
}

pub use crate::crypto::hmac_sha256;

/// Endpoints with only a client secret (webhook tests).
#[cfg(test)]
pub fn secret_only(secret: &str) -> Endpoints {
    Endpoints {
        client_secret: secret.into(),
        ..Endpoints::default()
    }
}

/// Constant-time comparison of two byte strings.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a webhook signed as HMAC-SHA256(secret, timestamp ‖ body), the signature in
/// `sig_header` (as `decode` reads it) and the timestamp in `ts_header`: Oura and Whoop both
/// sign this way and differ only in header names and encoding.
pub fn verify_timestamped_hmac(
    headers: &BTreeMap<String, String>,
    body: &[u8],
    secret: &str,
    (sig_header, ts_header): (&str, &str),
    decode: fn(&str) -> Option<Vec<u8>>,
) -> Result<(), WebhookError> {
    // Without a secret anyone can compute the "signature" (an HMAC with the empty key): an
    // installation that has not configured one accepts no deliveries at all.
    if secret.is_empty() {
        return Err(WebhookError::Signature);
    }
    let sig = headers.get(sig_header).ok_or(WebhookError::Signature)?;
    let ts = headers.get(ts_header).ok_or(WebhookError::Signature)?;
    // A timestamp that does not parse cannot be checked for freshness: refused, not skipped.
    if parse_webhook_timestamp(ts).is_none() {
        return Err(WebhookError::Signature);
    }
    let given = decode(sig.trim()).ok_or(WebhookError::Signature)?;
    let expected = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), body]);
    if same(&expected, &given) {
        Ok(())
    } else {
        Err(WebhookError::Signature)
    }
}

/// Reads a webhook timestamp header: Unix seconds, Unix milliseconds (Whoop), or RFC 3339.
pub fn parse_webhook_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        // No real send time in seconds reaches 10^11 (year 5138); milliseconds always do.
        return if n.abs() >= 100_000_000_000 {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        };
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Refuses a delivery sent more than `tolerance_secs` before or after `now`, as Standard
/// Webhooks prescribes against replays of a captured (validly signed) delivery.
pub fn check_freshness(
    sent: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<(), WebhookError> {
    if (now - sent).num_seconds().unsigned_abs() > tolerance_secs {
        Err(WebhookError::Stale(tolerance_secs))
    } else {
        Ok(())
    }
}

/// Parses an RFC 3339 timestamp with offset into (UTC time, offset in minutes).
pub fn parse_time(s: &str) -> Option<(DateTime<Utc>, i16)> {
    let t = DateTime::parse_from_rfc3339(s).ok()?;
    Some((
        t.with_timezone(&Utc),
        (t.offset().local_minus_utc() / 60) as i16,
    ))
}

/// Parses "+HH:MM" / "-HH:MM" / "Z" into minutes east of UTC.
pub fn parse_offset(s: &str) -> Option<i16> {
    if s == "Z" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = s[1..].split_once(':')?;
    Some(sign * (h.parse::<i16>().ok()? * 60 + m.parse::<i16>().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_their_offsets() {
        let (t, off) = parse_time("2026-03-01T23:30:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T21:30:00+00:00");
        assert_eq!(off, 120);
        assert_eq!(parse_offset("-05:30"), Some(-330));
        assert_eq!(parse_offset("Z"), Some(0));
        assert_eq!(parse_offset("0500"), None);
    }

    #[test]
    fn webhook_timestamps_in_seconds_milliseconds_or_rfc3339() {
        let t: DateTime<Utc> = "2023-11-14T22:13:20Z".parse().unwrap();
        assert_eq!(parse_webhook_timestamp("1700000000"), Some(t));
        assert_eq!(parse_webhook_timestamp("1700000000000"), Some(t));
        assert_eq!(
            parse_webhook_timestamp("2023-11-14T22:13:20+00:00"),
            Some(t)
        );
        assert_eq!(parse_webhook_timestamp("yesterday"), None);
        let s = chrono::Duration::seconds;
        assert_eq!(check_freshness(t - s(300), t, 300), Ok(()));
        assert_eq!(check_freshness(t + s(300), t, 300), Ok(()));
        assert_eq!(
            check_freshness(t - s(301), t, 300),
            Err(WebhookError::Stale(300))
        );
        assert_eq!(
            check_freshness(t + s(301), t, 300),
            Err(WebhookError::Stale(300))
        );
    }

    #[test]
    fn subscriptions_are_created_when_missing_and_renewed_before_expiry() {
        let now: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        let want = |k: &str| AppRequest {
            method: "POST",
            path: "/subs".into(),
            headers: vec![],
            body: Value::Null,
            key: Some(k.into()),
        };
        let wanted = vec![
            want("sleep/create"),
            want("sleep/update"),
            want("workout/create"),
        ];
        let sub = |id: &str, k: &str, url: &str, days: i64| Subscription {
            id: id.into(),
            key: k.into(),
            callback_url: url.into(),
            expires_at: Some(now + chrono::Duration::days(days)),
        };
        let existing = vec![
            sub("a", "sleep/create", "https://me/hook", 30),
            sub("b", "sleep/update", "https://me/hook", 3),
            // Someone else's callback does not count as ours.
            sub("c", "workout/create", "https://old/hook", 30),
            // Expired: recreated, not renewed.
            sub("d", "workout/create", "https://me/hook", -1),
        ];
        let renew_by = now + chrono::Duration::days(7);
        let (create, renew) =
            plan_subscriptions(&wanted, &existing, "https://me/hook", now, renew_by);
        let keys: Vec<&str> = create.iter().filter_map(|r| r.key.as_deref()).collect();
        assert_eq!(keys, vec!["workout/create"]);
        assert_eq!(renew, vec!["b".to_string()]);
    }

    #[test]
    fn ids_become_single_path_segments() {
        assert_eq!(path_segment("wo-2026-03-01").unwrap(), "wo-2026-03-01");
        assert_eq!(
            path_segment("../user/x?y#z").unwrap(),
            "..%2Fuser%2Fx%3Fy%23z"
        );
        assert_eq!(path_segment("é").unwrap(), "%C3%A9");
        assert_eq!(path_segment(".."), None);
        assert_eq!(path_segment("."), None);
        assert_eq!(path_segment(""), None);
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
