//! Running syncs: one sync run per pull (or webhook-triggered pull) of one connection. It takes
//! a Postgres advisory lock on the connection (so two processes never sync it at once),
//! refreshes tokens before expiry, pages through each data type, stores every response body raw
//! before mapping it, and appends the mapped records through the shared data writer.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use tracing::{info, warn};
use uuid::Uuid;
use wearhouse_domain::connection::{connection_id, Connection, ConnectionCommand, SealedTokens};
use wearhouse_domain::records::DataEvent;
use wearhouse_domain::sync_run::{Metadata, Outcome as RunOutcome, Stage, SyncRun, SyncRunCommand};

use super::oauth::{self, OAuthError, TokenSet};
use super::{BackfillProvider, Endpoints, Provider, PullProvider, PullRequest, Registry};
use crate::config::ProvidersConfig;
use crate::crypto::Sealer;
use crate::ingest::raw::{self, RawMeta};
use crate::store::{Actor, Commands};
use wearhouse_log::writer::{self, Out};
use wearhouse_projections::pglock::{LockKey, SessionLock};

/// Attempts per request for 429 and 5xx/timeouts before the run fails.
const ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("unknown provider {0}")]
    UnknownProvider(String),
    #[error("no active {0} connection for this user")]
    NoConnection(String),
    #[error("a sync of this connection is already running")]
    Busy,
    #[error("rate limited by the provider; retry after {0} s")]
    RateLimited(u64),
    #[error("the provider refused the refresh token; the connection was revoked")]
    RefreshFailed,
    #[error("the provider answered HTTP {0}")]
    Status(u16),
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider sent malformed JSON for {0}")]
    Malformed(String),
    #[error("{0}")]
    OAuth(#[from] OAuthError),
    #[error("mapping: {0}")]
    Map(#[from] super::MapError),
    #[error("storage: {0}")]
    Store(#[source] StoreError),
    #[error("cancelled")]
    Cancelled,
    #[error("backfill failed for {0}")]
    Backfill(String),
    #[error("a pushed file URL is not under the provider's API URL")]
    ForeignUrl,
    /// A pushed file could not be fetched (the cause, as text: one download serves every
    /// user linked to the account).
    #[error("file download: {0}")]
    Download(String),
    /// The provider could not be reached (connection refused, reset, or no answer in time).
    #[error("the provider could not be reached")]
    Unreachable,
}

/// A storage failure (database, raw store, log writer) with its cause kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        let source: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        // Postgres says what failed in its source; its own text is only "db error".
        let message = match source.downcast_ref::<tokio_postgres::Error>() {
            Some(pg) => wearhouse_log::pg_message(pg),
            None => source.to_string(),
        };
        StoreError { message, source }
    }
}

pub(crate) fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> SyncError {
    SyncError::Store(StoreError::new(e))
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub records: u64,
    pub per_type: Vec<(String, u64)>,
    /// success, partial (`error` says what could not be done) or skipped (nothing to do).
    pub outcome: RunOutcome,
    pub error: Option<String>,
    /// Recorded with the run's end (the contract's `metadata`).
    pub metadata: Metadata,
}

impl Outcome {
    fn new(records: u64, per_type: Vec<(String, u64)>) -> Outcome {
        let mut metadata = Metadata::new();
        metadata.insert("records_saved".into(), records.into());
        let types: Metadata = per_type
            .iter()
            .map(|(t, n)| (t.clone(), (*n).into()))
            .collect();
        metadata.insert("data_types".into(), types.into());
        Outcome {
            records,
            per_type,
            outcome: RunOutcome::Success,
            error: None,
            metadata,
        }
    }
}

/// One sync request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SyncRequest {
    pub run_id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    /// `pull`, `webhook`, `backfill`, `scheduled`.
    pub source: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Only these data types; empty means all.
    pub data_types: Vec<String>,
}

pub struct Engine {
    /// Spacing of requests per provider when the shared budget in Postgres is unreachable.
    pacer: std::sync::Mutex<super::pacer::Pacer>,
    /// Users whose running backfill should stop before its next request.
    pub cancelled: std::sync::Mutex<std::collections::HashSet<(Uuid, String)>>,
    pub pool: Pool,
    pub commands: Commands,
    pub registry: Registry,
    pub sealer: Sealer,
    pub http: reqwest::Client,
    pub config: ProvidersConfig,
}

struct Live {
    access: String,
    refresh: Option<String>,
    refreshed: bool,
    authorized_at: Option<DateTime<Utc>>,
}

fn system(what: &str) -> Actor {
    Actor {
        kind: "system",
        id: what.into(),
        request_id: None,
    }
}

impl Engine {
    pub fn new(
        pool: Pool,
        commands: Commands,
        config: ProvidersConfig,
        sealer: Sealer,
    ) -> Arc<Engine> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.provider_timeout_secs))
            .build()
            .expect("HTTP client");
        Arc::new(Engine {
            pacer: Default::default(),
            cancelled: Default::default(),
            registry: Registry::new(&config),
            pool,
            commands,
            sealer,
            http,
            config,
        })
    }

    /// Seals `t` for `user`'s connection to `provider`: each token is bound to that
    /// connection and field, so it opens nowhere else.
    pub fn seal_tokens(&self, user: Uuid, provider: &str, t: &TokenSet) -> SealedTokens {
        let stream = connection_id(user, provider);
        let ctx = |field| crate::crypto::connection_context(&stream, field);
        SealedTokens {
            access_token: self
                .sealer
                .seal(t.access_token.secret(), &ctx("access_token")),
            refresh_token: t
                .refresh_token
                .as_ref()
                .map(|r| self.sealer.seal(r.secret(), &ctx("refresh_token"))),
            expires_at: t.expires_at,
        }
    }

    async fn run_cmd(&self, id: Uuid, user: Uuid, cmd: SyncRunCommand) -> Result<(), SyncError> {
        self.commands
            .execute::<SyncRun>(&id.to_string(), cmd, &system("sync"), Some(user), None)
            .await
            .map_err(store_err)
    }

    /// Records run `id` as failed with `error`.
    pub async fn fail_run(&self, id: Uuid, user: Uuid, error: &str) -> Result<(), SyncError> {
        let fail = SyncRunCommand::Fail {
            error: error.into(),
            at: Utc::now(),
        };
        self.run_cmd(id, user, fail).await
    }

    pub async fn queue(&self, req: &SyncRequest) -> Result<(), SyncError> {
        self.run_cmd(
            req.run_id,
            req.user_id,
            SyncRunCommand::Queue {
                id: req.run_id,
                user_id: req.user_id,
                provider: req.provider.clone(),
                source: req.source.clone(),
                data_types: req.data_types.clone(),
                at: Utc::now(),
            },
        )
        .await
    }

    /// The advisory lock a sync of `user`'s connection to `provider` holds. One lock per
    /// provider account, not per connection: users linked to one account are served by one
    /// pull (fanned out to each), so two of them never pull it at once.
    async fn lock_key(&self, user: Uuid, provider: &str) -> String {
        match self.account_of(user, provider).await.ok().flatten() {
            Some(account) => format!("{provider}:account:{account}"),
            None => connection_id(user, provider),
        }
    }

    /// Whether a sync of `user`'s connection to `provider` (or of another connection to the same
    /// provider account) is running now, in any process. Read from `pg_locks` (of this
    /// database: the view spans the cluster), so asking never takes the lock from a sync about
    /// to start.
    pub async fn busy(&self, user: Uuid, provider: &str) -> Result<bool, SyncError> {
        let key = LockKey::Name(self.lock_key(user, provider).await);
        let client = self.pool.get().await.map_err(store_err)?;
        key.is_held(&client).await.map_err(store_err)
    }

    /// Runs `req` to its end; the run's failure is recorded on the `SyncRun` and returned.
    pub async fn sync(&self, req: SyncRequest) -> Result<Outcome, SyncError> {
        self.sync_run(req, false).await
    }

    /// Runs again a run that was started but never ended (its process stopped mid-run): the
    /// pull starts over under the same run id; the read models' dedup keys absorb what the
    /// interrupted attempt already wrote.
    pub async fn resume(&self, req: SyncRequest) -> Result<Outcome, SyncError> {
        self.sync_run(req, true).await
    }

    async fn sync_run(&self, req: SyncRequest, resuming: bool) -> Result<Outcome, SyncError> {
        let (provider, endpoints) = self
            .registry
            .get(&req.provider)
            .ok_or_else(|| SyncError::UnknownProvider(req.provider.clone()))?;
        let stream = self.lock_key(req.user_id, &req.provider).await;
        // The guard holds the lock on its own connection until released below, or closes that
        // connection (freeing the lock) if this future stops first.
        let client = self.pool.get().await.map_err(store_err)?;
        let Some(lock) = SessionLock::try_acquire(client, LockKey::Name(stream))
            .await
            .map_err(store_err)?
        else {
            // A run queued by the API would otherwise wait forever; an unqueued one is unknown
            // to the aggregate and the command is refused, which is fine.
            let _ = self
                .run_cmd(
                    req.run_id,
                    req.user_id,
                    SyncRunCommand::Fail {
                        error: SyncError::Busy.to_string(),
                        at: Utc::now(),
                    },
                )
                .await;
            return Err(SyncError::Busy);
        };
        let result = self
            .sync_locked(&req, provider.as_ref(), &endpoints, resuming)
            .await;
        let _ = lock.release().await;
        match &result {
            Ok(o) => {
                let mut metadata = o.metadata.clone();
                metadata.insert("window_start".into(), req.start.to_rfc3339().into());
                metadata.insert("window_end".into(), req.end.to_rfc3339().into());
                self.run_cmd(
                    req.run_id,
                    req.user_id,
                    SyncRunCommand::Finish {
                        outcome: o.outcome,
                        processed: o.records,
                        error: o.error.clone(),
                        metadata,
                        at: Utc::now(),
                    },
                )
                .await?;
                info!(run = %req.run_id, provider = %req.provider, records = o.records, "sync completed");
            }
            Err(SyncError::Cancelled) => {
                info!(run = %req.run_id, provider = %req.provider, "sync cancelled");
                let _ = self
                    .run_cmd(
                        req.run_id,
                        req.user_id,
                        SyncRunCommand::Cancel {
                            message: Some("Cancelled on request".into()),
                            at: Utc::now(),
                        },
                    )
                    .await;
            }
            Err(e) => {
                warn!(run = %req.run_id, provider = %req.provider, error = %e, "sync failed");
                let _ = self
                    .run_cmd(
                        req.run_id,
                        req.user_id,
                        SyncRunCommand::Fail {
                            error: e.to_string(),
                            at: Utc::now(),
                        },
                    )
                    .await;
            }
        }
        result
    }

    async fn sync_locked(
        &self,
        req: &SyncRequest,
        provider: &dyn Provider,
        endpoints: &Endpoints,
        resuming: bool,
    ) -> Result<Outcome, SyncError> {
        if !resuming {
            let start = SyncRunCommand::Start {
                id: req.run_id,
                user_id: req.user_id,
                provider: req.provider.clone(),
                source: req.source.clone(),
                primary_user_id: None,
                at: Utc::now(),
            };
            self.run_cmd(req.run_id, req.user_id, start).await?;
        }
        let mut live = self.live_tokens(req, endpoints).await?;
        if req.source == "backfill" {
            if let Some(backfill) = provider.as_backfill() {
                return self
                    .backfill(req, provider, backfill, endpoints, &mut live)
                    .await;
            }
        }
        // Every user linked to this provider account receives what this one pull brings
        // (the contract's linked accounts): the requesting user first.
        let mut users = vec![req.user_id];
        users.extend(self.linked_users(req.user_id, &req.provider).await?);
        let mut outs: Vec<Vec<Out>> = users.iter().map(|_| Vec::new()).collect();
        let mut per_type = Vec::new();
        let mut records = 0u64;
        // A provider without a pull (Garmin) has nothing to fetch here: its data is pushed.
        let pull = provider.as_pull();
        let mut types: Vec<(&dyn PullProvider, &str)> = Vec::new();
        if let Some(pull) = pull {
            for t in pull.data_types() {
                if req.data_types.is_empty() || req.data_types.iter().any(|x| x == t) {
                    types.push((pull, t));
                }
            }
        }
        let names: Vec<&str> = types.iter().map(|(_, t)| *t).collect();
        self.run_cmd(
            req.run_id,
            req.user_id,
            SyncRunCommand::Advance {
                stage: Stage::Fetching,
                processed: 0,
                total: None,
                message: Some(format!("Fetching {}", names.join(", "))),
                at: Utc::now(),
            },
        )
        .await?;
        for (pull, data_type) in types {
            let mut page = Some(pull.first_page(data_type, req.start, req.end));
            let mut count = 0u64;
            while let Some(request) = page.take() {
                let bytes = self.get(req, endpoints, &request, &mut live).await?;
                let (n, body) = self
                    .store_and_map(provider, pull, data_type, &bytes, &users, &mut outs)
                    .await?;
                count += n;
                // What the page leads to (Strava: each activity's streams), stored and mapped
                // under its own kind.
                for (kind, follow) in pull.follow_ups(data_type, &body) {
                    let bytes = match self.get(req, endpoints, &follow, &mut live).await {
                        Ok(b) => b,
                        // The record has no such part (an activity without streams).
                        Err(SyncError::Status(404)) => continue,
                        Err(e) => return Err(e),
                    };
                    count += self
                        .store_and_map(provider, pull, &kind, &bytes, &users, &mut outs)
                        .await?
                        .0;
                }
                page = pull.next_page_in(&request, &body, req.start, req.end);
                if page.is_some() {
                    // A page is stored raw, the next is not fetched, nothing is written.
                    crate::crashpoint::hit("sync.page");
                }
            }
            records += count;
            per_type.push((data_type.to_string(), count));
            self.run_cmd(
                req.run_id,
                req.user_id,
                SyncRunCommand::Progress {
                    processed: records,
                    message: Some(format!("{data_type}: {count} records")),
                    at: Utc::now(),
                },
            )
            .await?;
        }
        self.run_cmd(
            req.run_id,
            req.user_id,
            SyncRunCommand::Advance {
                stage: Stage::Saving,
                processed: 0,
                total: Some(records),
                message: Some(format!("Saving {records} records")),
                at: Utc::now(),
            },
        )
        .await?;
        let mut outs = outs.into_iter();
        let own = outs.next().unwrap_or_default();
        writer::write_all(&self.pool, req.run_id, req.user_id, &system("sync"), own)
            .await
            .map_err(store_err)?;
        let synced = ConnectionCommand::MarkSynced { at: Utc::now() };
        let _ = self
            .connection_cmd(req.user_id, &req.provider, synced, "sync")
            .await;
        // The pulling user's data is in; a linked user's failed delivery is that user's
        // failed run (recorded by `deliver_linked`), not this one's.
        for (user, out) in users[1..].iter().zip(outs) {
            if let Err(e) = self.deliver_linked(req, *user, out, records).await {
                warn!(run = %req.run_id, linked_user = %user, error = %e, "linked account delivery failed");
            }
        }
        Ok(Outcome::new(records, per_type))
    }

    /// Stores one fetched response raw as `kind` (before anything parses it: a malformed body
    /// is still evidence), then maps it once per user into `outs` (record and source ids are
    /// per user). Returns the records mapped for the first user and the parsed body.
    async fn store_and_map(
        &self,
        provider: &dyn Provider,
        pull: &dyn PullProvider,
        kind: &str,
        bytes: &[u8],
        users: &[Uuid],
        outs: &mut [Vec<Out>],
    ) -> Result<(u64, Value), SyncError> {
        let received = Utc::now();
        let meta = RawMeta {
            provider: provider.name(),
            kind,
            content_type: "application/json",
            user_id: users.first().copied(),
        };
        let raw_ref = raw::store_bytes(&self.pool, bytes, meta)
            .await
            .map_err(store_err)?;
        for (user, out) in users.iter().zip(outs.iter_mut()) {
            out.push(Out::Event(DataEvent::RawPayloadReceived {
                user_id: *user,
                raw: raw_ref.clone(),
                mapping_version: provider.mapping_version(),
                received_at: Some(received),
            }));
        }
        let body: Value =
            serde_json::from_slice(bytes).map_err(|_| SyncError::Malformed(kind.into()))?;
        let mut count = 0;
        for (i, (user, out)) in users.iter().zip(outs.iter_mut()).enumerate() {
            let mapped = match pull.map_snapshot(kind, &body, *user, received) {
                Some(m) => m?,
                None => provider.map(kind, &body, *user)?,
            };
            if i == 0 {
                count = mapped.records();
            }
            out.extend(mapped.into_out(*user).map_err(store_err)?);
        }
        Ok((count, body))
    }

    /// A ping naming one record (Strava's events): the record is fetched by id with `user`'s
    /// token, with what it leads to (its streams), stored raw and mapped for `user` and each
    /// of `linked`. A record the provider does not hold (404: a forged event, or one deleted
    /// since) records nothing: the run is skipped.
    pub async fn ingest_record(
        &self,
        user: Uuid,
        linked: &[Uuid],
        provider: &dyn Provider,
        data_type: &str,
        external_id: &str,
    ) -> Result<Outcome, SyncError> {
        let (_, endpoints) = self
            .registry
            .get(provider.name())
            .ok_or_else(|| SyncError::UnknownProvider(provider.name().into()))?;
        let pull = provider
            .as_pull()
            .ok_or_else(|| SyncError::UnknownProvider(provider.name().into()))?;
        let request = pull
            .record_request(data_type, external_id)
            .ok_or_else(|| SyncError::Malformed(data_type.into()))?;
        let now = Utc::now();
        let req = SyncRequest {
            run_id: Uuid::new_v4(),
            user_id: user,
            provider: provider.name().into(),
            source: "webhook".into(),
            start: now,
            end: now,
            data_types: vec![data_type.into()],
        };
        self.run_cmd(
            req.run_id,
            user,
            SyncRunCommand::Start {
                id: req.run_id,
                user_id: user,
                provider: req.provider.clone(),
                source: req.source.clone(),
                primary_user_id: None,
                at: now,
            },
        )
        .await?;
        let mut users = vec![user];
        users.extend_from_slice(linked);
        let result = async {
            let mut live = self.live_tokens(&req, &endpoints).await?;
            let mut outs: Vec<Vec<Out>> = users.iter().map(|_| Vec::new()).collect();
            let bytes = match self.get(&req, &endpoints, &request, &mut live).await {
                Ok(b) => b,
                Err(SyncError::Status(404)) => {
                    warn!(
                        provider = provider.name(),
                        data_type,
                        external_id,
                        "the provider does not hold the record an event named; nothing recorded"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let (mut count, body) = self
                .store_and_map(provider, pull, data_type, &bytes, &users, &mut outs)
                .await?;
            for (kind, follow) in pull.follow_ups(data_type, &body) {
                let bytes = match self.get(&req, &endpoints, &follow, &mut live).await {
                    Ok(b) => b,
                    Err(SyncError::Status(404)) => continue,
                    Err(e) => return Err(e),
                };
                count += self
                    .store_and_map(provider, pull, &kind, &bytes, &users, &mut outs)
                    .await?
                    .0;
            }
            Ok(Some((count, outs)))
        }
        .await;
        let outcome = match result {
            Ok(Some((records, outs))) => {
                let mut outs = outs.into_iter();
                let own = outs.next().unwrap_or_default();
                writer::write_all(&self.pool, req.run_id, user, &system("webhook"), own)
                    .await
                    .map_err(store_err)?;
                for (other, out) in linked.iter().zip(outs) {
                    if let Err(e) = self.deliver_linked(&req, *other, out, records).await {
                        warn!(linked_user = %other, error = %e, "linked account delivery failed");
                    }
                }
                let synced = ConnectionCommand::MarkSynced { at: Utc::now() };
                let _ = self
                    .connection_cmd(user, provider.name(), synced, "webhook")
                    .await;
                Outcome::new(records, vec![(data_type.into(), records)])
            }
            Ok(None) => {
                let mut o = Outcome::new(0, vec![(data_type.into(), 0)]);
                o.outcome = RunOutcome::Skipped;
                o.error = Some(format!(
                    "{data_type} {external_id} not found at the provider"
                ));
                o
            }
            Err(e) => {
                let _ = self.fail_run(req.run_id, user, &e.to_string()).await;
                return Err(e);
            }
        };
        self.run_cmd(
            req.run_id,
            user,
            SyncRunCommand::Finish {
                outcome: outcome.outcome,
                processed: outcome.records,
                error: outcome.error.clone(),
                metadata: outcome.metadata.clone(),
                at: Utc::now(),
            },
        )
        .await?;
        Ok(outcome)
    }

    /// Fetches `requests` from `provider` with `user`'s token, as a pull does (refreshed when
    /// it expires or is refused once, paced by the provider's budgets, 429 and 5xx retried),
    /// and stores each answer raw as `kind` before anyone parses it. Nothing is mapped or
    /// written to the log: the answers are the caller's (the vendor passthrough routes).
    pub async fn fetch_live(
        &self,
        user: Uuid,
        provider: &str,
        requests: &[PullRequest],
        kind: &str,
    ) -> Result<Vec<Vec<u8>>, SyncError> {
        let (p, endpoints) = self
            .registry
            .get(provider)
            .ok_or_else(|| SyncError::UnknownProvider(provider.into()))?;
        let now = Utc::now();
        let req = SyncRequest {
            run_id: Uuid::nil(),
            user_id: user,
            provider: p.name().into(),
            source: "passthrough".into(),
            start: now,
            end: now,
            data_types: vec![],
        };
        let mut live = self.live_tokens(&req, &endpoints).await?;
        let mut bodies = Vec::with_capacity(requests.len());
        for request in requests {
            let bytes = self.get(&req, &endpoints, request, &mut live).await?;
            let meta = RawMeta {
                provider: p.name(),
                kind,
                content_type: "application/json",
                user_id: Some(user),
            };
            raw::store_bytes(&self.pool, &bytes, meta)
                .await
                .map_err(store_err)?;
            bodies.push(bytes);
        }
        Ok(bodies)
    }

    /// Revokes `user`'s grant at `provider` (Strava's deauthorization, Fitbit's and
    /// Ultrahuman's token revocation) when they disconnect. Best effort: the connection is
    /// revoked here whatever the provider answers; a failure is logged.
    pub async fn revoke_at_provider(&self, user: Uuid, provider: &str) {
        let Some((p, endpoints)) = self.registry.get(provider) else {
            return;
        };
        let Some(rev) = p.revocation() else { return };
        let Some(url) = rev.url(&endpoints.token_url) else {
            return;
        };
        let req = SyncRequest {
            run_id: Uuid::nil(),
            user_id: user,
            provider: provider.into(),
            source: "revoke".into(),
            start: Utc::now(),
            end: Utc::now(),
            data_types: vec![],
        };
        let access = match self.stored_access(&req).await {
            Ok(Some(a)) => a,
            Ok(None) => return,
            Err(e) => {
                warn!(provider, error = %e, "grant not revoked at the provider: tokens unreadable");
                return;
            }
        };
        let mut form = vec![(rev.token_field.to_string(), access.clone())];
        let mut http = self.http.post(url);
        match rev.client_auth {
            super::ClientAuth::Basic => {
                http = http.basic_auth(&endpoints.client_id, Some(&endpoints.client_secret))
            }
            super::ClientAuth::Body => {
                form.push(("client_id".into(), endpoints.client_id.clone()));
                form.push(("client_secret".into(), endpoints.client_secret.clone()));
            }
            super::ClientAuth::None => http = http.bearer_auth(&access),
        }
        match http.form(&form).send().await {
            Ok(r) if r.status().is_success() => {
                info!(provider, %user, "grant revoked at the provider")
            }
            Ok(r) => warn!(
                provider,
                status = r.status().as_u16(),
                "the provider refused the grant revocation"
            ),
            Err(e) => warn!(provider, error = %e.without_url(), "grant revocation failed"),
        }
    }

    /// The access token of `req`'s active connection as stored (not refreshed).
    async fn stored_access(&self, req: &SyncRequest) -> Result<Option<String>, SyncError> {
        let row = self
            .pool
            .get()
            .await
            .map_err(store_err)?
            .query_opt(
                "SELECT access_token FROM connections \
                 WHERE user_id = $1 AND provider = $2 AND status = 'active'",
                &[&req.user_id, &req.provider],
            )
            .await
            .map_err(store_err)?;
        let Some(sealed) = row.and_then(|r| r.get::<_, Option<String>>(0)) else {
            return Ok(None);
        };
        let stream = connection_id(req.user_id, &req.provider);
        let ctx = crate::crypto::connection_context(&stream, "access_token");
        self.sealer
            .open(&sealed, &ctx)
            .map(|o| Some(o.plain))
            .map_err(store_err)
    }

    /// Asks the provider to push the history of each backfill type. Garmin allows 30 days
    /// before consent, so the window is clamped to that; a 409 means the timeframe was already
    /// requested, which counts as done.
    async fn backfill(
        &self,
        req: &SyncRequest,
        provider: &dyn Provider,
        backfill: &dyn BackfillProvider,
        endpoints: &Endpoints,
        live: &mut Live,
    ) -> Result<Outcome, SyncError> {
        let consent = live.authorized_at.unwrap_or_else(Utc::now);
        let days = i64::from(backfill.max_historical_days());
        let start = req.start.max(consent - chrono::Duration::days(days));
        let key = (req.user_id, req.provider.clone());
        let mut requested = 0u64;
        let mut per_type = Vec::new();
        let mut failed = Vec::new();
        for data_type in backfill.backfill_types() {
            if !req.data_types.is_empty() && !req.data_types.iter().any(|t| t == data_type) {
                continue;
            }
            if self
                .cancelled
                .lock()
                .map(|mut c| c.remove(&key))
                .unwrap_or(false)
            {
                return Err(SyncError::Cancelled);
            }
            let Some(request) = backfill.backfill_request(data_type, start, req.end) else {
                continue;
            };
            let status = match self.get(req, endpoints, &request, live).await {
                Ok(_) => "requested",
                Err(SyncError::Status(409)) => "duplicate",
                Err(SyncError::RefreshFailed) => return Err(SyncError::RefreshFailed),
                Err(e) => {
                    failed.push(data_type.to_string());
                    warn!(provider = provider.name(), data_type, error = %e, "backfill request failed");
                    "failed"
                }
            };
            if status != "failed" {
                requested += 1;
            }
            per_type.push((data_type.to_string(), u64::from(status != "failed")));
            self.run_cmd(
                req.run_id,
                req.user_id,
                SyncRunCommand::Progress {
                    processed: requested,
                    message: Some(format!("{data_type}: {status}")),
                    at: Utc::now(),
                },
            )
            .await?;
        }
        if let Ok(mut c) = self.cancelled.lock() {
            c.remove(&key);
        }
        // Nothing requested is a failed backfill; some types refused is a partial one (each
        // can be retried on its own).
        if !failed.is_empty() && requested == 0 {
            return Err(SyncError::Backfill(failed.join(", ")));
        }
        let mut outcome = Outcome::new(requested, per_type);
        if !failed.is_empty() {
            outcome.outcome = RunOutcome::Partial;
            outcome.error = Some(SyncError::Backfill(failed.join(", ")).to_string());
        }
        Ok(outcome)
    }

    /// Maps and stores one pushed batch (`items`) of `data_type` for `user` and for each of
    /// `linked` (other users linked to the same provider account), each as its own run. Files
    /// the push points at are downloaded once, with `user`'s token, and fanned out: Garmin
    /// serves each file per account, not per linked user.
    pub async fn ingest_push(
        &self,
        user: Uuid,
        linked: &[Uuid],
        provider: &dyn Provider,
        data_type: &str,
        items: &Value,
        raw_ref: wearhouse_domain::import::RawPayloadRef,
    ) -> Result<Outcome, SyncError> {
        let files = provider.as_push().and_then(|p| p.as_files());
        let downloads = files
            .map(|f| f.file_downloads(data_type, items))
            .unwrap_or_default();
        let (files, fetch_err) = if downloads.is_empty() {
            (Vec::new(), None)
        } else {
            self.fetch_files(user, provider, downloads).await
        };
        // The delivery is stored raw (and its files fetched); nothing is mapped yet.
        crate::crashpoint::hit("webhook.map");
        let outcome = self
            .push_run(
                user,
                provider,
                data_type,
                items,
                &raw_ref,
                &files,
                fetch_err.as_ref(),
            )
            .await;
        for other in linked {
            if let Err(e) = self
                .push_run(
                    *other,
                    provider,
                    data_type,
                    items,
                    &raw_ref,
                    &files,
                    fetch_err.as_ref(),
                )
                .await
            {
                warn!(linked_user = %other, error = %e, "linked account push failed");
            }
        }
        outcome
    }

    /// A ping (Garmin's ping mode): the notification carries no data, only the URL to fetch it
    /// from. The data is fetched with `user`'s token, only from the provider's own API, stored
    /// raw, then mapped exactly as a push of it would be, for `user` and each of `linked`. Data
    /// that reaches the read models this way came from the provider, not from whoever called
    /// the webhook.
    pub async fn ingest_ping(
        &self,
        user: Uuid,
        linked: &[Uuid],
        provider: &dyn Provider,
        data_type: &str,
        url: &str,
    ) -> Result<Outcome, SyncError> {
        let download = super::FileDownload {
            url: url.to_string(),
            kind: data_type.to_string(),
            content_type: "application/json",
        };
        let (mut files, err) = self.fetch_files(user, provider, vec![download]).await;
        let Some(fetched) = files.pop() else {
            return Err(SyncError::Download(err.unwrap_or_default()));
        };
        let items: Value = serde_json::from_slice(&fetched.bytes)
            .map_err(|_| SyncError::Malformed(data_type.to_string()))?;
        self.ingest_push(user, linked, provider, data_type, &items, fetched.raw_ref)
            .await
    }

    /// One user's run for a push: the push's own records and the already fetched files.
    #[allow(clippy::too_many_arguments)]
    async fn push_run(
        &self,
        user: Uuid,
        provider: &dyn Provider,
        data_type: &str,
        items: &Value,
        raw_ref: &wearhouse_domain::import::RawPayloadRef,
        files: &[Fetched],
        fetch_err: Option<&String>,
    ) -> Result<Outcome, SyncError> {
        let run_id = Uuid::new_v4();
        self.run_cmd(
            run_id,
            user,
            SyncRunCommand::Start {
                id: run_id,
                user_id: user,
                provider: provider.name().into(),
                source: "webhook".into(),
                primary_user_id: None,
                at: Utc::now(),
            },
        )
        .await?;
        let result = async {
            let mapped = provider.map(data_type, items, user)?;
            let mut records = mapped.records();
            let mut out = vec![Out::Event(DataEvent::RawPayloadReceived {
                user_id: user,
                raw: raw_ref.clone(),
                mapping_version: provider.mapping_version(),
                received_at: Some(Utc::now()),
            })];
            out.extend(mapped.into_out(user).map_err(store_err)?);
            // A file that cannot be fetched or read fails the run, but only after what did
            // arrive (the push itself, other files) is written: it is evidence all the same.
            let (n, map_err) = map_files(user, provider, files, &mut out);
            records += n;
            let failure = map_err.or_else(|| fetch_err.map(|e| SyncError::Download(e.clone())));
            writer::write_all(&self.pool, run_id, user, &system("webhook"), out)
                .await
                .map_err(store_err)?;
            match failure {
                Some(e) => Err(e),
                None => Ok::<u64, SyncError>(records),
            }
        }
        .await;
        match result {
            Ok(records) => {
                self.run_cmd(
                    run_id,
                    user,
                    SyncRunCommand::Progress {
                        processed: records,
                        message: Some(format!("{data_type}: {records} records")),
                        at: Utc::now(),
                    },
                )
                .await?;
                // A delivery that maps to nothing (a notice of data this server does not keep)
                // is skipped, as upstream reports such deliveries.
                let mut done = Outcome::new(records, vec![(data_type.into(), records)]);
                if records == 0 {
                    done.outcome = RunOutcome::Skipped;
                }
                self.run_cmd(
                    run_id,
                    user,
                    SyncRunCommand::Finish {
                        outcome: done.outcome,
                        processed: records,
                        error: None,
                        metadata: done.metadata.clone(),
                        at: Utc::now(),
                    },
                )
                .await?;
                // Pushes count as syncs too (upstream forgot this, #588).
                let synced = ConnectionCommand::MarkSynced { at: Utc::now() };
                let _ = self
                    .connection_cmd(user, provider.name(), synced, "webhook")
                    .await;
                Ok(done)
            }
            Err(e) => {
                let _ = self
                    .run_cmd(
                        run_id,
                        user,
                        SyncRunCommand::Fail {
                            error: e.to_string(),
                            at: Utc::now(),
                        },
                    )
                    .await;
                Err(e)
            }
        }
    }

    /// Downloads the files a push points at with `user`'s token and keeps each raw (before
    /// parsing). Returns the files fetched and the first download error, as text (the other
    /// files are still fetched after a failure).
    async fn fetch_files(
        &self,
        user: Uuid,
        provider: &dyn Provider,
        downloads: Vec<super::FileDownload>,
    ) -> (Vec<Fetched>, Option<String>) {
        let mut files = Vec::new();
        let mut get_err: Option<String> = None;
        let Some((_, endpoints)) = self.registry.get(provider.name()) else {
            return (
                files,
                Some(SyncError::UnknownProvider(provider.name().into()).to_string()),
            );
        };
        let req = SyncRequest {
            run_id: Uuid::nil(),
            user_id: user,
            provider: provider.name().into(),
            source: "webhook".into(),
            start: Utc::now(),
            end: Utc::now(),
            data_types: vec![],
        };
        let mut live = match self.live_tokens(&req, &endpoints).await {
            Ok(l) => l,
            Err(e) => return (files, Some(e.to_string())),
        };
        for d in downloads {
            // The user's token goes along, so only the provider's own API is followed: a push
            // naming another host must not learn it.
            let Some(request) = api_request(&endpoints.api_url, &d.url) else {
                warn!(
                    provider = provider.name(),
                    "file URL outside the provider API; not fetched"
                );
                get_err.get_or_insert(SyncError::ForeignUrl.to_string());
                continue;
            };
            let bytes = match self.get(&req, &endpoints, &request, &mut live).await {
                Ok(b) => b,
                Err(e) => {
                    warn!(provider = provider.name(), kind = %d.kind, error = %e, "file download failed");
                    get_err.get_or_insert(e.to_string());
                    continue;
                }
            };
            // Stored once (content-addressed); each linked user's run references it.
            let meta = RawMeta {
                provider: provider.name(),
                kind: &d.kind,
                content_type: d.content_type,
                user_id: Some(user),
            };
            match raw::store_bytes(&self.pool, &bytes, meta).await {
                Ok(raw_ref) => files.push(Fetched {
                    kind: d.kind,
                    bytes,
                    raw_ref,
                }),
                Err(e) => {
                    get_err.get_or_insert(store_err(e).to_string());
                }
            }
        }
        (files, get_err)
    }

    /// The provider account (provider user id) of `user`'s active connection to `provider`.
    async fn account_of(&self, user: Uuid, provider: &str) -> Result<Option<String>, SyncError> {
        super::linked::account_of(&self.pool, user, provider)
            .await
            .map_err(store_err)
    }

    /// The other users whose active connection to `provider` is the same provider account as
    /// `user`'s, oldest connection first.
    pub async fn linked_users(&self, user: Uuid, provider: &str) -> Result<Vec<Uuid>, SyncError> {
        Ok(super::linked::around(&self.pool, user, provider)
            .await
            .map_err(store_err)?
            .others)
    }

    /// Writes what `req`'s pull brought for linked user `user` as that user's own run (source
    /// `linked_account`, naming the user whose connection pulled), and marks them synced.
    async fn deliver_linked(
        &self,
        req: &SyncRequest,
        user: Uuid,
        out: Vec<Out>,
        records: u64,
    ) -> Result<(), SyncError> {
        let run_id = Uuid::new_v4();
        let start = SyncRunCommand::Start {
            id: run_id,
            user_id: user,
            provider: req.provider.clone(),
            source: "linked_account".into(),
            primary_user_id: Some(req.user_id),
            at: Utc::now(),
        };
        self.run_cmd(run_id, user, start).await?;
        let written = writer::write_all(&self.pool, run_id, user, &system("sync"), out).await;
        if let Err(e) = written {
            let _ = self
                .run_cmd(
                    run_id,
                    user,
                    SyncRunCommand::Fail {
                        error: format!("storage: {e}"),
                        at: Utc::now(),
                    },
                )
                .await;
            return Err(store_err(e));
        }
        let done = SyncRunCommand::Complete {
            processed: records,
            at: Utc::now(),
        };
        self.run_cmd(run_id, user, done).await?;
        let synced = ConnectionCommand::MarkSynced { at: Utc::now() };
        let _ = self
            .connection_cmd(user, &req.provider, synced, "sync")
            .await;
        Ok(())
    }

    /// Revokes `user`'s connection to `provider` (refused refresh, provider deregistration).
    pub async fn revoke_for(&self, user: Uuid, provider: &str, reason: &str) {
        let cmd = ConnectionCommand::Revoke {
            reason: reason.into(),
            at: Utc::now(),
        };
        if let Err(e) = self.connection_cmd(user, provider, cmd, "connection").await {
            warn!(%user, provider, error = %e, "revocation not recorded");
        }
    }

    /// Records the scope the user now grants at the provider.
    pub async fn change_scope(&self, user: Uuid, provider: &str, scope: &str) {
        let cmd = ConnectionCommand::ChangeScope {
            scope: scope.into(),
            at: Utc::now(),
        };
        if let Err(e) = self.connection_cmd(user, provider, cmd, "webhook").await {
            warn!(%user, provider, error = %e, "scope change not recorded");
        }
    }

    /// Runs a command on a connection, retrying when a concurrent writer (a push marking the
    /// connection synced, a refresh) won the optimistic lock.
    async fn connection_cmd(
        &self,
        user: Uuid,
        provider: &str,
        cmd: ConnectionCommand,
        actor: &str,
    ) -> Result<(), crate::store::CommandError<wearhouse_domain::connection::ConnectionError>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .commands
                .execute::<Connection>(
                    &connection_id(user, provider),
                    cmd.clone(),
                    &system(actor),
                    Some(user),
                    Some("connections"),
                )
                .await;
            match result {
                Err(crate::store::CommandError::Conflict) if attempt < 5 => continue,
                other => return other,
            }
        }
    }

    /// The connection's tokens in clear, refreshed first when they expire within a minute.
    async fn live_tokens(
        &self,
        req: &SyncRequest,
        endpoints: &Endpoints,
    ) -> Result<Live, SyncError> {
        let row = self
            .pool
            .get()
            .await
            .map_err(store_err)?
            .query_opt(
                "SELECT access_token, refresh_token, token_expires_at, authorized_at FROM connections \
                 WHERE user_id = $1 AND provider = $2 AND status = 'active'",
                &[&req.user_id, &req.provider],
            )
            .await
            .map_err(store_err)?
            .ok_or_else(|| SyncError::NoConnection(req.provider.clone()))?;
        let stream = connection_id(req.user_id, &req.provider);
        // Tokens sealed before they were bound to their connection (`legacy`) still open; the
        // next refresh seals their successors bound.
        let open = |s: Option<String>, field: &str| -> Result<Option<String>, SyncError> {
            let ctx = crate::crypto::connection_context(&stream, field);
            s.map(|s| {
                self.sealer
                    .open(&s, &ctx)
                    .map(|o| o.plain)
                    .map_err(store_err)
            })
            .transpose()
        };
        let access = open(row.get(0), "access_token")?.unwrap_or_default();
        let refresh = open(row.get(1), "refresh_token")?;
        let mut live = Live {
            access,
            refresh,
            refreshed: false,
            authorized_at: row.get(3),
        };
        let expires: Option<DateTime<Utc>> = row.get(2);
        if expires.is_some_and(|e| e < Utc::now() + chrono::Duration::seconds(60)) {
            self.refresh(req, endpoints, &mut live).await?;
        }
        Ok(live)
    }

    async fn refresh(
        &self,
        req: &SyncRequest,
        endpoints: &Endpoints,
        live: &mut Live,
    ) -> Result<(), SyncError> {
        let Some(rt) = live.refresh.clone() else {
            self.revoke(req, "refresh_failed").await;
            return Err(SyncError::RefreshFailed);
        };
        let auth = self
            .registry
            .get(&req.provider)
            .map(|(p, _)| p.token_auth())
            .unwrap_or(super::ClientAuth::Body);
        // Transient failures (unreachable, 5xx, 429) are retried a few times in place.
        let mut attempt = 0u32;
        let result = loop {
            attempt += 1;
            match oauth::refresh(&self.http, endpoints, auth, &rt).await {
                Err(OAuthError::Status(_) | OAuthError::Http(_)) if attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(t) => {
                let sealed = self.seal_tokens(req.user_id, &req.provider, &t);
                let cmd = ConnectionCommand::RefreshTokens {
                    tokens: sealed,
                    at: Utc::now(),
                };
                self.connection_cmd(req.user_id, &req.provider, cmd, "sync")
                    .await
                    .map_err(store_err)?;
                live.access = t.access_token.secret().clone();
                if let Some(r) = t.refresh_token {
                    live.refresh = Some(r.secret().clone());
                }
                Ok(())
            }
            Err(e) if e.revokes() => {
                self.revoke(req, "refresh_failed").await;
                Err(SyncError::RefreshFailed)
            }
            // Anything else (a mistyped client secret, a provider outage) leaves the connection
            // as it is: the run fails with the reason and the next run tries again.
            Err(e) => {
                warn!(user = %req.user_id, provider = %req.provider, error = %e, "token refresh failed; connection kept");
                Err(e.into())
            }
        }
    }

    async fn revoke(&self, req: &SyncRequest, reason: &str) {
        self.revoke_for(req.user_id, &req.provider, reason).await;
    }

    /// One GET with the run's retry rules: 401 refreshes once, 429 waits Retry-After (up to the
    /// configured cap), 5xx and timeouts back off exponentially.
    async fn get(
        &self,
        req: &SyncRequest,
        endpoints: &Endpoints,
        request: &PullRequest,
        live: &mut Live,
    ) -> Result<Vec<u8>, SyncError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}{}", endpoints.api_url, request.path),
            &request.query,
        )
        .map_err(|_| SyncError::Status(0))?;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let wait = self.reserve_slot(&req.provider).await;
            tokio::time::sleep(wait).await;
            // A full fixed window is waited out in place up to the Retry-After cap; past it the
            // run stops as rate limited (a scheduled one is retried after the window).
            while let Some(wait) = self.reserve_windows(&req.provider, req.user_id).await {
                if wait.as_secs() > self.config.max_retry_after_secs {
                    return Err(SyncError::RateLimited(wait.as_secs().max(1)));
                }
                tokio::time::sleep(wait).await;
            }
            let sent = self
                .http
                .get(url.clone())
                .bearer_auth(&live.access)
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    if attempt >= ATTEMPTS {
                        return Err(if e.is_timeout() {
                            SyncError::Timeout
                        } else {
                            SyncError::Status(0)
                        });
                    }
                    backoff(attempt).await;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            match status {
                200..=299 => {
                    return resp
                        .bytes()
                        .await
                        .map(|b| b.to_vec())
                        .map_err(|_| SyncError::Timeout)
                }
                // One refresh per run on 401: a second 401 means the grant itself is bad.
                401 if !live.refreshed => {
                    live.refreshed = true;
                    self.refresh(req, endpoints, live).await?;
                    attempt -= 1;
                }
                429 => {
                    let wait = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(1);
                    if wait > self.config.max_retry_after_secs || attempt >= ATTEMPTS {
                        return Err(SyncError::RateLimited(wait));
                    }
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                500..=599 if attempt < ATTEMPTS => backoff(attempt).await,
                other => return Err(SyncError::Status(other)),
            }
        }
    }
}

/// `url` as a request under `api_url` (same scheme, host, port and path prefix), or `None`.
/// A file a push pointed at, downloaded and stored raw.
struct Fetched {
    kind: String,
    bytes: Vec<u8>,
    raw_ref: wearhouse_domain::import::RawPayloadRef,
}

/// Maps fetched files for `user` into `out` (each preceded by its raw payload event). Returns
/// the records mapped and the first mapping error.
fn map_files(
    user: Uuid,
    provider: &dyn Provider,
    files: &[Fetched],
    out: &mut Vec<Out>,
) -> (u64, Option<SyncError>) {
    let (mut records, mut map_err) = (0u64, None);
    for f in files {
        out.push(Out::Event(DataEvent::RawPayloadReceived {
            user_id: user,
            raw: f.raw_ref.clone(),
            mapping_version: provider.mapping_version(),
            received_at: Some(Utc::now()),
        }));
        let mapped = provider
            .as_push()
            .and_then(|p| p.as_files())
            .and_then(|files| files.map_file(&f.kind, &f.bytes, user));
        match mapped {
            Some(Ok(m)) => {
                records += m.records();
                match m.into_out(user) {
                    Ok(o) => out.extend(o),
                    Err(e) => {
                        map_err.get_or_insert(store_err(e));
                    }
                }
            }
            Some(Err(e)) => {
                warn!(provider = provider.name(), kind = %f.kind, error = %e, "file does not map");
                map_err.get_or_insert(e.into());
            }
            None => {}
        }
    }
    (records, map_err)
}

fn api_request(api_url: &str, url: &str) -> Option<PullRequest> {
    let base = reqwest::Url::parse(api_url).ok()?;
    let target = reqwest::Url::parse(url).ok()?;
    let prefix = base.path().trim_end_matches('/');
    let same_origin = base.scheme() == target.scheme()
        && base.host_str() == target.host_str()
        && base.port_or_known_default() == target.port_or_known_default();
    let rest = target.path().strip_prefix(prefix)?;
    if !same_origin || !rest.starts_with('/') || rest.split('/').any(|s| s == "..") {
        return None;
    }
    Some(PullRequest {
        path: rest.to_string(),
        query: target.query_pairs().into_owned().collect(),
    })
}

impl Engine {
    /// Spacing between two requests to `provider` so its app-wide budget holds.
    fn spacing(&self, provider: &str) -> Duration {
        self.config
            .rate_budget(provider)
            .or_else(|| {
                self.registry
                    .get(provider)
                    .and_then(|(p, _)| p.requests_per_minute())
            })
            .map(|rpm| Duration::from_micros(60_000_000 / u64::from(rpm.max(1))))
            .unwrap_or_default()
    }

    /// Reserves the next request slot of `provider` and returns how long to wait for it. The
    /// budget is one row per provider in Postgres, so every `serve` process on the database
    /// draws from the same budget: the upsert takes the row lock, moves the provider's next free
    /// slot one spacing further and returns how far ahead of now the reserved slot lies.
    /// Postgres' clock is the one clock all processes share. Without the database the slot
    /// comes from this process's own pacer, which still holds the budget within the process.
    async fn reserve_slot(&self, provider: &str) -> Duration {
        let spacing = self.spacing(provider);
        if spacing.is_zero() {
            return Duration::ZERO;
        }
        let secs = spacing.as_secs_f64();
        let shared = async {
            let c = self.pool.get().await.map_err(store_err)?;
            let row = c
                .query_one(
                    "INSERT INTO provider_pacing AS p (provider, next_at) \
                     VALUES ($1, clock_timestamp() + make_interval(secs => $2)) \
                     ON CONFLICT (provider) DO UPDATE \
                       SET next_at = greatest(p.next_at, clock_timestamp()) + make_interval(secs => $2) \
                     RETURNING extract(epoch FROM p.next_at - clock_timestamp())::float8 - $2",
                    &[&provider, &secs],
                )
                .await
                .map_err(store_err)?;
            Ok::<f64, SyncError>(row.get(0))
        };
        match shared.await {
            Ok(ahead) => Duration::from_secs_f64(ahead.max(0.0)),
            Err(e) => {
                warn!(provider, error = %e, "shared rate budget unavailable; pacing in process");
                self.pacer
                    .lock()
                    .map(|mut p| p.reserve(provider, std::time::Instant::now(), spacing))
                    .unwrap_or_default()
            }
        }
    }
}

impl Engine {
    /// The fixed-window budgets of `provider`: the configured ones (`name=N/SECS[/user]` in
    /// WEARHOUSE_PROVIDER_RATE_BUDGETS) or the provider's own.
    fn windows(&self, provider: &str) -> Vec<super::RateWindow> {
        let configured = self.config.rate_windows(provider);
        if !configured.is_empty() {
            return configured;
        }
        self.registry
            .get(provider)
            .map(|(p, _)| p.rate_windows().to_vec())
            .unwrap_or_default()
    }

    /// Takes one request from every fixed-window budget of `provider` (per user ones for
    /// `user`), all or none: `None` when taken, else how long until the full window ends.
    /// Counted in Postgres on its clock, so every `serve` process draws from the same windows.
    async fn reserve_windows(&self, provider: &str, user: Uuid) -> Option<Duration> {
        let windows = self.windows(provider);
        if windows.is_empty() {
            return None;
        }
        let taken = async {
            let mut c = self.pool.get().await.map_err(store_err)?;
            let tx = c.transaction().await.map_err(store_err)?;
            for w in &windows {
                let key = if w.per_user {
                    format!("{provider}:{}s:{user}", w.window_secs)
                } else {
                    format!("{provider}:{}s", w.window_secs)
                };
                let secs = f64::from(w.window_secs.max(1));
                let limit = w.requests as i32;
                let row = tx
                    .query_opt(
                        "INSERT INTO provider_rate_windows AS w (budget, window_start, used) \
                         VALUES ($1, to_timestamp(floor(extract(epoch FROM clock_timestamp())::float8 / $2::float8) * $2::float8), 1) \
                         ON CONFLICT (budget, window_start) DO UPDATE SET used = w.used + 1 \
                           WHERE w.used < $3::int4 \
                         RETURNING used",
                        &[&key, &secs, &limit],
                    )
                    .await
                    .map_err(store_err)?;
                if row.is_none() {
                    let left: f64 = tx
                        .query_one(
                            "SELECT extract(epoch FROM to_timestamp((floor(extract(epoch FROM clock_timestamp())::float8 / $1::float8) + 1) * $1::float8) - clock_timestamp())::float8",
                            &[&secs],
                        )
                        .await
                        .map_err(store_err)?
                        .get(0);
                    // Dropping the transaction gives back what the other windows counted.
                    return Ok::<_, SyncError>(Some(Duration::from_secs_f64(left.max(0.0) + 0.01)));
                }
                if row.is_some_and(|r| r.get::<_, i32>(0) == 1) {
                    tx.execute(
                        "DELETE FROM provider_rate_windows WHERE budget = $1 \
                           AND window_start < clock_timestamp() - interval '2 days'",
                        &[&key],
                    )
                    .await
                    .map_err(store_err)?;
                }
            }
            tx.commit().await.map_err(store_err)?;
            Ok(None)
        };
        match taken.await {
            Ok(wait) => wait,
            Err(e) => {
                warn!(provider, error = %e, "windowed rate budget unavailable; not counted");
                None
            }
        }
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(250 << attempt.min(6))).await;
}

/// Re-maps every stored provider payload of `user` (optionally of one provider) with today's
/// mappers and appends the records as a new data stream. Record ids are deterministic and
/// samples merge on their key, so a replay restores or corrects data without duplicating it.
/// Returns (payloads, records).
pub async fn replay(
    pool: &Pool,
    registry: &Registry,
    user: Uuid,
    provider: Option<&str>,
) -> Result<(u64, u64), SyncError> {
    let client = pool.get().await.map_err(store_err)?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (payload->'raw'->>'sha256') payload->'raw'->>'sha256', \
               payload->'raw'->>'provider', payload->'raw'->>'kind', position, \
               coalesce((payload->>'received_at')::timestamptz, recorded_at) \
             FROM events WHERE aggregate_type = $1 AND event_type = 'RawPayloadReceived' AND user_id = $2 \
               AND ($3::text IS NULL OR payload->'raw'->>'provider' = $3) \
             ORDER BY payload->'raw'->>'sha256', position",
            &[&DataEvent::AGGREGATE_TYPE, &user, &provider],
        )
        .await
        .map_err(store_err)?;
    let mut rows: Vec<(String, String, String, i64, DateTime<Utc>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    rows.sort_by_key(|r| r.3);
    let accounts: Vec<(String, Option<String>)> = client
        .query(
            "SELECT provider, provider_user_id FROM connections WHERE user_id = $1",
            &[&user],
        )
        .await
        .map_err(store_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let (mut payloads, mut records, mut out) = (0u64, 0u64, Vec::new());
    for (sha, provider_name, kind, _, received_at) in rows {
        let Some((p, _)) = registry.get(&provider_name) else {
            continue;
        };
        let mut bytes = Vec::new();
        raw::write_to(pool, &sha, &mut bytes)
            .await
            .map_err(store_err)?;
        let mut mapped = Vec::new();
        let file = p
            .as_push()
            .and_then(|push| push.as_files())
            .and_then(|files| files.map_file(&kind, &bytes, user));
        if let Some(m) = file {
            mapped.push(m);
        } else if let Ok(body) = serde_json::from_slice::<Value>(&bytes) {
            mapped.extend(map_json(
                p.as_ref(),
                &kind,
                &body,
                user,
                received_at,
                &accounts,
            ));
        } else {
            // A body that never parsed (kept as evidence) has nothing to replay.
            continue;
        }
        payloads += 1;
        for m in mapped {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    warn!(sha256 = %sha, error = %e, "payload does not map; skipped");
                    continue;
                }
            };
            records += m.records();
            out.extend(m.into_out(user).map_err(store_err)?);
        }
    }
    writer::write_all(pool, Uuid::new_v4(), user, &system("replay"), out)
        .await
        .map_err(store_err)?;
    Ok((payloads, records))
}

/// The records of one stored JSON payload: a webhook body's pushed data for the user's account,
/// or a pulled response.
fn map_json(
    p: &dyn Provider,
    kind: &str,
    body: &Value,
    user: Uuid,
    received_at: DateTime<Utc>,
    accounts: &[(String, Option<String>)],
) -> Vec<Result<super::Mapped, super::MapError>> {
    if kind != "webhook" {
        return vec![p
            .as_pull()
            .and_then(|pull| pull.map_snapshot(kind, body, user, received_at))
            .unwrap_or_else(|| p.map(kind, body, user))];
    }
    let Some(push) = p.as_push() else {
        return vec![];
    };
    let account = accounts
        .iter()
        .find(|(pr, _)| pr == p.name())
        .and_then(|(_, a)| a.clone());
    let mut mapped = Vec::new();
    for notice in push.parse_webhook(body).unwrap_or_default() {
        if let super::Notice::Data {
            provider_user_id,
            data_type,
            items,
        } = notice
        {
            if Some(&provider_user_id) == account.as_ref() {
                mapped.push(p.map(&data_type, &items, user));
            }
        }
    }
    mapped
}

impl Engine {
    /// Creates the provider's app-level webhook subscriptions pointing at `callback_url`;
    /// returns how many exist afterwards (a 409 means one already did).
    pub async fn register_webhooks(
        &self,
        provider: &str,
        callback_url: &str,
    ) -> Result<usize, SyncError> {
        let (p, endpoints) = self
            .registry
            .get(provider)
            .ok_or_else(|| SyncError::UnknownProvider(provider.into()))?;
        let Some(subs) = p.as_subscriptions() else {
            return Ok(0);
        };
        let mut ok = 0;
        for r in subs.subscription_requests(&endpoints, callback_url) {
            match self.send_app(&endpoints, &r).await {
                Ok(resp) if resp.status().is_success() || resp.status().as_u16() == 409 => ok += 1,
                Ok(resp) => warn!(
                    provider,
                    status = resp.status().as_u16(),
                    "webhook subscription refused"
                ),
                Err(e) => warn!(provider, error = %e.without_url(), "webhook subscription failed"),
            }
        }
        Ok(ok)
    }

    /// Sends a request made with the app's credentials (never logged: they are in headers).
    pub(super) async fn send_app(
        &self,
        endpoints: &Endpoints,
        r: &super::AppRequest,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let method =
            reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut req = self
            .http
            .request(method, format!("{}{}", endpoints.api_url, r.path));
        if !r.body.is_null() {
            req = req.json(&r.body);
        }
        for (k, v) in &r.headers {
            req = req.header(k, v);
        }
        req.send().await
    }

    /// Keeps `provider`'s webhook subscriptions to `callback_url` alive: lists them, creates
    /// the missing (or expired) ones and renews those expiring within the configured days.
    /// Returns (created, renewed). Subscriptions expire at the provider (Oura's after a few
    /// weeks) and a lapsed one silently stops the pings.
    pub async fn maintain_subscriptions(
        &self,
        provider: &str,
        callback_url: &str,
    ) -> Result<(usize, usize), SyncError> {
        let (p, endpoints) = self
            .registry
            .get(provider)
            .ok_or_else(|| SyncError::UnknownProvider(provider.into()))?;
        let Some(subs) = p.as_subscriptions() else {
            return Ok((0, 0));
        };
        let list = subs.list_subscriptions(&endpoints);
        let resp = self
            .send_app(&endpoints, &list)
            .await
            .map_err(|e| store_err(e.without_url()))?;
        if !resp.status().is_success() {
            return Err(SyncError::Status(resp.status().as_u16()));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| SyncError::Malformed("subscriptions".into()))?;
        let existing = subs.parse_subscriptions(&body);
        let wanted = subs.subscription_requests(&endpoints, callback_url);
        let now = Utc::now();
        let renew_by = now + chrono::Duration::days(self.config.subscription_renew_days);
        let (create, renew) =
            super::plan_subscriptions(&wanted, &existing, callback_url, now, renew_by);
        let (mut created, mut renewed) = (0, 0);
        for r in create {
            match self.send_app(&endpoints, r).await {
                Ok(resp) if resp.status().is_success() || resp.status().as_u16() == 409 => {
                    created += 1
                }
                Ok(resp) => warn!(
                    provider,
                    status = resp.status().as_u16(),
                    "webhook subscription refused"
                ),
                Err(e) => warn!(provider, error = %e.without_url(), "webhook subscription failed"),
            }
        }
        for id in renew {
            let r = subs.renew_subscription(&endpoints, &id);
            match self.send_app(&endpoints, &r).await {
                Ok(resp) if resp.status().is_success() => renewed += 1,
                Ok(resp) => warn!(
                    provider,
                    status = resp.status().as_u16(),
                    "webhook subscription renewal refused"
                ),
                Err(e) => {
                    warn!(provider, error = %e.without_url(), "webhook subscription renewal failed")
                }
            }
        }
        if created + renewed > 0 {
            info!(
                provider,
                created, renewed, "webhook subscriptions maintained"
            );
        }
        Ok((created, renewed))
    }
}

#[cfg(test)]
mod tests {
    use super::api_request;

    #[test]
    fn pushed_file_urls_are_followed_only_under_the_api_url() {
        let api = "https://apis.garmin.com/api";
        let r = api_request(
            api,
            "https://apis.garmin.com/api/wellness-api/rest/activityFile?id=7&token=t",
        )
        .unwrap();
        assert_eq!(r.path, "/wellness-api/rest/activityFile");
        assert_eq!(
            r.query,
            vec![("id".into(), "7".into()), ("token".into(), "t".into())]
        );
        for foreign in [
            "https://evil.example/api/wellness-api/rest/activityFile",
            "http://apis.garmin.com/api/x",
            "https://apis.garmin.com:8443/api/x",
            "https://apis.garmin.com/apix/y",
            "https://apis.garmin.com/other",
            "not a url",
        ] {
            assert_eq!(api_request(api, foreign), None, "{foreign}");
        }
    }
}
