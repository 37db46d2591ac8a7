//! wearhouse-domain: aggregates, commands, events and value types. No I/O lives here: every
//! decision is a pure function of the aggregate's past events and the command. (The one
//! exception is `crashpoint`, the crash tests' hook, shared here by the server and projections.)

pub mod api_key;
pub mod application;
pub mod archival;
pub mod connection;
pub mod crashpoint;
pub mod daily;
pub mod developer;
pub mod import;
pub mod invitation;
pub mod menstrual;
pub mod priority;
pub mod provider_setting;
pub mod records;
pub mod rejection;
pub mod scores;
pub mod sdk_access;
pub mod series;
pub mod sleep;
pub mod sleep_merge;
pub mod sync_run;
pub mod user;
pub mod webhook_endpoint;
pub mod webhook_events;
pub mod workout_type;

pub use cqrs_es;

/// Trims a free-text field and turns an empty string into `None`.
pub fn clean(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
