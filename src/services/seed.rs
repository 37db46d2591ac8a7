//! Seed data (`/api/v1/settings/seed`): synthetic users whose data comes from the Apple Health
//! generator (`ingest::apple::generate_shaped`) and goes through the import pipeline like an
//! upload: raw bytes stored, events in the log, read models from the projections. A request is
//! one durable job (kind [`KIND`]); re-running it after a crash creates no second user or
//! import, because their ids derive from the job's id and the pipeline skips what the log
//! shows done.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::info;
use uuid::Uuid;
use wearhouse_domain::user::{User, UserCommand, UserProfile};

use crate::ingest::apple::{self, Limits, Shape};
use crate::ingest::import::{self, ImportRequest, Outcome, Progress};
use crate::jobs::{JobContext, JobFailure, JobHandler, Jobs};
use crate::store::{Actor, Commands};

/// Job kind of a seed request.
pub const KIND: &str = "seed_data";

/// A resolved seed request, as its job carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub num_users: u32,
    pub seed: u64,
    /// The preset's id, or `custom`: part of each user's first name, as upstream writes it.
    pub label: String,
    pub shape: Shape,
    pub actor_kind: String,
    pub actor_id: String,
    pub request_id: Option<String>,
}

/// Queues a seed request; the job's id is the answer's `task_id`.
pub async fn enqueue(jobs: &Jobs, plan: &Plan) -> Result<Uuid, crate::jobs::JobError> {
    let payload = serde_json::to_value(plan).expect("a seed plan serializes");
    jobs.enqueue(KIND, None, payload).await
}

const FIRST: [&str; 12] = [
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus",
    "Radia", "Tim",
];
const LAST: [&str; 12] = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Berners-Lee",
];

/// Runs seed jobs.
pub struct SeedJob {
    pub commands: Commands,
    pub limits: Limits,
    /// Where the generated exports are written before their import (removed after it).
    pub uploads: PathBuf,
}

impl SeedJob {
    fn actor(plan: &Plan) -> Actor {
        Actor {
            kind: match plan.actor_kind.as_str() {
                "developer" => "developer",
                "api_key" => "api_key",
                _ => "system",
            },
            id: plan.actor_id.clone(),
            request_id: plan.request_id.clone(),
        }
    }

    /// Creates the `n`th user unless an earlier run of the job did.
    async fn user(&self, job: Uuid, plan: &Plan, n: u32) -> Result<Uuid, JobFailure> {
        let id = Uuid::new_v5(&job, format!("user-{n}").as_bytes());
        let exists = self
            .commands
            .pool
            .get()
            .await
            .map_err(JobFailure::retry)?
            .query_opt(
                "SELECT 1 FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 LIMIT 1",
                &[&id.to_string()],
            )
            .await
            .map_err(JobFailure::retry)?
            .is_some();
        if exists {
            return Ok(id);
        }
        // Names from the job's seed, so the same seed reads the same.
        let pick = (plan.seed as usize).wrapping_add(n as usize * 7);
        let (first, last) = (FIRST[pick % FIRST.len()], LAST[(pick / 3) % LAST.len()]);
        let profile = UserProfile {
            first_name: Some(format!("[SEED:{}|{}] {first}", plan.seed, plan.label)),
            last_name: Some(last.to_string()),
            email: Some(format!(
                "{}.{}.{}@example.com",
                first.to_lowercase(),
                last.to_lowercase(),
                &id.simple().to_string()[..8]
            )),
            external_user_id: None,
        };
        let command = UserCommand::Create {
            id,
            profile,
            at: Utc::now(),
        };
        self.commands
            .execute::<User>(
                &id.to_string(),
                command,
                &Self::actor(plan),
                Some(id),
                Some("users"),
            )
            .await
            .map_err(|e| JobFailure::retry(anyhow::anyhow!("creating a seed user: {e}")))?;
        Ok(id)
    }

    /// Generates the user's export and imports it.
    async fn data(&self, job: Uuid, plan: &Plan, n: u32, user: Uuid) -> Result<(), JobFailure> {
        let import_id = Uuid::new_v5(&job, format!("import-{n}").as_bytes());
        std::fs::create_dir_all(&self.uploads).map_err(JobFailure::retry)?;
        let path = self.uploads.join(format!("seed-{import_id}.xml"));
        // Each user's own stream of the seed.
        let seed = plan.seed ^ (u64::from(n) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (out, shape) = (path.clone(), plan.shape.clone());
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&out)?;
            apple::generate_shaped(file, seed, &shape)
        })
        .await
        .map_err(JobFailure::retry)?
        .map_err(JobFailure::retry)?;
        let req = ImportRequest {
            import_id,
            user_id: user,
            path: path.clone(),
            filename: Some(format!("seed-{}-{n}.xml", plan.seed)),
            sha256: None,
            actor: Self::actor(plan),
            limits: self.limits,
        };
        let result = import::run(
            &self.commands.pool,
            &self.commands,
            req,
            Arc::new(Progress::default()),
        )
        .await;
        let _ = tokio::fs::remove_file(&path).await;
        match result.map_err(JobFailure::retry)? {
            Outcome::Failed { error } => Err(JobFailure::permanent(anyhow::anyhow!(
                "the seeded export did not import: {error}"
            ))),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl JobHandler for SeedJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobFailure> {
        let plan: Plan =
            serde_json::from_value(job.payload.clone()).map_err(JobFailure::permanent)?;
        let has_data = plan.shape != Shape::default();
        for n in 0..plan.num_users {
            let user = self.user(job.id, &plan, n).await?;
            if has_data {
                self.data(job.id, &plan, n, user).await?;
            }
        }
        info!(job = %job.id, users = plan.num_users, seed = plan.seed, "seed data generated");
        Ok(())
    }
}
