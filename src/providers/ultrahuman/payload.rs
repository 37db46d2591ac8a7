//! Ultrahuman Partner API payloads (`/user_data/metrics?date=`), as the mapper reads them and
//! the simulator writes them. One response is one day: a list of metrics, each a `type` with
//! its `object`, whose shape depends on the type.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::providers::payload::{ExternalId, Lenient, Num, Text};

/// `/user_data/user_info`: who consented.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserInfo {
    pub user_id: ExternalId,
    pub email: Text,
    pub username: Text,
}

/// The answer of `/user_data/metrics?date=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsResponse {
    pub data: Lenient<MetricsData>,
    pub error: Option<Value>,
    pub status: Num,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsData {
    pub metric_data: Vec<Metric>,
}

/// One metric of the day: `hr`, `hrv`, `temp`, `steps` (readings), `vo2_max`,
/// `active_minutes` (one value), `Sleep` (the night).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metric {
    #[serde(rename = "type")]
    pub kind: Text,
    pub object: Option<Value>,
}

/// The object of a reading metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Readings {
    /// The local midnight of the day, in Unix seconds.
    pub day_start_timestamp: Num,
    pub title: Text,
    pub unit: Text,
    pub values: Vec<Reading>,
    pub last_reading: Num,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reading {
    /// Unix seconds.
    pub timestamp: Num,
    pub value: Num,
}

/// The object of a single-value metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DayValue {
    pub day_start_timestamp: Num,
    pub title: Text,
    pub unit: Text,
    pub value: Num,
}

/// The object of `Sleep`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sleep {
    pub day_start_timestamp: Num,
    /// Unix seconds.
    pub bedtime_start: Num,
    pub bedtime_end: Num,
    /// `time_in_bed`, `total_sleep` (seconds), `sleep_efic` (percent), ...
    pub quick_metrics: Vec<QuickMetric>,
    /// Seconds per stage: `deep_sleep`, `light_sleep`, `rem_sleep`, `awake`.
    pub sleep_stages: Vec<SleepStage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuickMetric {
    #[serde(rename = "type")]
    pub kind: Text,
    pub value: Num,
    pub title: Text,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SleepStage {
    #[serde(rename = "type")]
    pub kind: Text,
    pub stage_time: Num,
    pub percentage: Num,
}
