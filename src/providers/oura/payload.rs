//! Oura API v2 payloads, as the mapper reads them and the simulator writes them. Fields the
//! mapper does not read are kept where the simulator sends them, so the simulator's responses
//! look like Oura's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::providers::payload::{Lenient, Num, Text};

/// A `/v2/usercollection/{type}` page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_token: Option<String>,
}

/// `personal_info`: the user as of now (a snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersonalInfo {
    pub id: Text,
    pub age: Num,
    /// Kilograms.
    pub weight: Num,
    /// Meters.
    pub height: Num,
    pub biological_sex: Text,
    pub email: Text,
}

/// `daily_activity`: the day's totals and activity score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DailyActivity {
    pub id: Text,
    pub day: Text,
    pub score: Num,
    /// Contributor name → score.
    pub contributors: Option<Value>,
    pub steps: Num,
    pub active_calories: Num,
    /// Active plus resting burn.
    pub total_calories: Num,
    pub equivalent_walking_distance: Num,
    /// Seconds.
    pub high_activity_time: Num,
    pub medium_activity_time: Num,
    pub low_activity_time: Num,
    /// When the day was computed, with the user's offset.
    pub timestamp: Text,
}

/// `daily_readiness`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DailyReadiness {
    pub id: Text,
    pub day: Text,
    pub score: Num,
    pub contributors: Option<Value>,
    pub temperature_deviation: Num,
    pub temperature_trend_deviation: Num,
    pub timestamp: Text,
}

/// `daily_sleep`: the night's score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DailySleep {
    pub id: Text,
    pub day: Text,
    pub score: Num,
    pub contributors: Option<Value>,
    pub timestamp: Text,
}

/// `daily_spo2`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DailySpo2 {
    pub id: Text,
    pub day: Text,
    pub spo2_percentage: Lenient<Spo2>,
    pub breathing_disturbance_index: Num,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Spo2 {
    pub average: Num,
}

/// `sleep`: one sleep period with its hypnogram and interval series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sleep {
    pub id: Text,
    pub day: Text,
    /// `long_sleep`, `sleep`, `late_nap`, `rest`, `deleted`.
    #[serde(rename = "type")]
    pub kind: Text,
    pub bedtime_start: Text,
    pub bedtime_end: Text,
    /// One digit per 5 minutes: 1 deep, 2 light, 3 REM, 4 awake.
    pub sleep_phase_5_min: Text,
    pub total_sleep_duration: Num,
    pub time_in_bed: Num,
    pub efficiency: Num,
    pub average_breath: Num,
    pub lowest_heart_rate: Num,
    pub heart_rate: Lenient<Series>,
    pub hrv: Lenient<Series>,
}

/// An interval series: `items[i]` is at `timestamp + i × interval` seconds; nulls are gaps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Series {
    pub interval: Num,
    pub items: Lenient<Vec<Num>>,
    pub timestamp: Text,
}

/// `heartrate`: one reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeartRate {
    pub bpm: Num,
    pub source: Text,
    pub timestamp: Text,
}

/// `workout`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workout {
    pub id: Text,
    pub activity: Text,
    /// Kilocalories.
    pub calories: Num,
    /// Meters.
    pub distance: Num,
    pub day: Text,
    pub intensity: Text,
    pub source: Text,
    pub start_datetime: Text,
    pub end_datetime: Text,
}
