//! Fitbit (Web API): OAuth with PKCE and the client credentials in Basic auth; logged
//! activities from `/1/user/-/activities/list.json` (`afterDate`, ascending, 100 a page),
//! following `pagination.next`. Fitbit allows 150 requests an hour per user.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::{record_id, WorkoutRecord};
use wearhouse_domain::workout_type::WorkoutType;

pub mod payload;
mod workouts;

use self::payload::{Activity, ActivityList, Profile};
use super::mapped::{after_secs, provider_source, shape};
use super::payload as lenient;
use super::{
    parse_time, ClientAuth, Coverage, MapError, Mapped, OAuthSettings, Provider, PullProvider,
    PullRequest, RateWindow, Revocation,
};

pub struct Fitbit;

const NAME: &str = "fitbit";
const DISPLAY: &str = "Fitbit";
/// The data type of logged activities.
pub const ACTIVITIES: &str = "activities";
const LIST: &str = "/1/user/-/activities/list.json";

/// Fitbit activity type id, else its name → workout type.
pub fn workout_type(type_id: Option<i64>, name: Option<&str>) -> &'static str {
    let by_id = match type_id {
        Some(90009) | Some(2131) => Some("running"),
        Some(91) => Some("treadmill"),
        Some(90013) => Some("walking"),
        Some(90001) => Some("cycling"),
        Some(90024) => Some("indoor_cycling"),
        Some(82) => Some("swimming"),
        Some(3000) => Some("strength_training"),
        Some(52001) => Some("yoga"),
        Some(1071) => Some("hiking"),
        Some(15) => Some("soccer"),
        Some(16) => Some("basketball"),
        Some(27) => Some("tennis"),
        Some(90019) => Some("other"),
        _ => None,
    };
    if let Some(t) = by_id {
        return t;
    }
    match name.map(|n| n.trim().to_lowercase()).as_deref() {
        Some("run" | "running") => "running",
        Some("treadmill") => "treadmill",
        Some("walk" | "walking") => "walking",
        Some("bike" | "cycling") => "cycling",
        Some("indoor cycling") => "indoor_cycling",
        Some("swim" | "swimming") => "swimming",
        Some("yoga") => "yoga",
        Some("pilates") => "pilates",
        Some("hike" | "hiking") => "hiking",
        Some("strength training" | "weights") => "strength_training",
        Some("tennis") => "tennis",
        Some("soccer") => "soccer",
        Some("basketball") => "basketball",
        Some("rowing") => "rowing",
        Some("elliptical") => "elliptical",
        Some("stair climbing") => "stair_climbing",
        Some("golf") => "golf",
        Some("dance") => "dance",
        Some("stretching") => "stretching",
        _ => "other",
    }
}

impl Provider for Fitbit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn oauth(&self) -> OAuthSettings {
        OAuthSettings {
            scopes: "activity heartrate sleep profile",
            pkce: true,
            user_info_path: Some("/1/user/-/profile.json"),
        }
    }

    fn provider_user_id(&self, user_info: &Value) -> Option<String> {
        let p: Profile = lenient::item(user_info);
        p.user
            .get()
            .and_then(|u| u.encoded_id.str())
            .map(String::from)
    }

    /// Fitbit's budget is per user and hour (see [`Provider::rate_windows`]).
    fn requests_per_minute(&self) -> Option<u32> {
        None
    }

    /// 150 requests per user per hour, reset at the top of the hour.
    fn rate_windows(&self) -> &'static [RateWindow] {
        &[RateWindow {
            requests: 150,
            window_secs: 3600,
            per_user: true,
        }]
    }

    fn token_auth(&self) -> ClientAuth {
        ClientAuth::Basic
    }

    fn revocation(&self) -> Option<Revocation> {
        Some(Revocation {
            endpoint: "revoke",
            token_field: "token",
            client_auth: ClientAuth::Basic,
        })
    }

    fn mapping_version(&self) -> u32 {
        1
    }

    fn coverage(&self) -> Coverage {
        Coverage {
            series: &[],
            workout_fields: &[
                "type",
                "start_time",
                "end_time",
                "zone_offset",
                "duration_seconds",
                "calories_kcal",
                "distance_meters",
                "avg_heart_rate_bpm",
            ],
            sleep_fields: &[],
            menstrual_cycle_fields: &[],
            scores: &[],
        }
    }

    fn map(&self, data_type: &str, body: &Value, user_id: Uuid) -> Result<Mapped, MapError> {
        if data_type != ACTIVITIES {
            return Err(MapError::UnknownType(data_type.into()));
        }
        let source = provider_source(user_id, NAME, DISPLAY);
        let ds = source.id;
        let mut m = Mapped {
            sources: vec![source],
            ..Mapped::default()
        };
        let page: Vec<Activity> =
            lenient::items(body, "activities").ok_or_else(|| shape(ACTIVITIES, "no activities"))?;
        for a in page {
            let id = a.log_id.to_string();
            let (start, offset) = a
                .start_time
                .str()
                .and_then(parse_time)
                .ok_or_else(|| shape(ACTIVITIES, "missing or bad startTime"))?;
            let secs = a.duration.num().unwrap_or(0.0) / 1000.0;
            let end = after_secs(start, secs);
            let mut stats = BTreeMap::new();
            for (k, v) in [
                ("heart_rate_avg", a.average_heart_rate.num()),
                ("energy_kcal", a.calories.num()),
                // Kilometers to meters.
                ("distance_m", a.distance.num().map(|km| km * 1000.0)),
                ("steps", a.steps.num()),
            ] {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    stats.insert(k.to_string(), v);
                }
            }
            let name = a.activity_name.str();
            let kind = workout_type(a.activity_type_id.num().map(|n| n as i64), name);
            let mut metadata = BTreeMap::new();
            metadata.insert("external_id".to_string(), id.clone());
            if let Some(n) = name {
                metadata.insert("fitbit_activity".to_string(), n.to_string());
            }
            if let Some(s) = a.source.get().and_then(|s| s.name.str()) {
                metadata.insert("device_name".to_string(), s.to_string());
            }
            m.workouts.push(WorkoutRecord {
                id: record_id(&[&ds.to_string(), "workout", &id]),
                data_source_id: ds,
                workout_type: WorkoutType::parse(kind)
                    .unwrap_or(WorkoutType::OTHER)
                    .as_str()
                    .into(),
                start,
                end,
                zone_offset: Some(offset),
                duration_s: Some((end - start).num_seconds() as f64),
                stats,
                metadata,
                laps: Vec::new(),
            });
        }
        Ok(m)
    }

    fn as_vendor_workouts(&self) -> Option<&dyn super::VendorWorkouts> {
        Some(self)
    }

    fn as_pull(&self) -> Option<&dyn PullProvider> {
        Some(self)
    }
}

impl PullProvider for Fitbit {
    fn data_types(&self) -> &'static [&'static str] {
        &[ACTIVITIES]
    }

    /// Fitbit takes one of `afterDate`/`beforeDate`: forward from the start, ascending.
    fn first_page(
        &self,
        _data_type: &str,
        start: DateTime<Utc>,
        _end: DateTime<Utc>,
    ) -> PullRequest {
        PullRequest {
            path: LIST.into(),
            query: vec![
                ("afterDate".into(), start.format("%Y-%m-%d").to_string()),
                ("sort".into(), "asc".into()),
                ("limit".into(), "100".into()),
                ("offset".into(), "0".into()),
            ],
        }
    }

    /// `pagination.next`'s query on the same endpoint (its host is Fitbit's, not ours to
    /// follow).
    fn next_page(&self, previous: &PullRequest, body: &Value) -> Option<PullRequest> {
        let list: ActivityList = lenient::item(body);
        if list.activities.is_empty() {
            return None;
        }
        let next = list
            .pagination
            .get()?
            .next
            .str()
            .filter(|s| !s.is_empty())?;
        let url = reqwest::Url::parse(next).ok()?;
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        (!query.is_empty()).then(|| PullRequest {
            path: previous.path.clone(),
            query,
        })
    }

    /// Stops once a page reaches past the window's last day.
    fn next_page_in(
        &self,
        previous: &PullRequest,
        body: &Value,
        _start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<PullRequest> {
        let list: ActivityList = lenient::item(body);
        let last_day = end.format("%Y-%m-%d").to_string();
        let past = list.activities.iter().any(|a| {
            a.get("startTime")
                .and_then(Value::as_str)
                .is_some_and(|t| t.get(..10).is_some_and(|d| d > last_day.as_str()))
        });
        if past {
            return None;
        }
        self.next_page(previous, body)
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

    #[test]
    fn activities_map_with_units_offset_and_type() {
        let body = json!({"activities": [
            {"logId": 51234567890u64, "activityName": "Run", "activityTypeId": 90009,
             "startTime": "2026-03-01T07:00:00.000-05:00", "duration": 1830000, "calories": 412,
             "distance": 5.25, "distanceUnit": "Kilometer", "steps": 6100, "averageHeartRate": 151,
             "source": {"id": "1", "name": "Charge 6", "type": "tracker"}},
            {"logId": 2, "activityName": "Stair Climbing", "activityTypeId": 123456,
             "startTime": "2026-03-02T18:00:00.000+09:00", "duration": 600000}
        ], "pagination": {"next": "", "offset": 0, "limit": 100}});
        let m = Fitbit.map(ACTIVITIES, &body, Uuid::from_u128(1)).unwrap();
        let w = &m.workouts[0];
        assert_eq!(w.workout_type, "running");
        assert_eq!(w.start.to_rfc3339(), "2026-03-01T12:00:00+00:00");
        assert_eq!(w.zone_offset, Some(-300));
        assert_eq!(w.duration_s, Some(1830.0));
        assert_eq!(w.stats["distance_m"], 5250.0);
        assert_eq!(w.stats["energy_kcal"], 412.0);
        assert_eq!(w.stats["heart_rate_avg"], 151.0);
        assert_eq!(w.metadata["external_id"], "51234567890");
        assert_eq!(m.workouts[1].workout_type, "stair_climbing");
        assert_eq!(m.workouts[1].zone_offset, Some(540));
        assert!(Fitbit.map(ACTIVITIES, &json!({}), Uuid::nil()).is_err());
    }

    #[test]
    fn paging_follows_next_until_past_the_window() {
        let start = "2026-03-01T00:00:00Z".parse().unwrap();
        let end = "2026-03-05T00:00:00Z".parse().unwrap();
        let p = Fitbit.first_page(ACTIVITIES, start, end);
        assert_eq!(p.path, LIST);
        assert_eq!(p.query[0], ("afterDate".into(), "2026-03-01".into()));
        let item = |t: &str| json!({"logId": 1, "startTime": t, "duration": 1});
        let body = json!({"activities": [item("2026-03-02T07:00:00.000+01:00")],
            "pagination": {"next": "https://api.fitbit.com/1/user/-/activities/list.json?afterDate=2026-03-01&sort=asc&limit=100&offset=100"}});
        let n = Fitbit.next_page_in(&p, &body, start, end).unwrap();
        assert_eq!((n.path.as_str(), n.query[3].1.as_str()), (LIST, "100"));
        let past = json!({"activities": [item("2026-03-06T07:00:00.000+01:00")],
            "pagination": {"next": "https://api.fitbit.com/x?offset=200"}});
        assert!(Fitbit.next_page_in(&p, &past, start, end).is_none());
        let last = json!({"activities": [item("2026-03-02T07:00:00.000+01:00")], "pagination": {"next": ""}});
        assert!(Fitbit.next_page_in(&p, &last, start, end).is_none());
        assert_eq!(workout_type(None, Some(" Weights ")), "strength_training");
    }
}
