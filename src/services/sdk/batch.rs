//! Mapping and writing several SDK sync jobs at once. The stored bytes of every job are read
//! with one query and mapped on a blocking thread; then one transaction, holding each user's
//! lock, skips the runs already finished, assembles sleep with the user's sessions near the
//! new stages, ensures the users' SDK connections and appends everything: the runs' start and
//! end, the data streams (sample batches by binary COPY, events in one statement).
//! A crash before the commit leaves nothing of the batch; after it, the jobs find their runs
//! finished and stop.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Transaction;
use tracing::info;
use uuid::Uuid;
use wearhouse_domain::connection::{connection_id, ConnectionEvent};
use wearhouse_domain::records::{DataEvent, RecordKind, SleepSessionRecord};
use wearhouse_domain::sync_run::{Metadata, Outcome, SyncRunEvent};
use wearhouse_log::origin::Origin;
use wearhouse_log::writer::{self, Out, StreamItems};
use wearhouse_log::{append, to_payload, NewEvent};

use super::{Sdk, SdkError, SyncJob, SyncResult, SOURCE};
use crate::ingest::raw::RawError;
use crate::ingest::sdk::{self, envelope};
use crate::ingest::sleep_sessions::{Interval, SESSION_GAP_US};

/// One claimed job, as the batch sees it.
pub(super) struct Work {
    /// Its place among the claimed jobs (outcomes are returned by it).
    pub index: usize,
    pub job: SyncJob,
    pub origin: Option<Origin>,
    /// A retryable failure now fails the job: its run is recorded as failed.
    pub last_attempt: bool,
}

/// A job's batch mapped, ready to write (sleep still to assemble).
struct Mapped {
    out: Vec<Out>,
    sleep: BTreeMap<Uuid, Vec<Interval>>,
    result: SyncResult,
}

/// The lock of one user's SDK writes: its sleep assembly reads what the previous write of
/// the user's sessions left, and its connection stream is appended to without a conflict.
fn user_lock(user: Uuid) -> i64 {
    let b = user.as_bytes();
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) ^ 0x5d4b_1a6e_0c3f_7281
}

fn us_time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Decompresses and maps one job's stored batch (CPU only).
fn map_one(job: &SyncJob, chunks: Option<&Vec<Vec<u8>>>) -> Result<Mapped, SdkError> {
    let chunks = chunks
        .filter(|c| c.len() == job.raw.chunks as usize)
        .ok_or_else(|| SdkError::Raw(RawError::NotFound(job.raw.sha256.clone())))?;
    let mut bytes = Vec::with_capacity(job.raw.size.max(0) as usize);
    for c in chunks {
        bytes.extend(zstd::stream::decode_all(&c[..]).map_err(|e| SdkError::Raw(e.into()))?);
    }
    let env = envelope::parse(&bytes)?;
    let mut batch = sdk::map_batch(job.user_id, &env, Utc::now());
    drop(env);
    let result = SyncResult {
        records_saved: batch.records_saved,
        workouts_saved: batch.workouts_saved,
        sleep_saved: batch.sleep_saved,
        sleep_sessions: 0,
        dropped_count: batch.dropped.count,
        dropped: std::mem::take(&mut batch.dropped.reasons),
    };
    let mut out = vec![Out::Event(DataEvent::RawPayloadReceived {
        user_id: job.user_id,
        raw: job.raw.clone(),
        mapping_version: sdk::MAPPING_VERSION,
        received_at: Some(job.received_at),
    })];
    out.extend(
        batch
            .mapped
            .into_out(job.user_id)
            .map_err(SdkError::Arrow)?,
    );
    Ok(Mapped {
        out,
        sleep: batch.sleep,
        result,
    })
}

/// The metadata the command framework gives an aggregate's entries, for the runs' and
/// connections' entries appended here.
fn command_metadata(w: &Work) -> Value {
    let actor = w.job.caller.actor();
    let mut m = serde_json::Map::new();
    m.insert(
        "actor".into(),
        format!("{}:{}", actor.kind, actor.id).into(),
    );
    if let Some(r) = &actor.request_id {
        m.insert("request_id".into(), r.clone().into());
    }
    m.insert("user_id".into(), w.job.user_id.to_string().into());
    if let Some(o) = &w.origin {
        wearhouse_log::origin::annotate_with(&mut m, o);
    }
    Value::Object(m)
}

fn aggregate_event<E: cqrs_es::DomainEvent>(
    aggregate_type: &str,
    aggregate_id: String,
    sequence: i64,
    event: &E,
    metadata: &Value,
    user_id: Uuid,
) -> NewEvent {
    NewEvent {
        aggregate_type: aggregate_type.into(),
        aggregate_id,
        sequence,
        event_type: event.event_type(),
        event_version: event.event_version(),
        payload: to_payload(event),
        metadata: metadata.clone(),
        user_id: Some(user_id),
    }
}

/// Per run: its last sequence on the `SyncRun` stream, on its data stream, and whether it
/// finished.
#[derive(Default, Clone, Copy)]
struct RunState {
    run_seq: i64,
    data_seq: i64,
    finished: bool,
}

async fn run_states(
    tx: &Transaction<'_>,
    runs: &[String],
) -> Result<HashMap<String, RunState>, SdkError> {
    let rows = tx
        .query(
            "SELECT aggregate_type, aggregate_id, max(sequence), \
                    bool_or(event_type IN ('SyncRunCompleted', 'SyncRunFailed', 'SyncRunCancelled')) \
               FROM events WHERE aggregate_type IN ('SyncRun', $2) AND aggregate_id = ANY($1) \
              GROUP BY 1, 2",
            &[&runs, &DataEvent::AGGREGATE_TYPE],
        )
        .await?;
    let mut out: HashMap<String, RunState> = HashMap::new();
    for r in rows {
        let (kind, id, seq, finished): (String, String, i64, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let s = out.entry(id).or_default();
        if kind == "SyncRun" {
            s.run_seq = seq;
            s.finished = finished;
        } else {
            s.data_seq = seq;
        }
    }
    Ok(out)
}

/// Per connection stream: its last sequence and whether it is active (its last event that
/// changes the status, as the `Connection` aggregate applies them, made it active).
async fn connection_states(
    tx: &Transaction<'_>,
    streams: &[String],
) -> Result<HashMap<String, (i64, bool)>, SdkError> {
    let rows = tx
        .query(
            "SELECT aggregate_id, max(sequence), \
                    (array_agg(event_type ORDER BY sequence DESC) FILTER (WHERE event_type IN \
                       ('ConnectionAuthorized', 'SdkConnected', 'ConnectionRevoked')))[1] \
               FROM events WHERE aggregate_type = 'Connection' AND aggregate_id = ANY($1) GROUP BY 1",
            &[&streams],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let last: Option<String> = r.get(2);
            (
                r.get(0),
                (
                    r.get(1),
                    matches!(
                        last.as_deref(),
                        Some("ConnectionAuthorized" | "SdkConnected")
                    ),
                ),
            )
        })
        .collect())
}

/// The recorded SDK sleep sessions that may join the new stages: per (user, source) window
/// (the stages' span widened by the 120-minute rule), the sessions starting in it and the one
/// that starts last before it when it reaches into it (a source's sessions never overlap).
async fn sessions_near(
    tx: &Transaction<'_>,
    windows: &[(Uuid, Uuid, DateTime<Utc>, DateTime<Utc>)],
) -> Result<Vec<(Uuid, SleepSessionRecord)>, SdkError> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<Uuid> = windows.iter().map(|w| w.0).collect();
    let sources: Vec<Uuid> = windows.iter().map(|w| w.1).collect();
    let los: Vec<DateTime<Utc>> = windows.iter().map(|w| w.2).collect();
    let his: Vec<DateTime<Utc>> = windows.iter().map(|w| w.3).collect();
    let rows = tx
        .query(
            "SELECT DISTINCT ON (s.id) s.user_id, s.session \
               FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[]) AS w(u, ds, lo, hi) \
              CROSS JOIN LATERAL ( \
                    (SELECT id, user_id, session FROM sdk_sleep_sessions \
                      WHERE user_id = w.u AND data_source_id = w.ds AND start_time >= w.lo AND start_time <= w.hi) \
                    UNION ALL \
                    (SELECT id, user_id, session FROM ( \
                        SELECT id, user_id, session, end_time FROM sdk_sleep_sessions \
                         WHERE user_id = w.u AND data_source_id = w.ds AND start_time < w.lo \
                         ORDER BY start_time DESC LIMIT 1) p WHERE p.end_time >= w.lo) \
                   ) s",
            &[&users, &sources, &los, &his],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let session: Value = r.get(1);
            Ok((
                r.get(0),
                serde_json::from_value(session).map_err(SdkError::Decode)?,
            ))
        })
        .collect()
}

/// What a batch changes in `sdk_sleep_sessions`: `None` removes the session.
async fn save_sessions(
    tx: &Transaction<'_>,
    changes: HashMap<Uuid, (Uuid, Option<SleepSessionRecord>)>,
) -> Result<(), SdkError> {
    let mut gone = Vec::new();
    let (mut ids, mut users, mut sources, mut starts, mut ends, mut docs) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (id, (user, session)) in changes {
        match session {
            None => gone.push(id),
            Some(s) => {
                ids.push(id);
                users.push(user);
                sources.push(s.data_source_id);
                starts.push(s.start);
                ends.push(s.end);
                docs.push(serde_json::to_value(&s).map_err(SdkError::Decode)?);
            }
        }
    }
    if !gone.is_empty() {
        tx.execute(
            "DELETE FROM sdk_sleep_sessions WHERE id = ANY($1)",
            &[&gone],
        )
        .await?;
    }
    if !ids.is_empty() {
        tx.execute(
            "INSERT INTO sdk_sleep_sessions (id, user_id, data_source_id, start_time, end_time, session) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::jsonb[]) \
             ON CONFLICT (id) DO UPDATE SET start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time, \
               session = EXCLUDED.session",
            &[&ids, &users, &sources, &starts, &ends, &docs],
        )
        .await?;
    }
    Ok(())
}

type Outcomes = Vec<(usize, Result<Option<SyncResult>, SdkError>)>;

impl Sdk {
    /// Maps and writes the claimed jobs; returns each job's outcome by its index. A job whose
    /// run already finished is skipped (`Ok(None)`).
    pub(super) async fn process_batch(&self, work: Vec<Work>) -> Outcomes {
        match self.try_batch(&work).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let e = Arc::new(e);
                // On the last attempt of a job its run is recorded as failed (best effort).
                let last: Vec<&Work> = work.iter().filter(|w| w.last_attempt).collect();
                if !last.is_empty() {
                    let _ = self.fail_runs(&last, &e.to_string()).await;
                }
                work.iter()
                    .map(|w| (w.index, Err(SdkError::Batch(e.clone()))))
                    .collect()
            }
        }
    }

    async fn load_raw(&self, work: &[Work]) -> Result<HashMap<String, Vec<Vec<u8>>>, SdkError> {
        let shas: Vec<&str> = work
            .iter()
            .map(|w| w.job.raw.sha256.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT sha256, data FROM raw_payload_chunks WHERE sha256 = ANY($1) ORDER BY sha256, chunk",
                &[&shas],
            )
            .await?;
        let mut out: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for r in rows {
            out.entry(r.get(0)).or_default().push(r.get(1));
        }
        Ok(out)
    }

    async fn try_batch(&self, work: &[Work]) -> Result<Outcomes, SdkError> {
        let raws = self.load_raw(work).await?;
        let jobs: Vec<SyncJob> = work.iter().map(|w| w.job.clone()).collect();
        // Decompressing, parsing, mapping and encoding: CPU work, off the request threads.
        let mapped: Vec<Result<Mapped, SdkError>> = tokio::task::spawn_blocking(move || {
            jobs.iter()
                .map(|j| map_one(j, raws.get(&j.raw.sha256)))
                .collect()
        })
        .await?;

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut locks: Vec<i64> = work.iter().map(|w| user_lock(w.job.user_id)).collect();
        locks.sort_unstable();
        locks.dedup();
        // In one order everywhere, so two batches sharing users never wait on each other.
        tx.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
            &[&locks],
        )
        .await?;
        let runs: Vec<String> = work.iter().map(|w| w.job.run_id.to_string()).collect();
        let states = run_states(&tx, &runs).await?;

        let mut outcomes: Outcomes = Vec::with_capacity(work.len());
        // The jobs to write, with what they mapped to (a permanent failure is written as
        // the run's failure).
        let mut todo: Vec<(&Work, RunState, Result<Mapped, SdkError>)> = Vec::new();
        for (w, m) in work.iter().zip(mapped) {
            let state = states
                .get(&w.job.run_id.to_string())
                .copied()
                .unwrap_or_default();
            if state.finished {
                outcomes.push((w.index, Ok(None)));
                continue;
            }
            match m {
                Err(e) if !e.is_permanent() => outcomes.push((w.index, Err(e))),
                m => todo.push((w, state, m)),
            }
        }

        // Sleep: the sessions near each job's new stages, then each job's stages in turn.
        let mut windows = Vec::new();
        for (w, _, m) in &todo {
            if let Ok(m) = m {
                for (ds, intervals) in &m.sleep {
                    let lo = intervals.iter().map(|i| i.start).min().unwrap_or_default();
                    let hi = intervals.iter().map(|i| i.end).max().unwrap_or_default();
                    windows.push((
                        w.job.user_id,
                        *ds,
                        us_time(lo - SESSION_GAP_US),
                        us_time(hi + SESSION_GAP_US),
                    ));
                }
            }
        }
        let mut known: HashMap<Uuid, HashMap<Uuid, SleepSessionRecord>> = HashMap::new();
        for (user, s) in sessions_near(&tx, &windows).await? {
            known.entry(user).or_default().insert(s.id, s);
        }
        let mut changes: HashMap<Uuid, (Uuid, Option<SleepSessionRecord>)> = HashMap::new();

        let mut connections: BTreeMap<String, (&Work, DateTime<Utc>)> = BTreeMap::new();
        let mut streams = Vec::new();
        let mut finished: Vec<(&Work, RunState, Result<SyncResult, SdkError>)> = Vec::new();
        for (w, state, m) in todo {
            let job = &w.job;
            let mut m = match m {
                Ok(m) => m,
                Err(e) => {
                    finished.push((w, state, Err(e)));
                    continue;
                }
            };
            let mine = known.entry(job.user_id).or_default();
            let mut sessions = Vec::new();
            let mut replaced = Vec::new();
            for (ds, intervals) in std::mem::take(&mut m.sleep) {
                let prior: Vec<SleepSessionRecord> = mine
                    .values()
                    .filter(|s| s.data_source_id == ds)
                    .cloned()
                    .collect();
                let assembled = sdk::sleep::assemble(ds, &prior, &intervals);
                for id in &assembled.replaced {
                    mine.remove(id);
                    changes.insert(*id, (job.user_id, None));
                }
                for s in &assembled.sessions {
                    mine.insert(s.id, s.clone());
                    changes.insert(s.id, (job.user_id, Some(s.clone())));
                }
                sessions.extend(assembled.sessions);
                replaced.extend(assembled.replaced);
            }
            m.result.sleep_sessions = sessions.len() as u64;
            if !sessions.is_empty() {
                m.out.push(Out::Event(DataEvent::SleepSessionsRecorded {
                    user_id: job.user_id,
                    sessions,
                }));
            }
            m.out.extend(replaced.into_iter().map(|record_id| {
                Out::Event(DataEvent::RecordDeleted {
                    user_id: job.user_id,
                    kind: RecordKind::Sleep,
                    record_id,
                })
            }));
            let mut metadata =
                writer::stream_metadata(&job.caller.actor(), job.user_id, job.run_id);
            if let (Some(o), Some(map)) = (&w.origin, metadata.as_object_mut()) {
                wearhouse_log::origin::annotate_with(map, o);
            }
            streams.push(StreamItems {
                stream_id: job.run_id,
                user_id: job.user_id,
                metadata,
                after_sequence: state.data_seq,
                items: m.out,
            });
            connections.insert(
                connection_id(job.user_id, job.platform.name()),
                (w, job.received_at),
            );
            finished.push((w, state, Ok(m.result)));
        }

        let (data_events, _samples) = writer::stage_streams(&tx, streams)
            .await
            .map_err(SdkError::Write)?;
        let mut events: Vec<NewEvent> = Vec::new();
        // In the order the streams were staged: one per job mapped.
        let mut next_stream = data_events.into_iter();
        let now = Utc::now();
        for (w, state, result) in &finished {
            let job = &w.job;
            let meta = command_metadata(w);
            let run = job.run_id.to_string();
            let mut seq = state.run_seq;
            if seq == 0 {
                seq += 1;
                events.push(aggregate_event(
                    "SyncRun",
                    run.clone(),
                    seq,
                    &SyncRunEvent::SyncRunStarted {
                        id: job.run_id,
                        user_id: job.user_id,
                        provider: job.platform.name().into(),
                        source: SOURCE.into(),
                        primary_user_id: None,
                        at: now,
                    },
                    &meta,
                    job.user_id,
                ));
            }
            let end = match result {
                Ok(r) => {
                    if let Some(mut stream) = next_stream.next() {
                        events.append(&mut stream);
                    }
                    let mut metadata = Metadata::new();
                    if let Value::Object(m) = serde_json::to_value(r).unwrap_or_default() {
                        metadata.extend(m);
                    }
                    let (outcome, error) = if r.dropped_count > 0 {
                        (
                            Outcome::Partial,
                            Some(format!("{} invalid records dropped", r.dropped_count)),
                        )
                    } else {
                        (Outcome::Success, None)
                    };
                    SyncRunEvent::SyncRunCompleted {
                        processed: r.records_saved + r.workouts_saved + r.sleep_saved,
                        at: now,
                        outcome: Some(outcome),
                        error,
                        metadata,
                    }
                }
                Err(e) => SyncRunEvent::SyncRunFailed {
                    error: e.to_string(),
                    at: now,
                },
            };
            events.push(aggregate_event(
                "SyncRun",
                run,
                seq + 1,
                &end,
                &meta,
                job.user_id,
            ));
        }

        // The users' SDK connections: created on their first upload (or after a
        // revocation), marked synced on every batch.
        let streams: Vec<String> = connections.keys().cloned().collect();
        let current = connection_states(&tx, &streams).await?;
        for (sid, (w, at)) in &connections {
            let (mut seq, active) = current.get(sid).copied().unwrap_or((0, false));
            let meta = command_metadata(w);
            let event = if active {
                ConnectionEvent::ConnectionSynced { at: now }
            } else {
                ConnectionEvent::SdkConnected {
                    user_id: w.job.user_id,
                    provider: w.job.platform.name().into(),
                    at: *at,
                }
            };
            seq += 1;
            events.push(aggregate_event(
                "Connection",
                sid.clone(),
                seq,
                &event,
                &meta,
                w.job.user_id,
            ));
        }

        append(&tx, &events)
            .await
            .map_err(|e| SdkError::Write(e.into()))?;
        save_sessions(&tx, changes).await?;
        tx.commit().await?;
        // Megabyte statements grew this connection's buffers; close it rather than pool it.
        drop(deadpool_postgres::Object::take(client));

        let mut records = 0;
        for (w, _, result) in finished {
            if let Ok(r) = &result {
                records += r.records_saved + r.workouts_saved + r.sleep_saved;
            }
            outcomes.push((w.index, result.map(Some)));
        }
        info!(jobs = work.len(), records, "SDK syncs mapped");
        Ok(outcomes)
    }

    /// Records the runs of jobs out of attempts as failed, in one transaction.
    async fn fail_runs(&self, work: &[&Work], error: &str) -> Result<(), SdkError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let runs: Vec<String> = work.iter().map(|w| w.job.run_id.to_string()).collect();
        let states = run_states(&tx, &runs).await?;
        let now = Utc::now();
        let mut events = Vec::new();
        for w in work {
            let state = states
                .get(&w.job.run_id.to_string())
                .copied()
                .unwrap_or_default();
            if state.finished {
                continue;
            }
            let meta = command_metadata(w);
            let mut seq = state.run_seq;
            if seq == 0 {
                seq += 1;
                events.push(aggregate_event(
                    "SyncRun",
                    w.job.run_id.to_string(),
                    seq,
                    &SyncRunEvent::SyncRunStarted {
                        id: w.job.run_id,
                        user_id: w.job.user_id,
                        provider: w.job.platform.name().into(),
                        source: SOURCE.into(),
                        primary_user_id: None,
                        at: now,
                    },
                    &meta,
                    w.job.user_id,
                ));
            }
            events.push(aggregate_event(
                "SyncRun",
                w.job.run_id.to_string(),
                seq + 1,
                &SyncRunEvent::SyncRunFailed {
                    error: error.into(),
                    at: now,
                },
                &meta,
                w.job.user_id,
            ));
        }
        append(&tx, &events)
            .await
            .map_err(|e| SdkError::Write(e.into()))?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_locks_differ_per_user() {
        let a = Uuid::new_v4();
        assert_eq!(user_lock(a), user_lock(a));
        assert_ne!(user_lock(a), user_lock(Uuid::new_v4()));
    }
}
