//! The delivery engine: drains `webhook_deliveries` (written by the `webhook_outbox`
//! projection) at least once, in order per (endpoint, user): only the oldest pending delivery
//! of a lane is ever claimed, with `FOR UPDATE SKIP LOCKED` and a lease, so several processes
//! can run engines and a killed one's claims come back when the lease ends. Retries follow
//! Svix's schedule with ±20 % jitter; an endpoint failing for five days is disabled through
//! its aggregate. Every attempt is stored with its (capped) response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::Pool;
use futures::StreamExt;
use rand::Rng;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};
use uuid::Uuid;
use wearhouse_domain::webhook_endpoint::{WebhookEndpoint, WebhookEndpointCommand};

use super::{guard, secret_context, signing, Clock};
use crate::crypto::Sealer;
use crate::store::Commands;

/// Waits after the first (immediate) attempt, in seconds: Svix's published schedule.
pub const SCHEDULE: [i64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];
/// How long an endpoint may fail without a success before it is disabled.
pub const FAILURE_WINDOW: TimeDelta = TimeDelta::days(5);
/// Longest wait for a receiver's answer.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes of a receiver's answer kept with the attempt.
pub const RESPONSE_CAP: usize = 4096;
/// How long a claim lasts: past the timeout, so a live engine never loses its own claim.
const LEASE: TimeDelta = TimeDelta::seconds(30);
/// The channel the outbox projection notifies when it adds deliveries.
pub const CHANNEL: &str = "wearhouse_webhooks";

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("database: {}", wearhouse_log::pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Deliver to private, loopback and link-local destinations too.
    pub allow_private: bool,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Longest wait for a receiver's answer.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            concurrency: 64,
            timeout: TIMEOUT,
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    sealer: Sealer,
    commands: Commands,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    settings: Settings,
    wake: Notify,
}

/// A claimed delivery with what sending it needs.
struct Claim {
    seq: i64,
    attempts: i32,
    trigger_type: i16,
    message_id: String,
    event_id: String,
    body: String,
    endpoint_id: Uuid,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_valid_until: Option<DateTime<Utc>>,
}

struct Outcome {
    seq: i64,
    attempts: i32,
    trigger_type: i16,
    message_id: String,
    endpoint_id: Uuid,
    url: String,
    status_code: i32,
    response: String,
    duration_ms: i64,
    ok: bool,
}

/// The wait before attempt `attempts + 1` (after `attempts` failed ones), with ±20 % jitter;
/// `None` when the schedule is exhausted.
pub fn retry_delay(attempts: i32) -> Option<TimeDelta> {
    let base = *SCHEDULE.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let factor = rand::rng().random_range(0.8..1.2);
    Some(TimeDelta::milliseconds(
        (base as f64 * 1000.0 * factor) as i64,
    ))
}

/// The oldest pending delivery of each lane (read from the lane index alone, so a long backlog
/// costs one index pass, not a probe per row), of those the due and unclaimed ones, locked and
/// leased. The lock re-checks each row, so a head another engine just leased or finished is
/// skipped.
const CLAIM: &str = "WITH heads AS ( \
       SELECT DISTINCT ON (endpoint_id, lane) seq FROM webhook_deliveries \
        WHERE state = 'pending' ORDER BY endpoint_id, lane, seq), \
     c AS ( \
       SELECT d.seq FROM webhook_deliveries d \
         JOIN heads h ON h.seq = d.seq \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id AND NOT e.disabled \
        WHERE d.state = 'pending' AND d.next_at <= $1 AND (d.lease_until IS NULL OR d.lease_until < $1) \
        ORDER BY d.seq LIMIT $3 FOR UPDATE OF d SKIP LOCKED) \
     UPDATE webhook_deliveries d SET lease_until = $2 \
       FROM c, webhook_messages m, webhook_endpoints e \
      WHERE d.seq = c.seq AND m.id = d.message_id AND e.id = d.endpoint_id \
     RETURNING d.seq, d.attempts, d.trigger_type, m.id, m.event_id, m.payload::text, e.id, e.url, \
               e.secret, e.previous_secret, e.previous_valid_until";

impl Engine {
    pub fn new(
        pool: Pool,
        sealer: Sealer,
        commands: Commands,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Engine {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect is a failure (as Svix): the endpoint's URL is what was registered.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wearhouse-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client");
        Engine {
            inner: Arc::new(Inner {
                pool,
                sealer,
                commands,
                http,
                clock,
                settings,
                wake: Notify::new(),
            }),
        }
    }

    /// Look for due deliveries now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Delivers until `stop` turns true; woken by the outbox's NOTIFY (when `pg` is given)
    /// and polling otherwise. Resumes whatever is pending, so a restart loses nothing.
    pub async fn run(self, pg: Option<tokio_postgres::Config>, mut stop: watch::Receiver<bool>) {
        let listener = pg.map(|pg| {
            let engine = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move { engine.listen(pg, stop).await })
        });
        info!("webhook delivery engine started");
        loop {
            if *stop.borrow() {
                break;
            }
            let wait = match self.tick().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => Duration::from_millis(250),
                Err(e) => {
                    warn!(error = %e, "webhook delivery failed to claim; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        if let Some(l) = listener {
            l.abort();
        }
    }

    async fn listen(&self, pg: tokio_postgres::Config, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match pg.connect(wearhouse_projections::pgtls::connector()).await {
                Ok((client, mut connection)) => {
                    let engine = self.clone();
                    let pump = tokio::spawn(async move {
                        let mut messages =
                            futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                        while let Some(Ok(msg)) = messages.next().await {
                            if let tokio_postgres::AsyncMessage::Notification(_) = msg {
                                engine.wake();
                            }
                        }
                    });
                    if client
                        .batch_execute(&format!("LISTEN {CHANNEL}"))
                        .await
                        .is_ok()
                    {
                        tokio::select! {
                            _ = pump => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
                Err(e) => debug!(error = %e, "webhook listener could not connect"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Claims due deliveries, sends them and records the outcomes; returns how many.
    pub async fn tick(&self) -> Result<usize, DeliveryError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let batch = (inner.settings.concurrency.max(1) * 4) as i64;
        let claims: Vec<Claim> = inner
            .pool
            .get()
            .await?
            .query(CLAIM, &[&now, &(now + LEASE), &batch])
            .await?
            .iter()
            .map(|r| Claim {
                seq: r.get(0),
                attempts: r.get(1),
                trigger_type: r.get(2),
                message_id: r.get(3),
                event_id: r.get(4),
                body: r.get(5),
                endpoint_id: r.get(6),
                url: r.get(7),
                secret: r.get(8),
                previous_secret: r.get(9),
                previous_valid_until: r.get(10),
            })
            .collect();
        if claims.is_empty() {
            return Ok(0);
        }
        let n = claims.len();
        let outcomes: Vec<Outcome> = futures::stream::iter(claims)
            .map(|c| self.send(c))
            .buffer_unordered(inner.settings.concurrency.max(1))
            .collect()
            .await;
        self.record(outcomes).await?;
        Ok(n)
    }

    async fn send(&self, c: Claim) -> Outcome {
        let inner = &self.inner;
        let mut outcome = Outcome {
            seq: c.seq,
            attempts: c.attempts,
            trigger_type: c.trigger_type,
            message_id: c.message_id.clone(),
            endpoint_id: c.endpoint_id,
            url: c.url.clone(),
            status_code: 0,
            response: String::new(),
            duration_ms: 0,
            ok: false,
        };
        if let Err(e) = guard::check(&c.url, inner.settings.allow_private).await {
            outcome.response = e.to_string();
            return outcome;
        }
        let context = secret_context(c.endpoint_id);
        let now = inner.clock.now();
        let mut secrets = Vec::new();
        for (sealed, valid) in [
            (Some(&c.secret), true),
            (
                c.previous_secret.as_ref(),
                c.previous_valid_until.is_some_and(|u| u > now),
            ),
        ] {
            if let (Some(sealed), true) = (sealed, valid) {
                match inner.sealer.open(sealed, &context) {
                    Ok(o) => secrets.push(o.plain),
                    Err(e) => {
                        warn!(endpoint = %c.endpoint_id, error = %e, "endpoint secret does not open")
                    }
                }
            }
        }
        if secrets.is_empty() {
            outcome.response = "the endpoint's secret cannot be opened".into();
            return outcome;
        }
        let ts = now.timestamp();
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signature = signing::signature_header(&refs, &c.event_id, ts, c.body.as_bytes());
        let started = Instant::now();
        let sent = inner
            .http
            .post(&c.url)
            .header("content-type", "application/json")
            .header("webhook-id", &c.event_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", &signature)
            .header("svix-id", &c.event_id)
            .header("svix-timestamp", ts.to_string())
            .header("svix-signature", &signature)
            .body(c.body)
            .send()
            .await;
        match sent {
            Ok(mut response) => {
                outcome.status_code = i32::from(response.status().as_u16());
                outcome.ok = response.status().is_success();
                let mut body = Vec::new();
                // Only the first bytes are kept; the rest is not read (a slow or endless answer
                // cannot hold the engine past the timeout).
                while body.len() < RESPONSE_CAP {
                    match response.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                body.truncate(RESPONSE_CAP);
                outcome.response = String::from_utf8_lossy(&body).into_owned();
            }
            Err(e) => {
                outcome.response = if e.is_timeout() {
                    format!("timed out after {} s", inner.settings.timeout.as_secs())
                } else {
                    format!("request failed: {}", error_chain(&e))
                };
            }
        }
        outcome.duration_ms = started.elapsed().as_millis() as i64;
        outcome
    }

    async fn record(&self, outcomes: Vec<Outcome>) -> Result<(), DeliveryError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut client = inner.pool.get().await?;
        let tx = client.transaction().await?;
        let mut a = AttemptColumns::default();
        let (mut seqs, mut states, mut next_ats) = (vec![], vec![], vec![]);
        let (mut good, mut bad) = (vec![], vec![]);
        for o in &outcomes {
            a.id.push(format!("atmpt_{}", Uuid::new_v4().simple()));
            a.message.push(o.message_id.clone());
            a.endpoint.push(o.endpoint_id);
            a.url.push(o.url.clone());
            a.response.push(o.response.clone());
            a.code.push(o.status_code);
            a.duration.push(o.duration_ms);
            a.status.push(if o.ok { 0i16 } else { 2 });
            a.trigger.push(o.trigger_type);
            seqs.push(o.seq);
            let attempts = o.attempts + 1;
            if o.ok {
                states.push("succeeded".to_string());
                next_ats.push(now);
                good.push(o.endpoint_id);
            } else {
                match retry_delay(attempts) {
                    Some(d) => {
                        states.push("pending".to_string());
                        next_ats.push(now + d);
                    }
                    None => {
                        states.push("failed".to_string());
                        next_ats.push(now);
                    }
                }
                bad.push(o.endpoint_id);
            }
        }
        tx.execute(
            "INSERT INTO webhook_attempts (id, message_id, endpoint_id, url, response, status_code, duration_ms, status, trigger_type, at) \
             SELECT *, $10::timestamptz FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::int4[], \
                                  $7::int8[], $8::int2[], $9::int2[])",
            &[&a.id, &a.message, &a.endpoint, &a.url, &a.response, &a.code, &a.duration, &a.status, &a.trigger, &now],
        )
        .await?;
        tx.execute(
            "UPDATE webhook_deliveries d SET state = u.state, next_at = u.next_at, attempts = d.attempts + 1, \
               lease_until = NULL, trigger_type = 0, \
               delivered_at = CASE WHEN u.state = 'succeeded' THEN $4::timestamptz END \
             FROM unnest($1::int8[], $2::text[], $3::timestamptz[]) AS u(seq, state, next_at) WHERE d.seq = u.seq",
            &[&seqs, &states, &next_ats, &now],
        )
        .await?;
        tx.execute(
            "DELETE FROM webhook_endpoint_health WHERE endpoint_id = ANY($1)",
            &[&good],
        )
        .await?;
        bad.retain(|e| !good.contains(e));
        let expired: Vec<Uuid> = if bad.is_empty() {
            vec![]
        } else {
            tx.execute(
                "INSERT INTO webhook_endpoint_health (endpoint_id, failing_since) \
                 SELECT DISTINCT unnest($1::uuid[]), $2::timestamptz ON CONFLICT DO NOTHING",
                &[&bad, &now],
            )
            .await?;
            tx.query(
                "SELECT endpoint_id FROM webhook_endpoint_health WHERE endpoint_id = ANY($1) AND failing_since <= $2",
                &[&bad, &(now - FAILURE_WINDOW)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
        };
        tx.commit().await?;
        for id in expired {
            self.disable(id, now).await;
        }
        Ok(())
    }

    async fn disable(&self, id: Uuid, now: DateTime<Utc>) {
        let actor = crate::store::Actor {
            kind: "system",
            id: "webhook-delivery".into(),
            request_id: None,
        };
        let command = WebhookEndpointCommand::Disable {
            reason: format!(
                "deliveries failed for {} days without a success",
                FAILURE_WINDOW.num_days()
            ),
            at: now,
        };
        match self
            .inner
            .commands
            .execute::<WebhookEndpoint>(&id.to_string(), command, &actor, None, None)
            .await
        {
            Ok(()) => {
                warn!(endpoint = %id, "webhook endpoint disabled after failing for the whole failure window")
            }
            Err(e) => warn!(endpoint = %id, error = %e, "disabling a failing webhook endpoint"),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[derive(Default)]
struct AttemptColumns {
    id: Vec<String>,
    message: Vec<String>,
    endpoint: Vec<Uuid>,
    url: Vec<String>,
    response: Vec<String>,
    code: Vec<i32>,
    duration: Vec<i64>,
    status: Vec<i16>,
    trigger: Vec<i16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_with_jitter_then_stop() {
        assert!(retry_delay(0).is_none());
        for (i, base) in SCHEDULE.iter().enumerate() {
            let d = retry_delay(i as i32 + 1).unwrap().num_milliseconds() as f64;
            let b = *base as f64 * 1000.0;
            assert!(d >= b * 0.8 && d <= b * 1.2, "{i}: {d} vs {b}");
        }
        assert!(retry_delay(SCHEDULE.len() as i32 + 1).is_none());
    }
}
