//! Starting the platform: database, migrations, projection workers, first developer, HTTP.

use std::sync::Arc;

use chrono::Utc;
use poem::listener::Listener;
use tokio::sync::watch;
use tracing::info;
use wearhouse_domain::developer::{developer_id, Developer, DeveloperCommand};
use wearhouse_projections::Runner;

use crate::api::{self, AppState};
use crate::auth::{self, Jwt};
use crate::config::{DbConfig, ServeConfig};
use crate::ingest::queue::{self, ImportJob};
use crate::jobs::{JobRunner, Jobs};
use crate::services::imports::Imports;
use crate::services::syncs::{SyncJob, Syncs};
use crate::store::{Actor, Commands};

pub struct Platform {
    pub state: AppState,
    /// Turns true after requests and jobs have drained: stops the projection workers and relay.
    pub shutdown: watch::Sender<bool>,
    /// Turns true when shutdown starts: HTTP stops accepting, streams end, the job runner
    /// stops claiming and drains, the scheduler stops.
    pub stopping: watch::Sender<bool>,
    /// Started by [`Platform::serve`].
    jobs_runner: Option<JobRunner>,
    pg_config: tokio_postgres::Config,
    runner_task: Option<tokio::task::JoinHandle<()>>,
    relay_task: Option<tokio::task::JoinHandle<()>>,
}

/// Connects (starting the private cluster when DATABASE_URL is unset), migrates, and starts
/// the projection runner.
pub async fn start(
    db: &DbConfig,
    mut cfg: ServeConfig,
    kafka: &wearhouse_kafka::KafkaConfig,
) -> anyhow::Result<Platform> {
    check_admin_config(&cfg)?;
    let url = crate::db::resolve_url(db)?;
    let (pool, pg_config) = crate::db::pool(&url, db.pool_size)?;
    let applied = crate::db::migrate(&pool, db.timescaledb != "off").await?;
    let timescaledb = crate::db::has_timescaledb(&pool).await?;
    info!(applied, timescaledb, "database ready");
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (stopping, stopping_rx) = watch::channel(false);
    let (runner, runner_task) = if cfg.projections {
        let runner = Runner::new(pool.clone(), wearhouse_projections::all());
        runner.catch_up().await?;
        let task = tokio::spawn(runner.clone().run(Some(pg_config.clone()), shutdown_rx));
        (Some(runner), Some(task))
    } else {
        (None, None)
    };
    // The relay runs here only when a broker is configured; the embedded default has none.
    let relay_task = kafka.brokers.as_ref().map(|brokers| {
        info!(brokers, "relaying the log to Kafka");
        let relay = wearhouse_kafka::Relay::new(pool.clone(), kafka.clone());
        tokio::spawn(relay.run(Some(pg_config.clone()), shutdown.subscribe()))
    });
    let secret = auth::load_or_create_secret(cfg.secret_key.as_deref(), &db.home)?;
    let commands = Commands {
        pool: pool.clone(),
        runner: runner.clone(),
    };
    let jobs = Jobs::new(pool.clone());
    let imports = Imports::new(
        pool.clone(),
        jobs.clone(),
        db.home.join("uploads"),
        cfg.import_limits.limits(),
    );
    imports.sweep_uploads().await?;
    let mut jobs_runner = JobRunner::new(pool.clone(), cfg.jobs.runner(cfg.shutdown_grace()))
        .register_limited(
            queue::KIND,
            Arc::new(ImportJob {
                commands: commands.clone(),
                limits: cfg.import_limits.limits(),
                uploads: db.home.join("uploads"),
            }),
            cfg.import_concurrency,
        );
    if cfg
        .providers
        .garmin_push_token
        .as_deref()
        .is_none_or(str::is_empty)
    {
        cfg.providers.garmin_push_token = Some(auth::load_or_create_token(
            &db.home.join("garmin-push.token"),
        )?);
    }
    let sealer = crate::crypto::Sealer::load(cfg.providers.encryption_key.as_deref(), &db.home)?;
    let providers = crate::providers::engine::Engine::new(
        pool.clone(),
        commands.clone(),
        cfg.providers.clone(),
        sealer,
    );
    let webhooks_engine = crate::webhooks::delivery::Engine::new(
        pool.clone(),
        providers.sealer.clone(),
        commands.clone(),
        cfg.webhooks.settings(),
        Arc::new(crate::webhooks::SystemClock),
    );
    let syncs = Syncs::new(providers.clone(), jobs.clone()).with_runner(commands.runner.clone());
    jobs_runner = jobs_runner.register(
        crate::services::syncs::KIND,
        Arc::new(SyncJob {
            engine: providers.clone(),
        }),
    );
    let webhooks = crate::services::webhooks::Webhooks::new(providers.clone());
    let backfills = crate::services::backfills::Backfills::new(providers.clone(), jobs.clone());
    let sdk = crate::services::sdk::Sdk::new(pool.clone());
    jobs_runner = jobs_runner
        .register_batch(
            crate::services::sdk::KIND,
            sdk.handler(),
            crate::services::sdk::RUNS,
            crate::services::sdk::MAX_BATCH,
        )
        .register(crate::services::webhooks::MAP_NOTICE, webhooks.handler())
        .register(crate::services::backfills::RUN, backfills.handler());
    let archival =
        crate::services::archival::Archival::new(pool.clone(), commands.clone(), jobs.clone());
    jobs_runner = jobs_runner.register(crate::services::archival::KIND, archival.handler());
    jobs_runner = jobs_runner.register(
        crate::services::seed::KIND,
        Arc::new(crate::services::seed::SeedJob {
            commands: commands.clone(),
            limits: cfg.import_limits.limits(),
            uploads: db.home.join("uploads"),
        }),
    );
    if cfg.archival_check_secs > 0 {
        // Only queues the day's run: the run itself is a job.
        tokio::spawn(crate::services::archival::schedule(
            archival.clone(),
            std::time::Duration::from_secs(cfg.archival_check_secs),
            shutdown.subscribe(),
        ));
    }
    if cfg.providers.sync_interval_secs > 0 {
        tokio::spawn(crate::providers::scheduler::run(
            providers.clone(),
            syncs.clone(),
            stopping.subscribe(),
        ));
    }
    if cfg.providers.subscription_check_secs > 0 {
        tokio::spawn(crate::providers::scheduler::maintain_subscriptions(
            providers.clone(),
            cfg.public_url(),
            shutdown.subscribe(),
        ));
    }
    if cfg.audit_seal_secs > 0 {
        // An infrastructure loop: it resumes from the last seal stored.
        tokio::spawn(crate::audit::run(
            pool.clone(),
            std::time::Duration::from_secs(cfg.audit_seal_secs),
            shutdown.subscribe(),
        ));
    }
    let login_throttle = Arc::new(auth::throttle::LoginThrottle::new(
        cfg.login_hash_concurrency,
        32,
    ));
    let streams = Arc::new(auth::streams::StreamSlots::new(
        cfg.max_streams_per_credential.max(1),
    ));
    let state = AppState {
        providers,
        commands,
        pool,
        jwt: Jwt::new(&secret, cfg.access_token_minutes),
        upload_secret: auth::sha256_hex(&format!("upload-urls:{}", hex::encode(&secret)))
            .into_bytes(),
        imports,
        jobs: jobs.clone(),
        syncs,
        sdk,
        stopping: stopping_rx,
        config: Arc::new(cfg),
        timescaledb,
        metrics: Default::default(),
        relay: relay_task.is_some(),
        kafka_brokers: kafka.brokers.clone(),
        login_throttle,
        redeem_throttle: Arc::new(auth::throttle::LoginThrottle::new(1, 0)),
        code_key: auth::sha256_hex(&format!("invitation-codes:{}", hex::encode(&secret)))
            .into_bytes(),
        streams,
        webhooks: webhooks_engine,
        archival,
    };
    Ok(Platform {
        state,
        shutdown,
        stopping,
        jobs_runner: Some(jobs_runner),
        pg_config,
        runner_task,
        relay_task,
    })
}

fn system() -> Actor {
    Actor {
        kind: "system",
        id: "bootstrap".into(),
        request_id: None,
    }
}

/// Registers a developer unless one with that e-mail exists. Returns whether it was created.
pub async fn ensure_developer(
    state: &AppState,
    email: &str,
    password: &str,
) -> anyhow::Result<bool> {
    let id = developer_id(email);
    let exists = state
        .pool
        .get()
        .await?
        // By id, or by address: an account may have moved to this address (PATCH /auth/me).
        .query_opt(
            "SELECT 1 FROM developers WHERE id = $1 OR email = lower(trim($2))",
            &[&id, &email],
        )
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password)).await?;
    let command = DeveloperCommand::Register {
        email: email.to_string(),
        password_hash: hash,
        first_name: None,
        last_name: None,
        role: wearhouse_domain::developer::Role::Admin,
        at: Utc::now(),
    };
    state
        .commands
        .execute::<Developer>(
            &id.to_string(),
            command,
            &system(),
            None,
            Some("developers"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("registering {email}: {e}"))?;
    Ok(true)
}

/// Refuses to start with admin credentials that are set but empty, half set, or weak: an
/// empty e-mail and password would otherwise be a developer account anyone can sign in to.
pub fn check_admin_config(cfg: &ServeConfig) -> anyhow::Result<()> {
    match (&cfg.admin_email, &cfg.admin_password) {
        (None, None) => Ok(()),
        (Some(email), Some(password)) => {
            auth::check_email(email).map_err(|e| anyhow::anyhow!("WEARHOUSE_ADMIN_EMAIL: {e}"))?;
            auth::check_password_policy(email, password)
                .map_err(|e| anyhow::anyhow!("WEARHOUSE_ADMIN_PASSWORD: {e}"))
        }
        (Some(_), None) => anyhow::bail!(
            "WEARHOUSE_ADMIN_EMAIL is set without WEARHOUSE_ADMIN_PASSWORD: set both, or neither"
        ),
        (None, Some(_)) => anyhow::bail!(
            "WEARHOUSE_ADMIN_PASSWORD is set without WEARHOUSE_ADMIN_EMAIL: set both, or neither"
        ),
    }
}

/// Writes a generated password once to `path`, readable by this user only.
fn write_secret_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

/// The first developer: from WEARHOUSE_ADMIN_EMAIL / _PASSWORD, or generated when no developer
/// exists yet. A generated password is never logged: it is written once to
/// `WEARHOUSE_HOME/admin-credentials` (mode 0600) and the log says where.
pub async fn bootstrap_admin(
    state: &AppState,
    home: &std::path::Path,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let cfg = &state.config;
    check_admin_config(cfg)?;
    if let (Some(email), Some(password)) = (&cfg.admin_email, &cfg.admin_password) {
        if ensure_developer(state, email, password).await? {
            // The address itself is personal data: not logged.
            info!("developer account created from WEARHOUSE_ADMIN_EMAIL");
        }
        return Ok(None);
    }
    let any = state
        .pool
        .get()
        .await?
        .query_opt("SELECT 1 FROM developers LIMIT 1", &[])
        .await?
        .is_some();
    if any {
        return Ok(None);
    }
    let email = "admin@wearhouse.local".to_string();
    let password = auth::new_password();
    let path = home.join("admin-credentials");
    write_secret_file(&path, &format!("e-mail:   {email}\npassword: {password}\n"))?;
    ensure_developer(state, &email, &password).await?;
    tracing::warn!(
        path = %path.display(),
        "first developer account created; its generated credentials are in this file (mode 0600): read it, then delete it"
    );
    Ok(Some(path))
}

/// Creates an API key on behalf of the system (the demo key).
pub async fn system_api_key(state: &AppState, name: &str) -> anyhow::Result<String> {
    let (key, _, _) = api::create_key(state, name.to_string(), None, &system())
        .await
        .map_err(|e| anyhow::anyhow!("creating API key: {e:?}"))?;
    Ok(key)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupt received, shutting down"),
    }
}

impl Platform {
    /// Serves HTTP and runs jobs until SIGTERM or Ctrl-C, then drains requests and jobs (in
    /// parallel, each within the shutdown grace) and stops the workers.
    pub async fn serve(self) -> anyhow::Result<()> {
        let bind = self.state.config.bind.clone();
        let acceptor = poem::listener::TcpListener::bind(bind)
            .into_acceptor()
            .await?;
        self.serve_on(acceptor, shutdown_signal()).await
    }

    /// Serves HTTP on an already bound listener until `stop` completes, then drains requests
    /// and stops the workers. The tests run the platform in-process this way, on a port the
    /// kernel chose, stopped by a channel instead of a signal.
    pub async fn serve_on(
        mut self,
        acceptor: poem::listener::TcpAcceptor,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let grace = self.state.config.shutdown_grace();
        let jobs_task = self
            .jobs_runner
            .take()
            .map(|r| tokio::spawn(r.run(self.pg_config.clone(), self.stopping.subscribe())));
        // Outgoing webhooks: an infrastructure loop that resumes from the outbox table.
        let webhooks_task = tokio::spawn(
            self.state
                .webhooks
                .clone()
                .run(Some(self.pg_config.clone()), self.stopping.subscribe()),
        );
        let app = api::app(self.state.clone());
        if let (true, Some(metrics_bind)) = (
            self.state.config.metrics,
            self.state.config.metrics_bind.clone(),
        ) {
            let listener = poem::listener::TcpListener::bind(metrics_bind.clone());
            let metrics = api::metrics_app(self.state.clone());
            info!(bind = %metrics_bind, "metrics listening");
            let mut stop = self.shutdown.subscribe();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.changed().await;
                };
                if let Err(e) = poem::Server::new(listener)
                    .run_with_graceful_shutdown(metrics, stopped, None)
                    .await
                {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }
        info!(url = %self.state.config.public_url(), "wearhouse listening");
        let stopping = self.stopping.clone();
        let signalled = async move {
            stop.await;
            let _ = stopping.send(true);
        };
        let served = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, signalled, Some(grace))
            .await;
        // Also when serving failed: the job runner must stop and hand its jobs back.
        let _ = self.stopping.send(true);
        if let Some(task) = jobs_task {
            let _ = task.await;
        }
        let _ = webhooks_task.await;
        let _ = self.shutdown.send(true);
        if let Some(task) = self.runner_task {
            let _ = task.await;
        }
        if let Some(task) = self.relay_task {
            let _ = task.await;
        }
        served?;
        Ok(())
    }
}
