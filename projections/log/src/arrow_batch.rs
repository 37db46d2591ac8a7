//! `SamplesRecorded` payloads: a batch of samples of one series type and one source as an Arrow
//! IPC stream, zstd-compressed, readable by any Arrow reader (pyarrow, polars, DuckDB).
//!
//! Columns: `time` and `end_time` (timestamp µs, UTC), `zone_offset_min` (i16), `value` (f64),
//! `is_daily_total` (bool, nullable: null for non-additive series). The series type and any
//! caller-given keys (e.g. the data source id) travel in the schema metadata.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    Array, BooleanArray, Float64Array, Int16Array, RecordBatch, TimestampMicrosecondArray,
};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::CompressionType;
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use wearhouse_domain::series::{self, SeriesType};

pub const META_SERIES_ID: &str = "series_type_id";
pub const META_SERIES_CODE: &str = "series_type_code";
pub const META_UNIT: &str = "unit";

/// One row of a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRow {
    pub time: i64,
    pub end_time: i64,
    pub zone_offset_min: i16,
    pub value: f64,
    pub is_daily_total: Option<bool>,
}

/// A decoded batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleBatch {
    pub series: &'static SeriesType,
    pub metadata: HashMap<String, String>,
    pub rows: Vec<SampleRow>,
}

fn schema(series: &SeriesType, extra: &[(&str, &str)]) -> Schema {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut meta: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    meta.insert(META_SERIES_ID.into(), series.id.to_string());
    meta.insert(META_SERIES_CODE.into(), series.code.into());
    meta.insert(META_UNIT.into(), series.unit.into());
    Schema::new(vec![
        Field::new("time", ts.clone(), false),
        Field::new("end_time", ts, false),
        Field::new("zone_offset_min", DataType::Int16, false),
        Field::new("value", DataType::Float64, false),
        Field::new("is_daily_total", DataType::Boolean, true),
    ])
    .with_metadata(meta)
}

/// Encodes `rows` (all of `series`) as one zstd-compressed Arrow IPC stream.
pub fn encode(
    series: &SeriesType,
    rows: &[SampleRow],
    extra_metadata: &[(&str, &str)],
) -> Result<Vec<u8>, ArrowError> {
    let schema = Arc::new(schema(series, extra_metadata));
    let columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.time))
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.end_time))
                .with_timezone("UTC"),
        ),
        Arc::new(Int16Array::from_iter_values(
            rows.iter().map(|r| r.zone_offset_min),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| r.is_daily_total),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::ZSTD))?;
    let mut out = Vec::with_capacity(rows.len() * 8 + 1024);
    let mut w = StreamWriter::try_new_with_options(&mut out, &schema, options)?;
    w.write(&batch)?;
    w.finish()?;
    drop(w);
    Ok(out)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} missing or mistyped")))
}

/// Decodes a stream written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<SampleBatch, ArrowError> {
    let reader = StreamReader::try_new(bytes, None)?;
    let metadata: HashMap<String, String> = reader
        .schema()
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let series = metadata
        .get(META_SERIES_ID)
        .and_then(|id| id.parse().ok())
        .and_then(series::by_id)
        .ok_or_else(|| ArrowError::SchemaError("unknown or missing series_type_id".into()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let time = column::<TimestampMicrosecondArray>(&batch, "time")?;
        let end = column::<TimestampMicrosecondArray>(&batch, "end_time")?;
        let off = column::<Int16Array>(&batch, "zone_offset_min")?;
        let value = column::<Float64Array>(&batch, "value")?;
        let daily = column::<BooleanArray>(&batch, "is_daily_total")?;
        rows.extend((0..batch.num_rows()).map(|i| SampleRow {
            time: time.value(i),
            end_time: end.value(i),
            zone_offset_min: off.value(i),
            value: value.value(i),
            is_daily_total: daily.is_valid(i).then(|| daily.value(i)),
        }));
    }
    Ok(SampleBatch {
        series,
        metadata,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_column_and_the_metadata() {
        let steps = series::by_code("steps").unwrap();
        let rows: Vec<SampleRow> = (0..10_000)
            .map(|i| SampleRow {
                time: 1_710_064_740_000_000 + i * 60_000_000,
                end_time: 1_710_064_740_000_000 + i * 60_000_000 + 30_000_000,
                zone_offset_min: if i < 5000 { -480 } else { -420 },
                value: (i % 97) as f64 + 0.5,
                is_daily_total: match i % 3 {
                    0 => None,
                    1 => Some(false),
                    _ => Some(true),
                },
            })
            .collect();
        let bytes = encode(steps, &rows, &[("data_source_id", "ds-1")]).unwrap();
        // Regular minute data compresses far below 26 bytes per raw row.
        assert!(bytes.len() < rows.len() * 10, "{} bytes", bytes.len());
        let back = decode(&bytes).unwrap();
        assert_eq!(back.series.code, "steps");
        assert_eq!(back.metadata["data_source_id"], "ds-1");
        assert_eq!(back.metadata[META_UNIT], "count");
        assert_eq!(back.rows, rows);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"not arrow").is_err());
        assert!(decode(&[]).is_err());
    }
}
