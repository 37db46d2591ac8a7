//! Imports: accepting an uploaded export as a durable job, answering whether one is still
//! pending, and clearing uploads no job will read.

use std::path::PathBuf;

use tracing::info;
use uuid::Uuid;

use crate::ingest::import::ImportRequest;
use crate::ingest::queue::{ImportJobPayload, KIND};
use crate::jobs::{JobError, Jobs};
use crate::store::Actor;

#[derive(Debug, thiserror::Error)]
pub enum ImportsError {
    #[error("recording the import job: {0}")]
    Jobs(#[from] JobError),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", wearhouse_projections::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// An upload received in full: where it is spooled, its SHA-256, its original name.
pub struct Upload {
    pub path: PathBuf,
    pub sha256: String,
    pub filename: Option<String>,
}

#[derive(Clone)]
pub struct Imports {
    pool: deadpool_postgres::Pool,
    jobs: Jobs,
    /// Where uploads are spooled until their import job ends.
    pub uploads: PathBuf,
    limits: crate::ingest::apple::Limits,
}

impl Imports {
    pub fn new(
        pool: deadpool_postgres::Pool,
        jobs: Jobs,
        uploads: PathBuf,
        limits: crate::ingest::apple::Limits,
    ) -> Self {
        Imports {
            pool,
            jobs,
            uploads,
            limits,
        }
    }

    /// Records the import of `upload` as a job (keyed by the import id, so a repeated call is
    /// one import). The file is removed if the job cannot be recorded.
    pub async fn accept(
        &self,
        import_id: Uuid,
        user_id: Uuid,
        upload: Upload,
        actor: Actor,
    ) -> Result<(), ImportsError> {
        let req = ImportRequest {
            import_id,
            user_id,
            path: upload.path,
            filename: upload.filename,
            sha256: Some(upload.sha256),
            actor,
            limits: self.limits,
        };
        let payload =
            serde_json::to_value(ImportJobPayload::new(&req)).expect("import payloads serialize");
        if let Err(e) = self
            .jobs
            .enqueue(KIND, Some(&import_id.to_string()), payload)
            .await
        {
            let _ = tokio::fs::remove_file(&req.path).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Whether import `id` was accepted and its job has not ended (it may not be recorded in
    /// the log yet while its bytes are being stored).
    pub async fn is_pending(&self, id: Uuid) -> Result<bool, ImportsError> {
        Ok(self
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM jobs WHERE kind = $1 AND key = $2 AND state IN ('pending', 'running')",
                &[&KIND, &id.to_string()],
            )
            .await?
            .is_some())
    }

    /// Removes uploads no pending or running import job will read: left by a process that
    /// stopped mid-upload (they hold health data). Uploads are per process home: WEARHOUSE_HOME
    /// is not shared between `serve` processes.
    pub async fn sweep_uploads(&self) -> Result<usize, ImportsError> {
        let Ok(entries) = std::fs::read_dir(&self.uploads) else {
            return Ok(0);
        };
        let keep: std::collections::HashSet<PathBuf> = self
            .pool
            .get()
            .await?
            .query(
                "SELECT payload->>'path' FROM jobs WHERE kind = $1 AND state IN ('pending', 'running')",
                &[&KIND],
            )
            .await?
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0).map(PathBuf::from))
            .collect();
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "upload")
                && !keep.contains(&path)
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
        if removed > 0 {
            info!(removed, "left-over uploads removed");
        }
        Ok(removed)
    }
}
