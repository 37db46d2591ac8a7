//! A deterministic synthetic Apple Health export, for tests and benchmarks.
//!
//! The same seed gives the same bytes. Alongside the XML it returns the [`Counts`] a correct parse
//! must report, so a test can compare the two exactly. Content per day: iPhone and Apple Watch
//! both writing steps for the same minutes, watch heart rate, energy in `Cal` and (Oura) `kJ`,
//! distances in km or mi, `%` fractions, glucose in mg/dL or `mmol<180.15…>/L`, weight in lb,
//! temperature in degF, sleep stages (named, and Oura's legacy integers), a workout with
//! statistics/events/metadata/route, the day's ActivitySummary, a period every 28 days, a blood-pressure Correlation whose
//! readings are also written at top level (as Apple does), unknown types and bad values. Time zones:
//! US Pacific with both DST changes, and trips to UTC+1, UTC+9 and UTC+5:30.
//!
//! As real exports do, every record of a device prints a different HKDevice object address; the
//! phone and watch update their software in the night of day 3 (so that night's records carry two
//! versions, and the nights before it use the pre-stages `Asleep` value); a third-party scale
//! (`manufacturer:Acme, model:BS-200, hardware:2`) weighs in every third day; every third day
//! has a nap; some nights' last sleep record is listed after the next night (a late sync); and
//! cycling rides (27.9 km) come with the watch's own `DistanceCycling` series.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufWriter, Write};

use serde::{Deserialize, Serialize};

use super::dates::{days_from_civil, format_apple_date};
use super::records::{Counts, SkipReason};

/// SplitMix64: tiny, fast and stable across crate versions (the bytes must not change).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Src {
    name: &'static str,
    /// App version before and after the export's software update ([`UPDATE_AT`]).
    version: [&'static str; 2],
    /// The HKDevice fields other than its address and software version.
    device: Option<&'static str>,
    /// Device software before and after the update.
    software: [&'static str; 2],
}

const PHONE: Src = Src {
    name: "Anna’s iPhone",
    version: ["17.3.1", "17.4"],
    device: Some("name:iPhone, manufacturer:Apple Inc., model:iPhone, hardware:iPhone14,2"),
    software: ["17.3.1", "17.4"],
};
const WATCH: Src = Src {
    name: "Anna’s Apple Watch",
    version: ["10.3", "10.4"],
    device: Some("name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,1"),
    software: ["10.3", "10.4"],
};
const SCALE: Src = Src {
    name: "Withings Health Mate",
    version: ["6.2.1", "6.2.1"],
    device: Some("name:Body+, manufacturer:Withings, model:WBS05, hardware:WBS05"),
    software: ["1.2", "1.2"],
};
/// A third-party device whose `hardware` is a bare revision number.
const ACME: Src = Src {
    name: "Acme Scale",
    version: ["3.2", "3.2"],
    device: Some("name:Smart Scale, manufacturer:Acme, model:BS-200, hardware:2"),
    software: ["2.0.1", "2.0.1"],
};
const OURA: Src = Src {
    name: "Oura",
    version: ["5.1", "5.1"],
    device: None,
    software: ["", ""],
};
const MFP: Src = Src {
    name: "MyFitnessPal",
    version: ["24.1.0", "24.1.0"],
    device: None,
    software: ["", ""],
};
const CGM: Src = Src {
    name: "Dexcom G7",
    version: ["2.0", "2.0"],
    device: None,
    software: ["", ""],
};
const OMRON: Src = Src {
    name: "OMRON connect &amp; BP",
    version: ["7.4", "7.4"],
    device: None,
    software: ["", ""],
};
const HEALTH: Src = Src {
    name: "Health",
    version: ["17.3.1", "17.4"],
    device: None,
    software: ["", ""],
};

/// Number of distinct sources a generated export holds.
#[cfg(test)]
pub const GENERATED_SOURCES: usize = 9;

const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// First day: 2024-01-01 (UTC midnight); US DST starts 2024-03-10 and ends 2024-11-03.
const EPOCH_DAY: i64 = 19_723;
/// The phone and watch update their software in the night of day 3 (2024-01-04, 02:00 local):
/// the records of that night carry both versions.
/// Every cycling workout: 27.9 km at 25 km/h.
const CYCLING_KM: f64 = 27.9;
const CYCLING_KMH: f64 = 25.0;
const UPDATE_AT: i64 = (EPOCH_DAY + 3) * DAY + 10 * HOUR;

/// UTC offset in minutes at a UTC instant: US Pacific with DST, except on trips.
fn offset_at(utc: i64) -> i16 {
    let day = utc.div_euclid(DAY);
    let n = day - EPOCH_DAY;
    if (25..30).contains(&n.rem_euclid(45)) {
        return match n.div_euclid(45).rem_euclid(3) {
            0 => 60,
            1 => 540,
            _ => 330,
        };
    }
    let (y, _, _) = super::dates::civil_from_days(day);
    let sunday_on_or_after = |d: i64| d + (7 - (d + 4).rem_euclid(7)) % 7;
    let dst_start = (sunday_on_or_after(days_from_civil(y, 3, 8)) * DAY) + 10 * HOUR;
    let dst_end = (sunday_on_or_after(days_from_civil(y, 11, 1)) * DAY) + 9 * HOUR;
    if (dst_start..dst_end).contains(&utc) {
        -420
    } else {
        -480
    }
}

struct Gen<W: Write> {
    out: BufWriter<W>,
    line: Vec<u8>,
    bytes: u64,
    rng: Rng,
    c: Counts,
    per_series: BTreeMap<i16, u64>,
    /// Time of the element being written (picks the software version).
    now: i64,
    /// Records written, hashed into each one's HKDevice address: real exports print a different
    /// object address on every record of the same device.
    serial: u64,
    /// A sleep record held back to be listed after the next night, as late syncs are.
    late: Vec<u8>,
    /// Day 0 of [`Gen::day`] (UTC days since 1970).
    first_day: i64,
    /// A seeded export's content; `None` writes the test fixture, byte for byte as before.
    shape: Option<Shape>,
    /// Writes the next records whatever the shape's series (a workout's own series).
    forced: bool,
}

/// Inclusive range of UTC days (since 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Days {
    pub first: i64,
    pub last: i64,
}

impl Days {
    pub fn len(&self) -> i64 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        self.last < self.first
    }

    fn contains(&self, day: i64) -> bool {
        (self.first..=self.last).contains(&day)
    }

    /// How many of `count` events spread evenly over the range fall on `day`.
    fn share(&self, day: i64, count: i64) -> i64 {
        if !self.contains(day) {
            return 0;
        }
        let (k, n) = (day - self.first, self.len());
        (k + 1) * count / n - k * count / n
    }
}

/// The continuous series of a seeded export (series ids; blood pressure is 22 and 23).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesShape {
    pub days: Days,
    pub ids: BTreeSet<i16>,
}

/// The workouts of a seeded export: `count` spread over `days`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkoutShape {
    pub days: Days,
    pub count: i64,
    /// HealthKit activity names (after `HKWorkoutActivityType`), picked at random.
    pub kinds: Vec<String>,
    /// Inclusive ranges: duration in minutes, lowest and highest heart rate, steps.
    pub minutes: (i64, i64),
    pub hr_min: (i64, i64),
    pub hr_max: (i64, i64),
    pub steps: (i64, i64),
}

/// The nights of a seeded export: `count` (at most one a day) spread over `days`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SleepShape {
    pub days: Days,
    pub count: i64,
    /// Time asleep, minutes (inclusive range).
    pub minutes: (i64, i64),
    /// Chance of an afternoon nap on a day with a night, percent.
    pub nap_pct: i64,
    /// Weekday nights near the short end, weekend nights longer.
    pub weekend_catchup: bool,
    /// Share of the time asleep per stage, percent ranges (light sleep is the rest).
    pub deep_pct: (i64, i64),
    pub rem_pct: (i64, i64),
    pub awake_pct: (i64, i64),
}

/// What a seeded export holds (`/api/v1/settings/seed`): each part over its own days. Only the
/// watch writes, and none of the fixture's oddities (unknown types, bad values, late syncs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    pub series: Option<SeriesShape>,
    pub workouts: Option<WorkoutShape>,
    pub sleep: Option<SleepShape>,
}

impl Shape {
    /// The days any part covers.
    fn span(&self) -> Option<Days> {
        let parts = [
            self.series.as_ref().map(|s| s.days),
            self.workouts.as_ref().map(|w| w.days),
            self.sleep.as_ref().map(|s| s.days),
        ];
        let mut all = parts.into_iter().flatten().filter(|d| !d.is_empty());
        let first = all.next()?;
        Some(all.fold(first, |a, d| Days {
            first: a.first.min(d.first),
            last: a.last.max(d.last),
        }))
    }
}

impl<W: Write> Gen<W> {
    fn new(out: W, seed: u64, shape: Option<Shape>) -> Self {
        Gen {
            out: BufWriter::with_capacity(1 << 20, out),
            line: Vec::with_capacity(4096),
            bytes: 0,
            rng: Rng(seed),
            c: Counts::default(),
            per_series: BTreeMap::new(),
            now: 0,
            serial: 0,
            late: Vec::new(),
            first_day: EPOCH_DAY,
            shape,
            forced: false,
        }
    }

    /// Whether a record of `series` is written (the fixture writes every one).
    fn wants(&self, series: i16) -> bool {
        match &self.shape {
            None => true,
            Some(shape) => {
                self.forced
                    || shape
                        .series
                        .as_ref()
                        .is_some_and(|s| s.ids.contains(&series))
            }
        }
    }

    fn flush_line(&mut self) -> io::Result<()> {
        self.out.write_all(&self.line)?;
        self.bytes += self.line.len() as u64;
        self.line.clear();
        Ok(())
    }

    fn date(&mut self, utc: i64) {
        let mut b = [0u8; 25];
        format_apple_date(utc, offset_at(utc), &mut b);
        self.line.extend_from_slice(&b);
    }

    fn src(&mut self, s: &Src) {
        let v = usize::from(self.now >= UPDATE_AT);
        let _ = write!(
            self.line,
            " sourceName=\"{}\" sourceVersion=\"{}\"",
            s.name, s.version[v]
        );
        if let Some(d) = s.device {
            self.serial += 1;
            let addr = 0x2_8000_0000 + (Rng(self.serial).next() & 0x0fff_fff8);
            let _ = write!(
                self.line,
                " device=\"&lt;&lt;HKDevice: 0x{addr:x}&gt;, {d}, software:{}&gt;\"",
                s.software[v]
            );
        }
    }

    /// One `<Record …>` line; `close` false leaves it open for children.
    // Mirrors the attributes of a `<Record>` one to one; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn record_line(
        &mut self,
        ty: &str,
        s: &Src,
        unit: &str,
        start: i64,
        end: i64,
        value: &str,
        close: bool,
    ) {
        self.line.extend_from_slice(b" <Record type=\"");
        self.line.extend_from_slice(ty.as_bytes());
        self.line.push(b'"');
        self.now = start;
        self.src(s);
        if !unit.is_empty() {
            let _ = write!(self.line, " unit=\"{unit}\"");
        }
        self.line.extend_from_slice(b" creationDate=\"");
        self.date(end);
        self.line.extend_from_slice(b"\" startDate=\"");
        self.date(start);
        self.line.extend_from_slice(b"\" endDate=\"");
        self.date(end);
        let _ = write!(self.line, "\" value=\"{value}\"");
        self.line
            .extend_from_slice(if close { b"/>\n" } else { b">\n" });
        self.c.records += 1;
    }

    /// A quantity record expected to become one sample of `series`.
    #[allow(clippy::too_many_arguments)]
    fn q(
        &mut self,
        hk: &str,
        series: i16,
        s: &Src,
        unit: &str,
        start: i64,
        end: i64,
        v: f64,
        decimals: usize,
    ) -> io::Result<()> {
        if !self.wants(series) {
            return Ok(());
        }
        let value = format!("{v:.decimals$}");
        let ty = format!("HKQuantityTypeIdentifier{hk}");
        self.record_line(&ty, s, unit, start, end, &value, true);
        self.c.samples += 1;
        *self.per_series.entry(series).or_default() += 1;
        self.flush_line()
    }

    fn skipped(
        &mut self,
        ty: &str,
        s: &Src,
        unit: &str,
        t: i64,
        value: &str,
        reason: SkipReason,
    ) -> io::Result<()> {
        if self.shape.is_some() {
            return Ok(());
        }
        self.record_line(ty, s, unit, t, t + MIN, value, true);
        self.c.skip(reason);
        self.flush_line()
    }

    fn unknown(
        &mut self,
        ty: &str,
        s: &Src,
        unit: &str,
        start: i64,
        end: i64,
        value: &str,
    ) -> io::Result<()> {
        if self.shape.is_some() {
            return Ok(());
        }
        self.record_line(ty, s, unit, start, end, value, true);
        *self.c.unknown_types.entry(ty.to_string()).or_default() += 1;
        self.flush_line()
    }

    fn sleep(&mut self, s: &Src, start: i64, end: i64, value: &str) -> io::Result<()> {
        self.record_line(
            "HKCategoryTypeIdentifierSleepAnalysis",
            s,
            "",
            start,
            end,
            value,
            true,
        );
        self.c.sleep_intervals += 1;
        self.flush_line()
    }

    fn header(&mut self) -> io::Result<()> {
        self.line.extend_from_slice(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE HealthData [\n<!-- HealthKit Export Version: 13 -->\n<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary|ClinicalRecord|Audiogram|VisionPrescription)*)>\n<!ATTLIST HealthData\n  locale CDATA #REQUIRED\n>\n<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>\n]>\n<HealthData locale=\"en_US\">\n <ExportDate value=\"2025-01-01 09:00:00 -0800\"/>\n <Me HKCharacteristicTypeIdentifierDateOfBirth=\"1988-06-14\" HKCharacteristicTypeIdentifierBiologicalSex=\"HKBiologicalSexFemale\" HKCharacteristicTypeIdentifierBloodType=\"HKBloodTypeAPositive\" HKCharacteristicTypeIdentifierFitzpatrickSkinType=\"HKFitzpatrickSkinTypeNotSet\" HKCharacteristicTypeIdentifierCardioFitnessMedicationsUse=\"None\"/>\n",
        );
        self.flush_line()
    }

    fn day(&mut self, n: i64) -> io::Result<()> {
        // Local midnight at home is about 08:00 UTC; the day's events hang off that.
        let t0 = (self.first_day + n) * DAY + 8 * HOUR;
        let miles = n % 7 == 3;

        // Phone and watch count the same walking minutes: overlapping steps (OW #1287).
        for slot in 0..48 {
            let t = t0 + 7 * HOUR + slot * 15 * MIN + self.rng.below(5) as i64 * MIN;
            let steps = self.rng.range(20.0, 900.0).round();
            self.q("StepCount", 80, &PHONE, "count", t, t + 10 * MIN, steps, 0)?;
            let w = (steps * self.rng.range(0.9, 1.1)).round();
            self.q("StepCount", 80, &WATCH, "count", t, t + 10 * MIN, w, 0)?;
            let km = steps * 0.00075;
            if miles {
                self.q(
                    "DistanceWalkingRunning",
                    100,
                    &PHONE,
                    "mi",
                    t,
                    t + 10 * MIN,
                    km / 1.609_344,
                    5,
                )?;
            } else {
                self.q(
                    "DistanceWalkingRunning",
                    100,
                    &PHONE,
                    "km",
                    t,
                    t + 10 * MIN,
                    km,
                    5,
                )?;
            }
        }
        for i in 0..240 {
            let t = t0 + i * 6 * MIN + self.rng.below(60) as i64 * 1_000_000;
            let hr = self.rng.range(52.0, 150.0).round();
            if i % 40 == 7 && self.shape.is_none() {
                // A record with metadata children, as the watch writes during workouts.
                self.record_line(
                    "HKQuantityTypeIdentifierHeartRate",
                    &WATCH,
                    "count/min",
                    t,
                    t,
                    &format!("{hr}"),
                    false,
                );
                self.line.extend_from_slice(b"  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" value=\"1\"/>\n </Record>\n");
                self.c.samples += 1;
                *self.per_series.entry(1).or_default() += 1;
                self.flush_line()?;
            } else {
                self.q("HeartRate", 1, &WATCH, "count/min", t, t, hr, 0)?;
            }
        }
        for i in 0..64 {
            let t = t0 + 6 * HOUR + i * 15 * MIN;
            let v = self.rng.range(0.5, 25.0);
            self.q(
                "ActiveEnergyBurned",
                81,
                &WATCH,
                "Cal",
                t,
                t + 15 * MIN,
                v,
                3,
            )?;
        }
        for i in 0..16 {
            let t = t0 + 7 * HOUR + i * HOUR;
            let v = self.rng.range(10.0, 120.0);
            self.q("ActiveEnergyBurned", 81, &OURA, "kJ", t, t + HOUR, v, 2)?;
            let stand = self.rng.range(1.0, 12.0).round();
            self.q(
                "AppleStandTime",
                83,
                &WATCH,
                "min",
                t,
                t + 5 * MIN,
                stand,
                0,
            )?;
            let hour = if i % 3 == 0 {
                "HKCategoryValueAppleStandHourIdle"
            } else {
                "HKCategoryValueAppleStandHourStood"
            };
            self.unknown(
                "HKCategoryTypeIdentifierAppleStandHour",
                &WATCH,
                "",
                t,
                t + HOUR,
                hour,
            )?;
        }
        for i in 0..24 {
            let t = t0 + i * HOUR;
            let v = self.rng.range(55.0, 75.0);
            self.q("BasalEnergyBurned", 82, &WATCH, "Cal", t, t + HOUR, v, 3)?;
        }
        for i in 0..30 {
            let t = t0 + 17 * HOUR + i * MIN;
            self.q("AppleExerciseTime", 84, &WATCH, "min", t, t + MIN, 1.0, 0)?;
        }
        for i in 0..8 {
            let t = t0 + i * 40 * MIN;
            let spo2 = self.rng.range(0.93, 0.995);
            self.q("OxygenSaturation", 20, &WATCH, "%", t, t, spo2, 3)?;
            let rr = self.rng.range(11.0, 18.0);
            self.q(
                "RespiratoryRate",
                24,
                &WATCH,
                "count/min",
                t,
                t + 30 * MIN,
                rr,
                1,
            )?;
        }
        for i in 0..6 {
            let t = t0 + i * 4 * HOUR + 13 * MIN;
            let v = self.rng.range(20.0, 90.0);
            if i == 2 && self.shape.is_none() {
                // HRV records carry their beat-to-beat list as children.
                self.record_line(
                    "HKQuantityTypeIdentifierHeartRateVariabilitySDNN",
                    &WATCH,
                    "ms",
                    t,
                    t + MIN,
                    &format!("{v:.3}"),
                    false,
                );
                self.line.extend_from_slice(b"  <HeartRateVariabilityMetadataList>\n   <InstantaneousBeatsPerMinute bpm=\"64\" time=\"2:13:01.12 AM\"/>\n   <InstantaneousBeatsPerMinute bpm=\"66\" time=\"2:13:02.05 AM\"/>\n  </HeartRateVariabilityMetadataList>\n </Record>\n");
                self.c.samples += 1;
                *self.per_series.entry(3).or_default() += 1;
                self.flush_line()?;
            } else {
                self.q(
                    "HeartRateVariabilitySDNN",
                    3,
                    &WATCH,
                    "ms",
                    t,
                    t + MIN,
                    v,
                    3,
                )?;
            }
        }
        let v = self.rng.range(50.0, 62.0).round();
        self.q(
            "RestingHeartRate",
            2,
            &WATCH,
            "count/min",
            t0 + 23 * HOUR,
            t0 + 23 * HOUR,
            v,
            0,
        )?;
        let v = self.rng.range(85.0, 110.0).round();
        self.q(
            "WalkingHeartRateAverage",
            5,
            &WATCH,
            "count/min",
            t0 + 23 * HOUR,
            t0 + 23 * HOUR,
            v,
            0,
        )?;
        let v = self.rng.range(-0.5, 0.5) + 36.4;
        self.q(
            "AppleSleepingWristTemperature",
            45,
            &WATCH,
            "degC",
            t0 - HOUR,
            t0 + 6 * HOUR,
            v,
            3,
        )?;
        if n % 7 == 0 {
            let v = self.rng.range(38.0, 46.0);
            self.q(
                "VO2Max",
                60,
                &WATCH,
                "mL/min·kg",
                t0 + 18 * HOUR,
                t0 + 18 * HOUR,
                v,
                2,
            )?;
            let v = self.rng.range(0.9, 1.0);
            self.q(
                "AppleWalkingSteadiness",
                124,
                &PHONE,
                "%",
                t0 + 12 * HOUR,
                t0 + 12 * HOUR,
                v,
                3,
            )?;
            let f = 98.0 + self.rng.range(-0.8, 1.2);
            self.q(
                "BodyTemperature",
                45,
                &HEALTH,
                "degF",
                t0 + 9 * HOUR,
                t0 + 9 * HOUR,
                f,
                1,
            )?;
            let cm = self.rng.range(70.0, 74.0);
            self.q(
                "WaistCircumference",
                47,
                &HEALTH,
                "in",
                t0 + 9 * HOUR,
                t0 + 9 * HOUR,
                cm / 2.54,
                1,
            )?;
        }
        for i in 0..10 {
            let t = t0 + 8 * HOUR + i * 50 * MIN;
            let v = self.rng.range(3.5, 5.5);
            self.q("WalkingSpeed", 121, &PHONE, "km/hr", t, t + 2 * MIN, v, 2)?;
            let v = self.rng.range(60.0, 78.0);
            self.q("WalkingStepLength", 120, &PHONE, "cm", t, t + 2 * MIN, v, 1)?;
            if i % 2 == 0 {
                let v = self.rng.range(0.0, 0.08);
                self.q(
                    "WalkingAsymmetryPercentage",
                    123,
                    &PHONE,
                    "%",
                    t,
                    t + 2 * MIN,
                    v,
                    3,
                )?;
                let v = self.rng.range(0.22, 0.34);
                self.q(
                    "WalkingDoubleSupportPercentage",
                    122,
                    &PHONE,
                    "%",
                    t,
                    t + 2 * MIN,
                    v,
                    3,
                )?;
            }
        }
        for i in 0..2 {
            let t = t0 + 10 * HOUR + i * 5 * HOUR;
            let v = self.rng.range(1.0, 2.0);
            self.q("StairAscentSpeed", 126, &PHONE, "ft/s", t, t + MIN, v, 3)?;
            let v = self.rng.range(1.2, 2.2);
            self.q(
                "StairDescentSpeed",
                125,
                &PHONE,
                "ft/s",
                t + 2 * MIN,
                t + 3 * MIN,
                v,
                3,
            )?;
            let v = self.rng.range(1.0, 4.0).round();
            self.q("FlightsClimbed", 86, &PHONE, "count", t, t + 3 * MIN, v, 0)?;
        }
        for i in 0..12 {
            let t = t0 + 7 * HOUR + i * HOUR;
            let v = self.rng.range(45.0, 85.0);
            self.q(
                "EnvironmentalAudioExposure",
                200,
                &WATCH,
                "dBASPL",
                t,
                t + 30 * MIN,
                v,
                2,
            )?;
            if i % 3 == 0 {
                let v = self.rng.range(55.0, 80.0);
                self.q(
                    "HeadphoneAudioExposure",
                    201,
                    &PHONE,
                    "dBASPL",
                    t,
                    t + 20 * MIN,
                    v,
                    2,
                )?;
                let v = self.rng.range(1.0, 20.0).round();
                self.q("TimeInDaylight", 203, &WATCH, "min", t, t + 20 * MIN, v, 0)?;
            }
        }
        // Morning weigh-in from a scale app (pounds, fractions).
        let tw = t0 + 7 * HOUR + 5 * MIN;
        let kg = 64.0 + self.rng.range(-1.0, 1.0);
        self.q("BodyMass", 41, &SCALE, "lb", tw, tw, kg / 0.453_592_37, 1)?;
        let fat = self.rng.range(0.22, 0.26);
        self.q("BodyFatPercentage", 42, &SCALE, "%", tw, tw, fat, 3)?;
        self.q(
            "BodyMassIndex",
            43,
            &SCALE,
            "count",
            tw,
            tw,
            kg / (1.68 * 1.68),
            1,
        )?;
        self.q(
            "LeanBodyMass",
            44,
            &SCALE,
            "lb",
            tw,
            tw,
            kg * (1.0 - fat) / 0.453_592_37,
            1,
        )?;
        if n % 3 == 1 {
            let kg = 64.2 + self.rng.range(-1.0, 1.0);
            self.q(
                "BodyMass",
                41,
                &ACME,
                "kg",
                tw + 2 * MIN,
                tw + 2 * MIN,
                kg,
                2,
            )?;
        }
        if n == 0 {
            self.q("Height", 40, &HEALTH, "ft", tw, tw, 1.68 / 0.3048, 2)?;
        }
        // CGM readings, in mg/dL or mmol/L depending on the app's setting that day.
        for i in 0..48 {
            let t = t0 + i * 30 * MIN;
            let mg = self.rng.range(75.0, 160.0);
            if n % 2 == 0 {
                self.q("BloodGlucose", 21, &CGM, "mg/dL", t, t, mg, 0)?;
            } else {
                self.q(
                    "BloodGlucose",
                    21,
                    &CGM,
                    "mmol&lt;180.1558800000541&gt;/L",
                    t,
                    t,
                    mg / 18.0156,
                    1,
                )?;
            }
        }
        for i in 0..4 {
            let t = t0 + 9 * HOUR + i * 3 * HOUR;
            let ml = self.rng.range(200.0, 500.0).round();
            self.q("DietaryWater", 507, &MFP, "mL", t, t, ml, 0)?;
        }
        for i in 0..3 {
            let t = t0 + 8 * HOUR + i * 5 * HOUR;
            let kcal = self.rng.range(300.0, 900.0);
            self.unknown(
                "HKQuantityTypeIdentifierDietaryEnergyConsumed",
                &MFP,
                "kcal",
                t,
                t,
                &format!("{kcal:.1}"),
            )?;
        }
        self.blood_pressure(t0 + 8 * HOUR + 30 * MIN)?;
        if self.shape.is_some() {
            return Ok(());
        }
        self.sleep_night(n, t0)?;
        self.oura_night(t0)?;
        if n % 2 == 0 {
            self.workout(n, t0 + 17 * HOUR)?;
        }
        if n % 5 == 0 {
            self.edge_cases(t0 + 12 * HOUR)?;
        }
        self.menstrual_flow(n, t0)?;
        self.activity_summary(n)
    }

    /// A five-day period every 28 days logged in the Health app (heavy to light, the first day
    /// marked as the cycle start, as HealthKit writes it), and a "no flow" day mid-cycle.
    fn menstrual_flow(&mut self, n: i64, t0: i64) -> io::Result<()> {
        const TY: &str = "HKCategoryTypeIdentifierMenstrualFlow";
        let value = match n % 28 {
            0 | 1 => "HKCategoryValueVaginalBleedingHeavy",
            2 => "HKCategoryValueVaginalBleedingMedium",
            3 | 4 => "HKCategoryValueMenstrualFlowLight",
            14 => "HKCategoryValueMenstrualFlowNone",
            _ => return Ok(()),
        };
        let t = t0 + HOUR;
        let first = n % 28 == 0;
        self.record_line(TY, &PHONE, "", t, t, value, !first);
        if first {
            self.line.extend_from_slice(
                b"  <MetadataEntry key=\"HKMenstrualCycleStart\" value=\"1\"/>\n  <MetadataEntry key=\"HKWasUserEntered\" value=\"1\"/>\n </Record>\n",
            );
        }
        self.c.menstrual_flows += 1;
        self.flush_line()
    }

    fn blood_pressure(&mut self, t: i64) -> io::Result<()> {
        if !self.wants(22) {
            return Ok(());
        }
        let sys = self.rng.range(108.0, 132.0).round();
        let dia = self.rng.range(68.0, 85.0).round();
        self.q("BloodPressureSystolic", 22, &OMRON, "mmHg", t, t, sys, 0)?;
        self.q("BloodPressureDiastolic", 23, &OMRON, "mmHg", t, t, dia, 0)?;
        self.line
            .extend_from_slice(b" <Correlation type=\"HKCorrelationTypeIdentifierBloodPressure\"");
        self.now = t;
        self.src(&OMRON);
        self.line.extend_from_slice(b" creationDate=\"");
        self.date(t);
        self.line.extend_from_slice(b"\" startDate=\"");
        self.date(t);
        self.line.extend_from_slice(b"\" endDate=\"");
        self.date(t);
        self.line
            .extend_from_slice(b"\">\n  <MetadataEntry key=\"HKWasUserEntered\" value=\"0\"/>\n");
        self.flush_line()?;
        // Apple repeats the readings inside the correlation: the parser must not count them twice.
        for (ty, v) in [("Systolic", sys), ("Diastolic", dia)] {
            let ty = format!("HKQuantityTypeIdentifierBloodPressure{ty}");
            self.record_line(&ty, &OMRON, "mmHg", t, t, &format!("{v:.0}"), true);
            self.c.skip(SkipReason::DuplicateInCorrelation);
            self.flush_line()?;
        }
        self.line.extend_from_slice(b" </Correlation>\n");
        self.c.correlations += 1;
        self.flush_line()
    }

    fn sleep_night(&mut self, n: i64, t0: i64) -> io::Result<()> {
        let bed = t0 - HOUR - self.rng.below(40) as i64 * MIN;
        let wake = t0 + 6 * HOUR + self.rng.below(60) as i64 * MIN;
        self.sleep(&WATCH, bed, wake, "HKCategoryValueSleepAnalysisInBed")?;
        let stages = [
            "HKCategoryValueSleepAnalysisAsleepCore",
            "HKCategoryValueSleepAnalysisAsleepDeep",
            "HKCategoryValueSleepAnalysisAsleepCore",
            "HKCategoryValueSleepAnalysisAsleepREM",
            "HKCategoryValueSleepAnalysisAwake",
        ];
        let mut t = bed + 10 * MIN;
        let mut i = 0;
        while t < wake - 20 * MIN {
            let len = (10 + self.rng.below(40) as i64) * MIN;
            let end = (t + len).min(wake);
            // Before the update the watch runs an OS without stages (one "asleep" value).
            let stage = if t < UPDATE_AT && i % stages.len() != 4 {
                "HKCategoryValueSleepAnalysisAsleep"
            } else {
                stages[i % stages.len()]
            };
            self.sleep(&WATCH, t, end, stage)?;
            t = end;
            i += 1;
        }
        // Some nights' last stage is synced late: listed after the next night.
        let late = std::mem::take(&mut self.late);
        if n % 4 == 1 {
            self.record_line(
                "HKCategoryTypeIdentifierSleepAnalysis",
                &WATCH,
                "",
                wake - 5 * MIN,
                wake,
                "HKCategoryValueSleepAnalysisAwake",
                true,
            );
            self.c.sleep_intervals += 1;
            self.late = std::mem::take(&mut self.line);
        }
        if !late.is_empty() {
            self.line.extend_from_slice(&late);
            self.flush_line()?;
        }
        if n % 3 == 0 {
            // An afternoon nap.
            let nap = t0 + 14 * HOUR + self.rng.below(30) as i64 * MIN;
            self.sleep(
                &WATCH,
                nap,
                nap + 40 * MIN,
                "HKCategoryValueSleepAnalysisInBed",
            )?;
            self.sleep(
                &WATCH,
                nap + 8 * MIN,
                nap + 33 * MIN,
                "HKCategoryValueSleepAnalysisAsleepCore",
            )?;
        }
        Ok(())
    }

    fn oura_night(&mut self, t0: i64) -> io::Result<()> {
        // Oura writes the legacy integer values and its own night-time heart rate.
        let mut t = t0 - 50 * MIN;
        for v in ["0", "1", "3", "4", "3", "5", "2", "3", "5"] {
            let end = t + 40 * MIN;
            self.sleep(&OURA, t, end, v)?;
            t = end;
        }
        for i in 0..24 {
            let t = t0 + i * 15 * MIN;
            let hr = self.rng.range(48.0, 64.0).round();
            self.q("HeartRate", 1, &OURA, "count/min", t, t, hr, 0)?;
        }
        Ok(())
    }

    fn workout(&mut self, n: i64, start: i64) -> io::Result<()> {
        let kinds = [
            (
                "HKWorkoutActivityTypeRunning",
                "0",
                "HKQuantityTypeIdentifierDistanceWalkingRunning",
            ),
            (
                "HKWorkoutActivityTypeCycling",
                "0",
                "HKQuantityTypeIdentifierDistanceCycling",
            ),
            (
                "HKWorkoutActivityTypeSwimming",
                "0",
                "HKQuantityTypeIdentifierDistanceSwimming",
            ),
            (
                "HKWorkoutActivityTypeHighIntensityIntervalTraining",
                "1",
                "",
            ),
            ("HKWorkoutActivityTypeYoga", "1", ""),
            (
                "HKWorkoutActivityTypeRunning",
                "1",
                "HKQuantityTypeIdentifierDistanceWalkingRunning",
            ),
            ("HKWorkoutActivityTypeTraditionalStrengthTraining", "1", ""),
        ];
        let (ty, indoor, dist) = kinds[(n / 2) as usize % kinds.len()];
        let ty = if n % 60 == 30 {
            "HKWorkoutActivityTypeMindfulCooking"
        } else {
            ty
        };
        let mut minutes = self.rng.range(25.0, 70.0);
        let cycling = ty == "HKWorkoutActivityTypeCycling";
        if cycling {
            // 27.9 km at 25 km/h: more than the day's walking, so counting it shows.
            minutes = CYCLING_KM / CYCLING_KMH * 60.0;
        }
        let end = start + (minutes * 60.0) as i64 * 1_000_000;
        let _ = write!(
            self.line,
            " <Workout workoutActivityType=\"{ty}\" duration=\"{minutes:.4}\" durationUnit=\"min\""
        );
        self.now = start;
        self.src(&WATCH);
        self.line.extend_from_slice(b" creationDate=\"");
        self.date(end);
        self.line.extend_from_slice(b"\" startDate=\"");
        self.date(start);
        self.line.extend_from_slice(b"\" endDate=\"");
        self.date(end);
        self.line.extend_from_slice(b"\">\n");
        let _ = writeln!(
            self.line,
            "  <MetadataEntry key=\"HKIndoorWorkout\" value=\"{indoor}\"/>"
        );
        if ty.ends_with("Swimming") {
            self.line.extend_from_slice(b"  <MetadataEntry key=\"HKSwimmingLocationType\" value=\"1\"/>\n  <MetadataEntry key=\"HKLapLength\" value=\"25 m\"/>\n");
        }
        let _ = writeln!(
            self.line,
            "  <MetadataEntry key=\"HKAverageMETs\" value=\"{:.5} kcal/hr·kg\"/>",
            self.rng.range(4.0, 11.0)
        );
        let _ = writeln!(
            self.line,
            "  <MetadataEntry key=\"HKElevationAscended\" value=\"{:.0} cm\"/>",
            self.rng.range(0.0, 9000.0)
        );
        self.line.extend_from_slice(
            b"  <MetadataEntry key=\"HKTimeZone\" value=\"America/Los_Angeles\"/>\n",
        );
        for (k, at) in [("Pause", 10), ("Resume", 12)] {
            self.line
                .extend_from_slice(b"  <WorkoutEvent type=\"HKWorkoutEventType");
            let _ = write!(self.line, "{k}\" date=\"");
            self.date(start + at * MIN);
            self.line.extend_from_slice(b"\"/>\n");
        }
        self.line
            .extend_from_slice(b"  <WorkoutEvent type=\"HKWorkoutEventTypeSegment\" date=\"");
        self.date(start);
        self.line
            .extend_from_slice(b"\" duration=\"5.0\" durationUnit=\"min\"/>\n");
        let stat = |g: &mut Self, ty: &str, attrs: String| {
            let _ = write!(g.line, "  <WorkoutStatistics type=\"{ty}\" startDate=\"");
            g.date(start);
            g.line.extend_from_slice(b"\" endDate=\"");
            g.date(end);
            let _ = writeln!(g.line, "\" {attrs}/>");
        };
        let kcal = minutes * self.rng.range(6.0, 12.0);
        stat(
            self,
            "HKQuantityTypeIdentifierActiveEnergyBurned",
            format!("sum=\"{kcal:.3}\" unit=\"Cal\""),
        );
        stat(
            self,
            "HKQuantityTypeIdentifierBasalEnergyBurned",
            format!("sum=\"{:.3}\" unit=\"Cal\"", minutes * 1.1),
        );
        let avg = self.rng.range(110.0, 160.0);
        stat(
            self,
            "HKQuantityTypeIdentifierHeartRate",
            format!(
                "average=\"{avg:.2}\" minimum=\"{:.0}\" maximum=\"{:.0}\" unit=\"count/min\"",
                avg - 30.0,
                avg + 25.0
            ),
        );
        if !dist.is_empty() {
            let km = if cycling { CYCLING_KM } else { minutes * 0.15 };
            stat(self, dist, format!("sum=\"{km:.4}\" unit=\"km\""));
        }
        self.line.extend_from_slice(b"  <WorkoutRoute");
        self.src(&WATCH);
        self.line.extend_from_slice(b">\n   <MetadataEntry key=\"HKMetadataKeySyncVersion\" value=\"2\"/>\n   <FileReference path=\"/workout-routes/route_");
        self.date(start);
        self.line
            .extend_from_slice(b".gpx\"/>\n  </WorkoutRoute>\n </Workout>\n");
        self.c.workouts += 1;
        if ty == "HKWorkoutActivityTypeMindfulCooking" {
            *self.c.unmapped_workout_types.entry(ty.into()).or_default() += 1;
        }
        self.flush_line()?;
        if cycling {
            // The watch's own distance series of the ride, in five-minute pieces.
            let mut t = start;
            while t < end {
                let piece = (end - t).min(5 * MIN);
                let km = CYCLING_KMH * piece as f64 / HOUR as f64;
                self.q("DistanceCycling", 101, &WATCH, "km", t, t + piece, km, 6)?;
                t += piece;
            }
        }
        Ok(())
    }

    fn edge_cases(&mut self, t: i64) -> io::Result<()> {
        let hr = "HKQuantityTypeIdentifierHeartRate";
        self.skipped(hr, &WATCH, "count/min", t, "", SkipReason::EmptyValue)?;
        self.skipped(
            hr,
            &WATCH,
            "count/min",
            t + MIN,
            "n/a",
            SkipReason::NotANumber,
        )?;
        self.skipped(
            hr,
            &WATCH,
            "count/min",
            t + 2 * MIN,
            "912",
            SkipReason::OutOfRange,
        )?;
        self.skipped(
            "HKQuantityTypeIdentifierBodyMass",
            &SCALE,
            "slug",
            t,
            "4.4",
            SkipReason::UnsupportedUnit,
        )?;
        self.skipped(
            "HKCategoryTypeIdentifierSleepAnalysis",
            &OURA,
            "",
            t,
            "HKCategoryValueSleepAnalysisDaydream",
            SkipReason::UnknownSleepValue,
        )?;
        self.unknown(
            "HKCategoryTypeIdentifierMindfulSession",
            &HEALTH,
            "",
            t,
            t + 10 * MIN,
            "",
        )?;
        self.unknown("HKDataTypeSleepDurationGoal", &HEALTH, "hr", t, t, "8")?;
        // Units a wearable rarely uses but HealthKit allows.
        self.q(
            "DistanceCycling",
            101,
            &PHONE,
            "yd",
            t,
            t + 5 * MIN,
            1200.0,
            0,
        )?;
        self.q(
            "ActiveEnergyBurned",
            81,
            &MFP,
            "kJ",
            t,
            t + 5 * MIN,
            150.0,
            1,
        )?;
        self.q(
            "HeartRate",
            1,
            &WATCH,
            "count/s",
            t + 3 * MIN,
            t + 3 * MIN,
            1.25,
            2,
        )
    }

    fn activity_summary(&mut self, n: i64) -> io::Result<()> {
        let (y, m, d) = super::dates::civil_from_days(EPOCH_DAY + n);
        let kcal = self.rng.range(250.0, 800.0);
        let (e, goal, unit) = if n % 10 == 9 {
            (kcal * 4.184, 500.0 * 4.184, "kJ")
        } else {
            (kcal, 500.0, "kcal")
        };
        let _ = writeln!(
            self.line,
            " <ActivitySummary dateComponents=\"{y:04}-{m:02}-{d:02}\" activeEnergyBurned=\"{e:.3}\" activeEnergyBurnedGoal=\"{goal:.0}\" activeEnergyBurnedUnit=\"{unit}\" appleMoveTime=\"0\" appleMoveTimeGoal=\"0\" appleExerciseTime=\"{:.0}\" appleExerciseTimeGoal=\"30\" appleStandHours=\"{}\" appleStandHoursGoal=\"12\"/>",
            self.rng.range(5.0, 90.0),
            self.rng.below(16)
        );
        self.c.activity_summaries += 1;
        self.flush_line()
    }
}

/// Writes a synthetic export of at most about `target_bytes` (whole days; the first day is always
/// written) and returns the counts a correct parse of it reports.
pub fn generate<W: Write>(out: W, seed: u64, target_bytes: u64) -> io::Result<Counts> {
    let mut g = Gen::new(out, seed, None);
    g.header()?;
    let footer = b"</HealthData>\n";
    let mut n = 0;
    loop {
        let before = g.bytes;
        g.day(n)?;
        n += 1;
        let day_bytes = g.bytes - before;
        if g.bytes + day_bytes + footer.len() as u64 > target_bytes {
            break;
        }
    }
    let late = std::mem::take(&mut g.late);
    g.line.extend_from_slice(&late);
    g.line.extend_from_slice(footer);
    g.flush_line()?;
    g.out.flush()?;
    g.c.per_series = g.per_series;
    Ok(g.c)
}

/// Writes a seeded export: each part of `shape` over its own days, from `seed` (the same seed
/// and shape give the same bytes). Returns the counts a correct parse of it reports.
pub fn generate_shaped<W: Write>(out: W, seed: u64, shape: &Shape) -> io::Result<Counts> {
    let mut g = Gen::new(out, seed, Some(shape.clone()));
    g.header()?;
    if let Some(span) = shape.span() {
        for day in span.first..=span.last {
            if let Some(series) = &shape.series {
                if series.days.contains(day) && !series.ids.is_empty() {
                    g.first_day = series.days.first;
                    g.day(day - series.days.first)?;
                }
            }
            if let Some(sleep) = &shape.sleep {
                // One night a day at most.
                if sleep.days.share(day, sleep.count.min(sleep.days.len())) > 0 {
                    g.seeded_night(day, sleep)?;
                }
            }
            if let Some(workouts) = &shape.workouts {
                let today = workouts.days.share(day, workouts.count);
                for j in 0..today {
                    g.seeded_workout(day, j, today, workouts)?;
                }
            }
        }
    }
    g.line.extend_from_slice(b"</HealthData>\n");
    g.flush_line()?;
    g.out.flush()?;
    g.c.per_series = std::mem::take(&mut g.per_series);
    Ok(g.c)
}

impl<W: Write> Gen<W> {
    /// A whole number in the inclusive range.
    fn pick(&mut self, (lo, hi): (i64, i64)) -> i64 {
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        lo + self.rng.below((hi - lo + 1) as u64) as i64
    }

    /// A night ending on `day`: in bed from 21:00 to 02:00 local, the time asleep split into
    /// ~90-minute cycles of light, deep, light, REM and awake in the shape's proportions.
    fn seeded_night(&mut self, day: i64, s: &SleepShape) -> io::Result<()> {
        let midnight = day * DAY + 8 * HOUR;
        let bed = midnight - 3 * HOUR + self.rng.below(300) as i64 * MIN;
        let local_day = (bed + i64::from(offset_at(bed)) * MIN).div_euclid(DAY);
        // 1970-01-01 was a Thursday: Monday is 0.
        let weekday = (local_day + 3).rem_euclid(7) < 5;
        let (lo, hi) = s.minutes;
        let range = match (s.weekend_catchup, weekday) {
            (false, _) => (lo, hi),
            (true, true) => (lo, (lo + 60).min(hi)),
            (true, false) => ((hi - 60).max(lo), (hi + 120).min(720)),
        };
        let asleep = self.pick(range).max(1);
        let latency = 5 + self.pick((10, 55)) / 2;
        let in_bed = asleep + 2 * latency;
        self.sleep(
            &WATCH,
            bed,
            bed + in_bed * MIN,
            "HKCategoryValueSleepAnalysisInBed",
        )?;
        let mut pct = [
            self.pick(s.deep_pct) as f64,
            self.pick(s.rem_pct) as f64,
            self.pick(s.awake_pct) as f64,
        ];
        let sum: f64 = pct.iter().sum();
        if sum > 95.0 {
            pct.iter_mut().for_each(|p| *p *= 95.0 / sum);
        }
        let share = |p: f64| ((asleep as f64 * p / 100.0).round() as i64).max(1);
        let (deep, rem, awake) = (share(pct[0]), share(pct[1]), share(pct[2]));
        let light = (asleep - deep - rem - awake).max(1);
        let cycles = ((asleep + 45) / 90).max(1);
        let part = |total: i64, i: i64| total * (i + 1) / cycles - total * i / cycles;
        let mut t = bed + latency * MIN;
        for i in 0..cycles {
            let l = part(light, i);
            for (minutes, stage) in [
                (l / 2, "AsleepCore"),
                (part(deep, i), "AsleepDeep"),
                (l - l / 2, "AsleepCore"),
                (part(rem, i), "AsleepREM"),
                (part(awake, i), "Awake"),
            ] {
                if minutes > 0 {
                    let end = t + minutes * MIN;
                    self.sleep(
                        &WATCH,
                        t,
                        end,
                        &format!("HKCategoryValueSleepAnalysis{stage}"),
                    )?;
                    t = end;
                }
            }
        }
        if (self.rng.below(100) as i64) < s.nap_pct {
            let nap = midnight + 14 * HOUR + self.rng.below(120) as i64 * MIN;
            let minutes = self.pick((20, 90));
            self.sleep(
                &WATCH,
                nap,
                nap + (minutes + 5) * MIN,
                "HKCategoryValueSleepAnalysisInBed",
            )?;
            self.sleep(
                &WATCH,
                nap + 5 * MIN,
                nap + (minutes + 5) * MIN,
                "HKCategoryValueSleepAnalysisAsleepCore",
            )?;
        }
        Ok(())
    }

    /// The `j`th of the day's `of` workouts, spread from 06:00 to 22:00 local, with its energy,
    /// heart rate, steps and (for the kinds that cover ground) distance; a ride also brings the
    /// watch's distance series.
    fn seeded_workout(&mut self, day: i64, j: i64, of: i64, w: &WorkoutShape) -> io::Result<()> {
        let kind = if w.kinds.is_empty() {
            "Other".to_string()
        } else {
            w.kinds[self.rng.below(w.kinds.len() as u64) as usize].clone()
        };
        let minutes = self.pick(w.minutes).max(1);
        let slot = 16 * 60 / of.max(1);
        let start = day * DAY + 14 * HOUR + (j * slot + self.pick((0, (slot / 4).max(1)))) * MIN;
        let end = start + minutes * MIN;
        let ty = format!("HKWorkoutActivityType{kind}");
        let _ = write!(
            self.line,
            " <Workout workoutActivityType=\"{ty}\" duration=\"{minutes}\" durationUnit=\"min\""
        );
        self.now = start;
        self.src(&WATCH);
        self.line.extend_from_slice(b" creationDate=\"");
        self.date(end);
        self.line.extend_from_slice(b"\" startDate=\"");
        self.date(start);
        self.line.extend_from_slice(b"\" endDate=\"");
        self.date(end);
        self.line.extend_from_slice(b"\">\n");
        let stat = |g: &mut Self, ty: &str, attrs: String| {
            let _ = write!(
                g.line,
                "  <WorkoutStatistics type=\"HKQuantityTypeIdentifier{ty}\" startDate=\""
            );
            g.date(start);
            g.line.extend_from_slice(b"\" endDate=\"");
            g.date(end);
            let _ = writeln!(g.line, "\" {attrs}/>");
        };
        let kcal = minutes as f64 * self.rng.range(6.0, 12.0);
        stat(
            self,
            "ActiveEnergyBurned",
            format!("sum=\"{kcal:.3}\" unit=\"Cal\""),
        );
        let (low, high) = (self.pick(w.hr_min), self.pick(w.hr_max));
        stat(
            self,
            "HeartRate",
            format!(
                "average=\"{:.1}\" minimum=\"{low}\" maximum=\"{high}\" unit=\"count/min\"",
                (low + high) as f64 / 2.0
            ),
        );
        let steps = self.pick(w.steps);
        stat(self, "StepCount", format!("sum=\"{steps}\" unit=\"count\""));
        let km_per_min = match kind.as_str() {
            "Running" | "TrackAndField" => Some(("DistanceWalkingRunning", 0.17)),
            "Walking" | "Hiking" => Some(("DistanceWalkingRunning", 0.09)),
            "Cycling" => Some(("DistanceCycling", CYCLING_KMH / 60.0)),
            "Swimming" => Some(("DistanceSwimming", 0.035)),
            _ => None,
        };
        if let Some((dist, speed)) = km_per_min {
            stat(
                self,
                dist,
                format!("sum=\"{:.4}\" unit=\"km\"", minutes as f64 * speed),
            );
        }
        self.line.extend_from_slice(b" </Workout>\n");
        self.c.workouts += 1;
        self.flush_line()?;
        if kind == "Cycling" {
            self.forced = true;
            let mut t = start;
            while t < end {
                let piece = (end - t).min(5 * MIN);
                let km = CYCLING_KMH * piece as f64 / HOUR as f64;
                self.q("DistanceCycling", 101, &WATCH, "km", t, t + piece, km, 6)?;
                t += piece;
            }
            self.forced = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::super::records::NullSink;
    use super::*;

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut c = Vec::new();
        let ca = generate(&mut a, 7, 600_000).unwrap();
        let cb = generate(&mut b, 7, 600_000).unwrap();
        generate(&mut c, 8, 600_000).unwrap();
        assert_eq!(a, b);
        assert_eq!(ca, cb);
        assert_ne!(a, c);
        assert!(a.len() <= 600_000 && a.len() > 300_000, "{}", a.len());
    }

    #[test]
    fn parsing_a_generated_export_reports_exactly_the_expected_counts() {
        let mut xml = Vec::new();
        // Long enough to cross the March DST change and several trips.
        let expected = generate(&mut xml, 42, 40_000_000).unwrap();
        let report = parse(xml.as_slice(), &mut NullSink).unwrap();
        assert_eq!(report.counts, expected);
        assert_eq!(report.sources.len(), GENERATED_SOURCES);
        assert!(expected.per_series.len() >= 35, "{:?}", expected.per_series);
        assert!(expected.skipped.len() >= 5);
        assert_eq!(report.bytes, xml.len() as u64);
    }

    fn shape() -> Shape {
        let days = Days {
            first: EPOCH_DAY + 100,
            last: EPOCH_DAY + 129,
        };
        Shape {
            series: Some(SeriesShape {
                days,
                ids: [1, 80, 22, 23].into(),
            }),
            workouts: Some(WorkoutShape {
                days,
                count: 45,
                kinds: vec!["Boxing".into(), "Cycling".into()],
                minutes: (30, 60),
                hr_min: (80, 100),
                hr_max: (150, 180),
                steps: (500, 2000),
            }),
            sleep: Some(SleepShape {
                days,
                count: 20,
                minutes: (300, 420),
                nap_pct: 0,
                weekend_catchup: true,
                deep_pct: (10, 15),
                rem_pct: (20, 25),
                awake_pct: (2, 5),
            }),
        }
    }

    #[test]
    fn a_shaped_export_holds_what_its_shape_asks_and_parses_to_its_counts() {
        let mut xml = Vec::new();
        let expected = generate_shaped(&mut xml, 5, &shape()).unwrap();
        let mut again = Vec::new();
        generate_shaped(&mut again, 5, &shape()).unwrap();
        assert_eq!(xml, again);
        let report = parse(xml.as_slice(), &mut NullSink).unwrap();
        assert_eq!(report.counts, expected);
        assert_eq!(expected.workouts, 45);
        let series: Vec<i16> = expected.per_series.keys().copied().collect();
        // Rides bring their distance series (101) whatever the series asked.
        assert_eq!(series, vec![1, 22, 23, 80, 101]);
        assert_eq!(expected.per_series[&1], 30 * 240);
        assert_eq!(expected.per_series[&22], 30);
        assert!(expected
            .skipped
            .iter()
            .all(|(r, _)| matches!(r, SkipReason::DuplicateInCorrelation)));
        assert!(expected.unknown_types.is_empty());
        // No naps: 20 nights of one in-bed record and the stages.
        let in_bed = xml
            .windows(b"SleepAnalysisInBed".len())
            .filter(|w| w == b"SleepAnalysisInBed")
            .count();
        assert_eq!(in_bed, 20);
        let text = String::from_utf8(xml).unwrap();
        assert!(text.contains("HKWorkoutActivityTypeBoxing"));
        assert!(!text.contains("HKWorkoutActivityTypeYoga"));
        // Nothing but the shape's parts: no sleep, no workouts when absent.
        let mut only = Vec::new();
        let bare = Shape {
            sleep: None,
            workouts: None,
            ..shape()
        };
        let counts = generate_shaped(&mut only, 5, &bare).unwrap();
        assert_eq!((counts.workouts, counts.sleep_intervals), (0, 0));
        let mut empty = Vec::new();
        let counts = generate_shaped(&mut empty, 5, &Shape::default()).unwrap();
        assert_eq!(counts.records, 0);
        assert_eq!(
            parse(empty.as_slice(), &mut NullSink).unwrap().counts,
            counts
        );
    }

    #[test]
    fn offsets_follow_dst_and_trips() {
        let utc = |y, m, d, h| (days_from_civil(y, m, d) * 24 + h) * HOUR;
        assert_eq!(offset_at(utc(2024, 3, 10, 9)), -480);
        assert_eq!(offset_at(utc(2024, 3, 10, 11)), -420);
        assert_eq!(offset_at(utc(2024, 11, 3, 8)), -420);
        assert_eq!(offset_at(utc(2024, 11, 3, 10)), -480);
        // Days 25-29 of each 45-day cycle is a trip to UTC+1.
        assert_eq!(offset_at((EPOCH_DAY + 26) * DAY), 60);
        assert_eq!(offset_at((EPOCH_DAY + 45 + 26) * DAY), 540);
        assert_eq!(offset_at((EPOCH_DAY + 90 + 26) * DAY), 330);
    }
}
