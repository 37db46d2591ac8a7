//! `GET /api/v1/users/{user_id}/summaries/data`: how much data a user has, per series type,
//! workout type and provider.
//!
//! Without dates the sample counts come from the `sample_counts` read model (one row per user,
//! data source and type, so this stays fast for any volume); with dates they are counted from
//! `samples` in `[start_date, end_date)`. Workouts and sleep sessions count when they start in
//! the range; deleted ones never count. `has_womens_health_data` says whether a menstrual cycle
//! (not deleted) starts in the range. The end-of-day rule of `/timeseries` does not apply.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use wearhouse_domain::series;

use super::params::parse_datetime;
use super::{users, ApiError, AppState};
use crate::auth::AnyCredential;

#[derive(Tags)]
enum Tag {
    /// Summaries of a user's data
    Summaries,
}

#[derive(Object, Debug, Default)]
pub struct ProviderDataSummary {
    pub provider: String,
    pub data_points: i64,
    pub series_counts: BTreeMap<String, i64>,
    pub workout_count: i64,
    pub sleep_count: i64,
}

#[derive(Object, Debug)]
pub struct UserDataSummaryResponse {
    pub user_id: Uuid,
    pub total_data_points: i64,
    pub total_workouts: i64,
    pub total_sleep_events: i64,
    pub series_type_counts: BTreeMap<String, i64>,
    pub workout_type_counts: BTreeMap<String, i64>,
    pub by_provider: Vec<ProviderDataSummary>,
    pub has_womens_health_data: bool,
}

/// `AND <column> >= $2 AND <column> < $3` for the bounds that are set, numbered after $1 (user).
fn range_filter(
    column: &str,
    start: &Option<DateTime<Utc>>,
    end: &Option<DateTime<Utc>>,
) -> String {
    let mut sql = String::new();
    let mut n = 1;
    if start.is_some() {
        n += 1;
        sql.push_str(&format!(" AND {column} >= ${n}"));
    }
    if end.is_some() {
        n += 1;
        sql.push_str(&format!(" AND {column} < ${n}"));
    }
    sql
}

fn entry(
    map: &mut BTreeMap<String, ProviderDataSummary>,
    provider: String,
) -> &mut ProviderDataSummary {
    map.entry(provider.clone())
        .or_insert_with(|| ProviderDataSummary {
            provider,
            ..Default::default()
        })
}

fn series_code(id: i16) -> String {
    series::by_id(id).map_or_else(|| id.to_string(), |t| t.code.to_string())
}

pub struct SummariesApi;

#[OpenApi(prefix_path = "/api/v1")]
impl SummariesApi {
    /// Counts of a user's samples, workouts and sleep sessions, overall and per provider
    #[oai(
        path = "/users/:user_id/summaries/data",
        method = "get",
        tag = "Tag::Summaries"
    )]
    async fn data(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        /// Inclusive lower bound (ISO 8601 or Unix seconds)
        start_date: Query<Option<String>>,
        /// Exclusive upper bound (ISO 8601 or Unix seconds)
        end_date: Query<Option<String>>,
    ) -> Result<Json<UserDataSummaryResponse>, ApiError> {
        let parse = |v: Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
            // An empty value is no date: refused like any other malformed one.
            v.map(|s| parse_datetime(&s).map(|d| d.with_timezone(&Utc)))
                .transpose()
        };
        let start = parse(start_date.0)?;
        let end = parse(end_date.0)?;
        let user = user_id.0;
        users::load(&state, user).await?;

        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&user];
        if let Some(s) = &start {
            params.push(s);
        }
        if let Some(e) = &end {
            params.push(e);
        }
        let dated = start.is_some() || end.is_some();
        // Grouped per data source before the join so the join touches few rows.
        let counts_sql = if dated {
            format!(
                "SELECT data_source_id, series_type, count(*) FROM samples \
                 WHERE user_id = $1{} GROUP BY 1, 2",
                range_filter("time", &start, &end)
            )
        } else {
            "SELECT data_source_id, series_type, count FROM sample_counts WHERE user_id = $1"
                .to_string()
        };
        let samples_sql = format!(
            "SELECT coalesce(ds.provider, 'unknown'), c.series_type, sum(c.n)::bigint \
             FROM ({counts_sql}) AS c(data_source_id, series_type, n) \
             LEFT JOIN data_sources ds ON ds.id = c.data_source_id GROUP BY 1, 2"
        );
        let workouts_sql = format!(
            "SELECT coalesce(ds.provider, 'unknown'), w.type, count(*) FROM workouts w \
             LEFT JOIN data_sources ds ON ds.id = w.data_source_id \
             WHERE w.user_id = $1 AND NOT w.deleted{} GROUP BY 1, 2",
            range_filter("w.start_time", &start, &end)
        );
        let sleep_sql = format!(
            "SELECT coalesce(ds.provider, 'unknown'), count(*) FROM sleep_sessions s \
             LEFT JOIN data_sources ds ON ds.id = s.data_source_id \
             WHERE s.user_id = $1 AND NOT s.deleted{} GROUP BY 1",
            range_filter("s.start_time", &start, &end)
        );

        let client = state.pool.get().await?;
        let mut by_provider: BTreeMap<String, ProviderDataSummary> = BTreeMap::new();
        let mut series_type_counts = BTreeMap::new();
        let mut total_data_points = 0;
        for r in client.query(&samples_sql, &params).await? {
            let n: i64 = r.get(2);
            let code = series_code(r.get(1));
            total_data_points += n;
            *series_type_counts.entry(code.clone()).or_insert(0) += n;
            let p = entry(&mut by_provider, r.get(0));
            p.data_points += n;
            *p.series_counts.entry(code).or_insert(0) += n;
        }
        let mut workout_type_counts = BTreeMap::new();
        let mut total_workouts = 0;
        for r in client.query(&workouts_sql, &params).await? {
            let n: i64 = r.get(2);
            total_workouts += n;
            *workout_type_counts.entry(r.get(1)).or_insert(0) += n;
            entry(&mut by_provider, r.get(0)).workout_count += n;
        }
        let mut total_sleep_events = 0;
        for r in client.query(&sleep_sql, &params).await? {
            let n: i64 = r.get(1);
            total_sleep_events += n;
            entry(&mut by_provider, r.get(0)).sleep_count += n;
        }

        // Cycles count when they start in the range, like sleep sessions; deleted ones never.
        let cycles_sql = format!(
            "SELECT EXISTS (SELECT 1 FROM menstrual_cycles WHERE user_id = $1 AND NOT deleted{})",
            range_filter("start_time", &start, &end)
        );
        let has_womens_health_data: bool = client.query_one(&cycles_sql, &params).await?.get(0);

        Ok(Json(UserDataSummaryResponse {
            user_id: user,
            total_data_points,
            total_workouts,
            total_sleep_events,
            series_type_counts,
            workout_type_counts,
            by_provider: by_provider.into_values().collect(),
            has_womens_health_data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_filter_numbers_only_the_bounds_given() {
        let t = Some(Utc::now());
        assert_eq!(range_filter("time", &None, &None), "");
        assert_eq!(
            range_filter("time", &t, &t),
            " AND time >= $2 AND time < $3"
        );
        assert_eq!(range_filter("time", &None, &t), " AND time < $2");
        assert_eq!(range_filter("x", &t, &None), " AND x >= $2");
    }
}
