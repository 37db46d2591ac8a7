//! The `Connection` aggregate: one user's link to one cloud provider account, from the start of
//! an OAuth authorization to its revocation. One stream per (user, provider).
//!
//! Secrets never appear here in clear: the OAuth `state` is kept as its SHA-256, and the PKCE
//! verifier and tokens arrive already sealed (encrypted) by the caller, so events at rest hold
//! only ciphertext.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long an authorization `state` can be redeemed (the contract keeps it 900 s).
pub const STATE_TTL_MINUTES: i64 = 15;

/// The stream id of a user's connection to a provider.
pub fn connection_id(user_id: Uuid, provider: &str) -> String {
    format!("{user_id}:{provider}")
}

/// Tokens as ciphertext; the aggregate never sees them in clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionCommand {
    StartAuthorization {
        user_id: Uuid,
        provider: String,
        state_hash: String,
        sealed_pkce_verifier: Option<String>,
        redirect_uri: Option<String>,
        at: DateTime<Utc>,
    },
    /// Redeems `state_hash`: it must be the pending one, unused and younger than 15 minutes.
    Authorize {
        state_hash: String,
        provider_user_id: Option<String>,
        scope: Option<String>,
        tokens: SealedTokens,
        at: DateTime<Utc>,
    },
    /// The provider refused the authorization (the user denied consent, an error redirect).
    Deny {
        state_hash: String,
        error: String,
        at: DateTime<Utc>,
    },
    RefreshTokens {
        tokens: SealedTokens,
        at: DateTime<Utc>,
    },
    MarkSynced {
        at: DateTime<Utc>,
    },
    /// The user changed the permissions granted at the provider.
    ChangeScope {
        scope: String,
        at: DateTime<Utc>,
    },
    Revoke {
        reason: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ConnectionEvent {
    AuthorizationStarted {
        user_id: Uuid,
        provider: String,
        state_hash: String,
        sealed_pkce_verifier: Option<String>,
        redirect_uri: Option<String>,
        at: DateTime<Utc>,
    },
    ConnectionAuthorized {
        user_id: Uuid,
        provider: String,
        provider_user_id: Option<String>,
        scope: Option<String>,
        tokens: SealedTokens,
        at: DateTime<Utc>,
    },
    AuthorizationDenied {
        error: String,
        at: DateTime<Utc>,
    },
    TokensRefreshed {
        tokens: SealedTokens,
        at: DateTime<Utc>,
    },
    ConnectionSynced {
        at: DateTime<Utc>,
    },
    ScopeChanged {
        scope: String,
        at: DateTime<Utc>,
    },
    ConnectionRevoked {
        reason: String,
        at: DateTime<Utc>,
    },
    /// A mobile SDK (provider `apple`, `google` or `samsung`) uploaded for the user while no
    /// active connection to that provider existed: a connection without tokens, as upstream
    /// ensures on a user's first SDK upload. Appended by the SDK sync with its data.
    SdkConnected {
        user_id: Uuid,
        provider: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ConnectionEvent {
    fn event_type(&self) -> String {
        match self {
            ConnectionEvent::AuthorizationStarted { .. } => "AuthorizationStarted",
            ConnectionEvent::ConnectionAuthorized { .. } => "ConnectionAuthorized",
            ConnectionEvent::AuthorizationDenied { .. } => "AuthorizationDenied",
            ConnectionEvent::TokensRefreshed { .. } => "TokensRefreshed",
            ConnectionEvent::ConnectionSynced { .. } => "ConnectionSynced",
            ConnectionEvent::ScopeChanged { .. } => "ScopeChanged",
            ConnectionEvent::ConnectionRevoked { .. } => "ConnectionRevoked",
            ConnectionEvent::SdkConnected { .. } => "SdkConnected",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConnectionError {
    #[error("Connection not found")]
    NotFound,
    #[error("invalid or unknown OAuth state")]
    StateMismatch,
    #[error("OAuth state already used")]
    StateUsed,
    #[error("OAuth state expired")]
    StateExpired,
    #[error("connection is not active")]
    NotActive,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    #[default]
    New,
    Active,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    state_hash: String,
    started: DateTime<Utc>,
    used: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    user_id: Option<Uuid>,
    provider: Option<String>,
    status: Status,
    pending: Option<Pending>,
}

impl Connection {
    fn check_state(&self, state_hash: &str, at: DateTime<Utc>) -> Result<(), ConnectionError> {
        let Some(p) = &self.pending else {
            return Err(ConnectionError::StateMismatch);
        };
        if p.state_hash != state_hash {
            return Err(ConnectionError::StateMismatch);
        }
        if p.used {
            return Err(ConnectionError::StateUsed);
        }
        if at - p.started > Duration::minutes(STATE_TTL_MINUTES) {
            return Err(ConnectionError::StateExpired);
        }
        Ok(())
    }
}

impl Aggregate for Connection {
    const TYPE: &'static str = "Connection";
    type Command = ConnectionCommand;
    type Event = ConnectionEvent;
    type Error = ConnectionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ConnectionCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ConnectionError> {
        let event = match command {
            ConnectionCommand::StartAuthorization {
                user_id,
                provider,
                state_hash,
                sealed_pkce_verifier,
                redirect_uri,
                at,
            } => ConnectionEvent::AuthorizationStarted {
                user_id,
                provider,
                state_hash,
                sealed_pkce_verifier,
                redirect_uri,
                at,
            },
            ConnectionCommand::Authorize {
                state_hash,
                provider_user_id,
                scope,
                tokens,
                at,
            } => {
                self.check_state(&state_hash, at)?;
                ConnectionEvent::ConnectionAuthorized {
                    user_id: self.user_id.unwrap_or_default(),
                    provider: self.provider.clone().unwrap_or_default(),
                    provider_user_id,
                    scope,
                    tokens,
                    at,
                }
            }
            ConnectionCommand::Deny {
                state_hash,
                error,
                at,
            } => {
                self.check_state(&state_hash, at)?;
                ConnectionEvent::AuthorizationDenied { error, at }
            }
            ConnectionCommand::RefreshTokens { tokens, at } => {
                if self.status != Status::Active {
                    return Err(ConnectionError::NotActive);
                }
                ConnectionEvent::TokensRefreshed { tokens, at }
            }
            ConnectionCommand::MarkSynced { at } => {
                if self.status != Status::Active {
                    return Err(ConnectionError::NotActive);
                }
                ConnectionEvent::ConnectionSynced { at }
            }
            ConnectionCommand::ChangeScope { scope, at } => {
                if self.status != Status::Active {
                    return Err(ConnectionError::NotActive);
                }
                ConnectionEvent::ScopeChanged { scope, at }
            }
            ConnectionCommand::Revoke { reason, at } => {
                match self.status {
                    Status::New => return Err(ConnectionError::NotFound),
                    Status::Revoked => return Err(ConnectionError::NotActive),
                    Status::Active => {}
                }
                ConnectionEvent::ConnectionRevoked { reason, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::AuthorizationStarted {
                user_id,
                provider,
                state_hash,
                at,
                ..
            } => {
                self.user_id = Some(user_id);
                self.provider = Some(provider);
                self.pending = Some(Pending {
                    state_hash,
                    started: at,
                    used: false,
                });
            }
            ConnectionEvent::ConnectionAuthorized { .. } => {
                self.status = Status::Active;
                if let Some(p) = &mut self.pending {
                    p.used = true;
                }
            }
            ConnectionEvent::AuthorizationDenied { .. } => {
                if let Some(p) = &mut self.pending {
                    p.used = true;
                }
            }
            ConnectionEvent::TokensRefreshed { .. }
            | ConnectionEvent::ConnectionSynced { .. }
            | ConnectionEvent::ScopeChanged { .. } => {}
            ConnectionEvent::ConnectionRevoked { .. } => self.status = Status::Revoked,
            ConnectionEvent::SdkConnected {
                user_id, provider, ..
            } => {
                self.user_id = Some(user_id);
                self.provider = Some(provider);
                self.status = Status::Active;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn at(min: i64) -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(min)
    }

    fn started() -> ConnectionEvent {
        ConnectionEvent::AuthorizationStarted {
            user_id: Uuid::nil(),
            provider: "oura".into(),
            state_hash: "h1".into(),
            sealed_pkce_verifier: None,
            redirect_uri: None,
            at: at(0),
        }
    }

    fn tokens() -> SealedTokens {
        SealedTokens {
            access_token: "sealed-a".into(),
            refresh_token: Some("sealed-r".into()),
            expires_at: Some(at(60)),
        }
    }

    fn authorize(state: &str, minute: i64) -> ConnectionCommand {
        ConnectionCommand::Authorize {
            state_hash: state.into(),
            provider_user_id: Some("p1".into()),
            scope: Some("daily".into()),
            tokens: tokens(),
            at: at(minute),
        }
    }

    fn authorized() -> ConnectionEvent {
        ConnectionEvent::ConnectionAuthorized {
            user_id: Uuid::nil(),
            provider: "oura".into(),
            provider_user_id: Some("p1".into()),
            scope: Some("daily".into()),
            tokens: tokens(),
            at: at(1),
        }
    }

    #[test]
    fn a_fresh_matching_state_authorizes_once() {
        TestFramework::<Connection>::with(())
            .given(vec![started()])
            .when(authorize("h1", 1))
            .then_expect_events(vec![authorized()]);
        TestFramework::<Connection>::with(())
            .given(vec![started(), authorized()])
            .when(authorize("h1", 2))
            .then_expect_error(ConnectionError::StateUsed);
    }

    #[test]
    fn wrong_expired_or_missing_state_is_refused() {
        TestFramework::<Connection>::with(())
            .given(vec![started()])
            .when(authorize("other", 1))
            .then_expect_error(ConnectionError::StateMismatch);
        TestFramework::<Connection>::with(())
            .given(vec![started()])
            .when(authorize("h1", 16))
            .then_expect_error(ConnectionError::StateExpired);
        TestFramework::<Connection>::with(())
            .given_no_previous_events()
            .when(authorize("h1", 0))
            .then_expect_error(ConnectionError::StateMismatch);
    }

    #[test]
    fn a_denied_state_cannot_be_redeemed_later() {
        TestFramework::<Connection>::with(())
            .given(vec![
                started(),
                ConnectionEvent::AuthorizationDenied {
                    error: "access_denied".into(),
                    at: at(1),
                },
            ])
            .when(authorize("h1", 2))
            .then_expect_error(ConnectionError::StateUsed);
    }

    #[test]
    fn refresh_and_revoke_need_an_active_connection() {
        TestFramework::<Connection>::with(())
            .given(vec![started()])
            .when(ConnectionCommand::RefreshTokens {
                tokens: tokens(),
                at: at(2),
            })
            .then_expect_error(ConnectionError::NotActive);
        TestFramework::<Connection>::with(())
            .given(vec![started(), authorized()])
            .when(ConnectionCommand::Revoke {
                reason: "refresh_failed".into(),
                at: at(3),
            })
            .then_expect_events(vec![ConnectionEvent::ConnectionRevoked {
                reason: "refresh_failed".into(),
                at: at(3),
            }]);
        TestFramework::<Connection>::with(())
            .given_no_previous_events()
            .when(ConnectionCommand::Revoke {
                reason: "user_disconnected".into(),
                at: at(3),
            })
            .then_expect_error(ConnectionError::NotFound);
    }

    #[test]
    fn scope_changes_only_on_active_connections() {
        let change = || ConnectionCommand::ChangeScope {
            scope: "HEALTH_EXPORT".into(),
            at: at(5),
        };
        TestFramework::<Connection>::with(())
            .given(vec![started(), authorized()])
            .when(change())
            .then_expect_events(vec![ConnectionEvent::ScopeChanged {
                scope: "HEALTH_EXPORT".into(),
                at: at(5),
            }]);
        TestFramework::<Connection>::with(())
            .given(vec![started()])
            .when(change())
            .then_expect_error(ConnectionError::NotActive);
    }

    #[test]
    fn reconnecting_after_revocation_reactivates() {
        TestFramework::<Connection>::with(())
            .given(vec![
                started(),
                authorized(),
                ConnectionEvent::ConnectionRevoked {
                    reason: "user_disconnected".into(),
                    at: at(2),
                },
                ConnectionEvent::AuthorizationStarted {
                    user_id: Uuid::nil(),
                    provider: "oura".into(),
                    state_hash: "h2".into(),
                    sealed_pkce_verifier: None,
                    redirect_uri: None,
                    at: at(3),
                },
            ])
            .when(authorize("h2", 4))
            .then_expect_events(vec![ConnectionEvent::ConnectionAuthorized {
                user_id: Uuid::nil(),
                provider: "oura".into(),
                provider_user_id: Some("p1".into()),
                scope: Some("daily".into()),
                tokens: tokens(),
                at: at(4),
            }]);
    }
}
