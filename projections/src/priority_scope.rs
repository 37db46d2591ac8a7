//! What a change of source priorities can change. Ranks only decide between sources, so a
//! user's figures move only where more than one of their sources has data: the local dates
//! that two sources' sample batches both reach, and the nights that merge sessions of two
//! sources. The read models recompute those instead of every user's whole history.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;
use wearhouse_domain::sleep_merge::GAP_MINUTES;

/// The local dates at least two distinct sources reach, from (source, first date, last date)
/// ranges (inclusive, overlapping or not).
pub fn shared_dates(mut ranges: Vec<(Uuid, NaiveDate, NaiveDate)>) -> BTreeSet<NaiveDate> {
    // Each source's ranges merged into disjoint runs, so a sweep counts sources, not batches.
    ranges.sort_by_key(|r| (r.0, r.1, r.2));
    let mut runs: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    let mut current: Option<(Uuid, NaiveDate, NaiveDate)> = None;
    for (source, lo, hi) in ranges {
        match current.as_mut() {
            Some((s, _, h)) if *s == source && lo <= *h + Duration::days(1) => *h = (*h).max(hi),
            _ => {
                if let Some((_, l, h)) = current.replace((source, lo, hi)) {
                    runs.push((l, h));
                }
            }
        }
    }
    runs.extend(current.map(|(_, l, h)| (l, h)));
    // +1 where a run starts, −1 the day after it ends.
    let mut edges: BTreeMap<NaiveDate, i32> = BTreeMap::new();
    for (lo, hi) in runs {
        *edges.entry(lo).or_default() += 1;
        *edges.entry(hi + Duration::days(1)).or_default() -= 1;
    }
    let mut out = BTreeSet::new();
    let mut open = 0;
    let mut prev: Option<NaiveDate> = None;
    for (date, delta) in edges {
        if let Some(mut d) = prev.filter(|_| open > 1) {
            while d < date {
                out.insert(d);
                d += Duration::days(1);
            }
        }
        open += delta;
        prev = Some(date);
    }
    out
}

/// Per user, the dates a priority change can move in the daily rollup of `series`: dates that
/// sample batches of two sources reach (a day of margin each side covers any zone offset).
pub async fn sample_dates(
    client: &impl GenericClient,
    series: &[i16],
) -> Result<BTreeMap<Uuid, BTreeSet<NaiveDate>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT user_id, data_source_id, min(start_time), max(end_time) FROM sample_batches \
             WHERE series_type = ANY($1) AND user_id IN ( \
               SELECT user_id FROM sample_batches WHERE series_type = ANY($1) \
               GROUP BY user_id HAVING count(DISTINCT data_source_id) > 1) \
             GROUP BY user_id, data_source_id, start_time::date",
            &[&series],
        )
        .await?;
    let mut ranges: BTreeMap<Uuid, Vec<(Uuid, NaiveDate, NaiveDate)>> = BTreeMap::new();
    for r in rows {
        let (lo, hi): (DateTime<Utc>, DateTime<Utc>) = (r.get(2), r.get(3));
        ranges.entry(r.get(0)).or_default().push((
            r.get(1),
            lo.date_naive() - Duration::days(1),
            hi.date_naive() + Duration::days(1),
        ));
    }
    Ok(ranges
        .into_iter()
        .map(|(user, r)| (user, shared_dates(r)))
        .filter(|(_, d)| !d.is_empty())
        .collect())
}

/// A night's (start, end).
pub type Window = (DateTime<Utc>, DateTime<Utc>);
/// A session's (source, start, end).
pub type SourceSession = (Uuid, DateTime<Utc>, DateTime<Utc>);

/// Windows (start, end) of session clusters, by the nights' gap rule, holding sessions of more
/// than one source; `sessions` are (source, start, end) of one user.
pub fn shared_nights(mut sessions: Vec<SourceSession>) -> Vec<Window> {
    sessions.sort_by_key(|s| (s.1, s.2, s.0));
    let gap = Duration::minutes(GAP_MINUTES);
    let mut out = Vec::new();
    let mut cluster: Option<(DateTime<Utc>, DateTime<Utc>, BTreeSet<Uuid>)> = None;
    for (source, start, end) in sessions {
        match cluster.as_mut() {
            Some((_, e, sources)) if start - *e <= gap => {
                *e = (*e).max(end);
                sources.insert(source);
            }
            _ => {
                if let Some((s, e, sources)) = cluster.take() {
                    if sources.len() > 1 {
                        out.push((s, e));
                    }
                }
                cluster = Some((start, end, BTreeSet::from([source])));
            }
        }
    }
    if let Some((s, e, sources)) = cluster {
        if sources.len() > 1 {
            out.push((s, e));
        }
    }
    out
}

/// Per user, the windows of nights that merge sessions of several sources.
pub async fn sleep_windows(
    client: &impl GenericClient,
) -> Result<BTreeMap<Uuid, Vec<Window>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT user_id, data_source_id, start_time, end_time FROM sleep_sessions \
             WHERE NOT deleted AND user_id IN ( \
               SELECT user_id FROM sleep_sessions WHERE NOT deleted \
               GROUP BY user_id HAVING count(DISTINCT data_source_id) > 1)",
            &[],
        )
        .await?;
    let mut sessions: BTreeMap<Uuid, Vec<SourceSession>> = BTreeMap::new();
    for r in rows {
        sessions
            .entry(r.get(0))
            .or_default()
            .push((r.get(1), r.get(2), r.get(3)));
    }
    Ok(sessions
        .into_iter()
        .map(|(user, s)| (user, shared_nights(s)))
        .filter(|(_, w)| !w.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, n).unwrap()
    }
    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn only_dates_two_sources_reach() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        // a: 1–10 in two batches; b: 8–12; c: 20–21 alone; a again on 21.
        let got = shared_dates(vec![
            (a, d(1), d(5)),
            (b, d(8), d(12)),
            (a, d(5), d(10)),
            (c, d(20), d(21)),
            (a, d(21), d(22)),
        ]);
        let want: BTreeSet<NaiveDate> = [8, 9, 10, 21].into_iter().map(d).collect();
        assert_eq!(got, want);
        // One source alone, however many batches: nothing.
        assert!(shared_dates(vec![(a, d(1), d(5)), (a, d(3), d(9))]).is_empty());
        // A long range of one source and a later short one of another inside it.
        let got = shared_dates(vec![(a, d(1), d(30)), (c, d(2), d(3)), (b, d(10), d(11))]);
        let want: BTreeSet<NaiveDate> = [2, 3, 10, 11].into_iter().map(d).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn only_nights_that_merge_two_sources() {
        let (watch, ring) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let got = shared_nights(vec![
            // Night 1: watch alone.
            (watch, t("2024-03-01T23:00:00Z"), t("2024-03-02T07:00:00Z")),
            // Night 2: both, the ring's session 100 minutes after the watch's ends.
            (watch, t("2024-03-02T23:00:00Z"), t("2024-03-03T03:00:00Z")),
            (ring, t("2024-03-03T04:40:00Z"), t("2024-03-03T07:00:00Z")),
            // A nap of the ring alone.
            (ring, t("2024-03-03T14:00:00Z"), t("2024-03-03T15:00:00Z")),
        ]);
        assert_eq!(
            got,
            [(t("2024-03-02T23:00:00Z"), t("2024-03-03T07:00:00Z"))]
        );
    }
}
