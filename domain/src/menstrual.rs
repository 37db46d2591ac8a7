//! Menstrual cycles folded from logged flow days (Apple Health's `HKCategoryTypeIdentifierMenstrualFlow`
//! records), one source at a time.
//!
//! The rule:
//! * A flow day is a local date with flow logged (unspecified, light, medium or heavy; "none"
//!   and spotting are not flow).
//! * A new cycle starts on a flow day that follows at least [`CYCLE_GAP_DAYS`] flow-free days, or
//!   that the source marked as a cycle start (HealthKit's `HKMenstrualCycleStart`). Mid-cycle
//!   spotting a week after a period therefore stays in its cycle; the next period (normally two
//!   weeks or more after the last flow day) opens a new one.
//! * The period is the cycle's first run of flow days in which no gap exceeds
//!   [`PERIOD_GAP_DAYS`] flow-free days (a day or two without a log does not end it); its length
//!   counts from its first to its last flow day.
//! * A cycle ends where the next one starts; `cycle_length` is that distance in days. The last
//!   cycle is still open: its `predicted_cycle_length` is the rounded mean of up to
//!   [`PREDICTION_CYCLES`] preceding cycle lengths and its end is its start plus that prediction,
//!   or the day after its period when there is no history to predict from.
//! * Times are local midnights (the first flow day's offset) expressed in UTC. Fields that
//!   describe "today" (day in cycle, current phase) are not derived: they change with the clock,
//!   and a read model must be a function of the log.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use uuid::Uuid;

use crate::records::{record_id, CycleDetails, MenstrualCycleRecord};

pub const CYCLE_GAP_DAYS: i64 = 10;
pub const PERIOD_GAP_DAYS: i64 = 2;
pub const PREDICTION_CYCLES: usize = 6;

/// One logged day of flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowDay {
    pub date: NaiveDate,
    /// Minutes east of UTC, as the record was written.
    pub offset_min: i16,
    /// The source marked this day as the first of a cycle.
    pub cycle_start: bool,
}

fn local_midnight(date: NaiveDate, offset_min: i16) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).expect("midnight").and_utc() - Duration::minutes(offset_min as i64)
}

/// The stable id of a source's cycle starting on a local date: a re-import finds the same record
/// (so a deleted cycle stays deleted).
pub fn cycle_id(data_source_id: Uuid, start: NaiveDate) -> Uuid {
    record_id(&[
        &data_source_id.to_string(),
        "menstrual_cycle",
        &start.to_string(),
    ])
}

struct Draft {
    start: NaiveDate,
    offset_min: i16,
    period_end: NaiveDate,
    period_open: bool,
    last_flow: NaiveDate,
}

/// Folds one source's flow days (any order, duplicates allowed) into cycles, oldest first.
pub fn fold_cycles(data_source_id: Uuid, mut days: Vec<FlowDay>) -> Vec<MenstrualCycleRecord> {
    days.sort_by_key(|d| (d.date, !d.cycle_start));
    let mut drafts: Vec<Draft> = Vec::new();
    for d in days {
        match drafts.last_mut() {
            Some(c) if d.date == c.last_flow => {}
            Some(c) if !d.cycle_start && (d.date - c.last_flow).num_days() - 1 < CYCLE_GAP_DAYS => {
                if c.period_open && (d.date - c.period_end).num_days() - 1 <= PERIOD_GAP_DAYS {
                    c.period_end = d.date;
                } else {
                    c.period_open = false;
                }
                c.last_flow = d.date;
            }
            _ => drafts.push(Draft {
                start: d.date,
                offset_min: d.offset_min,
                period_end: d.date,
                period_open: true,
                last_flow: d.date,
            }),
        }
    }
    let lengths: Vec<i64> = drafts
        .windows(2)
        .map(|w| (w[1].start - w[0].start).num_days())
        .collect();
    drafts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let start = local_midnight(c.start, c.offset_min);
            let cycle_length = lengths.get(i).copied();
            let predicted = if cycle_length.is_none() && i > 0 {
                let recent = &lengths[i.saturating_sub(PREDICTION_CYCLES)..i];
                Some((recent.iter().sum::<i64>() as f64 / recent.len() as f64).round() as i64)
            } else {
                None
            };
            let end = match (cycle_length, predicted) {
                (Some(days), _) | (None, Some(days)) => start + Duration::days(days),
                (None, None) => local_midnight(c.period_end + Duration::days(1), c.offset_min),
            };
            MenstrualCycleRecord {
                id: cycle_id(data_source_id, c.start),
                data_source_id,
                start,
                end,
                zone_offset: Some(c.offset_min),
                details: CycleDetails {
                    cycle_length,
                    predicted_cycle_length: predicted,
                    is_predicted_cycle: Some(false),
                    period_length: Some((c.period_end - c.start).num_days() + 1),
                    ..CycleDetails::default()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(m: u32, d: u32) -> FlowDay {
        FlowDay {
            date: NaiveDate::from_ymd_opt(2024, m, d).unwrap(),
            offset_min: 60,
            cycle_start: false,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn periods_become_cycles_with_lengths_and_a_predicted_open_cycle() {
        let ds = Uuid::from_u128(9);
        let mut days = vec![
            // Period 1: 1–5 Jan with an unlogged 3 Jan; spotting on 14 Jan stays in the cycle.
            day(1, 1),
            day(1, 2),
            day(1, 4),
            day(1, 5),
            day(1, 14),
            // Period 2 starts 29 Jan (23 flow-free days after the spotting): 28-day cycle 1.
            day(1, 29),
            day(1, 30),
            day(1, 31),
            // Period 3 on 28 Feb: 30-day cycle 2; the last, open cycle.
            day(2, 28),
            day(2, 29),
        ];
        days.reverse();
        days.push(day(1, 2)); // duplicates change nothing
        let c = fold_cycles(ds, days);
        assert_eq!(c.len(), 3);
        let summary: Vec<_> = c
            .iter()
            .map(|c| {
                (
                    c.details.cycle_length,
                    c.details.period_length,
                    c.details.predicted_cycle_length,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (Some(28), Some(5), None),
                (Some(30), Some(3), None),
                (None, Some(2), Some(29))
            ]
        );
        // Local midnight at +01:00; each cycle ends where the next starts; the open cycle ends
        // at its predicted length.
        assert_eq!(c[0].start, t("2023-12-31T23:00:00Z"));
        assert_eq!(c[0].end, c[1].start);
        assert_eq!(c[2].end, t("2024-03-27T23:00:00Z"));
        assert_eq!(c[0].zone_offset, Some(60));
        assert_eq!(
            c[0].id,
            cycle_id(ds, NaiveDate::from_ymd_opt(2024, 1, 1).unwrap())
        );
        assert_eq!(c[2].details.is_predicted_cycle, Some(false));
    }

    #[test]
    fn gap_threshold_and_marked_starts() {
        let ds = Uuid::from_u128(9);
        // Nine flow-free days (2–10 Jan) keep one cycle; ten (2–11 Jan) open a new one.
        assert_eq!(fold_cycles(ds, vec![day(1, 1), day(1, 11)]).len(), 1);
        assert_eq!(fold_cycles(ds, vec![day(1, 1), day(1, 12)]).len(), 2);
        // A period of one day with a three-day gap: the later day is spotting, not period.
        let c = fold_cycles(ds, vec![day(1, 1), day(1, 5)]);
        assert_eq!(c[0].details.period_length, Some(1));
        // The source's own cycle-start mark wins over the gap rule.
        let mut marked = day(1, 8);
        marked.cycle_start = true;
        let c = fold_cycles(ds, vec![day(1, 1), marked]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].details.cycle_length, Some(7));
        // A lone open cycle without history ends the day after its period.
        let c = fold_cycles(ds, vec![day(3, 1), day(3, 2)]);
        assert_eq!(c[0].end, t("2024-03-02T23:00:00Z"));
        assert!(fold_cycles(ds, vec![]).is_empty());
    }
}
