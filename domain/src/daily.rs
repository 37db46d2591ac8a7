//! Daily figures on the user's local date, merged across sources per time segment
//! (docs/merging.md has the rule with a worked example).
//!
//! * A sample belongs to the local day of `time + zone_offset`; a sample that spans local
//!   midnight is split pro rata.
//! * Additive series: wherever several sources recorded the same stretch of time, only the
//!   best-ranked source counts there (a sample's value spreads evenly over its interval);
//!   where one source recorded alone, it counts.
//! * A source's daily total (`is_daily_total`) replaces its own intraday samples of that day.
//!   A total cannot be placed in time, so it is used when its source ranks at least as well as
//!   every source with intraday data that day (a tie goes to the total: it is the writer's own
//!   reconciled figure), and ignored otherwise.
//! * Averaged series (heart rate, HRV, SpO2 ...): the best-ranked source with data that day.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Timelike};
use uuid::Uuid;

const MINUTE_US: i64 = 60_000_000;
const DAY_US: i64 = 86_400_000_000;

/// One sample as the merge sees it. Times are UTC microseconds; `rank` is the source's
/// priority (lower is better; ties broken by source id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    pub source: Uuid,
    pub rank: u32,
    pub start: i64,
    pub end: i64,
    pub value: f64,
    pub offset_min: i16,
    pub daily_total: bool,
}

/// A day's merged value and the best-ranked source that contributed to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayValue {
    pub value: f64,
    pub source: Uuid,
    pub rank: u32,
}

fn local_day(t: i64, offset_min: i16) -> i64 {
    (t + offset_min as i64 * MINUTE_US).div_euclid(DAY_US)
}

/// Days since the Unix epoch as a date.
pub fn date_of(day: i64) -> NaiveDate {
    DateTime::from_timestamp(day * 86_400, 0)
        .expect("day in range")
        .date_naive()
}

/// The local date of an instant with its zone offset.
pub fn local_date(t: i64, offset_min: i16) -> NaiveDate {
    date_of(local_day(t, offset_min))
}

/// Merged totals per local date of one additive series, plus, when `minutes` is set, the
/// merged value per local minute (keyed by local minutes since the epoch).
pub struct Merged {
    pub days: BTreeMap<NaiveDate, DayValue>,
    pub minutes: BTreeMap<i64, f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    End,
    Start,
    Point,
}

/// Merges one additive series of one user. See the module doc for the rule.
pub fn merge_additive(pieces: &[Piece], minutes: bool) -> Merged {
    // Daily totals per (source, local day); those sources' intraday pieces of that day drop out.
    let mut totals: HashMap<(Uuid, i64), (f64, u32)> = HashMap::new();
    for p in pieces.iter().filter(|p| p.daily_total) {
        let e = totals
            .entry((p.source, local_day(p.start, p.offset_min)))
            .or_insert((0.0, p.rank));
        e.0 += p.value;
    }
    let intraday: Vec<&Piece> = pieces
        .iter()
        .filter(|p| {
            !p.daily_total && !totals.contains_key(&(p.source, local_day(p.start, p.offset_min)))
        })
        .collect();

    // Sweep over every boundary: starts, ends, and the local midnights (and, for minute
    // buckets, local minutes) inside each piece, so each elementary segment lies in one bucket.
    let mut events: Vec<(i64, Kind, usize)> = Vec::with_capacity(intraday.len() * 2);
    let mut cuts: Vec<i64> = Vec::new();
    for (i, p) in intraday.iter().enumerate() {
        if p.end <= p.start {
            events.push((p.start, Kind::Point, i));
            continue;
        }
        events.push((p.start, Kind::Start, i));
        events.push((p.end, Kind::End, i));
        let step = if minutes { MINUTE_US } else { DAY_US };
        let off = p.offset_min as i64 * MINUTE_US;
        let mut c = (p.start + off).div_euclid(step) * step + step - off;
        while c < p.end {
            cuts.push(c);
            c += step;
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    events.sort_by_key(|&(t, k, i)| (t, k, i));

    let mut day_values: BTreeMap<i64, (f64, u32, Uuid)> = BTreeMap::new();
    let mut minute_values: BTreeMap<i64, f64> = BTreeMap::new();
    let mut credit = |p: &Piece, t: i64, v: f64| {
        let e = day_values
            .entry(local_day(t, p.offset_min))
            .or_insert((0.0, p.rank, p.source));
        e.0 += v;
        if (p.rank, p.source) < (e.1, e.2) {
            e.1 = p.rank;
            e.2 = p.source;
        }
        if minutes {
            *minute_values
                .entry((t + p.offset_min as i64 * MINUTE_US).div_euclid(MINUTE_US))
                .or_insert(0.0) += v;
        }
    };
    let mut active: Vec<usize> = Vec::new();
    let mut last: Option<i64> = None;
    let mut ci = 0;
    let settle =
        |active: &Vec<usize>, from: i64, to: i64, credit: &mut dyn FnMut(&Piece, i64, f64)| {
            if to <= from || active.is_empty() {
                return;
            }
            let best = active
                .iter()
                .map(|&i| (intraday[i].rank, intraday[i].source))
                .min()
                .expect("non-empty");
            for &i in active {
                let p = intraday[i];
                if (p.rank, p.source) == best {
                    let share = p.value * (to - from) as f64 / (p.end - p.start) as f64;
                    credit(p, from, share);
                }
            }
        };
    for (t, kind, i) in events {
        if let Some(from) = last {
            // Settle [from, t) in pieces split at the cuts inside it.
            let mut a = from;
            while ci < cuts.len() && cuts[ci] <= a {
                ci += 1;
            }
            while ci < cuts.len() && cuts[ci] < t {
                settle(&active, a, cuts[ci], &mut credit);
                a = cuts[ci];
                ci += 1;
            }
            settle(&active, a, t, &mut credit);
        }
        last = Some(t);
        match kind {
            Kind::End => active.retain(|&x| x != i),
            Kind::Start => active.push(i),
            Kind::Point => {
                let p = intraday[i];
                let beaten = active
                    .iter()
                    .any(|&a| (intraday[a].rank, intraday[a].source) < (p.rank, p.source));
                if !beaten {
                    credit(p, p.start, p.value);
                }
            }
        }
    }

    let mut days: BTreeMap<NaiveDate, DayValue> = BTreeMap::new();
    for (day, (value, rank, source)) in &day_values {
        days.insert(
            date_of(*day),
            DayValue {
                value: *value,
                source: *source,
                rank: *rank,
            },
        );
    }
    // Totals in a fixed order, so ties between totals do not depend on hashing.
    let mut totals: Vec<((Uuid, i64), (f64, u32))> = totals.into_iter().collect();
    totals.sort_by_key(|((source, day), (_, rank))| (*day, *rank, *source));
    let mut from_total: std::collections::HashSet<NaiveDate> = Default::default();
    for ((source, day), (value, rank)) in totals {
        let date = date_of(day);
        let better = match days.get(&date) {
            // Against another total: the better-ranked one (sorted, so the first seen).
            Some(_) if from_total.contains(&date) => false,
            // Against merged intraday data: a total of an equally ranked source wins, being
            // that writer's own reconciled figure for the day (Apple's activity rings against
            // the watch's samples).
            Some(d) => rank <= d.rank || d.value == 0.0,
            None => true,
        };
        if better {
            from_total.insert(date);
            days.insert(
                date,
                DayValue {
                    value,
                    source,
                    rank,
                },
            );
        }
    }
    Merged {
        days,
        minutes: minute_values,
    }
}

/// Mean, min, max and count of the best-ranked source per local day of an averaged series,
/// with that source; plus, when `minutes` is set, the per-local-minute mean of that source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayStats {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub count: u32,
    pub source: Uuid,
}

pub fn best_source_stats(pieces: &[Piece]) -> BTreeMap<NaiveDate, DayStats> {
    let mut best: HashMap<i64, (u32, Uuid)> = HashMap::new();
    for p in pieces {
        let d = local_day(p.start, p.offset_min);
        let e = best.entry(d).or_insert((p.rank, p.source));
        if (p.rank, p.source) < *e {
            *e = (p.rank, p.source);
        }
    }
    let mut acc: BTreeMap<i64, DayStats> = BTreeMap::new();
    for p in pieces {
        let d = local_day(p.start, p.offset_min);
        if best[&d] != (p.rank, p.source) {
            continue;
        }
        let e = acc.entry(d).or_insert(DayStats {
            mean: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            count: 0,
            source: p.source,
        });
        e.mean += p.value;
        e.min = e.min.min(p.value);
        e.max = e.max.max(p.value);
        e.count += 1;
    }
    acc.into_iter()
        .map(|(d, mut s)| {
            s.mean /= s.count as f64;
            (date_of(d), s)
        })
        .collect()
}

/// Heart-rate zone bounds of the contract: max HR = 220 − age (190 without an age, never
/// below 100); light 50–63 %, moderate 64–76 %, vigorous 77–93 % of it.
pub fn max_heart_rate(age: Option<i32>) -> f64 {
    match age {
        Some(a) => ((220 - a) as f64).max(100.0),
        None => 190.0,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntensityMinutes {
    pub light: u32,
    pub moderate: u32,
    pub vigorous: u32,
}

/// Minutes per zone from per-minute mean heart rates.
pub fn intensity_minutes(minute_means: impl Iterator<Item = f64>, max_hr: f64) -> IntensityMinutes {
    let mut m = IntensityMinutes::default();
    for bpm in minute_means {
        let pct = bpm / max_hr * 100.0;
        if (50.0..64.0).contains(&pct) {
            m.light += 1;
        } else if (64.0..77.0).contains(&pct) {
            m.moderate += 1;
        } else if (77.0..=93.0).contains(&pct) {
            m.vigorous += 1;
        }
    }
    m
}

/// Local minute (since the epoch) of an instant.
pub fn local_minute(t: i64, offset_min: i16) -> i64 {
    (t + offset_min as i64 * MINUTE_US).div_euclid(MINUTE_US)
}

/// The local date of a local minute key.
pub fn minute_date(minute: i64) -> NaiveDate {
    date_of(minute.div_euclid(1440))
}

/// The local hour of the day (fractional) of an instant, for bedtimes.
pub fn local_hour(t: DateTime<chrono::Utc>, offset_min: i16) -> f64 {
    let l = t + chrono::Duration::minutes(offset_min as i64);
    l.hour() as f64 + l.minute() as f64 / 60.0 + l.second() as f64 / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;
    const M: i64 = MINUTE_US;
    // 2024-03-10T00:00:00Z
    const D0: i64 = 1_710_028_800_000_000;

    fn watch() -> Uuid {
        Uuid::from_u128(1)
    }
    fn phone() -> Uuid {
        Uuid::from_u128(2)
    }
    fn p(source: Uuid, rank: u32, start: i64, end: i64, value: f64) -> Piece {
        Piece {
            source,
            rank,
            start,
            end,
            value,
            offset_min: 0,
            daily_total: false,
        }
    }
    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn overlap_counts_the_better_source_and_the_rest_counts_alone() {
        // Watch 08:00-09:00 1000 steps; phone 08:30-10:00 900 steps (600 per hour).
        // 08:00-08:30 watch alone: 500; 08:30-09:00 both: watch 500; 09:00-10:00 phone alone: 600.
        let m = merge_additive(
            &[
                p(watch(), 1, D0 + 8 * H, D0 + 9 * H, 1000.0),
                p(phone(), 4, D0 + 8 * H + 30 * M, D0 + 10 * H, 900.0),
            ],
            false,
        );
        let d = m.days[&day("2024-03-10")];
        assert!((d.value - 1600.0).abs() < 1e-9, "{}", d.value);
        assert_eq!(d.source, watch());
    }

    #[test]
    fn an_equally_ranked_daily_total_wins_and_ties_between_totals_are_stable() {
        let rings = Uuid::from_u128(3);
        let other = Uuid::from_u128(4);
        let total = |source: Uuid, rank: u32, v: f64| Piece {
            daily_total: true,
            ..p(source, rank, D0, D0, v)
        };
        let intraday = [
            p(watch(), 1, D0 + 8 * H, D0 + 9 * H, 100.0),
            p(phone(), 4, D0 + 13 * H, D0 + 14 * H, 50.0),
        ];
        // Same rank as the watch: the total stands for the day.
        let mut pieces = intraday.to_vec();
        pieces.push(total(rings, 1, 420.0));
        let d = merge_additive(&pieces, false).days[&day("2024-03-10")];
        assert_eq!((d.value, d.source), (420.0, rings));
        // Ranked after the watch: ignored.
        let mut pieces = intraday.to_vec();
        pieces.push(total(rings, 2, 420.0));
        let d = merge_additive(&pieces, false).days[&day("2024-03-10")];
        assert_eq!((d.value, d.source), (150.0, watch()));
        // Two totals of one rank: the lower source id, whatever the input order.
        for order in [[0, 1], [1, 0]] {
            let two = [total(other, 1, 300.0), total(rings, 1, 420.0)];
            let pieces: Vec<Piece> = order.iter().map(|i| two[*i]).collect();
            let d = merge_additive(&pieces, false).days[&day("2024-03-10")];
            assert_eq!((d.value, d.source), (420.0, rings));
        }
    }

    #[test]
    fn disjoint_sources_both_count() {
        let m = merge_additive(
            &[
                p(watch(), 1, D0 + 8 * H, D0 + 9 * H, 4157.0),
                p(phone(), 4, D0 + 12 * H, D0 + 13 * H, 9922.0),
            ],
            false,
        );
        assert_eq!(m.days[&day("2024-03-10")].value, 14079.0);
    }

    #[test]
    fn daily_total_replaces_its_own_epochs() {
        let mut total = p(watch(), 1, D0, D0, 12000.0);
        total.daily_total = true;
        let m = merge_additive(
            &[
                total,
                p(watch(), 1, D0 + 8 * H, D0 + 9 * H, 5000.0),
                p(watch(), 1, D0 + 10 * H, D0 + 11 * H, 6000.0),
            ],
            false,
        );
        assert_eq!(m.days[&day("2024-03-10")].value, 12000.0);
    }

    #[test]
    fn a_lower_ranked_daily_total_loses_to_better_intraday_data() {
        let mut total = p(phone(), 4, D0, D0, 12000.0);
        total.daily_total = true;
        let m = merge_additive(
            &[total, p(watch(), 1, D0 + 8 * H, D0 + 9 * H, 5000.0)],
            false,
        );
        assert_eq!(m.days[&day("2024-03-10")].value, 5000.0);
        let mut total = p(watch(), 1, D0, D0, 12000.0);
        total.daily_total = true;
        let m = merge_additive(
            &[total, p(phone(), 4, D0 + 8 * H, D0 + 9 * H, 5000.0)],
            false,
        );
        assert_eq!(m.days[&day("2024-03-10")].value, 12000.0);
    }

    #[test]
    fn days_are_local_and_midnight_spanning_samples_split() {
        // 23:30-00:30 local at UTC-8 (07:30-08:30Z): 600 steps, half on each local day.
        let mut s = p(watch(), 1, D0 + 7 * H + 30 * M, D0 + 8 * H + 30 * M, 600.0);
        s.offset_min = -480;
        let m = merge_additive(&[s], true);
        assert_eq!(m.days[&day("2024-03-09")].value, 300.0);
        assert_eq!(m.days[&day("2024-03-10")].value, 300.0);
        assert_eq!(m.minutes.len(), 60);
        assert!(m.minutes.values().all(|v| (v - 10.0).abs() < 1e-9));
    }

    #[test]
    fn points_count_unless_a_better_source_covers_them() {
        let m = merge_additive(
            &[
                p(watch(), 1, D0 + 8 * H, D0 + 9 * H, 100.0),
                p(phone(), 4, D0 + 8 * H + 10 * M, D0 + 8 * H + 10 * M, 50.0),
                p(phone(), 4, D0 + 10 * H, D0 + 10 * H, 7.0),
            ],
            false,
        );
        assert_eq!(m.days[&day("2024-03-10")].value, 107.0);
    }

    #[test]
    fn averaged_series_take_the_best_source_per_day() {
        let s = best_source_stats(&[
            p(watch(), 1, D0 + 8 * H, D0 + 8 * H, 60.0),
            p(watch(), 1, D0 + 9 * H, D0 + 9 * H, 80.0),
            p(phone(), 4, D0 + 9 * H, D0 + 9 * H, 200.0),
            p(phone(), 4, D0 + 30 * H, D0 + 30 * H, 90.0),
        ]);
        let a = s[&day("2024-03-10")];
        assert_eq!(
            (a.mean, a.min, a.max, a.count, a.source),
            (70.0, 60.0, 80.0, 2, watch())
        );
        assert_eq!(s[&day("2024-03-11")].source, phone());
    }

    #[test]
    fn zones_follow_max_heart_rate() {
        assert_eq!(max_heart_rate(None), 190.0);
        assert_eq!(max_heart_rate(Some(40)), 180.0);
        assert_eq!(max_heart_rate(Some(150)), 100.0);
        let z = intensity_minutes([60.0, 95.0, 120.0, 150.0, 175.0].into_iter(), 190.0);
        // 60 = 31.6 % (none), 95 = 50 % light, 120 = 63.2 % light, 150 = 78.9 % vigorous,
        // 175 = 92.1 % vigorous.
        assert_eq!((z.light, z.moderate, z.vigorous), (2, 0, 2));
    }
}
