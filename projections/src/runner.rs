//! The checkpointed projection runner: for each read model it reads the log after the model's
//! checkpoint, applies one batch and stores the new checkpoint in the same transaction, so a
//! crash replays at most the uncommitted batch and never applies an entry twice. The
//! checkpoint row is locked for the batch, so several processes can run the same projections.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::{Pool, Transaction};
use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tracing::{debug, error, info, warn};

use wearhouse_log::pg_message;
use wearhouse_log::read::{horizon, last_below, peek_below, read_through, Cursor, LogEntry, Peek};

/// How long a model that reads other models holds entries back while they catch up.
const MAX_DEPENDENCY_WAIT: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Payload bytes per batch.
const MAX_BATCH_BYTES: i64 = 1 << 20;
/// A batch this large leaves megabyte buffers in its connection (statements and rows of that
/// size): the connection is closed rather than pooled with them.
const LARGE_BATCH_BYTES: i64 = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {}", pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("entry {position} ({event_type}) cannot be decoded: {source}")]
    Decode {
        position: i64,
        event_type: String,
        source: serde_json::Error,
    },
    #[error("entry {position} is inconsistent: {detail}")]
    Corrupt { position: i64, detail: String },
    #[error("unknown projection '{0}'")]
    Unknown(String),
}

fn bytes_of(batch: &[Peek]) -> i64 {
    batch.iter().map(|p| p.bytes).sum()
}

/// A read model built from the log.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the checkpoint's key and the CLI's argument.
    fn name(&self) -> &'static str;
    /// The event types this read model reads; empty means every entry.
    fn event_types(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether a batch moves megabytes through its connection (sample batches): the runner
    /// then closes that connection afterwards, so the pool does not keep buffers that large.
    fn large_rows(&self) -> bool {
        false
    }
    /// Log entries per batch (one transaction).
    fn batch_size(&self) -> i64 {
        1000
    }
    /// Read models this one reads while applying: an entry is applied only once each of them
    /// has applied every entry of its own types that comes before it in the log.
    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }
    /// Tables of this read model with a `user_id` column: a deleted user's rows leave them
    /// (the model then reads `UserDeleted`, and the runner applies it in log order between
    /// the entries around it, so nothing of the user recorded before it survives).
    fn user_tables(&self) -> &'static [&'static str] {
        &[]
    }
    /// Removes a deleted user's rows: by default from each of [`Projection::user_tables`].
    async fn purge_user(
        &self,
        tx: &Transaction<'_>,
        user_id: uuid::Uuid,
    ) -> Result<(), ProjectionError> {
        for table in self.user_tables() {
            tx.execute(
                &format!("DELETE FROM {table} WHERE user_id = $1"),
                &[&user_id],
            )
            .await?;
        }
        Ok(())
    }
    /// Empties every table of this read model (a rebuild starts from nothing).
    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError>;
    /// Applies a batch of entries, in log order, inside the runner's transaction.
    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError>;
}

/// The user deletion every per-user read model follows.
pub const USER_DELETED: &str = "UserDeleted";

/// Applies `entries`; for a model with per-user tables a user's deletion purges them at its
/// place in the batch (the model's own `apply` never sees it). Every reader of the log that
/// feeds a model (this runner, the Kafka workers) applies through here.
pub async fn apply_purging(
    projection: &dyn Projection,
    tx: &Transaction<'_>,
    entries: &[LogEntry],
) -> Result<(), ProjectionError> {
    if projection.user_tables().is_empty() {
        return projection.apply(tx, entries).await;
    }
    let mut from = 0;
    for (i, entry) in entries.iter().enumerate() {
        if entry.event_type == USER_DELETED && entry.aggregate_type == "User" {
            if from < i {
                projection.apply(tx, &entries[from..i]).await?;
            }
            if let Ok(user) = entry.aggregate_id.parse() {
                projection.purge_user(tx, user).await?;
            }
            from = i + 1;
        }
    }
    if from < entries.len() {
        projection.apply(tx, &entries[from..]).await?;
    }
    Ok(())
}

pub struct Runner {
    pool: Pool,
    projections: Vec<Arc<dyn Projection>>,
    progress: HashMap<&'static str, watch::Sender<Cursor>>,
    wake: Notify,
}

impl Runner {
    pub fn new(pool: Pool, projections: Vec<Arc<dyn Projection>>) -> Arc<Self> {
        let progress = projections
            .iter()
            .map(|p| (p.name(), watch::channel(Cursor::START).0))
            .collect();
        Arc::new(Runner {
            pool,
            projections,
            progress,
            wake: Notify::new(),
        })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.name()).collect()
    }

    /// Applies one batch to `projection`; returns how many entries it applied.
    pub async fn step(&self, projection: &dyn Projection) -> Result<usize, ProjectionError> {
        let name = projection.name();
        let mut client = self.pool.get().await?;
        let started = std::time::Instant::now();
        let lock = client
            .prepare_cached("SELECT tx, position FROM checkpoints WHERE name = $1 FOR UPDATE")
            .await?;
        let mut tx = client.transaction().await?;
        let row = match tx.query_opt(&lock, &[&name]).await? {
            Some(row) => row,
            None => {
                // First run: the checkpoint row outlives this step whatever it does.
                tx.rollback().await?;
                client
                    .execute(
                        "INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[&name],
                    )
                    .await?;
                tx = client.transaction().await?;
                tx.query_one(&lock, &[&name]).await?
            }
        };
        let from = Cursor {
            tx: row.get(0),
            position: row.get(1),
        };
        // One horizon for the whole step: everything below it is final, so when fewer entries
        // than asked for come back, none of the kinds this model reads remain below it and the
        // checkpoint can move up to the horizon (so lag reads true for filtered models too).
        let horizon = horizon(&tx).await?;
        let limit = projection.batch_size();
        let types = projection.event_types();
        let peeked = peek_below(&tx, from, horizon, limit, types).await?;
        // A model that reads other models waits for them: nothing at or past their first
        // pending entry is applied, and the checkpoint does not jump past it.
        let pending = self.dependency_limit(&tx, projection, horizon).await?;
        let mut ready: Vec<Peek> = peeked
            .iter()
            .take_while(|p| pending.is_none_or(|at| p.cursor < at))
            .copied()
            .collect();
        if pending.is_some() {
            // While a dependency is still working through the log, wait for it: these models
            // recompute whole days and nights from what their dependencies hold, so applying
            // each partial batch would redo the same days many times during an import. The
            // wait is bounded by the batch size and by the age of the oldest waiting entry.
            let stale = ready
                .first()
                .is_some_and(|p| Utc::now() - p.recorded_at > MAX_DEPENDENCY_WAIT);
            if (ready.len() as i64) < limit && !stale {
                tx.rollback().await?;
                self.publish(name, from);
                return Ok(0);
            }
        }
        // Memory stays flat whatever the entries hold: a batch stops at a byte budget (but
        // always takes one entry).
        let mut bytes = 0;
        let fits = ready
            .iter()
            .take_while(|p| {
                bytes += p.bytes;
                bytes <= MAX_BATCH_BYTES
            })
            .count()
            .max(1);
        let cut = fits < ready.len();
        ready.truncate(fits);
        let large = projection.large_rows() || bytes_of(&ready) > LARGE_BATCH_BYTES;
        let entries = match ready.last() {
            Some(through) => read_through(&tx, from, through.cursor, types).await?,
            None => Vec::new(),
        };
        let mut last = entries.last().map(|e| e.cursor);
        if pending.is_none() && !cut && (peeked.len() as i64) < limit {
            if let Some(end) = last_below(&tx, horizon).await? {
                last = Some(last.map_or(end, |l| l.max(end)));
            }
        }
        let Some(last) = last.filter(|l| *l > from) else {
            tx.rollback().await?;
            self.publish(name, from);
            return Ok(0);
        };
        if !entries.is_empty() {
            apply_purging(projection, &tx, &entries).await?;
            // The batch's read-model writes are made, its checkpoint is not committed.
            wearhouse_domain::crashpoint::hit_in("projection.batch", name);
        }
        let save = tx
            .prepare_cached(
                "UPDATE checkpoints SET tx = $2, position = $3, updated_at = now() WHERE name = $1",
            )
            .await?;
        tx.execute(&save, &[&name, &last.tx, &last.position])
            .await?;
        tx.commit().await?;
        if large {
            drop(deadpool_postgres::Object::take(client));
        }
        debug!(
            projection = name,
            entries = entries.len(),
            position = last.position,
            ms = started.elapsed().as_millis() as u64,
            "applied"
        );
        self.publish(name, last);
        // Moving past entries of other kinds is progress too, so `catch_up` keeps going.
        Ok(entries.len().max(1))
    }

    /// The first entry some dependency of `projection` has still to apply, if any.
    async fn dependency_limit(
        &self,
        tx: &Transaction<'_>,
        projection: &dyn Projection,
        horizon: i64,
    ) -> Result<Option<Cursor>, ProjectionError> {
        let mut limit: Option<Cursor> = None;
        for dep in projection.depends_on() {
            // A runner of a single model (a rebuild) still knows its dependencies' event types.
            let all = crate::all();
            let Some(p) = self
                .projections
                .iter()
                .chain(all.iter())
                .find(|p| p.name() == *dep)
            else {
                return Err(ProjectionError::Unknown(dep.to_string()));
            };
            let checkpoint = tx
                .prepare_cached("SELECT tx, position FROM checkpoints WHERE name = $1")
                .await?;
            let at = tx
                .query_opt(&checkpoint, &[dep])
                .await?
                .map(|r| Cursor {
                    tx: r.get(0),
                    position: r.get(1),
                })
                .unwrap_or(Cursor::START);
            if let Some(pending) = peek_below(tx, at, horizon, 1, p.event_types())
                .await?
                .first()
            {
                limit = Some(limit.map_or(pending.cursor, |l| l.min(pending.cursor)));
            }
        }
        Ok(limit)
    }

    fn publish(&self, name: &str, cursor: Cursor) {
        if let Some(tx) = self.progress.get(name) {
            tx.send_if_modified(|c| {
                let newer = cursor > *c;
                if newer {
                    *c = cursor;
                }
                newer
            });
        }
    }

    /// Runs every projection until none has anything left to apply.
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        for p in &self.projections {
            while self.step(p.as_ref()).await? > 0 {}
        }
        Ok(())
    }

    /// Wakes the loop at once (writers call this after a commit in this process).
    pub fn nudge(&self) {
        self.wake.notify_waiters();
    }

    /// Waits until `projection` has applied the entry at `cursor`; false on timeout.
    pub async fn wait_for(&self, projection: &str, cursor: Cursor, timeout: Duration) -> bool {
        let Some(sender) = self.progress.get(projection) else {
            return false;
        };
        self.nudge();
        let mut rx = sender.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= cursor))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Tails the log until `shutdown` turns true. Woken by NOTIFY from committing writers (when
    /// `listen` is given), by `nudge`, and by a short poll that also picks up entries whose
    /// transaction was still open on the previous pass.
    pub async fn run(
        self: Arc<Self>,
        listen: Option<tokio_postgres::Config>,
        shutdown: watch::Receiver<bool>,
    ) {
        if let Some(config) = listen {
            let me = self.clone();
            tokio::spawn(async move { me.listen(config).await });
        }
        info!(projections = ?self.names(), "projection runner started");
        // One loop per read model: a heavy model (the timeseries) never delays a light one
        // (import status, users), and the database works on several at once.
        let loops: Vec<_> = (0..self.projections.len())
            .map(|i| tokio::spawn(self.clone().run_one(i, shutdown.clone())))
            .collect();
        for l in loops {
            let _ = l.await;
        }
        info!("projection runner stopped");
    }

    async fn run_one(self: Arc<Self>, index: usize, mut shutdown: watch::Receiver<bool>) {
        let projection = self.projections[index].clone();
        let mut failures = 0u32;
        loop {
            let pause = match self.step(projection.as_ref()).await {
                Ok(n) if n > 0 => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    Duration::from_millis(200)
                }
                Err(e) => {
                    failures = (failures + 1).min(8);
                    error!(projection = projection.name(), error = %e, "projection batch failed; will retry");
                    Duration::from_millis(100 << failures)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    async fn listen(self: Arc<Self>, config: tokio_postgres::Config) {
        loop {
            match config.connect(crate::pgtls::connector()).await {
                Ok((client, mut connection)) => {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                    let pump = tokio::spawn(async move {
                        let mut messages =
                            futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                        while let Some(Ok(msg)) = messages.next().await {
                            if let tokio_postgres::AsyncMessage::Notification(_) = msg {
                                let _ = tx.send(());
                            }
                        }
                    });
                    if let Err(e) = client.batch_execute("LISTEN wearhouse_log").await {
                        warn!(error = %e, "LISTEN failed; relying on polling");
                    }
                    while rx.recv().await.is_some() {
                        self.nudge();
                    }
                    pump.abort();
                }
                Err(e) => warn!(error = %e, "log listener cannot connect; relying on polling"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Empties one read model and rewinds its checkpoint in one transaction; the runner then
/// rebuilds it from the start of the log.
pub async fn reset(pool: &Pool, projection: &dyn Projection) -> Result<(), ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&projection.name()],
    )
    .await?;
    // Lock first so a running worker cannot commit a batch on top of the emptied model.
    tx.execute(
        "SELECT 1 FROM checkpoints WHERE name = $1 FOR UPDATE",
        &[&projection.name()],
    )
    .await?;
    projection.reset(&tx).await?;
    tx.execute(
        "UPDATE checkpoints SET tx = 0, position = 0, updated_at = now() WHERE name = $1",
        &[&projection.name()],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
