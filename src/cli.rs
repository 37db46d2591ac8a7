//! The command line: every subcommand and the environment it reads.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use wearhouse_kafka::KafkaConfig;
use wearhouse_projections::Runner;

use crate::config::{DbConfig, LogConfig, ServeConfig};
use crate::{
    bench, cluster, config, db, import_cli, ingest, jobs, providers, serve, simulator, store,
    stream,
};

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
    /// Write log entries as JSON lines, raw payload files or Arrow IPC files
    Replay(stream::ReplayArgs),
    /// Run the current mappers over stored raw payloads and append the corrected events
    Renormalize {
        /// Provider whose payloads to re-map (apple)
        #[arg(long)]
        provider: String,
        /// Only payloads received at or after this RFC 3339 time
        #[arg(long)]
        since: chrono::DateTime<chrono::Utc>,
    },
    /// Performance benchmarks; each prints one line of key=value figures
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Import a file for a user (progress on stderr, counts on stdout)
    #[command(subcommand)]
    Import(ImportCommand),
    /// Generate synthetic test data
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Stored raw payloads (every inbound byte, as received)
    #[command(subcommand)]
    Raw(RawCommand),
    /// Cloud provider maintenance
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Durable background jobs (imports, syncs, ...)
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Tamper evidence: seal the log and verify it against its seals
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Local stand-ins for outside services (tests and demos)
    #[command(subcommand)]
    Simulate(SimulateCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Seal every committed entry not sealed yet (`serve` does this every
    /// WEARHOUSE_AUDIT_SEAL_SECS)
    Seal,
    /// Re-read every sealed range and name each entry edited, deleted or inserted since, and
    /// each seal rewritten or removed; the report is JSON on stdout, exit status 1 when
    /// anything was found
    Verify,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// One line per job, newest first: id, kind, state, attempts, age, last error
    List {
        /// Only jobs in this state (pending, running, done, failed)
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this kind
        #[arg(long)]
        kind: Option<String>,
        /// At most this many jobs
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum ProvidersCommand {
    /// Re-map a user's stored provider payloads with the current mappers (idempotent)
    Replay {
        #[arg(long)]
        user: uuid::Uuid,
        /// Only this provider's payloads
        #[arg(long)]
        provider: Option<String>,
    },
}

#[derive(Subcommand)]
enum SimulateCommand {
    /// Oura, Whoop and Garmin on one port of 127.0.0.1: OAuth (PKCE for Garmin), data API with
    /// paging, signed webhooks, Garmin backfill pushes, injectable failures. Prints the
    /// settings that point a wearhouse server at it.
    Providers {
        /// Port on 127.0.0.1
        #[arg(long, default_value_t = 8900)]
        port: u16,
        /// The client secret the simulated providers expect and sign webhooks with
        #[arg(long, default_value = "sim-secret")]
        client_secret: String,
        /// Records per page of every collection
        #[arg(long, default_value_t = 25)]
        page_size: usize,
        /// The wearhouse server Garmin pushes backfilled data to (at
        /// <URL>/api/v1/providers/garmin/webhooks); `none` pushes nowhere until
        /// `POST /_sim/config` sets `garmin_push_target`
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        wearhouse_url: String,
        /// The secret Garmin pushes carry in their URL (`?token=`); the server must hold the
        /// same one in WEARHOUSE_GARMIN_PUSH_TOKEN, which the printed settings set
        #[arg(long, default_value = "sim-garmin-push-token")]
        garmin_push_token: String,
    },
}

#[derive(Subcommand)]
enum RawCommand {
    /// List stored payloads, newest first
    List {
        #[arg(long)]
        user: Option<uuid::Uuid>,
    },
    /// Write a payload's original bytes to a file (or stdout)
    Export {
        sha256: String,
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// An Apple Health export.xml or export.zip
    AppleHealth {
        file: std::path::PathBuf,
        /// The user the data belongs to
        #[arg(long)]
        user: uuid::Uuid,
    },
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// A deterministic, realistic Apple Health export.xml
    AppleHealth {
        /// Approximate size, e.g. 200MB, 1GB
        #[arg(long, default_value = "50MB", value_parser = import_cli::parse_size)]
        size: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(short, long)]
        output: std::path::PathBuf,
    },
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
    /// Generate an export, upload it over HTTP and wait for every projection
    AppleImport {
        #[arg(long, default_value = "200MB", value_parser = import_cli::parse_size)]
        size: u64,
    },
    /// Concurrent mobile SDK users posting sync batches over HTTP until every read model is built
    SdkSync {
        /// Concurrent users
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// Batches each user posts, one after another
        #[arg(long, default_value_t = 3)]
        batches: usize,
        /// Records per batch (metrics, sleep stages and a workout)
        #[arg(long, default_value_t = 1000)]
        records: usize,
    },
    /// Relay throughput and commit-to-consume lag through the broker (needs WEARHOUSE_KAFKA_BROKERS)
    Relay,
    /// Outgoing webhooks: commit workouts at a steady rate, deliver them to a loopback receiver,
    /// print deliveries per second and commit-to-delivery latencies
    Webhooks {
        /// Workouts committed per second
        #[arg(long, default_value_t = 2_500)]
        rate: u64,
        /// For how many seconds
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Users the workouts are spread over (deliveries are ordered per user)
        #[arg(long, default_value_t = 256)]
        users: usize,
    },
    /// Load a user with generated samples, then p99 latencies and throughput of the read API
    Queries {
        /// Samples to load
        #[arg(long, default_value_t = 10_000_000)]
        samples: u64,
        /// Timed requests per endpoint
        #[arg(long, default_value_t = 300)]
        requests: usize,
    },
}

/// Every environment variable any command reads, with its default, for `wearhouse --help`.
fn environment_help(cmd: &clap::Command) -> String {
    let mut seen = std::collections::BTreeMap::new();
    let mut stack = vec![cmd];
    while let Some(c) = stack.pop() {
        for arg in c.get_arguments() {
            if let Some(env) = arg.get_env() {
                let default: Vec<String> = arg
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect();
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let default = if default.is_empty() {
                    "unset".to_string()
                } else {
                    default.join(",")
                };
                seen.insert(env.to_string_lossy().into_owned(), (default, help));
            }
        }
        stack.extend(c.get_subcommands());
    }
    let mut out = String::from("Environment (each also a flag of the commands that use it):\n");
    for (env, (default, help)) in seen {
        out.push_str(&format!("  {env:<32} default: {default}\n      {help}\n"));
    }
    out
}

/// glibc's allocator otherwise keeps what many threads freed (one arena per thread, and large
/// buffers on the heap once a big one was freed), so resident memory creeps up with the size
/// of an import although the live heap stays flat. Set before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// Global settings a command does not use, hidden from its `--help` (they stay accepted, since
/// clap passes global flags down to every subcommand).
const UNUSED_GLOBALS: &[(&[&str], &[&str])] = &[(
    &["simulate", "providers"],
    &[
        "database_url",
        "home",
        "pg_port",
        "timescaledb",
        "pool_size",
        "brokers",
        "topic_prefix",
        "partitions",
        "replication",
        "retention_ms",
        "relay_batch",
        "group",
        "session_timeout_ms",
        "max_poll_interval_ms",
        "flush_markers",
        "producer_extra",
        "security_protocol",
        "ssl_ca_location",
        "sasl_mechanism",
        "sasl_username",
        "sasl_password",
    ],
)];

fn hide_unused_globals(mut command: clap::Command) -> clap::Command {
    // Globals are copied into subcommands when the command is built, so build first.
    command.build();
    for (path, ids) in UNUSED_GLOBALS {
        let mut sub = Some(&mut command);
        for name in path.iter() {
            sub = sub.and_then(|c| c.find_subcommand_mut(name));
        }
        if let Some(sub) = sub {
            // mut_args keeps the arguments in place (mut_arg re-appends, which breaks the
            // lookup table of a built command).
            let taken = std::mem::take(sub);
            *sub = taken.mut_args(|a| {
                if ids.contains(&a.get_id().as_str()) {
                    a.hide(true)
                } else {
                    a
                }
            });
        }
    }
    command
}

/// An error as one line: its causes joined, newlines folded (no backtrace, whatever
/// RUST_BACKTRACE says: setup failures are for people, not debuggers).
fn one_line(e: &anyhow::Error) -> String {
    // Causes whose text the message already holds (many errors repeat their source) are left out.
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the command line and runs it; what `main` does.
pub fn main() -> std::process::ExitCode {
    tune_allocator();
    let command = Cli::command();
    let help = environment_help(&command);
    let command = hide_unused_globals(command.after_help(help));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    config::init_logging(&cli.log);
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db;
    match cli.command {
        Command::Serve(cfg) => {
            let platform = serve::start(&db, cfg, &cli.kafka).await?;
            serve::bootstrap_admin(&platform.state, &db.home).await?;
            let bind = platform.state.config.bind.clone();
            platform
                .serve()
                .await
                .map_err(|e| e.context(format!("cannot serve HTTP on {bind}")))
        }
        Command::Demo(cfg) => {
            let platform = serve::start(&db, cfg, &cli.kafka).await?;
            demo(&platform).await?;
            let bind = platform.state.config.bind.clone();
            platform
                .serve()
                .await
                .map_err(|e| e.context(format!("cannot serve HTTP on {bind}")))
        }
        Command::Migrate => {
            let url = db::resolve_url(&db)?;
            let (pool, _) = db::pool(&url, 2)?;
            let n = db::migrate(&pool, db.timescaledb != "off").await?;
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
            db::migrate(&pool, db.timescaledb != "off").await?;
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
        Command::Renormalize { provider, since } => {
            let url = db::resolve_url(&db)?;
            let (pool, _) = db::pool(&url, 4)?;
            db::migrate(&pool, db.timescaledb != "off").await?;
            let work = db.home.join("renormalize");
            let done = ingest::renormalize::run(
                &pool,
                &provider,
                since,
                &work,
                &crate::import_cli::cli_actor(),
            )
            .await?;
            for r in &done {
                println!(
                    "user={} sha256={} stream={} samples={} workouts={} sleep_sessions={}",
                    r.user_id,
                    r.sha256,
                    r.stream_id,
                    r.counts.samples,
                    r.counts.workouts,
                    r.counts.sleep_sessions
                );
            }
            eprintln!("{} payloads renormalized", done.len());
            Ok(())
        }
        Command::Jobs(JobsCommand::List { state, kind, limit }) => {
            let url = db::resolve_url(&db)?;
            let (pool, _) = db::pool(&url, 2)?;
            db::migrate(&pool, db.timescaledb != "off").await?;
            let filter = jobs::ListFilter { state, kind, limit };
            let now = chrono::Utc::now();
            for job in jobs::list(&pool, &filter).await? {
                println!("{}", job.line(now));
            }
            Ok(())
        }
        Command::Audit(command) => {
            let url = db::resolve_url(&db)?;
            let (pool, _) = db::pool(&url, 2)?;
            db::migrate(&pool, db.timescaledb != "off").await?;
            match command {
                AuditCommand::Seal => {
                    let n = crate::audit::seal(&pool).await?;
                    println!("sealed {n} entries");
                    Ok(())
                }
                AuditCommand::Verify => {
                    let report = crate::audit::verify(&pool).await?;
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    if report.intact {
                        Ok(())
                    } else {
                        anyhow::bail!(
                            "the log does not match its seals: {} problem(s)",
                            report.problems.len()
                        )
                    }
                }
            }
        }
        Command::Bench(BenchCommand::Events) => bench::events(&db).await,
        Command::Bench(BenchCommand::Relay) => bench::relay(&db, &cli.kafka).await,
        Command::Bench(BenchCommand::SdkSync {
            users,
            batches,
            records,
        }) => bench::sdk_sync(&db, users, batches, records).await,
        Command::Bench(BenchCommand::AppleImport { size }) => bench::apple_import(&db, size).await,
        Command::Bench(BenchCommand::Webhooks {
            rate,
            seconds,
            users,
        }) => bench::webhooks(&db, rate, seconds, users).await,
        Command::Bench(BenchCommand::Queries { samples, requests }) => {
            bench::queries(&db, samples, requests).await
        }
        Command::Import(ImportCommand::AppleHealth { file, user }) => {
            import_cli::import_apple(&db, &file, user).await
        }
        Command::Raw(cmd) => {
            let url = db::resolve_url(&db)?;
            let (pool, _) = db::pool(&url, 2)?;
            db::migrate(&pool, db.timescaledb != "off").await?;
            match cmd {
                RawCommand::List { user } => {
                    let rows = pool
                        .get()
                        .await?
                        .query(
                            "SELECT sha256, provider, kind, content_type, size, user_id::text, received_at::text FROM raw_payloads \
                             WHERE $1::uuid IS NULL OR user_id = $1 ORDER BY received_at DESC",
                            &[&user],
                        )
                        .await?;
                    for r in rows {
                        let user: Option<String> = r.get(5);
                        println!(
                            "{} {} {} {} {} user={} received={}",
                            r.get::<_, String>(0),
                            r.get::<_, String>(1),
                            r.get::<_, String>(2),
                            r.get::<_, String>(3),
                            r.get::<_, i64>(4),
                            user.unwrap_or_default(),
                            r.get::<_, String>(6)
                        );
                    }
                }
                RawCommand::Export { sha256, output } => match output {
                    Some(path) => {
                        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
                        let n = ingest::raw::write_to(&pool, &sha256, &mut file).await?;
                        eprintln!("{n} bytes written to {}", path.display());
                    }
                    None => {
                        ingest::raw::write_to(&pool, &sha256, &mut std::io::stdout()).await?;
                    }
                },
            }
            Ok(())
        }
        Command::Providers(ProvidersCommand::Replay { user, provider }) => {
            let url = db::resolve_url(&db)?;
            let (pool, _) = db::pool(&url, 4)?;
            db::migrate(&pool, db.timescaledb != "off").await?;
            let registry = providers::Registry::new(&config::ProvidersConfig::default());
            let (payloads, records) =
                providers::engine::replay(&pool, &registry, user, provider.as_deref()).await?;
            println!("{payloads} payload(s) replayed, {records} record(s) appended");
            Ok(())
        }
        Command::Simulate(SimulateCommand::Providers {
            port,
            client_secret,
            page_size,
            wearhouse_url,
            garmin_push_token,
        }) => {
            let push = (wearhouse_url != "none").then(|| {
                format!(
                    "{}/api/v1/providers/garmin/webhooks?token={garmin_push_token}",
                    wearhouse_url.trim_end_matches('/')
                )
            });
            simulator::run(port, client_secret, page_size, push, garmin_push_token).await
        }
        Command::Generate(GenerateCommand::AppleHealth { size, seed, output }) => {
            let counts = import_cli::generate(size, seed, &output)?;
            // What importing the file must find, for scripts and tests to check against.
            let per_series: std::collections::BTreeMap<&str, u64> = counts
                .per_series
                .iter()
                .map(|(id, n)| {
                    (
                        wearhouse_domain::series::by_id(*id).map_or("unknown", |s| s.code),
                        *n,
                    )
                })
                .collect();
            let expected = serde_json::json!({
                "file": output.display().to_string(),
                "records": counts.records,
                "samples": counts.samples,
                "workouts": counts.workouts,
                "sleep_intervals": counts.sleep_intervals,
                "menstrual_flows": counts.menstrual_flows,
                "activity_summaries": counts.activity_summaries,
                "per_series": per_series,
                "unknown_types": counts.unknown_types,
            });
            println!("{expected}");
            Ok(())
        }
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
