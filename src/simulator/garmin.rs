//! Garmin's pushed summaries, built from the payload structs its mapper reads.

use chrono::{DateTime, Datelike};
use serde::Serialize;
use serde_json::Value;

use crate::providers::garmin::payload::{
    ActivityDetails, ActivityFile, ActivitySummary, Daily, DetailSample, Hrv, Lap, Nap, SleepLevel,
    SleepSummary,
};
use crate::providers::payload::Lenient;

pub const USER: &str = "garmin-user-1";

fn value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The offset every simulated summary is at (-05:00), in seconds.
const OFFSET: i64 = -18000;

fn daily(d: chrono::NaiveDate, midnight: i64) -> Daily {
    let n = d.day() as i64;
    Daily {
        user_id: USER.into(),
        summary_id: format!("d-{d}").into(),
        calendar_date: d.to_string().into(),
        start_time_in_seconds: midnight.into(),
        start_time_offset_in_seconds: OFFSET.into(),
        duration_in_seconds: 86400.into(),
        steps: (7000 + 100 * n).into(),
        distance_in_meters: 5600.0.into(),
        active_time_in_seconds: 3000.into(),
        active_kilocalories: 420.into(),
        floors_climbed: 6.into(),
        resting_heart_rate_in_beats_per_minute: 54.into(),
        time_offset_heart_rate_samples: [
            ("0".to_string(), 58.into()),
            ("3600".to_string(), 61.into()),
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .into(),
        ..Daily::default()
    }
}

fn sleep(d: chrono::NaiveDate, midnight: i64) -> SleepSummary {
    let level = |a: i64, b: i64| {
        Lenient::from(vec![Lenient::from(SleepLevel {
            start_time_in_seconds: a.into(),
            end_time_in_seconds: b.into(),
        })])
    };
    SleepSummary {
        user_id: USER.into(),
        summary_id: format!("s-{d}").into(),
        calendar_date: d.to_string().into(),
        start_time_in_seconds: (midnight - 3600).into(),
        start_time_offset_in_seconds: OFFSET.into(),
        duration_in_seconds: 25200.into(),
        sleep_levels_map: [
            ("light".to_string(), level(midnight - 3600, midnight + 3600)),
            ("deep".to_string(), level(midnight + 3600, midnight + 9000)),
            ("rem".to_string(), level(midnight + 9000, midnight + 21600)),
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .into(),
        // A 25-minute nap after lunch, listed in the day's sleep summary as Garmin does.
        naps: vec![Lenient::from(Nap {
            nap_start_time_in_seconds: (midnight + 14 * 3600 + 600).into(),
            nap_duration_in_seconds: 1500.into(),
            nap_offset_in_seconds: OFFSET.into(),
            nap_validation: "DEVICE".into(),
        })]
        .into(),
        ..SleepSummary::default()
    }
}

/// The day's run (the same activity in `activities` and in the details' summary).
fn activity(d: chrono::NaiveDate, midnight: i64) -> ActivitySummary {
    let n = d.day() as i64;
    ActivitySummary {
        user_id: USER.into(),
        summary_id: format!("a-{d}").into(),
        activity_id: (1000 + n).into(),
        activity_type: "RUNNING".into(),
        start_time_in_seconds: (midnight + 7 * 3600).into(),
        start_time_offset_in_seconds: OFFSET.into(),
        duration_in_seconds: 2400.into(),
        average_heart_rate_in_beats_per_minute: 150.into(),
        max_heart_rate_in_beats_per_minute: 175.into(),
        active_kilocalories: 380.into(),
        distance_in_meters: 6000.0.into(),
        ..ActivitySummary::default()
    }
}

fn hrv(d: chrono::NaiveDate, midnight: i64) -> Hrv {
    Hrv {
        user_id: USER.into(),
        summary_id: format!("h-{d}").into(),
        calendar_date: d.to_string().into(),
        start_time_in_seconds: midnight.into(),
        start_time_offset_in_seconds: OFFSET.into(),
        last_night_avg: 42.into(),
        hrv_values: [
            ("300".to_string(), 40.into()),
            ("600".to_string(), 44.into()),
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .into(),
    }
}

/// The run's details: its summary (repeated, as Garmin does), a sample every 15 s for its
/// first 5 minutes, and two laps.
fn details(d: chrono::NaiveDate, midnight: i64) -> ActivityDetails {
    let n = d.day() as i64;
    let t0 = midnight + 7 * 3600;
    let samples = (0..20i64)
        .map(|i| {
            Lenient::from(DetailSample {
                start_time_in_seconds: (t0 + 15 * i).into(),
                heart_rate: (120 + i).into(),
                speed_meters_per_second: 2.5.into(),
                steps_per_minute: 160.into(),
                elevation_in_meters: 50.0.into(),
                latitude_in_degree: 40.7.into(),
                longitude_in_degree: (-74.0).into(),
                air_temperature_celcius: 10.0.into(),
                total_distance_in_meters: (37.5 * i as f64).into(),
                timer_duration_in_seconds: (15 * i).into(),
                clock_duration_in_seconds: (15 * i).into(),
                moving_duration_in_seconds: (15 * i).into(),
                ..DetailSample::default()
            })
        })
        .collect::<Vec<_>>();
    let lap = |t: i64| {
        Lenient::from(Lap {
            start_time_in_seconds: t.into(),
        })
    };
    ActivityDetails {
        user_id: USER.into(),
        summary_id: format!("a-{d}-detail").into(),
        activity_id: (1000 + n).into(),
        summary: ActivitySummary {
            user_id: Lenient::default(),
            activity_id: Default::default(),
            ..activity(d, midnight)
        }
        .into(),
        samples: samples.into(),
        laps: vec![lap(t0), lap(t0 + 1200)].into(),
        ..ActivityDetails::default()
    }
}

/// Garmin summaries of `kind` for each day in `[start, end)` (epoch seconds), at -05:00.
pub(crate) fn items(kind: &str, start: i64, end: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let first = DateTime::from_timestamp(start, 0)
        .unwrap_or_default()
        .date_naive();
    for d in first.iter_days().take(31) {
        let midnight = d
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp()
            - OFFSET;
        if midnight >= end {
            break;
        }
        out.push(match kind {
            "dailies" => value(daily(d, midnight)),
            "sleeps" => value(sleep(d, midnight)),
            "activities" => value(activity(d, midnight)),
            "hrv" => value(hrv(d, midnight)),
            "activityDetails" => value(details(d, midnight)),
            _ => return vec![],
        });
    }
    out
}

/// Activity summary `id` (`a-YYYY-MM-DD`, as `activities` lists it).
pub(crate) fn activity_of(id: &str) -> Option<Value> {
    let d: chrono::NaiveDate = id.strip_prefix("a-")?.parse().ok()?;
    let midnight = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - OFFSET;
    Some(value(activity(d, midnight)))
}

/// The `activityFiles` notice of activity `id` whose file is served at `callback_url`.
pub fn activity_file(id: u64, start: i64, callback_url: String) -> ActivityFile {
    ActivityFile {
        user_id: USER.into(),
        summary_id: format!("{id}-file").into(),
        activity_id: (id as i64).into(),
        file_type: "FIT".into(),
        manual: false.into(),
        start_time_in_seconds: start.into(),
        activity_name: "Morning Run".into(),
        callback_url: callback_url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::garmin::payload::{ActivityFile, SleepSummary};
    use crate::providers::garmin::Garmin;
    use crate::providers::Provider;
    use serde_json::json;
    use uuid::Uuid;

    /// 2026-03-01T00:00:00-05:00 and a day later.
    const START: i64 = 1_772_341_200;
    const END: i64 = START + 86_400;

    #[test]
    fn simulator_summaries_round_trip_through_the_payload_structs_to_the_mapper() {
        let user = Uuid::from_u128(3);
        for t in ["dailies", "sleeps", "activities", "hrv", "activityDetails"] {
            let items = items(t, START, END);
            assert_eq!(items.len(), 1, "{t}");
            let m = Garmin.map(t, &Value::Array(items), user).unwrap();
            assert!(m.records() > 0, "{t} maps to nothing");
        }
        let s = serde_json::from_value::<SleepSummary>(items("sleeps", START, END).remove(0));
        let d = DateTime::from_timestamp(START, 0).unwrap().date_naive();
        assert_eq!(s.unwrap(), sleep(d, START));
        let file = activity_file(77, START, "http://sim/file?id=77".into());
        let back: ActivityFile = serde_json::from_value(value(&file)).unwrap();
        assert_eq!(back, file);
        let push = Garmin.as_push().unwrap();
        let downloads = push
            .as_files()
            .unwrap()
            .file_downloads("activityFiles", &json!([file]));
        assert_eq!(downloads[0].kind, "activityFiles:FIT:77");
        assert_eq!(downloads[0].url, "http://sim/file?id=77");
    }

    /// The typed simulator gives the mapper what the hand-written JSON it replaced gave.
    #[test]
    fn typed_payloads_map_as_the_former_json_did() {
        let user = Uuid::from_u128(3);
        let (off, midnight) = (OFFSET, START);
        let d = DateTime::from_timestamp(START, 0).unwrap().date_naive();
        let (n, u) = (d.day() as i64, USER);
        let t0 = midnight + 7 * 3600;
        let samples: Vec<Value> = (0..20i64)
            .map(|i| {
                json!({"startTimeInSeconds": t0 + 15 * i, "heartRate": 120 + i,
                "speedMetersPerSecond": 2.5, "stepsPerMinute": 160, "elevationInMeters": 50.0,
                "latitudeInDegree": 40.7, "longitudeInDegree": -74.0, "airTemperatureCelcius": 10.0,
                "totalDistanceInMeters": 37.5 * i as f64, "timerDurationInSeconds": 15 * i,
                "clockDurationInSeconds": 15 * i, "movingDurationInSeconds": 15 * i})
            })
            .collect();
        let former = [
            (
                "dailies",
                json!({"userId": u, "summaryId": format!("d-{d}"), "calendarDate": d.to_string(),
                "startTimeInSeconds": midnight, "startTimeOffsetInSeconds": off, "durationInSeconds": 86400,
                "steps": 7000 + 100 * n, "distanceInMeters": 5600.0, "activeTimeInSeconds": 3000,
                "activeKilocalories": 420, "floorsClimbed": 6, "restingHeartRateInBeatsPerMinute": 54,
                "timeOffsetHeartRateSamples": {"0": 58, "3600": 61}}),
            ),
            (
                "sleeps",
                json!({"userId": u, "summaryId": format!("s-{d}"), "calendarDate": d.to_string(),
                "startTimeInSeconds": midnight - 3600, "startTimeOffsetInSeconds": off, "durationInSeconds": 25200,
                "sleepLevelsMap": {
                    "light": [{"startTimeInSeconds": midnight - 3600, "endTimeInSeconds": midnight + 3600}],
                    "deep": [{"startTimeInSeconds": midnight + 3600, "endTimeInSeconds": midnight + 9000}],
                    "rem": [{"startTimeInSeconds": midnight + 9000, "endTimeInSeconds": midnight + 21600}]},
                "naps": [{"napStartTimeInSeconds": midnight + 14 * 3600 + 600, "napDurationInSeconds": 1500,
                    "napOffsetInSeconds": off, "napValidation": "DEVICE"}]}),
            ),
            (
                "activities",
                json!({"userId": u, "summaryId": format!("a-{d}"), "activityId": 1000 + n,
                "activityType": "RUNNING", "startTimeInSeconds": midnight + 7 * 3600,
                "startTimeOffsetInSeconds": off, "durationInSeconds": 2400,
                "averageHeartRateInBeatsPerMinute": 150, "maxHeartRateInBeatsPerMinute": 175,
                "activeKilocalories": 380, "distanceInMeters": 6000.0}),
            ),
            (
                "hrv",
                json!({"userId": u, "summaryId": format!("h-{d}"), "calendarDate": d.to_string(),
                "startTimeInSeconds": midnight, "startTimeOffsetInSeconds": off, "lastNightAvg": 42,
                "hrvValues": {"300": 40, "600": 44}}),
            ),
            (
                "activityDetails",
                json!({"userId": u, "summaryId": format!("a-{d}-detail"), "activityId": 1000 + n,
                "summary": {"summaryId": format!("a-{d}"), "activityType": "RUNNING",
                    "startTimeInSeconds": t0, "startTimeOffsetInSeconds": off, "durationInSeconds": 2400,
                    "averageHeartRateInBeatsPerMinute": 150, "maxHeartRateInBeatsPerMinute": 175,
                    "activeKilocalories": 380, "distanceInMeters": 6000.0},
                "samples": samples,
                "laps": [{"startTimeInSeconds": t0}, {"startTimeInSeconds": t0 + 1200}]}),
            ),
        ];
        for (t, old) in former {
            let new = items(t, START, END);
            let old = Garmin.map(t, &json!([old]), user).unwrap();
            let new = Garmin.map(t, &Value::Array(new), user).unwrap();
            assert_eq!(old, new, "{t}");
        }
    }
}
