//! A boundary reform while cases are open, end to end on the demo city: incidents routed under
//! the old map are handed to the units of the new one when it takes effect (on the dashboard's
//! clock), the old unit's list loses them and the new unit's gains them, the assignments topic
//! says withdrawn and assigned, closed cases stay where they were, and a dashboard started
//! afterwards replays the same state without writing anything again.

mod common;

use common::{
    eventually, point_in, read_topic, Pipeline, TestClock, OPERATOR_TOKEN, WARD2, WARD2_TOKEN,
    WARD_OF_TOKEN, WARD_TOKEN,
};
use ioc_config::load::token_digest;
use ioc_config::{BoundarySetConfig, Role, TokenConfig};
use serde_json::{json, Value};

const NEW_UNIT_TOKEN: &str = "test-new-unit-token";

/// The unit of the reformed demo city that holds `ward`'s test point.
fn successor(ward: &str) -> String {
    let index = ioc_router::wards::WardIndex::build(
        ioc_router::wards::demo::reformed_wards(),
        ioc_router::wards::BuildOptions::default(),
    );
    let (lat, lon) = point_in(ward);
    let w = index.locate(lon, lat).ward.expect("inside the new map");
    index.wards()[w as usize].id.clone()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_incidents_move_to_the_new_units_when_a_reform_takes_effect() {
    let clock = TestClock::starting_now();
    let reform = clock.now() + chrono::Duration::hours(1);
    let new_unit = successor(WARD_OF_TOKEN);
    let unit = new_unit.clone();
    let mut p = Pipeline::start_with("reform", 1, 1, Some(clock.clone()), move |s| {
        let old = &mut s.config.boundaries[0];
        old.valid_to = Some(reform);
        let reformed = BoundarySetConfig {
            version: "demo-reform".into(),
            file: "embedded:demo/wards-reformed.geojson".into(),
            id_property: old.id_property.clone(),
            name_property: old.name_property.clone(),
            valid_from: reform,
            valid_to: None,
            predecessors: None,
        };
        s.config.boundaries.push(reformed);
        s.config.dashboard.sla_check_interval.0 = std::time::Duration::from_millis(200);
        s.config.dashboard.tokens.push(TokenConfig {
            name: "test unit after the reform".into(),
            sha256: token_digest(NEW_UNIT_TOKEN),
            role: Role::Ward,
            ward: Some(unit),
            plates: false,
        });
    })
    .await;

    // Wards are found by name without diacritics ("phuong an binh" for "Phường An Bình").
    let found = p.dashboard("/v1/wards?q=phuong%20an%20binh").await;
    let names: Vec<&str> = found["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Phường An Bình"), "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("Phường An Bình")),
        "{names:?}"
    );
    let (status, _) = p.dashboard_as("/v1/wards?name=x", OPERATOR_TOKEN).await;
    assert_eq!(status, 400, "unknown filters are refused");
    // The map is drawn from simplified outlines (lookups keep the exact ones).
    let all = p.dashboard("/v1/wards").await;
    let drawn: usize = all["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| vertices(&f["geometry"]["coordinates"]))
        .sum();
    let exact: usize = ioc_router::wards::demo::wards()
        .iter()
        .flat_map(|w| &w.geometry.0)
        .map(|p| p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>())
        .sum();
    assert_eq!(all["features"].as_array().unwrap().len(), 177);
    assert!(drawn < exact, "{drawn} drawn of {exact}");

    // Before the reform: two open cases in one ward (one acknowledged), one closed in another.
    let assigned = p.file_report(WARD_OF_TOKEN).await;
    let acknowledged = p.file_report(WARD_OF_TOKEN).await;
    let closed = p.file_report(WARD2).await;
    let ack = json!({"action": "acknowledge"});
    assert_eq!(p.act(&acknowledged, WARD_TOKEN, ack.clone()).await.0, 200);
    for step in [
        ack,
        json!({"action": "resolve", "result": "Đã nạo vét cống"}),
    ] {
        assert_eq!(p.act(&closed, WARD2_TOKEN, step).await.0, 200);
    }
    assert_eq!(
        p.act(&closed, OPERATOR_TOKEN, json!({"action": "close"}))
            .await
            .0,
        200
    );
    let (_, work) = p.dashboard_as("/v1/assignments", WARD_TOKEN).await;
    let mut before = ids(&work);
    before.sort();
    let mut expected = vec![assigned.clone(), acknowledged.clone()];
    expected.sort();
    assert_eq!(before, expected);
    let closed_before = p.revisions_on_topic(&closed).len();

    // The new map takes effect.
    clock.advance(chrono::Duration::hours(2));
    for id in [&assigned, &acknowledged] {
        let i = p
            .incident_when(id, "handed over", |i| {
                i["assignment"]["boundary_version"] == "demo-reform"
            })
            .await;
        assert_eq!(i["ward"]["id"], new_unit.as_str(), "{i}");
        assert_eq!(
            i["status"], "assigned",
            "the new unit has to acknowledge it: {i}"
        );
        assert_eq!(i["previous_ward"]["id"], WARD_OF_TOKEN);
        let step = i["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(step["action"], "hand_over");
        assert_eq!(step["hand_over"]["from_ward"]["id"], WARD_OF_TOKEN);
        assert_eq!(step["hand_over"]["from_set"], "demo-2020");
        assert_eq!(step["hand_over"]["to_ward"]["id"], new_unit.as_str());
        assert_eq!(step["hand_over"]["to_set"], "demo-reform");
        assert_eq!(step["at"], json!(reform), "dated when the map changed");
    }
    let (_, old_work) = p.dashboard_as("/v1/assignments", WARD_TOKEN).await;
    assert_eq!(
        ids(&old_work),
        Vec::<String>::new(),
        "the old unit's list is empty"
    );
    let (_, new_work) = p.dashboard_as("/v1/assignments", NEW_UNIT_TOKEN).await;
    let mut now_listed = ids(&new_work);
    now_listed.sort();
    assert_eq!(now_listed, expected, "the new unit lists both");
    let c = p.incident_when(&closed, "read", |_| true).await;
    assert_eq!(c["ward"]["id"], WARD2, "a closed case stays where it was");
    assert_eq!(p.revisions_on_topic(&closed).len(), closed_before);
    assert_eq!(
        p.metrics
            .handovers
            .with_label_values(&["demo-reform", "handed_over"])
            .get(),
        2
    );

    // The assignments topic: withdrawn from the old ward, assigned to the new one.
    let wanted: Vec<(String, String, String)> = [&assigned, &acknowledged]
        .iter()
        .flat_map(|id| {
            [
                (
                    WARD_OF_TOKEN.to_string(),
                    "withdrawn".to_string(),
                    id.to_string(),
                ),
                (new_unit.clone(), "assigned".to_string(), id.to_string()),
            ]
        })
        .collect();
    eventually("withdrawn and assigned records for both", || async {
        let seen: Vec<(String, String, String)> = read_topic(
            &p.settings.config.kafka.brokers,
            &p.settings,
            &p.settings.config.topics.assignments,
        )
        .into_iter()
        .map(|(k, v)| {
            let r: Value = serde_json::from_slice(&v).unwrap();
            let change = r["change"].as_str().unwrap().to_string();
            let incident = r["incident"]["id"].as_str().unwrap().to_string();
            // Keyed by ward and incident.
            let ward = k
                .strip_suffix(&format!("/{incident}"))
                .unwrap_or(&k)
                .to_string();
            (ward, change, incident)
        })
        .collect();
        wanted.iter().all(|w| seen.contains(w)).then_some(())
    })
    .await;

    // The new unit can work it; the old one no longer can.
    let ack = json!({"action": "acknowledge"});
    assert_eq!(p.act(&assigned, WARD_TOKEN, ack.clone()).await.0, 403);
    assert_eq!(p.act(&assigned, NEW_UNIT_TOKEN, ack).await.0, 200);

    // A dashboard started now replays the topic to the same state and hands nothing over twice.
    let revisions = p.revisions_on_topic(&acknowledged).len();
    let seen_before = p.incident_when(&acknowledged, "read", |_| true).await;
    p.stop_router_and_dashboard().await;
    p.start_dashboard().await;
    let replayed = p
        .incident_when(&acknowledged, "replayed", |i| {
            i["revision"] == seen_before["revision"]
        })
        .await;
    assert_eq!(replayed, seen_before);
    // Several monitor passes later, still nothing new for it.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(p.revisions_on_topic(&acknowledged).len(), revisions);
    p.stop().await;
}

/// Positions in a GeoJSON coordinates array, however deeply nested.
fn vertices(coordinates: &Value) -> usize {
    match coordinates.as_array() {
        Some(a) if a.first().is_some_and(Value::is_number) => 1,
        Some(a) => a.iter().map(vertices).sum(),
        None => 0,
    }
}
