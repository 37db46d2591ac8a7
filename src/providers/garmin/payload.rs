//! Garmin Health API payloads (pushed summaries, in camelCase), as the mapper reads them and the
//! simulator writes them. Times are `…InSeconds` (UTC epoch) with `…OffsetInSeconds` giving the
//! local offset. Typed so far: the summaries the simulator sends (dailies, sleeps, hrv,
//! activities, activity details and files); the other push types are read as JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::providers::payload::{ExternalId, Lenient, Num, Text};

/// `{"<seconds after start>": value}`; negative values are Garmin's "no reading".
pub type Offsets = Lenient<BTreeMap<String, Num>>;

/// `dailies`: the day's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Daily {
    pub user_id: Text,
    pub summary_id: Text,
    pub calendar_date: Text,
    pub start_time_in_seconds: Num,
    pub start_time_offset_in_seconds: Num,
    pub duration_in_seconds: Num,
    pub steps: Num,
    pub distance_in_meters: Num,
    pub active_time_in_seconds: Num,
    pub active_kilocalories: Num,
    pub bmr_kilocalories: Num,
    pub floors_climbed: Num,
    pub resting_heart_rate_in_beats_per_minute: Num,
    pub average_stress_level: Num,
    pub stress_qualifier: Text,
    pub time_offset_heart_rate_samples: Offsets,
}

/// `sleeps`: a night with its stage intervals, score and the day's naps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SleepSummary {
    pub user_id: Text,
    pub summary_id: Text,
    pub calendar_date: Text,
    pub start_time_in_seconds: Num,
    pub start_time_offset_in_seconds: Num,
    pub duration_in_seconds: Num,
    /// Stage name (`deep`, `light`, `rem`, `awake`, ...) → its intervals.
    pub sleep_levels_map: Lenient<BTreeMap<String, Lenient<Vec<Lenient<SleepLevel>>>>>,
    pub overall_sleep_score: Lenient<SleepScore>,
    /// Component name → its score.
    pub sleep_scores: Lenient<BTreeMap<String, Lenient<SleepScore>>>,
    pub naps: Lenient<Vec<Lenient<Nap>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SleepLevel {
    pub start_time_in_seconds: Num,
    pub end_time_in_seconds: Num,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SleepScore {
    pub value: Num,
    pub qualifier_key: Text,
}

/// One nap of a sleep summary's `naps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Nap {
    pub nap_start_time_in_seconds: Num,
    pub nap_duration_in_seconds: Num,
    pub nap_offset_in_seconds: Num,
    pub nap_validation: Text,
}

/// `hrv`: the night's average and its interval values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Hrv {
    pub user_id: Text,
    pub summary_id: Text,
    pub calendar_date: Text,
    pub start_time_in_seconds: Num,
    pub start_time_offset_in_seconds: Num,
    pub last_night_avg: Num,
    pub hrv_values: Offsets,
}

/// `activities`, and the `summary` of `activityDetails`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ActivitySummary {
    pub user_id: Text,
    pub summary_id: ExternalId,
    /// A number; older payloads send a string.
    pub activity_id: ExternalId,
    pub activity_type: Text,
    pub start_time_in_seconds: Num,
    pub start_time_offset_in_seconds: Num,
    pub duration_in_seconds: Num,
    pub average_heart_rate_in_beats_per_minute: Num,
    pub max_heart_rate_in_beats_per_minute: Num,
    pub steps: Num,
    pub active_kilocalories: Num,
    pub distance_in_meters: Num,
    pub average_run_cadence_in_steps_per_minute: Num,
    pub average_bike_cadence_in_rounds_per_minute: Num,
    pub average_speed_in_meters_per_second: Num,
    pub max_speed_in_meters_per_second: Num,
    pub total_elevation_gain_in_meters: Num,
    pub device_name: Text,
}

impl ActivitySummary {
    /// The activity id as text, else the summary id.
    pub fn external_id(&self) -> String {
        match &self.activity_id.0 {
            serde_json::Value::Null => self.summary_id.to_string(),
            _ => self.activity_id.to_string(),
        }
    }
}

/// `activityDetails`: an activity's summary, samples and laps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ActivityDetails {
    pub user_id: Text,
    pub summary_id: Text,
    pub activity_id: ExternalId,
    /// Used when the summary carries no offset of its own.
    pub start_time_offset_in_seconds: Num,
    pub summary: Lenient<ActivitySummary>,
    pub samples: Lenient<Vec<Lenient<DetailSample>>>,
    pub laps: Lenient<Vec<Lenient<Lap>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DetailSample {
    pub start_time_in_seconds: Num,
    pub heart_rate: Num,
    pub speed_meters_per_second: Num,
    pub steps_per_minute: Num,
    #[serde(rename = "bikeCadenceInRPM")]
    pub bike_cadence_in_rpm: Num,
    pub power_in_watts: Num,
    pub elevation_in_meters: Num,
    pub latitude_in_degree: Num,
    pub longitude_in_degree: Num,
    pub air_temperature_celcius: Num,
    pub total_distance_in_meters: Num,
    pub timer_duration_in_seconds: Num,
    pub clock_duration_in_seconds: Num,
    pub moving_duration_in_seconds: Num,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Lap {
    pub start_time_in_seconds: Num,
}

/// `activityFiles`: where to download an activity's file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ActivityFile {
    pub user_id: Text,
    pub summary_id: ExternalId,
    pub activity_id: ExternalId,
    /// `FIT`, `TCX` or `GPX`.
    pub file_type: Text,
    pub manual: Lenient<bool>,
    pub start_time_in_seconds: Num,
    pub activity_name: Text,
    #[serde(rename = "callbackURL")]
    pub callback_url: Text,
}

impl ActivityFile {
    /// The activity id as text, else the summary id.
    pub fn external_id(&self) -> String {
        match &self.activity_id.0 {
            serde_json::Value::Null => self.summary_id.to_string(),
            _ => self.activity_id.to_string(),
        }
    }
}
