//! The writers of an export: HealthKit source (app) and device, parsed once per distinct source.

/// Kind of hardware behind a source, used for device-type priority in dedup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    Watch,
    Phone,
    Ring,
    Scale,
    Band,
    Other,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Watch => "watch",
            DeviceType::Phone => "phone",
            DeviceType::Ring => "ring",
            DeviceType::Scale => "scale",
            DeviceType::Band => "band",
            DeviceType::Other => "other",
        }
    }
}

/// Fields of HealthKit's device description
/// `<<HKDevice: 0x…>, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,1, software:9.5>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub hardware: Option<String>,
    pub software: Option<String>,
}

/// One interned writer: samples refer to it by its index in the parser's source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub source_name: String,
    pub source_version: Option<String>,
    pub device: Option<Device>,
    pub device_type: DeviceType,
}

impl Source {
    pub fn new(source_name: String, source_version: Option<String>, device: Option<&str>) -> Self {
        let device = device.and_then(parse_device);
        let device_type = guess_device_type(&source_name, device.as_ref());
        Source {
            source_name,
            source_version,
            device,
            device_type,
        }
    }
}

const KEYS: [&str; 8] = [
    "name",
    "manufacturer",
    "model",
    "hardware",
    "software",
    "firmware",
    "localIdentifier",
    "UDIDeviceIdentifier",
];

/// Parses an HKDevice description; `None` when it has none of the known fields.
///
/// Values may contain commas (`hardware:Watch6,1`, `manufacturer:Apple Inc.`), so a field ends only
/// where `, <known key>:` begins.
pub fn parse_device(s: &str) -> Option<Device> {
    let s = s.trim();
    let body = match s.strip_prefix("<<HKDevice") {
        Some(rest) => rest.split_once(">, ").map(|(_, b)| b).unwrap_or(""),
        None => s,
    };
    let body = body.strip_suffix('>').unwrap_or(body);
    let mut device = Device::default();
    let mut found = false;
    let mut rest = body;
    while let Some((key, after)) = rest.split_once(':') {
        let key = key.trim();
        let end = next_field(after).unwrap_or(after.len());
        let value = after[..end].trim();
        let slot = match key {
            "name" => &mut device.name,
            "manufacturer" => &mut device.manufacturer,
            "model" => &mut device.model,
            "hardware" => &mut device.hardware,
            "software" => &mut device.software,
            _ => &mut None,
        };
        if !value.is_empty() {
            *slot = Some(value.to_string());
            found |= KEYS[..5].contains(&key);
        }
        rest = after[end..].trim_start_matches(',');
    }
    found.then_some(device)
}

/// Byte offset in `s` of the `,` that starts the next `key:` field.
fn next_field(s: &str) -> Option<usize> {
    s.match_indices(", ").map(|(i, _)| i).find(|&i| {
        let tail = &s[i + 2..];
        KEYS.iter()
            .any(|k| tail.strip_prefix(k).is_some_and(|t| t.starts_with(':')))
    })
}

/// Guesses the hardware kind from device model/name/hardware and the source (app) name.
pub fn guess_device_type(source_name: &str, device: Option<&Device>) -> DeviceType {
    let mut hay = source_name.to_lowercase();
    if let Some(d) = device {
        for f in [&d.model, &d.name, &d.hardware, &d.manufacturer]
            .into_iter()
            .flatten()
        {
            hay.push(' ');
            hay.push_str(&f.to_lowercase());
        }
    }
    let has = |words: &[&str]| words.iter().any(|w| hay.contains(w));
    if has(&["watch", "garmin fenix", "forerunner"]) {
        DeviceType::Watch
    } else if has(&["oura", "ring", "ultrahuman"]) {
        DeviceType::Ring
    } else if has(&["scale", "withings body", "renpho", "eufy", "body+", "index"]) {
        DeviceType::Scale
    } else if has(&["whoop", "band", "fitbit", "vivosmart", "polar h", "strap"]) {
        DeviceType::Band
    } else if has(&["iphone", "phone", "pixel"]) {
        DeviceType::Phone
    } else {
        DeviceType::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_apple_watch_device_string() {
        let d = parse_device(
            "<<HKDevice: 0x283ca8f00>, name:Apple Watch, manufacturer:Apple Inc., model:Watch, \
             hardware:Watch6,1, software:9.5>",
        )
        .unwrap();
        assert_eq!(d.name.as_deref(), Some("Apple Watch"));
        assert_eq!(d.manufacturer.as_deref(), Some("Apple Inc."));
        assert_eq!(d.model.as_deref(), Some("Watch"));
        assert_eq!(d.hardware.as_deref(), Some("Watch6,1"));
        assert_eq!(d.software.as_deref(), Some("9.5"));
    }

    #[test]
    fn partial_and_extra_fields() {
        let d = parse_device(
            "<<HKDevice: 0x1>, name:Smart Scale, manufacturer:Acme, localIdentifier:AB:CD, firmware:1.2>",
        )
        .unwrap();
        assert_eq!(d.name.as_deref(), Some("Smart Scale"));
        assert_eq!(d.manufacturer.as_deref(), Some("Acme"));
        assert_eq!(d.model, None);
        assert_eq!(parse_device("<<HKDevice: 0x1>>"), None);
        assert_eq!(parse_device(""), None);
    }

    #[test]
    fn device_type_guesses() {
        let watch = Source::new(
            "Anna’s Apple Watch".into(),
            Some("9.5".into()),
            Some("<<HKDevice: 0x2>, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,1, software:9.5>"),
        );
        assert_eq!(watch.device_type, DeviceType::Watch);
        let phone = Source::new(
            "Anna’s iPhone".into(),
            None,
            Some("<<HKDevice: 0x3>, name:iPhone, manufacturer:Apple Inc., model:iPhone, hardware:iPhone14,2, software:17.2>"),
        );
        assert_eq!(phone.device_type, DeviceType::Phone);
        assert_eq!(guess_device_type("Oura", None), DeviceType::Ring);
        assert_eq!(guess_device_type("Withings Body+", None), DeviceType::Scale);
        assert_eq!(guess_device_type("WHOOP", None), DeviceType::Band);
        assert_eq!(guess_device_type("MyFitnessPal", None), DeviceType::Other);
        assert_eq!(DeviceType::Scale.as_str(), "scale");
    }
}
