//! The `sync_runs` read model: the latest state of every pull, push, backfill and import.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use uuid::Uuid;
use wearhouse_domain::sync_run::{Outcome, Stage, SyncRunEvent};

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct SyncRuns;

#[async_trait]
impl Projection for SyncRuns {
    fn name(&self) -> &'static str {
        "sync_runs"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "SyncRunQueued",
            "SyncRunStarted",
            "SyncRunProgressed",
            "SyncRunCompleted",
            "SyncRunFailed",
            "SyncRunCancelled",
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["sync_runs"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE sync_runs").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| e.aggregate_type == "SyncRun") {
            let id: Uuid = entry.aggregate_id.parse().unwrap_or_default();
            match decode::<SyncRunEvent>(entry)? {
                SyncRunEvent::SyncRunQueued {
                    user_id,
                    provider,
                    source,
                    at,
                    ..
                } => {
                    tx.execute(
                        "INSERT INTO sync_runs (id, user_id, provider, source, stage, status, started_at, updated_at) \
                         VALUES ($1, $2, $3, $4, 'queued', 'in_progress', $5, $5) ON CONFLICT (id) DO NOTHING",
                        &[&id, &user_id, &provider, &source, &at],
                    )
                    .await?;
                }
                SyncRunEvent::SyncRunStarted {
                    user_id,
                    provider,
                    source,
                    primary_user_id,
                    at,
                    ..
                } => {
                    tx.execute(
                        "INSERT INTO sync_runs (id, user_id, provider, source, stage, status, started_at, updated_at, primary_user_id) \
                         VALUES ($1, $2, $3, $4, 'started', 'in_progress', $5, $5, $6) \
                         ON CONFLICT (id) DO UPDATE SET stage = 'started', updated_at = EXCLUDED.updated_at, \
                           primary_user_id = EXCLUDED.primary_user_id",
                        &[&id, &user_id, &provider, &source, &at, &primary_user_id],
                    )
                    .await?;
                }
                SyncRunEvent::SyncRunProgressed {
                    processed,
                    message,
                    at,
                    stage,
                    total,
                } => {
                    let stage = stage.unwrap_or(Stage::Processing).as_str();
                    let total = total.map(|t| t as i64);
                    tx.execute(
                        "UPDATE sync_runs SET stage = $5, processed = $2, message = coalesce($3, message), \
                           items_total = coalesce($6, items_total), updated_at = $4 WHERE id = $1",
                        &[&id, &(processed as i64), &message, &at, &stage, &total],
                    )
                    .await?;
                }
                SyncRunEvent::SyncRunCompleted {
                    processed,
                    at,
                    outcome,
                    error,
                    ..
                } => {
                    let status = outcome.unwrap_or(Outcome::Success).as_str();
                    tx.execute(
                        "UPDATE sync_runs SET stage = 'completed', status = $4, processed = $2, ended_at = $3, \
                           error = coalesce($5, error), updated_at = $3 WHERE id = $1",
                        &[&id, &(processed as i64), &at, &status, &error],
                    )
                    .await?;
                }
                SyncRunEvent::SyncRunCancelled { message, at } => {
                    tx.execute(
                        "UPDATE sync_runs SET stage = 'cancelled', status = 'cancelled', message = coalesce($2, message), \
                           ended_at = $3, updated_at = $3 WHERE id = $1",
                        &[&id, &message, &at],
                    )
                    .await?;
                }
                SyncRunEvent::SyncRunFailed { error, at } => {
                    tx.execute(
                        "UPDATE sync_runs SET stage = 'failed', status = 'failed', error = $2, ended_at = $3, \
                           updated_at = $3 WHERE id = $1",
                        &[&id, &error, &at],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
