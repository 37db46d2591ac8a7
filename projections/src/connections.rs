//! The `connections` read model: each user's link to each provider, with sealed tokens for the
//! sync engine (ciphertext only) and the pending OAuth state for the callback to find.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_domain::connection::ConnectionEvent;
use wearhouse_domain::records::record_id;

use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct Connections;

#[async_trait]
impl Projection for Connections {
    fn name(&self) -> &'static str {
        "connections"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "AuthorizationStarted",
            "ConnectionAuthorized",
            "AuthorizationDenied",
            "TokensRefreshed",
            "ConnectionSynced",
            "ScopeChanged",
            "ConnectionRevoked",
            "SdkConnected",
            crate::runner::USER_DELETED,
        ]
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["connections"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE connections").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for entry in entries.iter().filter(|e| e.aggregate_type == "Connection") {
            let sid = &entry.aggregate_id;
            match decode::<ConnectionEvent>(entry)? {
                ConnectionEvent::AuthorizationStarted {
                    user_id,
                    provider,
                    state_hash,
                    sealed_pkce_verifier,
                    redirect_uri,
                    at,
                } => {
                    let id = record_id(&["connection", sid]);
                    tx.execute(
                        "INSERT INTO connections (stream_id, id, user_id, provider, status, state_hash, state_started_at, \
                           state_used, redirect_uri, pkce_verifier, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, 'pending', $5, $6, false, $7, $8, $6, $6) \
                         ON CONFLICT (stream_id) DO UPDATE SET state_hash = EXCLUDED.state_hash, \
                           state_started_at = EXCLUDED.state_started_at, state_used = false, \
                           redirect_uri = EXCLUDED.redirect_uri, pkce_verifier = EXCLUDED.pkce_verifier, \
                           updated_at = EXCLUDED.updated_at",
                        &[sid, &id, &user_id, &provider, &state_hash, &at, &redirect_uri, &sealed_pkce_verifier],
                    )
                    .await?;
                }
                ConnectionEvent::ConnectionAuthorized {
                    provider_user_id,
                    scope,
                    tokens,
                    at,
                    ..
                } => {
                    tx.execute(
                        "UPDATE connections SET status = 'active', revoked_reason = NULL, provider_user_id = $2, scope = $3, \
                           access_token = $4, refresh_token = $5, token_expires_at = $6, state_used = true, \
                           pkce_verifier = NULL, authorized_at = $7, updated_at = $7 WHERE stream_id = $1",
                        &[sid, &provider_user_id, &scope, &tokens.access_token, &tokens.refresh_token, &tokens.expires_at, &at],
                    )
                    .await?;
                }
                ConnectionEvent::AuthorizationDenied { at, .. } => {
                    tx.execute(
                        "UPDATE connections SET state_used = true, pkce_verifier = NULL, updated_at = $2 WHERE stream_id = $1",
                        &[sid, &at],
                    )
                    .await?;
                }
                ConnectionEvent::TokensRefreshed { tokens, at } => {
                    tx.execute(
                        "UPDATE connections SET access_token = $2, refresh_token = coalesce($3, refresh_token), \
                           token_expires_at = $4, updated_at = $5 WHERE stream_id = $1",
                        &[sid, &tokens.access_token, &tokens.refresh_token, &tokens.expires_at, &at],
                    )
                    .await?;
                }
                ConnectionEvent::ConnectionSynced { at } => {
                    tx.execute(
                        "UPDATE connections SET last_synced_at = $2, updated_at = $2 WHERE stream_id = $1",
                        &[sid, &at],
                    )
                    .await?;
                }
                ConnectionEvent::ScopeChanged { scope, at } => {
                    tx.execute(
                        "UPDATE connections SET scope = $2, updated_at = $3 WHERE stream_id = $1",
                        &[sid, &scope, &at],
                    )
                    .await?;
                }
                ConnectionEvent::SdkConnected {
                    user_id,
                    provider,
                    at,
                } => {
                    // No tokens: the SDK authenticates with its own user token.
                    let id = record_id(&["connection", sid]);
                    tx.execute(
                        "INSERT INTO connections (stream_id, id, user_id, provider, status, state_used, \
                           authorized_at, last_synced_at, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, 'active', false, $5, $5, $5, $5) \
                         ON CONFLICT (stream_id) DO UPDATE SET status = 'active', revoked_reason = NULL, \
                           authorized_at = EXCLUDED.authorized_at, last_synced_at = EXCLUDED.last_synced_at, \
                           updated_at = EXCLUDED.updated_at",
                        &[sid, &id, &user_id, &provider, &at],
                    )
                    .await?;
                }
                ConnectionEvent::ConnectionRevoked { reason, at } => {
                    // Revocation clears the tokens, as the contract requires.
                    tx.execute(
                        "UPDATE connections SET status = 'revoked', revoked_reason = $2, access_token = NULL, \
                           refresh_token = NULL, token_expires_at = NULL, updated_at = $3 WHERE stream_id = $1",
                        &[sid, &reason, &at],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
