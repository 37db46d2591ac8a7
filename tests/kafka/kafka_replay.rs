//! `wearhouse replay`: the output equals the log (Postgres source and topic source), and the
//! position, user and event-type filters select exactly the matching entries.

use crate::kafka_support;

use std::time::Duration;

use kafka_support::*;
use tokio::sync::watch;
use wearhouse_kafka::envelope::encode;
use wearhouse_kafka::Relay;

fn replay(env: &Env, args: &[&str]) -> Vec<String> {
    let path =
        std::env::temp_dir().join(format!("{}-{}.jsonl", env.kafka.topic_prefix, args.len()));
    let mut all = vec!["replay", "--output", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = env.command(&all).output().unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_output_equals_the_log() {
    let env = setup().await;
    let client = env.client().await;
    let mut writer = Writer::new(6);
    for _ in 0..30 {
        writer.write(&client, 10).await;
    }
    let log = env.log().await;
    let lines = |entries: &mut dyn Iterator<Item = &wearhouse_log::LogEntry>| -> Vec<String> {
        entries
            .map(|e| String::from_utf8(encode(e)).unwrap())
            .collect()
    };

    assert_eq!(
        replay(&env, &[]),
        lines(&mut log.iter()),
        "whole log, in log order"
    );

    let user = writer.users[2];
    let from = log[log.len() / 2].position();
    let got = replay(
        &env,
        &[
            "--user",
            &user.to_string(),
            "--event-type",
            "UserUpdated",
            "--from-position",
            &from.to_string(),
        ],
    );
    let want = lines(&mut log.iter().filter(|e| {
        e.user_id == Some(user) && e.event_type == "UserUpdated" && e.position() >= from
    }));
    assert!(!want.is_empty());
    assert_eq!(got, want, "filtered by user, event type and position");

    let first_time = log[log.len() / 3].recorded_at;
    let got = replay(
        &env,
        &["--from-time", &first_time.to_rfc3339(), "--limit", "25"],
    );
    let want: Vec<String> = lines(&mut log.iter().filter(|e| e.recorded_at >= first_time))
        .into_iter()
        .take(25)
        .collect();
    assert_eq!(got, want, "from a time, limited");

    // From the topic: the same lines (per-partition order, so compared as sets).
    let relay = Relay::new(env.pool.clone(), env.kafka.clone());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(relay.run(Some(env.pg.clone()), stop_rx));
    env.wait_relayed(Duration::from_secs(60)).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let mut got = replay(&env, &["--source", "kafka"]);
    let mut want = lines(&mut log.iter());
    got.sort();
    want.sort();
    assert_eq!(got, want, "topic replay equals the log");
}
