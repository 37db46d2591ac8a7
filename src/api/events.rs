//! `/api/v1/users/{user_id}/events/…`: workouts, sleep sessions and menstrual cycles, newest
//! first, with record cursors both ways; and their deletion, recorded as `RecordDeleted` events.
//!
//! Decisions:
//! * Filter `start_time >= start_date AND end_time < end_date` exactly, as the contract does
//!   for events (the end-of-day rule is `/timeseries`' only). Cycles ignore `end_date`
//!   (they may end in the future), as upstream.
//! * Fields the contract declares `int` are rounded. A sleep item's `stages` is null without
//!   stage detail, `sleep_duration_seconds` null without asleep time, and
//!   `sleep_stage_intervals` null when the provider gave no timeline (per-stage totals only).
//! * Order `(start_time, id)` descending. `next_cursor` continues to older records;
//!   `previous_cursor` (`prev_…`) goes back to newer ones. `total_count` is the filtered set.
//! * A sleep item's stage timeline is the session's own stages with overlaps clipped (a
//!   specific stage beats "in bed"), and its minutes come from that timeline.
//! * `filter_by_priority` keeps, per local sleep date (end time + zone offset), only the
//!   sessions of the best-ranked source (provider priority, then device type).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use wearhouse_domain::records::{DataEvent, RecordKind, SleepStageInterval};
use wearhouse_domain::sleep::SleepStage;
use wearhouse_domain::sleep_merge::{self, Session, StageSpan};
use wearhouse_projections::ranks::{source_ranks, UNRANKED};

use super::data_sources::{source_metadata, unknown_source, SourceMetadata};
use super::envelope::{Metadata, Page, PaginatedResponse, Pagination};
use super::error::internal_api;
use super::params::{format_offset, parse_datetime, Direction, RecordCursor};
use super::{request_id, users, ApiError, AppState};
use crate::auth::AnyCredential;

#[derive(Tags)]
enum Tag {
    /// Workouts, sleep sessions and menstrual cycles
    Events,
}

#[derive(Object, Debug, Clone)]
pub struct Workout {
    pub id: Uuid,
    #[oai(rename = "type")]
    pub workout_type: String,
    pub name: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub zone_offset: Option<String>,
    pub duration_seconds: Option<i64>,
    pub source: SourceMetadata,
    pub calories_kcal: Option<f64>,
    pub distance_meters: Option<f64>,
    pub avg_heart_rate_bpm: Option<i64>,
    pub max_heart_rate_bpm: Option<i64>,
    /// Duration over distance, in seconds per kilometre.
    pub avg_pace_sec_per_km: Option<i64>,
    pub elevation_gain_meters: Option<f64>,
}

#[derive(Object, Debug, Clone, Default)]
pub struct SleepStages {
    pub awake_minutes: Option<i64>,
    pub light_minutes: Option<i64>,
    pub deep_minutes: Option<i64>,
    pub rem_minutes: Option<i64>,
}

#[derive(Object, Debug, Clone)]
pub struct SleepStageItem {
    pub stage: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
}

#[derive(Object, Debug, Clone)]
pub struct SleepSession {
    pub id: Uuid,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub zone_offset: Option<String>,
    pub source: SourceMetadata,
    pub duration_seconds: i64,
    pub sleep_duration_seconds: Option<i64>,
    pub efficiency_percent: Option<f64>,
    pub stages: Option<SleepStages>,
    pub sleep_stage_intervals: Option<Vec<SleepStageItem>>,
    pub is_nap: bool,
}

#[derive(Object, Debug, Clone)]
pub struct MenstrualCycleRecord {
    pub id: Uuid,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub zone_offset: Option<String>,
    pub source: SourceMetadata,
    pub current_phase: Option<i64>,
    pub current_phase_type: Option<String>,
    pub day_in_cycle: Option<i64>,
    pub cycle_length: Option<i64>,
    pub predicted_cycle_length: Option<i64>,
    pub is_predicted_cycle: Option<bool>,
    pub period_length: Option<i64>,
    pub length_of_current_phase: Option<i64>,
    pub days_until_next_phase: Option<i64>,
    pub fertile_window_start: Option<i64>,
    pub length_of_fertile_window: Option<i64>,
    pub last_updated_at: Option<DateTime<Utc>>,
    pub has_specified_cycle_length: Option<bool>,
    pub has_specified_period_length: Option<bool>,
    pub pregnancy_snapshot: Option<Vec<Value>>,
}

#[derive(ApiResponse)]
enum Deleted {
    #[oai(status = 204)]
    NoContent,
}

/// Which table a listing reads, and how its filters apply.
struct Listing<'a> {
    table: &'static str,
    columns: &'static str,
    user: Uuid,
    start: DateTime<Utc>,
    /// Exclusive bound on `end_time`; none for cycles.
    end: Option<DateTime<Utc>>,
    record_type: Option<&'a str>,
    /// Only these (data source, local date) pairs pass `filter_by_priority`.
    best_sources: Option<(Vec<Uuid>, Vec<i32>)>,
    limit: i64,
    cursor: Option<(RecordCursor, Direction)>,
}

struct Fetched {
    rows: Vec<tokio_postgres::Row>,
    has_more: bool,
    total: i64,
    backward: bool,
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

async fn fetch(client: &deadpool_postgres::Object, l: Listing<'_>) -> Result<Fetched, ApiError> {
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(l.user), Box::new(l.start)];
    let mut filter = String::from("user_id = $1 AND NOT deleted AND start_time >= $2");
    if let Some(end) = l.end {
        params.push(Box::new(end));
        filter.push_str(&format!(" AND end_time < ${}", params.len()));
    }
    if let Some(t) = l.record_type {
        params.push(Box::new(format!("%{}%", escape_like(t))));
        filter.push_str(&format!(" AND type ILIKE ${}", params.len()));
    }
    if let Some((ids, ranks)) = l.best_sources {
        params.push(Box::new(ids));
        let i = params.len();
        params.push(Box::new(ranks));
        let r = params.len();
        // Keep a session when no other source with a better rank has one the same local night.
        filter.push_str(&format!(
            " AND id IN (SELECT id FROM ( \
                 SELECT s.id, r.rank, min(r.rank) OVER (PARTITION BY (s.end_time + make_interval(mins => coalesce(s.zone_offset, 0)::int))::date) AS best \
                 FROM sleep_sessions s JOIN unnest(${i}::uuid[], ${r}::int4[]) AS r(ds, rank) ON r.ds = s.data_source_id \
                 WHERE s.user_id = $1 AND NOT s.deleted) ranked WHERE rank = best)"
        ));
    }
    let total: i64 = {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        client
            .query_one(
                &format!("SELECT count(*) FROM {} WHERE {filter}", l.table),
                &refs,
            )
            .await?
            .get(0)
    };
    let backward = matches!(l.cursor, Some((_, Direction::Backward)));
    let mut keyset = String::new();
    if let Some((c, d)) = l.cursor {
        params.push(Box::new(c.time));
        let t = params.len();
        params.push(Box::new(c.id));
        let i = params.len();
        let cmp = if d == Direction::Forward { '<' } else { '>' };
        keyset = format!(" AND (start_time, id) {cmp} (${t}, ${i})");
    }
    params.push(Box::new(l.limit + 1));
    let lim = params.len();
    let dir = if backward { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {} FROM {} WHERE {filter}{keyset} ORDER BY start_time {dir}, id {dir} LIMIT ${lim}",
        l.columns, l.table
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    let rows = client.query(&sql, &refs).await?;
    // Backward pages are fetched ascending; `Page` reverses them into the listing's
    // descending order.
    let page = Page::from_rows(rows, l.limit as usize, backward);
    Ok(Fetched {
        rows: page.items,
        has_more: page.has_more,
        total,
        backward,
    })
}

/// The two cursors of a page in descending order (see the module doc).
fn cursors(
    f: &Fetched,
    had_cursor: bool,
    key: impl Fn(&tokio_postgres::Row) -> RecordCursor,
) -> (Option<String>, Option<String>) {
    let (first, last) = (f.rows.first(), f.rows.last());
    if f.backward {
        (
            last.map(|r| key(r).encode(Direction::Forward)),
            first
                .filter(|_| f.has_more)
                .map(|r| key(r).encode(Direction::Backward)),
        )
    } else {
        (
            last.filter(|_| f.has_more)
                .map(|r| key(r).encode(Direction::Forward)),
            first
                .filter(|_| had_cursor)
                .map(|r| key(r).encode(Direction::Backward)),
        )
    }
}

struct Common {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    cursor: Option<(RecordCursor, Direction)>,
}

fn common(start: &str, end: &str, cursor: Option<&str>) -> Result<Common, ApiError> {
    let s = parse_datetime(start)?;
    let e = parse_datetime(end)?;
    let cursor = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => Some(RecordCursor::decode(c)?),
        None => None,
    };
    Ok(Common {
        start: s.with_timezone(&Utc),
        end: e.with_timezone(&Utc),
        cursor,
    })
}

fn metadata(c: &Common, count: usize) -> Metadata {
    Metadata {
        resolution: None,
        sample_count: Some(count as i64),
        start_time: Some(c.start),
        end_time: Some(c.end),
    }
}

async fn sources_of(
    client: &deadpool_postgres::Object,
    rows: &[tokio_postgres::Row],
    col: usize,
) -> Result<HashMap<Uuid, SourceMetadata>, ApiError> {
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.get(col)).collect();
    ids.sort_unstable();
    ids.dedup();
    source_metadata(client, &ids).await
}

fn stat(stats: &Value, key: &str) -> Option<f64> {
    stats.get(key).and_then(Value::as_f64)
}

/// A value the contract declares `int`, rounded.
fn int(v: f64) -> i64 {
    v.round() as i64
}

/// Seconds per kilometre over the whole workout; none without a positive distance and duration.
pub fn pace_sec_per_km(duration_s: Option<f64>, distance_m: Option<f64>) -> Option<i64> {
    match (duration_s, distance_m) {
        (Some(t), Some(d)) if t > 0.0 && d > 0.0 => Some(int(t / (d / 1000.0))),
        _ => None,
    }
}

/// A session's own timeline with overlaps clipped, through the same merge as nights.
pub fn session_night(
    id: Uuid,
    source: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    offset: i16,
    is_nap: bool,
    stages: &Value,
) -> sleep_merge::Night {
    let stages: Vec<SleepStageInterval> =
        serde_json::from_value(stages.clone()).unwrap_or_default();
    let session = Session {
        id,
        source,
        rank: 0,
        start,
        end,
        zone_offset: offset,
        is_nap,
        stages: stages
            .into_iter()
            .map(|s| StageSpan {
                stage: SleepStage::parse(&s.stage).unwrap_or(SleepStage::Unknown),
                start: s.start,
                end: s.end,
            })
            .collect(),
    };
    let mut nights = sleep_merge::merge(vec![session]);
    let mut n = nights.pop().expect("one session makes one night");
    // The provider's own nap flag (or the import's rule) is the session's.
    n.is_nap = is_nap;
    n
}

pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1")]
impl EventsApi {
    /// A user's workouts, newest first
    #[oai(
        path = "/users/:user_id/events/workouts",
        method = "get",
        tag = "Tag::Events"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn workouts(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        /// Inclusive lower bound on the start (ISO 8601 or Unix seconds)
        start_date: Query<String>,
        /// Exclusive upper bound on the end (`end_time < end_date`, no end-of-day extension)
        end_date: Query<String>,
        /// Case-insensitive substring of the workout type
        record_type: Query<Option<String>>,
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<i64>,
    ) -> Result<Json<PaginatedResponse<Workout>>, ApiError> {
        let c = common(&start_date.0, &end_date.0, cursor.0.as_deref())?;
        users::load(&state, user_id.0).await?;
        let client = state.db().await.map_err(internal_api)?;
        let f = fetch(
            &client,
            Listing {
                table: "workouts",
                columns: "id, data_source_id, type, start_time, end_time, zone_offset, duration_s, stats",
                user: user_id.0,
                start: c.start,
                end: Some(c.end),
                record_type: record_type.0.as_deref().filter(|t| !t.is_empty()),
                best_sources: None,
                limit: limit.0,
                cursor: c.cursor,
            },
        )
        .await?;
        let sources = sources_of(&client, &f.rows, 1).await?;
        // Heart rate from the workout's own source's samples when the workout has none.
        let missing: Vec<&tokio_postgres::Row> = f
            .rows
            .iter()
            .filter(|r| stat(&r.get::<_, Value>(7), "heart_rate_avg").is_none())
            .collect();
        let mut hr: HashMap<Uuid, (Option<f64>, Option<f64>)> = HashMap::new();
        if !missing.is_empty() {
            let ids: Vec<Uuid> = missing.iter().map(|r| r.get(0)).collect();
            let ds: Vec<Uuid> = missing.iter().map(|r| r.get(1)).collect();
            let st: Vec<DateTime<Utc>> = missing.iter().map(|r| r.get(3)).collect();
            let en: Vec<DateTime<Utc>> = missing.iter().map(|r| r.get(4)).collect();
            for r in client
                .query(
                    // LATERAL: one index range scan per workout (a join would hash whole chunks).
                    "SELECT w.id, a.avg, a.max \
                     FROM unnest($2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[]) AS w(id, ds, st, en) \
                     CROSS JOIN LATERAL (SELECT avg(s.value) AS avg, max(s.value) AS max FROM samples s \
                       WHERE s.data_source_id = w.ds AND s.series_type = 1 AND s.time >= w.st AND s.time < w.en \
                         AND s.user_id = $1) a \
                     WHERE a.avg IS NOT NULL",
                    &[&user_id.0, &ids, &ds, &st, &en],
                )
                .await?
            {
                hr.insert(r.get(0), (r.get(1), r.get(2)));
            }
        }
        let data: Vec<Workout> = f
            .rows
            .iter()
            .map(|r| {
                let id: Uuid = r.get(0);
                let stats: Value = r.get(7);
                let (avg, max) = hr.get(&id).copied().unwrap_or((None, None));
                let duration: Option<f64> = r.get(6);
                let distance = stat(&stats, "distance_m");
                Workout {
                    id,
                    workout_type: r.get(2),
                    name: None,
                    start_time: r.get(3),
                    end_time: r.get(4),
                    zone_offset: r.get::<_, Option<i16>>(5).map(format_offset),
                    duration_seconds: duration.map(int),
                    source: sources
                        .get(&r.get::<_, Uuid>(1))
                        .cloned()
                        .unwrap_or_else(unknown_source),
                    calories_kcal: stat(&stats, "energy_kcal"),
                    distance_meters: distance,
                    avg_heart_rate_bpm: stat(&stats, "heart_rate_avg").or(avg).map(int),
                    max_heart_rate_bpm: stat(&stats, "heart_rate_max").or(max).map(int),
                    avg_pace_sec_per_km: pace_sec_per_km(duration, distance),
                    elevation_gain_meters: stat(&stats, "elevation_gain_m"),
                }
            })
            .collect();
        let (next_cursor, previous_cursor) = cursors(&f, c.cursor.is_some(), |r| RecordCursor {
            time: r.get(3),
            id: r.get(0),
        });
        Ok(Json(PaginatedResponse {
            pagination: Pagination {
                next_cursor,
                previous_cursor,
                has_more: f.has_more,
                total_count: Some(f.total),
            },
            metadata: metadata(&c, data.len()),
            data,
        }))
    }

    /// A user's sleep sessions, newest first
    #[oai(
        path = "/users/:user_id/events/sleep",
        method = "get",
        tag = "Tag::Events"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn sleep(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        start_date: Query<String>,
        end_date: Query<String>,
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<i64>,
        /// Keep only the best-ranked source's sessions per local sleep date
        #[oai(default)]
        filter_by_priority: Query<bool>,
    ) -> Result<Json<PaginatedResponse<SleepSession>>, ApiError> {
        let c = common(&start_date.0, &end_date.0, cursor.0.as_deref())?;
        users::load(&state, user_id.0).await?;
        let client = state.db().await.map_err(internal_api)?;
        let best_sources = if filter_by_priority.0 {
            let ranks = source_ranks(&client, user_id.0).await?;
            let (ids, r): (Vec<Uuid>, Vec<i32>) = ranks
                .into_iter()
                .map(|(id, r)| (id, r.min(UNRANKED - 1).min(i32::MAX as u32) as i32))
                .unzip();
            Some((ids, r))
        } else {
            None
        };
        let f = fetch(
            &client,
            Listing {
                table: "sleep_sessions",
                columns: "id, data_source_id, start_time, end_time, zone_offset, is_nap, stages, stages_from_totals",
                user: user_id.0,
                start: c.start,
                end: Some(c.end),
                record_type: None,
                best_sources,
                limit: limit.0,
                cursor: c.cursor,
            },
        )
        .await?;
        let sources = sources_of(&client, &f.rows, 1).await?;
        let data: Vec<SleepSession> = f
            .rows
            .iter()
            .map(|r| {
                let id: Uuid = r.get(0);
                let ds: Uuid = r.get(1);
                let (start, end): (DateTime<Utc>, DateTime<Utc>) = (r.get(2), r.get(3));
                let offset: Option<i16> = r.get(4);
                let n = session_night(
                    id,
                    ds,
                    start,
                    end,
                    offset.unwrap_or(0),
                    r.get(5),
                    &r.get::<_, Value>(6),
                );
                SleepSession {
                    id,
                    start_time: start,
                    end_time: end,
                    zone_offset: offset.map(format_offset),
                    source: sources.get(&ds).cloned().unwrap_or_else(unknown_source),
                    duration_seconds: int((end - start).num_milliseconds() as f64 / 1000.0),
                    sleep_duration_seconds: (n.asleep_minutes > 0.0)
                        .then(|| int(n.asleep_minutes * 60.0)),
                    efficiency_percent: n.efficiency_percent(),
                    stages: [
                        n.awake_minutes,
                        n.light_minutes,
                        n.deep_minutes,
                        n.rem_minutes,
                    ]
                    .iter()
                    .any(|m| *m > 0.0)
                    .then(|| SleepStages {
                        awake_minutes: Some(int(n.awake_minutes)),
                        light_minutes: Some(int(n.light_minutes)),
                        deep_minutes: Some(int(n.deep_minutes)),
                        rem_minutes: Some(int(n.rem_minutes)),
                    }),
                    // Totals laid end to end are not a timeline: never served as one.
                    sleep_stage_intervals: (!r.get::<_, bool>(7) && !n.stages.is_empty()).then(
                        || {
                            n.stages
                                .iter()
                                .map(|s| SleepStageItem {
                                    stage: s.stage.as_str().to_string(),
                                    start_time: s.start,
                                    end_time: s.end,
                                })
                                .collect()
                        },
                    ),
                    is_nap: n.is_nap,
                }
            })
            .collect();
        let (next_cursor, previous_cursor) = cursors(&f, c.cursor.is_some(), |r| RecordCursor {
            time: r.get(2),
            id: r.get(0),
        });
        Ok(Json(PaginatedResponse {
            pagination: Pagination {
                next_cursor,
                previous_cursor,
                has_more: f.has_more,
                total_count: Some(f.total),
            },
            metadata: metadata(&c, data.len()),
            data,
        }))
    }

    /// A user's menstrual cycles, newest first (`end_date` is ignored: cycles may end later)
    #[oai(
        path = "/users/:user_id/events/menstrual-cycles",
        method = "get",
        tag = "Tag::Events"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn menstrual_cycles(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        start_date: Query<String>,
        end_date: Query<String>,
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<i64>,
    ) -> Result<Json<PaginatedResponse<MenstrualCycleRecord>>, ApiError> {
        let c = common(&start_date.0, &end_date.0, cursor.0.as_deref())?;
        users::load(&state, user_id.0).await?;
        let client = state.db().await.map_err(internal_api)?;
        let f = fetch(
            &client,
            Listing {
                table: "menstrual_cycles",
                columns: "id, data_source_id, start_time, end_time, zone_offset, details",
                user: user_id.0,
                start: c.start,
                end: None,
                record_type: None,
                best_sources: None,
                limit: limit.0,
                cursor: c.cursor,
            },
        )
        .await?;
        let sources = sources_of(&client, &f.rows, 1).await?;
        let data: Vec<MenstrualCycleRecord> = f
            .rows
            .iter()
            .map(|r| {
                let d: Value = r.get(5);
                let int = |k: &str| d.get(k).and_then(Value::as_i64);
                let flag = |k: &str| d.get(k).and_then(Value::as_bool);
                let start: DateTime<Utc> = r.get(2);
                MenstrualCycleRecord {
                    id: r.get(0),
                    start_time: start,
                    // Every recorded cycle has an end (the contract requires one); the column
                    // allows null, so a missing one reads as the start rather than failing.
                    end_time: r.get::<_, Option<DateTime<Utc>>>(3).unwrap_or(start),
                    zone_offset: r.get::<_, Option<i16>>(4).map(format_offset),
                    source: sources
                        .get(&r.get::<_, Uuid>(1))
                        .cloned()
                        .unwrap_or_else(unknown_source),
                    current_phase: int("current_phase"),
                    current_phase_type: d
                        .get("current_phase_type")
                        .and_then(Value::as_str)
                        .map(String::from),
                    day_in_cycle: int("day_in_cycle"),
                    cycle_length: int("cycle_length"),
                    predicted_cycle_length: int("predicted_cycle_length"),
                    is_predicted_cycle: flag("is_predicted_cycle"),
                    period_length: int("period_length"),
                    length_of_current_phase: int("length_of_current_phase"),
                    days_until_next_phase: int("days_until_next_phase"),
                    fertile_window_start: int("fertile_window_start"),
                    length_of_fertile_window: int("length_of_fertile_window"),
                    last_updated_at: d
                        .get("last_updated_at")
                        .and_then(Value::as_str)
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.with_timezone(&Utc)),
                    has_specified_cycle_length: flag("has_specified_cycle_length"),
                    has_specified_period_length: flag("has_specified_period_length"),
                    pregnancy_snapshot: d
                        .get("pregnancy_snapshot")
                        .and_then(Value::as_array)
                        .filter(|a| !a.is_empty())
                        .cloned(),
                }
            })
            .collect();
        let (next_cursor, previous_cursor) = cursors(&f, c.cursor.is_some(), |r| RecordCursor {
            time: r.get(2),
            id: r.get(0),
        });
        Ok(Json(PaginatedResponse {
            pagination: Pagination {
                next_cursor,
                previous_cursor,
                has_more: f.has_more,
                total_count: Some(f.total),
            },
            metadata: metadata(&c, data.len()),
            data,
        }))
    }

    /// Delete a workout (it stays in the history; a re-import does not bring it back)
    #[oai(
        path = "/users/:user_id/events/workouts/:workout_id",
        method = "delete",
        tag = "Tag::Events"
    )]
    async fn delete_workout(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        req: &Request,
        user_id: Path<Uuid>,
        workout_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        delete(
            &state,
            &auth,
            req,
            user_id.0,
            workout_id.0,
            RecordKind::Workout,
        )
        .await
    }

    /// Delete a sleep session
    #[oai(
        path = "/users/:user_id/events/sleep/:sleep_id",
        method = "delete",
        tag = "Tag::Events"
    )]
    async fn delete_sleep(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        req: &Request,
        user_id: Path<Uuid>,
        sleep_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        delete(&state, &auth, req, user_id.0, sleep_id.0, RecordKind::Sleep).await
    }

    /// Delete a menstrual cycle
    #[oai(
        path = "/users/:user_id/events/menstrual-cycles/:cycle_id",
        method = "delete",
        tag = "Tag::Events"
    )]
    async fn delete_cycle(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        req: &Request,
        user_id: Path<Uuid>,
        cycle_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        delete(
            &state,
            &auth,
            req,
            user_id.0,
            cycle_id.0,
            RecordKind::MenstrualCycle,
        )
        .await
    }
}

async fn delete(
    state: &AppState,
    auth: &AnyCredential,
    req: &Request,
    user: Uuid,
    record: Uuid,
    kind: RecordKind,
) -> Result<Deleted, ApiError> {
    users::load(state, user).await?;
    let (table, read_model, what) = match kind {
        RecordKind::Workout => ("workouts", "workouts", "Workout"),
        RecordKind::Sleep => ("sleep_sessions", "sleep_sessions", "Sleep session"),
        RecordKind::MenstrualCycle => ("menstrual_cycles", "menstrual_cycles", "Menstrual cycle"),
        RecordKind::HealthScore => ("health_scores", "provider_scores", "Health score"),
    };
    let exists = state
        .db()
        .await
        .map_err(internal_api)?
        .query_opt(
            &format!("SELECT 1 FROM {table} WHERE id = $1 AND user_id = $2 AND NOT deleted"),
            &[&record, &user],
        )
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::not_found(format!("{what} not found")));
    }
    let event = DataEvent::RecordDeleted {
        user_id: user,
        kind,
        record_id: record,
    };
    state
        .commands
        .record_user_change(
            &record.to_string(),
            &event,
            &auth.0.actor(request_id(req)),
            Some(read_model),
        )
        .await
        .map_err(internal_api)?;
    Ok(Deleted::NoContent)
}

fn default_limit() -> i64 {
    50
}
