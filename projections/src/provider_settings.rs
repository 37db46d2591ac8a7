//! The `provider_settings` read model: per provider, the installation's choices. A provider
//! without a row uses its defaults (enabled, its natural live sync mode).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::provider_setting::ProviderSettingEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct ProviderSettings;

#[async_trait]
impl Projection for ProviderSettings {
    fn name(&self) -> &'static str {
        "provider_settings"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["ProviderSettingChanged"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE provider_settings").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries {
            let ProviderSettingEvent::ProviderSettingChanged {
                provider,
                is_enabled,
                live_sync_mode,
                data_granularity,
                at,
            } = decode(entry)?;
            tx.execute(
                "INSERT INTO provider_settings (provider, is_enabled, live_sync_mode, data_granularity, updated_at) \
                 VALUES ($1, coalesce($2, true), $3, $4, $5) \
                 ON CONFLICT (provider) DO UPDATE SET is_enabled = coalesce($2, provider_settings.is_enabled), \
                   live_sync_mode = coalesce($3, provider_settings.live_sync_mode), \
                   data_granularity = coalesce($4, provider_settings.data_granularity), updated_at = $5",
                &[&provider, &is_enabled, &live_sync_mode, &data_granularity, &at],
            )
            .await?;
        }
        Ok(())
    }
}
