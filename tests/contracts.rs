//! The published contracts hold against the real thing: each stage's OpenAPI document lists
//! exactly the methods its handlers accept, real responses validate against the documented
//! schemas, and the records the pipeline really writes to every topic validate against the JSON
//! Schema of their type.

mod common;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::{
    point_in, read_topic, Pipeline, CAMERA_KEY, OPERATOR_TOKEN, WARD_OF_TOKEN, WARD_TOKEN,
};
use ioc_config::http::undocumented_methods;
use ioc_config::load::Settings;
use ioc_router::wards::BoundarySets;
use ioc_schema::metrics::Metrics;
use ioc_schema::openapi::record_schemas;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

/// Settings whose producers point at a closed port: no handler reached here needs Kafka.
fn offline_settings() -> Arc<Settings> {
    let env = [("IOC_KAFKA__BROKERS".to_string(), "127.0.0.1:9".to_string())];
    Arc::new(Settings::load(None, env).unwrap())
}

#[tokio::test]
async fn every_stage_routes_exactly_the_methods_it_documents() {
    let settings = offline_settings();
    let metrics = Metrics::new();
    let ingest =
        ioc_ingest::app(ioc_ingest::AppState::new(settings.clone(), metrics.clone()).unwrap());
    let problems = undocumented_methods(ingest, &ioc_ingest::openapi(), "x").await;
    assert!(problems.is_empty(), "ingest: {problems:#?}");

    let state = ioc_dashboard::AppState::new(
        settings.clone(),
        metrics.clone(),
        ioc_dashboard::system_clock(),
    )
    .unwrap();
    let dashboard = ioc_dashboard::app(state);
    let problems = undocumented_methods(dashboard, &ioc_dashboard::openapi(), "x.json").await;
    assert!(problems.is_empty(), "dashboard: {problems:#?}");

    let sets = Arc::new(RwLock::new(Arc::new(
        BoundarySets::load(&settings, None).unwrap(),
    )));
    let router = ioc_router::pipeline::http_app(metrics, sets, None);
    let problems = undocumented_methods(router, &ioc_router::pipeline::openapi(), "x").await;
    assert!(problems.is_empty(), "router: {problems:#?}");
}

/// Validates `instance` against `schema`, whose `$ref`s point into `doc`'s components.
fn validate(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let mut root = schema.clone();
    if let Some(components) = doc.get("components") {
        root["components"] = components.clone();
    }
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its contract:\n{}\n{instance:.2000}",
        errors.join("\n")
    );
}

/// The documented JSON schema of `method path`'s answer with `status`.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} answered {status}, which its document does not describe"
    );
    schema.clone()
}

/// Sends a request and checks the answer against the document.
async fn checked(
    doc: &Value,
    method: &str,
    path: &str,
    req: reqwest::RequestBuilder,
) -> (u16, Value) {
    let resp = req.send().await.expect("the stage answers");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON answer");
    let schema = response_schema(doc, method, path, status);
    validate(doc, &schema, &body, &format!("{method} {path} → {status}"));
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_and_real_records_match_the_published_contracts() {
    let p = Pipeline::start("contracts", 2, 1).await;
    let ingest_doc = ioc_ingest::openapi();
    let dash_doc = ioc_dashboard::openapi();
    let (lat, lon) = point_in(WARD_OF_TOKEN);

    // Ingest: a report, a refused report, a camera batch, a refused camera batch.
    let report = json!({
        "channel": "app", "category": "environment", "text": "Nước ngập sau mưa",
        "location": {"lat": lat, "lon": lon}, "reporter": {"phone": "0900000001"},
        "photo_urls": ["https://app.example.vn/p/1.jpg"], "submitted_at": chrono::Utc::now(),
    });
    let (_, accepted) = checked(
        &ingest_doc,
        "POST",
        "/v1/reports",
        p.http
            .post(format!("{}/v1/reports", p.ingest_url))
            .json(&report),
    )
    .await;
    let id = accepted["tracking_id"].as_str().unwrap().to_string();
    let (status, _) = checked(
        &ingest_doc,
        "POST",
        "/v1/reports",
        p.http
            .post(format!("{}/v1/reports", p.ingest_url))
            .json(&json!({"channel": "app"})),
    )
    .await;
    assert_eq!(status, 422);
    // An accident (an incident) and a red-light capture (an enforcement record).
    let camera = json!([{"camera_id": "CAM-0001", "event_type": "accident", "confidence": 0.8,
        "detected_at": chrono::Utc::now(), "plate": "29A-00001"},
        {"camera_id": "CAM-0001", "event_type": "red_light_violation", "confidence": 0.9,
        "detected_at": chrono::Utc::now(), "plate": "29A-00002", "lane": "1"}]);
    let (_, cams) = checked(
        &ingest_doc,
        "POST",
        "/v1/camera-events",
        p.http
            .post(format!("{}/v1/camera-events", p.ingest_url))
            .bearer_auth(CAMERA_KEY)
            .json(&camera),
    )
    .await;
    let camera_incident = cams["incident_ids"][0].as_str().unwrap().to_string();
    let (status, _) = checked(
        &ingest_doc,
        "POST",
        "/v1/camera-events",
        p.http
            .post(format!("{}/v1/camera-events", p.ingest_url))
            .json(&camera),
    )
    .await;
    assert_eq!(status, 401);
    // A camera system in its vendor's format: an ONVIF rule turning true, then an unknown
    // device.
    let notify = |device: &str| {
        format!(
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsnt=\"http://docs.oasis-open.org/wsn/b-2\" xmlns:tt=\"http://www.onvif.org/ver10/schema\">\
             <s:Body><wsnt:Notify><wsnt:NotificationMessage><wsnt:Topic>tns1:RuleEngine/FieldDetector/ObjectsInside</wsnt:Topic>\
             <wsnt:Message><tt:Message UtcTime=\"{}\" PropertyOperation=\"Changed\"><tt:Source>\
             <tt:SimpleItem Name=\"VideoSourceConfigurationToken\" Value=\"VideoSource_1\"/><tt:SimpleItem Name=\"Rule\" Value=\"{device}\"/></tt:Source>\
             <tt:Data><tt:SimpleItem Name=\"IsInside\" Value=\"true\"/></tt:Data></tt:Message></wsnt:Message>\
             </wsnt:NotificationMessage></wsnt:Notify></s:Body></s:Envelope>",
            chrono::Utc::now().to_rfc3339()
        )
    };
    for (device, want) in [("onvif-0005", 202), ("onvif-9999", 422)] {
        let (status, _) = checked(
            &ingest_doc,
            "POST",
            "/v1/camera-events/{format}",
            p.http
                .post(format!(
                    "{}/v1/camera-events/onvif?device={device}",
                    p.ingest_url
                ))
                .bearer_auth(CAMERA_KEY)
                .header("content-type", "application/xml")
                .body(notify(device)),
        )
        .await;
        assert_eq!(status, want, "{device}");
    }
    checked(
        &ingest_doc,
        "GET",
        "/v1/categories",
        p.http.get(format!("{}/v1/categories", p.ingest_url)),
    )
    .await;

    // A record no stage could read, straight onto the camera topic: it becomes a dead letter.
    let producer: FutureProducer = ioc_config::kafka::producer_config(&p.settings.config)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&p.settings.config.topics.camera_events)
                .key("broken")
                .payload("{\"camera\": tru"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    p.wait_for_incidents(2).await;
    p.incident_when(&id, "appears", |_| true).await;
    common::eventually("the red-light record counted", || async {
        let (_, rows) = p
            .dashboard_as("/v1/violations/counts", OPERATOR_TOKEN)
            .await;
        rows.as_array().is_some_and(|r| !r.is_empty()).then_some(())
    })
    .await;

    // Dashboard: the reads, an action, a refused action, the citizen's view and answers.
    let get = |path: String, token: Option<&str>| {
        let mut req = p.http.get(format!("{}{path}", p.dashboard_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    };
    for (path, template) in [
        ("/v1/incidents?limit=10".to_string(), "/v1/incidents"),
        (format!("/v1/incidents/{id}"), "/v1/incidents/{id}"),
        (
            format!("/v1/incidents/{camera_incident}"),
            "/v1/incidents/{id}",
        ),
        ("/v1/stats".to_string(), "/v1/stats"),
        ("/v1/assignments".to_string(), "/v1/assignments"),
        ("/v1/overdue".to_string(), "/v1/overdue"),
        ("/v1/figures".to_string(), "/v1/figures"),
        ("/v1/wards".to_string(), "/v1/wards"),
        ("/v1/incidents?status=typo".to_string(), "/v1/incidents"),
        ("/v1/violations/counts".to_string(), "/v1/violations/counts"),
        ("/v1/violations?limit=5".to_string(), "/v1/violations"),
        ("/v1/violations?limit=many".to_string(), "/v1/violations"),
    ] {
        checked(&dash_doc, "GET", template, get(path, Some(OPERATOR_TOKEN))).await;
    }
    checked(
        &dash_doc,
        "GET",
        "/v1/incidents",
        get("/v1/incidents".into(), None),
    )
    .await;
    let act = |body: Value, token: &str| {
        p.http
            .post(format!("{}/v1/incidents/{id}/actions", p.dashboard_url))
            .bearer_auth(token)
            .json(&body)
    };
    let path = "/v1/incidents/{id}/actions";
    let (status, _) = checked(
        &dash_doc,
        "POST",
        path,
        act(json!({"action": "acknowledge"}), WARD_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = checked(
        &dash_doc,
        "POST",
        path,
        act(json!({"action": "acknowledge"}), WARD_TOKEN),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = checked(
        &dash_doc,
        "POST",
        path,
        act(
            json!({"action": "reject", "reason": "không thuộc phường", "ward_id": "P002"}),
            WARD_TOKEN,
        ),
    )
    .await;
    assert_eq!(status, 200);
    checked(
        &dash_doc,
        "GET",
        "/v1/reports/{id}",
        get(format!("/v1/reports/{id}"), None),
    )
    .await;
    let (status, _) = checked(
        &dash_doc,
        "POST",
        "/v1/reports/{id}/confirm",
        p.http
            .post(format!("{}/v1/reports/{id}/confirm", p.dashboard_url)),
    )
    .await;
    assert_eq!(status, 409);
    // Ready: the broker answers, and the dashboard has read the incident topic.
    let (status, _) = checked(&dash_doc, "GET", "/readyz", get("/readyz".into(), None)).await;
    assert_eq!(status, 200);
    let (status, _) = checked(
        &ingest_doc,
        "GET",
        "/readyz",
        p.http.get(format!("{}/readyz", p.ingest_url)),
    )
    .await;
    assert_eq!(status, 200);
    checked(
        &dash_doc,
        "GET",
        "/openapi.json",
        get("/openapi.json".into(), None),
    )
    .await;

    // The validator does refuse what breaks a contract (else the checks below prove nothing).
    let incident_schema = &record_schemas()[2].schema;
    let mut broken = p.dashboard(&format!("/v1/incidents/{id}")).await;
    broken["status"] = json!("lost");
    let compiled = jsonschema::validator_for(incident_schema).unwrap();
    assert!(!compiled.is_valid(&broken));
    broken["status"] = json!("assigned");
    assert!(
        compiled.is_valid(&broken),
        "a served incident is a valid record"
    );

    // Every record on every topic matches its type's schema.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let bootstrap = p.settings.config.kafka.brokers.clone();
    let topics = &p.settings.config.topics;
    for r in record_schemas() {
        let topic = match r.topic_role {
            "reports" => &topics.reports,
            "camera_events" => &topics.camera_events,
            "incidents" => &topics.incidents,
            "assignments" => &topics.assignments,
            "dead_letter" => &topics.dead_letter,
            "commands" => &topics.commands,
            "command_results" => &topics.command_results,
            "situations" => &topics.situations,
            "violations" => &topics.violations,
            other => panic!("no topic for {other}"),
        };
        let records = tokio::task::spawn_blocking({
            let (b, s, t) = (bootstrap.clone(), p.settings.clone(), topic.clone());
            move || read_topic(&b, &s, &t)
        })
        .await
        .unwrap();
        let readable: Vec<Value> = records
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice(v).ok())
            .collect();
        assert!(!readable.is_empty(), "nothing on {topic} to check");
        for (i, record) in readable.iter().enumerate() {
            validate(
                &json!({}),
                &r.schema,
                record,
                &format!("{} record {i} on {topic}", r.name),
            );
        }
        println!("{}: {} records match", r.name, readable.len());
    }
    p.stop().await;
}
