//! Incidents through their lifecycle over HTTP and Kafka: ward units acknowledge, work, resolve
//! or reject; operators verify, re-route and merge; citizens confirm or dispute; the assignments
//! topic tells each ward its share; a fresh dashboard rebuilds the same state.

mod common;

use common::{
    eventually, read_topic, Pipeline, TestClock, OPERATOR_TOKEN, WAIT, WARD2_TOKEN, WARD_OF_TOKEN,
    WARD_TOKEN,
};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_goes_from_assignment_to_closed_and_a_new_dashboard_rebuilds_it() {
    let p = Pipeline::start("life-happy", 2, 1).await;
    let id = p.file_report(WARD_OF_TOKEN).await;

    let (status, body) = p
        .act(&id, WARD_TOKEN, json!({"action": "acknowledge"}))
        .await;
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
    let (status, _) = p.act(&id, WARD_TOKEN, json!({"action": "start"})).await;
    assert_eq!(status, 200);
    let (status, body) = p.act(&id,
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
    let (status, body) = p
        .act(&id, WARD_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resolved"),
        "{body}"
    );
    let (status, _) = p
        .act(&id, WARD_TOKEN, json!({"action": "cancel", "reason": "x"}))
        .await;
    assert_eq!(status, 403);
    let (status, body) = p.act(&id, OPERATOR_TOKEN, json!({"action": "fly"})).await;
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

/// A router replaying a report after a crash writes its revision 1 again, here after the ward
/// unit's acknowledgement made revision 2. The incident topic is compacted (each key's last
/// record is what stays), so the dashboard owning the incident writes revision 2 again, the
/// same bytes, and the last record is the latest revision once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_revision_1_after_a_change_is_followed_by_the_latest_again() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p = Pipeline::start("life-latest", 2, 1).await;
    let id = p.file_report(WARD_OF_TOKEN).await;
    let (status, _) = p
        .act(&id, WARD_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 200);
    let raw = |p: &Pipeline| -> Vec<Vec<u8>> {
        read_topic(
            &p.settings.config.kafka.brokers,
            &p.settings,
            &p.settings.config.topics.incidents,
        )
        .into_iter()
        .filter(|(k, _)| *k == id)
        .map(|(_, v)| v)
        .collect()
    };
    let written = raw(&p);
    let revision = |v: &[u8]| serde_json::from_slice::<Value>(v).unwrap()["revision"].as_u64();
    assert_eq!(
        written.iter().map(|v| revision(v)).collect::<Vec<_>>(),
        [Some(1), Some(2)]
    );
    let producer: FutureProducer = ioc_config::kafka::producer_config(&p.settings.config)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&p.settings.config.topics.incidents)
                .key(&id)
                .payload(&written[0]),
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("the replayed revision 1 is written");
    let records = eventually(
        "revision 2 written again after the replayed revision 1",
        || {
            let records = raw(&p);
            async move { (records.len() >= 4).then_some(records) }
        },
    )
    .await;
    assert_eq!(records[2], written[0], "the replayed revision 1");
    assert_eq!(
        records.last(),
        Some(&written[1]),
        "the latest revision, byte for byte, is last again"
    );
    // The view never went back.
    let (status, body) = p
        .dashboard_as(&format!("/v1/incidents/{id}"), OPERATOR_TOKEN)
        .await;
    assert_eq!((status, body["revision"].as_u64()), (200, Some(2)));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_incident_is_rerouted_and_duplicates_are_merged() {
    let p = Pipeline::start("life-reroute", 2, 1).await;
    let id = p.file_report(WARD_OF_TOKEN).await;
    let (status, _) = p
        .act(&id, WARD_TOKEN, json!({"action": "reject", "reason": " "}))
        .await;
    assert_eq!(status, 422, "a rejection needs a reason");
    let (status, body) = p
        .act(
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

    let (status, _) = p
        .act(
            &id,
            OPERATOR_TOKEN,
            json!({"action": "assign", "ward_id": "NOWHERE"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = p
        .act(
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
    let (status, _) = p
        .act(&id, WARD_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 403);

    // A second report of the same problem is merged into the first.
    let dup = p.file_report("P002").await;
    let (status, body) = p
        .act(
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
    let (status, _) = p
        .act(
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
        let (status, body) = p.act(&id, p2, action).await;
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

    // The assignments topic, keyed by ward and incident, told the first ward it got the
    // incident and then lost it, and the second ward that it got it.
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
            let ward = r["ward_id"].as_str().unwrap().to_string();
            assert_eq!(
                k,
                format!("{ward}/{}", r["incident"]["id"].as_str().unwrap()),
                "keyed by ward and incident"
            );
            (r["incident"]["id"] == id.as_str())
                .then(|| (ward, r["change"].as_str().unwrap().to_string()))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disputed_resolution_reopens_within_the_window_only() {
    let clock = TestClock::starting_now();
    let p = Pipeline::start_with("life-reopen", 2, 1, Some(clock.clone()), |_| {}).await;
    let id = p.file_report(WARD_OF_TOKEN).await;
    for action in [
        json!({"action": "acknowledge"}),
        json!({"action": "resolve", "result": "Đã khơi thông cống"}),
    ] {
        let (status, body) = p.act(&id, WARD_TOKEN, action).await;
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
        let (status, body) = p.act(&id, WARD_TOKEN, action).await;
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
    let other = p.file_report(WARD_OF_TOKEN).await;
    let (status, body) = p
        .act(
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
    let (status, _) = p
        .act(&other, WARD2_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 200);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_verification_required_operators_verify_before_the_ward_sees_work() {
    let p = Pipeline::start_with("life-verify", 2, 1, None, |s| {
        s.config.router.require_verification = ioc_config::Verification::Reports;
    })
    .await;
    let id = p.file_report(WARD_OF_TOKEN).await;
    let fresh = p.dashboard(&format!("/v1/incidents/{id}")).await;
    assert_eq!(fresh["status"], "new");
    assert_eq!(fresh["ward"]["id"], WARD_OF_TOKEN, "the router's proposal");
    let (_, work) = p.dashboard_as("/v1/assignments", WARD_TOKEN).await;
    assert!(work.as_array().unwrap().is_empty(), "not the unit's yet");
    let (status, _) = p
        .act(&id, WARD_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 409);

    let (status, body) = p
        .act(
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
    let (status, body) = p
        .act(
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
    let (status, _) = p
        .act(&id, WARD_TOKEN, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(status, 200);
    p.stop().await;
}
