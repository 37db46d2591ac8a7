//! The `sleep_nights` read model: every source's sessions merged into nights
//! (`wearhouse_domain::sleep_merge`: gap rule, clipped stages, naps, one main sleep per local
//! wake date), with heart rate, HRV, respiratory rate and SpO2 averaged over each main sleep.
//! Sessions, deletions, vitals samples and priority changes recompute the wake dates they touch.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use futures::TryStreamExt;
use uuid::Uuid;
use wearhouse_domain::records::{DataEvent, RecordKind};
use wearhouse_domain::scores::waso;
use wearhouse_domain::sleep_merge;

use crate::nights::{add_days, load_sessions, midnight, NIGHT_DEPENDENCIES, NIGHT_INPUTS};
use crate::{decode, LogEntry, Projection, ProjectionError};

pub struct SleepNights;

pub const HEART_RATE: i16 = 1;
pub const HRV_SDNN: i16 = 3;
pub use crate::nights::HRV_RMSSD;
pub const SPO2: i16 = 20;
pub const RESPIRATORY_RATE: i16 = 24;
const VITALS: [i16; 5] = [HEART_RATE, HRV_SDNN, HRV_RMSSD, SPO2, RESPIRATORY_RATE];

/// Means of the points inside each window `[start, end)`, fed points in time order. Windows
/// may come in any order and may overlap.
struct WindowMeans<'a> {
    windows: &'a [(DateTime<Utc>, DateTime<Utc>)],
    /// Window indexes by start.
    order: Vec<usize>,
    next: usize,
    /// Windows that started at or before the last point and may still contain the next.
    open: Vec<usize>,
    sums: Vec<(f64, u32)>,
}

impl<'a> WindowMeans<'a> {
    fn new(windows: &'a [(DateTime<Utc>, DateTime<Utc>)]) -> Self {
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&i| windows[i].0);
        WindowMeans {
            windows,
            order,
            next: 0,
            open: Vec::new(),
            sums: vec![(0.0, 0); windows.len()],
        }
    }

    fn push(&mut self, time: DateTime<Utc>, value: f64) {
        while self.next < self.order.len() && self.windows[self.order[self.next]].0 <= time {
            self.open.push(self.order[self.next]);
            self.next += 1;
        }
        let windows = self.windows;
        self.open.retain(|&i| windows[i].1 > time);
        for &i in &self.open {
            self.sums[i].0 += value;
            self.sums[i].1 += 1;
        }
    }

    /// (window index, mean) of every window that holds a point.
    fn means(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.sums
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(i, (sum, n))| (i, sum / f64::from(*n)))
    }
}

/// Wake dates recomputed together.
const CHUNK_DAYS: i64 = 62;

/// Recomputes the nights of `user` whose local wake date is in `from..=to`.
pub async fn recompute(
    tx: &impl GenericClient,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    for (a, b) in crate::date_chunks(from, to, CHUNK_DAYS) {
        recompute_chunk(tx, user, a, b).await?;
    }
    Ok(())
}

async fn recompute_chunk(
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
    // Vitals of every main sleep: one ordered range scan per type, swept against the nights
    // in Rust. (Probing the hypertable once per night and type costs seconds on fresh chunks.)
    let mains: Vec<&sleep_merge::Night> = nights.iter().filter(|n| n.is_main).collect();
    let mut avg: BTreeMap<(i32, i16), f64> = BTreeMap::new();
    if let (Some(lo), Some(hi)) = (
        mains.iter().map(|n| n.start).min(),
        mains.iter().map(|n| n.end).max(),
    ) {
        let scan = tx
            .prepare_cached(
                "SELECT time, value FROM samples WHERE user_id = $1 AND series_type = $2 \
                 AND time >= $3 AND time < $4 ORDER BY time",
            )
            .await?;
        let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> =
            mains.iter().map(|n| (n.start, n.end)).collect();
        for series in VITALS {
            // Streamed: a user's whole heart-rate history can be millions of rows.
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&user, &series, &lo, &hi];
            let rows = tx.query_raw(&scan, params).await?;
            futures::pin_mut!(rows);
            let mut means = WindowMeans::new(&windows);
            while let Some(r) = rows.try_next().await? {
                means.push(r.get(0), r.get(1));
            }
            for (i, mean) in means.means() {
                avg.insert((i as i32, series), mean);
            }
        }
    }
    // One statement for the window's nights (a row at a time costs a round trip each).
    let mut c = NightColumns::default();
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
        c.wake.push(n.wake_date());
        c.start.push(n.start);
        c.end.push(n.end);
        c.zone.push(n.zone_offset);
        c.source.push(n.source);
        c.main.push(n.is_main);
        c.nap.push(n.is_nap);
        c.minutes[0].push(n.awake_minutes);
        c.minutes[1].push(n.light_minutes);
        c.minutes[2].push(n.deep_minutes);
        c.minutes[3].push(n.rem_minutes);
        c.minutes[4].push(n.asleep_minutes);
        c.minutes[5].push(n.in_bed_minutes);
        c.interruptions.push(waso(&timeline).1 as i32);
        // Arrays of arrays cannot be unnested row by row: each night's ids go as an array
        // literal.
        let ids: Vec<String> = n.session_ids.iter().map(Uuid::to_string).collect();
        c.sessions.push(format!("{{{}}}", ids.join(",")));
        for (k, series) in [HEART_RATE, HRV_SDNN, HRV_RMSSD, RESPIRATORY_RATE, SPO2]
            .into_iter()
            .enumerate()
        {
            c.vitals[k].push(v(series));
        }
    }
    let m = &c.minutes;
    let a = &c.vitals;
    tx.execute(
        "INSERT INTO sleep_nights (user_id, wake_date, start_time, end_time, zone_offset, data_source_id, is_main, is_nap, \
           awake_minutes, light_minutes, deep_minutes, rem_minutes, asleep_minutes, in_bed_minutes, interruptions, \
           session_ids, avg_heart_rate, avg_hrv_sdnn, avg_hrv_rmssd, avg_respiratory_rate, avg_spo2) \
         SELECT $1, w, s, e, z, src, main, nap, aw, li, de, re, asl, ib, intr, ids::uuid[], hr, sdnn, rmssd, rr, spo2 \
         FROM unnest($2::date[], $3::timestamptz[], $4::timestamptz[], $5::int2[], $6::uuid[], $7::bool[], $8::bool[], \
           $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], $14::float8[], $15::int4[], \
           $16::text[], $17::float8[], $18::float8[], $19::float8[], $20::float8[], $21::float8[]) \
           AS t(w, s, e, z, src, main, nap, aw, li, de, re, asl, ib, intr, ids, hr, sdnn, rmssd, rr, spo2) \
         ON CONFLICT (user_id, wake_date, start_time) DO NOTHING",
        &[
            &user,
            &c.wake,
            &c.start,
            &c.end,
            &c.zone,
            &c.source,
            &c.main,
            &c.nap,
            &m[0],
            &m[1],
            &m[2],
            &m[3],
            &m[4],
            &m[5],
            &c.interruptions,
            &c.sessions,
            &a[0],
            &a[1],
            &a[2],
            &a[3],
            &a[4],
        ],
    )
    .await?;
    Ok(())
}

#[derive(Default)]
struct NightColumns {
    wake: Vec<NaiveDate>,
    start: Vec<DateTime<Utc>>,
    end: Vec<DateTime<Utc>>,
    zone: Vec<i16>,
    source: Vec<Uuid>,
    main: Vec<bool>,
    nap: Vec<bool>,
    /// Awake, light, deep, REM, asleep, in bed.
    minutes: [Vec<f64>; 6],
    interruptions: Vec<i32>,
    /// Array literals of the merged sessions' ids.
    sessions: Vec<String>,
    /// Heart rate, HRV SDNN, HRV RMSSD, respiratory rate, SpO2 over the main sleep.
    vitals: [Vec<Option<f64>>; 5],
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
        10_000
    }

    fn user_tables(&self) -> &'static [&'static str] {
        &["sleep_nights"]
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
                DataEvent::SamplesDeleted {
                    user_id,
                    series_types,
                    times,
                    ..
                } if series_types.iter().any(|t| VITALS.contains(t)) => {
                    for t in times {
                        add_days(
                            dates.entry(user_id).or_default(),
                            t.date_naive() - Duration::days(1),
                            t.date_naive() + Duration::days(1),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(minute * 60, 0).expect("time")
    }

    #[test]
    fn window_means_average_only_the_points_inside_each_window() {
        // Out of order and overlapping windows, an empty one, points before, between and after.
        let windows = [
            (at(20), at(30)),
            (at(0), at(10)),
            (at(5), at(25)),
            (at(40), at(50)),
        ];
        let points = [
            (0, 1.0),
            (5, 3.0),
            (9, 5.0),
            (10, 100.0),
            (20, 7.0),
            (29, 9.0),
            (30, 50.0),
            (60, 1.0),
        ]
        .map(|(m, v)| (at(m), v));
        let mut wm = WindowMeans::new(&windows);
        for (t, v) in points {
            wm.push(t, v);
        }
        let means: BTreeMap<usize, f64> = wm.means().collect();
        assert_eq!(means.get(&1), Some(&3.0)); // 1, 3, 5 (10 is the end, excluded)
        assert_eq!(means.get(&2), Some(&((3.0 + 5.0 + 100.0 + 7.0) / 4.0)));
        assert_eq!(means.get(&0), Some(&8.0)); // 7, 9
        assert_eq!(means.get(&3), None);
    }
}
