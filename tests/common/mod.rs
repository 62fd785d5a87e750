//! Shared harness of the end-to-end tests: a Kafka-protocol broker (the embedded mock cluster, or
//! the real broker named by `IOC_TEST_BROKERS`), unique topics and groups per test, and the three
//! stages running in-process on loopback ports.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ioc_config::kafka::{client_config, ensure_topics, EmbeddedBroker};
use ioc_config::load::{token_digest, Settings};
use ioc_config::{Role, TokenConfig};
use ioc_schema::metrics::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

pub const OPERATOR_TOKEN: &str = "test-operator-token";
pub const WARD_TOKEN: &str = "test-ward-token";
pub const WARD_OF_TOKEN: &str = "P001";
/// A second ward's unit, for re-routing.
pub const WARD2_TOKEN: &str = "test-ward-p002";
/// An operator token allowed to read plates on enforcement records (the traffic police's).
pub const PLATES_TOKEN: &str = "test-traffic-police";
pub const WARD2: &str = "P002";
pub const OPEN311_KEY: &str = "test-open311-key";
/// A camera system's key for `POST /v1/camera-events`.
pub const CAMERA_KEY: &str = "test-camera-system-key";

/// Bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(90);

/// A point well inside a demo ward, as `(lat, lon)`.
pub fn point_in(ward_id: &str) -> (f64, f64) {
    use geo::InteriorPoint;
    let ward = ioc_router::wards::demo::wards()
        .into_iter()
        .find(|w| w.id == ward_id)
        .expect("a demo ward");
    let p = ward.geometry.interior_point().expect("an interior point");
    (p.y(), p.x())
}

/// Polls `check` every 100 ms until it gives a value; fails naming `what` after [`WAIT`]. The
/// one wait loop of these tests.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < WAIT, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where a pipeline's broker comes from.
enum Choice {
    /// `IOC_TEST_BROKERS`, or a fresh embedded one.
    FromEnv,
    Embedded,
    At(String),
}

/// Which broker the tests talk to.
pub enum Broker {
    Embedded(EmbeddedBroker),
    External(String),
}

impl Broker {
    /// The broker named by `IOC_TEST_BROKERS`, or a fresh embedded one.
    pub fn from_env(topics: &[&str], partitions: i32) -> Broker {
        match std::env::var("IOC_TEST_BROKERS") {
            Ok(b) if !b.is_empty() => Broker::External(b),
            _ => Broker::Embedded(
                EmbeddedBroker::start(topics, partitions).expect("embedded broker starts"),
            ),
        }
    }

    pub fn bootstrap(&self) -> String {
        match self {
            Broker::Embedded(e) => e.bootstrap_servers().to_string(),
            Broker::External(b) => b.clone(),
        }
    }
}

/// Settings for one test: unique topic and group names, loopback ports, test tokens.
pub fn settings(test: &str, bootstrap: &str, partitions: i32) -> Settings {
    let unique = format!("{test}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let env = vec![
        ("IOC_KAFKA__BROKERS", bootstrap.to_string()),
        ("IOC_TOPICS__REPORTS", format!("{unique}.reports")),
        ("IOC_TOPICS__CAMERA_EVENTS", format!("{unique}.camera")),
        ("IOC_TOPICS__INCIDENTS", format!("{unique}.incidents")),
        ("IOC_TOPICS__DEAD_LETTER", format!("{unique}.dlq")),
        ("IOC_TOPICS__ASSIGNMENTS", format!("{unique}.assignments")),
        ("IOC_TOPICS__COMMANDS", format!("{unique}.commands")),
        (
            "IOC_TOPICS__COMMAND_RESULTS",
            format!("{unique}.command-results"),
        ),
        ("IOC_TOPICS__PARTITIONS", partitions.to_string()),
        ("IOC_ROUTER__GROUP_ID", format!("{unique}-router")),
        ("IOC_ROUTER__LISTEN", "127.0.0.1:0".to_string()),
        ("IOC_INGEST__LISTEN", "127.0.0.1:0".to_string()),
        ("IOC_DASHBOARD__LISTEN", "127.0.0.1:0".to_string()),
        // Every request of a test comes from one address.
        ("IOC_LIMITS__PER_CLIENT_PER_MINUTE", "0".to_string()),
    ];
    let mut s = Settings::load(None, env.into_iter().map(|(k, v)| (k.to_string(), v)))
        .expect("test settings are valid");
    s.config.dashboard.tokens = vec![
        TokenConfig {
            name: "test operator".into(),
            sha256: token_digest(OPERATOR_TOKEN),
            role: Role::Operator,
            ward: None,
            plates: false,
        },
        TokenConfig {
            name: "test ward".into(),
            sha256: token_digest(WARD_TOKEN),
            role: Role::Ward,
            ward: Some(WARD_OF_TOKEN.into()),
            plates: false,
        },
        TokenConfig {
            name: "second test ward".into(),
            sha256: token_digest(WARD2_TOKEN),
            role: Role::Ward,
            ward: Some(WARD2.into()),
            plates: false,
        },
        TokenConfig {
            name: "test traffic police".into(),
            sha256: token_digest(PLATES_TOKEN),
            role: Role::Operator,
            ward: None,
            plates: true,
        },
    ];
    s.config.open311.keys = vec![ioc_config::ApiKeyConfig {
        name: "test 311 client".into(),
        sha256: token_digest(OPEN311_KEY),
    }];
    s.config.ingest.camera_keys = vec![ioc_config::CameraKeyConfig {
        name: "test camera system".into(),
        sha256: token_digest(CAMERA_KEY),
        cameras: Vec::new(),
        digest: None,
    }];
    s
}

/// One stage running as a task, with its own stop signal.
struct Stage {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Stage {
    fn spawn<F>(run: impl FnOnce(watch::Receiver<bool>) -> F) -> Stage
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        Stage {
            task: tokio::spawn(run(rx)),
            stop,
        }
    }

    /// Stops the stage and checks it ended cleanly.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("stage stops in time");
        result
            .expect("stage task did not panic")
            .expect("stage ended without error");
    }
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct TestClock(Arc<std::sync::Mutex<chrono::DateTime<chrono::Utc>>>);

impl TestClock {
    pub fn starting_now() -> TestClock {
        TestClock(Arc::new(std::sync::Mutex::new(chrono::Utc::now())))
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }

    pub fn as_clock(&self) -> ioc_dashboard::Clock {
        let inner = self.0.clone();
        Arc::new(move || *inner.lock().unwrap())
    }
}

/// A running pipeline.
pub struct Pipeline {
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    pub ingest_url: String,
    pub dashboard_url: String,
    pub http: reqwest::Client,
    clock: Option<TestClock>,
    ingest: Option<Stage>,
    dashboard: Option<Stage>,
    extra_dashboards: Vec<Stage>,
    routers: Vec<Stage>,
    // Kept last so the broker outlives the stages during drop.
    _broker: Broker,
}

fn stopped(rx: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx;
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

impl Pipeline {
    /// Starts a broker (unless external), creates topics, and runs ingest, `routers` routers and
    /// the dashboard.
    pub async fn start(test: &str, partitions: i32, routers: usize) -> Pipeline {
        Pipeline::start_with(test, partitions, routers, None, |_| {}).await
    }

    /// Like [`Pipeline::start`], with the dashboard on `clock` and settings adjusted by `tune`.
    pub async fn start_with(
        test: &str,
        partitions: i32,
        routers: usize,
        clock: Option<TestClock>,
        tune: impl FnOnce(&mut Settings),
    ) -> Pipeline {
        Pipeline::start_on(test, partitions, routers, clock, tune, Choice::FromEnv).await
    }

    /// Ingest, one router and the dashboard on an embedded broker whatever `IOC_TEST_BROKERS`
    /// says, for tests that take the broker down or slow it.
    pub async fn start_embedded(test: &str, tune: impl FnOnce(&mut Settings)) -> Pipeline {
        Pipeline::start_on(test, 1, 1, None, tune, Choice::Embedded).await
    }

    /// Ingest, one router and the dashboard on the broker at `bootstrap` (settings such as TLS
    /// options come from `tune`).
    pub async fn start_at(
        test: &str,
        bootstrap: &str,
        tune: impl FnOnce(&mut Settings),
    ) -> Pipeline {
        Pipeline::start_on(test, 1, 1, None, tune, Choice::At(bootstrap.to_string())).await
    }

    async fn start_on(
        test: &str,
        partitions: i32,
        routers: usize,
        clock: Option<TestClock>,
        tune: impl FnOnce(&mut Settings),
        choice: Choice,
    ) -> Pipeline {
        let mut probe = settings(test, "unused:1", partitions);
        tune(&mut probe);
        let topics = probe.config.topics.all();
        let broker = match choice {
            Choice::Embedded => Broker::Embedded(
                EmbeddedBroker::start(&topics, partitions).expect("embedded broker starts"),
            ),
            Choice::FromEnv => Broker::from_env(&topics, partitions),
            Choice::At(b) => Broker::External(b),
        };
        let mut settings = probe.clone();
        settings.config.kafka.brokers = broker.bootstrap();
        if let Broker::External(_) = broker {
            ensure_topics(&settings.config)
                .await
                .expect("topics created on the external broker");
        }
        let settings = Arc::new(settings);
        let metrics = Metrics::new();
        let ingest_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ingest_url = format!("http://{}", ingest_l.local_addr().unwrap());
        let (s, m) = (settings.clone(), metrics.clone());
        let ingest = Stage::spawn(move |rx| ioc_ingest::serve(ingest_l, s, m, stopped(rx)));
        let mut p = Pipeline {
            settings,
            metrics,
            ingest_url,
            dashboard_url: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            clock,
            ingest: Some(ingest),
            dashboard: None,
            extra_dashboards: Vec::new(),
            routers: Vec::new(),
            _broker: broker,
        };
        p.start_dashboard().await;
        for _ in 0..routers {
            p.start_router();
        }
        p
    }

    /// Starts a dashboard (on a new port, which `dashboard_url` then names).
    pub async fn start_dashboard(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.dashboard_url = format!("http://{}", listener.local_addr().unwrap());
        let (s, m) = (self.settings.clone(), self.metrics.clone());
        let clock = self
            .clock
            .as_ref()
            .map_or_else(ioc_dashboard::system_clock, TestClock::as_clock);
        self.dashboard = Some(Stage::spawn(move |rx| {
            ioc_dashboard::serve_with_clock(listener, s, m, clock, stopped(rx))
        }));
    }

    /// Starts another dashboard instance beside the first (same topics and group) and returns
    /// its address; [`Pipeline::stop_extra_dashboard`] stops it. Its metrics are its own, so its
    /// `/metrics` tells what it holds ([`command_partitions_at`]).
    pub async fn start_extra_dashboard(&mut self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (s, m) = (self.settings.clone(), Metrics::new());
        self.extra_dashboards.push(Stage::spawn(move |rx| {
            ioc_dashboard::serve(listener, s, m, stopped(rx))
        }));
        url
    }

    /// Stops the `n`th extra dashboard.
    pub async fn stop_extra_dashboard(&mut self, n: usize) {
        self.extra_dashboards.remove(n).stop().await;
    }

    /// Stops the first dashboard (the one `dashboard_url` names), leaving the extra ones.
    pub async fn stop_dashboard(&mut self) {
        if let Some(d) = self.dashboard.take() {
            d.stop().await;
        }
    }

    /// Starts one more router (in the shared consumer group).
    pub fn start_router(&mut self) {
        let s = self.settings.clone();
        self.routers.push(Stage::spawn(move |rx| {
            ioc_router::run(s, Metrics::new(), stopped(rx))
        }));
    }

    /// The embedded broker, to take it down or slow it (`None` on an external broker).
    pub fn embedded(&self) -> Option<&EmbeddedBroker> {
        match &self._broker {
            Broker::Embedded(e) => Some(e),
            Broker::External(_) => None,
        }
    }

    /// Stops the dashboard and every router, as an operator restarting them would.
    pub async fn stop_router_and_dashboard(&mut self) {
        for r in self.routers.drain(..) {
            r.stop().await;
        }
        if let Some(d) = self.dashboard.take() {
            d.stop().await;
        }
        for d in self.extra_dashboards.drain(..) {
            d.stop().await;
        }
    }

    /// Stops every stage and checks none failed.
    pub async fn stop(mut self) {
        self.stop_router_and_dashboard().await;
        if let Some(i) = self.ingest.take() {
            i.stop().await;
        }
    }

    /// GET on the dashboard without a token (the citizen's and Open311's endpoints), as JSON.
    pub async fn public(&self, path_and_query: &str) -> serde_json::Value {
        self.http
            .get(format!("{}{path_and_query}", self.dashboard_url))
            .send()
            .await
            .expect("dashboard answers")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// GET on the dashboard with the operator token, as JSON.
    pub async fn dashboard(&self, path_and_query: &str) -> serde_json::Value {
        self.dashboard_as(path_and_query, OPERATOR_TOKEN).await.1
    }

    pub async fn dashboard_as(
        &self,
        path_and_query: &str,
        token: &str,
    ) -> (u16, serde_json::Value) {
        self.dashboard_as_at(&self.dashboard_url, path_and_query, token)
            .await
    }

    /// GET on the dashboard at `base` with `token`, as JSON.
    pub async fn dashboard_as_at(
        &self,
        base: &str,
        path_and_query: &str,
        token: &str,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .get(format!("{base}{path_and_query}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("dashboard answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// Polls the dashboard until `/v1/incidents` reports at least `n` incidents.
    pub async fn wait_for_incidents(&self, n: usize) -> serde_json::Value {
        eventually(&format!("{n} incidents on the dashboard"), || async {
            let page = self
                .dashboard(&format!("/v1/incidents?limit={}", n.max(1) + 50))
                .await;
            (page["total"].as_u64().unwrap_or(0) as usize >= n).then_some(page)
        })
        .await
    }

    /// Files a citizen's report located inside `ward` and waits until the dashboard shows its
    /// incident; returns the tracking id.
    pub async fn file_report(&self, ward: &str) -> String {
        let (lat, lon) = point_in(ward);
        let body = serde_json::json!({
            "channel": "app", "category": "environment", "text": "Cống tắc, nước tràn",
            "location": {"lat": lat, "lon": lon}, "reporter": {"phone": "+84-900000000"},
            "submitted_at": chrono::Utc::now(),
        });
        let resp = self
            .http
            .post(format!("{}/v1/reports", self.ingest_url))
            .json(&body)
            .send()
            .await
            .expect("ingest answers");
        assert_eq!(resp.status().as_u16(), 202);
        let id = resp.json::<serde_json::Value>().await.unwrap()["tracking_id"]
            .as_str()
            .unwrap()
            .to_string();
        self.incident_when(&id, "appears", |_| true).await;
        id
    }

    /// Records of one incident on the incident topic, as JSON, in topic order.
    pub fn revisions_on_topic(&self, id: &str) -> Vec<serde_json::Value> {
        read_topic(
            &self.settings.config.kafka.brokers,
            &self.settings,
            &self.settings.config.topics.incidents,
        )
        .into_iter()
        .filter(|(k, _)| k == id)
        .map(|(_, v)| serde_json::from_slice(&v).unwrap())
        .collect()
    }

    /// Posts a lifecycle action with `token`; the status and the answer's JSON.
    pub async fn act(
        &self,
        id: &str,
        token: &str,
        action: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}/v1/incidents/{id}/actions", self.dashboard_url))
            .bearer_auth(token)
            .json(&action)
            .send()
            .await
            .expect("dashboard answers");
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or_default(),
        )
    }

    /// Polls incident `id` on the dashboard (as an operator) until `done` holds for it.
    pub async fn incident_when(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        eventually(&format!("incident {id}: {what}"), || async {
            let (status, body) = self
                .dashboard_as(&format!("/v1/incidents/{id}"), OPERATOR_TOKEN)
                .await;
            (status == 200 && done(&body)).then_some(body)
        })
        .await
    }
}

/// Reads a whole topic (every partition from the beginning) as `(key, value)` pairs, without
/// joining a consumer group. It stops once no record has arrived for a quiet period, rather than
/// trusting watermarks, which not every Kafka-compatible broker reports the same way.
pub fn read_topic(bootstrap: &str, settings: &Settings, topic: &str) -> Vec<(String, Vec<u8>)> {
    let mut cfg = client_config(&settings.config);
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().expect("reader consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let quiet = Duration::from_secs(3);
    let started = Instant::now();
    let mut last = Instant::now();
    let mut out = Vec::new();
    while last.elapsed() < quiet {
        assert!(started.elapsed() < WAIT, "reading {topic} took too long");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            out.push((key, m.payload().unwrap_or_default().to_vec()));
            last = Instant::now();
        }
    }
    out
}

/// One metric of the stage at `base` (summed over the lines whose labels contain `label`), from
/// its `/metrics` page; `None` while it does not answer or has no such line yet.
pub async fn metric_at(http: &reqwest::Client, base: &str, name: &str, label: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// How many command partitions the dashboard at `base` holds in the dashboards' group.
pub async fn command_partitions_at(http: &reqwest::Client, base: &str) -> Option<f64> {
    let stage = "stage=\"dashboard-commands\"";
    metric_at(http, base, "ioc_consumer_assigned_partitions", stage).await
}

/// Reads a live stream (Server-Sent Events) of the dashboard in the background, keeping the
/// raw bytes.
pub struct StreamReader {
    bytes: Arc<std::sync::Mutex<Vec<u8>>>,
    ended: Arc<std::sync::Mutex<Option<String>>>,
}

impl StreamReader {
    /// Opens `path` (with its query, the token in it) on `p`'s dashboard; must answer 200.
    pub async fn open(p: &Pipeline, path: &str) -> StreamReader {
        use futures::StreamExt as _;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let opening = client.get(format!("{}{path}", p.dashboard_url)).send();
        // The stream's body never ends, so only its opening is bounded.
        let resp = tokio::time::timeout(WAIT, opening)
            .await
            .expect("the stream opens in time")
            .expect("stream opens");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let bytes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ended = Arc::new(std::sync::Mutex::new(None));
        let (b, e) = (bytes.clone(), ended.clone());
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => b.lock().unwrap().extend_from_slice(&chunk),
                    Some(Err(err)) => {
                        *e.lock().unwrap() = Some(format!("stream error: {err}"));
                        return;
                    }
                    None => {
                        *e.lock().unwrap() = Some("stream ended".into());
                        return;
                    }
                }
            }
        });
        StreamReader { bytes, ended }
    }

    /// The events the stream has carried so far, whole: an event still arriving (its blank
    /// line not yet read, or a chunk ending inside a character) is left for a later call.
    pub fn text(&self) -> String {
        let bytes = self.bytes.lock().unwrap();
        let whole = bytes
            .windows(2)
            .rposition(|w| w == b"\n\n")
            .map_or(0, |at| at + 2);
        String::from_utf8(bytes[..whole].to_vec()).expect("the stream is UTF-8")
    }

    /// Waits until the stream has carried `needle`, failing if it was cut first.
    pub async fn wait_for(&self, needle: &str) {
        let started = Instant::now();
        loop {
            if let Some(why) = self.ended.lock().unwrap().clone() {
                panic!("the live stream was cut: {why}");
            }
            if self.text().contains(needle) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "{needle} never reached the stream"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The data of every event named `event` carried so far, as JSON.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.text()
            .split("\n\n")
            .filter(|block| block.lines().any(|l| l == format!("event: {event}")))
            .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|data| serde_json::from_str(data).expect("event data is JSON"))
            .collect()
    }
}
