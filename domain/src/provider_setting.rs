//! The `ProviderSetting` aggregate: an installation's choices for one provider (enabled, live
//! sync by pull or by webhook, data granularity). One stream per provider name.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq)]
pub struct SettingChange {
    pub is_enabled: Option<bool>,
    pub live_sync_mode: Option<String>,
    pub data_granularity: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderSettingCommand {
    Change {
        provider: String,
        change: SettingChange,
        /// Whether the provider can switch between pull and webhook live sync.
        live_sync_configurable: bool,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ProviderSettingEvent {
    ProviderSettingChanged {
        provider: String,
        is_enabled: Option<bool>,
        live_sync_mode: Option<String>,
        data_granularity: Option<String>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ProviderSettingEvent {
    fn event_type(&self) -> String {
        "ProviderSettingChanged".to_string()
    }
    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProviderSettingError {
    #[error("live_sync_mode must be 'pull' or 'webhook'")]
    BadMode,
    #[error("live sync mode of {0} is not configurable")]
    NotConfigurable(String),
    #[error("data_granularity must be 'daily', 'hourly' or 'raw'")]
    BadGranularity,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSetting;

impl Aggregate for ProviderSetting {
    const TYPE: &'static str = "ProviderSetting";
    type Command = ProviderSettingCommand;
    type Event = ProviderSettingEvent;
    type Error = ProviderSettingError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ProviderSettingCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ProviderSettingError> {
        let ProviderSettingCommand::Change {
            provider,
            change,
            live_sync_configurable,
            at,
        } = command;
        if let Some(mode) = &change.live_sync_mode {
            if mode != "pull" && mode != "webhook" {
                return Err(ProviderSettingError::BadMode);
            }
            if !live_sync_configurable {
                return Err(ProviderSettingError::NotConfigurable(provider));
            }
        }
        if let Some(g) = &change.data_granularity {
            if !matches!(g.as_str(), "daily" | "hourly" | "raw") {
                return Err(ProviderSettingError::BadGranularity);
            }
        }
        let event = ProviderSettingEvent::ProviderSettingChanged {
            provider,
            is_enabled: change.is_enabled,
            live_sync_mode: change.live_sync_mode,
            data_granularity: change.data_granularity,
            at,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, _: ProviderSettingEvent) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn change(
        mode: Option<&str>,
        granularity: Option<&str>,
        configurable: bool,
    ) -> ProviderSettingCommand {
        ProviderSettingCommand::Change {
            provider: "oura".into(),
            change: SettingChange {
                is_enabled: Some(false),
                live_sync_mode: mode.map(String::from),
                data_granularity: granularity.map(String::from),
            },
            live_sync_configurable: configurable,
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn modes_and_granularities_are_checked() {
        TestFramework::<ProviderSetting>::with(())
            .given_no_previous_events()
            .when(change(Some("webhook"), Some("raw"), true))
            .then_expect_events(vec![ProviderSettingEvent::ProviderSettingChanged {
                provider: "oura".into(),
                is_enabled: Some(false),
                live_sync_mode: Some("webhook".into()),
                data_granularity: Some("raw".into()),
                at: "2026-01-01T00:00:00Z".parse().unwrap(),
            }]);
        TestFramework::<ProviderSetting>::with(())
            .given_no_previous_events()
            .when(change(Some("push"), None, true))
            .then_expect_error(ProviderSettingError::BadMode);
        TestFramework::<ProviderSetting>::with(())
            .given_no_previous_events()
            .when(change(Some("pull"), None, false))
            .then_expect_error(ProviderSettingError::NotConfigurable("oura".into()));
        TestFramework::<ProviderSetting>::with(())
            .given_no_previous_events()
            .when(change(None, Some("weekly"), false))
            .then_expect_error(ProviderSettingError::BadGranularity);
    }
}
