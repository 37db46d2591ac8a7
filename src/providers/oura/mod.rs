//! Oura (API v2): pull by date window with `next_token` paging; webhook pings verified by
//! `x-oura-signature` = hex HMAC-SHA256(client secret, `x-oura-timestamp` + body), and a GET
//! verification challenge echoed back.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use uuid::Uuid;
use wearhouse_domain::records::{record_id, SleepSessionRecord, SleepStageInterval, WorkoutRecord};
use wearhouse_domain::workout_type::WorkoutType;

pub mod payload;
mod workouts;

use serde::de::DeserializeOwned;

use self::payload::{
    DailyActivity, DailyReadiness, DailySleep, DailySpo2, HeartRate, PersonalInfo, Sleep, Workout,
};
use super::mapped::{body_snapshot, local_midnight, numeric_components, provider_source, shape};
use super::payload::{self as lenient, Text};
use super::{
    parse_time, parse_webhook_timestamp, same, verification_token, verify_timestamped_hmac,
    AppRequest, Coverage, Endpoints, MapError, Mapped, Notice, OAuthSettings, Provider,
    PullProvider, PullRequest, PushModes, PushProvider, Subscription, SubscriptionProvider,
    WebhookError,
};

pub struct Oura;

const NAME: &str = "oura";
const COLLECTION: &str = "/v2/usercollection/";

/// Data types pulled by a sync; each is a `/v2/usercollection/{type}` endpoint.
const TYPES: &[&str] = &[
    "personal_info",
    "daily_activity",
    "daily_readiness",
    "daily_sleep",
    "daily_spo2",
    "sleep",
    "heartrate",
    "workout",
];

/// The local day of a daily record, with the offset its `timestamp` carries (upstream lost
/// it, #1151); 0 without one.
fn local_day(day: &Text, timestamp: &Text, data_type: &str) -> Result<(NaiveDate, i16), MapError> {
    let d = day
        .str()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| shape(data_type, "missing day"))?;
    let offset = timestamp
        .str()
        .and_then(parse_time)
        .map(|t| t.1)
        .unwrap_or(0);
    Ok((d, offset))
}

fn page<T: DeserializeOwned + Default>(body: &Value, data_type: &str) -> Result<Vec<T>, MapError> {
    lenient::items(body, "data").ok_or_else(|| shape(data_type, "no data array"))
}

fn time(v: &Text, key: &str, data_type: &str) -> Result<(DateTime<Utc>, i16), MapError> {
    v.str()
        .and_then(parse_time)
        .ok_or_else(|| shape(data_type, format!("missing or bad {key}")))
}

/// Oura's 5-minute hypnogram digits: 1 deep, 2 light, 3 REM, 4 awake.
fn stage(digit: char) -> Option<&'static str> {
    match digit {
        '1' => Some("deep"),
        '2' => Some("light"),
        '3' => Some("rem"),
        '4' => Some("awake"),
        _ => None,
    }
}

/// Consecutive equal digits of the hypnogram become one interval.
fn hypnogram(start: DateTime<Utc>, phases: &str) -> Vec<SleepStageInterval> {
    let step = chrono::Duration::minutes(5);
    let mut out: Vec<SleepStageInterval> = Vec::new();
    for (i, c) in phases.chars().enumerate() {
        let Some(stage) = stage(c) else { continue };
        // Checked: a hostile start near the end of time must not panic the mapper.
        let Some(from) = start.checked_add_signed(step * i as i32) else {
            break;
        };
        match out.last_mut() {
            Some(last) if last.stage == stage && last.end == from => last.end = from + step,
            _ => out.push(SleepStageInterval {
                stage: stage.into(),
                start: from,
                end: from + step,
            }),
        }
    }
    out
}

impl Oura {
    fn map_items(&self, data_type: &str, body: &Value, user_id: Uuid) -> Result<Mapped, MapError> {
        let source = provider_source(user_id, NAME, "Oura");
        let ds = source.id;
        let mut m = Mapped {
            sources: vec![source],
            ..Mapped::default()
        };
        match data_type {
            // Timeless: mapped by `map_snapshot` with the time the response arrived.
            "personal_info" => {}
            "daily_activity" => {
                for v in page::<DailyActivity>(body, data_type)? {
                    let (d, offset) = local_day(&v.day, &v.timestamp, data_type)?;
                    let at = local_midnight(d, offset);
                    let end = Some(at + chrono::Duration::days(1));
                    let active_s = [&v.high_activity_time, &v.medium_activity_time]
                        .iter()
                        .filter_map(|n| n.num())
                        .sum::<f64>();
                    m.score(
                        ds,
                        "activity",
                        v.score.num(),
                        None,
                        at,
                        Some(offset),
                        numeric_components(v.contributors.as_ref()),
                    );
                    // Oura's total includes the resting burn; recorded as basal energy (total -
                    // active), so active + basal is Oura's own total wherever it is summed.
                    let basal = match (v.total_calories.num(), v.active_calories.num()) {
                        (Some(t), a) if t >= a.unwrap_or(0.0) => Some(t - a.unwrap_or(0.0)),
                        _ => None,
                    };
                    for (series, value) in [
                        ("steps", v.steps.num()),
                        ("energy", v.active_calories.num()),
                        ("basal_energy", basal),
                        (
                            "distance_walking_running",
                            v.equivalent_walking_distance.num(),
                        ),
                        ("active_time", Some(active_s / 60.0)),
                    ] {
                        if let Some(value) = value {
                            m.sample(series, ds, at, end, offset, value, Some(true));
                        }
                    }
                }
            }
            "daily_readiness" => {
                for v in page::<DailyReadiness>(body, data_type)? {
                    let (d, offset) = local_day(&v.day, &v.timestamp, data_type)?;
                    let at = local_midnight(d, offset);
                    m.score(
                        ds,
                        "readiness",
                        v.score.num(),
                        None,
                        at,
                        Some(offset),
                        numeric_components(v.contributors.as_ref()),
                    );
                    for (series, value) in [
                        ("skin_temperature_deviation", &v.temperature_deviation),
                        (
                            "skin_temperature_trend_deviation",
                            &v.temperature_trend_deviation,
                        ),
                    ] {
                        if let Some(value) = value.num() {
                            m.sample(series, ds, at, None, offset, value, None);
                        }
                    }
                }
            }
            "daily_sleep" => {
                for v in page::<DailySleep>(body, data_type)? {
                    let (d, offset) = local_day(&v.day, &v.timestamp, data_type)?;
                    m.score(
                        ds,
                        "sleep",
                        v.score.num(),
                        None,
                        local_midnight(d, offset),
                        Some(offset),
                        numeric_components(v.contributors.as_ref()),
                    );
                }
            }
            "daily_spo2" => {
                for v in page::<DailySpo2>(body, data_type)? {
                    // The day is taken as UTC: Oura gives this one no timestamp.
                    let (d, _) = local_day(&v.day, &Text::default(), data_type)?;
                    let at = local_midnight(d, 0);
                    if let Some(avg) = v.spo2_percentage.get().and_then(|s| s.average.num()) {
                        m.sample("oxygen_saturation", ds, at, None, 0, avg, None);
                    }
                    if let Some(bdi) = v.breathing_disturbance_index.num() {
                        m.sample("breathing_disturbance_index", ds, at, None, 0, bdi, None);
                    }
                }
            }
            "heartrate" => {
                for v in page::<HeartRate>(body, data_type)? {
                    let (at, offset) = time(&v.timestamp, "timestamp", data_type)?;
                    if let Some(bpm) = v.bpm.num() {
                        m.sample("heart_rate", ds, at, None, offset, bpm, None);
                    }
                }
            }
            "sleep" => {
                for v in page::<Sleep>(body, data_type)? {
                    self.map_sleep(&v, ds, &mut m)?;
                }
            }
            "workout" => {
                for v in page::<Workout>(body, data_type)? {
                    let (start, offset) = time(&v.start_datetime, "start_datetime", data_type)?;
                    let (end, _) = time(&v.end_datetime, "end_datetime", data_type)?;
                    let activity = v.activity.str().unwrap_or("");
                    let id = v.id.str().unwrap_or_default();
                    let mut stats = BTreeMap::new();
                    if let Some(c) = v.calories.num() {
                        stats.insert("energy_kcal".to_string(), c);
                    }
                    if let Some(d) = v.distance.num() {
                        stats.insert("distance_m".to_string(), d);
                    }
                    let mut metadata = BTreeMap::new();
                    metadata.insert("external_id".to_string(), id.to_string());
                    metadata.insert("oura_activity".to_string(), activity.to_string());
                    m.workouts.push(WorkoutRecord {
                        id: record_id(&[&ds.to_string(), "workout", id]),
                        data_source_id: ds,
                        workout_type: WorkoutType::parse(activity)
                            .unwrap_or(WorkoutType::OTHER)
                            .as_str()
                            .to_string(),
                        start,
                        end,
                        zone_offset: Some(offset),
                        duration_s: Some((end - start).num_seconds() as f64),
                        stats,
                        metadata,
                        laps: Vec::new(),
                    });
                }
            }
            other => {
                // An unknown type is refused only when there is something to map.
                if !page::<Value>(body, data_type)?.is_empty() {
                    return Err(MapError::UnknownType(other.into()));
                }
            }
        }
        Ok(m)
    }

    fn map_sleep(&self, v: &Sleep, ds: Uuid, m: &mut Mapped) -> Result<(), MapError> {
        let kind = v.kind.str().unwrap_or("");
        if kind == "deleted" {
            return Ok(());
        }
        let (start, offset) = time(&v.bedtime_start, "bedtime_start", "sleep")?;
        let (end, _) = time(&v.bedtime_end, "bedtime_end", "sleep")?;
        let id = v.id.str().unwrap_or_default();
        let stages = v
            .sleep_phase_5_min
            .str()
            .map(|p| hypnogram(start, p))
            .unwrap_or_default();
        m.sleep.push(SleepSessionRecord {
            id: record_id(&[&ds.to_string(), "sleep", id]),
            data_source_id: ds,
            start,
            end,
            zone_offset: Some(offset),
            is_nap: matches!(kind, "sleep" | "late_nap" | "rest"),
            stages,
            stages_from_totals: false,
        });
        // Interval series: `items[i]` is at `timestamp + i × interval`; nulls are gaps.
        for (s, series) in [
            (&v.heart_rate, "heart_rate"),
            (&v.hrv, "heart_rate_variability_rmssd"),
        ] {
            let Some(s) = s.get() else { continue };
            let (Some(t0), Some(step)) = (s.timestamp.str().and_then(parse_time), s.interval.num())
            else {
                continue;
            };
            for (i, item) in s.items.get().into_iter().flatten().enumerate() {
                if let Some(value) = item.num() {
                    let at = super::mapped::after_secs(t0.0, step * i as f64);
                    m.sample(series, ds, at, None, t0.1, value, None);
                }
            }
        }
        if let Some(b) = v.average_breath.num() {
            m.sample("respiratory_rate", ds, start, Some(end), offset, b, None);
        }
        if let Some(hr) = v.lowest_heart_rate.num() {
            m.sample("resting_heart_rate", ds, start, Some(end), offset, hr, None);
        }
        Ok(())
    }
}

impl Provider for Oura {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        "Oura"
    }

    fn oauth(&self) -> OAuthSettings {
        OAuthSettings {
            scopes: "personal daily activity heartrate workout session spo2 ring_configuration heart_health",
            pkce: false,
            user_info_path: Some("/v2/usercollection/personal_info"),
        }
    }

    fn provider_user_id(&self, user_info: &Value) -> Option<String> {
        user_info
            .get("id")
            .and_then(Value::as_str)
            .map(String::from)
    }

    /// Oura allows 5,000 requests per 5 minutes per app.
    fn requests_per_minute(&self) -> Option<u32> {
        Some(1000)
    }

    fn mapping_version(&self) -> u32 {
        // 2: daily_activity's total_calories recorded (as basal energy).
        2
    }

    fn coverage(&self) -> Coverage {
        Coverage {
            series: &[
                "steps",
                "energy",
                "basal_energy",
                "distance_walking_running",
                "active_time",
                "heart_rate",
                "heart_rate_variability_rmssd",
                "resting_heart_rate",
                "respiratory_rate",
                "oxygen_saturation",
                "breathing_disturbance_index",
                "skin_temperature_deviation",
                "skin_temperature_trend_deviation",
            ],
            workout_fields: &[
                "type",
                "start_time",
                "end_time",
                "zone_offset",
                "duration_seconds",
                "calories_kcal",
                "distance_meters",
            ],
            sleep_fields: super::SLEEP_FIELDS,
            menstrual_cycle_fields: &[],
            scores: &["activity", "readiness", "sleep"],
        }
    }

    fn map(&self, data_type: &str, body: &Value, user_id: Uuid) -> Result<Mapped, MapError> {
        self.map_items(data_type, body, user_id)
    }

    fn as_pull(&self) -> Option<&dyn PullProvider> {
        Some(self)
    }

    fn as_vendor_workouts(&self) -> Option<&dyn super::VendorWorkouts> {
        Some(self)
    }

    fn as_push(&self) -> Option<&dyn PushProvider> {
        Some(self)
    }

    fn as_subscriptions(&self) -> Option<&dyn SubscriptionProvider> {
        Some(self)
    }
}

impl PullProvider for Oura {
    fn data_types(&self) -> &'static [&'static str] {
        TYPES
    }

    fn first_page(&self, data_type: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> PullRequest {
        let query = match data_type {
            "personal_info" => vec![],
            // Heart rate is the one collection windowed by instants, not dates.
            "heartrate" => vec![
                ("start_datetime".into(), start.to_rfc3339()),
                ("end_datetime".into(), end.to_rfc3339()),
            ],
            _ => vec![
                ("start_date".into(), start.date_naive().to_string()),
                ("end_date".into(), end.date_naive().to_string()),
            ],
        };
        PullRequest {
            path: format!("{COLLECTION}{data_type}"),
            query,
        }
    }

    fn next_page(&self, previous: &PullRequest, body: &Value) -> Option<PullRequest> {
        let token = body.get("next_token").and_then(Value::as_str)?;
        let mut query: Vec<(String, String)> = previous
            .query
            .iter()
            .filter(|(k, _)| k != "next_token")
            .cloned()
            .collect();
        query.push(("next_token".into(), token.into()));
        Some(PullRequest {
            path: previous.path.clone(),
            query,
        })
    }

    fn map_snapshot(
        &self,
        data_type: &str,
        body: &Value,
        user_id: Uuid,
        received_at: DateTime<Utc>,
    ) -> Option<Result<Mapped, MapError>> {
        (data_type == "personal_info").then(|| {
            let info: PersonalInfo = lenient::item(body);
            Ok(body_snapshot(
                user_id,
                NAME,
                "Oura",
                received_at,
                info.weight.num(),
                info.height.num().map(|m| m * 100.0),
            ))
        })
    }
}

impl PushProvider for Oura {
    fn verify_webhook(
        &self,
        headers: &BTreeMap<String, String>,
        body: &[u8],
        endpoints: &Endpoints,
    ) -> Result<(), WebhookError> {
        verify_timestamped_hmac(
            headers,
            body,
            &endpoints.client_secret,
            ("x-oura-signature", "x-oura-timestamp"),
            |sig| hex::decode(sig.to_ascii_lowercase()).ok(),
        )
    }

    fn webhook_timestamp(&self, headers: &BTreeMap<String, String>) -> Option<DateTime<Utc>> {
        headers
            .get("x-oura-timestamp")
            .and_then(|t| parse_webhook_timestamp(t))
    }

    fn parse_webhook(&self, body: &Value) -> Result<Vec<Notice>, WebhookError> {
        let user = body
            .get("user_id")
            .and_then(Value::as_str)
            .ok_or_else(|| WebhookError::Payload("user_id missing".into()))?;
        let data_type = body
            .get("data_type")
            .and_then(Value::as_str)
            .ok_or_else(|| WebhookError::Payload("data_type missing".into()))?;
        if !TYPES.contains(&data_type) {
            return Ok(vec![]);
        }
        Ok(vec![Notice::Pull {
            provider_user_id: user.into(),
            data_type: data_type.into(),
        }])
    }

    /// Oura pings; the data is pulled.
    fn modes(&self) -> PushModes {
        PushModes {
            ping: true,
            ..PushModes::default()
        }
    }
}

impl SubscriptionProvider for Oura {
    /// One subscription per (data type × create/update), as upstream registers them.
    fn subscription_requests(&self, endpoints: &Endpoints, callback_url: &str) -> Vec<AppRequest> {
        let token = verification_token(endpoints);
        WEBHOOK_TYPES
            .iter()
            .flat_map(|data_type| {
                ["create", "update"].map(|event_type| AppRequest {
                    method: "POST",
                    path: SUBSCRIPTIONS.into(),
                    headers: app_headers(endpoints),
                    body: json!({"callback_url": callback_url, "verification_token": token,
                                 "event_type": event_type, "data_type": data_type}),
                    key: Some(format!("{data_type}/{event_type}")),
                })
            })
            .collect()
    }

    fn list_subscriptions(&self, endpoints: &Endpoints) -> AppRequest {
        AppRequest {
            method: "GET",
            path: SUBSCRIPTIONS.into(),
            headers: app_headers(endpoints),
            body: Value::Null,
            key: None,
        }
    }

    /// Oura lists subscriptions as a bare array of `{id, callback_url, event_type, data_type,
    /// expiration_time}`.
    fn parse_subscriptions(&self, body: &Value) -> Vec<Subscription> {
        body.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                Some(Subscription {
                    id: s.get("id")?.as_str()?.to_string(),
                    key: format!(
                        "{}/{}",
                        s.get("data_type")?.as_str()?,
                        s.get("event_type")?.as_str()?
                    ),
                    callback_url: s.get("callback_url")?.as_str()?.to_string(),
                    expires_at: s
                        .get("expiration_time")
                        .and_then(Value::as_str)
                        .and_then(|t| parse_time(t).map(|t| t.0)),
                })
            })
            .collect()
    }

    fn renew_subscription(&self, endpoints: &Endpoints, id: &str) -> AppRequest {
        AppRequest {
            method: "PUT",
            path: format!("{SUBSCRIPTIONS}/renew/{id}"),
            headers: app_headers(endpoints),
            body: Value::Null,
            key: None,
        }
    }

    fn get_subscription(&self, endpoints: &Endpoints, id: &str) -> Option<AppRequest> {
        Some(AppRequest {
            method: "GET",
            path: format!("{SUBSCRIPTIONS}/{id}"),
            headers: app_headers(endpoints),
            body: Value::Null,
            key: None,
        })
    }

    /// Oura re-verifies the new callback URL with a challenge, hence the token.
    fn update_subscription(
        &self,
        endpoints: &Endpoints,
        id: &str,
        callback_url: &str,
    ) -> Option<AppRequest> {
        Some(AppRequest {
            method: "PUT",
            path: format!("{SUBSCRIPTIONS}/{id}"),
            headers: app_headers(endpoints),
            body: json!({"callback_url": callback_url,
                         "verification_token": verification_token(endpoints)}),
            key: None,
        })
    }

    fn delete_subscription(&self, endpoints: &Endpoints, id: &str) -> Option<AppRequest> {
        Some(AppRequest {
            method: "DELETE",
            path: format!("{SUBSCRIPTIONS}/{id}"),
            headers: app_headers(endpoints),
            body: Value::Null,
            key: None,
        })
    }

    fn challenge(
        &self,
        query: &BTreeMap<String, String>,
        endpoints: &Endpoints,
    ) -> Result<Value, WebhookError> {
        let token = query
            .get("verification_token")
            .ok_or(WebhookError::Signature)?;
        if !same(token.as_bytes(), verification_token(endpoints).as_bytes()) {
            return Err(WebhookError::Signature);
        }
        let challenge = query
            .get("challenge")
            .ok_or_else(|| WebhookError::Payload("challenge missing".into()))?;
        Ok(json!({ "challenge": challenge }))
    }
}

const SUBSCRIPTIONS: &str = "/v2/webhook/subscription";

/// Oura's subscription API authenticates the app by its client id and secret headers.
fn app_headers(endpoints: &Endpoints) -> Vec<(String, String)> {
    vec![
        ("x-client-id".into(), endpoints.client_id.clone()),
        ("x-client-secret".into(), endpoints.client_secret.clone()),
    ]
}

/// Data types Oura can ping about (its webhook names).
const WEBHOOK_TYPES: &[&str] = &[
    "workout",
    "sleep",
    "daily_sleep",
    "daily_readiness",
    "daily_activity",
    "daily_spo2",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{hmac_sha256, secret_only};
    use wearhouse_domain::records::DataSourceInfo;

    fn user() -> Uuid {
        Uuid::from_u128(1)
    }

    fn values(m: &Mapped, series: &str) -> Vec<(String, i16, f64, Option<bool>)> {
        m.samples
            .iter()
            .filter(|s| s.series == series)
            .map(|s| {
                (
                    s.time.to_rfc3339(),
                    s.zone_offset,
                    s.value,
                    s.is_daily_total,
                )
            })
            .collect()
    }

    #[test]
    fn daily_activity_is_daily_totals_at_local_midnight() {
        let body = json!({"data": [{
            "id": "a1", "day": "2026-03-01", "steps": 9120, "active_calories": 412,
            "equivalent_walking_distance": 7300, "high_activity_time": 600,
            "medium_activity_time": 1800, "low_activity_time": 9000,
            "timestamp": "2026-03-01T04:00:00+02:00"
        }], "next_token": null});
        let m = Oura.map("daily_activity", &body, user()).unwrap();
        let midnight = "2026-02-28T22:00:00+00:00".to_string();
        assert_eq!(
            values(&m, "steps"),
            vec![(midnight.clone(), 120, 9120.0, Some(true))]
        );
        assert_eq!(values(&m, "energy")[0].2, 412.0);
        // No total_calories in this day: no basal part is invented.
        assert!(values(&m, "basal_energy").is_empty());
        assert_eq!(values(&m, "distance_walking_running")[0].2, 7300.0);
        assert_eq!(
            values(&m, "active_time"),
            vec![(midnight, 120, 40.0, Some(true))]
        );
        assert_eq!(
            m.sources[0].id,
            DataSourceInfo::id_for(user(), "oura", None, Some("oura"))
        );
    }

    #[test]
    fn sleep_maps_session_stages_and_interval_series() {
        let body = json!({"data": [{
            "id": "s1", "day": "2026-03-02", "type": "long_sleep",
            "bedtime_start": "2026-03-01T23:00:00+01:00", "bedtime_end": "2026-03-02T00:00:00+01:00",
            "sleep_phase_5_min": "442211113333",
            "average_breath": 14.5, "lowest_heart_rate": 48,
            "heart_rate": {"interval": 300.0, "items": [55, null, 52], "timestamp": "2026-03-01T23:00:00+01:00"},
            "hrv": {"interval": 300.0, "items": [40, 42], "timestamp": "2026-03-01T23:00:00+01:00"}
        }]});
        let m = Oura.map("sleep", &body, user()).unwrap();
        let s = &m.sleep[0];
        assert_eq!(s.start.to_rfc3339(), "2026-03-01T22:00:00+00:00");
        assert_eq!(s.zone_offset, Some(60));
        assert!(!s.is_nap);
        let stages: Vec<(&str, i64)> = s
            .stages
            .iter()
            .map(|i| (i.stage.as_str(), (i.end - i.start).num_minutes()))
            .collect();
        assert_eq!(
            stages,
            vec![("awake", 10), ("light", 10), ("deep", 20), ("rem", 20)]
        );
        let hr = values(&m, "heart_rate");
        assert_eq!(hr.len(), 2, "null items are gaps");
        assert_eq!(hr[1].0, "2026-03-01T22:10:00+00:00");
        assert_eq!(hr[1].2, 52.0);
        assert_eq!(values(&m, "heart_rate_variability_rmssd").len(), 2);
        assert_eq!(values(&m, "respiratory_rate")[0].2, 14.5);
        assert_eq!(values(&m, "resting_heart_rate")[0].2, 48.0);
        let nap = json!({"data": [{"id": "n", "type": "late_nap",
            "bedtime_start": "2026-03-02T14:00:00+01:00", "bedtime_end": "2026-03-02T14:30:00+01:00"}]});
        assert!(Oura.map("sleep", &nap, user()).unwrap().sleep[0].is_nap);
    }

    #[test]
    fn heartrate_workout_spo2_readiness() {
        let hr = json!({"data": [{"bpm": 61, "source": "awake", "timestamp": "2026-03-01T08:00:00-05:00"}]});
        let m = Oura.map("heartrate", &hr, user()).unwrap();
        assert_eq!(
            values(&m, "heart_rate"),
            vec![("2026-03-01T13:00:00+00:00".into(), -300, 61.0, None)]
        );

        let w = json!({"data": [{"id": "w1", "activity": "running", "calories": 300.5, "distance": 5000.0,
            "start_datetime": "2026-03-01T07:00:00+02:00", "end_datetime": "2026-03-01T07:30:00+02:00"}]});
        let m = Oura.map("workout", &w, user()).unwrap();
        let wk = &m.workouts[0];
        assert_eq!(
            (wk.workout_type.as_str(), wk.zone_offset, wk.duration_s),
            ("running", Some(120), Some(1800.0))
        );
        assert_eq!(wk.stats["energy_kcal"], 300.5);
        assert_eq!(wk.stats["distance_m"], 5000.0);
        let unknown = json!({"data": [{"id": "w2", "activity": "frisbee_golf",
            "start_datetime": "2026-03-01T07:00:00Z", "end_datetime": "2026-03-01T07:30:00Z"}]});
        assert_eq!(
            Oura.map("workout", &unknown, user()).unwrap().workouts[0].workout_type,
            "other"
        );

        let spo2 = json!({"data": [{"day": "2026-03-01", "spo2_percentage": {"average": 96.5}, "breathing_disturbance_index": 3}]});
        let m = Oura.map("daily_spo2", &spo2, user()).unwrap();
        assert_eq!(values(&m, "oxygen_saturation")[0].2, 96.5);
        assert_eq!(values(&m, "breathing_disturbance_index")[0].2, 3.0);

        let r = json!({"data": [{"day": "2026-03-01", "temperature_deviation": -0.2, "temperature_trend_deviation": 0.1,
            "timestamp": "2026-03-01T00:00:00+09:00"}]});
        let m = Oura.map("daily_readiness", &r, user()).unwrap();
        assert_eq!(
            values(&m, "skin_temperature_deviation"),
            vec![("2026-02-28T15:00:00+00:00".into(), 540, -0.2, None)]
        );
    }

    #[test]
    fn scores_keep_their_contributors_and_local_day() {
        let act = json!({"data": [{"day": "2026-03-01", "score": 82, "steps": 1,
            "contributors": {"move_every_hour": 100, "meet_daily_targets": 60},
            "timestamp": "2026-03-01T04:00:00+02:00"}]});
        let m = Oura.map("daily_activity", &act, user()).unwrap();
        let s = &m.scores[0];
        assert_eq!(
            (s.category.as_str(), s.value, s.zone_offset),
            ("activity", Some(82.0), Some(120))
        );
        assert_eq!(s.recorded_at.to_rfc3339(), "2026-02-28T22:00:00+00:00");
        assert_eq!(s.components["move_every_hour"].value, Some(100.0));
        let sleep = json!({"data": [{"day": "2026-03-01", "score": 77, "contributors": {"deep_sleep": 90},
            "timestamp": "2026-03-01T00:00:00-07:00"}]});
        let m = Oura.map("daily_sleep", &sleep, user()).unwrap();
        assert_eq!(
            (m.scores[0].category.as_str(), m.scores[0].value),
            ("sleep", Some(77.0))
        );
        assert_eq!(
            m.scores[0].recorded_at.to_rfc3339(),
            "2026-03-01T07:00:00+00:00"
        );
        let ready = json!({"data": [{"day": "2026-03-01", "score": 70, "timestamp": "2026-03-01T00:00:00Z"}]});
        assert_eq!(
            Oura.map("daily_readiness", &ready, user()).unwrap().scores[0].category,
            "readiness"
        );
    }

    #[test]
    fn personal_info_is_a_snapshot_of_the_day_it_arrived() {
        let body = json!({"id": "u", "weight": 70.5, "height": 1.78});
        let at: DateTime<Utc> = "2026-03-01T15:30:00Z".parse().unwrap();
        let m = Oura
            .map_snapshot("personal_info", &body, user(), at)
            .unwrap()
            .unwrap();
        assert_eq!(
            values(&m, "weight"),
            vec![("2026-03-01T00:00:00+00:00".into(), 0, 70.5, None)]
        );
        assert!((values(&m, "height")[0].2 - 178.0).abs() < 1e-9);
        assert!(Oura.map_snapshot("sleep", &body, user(), at).is_none());
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        assert!(Oura.map("heartrate", &json!({"nope": 1}), user()).is_err());
        assert!(Oura
            .map("workout", &json!({"data": [{"id": "x"}]}), user())
            .is_err());
    }

    #[test]
    fn paging_carries_the_window_and_the_token() {
        let start = "2026-03-01T00:00:00Z".parse().unwrap();
        let end = "2026-03-08T00:00:00Z".parse().unwrap();
        let p = Oura.first_page("daily_activity", start, end);
        assert_eq!(p.path, "/v2/usercollection/daily_activity");
        assert_eq!(
            p.query,
            vec![
                ("start_date".into(), "2026-03-01".into()),
                ("end_date".into(), "2026-03-08".into())
            ]
        );
        let next = Oura
            .next_page(&p, &json!({"data": [], "next_token": "t2"}))
            .unwrap();
        assert_eq!(
            next.query.last().unwrap(),
            &("next_token".to_string(), "t2".to_string())
        );
        let again = Oura.next_page(&next, &json!({"next_token": "t3"})).unwrap();
        assert_eq!(
            again
                .query
                .iter()
                .filter(|(k, _)| k == "next_token")
                .count(),
            1
        );
        assert!(Oura
            .next_page(&p, &json!({"data": [], "next_token": null}))
            .is_none());
        let hr = Oura.first_page("heartrate", start, end);
        assert_eq!(hr.query[0].0, "start_datetime");
    }

    #[test]
    fn webhook_signature_challenge_and_notice() {
        let body =
            br#"{"event_type":"create","data_type":"sleep","object_id":"s1","user_id":"u-9"}"#;
        let sig = hex::encode(hmac_sha256(b"shh", &[b"1700000000", body])).to_uppercase();
        let mut h = BTreeMap::new();
        h.insert("x-oura-timestamp".to_string(), "1700000000".to_string());
        h.insert("x-oura-signature".to_string(), sig);
        assert_eq!(Oura.verify_webhook(&h, body, &secret_only("shh")), Ok(()));
        assert_eq!(
            Oura.verify_webhook(&h, body, &secret_only("other")),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            Oura.verify_webhook(&h, b"{}", &secret_only("shh")),
            Err(WebhookError::Signature)
        );
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            Oura.parse_webhook(&v).unwrap(),
            vec![Notice::Pull {
                provider_user_id: "u-9".into(),
                data_type: "sleep".into()
            }]
        );
        let ep = secret_only("shh");
        let mut q = BTreeMap::new();
        q.insert("verification_token".to_string(), "wrong".to_string());
        q.insert("challenge".to_string(), "abc".to_string());
        assert_eq!(Oura.challenge(&q, &ep), Err(WebhookError::Signature));
        q.insert("verification_token".to_string(), verification_token(&ep));
        assert_eq!(Oura.challenge(&q, &ep), Ok(json!({"challenge": "abc"})));
        let subs = Oura.subscription_requests(&ep, "https://me/hook");
        assert_eq!(subs.len(), 12);
        assert_eq!(subs[1].body["event_type"], "update");
        assert_eq!(
            subs[0].body["verification_token"],
            verification_token(&ep).as_str()
        );
        assert_eq!(subs[1].key.as_deref(), Some("workout/update"));
        let listed = json!([{"id": "s-1", "callback_url": "https://me/hook", "event_type": "update",
            "data_type": "sleep", "expiration_time": "2026-04-01T00:00:00+00:00"}]);
        let got = Oura.parse_subscriptions(&listed);
        assert_eq!(
            (got[0].id.as_str(), got[0].key.as_str()),
            ("s-1", "sleep/update")
        );
        assert_eq!(
            got[0].expires_at.unwrap().to_rfc3339(),
            "2026-04-01T00:00:00+00:00"
        );
        let renew = Oura.renew_subscription(&ep, "s-1");
        assert_eq!(
            (renew.method, renew.path.as_str()),
            ("PUT", "/v2/webhook/subscription/renew/s-1")
        );
    }
}
