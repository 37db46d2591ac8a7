//! Realistic SDK sync batches (for `wearhouse bench sdk-sync` and tests): one day of a
//! person's data per batch, mixed as the SDKs send it (heart rate every few minutes, steps,
//! energy and distance in intervals, HRV, SpO2, respiratory rate, a weigh-in), a night of
//! sleep stages and a workout with its statistics. Deterministic for a (seed, day).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::envelope::Platform;

/// A small deterministic generator (xorshift), so batches are the same for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// (record type, unit) per platform for the generated metrics.
fn names(p: Platform) -> [(&'static str, &'static str); 7] {
    match p {
        Platform::Apple => [
            ("HKQuantityTypeIdentifierHeartRate", "count/min"),
            ("HKQuantityTypeIdentifierStepCount", "count"),
            ("HKQuantityTypeIdentifierActiveEnergyBurned", "kcal"),
            ("HKQuantityTypeIdentifierDistanceWalkingRunning", "m"),
            ("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "ms"),
            ("HKQuantityTypeIdentifierOxygenSaturation", "%"),
            ("HKQuantityTypeIdentifierRespiratoryRate", "count/min"),
        ],
        Platform::Google | Platform::Samsung => [
            ("HEART_RATE", "bpm"),
            ("STEP_COUNT", "count"),
            ("ACTIVE_CALORIES_BURNED", "kcal"),
            ("DISTANCE", "m"),
            ("HEART_RATE_VARIABILITY", "ms"),
            ("OXYGEN_SATURATION", "%"),
            ("RESPIRATORY_RATE", "rpm"),
        ],
    }
}

/// A batch of `records` entries in all (metrics, sleep stages and one workout) for day `day`
/// after `start` (a UTC midnight), written by one watch in zone `offset_min`.
pub fn batch(
    platform: Platform,
    seed: u64,
    start: DateTime<Utc>,
    day: i64,
    records: usize,
    offset_min: i32,
) -> Value {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (day as u64 + 1) | 1);
    let zone = format!(
        "{}{:02}:{:02}",
        if offset_min < 0 { '-' } else { '+' },
        offset_min.abs() / 60,
        offset_min.abs() % 60
    );
    let local_midnight = start + Duration::days(day) - Duration::minutes(offset_min as i64);
    let source = match platform {
        Platform::Apple => json!({"name": "Apple Watch", "bundleIdentifier": "com.apple.health",
            "productType": "Watch7,5", "deviceModel": "Watch", "deviceManufacturer": "Apple Inc.",
            "deviceType": "watch", "operatingSystemVersion": {"majorVersion": 11, "minorVersion": 2, "patchVersion": 0}}),
        Platform::Google => {
            json!({"appId": "com.google.android.apps.fitness", "deviceModel": "Pixel Watch 3",
            "deviceManufacturer": "Google", "deviceType": "watch"})
        }
        Platform::Samsung => {
            json!({"appId": "com.sec.android.app.shealth", "deviceModel": "SM-R960",
            "deviceManufacturer": "Samsung", "deviceType": "watch"})
        }
    };
    let n = names(platform);
    // The night before the day: in bed 23:00 local, stages of 20–50 minutes until ~07:00.
    let mut sleep = Vec::new();
    let bed = local_midnight - Duration::hours(1);
    sleep.push(
        json!({"stage": "in_bed", "startDate": iso(bed), "endDate": iso(bed + Duration::hours(8)),
                      "zoneOffset": zone, "source": source}),
    );
    let mut t = bed + Duration::minutes(10);
    let stages = ["light", "deep", "light", "rem", "awake"];
    let mut k = 0;
    while t < bed + Duration::minutes(470) {
        let len = Duration::minutes(rng.range(20.0, 50.0) as i64);
        let end = (t + len).min(bed + Duration::minutes(470));
        sleep.push(json!({"id": format!("s{seed}-{day}-{k}"), "stage": stages[k % stages.len()],
                          "startDate": iso(t), "endDate": iso(end), "zoneOffset": zone, "source": source}));
        t = end;
        k += 1;
    }
    let run_start = local_midnight + Duration::hours(18);
    let workouts = vec![json!({
        "id": format!("w{seed}-{day}"), "type": "running", "startDate": iso(run_start),
        "endDate": iso(run_start + Duration::minutes(40)), "zoneOffset": zone, "source": source,
        "values": [
            {"type": "duration", "unit": "s", "value": 2400},
            {"type": "activeEnergyBurned", "unit": "kcal", "value": rng.range(300.0, 500.0).round()},
            {"type": "distance", "unit": "m", "value": rng.range(5000.0, 8000.0).round()},
            {"type": "averageHeartRate", "unit": "bpm", "value": rng.range(135.0, 160.0).round()},
            {"type": "maxHeartRate", "unit": "bpm", "value": rng.range(170.0, 190.0).round()},
            {"type": "elevationAscended", "unit": "m", "value": rng.range(10.0, 80.0).round()}
        ]
    })];
    let metrics = records.saturating_sub(sleep.len() + workouts.len());
    let mut out = Vec::with_capacity(metrics);
    // Spread over the waking day (07:00–23:00 local): 960 minutes.
    let step = (960.0 / metrics.max(1) as f64).max(0.02);
    for i in 0..metrics {
        let at = local_midnight
            + Duration::hours(7)
            + Duration::milliseconds((i as f64 * step * 60_000.0) as i64);
        let (kind, unit, value, span) = match i % 20 {
            0..=9 => (n[0].0, n[0].1, rng.range(55.0, 120.0).round(), 0),
            10..=12 => (n[1].0, n[1].1, rng.range(0.0, 600.0).round(), 5),
            13..=14 => (
                n[2].0,
                n[2].1,
                (rng.range(1.0, 40.0) * 10.0).round() / 10.0,
                5,
            ),
            15..=16 => (n[3].0, n[3].1, rng.range(0.0, 450.0).round(), 5),
            17 => (n[4].0, n[4].1, rng.range(20.0, 90.0).round(), 0),
            18 => (
                n[5].0,
                n[5].1,
                if platform == Platform::Apple {
                    rng.range(0.94, 0.99)
                } else {
                    rng.range(94.0, 99.0)
                },
                0,
            ),
            _ => (n[6].0, n[6].1, rng.range(12.0, 18.0).round(), 0),
        };
        out.push(
            json!({"id": format!("r{seed}-{day}-{i}"), "type": kind, "value": value, "unit": unit,
            "startDate": iso(at), "endDate": iso(at + Duration::minutes(span)),
            "zoneOffset": zone, "source": source}),
        );
    }
    json!({"provider": platform.name(), "sdkVersion": "0.9.2", "syncTimestamp": iso(local_midnight + Duration::days(1)),
           "data": {"records": out, "sleep": sleep, "workouts": workouts}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::sdk::{envelope, map_batch};

    #[test]
    fn generated_batches_map_without_drops() {
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        for p in Platform::ALL {
            let b = serde_json::to_vec(&batch(p, 7, start, 3, 1000, 120)).unwrap();
            let env = envelope::parse(&b).unwrap();
            assert_eq!(env.len(), 1000);
            let m = map_batch(
                uuid::Uuid::nil(),
                &env,
                "2026-06-01T00:00:00Z".parse().unwrap(),
            );
            assert_eq!(m.dropped.count, 0, "{p:?}: {:?}", m.dropped);
            assert_eq!(m.workouts_saved, 1);
            assert!(m.sleep_saved > 5);
        }
    }
}
