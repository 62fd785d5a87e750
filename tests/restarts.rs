//! Router and dashboard stopped midway and started again rebuild exactly the same state from the
//! incident topic, each input routed once.

mod common;

use common::{point_in, Pipeline, OPERATOR_TOKEN, WARD2_TOKEN, WARD_OF_TOKEN, WARD_TOKEN};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_router_and_dashboard_midway_rebuilds_the_same_state() {
    let mut p = Pipeline::start("life-restart", 2, 1).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(p.file_report(WARD_OF_TOKEN).await);
    }
    let steps = [
        (&ids[0], WARD_TOKEN, json!({"action": "acknowledge"})),
        (&ids[0], WARD_TOKEN, json!({"action": "start"})),
        (
            &ids[1],
            WARD_TOKEN,
            json!({"action": "reject", "reason": "Không thuộc địa bàn"}),
        ),
        (
            &ids[1],
            OPERATOR_TOKEN,
            json!({"action": "assign", "ward_id": "P002", "priority": "high"}),
        ),
        (
            &ids[3],
            OPERATOR_TOKEN,
            json!({"action": "mark_duplicate", "of": ids[2]}),
        ),
    ];
    for (id, token, action) in steps {
        let (status, body) = p.act(id, token, action).await;
        assert_eq!(status, 200, "{body}");
    }
    let before = p.dashboard("/v1/incidents?limit=100").await;
    let stats = p.dashboard("/v1/stats").await;

    // Both stop; citizens keep filing meanwhile (ingest and Kafka are up).
    p.stop_router_and_dashboard().await;
    let (lat, lon) = point_in(WARD_OF_TOKEN);
    let resp = p
        .http
        .post(format!("{}/v1/reports", p.ingest_url))
        .json(
            &json!({"channel": "app", "category": "urban_order", "text": "Lấn chiếm vỉa hè",
            "location": {"lat": lat, "lon": lon}, "submitted_at": chrono::Utc::now()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let late: String = resp.json::<Value>().await.unwrap()["tracking_id"]
        .as_str()
        .unwrap()
        .into();

    p.start_dashboard().await;
    p.start_router();
    let after = p.wait_for_incidents(5).await;
    let without_late: Vec<&Value> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["id"] != late.as_str())
        .collect();
    let before_items: Vec<&Value> = before["items"].as_array().unwrap().iter().collect();
    assert_eq!(
        without_late, before_items,
        "the same incidents, revisions and histories"
    );
    assert_eq!(p.dashboard("/v1/stats?status=duplicate").await["total"], 1);
    assert_eq!(stats["total"], 4);

    // Work goes on from where it was: the next revision builds on the last one written.
    let (status, body) = p
        .act(
            &ids[0],
            WARD_TOKEN,
            json!({"action": "resolve", "result": "Đã xử lý xong"}),
        )
        .await;
    assert_eq!(
        (status, body["revision"].as_u64()),
        (200, Some(4)),
        "{body}"
    );
    let (status, body) = p
        .act(&ids[1], WARD2_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Nothing routed twice: each input has exactly one routing record on the incident topic.
    for id in ids.iter().chain([&late]) {
        let routed = p
            .revisions_on_topic(id)
            .iter()
            .filter(|r| r["revision"] == 1)
            .count();
        assert_eq!(routed, 1, "incident {id}");
    }
    p.stop().await;
}
