//! Mobile SDK uploads. A sync batch's envelope is checked, and its bytes and a durable job
//! ([`KIND`]) are stored in one transaction before the SDK gets its 202. The job runner hands
//! the pending jobs over several at a time ([`batch`]): their stored bytes are mapped
//! (`ingest::sdk`), sleep is assembled with what the log already holds for each user, and
//! everything the jobs produce (their sync runs, source `sdk`, included) is written in one
//! transaction. Running a job again changes nothing: record ids derive from the data, and a
//! run already finished is skipped.

mod batch;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::import::RawPayloadRef;
use wearhouse_domain::records::DataEvent;
use wearhouse_log::writer::{self, Out};

use crate::ingest::raw::{self, RawError, RawMeta};
use crate::ingest::sdk::{self, envelope, EnvelopeError, Platform};
use crate::jobs::{BatchHandler, JobContext, JobError, JobFailure, Jobs};
use crate::store::Actor;

/// The job kind that maps one stored sync batch.
pub const KIND: &str = "sdk_sync";
/// The sync runs' source, as upstream.
pub const SOURCE: &str = "sdk";
/// Jobs mapped and written together by one run of the handler (~1,000 records each).
pub const MAX_BATCH: usize = 32;
/// Runs of the handler at once: one maps while another writes.
pub const RUNS: usize = 2;

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
    #[error("reading sleep sessions back")]
    Decode(#[source] serde_json::Error),
    #[error("encoding samples")]
    Arrow(#[source] arrow_schema::ArrowError),
    #[error("a mapping task stopped")]
    Task(#[from] tokio::task::JoinError),
    /// Writing the jobs mapped together failed: each of them is retried.
    #[error("writing a batch of SDK syncs")]
    Batch(#[source] Arc<SdkError>),
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
}

impl Sdk {
    pub fn new(pool: Pool) -> Sdk {
        Sdk { pool }
    }

    /// The batch handler that maps accepted batches (registered with the job runner).
    pub fn handler(&self) -> Arc<dyn BatchHandler> {
        Arc::new(SyncHandler(self.clone()))
    }

    /// Checks a batch's envelope, then stores its bytes and records its job in one
    /// transaction; returns the run id. A refused envelope writes nothing.
    pub async fn accept(
        &self,
        user_id: Uuid,
        body: Vec<u8>,
        caller: &Actor,
    ) -> Result<Uuid, SdkError> {
        // Parsing, hashing and compressing a batch is CPU work: off the request threads.
        let (platform, prepared) = tokio::task::spawn_blocking(move || {
            let platform = envelope::parse(&body)?.platform;
            let prepared = raw::prepare(&body).map_err(SdkError::Raw)?;
            Ok::<_, SdkError>((platform, prepared))
        })
        .await??;
        let meta = RawMeta {
            provider: platform.name(),
            kind: "sdk_sync",
            content_type: "application/json",
            user_id: Some(user_id),
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let raw = raw::store_prepared(&*tx, &prepared, meta)
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
        Jobs::enqueue_in(&tx, KIND, Some(&run_id.to_string()), payload).await?;
        tx.commit().await?;
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

/// Runs [`KIND`] jobs, several at a time.
struct SyncHandler(Sdk);

#[async_trait]
impl BatchHandler for SyncHandler {
    async fn run_batch(&self, jobs: &[JobContext]) -> Vec<Result<(), JobFailure>> {
        let mut outcomes: Vec<Option<Result<(), JobFailure>>> = Vec::with_capacity(jobs.len());
        let mut work = Vec::new();
        for (i, ctx) in jobs.iter().enumerate() {
            match serde_json::from_value::<SyncJob>(ctx.payload.clone()) {
                Ok(job) => {
                    outcomes.push(None);
                    work.push(batch::Work {
                        index: i,
                        job,
                        origin: ctx.origin.clone(),
                        last_attempt: ctx.is_last_attempt(),
                    });
                }
                Err(e) => outcomes.push(Some(Err(JobFailure::permanent(e)))),
            }
        }
        for (index, result) in self.0.process_batch(work).await {
            outcomes[index] = Some(match result {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(JobFailure::permanent(e)),
                Err(e) => Err(JobFailure::retry(e)),
            });
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(JobFailure::retry(anyhow::anyhow!("not processed")))))
            .collect()
    }
}
