//! The top level of an SDK sync body (reference §6): which platform sent it, the SDK version,
//! the sync time and the three record lists. An error here rejects the whole batch; errors in
//! single records are salvage (see [`super::Dropped`]).

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The mobile platforms the SDKs sync from, as upstream names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple HealthKit (iOS SDK).
    Apple,
    /// Android Health Connect.
    Google,
    /// Samsung Health (Android SDK, Samsung Health Data SDK).
    Samsung,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Apple, Platform::Google, Platform::Samsung];

    pub fn name(self) -> &'static str {
        match self {
            Platform::Apple => "apple",
            Platform::Google => "google",
            Platform::Samsung => "samsung",
        }
    }

    /// The contract's `provider` field, case-insensitive.
    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The name upstream lists the platform under (`/oauth/providers`).
    pub fn display_name(self) -> &'static str {
        match self {
            Platform::Apple => "Apple Health",
            Platform::Google => "Google Health Connect",
            Platform::Samsung => "Samsung Health",
        }
    }

    /// What a data source without source details is called.
    pub fn default_source(self) -> &'static str {
        match self {
            Platform::Apple => "Apple Health",
            Platform::Google => "Health Connect",
            Platform::Samsung => "Samsung Health",
        }
    }
}

/// Why a whole batch is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("Request body is not valid JSON")]
    NotJson,
    #[error("Request body must be a JSON object")]
    NotObject,
    #[error("Field '{0}' is required")]
    Missing(&'static str),
    #[error("Field '{0}' must be {1}")]
    Invalid(&'static str, &'static str),
    #[error("Invalid provider '{0}': expected one of apple, samsung, google")]
    Provider(String),
}

/// A batch whose envelope is valid; its records are still unchecked JSON.
#[derive(Debug)]
pub struct Envelope<'a> {
    pub platform: Platform,
    pub sdk_version: &'a str,
    pub sync_timestamp: DateTime<Utc>,
    pub records: &'a [Value],
    pub sleep: &'a [Value],
    pub workouts: &'a [Value],
}

impl Envelope<'_> {
    pub fn len(&self) -> usize {
        self.records.len() + self.sleep.len() + self.workouts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses the body's bytes as JSON.
pub fn decode(bytes: &[u8]) -> Result<Value, EnvelopeError> {
    serde_json::from_slice(bytes).map_err(|_| EnvelopeError::NotJson)
}

/// Checks the envelope of a decoded body.
pub fn parse(body: &Value) -> Result<Envelope<'_>, EnvelopeError> {
    let obj = body.as_object().ok_or(EnvelopeError::NotObject)?;
    let provider = match obj.get("provider") {
        None | Some(Value::Null) => return Err(EnvelopeError::Missing("provider")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(EnvelopeError::Invalid("provider", "a string")),
    };
    let platform = Platform::parse(provider)
        .ok_or_else(|| EnvelopeError::Provider(provider.chars().take(40).collect::<String>()))?;
    let sdk_version = match obj.get("sdkVersion") {
        None | Some(Value::Null) => return Err(EnvelopeError::Missing("sdkVersion")),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(EnvelopeError::Invalid("sdkVersion", "a string")),
    };
    let sync_timestamp = match obj.get("syncTimestamp") {
        None | Some(Value::Null) => return Err(EnvelopeError::Missing("syncTimestamp")),
        Some(Value::String(s)) => {
            super::time::parse_date(s)
                .ok_or(EnvelopeError::Invalid(
                    "syncTimestamp",
                    "an ISO 8601 date-time",
                ))?
                .0
        }
        Some(_) => return Err(EnvelopeError::Invalid("syncTimestamp", "a string")),
    };
    const EMPTY: &[Value] = &[];
    let (mut records, mut sleep, mut workouts) = (EMPTY, EMPTY, EMPTY);
    match obj.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(data)) => {
            for (name, slot) in [
                ("records", &mut records),
                ("sleep", &mut sleep),
                ("workouts", &mut workouts),
            ] {
                match data.get(name) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => *slot = items.as_slice(),
                    Some(_) => {
                        return Err(EnvelopeError::Invalid(
                            match name {
                                "records" => "data.records",
                                "sleep" => "data.sleep",
                                _ => "data.workouts",
                            },
                            "an array",
                        ))
                    }
                }
            }
        }
        Some(_) => return Err(EnvelopeError::Invalid("data", "an object")),
    }
    Ok(Envelope {
        platform,
        sdk_version,
        sync_timestamp,
        records,
        sleep,
        workouts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_are_checked_field_by_field() {
        let ok = json!({"provider": "Apple", "sdkVersion": "1.2.0",
            "syncTimestamp": "2026-03-01T08:00:00Z", "data": {"records": [{}], "sleep": null}});
        let e = parse(&ok).unwrap();
        assert_eq!(e.platform, Platform::Apple);
        assert_eq!(
            (e.records.len(), e.sleep.len(), e.workouts.len()),
            (1, 0, 0)
        );
        assert_eq!(parse(&json!([1])).unwrap_err(), EnvelopeError::NotObject);
        assert_eq!(
            parse(&json!({"provider": "fitbit", "sdkVersion": "1", "syncTimestamp": "2026-03-01T08:00:00Z"}))
                .unwrap_err(),
            EnvelopeError::Provider("fitbit".into())
        );
        assert_eq!(
            parse(&json!({"provider": "google", "syncTimestamp": "2026-03-01T08:00:00Z"}))
                .unwrap_err(),
            EnvelopeError::Missing("sdkVersion")
        );
        assert!(matches!(
            parse(
                &json!({"provider": "samsung", "sdkVersion": "1", "syncTimestamp": "2026-03-01T08:00:00Z", "data": {"records": {}}})
            ),
            Err(EnvelopeError::Invalid("data.records", _))
        ));
        assert_eq!(decode(b"{nope").unwrap_err(), EnvelopeError::NotJson);
    }
}
