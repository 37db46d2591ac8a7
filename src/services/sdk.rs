//! Mobile SDK uploads. A sync batch's envelope is checked, its bytes are stored raw, and a
//! durable job ([`KIND`]) is recorded before the SDK gets its 202; the job maps the stored
//! bytes (`ingest::sdk`), assembles sleep with what the log already holds for the user, and
//! appends everything through the shared data writer under one sync run (source `sdk`).
//! Running the job again changes nothing: record ids derive from the data.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;
use uuid::Uuid;
use wearhouse_domain::import::RawPayloadRef;
use wearhouse_domain::records::{DataEvent, RecordKind, SleepSessionRecord};
use wearhouse_domain::sync_run::{Metadata, Outcome, SyncRun, SyncRunCommand};
use wearhouse_log::writer::{self, Out};
use wearhouse_projections::pglock::{LockKey, SessionLock};

use crate::ingest::raw::{self, RawError, RawMeta};
use crate::ingest::sdk::{self, envelope, EnvelopeError, Platform};
use crate::jobs::{JobContext, JobError, JobFailure, JobHandler, Jobs};
use crate::store::{Actor, Commands};

/// The job kind that maps one stored sync batch.
pub const KIND: &str = "sdk_sync";
/// The sync runs' source, as upstream.
pub const SOURCE: &str = "sdk";

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The batch as a whole is refused (not JSON, wrong top-level shape).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// A log upload that is not the contract's `SDKLogRequest`.
    #[error("{0}")]
    Logs(String),
    #[error("storing the upload's bytes")]
    Raw(#[source] RawError),
    #[error("recording the sync job")]
    Job(#[from] JobError),
    #[error("database")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database")]
    Db(#[from] tokio_postgres::Error),
    #[error("writing the batch's records")]
    Write(#[source] wearhouse_log::writer::WriteError),
    #[error("recording the sync run: {0}")]
    Run(String),
    #[error("reading sleep sessions back from the log")]
    Decode(#[source] serde_json::Error),
    #[error("encoding samples")]
    Arrow(#[source] arrow_schema::ArrowError),
}

impl SdkError {
    /// Whether running the job again cannot help.
    fn is_permanent(&self) -> bool {
        matches!(self, SdkError::Envelope(_) | SdkError::Decode(_))
    }
}

/// What an SDK sync job carries: the stored bytes it maps and the run it reports on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncJob {
    pub run_id: Uuid,
    pub user_id: Uuid,
    pub platform: Platform,
    pub raw: RawPayloadRef,
    pub received_at: DateTime<Utc>,
    /// Who sent the batch: the actor of everything the job appends (absent in jobs queued
    /// before it was kept: `sdk`).
    #[serde(default)]
    pub caller: JobActor,
}

/// An actor as a job keeps it (`Actor` borrows its kind).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobActor {
    pub kind: String,
    pub id: String,
    pub request_id: Option<String>,
}

impl JobActor {
    fn of(a: &Actor) -> JobActor {
        JobActor {
            kind: a.kind.to_string(),
            id: a.id.clone(),
            request_id: a.request_id.clone(),
        }
    }

    fn actor(&self) -> Actor {
        Actor {
            // The callers of the SDK routes (see `SdkCaller::actor`).
            kind: match self.kind.as_str() {
                "sdk_user" => "sdk_user",
                "api_key" => "api_key",
                _ => "sdk",
            },
            id: self.id.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

/// What a finished sync did (recorded as the run's metadata).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SyncResult {
    pub records_saved: u64,
    pub workouts_saved: u64,
    pub sleep_saved: u64,
    pub sleep_sessions: u64,
    pub dropped_count: u64,
    pub dropped: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone)]
pub struct Sdk {
    pool: Pool,
    commands: Commands,
    jobs: Jobs,
}

impl Sdk {
    pub fn new(pool: Pool, commands: Commands, jobs: Jobs) -> Sdk {
        Sdk {
            pool,
            commands,
            jobs,
        }
    }

    /// The job handler that maps accepted batches (registered with the job runner).
    pub fn handler(&self) -> Arc<dyn JobHandler> {
        Arc::new(SyncHandler(self.clone()))
    }

    /// Checks a batch's envelope, stores its bytes and records its job; returns the run id.
    /// A refused envelope writes nothing.
    pub async fn accept(
        &self,
        user_id: Uuid,
        body: &[u8],
        caller: &Actor,
    ) -> Result<Uuid, SdkError> {
        let platform = envelope::parse(body)?.platform;
        let meta = RawMeta {
            provider: platform.name(),
            kind: "sdk_sync",
            content_type: "application/json",
            user_id: Some(user_id),
        };
        let raw = raw::store_bytes(&self.pool, body, meta)
            .await
            .map_err(SdkError::Raw)?;
        let run_id = Uuid::new_v4();
        let job = SyncJob {
            run_id,
            user_id,
            platform,
            raw,
            received_at: Utc::now(),
            caller: JobActor::of(caller),
        };
        let payload = serde_json::to_value(&job).expect("SDK jobs serialize");
        self.jobs
            .enqueue(KIND, Some(&run_id.to_string()), payload)
            .await?;
        Ok(run_id)
    }

    /// Checks an SDK log upload (`SDKLogRequest`), stores its bytes and records that they
    /// arrived. Nothing is mapped: the logs are kept as evidence, as upstream.
    pub async fn accept_logs(
        &self,
        user_id: Uuid,
        body: &[u8],
        caller: &Actor,
    ) -> Result<(), SdkError> {
        let json: Value =
            serde_json::from_slice(body).map_err(|_| SdkError::Envelope(EnvelopeError::NotJson))?;
        check_logs(&json).map_err(SdkError::Logs)?;
        let provider = json
            .get("provider")
            .and_then(Value::as_str)
            .and_then(Platform::parse)
            .map_or("unknown", Platform::name);
        let meta = RawMeta {
            provider,
            kind: "sdk_logs",
            content_type: "application/json",
            user_id: Some(user_id),
        };
        let raw = raw::store_bytes(&self.pool, body, meta)
            .await
            .map_err(SdkError::Raw)?;
        let event = DataEvent::RawPayloadReceived {
            user_id,
            raw,
            mapping_version: sdk::MAPPING_VERSION,
            received_at: Some(Utc::now()),
        };
        writer::write_all(
            &self.pool,
            Uuid::new_v4(),
            user_id,
            caller,
            vec![Out::Event(event)],
        )
        .await
        .map_err(SdkError::Write)?;
        Ok(())
    }

    async fn run_cmd(&self, job: &SyncJob, cmd: SyncRunCommand) -> Result<(), SdkError> {
        self.commands
            .execute::<SyncRun>(
                &job.run_id.to_string(),
                cmd,
                &job.caller.actor(),
                Some(job.user_id),
                None,
            )
            .await
            .map_err(|e| SdkError::Run(e.to_string()))
    }

    /// Event types of the run so far.
    async fn run_events(&self, run: Uuid) -> Result<Vec<String>, SdkError> {
        Ok(self
            .pool
            .get()
            .await?
            .query(
                "SELECT event_type FROM events WHERE aggregate_type = 'SyncRun' AND aggregate_id = $1",
                &[&run.to_string()],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Maps one stored batch under its sync run. Safe to run again after a crash.
    pub async fn process(&self, job: &SyncJob) -> Result<Option<SyncResult>, SdkError> {
        let events = self.run_events(job.run_id).await?;
        if events.iter().any(|t| {
            matches!(
                t.as_str(),
                "SyncRunCompleted" | "SyncRunFailed" | "SyncRunCancelled"
            )
        }) {
            return Ok(None);
        }
        if events.is_empty() {
            let start = SyncRunCommand::Start {
                id: job.run_id,
                user_id: job.user_id,
                provider: job.platform.name().into(),
                source: SOURCE.into(),
                primary_user_id: None,
                at: Utc::now(),
            };
            self.run_cmd(job, start).await?;
        }
        match self.map_and_write(job).await {
            Ok(result) => {
                let mut metadata = Metadata::new();
                if let Value::Object(m) = serde_json::to_value(&result).unwrap_or_default() {
                    metadata.extend(m);
                }
                let (outcome, error) = if result.dropped_count > 0 {
                    (
                        Outcome::Partial,
                        Some(format!("{} invalid records dropped", result.dropped_count)),
                    )
                } else {
                    (Outcome::Success, None)
                };
                let processed = result.records_saved + result.workouts_saved + result.sleep_saved;
                let finish = SyncRunCommand::Finish {
                    outcome,
                    processed,
                    error,
                    metadata,
                    at: Utc::now(),
                };
                self.run_cmd(job, finish).await?;
                info!(run = %job.run_id, user = %job.user_id, records = processed, dropped = result.dropped_count, "SDK sync mapped");
                Ok(Some(result))
            }
            Err(e) if e.is_permanent() => {
                let fail = SyncRunCommand::Fail {
                    error: e.to_string(),
                    at: Utc::now(),
                };
                let _ = self.run_cmd(job, fail).await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn map_and_write(&self, job: &SyncJob) -> Result<SyncResult, SdkError> {
        let mut bytes = Vec::with_capacity(job.raw.size.max(0) as usize);
        raw::write_to(&self.pool, &job.raw.sha256, &mut bytes)
            .await
            .map_err(SdkError::Raw)?;
        let env = envelope::parse(&bytes)?;
        let mut batch = sdk::map_batch(job.user_id, &env, Utc::now());
        drop(env);
        drop(bytes);
        let mut result = SyncResult {
            records_saved: batch.records_saved,
            workouts_saved: batch.workouts_saved,
            sleep_saved: batch.sleep_saved,
            sleep_sessions: 0,
            dropped_count: batch.dropped.count,
            dropped: std::mem::take(&mut batch.dropped.reasons),
        };
        let raw_event = Out::Event(DataEvent::RawPayloadReceived {
            user_id: job.user_id,
            raw: job.raw.clone(),
            mapping_version: sdk::MAPPING_VERSION,
            received_at: Some(job.received_at),
        });
        let actor = job.caller.actor();
        if batch.sleep.is_empty() {
            let mut out = vec![raw_event];
            out.extend(
                std::mem::take(&mut batch.mapped)
                    .into_out(job.user_id)
                    .map_err(SdkError::Arrow)?,
            );
            writer::write_all(&self.pool, job.run_id, job.user_id, &actor, out)
                .await
                .map_err(SdkError::Write)?;
            return Ok(result);
        }
        // Sleep of one user is assembled by one job at a time: what a job reads back from the
        // log must include what the previous one wrote. The lock holds until the write ends.
        let key = LockKey::Name(format!("sdk-sleep:{}", job.user_id));
        let lock = SessionLock::acquire(self.pool.get().await?, key).await?;
        let written = async {
            let prior = self.recorded_sleep(job.user_id).await?;
            let mut deleted = Vec::new();
            for (ds, intervals) in std::mem::take(&mut batch.sleep) {
                let assembled = sdk::sleep::assemble(ds, &prior, &intervals);
                result.sleep_sessions += assembled.sessions.len() as u64;
                batch.mapped.sleep.extend(assembled.sessions);
                deleted.extend(assembled.replaced);
            }
            let mut out = vec![raw_event];
            out.extend(
                std::mem::take(&mut batch.mapped)
                    .into_out(job.user_id)
                    .map_err(SdkError::Arrow)?,
            );
            out.extend(deleted.into_iter().map(|record_id| {
                Out::Event(DataEvent::RecordDeleted {
                    user_id: job.user_id,
                    kind: RecordKind::Sleep,
                    record_id,
                })
            }));
            writer::write_all(&self.pool, job.run_id, job.user_id, &actor, out)
                .await
                .map_err(SdkError::Write)?;
            Ok::<(), SdkError>(())
        }
        .await;
        let _ = lock.release().await;
        written?;
        Ok(result)
    }

    /// The user's SDK sleep sessions as the log has them now: each session's latest version,
    /// without those a later sync merged into another.
    async fn recorded_sleep(&self, user: Uuid) -> Result<Vec<SleepSessionRecord>, SdkError> {
        let rows = self
            .pool
            .get()
            .await?
            // Only what SDK syncs wrote: the data streams of the user's SDK sync runs.
            .query(
                "SELECT payload FROM events WHERE user_id = $1 \
                 AND event_type IN ('SleepSessionsRecorded', 'RecordDeleted') \
                 AND aggregate_type = $2 AND aggregate_id IN ( \
                   SELECT aggregate_id FROM events WHERE user_id = $1 \
                      AND aggregate_type = 'SyncRun' AND event_type = 'SyncRunStarted' \
                      AND payload->>'source' = $3) \
                 ORDER BY position",
                &[&user, &DataEvent::AGGREGATE_TYPE, &SOURCE],
            )
            .await?;
        let mut sessions: HashMap<Uuid, SleepSessionRecord> = HashMap::new();
        for row in rows {
            let payload: Value = row.get(0);
            match serde_json::from_value(payload).map_err(SdkError::Decode)? {
                DataEvent::SleepSessionsRecorded { sessions: s, .. } => {
                    sessions.extend(s.into_iter().map(|s| (s.id, s)));
                }
                DataEvent::RecordDeleted {
                    kind: RecordKind::Sleep,
                    record_id,
                    ..
                } => {
                    sessions.remove(&record_id);
                }
                _ => {}
            }
        }
        Ok(sessions.into_values().collect())
    }
}

/// The contract's `SDKLogRequest`: `sdkVersion`, optional `provider`, 1–100 `events` each
/// with a known `eventType`.
fn check_logs(v: &Value) -> Result<(), String> {
    let obj = v.as_object().ok_or("Request body must be a JSON object")?;
    if !obj.get("sdkVersion").is_some_and(Value::is_string) {
        return Err("Field 'sdkVersion' is required and must be a string".into());
    }
    if obj
        .get("provider")
        .is_some_and(|p| !p.is_null() && !p.is_string())
    {
        return Err("Field 'provider' must be a string".into());
    }
    let events = obj
        .get("events")
        .and_then(Value::as_array)
        .ok_or("Field 'events' is required and must be an array")?;
    if events.is_empty() || events.len() > 100 {
        return Err("Field 'events' must hold 1 to 100 events".into());
    }
    for (i, e) in events.iter().enumerate() {
        let kind = e.get("eventType").and_then(Value::as_str);
        if !matches!(
            kind,
            Some("historical_data_sync_start")
                | Some("historical_data_type_sync_end")
                | Some("device_state")
        ) {
            return Err(format!(
                "events[{i}].eventType must be one of historical_data_sync_start, historical_data_type_sync_end, device_state"
            ));
        }
        if !e.get("timestamp").is_some_and(Value::is_string) {
            return Err(format!("events[{i}].timestamp is required"));
        }
    }
    Ok(())
}

/// Runs [`KIND`] jobs.
struct SyncHandler(Sdk);

#[async_trait]
impl JobHandler for SyncHandler {
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure> {
        let sync: SyncJob =
            serde_json::from_value(job.payload.clone()).map_err(JobFailure::permanent)?;
        match self.0.process(&sync).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(JobFailure::permanent(e)),
            Err(e) => {
                if job.is_last_attempt() {
                    let fail = SyncRunCommand::Fail {
                        error: e.to_string(),
                        at: Utc::now(),
                    };
                    let _ = self.0.run_cmd(&sync, fail).await;
                }
                Err(JobFailure::retry(e))
            }
        }
    }
}
