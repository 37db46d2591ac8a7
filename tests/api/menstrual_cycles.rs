//! Menstrual cycles through the real Apple import path (HTTP upload of an export): flow records
//! folded into cycles, served by `/events/menstrual-cycles` field for field, and deletes that
//! survive a re-import.

use crate::common;

use common::{call, export, Server, KEY_HEADER};
use reqwest::Method;
use serde_json::{json, Value};

fn data(v: &Value) -> &Vec<Value> {
    v["data"].as_array().unwrap()
}

/// A flow record from the Health app on a local date at +02:00; `start` marks the cycle start.
fn flow(date: &str, value: &str, start: bool) -> String {
    let at = format!("{date} 00:00:00 +0200");
    let src = r#"sourceName="Health" sourceVersion="17.3""#;
    let open = format!(
        r#" <Record type="HKCategoryTypeIdentifierMenstrualFlow" {src} creationDate="{at}" startDate="{at}" endDate="{at}" value="HKCategoryValue{value}""#
    );
    if start {
        format!("{open}>\n  <MetadataEntry key=\"HKMenstrualCycleStart\" value=\"1\"/>\n </Record>")
    } else {
        format!("{open}/>")
    }
}

/// Three periods: 1–4 March (with spotting on 12 March), 29 March–2 April, 26–27 April.
fn body() -> String {
    [
        flow("2024-03-01", "VaginalBleedingHeavy", true),
        flow("2024-03-02", "VaginalBleedingMedium", false),
        flow("2024-03-04", "MenstrualFlowLight", false),
        flow("2024-03-08", "MenstrualFlowNone", false),
        flow("2024-03-12", "MenstrualFlowUnspecified", false),
        flow("2024-03-29", "MenstrualFlowHeavy", false),
        flow("2024-03-30", "MenstrualFlowMedium", false),
        flow("2024-04-01", "MenstrualFlowLight", false),
        flow("2024-04-02", "MenstrualFlowLight", false),
        flow("2024-04-26", "MenstrualFlowHeavy", true),
        flow("2024-04-27", "MenstrualFlowMedium", false),
    ]
    .join("\n")
}

#[tokio::test]
async fn apple_flow_records_become_cycles_and_deletes_survive_reimport() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    s.import(&key, &user, &export::doc(&body())).await;
    let base = format!("/api/v1/users/{user}/events/menstrual-cycles");

    // end_date is ignored: an end before every cycle still lists them all, newest first.
    let (st, r) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-01-01&end_date=2024-01-02"),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["pagination"]["total_count"], 3);
    let starts: Vec<&str> = data(&r)
        .iter()
        .map(|c| c["start_time"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2024-04-25T22:00:00+00:00",
            "2024-03-28T22:00:00+00:00",
            "2024-02-29T22:00:00+00:00"
        ]
    );
    // The first cycle, every field of the contract's item.
    let first = &data(&r)[2];
    let fields: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for f in [
        "id",
        "start_time",
        "end_time",
        "zone_offset",
        "source",
        "current_phase",
        "current_phase_type",
        "day_in_cycle",
        "cycle_length",
        "predicted_cycle_length",
        "is_predicted_cycle",
        "period_length",
        "length_of_current_phase",
        "days_until_next_phase",
        "fertile_window_start",
        "length_of_fertile_window",
        "last_updated_at",
        "has_specified_cycle_length",
        "has_specified_period_length",
        "pregnancy_snapshot",
    ] {
        assert!(fields.contains(&f), "{f} missing from {first}");
    }
    assert_eq!(first["end_time"], "2024-03-28T22:00:00+00:00");
    assert_eq!(first["zone_offset"], "+02:00");
    // 1–4 March (3 March unlogged) is the period; the 12 March spotting is not.
    assert_eq!(
        (&first["cycle_length"], &first["period_length"]),
        (&json!(28), &json!(4))
    );
    assert_eq!(first["is_predicted_cycle"], false);
    assert!(first["predicted_cycle_length"].is_null());
    // No snapshot is null, as in the contract (`list | null`), not an empty list.
    assert!(first["pregnancy_snapshot"].is_null(), "{first}");
    assert_eq!(first["source"]["provider"], "apple");
    // 29 March → 26 April, marked as a start anyway: 28 days; the open cycle predicts 28.
    let open = &data(&r)[0];
    assert!(open["cycle_length"].is_null());
    assert_eq!(open["predicted_cycle_length"], 28);
    assert_eq!(open["period_length"], 2);
    assert_eq!(open["end_time"], "2024-05-23T22:00:00+00:00");

    // start_date filters on the start; cursors walk the rest.
    let (_, later) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-03-10&end_date=2024-03-11"),
        )
        .await;
    assert_eq!(data(&later).len(), 2);
    let (_, p1) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-01-01&end_date=2024-01-02&limit=2"),
        )
        .await;
    assert_eq!(p1["pagination"]["has_more"], true);
    let next = p1["pagination"]["next_cursor"].as_str().unwrap();
    let (_, p2) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-01-01&end_date=2024-01-02&limit=2&cursor={next}"),
        )
        .await;
    assert_eq!(data(&p2).len(), 1);
    assert_eq!(data(&p2)[0]["id"], first["id"]);

    let summary = format!("/api/v1/users/{user}/summaries/data");
    let (_, d) = s.get(&key, &summary).await;
    assert_eq!(d["has_womens_health_data"], true);

    // Delete the first cycle: gone from the list, and an import of the same export does not
    // bring it back.
    let id = first["id"].as_str().unwrap().to_string();
    let (st, _) = call(
        s.req(Method::DELETE, &format!("{base}/{id}"))
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(st, 204);
    s.settle().await;
    let (st, e) = call(
        s.req(Method::DELETE, &format!("{base}/{id}"))
            .header(KEY_HEADER, &key),
    )
    .await;
    assert_eq!(
        (st, e["detail"].as_str()),
        (404, Some("Menstrual cycle not found"))
    );
    // A different file (a newer export with one more record) so the import is not a duplicate.
    let newer = format!(
        "{}\n{}",
        body(),
        flow("2024-04-28", "MenstrualFlowLight", false)
    );
    s.import(&key, &user, &export::doc(&newer)).await;
    let (_, r) = s
        .get(
            &key,
            &format!("{base}?start_date=2024-01-01&end_date=2024-01-02"),
        )
        .await;
    let ids: Vec<&str> = data(&r).iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{r}");
    assert!(!ids.contains(&id.as_str()));
    // The re-import updated the open cycle in place (same id, longer period).
    assert_eq!(data(&r)[0]["id"], open["id"]);
    assert_eq!(data(&r)[0]["period_length"], 3);
}

#[tokio::test]
async fn an_export_without_flow_records_has_no_cycles() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    let body = export::steps(
        100.0,
        "2024-03-01 10:00:00 +0100",
        "2024-03-01 10:10:00 +0100",
        true,
    );
    s.import(&key, &user, &export::doc(&body)).await;
    let (_, r) = s
        .get(
            &key,
            &format!("/api/v1/users/{user}/events/menstrual-cycles?start_date=2024-01-01&end_date=2024-12-31"),
        )
        .await;
    assert_eq!(data(&r).len(), 0);
    let (_, d) = s
        .get(&key, &format!("/api/v1/users/{user}/summaries/data"))
        .await;
    assert_eq!(d["has_womens_health_data"], false);
}

/// A period logged late moves a cycle's start (and so its id): importing the newer export
/// replaces the cycles derived from the older one instead of listing both.
#[tokio::test]
async fn a_newer_export_replaces_the_cycles_it_derives_again() {
    let s = Server::start().await;
    let (key, user) = s.user().await;
    s.import(&key, &user, &export::doc(&body())).await;
    let base = format!(
        "/api/v1/users/{user}/events/menstrual-cycles?start_date=2024-01-01&end_date=2024-01-02"
    );
    // Local midnights at +02:00, in UTC.
    let starts = |r: &Value| -> Vec<String> {
        data(r)
            .iter()
            .map(|c| c["start_time"].as_str().unwrap()[..10].to_string())
            .collect()
    };
    let (st, before) = s.get(&key, &base).await;
    assert_eq!(st, 200, "{before}");
    assert_eq!(starts(&before), ["2024-04-25", "2024-03-28", "2024-02-29"]);

    // The newer export has the same records plus a flow day logged for 28 March.
    let newer = format!(
        "{}\n{}",
        body(),
        flow("2024-03-28", "MenstrualFlowLight", false)
    );
    s.import(&key, &user, &export::doc(&newer)).await;
    let (st, after) = s.get(&key, &base).await;
    assert_eq!(st, 200, "{after}");
    assert_eq!(starts(&after), ["2024-04-25", "2024-03-27", "2024-02-29"]);
    assert_eq!(after["pagination"]["total_count"], 3, "{after}");
}
