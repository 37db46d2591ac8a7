//! The `users` read model: one row per live user.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::user::UserEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Users;

#[async_trait]
impl Projection for Users {
    fn name(&self) -> &'static str {
        "users"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["UserCreated", "UserUpdated", "UserDeleted"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE users").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| e.aggregate_type == "User") {
            let id: uuid::Uuid = entry.aggregate_id.parse().unwrap_or_default();
            match decode::<UserEvent>(entry)? {
                UserEvent::UserCreated { id, profile, at } => {
                    tx.execute(
                        "INSERT INTO users (id, first_name, last_name, email, external_user_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
                        &[&id, &profile.first_name, &profile.last_name, &profile.email, &profile.external_user_id, &at],
                    )
                    .await?;
                }
                UserEvent::UserUpdated { changes, at } => {
                    // Only the fields present in the change are touched; `Some(None)` clears one.
                    tx.execute(
                        "UPDATE users SET \
                           first_name = CASE WHEN $2 THEN $3 ELSE first_name END, \
                           last_name = CASE WHEN $4 THEN $5 ELSE last_name END, \
                           email = CASE WHEN $6 THEN $7 ELSE email END, \
                           external_user_id = CASE WHEN $8 THEN $9 ELSE external_user_id END, \
                           updated_at = $10 WHERE id = $1",
                        &[
                            &id,
                            &changes.first_name.is_some(),
                            &changes.first_name.clone().flatten(),
                            &changes.last_name.is_some(),
                            &changes.last_name.clone().flatten(),
                            &changes.email.is_some(),
                            &changes.email.clone().flatten(),
                            &changes.external_user_id.is_some(),
                            &changes.external_user_id.clone().flatten(),
                            &at,
                        ],
                    )
                    .await?;
                }
                UserEvent::UserDeleted { .. } => {
                    tx.execute("DELETE FROM users WHERE id = $1", &[&id])
                        .await?;
                }
            }
        }
        Ok(())
    }
}
