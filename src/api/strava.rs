//! Strava's own webhook routes (`/api/v1/strava/webhooks`, and the deprecated
//! `/api/v1/strava/webhook` upstream kept): the callback URL registered with Strava's push
//! subscription. They answer as `/providers/strava/webhooks` does: the GET is the
//! subscription's `hub.challenge`, the POST an event.

use std::collections::BTreeMap;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{Object, OpenApi, Tags};
use serde_json::Value;

use super::{request_id, ApiError, AppState};
use crate::services::webhooks::{Delivery, Webhooks};

const PROVIDER: &str = "strava";

#[derive(Tags)]
enum Tag {
    /// Strava's webhook callback
    StravaWebhooks,
}

#[derive(Object)]
struct StravaAccepted {
    status: String,
}

#[derive(Object)]
struct StravaHealth {
    status: String,
    service: String,
}

pub struct StravaWebhooksApi;

async fn event(
    state: &AppState,
    req: &Request,
    body: &[u8],
) -> Result<Json<StravaAccepted>, ApiError> {
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let delivery = Delivery {
        provider: PROVIDER,
        headers,
        query: req.uri().query(),
        body,
        request_id: request_id(req),
    };
    let receipt = Webhooks::new(state.providers.clone())
        .receive(delivery)
        .await?;
    Ok(Json(StravaAccepted {
        status: receipt.as_str().into(),
    }))
}

fn challenge(state: &AppState, req: &Request) -> Result<Json<Value>, ApiError> {
    let answer = Webhooks::new(state.providers.clone()).challenge(PROVIDER, req.uri().query())?;
    Ok(Json(answer))
}

fn health() -> Json<StravaHealth> {
    Json(StravaHealth {
        status: "ok".into(),
        service: "strava-webhooks".into(),
    })
}

#[OpenApi(prefix_path = "/api/v1/strava")]
impl StravaWebhooksApi {
    /// Strava's subscription verification (`hub.challenge`)
    #[oai(path = "/webhooks", method = "get", tag = "Tag::StravaWebhooks")]
    async fn verify(&self, state: Data<&AppState>, req: &Request) -> Result<Json<Value>, ApiError> {
        challenge(&state, req)
    }

    /// A Strava event (an activity created, updated or deleted; an athlete's deauthorization)
    #[oai(path = "/webhooks", method = "post", tag = "Tag::StravaWebhooks")]
    async fn event(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Binary<Vec<u8>>,
    ) -> Result<Json<StravaAccepted>, ApiError> {
        event(&state, req, &body.0).await
    }

    /// Whether the Strava callback is served
    #[oai(path = "/webhooks/health", method = "get", tag = "Tag::StravaWebhooks")]
    async fn health(&self) -> Json<StravaHealth> {
        health()
    }

    /// Strava's subscription verification (deprecated path)
    #[oai(
        path = "/webhook",
        method = "get",
        tag = "Tag::StravaWebhooks",
        deprecated
    )]
    async fn verify_deprecated(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<Json<Value>, ApiError> {
        challenge(&state, req)
    }

    /// A Strava event (deprecated path)
    #[oai(
        path = "/webhook",
        method = "post",
        tag = "Tag::StravaWebhooks",
        deprecated
    )]
    async fn event_deprecated(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Binary<Vec<u8>>,
    ) -> Result<Json<StravaAccepted>, ApiError> {
        event(&state, req, &body.0).await
    }

    /// Whether the Strava callback is served (deprecated path)
    #[oai(
        path = "/webhook/health",
        method = "get",
        tag = "Tag::StravaWebhooks",
        deprecated
    )]
    async fn health_deprecated(&self) -> Json<StravaHealth> {
        health()
    }
}
