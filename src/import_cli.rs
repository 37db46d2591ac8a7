//! `wearhouse import apple-health` and `wearhouse generate apple-health`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;
use wearhouse_projections::Runner;

use crate::config::DbConfig;
use crate::ingest::apple;
use crate::ingest::import::{self, ImportRequest, Outcome, Progress};
use crate::store::{Actor, Commands};

/// Parses sizes like `200MB`, `1GB`, `512KiB`, `1000` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("invalid size '{s}'"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit '{other}'")),
    };
    Ok((n * factor) as u64)
}

pub fn generate(size: u64, seed: u64, output: &Path) -> anyhow::Result<apple::Counts> {
    let file = std::fs::File::create(output)?;
    Ok(apple::generate(file, seed, size)?)
}

fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
        )
        .expect("static template"),
    );
    bar
}

/// Imports an export file for a user, projecting as it goes, with a progress bar on stderr.
pub async fn import_apple(db: &DbConfig, file: &Path, user: Uuid) -> anyhow::Result<()> {
    let url = crate::db::resolve_url(db)?;
    let (pool, pg_config) = crate::db::pool(&url, db.pool_size)?;
    crate::db::migrate(&pool, db.timescaledb != "off").await?;
    let runner = Runner::new(pool.clone(), wearhouse_projections::all());
    runner.catch_up().await?;
    let exists = pool
        .get()
        .await?
        .query_opt("SELECT 1 FROM users WHERE id = $1", &[&user])
        .await?
        .is_some();
    if !exists {
        anyhow::bail!("User with ID: {user} not found.");
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let projecting = tokio::spawn(runner.clone().run(Some(pg_config), stop_rx));
    let commands = Commands {
        pool: pool.clone(),
        runner: Some(runner.clone()),
    };
    let progress = Arc::new(Progress::default());
    let total = std::fs::metadata(file)?.len();
    let bar = bar(total);
    let watcher = {
        let progress = progress.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                let records = progress.records.load(Ordering::Relaxed);
                bar.set_position(progress.bytes_read.load(Ordering::Relaxed));
                let rate = records as f64 / started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!("{records} records, {rate:.0} records/s"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let req = ImportRequest {
        import_id: Uuid::new_v4(),
        user_id: user,
        path: PathBuf::from(file),
        filename: file.file_name().map(|f| f.to_string_lossy().into_owned()),
        sha256: None,
        actor: cli_actor(),
        limits: Default::default(),
    };
    let id = req.import_id;
    let outcome = import::run(&pool, &commands, req, progress).await;
    watcher.abort();
    bar.finish_and_clear();
    let outcome = outcome?;
    bar.set_message("projecting");
    runner.catch_up().await?;
    let _ = stop.send(true);
    let _ = projecting.await;
    match outcome {
        Outcome::Completed {
            counts,
            duplicate_of,
        } => {
            if let Some(d) = duplicate_of {
                println!("import {id}: the same file was already imported as {d}; nothing new");
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "import_id": id, "status": "completed", "counts": counts })
                    )?
                );
            }
            Ok(())
        }
        Outcome::Failed { error } => anyhow::bail!("import {id} failed: {error}"),
        Outcome::AlreadyEnded => anyhow::bail!("import {id} had already ended"),
    }
}

/// Whoever runs a command on this machine: `cli:<user>@<host>`.
pub fn cli_actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    Actor {
        kind: "cli",
        id: format!("{user}@{host}"),
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("200MB"), Ok(200_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1.5k"), Ok(1500));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("77"), Ok(77));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
