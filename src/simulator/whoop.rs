//! Whoop's data, built from the payload structs its mapper reads.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use serde_json::Value;

use super::days;
use crate::providers::whoop::payload::{
    BodyMeasurement, Profile, Records, Recovery, RecoveryScore, Sleep, SleepScore, StageSummary,
    Workout, WorkoutScore, SCORED,
};

const USER: i64 = 10129;

fn value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The consenting user (as account `id`).
pub fn profile(id: i64) -> Profile {
    Profile {
        user_id: id.into(),
        email: "band@example.com".into(),
        first_name: "W".into(),
        last_name: "H".into(),
    }
}

pub fn body_measurement() -> BodyMeasurement {
    BodyMeasurement {
        height_meter: 1.8.into(),
        weight_kilogram: 80.0.into(),
        max_heart_rate: 190.into(),
    }
}

fn workout(d: NaiveDate) -> Workout {
    let n = d.day() as i64;
    Workout {
        id: format!("w-{d}").into(),
        user_id: USER.into(),
        start: format!("{d}T12:00:00.000Z").into(),
        end: format!("{d}T13:00:00.000Z").into(),
        timezone_offset: "-05:00".into(),
        sport_name: "running".into(),
        score_state: SCORED.into(),
        score: WorkoutScore {
            strain: 10.0.into(),
            average_heart_rate: (140 + n).into(),
            max_heart_rate: 180.into(),
            kilojoule: 2092.0.into(),
            distance_meter: 8000.0.into(),
            altitude_gain_meter: 30.0.into(),
        }
        .into(),
    }
}

fn sleep(d: NaiveDate) -> Sleep {
    let n = d.day() as i64;
    Sleep {
        id: format!("s-{d}").into(),
        user_id: USER.into(),
        start: format!("{d}T04:00:00.000Z").into(),
        end: format!("{d}T12:00:00.000Z").into(),
        timezone_offset: "-05:00".into(),
        nap: false.into(),
        score_state: SCORED.into(),
        score: SleepScore {
            respiratory_rate: 15.0.into(),
            sleep_efficiency_percentage: 90.0.into(),
            sleep_performance_percentage: (80 + n % 10).into(),
            sleep_consistency_percentage: 70.into(),
            stage_summary: StageSummary {
                total_in_bed_time_milli: 28_800_000.into(),
                total_awake_time_milli: 1_800_000.into(),
                total_light_sleep_time_milli: 12_600_000.into(),
                total_slow_wave_sleep_time_milli: 6_000_000.into(),
                total_rem_sleep_time_milli: 7_200_000.into(),
            }
            .into(),
        }
        .into(),
    }
}

fn recovery(d: NaiveDate) -> Recovery {
    let n = d.day() as i64;
    Recovery {
        cycle_id: n.into(),
        sleep_id: format!("s-{d}").into(),
        user_id: USER.into(),
        created_at: format!("{d}T12:30:00.000Z").into(),
        score_state: SCORED.into(),
        score: RecoveryScore {
            recovery_score: (60 + n).into(),
            resting_heart_rate: (50 + n % 5).into(),
            hrv_rmssd_milli: 60.5.into(),
            spo2_percentage: 95.5.into(),
            skin_temp_celsius: 33.5.into(),
        }
        .into(),
    }
}

/// Every record of collection `kind` (`workout`, `sleep`, anything else: recovery) over the
/// query's window.
pub(crate) fn records(kind: &str, q: &HashMap<String, String>) -> Vec<Value> {
    let window = days(q).into_iter();
    match kind {
        "workout" => window.map(|d| value(workout(d))).collect(),
        "sleep" => window.map(|d| value(sleep(d))).collect(),
        _ => window.map(|d| value(recovery(d))).collect(),
    }
}

/// Workout `id` (`w-YYYY-MM-DD`).
pub(crate) fn workout_of(id: &str) -> Option<Value> {
    let d: NaiveDate = id.strip_prefix("w-")?.parse().ok()?;
    Some(value(workout(d)))
}

/// One page of `all` from `offset`.
pub fn page(all: Vec<Value>, offset: usize, size: usize) -> Records<Value> {
    let next_token = (offset + size < all.len()).then(|| (offset + size).to_string());
    Records {
        records: all.into_iter().skip(offset).take(size).collect(),
        next_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::whoop::Whoop;
    use crate::providers::Provider;
    use chrono::{DateTime, Utc};
    use serde_json::json;
    use uuid::Uuid;

    fn window() -> HashMap<String, String> {
        [
            ("start".to_string(), "2026-03-01T00:00:00Z".to_string()),
            ("end".to_string(), "2026-03-02T00:00:00Z".to_string()),
        ]
        .into()
    }

    #[test]
    fn simulator_pages_round_trip_through_the_payload_structs_to_the_mapper() {
        let user = Uuid::from_u128(2);
        for t in ["workout", "sleep", "recovery"] {
            let page = page(records(t, &window()), 0, 100);
            let body = serde_json::to_value(&page).unwrap();
            let back: Records<Value> = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(back, page, "{t}");
            let m = Whoop.map(t, &body, user).unwrap();
            assert!(m.records() > 0, "{t} maps to nothing");
        }
        let d: NaiveDate = "2026-03-02".parse().unwrap();
        let r: Recovery = serde_json::from_value(value(recovery(d))).unwrap();
        assert_eq!(r, recovery(d));
        let at: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
        let m = Whoop
            .as_pull()
            .unwrap()
            .map_snapshot("body", &value(body_measurement()), user, at)
            .unwrap()
            .unwrap();
        assert_eq!(m.samples.len(), 2);
        let who = value(profile(7));
        assert_eq!(Whoop.provider_user_id(&who).as_deref(), Some("7"));
    }

    /// The typed simulator gives the mapper what the hand-written JSON it replaced gave.
    #[test]
    fn typed_payloads_map_as_the_former_json_did() {
        let user = Uuid::from_u128(2);
        let d: NaiveDate = "2026-03-02".parse().unwrap();
        let former = [
            (
                "workout",
                json!({
                    "id": format!("w-{d}"), "user_id": 10129, "start": format!("{d}T12:00:00.000Z"),
                    "end": format!("{d}T13:00:00.000Z"), "timezone_offset": "-05:00",
                    "sport_name": "running", "score_state": "SCORED",
                    "score": {"strain": 10.0, "average_heart_rate": 142, "max_heart_rate": 180,
                              "kilojoule": 2092.0, "distance_meter": 8000.0, "altitude_gain_meter": 30.0}
                }),
            ),
            (
                "sleep",
                json!({
                    "id": format!("s-{d}"), "user_id": 10129, "start": format!("{d}T04:00:00.000Z"),
                    "end": format!("{d}T12:00:00.000Z"), "timezone_offset": "-05:00", "nap": false,
                    "score_state": "SCORED",
                    "score": {"respiratory_rate": 15.0, "sleep_efficiency_percentage": 90.0,
                      "sleep_performance_percentage": 82, "sleep_consistency_percentage": 70,
                      "stage_summary": {"total_in_bed_time_milli": 28800000, "total_awake_time_milli": 1800000,
                        "total_light_sleep_time_milli": 12600000, "total_slow_wave_sleep_time_milli": 6000000,
                        "total_rem_sleep_time_milli": 7200000}}
                }),
            ),
            (
                "recovery",
                json!({
                    "cycle_id": 2, "sleep_id": format!("s-{d}"), "user_id": 10129,
                    "created_at": format!("{d}T12:30:00.000Z"), "score_state": "SCORED",
                    "score": {"recovery_score": 62, "resting_heart_rate": 52,
                              "hrv_rmssd_milli": 60.5, "spo2_percentage": 95.5, "skin_temp_celsius": 33.5}
                }),
            ),
        ];
        let typed = [value(workout(d)), value(sleep(d)), value(recovery(d))];
        for ((t, old), new) in former.into_iter().zip(typed) {
            let old = Whoop.map(t, &json!({ "records": [old] }), user).unwrap();
            let new = Whoop.map(t, &json!({ "records": [new] }), user).unwrap();
            assert_eq!(old, new, "{t}");
        }
    }
}
