//! Strava's data, built from the payload structs its mapper reads. One ride a day at 06:00Z
//! (+01:00 local), id `yyyymmdd·10 + 1`, so tests can predict ids and values: distance
//! `20000 + 100·D` m on day D of the month, 836.8 kJ (200 kcal) of work, 650 kcal in the
//! detail, streams every 60 s for an hour (heart rate `120 + i mod 30`).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::providers::payload::{Lenient, Num};
use crate::providers::strava::payload::{Activity, Athlete, Stream, StreamSet};

/// The athlete who consents by default.
pub const ATHLETE: i64 = 134_815;
/// Local offset of every simulated activity, in seconds.
pub const OFFSET: i64 = 3600;

fn value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub fn athlete(account: Option<String>) -> Athlete {
    let id = account
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(ATHLETE);
    Athlete {
        id: id.into(),
        username: "sim_rider".into(),
        firstname: "Sim".into(),
        lastname: "Rider".into(),
    }
}

/// The id of day `d`'s activity.
pub fn activity_id(d: NaiveDate) -> i64 {
    (d.year() as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64) * 10 + 1
}

/// The day of activity `id`, if it names one.
fn day_of(id: &str) -> Option<NaiveDate> {
    let n: i64 = id.parse().ok()?;
    if n % 10 != 1 {
        return None;
    }
    let ymd = n / 10;
    NaiveDate::from_ymd_opt(
        (ymd / 10_000) as i32,
        (ymd / 100 % 100) as u32,
        (ymd % 100) as u32,
    )
}

fn start(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(6, 0, 0).unwrap_or_default().and_utc()
}

/// Day `d`'s ride as the list gives it (a summary: no calories, no device).
pub fn summary(d: NaiveDate) -> Activity {
    let n = d.day() as i64;
    let t = start(d);
    let local = t + chrono::Duration::seconds(OFFSET);
    Activity {
        id: activity_id(d).into(),
        name: "Morning Ride".into(),
        kind: "Ride".into(),
        sport_type: "Ride".into(),
        start_date: t.format("%Y-%m-%dT%H:%M:%SZ").to_string().into(),
        start_date_local: local.format("%Y-%m-%dT%H:%M:%SZ").to_string().into(),
        timezone: "(GMT+01:00) Europe/Paris".into(),
        utc_offset: (OFFSET as f64).into(),
        elapsed_time: 3600.into(),
        moving_time: 3400.into(),
        distance: (20_000 + 100 * n).into(),
        total_elevation_gain: 240.into(),
        elev_high: 410.into(),
        elev_low: 170.into(),
        average_speed: 5.9.into(),
        max_speed: 14.2.into(),
        average_cadence: 85.into(),
        average_watts: 232.4.into(),
        max_watts: 610.into(),
        kilojoules: 836.8.into(),
        calories: Lenient(None),
        has_heartrate: true.into(),
        average_heartrate: (130 + n % 10).into(),
        max_heartrate: 172.into(),
        device_name: Lenient(None),
    }
}

/// Day `d`'s ride as `/activities/{id}` gives it.
pub fn detail(d: NaiveDate) -> Activity {
    Activity {
        calories: 650.into(),
        device_name: "Garmin Edge 840".into(),
        ..summary(d)
    }
}

/// The activities that started in `(after, before)` (Unix seconds), oldest first, at most a
/// year of them.
pub fn activities(after: i64, before: i64) -> Vec<Value> {
    let (Some(a), Some(b)) = (
        DateTime::from_timestamp(after, 0),
        DateTime::from_timestamp(before, 0),
    ) else {
        return vec![];
    };
    a.date_naive()
        .iter_days()
        .take_while(|d| *d <= b.date_naive())
        .take(400)
        .filter(|d| {
            let t = start(*d).timestamp();
            t > after && t < before && start(*d) <= Utc::now()
        })
        .map(|d| value(summary(d)))
        .collect()
}

/// Activity `id`'s detail, if it exists (started already).
pub fn detail_of(id: &str) -> Option<Value> {
    let d = day_of(id)?;
    (start(d) <= Utc::now()).then(|| value(detail(d)))
}

fn stream(data: Vec<Num>) -> Lenient<Stream> {
    Stream {
        original_size: (data.len() as i64).into(),
        data: Lenient(Some(data)),
        series_type: "time".into(),
        resolution: "high".into(),
    }
    .into()
}

/// Activity `id`'s streams: every 60 s for an hour.
pub fn streams_of(id: &str) -> Option<Value> {
    let d = day_of(id)?;
    if start(d) > Utc::now() {
        return None;
    }
    let points = 0..=60i64;
    Some(value(StreamSet {
        time: stream(points.clone().map(|i| (i * 60).into()).collect()),
        heartrate: stream(points.clone().map(|i| (120 + i % 30).into()).collect()),
        velocity_smooth: stream(points.clone().map(|_| 5.9.into()).collect()),
        cadence: stream(points.clone().map(|_| 85.into()).collect()),
        watts: stream(points.map(|i| (200 + i % 20).into()).collect()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::strava::{streams_kind, Strava, ACTIVITY};
    use crate::providers::{Provider, PullProvider};
    use serde_json::json;
    use uuid::Uuid;

    #[test]
    fn simulator_payloads_round_trip_through_the_structs_to_the_mapper() {
        let user = Uuid::from_u128(3);
        let d: NaiveDate = "2026-03-02".parse().unwrap();
        let listed = activities(1_772_323_200, 1_772_496_000);
        assert_eq!(listed.len(), 2);
        let back: Activity = serde_json::from_value(listed[1].clone()).unwrap();
        assert_eq!(back, summary(d));
        let m = Strava
            .map(ACTIVITY, &Value::Array(listed.clone()), user)
            .unwrap();
        assert_eq!(m.workouts.len(), 2);
        assert_eq!(m.workouts[1].stats["distance_m"], 20_200.0);
        assert!((m.workouts[1].stats["energy_kcal"] - 200.0).abs() < 1e-9);
        let id = activity_id(d).to_string();
        assert_eq!(id, "202603021");
        let detail = detail_of(&id).unwrap();
        let m = Strava.map(ACTIVITY, &detail, user).unwrap();
        assert_eq!(m.workouts[0].stats["energy_kcal"], 650.0);
        let ups = Strava.follow_ups(ACTIVITY, &json!([listed[1]]));
        let kind = &ups[0].0;
        assert_eq!(*kind, streams_kind(&id, start(d), OFFSET));
        let m = Strava.map(kind, &streams_of(&id).unwrap(), user).unwrap();
        assert_eq!(m.samples.len(), 61 * 4);
        assert!(detail_of("999").is_none() && streams_of("202603020").is_none());
        assert_eq!(
            Strava.provider_user_id(&value(athlete(None))).as_deref(),
            Some("134815")
        );
    }
}
