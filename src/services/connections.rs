//! Connections: what follows a provider account being linked. Pull providers get a
//! historical pull, callback providers (Garmin) a backfill request, as a durable job, so a
//! restart right after the OAuth callback does not lose it.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::syncs::{Syncs, SyncsError};
use crate::config::ProvidersConfig;
use crate::providers::engine::SyncRequest;
use crate::providers::Provider;

/// Records the first pull of `user`'s new `provider` connection, when the provider has one
/// and it is configured (`WEARHOUSE_HISTORICAL_DAYS_ON_CONNECT`). Returns the run id.
pub async fn after_connect(
    syncs: &Syncs,
    config: &ProvidersConfig,
    provider: &dyn Provider,
    user: Uuid,
) -> Result<Option<Uuid>, SyncsError> {
    let days = config.historical_days_on_connect;
    if !provider.has_history() || days <= 0 {
        return Ok(None);
    }
    let now = Utc::now();
    let req = SyncRequest {
        run_id: Uuid::new_v4(),
        user_id: user,
        provider: provider.name().into(),
        source: "backfill".into(),
        start: now - Duration::days(days),
        end: now,
        data_types: vec![],
    };
    syncs.enqueue(req).await.map(Some)
}
