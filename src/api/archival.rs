//! The contract's data lifecycle settings (`/api/v1/settings/archival`): the archival policy
//! with storage estimates, its change (admins; an event with its actor) and a manual run (a
//! durable job, answered 202 at once). The work is `services::archival`'s.

use std::collections::HashMap;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use wearhouse_domain::archival::{ARCHIVE_AFTER_DAYS, DELETE_AFTER_DAYS};

use super::{request_id, ApiError, AppState};
use crate::auth::{AdminAuth, DeveloperAuth};
use crate::services::archival::{ArchivalError, Policy, Storage};

#[derive(Tags)]
enum Tag {
    /// Archival and retention of the timeseries
    #[oai(rename = "Internal: Data Lifecycle")]
    DataLifecycle,
}

#[derive(Object)]
struct ArchivalSettingRead {
    archive_after_days: Option<i32>,
    delete_after_days: Option<i32>,
}

#[derive(Object)]
struct ArchivalSettingUpdate {
    /// Days after which samples are rolled into daily aggregates; null turns archival off.
    /// Absent: unchanged.
    #[oai(validator(minimum(value = "1"), maximum(value = "3650")))]
    archive_after_days: MaybeUndefined<i32>,
    /// Days after which data is deleted (archived aggregates, or samples when archival is
    /// off or later); null turns deletion off. Absent: unchanged.
    #[oai(validator(minimum(value = "1"), maximum(value = "7300")))]
    delete_after_days: MaybeUndefined<i32>,
}

#[derive(Object)]
struct StorageEstimate {
    live_data_bytes: i64,
    live_index_bytes: i64,
    archive_data_bytes: i64,
    archive_index_bytes: i64,
    other_tables_bytes: i64,
    total_bytes: i64,
    live_row_count: i64,
    archive_row_count: i64,
    avg_bytes_per_live_row: f64,
    avg_bytes_per_archive_row: f64,
    live_data_span_days: i64,
    live_total_pretty: String,
    live_data_pretty: String,
    live_index_pretty: String,
    archive_total_pretty: String,
    archive_data_pretty: String,
    archive_index_pretty: String,
    other_tables_pretty: String,
    total_pretty: String,
    /// `bounded` (deletion on), `linear_efficient` (archival only) or `linear`.
    growth_class: String,
}

#[derive(Object)]
struct ArchivalSettingWithEstimate {
    settings: ArchivalSettingRead,
    storage: StorageEstimate,
}

#[derive(ApiResponse)]
enum RunAccepted {
    /// The run is queued as a job: `task_id` is the job's id.
    #[oai(status = 202)]
    Accepted(Json<HashMap<String, String>>),
}

impl From<ArchivalError> for ApiError {
    fn from(e: ArchivalError) -> Self {
        super::error::internal_api(super::error::Chain(&e))
    }
}

/// Bytes as Postgres' `pg_size_pretty` writes them.
fn pretty(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    // pg_size_pretty switches unit from 10 240 of the smaller one, rounding half up.
    while value.abs() >= 10 * 1024 && unit < UNITS.len() - 1 {
        value = (value + value.signum() * 512) / 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

fn avg(bytes: i64, rows: i64) -> f64 {
    if rows > 0 {
        (bytes as f64 / rows as f64 * 10.0).round() / 10.0
    } else {
        0.0
    }
}

fn estimate(policy: Policy, s: Storage) -> ArchivalSettingWithEstimate {
    let live = s.live_data_bytes + s.live_index_bytes;
    let archive = s.archive_data_bytes + s.archive_index_bytes;
    let other = (s.total_bytes - live - archive).max(0);
    let growth_class = if policy.delete_after_days.is_some() {
        "bounded"
    } else if policy.archive_after_days.is_some() {
        "linear_efficient"
    } else {
        "linear"
    };
    ArchivalSettingWithEstimate {
        settings: ArchivalSettingRead {
            archive_after_days: policy.archive_after_days,
            delete_after_days: policy.delete_after_days,
        },
        storage: StorageEstimate {
            live_data_bytes: s.live_data_bytes,
            live_index_bytes: s.live_index_bytes,
            archive_data_bytes: s.archive_data_bytes,
            archive_index_bytes: s.archive_index_bytes,
            other_tables_bytes: other,
            total_bytes: s.total_bytes,
            live_row_count: s.live_row_count,
            archive_row_count: s.archive_row_count,
            avg_bytes_per_live_row: avg(live, s.live_row_count),
            avg_bytes_per_archive_row: avg(archive, s.archive_row_count),
            live_data_span_days: s.live_data_span_days,
            live_total_pretty: pretty(live),
            live_data_pretty: pretty(s.live_data_bytes),
            live_index_pretty: pretty(s.live_index_bytes),
            archive_total_pretty: pretty(archive),
            archive_data_pretty: pretty(s.archive_data_bytes),
            archive_index_pretty: pretty(s.archive_index_bytes),
            other_tables_pretty: pretty(other),
            total_pretty: pretty(s.total_bytes),
            growth_class: growth_class.into(),
        },
    }
}

async fn current(state: &AppState) -> Result<ArchivalSettingWithEstimate, ApiError> {
    let policy = state.archival.policy().await?;
    let storage = state.archival.storage(state.timescaledb).await?;
    Ok(estimate(policy, storage))
}

pub struct ArchivalApi;

#[OpenApi(prefix_path = "/api/v1")]
impl ArchivalApi {
    /// Get data lifecycle settings
    ///
    /// The archival and retention policy, and the sizes of the live timeseries and the archive.
    #[oai(
        path = "/settings/archival",
        method = "get",
        tag = "Tag::DataLifecycle"
    )]
    async fn get_archival_settings(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
    ) -> Result<Json<ArchivalSettingWithEstimate>, ApiError> {
        Ok(Json(current(&state).await?))
    }

    /// Update data lifecycle settings (admins)
    ///
    /// `archive_after_days`: samples older than this are rolled into daily aggregates and
    /// leave the timeseries; `delete_after_days`: data older than this is deleted. Null turns
    /// a step off; an absent field is kept.
    #[oai(
        path = "/settings/archival",
        method = "put",
        tag = "Tag::DataLifecycle"
    )]
    async fn update_archival_settings(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        req: &Request,
        body: Json<ArchivalSettingUpdate>,
    ) -> Result<Json<ArchivalSettingWithEstimate>, ApiError> {
        let mut policy = state.archival.policy().await?;
        let pick = |field: MaybeUndefined<i32>, old: Option<i32>| match field {
            MaybeUndefined::Undefined => old,
            MaybeUndefined::Null => None,
            MaybeUndefined::Value(v) => Some(v),
        };
        policy.archive_after_days = pick(body.0.archive_after_days, policy.archive_after_days);
        policy.delete_after_days = pick(body.0.delete_after_days, policy.delete_after_days);
        // The validators above declare and check the bounds; kept here for the service's sake.
        let within =
            |v: Option<i32>, r: &std::ops::RangeInclusive<i32>| v.is_none_or(|v| r.contains(&v));
        if !within(policy.archive_after_days, &ARCHIVE_AFTER_DAYS)
            || !within(policy.delete_after_days, &DELETE_AFTER_DAYS)
        {
            return Err(ApiError::bad_request(
                "archive_after_days must be 1-3650 and delete_after_days 1-7300, or null",
            ));
        }
        state
            .archival
            .change(policy, &auth.principal().actor(request_id(req)))
            .await?;
        Ok(Json(current(&state).await?))
    }

    /// Trigger archival job manually (admins)
    ///
    /// Queues one archival and retention run as a durable job and answers at once.
    #[oai(
        path = "/settings/archival/run",
        method = "post",
        tag = "Tag::DataLifecycle"
    )]
    async fn trigger_archival(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        req: &Request,
    ) -> Result<RunAccepted, ApiError> {
        let id = state
            .archival
            .enqueue(&auth.principal().actor(request_id(req)), None)
            .await?;
        Ok(RunAccepted::Accepted(Json(HashMap::from([
            ("task_id".to_string(), id.to_string()),
            ("status".to_string(), "dispatched".to_string()),
        ]))))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_postgres_writes_them() {
        assert_eq!(super::pretty(0), "0 bytes");
        assert_eq!(super::pretty(10_239), "10239 bytes");
        assert_eq!(super::pretty(10_240), "10 kB");
        assert_eq!(super::pretty(8 * 1024 * 1024), "8192 kB");
        assert_eq!(super::pretty(20 * 1024 * 1024), "20 MB");
    }
}
