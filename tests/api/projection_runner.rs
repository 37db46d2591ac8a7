//! The checkpointed runner: a batch and its checkpoint commit together, so a failure in the
//! middle of a batch leaves neither behind, and a retry applies every entry exactly once.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use wearhouse_log::LogEntry;
use wearhouse_projections::runner::reset;
use wearhouse_projections::{Projection, ProjectionError, Runner};

/// Counts entries per aggregate into a table; fails once, after writing, when asked to.
struct Counter {
    fail_once_at: AtomicUsize,
}

#[async_trait]
impl Projection for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE counter").await?;
        Ok(())
    }
    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        for (i, e) in entries.iter().enumerate() {
            tx.execute(
                "INSERT INTO counter (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = counter.n + 1",
                &[&e.aggregate_id],
            )
            .await?;
            if i + 1 == self.fail_once_at.load(Ordering::SeqCst) {
                self.fail_once_at.store(usize::MAX, Ordering::SeqCst);
                // A broken statement mid-batch, after some rows were written.
                tx.batch_execute("SELECT 1/0").await?;
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_batch_leaves_no_trace_and_the_retry_applies_each_entry_once() {
    let db = common::TestDb::new().await;
    db.run(&["migrate"]).await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE counter (id text PRIMARY KEY, n int NOT NULL)")
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'T', 'a' || (s % 5), s, 'E', '1', '{}', '{}' FROM generate_series(1, 40) s",
        )
        .await
        .unwrap();
    let counter = Arc::new(Counter {
        fail_once_at: AtomicUsize::new(17),
    });
    let runner = Runner::new(common::pool(&db.url), vec![counter.clone()]);
    // Transactions of other tests in the cluster can hold the log's horizon back for a moment:
    // step until the entries are visible (and the batch fails).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let err = loop {
        match runner.step(counter.as_ref()).await {
            Err(e) => break e,
            Ok(0) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Ok(n) => panic!("the batch applied {n} entries instead of failing"),
        }
    };
    assert!(err.to_string().contains("division by zero"), "{err}");
    let rows: i64 = client
        .query_one("SELECT count(*) FROM counter", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "the failed batch's writes were rolled back");
    let cp: i64 = client
        .query_one(
            "SELECT position FROM checkpoints WHERE name = 'counter'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cp, 0, "the checkpoint did not move");

    runner.catch_up().await.unwrap();
    let total: i64 = client
        .query_one("SELECT sum(n) FROM counter", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 40);
    let max: i64 = client
        .query_one("SELECT max(position) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    let cp: i64 = client
        .query_one(
            "SELECT position FROM checkpoints WHERE name = 'counter'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cp, max);
    // Nothing new: another pass changes nothing.
    runner.catch_up().await.unwrap();
    let again: i64 = client
        .query_one("SELECT sum(n) FROM counter", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, 40);

    // Reset + catch up rebuilds the same model.
    reset(&common::pool(&db.url), counter.as_ref())
        .await
        .unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM counter", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    runner.catch_up().await.unwrap();
    let rebuilt: Vec<(String, i32)> = client
        .query("SELECT id, n FROM counter ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rebuilt,
        (0..5).map(|i| (format!("a{i}"), 8)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_session_lock_is_freed_by_release_and_by_dropping_its_guard() {
    use std::time::{Duration, Instant};
    use wearhouse_projections::pglock::{LockKey, SessionLock};

    let db = common::TestDb::new().await;
    let pool = common::pool(&db.url);
    let key = || LockKey::Name("test-lock".into());
    let try_lock = || async {
        SessionLock::try_acquire(pool.get().await.unwrap(), key())
            .await
            .unwrap()
    };
    let held = try_lock().await.expect("free at first");
    assert!(try_lock().await.is_none(), "held by another session");
    held.release().await.unwrap();
    let again = try_lock().await.expect("free after release");
    // Dropped without release (an early return, a cancelled future): its connection closes,
    // and the server frees the lock once it sees the session end.
    drop(again);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(lock) = try_lock().await {
            lock.release().await.unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lock still held after its guard was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
