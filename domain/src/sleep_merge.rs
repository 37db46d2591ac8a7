//! Nights from the sleep sessions of every source: sessions less than 120 minutes apart (the
//! contract's gap rule) form one night whatever their source; where sources' stages overlap,
//! the best-ranked source's stage is kept and the others are clipped away; naps are daytime
//! sessions under 3 hours or sessions the provider flagged; each local wake date has one main
//! sleep, the longest non-nap night.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use uuid::Uuid;

use crate::daily::{local_date, local_hour};
use crate::sleep::SleepStage;

pub const GAP_MINUTES: i64 = 120;
pub const NAP_MAX_MINUTES: i64 = 180;

#[derive(Debug, Clone, PartialEq)]
pub struct StageSpan {
    pub stage: SleepStage,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One source's session, with its source's rank (lower is better).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: Uuid,
    pub source: Uuid,
    pub rank: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub zone_offset: i16,
    pub is_nap: bool,
    pub stages: Vec<StageSpan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Night {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub zone_offset: i16,
    /// The best-ranked source among the merged sessions.
    pub source: Uuid,
    pub session_ids: Vec<Uuid>,
    /// The merged, non-overlapping stage timeline.
    pub stages: Vec<StageSpan>,
    pub is_nap: bool,
    /// The main sleep of its local wake date.
    pub is_main: bool,
    pub awake_minutes: f64,
    pub light_minutes: f64,
    pub deep_minutes: f64,
    pub rem_minutes: f64,
    /// Light + deep + REM + unspecified sleep.
    pub asleep_minutes: f64,
    pub in_bed_minutes: f64,
}

impl Night {
    /// The local date the person woke up on.
    pub fn wake_date(&self) -> NaiveDate {
        local_date(self.end.timestamp_micros(), self.zone_offset)
    }
    /// The local date the night began on (the sleep score's day, contract §7.1).
    pub fn start_date(&self) -> NaiveDate {
        local_date(self.start.timestamp_micros(), self.zone_offset)
    }
    pub fn efficiency_percent(&self) -> Option<f64> {
        (self.in_bed_minutes > 0.0).then(|| self.asleep_minutes / self.in_bed_minutes * 100.0)
    }
}

/// Which of one source's overlapping intervals describes a moment best: a sleep stage or
/// awake beats "in bed", which beats "unknown".
fn specificity(s: SleepStage) -> u8 {
    match s {
        SleepStage::Light | SleepStage::Deep | SleepStage::Rem | SleepStage::Awake => 0,
        SleepStage::Sleeping => 1,
        SleepStage::InBed => 2,
        SleepStage::Unknown => 3,
    }
}

fn minutes(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 60_000.0
}

/// Merges every session of one user into nights, in time order.
pub fn merge(mut sessions: Vec<Session>) -> Vec<Night> {
    sessions.sort_by_key(|s| (s.start, s.end, s.id));
    let gap = Duration::minutes(GAP_MINUTES);
    let mut clusters: Vec<Vec<Session>> = Vec::new();
    let mut end = DateTime::<Utc>::MIN_UTC;
    for s in sessions {
        match clusters.last_mut() {
            Some(c) if s.start - end <= gap => {
                end = end.max(s.end);
                c.push(s);
            }
            _ => {
                end = s.end;
                clusters.push(vec![s]);
            }
        }
    }
    let mut nights: Vec<Night> = clusters.into_iter().map(night).collect();
    // One main sleep per local wake date: the longest non-nap night.
    let mut by_date: std::collections::BTreeMap<NaiveDate, usize> = Default::default();
    for (i, n) in nights.iter().enumerate() {
        if n.is_nap {
            continue;
        }
        let e = by_date.entry(n.wake_date()).or_insert(i);
        if n.asleep_or_window() > nights[*e].asleep_or_window() {
            *e = i;
        }
    }
    for i in by_date.into_values() {
        nights[i].is_main = true;
    }
    nights
}

/// The nights the sleep score rates, in time order: per local *start* date, the longest
/// non-nap night (contract §7.1, upstream `get_sleep_scores_for_date_range`). This differs from
/// the summaries' main sleep, which is per local *wake* date: two nights that begin on the same
/// local date (after midnight, then again in the evening) give one score, not two.
pub fn score_nights(nights: &[Night]) -> Vec<usize> {
    let mut by_date: std::collections::BTreeMap<NaiveDate, usize> = Default::default();
    for (i, n) in nights.iter().enumerate() {
        if n.is_nap {
            continue;
        }
        let e = by_date.entry(n.start_date()).or_insert(i);
        if n.asleep_or_window() > nights[*e].asleep_or_window() {
            *e = i;
        }
    }
    let mut out: Vec<usize> = by_date.into_values().collect();
    out.sort_unstable();
    out
}

impl Night {
    fn asleep_or_window(&self) -> f64 {
        if self.asleep_minutes > 0.0 {
            self.asleep_minutes
        } else {
            self.in_bed_minutes
        }
    }
}

fn night(members: Vec<Session>) -> Night {
    let start = members.iter().map(|s| s.start).min().expect("non-empty");
    let end = members.iter().map(|s| s.end).max().expect("non-empty");
    let best = members
        .iter()
        .min_by_key(|s| (s.rank, s.source))
        .expect("non-empty");
    // Every source's intervals; a session without stages counts as asleep over its window.
    let mut spans: Vec<(u32, Uuid, StageSpan)> = Vec::new();
    for s in &members {
        if s.stages.is_empty() {
            spans.push((
                s.rank,
                s.source,
                StageSpan {
                    stage: SleepStage::Sleeping,
                    start: s.start,
                    end: s.end,
                },
            ));
        }
        for st in &s.stages {
            if st.end > st.start {
                spans.push((s.rank, s.source, st.clone()));
            }
        }
    }
    let mut cuts: Vec<DateTime<Utc>> = spans
        .iter()
        .flat_map(|(_, _, s)| [s.start, s.end])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut timeline: Vec<StageSpan> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let chosen = spans
            .iter()
            .filter(|(_, _, s)| s.start <= a && s.end >= b)
            .min_by_key(|(rank, source, s)| (*rank, *source, specificity(s.stage)))
            .map(|(_, _, s)| s.stage);
        let Some(stage) = chosen else { continue };
        match timeline.last_mut() {
            Some(last) if last.stage == stage && last.end == a => last.end = b,
            _ => timeline.push(StageSpan {
                stage,
                start: a,
                end: b,
            }),
        }
    }
    let mut n = Night {
        start,
        end,
        zone_offset: best.zone_offset,
        source: best.source,
        session_ids: members.iter().map(|s| s.id).collect(),
        stages: Vec::new(),
        is_nap: false,
        is_main: false,
        awake_minutes: 0.0,
        light_minutes: 0.0,
        deep_minutes: 0.0,
        rem_minutes: 0.0,
        asleep_minutes: 0.0,
        in_bed_minutes: minutes(start, end),
    };
    for s in &timeline {
        let m = minutes(s.start, s.end);
        match s.stage {
            SleepStage::Awake => n.awake_minutes += m,
            SleepStage::Light => n.light_minutes += m,
            SleepStage::Deep => n.deep_minutes += m,
            SleepStage::Rem => n.rem_minutes += m,
            _ => {}
        }
        if s.stage.is_asleep() {
            n.asleep_minutes += m;
        }
    }
    n.stages = timeline;
    let mid = start + (end - start) / 2;
    let hour = local_hour(mid, n.zone_offset);
    let daytime = (9.0..21.0).contains(&hour);
    let length = if n.asleep_minutes > 0.0 {
        n.asleep_minutes
    } else {
        n.in_bed_minutes
    };
    n.is_nap = members.iter().all(|s| s.is_nap) || (daytime && length < NAP_MAX_MINUTES as f64);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn span(stage: SleepStage, a: &str, b: &str) -> StageSpan {
        StageSpan {
            stage,
            start: t(a),
            end: t(b),
        }
    }
    fn session(source: u128, rank: u32, a: &str, b: &str, stages: Vec<StageSpan>) -> Session {
        Session {
            id: Uuid::new_v4(),
            source: Uuid::from_u128(source),
            rank,
            start: t(a),
            end: t(b),
            zone_offset: 0,
            is_nap: false,
            stages,
        }
    }

    #[test]
    fn two_trackers_the_same_night_become_one_night_with_clipped_stages() {
        use SleepStage::*;
        let watch = session(
            1,
            1,
            "2024-03-09T23:00:00Z",
            "2024-03-10T07:00:00Z",
            vec![
                span(Light, "2024-03-09T23:00:00Z", "2024-03-10T02:00:00Z"),
                span(Deep, "2024-03-10T02:00:00Z", "2024-03-10T03:00:00Z"),
                span(Rem, "2024-03-10T03:00:00Z", "2024-03-10T07:00:00Z"),
            ],
        );
        // The ring saw the same night from 22:30 and says "awake" where the watch says deep.
        let ring = session(
            2,
            3,
            "2024-03-09T22:30:00Z",
            "2024-03-10T06:00:00Z",
            vec![
                span(Light, "2024-03-09T22:30:00Z", "2024-03-10T02:00:00Z"),
                span(Awake, "2024-03-10T02:00:00Z", "2024-03-10T06:00:00Z"),
            ],
        );
        let nights = merge(vec![ring, watch]);
        assert_eq!(nights.len(), 1);
        let n = &nights[0];
        assert_eq!(
            (n.start, n.end),
            (t("2024-03-09T22:30:00Z"), t("2024-03-10T07:00:00Z"))
        );
        assert_eq!(n.source, Uuid::from_u128(1));
        assert_eq!(n.light_minutes, 210.0);
        assert_eq!(n.deep_minutes, 60.0);
        assert_eq!(n.rem_minutes, 240.0);
        assert_eq!(n.awake_minutes, 0.0);
        assert_eq!(n.asleep_minutes, 510.0);
        assert!(n.is_main && !n.is_nap);
        // The timeline never overlaps itself.
        assert!(n.stages.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn in_bed_gives_way_to_stages_of_the_same_source() {
        use SleepStage::*;
        let s = session(
            1,
            1,
            "2024-03-09T23:00:00Z",
            "2024-03-10T07:00:00Z",
            vec![
                span(InBed, "2024-03-09T23:00:00Z", "2024-03-10T07:00:00Z"),
                span(Light, "2024-03-09T23:30:00Z", "2024-03-10T06:30:00Z"),
            ],
        );
        let n = &merge(vec![s])[0];
        assert_eq!(n.stages.len(), 3);
        assert_eq!(n.asleep_minutes, 420.0);
        assert_eq!(n.in_bed_minutes, 480.0);
        assert!((n.efficiency_percent().unwrap() - 87.5).abs() < 1e-9);
    }

    #[test]
    fn gap_rule_and_naps() {
        // 110 minutes apart: one night. An afternoon hour: a nap on the same wake date.
        let a = session(1, 1, "2024-03-09T23:00:00Z", "2024-03-10T02:00:00Z", vec![]);
        let b = session(2, 2, "2024-03-10T03:50:00Z", "2024-03-10T07:00:00Z", vec![]);
        let nap = session(1, 1, "2024-03-10T14:00:00Z", "2024-03-10T15:00:00Z", vec![]);
        let nights = merge(vec![nap, b, a]);
        assert_eq!(nights.len(), 2);
        assert_eq!(nights[0].asleep_minutes, 370.0);
        assert!(nights[0].is_main);
        assert!(nights[1].is_nap && !nights[1].is_main);
        // 121 minutes apart: two nights; the longer is the main sleep of the wake date.
        let a = session(1, 1, "2024-03-09T23:00:00Z", "2024-03-10T00:00:00Z", vec![]);
        let b = session(1, 1, "2024-03-10T02:01:00Z", "2024-03-10T07:00:00Z", vec![]);
        let nights = merge(vec![a, b]);
        assert_eq!(nights.len(), 2);
        assert!(!nights[0].is_main && nights[1].is_main);
    }

    #[test]
    fn the_score_takes_the_longest_night_per_local_start_date() {
        // Both begin on 1 March in UTC−8: one at 00:30 (woken 04:30), one at 22:00. They wake on
        // different dates, so each is a main sleep of its wake date, but only the longer one is
        // rated. In UTC they start on different dates (08:30Z on the 1st, 06:00Z on the 2nd).
        let mut early = session(1, 1, "2024-03-01T08:30:00Z", "2024-03-01T12:30:00Z", vec![]);
        let mut late = session(1, 1, "2024-03-02T06:00:00Z", "2024-03-02T14:00:00Z", vec![]);
        early.zone_offset = -480;
        late.zone_offset = -480;
        let nights = merge(vec![late, early]);
        assert_eq!(nights.len(), 2);
        assert!(nights.iter().all(|n| n.is_main));
        assert_eq!(
            nights.iter().map(Night::start_date).collect::<Vec<_>>(),
            [NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(); 2]
        );
        assert_eq!(score_nights(&nights), [1]);
        // A nap never counts, even when it is the only night of its date.
        let mut nap = session(1, 1, "2024-03-03T22:00:00Z", "2024-03-03T23:00:00Z", vec![]);
        nap.is_nap = true;
        let nights = merge(vec![nap]);
        assert!(score_nights(&nights).is_empty());
    }

    #[test]
    fn a_provider_flagged_nap_stays_a_nap_at_night() {
        let mut s = session(1, 1, "2024-03-09T23:00:00Z", "2024-03-10T00:00:00Z", vec![]);
        s.is_nap = true;
        assert!(merge(vec![s])[0].is_nap);
    }
}
