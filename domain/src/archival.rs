//! Archival of old samples: the installation's policy and each run's cutoffs, recorded on the
//! `Archival` streams. A run's cutoffs are decided when it runs and recorded as an event, so
//! the samples read model applies the same cutoffs live and in a rebuild.

use std::ops::RangeInclusive;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub const AGGREGATE_TYPE: &str = "Archival";
/// The stream of policy changes.
pub const SETTINGS_STREAM: &str = "settings";
/// The stream of runs.
pub const RUNS_STREAM: &str = "runs";
/// The contract's bounds (`ArchivalSettingUpdate`).
pub const ARCHIVE_AFTER_DAYS: RangeInclusive<i32> = 1..=3650;
pub const DELETE_AFTER_DAYS: RangeInclusive<i32> = 1..=7300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ArchivalEvent {
    /// The policy; `None` turns a step off.
    ArchivalSettingChanged {
        archive_after_days: Option<i32>,
        delete_after_days: Option<i32>,
        at: DateTime<Utc>,
    },
    /// One run: samples before `archived_before` become daily aggregates and leave the
    /// timeseries; samples before `live_deleted_before` leave it without aggregates; aggregates
    /// of days before `aggregates_deleted_before` are removed.
    SamplesArchived {
        #[serde(flatten)]
        cutoffs: Cutoffs,
        at: DateTime<Utc>,
    },
}

impl ArchivalEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            ArchivalEvent::ArchivalSettingChanged { .. } => "ArchivalSettingChanged",
            ArchivalEvent::SamplesArchived { .. } => "SamplesArchived",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cutoffs {
    pub archived_before: Option<DateTime<Utc>>,
    pub live_deleted_before: Option<DateTime<Utc>>,
    pub aggregates_deleted_before: Option<NaiveDate>,
}

impl Cutoffs {
    pub fn is_empty(&self) -> bool {
        *self == Cutoffs::default()
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// A run's cutoffs on UTC day `today` (upstream's rules): the two steps are independent, but
/// when data would be deleted no later than it would be archived, archival is pointless and
/// the run deletes live samples instead (and any aggregates of those days).
pub fn cutoffs(
    archive_after_days: Option<i32>,
    delete_after_days: Option<i32>,
    today: NaiveDate,
) -> Cutoffs {
    let archiving = match (archive_after_days, delete_after_days) {
        (Some(a), Some(d)) => d > a,
        (Some(_), None) => true,
        _ => false,
    };
    let mut out = Cutoffs::default();
    if archiving {
        let days = archive_after_days.unwrap_or_default();
        out.archived_before = Some(midnight(today - Duration::days(days.into())));
    }
    if let Some(days) = delete_after_days {
        let day = today - Duration::days(days.into());
        out.aggregates_deleted_before = Some(day);
        if !archiving {
            out.live_deleted_before = Some(midnight(day));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_follow_the_policy() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        assert!(cutoffs(None, None, today).is_empty());
        let c = cutoffs(Some(9), None, today);
        assert_eq!(c.archived_before, Some(midnight(day(3, 1))));
        assert_eq!(
            (c.live_deleted_before, c.aggregates_deleted_before),
            (None, None)
        );
        let c = cutoffs(Some(9), Some(30), today);
        assert_eq!(c.archived_before, Some(midnight(day(3, 1))));
        assert_eq!(c.aggregates_deleted_before, Some(day(2, 8)));
        assert_eq!(c.live_deleted_before, None);
        // Deleted before it would be archived: retention only.
        let c = cutoffs(Some(30), Some(30), today);
        assert_eq!(c.archived_before, None);
        assert_eq!(c.live_deleted_before, Some(midnight(day(2, 8))));
        assert_eq!(c.aggregates_deleted_before, Some(day(2, 8)));
    }

    #[test]
    fn events_round_trip() {
        let e = ArchivalEvent::SamplesArchived {
            cutoffs: cutoffs(
                Some(9),
                Some(30),
                NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
            ),
            at: "2026-03-10T03:00:00Z".parse().unwrap(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "SamplesArchived");
        assert_eq!(serde_json::from_value::<ArchivalEvent>(v).unwrap(), e);
    }
}
