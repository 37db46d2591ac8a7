//! The vendor passthrough routes: a user's workouts as the provider itself lists and describes
//! them, fetched live (`services::vendor_workouts`).

use std::collections::BTreeMap;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{OpenApi, Tags};
use serde_json::Value;
use uuid::Uuid;

use super::{users, ApiError, AppState};
use crate::auth::AnyCredential;
use crate::services::vendor_workouts::{ListOrder, VendorWorkoutsService};

#[derive(Tags)]
enum Tag {
    /// Workouts read live from the provider's own API
    VendorWorkouts,
}

fn default_50() -> i64 {
    50
}

fn default_true() -> bool {
    true
}

fn instant(raw: Option<&str>) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    raw.map(super::params::parse_datetime)
        .transpose()
        .map(|t| t.map(|t| t.with_timezone(&Utc)))
}

pub struct VendorWorkoutsApi;

#[OpenApi(prefix_path = "/api/v1")]
impl VendorWorkoutsApi {
    /// The user's workouts as the provider lists them, fetched now with the user's tokens.
    /// The window runs from `summary_start_time` (else `since`, else the provider's default:
    /// a day for Garmin, 30 days for the others) to `summary_end_time` (else now); `limit`
    /// and `offset` page where the provider pages by count (Whoop takes at most 25, Fitbit
    /// 100). `filter_by_modification_time`, `samples`, `zones` and `route` are Suunto and
    /// Polar switches, accepted and without effect for the providers served here. Each answer
    /// is stored raw. 501 for a provider without a workouts endpoint, 404 when the user has no
    /// active connection to it.
    #[oai(
        path = "/providers/:provider/users/:user_id/workouts",
        method = "get",
        tag = "Tag::VendorWorkouts"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        provider: Path<String>,
        user_id: Path<Uuid>,
        #[oai(default)] since: Query<i64>,
        #[oai(default = "default_50", validator(maximum(value = "100")))] limit: Query<i64>,
        #[oai(default)] offset: Query<i64>,
        #[oai(default = "default_true")] filter_by_modification_time: Query<bool>,
        #[oai(default)] samples: Query<bool>,
        #[oai(default)] zones: Query<bool>,
        #[oai(default)] route: Query<bool>,
        summary_start_time: Query<Option<String>>,
        summary_end_time: Query<Option<String>>,
    ) -> Result<Json<Value>, ApiError> {
        let _ = (filter_by_modification_time, samples, zones, route);
        let start = instant(summary_start_time.0.as_deref())?;
        let end = instant(summary_end_time.0.as_deref())?;
        users::load(&state, user_id.0).await?;
        let order = ListOrder {
            user_id: user_id.0,
            provider: provider.0,
            since: since.0,
            start,
            end,
            limit: limit.0,
            offset: offset.0,
        };
        let body = VendorWorkoutsService::new(state.providers.clone())
            .list(order)
            .await?;
        Ok(Json(body))
    }

    /// One workout as the provider describes it, fetched now with the user's tokens (Fitbit
    /// has no such endpoint: 501). 404 when the user has no active connection to the
    /// provider, or the provider does not know the workout.
    #[oai(
        path = "/providers/:provider/users/:user_id/workouts/:workout_id",
        method = "get",
        tag = "Tag::VendorWorkouts"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn detail(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        provider: Path<String>,
        user_id: Path<Uuid>,
        workout_id: Path<String>,
        #[oai(default)] samples: Query<bool>,
        #[oai(default)] zones: Query<bool>,
        #[oai(default)] route: Query<bool>,
    ) -> Result<Json<BTreeMap<String, Value>>, ApiError> {
        let _ = (samples, zones, route);
        users::load(&state, user_id.0).await?;
        let body = VendorWorkoutsService::new(state.providers.clone())
            .detail(user_id.0, &provider.0, &workout_id.0)
            .await?;
        Ok(Json(body.into_iter().collect()))
    }
}
