//! Broker outage: a broker of its own (scripts/kafka.sh on a free port) is stopped while the
//! relay runs and entries keep coming, then restarted; nothing is lost and per-key order holds.

use crate::kafka_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kafka_support::*;
use tokio::sync::watch;
use wearhouse_kafka::Relay;

fn kafka_sh(cmd: &str, port: u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
    let out = Command::new(&script)
        .arg(cmd)
        .env("WEARHOUSE_KAFKA_PORT", port.to_string())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/kafka.sh {cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct BrokerGuard(u16);

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
        let _ = Command::new(script)
            .arg("stop")
            .env("WEARHOUSE_KAFKA_PORT", self.0.to_string())
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing_and_keeps_order() {
    // The shared test broker must be there too (the harness requires it), but this test
    // stops and restarts a broker, so it runs one of its own.
    test_kafka();
    let port = free_port();
    kafka_sh("start", port);
    // Stops this test's broker however the test ends.
    let _broker = BrokerGuard(port);
    let env = setup_with_brokers(&format!("127.0.0.1:{port}")).await;
    let client = env.client().await;
    let mut writer = Writer::new(11);
    for _ in 0..30 {
        writer.write(&client, 20).await;
    }
    let relay = Relay::new(env.pool.clone(), env.kafka.clone());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(relay.run(Some(env.pg.clone()), stop_rx));
    env.wait_relayed(Duration::from_secs(60)).await;
    let before = env.log().await;
    let consumer = reader(&env.kafka, &env.kafka.topics().events);
    let mut received = Vec::new();
    receive_all(
        &consumer,
        &mut received,
        before.len(),
        Duration::from_secs(60),
    )
    .await;

    // librdkafka 2.12 can crash refreshing a subscribed consumer's metadata against a tansu
    // that restarted with empty memory storage (topic names come back null); this consumer has
    // what it needs, so it goes before the broker does.
    drop(consumer);
    kafka_sh("stop", port);
    for _ in 0..10 {
        writer.write(&client, 20).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        env.relay_lag().await > 0,
        "nothing can be relayed while the broker is down"
    );
    let stuck_at = env.relay_checkpoint().await;
    assert_eq!(
        stuck_at,
        before.last().unwrap().position(),
        "checkpoint did not move"
    );

    kafka_sh("start", port);
    env.wait_relayed(Duration::from_secs(90)).await;
    let log = env.log().await;
    // tansu keeps memory storage, so the restarted broker holds only what was relayed after
    // the restart, at offsets starting from 0 again (a consumer at its old offsets would
    // wait forever): read it with a fresh consumer and join it to what was received before.
    let consumer = reader(&env.kafka, &env.kafka.topics().events);
    let want = log.len() - before.len();
    let mut after = Vec::new();
    receive_all(&consumer, &mut after, want, Duration::from_secs(90)).await;
    let new: std::collections::HashSet<i64> =
        log[before.len()..].iter().map(|e| e.position()).collect();
    assert_eq!(
        positions(&after),
        new,
        "exactly the entries written during the outage"
    );
    received.extend(after);
    stop.send(true).unwrap();
    task.await.unwrap();
    kafka_sh("stop", port);
    assert_complete_and_ordered(&log, &received);
}
