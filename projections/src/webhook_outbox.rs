//! The outgoing-webhook outbox: a projection of the log into `webhook_messages` (one per
//! event of the contract, §8) and `webhook_deliveries` (one per message and matching
//! endpoint). Written in the runner's transaction with its checkpoint, so a change committed
//! to the log is delivered and an uncommitted one never is, and a replay adds nothing (a
//! message's id comes from its idempotency key).
//!
//! An endpoint receives what the log commits after the endpoint was created; matching is
//! done here, before payloads are built, so nothing is built for nobody.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::{json, Value};
use uuid::Uuid;
use wearhouse_domain::connection::ConnectionEvent;
use wearhouse_domain::records::{record_id, DataEvent, SleepSessionRecord, WorkoutRecord};
use wearhouse_domain::series;
use wearhouse_domain::sleep::SleepStage;
use wearhouse_domain::sleep_merge::{self, Session, StageSpan};
use wearhouse_domain::sync_run::SyncRunEvent;
use wearhouse_domain::webhook_events::{self, idempotency_key};
use wearhouse_log::arrow_batch;

use crate::{decode, LogEntry, Projection, ProjectionError};

/// Samples per timeseries message; a larger batch is split into chunks, as upstream.
pub const CHUNK: usize = 2500;
/// Messages of one log entry are ordered after it: `position * STRIDE + index`.
const STRIDE: i64 = 1_000_000;

pub struct WebhookOutbox;

/// A message's id, derived from its idempotency key so a replay finds the same one.
pub fn message_id(event_id: &str) -> String {
    let ns = Uuid::from_u128(0x7765_6268_6f6f_6b73_6d73_6700_0000_0001);
    format!("msg_{}", Uuid::new_v5(&ns, event_id.as_bytes()).simple())
}

struct Endpoint {
    id: Uuid,
    user_id: Option<Uuid>,
    filter: Option<Vec<String>>,
    created_position: i64,
}

impl Endpoint {
    fn wants(&self, event_type: &str, user: Option<Uuid>, position: i64) -> bool {
        self.created_position < position
            && self.user_id.is_none_or(|u| Some(u) == user)
            && self
                .filter
                .as_ref()
                .is_none_or(|f| f.iter().any(|t| t == event_type))
    }
}

/// What one log entry sends.
struct Out {
    event_id: String,
    event_type: String,
    user_id: Option<Uuid>,
    data: Value,
}

struct Ctx<'a> {
    tx: &'a Transaction<'a>,
    endpoints: Vec<Endpoint>,
    sources: HashMap<Uuid, (String, Option<String>)>,
}

impl Ctx<'_> {
    fn any_wants(&self, event_type: &str, user: Option<Uuid>, position: i64) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.wants(event_type, user, position))
    }

    /// Loads the data sources of a batch in one query (a batch spread over many users would
    /// otherwise cost a query per source).
    async fn prefetch_sources(&mut self, mut ids: Vec<Uuid>) -> Result<(), ProjectionError> {
        ids.retain(|id| !self.sources.contains_key(id));
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        for r in self
            .tx
            .query(
                "SELECT id, provider, device_model FROM data_sources WHERE id = ANY($1)",
                &[&ids],
            )
            .await?
        {
            self.sources.insert(r.get(0), (r.get(1), r.get(2)));
        }
        Ok(())
    }

    async fn source(&mut self, id: Uuid) -> Result<Value, ProjectionError> {
        if !self.sources.contains_key(&id) {
            let row = self
                .tx
                .query_opt(
                    "SELECT provider, device_model FROM data_sources WHERE id = $1",
                    &[&id],
                )
                .await?;
            let v = row
                .map(|r| (r.get(0), r.get(1)))
                .unwrap_or(("unknown".to_string(), None));
            self.sources.insert(id, v);
        }
        let (provider, device) = &self.sources[&id];
        Ok(json!({"provider": provider, "device": device}))
    }
}

fn offset(minutes: Option<i16>) -> Value {
    match minutes {
        Some(m) => {
            let sign = if m < 0 { '-' } else { '+' };
            let a = m.unsigned_abs();
            json!(format!("{sign}{:02}:{:02}", a / 60, a % 60))
        }
        None => Value::Null,
    }
}

fn int(v: f64) -> i64 {
    v.round() as i64
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

#[async_trait]
impl Projection for WebhookOutbox {
    fn name(&self) -> &'static str {
        "webhook_outbox"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &[
            "WorkoutsRecorded",
            "SleepSessionsRecorded",
            "MenstrualCyclesRecorded",
            "SamplesRecorded",
            "ConnectionAuthorized",
            "ConnectionRevoked",
            "SyncRunStarted",
            "SyncRunCompleted",
            "SyncRunFailed",
        ]
    }

    fn large_rows(&self) -> bool {
        true
    }

    /// Most entries are small (a workout, a sync event); the runner's byte cap bounds the rest.
    fn batch_size(&self) -> i64 {
        500
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[
            "webhook_endpoints",
            "data_sources",
            "connections",
            "sync_runs",
        ]
    }

    /// Messages are history already sent: a rebuild re-derives the same ids and adds nothing.
    async fn reset(&self, _tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        Ok(())
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        entries: &[LogEntry],
    ) -> Result<(), ProjectionError> {
        let endpoints: Vec<Endpoint> = tx
            .query(
                "SELECT id, user_id, filter_types, created_position FROM webhook_endpoints",
                &[],
            )
            .await?
            .iter()
            .map(|r| Endpoint {
                id: r.get(0),
                user_id: r.get(1),
                filter: r.get(2),
                created_position: r.get(3),
            })
            .collect();
        if endpoints.is_empty() {
            return Ok(());
        }
        let mut ctx = Ctx {
            tx,
            endpoints,
            sources: HashMap::new(),
        };
        // Data events are decoded once, and their sources loaded together.
        let mut data = Vec::with_capacity(entries.len());
        let mut sources = Vec::new();
        for entry in entries {
            let event = match entry.aggregate_type.as_str() {
                "Connection" | "SyncRun" => None,
                _ => Some(decode::<DataEvent>(entry)?),
            };
            match &event {
                Some(DataEvent::WorkoutsRecorded { user_id, workouts })
                    if ctx.any_wants("workout.created", Some(*user_id), entry.position()) =>
                {
                    sources.extend(workouts.iter().map(|w| w.data_source_id))
                }
                Some(DataEvent::SleepSessionsRecorded { user_id, sessions })
                    if ctx.any_wants("sleep.created", Some(*user_id), entry.position()) =>
                {
                    sources.extend(sessions.iter().map(|s| s.data_source_id))
                }
                Some(DataEvent::MenstrualCyclesRecorded { cycles, .. }) => {
                    sources.extend(cycles.iter().map(|c| c.data_source_id))
                }
                Some(DataEvent::SamplesRecorded { batch, .. }) => {
                    sources.push(batch.data_source_id)
                }
                _ => {}
            }
            data.push(event);
        }
        ctx.prefetch_sources(sources).await?;
        let mut messages = Vec::new();
        for (entry, event) in entries.iter().zip(data) {
            let outs = messages_of(&mut ctx, entry, event).await?;
            for (i, out) in outs.into_iter().enumerate() {
                messages.push((entry, i as i64, out));
            }
        }
        if messages.is_empty() {
            return Ok(());
        }
        let (
            mut ids,
            mut event_ids,
            mut types,
            mut users,
            mut channels,
            mut payloads,
            mut ats,
            mut orders,
        ) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        for (entry, i, out) in &messages {
            ids.push(message_id(&out.event_id));
            event_ids.push(out.event_id.clone());
            types.push(out.event_type.clone());
            users.push(out.user_id);
            channels.push(out.user_id.map(|u| format!("user.{u}")).unwrap_or_default());
            payloads.push(json!({
                "type": out.event_type,
                "timestamp": entry.recorded_at,
                "data": out.data,
            }));
            ats.push(entry.recorded_at);
            orders.push(entry.position() * STRIDE + i);
        }
        let inserted: std::collections::HashSet<String> = tx
            .query(
                "INSERT INTO webhook_messages (id, event_id, event_type, user_id, channels, payload, created_at, position) \
                 SELECT id, event_id, event_type, user_id, CASE WHEN ch = '' THEN '{}'::text[] ELSE ARRAY[ch] END, payload, at, ord \
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::int8[]) \
                     AS m(id, event_id, event_type, user_id, ch, payload, at, ord) \
                 ON CONFLICT DO NOTHING RETURNING id",
                &[&ids, &event_ids, &types, &users, &channels, &payloads, &ats, &orders],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Deliveries in log order: their sequence is the order each lane is delivered in.
        let (mut d_msg, mut d_ep, mut d_lane, mut d_at) = (vec![], vec![], vec![], vec![]);
        for (k, (entry, _, out)) in messages.iter().enumerate() {
            if !inserted.contains(&ids[k]) {
                continue;
            }
            for ep in &ctx.endpoints {
                if ep.wants(&out.event_type, out.user_id, entry.position()) {
                    d_msg.push(ids[k].clone());
                    d_ep.push(ep.id);
                    d_lane.push(out.user_id.map(|u| u.to_string()).unwrap_or_default());
                    d_at.push(entry.recorded_at);
                }
            }
        }
        tx.execute(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, lane, next_at, committed_at) \
             SELECT m, e, l, now(), a FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[]) \
               WITH ORDINALITY AS d(m, e, l, a, n) ORDER BY n \
             ON CONFLICT DO NOTHING",
            &[&d_msg, &d_ep, &d_lane, &d_at],
        )
        .await?;
        tx.execute("NOTIFY wearhouse_webhooks", &[]).await?;
        Ok(())
    }
}

/// What `entry` sends; `data` is the entry decoded when it is a data event.
async fn messages_of(
    ctx: &mut Ctx<'_>,
    entry: &LogEntry,
    data: Option<DataEvent>,
) -> Result<Vec<Out>, ProjectionError> {
    let pos = entry.position();
    let mut outs = Vec::new();
    match entry.aggregate_type.as_str() {
        "Connection" => {
            let (user_id, provider): (Uuid, String) = match ctx
                .tx
                .query_opt(
                    "SELECT user_id, provider FROM connections WHERE stream_id = $1",
                    &[&entry.aggregate_id],
                )
                .await?
            {
                Some(r) => (r.get(0), r.get(1)),
                None => return Ok(outs),
            };
            let connection_id = record_id(&["connection", &entry.aggregate_id]);
            match decode::<ConnectionEvent>(entry)? {
                ConnectionEvent::ConnectionAuthorized { at, .. } => {
                    let t = "connection.created";
                    if ctx.any_wants(t, Some(user_id), pos) {
                        outs.push(Out {
                            event_id: idempotency_key(&format!(
                                "{t}.{user_id}.{provider}.{}",
                                at.to_rfc3339()
                            )),
                            event_type: t.into(),
                            user_id: Some(user_id),
                            data: json!({"user_id": user_id, "provider": provider,
                                "connection_id": connection_id, "connected_at": at}),
                        });
                    }
                }
                ConnectionEvent::ConnectionRevoked { reason, at } => {
                    let t = "connection.revoked";
                    if ctx.any_wants(t, Some(user_id), pos) {
                        outs.push(Out {
                            event_id: idempotency_key(&format!(
                                "{t}.{user_id}.{provider}.{}",
                                at.to_rfc3339()
                            )),
                            event_type: t.into(),
                            user_id: Some(user_id),
                            data: json!({"user_id": user_id, "provider": provider,
                                "connection_id": connection_id, "reason": reason, "revoked_at": at}),
                        });
                    }
                }
                _ => {}
            }
        }
        "SyncRun" => {
            let run_id = &entry.aggregate_id;
            let Ok(run_uuid) = run_id.parse::<Uuid>() else {
                return Ok(outs);
            };
            let row = ctx
                .tx
                .query_opt(
                    "SELECT user_id, provider, source, message FROM sync_runs WHERE id = $1",
                    &[&run_uuid],
                )
                .await?;
            let Some(row) = row else { return Ok(outs) };
            let (user_id, provider, source, message): (Uuid, String, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let base = json!({"user_id": user_id, "provider": provider, "source": source,
                "run_id": run_id, "message": message, "metadata": {}});
            let (t, extra) = match decode::<SyncRunEvent>(entry)? {
                SyncRunEvent::SyncRunStarted { .. } => ("sync.started", json!({})),
                SyncRunEvent::SyncRunCompleted {
                    processed,
                    outcome,
                    error,
                    metadata,
                    ..
                } => (
                    "sync.completed",
                    json!({"status": outcome.map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
                            .unwrap_or(json!("success")),
                        "items_processed": processed, "error": error,
                        "metadata": serde_json::to_value(metadata).unwrap_or(json!({}))}),
                ),
                SyncRunEvent::SyncRunFailed { error, .. } => {
                    ("sync.failed", json!({"status": "failed", "error": error}))
                }
                _ => return Ok(outs),
            };
            if ctx.any_wants(t, Some(user_id), pos) {
                let mut data = base;
                if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
                    d.extend(e);
                }
                outs.push(Out {
                    event_id: idempotency_key(&format!("{t}.{run_id}")),
                    event_type: t.into(),
                    user_id: Some(user_id),
                    data,
                });
            }
        }
        _ => match data {
            None => {}
            Some(event) => match event {
                DataEvent::WorkoutsRecorded { user_id, workouts } => {
                    let t = "workout.created";
                    if ctx.any_wants(t, Some(user_id), pos) {
                        for w in &workouts {
                            let data = workout(ctx, user_id, w).await?;
                            outs.push(Out {
                                event_id: idempotency_key(&format!("{t}.{}", w.id)),
                                event_type: t.into(),
                                user_id: Some(user_id),
                                data,
                            });
                        }
                    }
                }
                DataEvent::SleepSessionsRecorded { user_id, sessions } => {
                    let t = "sleep.created";
                    if ctx.any_wants(t, Some(user_id), pos) {
                        for s in &sessions {
                            let data = sleep(ctx, user_id, s).await?;
                            outs.push(Out {
                                event_id: idempotency_key(&format!("{t}.{}", s.id)),
                                event_type: t.into(),
                                user_id: Some(user_id),
                                data,
                            });
                        }
                    }
                }
                DataEvent::MenstrualCyclesRecorded { user_id, cycles } => {
                    let t = "menstrual_cycle.created";
                    if ctx.any_wants(t, Some(user_id), pos) {
                        for c in &cycles {
                            let source = ctx.source(c.data_source_id).await?;
                            let d = &c.details;
                            outs.push(Out {
                            event_id: idempotency_key(&format!("{t}.{}", c.id)),
                            event_type: t.into(),
                            user_id: Some(user_id),
                            data: json!({"id": c.id, "user_id": user_id, "start_time": c.start,
                                "end_time": c.end, "zone_offset": offset(c.zone_offset), "source": source,
                                "current_phase_type": d.current_phase_type, "day_in_cycle": d.day_in_cycle,
                                "cycle_length": d.cycle_length, "is_predicted_cycle": d.is_predicted_cycle,
                                "pregnancy_snapshot": d.pregnancy_snapshot}),
                        });
                        }
                    }
                }
                DataEvent::SamplesRecorded { user_id, batch } => {
                    let Some(st) = series::by_id(batch.series_type) else {
                        return Ok(outs);
                    };
                    let group = webhook_events::grouped(webhook_events::group_of(st));
                    let granular = webhook_events::granular(st);
                    let types: Vec<&str> = [group.as_str(), granular.as_str()]
                        .into_iter()
                        .filter(|t| ctx.any_wants(t, Some(user_id), pos))
                        .collect();
                    if types.is_empty() {
                        return Ok(outs);
                    }
                    let bytes: Vec<u8> = ctx
                        .tx
                        .query_opt(
                            "SELECT arrow FROM sample_batches WHERE id = $1",
                            &[&batch.batch_id],
                        )
                        .await?
                        .ok_or_else(|| ProjectionError::Corrupt {
                            position: pos,
                            detail: format!("sample batch {} is missing", batch.batch_id),
                        })?
                        .get(0);
                    let decoded =
                        arrow_batch::decode(&bytes).map_err(|e| ProjectionError::Corrupt {
                            position: pos,
                            detail: e.to_string(),
                        })?;
                    let source = ctx.source(batch.data_source_id).await?;
                    let provider = source["provider"].as_str().unwrap_or("unknown").to_string();
                    let samples: Vec<Value> = decoded
                    .rows
                    .iter()
                    .map(|r| {
                        json!({"timestamp": ts(r.time), "zone_offset": offset(Some(r.zone_offset_min)),
                            "type": st.code, "value": r.value, "unit": st.unit, "source": source,
                            "is_daily_total": r.is_daily_total})
                    })
                    .collect();
                    let total = samples.len().div_ceil(CHUNK).max(1);
                    for t in types {
                        for (i, chunk) in samples.chunks(CHUNK.max(1)).enumerate() {
                            let mut data = json!({"user_id": user_id, "provider": provider,
                            "series_type": st.code, "sample_count": samples.len(),
                            "start_time": batch.start, "end_time": batch.end, "samples": chunk});
                            let mut key = format!(
                                "timeseries.{user_id}.{provider}.{}.{}.{}",
                                st.code,
                                batch.start.to_rfc3339(),
                                batch.end.to_rfc3339()
                            );
                            if total > 1 {
                                data["chunk_index"] = json!(i);
                                data["total_chunks"] = json!(total);
                                key.push_str(&format!(".chunk{i}"));
                            }
                            key.push('.');
                            key.push_str(t);
                            outs.push(Out {
                                event_id: idempotency_key(&key),
                                event_type: t.to_string(),
                                user_id: Some(user_id),
                                data,
                            });
                        }
                    }
                }
                _ => {}
            },
        },
    }
    Ok(outs)
}

async fn workout(
    ctx: &mut Ctx<'_>,
    user_id: Uuid,
    w: &WorkoutRecord,
) -> Result<Value, ProjectionError> {
    let stat = |k: &str| w.stats.get(k).copied();
    let distance = stat("distance_m");
    let pace = match (w.duration_s, distance) {
        (Some(t), Some(d)) if t > 0.0 && d > 0.0 => Some(int(t / (d / 1000.0))),
        _ => None,
    };
    Ok(json!({
        "id": w.id, "user_id": user_id, "type": w.workout_type, "start_time": w.start,
        "end_time": w.end, "zone_offset": offset(w.zone_offset),
        "duration_seconds": w.duration_s.map(int), "source": ctx.source(w.data_source_id).await?,
        "calories_kcal": stat("energy_kcal"), "distance_meters": distance,
        "avg_heart_rate_bpm": stat("heart_rate_avg").map(int),
        "max_heart_rate_bpm": stat("heart_rate_max").map(int),
        "avg_pace_sec_per_km": pace, "elevation_gain_meters": stat("elevation_gain_m"),
    }))
}

async fn sleep(
    ctx: &mut Ctx<'_>,
    user_id: Uuid,
    s: &SleepSessionRecord,
) -> Result<Value, ProjectionError> {
    let session = Session {
        id: s.id,
        source: s.data_source_id,
        rank: 0,
        start: s.start,
        end: s.end,
        zone_offset: s.zone_offset.unwrap_or(0),
        is_nap: s.is_nap,
        stages: s
            .stages
            .iter()
            .map(|i| StageSpan {
                stage: SleepStage::parse(&i.stage).unwrap_or(SleepStage::Unknown),
                start: i.start,
                end: i.end,
            })
            .collect(),
    };
    let night = sleep_merge::merge(vec![session]).pop();
    let (efficiency, stages) = match &night {
        Some(n) => (
            n.efficiency_percent(),
            [
                n.awake_minutes,
                n.light_minutes,
                n.deep_minutes,
                n.rem_minutes,
            ]
            .iter()
            .any(|m| *m > 0.0)
            .then(|| {
                json!({"awake": int(n.awake_minutes), "light": int(n.light_minutes),
                        "deep": int(n.deep_minutes), "rem": int(n.rem_minutes)})
            }),
        ),
        None => (None, None),
    };
    Ok(json!({
        "id": s.id, "user_id": user_id, "start_time": s.start, "end_time": s.end,
        "zone_offset": offset(s.zone_offset),
        "duration_seconds": (s.end - s.start).num_seconds(),
        "source": ctx.source(s.data_source_id).await?, "efficiency_percent": efficiency,
        "stages": stages, "is_nap": s.is_nap,
    }))
}
