//! The `invitations` read model: team invitations and their state (`expired` is derived from
//! `expires_at` when read, so nothing has to run when one expires).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::invitation::InvitationEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Invitations;

#[async_trait]
impl Projection for Invitations {
    fn name(&self) -> &'static str {
        "invitations"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "InvitationCreated",
            "InvitationResent",
            "InvitationRevoked",
            "InvitationAccepted",
        ]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE invitations").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| e.aggregate_type == "Invitation") {
            let id: uuid::Uuid = entry.aggregate_id.parse().unwrap_or_default();
            match decode::<InvitationEvent>(entry)? {
                InvitationEvent::InvitationCreated {
                    id,
                    email,
                    role,
                    token_hash,
                    expires_at,
                    invited_by,
                    at,
                } => {
                    tx.execute(
                        "INSERT INTO invitations (id, email, role, token_hash, status, expires_at, \
                         invited_by_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7) ON CONFLICT DO NOTHING",
                        &[&id, &email, &role.as_str(), &token_hash, &expires_at, &invited_by, &at],
                    )
                    .await?;
                }
                InvitationEvent::InvitationResent {
                    token_hash,
                    expires_at,
                    at,
                } => {
                    tx.execute(
                        "UPDATE invitations SET token_hash = $2, expires_at = $3, updated_at = $4 \
                         WHERE id = $1",
                        &[&id, &token_hash, &expires_at, &at],
                    )
                    .await?;
                }
                InvitationEvent::InvitationRevoked { at } => {
                    tx.execute(
                        "UPDATE invitations SET status = 'revoked', updated_at = $2 WHERE id = $1",
                        &[&id, &at],
                    )
                    .await?;
                }
                InvitationEvent::InvitationAccepted { at, .. } => {
                    tx.execute(
                        "UPDATE invitations SET status = 'accepted', updated_at = $2 WHERE id = $1",
                        &[&id, &at],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
