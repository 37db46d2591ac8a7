//! The series-type catalog of the Open Wearables contract (reference §3.4).
//!
//! Ids are stable (they are stored as `smallint` and appear in the API), so the table is the single
//! source of truth: look types up by id or code, never build them ad hoc.

/// How a day's worth of samples collapses into one daily value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    Avg,
    Sum,
    Max,
}

impl Aggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Avg => "avg",
            Aggregation::Sum => "sum",
            Aggregation::Max => "max",
        }
    }
}

/// One entry of the catalog. `unit` is the canonical unit every sample of this type is stored in.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SeriesType {
    pub id: i16,
    pub code: &'static str,
    pub unit: &'static str,
    pub aggregation: Aggregation,
    pub category: &'static str,
}

impl SeriesType {
    /// Summable series: a day's value is the sum of its samples (steps, energy, distance...).
    pub fn is_additive(&self) -> bool {
        self.aggregation == Aggregation::Sum
    }
}

use Aggregation::{Avg, Max, Sum};

const HEART: &str = "Heart & Cardiovascular";
const BLOOD: &str = "Blood & Respiratory";
const BODY: &str = "Body Composition";
const FITNESS: &str = "Fitness";
const ACTIVITY: &str = "Activity";
const DISTANCE: &str = "Distance";
const WALKING: &str = "Walking";
const RUNNING: &str = "Running";
const SWIMMING: &str = "Swimming";
const GENERIC: &str = "Generic";
const ENVIRONMENT: &str = "Environmental";
const PROVIDER: &str = "Provider-Specific";
const OTHER: &str = "Other";

const fn t(
    id: i16,
    code: &'static str,
    unit: &'static str,
    aggregation: Aggregation,
    category: &'static str,
) -> SeriesType {
    SeriesType {
        id,
        code,
        unit,
        aggregation,
        category,
    }
}

/// Every series type, ordered by id.
pub static SERIES_TYPES: [SeriesType; 93] = [
    t(1, "heart_rate", "bpm", Avg, HEART),
    t(2, "resting_heart_rate", "bpm", Avg, HEART),
    t(3, "heart_rate_variability_sdnn", "ms", Avg, HEART),
    t(4, "heart_rate_recovery_one_minute", "bpm", Avg, HEART),
    t(5, "walking_heart_rate_average", "bpm", Avg, HEART),
    t(7, "heart_rate_variability_rmssd", "ms", Avg, HEART),
    t(20, "oxygen_saturation", "percent", Avg, BLOOD),
    t(21, "blood_glucose", "mg_dl", Avg, BLOOD),
    t(22, "blood_pressure_systolic", "mmHg", Avg, BLOOD),
    t(23, "blood_pressure_diastolic", "mmHg", Avg, BLOOD),
    t(24, "respiratory_rate", "brpm", Avg, BLOOD),
    t(25, "sleeping_breathing_disturbances", "count", Sum, BLOOD),
    t(26, "blood_alcohol_content", "mg_dl", Avg, BLOOD),
    t(27, "peripheral_perfusion_index", "score", Avg, BLOOD),
    t(28, "forced_vital_capacity", "liters", Avg, BLOOD),
    t(29, "forced_expiratory_volume_1", "liters", Avg, BLOOD),
    t(30, "peak_expiratory_flow_rate", "L/min", Avg, BLOOD),
    t(31, "breathing_disturbance_index", "score", Avg, BLOOD),
    t(40, "height", "cm", Avg, BODY),
    t(41, "weight", "kg", Avg, BODY),
    t(42, "body_fat_percentage", "percent", Avg, BODY),
    t(43, "body_mass_index", "kg_m2", Avg, BODY),
    t(44, "lean_body_mass", "kg", Avg, BODY),
    t(45, "body_temperature", "celsius", Avg, BODY),
    t(46, "skin_temperature", "celsius", Avg, BODY),
    t(47, "waist_circumference", "cm", Avg, BODY),
    t(48, "body_fat_mass", "kg", Avg, BODY),
    t(49, "skeletal_muscle_mass", "kg", Avg, BODY),
    t(50, "skin_temperature_deviation", "celsius", Avg, BODY),
    t(51, "skin_temperature_trend_deviation", "celsius", Avg, BODY),
    t(60, "vo2_max", "ml_kg_min", Avg, FITNESS),
    t(61, "six_minute_walk_test_distance", "meters", Max, FITNESS),
    t(62, "cardiovascular_age", "years", Avg, FITNESS),
    t(80, "steps", "count", Sum, ACTIVITY),
    t(81, "energy", "kcal", Sum, ACTIVITY),
    t(82, "basal_energy", "kcal", Sum, ACTIVITY),
    t(83, "stand_time", "minutes", Sum, ACTIVITY),
    t(84, "exercise_time", "minutes", Sum, ACTIVITY),
    t(85, "physical_effort", "score", Avg, ACTIVITY),
    t(86, "flights_climbed", "count", Sum, ACTIVITY),
    t(87, "average_met", "met", Avg, ACTIVITY),
    t(88, "active_time", "minutes", Sum, ACTIVITY),
    t(100, "distance_walking_running", "meters", Sum, DISTANCE),
    t(101, "distance_cycling", "meters", Sum, DISTANCE),
    t(102, "distance_swimming", "meters", Sum, DISTANCE),
    t(
        103,
        "distance_downhill_snow_sports",
        "meters",
        Sum,
        DISTANCE,
    ),
    t(104, "distance_other", "meters", Sum, DISTANCE),
    t(120, "walking_step_length", "cm", Avg, WALKING),
    t(121, "walking_speed", "m_per_s", Avg, WALKING),
    t(
        122,
        "walking_double_support_percentage",
        "percent",
        Avg,
        WALKING,
    ),
    t(123, "walking_asymmetry_percentage", "percent", Avg, WALKING),
    t(124, "walking_steadiness", "percent", Avg, WALKING),
    t(125, "stair_descent_speed", "m_per_s", Avg, WALKING),
    t(126, "stair_ascent_speed", "m_per_s", Avg, WALKING),
    t(140, "running_power", "watts", Avg, RUNNING),
    t(141, "running_speed", "m_per_s", Avg, RUNNING),
    t(142, "running_vertical_oscillation", "cm", Avg, RUNNING),
    t(143, "running_ground_contact_time", "ms", Avg, RUNNING),
    t(144, "running_stride_length", "cm", Avg, RUNNING),
    t(145, "running_vertical_ratio", "percent", Avg, RUNNING),
    t(146, "running_stance_time_balance", "percent", Avg, RUNNING),
    t(160, "swimming_stroke_count", "count", Sum, SWIMMING),
    t(161, "underwater_depth", "meters", Avg, SWIMMING),
    t(180, "cadence", "rpm", Avg, GENERIC),
    t(181, "power", "watts", Avg, GENERIC),
    t(182, "speed", "m_per_s", Avg, GENERIC),
    t(183, "workout_effort_score", "score", Avg, GENERIC),
    t(184, "estimated_workout_effort_score", "score", Avg, GENERIC),
    t(200, "environmental_audio_exposure", "dB", Avg, ENVIRONMENT),
    t(201, "headphone_audio_exposure", "dB", Avg, ENVIRONMENT),
    t(202, "environmental_sound_reduction", "dB", Avg, ENVIRONMENT),
    t(203, "time_in_daylight", "minutes", Sum, ENVIRONMENT),
    t(204, "water_temperature", "celsius", Avg, ENVIRONMENT),
    t(205, "uv_exposure", "count", Sum, ENVIRONMENT),
    t(206, "inhaler_usage", "count", Sum, ENVIRONMENT),
    t(207, "weather_temperature", "celsius", Avg, ENVIRONMENT),
    t(208, "weather_humidity", "percent", Avg, ENVIRONMENT),
    t(209, "elevation", "meters", Avg, ENVIRONMENT),
    t(210, "latitude", "degrees", Avg, ENVIRONMENT),
    t(211, "longitude", "degrees", Avg, ENVIRONMENT),
    t(212, "air_temperature", "celsius", Avg, ENVIRONMENT),
    t(220, "garmin_stress_level", "score", Avg, PROVIDER),
    t(221, "garmin_skin_temperature", "celsius", Avg, PROVIDER),
    t(222, "garmin_fitness_age", "years", Avg, PROVIDER),
    t(223, "garmin_body_battery", "percent", Avg, PROVIDER),
    t(500, "electrodermal_activity", "count", Avg, OTHER),
    t(501, "push_count", "count", Sum, OTHER),
    t(502, "atrial_fibrillation_burden", "count", Sum, OTHER),
    t(503, "insulin_delivery", "count", Sum, OTHER),
    t(504, "number_of_times_fallen", "count", Sum, OTHER),
    t(505, "number_of_alcoholic_beverages", "count", Sum, OTHER),
    t(506, "nike_fuel", "count", Sum, OTHER),
    t(507, "hydration", "mL", Avg, OTHER),
];

/// Looks a type up by its stable id.
pub fn by_id(id: i16) -> Option<&'static SeriesType> {
    SERIES_TYPES
        .binary_search_by_key(&id, |s| s.id)
        .ok()
        .map(|i| &SERIES_TYPES[i])
}

/// Looks a type up by code. `active_energy` is a newer upstream name of the contract's `energy`
/// (id 81), accepted from clients; responses use the contract's `energy`, which strict clients
/// generated from the contract's enum can decode.
pub fn by_code(code: &str) -> Option<&'static SeriesType> {
    let code = if code == "active_energy" {
        "energy"
    } else {
        code
    };
    SERIES_TYPES.iter().find(|s| s.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_has_93_types() {
        assert_eq!(SERIES_TYPES.len(), 93);
        for w in SERIES_TYPES.windows(2) {
            assert!(w[0].id < w[1].id, "{} before {}", w[0].id, w[1].id);
        }
        let mut codes: Vec<_> = SERIES_TYPES.iter().map(|s| s.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 93);
        assert!(by_id(6).is_none());
    }

    #[test]
    fn lookups_by_id_and_code_agree() {
        for s in &SERIES_TYPES {
            assert_eq!(by_id(s.id), Some(s));
            assert_eq!(by_code(s.code), Some(s));
        }
        assert!(by_code("nope").is_none());
    }

    #[test]
    fn active_energy_is_an_alias_of_energy() {
        let e = by_code("active_energy").unwrap();
        assert_eq!((e.id, e.code, e.unit), (81, "energy", "kcal"));
        assert!(e.is_additive());
    }

    #[test]
    fn aggregation_and_units_follow_the_contract() {
        assert_eq!(by_code("steps").unwrap().aggregation, Sum);
        assert_eq!(by_code("heart_rate").unwrap().aggregation, Avg);
        assert_eq!(
            by_code("six_minute_walk_test_distance")
                .unwrap()
                .aggregation,
            Max
        );
        assert!(!by_code("hydration").unwrap().is_additive());
        assert_eq!(by_id(21).unwrap().unit, "mg_dl");
        assert_eq!(by_id(20).unwrap().unit, "percent");
        assert_eq!(by_id(30).unwrap().unit, "L/min");
        assert_eq!(SERIES_TYPES.iter().filter(|s| s.is_additive()).count(), 23);
    }

    #[test]
    fn categories_follow_id_ranges() {
        assert_eq!(by_id(7).unwrap().category, HEART);
        assert_eq!(by_id(31).unwrap().category, BLOOD);
        assert_eq!(by_id(88).unwrap().category, ACTIVITY);
        assert_eq!(by_id(223).unwrap().category, "Provider-Specific");
        assert_eq!(by_id(507).unwrap().category, "Other");
    }
}
