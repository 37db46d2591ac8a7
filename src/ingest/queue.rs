//! Uploaded imports as durable jobs (kind [`KIND`]): the upload handler enqueues one per
//! import, and whichever `serve` claims it runs the pipeline. The uploaded file stays until the
//! job ends, so a job resumed after a crash still has its bytes; the pipeline skips the steps
//! the log shows were done, so a re-run counts nothing twice.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tracing::info;
use uuid::Uuid;

use super::apple::Limits;
use super::import::{self, ImportRequest, Outcome, Progress};
use crate::jobs::{JobContext, JobFailure, JobHandler};
use crate::store::{Actor, Commands};

pub const KIND: &str = "apple_import";

/// What an import job carries: the request, with its actor in plain strings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportJobPayload {
    pub import_id: Uuid,
    pub user_id: Uuid,
    pub path: PathBuf,
    pub filename: Option<String>,
    pub sha256: Option<String>,
    pub actor_kind: String,
    pub actor_id: String,
    pub request_id: Option<String>,
}

/// The actor kinds that start imports (an actor's kind is a static label).
fn actor_kind(kind: &str) -> &'static str {
    match kind {
        "developer" => "developer",
        "api_key" => "api_key",
        "upload_url" => "upload_url",
        "cli" => "cli",
        "system" => "system",
        _ => "job",
    }
}

impl ImportJobPayload {
    pub fn new(req: &ImportRequest) -> Self {
        ImportJobPayload {
            import_id: req.import_id,
            user_id: req.user_id,
            path: req.path.clone(),
            filename: req.filename.clone(),
            sha256: req.sha256.clone(),
            actor_kind: req.actor.kind.to_string(),
            actor_id: req.actor.id.clone(),
            request_id: req.actor.request_id.clone(),
        }
    }

    fn request(self, limits: Limits) -> ImportRequest {
        ImportRequest {
            import_id: self.import_id,
            user_id: self.user_id,
            path: self.path,
            filename: self.filename,
            sha256: self.sha256,
            actor: Actor {
                kind: actor_kind(&self.actor_kind),
                id: self.actor_id,
                request_id: self.request_id,
            },
            limits,
        }
    }
}

/// Runs one uploaded import.
pub struct ImportJob {
    pub commands: Commands,
    pub limits: Limits,
    /// This process's uploads directory (where bytes restored from the raw store go).
    pub uploads: PathBuf,
}

impl ImportJob {
    /// The upload is not on this machine (another `serve`, with its own WEARHOUSE_HOME,
    /// received it): once its bytes are in the raw store they are written back here.
    async fn restore(&self, payload: &ImportJobPayload) -> Result<Option<PathBuf>, JobFailure> {
        let Some(sha256) = &payload.sha256 else {
            return Ok(None);
        };
        let path = self
            .uploads
            .join(format!("{}.restored.upload", payload.import_id));
        std::fs::create_dir_all(&self.uploads).map_err(JobFailure::retry)?;
        let mut out = std::fs::File::create(&path).map_err(JobFailure::retry)?;
        match super::raw::write_to(&self.commands.pool, sha256, &mut out).await {
            Ok(_) => Ok(Some(path)),
            Err(super::raw::RawError::NotFound(_)) => {
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(JobFailure::retry(e))
            }
        }
    }
}

#[async_trait]
impl JobHandler for ImportJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure> {
        let mut payload: ImportJobPayload =
            serde_json::from_value(job.payload.clone()).map_err(JobFailure::permanent)?;
        if !payload.path.exists() {
            match self.restore(&payload).await? {
                Some(restored) => payload.path = restored,
                // Maybe still on the disk of the process that received it: that one may claim
                // the job next.
                None => {
                    return Err(JobFailure::retry(anyhow::anyhow!(
                        "the upload {} is not on this server and not yet in the raw store",
                        payload.path.display()
                    )))
                }
            }
        }
        let req = payload.request(self.limits);
        let (id, path) = (req.import_id, req.path.clone());
        let result = import::run(
            &self.commands.pool,
            &self.commands,
            req,
            Arc::new(Progress::default()),
        )
        .await;
        match result {
            Ok(outcome) => {
                match outcome {
                    Outcome::Completed { counts, .. } => {
                        info!(import = %id, records = counts.records, "import completed")
                    }
                    Outcome::Failed { error } => info!(import = %id, %error, "import failed"),
                    Outcome::AlreadyEnded => info!(import = %id, "import had already ended"),
                }
                let _ = tokio::fs::remove_file(&path).await;
                Ok(())
            }
            Err(e) => {
                // Kept for the next attempt; after the last one the bytes are in the raw store
                // (or never arrived) and the upload, health data, goes.
                if job.is_last_attempt() {
                    let _ = tokio::fs::remove_file(&path).await;
                }
                Err(JobFailure::retry(e))
            }
        }
    }
}
