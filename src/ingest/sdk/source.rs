//! The contract's `SourceInfo` (the app and device that wrote a record) → a data source.

use serde::Deserialize;
use uuid::Uuid;
use wearhouse_domain::records::DataSourceInfo;

use super::envelope::Platform;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsVersion {
    pub major_version: i64,
    pub minor_version: i64,
    pub patch_version: i64,
}

/// Every field optional, unknown fields ignored, as upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceInfo {
    pub app_id: Option<String>,
    pub name: Option<String>,
    pub bundle_identifier: Option<String>,
    pub version: Option<String>,
    pub product_type: Option<String>,
    pub operating_system_version: Option<OsVersion>,
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    pub device_manufacturer: Option<String>,
    pub device_type: Option<String>,
    pub device_model: Option<String>,
    pub device_hardware_version: Option<String>,
    pub device_software_version: Option<String>,
}

/// Longest kept text of a source field (SDK input is untrusted).
const MAX_FIELD: usize = 200;

fn clean(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(MAX_FIELD).collect())
}

/// The contract's device types → the device types source priorities rank.
fn device_type(t: Option<&str>) -> &'static str {
    match t.map(str::to_ascii_lowercase).as_deref() {
        Some("watch") => "watch",
        Some("phone") => "phone",
        Some("ring") => "ring",
        Some("scale") => "scale",
        Some("fitness_band") | Some("band") => "band",
        Some("chest_strap") | Some("head_mounted") | Some("smart_display") => "other",
        _ => "unknown",
    }
}

/// The data source of a record: device model = deviceModel or productType, source name =
/// name, deviceName, appId or bundleIdentifier, software version = "major.minor.patch"
/// (reference §6).
pub fn data_source(user: Uuid, platform: Platform, s: Option<&SourceInfo>) -> DataSourceInfo {
    let empty = SourceInfo::default();
    let s = s.unwrap_or(&empty);
    let model = clean(&s.device_model).or_else(|| clean(&s.product_type));
    let name = clean(&s.name)
        .or_else(|| clean(&s.device_name))
        .or_else(|| clean(&s.app_id))
        .or_else(|| clean(&s.bundle_identifier))
        .unwrap_or_else(|| platform.default_source().to_string());
    let software = s
        .operating_system_version
        .as_ref()
        .map(|v| {
            format!(
                "{}.{}.{}",
                v.major_version, v.minor_version, v.patch_version
            )
        })
        .or_else(|| clean(&s.device_software_version));
    DataSourceInfo {
        id: DataSourceInfo::id_for(user, platform.name(), model.as_deref(), Some(&name)),
        provider: platform.name().into(),
        source: clean(&s.bundle_identifier).or_else(|| clean(&s.app_id)),
        original_source_name: Some(name),
        device_model: model,
        device_name: clean(&s.device_name),
        manufacturer: clean(&s.device_manufacturer),
        hardware: clean(&s.device_hardware_version),
        software_version: software,
        device_type: Some(device_type(s.device_type.as_deref()).into()),
    }
}
