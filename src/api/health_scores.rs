//! `GET /api/v1/users/{user_id}/health-scores`: provider scores and the platform's own
//! (`internal`: sleep, resilience), newest first, with the contract's offset pagination inside
//! the data envelope (`next_cursor` is always null).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Tags};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use wearhouse_domain::priority::PROVIDERS;

use super::envelope::{Metadata, PaginatedResponse, Pagination};
use super::error::internal_api;
use super::params::{format_offset, parse_datetime};
use super::{users, ApiError, AppState};
use crate::auth::AnyCredential;

#[derive(Tags)]
enum Tag {
    /// Health scores
    HealthScores,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ScoreCategory {
    Sleep,
    Recovery,
    Readiness,
    Activity,
    Stress,
    Resilience,
    BodyBattery,
    Strain,
}

impl ScoreCategory {
    fn as_str(self) -> &'static str {
        match self {
            ScoreCategory::Sleep => "sleep",
            ScoreCategory::Recovery => "recovery",
            ScoreCategory::Readiness => "readiness",
            ScoreCategory::Activity => "activity",
            ScoreCategory::Stress => "stress",
            ScoreCategory::Resilience => "resilience",
            ScoreCategory::BodyBattery => "body_battery",
            ScoreCategory::Strain => "strain",
        }
    }
}

#[derive(Object, Debug, Clone)]
pub struct ScoreComponent {
    pub value: Option<f64>,
    pub qualifier: Option<String>,
}

#[derive(Object, Debug, Clone)]
pub struct HealthScore {
    pub id: Uuid,
    pub category: String,
    pub value: Option<f64>,
    pub qualifier: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub zone_offset: Option<String>,
    pub components: Option<BTreeMap<String, ScoreComponent>>,
    pub data_source_id: Option<Uuid>,
    /// Nullable as in the contract (`ProviderName | null`); every stored score has one.
    pub provider: Option<String>,
}

fn components(v: Option<Value>) -> Option<BTreeMap<String, ScoreComponent>> {
    let obj = v?.as_object()?.clone();
    Some(
        obj.into_iter()
            .map(|(k, c)| {
                (
                    k,
                    ScoreComponent {
                        value: c.get("value").and_then(Value::as_f64),
                        qualifier: c.get("qualifier").and_then(Value::as_str).map(String::from),
                    },
                )
            })
            .collect(),
    )
}

pub struct HealthScoresApi;

#[OpenApi(prefix_path = "/api/v1")]
impl HealthScoresApi {
    /// A user's health scores, newest first
    #[oai(
        path = "/users/:user_id/health-scores",
        method = "get",
        tag = "Tag::HealthScores"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        /// recorded_at >= start_date
        start_date: Query<Option<String>>,
        /// recorded_at < end_date
        end_date: Query<Option<String>>,
        category: Query<Option<ScoreCategory>>,
        provider: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<i64>,
        #[oai(default, validator(minimum(value = "0")))] offset: Query<i64>,
    ) -> Result<Json<PaginatedResponse<HealthScore>>, ApiError> {
        let start = start_date
            .0
            .as_deref()
            .map(parse_datetime)
            .transpose()?
            .map(|d| d.with_timezone(&Utc));
        let end = end_date
            .0
            .as_deref()
            .map(parse_datetime)
            .transpose()?
            .map(|d| d.with_timezone(&Utc));
        if let (Some(s), Some(e)) = (start, end) {
            if s >= e {
                return Err(ApiError::bad_request("start_date must be before end_date"));
            }
        }
        let provider = provider.0.map(|p| p.trim().to_lowercase());
        if let Some(p) = &provider {
            if !PROVIDERS.contains(&p.as_str()) {
                return Err(ApiError::bad_request(format!("Invalid provider: '{p}'")));
            }
        }
        users::load(&state, user_id.0).await?;
        let category = category.0.map(|c| c.as_str().to_string());
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(user_id.0)];
        let mut filter = String::from("user_id = $1 AND NOT deleted");
        if let Some(s) = start {
            params.push(Box::new(s));
            filter.push_str(&format!(" AND recorded_at >= ${}", params.len()));
        }
        if let Some(e) = end {
            params.push(Box::new(e));
            filter.push_str(&format!(" AND recorded_at < ${}", params.len()));
        }
        if let Some(c) = category {
            params.push(Box::new(c));
            filter.push_str(&format!(" AND category = ${}", params.len()));
        }
        if let Some(p) = provider {
            params.push(Box::new(p));
            filter.push_str(&format!(" AND provider = ${}", params.len()));
        }
        let client = state.db().await.map_err(internal_api)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        let total: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM health_scores WHERE {filter}"),
                &refs,
            )
            .await?
            .get(0);
        let n = refs.len();
        let mut refs = refs;
        refs.push(&limit.0);
        refs.push(&offset.0);
        let rows = client
            .query(
                &format!(
                    "SELECT id, category, value, qualifier, recorded_at, zone_offset, components, data_source_id, provider \
                     FROM health_scores WHERE {filter} ORDER BY recorded_at DESC, id LIMIT ${} OFFSET ${}",
                    n + 1,
                    n + 2
                ),
                &refs,
            )
            .await?;
        let data: Vec<HealthScore> = rows
            .iter()
            .map(|r| HealthScore {
                id: r.get(0),
                category: r.get(1),
                value: r.get(2),
                qualifier: r.get(3),
                recorded_at: r.get(4),
                zone_offset: r.get::<_, Option<i16>>(5).map(format_offset),
                components: components(r.get(6)),
                data_source_id: r.get(7),
                provider: r.get::<_, Option<String>>(8),
            })
            .collect();
        Ok(Json(PaginatedResponse {
            pagination: Pagination {
                next_cursor: None,
                previous_cursor: None,
                has_more: offset.0 + (data.len() as i64) < total,
                total_count: Some(total),
            },
            metadata: Metadata {
                resolution: None,
                sample_count: Some(data.len() as i64),
                start_time: start,
                end_time: end,
            },
            data,
        }))
    }
}

fn default_limit() -> i64 {
    50
}
