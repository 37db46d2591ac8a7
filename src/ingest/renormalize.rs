//! `wearhouse renormalize`: runs the current mappers over stored raw payloads and appends the
//! corrected data events. The bytes come back from `raw_payloads` exactly as received; the
//! mapping is the import's own (`import::normalize`), so a fixed mapper fixes old data the same
//! way it handles new uploads. Re-running is harmless: every read model keys its rows on
//! stable ids (sample time per source and series, record ids), so repeated events overwrite
//! rows with equal values.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;
use wearhouse_domain::import::ImportCounts;

use super::import::{self, ImportRequest, PipelineError, Progress};
use super::raw;
use crate::store::Actor;

#[derive(Debug, thiserror::Error)]
pub enum RenormalizeError {
    #[error("no mapper for provider {0:?} (known: apple)")]
    UnknownProvider(String),
    #[error("{0}")]
    Pipeline(#[from] PipelineError),
    #[error("{0}")]
    Raw(#[from] raw::RawError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("restoring the payload: {0}")]
    Io(#[from] std::io::Error),
}

/// One payload that was run through the mapper again.
#[derive(Debug, Clone)]
pub struct Renormalized {
    pub user_id: Uuid,
    pub sha256: String,
    /// The stream the corrected events were appended to.
    pub stream_id: Uuid,
    pub counts: ImportCounts,
}

/// Re-maps every export of `provider` (not its SDK batches: another mapper reads those)
/// received (per the log's `RawPayloadReceived`) at or after `since`, once per user and
/// payload, restoring it to a file under `work_dir` first. The entries appended name `actor`,
/// whoever ran it.
pub async fn run(
    pool: &Pool,
    provider: &str,
    since: DateTime<Utc>,
    work_dir: &std::path::Path,
    actor: &Actor,
) -> Result<Vec<Renormalized>, RenormalizeError> {
    if provider != import::PROVIDER {
        return Err(RenormalizeError::UnknownProvider(provider.into()));
    }
    let payloads = pool
        .get()
        .await?
        .query(
            "SELECT user_id, sha256 FROM ( \
               SELECT user_id, payload->'raw'->>'sha256' AS sha256, min(position) AS first \
                 FROM events \
                WHERE event_type = 'RawPayloadReceived' AND payload->'raw'->>'provider' = $1 \
                  AND payload->'raw'->>'kind' = 'apple_health_export' \
                  AND recorded_at >= $2 AND user_id IS NOT NULL \
                GROUP BY 1, 2) p \
             ORDER BY first",
            &[&provider, &since],
        )
        .await?;
    std::fs::create_dir_all(work_dir)?;
    let mut done = Vec::with_capacity(payloads.len());
    for row in payloads {
        let (user_id, sha256): (Uuid, String) = (row.get(0), row.get(1));
        let path = work_dir.join(format!("renormalize-{sha256}"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        raw::write_to(pool, &sha256, &mut file).await?;
        file.into_inner().map_err(|e| e.into_error())?;
        let stream_id = Uuid::new_v4();
        let req = ImportRequest {
            import_id: stream_id,
            user_id,
            path: path.clone(),
            filename: None,
            sha256: Some(sha256.clone()),
            actor: actor.clone(),
            limits: Default::default(),
        };
        let result = import::normalize(pool, &req, Arc::new(Progress::default())).await;
        let _ = std::fs::remove_file(&path);
        let counts = result?;
        tracing::info!(%user_id, sha256, %stream_id, samples = counts.samples, "renormalized");
        done.push(Renormalized {
            user_id,
            sha256,
            stream_id,
            counts,
        });
    }
    Ok(done)
}
