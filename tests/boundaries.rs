//! Boundary sets over time: an incident is routed with the map in force when it was received
//! (its record's Kafka time), and a set added to the configuration file while the router runs
//! is picked up without a restart.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, read_topic, Broker, WAIT};
use ioc_config::load::Settings;
use ioc_schema::metrics::Metrics;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

fn config_text(bootstrap: &str, unique: &str, listen: &str, extra_set: Option<&str>) -> String {
    let mut text = format!(
        r#"
[kafka]
brokers = "{bootstrap}"
[topics]
reports = "{unique}.reports"
camera_events = "{unique}.camera"
incidents = "{unique}.incidents"
dead_letter = "{unique}.dlq"
assignments = "{unique}.assignments"
partitions = 1
[router]
group_id = "{unique}-router"
listen = "{listen}"
reload_interval = "200ms"
"#
    );
    if let Some(file) = extra_set {
        // Replaces the demo set from 2030 on.
        text.push_str(&format!(
            r#"
[[boundaries]]
version = "demo-2020"
file = "embedded:demo/wards.geojson"
id_property = "id"
name_property = "name"
valid_from = "2000-01-01T00:00:00Z"
valid_to = "2030-01-01T00:00:00Z"

[[boundaries]]
version = "merged-2030"
file = "{file}"
id_property = "code"
valid_from = "2030-01-01T00:00:00Z"
"#
        ));
    }
    text
}

/// A unique name, a broker with the pipeline's topics under it, and a scratch folder.
fn setup(test: &str) -> (String, Broker, std::path::PathBuf) {
    let unique = format!("{test}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let topics = [
        "reports",
        "camera",
        "incidents",
        "dlq",
        "assignments",
        "incidents.commands",
        "incidents.command-results",
    ]
    .map(|t| format!("{unique}.{t}"));
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let broker = Broker::from_env(&topic_refs, 1);
    let dir = std::env::temp_dir().join(&unique);
    std::fs::create_dir_all(&dir).unwrap();
    (unique, broker, dir)
}

/// Stops the stage, checks it ended cleanly, and cleans up.
async fn finish(
    stop: tokio::sync::watch::Sender<bool>,
    stage: tokio::task::JoinHandle<anyhow::Result<()>>,
    broker: Broker,
    dir: &std::path::Path,
) {
    let _ = stop.send(true);
    tokio::time::timeout(WAIT, stage)
        .await
        .expect("the stage stops in time")
        .expect("the stage did not panic")
        .expect("the stage ended without error");
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// A whole-city ward, as after a merger, in `dir/merged.geojson`.
fn write_merged_map(dir: &std::path::Path) {
    std::fs::write(
        dir.join("merged.geojson"),
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"M1"},
            "geometry":{"type":"Polygon","coordinates":[[[105.8,20.4],[106.0,20.4],[106.0,20.7],[105.8,20.7],[105.8,20.4]]]}}]}"#,
    )
    .unwrap();
}

fn report_at(id: &str, when: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema": "ioc.report.v1", "tracking_id": id, "channel": "hotline", "category": "environment",
        "text": "Ngập nước", "location": {"lat": 20.548, "lon": 105.918},
        "submitted_at": when, "received_at": when,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_boundary_set_is_picked_up_live_and_chosen_by_received_time() {
    let (unique, broker, dir) = setup("e2e-sets");
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let config = dir.join("ioc.toml");
    std::fs::write(
        &config,
        config_text(&broker.bootstrap(), &unique, &listen, None),
    )
    .unwrap();
    let settings = Arc::new(Settings::load(Some(&config), std::iter::empty()).unwrap());
    if let Broker::External(_) = broker {
        ioc_config::kafka::ensure_topics(&settings.config)
            .await
            .unwrap();
    }
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut rx2 = rx.clone();
    let router = tokio::spawn(ioc_router::run(
        settings.clone(),
        Metrics::new(),
        async move {
            let _ = rx2.wait_for(|s| *s).await;
        },
    ));

    write_merged_map(&dir);
    // Modification times have a coarse resolution on some filesystems.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        &config,
        config_text(
            &broker.bootstrap(),
            &unique,
            &listen,
            Some("merged.geojson"),
        ),
    )
    .unwrap();

    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let sets: Value = match http
            .get(format!("http://{listen}/v1/boundary-sets"))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if sets
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["version"] == "merged-2030"))
        {
            break;
        }
        assert!(started.elapsed() < WAIT, "new set not picked up: {sets}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let producer: FutureProducer = ioc_config::kafka::producer_config(&settings.config)
        .create()
        .unwrap();
    // The citizen's own time says nothing about the map: the record's time does.
    for (id, received) in [
        ("before", "2026-05-01T08:00:00Z"),
        ("after", "2031-05-01T08:00:00Z"),
    ] {
        let received: chrono::DateTime<chrono::Utc> = received.parse().unwrap();
        producer
            .send(
                FutureRecord::to(&settings.config.topics.reports)
                    .key(id)
                    .timestamp(received.timestamp_millis())
                    .payload(&report_at(id, "2026-05-01T07:00:00Z")),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let started = Instant::now();
    let incidents = loop {
        let got = read_topic(
            &broker.bootstrap(),
            &settings,
            &settings.config.topics.incidents,
        );
        if got.len() >= 2 || started.elapsed() > WAIT {
            break got;
        }
    };
    let by_id = |id: &str| -> Value {
        let (_, v) = incidents
            .iter()
            .find(|(k, _)| k == id)
            .expect("incident written");
        serde_json::from_slice(v).unwrap()
    };
    let before = by_id("before");
    assert_eq!(before["assignment"]["boundary_version"], "demo-2020");
    assert_ne!(before["ward"]["id"], "M1");
    let after = by_id("after");
    assert_eq!(after["assignment"]["boundary_version"], "merged-2030");
    assert_eq!(after["ward"]["id"], "M1");

    finish(stop, router, broker, &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_picks_up_a_new_map_and_assigns_to_its_wards_without_a_restart() {
    let (unique, broker, dir) = setup("e2e-dash-sets");
    let token = "dashboard-sets-operator";
    let token_lines = format!(
        "\n[[dashboard.tokens]]\nname = \"operator\"\nrole = \"operator\"\nsha256 = \"{}\"\n",
        ioc_config::load::token_digest(token)
    );
    let config = dir.join("ioc.toml");
    std::fs::write(
        &config,
        config_text(&broker.bootstrap(), &unique, "127.0.0.1:0", None) + &token_lines,
    )
    .unwrap();
    let settings = Arc::new(Settings::load(Some(&config), std::iter::empty()).unwrap());
    if let Broker::External(_) = broker {
        ioc_config::kafka::ensure_topics(&settings.config)
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut rx2 = rx.clone();
    let dashboard = tokio::spawn(ioc_dashboard::serve(
        listener,
        settings.clone(),
        Metrics::new(),
        async move {
            let _ = rx2.wait_for(|s| *s).await;
        },
    ));
    let http = reqwest::Client::new();
    let wards = || async {
        http.get(format!("{url}/v1/wards"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()
    };

    // An incident waiting for triage, on the incident topic.
    let mut waiting = ioc_schema::fixtures::incident(
        "triage-1",
        ioc_schema::Status::Unassigned,
        "P001",
        chrono::Utc::now(),
    );
    waiting.ward = None;
    let producer: FutureProducer = ioc_config::kafka::producer_config(&settings.config)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&settings.config.topics.incidents)
                .key("triage-1")
                .payload(&serde_json::to_vec(&waiting).unwrap()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    // The map in force today is the demo city; a merged map takes over from an hour ago.
    eventually("the dashboard serves the demo map", || async {
        wards()
            .await
            .filter(|w| w["boundary_version"] == "demo-2020")
    })
    .await;
    write_merged_map(&dir);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let text = config_text(
        &broker.bootstrap(),
        &unique,
        "127.0.0.1:0",
        Some("merged.geojson"),
    )
    .replace("2030-01-01T00:00:00Z", &an_hour_ago)
        + &token_lines;
    std::fs::write(&config, text).unwrap();
    let w = eventually("the dashboard picks up the new map", || async {
        wards()
            .await
            .filter(|w| w["boundary_version"] == "merged-2030")
    })
    .await;
    assert_eq!(w["features"].as_array().unwrap().len(), 1);
    assert_eq!(w["features"][0]["id"], "M1");
    // An operator can hand the waiting incident to a ward of the new map.
    let (status, body) = eventually("the incident reaches the dashboard", || async {
        let resp = http
            .post(format!("{url}/v1/incidents/triage-1/actions"))
            .bearer_auth(token)
            .json(&json!({"action": "assign", "ward_id": "M1"}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or_default();
        (status != 404 && status != 503).then_some((status, body))
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ward"]["id"], "M1");

    finish(stop, dashboard, broker, &dir).await;
}
