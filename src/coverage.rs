//! `/meta/coverage`: built from what the code actually maps. Nothing is claimed for a provider
//! or importer until its mapper exists; each one registers its coverage here.

use std::sync::OnceLock;

use serde_json::{json, Value};

/// (provider, series codes it maps) for every mapper compiled into this build.
fn mapped() -> Vec<(&'static str, Vec<&'static str>)> {
    Vec::new()
}

pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mapped = mapped();
        let mut providers: Vec<&str> = mapped.iter().map(|(p, _)| *p).collect();
        providers.sort();
        json!({
            "providers": providers,
            "timeseries": [],
            "workout_fields": [],
            "sleep_fields": [],
            "menstrual_cycle_fields": [],
            "health_scores": [],
        })
    })
}
