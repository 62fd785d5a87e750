//! Incidents through their lifecycle over HTTP and Kafka: ward units acknowledge, work, resolve
//! or reject; operators re-route and merge; citizens confirm or dispute; and a dashboard started
//! afresh rebuilds exactly the same state from the incident topic.

mod common;

use std::time::{Duration, Instant};

use common::{read_topic, Pipeline, OPERATOR_TOKEN, WAIT, WARD_OF_TOKEN, WARD_TOKEN};
use geo::InteriorPoint;
use ioc_router::wards::demo;
use serde_json::{json, Value};

/// A point well inside a demo ward.
fn point_in(ward_id: &str) -> (f64, f64) {
    let ward = demo::wards().into_iter().find(|w| w.id == ward_id).unwrap();
    let p = ward.geometry.interior_point().unwrap();
    (p.y(), p.x())
}

async fn file_report(p: &Pipeline, ward: &str) -> String {
    let (lat, lon) = point_in(ward);
    let body = json!({
        "channel": "app", "category": "environment", "text": "Cống tắc, nước tràn",
        "location": {"lat": lat, "lon": lon}, "reporter": {"phone": "+84-900000000"},
        "submitted_at": chrono::Utc::now(),
    });
    let resp = p
        .http
        .post(format!("{}/v1/reports", p.ingest_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.json::<Value>().await.unwrap()["tracking_id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    while p
        .dashboard_as(&format!("/v1/incidents/{id}"), OPERATOR_TOKEN)
        .await
        .0
        != 200
    {
        assert!(started.elapsed() < WAIT, "incident {id} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    id
}

async fn act(p: &Pipeline, id: &str, token: &str, action: Value) -> (u16, Value) {
    let resp = p
        .http
        .post(format!("{}/v1/incidents/{id}/actions", p.dashboard_url))
        .bearer_auth(token)
        .json(&action)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_goes_from_assignment_to_closed_and_a_new_dashboard_rebuilds_it() {
    let p = Pipeline::start("life-happy", 2, 1).await;
    let id = file_report(&p, WARD_OF_TOKEN).await;

    let (status, body) = act(&p, &id, WARD_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("acknowledged")),
        "{body}"
    );
    let (status, _) = act(&p, &id, WARD_TOKEN, json!({"action": "start"})).await;
    assert_eq!(status, 200);
    let (status, body) = act(
        &p,
        &id,
        WARD_TOKEN,
        json!({"action": "resolve", "result": "Đã nạo vét cống", "photo_urls": ["https://ward.example.vn/after.jpg"]}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("resolved")),
        "{body}"
    );

    // Illegal transitions answer 409 with the current state; wrong roles 403.
    let (status, body) = act(&p, &id, WARD_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resolved"),
        "{body}"
    );
    let (status, _) = act(
        &p,
        &id,
        WARD_TOKEN,
        json!({"action": "cancel", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = act(&p, &id, OPERATOR_TOKEN, json!({"action": "fly"})).await;
    assert_eq!(status, 422, "{body}");

    // The citizen confirms and sees the result and the public history, nothing internal.
    let resp = p
        .http
        .post(format!("{}/v1/reports/{id}/confirm", p.dashboard_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let public: Value = p
        .http
        .get(format!("{}/v1/reports/{id}", p.dashboard_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public["status"], "closed");
    assert_eq!(public["result"]["text"], "Đã nạo vét cống");
    let steps: Vec<&str> = public["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "assigned",
            "acknowledged",
            "in_progress",
            "resolved",
            "closed"
        ]
    );
    let text = public.to_string();
    assert!(
        !text.contains("ward unit") && !text.contains("+84-"),
        "{text}"
    );

    // Operators see the whole audit trail.
    let full = p.dashboard(&format!("/v1/incidents/{id}")).await;
    assert_eq!(full["revision"], 5);
    let actors: Vec<&str> = full["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["actor"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        ["router", "ward_unit", "ward_unit", "ward_unit", "citizen"]
    );

    // Every revision is on the incident topic, in order, under the incident's key.
    let topic = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.incidents,
    );
    let revisions: Vec<u64> = topic
        .iter()
        .filter(|(k, _)| *k == id)
        .map(|(_, v)| {
            serde_json::from_slice::<Value>(v).unwrap()["revision"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(revisions, [1, 2, 3, 4, 5]);

    // A dashboard started now rebuilds the same state from Kafka alone.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut rx2 = rx.clone();
    let second = tokio::spawn(ioc_dashboard::serve(
        listener,
        p.settings.clone(),
        ioc_schema::metrics::Metrics::new(),
        async move {
            let _ = rx2.wait_for(|s| *s).await;
        },
    ));
    let started = Instant::now();
    loop {
        let resp = p
            .http
            .get(format!("{url}/v1/incidents/{id}"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await;
        if let Ok(r) = resp {
            let rebuilt: Value = r.json().await.unwrap_or_default();
            if rebuilt["revision"] == 5 {
                assert_eq!(rebuilt, full, "the rebuilt incident equals the live one");
                break;
            }
        }
        assert!(
            started.elapsed() < WAIT,
            "the new dashboard did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(true);
    tokio::time::timeout(WAIT, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_incident_is_rerouted_and_duplicates_are_merged() {
    let p = Pipeline::start("life-reroute", 2, 1).await;
    let id = file_report(&p, WARD_OF_TOKEN).await;
    let (status, _) = act(
        &p,
        &id,
        WARD_TOKEN,
        json!({"action": "reject", "reason": " "}),
    )
    .await;
    assert_eq!(status, 422, "a rejection needs a reason");
    let (status, body) = act(
        &p,
        &id,
        WARD_TOKEN,
        json!({"action": "reject", "reason": "Thuộc địa bàn phường bên cạnh"}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("unassigned")),
        "{body}"
    );
    assert!(body["ward"].is_null());
    let triage = p.dashboard("/v1/incidents?status=unassigned").await;
    assert!(triage["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id.as_str()));

    let (status, _) = act(
        &p,
        &id,
        OPERATOR_TOKEN,
        json!({"action": "assign", "ward_id": "NOWHERE"}),
    )
    .await;
    assert_eq!(status, 422);
    let (status, body) = act(
        &p,
        &id,
        OPERATOR_TOKEN,
        json!({"action": "assign", "ward_id": "P002"}),
    )
    .await;
    assert_eq!(
        (status, body["ward"]["id"].as_str()),
        (200, Some("P002")),
        "{body}"
    );
    assert_eq!(body["unit"], "Environment and sanitation team");
    // The first ward's unit has no say any more.
    let (status, _) = act(&p, &id, WARD_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 403);

    // A second report of the same problem is merged into the first.
    let dup = file_report(&p, "P002").await;
    let (status, body) = act(
        &p,
        &dup,
        OPERATOR_TOKEN,
        json!({"action": "mark_duplicate", "of": id}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("duplicate")),
        "{body}"
    );
    assert_eq!(body["duplicate_of"], id.as_str());
    let (status, _) = act(
        &p,
        &dup,
        OPERATOR_TOKEN,
        json!({"action": "cancel", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 409, "a merged incident is finished");

    // The unit's work list holds what is open in its ward, earliest due first.
    let (_, work) = p.dashboard_as("/v1/assignments", WARD_TOKEN).await;
    assert!(work
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["ward"]["id"] == WARD_OF_TOKEN));
    p.stop().await;
}
