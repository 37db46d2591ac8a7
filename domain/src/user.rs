//! The `User` aggregate: a person whose wearable data the platform holds.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_EXTERNAL_ID_LEN: usize = 255;

/// The person-describing fields of a user, as the contract's `UserCreate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub external_user_id: Option<String>,
}

/// A partial update: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserChanges {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub first_name: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub last_name: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub email: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub external_user_id: Option<Option<String>>,
}

/// Keeps "present but null" apart from "absent": serde would read both as `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl UserChanges {
    pub fn is_empty(&self) -> bool {
        self.first_name.is_none()
            && self.last_name.is_none()
            && self.email.is_none()
            && self.external_user_id.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Create {
        id: Uuid,
        profile: UserProfile,
        at: DateTime<Utc>,
    },
    Update {
        changes: UserChanges,
        at: DateTime<Utc>,
    },
    Delete {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UserEvent {
    UserCreated {
        id: Uuid,
        profile: UserProfile,
        at: DateTime<Utc>,
    },
    UserUpdated {
        changes: UserChanges,
        at: DateTime<Utc>,
    },
    UserDeleted {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::UserCreated { .. } => "UserCreated",
            UserEvent::UserUpdated { .. } => "UserUpdated",
            UserEvent::UserDeleted { .. } => "UserDeleted",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UserError {
    #[error("User entity already exists")]
    AlreadyExists,
    #[error("User not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Option<Uuid>,
    pub profile: UserProfile,
    pub created_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

fn check_len(field: &str, value: &Option<String>, max: usize) -> Result<(), UserError> {
    match value {
        Some(v) if v.chars().count() > max => Err(UserError::Invalid(format!(
            "{field}: String should have at most {max} characters"
        ))),
        _ => Ok(()),
    }
}

/// The e-mail check shared by users and developers.
pub fn is_valid_email(email: &str) -> bool {
    email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.contains(char::is_whitespace)
            && email.matches('@').count() == 1
    })
}

fn check_email(value: &Option<String>) -> Result<(), UserError> {
    if let Some(email) = value {
        if !is_valid_email(email) {
            return Err(UserError::Invalid(
                "email: value is not a valid email address".into(),
            ));
        }
    }
    Ok(())
}

fn validate(profile: &UserProfile) -> Result<(), UserError> {
    check_len("first_name", &profile.first_name, MAX_NAME_LEN)?;
    check_len("last_name", &profile.last_name, MAX_NAME_LEN)?;
    check_len(
        "external_user_id",
        &profile.external_user_id,
        MAX_EXTERNAL_ID_LEN,
    )?;
    check_email(&profile.email)
}

impl UserProfile {
    fn apply(&mut self, changes: &UserChanges) {
        let set = |target: &mut Option<String>, change: &Option<Option<String>>| {
            if let Some(v) = change {
                *target = v.clone();
            }
        };
        set(&mut self.first_name, &changes.first_name);
        set(&mut self.last_name, &changes.last_name);
        set(&mut self.email, &changes.email);
        set(&mut self.external_user_id, &changes.external_user_id);
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "User";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: UserCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), UserError> {
        match command {
            UserCommand::Create { id, profile, at } => {
                if self.id.is_some() {
                    return Err(UserError::AlreadyExists);
                }
                validate(&profile)?;
                sink.write(UserEvent::UserCreated { id, profile, at }, self)
                    .await;
            }
            UserCommand::Update { changes, at } => {
                if self.id.is_none() || self.deleted {
                    return Err(UserError::NotFound);
                }
                let mut next = self.profile.clone();
                next.apply(&changes);
                validate(&next)?;
                // An update that changes nothing is not history worth keeping.
                if next != self.profile {
                    sink.write(UserEvent::UserUpdated { changes, at }, self)
                        .await;
                }
            }
            UserCommand::Delete { at } => {
                if self.id.is_none() || self.deleted {
                    return Err(UserError::NotFound);
                }
                sink.write(UserEvent::UserDeleted { at }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::UserCreated { id, profile, at } => {
                self.id = Some(id);
                self.profile = profile;
                self.created_at = Some(at);
            }
            UserEvent::UserUpdated { changes, .. } => self.profile.apply(&changes),
            UserEvent::UserDeleted { .. } => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type T = TestFramework<User>;

    fn at() -> DateTime<Utc> {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    fn created() -> UserEvent {
        UserEvent::UserCreated {
            id: Uuid::nil(),
            profile: UserProfile {
                first_name: Some("Ada".into()),
                email: Some("ada@example.com".into()),
                ..Default::default()
            },
            at: at(),
        }
    }

    #[test]
    fn create_emits_user_created() {
        let UserEvent::UserCreated { id, profile, at } = created() else {
            unreachable!()
        };
        T::with(())
            .given_no_previous_events()
            .when(UserCommand::Create { id, profile, at })
            .then_expect_events(vec![created()]);
    }

    #[test]
    fn create_twice_is_refused() {
        let UserEvent::UserCreated { id, profile, at } = created() else {
            unreachable!()
        };
        T::with(())
            .given(vec![created()])
            .when(UserCommand::Create { id, profile, at })
            .then_expect_error(UserError::AlreadyExists);
    }

    #[test]
    fn bad_email_and_long_names_are_refused() {
        let cmd = |profile| UserCommand::Create {
            id: Uuid::nil(),
            profile,
            at: at(),
        };
        T::with(())
            .given_no_previous_events()
            .when(cmd(UserProfile {
                email: Some("not-an-email".into()),
                ..Default::default()
            }))
            .then_expect_error_message("email: value is not a valid email address");
        T::with(())
            .given_no_previous_events()
            .when(cmd(UserProfile {
                first_name: Some("x".repeat(101)),
                ..Default::default()
            }))
            .then_expect_error_message("first_name: String should have at most 100 characters");
    }

    #[test]
    fn update_emits_changes_and_skips_no_ops() {
        let changes = UserChanges {
            last_name: Some(Some("Lovelace".into())),
            ..Default::default()
        };
        T::with(())
            .given(vec![created()])
            .when(UserCommand::Update {
                changes: changes.clone(),
                at: at(),
            })
            .then_expect_events(vec![UserEvent::UserUpdated { changes, at: at() }]);
        T::with(())
            .given(vec![created()])
            .when(UserCommand::Update {
                changes: UserChanges {
                    first_name: Some(Some("Ada".into())),
                    ..Default::default()
                },
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn update_or_delete_of_missing_or_deleted_user_is_not_found() {
        T::with(())
            .given_no_previous_events()
            .when(UserCommand::Delete { at: at() })
            .then_expect_error(UserError::NotFound);
        T::with(())
            .given(vec![created(), UserEvent::UserDeleted { at: at() }])
            .when(UserCommand::Update {
                changes: UserChanges::default(),
                at: at(),
            })
            .then_expect_error(UserError::NotFound);
    }

    #[test]
    fn a_cleared_field_survives_serialization() {
        let changes = UserChanges {
            last_name: Some(None),
            email: Some(Some("a@b.co".into())),
            ..Default::default()
        };
        let json = serde_json::to_value(&changes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"last_name": null, "email": "a@b.co"})
        );
        assert_eq!(
            serde_json::from_value::<UserChanges>(json).unwrap(),
            changes
        );
    }

    #[test]
    fn delete_emits_user_deleted() {
        T::with(())
            .given(vec![created()])
            .when(UserCommand::Delete { at: at() })
            .then_expect_events(vec![UserEvent::UserDeleted { at: at() }]);
    }
}
