//! The `SdkAccess` aggregate, one per user (its id is the user's id): the user's SDK refresh
//! tokens and invitation codes. Keeping both on one stream makes an invitation code single
//! use under concurrent redemption: two redemptions of one code append at the same version,
//! and the event store's optimistic lock lets only one of them through.
//!
//! Events carry hashes only (`token_hash`, `code_hash`), never a token or a code.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum SdkAccessCommand {
    /// A refresh token for SDK access tokens of `app_id` (an application's `app_id`, or
    /// `admin:<developer>` for tokens a developer asked for).
    IssueToken {
        token_hash: String,
        app_id: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Exchanges an active refresh token for a new one of the same application.
    RotateToken {
        old_hash: String,
        new_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    RevokeToken {
        token_hash: String,
        at: DateTime<Utc>,
    },
    /// Revokes every active refresh token (a rotated one was presented again: the chain leaked).
    RevokeAllTokens { at: DateTime<Utc> },
    /// A new invitation code; the user's earlier active codes are revoked.
    IssueInvitationCode {
        id: Uuid,
        code_hash: String,
        created_by: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Uses up an active, unexpired code and issues a refresh token in the same append.
    RedeemInvitationCode {
        code_hash: String,
        token_hash: String,
        token_expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SdkAccessEvent {
    SdkRefreshTokenIssued {
        token_hash: String,
        app_id: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    SdkRefreshTokenRevoked {
        token_hash: String,
        at: DateTime<Utc>,
    },
    InvitationCodeIssued {
        id: Uuid,
        code_hash: String,
        created_by: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    InvitationCodeRevoked {
        id: Uuid,
        at: DateTime<Utc>,
    },
    InvitationCodeRedeemed {
        id: Uuid,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for SdkAccessEvent {
    fn event_type(&self) -> String {
        match self {
            SdkAccessEvent::SdkRefreshTokenIssued { .. } => "SdkRefreshTokenIssued",
            SdkAccessEvent::SdkRefreshTokenRevoked { .. } => "SdkRefreshTokenRevoked",
            SdkAccessEvent::InvitationCodeIssued { .. } => "InvitationCodeIssued",
            SdkAccessEvent::InvitationCodeRevoked { .. } => "InvitationCodeRevoked",
            SdkAccessEvent::InvitationCodeRedeemed { .. } => "InvitationCodeRedeemed",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SdkAccessError {
    #[error("Invalid or revoked refresh token")]
    InvalidRefreshToken,
    #[error("Invalid or expired invitation code")]
    InvalidInvitationCode,
}

impl crate::rejection::Rejection for SdkAccessError {
    fn kind(&self) -> crate::rejection::RejectionKind {
        match self {
            SdkAccessError::InvalidInvitationCode => crate::rejection::RejectionKind::NotFound,
            SdkAccessError::InvalidRefreshToken => crate::rejection::RejectionKind::Invalid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkToken {
    pub app_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveCode {
    pub id: Uuid,
    pub created_by: Uuid,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkAccess {
    /// Active refresh tokens by hash.
    pub tokens: BTreeMap<String, SdkToken>,
    /// Codes neither redeemed nor revoked, by hash (expired ones are pruned as time passes).
    pub codes: BTreeMap<String, ActiveCode>,
}

/// The application a code's tokens are recorded under: who invited, as upstream.
pub fn invite_app_id(created_by: Uuid) -> String {
    format!("invite:{created_by}")
}

impl Aggregate for SdkAccess {
    const TYPE: &'static str = "SdkAccess";
    type Command = SdkAccessCommand;
    type Event = SdkAccessEvent;
    type Error = SdkAccessError;
    type Services = ();

    async fn handle(
        &mut self,
        command: SdkAccessCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), SdkAccessError> {
        match command {
            SdkAccessCommand::IssueToken {
                token_hash,
                app_id,
                expires_at,
                at,
            } => {
                let event = SdkAccessEvent::SdkRefreshTokenIssued {
                    token_hash,
                    app_id,
                    expires_at,
                    at,
                };
                sink.write(event, self).await;
            }
            SdkAccessCommand::RotateToken {
                old_hash,
                new_hash,
                expires_at,
                at,
            } => {
                let app_id = match self.tokens.get(&old_hash) {
                    Some(t) if t.expires_at > at => t.app_id.clone(),
                    _ => return Err(SdkAccessError::InvalidRefreshToken),
                };
                let revoke = SdkAccessEvent::SdkRefreshTokenRevoked {
                    token_hash: old_hash,
                    at,
                };
                sink.write(revoke, self).await;
                let issue = SdkAccessEvent::SdkRefreshTokenIssued {
                    token_hash: new_hash,
                    app_id,
                    expires_at,
                    at,
                };
                sink.write(issue, self).await;
            }
            SdkAccessCommand::RevokeToken { token_hash, at } => {
                if !self.tokens.contains_key(&token_hash) {
                    return Err(SdkAccessError::InvalidRefreshToken);
                }
                sink.write(
                    SdkAccessEvent::SdkRefreshTokenRevoked { token_hash, at },
                    self,
                )
                .await;
            }
            SdkAccessCommand::RevokeAllTokens { at } => {
                let hashes: Vec<String> = self.tokens.keys().cloned().collect();
                for token_hash in hashes {
                    sink.write(
                        SdkAccessEvent::SdkRefreshTokenRevoked { token_hash, at },
                        self,
                    )
                    .await;
                }
            }
            SdkAccessCommand::IssueInvitationCode {
                id,
                code_hash,
                created_by,
                expires_at,
                at,
            } => {
                let older: Vec<Uuid> = self.codes.values().map(|c| c.id).collect();
                for old in older {
                    sink.write(SdkAccessEvent::InvitationCodeRevoked { id: old, at }, self)
                        .await;
                }
                let event = SdkAccessEvent::InvitationCodeIssued {
                    id,
                    code_hash,
                    created_by,
                    expires_at,
                    at,
                };
                sink.write(event, self).await;
            }
            SdkAccessCommand::RedeemInvitationCode {
                code_hash,
                token_hash,
                token_expires_at,
                at,
            } => {
                let code = match self.codes.get(&code_hash) {
                    Some(c) if c.expires_at > at => c.clone(),
                    _ => return Err(SdkAccessError::InvalidInvitationCode),
                };
                sink.write(
                    SdkAccessEvent::InvitationCodeRedeemed { id: code.id, at },
                    self,
                )
                .await;
                let issue = SdkAccessEvent::SdkRefreshTokenIssued {
                    token_hash,
                    app_id: invite_app_id(code.created_by),
                    expires_at: token_expires_at,
                    at,
                };
                sink.write(issue, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: SdkAccessEvent) {
        match event {
            SdkAccessEvent::SdkRefreshTokenIssued {
                token_hash,
                app_id,
                expires_at,
                at,
            } => {
                // Expired tokens can never be used again: forget them so state stays small.
                self.tokens.retain(|_, t| t.expires_at > at);
                self.tokens
                    .insert(token_hash, SdkToken { app_id, expires_at });
            }
            SdkAccessEvent::SdkRefreshTokenRevoked { token_hash, .. } => {
                self.tokens.remove(&token_hash);
            }
            SdkAccessEvent::InvitationCodeIssued {
                id,
                code_hash,
                created_by,
                expires_at,
                at,
            } => {
                self.codes.retain(|_, c| c.expires_at > at);
                self.codes.insert(
                    code_hash,
                    ActiveCode {
                        id,
                        created_by,
                        expires_at,
                    },
                );
            }
            SdkAccessEvent::InvitationCodeRevoked { id, .. }
            | SdkAccessEvent::InvitationCodeRedeemed { id, .. } => {
                self.codes.retain(|_, c| c.id != id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type T = TestFramework<SdkAccess>;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn code_issued(id: u128, hash: &str, expires: &str) -> SdkAccessEvent {
        SdkAccessEvent::InvitationCodeIssued {
            id: Uuid::from_u128(id),
            code_hash: hash.into(),
            created_by: Uuid::nil(),
            expires_at: at(expires),
            at: at("2026-01-01T00:00:00Z"),
        }
    }

    fn redeem(hash: &str, when: &str) -> SdkAccessCommand {
        SdkAccessCommand::RedeemInvitationCode {
            code_hash: hash.into(),
            token_hash: "t".into(),
            token_expires_at: at("2026-03-01T00:00:00Z"),
            at: at(when),
        }
    }

    #[test]
    fn a_code_redeems_once_into_a_refresh_token() {
        T::with(())
            .given(vec![code_issued(1, "c", "2026-01-08T00:00:00Z")])
            .when(redeem("c", "2026-01-02T00:00:00Z"))
            .then_expect_events(vec![
                SdkAccessEvent::InvitationCodeRedeemed {
                    id: Uuid::from_u128(1),
                    at: at("2026-01-02T00:00:00Z"),
                },
                SdkAccessEvent::SdkRefreshTokenIssued {
                    token_hash: "t".into(),
                    app_id: invite_app_id(Uuid::nil()),
                    expires_at: at("2026-03-01T00:00:00Z"),
                    at: at("2026-01-02T00:00:00Z"),
                },
            ]);
        T::with(())
            .given(vec![
                code_issued(1, "c", "2026-01-08T00:00:00Z"),
                SdkAccessEvent::InvitationCodeRedeemed {
                    id: Uuid::from_u128(1),
                    at: at("2026-01-02T00:00:00Z"),
                },
            ])
            .when(redeem("c", "2026-01-03T00:00:00Z"))
            .then_expect_error(SdkAccessError::InvalidInvitationCode);
    }

    #[test]
    fn expired_unknown_and_superseded_codes_are_refused() {
        T::with(())
            .given(vec![code_issued(1, "c", "2026-01-08T00:00:00Z")])
            .when(redeem("c", "2026-01-08T00:00:00Z"))
            .then_expect_error(SdkAccessError::InvalidInvitationCode);
        T::with(())
            .given(vec![code_issued(1, "c", "2026-01-08T00:00:00Z")])
            .when(redeem("other", "2026-01-02T00:00:00Z"))
            .then_expect_error(SdkAccessError::InvalidInvitationCode);
        // A new code revokes the older one.
        T::with(())
            .given(vec![code_issued(1, "c", "2026-01-08T00:00:00Z")])
            .when(SdkAccessCommand::IssueInvitationCode {
                id: Uuid::from_u128(2),
                code_hash: "d".into(),
                created_by: Uuid::nil(),
                expires_at: at("2026-01-09T00:00:00Z"),
                at: at("2026-01-02T00:00:00Z"),
            })
            .then_expect_events(vec![
                SdkAccessEvent::InvitationCodeRevoked {
                    id: Uuid::from_u128(1),
                    at: at("2026-01-02T00:00:00Z"),
                },
                SdkAccessEvent::InvitationCodeIssued {
                    id: Uuid::from_u128(2),
                    code_hash: "d".into(),
                    created_by: Uuid::nil(),
                    expires_at: at("2026-01-09T00:00:00Z"),
                    at: at("2026-01-02T00:00:00Z"),
                },
            ]);
    }

    #[test]
    fn rotation_keeps_the_application_and_refuses_reuse() {
        let issued = SdkAccessEvent::SdkRefreshTokenIssued {
            token_hash: "a".into(),
            app_id: "app_x".into(),
            expires_at: at("2026-02-01T00:00:00Z"),
            at: at("2026-01-01T00:00:00Z"),
        };
        let rotate = SdkAccessCommand::RotateToken {
            old_hash: "a".into(),
            new_hash: "b".into(),
            expires_at: at("2026-03-01T00:00:00Z"),
            at: at("2026-01-15T00:00:00Z"),
        };
        T::with(())
            .given(vec![issued.clone()])
            .when(rotate.clone())
            .then_expect_events(vec![
                SdkAccessEvent::SdkRefreshTokenRevoked {
                    token_hash: "a".into(),
                    at: at("2026-01-15T00:00:00Z"),
                },
                SdkAccessEvent::SdkRefreshTokenIssued {
                    token_hash: "b".into(),
                    app_id: "app_x".into(),
                    expires_at: at("2026-03-01T00:00:00Z"),
                    at: at("2026-01-15T00:00:00Z"),
                },
            ]);
        T::with(())
            .given(vec![
                issued,
                SdkAccessEvent::SdkRefreshTokenRevoked {
                    token_hash: "a".into(),
                    at: at("2026-01-02T00:00:00Z"),
                },
            ])
            .when(rotate)
            .then_expect_error(SdkAccessError::InvalidRefreshToken);
    }
}
