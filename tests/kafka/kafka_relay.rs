//! The relay against a real broker and Postgres: completeness, order, byte-identical
//! payloads, headers; and a relay process killed mid-batch resumes without gaps.

use crate::kafka_support;

use std::collections::HashMap;
use std::time::Duration;

use kafka_support::*;
use tokio::sync::watch;
use wearhouse_kafka::envelope::{self, Envelope};
use wearhouse_kafka::Relay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_every_entry_in_log_order_with_identical_payloads() {
    let env = setup().await;
    let client = env.client().await;
    let mut writer = Writer::new(9);
    for _ in 0..40 {
        writer.write(&client, 15).await;
    }
    let log = env.log().await;
    assert_eq!(log.len(), 40 * 16);
    assert_eq!(
        env.relay_lag().await,
        log.len() as i64,
        "nothing relayed yet"
    );

    let relay = Relay::new(env.pool.clone(), env.kafka.clone());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(relay.run(Some(env.pg.clone()), stop_rx));
    env.wait_relayed(Duration::from_secs(60)).await;
    // Entries written while the relay runs are picked up too.
    for _ in 0..10 {
        writer.write(&client, 15).await;
    }
    let log = env.log().await;
    env.wait_relayed(Duration::from_secs(60)).await;
    assert_eq!(env.relay_checkpoint().await, log.last().unwrap().position());

    let consumer = reader(&env.kafka, &env.kafka.topics().events);
    let mut received = Vec::new();
    receive_until(&consumer, &mut received, Duration::from_secs(60), |r| {
        r.len() >= log.len()
    })
    .await;
    // Nothing more arrives: each entry was published exactly once in a clean run.
    let extra = drain(&consumer, Duration::from_secs(3)).await;
    assert!(extra.is_empty(), "messages beyond the log: {extra:?}");
    assert_eq!(received.len(), log.len(), "one message per log entry");
    assert_complete_and_ordered(&log, &received);

    let by_position: HashMap<i64, &Msg> = received
        .iter()
        .map(|m| (envelope::decode(&m.value).unwrap().position, m))
        .collect();
    for entry in &log {
        let m = by_position[&entry.position()];
        // The envelope carries the entry unchanged …
        let e: Envelope = envelope::decode(&m.value).unwrap();
        assert_eq!(wearhouse_log::LogEntry::from(e), *entry);
        // … and the payload's bytes on the wire are those of the stored JSON.
        #[derive(serde::Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            payload: &'a serde_json::value::RawValue,
        }
        let raw: Raw = serde_json::from_slice(&m.value).unwrap();
        assert_eq!(
            raw.payload.get().as_bytes(),
            serde_json::to_vec(&entry.payload).unwrap().as_slice(),
            "payload bytes of entry {}",
            entry.position()
        );
        assert_eq!(
            m.headers["wearhouse-position"],
            entry.position().to_string().into_bytes()
        );
        assert_eq!(
            m.headers["wearhouse-event-type"],
            entry.event_type.as_bytes()
        );
        assert_eq!(
            m.headers["wearhouse-aggregate-type"],
            entry.aggregate_type.as_bytes()
        );
    }
    // Several partitions are in use, so the per-key order above is not trivially global.
    let partitions: std::collections::HashSet<i32> = received.iter().map(|m| m.partition).collect();
    assert!(partitions.len() > 1, "keys spread over partitions");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_process_killed_mid_batch_resumes_without_gaps() {
    let env = setup().await;
    let client = env.client().await;
    let mut writer = Writer::new(13);
    for _ in 0..150 {
        writer.write(&client, 19).await;
    }
    let total = env.log().await.len() as i64;
    let mut relay = env.spawn(&["relay"], "kafka_relay_killed_1.log");
    // Kill it once it has stored some checkpoints but is far from done.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lag = env.relay_lag().await;
        if lag < total {
            assert!(
                lag > 0,
                "relay finished before it could be killed; make the log longer"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "relay made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.kill().unwrap();
    relay.wait().unwrap();
    let at_kill = env.relay_lag().await;
    assert!(at_kill > 0, "killed mid-run");
    // More entries while it is down.
    for _ in 0..20 {
        writer.write(&client, 19).await;
    }
    let mut relay = env.spawn(&["relay"], "kafka_relay_killed_2.log");
    env.wait_relayed(Duration::from_secs(90)).await;
    relay.kill().unwrap();
    relay.wait().unwrap();

    let log = env.log().await;
    let consumer = reader(&env.kafka, &env.kafka.topics().events);
    let mut received = Vec::new();
    receive_all(&consumer, &mut received, log.len(), Duration::from_secs(60)).await;
    assert_eq!(positions(&received).len(), log.len());
    assert_complete_and_ordered(&log, &received);
}
