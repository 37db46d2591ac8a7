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
    Ok(scratch(db).await?.0)
}

/// The scratch database's pool and URL.
pub async fn scratch(db: &DbConfig) -> anyhow::Result<(deadpool_postgres::Pool, String)> {
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
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
    Ok((pool, format!("{base}/{name}")))
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

/// Peak resident memory of this process, from the kernel's high-water mark.
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

#[derive(clap::Parser)]
struct ServeArgs {
    #[command(flatten)]
    serve: crate::config::ServeConfig,
}

/// Generates an export of `size` bytes, uploads it over HTTP to an in-process server on a scratch
/// database, and waits until the import is complete and every projection has caught up.
pub async fn apple_import(db: &DbConfig, size: u64) -> anyhow::Result<()> {
    use crate::ingest::apple;
    use clap::Parser;
    let dir = db.home.join("bench");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("apple-{size}-seed1.xml"));
    if !file.exists() {
        let tmp = file.with_extension("partial");
        apple::generate(std::fs::File::create(&tmp)?, 1, size)?;
        std::fs::rename(&tmp, &file)?;
    }
    // Parser alone (what the file costs to read), on this core.
    let started = Instant::now();
    let report = {
        let f = file.clone();
        tokio::task::spawn_blocking(move || {
            apple::parse(apple::open_export(&f)?, &mut apple::NullSink)
        })
        .await??
    };
    let records = report.counts.elements();
    let parse_rate = records as f64 / started.elapsed().as_secs_f64();

    let (_, url) = scratch(db).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bind = format!("127.0.0.1:{port}");
    let cfg = ServeArgs::parse_from(["serve", "--bind", &bind]).serve;
    let mut scratch_db = db.clone();
    scratch_db.database_url = Some(url);
    let platform = crate::serve::start(&scratch_db, cfg).await?;
    let state = platform.state.clone();
    let key = crate::serve::system_api_key(&state, "bench").await?;
    tokio::spawn(platform.serve());
    let http = reqwest::Client::new();
    let base = format!("http://{bind}/api/v1");
    while http.get(format!("http://{bind}/")).send().await.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let user: serde_json::Value = http
        .post(format!("{base}/users"))
        .header("X-Open-Wearables-API-Key", &key)
        .json(&json!({"first_name": "Bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let user_id = user["id"].as_str().unwrap_or_default().to_string();

    let started = Instant::now();
    let len = std::fs::metadata(&file)?.len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::open(&file).await?,
        1 << 20,
    ));
    let part = reqwest::multipart::Part::stream_with_length(body, len).file_name("export.xml");
    let accepted: serde_json::Value = http
        .post(format!("{base}/users/{user_id}/import/apple/xml/direct"))
        .header("X-Open-Wearables-API-Key", &key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let task = accepted["task_id"].as_str().unwrap_or_default().to_string();
    loop {
        let status: serde_json::Value = http
            .get(format!("{base}/users/{user_id}/imports/{task}"))
            .header("X-Open-Wearables-API-Key", &key)
            .send()
            .await?
            .json()
            .await?;
        match status["status"].as_str() {
            Some("completed") => break,
            Some("failed") => anyhow::bail!("import failed: {}", status["error"]),
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let imported = started.elapsed().as_secs_f64();
    while !wearhouse_projections::caught_up(&state.pool.get().await?).await? {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("upload+import {imported:.2}s, projections caught up at {elapsed:.2}s");
    println!(
        "end_to_end_records_per_s={:.0} parse_records_per_s={:.0} peak_rss_mb={} records={}",
        records as f64 / elapsed,
        parse_rate,
        peak_rss_mb(),
        records
    );
    Ok(())
}
