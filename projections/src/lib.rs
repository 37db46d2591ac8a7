//! wearhouse-projections: the read models and the checkpointed runner that builds them from
//! the event log. Every read model can be dropped and rebuilt from the log.

pub mod api_keys;
pub mod arrow_batch;
pub mod connections;
pub mod data_sources;
pub mod developers;
pub mod imports;
pub mod log;
pub mod personal;
pub mod provider_settings;
pub mod runner;
pub mod samples;
pub mod sleep_sessions;
pub mod sync_runs;
pub mod users;
pub mod workouts;

use std::sync::Arc;

pub use log::{Cursor, LogEntry};
pub use runner::{pg_message, Projection, ProjectionError, Runner};

/// Every read model of the platform, in the order the runner starts them.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(users::Users),
        Arc::new(developers::Developers),
        Arc::new(api_keys::ApiKeys),
        Arc::new(imports::Imports),
        Arc::new(data_sources::DataSources),
        Arc::new(samples::Samples),
        Arc::new(workouts::Workouts),
        Arc::new(sleep_sessions::SleepSessions),
        Arc::new(personal::Personal),
        Arc::new(connections::Connections),
        Arc::new(sync_runs::SyncRuns),
        Arc::new(provider_settings::ProviderSettings),
    ]
}

/// Decodes an entry's payload into the aggregate's event type.
pub(crate) fn decode<E: serde::de::DeserializeOwned>(
    entry: &LogEntry,
) -> Result<E, ProjectionError> {
    serde_json::from_value(entry.payload.clone()).map_err(|source| ProjectionError::Decode {
        position: entry.position(),
        event_type: entry.event_type.clone(),
        source,
    })
}
