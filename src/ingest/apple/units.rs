//! Unit conversion from HealthKit's `unit` attribute to each series type's canonical unit.
//!
//! Open Wearables ignores the unit on XML import (reference §11), so a pound-denominated weight or a
//! mmol/L glucose lands unconverted; here every accepted unit is converted and anything else is
//! rejected (and counted) rather than stored under the wrong unit.

/// The canonical unit a HealthKit type is converted to (one per target series type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    /// Dimensionless counts (`count`, or no unit at all).
    Count,
    /// Events per minute (heart rate, respiratory rate, cadence): `count/min`, `count/s`, `Hz`.
    PerMinute,
    /// HealthKit writes percentages as fractions with unit `%` (0.97 = 97 %).
    PercentFromFraction,
    /// Blood alcohol: HealthKit's `%` fraction (g/100 mL ÷ 100) to mg/dL.
    BloodAlcohol,
    Centimeters,
    Meters,
    Kilograms,
    Kilocalories,
    Celsius,
    Minutes,
    Milliseconds,
    MetersPerSecond,
    MgPerDl,
    Liters,
    Milliliters,
    LitersPerMinute,
    Watts,
    /// Units with no alternative in HealthKit: accepted only when the attribute equals one of these.
    Exact(&'static [&'static str]),
}

/// Glucose molar mass (g/mol) used when a `mmol/L` unit does not carry its own.
pub const GLUCOSE_MOLAR_MASS: f64 = 180.156;

fn length_in_meters(unit: &[u8]) -> Option<f64> {
    Some(match unit {
        b"m" => 1.0,
        b"cm" => 0.01,
        b"mm" => 0.001,
        b"km" => 1000.0,
        b"in" => 0.0254,
        b"ft" => 0.3048,
        b"yd" => 0.9144,
        b"mi" => 1609.344,
        _ => return None,
    })
}

fn mass_in_kg(unit: &[u8]) -> Option<f64> {
    Some(match unit {
        b"kg" => 1.0,
        b"g" => 0.001,
        b"mg" => 1e-6,
        b"lb" => 0.453_592_37,
        b"oz" => 0.028_349_523_125,
        b"st" => 6.350_293_18,
        _ => return None,
    })
}

fn energy_in_kcal(unit: &[u8]) -> Option<f64> {
    Some(match unit {
        // HealthKit's `Cal` is the dietary (kilo)calorie.
        b"kcal" | b"Cal" => 1.0,
        b"cal" => 0.001,
        b"kJ" => 1.0 / 4.184,
        b"J" => 1.0 / 4184.0,
        _ => return None,
    })
}

fn time_in_minutes(unit: &[u8]) -> Option<f64> {
    Some(match unit {
        b"min" => 1.0,
        b"s" => 1.0 / 60.0,
        b"ms" => 1.0 / 60_000.0,
        b"hr" | b"h" => 60.0,
        b"d" => 1440.0,
        _ => return None,
    })
}

fn speed_in_m_per_s(unit: &[u8]) -> Option<f64> {
    Some(match unit {
        b"m/s" => 1.0,
        b"km/hr" | b"km/h" => 1.0 / 3.6,
        b"mi/hr" | b"mph" => 0.447_04,
        b"ft/s" => 0.3048,
        b"m/min" => 1.0 / 60.0,
        _ => return None,
    })
}

fn volume_in_liters(unit: &[u8]) -> Option<f64> {
    Some(match unit {
        b"L" => 1.0,
        b"dL" => 0.1,
        b"cL" => 0.01,
        b"mL" => 0.001,
        b"fl_oz_us" => 0.029_573_529_562_5,
        b"fl_oz_imp" => 0.028_413_062_5,
        b"cup_us" => 0.236_588_236_5,
        _ => return None,
    })
}

/// Parses `mmol/L` or HealthKit's `mmol<180.1558800000541>/L` (molar mass in angle brackets) and
/// returns the factor to mg/dL: mmol/L × g/mol ÷ 10.
fn mmol_per_liter_factor(unit: &[u8]) -> Option<f64> {
    let rest = unit.strip_prefix(b"mmol")?;
    let (mass, tail) = if let Some(inner) = rest.strip_prefix(b"<") {
        let close = inner.iter().position(|&b| b == b'>')?;
        let mass: f64 = std::str::from_utf8(&inner[..close]).ok()?.parse().ok()?;
        (mass, &inner[close + 1..])
    } else {
        (GLUCOSE_MOLAR_MASS, rest)
    };
    (tail == b"/L" && mass > 0.0 && mass.is_finite()).then_some(mass / 10.0)
}

/// Converts `value` expressed in `unit` to the canonical unit of `conv`; `None` when the unit is
/// not one this type can be expressed in.
pub fn convert(conv: Conv, unit: &[u8], value: f64) -> Option<f64> {
    let factor = match conv {
        Conv::Count => match unit {
            b"count" | b"" => 1.0,
            _ => return None,
        },
        Conv::PerMinute => match unit {
            b"count/min" | b"/min" | b"bpm" => 1.0,
            b"count/s" | b"Hz" => 60.0,
            _ => return None,
        },
        Conv::PercentFromFraction => match unit {
            b"%" => 100.0,
            _ => return None,
        },
        Conv::BloodAlcohol => match unit {
            b"%" => 100_000.0,
            b"mg/dL" => 1.0,
            _ => return None,
        },
        Conv::Centimeters => length_in_meters(unit)? * 100.0,
        Conv::Meters => length_in_meters(unit)?,
        Conv::Kilograms => mass_in_kg(unit)?,
        Conv::Kilocalories => energy_in_kcal(unit)?,
        Conv::Celsius => {
            return match unit {
                b"degC" => Some(value),
                b"degF" => Some((value - 32.0) * 5.0 / 9.0),
                b"K" => Some(value - 273.15),
                _ => None,
            }
        }
        Conv::Minutes => time_in_minutes(unit)?,
        Conv::Milliseconds => time_in_minutes(unit)? * 60_000.0,
        Conv::MetersPerSecond => speed_in_m_per_s(unit)?,
        Conv::MgPerDl => match unit {
            b"mg/dL" => 1.0,
            b"g/L" => 100.0,
            _ => mmol_per_liter_factor(unit)?,
        },
        Conv::Liters => volume_in_liters(unit)?,
        Conv::Milliliters => volume_in_liters(unit)? * 1000.0,
        Conv::LitersPerMinute => match unit {
            b"L/min" => 1.0,
            b"mL/min" => 0.001,
            b"L/s" => 60.0,
            _ => return None,
        },
        Conv::Watts => match unit {
            b"W" => 1.0,
            b"kW" => 1000.0,
            _ => return None,
        },
        Conv::Exact(units) => {
            if units.iter().any(|u| u.as_bytes() == unit) {
                1.0
            } else {
                return None;
            }
        }
    };
    Some(value * factor)
}

/// Converts a workout duration (`durationUnit`) to seconds.
pub fn duration_seconds(unit: &[u8], value: f64) -> Option<f64> {
    time_in_minutes(unit).map(|f| value * f * 60.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("unit should be accepted");
        assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} != {b}");
    }

    #[test]
    fn fractions_become_percent() {
        close(convert(Conv::PercentFromFraction, b"%", 0.97), 97.0);
        close(convert(Conv::PercentFromFraction, b"%", 0.215), 21.5);
        assert_eq!(convert(Conv::PercentFromFraction, b"count", 0.97), None);
    }

    #[test]
    fn lengths() {
        close(convert(Conv::Centimeters, b"m", 1.82), 182.0);
        close(convert(Conv::Centimeters, b"cm", 71.0), 71.0);
        close(convert(Conv::Centimeters, b"in", 30.0), 76.2);
        close(convert(Conv::Centimeters, b"ft", 6.0), 182.88);
        close(convert(Conv::Meters, b"km", 5.2), 5200.0);
        close(convert(Conv::Meters, b"mi", 1.0), 1609.344);
        close(convert(Conv::Meters, b"ft", 10.0), 3.048);
        close(convert(Conv::Meters, b"yd", 100.0), 91.44);
        close(convert(Conv::Meters, b"cm", 250.0), 2.5);
        assert_eq!(convert(Conv::Meters, b"furlong", 1.0), None);
    }

    #[test]
    fn masses() {
        close(convert(Conv::Kilograms, b"lb", 180.0), 81.646_626_6);
        close(convert(Conv::Kilograms, b"oz", 16.0), 0.453_592_37);
        close(convert(Conv::Kilograms, b"g", 72_500.0), 72.5);
        close(convert(Conv::Kilograms, b"st", 1.0), 6.350_293_18);
        close(convert(Conv::Kilograms, b"kg", 70.1), 70.1);
    }

    #[test]
    fn energies() {
        close(convert(Conv::Kilocalories, b"kJ", 418.4), 100.0);
        close(convert(Conv::Kilocalories, b"Cal", 12.5), 12.5);
        close(convert(Conv::Kilocalories, b"kcal", 0.25), 0.25);
        close(convert(Conv::Kilocalories, b"J", 4184.0), 1.0);
    }

    #[test]
    fn temperatures() {
        close(convert(Conv::Celsius, b"degF", 98.6), 37.0);
        close(convert(Conv::Celsius, b"degC", 36.4), 36.4);
        close(convert(Conv::Celsius, b"K", 310.15), 37.0);
        assert_eq!(convert(Conv::Celsius, b"", 36.0), None);
    }

    #[test]
    fn glucose_from_mmol_with_and_without_molar_mass() {
        close(convert(Conv::MgPerDl, b"mmol/L", 5.5), 5.5 * 18.0156);
        close(
            convert(Conv::MgPerDl, b"mmol<180.1558800000541>/L", 5.0),
            5.0 * 18.015_588_000_005_41,
        );
        close(convert(Conv::MgPerDl, b"mg/dL", 99.0), 99.0);
        assert_eq!(convert(Conv::MgPerDl, b"mmol<abc>/L", 5.0), None);
        assert_eq!(convert(Conv::MgPerDl, b"mmol<180>/dL", 5.0), None);
    }

    #[test]
    fn rates_times_speeds_volumes() {
        close(convert(Conv::PerMinute, b"count/min", 62.0), 62.0);
        close(convert(Conv::PerMinute, b"count/s", 1.5), 90.0);
        close(convert(Conv::PerMinute, b"Hz", 1.0), 60.0);
        close(convert(Conv::Minutes, b"s", 90.0), 1.5);
        close(convert(Conv::Minutes, b"hr", 1.5), 90.0);
        close(convert(Conv::Milliseconds, b"s", 0.25), 250.0);
        close(convert(Conv::Milliseconds, b"ms", 243.0), 243.0);
        close(convert(Conv::MetersPerSecond, b"km/hr", 3.6), 1.0);
        close(convert(Conv::MetersPerSecond, b"mi/hr", 10.0), 4.4704);
        close(convert(Conv::MetersPerSecond, b"ft/s", 1.0), 0.3048);
        close(convert(Conv::Milliliters, b"L", 0.5), 500.0);
        close(convert(Conv::Milliliters, b"fl_oz_us", 8.0), 236.588_236_5);
        close(convert(Conv::Liters, b"mL", 4200.0), 4.2);
        close(convert(Conv::LitersPerMinute, b"L/s", 8.0), 480.0);
        close(convert(Conv::Watts, b"W", 250.0), 250.0);
    }

    #[test]
    fn blood_alcohol_fraction_to_mg_per_dl() {
        // 0.08 % BAC is 0.0008 as a HealthKit fraction and 80 mg/dL.
        close(convert(Conv::BloodAlcohol, b"%", 0.0008), 80.0);
    }

    #[test]
    fn counts_and_exact_units() {
        close(convert(Conv::Count, b"count", 12.0), 12.0);
        close(convert(Conv::Count, b"", 3.0), 3.0);
        assert_eq!(convert(Conv::Count, b"kg", 3.0), None);
        let db = Conv::Exact(&["dBASPL"]);
        close(convert(db, b"dBASPL", 71.2), 71.2);
        assert_eq!(convert(db, b"dB", 71.2), None);
    }

    #[test]
    fn workout_durations() {
        close(duration_seconds(b"min", 30.5), 1830.0);
        close(duration_seconds(b"hr", 1.0), 3600.0);
        close(duration_seconds(b"s", 42.0), 42.0);
        assert_eq!(duration_seconds(b"fortnight", 1.0), None);
    }
}
