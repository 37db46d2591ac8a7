//! Whoop (developer API v2): pull by instant window with `nextToken` paging (25 per page);
//! webhook pings verified by `X-WHOOP-Signature` = base64 HMAC-SHA256(client secret,
//! `X-WHOOP-Signature-Timestamp` + body).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::{
    record_id, RecordKind, SleepSessionRecord, SleepStageInterval, WorkoutRecord,
};
use wearhouse_domain::workout_type::WorkoutType;

pub mod payload;
mod workouts;

use serde::de::DeserializeOwned;

use self::payload::{BodyMeasurement, Recovery, Sleep, Workout};
use super::mapped::{body_snapshot, components, provider_source, shape};
use super::payload::{self as lenient, Text};
use super::{
    parse_offset, parse_webhook_timestamp, verify_timestamped_hmac, Coverage, DerivedSamples,
    Endpoints, MapError, Mapped, Notice, OAuthSettings, Provider, PullProvider, PullRequest,
    PushModes, PushProvider, PushedDeletes, SampleAnchor, WebhookError,
};

pub struct Whoop;

const NAME: &str = "whoop";
const TYPES: &[&str] = &["body", "recovery", "sleep", "workout"];
const KJ_PER_KCAL: f64 = 4.184;
/// The series a scored recovery maps to, from its resting heart rate, HRV, SpO2 and skin
/// temperature (in order).
const RECOVERY_SERIES: &[&str] = &[
    "resting_heart_rate",
    "heart_rate_variability_rmssd",
    "oxygen_saturation",
    "skin_temperature",
];

fn path(data_type: &str) -> &'static str {
    match data_type {
        "workout" => "/v2/activity/workout",
        "sleep" => "/v2/activity/sleep",
        "recovery" => "/v2/recovery",
        _ => "/v2/user/measurement/body",
    }
}

fn instant(v: &Text, k: &str, data_type: &str) -> Result<DateTime<Utc>, MapError> {
    v.str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| shape(data_type, format!("missing or bad {k}")))
}

fn records<T: DeserializeOwned + Default>(
    body: &Value,
    data_type: &str,
) -> Result<Vec<T>, MapError> {
    lenient::items(body, "records").ok_or_else(|| shape(data_type, "no records array"))
}

/// A webhook body's id field as text (Whoop sends numbers or strings).
fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A score's id follows the Whoop record it comes from (not its time), so the record's
/// `*.deleted` webhook, which carries only the record id, can name it.
fn score_id(ds: Uuid, category: &str, external_id: &str) -> Uuid {
    record_id(&[&ds.to_string(), "score", category, external_id])
}

/// Adds a score keyed by the Whoop record it belongs to.
#[allow(clippy::too_many_arguments)]
fn keyed_score(
    m: &mut Mapped,
    ds: Uuid,
    external_id: &str,
    category: &str,
    value: Option<f64>,
    at: DateTime<Utc>,
    offset: Option<i16>,
    parts: BTreeMap<String, wearhouse_domain::records::ScoreComponent>,
) {
    let before = m.scores.len();
    m.score(ds, category, value, None, at, offset, parts);
    if let Some(s) = m.scores.get_mut(before) {
        s.id = score_id(ds, category, external_id);
    }
}

impl Provider for Whoop {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        "Whoop"
    }

    fn oauth(&self) -> OAuthSettings {
        OAuthSettings {
            scopes: "offline read:cycles read:sleep read:recovery read:workout read:profile read:body_measurement",
            pkce: false,
            user_info_path: Some("/v2/user/profile/basic"),
        }
    }

    fn provider_user_id(&self, user_info: &Value) -> Option<String> {
        match user_info.get("user_id")? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Whoop allows 100 requests a minute per app.
    fn requests_per_minute(&self) -> Option<u32> {
        Some(100)
    }

    /// 2: score ids follow the Whoop record (workout, sleep, the recovery's sleep).
    fn mapping_version(&self) -> u32 {
        // 3: sleep stages from totals are flagged (`stages_from_totals`), never served as intervals.
        3
    }

    fn coverage(&self) -> Coverage {
        Coverage {
            series: &[
                "resting_heart_rate",
                "heart_rate_variability_rmssd",
                "oxygen_saturation",
                "skin_temperature",
                "respiratory_rate",
            ],
            workout_fields: super::WORKOUT_FIELDS,
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
            scores: &["recovery", "sleep", "strain"],
        }
    }

    fn map(&self, data_type: &str, body: &Value, user_id: Uuid) -> Result<Mapped, MapError> {
        let source = provider_source(user_id, NAME, "Whoop");
        let ds = source.id;
        let mut m = Mapped {
            sources: vec![source],
            ..Mapped::default()
        };
        if data_type == "body" {
            // Timeless: mapped by `map_snapshot` with the time the response arrived.
            return Ok(m);
        }
        match data_type {
            "workout" => {
                for v in records::<Workout>(body, data_type)? {
                    let Some(score) = v.scored() else { continue };
                    let start = instant(&v.start, "start", data_type)?;
                    let end = instant(&v.end, "end", data_type)?;
                    let offset = v.timezone_offset.str().and_then(parse_offset);
                    let sport = v.sport_name.str().unwrap_or("");
                    let mut stats = BTreeMap::new();
                    for (k, val) in [
                        ("heart_rate_avg", score.average_heart_rate.num()),
                        ("heart_rate_max", score.max_heart_rate.num()),
                        (
                            "energy_kcal",
                            score.kilojoule.num().map(|kj| kj / KJ_PER_KCAL),
                        ),
                        ("distance_m", score.distance_meter.num()),
                        ("elevation_gain_m", score.altitude_gain_meter.num()),
                        ("strain", score.strain.num()),
                    ] {
                        if let Some(val) = val {
                            stats.insert(k.to_string(), val);
                        }
                    }
                    let id = v.id.to_string();
                    keyed_score(
                        &mut m,
                        ds,
                        &id,
                        "strain",
                        score.strain.num(),
                        start,
                        offset,
                        Default::default(),
                    );
                    let mut metadata = BTreeMap::new();
                    metadata.insert("external_id".into(), id.clone());
                    metadata.insert("whoop_sport".into(), sport.into());
                    m.workouts.push(WorkoutRecord {
                        id: record_id(&[&ds.to_string(), "workout", &id]),
                        data_source_id: ds,
                        workout_type: WorkoutType::parse(sport)
                            .unwrap_or(WorkoutType::OTHER)
                            .as_str()
                            .into(),
                        start,
                        end,
                        zone_offset: offset,
                        duration_s: Some((end - start).num_seconds() as f64),
                        stats,
                        metadata,
                        laps: Vec::new(),
                    });
                }
            }
            "sleep" => {
                for v in records::<Sleep>(body, data_type)? {
                    let start = instant(&v.start, "start", data_type)?;
                    let end = instant(&v.end, "end", data_type)?;
                    let offset = v.timezone_offset.str().and_then(parse_offset);
                    let id = v.id.to_string();
                    let score = v.scored();
                    let mut stages = Vec::new();
                    if let Some(sum) = score.and_then(|s| s.stage_summary.get()) {
                        // Whoop gives per-stage totals only; they are laid end to end from the
                        // start so stage minutes stay exact even though their order is not known.
                        let mut at = start;
                        for (stage, total) in [
                            ("awake", &sum.total_awake_time_milli),
                            ("light", &sum.total_light_sleep_time_milli),
                            ("deep", &sum.total_slow_wave_sleep_time_milli),
                            ("rem", &sum.total_rem_sleep_time_milli),
                        ] {
                            let ms = total.num().unwrap_or(0.0) as i64;
                            if ms > 0 {
                                let to = super::mapped::after_secs(at, ms as f64 / 1000.0);
                                stages.push(SleepStageInterval {
                                    stage: stage.into(),
                                    start: at,
                                    end: to,
                                });
                                at = to;
                            }
                        }
                    }
                    if let Some(score) = score {
                        keyed_score(
                            &mut m,
                            ds,
                            &id,
                            "sleep",
                            score.sleep_performance_percentage.num(),
                            end,
                            offset,
                            components(&[
                                (
                                    "sleep_efficiency_percentage",
                                    score.sleep_efficiency_percentage.num(),
                                ),
                                (
                                    "sleep_consistency_percentage",
                                    score.sleep_consistency_percentage.num(),
                                ),
                                ("respiratory_rate", score.respiratory_rate.num()),
                            ]),
                        );
                    }
                    if let Some(rr) = score.and_then(|s| s.respiratory_rate.num()) {
                        m.sample(
                            "respiratory_rate",
                            ds,
                            start,
                            Some(end),
                            offset.unwrap_or(0),
                            rr,
                            None,
                        );
                    }
                    m.sleep.push(SleepSessionRecord {
                        id: record_id(&[&ds.to_string(), "sleep", &id]),
                        data_source_id: ds,
                        start,
                        end,
                        zone_offset: offset,
                        is_nap: v.nap.get().copied().unwrap_or(false),
                        stages_from_totals: !stages.is_empty(),
                        stages,
                    });
                }
            }
            "recovery" => {
                for v in records::<Recovery>(body, data_type)? {
                    let Some(score) = v.scored() else { continue };
                    // Recovery has no own time; it belongs to the cycle it was created in.
                    let at = instant(&v.created_at, "created_at", data_type)?;
                    // Whoop names a recovery by its sleep (its webhooks carry the sleep id).
                    let key = match v.sleep_id.to_string() {
                        k if k.is_empty() => v.cycle_id.to_string(),
                        k => k,
                    };
                    keyed_score(
                        &mut m,
                        ds,
                        &key,
                        "recovery",
                        score.recovery_score.num(),
                        at,
                        None,
                        components(&[
                            ("resting_heart_rate", score.resting_heart_rate.num()),
                            ("hrv_rmssd_milli", score.hrv_rmssd_milli.num()),
                            ("spo2_percentage", score.spo2_percentage.num()),
                            ("skin_temp_celsius", score.skin_temp_celsius.num()),
                        ]),
                    );
                    let values = [
                        &score.resting_heart_rate,
                        &score.hrv_rmssd_milli,
                        &score.spo2_percentage,
                        &score.skin_temp_celsius,
                    ];
                    for (series, val) in RECOVERY_SERIES.iter().zip(values) {
                        if let Some(val) = val.num() {
                            m.sample(series, ds, at, None, 0, val, None);
                        }
                    }
                }
            }
            other => {
                // An unknown type is refused only when there is something to map.
                if !records::<Value>(body, data_type)?.is_empty() {
                    return Err(MapError::UnknownType(other.into()));
                }
            }
        }
        Ok(m)
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
}

impl PullProvider for Whoop {
    fn data_types(&self) -> &'static [&'static str] {
        TYPES
    }

    fn first_page(&self, data_type: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> PullRequest {
        let query = if data_type == "body" {
            vec![]
        } else {
            vec![
                ("start".into(), start.to_rfc3339()),
                ("end".into(), end.to_rfc3339()),
                ("limit".into(), "25".into()),
            ]
        };
        PullRequest {
            path: path(data_type).into(),
            query,
        }
    }

    fn next_page(&self, previous: &PullRequest, body: &Value) -> Option<PullRequest> {
        let token = body.get("next_token").and_then(Value::as_str)?;
        let mut query: Vec<(String, String)> = previous
            .query
            .iter()
            .filter(|(k, _)| k != "nextToken")
            .cloned()
            .collect();
        query.push(("nextToken".into(), token.into()));
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
        (data_type == "body").then(|| {
            let body: BodyMeasurement = lenient::item(body);
            Ok(body_snapshot(
                user_id,
                NAME,
                "Whoop",
                received_at,
                body.weight_kilogram.num(),
                body.height_meter.num().map(|m| m * 100.0),
            ))
        })
    }
}

impl PushProvider for Whoop {
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
            ("x-whoop-signature", "x-whoop-signature-timestamp"),
            |sig| STANDARD.decode(sig).ok(),
        )
    }

    fn webhook_timestamp(&self, headers: &BTreeMap<String, String>) -> Option<DateTime<Utc>> {
        headers
            .get("x-whoop-signature-timestamp")
            .and_then(|t| parse_webhook_timestamp(t))
    }

    fn parse_webhook(&self, body: &Value) -> Result<Vec<Notice>, WebhookError> {
        let user = match body.get("user_id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => return Err(WebhookError::Payload("user_id missing".into())),
        };
        let kind = body
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| WebhookError::Payload("type missing".into()))?;
        let (data_type, event) = kind.split_once('.').unwrap_or((kind, ""));
        if !TYPES.contains(&data_type) {
            return Ok(vec![]);
        }
        if event == "deleted" {
            let external_id = text(body, "id");
            if external_id.is_empty() {
                return Err(WebhookError::Payload("id missing".into()));
            }
            return Ok(vec![Notice::Deleted {
                provider_user_id: user,
                data_type: data_type.into(),
                external_id,
            }]);
        }
        Ok(vec![Notice::Pull {
            provider_user_id: user,
            data_type: data_type.into(),
        }])
    }

    /// Whoop pings (and says what it deleted); the data is pulled.
    fn modes(&self) -> PushModes {
        PushModes {
            ping: true,
            ..PushModes::default()
        }
    }

    fn as_deletes(&self) -> Option<&dyn PushedDeletes> {
        Some(self)
    }
}

impl PushedDeletes for Whoop {
    fn deleted_records(
        &self,
        data_type: &str,
        external_id: &str,
        user_id: Uuid,
    ) -> Vec<(RecordKind, Uuid)> {
        let ds = provider_source(user_id, NAME, "Whoop").id;
        let record = |kind: &str| record_id(&[&ds.to_string(), kind, external_id]);
        match data_type {
            "workout" => vec![
                (RecordKind::Workout, record("workout")),
                (RecordKind::HealthScore, score_id(ds, "strain", external_id)),
            ],
            "sleep" => vec![
                (RecordKind::Sleep, record("sleep")),
                (RecordKind::HealthScore, score_id(ds, "sleep", external_id)),
            ],
            "recovery" => vec![(
                RecordKind::HealthScore,
                score_id(ds, "recovery", external_id),
            )],
            _ => vec![],
        }
    }

    fn deleted_samples(
        &self,
        data_type: &str,
        external_id: &str,
        user_id: Uuid,
    ) -> Option<DerivedSamples> {
        let ds = provider_source(user_id, NAME, "Whoop").id;
        // The series and instants `map` gives them: a recovery's vitals at its `created_at`
        // (its score's time), a sleep's respiratory rate at the sleep's start.
        match data_type {
            "recovery" => Some(DerivedSamples {
                data_source_id: ds,
                series: RECOVERY_SERIES,
                at: SampleAnchor::ScoreTime(score_id(ds, "recovery", external_id)),
            }),
            "sleep" => Some(DerivedSamples {
                data_source_id: ds,
                series: &["respiratory_rate"],
                at: SampleAnchor::SleepStart(record_id(&[&ds.to_string(), "sleep", external_id])),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{hmac_sha256, secret_only};
    use serde_json::json;

    fn user() -> Uuid {
        Uuid::from_u128(2)
    }

    #[test]
    fn scored_workouts_only_with_kcal_and_offset() {
        let body = json!({"records": [
            {"id": "w-1", "start": "2026-03-01T12:00:00.000Z", "end": "2026-03-01T13:00:00.000Z",
             "timezone_offset": "-05:00", "sport_name": "running", "score_state": "SCORED",
             "score": {"strain": 12.5, "average_heart_rate": 150, "max_heart_rate": 181,
                       "kilojoule": 2092.0, "distance_meter": 10000.0, "altitude_gain_meter": 42.0}},
            {"id": "w-2", "start": "2026-03-01T15:00:00Z", "end": "2026-03-01T16:00:00Z",
             "sport_name": "cycling", "score_state": "PENDING_SCORE"}
        ], "next_token": null});
        let m = Whoop.map("workout", &body, user()).unwrap();
        assert_eq!(m.workouts.len(), 1);
        let w = &m.workouts[0];
        assert_eq!(
            (w.workout_type.as_str(), w.zone_offset, w.duration_s),
            ("running", Some(-300), Some(3600.0))
        );
        assert!((w.stats["energy_kcal"] - 500.0).abs() < 1e-9);
        assert_eq!(w.stats["heart_rate_avg"], 150.0);
        assert_eq!(w.stats["elevation_gain_m"], 42.0);
        assert_eq!(
            (m.scores[0].category.as_str(), m.scores[0].value),
            ("strain", Some(12.5))
        );
    }

    #[test]
    fn sleep_stage_totals_and_nap_flag() {
        let body = json!({"records": [{"id": "s-1", "start": "2026-03-01T04:00:00Z", "end": "2026-03-01T12:00:00Z",
            "timezone_offset": "-04:00", "nap": false, "score_state": "SCORED",
            "score": {"respiratory_rate": 15.2, "stage_summary": {"total_in_bed_time_milli": 28800000,
              "total_awake_time_milli": 1800000, "total_light_sleep_time_milli": 12600000,
              "total_slow_wave_sleep_time_milli": 6000000, "total_rem_sleep_time_milli": 7200000}}}]});
        let m = Whoop.map("sleep", &body, user()).unwrap();
        let s = &m.sleep[0];
        assert_eq!(s.zone_offset, Some(-240));
        // Totals laid end to end, flagged so they are never served as a timeline.
        assert!(s.stages_from_totals);
        let mins: Vec<(&str, i64)> = s
            .stages
            .iter()
            .map(|i| (i.stage.as_str(), (i.end - i.start).num_minutes()))
            .collect();
        assert_eq!(
            mins,
            vec![("awake", 30), ("light", 210), ("deep", 100), ("rem", 120)]
        );
        assert_eq!(m.samples[0].value, 15.2);
    }

    #[test]
    fn body_is_a_snapshot() {
        let at: DateTime<Utc> = "2026-03-01T15:30:00Z".parse().unwrap();
        let body = json!({"height_meter": 1.8, "weight_kilogram": 80.0, "max_heart_rate": 190});
        let m = Whoop
            .map_snapshot("body", &body, user(), at)
            .unwrap()
            .unwrap();
        let got: Vec<(&str, f64)> = m.samples.iter().map(|s| (s.series, s.value)).collect();
        assert_eq!(got, vec![("weight", 80.0), ("height", 180.0)]);
    }

    #[test]
    fn recovery_values() {
        let body = json!({"records": [{"cycle_id": 9, "created_at": "2026-03-01T11:00:00Z", "score_state": "SCORED",
            "score": {"recovery_score": 66, "resting_heart_rate": 52, "hrv_rmssd_milli": 61.3,
                      "spo2_percentage": 95.1, "skin_temp_celsius": 33.7}}]});
        let m = Whoop.map("recovery", &body, user()).unwrap();
        let score = &m.scores[0];
        assert_eq!(
            (score.category.as_str(), score.value),
            ("recovery", Some(66.0))
        );
        assert_eq!(score.components["hrv_rmssd_milli"].value, Some(61.3));
        let got: Vec<(&str, f64)> = m.samples.iter().map(|s| (s.series, s.value)).collect();
        assert_eq!(
            got,
            vec![
                ("resting_heart_rate", 52.0),
                ("heart_rate_variability_rmssd", 61.3),
                ("oxygen_saturation", 95.1),
                ("skin_temperature", 33.7)
            ]
        );
    }

    #[test]
    fn deletions_name_the_record_and_its_score() {
        let body = json!({"records": [
            {"id": "w-9", "start": "2026-03-01T12:00:00Z", "end": "2026-03-01T13:00:00Z",
             "sport_name": "running", "score_state": "SCORED", "score": {"strain": 8.0}}]});
        let m = Whoop.map("workout", &body, user()).unwrap();
        let gone = Whoop.deleted_records("workout", "w-9", user());
        assert_eq!(
            gone,
            vec![
                (RecordKind::Workout, m.workouts[0].id),
                (RecordKind::HealthScore, m.scores[0].id)
            ]
        );
        let rec = json!({"records": [{"cycle_id": 9, "sleep_id": "s-9", "created_at": "2026-03-01T11:00:00Z",
            "score_state": "SCORED", "score": {"recovery_score": 50}}]});
        let m = Whoop.map("recovery", &rec, user()).unwrap();
        assert_eq!(
            Whoop.deleted_records("recovery", "s-9", user()),
            vec![(RecordKind::HealthScore, m.scores[0].id)]
        );
        // The derived samples named for the delete are exactly the recovery's mapped samples.
        let gone = Whoop.deleted_samples("recovery", "s-9", user()).unwrap();
        assert_eq!(gone.at, SampleAnchor::ScoreTime(m.scores[0].id));
        let rec_full = json!({"records": [{"cycle_id": 9, "sleep_id": "s-9", "created_at": "2026-03-01T11:00:00Z",
            "score_state": "SCORED", "score": {"recovery_score": 50, "resting_heart_rate": 51,
            "hrv_rmssd_milli": 60.5, "spo2_percentage": 95.5, "skin_temp_celsius": 33.1}}]});
        let full = Whoop.map("recovery", &rec_full, user()).unwrap();
        let mapped: Vec<&str> = full.samples.iter().map(|s| s.series).collect();
        assert_eq!(mapped, gone.series.to_vec());
        assert!(full.samples.iter().all(
            |s| s.time == full.scores[0].recorded_at && s.data_source_id == gone.data_source_id
        ));
        let sl = json!({"records": [{"id": "s-9", "start": "2026-03-01T04:00:00Z", "end": "2026-03-01T12:00:00Z",
            "score_state": "SCORED", "score": {"respiratory_rate": 15.0}}]});
        let sm = Whoop.map("sleep", &sl, user()).unwrap();
        let gone = Whoop.deleted_samples("sleep", "s-9", user()).unwrap();
        assert_eq!(gone.at, SampleAnchor::SleepStart(sm.sleep[0].id));
        assert_eq!(gone.series, &[sm.samples[0].series]);
        assert_eq!(sm.samples[0].time, sm.sleep[0].start);
        assert!(Whoop.deleted_samples("workout", "w-9", user()).is_none());
        let v = json!({"user_id": 10129, "id": "s-9", "type": "recovery.deleted", "trace_id": "t"});
        assert_eq!(
            Whoop.parse_webhook(&v).unwrap(),
            vec![Notice::Deleted {
                provider_user_id: "10129".into(),
                data_type: "recovery".into(),
                external_id: "s-9".into()
            }]
        );
        let mut h = BTreeMap::new();
        h.insert(
            "x-whoop-signature-timestamp".to_string(),
            "1700000000000".to_string(),
        );
        assert_eq!(
            Whoop.webhook_timestamp(&h).map(|t| t.timestamp()),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn paging_and_webhooks() {
        let p = Whoop.first_page(
            "sleep",
            "2026-03-01T00:00:00Z".parse().unwrap(),
            "2026-03-02T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(p.path, "/v2/activity/sleep");
        let n = Whoop.next_page(&p, &json!({"next_token": "abc"})).unwrap();
        assert_eq!(n.query.last().unwrap().1, "abc");
        assert!(Whoop.next_page(&p, &json!({"records": []})).is_none());

        let body = br#"{"user_id":10129,"id":"s-1","type":"sleep.updated","trace_id":"t"}"#;
        let sig = STANDARD.encode(hmac_sha256(b"shh", &[b"1700000000000", body]));
        let mut h = BTreeMap::new();
        h.insert("x-whoop-signature".to_string(), sig);
        h.insert(
            "x-whoop-signature-timestamp".to_string(),
            "1700000000000".to_string(),
        );
        assert_eq!(Whoop.verify_webhook(&h, body, &secret_only("shh")), Ok(()));
        assert_eq!(
            Whoop.verify_webhook(&h, body, &secret_only("nope")),
            Err(WebhookError::Signature)
        );
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            Whoop.parse_webhook(&v).unwrap(),
            vec![Notice::Pull {
                provider_user_id: "10129".into(),
                data_type: "sleep".into()
            }]
        );
    }
}
