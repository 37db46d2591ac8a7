//! The Apple Health import pipeline: store the raw file, check it parses, then stream it through
//! the parser into Arrow sample batches and data events, appended in short transactions while the
//! parser runs on its own thread. Memory stays flat whatever the file size.

use std::collections::{BTreeMap, HashMap};
use std::iter::Peekable;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use uuid::Uuid;
use wearhouse_domain::daily::local_date;
use wearhouse_domain::import::{Import, ImportCommand, ImportCounts};
use wearhouse_domain::menstrual::{fold_cycles, FlowDay};
use wearhouse_domain::records::{
    record_id, ActivitySummaryRecord, Characteristics, DataEvent, DataSourceInfo,
    SleepSessionRecord, WorkoutRecord,
};
use wearhouse_domain::sync_run::{SyncRun, SyncRunCommand};
use wearhouse_log::arrow_batch::{self, SampleRow};

use super::apple::{self, BiologicalSex, NullSink, Sink, SinkError, Source};
use super::raw::{self, RawMeta};
use super::sleep_sessions::{self, Interval};
use crate::store::{Actor, Commands};
use wearhouse_log::writer::{writer, Out, WriteError};

/// Samples per Arrow batch (one series type and one source per batch).
pub const BATCH_ROWS: usize = 10_000;
/// Samples held across all partly filled batches before the largest is written early.
const MAX_BUFFERED_ROWS: usize = 200_000;
/// Partly filled batches held at once (real exports: a few hundred source × type pairs; an
/// export naming thousands of sources must not hold a buffer for each pair).
const MAX_OPEN_BATCHES: usize = 2048;
/// The activity rings' series: active energy and exercise time.
const RING_ENERGY: i16 = 81;
const RING_EXERCISE: i16 = 84;
/// The buffer key's source index of the rings' source (never a parser index).
const SUMMARY_SOURCE: u32 = u32::MAX;
/// Records per workout / summary / cycle event.
const RECORDS_PER_EVENT: usize = 500;
/// Sleep sessions per event: each carries its stage timeline, so fewer keep events small
/// enough for readers to load a few at a time.
const SESSIONS_PER_EVENT: usize = 100;
pub const PROVIDER: &str = "apple";

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Raw(#[from] raw::RawError),
    #[error("{0}")]
    Parse(#[from] apple::ImportError),
    #[error("database: {}", wearhouse_log::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("event store: {0}")]
    Command(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("a pipeline task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("encoding a sample batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Live figures of a running import, for progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    pub total_bytes: AtomicU64,
    pub bytes_read: Arc<AtomicU64>,
    pub records: AtomicU64,
}

pub struct ImportRequest {
    pub import_id: Uuid,
    pub user_id: Uuid,
    pub path: PathBuf,
    pub filename: Option<String>,
    /// Known when the upload computed it on the way in.
    pub sha256: Option<String>,
    pub actor: Actor,
    /// Caps that fail the import past them (zip bombs and the like).
    pub limits: apple::Limits,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed {
        counts: ImportCounts,
        duplicate_of: Option<Uuid>,
    },
    Failed {
        error: String,
    },
    /// A re-run found the import already completed or failed.
    AlreadyEnded,
}

/// How far an import got, from its streams in the log.
#[derive(Debug, Default)]
struct Reached {
    received: bool,
    started: bool,
    import_ended: bool,
    run_started: bool,
    run_ended: bool,
}

impl Reached {
    async fn of(pool: &Pool, id: Uuid) -> Result<Reached, PipelineError> {
        let rows = pool
            .get()
            .await?
            .query(
                "SELECT DISTINCT event_type FROM events \
                  WHERE aggregate_type IN ('Import', 'SyncRun') AND aggregate_id = $1",
                &[&id.to_string()],
            )
            .await?;
        let mut r = Reached::default();
        for row in rows {
            match row.get::<_, &str>(0) {
                "RawPayloadReceived" => r.received = true,
                "ImportStarted" => r.started = true,
                "ImportCompleted" | "ImportFailed" => r.import_ended = true,
                "SyncRunStarted" => r.run_started = true,
                "SyncRunCompleted" | "SyncRunFailed" | "SyncRunCancelled" => r.run_ended = true,
                _ => {}
            }
        }
        Ok(r)
    }
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

struct BatchSink {
    user_id: Uuid,
    sources: Vec<Uuid>,
    /// Per parser source index, the first index with the same data source.
    canonical: Vec<u32>,
    canonical_of: HashMap<Uuid, u32>,
    buffers: HashMap<
        (u32, i16),
        (
            &'static wearhouse_domain::series::SeriesType,
            Vec<SampleRow>,
        ),
    >,
    /// Rows held in `buffers` in all.
    buffered: usize,
    sleep: HashMap<u32, sleep_sessions::Pending>,
    /// Sessions waiting to fill an event, and how many were built in all.
    sessions: Vec<SleepSessionRecord>,
    session_count: u64,
    /// The rings' source, once an `ActivitySummary` was seen.
    summary: Option<Uuid>,
    /// Flow days per source, folded into cycles at the end (a few hundred a year at most).
    flows: HashMap<u32, Vec<FlowDay>>,
    workouts: Vec<WorkoutRecord>,
    summaries: Vec<ActivitySummaryRecord>,
    out: mpsc::Sender<Out>,
    progress: Arc<Progress>,
}

impl BatchSink {
    fn send(&self, out: Out) -> Result<(), SinkError> {
        self.out
            .blocking_send(out)
            .map_err(|_| "the writer stopped".into())
    }

    fn flush(&mut self, key: (u32, i16)) -> Result<(), SinkError> {
        let Some((series, rows)) = self.buffers.remove(&key) else {
            return Ok(());
        };
        self.buffered -= rows.len();
        if rows.is_empty() {
            return Ok(());
        }
        let data_source_id = self.source_id(key.0);
        let ds = data_source_id.to_string();
        let arrow = arrow_batch::encode(series, &rows, &[("data_source_id", &ds)])?;
        let start = rows.iter().map(|r| r.time).min().unwrap_or_default();
        let end = rows
            .iter()
            .map(|r| r.end_time.max(r.time))
            .max()
            .unwrap_or_default();
        self.send(Out::Batch {
            data_source_id,
            series_type: series.id,
            count: rows.len() as i32,
            start,
            end,
            arrow,
        })
    }

    /// The source of the daily activity rings: a watch-type Apple source, because the rings are
    /// the Apple Watch's figures (so they rank with the watch, docs/merging.md). It lives outside
    /// the parser's source indexes (which must stay equal to positions in `sources`), under
    /// [`SUMMARY_SOURCE`].
    fn summary_source(&mut self) -> Result<Uuid, SinkError> {
        if let Some(id) = self.summary {
            return Ok(id);
        }
        let id = DataSourceInfo::id_for(self.user_id, PROVIDER, None, Some("apple_health_xml"));
        self.summary = Some(id);
        let info = DataSourceInfo {
            id,
            provider: PROVIDER.into(),
            source: Some("apple_health_xml".into()),
            original_source_name: Some("Apple Activity".into()),
            device_model: None,
            device_name: None,
            manufacturer: Some("Apple Inc.".into()),
            hardware: None,
            software_version: None,
            device_type: Some("watch".into()),
        };
        self.send(Out::Event(DataEvent::SourcesDiscovered {
            user_id: self.user_id,
            sources: vec![info],
        }))?;
        Ok(id)
    }

    /// The data source behind a buffer key's source index.
    fn source_id(&self, index: u32) -> Uuid {
        match (index, self.summary) {
            (SUMMARY_SOURCE, Some(id)) => id,
            _ => self.sources[index as usize],
        }
    }

    /// Buffers a row of a (source, series) batch; writes the batch when it is full, or the
    /// largest one when too many rows are held.
    fn push_row(
        &mut self,
        source: u32,
        series: &'static wearhouse_domain::series::SeriesType,
        row: SampleRow,
    ) -> Result<(), SinkError> {
        let key = (source, series.id);
        let (_, rows) = self
            .buffers
            .entry(key)
            .or_insert_with(|| (series, Vec::with_capacity(256)));
        rows.push(row);
        let full = rows.len() >= BATCH_ROWS;
        self.buffered += 1;
        if full {
            self.flush(key)?;
        } else if self.buffered >= MAX_BUFFERED_ROWS || self.buffers.len() > MAX_OPEN_BATCHES {
            // Exports that interleave many sources and types would otherwise hold a nearly full
            // batch for each pair: flush the largest so memory stays flat whatever the file.
            let largest = self
                .buffers
                .iter()
                .max_by_key(|(_, (_, rows))| rows.len())
                .map(|(k, _)| *k);
            if let Some(largest) = largest {
                self.flush(largest)?;
            }
        }
        Ok(())
    }

    /// Sessions go out an event's worth at a time.
    fn queue_session(&mut self, session: SleepSessionRecord) -> Result<(), SinkError> {
        self.session_count += 1;
        self.sessions.push(session);
        if self.sessions.len() >= SESSIONS_PER_EVENT {
            self.send_sessions()?;
        }
        Ok(())
    }

    fn send_sessions(&mut self) -> Result<(), SinkError> {
        if self.sessions.is_empty() {
            return Ok(());
        }
        let sessions = std::mem::take(&mut self.sessions);
        self.send(Out::Event(DataEvent::SleepSessionsRecorded {
            user_id: self.user_id,
            sessions,
        }))
    }

    /// Workouts and activity summaries go out an event's worth at a time as they are parsed.
    fn send_workouts(&mut self) -> Result<(), SinkError> {
        if self.workouts.is_empty() {
            return Ok(());
        }
        let workouts = std::mem::take(&mut self.workouts);
        self.send(Out::Event(DataEvent::WorkoutsRecorded {
            user_id: self.user_id,
            workouts,
        }))
    }

    fn send_summaries(&mut self) -> Result<(), SinkError> {
        if self.summaries.is_empty() {
            return Ok(());
        }
        let summaries = std::mem::take(&mut self.summaries);
        self.send(Out::Event(DataEvent::ActivitySummariesRecorded {
            user_id: self.user_id,
            summaries,
        }))
    }

    /// Everything still buffered: partial batches, sleep sessions, cycles, workouts, summaries.
    /// Returns (sleep sessions, menstrual cycles).
    fn finish(&mut self) -> Result<(u64, u64), SinkError> {
        let keys: Vec<(u32, i16)> = self.buffers.keys().copied().collect();
        for key in keys {
            self.flush(key)?;
        }
        // The sessions still open, every source's merged in time order: each event then covers
        // a few weeks, and the nights and scores read models recompute each night about once.
        let mut late = 0;
        let mut sources: Vec<Peekable<sleep_sessions::Sessions>> = Vec::new();
        for (source, pending) in std::mem::take(&mut self.sleep) {
            late += pending.late;
            let intervals = pending.into_rest();
            sources
                .push(sleep_sessions::Sessions::new(self.source_id(source), intervals).peekable());
        }
        if late > 0 {
            tracing::warn!(
                late,
                "sleep intervals listed after their night had been closed; kept as sessions of their own"
            );
        }
        loop {
            let earliest = sources
                .iter_mut()
                .enumerate()
                .filter_map(|(n, s)| s.peek().map(|s| ((s.start, s.id), n)))
                .min();
            let Some(session) = earliest.and_then(|(_, n)| sources[n].next()) else {
                break;
            };
            self.queue_session(session)?;
        }
        self.send_sessions()?;
        let session_count = self.session_count;
        let mut cycles = Vec::new();
        for (source, days) in std::mem::take(&mut self.flows) {
            let data_source_id = self.sources[source as usize];
            let folded = fold_cycles(data_source_id, days);
            if let (Some(from), Some(to)) = (
                folded.iter().map(|c| c.start).min(),
                folded.iter().map(|c| c.start).max(),
            ) {
                self.send(Out::Event(DataEvent::MenstrualCyclesDerived {
                    user_id: self.user_id,
                    data_source_id,
                    from,
                    to,
                    ids: folded.iter().map(|c| c.id).collect(),
                }))?;
            }
            cycles.extend(folded);
        }
        cycles.sort_by_key(|c| (c.start, c.id));
        let cycle_count = cycles.len() as u64;
        for chunk in cycles.chunks(RECORDS_PER_EVENT) {
            self.send(Out::Event(DataEvent::MenstrualCyclesRecorded {
                user_id: self.user_id,
                cycles: chunk.to_vec(),
            }))?;
        }
        self.send_workouts()?;
        self.send_summaries()?;
        Ok((session_count, cycle_count))
    }
}

fn source_info(user_id: Uuid, source: &Source) -> DataSourceInfo {
    let device = source.device.clone().unwrap_or_default();
    // The identity keeps the hardware revision (two watch generations under one name stay two
    // sources, and ids stay what earlier imports gave); the model shown is HKDevice's `model`
    // (`Watch`, `iPhone`, `BS-200`) as the contract has it, the revision its hardware version.
    let identity = device.hardware.as_deref().or(device.model.as_deref());
    DataSourceInfo {
        id: DataSourceInfo::id_for(user_id, PROVIDER, identity, Some(&source.source_name)),
        provider: PROVIDER.into(),
        source: Some(source.source_name.clone()),
        original_source_name: Some(source.source_name.clone()),
        device_model: device.model.clone().or(device.hardware.clone()),
        device_name: device.name,
        manufacturer: device.manufacturer,
        hardware: device.hardware,
        software_version: device.software.or(source.source_version.clone()),
        device_type: Some(source.device_type.as_str().to_string()),
    }
}

impl Sink for BatchSink {
    fn source(&mut self, index: u32, source: &Source) -> Result<(), SinkError> {
        let info = source_info(self.user_id, source);
        debug_assert_eq!(index as usize, self.sources.len());
        self.sources.push(info.id);
        // Two parser sources that are one data source (e.g. the same device under two
        // manufacturer spellings) share batches and sleep sessions.
        if let Some(&first) = self.canonical_of.get(&info.id) {
            self.canonical.push(first);
            return Ok(());
        }
        self.canonical_of.insert(info.id, index);
        self.canonical.push(index);
        self.send(Out::Event(DataEvent::SourcesDiscovered {
            user_id: self.user_id,
            sources: vec![info],
        }))
    }

    fn sample(&mut self, s: &apple::Sample) -> Result<(), SinkError> {
        self.progress.records.fetch_add(1, Ordering::Relaxed);
        let source = self.canonical[s.source as usize];
        self.push_row(source, s.series, SampleRow::from(s))
    }
    fn sleep(&mut self, i: &apple::SleepInterval) -> Result<(), SinkError> {
        let source = self.canonical[i.source as usize];
        let done = self.sleep.entry(source).or_default().push(Interval {
            stage: i.stage,
            start: i.start,
            end: i.end,
            zone_offset_min: i.zone_offset_min,
        });
        for session in sleep_sessions::Sessions::new(self.source_id(source), done) {
            self.queue_session(session)?;
        }
        Ok(())
    }

    fn menstrual_flow(&mut self, f: &apple::MenstrualFlow) -> Result<(), SinkError> {
        // A day logged as "no flow" carries nothing a cycle needs.
        if f.flow {
            let source = self.canonical[f.source as usize];
            self.flows.entry(source).or_default().push(FlowDay {
                date: local_date(f.start, f.zone_offset_min),
                offset_min: f.zone_offset_min,
                cycle_start: f.cycle_start,
            });
        }
        Ok(())
    }

    fn workout(&mut self, w: &apple::Workout) -> Result<(), SinkError> {
        let data_source_id = self.sources[w.source as usize];
        let s = &w.stats;
        let stats: BTreeMap<String, f64> = [
            ("energy_kcal", s.energy_kcal),
            ("basal_energy_kcal", s.basal_energy_kcal),
            ("distance_m", s.distance_m),
            ("steps", s.steps),
            ("swim_strokes", s.swim_strokes),
            ("flights_climbed", s.flights_climbed),
            ("heart_rate_avg", s.heart_rate_avg),
            ("heart_rate_min", s.heart_rate_min),
            ("heart_rate_max", s.heart_rate_max),
            ("avg_speed_m_s", s.avg_speed_m_s),
            ("max_speed_m_s", s.max_speed_m_s),
            ("avg_power_w", s.avg_power_w),
            ("max_power_w", s.max_power_w),
            ("avg_cadence", s.avg_cadence),
            ("elevation_gain_m", s.elevation_gain_m),
            ("avg_met", s.avg_met),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
        let mut metadata: BTreeMap<String, String> = w.metadata.iter().cloned().collect();
        metadata.insert("HKWorkoutActivityType".into(), w.hk_activity_type.clone());
        self.workouts.push(WorkoutRecord {
            id: record_id(&[
                &data_source_id.to_string(),
                "workout",
                &w.start.to_string(),
                &w.end.to_string(),
            ]),
            data_source_id,
            workout_type: w.workout_type.as_str().to_string(),
            start: ts(w.start),
            end: ts(w.end),
            zone_offset: Some(w.zone_offset_min),
            duration_s: Some(w.duration_s),
            stats,
            metadata,
            laps: Vec::new(),
        });
        if self.workouts.len() >= RECORDS_PER_EVENT {
            self.send_workouts()?;
        }
        Ok(())
    }

    fn activity_summary(&mut self, a: &apple::ActivitySummary) -> Result<(), SinkError> {
        let data_source_id = self.summary_source()?;
        // The rings as Apple's daily totals. No offset comes with them, only the date: stamped
        // at that date's midnight with offset 0 they fall on their own local date. A zero ring
        // (watch not worn) is no total, or it would hide the iPhone's own samples.
        let midnight = a
            .date
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros();
        for (series, value) in [
            (RING_ENERGY, a.active_energy_kcal),
            (RING_EXERCISE, a.exercise_time_min),
        ] {
            let (Some(v), Some(st)) = (value, wearhouse_domain::series::by_id(series)) else {
                continue;
            };
            if v > 0.0 && v.is_finite() {
                self.push_row(
                    SUMMARY_SOURCE,
                    st,
                    SampleRow {
                        time: midnight,
                        end_time: midnight,
                        zone_offset_min: 0,
                        value: v,
                        is_daily_total: Some(true),
                    },
                )?;
            }
        }
        let values: BTreeMap<String, f64> = [
            ("active_energy_kcal", a.active_energy_kcal),
            ("active_energy_goal_kcal", a.active_energy_goal_kcal),
            ("move_time_min", a.move_time_min),
            ("move_time_goal_min", a.move_time_goal_min),
            ("exercise_time_min", a.exercise_time_min),
            ("exercise_time_goal_min", a.exercise_time_goal_min),
            ("stand_hours", a.stand_hours),
            ("stand_hours_goal", a.stand_hours_goal),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
        self.summaries.push(ActivitySummaryRecord {
            data_source_id,
            date: a.date,
            values,
        });
        if self.summaries.len() >= RECORDS_PER_EVENT {
            self.send_summaries()?;
        }
        Ok(())
    }

    fn me(&mut self, me: &apple::Me) -> Result<(), SinkError> {
        let sex = me.sex.map(|s| match s {
            BiologicalSex::Female => "female",
            BiologicalSex::Male => "male",
            BiologicalSex::Other => "other",
        });
        let characteristics = Characteristics {
            birth_date: me.birth_date,
            sex: sex.map(String::from),
        };
        self.send(Out::Event(DataEvent::CharacteristicsRecorded {
            user_id: self.user_id,
            characteristics,
        }))
    }
}

fn counts_of(
    report: &apple::Report,
    (sleep_sessions, menstrual_cycles): (u64, u64),
) -> ImportCounts {
    let c = &report.counts;
    ImportCounts {
        records: c.records,
        sources: report.sources.len() as u64,
        samples: c.samples,
        sleep_intervals: c.sleep_intervals,
        sleep_sessions,
        menstrual_flows: c.menstrual_flows,
        menstrual_cycles,
        workouts: c.workouts,
        activity_summaries: c.activity_summaries,
        per_series: c
            .per_series
            .iter()
            .map(|(id, n)| {
                (
                    wearhouse_domain::series::by_id(*id)
                        .map(|s| s.code.to_string())
                        .unwrap_or(id.to_string()),
                    *n,
                )
            })
            .collect(),
        skipped: c
            .skipped
            .iter()
            .map(|(r, n)| (r.as_str().to_string(), *n))
            .collect(),
        unknown_types: c.unknown_types.clone(),
    }
}

async fn exec<A: cqrs_es::Aggregate<Services = ()>>(
    commands: &Commands,
    id: Uuid,
    cmd: A::Command,
    actor: &Actor,
    user: Uuid,
) -> Result<(), PipelineError>
where
    A::Error: Send + Sync + 'static,
{
    // Import status is read from its read model: wait for it, so a finished import never looks
    // unknown to a client polling it.
    let read_model = (A::TYPE == "Import").then_some("imports");
    commands
        .execute::<A>(&id.to_string(), cmd, actor, Some(user), read_model)
        .await
        .map_err(|e| PipelineError::Command(Box::new(e)))
}

/// Records that the bytes arrived: stores them raw and appends `RawPayloadReceived`.
pub async fn receive(
    pool: &Pool,
    commands: &Commands,
    req: &ImportRequest,
) -> Result<String, PipelineError> {
    let path = req.path.clone();
    let sha256 = match &req.sha256 {
        Some(s) => s.clone(),
        None => tokio::task::spawn_blocking(move || raw::sha256_file(&path))
            .await?
            .map_err(raw::RawError::Io)?,
    };
    let zip = std::fs::File::open(&req.path)
        .and_then(|mut f| {
            let mut magic = [0u8; 2];
            std::io::Read::read_exact(&mut f, &mut magic).map(|_| magic == *b"PK")
        })
        .unwrap_or(false);
    let meta = RawMeta {
        provider: PROVIDER,
        kind: "apple_health_export",
        content_type: if zip {
            "application/zip"
        } else {
            "application/xml"
        },
        user_id: Some(req.user_id),
    };
    let raw_ref = raw::store_file(pool, &req.path, &sha256, meta).await?;
    let at = Utc::now();
    let cmd = ImportCommand::Receive {
        id: req.import_id,
        user_id: req.user_id,
        filename: req.filename.clone(),
        raw: raw_ref,
        at,
    };
    exec::<Import>(commands, req.import_id, cmd, &req.actor, req.user_id).await?;
    Ok(sha256)
}

/// Runs a whole import: receive (unless already received), validate, parse and append, complete.
/// A file that does not parse fails the import before any data is appended.
pub async fn run(
    pool: &Pool,
    commands: &Commands,
    req: ImportRequest,
    progress: Arc<Progress>,
) -> Result<Outcome, PipelineError> {
    let (id, user, actor) = (req.import_id, req.user_id, req.actor.clone());
    progress.total_bytes.store(
        std::fs::metadata(&req.path).map(|m| m.len()).unwrap_or(0),
        Ordering::Relaxed,
    );
    let started = std::time::Instant::now();
    // The check that the file parses reads the spooled upload alongside the raw copy being
    // stored (two cores, two passes over the page cache); nothing derived is appended before
    // the raw payload is.
    // A re-run (the job resumed after a crash) skips the steps the log shows were done.
    let reached = Reached::of(pool, id).await?;
    if reached.import_ended {
        if !reached.run_ended {
            let row = pool
                .get()
                .await?
                .query_one(
                    "SELECT event_type, coalesce((payload->'ImportCompleted'->'counts'->>'samples')::bigint, 0) \
                       FROM events WHERE aggregate_type = 'Import' AND aggregate_id = $1 \
                        AND event_type IN ('ImportCompleted', 'ImportFailed') LIMIT 1",
                    &[&id.to_string()],
                )
                .await?;
            let (status, samples): (String, i64) = (row.get(0), row.get(1));
            let cmd = if status == "ImportCompleted" {
                SyncRunCommand::Complete {
                    processed: samples.max(0) as u64,
                    at: Utc::now(),
                }
            } else {
                SyncRunCommand::Fail {
                    error: "import failed".into(),
                    at: Utc::now(),
                }
            };
            exec::<SyncRun>(commands, id, cmd, &actor, user).await?;
        }
        return Ok(Outcome::AlreadyEnded);
    }
    let check = check_parses(&req.path, req.limits);
    let sha256 = if reached.received {
        let path = req.path.clone();
        match &req.sha256 {
            Some(s) => s.clone(),
            None => tokio::task::spawn_blocking(move || raw::sha256_file(&path))
                .await?
                .map_err(raw::RawError::Io)?,
        }
    } else {
        receive(pool, commands, &req).await?
    };
    tracing::info!(import = %id, seconds = started.elapsed().as_secs_f64(), "raw payload stored");
    if !reached.run_started {
        let sync = SyncRunCommand::Start {
            id,
            user_id: user,
            provider: PROVIDER.into(),
            source: "xml_import".into(),
            primary_user_id: None,
            at: Utc::now(),
        };
        exec::<SyncRun>(commands, id, sync, &actor, user).await?;
    }
    if !reached.started {
        exec::<Import>(
            commands,
            id,
            ImportCommand::Start { at: Utc::now() },
            &actor,
            user,
        )
        .await?;
    }

    let previous = pool
        .get()
        .await?
        .query_opt(
            "SELECT id FROM imports WHERE user_id = $1 AND sha256 = $2 AND status = 'completed' AND id <> $3 ORDER BY created_at LIMIT 1",
            &[&user, &sha256, &id],
        )
        .await?
        .map(|r| r.get::<_, Uuid>(0));
    let parsing = std::time::Instant::now();
    let result = match previous {
        Some(dup) => Ok((ImportCounts::default(), Some(dup))),
        None => normalize_checked(pool, &req, progress, check)
            .await
            .map(|c| (c, None)),
    };
    match result {
        Ok((counts, duplicate_of)) => {
            tracing::info!(import = %id, seconds = parsing.elapsed().as_secs_f64(), samples = counts.samples, "parsed and appended");
            let processed = counts.samples;
            let done = ImportCommand::Complete {
                counts: counts.clone(),
                duplicate_of,
                at: Utc::now(),
            };
            exec::<Import>(commands, id, done, &actor, user).await?;
            exec::<SyncRun>(
                commands,
                id,
                SyncRunCommand::Complete {
                    processed,
                    at: Utc::now(),
                },
                &actor,
                user,
            )
            .await?;
            Ok(Outcome::Completed {
                counts,
                duplicate_of,
            })
        }
        Err(PipelineError::Parse(e)) => {
            let error = e.to_string();
            let failed = ImportCommand::Fail {
                error: error.clone(),
                position: e.position(),
                at: Utc::now(),
            };
            exec::<Import>(commands, id, failed, &actor, user).await?;
            exec::<SyncRun>(
                commands,
                id,
                SyncRunCommand::Fail {
                    error: error.clone(),
                    at: Utc::now(),
                },
                &actor,
                user,
            )
            .await?;
            Ok(Outcome::Failed { error })
        }
        Err(other) => {
            let error = other.to_string();
            let _ = exec::<Import>(
                commands,
                id,
                ImportCommand::Fail {
                    error: error.clone(),
                    position: None,
                    at: Utc::now(),
                },
                &actor,
                user,
            )
            .await;
            let _ = exec::<SyncRun>(
                commands,
                id,
                SyncRunCommand::Fail {
                    error,
                    at: Utc::now(),
                },
                &actor,
                user,
            )
            .await;
            Err(other)
        }
    }
}

/// Runs the current Apple mapper over the export at `req.path` and appends the data events
/// (with their sample batches) to the stream `req.import_id`. Serves both the import and
/// `wearhouse renormalize`; the read models' dedup keys make a second run over the same
/// bytes change nothing.
pub async fn normalize(
    pool: &Pool,
    req: &ImportRequest,
    progress: Arc<Progress>,
) -> Result<ImportCounts, PipelineError> {
    let check = check_parses(&req.path, req.limits);
    normalize_checked(pool, req, progress, check).await
}

type Check = tokio::task::JoinHandle<Result<(), apple::ImportError>>;

/// First pass: the whole file must parse, so a malformed export appends nothing. It appends
/// nothing itself, so it may run while the raw bytes are still being stored.
fn check_parses(path: &std::path::Path, limits: apple::Limits) -> Check {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let input = apple::open_export_limited(&path, Default::default(), &limits)?;
        apple::parse_with(input, &mut NullSink, &limits).map(|_| ())
    })
}

/// [`normalize`] once `check` (the first pass) has passed.
async fn normalize_checked(
    pool: &Pool,
    req: &ImportRequest,
    progress: Arc<Progress>,
    check: Check,
) -> Result<ImportCounts, PipelineError> {
    check.await??;
    // The raw bytes are stored and the file parses; nothing derived is appended yet.
    crate::crashpoint::hit("import.parse");

    let (tx, rx) = mpsc::channel(16);
    // A spawned task does not inherit task-locals: the writer takes the origin along.
    let write = tokio::spawn(wearhouse_log::origin::scope(
        wearhouse_log::origin::current().unwrap_or_default(),
        writer(
            pool.clone(),
            req.import_id,
            req.user_id,
            req.actor.clone(),
            rx,
        ),
    ));
    let path = req.path.clone();
    let user_id = req.user_id;
    let limits = req.limits;
    let parse = tokio::task::spawn_blocking(move || {
        let mut sink = BatchSink {
            user_id,
            sources: Vec::new(),
            canonical: Vec::new(),
            canonical_of: HashMap::new(),
            buffers: HashMap::new(),
            buffered: 0,
            sleep: HashMap::new(),
            sessions: Vec::new(),
            session_count: 0,
            flows: HashMap::new(),
            summary: None,
            workouts: Vec::new(),
            summaries: Vec::new(),
            out: tx,
            progress: progress.clone(),
        };
        let input = apple::open_export_limited(&path, progress.bytes_read.clone(), &limits)?;
        let report = apple::parse_with(input, &mut sink, &limits)?;
        let sessions = sink.finish().map_err(|source| apple::ImportError::Sink {
            position: report.bytes,
            source,
        })?;
        progress
            .records
            .store(report.counts.elements(), Ordering::Relaxed);
        Ok::<_, apple::ImportError>((report, sessions))
    });
    let parsed = parse.await?;
    // The writer's error explains a sink failure better than the parser's "writer stopped".
    let written = write.await?;
    written?;
    let (report, sessions) = parsed?;
    Ok(counts_of(&report, sessions))
}
