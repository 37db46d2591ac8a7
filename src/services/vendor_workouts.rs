//! The vendor passthrough: a user's workouts as the provider itself lists and describes them,
//! fetched live with the user's stored tokens (`GET /providers/{provider}/users/{user_id}/
//! workouts[/{workout_id}]`). Each answer is kept raw (kinds [`LIST_KIND`], [`DETAIL_KIND`])
//! but not mapped: the same workouts reach the read models through the provider's pulls and
//! webhooks, which own their runs and dedup keys; a read here writes no data.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::providers::engine::{Engine, SyncError};
use crate::providers::{path_segment, Provider, VendorWorkouts, WorkoutListQuery};

/// Raw payload kind of a passed-through listing.
pub const LIST_KIND: &str = "vendor_workouts";
/// Raw payload kind of a passed-through workout.
pub const DETAIL_KIND: &str = "vendor_workout";

#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    #[error("Unknown provider {0}")]
    UnknownProvider(String),
    /// Upstream's wording for a provider without the capability.
    #[error("Provider '{0}' does not support workouts")]
    Unsupported(&'static str),
    #[error("Provider '{0}' does not support reading one workout")]
    NoDetail(&'static str),
    #[error("The window is empty: its start must be before its end")]
    EmptyWindow,
    #[error("The window is too long for {0}: at most {1} days")]
    WindowTooLong(&'static str, i64),
    #[error("Invalid workout id")]
    BadId,
    #[error("Workout {1} not found at {0}")]
    NotFound(&'static str, String),
    /// The provider answered JSON of another shape than a workout list (several answers: not
    /// all arrays) or one workout (not an object).
    #[error("{0} answered with JSON that is not {1}")]
    Shape(&'static str, &'static str),
    /// No connection, the provider's refusals, rate limits and outages, storage.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// A listing asked for: the window's bounds as given (`since` in Unix seconds, 0: not given).
#[derive(Debug, Clone)]
pub struct ListOrder {
    pub user_id: Uuid,
    pub provider: String,
    pub since: i64,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Clone)]
pub struct VendorWorkoutsService {
    engine: Arc<Engine>,
}

impl VendorWorkoutsService {
    pub fn new(engine: Arc<Engine>) -> Self {
        VendorWorkoutsService { engine }
    }

    fn provider(&self, name: &str) -> Result<Arc<dyn Provider>, PassthroughError> {
        self.engine
            .registry
            .get(name)
            .map(|(p, _)| p)
            .ok_or_else(|| PassthroughError::UnknownProvider(name.into()))
    }

    /// The provider's own listing of the user's workouts in the order's window: from
    /// `summary_start_time`, else `since`, else the provider's default lookback, to
    /// `summary_end_time` or now. One request answers as the provider did; several (Garmin's
    /// days) as one array of their items.
    pub async fn list(&self, order: ListOrder) -> Result<Value, PassthroughError> {
        let p = self.provider(&order.provider)?;
        let vendor: &dyn VendorWorkouts = p
            .as_vendor_workouts()
            .ok_or(PassthroughError::Unsupported(p.name()))?;
        let now = Utc::now();
        let end = order.end.unwrap_or(now);
        let start = match (order.start, order.since) {
            (Some(t), _) => t,
            (None, s) if s > 0 => DateTime::from_timestamp(s, 0).unwrap_or(end),
            _ => end
                .checked_sub_signed(vendor.default_lookback())
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        };
        if start >= end {
            return Err(PassthroughError::EmptyWindow);
        }
        let q = WorkoutListQuery {
            start,
            end,
            limit: order.limit.clamp(1, 100) as u32,
            offset: order.offset.clamp(0, i64::from(u32::MAX)) as u32,
        };
        if let Some(max) = vendor.max_window().filter(|max| end - start > *max) {
            return Err(PassthroughError::WindowTooLong(p.name(), max.num_days()));
        }
        let requests = vendor.list_requests(&q);
        let bodies = self
            .engine
            .fetch_live(order.user_id, p.name(), &requests, LIST_KIND)
            .await?;
        let mut parsed = bodies
            .iter()
            .map(|b| serde_json::from_slice::<Value>(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| SyncError::Malformed(LIST_KIND.into()))?;
        if parsed.len() == 1 {
            return match parsed.remove(0) {
                list @ (Value::Object(_) | Value::Array(_)) => Ok(list),
                _ => Err(PassthroughError::Shape(p.name(), "a workout list")),
            };
        }
        let mut items = Vec::new();
        for body in parsed {
            match body {
                Value::Array(a) => items.extend(a),
                _ => return Err(PassthroughError::Shape(p.name(), "a workout list")),
            }
        }
        Ok(Value::Array(items))
    }

    /// The provider's own description of one workout of the user.
    pub async fn detail(
        &self,
        user_id: Uuid,
        provider: &str,
        workout_id: &str,
    ) -> Result<serde_json::Map<String, Value>, PassthroughError> {
        let p = self.provider(provider)?;
        let vendor = p
            .as_vendor_workouts()
            .ok_or(PassthroughError::Unsupported(p.name()))?;
        let segment = path_segment(workout_id).ok_or(PassthroughError::BadId)?;
        let request = vendor
            .detail_request(&segment)
            .ok_or(PassthroughError::NoDetail(p.name()))?;
        let bodies = match self
            .engine
            .fetch_live(user_id, p.name(), &[request], DETAIL_KIND)
            .await
        {
            Ok(b) => b,
            Err(SyncError::Status(404)) => {
                return Err(PassthroughError::NotFound(p.name(), workout_id.into()))
            }
            Err(e) => return Err(e.into()),
        };
        let body = bodies.first().map(Vec::as_slice).unwrap_or_default();
        match serde_json::from_slice(body) {
            Ok(Value::Object(o)) => Ok(o),
            Ok(_) => Err(PassthroughError::Shape(p.name(), "a workout")),
            Err(_) => Err(SyncError::Malformed(DETAIL_KIND.into()).into()),
        }
    }
}
