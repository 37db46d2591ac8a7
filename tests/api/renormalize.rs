//! `wearhouse renormalize`: re-maps stored Apple payloads with the current mapper and appends
//! the events; read models end up with the mapper's values and re-running changes nothing.

use crate::common;

use common::{create_user, import_export, settle, Server};

const SMALL: &str = include_str!("../fixtures/small_export.xml");

/// Every read model the Apple import feeds, as text rows, in a stable order.
async fn read_models(s: &Server) -> Vec<String> {
    let client = s.db.client().await;
    let mut all = Vec::new();
    for q in [
        "SELECT concat_ws('|', time, user_id, data_source_id, series_type, value, zone_offset, end_time, is_daily_total) FROM samples",
        "SELECT concat_ws('|', user_id, data_source_id, series_type, count) FROM sample_counts",
        "SELECT concat_ws('|', id, type, start_time, end_time, stats::text) FROM workouts",
        "SELECT concat_ws('|', id, start_time, end_time, stages::text) FROM sleep_sessions",
        "SELECT concat_ws('|', id, provider, source, device_model) FROM data_sources",
        "SELECT concat_ws('|', user_id, date, values::text) FROM activity_summaries",
    ] {
        let mut rows: Vec<String> = client
            .query(q, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        rows.sort();
        all.extend(rows);
    }
    all
}

/// Awaited, not blocking: the in-process server keeps running (and committing) meanwhile.
async fn renormalize(s: &Server, since: &str) -> String {
    let out = tokio::process::Command::new(common::bin())
        .args(["renormalize", "--provider", "apple", "--since", since])
        .env("DATABASE_URL", &s.db.url)
        .env("WEARHOUSE_HOME", &s.home)
        .env("WEARHOUSE_LOG", "warn")
        .env("USER", "operator-ann")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "renormalize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn count(s: &Server, sql: &str) -> i64 {
    s.db.client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn renormalize_appends_mapped_events_and_is_idempotent() {
    let s = Server::start().await;
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;
    let before_import = chrono::Utc::now().to_rfc3339();
    let done = import_export(&s, &key, &user, "export.xml", SMALL.as_bytes().to_vec()).await;
    assert_eq!(done["status"], "completed", "{done}");
    settle(&s.db).await;
    let imported = read_models(&s).await;
    assert!(imported.len() > 10);
    // Whoever ran it is named (`cli:<user>@<host>`).
    let data_events =
        "SELECT count(*) FROM events WHERE aggregate_type = 'DataStream' AND metadata->>'actor' LIKE 'cli:operator-ann@%'";
    assert_eq!(count(&s, data_events).await, 0);

    // A read model that drifted from what the mapper produces (as an older mapper would
    // have left it) is corrected by the appended events.
    s.db.client()
        .await
        .execute("UPDATE samples SET value = -1 WHERE series_type = (SELECT min(series_type) FROM samples)", &[])
        .await
        .unwrap();
    assert_ne!(read_models(&s).await, imported);

    let out = renormalize(&s, &before_import).await;
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(&format!("user={user}")), "{out}");
    settle(&s.db).await;
    let appended = count(&s, data_events).await;
    assert!(appended > 0, "renormalize appended data events");
    assert_eq!(
        read_models(&s).await,
        imported,
        "corrected to the mapper's values"
    );

    // Again: more events, same read models (dedup keys make it idempotent).
    renormalize(&s, &before_import).await;
    settle(&s.db).await;
    assert_eq!(count(&s, data_events).await, 2 * appended);
    assert_eq!(read_models(&s).await, imported);

    // Nothing was received after this time.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(renormalize(&s, &later).await, "");
    assert_eq!(count(&s, data_events).await, 2 * appended);
}
