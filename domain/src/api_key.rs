//! The `ApiKey` aggregate. The key itself is shown once at creation and never stored: events
//! carry only its SHA-256 and a short prefix so people can tell their keys apart.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeyCommand {
    Create {
        id: Uuid,
        name: String,
        key_hash: String,
        key_prefix: String,
        created_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    Rename {
        name: String,
        at: DateTime<Utc>,
    },
    /// `reason` tells deletion apart from rotation in the history.
    Revoke {
        reason: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ApiKeyEvent {
    ApiKeyCreated {
        id: Uuid,
        name: String,
        key_hash: String,
        key_prefix: String,
        created_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    ApiKeyRenamed {
        name: String,
        at: DateTime<Utc>,
    },
    ApiKeyRevoked {
        reason: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ApiKeyEvent {
    fn event_type(&self) -> String {
        match self {
            ApiKeyEvent::ApiKeyCreated { .. } => "ApiKeyCreated",
            ApiKeyEvent::ApiKeyRenamed { .. } => "ApiKeyRenamed",
            ApiKeyEvent::ApiKeyRevoked { .. } => "ApiKeyRevoked",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiKeyError {
    #[error("API key entity already exists")]
    AlreadyExists,
    #[error("API key not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Option<Uuid>,
    pub name: String,
    pub revoked: bool,
}

fn check_name(name: &str) -> Result<(), ApiKeyError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(ApiKeyError::Invalid(
            "name: must be 1 to 100 characters".into(),
        ));
    }
    Ok(())
}

impl Aggregate for ApiKey {
    const TYPE: &'static str = "ApiKey";
    type Command = ApiKeyCommand;
    type Event = ApiKeyEvent;
    type Error = ApiKeyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ApiKeyCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ApiKeyError> {
        match command {
            ApiKeyCommand::Create {
                id,
                name,
                key_hash,
                key_prefix,
                created_by,
                at,
            } => {
                if self.id.is_some() {
                    return Err(ApiKeyError::AlreadyExists);
                }
                check_name(&name)?;
                let event = ApiKeyEvent::ApiKeyCreated {
                    id,
                    name,
                    key_hash,
                    key_prefix,
                    created_by,
                    at,
                };
                sink.write(event, self).await;
            }
            ApiKeyCommand::Rename { name, at } => {
                if self.id.is_none() || self.revoked {
                    return Err(ApiKeyError::NotFound);
                }
                check_name(&name)?;
                sink.write(ApiKeyEvent::ApiKeyRenamed { name, at }, self)
                    .await;
            }
            ApiKeyCommand::Revoke { reason, at } => {
                if self.id.is_none() || self.revoked {
                    return Err(ApiKeyError::NotFound);
                }
                sink.write(ApiKeyEvent::ApiKeyRevoked { reason, at }, self)
                    .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: ApiKeyEvent) {
        match event {
            ApiKeyEvent::ApiKeyCreated { id, name, .. } => {
                self.id = Some(id);
                self.name = name;
            }
            ApiKeyEvent::ApiKeyRenamed { name, .. } => self.name = name,
            ApiKeyEvent::ApiKeyRevoked { .. } => self.revoked = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type T = TestFramework<ApiKey>;

    fn at() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn created() -> ApiKeyEvent {
        ApiKeyEvent::ApiKeyCreated {
            id: Uuid::nil(),
            name: "Default".into(),
            key_hash: "abc".into(),
            key_prefix: "sk-1234".into(),
            created_by: None,
            at: at(),
        }
    }

    #[test]
    fn create_then_revoke() {
        T::with(())
            .given_no_previous_events()
            .when(ApiKeyCommand::Create {
                id: Uuid::nil(),
                name: "Default".into(),
                key_hash: "abc".into(),
                key_prefix: "sk-1234".into(),
                created_by: None,
                at: at(),
            })
            .then_expect_events(vec![created()]);
        T::with(())
            .given(vec![created()])
            .when(ApiKeyCommand::Revoke {
                reason: "deleted".into(),
                at: at(),
            })
            .then_expect_events(vec![ApiKeyEvent::ApiKeyRevoked {
                reason: "deleted".into(),
                at: at(),
            }]);
    }

    #[test]
    fn revoked_key_cannot_be_revoked_or_renamed() {
        let given = vec![
            created(),
            ApiKeyEvent::ApiKeyRevoked {
                reason: "deleted".into(),
                at: at(),
            },
        ];
        T::with(())
            .given(given.clone())
            .when(ApiKeyCommand::Revoke {
                reason: "deleted".into(),
                at: at(),
            })
            .then_expect_error(ApiKeyError::NotFound);
        T::with(())
            .given(given)
            .when(ApiKeyCommand::Rename {
                name: "x".into(),
                at: at(),
            })
            .then_expect_error(ApiKeyError::NotFound);
    }

    #[test]
    fn empty_name_is_refused() {
        T::with(())
            .given_no_previous_events()
            .when(ApiKeyCommand::Create {
                id: Uuid::nil(),
                name: " ".into(),
                key_hash: "abc".into(),
                key_prefix: "sk-1234".into(),
                created_by: None,
                at: at(),
            })
            .then_expect_error_message("name: must be 1 to 100 characters");
    }
}
