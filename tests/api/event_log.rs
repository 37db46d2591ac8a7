//! The event log reader: entries are read in order and never skipped, even when transactions
//! that took earlier positions commit later than ones that took later positions.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use rand::Rng;
use wearhouse_log::read::{cursor_of, read_after};
use wearhouse_log::Cursor;

async fn migrated() -> TestDb {
    let db = TestDb::new().await;
    let out = db.run(&["migrate"]).await;
    assert!(out.contains("migration(s) applied"), "{out}");
    db
}

const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                      SELECT 'T', $1, s, 'E', '1', '{}'::jsonb, '{}'::jsonb FROM generate_series(1, $2::bigint) s";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_make_the_reader_skip() {
    let db = migrated().await;
    let writers = 8;
    let per_writer = 60;
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = common::connect(&url).await;
            for i in 0..per_writer {
                let tx = client.transaction().await.unwrap();
                let n: i64 = rand::rng().random_range(1..4);
                tx.execute(INSERT, &[&format!("w{w}-{i}"), &n])
                    .await
                    .unwrap();
                // Hold the transaction open a while after taking positions, so later
                // positions often commit first.
                let pause = rand::rng().random_range(0..15);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                tx.commit().await.unwrap();
            }
        }));
    }
    let reader = {
        let url = db.url.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let client = common::pool(&url).get().await.unwrap();
            let mut cursor = Cursor::START;
            let mut seen = Vec::new();
            let mut idle_since: Option<std::time::Instant> = None;
            loop {
                let batch = read_after(&client, cursor, 7).await.unwrap();
                for e in &batch {
                    assert!(
                        e.cursor > cursor,
                        "entries come in strictly increasing log order"
                    );
                    cursor = e.cursor;
                    seen.push(e.position());
                }
                if !batch.is_empty() {
                    idle_since = None;
                    continue;
                }
                // After the writers finish, keep reading until the log has been quiet for a
                // while: other tests' transactions in the cluster can hold the horizon back.
                if done.load(Ordering::SeqCst) {
                    let since = *idle_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > Duration::from_secs(3) {
                        return seen;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let client = db.client().await;
    let all: Vec<i64> = client
        .query("SELECT position FROM events ORDER BY position", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no entry is read twice");
    let missing: Vec<i64> = all
        .iter()
        .filter(|p| !unique.contains(p))
        .copied()
        .collect();
    assert!(missing.is_empty(), "entries never read: {missing:?}");
    assert_eq!(unique.len(), all.len());
    assert!(all.len() >= writers * per_writer);
}

#[tokio::test]
async fn an_open_transaction_holds_back_later_entries_until_it_commits() {
    let db = migrated().await;
    let mut slow = db.client().await;
    let fast = db.client().await;
    let reader = common::pool(&db.url).get().await.unwrap();
    let slow_tx = slow.transaction().await.unwrap();
    slow_tx.execute(INSERT, &[&"slow", &1i64]).await.unwrap(); // takes the earlier position
    fast.execute(INSERT, &[&"fast", &1i64]).await.unwrap(); // commits first, later position
                                                            // The fast entry is not visible yet: reading it would let the slow one be skipped.
    assert!(read_after(&reader, Cursor::START, 10)
        .await
        .unwrap()
        .is_empty());
    slow_tx.commit().await.unwrap();
    // Transactions of other tests in the same cluster can hold the horizon back for a moment.
    let mut entries = Vec::new();
    for _ in 0..500 {
        entries = read_after(&reader, Cursor::START, 10).await.unwrap();
        if entries.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let ids: Vec<&str> = entries.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(ids, ["slow", "fast"]);
    // Resuming from a position continues after it.
    let first = cursor_of(&reader, entries[0].position())
        .await
        .unwrap()
        .unwrap();
    let rest = read_after(&reader, first, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].aggregate_id, "fast");
}

#[tokio::test]
async fn migrations_apply_on_empty_and_on_migrated_databases() {
    let db = TestDb::new().await;
    let first = db.run(&["migrate"]).await;
    assert!(first.starts_with(&format!(
        "{} migration(s) applied",
        first.split(' ').next().unwrap()
    )));
    let applied: usize = first.split(' ').next().unwrap().parse().unwrap();
    assert!(applied >= 2, "{first}");
    let second = db.run(&["migrate"]).await;
    assert!(second.starts_with("0 migration(s) applied"), "{second}");
    let client = db.client().await;
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Versions may have gaps while parallel branches land (0005 before 0004), never repeats.
    assert_eq!(versions.len(), applied);
    assert_eq!(versions[0], 1);
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    let ext: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        ext,
        "the test cluster loads TimescaleDB, so migrations enable it"
    );
    // A changed migration is detected, not silently skipped.
    client
        .execute(
            "UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("different contents"));
}
