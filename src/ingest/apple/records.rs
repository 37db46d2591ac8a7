//! What the parser reports: the records handed to a [`Sink`], the run's [`Counts`], and errors.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use wearhouse_domain::series::SeriesType;
use wearhouse_domain::sleep::SleepStage;
use wearhouse_domain::workout_type::WorkoutType;

use super::device::Source;
use wearhouse_log::arrow_batch::SampleRow;

/// One quantity sample, already in the series type's canonical unit. Times are UTC microseconds;
/// `zone_offset_min` is the offset the start date was written with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub series: &'static SeriesType,
    /// Index into the parser's source table ([`Sink::source`], `Report::sources`).
    pub source: u32,
    pub start: i64,
    pub end: i64,
    pub zone_offset_min: i16,
    pub value: f64,
}

impl From<&Sample> for SampleRow {
    /// Apple samples are intraday: `false` for additive series, null otherwise.
    fn from(s: &Sample) -> Self {
        SampleRow {
            time: s.start,
            end_time: s.end,
            zone_offset_min: s.zone_offset_min,
            value: s.value,
            is_daily_total: s.series.is_additive().then_some(false),
        }
    }
}

/// One interval of a sleep-analysis category record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepInterval {
    pub stage: SleepStage,
    pub source: u32,
    pub start: i64,
    pub end: i64,
    pub zone_offset_min: i16,
}

/// One menstrual-flow record (a day of a period, or a day logged without flow). `cycle_start`
/// is HealthKit's `HKMenstrualCycleStart` metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MenstrualFlow {
    pub source: u32,
    pub start: i64,
    pub zone_offset_min: i16,
    pub flow: bool,
    pub cycle_start: bool,
}

/// Totals of a workout, from its `WorkoutStatistics` children (or the legacy `total*` attributes),
/// in kcal, metres, bpm, m/s, W, rpm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkoutStats {
    pub energy_kcal: Option<f64>,
    pub basal_energy_kcal: Option<f64>,
    pub distance_m: Option<f64>,
    pub steps: Option<f64>,
    pub swim_strokes: Option<f64>,
    pub flights_climbed: Option<f64>,
    pub heart_rate_avg: Option<f64>,
    pub heart_rate_min: Option<f64>,
    pub heart_rate_max: Option<f64>,
    pub avg_speed_m_s: Option<f64>,
    pub max_speed_m_s: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub max_power_w: Option<f64>,
    pub avg_cadence: Option<f64>,
    pub elevation_gain_m: Option<f64>,
    pub avg_met: Option<f64>,
}

/// A `WorkoutEvent`: `kind` is the HealthKit event type without its prefix (`Pause`, `Lap`...).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkoutEvent {
    pub kind: String,
    pub time: i64,
    pub zone_offset_min: i16,
    pub duration_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workout {
    pub workout_type: WorkoutType,
    /// The `workoutActivityType` as written, for types we map to `other`.
    pub hk_activity_type: String,
    pub source: u32,
    pub start: i64,
    pub end: i64,
    pub zone_offset_min: i16,
    pub duration_s: f64,
    pub stats: WorkoutStats,
    pub events: Vec<WorkoutEvent>,
    /// `MetadataEntry` key/value pairs, unescaped, in document order.
    pub metadata: Vec<(String, String)>,
}

/// The daily rings summary (`ActivitySummary`); energy in kcal, times in minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivitySummary {
    pub date: NaiveDate,
    pub active_energy_kcal: Option<f64>,
    pub active_energy_goal_kcal: Option<f64>,
    pub move_time_min: Option<f64>,
    pub move_time_goal_min: Option<f64>,
    pub exercise_time_min: Option<f64>,
    pub exercise_time_goal_min: Option<f64>,
    pub stand_hours: Option<f64>,
    pub stand_hours_goal: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiologicalSex {
    Female,
    Male,
    Other,
}

/// The `Me` element: the person's characteristics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<BiologicalSex>,
}

/// Error a sink returns to stop the import.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives everything the parser finds, in document order. Every method defaults to ignoring.
pub trait Sink {
    /// A new source was interned at `index`; samples refer to it by that index.
    fn source(&mut self, _index: u32, _source: &Source) -> Result<(), SinkError> {
        Ok(())
    }
    fn sample(&mut self, _sample: &Sample) -> Result<(), SinkError> {
        Ok(())
    }
    fn sleep(&mut self, _interval: &SleepInterval) -> Result<(), SinkError> {
        Ok(())
    }
    fn workout(&mut self, _workout: &Workout) -> Result<(), SinkError> {
        Ok(())
    }
    fn menstrual_flow(&mut self, _flow: &MenstrualFlow) -> Result<(), SinkError> {
        Ok(())
    }
    fn activity_summary(&mut self, _summary: &ActivitySummary) -> Result<(), SinkError> {
        Ok(())
    }
    fn me(&mut self, _me: &Me) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A sink that keeps nothing: for counting-only parses.
pub struct NullSink;
impl Sink for NullSink {}

/// Why an element produced nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    MissingType,
    EmptyValue,
    NotANumber,
    OutOfRange,
    UnsupportedUnit,
    BadDate,
    EndBeforeStart,
    UnknownSleepValue,
    UnknownFlowValue,
    /// A blood-pressure record seen both inside its `Correlation` and at top level (Apple writes
    /// both); the second copy is dropped.
    DuplicateInCorrelation,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::MissingType => "missing_type",
            SkipReason::EmptyValue => "empty_value",
            SkipReason::NotANumber => "not_a_number",
            SkipReason::OutOfRange => "out_of_range",
            SkipReason::UnsupportedUnit => "unsupported_unit",
            SkipReason::BadDate => "bad_date",
            SkipReason::EndBeforeStart => "end_before_start",
            SkipReason::UnknownSleepValue => "unknown_sleep_value",
            SkipReason::UnknownFlowValue => "unknown_flow_value",
            SkipReason::DuplicateInCorrelation => "duplicate_in_correlation",
        }
    }
}

/// What a parse found. `records` counts every `Record` element (nested ones included);
/// every record ends up in exactly one of samples, sleep intervals, menstrual flows, `skipped` or
/// `unknown_types`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    pub samples: u64,
    pub sleep_intervals: u64,
    /// Menstrual-flow records (with or without flow).
    pub menstrual_flows: u64,
    pub workouts: u64,
    pub activity_summaries: u64,
    pub correlations: u64,
    /// Samples per series type id.
    pub per_series: BTreeMap<i16, u64>,
    /// Records, workouts and summaries dropped, per reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Records of unmapped HealthKit types and unknown top-level elements, per name.
    pub unknown_types: BTreeMap<String, u64>,
    /// Workouts kept as `other` because their activity type is not mapped, per HealthKit name.
    pub unmapped_workout_types: BTreeMap<String, u64>,
}

impl Counts {
    pub fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    /// Elements that each cost a parse step: records + workouts + summaries.
    pub fn elements(&self) -> u64 {
        self.records + self.workouts + self.activity_summaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wearhouse_domain::series;

    #[test]
    fn rows_from_parsed_samples_mark_additive_series_as_intraday() {
        let s = Sample {
            series: series::by_code("heart_rate").unwrap(),
            source: 0,
            start: 5,
            end: 6,
            zone_offset_min: 60,
            value: 61.0,
        };
        assert_eq!(SampleRow::from(&s).is_daily_total, None);
        let s = Sample {
            series: series::by_code("steps").unwrap(),
            ..s
        };
        let row = SampleRow::from(&s);
        assert_eq!(row.is_daily_total, Some(false));
        let back = wearhouse_log::arrow_batch::decode(
            &wearhouse_log::arrow_batch::encode(s.series, &[row], &[]).unwrap(),
        )
        .unwrap();
        assert_eq!(back.rows, [row]);
    }
}
