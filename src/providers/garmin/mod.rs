//! Garmin (Health API): OAuth 2 with PKCE, data delivered by push. History comes from backfill
//! requests (`/wellness-api/rest/backfill/{type}`) whose results Garmin pushes to the webhook;
//! Garmin allows at most 30 days before the user's consent and answers 409 to a repeated
//! timeframe. Garmin does not sign pushes: a delivery must carry our client id in the
//! `garmin-client-id` header (upstream only checks that the header exists).
//!
//! Times are `…InSeconds` (UTC epoch) with `…OffsetInSeconds` giving the local offset.

mod activity;
mod fit;
pub mod payload;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::{record_id, SleepSessionRecord, SleepStageInterval};

use self::payload::{Daily, Hrv, Nap, Offsets, SleepSummary};
use super::mapped::{after_secs, local_midnight, provider_source, shape};
use super::payload::{self as lenient, Lenient, Num};
use super::{
    same, BackfillProvider, Coverage, Endpoints, FileDownload, MapError, Mapped, Notice,
    OAuthSettings, Provider, PullRequest, PushModes, PushProvider, PushedFiles, WebhookError,
};
use wearhouse_domain::records::ScoreComponent;

mod mct;
mod workouts;

pub struct Garmin;

const NAME: &str = "garmin";

/// Push payload keys this mapping understands (each a list of summaries).
pub(crate) const PUSH_TYPES: &[&str] = &[
    "dailies",
    "epochs",
    "sleeps",
    "activities",
    "hrv",
    "bodyComps",
    "stressDetails",
    "allDayRespiration",
    "pulseox",
    "userMetrics",
    "bloodPressures",
    "skinTemp",
    "healthSnapshot",
    "activityDetails",
    "activityFiles",
    "moveIQActivities",
    "mct",
];

/// Types whose history is requested by backfill, as upstream orchestrates them.
const BACKFILL_TYPES: &[&str] = &["sleeps", "dailies", "activities", "activityDetails", "hrv"];

/// How long a requested backfill type may take to arrive by push before it counts as timed out
/// (upstream waits 300 s per type).
pub const BACKFILL_WAIT_SECS: i64 = 300;

/// A backfill type's state: `done` once its data arrived by push (or the timeframe was already
/// requested), `failed` when the request
/// failed, `timed_out` when nothing came within the wait, else `pending`.
pub fn backfill_type_status(
    requested: Option<&str>,
    arrived: bool,
    waited: Duration,
) -> &'static str {
    match (arrived, requested) {
        // Garmin answers 409 to a timeframe it already accepted: counted as done, as upstream.
        (true, _) | (false, Some("duplicate")) => "done",
        (false, Some("failed")) => "failed",
        (false, Some(_)) if waited > Duration::seconds(BACKFILL_WAIT_SECS) => "timed_out",
        _ => "pending",
    }
}

/// The backfill's overall state from its run's status and its types' states.
pub fn backfill_overall(run_status: &str, types: &[&str]) -> &'static str {
    match run_status {
        "in_progress" => "in_progress",
        "failed" => "permanently_failed",
        _ if types.iter().all(|s| *s != "pending") => "complete",
        _ => "in_progress",
    }
}

/// The backfill type names, for the status and retry endpoints.
pub fn backfill_type_names() -> Vec<String> {
    BACKFILL_TYPES.iter().map(|t| t.to_string()).collect()
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn secs(s: f64) -> DateTime<Utc> {
    DateTime::from_timestamp(s as i64, 0).unwrap_or_default()
}

/// (start, offset minutes) from `{prefix}TimeInSeconds` and `{prefix}TimeOffsetInSeconds`.
fn start(v: &Value, prefix: &str, data_type: &str) -> Result<(DateTime<Utc>, i16), MapError> {
    let t = f(v, &format!("{prefix}TimeInSeconds"))
        .ok_or_else(|| shape(data_type, format!("missing {prefix}TimeInSeconds")))?;
    let off = f(v, &format!("{prefix}TimeOffsetInSeconds")).unwrap_or(0.0);
    Ok((secs(t), (off / 60.0) as i16))
}

/// (start, offset minutes) from a typed summary's time and offset fields (`prefix` names them
/// in the error).
fn start_of(
    t: &Num,
    off: &Num,
    prefix: &str,
    data_type: &str,
) -> Result<(DateTime<Utc>, i16), MapError> {
    let t = t
        .num()
        .ok_or_else(|| shape(data_type, format!("missing {prefix}TimeInSeconds")))?;
    let off = off.num().unwrap_or(0.0);
    Ok((secs(t), (off / 60.0) as i16))
}

/// A typed offsets map as (time, value), sorted, without Garmin's negative "no reading"
/// markers.
fn offsets_of(o: &Offsets, t0: DateTime<Utc>) -> Vec<(DateTime<Utc>, f64)> {
    let mut out: Vec<(DateTime<Utc>, f64)> = o
        .get()
        .into_iter()
        .flatten()
        .filter_map(|(k, val)| {
            let s: f64 = k.parse().ok()?;
            let x = val.num().filter(|x| *x >= 0.0)?;
            Some((after_secs(t0, s), x))
        })
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

/// `{"<seconds after start>": value}` maps into (time, value), skipping Garmin's negative
/// "no reading" markers.
fn offsets(v: &Value, key: &str, t0: DateTime<Utc>) -> Vec<(DateTime<Utc>, f64)> {
    let mut out: Vec<(DateTime<Utc>, f64)> = v
        .get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, val)| {
            let s: f64 = k.parse().ok()?;
            let x = val.as_f64().filter(|x| *x >= 0.0)?;
            Some((after_secs(t0, s), x))
        })
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

/// One entry of a sleep summary's `naps` (`napStartTimeInSeconds`, `napDurationInSeconds`,
/// `napOffsetInSeconds`, `napValidation`) as a nap session; `None` without a start or a duration
/// (upstream skips those too). Garmin gives no stages for a nap: the whole nap counts as
/// unstaged sleep, so its sleep time is its duration, as upstream records it.
fn nap_session(
    nap: &Nap,
    ds: Uuid,
    summary_id: &str,
    sleep_offset: i16,
) -> Option<SleepSessionRecord> {
    let t = nap.nap_start_time_in_seconds.num().filter(|t| *t > 0.0)?;
    let d = nap.nap_duration_in_seconds.num().filter(|d| *d > 0.0)?;
    let off = nap
        .nap_offset_in_seconds
        .num()
        .map(|o| (o / 60.0) as i16)
        .unwrap_or(sleep_offset);
    let (start, end) = (secs(t), secs(t + d));
    // Naps have no id of their own: the parent summary and the start name one, stable across
    // redeliveries of the same summary.
    let start_key = (t as i64).to_string();
    Some(SleepSessionRecord {
        id: record_id(&[&ds.to_string(), "sleep", summary_id, "nap", &start_key]),
        data_source_id: ds,
        start,
        end,
        zone_offset: Some(off),
        is_nap: true,
        stages: vec![SleepStageInterval {
            stage: "sleeping".into(),
            start,
            end,
        }],
        // The one span stands for the nap's duration, not for a timeline Garmin sent.
        stages_from_totals: true,
    })
}

impl Garmin {
    fn map_item(
        &self,
        data_type: &str,
        v: &Value,
        ds: Uuid,
        m: &mut Mapped,
    ) -> Result<(), MapError> {
        match data_type {
            "dailies" => {
                let v: Daily = lenient::item(v);
                let (t0, off) = start_of(
                    &v.start_time_in_seconds,
                    &v.start_time_offset_in_seconds,
                    "start",
                    data_type,
                )?;
                let end = v.duration_in_seconds.num().map(|d| after_secs(t0, d));
                for (series, value) in [
                    ("steps", v.steps.num()),
                    ("energy", v.active_kilocalories.num()),
                    ("basal_energy", v.bmr_kilocalories.num()),
                    ("flights_climbed", v.floors_climbed.num()),
                    ("distance_walking_running", v.distance_in_meters.num()),
                    (
                        "active_time",
                        v.active_time_in_seconds.num().map(|s| s / 60.0),
                    ),
                ] {
                    if let Some(x) = value {
                        m.sample(series, ds, t0, end, off, x, Some(true));
                    }
                }
                m.score(
                    ds,
                    "stress",
                    v.average_stress_level.num(),
                    v.stress_qualifier.0.clone(),
                    t0,
                    Some(off),
                    Default::default(),
                );
                if let Some(x) = v.resting_heart_rate_in_beats_per_minute.num() {
                    m.sample("resting_heart_rate", ds, t0, end, off, x, None);
                }
                for (t, x) in offsets_of(&v.time_offset_heart_rate_samples, t0) {
                    m.sample("heart_rate", ds, t, None, off, x, None);
                }
            }
            "epochs" => {
                let (t0, off) = start(v, "start", data_type)?;
                let end = f(v, "durationInSeconds").map(|d| after_secs(t0, d));
                for (series, value, additive) in [
                    ("steps", f(v, "steps"), true),
                    ("energy", f(v, "activeKilocalories"), true),
                    ("heart_rate", f(v, "meanHeartRateInBeatsPerMinute"), false),
                ] {
                    if let Some(x) = value {
                        // Epochs are intraday: never daily totals, so summaries prefer dailies.
                        m.sample(series, ds, t0, end, off, x, additive.then_some(false));
                    }
                }
            }
            "sleeps" => {
                let v: SleepSummary = lenient::item(v);
                let (t0, off) = start_of(
                    &v.start_time_in_seconds,
                    &v.start_time_offset_in_seconds,
                    "start",
                    data_type,
                )?;
                let mut end = after_secs(t0, v.duration_in_seconds.num().unwrap_or(0.0));
                let mut stages = Vec::new();
                for (stage, list) in v.sleep_levels_map.get().into_iter().flatten() {
                    let stage = match stage.as_str() {
                        "deep" | "light" | "rem" | "awake" => stage.clone(),
                        _ => continue,
                    };
                    for i in list.get().into_iter().flatten().filter_map(Lenient::get) {
                        if let (Some(a), Some(b)) =
                            (i.start_time_in_seconds.num(), i.end_time_in_seconds.num())
                        {
                            stages.push(SleepStageInterval {
                                stage: stage.clone(),
                                start: secs(a),
                                end: secs(b),
                            });
                        }
                    }
                }
                stages.sort_by_key(|s| s.start);
                // Stage intervals can run past the summary's duration; the session covers them.
                if let Some(last) = stages.iter().map(|s| s.end).max() {
                    end = end.max(last);
                }
                let parts = v
                    .sleep_scores
                    .get()
                    .into_iter()
                    .flatten()
                    .map(|(k, c)| {
                        let component = ScoreComponent {
                            value: c.get().and_then(|c| c.value.num()),
                            qualifier: c.get().and_then(|c| c.qualifier_key.0.clone()),
                        };
                        (k.clone(), component)
                    })
                    .collect();
                let overall = v.overall_sleep_score.get();
                let qualifier = overall.and_then(|o| o.qualifier_key.0.clone());
                let value = overall.and_then(|o| o.value.num());
                m.score(ds, "sleep", value, qualifier, end, Some(off), parts);
                let id = v.summary_id.str().unwrap_or_default();
                m.sleep.push(SleepSessionRecord {
                    id: record_id(&[&ds.to_string(), "sleep", id]),
                    data_source_id: ds,
                    start: t0,
                    end,
                    zone_offset: Some(off),
                    is_nap: false,
                    stages,
                    stages_from_totals: false,
                });
                // Garmin lists the day's naps inside the sleep summary (`naps`); each is its own
                // session, flagged as a nap by the provider, so it never merges into the night.
                for nap in v.naps.get().into_iter().flatten().filter_map(Lenient::get) {
                    if let Some(s) = nap_session(nap, ds, id, off) {
                        m.sleep.push(s);
                    }
                }
            }
            "activities" => {
                m.workouts
                    .push(activity::summary_workout(&lenient::item(v), ds, data_type)?)
            }
            "hrv" => {
                let v: Hrv = lenient::item(v);
                let (t0, off) = start_of(
                    &v.start_time_in_seconds,
                    &v.start_time_offset_in_seconds,
                    "start",
                    data_type,
                )?;
                if let Some(x) = v.last_night_avg.num() {
                    m.sample("heart_rate_variability_rmssd", ds, t0, None, off, x, None);
                }
                for (t, x) in offsets_of(&v.hrv_values, t0) {
                    // The nightly average sits at the start; an interval value there is the same
                    // instant and would overwrite it, so intervals start after it.
                    if t > t0 {
                        m.sample("heart_rate_variability_rmssd", ds, t, None, off, x, None);
                    }
                }
            }
            "bodyComps" => {
                let (t, off) = start(v, "measurement", data_type)?;
                for (series, value) in [
                    ("weight", f(v, "weightInGrams").map(|g| g / 1000.0)),
                    ("body_fat_percentage", f(v, "bodyFatInPercent")),
                    ("body_mass_index", f(v, "bodyMassIndex")),
                    (
                        "skeletal_muscle_mass",
                        f(v, "muscleMassInGrams").map(|g| g / 1000.0),
                    ),
                ] {
                    if let Some(x) = value {
                        m.sample(series, ds, t, None, off, x, None);
                    }
                }
            }
            "stressDetails" => {
                let (t0, off) = start(v, "start", data_type)?;
                for (t, x) in offsets(v, "timeOffsetStressLevelValues", t0) {
                    m.sample("garmin_stress_level", ds, t, None, off, x, None);
                }
                for (t, x) in offsets(v, "timeOffsetBodyBatteryValues", t0) {
                    m.sample("garmin_body_battery", ds, t, None, off, x, None);
                }
            }
            "allDayRespiration" => {
                let (t0, off) = start(v, "start", data_type)?;
                for (t, x) in offsets(v, "timeOffsetEpochToBreaths", t0) {
                    m.sample("respiratory_rate", ds, t, None, off, x, None);
                }
            }
            "pulseox" => {
                let (t0, off) = start(v, "start", data_type)?;
                for (t, x) in offsets(v, "timeOffsetSpo2Values", t0) {
                    m.sample("oxygen_saturation", ds, t, None, off, x, None);
                }
            }
            "userMetrics" => {
                let day: NaiveDate = v
                    .get("calendarDate")
                    .and_then(Value::as_str)
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| shape(data_type, "missing calendarDate"))?;
                let t = local_midnight(day, 0);
                if let Some(x) = f(v, "vo2Max") {
                    m.sample("vo2_max", ds, t, None, 0, x, None);
                }
                if let Some(x) = f(v, "fitnessAge") {
                    m.sample("garmin_fitness_age", ds, t, None, 0, x, None);
                }
            }
            "bloodPressures" => {
                let t = f(v, "measurementTimestampGMT")
                    .map(secs)
                    .ok_or_else(|| shape(data_type, "missing measurementTimestampGMT"))?;
                let off = f(v, "measurementTimestampLocal")
                    .zip(f(v, "measurementTimestampGMT"))
                    .map(|(l, g)| ((l - g) / 60.0) as i16)
                    .unwrap_or(0);
                if let Some(x) = f(v, "systolic") {
                    m.sample("blood_pressure_systolic", ds, t, None, off, x, None);
                }
                if let Some(x) = f(v, "diastolic") {
                    m.sample("blood_pressure_diastolic", ds, t, None, off, x, None);
                }
            }
            "skinTemp" => {
                let (t, off) = start(v, "start", data_type)?;
                if let Some(x) = f(v, "avgDeviationCelsius") {
                    m.sample("skin_temperature_deviation", ds, t, None, off, x, None);
                }
            }
            "healthSnapshot" => {
                let (t0, off) = start(v, "start", data_type)?;
                for sm in v
                    .get("summaries")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let series = match sm.get("summaryType").and_then(Value::as_str) {
                        Some("heart_rate") => "heart_rate",
                        Some("stress") => "garmin_stress_level",
                        Some("spo2") => "oxygen_saturation",
                        Some("respiration") => "respiratory_rate",
                        Some("rmssd_hrv") => "heart_rate_variability_rmssd",
                        Some("sdnn_hrv") => "heart_rate_variability_sdnn",
                        _ => continue,
                    };
                    let end = f(v, "durationInSeconds").map(|d| after_secs(t0, d));
                    if let Some(x) = f(sm, "avgValue") {
                        m.sample(series, ds, t0, end, off, x, None);
                    }
                }
            }
            // Upstream ingests these only when asked (INGEST_WORKOUT_SAMPLES), to spare its
            // row-per-sample table; samples here are compressed batches, so they always are.
            "activityDetails" => activity::details(v, ds, m)?,
            // The notice only points at the file; its records come from the downloaded file
            // (see `file_downloads` and `map_file`).
            "activityFiles" => {}
            // Move IQ detects walks and runs the user did not record. The contract keeps them
            // as `activity` events that are not exposed and never counts them as workouts
            // (they have no metrics, and would double the recorded activities); wearhouse
            // keeps the pushed body raw, so a later mapping version can still read them.
            "moveIQActivities" => {}
            "mct" => m.cycles.push(mct::cycle(v, ds)?),
            other => return Err(MapError::UnknownType(other.into())),
        }
        Ok(())
    }
}

impl Provider for Garmin {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        "Garmin"
    }

    fn oauth(&self) -> OAuthSettings {
        OAuthSettings {
            // Permissions are granted in Garmin's developer portal, not by scope.
            scopes: "",
            pkce: true,
            user_info_path: Some("/wellness-api/rest/user/id"),
        }
    }

    fn provider_user_id(&self, user_info: &Value) -> Option<String> {
        user_info
            .get("userId")
            .and_then(Value::as_str)
            .map(String::from)
    }

    /// Garmin's evaluation budget is 100 requests a minute per app.
    fn requests_per_minute(&self) -> Option<u32> {
        Some(100)
    }

    /// 2: activity details, activity files and laps.
    fn mapping_version(&self) -> u32 {
        // 3: a nap's single stage span is flagged (`stages_from_totals`), never served as intervals.
        3
    }

    fn coverage(&self) -> Coverage {
        Coverage {
            series: &[
                "steps",
                "energy",
                "basal_energy",
                "distance_walking_running",
                "active_time",
                "flights_climbed",
                "heart_rate",
                "resting_heart_rate",
                "heart_rate_variability_rmssd",
                "heart_rate_variability_sdnn",
                "respiratory_rate",
                "oxygen_saturation",
                "vo2_max",
                "weight",
                "body_fat_percentage",
                "body_mass_index",
                "skeletal_muscle_mass",
                "blood_pressure_systolic",
                "blood_pressure_diastolic",
                "skin_temperature_deviation",
                "garmin_stress_level",
                "garmin_body_battery",
                "garmin_fitness_age",
                "speed",
                "cadence",
                "power",
                "elevation",
                "latitude",
                "longitude",
                "air_temperature",
            ],
            workout_fields: super::WORKOUT_FIELDS,
            sleep_fields: super::SLEEP_FIELDS,
            menstrual_cycle_fields: mct::FIELDS,
            scores: &["sleep", "stress"],
        }
    }

    fn map(&self, data_type: &str, body: &Value, user_id: Uuid) -> Result<Mapped, MapError> {
        let source = provider_source(user_id, NAME, "Garmin");
        let ds = source.id;
        let mut m = Mapped {
            sources: vec![source],
            ..Mapped::default()
        };
        let items = body
            .as_array()
            .ok_or_else(|| shape(data_type, "not a list of summaries"))?;
        for v in items {
            self.map_item(data_type, v, ds, &mut m)?;
        }
        Ok(m)
    }

    fn as_vendor_workouts(&self) -> Option<&dyn super::VendorWorkouts> {
        Some(self)
    }

    fn as_push(&self) -> Option<&dyn PushProvider> {
        Some(self)
    }

    fn as_backfill(&self) -> Option<&dyn BackfillProvider> {
        Some(self)
    }
}

impl PushProvider for Garmin {
    fn verify_webhook(
        &self,
        headers: &BTreeMap<String, String>,
        _body: &[u8],
        endpoints: &Endpoints,
    ) -> Result<(), WebhookError> {
        let given = headers
            .get("garmin-client-id")
            .ok_or(WebhookError::Signature)?;
        if !endpoints.client_id.is_empty() && same(given.as_bytes(), endpoints.client_id.as_bytes())
        {
            Ok(())
        } else {
            Err(WebhookError::Signature)
        }
    }

    fn parse_webhook(&self, body: &Value) -> Result<Vec<Notice>, WebhookError> {
        let obj = body
            .as_object()
            .ok_or_else(|| WebhookError::Payload("not a JSON object".into()))?;
        let mut out = Vec::new();
        for (key, list) in obj {
            let Some(items) = list.as_array() else {
                continue;
            };
            if key == "userPermissionsChange" {
                for i in items {
                    if let Some(u) = i.get("userId").and_then(Value::as_str) {
                        let granted: Vec<&str> = i
                            .get("permissions")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        out.push(Notice::ScopeChanged {
                            provider_user_id: u.into(),
                            scope: granted.join(" "),
                        });
                    }
                }
                continue;
            }
            if key == "deregistrations" {
                for i in items {
                    if let Some(u) = i.get("userId").and_then(Value::as_str) {
                        out.push(Notice::Deregistered {
                            provider_user_id: u.into(),
                        });
                    }
                }
                continue;
            }
            if !PUSH_TYPES.contains(&key.as_str()) {
                continue;
            }
            // One notice per (user, type), keeping the order of arrival.
            let mut per_user: Vec<(String, Vec<Value>)> = Vec::new();
            for i in items {
                let Some(u) = i.get("userId").and_then(Value::as_str) else {
                    return Err(WebhookError::Payload(format!("{key} item without userId")));
                };
                // Ping mode: no data, a callback to fetch it from (activity files also carry
                // a callback, to the file itself: those stay pushes with a download).
                if key != "activityFiles" && i.get("uploadStartTimeInSeconds").is_some() {
                    if let Some(url) = i.get("callbackURL").and_then(Value::as_str) {
                        out.push(Notice::Fetch {
                            provider_user_id: u.into(),
                            data_type: key.clone(),
                            url: url.into(),
                        });
                        continue;
                    }
                }
                match per_user.iter_mut().find(|(x, _)| x == u) {
                    Some((_, v)) => v.push(i.clone()),
                    None => per_user.push((u.to_string(), vec![i.clone()])),
                }
            }
            for (u, v) in per_user {
                out.push(Notice::Data {
                    provider_user_id: u,
                    data_type: key.clone(),
                    items: Value::Array(v),
                });
            }
        }
        Ok(out)
    }

    /// Garmin pushes the records, or a callback to fetch them from (ping mode).
    fn modes(&self) -> PushModes {
        PushModes {
            stream: true,
            callback: true,
            ..PushModes::default()
        }
    }

    /// Garmin's pushes are not timestamped (nor signed).
    fn webhook_timestamp(&self, _: &BTreeMap<String, String>) -> Option<DateTime<Utc>> {
        None
    }

    fn as_files(&self) -> Option<&dyn PushedFiles> {
        Some(self)
    }
}

impl PushedFiles for Garmin {
    fn file_downloads(&self, data_type: &str, items: &Value) -> Vec<FileDownload> {
        if data_type == "activityFiles" {
            activity::file_downloads(items)
        } else {
            vec![]
        }
    }

    fn map_file(
        &self,
        kind: &str,
        bytes: &[u8],
        user_id: Uuid,
    ) -> Option<Result<Mapped, MapError>> {
        let (file_type, activity_id) = activity::parse_file_kind(kind)?;
        let source = provider_source(user_id, NAME, "Garmin");
        let ds = source.id;
        let mut m = Mapped {
            sources: vec![source],
            ..Mapped::default()
        };
        // TCX and GPX files are kept raw but not read yet: Garmin sends FIT unless an app asked
        // otherwise, and the FIT file holds everything the other two do.
        if file_type == "FIT" {
            if let Err(e) = fit::map_fit(bytes, ds, activity_id, &mut m) {
                return Some(Err(e));
            }
        } else {
            m.sources.clear();
        }
        Some(Ok(m))
    }
}

impl BackfillProvider for Garmin {
    fn backfill_types(&self) -> &'static [&'static str] {
        BACKFILL_TYPES
    }

    fn backfill_request(
        &self,
        data_type: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<PullRequest> {
        BACKFILL_TYPES.contains(&data_type).then(|| PullRequest {
            path: format!("/wellness-api/rest/backfill/{data_type}"),
            query: vec![
                (
                    "summaryStartTimeInSeconds".into(),
                    start.timestamp().to_string(),
                ),
                (
                    "summaryEndTimeInSeconds".into(),
                    end.timestamp().to_string(),
                ),
            ],
        })
    }

    /// At most 30 days before the user's consent.
    fn max_historical_days(&self) -> u32 {
        30
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Uuid {
        Uuid::from_u128(3)
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

    // 2026-03-01T00:00:00 at -05:00 is 05:00 UTC.
    const DAY: i64 = 1_772_341_200;

    #[test]
    fn dailies_are_daily_totals_with_heart_rate_samples() {
        let body = json!([{"userId": "g1", "summaryId": "d1", "calendarDate": "2026-03-01",
            "startTimeInSeconds": DAY, "startTimeOffsetInSeconds": -18000, "durationInSeconds": 86400,
            "steps": 10234, "distanceInMeters": 7800.5, "activeTimeInSeconds": 3600,
            "activeKilocalories": 512, "bmrKilocalories": 1650, "floorsClimbed": 7,
            "restingHeartRateInBeatsPerMinute": 52, "timeOffsetHeartRateSamples": {"0": 61, "15": 63}}]);
        let m = Garmin.map("dailies", &body, user()).unwrap();
        assert_eq!(
            values(&m, "steps"),
            vec![(
                "2026-03-01T05:00:00+00:00".into(),
                -300,
                10234.0,
                Some(true)
            )]
        );
        assert_eq!(values(&m, "active_time")[0].2, 60.0);
        assert_eq!(values(&m, "flights_climbed")[0].2, 7.0);
        assert_eq!(values(&m, "basal_energy")[0].2, 1650.0);
        assert_eq!(values(&m, "resting_heart_rate")[0].3, None);
        let hr = values(&m, "heart_rate");
        assert_eq!(
            hr[1],
            ("2026-03-01T05:00:15+00:00".into(), -300, 63.0, None)
        );
    }

    #[test]
    fn epochs_are_intraday() {
        let body = json!([{"userId": "g1", "summaryId": "e1", "startTimeInSeconds": DAY + 900,
            "startTimeOffsetInSeconds": -18000, "durationInSeconds": 900, "steps": 120,
            "activeKilocalories": 8.5, "meanHeartRateInBeatsPerMinute": 88}]);
        let m = Garmin.map("epochs", &body, user()).unwrap();
        assert_eq!(values(&m, "steps")[0].3, Some(false));
        assert_eq!(values(&m, "heart_rate")[0].3, None);
        assert_eq!(
            m.samples[0].end.unwrap() - m.samples[0].time,
            Duration::seconds(900)
        );
    }

    #[test]
    fn sleeps_take_stage_intervals_and_extend_to_them() {
        let s = DAY - 3600 * 2;
        let body = json!([{"userId": "g1", "summaryId": "s1", "startTimeInSeconds": s,
            "startTimeOffsetInSeconds": -18000, "durationInSeconds": 3600,
            "overallSleepScore": {"value": 83, "qualifierKey": "GOOD"},
            "sleepScores": {"remPercentage": {"qualifierKey": "EXCELLENT"}},
            "sleepLevelsMap": {"light": [{"startTimeInSeconds": s, "endTimeInSeconds": s + 1800}],
                "deep": [{"startTimeInSeconds": s + 1800, "endTimeInSeconds": s + 3600}],
                "rem": [{"startTimeInSeconds": s + 3600, "endTimeInSeconds": s + 4200}]}}]);
        let m = Garmin.map("sleeps", &body, user()).unwrap();
        let sl = &m.sleep[0];
        assert_eq!(sl.zone_offset, Some(-300));
        assert_eq!((sl.end - sl.start).num_seconds(), 4200);
        let stages: Vec<&str> = sl.stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(stages, vec!["light", "deep", "rem"]);
        let score = &m.scores[0];
        assert_eq!(
            (
                score.category.as_str(),
                score.value,
                score.qualifier.as_deref()
            ),
            ("sleep", Some(83.0), Some("GOOD"))
        );
        assert_eq!(
            score.components["remPercentage"].qualifier.as_deref(),
            Some("EXCELLENT")
        );
    }

    #[test]
    fn sleep_summary_naps_become_nap_sessions() {
        let s = DAY - 3600 * 2;
        let nap_at = DAY + 14 * 3600;
        let body = json!([{"userId": "g1", "summaryId": "s2", "startTimeInSeconds": s,
            "startTimeOffsetInSeconds": -18000, "durationInSeconds": 25200,
            "naps": [{"napStartTimeInSeconds": nap_at, "napDurationInSeconds": 1500,
                      "napOffsetInSeconds": -18000, "napValidation": "DEVICE"},
                     {"napDurationInSeconds": 600}]}]);
        let m = Garmin.map("sleeps", &body, user()).unwrap();
        assert_eq!(m.sleep.len(), 2, "the night and one complete nap");
        let (night, nap) = (&m.sleep[0], &m.sleep[1]);
        assert!(!night.is_nap);
        assert_eq!((night.end - night.start).num_seconds(), 25200);
        assert!(nap.is_nap);
        assert_eq!(nap.start.timestamp(), nap_at);
        assert_eq!((nap.end - nap.start).num_seconds(), 1500);
        assert_eq!(nap.zone_offset, Some(-300));
        assert_eq!(nap.stages.len(), 1);
        assert_eq!(nap.stages[0].stage, "sleeping");
        assert_ne!(nap.id, night.id);
        // The same summary delivered again names the same nap.
        assert_eq!(
            Garmin.map("sleeps", &body, user()).unwrap().sleep[1].id,
            nap.id
        );
    }

    #[test]
    fn activities_body_and_series() {
        let a = json!([{"userId": "g1", "summaryId": "a1", "activityId": 987, "activityType": "RUNNING",
            "startTimeInSeconds": DAY + 7200, "startTimeOffsetInSeconds": 3600, "durationInSeconds": 1800,
            "averageHeartRateInBeatsPerMinute": 151, "maxHeartRateInBeatsPerMinute": 178,
            "activeKilocalories": 320, "distanceInMeters": 5000.0, "deviceName": "Forerunner 265"}]);
        let m = Garmin.map("activities", &a, user()).unwrap();
        let w = &m.workouts[0];
        assert_eq!(
            (w.workout_type.as_str(), w.zone_offset, w.duration_s),
            ("running", Some(60), Some(1800.0))
        );
        assert_eq!(w.stats["heart_rate_avg"], 151.0);
        assert_eq!(w.metadata["external_id"], "987");
        let b = json!([{"userId": "g1", "measurementTimeInSeconds": DAY, "measurementTimeOffsetInSeconds": 0,
            "weightInGrams": 72500, "bodyFatInPercent": 18.5, "bodyMassIndex": 22.4, "muscleMassInGrams": 33000}]);
        let m = Garmin.map("bodyComps", &b, user()).unwrap();
        assert_eq!(values(&m, "weight")[0].2, 72.5);
        assert_eq!(values(&m, "skeletal_muscle_mass")[0].2, 33.0);
        let st = json!([{"userId": "g1", "startTimeInSeconds": DAY, "startTimeOffsetInSeconds": 0,
            "timeOffsetStressLevelValues": {"0": 25, "180": -1, "360": 40},
            "timeOffsetBodyBatteryValues": {"0": 80}}]);
        let m = Garmin.map("stressDetails", &st, user()).unwrap();
        assert_eq!(
            values(&m, "garmin_stress_level").len(),
            2,
            "negative readings are gaps"
        );
        assert_eq!(values(&m, "garmin_body_battery")[0].2, 80.0);
        let h = json!([{"userId": "g1", "startTimeInSeconds": DAY, "startTimeOffsetInSeconds": 0,
            "lastNightAvg": 44, "hrvValues": {"300": 40, "600": 48}}]);
        assert_eq!(
            values(
                &Garmin.map("hrv", &h, user()).unwrap(),
                "heart_rate_variability_rmssd"
            )
            .len(),
            3
        );
        let bp = json!([{"userId": "g1", "measurementTimestampGMT": DAY, "measurementTimestampLocal": DAY + 7200,
            "systolic": 121, "diastolic": 79}]);
        let hs = json!([{"userId": "g1", "startTimeInSeconds": DAY, "startTimeOffsetInSeconds": 0, "durationInSeconds": 120,
            "summaries": [{"summaryType": "heart_rate", "avgValue": 64.0}, {"summaryType": "sdnn_hrv", "avgValue": 51.0},
                          {"summaryType": "unknown", "avgValue": 1.0}]}]);
        let m = Garmin.map("healthSnapshot", &hs, user()).unwrap();
        assert_eq!(values(&m, "heart_rate")[0].2, 64.0);
        assert_eq!(values(&m, "heart_rate_variability_sdnn")[0].2, 51.0);
        assert_eq!(m.samples.len(), 2);
        let m = Garmin.map("bloodPressures", &bp, user()).unwrap();
        assert_eq!(values(&m, "blood_pressure_systolic")[0].1, 120);
        let um = json!([{"userId": "g1", "calendarDate": "2026-03-01", "vo2Max": 48.0, "fitnessAge": 31}]);
        assert_eq!(
            values(&Garmin.map("userMetrics", &um, user()).unwrap(), "vo2_max")[0].2,
            48.0
        );
    }

    #[test]
    fn pushes_split_per_user_and_type_and_need_our_client_id() {
        let body = json!({"dailies": [{"userId": "a", "x": 1}, {"userId": "b"}, {"userId": "a"}],
                          "deregistrations": [{"userId": "c"}], "somethingNew": [{"userId": "a"}]});
        let n = Garmin.parse_webhook(&body).unwrap();
        assert_eq!(n.len(), 3);
        assert!(
            matches!(&n[0], Notice::Data { provider_user_id, items, .. } if provider_user_id == "a" && items.as_array().unwrap().len() == 2)
        );
        assert!(n.contains(&Notice::Deregistered {
            provider_user_id: "c".into()
        }));
        assert!(Garmin
            .parse_webhook(&json!({"dailies": [{"x": 1}]}))
            .is_err());
        let ep = Endpoints {
            client_id: "cid".into(),
            ..Endpoints::default()
        };
        let mut h = BTreeMap::new();
        assert_eq!(
            Garmin.verify_webhook(&h, b"", &ep),
            Err(WebhookError::Signature)
        );
        h.insert("garmin-client-id".to_string(), "other".to_string());
        assert_eq!(
            Garmin.verify_webhook(&h, b"", &ep),
            Err(WebhookError::Signature)
        );
        h.insert("garmin-client-id".to_string(), "cid".to_string());
        assert_eq!(Garmin.verify_webhook(&h, b"", &ep), Ok(()));
    }

    #[test]
    fn backfill_states() {
        let short = Duration::seconds(10);
        let long = Duration::seconds(BACKFILL_WAIT_SECS + 1);
        assert_eq!(backfill_type_status(Some("requested"), true, long), "done");
        assert_eq!(
            backfill_type_status(Some("duplicate"), false, short),
            "done"
        );
        assert_eq!(
            backfill_type_status(Some("requested"), false, short),
            "pending"
        );
        assert_eq!(
            backfill_type_status(Some("requested"), false, long),
            "timed_out"
        );
        assert_eq!(backfill_type_status(Some("failed"), false, long), "failed");
        assert_eq!(backfill_type_status(None, false, long), "pending");
        assert_eq!(
            backfill_overall("success", &["done", "timed_out"]),
            "complete"
        );
        assert_eq!(
            backfill_overall("success", &["done", "pending"]),
            "in_progress"
        );
        assert_eq!(
            backfill_overall("failed", &["failed"]),
            "permanently_failed"
        );
        assert_eq!(backfill_overall("in_progress", &[]), "in_progress");
    }

    #[test]
    fn backfill_requests_carry_the_window() {
        let s: DateTime<Utc> = "2026-02-01T00:00:00Z".parse().unwrap();
        let e: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        let r = Garmin.backfill_request("sleeps", s, e).unwrap();
        assert_eq!(r.path, "/wellness-api/rest/backfill/sleeps");
        assert_eq!(
            r.query[0],
            (
                "summaryStartTimeInSeconds".into(),
                s.timestamp().to_string()
            )
        );
        assert!(Garmin.backfill_request("epochs", s, e).is_none());
        assert!(Garmin.oauth().pkce);
    }
}
