//! The `data_sources` read model: every provider/app/device that wrote data for a user.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::records::DataEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct DataSources;

#[async_trait]
impl Projection for DataSources {
    fn name(&self) -> &'static str {
        "data_sources"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "SourcesDiscovered",
            "ProviderDataDeleted",
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["data_sources"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE data_sources").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries {
            if let DataEvent::ProviderDataDeleted {
                data_source_ids, ..
            } = decode(entry)?
            {
                tx.execute(
                    "DELETE FROM data_sources WHERE id = ANY($1)",
                    &[&data_source_ids],
                )
                .await?;
                continue;
            }
            let DataEvent::SourcesDiscovered { user_id, sources } = decode(entry)? else {
                continue;
            };
            // The latest discovery describes the source (a mapper fix can reclassify it: Apple's
            // activity-rings source became a watch-type source; Apple's `device_model` became
            // HKDevice's model, so `wearhouse renormalize` corrects older imports' rows).
            for s in sources {
                tx.execute(
                    "INSERT INTO data_sources (id, user_id, provider, device_model, software_version, source, device_type, \
                       original_source_name, manufacturer, device_name, hardware, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (id) DO UPDATE SET software_version = coalesce(EXCLUDED.software_version, data_sources.software_version), \
                       device_model = coalesce(EXCLUDED.device_model, data_sources.device_model), \
                       manufacturer = coalesce(EXCLUDED.manufacturer, data_sources.manufacturer), \
                       device_name = coalesce(EXCLUDED.device_name, data_sources.device_name), \
                       hardware = coalesce(EXCLUDED.hardware, data_sources.hardware), \
                       device_type = coalesce(EXCLUDED.device_type, data_sources.device_type), \
                       original_source_name = coalesce(EXCLUDED.original_source_name, data_sources.original_source_name)",
                    &[&s.id, &user_id, &s.provider, &s.device_model, &s.software_version, &s.source, &s.device_type,
                      &s.original_source_name, &s.manufacturer, &s.device_name, &s.hardware, &entry.recorded_at],
                )
                .await?;
            }
        }
        Ok(())
    }
}
