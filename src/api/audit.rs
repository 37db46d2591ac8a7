//! `/api/v1/audit`: the log's tamper evidence, for admin and auditor accounts (see
//! `crate::audit`).

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Tags};

use super::{error::internal_api, ApiError, AppState};
use crate::audit::{self, chain::Problem};
use crate::auth::AuditAuth;

#[derive(Tags)]
enum Tag {
    /// Tamper evidence of the event log
    Audit,
}

#[derive(Enum)]
#[oai(rename_all = "snake_case")]
enum ProblemKind {
    /// The entry is not what was sealed.
    Modified,
    /// The entry was sealed and is gone.
    Deleted,
    /// The entry sits inside a sealed range but was not sealed with it.
    Inserted,
    /// The seal's digest does not follow from its entry hashes.
    SealAltered,
    /// The seal does not continue the chain (a seal removed or rewritten).
    ChainBroken,
}

#[derive(Object)]
struct AuditProblem {
    kind: ProblemKind,
    /// The seal (numbered from 1 in log order) the problem was found in.
    seal: i64,
    /// The log position of the entry concerned; null for problems of the seal itself.
    position: Option<i64>,
}

impl From<&Problem> for AuditProblem {
    fn from(p: &Problem) -> Self {
        let (kind, seal, position) = match *p {
            Problem::Modified { seal, position } => (ProblemKind::Modified, seal, Some(position)),
            Problem::Deleted { seal, position } => (ProblemKind::Deleted, seal, Some(position)),
            Problem::Inserted { seal, position } => (ProblemKind::Inserted, seal, Some(position)),
            Problem::SealAltered { seal } => (ProblemKind::SealAltered, seal, None),
            Problem::ChainBroken { seal } => (ProblemKind::ChainBroken, seal, None),
        };
        AuditProblem {
            kind,
            seal,
            position,
        }
    }
}

#[derive(Object)]
struct AuditVerification {
    /// True when every sealed entry is as it was sealed and the chain is whole.
    intact: bool,
    seals: i64,
    entries_sealed: i64,
    /// The log position of the last sealed entry (0 when nothing is sealed yet): the position
    /// this answer was read at.
    sealed_through_position: i64,
    /// The last seal's digest (hex). Keep it outside this database: a later verification whose
    /// chain does not pass through it was rewritten.
    head_digest: String,
    /// Committed entries not sealed yet (`serve` seals every WEARHOUSE_AUDIT_SEAL_SECS).
    unsealed_entries: i64,
    problems: Vec<AuditProblem>,
}

pub struct AuditApi;

#[OpenApi(prefix_path = "/api/v1/audit")]
impl AuditApi {
    /// Verify the event log against its seals (names every entry edited, deleted or inserted
    /// since it was sealed, and every seal rewritten or removed)
    #[oai(path = "/verify", method = "get", tag = "Tag::Audit")]
    async fn verify(
        &self,
        state: Data<&AppState>,
        _auth: AuditAuth,
    ) -> Result<Json<AuditVerification>, ApiError> {
        let report = audit::verify(&state.pool).await.map_err(internal_api)?;
        Ok(Json(AuditVerification {
            intact: report.intact,
            seals: report.seals,
            entries_sealed: report.entries_sealed as i64,
            sealed_through_position: report.sealed_through_position,
            head_digest: report.head_digest,
            unsealed_entries: report.unsealed_entries,
            problems: report.problems.iter().map(AuditProblem::from).collect(),
        }))
    }
}
