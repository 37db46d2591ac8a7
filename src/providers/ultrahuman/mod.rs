//! Ultrahuman (Partner API): one day per call (`/user_data/metrics?date=YYYY-MM-DD`), pulled
//! day by day over the sync window; no webhooks. Readings carry Unix times; the day's offset
//! is what separates its local midnight (`day_start_timestamp`) from the nearest UTC
//! midnight, since the payload names no zone.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::{record_id, SleepSessionRecord, SleepStageInterval};

pub mod payload;

use self::payload::{DayValue, Metric, MetricsResponse, Readings, Sleep, UserInfo};
use super::mapped::{after_secs, provider_source, shape};
use super::payload::{self as lenient, Num};
use super::{
    ClientAuth, Coverage, MapError, Mapped, OAuthSettings, Provider, PullProvider, PullRequest,
    Revocation,
};

pub struct Ultrahuman;

const NAME: &str = "ultrahuman";
const DISPLAY: &str = "Ultrahuman";
/// The data type of a day's metrics.
pub const METRICS: &str = "metrics";
const DAY: i64 = 86_400;

/// Reading metrics → series.
const READINGS: &[(&str, &str)] = &[
    ("hr", "heart_rate"),
    ("hrv", "heart_rate_variability_sdnn"),
    ("temp", "body_temperature"),
    ("steps", "steps"),
];

fn time(n: &Num) -> Option<DateTime<Utc>> {
    n.num()
        .filter(|s| s.is_finite())
        .and_then(|s| DateTime::from_timestamp(s as i64, 0))
}

/// Minutes east of UTC of a day whose local midnight is `day_start` (Unix seconds): the
/// distance to the nearest UTC midnight (offsets lie within ±14 h; a day starting exactly
/// twelve hours off is taken as +12:00).
pub fn day_offset(day_start: i64) -> i16 {
    let nearest = (day_start + DAY / 2).div_euclid(DAY) * DAY;
    ((nearest - day_start) / 60) as i16
}

/// The date of `date=` in a request.
fn date_of(request: &PullRequest) -> Option<NaiveDate> {
    request
        .query
        .iter()
        .find(|(k, _)| k == "date")
        .and_then(|(_, v)| v.parse().ok())
}

fn request_for(d: NaiveDate) -> PullRequest {
    PullRequest {
        path: "/user_data/metrics".into(),
        query: vec![("date".into(), d.to_string())],
    }
}

impl Ultrahuman {
    fn map_sleep(&self, s: &Sleep, ds: Uuid, offset: i16, m: &mut Mapped) -> Result<(), MapError> {
        let (Some(start), Some(end)) = (time(&s.bedtime_start), time(&s.bedtime_end)) else {
            // A night without its times has no session to record.
            return Ok(());
        };
        if end <= start {
            return Err(shape(METRICS, "sleep ends before it starts"));
        }
        // Per-stage totals only: laid end to end from the start, so stage minutes stay exact
        // (flagged, never served as a timeline).
        let mut stages = Vec::new();
        let mut at = start;
        for (kind, stage) in [
            ("awake", "awake"),
            ("light_sleep", "light"),
            ("deep_sleep", "deep"),
            ("rem_sleep", "rem"),
        ] {
            let secs = s
                .sleep_stages
                .iter()
                .filter(|x| x.kind.str() == Some(kind))
                .filter_map(|x| x.stage_time.num())
                .sum::<f64>();
            if secs > 0.0 {
                let to = after_secs(at, secs).min(end);
                if to > at {
                    stages.push(SleepStageInterval {
                        stage: stage.into(),
                        start: at,
                        end: to,
                    });
                }
                at = to;
            }
        }
        let key = s
            .day_start_timestamp
            .num()
            .map(|d| (d as i64).to_string())
            .unwrap_or_else(|| start.timestamp().to_string());
        m.sleep.push(SleepSessionRecord {
            id: record_id(&[&ds.to_string(), "sleep", &key]),
            data_source_id: ds,
            start,
            end,
            zone_offset: Some(offset),
            is_nap: false,
            stages_from_totals: !stages.is_empty(),
            stages,
        });
        Ok(())
    }
}

impl Provider for Ultrahuman {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn oauth(&self) -> OAuthSettings {
        OAuthSettings {
            scopes: "ring_data cgm_data profile",
            pkce: false,
            user_info_path: Some("/user_data/user_info"),
        }
    }

    fn provider_user_id(&self, user_info: &Value) -> Option<String> {
        let u: UserInfo = lenient::item(user_info);
        Some(u.user_id.to_string()).filter(|s| !s.is_empty())
    }

    /// Ultrahuman documents no limit; a day per call keeps a sync to a request per day.
    fn requests_per_minute(&self) -> Option<u32> {
        Some(60)
    }

    fn revocation(&self) -> Option<Revocation> {
        Some(Revocation {
            endpoint: "revoke",
            token_field: "token",
            client_auth: ClientAuth::Body,
        })
    }

    fn mapping_version(&self) -> u32 {
        1
    }

    fn coverage(&self) -> Coverage {
        Coverage {
            series: &[
                "heart_rate",
                "heart_rate_variability_sdnn",
                "body_temperature",
                "steps",
                "vo2_max",
                "active_time",
            ],
            workout_fields: &[],
            sleep_fields: &[
                "start_time",
                "end_time",
                "zone_offset",
                "duration_seconds",
                "sleep_duration_seconds",
                "efficiency_percent",
                "stages",
                "is_nap",
            ],
            menstrual_cycle_fields: &[],
            scores: &[],
        }
    }

    fn map(&self, data_type: &str, body: &Value, user_id: Uuid) -> Result<Mapped, MapError> {
        if data_type != METRICS {
            return Err(MapError::UnknownType(data_type.into()));
        }
        let source = provider_source(user_id, NAME, DISPLAY);
        let ds = source.id;
        let mut m = Mapped {
            sources: vec![source],
            ..Mapped::default()
        };
        if !body.is_object() {
            return Err(shape(METRICS, "the day is not an object"));
        }
        let r: MetricsResponse = lenient::item(body);
        let Some(data) = r.data.get() else {
            // A day without data (nothing worn) answers with no `data`.
            return Ok(m);
        };
        let metrics: &[Metric] = &data.metric_data;
        // The day's offset, from any object that carries its local midnight.
        let offset = metrics
            .iter()
            .filter_map(|x| x.object.as_ref())
            .filter_map(|o| o.get("day_start_timestamp").and_then(Value::as_f64))
            .map(|d| day_offset(d as i64))
            .next()
            .unwrap_or(0);
        for metric in metrics {
            let (Some(kind), Some(object)) = (metric.kind.str(), metric.object.as_ref()) else {
                continue;
            };
            if let Some((_, series)) = READINGS.iter().find(|(k, _)| *k == kind) {
                let readings: Readings = lenient::item(object);
                for p in &readings.values {
                    let (Some(at), Some(v)) = (time(&p.timestamp), p.value.num()) else {
                        continue;
                    };
                    // Steps are counts per interval; a zero is no step, not a sample.
                    if *series == "steps" {
                        if v > 0.0 {
                            m.sample(series, ds, at, None, offset, v, Some(false));
                        }
                    } else {
                        m.sample(series, ds, at, None, offset, v, None);
                    }
                }
                continue;
            }
            match kind {
                "vo2_max" | "active_minutes" => {
                    let d: DayValue = lenient::item(object);
                    let (Some(at), Some(v)) = (time(&d.day_start_timestamp), d.value.num()) else {
                        continue;
                    };
                    if kind == "vo2_max" {
                        m.sample("vo2_max", ds, at, None, offset, v, None);
                    } else {
                        let end = at + chrono::Duration::days(1);
                        m.sample("active_time", ds, at, Some(end), offset, v, Some(true));
                    }
                }
                "Sleep" => {
                    let s: Sleep = lenient::item(object);
                    self.map_sleep(&s, ds, offset, &mut m)?;
                }
                // Recovery, movement and metabolic indices and the rest: not kept.
                _ => {}
            }
        }
        Ok(m)
    }

    fn as_pull(&self) -> Option<&dyn PullProvider> {
        Some(self)
    }
}

impl PullProvider for Ultrahuman {
    fn data_types(&self) -> &'static [&'static str] {
        &[METRICS]
    }

    fn first_page(
        &self,
        _data_type: &str,
        start: DateTime<Utc>,
        _end: DateTime<Utc>,
    ) -> PullRequest {
        request_for(start.date_naive())
    }

    /// Without the window there is no telling where the days end.
    fn next_page(&self, _previous: &PullRequest, _body: &Value) -> Option<PullRequest> {
        None
    }

    /// The next day, up to the window's last.
    fn next_page_in(
        &self,
        previous: &PullRequest,
        _body: &Value,
        _start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<PullRequest> {
        let next = date_of(previous)?.succ_opt()?;
        (next <= end.date_naive()).then(|| request_for(next))
    }

    fn map_snapshot(
        &self,
        _data_type: &str,
        _body: &Value,
        _user_id: Uuid,
        _received_at: DateTime<Utc>,
    ) -> Option<Result<Mapped, MapError>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Uuid {
        Uuid::from_u128(11)
    }

    /// 2026-03-01 in India (+05:30): local midnight is 2026-02-28T18:30:00Z.
    const DAY_START: i64 = 1_772_303_400;

    fn day() -> Value {
        json!({"data": {"metric_data": [
            {"type": "hr", "object": {"day_start_timestamp": DAY_START, "title": "Heart Rate", "unit": "BPM",
                "values": [{"timestamp": DAY_START + 3600, "value": 58}, {"timestamp": DAY_START + 3900, "value": 61}]}},
            {"type": "hrv", "object": {"day_start_timestamp": DAY_START, "values": [{"timestamp": DAY_START + 3600, "value": 44}]}},
            {"type": "temp", "object": {"day_start_timestamp": DAY_START, "values": [{"timestamp": DAY_START + 3600, "value": 35.9}]}},
            {"type": "steps", "object": {"day_start_timestamp": DAY_START, "values": [
                {"timestamp": DAY_START + 36000, "value": 420}, {"timestamp": DAY_START + 36300, "value": 0}]}},
            {"type": "vo2_max", "object": {"day_start_timestamp": DAY_START, "value": 47.5}},
            {"type": "active_minutes", "object": {"day_start_timestamp": DAY_START, "value": 64}},
            {"type": "recovery_index", "object": {"value": 80}},
            {"type": "Sleep", "object": {"day_start_timestamp": DAY_START,
                "bedtime_start": DAY_START - 7200, "bedtime_end": DAY_START + 21600,
                "quick_metrics": [{"type": "time_in_bed", "value": 28800}, {"type": "sleep_efic", "value": 90}],
                "sleep_stages": [{"type": "deep_sleep", "stage_time": 3600}, {"type": "rem_sleep", "stage_time": 5400},
                    {"type": "light_sleep", "stage_time": 16200}, {"type": "awake", "stage_time": 1800}]}}
        ]}, "error": null, "status": 200})
    }

    #[test]
    fn a_day_maps_its_readings_in_its_offset() {
        let m = Ultrahuman.map(METRICS, &day(), user()).unwrap();
        let got = |code: &str| -> Vec<(String, f64, i16, Option<bool>)> {
            m.samples
                .iter()
                .filter(|s| s.series == code)
                .map(|s| {
                    (
                        s.time.to_rfc3339(),
                        s.value,
                        s.zone_offset,
                        s.is_daily_total,
                    )
                })
                .collect()
        };
        assert_eq!(
            got("heart_rate"),
            vec![
                ("2026-02-28T19:30:00+00:00".into(), 58.0, 330, None),
                ("2026-02-28T19:35:00+00:00".into(), 61.0, 330, None)
            ]
        );
        assert_eq!(got("heart_rate_variability_sdnn")[0].1, 44.0);
        assert_eq!(got("body_temperature")[0].1, 35.9);
        assert_eq!(
            got("steps"),
            vec![("2026-03-01T04:30:00+00:00".into(), 420.0, 330, Some(false))],
            "zero-step intervals are no samples"
        );
        assert_eq!(
            got("vo2_max"),
            vec![("2026-02-28T18:30:00+00:00".into(), 47.5, 330, None)]
        );
        assert_eq!(
            got("active_time"),
            vec![("2026-02-28T18:30:00+00:00".into(), 64.0, 330, Some(true))]
        );
        let s = &m.sleep[0];
        assert_eq!(s.start.to_rfc3339(), "2026-02-28T16:30:00+00:00");
        assert_eq!(s.end.to_rfc3339(), "2026-03-01T00:30:00+00:00");
        assert_eq!(s.zone_offset, Some(330));
        assert!(s.stages_from_totals && !s.is_nap);
        let mins: Vec<(&str, i64)> = s
            .stages
            .iter()
            .map(|i| (i.stage.as_str(), (i.end - i.start).num_minutes()))
            .collect();
        assert_eq!(
            mins,
            vec![("awake", 30), ("light", 270), ("deep", 60), ("rem", 90)]
        );
    }

    #[test]
    fn offsets_from_the_local_midnight() {
        assert_eq!(day_offset(DAY_START), 330);
        // -05:00: local midnight at 05:00Z.
        assert_eq!(day_offset(1_772_341_200), -300);
        assert_eq!(day_offset(1_772_323_200), 0);
        // +13:00 (Tonga): local midnight at 11:00Z the day before.
        assert_eq!(day_offset(1_772_276_400), -660, "ambiguous beyond ±12 h");
    }

    #[test]
    fn days_are_paged_one_per_call_within_the_window() {
        let start = "2026-03-01T10:00:00Z".parse().unwrap();
        let end = "2026-03-03T08:00:00Z".parse().unwrap();
        let first = Ultrahuman.first_page(METRICS, start, end);
        assert_eq!(first.path, "/user_data/metrics");
        assert_eq!(first.query, vec![("date".into(), "2026-03-01".into())]);
        let second = Ultrahuman
            .next_page_in(&first, &json!({}), start, end)
            .unwrap();
        assert_eq!(second.query[0].1, "2026-03-02");
        let third = Ultrahuman
            .next_page_in(&second, &json!({}), start, end)
            .unwrap();
        assert_eq!(third.query[0].1, "2026-03-03");
        assert!(Ultrahuman
            .next_page_in(&third, &json!({}), start, end)
            .is_none());
        assert!(Ultrahuman.next_page(&first, &json!({})).is_none());
    }

    #[test]
    fn empty_and_malformed_days() {
        let m = Ultrahuman
            .map(
                METRICS,
                &json!({"data": null, "error": "no data", "status": 200}),
                user(),
            )
            .unwrap();
        assert_eq!(m.records(), 0);
        assert!(Ultrahuman.map(METRICS, &json!([1]), user()).is_err());
        assert!(Ultrahuman.map("sleep", &day(), user()).is_err());
        assert_eq!(
            Ultrahuman.provider_user_id(&json!({"user_id": "uh-7", "email": "a@b"})),
            Some("uh-7".into())
        );
    }
}
