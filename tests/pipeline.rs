//! End to end through HTTP and a Kafka-protocol broker: the embedded mock cluster by default, or
//! the real broker named by `IOC_TEST_BROKERS` (the test script runs these again against tansu).

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{metric_at, read_topic, Pipeline, WAIT, WARD_OF_TOKEN, WARD_TOKEN};
use ioc_router::wards::sets::build_options;
use ioc_router::wards::{brute, demo, WardIndex};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

/// Random points over the demo city and a margin around it (some land outside every ward).
fn points(n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (x, y) = demo::CENTRE;
    (0..n)
        .map(|_| {
            (
                y + rng.random_range(-0.05..0.05),
                x + rng.random_range(-0.06..0.06),
            )
        })
        .collect()
}

fn report(lat: f64, lon: f64, phone: &str, key: Option<&str>) -> Value {
    json!({
        "idempotency_key": key,
        "channel": "app",
        "category": "environment",
        "text": "Rác thải tập kết sai nơi quy định",
        "location": {"lat": lat, "lon": lon, "accuracy_m": 5.0},
        "reporter": {"name": "Nguyễn Văn A", "phone": format!("+84-{phone}")},
        "submitted_at": chrono::Utc::now(),
    })
}

async fn post_report(p: &Pipeline, body: &Value) -> Value {
    let resp = p
        .http
        .post(format!("{}/v1/reports", p.ingest_url))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "report accepted");
    resp.json().await.unwrap()
}

/// What the brute-force rule says for each point: ward id or none.
fn expected_wards(p: &Pipeline, pts: &[(f64, f64)]) -> Vec<Option<String>> {
    let index = WardIndex::build(demo::wards(), build_options(&p.settings));
    pts.iter()
        .map(|&(lat, lon)| {
            brute::locate(&index, lon, lat)
                .ward
                .map(|w| index.wards()[w as usize].id.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_over_http_become_incidents_in_the_brute_force_ward() {
    let p = Pipeline::start("e2e-reports", 4, 1).await;
    let pts = points(80, 7);
    let mut ids = Vec::new();
    for (i, &(lat, lon)) in pts.iter().enumerate() {
        let accepted = post_report(&p, &report(lat, lon, &format!("0912{i:06}"), None)).await;
        ids.push(accepted["tracking_id"].as_str().unwrap().to_string());
    }
    let page = p.wait_for_incidents(pts.len()).await;
    assert_eq!(page["total"], pts.len());
    let expected = expected_wards(&p, &pts);
    let mut assigned = 0;
    for (id, want) in ids.iter().zip(&expected) {
        let incident = p.dashboard(&format!("/v1/incidents/{id}")).await;
        assert_eq!(incident["id"], id.as_str());
        let got = incident["ward"]["id"].as_str().map(str::to_string);
        assert_eq!(&got, want, "incident {id}: {incident}");
        if got.is_some() {
            assigned += 1;
            assert_eq!(incident["status"], "assigned");
            assert_eq!(incident["unit"], "Environment and sanitation team");
        } else {
            assert_eq!(incident["status"], "unassigned");
            assert!(incident["assignment"]["reason"]
                .as_str()
                .unwrap()
                .contains("outside every ward"));
        }
        assert_eq!(incident["assignment"]["boundary_version"], "demo-2020");
    }
    assert!(
        assigned > 40 && assigned < pts.len(),
        "points inside and outside the city: {assigned}"
    );

    // Contact details never reach the dashboard, in any response.
    for path in ["/v1/incidents?limit=500", "/v1/stats", "/v1/wards"] {
        let body = p.dashboard(path).await.to_string();
        assert!(!body.contains("+84-"), "{path} leaks a phone number");
        assert!(!body.contains("Nguyễn"), "{path} leaks a name");
    }
    // Nor does the incident topic.
    let topic = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.incidents,
    );
    assert!(topic
        .iter()
        .all(|(_, v)| !String::from_utf8_lossy(v).contains("+84-")));

    // A ward unit sees its own ward only.
    let (status, mine) = p.dashboard_as("/v1/incidents?limit=500", WARD_TOKEN).await;
    assert_eq!(status, 200);
    let mine = mine["items"].as_array().unwrap();
    assert!(mine.iter().all(|i| i["ward"]["id"] == WARD_OF_TOKEN));
    let (status, _) = p.dashboard_as("/v1/incidents?ward=P002", WARD_TOKEN).await;
    assert_eq!(status, 403);
    let other = ids
        .iter()
        .zip(&expected)
        .find(|(_, w)| w.as_deref().is_some_and(|w| w != WARD_OF_TOKEN))
        .map(|(id, _)| id.clone())
        .unwrap();
    let (status, _) = p
        .dashboard_as(&format!("/v1/incidents/{other}"), WARD_TOKEN)
        .await;
    assert_eq!(status, 403);
    let (status, _) = p.dashboard_as("/v1/stats", "not-a-token").await;
    assert_eq!(status, 401);

    // Stats and the ward map agree with the incidents.
    let stats = p.dashboard("/v1/stats").await;
    assert_eq!(stats["total"], pts.len());
    assert_eq!(stats["by_status"]["assigned"], assigned);
    let wards = p.dashboard("/v1/wards").await;
    let counted: u64 = wards["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["incidents"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, assigned);

    // A citizen can follow their report without a token.
    let public = p.public(&format!("/v1/reports/{}", ids[0])).await;
    assert_eq!(public["tracking_id"], ids[0].as_str());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_dead_lettered_and_the_partition_moves_on() {
    let p = Pipeline::start("e2e-dlq", 1, 1).await;
    let producer: FutureProducer = ioc_config::kafka::producer_config(&p.settings.config)
        .create()
        .unwrap();
    let topic = p.settings.config.topics.camera_events.clone();
    let good = json!({"camera_id": "CAM-0001", "event_type": "accident", "confidence": 0.9,
                      "detected_at": chrono::Utc::now(), "plate": "29A-12345"});
    let unknown_camera = json!({"camera_id": "CAM-NOPE", "event_type": "accident", "confidence": 0.9,
                                "detected_at": chrono::Utc::now()});
    let inputs: Vec<Vec<u8>> = vec![
        b"\xff\xfe not json at all".to_vec(),
        serde_json::to_vec(&unknown_camera).unwrap(),
        serde_json::to_vec(&good).unwrap(),
    ];
    // One partition: the good record sits behind the two bad ones.
    for bytes in &inputs {
        producer
            .send(
                FutureRecord::to(&topic).key("cam").payload(bytes),
                Duration::from_secs(10),
            )
            .await
            .expect("raw record produced");
    }
    let page = p.wait_for_incidents(1).await;
    let incident = &page["items"][0];
    assert_eq!(incident["source"]["camera_id"], "CAM-0001");
    assert!(
        !incident.to_string().contains("29A-12345"),
        "plates never reach the dashboard"
    );

    let started = Instant::now();
    let dead = loop {
        let dead = read_topic(
            &p.settings.config.kafka.brokers,
            &p.settings,
            &p.settings.config.topics.dead_letter,
        );
        if dead.len() >= 2 || started.elapsed() > WAIT {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead.len(), 2);
    let records: Vec<Value> = dead
        .iter()
        .map(|(_, v)| serde_json::from_slice(v).unwrap())
        .collect();
    assert_eq!(records[0]["reason"], "malformed_json");
    assert_eq!(records[1]["reason"], "unknown_camera");
    for (r, original) in records.iter().zip(&inputs) {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(r["original_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(&bytes, original, "dead letter keeps the original bytes");
        assert!(r["detail"].as_str().unwrap().len() > 10);
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_yields_one_incident() {
    let p = Pipeline::start("e2e-idem", 2, 1).await;
    let (lat, lon) = (demo::CENTRE.1, demo::CENTRE.0);
    let body = report(lat, lon, "0900000000", Some("phone-42-report-7"));
    let first = post_report(&p, &body).await;
    let second = post_report(&p, &body).await;
    assert_eq!(first["tracking_id"], second["tracking_id"]);
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    let other = post_report(&p, &report(lat, lon, "0900000001", Some("another-key"))).await;
    assert_ne!(other["tracking_id"], first["tracking_id"]);
    // The same key with another report is refused, never answered with the first one's id
    // (that id is the first citizen's credential).
    let reused = p
        .http
        .post(format!("{}/v1/reports", p.ingest_url))
        .json(&report(lat, lon, "0911111111", Some("phone-42-report-7")))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status().as_u16(), 422);
    let reused: Value = reused.json().await.unwrap();
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");
    assert!(!reused
        .to_string()
        .contains(first["tracking_id"].as_str().unwrap()));
    p.wait_for_incidents(2).await;
    let id = first["tracking_id"].as_str().unwrap();
    let reports = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.reports,
    );
    assert_eq!(
        reports.iter().filter(|(k, _)| k == id).count(),
        1,
        "the resubmission wrote nothing"
    );
    let incidents = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.incidents,
    );
    assert_eq!(incidents.iter().filter(|(k, _)| k == id).count(), 1);
    p.stop().await;
}

/// A report the broker took whose answer never reached the citizen (the ingest that wrote it
/// died) is sent again, with the same idempotency key, to another ingest, which does not know
/// the key and writes it a second time, later. The router routes the tracking id once: the
/// second record is recognised, also by a router that starts after the first was routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_resent_to_another_ingest_is_routed_once() {
    let mut p = Pipeline::start("e2e-resent", 1, 1).await;
    let (lat, lon) = (demo::CENTRE.1, demo::CENTRE.0);
    let body = report(lat, lon, "0900000003", Some("phone-43-report-1"));
    let first = post_report(&p, &body).await;
    let id = first["tracking_id"].as_str().unwrap().to_string();
    p.incident_when(&id, "routed", |_| true).await;
    // The router that routed it stops; the next starts where it left off.
    p.stop_router_and_dashboard().await;
    p.start_router();
    p.start_dashboard().await;
    let other_ingest = ioc_config::intake::Intake::new(
        p.settings.clone(),
        ioc_schema::metrics::Metrics::new(),
        "ingest",
    )
    .unwrap();
    let resent = other_ingest
        .file_report(serde_json::from_value(body).unwrap(), "app")
        .await
        .unwrap();
    assert_eq!(resent.tracking_id, id);
    assert!(!resent.duplicate, "the other ingest did not know the key");
    // One partition: the sentinel is routed after the resent copy.
    let sentinel = post_report(&p, &report(lat, lon, "0900000004", None)).await;
    let sentinel = sentinel["tracking_id"].as_str().unwrap();
    p.incident_when(sentinel, "routed", |_| true).await;
    let reports = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.reports,
    );
    assert_eq!(
        reports.iter().filter(|(k, _)| *k == id).count(),
        2,
        "both ingests wrote the report"
    );
    let firsts: Vec<Value> = p
        .revisions_on_topic(&id)
        .into_iter()
        .filter(|r| r["revision"] == 1)
        .collect();
    assert_eq!(firsts.len(), 1, "revision 1 written once: {firsts:?}");
    p.stop().await;
}

/// A report without `submitted_at` is accepted and dated when it reached us, as most intake
/// APIs do; one with a bad time is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_without_submitted_at_is_dated_when_received() {
    let p = Pipeline::start("e2e-undated", 1, 1).await;
    let (lat, lon) = (demo::CENTRE.1, demo::CENTRE.0);
    let mut body = report(lat, lon, "0900000002", None);
    body.as_object_mut().unwrap().remove("submitted_at");
    let before = chrono::Utc::now();
    let filed = post_report(&p, &body).await;
    let id = filed["tracking_id"].as_str().unwrap();
    let i = p.incident_when(id, "routed", |_| true).await;
    let occurred: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(i["occurred_at"].clone()).unwrap();
    let received: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(i["received_at"].clone()).unwrap();
    assert!(occurred >= before - chrono::Duration::seconds(1), "{i}");
    // The record's Kafka time has millisecond precision.
    assert!(
        occurred <= received + chrono::Duration::milliseconds(1),
        "{i}"
    );
    body["submitted_at"] = json!("yesterday");
    let refused = p
        .http
        .post(format!("{}/v1/reports", p.ingest_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    p.stop().await;
}

/// Kills an `ioc router` child process when dropped, so a failing test leaves nothing behind.
struct RouterProcess(Child);

impl RouterProcess {
    fn spawn(p: &Pipeline, listen: &str) -> RouterProcess {
        RouterProcess::spawn_as(p, listen, "")
    }

    /// A router with a static group membership name (`router.instance_id`; empty: dynamic).
    fn spawn_as(p: &Pipeline, listen: &str, instance: &str) -> RouterProcess {
        let t = &p.settings.config.topics;
        let child = Command::new(env!("CARGO_BIN_EXE_ioc"))
            .arg("router")
            .env("IOC_ROUTER__INSTANCE_ID", instance)
            .env("IOC_KAFKA__BROKERS", &p.settings.config.kafka.brokers)
            .env("IOC_TOPICS__REPORTS", &t.reports)
            .env("IOC_TOPICS__CAMERA_EVENTS", &t.camera_events)
            .env("IOC_TOPICS__INCIDENTS", &t.incidents)
            .env("IOC_TOPICS__DEAD_LETTER", &t.dead_letter)
            .env("IOC_TOPICS__ASSIGNMENTS", &t.assignments)
            .env("IOC_TOPICS__PARTITIONS", t.partitions.to_string())
            .env("IOC_TOPICS__CREATE", "false")
            .env("IOC_ROUTER__GROUP_ID", &p.settings.config.router.group_id)
            .env("IOC_ROUTER__LISTEN", listen)
            .env(
                "RUST_LOG",
                std::env::var("IOC_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("ioc router starts");
        RouterProcess(child)
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Waits until the routers at `addrs` together hold `total` partitions, each at least one.
async fn wait_for_assignment(http: &reqwest::Client, addrs: &[&str], total: f64) {
    let started = Instant::now();
    loop {
        let mut held = Vec::new();
        for addr in addrs {
            held.push(
                metric_at(
                    http,
                    &format!("http://{addr}"),
                    "ioc_consumer_assigned_partitions",
                    "router",
                )
                .await
                .unwrap_or(0.0),
            );
        }
        if held.iter().all(|n| *n > 0.0) && held.iter().sum::<f64>() == total {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "group did not settle: {held:?} of {total} partitions"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_router_processes_share_the_partitions_and_assign_each_event_once() {
    let p = Pipeline::start("e2e-group", 4, 0).await;
    let (a_addr, b_addr) = (free_port(), free_port());
    let mut a = RouterProcess::spawn(&p, &a_addr);
    let mut b = RouterProcess::spawn(&p, &b_addr);
    // Both members hold partitions of the two input topics (four partitions each).
    wait_for_assignment(&p.http, &[&a_addr, &b_addr], 8.0).await;
    let pts = points(60, 11);
    let mut ids = HashSet::new();
    for (i, &(lat, lon)) in pts.iter().enumerate() {
        let accepted = post_report(&p, &report(lat, lon, &format!("0913{i:06}"), None)).await;
        ids.insert(accepted["tracking_id"].as_str().unwrap().to_string());
    }
    p.wait_for_incidents(pts.len()).await;
    let seen_a = metric_at(
        &p.http,
        &format!("http://{a_addr}"),
        "ioc_events_in_total",
        "stage=\"router\"",
    )
    .await
    .unwrap_or(0.0);
    let seen_b = metric_at(
        &p.http,
        &format!("http://{b_addr}"),
        "ioc_events_in_total",
        "stage=\"router\"",
    )
    .await
    .unwrap_or(0.0);
    assert!(
        seen_a > 0.0 && seen_b > 0.0,
        "both routers worked: {seen_a} / {seen_b}"
    );
    assert_eq!(
        seen_a + seen_b,
        pts.len() as f64,
        "each input was consumed once"
    );
    let incidents = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.incidents,
    );
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for (k, _) in &incidents {
        *per_id.entry(k.as_str()).or_default() += 1;
    }
    assert_eq!(per_id.len(), pts.len());
    assert!(
        per_id.values().all(|n| *n == 1),
        "every event assigned exactly once"
    );
    assert!(ids.iter().all(|id| per_id.contains_key(id.as_str())));
    a.terminate();
    b.terminate();
    p.stop().await;
}

/// A router killed with SIGKILL while records are in flight, and replaced. On the embedded
/// broker the replacement joins later under a new member id and gets the partitions when the
/// dead member's session expires. On a real broker (tansu in the test script) the router runs
/// with static membership (`router.instance_id`) and is restarted at once under the same name,
/// as a supervisor would: it takes its own partitions back under the same name. (With dynamic
/// membership a replacement on tansu 0.6 was, in some runs, left with no partitions; see the
/// README's "Router failover".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_midway_loses_no_accepted_event() {
    let real_broker = std::env::var("IOC_TEST_BROKERS").is_ok_and(|b| !b.is_empty());
    let p = Pipeline::start("e2e-crash", 2, 0).await;
    let instance = if real_broker { "router-a" } else { "" };
    let first_addr = free_port();
    let mut first = RouterProcess::spawn_as(&p, &first_addr, instance);
    wait_for_assignment(&p.http, &[&first_addr], 4.0).await;
    let pts = points(80, 13);
    let mut ids = Vec::new();
    let mut restarted = None;
    for (i, &(lat, lon)) in pts.iter().enumerate() {
        if i == 40 {
            // No goodbye: SIGKILL while records are in flight.
            let _ = first.0.kill();
            let _ = first.0.wait();
            if real_broker {
                restarted = Some(RouterProcess::spawn_as(&p, &free_port(), instance));
            }
        }
        let accepted = post_report(&p, &report(lat, lon, &format!("0914{i:06}"), None)).await;
        ids.push(accepted["tracking_id"].as_str().unwrap().to_string());
    }
    let _second = restarted.unwrap_or_else(|| RouterProcess::spawn(&p, &free_port()));
    p.wait_for_incidents(pts.len()).await;
    let expected = expected_wards(&p, &pts);
    for (id, want) in ids.iter().zip(&expected) {
        let incident = p.dashboard(&format!("/v1/incidents/{id}")).await;
        assert_eq!(
            incident["ward"]["id"].as_str().map(str::to_string),
            *want,
            "{incident}"
        );
    }
    let incidents = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.incidents,
    );
    let distinct: HashSet<&str> = incidents.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        distinct.len(),
        pts.len(),
        "replays reuse ids: no incident is created twice"
    );
    // Records written twice after the crash are identical, so replays change nothing.
    let mut bodies: HashMap<&str, &Vec<u8>> = HashMap::new();
    for (k, v) in &incidents {
        if let Some(prev) = bodies.insert(k.as_str(), v) {
            assert_eq!(prev, v, "a replayed incident differs from the original");
        }
    }
    p.stop().await;
}

/// Created topics carry the policy of their role, and a stage refuses an incident topic that
/// deletes by age. Needs a broker with the admin API (the embedded one has none): the test
/// script runs it against tansu.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_keep_the_truth_and_let_personal_data_expire() {
    use rdkafka::admin::{
        AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication,
    };
    let brokers = std::env::var("IOC_TEST_BROKERS").unwrap_or_default();
    if brokers.is_empty() {
        println!("skipped: the embedded broker has no admin API; scripts/test.sh runs this against tansu");
        return;
    }
    let s = common::settings("e2e-topics", &brokers, 1);
    ioc_config::kafka::ensure_topics(&s.config).await.unwrap();
    let admin: AdminClient<_> = ioc_config::kafka::client_config(&s.config)
        .create()
        .unwrap();
    let names = s.config.topics.all();
    let specs: Vec<_> = names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let described = admin
        .describe_configs(&specs, &AdminOptions::new())
        .await
        .unwrap();
    for (name, resource) in names.iter().zip(described) {
        let resource = resource.unwrap();
        for (key, want) in ioc_config::kafka::topic_settings(&s.config, name) {
            let got = resource
                .entries
                .iter()
                .find(|e| e.name == key)
                .and_then(|e| e.value.clone());
            assert_eq!(got.as_deref(), Some(want.as_str()), "{name}: {key}");
        }
    }
    ioc_config::kafka::check_topic_policies(&s.config)
        .await
        .unwrap();

    // An incident topic made elsewhere with the usual 7-day deletion is refused.
    let bad = common::settings("e2e-topics-bad", &brokers, 1);
    let topic = NewTopic::new(&bad.config.topics.incidents, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "delete")
        .set("retention.ms", "604800000");
    admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    let err = ioc_config::kafka::check_topic_policies(&bad.config)
        .await
        .unwrap_err();
    assert!(err.contains("would delete incidents"), "{err}");
    assert!(err.contains(&bad.config.topics.incidents), "{err}");
}

/// Red-light captures and Hikvision ANPR reads (disposition `record`) become enforcement
/// records on the violations topic, not incidents: one per capture however often it is sent,
/// counted per ward and camera on the dashboard, the plate served only to a token allowed to
/// read plates, a ward unit held to its ward. An accident from the same camera stays an incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_captures_become_records_with_plates_for_the_police_only() {
    let p = Pipeline::start("e2e-violations", 2, 1).await;
    // The violations' live streams, opened before anything is sent: for an operator, for the
    // traffic police (plates) and for a ward unit.
    let stream_of = |token: &str| format!("/v1/violations/stream?access_token={token}");
    let operator_stream = common::StreamReader::open(&p, &stream_of(common::OPERATOR_TOKEN)).await;
    let police_stream = common::StreamReader::open(&p, &stream_of(common::PLATES_TOKEN)).await;
    let ward_stream = common::StreamReader::open(&p, &stream_of(common::WARD_TOKEN)).await;
    let now = chrono::Utc::now();
    let red_light = json!({"camera_id": "CAM-0001", "event_type": "red_light_violation",
        "event_id": "rl-1", "confidence": 0.95, "detected_at": now - chrono::Duration::minutes(2),
        "plate": "29A-123.45", "lane": "2"});
    let accident = json!({"camera_id": "CAM-0001", "event_type": "accident", "confidence": 0.9,
        "detected_at": now - chrono::Duration::minutes(1)});
    let mut accepted = Vec::new();
    for body in [&red_light, &red_light, &accident].map(|b| json!([b])) {
        accepted.push(post_camera_events(&p, &body).await);
    }
    let local = (now - chrono::Duration::minutes(3))
        .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap());
    let anpr = format!(
        "<EventNotificationAlert version=\"2.0\" xmlns=\"http://www.isapi.org/ver20/XMLSchema\">\
         <macAddress>hik-0003</macAddress><channelID>1</channelID><dateTime>{}</dateTime>\
         <activePostCount>1</activePostCount><eventType>ANPR</eventType><eventState>active</eventState>\
         <ANPR><licensePlate>51G-888.88</licensePlate><confidenceLevel>94</confidenceLevel>\
         <laneNo>1</laneNo></ANPR><UUID>9a3e0f3c-2222-4c9f-9d55-5a0c6c3f7e10</UUID></EventNotificationAlert>",
        local.to_rfc3339()
    );
    post_vendor(&p, "hikvision", "", "application/xml", anpr).await;

    let counts = common::eventually("both captures counted", || async {
        let (status, rows) = p
            .dashboard_as("/v1/violations/counts", common::OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 200, "{rows}");
        let total: u64 = rows
            .as_array()?
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum();
        (total >= 2).then_some(rows)
    })
    .await;
    let rows = counts.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{counts}");
    for (camera, event_type) in [
        ("CAM-0001", "red_light_violation"),
        ("CAM-0003", "anpr_capture"),
    ] {
        let row = rows.iter().find(|r| r["camera_id"] == camera).unwrap();
        assert_eq!(
            (row["event_type"].as_str(), row["count"].as_u64()),
            (Some(event_type), Some(1)),
            "{row}"
        );
    }

    let (_, hidden) = p
        .dashboard_as("/v1/violations", common::OPERATOR_TOKEN)
        .await;
    assert_eq!(hidden.as_array().unwrap().len(), 2, "{hidden}");
    assert!(
        !hidden.to_string().contains("29A-123.45") && !hidden.to_string().contains("51G-888.88"),
        "{hidden}"
    );
    let (_, shown) = p
        .dashboard_as("/v1/violations?camera_id=CAM-0003", common::PLATES_TOKEN)
        .await;
    assert_eq!(shown[0]["plate"], "51G-888.88", "{shown}");
    assert_eq!(shown[0]["format"], "hikvision", "{shown}");
    assert_eq!(shown[0]["confidence"], 0.94, "{shown}");
    let (_, red) = p
        .dashboard_as(
            "/v1/violations?event_type=red_light_violation",
            common::PLATES_TOKEN,
        )
        .await;
    assert_eq!(
        (red[0]["plate"].as_str(), red[0]["lane"].as_str()),
        (Some("29A-123.45"), Some("2")),
        "{red}"
    );
    assert_eq!(red[0]["unit"], "Traffic police team", "{red}");
    assert!(red[0]["id"].as_str().unwrap().starts_with("vio-"), "{red}");
    assert_eq!(
        red[0]["id"], accepted[0]["incident_ids"][0],
        "ingest named the record: {red}"
    );

    // A ward unit sees its own ward's records only, and is refused another ward's.
    let (_, own) = p.dashboard_as("/v1/violations", common::WARD_TOKEN).await;
    let expected = hidden
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ward"]["id"] == common::WARD_OF_TOKEN)
        .count();
    assert_eq!(own.as_array().unwrap().len(), expected, "{own}");
    let (status, _) = p
        .dashboard_as(
            &format!("/v1/violations/counts?ward={}", common::WARD2),
            common::WARD_TOKEN,
        )
        .await;
    assert_eq!(status, 403);

    // The live streams carried each record with its row of counts, plates to the police only,
    // a ward unit its ward's only; a ward unit asking for another ward's stream is refused.
    police_stream.wait_for("51G-888.88").await;
    operator_stream.wait_for("anpr_capture").await;
    let carried = operator_stream.events("violation");
    for (camera, event_type) in [
        ("CAM-0001", "red_light_violation"),
        ("CAM-0003", "anpr_capture"),
    ] {
        let change = carried
            .iter()
            .find(|c| c["record"]["camera_id"] == camera)
            .unwrap_or_else(|| panic!("no {camera} on the stream: {carried:?}"));
        assert_eq!(change["record"]["event_type"], event_type, "{change}");
        assert_eq!(change["count"]["count"], 1, "{change}");
        assert!(change["record"].get("plate").is_none(), "{change}");
    }
    let plates: Vec<_> = police_stream
        .events("violation")
        .iter()
        .filter_map(|c| c["record"]["plate"].as_str().map(str::to_string))
        .collect();
    assert!(plates.contains(&"29A-123.45".to_string()), "{plates:?}");
    assert!(expected > 0, "a capture in the ward unit's ward: {hidden}");
    let own = common::eventually("the ward unit's records on its stream", || async {
        let own = ward_stream.events("violation");
        (own.len() >= expected).then_some(own)
    })
    .await;
    assert!(
        own.iter()
            .all(|c| c["record"]["ward"]["id"] == common::WARD_OF_TOKEN),
        "a ward unit's stream: {own:?}"
    );
    let (status, _) = p
        .dashboard_as(
            &format!(
                "/v1/violations/stream?ward={}&access_token={}",
                common::WARD2,
                common::WARD_TOKEN
            ),
            common::WARD_TOKEN,
        )
        .await;
    assert_eq!(status, 403);

    // Only the accident became an incident.
    let page = p.wait_for_incidents(1).await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(
        page["items"][0]["source"]["event_type"], "accident",
        "{page}"
    );
    let violations = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.violations,
    );
    let ids: HashSet<&str> = violations.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");

    // A tracked red-light capture (ioc's own JSON with a lifecycle) whose plate is read only
    // later in the track: its record is written when the track starts, and again, under the
    // same id, once the plate is read. One record, counted once, with the plate.
    let t = now - chrono::Duration::seconds(90);
    let tracked = |n: i64, signal: &str, plate: Option<&str>| {
        json!([{"camera_id": "CAM-0002", "event_type": "red_light_violation",
            "event_id": format!("trk-9-{n}"), "signal": signal, "source_key": "trk-9",
            "confidence": 0.9, "detected_at": t + chrono::Duration::seconds(n), "plate": plate}])
    };
    for body in [
        tracked(0, "start", None),
        tracked(2, "update", None),
        tracked(4, "update", Some("30E-555.55")),
        tracked(6, "end", Some("30E-555.55")),
    ] {
        post_camera_events(&p, &body).await;
    }
    let tracked_rows =
        common::eventually("the tracked capture's record with its plate", || async {
            let (_, rows) = p
                .dashboard_as("/v1/violations?camera_id=CAM-0002", common::PLATES_TOKEN)
                .await;
            let rows = rows.as_array()?.clone();
            rows.iter()
                .any(|r| r["plate"] == "30E-555.55")
                .then_some(rows)
        })
        .await;
    assert_eq!(tracked_rows.len(), 1, "{tracked_rows:?}");
    let (_, counts) = p
        .dashboard_as("/v1/violations/counts", common::OPERATOR_TOKEN)
        .await;
    let row = counts
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["camera_id"] == "CAM-0002")
        .cloned()
        .unwrap();
    assert_eq!(row["count"], 1, "{counts}");
    p.stop().await;
}

/// Posts a batch of camera events in ioc's own JSON to ingest; must be accepted. Returns the
/// answer.
async fn post_camera_events(p: &Pipeline, body: &Value) -> Value {
    let resp = p
        .http
        .post(format!("{}/v1/camera-events", p.ingest_url))
        .header("x-api-key", common::CAMERA_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.unwrap_or_default();
    assert_eq!(status, 202, "{answer}");
    answer
}

/// Posts one vendor message to ingest's `/v1/camera-events/{format}`; must be accepted.
async fn post_vendor(
    p: &Pipeline,
    format: &str,
    query: &str,
    content_type: &str,
    body: String,
) -> Value {
    let resp = p
        .http
        .post(format!("{}/v1/camera-events/{format}{query}", p.ingest_url))
        .header("x-api-key", common::CAMERA_KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let json: Value = resp.json().await.unwrap_or_default();
    assert_eq!(status.as_u16(), 202, "{format}: {json}");
    json
}

fn frigate(kind: &str, id: &str, start: f64, frame: f64, end: Option<f64>) -> String {
    json!({"type": kind, "before": {}, "after": {
        "id": id, "camera": "cam_0002", "label": "car", "score": 0.7, "top_score": 0.8,
        "start_time": start, "frame_time": frame, "end_time": end,
        "current_zones": ["no_parking"], "entered_zones": ["no_parking"], "has_snapshot": false,
    }})
    .to_string()
}

fn hikvision(at: chrono::DateTime<chrono::Utc>, count: u32) -> String {
    let local = at.with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap());
    format!(
        "<EventNotificationAlert version=\"2.0\" xmlns=\"http://www.hikvision.com/ver20/XMLSchema\">\
         <macAddress>hik-0003</macAddress><channelID>1</channelID><dateTime>{}</dateTime>\
         <activePostCount>{count}</activePostCount><eventType>fielddetection</eventType>\
         <eventState>active</eventState><DetectionRegionList><DetectionRegionEntry><regionID>1</regionID>\
         </DetectionRegionEntry></DetectionRegionList></EventNotificationAlert>",
        local.to_rfc3339()
    )
}

fn deepstream(at: chrono::DateTime<chrono::Utc>, tracker: &str, n: usize) -> String {
    json!({
        "messageid": uuid::Uuid::new_v4().to_string(), "mdsversion": "1.0",
        "@timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "sensor": {"id": "ds-0001", "type": "Camera"},
        "analyticsModule": {"id": "dwell"},
        "object": {"id": tracker, "confidence": 0.5 + (n % 5) as f64 / 10.0,
                   "vehicle": {"type": "sedan", "license": "51F-000.01", "confidence": 0.7}},
        "event": {"id": uuid::Uuid::new_v4().to_string(), "type": "parked"},
    })
    .to_string()
}

/// The latest record of each situation key on the situations topic.
fn situations_now(p: &Pipeline) -> HashMap<String, Value> {
    read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.situations,
    )
    .into_iter()
    .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
    .collect()
}

/// Streams of detections as the vendors send them become one incident per situation: a
/// Frigate object from `new` through `update`s to `end`, Hikvision's repeated `active` with no
/// end, and a later Hikvision detection past the gap as a second situation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_streams_become_one_incident_per_situation() {
    let p = Pipeline::start("e2e-situations", 2, 1).await;
    let now = chrono::Utc::now();
    let t0 = (now - chrono::Duration::minutes(20)).timestamp() as f64;
    let id = format!("{t0}-ab12cd");
    post_vendor(
        &p,
        "frigate",
        "",
        "application/json",
        frigate("new", &id, t0, t0, None),
    )
    .await;
    for i in 1..=3 {
        let frame = t0 + 30.0 * f64::from(i);
        post_vendor(
            &p,
            "frigate",
            "",
            "application/json",
            frigate("update", &id, t0, frame, None),
        )
        .await;
    }
    let end = frigate("end", &id, t0, t0 + 100.0, Some(t0 + 100.0));
    post_vendor(&p, "frigate", "", "application/json", end.clone()).await;
    // A resend of the end is the same event.
    let again = post_vendor(&p, "frigate", "", "application/json", end).await;
    let h0 = now - chrono::Duration::minutes(15);
    for i in 0..4 {
        post_vendor(
            &p,
            "hikvision",
            "",
            "application/xml",
            hikvision(h0 + chrono::Duration::seconds(10 * i64::from(i)), i + 1),
        )
        .await;
    }
    // Ten minutes later (the gap is two): a new situation.
    post_vendor(
        &p,
        "hikvision",
        "",
        "application/xml",
        hikvision(h0 + chrono::Duration::minutes(10), 1),
    )
    .await;
    p.wait_for_incidents(3).await;
    let situations = common::eventually("the situations written", || async {
        let s = situations_now(&p);
        let frigate_done = s
            .values()
            .any(|v| v["camera_id"] == "CAM-0002" && v["ended"] == true);
        let hik = s.values().filter(|v| v["camera_id"] == "CAM-0003").count();
        (frigate_done && hik >= 1).then_some(s)
    })
    .await;
    let parked = situations
        .values()
        .find(|v| v["camera_id"] == "CAM-0002")
        .unwrap();
    // new, three updates and the end; the end sent again counts once.
    assert_eq!(parked["detections"], 5, "{parked}");
    assert_eq!(parked["event_type"], "illegal_parking");
    assert_eq!(parked["incident_written"], true);
    assert_eq!(again["event_ids"].as_array().unwrap().len(), 1);
    let incidents = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.incidents,
    );
    let ids: HashSet<&str> = incidents.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        ids.len(),
        3,
        "one incident per situation, not per message: {ids:?}"
    );
    assert!(ids.contains(parked["incident_id"].as_str().unwrap()));
    // The incident follows its situation with new revisions, not new incidents.
    let parked_id = parked["incident_id"].as_str().unwrap().to_string();
    let shown = common::eventually("the incident showing the situation's end", || async {
        let i = p.dashboard(&format!("/v1/incidents/{parked_id}")).await;
        (i["situation"]["ended"] == true).then_some(i)
    })
    .await;
    assert_eq!(shown["situation"]["detections"], 5, "{shown}");
    assert!(shown["revision"].as_u64().unwrap() >= 2, "{shown}");
    assert_eq!(
        shown["history"].as_array().unwrap().len(),
        1,
        "no audit entry: nobody acted"
    );
    assert_eq!(shown["status"], "assigned");
    let page = p.dashboard("/v1/incidents?limit=10").await;
    let text = page.to_string();
    assert!(
        !text.contains("51F") && !text.contains("29A"),
        "no plate on the dashboard"
    );
    p.stop().await;
}

/// A router killed with SIGKILL in the middle of a situation: its replacement reads the
/// situation back, so the situation stays one incident, written once, and counts every
/// detection exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_mid_situation_keeps_one_incident_and_every_detection() {
    let real_broker = std::env::var("IOC_TEST_BROKERS").is_ok_and(|b| !b.is_empty());
    let p = Pipeline::start("e2e-situation-crash", 2, 0).await;
    let instance = if real_broker { "router-s" } else { "" };
    let first_addr = free_port();
    let mut first = RouterProcess::spawn_as(&p, &first_addr, instance);
    wait_for_assignment(&p.http, &[&first_addr], 4.0).await;
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(10);
    let tracker = uuid::Uuid::new_v4().as_u128().to_string()[..6].to_string();
    let mut restarted = None;
    const DETECTIONS: usize = 30;
    for n in 0..DETECTIONS {
        if n == 10 {
            // 45 s into the situation, before its minute of min_duration: no incident yet.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = first.0.kill();
            let _ = first.0.wait();
            if real_broker {
                restarted = Some(RouterProcess::spawn_as(&p, &free_port(), instance));
            }
        }
        let at = t0 + chrono::Duration::seconds(5 * n as i64);
        post_vendor(
            &p,
            "deepstream",
            "",
            "application/json",
            deepstream(at, &tracker, n),
        )
        .await;
    }
    let _second = restarted.unwrap_or_else(|| RouterProcess::spawn(&p, &free_port()));
    let key = format!("CAM-0001|illegal_parking|key:ds-0001/{tracker}");
    let last = common::eventually("the situation's last detection applied", || async {
        situations_now(&p)
            .remove(&key)
            .filter(|s| s["detections"].as_u64() >= Some(DETECTIONS as u64))
    })
    .await;
    assert_eq!(
        last["detections"], DETECTIONS as u64,
        "no detection counted twice: {last}"
    );
    assert_eq!(last["incident_written"], true);
    let incidents = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.incidents,
    );
    let ids: HashSet<&str> = incidents.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids.len(), 1, "one incident for the situation: {ids:?}");
    assert!(ids.contains(last["incident_id"].as_str().unwrap()));
    // The dashboard adds revisions as the situation goes on; each revision is written once
    // (a replay writes the same bytes).
    let mut bodies: HashMap<(&str, u64), &Vec<u8>> = HashMap::new();
    for (k, v) in &incidents {
        let revision = serde_json::from_slice::<Value>(v).unwrap()["revision"]
            .as_u64()
            .unwrap();
        if let Some(prev) = bodies.insert((k.as_str(), revision), v) {
            assert_eq!(prev, v, "two records of revision {revision} differ");
        }
    }
    let shown = common::eventually("the incident showing every detection", || async {
        let i = p
            .dashboard(&format!(
                "/v1/incidents/{}",
                last["incident_id"].as_str().unwrap()
            ))
            .await;
        (i["situation"]["detections"] == DETECTIONS as u64).then_some(i)
    })
    .await;
    assert_eq!(
        shown["situation"]["ended"], false,
        "DeepStream never says the end"
    );
    p.stop().await;
}

/// A citizen's report of a flood next to a camera's flooding situation, and another report
/// across town: the dashboard offers the camera's incident (same category, metres away) and not
/// the far one; a ward unit sees only its own ward's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_offered_the_nearby_open_incidents_as_possible_duplicates() {
    let p = Pipeline::start("e2e-nearby", 2, 1).await;
    let (lat, lon) = common::point_in(WARD_OF_TOKEN);
    let mut body = report(lat, lon, "0911000001", None);
    body["text"] = json!("Nước ngập sâu sau mưa");
    let first = post_report(&p, &body).await["tracking_id"]
        .as_str()
        .unwrap()
        .to_string();
    body["location"]["lat"] = json!(lat + 0.0005);
    let near = post_report(&p, &body).await["tracking_id"]
        .as_str()
        .unwrap()
        .to_string();
    body["location"]["lat"] = json!(lat + 0.02);
    let far = post_report(&p, &body).await["tracking_id"]
        .as_str()
        .unwrap()
        .to_string();
    body["category"] = json!("traffic_order");
    body["location"]["lat"] = json!(lat);
    let other = post_report(&p, &body).await["tracking_id"]
        .as_str()
        .unwrap()
        .to_string();
    p.wait_for_incidents(4).await;
    let found = p.dashboard(&format!("/v1/incidents/{first}/nearby")).await;
    let ids: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [near.as_str()], "{found}");
    assert!(!ids.contains(&far.as_str()) && !ids.contains(&other.as_str()));
    let n = &found[0];
    assert!(
        (n["distance_m"].as_f64().unwrap() - 55.6).abs() < 2.0,
        "{n}"
    );
    assert!(
        n["why"].as_str().unwrap().starts_with("same category"),
        "{n}"
    );
    // The ward's own unit may ask; a unit of another ward may not.
    let (status, _) = p
        .dashboard_as(&format!("/v1/incidents/{first}/nearby"), WARD_TOKEN)
        .await;
    assert_eq!(status, 200);
    let (status, _) = p
        .dashboard_as(
            &format!("/v1/incidents/{first}/nearby"),
            common::WARD2_TOKEN,
        )
        .await;
    assert_eq!(status, 403);
    p.stop().await;
}

/// The open incident of `camera`'s situation on the dashboard, once there.
async fn camera_incident(p: &Pipeline, camera: &str) -> Value {
    common::eventually(&format!("the incident of {camera}"), || async {
        let page = p.dashboard("/v1/incidents?category=environment").await;
        page["items"]
            .as_array()?
            .iter()
            .find(|i| i["source"]["camera_id"] == camera)
            .cloned()
    })
    .await
}

/// With camera floods attached automatically (`dashboard.duplicates.auto_attach.cameras`): a
/// second camera's flood 245 m from the first's joins the first's incident as the system's merge,
/// saying why on the audit trail; a citizen's flood report beside them stays apart (reports are
/// not attached); an operator's split undoes the attach on both incidents, and the monitor's
/// later passes leave it undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cameras_flood_joins_the_first_and_a_split_undoes_it() {
    let p = Pipeline::start_with("e2e-attach", 2, 1, None, |s| {
        let d = &mut s.config.dashboard;
        d.duplicates.auto_attach.cameras = vec!["environment".into()];
        d.sla_check_interval = ioc_config::model::Dur(Duration::from_secs(1));
    })
    .await;
    let now = chrono::Utc::now();
    let flood = |camera: &str, minutes_ago: i64| {
        json!([{"camera_id": camera, "event_type": "flooding", "confidence": 0.9,
                "detected_at": now - chrono::Duration::minutes(minutes_ago)}])
    };
    post_camera_events(&p, &flood("CAM-0001", 3)).await;
    let first = camera_incident(&p, "CAM-0001").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A citizen at the first camera: offered as a possible duplicate, never attached.
    let mut body = report(20.506470, 105.892661, "0911000002", None);
    body["text"] = json!("Nước ngập ngang bánh xe");
    let citizen = post_report(&p, &body).await["tracking_id"]
        .as_str()
        .unwrap()
        .to_string();
    p.incident_when(&citizen, "appears", |_| true).await;
    post_camera_events(&p, &flood("CAM-0002", 1)).await;
    let second = camera_incident(&p, "CAM-0002").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let attached = p
        .incident_when(&second, "attached to the first camera's", |i| {
            i["status"] == "duplicate"
        })
        .await;
    assert_eq!(attached["duplicate_of"], first.as_str(), "{attached}");
    let step = attached["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(step["actor"]["role"], "system", "{step}");
    let note = step["note"].as_str().unwrap();
    assert!(
        note.starts_with(&format!(
            "duplicate of {first}: attached automatically: same category"
        )),
        "{note}"
    );
    let before = step["from"].clone();
    let original = p.dashboard(&format!("/v1/incidents/{first}")).await;
    assert_eq!(original["merged"], json!([second]));
    let shown = p.dashboard(&format!("/v1/incidents/{citizen}")).await;
    assert_ne!(
        shown["status"], "duplicate",
        "a report is not attached: {shown}"
    );

    // Undone by an operator only, with a reason.
    let split = |reason: &str| json!({"action": "split", "reason": reason});
    let (status, _) = p.act(&second, WARD_TOKEN, split("khác")).await;
    assert_eq!(status, 403);
    let (status, _) = p.act(&second, common::OPERATOR_TOKEN, split(" ")).await;
    assert_eq!(status, 422);
    let (status, back) = p
        .act(
            &second,
            common::OPERATOR_TOKEN,
            split("Hai điểm ngập khác nhau"),
        )
        .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["status"], before, "back where the attach found it");
    assert!(back["duplicate_of"].is_null());
    let original = p.dashboard(&format!("/v1/incidents/{first}")).await;
    assert!(
        original["merged"].is_null(),
        "no longer lists it: {original}"
    );
    // Several monitor passes later (one a second), still apart.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = p.dashboard(&format!("/v1/incidents/{second}")).await;
    assert_eq!(later["status"], before, "{later}");
    assert_eq!(later["revision"], back["revision"]);
    p.stop().await;
}

/// A pipeline that also reads DeepStream's own topic, a producer, and that topic.
async fn with_deepstream(name: &str) -> (Pipeline, FutureProducer, String) {
    with_deepstream_tuned(name, |_| {}).await
}

/// Like [`with_deepstream`], with the settings adjusted by `tune`.
async fn with_deepstream_tuned(
    name: &str,
    tune: impl FnOnce(&mut ioc_config::load::Settings),
) -> (Pipeline, FutureProducer, String) {
    let p = Pipeline::start_with(name, 2, 1, None, |s| {
        let t = &mut s.config.topics;
        t.deepstream = format!("{}.deepstream", t.camera_events);
        t.deepstream_situations = format!("{}.situations", t.deepstream);
        tune(s);
    })
    .await;
    let producer: FutureProducer = ioc_config::kafka::producer_config(&p.settings.config)
        .create()
        .unwrap();
    let topic = p.settings.config.topics.deepstream.clone();
    (p, producer, topic)
}

/// DeepStream publishing to its own topic (as `nvmsgbroker` does, keyed by sensor): the router
/// reads it, groups a tracked car's messages into one situation, and dead-letters a broken
/// message and one from an unregistered sensor with their reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deepstream_on_its_own_topic_becomes_situations() {
    let (p, producer, topic) = with_deepstream("e2e-deepstream").await;
    // Long enough ago that the track's ten-minute gap has passed: the situation is over.
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(15);
    let mut records: Vec<(String, String)> = (0..6)
        .map(|n| {
            let at = t0 + chrono::Duration::seconds(18 * n);
            ("ds-0001".to_string(), deepstream(at, "77", n as usize))
        })
        .collect();
    records.insert(2, ("ds-0001".into(), "{\"sensor\": ".into()));
    records.push((
        "ds-9999".into(),
        deepstream(t0, "1", 0).replace("ds-0001", "ds-9999"),
    ));
    for (key, value) in &records {
        producer
            .send(
                FutureRecord::to(&topic).key(key).payload(value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    p.wait_for_incidents(1).await;
    let situations = p.settings.config.topics.deepstream_situations.clone();
    let last = common::eventually("the track's last detection applied", || async {
        read_topic(&p.settings.config.kafka.brokers, &p.settings, &situations)
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice::<Value>(&v).ok())
            .find(|s| s["detections"] == 6)
    })
    .await;
    assert_eq!(last["camera_id"], "CAM-0001");
    assert_eq!(last["key"], "CAM-0001|illegal_parking|key:ds-0001/77");
    assert_eq!(last["incident_written"], true);
    // The incident follows the track: DeepStream's situations reach the dashboard too.
    let id = last["incident_id"].as_str().unwrap().to_string();
    let incident = common::eventually("the incident showing the whole track", || async {
        let i = p.dashboard(&format!("/v1/incidents/{id}")).await;
        (i["situation"]["detections"] == 6).then_some(i)
    })
    .await;
    assert_eq!(incident["source"]["camera_id"], "CAM-0001", "{incident}");
    let dead: Vec<Value> = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.dead_letter,
    )
    .into_iter()
    .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
    .collect();
    let mut reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["unknown_device", "unreadable_payload"],
        "{dead:?}"
    );
    assert!(dead.iter().all(|d| d["source_topic"] == topic.as_str()));
    p.stop().await;
}

/// A burst of one track's detections (a backlog after an outage, a chatty pipeline) is one
/// situation whose state goes to the situations topic a few times, not once per detection
/// (`router.situation_linger`), and its latest record still counts every detection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_detections_shares_situation_records() {
    let (p, producer, topic) = with_deepstream("e2e-burst").await;
    // Three minutes of a parked car, one detection every 2 s: an incident once it has lasted
    // the minute `illegal_parking` asks for, a third of the way through the burst, and a new
    // revision for its last state, which is over a minute later (`worth_updating`).
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    let burst = 90;
    let values: Vec<String> = (0..burst)
        .map(|n| deepstream(t0 + chrono::Duration::seconds(2 * n as i64), "88", n))
        .collect();
    // Sent together, so the router finds them in the topic at once.
    let sends = values.iter().map(|v| {
        producer.send(
            FutureRecord::to(&topic).key("ds-0001").payload(v),
            Duration::from_secs(10),
        )
    });
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    p.wait_for_incidents(1).await;
    let situations = p.settings.config.topics.deepstream_situations.clone();
    let last = common::eventually("every detection of the burst applied", || async {
        read_topic(&p.settings.config.kafka.brokers, &p.settings, &situations)
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice::<Value>(&v).ok())
            .find(|s| s["detections"] == burst)
    })
    .await;
    assert_eq!(last["key"], "CAM-0001|illegal_parking|key:ds-0001/88");
    let written = read_topic(&p.settings.config.kafka.brokers, &p.settings, &situations).len();
    assert!(
        written <= burst / 4,
        "{written} situation records for {burst} detections of one track"
    );
    let id = last["incident_id"].as_str().unwrap().to_string();
    let incident = common::eventually("the incident showing the whole burst", || async {
        let i = p.dashboard(&format!("/v1/incidents/{id}")).await;
        (i["situation"]["detections"] == burst).then_some(i)
    })
    .await;
    assert_eq!(incident["source"]["camera_id"], "CAM-0001", "{incident}");
    p.stop().await;
}

/// A DeepStream minimal-schema message names several tracked objects: one record, several
/// detections at one offset. Each object's detection must continue its own situation from the
/// state before it, the objects before it in the same message and the states still lingering
/// unwritten included (the second object used to make the router read the whole partition
/// back, as if the partition had moved, and continue from what the topic held then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_objects_in_one_message_each_continue_their_situation() {
    let (p, producer, topic) = with_deepstream_tuned("e2e-objects", |s| {
        // States linger past the next message, so none is on the topic when it comes.
        s.config.router.situation_linger = ioc_config::model::Dur(Duration::from_secs(3));
    })
    .await;
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    let messages = 4;
    for n in 0..messages {
        let at = t0 + chrono::Duration::seconds(2 * n);
        let value = json!({
            "version": "4.0", "id": format!("m{n}"),
            "@timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "sensorId": "ds-0001",
            "objects": ["31|0|0|80|60|crowd|#|||||0.9", "32|90|0|170|60|crowd|#|||||0.9"],
        })
        .to_string();
        producer
            .send(
                FutureRecord::to(&topic).key("ds-0001").payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let situations = p.settings.config.topics.deepstream_situations.clone();
    let latest = common::eventually(
        "both objects' situations counting every message",
        || async {
            let mut latest: HashMap<String, Value> = HashMap::new();
            for (k, v) in read_topic(&p.settings.config.kafka.brokers, &p.settings, &situations) {
                if let Ok(v) = serde_json::from_slice::<Value>(&v) {
                    latest.insert(k, v);
                }
            }
            let done = latest.len() == 2 && latest.values().all(|s| s["detections"] == messages);
            done.then_some(latest)
        },
    )
    .await;
    let mut keys: Vec<&String> = latest.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "CAM-0001|crowd|key:ds-0001/31",
            "CAM-0001|crowd|key:ds-0001/32"
        ]
    );
    p.stop().await;
}

/// Kills a child process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where Debian's mosquitto is installed; None, with the reason printed, where it is not.
fn mosquitto_path() -> Option<&'static str> {
    let found = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    if found.is_none() {
        println!("skipped: mosquitto is not installed (apt-get install mosquitto; scripts/test.sh installs it)");
    }
    found
}

/// mosquitto started with `args`, returned once each of `ports` accepts connections.
async fn mosquitto(args: &[&std::ffi::OsStr], ports: &[u16]) -> Option<Killed> {
    let broker = Killed(
        Command::new(mosquitto_path()?)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts"),
    );
    for &port in ports {
        common::eventually("mosquitto listening", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await;
    }
    Some(broker)
}

/// A simulated Frigate publishing to the plain MQTT listener on `port`, and the task that
/// drives its connection.
fn frigate_publisher(port: u16) -> (rumqttc::AsyncClient, tokio::task::JoinHandle<()>) {
    let mut opts = rumqttc::MqttOptions::new("frigate-test", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (frigate, mut events) = rumqttc::AsyncClient::new(opts, 16);
    let driver = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    (frigate, driver)
}

/// Until ingest has subscribed, what is published is nobody's: publishes `message()` to
/// `frigate/events` until the first public-safety incident shows on the dashboard.
async fn publish_until_incident(
    p: &Pipeline,
    frigate: &rumqttc::AsyncClient,
    message: impl Fn() -> String,
) -> Value {
    common::eventually("the incident of the first Frigate message", || async {
        frigate
            .publish(
                "frigate/events",
                rumqttc::QoS::AtLeastOnce,
                false,
                message(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let page = p.dashboard("/v1/incidents?category=public_safety").await;
        page["items"].get(0).cloned()
    })
    .await
}

/// Frigate's broker over TLS: mosquitto with a TLS listener (a certificate made here, its
/// own CA) beside a plain one for the simulated Frigate; ingest subscribes with
/// `mqtts://` and `ca_file`, and a detection published on the plain side becomes an incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_events_reach_ingest_over_mqtt_with_tls() {
    if mosquitto_path().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ioc-mqtts-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        println!("skipped: openssl could not make a certificate (apt-get install openssl)");
        return;
    }
    // mosquitto started as root drops to its own user, which must be able to read the key.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port_of = |a: String| -> u16 { a.rsplit(':').next().unwrap().parse().unwrap() };
    let (tls_port, plain_port) = (port_of(free_port()), port_of(free_port()));
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let Some(_broker) =
        mosquitto(&["-c".as_ref(), conf.as_os_str()], &[tls_port, plain_port]).await
    else {
        return;
    };
    let client_id = format!("ioc-test-{}", uuid::Uuid::new_v4().simple());
    let ca = cert.display().to_string();
    let p = Pipeline::start_with("e2e-frigate-mqtts", 2, 1, None, |s| {
        s.config.ingest.frigate_mqtt.url = format!("mqtts://127.0.0.1:{tls_port}");
        s.config.ingest.frigate_mqtt.client_id = client_id.clone();
        s.config.ingest.frigate_mqtt.ca_file = Some(ca.clone());
    })
    .await;
    let (frigate, driver) = frigate_publisher(plain_port);
    let t0 = (chrono::Utc::now() - chrono::Duration::minutes(3)).timestamp() as f64;
    let new = json!({"type": "new", "before": {}, "after": {
        "id": format!("{t0}-tls"), "camera": "cam_0002", "label": "fire", "score": 0.8,
        "top_score": 0.9, "start_time": t0, "frame_time": t0, "end_time": null,
        "current_zones": [], "entered_zones": [], "has_snapshot": true,
    }})
    .to_string();
    let incident = publish_until_incident(&p, &frigate, || new.clone()).await;
    assert_eq!(incident["source"]["kind"], "camera", "{incident}");
    driver.abort();
    p.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Frigate's events from a real MQTT broker (Debian's mosquitto, started here): ingest
/// subscribes, a fire tracked from `new` to `end` is one situation (the `new` sent again and
/// again until ingest is subscribed counts once), and a broken message is dead-lettered with
/// its reason instead of coming back for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_events_from_its_mqtt_broker_become_one_situation() {
    let port: u16 = free_port().rsplit(':').next().unwrap().parse().unwrap();
    let Some(_broker) = mosquitto(&["-p".as_ref(), port.to_string().as_ref()], &[port]).await
    else {
        return;
    };
    let client_id = format!("ioc-test-{}", uuid::Uuid::new_v4().simple());
    let p = Pipeline::start_with("e2e-frigate-mqtt", 2, 1, None, |s| {
        s.config.ingest.frigate_mqtt.url = format!("mqtt://127.0.0.1:{port}");
        s.config.ingest.frigate_mqtt.client_id = client_id.clone();
        s.config.ingest.frigate_mqtt.review_topic = "frigate/reviews".into();
    })
    .await;
    let (frigate, driver) = frigate_publisher(port);
    let t0 = (chrono::Utc::now() - chrono::Duration::minutes(3)).timestamp() as f64;
    let id = format!("{t0}-f1re");
    let fire = |kind: &str, frame: f64, end: Option<f64>| {
        json!({"type": kind, "before": {}, "after": {
            "id": id, "camera": "cam_0002", "label": "fire", "score": 0.8, "top_score": 0.9,
            "start_time": t0, "frame_time": frame, "end_time": end,
            "current_zones": [], "entered_zones": [], "has_snapshot": true,
        }})
        .to_string()
    };
    let publish = |body: String| {
        let frigate = frigate.clone();
        async move {
            frigate
                .publish("frigate/events", rumqttc::QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
        }
    };
    let incident = publish_until_incident(&p, &frigate, || fire("new", t0, None)).await;
    publish(fire("update", t0 + 20.0, None)).await;
    publish("{\"type\": \"new\", \"after\": ".to_string()).await;
    publish(fire("update", t0 + 40.0, None)).await;
    publish(fire("end", t0 + 60.0, Some(t0 + 60.0))).await;
    let situations = p.settings.config.topics.situations.clone();
    let done = common::eventually("the fire's end applied", || async {
        read_topic(&p.settings.config.kafka.brokers, &p.settings, &situations)
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice::<Value>(&v).ok())
            .find(|s| s["ended"] == true)
    })
    .await;
    assert_eq!(done["detections"], 4, "{done}");
    assert_eq!(done["incident_id"], incident["id"]);
    assert_eq!(done["event_type"], "fire_or_smoke");
    let dead: Vec<Value> = read_topic(
        &p.settings.config.kafka.brokers,
        &p.settings,
        &p.settings.config.topics.dead_letter,
    )
    .into_iter()
    .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
    .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["source_topic"], "mqtt:frigate/events");
    assert_eq!(dead[0]["reason"], "unreadable_payload");

    // A review item on frigate/reviews (another camera), as it happens: new, update (which
    // states no time; its arrival stands in), end are one situation, named by its object.
    let r0 = chrono::Utc::now().timestamp() as f64 - 5.0;
    let review = |kind: &str, end: Option<f64>| {
        json!({"type": kind, "before": {}, "after": {
            "id": format!("{t0}-rv01"), "camera": "cam_0007", "start_time": r0,
            "end_time": end, "severity": "alert", "thumb_path": "/media/frigate/clips/review/x.webp",
            "data": {"detections": [format!("{t0}-aa01")], "objects": ["smoke"], "sub_labels": [],
                     "zones": [], "audio": []},
        }})
        .to_string()
    };
    for (kind, end) in [("new", None), ("update", None), ("end", Some(r0 + 5.0))] {
        frigate
            .publish(
                "frigate/reviews",
                rumqttc::QoS::AtLeastOnce,
                false,
                review(kind, end),
            )
            .await
            .unwrap();
    }
    let reviewed = common::eventually("the review's end applied", || async {
        read_topic(&p.settings.config.kafka.brokers, &p.settings, &situations)
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice::<Value>(&v).ok())
            .find(|s| s["camera_id"] == "CAM-0007" && s["ended"] == true)
    })
    .await;
    assert_eq!(reviewed["detections"], 3, "{reviewed}");
    assert_eq!(reviewed["event_type"], "fire_or_smoke", "{reviewed}");
    assert_eq!(
        reviewed["source_key"],
        format!("review-{t0}-rv01"),
        "{reviewed}"
    );
    driver.abort();
    p.stop().await;
}
