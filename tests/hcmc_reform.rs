//! Ho Chi Minh City end to end on its real maps. The reform: incidents filed against the 322 wards
//! of 2019, some cancelled before the reform and some left open across it, then the 168 units of
//! 2025 take effect with the city's predecessors table. The router routes by received time, so
//! the reform's moment (2025-07-01 00:00 in Vietnam) is moved to an hour after the test starts
//! and the dashboard's clock is moved past it.
//!
//! And the pipeline on the 168 units of 2025 with the city's 697 traffic cameras as the camera
//! registry: an event from every camera goes through ingest, Kafka and the router.
//!
//! Needs `../shared/data/vietnam/` (or `IOC_SHARED_DATA`); skips with a printed reason when it
//! is absent.

mod common;

use std::path::PathBuf;

use common::{eventually, read_topic, Pipeline, TestClock, CAMERA_KEY, OPERATOR_TOKEN};
use geo::InteriorPoint;
use ioc_config::load::token_digest;
use ioc_config::{BoundarySetConfig, PredecessorsConfig, Role, TokenConfig};
use ioc_router::wards::{BoundarySets, BuildOptions, Ward, WardIndex};
use serde_json::{json, Value};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("IOC_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join("vietnam");
    dir.join("hcmc_2025/hcmc_wards_2025_predecessors.csv")
        .is_file()
        .then_some(dir)
}

fn wards(file: &std::path::Path, id: &str, name: &str) -> Vec<Ward> {
    ioc_schema::boundary::read_wards(file, id, Some(name))
        .unwrap()
        .into_iter()
        .map(Ward::from)
        .collect()
}

/// (lat, lon) of a point well inside the 2019 ward `id`.
fn inside(old: &[Ward], id: &str) -> (f64, f64) {
    let w = old.iter().find(|w| w.id == id).expect("a 2019 ward");
    let p = w.geometry.interior_point().unwrap();
    (p.y(), p.x())
}

/// Tokens of the units before and after the reform that the test signs in as.
const OLD_UNIT: (&str, &str) = ("27121", "test-unit-2019-ward-8-district-3");
const NEW_UNIT: (&str, &str) = ("27139", "test-unit-2025-xuan-hoa");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_cases_move_to_the_2025_units_and_figures_count_across_the_change() {
    let Some(dir) = data_dir() else {
        println!("skipped: ../shared/data/vietnam is absent (set IOC_SHARED_DATA)");
        return;
    };
    let (file_2019, file_2025) = (
        dir.join("hcmc_wards_2019_cityscope.geojson"),
        dir.join("hcmc_2025/hcmc_wards_2025.geojson"),
    );
    let old = wards(&file_2019, "com_id", "com_name");
    let new_index = WardIndex::build(wards(&file_2025, "code", "name"), BuildOptions::default());
    let clock = TestClock::starting_now();
    let reform = clock.now() + chrono::Duration::hours(1);
    let boundaries = vec![
        BoundarySetConfig {
            version: "hcmc-2019".into(),
            file: file_2019.display().to_string(),
            id_property: "com_id".into(),
            name_property: Some("com_name".into()),
            valid_from: "2019-01-01T00:00:00Z".parse().unwrap(),
            valid_to: Some(reform),
            predecessors: None,
        },
        BoundarySetConfig {
            version: "hcmc-2025".into(),
            file: file_2025.display().to_string(),
            id_property: "code".into(),
            name_property: Some("name".into()),
            valid_from: reform,
            valid_to: None,
            predecessors: Some(PredecessorsConfig {
                file: dir
                    .join("hcmc_2025/hcmc_wards_2025_predecessors.csv")
                    .display()
                    .to_string(),
                id_column: "code".into(),
                list_column: "predecessor_units_before_2025_07_01".into(),
            }),
        },
    ];
    let configured = boundaries.clone();
    let mut p = Pipeline::start_with("hcmc-reform", 1, 1, Some(clock.clone()), move |s| {
        s.config.boundaries = configured;
        s.config.dashboard.sla_check_interval.0 = std::time::Duration::from_millis(300);
        for (ward, token) in [OLD_UNIT, NEW_UNIT] {
            s.config.dashboard.tokens.push(TokenConfig {
                name: format!("test unit {ward}"),
                sha256: token_digest(token),
                role: Role::Ward,
                ward: Some(ward.into()),
                plates: false,
            });
        }
    })
    .await;

    // The table as the stages read it: most 2019 wards are placed by name; the rest (merged
    // again in 2020-2021, so the table names their successors) are counted by location.
    let sets = BoundarySets::load(&p.settings, None).unwrap();
    let table = sets.sets[1].predecessors.as_ref().expect("a table");
    println!(
        "predecessors table: {} of {} wards of 2019 placed, {} entries name no ward of the 2019 map",
        table.resolved_wards(),
        old.len(),
        table.unresolved.len()
    );
    assert!(table.resolved_wards() >= 250, "{}", table.resolved_wards());
    assert_eq!(
        table.successors("26734"),
        [new_position(&new_index, "26737")]
    );
    assert_eq!(
        table.successors("27121"),
        [] as [u32; 0],
        "Ward 8 of District 3 became Võ Thị Sáu in 2020"
    );

    // Filed under the 2019 map: Bến Nghé and Ward 8 (District 3) left open; Tân Định and a
    // second one in Ward 8 cancelled before the reform.
    let file = |ward: &'static str| {
        let (lat, lon) = inside(&old, ward);
        let p = &p;
        async move { file_at(p, lat, lon).await }
    };
    let ben_nghe = file("26740").await;
    let ward_8 = file("27121").await;
    let tan_dinh = file("26734").await;
    let ward_8_done = file("27121").await;
    for id in [&tan_dinh, &ward_8_done] {
        let cancel = json!({"action": "cancel", "reason": "trùng với phản ánh khác"});
        assert_eq!(p.act(id, OPERATOR_TOKEN, cancel).await.0, 200);
    }
    let before = p.incident_when(&ward_8, "routed", |_| true).await;
    assert_eq!(before["assignment"]["boundary_version"], "hcmc-2019");
    assert_eq!(before["ward"]["id"], "27121");
    let (_, list) = p.dashboard_as("/v1/assignments", OLD_UNIT.1).await;
    assert_eq!(ids(&list), std::slice::from_ref(&ward_8));

    // 2025-07-01.
    clock.advance(chrono::Duration::hours(2));
    for (id, old_ward, new_ward) in [(&ben_nghe, "26740", "26740"), (&ward_8, "27121", "27139")] {
        let i = p
            .incident_when(id, "handed over", |i| {
                i["assignment"]["boundary_version"] == "hcmc-2025"
            })
            .await;
        assert_eq!(i["ward"]["id"], new_ward, "{i}");
        assert_eq!(i["previous_ward"]["id"], old_ward);
        let step = i["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(step["action"], "hand_over");
        assert_eq!(step["hand_over"]["from_set"], "hcmc-2019");
        assert_eq!(step["hand_over"]["to_set"], "hcmc-2025");
    }
    // Names keep their diacritics on the new map (the 2019 file has none).
    let i = p.incident_when(&ben_nghe, "read", |_| true).await;
    assert_eq!(i["ward"]["name"], "Sài Gòn");
    for id in [&tan_dinh, &ward_8_done] {
        let i = p.incident_when(id, "read", |_| true).await;
        assert_eq!(
            i["assignment"]["boundary_version"], "hcmc-2019",
            "cancelled cases stay"
        );
    }
    let (_, list) = p.dashboard_as("/v1/assignments", OLD_UNIT.1).await;
    assert_eq!(ids(&list), Vec::<String>::new());
    let (_, list) = p.dashboard_as("/v1/assignments", NEW_UNIT.1).await;
    assert_eq!(ids(&list), std::slice::from_ref(&ward_8));

    eventually(
        "withdrawn from 27121 and assigned to 27139 on the assignments topic",
        || async {
            let seen: Vec<(String, String)> = read_topic(
                &p.settings.config.kafka.brokers,
                &p.settings,
                &p.settings.config.topics.assignments,
            )
            .into_iter()
            .filter_map(|(k, v)| {
                let r: Value = serde_json::from_slice(&v).unwrap();
                (r["incident"]["id"] == ward_8.as_str()).then(|| {
                    let ward = k.split_once('/').map_or(k.as_str(), |(w, _)| w).to_string();
                    (ward, r["change"].as_str().unwrap().into())
                })
            })
            .collect();
            let want = [("27121", "withdrawn"), ("27139", "assigned")];
            want.iter()
                .all(|(w, c)| seen.iter().any(|(k, ch)| k == w && ch == c))
                .then_some(())
        },
    )
    .await;

    // Figures per 2025 unit: the handed-over cases count where they are, Tân Định's through the
    // table (into the new Tân Định, 26737), the cancelled Ward 8 case by its location.
    let figures = p.dashboard("/v1/figures?boundary_set=hcmc-2025").await;
    assert_eq!(
        figures["placed"],
        json!({"own": 2, "table": 1, "location": 1}),
        "{figures}"
    );
    let row = |ward: &str| -> Value {
        figures["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ward"] == ward)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {ward}: {figures}"))
    };
    assert_eq!(row("26740")["received"], 1);
    assert_eq!(row("26737")["received"], 1);
    assert_eq!(row("26737")["cancelled"], 1);
    assert_eq!(row("27139")["received"], 2);
    assert_eq!(figures["total"]["received"], 4);
    // Without it, each case counts in the ward it holds now.
    let plain = p.dashboard("/v1/figures").await;
    let wards: Vec<&str> = plain["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ward"].as_str().unwrap())
        .collect();
    assert_eq!(wards, ["26734", "26740", "27121", "27139"]);
    let (status, body) = p
        .dashboard_as("/v1/figures?boundary_set=hcmc-2030", OPERATOR_TOKEN)
        .await;
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the sets are: hcmc-2019, hcmc-2025"),
        "{body}"
    );
    p.stop_router_and_dashboard().await;
    p.stop().await;
}

fn new_position(index: &WardIndex, id: &str) -> u32 {
    index.wards().iter().position(|w| w.id == id).unwrap() as u32
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Files a citizen's report at (lat, lon) and waits for its incident; the tracking id.
async fn file_at(p: &Pipeline, lat: f64, lon: f64) -> String {
    let body = json!({
        "channel": "app", "category": "environment", "text": "Rác thải ùn ứ trên vỉa hè",
        "location": {"lat": lat, "lon": lon}, "submitted_at": chrono::Utc::now(),
    });
    let resp = p
        .http
        .post(format!("{}/v1/reports", p.ingest_url))
        .json(&body)
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.json::<Value>().await.unwrap()["tracking_id"]
        .as_str()
        .unwrap()
        .to_string();
    p.incident_when(&id, "appears", |_| true).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_each_of_the_697_cameras_reaches_the_ward_the_city_records() {
    let Some(dir) = data_dir() else {
        println!("skipped: ../shared/data/vietnam is absent (set IOC_SHARED_DATA)");
        return;
    };
    let registry = dir.join("hcmc_2025/hcmc_traffic_cameras_2025.geojson");
    let wards_2025 = dir.join("hcmc_2025/hcmc_wards_2025.geojson");
    let registry_path = registry.display().to_string();
    let registry_text = std::fs::read_to_string(&registry).unwrap();
    let cameras_loaded = ioc_config::load::parse_cameras(&registry_text).expect("a valid registry");
    let p = Pipeline::start_with("hcmc-cameras", 2, 1, None, move |s| {
        s.config.camera_registry = registry_path;
        s.cameras = std::sync::Arc::new(cameras_loaded);
        s.config.boundaries = vec![BoundarySetConfig {
            version: "hcmc-2025".into(),
            file: wards_2025.display().to_string(),
            id_property: "code".into(),
            name_property: Some("name".into()),
            valid_from: "2025-06-30T17:00:00Z".parse().unwrap(),
            valid_to: None,
            predecessors: None,
        }];
    })
    .await;
    let cameras: Value = serde_json::from_str(&registry_text).unwrap();
    let cameras = cameras["features"].as_array().unwrap().clone();
    assert_eq!(cameras.len(), 697);
    // Camera id → the ward the city's portal records for it (none for the three outside).
    let recorded: std::collections::HashMap<String, Option<String>> = cameras
        .iter()
        .map(|c| {
            let ward = c["properties"]["ward_code_2025"]
                .as_str()
                .filter(|w| !w.is_empty())
                .map(String::from);
            (c["id"].as_str().unwrap().to_string(), ward)
        })
        .collect();
    for batch in cameras.chunks(50) {
        let events: Vec<Value> = batch
            .iter()
            .map(|c| {
                json!({"camera_id": c["id"], "event_type": "accident", "confidence": 0.8,
                       "detected_at": chrono::Utc::now()})
            })
            .collect();
        let resp = p
            .http
            .post(format!("{}/v1/camera-events", p.ingest_url))
            .bearer_auth(CAMERA_KEY)
            .json(&events)
            .send()
            .await
            .expect("ingest answers");
        let status = resp.status().as_u16();
        assert_eq!(status, 202, "{}", resp.text().await.unwrap_or_default());
    }
    p.wait_for_incidents(697).await;
    let mut incidents = Vec::new();
    for offset in (0..697).step_by(200) {
        let page = p
            .dashboard(&format!("/v1/incidents?limit=200&offset={offset}"))
            .await;
        incidents.extend(page["items"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(incidents.len(), 697);
    let (mut same, mut nearest, mut triage) = (0, 0, 0);
    for i in &incidents {
        let camera = i["source"]["camera_id"].as_str().unwrap();
        let ours = i["ward"]["id"].as_str();
        match (
            recorded[camera].as_deref(),
            ours,
            i["assignment"]["rule"].as_str(),
        ) {
            (Some(r), Some(o), _) if r == o => same += 1,
            (None, Some(_), Some("nearest")) => nearest += 1,
            (None, None, Some("unassigned")) => triage += 1,
            other => panic!("camera {camera}: {other:?}"),
        }
    }
    println!("697 cameras through the pipeline: {same} in the recorded ward, {nearest} by the nearest-ward rule, {triage} to triage");
    assert_eq!((same, nearest, triage), (694, 2, 1));
    p.stop().await;
}
