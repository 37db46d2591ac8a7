//! SDK sleep: stage samples arrive in pieces over several syncs, so a source's sessions are
//! rebuilt from the stages already in the log plus the new ones, with the contract's
//! 120-minute rule ([`sleep_sessions::Sessions`], the rule the Apple import uses). Session
//! ids derive from the source and the session's start, so the same stages give the same
//! sessions whatever order the syncs came in; a session absorbed into an earlier-starting one
//! is reported as replaced.

use std::collections::HashSet;

use uuid::Uuid;
use wearhouse_domain::records::SleepSessionRecord;
use wearhouse_domain::sleep::SleepStage;

use crate::ingest::sleep_sessions::{Interval, Sessions, SESSION_GAP_US};

/// The contract's `SleepPhase` values, plus the spellings SDK versions used before.
pub fn stage(s: &str) -> Option<SleepStage> {
    let lower = s.trim().to_ascii_lowercase();
    SleepStage::parse(&lower).or(match lower.as_str() {
        "inbed" | "in-bed" => Some(SleepStage::InBed),
        "asleep" | "asleep_unspecified" | "asleepunspecified" => Some(SleepStage::Sleeping),
        "core" | "asleep_core" | "asleepcore" => Some(SleepStage::Light),
        "asleep_deep" | "asleepdeep" => Some(SleepStage::Deep),
        "asleep_rem" | "asleeprem" => Some(SleepStage::Rem),
        "out_of_bed" | "awake_in_bed" => Some(SleepStage::Awake),
        _ => None,
    })
}

/// What adding stages to one source's sleep gives.
#[derive(Debug, Default, PartialEq)]
pub struct Assembled {
    /// Sessions that are new or changed.
    pub sessions: Vec<SleepSessionRecord>,
    /// Sessions already recorded that are now part of another session (their id is gone).
    pub replaced: Vec<Uuid>,
}

fn us(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// Adds `new` stage intervals of data source `ds` to its `prior` sessions (as recorded in the
/// log; any may be passed, only those within the gap of the new stages are considered).
pub fn assemble(ds: Uuid, prior: &[SleepSessionRecord], new: &[Interval]) -> Assembled {
    let (Some(lo), Some(hi)) = (
        new.iter().map(|i| i.start).min(),
        new.iter().map(|i| i.end).max(),
    ) else {
        return Assembled::default();
    };
    let near: Vec<&SleepSessionRecord> = prior
        .iter()
        .filter(|s| {
            s.data_source_id == ds
                && us(s.end) + SESSION_GAP_US >= lo
                && us(s.start) - SESSION_GAP_US <= hi
        })
        .collect();
    let mut intervals: Vec<Interval> = new.to_vec();
    for s in &near {
        let offset = s.zone_offset.unwrap_or(0);
        intervals.extend(s.stages.iter().filter_map(|st| {
            Some(Interval {
                stage: SleepStage::parse(&st.stage)?,
                start: us(st.start),
                end: us(st.end),
                zone_offset_min: offset,
            })
        }));
    }
    // A stage sent again (the same batch twice, overlapping anchors) counts once.
    intervals.sort_unstable_by_key(|i| (i.start, i.end, i.stage, i.zone_offset_min));
    intervals.dedup_by_key(|i| (i.start, i.end, i.stage));
    let built: Vec<SleepSessionRecord> = Sessions::new(ds, intervals).collect();
    let ids: HashSet<Uuid> = built.iter().map(|s| s.id).collect();
    let replaced = near
        .iter()
        .map(|s| s.id)
        .filter(|id| !ids.contains(id))
        .collect();
    let sessions = built.into_iter().filter(|s| !near.contains(&s)).collect();
    Assembled { sessions, replaced }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * 1_000_000;
    const M: i64 = 60 * 1_000_000;
    // 2026-03-01T22:00:00Z
    const NIGHT: i64 = 1_772_402_400 * 1_000_000;

    fn iv(stage: SleepStage, start: i64, end: i64) -> Interval {
        Interval {
            stage,
            start,
            end,
            zone_offset_min: 60,
        }
    }

    /// Applies each piece as a sync would: the log is what earlier syncs recorded.
    fn sync_all(pieces: &[Vec<Interval>]) -> Vec<SleepSessionRecord> {
        let ds = Uuid::nil();
        let mut log: Vec<SleepSessionRecord> = Vec::new();
        for piece in pieces {
            let a = assemble(ds, &log, piece);
            log.retain(|s| !a.replaced.contains(&s.id) && !a.sessions.iter().any(|n| n.id == s.id));
            log.extend(a.sessions);
        }
        log.sort_by_key(|s| s.start);
        log
    }

    #[test]
    fn a_night_in_three_syncs_is_one_session_in_any_order() {
        let a = vec![iv(SleepStage::Light, NIGHT, NIGHT + 2 * H)];
        let b = vec![
            iv(SleepStage::Deep, NIGHT + 2 * H, NIGHT + 3 * H),
            iv(SleepStage::Rem, NIGHT + 3 * H, NIGHT + 4 * H),
        ];
        let c = vec![iv(SleepStage::Light, NIGHT + 5 * H, NIGHT + 7 * H)];
        let forward = sync_all(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(forward.len(), 1);
        assert_eq!(forward[0].stages.len(), 4);
        let backward = sync_all(&[c.clone(), b.clone(), a.clone()]);
        assert_eq!(backward, forward);
        // The same batch again changes nothing.
        let again = assemble(Uuid::nil(), &forward, &b);
        assert_eq!(again, Assembled::default());
    }

    #[test]
    fn a_gap_over_two_hours_starts_a_new_session_and_naps_are_flagged() {
        let s = sync_all(&[
            vec![iv(SleepStage::Light, NIGHT, NIGHT + 7 * H)],
            // 14:00–14:40 local (UTC+1): a nap.
            vec![iv(
                SleepStage::Light,
                NIGHT + 15 * H,
                NIGHT + 15 * H + 40 * M,
            )],
        ]);
        assert_eq!(s.len(), 2);
        assert!(!s[0].is_nap);
        assert!(s[1].is_nap);
    }

    #[test]
    fn stages_accept_old_spellings() {
        assert_eq!(stage("in_bed"), Some(SleepStage::InBed));
        assert_eq!(stage("REM"), Some(SleepStage::Rem));
        assert_eq!(stage("asleepCore"), Some(SleepStage::Light));
        assert_eq!(stage("dreaming"), None);
    }
}
