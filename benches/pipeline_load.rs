//! End-to-end load harness: the whole pipeline in this process (ingest, router, dashboard) on the
//! embedded broker or a real one, citizens' reports fired over HTTP by many concurrent clients,
//! and every resulting incident watched for on the incident topic.
//!
//! It measures what a city would ask: reports accepted per second (each `202` only after Kafka
//! acknowledged it), the time to that `202`, the time from submitting a report to its incident
//! being on the incident topic (routed to its ward), whether every accepted report became exactly
//! one incident, and the process's peak memory. Results are written down in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench pipeline_load -- --reports 20000 --concurrency 64`
//! (`--brokers host:port` for a real broker; the embedded one keeps only ~5 MB per partition, so
//! keep `--reports` at or below about 40,000 there). Under `cargo test` it does nothing.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ioc_config::kafka::{client_config, ensure_topics, EmbeddedBroker};
use ioc_config::load::{token_digest, Settings};
use ioc_config::{Role, TokenConfig};
use ioc_schema::metrics::Metrics;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use serde_json::{json, Value};
use support::{memory_mib, percentile};
use tokio::sync::{watch, Semaphore};

const OPERATOR_TOKEN: &str = "load-harness-operator";
/// Bound on waiting for the last incidents after the last report was accepted.
const DRAIN_WAIT: Duration = Duration::from_secs(180);

struct Args {
    reports: usize,
    concurrency: usize,
    partitions: i32,
    brokers: Option<String>,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if !raw.iter().any(|a| a == "--bench") {
        return Ok(None);
    }
    let mut args = Args {
        reports: 20_000,
        concurrency: 64,
        partitions: 4,
        brokers: None,
    };
    let mut it = raw.into_iter().filter(|a| a != "--bench");
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--reports" => args.reports = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--partitions" => args.partitions = value()?.parse()?,
            "--brokers" => args.brokers = Some(value()?),
            other => bail!(
                "unknown option {other}; options: --reports N, --concurrency C, --partitions P, --brokers host:port"
            ),
        }
    }
    Ok(Some(args))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        println!("pipeline_load: run it with `cargo bench --bench pipeline_load`; nothing to do under `cargo test`");
        return Ok(());
    };
    let unique = format!("load-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let env = [
        ("IOC_TOPICS__REPORTS", format!("{unique}.reports")),
        ("IOC_TOPICS__CAMERA_EVENTS", format!("{unique}.camera")),
        ("IOC_TOPICS__INCIDENTS", format!("{unique}.incidents")),
        ("IOC_TOPICS__DEAD_LETTER", format!("{unique}.dlq")),
        ("IOC_TOPICS__ASSIGNMENTS", format!("{unique}.assignments")),
        ("IOC_TOPICS__PARTITIONS", args.partitions.to_string()),
        ("IOC_LIMITS__PER_CLIENT_PER_MINUTE", "0".to_string()),
        ("IOC_ROUTER__GROUP_ID", format!("{unique}-router")),
        ("IOC_ROUTER__LISTEN", "127.0.0.1:0".into()),
    ];
    let mut settings = Settings::load(None, env.map(|(k, v)| (k.to_string(), v)))?;
    settings.config.dashboard.tokens = vec![TokenConfig {
        name: "load harness".into(),
        sha256: token_digest(OPERATOR_TOKEN),
        role: Role::Operator,
        ward: None,
        plates: false,
    }];
    let _embedded = match &args.brokers {
        Some(b) => {
            settings.config.kafka.brokers = b.clone();
            ensure_topics(&settings.config).await?;
            None
        }
        None => {
            let broker = EmbeddedBroker::start(&settings.config.topics.all(), args.partitions)?;
            settings.config.kafka.brokers = broker.bootstrap_servers().to_string();
            Some(broker)
        }
    };
    let settings = Arc::new(settings);
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let ingest_l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let dash_l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ingest_url = format!("http://{}", ingest_l.local_addr()?);
    let dash_url = format!("http://{}", dash_l.local_addr()?);
    let stages = vec![
        tokio::spawn(ioc_ingest::serve(
            ingest_l,
            settings.clone(),
            metrics.clone(),
            stopped(stop_rx.clone()),
        )),
        tokio::spawn(ioc_router::run(
            settings.clone(),
            metrics.clone(),
            stopped(stop_rx.clone()),
        )),
        tokio::spawn(ioc_dashboard::serve(
            dash_l,
            settings.clone(),
            metrics.clone(),
            stopped(stop_rx.clone()),
        )),
    ];

    // Watches the incident topic: first sighting of each incident (its routing record).
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // The watcher polls often, so it adds little to what it measures.
    let watcher: StreamConsumer = client_config(&settings.config)
        .set("group.id", format!("{unique}-watcher"))
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    watcher.subscribe(&[&settings.config.topics.incidents])?;
    let seen = arrivals.clone();
    let mut watch_stop = stop_rx.clone();
    let watching = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = watch_stop.wait_for(|s| *s) => return,
                m = watcher.recv() => if let Ok(m) = m {
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                    seen.lock().unwrap().entry(key).or_insert_with(Instant::now);
                }
            }
        }
    });

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let started = Instant::now();
    while http
        .get(format!("{ingest_url}/healthz"))
        .send()
        .await
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("ingest did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the router and the watcher time to join their groups, so the first reports do not
    // measure a group join.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let cameras: Vec<_> = settings.cameras.values().cloned().collect();
    let categories: Vec<String> = settings
        .config
        .categories
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let acks: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let mut rng = SmallRng::seed_from_u64(0x10ad);
    eprintln!(
        "pipeline_load: {} reports, {} concurrent clients, {} partitions, broker {}",
        args.reports,
        args.concurrency,
        args.partitions,
        args.brokers.as_deref().unwrap_or("embedded")
    );
    let load_started = Instant::now();
    let mut last_progress = Instant::now();
    let mut tasks = Vec::with_capacity(args.reports);
    for n in 0..args.reports {
        let permit = permits.clone().acquire_owned().await?;
        let cam = &cameras[rng.random_range(0..cameras.len())];
        let body = json!({
            "channel": "app",
            "category": categories[n % categories.len()],
            "text": "Phản ánh hiện trường (load harness)",
            "location": {"lat": cam.lat + rng.random_range(-0.003..0.003), "lon": cam.lon + rng.random_range(-0.003..0.003)},
            "reporter": {"phone": "0900000000"},
            "submitted_at": chrono::Utc::now(),
        });
        let (http, url) = (http.clone(), format!("{ingest_url}/v1/reports"));
        let (sent, acks, refused) = (sent.clone(), acks.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let answer = http.post(url).json(&body).send().await;
            match answer {
                Ok(r) if r.status().as_u16() == 202 => {
                    let took = t0.elapsed();
                    let v: Value = r.json().await.unwrap_or_default();
                    if let Some(id) = v["tracking_id"].as_str() {
                        sent.lock().unwrap().insert(id.to_string(), t0);
                        acks.lock().unwrap().push(took);
                    }
                }
                _ => {
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            drop(permit);
        }));
        if last_progress.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "  {n} sent, {:.0}/s",
                n as f64 / load_started.elapsed().as_secs_f64()
            );
            last_progress = Instant::now();
        }
    }
    for t in tasks {
        t.await?;
    }
    let load_time = load_started.elapsed();
    let accepted: Vec<(String, Instant)> = sent.lock().unwrap().clone().into_iter().collect();
    eprintln!(
        "  all sent in {load_time:.1?}; waiting for {} incidents",
        accepted.len()
    );
    let drain_started = Instant::now();
    loop {
        let have = {
            let seen = arrivals.lock().unwrap();
            accepted
                .iter()
                .filter(|(id, _)| seen.contains_key(id))
                .count()
        };
        if have == accepted.len() {
            break;
        }
        if drain_started.elapsed() > DRAIN_WAIT {
            bail!(
                "only {have} of {} accepted reports reached the incident topic",
                accepted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_routed = load_started.elapsed();
    let mut e2e: Vec<Duration> = {
        let seen = arrivals.lock().unwrap();
        accepted
            .iter()
            .map(|(id, t0)| seen[id].saturating_duration_since(*t0))
            .collect()
    };
    e2e.sort_unstable();
    let mut acks = acks.lock().unwrap().clone();
    acks.sort_unstable();

    // The dashboard holds exactly one incident per accepted report.
    let dash_started = Instant::now();
    let held = loop {
        let stats: Value = http
            .get(format!("{dash_url}/v1/stats"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let total = stats["total"].as_u64().unwrap_or(0) as usize;
        if total >= accepted.len() || dash_started.elapsed() > Duration::from_secs(60) {
            break total;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("\n| reports | clients | accepted/s | 202 p50 / p99 | submit → incident p50 / p90 / p99 | all routed after | refused | on dashboard | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.0} | {:.1} / {:.1} ms | {:.1} / {:.1} / {:.1} ms | {:.1} s | {} | {} | {:.0} MiB |",
        accepted.len(),
        args.concurrency,
        accepted.len() as f64 / load_time.as_secs_f64(),
        ms(percentile(&acks, 50)),
        ms(percentile(&acks, 99)),
        ms(percentile(&e2e, 50)),
        ms(percentile(&e2e, 90)),
        ms(percentile(&e2e, 99)),
        all_routed.as_secs_f64(),
        refused.load(std::sync::atomic::Ordering::Relaxed),
        held,
        memory_mib("VmHWM").unwrap_or(f64::NAN),
    );
    let _ = stop_tx.send(true);
    let _ = watching.await;
    for s in stages {
        match tokio::time::timeout(Duration::from_secs(30), s).await {
            Ok(Ok(Ok(()))) => {}
            other => eprintln!("a stage did not stop cleanly: {other:?}"),
        }
    }
    if held != accepted.len() {
        bail!(
            "the dashboard holds {held} incidents for {} accepted reports",
            accepted.len()
        );
    }
    Ok(())
}
