//! Raw payloads and sample batches through Kafka: an Apple export uploaded over HTTP reaches
//! `<prefix>.raw` (one message per stored chunk, reassembling to the original bytes) and
//! `<prefix>.samples` (the stored Arrow IPC bytes); `wearhouse replay --format raw|arrow`
//! writes the same bytes from Postgres and from the topics; `/metrics` reports the lags and
//! the requests. Needs WEARHOUSE_TEST_PG and WEARHOUSE_TEST_KAFKA.

use crate::common;
use crate::kafka_support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{create_user, import_export, settle, Server, TestDb};
use kafka_support::{reader, receive_until, Msg};
use reqwest::Method;
use sha2::{Digest, Sha256};
use wearhouse_kafka::KafkaConfig;

const SMALL: &str = include_str!("../fixtures/small_export.xml");

/// The small export with a comment big enough to span three 8 MiB chunks.
fn padded_export() -> Vec<u8> {
    let (decl, rest) = SMALL.split_once('\n').unwrap();
    let mut out = Vec::with_capacity(17 << 20);
    out.extend_from_slice(decl.as_bytes());
    // Varied bytes, so a chunk mix-up cannot go unnoticed; in 64 KiB comments, as one XML
    // node may not exceed WEARHOUSE_IMPORT_MAX_XML_EVENT_BYTES.
    for c in 0..(17usize << 4) {
        out.extend_from_slice(b"\n<!-- ");
        out.extend((0..(64usize << 10)).map(|i| b'a' + ((c + i) % 23) as u8));
        out.extend_from_slice(b" -->");
    }
    out.push(b'\n');
    out.extend_from_slice(rest.as_bytes());
    out
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn header(m: &Msg, name: &str) -> String {
    String::from_utf8(
        m.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name} missing"))
            .clone(),
    )
    .unwrap()
}

struct Cluster {
    server: Server,
    kafka: KafkaConfig,
}

/// A server that relays to topics of its own on the test broker.
async fn start() -> Cluster {
    let brokers = kafka_support::test_kafka();
    let db = TestDb::new().await;
    let prefix = db.name.clone();
    let env = [
        ("WEARHOUSE_KAFKA_BROKERS", brokers.as_str()),
        ("WEARHOUSE_KAFKA_TOPIC_PREFIX", prefix.as_str()),
        ("WEARHOUSE_KAFKA_PARTITIONS", "4"),
        ("WEARHOUSE_KAFKA_FLUSH_MARKERS", "true"),
        ("WEARHOUSE_METRICS_TOKEN", "metrics-token"),
    ];
    let server = Server::start_with(db, &env).await;
    let kafka = KafkaConfig {
        brokers: Some(brokers),
        topic_prefix: prefix,
        partitions: kafka_support::PARTITIONS,
        flush_markers: true,
        ..KafkaConfig::default()
    };
    Cluster { server, kafka }
}

impl Cluster {
    async fn wait_relayed(&self) {
        let pool = common::pool(&self.server.db.url);
        let client = pool.get().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lag = wearhouse_kafka::relay_lag(&client).await.unwrap();
            if lag == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "relay still {lag} behind");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn replay(&self, args: &[&str]) {
        let out = std::process::Command::new(common::bin())
            .arg("replay")
            .args(args)
            .env("DATABASE_URL", &self.server.db.url)
            .env(
                "WEARHOUSE_KAFKA_BROKERS",
                self.kafka.brokers.as_ref().unwrap(),
            )
            .env("WEARHOUSE_KAFKA_TOPIC_PREFIX", &self.kafka.topic_prefix)
            .env("WEARHOUSE_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "replay {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every file of `dir` by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// An empty directory under the temp dir, removed when the guard drops.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn to_str(&self) -> Option<&str> {
        self.0.to_str()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("wearhouse-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// Rows of an Arrow IPC stream, read the way any Arrow reader would.
fn arrow_rows(bytes: &[u8]) -> usize {
    arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .expect("an Arrow IPC stream")
        .map(|b| b.expect("record batch").num_rows())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_payloads_and_sample_batches_are_published_and_replay_byte_for_byte() {
    let c = start().await;
    let s = &c.server;
    let key = s.api_key().await;
    let (a, b) = (create_user(s, &key).await, create_user(s, &key).await);
    let small = SMALL.as_bytes().to_vec();
    let big = padded_export();
    let done = import_export(s, &key, &a, "export.xml", small.clone()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let done = import_export(s, &key, &b, "export.xml", big.clone()).await;
    assert_eq!(done["status"], "completed", "{done}");
    settle(&s.db).await;
    c.wait_relayed().await;
    let originals: HashMap<String, (&str, &Vec<u8>)> = [
        (sha256(&small), (a.as_str(), &small)),
        (sha256(&big), (b.as_str(), &big)),
    ]
    .into_iter()
    .collect();

    // The raw topic: one message per stored chunk (1 + 3), reassembling to the original.
    let topics = c.kafka.topics();
    let consumer = reader(&c.kafka, &topics.raw);
    let mut raw = Vec::new();
    receive_until(&consumer, &mut raw, Duration::from_secs(60), |r| {
        r.len() >= 4
    })
    .await;
    let mut by_sha: HashMap<String, Vec<&Msg>> = HashMap::new();
    for m in &raw {
        by_sha
            .entry(header(m, "wearhouse-sha256"))
            .or_default()
            .push(m);
    }
    assert_eq!(by_sha.len(), 2);
    for (sha, mut chunks) in by_sha {
        let (user, bytes) = originals[&sha];
        chunks.sort_by_key(|m| header(m, "wearhouse-chunk").parse::<i32>().unwrap());
        let count: usize = header(chunks[0], "wearhouse-chunks").parse().unwrap();
        assert_eq!(chunks.len(), count);
        assert_eq!(count, bytes.len().div_ceil(8 << 20));
        let mut joined = Vec::new();
        for (i, m) in chunks.iter().enumerate() {
            assert_eq!(m.key, user, "keyed by user");
            assert_eq!(header(m, "wearhouse-chunk"), i.to_string());
            assert_eq!(header(m, "wearhouse-offset"), joined.len().to_string());
            assert_eq!(header(m, "wearhouse-user"), user);
            assert_eq!(header(m, "wearhouse-provider"), "apple");
            assert_eq!(header(m, "wearhouse-kind"), "apple_health_export");
            assert_eq!(header(m, "wearhouse-content-type"), "application/xml");
            assert_eq!(header(m, "wearhouse-size"), bytes.len().to_string());
            assert!(header(m, "wearhouse-received-at").ends_with('Z'));
            joined.extend_from_slice(&m.value);
        }
        assert!(joined == *bytes, "payload {sha} reassembles byte for byte");
    }

    // The samples topic: each batch's stored Arrow bytes, with its headers.
    let pool = common::pool(&s.db.url);
    let client = pool.get().await.unwrap();
    let stored: HashMap<i64, (Vec<u8>, String, i32, String, i16)> = client
        .query(
            "SELECT id, arrow, user_id::text, count, data_source_id::text, series_type FROM sample_batches",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))))
        .collect();
    assert!(stored.len() >= 5, "the export has several series");
    let consumer = reader(&c.kafka, &topics.samples);
    let mut samples = Vec::new();
    receive_until(&consumer, &mut samples, Duration::from_secs(60), |r| {
        r.len() >= stored.len()
    })
    .await;
    for m in &samples {
        let id: i64 = header(m, "wearhouse-batch-id").parse().unwrap();
        let (arrow, user, count, source, series) = &stored[&id];
        assert!(m.value == *arrow, "batch {id}: bytes as stored");
        assert_eq!(&m.key, user);
        assert_eq!(&header(m, "wearhouse-user"), user);
        assert_eq!(header(m, "wearhouse-count"), count.to_string());
        assert_eq!(&header(m, "wearhouse-source"), source);
        assert_eq!(header(m, "wearhouse-series-type-id"), series.to_string());
        assert!(!header(m, "wearhouse-series-type").is_empty());
        assert!(header(m, "wearhouse-start") <= header(m, "wearhouse-end"));
        assert_eq!(arrow_rows(&m.value), *count as usize);
    }

    // Replay raw payload files: from Postgres for one user, from the topic for all.
    let dir = scratch("raw-pg");
    c.replay(&[
        "--format",
        "raw",
        "--out",
        dir.to_str().unwrap(),
        "--user",
        &b,
    ]);
    assert_eq!(files(&dir), BTreeMap::from([(sha256(&big), big.clone())]));
    let dir = scratch("raw-kafka");
    c.replay(&[
        "--source",
        "kafka",
        "--format",
        "raw",
        "--out",
        dir.to_str().unwrap(),
        "--provider",
        "apple",
    ]);
    assert_eq!(
        files(&dir),
        BTreeMap::from([(sha256(&big), big.clone()), (sha256(&small), small.clone())]),
        "the topic replays every payload byte for byte"
    );
    let dir = scratch("raw-none");
    c.replay(&[
        "--format",
        "raw",
        "--out",
        dir.to_str().unwrap(),
        "--provider",
        "garmin",
    ]);
    assert!(files(&dir).is_empty(), "provider filter");
    let dir = scratch("raw-kafka-user");
    c.replay(&[
        "--source",
        "kafka",
        "--format",
        "raw",
        "--out",
        dir.to_str().unwrap(),
        "--user",
        &a,
    ]);
    assert_eq!(
        files(&dir),
        BTreeMap::from([(sha256(&small), small.clone())])
    );

    // Replay Arrow files: one per batch, the stored bytes, from both sources.
    let want: BTreeMap<String, Vec<u8>> = stored
        .iter()
        .map(|(id, v)| (format!("{id}.arrow"), v.0.clone()))
        .collect();
    for source in ["postgres", "kafka"] {
        let dir = scratch("arrow");
        c.replay(&[
            "--source",
            source,
            "--format",
            "arrow",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(files(&dir), want, "arrow files from {source}");
    }
    let dir = scratch("arrow-user");
    c.replay(&[
        "--format",
        "arrow",
        "--out",
        dir.to_str().unwrap(),
        "--user",
        &a,
    ]);
    let of_a = stored.values().filter(|v| v.1 == a).count();
    assert_eq!(files(&dir).len(), of_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_lags_and_requests() {
    let c = start().await;
    let s = &c.server;
    let key = s.api_key().await;
    let user = create_user(s, &key).await;
    create_user(s, &key).await;
    import_export(s, &key, &user, "export.xml", SMALL.as_bytes().to_vec()).await;
    settle(&s.db).await;
    c.wait_relayed().await;
    let r = s.req(Method::GET, "/no/such/route").send().await.unwrap();
    assert_eq!(r.status(), 404);

    let r = s
        .req(Method::GET, "/metrics")
        .bearer_auth("metrics-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("wearhouse_relay_lag_entries"), 0.0);
    for name in ["samples", "users", "imports", "workouts"] {
        assert_eq!(
            value(&format!(
                "wearhouse_projection_lag_entries{{projection=\"{name}\"}}"
            )),
            0.0
        );
    }
    let users = "method=\"POST\",route=\"/api/v1/users\",status=\"201\"";
    assert_eq!(
        value(&format!("wearhouse_http_requests_total{{{users}}}")),
        2.0
    );
    assert_eq!(
        value(&format!(
            "wearhouse_http_request_duration_seconds_count{{{users}}}"
        )),
        2.0
    );
    assert_eq!(
        value(&format!(
            "wearhouse_http_request_duration_seconds_bucket{{{users},le=\"+Inf\"}}"
        )),
        2.0
    );
    assert!(
        value(&format!(
            "wearhouse_http_request_duration_seconds_sum{{{users}}}"
        )) > 0.0
    );
    assert!(text.contains("# TYPE wearhouse_http_request_duration_seconds histogram"));
    // Path parameters stay patterns, so a user id never becomes a label.
    assert!(!text.contains(&user), "{text}");
    assert_eq!(
        value("wearhouse_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"),
        1.0
    );

    // A projection behind its checkpoint shows as lag.
    let pool = common::pool(&s.db.url);
    pool.get()
        .await
        .unwrap()
        .execute(
            "UPDATE checkpoints SET tx = 0, position = 0 WHERE name = 'samples'",
            &[],
        )
        .await
        .unwrap();
    let text = s
        .req(Method::GET, "/metrics")
        .bearer_auth("metrics-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lag: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("wearhouse_projection_lag_entries{projection=\"samples\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(lag > 0.0, "{text}");
}
