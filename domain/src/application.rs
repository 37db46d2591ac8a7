//! The `Application` aggregate: SDK app credentials (`app_id` + `app_secret`) a developer
//! hands to a mobile app's backend, which exchanges them for user-scoped SDK tokens. The
//! secret is shown once; events carry only its SHA-256.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The contract's limit on application names.
pub const MAX_NAME_LEN: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub enum ApplicationCommand {
    Create {
        id: Uuid,
        app_id: String,
        name: String,
        secret_hash: String,
        developer_id: Uuid,
        at: DateTime<Utc>,
    },
    RotateSecret {
        secret_hash: String,
        at: DateTime<Utc>,
    },
    Delete {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ApplicationEvent {
    ApplicationCreated {
        id: Uuid,
        app_id: String,
        name: String,
        secret_hash: String,
        developer_id: Uuid,
        at: DateTime<Utc>,
    },
    ApplicationSecretRotated {
        secret_hash: String,
        at: DateTime<Utc>,
    },
    ApplicationDeleted {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ApplicationEvent {
    fn event_type(&self) -> String {
        match self {
            ApplicationEvent::ApplicationCreated { .. } => "ApplicationCreated",
            ApplicationEvent::ApplicationSecretRotated { .. } => "ApplicationSecretRotated",
            ApplicationEvent::ApplicationDeleted { .. } => "ApplicationDeleted",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApplicationError {
    #[error("Application entity already exists")]
    AlreadyExists,
    #[error("Application not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    pub id: Option<Uuid>,
    pub deleted: bool,
}

impl Aggregate for Application {
    const TYPE: &'static str = "Application";
    type Command = ApplicationCommand;
    type Event = ApplicationEvent;
    type Error = ApplicationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ApplicationCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ApplicationError> {
        match command {
            ApplicationCommand::Create {
                id,
                app_id,
                name,
                secret_hash,
                developer_id,
                at,
            } => {
                if self.id.is_some() {
                    return Err(ApplicationError::AlreadyExists);
                }
                let name = name.trim().to_string();
                if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
                    return Err(ApplicationError::Invalid(format!(
                        "name: must be 1 to {MAX_NAME_LEN} characters"
                    )));
                }
                let event = ApplicationEvent::ApplicationCreated {
                    id,
                    app_id,
                    name,
                    secret_hash,
                    developer_id,
                    at,
                };
                sink.write(event, self).await;
            }
            ApplicationCommand::RotateSecret { secret_hash, at } => {
                if self.id.is_none() || self.deleted {
                    return Err(ApplicationError::NotFound);
                }
                let event = ApplicationEvent::ApplicationSecretRotated { secret_hash, at };
                sink.write(event, self).await;
            }
            ApplicationCommand::Delete { at } => {
                if self.id.is_none() || self.deleted {
                    return Err(ApplicationError::NotFound);
                }
                sink.write(ApplicationEvent::ApplicationDeleted { at }, self)
                    .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: ApplicationEvent) {
        match event {
            ApplicationEvent::ApplicationCreated { id, .. } => self.id = Some(id),
            ApplicationEvent::ApplicationSecretRotated { .. } => {}
            ApplicationEvent::ApplicationDeleted { .. } => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type T = TestFramework<Application>;

    fn at() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn created() -> ApplicationEvent {
        ApplicationEvent::ApplicationCreated {
            id: Uuid::nil(),
            app_id: "app_1".into(),
            name: "Mobile".into(),
            secret_hash: "h".into(),
            developer_id: Uuid::nil(),
            at: at(),
        }
    }

    #[test]
    fn create_trims_and_checks_the_name() {
        let create = |name: &str| ApplicationCommand::Create {
            id: Uuid::nil(),
            app_id: "app_1".into(),
            name: name.into(),
            secret_hash: "h".into(),
            developer_id: Uuid::nil(),
            at: at(),
        };
        T::with(())
            .given_no_previous_events()
            .when(create(" Mobile "))
            .then_expect_events(vec![created()]);
        T::with(())
            .given_no_previous_events()
            .when(create("  "))
            .then_expect_error_message("name: must be 1 to 100 characters");
        T::with(())
            .given_no_previous_events()
            .when(create(&"x".repeat(101)))
            .then_expect_error_message("name: must be 1 to 100 characters");
    }

    #[test]
    fn a_deleted_application_cannot_be_rotated_or_deleted() {
        let given = vec![created(), ApplicationEvent::ApplicationDeleted { at: at() }];
        T::with(())
            .given(given.clone())
            .when(ApplicationCommand::RotateSecret {
                secret_hash: "x".into(),
                at: at(),
            })
            .then_expect_error(ApplicationError::NotFound);
        T::with(())
            .given(given)
            .when(ApplicationCommand::Delete { at: at() })
            .then_expect_error(ApplicationError::NotFound);
        T::with(())
            .given(vec![created()])
            .when(ApplicationCommand::RotateSecret {
                secret_hash: "x".into(),
                at: at(),
            })
            .then_expect_events(vec![ApplicationEvent::ApplicationSecretRotated {
                secret_hash: "x".into(),
                at: at(),
            }]);
    }
}
