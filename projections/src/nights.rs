//! What the `sleep_nights` and `health_scores` read models share: both merge a user's sessions
//! into nights (`wearhouse_domain::sleep_merge`), so both read the same inputs, wait on the same
//! read models and load sessions the same way. Kept here so neither model imports the other.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::SleepStageInterval;
use wearhouse_domain::sleep::SleepStage;
use wearhouse_domain::sleep_merge::{Session, StageSpan};

use crate::ranks::{source_ranks, UNRANKED};

/// Series type id of HRV (RMSSD): a night's vitals and the resilience score both read it.
pub const HRV_RMSSD: i16 = 7;

/// What changes a night (sessions, vitals, deletions, priorities): the inputs of this model and
/// of the scores computed from nights.
pub const NIGHT_INPUTS: &[&str] = &[
    "SleepSessionsRecorded",
    "SamplesRecorded",
    "SamplesDeleted",
    "RecordDeleted",
    "ProviderPrioritiesSet",
    "DeviceTypePrioritiesSet",
    crate::runner::USER_DELETED,
];

/// The read models nights are computed from.
pub const NIGHT_DEPENDENCIES: &[&str] = &[
    "samples",
    "sleep_sessions",
    "data_sources",
    "source_priorities",
];

pub(crate) fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

pub(crate) fn add_days(set: &mut BTreeSet<NaiveDate>, from: NaiveDate, to: NaiveDate) {
    let mut d = from;
    while d <= to {
        set.insert(d);
        d += Duration::days(1);
    }
}

/// The user's sessions overlapping [lo, hi), with ranks, as the merge takes them.
pub async fn load_sessions(
    client: &impl GenericClient,
    user: Uuid,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> Result<Vec<Session>, tokio_postgres::Error> {
    let ranks = source_ranks(client, user).await?;
    let rows = client
        .query(
            "SELECT id, data_source_id, start_time, end_time, zone_offset, is_nap, stages \
             FROM sleep_sessions WHERE user_id = $1 AND NOT deleted AND end_time > $2 AND start_time < $3",
            &[&user, &lo, &hi],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let source: Uuid = r.get(1);
            let stages: Vec<SleepStageInterval> =
                serde_json::from_value(r.get::<_, Value>(6)).unwrap_or_default();
            Session {
                id: r.get(0),
                source,
                rank: ranks.get(&source).copied().unwrap_or(UNRANKED),
                start: r.get(2),
                end: r.get(3),
                zone_offset: r.get::<_, Option<i16>>(4).unwrap_or(0),
                is_nap: r.get(5),
                stages: stages
                    .into_iter()
                    .map(|s| StageSpan {
                        stage: SleepStage::parse(&s.stage).unwrap_or(SleepStage::Unknown),
                        start: s.start,
                        end: s.end,
                    })
                    .collect(),
            }
        })
        .collect())
}
