//! `GET /api/v1/users/{user_id}/timeseries`: raw samples or per-bucket aggregates from the
//! `samples` read model, with keyset cursors.
//!
//! Decisions:
//! * `timestamp` is the sample's start in UTC; the offset it was recorded in is `zone_offset`
//!   ("+HH:MM"), as upstream. A bucket's timestamp is the bucket start (UTC-aligned) and its
//!   `zone_offset` that of its earliest sample.
//! * Keyset order is (time, data source, series type): unique per sample (the dedup key) and
//!   per bucket, so pages never repeat or skip rows.
//! * `has_more` is about the direction of travel. A forward page gives `next_cursor` when more
//!   rows follow and `previous_cursor` when it was reached with a cursor; a backward page gives
//!   `previous_cursor` when earlier rows exist and `next_cursor` back to where it came from.
//! * Raw pages run one index range scan per requested series type on
//!   `(user_id, series_type, time)`, each stopped at `limit + 1` rows, then merge; aggregated
//!   pages group the rows of the range beyond the cursor.
//! * An aggregated bucket's `is_daily_total` is true when any of its rows is a daily total.
//! * `metadata.start_time`/`end_time` echo the request in UTC (the end as given, before the
//!   end-of-day extension); `sample_count` is the number of items in this page.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use wearhouse_domain::series::{self, Aggregation, SeriesType, SERIES_TYPES};

use super::data_sources::{source_metadata, unknown_source, SourceMetadata};
use super::envelope::{Metadata, Page, PaginatedResponse, Pagination};
use super::params::{end_bound, format_offset, parse_datetime, Cursor, Direction, Resolution};
use super::{users, ApiError, AppState};
use crate::auth::AnyCredential;

#[derive(Tags)]
enum Tag {
    /// Time series samples
    Timeseries,
}

/// The SQL expression that maps `time` to its bucket start: TimescaleDB's `time_bucket` when
/// the extension is installed (it is planned better on hypertables), else core `date_bin`
/// anchored at 2000-01-01 UTC. Both align sub-day buckets to the same UTC boundaries.
pub fn bucket_sql(resolution: Resolution, timescaledb: bool) -> Option<String> {
    let width = resolution.interval()?;
    Some(if timescaledb {
        format!("time_bucket(INTERVAL '{width}', time)")
    } else {
        format!("date_bin(INTERVAL '{width}', time, TIMESTAMPTZ '2000-01-01 00:00:00+00')")
    })
}

#[derive(Object, Debug, Clone)]
pub struct TimeSeriesSample {
    pub timestamp: DateTime<Utc>,
    pub zone_offset: Option<String>,
    #[oai(rename = "type")]
    pub series_type: String,
    pub value: f64,
    pub unit: String,
    pub source: SourceMetadata,
    pub is_daily_total: Option<bool>,
}

/// Codes → catalog entries. Repeated `types=` and comma-separated lists both work; none means
/// every type.
fn requested_types(raw: &[String]) -> Result<Vec<&'static SeriesType>, ApiError> {
    let mut out: Vec<&'static SeriesType> = Vec::new();
    for code in raw.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if code.is_empty() {
            continue;
        }
        let t = series::by_code(code)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid series type: '{code}'")))?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        out = SERIES_TYPES.iter().collect();
    }
    Ok(out)
}

fn ids_with(types: &[&SeriesType], aggregation: Aggregation) -> Vec<i16> {
    types
        .iter()
        .filter(|t| t.aggregation == aggregation)
        .map(|t| t.id)
        .collect()
}

/// One row of either query, before the source block is joined on.
struct Row {
    time: DateTime<Utc>,
    data_source_id: Uuid,
    series_type: i16,
    value: f64,
    zone_offset: Option<i16>,
    is_daily_total: Option<bool>,
}

impl Row {
    fn cursor(&self) -> Cursor {
        Cursor {
            time: self.time,
            data_source_id: self.data_source_id,
            series_type: self.series_type,
        }
    }
}

/// The SQL of one page. Parameters: $1 user, $2 series ids, $3 start, $4 end (exclusive),
/// $5 limit + 1, then with a cursor $6 time, $7 data source, $8 series type; aggregated adds
/// the ids summed and maxed as the next two.
fn page_sql(bucket: Option<&str>, width: Option<&str>, cursor: Option<Direction>) -> String {
    let (cmp, dir) = match cursor {
        Some(Direction::Backward) => ("<", "DESC"),
        _ => (">", "ASC"),
    };
    let order = format!("ORDER BY 1 {dir}, 2 {dir}, 3 {dir}");
    match bucket {
        None => {
            // The redundant bound on `time` alone lets the index range scan start at the cursor.
            let keyset = match cursor {
                None => String::new(),
                Some(d) => format!(
                    "AND time {}= $6 AND (time, data_source_id, series_type) {cmp} ($6, $7, $8)",
                    if d == Direction::Forward { '>' } else { '<' }
                ),
            };
            format!(
                "SELECT s.time, s.data_source_id, s.series_type, s.value, s.zone_offset, s.is_daily_total \
                 FROM unnest($2::smallint[]) AS t(id) \
                 CROSS JOIN LATERAL ( \
                     SELECT time, data_source_id, series_type, value, zone_offset, is_daily_total \
                     FROM samples \
                     WHERE user_id = $1 AND series_type = t.id AND time >= $3 AND time < $4 {keyset} \
                     ORDER BY time {dir}, data_source_id {dir} LIMIT $5 \
                 ) s {order} LIMIT $5"
            )
        }
        Some(bucket) => {
            let (sum, max) = if cursor.is_some() {
                ("$9", "$10")
            } else {
                ("$6", "$7")
            };
            // Rows of buckets after the cursor's start at or after it; rows of buckets before
            // it end before the cursor bucket's end. Prunes the scan before grouping.
            let (prefilter, keyset) = match cursor {
                None => (String::new(), String::new()),
                Some(Direction::Forward) => (
                    "AND time >= $6".to_string(),
                    format!("WHERE (bucket, data_source_id, series_type) {cmp} ($6, $7, $8)"),
                ),
                Some(Direction::Backward) => (
                    format!(
                        "AND time < $6::timestamptz + INTERVAL '{}'",
                        width.expect("aggregated pages have a width")
                    ),
                    format!("WHERE (bucket, data_source_id, series_type) {cmp} ($6, $7, $8)"),
                ),
            };
            format!(
                "SELECT bucket, data_source_id, series_type, value, zone_offset, is_daily_total FROM ( \
                     SELECT {bucket} AS bucket, data_source_id, series_type, \
                            CASE WHEN series_type = ANY({sum}::smallint[]) THEN sum(value) \
                                 WHEN series_type = ANY({max}::smallint[]) THEN max(value) \
                                 ELSE avg(value) END AS value, \
                            (array_agg(zone_offset ORDER BY time))[1] AS zone_offset, \
                            bool_or(is_daily_total) AS is_daily_total \
                     FROM samples \
                     WHERE user_id = $1 AND series_type = ANY($2::smallint[]) AND time >= $3 AND time < $4 {prefilter} \
                     GROUP BY 1, 2, 3 \
                 ) b {keyset} {order} LIMIT $5"
            )
        }
    }
}

pub struct TimeseriesApi;

#[OpenApi(prefix_path = "/api/v1")]
impl TimeseriesApi {
    /// Time series samples of a user, raw or aggregated per bucket, data source and type
    #[oai(
        path = "/users/:user_id/timeseries",
        method = "get",
        tag = "Tag::Timeseries"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        /// Inclusive lower bound: ISO 8601 (date-only allowed; no offset = UTC) or Unix seconds
        start_time: Query<String>,
        /// Exclusive upper bound; a value at exactly 00:00:00 includes that whole day
        end_time: Query<String>,
        /// Series type codes (repeatable); none = all
        #[oai(default)]
        types: Query<Vec<String>>,
        #[oai(default = "default_resolution")] resolution: Query<Resolution>,
        /// Opaque cursor from a previous page (`prev_…` pages backward)
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<i64>,
    ) -> Result<Json<PaginatedResponse<TimeSeriesSample>>, ApiError> {
        let start = parse_datetime(&start_time.0)?;
        let end = parse_datetime(&end_time.0)?;
        let types = requested_types(&types.0)?;
        let position = match cursor.0.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => Some(Cursor::decode(c)?),
            None => None,
        };
        users::load(&state, user_id.0).await?;

        let start_utc = start.with_timezone(&Utc);
        let end_excl = end_bound(end);
        let resolution = resolution.0;
        let bucket = bucket_sql(resolution, state.timescaledb);
        let sql = page_sql(
            bucket.as_deref(),
            resolution.interval(),
            position.map(|(_, d)| d),
        );
        let ids: Vec<i16> = types.iter().map(|t| t.id).collect();
        let fetch = limit.0 + 1;
        let sum_ids = ids_with(&types, Aggregation::Sum);
        let max_ids = ids_with(&types, Aggregation::Max);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&user_id.0, &ids, &start_utc, &end_excl, &fetch];
        if let Some((c, _)) = &position {
            params.extend([
                &c.time as &(dyn ToSql + Sync),
                &c.data_source_id,
                &c.series_type,
            ]);
        }
        if bucket.is_some() {
            params.extend([&sum_ids as &(dyn ToSql + Sync), &max_ids]);
        }

        let client = state.pool.get().await?;
        let rows: Vec<Row> = client
            .query(&sql, &params)
            .await?
            .iter()
            .map(|r| Row {
                time: r.get(0),
                data_source_id: r.get(1),
                series_type: r.get(2),
                value: r.get(3),
                zone_offset: r.get(4),
                is_daily_total: r.get(5),
            })
            .collect();
        let backward = matches!(position, Some((_, Direction::Backward)));
        let page = Page::from_rows(rows, limit.0 as usize, backward);

        // Counting an aggregated response would mean grouping the whole range; upstream
        // returns null there too.
        let total_count = if bucket.is_none() {
            Some(
                client
                    .query_one(
                        "SELECT count(*) FROM samples WHERE user_id = $1 \
                         AND series_type = ANY($2::smallint[]) AND time >= $3 AND time < $4",
                        &[&user_id.0, &ids, &start_utc, &end_excl],
                    )
                    .await?
                    .get::<_, i64>(0),
            )
        } else {
            None
        };

        let (first, last) = (page.items.first(), page.items.last());
        let (next_cursor, previous_cursor) = if backward {
            (
                last.map(|r| r.cursor().encode(Direction::Forward)),
                first
                    .filter(|_| page.has_more)
                    .map(|r| r.cursor().encode(Direction::Backward)),
            )
        } else {
            (
                last.filter(|_| page.has_more)
                    .map(|r| r.cursor().encode(Direction::Forward)),
                first
                    .filter(|_| position.is_some())
                    .map(|r| r.cursor().encode(Direction::Backward)),
            )
        };

        let mut source_ids: Vec<Uuid> = page.items.iter().map(|r| r.data_source_id).collect();
        source_ids.sort_unstable();
        source_ids.dedup();
        let sources = source_metadata(&client, &source_ids).await?;
        let data: Vec<TimeSeriesSample> = page.items.iter().map(|r| sample(r, &sources)).collect();

        Ok(Json(PaginatedResponse {
            pagination: Pagination {
                next_cursor,
                previous_cursor,
                has_more: page.has_more,
                total_count,
            },
            metadata: Metadata {
                resolution: Some(resolution),
                sample_count: Some(data.len() as i64),
                start_time: Some(start_utc),
                end_time: Some(end.with_timezone(&Utc)),
            },
            data,
        }))
    }
}

fn sample(r: &Row, sources: &HashMap<Uuid, SourceMetadata>) -> TimeSeriesSample {
    // Ids come from the catalog-checked request, so the lookup only fails for rows written
    // with an id this build does not know; they still show, under their number.
    let (code, unit) = match series::by_id(r.series_type) {
        Some(t) => (t.code.to_string(), t.unit.to_string()),
        None => (r.series_type.to_string(), String::new()),
    };
    TimeSeriesSample {
        timestamp: r.time,
        zone_offset: r.zone_offset.map(format_offset),
        series_type: code,
        value: r.value,
        unit,
        source: sources
            .get(&r.data_source_id)
            .cloned()
            .unwrap_or_else(unknown_source),
        is_daily_total: r.is_daily_total,
    }
}

fn default_resolution() -> Resolution {
    Resolution::Raw
}
fn default_limit() -> i64 {
    50
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_sql_uses_time_bucket_only_with_timescaledb() {
        assert_eq!(bucket_sql(Resolution::Raw, true), None);
        assert_eq!(bucket_sql(Resolution::Raw, false), None);
        assert_eq!(
            bucket_sql(Resolution::FiveMinutes, true).unwrap(),
            "time_bucket(INTERVAL '5 minutes', time)"
        );
        let plain = bucket_sql(Resolution::OneHour, false).unwrap();
        assert!(
            plain.starts_with("date_bin(INTERVAL '1 hour', time,"),
            "{plain}"
        );
        assert!(!plain.contains("time_bucket"));
    }

    #[test]
    fn requested_types_accept_aliases_lists_and_reject_unknown() {
        let t = requested_types(&["heart_rate".into(), "energy,steps".into()]).unwrap();
        let ids: Vec<i16> = t.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![1, 81, 80]);
        // Both spellings of 81 collapse to one.
        let t = requested_types(&["energy".into(), "active_energy".into()]).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(requested_types(&[]).unwrap().len(), SERIES_TYPES.len());
        assert!(requested_types(&["heart_rat".into()]).is_err());
    }

    #[test]
    fn page_sql_orders_and_compares_in_the_direction_of_travel() {
        let fwd = page_sql(None, None, Some(Direction::Forward));
        assert!(fwd.contains("(time, data_source_id, series_type) > ($6, $7, $8)"));
        assert!(fwd.contains("ORDER BY 1 ASC"));
        let back = page_sql(None, None, Some(Direction::Backward));
        assert!(back.contains("(time, data_source_id, series_type) < ($6, $7, $8)"));
        assert!(back.contains("ORDER BY 1 DESC"));
        let agg = page_sql(Some("b"), Some("1 hour"), None);
        assert!(agg.contains("ANY($6::smallint[]) THEN sum(value)"));
        let agg = page_sql(Some("b"), Some("1 hour"), Some(Direction::Backward));
        assert!(agg.contains("ANY($9::smallint[]) THEN sum(value)"));
        assert!(agg.contains("time < $6::timestamptz + INTERVAL '1 hour'"));
    }
}
