//! Metric records → series samples. HealthKit identifiers go through the same table and unit
//! conversion as the Apple export (`ingest::apple::types`); Android names (Health Connect and
//! Samsung Health, UPPERCASE) through [`ANDROID`]. Heart rate variability is SDNN from
//! HealthKit and RMSSD from Android (reference §6).

use wearhouse_domain::series::{self, SeriesType};

use crate::ingest::apple::types as hk;
use crate::ingest::apple::units;

/// mg/dL per mmol/L of glucose, as upstream converts.
pub const GLUCOSE_MG_PER_MMOL: f64 = 18.0182;

/// How an Android value becomes the series' canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Count,
    Bpm,
    Ms,
    /// Percent points; a value ≤ 1 is a fraction (Health Connect writes 0–100, some apps 0–1).
    Percent,
    Glucose,
    MmHg,
    Cm,
    Kg,
    Celsius,
    MlPerKgMin,
    Kcal,
    Meters,
    Ml,
    Watts,
    MetersPerSecond,
    Rpm,
}

/// (Android record name, series code, unit, plausible min, max in the canonical unit).
const ANDROID: &[(&str, &str, Unit, f64, f64)] = &[
    ("HEART_RATE", "heart_rate", Unit::Bpm, 20.0, 300.0),
    (
        "RESTING_HEART_RATE",
        "resting_heart_rate",
        Unit::Bpm,
        20.0,
        250.0,
    ),
    (
        "HEART_RATE_VARIABILITY",
        "heart_rate_variability_rmssd",
        Unit::Ms,
        0.0,
        1000.0,
    ),
    (
        "OXYGEN_SATURATION",
        "oxygen_saturation",
        Unit::Percent,
        50.0,
        100.0,
    ),
    (
        "BLOOD_GLUCOSE",
        "blood_glucose",
        Unit::Glucose,
        10.0,
        1500.0,
    ),
    (
        "BLOOD_PRESSURE_SYSTOLIC",
        "blood_pressure_systolic",
        Unit::MmHg,
        40.0,
        300.0,
    ),
    (
        "BLOOD_PRESSURE_DIASTOLIC",
        "blood_pressure_diastolic",
        Unit::MmHg,
        20.0,
        250.0,
    ),
    (
        "RESPIRATORY_RATE",
        "respiratory_rate",
        Unit::Bpm,
        1.0,
        100.0,
    ),
    ("HEIGHT", "height", Unit::Cm, 30.0, 280.0),
    ("WEIGHT", "weight", Unit::Kg, 1.0, 650.0),
    ("LEAN_BODY_MASS", "lean_body_mass", Unit::Kg, 1.0, 300.0),
    (
        "SKELETAL_MUSCLE_MASS",
        "skeletal_muscle_mass",
        Unit::Kg,
        1.0,
        300.0,
    ),
    ("BODY_FAT_MASS", "body_fat_mass", Unit::Kg, 0.0, 400.0),
    ("BODY_FAT", "body_fat_percentage", Unit::Percent, 1.0, 80.0),
    ("BMI", "body_mass_index", Unit::Count, 5.0, 150.0),
    (
        "BODY_TEMPERATURE",
        "body_temperature",
        Unit::Celsius,
        25.0,
        45.0,
    ),
    ("VO2_MAX", "vo2_max", Unit::MlPerKgMin, 5.0, 100.0),
    ("STEP_COUNT", "steps", Unit::Count, 0.0, 100_000.0),
    (
        "ACTIVE_CALORIES_BURNED",
        "energy",
        Unit::Kcal,
        0.0,
        20_000.0,
    ),
    (
        "BASAL_METABOLIC_RATE",
        "basal_energy",
        Unit::Kcal,
        0.0,
        20_000.0,
    ),
    ("TOTAL_CALORIES_BURNED", "energy", Unit::Kcal, 0.0, 30_000.0),
    (
        "FLOORS_CLIMBED",
        "flights_climbed",
        Unit::Count,
        0.0,
        10_000.0,
    ),
    (
        "DISTANCE",
        "distance_walking_running",
        Unit::Meters,
        0.0,
        1_000_000.0,
    ),
    ("HYDRATION", "hydration", Unit::Ml, 0.0, 20_000.0),
    ("POWER", "power", Unit::Watts, 0.0, 3000.0),
    ("SPEED", "speed", Unit::MetersPerSecond, 0.0, 100.0),
    ("CYCLING_PEDALING_CADENCE", "cadence", Unit::Rpm, 0.0, 400.0),
];

/// Why one record could not be mapped (the salvage reasons of the sync run's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    UnsupportedType,
    Unit,
    OutOfRange,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::UnsupportedType => "unsupported type",
            Reject::Unit => "unit not convertible",
            Reject::OutOfRange => "value out of range",
        }
    }
}

fn lower(unit: &str) -> String {
    unit.trim().to_ascii_lowercase()
}

fn android_value(u: Unit, unit: &str, v: f64) -> Option<f64> {
    let l = lower(unit);
    let l = l.as_str();
    Some(match u {
        Unit::Count => match l {
            "" | "count" | "steps" | "floors" | "kg/m2" | "kg/m²" => v,
            _ => return None,
        },
        Unit::Bpm | Unit::Rpm => match l {
            "" | "bpm" | "count/min" | "/min" | "beats/min" | "rpm" | "brpm" | "breaths/min"
            | "revolutions/min" => v,
            "hz" | "count/s" => v * 60.0,
            _ => return None,
        },
        Unit::Ms => match l {
            "" | "ms" | "milliseconds" => v,
            "s" => v * 1000.0,
            _ => return None,
        },
        Unit::Percent => match l {
            "" | "%" | "percent" => {
                if v <= 1.0 {
                    v * 100.0
                } else {
                    v
                }
            }
            _ => return None,
        },
        Unit::Glucose => {
            if l.starts_with("mmol") {
                v * GLUCOSE_MG_PER_MMOL
            } else if matches!(l, "" | "mg/dl") {
                v
            } else {
                return None;
            }
        }
        Unit::MmHg => match l {
            "" | "mmhg" | "millimeters of mercury" => v,
            _ => return None,
        },
        Unit::Cm => match l {
            "cm" => v,
            "m" => v * 100.0,
            "mm" => v / 10.0,
            "in" | "inch" | "inches" => v * 2.54,
            "ft" => v * 30.48,
            _ => return None,
        },
        Unit::Kg => match l {
            "" | "kg" => v,
            "g" => v / 1000.0,
            "lb" | "lbs" | "pound" | "pounds" => v * 0.453_592_37,
            _ => return None,
        },
        Unit::Celsius => match l {
            "" | "c" | "°c" | "degc" | "celsius" => v,
            "f" | "°f" | "degf" | "fahrenheit" => (v - 32.0) * 5.0 / 9.0,
            _ => return None,
        },
        Unit::MlPerKgMin => match l {
            "" | "ml/kg/min" | "ml/(kg·min)" | "ml/min/kg" | "ml/kg·min" | "ml/min·kg" => v,
            _ => return None,
        },
        Unit::Kcal => match l {
            "" | "kcal" | "kcal/day" | "kilocalories" => v,
            "cal" => v / 1000.0,
            "kj" => v / 4.184,
            "j" => v / 4184.0,
            _ => return None,
        },
        Unit::Meters => match l {
            "" | "m" | "meters" => v,
            "km" => v * 1000.0,
            "mi" | "miles" => v * 1609.344,
            "ft" => v * 0.3048,
            _ => return None,
        },
        Unit::Ml => match l {
            "ml" => v,
            "l" | "" => v * 1000.0,
            "fl_oz_us" | "floz" => v * 29.573_529_562_5,
            _ => return None,
        },
        Unit::Watts => match l {
            "" | "w" | "watts" => v,
            "kw" => v * 1000.0,
            _ => return None,
        },
        Unit::MetersPerSecond => match l {
            "" | "m/s" => v,
            "km/h" | "km/hr" => v / 3.6,
            "mph" | "mi/hr" => v * 0.447_04,
            _ => return None,
        },
    })
}

/// The series and canonical value of one metric record.
pub fn map_metric(
    kind: &str,
    unit: &str,
    value: f64,
) -> Result<(&'static SeriesType, f64), Reject> {
    if kind.starts_with(hk::QUANTITY_PREFIX) {
        let m = hk::quantity(kind.as_bytes()).ok_or(Reject::UnsupportedType)?;
        let v = units::convert(m.conv, unit.trim().as_bytes(), value).ok_or(Reject::Unit)?;
        return if (m.min..=m.max).contains(&v) {
            Ok((m.series, v))
        } else {
            Err(Reject::OutOfRange)
        };
    }
    let (_, code, u, min, max) = ANDROID
        .iter()
        .find(|(name, ..)| *name == kind)
        .ok_or(Reject::UnsupportedType)?;
    let series = series::by_code(code).expect("the Android table names catalog codes");
    let v = android_value(*u, unit, value).ok_or(Reject::Unit)?;
    if (*min..=*max).contains(&v) {
        Ok((series, v))
    } else {
        Err(Reject::OutOfRange)
    }
}

/// Every Android record name mapped (coverage, tests, the generator).
pub fn android_names() -> impl Iterator<Item = (&'static str, &'static str)> {
    ANDROID.iter().map(|(n, c, ..)| (*n, *c))
}

/// Every series type an Android platform can produce.
pub fn android_series() -> Vec<&'static SeriesType> {
    let mut out: Vec<&'static SeriesType> = ANDROID
        .iter()
        .filter_map(|(_, c, ..)| series::by_code(c))
        .collect();
    out.sort_by_key(|s| s.id);
    out.dedup_by_key(|s| s.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(kind: &str, unit: &str, v: f64) -> (&'static str, f64) {
        let (s, v) = map_metric(kind, unit, v).unwrap();
        (s.code, (v * 1000.0).round() / 1000.0)
    }

    #[test]
    fn hrv_is_sdnn_from_healthkit_and_rmssd_from_android() {
        assert_eq!(
            code(
                "HKQuantityTypeIdentifierHeartRateVariabilitySDNN",
                "ms",
                48.0
            ),
            ("heart_rate_variability_sdnn", 48.0)
        );
        assert_eq!(
            code("HEART_RATE_VARIABILITY", "ms", 35.0),
            ("heart_rate_variability_rmssd", 35.0)
        );
    }

    #[test]
    fn units_are_converted() {
        assert_eq!(
            code("HKQuantityTypeIdentifierHeight", "m", 1.8),
            ("height", 180.0)
        );
        assert_eq!(
            code("HKQuantityTypeIdentifierBodyFatPercentage", "%", 0.21),
            ("body_fat_percentage", 21.0)
        );
        assert_eq!(
            code("BLOOD_GLUCOSE", "mmol/L", 5.5),
            ("blood_glucose", 99.1)
        );
        assert_eq!(code("HEIGHT", "m", 1.75), ("height", 175.0));
        assert_eq!(
            code("OXYGEN_SATURATION", "%", 0.97),
            ("oxygen_saturation", 97.0)
        );
        assert_eq!(code("HYDRATION", "L", 0.5), ("hydration", 500.0));
        assert_eq!(
            code("DISTANCE", "km", 1.2),
            ("distance_walking_running", 1200.0)
        );
        assert_eq!(
            map_metric("HKQuantityTypeIdentifierBodyMass", "parsec", 1.0).unwrap_err(),
            Reject::Unit
        );
        assert_eq!(
            map_metric("HEART_RATE", "bpm", 9000.0).unwrap_err(),
            Reject::OutOfRange
        );
        assert_eq!(
            map_metric("TELEPATHY", "", 1.0).unwrap_err(),
            Reject::UnsupportedType
        );
    }
}
