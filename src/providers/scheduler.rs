//! The pull scheduler inside `serve`: every active connection of a pull provider (enabled, in
//! pull live-sync mode) is synced once per interval, from its last sync to now. Users linked to
//! one provider account are pulled once, through the oldest connection (the primary), and the
//! engine fans the data out to the others. Each due pull is a durable job (see
//! `services::syncs`): one per connection and interval whichever process's scheduler sees it
//! first, none while one is waiting or running; a 429 postpones its next attempt until the
//! Retry-After has passed, other failures back off exponentially. Two processes never sync one
//! connection at once: the engine holds a Postgres advisory lock per connection.

use std::sync::Arc;
use std::time::Duration;
use wearhouse_projections::pglock::{LockKey, SessionLock};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::warn;
use uuid::Uuid;

use super::engine::{Engine, SyncRequest};
use crate::services::syncs::Syncs;

/// Enqueues due pulls until `shutdown` turns true.
pub async fn run(engine: Arc<Engine>, syncs: Syncs, mut shutdown: watch::Receiver<bool>) {
    let interval = engine.config.sync_interval_secs as i64;
    let tick = Duration::from_secs(engine.config.sync_interval_secs.clamp(1, 30));
    let pull: Vec<String> = engine
        .registry
        .all()
        .filter(|p| p.as_pull().is_some())
        .map(|p| p.name().to_string())
        .collect();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let due = match due_connections(&engine, &pull, interval).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "scheduler cannot list connections");
                continue;
            }
        };
        let now = Utc::now();
        let slot = now.timestamp() / interval.max(1);
        for (user, provider, last) in due {
            let req = SyncRequest {
                // Each attempt runs under a run id of its own (see `services::syncs`).
                run_id: Uuid::nil(),
                user_id: user,
                provider,
                source: "scheduled".into(),
                start: last.unwrap_or_else(|| now - chrono::Duration::days(1)),
                end: now,
                data_types: vec![],
            };
            if let Err(e) = syncs.enqueue_scheduled(req, slot).await {
                warn!(user = %user, error = %e, "scheduled pull not recorded");
            }
        }
    }
}

/// Keeps the webhook subscriptions of every provider in webhook live-sync mode alive, every
/// `subscription_check_secs` (first right at start: they may have lapsed while no process ran),
/// until `shutdown` turns true. Several processes take turns through an advisory lock.
pub async fn maintain_subscriptions(
    engine: Arc<Engine>,
    public_url: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = Duration::from_secs(engine.config.subscription_check_secs.max(1));
    loop {
        for p in engine.registry.all() {
            let name = p.name();
            if p.as_subscriptions().is_none() {
                continue;
            }
            let callback = format!("{public_url}/api/v1/providers/{name}/webhooks");
            if let Err(e) = maintain_one(&engine, name, &callback).await {
                warn!(provider = name, error = %e, "webhook subscriptions not maintained");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn maintain_one(
    engine: &Engine,
    provider: &str,
    callback: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let client = engine.pool.get().await?;
    let webhook_mode = client
        .query_opt(
            "SELECT 1 FROM provider_settings WHERE provider = $1 AND is_enabled AND live_sync_mode = 'webhook'",
            &[&provider],
        )
        .await?
        .is_some();
    if !webhook_mode {
        return Ok(());
    }
    let key = LockKey::Name(format!("subscriptions:{provider}"));
    let Some(lock) = SessionLock::try_acquire(client, key).await? else {
        return Ok(());
    };
    let result = engine.maintain_subscriptions(provider, callback).await;
    lock.release().await?;
    result?;
    Ok(())
}

async fn due_connections(
    engine: &Engine,
    providers: &[String],
    interval: i64,
) -> Result<Vec<(Uuid, String, Option<DateTime<Utc>>)>, Box<dyn std::error::Error + Send + Sync>> {
    let rows = engine
        .pool
        .get()
        .await?
        .query(
            "SELECT user_id, provider, last_synced_at FROM connections c \
             WHERE status = 'active' AND provider = ANY($1) \
               AND NOT EXISTS (SELECT 1 FROM provider_settings s WHERE s.provider = c.provider \
                               AND (s.live_sync_mode = 'webhook' OR NOT s.is_enabled)) \
               AND (last_synced_at IS NULL OR last_synced_at < now() - make_interval(secs => $2::float8)) \
               AND NOT EXISTS (SELECT 1 FROM connections o WHERE o.provider = c.provider \
                               AND o.provider_user_id = c.provider_user_id AND o.status = 'active' \
                               AND (o.created_at, o.user_id) < (c.created_at, c.user_id)) \
             ORDER BY last_synced_at NULLS FIRST LIMIT 100",
            &[&providers, &(interval as f64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
