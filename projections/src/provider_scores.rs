//! Provider scores (`HealthScoresRecorded`: Garmin stress and sleep, Whoop recovery, Oura
//! readiness, ...) as rows of `health_scores`, next to the platform's own `internal` rows that
//! `health_scores.rs` computes. The row's provider is its data source's provider.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use serde_json::json;
use wearhouse_domain::records::DataEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct ProviderScores;

#[async_trait]
impl Projection for ProviderScores {
    fn name(&self) -> &'static str {
        "provider_scores"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["HealthScoresRecorded", "ProviderDataDeleted"]
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["data_sources"]
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
                        let components = (!s.components.is_empty()).then(|| {
                            json!(s
                                .components
                                .iter()
                                .map(|(k, c)| (
                                    k.clone(),
                                    json!({"value": c.value, "qualifier": c.qualifier})
                                ))
                                .collect::<serde_json::Map<_, _>>())
                        });
                        // A later delivery of the same score (same source, category and time)
                        // replaces it.
                        tx.execute(
                            "INSERT INTO health_scores (id, user_id, data_source_id, provider, category, value, qualifier, \
                               recorded_at, zone_offset, components) \
                             SELECT $1, $2, $3, coalesce((SELECT provider FROM data_sources WHERE id = $3), 'unknown'), \
                               $4, $5, $6, $7, $8, $9 \
                             ON CONFLICT (user_id, provider, category, recorded_at) DO UPDATE SET value = EXCLUDED.value, \
                               qualifier = EXCLUDED.qualifier, zone_offset = EXCLUDED.zone_offset, \
                               components = EXCLUDED.components, data_source_id = EXCLUDED.data_source_id",
                            &[
                                &s.id,
                                &user_id,
                                &s.data_source_id,
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
