//! Turning sleep-analysis intervals into sessions: a source's intervals belong to one session
//! while the gap between them is at most 120 minutes (the contract's rule).

use chrono::{DateTime, Timelike, Utc};
use uuid::Uuid;
use wearhouse_domain::records::{record_id, SleepSessionRecord, SleepStageInterval};
use wearhouse_domain::sleep::SleepStage;

pub const SESSION_GAP_US: i64 = 120 * 60 * 1_000_000;
/// A session shorter than this whose local midpoint falls in the day is a nap.
const NAP_MAX_US: i64 = 3 * 3600 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub stage: SleepStage,
    pub start: i64,
    pub end: i64,
    pub zone_offset_min: i16,
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Sessions of one data source, in time order. `intervals` may come in any order.
#[cfg(test)]
pub fn build(data_source_id: Uuid, intervals: Vec<Interval>) -> Vec<SleepSessionRecord> {
    Sessions::new(data_source_id, intervals).collect()
}

/// Intervals buffered per source before completed sessions are split off.
const SPLIT_AT: usize = 1024;
/// Most intervals held for one source's unsettled sessions.
const MAX_PENDING: usize = 100_000;
/// How far behind the newest interval a session must end to count as complete: exports list a
/// source's sleep in time order, give or take an entry added late.
const SETTLE_US: i64 = 2 * 24 * 3600 * 1_000_000;

/// One source's sleep intervals while an export is read. Sessions that ended well before the
/// newest interval are handed out as soon as they are complete, so memory does not grow with
/// the length of the history.
#[derive(Debug, Default)]
pub struct Pending {
    intervals: Vec<Interval>,
    /// Start of the newest interval seen.
    max_start: Option<i64>,
    /// End of the last session handed out.
    floor: Option<i64>,
    next_split: usize,
    /// Intervals that came after the session they touch was handed out (they form or join a
    /// later session instead).
    pub late: u64,
}

impl Pending {
    /// Adds an interval; returns the intervals of sessions now complete (often none).
    pub fn push(&mut self, interval: Interval) -> Vec<Interval> {
        if self
            .floor
            .is_some_and(|floor| interval.start <= floor + SESSION_GAP_US)
        {
            self.late += 1;
        }
        let max_start = self
            .max_start
            .map_or(interval.start, |m| m.max(interval.start));
        self.max_start = Some(max_start);
        self.intervals.push(interval);
        if self.intervals.len() < self.next_split.max(SPLIT_AT) {
            return Vec::new();
        }
        sort(&mut self.intervals);
        let cutoff = max_start - SESSION_GAP_US - SETTLE_US;
        let mut end = self.intervals[0].end;
        let mut split = 0;
        for (n, i) in self.intervals.iter().enumerate().skip(1) {
            if i.start - end > SESSION_GAP_US {
                if end >= cutoff {
                    break;
                }
                split = n;
            }
            end = end.max(i.end);
        }
        if split == 0 && self.intervals.len() >= MAX_PENDING {
            // Intervals that never leave a 2-hour gap (no real night has this many): hand out
            // the older half so memory stays bounded.
            split = self.intervals.len() / 2;
        }
        let done: Vec<Interval> = self.intervals.drain(..split).collect();
        if let Some(last) = done.iter().map(|i| i.end).max() {
            self.floor = Some(self.floor.map_or(last, |f| f.max(last)));
        }
        // Not re-sorted on every push when a source's sessions never settle.
        self.next_split = self.intervals.len() * 2;
        done
    }

    /// The intervals of the sessions not handed out yet.
    pub fn into_rest(self) -> Vec<Interval> {
        self.intervals
    }
}

/// In place (no merge buffer), and deterministic whatever order the file had.
fn sort(intervals: &mut [Interval]) {
    intervals.sort_unstable_by_key(|i| (i.start, i.end, i.stage, i.zone_offset_min));
}

/// The sessions of one data source, built one at a time in time order (so only the compact
/// intervals are ever held whole).
pub struct Sessions {
    data_source_id: Uuid,
    intervals: Vec<Interval>,
    next: usize,
}

impl Sessions {
    /// `intervals` may come in any order.
    pub fn new(data_source_id: Uuid, mut intervals: Vec<Interval>) -> Self {
        sort(&mut intervals);
        Sessions {
            data_source_id,
            intervals,
            next: 0,
        }
    }
}

impl Iterator for Sessions {
    type Item = SleepSessionRecord;

    fn next(&mut self) -> Option<SleepSessionRecord> {
        let first = self.next;
        let mut end = self.intervals.get(first)?.end;
        let mut n = first + 1;
        while let Some(i) = self.intervals.get(n) {
            if i.start - end > SESSION_GAP_US {
                break;
            }
            end = end.max(i.end);
            n += 1;
        }
        self.next = n;
        Some(session(self.data_source_id, &self.intervals[first..n]))
    }
}

fn session(data_source_id: Uuid, intervals: &[Interval]) -> SleepSessionRecord {
    let start = intervals.iter().map(|i| i.start).min().unwrap_or_default();
    let end = intervals.iter().map(|i| i.end).max().unwrap_or_default();
    let offset = intervals[0].zone_offset_min;
    let asleep: i64 = intervals
        .iter()
        .filter(|i| i.stage.is_asleep())
        .map(|i| i.end - i.start)
        .sum();
    let span = if asleep > 0 { asleep } else { end - start };
    let local_mid = ts((start + end) / 2 + offset as i64 * 60_000_000);
    let daytime = (9..21).contains(&local_mid.hour());
    SleepSessionRecord {
        id: record_id(&[&data_source_id.to_string(), "sleep", &start.to_string()]),
        data_source_id,
        start: ts(start),
        end: ts(end),
        zone_offset: Some(offset),
        is_nap: daytime && span < NAP_MAX_US,
        stages: intervals
            .iter()
            .map(|i| SleepStageInterval {
                stage: i.stage.as_str().to_string(),
                start: ts(i.start),
                end: ts(i.end),
            })
            .collect(),
        stages_from_totals: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * 1_000_000;
    const M: i64 = 60 * 1_000_000;
    // 2024-03-09T22:00:00Z
    const NIGHT: i64 = 1_710_021_600 * 1_000_000;

    #[test]
    fn a_session_that_never_ends_is_held_within_bounds() {
        let mut p = Pending::default();
        let mut out = 0;
        for n in 0..500_000i64 {
            out += p
                .push(Interval {
                    stage: SleepStage::Light,
                    start: NIGHT + n * M,
                    end: NIGHT + n * M + 2 * M,
                    zone_offset_min: 0,
                })
                .len();
            assert!(
                p.intervals.len() <= 2 * MAX_PENDING,
                "{}",
                p.intervals.len()
            );
        }
        assert_eq!(out + p.into_rest().len(), 500_000);
    }

    fn iv(stage: SleepStage, start: i64, end: i64) -> Interval {
        Interval {
            stage,
            start,
            end,
            zone_offset_min: 60,
        }
    }

    #[test]
    fn intervals_within_two_hours_form_one_session() {
        let ds = Uuid::nil();
        let s = build(
            ds,
            vec![
                iv(SleepStage::Rem, NIGHT + 3 * H, NIGHT + 4 * H),
                iv(SleepStage::Light, NIGHT, NIGHT + 2 * H),
                // 110 minutes after the previous end: still the same night.
                iv(SleepStage::Deep, NIGHT + 5 * H + 50 * M, NIGHT + 7 * H),
                // 6 hours later: a new session (an afternoon nap, 13:00-14:00 local).
                iv(SleepStage::Light, NIGHT + 14 * H, NIGHT + 15 * H),
            ],
        );
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].start, s[0].end), (ts(NIGHT), ts(NIGHT + 7 * H)));
        assert_eq!(s[0].stages.len(), 3);
        assert!(!s[0].is_nap);
        assert!(s[1].is_nap);
        assert_eq!(s[0].zone_offset, Some(60));
        // Ids are stable across imports.
        assert_eq!(
            build(ds, vec![iv(SleepStage::Light, NIGHT, NIGHT + 2 * H)])[0].id,
            s[0].id
        );
    }

    #[test]
    fn a_gap_just_over_two_hours_splits() {
        let s = build(
            Uuid::nil(),
            vec![
                iv(SleepStage::Light, NIGHT, NIGHT + H),
                iv(SleepStage::Light, NIGHT + 3 * H + M, NIGHT + 4 * H),
            ],
        );
        assert_eq!(s.len(), 2);
    }

    /// Ten years of nights, ten stages each, one slightly out of order per week: what is handed
    /// out while reading plus what is left equals building from everything, and the buffer
    /// stays small.
    #[test]
    fn pending_hands_out_settled_sessions_and_matches_building_at_once() {
        let ds = Uuid::nil();
        let mut all = Vec::new();
        for night in 0..3650i64 {
            let t0 = NIGHT + night * 24 * H;
            let mut stages: Vec<Interval> = (0..10)
                .map(|k| iv(SleepStage::Light, t0 + k * 40 * M, t0 + k * 40 * M + 35 * M))
                .collect();
            if night % 7 == 0 {
                stages.swap(2, 7);
            }
            all.extend(stages);
        }
        let mut pending = Pending::default();
        let mut built = Vec::new();
        let mut held = 0;
        for i in &all {
            built.extend(Sessions::new(ds, pending.push(*i)));
            held = held.max(pending.intervals.len());
        }
        assert!(built.len() > 3000, "sessions were handed out while reading");
        assert!(held <= 2 * SPLIT_AT, "held {held} intervals");
        built.extend(Sessions::new(ds, pending.into_rest()));
        assert_eq!(built, build(ds, all));
    }

    #[test]
    fn an_interval_listed_after_its_night_was_handed_out_is_counted_late() {
        let ds = Uuid::nil();
        let mut pending = Pending::default();
        let mut out = Vec::new();
        for night in 0..(SPLIT_AT as i64 + 10) {
            let t0 = NIGHT + night * 24 * H;
            out.extend(pending.push(iv(SleepStage::Deep, t0, t0 + 7 * H)));
        }
        assert!(!out.is_empty());
        assert_eq!(pending.late, 0);
        pending.push(iv(SleepStage::Awake, NIGHT + 7 * H, NIGHT + 8 * H));
        assert_eq!(pending.late, 1);
        let rest = pending.into_rest();
        let sessions: Vec<_> = Sessions::new(ds, out)
            .chain(Sessions::new(ds, rest))
            .collect();
        // Nothing is dropped: the late interval is a session of its own.
        let intervals: usize = sessions.iter().map(|s| s.stages.len()).sum();
        assert_eq!(intervals, SPLIT_AT + 11);
    }
}
