//! The top level of an SDK sync body (reference §6): which platform sent it, the SDK version,
//! the sync time and the three record lists. An error here rejects the whole batch; errors in
//! single records are salvage (see [`super::Dropped`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

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

/// A batch whose envelope is valid; its records are still unparsed JSON, borrowed from the
/// body (no tree of the whole batch is built: each record is parsed on its own).
#[derive(Debug)]
pub struct Envelope<'a> {
    pub platform: Platform,
    pub sdk_version: String,
    pub sync_timestamp: DateTime<Utc>,
    pub records: Vec<&'a RawValue>,
    pub sleep: Vec<&'a RawValue>,
    pub workouts: Vec<&'a RawValue>,
}

impl Envelope<'_> {
    pub fn len(&self) -> usize {
        self.records.len() + self.sleep.len() + self.workouts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    provider: Option<&'a RawValue>,
    #[serde(rename = "sdkVersion", borrow)]
    sdk_version: Option<&'a RawValue>,
    #[serde(rename = "syncTimestamp", borrow)]
    sync_timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    records: Option<&'a RawValue>,
    #[serde(borrow)]
    sleep: Option<&'a RawValue>,
    #[serde(borrow)]
    workouts: Option<&'a RawValue>,
}

/// What a JSON text is, by its first character (the text is known to be valid JSON).
fn kind(raw: Option<&RawValue>) -> u8 {
    raw.and_then(|r| r.get().trim_start().bytes().next())
        .unwrap_or(b'n')
}

fn string(raw: Option<&RawValue>, field: &'static str) -> Result<String, EnvelopeError> {
    match kind(raw) {
        b'n' => Err(EnvelopeError::Missing(field)),
        b'"' => serde_json::from_str(raw.map_or("null", RawValue::get))
            .map_err(|_| EnvelopeError::Invalid(field, "a string")),
        _ => Err(EnvelopeError::Invalid(field, "a string")),
    }
}

fn list<'a>(
    raw: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Vec<&'a RawValue>, EnvelopeError> {
    match (kind(raw), raw) {
        (b'[', Some(r)) => {
            serde_json::from_str(r.get()).map_err(|_| EnvelopeError::Invalid(field, "an array"))
        }
        (b'n', _) => Ok(Vec::new()),
        _ => Err(EnvelopeError::Invalid(field, "an array")),
    }
}

/// Checks the envelope of a body (its bytes as received).
pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let text = std::str::from_utf8(body).map_err(|_| EnvelopeError::NotJson)?;
    if !text.trim_start().starts_with('{') {
        return Err(
            if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
                EnvelopeError::NotObject
            } else {
                EnvelopeError::NotJson
            },
        );
    }
    let top: Top<'_> = serde_json::from_str(text).map_err(|_| EnvelopeError::NotJson)?;
    let provider = string(top.provider, "provider")?;
    let platform = Platform::parse(&provider)
        .ok_or_else(|| EnvelopeError::Provider(provider.chars().take(40).collect::<String>()))?;
    let sdk_version = string(top.sdk_version, "sdkVersion")?;
    let stamp = string(top.sync_timestamp, "syncTimestamp")?;
    let sync_timestamp = super::time::parse_date(&stamp)
        .ok_or(EnvelopeError::Invalid(
            "syncTimestamp",
            "an ISO 8601 date-time",
        ))?
        .0;
    let (records, sleep, workouts) = match (kind(top.data), top.data) {
        (b'n', _) => (Vec::new(), Vec::new(), Vec::new()),
        (b'{', Some(d)) => {
            let data: Data<'_> = serde_json::from_str(d.get())
                .map_err(|_| EnvelopeError::Invalid("data", "an object"))?;
            (
                list(data.records, "data.records")?,
                list(data.sleep, "data.sleep")?,
                list(data.workouts, "data.workouts")?,
            )
        }
        _ => return Err(EnvelopeError::Invalid("data", "an object")),
    };
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

    fn p(s: &str) -> Result<Envelope<'_>, EnvelopeError> {
        parse(s.as_bytes())
    }

    #[test]
    fn envelopes_are_checked_field_by_field() {
        let ok = r#"{"provider": "Apple", "sdkVersion": "1.2.0",
            "syncTimestamp": "2026-03-01T08:00:00Z", "data": {"records": [{}], "sleep": null}}"#;
        let e = p(ok).unwrap();
        assert_eq!(e.platform, Platform::Apple);
        assert_eq!(
            (e.records.len(), e.sleep.len(), e.workouts.len()),
            (1, 0, 0)
        );
        assert_eq!(p("[1]").unwrap_err(), EnvelopeError::NotObject);
        assert_eq!(p("{nope").unwrap_err(), EnvelopeError::NotJson);
        assert_eq!(p("[1, ").unwrap_err(), EnvelopeError::NotJson);
        assert_eq!(
            p(r#"{"provider": "fitbit", "sdkVersion": "1", "syncTimestamp": "2026-03-01T08:00:00Z"}"#)
                .unwrap_err(),
            EnvelopeError::Provider("fitbit".into())
        );
        assert_eq!(
            p(r#"{"provider": "google", "syncTimestamp": "2026-03-01T08:00:00Z"}"#).unwrap_err(),
            EnvelopeError::Missing("sdkVersion")
        );
        assert_eq!(
            p(r#"{"provider": 3, "sdkVersion": "1", "syncTimestamp": "2026-03-01T08:00:00Z"}"#)
                .unwrap_err(),
            EnvelopeError::Invalid("provider", "a string")
        );
        assert!(matches!(
            p(
                r#"{"provider": "samsung", "sdkVersion": "1", "syncTimestamp": "2026-03-01T08:00:00Z", "data": {"records": {}}}"#
            ),
            Err(EnvelopeError::Invalid("data.records", _))
        ));
        assert!(matches!(
            p(
                r#"{"provider": "samsung", "sdkVersion": "1", "syncTimestamp": "2026-03-01T08:00:00Z", "data": 7}"#
            ),
            Err(EnvelopeError::Invalid("data", _))
        ));
    }
}
