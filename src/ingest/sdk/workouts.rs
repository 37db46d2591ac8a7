//! SDK workouts: the workout type (snake_case or UPPERCASE SDK names, HealthKit activity
//! names) and the workout statistics (reference §6): totals become the workout's stats,
//! per-workout averages of series become samples at the workout's end.

use std::collections::BTreeMap;

use wearhouse_domain::workout_type::WorkoutType;

use crate::ingest::apple::types as hk;

/// SDK workout names that are not contract codes themselves → contract codes.
const ALIASES: &[(&str, &str)] = &[
    ("wheelchair_walk", "wheelchair"),
    ("wheelchair_run", "wheelchair"),
    ("hand_cycling", "cycling"),
    ("stairs", "stair_climbing"),
    ("stair_climbing_machine", "stair_climbing"),
    ("jump_rope", "cardio_training"),
    ("cross_training", "cardio_training"),
    ("mixed_cardio", "cardio_training"),
    ("hiit", "cardio_training"),
    ("mixed_metabolic_cardio_training", "cardio_training"),
    ("boot_camp", "cardio_training"),
    ("core_training", "strength_training"),
    ("functional_strength_training", "strength_training"),
    ("weightlifting", "strength_training"),
    ("calisthenics", "strength_training"),
    ("step_training", "aerobics"),
    ("fitness_gaming", "gaming"),
    ("preparation_and_recovery", "recovery"),
    ("cooldown", "recovery"),
    ("flexibility", "stretching"),
    ("barre", "group_exercise"),
    ("exercise_class", "group_exercise"),
    ("cardio_dance", "dance"),
    ("social_dance", "dance"),
    ("dance_inspired_training", "dance"),
    ("dancing", "dance"),
    ("mind_and_body", "meditation"),
    ("guided_breathing", "meditation"),
    ("australian_football", "rugby"),
    ("football_australian", "rugby"),
    ("football_american", "american_football"),
    ("equestrian", "horseback_riding"),
    ("underwater_diving", "diving"),
    ("scuba_diving", "diving"),
    ("water_fitness", "water_sports"),
    ("kickboxing", "boxing"),
    ("tai_chi", "martial_arts"),
    ("track_and_field", "running"),
    ("swim_bike_run", "triathlon"),
    ("cycling_stationary", "indoor_cycling"),
    ("frisbee_disc", "disc_sports"),
    ("ice_hockey", "hockey"),
    ("roller_hockey", "hockey"),
    ("running_treadmill", "treadmill"),
    ("skiing", "alpine_skiing"),
    ("swimming_open_water", "open_water_swimming"),
    ("swimming_pool", "pool_swimming"),
    ("softball", "baseball"),
];

/// The contract's workout code for an SDK workout name; `other` when unknown.
pub fn workout_type(name: Option<&str>) -> WorkoutType {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return WorkoutType::OTHER;
    };
    if name.starts_with("HKWorkoutActivityType") {
        return hk::workout_type(name).unwrap_or(WorkoutType::OTHER);
    }
    let lower = name.to_ascii_lowercase();
    ALIASES
        .iter()
        .find(|(a, _)| *a == lower)
        .and_then(|(_, code)| WorkoutType::parse(code))
        .or_else(|| WorkoutType::parse(&lower))
        .unwrap_or(WorkoutType::OTHER)
}

/// Series the workout statistics become samples of (recorded at the workout's end).
pub const SAMPLE_SERIES: &[&str] = &[
    "running_stride_length",
    "running_vertical_oscillation",
    "running_ground_contact_time",
    "average_met",
    "weather_temperature",
    "weather_humidity",
    "swimming_stroke_count",
    "cadence",
    "vo2_max",
];

/// One workout statistic as sent: `{type, unit, value}`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Statistic {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub unit: Option<String>,
    pub value: f64,
}

/// What the statistics of one workout amount to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub duration_s: Option<f64>,
    /// Workout totals under the keys every mapper uses (`energy_kcal`, `distance_m`, ...).
    pub totals: BTreeMap<String, f64>,
    /// (series code, value in its canonical unit), recorded at the workout's end.
    pub samples: Vec<(&'static str, f64)>,
}

fn seconds(unit: &str, v: f64) -> Option<f64> {
    Some(match unit.trim() {
        "ms" => v / 1000.0,
        "" | "s" | "sec" => v,
        "min" => v * 60.0,
        "h" | "hr" => v * 3600.0,
        _ => return None,
    })
}

fn kcal(unit: &str, v: f64) -> Option<f64> {
    Some(match unit.trim().to_ascii_lowercase().as_str() {
        "" | "kcal" | "cal_large" => v,
        "cal" => v / 1000.0,
        "kj" => v / 4.184,
        "j" => v / 4184.0,
        _ => return None,
    })
}

fn meters(unit: &str, v: f64) -> Option<f64> {
    Some(match unit.trim() {
        "" | "m" => v,
        "km" => v * 1000.0,
        "cm" => v / 100.0,
        "mi" => v * 1609.344,
        "ft" => v * 0.3048,
        "yd" => v * 0.9144,
        _ => return None,
    })
}

fn centimeters(unit: &str, v: f64) -> Option<f64> {
    match unit.trim() {
        "" | "cm" => Some(v),
        u => meters(u, v).map(|m| m * 100.0),
    }
}

fn milliseconds(unit: &str, v: f64) -> Option<f64> {
    match unit.trim() {
        "" | "ms" => Some(v),
        u => seconds(u, v).map(|s| s * 1000.0),
    }
}

fn speed(unit: &str, v: f64) -> Option<f64> {
    Some(match unit.trim() {
        "" | "m/s" => v,
        "km/h" | "km/hr" => v / 3.6,
        "mph" | "mi/hr" => v * 0.447_04,
        _ => return None,
    })
}

fn celsius(unit: &str, v: f64) -> Option<f64> {
    Some(match unit.trim() {
        "" | "degC" | "°C" | "C" | "celsius" => v,
        "degF" | "°F" | "F" => (v - 32.0) * 5.0 / 9.0,
        _ => return None,
    })
}

fn percent(unit: &str, v: f64) -> Option<f64> {
    match unit.trim() {
        "" | "%" | "percent" => Some(if v <= 1.0 { v * 100.0 } else { v }),
        _ => None,
    }
}

/// Folds a workout's statistics; statistics with units that cannot be converted or of types
/// not mapped are left out (upstream accepts and ignores them too).
pub fn fold(values: &[Statistic]) -> Stats {
    let mut s = Stats::default();
    let mut energy = None::<f64>;
    for st in values {
        let unit = st.unit.as_deref().unwrap_or("");
        let v = st.value;
        if !v.is_finite() {
            continue;
        }
        let mut total = |key: &str, x: Option<f64>| {
            if let Some(x) = x {
                s.totals.insert(key.to_string(), x);
            }
        };
        match st.kind.as_str() {
            "duration" | "totalDuration" => {
                if let Some(x) = seconds(unit, v) {
                    s.duration_s = Some(x);
                }
            }
            "activeEnergyBurned" | "basalEnergyBurned" | "calories" | "totalCalories"
            | "totalEnergyBurned" => {
                if let Some(x) = kcal(unit, v) {
                    energy = Some(energy.unwrap_or(0.0) + x);
                }
            }
            "distance" | "totalDistance" => total("distance_m", meters(unit, v)),
            "stepCount" | "totalSteps" => total("steps", Some(v)),
            "minHeartRate" => total("heart_rate_min", Some(v)),
            "averageHeartRate" | "meanHeartRate" => total("heart_rate_avg", Some(v)),
            "maxHeartRate" => total("heart_rate_max", Some(v)),
            "averageRunningPower" => total("power_avg", Some(v)),
            "averageRunningSpeed" | "averageSpeed" | "meanSpeed" => {
                total("speed_avg", speed(unit, v))
            }
            "maxSpeed" => total("speed_max", speed(unit, v)),
            "elevationAscended" | "altitudeGain" => total("elevation_gain_m", meters(unit, v)),
            "elevationDescended" | "altitudeLoss" => total("elevation_loss_m", meters(unit, v)),
            "maxAltitude" => total("elevation_max_m", meters(unit, v)),
            "minAltitude" => total("elevation_min_m", meters(unit, v)),
            "maxCadence" => total("cadence_max", Some(v)),
            "averageRunningStrideLength" => {
                if let Some(x) = centimeters(unit, v) {
                    s.samples.push(("running_stride_length", x));
                }
            }
            "averageVerticalOscillation" => {
                if let Some(x) = centimeters(unit, v) {
                    s.samples.push(("running_vertical_oscillation", x));
                }
            }
            "averageGroundContactTime" => {
                if let Some(x) = milliseconds(unit, v) {
                    s.samples.push(("running_ground_contact_time", x));
                }
            }
            "averageMETs" => s.samples.push(("average_met", v)),
            "weatherTemperature" => {
                if let Some(x) = celsius(unit, v) {
                    s.samples.push(("weather_temperature", x));
                }
            }
            "weatherHumidity" => {
                if let Some(x) = percent(unit, v) {
                    s.samples.push(("weather_humidity", x));
                }
            }
            "swimmingStrokeCount" => s.samples.push(("swimming_stroke_count", v)),
            "meanCadence" => s.samples.push(("cadence", v)),
            "vo2Max" => s.samples.push(("vo2_max", v)),
            _ => {}
        }
    }
    if let Some(e) = energy {
        s.totals.insert("energy_kcal".into(), e);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(kind: &str, unit: &str, value: f64) -> Statistic {
        Statistic {
            kind: kind.into(),
            unit: Some(unit.into()),
            value,
        }
    }

    #[test]
    fn types_map_to_contract_codes() {
        assert_eq!(workout_type(Some("running")).as_str(), "running");
        assert_eq!(
            workout_type(Some("RUNNING_TREADMILL")).as_str(),
            "treadmill"
        );
        assert_eq!(workout_type(Some("hiit")).as_str(), "cardio_training");
        assert_eq!(
            workout_type(Some("HKWorkoutActivityTypeCycling")).as_str(),
            "cycling"
        );
        assert_eq!(workout_type(Some("quidditch")).as_str(), "other");
        assert_eq!(workout_type(None).as_str(), "other");
    }

    #[test]
    fn statistics_fold_into_totals_and_samples() {
        let s = fold(&[
            st("duration", "ms", 1_800_000.0),
            st("activeEnergyBurned", "kcal", 300.0),
            st("basalEnergyBurned", "kJ", 418.4),
            st("distance", "km", 5.0),
            st("averageHeartRate", "bpm", 150.0),
            st("maxHeartRate", "bpm", 175.0),
            st("elevationAscended", "m", 42.0),
            st("averageRunningStrideLength", "m", 1.1),
            st("weatherHumidity", "%", 0.6),
            st("lapLength", "m", 25.0),
        ]);
        assert_eq!(s.duration_s, Some(1800.0));
        assert_eq!(s.totals["energy_kcal"], 400.0);
        assert_eq!(s.totals["distance_m"], 5000.0);
        assert_eq!(s.totals["heart_rate_avg"], 150.0);
        assert_eq!(s.totals["elevation_gain_m"], 42.0);
        assert!(s
            .samples
            .iter()
            .any(|(c, v)| *c == "running_stride_length" && (*v - 110.0).abs() < 1e-9));
        assert!(s
            .samples
            .iter()
            .any(|(c, v)| *c == "weather_humidity" && (*v - 60.0).abs() < 1e-9));
    }
}
