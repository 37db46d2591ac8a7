//! Garmin's Activity API data types: activity summaries (`activities`), their per-sample
//! details (`activityDetails`), the activity files they point at (`activityFiles`), and Move IQ
//! auto-detected activities (`moveIQActivities`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::{record_id, WorkoutLap, WorkoutRecord};
use wearhouse_domain::workout_type::WorkoutType;

use super::payload::{ActivityDetails, ActivityFile, ActivitySummary, DetailSample};
use super::{secs, start_of};
use crate::providers::mapped::shape;
use crate::providers::payload;
use crate::providers::{FileDownload, MapError, Mapped};

/// The raw payload kind of a downloaded activity file: `activityFiles:{FIT|TCX|GPX}:{activityId}`.
/// The activity id is not inside the file, and the workout the file describes is keyed by it.
pub const FILE_KIND: &str = "activityFiles";

pub fn workout_type(activity: &str) -> WorkoutType {
    let lower = activity.to_ascii_lowercase();
    WorkoutType::parse(&lower)
        .or_else(|| match lower.as_str() {
            "street_running" | "track_running" => WorkoutType::parse("running"),
            "road_biking" | "gravel_cycling" => WorkoutType::parse("cycling"),
            "lap_swimming" | "open_water_swimming" => WorkoutType::parse("swimming"),
            _ => None,
        })
        .unwrap_or(WorkoutType::OTHER)
}

/// The id every part of one activity (summary, details, file) shares, so they land on one
/// workout.
pub fn workout_id(ds: Uuid, external: &str) -> Uuid {
    record_id(&[&ds.to_string(), "workout", external])
}

/// An activity summary as a workout.
pub fn summary_workout(
    v: &ActivitySummary,
    ds: Uuid,
    data_type: &str,
) -> Result<WorkoutRecord, MapError> {
    let (t0, off) = start_of(
        &v.start_time_in_seconds,
        &v.start_time_offset_in_seconds,
        "start",
        data_type,
    )?;
    let duration = v.duration_in_seconds.num().unwrap_or(0.0);
    let activity = v.activity_type.str().unwrap_or("");
    let external = v.external_id();
    let mut stats = BTreeMap::new();
    for (k, value) in [
        ("heart_rate_avg", &v.average_heart_rate_in_beats_per_minute),
        ("heart_rate_max", &v.max_heart_rate_in_beats_per_minute),
        ("steps", &v.steps),
        ("energy_kcal", &v.active_kilocalories),
        ("distance_m", &v.distance_in_meters),
        ("avg_cadence", &v.average_run_cadence_in_steps_per_minute),
        ("avg_cadence", &v.average_bike_cadence_in_rounds_per_minute),
        ("avg_speed_m_s", &v.average_speed_in_meters_per_second),
        ("max_speed_m_s", &v.max_speed_in_meters_per_second),
        ("elevation_gain_m", &v.total_elevation_gain_in_meters),
    ] {
        if let Some(x) = value.num() {
            stats.insert(k.to_string(), x);
        }
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("external_id".to_string(), external.clone());
    metadata.insert("garmin_activity_type".to_string(), activity.to_string());
    if let Some(d) = v.device_name.str() {
        metadata.insert("device_name".to_string(), d.to_string());
    }
    Ok(WorkoutRecord {
        id: workout_id(ds, &external),
        data_source_id: ds,
        workout_type: workout_type(activity).as_str().into(),
        start: t0,
        end: crate::providers::mapped::after_secs(t0, duration),
        zone_offset: Some(off),
        duration_s: Some(duration),
        stats,
        metadata,
        laps: Vec::new(),
    })
}

/// Activity details: the activity's summary (→ the same workout as `activities`, with laps
/// from the lap start times) and its samples (every second or few) → timeseries, as the
/// contract's series map says: heartRate → heart_rate, speedMetersPerSecond → speed,
/// stepsPerMinute (else bikeCadenceInRPM) → cadence, powerInWatts → power, elevationInMeters →
/// elevation, latitude/longitude → latitude/longitude, airTemperatureCelcius →
/// air_temperature. The cumulative `totalDistanceInMeters` and the duration counters are not
/// series of their own in the contract; they only give the laps their distance. Samples carry
/// the summary's zone offset and the workout's data source, and are keyed (source, series,
/// time), so a re-delivery replaces rather than adds.
pub fn details(v: &Value, ds: Uuid, m: &mut Mapped) -> Result<(), MapError> {
    const T: &str = "activityDetails";
    let d: ActivityDetails = payload::item(v);
    // Without a `summary`, the details object itself carries the summary's fields.
    let mut summary: ActivitySummary = payload::item(v.get("summary").unwrap_or(v));
    // The details' own summaryId ends in "-detail"; the activity id ties it to the summary.
    if summary.activity_id.0.is_null() {
        summary.activity_id = d.activity_id.clone();
    }
    let off = summary
        .start_time_offset_in_seconds
        .num()
        .or(d.start_time_offset_in_seconds.num())
        .map(|o| (o / 60.0) as i16)
        .unwrap_or(0);
    let mut points: Vec<(DateTime<Utc>, &DetailSample)> = Vec::new();
    for s in d.samples.get().into_iter().flatten() {
        let Some((t, s)) = s
            .get()
            .and_then(|s| Some((secs(s.start_time_in_seconds.num()?), s)))
        else {
            return Err(shape(T, "sample without startTimeInSeconds"));
        };
        points.push((t, s));
        let cadence = s.steps_per_minute.num().or(s.bike_cadence_in_rpm.num());
        for (series, value) in [
            ("heart_rate", s.heart_rate.num()),
            ("speed", s.speed_meters_per_second.num()),
            ("cadence", cadence),
            ("power", s.power_in_watts.num()),
            ("elevation", s.elevation_in_meters.num()),
            ("latitude", s.latitude_in_degree.num()),
            ("longitude", s.longitude_in_degree.num()),
            ("air_temperature", s.air_temperature_celcius.num()),
        ] {
            if let Some(x) = value {
                m.sample(series, ds, t, None, off, x, None);
            }
        }
    }
    if summary.start_time_in_seconds.num().is_some() {
        let mut w = summary_workout(&summary, ds, T)?;
        w.zone_offset = Some(off);
        w.laps = detail_laps(&d, &points, w.end);
        m.workouts.push(w);
    }
    Ok(())
}

/// Laps from their start times: each runs to the next one (the last to the workout's end),
/// with the distance covered and the mean heart rate of the samples inside it.
fn detail_laps(
    d: &ActivityDetails,
    points: &[(DateTime<Utc>, &DetailSample)],
    end: DateTime<Utc>,
) -> Vec<WorkoutLap> {
    let mut starts: Vec<DateTime<Utc>> = d
        .laps
        .get()
        .into_iter()
        .flatten()
        .filter_map(|l| l.get()?.start_time_in_seconds.num().map(secs))
        .collect();
    starts.sort();
    let mut laps = Vec::new();
    for (i, s) in starts.iter().enumerate() {
        let e = starts.get(i + 1).copied().unwrap_or(end).max(*s);
        let inside: Vec<&DetailSample> = points
            .iter()
            .filter(|(t, _)| t >= s && t < &e)
            .map(|(_, p)| *p)
            .collect();
        let mut stats = BTreeMap::new();
        let dist: Vec<f64> = inside
            .iter()
            .filter_map(|p| p.total_distance_in_meters.num())
            .collect();
        if let (Some(a), Some(b)) = (dist.first(), dist.last()) {
            stats.insert("distance_m".to_string(), b - a);
        }
        let hr: Vec<f64> = inside.iter().filter_map(|p| p.heart_rate.num()).collect();
        if !hr.is_empty() {
            stats.insert(
                "heart_rate_avg".to_string(),
                hr.iter().sum::<f64>() / hr.len() as f64,
            );
        }
        laps.push(WorkoutLap {
            start: *s,
            end: e,
            stats,
        });
    }
    laps
}

/// The files an `activityFiles` push points at. Garmin's callback URLs are fetched with the
/// user's token; TCX and GPX files are kept raw like FIT files but only FIT is parsed.
pub fn file_downloads(items: &Value) -> Vec<FileDownload> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .map(payload::item::<ActivityFile>)
        .filter_map(|i| {
            let url = i.callback_url.str()?;
            let file_type = i.file_type.str().unwrap_or("FIT").to_ascii_uppercase();
            let content_type = match file_type.as_str() {
                "TCX" => "application/vnd.garmin.tcx+xml",
                "GPX" => "application/gpx+xml",
                _ => "application/vnd.ant.fit",
            };
            Some(FileDownload {
                url: url.to_string(),
                kind: format!("{FILE_KIND}:{file_type}:{}", i.external_id()),
                content_type,
            })
        })
        .collect()
}

/// (file type, activity id) from a file's raw payload kind.
pub fn parse_file_kind(kind: &str) -> Option<(&str, &str)> {
    let rest = kind.strip_prefix(FILE_KIND)?.strip_prefix(':')?;
    rest.split_once(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::garmin::Garmin;
    use crate::providers::{Provider, PushedFiles};
    use serde_json::json;

    // 2026-03-01T07:00:00-05:00.
    const START: i64 = 1_772_366_400;

    fn details_payload() -> Value {
        let samples: Vec<Value> = (0..4)
            .map(|i| {
                json!({"startTimeInSeconds": START + 15 * i, "heartRate": 140 + i,
                   "speedMetersPerSecond": 3.1, "stepsPerMinute": 168, "powerInWatts": 260 + i,
                   "elevationInMeters": 101.5, "latitudeInDegree": 40.7128, "longitudeInDegree": -74.006,
                   "airTemperatureCelcius": 12.0, "totalDistanceInMeters": 46.5 * i as f64,
                   "timerDurationInSeconds": 15 * i, "clockDurationInSeconds": 15 * i})
            })
            .collect();
        json!([{"userId": "g1", "summaryId": "777-detail", "activityId": 777,
            "summary": {"userId": "g1", "summaryId": "777", "activityType": "TRAIL_RUNNING",
                "activityName": "Morning Run", "startTimeInSeconds": START,
                "startTimeOffsetInSeconds": -18000, "durationInSeconds": 60,
                "averageHeartRateInBeatsPerMinute": 141, "deviceName": "Forerunner 265"},
            "samples": samples,
            "laps": [{"startTimeInSeconds": START}, {"startTimeInSeconds": START + 30}]}])
    }

    fn series(m: &Mapped, code: &str) -> Vec<(String, i16, f64)> {
        m.samples
            .iter()
            .filter(|s| s.series == code)
            .map(|s| (s.time.to_rfc3339(), s.zone_offset, s.value))
            .collect()
    }

    #[test]
    fn details_become_samples_with_the_offset_and_the_workout_with_laps() {
        let m = Garmin
            .map("activityDetails", &details_payload(), Uuid::from_u128(3))
            .unwrap();
        let hr = series(&m, "heart_rate");
        assert_eq!(hr.len(), 4);
        assert_eq!(hr[1], ("2026-03-01T12:00:15+00:00".into(), -300, 141.0));
        assert_eq!(series(&m, "speed")[0].2, 3.1);
        assert_eq!(series(&m, "cadence")[0].2, 168.0);
        assert_eq!(series(&m, "power")[3].2, 263.0);
        assert_eq!(series(&m, "elevation")[0].2, 101.5);
        assert_eq!(series(&m, "latitude")[0].2, 40.7128);
        assert_eq!(series(&m, "longitude")[0].2, -74.006);
        assert_eq!(series(&m, "air_temperature")[0].2, 12.0);
        // Cumulative distance is no series of its own.
        assert_eq!(m.samples.len(), 4 * 8);
        let ds = m.sources[0].id;
        assert!(m.samples.iter().all(|s| s.data_source_id == ds));
        let w = &m.workouts[0];
        // The same id as the `activities` summary of activity 777: one workout.
        let summary = json!([{"userId": "g1", "summaryId": "777", "activityId": 777,
            "activityType": "TRAIL_RUNNING", "startTimeInSeconds": START,
            "startTimeOffsetInSeconds": -18000, "durationInSeconds": 60}]);
        let a = Garmin
            .map("activities", &summary, Uuid::from_u128(3))
            .unwrap();
        assert_eq!(w.id, a.workouts[0].id);
        assert_eq!(
            (w.workout_type.as_str(), w.zone_offset),
            ("trail_running", Some(-300))
        );
        assert_eq!(w.laps.len(), 2);
        assert_eq!((w.laps[1].end - w.laps[1].start).num_seconds(), 30);
        assert_eq!(w.laps[0].stats["distance_m"], 46.5);
        assert_eq!(w.laps[1].stats["heart_rate_avg"], 142.5);
    }

    #[test]
    fn redelivered_details_give_the_same_records() {
        let a = Garmin
            .map("activityDetails", &details_payload(), Uuid::from_u128(3))
            .unwrap();
        let b = Garmin
            .map("activityDetails", &details_payload(), Uuid::from_u128(3))
            .unwrap();
        assert_eq!(a, b);
        let bad = json!([{"userId": "g1", "samples": [{"heartRate": 100}]}]);
        assert!(Garmin
            .map("activityDetails", &bad, Uuid::from_u128(3))
            .is_err());
    }

    #[test]
    fn activity_files_name_their_downloads_and_move_iq_maps_to_nothing() {
        let items = json!([{"userId": "g1", "summaryId": "777-file", "activityId": 777, "fileType": "FIT",
            "callbackURL": "https://apis.garmin.com/wellness-api/rest/activityFile?id=777&token=abc",
            "startTimeInSeconds": START, "manual": false},
            {"userId": "g1", "activityId": "778", "fileType": "gpx", "callbackURL": "https://x/y"},
            {"userId": "g1", "activityId": 779}]);
        let d = Garmin.file_downloads("activityFiles", &items);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].kind, "activityFiles:FIT:777");
        assert_eq!(d[0].content_type, "application/vnd.ant.fit");
        assert_eq!(d[1].kind, "activityFiles:GPX:778");
        assert_eq!(parse_file_kind(&d[0].kind), Some(("FIT", "777")));
        assert_eq!(parse_file_kind("webhook"), None);
        assert!(Garmin.file_downloads("dailies", &items).is_empty());
        // The notice itself holds no records: they come from the file.
        let m = Garmin
            .map("activityFiles", &items, Uuid::from_u128(3))
            .unwrap();
        assert_eq!(m.records(), 0);
        let miq = json!([{"userId": "g1", "summaryId": "m1", "calendarDate": "2026-03-01",
            "startTimeInSeconds": START, "offsetInSeconds": -18000, "durationInSeconds": 900,
            "activityType": "Walking", "activitySubType": "None"}]);
        let m = Garmin
            .map("moveIQActivities", &miq, Uuid::from_u128(3))
            .unwrap();
        assert_eq!(m.records(), 0, "Move IQ events are not workouts");
    }
}
