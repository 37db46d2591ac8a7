//! The `Developer` aggregate: an account that operates the platform (dashboard login, API keys).
//! Its id is derived from the e-mail address, so registering the same address twice collides
//! on the event store's optimistic lock instead of needing a cross-aggregate check.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The namespace for developer ids (uuid v5 of the lower-cased e-mail).
const DEVELOPER_NS: Uuid = Uuid::from_u128(0x5f0e_2a9c_4b1d_4e0a_9c3f_7d21_64a8_b001);

pub fn developer_id(email: &str) -> Uuid {
    Uuid::new_v5(&DEVELOPER_NS, email.trim().to_lowercase().as_bytes())
}

/// What an account may do. `Admin`: everything, including the team (developers,
/// invitations). `Developer`: the platform's API (users, data, keys, providers), not the team.
/// `Auditor`: reads the log's history and tamper evidence, nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Accounts registered before roles existed were all made by the installation itself.
    #[default]
    Admin,
    Developer,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "developer" => Some(Role::Developer),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeveloperCommand {
    Register {
        email: String,
        password_hash: String,
        first_name: Option<String>,
        last_name: Option<String>,
        role: Role,
        at: DateTime<Utc>,
    },
    ChangeRole {
        role: Role,
        at: DateTime<Utc>,
    },
    /// Removes the account: its tokens stop working; the address can be registered again.
    Remove {
        at: DateTime<Utc>,
    },
    /// A successful login: the caller already verified the password.
    IssueRefreshToken {
        token_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Exchange an active refresh token for a new one (rotation).
    RotateRefreshToken {
        old_hash: String,
        new_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    RevokeRefreshToken {
        token_hash: String,
        at: DateTime<Utc>,
    },
    ChangePassword {
        password_hash: String,
        at: DateTime<Utc>,
    },
    /// Changes the profile; `None` keeps a field.
    UpdateProfile {
        first_name: Option<String>,
        last_name: Option<String>,
        email: Option<String>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DeveloperEvent {
    DeveloperRegistered {
        id: Uuid,
        email: String,
        password_hash: String,
        first_name: Option<String>,
        last_name: Option<String>,
        /// Absent in entries written before roles: those accounts are admins.
        #[serde(default)]
        role: Role,
        at: DateTime<Utc>,
    },
    DeveloperRoleChanged {
        role: Role,
        at: DateTime<Utc>,
    },
    DeveloperRemoved {
        at: DateTime<Utc>,
    },
    RefreshTokenIssued {
        token_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    RefreshTokenRevoked {
        token_hash: String,
        at: DateTime<Utc>,
    },
    PasswordChanged {
        password_hash: String,
        at: DateTime<Utc>,
    },
    /// `None` fields were left as they were. The id stays the one derived from the e-mail
    /// the account was registered with.
    DeveloperProfileUpdated {
        first_name: Option<String>,
        last_name: Option<String>,
        email: Option<String>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for DeveloperEvent {
    fn event_type(&self) -> String {
        match self {
            DeveloperEvent::DeveloperRegistered { .. } => "DeveloperRegistered",
            DeveloperEvent::RefreshTokenIssued { .. } => "RefreshTokenIssued",
            DeveloperEvent::RefreshTokenRevoked { .. } => "RefreshTokenRevoked",
            DeveloperEvent::PasswordChanged { .. } => "PasswordChanged",
            DeveloperEvent::DeveloperProfileUpdated { .. } => "DeveloperProfileUpdated",
            DeveloperEvent::DeveloperRoleChanged { .. } => "DeveloperRoleChanged",
            DeveloperEvent::DeveloperRemoved { .. } => "DeveloperRemoved",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeveloperError {
    #[error("Developer entity already exists")]
    AlreadyExists,
    #[error("Developer not found")]
    NotFound,
    #[error("Invalid or revoked refresh token")]
    InvalidRefreshToken,
    #[error("{0}")]
    Invalid(String),
}

/// The contract's limit on developer names.
const MAX_NAME_LEN: usize = 100;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Developer {
    pub id: Option<Uuid>,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    /// Active refresh tokens: hash → expiry.
    pub refresh_tokens: BTreeMap<String, DateTime<Utc>>,
}

impl Aggregate for Developer {
    const TYPE: &'static str = "Developer";
    type Command = DeveloperCommand;
    type Event = DeveloperEvent;
    type Error = DeveloperError;
    type Services = ();

    async fn handle(
        &mut self,
        command: DeveloperCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DeveloperError> {
        if !matches!(command, DeveloperCommand::Register { .. }) && self.id.is_none() {
            return Err(DeveloperError::NotFound);
        }
        match command {
            DeveloperCommand::Register {
                email,
                password_hash,
                first_name,
                last_name,
                role,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DeveloperError::AlreadyExists);
                }
                let event = DeveloperEvent::DeveloperRegistered {
                    id: developer_id(&email),
                    email: email.trim().to_lowercase(),
                    password_hash,
                    first_name,
                    last_name,
                    role,
                    at,
                };
                sink.write(event, self).await;
            }
            DeveloperCommand::ChangeRole { role, at } => {
                if role != self.role {
                    sink.write(DeveloperEvent::DeveloperRoleChanged { role, at }, self)
                        .await;
                }
            }
            DeveloperCommand::Remove { at } => {
                sink.write(DeveloperEvent::DeveloperRemoved { at }, self)
                    .await;
            }
            DeveloperCommand::IssueRefreshToken {
                token_hash,
                expires_at,
                at,
            } => {
                let event = DeveloperEvent::RefreshTokenIssued {
                    token_hash,
                    expires_at,
                    at,
                };
                sink.write(event, self).await;
            }
            DeveloperCommand::RotateRefreshToken {
                old_hash,
                new_hash,
                expires_at,
                at,
            } => {
                match self.refresh_tokens.get(&old_hash) {
                    Some(exp) if *exp > at => {}
                    _ => return Err(DeveloperError::InvalidRefreshToken),
                }
                let revoke = DeveloperEvent::RefreshTokenRevoked {
                    token_hash: old_hash,
                    at,
                };
                sink.write(revoke, self).await;
                let issue = DeveloperEvent::RefreshTokenIssued {
                    token_hash: new_hash,
                    expires_at,
                    at,
                };
                sink.write(issue, self).await;
            }
            DeveloperCommand::RevokeRefreshToken { token_hash, at } => {
                if !self.refresh_tokens.contains_key(&token_hash) {
                    return Err(DeveloperError::InvalidRefreshToken);
                }
                sink.write(DeveloperEvent::RefreshTokenRevoked { token_hash, at }, self)
                    .await;
            }
            DeveloperCommand::ChangePassword { password_hash, at } => {
                sink.write(DeveloperEvent::PasswordChanged { password_hash, at }, self)
                    .await;
            }
            DeveloperCommand::UpdateProfile {
                first_name,
                last_name,
                email,
                at,
            } => {
                for (field, v) in [("first_name", &first_name), ("last_name", &last_name)] {
                    if v.as_ref().is_some_and(|v| v.chars().count() > MAX_NAME_LEN) {
                        return Err(DeveloperError::Invalid(format!(
                            "{field}: String should have at most {MAX_NAME_LEN} characters"
                        )));
                    }
                }
                let email = email.map(|e| e.trim().to_lowercase());
                if email
                    .as_deref()
                    .is_some_and(|e| !crate::user::is_valid_email(e))
                {
                    return Err(DeveloperError::Invalid(
                        "email: value is not a valid email address".into(),
                    ));
                }
                let event = DeveloperEvent::DeveloperProfileUpdated {
                    first_name,
                    last_name,
                    email,
                    at,
                };
                sink.write(event, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: DeveloperEvent) {
        match event {
            DeveloperEvent::DeveloperRegistered {
                id,
                email,
                password_hash,
                role,
                ..
            } => {
                self.id = Some(id);
                self.email = email;
                self.password_hash = password_hash;
                self.role = role;
            }
            DeveloperEvent::DeveloperRoleChanged { role, .. } => self.role = role,
            // A removed account is as if it had never been registered.
            DeveloperEvent::DeveloperRemoved { .. } => *self = Developer::default(),
            DeveloperEvent::RefreshTokenIssued {
                token_hash,
                expires_at,
                at,
            } => {
                // Expired tokens can never be used again: forget them so state stays small.
                self.refresh_tokens.retain(|_, exp| *exp > at);
                self.refresh_tokens.insert(token_hash, expires_at);
            }
            DeveloperEvent::RefreshTokenRevoked { token_hash, .. } => {
                self.refresh_tokens.remove(&token_hash);
            }
            DeveloperEvent::PasswordChanged { password_hash, .. } => {
                self.password_hash = password_hash;
            }
            DeveloperEvent::DeveloperProfileUpdated { email, .. } => {
                if let Some(email) = email {
                    self.email = email;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type T = TestFramework<Developer>;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn registered() -> DeveloperEvent {
        DeveloperEvent::DeveloperRegistered {
            id: developer_id("Admin@Example.com"),
            email: "admin@example.com".into(),
            password_hash: "h".into(),
            first_name: None,
            last_name: None,
            role: Role::Admin,
            at: at("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn register_lowercases_email_and_derives_id() {
        T::with(())
            .given_no_previous_events()
            .when(DeveloperCommand::Register {
                email: " Admin@Example.com".into(),
                password_hash: "h".into(),
                first_name: None,
                last_name: None,
                role: Role::Admin,
                at: at("2026-01-01T00:00:00Z"),
            })
            .then_expect_events(vec![registered()]);
        assert_eq!(
            developer_id("admin@example.com"),
            developer_id("ADMIN@example.com ")
        );
    }

    #[test]
    fn register_twice_is_refused() {
        T::with(())
            .given(vec![registered()])
            .when(DeveloperCommand::Register {
                email: "admin@example.com".into(),
                password_hash: "h".into(),
                first_name: None,
                last_name: None,
                role: Role::Admin,
                at: at("2026-01-01T00:00:00Z"),
            })
            .then_expect_error(DeveloperError::AlreadyExists);
    }

    #[test]
    fn rotation_revokes_the_old_token_and_refuses_reuse() {
        let issued = DeveloperEvent::RefreshTokenIssued {
            token_hash: "a".into(),
            expires_at: at("2026-02-01T00:00:00Z"),
            at: at("2026-01-01T00:00:00Z"),
        };
        let rotate = |old: &str| DeveloperCommand::RotateRefreshToken {
            old_hash: old.into(),
            new_hash: "b".into(),
            expires_at: at("2026-03-01T00:00:00Z"),
            at: at("2026-01-15T00:00:00Z"),
        };
        T::with(())
            .given(vec![registered(), issued.clone()])
            .when(rotate("a"))
            .then_expect_events(vec![
                DeveloperEvent::RefreshTokenRevoked {
                    token_hash: "a".into(),
                    at: at("2026-01-15T00:00:00Z"),
                },
                DeveloperEvent::RefreshTokenIssued {
                    token_hash: "b".into(),
                    expires_at: at("2026-03-01T00:00:00Z"),
                    at: at("2026-01-15T00:00:00Z"),
                },
            ]);
        T::with(())
            .given(vec![
                registered(),
                issued,
                DeveloperEvent::RefreshTokenRevoked {
                    token_hash: "a".into(),
                    at: at("2026-01-02T00:00:00Z"),
                },
            ])
            .when(rotate("a"))
            .then_expect_error(DeveloperError::InvalidRefreshToken);
    }

    #[test]
    fn expired_refresh_token_is_refused() {
        T::with(())
            .given(vec![
                registered(),
                DeveloperEvent::RefreshTokenIssued {
                    token_hash: "a".into(),
                    expires_at: at("2026-01-02T00:00:00Z"),
                    at: at("2026-01-01T00:00:00Z"),
                },
            ])
            .when(DeveloperCommand::RotateRefreshToken {
                old_hash: "a".into(),
                new_hash: "b".into(),
                expires_at: at("2026-03-01T00:00:00Z"),
                at: at("2026-01-03T00:00:00Z"),
            })
            .then_expect_error(DeveloperError::InvalidRefreshToken);
    }

    #[test]
    fn commands_on_unknown_developer_are_not_found() {
        T::with(())
            .given_no_previous_events()
            .when(DeveloperCommand::ChangePassword {
                password_hash: "x".into(),
                at: at("2026-01-01T00:00:00Z"),
            })
            .then_expect_error(DeveloperError::NotFound);
    }

    #[test]
    fn profile_update_checks_and_lowercases_the_email() {
        let update = |email: &str| DeveloperCommand::UpdateProfile {
            first_name: Some("Ada".into()),
            last_name: None,
            email: Some(email.into()),
            at: at("2026-01-02T00:00:00Z"),
        };
        T::with(())
            .given(vec![registered()])
            .when(update(" New@Example.com"))
            .then_expect_events(vec![DeveloperEvent::DeveloperProfileUpdated {
                first_name: Some("Ada".into()),
                last_name: None,
                email: Some("new@example.com".into()),
                at: at("2026-01-02T00:00:00Z"),
            }]);
        T::with(())
            .given(vec![registered()])
            .when(update("not-an-email"))
            .then_expect_error(DeveloperError::Invalid(
                "email: value is not a valid email address".into(),
            ));
    }

    #[test]
    fn entries_from_before_roles_are_admins() {
        let old = r#"{"type":"DeveloperRegistered","id":"00000000-0000-0000-0000-000000000001","email":"a@b.c","password_hash":"h","first_name":null,"last_name":null,"at":"2026-01-01T00:00:00Z"}"#;
        let DeveloperEvent::DeveloperRegistered { role, .. } = serde_json::from_str(old).unwrap()
        else {
            panic!("decoded as another event")
        };
        assert_eq!(role, Role::Admin);
    }

    #[test]
    fn a_removed_account_refuses_commands_and_can_register_again() {
        let removed = DeveloperEvent::DeveloperRemoved {
            at: at("2026-01-02T00:00:00Z"),
        };
        T::with(())
            .given(vec![registered(), removed.clone()])
            .when(DeveloperCommand::ChangeRole {
                role: Role::Auditor,
                at: at("2026-01-03T00:00:00Z"),
            })
            .then_expect_error(DeveloperError::NotFound);
        T::with(())
            .given(vec![registered(), removed])
            .when(DeveloperCommand::Register {
                email: "admin@example.com".into(),
                password_hash: "h2".into(),
                first_name: None,
                last_name: None,
                role: Role::Auditor,
                at: at("2026-01-03T00:00:00Z"),
            })
            .then_expect_events(vec![DeveloperEvent::DeveloperRegistered {
                id: developer_id("admin@example.com"),
                email: "admin@example.com".into(),
                password_hash: "h2".into(),
                first_name: None,
                last_name: None,
                role: Role::Auditor,
                at: at("2026-01-03T00:00:00Z"),
            }]);
    }

    #[test]
    fn a_role_change_to_the_same_role_records_nothing() {
        T::with(())
            .given(vec![registered()])
            .when(DeveloperCommand::ChangeRole {
                role: Role::Admin,
                at: at("2026-01-03T00:00:00Z"),
            })
            .then_expect_events(vec![]);
        T::with(())
            .given(vec![registered()])
            .when(DeveloperCommand::ChangeRole {
                role: Role::Developer,
                at: at("2026-01-03T00:00:00Z"),
            })
            .then_expect_events(vec![DeveloperEvent::DeveloperRoleChanged {
                role: Role::Developer,
                at: at("2026-01-03T00:00:00Z"),
            }]);
    }
}
