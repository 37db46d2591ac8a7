//! Fitbit Web API payloads, as the mapper reads them and the simulator writes them.

use serde::{Deserialize, Serialize};

use crate::providers::payload::{ExternalId, Lenient, Num, Text};

/// `/1/user/-/profile.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub user: Lenient<ProfileUser>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProfileUser {
    pub encoded_id: Text,
    pub display_name: Text,
}

/// `/1/user/-/activities/list.json`: one page of logged activities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityList {
    pub activities: Vec<serde_json::Value>,
    pub pagination: Lenient<Pagination>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Pagination {
    pub after_date: Text,
    pub limit: Num,
    /// The next page's URL; empty at the end.
    pub next: Text,
    pub offset: Num,
    pub previous: Text,
    pub sort: Text,
}

/// One logged activity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Activity {
    pub log_id: ExternalId,
    pub activity_name: Text,
    pub activity_type_id: Num,
    /// Local time with its offset (`2026-03-01T07:00:00.000-05:00`).
    pub start_time: Text,
    /// Milliseconds.
    pub duration: Num,
    pub active_duration: Num,
    pub calories: Num,
    /// Kilometers (no `Accept-Language` is sent, so units are metric).
    pub distance: Num,
    pub distance_unit: Text,
    pub steps: Num,
    pub average_heart_rate: Num,
    pub log_type: Text,
    pub source: Lenient<Source>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Source {
    pub id: Text,
    pub name: Text,
    #[serde(rename = "type")]
    pub kind: Text,
}
