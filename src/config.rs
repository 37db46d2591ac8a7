//! Configuration: every setting is an environment variable with a documented default, also
//! accepted as a command-line flag. `wearhouse --help` lists them.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct DbConfig {
    /// Postgres to use. Unset: the private cluster under WEARHOUSE_HOME is started (or reused).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory for the private cluster and generated files.
    #[arg(
        long,
        env = "WEARHOUSE_HOME",
        default_value = ".wearhouse",
        global = true
    )]
    pub home: PathBuf,
    /// TCP port of the private cluster (listens on 127.0.0.1 only).
    #[arg(
        long,
        env = "WEARHOUSE_PG_PORT",
        default_value_t = 55432,
        global = true
    )]
    pub pg_port: u16,
    /// Use TimescaleDB when the server has it (`auto`), or never (`off`: plain range partitions).
    #[arg(
        long,
        env = "WEARHOUSE_TIMESCALEDB",
        default_value = "auto",
        global = true
    )]
    pub timescaledb: String,
    /// Database connections per process.
    #[arg(
        long,
        env = "WEARHOUSE_DB_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub pool_size: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the HTTP API binds to.
    #[arg(long, env = "WEARHOUSE_BIND", default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// The URL clients use to reach this server (links, OAuth redirects). Default: http://<bind>.
    #[arg(long, env = "WEARHOUSE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// HS256 key for developer JWTs. Unset: a random key is generated once and kept in
    /// WEARHOUSE_HOME/jwt.key (mode 0600).
    #[arg(long, env = "WEARHOUSE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// E-mail of the first developer account, created at start when missing. Set both this and
    /// WEARHOUSE_ADMIN_PASSWORD, or neither; an empty or malformed value refuses to start.
    #[arg(long, env = "WEARHOUSE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of that account: at least 12 characters mixing two kinds (lower/upper case,
    /// digits, symbols), else the server refuses to start. When neither is set and no developer
    /// exists, one is generated and written once to WEARHOUSE_HOME/admin-credentials (mode
    /// 0600), never to the log.
    #[arg(long, env = "WEARHOUSE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Lifetime of developer access tokens, in minutes.
    #[arg(long, env = "WEARHOUSE_ACCESS_TOKEN_MINUTES", default_value_t = 60)]
    pub access_token_minutes: i64,
    /// Lifetime of developer and SDK refresh tokens, in days.
    #[arg(long, env = "WEARHOUSE_REFRESH_TOKEN_DAYS", default_value_t = 30)]
    pub refresh_token_days: i64,
    /// How long an SDK invitation code can be redeemed, in seconds (7 days, as upstream).
    #[arg(long, env = "WEARHOUSE_INVITATION_CODE_TTL_SECS", default_value_t = 7 * 24 * 3600,
          value_parser = clap::value_parser!(i64).range(1..=365 * 24 * 3600))]
    pub invitation_code_ttl_secs: i64,
    /// Largest accepted JSON request body, in bytes.
    #[arg(long, env = "WEARHOUSE_MAX_JSON_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_json_bytes: usize,
    /// Largest accepted body of an inbound provider webhook, in bytes (enforced while reading,
    /// before the signature is checked; providers send kilobytes).
    #[arg(long, env = "WEARHOUSE_MAX_WEBHOOK_BYTES", default_value_t = 1 << 20)]
    pub max_webhook_bytes: usize,
    /// Argon2 password checks run at the same time by sign-ins (each takes 19 MiB); up to 32
    /// more wait, further sign-ins are answered 429 at once.
    #[arg(long, env = "WEARHOUSE_LOGIN_HASH_CONCURRENCY", default_value_t = 2)]
    pub login_hash_concurrency: usize,
    /// Bearer token a scraper must send to `GET /metrics`. Unset: `/metrics` is not served on
    /// the API address (only on WEARHOUSE_METRICS_BIND, if set).
    #[arg(long, env = "WEARHOUSE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// A separate address serving only `GET /metrics` (e.g. 127.0.0.1:9464), for a scraper on
    /// a private network. Unset: no separate listener.
    #[arg(long, env = "WEARHOUSE_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Sync-status streams (SSE) one credential may hold open at once; more are answered 429.
    #[arg(
        long,
        env = "WEARHOUSE_MAX_STREAMS_PER_CREDENTIAL",
        default_value_t = 4
    )]
    pub max_streams_per_credential: usize,
    /// Largest accepted upload (Apple Health exports), in bytes.
    #[arg(long, env = "WEARHOUSE_MAX_UPLOAD_BYTES", default_value_t = 8 << 30)]
    pub max_upload_bytes: u64,
    /// Imports processed at the same time by one `serve` process.
    #[arg(long, env = "WEARHOUSE_IMPORT_CONCURRENCY", default_value_t = 1)]
    pub import_concurrency: usize,
    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://app.example.com,http://localhost:3000`; `*` allows every origin. Empty: no CORS
    /// headers are sent, so browsers on other origins are refused.
    #[arg(
        long,
        env = "WEARHOUSE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,
    /// Run the projection workers inside this process (tailing Postgres).
    #[arg(long, env = "WEARHOUSE_PROJECTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub projections: bool,
    /// Serve `GET /metrics` (Prometheus text; see WEARHOUSE_METRICS_TOKEN and
    /// WEARHOUSE_METRICS_BIND for who may read it); false answers 404 everywhere.
    #[arg(long, env = "WEARHOUSE_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// Let `GET /api/v1/oauth/{provider}/authorize` be called without a credential, as the
    /// Open Wearables contract does. Risk: anyone who knows a user id can then link their own
    /// provider account to that user and feed it data. Keep false unless a browser-side connect
    /// page without an API key needs it.
    #[arg(
        long,
        env = "WEARHOUSE_OAUTH_PUBLIC_AUTHORIZE",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub oauth_public_authorize: bool,
    /// Seconds `serve` waits on SIGTERM for requests and running jobs to finish; jobs still
    /// running then are handed back, to be resumed by the next `serve`.
    #[arg(long, env = "WEARHOUSE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Seconds between two sealings of the log (tamper evidence, see `wearhouse audit`);
    /// 0 leaves sealing to `wearhouse audit seal`.
    #[arg(long, env = "WEARHOUSE_AUDIT_SEAL_SECS", default_value_t = 5)]
    pub audit_seal_secs: u64,
    /// Seconds between two checks that the day's archival run is queued (only while an
    /// archival policy is set, `PUT /api/v1/settings/archival`); 0 runs it only on request.
    #[arg(long, env = "WEARHOUSE_ARCHIVAL_CHECK_SECS", default_value_t = 3600)]
    pub archival_check_secs: u64,
    #[command(flatten)]
    pub providers: ProvidersConfig,
    #[command(flatten)]
    pub import_limits: ImportLimitsConfig,
    #[command(flatten)]
    pub jobs: JobsConfig,
    #[command(flatten)]
    pub webhooks: WebhooksConfig,
}

/// Outgoing webhooks (delivery to integrators' endpoints).
#[derive(Debug, Clone, Args)]
pub struct WebhooksConfig {
    /// Deliver webhooks to destinations that resolve to private, loopback or link-local
    /// addresses. Off by default: the server must not be a way into its own network.
    #[arg(
        long,
        env = "WEARHOUSE_WEBHOOKS_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub webhooks_allow_private: bool,
    /// Webhook deliveries in flight at once in one `serve` process (one per (endpoint, user)
    /// lane, so also the number of lanes sending at once).
    #[arg(long, env = "WEARHOUSE_WEBHOOKS_CONCURRENCY", default_value_t = 256)]
    pub webhooks_concurrency: usize,
    /// Seconds a receiver has to answer a webhook before the attempt counts as failed.
    #[arg(long, env = "WEARHOUSE_WEBHOOKS_TIMEOUT_SECS", default_value_t = 15)]
    pub webhooks_timeout_secs: u64,
}

impl WebhooksConfig {
    pub fn settings(&self) -> crate::webhooks::delivery::Settings {
        crate::webhooks::delivery::Settings {
            allow_private: self.webhooks_allow_private,
            concurrency: self.webhooks_concurrency.max(1),
            timeout: std::time::Duration::from_secs(self.webhooks_timeout_secs.max(1)),
        }
    }
}

/// The durable job runner (src/jobs) inside `serve`.
#[derive(Debug, Clone, Args)]
pub struct JobsConfig {
    /// Jobs (imports, syncs, ...) run at the same time by one `serve` process.
    #[arg(long, env = "WEARHOUSE_JOB_CONCURRENCY", default_value_t = 4)]
    pub job_concurrency: usize,
    /// Longest wait, in milliseconds, between looks for due jobs (enqueues also wake the
    /// runner at once through NOTIFY).
    #[arg(long, env = "WEARHOUSE_JOB_POLL_MS", default_value_t = 5000)]
    pub job_poll_ms: u64,
    /// Backoff of a failed job's first retry, in milliseconds; it doubles per attempt (with
    /// full jitter) up to WEARHOUSE_JOB_RETRY_MAX_SECS.
    #[arg(long, env = "WEARHOUSE_JOB_RETRY_BASE_MS", default_value_t = 2000)]
    pub job_retry_base_ms: u64,
    /// Longest backoff between two attempts of a job, in seconds.
    #[arg(long, env = "WEARHOUSE_JOB_RETRY_MAX_SECS", default_value_t = 900)]
    pub job_retry_max_secs: u64,
    /// Hours a finished job stays listed (`wearhouse jobs list`) before it is deleted; failed
    /// jobs stay until deleted by hand.
    #[arg(long, env = "WEARHOUSE_JOB_RETENTION_HOURS", default_value_t = 24)]
    pub job_retention_hours: u64,
}

impl JobsConfig {
    pub fn runner(&self, grace: std::time::Duration) -> crate::jobs::RunnerConfig {
        use std::time::Duration;
        crate::jobs::RunnerConfig {
            concurrency: self.job_concurrency.max(1),
            poll: Duration::from_millis(self.job_poll_ms.max(10)),
            retry_base: Duration::from_millis(self.job_retry_base_ms),
            retry_max: Duration::from_secs(self.job_retry_max_secs),
            grace,
            retention: Duration::from_secs(self.job_retention_hours * 3600),
        }
    }
}

/// Caps on one Apple Health import: past one the import fails with a clear error (zip bombs,
/// giant tags, floods of made-up names), and the server's memory stays bounded.
#[derive(Debug, Clone, Args)]
pub struct ImportLimitsConfig {
    /// Most bytes a zipped export's export.xml may inflate to.
    #[arg(long, env = "WEARHOUSE_IMPORT_MAX_INFLATED_BYTES", default_value_t = 32 << 30)]
    pub import_max_inflated_bytes: u64,
    /// Most bytes a zipped export may inflate to per byte uploaded (real exports: 10-25).
    #[arg(
        long,
        env = "WEARHOUSE_IMPORT_MAX_INFLATE_RATIO",
        default_value_t = 100
    )]
    pub import_max_inflate_ratio: u64,
    /// Largest single XML tag (with its attributes) or text node, in bytes.
    #[arg(long, env = "WEARHOUSE_IMPORT_MAX_XML_EVENT_BYTES", default_value_t = 1 << 20)]
    pub import_max_xml_event_bytes: u64,
    /// Most distinct sources (app and device) in one export.
    #[arg(long, env = "WEARHOUSE_IMPORT_MAX_SOURCES", default_value_t = 10_000)]
    pub import_max_sources: usize,
    /// Most distinct unknown record and workout types in one export.
    #[arg(
        long,
        env = "WEARHOUSE_IMPORT_MAX_UNKNOWN_TYPES",
        default_value_t = 10_000
    )]
    pub import_max_unknown_types: usize,
    /// Most blood-pressure readings in one export (held to pair them with their correlations).
    #[arg(
        long,
        env = "WEARHOUSE_IMPORT_MAX_BLOOD_PRESSURE_READINGS",
        default_value_t = 1_000_000
    )]
    pub import_max_blood_pressure_readings: usize,
}

impl ImportLimitsConfig {
    pub fn limits(&self) -> crate::ingest::apple::Limits {
        crate::ingest::apple::Limits {
            max_inflated_bytes: self.import_max_inflated_bytes,
            max_inflate_ratio: self.import_max_inflate_ratio,
            max_xml_event_bytes: self.import_max_xml_event_bytes,
            max_sources: self.import_max_sources,
            max_unknown_types: self.import_max_unknown_types,
            max_blood_pressure_readings: self.import_max_blood_pressure_readings,
        }
    }
}

impl ServeConfig {
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The metrics token, if set and not empty (an empty one protects nothing).
    pub fn metrics_token(&self) -> Option<&str> {
        self.metrics_token.as_deref().filter(|t| !t.is_empty())
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_string()
    }
}

#[derive(Debug, Clone, Args)]
pub struct LogConfig {
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, env = "WEARHOUSE_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log format: `text` or `json`.
    #[arg(
        long,
        env = "WEARHOUSE_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: String,
}

pub fn init_logging(cfg: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: logs sent to a file or a pipe carry no escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cfg.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Cloud providers: where each one lives and this installation's OAuth client there. URLs are
/// configurable so tests and demos can point them at `wearhouse simulate providers`.
#[derive(Debug, Clone, Args, Default)]
pub struct ProvidersConfig {
    /// 64 hex characters: the key sealing provider tokens at rest. Unset: generated once into
    /// WEARHOUSE_HOME/encryption.key (mode 0600).
    #[arg(long, env = "WEARHOUSE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// Seconds before a provider HTTP request is abandoned.
    #[arg(long, env = "WEARHOUSE_PROVIDER_TIMEOUT_SECS", default_value_t = 30)]
    pub provider_timeout_secs: u64,
    /// Longest Retry-After (seconds) a sync waits in place before giving up the run.
    #[arg(
        long,
        env = "WEARHOUSE_PROVIDER_MAX_RETRY_AFTER_SECS",
        default_value_t = 60
    )]
    pub max_retry_after_secs: u64,
    /// Seconds between scheduled pulls of each active pull-mode connection (0: no scheduler).
    #[arg(long, env = "WEARHOUSE_SYNC_INTERVAL_SECS", default_value_t = 3600)]
    pub sync_interval_secs: u64,
    /// Seconds of silence after which the sync-status stream sends a `:` heartbeat comment.
    #[arg(long, env = "WEARHOUSE_SSE_HEARTBEAT_SECS", default_value_t = 15)]
    pub sse_heartbeat_secs: u64,
    /// Days pulled right after a pull provider is connected (the contract's default is 90).
    #[arg(
        long,
        env = "WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT",
        default_value_t = 90
    )]
    pub historical_days_on_connect: i64,
    /// Largest gap, in seconds, between a signed webhook's timestamp (Whoop, Oura) and this
    /// server's clock, either way; an older or future-dated delivery is refused with 401.
    #[arg(long, env = "WEARHOUSE_WEBHOOK_TOLERANCE_SECS", default_value_t = 300)]
    pub webhook_tolerance_secs: u64,
    /// Seconds between checks of the providers' webhook subscriptions (Oura) while their live
    /// sync mode is `webhook`: missing ones are created, expiring ones renewed (0: never).
    #[arg(
        long,
        env = "WEARHOUSE_WEBHOOK_SUBSCRIPTION_CHECK_SECS",
        default_value_t = 3600
    )]
    pub subscription_check_secs: u64,
    /// A webhook subscription is renewed once it expires within this many days.
    #[arg(
        long,
        env = "WEARHOUSE_WEBHOOK_SUBSCRIPTION_RENEW_DAYS",
        default_value_t = 7
    )]
    pub subscription_renew_days: i64,
    /// App-wide request budgets per minute overriding the providers' own (shared by every
    /// `serve` process on the database), e.g. `oura=600,whoop=50`; `name=N/SECS` (or
    /// `name=N/SECS/user`, per user) replaces a provider's fixed-window budgets, e.g.
    /// `strava=100/900,strava=1000/86400`.
    #[arg(long, env = "WEARHOUSE_PROVIDER_RATE_BUDGETS")]
    pub provider_rate_budgets: Option<String>,

    /// This installation's OAuth client id at Oura; empty: Oura cannot be connected.
    #[arg(long, env = "WEARHOUSE_OURA_CLIENT_ID", default_value = "")]
    pub oura_client_id: String,
    /// This installation's OAuth client secret at Oura. Also verifies Oura webhook signatures.
    #[arg(
        long,
        env = "WEARHOUSE_OURA_CLIENT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub oura_client_secret: String,
    /// Oura's OAuth consent page (point it at `wearhouse simulate providers` for demos).
    #[arg(
        long,
        env = "WEARHOUSE_OURA_AUTHORIZE_URL",
        default_value = "https://cloud.ouraring.com/oauth/authorize"
    )]
    pub oura_authorize_url: String,
    /// Oura's OAuth token endpoint.
    #[arg(
        long,
        env = "WEARHOUSE_OURA_TOKEN_URL",
        default_value = "https://api.ouraring.com/oauth/token"
    )]
    pub oura_token_url: String,
    /// Base URL of Oura's data API.
    #[arg(
        long,
        env = "WEARHOUSE_OURA_API_URL",
        default_value = "https://api.ouraring.com"
    )]
    pub oura_api_url: String,

    /// This installation's OAuth client id at Whoop; empty: Whoop cannot be connected.
    #[arg(long, env = "WEARHOUSE_WHOOP_CLIENT_ID", default_value = "")]
    pub whoop_client_id: String,
    /// This installation's OAuth client secret at Whoop. Also verifies Whoop webhook signatures.
    #[arg(
        long,
        env = "WEARHOUSE_WHOOP_CLIENT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub whoop_client_secret: String,
    /// Whoop's OAuth consent page (point it at `wearhouse simulate providers` for demos).
    #[arg(
        long,
        env = "WEARHOUSE_WHOOP_AUTHORIZE_URL",
        default_value = "https://api.prod.whoop.com/oauth/oauth2/auth"
    )]
    pub whoop_authorize_url: String,
    /// Whoop's OAuth token endpoint.
    #[arg(
        long,
        env = "WEARHOUSE_WHOOP_TOKEN_URL",
        default_value = "https://api.prod.whoop.com/oauth/oauth2/token"
    )]
    pub whoop_token_url: String,
    /// Base URL of Whoop's data API.
    #[arg(
        long,
        env = "WEARHOUSE_WHOOP_API_URL",
        default_value = "https://api.prod.whoop.com/developer"
    )]
    pub whoop_api_url: String,

    /// Secret in the push URL registered at Garmin
    /// (`<public URL>/api/v1/providers/garmin/webhooks?token=<this>`): pushes without it are
    /// refused (Garmin signs nothing, and its client id is public). Unset: generated once into
    /// WEARHOUSE_HOME/garmin-push.token (mode 0600).
    #[arg(long, env = "WEARHOUSE_GARMIN_PUSH_TOKEN", hide_env_values = true)]
    pub garmin_push_token: Option<String>,
    /// This installation's OAuth client id at Garmin (Garmin pushes must carry it); empty: Garmin cannot be connected.
    #[arg(long, env = "WEARHOUSE_GARMIN_CLIENT_ID", default_value = "")]
    pub garmin_client_id: String,
    /// This installation's OAuth client secret at Garmin.
    #[arg(
        long,
        env = "WEARHOUSE_GARMIN_CLIENT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub garmin_client_secret: String,
    /// Garmin's OAuth consent page (point it at `wearhouse simulate providers` for demos).
    #[arg(
        long,
        env = "WEARHOUSE_GARMIN_AUTHORIZE_URL",
        default_value = "https://connect.garmin.com/oauth2Confirm"
    )]
    pub garmin_authorize_url: String,
    /// Garmin's OAuth token endpoint.
    #[arg(
        long,
        env = "WEARHOUSE_GARMIN_TOKEN_URL",
        default_value = "https://diauth.garmin.com/di-oauth2-service/oauth/token"
    )]
    pub garmin_token_url: String,
    /// Base URL of Garmin's data API.
    #[arg(
        long,
        env = "WEARHOUSE_GARMIN_API_URL",
        default_value = "https://apis.garmin.com"
    )]
    pub garmin_api_url: String,

    /// This installation's OAuth client id at Strava; empty: Strava cannot be connected.
    #[arg(long, env = "WEARHOUSE_STRAVA_CLIENT_ID", default_value = "")]
    pub strava_client_id: String,
    /// This installation's OAuth client secret at Strava. Also derives the token Strava echoes when it verifies the webhook callback.
    #[arg(
        long,
        env = "WEARHOUSE_STRAVA_CLIENT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub strava_client_secret: String,
    /// Strava's OAuth consent page (point it at `wearhouse simulate providers` for demos).
    #[arg(
        long,
        env = "WEARHOUSE_STRAVA_AUTHORIZE_URL",
        default_value = "https://www.strava.com/oauth/authorize"
    )]
    pub strava_authorize_url: String,
    /// Strava's OAuth token endpoint (its revocation endpoint sits beside it).
    #[arg(
        long,
        env = "WEARHOUSE_STRAVA_TOKEN_URL",
        default_value = "https://www.strava.com/oauth/token"
    )]
    pub strava_token_url: String,
    /// Base URL of Strava's data API.
    #[arg(
        long,
        env = "WEARHOUSE_STRAVA_API_URL",
        default_value = "https://www.strava.com/api/v3"
    )]
    pub strava_api_url: String,

    /// This installation's OAuth client id at Ultrahuman; empty: Ultrahuman cannot be connected.
    #[arg(long, env = "WEARHOUSE_ULTRAHUMAN_CLIENT_ID", default_value = "")]
    pub ultrahuman_client_id: String,
    /// This installation's OAuth client secret at Ultrahuman.
    #[arg(
        long,
        env = "WEARHOUSE_ULTRAHUMAN_CLIENT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub ultrahuman_client_secret: String,
    /// Ultrahuman's OAuth consent page (point it at `wearhouse simulate providers` for demos).
    #[arg(
        long,
        env = "WEARHOUSE_ULTRAHUMAN_AUTHORIZE_URL",
        default_value = "https://auth.ultrahuman.com/authorise"
    )]
    pub ultrahuman_authorize_url: String,
    /// Ultrahuman's OAuth token endpoint (its revocation endpoint sits beside it).
    #[arg(
        long,
        env = "WEARHOUSE_ULTRAHUMAN_TOKEN_URL",
        default_value = "https://partner.ultrahuman.com/api/partners/oauth/token"
    )]
    pub ultrahuman_token_url: String,
    /// Base URL of Ultrahuman's data API.
    #[arg(
        long,
        env = "WEARHOUSE_ULTRAHUMAN_API_URL",
        default_value = "https://partner.ultrahuman.com/api/partners/v1"
    )]
    pub ultrahuman_api_url: String,

    /// This installation's OAuth client id at Fitbit; empty: Fitbit cannot be connected.
    #[arg(long, env = "WEARHOUSE_FITBIT_CLIENT_ID", default_value = "")]
    pub fitbit_client_id: String,
    /// This installation's OAuth client secret at Fitbit.
    #[arg(
        long,
        env = "WEARHOUSE_FITBIT_CLIENT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub fitbit_client_secret: String,
    /// Fitbit's OAuth consent page (point it at `wearhouse simulate providers` for demos).
    #[arg(
        long,
        env = "WEARHOUSE_FITBIT_AUTHORIZE_URL",
        default_value = "https://www.fitbit.com/oauth2/authorize"
    )]
    pub fitbit_authorize_url: String,
    /// Fitbit's OAuth token endpoint (its revocation endpoint sits beside it).
    #[arg(
        long,
        env = "WEARHOUSE_FITBIT_TOKEN_URL",
        default_value = "https://api.fitbit.com/oauth2/token"
    )]
    pub fitbit_token_url: String,
    /// Base URL of Fitbit's data API.
    #[arg(
        long,
        env = "WEARHOUSE_FITBIT_API_URL",
        default_value = "https://api.fitbit.com"
    )]
    pub fitbit_api_url: String,
}

/// Where a provider lives and how this installation is registered there.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub authorize_url: String,
    pub token_url: String,
    pub api_url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl ProvidersConfig {
    /// The configured budget (requests per minute) of `provider`, if overridden.
    pub fn rate_budget(&self, provider: &str) -> Option<u32> {
        self.provider_rate_budgets
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == provider)
            .and_then(|(_, v)| v.trim().parse().ok())
    }

    /// Fixed-window budgets configured for `provider` (`name=N/SECS`, or `name=N/SECS/user`
    /// per user), replacing the provider's own.
    pub fn rate_windows(&self, provider: &str) -> Vec<crate::providers::RateWindow> {
        self.provider_rate_budgets
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| k.trim() == provider)
            .filter_map(|(_, v)| {
                let mut parts = v.trim().split('/');
                let requests = parts.next()?.trim().parse().ok()?;
                let window_secs = parts.next()?.trim().parse().ok()?;
                let per_user = match parts.next() {
                    None => false,
                    Some("user") => true,
                    Some(_) => return None,
                };
                Some(crate::providers::RateWindow {
                    requests,
                    window_secs,
                    per_user,
                })
            })
            .collect()
    }

    pub fn garmin(&self) -> Endpoints {
        Endpoints {
            authorize_url: self.garmin_authorize_url.clone(),
            token_url: self.garmin_token_url.clone(),
            api_url: self.garmin_api_url.trim_end_matches('/').into(),
            client_id: self.garmin_client_id.clone(),
            client_secret: self.garmin_client_secret.clone(),
        }
    }

    pub fn oura(&self) -> Endpoints {
        Endpoints {
            authorize_url: self.oura_authorize_url.clone(),
            token_url: self.oura_token_url.clone(),
            api_url: self.oura_api_url.trim_end_matches('/').into(),
            client_id: self.oura_client_id.clone(),
            client_secret: self.oura_client_secret.clone(),
        }
    }

    pub fn whoop(&self) -> Endpoints {
        Endpoints {
            authorize_url: self.whoop_authorize_url.clone(),
            token_url: self.whoop_token_url.clone(),
            api_url: self.whoop_api_url.trim_end_matches('/').into(),
            client_id: self.whoop_client_id.clone(),
            client_secret: self.whoop_client_secret.clone(),
        }
    }

    pub fn strava(&self) -> Endpoints {
        Endpoints {
            authorize_url: self.strava_authorize_url.clone(),
            token_url: self.strava_token_url.clone(),
            api_url: self.strava_api_url.trim_end_matches('/').into(),
            client_id: self.strava_client_id.clone(),
            client_secret: self.strava_client_secret.clone(),
        }
    }

    pub fn ultrahuman(&self) -> Endpoints {
        Endpoints {
            authorize_url: self.ultrahuman_authorize_url.clone(),
            token_url: self.ultrahuman_token_url.clone(),
            api_url: self.ultrahuman_api_url.trim_end_matches('/').into(),
            client_id: self.ultrahuman_client_id.clone(),
            client_secret: self.ultrahuman_client_secret.clone(),
        }
    }

    pub fn fitbit(&self) -> Endpoints {
        Endpoints {
            authorize_url: self.fitbit_authorize_url.clone(),
            token_url: self.fitbit_token_url.clone(),
            api_url: self.fitbit_api_url.trim_end_matches('/').into(),
            client_id: self.fitbit_client_id.clone(),
            client_secret: self.fitbit_client_secret.clone(),
        }
    }
}
