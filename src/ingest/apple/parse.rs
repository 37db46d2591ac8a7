//! The streaming `export.xml` parser: quick-xml events in, [`Sink`] calls out, no tree.
//!
//! Per record it allocates nothing in the steady state: the event buffer is reused, attribute
//! values are borrowed slices, the HealthKit type is resolved through a one-entry cache (exports
//! are grouped by type) and sources are interned by their raw bytes.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use chrono::NaiveDate;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use wearhouse_domain::workout_type::WorkoutType;

use super::dates::parse_apple_date;
use super::device::Source;
use super::limits::{
    EventGuard, LimitExceeded, Limits, MAX_DEPTH, MAX_MENSTRUAL_FLOWS, MAX_NAME_BYTES,
    MAX_WORKOUT_CHILDREN, MAX_WORKOUT_TEXT_BYTES,
};
use super::records::*;
use super::types::{self, QuantityMapping, BP_DIASTOLIC, BP_SYSTOLIC};
use super::units::{convert, duration_seconds, Conv};

/// Why an import failed. Positions are byte offsets into the (decompressed) XML.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("empty input: the file holds no XML")]
    Empty,
    #[error("malformed XML at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    #[error("truncated XML at byte {position}: {message}")]
    Truncated { position: u64, message: String },
    #[error("read error at byte {position}: {source}")]
    Io {
        position: u64,
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("cannot open export: {0}")]
    Open(#[from] std::io::Error),
    #[error("the zip archive holds no export.xml")]
    NoExportInZip,
    #[error("sink failed at byte {position}: {source}")]
    Sink { position: u64, source: SinkError },
    #[error("import limit reached at byte {position}: {message}")]
    Limit { position: u64, message: String },
}

impl ImportError {
    /// The byte offset the error refers to, if it has one.
    pub fn position(&self) -> Option<u64> {
        match self {
            ImportError::Malformed { position, .. }
            | ImportError::Truncated { position, .. }
            | ImportError::Io { position, .. }
            | ImportError::Sink { position, .. }
            | ImportError::Limit { position, .. } => Some(*position),
            _ => None,
        }
    }
}

/// The result of a successful parse.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub counts: Counts,
    /// Interned sources; `Sample::source` etc. index this.
    pub sources: Vec<Source>,
    /// Bytes of XML read.
    pub bytes: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Quantity(&'static QuantityMapping),
    Sleep,
    MenstrualFlow,
    Unknown,
}

struct CorrelationCtx {
    start: Option<(i64, i16)>,
    end: Option<(i64, i16)>,
}

#[derive(Default)]
struct WorkoutBuilder {
    hk_type: String,
    source: u32,
    start: Option<(i64, i16)>,
    end: Option<(i64, i16)>,
    duration_s: Option<f64>,
    legacy_distance_m: Option<f64>,
    legacy_energy_kcal: Option<f64>,
    stats: WorkoutStats,
    events: Vec<WorkoutEvent>,
    metadata: Vec<(String, String)>,
    /// Bytes of text held in `events` and `metadata`.
    held: usize,
}

enum Ctx {
    Top,
    Workout(Box<WorkoutBuilder>),
    Correlation(CorrelationCtx),
    /// A flow record with children: its `HKMenstrualCycleStart` metadata comes before its end.
    Flow(MenstrualFlow),
}

struct State {
    counts: Counts,
    per_series: Vec<u64>,
    sources: Vec<Source>,
    source_ids: HashMap<Vec<u8>, u32>,
    key: Vec<u8>,
    last_key: Vec<u8>,
    last_source: u32,
    last_type: Vec<u8>,
    last_kind: Kind,
    unknown: HashMap<Vec<u8>, u64>,
    bp_seen: HashSet<(i16, u32, i64, i64)>,
    position: u64,
    limits: Limits,
    /// Bytes of source and unknown type names held (each may be up to one XML event long).
    held_names: usize,
}

fn malformed(position: u64, message: impl Into<String>) -> ImportError {
    ImportError::Malformed {
        position,
        message: message.into(),
    }
}

fn xml_error(e: quick_xml::Error, position: u64) -> ImportError {
    use quick_xml::errors::SyntaxError;
    match e {
        quick_xml::Error::Io(source) => match LimitExceeded::find(&source) {
            Some(limit) => ImportError::Limit {
                position,
                message: limit.0.clone(),
            },
            None => ImportError::Io { position, source },
        },
        quick_xml::Error::Syntax(
            s @ (SyntaxError::UnclosedTag
            | SyntaxError::UnclosedComment
            | SyntaxError::UnclosedCData
            | SyntaxError::UnclosedDoctype
            | SyntaxError::UnclosedPI
            | SyntaxError::UnclosedXmlDecl
            | SyntaxError::UnclosedSingleQuotedAttributeValue
            | SyntaxError::UnclosedDoubleQuotedAttributeValue),
        ) => ImportError::Truncated {
            position,
            message: s.to_string(),
        },
        other => malformed(position, other.to_string()),
    }
}

fn sink_err(position: u64) -> impl FnOnce(SinkError) -> ImportError {
    move |source| ImportError::Sink { position, source }
}

/// Appends the identity of a raw (escaped) HKDevice description to `key`: its fields without the
/// leading `<<HKDevice: 0x…>, ` object address and without `software:…`. Runs for every record
/// (each one prints its own address), so it only hops between the few commas: no allocation,
/// no substring search.
fn device_identity(device: &[u8], key: &mut Vec<u8>) {
    const SOFTWARE: &[u8] = b"software:";
    let comma = |s: &[u8], from: usize| s[from..].iter().position(|&c| c == b',').map(|i| from + i);
    let mut body = device;
    if body.starts_with(b"&lt;&lt;HKDevice") || body.starts_with(b"<<HKDevice") {
        // The address holds no comma: the fields start after the first one.
        body = match comma(body, 0) {
            Some(i) => body[i + 1..].strip_prefix(b" ").unwrap_or(&body[i + 1..]),
            None => b"",
        };
    }
    // Where the value of a `software:` field starting at `at` ends: at the next field or the
    // closing `>` (escaped or not).
    let value_end = |at: usize| {
        let v = at + SOFTWARE.len();
        body[v..]
            .iter()
            .position(|&c| matches!(c, b',' | b'>' | b'&'))
            .map_or(body.len(), |i| v + i)
    };
    let mut copied = 0;
    let mut from = 0;
    if body.starts_with(SOFTWARE) {
        copied = value_end(0);
        from = copied;
    }
    while let Some(at) = comma(body, from) {
        if body[at + 1..].starts_with(b" software:") {
            key.extend_from_slice(&body[copied..at]);
            copied = value_end(at + 2);
            from = copied;
        } else {
            from = at + 1;
        }
    }
    key.extend_from_slice(&body[copied..]);
}

/// quick-xml hands out validated `str`s; the parser works on bytes.
fn b(v: Cow<'_, str>) -> Cow<'_, [u8]> {
    match v {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

fn number(v: &[u8]) -> Result<f64, SkipReason> {
    if v.is_empty() {
        return Err(SkipReason::EmptyValue);
    }
    let s = std::str::from_utf8(v).map_err(|_| SkipReason::NotANumber)?;
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(SkipReason::NotANumber),
    }
}

fn opt_number(v: Option<&Cow<'_, [u8]>>) -> Option<f64> {
    v.and_then(|v| number(v).ok())
}

fn unescape(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    match quick_xml::escape::unescape(&s) {
        Ok(u) => u.into_owned(),
        Err(_) => s.into_owned(),
    }
}

fn date(v: &[u8]) -> Option<NaiveDate> {
    let s = std::str::from_utf8(v).ok()?;
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// `"1234 cm"`-style metadata quantities.
fn quantity_string(v: &str, conv: Conv) -> Option<f64> {
    let (num, unit) = v.trim().split_once(' ')?;
    convert(conv, unit.trim().as_bytes(), num.parse().ok()?)
}

impl State {
    fn limit(&self, message: String) -> ImportError {
        ImportError::Limit {
            position: self.position,
            message,
        }
    }

    fn new(limits: Limits) -> Self {
        State {
            limits,
            held_names: 0,
            counts: Counts::default(),
            per_series: vec![0; 1024],
            sources: Vec::new(),
            source_ids: HashMap::new(),
            key: Vec::with_capacity(256),
            last_key: Vec::with_capacity(256),
            last_source: u32::MAX,
            last_type: Vec::with_capacity(64),
            last_kind: Kind::Unknown,
            unknown: HashMap::new(),
            bp_seen: HashSet::new(),
            position: 0,
        }
    }

    fn kind(&mut self, ty: &[u8]) -> Kind {
        if ty != self.last_type.as_slice() {
            self.last_kind = if let Some(m) = types::quantity(ty) {
                Kind::Quantity(m)
            } else if ty == types::SLEEP_ANALYSIS {
                Kind::Sleep
            } else if ty == types::MENSTRUAL_FLOW {
                Kind::MenstrualFlow
            } else {
                Kind::Unknown
            };
            self.last_type.clear();
            self.last_type.extend_from_slice(ty);
        }
        self.last_kind
    }

    fn unknown_type(&mut self, name: &[u8]) -> Result<(), ImportError> {
        if let Some(n) = self.unknown.get_mut(name) {
            *n += 1;
        } else {
            if self.unknown.len() + self.counts.unmapped_workout_types.len()
                >= self.limits.max_unknown_types
            {
                return Err(self.limit(format!(
                    "more than {} distinct unknown record or workout types (WEARHOUSE_IMPORT_MAX_UNKNOWN_TYPES)",
                    self.limits.max_unknown_types
                )));
            }
            self.hold_name(name.len())?;
            self.unknown.insert(name.to_vec(), 1);
        }
        Ok(())
    }

    fn hold_name(&mut self, bytes: usize) -> Result<(), ImportError> {
        self.held_names += bytes;
        if self.held_names > MAX_NAME_BYTES {
            return Err(self.limit(format!(
                "the names of sources and unknown types take more than {MAX_NAME_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Interns a source by its raw (escaped) attribute bytes; unescaping and device parsing happen
    /// once per distinct source.
    fn source<S: Sink + ?Sized>(
        &mut self,
        name: &[u8],
        version: Option<&[u8]>,
        device: Option<&[u8]>,
        sink: &mut S,
    ) -> Result<u32, ImportError> {
        // A device is its name and HKDevice fields: the object address printed on every record
        // and the software version (which changes with updates) never make a new source.
        self.key.clear();
        self.key.extend_from_slice(name);
        self.key.push(0xff);
        match device {
            Some(d) => device_identity(d, &mut self.key),
            None => self.key.push(0xfe),
        }
        if self.last_source != u32::MAX && self.key == self.last_key {
            return Ok(self.last_source);
        }
        let id = match self.source_ids.get(self.key.as_slice()) {
            Some(&id) => id,
            None => {
                if self.sources.len() >= self.limits.max_sources {
                    return Err(self.limit(format!(
                        "more than {} distinct sources (WEARHOUSE_IMPORT_MAX_SOURCES)",
                        self.limits.max_sources
                    )));
                }
                // The key, and the source's own strings (about as long again).
                self.hold_name(2 * self.key.len() + version.map_or(0, |v| v.len()))?;
                let id = self.sources.len() as u32;
                let src = Source::new(
                    unescape(name),
                    version.map(unescape),
                    device.map(unescape).as_deref(),
                );
                sink.source(id, &src).map_err(sink_err(self.position))?;
                self.sources.push(src);
                self.source_ids.insert(self.key.clone(), id);
                id
            }
        };
        std::mem::swap(&mut self.key, &mut self.last_key);
        self.last_source = id;
        Ok(id)
    }

    /// Parses a `Record`; a menstrual-flow record is returned instead of emitted, so the caller
    /// can read its metadata children first ([`State::flow_end`] emits it).
    fn record<S: Sink + ?Sized>(
        &mut self,
        e: &BytesStart<'_>,
        corr: Option<&CorrelationCtx>,
        sink: &mut S,
    ) -> Result<Option<MenstrualFlow>, ImportError> {
        self.counts.records += 1;
        let (mut ty, mut name, mut version, mut device, mut unit) = (None, None, None, None, None);
        let (mut start, mut end, mut value) = (None, None, None);
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| malformed(self.position, err.to_string()))?;
            let slot = match a.key.as_ref().as_bytes() {
                b"type" => &mut ty,
                b"sourceName" => &mut name,
                b"sourceVersion" => &mut version,
                b"device" => &mut device,
                b"unit" => &mut unit,
                b"startDate" => &mut start,
                b"endDate" => &mut end,
                b"value" => &mut value,
                _ => continue,
            };
            *slot = Some(b(a.value));
        }
        let Some(ty) = ty else {
            self.counts.skip(SkipReason::MissingType);
            return Ok(None);
        };
        let kind = self.kind(&ty);
        let outcome = match kind {
            Kind::Unknown => {
                self.unknown_type(&ty)?;
                return Ok(None);
            }
            Kind::MenstrualFlow => {
                match self.flow([&name, &version, &device, &start, &end, &value], sink)? {
                    Ok(flow) => return Ok(Some(flow)),
                    Err(reason) => Err(reason),
                }
            }
            Kind::Quantity(m) => self.quantity(
                m,
                [&name, &version, &device, &unit, &start, &end, &value],
                corr,
                sink,
            )?,
            Kind::Sleep => self.sleep([&name, &version, &device, &start, &end, &value], sink)?,
        };
        if let Err(reason) = outcome {
            self.counts.skip(reason);
        }
        Ok(None)
    }

    #[allow(clippy::type_complexity)]
    fn flow<S: Sink + ?Sized>(
        &mut self,
        [name, version, device, start, end, value]: [&Option<Cow<'_, [u8]>>; 6],
        sink: &mut S,
    ) -> Result<Result<MenstrualFlow, SkipReason>, ImportError> {
        let Some(flow) = value.as_deref().and_then(types::menstrual_flow) else {
            return Ok(Err(SkipReason::UnknownFlowValue));
        };
        let (s, _, off) = match Self::times(start.as_ref(), end.as_ref()) {
            Ok(t) => t,
            Err(r) => return Ok(Err(r)),
        };
        let source = self.source(
            name.as_deref().unwrap_or(b""),
            version.as_deref(),
            device.as_deref(),
            sink,
        )?;
        Ok(Ok(MenstrualFlow {
            source,
            start: s,
            zone_offset_min: off,
            flow,
            cycle_start: false,
        }))
    }

    /// A flow record's `MetadataEntry`: HealthKit marks a cycle's first day with
    /// `HKMenstrualCycleStart` = 1.
    fn flow_metadata(
        &self,
        flow: &mut MenstrualFlow,
        e: &BytesStart<'_>,
    ) -> Result<(), ImportError> {
        let (mut is_start_key, mut one) = (false, false);
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| malformed(self.position, err.to_string()))?;
            let v = b(a.value);
            match a.key.as_ref().as_bytes() {
                b"key" => is_start_key = v.as_ref() == b"HKMenstrualCycleStart",
                b"value" => one = v.as_ref() == b"1",
                _ => {}
            }
        }
        if is_start_key {
            flow.cycle_start = one;
        }
        Ok(())
    }

    fn flow_end<S: Sink + ?Sized>(
        &mut self,
        flow: MenstrualFlow,
        sink: &mut S,
    ) -> Result<(), ImportError> {
        if self.counts.menstrual_flows >= MAX_MENSTRUAL_FLOWS {
            // Each is held until the end to fold cycles; a century of daily logs is ~36,500.
            return Err(self.limit(format!(
                "more than {MAX_MENSTRUAL_FLOWS} menstrual flow records"
            )));
        }
        sink.menstrual_flow(&flow)
            .map_err(sink_err(self.position))?;
        self.counts.menstrual_flows += 1;
        Ok(())
    }

    fn times(
        start: Option<&Cow<'_, [u8]>>,
        end: Option<&Cow<'_, [u8]>>,
    ) -> Result<(i64, i64, i16), SkipReason> {
        let (s, off) = start
            .and_then(|s| parse_apple_date(s))
            .ok_or(SkipReason::BadDate)?;
        let e = match end {
            Some(e) => parse_apple_date(e).ok_or(SkipReason::BadDate)?.0,
            None => s,
        };
        if e < s {
            return Err(SkipReason::EndBeforeStart);
        }
        Ok((s, e, off))
    }

    #[allow(clippy::type_complexity)]
    fn quantity<S: Sink + ?Sized>(
        &mut self,
        m: &'static QuantityMapping,
        [name, version, device, unit, start, end, value]: [&Option<Cow<'_, [u8]>>; 7],
        corr: Option<&CorrelationCtx>,
        sink: &mut S,
    ) -> Result<Result<(), SkipReason>, ImportError> {
        let raw = match value
            .as_deref()
            .map(number)
            .unwrap_or(Err(SkipReason::EmptyValue))
        {
            Ok(v) => v,
            Err(r) => return Ok(Err(r)),
        };
        let (mut s, mut e, mut off) = match Self::times(start.as_ref(), end.as_ref()) {
            Ok(t) => t,
            Err(r) => return Ok(Err(r)),
        };
        let unit = unit.as_deref().unwrap_or(b"");
        // Apple escapes the molar-mass brackets: `mmol&lt;180.15…&gt;/L`.
        let unit: Cow<'_, [u8]> = if unit.contains(&b'&') {
            Cow::Owned(unescape(unit).into_bytes())
        } else {
            Cow::Borrowed(unit)
        };
        let Some(v) = convert(m.conv, &unit, raw) else {
            return Ok(Err(SkipReason::UnsupportedUnit));
        };
        if !(m.min..=m.max).contains(&v) {
            return Ok(Err(SkipReason::OutOfRange));
        }
        let src = self.source(
            name.as_deref().unwrap_or(b""),
            version.as_deref(),
            device.as_deref(),
            sink,
        )?;
        let id = m.series.id;
        if id == BP_SYSTOLIC || id == BP_DIASTOLIC {
            // Both halves of a reading share the correlation's timestamps.
            if let Some(CorrelationCtx {
                start: Some((cs, coff)),
                end,
            }) = corr
            {
                (s, off) = (*cs, *coff);
                e = end.map_or(*cs, |x| x.0);
            }
            if !self.bp_seen.insert((id, src, s, e)) {
                return Ok(Err(SkipReason::DuplicateInCorrelation));
            }
            if self.bp_seen.len() > self.limits.max_blood_pressure_readings {
                return Err(self.limit(format!(
                    "more than {} blood-pressure readings (WEARHOUSE_IMPORT_MAX_BLOOD_PRESSURE_READINGS)",
                    self.limits.max_blood_pressure_readings
                )));
            }
        }
        let sample = Sample {
            series: m.series,
            source: src,
            start: s,
            end: e,
            zone_offset_min: off,
            value: v,
        };
        sink.sample(&sample).map_err(sink_err(self.position))?;
        self.counts.samples += 1;
        self.per_series[id as usize] += 1;
        Ok(Ok(()))
    }

    fn sleep<S: Sink + ?Sized>(
        &mut self,
        [name, version, device, start, end, value]: [&Option<Cow<'_, [u8]>>; 6],
        sink: &mut S,
    ) -> Result<Result<(), SkipReason>, ImportError> {
        let Some(stage) = value.as_deref().and_then(types::sleep_stage) else {
            return Ok(Err(SkipReason::UnknownSleepValue));
        };
        let (s, e, off) = match Self::times(start.as_ref(), end.as_ref()) {
            Ok(t) => t,
            Err(r) => return Ok(Err(r)),
        };
        let src = self.source(
            name.as_deref().unwrap_or(b""),
            version.as_deref(),
            device.as_deref(),
            sink,
        )?;
        let interval = SleepInterval {
            stage,
            source: src,
            start: s,
            end: e,
            zone_offset_min: off,
        };
        sink.sleep(&interval).map_err(sink_err(self.position))?;
        self.counts.sleep_intervals += 1;
        Ok(Ok(()))
    }

    fn workout_start<S: Sink + ?Sized>(
        &mut self,
        e: &BytesStart<'_>,
        sink: &mut S,
    ) -> Result<Box<WorkoutBuilder>, ImportError> {
        let mut w = Box::<WorkoutBuilder>::default();
        let (mut name, mut version, mut device) = (None, None, None);
        let (mut dur, mut dur_unit) = (None, None);
        let (mut dist, mut dist_unit, mut energy, mut energy_unit) = (None, None, None, None);
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| malformed(self.position, err.to_string()))?;
            match a.key.as_ref().as_bytes() {
                b"workoutActivityType" => w.hk_type = unescape(a.value.as_bytes()),
                b"sourceName" => name = Some(b(a.value)),
                b"sourceVersion" => version = Some(b(a.value)),
                b"device" => device = Some(b(a.value)),
                b"startDate" => w.start = parse_apple_date(a.value.as_bytes()),
                b"endDate" => w.end = parse_apple_date(a.value.as_bytes()),
                b"duration" => dur = Some(b(a.value)),
                b"durationUnit" => dur_unit = Some(b(a.value)),
                b"totalDistance" => dist = Some(b(a.value)),
                b"totalDistanceUnit" => dist_unit = Some(b(a.value)),
                b"totalEnergyBurned" => energy = Some(b(a.value)),
                b"totalEnergyBurnedUnit" => energy_unit = Some(b(a.value)),
                _ => {}
            }
        }
        let unit_or = |u: &Option<Cow<'_, [u8]>>, d: &'static [u8]| -> Vec<u8> {
            u.as_deref().unwrap_or(d).to_vec()
        };
        w.duration_s =
            opt_number(dur.as_ref()).and_then(|d| duration_seconds(&unit_or(&dur_unit, b"min"), d));
        w.legacy_distance_m = opt_number(dist.as_ref())
            .and_then(|d| convert(Conv::Meters, &unit_or(&dist_unit, b"km"), d));
        w.legacy_energy_kcal = opt_number(energy.as_ref())
            .and_then(|d| convert(Conv::Kilocalories, &unit_or(&energy_unit, b"kcal"), d));
        w.source = self.source(
            name.as_deref().unwrap_or(b""),
            version.as_deref(),
            device.as_deref(),
            sink,
        )?;
        Ok(w)
    }

    fn workout_child(
        &mut self,
        w: &mut WorkoutBuilder,
        e: &BytesStart<'_>,
    ) -> Result<(), ImportError> {
        let mut attrs: [Option<Cow<'_, [u8]>>; 10] = Default::default();
        const KEYS: [&[u8]; 10] = [
            b"type",
            b"date",
            b"duration",
            b"durationUnit",
            b"average",
            b"minimum",
            b"maximum",
            b"sum",
            b"unit",
            b"key",
        ];
        let mut meta_value = None;
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| malformed(self.position, err.to_string()))?;
            if a.key.as_ref().as_bytes() == b"value" {
                meta_value = Some(b(a.value));
            } else if let Some(i) = KEYS.iter().position(|k| *k == a.key.as_ref().as_bytes()) {
                attrs[i] = Some(b(a.value));
            }
        }
        let [ty, date, dur, dur_unit, avg, min, max, sum, unit, key] = attrs;
        if w.metadata.len() + w.events.len() >= MAX_WORKOUT_CHILDREN
            || w.held > MAX_WORKOUT_TEXT_BYTES
        {
            return Err(self.limit(format!(
                "a workout with more than {MAX_WORKOUT_CHILDREN} metadata entries and events, or over {MAX_WORKOUT_TEXT_BYTES} bytes of them"
            )));
        }
        w.held += ty.as_ref().map_or(0, |v| v.len())
            + key.as_ref().map_or(0, |v| v.len())
            + meta_value.as_ref().map_or(0, |v| v.len());
        match e.local_name().as_ref().as_bytes() {
            b"MetadataEntry" => {
                if let Some(k) = key {
                    w.metadata
                        .push((unescape(&k), unescape(meta_value.as_deref().unwrap_or(b""))));
                }
            }
            b"WorkoutEvent" => {
                if let Some((t, off)) = date.as_deref().and_then(parse_apple_date) {
                    let kind = unescape(ty.as_deref().unwrap_or(b""));
                    let kind = kind
                        .strip_prefix("HKWorkoutEventType")
                        .unwrap_or(&kind)
                        .to_string();
                    let duration_s = opt_number(dur.as_ref())
                        .and_then(|d| duration_seconds(dur_unit.as_deref().unwrap_or(b"min"), d));
                    w.events.push(WorkoutEvent {
                        kind,
                        time: t,
                        zone_offset_min: off,
                        duration_s,
                    });
                }
            }
            b"WorkoutStatistics" => {
                let ty = ty.as_deref().unwrap_or(b"");
                let ty = ty
                    .strip_prefix(types::QUANTITY_PREFIX.as_bytes())
                    .unwrap_or(ty);
                let unit = unit.as_deref().unwrap_or(b"");
                let get = |v: &Option<Cow<'_, [u8]>>, conv| {
                    opt_number(v.as_ref()).and_then(|x| convert(conv, unit, x))
                };
                let s = &mut w.stats;
                let add = |slot: &mut Option<f64>, v: Option<f64>| {
                    if let Some(v) = v {
                        *slot = Some(slot.unwrap_or(0.0) + v);
                    }
                };
                match ty {
                    b"HeartRate" => {
                        s.heart_rate_avg = get(&avg, Conv::PerMinute);
                        s.heart_rate_min = get(&min, Conv::PerMinute);
                        s.heart_rate_max = get(&max, Conv::PerMinute);
                    }
                    b"ActiveEnergyBurned" => add(&mut s.energy_kcal, get(&sum, Conv::Kilocalories)),
                    b"BasalEnergyBurned" => {
                        add(&mut s.basal_energy_kcal, get(&sum, Conv::Kilocalories))
                    }
                    t if t.starts_with(b"Distance") => {
                        add(&mut s.distance_m, get(&sum, Conv::Meters))
                    }
                    b"StepCount" => add(&mut s.steps, get(&sum, Conv::Count)),
                    b"SwimmingStrokeCount" => add(&mut s.swim_strokes, get(&sum, Conv::Count)),
                    b"FlightsClimbed" => add(&mut s.flights_climbed, get(&sum, Conv::Count)),
                    b"RunningPower" | b"CyclingPower" => {
                        s.avg_power_w = get(&avg, Conv::Watts);
                        s.max_power_w = get(&max, Conv::Watts);
                    }
                    b"RunningSpeed" | b"CyclingSpeed" => {
                        s.avg_speed_m_s = get(&avg, Conv::MetersPerSecond);
                        s.max_speed_m_s = get(&max, Conv::MetersPerSecond);
                    }
                    b"CyclingCadence" => s.avg_cadence = get(&avg, Conv::PerMinute),
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn workout_end<S: Sink + ?Sized>(
        &mut self,
        w: Box<WorkoutBuilder>,
        sink: &mut S,
    ) -> Result<(), ImportError> {
        let w = *w;
        let (Some((start, off)), Some((end, _))) = (w.start, w.end) else {
            self.counts.skip(SkipReason::BadDate);
            return Ok(());
        };
        if end < start {
            self.counts.skip(SkipReason::EndBeforeStart);
            return Ok(());
        }
        let meta = |k: &str| {
            w.metadata
                .iter()
                .find(|(mk, _)| mk == k)
                .map(|(_, v)| v.as_str())
        };
        let indoor = meta("HKIndoorWorkout") == Some("1");
        let mapped = types::workout_type(&w.hk_type);
        if mapped.is_none() {
            if !self.counts.unmapped_workout_types.contains_key(&w.hk_type) {
                if self.unknown.len() + self.counts.unmapped_workout_types.len()
                    >= self.limits.max_unknown_types
                {
                    return Err(self.limit(format!(
                        "more than {} distinct unknown record or workout types (WEARHOUSE_IMPORT_MAX_UNKNOWN_TYPES)",
                        self.limits.max_unknown_types
                    )));
                }
                self.hold_name(w.hk_type.len())?;
            }
            *self
                .counts
                .unmapped_workout_types
                .entry(w.hk_type.clone())
                .or_default() += 1;
        }
        let mut workout_type = mapped.unwrap_or(WorkoutType::OTHER);
        // HealthKit folds indoor/pool variants into one activity type plus metadata.
        let refined = match (
            workout_type.as_str(),
            indoor,
            meta("HKSwimmingLocationType"),
        ) {
            ("running", true, _) => "treadmill",
            ("cycling", true, _) => "indoor_cycling",
            ("swimming", _, Some("1")) => "pool_swimming",
            ("swimming", _, Some("2")) => "open_water_swimming",
            (t, _, _) => t,
        };
        if let Some(t) = WorkoutType::parse(refined) {
            workout_type = t;
        }
        let mut stats = w.stats.clone();
        stats.energy_kcal = stats.energy_kcal.or(w.legacy_energy_kcal);
        stats.distance_m = stats.distance_m.or(w.legacy_distance_m);
        stats.elevation_gain_m =
            meta("HKElevationAscended").and_then(|v| quantity_string(v, Conv::Meters));
        stats.avg_met =
            meta("HKAverageMETs").and_then(|v| quantity_string(v, Conv::Exact(&["kcal/hr·kg"])));
        let workout = Workout {
            workout_type,
            source: w.source,
            start,
            end,
            zone_offset_min: off,
            duration_s: w.duration_s.unwrap_or((end - start) as f64 / 1e6),
            stats,
            events: w.events,
            metadata: w.metadata,
            hk_activity_type: w.hk_type,
        };
        sink.workout(&workout).map_err(sink_err(self.position))?;
        self.counts.workouts += 1;
        Ok(())
    }

    fn activity_summary<S: Sink + ?Sized>(
        &mut self,
        e: &BytesStart<'_>,
        sink: &mut S,
    ) -> Result<(), ImportError> {
        let mut day = None;
        let mut energy_unit = None;
        let mut f: [Option<f64>; 8] = [None; 8];
        const KEYS: [&[u8]; 8] = [
            b"activeEnergyBurned",
            b"activeEnergyBurnedGoal",
            b"appleMoveTime",
            b"appleMoveTimeGoal",
            b"appleExerciseTime",
            b"appleExerciseTimeGoal",
            b"appleStandHours",
            b"appleStandHoursGoal",
        ];
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| malformed(self.position, err.to_string()))?;
            match a.key.as_ref().as_bytes() {
                b"dateComponents" => day = date(a.value.as_bytes()),
                b"activeEnergyBurnedUnit" => energy_unit = Some(a.value.into_owned().into_bytes()),
                k => {
                    if let Some(i) = KEYS.iter().position(|x| *x == k) {
                        f[i] = number(a.value.as_bytes()).ok();
                    }
                }
            }
        }
        let Some(day) = day else {
            self.counts.skip(SkipReason::BadDate);
            return Ok(());
        };
        let unit = energy_unit.unwrap_or_else(|| b"kcal".to_vec());
        let kcal = |v: Option<f64>| v.and_then(|v| convert(Conv::Kilocalories, &unit, v));
        let summary = ActivitySummary {
            date: day,
            active_energy_kcal: kcal(f[0]),
            active_energy_goal_kcal: kcal(f[1]),
            move_time_min: f[2],
            move_time_goal_min: f[3],
            exercise_time_min: f[4],
            exercise_time_goal_min: f[5],
            stand_hours: f[6],
            stand_hours_goal: f[7],
        };
        sink.activity_summary(&summary)
            .map_err(sink_err(self.position))?;
        self.counts.activity_summaries += 1;
        Ok(())
    }

    fn me<S: Sink + ?Sized>(
        &mut self,
        e: &BytesStart<'_>,
        sink: &mut S,
    ) -> Result<(), ImportError> {
        let mut me = Me {
            birth_date: None,
            sex: None,
        };
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| malformed(self.position, err.to_string()))?;
            match a.key.as_ref().as_bytes() {
                b"HKCharacteristicTypeIdentifierDateOfBirth" => {
                    me.birth_date = date(a.value.as_bytes())
                }
                b"HKCharacteristicTypeIdentifierBiologicalSex" => {
                    me.sex = match a.value.as_bytes() {
                        b"HKBiologicalSexFemale" => Some(BiologicalSex::Female),
                        b"HKBiologicalSexMale" => Some(BiologicalSex::Male),
                        b"HKBiologicalSexOther" => Some(BiologicalSex::Other),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        sink.me(&me).map_err(sink_err(self.position))
    }

    fn correlation_start(&mut self, e: &BytesStart<'_>) -> Result<CorrelationCtx, ImportError> {
        let mut c = CorrelationCtx {
            start: None,
            end: None,
        };
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| malformed(self.position, err.to_string()))?;
            match a.key.as_ref().as_bytes() {
                b"startDate" => c.start = parse_apple_date(a.value.as_bytes()),
                b"endDate" => c.end = parse_apple_date(a.value.as_bytes()),
                _ => {}
            }
        }
        self.counts.correlations += 1;
        Ok(c)
    }

    fn finish(mut self, bytes: u64) -> Report {
        for (id, &n) in self.per_series.iter().enumerate() {
            if n > 0 {
                self.counts.per_series.insert(id as i16, n);
            }
        }
        for (name, n) in self.unknown {
            self.counts
                .unknown_types
                .insert(String::from_utf8_lossy(&name).into_owned(), n);
        }
        Report {
            counts: self.counts,
            sources: self.sources,
            bytes,
        }
    }
}

/// Parses an Apple Health `export.xml` stream, calling `sink` for everything it finds.
pub fn parse<R: BufRead, S: Sink + ?Sized>(input: R, sink: &mut S) -> Result<Report, ImportError> {
    parse_with(input, sink, &Limits::default())
}

/// [`parse`] within `limits`: past one, the parse fails with [`ImportError::Limit`].
pub fn parse_with<R: BufRead, S: Sink + ?Sized>(
    input: R,
    sink: &mut S,
    limits: &Limits,
) -> Result<Report, ImportError> {
    let mut reader = Reader::from_reader(EventGuard::new(input, limits.max_xml_event_bytes));
    reader.config_mut().trim_text(true);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut st = State::new(*limits);
    let mut depth: u32 = 0;
    let mut skip_to: Option<u32> = None;
    let mut ctx = Ctx::Top;
    let mut seen_root = false;
    let mut root_closed = false;
    let mut any_event = false;
    loop {
        buf.clear();
        reader.get_mut().next_event();
        let before = reader.buffer_position();
        let ev = match reader.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) => {
                let pos = reader.error_position().max(before);
                return Err(xml_error(e, pos));
            }
        };
        st.position = before;
        if let Some(message) = reader.get_ref().over() {
            return Err(st.limit(message));
        }
        if !matches!(ev, Event::Eof) {
            any_event = true;
        }
        match ev {
            Event::Eof => break,
            _ if root_closed => {
                if let Event::Start(_) | Event::Empty(_) = ev {
                    return Err(malformed(before, "content after the closing </HealthData>"));
                }
            }
            Event::Start(_) if skip_to.is_some() => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(malformed(
                        before,
                        format!("elements nested more than {MAX_DEPTH} deep"),
                    ));
                }
            }
            Event::Empty(_) if skip_to.is_some() => {}
            Event::End(_) if skip_to.is_some() => {
                depth -= 1;
                if Some(depth) == skip_to {
                    skip_to = None;
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_start = matches!(ev, Event::Start(_));
                let name = e.local_name();
                let name = name.as_ref().as_bytes();
                // Children we do not look into are skipped as a whole.
                let mut skip_children = is_start;
                match depth {
                    0 => {
                        if name != b"HealthData" {
                            return Err(malformed(
                                before,
                                format!(
                                    "root element is <{}>, not <HealthData>: not an Apple Health export",
                                    String::from_utf8_lossy(name)
                                ),
                            ));
                        }
                        seen_root = true;
                        skip_children = false;
                        if !is_start {
                            root_closed = true;
                        }
                    }
                    1 => match name {
                        b"Record" => {
                            if let Some(flow) = st.record(e, None, sink)? {
                                if is_start {
                                    ctx = Ctx::Flow(flow);
                                    skip_children = false;
                                } else {
                                    st.flow_end(flow, sink)?;
                                }
                            }
                        }
                        b"Workout" if is_start => {
                            ctx = Ctx::Workout(st.workout_start(e, sink)?);
                            skip_children = false;
                        }
                        b"Workout" => {
                            let w = st.workout_start(e, sink)?;
                            st.workout_end(w, sink)?;
                        }
                        b"Correlation" if is_start => {
                            ctx = Ctx::Correlation(st.correlation_start(e)?);
                            skip_children = false;
                        }
                        b"Correlation" => {
                            st.correlation_start(e)?;
                        }
                        b"ActivitySummary" => st.activity_summary(e, sink)?,
                        b"Me" => st.me(e, sink)?,
                        b"ExportDate" => {}
                        other => st.unknown_type(other)?,
                    },
                    2 => match (&mut ctx, name) {
                        (Ctx::Workout(w), _) => st.workout_child(w, e)?,
                        (Ctx::Correlation(c), b"Record") => {
                            // A flow record inside a correlation is not something Apple writes.
                            if let Some(flow) = st.record(e, Some(c), sink)? {
                                st.flow_end(flow, sink)?;
                            }
                        }
                        (Ctx::Flow(f), b"MetadataEntry") => st.flow_metadata(f, e)?,
                        _ => {}
                    },
                    _ => {}
                }
                if is_start {
                    if skip_children {
                        skip_to = Some(depth);
                    }
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(malformed(
                            before,
                            format!("elements nested more than {MAX_DEPTH} deep"),
                        ));
                    }
                }
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| malformed(before, "unmatched end tag"))?;
                match depth {
                    0 => root_closed = true,
                    1 => match std::mem::replace(&mut ctx, Ctx::Top) {
                        Ctx::Workout(w) => st.workout_end(w, sink)?,
                        Ctx::Flow(f) => st.flow_end(f, sink)?,
                        _ => {}
                    },
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let pos = reader.buffer_position();
    if !any_event {
        return Err(ImportError::Empty);
    }
    if !seen_root {
        return Err(ImportError::Truncated {
            position: pos,
            message: "input ended before the <HealthData> element".into(),
        });
    }
    if !root_closed {
        return Err(ImportError::Truncated {
            position: pos,
            message: format!(
                "input ended with {depth} element(s) still open (missing </HealthData>)"
            ),
        });
    }
    Ok(st.finish(pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wearhouse_domain::sleep::SleepStage;

    #[derive(Default)]
    struct Collect {
        samples: Vec<Sample>,
        sleep: Vec<SleepInterval>,
        flows: Vec<MenstrualFlow>,
        workouts: Vec<Workout>,
        summaries: Vec<ActivitySummary>,
        me: Vec<Me>,
        sources: Vec<(u32, Source)>,
    }

    impl Sink for Collect {
        fn source(&mut self, index: u32, source: &Source) -> Result<(), SinkError> {
            self.sources.push((index, source.clone()));
            Ok(())
        }
        fn sample(&mut self, s: &Sample) -> Result<(), SinkError> {
            self.samples.push(*s);
            Ok(())
        }
        fn sleep(&mut self, s: &SleepInterval) -> Result<(), SinkError> {
            self.sleep.push(*s);
            Ok(())
        }
        fn menstrual_flow(&mut self, f: &MenstrualFlow) -> Result<(), SinkError> {
            self.flows.push(*f);
            Ok(())
        }
        fn workout(&mut self, w: &Workout) -> Result<(), SinkError> {
            self.workouts.push(w.clone());
            Ok(())
        }
        fn activity_summary(&mut self, a: &ActivitySummary) -> Result<(), SinkError> {
            self.summaries.push(a.clone());
            Ok(())
        }
        fn me(&mut self, m: &Me) -> Result<(), SinkError> {
            self.me.push(m.clone());
            Ok(())
        }
    }

    const WATCH: &str = "&lt;&lt;HKDevice: 0x283ca8f00&gt;, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,1, software:9.5&gt;";

    fn doc(body: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE HealthData [\n<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>\n]>\n<HealthData locale=\"en_US\">\n <ExportDate value=\"2024-03-11 08:00:00 -0700\"/>\n{body}\n</HealthData>\n"
        )
    }

    fn rec(ty: &str, unit: &str, value: &str, start: &str) -> String {
        format!(
            r#" <Record type="HKQuantityTypeIdentifier{ty}" sourceName="Anna’s Apple Watch" sourceVersion="9.5" device="{WATCH}" unit="{unit}" creationDate="{start}" startDate="{start}" endDate="{start}" value="{value}"/>"#
        )
    }

    fn run(body: &str) -> (Report, Collect) {
        let mut sink = Collect::default();
        let report = parse(doc(body).as_bytes(), &mut sink).expect("parses");
        (report, sink)
    }

    fn one(ty: &str, unit: &str, value: &str) -> Option<f64> {
        let (_, sink) = run(&rec(ty, unit, value, "2024-03-10 08:00:00 +0100"));
        sink.samples.first().map(|s| s.value)
    }

    fn approx(a: Option<f64>, b: f64) {
        let a = a.expect("a sample");
        assert!((a - b).abs() < 1e-6, "{a} != {b}");
    }

    #[test]
    fn each_healthkit_family_is_converted_to_its_canonical_unit() {
        approx(one("HeartRate", "count/min", "61"), 61.0);
        approx(one("HeartRateVariabilitySDNN", "ms", "48.2"), 48.2);
        approx(one("OxygenSaturation", "%", "0.97"), 97.0);
        approx(
            one("BloodGlucose", "mmol&lt;180.1558800000541&gt;/L", "5.5"),
            99.085_734,
        );
        approx(one("BloodGlucose", "mg/dL", "101"), 101.0);
        approx(one("RespiratoryRate", "count/min", "14.5"), 14.5);
        approx(one("Height", "m", "1.82"), 182.0);
        approx(one("BodyMass", "lb", "165"), 74.842_741);
        approx(one("BodyFatPercentage", "%", "0.215"), 21.5);
        approx(one("BodyTemperature", "degF", "98.6"), 37.0);
        approx(one("VO2Max", "mL/min·kg", "42.1"), 42.1);
        approx(one("StepCount", "count", "120"), 120.0);
        approx(one("ActiveEnergyBurned", "kJ", "41.84"), 10.0);
        approx(one("AppleStandTime", "min", "5"), 5.0);
        approx(one("DistanceWalkingRunning", "mi", "0.5"), 804.672);
        approx(one("DistanceCycling", "km", "1.2"), 1200.0);
        approx(one("WalkingSpeed", "km/hr", "4.5"), 1.25);
        approx(one("WalkingAsymmetryPercentage", "%", "0.04"), 4.0);
        approx(one("StairAscentSpeed", "ft/s", "1"), 0.3048);
        approx(one("RunningStrideLength", "m", "1.1"), 110.0);
        approx(one("RunningGroundContactTime", "ms", "250"), 250.0);
        approx(one("EnvironmentalAudioExposure", "dBASPL", "71.5"), 71.5);
        approx(one("TimeInDaylight", "min", "12"), 12.0);
        approx(one("DietaryWater", "fl_oz_us", "8"), 236.588_236_5);
        approx(one("BloodAlcoholContent", "%", "0.0008"), 80.0);
    }

    #[test]
    fn bad_values_are_skipped_and_counted_per_reason() {
        let body = [
            rec("HeartRate", "count/min", "", "2024-03-10 08:00:00 +0100"),
            rec("HeartRate", "count/min", "abc", "2024-03-10 08:00:00 +0100"),
            rec("HeartRate", "count/min", "NaN", "2024-03-10 08:00:00 +0100"),
            rec("HeartRate", "count/min", "900", "2024-03-10 08:00:00 +0100"),
            rec("BodyMass", "furlong", "70", "2024-03-10 08:00:00 +0100"),
            rec("HeartRate", "count/min", "60", "yesterday"),
            rec("HeartRate", "count/min", "60", "2024-03-10 08:00:00 +0100"),
        ]
        .join("\n");
        let (report, sink) = run(&body);
        let c = &report.counts;
        assert_eq!(c.records, 7);
        assert_eq!(c.samples, 1);
        assert_eq!(sink.samples.len(), 1);
        let expected: BTreeMap<SkipReason, u64> = [
            (SkipReason::EmptyValue, 1),
            (SkipReason::NotANumber, 2),
            (SkipReason::OutOfRange, 1),
            (SkipReason::UnsupportedUnit, 1),
            (SkipReason::BadDate, 1),
        ]
        .into();
        assert_eq!(c.skipped, expected);
    }

    use std::collections::BTreeMap;

    #[test]
    fn unknown_types_are_counted_by_name() {
        let body = format!(
            "{}\n{}\n{}\n <ClinicalRecord type=\"x\"/>",
            rec(
                "DietaryEnergyConsumed",
                "kcal",
                "500",
                "2024-03-10 08:00:00 +0100"
            ),
            rec(
                "DietaryEnergyConsumed",
                "kcal",
                "300",
                "2024-03-10 09:00:00 +0100"
            ),
            r#" <Record type="HKCategoryTypeIdentifierMindfulSession" sourceName="Calm" startDate="2024-03-10 08:00:00 +0100" endDate="2024-03-10 08:10:00 +0100"/>"#
        );
        let (report, _) = run(&body);
        let u = &report.counts.unknown_types;
        assert_eq!(u["HKQuantityTypeIdentifierDietaryEnergyConsumed"], 2);
        assert_eq!(u["HKCategoryTypeIdentifierMindfulSession"], 1);
        assert_eq!(u["ClinicalRecord"], 1);
        assert_eq!(report.counts.samples, 0);
    }

    #[test]
    fn zone_offsets_are_kept_per_record_across_dst_and_travel() {
        let body = [
            rec("StepCount", "count", "10", "2024-03-10 01:59:00 -0800"),
            rec("StepCount", "count", "10", "2024-03-10 03:00:00 -0700"),
            rec("StepCount", "count", "10", "2024-03-20 09:00:00 +0900"),
            rec("StepCount", "count", "10", "2024-03-25 09:00:00 +0530"),
        ]
        .join("\n");
        let (_, sink) = run(&body);
        let offs: Vec<i16> = sink.samples.iter().map(|s| s.zone_offset_min).collect();
        assert_eq!(offs, [-480, -420, 540, 330]);
        assert_eq!(sink.samples[1].start - sink.samples[0].start, 60_000_000);
        assert_eq!(sink.samples[0].start, 1_710_064_740_000_000);
    }

    #[test]
    fn sources_are_interned_with_parsed_devices() {
        let body = [
            rec("HeartRate", "count/min", "60", "2024-03-10 08:00:00 +0100"),
            rec("HeartRate", "count/min", "61", "2024-03-10 08:01:00 +0100"),
            r#" <Record type="HKQuantityTypeIdentifierBodyMass" sourceName="Withings &amp; Co" unit="kg" startDate="2024-03-10 07:00:00 +0100" endDate="2024-03-10 07:00:00 +0100" value="70"/>"#.to_string(),
            rec("HeartRate", "count/min", "62", "2024-03-10 08:02:00 +0100"),
        ]
        .join("\n");
        let (report, sink) = run(&body);
        assert_eq!(report.sources.len(), 2);
        let srcs: Vec<u32> = sink.samples.iter().map(|s| s.source).collect();
        assert_eq!(srcs, [0, 0, 1, 0]);
        let watch = &report.sources[0];
        assert_eq!(watch.source_name, "Anna’s Apple Watch");
        assert_eq!(watch.source_version.as_deref(), Some("9.5"));
        let d = watch.device.as_ref().unwrap();
        assert_eq!(d.hardware.as_deref(), Some("Watch6,1"));
        assert_eq!(d.model.as_deref(), Some("Watch"));
        assert_eq!(
            watch.device_type,
            crate::ingest::apple::device::DeviceType::Watch
        );
        assert_eq!(report.sources[1].source_name, "Withings & Co");
        assert_eq!(sink.sources.len(), 2);
    }

    #[test]
    fn a_devices_address_and_software_version_never_make_a_new_source() {
        let device = |addr: &str, hardware: &str, software: &str| {
            format!("&lt;&lt;HKDevice: {addr}&gt;, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:{hardware}, software:{software}&gt;")
        };
        let r = |version: &str, device: &str, minute: u32| {
            format!(
                r#" <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Watch" sourceVersion="{version}" device="{device}" unit="count/min" startDate="2024-03-10 08:{minute:02}:00 +0100" endDate="2024-03-10 08:{minute:02}:00 +0100" value="60"/>"#
            )
        };
        let body = [
            r("9.5", &device("0x2862e3fe8", "Watch6,1", "9.5"), 0),
            r("9.5", &device("0x2934f069b", "Watch6,1", "9.5"), 1),
            r("10.0", &device("0x2934f0aa0", "Watch6,1", "10.0"), 2),
            r("10.0", &device("0x1", "Watch7,1", "10.0"), 3),
            r("10.0", &device("0x2", "Watch6,1", "10.0"), 4),
        ]
        .join("\n");
        let (report, sink) = run(&body);
        let srcs: Vec<u32> = sink.samples.iter().map(|s| s.source).collect();
        assert_eq!(srcs, [0, 0, 0, 1, 0]);
        assert_eq!(report.sources.len(), 2);
        let d = report.sources[0].device.as_ref().unwrap();
        assert_eq!(
            (
                d.model.as_deref(),
                d.hardware.as_deref(),
                d.software.as_deref()
            ),
            (Some("Watch"), Some("Watch6,1"), Some("9.5"))
        );
        let mut key = Vec::new();
        device_identity(
            b"<<HKDevice: 0x1>, name:iPhone, software:17.2, model:iPhone>",
            &mut key,
        );
        assert_eq!(key, b"name:iPhone, model:iPhone>");
        key.clear();
        device_identity(b"name:Scale, manufacturer:Acme", &mut key);
        assert_eq!(key, b"name:Scale, manufacturer:Acme");
        key.clear();
        device_identity(
            b"&lt;&lt;HKDevice: 0x2&gt;, name:Watch, hardware:Watch6,1, software:10.3&gt;",
            &mut key,
        );
        assert_eq!(key, b"name:Watch, hardware:Watch6,1&gt;");
        key.clear();
        device_identity(b"software:1.0, model:X", &mut key);
        assert_eq!(key, b", model:X");
    }

    fn limited(body: &str, limits: Limits) -> ImportError {
        parse_with(doc(body).as_bytes(), &mut NullSink, &limits).expect_err("must fail")
    }

    #[test]
    fn input_driven_sets_are_bounded() {
        let small = Limits {
            max_sources: 3,
            max_unknown_types: 3,
            max_blood_pressure_readings: 3,
            max_xml_event_bytes: 4096,
            ..Limits::default()
        };
        let many = |f: &dyn Fn(usize) -> String| (0..4).map(f).collect::<Vec<_>>().join("\n");
        let sources = many(&|i| {
            format!(
                r#" <Record type="HKQuantityTypeIdentifierStepCount" sourceName="App {i}" unit="count" startDate="2024-03-10 08:00:00 +0100" endDate="2024-03-10 08:01:00 +0100" value="5"/>"#
            )
        });
        let e = limited(&sources, small);
        assert!(matches!(e, ImportError::Limit { .. }), "{e}");
        assert!(
            e.to_string().contains("more than 3 distinct sources"),
            "{e}"
        );
        assert!(parse_with(doc(&sources).as_bytes(), &mut NullSink, &Limits::default()).is_ok());
        let types = many(&|i| {
            format!(
                r#" <Record type="HKQuantityTypeIdentifierMadeUp{i}" sourceName="App" unit="count" startDate="2024-03-10 08:00:00 +0100" endDate="2024-03-10 08:01:00 +0100" value="5"/>"#
            )
        });
        let e = limited(&types, small);
        assert!(e.to_string().contains("distinct unknown"), "{e}");
        let bp = many(&|i| {
            format!(
                r#" <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" sourceName="Omron" unit="mmHg" startDate="2024-03-10 08:0{i}:00 +0100" endDate="2024-03-10 08:0{i}:00 +0100" value="120"/>"#
            )
        });
        let e = limited(&bp, small);
        assert!(e.to_string().contains("blood-pressure readings"), "{e}");
        let e = limited(&format!(" <Note>{}</Note>", "z".repeat(10_000)), small);
        assert!(e.to_string().contains("longer than 4096 bytes"), "{e}");
        let e = limited(&format!(" <Note a=\"{}\"/>", "z".repeat(10_000)), small);
        assert!(e.to_string().contains("longer than 4096 bytes"), "{e}");
        let meta = format!(
            " <MetadataEntry key=\"k\" value=\"{}\"/>\n",
            "v".repeat(900_000)
        );
        let workout = format!(
            " <Workout workoutActivityType=\"HKWorkoutActivityTypeRunning\" sourceName=\"W\" startDate=\"2024-03-10 07:00:00 +0100\" endDate=\"2024-03-10 07:31:00 +0100\">\n{}</Workout>",
            meta.repeat(6)
        );
        let e = limited(&workout, Limits::default());
        assert!(e.to_string().contains("bytes of them"), "{e}");
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        let e = limited(&deep, Limits::default());
        assert!(e.to_string().contains("nested more than 64 deep"), "{e}");
    }

    #[test]
    fn menstrual_flow_records_with_their_cycle_start_mark() {
        let body = r#" <Record type="HKCategoryTypeIdentifierMenstrualFlow" sourceName="Health" startDate="2024-03-01 00:00:00 +0100" endDate="2024-03-01 00:00:00 +0100" value="HKCategoryValueVaginalBleedingMedium">
  <MetadataEntry key="HKMenstrualCycleStart" value="1"/>
  <MetadataEntry key="HKWasUserEntered" value="1"/>
 </Record>
 <Record type="HKCategoryTypeIdentifierMenstrualFlow" sourceName="Health" startDate="2024-03-02 00:00:00 +0100" endDate="2024-03-02 00:00:00 +0100" value="HKCategoryValueMenstrualFlowLight"/>
 <Record type="HKCategoryTypeIdentifierMenstrualFlow" sourceName="Health" startDate="2024-03-03 00:00:00 +0100" endDate="2024-03-03 00:00:00 +0100" value="HKCategoryValueMenstrualFlowNone">
  <MetadataEntry key="HKMenstrualCycleStart" value="0"/>
 </Record>
 <Record type="HKCategoryTypeIdentifierMenstrualFlow" sourceName="Health" startDate="2024-03-04 00:00:00 +0100" endDate="2024-03-04 00:00:00 +0100" value="HKCategoryValueMenstrualFlowPurple"/>
 <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Health" unit="count/min" startDate="2024-03-04 00:00:00 +0100" endDate="2024-03-04 00:00:00 +0100" value="60"/>"#;
        let (report, c) = run(body);
        let got: Vec<(bool, bool, i16)> = c
            .flows
            .iter()
            .map(|f| (f.flow, f.cycle_start, f.zone_offset_min))
            .collect();
        assert_eq!(
            got,
            [(true, true, 60), (true, false, 60), (false, false, 60)]
        );
        assert_eq!(c.flows[0].start, 1_709_247_600_000_000);
        assert_eq!(report.counts.menstrual_flows, 3);
        assert_eq!(report.counts.skipped[&SkipReason::UnknownFlowValue], 1);
        // The parser is back at top level after a flow record's children.
        assert_eq!(c.samples.len(), 1);
        assert_eq!(report.counts.records, 5);
    }

    #[test]
    fn sleep_stages_named_and_legacy() {
        let s = |v: &str, start: &str, end: &str| {
            format!(
                r#" <Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="Watch" startDate="{start}" endDate="{end}" value="{v}"/>"#
            )
        };
        let body = [
            s(
                "HKCategoryValueSleepAnalysisInBed",
                "2024-03-09 23:00:00 +0100",
                "2024-03-10 07:00:00 +0100",
            ),
            s(
                "HKCategoryValueSleepAnalysisAsleepCore",
                "2024-03-09 23:10:00 +0100",
                "2024-03-10 00:00:00 +0100",
            ),
            s(
                "HKCategoryValueSleepAnalysisAsleepDeep",
                "2024-03-10 00:00:00 +0100",
                "2024-03-10 01:00:00 +0100",
            ),
            s(
                "HKCategoryValueSleepAnalysisAsleepREM",
                "2024-03-10 01:00:00 +0100",
                "2024-03-10 01:30:00 +0100",
            ),
            s(
                "HKCategoryValueSleepAnalysisAwake",
                "2024-03-10 01:30:00 +0100",
                "2024-03-10 01:35:00 +0100",
            ),
            s(
                "HKCategoryValueSleepAnalysisAsleepUnspecified",
                "2024-03-10 01:35:00 +0100",
                "2024-03-10 02:00:00 +0100",
            ),
            s(
                "1",
                "2024-03-10 02:00:00 +0100",
                "2024-03-10 03:00:00 +0100",
            ),
            s(
                "HKCategoryValueSleepAnalysisNap",
                "2024-03-10 03:00:00 +0100",
                "2024-03-10 04:00:00 +0100",
            ),
            s(
                "HKCategoryValueSleepAnalysisAwake",
                "2024-03-10 05:00:00 +0100",
                "2024-03-10 04:00:00 +0100",
            ),
        ]
        .join("\n");
        let (report, sink) = run(&body);
        use SleepStage::*;
        let stages: Vec<_> = sink.sleep.iter().map(|i| i.stage).collect();
        assert_eq!(stages, [InBed, Light, Deep, Rem, Awake, Sleeping, Sleeping]);
        assert_eq!(sink.sleep[2].end - sink.sleep[2].start, 3_600_000_000);
        assert_eq!(report.counts.sleep_intervals, 7);
        assert_eq!(report.counts.skipped[&SkipReason::UnknownSleepValue], 1);
        assert_eq!(report.counts.skipped[&SkipReason::EndBeforeStart], 1);
    }

    #[test]
    fn blood_pressure_correlation_gives_two_samples_once() {
        let inner = |ty: &str, v: &str, t: &str| {
            format!(
                r#"  <Record type="HKQuantityTypeIdentifierBloodPressure{ty}" sourceName="Omron" unit="mmHg" startDate="{t}" endDate="{t}" value="{v}"/>"#
            )
        };
        let t = "2024-03-10 08:00:00 +0100";
        let body = format!(
            "{}\n{}\n <Correlation type=\"HKCorrelationTypeIdentifierBloodPressure\" sourceName=\"Omron\" startDate=\"{t}\" endDate=\"{t}\">\n  <MetadataEntry key=\"k\" value=\"v\"/>\n{}\n{}\n </Correlation>",
            inner("Systolic", "121", t),
            inner("Diastolic", "79", t),
            inner("Systolic", "121", "2024-03-10 08:00:01 +0100"),
            inner("Diastolic", "79", t),
        );
        let (report, sink) = run(&body);
        assert_eq!(report.counts.correlations, 1);
        assert_eq!(report.counts.samples, 2);
        assert_eq!(
            report.counts.skipped[&SkipReason::DuplicateInCorrelation],
            2
        );
        let ids: Vec<i16> = sink.samples.iter().map(|s| s.series.id).collect();
        assert_eq!(ids, [22, 23]);
        assert_eq!(sink.samples[0].start, sink.samples[1].start);
        assert_eq!(
            (sink.samples[0].value, sink.samples[1].value),
            (121.0, 79.0)
        );
    }

    #[test]
    fn workouts_with_statistics_events_and_metadata() {
        let body = format!(
            r#" <Workout workoutActivityType="HKWorkoutActivityTypeRunning" duration="30.5" durationUnit="min" sourceName="Watch" device="{WATCH}" startDate="2024-03-10 07:00:00 +0100" endDate="2024-03-10 07:31:00 +0100">
  <MetadataEntry key="HKIndoorWorkout" value="1"/>
  <MetadataEntry key="HKElevationAscended" value="1250 cm"/>
  <MetadataEntry key="HKAverageMETs" value="9.8 kcal/hr·kg"/>
  <WorkoutEvent type="HKWorkoutEventTypePause" date="2024-03-10 07:10:00 +0100"/>
  <WorkoutEvent type="HKWorkoutEventTypeSegment" date="2024-03-10 07:00:00 +0100" duration="5" durationUnit="min"/>
  <WorkoutStatistics type="HKQuantityTypeIdentifierActiveEnergyBurned" startDate="2024-03-10 07:00:00 +0100" endDate="2024-03-10 07:31:00 +0100" sum="1255.2" unit="kJ"/>
  <WorkoutStatistics type="HKQuantityTypeIdentifierDistanceWalkingRunning" sum="5.2" unit="km"/>
  <WorkoutStatistics type="HKQuantityTypeIdentifierHeartRate" average="151" minimum="98" maximum="178" unit="count/min"/>
  <WorkoutStatistics type="HKQuantityTypeIdentifierStepCount" sum="5012" unit="count"/>
  <WorkoutRoute sourceName="Watch"><FileReference path="/workout-routes/route.gpx"/></WorkoutRoute>
 </Workout>
 <Workout workoutActivityType="HKWorkoutActivityTypeUnderwaterBasketWeaving" duration="10" durationUnit="min" totalDistance="1" totalDistanceUnit="mi" totalEnergyBurned="100" totalEnergyBurnedUnit="kcal" sourceName="Watch" startDate="2024-03-10 09:00:00 +0100" endDate="2024-03-10 09:10:00 +0100"/>"#
        );
        let (report, sink) = run(&body);
        assert_eq!(report.counts.workouts, 2);
        let w = &sink.workouts[0];
        assert_eq!(w.workout_type.as_str(), "treadmill");
        assert_eq!(w.duration_s, 1830.0);
        assert_eq!(w.zone_offset_min, 60);
        approx(w.stats.energy_kcal, 300.0);
        approx(w.stats.distance_m, 5200.0);
        approx(w.stats.elevation_gain_m, 12.5);
        approx(w.stats.avg_met, 9.8);
        assert_eq!(
            (
                w.stats.heart_rate_avg,
                w.stats.heart_rate_min,
                w.stats.heart_rate_max,
                w.stats.steps
            ),
            (Some(151.0), Some(98.0), Some(178.0), Some(5012.0))
        );
        assert_eq!(w.events.len(), 2);
        assert_eq!(w.events[0].kind, "Pause");
        assert_eq!(w.events[1].duration_s, Some(300.0));
        assert_eq!(w.metadata[0], ("HKIndoorWorkout".into(), "1".into()));
        let legacy = &sink.workouts[1];
        assert_eq!(legacy.workout_type.as_str(), "other");
        approx(legacy.stats.distance_m, 1609.344);
        approx(legacy.stats.energy_kcal, 100.0);
        assert_eq!(
            report.counts.unmapped_workout_types["HKWorkoutActivityTypeUnderwaterBasketWeaving"],
            1
        );
    }

    #[test]
    fn activity_summary_and_me() {
        let body = r#" <Me HKCharacteristicTypeIdentifierDateOfBirth="1985-04-12" HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexFemale" HKCharacteristicTypeIdentifierBloodType="HKBloodTypeNotSet"/>
 <ActivitySummary dateComponents="2024-03-10" activeEnergyBurned="2092" activeEnergyBurnedGoal="2092" activeEnergyBurnedUnit="kJ" appleMoveTime="0" appleMoveTimeGoal="0" appleExerciseTime="32" appleExerciseTimeGoal="30" appleStandHours="11" appleStandHoursGoal="12"/>
 <ActivitySummary dateComponents="" activeEnergyBurned="1"/>"#;
        let (report, sink) = run(body);
        assert_eq!(
            sink.me,
            [Me {
                birth_date: NaiveDate::from_ymd_opt(1985, 4, 12),
                sex: Some(BiologicalSex::Female)
            }]
        );
        let a = &sink.summaries[0];
        assert_eq!(a.date, NaiveDate::from_ymd_opt(2024, 3, 10).unwrap());
        approx(a.active_energy_kcal, 500.0);
        assert_eq!(
            (a.exercise_time_min, a.stand_hours, a.stand_hours_goal),
            (Some(32.0), Some(11.0), Some(12.0))
        );
        assert_eq!(report.counts.activity_summaries, 1);
        assert_eq!(report.counts.skipped[&SkipReason::BadDate], 1);
    }

    #[test]
    fn records_with_children_are_parsed_and_children_skipped() {
        let body = r#" <Record type="HKQuantityTypeIdentifierHeartRateVariabilitySDNN" sourceName="Watch" unit="ms" startDate="2024-03-10 08:00:00 +0100" endDate="2024-03-10 08:01:00 +0100" value="45">
  <HeartRateVariabilityMetadataList>
   <InstantaneousBeatsPerMinute bpm="61" time="8:00:01.00 AM"/>
  </HeartRateVariabilityMetadataList>
 </Record>"#;
        let (report, sink) = run(body);
        assert_eq!(report.counts.records, 1);
        assert_eq!(sink.samples.len(), 1);
        assert_eq!(sink.samples[0].end - sink.samples[0].start, 60_000_000);
    }

    fn err(input: &[u8]) -> ImportError {
        parse(input, &mut NullSink).expect_err("must fail")
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(matches!(err(b""), ImportError::Empty));
        assert!(matches!(err(b"  \n "), ImportError::Empty));
        assert_eq!(err(b"").to_string(), "empty input: the file holds no XML");
    }

    #[test]
    fn truncated_input_reports_the_byte_position() {
        let full = doc(&rec("StepCount", "count", "5", "2024-03-10 08:00:00 +0100"));
        // Cut inside the Record tag.
        let cut = full.find("value=").unwrap();
        let e = err(&full.as_bytes()[..cut]);
        assert!(matches!(e, ImportError::Truncated { .. }), "{e}");
        let pos = e.position().unwrap();
        assert!(pos > 0 && pos <= cut as u64, "{pos} vs {cut}");
        assert!(e.to_string().starts_with("truncated XML at byte"), "{e}");
        // Cut after a complete record: the root is never closed.
        let cut = full.find("</HealthData>").unwrap();
        let e = err(&full.as_bytes()[..cut]);
        assert!(
            matches!(e, ImportError::Truncated { position, .. } if position == cut as u64),
            "{e}"
        );
        assert!(e.to_string().contains("missing </HealthData>"), "{e}");
    }

    #[test]
    fn malformed_input_reports_message_and_position() {
        let bad = doc(" <Record type=\"x\"></Workout>");
        let e = err(bad.as_bytes());
        assert!(matches!(e, ImportError::Malformed { .. }), "{e}");
        let at = bad.find("</Workout>").unwrap() as u64;
        assert!(e.position().unwrap() >= at, "{e}");
        assert!(e.to_string().contains("malformed XML at byte"), "{e}");
        let e = err(b"<html><body/></html>");
        assert!(e.to_string().contains("not an Apple Health export"), "{e}");
        assert_eq!(e.position(), Some(0));
    }

    #[test]
    fn parses_a_generated_export_at_a_sane_rate_even_unoptimised() {
        use crate::ingest::apple::generate;
        let mut xml = Vec::new();
        let expected = generate(&mut xml, 9, 5_000_000).unwrap();
        let t = std::time::Instant::now();
        let report = parse(xml.as_slice(), &mut NullSink).unwrap();
        let rate = expected.elements() as f64 / t.elapsed().as_secs_f64();
        assert_eq!(report.counts, expected);
        // A floor for debug builds on a busy CI core; release figures are in the module doc.
        eprintln!("debug parse rate: {rate:.0} elements/s");
        assert!(rate > 10_000.0, "{rate:.0} elements/s");
    }

    #[test]
    fn a_failing_sink_stops_the_parse() {
        struct Fail;
        impl Sink for Fail {
            fn sample(&mut self, _: &Sample) -> Result<(), SinkError> {
                Err("disk full".into())
            }
        }
        let d = doc(&rec("StepCount", "count", "5", "2024-03-10 08:00:00 +0100"));
        let e = parse(d.as_bytes(), &mut Fail).unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
    }
}
