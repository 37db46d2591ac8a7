//! Mobile SDK sync batches (`POST /api/v1/sdk/users/{user_id}/sync`, reference §6) → the
//! records every other path produces ([`Mapped`]): pure, no I/O. Each record is checked on its
//! own: a bad one is dropped and counted with its reason, the rest are kept. Ids derive from
//! what a record is (source, series, time), so a batch sent twice maps to the same records.

pub mod envelope;
pub mod generate;
pub mod records;
pub mod sleep;
pub mod source;
pub mod time;
pub mod workouts;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;
use wearhouse_domain::records::{record_id, WorkoutRecord};
use wearhouse_domain::series;

use crate::ingest::sleep_sessions::Interval;
use crate::providers::mapped::{plausible, Mapped};
pub use envelope::{Envelope, EnvelopeError, Platform};
use source::SourceInfo;

/// Bumped when the mapping changes what a stored batch maps to.
pub const MAPPING_VERSION: u32 = 1;

/// Every series type `platform`'s batches can produce (`/meta/coverage`).
pub fn series_types(platform: Platform) -> Vec<&'static series::SeriesType> {
    let mut out = match platform {
        Platform::Apple => crate::ingest::apple::series_types(),
        Platform::Google | Platform::Samsung => records::android_series(),
    };
    out.extend(
        workouts::SAMPLE_SERIES
            .iter()
            .filter_map(|c| series::by_code(c)),
    );
    out.sort_by_key(|s| s.id);
    out.dedup_by_key(|s| s.id);
    out
}

/// Records dropped from a batch, by reason (`records: unsupported type`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub count: u64,
    pub reasons: BTreeMap<String, u64>,
}

impl Dropped {
    fn add(&mut self, list: &str, reason: &str) {
        self.count += 1;
        *self.reasons.entry(format!("{list}: {reason}")).or_default() += 1;
    }
}

/// What one batch maps to.
#[derive(Debug, Default)]
pub struct Batch {
    /// Sources, samples and workouts, ready for the data writer.
    pub mapped: Mapped,
    /// Sleep stage intervals per data source: sessions are assembled with what the log holds
    /// ([`sleep::assemble`]).
    pub sleep: BTreeMap<Uuid, Vec<Interval>>,
    pub records_saved: u64,
    pub workouts_saved: u64,
    pub sleep_saved: u64,
    pub dropped: Dropped,
}

/// The fields every record kind has: its times, zone and source (kept unparsed: records of
/// one source repeat it, and it is parsed once per distinct text).
struct Common<'a> {
    start_date: Option<&'a str>,
    end_date: Option<&'a str>,
    zone_offset: Option<&'a str>,
}

// Strings are borrowed where the JSON has no escapes; `Cow` takes the rest.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricRecord<'a> {
    #[serde(borrow)]
    start_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    zone_offset: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    value: Option<Value>,
    #[serde(borrow)]
    unit: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SleepRecord<'a> {
    #[serde(borrow)]
    start_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    zone_offset: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(borrow)]
    stage: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Workout<'a> {
    #[serde(borrow)]
    start_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    zone_offset: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    id: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
    title: Option<String>,
    notes: Option<String>,
    values: Option<Vec<Value>>,
}

macro_rules! common {
    ($r:expr) => {
        Common {
            start_date: $r.start_date.as_deref(),
            end_date: $r.end_date.as_deref(),
            zone_offset: $r.zone_offset.as_deref(),
        }
    };
}

/// Times and zone of one record: start, end, offset in minutes.
type Span = (DateTime<Utc>, DateTime<Utc>, i16);

fn span(c: &Common<'_>, now: DateTime<Utc>) -> Result<Span, &'static str> {
    let (start, start_offset) = c
        .start_date
        .and_then(time::parse_date)
        .ok_or("invalid startDate")?;
    let (end, _) = c
        .end_date
        .and_then(time::parse_date)
        .ok_or("invalid endDate")?;
    if end < start {
        return Err("endDate before startDate");
    }
    if !plausible(start, now) || !plausible(end, now) {
        return Err("implausible date");
    }
    let offset = match c.zone_offset {
        Some(z) => time::parse_offset(z).ok_or("invalid zoneOffset")?,
        None => start_offset.unwrap_or(0),
    };
    Ok((start, end, offset))
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

/// Data sources of one batch, each built once per distinct `source` text.
struct Sources<'a> {
    user: Uuid,
    platform: Platform,
    by_json: HashMap<Option<&'a str>, Uuid>,
    list: BTreeMap<Uuid, wearhouse_domain::records::DataSourceInfo>,
}

impl<'a> Sources<'a> {
    /// The data source a record's `source` names (one that does not parse counts as none
    /// given: upstream treats every field of it as optional).
    fn id(&mut self, raw: Option<&'a RawValue>) -> Uuid {
        let key = raw.map(RawValue::get).filter(|s| s.trim() != "null");
        if let Some(id) = self.by_json.get(&key) {
            return *id;
        }
        let parsed: Option<SourceInfo> = key.and_then(|s| serde_json::from_str(s).ok());
        let info = source::data_source(self.user, self.platform, parsed.as_ref());
        let id = info.id;
        self.list.entry(id).or_insert(info);
        self.by_json.insert(key, id);
        id
    }
}

/// Maps the records of a batch whose envelope is valid. `now` bounds plausible times.
pub fn map_batch<'a>(user: Uuid, env: &Envelope<'a>, now: DateTime<Utc>) -> Batch {
    let mut b = Batch::default();
    let mut sources = Sources {
        user,
        platform: env.platform,
        by_json: HashMap::new(),
        list: BTreeMap::new(),
    };
    for raw in &env.records {
        let Ok(r) = serde_json::from_str::<MetricRecord<'a>>(raw.get()) else {
            b.dropped.add("records", "malformed record");
            continue;
        };
        let Some(kind) = r.kind.as_deref().filter(|k| !k.is_empty()) else {
            b.dropped.add("records", "missing type");
            continue;
        };
        let Some(value) = number(r.value.as_ref()) else {
            b.dropped.add("records", "invalid value");
            continue;
        };
        let (start, end, offset) = match span(&common!(r), now) {
            Ok(s) => s,
            Err(reason) => {
                b.dropped.add("records", reason);
                continue;
            }
        };
        let (st, v) = match records::map_metric(kind, r.unit.as_deref().unwrap_or(""), value) {
            Ok(x) => x,
            Err(reject) => {
                b.dropped.add("records", reject.as_str());
                continue;
            }
        };
        let ds = sources.id(r.source);
        let daily_total = st.is_additive().then_some(false);
        b.mapped.sample(
            st.code,
            ds,
            start,
            (end > start).then_some(end),
            offset,
            v,
            daily_total,
        );
        b.records_saved += 1;
    }
    for raw in &env.workouts {
        let Ok(w) = serde_json::from_str::<Workout<'a>>(raw.get()) else {
            b.dropped.add("workouts", "malformed workout");
            continue;
        };
        let (start, end, offset) = match span(&common!(w), now) {
            Ok(s) => s,
            Err(reason) => {
                b.dropped.add("workouts", reason);
                continue;
            }
        };
        let ds = sources.id(w.source);
        let stats: Vec<workouts::Statistic> = w
            .values
            .iter()
            .flatten()
            .filter_map(|v| workouts::Statistic::deserialize(v).ok())
            .collect();
        let folded = workouts::fold(&stats);
        let wt = workouts::workout_type(w.kind.as_deref());
        let mut metadata = BTreeMap::new();
        for (k, v) in [
            ("title", &w.title),
            ("notes", &w.notes),
            ("sdk_type", &w.kind),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                metadata.insert(k.to_string(), v.chars().take(500).collect());
            }
        }
        if let Some(id) = w.id.as_ref().filter(|v| !v.is_null()) {
            let id = id.as_str().map_or_else(|| id.to_string(), str::to_string);
            metadata.insert("external_id".into(), id.chars().take(100).collect());
        }
        for (code, v) in &folded.samples {
            let additive = series::by_code(code).is_some_and(|s| s.is_additive());
            b.mapped
                .sample(code, ds, end, None, offset, *v, additive.then_some(false));
        }
        b.mapped.workouts.push(WorkoutRecord {
            // Upstream's dedup key: source, start and end.
            id: record_id(&[
                &ds.to_string(),
                "sdk_workout",
                &start.to_rfc3339(),
                &end.to_rfc3339(),
            ]),
            data_source_id: ds,
            workout_type: wt.as_str().into(),
            start,
            end,
            zone_offset: Some(offset),
            duration_s: folded
                .duration_s
                .or_else(|| Some((end - start).num_milliseconds() as f64 / 1000.0)),
            stats: folded.totals,
            metadata,
            laps: Vec::new(),
        });
        b.workouts_saved += 1;
    }
    for raw in &env.sleep {
        let Ok(s) = serde_json::from_str::<SleepRecord<'a>>(raw.get()) else {
            b.dropped.add("sleep", "malformed sleep record");
            continue;
        };
        let Some(stage) = s.stage.as_deref().and_then(sleep::stage) else {
            b.dropped.add("sleep", "unknown stage");
            continue;
        };
        let (start, end, offset) = match span(&common!(s), now) {
            Ok(x) => x,
            Err(reason) => {
                b.dropped.add("sleep", reason);
                continue;
            }
        };
        if end == start {
            b.dropped.add("sleep", "zero-length stage");
            continue;
        }
        let ds = sources.id(s.source);
        b.sleep.entry(ds).or_default().push(Interval {
            stage,
            start: start.timestamp_micros(),
            end: end.timestamp_micros(),
            zone_offset_min: offset,
        });
        b.sleep_saved += 1;
    }
    b.mapped.sources = sources.list.into_values().collect();
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-03-05T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn bad_records_are_dropped_with_their_reason_and_the_rest_kept() {
        let body = serde_json::to_vec(&json!({"provider": "google", "sdkVersion": "0.9.0",
            "syncTimestamp": "2026-03-02T08:00:00Z", "data": {
            "records": [
                {"type": "HEART_RATE", "value": 61, "unit": "bpm",
                 "startDate": "2026-03-01T08:00:00Z", "endDate": "2026-03-01T08:00:00Z",
                 "zoneOffset": "+01:00", "source": {"deviceModel": "Pixel Watch 2", "deviceType": "watch"}},
                {"type": "HEART_RATE", "value": "abc", "unit": "bpm",
                 "startDate": "2026-03-01T08:00:00Z", "endDate": "2026-03-01T08:00:00Z"},
                {"type": "MOOD", "value": 3, "unit": "",
                 "startDate": "2026-03-01T08:00:00Z", "endDate": "2026-03-01T08:00:00Z"},
                {"type": "STEP_COUNT", "value": 10, "unit": "count",
                 "startDate": "1970-01-01T00:00:00Z", "endDate": "1970-01-01T00:01:00Z"},
                "not an object"
            ],
            "sleep": [{"stage": "dreaming", "startDate": "2026-03-01T00:00:00Z", "endDate": "2026-03-01T01:00:00Z"}],
            "workouts": [{"type": "running", "startDate": "2026-03-01T09:00:00Z", "endDate": "2026-03-01T08:00:00Z"}]
        }}))
        .unwrap();
        let env = envelope::parse(&body).unwrap();
        let b = map_batch(Uuid::nil(), &env, now());
        assert_eq!(b.records_saved, 1);
        assert_eq!(b.mapped.samples[0].zone_offset, 60);
        assert_eq!(b.mapped.sources[0].device_type.as_deref(), Some("watch"));
        assert_eq!(b.dropped.count, 6);
        assert_eq!(b.dropped.reasons["records: invalid value"], 1);
        assert_eq!(b.dropped.reasons["records: unsupported type"], 1);
        assert_eq!(b.dropped.reasons["records: implausible date"], 1);
        assert_eq!(b.dropped.reasons["records: malformed record"], 1);
        assert_eq!(b.dropped.reasons["sleep: unknown stage"], 1);
        assert_eq!(b.dropped.reasons["workouts: endDate before startDate"], 1);
    }
}
