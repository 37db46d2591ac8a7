//! Daily summaries on the user's local date: `/summaries/activity`, `/summaries/sleep`,
//! `/summaries/recovery`, `/summaries/body`.
//!
//! Decisions:
//! * `start_date`/`end_date` are local dates, `[start, end)`; a datetime counts as the date
//!   written in its own offset.
//! * Activity and recovery read the `daily_rollup` read model (merged across sources per time
//!   segment, docs/merging.md): one index range scan per page.
//! * Sleep reads the `sleep_nights` read model: every source's sessions merged into nights (gap
//!   rule, clipped stages, naps, one main sleep per local wake date), with vitals averaged over
//!   each main sleep's window when the night or its samples change, not per request.
//! * Recovery puts RMSSD in `avg_hrv_rmssd_ms` and SDNN in `avg_hrv_sdnn_ms` (upstream puts
//!   RMSSD in the SDNN field); sleep fields come from that date's main sleep. A date is listed
//!   when it has samples or a provider recovery score; the score's components
//!   (`resting_heart_rate`, `hrv_rmssd_milli`, `spo2_percentage`) fill fields without samples.
//! * Pages are cursored by date: `next_cursor` continues in `sort_order`, `prev_…` goes back.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use uuid::Uuid;
use wearhouse_projections::daily_rollup as r;

use super::data_sources::{source_metadata, unknown_source, SourceMetadata};
use super::envelope::{Metadata, PaginatedResponse, Pagination};
use super::error::internal_api;
use super::params::{
    decode_date_cursor, encode_date_cursor, format_offset, local_date_param, Direction,
};
use super::users::SortOrder;
use super::{users, ApiError, AppState};
use crate::auth::AnyCredential;

#[derive(Tags)]
enum Tag {
    /// Daily summaries on the user's local date
    Summaries,
}

#[derive(Object, Debug, Clone, Default)]
pub struct IntensityMinutes {
    pub light: Option<i64>,
    pub moderate: Option<i64>,
    pub vigorous: Option<i64>,
}

#[derive(Object, Debug, Clone, Default)]
pub struct HeartRateStats {
    pub avg_bpm: Option<i64>,
    pub max_bpm: Option<i64>,
    pub min_bpm: Option<i64>,
}

#[derive(Object, Debug, Clone)]
pub struct ActivitySummary {
    pub date: NaiveDate,
    pub source: SourceMetadata,
    pub steps: Option<i64>,
    pub distance_meters: Option<f64>,
    pub floors_climbed: Option<i64>,
    pub elevation_meters: Option<f64>,
    pub active_calories_kcal: Option<f64>,
    pub total_calories_kcal: Option<f64>,
    pub active_minutes: Option<i64>,
    pub sedentary_minutes: Option<i64>,
    /// Null when the date has no heart rate to put into zones.
    pub intensity_minutes: Option<IntensityMinutes>,
    /// Null when the date has no heart rate.
    pub heart_rate: Option<HeartRateStats>,
}

/// The contract's `SleepStagesSummary`, the same block as a sleep event's `stages`.
#[derive(Object, Debug, Clone, Default)]
pub struct SleepStageMinutes {
    pub awake_minutes: Option<i64>,
    pub light_minutes: Option<i64>,
    pub deep_minutes: Option<i64>,
    pub rem_minutes: Option<i64>,
}

#[derive(Object, Debug, Clone)]
pub struct SleepSessionBrief {
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub zone_offset: Option<String>,
    pub duration_minutes: Option<i64>,
    pub is_nap: bool,
}

#[derive(Object, Debug, Clone)]
pub struct SleepSummary {
    pub date: NaiveDate,
    pub source: SourceMetadata,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub zone_offset: Option<String>,
    /// Main sleep; null when the date has naps only.
    pub duration_minutes: Option<i64>,
    pub total_duration_minutes: Option<i64>,
    pub time_in_bed_minutes: Option<i64>,
    pub efficiency_percent: Option<f64>,
    /// Null when the main sleep has no stage detail.
    pub stages: Option<SleepStageMinutes>,
    pub interruptions_count: Option<i64>,
    pub nap_count: Option<i64>,
    pub nap_duration_minutes: Option<i64>,
    pub sessions: Option<Vec<SleepSessionBrief>>,
    pub avg_heart_rate_bpm: Option<i64>,
    pub avg_hrv_sdnn_ms: Option<f64>,
    pub avg_hrv_rmssd_ms: Option<f64>,
    pub avg_respiratory_rate: Option<f64>,
    pub avg_spo2_percent: Option<f64>,
}

#[derive(Object, Debug, Clone)]
pub struct RecoverySummary {
    pub date: NaiveDate,
    pub source: SourceMetadata,
    pub sleep_duration_seconds: Option<i64>,
    pub sleep_efficiency_percent: Option<f64>,
    pub resting_heart_rate_bpm: Option<i64>,
    /// SDNN, from SDNN samples.
    pub avg_hrv_sdnn_ms: Option<f64>,
    /// RMSSD, from RMSSD samples.
    pub avg_hrv_rmssd_ms: Option<f64>,
    pub avg_spo2_percent: Option<f64>,
    /// A provider's recovery score (0–100) for that date, when one exists.
    pub recovery_score: Option<i64>,
}

#[derive(Object, Debug, Clone, Default)]
pub struct SlowChanging {
    pub weight_kg: Option<f64>,
    pub height_cm: Option<f64>,
    pub body_fat_percent: Option<f64>,
    /// Lean body mass.
    pub muscle_mass_kg: Option<f64>,
    pub bmi: Option<f64>,
    pub age: Option<i32>,
}

#[derive(Object, Debug, Clone)]
pub struct Averaged {
    pub period_days: i64,
    pub resting_heart_rate_bpm: Option<i64>,
    pub avg_hrv_sdnn_ms: Option<f64>,
    pub avg_hrv_rmssd_ms: Option<f64>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

#[derive(Object, Debug, Clone, Default)]
pub struct BloodPressure {
    pub avg_systolic_mmhg: Option<i64>,
    pub avg_diastolic_mmhg: Option<i64>,
    pub max_systolic_mmhg: Option<i64>,
    pub max_diastolic_mmhg: Option<i64>,
    pub min_systolic_mmhg: Option<i64>,
    pub min_diastolic_mmhg: Option<i64>,
    pub reading_count: Option<i64>,
}

#[derive(Object, Debug, Clone, Default)]
pub struct Latest {
    pub body_temperature_celsius: Option<f64>,
    pub body_temperature_measured_at: Option<DateTime<Utc>>,
    pub skin_temperature_celsius: Option<f64>,
    pub skin_temperature_measured_at: Option<DateTime<Utc>>,
    pub blood_pressure: Option<BloodPressure>,
    pub blood_pressure_measured_at: Option<DateTime<Utc>>,
}

#[derive(Object, Debug, Clone)]
pub struct BodySummary {
    pub source: SourceMetadata,
    pub slow_changing: SlowChanging,
    pub averaged: Averaged,
    pub latest: Latest,
}

const HEIGHT: i16 = 40;
const WEIGHT: i16 = 41;
const BODY_FAT: i16 = 42;
const LEAN_MASS: i16 = 44;
const BODY_TEMP: i16 = 45;
const SKIN_TEMP: i16 = 46;
const SYSTOLIC: i16 = 22;
const DIASTOLIC: i16 = 23;
/// A systolic and a diastolic reading further apart than this are not one measurement.
const BP_PAIR_SECONDS: i64 = 5;

/// The newest sample of a series: (value, time, source).
async fn latest_sample(
    client: &deadpool_postgres::Object,
    user: Uuid,
    series: i16,
) -> Result<Option<(f64, DateTime<Utc>, Uuid)>, ApiError> {
    Ok(client
        .query_opt(
            "SELECT value, time, data_source_id FROM samples WHERE user_id = $1 AND series_type = $2 \
             ORDER BY time DESC LIMIT 1",
            &[&user, &series],
        )
        .await?
        .map(|r| (r.get(0), r.get(1), r.get(2))))
}

struct Range {
    start: NaiveDate,
    end: NaiveDate,
    cursor: Option<(NaiveDate, Direction)>,
}

fn range(start: &str, end: &str, cursor: Option<&str>) -> Result<Range, ApiError> {
    let start = local_date_param(start)?;
    let end = local_date_param(end)?;
    let cursor = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_date_cursor(c)?),
        None => None,
    };
    Ok(Range { start, end, cursor })
}

/// A value the contract declares `int`, rounded to the nearest (never `-0`).
pub fn int(v: f64) -> i64 {
    v.round() as i64
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// One page of dates out of `dates` (ascending), in `order`, from the cursor.
struct DatePage {
    dates: Vec<NaiveDate>,
    has_more: bool,
    next_cursor: Option<String>,
    previous_cursor: Option<String>,
}

fn page_dates(
    all: &[NaiveDate],
    order: SortOrder,
    cursor: Option<(NaiveDate, Direction)>,
    limit: usize,
) -> DatePage {
    let mut ordered: Vec<NaiveDate> = all.to_vec();
    if order == SortOrder::Desc {
        ordered.reverse();
    }
    // Position of the first date strictly after (in listing order) the cursor's date.
    let after = |d: &NaiveDate, c: &NaiveDate| match order {
        SortOrder::Asc => d > c,
        SortOrder::Desc => d < c,
    };
    let (dates, has_more, backward) = match cursor {
        None => {
            let has_more = ordered.len() > limit;
            (
                ordered.into_iter().take(limit).collect::<Vec<_>>(),
                has_more,
                false,
            )
        }
        Some((c, Direction::Forward)) => {
            let rest: Vec<NaiveDate> = ordered.into_iter().filter(|d| after(d, &c)).collect();
            let has_more = rest.len() > limit;
            (rest.into_iter().take(limit).collect(), has_more, false)
        }
        Some((c, Direction::Backward)) => {
            let before: Vec<NaiveDate> = ordered.into_iter().filter(|d| after(&c, d)).collect();
            let has_more = before.len() > limit;
            let from = before.len().saturating_sub(limit);
            (before[from..].to_vec(), has_more, true)
        }
    };
    let (first, last) = (dates.first(), dates.last());
    let (next_cursor, previous_cursor) = if backward {
        (
            last.map(|d| encode_date_cursor(*d, Direction::Forward)),
            first
                .filter(|_| has_more)
                .map(|d| encode_date_cursor(*d, Direction::Backward)),
        )
    } else {
        (
            last.filter(|_| has_more)
                .map(|d| encode_date_cursor(*d, Direction::Forward)),
            first
                .filter(|_| cursor.is_some())
                .map(|d| encode_date_cursor(*d, Direction::Backward)),
        )
    };
    DatePage {
        dates,
        has_more,
        next_cursor,
        previous_cursor,
    }
}

fn envelope<T: poem_openapi::types::ParseFromJSON + poem_openapi::types::ToJSON>(
    data: Vec<T>,
    page: &DatePage,
    total: usize,
    r: &Range,
) -> PaginatedResponse<T> {
    PaginatedResponse {
        pagination: Pagination {
            next_cursor: page.next_cursor.clone(),
            previous_cursor: page.previous_cursor.clone(),
            has_more: page.has_more,
            total_count: Some(total as i64),
        },
        metadata: Metadata {
            // Daily is not one of the contract's resolutions: summaries send null.
            resolution: None,
            sample_count: Some(data.len() as i64),
            start_time: Some(midnight(r.start)),
            end_time: Some(midnight(r.end)),
        },
        data,
    }
}

#[derive(Clone, Copy)]
struct Cell {
    value: f64,
    min: Option<f64>,
    max: Option<f64>,
    source: Option<Uuid>,
}

/// Rollup cells of `metrics` for the user's dates in [start, end): date → metric → cell.
async fn rollup(
    client: &deadpool_postgres::Object,
    user: Uuid,
    start: NaiveDate,
    end: NaiveDate,
    metrics: &[i16],
) -> Result<BTreeMap<NaiveDate, HashMap<i16, Cell>>, ApiError> {
    let rows = client
        .query(
            "SELECT date, metric, value, min, max, data_source_id FROM daily_rollup \
             WHERE user_id = $1 AND date >= $2 AND date < $3 AND metric = ANY($4)",
            &[&user, &start, &end, &metrics],
        )
        .await?;
    let mut out: BTreeMap<NaiveDate, HashMap<i16, Cell>> = BTreeMap::new();
    for row in rows {
        out.entry(row.get(0)).or_default().insert(
            row.get(1),
            Cell {
                value: row.get(2),
                min: row.get(3),
                max: row.get(4),
                source: row.get(5),
            },
        );
    }
    Ok(out)
}

async fn sources(
    client: &deadpool_postgres::Object,
    mut ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, SourceMetadata>, ApiError> {
    ids.sort_unstable();
    ids.dedup();
    source_metadata(client, &ids).await
}

/// One merged night from the `sleep_nights` read model.
struct NightRow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    zone_offset: i16,
    source: Uuid,
    is_main: bool,
    awake: f64,
    light: f64,
    deep: f64,
    rem: f64,
    asleep: f64,
    in_bed: f64,
    interruptions: i32,
    vitals: [Option<f64>; 5],
}

impl NightRow {
    /// Net sleep, or the window when the source gave no stages.
    fn minutes(&self) -> f64 {
        if self.asleep > 0.0 {
            self.asleep
        } else {
            self.in_bed
        }
    }
    fn efficiency(&self) -> Option<f64> {
        (self.in_bed > 0.0).then(|| self.asleep / self.in_bed * 100.0)
    }
    /// Stage minutes; none when the night has no stage detail at all.
    fn stages(&self) -> Option<SleepStageMinutes> {
        let all = [self.awake, self.light, self.deep, self.rem];
        all.iter().any(|m| *m > 0.0).then(|| SleepStageMinutes {
            awake_minutes: Some(int(self.awake)),
            light_minutes: Some(int(self.light)),
            deep_minutes: Some(int(self.deep)),
            rem_minutes: Some(int(self.rem)),
        })
    }
}

/// Nights whose local wake date is in [start, end), grouped by that date, in time order.
async fn nights_by_date(
    client: &deadpool_postgres::Object,
    user: Uuid,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<BTreeMap<NaiveDate, Vec<NightRow>>, ApiError> {
    let rows = client
        .query(
            "SELECT wake_date, start_time, end_time, zone_offset, data_source_id, is_main, awake_minutes, \
                    light_minutes, deep_minutes, rem_minutes, asleep_minutes, in_bed_minutes, interruptions, \
                    avg_heart_rate, avg_hrv_sdnn, avg_hrv_rmssd, avg_respiratory_rate, avg_spo2 \
             FROM sleep_nights WHERE user_id = $1 AND wake_date >= $2 AND wake_date < $3 \
             ORDER BY wake_date, start_time",
            &[&user, &start, &end],
        )
        .await?;
    let mut out: BTreeMap<NaiveDate, Vec<NightRow>> = BTreeMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push(NightRow {
            start: r.get(1),
            end: r.get(2),
            zone_offset: r.get(3),
            source: r.get(4),
            is_main: r.get(5),
            awake: r.get(6),
            light: r.get(7),
            deep: r.get(8),
            rem: r.get(9),
            asleep: r.get(10),
            in_bed: r.get(11),
            interruptions: r.get(12),
            vitals: [r.get(13), r.get(14), r.get(15), r.get(16), r.get(17)],
        });
    }
    Ok(out)
}

/// A provider's recovery score of one local date.
struct RecoveryScore {
    value: Option<f64>,
    components: serde_json::Value,
    source: Uuid,
}

impl RecoveryScore {
    fn component(&self, name: &str) -> Option<f64> {
        self.components
            .get(name)
            .and_then(|c| c.get("value"))
            .and_then(serde_json::Value::as_f64)
    }
}

/// Provider recovery scores by local date in [start, end), the latest of each date.
async fn recovery_scores(
    client: &deadpool_postgres::Object,
    user: Uuid,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<BTreeMap<NaiveDate, RecoveryScore>, ApiError> {
    let mut out = BTreeMap::new();
    for row in client
        .query(
            "SELECT (recorded_at + make_interval(mins => coalesce(zone_offset, 0)::int))::date, value, \
                    coalesce(components, '{}'::jsonb), data_source_id \
             FROM health_scores WHERE user_id = $1 AND category = 'recovery' AND provider <> 'internal' \
               AND NOT deleted AND recorded_at >= $2 AND recorded_at < $3 ORDER BY recorded_at",
            &[&user, &(midnight(start) - Duration::days(1)), &(midnight(end) + Duration::days(1))],
        )
        .await?
    {
        let date: NaiveDate = row.get(0);
        let source: Option<Uuid> = row.get(3);
        if (start..end).contains(&date) {
            out.insert(
                date,
                RecoveryScore {
                    value: row.get(1),
                    components: row.get(2),
                    source: source.unwrap_or_default(),
                },
            );
        }
    }
    Ok(out)
}

fn main_of(nights: &[NightRow]) -> Option<&NightRow> {
    nights.iter().find(|n| n.is_main)
}

pub struct DailyApi;

#[OpenApi(prefix_path = "/api/v1")]
impl DailyApi {
    /// Daily activity, merged across sources, per local date
    #[oai(
        path = "/users/:user_id/summaries/activity",
        method = "get",
        tag = "Tag::Summaries"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn activity(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        /// First local date (inclusive)
        start_date: Query<String>,
        /// Last local date (exclusive)
        end_date: Query<String>,
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "400"))
        )]
        limit: Query<i64>,
        #[oai(default = "default_order")] sort_order: Query<SortOrder>,
    ) -> Result<Json<PaginatedResponse<ActivitySummary>>, ApiError> {
        let rg = range(&start_date.0, &end_date.0, cursor.0.as_deref())?;
        users::load(&state, user_id.0).await?;
        let client = state.db().await.map_err(internal_api)?;
        let distances = r::distance_ids();
        let mut metrics = vec![
            r::STEPS,
            r::ACTIVE_ENERGY,
            r::BASAL_ENERGY,
            r::FLIGHTS,
            r::HEART_RATE,
            r::ACTIVE_MINUTES,
            r::TRACKED_MINUTES,
            r::LIGHT_MINUTES,
            r::MODERATE_MINUTES,
            r::VIGOROUS_MINUTES,
        ];
        metrics.extend(&distances);
        let cells = rollup(&client, user_id.0, rg.start, rg.end, &metrics).await?;
        let all: Vec<NaiveDate> = cells.keys().copied().collect();
        let page = page_dates(&all, sort_order.0, rg.cursor, limit.0 as usize);
        // Workouts' elevation gain per local start date of the page.
        let mut elevation: HashMap<NaiveDate, f64> = HashMap::new();
        if let (Some(lo), Some(hi)) = (page.dates.iter().min(), page.dates.iter().max()) {
            for row in client
                .query(
                    "SELECT (start_time + make_interval(mins => coalesce(zone_offset, 0)::int))::date AS d, \
                            sum((stats->>'elevation_gain_m')::float8) \
                     FROM workouts WHERE user_id = $1 AND NOT deleted AND stats ? 'elevation_gain_m' \
                       AND start_time >= $2 AND start_time < $3 GROUP BY 1",
                    &[&user_id.0, &(midnight(*lo) - Duration::days(1)), &(midnight(*hi) + Duration::days(2))],
                )
                .await?
            {
                let d: NaiveDate = row.get(0);
                if let Some(v) = row.get::<_, Option<f64>>(1) {
                    elevation.insert(d, v);
                }
            }
        }
        let ids: Vec<Uuid> = page
            .dates
            .iter()
            .flat_map(|d| cells[d].values().filter_map(|c| c.source))
            .collect();
        let srcs = sources(&client, ids).await?;
        let data: Vec<ActivitySummary> = page
            .dates
            .iter()
            .map(|d| {
                let c = &cells[d];
                let v = |m: i16| c.get(&m).map(|x| x.value);
                let distance: Option<f64> = {
                    let parts: Vec<f64> = distances.iter().filter_map(|m| v(*m)).collect();
                    (!parts.is_empty()).then(|| parts.iter().sum())
                };
                let elev = elevation.get(d).copied();
                let floors = v(r::FLIGHTS)
                    .map(|f| f.round() as i64)
                    .or(elev.map(|e| (e / 3.0).floor() as i64));
                let active = v(r::ACTIVE_ENERGY);
                let basal = v(r::BASAL_ENERGY);
                // Active + basal. A provider's own total reaches here as its basal part
                // (the mapper records total - active), so the sum is that total. Active
                // alone is not a total: without basal the field stays null.
                let total = basal.map(|b| b + active.unwrap_or(0.0));
                let active_min = v(r::ACTIVE_MINUTES).map(int);
                let tracked = v(r::TRACKED_MINUTES).map(int);
                let source_id = [r::STEPS, r::ACTIVE_ENERGY, r::HEART_RATE]
                    .iter()
                    .find_map(|m| c.get(m).and_then(|x| x.source))
                    .or_else(|| c.values().find_map(|x| x.source));
                let hr = c.get(&r::HEART_RATE);
                let zones = [r::LIGHT_MINUTES, r::MODERATE_MINUTES, r::VIGOROUS_MINUTES];
                ActivitySummary {
                    date: *d,
                    source: source_id
                        .and_then(|s| srcs.get(&s).cloned())
                        .unwrap_or_else(unknown_source),
                    steps: v(r::STEPS).map(int),
                    distance_meters: distance,
                    floors_climbed: floors,
                    elevation_meters: elev,
                    active_calories_kcal: active,
                    total_calories_kcal: total,
                    active_minutes: active_min,
                    sedentary_minutes: tracked.map(|t| (t - active_min.unwrap_or(0)).max(0)),
                    intensity_minutes: zones.iter().any(|z| c.contains_key(z)).then(|| {
                        IntensityMinutes {
                            light: v(r::LIGHT_MINUTES).map(int),
                            moderate: v(r::MODERATE_MINUTES).map(int),
                            vigorous: v(r::VIGOROUS_MINUTES).map(int),
                        }
                    }),
                    heart_rate: hr.map(|h| HeartRateStats {
                        avg_bpm: Some(int(h.value)),
                        max_bpm: h.max.map(int),
                        min_bpm: h.min.map(int),
                    }),
                }
            })
            .collect();
        Ok(Json(envelope(data, &page, all.len(), &rg)))
    }

    /// Nightly sleep, merged across sources, per local wake date
    #[oai(
        path = "/users/:user_id/summaries/sleep",
        method = "get",
        tag = "Tag::Summaries"
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
        #[oai(default = "default_order")] sort_order: Query<SortOrder>,
    ) -> Result<Json<PaginatedResponse<SleepSummary>>, ApiError> {
        let rg = range(&start_date.0, &end_date.0, cursor.0.as_deref())?;
        users::load(&state, user_id.0).await?;
        let client = state.db().await.map_err(internal_api)?;
        let nights = nights_by_date(&client, user_id.0, rg.start, rg.end).await?;
        let all: Vec<NaiveDate> = nights.keys().copied().collect();
        let page = page_dates(&all, sort_order.0, rg.cursor, limit.0 as usize);
        let ids: Vec<Uuid> = page
            .dates
            .iter()
            .flat_map(|d| nights[d].iter().map(|n| n.source))
            .collect();
        let srcs = sources(&client, ids).await?;
        // A provider's nightly SpO2 (Oura's daily_spo2) is one value stamped on the wake date,
        // outside the sleep window: the date's SpO2, as the recovery summary shows it, stands
        // in when no reading falls inside the main sleep.
        let daily_spo2 = match (page.dates.iter().min(), page.dates.iter().max()) {
            (Some(lo), Some(hi)) => {
                rollup(&client, user_id.0, *lo, *hi + Duration::days(1), &[r::SPO2]).await?
            }
            _ => BTreeMap::new(),
        };
        let data: Vec<SleepSummary> = page
            .dates
            .iter()
            .map(|d| {
                let ns = &nights[d];
                let main = main_of(ns);
                // Every night but the main sleep counts as a nap.
                let naps: Vec<&NightRow> = ns.iter().filter(|n| !n.is_main).collect();
                // Summed from +0.0: an empty f64 sum is -0.0.
                let nap_minutes: f64 = naps.iter().fold(0.0, |a, n| a + n.minutes());
                let main_minutes = main.map(NightRow::minutes);
                let vital = |i: usize| main.and_then(|n| n.vitals[i]);
                let spo2 = vital(4).or_else(|| {
                    main.and(daily_spo2.get(d))
                        .and_then(|c| c.get(&r::SPO2))
                        .map(|c| c.value)
                });
                let source = main.or(ns.first()).map(|n| n.source);
                SleepSummary {
                    date: *d,
                    source: source
                        .and_then(|s| srcs.get(&s).cloned())
                        .unwrap_or_else(unknown_source),
                    start_time: main.map(|n| n.start),
                    end_time: main.map(|n| n.end),
                    zone_offset: main.map(|n| format_offset(n.zone_offset)),
                    duration_minutes: main_minutes.map(int),
                    total_duration_minutes: Some(int(main_minutes.unwrap_or(0.0) + nap_minutes)),
                    time_in_bed_minutes: main.map(|n| int(n.in_bed)),
                    efficiency_percent: main.and_then(NightRow::efficiency),
                    stages: main.and_then(NightRow::stages),
                    interruptions_count: main.map(|n| n.interruptions as i64),
                    nap_count: Some(naps.len() as i64),
                    nap_duration_minutes: Some(int(nap_minutes)),
                    sessions: Some(
                        ns.iter()
                            .map(|n| SleepSessionBrief {
                                start_time: n.start,
                                end_time: n.end,
                                zone_offset: Some(format_offset(n.zone_offset)),
                                duration_minutes: Some(int(n.minutes())),
                                is_nap: !n.is_main,
                            })
                            .collect(),
                    ),
                    avg_heart_rate_bpm: vital(0).map(int),
                    avg_hrv_sdnn_ms: vital(1),
                    avg_hrv_rmssd_ms: vital(2),
                    avg_respiratory_rate: vital(3),
                    avg_spo2_percent: spo2,
                }
            })
            .collect();
        Ok(Json(envelope(data, &page, all.len(), &rg)))
    }

    /// Daily recovery markers per local date
    #[oai(
        path = "/users/:user_id/summaries/recovery",
        method = "get",
        tag = "Tag::Summaries"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn recovery(
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
        #[oai(default = "default_order")] sort_order: Query<SortOrder>,
    ) -> Result<Json<PaginatedResponse<RecoverySummary>>, ApiError> {
        let rg = range(&start_date.0, &end_date.0, cursor.0.as_deref())?;
        users::load(&state, user_id.0).await?;
        let client = state.db().await.map_err(internal_api)?;
        let cells = rollup(
            &client,
            user_id.0,
            rg.start,
            rg.end,
            &[r::RESTING_HR, r::HRV_SDNN, r::HRV_RMSSD, r::SPO2],
        )
        .await?;
        // Provider recovery scores (Whoop, Suunto, Polar, ...) on their local date; the latest
        // of a date wins. A date with a score and no samples is listed too.
        let scores = recovery_scores(&client, user_id.0, rg.start, rg.end).await?;
        let mut all: Vec<NaiveDate> = cells.keys().chain(scores.keys()).copied().collect();
        all.sort_unstable();
        all.dedup();
        let page = page_dates(&all, sort_order.0, rg.cursor, limit.0 as usize);
        let (lo, hi) = match (page.dates.iter().min(), page.dates.iter().max()) {
            (Some(a), Some(b)) => (*a, *b + Duration::days(1)),
            _ => (rg.start, rg.start),
        };
        let nights = nights_by_date(&client, user_id.0, lo, hi).await?;
        let no_cells = HashMap::new();
        let ids: Vec<Uuid> = page
            .dates
            .iter()
            .flat_map(|d| {
                let c = cells.get(d).unwrap_or(&no_cells);
                c.values()
                    .filter_map(|c| c.source)
                    .chain(scores.get(d).map(|s| s.source))
                    .collect::<Vec<_>>()
            })
            .collect();
        let srcs = sources(&client, ids).await?;
        let data: Vec<RecoverySummary> = page
            .dates
            .iter()
            .map(|d| {
                let c = cells.get(d).unwrap_or(&no_cells);
                let score = scores.get(d);
                // Samples first; the score's components (the contract's source) fill the gaps.
                let v = |m: i16, component: &str| {
                    c.get(&m)
                        .map(|x| x.value)
                        .or_else(|| score.and_then(|s| s.component(component)))
                };
                let main = nights.get(d).and_then(|ns| main_of(ns));
                let source = [r::HRV_RMSSD, r::RESTING_HR, r::HRV_SDNN, r::SPO2]
                    .iter()
                    .find_map(|m| c.get(m).and_then(|x| x.source))
                    .or(score.map(|s| s.source));
                RecoverySummary {
                    date: *d,
                    source: source
                        .and_then(|s| srcs.get(&s).cloned())
                        .unwrap_or_else(unknown_source),
                    sleep_duration_seconds: main.map(|n| int(n.minutes() * 60.0)),
                    sleep_efficiency_percent: main.and_then(NightRow::efficiency),
                    resting_heart_rate_bpm: v(r::RESTING_HR, "resting_heart_rate").map(int),
                    avg_hrv_sdnn_ms: c.get(&r::HRV_SDNN).map(|x| x.value),
                    avg_hrv_rmssd_ms: v(r::HRV_RMSSD, "hrv_rmssd_milli"),
                    avg_spo2_percent: v(r::SPO2, "spo2_percentage"),
                    recovery_score: score.and_then(|s| s.value).map(int),
                }
            })
            .collect();
        Ok(Json(envelope(data, &page, all.len(), &rg)))
    }
}

#[OpenApi(prefix_path = "/api/v1")]
impl BodyApi {
    /// Body composition, recent vitals and latest readings (null when there is nothing)
    #[oai(
        path = "/users/:user_id/summaries/body",
        method = "get",
        tag = "Tag::Summaries"
    )]
    async fn body(
        &self,
        state: Data<&AppState>,
        _auth: AnyCredential,
        user_id: Path<Uuid>,
        /// Days averaged, ending now
        #[oai(
            default = "default_period",
            validator(minimum(value = "1"), maximum(value = "7"))
        )]
        average_period: Query<i64>,
        /// Latest readings older than this many hours are left out
        #[oai(
            default = "default_window",
            validator(minimum(value = "1"), maximum(value = "24"))
        )]
        latest_window_hours: Query<i64>,
    ) -> Result<Json<Option<BodySummary>>, ApiError> {
        users::load(&state, user_id.0).await?;
        let client = state.db().await.map_err(internal_api)?;
        let user = user_id.0;
        let now = Utc::now();
        let weight = latest_sample(&client, user, WEIGHT).await?;
        let height = latest_sample(&client, user, HEIGHT).await?;
        let fat = latest_sample(&client, user, BODY_FAT).await?;
        let lean = latest_sample(&client, user, LEAN_MASS).await?;
        let birth: Option<NaiveDate> = client
            .query_opt(
                "SELECT birth_date FROM personal_records WHERE user_id = $1",
                &[&user],
            )
            .await?
            .and_then(|r| r.get(0));
        let age = birth.map(|b| {
            let today = now.date_naive();
            let mut a = today.year() - b.year();
            if (today.month(), today.day()) < (b.month(), b.day()) {
                a -= 1;
            }
            a
        });
        let bmi = match (weight, height) {
            (Some((w, ..)), Some((h, ..))) if h > 0.0 => {
                Some((w / (h / 100.0).powi(2) * 10.0).round() / 10.0)
            }
            _ => None,
        };
        let period_start = now - Duration::days(average_period.0);
        let mut averages: HashMap<i16, f64> = HashMap::new();
        for row in client
            .query(
                "SELECT series_type, avg(value) FROM samples WHERE user_id = $1 AND series_type = ANY($2) \
                 AND time >= $3 AND time < $4 GROUP BY 1",
                &[&user, &vec![r::RESTING_HR, r::HRV_SDNN, r::HRV_RMSSD], &period_start, &now],
            )
            .await?
        {
            averages.insert(row.get(0), row.get(1));
        }
        let since = now - Duration::hours(latest_window_hours.0);
        let recent = |x: Option<(f64, DateTime<Utc>, Uuid)>| x.filter(|(_, t, _)| *t >= since);
        let body_temp = recent(latest_sample(&client, user, BODY_TEMP).await?);
        let skin_temp = recent(latest_sample(&client, user, SKIN_TEMP).await?);
        let bp_rows = client
            .query(
                "SELECT series_type, time, value FROM samples WHERE user_id = $1 AND series_type = ANY($2) \
                 AND time >= $3 AND time <= $4 ORDER BY time",
                &[&user, &vec![SYSTOLIC, DIASTOLIC], &since, &now],
            )
            .await?;
        let mut sys: Vec<(DateTime<Utc>, f64)> = Vec::new();
        let mut dia: Vec<(DateTime<Utc>, f64)> = Vec::new();
        for row in &bp_rows {
            let t: i16 = row.get(0);
            if t == SYSTOLIC {
                sys.push((row.get(1), row.get(2)));
            } else {
                dia.push((row.get(1), row.get(2)));
            }
        }
        let mut pairs: Vec<(f64, f64, DateTime<Utc>)> = Vec::new();
        let mut used = vec![false; dia.len()];
        for (t, s) in &sys {
            if let Some(i) = (0..dia.len())
                .find(|i| !used[*i] && (dia[*i].0 - *t).num_seconds().abs() <= BP_PAIR_SECONDS)
            {
                used[i] = true;
                pairs.push((*s, dia[i].1, *t));
            }
        }
        let blood_pressure = (!pairs.is_empty()).then(|| {
            let n = pairs.len() as f64;
            let fold = |f: fn(f64, f64) -> f64, pick: fn(&(f64, f64, DateTime<Utc>)) -> f64| {
                pairs.iter().map(pick).reduce(f)
            };
            BloodPressure {
                avg_systolic_mmhg: Some(int(pairs.iter().map(|p| p.0).sum::<f64>() / n)),
                avg_diastolic_mmhg: Some(int(pairs.iter().map(|p| p.1).sum::<f64>() / n)),
                max_systolic_mmhg: fold(f64::max, |p| p.0).map(int),
                max_diastolic_mmhg: fold(f64::max, |p| p.1).map(int),
                min_systolic_mmhg: fold(f64::min, |p| p.0).map(int),
                min_diastolic_mmhg: fold(f64::min, |p| p.1).map(int),
                reading_count: Some(pairs.len() as i64),
            }
        });
        let anything = weight.is_some()
            || height.is_some()
            || fat.is_some()
            || lean.is_some()
            || !averages.is_empty()
            || body_temp.is_some()
            || skin_temp.is_some()
            || blood_pressure.is_some();
        if !anything {
            return Ok(Json(None));
        }
        let mut source_id = [weight, fat, height, lean, body_temp, skin_temp]
            .iter()
            .flatten()
            .map(|x| x.2)
            .next();
        if source_id.is_none() {
            // Only averages or blood pressure: the source of the newest of those readings
            // (the contract requires a source).
            source_id = client
                .query_opt(
                    "SELECT data_source_id FROM samples WHERE user_id = $1 AND series_type = ANY($2) \
                     AND time >= $3 AND time <= $4 ORDER BY time DESC LIMIT 1",
                    &[
                        &user,
                        &vec![r::RESTING_HR, r::HRV_SDNN, r::HRV_RMSSD, SYSTOLIC, DIASTOLIC],
                        &period_start.min(since),
                        &now,
                    ],
                )
                .await?
                .map(|r| r.get(0));
        }
        let srcs = sources(&client, source_id.into_iter().collect()).await?;
        Ok(Json(Some(BodySummary {
            source: source_id
                .and_then(|s| srcs.get(&s).cloned())
                .unwrap_or_else(unknown_source),
            slow_changing: SlowChanging {
                weight_kg: weight.map(|x| x.0),
                height_cm: height.map(|x| x.0),
                body_fat_percent: fat.map(|x| x.0),
                muscle_mass_kg: lean.map(|x| x.0),
                bmi,
                age,
            },
            averaged: Averaged {
                period_days: average_period.0,
                resting_heart_rate_bpm: averages.get(&r::RESTING_HR).copied().map(int),
                avg_hrv_sdnn_ms: averages.get(&r::HRV_SDNN).copied(),
                avg_hrv_rmssd_ms: averages.get(&r::HRV_RMSSD).copied(),
                period_start,
                period_end: now,
            },
            latest: Latest {
                body_temperature_celsius: body_temp.map(|x| x.0),
                body_temperature_measured_at: body_temp.map(|x| x.1),
                skin_temperature_celsius: skin_temp.map(|x| x.0),
                skin_temperature_measured_at: skin_temp.map(|x| x.1),
                blood_pressure_measured_at: pairs.last().map(|p| p.2),
                blood_pressure,
            },
        })))
    }
}

pub struct BodyApi;

fn default_period() -> i64 {
    7
}
fn default_window() -> i64 {
    4
}
fn default_limit() -> i64 {
    50
}
fn default_order() -> SortOrder {
    SortOrder::Asc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, n).unwrap()
    }

    #[test]
    fn date_pages_walk_both_ways_in_either_order() {
        let all: Vec<NaiveDate> = (1..=5).map(d).collect();
        let p = page_dates(&all, SortOrder::Asc, None, 2);
        assert_eq!((p.dates.clone(), p.has_more), (vec![d(1), d(2)], true));
        let (c, dir) = decode_date_cursor(p.next_cursor.as_ref().unwrap()).unwrap();
        let p = page_dates(&all, SortOrder::Asc, Some((c, dir)), 2);
        assert_eq!(p.dates, vec![d(3), d(4)]);
        let back = decode_date_cursor(p.previous_cursor.as_ref().unwrap()).unwrap();
        let p = page_dates(&all, SortOrder::Asc, Some(back), 2);
        assert_eq!((p.dates.clone(), p.has_more), (vec![d(1), d(2)], false));
        let p = page_dates(&all, SortOrder::Desc, None, 3);
        assert_eq!(p.dates, vec![d(5), d(4), d(3)]);
        let c = decode_date_cursor(p.next_cursor.as_ref().unwrap()).unwrap();
        let p = page_dates(&all, SortOrder::Desc, Some(c), 3);
        assert_eq!((p.dates.clone(), p.has_more), (vec![d(2), d(1)], false));
    }
}
