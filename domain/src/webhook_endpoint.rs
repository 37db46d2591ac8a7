//! The `WebhookEndpoint` aggregate: an integrator's destination for outgoing webhooks. The
//! signing secret is carried only sealed (the caller seals it; the domain never sees it in
//! clear), and the relay to Kafka strips it like every other secret field.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::webhook_events;

#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEndpointCommand {
    Create {
        id: Uuid,
        url: String,
        description: Option<String>,
        user_id: Option<Uuid>,
        filter_types: Option<Vec<String>>,
        sealed_secret: String,
        at: DateTime<Utc>,
    },
    /// `None` keeps a field; `Some(None)` clears a nullable one.
    Update {
        url: Option<String>,
        description: Option<Option<String>>,
        user_id: Option<Option<Uuid>>,
        filter_types: Option<Option<Vec<String>>>,
        at: DateTime<Utc>,
    },
    /// The previous secret stays valid until `previous_valid_until`.
    RotateSecret {
        sealed_secret: String,
        previous_valid_until: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The delivery engine gave up on it (failing for the whole failure window).
    Disable {
        reason: String,
        at: DateTime<Utc>,
    },
    Delete {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WebhookEndpointEvent {
    WebhookEndpointCreated {
        id: Uuid,
        url: String,
        description: Option<String>,
        user_id: Option<Uuid>,
        filter_types: Option<Vec<String>>,
        sealed_secret: String,
        at: DateTime<Utc>,
    },
    /// The endpoint's whole new settings (not a diff), so a reader needs no earlier state.
    WebhookEndpointUpdated {
        url: String,
        description: Option<String>,
        user_id: Option<Uuid>,
        filter_types: Option<Vec<String>>,
        at: DateTime<Utc>,
    },
    WebhookSecretRotated {
        sealed_secret: String,
        previous_valid_until: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    WebhookEndpointDisabled {
        reason: String,
        at: DateTime<Utc>,
    },
    WebhookEndpointDeleted {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for WebhookEndpointEvent {
    fn event_type(&self) -> String {
        match self {
            Self::WebhookEndpointCreated { .. } => "WebhookEndpointCreated",
            Self::WebhookEndpointUpdated { .. } => "WebhookEndpointUpdated",
            Self::WebhookSecretRotated { .. } => "WebhookSecretRotated",
            Self::WebhookEndpointDisabled { .. } => "WebhookEndpointDisabled",
            Self::WebhookEndpointDeleted { .. } => "WebhookEndpointDeleted",
        }
        .to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// Every event type of this aggregate (the read model's filter).
pub const EVENT_TYPES: &[&str] = &[
    "WebhookEndpointCreated",
    "WebhookEndpointUpdated",
    "WebhookSecretRotated",
    "WebhookEndpointDisabled",
    "WebhookEndpointDeleted",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WebhookEndpointError {
    #[error("Webhook endpoint already exists")]
    AlreadyExists,
    #[error("Webhook endpoint not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: Option<Uuid>,
    pub url: String,
    pub description: Option<String>,
    pub user_id: Option<Uuid>,
    pub filter_types: Option<Vec<String>>,
    pub disabled: bool,
    pub deleted: bool,
}

/// An absolute http(s) URL with a host, as upstream requires. Where it points is checked at
/// delivery (names can resolve differently later).
pub fn check_url(url: &str) -> Result<(), WebhookEndpointError> {
    let bad = || WebhookEndpointError::Invalid("url: must be an absolute http(s) URL".into());
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || host.starts_with(':')
        || url.len() > 2048
        || url.contains(char::is_whitespace)
    {
        return Err(bad());
    }
    Ok(())
}

fn check_filter(filter: &Option<Vec<String>>) -> Result<(), WebhookEndpointError> {
    for t in filter.iter().flatten() {
        if !webhook_events::is_known(t) {
            return Err(WebhookEndpointError::Invalid(format!(
                "filter_types: unknown event type '{t}'"
            )));
        }
    }
    Ok(())
}

impl WebhookEndpoint {
    fn live(&self) -> Result<(), WebhookEndpointError> {
        if self.id.is_none() || self.deleted {
            return Err(WebhookEndpointError::NotFound);
        }
        Ok(())
    }
}

impl Aggregate for WebhookEndpoint {
    const TYPE: &'static str = "WebhookEndpoint";
    type Command = WebhookEndpointCommand;
    type Event = WebhookEndpointEvent;
    type Error = WebhookEndpointError;
    type Services = ();

    async fn handle(
        &mut self,
        command: WebhookEndpointCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), WebhookEndpointError> {
        use WebhookEndpointCommand as C;
        use WebhookEndpointEvent as E;
        let event = match command {
            C::Create {
                id,
                url,
                description,
                user_id,
                filter_types,
                sealed_secret,
                at,
            } => {
                if self.id.is_some() {
                    return Err(WebhookEndpointError::AlreadyExists);
                }
                check_url(&url)?;
                check_filter(&filter_types)?;
                E::WebhookEndpointCreated {
                    id,
                    url,
                    description,
                    user_id,
                    filter_types,
                    sealed_secret,
                    at,
                }
            }
            C::Update {
                url,
                description,
                user_id,
                filter_types,
                at,
            } => {
                self.live()?;
                let url = url.unwrap_or_else(|| self.url.clone());
                check_url(&url)?;
                let filter_types = filter_types.unwrap_or_else(|| self.filter_types.clone());
                check_filter(&filter_types)?;
                E::WebhookEndpointUpdated {
                    url,
                    description: description.unwrap_or_else(|| self.description.clone()),
                    user_id: user_id.unwrap_or(self.user_id),
                    filter_types,
                    at,
                }
            }
            C::RotateSecret {
                sealed_secret,
                previous_valid_until,
                at,
            } => {
                self.live()?;
                E::WebhookSecretRotated {
                    sealed_secret,
                    previous_valid_until,
                    at,
                }
            }
            C::Disable { reason, at } => {
                self.live()?;
                if self.disabled {
                    return Ok(());
                }
                E::WebhookEndpointDisabled { reason, at }
            }
            C::Delete { at } => {
                self.live()?;
                E::WebhookEndpointDeleted { at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: WebhookEndpointEvent) {
        use WebhookEndpointEvent as E;
        match event {
            E::WebhookEndpointCreated {
                id,
                url,
                description,
                user_id,
                filter_types,
                ..
            } => {
                self.id = Some(id);
                self.url = url;
                self.description = description;
                self.user_id = user_id;
                self.filter_types = filter_types;
            }
            E::WebhookEndpointUpdated {
                url,
                description,
                user_id,
                filter_types,
                ..
            } => {
                self.url = url;
                self.description = description;
                self.user_id = user_id;
                self.filter_types = filter_types;
                // Changing an endpoint is how its owner says it works again.
                self.disabled = false;
            }
            E::WebhookSecretRotated { .. } => {}
            E::WebhookEndpointDisabled { .. } => self.disabled = true,
            E::WebhookEndpointDeleted { .. } => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type T = TestFramework<WebhookEndpoint>;

    fn at() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn created() -> WebhookEndpointEvent {
        WebhookEndpointEvent::WebhookEndpointCreated {
            id: Uuid::nil(),
            url: "https://example.com/hook".into(),
            description: None,
            user_id: None,
            filter_types: Some(vec!["workout.created".into()]),
            sealed_secret: "v2.x".into(),
            at: at(),
        }
    }

    #[test]
    fn create_rejects_bad_urls_and_unknown_event_types() {
        let create = |url: &str, filter: &str| WebhookEndpointCommand::Create {
            id: Uuid::nil(),
            url: url.into(),
            description: None,
            user_id: None,
            filter_types: Some(vec![filter.into()]),
            sealed_secret: "v2.x".into(),
            at: at(),
        };
        T::with(())
            .given_no_previous_events()
            .when(create("https://example.com/hook", "workout.created"))
            .then_expect_events(vec![created()]);
        for url in ["ftp://x", "https://", "example.com", "http://:80/x"] {
            T::with(())
                .given_no_previous_events()
                .when(create(url, "workout.created"))
                .then_expect_error_message("url: must be an absolute http(s) URL");
        }
        T::with(())
            .given_no_previous_events()
            .when(create("https://example.com", "nope.created"))
            .then_expect_error_message("filter_types: unknown event type 'nope.created'");
    }

    #[test]
    fn update_keeps_what_is_absent_and_clears_what_is_null() {
        T::with(())
            .given(vec![created()])
            .when(WebhookEndpointCommand::Update {
                url: None,
                description: Some(Some("d".into())),
                user_id: None,
                filter_types: Some(None),
                at: at(),
            })
            .then_expect_events(vec![WebhookEndpointEvent::WebhookEndpointUpdated {
                url: "https://example.com/hook".into(),
                description: Some("d".into()),
                user_id: None,
                filter_types: None,
                at: at(),
            }]);
    }

    #[test]
    fn a_deleted_endpoint_is_gone() {
        T::with(())
            .given(vec![
                created(),
                WebhookEndpointEvent::WebhookEndpointDeleted { at: at() },
            ])
            .when(WebhookEndpointCommand::Delete { at: at() })
            .then_expect_error(WebhookEndpointError::NotFound);
    }
}
