//! Missed service levels escalate on a simulated clock, resolutions nobody disputes close by
//! themselves, and a restarted dashboard replays exactly the same records.

mod common;

use std::time::Duration;

use common::{Pipeline, TestClock, WARD_OF_TOKEN, WARD_TOKEN};
use serde_json::{json, Value};

fn escalated(i: &Value, n: usize) -> bool {
    i["escalations"].as_array().map_or(0, Vec::len) >= n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_service_levels_escalate_on_a_simulated_clock_and_replay_the_same() {
    let clock = TestClock::starting_now();
    let mut p = Pipeline::start_with("life-sla", 2, 1, Some(clock.clone()), |s| {
        s.config.dashboard.sla_check_interval = ioc_config::Dur(Duration::from_millis(100));
    })
    .await;
    // Environment: acknowledge within 2 h, resolve within 48 h, close 7 days after resolution.
    let id = p.file_report(WARD_OF_TOKEN).await;
    // Left alone: it will miss both targets and stay open.
    let ignored = p.file_report(WARD_OF_TOKEN).await;
    let fresh = p.dashboard(&format!("/v1/incidents/{id}")).await;
    assert!(fresh["escalations"].is_null(), "not overdue yet: {fresh}");
    let ack_due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(fresh["ack_due_at"].clone()).unwrap();

    clock.advance(chrono::Duration::hours(3));
    let i = p
        .incident_when(&id, "acknowledgement escalation", |i| escalated(i, 1))
        .await;
    assert_eq!(i["escalations"][0]["target"], "acknowledge");
    let last = i["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "escalate");
    assert_eq!(
        serde_json::from_value::<chrono::DateTime<chrono::Utc>>(last["at"].clone()).unwrap(),
        ack_due,
        "dated by the deadline, not by when the monitor noticed"
    );
    p.incident_when(&ignored, "second escalation", |i| escalated(i, 1))
        .await;
    let overdue = p.dashboard("/v1/overdue").await;
    assert_eq!(overdue["total"], 2);
    assert_eq!(overdue["items"][0]["target"], "acknowledge");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        p.metrics.total("ioc_escalations_total"),
        2.0,
        "counted once each, however many passes the monitor made"
    );

    // Acknowledged late: off the overdue list until the resolution deadline passes too.
    let (status, _) = p
        .act(&id, WARD_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(p.dashboard("/v1/overdue").await["total"], 1);
    clock.advance(chrono::Duration::hours(48));
    p.incident_when(&id, "resolution escalation", |i| escalated(i, 2))
        .await;
    let (status, _) = p
        .act(
            &id,
            WARD_TOKEN,
            json!({"action": "resolve", "result": "Đã xử lý"}),
        )
        .await;
    assert_eq!(status, 200);

    // Nobody disputes: closed automatically a week after the resolution.
    clock.advance(chrono::Duration::days(8));
    let closed = p
        .incident_when(&id, "automatic close", |i| i["status"] == "closed")
        .await;
    assert_eq!(
        closed["history"].as_array().unwrap().last().unwrap()["action"],
        "auto_close"
    );
    let figures = p.dashboard("/v1/figures?category=environment").await;
    let total = &figures["total"];
    assert_eq!(total["resolved"], 1, "{figures}");
    assert_eq!(
        (total["received"].as_u64(), total["open"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(total["escalations"], 4);
    assert_eq!(total["overdue_now"], 1);
    assert_eq!(total["resolved_on_time_rate"], 0.0);
    assert_eq!(total["acknowledged_on_time_rate"], 0.0);
    // Filed a moment after the clock started.
    let seconds = total["resolution_seconds_p50"].as_i64().unwrap();
    assert!((51 * 3600 - 60..=51 * 3600).contains(&seconds), "{seconds}");

    // A dashboard started afresh (same clock) rebuilds the same incident and figures from
    // Kafka, and its monitor writes nothing new: every escalation is already on the topic.
    let written = [p.revisions_on_topic(&id), p.revisions_on_topic(&ignored)];
    assert_eq!(written[1].len(), 3, "routed, then two escalations");
    p.stop_router_and_dashboard().await;
    p.start_dashboard().await;
    let rebuilt = p.incident_when(&id, "rebuild", |i| i == &closed).await;
    assert_eq!(rebuilt, closed);
    p.incident_when(&ignored, "rebuild", |i| escalated(i, 2))
        .await;
    assert_eq!(
        p.dashboard("/v1/figures?category=environment").await,
        figures
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        [p.revisions_on_topic(&id), p.revisions_on_topic(&ignored)],
        written
    );
    p.stop().await;
}
