//! Projection workers as a consumer group: two workers share the partitions, one is killed
//! mid-run and restarted, and the read model ends equal to a fresh rebuild from Postgres.

use crate::kafka_support;

use std::time::{Duration, Instant};

use kafka_support::*;
use tokio::sync::watch;
use wearhouse_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use wearhouse_kafka::Relay;

async fn users_snapshot(env: &Env) -> Vec<String> {
    env.client()
        .await
        .query("SELECT u::text FROM users u ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits until every projection's stored offset reached each partition's end.
async fn wait_applied(env: &Env, timeout: Duration) {
    let consumer: BaseConsumer = env.kafka.reader_config().unwrap().create().unwrap();
    let topic = env.kafka.topics().events;
    let deadline = Instant::now() + timeout;
    loop {
        let mut done = true;
        for p in 0..PARTITIONS {
            let (_, high) = consumer
                .fetch_watermarks(&topic, p, Duration::from_secs(5))
                .unwrap();
            let rows = env
                .client()
                .await
                .query(
                    "SELECT count(*), coalesce(min(next_offset), 0) FROM kafka_offsets WHERE topic = $1 AND partition = $2",
                    &[&topic, &p],
                )
                .await
                .unwrap();
            let (n, min): (i64, i64) = (rows[0].get(0), rows[0].get(1));
            if high > 0 && (n < 3 || min < high) {
                done = false;
            }
        }
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "workers did not catch up within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body of /metrics once the server answers.
async fn wait_metrics(http: &reqwest::Client, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).bearer_auth("metrics-token").send().await {
            return r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_resumes_and_read_model_equals_rebuild() {
    let env = setup().await;
    let client = env.client().await;
    let mut writer = Writer::new(40);
    for _ in 0..60 {
        writer.write(&client, 20).await;
    }
    let relay = Relay::new(env.pool.clone(), env.kafka.clone());
    let (stop, stop_rx) = watch::channel(false);
    let relay_task = tokio::spawn(relay.run(Some(env.pg.clone()), stop_rx));
    env.wait_relayed(Duration::from_secs(60)).await;

    let mut a = env.spawn(&["project", "--source", "kafka"], "kafka_worker_a.log");
    let mut b = env.spawn(&["project", "--source", "kafka"], "kafka_worker_b.log");
    // Kill A as soon as the group has stored some offsets, while writes keep coming.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: i64 = client
            .query_one(
                "SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if stored > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "workers applied nothing");
        writer.write(&client, 5).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill().unwrap();
    a.wait().unwrap();
    for _ in 0..30 {
        writer.write(&client, 20).await;
    }
    let mut a = env.spawn(&["project", "--source", "kafka"], "kafka_worker_a2.log");
    // A server on this database, to read the group's lag from /metrics at the end. Started
    // before the last writes: its first start registers a developer, an entry that must be
    // relayed and applied before the lag is read.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = env
        .command(&["serve"])
        .env("WEARHOUSE_BIND", format!("127.0.0.1:{port}"))
        .env("WEARHOUSE_METRICS_TOKEN", "metrics-token")
        // The Kafka workers own the read models here.
        .env("WEARHOUSE_PROJECTIONS", "false")
        .env(
            "WEARHOUSE_HOME",
            std::env::temp_dir().join(format!("kafka-metrics-{port}")),
        )
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(std::env::temp_dir().join("kafka_metrics_serve.log")).unwrap(),
        )
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    wait_metrics(&http, &metrics_url).await;
    for _ in 0..10 {
        writer.write(&client, 20).await;
    }
    env.wait_relayed(Duration::from_secs(60)).await;
    wait_applied(&env, Duration::from_secs(90)).await;
    a.kill().unwrap();
    b.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    stop.send(true).unwrap();
    relay_task.await.unwrap();
    let metrics = wait_metrics(&http, &metrics_url).await;
    let _ = server.kill();
    let _ = server.wait();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM kafka_offsets", &[])
        .await
        .unwrap()
        .get(0);
    let lag_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("wearhouse_consumer_lag_messages{projection=\"users\""))
        .collect();
    assert!(stored > 0 && !lag_lines.is_empty(), "{metrics}");
    for line in lag_lines {
        let value: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        // Everything was applied; at most the relay's flush marker follows the stored offset.
        assert!((0..=1).contains(&value), "{line}");
    }

    let from_kafka = users_snapshot(&env).await;
    assert!(!from_kafka.is_empty(), "the read model was built");
    let out = env
        .command(&["projections", "rebuild", "users"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt = users_snapshot(&env).await;
    assert_eq!(
        from_kafka, rebuilt,
        "read model from Kafka equals a rebuild from Postgres"
    );

    // Both members of the group received partitions at some point.
    for log in ["kafka_worker_a.log", "kafka_worker_b.log"] {
        let text = std::fs::read_to_string(std::env::temp_dir().join(log)).unwrap();
        assert!(
            text.contains("partitions assigned"),
            "{log} got no partitions:\n{text}"
        );
    }
}
