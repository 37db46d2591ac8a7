//! Oura's data, built from the payload structs its mapper reads.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use serde_json::{json, Value};

use super::{at, days};
use crate::providers::oura::payload::{
    DailyActivity, DailyReadiness, DailySleep, DailySpo2, HeartRate, Page, PersonalInfo, Series,
    Sleep, Spo2, Workout,
};
use crate::providers::payload::Lenient;

fn value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The user's profile (consenting as `account`).
pub fn personal_info(account: Option<String>) -> PersonalInfo {
    PersonalInfo {
        id: account.unwrap_or_else(|| "oura-user-1".into()).into(),
        age: 35.into(),
        weight: 70.5.into(),
        height: 1.78.into(),
        biological_sex: "female".into(),
        email: "ring@example.com".into(),
    }
}

fn daily_activity(d: NaiveDate) -> DailyActivity {
    let n = d.day() as i64;
    DailyActivity {
        id: format!("act-{d}").into(),
        day: d.to_string().into(),
        score: 80.into(),
        contributors: Some(json!({"move_every_hour": 100, "meet_daily_targets": 60})),
        steps: (5000 + 100 * n).into(),
        active_calories: (300 + n).into(),
        total_calories: 2200.into(),
        equivalent_walking_distance: (4000 + 10 * n).into(),
        high_activity_time: 600.into(),
        medium_activity_time: 1200.into(),
        low_activity_time: 7200.into(),
        timestamp: at(d, 4, 0).into(),
    }
}

fn daily_readiness(d: NaiveDate) -> DailyReadiness {
    DailyReadiness {
        id: format!("rd-{d}").into(),
        day: d.to_string().into(),
        score: 75.into(),
        contributors: None,
        temperature_deviation: (-0.1).into(),
        temperature_trend_deviation: 0.05.into(),
        timestamp: at(d, 0, 0).into(),
    }
}

fn daily_sleep(d: NaiveDate) -> DailySleep {
    let n = d.day() as i64;
    DailySleep {
        id: format!("ds-{d}").into(),
        day: d.to_string().into(),
        score: (70 + n % 20).into(),
        contributors: Some(json!({"deep_sleep": 80, "efficiency": 90, "total_sleep": 75})),
        timestamp: at(d, 0, 0).into(),
    }
}

fn daily_spo2(d: NaiveDate) -> DailySpo2 {
    DailySpo2 {
        id: format!("spo2-{d}").into(),
        day: d.to_string().into(),
        spo2_percentage: Spo2 {
            average: 96.0.into(),
        }
        .into(),
        breathing_disturbance_index: 2.into(),
    }
}

fn sleep(d: NaiveDate) -> Sleep {
    let prev = d.pred_opt().unwrap_or(d);
    let series = |items: &[Option<f64>]| {
        Lenient::from(Series {
            interval: 300.0.into(),
            items: items.iter().map(|i| Lenient(*i)).collect::<Vec<_>>().into(),
            timestamp: at(prev, 23, 0).into(),
        })
    };
    Sleep {
        id: format!("sl-{d}").into(),
        day: d.to_string().into(),
        kind: "long_sleep".into(),
        bedtime_start: at(prev, 23, 0).into(),
        bedtime_end: at(d, 1, 0).into(),
        sleep_phase_5_min: "442222111133332222111133".into(),
        total_sleep_duration: 6600.into(),
        time_in_bed: 7200.into(),
        efficiency: 92.into(),
        average_breath: 14.0.into(),
        lowest_heart_rate: 50.into(),
        heart_rate: series(&[Some(58.0), None, Some(54.0), Some(52.0)]),
        hrv: series(&[Some(45.0), Some(47.0)]),
    }
}

fn heart_rate(d: NaiveDate) -> Vec<HeartRate> {
    (0..4i64)
        .map(|i| HeartRate {
            bpm: (60 + i).into(),
            source: "awake".into(),
            timestamp: at(d, 8 + i as u32, 0).into(),
        })
        .collect()
}

fn workout(d: NaiveDate) -> Workout {
    Workout {
        id: format!("wo-{d}").into(),
        activity: "running".into(),
        calories: 350.0.into(),
        distance: 5000.0.into(),
        day: d.to_string().into(),
        intensity: "moderate".into(),
        source: "manual".into(),
        start_datetime: at(d, 7, 0).into(),
        end_datetime: at(d, 7, 30).into(),
    }
}

/// Every record of collection `kind` over the query's window; `None`: no such collection.
pub(crate) fn records(kind: &str, q: &HashMap<String, String>) -> Option<Vec<Value>> {
    let window = days(q).into_iter();
    Some(match kind {
        "daily_activity" => window.map(|d| value(daily_activity(d))).collect(),
        "daily_readiness" => window.map(|d| value(daily_readiness(d))).collect(),
        "daily_sleep" => window.map(|d| value(daily_sleep(d))).collect(),
        "daily_spo2" => window.map(|d| value(daily_spo2(d))).collect(),
        "sleep" => window.map(|d| value(sleep(d))).collect(),
        "heartrate" => window.flat_map(heart_rate).map(value).collect(),
        "workout" => window.map(|d| value(workout(d))).collect(),
        _ => return None,
    })
}

/// Workout `id` (`wo-YYYY-MM-DD`), as Oura answers one document of the collection.
pub(crate) fn workout_of(id: &str) -> Option<Value> {
    let d: NaiveDate = id.strip_prefix("wo-")?.parse().ok()?;
    Some(value(workout(d)))
}

/// One page of `all` from `offset`.
pub fn page(all: Vec<Value>, offset: usize, size: usize) -> Page<Value> {
    let next_token = (offset + size < all.len()).then(|| (offset + size).to_string());
    Page {
        data: all.into_iter().skip(offset).take(size).collect(),
        next_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::oura::Oura;
    use crate::providers::Provider;
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    fn window() -> HashMap<String, String> {
        [
            ("start_date".to_string(), "2026-03-01".to_string()),
            ("end_date".to_string(), "2026-03-02".to_string()),
        ]
        .into()
    }

    /// Every collection the simulator serves reads back into the payload structs unchanged and
    /// maps to records.
    #[test]
    fn simulator_pages_round_trip_through_the_payload_structs_to_the_mapper() {
        let user = Uuid::from_u128(1);
        let pull = Oura.as_pull().unwrap();
        for t in pull.data_types().iter().filter(|t| **t != "personal_info") {
            let page = page(records(t, &window()).unwrap(), 0, 100);
            let body = serde_json::to_value(&page).unwrap();
            let back: Page<Value> = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(back, page, "{t}");
            let m = Oura.map(t, &body, user).unwrap();
            assert!(m.records() > 0, "{t} maps to nothing");
        }
        let sl: Sleep = serde_json::from_value(value(sleep(NaiveDate::MIN))).unwrap();
        assert_eq!(sl, sleep(NaiveDate::MIN));
        let d = "2026-03-02".parse().unwrap();
        let m = Oura
            .map("sleep", &value(page(vec![value(sleep(d))], 0, 1)), user)
            .unwrap();
        assert_eq!(m.sleep[0].stages.len(), 7);
        assert_eq!(
            m.samples
                .iter()
                .filter(|s| s.series == "heart_rate")
                .count(),
            3,
            "the null item is a gap"
        );
        let at: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
        let info = value(personal_info(None));
        let m = pull
            .map_snapshot("personal_info", &info, user, at)
            .unwrap()
            .unwrap();
        assert_eq!(m.samples.len(), 2);
    }

    /// The typed simulator gives the mapper what the hand-written JSON it replaced gave: the
    /// same records, so the mapping version stays.
    #[test]
    fn typed_payloads_map_as_the_former_json_did() {
        let user = Uuid::from_u128(1);
        let d: NaiveDate = "2026-03-02".parse().unwrap();
        let prev = d.pred_opt().unwrap();
        let former = [
            (
                "daily_activity",
                json!({
                    "id": format!("act-{d}"), "day": d.to_string(), "score": 80,
                    "contributors": {"move_every_hour": 100, "meet_daily_targets": 60},
                    "steps": 5200, "active_calories": 302, "total_calories": 2200,
                    "equivalent_walking_distance": 4020,
                    "high_activity_time": 600, "medium_activity_time": 1200, "low_activity_time": 7200,
                    "timestamp": at(d, 4, 0)
                }),
            ),
            (
                "sleep",
                json!({
                    "id": format!("sl-{d}"), "day": d.to_string(), "type": "long_sleep",
                    "bedtime_start": at(prev, 23, 0), "bedtime_end": at(d, 1, 0),
                    "sleep_phase_5_min": "442222111133332222111133",
                    "total_sleep_duration": 6600, "time_in_bed": 7200, "efficiency": 92,
                    "average_breath": 14.0, "lowest_heart_rate": 50,
                    "heart_rate": {"interval": 300.0, "items": [58, null, 54, 52], "timestamp": at(prev, 23, 0)},
                    "hrv": {"interval": 300.0, "items": [45, 47], "timestamp": at(prev, 23, 0)}
                }),
            ),
            (
                "workout",
                json!({
                    "id": format!("wo-{d}"), "activity": "running", "calories": 350.0, "distance": 5000.0,
                    "day": d.to_string(), "intensity": "moderate", "source": "manual",
                    "start_datetime": at(d, 7, 0), "end_datetime": at(d, 7, 30)
                }),
            ),
            (
                "daily_spo2",
                json!({"id": format!("spo2-{d}"), "day": d.to_string(),
                    "spo2_percentage": {"average": 96.0}, "breathing_disturbance_index": 2}),
            ),
        ];
        let typed = [
            value(daily_activity(d)),
            value(sleep(d)),
            value(workout(d)),
            value(daily_spo2(d)),
        ];
        for ((t, old), new) in former.into_iter().zip(typed) {
            let old = Oura.map(t, &json!({ "data": [old] }), user).unwrap();
            let new = Oura.map(t, &json!({ "data": [new] }), user).unwrap();
            assert_eq!(old, new, "{t}");
        }
    }
}
