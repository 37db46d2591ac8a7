//! wearhouse-projections: the read models and the checkpointed runner that builds them from
//! the event log. Every read model can be dropped and rebuilt from the log.

pub mod api_keys;
pub mod applications;
pub mod archival;
pub mod connections;
pub mod daily_rollup;
pub mod data_sources;
pub mod developers;
pub mod health_scores;
pub mod imports;
pub mod invitations;
pub mod menstrual_cycles;
pub mod nights;
pub mod personal;
pub mod pglock;
pub mod pgtls;
pub mod priorities;
pub mod priority_scope;
pub mod provider_scores;
pub mod provider_settings;
pub mod ranks;
pub mod runner;
pub mod sample_deletes;
pub mod samples;
pub mod sdk_access;
pub mod sleep_nights;
pub mod sleep_sessions;
pub mod sync_runs;
pub mod users;
pub mod webhook_endpoints;
pub mod webhook_outbox;
pub mod workouts;

use std::sync::Arc;

pub use runner::{Projection, ProjectionError, Runner};
pub(crate) use wearhouse_log::LogEntry;

/// Every read model of the platform, in the order the runner starts them.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(users::Users),
        Arc::new(developers::Developers),
        Arc::new(invitations::Invitations),
        Arc::new(api_keys::ApiKeys),
        Arc::new(applications::Applications),
        Arc::new(sdk_access::SdkAccess),
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
        Arc::new(archival::ArchivalSettings),
        // Readers of other read models come after the models they read.
        Arc::new(daily_rollup::DailyRollup),
        Arc::new(health_scores::HealthScores),
        Arc::new(provider_scores::ProviderScores),
        Arc::new(sleep_nights::SleepNights),
        Arc::new(webhook_endpoints::WebhookEndpoints),
        // After the models it reads (endpoints, sources, connections, sync runs).
        Arc::new(webhook_outbox::WebhookOutbox),
    ]
}

/// Whether every read model has applied the log up to its newest entry.
pub async fn caught_up(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<bool, tokio_postgres::Error> {
    let Some(head) = wearhouse_log::read::head(client).await? else {
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
    serde_json::from_str(entry.payload.get()).map_err(|source| ProjectionError::Decode {
        position: entry.position(),
        event_type: entry.event_type.clone(),
        source,
    })
}

/// Records waiting to be written in one statement, the latest per id: a statement may not
/// upsert the same row twice, and the later record in the log wins.
pub(crate) struct Latest<K, V> {
    index: std::collections::HashMap<K, usize>,
    rows: Vec<(K, V)>,
}

impl<K, V> Default for Latest<K, V> {
    fn default() -> Self {
        Latest {
            index: std::collections::HashMap::new(),
            rows: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy, V> Latest<K, V> {
    pub(crate) fn put(&mut self, key: K, value: V) {
        match self.index.get(&key) {
            Some(&i) => self.rows[i].1 = value,
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push((key, value));
            }
        }
    }

    /// Like `put`, but a second value for a key is folded into the first by `fold`.
    pub(crate) fn merge(&mut self, key: K, value: V, fold: impl FnOnce(&mut V, V)) {
        match self.index.get(&key) {
            Some(&i) => fold(&mut self.rows[i].1, value),
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push((key, value));
            }
        }
    }

    /// The rows in first-seen order, leaving this empty.
    pub(crate) fn take(&mut self) -> Vec<V> {
        self.index.clear();
        std::mem::take(&mut self.rows)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }
}

/// `from..=to` cut into runs of at most `days` days: read models that recompute days work a
/// window at a time, so a whole history (a first import) needs no more memory than a month.
pub(crate) fn date_chunks(
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    days: i64,
) -> impl Iterator<Item = (chrono::NaiveDate, chrono::NaiveDate)> {
    let step = chrono::Duration::days(days.max(1));
    std::iter::successors(Some(from), move |start| Some(*start + step))
        .take_while(move |start| *start <= to)
        .map(move |start| (start, (start + step - chrono::Duration::days(1)).min(to)))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    #[test]
    fn date_chunks_cover_the_range_once_in_order() {
        let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap();
        let chunks: Vec<_> = super::date_chunks(d(1, 1), d(3, 5), 31).collect();
        assert_eq!(
            chunks,
            [(d(1, 1), d(1, 31)), (d(2, 1), d(3, 2)), (d(3, 3), d(3, 5))]
        );
        assert_eq!(
            super::date_chunks(d(5, 5), d(5, 5), 31).collect::<Vec<_>>(),
            [(d(5, 5), d(5, 5))]
        );
        assert_eq!(super::date_chunks(d(5, 6), d(5, 5), 31).count(), 0);
    }
}
