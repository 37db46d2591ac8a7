//! What a provider mapping produces, and how it becomes input of the shared data writer.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use wearhouse_domain::records::{
    record_id, DataEvent, DataSourceInfo, HealthScoreRecord, MenstrualCycleRecord, ScoreComponent,
    SleepSessionRecord, WorkoutRecord,
};
use wearhouse_domain::series;
use wearhouse_log::arrow_batch::{self, SampleRow};

use wearhouse_log::writer::Out;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MapError {
    #[error("unexpected {data_type} payload: {detail}")]
    Shape { data_type: String, detail: String },
    #[error("unknown data type {0}")]
    UnknownType(String),
}

/// Longest span a provider may put between two times of one record (a year): durations beyond
/// it are clamped, so no provider value can overflow time arithmetic.
const MAX_SPAN_SECS: f64 = 366.0 * 86_400.0;

/// `t` plus `secs` seconds from provider input, clamped to [0, a year] (NaN counts as 0):
/// never panics, whatever the payload says.
pub fn after_secs(t: DateTime<Utc>, secs: f64) -> DateTime<Utc> {
    let secs = if secs.is_finite() {
        secs.clamp(0.0, MAX_SPAN_SECS)
    } else {
        0.0
    };
    chrono::TimeDelta::try_milliseconds((secs * 1000.0) as i64)
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(t)
}

/// Earliest plausible time of a record (2000-01-01); earlier ones are corrupt or hostile.
const EARLIEST: i64 = 946_684_800;
/// How far ahead of now a record's time may be (time zones, clock skew).
const AHEAD_SECS: i64 = 2 * 86_400;

/// Whether a provider time is plausible: from 2000 to two days ahead of now.
pub fn plausible(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (EARLIEST..=now.timestamp() + AHEAD_SECS).contains(&t.timestamp())
}

/// One sample of a series, already in the series' canonical unit.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSample {
    pub series: &'static str,
    pub data_source_id: Uuid,
    pub time: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub zone_offset: i16,
    pub value: f64,
    pub is_daily_total: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    pub sources: Vec<DataSourceInfo>,
    pub samples: Vec<MappedSample>,
    pub workouts: Vec<WorkoutRecord>,
    pub sleep: Vec<SleepSessionRecord>,
    pub scores: Vec<HealthScoreRecord>,
    pub cycles: Vec<MenstrualCycleRecord>,
}

impl Mapped {
    pub fn records(&self) -> u64 {
        (self.samples.len()
            + self.workouts.len()
            + self.sleep.len()
            + self.scores.len()
            + self.cycles.len()) as u64
    }

    /// Adds a provider score; its id is stable per (source, category, time).
    #[allow(clippy::too_many_arguments)]
    pub fn score(
        &mut self,
        data_source_id: Uuid,
        category: &str,
        value: Option<f64>,
        qualifier: Option<String>,
        recorded_at: DateTime<Utc>,
        zone_offset: Option<i16>,
        components: BTreeMap<String, ScoreComponent>,
    ) {
        if value.is_none() && qualifier.is_none() {
            return;
        }
        self.scores.push(HealthScoreRecord {
            id: record_id(&[
                &data_source_id.to_string(),
                "score",
                category,
                &recorded_at.to_rfc3339(),
            ]),
            data_source_id,
            category: category.into(),
            value,
            qualifier,
            recorded_at,
            zone_offset,
            components,
        });
    }

    /// Adds a sample; unknown series codes are a programming error caught by the tests.
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        &mut self,
        series: &'static str,
        data_source_id: Uuid,
        time: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        zone_offset: i16,
        value: f64,
        is_daily_total: Option<bool>,
    ) {
        debug_assert!(series::by_code(series).is_some(), "unknown series {series}");
        if value.is_finite() {
            self.samples.push(MappedSample {
                series,
                data_source_id,
                time,
                end,
                zone_offset,
                value,
                is_daily_total,
            });
        }
    }

    /// Drops records whose times are implausible (before 2000, days ahead): whatever a provider
    /// sends, the read models only see times their day and night arithmetic can handle.
    fn drop_implausible(&mut self, now: DateTime<Utc>) {
        let ok = |t: DateTime<Utc>| plausible(t, now);
        let before = self.records();
        self.samples.retain(|s| ok(s.time) && s.end.is_none_or(ok));
        self.workouts.retain(|w| ok(w.start) && ok(w.end));
        self.sleep.retain(|x| ok(x.start) && ok(x.end));
        self.scores.retain(|x| ok(x.recorded_at));
        // A cycle's end may be predicted weeks ahead: its start is what must be plausible.
        self.cycles.retain(|x| ok(x.start));
        let dropped = before - self.records();
        if dropped > 0 {
            tracing::warn!(dropped, "provider records with implausible times dropped");
        }
    }

    /// Messages for the data writer: sources, one Arrow batch per (source, series), records.
    pub fn into_out(mut self, user_id: Uuid) -> Result<Vec<Out>, arrow_schema::ArrowError> {
        self.drop_implausible(Utc::now());
        let mut out = Vec::new();
        if !self.sources.is_empty() {
            out.push(Out::Event(DataEvent::SourcesDiscovered {
                user_id,
                sources: self.sources,
            }));
        }
        let mut groups: BTreeMap<(Uuid, i16), (&'static series::SeriesType, Vec<SampleRow>)> =
            BTreeMap::new();
        for s in &self.samples {
            let Some(st) = series::by_code(s.series) else {
                continue;
            };
            let time = s.time.timestamp_micros();
            groups
                .entry((s.data_source_id, st.id))
                .or_insert_with(|| (st, Vec::new()))
                .1
                .push(SampleRow {
                    time,
                    end_time: s.end.map(|e| e.timestamp_micros()).unwrap_or(time),
                    zone_offset_min: s.zone_offset,
                    value: s.value,
                    is_daily_total: s.is_daily_total,
                });
        }
        for ((ds, _), (st, rows)) in groups {
            let arrow = arrow_batch::encode(st, &rows, &[("data_source_id", &ds.to_string())])?;
            out.push(Out::Batch {
                data_source_id: ds,
                series_type: st.id,
                count: rows.len() as i32,
                start: rows.iter().map(|r| r.time).min().unwrap_or_default(),
                end: rows
                    .iter()
                    .map(|r| r.end_time.max(r.time))
                    .max()
                    .unwrap_or_default(),
                arrow,
            });
        }
        if !self.workouts.is_empty() {
            out.push(Out::Event(DataEvent::WorkoutsRecorded {
                user_id,
                workouts: self.workouts,
            }));
        }
        if !self.sleep.is_empty() {
            out.push(Out::Event(DataEvent::SleepSessionsRecorded {
                user_id,
                sessions: self.sleep,
            }));
        }
        if !self.scores.is_empty() {
            out.push(Out::Event(DataEvent::HealthScoresRecorded {
                user_id,
                scores: self.scores,
            }));
        }
        if !self.cycles.is_empty() {
            out.push(Out::Event(DataEvent::MenstrualCyclesRecorded {
                user_id,
                cycles: self.cycles,
            }));
        }
        Ok(out)
    }
}

/// The one data source of a cloud provider without device detail.
pub fn provider_source(user_id: Uuid, provider: &str, display: &str) -> DataSourceInfo {
    DataSourceInfo {
        id: DataSourceInfo::id_for(user_id, provider, None, Some(provider)),
        provider: provider.into(),
        source: Some(provider.into()),
        original_source_name: Some(display.into()),
        device_model: None,
        device_name: None,
        manufacturer: Some(display.into()),
        hardware: None,
        software_version: None,
        device_type: Some("unknown".into()),
    }
}

/// A body measurement snapshot (weight kg, height cm) stamped at the UTC day it was received,
/// so repeated fetches on one day merge into one sample per series.
pub fn body_snapshot(
    user_id: Uuid,
    provider: &str,
    display: &str,
    received_at: DateTime<Utc>,
    weight_kg: Option<f64>,
    height_cm: Option<f64>,
) -> Mapped {
    let source = provider_source(user_id, provider, display);
    let ds = source.id;
    let mut m = Mapped {
        sources: vec![source],
        ..Mapped::default()
    };
    let day = local_midnight(received_at.date_naive(), 0);
    for (series, value) in [("weight", weight_kg), ("height", height_cm)] {
        if let Some(v) = value {
            m.sample(series, ds, day, None, 0, v, None);
        }
    }
    m
}

/// Local midnight of `day` at `offset` minutes east, in UTC.
pub fn local_midnight(day: NaiveDate, offset: i16) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
        - chrono::Duration::minutes(offset as i64)
}

/// Score components from named values (absent ones left out).
pub fn components(values: &[(&str, Option<f64>)]) -> BTreeMap<String, ScoreComponent> {
    values
        .iter()
        .filter_map(|(k, v)| {
            v.map(|v| {
                (
                    k.to_string(),
                    ScoreComponent {
                        value: Some(v),
                        qualifier: None,
                    },
                )
            })
        })
        .collect()
}

/// Score components from a JSON object of numbers (Oura's `contributors`).
pub fn numeric_components(obj: Option<&serde_json::Value>) -> BTreeMap<String, ScoreComponent> {
    obj.and_then(serde_json::Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            v.as_f64().map(|v| {
                (
                    k.clone(),
                    ScoreComponent {
                        value: Some(v),
                        qualifier: None,
                    },
                )
            })
        })
        .collect()
}

pub fn shape(data_type: &str, detail: impl Into<String>) -> MapError {
    MapError::Shape {
        data_type: data_type.into(),
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn provider_durations_never_overflow() {
        let t = at("2026-03-01T00:00:00Z");
        assert_eq!(after_secs(t, 90.0), at("2026-03-01T00:01:30Z"));
        for hostile in [f64::MAX, 1e300, f64::INFINITY, f64::NAN, -5.0] {
            let end = after_secs(t, hostile);
            assert!(
                end >= t && end <= at("2027-03-02T00:00:00Z"),
                "{hostile}: {end}"
            );
        }
        // At the end of chrono's range the addition is refused, not a panic.
        assert_eq!(
            after_secs(DateTime::<Utc>::MAX_UTC, 60.0),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn records_with_implausible_times_are_dropped() {
        let now = at("2026-03-01T12:00:00Z");
        let ds = Uuid::nil();
        let mut m = Mapped::default();
        for t in [
            "2026-03-01T08:00:00Z",
            "1970-01-01T00:00:00Z",
            "2026-03-05T00:00:00Z",
        ] {
            m.sample("heart_rate", ds, at(t), None, 0, 60.0, None);
        }
        m.sample(
            "steps",
            ds,
            at("2026-03-01T08:00:00Z"),
            Some(DateTime::<Utc>::MAX_UTC),
            0,
            10.0,
            None,
        );
        m.drop_implausible(now);
        let kept: Vec<DateTime<Utc>> = m.samples.iter().map(|s| s.time).collect();
        assert_eq!(kept, vec![at("2026-03-01T08:00:00Z")]);
    }
}
