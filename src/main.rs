//! wearhouse: a self-hosted health-data platform speaking the Open Wearables API.

mod api;
mod auth;
mod bench;
mod cluster;
mod config;
mod coverage;
mod db;
mod serve;
mod store;
mod stream;

use clap::{Parser, Subcommand};
use wearhouse_kafka::KafkaConfig;
use wearhouse_projections::Runner;

use crate::config::{DbConfig, LogConfig, ServeConfig};

#[derive(Parser)]
#[command(
    name = "wearhouse",
    version,
    about = "Self-hosted health-data platform (Open Wearables API)"
)]
struct Cli {
    #[command(flatten)]
    db: DbConfig,
    #[command(flatten)]
    log: LogConfig,
    #[command(flatten)]
    kafka: KafkaConfig,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the projection workers
    Serve(ServeConfig),
    /// Like `serve`, after creating a demo developer, an API key and demo data (printed)
    Demo(ServeConfig),
    /// Apply database migrations and exit
    Migrate,
    /// Manage the private PostgreSQL + TimescaleDB cluster (the embedded default)
    #[command(subcommand)]
    Db(DbCommand),
    /// Inspect and rebuild read models
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Publish the event log to Kafka (needs WEARHOUSE_KAFKA_BROKERS)
    Relay,
    /// Run the projection workers without the API
    Project(stream::ProjectArgs),
    /// Write log entries as JSON lines (the envelope of the events topic)
    Replay(stream::ReplayArgs),
    /// Performance benchmarks; each prints one line of key=value figures
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Create the cluster's data directory (idempotent)
    Setup,
    /// Start the cluster (set up first when needed) and print its URL
    Start,
    /// Stop the cluster
    Stop,
    /// Show where the cluster lives and whether it runs
    Status,
    /// Print the cluster's connection URL
    Url,
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Each read model's checkpoint and how far it is behind the log
    Status,
    /// Empty one read model and rebuild it from the whole log
    Rebuild {
        /// Read model name (see `projections status`)
        name: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Event-store appends per second, single and batched (100 events per append)
    Events,
    /// Relay throughput and commit-to-consume lag through the broker (needs WEARHOUSE_KAFKA_BROKERS)
    Relay,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    config::init_logging(&cli.log);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db;
    match cli.command {
        Command::Serve(cfg) => {
            let platform = serve::start(&db, cfg, &cli.kafka).await?;
            serve::bootstrap_admin(&platform.state).await?;
            platform.serve().await
        }
        Command::Demo(cfg) => {
            let platform = serve::start(&db, cfg, &cli.kafka).await?;
            demo(&platform).await?;
            platform.serve().await
        }
        Command::Migrate => {
            let url = db::resolve_url(&db)?;
            let (pool, _) = db::pool(&url, 2)?;
            let n = db::migrate(&pool).await?;
            println!("{n} migration(s) applied; {} known", db::MIGRATIONS.len());
            Ok(())
        }
        Command::Db(cmd) => {
            let cluster = cluster::Cluster::new(&db);
            match cmd {
                DbCommand::Setup => cluster.setup()?,
                DbCommand::Start => println!("{}", cluster.start()?),
                DbCommand::Stop => {
                    let stopped = cluster.stop()?;
                    println!("{}", if stopped { "stopped" } else { "not running" });
                }
                DbCommand::Status => println!("{}", cluster.status()),
                DbCommand::Url => println!("{}", cluster.url()),
            }
            Ok(())
        }
        Command::Projections(cmd) => {
            let url = db::resolve_url(&db)?;
            let (pool, _) = db::pool(&url, 4)?;
            db::migrate(&pool).await?;
            let projections = wearhouse_projections::all();
            match cmd {
                ProjectionsCommand::Status => {
                    let client = pool.get().await?;
                    for p in &projections {
                        let row = client
                            .query_opt(
                                "SELECT position FROM checkpoints WHERE name = $1",
                                &[&p.name()],
                            )
                            .await?;
                        let position: i64 = row.map(|r| r.get(0)).unwrap_or(0);
                        let behind: i64 = client
                            .query_one(
                                "SELECT count(*) FROM events WHERE position > $1",
                                &[&position],
                            )
                            .await?
                            .get(0);
                        println!("{} position={position} behind<={behind}", p.name());
                    }
                }
                ProjectionsCommand::Rebuild { name } => {
                    let p = projections.iter().find(|p| p.name() == name).ok_or(
                        wearhouse_projections::ProjectionError::Unknown(name.clone()),
                    )?;
                    wearhouse_projections::runner::reset(&pool, p.as_ref()).await?;
                    let runner = Runner::new(pool.clone(), vec![p.clone()]);
                    runner.catch_up().await?;
                    println!("{name} rebuilt");
                }
            }
            Ok(())
        }
        Command::Relay => stream::relay(&db, cli.kafka).await,
        Command::Project(args) => stream::project(&db, cli.kafka, args).await,
        Command::Replay(args) => stream::replay(&db, &cli.kafka, args).await,
        Command::Bench(BenchCommand::Events) => bench::events(&db).await,
        Command::Bench(BenchCommand::Relay) => bench::relay(&db, &cli.kafka).await,
    }
}

/// Demo data: a developer with a known password, a fresh API key and a few users.
async fn demo(platform: &serve::Platform) -> anyhow::Result<()> {
    let state = &platform.state;
    let email = state
        .config
        .admin_email
        .clone()
        .unwrap_or_else(|| "demo@wearhouse.local".into());
    let password = state
        .config
        .admin_password
        .clone()
        .unwrap_or_else(|| "demo-password".into());
    serve::ensure_developer(state, &email, &password).await?;
    let key = serve::system_api_key(state, "demo").await?;
    let users = state
        .pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM users", &[])
        .await?
        .get::<_, i64>(0);
    if users == 0 {
        for (first, last, mail) in [
            ("Ada", "Lovelace", "ada@example.com"),
            ("Alan", "Turing", "alan@example.com"),
            ("Grace", "Hopper", "grace@example.com"),
        ] {
            let id = uuid::Uuid::new_v4();
            let command = wearhouse_domain::user::UserCommand::Create {
                id,
                profile: wearhouse_domain::user::UserProfile {
                    first_name: Some(first.into()),
                    last_name: Some(last.into()),
                    email: Some(mail.into()),
                    external_user_id: None,
                },
                at: chrono::Utc::now(),
            };
            let actor = store::Actor {
                kind: "system",
                id: "demo".into(),
                request_id: None,
            };
            state
                .commands
                .execute::<wearhouse_domain::user::User>(
                    &id.to_string(),
                    command,
                    &actor,
                    Some(id),
                    Some("users"),
                )
                .await
                .map_err(|e| anyhow::anyhow!("demo user: {e}"))?;
        }
    }
    let url = state.config.public_url();
    println!(
        "\nwearhouse demo is running\n  URL:        {url}\n  API docs:   {url}/docs\n  developer:  {email} / {password}\n  API key:    {key}\n\n  try: curl -H 'X-Open-Wearables-API-Key: {key}' {url}/api/v1/users\n"
    );
    Ok(())
}
