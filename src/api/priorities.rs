//! `/api/v1/priorities/providers` and `/api/v1/priorities/device-types` (developer JWT): which
//! source wins where sources overlap (1 is best). Defaults come from the contract; a change is
//! a `…PrioritiesSet` event and the `source_priorities` read model keeps what was set. Every
//! merged read model (daily summaries, nights, scores) is recomputed when they change.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use uuid::Uuid;
use wearhouse_domain::priority::{self, PriorityEvent, DEFAULT_DEVICE_TYPES, DEFAULT_PROVIDERS};

use super::error::internal_api;
use super::{request_id, ApiError, AppState};
use crate::auth::DeveloperAuth;

#[derive(Tags)]
enum Tag {
    /// Source priorities for merging overlapping data
    Priorities,
}

#[derive(Object, Debug, Clone)]
pub struct ProviderPriority {
    pub provider: String,
    pub priority: i32,
    /// Stable per provider.
    pub id: Uuid,
    /// When it was first set; for a default never changed, when the defaults were installed.
    pub created_at: DateTime<Utc>,
    /// When it was last set; for a default never changed, when the defaults were installed.
    pub updated_at: DateTime<Utc>,
}

#[derive(Object, Debug, Clone)]
pub struct DeviceTypePriority {
    pub device_type: String,
    pub priority: i32,
    /// Stable per device type.
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One effective priority: name, priority, created, updated.
type Item = (String, i32, DateTime<Utc>, DateTime<Utc>);

/// The namespace of priority ids (uuid v5 of kind and name): the same id for a provider or
/// device type whether its row is a default or was set, and across read-model rebuilds.
const PRIORITY_NS: Uuid = Uuid::from_u128(0x7c1d_52e0_93a4_4f61_b2d8_0e4f_6a13_9c25);

fn priority_id(kind: &str, name: &str) -> Uuid {
    Uuid::new_v5(&PRIORITY_NS, format!("{kind}:{name}").as_bytes())
}

#[derive(Object, Debug)]
pub struct ProviderPriorityList {
    pub items: Vec<ProviderPriority>,
}

#[derive(Object, Debug)]
pub struct DeviceTypePriorityList {
    pub items: Vec<DeviceTypePriority>,
}

#[derive(Object, Debug)]
pub struct ProviderPriorityUpdate {
    pub provider: String,
    pub priority: i32,
}

#[derive(Object, Debug)]
pub struct DeviceTypePriorityUpdate {
    pub device_type: String,
    pub priority: i32,
}

#[derive(Object, Debug)]
pub struct ProviderPriorityBulk {
    pub priorities: Vec<ProviderPriorityUpdate>,
}

#[derive(Object, Debug)]
pub struct DeviceTypePriorityBulk {
    pub priorities: Vec<DeviceTypePriorityUpdate>,
}

#[derive(Object, Debug)]
pub struct PriorityValue {
    pub priority: i32,
}

/// Defaults, overridden by what was set, plus any provider seen in the data (ranked after
/// every configured one), best first. Rows never set carry the time the defaults were
/// installed (upstream seeds them as rows at that point); a provider first seen in the data
/// carries the time its first data source appeared.
async fn effective(state: &AppState, kind: &str) -> Result<Vec<Item>, ApiError> {
    let client = state.db().await.map_err(internal_api)?;
    let defaults: &[(&str, i32)] = if kind == "provider" {
        &DEFAULT_PROVIDERS
    } else {
        &DEFAULT_DEVICE_TYPES
    };
    let installed: DateTime<Utc> = client
        .query_one(
            "SELECT coalesce((SELECT applied_at FROM schema_migrations WHERE version = 5), now())",
            &[],
        )
        .await?
        .get(0);
    let mut items: Vec<Item> = defaults
        .iter()
        .map(|(n, p)| (n.to_string(), *p, installed, installed))
        .collect();
    for r in client
        .query(
            "SELECT name, priority, created_at, updated_at FROM source_priorities WHERE kind = $1",
            &[&kind],
        )
        .await?
    {
        let name: String = r.get(0);
        let (priority, created, updated) = (r.get(1), r.get(2), r.get(3));
        match items.iter_mut().find(|i| i.0 == name) {
            Some(i) => {
                i.1 = priority;
                i.3 = updated;
                // A default changed later keeps its install time as creation.
                i.2 = i.2.min(created);
            }
            None => items.push((name, priority, created, updated)),
        }
    }
    if kind == "provider" {
        let next = items.iter().map(|i| i.1).max().unwrap_or(0) + 1;
        for r in client
            .query(
                "SELECT provider, min(created_at) FROM data_sources GROUP BY provider",
                &[],
            )
            .await?
        {
            let name: String = r.get(0);
            if !items.iter().any(|i| i.0 == name) {
                let seen: DateTime<Utc> = r.get(1);
                items.push((name, next, seen, seen));
            }
        }
    }
    items.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    Ok(items)
}

async fn record(
    state: &AppState,
    req: &Request,
    auth: &DeveloperAuth,
    event: PriorityEvent,
) -> Result<(), ApiError> {
    state
        .commands
        .record(
            PriorityEvent::AGGREGATE_TYPE,
            PriorityEvent::STREAM,
            event.event_type(),
            serde_json::to_value(&event).map_err(internal_api)?,
            &auth.principal().actor(request_id(req)),
            None,
            Some("source_priorities"),
        )
        .await
        .map_err(internal_api)
}

fn providers(items: Vec<Item>) -> Vec<ProviderPriority> {
    items
        .into_iter()
        .map(
            |(provider, priority, created_at, updated_at)| ProviderPriority {
                id: priority_id("provider", &provider),
                provider,
                priority,
                created_at,
                updated_at,
            },
        )
        .collect()
}

fn device_types(items: Vec<Item>) -> Vec<DeviceTypePriority> {
    items
        .into_iter()
        .map(
            |(device_type, priority, created_at, updated_at)| DeviceTypePriority {
                id: priority_id("device_type", &device_type),
                device_type,
                priority,
                created_at,
                updated_at,
            },
        )
        .collect()
}

fn rejected(e: priority::PriorityError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

pub struct PrioritiesApi;

#[OpenApi(prefix_path = "/api/v1")]
impl PrioritiesApi {
    /// Provider priorities, best first
    #[oai(
        path = "/priorities/providers",
        method = "get",
        tag = "Tag::Priorities"
    )]
    async fn get_providers(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
    ) -> Result<Json<ProviderPriorityList>, ApiError> {
        Ok(Json(ProviderPriorityList {
            items: providers(effective(&state, "provider").await?),
        }))
    }

    /// Set several provider priorities at once
    #[oai(
        path = "/priorities/providers",
        method = "put",
        tag = "Tag::Priorities"
    )]
    async fn put_providers(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        body: Json<ProviderPriorityBulk>,
    ) -> Result<Json<ProviderPriorityList>, ApiError> {
        let items: Vec<(String, i32)> = body
            .0
            .priorities
            .into_iter()
            .map(|p| (p.provider, p.priority))
            .collect();
        let event = priority::set_providers(&items).map_err(rejected)?;
        record(&state, req, &auth, event).await?;
        Ok(Json(ProviderPriorityList {
            items: providers(effective(&state, "provider").await?),
        }))
    }

    /// Set one provider's priority
    #[oai(
        path = "/priorities/providers/:provider",
        method = "put",
        tag = "Tag::Priorities"
    )]
    async fn put_provider(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        provider: Path<String>,
        body: Json<PriorityValue>,
    ) -> Result<Json<ProviderPriority>, ApiError> {
        let event =
            priority::set_providers(&[(provider.0.clone(), body.0.priority)]).map_err(rejected)?;
        record(&state, req, &auth, event).await?;
        let name = provider.0.trim().to_lowercase();
        providers(effective(&state, "provider").await?)
            .into_iter()
            .find(|p| p.provider == name)
            .map(Json)
            .ok_or_else(|| internal_api("priority missing after it was set"))
    }

    /// Device-type priorities, best first
    #[oai(
        path = "/priorities/device-types",
        method = "get",
        tag = "Tag::Priorities"
    )]
    async fn get_device_types(
        &self,
        state: Data<&AppState>,
        _auth: DeveloperAuth,
    ) -> Result<Json<DeviceTypePriorityList>, ApiError> {
        Ok(Json(DeviceTypePriorityList {
            items: device_types(effective(&state, "device_type").await?),
        }))
    }

    /// Set several device-type priorities at once
    #[oai(
        path = "/priorities/device-types",
        method = "put",
        tag = "Tag::Priorities"
    )]
    async fn put_device_types(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        body: Json<DeviceTypePriorityBulk>,
    ) -> Result<Json<DeviceTypePriorityList>, ApiError> {
        let items: Vec<(String, i32)> = body
            .0
            .priorities
            .into_iter()
            .map(|p| (p.device_type, p.priority))
            .collect();
        let event = priority::set_device_types(&items).map_err(rejected)?;
        record(&state, req, &auth, event).await?;
        Ok(Json(DeviceTypePriorityList {
            items: device_types(effective(&state, "device_type").await?),
        }))
    }

    /// Set one device type's priority
    #[oai(
        path = "/priorities/device-types/:device_type",
        method = "put",
        tag = "Tag::Priorities"
    )]
    async fn put_device_type(
        &self,
        state: Data<&AppState>,
        auth: DeveloperAuth,
        req: &Request,
        device_type: Path<String>,
        body: Json<PriorityValue>,
    ) -> Result<Json<DeviceTypePriority>, ApiError> {
        let event = priority::set_device_types(&[(device_type.0.clone(), body.0.priority)])
            .map_err(rejected)?;
        record(&state, req, &auth, event).await?;
        let name = device_type.0.trim().to_lowercase();
        device_types(effective(&state, "device_type").await?)
            .into_iter()
            .find(|p| p.device_type == name)
            .map(Json)
            .ok_or_else(|| internal_api("priority missing after it was set"))
    }
}
