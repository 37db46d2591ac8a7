//! Tamper evidence for the event log.
//!
//! The committed log is sealed in log order, a range at a time, after the fact: a seal
//! (`audit_seals`) keeps the hash of every entry in its range and a digest chained to the
//! previous seal's. Writers are untouched (no global lock on appends); the sealer follows the
//! log like a projection, from its own last seal. `verify` re-reads each sealed range and names
//! every entry edited, deleted or slipped in since, and any seal rewritten or removed. Someone
//! who can rewrite both the log and every later seal can forge a consistent chain: the head
//! digest (printed by `wearhouse audit verify` and the API) is what to record elsewhere to rule
//! that out.

pub mod chain;
pub mod history;

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use tokio::sync::watch;
use tracing::warn;
use wearhouse_log::read::{read_after, read_through};
use wearhouse_log::{Cursor, LogEntry};

use chain::{check_seal, entry_hash, seal_digest, to_hash, Hash, Problem, Seal, GENESIS};

/// Entries per seal.
const SEAL_ENTRIES: i64 = 2000;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// The sample batches' SHA-256, by batch id, for the `SamplesRecorded` entries among `entries`.
async fn batch_hashes(
    client: &impl GenericClient,
    entries: &[LogEntry],
) -> Result<HashMap<i64, Vec<u8>>, AuditError> {
    let ids: Vec<i64> = entries.iter().filter_map(batch_id).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            "SELECT id, sha256(arrow) FROM sample_batches WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn batch_id(entry: &LogEntry) -> Option<i64> {
    if entry.event_type != "SamplesRecorded" {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Batch {
        batch_id: i64,
    }
    #[derive(serde::Deserialize)]
    struct Recorded {
        batch: Batch,
    }
    serde_json::from_str::<Recorded>(entry.payload.get())
        .ok()
        .map(|r| r.batch.batch_id)
}

/// Each entry's hash (a sample batch whose bytes are gone hashes as an empty batch, so it
/// shows as modified).
async fn hashes(
    client: &impl GenericClient,
    entries: &[LogEntry],
) -> Result<Vec<Hash>, AuditError> {
    let batches = batch_hashes(client, entries).await?;
    Ok(entries
        .iter()
        .map(|e| {
            let batch = batch_id(e).map(|id| batches.get(&id).map(Vec::as_slice).unwrap_or(&[]));
            entry_hash(e, batch)
        })
        .collect())
}

/// Seals what was committed since the last seal. Returns the number of entries sealed.
/// Two sealers never interleave: each seal is written under a transaction-scoped lock.
pub async fn seal(pool: &Pool) -> Result<u64, AuditError> {
    let mut sealed = 0;
    loop {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('wearhouse.audit_seal', 7261))",
            &[],
        )
        .await?;
        let last = tx
            .query_opt(
                "SELECT seal, through_tx, through_position, digest FROM audit_seals \
                 ORDER BY seal DESC LIMIT 1",
                &[],
            )
            .await?;
        let (next, after, prev) = match &last {
            Some(r) => (
                r.get::<_, i64>(0) + 1,
                Cursor {
                    tx: r.get(1),
                    position: r.get(2),
                },
                to_hash(r.get(3)),
            ),
            None => (1, Cursor::START, GENESIS),
        };
        let entries = read_after(&tx, after, SEAL_ENTRIES).await?;
        let Some(through) = entries.last().map(|e| e.cursor) else {
            return Ok(sealed);
        };
        let entry_hashes: Vec<u8> = hashes(&tx, &entries).await?.concat();
        let positions: Vec<i64> = entries.iter().map(LogEntry::position).collect();
        let digest = seal_digest(&prev, &entry_hashes);
        tx.execute(
            "INSERT INTO audit_seals (seal, after_tx, after_position, through_tx, through_position, \
             positions, entry_hashes, prev_digest, digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &next,
                &after.tx,
                &after.position,
                &through.tx,
                &through.position,
                &positions,
                &entry_hashes,
                &prev.as_slice(),
                &digest.as_slice(),
            ],
        )
        .await?;
        tx.commit().await?;
        sealed += entries.len() as u64;
    }
}

/// Seals the log every `every` until `shutdown` turns true (inside `serve`).
pub async fn run(pool: Pool, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = seal(&pool).await {
            warn!(error = %e, "sealing the log failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when no problem was found.
    pub intact: bool,
    pub seals: i64,
    pub entries_sealed: u64,
    /// The log position of the last sealed entry (0 when nothing is sealed yet).
    pub sealed_through_position: i64,
    /// The last seal's digest (hex): record it elsewhere to detect a rewritten chain later.
    pub head_digest: String,
    /// Committed entries after the last seal (sealed within a few seconds by `serve`).
    pub unsealed_entries: i64,
    pub problems: Vec<Problem>,
}

/// Re-reads every sealed range and checks it against its seal and the chain.
pub async fn verify(pool: &Pool) -> Result<Report, AuditError> {
    let client = pool.get().await?;
    let mut report = Report {
        intact: true,
        seals: 0,
        entries_sealed: 0,
        sealed_through_position: 0,
        head_digest: hex::encode(GENESIS),
        unsealed_entries: 0,
        problems: Vec::new(),
    };
    let mut prev = GENESIS;
    let mut end = Cursor::START;
    let mut next = 0i64;
    loop {
        // A page of seals at a time: a long log is never held whole.
        let rows = client
            .query(
                "SELECT seal, after_tx, after_position, through_tx, through_position, positions, \
                 entry_hashes, prev_digest, digest FROM audit_seals WHERE seal > $1 \
                 ORDER BY seal LIMIT 50",
                &[&next],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let seal = Seal {
                seal: r.get(0),
                positions: r.get(5),
                entry_hashes: r.get(6),
                prev_digest: r.get(7),
                digest: r.get(8),
            };
            let after = Cursor {
                tx: r.get(1),
                position: r.get(2),
            };
            let through = Cursor {
                tx: r.get(3),
                position: r.get(4),
            };
            if seal.seal != next + 1 || after != end {
                // A seal removed: the next one does not start where the last one ended.
                report
                    .problems
                    .push(Problem::ChainBroken { seal: seal.seal });
            }
            let entries = read_through(&client, after, through, &[]).await?;
            let found: HashMap<i64, Hash> = entries
                .iter()
                .map(LogEntry::position)
                .zip(hashes(&client, &entries).await?)
                .collect();
            report.problems.extend(check_seal(&seal, &prev, &found));
            report.seals += 1;
            report.entries_sealed += seal.positions.len() as u64;
            report.sealed_through_position = through.position;
            prev = to_hash(&seal.digest);
            end = through;
            next = seal.seal;
        }
    }
    report.head_digest = hex::encode(prev);
    report.unsealed_entries = client
        .query_one(
            "SELECT count(*) FROM events WHERE (tx, position) > ($1::bigint::text::xid8, $2)",
            &[&end.tx, &end.position],
        )
        .await?
        .get(0);
    report.intact = report.problems.is_empty();
    Ok(report)
}
