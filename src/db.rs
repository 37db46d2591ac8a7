//! Connecting to Postgres and applying the versioned, forward-only migrations.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tracing::{info, warn};
use wearhouse_projections::pglock::{LockKey, SessionLock};

use crate::cluster::{Cluster, ClusterError};
use crate::config::DbConfig;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Url(#[from] wearhouse_projections::pgtls::TlsError),
    #[error("database: {}", wearhouse_log::pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("private cluster: {0}")]
    Cluster(#[from] ClusterError),
    #[error("migration {version} ({name}) failed: {}", wearhouse_log::pg_message(.source))]
    Migration {
        version: i32,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("migration {version} was applied with different contents (checksum {found}, expected {expected})")]
    Checksum {
        version: i32,
        found: String,
        expected: String,
    },
}

/// The migrations, in order. Forward-only: a released migration is never edited (its checksum
/// is checked), a change is a new file.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "event_store",
        include_str!("../migrations/0001_event_store.sql"),
    ),
    (
        2,
        "identity_read_models",
        include_str!("../migrations/0002_identity_read_models.sql"),
    ),
    (
        3,
        "raw_samples_timeseries",
        include_str!("../migrations/0003_raw_samples_timeseries.sql"),
    ),
    (
        4,
        "kafka_offsets",
        include_str!("../migrations/0004_kafka_offsets.sql"),
    ),
    (
        5,
        "read_models_scores",
        include_str!("../migrations/0005_read_models_scores.sql"),
    ),
    (
        6,
        "provider_connections",
        include_str!("../migrations/0006_provider_connections.sql"),
    ),
    (
        7,
        "workout_segments",
        include_str!("../migrations/0007_workout_segments.sql"),
    ),
    (
        8,
        "samples_one_index",
        include_str!("../migrations/0008_samples_one_index.sql"),
    ),
    (
        9,
        "provider_scores_pacing",
        include_str!("../migrations/0009_provider_scores_pacing.sql"),
    ),
    (
        10,
        "sample_tombstones",
        include_str!("../migrations/0010_sample_tombstones.sql"),
    ),
    (
        11,
        "contract_fields",
        include_str!("../migrations/0011_contract_fields.sql"),
    ),
    (
        12,
        "revocations",
        include_str!("../migrations/0012_revocations.sql"),
    ),
    (
        13,
        "sleep_stage_totals",
        include_str!("../migrations/0013_sleep_stage_totals.sql"),
    ),
    (14, "jobs", include_str!("../migrations/0014_jobs.sql")),
    (
        15,
        "webhook_notices",
        include_str!("../migrations/0015_webhook_notices.sql"),
    ),
    (
        16,
        "outgoing_webhooks",
        include_str!("../migrations/0016_outgoing_webhooks.sql"),
    ),
    (
        17,
        "sdk_auth",
        include_str!("../migrations/0017_sdk_auth.sql"),
    ),
    (
        20,
        "audit_chain",
        include_str!("../migrations/0020_audit_chain.sql"),
    ),
    (21, "team", include_str!("../migrations/0021_team.sql")),
    (
        22,
        "job_origin",
        include_str!("../migrations/0022_job_origin.sql"),
    ),
    (
        23,
        "sdk_sleep_sessions",
        include_str!("../migrations/0023_sdk_sleep_sessions.sql"),
    ),
    (
        26,
        "rate_windows",
        include_str!("../migrations/0026_rate_windows.sql"),
    ),
    (
        28,
        "time_read_models_archival",
        include_str!("../migrations/0028_time_read_models_archival.sql"),
    ),
    (
        29,
        "record_counts",
        include_str!("../migrations/0029_record_counts.sql"),
    ),
    (
        30,
        "archived_sample_count",
        include_str!("../migrations/0030_archived_sample_count.sql"),
    ),
];

/// The database URL: DATABASE_URL when set, else the private cluster (started when needed).
pub fn resolve_url(cfg: &DbConfig) -> Result<String, DbError> {
    match &cfg.database_url {
        Some(url) => Ok(url.clone()),
        None => Ok(Cluster::new(cfg).start()?),
    }
}

/// A pool on `url`, over TLS as its `sslmode` asks (see `wearhouse_projections::pgtls`).
pub fn pool(url: &str, size: usize) -> Result<(Pool, tokio_postgres::Config), DbError> {
    let pg = wearhouse_projections::pgtls::configure(url)?;
    let manager = Manager::from_config(
        pg.clone(),
        wearhouse_projections::pgtls::connector(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(size)
        .build()
        .expect("pool builder without runtime hooks cannot fail");
    Ok((pool, pg))
}

fn checksum(sql: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(sql.as_bytes()))[..16].to_string()
}

/// Whether the TimescaleDB extension is active in this database.
pub async fn has_timescaledb(pool: &Pool) -> Result<bool, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await?
        .is_some())
}

/// Applies every migration not yet applied, under an advisory lock so concurrent starts are
/// safe. Returns how many were applied.
pub async fn migrate(pool: &Pool, timescaledb: bool) -> Result<usize, DbError> {
    let mut lock = SessionLock::acquire(pool.get().await?, LockKey::Id(7261001)).await?;
    let result = migrate_locked(lock.client_mut(), timescaledb).await;
    lock.release().await?;
    result
}

async fn migrate_locked(
    client: &mut deadpool_postgres::Object,
    timescaledb: bool,
) -> Result<usize, DbError> {
    // TimescaleDB first, so migrations can use it when present; without it they fall back to
    // plain range partitioning.
    let has_ext = client
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await?
        .is_some();
    if !has_ext && !timescaledb {
        warn!("TimescaleDB disabled by WEARHOUSE_TIMESCALEDB=off: using plain range partitioning");
    } else if !has_ext {
        if let Err(e) = client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            .await
        {
            warn!(reason = %e, "TimescaleDB extension unavailable: using plain range partitioning");
        }
    }
    // Checked first: `CREATE TABLE IF NOT EXISTS` on an existing table makes Postgres send a
    // NOTICE, which would be logged by every command run on an existing database.
    let has_table = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if !has_table {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
    }
    let applied: Vec<(i32, String)> = client
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut count = 0;
    for &(version, name, sql) in MIGRATIONS {
        let expected = checksum(sql);
        if let Some((_, found)) = applied.iter().find(|(v, _)| *v == version) {
            if *found != expected {
                return Err(DbError::Checksum {
                    version,
                    found: found.clone(),
                    expected,
                });
            }
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .map_err(|source| DbError::Migration {
                version,
                name,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&version, &name, &expected],
        )
        .await?;
        tx.commit().await?;
        info!(version, name, "migration applied");
        count += 1;
    }
    Ok(count)
}
