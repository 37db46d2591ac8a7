//! The SDK credentials of users: active SDK refresh tokens and invitation codes, by hash. A
//! deleted user's rows go with the user.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::sdk_access::SdkAccessEvent;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct SdkAccess;

#[async_trait]
impl Projection for SdkAccess {
    fn name(&self) -> &'static str {
        "sdk_access"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "SdkRefreshTokenIssued",
            "SdkRefreshTokenRevoked",
            "InvitationCodeIssued",
            "InvitationCodeRevoked",
            "InvitationCodeRedeemed",
            "UserDeleted",
        ]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE sdk_refresh_tokens, sdk_invitation_codes")
            .await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries {
            let user: uuid::Uuid = entry.aggregate_id.parse().unwrap_or_default();
            if entry.aggregate_type == "User" {
                if entry.event_type == "UserDeleted" {
                    tx.execute(
                        "DELETE FROM sdk_refresh_tokens WHERE user_id = $1",
                        &[&user],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM sdk_invitation_codes WHERE user_id = $1",
                        &[&user],
                    )
                    .await?;
                }
                continue;
            }
            if entry.aggregate_type != "SdkAccess" {
                continue;
            }
            match decode::<SdkAccessEvent>(entry)? {
                SdkAccessEvent::SdkRefreshTokenIssued {
                    token_hash,
                    app_id,
                    expires_at,
                    at,
                } => {
                    tx.execute(
                        "INSERT INTO sdk_refresh_tokens (token_hash, user_id, app_id, expires_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        &[&token_hash, &user, &app_id, &expires_at, &at],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM sdk_refresh_tokens WHERE user_id = $1 AND expires_at <= $2",
                        &[&user, &at],
                    )
                    .await?;
                }
                SdkAccessEvent::SdkRefreshTokenRevoked { token_hash, .. } => {
                    tx.execute(
                        "DELETE FROM sdk_refresh_tokens WHERE token_hash = $1",
                        &[&token_hash],
                    )
                    .await?;
                }
                SdkAccessEvent::InvitationCodeIssued {
                    id,
                    code_hash,
                    created_by,
                    expires_at,
                    at,
                } => {
                    tx.execute(
                        "INSERT INTO sdk_invitation_codes (id, code_hash, user_id, created_by, expires_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                        &[&id, &code_hash, &user, &created_by, &expires_at, &at],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM sdk_invitation_codes WHERE user_id = $1 AND expires_at <= $2",
                        &[&user, &at],
                    )
                    .await?;
                }
                SdkAccessEvent::InvitationCodeRevoked { id, .. }
                | SdkAccessEvent::InvitationCodeRedeemed { id, .. } => {
                    tx.execute("DELETE FROM sdk_invitation_codes WHERE id = $1", &[&id])
                        .await?;
                }
            }
        }
        Ok(())
    }
}
