//! `wearhouse relay`, `wearhouse project` and `wearhouse replay`: the log as a stream.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use tokio::sync::watch;
use tracing::info;
use wearhouse_kafka::replay::{self, Filter};
use wearhouse_kafka::worker::Worker;
use wearhouse_kafka::{KafkaConfig, Relay};
use wearhouse_projections::Runner;

use crate::config::DbConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// Tail the Postgres log directly (global order; the embedded default)
    Postgres,
    /// Consume the events topic as a member of the consumer group (per-user order)
    Kafka,
}

#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Where the workers read the log from.
    #[arg(long, value_enum, default_value_t = Source::Postgres)]
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One envelope per line (the `<prefix>.events` message values)
    Jsonl,
    /// One file per raw payload, named by its SHA-256, with the original bytes (needs --out)
    Raw,
    /// One Arrow IPC stream file per sample batch, `<batch id>.arrow` (needs --out)
    Arrow,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Read the Postgres log (log order) or the topics (per-partition order): events for
    /// jsonl, raw for raw, samples for arrow.
    #[arg(long, value_enum, default_value_t = Source::Postgres)]
    pub source: Source,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Directory for raw and arrow files (created if missing).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only entries whose position is at least this.
    #[arg(long)]
    pub from_position: Option<i64>,
    /// Only entries recorded at or after this RFC 3339 time, e.g. 2024-05-01T00:00:00Z.
    #[arg(long)]
    pub from_time: Option<DateTime<Utc>>,
    /// Only entries of this user (repeatable).
    #[arg(long = "user")]
    pub users: Vec<uuid::Uuid>,
    /// Only entries of this event type (repeatable).
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// Only raw payloads of this provider, e.g. apple (repeatable; selects
    /// `RawPayloadReceived` entries).
    #[arg(long = "provider")]
    pub providers: Vec<String>,
    /// Only raw payloads of this kind, e.g. apple_health_export (repeatable).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Stop after this many lines.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// A watch that turns true on SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        info!("stopping");
        let _ = tx.send(true);
    });
    rx
}

async fn connect(
    db: &DbConfig,
) -> anyhow::Result<(deadpool_postgres::Pool, tokio_postgres::Config)> {
    let url = crate::db::resolve_url(db)?;
    let (pool, pg) = crate::db::pool(&url, db.pool_size.min(8))?;
    crate::db::migrate(&pool, db.timescaledb != "off").await?;
    Ok((pool, pg))
}

pub async fn relay(db: &DbConfig, kafka: KafkaConfig) -> anyhow::Result<()> {
    kafka.brokers()?;
    let (pool, pg) = connect(db).await?;
    let relay = Relay::new(pool, kafka);
    relay.run(Some(pg), shutdown_on_signal()).await;
    Ok(())
}

pub async fn project(db: &DbConfig, kafka: KafkaConfig, args: ProjectArgs) -> anyhow::Result<()> {
    let (pool, pg) = connect(db).await?;
    let shutdown = shutdown_on_signal();
    match args.source {
        Source::Postgres => {
            let runner = Runner::new(pool, wearhouse_projections::all());
            runner.run(Some(pg), shutdown).await;
        }
        Source::Kafka => {
            kafka.brokers()?;
            // The topic carries no secrets, so the read models built from them tail Postgres.
            let (from_pg, from_kafka): (Vec<_>, Vec<_>) =
                wearhouse_projections::all().into_iter().partition(|p| {
                    wearhouse_kafka::redact::POSTGRES_ONLY_PROJECTIONS.contains(&p.name())
                });
            let runner = Runner::new(pool.clone(), from_pg);
            let pg_task = tokio::spawn(runner.run(Some(pg.clone()), shutdown.clone()));
            let result = Worker::new(pool, pg, kafka, from_kafka).run(shutdown).await;
            pg_task.abort();
            result?;
        }
    }
    Ok(())
}

pub async fn replay(db: &DbConfig, kafka: &KafkaConfig, args: ReplayArgs) -> anyhow::Result<()> {
    let filter = Filter {
        from_position: args.from_position,
        from_time: args.from_time,
        users: args.users,
        event_types: args.event_types,
        providers: args.providers,
        kinds: args.kinds,
        limit: args.limit,
    };
    if args.format != Format::Jsonl {
        return replay_files(db, kafka, args.source, args.format, args.out, &filter).await;
    }
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = match args.source {
        Source::Postgres => {
            let (pool, _) = connect(db).await?;
            let client = pool.get().await?;
            replay::from_postgres(&client, &filter, &mut out).await?
        }
        Source::Kafka => replay::from_kafka(kafka, &filter, &mut out).await?,
    };
    out.flush()?;
    info!(lines = written, "replay done");
    Ok(())
}

async fn replay_files(
    db: &DbConfig,
    kafka: &KafkaConfig,
    source: Source,
    format: Format,
    out: Option<PathBuf>,
    filter: &Filter,
) -> anyhow::Result<()> {
    let Some(dir) = out else {
        anyhow::bail!("--format raw and --format arrow write files: give --out DIR");
    };
    if format == Format::Arrow && !(filter.providers.is_empty() && filter.kinds.is_empty()) {
        anyhow::bail!(
            "--provider and --kind select raw payloads; they do not apply to --format arrow"
        );
    }
    let files = match source {
        Source::Postgres => {
            let (pool, _) = connect(db).await?;
            let client = pool.get().await?;
            match format {
                Format::Raw => replay::raw_from_postgres(&client, filter, &dir).await?,
                _ => replay::arrow_from_postgres(&client, filter, &dir).await?,
            }
        }
        Source::Kafka => match format {
            Format::Raw => replay::raw_from_kafka(kafka, filter, &dir).await?,
            _ => replay::arrow_from_kafka(kafka, filter, &dir).await?,
        },
    };
    info!(files, dir = %dir.display(), "replay done");
    Ok(())
}
