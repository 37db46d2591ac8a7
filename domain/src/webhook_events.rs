//! The catalog of outgoing webhook event types (reference §8): session and lifecycle events,
//! one grouped event per family of series types, and a granular `series.<type>.created` per
//! series type. Upstream maps 87 of the 93 series types to a group and sends nothing for the
//! other six; here every series type has a group, so those six are delivered too.

use crate::series::{SeriesType, SERIES_TYPES};

/// Session and lifecycle events with their descriptions.
pub const SESSION_EVENTS: &[(&str, &str)] = &[
    ("connection.created", "A user connected a provider"),
    ("connection.revoked", "A provider connection was revoked"),
    ("sync.started", "A sync run started"),
    ("sync.completed", "A sync run completed"),
    ("sync.failed", "A sync run failed"),
    ("workout.created", "A workout was recorded"),
    ("sleep.created", "A sleep session was recorded"),
    ("menstrual_cycle.created", "A menstrual cycle was recorded"),
];

/// Grouped timeseries events, in upstream's order.
pub const GROUPS: &[&str] = &[
    "heart_rate",
    "heart_rate_variability",
    "steps",
    "calories",
    "spo2",
    "respiratory_rate",
    "body_temperature",
    "stress",
    "blood_glucose",
    "blood_pressure",
    "body_composition",
    "fitness_metrics",
    "recovery_score",
    "activity_timeseries",
    "workout_metrics",
    "environmental",
];

/// The group whose `<group>.created` event carries samples of `series`.
pub fn group_of(series: &SeriesType) -> &'static str {
    match series.code {
        "heart_rate_variability_sdnn" | "heart_rate_variability_rmssd" => "heart_rate_variability",
        "steps" => "steps",
        "energy" | "basal_energy" => "calories",
        "oxygen_saturation" => "spo2",
        "respiratory_rate"
        | "sleeping_breathing_disturbances"
        | "breathing_disturbance_index"
        | "forced_vital_capacity"
        | "forced_expiratory_volume_1"
        | "peak_expiratory_flow_rate"
        | "peripheral_perfusion_index"
        | "inhaler_usage" => "respiratory_rate",
        "body_temperature"
        | "skin_temperature"
        | "skin_temperature_deviation"
        | "skin_temperature_trend_deviation"
        | "garmin_skin_temperature" => "body_temperature",
        "garmin_stress_level" | "electrodermal_activity" => "stress",
        "blood_glucose" | "insulin_delivery" | "blood_alcohol_content" => "blood_glucose",
        "blood_pressure_systolic" | "blood_pressure_diastolic" => "blood_pressure",
        "garmin_body_battery" => "recovery_score",
        "garmin_fitness_age" => "fitness_metrics",
        _ => match series.category {
            "Heart & Cardiovascular" => "heart_rate",
            "Body Composition" => "body_composition",
            "Fitness" => "fitness_metrics",
            "Running" | "Swimming" | "Generic" => "workout_metrics",
            "Environmental" => "environmental",
            _ => "activity_timeseries",
        },
    }
}

/// `series.<code>.created`.
pub fn granular(series: &SeriesType) -> String {
    format!("series.{}.created", series.code)
}

/// `<group>.created`.
pub fn grouped(group: &str) -> String {
    format!("{group}.created")
}

/// Every event type, with its description and (for groups) its granular child events.
pub fn catalog() -> Vec<(String, String, Option<Vec<String>>)> {
    let mut out: Vec<_> = SESSION_EVENTS
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_string(), None))
        .collect();
    for g in GROUPS {
        let children: Vec<String> = SERIES_TYPES
            .iter()
            .filter(|s| group_of(s) == *g)
            .map(granular)
            .collect();
        out.push((
            grouped(g),
            format!("New {} samples were recorded", g.replace('_', " ")),
            Some(children),
        ));
    }
    for s in SERIES_TYPES.iter() {
        out.push((
            granular(s),
            format!("New {} samples were recorded", s.code),
            None,
        ));
    }
    out
}

pub fn is_known(event_type: &str) -> bool {
    SESSION_EVENTS.iter().any(|(n, _)| *n == event_type)
        || event_type
            .strip_suffix(".created")
            .is_some_and(|g| GROUPS.contains(&g))
        || event_type
            .strip_prefix("series.")
            .and_then(|s| s.strip_suffix(".created"))
            .and_then(crate::series::by_code)
            .is_some()
}

/// Upstream's idempotency key rule: characters outside `[A-Za-z0-9-_.]` become `_`.
pub fn idempotency_key(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_type_has_a_group_and_the_catalog_has_each_once() {
        let all = catalog();
        assert_eq!(all.len(), 8 + 16 + 93);
        let names: std::collections::HashSet<_> = all.iter().map(|e| e.0.clone()).collect();
        assert_eq!(names.len(), all.len());
        for s in SERIES_TYPES.iter() {
            assert!(GROUPS.contains(&group_of(s)), "{}", s.code);
            assert!(is_known(&granular(s)));
        }
        for forgotten in [
            "running_vertical_ratio",
            "elevation",
            "latitude",
            "air_temperature",
        ] {
            assert!(is_known(&format!("series.{forgotten}.created")));
        }
        assert!(!is_known("series.nope.created"));
        assert!(is_known("heart_rate.created"));
    }

    #[test]
    fn keys_keep_only_safe_characters() {
        assert_eq!(
            idempotency_key("connection.created.u.garmin.2026-01-01T00:00:00+00:00"),
            "connection.created.u.garmin.2026-01-01T00_00_00_00_00"
        );
    }
}
