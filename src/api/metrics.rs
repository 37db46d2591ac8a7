//! `GET /metrics` in the Prometheus text format, and the middleware that counts and times
//! every HTTP request.
//!
//! Never open to anyone who reaches the API port: on the API port it is served only with
//! `WEARHOUSE_METRICS_TOKEN` set, to scrapers sending `Authorization: Bearer <token>`; with
//! `WEARHOUSE_METRICS_BIND` it is (also) served on an address of its own, meant to be reachable
//! by the scraper only (the token, when set, is required there too). A scrape costs bounded
//! work: lags are counted over at most [`LAG_CAP`] log entries, never over the whole log.
//!
//! Consumer lag (when a broker is configured) compares the offsets the Kafka projection workers
//! stored with their read models (`kafka_offsets`) to each partition's high watermark, so it is
//! right whichever process runs the workers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use poem::web::Data;
use poem::PathPattern;
use poem::{handler, Endpoint, IntoResponse, Request, Response};

use super::AppState;

/// Upper bounds (seconds) of the request latency histogram buckets.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    /// Observations at or below each bucket bound (cumulative, as Prometheus wants).
    buckets: [u64; BUCKETS.len()],
}

/// Request counts and latency histograms per (method, route pattern, status).
#[derive(Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<(&'static str, String, u16), Series>>,
}

/// The method label: one of a fixed set, so a client inventing methods cannot grow the series
/// without bound.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

impl HttpMetrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut all = self.series.lock().expect("metrics lock");
        let s = all
            .entry((method_label(method), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        for (bound, n) in BUCKETS.iter().zip(s.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
    }

    pub fn render(&self, out: &mut String) {
        let all = self.series.lock().expect("metrics lock");
        out.push_str("# HELP wearhouse_http_requests_total HTTP requests by method, route pattern and status.\n");
        out.push_str("# TYPE wearhouse_http_requests_total counter\n");
        for ((method, route, status), s) in all.iter() {
            let _ = writeln!(
                out,
                "wearhouse_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str("# HELP wearhouse_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE wearhouse_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in all.iter() {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (bound, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "wearhouse_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "wearhouse_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "wearhouse_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "wearhouse_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Times one request and records it under its route pattern (not the raw path, which would
/// make one series per user id); requests that match no route share `unmatched`.
pub async fn track<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    metrics: Arc<HttpMetrics>,
) -> poem::Result<Response> {
    let method = req.method().to_string();
    let started = Instant::now();
    let result = ep.call(req).await.map(IntoResponse::into_response);
    let (status, pattern) = match &result {
        Ok(r) => (r.status(), r.data::<PathPattern>().cloned()),
        Err(e) => (e.status(), e.data::<PathPattern>().cloned()),
    };
    // The catch-all nest at "/" reports an empty pattern when nothing inside it matched.
    let route = match pattern {
        Some(p) if !p.0.is_empty() => p.0.to_string(),
        _ => "unmatched".to_string(),
    };
    metrics.observe(
        &method,
        &route,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    result
}

/// Lags are counted up to this many entries (a bounded range scan of the log's
/// `(tx, position)` index per projection); a larger lag reports this value.
pub const LAG_CAP: i64 = 100_000;

/// Entries of the log after each projection's checkpoint (what the Postgres-tailing runner
/// still has to apply), up to [`LAG_CAP`]. A projection without a checkpoint counts from the
/// start of the log.
const PROJECTION_LAG: &str = "\
SELECT n.name, (SELECT count(1) FROM (SELECT 1 FROM events e \
                 WHERE (e.tx, e.position) > (coalesce(c.tx, 0)::text::xid8, coalesce(c.position, 0)) \
                 ORDER BY e.tx, e.position LIMIT $2) l) \
  FROM unnest($1::text[]) AS n(name) LEFT JOIN checkpoints c ON c.name = n.name ORDER BY n.name";

/// Whether the request carries the metrics token (constant-time comparison), or no token is
/// configured.
fn authorized(req: &Request, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = req
        .header("authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    crate::providers::same(given.as_bytes(), token.as_bytes())
}

#[handler]
pub async fn endpoint(req: &Request, Data(state): Data<&AppState>) -> poem::Result<Response> {
    if !authorized(req, state.config.metrics_token()) {
        return Err(poem::Error::from_string(
            "Could not validate credentials",
            poem::http::StatusCode::UNAUTHORIZED,
        ));
    }
    let client = state.db().await?;
    let mut out = String::new();
    if state.relay {
        let lag = wearhouse_kafka::relay_lag(&client)
            .await
            .map_err(super::internal)?;
        out.push_str("# HELP wearhouse_relay_lag_entries Log entries not yet published to Kafka.\n# TYPE wearhouse_relay_lag_entries gauge\n");
        let _ = writeln!(out, "wearhouse_relay_lag_entries {lag}");
    }
    if let Some(brokers) = &state.kafka_brokers {
        let stored: Vec<(String, String, i32, i64)> = client
            .query(
                "SELECT projection, topic, partition, next_offset FROM kafka_offsets ORDER BY 1, 2, 3",
                &[],
            )
            .await
            .map_err(super::internal)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let lags = consumer_lag(brokers.clone(), stored).await;
        out.push_str("# HELP wearhouse_consumer_lag_messages Messages in a partition after the offset a Kafka projection worker stored.\n# TYPE wearhouse_consumer_lag_messages gauge\n");
        for (projection, topic, partition, lag) in lags {
            let _ = writeln!(
                out,
                "wearhouse_consumer_lag_messages{{projection=\"{projection}\",topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
            );
        }
    }
    let names: Vec<String> = wearhouse_projections::all()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    let rows = client
        .query(PROJECTION_LAG, &[&names, &LAG_CAP])
        .await
        .map_err(super::internal)?;
    let lags: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    out.push_str("# HELP wearhouse_projection_lag_entries Log entries after the projection's checkpoint.\n# TYPE wearhouse_projection_lag_entries gauge\n");
    for (name, lag) in &lags {
        let _ = writeln!(
            out,
            "wearhouse_projection_lag_entries{{projection=\"{name}\"}} {lag}"
        );
    }
    let jobs = crate::jobs::stats(&**client)
        .await
        .map_err(super::internal)?;
    render_jobs(&jobs, &mut out);
    state.metrics.render(&mut out);
    Ok(Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}

/// Jobs per kind and state, and the age of each kind's oldest pending job.
pub fn render_jobs(jobs: &[crate::jobs::KindStats], out: &mut String) {
    out.push_str(
        "# HELP wearhouse_jobs Durable jobs by kind and state.\n# TYPE wearhouse_jobs gauge\n",
    );
    for k in jobs {
        for (state, n) in crate::jobs::STATES.iter().zip(k.counts) {
            let _ = writeln!(
                out,
                "wearhouse_jobs{{kind=\"{}\",state=\"{state}\"}} {n}",
                escape(&k.kind)
            );
        }
    }
    out.push_str("# HELP wearhouse_jobs_oldest_pending_age_seconds Age of the oldest pending job of each kind (0: none pending).\n# TYPE wearhouse_jobs_oldest_pending_age_seconds gauge\n");
    for k in jobs {
        let _ = writeln!(
            out,
            "wearhouse_jobs_oldest_pending_age_seconds{{kind=\"{}\"}} {:.3}",
            escape(&k.kind),
            k.oldest_pending_secs
        );
    }
}

/// High watermark minus the stored next offset, per stored (projection, topic, partition).
/// Partitions the broker cannot answer for within two seconds are left out.
async fn consumer_lag(
    brokers: String,
    stored: Vec<(String, String, i32, i64)>,
) -> Vec<(String, String, i32, i64)> {
    use wearhouse_kafka::rdkafka::config::ClientConfig;
    use wearhouse_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
    if stored.is_empty() {
        return Vec::new();
    }
    tokio::task::spawn_blocking(move || {
        let Ok(consumer) = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create::<BaseConsumer>()
        else {
            return Vec::new();
        };
        stored
            .into_iter()
            .filter_map(|(projection, topic, partition, next)| {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, partition, std::time::Duration::from_secs(2))
                    .ok()?;
                Some((projection, topic, partition, (high - next).max(0)))
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let m = HttpMetrics::default();
        m.observe("GET", "/a", 200, 0.003);
        m.observe("GET", "/a", 200, 0.2);
        m.observe("GET", "/a", 200, 30.0);
        m.observe("FOO", "/a", 200, 0.1);
        m.observe("BAR", "/a", 200, 0.1);
        let mut out = String::new();
        m.render(&mut out);
        let line = |suffix: &str| {
            out.lines()
                .find(|l| l.contains(suffix))
                .unwrap_or_else(|| panic!("no line with {suffix} in\n{out}"))
                .rsplit_once(' ')
                .unwrap()
                .1
                .to_string()
        };
        assert_eq!(line("le=\"0.001\""), "0");
        assert_eq!(line("le=\"0.005\""), "1");
        assert_eq!(line("le=\"0.25\""), "2");
        assert_eq!(line("le=\"10\""), "2");
        assert_eq!(line("le=\"+Inf\""), "3");
        assert_eq!(
            line("wearhouse_http_requests_total{method=\"GET\",route=\"/a\",status=\"200\"}"),
            "3"
        );
        assert_eq!(
            line("wearhouse_http_requests_total{method=\"OTHER\",route=\"/a\",status=\"200\"}"),
            "2"
        );
        assert!(!out.contains("FOO"));
    }
}
