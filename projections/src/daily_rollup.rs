//! The `daily_rollup` read model: per user, local date and metric, the value merged across
//! sources by `wearhouse_domain::daily` (per time segment, by priority, daily totals first).
//! The daily summaries read it with one index range scan, whatever the number of samples.
//!
//! A batch of samples recomputes the local dates it touches from the `samples` read model
//! (hence the dependency on it); a priority change recomputes the dates where two of a user's
//! sources meet (`priority_scope`), a birth date (heart-rate zones) that user's whole history.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use futures::TryStreamExt;
use uuid::Uuid;
use wearhouse_domain::daily::{
    best_source_stats, intensity_minutes, local_minute, max_heart_rate, merge_additive,
    minute_date, Piece,
};
use wearhouse_domain::records::DataEvent;

use crate::ranks::{source_ranks, UNRANKED};
use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct DailyRollup;

pub const STEPS: i16 = 80;
pub const ACTIVE_ENERGY: i16 = 81;
pub const BASAL_ENERGY: i16 = 82;
pub const EXERCISE_TIME: i16 = 84;
pub const FLIGHTS: i16 = 86;
/// A provider's own active minutes (Oura, Garmin): the contract's `active_minutes` source.
pub const ACTIVE_TIME: i16 = 88;
pub const HEART_RATE: i16 = 1;
pub const RESTING_HR: i16 = 2;
pub const HRV_SDNN: i16 = 3;
pub const HRV_RMSSD: i16 = 7;
pub const SPO2: i16 = 20;
pub const RESPIRATORY_RATE: i16 = 24;
/// Derived metrics (negative so they never collide with series ids).
pub const ACTIVE_MINUTES: i16 = -1;
pub const TRACKED_MINUTES: i16 = -2;
pub const LIGHT_MINUTES: i16 = -3;
pub const MODERATE_MINUTES: i16 = -4;
pub const VIGOROUS_MINUTES: i16 = -5;

/// Minutes with at least this many merged steps are active (the contract's rule).
const ACTIVE_STEPS_PER_MINUTE: f64 = 30.0;
/// Widest zone offset: samples this far outside a UTC day can still fall on that local date.
const OFFSET_MARGIN_H: i64 = 15;
/// Dates recomputed per query, to bound memory for long histories.
const CHUNK_DAYS: i64 = 62;

/// Walking and running distance: the series every provider's daily distance maps to.
pub const DISTANCE_WALKING_RUNNING: i16 = 100;

/// The distance series behind a day's `distance_meters`. Only walking and running: cycling,
/// swimming and other sports' distances are their workouts' own (a 28 km ride is not 28 km of
/// the day's movement), as in Apple's and the providers' own daily figures.
pub fn distance_ids() -> Vec<i16> {
    vec![DISTANCE_WALKING_RUNNING]
}

fn additive_ids() -> Vec<i16> {
    let mut v = vec![
        STEPS,
        ACTIVE_ENERGY,
        BASAL_ENERGY,
        EXERCISE_TIME,
        ACTIVE_TIME,
        FLIGHTS,
    ];
    v.extend(distance_ids());
    v
}

const AVERAGED: [i16; 6] = [
    HEART_RATE,
    RESTING_HR,
    HRV_SDNN,
    HRV_RMSSD,
    SPO2,
    RESPIRATORY_RATE,
];

fn relevant(series_type: i16) -> bool {
    AVERAGED.contains(&series_type) || additive_ids().contains(&series_type)
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

struct Row {
    date: NaiveDate,
    metric: i16,
    value: f64,
    min: Option<f64>,
    max: Option<f64>,
    count: i32,
    source: Option<Uuid>,
}

/// Recomputes the user's rollup for local dates `from..=to`.
pub async fn recompute(
    tx: &impl GenericClient,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    let ranks = source_ranks(tx, user).await?;
    let birth: Option<NaiveDate> = tx
        .query_opt(
            "SELECT birth_date FROM personal_records WHERE user_id = $1",
            &[&user],
        )
        .await?
        .and_then(|r| r.get(0));
    for (start, end) in crate::date_chunks(from, to, CHUNK_DAYS) {
        recompute_chunk(tx, user, &ranks, birth, start, end).await?;
    }
    Ok(())
}

async fn recompute_chunk(
    tx: &impl GenericClient,
    user: Uuid,
    ranks: &HashMap<Uuid, u32>,
    birth: Option<NaiveDate>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    let lo = midnight(from) - Duration::hours(OFFSET_MARGIN_H);
    let hi = midnight(to + Duration::days(1)) + Duration::hours(OFFSET_MARGIN_H);
    let mut ids = additive_ids();
    ids.extend(AVERAGED);
    let scan = tx
        .prepare_cached(
            "SELECT series_type, data_source_id, time, end_time, value, zone_offset, is_daily_total \
             FROM samples WHERE user_id = $1 AND series_type = ANY($2) AND time >= $3 AND time < $4",
        )
        .await?;
    // Streamed into pieces: rows held whole would take several times the pieces' memory.
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&user, &ids, &lo, &hi];
    let rows = tx.query_raw(&scan, params).await?;
    futures::pin_mut!(rows);
    let mut by_series: HashMap<i16, Vec<Piece>> = HashMap::new();
    while let Some(r) = rows.try_next().await? {
        let source: Uuid = r.get(1);
        let start: DateTime<Utc> = r.get(2);
        let end: Option<DateTime<Utc>> = r.get(3);
        let offset: Option<i16> = r.get(5);
        let daily_total: Option<bool> = r.get(6);
        by_series.entry(r.get(0)).or_default().push(Piece {
            source,
            rank: ranks.get(&source).copied().unwrap_or(UNRANKED),
            start: start.timestamp_micros(),
            end: end
                .unwrap_or(start)
                .timestamp_micros()
                .max(start.timestamp_micros()),
            value: r.get(4),
            offset_min: offset.unwrap_or(0),
            daily_total: daily_total.unwrap_or(false),
        });
    }
    let in_range = |d: &NaiveDate| (from..=to).contains(d);
    let mut out: Vec<Row> = Vec::new();
    let mut step_minutes: BTreeMap<i64, f64> = BTreeMap::new();
    // Provider active minutes per date: `active_time` (the contract's source), else Apple's
    // `exercise_time`.
    let mut exercise: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    let mut active_time: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for id in additive_ids() {
        let Some(pieces) = by_series.get(&id) else {
            continue;
        };
        let merged = merge_additive(pieces, id == STEPS);
        if id == STEPS {
            step_minutes = merged.minutes;
        }
        for (date, d) in merged.days.iter().filter(|(d, _)| in_range(d)) {
            if id == EXERCISE_TIME {
                exercise.insert(*date, d.value);
            }
            if id == ACTIVE_TIME {
                active_time.insert(*date, d.value);
            }
            out.push(Row {
                date: *date,
                metric: id,
                value: d.value,
                min: None,
                max: None,
                count: 1,
                source: Some(d.source),
            });
        }
    }
    for id in AVERAGED {
        let Some(pieces) = by_series.get(&id) else {
            continue;
        };
        for (date, s) in best_source_stats(pieces)
            .iter()
            .filter(|(d, _)| in_range(d))
        {
            out.push(Row {
                date: *date,
                metric: id,
                value: s.mean,
                min: Some(s.min),
                max: Some(s.max),
                count: s.count as i32,
                source: Some(s.source),
            });
        }
    }
    // Minutes: heart rate of each day's best heart-rate source, merged steps.
    let hr_best: HashMap<NaiveDate, Uuid> = by_series
        .get(&HEART_RATE)
        .map(|p| {
            best_source_stats(p)
                .into_iter()
                .map(|(d, s)| (d, s.source))
                .collect()
        })
        .unwrap_or_default();
    let mut hr_minutes: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
    for p in by_series.get(&HEART_RATE).into_iter().flatten() {
        let m = local_minute(p.start, p.offset_min);
        if hr_best.get(&minute_date(m)) == Some(&p.source) {
            let e = hr_minutes.entry(m).or_insert((0.0, 0));
            e.0 += p.value;
            e.1 += 1;
        }
    }
    exercise.extend(active_time);
    let mut tracked: BTreeMap<NaiveDate, HashSet<i64>> = BTreeMap::new();
    let mut active: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for (m, v) in &step_minutes {
        if *v > 0.0 {
            tracked.entry(minute_date(*m)).or_default().insert(*m);
        }
        if *v >= ACTIVE_STEPS_PER_MINUTE {
            *active.entry(minute_date(*m)).or_default() += 1;
        }
    }
    let mut per_day_hr: BTreeMap<NaiveDate, Vec<f64>> = BTreeMap::new();
    for (m, (sum, n)) in &hr_minutes {
        let d = minute_date(*m);
        tracked.entry(d).or_default().insert(*m);
        per_day_hr.entry(d).or_default().push(sum / *n as f64);
    }
    let minute_row = |date: NaiveDate, metric: i16, value: f64| Row {
        date,
        metric,
        value,
        min: None,
        max: None,
        count: 1,
        source: None,
    };
    for (date, minutes) in tracked.iter().filter(|(d, _)| in_range(d)) {
        out.push(minute_row(*date, TRACKED_MINUTES, minutes.len() as f64));
        // The provider's own active time wins over the steps rule.
        let act = exercise
            .get(date)
            .copied()
            .unwrap_or(active.get(date).copied().unwrap_or(0) as f64);
        out.push(minute_row(*date, ACTIVE_MINUTES, act));
    }
    // A provider's exercise time stands on its own, also on a date without tracked minutes.
    for (date, minutes) in exercise.iter().filter(|(d, _)| in_range(d)) {
        if !tracked.contains_key(date) {
            out.push(minute_row(*date, ACTIVE_MINUTES, *minutes));
        }
    }
    for (date, means) in per_day_hr.iter().filter(|(d, _)| in_range(d)) {
        let age = birth.map(|b| {
            let mut a = date.year() - b.year();
            if (date.month(), date.day()) < (b.month(), b.day()) {
                a -= 1;
            }
            a
        });
        let z = intensity_minutes(means.iter().copied(), max_heart_rate(age));
        out.push(minute_row(*date, LIGHT_MINUTES, z.light as f64));
        out.push(minute_row(*date, MODERATE_MINUTES, z.moderate as f64));
        out.push(minute_row(*date, VIGOROUS_MINUTES, z.vigorous as f64));
    }

    tx.execute(
        "DELETE FROM daily_rollup WHERE user_id = $1 AND date >= $2 AND date <= $3",
        &[&user, &from, &to],
    )
    .await?;
    if out.is_empty() {
        return Ok(());
    }
    let dates: Vec<NaiveDate> = out.iter().map(|r| r.date).collect();
    let metrics: Vec<i16> = out.iter().map(|r| r.metric).collect();
    let values: Vec<f64> = out.iter().map(|r| r.value).collect();
    let mins: Vec<Option<f64>> = out.iter().map(|r| r.min).collect();
    let maxs: Vec<Option<f64>> = out.iter().map(|r| r.max).collect();
    let counts: Vec<i32> = out.iter().map(|r| r.count).collect();
    let sources: Vec<Option<Uuid>> = out.iter().map(|r| r.source).collect();
    tx.execute(
        "INSERT INTO daily_rollup (user_id, date, metric, value, min, max, count, data_source_id) \
         SELECT $1, * FROM unnest($2::date[], $3::int2[], $4::float8[], $5::float8[], $6::float8[], $7::int4[], $8::uuid[])",
        &[&user, &dates, &metrics, &values, &mins, &maxs, &counts, &sources],
    )
    .await?;
    Ok(())
}

/// Recomputes `user`'s dates `from..=to` (a rebuild of one user when the range is known).
pub async fn recompute_user_between(
    tx: &impl GenericClient,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    recompute(tx, user, from, to).await
}

/// Recomputes every date of `user` that has samples of the rolled-up series.
pub async fn recompute_user(
    tx: &impl GenericClient,
    user: Uuid,
) -> Result<(), tokio_postgres::Error> {
    let row = tx
        .query_one(
            "SELECT min(start_time), max(end_time) FROM sample_batches WHERE user_id = $1",
            &[&user],
        )
        .await?;
    let (lo, hi): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (row.get(0), row.get(1));
    let existing = tx
        .query_one(
            "SELECT min(date), max(date) FROM daily_rollup WHERE user_id = $1",
            &[&user],
        )
        .await?;
    let (elo, ehi): (Option<NaiveDate>, Option<NaiveDate>) = (existing.get(0), existing.get(1));
    let lo = [lo.map(|t| t.date_naive() - Duration::days(1)), elo]
        .into_iter()
        .flatten()
        .min();
    let hi = [hi.map(|t| t.date_naive() + Duration::days(1)), ehi]
        .into_iter()
        .flatten()
        .max();
    if let (Some(lo), Some(hi)) = (lo, hi) {
        recompute(tx, user, lo, hi).await?;
    }
    Ok(())
}

#[async_trait]
impl Projection for DailyRollup {
    fn name(&self) -> &'static str {
        "daily_rollup"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "SamplesRecorded",
            "SamplesDeleted",
            "CharacteristicsRecorded",
            "ProviderPrioritiesSet",
            "DeviceTypePrioritiesSet",
            crate::runner::USER_DELETED,
        ]
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["samples", "data_sources", "personal", "source_priorities"]
    }

    fn batch_size(&self) -> i64 {
        10_000
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["daily_rollup"]
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        tx.batch_execute("TRUNCATE daily_rollup").await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        let mut dates: BTreeMap<Uuid, BTreeSet<NaiveDate>> = BTreeMap::new();
        let mut whole: BTreeSet<Uuid> = BTreeSet::new();
        let mut priorities_seen = false;
        for entry in entries {
            match entry.event_type.as_str() {
                "SamplesRecorded" => {
                    if let DataEvent::SamplesRecorded { user_id, batch } = decode(entry)? {
                        if !relevant(batch.series_type) {
                            continue;
                        }
                        let set = dates.entry(user_id).or_default();
                        let mut d = batch.start.date_naive() - Duration::days(1);
                        let last = batch.end.date_naive() + Duration::days(1);
                        while d <= last {
                            set.insert(d);
                            d += Duration::days(1);
                        }
                    }
                }
                // Samples a provider deleted: the days they fell on are summed again.
                "SamplesDeleted" => {
                    if let DataEvent::SamplesDeleted {
                        user_id,
                        series_types,
                        times,
                        ..
                    } = decode(entry)?
                    {
                        if !series_types.iter().any(|t| relevant(*t)) {
                            continue;
                        }
                        let set = dates.entry(user_id).or_default();
                        for t in times {
                            let mut d = t.date_naive() - Duration::days(1);
                            while d <= t.date_naive() + Duration::days(1) {
                                set.insert(d);
                                d += Duration::days(1);
                            }
                        }
                    }
                }
                "CharacteristicsRecorded" => {
                    if let DataEvent::CharacteristicsRecorded { user_id, .. } = decode(entry)? {
                        whole.insert(user_id);
                    }
                }
                // A priority change: only dates where two sources meet can move.
                _ if !priorities_seen => {
                    priorities_seen = true;
                    let mut ids = additive_ids();
                    ids.extend(AVERAGED);
                    for (user, set) in crate::priority_scope::sample_dates(tx, &ids).await? {
                        dates.entry(user).or_default().extend(set);
                    }
                }
                _ => {}
            }
        }
        for user in &whole {
            dates.remove(user);
            recompute_user(tx, *user).await?;
        }
        for (user, set) in dates {
            // Contiguous runs of dates, each recomputed with one query per chunk.
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
