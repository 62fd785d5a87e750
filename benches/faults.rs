//! Fault harness: the stages as separate processes (two of each: ingest, router, dashboard)
//! against tansu on durable storage (SQLite), driven by citizens' reports over HTTP and Open311,
//! camera detections grouped into situations, and ward units' lifecycle actions, while it kills
//! a randomly chosen stage process with SIGKILL again and again (restarting it at once, as a
//! supervisor would) and stops the broker for a while before starting it again on the same file.
//!
//! Afterwards it reads the topics and checks what the README promises: every request answered
//! 202/201 has exactly one incident (a camera detection: exactly one situation, which counted it
//! once); no incident has two different records for one revision; a dashboard started afresh
//! rebuilds exactly the survivors' state; requests made while the broker was down were refused
//! with 503 and `Retry-After`, never 202. It prints how long each stage took to recover. The
//! figures are written down in RELIABILITY.md. Exits non-zero when a check fails.
//!
//! Run: `cargo bench --bench faults -- --events 100000 --kills 20 --outage 30s`
//! (`--help` lists the options). The test command runs a short version in the debug build:
//! `cargo test --bench faults -- --events 3000 --kills 4 --outage 8s`. Without options (as under a
//! plain `cargo test`) it does nothing. Needs `tansu` built with its `libsql` feature.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use geo::{BoundingRect, Contains, InteriorPoint};
use ioc_config::kafka::client_config;
use ioc_config::load::{token_digest, Settings};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const OPERATOR_TOKEN: &str = "faults-operator";
const CAMERA_KEY: &str = "faults-camera-system";
const OPEN311_KEY: &str = "faults-open311-client";
/// Bound on one stage coming back after a kill, and on the pipeline settling at the end.
const RECOVERY_BOUND: Duration = Duration::from_secs(120);
const SETTLE_BOUND: Duration = Duration::from_secs(180);
/// Bound on retrying one request (the broker's outage included).
const REQUEST_BOUND: Duration = Duration::from_secs(300);
/// Detections of one simulated camera situation: start, updates, end.
const TRACK_LEN: usize = 5;

const HELP: &str = "\
Fault harness: two ingest, two router and two dashboard processes against tansu on SQLite storage,
loaded with reports (HTTP and Open311), camera detections and lifecycle actions, while stage
processes are killed with SIGKILL and the broker is stopped; then checks that nothing accepted was
lost or doubled and that a fresh dashboard rebuilds the survivors' state.

Options:
  --events N       events to drive in all (default 100000): 60 % reports over HTTP, 10 % Open311,
                   20 % camera detections (situations of 5), 10 % lifecycle actions
  --kills K        SIGKILLs of a randomly chosen stage process, spread over the run (default 20)
  --outage D       how long the broker stays down, once, half-way (default 30s; 0s: no outage)
  --rate R         events started per second at most (default 600)
  --concurrency C  concurrent clients (default 32)
  --partitions P   partitions of every topic (default 4)
  --tansu PATH     the tansu binary (default: tansu on PATH)
  --storage URL    tansu's --storage-engine (default sqlite://faults.db, a file in the run's
                   folder; postgres://user:password@host/db needs tansu built with `postgres`;
                   memory://tansu/ loses everything when the broker stops; embedded: no tansu,
                   librdkafka's mock cluster in this process, taken down and up for the outage)
  --kafka-option K=V  passed to every stage's Kafka clients ([kafka.options]), repeatable;
                   e.g. enable.idempotence=false
  --seed S         seed of every random choice (default 1012)
  --dynamic-members  routers and dashboards without static group membership names
                   (router.instance_id, dashboard.instance_id), so a restarted process joins as a
                   new member (--dynamic-routers is the same)
  --keep           keep the run's folder (logs of every process, the broker's database)";

#[derive(Clone)]
struct Args {
    events: usize,
    kills: usize,
    outage: Duration,
    rate: f64,
    concurrency: usize,
    partitions: i32,
    tansu: String,
    storage: String,
    seed: u64,
    keep: bool,
    dynamic_members: bool,
    kafka_options: Vec<(String, String)>,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let raw: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if raw.is_empty() && !std::env::args().any(|a| a == "--bench") {
        return Ok(None);
    }
    let mut args = Args {
        events: 100_000,
        kills: 20,
        outage: Duration::from_secs(30),
        rate: 600.0,
        concurrency: 32,
        partitions: 4,
        tansu: "tansu".into(),
        storage: "sqlite://faults.db".into(),
        seed: 1012,
        keep: false,
        dynamic_members: false,
        kafka_options: Vec::new(),
    };
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => args.events = value()?.parse()?,
            "--kills" => args.kills = value()?.parse()?,
            "--outage" => args.outage = humantime::parse_duration(&value()?)?,
            "--rate" => args.rate = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse::<usize>()?.max(8),
            "--partitions" => args.partitions = value()?.parse()?,
            "--tansu" => args.tansu = value()?,
            "--storage" => args.storage = value()?,
            "--seed" => args.seed = value()?.parse()?,
            "--keep" => args.keep = true,
            "--dynamic-members" | "--dynamic-routers" => args.dynamic_members = true,
            "--kafka-option" => {
                let v = value()?;
                let (k, v) = v
                    .split_once('=')
                    .context("--kafka-option takes KEY=VALUE")?;
                args.kafka_options.push((k.to_string(), v.to_string()));
            }
            "--help" | "-h" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n\n{HELP}"),
        }
    }
    if args.events < 100 || args.rate <= 0.0 {
        bail!("--events must be at least 100 and --rate above 0");
    }
    Ok(Some(args))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound").port()
}

fn ms(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The three kinds of stage process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
enum Stage {
    Ingest,
    Router,
    Dashboard,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Router => "router",
            Stage::Dashboard => "dashboard",
        }
    }

    fn listen_var(self) -> &'static str {
        match self {
            Stage::Ingest => "IOC_INGEST__LISTEN",
            Stage::Router => "IOC_ROUTER__LISTEN",
            Stage::Dashboard => "IOC_DASHBOARD__LISTEN",
        }
    }
}

/// One stage process, restarted on the same address under the same name.
struct Proc {
    stage: Stage,
    name: String,
    addr: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Proc {
    fn new(stage: Stage, n: usize, static_member: bool) -> Proc {
        let name = format!("{}-{n}", stage.name());
        let mut env = Vec::new();
        // Static membership: a router or dashboard restarted under its name takes its
        // partitions back.
        match stage {
            Stage::Router if static_member => {
                env.push(("IOC_ROUTER__INSTANCE_ID".to_string(), name.clone()));
            }
            Stage::Dashboard if static_member => {
                env.push(("IOC_DASHBOARD__INSTANCE_ID".to_string(), name.clone()));
            }
            _ => {}
        }
        Proc {
            stage,
            addr: format!("127.0.0.1:{}", free_port()),
            name,
            env,
            child: None,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn start(&mut self, run: &Run) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run.dir.join(format!("{}.log", self.name)))?;
        let child = Command::new(&run.bin)
            .arg(self.stage.name())
            .arg("--config")
            .arg(&run.config)
            .env(self.stage.listen_var(), &self.addr)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("IOC_LOG_FORMAT", "plain")
            .env(
                "RUST_LOG",
                std::env::var("IOC_FAULTS_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no goodbye, nothing flushed.
    fn kill(&mut self) {
        sigkill(&mut self.child);
    }
}

/// SIGKILLs the process, if there is one, and waits until it is gone.
fn sigkill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// tansu on SQLite storage in the run's folder.
struct Broker {
    tansu: String,
    storage: String,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    /// `--storage embedded`: librdkafka's mock cluster in this process instead of tansu.
    embedded: Option<ioc_config::kafka::EmbeddedBroker>,
}

impl Broker {
    fn bootstrap(&self) -> String {
        match &self.embedded {
            Some(e) => e.bootstrap_servers().to_string(),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    fn start(&mut self) -> anyhow::Result<()> {
        if self.storage == "embedded" {
            match &self.embedded {
                Some(e) => e.set_down(false)?,
                None => self.embedded = Some(ioc_config::kafka::EmbeddedBroker::start(&[], 1)?),
            }
            return Ok(());
        }
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))?;
        let child = Command::new(&self.tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
            .current_dir(&self.dir)
            .env(
                "RUST_LOG",
                std::env::var("IOC_FAULTS_BROKER_LOG")
                    .unwrap_or_else(|_| "warn,tansu_broker::coordinator=info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (install it with: cargo install tansu --locked --features dynostore,libsql)",
                    self.tansu
                )
            })?;
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                bail!(
                    "tansu exited ({status}); its log: {}",
                    self.dir.join("tansu.log").display()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("tansu does not listen on port {} after 30 s", self.port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(e) = &self.embedded {
            let _ = e.set_down(true);
        }
        sigkill(&mut self.child);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What every process of a run shares.
struct Run {
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    settings: Settings,
    /// Ward id → the token of its unit.
    ward_tokens: HashMap<String, String>,
}

/// Writes the run's configuration: unique topics on the run's broker, every demo ward's unit
/// with a token, a camera system's key, an Open311 client's key, no per-client limits (every
/// simulated citizen comes from one address).
fn write_config(
    dir: &Path,
    unique: &str,
    brokers: &str,
    partitions: i32,
    kafka_options: &[(String, String)],
) -> anyhow::Result<(PathBuf, HashMap<String, String>)> {
    let mut text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\n\n\
         [topics]\nreports = \"{unique}.reports\"\ncamera_events = \"{unique}.camera\"\n\
         incidents = \"{unique}.incidents\"\ndead_letter = \"{unique}.dlq\"\n\
         assignments = \"{unique}.assignments\"\npartitions = {partitions}\n\n\
         [router]\ngroup_id = \"{unique}-router\"\n\n\
         [limits]\nper_client_per_minute = 0\nper_key_per_minute = 0\n\n\
         [dashboard]\nmax_page_size = 1000\n\n\
         [[dashboard.tokens]]\nname = \"operators\"\nrole = \"operator\"\nsha256 = \"{}\"\n\n\
         [[ingest.camera_keys]]\nname = \"fault harness cameras\"\nsha256 = \"{}\"\n\n\
         [[open311.keys]]\nname = \"fault harness 311 client\"\nsha256 = \"{}\"\n",
        token_digest(OPERATOR_TOKEN),
        token_digest(CAMERA_KEY),
        token_digest(OPEN311_KEY),
    );
    if !kafka_options.is_empty() {
        text.push_str("\n[kafka.options]\n");
        for (k, v) in kafka_options {
            text.push_str(&format!("{k:?} = {v:?}\n"));
        }
    }
    let mut tokens = HashMap::new();
    for w in ioc_wards::demo::wards() {
        let token = format!("faults-ward-{}", w.id);
        text.push_str(&format!(
            "\n[[dashboard.tokens]]\nname = \"unit of {id}\"\nrole = \"ward\"\nward = \"{id}\"\nsha256 = \"{}\"\n",
            token_digest(&token),
            id = w.id
        ));
        tokens.insert(w.id.clone(), token);
    }
    let path = dir.join("ioc.toml");
    std::fs::write(&path, text)?;
    Ok((path, tokens))
}

/// The answer to one HTTP attempt: status (0 when the connection failed), whether it carried
/// `Retry-After`, and when it was sent and answered.
#[derive(Clone, Copy)]
struct Attempt {
    kind: Kind,
    status: u16,
    retry_after: bool,
    sent: Instant,
    answered: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
enum Kind {
    Report,
    Open311,
    Camera,
    Action,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Report => "reports (HTTP)",
            Kind::Open311 => "Open311 requests",
            Kind::Camera => "camera detections",
            Kind::Action => "lifecycle actions",
        }
    }
}

/// A simulated camera situation and the detections of it that were accepted.
struct Track {
    source_key: String,
    accepted: HashSet<String>,
}

/// Everything the clients were told.
#[derive(Default)]
struct Ledger {
    attempts: Mutex<Vec<Attempt>>,
    /// Idempotency key → the tracking ids answered with 202 (one, if nothing is doubled).
    reports: Mutex<HashMap<String, HashSet<String>>>,
    open311: Mutex<Vec<String>>,
    tracks: Mutex<Vec<Track>>,
    /// Actions answered 200, and those answered 409 although an earlier attempt had applied them.
    actions_applied: AtomicUsize,
    actions_applied_unanswered: AtomicUsize,
    actions_conflict: AtomicUsize,
    /// Requests refused for what they said (4xx other than 409/429): a harness error.
    refused: Mutex<Vec<String>>,
    gave_up: AtomicUsize,
    /// Logical events accepted so far, for the fault schedule.
    done: AtomicUsize,
}

/// Paces the start of logical events to `rate` a second.
struct Pacer {
    start: Instant,
    rate: f64,
    issued: AtomicUsize,
}

impl Pacer {
    async fn wait(&self) {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let at = self.start + Duration::from_secs_f64(n as f64 / self.rate);
        tokio::time::sleep_until(at.into()).await;
    }
}

struct Load {
    http: reqwest::Client,
    ledger: Arc<Ledger>,
    pacer: Pacer,
    ingest: Vec<String>,
    dashboards: Vec<String>,
    categories: Vec<String>,
    cameras: Vec<String>,
    ward_tokens: HashMap<String, String>,
    wards: Vec<ioc_wards::Ward>,
}

enum Answer {
    Accepted(Value),
    Conflict,
    GaveUp,
}

impl Load {
    /// Sends one logical request until it is accepted (2xx), refused for what it says (4xx),
    /// or [`REQUEST_BOUND`] passes; each attempt goes to the next instance, as a load balancer
    /// would send a retry, and waits a moment after a 503 or a failed connection.
    async fn send(
        &self,
        kind: Kind,
        targets: &[String],
        first: usize,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Answer {
        let started = Instant::now();
        let mut n = first;
        loop {
            let base = &targets[n % targets.len()];
            n += 1;
            let sent = Instant::now();
            let result = build(&self.http, base).send().await;
            let (status, retry_after, body) = match result {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let retry_after = r.headers().contains_key(reqwest::header::RETRY_AFTER);
                    let body = r.json::<Value>().await.unwrap_or(Value::Null);
                    (status, retry_after, body)
                }
                Err(_) => (0, false, Value::Null),
            };
            self.ledger.attempts.lock().unwrap().push(Attempt {
                kind,
                status,
                retry_after,
                sent,
                answered: Instant::now(),
            });
            match status {
                200..=299 => return Answer::Accepted(body),
                409 => return Answer::Conflict,
                0 | 429 | 500..=599 => {}
                _ => {
                    self.ledger
                        .refused
                        .lock()
                        .unwrap()
                        .push(format!("{} answered {status}: {body}", kind.name()));
                    return Answer::GaveUp;
                }
            }
            if started.elapsed() > REQUEST_BOUND {
                self.ledger.gave_up.fetch_add(1, Ordering::Relaxed);
                return Answer::GaveUp;
            }
            tokio::time::sleep(Duration::from_millis(if status == 0 { 100 } else { 300 })).await;
        }
    }

    fn point(&self, rng: &mut SmallRng) -> (String, f64, f64) {
        let ward = &self.wards[rng.random_range(0..self.wards.len())];
        let rect = ward.geometry.bounding_rect().expect("a ward has an extent");
        for _ in 0..50 {
            let p = geo::Point::new(
                rng.random_range(rect.min().x..rect.max().x),
                rng.random_range(rect.min().y..rect.max().y),
            );
            if ward.geometry.contains(&p) {
                return (ward.id.clone(), p.y(), p.x());
            }
        }
        let p = ward.geometry.interior_point().expect("an interior point");
        (ward.id.clone(), p.y(), p.x())
    }

    async fn report(&self, i: usize, run_id: &str, rng: &mut SmallRng) -> Option<String> {
        let (_, lat, lon) = self.point(rng);
        let key = format!("{run_id}-r{i}");
        let body = json!({
            "idempotency_key": key,
            "channel": "app",
            "category": self.categories[i % self.categories.len()],
            "text": format!("Phản ánh số {i}"),
            "location": {"lat": lat, "lon": lon},
            "reporter": {"phone": format!("09{:08}", i % 100_000_000)},
            "submitted_at": chrono::Utc::now(),
        });
        let answer = self
            .send(Kind::Report, &self.ingest, i, |c, base| {
                c.post(format!("{base}/v1/reports")).json(&body)
            })
            .await;
        let Answer::Accepted(v) = answer else {
            return None;
        };
        let id = v["tracking_id"].as_str()?.to_string();
        self.ledger
            .reports
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .insert(id.clone());
        Some(id)
    }

    async fn open311(&self, i: usize, rng: &mut SmallRng) {
        let (_, lat, lon) = self.point(rng);
        let form = vec![
            ("api_key", OPEN311_KEY.to_string()),
            (
                "service_code",
                self.categories[i % self.categories.len()].clone(),
            ),
            ("lat", lat.to_string()),
            ("long", lon.to_string()),
            ("description", format!("Yêu cầu 311 số {i}")),
            ("phone", format!("08{:08}", i % 100_000_000)),
        ];
        let answer = self
            .send(Kind::Open311, &self.dashboards, i, |c, base| {
                c.post(format!("{base}/open311/v2/requests.json"))
                    .form(&form)
            })
            .await;
        if let Answer::Accepted(v) = answer {
            if let Some(id) = v[0]["service_request_id"].as_str() {
                self.ledger.open311.lock().unwrap().push(id.to_string());
            }
        }
    }

    /// One camera situation: start, updates, end, each detection its own request.
    async fn track(&self, j: usize, run_id: &str, rng: &mut SmallRng) {
        let camera = self.cameras[rng.random_range(0..self.cameras.len())].clone();
        let source_key = format!("{run_id}-t{j}");
        let mut accepted = HashSet::new();
        for k in 0..TRACK_LEN {
            self.pacer.wait().await;
            let signal = match k {
                0 => "start",
                k if k == TRACK_LEN - 1 => "end",
                _ => "update",
            };
            let event_id = format!("{source_key}-d{k}");
            let body = json!([{
                "event_id": event_id,
                "camera_id": camera,
                "event_type": "accident",
                "confidence": 0.5 + 0.1 * k as f64,
                "detected_at": chrono::Utc::now(),
                "signal": signal,
                "source_key": source_key,
            }]);
            let answer = self
                .send(Kind::Camera, &self.ingest, j + k, |c, base| {
                    c.post(format!("{base}/v1/camera-events"))
                        .bearer_auth(CAMERA_KEY)
                        .json(&body)
                })
                .await;
            if let Answer::Accepted(_) = answer {
                accepted.insert(event_id);
                self.ledger.done.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.ledger.tracks.lock().unwrap().push(Track {
            source_key,
            accepted,
        });
    }

    async fn incident(&self, id: &str, n: usize) -> Option<Value> {
        let base = &self.dashboards[n % self.dashboards.len()];
        let r = self
            .http
            .get(format!("{base}/v1/incidents/{id}"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// A ward unit works one incident: acknowledge, start, resolve. A 409 after a retry is
    /// fine when the incident shows the action applied (the first attempt's answer was lost).
    async fn work(&self, id: &str, n: usize) {
        let started = Instant::now();
        let ward = loop {
            if let Some(i) = self.incident(id, n).await {
                if let Some(w) = i["ward"]["id"].as_str() {
                    break w.to_string();
                }
            }
            if started.elapsed() > REQUEST_BOUND {
                self.ledger.gave_up.fetch_add(1, Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let Some(token) = self.ward_tokens.get(&ward).cloned() else {
            return;
        };
        let steps = [
            (json!({"action": "acknowledge"}), "acknowledged"),
            (json!({"action": "start"}), "in_progress"),
            (
                json!({"action": "resolve", "result": "Đã xử lý"}),
                "resolved",
            ),
        ];
        for (k, (action, reached)) in steps.iter().enumerate() {
            self.pacer.wait().await;
            let answer = self
                .send(Kind::Action, &self.dashboards, n + k, |c, base| {
                    c.post(format!("{base}/v1/incidents/{id}/actions"))
                        .bearer_auth(&token)
                        .json(action)
                })
                .await;
            match answer {
                Answer::Accepted(_) => {
                    self.ledger.actions_applied.fetch_add(1, Ordering::Relaxed);
                }
                Answer::Conflict => {
                    let now = self.incident(id, n).await;
                    if now.as_ref().and_then(|i| i["status"].as_str()) == Some(reached) {
                        self.ledger
                            .actions_applied_unanswered
                            .fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.ledger.actions_conflict.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                Answer::GaveUp => return,
            }
            self.ledger.done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads a topic from the beginning to its current end: (key, payload) per record.
fn read_topic(settings: &Settings, topic: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let consumer: BaseConsumer = client_config(&settings.config)
        .set("group.id", format!("faults-check-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()?;
    let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = meta.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10))?;
        ends.insert(*p, high);
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    // To the ends the broker reports, then on until nothing comes for 2 s: records beyond
    // the reported end are counted (a broker whose watermarks lag behind what it serves).
    let mut out = Vec::new();
    let mut beyond = 0usize;
    let started = Instant::now();
    let mut idle_since = Instant::now();
    ends.retain(|_, high| *high > 0);
    while !ends.is_empty() || idle_since.elapsed() < Duration::from_secs(2) {
        if started.elapsed() > Duration::from_secs(300) {
            bail!("reading {topic}: not at its end after 300 s");
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        idle_since = Instant::now();
        out.push((
            String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            m.payload().unwrap_or_default().to_vec(),
        ));
        match ends.get(&m.partition()) {
            Some(end) if m.offset() + 1 >= *end => {
                ends.remove(&m.partition());
            }
            Some(_) => {}
            None => beyond += 1,
        }
    }
    if beyond > 0 {
        println!("faults: {topic}: {beyond} records beyond the ends the broker reported");
    }
    Ok(out)
}

/// Polls `GET /readyz` until it answers 200.
async fn ready(http: &reqwest::Client, url: &str, bound: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < bound {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Partitions each process at `urls` holds in consumer groups of `stage`, in the order of `urls`
/// (`None` for one that does not answer).
async fn held(http: &reqwest::Client, urls: &[String], stage: &str) -> Vec<Option<f64>> {
    let label = format!("stage=\"{stage}\"");
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let text = match http.get(format!("{url}/metrics")).send().await {
            Ok(r) => r.text().await.ok(),
            Err(_) => None,
        };
        out.push(text.map(|t| {
            t.lines()
                .filter(|l| l.starts_with("ioc_consumer_assigned_partitions") && l.contains(&label))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }));
    }
    out
}

/// Waits until the stage's processes hold all the partitions they share: the routers both
/// input topics' and the incident topic's (their assignment forwarder), the dashboards the
/// command topic's. When `bound` passes first, what each group was short of, per process.
async fn working(
    http: &reqwest::Client,
    procs: &[(Stage, String)],
    stage: Stage,
    partitions: i32,
    bound: Duration,
) -> Result<(), String> {
    let groups: &[(&str, i32)] = match stage {
        Stage::Ingest => return Ok(()),
        Stage::Router => &[("router", 2), ("assignments", 1)],
        Stage::Dashboard => &[("dashboard-commands", 1)],
    };
    let urls: Vec<String> = procs
        .iter()
        .filter(|(s, _)| *s == stage)
        .map(|(_, u)| u.clone())
        .collect();
    let started = Instant::now();
    loop {
        let mut short = Vec::new();
        for (label, topics) in groups {
            let each = held(http, &urls, label).await;
            let sum: f64 = each.iter().flatten().sum();
            let wanted = f64::from(topics * partitions);
            if sum < wanted {
                let who: Vec<String> = urls
                    .iter()
                    .zip(&each)
                    .map(|(u, h)| match h {
                        Some(h) => format!("{u} {h}"),
                        None => format!("{u} not answering"),
                    })
                    .collect();
                short.push(format!(
                    "group '{label}' holds {sum} of {wanted} partitions ({})",
                    who.join(", ")
                ));
            }
        }
        if short.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= bound {
            return Err(short.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One fault and how long the pipeline took to get over it.
struct Recovery {
    stage: Stage,
    /// Kill → the restarted process answers `/readyz` 200.
    ready: Option<Duration>,
    /// Kill → the stage's group holds all its partitions again.
    working: Option<Duration>,
}

/// All pages of `GET /v1/incidents` of one dashboard.
async fn all_incidents(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        let page: Value = http
            .get(format!(
                "{url}/v1/incidents?limit=1000&offset={}",
                out.len()
            ))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return Ok(out);
        }
        out.extend(items);
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        println!(
            "faults: run it with options (`--help`); nothing to do under a plain `cargo test`"
        );
        return Ok(());
    };
    let ok = run(args).await?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let dir = std::env::temp_dir().join(format!("ioc-faults-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut broker = Broker {
        tansu: args.tansu.clone(),
        storage: args.storage.clone(),
        dir: dir.clone(),
        port: free_port(),
        child: None,
        embedded: None,
    };
    let unique = format!("faults-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let load_settings = |config: &Path| {
        Settings::load(Some(config), std::iter::empty())
            .map_err(|e| anyhow::anyhow!("the harness's config: {e}"))
    };
    if broker.storage == "embedded" {
        // The mock cluster takes its topics when it starts: named by a first draft of the
        // config.
        let (draft, _) = write_config(
            &dir,
            &unique,
            "127.0.0.1:9",
            args.partitions,
            &args.kafka_options,
        )?;
        let topics: Vec<String> = load_settings(&draft)?
            .config
            .topics
            .all()
            .into_iter()
            .map(str::to_string)
            .collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        broker.embedded = Some(ioc_config::kafka::EmbeddedBroker::start(
            &topics,
            args.partitions,
        )?);
    } else {
        broker.start()?;
    }
    let (config, ward_tokens) = write_config(
        &dir,
        &unique,
        &broker.bootstrap(),
        args.partitions,
        &args.kafka_options,
    )?;
    let settings = load_settings(&config)?;
    let run = Run {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_ioc")),
        dir: dir.clone(),
        config: config.clone(),
        settings,
        ward_tokens,
    };
    println!(
        "faults: {} events, {} kills, broker outage {}; processes' logs and the broker's database in {}",
        args.events,
        args.kills,
        ms(args.outage),
        dir.display()
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    // Topics first, so that no two processes race to create them (the mock cluster has
    // them already).
    if broker.embedded.is_none() {
        let status = Command::new(&run.bin)
            .args(["create-topics", "--config"])
            .arg(&run.config)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("ioc create-topics failed");
        }
    }
    let mut procs = Vec::new();
    for stage in [Stage::Ingest, Stage::Router, Stage::Dashboard] {
        for n in 1..=2 {
            let mut p = Proc::new(stage, n, !args.dynamic_members);
            p.env.push(("IOC_TOPICS__CREATE".into(), "false".into()));
            p.start(&run)?;
            procs.push(p);
        }
    }
    for p in &procs {
        if !ready(&http, &p.url(), RECOVERY_BOUND).await {
            bail!(
                "{} is not ready after {RECOVERY_BOUND:?}; see {}/{}.log",
                p.name,
                dir.display(),
                p.name
            );
        }
    }
    let addrs: Vec<(Stage, String)> = procs.iter().map(|p| (p.stage, p.url())).collect();
    for stage in [Stage::Router, Stage::Dashboard] {
        if let Err(short) = working(&http, &addrs, stage, args.partitions, RECOVERY_BOUND).await {
            bail!(
                "the {}s do not hold all partitions after {RECOVERY_BOUND:?}: {short}",
                stage.name()
            );
        }
    }
    let what = if broker.embedded.is_some() {
        "librdkafka's mock cluster in this process".to_string()
    } else {
        format!("tansu, {}", args.storage)
    };
    println!(
        "faults: 6 stage processes ready on {} ({what})",
        broker.bootstrap()
    );

    // The load.
    let run_id = format!("f{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let n_reports = args.events * 6 / 10;
    let n_open311 = args.events / 10;
    let n_tracks = args.events * 2 / 10 / TRACK_LEN;
    let n_worked = args.events / 10 / 3;
    let total = n_reports + n_open311 + n_tracks * TRACK_LEN + n_worked * 3;
    let mut cameras: Vec<String> = run.settings.cameras.keys().cloned().collect();
    cameras.sort();
    let load = Arc::new(Load {
        http: http.clone(),
        ledger: Arc::new(Ledger::default()),
        pacer: Pacer {
            start: Instant::now(),
            rate: args.rate,
            issued: AtomicUsize::new(0),
        },
        ingest: procs
            .iter()
            .filter(|p| p.stage == Stage::Ingest)
            .map(Proc::url)
            .collect(),
        dashboards: procs
            .iter()
            .filter(|p| p.stage == Stage::Dashboard)
            .map(Proc::url)
            .collect(),
        categories: run
            .settings
            .config
            .categories
            .iter()
            .map(|c| c.id.clone())
            .collect(),
        cameras,
        ward_tokens: run.ward_tokens.clone(),
        wards: ioc_wards::demo::wards(),
    });
    let started = Instant::now();
    let (work_tx, work_rx) = mpsc::unbounded_channel::<(usize, String)>();
    let work_rx = Arc::new(tokio::sync::Mutex::new(work_rx));
    let next_report = Arc::new(AtomicUsize::new(0));
    let next_open311 = Arc::new(AtomicUsize::new(0));
    let next_track = Arc::new(AtomicUsize::new(0));
    let queued = Arc::new(AtomicUsize::new(0));
    let c = args.concurrency;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..c / 2 {
        let (load, next, tx, queued) = (
            load.clone(),
            next_report.clone(),
            work_tx.clone(),
            queued.clone(),
        );
        let run_id = run_id.clone();
        tasks.spawn(async move {
            let mut rng = SmallRng::seed_from_u64(args.seed ^ (w as u64) << 8);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n_reports {
                    return;
                }
                load.pacer.wait().await;
                if let Some(id) = load.report(i, &run_id, &mut rng).await {
                    load.ledger.done.fetch_add(1, Ordering::Relaxed);
                    if i % 6 == 0 && queued.fetch_add(1, Ordering::Relaxed) < n_worked {
                        let _ = tx.send((i, id));
                    }
                }
            }
        });
    }
    drop(work_tx);
    for w in 0..c / 8 {
        let (load, next) = (load.clone(), next_open311.clone());
        tasks.spawn(async move {
            let mut rng = SmallRng::seed_from_u64(args.seed ^ (w as u64) << 16);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n_open311 {
                    return;
                }
                load.pacer.wait().await;
                load.open311(i, &mut rng).await;
                load.ledger.done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    for w in 0..c / 4 {
        let (load, next) = (load.clone(), next_track.clone());
        let run_id = run_id.clone();
        tasks.spawn(async move {
            let mut rng = SmallRng::seed_from_u64(args.seed ^ (w as u64) << 24);
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= n_tracks {
                    return;
                }
                load.track(j, &run_id, &mut rng).await;
            }
        });
    }
    // As many ward units as report clients: each works its incident through three actions in a
    // row, each waiting for its answer, so with fewer the last actions trailed the rest of a
    // full-size run by half an hour at six a second.
    for _ in 0..c / 2 {
        let (load, rx) = (load.clone(), work_rx.clone());
        tasks.spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((i, id)) = next else { return };
                load.work(&id, i).await;
            }
        });
    }

    // Progress, once every 5 s.
    let progress = {
        let ledger = load.ledger.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = ledger.done.load(Ordering::Relaxed);
                let attempts = ledger.attempts.lock().unwrap().len();
                println!(
                    "faults: {done}/{total} events accepted, {attempts} requests, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        })
    };

    // The faults: kills spread over the run, the outage half-way, one at a time.
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut plan: Vec<(f64, Option<usize>)> = (0..args.kills)
        .map(|k| ((k + 1) as f64 / (args.kills + 2) as f64, Some(k)))
        .collect();
    if !args.outage.is_zero() {
        plan.push((0.5, None));
    }
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut recoveries = Vec::new();
    let mut kills_after_load = 0;
    let mut outage: Option<(Instant, Instant)> = None;
    let mut outage_ready = None;
    for (at, fault) in plan {
        while (load.ledger.done.load(Ordering::Relaxed) as f64) < at * total as f64
            && !tasks.is_empty()
        {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                r = tasks.join_next() => { if let Some(Err(e)) = r { bail!("a client task failed: {e}") } }
            }
        }
        if tasks.is_empty() {
            kills_after_load += 1;
        }
        match fault {
            Some(_) => {
                let i = rng.random_range(0..procs.len());
                let p = &mut procs[i];
                let killed = Instant::now();
                p.kill();
                p.start(&run)?;
                let url = p.url();
                let stage = p.stage;
                let ready_in = ready(&http, &url, RECOVERY_BOUND)
                    .await
                    .then(|| killed.elapsed());
                let working_in =
                    match working(&http, &addrs, stage, args.partitions, RECOVERY_BOUND).await {
                        Ok(()) => Some(killed.elapsed()),
                        Err(short) => {
                            println!("faults: after SIGKILL of {}: {short}", p.name);
                            None
                        }
                    };
                println!(
                    "faults: SIGKILL {} → ready in {}, working in {}",
                    procs[i].name,
                    ready_in.map_or("NEVER".into(), ms),
                    working_in.map_or("NEVER".into(), ms)
                );
                recoveries.push(Recovery {
                    stage,
                    ready: ready_in,
                    working: working_in,
                });
            }
            None => {
                let down = Instant::now();
                broker.kill();
                println!(
                    "faults: broker killed (SIGKILL); down for {}",
                    ms(args.outage)
                );
                tokio::time::sleep(args.outage).await;
                broker.start()?;
                let up = Instant::now();
                outage = Some((down, up));
                // Named when it is not back: which process is not ready, which group is short.
                let mut all = true;
                for p in &procs {
                    if !ready(&http, &p.url(), RECOVERY_BOUND).await {
                        println!("faults: after the outage, {} is not ready", p.name);
                        all = false;
                    }
                }
                for stage in [Stage::Router, Stage::Dashboard] {
                    if let Err(short) =
                        working(&http, &addrs, stage, args.partitions, RECOVERY_BOUND).await
                    {
                        println!("faults: after the outage, the {}s: {short}", stage.name());
                        all = false;
                    }
                }
                outage_ready = all.then(|| up.elapsed());
                println!(
                    "faults: broker back on the same storage; every stage ready and working {} later",
                    outage_ready.map_or("NEVER".into(), ms)
                );
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a client task failed")?;
    }
    let load_time = started.elapsed();
    progress.abort();
    let ledger = load.ledger.clone();
    println!(
        "faults: load done in {} ({} events accepted); checking",
        ms(load_time),
        ledger.done.load(Ordering::Relaxed)
    );

    // Wait until every accepted report, Open311 request and camera situation is on the
    // incident topic (bounded), then check.
    let reports: HashMap<String, HashSet<String>> = ledger.reports.lock().unwrap().clone();
    let open311: Vec<String> = ledger.open311.lock().unwrap().clone();
    let tracks: Vec<(String, HashSet<String>)> = ledger
        .tracks
        .lock()
        .unwrap()
        .iter()
        .map(|t| (t.source_key.clone(), t.accepted.clone()))
        .collect();
    let topics = &run.settings.config.topics;
    let wanted: HashSet<String> = reports
        .values()
        .flatten()
        .chain(&open311)
        .cloned()
        .collect();
    let settle = Instant::now();
    let (incidents, situations) = loop {
        let incidents = read_topic(&run.settings, &topics.incidents)?;
        let situations = read_topic(&run.settings, &topics.situations)?;
        let keys: HashSet<&str> = incidents.iter().map(|(k, _)| k.as_str()).collect();
        let missing = wanted
            .iter()
            .filter(|id| !keys.contains(id.as_str()))
            .count();
        let last = last_situations(&situations);
        let short = tracks
            .iter()
            .filter(|(key, accepted)| {
                last.get(key.as_str())
                    .is_none_or(|s| s["detections"].as_u64() != Some(accepted.len() as u64))
            })
            .count();
        if (missing == 0 && short == 0) || settle.elapsed() > SETTLE_BOUND {
            break (incidents, situations);
        }
        println!("faults: waiting for {missing} incidents and {short} situations to be written");
        for (key, accepted) in tracks
            .iter()
            .filter(|(key, accepted)| {
                last.get(key.as_str())
                    .is_none_or(|s| s["detections"].as_u64() != Some(accepted.len() as u64))
            })
            .take(3)
        {
            println!(
                "faults:   situation {key}: {} detections accepted, its latest record: {}",
                accepted.len(),
                last.get(key.as_str())
                    .map_or("none".to_string(), |s| s.to_string())
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };

    let mut failures = Vec::new();
    // Lost and doubled.
    let mut per_revision: HashMap<(String, u64), HashSet<Vec<u8>>> = HashMap::new();
    let mut routed_once: HashMap<String, usize> = HashMap::new();
    for (key, payload) in &incidents {
        let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        let revision = v["revision"].as_u64().unwrap_or(0);
        per_revision
            .entry((key.clone(), revision))
            .or_default()
            .insert(payload.clone());
        if revision == 1 {
            *routed_once.entry(key.clone()).or_default() += 1;
        }
    }
    let conflicting = per_revision
        .values()
        .filter(|bodies| bodies.len() > 1)
        .count();
    // Who wrote each of them: the last step of every content (action, actor, time, command).
    for ((id, revision), bodies) in per_revision.iter().filter(|(_, b)| b.len() > 1).take(5) {
        println!(
            "faults: incident {id} has {} records of revision {revision}:",
            bodies.len()
        );
        for body in bodies {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let step = v["history"].as_array().and_then(|h| h.last()).cloned();
            println!(
                "faults:   status {}, last step {}",
                v["status"],
                step.map_or("none".to_string(), |t| t.to_string())
            );
        }
    }
    let keys: HashSet<&str> = incidents.iter().map(|(k, _)| k.as_str()).collect();
    let lost_reports = wanted
        .iter()
        .filter(|id| !keys.contains(id.as_str()))
        .count();
    let doubled_reports = reports.values().filter(|ids| ids.len() > 1).count();
    let last = last_situations(&situations);
    let mut situations_per_source: HashMap<String, HashSet<&str>> = HashMap::new();
    for (key, payload) in &situations {
        let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        if let Some(s) = v["source_key"].as_str() {
            situations_per_source
                .entry(s.to_string())
                .or_default()
                .insert(key.as_str());
        }
    }
    let mut lost_detections = 0usize;
    let mut doubled_detections = 0usize;
    let mut split_tracks = 0usize;
    let mut lost_situation_incidents = 0usize;
    for (source, accepted) in &tracks {
        if situations_per_source
            .get(source.as_str())
            .map_or(0, HashSet::len)
            > 1
        {
            split_tracks += 1;
        }
        let Some(s) = last.get(source.as_str()) else {
            lost_detections += accepted.len();
            continue;
        };
        let counted = s["detections"].as_u64().unwrap_or(0) as usize;
        lost_detections += accepted.len().saturating_sub(counted);
        doubled_detections += counted.saturating_sub(accepted.len());
        if s["incident_written"] == true
            && !s["incident_id"]
                .as_str()
                .is_some_and(|id| keys.contains(id))
        {
            lost_situation_incidents += 1;
        }
    }
    let orphans = keys
        .iter()
        .filter(|k| !k.starts_with("cam-") && !wanted.contains(**k))
        .count();
    for (what, n) in [
        (
            "accepted reports and Open311 requests without an incident",
            lost_reports,
        ),
        (
            "idempotency keys answered with two tracking ids",
            doubled_reports,
        ),
        (
            "incident revisions written twice with different contents",
            conflicting,
        ),
        (
            "accepted camera detections not counted in their situation",
            lost_detections,
        ),
        ("camera detections counted twice", doubled_detections),
        ("camera situations split in two", split_tracks),
        (
            "camera situations whose incident is missing",
            lost_situation_incidents,
        ),
    ] {
        if n > 0 {
            failures.push(format!("{n} {what}"));
        }
    }
    for r in ledger.refused.lock().unwrap().iter().take(5) {
        failures.push(format!("refused: {r}"));
    }
    let gave_up = ledger.gave_up.load(Ordering::Relaxed);
    if gave_up > 0 {
        failures.push(format!(
            "{gave_up} requests not accepted within {REQUEST_BOUND:?}"
        ));
    }

    // The outage: what was answered while the broker was down.
    let attempts = ledger.attempts.lock().unwrap().clone();
    let (mut during_503, mut during_accepted, mut during_other, mut first_after) = (0, 0, 0, None);
    if let Some((down, up)) = outage {
        for a in &attempts {
            if a.sent >= down && a.answered <= up {
                match a.status {
                    503 if a.retry_after => during_503 += 1,
                    200..=299 => during_accepted += 1,
                    _ => during_other += 1,
                }
            }
            if a.sent >= up && (200..=299).contains(&a.status) && a.kind != Kind::Action {
                let t = a.answered.duration_since(up);
                first_after = Some(first_after.map_or(t, |f: Duration| f.min(t)));
            }
        }
        if during_accepted > 0 {
            failures.push(format!(
                "{during_accepted} requests answered 2xx while the broker was down"
            ));
        }
        if during_503 == 0 {
            failures.push("no request was answered 503 while the broker was down".into());
        }
    }
    for r in &recoveries {
        if r.ready.is_none() || r.working.is_none() {
            failures.push(format!(
                "a {} did not recover within {RECOVERY_BOUND:?}",
                r.stage.name()
            ));
        }
    }
    if !args.outage.is_zero() && outage_ready.is_none() {
        failures.push("the stages did not recover from the broker's outage".into());
    }

    // A fresh dashboard replays the incident topic: the same state as the survivors.
    let survivors = all_incidents(&http, &load.dashboards[0]).await?;
    let mut fresh = Proc::new(Stage::Dashboard, 3, false);
    fresh
        .env
        .push(("IOC_TOPICS__CREATE".into(), "false".into()));
    fresh
        .env
        .push(("IOC_DASHBOARD__MONITOR".into(), "false".into()));
    let replay_started = Instant::now();
    fresh.start(&run)?;
    let replayed = ready(&http, &fresh.url(), RECOVERY_BOUND).await;
    let replay_time = replay_started.elapsed();
    let mut rebuilt = if replayed {
        all_incidents(&http, &fresh.url()).await?
    } else {
        Vec::new()
    };
    // Ready means replayed to the ends the broker reports; where it reported them short (the
    // lines above count such records), the rest arrives just after. Waited for, and the wait
    // printed: a replay that never gets there fails.
    let mut caught_up_after = None;
    if replayed && rebuilt != survivors {
        let since_ready = Instant::now();
        while since_ready.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rebuilt = all_incidents(&http, &fresh.url()).await?;
            if rebuilt == survivors {
                caught_up_after = Some(since_ready.elapsed());
                break;
            }
        }
    }
    let same = replayed && rebuilt == survivors;
    if !same {
        // What differs, in the fields that tell which side is behind.
        let brief = |i: &Value| {
            format!(
                "revision {} {} updated {}",
                i["revision"], i["status"], i["updated_at"]
            )
        };
        let first = survivors
            .iter()
            .zip(&rebuilt)
            .find(|(a, b)| a != b)
            .map(|(a, b)| {
                format!(
                    "{}: the survivors' {}, the fresh one's {}",
                    a["id"],
                    brief(a),
                    brief(b)
                )
            })
            .unwrap_or_default();
        failures.push(format!(
            "the fresh dashboard's {} incidents differ from the survivors' {} (first: {first})",
            rebuilt.len(),
            survivors.len()
        ));
    }
    fresh.kill();

    // Report.
    let mut by_kind: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    for a in &attempts {
        let e = by_kind.entry(a.kind).or_default();
        e.0 += 1;
        if (200..=299).contains(&a.status) {
            e.1 += 1;
        }
    }
    let accepted_detections: usize = tracks.iter().map(|(_, a)| a.len()).sum();
    let applied = ledger.actions_applied.load(Ordering::Relaxed);
    let unanswered = ledger.actions_applied_unanswered.load(Ordering::Relaxed);
    let conflicts = ledger.actions_conflict.load(Ordering::Relaxed);
    let events = reports.len() + open311.len() + accepted_detections + applied + unanswered;
    println!();
    println!("## Fault run: {events} events in {}", ms(load_time));
    println!();
    println!(
        "- accepted: {} reports over HTTP, {} Open311 requests, {} camera detections in {} situations, {} lifecycle actions ({} more applied whose answer was lost, {} refused 409)",
        reports.len(),
        open311.len(),
        accepted_detections,
        tracks.len(),
        applied,
        unanswered,
        conflicts
    );
    for (kind, (all, ok)) in &by_kind {
        println!(
            "- {}: {all} requests, {ok} accepted, {} retried",
            kind.name(),
            all - ok
        );
    }
    let mut kills_by_stage: BTreeMap<Stage, Vec<&Recovery>> = BTreeMap::new();
    for r in &recoveries {
        kills_by_stage.entry(r.stage).or_default().push(r);
    }
    println!(
        "- faults: {} SIGKILLs ({}), {} after the load had ended; {}",
        recoveries.len(),
        kills_by_stage
            .iter()
            .map(|(s, v)| format!("{} {}", s.name(), v.len()))
            .collect::<Vec<_>>()
            .join(", "),
        kills_after_load,
        if args.outage.is_zero() {
            "no broker outage".to_string()
        } else {
            format!("broker killed and down for {}", ms(args.outage))
        }
    );
    println!(
        "- lost: {}   doubled: {}   revisions with two contents: {conflicting}",
        lost_reports + lost_detections + lost_situation_incidents,
        doubled_reports + doubled_detections + split_tracks
    );
    println!(
        "- incident topic: {} records, {} incidents ({} routed records of revision 1 for {} ids; {orphans} incidents of requests never answered 2xx)",
        incidents.len(),
        keys.len(),
        routed_once.values().sum::<usize>(),
        routed_once.len()
    );
    if outage.is_some() {
        println!(
            "- while the broker was down: {during_503} requests answered 503 with Retry-After, {during_accepted} answered 2xx, {during_other} otherwise (connection refused or 503 without Retry-After); first event accepted {} after it came back; every stage ready and working {} after",
            first_after.map_or("never".into(), ms),
            outage_ready.map_or("never".into(), ms)
        );
    }
    for (stage, rs) in &kills_by_stage {
        let mut ready: Vec<Duration> = rs.iter().filter_map(|r| r.ready).collect();
        let mut work: Vec<Duration> = rs.iter().filter_map(|r| r.working).collect();
        ready.sort();
        work.sort();
        let span = |v: &[Duration]| {
            if v.is_empty() {
                "never".to_string()
            } else {
                format!(
                    "{} / {} / {}",
                    ms(v[0]),
                    ms(v[v.len() / 2]),
                    ms(v[v.len() - 1])
                )
            }
        };
        println!(
            "- {} after SIGKILL (min / median / max): ready {}; holding its partitions again {}",
            stage.name(),
            span(&ready),
            span(&work)
        );
    }
    println!(
        "- a fresh dashboard replayed the topic in {}: {} incidents, {}",
        ms(replay_time),
        rebuilt.len(),
        match (same, caught_up_after) {
            (true, None) => "identical to the survivors'".to_string(),
            (true, Some(t)) => format!(
                "identical to the survivors' {} after it was ready (it was short of records past the ends the broker reported)",
                ms(t)
            ),
            (false, _) => "DIFFERENT from the survivors' (also 30 s after it was ready)".to_string(),
        }
    );
    println!();
    drop(procs);
    broker.kill();
    if failures.is_empty() {
        println!("faults: every check passed");
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(true)
    } else {
        for f in &failures {
            println!("faults: FAILED: {f}");
        }
        println!("faults: logs kept in {}", dir.display());
        Ok(false)
    }
}

/// The latest situation record of each source key.
fn last_situations(records: &[(String, Vec<u8>)]) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for (_, payload) in records {
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            continue;
        };
        if let Some(s) = v["source_key"].as_str() {
            out.insert(s.to_string(), v);
        }
    }
    out
}
