//! `wearhouse bench …`: performance figures, each printed as one line of `key=value` pairs.
//! Benchmarks run in a scratch database (`<database>_bench`) so they never touch real data.

use std::str::FromStr;
use std::time::Instant;

use serde_json::json;
use uuid::Uuid;

use crate::config::DbConfig;
use wearhouse_log::{append, NewEvent};

/// Creates (afresh) and migrates the scratch database next to the configured one.
pub async fn scratch_pool(db: &DbConfig) -> anyhow::Result<deadpool_postgres::Pool> {
    Ok(scratch(db).await?.0)
}

/// The scratch database's pool and URL.
pub async fn scratch(db: &DbConfig) -> anyhow::Result<(deadpool_postgres::Pool, String)> {
    let url = crate::db::resolve_url(db)?;
    let mut cfg = tokio_postgres::Config::from_str(&url)?;
    let name = format!("{}_bench", cfg.get_dbname().unwrap_or("wearhouse"));
    let (admin, _) = crate::db::pool(&url, 1)?;
    let client = admin.get().await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    cfg.dbname(&name);
    let manager = deadpool_postgres::Manager::new(cfg.clone(), tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(4)
        .build()?;
    crate::db::migrate(&pool, db.timescaledb != "off").await?;
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
    Ok((pool, format!("{base}/{name}")))
}

fn event(aggregate: &str, sequence: i64) -> NewEvent {
    NewEvent {
        aggregate_type: "Bench".into(),
        aggregate_id: aggregate.into(),
        sequence,
        event_type: "BenchRecorded".into(),
        event_version: "1".into(),
        payload: wearhouse_log::to_payload(
            &json!({ "type": "BenchRecorded", "value": sequence, "note": "a payload of realistic size for a small domain event" }),
        ),
        metadata: json!({ "actor": "bench" }),
        user_id: None,
    }
}

/// Appends of one event each (one transaction per append), then appends of 100 events each.
pub async fn events(db: &DbConfig) -> anyhow::Result<()> {
    let pool = scratch_pool(db).await?;
    let client = pool.get().await?;
    // Warm up the connection and caches.
    for i in 0..50 {
        append(&client, &[event(&format!("warm-{i}"), 1)]).await?;
    }
    let singles = 3000;
    let started = Instant::now();
    for _ in 0..singles {
        append(&client, &[event(&Uuid::new_v4().to_string(), 1)]).await?;
    }
    let single_rate = singles as f64 / started.elapsed().as_secs_f64();
    let batches = 1000;
    let started = Instant::now();
    for _ in 0..batches {
        let id = Uuid::new_v4().to_string();
        let batch: Vec<NewEvent> = (1..=100).map(|s| event(&id, s)).collect();
        append(&client, &batch).await?;
    }
    let batched_rate = (batches * 100) as f64 / started.elapsed().as_secs_f64();
    println!(
        "appends_per_s_single={:.0} appends_per_s_batched={:.0}",
        single_rate, batched_rate
    );
    Ok(())
}

/// Peak resident memory of this process, from the kernel's high-water mark.
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

#[derive(clap::Parser)]
struct ServeArgs {
    #[command(flatten)]
    serve: crate::config::ServeConfig,
}

/// Generates an export of `size` bytes, uploads it over HTTP to an in-process server on a scratch
/// database, and waits until the import is complete and every projection has caught up.
pub async fn apple_import(db: &DbConfig, size: u64) -> anyhow::Result<()> {
    use crate::ingest::apple;
    use clap::Parser;
    let dir = db.home.join("bench");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("apple-{size}-seed1.xml"));
    if !file.exists() {
        let tmp = file.with_extension("partial");
        apple::generate(std::fs::File::create(&tmp)?, 1, size)?;
        std::fs::rename(&tmp, &file)?;
    }
    // Parser alone (what the file costs to read), on this core.
    let started = Instant::now();
    let report = {
        let f = file.clone();
        tokio::task::spawn_blocking(move || {
            apple::parse(apple::open_export(&f)?, &mut apple::NullSink)
        })
        .await??
    };
    let records = report.counts.elements();
    let parse_rate = records as f64 / started.elapsed().as_secs_f64();

    let (_, url) = scratch(db).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bind = format!("127.0.0.1:{port}");
    let cfg = ServeArgs::parse_from(["serve", "--bind", &bind]).serve;
    let mut scratch_db = db.clone();
    scratch_db.database_url = Some(url);
    let platform =
        crate::serve::start(&scratch_db, cfg, &wearhouse_kafka::KafkaConfig::default()).await?;
    let state = platform.state.clone();
    let key = crate::serve::system_api_key(&state, "bench").await?;
    tokio::spawn(platform.serve());
    let http = reqwest::Client::new();
    let base = format!("http://{bind}/api/v1");
    wait_ready(&http, &bind).await;
    let user: serde_json::Value = http
        .post(format!("{base}/users"))
        .header("X-Open-Wearables-API-Key", &key)
        .json(&json!({"first_name": "Bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let user_id = user["id"].as_str().unwrap_or_default().to_string();

    let started = Instant::now();
    let len = std::fs::metadata(&file)?.len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::open(&file).await?,
        1 << 20,
    ));
    let part = reqwest::multipart::Part::stream_with_length(body, len).file_name("export.xml");
    let accepted: serde_json::Value = http
        .post(format!("{base}/users/{user_id}/import/apple/xml/direct"))
        .header("X-Open-Wearables-API-Key", &key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let task = accepted["task_id"].as_str().unwrap_or_default().to_string();
    loop {
        let status: serde_json::Value = http
            .get(format!("{base}/users/{user_id}/imports/{task}"))
            .header("X-Open-Wearables-API-Key", &key)
            .send()
            .await?
            .json()
            .await?;
        match status["status"].as_str() {
            Some("completed") => break,
            Some("failed") => anyhow::bail!("import failed: {}", status["error"]),
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let imported = started.elapsed().as_secs_f64();
    while !wearhouse_projections::caught_up(&state.pool.get().await?).await? {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Read before the floor, which holds the samples in memory: the figure is the import's.
    let peak_rss = peak_rss_mb();
    eprintln!("upload+import {imported:.2}s, projections caught up at {elapsed:.2}s");
    let floor = copy_floor(&state.pool, state.timescaledb).await?;
    eprintln!(
        "copy floor: {} sample rows ({} MB binary) copied in {:.2}s",
        floor.rows,
        floor.bytes >> 20,
        floor.seconds
    );
    let end_to_end = records as f64 / elapsed;
    // The same records over the time their samples alone take to write: the ratio is the
    // share of that floor the whole pipeline reaches, whatever the machine's speed.
    let floor_rate = records as f64 / floor.seconds;
    println!(
        "end_to_end_records_per_s={:.0} parse_records_per_s={:.0} copy_floor_records_per_s={:.0} ratio_to_floor={:.3} peak_rss_mb={} records={}",
        end_to_end,
        parse_rate,
        floor_rate,
        end_to_end / floor_rate,
        peak_rss,
        records
    );
    Ok(())
}

/// What writing the import's samples costs at the least.
struct CopyFloor {
    rows: u64,
    bytes: usize,
    seconds: f64,
}

/// The floor of the import pipeline: the samples it wrote, binary-COPY'd into a fresh, empty
/// table of the same columns, types and indexes (a hypertable with the same chunk interval when
/// TimescaleDB is on), with nothing else: no parsing, no events, no projections. The rows are
/// read out first and only the COPY into the new table is timed; the table is dropped after.
async fn copy_floor(
    pool: &deadpool_postgres::Pool,
    timescaledb: bool,
) -> anyhow::Result<CopyFloor> {
    use futures::{SinkExt, TryStreamExt};
    let client = pool.get().await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_copy_floor;
             CREATE TABLE bench_copy_floor (LIKE samples INCLUDING ALL)",
        )
        .await?;
    if timescaledb {
        let interval: Option<String> = client
            .query_opt(
                "SELECT time_interval::text FROM timescaledb_information.dimensions
                 WHERE hypertable_name = 'samples' AND column_name = 'time'",
                &[],
            )
            .await?
            .map(|r| r.get(0));
        let interval = interval.ok_or_else(|| anyhow::anyhow!("samples is not a hypertable"))?;
        client
            .execute(
                "SELECT create_hypertable('bench_copy_floor', by_range('time', $1::text::interval))",
                &[&interval],
            )
            .await?;
    }
    let out = client
        .copy_out("COPY (SELECT * FROM samples) TO STDOUT (FORMAT binary)")
        .await?;
    let chunks: Vec<bytes::Bytes> = out.try_collect().await?;
    let bytes = chunks.iter().map(|c| c.len()).sum();
    let started = Instant::now();
    let sink = client
        .copy_in("COPY bench_copy_floor FROM STDIN (FORMAT binary)")
        .await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.feed(chunk).await?;
    }
    let rows = sink.as_mut().finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    client.batch_execute("DROP TABLE bench_copy_floor").await?;
    Ok(CopyFloor {
        rows,
        bytes,
        seconds,
    })
}

fn user_event(user: Uuid, sequence: i64) -> NewEvent {
    NewEvent {
        user_id: Some(user),
        aggregate_id: user.to_string(),
        ..event("", sequence)
    }
}

/// Relay figures through the configured broker, in a scratch database and on fresh topics:
/// throughput draining a backlog of 50 000 entries, then the lag from a writer's commit to a
/// consumer receiving the entry while the writer commits 200 transactions of 5 entries per
/// second for 10 s.
pub async fn relay(db: &DbConfig, kafka: &wearhouse_kafka::KafkaConfig) -> anyhow::Result<()> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use wearhouse_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
    use wearhouse_kafka::rdkafka::{Message, Offset, TopicPartitionList};

    kafka.brokers()?;
    let (pool, url) = scratch(db).await?;
    let pg: tokio_postgres::Config = url.parse()?;
    let mut kafka = kafka.clone();
    kafka.topic_prefix = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let topics = kafka.topics();
    let users: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    let mut sequences = vec![0i64; users.len()];
    let mut next_batch = |n: usize, round: usize| -> Vec<NewEvent> {
        (0..n)
            .map(|i| {
                let u = (round * n + i) % users.len();
                sequences[u] += 1;
                user_event(users[u], sequences[u])
            })
            .collect()
    };

    // Backlog: measured from relay start until its checkpoint reaches the last entry.
    let client = pool.get().await?;
    let backlog = 50_000;
    let mut last = None;
    for round in 0..backlog / 100 {
        last = append(&client, &next_batch(100, round)).await?;
    }
    let last = last.expect("the backlog is not empty");
    let mut bytes = 0usize;
    let mut cursor = wearhouse_log::Cursor::START;
    loop {
        let entries = wearhouse_log::read::read_after(&client, cursor, 5000).await?;
        let Some(e) = entries.last() else { break };
        cursor = e.cursor;
        for e in &entries {
            for m in wearhouse_kafka::messages_for(&topics, e) {
                bytes += m.value.len() + m.key.len();
            }
        }
    }
    wearhouse_kafka::relay::ensure_topics(&kafka).await?;
    let relay = wearhouse_kafka::Relay::new(pool.clone(), kafka.clone());
    let mut progress = relay.progress();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(relay.clone().run(Some(pg), stop_rx));
    tokio::time::timeout(Duration::from_secs(300), progress.wait_for(|c| *c >= last)).await??;
    let drain = started.elapsed().as_secs_f64();

    // Steady load: a consumer positioned at the end of every partition notes when each
    // transaction's last entry arrives.
    let committed: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let consumer: StreamConsumer = kafka.reader_config()?.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..kafka.partitions {
        tpl.add_partition_offset(&topics.events, p, Offset::End)?;
    }
    consumer.assign(&tpl)?;
    // Give the consumer time to resolve the end offsets before the load starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lags: Arc<Mutex<Vec<f64>>> = Arc::default();
    let reader = {
        let (committed, lags) = (committed.clone(), lags.clone());
        tokio::spawn(async move {
            while let Ok(m) = consumer.recv().await {
                let Ok(e) = wearhouse_kafka::envelope::decode(m.payload().unwrap_or_default())
                else {
                    continue;
                };
                if let Some(at) = committed.lock().expect("lock").get(&e.position) {
                    lags.lock()
                        .expect("lock")
                        .push(at.elapsed().as_secs_f64() * 1000.0);
                }
            }
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let transactions = 2000;
    for round in 0..transactions {
        tick.tick().await;
        if let Some(c) = append(&client, &next_batch(5, round)).await? {
            committed
                .lock()
                .expect("lock")
                .insert(c.position, Instant::now());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while lags.lock().expect("lock").len() < transactions && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader.abort();
    let _ = stop.send(true);
    let _ = task.await;
    let mut lags = lags.lock().expect("lock").clone();
    anyhow::ensure!(
        lags.len() * 10 >= transactions * 9,
        "only {} of {transactions} transactions reached the consumer",
        lags.len()
    );
    lags.sort_by(f64::total_cmp);
    let pct = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    println!(
        "relay_entries_per_s={:.0} relay_mb_per_s={:.1} lag_p50_ms={:.1} lag_p99_ms={:.1}",
        backlog as f64 / drain,
        bytes as f64 / drain / 1e6,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}

/// The listener starts in a spawned task: waits (up to 5 s) until it answers.
async fn wait_ready(http: &reqwest::Client, bind: &str) {
    for _ in 0..200 {
        if http.get(format!("http://{bind}/")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// One generated sample: time, source, series, value, end, daily-total flag.
type BenchRow = (
    chrono::DateTime<chrono::Utc>,
    Uuid,
    i16,
    f64,
    chrono::DateTime<chrono::Utc>,
    Option<bool>,
);

/// p99 of a set of durations, in milliseconds.
fn p99_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return 0.0;
    }
    let i = ((samples.len() as f64) * 0.99).ceil() as usize;
    samples[i.saturating_sub(1).min(samples.len() - 1)]
}

/// Loads a user with `samples` generated samples (watch heart rate, watch and phone steps
/// that overlap, active and basal energy, a night of staged sleep per day) into a scratch
/// database with binary COPY, builds the merged read models for them, then measures the API
/// over HTTP against an in-process server: p99 latencies of `/timeseries` (one day of heart
/// rate), `/summaries/activity` and `/summaries/sleep` (30 days each), and the throughput of a
/// concurrent mix of the three.
pub async fn queries(db: &DbConfig, samples: u64, requests: usize) -> anyhow::Result<()> {
    use chrono::{DateTime, Duration, Utc};
    use clap::Parser;
    use futures::pin_mut;
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    use wearhouse_domain::records::{DataSourceInfo, SleepStageInterval};

    let (pool, url) = scratch(db).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bind = format!("127.0.0.1:{port}");
    let cfg = ServeArgs::parse_from(["serve", "--bind", &bind]).serve;
    let mut scratch_db = db.clone();
    scratch_db.database_url = Some(url);
    let platform =
        crate::serve::start(&scratch_db, cfg, &wearhouse_kafka::KafkaConfig::default()).await?;
    let state = platform.state.clone();
    let key = crate::serve::system_api_key(&state, "bench").await?;
    tokio::spawn(platform.serve());
    let http = reqwest::Client::new();
    let base = format!("http://{bind}/api/v1");
    wait_ready(&http, &bind).await;
    let user: serde_json::Value = http
        .post(format!("{base}/users"))
        .header("X-Open-Wearables-API-Key", &key)
        .json(&json!({"first_name": "Bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let user_id: Uuid = user["id"].as_str().unwrap_or_default().parse()?;

    // Read-model rows written directly: this measures queries, not ingestion.
    let watch = DataSourceInfo::id_for(user_id, "apple", Some("Watch6,1"), Some("Bench Watch"));
    let phone = DataSourceInfo::id_for(user_id, "apple", Some("iPhone14,2"), Some("Bench iPhone"));
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO data_sources (id, user_id, provider, device_model, source, device_type, original_source_name) VALUES \
             ($1, $3, 'apple', 'Watch6,1', 'Bench Watch', 'watch', 'Bench Watch'), \
             ($2, $3, 'apple', 'iPhone14,2', 'Bench iPhone', 'phone', 'Bench iPhone')",
            &[&watch, &phone, &user_id],
        )
        .await?;
    client
        .execute(
            "INSERT INTO personal_records (user_id, birth_date) VALUES ($1, '1988-06-14')",
            &[&user_id],
        )
        .await?;

    // Per day: heart rate every 15 s, watch steps and energy each waking minute, phone steps
    // every 10 minutes (overlapping the watch), basal energy hourly.
    let per_day: u64 = 5760 + 960 + 96 + 960 + 24;
    let days = samples.div_ceil(per_day).max(1) as i64;
    let first_day = Utc::now().date_naive() - Duration::days(days);
    let offset: i16 = -480;
    let started = Instant::now();
    let sink = client
        .copy_in(
            "COPY samples (time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total) FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TIMESTAMPTZ,
            Type::UUID,
            Type::UUID,
            Type::INT2,
            Type::FLOAT8,
            Type::INT2,
            Type::TIMESTAMPTZ,
            Type::BOOL,
        ],
    );
    pin_mut!(writer);
    let mut written: u64 = 0;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 1000) as f64 / 1000.0
    };
    let mut sessions: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>, serde_json::Value)> = Vec::new();
    'days: for d in 0..days {
        // Local midnight at UTC-8 is 08:00 UTC.
        let t0 = (first_day + Duration::days(d))
            .and_hms_opt(8, 0, 0)
            .expect("valid")
            .and_utc();
        let mut rows: Vec<BenchRow> = Vec::with_capacity(per_day as usize);
        for i in 0..5760 {
            let t = t0 + Duration::seconds(i * 15);
            rows.push((t, watch, 1, 55.0 + 60.0 * next(), t, None));
        }
        for m in 0..960 {
            let t = t0 + Duration::minutes(7 * 60 + m);
            let e = t + Duration::minutes(1);
            rows.push((t, watch, 80, (80.0 * next()).round(), e, Some(false)));
            rows.push((t, watch, 81, 3.0 * next(), e, Some(false)));
        }
        for k in 0..96 {
            let t = t0 + Duration::minutes(7 * 60 + k * 10);
            rows.push((
                t,
                phone,
                80,
                (600.0 * next()).round(),
                t + Duration::minutes(10),
                Some(false),
            ));
        }
        for h in 0..24 {
            let t = t0 + Duration::hours(h);
            rows.push((t, watch, 82, 65.0, t + Duration::hours(1), Some(false)));
        }
        for (t, ds, st, v, e, daily) in rows {
            writer
                .as_mut()
                .write(&[&t, &user_id, &ds, &st, &v, &Some(offset), &Some(e), &daily])
                .await?;
            written += 1;
            if written >= samples {
                break 'days;
            }
        }
        // 23:00-07:00 local, light/deep/REM cycles.
        let start = t0 - Duration::hours(1);
        let stages: Vec<SleepStageInterval> = (0..16)
            .map(|i| SleepStageInterval {
                stage: ["light", "deep", "light", "rem"][i % 4].into(),
                start: start + Duration::minutes(30 * i as i64),
                end: start + Duration::minutes(30 * (i as i64 + 1)),
            })
            .collect();
        sessions.push((
            wearhouse_domain::records::record_id(&[
                &watch.to_string(),
                "sleep",
                &start.to_rfc3339(),
            ]),
            start,
            start + Duration::hours(8),
            serde_json::to_value(&stages)?,
        ));
    }
    writer.finish().await?;
    for (id, start, end, stages) in &sessions {
        client
            .execute(
                "INSERT INTO sleep_sessions (id, user_id, data_source_id, start_time, end_time, zone_offset, is_nap, \
                   awake_minutes, light_minutes, deep_minutes, rem_minutes, asleep_minutes, in_bed_minutes, stages) \
                 VALUES ($1, $2, $3, $4, $5, $6, false, 0, 240, 120, 120, 480, 480, $7)",
                &[id, &user_id, &watch, start, end, &offset, stages],
            )
            .await?;
    }
    client.batch_execute("ANALYZE samples").await?;
    let load_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    wearhouse_projections::daily_rollup::recompute_user_between(
        &client,
        user_id,
        first_day - Duration::days(1),
        first_day + Duration::days(days + 1),
    )
    .await?;
    wearhouse_projections::sleep_nights::recompute(
        &client,
        user_id,
        first_day - Duration::days(1),
        first_day + Duration::days(days + 1),
    )
    .await?;
    let rollup_s = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {written} samples over {days} days in {load_s:.0} s; daily rollup and nights built in {rollup_s:.0} s"
    );

    let day = |i: usize| first_day + Duration::days((i as i64 * 7919) % (days - 31).max(1));
    let get = |path: String| {
        let http = http.clone();
        let key = key.clone();
        async move {
            let t = Instant::now();
            let r = http
                .get(path)
                .header("X-Open-Wearables-API-Key", key)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "status {}", r.status());
            r.bytes().await?;
            Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64() * 1000.0)
        }
    };
    let ts = |i: usize| {
        let d = day(i);
        format!(
            "{base}/users/{user_id}/timeseries?start_time={d}T08:00:00Z&end_time={d}T20:00:00Z&types=heart_rate&limit=100"
        )
    };
    let act = |i: usize| {
        let d = day(i);
        format!(
            "{base}/users/{user_id}/summaries/activity?start_date={d}&end_date={}",
            d + Duration::days(30)
        )
    };
    let slp = |i: usize| {
        let d = day(i);
        format!(
            "{base}/users/{user_id}/summaries/sleep?start_date={d}&end_date={}",
            d + Duration::days(30)
        )
    };
    // Warm-up, then each kind alone.
    for i in 0..10 {
        get(ts(i)).await?;
        get(act(i)).await?;
        get(slp(i)).await?;
    }
    let mut figures = Vec::new();
    for kind in [&ts as &dyn Fn(usize) -> String, &act, &slp] {
        let mut times = Vec::with_capacity(requests);
        for i in 0..requests {
            times.push(get(kind(i + 100)).await?);
        }
        figures.push(p99_ms(times));
    }
    // Throughput: 8 clients, the three kinds in turn, for a fixed number of requests.
    let started = Instant::now();
    let total = requests * 3;
    let mut tasks = Vec::new();
    for c in 0..8 {
        let urls: Vec<String> = (0..total / 8)
            .map(|i| {
                let n = c * 1000 + i;
                match n % 3 {
                    0 => ts(n),
                    1 => act(n),
                    _ => slp(n),
                }
            })
            .collect();
        let (http, key) = (http.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for u in urls {
                let r = http
                    .get(u)
                    .header("X-Open-Wearables-API-Key", &key)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "status {}", r.status());
                r.bytes().await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rps = (total / 8 * 8) as f64 / started.elapsed().as_secs_f64();
    println!(
        "timeseries_p99_ms={:.1} activity_summary_p99_ms={:.1} sleep_summary_p99_ms={:.1} requests_per_s={:.0}",
        figures[0], figures[1], figures[2], rps
    );
    Ok(())
}

#[poem::handler]
fn webhook_sink(
    counter: poem::web::Data<&std::sync::Arc<std::sync::atomic::AtomicU64>>,
) -> poem::http::StatusCode {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    poem::http::StatusCode::NO_CONTENT
}

/// Outgoing webhooks: a loopback receiver, one endpoint for every user, workouts committed to
/// the log at `rate` per second for `seconds` (round-robin over `users`, so deliveries spread
/// over as many lanes), then deliveries per second and commit-to-delivery latencies.
pub async fn webhooks(db: &DbConfig, rate: u64, seconds: u64, users: usize) -> anyhow::Result<()> {
    use clap::Parser;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use wearhouse_domain::records::{DataEvent, WorkoutRecord};
    use wearhouse_domain::webhook_endpoint::{WebhookEndpoint, WebhookEndpointCommand};

    let (pool, url) = scratch(db).await?;
    let counter = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink = format!("http://{}/hook", listener.local_addr()?);
    let app = poem::EndpointExt::data(
        poem::Route::new().at("/hook", poem::post(webhook_sink)),
        counter.clone(),
    );
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bind = format!("127.0.0.1:{port}");
    let cfg =
        ServeArgs::parse_from(["serve", "--bind", &bind, "--webhooks-allow-private", "true"]).serve;
    let mut scratch_db = db.clone();
    scratch_db.database_url = Some(url);
    let platform =
        crate::serve::start(&scratch_db, cfg, &wearhouse_kafka::KafkaConfig::default()).await?;
    let state = platform.state.clone();
    let id = Uuid::new_v4();
    let secret = crate::webhooks::signing::new_secret();
    state
        .commands
        .execute::<WebhookEndpoint>(
            &id.to_string(),
            WebhookEndpointCommand::Create {
                id,
                url: sink,
                description: Some("bench".into()),
                user_id: None,
                filter_types: None,
                sealed_secret: state
                    .providers
                    .sealer
                    .seal(&secret, &crate::webhooks::secret_context(id)),
                at: chrono::Utc::now(),
            },
            &wearhouse_log::Actor {
                kind: "system",
                id: "bench".into(),
                request_id: None,
            },
            None,
            Some("webhook_endpoints"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the endpoint: {e}"))?;
    tokio::spawn(platform.serve());
    wait_ready(&reqwest::Client::new(), &bind).await;

    let user_ids: Vec<Uuid> = (0..users.max(1)).map(|_| Uuid::new_v4()).collect();
    let mut sequences = vec![0i64; user_ids.len()];
    let total = rate * seconds;
    let per_tick = (rate / 100).max(1);
    let started = Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
    let client = pool.get().await?;
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let mut events = Vec::new();
        for _ in 0..per_tick.min(total - sent) {
            let u = (sent as usize) % user_ids.len();
            sequences[u] += 1;
            let now = chrono::Utc::now();
            let event = DataEvent::WorkoutsRecorded {
                user_id: user_ids[u],
                workouts: vec![WorkoutRecord {
                    id: Uuid::new_v4(),
                    data_source_id: user_ids[u],
                    workout_type: "running".into(),
                    start: now - chrono::TimeDelta::minutes(30),
                    end: now,
                    zone_offset: Some(60),
                    duration_s: Some(1800.0),
                    stats: [("distance_m".to_string(), 5000.0)].into(),
                    metadata: Default::default(),
                    laps: vec![],
                }],
            };
            events.push(NewEvent {
                aggregate_type: DataEvent::AGGREGATE_TYPE.into(),
                aggregate_id: format!("bench-{}", user_ids[u]),
                sequence: sequences[u],
                event_type: event.event_type().into(),
                event_version: "1".into(),
                payload: wearhouse_log::to_payload(&event),
                metadata: json!({"actor": "bench"}),
                user_id: Some(user_ids[u]),
            });
            sent += 1;
        }
        append(&client, &events).await?;
    }
    // What the producer reached: on a loaded machine it can fall short of `rate`, and the
    // deliveries cannot go faster than the commits.
    let commits_per_s = total as f64 / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    while counter.load(Ordering::Relaxed) < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {total} deliveries within 5 minutes",
            counter.load(Ordering::Relaxed)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let row = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) \
               FROM (SELECT extract(epoch FROM delivered_at - committed_at) * 1000 AS ms \
                       FROM webhook_deliveries WHERE state = 'succeeded') d",
            &[],
        )
        .await?;
    let (p50, p99): (Option<f64>, Option<f64>) = (row.get(0), row.get(1));
    println!(
        "deliveries_per_s={:.0} commit_to_delivery_p50_ms={:.0} commit_to_delivery_p99_ms={:.0} commits_per_s={:.0}",
        total as f64 / elapsed,
        p50.unwrap_or(0.0),
        p99.unwrap_or(0.0),
        commits_per_s
    );
    Ok(())
}

/// `users` concurrent SDK users each post `batches` sync batches of `records` records (one day
/// each: mixed metrics, a night of sleep stages, a workout) over HTTP to an in-process server
/// on a scratch database, one request at a time per user as an app does; then waits until
/// every batch is mapped and every read model has caught up. Platforms alternate between
/// users (HealthKit, Health Connect, Samsung Health).
pub async fn sdk_sync(
    db: &DbConfig,
    users: usize,
    batches: usize,
    records: usize,
) -> anyhow::Result<()> {
    use crate::ingest::sdk::{generate, Platform};
    use clap::Parser;
    let (_, url) = scratch(db).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bind = format!("127.0.0.1:{port}");
    let cfg = ServeArgs::parse_from(["serve", "--bind", &bind]).serve;
    let mut scratch_db = db.clone();
    scratch_db.database_url = Some(url);
    let platform =
        crate::serve::start(&scratch_db, cfg, &wearhouse_kafka::KafkaConfig::default()).await?;
    let state = platform.state.clone();
    let key = crate::serve::system_api_key(&state, "bench").await?;
    tokio::spawn(platform.serve());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(users)
        .build()?;
    let base = format!("http://{bind}/api/v1");
    wait_ready(&http, &bind).await;
    let mut ids = Vec::with_capacity(users);
    for _ in 0..users {
        let user: serde_json::Value = http
            .post(format!("{base}/users"))
            .header("X-Open-Wearables-API-Key", &key)
            .json(&json!({"first_name": "Bench"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ids.push(user["id"].as_str().unwrap_or_default().to_string());
    }
    // Days in the recent past, so every record is plausible.
    let start = (chrono::Utc::now() - chrono::Duration::days(batches as i64 + 2))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (n, user) in ids.into_iter().enumerate() {
        let http = http.clone();
        let key = key.clone();
        let url = format!("{base}/sdk/users/{user}/sync");
        let platform = Platform::ALL[n % Platform::ALL.len()];
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(batches);
            for day in 0..batches {
                // Built per request (as an app serializes each batch): memory stays flat.
                let body = serde_json::to_vec(&generate::batch(
                    platform,
                    n as u64,
                    start,
                    day as i64,
                    records,
                    [-300, 60, 120, 540][n % 4],
                ))?;
                let sent = Instant::now();
                let r = http
                    .post(&url)
                    .header("X-Open-Wearables-API-Key", &key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = r.status();
                let _ = r.bytes().await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(status.as_u16() == 202, "sync answered {status}");
            }
            Ok::<Vec<f64>, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let posted = started.elapsed().as_secs_f64();
    let client = state.pool.get().await?;
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE state IN ('pending', 'running')), \
                        count(*) FILTER (WHERE state = 'failed') \
                 FROM jobs WHERE kind = $1",
                &[&crate::services::sdk::KIND],
            )
            .await?;
        let (open, failed): (i64, i64) = (row.get(0), row.get(1));
        anyhow::ensure!(failed == 0, "{failed} SDK sync jobs failed");
        if open == 0 && wearhouse_projections::caught_up(&client).await? {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = (users * batches * records) as f64;
    eprintln!(
        "{} requests posted in {posted:.2}s, every read model caught up at {elapsed:.2}s",
        latencies.len()
    );
    println!(
        "sdk_records_per_s={:.0} request_p99_ms={:.1} peak_rss_mb={}",
        total / elapsed,
        p99_ms(latencies),
        peak_rss_mb()
    );
    Ok(())
}
