//! The `health_scores` read model's provider rows: scores as a provider computed them (Whoop
//! recovery, sleep performance and strain; Oura readiness, sleep and activity; Garmin sleep,
//! stress and body battery), stored as received (reference §7.3). The platform's own rows
//! (`provider = 'internal'`) belong to `health_scores`; each model only touches its own rows.
//!
//! A score its provider deleted stays as a hidden row: the upsert never touches `deleted`, so a
//! later pull that brings the same score again does not bring it back.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use serde_json::{json, Value};
use wearhouse_domain::records::{DataEvent, RecordKind};

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct ProviderScores;

#[async_trait]
impl Projection for ProviderScores {
    fn name(&self) -> &'static str {
        "provider_scores"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "HealthScoresRecorded",
            "RecordDeleted",
            "ProviderDataDeleted",
            crate::runner::USER_DELETED,
        ]
    }

    /// The provider of a score is its data source's.
    fn depends_on(&self) -> &'static [&'static str] {
        &["data_sources"]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["health_scores"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("DELETE FROM health_scores WHERE provider <> 'internal'")
            .await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries {
            match decode(entry)? {
                DataEvent::HealthScoresRecorded { user_id, scores } => {
                    for s in scores {
                        let Some(provider) = tx
                            .query_opt(
                                "SELECT provider FROM data_sources WHERE id = $1",
                                &[&s.data_source_id],
                            )
                            .await?
                            .map(|r| r.get::<_, String>(0))
                        else {
                            // Sources are recorded before their scores in the same stream; a
                            // score without one has no provider to show and is left out.
                            continue;
                        };
                        let components: Value = s
                            .components
                            .iter()
                            .map(|(k, c)| {
                                (
                                    k.clone(),
                                    json!({"value": c.value, "qualifier": c.qualifier}),
                                )
                            })
                            .collect::<serde_json::Map<String, Value>>()
                            .into();
                        let components = (!s.components.is_empty()).then_some(components);
                        // The contract keeps one score per (user, provider, category, time): a
                        // different record at that key is superseded by this one.
                        tx.execute(
                            "DELETE FROM health_scores WHERE user_id = $1 AND provider = $2 AND category = $3 \
                             AND recorded_at = $4 AND id <> $5",
                            &[&user_id, &provider, &s.category, &s.recorded_at, &s.id],
                        )
                        .await?;
                        // Keyed by (id, recorded_at) (a hypertable on recorded_at): a score
                        // whose time moved (or whose tombstone came first) leaves its old row,
                        // and a tombstone's `deleted` carries over.
                        tx.execute(
                            "WITH old AS (DELETE FROM health_scores WHERE id = $1 AND recorded_at <> $8 RETURNING deleted) \
                             INSERT INTO health_scores (id, user_id, data_source_id, provider, category, value, qualifier, \
                               recorded_at, zone_offset, components, deleted) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, coalesce((SELECT bool_or(deleted) FROM old), false)) \
                             ON CONFLICT (id, recorded_at) DO UPDATE SET value = EXCLUDED.value, qualifier = EXCLUDED.qualifier, \
                               recorded_at = EXCLUDED.recorded_at, zone_offset = EXCLUDED.zone_offset, \
                               components = EXCLUDED.components, category = EXCLUDED.category, \
                               provider = EXCLUDED.provider, data_source_id = EXCLUDED.data_source_id",
                            &[
                                &s.id,
                                &user_id,
                                &s.data_source_id,
                                &provider,
                                &s.category,
                                &s.value,
                                &s.qualifier,
                                &s.recorded_at,
                                &s.zone_offset,
                                &components,
                            ],
                        )
                        .await?;
                    }
                }
                DataEvent::RecordDeleted {
                    user_id,
                    kind: RecordKind::HealthScore,
                    record_id,
                } => {
                    // A deletion can overtake the score it deletes (a webhook racing the pull
                    // that would bring it): the tombstone is written either way, keyed by the
                    // score's id until the score itself fills the row in.
                    // The tombstone's time is 1970 (a hypertable cannot place '-infinity'),
                    // before any record the time check lets through.
                    tx.execute(
                        "WITH marked AS (UPDATE health_scores SET deleted = true WHERE id = $1 RETURNING 1) \
                         INSERT INTO health_scores (id, user_id, provider, category, recorded_at, deleted) \
                         SELECT $1, $2, 'deleted', $3, '1970-01-01T00:00:00Z', true WHERE NOT EXISTS (SELECT 1 FROM marked) \
                         ON CONFLICT (id, recorded_at) DO UPDATE SET deleted = true",
                        &[&record_id, &user_id, &record_id.to_string()],
                    )
                    .await?;
                }
                DataEvent::ProviderDataDeleted {
                    data_source_ids, ..
                } => {
                    tx.execute(
                        "DELETE FROM health_scores WHERE provider <> 'internal' AND data_source_id = ANY($1)",
                        &[&data_source_ids],
                    )
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
