//! Strava API v3 payloads, as the mapper reads them and the simulator writes them.

use serde::{Deserialize, Serialize};

use crate::providers::payload::{ExternalId, Lenient, Num, Text};

/// `/api/v3/athlete`: who consented (its `id` names the account).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Athlete {
    pub id: ExternalId,
    pub username: Text,
    pub firstname: Text,
    pub lastname: Text,
}

/// One activity: an item of `/api/v3/athlete/activities` (a summary) or the answer of
/// `/api/v3/activities/{id}` (the detail, which adds `calories` and `device_name`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Activity {
    pub id: ExternalId,
    pub name: Text,
    /// Legacy activity type (`Run`, `Ride`); `sport_type` is the finer one.
    #[serde(rename = "type")]
    pub kind: Text,
    pub sport_type: Text,
    /// UTC, RFC 3339 (`2026-03-01T06:00:00Z`).
    pub start_date: Text,
    /// Local wall time written with a `Z` (Strava's convention): not an instant.
    pub start_date_local: Text,
    pub timezone: Text,
    /// Seconds east of UTC at the start.
    pub utc_offset: Num,
    /// Seconds.
    pub elapsed_time: Num,
    pub moving_time: Num,
    /// Meters.
    pub distance: Num,
    pub total_elevation_gain: Num,
    pub elev_high: Num,
    pub elev_low: Num,
    /// Meters per second.
    pub average_speed: Num,
    pub max_speed: Num,
    pub average_cadence: Num,
    pub average_watts: Num,
    pub max_watts: Num,
    /// Work done, in kilojoules (rides with power).
    pub kilojoules: Num,
    /// Kilocalories; only in the detail.
    pub calories: Num,
    pub has_heartrate: Lenient<bool>,
    pub average_heartrate: Num,
    pub max_heartrate: Num,
    pub device_name: Text,
}

/// One stream of `/api/v3/activities/{id}/streams?key_by_type=true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stream {
    pub data: Lenient<Vec<Num>>,
    pub series_type: Text,
    pub original_size: Num,
    pub resolution: Text,
}

/// The streams of one activity, keyed by type: `time` is seconds from the start, the others
/// are values at those instants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSet {
    pub time: Lenient<Stream>,
    pub heartrate: Lenient<Stream>,
    pub velocity_smooth: Lenient<Stream>,
    pub cadence: Lenient<Stream>,
    pub watts: Lenient<Stream>,
}

/// A webhook event (`POST` to the callback URL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    /// `activity` or `athlete`.
    pub object_type: Text,
    pub object_id: ExternalId,
    /// `create`, `update`, `delete`.
    pub aspect_type: Text,
    /// What changed (`{"title": ...}`, `{"authorized": "false"}` for a deauthorization).
    pub updates: Option<serde_json::Value>,
    /// The athlete.
    pub owner_id: ExternalId,
    pub subscription_id: Num,
    pub event_time: Num,
}

/// A push subscription (`/api/v3/push_subscriptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushSubscription {
    pub id: ExternalId,
    pub application_id: ExternalId,
    pub callback_url: Text,
    pub created_at: Text,
    pub updated_at: Text,
}
