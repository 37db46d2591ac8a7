//! Ultrahuman's data, built from the payload structs its mapper reads: one day per call, at
//! +05:30. On day D of the month: heart rate `60 + h mod 10` at each hour h, steps `200 + 10·D`
//! in each hour from 08:00 to 20:00 local (13 hours), VO2 max `45 + D mod 3`, active minutes
//! `30 + D`, and a night from 22:00 to 06:30 local with 90 min deep, 100 min REM, 240 min
//! light and 30 min awake.

use chrono::{Datelike, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::providers::payload::Lenient;
use crate::providers::ultrahuman::payload::{
    DayValue, Metric, MetricsData, MetricsResponse, QuickMetric, Reading, Readings, Sleep,
    SleepStage, UserInfo,
};

/// The local offset of the simulated wearer, in seconds (India).
pub const OFFSET: i64 = 19_800;

fn value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub fn user_info(account: Option<String>) -> UserInfo {
    UserInfo {
        user_id: account.unwrap_or_else(|| "uh-user-1".into()).into(),
        email: "ring@example.com".into(),
        username: "ring".into(),
    }
}

/// The local midnight of `d`, in Unix seconds.
pub fn day_start(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp()
        - OFFSET
}

fn readings(start: i64, hours: std::ops::Range<i64>, f: impl Fn(i64) -> f64) -> Value {
    value(Readings {
        day_start_timestamp: start.into(),
        title: Lenient(None),
        unit: Lenient(None),
        values: hours
            .map(|h| Reading {
                timestamp: (start + h * 3600).into(),
                value: f(h).into(),
            })
            .collect(),
        last_reading: Lenient(None),
    })
}

fn metric(kind: &str, object: Value) -> Metric {
    Metric {
        kind: kind.into(),
        object: Some(object),
    }
}

/// Day `d`'s metrics; a day not begun yet has no data.
pub fn metrics(d: NaiveDate) -> MetricsResponse {
    let start = day_start(d);
    if start > Utc::now().timestamp() {
        return MetricsResponse {
            data: Lenient(None),
            error: Some(Value::String("no data for this date".into())),
            status: 200.into(),
        };
    }
    let n = d.day() as i64;
    let day_value = |v: f64| {
        value(DayValue {
            day_start_timestamp: start.into(),
            title: Lenient(None),
            unit: Lenient(None),
            value: v.into(),
        })
    };
    let stage = |kind: &str, secs: i64| SleepStage {
        kind: kind.into(),
        stage_time: secs.into(),
        percentage: Lenient(None),
    };
    let quick = |kind: &str, v: i64| QuickMetric {
        kind: kind.into(),
        value: v.into(),
        title: Lenient(None),
    };
    let sleep = Sleep {
        day_start_timestamp: start.into(),
        bedtime_start: (start - 2 * 3600).into(),
        bedtime_end: (start + 6 * 3600 + 1800).into(),
        quick_metrics: vec![quick("time_in_bed", 30_600), quick("sleep_efic", 90)],
        sleep_stages: vec![
            stage("deep_sleep", 5400),
            stage("rem_sleep", 6000),
            stage("light_sleep", 14_400),
            stage("awake", 1800),
        ],
    };
    MetricsResponse {
        data: MetricsData {
            metric_data: vec![
                metric("hr", readings(start, 0..24, |h| (60 + h % 10) as f64)),
                metric("hrv", readings(start, 0..24, |h| (40 + h % 5) as f64)),
                metric("temp", readings(start, 0..8, |_| 36.1)),
                metric("steps", readings(start, 8..21, |_| (200 + 10 * n) as f64)),
                metric("vo2_max", day_value((45 + n % 3) as f64)),
                metric("active_minutes", day_value((30 + n) as f64)),
                metric("recovery_index", day_value(78.0)),
                metric("Sleep", value(sleep)),
            ],
        }
        .into(),
        error: None,
        status: 200.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ultrahuman::{Ultrahuman, METRICS};
    use crate::providers::Provider;
    use uuid::Uuid;

    #[test]
    fn a_simulated_day_round_trips_and_maps() {
        let d: NaiveDate = "2026-03-02".parse().unwrap();
        let body = value(metrics(d));
        let back: MetricsResponse = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(back, metrics(d));
        let m = Ultrahuman.map(METRICS, &body, Uuid::from_u128(5)).unwrap();
        let steps: f64 = m
            .samples
            .iter()
            .filter(|s| s.series == "steps")
            .map(|s| s.value)
            .sum();
        assert_eq!(steps, 13.0 * 220.0);
        assert!(m.samples.iter().all(|s| s.zone_offset == 330));
        assert_eq!(m.sleep.len(), 1);
        assert_eq!((m.sleep[0].end - m.sleep[0].start).num_minutes(), 510);
        assert_eq!(
            Ultrahuman.provider_user_id(&value(user_info(None))),
            Some("uh-user-1".into())
        );
    }
}
