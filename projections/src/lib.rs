//! wearhouse-projections: the read models and the checkpointed runner that builds them from
//! the event log. Every read model can be dropped and rebuilt from the log.

pub mod api_keys;
pub mod arrow_batch;
pub mod connections;
pub mod daily_rollup;
pub mod data_sources;
pub mod developers;
pub mod health_scores;
pub mod imports;
pub mod log;
pub mod menstrual_cycles;
pub mod personal;
pub mod priorities;
pub mod priority_scope;
pub mod provider_scores;
pub mod provider_settings;
pub mod ranks;
pub mod runner;
pub mod samples;
pub mod sleep_nights;
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
        Arc::new(menstrual_cycles::MenstrualCycles),
        Arc::new(priorities::Priorities),
        // Readers of other read models come after the models they read.
        Arc::new(provider_scores::ProviderScores),
        Arc::new(daily_rollup::DailyRollup),
        Arc::new(health_scores::HealthScores),
        Arc::new(sleep_nights::SleepNights),
    ]
}

/// Whether every read model has applied the log up to its newest entry.
pub async fn caught_up(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<bool, tokio_postgres::Error> {
    let Some(head) = log::head(client).await? else {
        return Ok(true);
    };
    let names: Vec<&str> = all().iter().map(|p| p.name()).collect();
    let behind: i64 = client
        .query_one(
            "SELECT count(*) FROM unnest($1::text[]) AS n(name) LEFT JOIN checkpoints c USING (name) \
             WHERE c.name IS NULL OR (c.tx, c.position) < ($2, $3)",
            &[&names, &head.tx, &head.position],
        )
        .await?
        .get(0);
    Ok(behind == 0)
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
