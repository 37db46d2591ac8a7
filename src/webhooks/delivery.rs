//! The delivery engine: drains `webhook_deliveries` (written by the `webhook_outbox`
//! projection) at least once, in order per (endpoint, user) lane.
//!
//! A claim leases the oldest pending delivery of many lanes at once (`FOR UPDATE SKIP LOCKED`
//! with a limit; lanes found by a skip scan of the lane index, so a long backlog costs one
//! probe per lane, not one per row) and reads the run of due deliveries behind each head.
//! Holding a lane's head is holding the lane: no other engine claims it until the lease ends
//! or the outcomes are recorded. Each lane's run is sent one delivery after another (one in
//! flight per lane, stopping at the first failure), many lanes at once over one shared HTTP
//! client; outcomes are recorded in one transaction for every run that finished meanwhile.
//! The dispatcher never waits for a slow lane: a receiver that hangs for the whole timeout
//! delays only its own lane. It is woken by the outbox's NOTIFY at each commit and by
//! finished runs, and looks again every second for retries coming due.
//!
//! Retries follow Svix's schedule with ±20 % jitter (at least a minute after a timeout or a
//! 429, as Svix); an endpoint failing for five days is disabled through its aggregate. Every
//! attempt is stored with its (capped) response.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::Pool;
use futures::StreamExt;
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wearhouse_domain::webhook_endpoint::{WebhookEndpoint, WebhookEndpointCommand};

use super::{guard, secret_context, signing, Clock};
use crate::crypto::Sealer;
use crate::store::Commands;

/// Waits after the first (immediate) attempt, in seconds: Svix's published schedule.
pub const SCHEDULE: [i64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];
/// Shortest wait after an attempt that timed out or was answered 429 (Svix's overload penalty).
pub const OVERLOAD_WAIT: TimeDelta = TimeDelta::seconds(60);
/// How long an endpoint may fail without a success before it is disabled.
pub const FAILURE_WINDOW: TimeDelta = TimeDelta::days(5);
/// Longest wait for a receiver's answer.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes of a receiver's answer kept with the attempt.
pub const RESPONSE_CAP: usize = 4096;
/// The channel the outbox projection notifies when it adds deliveries.
pub const CHANNEL: &str = "wearhouse_webhooks";
/// Most deliveries of one lane sent on one claim.
const RUN: i64 = 64;
/// Most payload bytes of one lane's run (a run of large timeseries messages is cut short).
const RUN_BYTES: i64 = 256 << 10;
/// Time a run leaves between its last send's timeout and the end of its lease.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often an idle engine looks for retries coming due and leases that ran out.
const POLL: Duration = Duration::from_secs(1);

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
    /// Lanes sending at once (each has one delivery in flight).
    pub concurrency: usize,
    /// Longest wait for a receiver's answer.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            concurrency: 256,
            timeout: TIMEOUT,
        }
    }
}

impl Settings {
    /// How long a claim lasts: at least twice the timeout, so a run that starts its last send
    /// within its budget ([`Settings::run_budget`]) finishes before anyone else may take the lane.
    fn lease(&self) -> Duration {
        (self.timeout * 2).max(Duration::from_secs(30))
    }

    /// How long after its claim a run may still start a send.
    fn run_budget(&self) -> Duration {
        self.lease().saturating_sub(self.timeout + LEASE_MARGIN)
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

/// Where a lane goes.
struct Destination {
    id: Uuid,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_valid_until: Option<DateTime<Utc>>,
}

/// One claimed delivery.
struct Item {
    seq: i64,
    attempts: i32,
    trigger_type: i16,
    message_id: String,
    body: String,
}

/// A claimed lane: its leased head and the due deliveries behind it, in order.
struct Run {
    to: Arc<Destination>,
    items: Vec<Item>,
    claimed: Instant,
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
    /// Timed out or answered 429: the next attempt waits at least [`OVERLOAD_WAIT`].
    overloaded: bool,
    at: DateTime<Utc>,
}

/// The wait before attempt `attempts + 1` (after `attempts` failed ones), with ±20 % jitter;
/// `None` when the schedule is exhausted.
pub fn retry_delay(attempts: i32, overloaded: bool) -> Option<TimeDelta> {
    let base = *SCHEDULE.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let mut base = TimeDelta::seconds(base);
    if overloaded {
        base = base.max(OVERLOAD_WAIT);
    }
    let factor = rand::rng().random_range(0.8..1.2);
    Some(TimeDelta::milliseconds(
        (base.num_milliseconds() as f64 * factor) as i64,
    ))
}

/// Leases the heads of up to `$3` lanes whose head is due and unclaimed, oldest first. The
/// lanes come from a skip scan of the lane index (one probe per lane, however long each
/// lane's backlog); the lock re-checks each head, so one that another engine just leased or
/// finished is skipped.
const CLAIM: &str = "WITH RECURSIVE lanes (endpoint_id, lane) AS ( \
       (SELECT endpoint_id, lane FROM webhook_deliveries WHERE state = 'pending' \
         ORDER BY endpoint_id, lane LIMIT 1) \
       UNION ALL \
       SELECT n.endpoint_id, n.lane FROM lanes l CROSS JOIN LATERAL ( \
         SELECT endpoint_id, lane FROM webhook_deliveries \
          WHERE state = 'pending' AND (endpoint_id, lane) > (l.endpoint_id, l.lane) \
          ORDER BY endpoint_id, lane LIMIT 1) n), \
     heads AS ( \
       SELECT h.seq FROM lanes l CROSS JOIN LATERAL ( \
         SELECT seq, next_at, lease_until FROM webhook_deliveries \
          WHERE state = 'pending' AND endpoint_id = l.endpoint_id AND lane = l.lane \
          ORDER BY seq LIMIT 1) h \
        WHERE h.next_at <= $1 AND (h.lease_until IS NULL OR h.lease_until < $1)), \
     c AS ( \
       SELECT d.seq FROM webhook_deliveries d \
         JOIN heads h ON h.seq = d.seq \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id AND NOT e.disabled \
        WHERE d.state = 'pending' AND d.next_at <= $1 AND (d.lease_until IS NULL OR d.lease_until < $1) \
        ORDER BY d.seq LIMIT $3 FOR UPDATE OF d SKIP LOCKED) \
     UPDATE webhook_deliveries d SET lease_until = $2 FROM c WHERE d.seq = c.seq \
     RETURNING d.seq, d.endpoint_id";

/// The run behind each leased head: its lane's first pending deliveries (at most `$2`, and
/// `$3` payload bytes after the head), with their messages.
const RUNS: &str = "SELECT h.seq, w.seq, w.attempts, w.trigger_type, w.next_at, w.lease_until, \
            m.id, m.payload::text \
       FROM webhook_deliveries h \
       CROSS JOIN LATERAL ( \
         SELECT x.*, sum(pg_column_size(xm.payload)) OVER (ORDER BY x.seq) AS upto \
           FROM (SELECT seq, attempts, trigger_type, next_at, lease_until, message_id \
                   FROM webhook_deliveries \
                  WHERE state = 'pending' AND endpoint_id = h.endpoint_id AND lane = h.lane \
                  ORDER BY seq LIMIT $2) x \
           JOIN webhook_messages xm ON xm.id = x.message_id) w \
       JOIN webhook_messages m ON m.id = w.message_id \
      WHERE h.seq = ANY($1) AND (w.seq = h.seq OR w.upto <= $3) \
      ORDER BY h.seq, w.seq";

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
            // Names are resolved once, checked, and connected to at the checked addresses; a
            // proxy would resolve them itself.
            .dns_resolver(guard::Resolver {
                allow_private: settings.allow_private,
            })
            .no_proxy()
            .pool_max_idle_per_host(settings.concurrency.max(1))
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

    /// Delivers until `stop` turns true; woken by the outbox's NOTIFY (when `pg` is given), by
    /// [`Engine::wake`] and by finished runs. Resumes whatever is pending, so a restart loses
    /// nothing.
    pub async fn run(self, pg: Option<tokio_postgres::Config>, mut stop: watch::Receiver<bool>) {
        let listener = pg.map(|pg| {
            let engine = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move { engine.listen(pg, stop).await })
        });
        info!("webhook delivery engine started");
        let lanes = self.inner.settings.concurrency.max(1);
        // Lanes being sent; each task is one lane's run and yields its outcomes.
        let mut running: JoinSet<Vec<Outcome>> = JoinSet::new();
        let mut look = true;
        let mut pause = POLL;
        loop {
            if *stop.borrow() {
                break;
            }
            if look && running.len() < lanes {
                let room = lanes - running.len();
                match self.claim(room).await {
                    Ok(runs) => {
                        // A full claim: more may be due as soon as there is room.
                        look = runs.len() == room;
                        pause = POLL;
                        for run in runs {
                            let engine = self.clone();
                            running.spawn(async move { engine.send_run(run).await });
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "webhook delivery failed to claim; retrying");
                        look = false;
                        pause = Duration::from_secs(1);
                    }
                }
            }
            tokio::select! {
                Some(done) = running.join_next(), if !running.is_empty() => {
                    let mut outcomes = done.unwrap_or_default();
                    while let Some(more) = running.try_join_next() {
                        outcomes.extend(more.unwrap_or_default());
                    }
                    self.record_or_warn(outcomes).await;
                    look = true;
                }
                _ = self.inner.wake.notified() => look = true,
                _ = tokio::time::sleep(pause), if !look => look = true,
                _ = stop.changed() => {}
            }
        }
        // Runs in flight finish (within the timeout) and are recorded, so a clean stop does
        // not send them again after the restart.
        let drain = async {
            let mut outcomes = Vec::new();
            while let Some(done) = running.join_next().await {
                outcomes.extend(done.unwrap_or_default());
            }
            self.record_or_warn(outcomes).await;
        };
        let _ =
            tokio::time::timeout(self.inner.settings.timeout + Duration::from_secs(1), drain).await;
        if let Some(l) = listener {
            l.abort();
        }
    }

    async fn record_or_warn(&self, outcomes: Vec<Outcome>) {
        if outcomes.is_empty() {
            return;
        }
        if let Err(e) = self.record(outcomes).await {
            // The leases run out and these deliveries are made again (at least once).
            warn!(error = %e, "recording webhook attempts failed");
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

    /// One round: claims due lanes, sends their runs and records the outcomes; returns how
    /// many attempts were made.
    pub async fn tick(&self) -> Result<usize, DeliveryError> {
        let runs = self.claim(self.inner.settings.concurrency.max(1)).await?;
        let outcomes: Vec<Outcome> =
            futures::future::join_all(runs.into_iter().map(|r| self.send_run(r)))
                .await
                .into_iter()
                .flatten()
                .collect();
        let n = outcomes.len();
        if n > 0 {
            self.record(outcomes).await?;
        }
        Ok(n)
    }

    /// Leases the heads of up to `lanes` due lanes and reads the run behind each.
    async fn claim(&self, lanes: usize) -> Result<Vec<Run>, DeliveryError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let lease = TimeDelta::from_std(inner.settings.lease()).unwrap_or(TimeDelta::seconds(30));
        let client = inner.pool.get().await?;
        let heads = client
            .query(CLAIM, &[&now, &(now + lease), &(lanes as i64)])
            .await?;
        if heads.is_empty() {
            return Ok(vec![]);
        }
        let claimed = Instant::now();
        let seqs: Vec<i64> = heads.iter().map(|r| r.get(0)).collect();
        let mut ids: Vec<Uuid> = heads.iter().map(|r| r.get(1)).collect();
        ids.sort();
        ids.dedup();
        let destinations: HashMap<Uuid, Arc<Destination>> = client
            .query(
                "SELECT id, url, secret, previous_secret, previous_valid_until \
                   FROM webhook_endpoints WHERE id = ANY($1)",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| {
                let d = Destination {
                    id: r.get(0),
                    url: r.get(1),
                    secret: r.get(2),
                    previous_secret: r.get(3),
                    previous_valid_until: r.get(4),
                };
                (d.id, Arc::new(d))
            })
            .collect();
        let head_endpoint: HashMap<i64, Uuid> =
            heads.iter().map(|r| (r.get(0), r.get(1))).collect();
        let rows = client.query(RUNS, &[&seqs, &RUN, &RUN_BYTES]).await?;
        let mut runs: Vec<Run> = Vec::with_capacity(seqs.len());
        let mut current: Option<i64> = None;
        // Whether the current run still takes deliveries: it ends before the first one that
        // is not due, or that someone holds (a resent older message can put a leased
        // delivery behind a new head).
        let mut open = false;
        for r in &rows {
            let head: i64 = r.get(0);
            let seq: i64 = r.get(1);
            if current != Some(head) {
                current = Some(head);
                open = seq == head;
                let Some(to) = head_endpoint.get(&head).and_then(|e| destinations.get(e)) else {
                    open = false;
                    continue;
                };
                if open {
                    runs.push(Run {
                        to: to.clone(),
                        items: vec![],
                        claimed,
                    });
                }
            } else if open {
                let next_at: DateTime<Utc> = r.get(4);
                let lease_until: Option<DateTime<Utc>> = r.get(5);
                open = next_at <= now && lease_until.is_none_or(|u| u < now);
            }
            if open {
                if let Some(run) = runs.last_mut() {
                    run.items.push(Item {
                        seq,
                        attempts: r.get(2),
                        trigger_type: r.get(3),
                        message_id: r.get(6),
                        body: r.get(7),
                    });
                }
            }
        }
        Ok(runs)
    }

    /// Sends a lane's run in order, one at a time, until one fails or the run's time is up.
    async fn send_run(&self, run: Run) -> Vec<Outcome> {
        let inner = &self.inner;
        let budget = inner.settings.run_budget();
        let to = &run.to;
        let mut outcomes = Vec::with_capacity(run.items.len());
        let refused = match guard::check_url(&to.url, inner.settings.allow_private) {
            Err(e) => Some(e.to_string()),
            Ok(()) => None,
        };
        let secrets = if refused.is_none() {
            self.secrets(to)
        } else {
            vec![]
        };
        for (i, item) in run.items.into_iter().enumerate() {
            if i > 0 && run.claimed.elapsed() > budget {
                break;
            }
            let outcome = match (&refused, secrets.is_empty()) {
                (Some(reason), _) => self.failed(to, item, reason.clone()),
                (None, true) => {
                    self.failed(to, item, "the endpoint's secret cannot be opened".into())
                }
                (None, false) => self.send(to, &secrets, item).await,
            };
            let ok = outcome.ok;
            outcomes.push(outcome);
            if !ok {
                break;
            }
        }
        outcomes
    }

    /// The secrets that sign now: the current one, and the previous one while it is valid.
    fn secrets(&self, to: &Destination) -> Vec<String> {
        let inner = &self.inner;
        let context = secret_context(to.id);
        let now = inner.clock.now();
        let mut secrets = Vec::new();
        for (sealed, valid) in [
            (Some(&to.secret), true),
            (
                to.previous_secret.as_ref(),
                to.previous_valid_until.is_some_and(|u| u > now),
            ),
        ] {
            if let (Some(sealed), true) = (sealed, valid) {
                match inner.sealer.open(sealed, &context) {
                    Ok(o) => secrets.push(o.plain),
                    Err(e) => {
                        warn!(endpoint = %to.id, error = %e, "endpoint secret does not open")
                    }
                }
            }
        }
        secrets
    }

    fn failed(&self, to: &Destination, item: Item, response: String) -> Outcome {
        Outcome {
            seq: item.seq,
            attempts: item.attempts,
            trigger_type: item.trigger_type,
            message_id: item.message_id,
            endpoint_id: to.id,
            url: to.url.clone(),
            status_code: 0,
            response,
            duration_ms: 0,
            ok: false,
            overloaded: false,
            at: self.inner.clock.now(),
        }
    }

    async fn send(&self, to: &Destination, secrets: &[String], item: Item) -> Outcome {
        let inner = &self.inner;
        let now = inner.clock.now();
        let ts = now.timestamp();
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        // The message id is the webhook id (as Svix): the same on every attempt and replay.
        let signature =
            signing::signature_header(&refs, &item.message_id, ts, item.body.as_bytes());
        let ts = ts.to_string();
        let started = Instant::now();
        let sent = inner
            .http
            .post(&to.url)
            .header("content-type", "application/json")
            .header("webhook-id", &item.message_id)
            .header("webhook-timestamp", &ts)
            .header("webhook-signature", &signature)
            .header("svix-id", &item.message_id)
            .header("svix-timestamp", &ts)
            .header("svix-signature", &signature)
            .body(item.body)
            .send()
            .await;
        let mut outcome = Outcome {
            seq: item.seq,
            attempts: item.attempts,
            trigger_type: item.trigger_type,
            message_id: item.message_id,
            endpoint_id: to.id,
            url: to.url.clone(),
            status_code: 0,
            response: String::new(),
            duration_ms: 0,
            ok: false,
            overloaded: false,
            at: now,
        };
        match sent {
            Ok(mut response) => {
                let status = response.status();
                outcome.status_code = i32::from(status.as_u16());
                outcome.ok = status.is_success();
                outcome.overloaded = status == reqwest::StatusCode::TOO_MANY_REQUESTS;
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
                outcome.overloaded = e.is_timeout();
                outcome.response = if let Some(refusal) = guard::refusal(&e) {
                    refusal.to_string()
                } else if e.is_timeout() {
                    format!("timed out after {} s", inner.settings.timeout.as_secs())
                } else {
                    format!("request failed: {}", error_chain(&e))
                };
            }
        }
        outcome.duration_ms = started.elapsed().as_millis() as i64;
        outcome.at = inner.clock.now();
        outcome
    }

    /// Stores the attempts and moves each delivery on, all in one transaction.
    async fn record(&self, outcomes: Vec<Outcome>) -> Result<(), DeliveryError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut client = inner.pool.get().await?;
        let tx = client.transaction().await?;
        let mut a = AttemptColumns::default();
        let (mut seqs, mut states, mut next_ats, mut delivered) = (vec![], vec![], vec![], vec![]);
        let (mut good, mut bad) = (vec![], vec![]);
        for o in outcomes {
            let attempts = o.attempts + 1;
            seqs.push(o.seq);
            if o.ok {
                states.push("succeeded".to_string());
                next_ats.push(o.at);
                delivered.push(Some(o.at));
                good.push(o.endpoint_id);
            } else {
                match retry_delay(attempts, o.overloaded) {
                    Some(d) => {
                        states.push("pending".to_string());
                        next_ats.push(o.at + d);
                    }
                    None => {
                        states.push("failed".to_string());
                        next_ats.push(o.at);
                    }
                }
                delivered.push(None);
                bad.push(o.endpoint_id);
            }
            a.id.push(format!("atmpt_{}", Uuid::new_v4().simple()));
            a.message.push(o.message_id);
            a.endpoint.push(o.endpoint_id);
            a.url.push(o.url);
            a.response.push(o.response);
            a.code.push(o.status_code);
            a.duration.push(o.duration_ms);
            a.status.push(if o.ok { 0i16 } else { 2 });
            a.trigger.push(o.trigger_type);
            a.at.push(o.at);
        }
        tx.execute(
            "INSERT INTO webhook_attempts (id, message_id, endpoint_id, url, response, status_code, duration_ms, status, trigger_type, at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::int4[], \
                                  $7::int8[], $8::int2[], $9::int2[], $10::timestamptz[])",
            &[&a.id, &a.message, &a.endpoint, &a.url, &a.response, &a.code, &a.duration, &a.status, &a.trigger, &a.at],
        )
        .await?;
        tx.execute(
            "UPDATE webhook_deliveries d SET state = u.state, next_at = u.next_at, attempts = d.attempts + 1, \
               lease_until = NULL, trigger_type = 0, delivered_at = u.delivered_at \
             FROM unnest($1::int8[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(seq, state, next_at, delivered_at) \
             WHERE d.seq = u.seq",
            &[&seqs, &states, &next_ats, &delivered],
        )
        .await?;
        good.sort();
        good.dedup();
        if !good.is_empty() {
            tx.execute(
                "DELETE FROM webhook_endpoint_health WHERE endpoint_id = ANY($1)",
                &[&good],
            )
            .await?;
        }
        bad.sort();
        bad.dedup();
        bad.retain(|e| good.binary_search(e).is_err());
        let expired: Vec<Uuid> = if bad.is_empty() {
            vec![]
        } else {
            tx.execute(
                "INSERT INTO webhook_endpoint_health (endpoint_id, failing_since) \
                 SELECT unnest($1::uuid[]), $2::timestamptz ON CONFLICT DO NOTHING",
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
    at: Vec<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_with_jitter_then_stop() {
        assert!(retry_delay(0, false).is_none());
        for (i, base) in SCHEDULE.iter().enumerate() {
            let d = retry_delay(i as i32 + 1, false).unwrap().num_milliseconds() as f64;
            let b = *base as f64 * 1000.0;
            assert!(d >= b * 0.8 && d <= b * 1.2, "{i}: {d} vs {b}");
        }
        assert!(retry_delay(SCHEDULE.len() as i32 + 1, false).is_none());
        // After a timeout or a 429 the first retry waits a minute, not 5 s (Svix).
        let d = retry_delay(1, true).unwrap().num_milliseconds();
        assert!((48_000..=72_000).contains(&d), "{d}");
        let d = retry_delay(3, true).unwrap().num_milliseconds();
        assert!((1_440_000..=2_160_000).contains(&d), "{d}");
    }

    #[test]
    fn a_run_ends_before_its_lease() {
        for secs in [1, 2, 15, 30, 60] {
            let s = Settings {
                timeout: Duration::from_secs(secs),
                ..Settings::default()
            };
            assert!(s.run_budget() + s.timeout < s.lease(), "{secs}");
        }
    }
}
