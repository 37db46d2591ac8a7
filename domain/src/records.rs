//! Normalized records carried by data events (what an import or a provider sync produced).
//! Times are UTC; `zone_offset` is minutes east of UTC as the source wrote it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace for deterministic record ids: the same record from the same source always gets
/// the same id, so re-imports update instead of duplicating.
const RECORD_NS: Uuid = Uuid::from_u128(0x7a1c_55e2_0b4f_4c61_8d2e_93b0_11c4_a002);

pub fn record_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&RECORD_NS, parts.join("\u{1f}").as_bytes())
}

/// A writer of data: a provider, and the app or device inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSourceInfo {
    pub id: Uuid,
    pub provider: String,
    pub source: Option<String>,
    pub original_source_name: Option<String>,
    pub device_model: Option<String>,
    pub device_name: Option<String>,
    pub manufacturer: Option<String>,
    pub hardware: Option<String>,
    pub software_version: Option<String>,
    pub device_type: Option<String>,
}

impl DataSourceInfo {
    /// The identity of a data source: user, provider, device model and source name.
    pub fn id_for(
        user: Uuid,
        provider: &str,
        device_model: Option<&str>,
        source: Option<&str>,
    ) -> Uuid {
        record_id(&[
            &user.to_string(),
            provider,
            device_model.unwrap_or(""),
            source.unwrap_or(""),
        ])
    }
}

/// A reference to one stored batch of samples (the Arrow bytes live in `sample_batches`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleBatchRef {
    pub batch_id: i64,
    pub data_source_id: Uuid,
    pub series_type: i16,
    pub count: i32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkoutRecord {
    pub id: Uuid,
    pub data_source_id: Uuid,
    /// A workout type code (`running`, ...), `other` when unmapped.
    pub workout_type: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub zone_offset: Option<i16>,
    pub duration_s: Option<f64>,
    /// Totals in canonical units: energy_kcal, distance_m, heart_rate_avg, ...
    pub stats: BTreeMap<String, f64>,
    pub metadata: BTreeMap<String, String>,
    /// Laps (the contract's workout `segments`), when the provider sends them. Absent in
    /// events written before laps existed, and left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub laps: Vec<WorkoutLap>,
}

/// One lap of a workout, its totals in the same units and keys as the workout's stats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkoutLap {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub stats: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SleepStageInterval {
    pub stage: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SleepSessionRecord {
    pub id: Uuid,
    pub data_source_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub zone_offset: Option<i16>,
    pub is_nap: bool,
    pub stages: Vec<SleepStageInterval>,
    /// The provider gave per-stage totals only: `stages` lays them end to end so minutes stay
    /// exact, but their order and times are not real and are never served as intervals.
    /// Absent in older events (their stages were real timelines, or are re-sent on a sync).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stages_from_totals: bool,
}

/// One part of a health score (e.g. a readiness contributor, a recovery input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreComponent {
    pub value: Option<f64>,
    pub qualifier: Option<String>,
}

/// A score a provider (or the platform) computed: sleep, recovery, readiness, activity,
/// stress, strain, ... with its components, as the contract's health score item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthScoreRecord {
    pub id: Uuid,
    pub data_source_id: Uuid,
    pub category: String,
    pub value: Option<f64>,
    pub qualifier: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub zone_offset: Option<i16>,
    pub components: BTreeMap<String, ScoreComponent>,
}

/// A menstrual cycle: from the first day of a period to the day before the next one (or, for
/// the ongoing cycle, to its predicted or known end). `start`/`end` are local midnights in UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MenstrualCycleRecord {
    pub id: Uuid,
    pub data_source_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub zone_offset: Option<i16>,
    pub details: CycleDetails,
}

/// The contract's per-cycle fields (`menstrual_cycle_details`); lengths are in days.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CycleDetails {
    pub current_phase: Option<i64>,
    pub current_phase_type: Option<String>,
    pub day_in_cycle: Option<i64>,
    pub cycle_length: Option<i64>,
    pub predicted_cycle_length: Option<i64>,
    pub is_predicted_cycle: Option<bool>,
    pub period_length: Option<i64>,
    pub length_of_current_phase: Option<i64>,
    pub days_until_next_phase: Option<i64>,
    pub fertile_window_start: Option<i64>,
    pub length_of_fertile_window: Option<i64>,
    pub last_updated_at: Option<DateTime<Utc>>,
    pub has_specified_cycle_length: Option<bool>,
    pub has_specified_period_length: Option<bool>,
    #[serde(default)]
    pub pregnancy_snapshot: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivitySummaryRecord {
    pub data_source_id: Uuid,
    pub date: NaiveDate,
    pub values: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Characteristics {
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<String>,
}

/// Data events: appended in bulk by importers and provider syncs (aggregate type `DataStream`,
/// one stream per import or sync run), bypassing aggregate loading because they only record
/// what arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DataEvent {
    SourcesDiscovered {
        user_id: Uuid,
        sources: Vec<DataSourceInfo>,
    },
    SamplesRecorded {
        user_id: Uuid,
        batch: SampleBatchRef,
    },
    WorkoutsRecorded {
        user_id: Uuid,
        workouts: Vec<WorkoutRecord>,
    },
    SleepSessionsRecorded {
        user_id: Uuid,
        sessions: Vec<SleepSessionRecord>,
    },
    ActivitySummariesRecorded {
        user_id: Uuid,
        summaries: Vec<ActivitySummaryRecord>,
    },
    CharacteristicsRecorded {
        user_id: Uuid,
        characteristics: Characteristics,
    },
    MenstrualCyclesRecorded {
        user_id: Uuid,
        cycles: Vec<MenstrualCycleRecord>,
    },
    /// The complete set of cycles an import derived from one source's flow records, starting
    /// within `from..=to`. That source's other cycles there came from older data (a period
    /// logged late moves a cycle's start, and so its id) and are replaced.
    MenstrualCyclesDerived {
        user_id: Uuid,
        data_source_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        ids: Vec<Uuid>,
    },
    HealthScoresRecorded {
        user_id: Uuid,
        scores: Vec<HealthScoreRecord>,
    },
    /// A provider response or webhook body, stored raw before mapping; `mapping_version` says
    /// which mapper produced the records that follow, so a replay can re-map it.
    RawPayloadReceived {
        user_id: Uuid,
        raw: crate::import::RawPayloadRef,
        mapping_version: u32,
        /// When these bytes arrived this time (the same bytes can arrive again later).
        #[serde(default)]
        received_at: Option<DateTime<Utc>>,
    },
    /// Everything a provider wrote for the user is gone (disconnect with data deletion).
    ProviderDataDeleted {
        user_id: Uuid,
        provider: String,
        data_source_ids: Vec<Uuid>,
    },
    /// A user deleted a record through the API, or its provider deleted it: read models hide
    /// it from then on, also when an import or a later pull brings the same record (same id)
    /// again. The history keeps it.
    RecordDeleted {
        user_id: Uuid,
        kind: RecordKind,
        record_id: Uuid,
    },
    /// Samples mapped from a record its provider deleted (a Whoop recovery's vitals, a sleep's
    /// respiratory rate): every (series type × time) of `data_source_id` named here is hidden
    /// by the timeseries read model from then on, also when a later pull records it again.
    /// The history keeps the samples.
    SamplesDeleted {
        user_id: Uuid,
        data_source_id: Uuid,
        series_types: Vec<i16>,
        times: Vec<DateTime<Utc>>,
    },
}

/// The kinds of records that can be deleted: by a user through the API, or by the provider
/// that wrote them (a provider-side delete, e.g. Whoop's `*.deleted` webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Workout,
    Sleep,
    MenstrualCycle,
    /// A provider score (only its provider deletes it; the API has no delete for scores).
    HealthScore,
}

impl RecordKind {
    /// The aggregate type of a deletion's stream (one stream per record).
    pub const AGGREGATE_TYPE: &'static str = "UserRecord";
}

impl DataEvent {
    pub const AGGREGATE_TYPE: &'static str = "DataStream";

    pub fn event_type(&self) -> &'static str {
        match self {
            DataEvent::SourcesDiscovered { .. } => "SourcesDiscovered",
            DataEvent::SamplesRecorded { .. } => "SamplesRecorded",
            DataEvent::WorkoutsRecorded { .. } => "WorkoutsRecorded",
            DataEvent::SleepSessionsRecorded { .. } => "SleepSessionsRecorded",
            DataEvent::ActivitySummariesRecorded { .. } => "ActivitySummariesRecorded",
            DataEvent::CharacteristicsRecorded { .. } => "CharacteristicsRecorded",
            DataEvent::MenstrualCyclesRecorded { .. } => "MenstrualCyclesRecorded",
            DataEvent::MenstrualCyclesDerived { .. } => "MenstrualCyclesDerived",
            DataEvent::RecordDeleted { .. } => "RecordDeleted",
            DataEvent::SamplesDeleted { .. } => "SamplesDeleted",
            DataEvent::HealthScoresRecorded { .. } => "HealthScoresRecorded",
            DataEvent::RawPayloadReceived { .. } => "RawPayloadReceived",
            DataEvent::ProviderDataDeleted { .. } => "ProviderDataDeleted",
        }
    }

    pub fn user_id(&self) -> Uuid {
        match self {
            DataEvent::SourcesDiscovered { user_id, .. }
            | DataEvent::SamplesRecorded { user_id, .. }
            | DataEvent::WorkoutsRecorded { user_id, .. }
            | DataEvent::SleepSessionsRecorded { user_id, .. }
            | DataEvent::ActivitySummariesRecorded { user_id, .. }
            | DataEvent::CharacteristicsRecorded { user_id, .. }
            | DataEvent::MenstrualCyclesRecorded { user_id, .. }
            | DataEvent::MenstrualCyclesDerived { user_id, .. }
            | DataEvent::RecordDeleted { user_id, .. }
            | DataEvent::SamplesDeleted { user_id, .. } => *user_id,
            DataEvent::HealthScoresRecorded { user_id, .. }
            | DataEvent::RawPayloadReceived { user_id, .. }
            | DataEvent::ProviderDataDeleted { user_id, .. } => *user_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let u = Uuid::nil();
        let a = DataSourceInfo::id_for(u, "apple", Some("Watch"), Some("Apple Watch"));
        assert_eq!(
            a,
            DataSourceInfo::id_for(u, "apple", Some("Watch"), Some("Apple Watch"))
        );
        assert_ne!(
            a,
            DataSourceInfo::id_for(u, "apple", None, Some("Apple Watch"))
        );
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(record_id(&["ab", "c"]), record_id(&["a", "bc"]));
    }

    #[test]
    fn data_events_round_trip_through_json_with_their_type() {
        let e = DataEvent::CharacteristicsRecorded {
            user_id: Uuid::nil(),
            characteristics: Characteristics {
                birth_date: NaiveDate::from_ymd_opt(1990, 5, 1),
                sex: Some("female".into()),
            },
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], e.event_type());
        assert_eq!(serde_json::from_value::<DataEvent>(json).unwrap(), e);
    }
}
