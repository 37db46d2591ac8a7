//! `wearhouse bench …`: performance figures, each printed as one line of `key=value` pairs.
//! Benchmarks run in a scratch database (`<database>_bench`) so they never touch real data.

use std::str::FromStr;
use std::time::Instant;

use serde_json::json;
use uuid::Uuid;

use crate::config::DbConfig;
use crate::store::{append, NewEvent};

/// Creates (afresh) and migrates the scratch database next to the configured one.
pub async fn scratch_pool(db: &DbConfig) -> anyhow::Result<deadpool_postgres::Pool> {
    let url = crate::db::resolve_url(db)?;
    let mut cfg = tokio_postgres::Config::from_str(&url)?;
    let name = format!("{}_bench", cfg.get_dbname().unwrap_or("wearhouse"));
    let (admin, _) = crate::db::pool(&url, 1)?;
    let client = admin.get().await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    cfg.dbname(&name);
    let manager = deadpool_postgres::Manager::new(cfg, tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(4)
        .build()?;
    crate::db::migrate(&pool, db.timescaledb != "off").await?;
    Ok(pool)
}

fn event(aggregate: &str, sequence: i64) -> NewEvent {
    NewEvent {
        aggregate_type: "Bench".into(),
        aggregate_id: aggregate.into(),
        sequence,
        event_type: "BenchRecorded".into(),
        event_version: "1".into(),
        payload: json!({ "type": "BenchRecorded", "value": sequence, "note": "a payload of realistic size for a small domain event" }),
        metadata: json!({ "actor": "bench" }),
        user_id: None,
    }
}

/// Appends of one event each (one transaction per append), then appends of 100 events each.
pub async fn events(db: &DbConfig) -> anyhow::Result<()> {
    let pool = scratch_pool(db).await?;
    let client = pool.get().await?;
    // Warm up the connection and caches.
    for i in 0..50 {
        append(&client, &[event(&format!("warm-{i}"), 1)]).await?;
    }
    let singles = 3000;
    let started = Instant::now();
    for _ in 0..singles {
        append(&client, &[event(&Uuid::new_v4().to_string(), 1)]).await?;
    }
    let single_rate = singles as f64 / started.elapsed().as_secs_f64();
    let batches = 1000;
    let started = Instant::now();
    for _ in 0..batches {
        let id = Uuid::new_v4().to_string();
        let batch: Vec<NewEvent> = (1..=100).map(|s| event(&id, s)).collect();
        append(&client, &batch).await?;
    }
    let batched_rate = (batches * 100) as f64 / started.elapsed().as_secs_f64();
    println!(
        "appends_per_s_single={:.0} appends_per_s_batched={:.0}",
        single_rate, batched_rate
    );
    Ok(())
}
