//! Outgoing webhooks: signing per Standard Webhooks (`signing`), the destination check
//! (`guard`), and the delivery engine that drains the outbox the `webhook_outbox` projection
//! writes (`delivery`). Endpoints are the `WebhookEndpoint` aggregate; the API is
//! `api/webhooks.rs`.

pub mod delivery;
pub mod guard;
pub mod signing;

use chrono::{DateTime, Utc};

/// The engine's idea of now: injectable, so tests can move past the failure window.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock shifted by a fixed amount (a simulated future).
pub struct OffsetClock(pub chrono::TimeDelta);

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

/// The sealing context of an endpoint's secret: a sealed secret opens only on its endpoint.
pub fn secret_context(endpoint_id: uuid::Uuid) -> String {
    format!("webhook_endpoint:{endpoint_id}:secret")
}

/// The id the API shows for an endpoint (Svix-style prefix) and back.
pub fn endpoint_ref(id: uuid::Uuid) -> String {
    format!("ep_{}", id.simple())
}

pub fn parse_endpoint_ref(s: &str) -> Option<uuid::Uuid> {
    s.strip_prefix("ep_").unwrap_or(s).parse().ok()
}
