//! The `sleep_nights` read model: every source's sessions merged into nights
//! (`wearhouse_domain::sleep_merge`: gap rule, clipped stages, naps, one main sleep per local
//! wake date), with heart rate, HRV, respiratory rate and SpO2 averaged over each main sleep.
//! Sessions, deletions, vitals samples and priority changes recompute the wake dates they touch.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;
use wearhouse_domain::records::{DataEvent, RecordKind};
use wearhouse_domain::scores::waso;
use wearhouse_domain::sleep_merge;

use crate::health_scores::load_sessions;
use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct SleepNights;

pub const HEART_RATE: i16 = 1;
pub const HRV_SDNN: i16 = 3;
pub const HRV_RMSSD: i16 = 7;
pub const SPO2: i16 = 20;
pub const RESPIRATORY_RATE: i16 = 24;
const VITALS: [i16; 5] = [HEART_RATE, HRV_SDNN, HRV_RMSSD, SPO2, RESPIRATORY_RATE];

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// Recomputes the nights of `user` whose local wake date is in `from..=to`.
pub async fn recompute(
    tx: &impl GenericClient,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    let sessions = load_sessions(
        tx,
        user,
        midnight(from) - Duration::days(2),
        midnight(to + Duration::days(1)) + Duration::days(1),
    )
    .await?;
    let nights: Vec<sleep_merge::Night> = sleep_merge::merge(sessions)
        .into_iter()
        .filter(|n| (from..=to).contains(&n.wake_date()))
        .collect();
    tx.execute(
        "DELETE FROM sleep_nights WHERE user_id = $1 AND wake_date >= $2 AND wake_date <= $3",
        &[&user, &from, &to],
    )
    .await?;
    if nights.is_empty() {
        return Ok(());
    }
    // Vitals of every main sleep in one query: an index range scan per window and type.
    let mains: Vec<&sleep_merge::Night> = nights.iter().filter(|n| n.is_main).collect();
    let idx: Vec<i32> = (0..mains.len() as i32).collect();
    let st: Vec<DateTime<Utc>> = mains.iter().map(|n| n.start).collect();
    let en: Vec<DateTime<Utc>> = mains.iter().map(|n| n.end).collect();
    let vitals: Vec<i16> = VITALS.to_vec();
    let mut avg: BTreeMap<(i32, i16), f64> = BTreeMap::new();
    if !mains.is_empty() {
        for r in tx
            .query(
                // LATERAL keeps the planner on one index range scan per window and type; a plain
                // join hashes whole chunks instead (seconds instead of milliseconds).
                "SELECT w.i, t.id, a.v \
                 FROM unnest($2::int4[], $3::timestamptz[], $4::timestamptz[]) AS w(i, st, en) \
                 CROSS JOIN unnest($5::int2[]) AS t(id) \
                 CROSS JOIN LATERAL (SELECT avg(s.value) AS v FROM samples s \
                   WHERE s.user_id = $1 AND s.series_type = t.id AND s.time >= w.st AND s.time < w.en) a \
                 WHERE a.v IS NOT NULL",
                &[&user, &idx, &st, &en, &vitals],
            )
            .await?
        {
            avg.insert((r.get(0), r.get(1)), r.get(2));
        }
    }
    let mut main_index = 0i32;
    for n in &nights {
        let i = if n.is_main {
            main_index += 1;
            Some(main_index - 1)
        } else {
            None
        };
        let v = |series: i16| i.and_then(|i| avg.get(&(i, series)).copied());
        let timeline: Vec<_> = n
            .stages
            .iter()
            .map(|s| {
                (
                    s.stage,
                    (s.end - s.start).num_milliseconds() as f64 / 60_000.0,
                )
            })
            .collect();
        let interruptions = waso(&timeline).1 as i32;
        tx.execute(
            "INSERT INTO sleep_nights (user_id, wake_date, start_time, end_time, zone_offset, data_source_id, is_main, is_nap, \
               awake_minutes, light_minutes, deep_minutes, rem_minutes, asleep_minutes, in_bed_minutes, interruptions, \
               session_ids, avg_heart_rate, avg_hrv_sdnn, avg_hrv_rmssd, avg_respiratory_rate, avg_spo2) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
             ON CONFLICT (user_id, wake_date, start_time) DO NOTHING",
            &[
                &user,
                &n.wake_date(),
                &n.start,
                &n.end,
                &n.zone_offset,
                &n.source,
                &n.is_main,
                &n.is_nap,
                &n.awake_minutes,
                &n.light_minutes,
                &n.deep_minutes,
                &n.rem_minutes,
                &n.asleep_minutes,
                &n.in_bed_minutes,
                &interruptions,
                &n.session_ids,
                &v(HEART_RATE),
                &v(HRV_SDNN),
                &v(HRV_RMSSD),
                &v(RESPIRATORY_RATE),
                &v(SPO2),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Every night of `user`.
pub async fn recompute_user(
    tx: &impl GenericClient,
    user: Uuid,
) -> Result<(), tokio_postgres::Error> {
    let row = tx
        .query_one(
            "SELECT min(start_time), max(end_time) FROM sleep_sessions WHERE user_id = $1",
            &[&user],
        )
        .await?;
    let (lo, hi): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (row.get(0), row.get(1));
    if let (Some(lo), Some(hi)) = (lo, hi) {
        recompute(
            tx,
            user,
            lo.date_naive() - Duration::days(1),
            hi.date_naive() + Duration::days(1),
        )
        .await?;
    }
    Ok(())
}

fn add_days(set: &mut BTreeSet<NaiveDate>, from: NaiveDate, to: NaiveDate) {
    let mut d = from;
    while d <= to {
        set.insert(d);
        d += Duration::days(1);
    }
}

/// What changes a night (sessions, vitals, deletions, priorities): the inputs of this model and
/// of the scores computed from nights.
pub const NIGHT_INPUTS: &[&str] = &[
    "SleepSessionsRecorded",
    "SamplesRecorded",
    "RecordDeleted",
    "ProviderPrioritiesSet",
    "DeviceTypePrioritiesSet",
];

/// The read models nights are computed from.
pub const NIGHT_DEPENDENCIES: &[&str] = &[
    "samples",
    "sleep_sessions",
    "data_sources",
    "source_priorities",
];

#[async_trait]
impl Projection for SleepNights {
    fn name(&self) -> &'static str {
        "sleep_nights"
    }

    fn event_types(&self) -> &'static [&'static str] {
        NIGHT_INPUTS
    }

    fn depends_on(&self) -> &'static [&'static str] {
        NIGHT_DEPENDENCIES
    }

    fn batch_size(&self) -> i64 {
        100
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE sleep_nights").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        let mut dates: BTreeMap<Uuid, BTreeSet<NaiveDate>> = BTreeMap::new();
        let mut priorities_seen = false;
        for entry in entries {
            if entry.event_type.ends_with("PrioritiesSet") {
                // Ranks only pick between sources: only nights merging two sources can move.
                if !priorities_seen {
                    priorities_seen = true;
                    for (user, windows) in crate::priority_scope::sleep_windows(tx).await? {
                        let set = dates.entry(user).or_default();
                        for (s, e) in windows {
                            add_days(
                                set,
                                s.date_naive() - Duration::days(1),
                                e.date_naive() + Duration::days(1),
                            );
                        }
                    }
                }
                continue;
            }
            match decode(entry)? {
                DataEvent::SleepSessionsRecorded { user_id, sessions } => {
                    let set = dates.entry(user_id).or_default();
                    for s in sessions {
                        add_days(
                            set,
                            s.start.date_naive() - Duration::days(1),
                            s.end.date_naive() + Duration::days(1),
                        );
                    }
                }
                DataEvent::SamplesRecorded { user_id, batch }
                    if VITALS.contains(&batch.series_type) =>
                {
                    add_days(
                        dates.entry(user_id).or_default(),
                        batch.start.date_naive() - Duration::days(1),
                        batch.end.date_naive() + Duration::days(1),
                    );
                }
                DataEvent::RecordDeleted {
                    user_id,
                    kind: RecordKind::Sleep,
                    record_id,
                } => {
                    if let Some(row) = tx
                        .query_opt(
                            "SELECT start_time, end_time FROM sleep_sessions WHERE id = $1",
                            &[&record_id],
                        )
                        .await?
                    {
                        let (s, e): (DateTime<Utc>, DateTime<Utc>) = (row.get(0), row.get(1));
                        add_days(
                            dates.entry(user_id).or_default(),
                            s.date_naive() - Duration::days(1),
                            e.date_naive() + Duration::days(1),
                        );
                    }
                }
                _ => {}
            }
        }
        for (user, set) in dates {
            let mut run: Option<(NaiveDate, NaiveDate)> = None;
            for d in set {
                run = match run {
                    Some((a, b)) if d == b + Duration::days(1) => Some((a, d)),
                    Some((a, b)) => {
                        recompute(tx, user, a, b).await?;
                        Some((d, d))
                    }
                    None => Some((d, d)),
                };
            }
            if let Some((a, b)) = run {
                recompute(tx, user, a, b).await?;
            }
        }
        Ok(())
    }
}
