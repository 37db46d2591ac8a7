//! `/meta/coverage`: built from what the code actually maps. Nothing is claimed for a provider
//! or importer until its mapper exists; each one registers its coverage in [`mappers`].

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{json, Value};
use wearhouse_domain::series::SeriesType;

use crate::providers::{SLEEP_FIELDS, WORKOUT_FIELDS};

/// What one provider's mapper delivers.
struct Mapper {
    provider: &'static str,
    series: Vec<&'static SeriesType>,
    workout_fields: &'static [&'static str],
    sleep_fields: &'static [&'static str],
    menstrual_cycle_fields: &'static [&'static str],
    scores: &'static [&'static str],
}

/// Cycle detail fields the Apple import derives from flow records (domain/src/menstrual.rs).
const APPLE_CYCLE_FIELDS: &[&str] = &[
    "cycle_length",
    "predicted_cycle_length",
    "is_predicted_cycle",
    "period_length",
];

/// Every mapper compiled into this build: the Apple importer and each cloud provider.
fn mappers() -> Vec<Mapper> {
    use crate::ingest::sdk::{self, Platform};
    // Apple: the export importer and the iOS SDK (one HealthKit table).
    let mut apple = crate::ingest::apple::series_types();
    apple.extend(sdk::series_types(Platform::Apple));
    apple.sort_by_key(|s| s.id);
    apple.dedup_by_key(|s| s.id);
    let mut all = vec![Mapper {
        provider: "apple",
        series: apple,
        workout_fields: WORKOUT_FIELDS,
        sleep_fields: SLEEP_FIELDS,
        menstrual_cycle_fields: APPLE_CYCLE_FIELDS,
        scores: &[],
    }];
    // The Android SDK's platforms: Health Connect and Samsung Health.
    for platform in [Platform::Google, Platform::Samsung] {
        all.push(Mapper {
            provider: platform.name(),
            series: sdk::series_types(platform),
            workout_fields: WORKOUT_FIELDS,
            sleep_fields: SLEEP_FIELDS,
            menstrual_cycle_fields: &[],
            scores: &[],
        });
    }
    for p in crate::providers::all() {
        let c = p.coverage();
        all.push(Mapper {
            provider: p.name(),
            series: c
                .series
                .iter()
                .filter_map(|code| wearhouse_domain::series::by_code(code))
                .collect(),
            workout_fields: c.workout_fields,
            sleep_fields: c.sleep_fields,
            menstrual_cycle_fields: c.menstrual_cycle_fields,
            scores: c.scores,
        });
    }
    all
}

/// Catalog category → the contract's coverage category, in the contract's order.
const CATEGORIES: &[(&str, &str)] = &[
    ("Heart & Cardiovascular", "Heart & Cardiovascular"),
    ("Blood & Respiratory", "Blood & Respiratory"),
    ("Body Composition", "Body Composition"),
    ("Fitness", "Fitness Metrics"),
    ("Activity", "Activity - Basic"),
    ("Distance", "Activity - Distance"),
    ("Walking", "Activity - Walking"),
    ("Running", "Activity - Running"),
    ("Swimming", "Activity - Swimming"),
    ("Generic", "Activity - Generic"),
    ("Environmental", "Environmental"),
    ("Provider-Specific", "Provider-Specific"),
    ("Other", "Other"),
];

fn fields(mappers: &[Mapper], pick: impl Fn(&Mapper) -> &[&'static str]) -> Value {
    // Field order follows the first mapper that lists a field, so it reads like the item.
    let mut order: Vec<&str> = Vec::new();
    for m in mappers {
        for f in pick(m) {
            if !order.contains(f) {
                order.push(f);
            }
        }
    }
    Value::Array(
        order
            .into_iter()
            .map(|f| {
                let providers: BTreeSet<&str> = mappers
                    .iter()
                    .filter(|m| pick(m).contains(&f))
                    .map(|m| m.provider)
                    .collect();
                json!({ "code": f, "providers": providers })
            })
            .collect(),
    )
}

fn build(mappers: &[Mapper]) -> Value {
    let providers: BTreeSet<&str> = mappers.iter().map(|m| m.provider).collect();
    let timeseries: Vec<Value> = CATEGORIES
        .iter()
        .filter_map(|&(catalog, name)| {
            let mut types: Vec<&SeriesType> = mappers
                .iter()
                .flat_map(|m| m.series.iter().copied())
                .filter(|t| t.category == catalog)
                .collect();
            types.sort_by_key(|t| t.id);
            types.dedup_by_key(|t| t.id);
            if types.is_empty() {
                return None;
            }
            let metrics: Vec<Value> = types
                .iter()
                .map(|t| {
                    let providers: BTreeSet<&str> = mappers
                        .iter()
                        .filter(|m| m.series.iter().any(|s| s.id == t.id))
                        .map(|m| m.provider)
                        .collect();
                    json!({ "code": t.code, "unit": t.unit, "providers": providers })
                })
                .collect();
            Some(json!({ "name": name, "metrics": metrics }))
        })
        .collect();
    json!({
        "providers": providers,
        "timeseries": timeseries,
        "workout_fields": fields(mappers, |m| m.workout_fields),
        "sleep_fields": fields(mappers, |m| m.sleep_fields),
        "menstrual_cycle_fields": fields(mappers, |m| m.menstrual_cycle_fields),
        "health_scores": health_scores(mappers),
    })
}

/// Score categories and who computes them: the platform's own (`internal`, from any source's
/// sleep and HRV) and each provider's.
fn health_scores(mappers: &[Mapper]) -> Value {
    let mut by_code: Vec<(&str, BTreeSet<&str>)> = vec![
        ("sleep", BTreeSet::from(["internal"])),
        ("resilience", BTreeSet::from(["internal"])),
    ];
    for m in mappers {
        for code in m.scores {
            match by_code.iter_mut().find(|(c, _)| c == code) {
                Some((_, providers)) => {
                    providers.insert(m.provider);
                }
                None => by_code.push((code, BTreeSet::from([m.provider]))),
            }
        }
    }
    by_code
        .into_iter()
        .map(|(code, providers)| json!({ "code": code, "providers": providers }))
        .collect()
}

pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| build(&mappers()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wearhouse_domain::series::{by_code, by_id, SERIES_TYPES};

    #[test]
    fn every_catalog_category_has_a_contract_name() {
        for t in &SERIES_TYPES {
            assert!(
                CATEGORIES.iter().any(|(c, _)| *c == t.category),
                "{} has category {}",
                t.code,
                t.category
            );
        }
    }

    #[test]
    fn document_lists_what_the_importer_and_every_provider_map_in_contract_order() {
        let doc = document();
        assert_eq!(
            doc["providers"],
            json!([
                "apple",
                "fitbit",
                "garmin",
                "google",
                "oura",
                "samsung",
                "strava",
                "ultrahuman",
                "whoop"
            ])
        );
        let listed: Vec<&str> = doc["timeseries"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["metrics"].as_array().unwrap())
            .map(|m| m["code"].as_str().unwrap())
            .collect();
        let mut mapped: BTreeSet<&str> = crate::ingest::apple::series_types()
            .iter()
            .map(|t| t.code)
            .collect();
        for p in crate::providers::all() {
            for code in p.coverage().series {
                assert!(by_code(code).is_some(), "{}: {code} is no series", p.name());
                mapped.insert(code);
            }
        }
        for platform in crate::ingest::sdk::Platform::ALL {
            mapped.extend(
                crate::ingest::sdk::series_types(platform)
                    .iter()
                    .map(|t| t.code),
            );
        }
        assert_eq!(listed.len(), mapped.len());
        assert_eq!(listed.iter().copied().collect::<BTreeSet<_>>(), mapped);
        assert!(listed.contains(&"energy") && !listed.contains(&"active_energy"));
        // Categories appear in the contract's order.
        let names: Vec<&str> = doc["timeseries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let positions: Vec<usize> = names
            .iter()
            .map(|n| CATEGORIES.iter().position(|(_, c)| c == n).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        assert_eq!(names[0], "Heart & Cardiovascular");
        let hr = &doc["timeseries"][0]["metrics"][0];
        assert_eq!(
            hr,
            &json!({"code": "heart_rate", "unit": "bpm", "providers": ["apple", "garmin", "google", "oura", "samsung", "strava", "ultrahuman"]})
        );
        assert_eq!(
            doc["workout_fields"][0],
            json!({"code": "type", "providers": ["apple", "fitbit", "garmin", "google", "oura", "samsung", "strava", "whoop"]})
        );
        // Garmin's cycle summaries carry more than Apple's flow records give.
        let cycles = doc["menstrual_cycle_fields"].as_array().unwrap();
        let providers_of = |code: &str| {
            cycles
                .iter()
                .find(|f| f["code"] == code)
                .map(|f| f["providers"].clone())
        };
        assert_eq!(
            providers_of("cycle_length"),
            Some(json!(["apple", "garmin"]))
        );
        assert_eq!(providers_of("current_phase"), Some(json!(["garmin"])));
        assert_eq!(
            doc["health_scores"],
            json!([
                {"code": "sleep", "providers": ["garmin", "internal", "oura", "whoop"]},
                {"code": "resilience", "providers": ["internal"]},
                {"code": "activity", "providers": ["oura"]},
                {"code": "readiness", "providers": ["oura"]},
                {"code": "recovery", "providers": ["whoop"]},
                {"code": "strain", "providers": ["whoop"]},
                {"code": "stress", "providers": ["garmin"]},
            ])
        );
    }

    /// What each provider declares is what its mapper produces: every series and score
    /// category the mapper yields from the simulator's realistic payloads is declared.
    #[test]
    fn provider_coverage_matches_their_mappers_on_the_simulators_payloads() {
        use std::collections::HashMap;
        let user = uuid::Uuid::nil();
        let q: HashMap<String, String> = [
            ("start_date".to_string(), "2026-03-01".to_string()),
            ("end_date".to_string(), "2026-03-03".to_string()),
        ]
        .into();
        for p in crate::providers::all() {
            let c = p.coverage();
            let bodies: Vec<(String, Value)> = match p.name() {
                "oura" => p
                    .as_pull()
                    .map(|pull| pull.data_types())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| {
                        crate::simulator::oura::records(t, &q)
                            .map(|items| (t.to_string(), json!({ "data": items })))
                    })
                    .collect(),
                "whoop" => p
                    .as_pull()
                    .map(|pull| pull.data_types())
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        let records = crate::simulator::whoop::records(t, &q);
                        (t.to_string(), json!({ "records": records }))
                    })
                    .collect(),
                "strava" => {
                    let listed = crate::simulator::strava::activities(1_772_323_200, 1_772_496_000);
                    let pull = p.as_pull().expect("strava pulls");
                    let mut bodies = vec![("activity".to_string(), Value::Array(listed.clone()))];
                    for (kind, request) in pull.follow_ups("activity", &Value::Array(listed)) {
                        let id = request.path.split('/').nth(2).unwrap_or_default();
                        let streams = crate::simulator::strava::streams_of(id).expect("streams");
                        bodies.push((kind, streams));
                    }
                    bodies
                }
                "ultrahuman" => ["2026-03-01", "2026-03-02"]
                    .iter()
                    .map(|d| {
                        let day = crate::simulator::ultrahuman::metrics(d.parse().unwrap());
                        ("metrics".to_string(), serde_json::to_value(day).unwrap())
                    })
                    .collect(),
                "fitbit" => vec![(
                    "activities".to_string(),
                    serde_json::to_value(crate::simulator::fitbit::list(
                        "2026-03-01".parse().unwrap(),
                        0,
                        3,
                    ))
                    .unwrap(),
                )],
                _ => crate::providers::garmin::PUSH_TYPES
                    .iter()
                    .map(|t| {
                        let items =
                            crate::simulator::garmin::items(t, 1_772_323_200, 1_772_496_000);
                        (t.to_string(), Value::Array(items))
                    })
                    .collect(),
            };
            let (mut series, mut scores) = (BTreeSet::new(), BTreeSet::new());
            for (kind, body) in &bodies {
                let m = p
                    .map(kind, body, user)
                    .unwrap_or_else(|e| panic!("{} {kind}: {e}", p.name()));
                series.extend(m.samples.iter().map(|s| s.series));
                scores.extend(m.scores.iter().map(|s| s.category.clone()));
            }
            // Fitbit maps workouts only (no series yet).
            assert!(
                !series.is_empty() || (p.name() == "fitbit" && c.series.is_empty()),
                "{}: the simulator maps to nothing",
                p.name()
            );
            for s in &series {
                assert!(
                    c.series.contains(s),
                    "{} maps {s} but does not declare it",
                    p.name()
                );
            }
            for s in &scores {
                assert!(
                    c.scores.contains(&s.as_str()),
                    "{} scores {s} but does not declare it",
                    p.name()
                );
            }
        }
    }

    #[test]
    fn providers_merge_per_metric() {
        let one = |p, ids: &[i16]| Mapper {
            provider: p,
            series: ids.iter().map(|&i| by_id(i).unwrap()).collect(),
            workout_fields: &["type"],
            sleep_fields: &[],
            menstrual_cycle_fields: &[],
            scores: &[],
        };
        let doc = build(&[one("oura", &[1, 80]), one("apple", &[1])]);
        assert_eq!(doc["providers"], json!(["apple", "oura"]));
        assert_eq!(
            doc["timeseries"][0]["metrics"][0]["providers"],
            json!(["apple", "oura"])
        );
        assert_eq!(doc["timeseries"][1]["name"], "Activity - Basic");
        assert_eq!(
            doc["workout_fields"],
            json!([{"code": "type", "providers": ["apple", "oura"]}])
        );
    }
}
