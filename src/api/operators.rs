//! Operator routes of the contract: `/dashboard/stats` (counts read from counters the
//! projections keep, never a scan of a growing table) and `/config`.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::{ApiError, AppState};
use crate::auth::DeveloperAuth;

#[derive(Tags)]
enum Tag {
    /// Installation-wide figures and settings
    Dashboard,
}

#[derive(Object)]
struct MetricCount {
    count: i64,
}

#[derive(Object)]
struct DataPointsInfo {
    count: i64,
    /// Samples rolled into daily aggregates by archival.
    archived: i64,
}

#[derive(Object)]
struct EventRecordsInfo {
    /// Workouts, sleep sessions and menstrual cycles together.
    count: i64,
    workouts: i64,
    sleep: i64,
    menstrual_cycles: i64,
}

#[derive(Object)]
struct ProviderConnectionCount {
    provider: String,
    count: i64,
}

#[derive(Object)]
struct ConnectionsCoverage {
    users_with_active: i64,
    users_with_multi_active: i64,
    /// Active connections per provider, most first.
    top_providers: Vec<ProviderConnectionCount>,
}

#[derive(Object)]
struct SystemInfoResponse {
    total_users: MetricCount,
    active_conn: MetricCount,
    data_points: DataPointsInfo,
    event_records: EventRecordsInfo,
    connections_coverage: ConnectionsCoverage,
}

#[derive(Object)]
struct ConfigResponse {
    /// Outgoing webhooks are part of every installation (`/api/v1/webhooks/...`).
    outgoing_webhooks_enabled: bool,
}

pub struct OperatorsApi;

#[OpenApi(prefix_path = "/api/v1")]
impl OperatorsApi {
    /// Installation statistics
    ///
    /// Users, connections, samples and event records, from counts the projections keep as
    /// they write (no table is scanned); as up to date as the read models.
    #[oai(path = "/dashboard/stats", method = "get", tag = "Tag::Dashboard")]
    async fn stats(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
    ) -> Result<Json<SystemInfoResponse>, ApiError> {
        let db = state.pool.get().await?;
        let counts = db
            .query_one(
                "SELECT coalesce(sum(count) FILTER (WHERE kind = 'users'), 0)::int8, \
                        coalesce(sum(count) FILTER (WHERE kind = 'workouts'), 0)::int8, \
                        coalesce(sum(count) FILTER (WHERE kind = 'sleep_sessions'), 0)::int8, \
                        coalesce(sum(count) FILTER (WHERE kind = 'menstrual_cycles'), 0)::int8, \
                        (SELECT coalesce(sum(count), 0)::int8 FROM sample_counts), \
                        coalesce(sum(count) FILTER (WHERE kind = 'archived_samples'), 0)::int8 \
                   FROM record_counts",
                &[],
            )
            .await?;
        // Connections are one row per user and provider: grouping the active ones is bounded
        // by the number of users, not by the data they send.
        let per_provider = db
            .query(
                "SELECT provider, count(*) FROM connections WHERE status = 'active' \
                  GROUP BY provider ORDER BY count(*) DESC, provider",
                &[],
            )
            .await?;
        let users = db
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE n > 1) FROM \
                   (SELECT user_id, count(*) AS n FROM connections WHERE status = 'active' \
                     GROUP BY user_id) u",
                &[],
            )
            .await?;
        let top_providers: Vec<ProviderConnectionCount> = per_provider
            .iter()
            .map(|r| ProviderConnectionCount {
                provider: r.get(0),
                count: r.get(1),
            })
            .collect();
        let (workouts, sleep, cycles): (i64, i64, i64) =
            (counts.get(1), counts.get(2), counts.get(3));
        Ok(Json(SystemInfoResponse {
            total_users: MetricCount {
                count: counts.get(0),
            },
            active_conn: MetricCount {
                count: top_providers.iter().map(|p| p.count).sum(),
            },
            data_points: DataPointsInfo {
                count: counts.get(4),
                archived: counts.get(5),
            },
            event_records: EventRecordsInfo {
                count: workouts + sleep + cycles,
                workouts,
                sleep,
                menstrual_cycles: cycles,
            },
            connections_coverage: ConnectionsCoverage {
                users_with_active: users.get(0),
                users_with_multi_active: users.get(1),
                top_providers,
            },
        }))
    }

    /// Installation configuration
    #[oai(path = "/config", method = "get", tag = "Tag::Dashboard")]
    async fn config(&self, _auth: DeveloperAuth) -> Json<ConfigResponse> {
        Json(ConfigResponse {
            outgoing_webhooks_enabled: true,
        })
    }
}
