//! HealthKit identifiers → wearhouse types: quantity types to series types (with their unit
//! conversion and plausible range), sleep-analysis values to stages, workout activity types to the
//! contract's workout codes.
//!
//! Where the contract's map (reference §5) files a type under a wrong series (NikeFuel, underwater
//! depth and speeds under `distance_other`) the type goes to the series that exists for it.

use std::collections::HashMap;
use std::sync::OnceLock;

use wearhouse_domain::series::{self, SeriesType};
use wearhouse_domain::sleep::SleepStage;
use wearhouse_domain::workout_type::WorkoutType;

use super::units::Conv;

pub const QUANTITY_PREFIX: &str = "HKQuantityTypeIdentifier";
pub const SLEEP_ANALYSIS: &[u8] = b"HKCategoryTypeIdentifierSleepAnalysis";
pub const MENSTRUAL_FLOW: &[u8] = b"HKCategoryTypeIdentifierMenstrualFlow";
pub const BP_SYSTOLIC: i16 = 22;
pub const BP_DIASTOLIC: i16 = 23;

/// How one HealthKit quantity type becomes samples of a series type.
#[derive(Debug)]
pub struct QuantityMapping {
    pub series: &'static SeriesType,
    pub conv: Conv,
    /// Values outside [min, max] (canonical unit) are implausible and skipped.
    pub min: f64,
    pub max: f64,
}

const COUNT_MIN: Conv = Conv::PerMinute;
const PCT: Conv = Conv::PercentFromFraction;
const DB: Conv = Conv::Exact(&["dBASPL", "dB"]);
const EFFORT: Conv = Conv::Exact(&["appleEffortScore", "kcal/hr·kg", "count", ""]);

/// (HealthKit suffix after `HKQuantityTypeIdentifier`, series id, conversion, min, max).
const QUANTITY_TABLE: &[(&str, i16, Conv, f64, f64)] = &[
    ("HeartRate", 1, COUNT_MIN, 20.0, 300.0),
    ("RestingHeartRate", 2, COUNT_MIN, 20.0, 250.0),
    (
        "HeartRateVariabilitySDNN",
        3,
        Conv::Milliseconds,
        0.0,
        1000.0,
    ),
    ("HeartRateRecoveryOneMinute", 4, COUNT_MIN, 0.0, 250.0),
    ("WalkingHeartRateAverage", 5, COUNT_MIN, 20.0, 300.0),
    ("OxygenSaturation", 20, PCT, 50.0, 100.0),
    ("BloodGlucose", 21, Conv::MgPerDl, 10.0, 1500.0),
    (
        "BloodPressureSystolic",
        22,
        Conv::Exact(&["mmHg"]),
        40.0,
        300.0,
    ),
    (
        "BloodPressureDiastolic",
        23,
        Conv::Exact(&["mmHg"]),
        20.0,
        250.0,
    ),
    ("RespiratoryRate", 24, COUNT_MIN, 1.0, 100.0),
    (
        "AppleSleepingBreathingDisturbances",
        25,
        Conv::Count,
        0.0,
        1000.0,
    ),
    ("BloodAlcoholContent", 26, Conv::BloodAlcohol, 0.0, 1000.0),
    ("PeripheralPerfusionIndex", 27, PCT, 0.0, 100.0),
    ("ForcedVitalCapacity", 28, Conv::Liters, 0.0, 15.0),
    ("ForcedExpiratoryVolume1", 29, Conv::Liters, 0.0, 15.0),
    (
        "PeakExpiratoryFlowRate",
        30,
        Conv::LitersPerMinute,
        0.0,
        1500.0,
    ),
    ("Height", 40, Conv::Centimeters, 30.0, 280.0),
    ("BodyMass", 41, Conv::Kilograms, 1.0, 650.0),
    ("BodyFatPercentage", 42, PCT, 1.0, 80.0),
    ("BodyMassIndex", 43, Conv::Count, 5.0, 150.0),
    ("LeanBodyMass", 44, Conv::Kilograms, 1.0, 300.0),
    ("BodyTemperature", 45, Conv::Celsius, 25.0, 45.0),
    ("BasalBodyTemperature", 45, Conv::Celsius, 25.0, 45.0),
    // The contract files the nightly wrist reading under body temperature; kept for compatibility.
    (
        "AppleSleepingWristTemperature",
        45,
        Conv::Celsius,
        25.0,
        45.0,
    ),
    ("WaistCircumference", 47, Conv::Centimeters, 20.0, 400.0),
    (
        "VO2Max",
        60,
        Conv::Exact(&["mL/min·kg", "mL/kg·min", "mL/(kg·min)"]),
        5.0,
        100.0,
    ),
    ("SixMinuteWalkTestDistance", 61, Conv::Meters, 0.0, 1500.0),
    ("StepCount", 80, Conv::Count, 0.0, 100_000.0),
    ("ActiveEnergyBurned", 81, Conv::Kilocalories, 0.0, 20_000.0),
    ("BasalEnergyBurned", 82, Conv::Kilocalories, 0.0, 20_000.0),
    ("AppleStandTime", 83, Conv::Minutes, 0.0, 1440.0),
    ("AppleExerciseTime", 84, Conv::Minutes, 0.0, 1440.0),
    ("AppleMoveTime", 84, Conv::Minutes, 0.0, 1440.0),
    ("PhysicalEffort", 85, EFFORT, 0.0, 100.0),
    ("FlightsClimbed", 86, Conv::Count, 0.0, 10_000.0),
    (
        "DistanceWalkingRunning",
        100,
        Conv::Meters,
        0.0,
        1_000_000.0,
    ),
    ("DistanceCycling", 101, Conv::Meters, 0.0, 2_000_000.0),
    ("DistanceSwimming", 102, Conv::Meters, 0.0, 200_000.0),
    (
        "DistanceDownhillSnowSports",
        103,
        Conv::Meters,
        0.0,
        1_000_000.0,
    ),
    ("DistanceWheelchair", 104, Conv::Meters, 0.0, 1_000_000.0),
    ("DistanceRowing", 104, Conv::Meters, 0.0, 1_000_000.0),
    ("DistancePaddleSports", 104, Conv::Meters, 0.0, 1_000_000.0),
    (
        "DistanceCrossCountrySkiing",
        104,
        Conv::Meters,
        0.0,
        1_000_000.0,
    ),
    ("DistanceSkatingSports", 104, Conv::Meters, 0.0, 1_000_000.0),
    ("WalkingStepLength", 120, Conv::Centimeters, 5.0, 400.0),
    ("WalkingSpeed", 121, Conv::MetersPerSecond, 0.0, 15.0),
    ("WalkingDoubleSupportPercentage", 122, PCT, 0.0, 100.0),
    ("WalkingAsymmetryPercentage", 123, PCT, 0.0, 100.0),
    ("AppleWalkingSteadiness", 124, PCT, 0.0, 100.0),
    ("StairDescentSpeed", 125, Conv::MetersPerSecond, 0.0, 10.0),
    ("StairAscentSpeed", 126, Conv::MetersPerSecond, 0.0, 10.0),
    ("RunningPower", 140, Conv::Watts, 0.0, 3000.0),
    ("RunningSpeed", 141, Conv::MetersPerSecond, 0.0, 20.0),
    (
        "RunningVerticalOscillation",
        142,
        Conv::Centimeters,
        0.0,
        100.0,
    ),
    (
        "RunningGroundContactTime",
        143,
        Conv::Milliseconds,
        10.0,
        3000.0,
    ),
    ("RunningStrideLength", 144, Conv::Centimeters, 10.0, 600.0),
    ("SwimmingStrokeCount", 160, Conv::Count, 0.0, 100_000.0),
    ("UnderwaterDepth", 161, Conv::Meters, 0.0, 1000.0),
    ("CyclingCadence", 180, COUNT_MIN, 0.0, 400.0),
    ("CyclingPower", 181, Conv::Watts, 0.0, 3000.0),
    (
        "CyclingFunctionalThresholdPower",
        181,
        Conv::Watts,
        0.0,
        3000.0,
    ),
    ("CyclingSpeed", 182, Conv::MetersPerSecond, 0.0, 100.0),
    ("RowingSpeed", 182, Conv::MetersPerSecond, 0.0, 100.0),
    ("PaddleSportsSpeed", 182, Conv::MetersPerSecond, 0.0, 100.0),
    (
        "CrossCountrySkiingSpeed",
        182,
        Conv::MetersPerSecond,
        0.0,
        100.0,
    ),
    ("WorkoutEffortScore", 183, EFFORT, 0.0, 10.0),
    ("EstimatedWorkoutEffortScore", 184, EFFORT, 0.0, 10.0),
    ("EnvironmentalAudioExposure", 200, DB, 0.0, 200.0),
    ("HeadphoneAudioExposure", 201, DB, 0.0, 200.0),
    ("EnvironmentalSoundReduction", 202, DB, 0.0, 200.0),
    ("TimeInDaylight", 203, Conv::Minutes, 0.0, 1440.0),
    ("WaterTemperature", 204, Conv::Celsius, -5.0, 60.0),
    ("UVExposure", 205, Conv::Count, 0.0, 30.0),
    ("InhalerUsage", 206, Conv::Count, 0.0, 1000.0),
    (
        "ElectrodermalActivity",
        500,
        Conv::Exact(&["mcS", "count"]),
        0.0,
        100_000.0,
    ),
    ("PushCount", 501, Conv::Count, 0.0, 100_000.0),
    // AFib burden is a `%` fraction in HealthKit; stored as percent points.
    ("AtrialFibrillationBurden", 502, PCT, 0.0, 100.0),
    (
        "InsulinDelivery",
        503,
        Conv::Exact(&["IU", "count"]),
        0.0,
        1000.0,
    ),
    ("NumberOfTimesFallen", 504, Conv::Count, 0.0, 1000.0),
    ("NumberOfAlcoholicBeverages", 505, Conv::Count, 0.0, 1000.0),
    ("NikeFuel", 506, Conv::Count, 0.0, 100_000.0),
    ("DietaryWater", 507, Conv::Milliliters, 0.0, 20_000.0),
];

fn quantity_map() -> &'static HashMap<&'static [u8], QuantityMapping> {
    static MAP: OnceLock<HashMap<&'static [u8], QuantityMapping>> = OnceLock::new();
    MAP.get_or_init(|| {
        QUANTITY_TABLE
            .iter()
            .map(|&(suffix, id, conv, min, max)| {
                let hk_type: &'static str = Box::leak(format!("{QUANTITY_PREFIX}{suffix}").into());
                let series = series::by_id(id).expect("quantity table names a catalog id");
                let m = QuantityMapping {
                    series,
                    conv,
                    min,
                    max,
                };
                (hk_type.as_bytes(), m)
            })
            .collect()
    })
}

/// The mapping of a full HealthKit quantity identifier, if it is one we store.
pub fn quantity(hk_type: &[u8]) -> Option<&'static QuantityMapping> {
    quantity_map().get(hk_type)
}

/// All mapped HealthKit quantity identifiers (for tests and the generator).
pub fn quantity_mappings() -> impl Iterator<Item = &'static QuantityMapping> {
    quantity_map().values()
}

/// Every series type the Apple importer can produce, by id (the coverage document lists these).
pub fn series_types() -> Vec<&'static SeriesType> {
    let mut out: Vec<&'static SeriesType> = quantity_mappings().map(|m| m.series).collect();
    out.sort_by_key(|t| t.id);
    out.dedup_by_key(|t| t.id);
    out
}

/// Sleep-analysis category values: the symbolic names of current exports and the integers of old
/// ones (0 in bed, 1 asleep, 2 awake, 3 core, 4 deep, 5 REM).
/// Whether a menstrual-flow value means flow: `Some(true)` for unspecified, light, medium or
/// heavy; `Some(false)` for "none"; None when unknown. iOS 18 renamed the values to
/// `HKCategoryValueVaginalBleeding…`; older exports may hold the raw numbers (1–5).
pub fn menstrual_flow(value: &[u8]) -> Option<bool> {
    let name = value
        .strip_prefix(b"HKCategoryValueMenstrualFlow")
        .or_else(|| value.strip_prefix(b"HKCategoryValueVaginalBleeding"))
        .unwrap_or(value);
    match name {
        b"Unspecified" | b"Light" | b"Medium" | b"Heavy" | b"1" | b"2" | b"3" | b"4" => Some(true),
        b"None" | b"5" => Some(false),
        _ => None,
    }
}

pub fn sleep_stage(value: &[u8]) -> Option<SleepStage> {
    let name = value
        .strip_prefix(b"HKCategoryValueSleepAnalysis")
        .unwrap_or(value);
    Some(match name {
        b"InBed" | b"0" => SleepStage::InBed,
        b"Asleep" | b"AsleepUnspecified" | b"1" => SleepStage::Sleeping,
        b"Awake" | b"2" => SleepStage::Awake,
        b"AsleepCore" | b"3" => SleepStage::Light,
        b"AsleepDeep" | b"4" => SleepStage::Deep,
        b"AsleepREM" | b"5" => SleepStage::Rem,
        _ => return None,
    })
}

/// HealthKit workout activity names (after `HKWorkoutActivityType`) and the workout codes they
/// map to; the first name of a code is the one the seed generator writes for it.
pub const HK_WORKOUTS: &[(&str, &str)] = &[
    ("AmericanFootball", "american_football"),
    ("Archery", "archery"),
    ("AustralianFootball", "rugby"),
    ("Rugby", "rugby"),
    ("Badminton", "badminton"),
    ("Baseball", "baseball"),
    ("Softball", "baseball"),
    ("Basketball", "basketball"),
    ("Bowling", "bowling"),
    ("Boxing", "boxing"),
    ("Kickboxing", "boxing"),
    ("Climbing", "rock_climbing"),
    ("Cricket", "cricket"),
    ("CrossTraining", "cardio_training"),
    ("MixedMetabolicCardioTraining", "cardio_training"),
    ("MixedCardio", "cardio_training"),
    ("JumpRope", "cardio_training"),
    ("HighIntensityIntervalTraining", "cardio_training"),
    ("Curling", "curling"),
    ("Cycling", "cycling"),
    ("HandCycling", "cycling"),
    ("Dance", "dance"),
    ("DanceInspiredTraining", "dance"),
    ("CardioDance", "dance"),
    ("SocialDance", "dance"),
    ("Elliptical", "elliptical"),
    ("EquestrianSports", "horseback_riding"),
    ("Fencing", "fencing"),
    ("Fishing", "fishing"),
    ("FunctionalStrengthTraining", "strength_training"),
    ("TraditionalStrengthTraining", "strength_training"),
    ("CoreTraining", "strength_training"),
    ("Golf", "golf"),
    ("Gymnastics", "gymnastics"),
    ("Handball", "handball"),
    ("Hiking", "hiking"),
    ("Hockey", "hockey"),
    ("Hunting", "hunting"),
    ("Lacrosse", "lacrosse"),
    ("MartialArts", "martial_arts"),
    ("TaiChi", "martial_arts"),
    ("MindAndBody", "meditation"),
    ("PaddleSports", "paddling"),
    ("Play", "play"),
    ("PreparationAndRecovery", "recovery"),
    ("Cooldown", "recovery"),
    ("Racquetball", "racquetball"),
    ("Rowing", "rowing"),
    ("Running", "running"),
    ("TrackAndField", "running"),
    ("Sailing", "sailing"),
    ("SkatingSports", "skating"),
    ("SnowSports", "snow_sports"),
    ("Soccer", "soccer"),
    ("Squash", "squash"),
    ("StairClimbing", "stair_climbing"),
    ("Stairs", "stair_climbing"),
    ("StepTraining", "aerobics"),
    ("SurfingSports", "surfing"),
    ("Swimming", "swimming"),
    ("TableTennis", "table_tennis"),
    ("Tennis", "tennis"),
    ("Volleyball", "volleyball"),
    ("Walking", "walking"),
    ("WaterFitness", "water_sports"),
    ("WaterSports", "water_sports"),
    ("WaterPolo", "water_polo"),
    ("Wrestling", "wrestling"),
    ("Yoga", "yoga"),
    ("Barre", "pilates"),
    ("Pilates", "pilates"),
    ("CrossCountrySkiing", "cross_country_skiing"),
    ("DownhillSkiing", "downhill_skiing"),
    ("Flexibility", "stretching"),
    ("Snowboarding", "snowboarding"),
    ("WheelchairWalkPace", "wheelchair"),
    ("WheelchairRunPace", "wheelchair"),
    ("DiscSports", "disc_sports"),
    ("FitnessGaming", "gaming"),
    ("Pickleball", "pickleball"),
    ("SwimBikeRun", "triathlon"),
    ("Transition", "transition"),
    ("UnderwaterDiving", "diving"),
    ("Other", "other"),
];

/// `HKWorkoutActivityType…` → workout code; `None` for names we do not know.
pub fn workout_type(hk: &str) -> Option<WorkoutType> {
    let name = hk.strip_prefix("HKWorkoutActivityType").unwrap_or(hk);
    let (_, code) = HK_WORKOUTS.iter().find(|(n, _)| *n == name)?;
    WorkoutType::parse(code)
}

/// The HealthKit activity name written for a workout code, if HealthKit has one.
pub fn hk_workout_name(code: &str) -> Option<&'static str> {
    HK_WORKOUTS
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_types_are_the_table_ids_sorted_once_each() {
        let ids: Vec<i16> = series_types().iter().map(|t| t.id).collect();
        let mut expected: Vec<i16> = QUANTITY_TABLE.iter().map(|e| e.1).collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(ids, expected);
        assert!(ids.contains(&1) && ids.contains(&BP_SYSTOLIC) && ids.contains(&BP_DIASTOLIC));
    }

    #[test]
    fn every_table_entry_resolves_and_is_unique() {
        assert_eq!(quantity_map().len(), QUANTITY_TABLE.len());
        let m = quantity(b"HKQuantityTypeIdentifierStepCount").unwrap();
        assert_eq!((m.series.code, m.conv), ("steps", Conv::Count));
        for m in quantity_mappings() {
            assert!(m.min < m.max, "{}", m.series.code);
        }
    }

    #[test]
    fn families_map_to_their_series() {
        let cases: &[(&str, &str)] = &[
            ("HeartRate", "heart_rate"),
            ("HeartRateVariabilitySDNN", "heart_rate_variability_sdnn"),
            ("OxygenSaturation", "oxygen_saturation"),
            ("BloodGlucose", "blood_glucose"),
            ("BloodPressureSystolic", "blood_pressure_systolic"),
            ("BodyMass", "weight"),
            ("BodyFatPercentage", "body_fat_percentage"),
            ("AppleSleepingWristTemperature", "body_temperature"),
            ("VO2Max", "vo2_max"),
            ("ActiveEnergyBurned", "energy"),
            ("AppleMoveTime", "exercise_time"),
            ("DistanceRowing", "distance_other"),
            ("WalkingAsymmetryPercentage", "walking_asymmetry_percentage"),
            ("RunningGroundContactTime", "running_ground_contact_time"),
            ("UnderwaterDepth", "underwater_depth"),
            ("NikeFuel", "nike_fuel"),
            ("CyclingFunctionalThresholdPower", "power"),
            ("RowingSpeed", "speed"),
            ("EnvironmentalAudioExposure", "environmental_audio_exposure"),
            ("DietaryWater", "hydration"),
        ];
        for (hk, code) in cases {
            let full = format!("{QUANTITY_PREFIX}{hk}");
            assert_eq!(
                quantity(full.as_bytes()).unwrap().series.code,
                *code,
                "{hk}"
            );
        }
        assert!(quantity(b"HKQuantityTypeIdentifierDietaryEnergyConsumed").is_none());
        assert!(quantity(b"HeartRate").is_none());
    }

    #[test]
    fn sleep_values_named_and_legacy() {
        use SleepStage::*;
        let named: &[(&[u8], SleepStage)] = &[
            (b"HKCategoryValueSleepAnalysisInBed", InBed),
            (b"HKCategoryValueSleepAnalysisAsleep", Sleeping),
            (b"HKCategoryValueSleepAnalysisAsleepUnspecified", Sleeping),
            (b"HKCategoryValueSleepAnalysisAwake", Awake),
            (b"HKCategoryValueSleepAnalysisAsleepCore", Light),
            (b"HKCategoryValueSleepAnalysisAsleepDeep", Deep),
            (b"HKCategoryValueSleepAnalysisAsleepREM", Rem),
        ];
        for (v, st) in named {
            assert_eq!(sleep_stage(v), Some(*st));
        }
        let legacy = [InBed, Sleeping, Awake, Light, Deep, Rem];
        for (i, st) in legacy.iter().enumerate() {
            assert_eq!(sleep_stage(i.to_string().as_bytes()), Some(*st));
        }
        assert_eq!(sleep_stage(b"6"), None);
        assert_eq!(sleep_stage(b"HKCategoryValueSleepAnalysisDreaming"), None);
    }

    #[test]
    fn workout_types() {
        let w = |s| workout_type(s).map(|t| t.as_str());
        assert_eq!(w("HKWorkoutActivityTypeRunning"), Some("running"));
        assert_eq!(
            w("HKWorkoutActivityTypeHighIntensityIntervalTraining"),
            Some("cardio_training")
        );
        assert_eq!(w("HKWorkoutActivityTypeFitnessGaming"), Some("gaming"));
        assert_eq!(w("HKWorkoutActivityTypeFlexibility"), Some("stretching"));
        assert_eq!(w("HKWorkoutActivityTypeSwimBikeRun"), Some("triathlon"));
        assert_eq!(w("HKWorkoutActivityTypeQuidditch"), None);
    }
}
