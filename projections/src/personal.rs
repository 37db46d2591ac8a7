//! Daily activity rings (`activity_summaries`) and personal characteristics (`personal_records`).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::records::DataEvent;

use crate::{decode, Latest, LogEntry, Projection, ProjectionError};

pub struct Personal;

#[async_trait]
impl Projection for Personal {
    fn name(&self) -> &'static str {
        "personal"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "ActivitySummariesRecorded",
            "CharacteristicsRecorded",
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["activity_summaries", "personal_records"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE activity_summaries, personal_records")
            .await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| {
            matches!(
                e.event_type.as_str(),
                "ActivitySummariesRecorded" | "CharacteristicsRecorded"
            )
        }) {
            match decode(entry)? {
                DataEvent::ActivitySummariesRecorded { user_id, summaries } => {
                    // One statement per event; a day appears once per source in an event.
                    let mut latest = Latest::default();
                    for s in summaries {
                        latest.put((s.data_source_id, s.date), s);
                    }
                    let rows = latest.take();
                    let users = vec![user_id; rows.len()];
                    let sources: Vec<_> = rows.iter().map(|s| s.data_source_id).collect();
                    let dates: Vec<_> = rows.iter().map(|s| s.date).collect();
                    let values: Vec<_> = rows
                        .iter()
                        .map(|s| serde_json::to_value(&s.values).unwrap_or_default())
                        .collect();
                    tx.execute(
                        "INSERT INTO activity_summaries (user_id, data_source_id, date, values) \
                         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::jsonb[]) \
                         ON CONFLICT (user_id, data_source_id, date) DO UPDATE SET values = EXCLUDED.values",
                        &[&users, &sources, &dates, &values],
                    )
                    .await?;
                }
                DataEvent::CharacteristicsRecorded {
                    user_id,
                    characteristics: c,
                } => {
                    tx.execute(
                        "INSERT INTO personal_records (user_id, birth_date, sex) VALUES ($1, $2, $3) \
                         ON CONFLICT (user_id) DO UPDATE SET birth_date = coalesce(EXCLUDED.birth_date, personal_records.birth_date), \
                           sex = coalesce(EXCLUDED.sex, personal_records.sex)",
                        &[&user_id, &c.birth_date, &c.sex],
                    )
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
