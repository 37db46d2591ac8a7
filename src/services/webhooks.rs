//! Inbound provider webhooks. A delivery is verified, its bytes are stored before anything
//! parses them, and each notice in it that is new (judged by what it means, see
//! [`notice_key`]) becomes a durable mapping job ([`MAP_NOTICE`]). The provider gets its answer at once (Garmin gives up
//! after 30 s); the job maps the notice for every user linked to the provider account.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wearhouse_domain::import::RawPayloadRef;
use wearhouse_domain::records::DataEvent;

use crate::ingest::raw::{self, RawMeta};
use crate::jobs::{JobContext, JobError, JobFailure, JobHandler, Jobs};
use crate::providers::engine::{Engine, SyncError, SyncRequest};
use crate::providers::linked::{self, LinkedError};
use crate::providers::{check_freshness, Notice, Provider, SampleAnchor, WebhookError};
use crate::services::syncs::{run_state, RunState, Syncs, SyncsError};
use crate::store::Actor;
use wearhouse_log::writer::{self, Out};

/// The job kind that maps one accepted notice.
pub const MAP_NOTICE: &str = "webhook.map_notice";

#[derive(Debug, thiserror::Error)]
pub enum WebhookFailure {
    #[error("Unknown provider {0}")]
    UnknownProvider(String),
    /// The delivery itself is refused (signature, age, shape): the provider's fault.
    #[error(transparent)]
    Rejected(#[from] WebhookError),
    #[error("storing the delivery's bytes")]
    Raw(#[source] raw::RawError),
    #[error("database")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database")]
    Db(#[from] tokio_postgres::Error),
    #[error("finding the linked users")]
    Linked(#[from] LinkedError),
    #[error("recording a provider delete")]
    Record(#[source] wearhouse_log::AppendError),
    #[error("writing the notice's events")]
    Write(#[source] wearhouse_log::writer::WriteError),
    #[error("mapping the notice")]
    Sync(#[from] SyncError),
    #[error("recording the notice's mapping job")]
    Job(#[from] JobError),
    /// The stored delivery no longer yields the notice a job names (never expected: the bytes
    /// are content-addressed and parsing is pure).
    #[error("stored delivery {0} has no notice {1}")]
    Vanished(String, usize),
}

/// One delivery as the HTTP layer received it.
pub struct Delivery<'a> {
    pub provider: &'a str,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The URL's query string (Garmin's push token travels there).
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub request_id: Option<String>,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Receipt {
    /// Stored; its new notices are queued for mapping.
    Accepted,
    /// Stored; every notice in it had been accepted before.
    Duplicate,
}

impl Receipt {
    pub fn as_str(self) -> &'static str {
        match self {
            Receipt::Accepted => "accepted",
            Receipt::Duplicate => "duplicate",
        }
    }
}

/// The mapping job of one notice: which stored delivery, which of its notices. The bytes are
/// read back from the raw store, so the job stays small and maps exactly what arrived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapNotice {
    pub provider: String,
    pub raw: RawPayloadRef,
    pub notice: usize,
    pub request_id: Option<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Webhooks {
    engine: Arc<Engine>,
}

impl Webhooks {
    pub fn new(engine: Arc<Engine>) -> Webhooks {
        Webhooks { engine }
    }

    /// The job handler that maps accepted notices (registered with the job runner).
    pub fn handler(&self) -> Arc<dyn JobHandler> {
        Arc::new(MapNoticeHandler(self.clone()))
    }

    /// Verifies, stores and accepts a delivery; its new notices are queued for mapping.
    pub async fn receive(&self, d: Delivery<'_>) -> Result<Receipt, WebhookFailure> {
        let (p, endpoints) = self
            .engine
            .registry
            .get(d.provider)
            .ok_or_else(|| WebhookFailure::UnknownProvider(d.provider.into()))?;
        let push = p.as_push().ok_or(WebhookError::Unsupported)?;
        // Garmin signs nothing and its client id is public: a push must carry the
        // installation's own token, given in the push URL registered at Garmin.
        if p.name() == "garmin" {
            let expected = self
                .engine
                .config
                .garmin_push_token
                .as_deref()
                .unwrap_or("");
            let given = d
                .query
                .map(url_pairs)
                .and_then(|q| q.get("token").cloned())
                .unwrap_or_default();
            if expected.is_empty() || !crate::providers::same(given.as_bytes(), expected.as_bytes())
            {
                return Err(WebhookError::Signature.into());
            }
        }
        push.verify_webhook(&d.headers, d.body, &endpoints)?;
        // A validly signed delivery replayed later (or dated ahead) is refused: the signature
        // covers the timestamp, so only the timestamp tells a replay apart.
        if let Some(sent) = push.webhook_timestamp(&d.headers) {
            check_freshness(sent, Utc::now(), self.engine.config.webhook_tolerance_secs)?;
        }
        let json: Value = serde_json::from_slice(d.body)
            .map_err(|_| WebhookError::Payload("body is not JSON".into()))?;
        let notices = push.parse_webhook(&json)?;
        check_push_times(&notices, Utc::now())?;
        let meta = RawMeta {
            provider: p.name(),
            kind: "webhook",
            content_type: "application/json",
            user_id: None,
        };
        let raw_ref = raw::store_bytes(&self.engine.pool, d.body, meta)
            .await
            .map_err(WebhookFailure::Raw)?;
        let received_at = Utc::now();
        let mut fresh = 0usize;
        for (i, notice) in notices.iter().enumerate() {
            // Consent changes are applied before the answer (a few commands, idempotent): the
            // caller that revoked access at the provider sees the connection revoked at once.
            if matches!(
                notice,
                Notice::Deregistered { .. } | Notice::ScopeChanged { .. }
            ) {
                self.apply_consent(p.name(), notice).await?;
                fresh += 1;
                continue;
            }
            let key = notice_key(&self.engine.pool, p.name(), notice, &json).await?;
            let job = MapNotice {
                provider: p.name().into(),
                raw: raw_ref.clone(),
                notice: i,
                request_id: d.request_id.clone(),
                received_at,
            };
            let payload = serde_json::to_value(&job).expect("a notice job serializes");
            // The notice's key and its job commit together: a key recorded without its job
            // would drop the provider's redelivery of a notice never mapped.
            let mut client = self.engine.pool.get().await?;
            let tx = client.transaction().await?;
            if let Some(key) = &key {
                let inserted = tx
                    .execute(
                        "INSERT INTO webhook_notices (provider, notice_key, raw_sha256) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&p.name(), key, &raw_ref.sha256],
                    )
                    .await?;
                if inserted == 0 {
                    continue;
                }
            }
            let job_key = key.map(|k| format!("{}:{k}", p.name()));
            Jobs::enqueue_in(&tx, MAP_NOTICE, job_key.as_deref(), payload).await?;
            tx.commit().await?;
            fresh += 1;
        }
        Ok(if fresh == 0 && !notices.is_empty() {
            Receipt::Duplicate
        } else {
            Receipt::Accepted
        })
    }

    /// A deregistration or permission change, for every user linked to the account.
    async fn apply_consent(&self, provider: &str, notice: &Notice) -> Result<(), WebhookFailure> {
        let Some(users) = linked::of_account(&self.engine.pool, provider, account(notice)).await?
        else {
            return Ok(());
        };
        for user in users.all() {
            match notice {
                Notice::ScopeChanged { scope, .. } => {
                    self.engine.change_scope(user, provider, scope).await
                }
                Notice::Deregistered { .. } => {
                    self.engine
                        .revoke_for(user, provider, "provider_deregistered")
                        .await
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A provider's verification challenge (Oura's subscription handshake).
    pub fn challenge(&self, provider: &str, query: Option<&str>) -> Result<Value, WebhookFailure> {
        let (p, endpoints) = self
            .engine
            .registry
            .get(provider)
            .ok_or_else(|| WebhookFailure::UnknownProvider(provider.into()))?;
        let query = query.map(url_pairs).unwrap_or_default();
        let subs = p.as_subscriptions().ok_or(WebhookError::Unsupported)?;
        Ok(subs.challenge(&query, &endpoints)?)
    }

    /// Maps one accepted notice for every user linked to its provider account. Safe to run
    /// again (after a crash): record ids are deterministic, so a second run changes nothing in
    /// the read models. `job_id` is the id of the job mapping it: what this mapping starts is keyed by it.
    pub async fn map_notice(&self, job: &MapNotice, job_id: Uuid) -> Result<(), WebhookFailure> {
        let engine = &self.engine;
        let (p, _) = engine
            .registry
            .get(&job.provider)
            .ok_or_else(|| WebhookFailure::UnknownProvider(job.provider.clone()))?;
        let mut bytes = Vec::new();
        raw::write_to(&engine.pool, &job.raw.sha256, &mut bytes)
            .await
            .map_err(WebhookFailure::Raw)?;
        let vanished = || WebhookFailure::Vanished(job.raw.sha256.clone(), job.notice);
        let json: Value = serde_json::from_slice(&bytes).map_err(|_| vanished())?;
        let notice = p
            .as_push()
            .ok_or(WebhookError::Unsupported)?
            .parse_webhook(&json)?
            .into_iter()
            .nth(job.notice)
            .ok_or_else(vanished)?;
        let Some(users) = linked::of_account(&engine.pool, p.name(), account(&notice)).await?
        else {
            return Ok(());
        };
        let actor = Actor {
            kind: "webhook",
            id: p.name().into(),
            request_id: job.request_id.clone(),
        };
        match &notice {
            Notice::ScopeChanged { .. } | Notice::Deregistered { .. } => {
                self.apply_consent(p.name(), &notice).await?;
            }
            Notice::Data {
                data_type, items, ..
            } => {
                // The primary's run downloads any files the push points at (served per
                // account), and every linked user gets the push and the files.
                engine
                    .ingest_push(
                        users.primary,
                        &users.others,
                        p.as_ref(),
                        data_type,
                        items,
                        job.raw.clone(),
                    )
                    .await?;
            }
            Notice::Fetch { data_type, url, .. } => {
                engine
                    .ingest_ping(users.primary, &users.others, p.as_ref(), data_type, url)
                    .await?;
            }
            Notice::Record {
                data_type,
                external_id,
                ..
            } => {
                engine
                    .ingest_record(
                        users.primary,
                        &users.others,
                        p.as_ref(),
                        data_type,
                        external_id,
                    )
                    .await?;
            }
            Notice::Deleted {
                data_type,
                external_id,
                ..
            } => {
                // The provider's delete is authoritative: each record mapped from it is deleted
                // (hidden from the read models, kept in the history), and stays deleted if a
                // later pull brings it again.
                for user in users.all() {
                    let records = p
                        .as_push()
                        .and_then(|push| push.as_deletes())
                        .map(|d| d.deleted_records(data_type, external_id, user))
                        .unwrap_or_default();
                    for (kind, record_id) in records {
                        let event = DataEvent::RecordDeleted {
                            user_id: user,
                            kind,
                            record_id,
                        };
                        engine
                            .commands
                            .record_user_change(&record_id.to_string(), &event, &actor, None)
                            .await
                            .map_err(WebhookFailure::Record)?;
                    }
                    let derived =
                        derived_samples_deleted(engine, p.as_ref(), data_type, external_id, user)
                            .await?;
                    if let Some(event) = derived {
                        let stream = format!("{user}/samples/{external_id}");
                        engine
                            .commands
                            .record_user_change(&stream, &event, &actor, None)
                            .await
                            .map_err(WebhookFailure::Record)?;
                    }
                }
            }
            Notice::Pull { data_type, .. } => {
                for user in users.all() {
                    let raw_event = DataEvent::RawPayloadReceived {
                        user_id: user,
                        raw: job.raw.clone(),
                        mapping_version: p.mapping_version(),
                        received_at: Some(job.received_at),
                    };
                    writer::write_all(
                        &engine.pool,
                        Uuid::new_v4(),
                        user,
                        &actor,
                        vec![Out::Event(raw_event)],
                    )
                    .await
                    .map_err(WebhookFailure::Write)?;
                }
                // One pull for the account, by its primary; the engine fans what it brings out
                // to every linked user. It runs as a sync job under a run id derived from this
                // job: this job running again after a crash finds that run (and its job)
                // instead of starting a second pull and leaving the first `in_progress`.
                let sync = SyncRequest {
                    run_id: Uuid::new_v5(&job_id, b"webhook pull"),
                    user_id: users.primary,
                    provider: p.name().into(),
                    source: "webhook".into(),
                    start: Utc::now() - chrono::Duration::days(3),
                    end: Utc::now() + chrono::Duration::days(1),
                    data_types: vec![data_type.clone()],
                };
                let syncs = Syncs::new(engine.clone(), Jobs::new(engine.pool.clone()));
                if run_state(engine, sync.run_id).await? == RunState::Unknown {
                    engine.queue(&sync).await?;
                }
                syncs.enqueue(sync).await.map_err(|e| match e {
                    SyncsError::Sync(e) => WebhookFailure::Sync(e),
                    SyncsError::Jobs(e) => WebhookFailure::Job(e),
                    SyncsError::Pool(e) => WebhookFailure::Pool(e),
                    SyncsError::Db(e) => WebhookFailure::Db(e),
                })?;
            }
        }
        Ok(())
    }
}

/// Runs [`MAP_NOTICE`] jobs.
struct MapNoticeHandler(Webhooks);

#[async_trait]
impl JobHandler for MapNoticeHandler {
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure> {
        let notice: MapNotice =
            serde_json::from_value(job.payload.clone()).map_err(JobFailure::permanent)?;
        match self.0.map_notice(&notice, job.id).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_permanent() => Err(JobFailure::permanent(e)),
            Err(e) => Err(JobFailure::retry(e)),
        }
    }
}

impl WebhookFailure {
    /// Whether running the job again cannot help (the notice itself cannot be mapped).
    fn is_permanent(&self) -> bool {
        use SyncError as S;
        matches!(
            self,
            WebhookFailure::UnknownProvider(_)
                | WebhookFailure::Rejected(_)
                | WebhookFailure::Vanished(..)
                | WebhookFailure::Sync(
                    S::UnknownProvider(_)
                        | S::NoConnection(_)
                        | S::Map(_)
                        | S::Malformed(_)
                        | S::ForeignUrl
                        | S::RefreshFailed,
                )
        )
    }
}

/// The provider account a notice is addressed to.
fn account(n: &Notice) -> &str {
    match n {
        Notice::Pull {
            provider_user_id, ..
        }
        | Notice::Data {
            provider_user_id, ..
        }
        | Notice::Fetch {
            provider_user_id, ..
        }
        | Notice::Record {
            provider_user_id, ..
        }
        | Notice::Deregistered { provider_user_id }
        | Notice::ScopeChanged {
            provider_user_id, ..
        }
        | Notice::Deleted {
            provider_user_id, ..
        } => provider_user_id,
    }
}

/// What a notice means, as a key: two notices with the same key are one delivery sent twice,
/// and the second is dropped. `None`: never dropped (lifecycle notices, idempotent anyway, and
/// a user may deregister, reconnect and deregister again with identical bytes).
///
/// * pushed records: the provider's record ids (each with a digest of its content, so a
///   revised record under the same id is not taken for a resend) and the backfill request the
///   push answers, the latest one of that type for that account. The same records pushed again
///   for a new backfill (after a data deletion, or for a second linked user) are a new answer,
///   not a resend: bytes alone would drop them.
/// * a ping with a callback: the URL to fetch and the request it answers.
/// * a change notice (pull): the notice's fields, whatever their order or spacing.
/// * a provider delete: the record deleted.
pub async fn notice_key(
    pool: &deadpool_postgres::Pool,
    provider: &str,
    notice: &Notice,
    body: &Value,
) -> Result<Option<String>, WebhookFailure> {
    let parts: Vec<String> = match notice {
        Notice::Deregistered { .. } | Notice::ScopeChanged { .. } => return Ok(None),
        Notice::Data {
            provider_user_id,
            data_type,
            items,
        } => {
            let mut records: Vec<String> = match items {
                Value::Array(a) => a.iter().map(record_key).collect(),
                other => vec![record_key(other)],
            };
            records.sort();
            let answers = answered_request(pool, provider, provider_user_id, data_type).await?;
            vec![
                "data".into(),
                provider_user_id.clone(),
                data_type.clone(),
                answers.map(|u| u.to_string()).unwrap_or_default(),
                records.join(","),
            ]
        }
        Notice::Fetch {
            provider_user_id,
            data_type,
            url,
        } => {
            let answers = answered_request(pool, provider, provider_user_id, data_type).await?;
            vec![
                "fetch".into(),
                provider_user_id.clone(),
                data_type.clone(),
                answers.map(|u| u.to_string()).unwrap_or_default(),
                url.clone(),
            ]
        }
        Notice::Pull {
            provider_user_id,
            data_type,
        } => vec![
            "pull".into(),
            provider_user_id.clone(),
            data_type.clone(),
            canonical(body),
        ],
        // The event itself (its aspect and time), so a later update of the same record is
        // fetched again while a resent event is not.
        Notice::Record {
            provider_user_id,
            data_type,
            external_id,
        } => vec![
            "record".into(),
            provider_user_id.clone(),
            data_type.clone(),
            external_id.clone(),
            canonical(body),
        ],
        Notice::Deleted {
            provider_user_id,
            data_type,
            external_id,
        } => vec![
            "deleted".into(),
            provider_user_id.clone(),
            data_type.clone(),
            external_id.clone(),
        ],
    };
    let mut h = Sha256::new();
    for part in parts {
        // Length-prefixed, so no two part lists hash alike.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    Ok(Some(hex::encode(h.finalize())))
}

/// A pushed record as `id#digest`: the provider's id for it (Garmin's `summaryId`, else
/// `activityId` or `id`) and a digest of its content, keys in order.
fn record_key(item: &Value) -> String {
    let id = ["summaryId", "activityId", "id"]
        .iter()
        .find_map(|k| match item.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_default();
    let digest = hex::encode(Sha256::digest(canonical(item).as_bytes()));
    format!("{id}#{}", &digest[..16])
}

/// `v` as JSON text with every object's keys sorted: the same content gives the same text.
fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let ordered: BTreeMap<&String, Value> =
                    m.iter().map(|(k, x)| (k, sorted(x))).collect();
                Value::Object(ordered.into_iter().map(|(k, x)| (k.clone(), x)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// The latest backfill run (queued or started) that asked `provider` for `data_type` on
/// behalf of any user linked to `account`: the request a push of that type answers. Read
/// from the log, not a read model, so a push racing the run's own projection still sees it.
async fn answered_request(
    pool: &deadpool_postgres::Pool,
    provider: &str,
    account: &str,
    data_type: &str,
) -> Result<Option<Uuid>, WebhookFailure> {
    let row = pool
        .get()
        .await?
        .query_opt(
            "SELECT s.aggregate_id FROM events s \
             WHERE s.aggregate_type = 'SyncRun' AND s.event_type IN ('SyncRunQueued', 'SyncRunStarted') \
               AND s.payload->>'provider' = $1 AND s.payload->>'source' = 'backfill' \
               AND s.user_id IN (SELECT user_id FROM connections WHERE provider = $1 AND provider_user_id = $2) \
               AND NOT EXISTS (SELECT 1 FROM events q WHERE q.aggregate_type = 'SyncRun' \
                 AND q.aggregate_id = s.aggregate_id AND q.event_type = 'SyncRunQueued' \
                 AND q.payload ? 'data_types' AND NOT q.payload->'data_types' ? $3) \
             ORDER BY s.position DESC LIMIT 1",
            &[&provider, &account, &data_type],
        )
        .await?;
    Ok(row.and_then(|r| r.get::<_, String>(0).parse().ok()))
}

/// Refuses a push whose records carry absurd times (Garmin's `…TimeInSeconds` fields before
/// 2000 or days ahead), before anything is stored or mapped.
fn check_push_times(notices: &[Notice], now: DateTime<Utc>) -> Result<(), WebhookError> {
    fn walk(v: &Value, now: DateTime<Utc>) -> Result<(), WebhookError> {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    // Instants, not durations such as `activeTimeInSeconds`.
                    let instant = matches!(
                        k.as_str(),
                        "startTimeInSeconds" | "endTimeInSeconds" | "measurementTimeInSeconds"
                    ) || k.ends_with("StartTimeInSeconds")
                        || k.ends_with("EndTimeInSeconds");
                    if instant {
                        let ok = x
                            .as_i64()
                            .and_then(|t| DateTime::from_timestamp(t, 0))
                            .is_some_and(|t| crate::providers::mapped::plausible(t, now));
                        if !ok {
                            return Err(WebhookError::Payload(format!("{k} is out of range: {x}")));
                        }
                    } else {
                        walk(x, now)?;
                    }
                }
                Ok(())
            }
            Value::Array(a) => a.iter().try_for_each(|x| walk(x, now)),
            _ => Ok(()),
        }
    }
    for n in notices {
        if let Notice::Data { items, .. } = n {
            walk(items, now)?;
        }
    }
    Ok(())
}

fn url_pairs(q: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// The `SamplesDeleted` event for the samples mapped from a provider-deleted record, or `None`
/// when the provider maps none from that type or the record was never stored. The delete
/// notice names only the provider's id, so the samples' time comes from the record's own
/// mapped record (its score or sleep session), as stored by its read model.
async fn derived_samples_deleted(
    engine: &Engine,
    p: &dyn Provider,
    data_type: &str,
    external_id: &str,
    user: Uuid,
) -> Result<Option<DataEvent>, WebhookFailure> {
    let derived = p
        .as_push()
        .and_then(|push| push.as_deletes())
        .and_then(|d| d.deleted_samples(data_type, external_id, user));
    let Some(derived) = derived else {
        return Ok(None);
    };
    let series_types: Vec<i16> = derived
        .series
        .iter()
        .filter_map(|c| wearhouse_domain::series::by_code(c).map(|t| t.id))
        .collect();
    if let SampleAnchor::WorkoutSpan(id) = derived.at {
        // The instants the workout's samples were stored at, read from the timeseries read
        // model over the workout's span (its row stays, flagged deleted).
        let client = engine.pool.get().await?;
        let rows = client
            .query(
                "SELECT DISTINCT s.time FROM samples s JOIN workouts w \
                   ON w.id = $1 AND w.user_id = $2 \
                 WHERE s.user_id = $2 AND s.data_source_id = $3 AND s.series_type = ANY($4) \
                   AND s.time >= w.start_time AND s.time <= w.end_time ORDER BY 1",
                &[&id, &user, &derived.data_source_id, &series_types],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        return Ok(Some(DataEvent::SamplesDeleted {
            user_id: user,
            data_source_id: derived.data_source_id,
            series_types,
            times: rows.iter().map(|r| r.get(0)).collect(),
        }));
    }
    let (sql, id) = match derived.at {
        SampleAnchor::ScoreTime(id) => (
            "SELECT recorded_at FROM health_scores WHERE id = $1 AND user_id = $2",
            id,
        ),
        SampleAnchor::SleepStart(id) => (
            "SELECT start_time FROM sleep_sessions WHERE id = $1 AND user_id = $2",
            id,
        ),
        SampleAnchor::WorkoutSpan(_) => return Ok(None),
    };
    let Some(row) = engine
        .pool
        .get()
        .await?
        .query_opt(sql, &[&id, &user])
        .await?
    else {
        return Ok(None);
    };
    let at: DateTime<Utc> = row.get(0);
    Ok(Some(DataEvent::SamplesDeleted {
        user_id: user,
        data_source_id: derived.data_source_id,
        series_types,
        times: vec![at],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_keyed_by_id_and_content_not_layout() {
        let a = json!({"summaryId": "d-1", "steps": 7100, "calendarDate": "2026-01-01"});
        let b: Value = serde_json::from_str(
            r#"{ "calendarDate":"2026-01-01","steps":7100,"summaryId":"d-1" }"#,
        )
        .unwrap();
        assert_eq!(record_key(&a), record_key(&b));
        assert!(record_key(&a).starts_with("d-1#"));
        let revised = json!({"summaryId": "d-1", "steps": 7200, "calendarDate": "2026-01-01"});
        assert_ne!(record_key(&a), record_key(&revised));
    }
}
