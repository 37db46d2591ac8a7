//! The `jobs` table: inserting, listing and counting (claiming is in the runner).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{EnqueueOptions, JobError, CHANNEL, STATES};

/// Inserts a job, or returns the existing one with the same kind and key.
pub(super) async fn insert<C: GenericClient + Sync>(
    client: &C,
    kind: &str,
    key: Option<&str>,
    payload: &serde_json::Value,
    options: &EnqueueOptions,
) -> Result<Uuid, JobError> {
    let id = Uuid::new_v4();
    let max_attempts = options.max_attempts.max(1);
    let inserted = client
        .query_opt(
            "INSERT INTO jobs (id, kind, key, payload, max_attempts, run_at, origin) \
             VALUES ($1, $2, $3, $4, $5, coalesce($6, now()), $7) \
             ON CONFLICT (kind, key) WHERE key IS NOT NULL DO NOTHING RETURNING id",
            &[
                &id,
                &kind,
                &key,
                payload,
                &max_attempts,
                &options.run_at,
                // The request's origin goes with the job (see `wearhouse_log::origin`).
                &wearhouse_log::origin::current().map(tokio_postgres::types::Json),
            ],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok(row.get(0));
    }
    // A conflict waited for the other insert to commit, so this statement sees its row.
    let row = client
        .query_one(
            "SELECT id FROM jobs WHERE kind = $1 AND key = $2",
            &[&kind, &key],
        )
        .await?;
    Ok(row.get(0))
}

pub(super) async fn notify<C: GenericClient + Sync>(
    client: &C,
    kind: &str,
) -> Result<(), JobError> {
    client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &kind])
        .await?;
    Ok(())
}

/// Which jobs `wearhouse jobs list` shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub key: Option<String>,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub created_at: DateTime<Utc>,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

impl JobRow {
    /// One line for `wearhouse jobs list`: kind, state, attempts, age, last error.
    pub fn line(&self, now: DateTime<Utc>) -> String {
        let mut out = format!(
            "{} {} state={} attempts={}/{} age={}",
            self.id,
            self.kind,
            self.state,
            self.attempts,
            self.max_attempts,
            human((now - self.created_at).num_seconds())
        );
        if self.state == "pending" && self.run_at > now {
            out.push_str(&format!(
                " next_in={}",
                human((self.run_at - now).num_seconds())
            ));
        }
        if let Some(e) = &self.last_error {
            // One line per job, whatever the error says.
            let e: String = e.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push_str(&format!(" last_error={e:?}"));
        }
        out
    }
}

fn human(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Jobs matching `filter`, newest first.
pub async fn list(
    pool: &deadpool_postgres::Pool,
    filter: &ListFilter,
) -> Result<Vec<JobRow>, JobError> {
    if let Some(state) = &filter.state {
        if !STATES.contains(&state.as_str()) {
            return Err(JobError::UnknownState(state.clone()));
        }
    }
    let client = pool.get().await?;
    let limit = if filter.limit > 0 { filter.limit } else { 100 };
    let rows = client
        .query(
            "SELECT id, kind, key, state, attempts, max_attempts, created_at, run_at, last_error \
               FROM jobs WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2) \
              ORDER BY created_at DESC, id LIMIT $3",
            &[&filter.state, &filter.kind, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| JobRow {
            id: r.get(0),
            kind: r.get(1),
            key: r.get(2),
            state: r.get(3),
            attempts: r.get(4),
            max_attempts: r.get(5),
            created_at: r.get(6),
            run_at: r.get(7),
            last_error: r.get(8),
        })
        .collect())
}

/// Counts of one kind of job, for `/metrics`.
#[derive(Debug, Clone)]
pub struct KindStats {
    pub kind: String,
    /// Per state, in the order of [`STATES`].
    pub counts: [i64; 4],
    /// Seconds since the oldest pending job of this kind was enqueued (0: none pending).
    pub oldest_pending_secs: f64,
}

pub async fn stats<C: GenericClient + Sync>(client: &C) -> Result<Vec<KindStats>, JobError> {
    let rows = client
        .query(
            "SELECT kind, \
                    count(*) FILTER (WHERE state = 'pending'), \
                    count(*) FILTER (WHERE state = 'running'), \
                    count(*) FILTER (WHERE state = 'done'), \
                    count(*) FILTER (WHERE state = 'failed'), \
                    coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending'))::float8, 0) \
               FROM jobs GROUP BY kind ORDER BY kind",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| KindStats {
            kind: r.get(0),
            counts: [r.get(1), r.get(2), r.get(3), r.get(4)],
            oldest_pending_secs: r.get(5),
        })
        .collect())
}
