//! Strava (API v3): activities pulled from `/athlete/activities` (`after`/`before` epoch window,
//! `page`/`per_page`), each with its streams (heart rate, speed, cadence, power). Webhooks
//! carry no data and no verifiable signature: an event only names an activity, which is then
//! fetched back with the athlete's token, so a forged event brings nothing that Strava does not
//! hold; `X-Strava-Signature`'s `t=` is checked for freshness against replays. One app-level
//! push subscription, verified by a `hub.challenge` GET.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;
use wearhouse_domain::records::{record_id, RecordKind, WorkoutRecord};
use wearhouse_domain::workout_type::WorkoutType;

pub mod payload;
mod workouts;

use self::payload::{Activity, Event, PushSubscription, Stream, StreamSet};
use super::mapped::{after_secs, provider_source, shape};
use super::payload::{self as lenient, Lenient};
use super::{
    same, verification_token, AppRequest, ClientAuth, Coverage, DerivedSamples, Endpoints,
    MapError, Mapped, Notice, OAuthSettings, Provider, PullProvider, PullRequest, PushModes,
    PushProvider, PushedDeletes, RateWindow, Revocation, SampleAnchor, Subscription,
    SubscriptionProvider, WebhookError,
};

pub struct Strava;

const NAME: &str = "strava";
const DISPLAY: &str = "Strava";
/// The data type of activities (list pages, and one activity fetched by id).
pub const ACTIVITY: &str = "activity";
/// Kind prefix of an activity's streams: `streams/{activity id}/{start, Unix s}/{offset, s}`.
/// The streams only count seconds from the start, so the kind carries the start and offset
/// their mapping needs (the stored raw payload replays alone).
pub const STREAMS: &str = "streams";
/// Activities per list page (Strava's maximum).
pub const PER_PAGE: u32 = 200;
const KCAL_PER_KJ: f64 = 1.0 / 4.184;
/// Stream keys asked for, time axis first.
pub const STREAM_KEYS: &str = "time,heartrate,velocity_smooth,cadence,watts";
/// The series the streams map to.
const STREAM_SERIES: &[&str] = &["heart_rate", "speed", "cadence", "power"];

/// Strava `sport_type` (or legacy `type`) → workout type; `None`: not a known sport.
pub fn workout_type(sport: &str) -> Option<&'static str> {
    Some(match sport {
        "Run" | "VirtualRun" => "running",
        "TrailRun" => "trail_running",
        "Ride" | "GravelRide" | "Velomobile" | "Handcycle" => "cycling",
        "MountainBikeRide" => "mountain_biking",
        "EBikeRide" | "EMountainBikeRide" => "e_biking",
        "VirtualRide" => "indoor_cycling",
        "Swim" => "swimming",
        "Walk" => "walking",
        "Hike" => "hiking",
        "AlpineSki" => "alpine_skiing",
        "BackcountrySki" => "backcountry_skiing",
        "NordicSki" | "RollerSki" => "cross_country_skiing",
        "Snowboard" => "snowboarding",
        "Snowshoe" => "snowshoeing",
        "IceSkate" => "ice_skating",
        "Rowing" => "rowing",
        "Kayaking" => "kayaking",
        "Canoeing" => "canoeing",
        "StandUpPaddling" => "stand_up_paddleboarding",
        "Surfing" => "surfing",
        "Kitesurf" => "kitesurfing",
        "Windsurf" => "windsurfing",
        "Sail" => "sailing",
        "WeightTraining" => "strength_training",
        "Yoga" => "yoga",
        "Pilates" => "pilates",
        "Crossfit" | "HighIntensityIntervalTraining" => "cardio_training",
        "Elliptical" => "elliptical",
        "StairStepper" => "stair_climbing",
        "Pickleball" => "pickleball",
        "Racquetball" => "racquetball",
        "Squash" => "squash",
        "Badminton" => "badminton",
        "TableTennis" => "table_tennis",
        "Tennis" => "tennis",
        "Soccer" => "soccer",
        "RockClimbing" => "rock_climbing",
        "Golf" => "golf",
        "Skateboard" => "skateboarding",
        "InlineSkate" => "inline_skating",
        "Wheelchair" => "wheelchair",
        "Workout" => "generic",
        "VirtualRow" => "rowing_machine",
        _ => return None,
    })
}

/// The activities of a response: a list page (a JSON array) or one activity (an object).
fn activities(body: &Value) -> Result<Vec<Activity>, MapError> {
    match body {
        Value::Array(a) => Ok(a.iter().map(lenient::item).collect()),
        Value::Object(_) => Ok(vec![lenient::item(body)]),
        _ => Err(shape(
            ACTIVITY,
            "neither a list of activities nor an activity",
        )),
    }
}

fn start_of(a: &Activity) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(a.start_date.str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Minutes east of UTC from Strava's `utc_offset` seconds.
fn offset_minutes(a: &Activity) -> Option<i16> {
    a.utc_offset
        .num()
        .filter(|s| s.abs() <= 18.0 * 3600.0)
        .map(|s| (s / 60.0).round() as i16)
}

/// The kind under which an activity's streams are fetched and stored.
pub fn streams_kind(id: &str, start: DateTime<Utc>, offset_secs: i64) -> String {
    format!("{STREAMS}/{id}/{}/{offset_secs}", start.timestamp())
}

/// (activity id, start, offset in minutes) from a streams kind.
fn parse_streams_kind(kind: &str) -> Option<(&str, DateTime<Utc>, i16)> {
    let mut parts = kind.strip_prefix(STREAMS)?.strip_prefix('/')?.split('/');
    let id = parts.next().filter(|s| !s.is_empty())?;
    let start = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
    let offset: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || offset.abs() > 18 * 3600 {
        return None;
    }
    Some((id, start, (offset / 60) as i16))
}

fn workout_id(ds: Uuid, id: &str) -> Uuid {
    record_id(&[&ds.to_string(), "workout", id])
}

impl Strava {
    fn map_activity(&self, a: &Activity, ds: Uuid, m: &mut Mapped) -> Result<(), MapError> {
        let id = a.id.to_string();
        if id.is_empty() {
            return Err(shape(ACTIVITY, "activity without id"));
        }
        let start = start_of(a).ok_or_else(|| shape(ACTIVITY, "missing or bad start_date"))?;
        let elapsed = a.elapsed_time.num().unwrap_or(0.0);
        let end = after_secs(start, elapsed);
        let sport = a.sport_type.str().unwrap_or("");
        let kind = workout_type(sport)
            .or_else(|| workout_type(a.kind.str().unwrap_or("")))
            .and_then(WorkoutType::parse)
            .unwrap_or(WorkoutType::OTHER);
        // Strava's own calories when it has them (the detail), else the work done converted.
        let kcal = a
            .calories
            .num()
            .filter(|c| *c > 0.0)
            .or_else(|| a.kilojoules.num().map(|kj| kj * KCAL_PER_KJ));
        let mut stats = BTreeMap::new();
        for (k, v) in [
            ("heart_rate_avg", a.average_heartrate.num()),
            ("heart_rate_max", a.max_heartrate.num()),
            ("distance_m", a.distance.num()),
            ("energy_kcal", kcal),
            ("elevation_gain_m", a.total_elevation_gain.num()),
            ("elevation_high_m", a.elev_high.num()),
            ("elevation_low_m", a.elev_low.num()),
            ("speed_avg_mps", a.average_speed.num()),
            ("speed_max_mps", a.max_speed.num()),
            ("cadence_avg", a.average_cadence.num()),
            ("power_avg_w", a.average_watts.num()),
            ("power_max_w", a.max_watts.num()),
            ("moving_time_s", a.moving_time.num()),
        ] {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                stats.insert(k.to_string(), v);
            }
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("external_id".to_string(), id.clone());
        metadata.insert("strava_sport_type".to_string(), sport.to_string());
        for (k, v) in [
            ("name", a.name.str()),
            ("device_name", a.device_name.str()),
            ("timezone", a.timezone.str()),
        ] {
            if let Some(v) = v {
                metadata.insert(k.to_string(), v.to_string());
            }
        }
        m.workouts.push(WorkoutRecord {
            id: workout_id(ds, &id),
            data_source_id: ds,
            workout_type: kind.as_str().into(),
            start,
            end,
            zone_offset: offset_minutes(a),
            duration_s: Some(elapsed.clamp(0.0, (end - start).num_seconds() as f64)),
            stats,
            metadata,
            laps: Vec::new(),
        });
        Ok(())
    }

    fn map_streams(
        &self,
        kind: &str,
        body: &Value,
        ds: Uuid,
        m: &mut Mapped,
    ) -> Result<(), MapError> {
        let (_, start, offset) =
            parse_streams_kind(kind).ok_or_else(|| MapError::UnknownType(kind.into()))?;
        // An activity without recorded streams (a manual entry) answers with no object.
        if !body.is_object() {
            return Ok(());
        }
        let set: StreamSet = lenient::item(body);
        let data = |s: &Lenient<Stream>| -> Vec<Option<f64>> {
            s.get()
                .and_then(|s| s.data.get())
                .map(|d| d.iter().map(|n| n.num()).collect())
                .unwrap_or_default()
        };
        let time = data(&set.time);
        let series = [
            ("heart_rate", data(&set.heartrate)),
            ("speed", data(&set.velocity_smooth)),
            ("cadence", data(&set.cadence)),
            ("power", data(&set.watts)),
        ];
        for (i, t) in time.iter().enumerate() {
            let Some(t) = t else { continue };
            let at = after_secs(start, *t);
            for (code, values) in &series {
                if let Some(Some(v)) = values.get(i) {
                    m.sample(code, ds, at, None, offset, *v, None);
                }
            }
        }
        Ok(())
    }
}

impl Provider for Strava {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn oauth(&self) -> OAuthSettings {
        OAuthSettings {
            // Strava separates scopes with commas.
            scopes: "activity:read_all,profile:read_all",
            pkce: false,
            user_info_path: Some("/athlete"),
        }
    }

    fn provider_user_id(&self, user_info: &Value) -> Option<String> {
        let a: payload::Athlete = lenient::item(user_info);
        Some(a.id.to_string()).filter(|s| !s.is_empty())
    }

    /// Strava's budget is per 15 minutes and per day (see [`Provider::rate_windows`]).
    fn requests_per_minute(&self) -> Option<u32> {
        None
    }

    /// Strava's read limits per application: 100 requests per 15 minutes and 1,000 per day,
    /// counted in fixed windows (quarter hours, UTC days).
    fn rate_windows(&self) -> &'static [RateWindow] {
        &[
            RateWindow {
                requests: 100,
                window_secs: 900,
                per_user: false,
            },
            RateWindow {
                requests: 1000,
                window_secs: 86_400,
                per_user: false,
            },
        ]
    }

    fn revocation(&self) -> Option<Revocation> {
        Some(Revocation {
            endpoint: "deauthorize",
            token_field: "access_token",
            client_auth: ClientAuth::None,
        })
    }

    fn mapping_version(&self) -> u32 {
        1
    }

    fn coverage(&self) -> Coverage {
        Coverage {
            series: STREAM_SERIES,
            workout_fields: &[
                "type",
                "start_time",
                "end_time",
                "zone_offset",
                "duration_seconds",
                "calories_kcal",
                "distance_meters",
                "avg_heart_rate_bpm",
                "max_heart_rate_bpm",
                "elevation_gain_meters",
            ],
            sleep_fields: &[],
            menstrual_cycle_fields: &[],
            scores: &[],
        }
    }

    fn map(&self, data_type: &str, body: &Value, user_id: Uuid) -> Result<Mapped, MapError> {
        let source = provider_source(user_id, NAME, DISPLAY);
        let ds = source.id;
        let mut m = Mapped {
            sources: vec![source],
            ..Mapped::default()
        };
        if data_type == ACTIVITY {
            for a in activities(body)? {
                self.map_activity(&a, ds, &mut m)?;
            }
        } else {
            self.map_streams(data_type, body, ds, &mut m)?;
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

    fn as_subscriptions(&self) -> Option<&dyn SubscriptionProvider> {
        Some(self)
    }
}

impl PullProvider for Strava {
    fn data_types(&self) -> &'static [&'static str] {
        &[ACTIVITY]
    }

    fn first_page(
        &self,
        _data_type: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> PullRequest {
        PullRequest {
            path: "/athlete/activities".into(),
            query: vec![
                ("after".into(), start.timestamp().to_string()),
                ("before".into(), end.timestamp().to_string()),
                ("page".into(), "1".into()),
                ("per_page".into(), PER_PAGE.to_string()),
            ],
        }
    }

    /// Pages until one comes back empty: a short page is no proof of the end, since Strava
    /// may cap `per_page` below what was asked.
    fn next_page(&self, previous: &PullRequest, body: &Value) -> Option<PullRequest> {
        if body.as_array().is_none_or(|a| a.is_empty()) {
            return None;
        }
        let page: u32 = previous
            .query
            .iter()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1);
        let mut next = previous.clone();
        for (k, v) in next.query.iter_mut() {
            if k == "page" {
                *v = (page + 1).to_string();
            }
        }
        Some(next)
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

    /// Each activity's streams.
    fn follow_ups(&self, data_type: &str, body: &Value) -> Vec<(String, PullRequest)> {
        if data_type != ACTIVITY {
            return vec![];
        }
        activities(body)
            .unwrap_or_default()
            .iter()
            .filter_map(|a| {
                let id = a.id.to_string();
                let start = start_of(a)?;
                let offset = offset_minutes(a).unwrap_or(0) as i64 * 60;
                (!id.is_empty() && !id.contains('/')).then(|| {
                    (
                        streams_kind(&id, start, offset),
                        PullRequest {
                            path: format!("/activities/{id}/streams"),
                            query: vec![
                                ("keys".into(), STREAM_KEYS.into()),
                                ("key_by_type".into(), "true".into()),
                            ],
                        },
                    )
                })
            })
            .collect()
    }

    fn record_request(&self, data_type: &str, external_id: &str) -> Option<PullRequest> {
        let numeric = !external_id.is_empty() && external_id.bytes().all(|b| b.is_ascii_digit());
        (data_type == ACTIVITY && numeric).then(|| PullRequest {
            path: format!("/activities/{external_id}"),
            query: vec![],
        })
    }
}

/// `t=<unix seconds>,v1=<hex>` → the seconds.
fn signature_time(headers: &BTreeMap<String, String>) -> Option<DateTime<Utc>> {
    let h = headers.get("x-strava-signature")?;
    let t = h
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == "t")?
        .1;
    DateTime::from_timestamp(t.trim().parse().ok()?, 0)
}

impl PushProvider for Strava {
    fn modes(&self) -> PushModes {
        PushModes {
            ping: true,
            ..PushModes::default()
        }
    }

    /// Strava signs nothing we can check: the header must carry a readable send time (checked
    /// for freshness by [`PushProvider::webhook_timestamp`]); the event itself is trusted only
    /// as far as the activity it names is fetched back from Strava.
    fn verify_webhook(
        &self,
        headers: &BTreeMap<String, String>,
        _body: &[u8],
        _endpoints: &Endpoints,
    ) -> Result<(), WebhookError> {
        signature_time(headers)
            .map(|_| ())
            .ok_or(WebhookError::Signature)
    }

    fn webhook_timestamp(&self, headers: &BTreeMap<String, String>) -> Option<DateTime<Utc>> {
        signature_time(headers)
    }

    fn parse_webhook(&self, body: &Value) -> Result<Vec<Notice>, WebhookError> {
        if !body.is_object() {
            return Err(WebhookError::Payload("event is not an object".into()));
        }
        let e: Event = lenient::item(body);
        let owner = e.owner_id.to_string();
        let object = e.object_id.to_string();
        if owner.is_empty() || object.is_empty() {
            return Err(WebhookError::Payload(
                "owner_id and object_id are required".into(),
            ));
        }
        let aspect = e.aspect_type.str().unwrap_or("");
        match (e.object_type.str().unwrap_or(""), aspect) {
            ("athlete", _) => {
                let revoked = aspect == "delete"
                    || e.updates
                        .as_ref()
                        .and_then(|u| u.get("authorized"))
                        .is_some_and(|v| v == "false" || v == false);
                Ok(if revoked {
                    vec![Notice::Deregistered {
                        provider_user_id: owner,
                    }]
                } else {
                    vec![]
                })
            }
            ("activity", "create" | "update") => Ok(vec![Notice::Record {
                provider_user_id: owner,
                data_type: ACTIVITY.into(),
                external_id: object,
            }]),
            ("activity", "delete") => Ok(vec![Notice::Deleted {
                provider_user_id: owner,
                data_type: ACTIVITY.into(),
                external_id: object,
            }]),
            (t, a) => Err(WebhookError::Payload(format!("unknown event {t}/{a}"))),
        }
    }

    fn as_deletes(&self) -> Option<&dyn PushedDeletes> {
        Some(self)
    }
}

impl PushedDeletes for Strava {
    fn deleted_records(
        &self,
        data_type: &str,
        external_id: &str,
        user_id: Uuid,
    ) -> Vec<(RecordKind, Uuid)> {
        let ds = provider_source(user_id, NAME, DISPLAY).id;
        match data_type {
            ACTIVITY => vec![(RecordKind::Workout, workout_id(ds, external_id))],
            _ => vec![],
        }
    }

    /// The activity's stream samples: every instant of the workout's span.
    fn deleted_samples(
        &self,
        data_type: &str,
        external_id: &str,
        user_id: Uuid,
    ) -> Option<DerivedSamples> {
        let ds = provider_source(user_id, NAME, DISPLAY).id;
        (data_type == ACTIVITY).then(|| DerivedSamples {
            data_source_id: ds,
            series: STREAM_SERIES,
            at: SampleAnchor::WorkoutSpan(workout_id(ds, external_id)),
        })
    }
}

const SUBSCRIPTION_KEY: &str = "push";

fn app_query(endpoints: &Endpoints) -> String {
    let mut q = reqwest::Url::parse("http://x/").expect("static URL");
    q.query_pairs_mut()
        .append_pair("client_id", &endpoints.client_id)
        .append_pair("client_secret", &endpoints.client_secret);
    q.query().unwrap_or_default().to_string()
}

impl SubscriptionProvider for Strava {
    /// Strava has one push subscription per application, for every event.
    fn subscription_requests(&self, endpoints: &Endpoints, callback_url: &str) -> Vec<AppRequest> {
        vec![AppRequest {
            method: "POST",
            path: "/push_subscriptions".into(),
            headers: vec![],
            body: json!({
                "client_id": endpoints.client_id,
                "client_secret": endpoints.client_secret,
                "callback_url": callback_url,
                "verify_token": verification_token(endpoints),
            }),
            key: Some(SUBSCRIPTION_KEY.into()),
        }]
    }

    fn list_subscriptions(&self, endpoints: &Endpoints) -> AppRequest {
        AppRequest {
            method: "GET",
            path: format!("/push_subscriptions?{}", app_query(endpoints)),
            headers: vec![],
            body: Value::Null,
            key: None,
        }
    }

    fn parse_subscriptions(&self, body: &Value) -> Vec<Subscription> {
        body.as_array()
            .into_iter()
            .flatten()
            .map(lenient::item::<PushSubscription>)
            .map(|s| Subscription {
                id: s.id.to_string(),
                key: SUBSCRIPTION_KEY.into(),
                callback_url: s.callback_url.str().unwrap_or_default().into(),
                expires_at: None,
            })
            .collect()
    }

    /// Strava subscriptions do not expire, so nothing is ever renewed; the listing stands in.
    fn renew_subscription(&self, endpoints: &Endpoints, _id: &str) -> AppRequest {
        self.list_subscriptions(endpoints)
    }

    fn challenge(
        &self,
        query: &BTreeMap<String, String>,
        endpoints: &Endpoints,
    ) -> Result<Value, WebhookError> {
        if query.get("hub.mode").map(String::as_str) != Some("subscribe") {
            return Err(WebhookError::Payload("hub.mode must be subscribe".into()));
        }
        let given = query
            .get("hub.verify_token")
            .ok_or(WebhookError::Signature)?;
        if endpoints.client_secret.is_empty()
            || !same(given.as_bytes(), verification_token(endpoints).as_bytes())
        {
            return Err(WebhookError::Signature);
        }
        let challenge = query
            .get("hub.challenge")
            .ok_or_else(|| WebhookError::Payload("hub.challenge is missing".into()))?;
        Ok(json!({ "hub.challenge": challenge }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::secret_only;

    fn user() -> Uuid {
        Uuid::from_u128(7)
    }

    fn ride() -> Value {
        json!({"id": 12345678987654321u64, "name": "Evening ride", "type": "Ride",
            "sport_type": "MountainBikeRide", "start_date": "2026-03-01T16:00:00Z",
            "start_date_local": "2026-03-01T17:00:00Z", "timezone": "(GMT+01:00) Europe/Paris",
            "utc_offset": 3600.0, "elapsed_time": 5400, "moving_time": 5000, "distance": 30500.5,
            "total_elevation_gain": 412.0, "elev_high": 820.0, "elev_low": 410.0,
            "average_speed": 6.1, "max_speed": 15.2, "average_cadence": 82.0, "average_watts": 190.0,
            "max_watts": 640.0, "kilojoules": 1026.0, "has_heartrate": true,
            "average_heartrate": 141.5, "max_heartrate": 178.0})
    }

    #[test]
    fn activities_map_with_offset_units_and_type() {
        let m = Strava.map(ACTIVITY, &json!([ride()]), user()).unwrap();
        let w = &m.workouts[0];
        assert_eq!(w.workout_type, "mountain_biking");
        assert_eq!(w.zone_offset, Some(60));
        assert_eq!(w.start.to_rfc3339(), "2026-03-01T16:00:00+00:00");
        assert_eq!(w.end.to_rfc3339(), "2026-03-01T17:30:00+00:00");
        assert_eq!(w.duration_s, Some(5400.0));
        // 1026 kJ of work is 245.2 kcal (no calories in a list summary).
        assert!((w.stats["energy_kcal"] - 1026.0 / 4.184).abs() < 1e-9);
        assert_eq!(w.stats["distance_m"], 30500.5);
        assert_eq!(w.stats["heart_rate_avg"], 141.5);
        assert_eq!(w.stats["elevation_gain_m"], 412.0);
        assert_eq!(w.stats["speed_max_mps"], 15.2);
        assert_eq!(w.stats["power_avg_w"], 190.0);
        assert_eq!(w.metadata["external_id"], "12345678987654321");
        // The detail's own calories win over the converted work.
        let mut detail = ride();
        detail["calories"] = json!(980.0);
        detail["device_name"] = json!("Garmin Edge 840");
        let m = Strava.map(ACTIVITY, &detail, user()).unwrap();
        assert_eq!(m.workouts[0].stats["energy_kcal"], 980.0);
        assert_eq!(m.workouts[0].metadata["device_name"], "Garmin Edge 840");
        // The same activity from the list and from the detail is one record.
        let listed = Strava.map(ACTIVITY, &json!([ride()]), user()).unwrap();
        assert_eq!(listed.workouts[0].id, m.workouts[0].id);
    }

    #[test]
    fn sport_type_falls_back_to_type_then_other() {
        let mut a = ride();
        a["sport_type"] = json!("Padel2030");
        let m = Strava.map(ACTIVITY, &a, user()).unwrap();
        assert_eq!(m.workouts[0].workout_type, "cycling");
        a["type"] = json!("Unknown");
        let m = Strava.map(ACTIVITY, &a, user()).unwrap();
        assert_eq!(m.workouts[0].workout_type, "other");
        for (s, t) in [
            ("Run", "running"),
            ("VirtualRide", "indoor_cycling"),
            ("WeightTraining", "strength_training"),
            ("NordicSki", "cross_country_skiing"),
        ] {
            assert_eq!(workout_type(s), Some(t));
            assert!(WorkoutType::parse(t).is_some(), "{t}");
        }
    }

    #[test]
    fn streams_become_samples_at_start_plus_offset() {
        let start: DateTime<Utc> = "2026-03-01T16:00:00Z".parse().unwrap();
        let kind = streams_kind("99", start, -18000);
        assert_eq!(kind, "streams/99/1772380800/-18000");
        let body = json!({
            "time": {"data": [0, 10, 20], "series_type": "distance", "original_size": 3, "resolution": "high"},
            "heartrate": {"data": [120, null, 130]},
            "velocity_smooth": {"data": [3.5, 3.6, 3.7]},
            "cadence": {"data": [80, 82, 84]},
            "watts": {"data": [200, 210]}
        });
        let m = Strava.map(&kind, &body, user()).unwrap();
        let hr: Vec<(String, f64, i16)> = m
            .samples
            .iter()
            .filter(|s| s.series == "heart_rate")
            .map(|s| (s.time.to_rfc3339(), s.value, s.zone_offset))
            .collect();
        assert_eq!(
            hr,
            vec![
                ("2026-03-01T16:00:00+00:00".into(), 120.0, -300),
                ("2026-03-01T16:00:20+00:00".into(), 130.0, -300)
            ]
        );
        let count = |code: &str| m.samples.iter().filter(|s| s.series == code).count();
        assert_eq!(
            (count("speed"), count("cadence"), count("power")),
            (3, 3, 2)
        );
        // No streams (a manual activity) map to nothing; a bad kind is refused.
        assert!(Strava
            .map(&kind, &json!([]), user())
            .unwrap()
            .samples
            .is_empty());
        assert!(Strava.map("streams/x", &body, user()).is_err());
        assert!(Strava.map("nope", &body, user()).is_err());
    }

    #[test]
    fn paging_follow_ups_and_record_requests() {
        let start = "2026-03-01T00:00:00Z".parse().unwrap();
        let end = "2026-03-08T00:00:00Z".parse().unwrap();
        let p = Strava.first_page(ACTIVITY, start, end);
        assert_eq!(p.path, "/athlete/activities");
        assert_eq!(p.query[0], ("after".into(), "1772323200".into()));
        assert_eq!(p.query[1], ("before".into(), "1772928000".into()));
        let next = Strava.next_page(&p, &json!([ride()])).unwrap();
        assert_eq!(next.query[2], ("page".into(), "2".into()));
        assert!(Strava.next_page(&next, &json!([])).is_none());
        let ups = Strava.follow_ups(ACTIVITY, &json!([ride()]));
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].0, "streams/12345678987654321/1772380800/3600");
        assert_eq!(ups[0].1.path, "/activities/12345678987654321/streams");
        assert_eq!(
            Strava.record_request(ACTIVITY, "42").unwrap().path,
            "/activities/42"
        );
        assert!(Strava.record_request(ACTIVITY, "../athlete").is_none());
    }

    #[test]
    fn webhook_events_and_challenge() {
        let mut h = BTreeMap::new();
        assert_eq!(
            Strava.verify_webhook(&h, b"{}", &secret_only("s")),
            Err(WebhookError::Signature)
        );
        h.insert(
            "x-strava-signature".to_string(),
            "t=1700000000,v1=abc".to_string(),
        );
        assert_eq!(Strava.verify_webhook(&h, b"{}", &secret_only("s")), Ok(()));
        assert_eq!(
            Strava.webhook_timestamp(&h).map(|t| t.timestamp()),
            Some(1_700_000_000)
        );
        let ev = |object: &str, aspect: &str, updates: Value| {
            json!({"object_type": object, "object_id": 1360128428, "aspect_type": aspect,
                   "updates": updates, "owner_id": 134815, "subscription_id": 120475,
                   "event_time": 1516126040})
        };
        assert_eq!(
            Strava
                .parse_webhook(&ev("activity", "create", json!({})))
                .unwrap(),
            vec![Notice::Record {
                provider_user_id: "134815".into(),
                data_type: ACTIVITY.into(),
                external_id: "1360128428".into()
            }]
        );
        assert_eq!(
            Strava
                .parse_webhook(&ev("activity", "delete", json!({})))
                .unwrap(),
            vec![Notice::Deleted {
                provider_user_id: "134815".into(),
                data_type: ACTIVITY.into(),
                external_id: "1360128428".into()
            }]
        );
        assert_eq!(
            Strava
                .parse_webhook(&ev("athlete", "update", json!({"authorized": "false"})))
                .unwrap(),
            vec![Notice::Deregistered {
                provider_user_id: "134815".into()
            }]
        );
        assert!(Strava
            .parse_webhook(&ev("athlete", "update", json!({"name": "x"})))
            .unwrap()
            .is_empty());
        assert!(Strava
            .parse_webhook(&json!({"object_type": "activity"}))
            .is_err());

        let ep = secret_only("shh");
        let mut q = BTreeMap::new();
        q.insert("hub.mode".to_string(), "subscribe".to_string());
        q.insert("hub.challenge".to_string(), "15f7d1a91c1f40f8".to_string());
        q.insert("hub.verify_token".to_string(), "wrong".to_string());
        assert_eq!(Strava.challenge(&q, &ep), Err(WebhookError::Signature));
        q.insert("hub.verify_token".to_string(), verification_token(&ep));
        assert_eq!(
            Strava.challenge(&q, &ep),
            Ok(json!({"hub.challenge": "15f7d1a91c1f40f8"}))
        );
        let subs = Strava.subscription_requests(&ep, "https://me/hook");
        assert_eq!(
            subs[0].body["verify_token"],
            verification_token(&ep).as_str()
        );
        let listed = Strava.parse_subscriptions(
            &json!([{"id": 120475, "callback_url": "https://me/hook", "application_id": 1}]),
        );
        assert_eq!(
            (listed[0].id.as_str(), listed[0].expires_at),
            ("120475", None)
        );
    }

    #[test]
    fn deletes_name_the_workout_and_its_stream_span() {
        let m = Strava.map(ACTIVITY, &ride(), user()).unwrap();
        let id = "12345678987654321";
        assert_eq!(
            Strava.deleted_records(ACTIVITY, id, user()),
            vec![(RecordKind::Workout, m.workouts[0].id)]
        );
        let gone = Strava.deleted_samples(ACTIVITY, id, user()).unwrap();
        assert_eq!(gone.at, SampleAnchor::WorkoutSpan(m.workouts[0].id));
        assert_eq!(gone.data_source_id, m.workouts[0].data_source_id);
    }
}
