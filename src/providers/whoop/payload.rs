//! Whoop developer API v2 payloads, as the mapper reads them and the simulator writes them.

use serde::{Deserialize, Serialize};

use crate::providers::payload::{ExternalId, Lenient, Num, Text};

/// A collection page (`/v2/activity/workout`, `/v2/activity/sleep`, `/v2/recovery`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Records<T> {
    pub records: Vec<T>,
    pub next_token: Option<String>,
}

/// `/v2/user/profile/basic`: who consented (its `user_id` names the account).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub user_id: ExternalId,
    pub email: Text,
    pub first_name: Text,
    pub last_name: Text,
}

/// `/v2/user/measurement/body`: the user as of now (a snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BodyMeasurement {
    pub height_meter: Num,
    pub weight_kilogram: Num,
    pub max_heart_rate: Num,
}

/// Whether Whoop has scored a record (`score_state`); only scored ones carry a `score`.
pub const SCORED: &str = "SCORED";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workout {
    pub id: ExternalId,
    pub user_id: ExternalId,
    pub start: Text,
    pub end: Text,
    /// "+HH:MM" / "-HH:MM" / "Z".
    pub timezone_offset: Text,
    pub sport_name: Text,
    pub score_state: Text,
    pub score: Lenient<WorkoutScore>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkoutScore {
    pub strain: Num,
    pub average_heart_rate: Num,
    pub max_heart_rate: Num,
    pub kilojoule: Num,
    pub distance_meter: Num,
    pub altitude_gain_meter: Num,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sleep {
    pub id: ExternalId,
    pub user_id: ExternalId,
    pub start: Text,
    pub end: Text,
    pub timezone_offset: Text,
    pub nap: Lenient<bool>,
    pub score_state: Text,
    pub score: Lenient<SleepScore>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SleepScore {
    pub respiratory_rate: Num,
    pub sleep_efficiency_percentage: Num,
    pub sleep_performance_percentage: Num,
    pub sleep_consistency_percentage: Num,
    pub stage_summary: Lenient<StageSummary>,
}

/// Per-stage totals of a night (Whoop gives no hypnogram), in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageSummary {
    pub total_in_bed_time_milli: Num,
    pub total_awake_time_milli: Num,
    pub total_light_sleep_time_milli: Num,
    pub total_slow_wave_sleep_time_milli: Num,
    pub total_rem_sleep_time_milli: Num,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recovery {
    pub cycle_id: ExternalId,
    /// The sleep it follows; Whoop's recovery webhooks name a recovery by it.
    pub sleep_id: ExternalId,
    pub user_id: ExternalId,
    pub created_at: Text,
    pub score_state: Text,
    pub score: Lenient<RecoveryScore>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecoveryScore {
    pub recovery_score: Num,
    pub resting_heart_rate: Num,
    pub hrv_rmssd_milli: Num,
    pub spo2_percentage: Num,
    pub skin_temp_celsius: Num,
}

impl Workout {
    pub fn scored(&self) -> Option<&WorkoutScore> {
        (self.score_state.str() == Some(SCORED))
            .then(|| self.score.get())
            .flatten()
    }
}

impl Sleep {
    pub fn scored(&self) -> Option<&SleepScore> {
        (self.score_state.str() == Some(SCORED))
            .then(|| self.score.get())
            .flatten()
    }
}

impl Recovery {
    pub fn scored(&self) -> Option<&RecoveryScore> {
        (self.score_state.str() == Some(SCORED))
            .then(|| self.score.get())
            .flatten()
    }
}
