//! Incidents through their lifecycle over HTTP and Kafka: ward units acknowledge, work, resolve
//! or reject; operators verify, re-route and merge; citizens confirm or dispute (also through
//! Open311); missed service levels escalate on a simulated clock; the assignments topic tells each
//! ward its share; and router and dashboard restarted midway rebuild exactly the same state from
//! the incident topic.

mod common;

use std::time::Duration;

use common::{
    eventually, read_topic, Pipeline, TestClock, OPEN311_KEY, OPERATOR_TOKEN, WAIT, WARD2_TOKEN,
    WARD_OF_TOKEN, WARD_TOKEN,
};
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
    p.incident_when(&id, "appears", |_| true).await;
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
    // The audit trail names the token's holder, not just a role.
    let last = body["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"],
        json!({"role": "ward_unit", "name": "test ward"})
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
    let public = p.public(&format!("/v1/reports/{id}")).await;
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
    let rebuilt = eventually("the new dashboard catches up", || async {
        let r = p
            .http
            .get(format!("{url}/v1/incidents/{id}"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .ok()?;
        let rebuilt: Value = r.json().await.unwrap_or_default();
        (rebuilt["revision"] == 5).then_some(rebuilt)
    })
    .await;
    assert_eq!(rebuilt, full, "the rebuilt incident equals the live one");
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
    // The original records the merge; the duplicate's citizen follows the original.
    let original = p.dashboard(&format!("/v1/incidents/{id}")).await;
    assert_eq!(original["merged"], json!([dup]));
    let public = p.public(&format!("/v1/reports/{dup}")).await;
    assert_eq!(public["status"], "duplicate");
    assert_eq!(public["merged_into"]["tracking_id"], id.as_str());
    // Later updates reach the original: once it is resolved, the duplicate's citizen confirms it.
    let p2 = WARD2_TOKEN;
    for action in [
        json!({"action": "acknowledge"}),
        json!({"action": "resolve", "result": "Đã khơi thông"}),
    ] {
        let (status, body) = act(&p, &id, p2, action).await;
        assert_eq!(status, 200, "{body}");
    }
    let resp = p
        .http
        .post(format!("{}/v1/reports/{dup}/confirm", p.dashboard_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["forwarded_to"], id.as_str());
    assert_eq!(body["status"], "closed");

    // A unit's figures and overdue list are its own ward's only.
    for path in ["/v1/figures?ward=P002", "/v1/overdue?ward=P002"] {
        assert_eq!(p.dashboard_as(path, WARD_TOKEN).await.0, 403, "{path}");
    }
    let (status, figures) = p.dashboard_as("/v1/figures", WARD_TOKEN).await;
    assert_eq!(status, 200);
    assert!(figures["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ward"] == WARD_OF_TOKEN));

    // The unit's work list holds what is open in its ward, earliest due first.
    let (_, work) = p.dashboard_as("/v1/assignments", WARD_TOKEN).await;
    assert!(work
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["ward"]["id"] == WARD_OF_TOKEN));

    // The assignments topic, keyed by ward, told the first ward it got the incident and then
    // lost it, and the second ward that it got it.
    let wanted = [
        (WARD_OF_TOKEN, "assigned"),
        (WARD_OF_TOKEN, "withdrawn"),
        ("P002", "assigned"),
        ("P002", "updated"),
    ];
    eventually("the assignment records of the incident", || async {
        let seen: Vec<(String, String)> = read_topic(
            &p.settings.config.kafka.brokers,
            &p.settings,
            &p.settings.config.topics.assignments,
        )
        .into_iter()
        .filter_map(|(k, v)| {
            let r: Value = serde_json::from_slice(&v).unwrap();
            assert_eq!(r["ward_id"], k.as_str(), "keyed by ward");
            (r["incident"]["id"] == id.as_str())
                .then(|| (k, r["change"].as_str().unwrap().to_string()))
        })
        .collect();
        wanted
            .iter()
            .all(|(w, c)| seen.iter().any(|(k, ch)| k == w && ch == c))
            .then_some(())
    })
    .await;
    p.stop().await;
}

/// Records of one incident on the incident topic, as JSON, in topic order.
fn revisions_on_topic(p: &Pipeline, id: &str) -> Vec<Value> {
    read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.incidents,
    )
    .into_iter()
    .filter(|(k, _)| k == id)
    .map(|(_, v)| serde_json::from_slice(&v).unwrap())
    .collect()
}

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
    let id = file_report(&p, WARD_OF_TOKEN).await;
    // Left alone: it will miss both targets and stay open.
    let ignored = file_report(&p, WARD_OF_TOKEN).await;
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
    let (status, _) = act(&p, &id, WARD_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 200);
    assert_eq!(p.dashboard("/v1/overdue").await["total"], 1);
    clock.advance(chrono::Duration::hours(48));
    p.incident_when(&id, "resolution escalation", |i| escalated(i, 2))
        .await;
    let (status, _) = act(
        &p,
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
    let written = [
        revisions_on_topic(&p, &id),
        revisions_on_topic(&p, &ignored),
    ];
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
        [
            revisions_on_topic(&p, &id),
            revisions_on_topic(&p, &ignored)
        ],
        written
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_router_and_dashboard_midway_rebuilds_the_same_state() {
    let mut p = Pipeline::start("life-restart", 2, 1).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(file_report(&p, WARD_OF_TOKEN).await);
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
        let (status, body) = act(&p, id, token, action).await;
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
    let (status, body) = act(
        &p,
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
    let (status, body) = act(&p, &ids[1], WARD2_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 200, "{body}");

    // Nothing routed twice: each input has exactly one routing record on the incident topic.
    for id in ids.iter().chain([&late]) {
        let routed = revisions_on_topic(&p, id)
            .iter()
            .filter(|r| r["revision"] == 1)
            .count();
        assert_eq!(routed, 1, "incident {id}");
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open311_clients_file_and_follow_requests_through_kafka() {
    let p = Pipeline::start("life-311", 2, 1).await;
    let base = format!("{}/open311/v2", p.dashboard_url);
    let services = p.public("/open311/v2/services.json").await;
    assert!(services
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["service_code"] == "environment" && s["metadata"] == false));

    let (lat, lon) = point_in(WARD_OF_TOKEN);
    let post = |form: Vec<(&'static str, String)>| {
        p.http
            .post(format!("{base}/requests.json"))
            .form(&form)
            .send()
    };
    let good = |key: &str| {
        vec![
            ("api_key", key.to_string()),
            ("service_code", "environment".to_string()),
            ("lat", lat.to_string()),
            ("long", lon.to_string()),
            ("description", "Rác thải bên đường".to_string()),
            ("email", "citizen@example.vn".to_string()),
            ("first_name", "Lan".to_string()),
            ("attribute[size]", "large".to_string()),
        ]
    };
    for (form, want) in [
        (good(""), 403),
        (good("wrong-key"), 403),
        (
            good(OPEN311_KEY)
                .into_iter()
                .filter(|(k, _)| *k != "lat")
                .collect(),
            400,
        ),
        (
            good(OPEN311_KEY)
                .into_iter()
                .map(|(k, v)| {
                    if k == "service_code" {
                        (k, "potholes".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            404,
        ),
    ] {
        let resp = post(form).await.unwrap();
        assert_eq!(resp.status().as_u16(), want);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err[0]["code"], want, "spec error format: {err}");
        assert!(err[0]["description"].as_str().unwrap().len() > 10);
    }
    let resp = post(good(OPEN311_KEY)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();

    let one = eventually("the Open311 request appears", || async {
        let resp = p
            .http
            .get(format!("{base}/requests/{id}.json"))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() != 200 {
            return None;
        }
        resp.json::<Value>().await.ok()
    })
    .await;
    // The same resource in XML, as the spec also allows.
    let xml = p
        .http
        .get(format!("{base}/requests/{id}.xml"))
        .send()
        .await
        .unwrap();
    assert!(xml.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    let xml = xml.text().await.unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<service_requests><request><address/><address_id/><agency_responsible>")
            && xml.contains(&format!("<service_request_id>{id}</service_request_id>")),
        "{xml}"
    );
    let refused = p
        .http
        .post(format!("{base}/requests.xml"))
        .form(&[("service_code", "environment")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("<errors><error><code>403</code><description>"));

    let r = &one[0];
    assert_eq!(r["status"], "open");
    assert_eq!(r["service_code"], "environment");
    assert!(r["status_notes"]
        .as_str()
        .unwrap()
        .starts_with("Assigned to"));
    let incident = p.dashboard(&format!("/v1/incidents/{id}")).await;
    assert_eq!(r["expected_datetime"], incident["sla_due_at"]);
    assert_eq!(incident["source"]["channel"], "open311");
    assert!(!one.to_string().contains("citizen@example.vn"));

    let list = |q: &'static str| {
        let url = format!("{base}/requests.json?{q}");
        let http = p.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let open: Value = list("status=open&service_code=environment,traffic_order")
        .await
        .json()
        .await
        .unwrap();
    assert!(open
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["service_request_id"] == id.as_str()));
    let closed: Value = list("status=closed").await.json().await.unwrap();
    assert!(closed.as_array().unwrap().is_empty());
    assert_eq!(list("status=maybe").await.status().as_u16(), 400);

    // The unit resolves it; the 311 client sees "closed" and the result.
    let (status, _) = act(&p, &id, WARD_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 200);
    let (status, _) = act(
        &p,
        &id,
        WARD_TOKEN,
        json!({"action": "resolve", "result": "Đã thu gom"}),
    )
    .await;
    assert_eq!(status, 200);
    let r = p
        .public(&format!(
            "/open311/v2/requests.json?service_request_id={id}"
        ))
        .await;
    assert_eq!(r[0]["status"], "closed");
    assert_eq!(r[0]["status_notes"], "Resolved: Đã thu gom");

    // The same Kafka path as any report: the contact is on the reports topic only.
    let reports = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.reports,
    );
    let (_, report) = reports
        .iter()
        .find(|(k, _)| *k == id)
        .expect("report record");
    assert!(String::from_utf8_lossy(report).contains("citizen@example.vn"));
    for rev in revisions_on_topic(&p, &id) {
        assert!(!rev.to_string().contains("citizen@example.vn"));
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disputed_resolution_reopens_within_the_window_only() {
    let clock = TestClock::starting_now();
    let p = Pipeline::start_with("life-reopen", 2, 1, Some(clock.clone()), |_| {}).await;
    let id = file_report(&p, WARD_OF_TOKEN).await;
    for action in [
        json!({"action": "acknowledge"}),
        json!({"action": "resolve", "result": "Đã khơi thông cống"}),
    ] {
        let (status, body) = act(&p, &id, WARD_TOKEN, action).await;
        assert_eq!(status, 200, "{body}");
    }
    let dispute = |reason: &'static str| {
        p.http
            .post(format!("{}/v1/reports/{id}/dispute", p.dashboard_url))
            .json(&json!({ "reason": reason }))
            .send()
    };
    clock.advance(chrono::Duration::days(3));
    let resp = dispute("Nước vẫn tràn ra đường").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let reopened = p.dashboard(&format!("/v1/incidents/{id}")).await;
    assert_eq!(reopened["status"], "reopened");
    // Both clocks restart at the dispute: acknowledge within 2 h, resolve within 48 h.
    let due = |field: &str| -> chrono::DateTime<chrono::Utc> {
        serde_json::from_value(reopened[field].clone()).unwrap()
    };
    assert_eq!(due("ack_due_at"), clock.now() + chrono::Duration::hours(2));
    assert_eq!(due("sla_due_at"), clock.now() + chrono::Duration::hours(48));
    // Back on the unit's work list, which it works again.
    let (_, work) = p.dashboard_as("/v1/assignments", WARD_TOKEN).await;
    assert!(work
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id.as_str()));
    for action in [
        json!({"action": "acknowledge"}),
        json!({"action": "resolve", "result": "Đã nạo vét toàn tuyến"}),
    ] {
        let (status, body) = act(&p, &id, WARD_TOKEN, action).await;
        assert_eq!(status, 200, "{body}");
    }

    // Past the window the dispute is refused with the current state.
    clock.advance(chrono::Duration::days(8));
    let resp = dispute("Lại tắc").await.unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("within 7 days"),
        "{err}"
    );
    let public = p.public(&format!("/v1/reports/{id}")).await;
    assert_eq!(public["result"]["text"], "Đã nạo vét toàn tuyến");
    assert!(public["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["status"] == "reopened"));
    assert_eq!(p.dashboard("/v1/figures").await["total"]["reopened"], 1);

    // A unit that knows whose an incident is hands it straight to that ward.
    let other = file_report(&p, WARD_OF_TOKEN).await;
    let (status, body) = act(
        &p,
        &other,
        WARD_TOKEN,
        json!({"action": "reject", "reason": "Thuộc phường bên cạnh", "ward_id": "P002"}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str(), body["ward"]["id"].as_str()),
        (200, Some("assigned"), Some("P002")),
        "{body}"
    );
    let (status, _) = act(&p, &other, WARD2_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 200);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_verification_required_operators_verify_before_the_ward_sees_work() {
    let p = Pipeline::start_with("life-verify", 2, 1, None, |s| {
        s.config.router.require_verification = ioc_config::Verification::Reports;
    })
    .await;
    let id = file_report(&p, WARD_OF_TOKEN).await;
    let fresh = p.dashboard(&format!("/v1/incidents/{id}")).await;
    assert_eq!(fresh["status"], "new");
    assert_eq!(fresh["ward"]["id"], WARD_OF_TOKEN, "the router's proposal");
    let (_, work) = p.dashboard_as("/v1/assignments", WARD_TOKEN).await;
    assert!(work.as_array().unwrap().is_empty(), "not the unit's yet");
    let (status, _) = act(&p, &id, WARD_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 409);

    let (status, body) = act(
        &p,
        &id,
        OPERATOR_TOKEN,
        json!({"action": "verify", "priority": "urgent"}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str(), body["priority"].as_str()),
        (200, Some("verified"), Some("urgent")),
        "{body}"
    );
    let (status, body) = act(
        &p,
        &id,
        OPERATOR_TOKEN,
        json!({"action": "assign", "ward_id": WARD_OF_TOKEN}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("assigned")));
    assert!(
        body["ack_due_at"].is_string(),
        "the unit's clock starts now"
    );
    let (status, _) = act(&p, &id, WARD_TOKEN, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 200);
    p.stop().await;
}
