//! What a provider mapping produces, and how it becomes input of the shared data writer.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use wearhouse_domain::records::{
    record_id, DataEvent, DataSourceInfo, HealthScoreRecord, MenstrualCycleRecord, ScoreComponent,
    SleepSessionRecord, WorkoutRecord,
};
use wearhouse_domain::series;
use wearhouse_projections::arrow_batch::{self, SampleRow};

use crate::ingest::writer::Out;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MapError {
    #[error("unexpected {data_type} payload: {detail}")]
    Shape { data_type: String, detail: String },
    #[error("unknown data type {0}")]
    UnknownType(String),
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

    /// Messages for the data writer: sources, one Arrow batch per (source, series), records.
    pub fn into_out(self, user_id: Uuid) -> Result<Vec<Out>, arrow_schema::ArrowError> {
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
