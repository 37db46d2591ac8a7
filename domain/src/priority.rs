//! Source priorities (reference §3.1): which provider and which kind of device wins where
//! sources overlap. 1 is best. Changes are events on the one `Priorities` stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const DEFAULT_PROVIDERS: [(&str, i32); 5] = [
    ("apple", 1),
    ("garmin", 2),
    ("polar", 3),
    ("suunto", 4),
    ("whoop", 5),
];
pub const DEFAULT_DEVICE_TYPES: [(&str, i32); 7] = [
    ("watch", 1),
    ("band", 2),
    ("ring", 3),
    ("phone", 4),
    ("scale", 5),
    ("other", 6),
    ("unknown", 99),
];
/// Providers the platform knows (the contract's ProviderName values).
pub const PROVIDERS: [&str; 16] = [
    "apple",
    "garmin",
    "polar",
    "suunto",
    "whoop",
    "oura",
    "strava",
    "fitbit",
    "ultrahuman",
    "sensorbio",
    "google",
    "samsung",
    "coros",
    "withings",
    "internal",
    "unknown",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PriorityEvent {
    ProviderPrioritiesSet { priorities: BTreeMap<String, i32> },
    DeviceTypePrioritiesSet { priorities: BTreeMap<String, i32> },
}

impl PriorityEvent {
    pub const AGGREGATE_TYPE: &'static str = "Priorities";
    pub const STREAM: &'static str = "global";

    pub fn event_type(&self) -> &'static str {
        match self {
            PriorityEvent::ProviderPrioritiesSet { .. } => "ProviderPrioritiesSet",
            PriorityEvent::DeviceTypePrioritiesSet { .. } => "DeviceTypePrioritiesSet",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriorityError {
    #[error("Invalid provider: '{0}'")]
    UnknownProvider(String),
    #[error("Invalid device type: '{0}'")]
    UnknownDeviceType(String),
    #[error("Priority must be between 1 and 100, got {0}")]
    OutOfRange(i32),
    #[error("No priorities given")]
    Empty,
}

fn check(
    items: &[(String, i32)],
    known: &dyn Fn(&str) -> bool,
    unknown: fn(String) -> PriorityError,
) -> Result<BTreeMap<String, i32>, PriorityError> {
    if items.is_empty() {
        return Err(PriorityError::Empty);
    }
    let mut out = BTreeMap::new();
    for (name, p) in items {
        let name = name.trim().to_lowercase();
        if !known(&name) {
            return Err(unknown(name));
        }
        if !(1..=100).contains(p) {
            return Err(PriorityError::OutOfRange(*p));
        }
        out.insert(name, *p);
    }
    Ok(out)
}

/// Validates a change of provider priorities (one or many).
pub fn set_providers(items: &[(String, i32)]) -> Result<PriorityEvent, PriorityError> {
    check(
        items,
        &|n| PROVIDERS.contains(&n),
        PriorityError::UnknownProvider,
    )
    .map(|priorities| PriorityEvent::ProviderPrioritiesSet { priorities })
}

/// Validates a change of device-type priorities (one or many).
pub fn set_device_types(items: &[(String, i32)]) -> Result<PriorityEvent, PriorityError> {
    check(
        items,
        &|n| DEFAULT_DEVICE_TYPES.iter().any(|(d, _)| *d == n),
        PriorityError::UnknownDeviceType,
    )
    .map(|priorities| PriorityEvent::DeviceTypePrioritiesSet { priorities })
}

/// The effective priorities: defaults overridden by what was set.
#[derive(Debug, Clone, PartialEq)]
pub struct Priorities {
    pub providers: BTreeMap<String, i32>,
    pub device_types: BTreeMap<String, i32>,
}

impl Default for Priorities {
    fn default() -> Self {
        Priorities {
            providers: DEFAULT_PROVIDERS
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            device_types: DEFAULT_DEVICE_TYPES
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

impl Priorities {
    pub fn provider(&self, provider: &str) -> i32 {
        // Providers without a priority rank after every one that has one.
        self.providers
            .get(provider)
            .copied()
            .unwrap_or_else(|| self.providers.values().max().copied().unwrap_or(0) + 1)
    }

    pub fn device_type(&self, device_type: Option<&str>) -> i32 {
        self.device_types
            .get(device_type.unwrap_or("unknown"))
            .copied()
            .unwrap_or(99)
    }

    /// One sortable rank of a source: provider first, then device type.
    pub fn rank(&self, provider: &str, device_type: Option<&str>) -> u32 {
        (self.provider(provider).max(0) as u32) * 1000 + self.device_type(device_type).max(0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranks() {
        let p = Priorities::default();
        assert_eq!(p.provider("apple"), 1);
        assert_eq!(p.provider("oura"), 6);
        assert_eq!(p.device_type(Some("watch")), 1);
        assert_eq!(p.device_type(None), 99);
        assert!(p.rank("apple", Some("watch")) < p.rank("apple", Some("phone")));
        assert!(p.rank("apple", Some("phone")) < p.rank("garmin", Some("watch")));
    }

    #[test]
    fn validation() {
        assert_eq!(
            set_providers(&[("Oura".into(), 2)]).unwrap(),
            PriorityEvent::ProviderPrioritiesSet {
                priorities: [("oura".to_string(), 2)].into_iter().collect()
            }
        );
        assert_eq!(
            set_providers(&[("nope".into(), 2)]),
            Err(PriorityError::UnknownProvider("nope".into()))
        );
        assert_eq!(
            set_device_types(&[("ring".into(), 0)]),
            Err(PriorityError::OutOfRange(0))
        );
        assert_eq!(set_device_types(&[]), Err(PriorityError::Empty));
    }
}
