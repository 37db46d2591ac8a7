//! Garmin menstrual cycle tracking (`mct`): one cycle summary per item, updated as the cycle
//! goes on. As upstream: the cycle starts at UTC midnight of `periodStartDate` (Garmin gives
//! no offset for it), ends `cycleLength` (else `predictedCycleLength`) days later, and every
//! detail field is taken as Garmin sent it.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::{record_id, CycleDetails, MenstrualCycleRecord};

use crate::providers::mapped::shape;
use crate::providers::MapError;

fn int(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn flag(v: &Value, k: &str) -> Option<bool> {
    v.get(k).and_then(Value::as_bool)
}

/// The cycle fields [`cycle`] fills from a Garmin summary (for `/meta/coverage`).
pub const FIELDS: &[&str] = &[
    "current_phase",
    "current_phase_type",
    "day_in_cycle",
    "cycle_length",
    "predicted_cycle_length",
    "is_predicted_cycle",
    "period_length",
    "length_of_current_phase",
    "days_until_next_phase",
    "fertile_window_start",
    "length_of_fertile_window",
    "last_updated_at",
    "has_specified_cycle_length",
    "has_specified_period_length",
    "pregnancy_snapshot",
];

pub fn cycle(v: &Value, ds: Uuid) -> Result<MenstrualCycleRecord, MapError> {
    let day = v
        .get("periodStartDate")
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .ok_or_else(|| shape("mct", "missing or malformed periodStartDate"))?;
    let start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let cycle_length = int(v, "cycleLength");
    let predicted = int(v, "predictedCycleLength");
    let days = cycle_length.or(predicted).unwrap_or(0);
    let end = crate::providers::mapped::after_secs(start, days as f64 * 86_400.0);
    // Garmin updates a cycle under the same summary id as it goes on (its start may be
    // corrected), so the id follows the summary; the start date stands in without one.
    let key = v
        .get("summaryId")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| day.to_string());
    Ok(MenstrualCycleRecord {
        id: record_id(&[&ds.to_string(), "mct", &key]),
        data_source_id: ds,
        start,
        end,
        zone_offset: None,
        details: CycleDetails {
            current_phase: int(v, "currentPhase"),
            current_phase_type: v
                .get("currentPhaseType")
                .and_then(Value::as_str)
                .map(String::from),
            day_in_cycle: int(v, "dayInCycle"),
            cycle_length,
            predicted_cycle_length: predicted,
            is_predicted_cycle: flag(v, "isPredictedCycle"),
            period_length: int(v, "periodLength"),
            length_of_current_phase: int(v, "lengthOfCurrentPhase"),
            days_until_next_phase: int(v, "daysUntilNextPhase"),
            fertile_window_start: int(v, "fertileWindowStart"),
            length_of_fertile_window: int(v, "lengthOfFertileWindow"),
            last_updated_at: v
                .get("lastUpdatedTimeInSeconds")
                .and_then(Value::as_i64)
                .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)),
            has_specified_cycle_length: flag(v, "hasSpecifiedCycleLength"),
            has_specified_period_length: flag(v, "hasSpecifiedPeriodLength"),
            pregnancy_snapshot: v
                .get("pregnancySnapshot")
                .filter(|s| !s.is_null())
                .map(|s| vec![s.clone()])
                .unwrap_or_default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::Garmin;
    use crate::providers::{Provider, PushProvider};
    use serde_json::json;
    use uuid::Uuid;
    use wearhouse_domain::records::DataEvent;

    #[test]
    fn cycle_summaries_map_field_for_field() {
        let user = Uuid::from_u128(3);
        let body = json!([{
            "userId": "g-1",
            "summaryId": "x3f9-mct-2024-03-04",
            "periodStartDate": "2024-03-04",
            "dayInCycle": 10,
            "periodLength": 5,
            "currentPhase": 2,
            "currentPhaseType": "FOLLICULAR",
            "lengthOfCurrentPhase": 8,
            "daysUntilNextPhase": 3,
            "predictedCycleLength": 29,
            "isPredictedCycle": false,
            "cycleLength": 28,
            "lastUpdatedTimeInSeconds": 1710460800,
            "hasSpecifiedCycleLength": true,
            "hasSpecifiedPeriodLength": false,
            "fertileWindowStart": 12,
            "lengthOfFertileWindow": 6,
            "pregnancySnapshot": {"week": 0}
        }, {
            "userId": "g-1",
            "summaryId": "x3f9-mct-2024-04-01",
            "periodStartDate": "2024-04-01",
            "predictedCycleLength": 29,
            "isPredictedCycle": true
        }]);
        let m = Garmin.map("mct", &body, user).unwrap();
        assert_eq!(m.cycles.len(), 2);
        let c = &m.cycles[0];
        assert_eq!(c.start.to_rfc3339(), "2024-03-04T00:00:00+00:00");
        // cycleLength wins over the prediction for the end.
        assert_eq!(c.end.to_rfc3339(), "2024-04-01T00:00:00+00:00");
        assert_eq!(c.zone_offset, None);
        let d = serde_json::to_value(&c.details).unwrap();
        assert_eq!(
            d,
            json!({
                "current_phase": 2, "current_phase_type": "FOLLICULAR", "day_in_cycle": 10,
                "cycle_length": 28, "predicted_cycle_length": 29, "is_predicted_cycle": false,
                "period_length": 5, "length_of_current_phase": 8, "days_until_next_phase": 3,
                "fertile_window_start": 12, "length_of_fertile_window": 6,
                "last_updated_at": "2024-03-15T00:00:00Z", "has_specified_cycle_length": true,
                "has_specified_period_length": false, "pregnancy_snapshot": [{"week": 0}]
            })
        );
        // A predicted cycle ends by its predicted length; the same summary maps to the same id.
        assert_eq!(m.cycles[1].end.to_rfc3339(), "2024-04-30T00:00:00+00:00");
        assert_eq!(m.cycles[1].details.pregnancy_snapshot.len(), 0);
        let again = Garmin.map("mct", &body, user).unwrap();
        assert_eq!(again.cycles[0].id, c.id);
        assert_ne!(m.cycles[1].id, c.id);
        // They reach the log as one MenstrualCyclesRecorded event.
        let out = m.into_out(user).unwrap();
        assert!(out.iter().any(|o| matches!(o,
            wearhouse_log::writer::Out::Event(DataEvent::MenstrualCyclesRecorded { cycles, .. }) if cycles.len() == 2)));
        // Without a start date the item is rejected, not guessed.
        assert!(Garmin
            .map("mct", &json!([{"summaryId": "x"}]), user)
            .is_err());
    }

    #[test]
    fn mct_pushes_are_accepted() {
        let n = Garmin
            .parse_webhook(&json!({"mct": [{"userId": "g-1", "periodStartDate": "2024-03-04"}]}))
            .unwrap();
        assert_eq!(n.len(), 1);
    }
}
