//! Daily activity rings (`activity_summaries`) and personal characteristics (`personal_records`).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::records::DataEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Personal;

#[async_trait]
impl Projection for Personal {
    fn name(&self) -> &'static str {
        "personal"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["ActivitySummariesRecorded", "CharacteristicsRecorded"]
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
                    for s in summaries {
                        let values = serde_json::to_value(&s.values).unwrap_or_default();
                        tx.execute(
                            "INSERT INTO activity_summaries (user_id, data_source_id, date, values) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (user_id, data_source_id, date) DO UPDATE SET values = EXCLUDED.values",
                            &[&user_id, &s.data_source_id, &s.date, &values],
                        )
                        .await?;
                    }
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
