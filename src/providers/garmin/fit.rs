//! Garmin activity files in the FIT format, read with the `fitparser` crate (which applies the
//! FIT profile's scales and offsets, so values arrive in the profile's units).
//!
//! A file becomes: the workout of its session (keyed by Garmin's activity id, so it is the same
//! workout as the activity summary), its laps, and the per-record samples: heart rate, speed,
//! cadence, power, elevation, position and air temperature, at the zone offset the file itself
//! records (the activity message's local timestamp minus its UTC timestamp).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Local, NaiveDate, TimeZone, Utc};
use fitparser::profile::MesgNum;
use fitparser::{FitDataRecord, Value};
use uuid::Uuid;
use wearhouse_domain::records::{WorkoutLap, WorkoutRecord};
use wearhouse_domain::workout_type::WorkoutType;

use super::activity::workout_id;
use crate::providers::mapped::shape;
use crate::providers::{MapError, Mapped};

const T: &str = "activityFiles";

/// Degrees per FIT semicircle (2^31 semicircles = 180°).
const DEG_PER_SEMICIRCLE: f64 = 180.0 / 2_147_483_648.0;

type Fields<'a> = HashMap<&'a str, &'a Value>;

fn fields(r: &FitDataRecord) -> Fields<'_> {
    r.fields().iter().map(|f| (f.name(), f.value())).collect()
}

fn num(v: &Value) -> Option<f64> {
    let x = match v {
        Value::Float64(x) => *x,
        Value::Float32(x) => f64::from(*x),
        Value::UInt8(x) | Value::UInt8z(x) | Value::Byte(x) => f64::from(*x),
        Value::SInt8(x) => f64::from(*x),
        Value::UInt16(x) | Value::UInt16z(x) => f64::from(*x),
        Value::SInt16(x) => f64::from(*x),
        Value::UInt32(x) | Value::UInt32z(x) => f64::from(*x),
        Value::SInt32(x) => f64::from(*x),
        Value::SInt64(x) => *x as f64,
        Value::UInt64(x) | Value::UInt64z(x) => *x as f64,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

fn get(fs: &Fields, names: &[&str]) -> Option<f64> {
    names.iter().find_map(|n| fs.get(n).and_then(|v| num(v)))
}

fn text<'a>(fs: &'a Fields, name: &str) -> Option<&'a str> {
    match fs.get(name) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn utc(fs: &Fields, name: &str) -> Option<DateTime<Utc>> {
    match fs.get(name) {
        Some(Value::Timestamp(t)) => Some(t.with_timezone(&Utc)),
        _ => None,
    }
}

/// Seconds since the FIT epoch (1989-12-31T00:00) of a local date-time field. The parser
/// anchors local times to the machine's time zone; undoing that anchor gives back the file's
/// own number, so the result does not depend on where wearhouse runs.
fn local_seconds(fs: &Fields, name: &str) -> Option<i64> {
    let Some(Value::Timestamp(t)) = fs.get(name) else {
        return None;
    };
    let epoch = NaiveDate::from_ymd_opt(1989, 12, 31)?.and_hms_opt(0, 0, 0)?;
    let anchor = Local.from_local_datetime(&epoch).earliest()?;
    Some((*t - anchor).num_seconds())
}

fn fit_seconds(t: DateTime<Utc>) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1989, 12, 31)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
        .and_utc();
    (t - epoch).num_seconds()
}

/// The workout type of a FIT session's sport and sub-sport (the profile's enum names).
pub fn fit_workout_type(sport: &str, sub_sport: &str) -> WorkoutType {
    let code = match (sport, sub_sport) {
        ("running", "trail") => "trail_running",
        ("running", "treadmill") => "treadmill",
        ("cycling", "mountain") => "mountain_biking",
        ("cycling", "indoor_cycling" | "spin") => "indoor_cycling",
        ("cycling", "e_bike_fitness" | "e_bike_mountain") => "e_biking",
        ("swimming", "lap_swimming") => "pool_swimming",
        ("swimming", "open_water") => "open_water_swimming",
        ("training", "strength_training") => "strength_training",
        ("training", "yoga") => "yoga",
        ("training", "pilates") => "pilates",
        ("fitness_equipment", "elliptical") => "elliptical",
        ("fitness_equipment", "indoor_rowing") => "rowing_machine",
        ("fitness_equipment", "stair_climbing") => "stair_climbing",
        ("cross_country_skiing", _) => "cross_country_skiing",
        ("alpine_skiing", _) => "alpine_skiing",
        ("walking" | "hiking" | "rowing" | "cycling" | "running" | "swimming" | "golf", _) => sport,
        _ => "other",
    };
    WorkoutType::parse(code).unwrap_or(WorkoutType::OTHER)
}

/// Totals of a session or lap message, in the workout stats' keys and units.
fn totals(fs: &Fields, running: bool) -> BTreeMap<String, f64> {
    let cadence = get(fs, &["avg_running_cadence", "avg_cadence"]).map(|c| steps(c, running));
    [
        ("heart_rate_avg", get(fs, &["avg_heart_rate"])),
        ("heart_rate_max", get(fs, &["max_heart_rate"])),
        ("heart_rate_min", get(fs, &["min_heart_rate"])),
        ("distance_m", get(fs, &["total_distance"])),
        ("energy_kcal", get(fs, &["total_calories"])),
        (
            "avg_speed_m_s",
            get(fs, &["enhanced_avg_speed", "avg_speed"]),
        ),
        (
            "max_speed_m_s",
            get(fs, &["enhanced_max_speed", "max_speed"]),
        ),
        ("avg_power_w", get(fs, &["avg_power"])),
        ("max_power_w", get(fs, &["max_power"])),
        ("avg_cadence", cadence),
        ("elevation_gain_m", get(fs, &["total_ascent"])),
        ("moving_time_s", get(fs, &["total_timer_time"])),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .collect()
}

/// FIT counts running cadence in strides (one per two steps); Garmin's activity details and the
/// rest of Garmin Connect give steps per minute, so one cadence series means one thing.
fn steps(cadence: f64, running: bool) -> f64 {
    if running {
        cadence * 2.0
    } else {
        cadence
    }
}

fn is_on_foot(sport: &str) -> bool {
    matches!(sport, "running" | "walking" | "hiking")
}

/// Maps one FIT activity file of Garmin activity `activity_id` into `m`, on source `ds`.
pub fn map_fit(bytes: &[u8], ds: Uuid, activity_id: &str, m: &mut Mapped) -> Result<(), MapError> {
    let messages =
        fitparser::from_bytes(bytes).map_err(|e| shape(T, format!("not a FIT file: {e}")))?;
    let mut records = Vec::new();
    let mut laps = Vec::new();
    let mut sessions = Vec::new();
    let mut offset_s: Option<i64> = None;
    let mut device: Option<String> = None;
    for msg in &messages {
        let fs = fields(msg);
        match msg.kind() {
            MesgNum::Record => records.push(fs),
            MesgNum::Lap => laps.push(fs),
            MesgNum::Session => sessions.push(fs),
            MesgNum::Activity => {
                if let (Some(l), Some(t)) =
                    (local_seconds(&fs, "local_timestamp"), utc(&fs, "timestamp"))
                {
                    offset_s = Some(l - fit_seconds(t));
                }
            }
            MesgNum::FileId => {
                device = text(&fs, "garmin_product")
                    .or_else(|| text(&fs, "product_name"))
                    .map(String::from);
                if let Some(t) = text(&fs, "type") {
                    if t != "activity" {
                        return Err(shape(T, format!("a FIT {t} file, not an activity")));
                    }
                }
            }
            _ => {}
        }
    }
    if sessions.is_empty() {
        return Err(shape(T, "FIT file without a session"));
    }
    // Offsets are whole minutes; a file without an activity message is taken as UTC.
    let off = (offset_s.unwrap_or(0) / 60) as i16;
    let sport = text(&sessions[0], "sport").unwrap_or("generic").to_string();
    let on_foot = is_on_foot(&sport);
    for r in &records {
        let Some(t) = utc(r, "timestamp") else {
            continue;
        };
        let position = |name: &str| get(r, &[name]).map(|s| s * DEG_PER_SEMICIRCLE);
        for (series, value) in [
            ("heart_rate", get(r, &["heart_rate"])),
            ("speed", get(r, &["enhanced_speed", "speed"])),
            ("cadence", get(r, &["cadence"]).map(|c| steps(c, on_foot))),
            ("power", get(r, &["power"])),
            ("elevation", get(r, &["enhanced_altitude", "altitude"])),
            ("latitude", position("position_lat")),
            ("longitude", position("position_long")),
            ("air_temperature", get(r, &["temperature"])),
        ] {
            if let Some(x) = value {
                m.sample(series, ds, t, None, off, x, None);
            }
        }
    }
    for (i, s) in sessions.iter().enumerate() {
        let start = utc(s, "start_time")
            .or_else(|| records.first().and_then(|r| utc(r, "timestamp")))
            .ok_or_else(|| shape(T, "session without start_time"))?;
        let elapsed = get(s, &["total_elapsed_time"]).unwrap_or(0.0);
        let end = crate::providers::mapped::after_secs(start, elapsed);
        let sport = text(s, "sport").unwrap_or("generic");
        let sub_sport = text(s, "sub_sport").unwrap_or("generic");
        // A multisport file has one session per leg; the first is the activity itself.
        let external = if i == 0 {
            activity_id.to_string()
        } else {
            format!("{activity_id}:{i}")
        };
        let on_foot = is_on_foot(sport);
        let mut lap_list: Vec<WorkoutLap> = laps
            .iter()
            .filter_map(|l| {
                let ls = utc(l, "start_time")?;
                if ls < start || ls >= end {
                    return None;
                }
                let le = crate::providers::mapped::after_secs(
                    ls,
                    get(l, &["total_elapsed_time"]).unwrap_or(0.0),
                );
                Some(WorkoutLap {
                    start: ls,
                    end: le,
                    stats: totals(l, on_foot),
                })
            })
            .collect();
        lap_list.sort_by_key(|l| l.start);
        let mut metadata = BTreeMap::new();
        metadata.insert("external_id".to_string(), external.clone());
        metadata.insert("fit_sport".to_string(), format!("{sport}/{sub_sport}"));
        if let Some(d) = &device {
            metadata.insert("fit_device".to_string(), d.clone());
        }
        m.workouts.push(WorkoutRecord {
            id: workout_id(ds, &external),
            data_source_id: ds,
            workout_type: fit_workout_type(sport, sub_sport).as_str().into(),
            start,
            end,
            zone_offset: Some(off),
            duration_s: Some(elapsed),
            stats: totals(s, on_foot),
            metadata,
            laps: lap_list,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::garmin::Garmin;
    use crate::providers::PushedFiles;
    use crate::simulator::fit::{activity_file, FitActivity};

    fn user() -> Uuid {
        Uuid::from_u128(3)
    }

    // 2026-03-01T07:00:00-05:00.
    const START: i64 = 1_772_366_400;

    fn file() -> Vec<u8> {
        activity_file(&FitActivity {
            start_unix: START,
            offset_s: -18000,
            seconds: 600,
            step: 10,
        })
    }

    #[test]
    fn a_fit_file_becomes_samples_a_workout_and_laps() {
        let m = Garmin
            .map_file("activityFiles:FIT:777", &file(), user())
            .expect("a file kind")
            .unwrap();
        let hr: Vec<_> = m
            .samples
            .iter()
            .filter(|s| s.series == "heart_rate")
            .collect();
        assert_eq!(hr.len(), 60);
        // The simulator's heart rate is 130 + i % 30 at START + 10·i.
        assert_eq!(hr[3].time.timestamp(), START + 30);
        assert_eq!((hr[3].value, hr[3].zone_offset), (133.0, -300));
        let one = |code: &str| {
            m.samples
                .iter()
                .find(|s| s.series == code && s.time.timestamp() == START + 20)
                .map(|s| s.value)
                .unwrap()
        };
        assert!((one("speed") - 3.2).abs() < 1e-9);
        // 85 strides a minute are 170 steps.
        assert_eq!(one("cadence"), 170.0);
        assert_eq!(one("power"), 252.0);
        assert!((one("elevation") - 102.0).abs() < 1e-9);
        assert!((one("latitude") - 40.71300).abs() < 1e-6);
        assert!((one("longitude") - -74.00580).abs() < 1e-6);
        assert_eq!(one("air_temperature"), 18.0);
        let w = &m.workouts[0];
        assert_eq!(
            w.id,
            super::super::activity::workout_id(m.sources[0].id, "777")
        );
        assert_eq!(
            (w.workout_type.as_str(), w.zone_offset, w.duration_s),
            ("running", Some(-300), Some(600.0))
        );
        assert_eq!(w.start.timestamp(), START);
        assert_eq!(w.stats["heart_rate_max"], 159.0);
        assert_eq!(w.stats["distance_m"], 1920.0);
        assert_eq!(w.stats["avg_cadence"], 170.0);
        assert_eq!(w.laps.len(), 2);
        assert_eq!(w.laps[1].start.timestamp(), START + 300);
        assert_eq!(w.laps[1].stats["distance_m"], 960.0);
        assert_eq!(w.metadata["external_id"], "777");
    }

    #[test]
    fn broken_files_are_refused_and_other_formats_kept_unparsed() {
        let mut bad = file();
        let n = bad.len();
        bad[n / 2] ^= 0xff;
        assert!(Garmin
            .map_file("activityFiles:FIT:777", &bad, user())
            .unwrap()
            .is_err());
        assert!(Garmin
            .map_file("activityFiles:FIT:777", b"<gpx/>", user())
            .unwrap()
            .is_err());
        let m = Garmin
            .map_file("activityFiles:GPX:777", b"<gpx/>", user())
            .unwrap()
            .unwrap();
        assert_eq!(m.records(), 0);
        assert!(Garmin.map_file("webhook", b"{}", user()).is_none());
    }

    #[test]
    fn sports_map_to_workout_types() {
        assert_eq!(
            fit_workout_type("running", "trail").as_str(),
            "trail_running"
        );
        assert_eq!(fit_workout_type("cycling", "road").as_str(), "cycling");
        assert_eq!(
            fit_workout_type("swimming", "lap_swimming").as_str(),
            "pool_swimming"
        );
        assert_eq!(fit_workout_type("sailing", "generic").as_str(), "other");
    }
}
