//! The `Invitation` aggregate: an admin invites an address to the team with a role; whoever
//! holds the token (shown once, kept only as a SHA-256) accepts it once, before it expires,
//! and becomes a developer account with that role.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::developer::Role;

#[derive(Debug, Clone, PartialEq)]
pub enum InvitationCommand {
    Create {
        id: Uuid,
        email: String,
        role: Role,
        token_hash: String,
        expires_at: DateTime<Utc>,
        invited_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    /// A new token and a new expiry; the old token stops working.
    Resend {
        token_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    Revoke {
        at: DateTime<Utc>,
    },
    Accept {
        token_hash: String,
        developer_id: Uuid,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum InvitationEvent {
    InvitationCreated {
        id: Uuid,
        email: String,
        role: Role,
        token_hash: String,
        expires_at: DateTime<Utc>,
        invited_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    InvitationResent {
        token_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    InvitationRevoked {
        at: DateTime<Utc>,
    },
    InvitationAccepted {
        developer_id: Uuid,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for InvitationEvent {
    fn event_type(&self) -> String {
        match self {
            InvitationEvent::InvitationCreated { .. } => "InvitationCreated",
            InvitationEvent::InvitationResent { .. } => "InvitationResent",
            InvitationEvent::InvitationRevoked { .. } => "InvitationRevoked",
            InvitationEvent::InvitationAccepted { .. } => "InvitationAccepted",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvitationError {
    #[error("Invitation not found")]
    NotFound,
    #[error("Invitation already exists")]
    AlreadyExists,
    #[error("Invalid or expired invitation")]
    Invalid,
    #[error("Invitation is no longer pending")]
    NotPending,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    #[default]
    None,
    Pending,
    Accepted,
    Revoked,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub state: State,
    pub token_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Aggregate for Invitation {
    const TYPE: &'static str = "Invitation";
    type Command = InvitationCommand;
    type Event = InvitationEvent;
    type Error = InvitationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: InvitationCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), InvitationError> {
        match (self.state, command) {
            (
                State::None,
                InvitationCommand::Create {
                    id,
                    email,
                    role,
                    token_hash,
                    expires_at,
                    invited_by,
                    at,
                },
            ) => {
                let event = InvitationEvent::InvitationCreated {
                    id,
                    email: email.trim().to_lowercase(),
                    role,
                    token_hash,
                    expires_at,
                    invited_by,
                    at,
                };
                sink.write(event, self).await;
            }
            (_, InvitationCommand::Create { .. }) => return Err(InvitationError::AlreadyExists),
            (State::None, _) => return Err(InvitationError::NotFound),
            (
                State::Pending,
                InvitationCommand::Resend {
                    token_hash,
                    expires_at,
                    at,
                },
            ) => {
                let event = InvitationEvent::InvitationResent {
                    token_hash,
                    expires_at,
                    at,
                };
                sink.write(event, self).await;
            }
            (State::Pending, InvitationCommand::Revoke { at }) => {
                sink.write(InvitationEvent::InvitationRevoked { at }, self)
                    .await;
            }
            // Revoking twice is a no-op, as upstream answers it.
            (State::Revoked, InvitationCommand::Revoke { .. }) => {}
            (
                State::Pending,
                InvitationCommand::Accept {
                    token_hash,
                    developer_id,
                    at,
                },
            ) => {
                let live = self.expires_at.is_some_and(|e| e > at);
                if token_hash != self.token_hash || !live {
                    return Err(InvitationError::Invalid);
                }
                sink.write(
                    InvitationEvent::InvitationAccepted { developer_id, at },
                    self,
                )
                .await;
            }
            (_, InvitationCommand::Accept { .. }) => return Err(InvitationError::Invalid),
            (_, _) => return Err(InvitationError::NotPending),
        }
        Ok(())
    }

    fn apply(&mut self, event: InvitationEvent) {
        match event {
            InvitationEvent::InvitationCreated {
                token_hash,
                expires_at,
                ..
            }
            | InvitationEvent::InvitationResent {
                token_hash,
                expires_at,
                ..
            } => {
                self.state = State::Pending;
                self.token_hash = token_hash;
                self.expires_at = Some(expires_at);
            }
            InvitationEvent::InvitationRevoked { .. } => self.state = State::Revoked,
            InvitationEvent::InvitationAccepted { .. } => self.state = State::Accepted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type T = TestFramework<Invitation>;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn created() -> InvitationEvent {
        InvitationEvent::InvitationCreated {
            id: Uuid::nil(),
            email: "new@example.com".into(),
            role: Role::Auditor,
            token_hash: "t1".into(),
            expires_at: at("2026-01-08T00:00:00Z"),
            invited_by: None,
            at: at("2026-01-01T00:00:00Z"),
        }
    }

    fn accept(token: &str, when: &str) -> InvitationCommand {
        InvitationCommand::Accept {
            token_hash: token.into(),
            developer_id: Uuid::nil(),
            at: at(when),
        }
    }

    #[test]
    fn the_token_accepts_once_before_expiry() {
        T::with(())
            .given(vec![created()])
            .when(accept("t1", "2026-01-02T00:00:00Z"))
            .then_expect_events(vec![InvitationEvent::InvitationAccepted {
                developer_id: Uuid::nil(),
                at: at("2026-01-02T00:00:00Z"),
            }]);
        let accepted = InvitationEvent::InvitationAccepted {
            developer_id: Uuid::nil(),
            at: at("2026-01-02T00:00:00Z"),
        };
        T::with(())
            .given(vec![created(), accepted])
            .when(accept("t1", "2026-01-03T00:00:00Z"))
            .then_expect_error(InvitationError::Invalid);
        T::with(())
            .given(vec![created()])
            .when(accept("t1", "2026-01-09T00:00:00Z"))
            .then_expect_error(InvitationError::Invalid);
        T::with(())
            .given(vec![created()])
            .when(accept("other", "2026-01-02T00:00:00Z"))
            .then_expect_error(InvitationError::Invalid);
    }

    #[test]
    fn a_resent_invitation_takes_only_the_new_token_and_a_revoked_one_none() {
        let resent = InvitationEvent::InvitationResent {
            token_hash: "t2".into(),
            expires_at: at("2026-01-12T00:00:00Z"),
            at: at("2026-01-05T00:00:00Z"),
        };
        T::with(())
            .given(vec![created(), resent.clone()])
            .when(accept("t1", "2026-01-06T00:00:00Z"))
            .then_expect_error(InvitationError::Invalid);
        T::with(())
            .given(vec![created(), resent])
            .when(accept("t2", "2026-01-10T00:00:00Z"))
            .then_expect_events(vec![InvitationEvent::InvitationAccepted {
                developer_id: Uuid::nil(),
                at: at("2026-01-10T00:00:00Z"),
            }]);
        let revoked = InvitationEvent::InvitationRevoked {
            at: at("2026-01-02T00:00:00Z"),
        };
        T::with(())
            .given(vec![created(), revoked.clone()])
            .when(accept("t1", "2026-01-03T00:00:00Z"))
            .then_expect_error(InvitationError::Invalid);
        T::with(())
            .given(vec![created(), revoked])
            .when(InvitationCommand::Resend {
                token_hash: "t3".into(),
                expires_at: at("2026-01-12T00:00:00Z"),
                at: at("2026-01-05T00:00:00Z"),
            })
            .then_expect_error(InvitationError::NotPending);
    }
}
