//! The `health_scores` read model's `internal` rows: the sleep score of the longest non-nap night
//! of every local start date and
//! the resilience score of every day with enough nightly HRV (reference §7). Sleep and HRV
//! arriving, a sleep record deleted, or priorities changing recompute the dates they affect:
//! a night's score depends on the 14 nights before it (consistency), a day's resilience on the
//! 7 days before it.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use serde_json::{json, Value};
use uuid::Uuid;
use wearhouse_domain::daily::local_hour;
use wearhouse_domain::records::{record_id, DataEvent, RecordKind};
use wearhouse_domain::scores::{self, SleepInputs, HISTORY_NIGHTS, LOOKBACK_DAYS};
use wearhouse_domain::sleep_merge::{self, Night};

use crate::nights::{
    add_days, load_sessions, midnight, HRV_RMSSD, NIGHT_DEPENDENCIES, NIGHT_INPUTS,
};
use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct HealthScores;

/// Nights looked back at for bedtime history (one per night, within 15 nights).
const HISTORY_WINDOW_DAYS: i64 = 15;
const MARGIN_H: i64 = 15;

fn component(value: Option<f64>, qualifier: Option<&str>) -> Value {
    json!({ "value": value, "qualifier": qualifier })
}

fn sleep_inputs(night: &Night, history: &[&Night]) -> SleepInputs {
    SleepInputs {
        total_sleep_min: night.asleep_minutes,
        deep_min: night.deep_minutes,
        rem_min: night.rem_minutes,
        awake_min: night.awake_minutes,
        bedtime_hour: local_hour(night.start, night.zone_offset),
        history_bedtimes: history
            .iter()
            .map(|n| local_hour(n.start, n.zone_offset))
            .collect(),
        timeline: night
            .stages
            .iter()
            .map(|s| {
                (
                    s.stage,
                    (s.end - s.start).num_milliseconds() as f64 / 60_000.0,
                )
            })
            .collect(),
    }
}

/// Dates recomputed together (each window also reads the nights or days it looks back at).
const CHUNK_DAYS: i64 = 62;

/// Sleep scores of the rated nights (the longest non-nap night per local start date, contract
/// §7.1) that end in the local dates `from..=to` (with margin). Each is stamped at its wake time.
pub async fn recompute_sleep(
    tx: &impl GenericClient,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    // Windows overlap by their margins; a night in two windows gets the same score twice.
    for (a, b) in crate::date_chunks(from, to, CHUNK_DAYS) {
        recompute_sleep_chunk(tx, user, a, b).await?;
    }
    Ok(())
}

async fn recompute_sleep_chunk(
    tx: &impl GenericClient,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    let lo = midnight(from) - Duration::hours(MARGIN_H);
    let hi = midnight(to + Duration::days(1)) + Duration::hours(MARGIN_H);
    let sessions = load_sessions(
        tx,
        user,
        lo - Duration::days(HISTORY_WINDOW_DAYS + 2),
        hi + Duration::days(1),
    )
    .await?;
    let nights = sleep_merge::merge(sessions);
    let rated: Vec<&Night> = sleep_merge::score_nights(&nights)
        .into_iter()
        .map(|i| &nights[i])
        .collect();
    tx.execute(
        "DELETE FROM health_scores WHERE user_id = $1 AND provider = 'internal' AND category = 'sleep' \
         AND recorded_at >= $2 AND recorded_at < $3",
        &[&user, &lo, &hi],
    )
    .await?;
    let mut out = BTreeMap::new();
    for (i, night) in rated.iter().enumerate() {
        if night.end < lo || night.end >= hi {
            continue;
        }
        // One bedtime per earlier start date, at most 14, within 15 nights (as upstream).
        let date = night.start_date();
        let earliest = date - Duration::days(HISTORY_WINDOW_DAYS);
        let history: Vec<&Night> = rated[..i]
            .iter()
            .rev()
            .filter(|n| n.start_date() >= earliest && n.start_date() < date)
            .take(HISTORY_NIGHTS)
            .copied()
            .collect();
        let Some(score) = scores::sleep_score(&sleep_inputs(night, &history)) else {
            continue;
        };
        let components = json!({
            "duration": component(Some(score.duration as f64), None),
            "stages": component(Some(score.stages as f64), None),
            "consistency": component(Some(score.consistency as f64), None),
            "interruptions": component(Some(score.interruptions as f64), None),
        });
        out.insert(
            night.end,
            Score {
                source: Some(night.source),
                value: score.overall as f64,
                zone_offset: night.zone_offset,
                components,
                sleep_record_id: night.session_ids.first().copied(),
            },
        );
    }
    upsert(tx, user, "sleep", out).await
}

/// An internal score, keyed by its `recorded_at`.
struct Score {
    source: Option<Uuid>,
    value: f64,
    zone_offset: i16,
    components: Value,
    sleep_record_id: Option<Uuid>,
}

/// Writes a window's internal scores of one category in one statement.
async fn upsert(
    tx: &impl GenericClient,
    user: Uuid,
    category: &str,
    scores: BTreeMap<DateTime<Utc>, Score>,
) -> Result<(), tokio_postgres::Error> {
    if scores.is_empty() {
        return Ok(());
    }
    let prefix = user.to_string();
    let ids: Vec<Uuid> = scores
        .keys()
        .map(|at| record_id(&[&prefix, "internal", category, &at.to_rfc3339()]))
        .collect();
    let at: Vec<DateTime<Utc>> = scores.keys().copied().collect();
    let s: Vec<&Score> = scores.values().collect();
    let sources: Vec<Option<Uuid>> = s.iter().map(|s| s.source).collect();
    let values: Vec<f64> = s.iter().map(|s| s.value).collect();
    let zones: Vec<i16> = s.iter().map(|s| s.zone_offset).collect();
    let components: Vec<&Value> = s.iter().map(|s| &s.components).collect();
    let sleeps: Vec<Option<Uuid>> = s.iter().map(|s| s.sleep_record_id).collect();
    tx.execute(
        "INSERT INTO health_scores (id, user_id, data_source_id, provider, category, value, recorded_at, \
           zone_offset, components, sleep_record_id) \
         SELECT id, $1, src, 'internal', $2, v, at, z, c, sl \
         FROM unnest($3::uuid[], $4::uuid[], $5::float8[], $6::timestamptz[], $7::int2[], $8::jsonb[], $9::uuid[]) \
           AS t(id, src, v, at, z, c, sl) \
         ON CONFLICT (user_id, provider, category, recorded_at) DO UPDATE SET value = EXCLUDED.value, \
           components = EXCLUDED.components, data_source_id = EXCLUDED.data_source_id, \
           zone_offset = EXCLUDED.zone_offset, sleep_record_id = EXCLUDED.sleep_record_id",
        &[&user, &category, &ids, &sources, &values, &at, &zones, &components, &sleeps],
    )
    .await?;
    Ok(())
}

/// Resilience scores for reference dates `from..=to`.
pub async fn recompute_resilience(
    tx: &impl GenericClient,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    for (a, b) in crate::date_chunks(from, to, CHUNK_DAYS) {
        recompute_resilience_chunk(tx, user, a, b).await?;
    }
    Ok(())
}

async fn recompute_resilience_chunk(
    tx: &impl GenericClient,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    let lo = midnight(from) - Duration::days(LOOKBACK_DAYS);
    let hi = midnight(to);
    let sessions = load_sessions(tx, user, lo, hi).await?;
    // Asleep windows: asleep stages, or the whole session when it has no stages.
    let mut windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for s in &sessions {
        if s.stages.is_empty() {
            windows.push((s.start, s.end));
        }
        for st in s.stages.iter().filter(|st| st.stage.is_asleep()) {
            windows.push((st.start, st.end));
        }
    }
    windows.sort();
    let rows = tx
        .query(
            "SELECT time, value FROM samples WHERE user_id = $1 AND series_type = $2 AND time >= $3 AND time < $4",
            &[&user, &HRV_RMSSD, &lo, &hi],
        )
        .await?;
    let mut daily: BTreeMap<NaiveDate, (f64, u32)> = BTreeMap::new();
    for r in &rows {
        let t: DateTime<Utc> = r.get(0);
        // Half-open windows [start, end).
        let k = windows.partition_point(|w| w.0 <= t);
        let inside = windows[..k].iter().rev().take(64).any(|w| t < w.1);
        if inside {
            let e = daily.entry(t.date_naive()).or_insert((0.0, 0));
            e.0 += r.get::<_, f64>(1);
            e.1 += 1;
        }
    }
    tx.execute(
        "DELETE FROM health_scores WHERE user_id = $1 AND provider = 'internal' AND category = 'resilience' \
         AND recorded_at >= $2 AND recorded_at <= $3",
        &[&user, &midnight(from), &hi],
    )
    .await?;
    let mut out = BTreeMap::new();
    let mut r = from;
    while r <= to {
        let means: Vec<f64> = daily
            .range(r - Duration::days(LOOKBACK_DAYS)..r)
            .map(|(_, (sum, n))| sum / *n as f64)
            .collect();
        if let Some(res) = scores::resilience(&means) {
            let at = midnight(r);
            let components = json!({
                "days_counted": component(Some(res.days_counted as f64), None),
                "metric_type": component(None, Some("RMSSD")),
                "resilience_score": component(Some(res.score as f64), None),
            });
            // Stored like the contract's NUMERIC(6,3).
            let value = (res.cv * 1000.0).round() / 1000.0;
            out.insert(
                at,
                Score {
                    source: None,
                    value,
                    zone_offset: 0,
                    components,
                    sleep_record_id: None,
                },
            );
        }
        r += Duration::days(1);
    }
    upsert(tx, user, "resilience", out).await
}

/// Every score of `user`.
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
        let (a, b) = (
            lo.date_naive() - Duration::days(1),
            hi.date_naive() + Duration::days(1),
        );
        recompute_sleep(tx, user, a, b).await?;
        recompute_resilience(tx, user, a, b + Duration::days(LOOKBACK_DAYS + 1)).await?;
    }
    Ok(())
}

#[derive(Default)]
struct Ranges {
    sleep: BTreeSet<NaiveDate>,
    resilience: BTreeSet<NaiveDate>,
}

/// Contiguous runs of a set of dates.
fn runs(set: &BTreeSet<NaiveDate>) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for d in set {
        match out.last_mut() {
            Some((_, b)) if *d == *b + Duration::days(1) => *b = *d,
            _ => out.push((*d, *d)),
        }
    }
    out
}

impl Ranges {
    /// A night whose stages or source may change, but not its HRV windows.
    fn sleep_only(&mut self, start: DateTime<Utc>, end: DateTime<Utc>) {
        let (a, b) = (start.date_naive(), end.date_naive());
        add_days(
            &mut self.sleep,
            a - Duration::days(1),
            b + Duration::days(HISTORY_WINDOW_DAYS + 1),
        );
    }

    fn sleep_changed(&mut self, start: DateTime<Utc>, end: DateTime<Utc>) {
        let (a, b) = (start.date_naive(), end.date_naive());
        add_days(
            &mut self.sleep,
            a - Duration::days(1),
            b + Duration::days(HISTORY_WINDOW_DAYS + 1),
        );
        add_days(
            &mut self.resilience,
            a,
            b + Duration::days(LOOKBACK_DAYS + 1),
        );
    }
}

#[async_trait]
impl Projection for HealthScores {
    fn name(&self) -> &'static str {
        "health_scores"
    }

    fn event_types(&self) -> &'static [&'static str] {
        NIGHT_INPUTS
    }

    fn depends_on(&self) -> &'static [&'static str] {
        NIGHT_DEPENDENCIES
    }

    fn batch_size(&self) -> i64 {
        10_000
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["health_scores"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("DELETE FROM health_scores WHERE provider = 'internal'")
            .await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        let mut ranges: BTreeMap<Uuid, Ranges> = BTreeMap::new();
        let mut priorities_seen = false;
        for entry in entries {
            if entry.event_type.ends_with("PrioritiesSet") {
                // Only nights merging two sources change (their stages, source and offset), and
                // with a night's bedtime the consistency of the nights after it; resilience
                // uses every source's asleep windows alike and does not move.
                if !priorities_seen {
                    priorities_seen = true;
                    for (user, windows) in crate::priority_scope::sleep_windows(tx).await? {
                        let r = ranges.entry(user).or_default();
                        for (s, e) in windows {
                            r.sleep_only(s, e);
                        }
                    }
                }
                continue;
            }
            match decode(entry)? {
                DataEvent::SleepSessionsRecorded { user_id, sessions } => {
                    let r = ranges.entry(user_id).or_default();
                    for s in sessions {
                        r.sleep_changed(s.start, s.end);
                    }
                }
                DataEvent::SamplesRecorded { user_id, batch } if batch.series_type == HRV_RMSSD => {
                    add_days(
                        &mut ranges.entry(user_id).or_default().resilience,
                        batch.start.date_naive(),
                        batch.end.date_naive() + Duration::days(LOOKBACK_DAYS + 1),
                    );
                }
                DataEvent::SamplesDeleted {
                    user_id,
                    series_types,
                    times,
                    ..
                } if series_types.contains(&HRV_RMSSD) => {
                    for t in times {
                        add_days(
                            &mut ranges.entry(user_id).or_default().resilience,
                            t.date_naive(),
                            t.date_naive() + Duration::days(LOOKBACK_DAYS + 1),
                        );
                    }
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
                        ranges
                            .entry(user_id)
                            .or_default()
                            .sleep_changed(row.get(0), row.get(1));
                    }
                }
                _ => {}
            }
        }
        for (user, r) in ranges {
            for (a, b) in runs(&r.sleep) {
                recompute_sleep(tx, user, a, b).await?;
            }
            for (a, b) in runs(&r.resilience) {
                recompute_resilience(tx, user, a, b).await?;
            }
        }
        Ok(())
    }
}
