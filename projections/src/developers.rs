//! The `developers` read model and the active developer refresh tokens (for login and refresh).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::developer::DeveloperEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Developers;

#[async_trait]
impl Projection for Developers {
    fn name(&self) -> &'static str {
        "developers"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "DeveloperRegistered",
            "RefreshTokenIssued",
            "RefreshTokenRevoked",
            "PasswordChanged",
            "DeveloperProfileUpdated",
            "DeveloperRoleChanged",
            "DeveloperRemoved",
        ]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE developers, developer_refresh_tokens")
            .await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| e.aggregate_type == "Developer") {
            let id: uuid::Uuid = entry.aggregate_id.parse().unwrap_or_default();
            match decode::<DeveloperEvent>(entry)? {
                DeveloperEvent::DeveloperRegistered {
                    id,
                    email,
                    password_hash,
                    first_name,
                    last_name,
                    role,
                    at,
                } => {
                    tx.execute(
                        "INSERT INTO developers (id, email, password_hash, first_name, last_name, role, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
                        &[&id, &email, &password_hash, &first_name, &last_name, &role.as_str(), &at],
                    )
                    .await?;
                }
                DeveloperEvent::DeveloperRoleChanged { role, at } => {
                    tx.execute(
                        "UPDATE developers SET role = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &role.as_str(), &at],
                    )
                    .await?;
                }
                DeveloperEvent::DeveloperRemoved { .. } => {
                    tx.execute("DELETE FROM developers WHERE id = $1", &[&id])
                        .await?;
                    tx.execute(
                        "DELETE FROM developer_refresh_tokens WHERE developer_id = $1",
                        &[&id],
                    )
                    .await?;
                }
                DeveloperEvent::PasswordChanged { password_hash, at } => {
                    tx.execute(
                        "UPDATE developers SET password_hash = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &password_hash, &at],
                    )
                    .await?;
                }
                DeveloperEvent::DeveloperProfileUpdated {
                    first_name,
                    last_name,
                    email,
                    at,
                } => {
                    // An address another account took meanwhile is left unchanged rather than
                    // stopping the projection on the unique index (the API checks it first).
                    tx.execute(
                        "UPDATE developers SET first_name = coalesce($2, first_name), \
                           last_name = coalesce($3, last_name), \
                           email = CASE WHEN $4::text IS NOT NULL AND NOT EXISTS \
                             (SELECT 1 FROM developers o WHERE o.email = $4 AND o.id <> $1) \
                             THEN $4 ELSE email END, \
                           updated_at = $5 WHERE id = $1",
                        &[&id, &first_name, &last_name, &email, &at],
                    )
                    .await?;
                }
                DeveloperEvent::RefreshTokenIssued {
                    token_hash,
                    expires_at,
                    at,
                } => {
                    tx.execute(
                        "INSERT INTO developer_refresh_tokens (token_hash, developer_id, expires_at, created_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        &[&token_hash, &id, &expires_at, &at],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM developer_refresh_tokens WHERE developer_id = $1 AND expires_at <= $2",
                        &[&id, &at],
                    )
                    .await?;
                }
                DeveloperEvent::RefreshTokenRevoked { token_hash, .. } => {
                    tx.execute(
                        "DELETE FROM developer_refresh_tokens WHERE token_hash = $1",
                        &[&token_hash],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
