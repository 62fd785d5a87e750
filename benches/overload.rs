//! Overload harness: more citizens' reports than the broker takes, then no broker at all, and
//! what ingest answers meanwhile. Ingest runs in this process on the embedded broker, which the
//! harness slows down (every broker answer delayed) and then takes away.
//!
//! Load is open-loop: reports are sent at a fixed rate whatever the answers, as a city's
//! citizens would, so a stage that queued requests would show it in its latency and memory.
//! Four phases of `--seconds` each: a healthy broker, a slow broker (`--round-trip-ms`), the
//! broker away, and the broker back. For each phase it prints the answers by status, the time
//! to each kind of answer, and the process's resident memory (sampled every 100 ms).
//! Results are written down in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench overload -- --rate 3000 --seconds 15`
//! (`--round-trip-ms 400`, `--max-pending 1000`). Under `cargo test` it does nothing.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ioc_config::kafka::EmbeddedBroker;
use ioc_config::load::Settings;
use ioc_schema::metrics::Metrics;
use serde_json::json;
use support::{memory_mib, percentile};
use tokio::sync::watch;

struct Args {
    rate: u64,
    seconds: u64,
    round_trip_ms: u64,
    max_pending: usize,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if !raw.iter().any(|a| a == "--bench") {
        return Ok(None);
    }
    let mut args = Args {
        rate: 3000,
        seconds: 15,
        round_trip_ms: 400,
        max_pending: 1000,
    };
    let mut it = raw.into_iter().filter(|a| a != "--bench");
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rate" => args.rate = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--round-trip-ms" => args.round_trip_ms = value()?.parse()?,
            "--max-pending" => args.max_pending = value()?.parse()?,
            other => bail!(
                "unknown option {other}; options: --rate REPORTS_PER_SECOND, --seconds PER_PHASE, --round-trip-ms SLOW_BROKER_DELAY, --max-pending N"
            ),
        }
    }
    if args.rate == 0 || args.seconds == 0 {
        bail!("--rate and --seconds must be more than zero");
    }
    Ok(Some(args))
}

/// Answers of one phase: time to answer, by status (`0`: no answer within 30 s).
#[derive(Default)]
struct Answers(BTreeMap<u16, Vec<Duration>>);

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        println!("overload: run it with `cargo bench --bench overload`; nothing to do under `cargo test`");
        return Ok(());
    };
    let unique = format!(
        "overload-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let env = [
        ("IOC_TOPICS__REPORTS", format!("{unique}.reports")),
        ("IOC_TOPICS__CAMERA_EVENTS", format!("{unique}.camera")),
        ("IOC_TOPICS__INCIDENTS", format!("{unique}.incidents")),
        ("IOC_TOPICS__DEAD_LETTER", format!("{unique}.dlq")),
        ("IOC_TOPICS__ASSIGNMENTS", format!("{unique}.assignments")),
        ("IOC_LIMITS__PER_CLIENT_PER_MINUTE", "0".to_string()),
        ("IOC_KAFKA__MAX_PENDING", args.max_pending.to_string()),
    ];
    let mut settings = Settings::load(None, env.map(|(k, v)| (k.to_string(), v)))?;
    let broker = EmbeddedBroker::start(&settings.config.topics.all(), 4)?;
    settings.config.kafka.brokers = broker.bootstrap_servers().to_string();
    let settings = Arc::new(settings);
    let metrics = Metrics::new();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/reports", listener.local_addr()?);
    let ingest = tokio::spawn(ioc_ingest::serve(
        listener,
        settings.clone(),
        metrics.clone(),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let camera = settings
        .cameras
        .values()
        .next()
        .context("the demo city has cameras")?
        .clone();
    let body = Arc::new(json!({
        "channel": "app", "category": "environment",
        "text": "Phản ánh hiện trường (overload harness)",
        "location": {"lat": camera.lat, "lon": camera.lon},
        "reporter": {"phone": "0900000000"},
    }));
    let started = Instant::now();
    while http
        .get(url.replace("/v1/reports", "/healthz"))
        .send()
        .await
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("ingest did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "overload: {} reports/s for {} s per phase, slow broker {} ms per answer, kafka.max_pending {}",
        args.rate, args.seconds, args.round_trip_ms, args.max_pending
    );
    let baseline = memory_mib("VmRSS").unwrap_or(f64::NAN);
    let phases = [
        "healthy broker",
        "slow broker",
        "broker away",
        "broker back",
    ];
    println!("\nresident memory before the load: {baseline:.0} MiB");
    println!("\n| phase | sent | 202 | 503 | other | 202 p50 / p99 | 503 p50 / p99 | first 202 after | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, phase) in phases.iter().enumerate() {
        match i {
            1 => broker.set_round_trip(Duration::from_millis(args.round_trip_ms))?,
            2 => {
                broker.set_round_trip(Duration::ZERO)?;
                broker.set_down(true)?;
            }
            3 => broker.set_down(false)?,
            _ => {}
        }
        let answers: Arc<Mutex<Answers>> = Arc::default();
        // When the first 202 of the phase was answered, counted from the phase's start.
        let first_ok: Arc<Mutex<Option<Duration>>> = Arc::default();
        let peak = Arc::new(Mutex::new(0f64));
        let sampling = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    if let Some(r) = memory_mib("VmRSS") {
                        let mut p = peak.lock().unwrap();
                        *p = p.max(r);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let total = args.rate * args.seconds;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let phase_started = Instant::now();
        let mut tasks = Vec::with_capacity(total as usize);
        for _ in 0..total {
            tick.tick().await;
            let (http, url, body, answers, first_ok) = (
                http.clone(),
                url.clone(),
                body.clone(),
                answers.clone(),
                first_ok.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut body = (*body).clone();
                body["submitted_at"] = json!(chrono::Utc::now());
                let t0 = Instant::now();
                let status = match http.post(url).json(&body).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                let took = t0.elapsed();
                if status == 202 {
                    let at = phase_started.elapsed();
                    let mut first = first_ok.lock().unwrap();
                    *first = Some(first.map_or(at, |f| f.min(at)));
                }
                answers
                    .lock()
                    .unwrap()
                    .0
                    .entry(status)
                    .or_default()
                    .push(took);
            }));
        }
        for t in tasks {
            t.await?;
        }
        sampling.abort();
        let took = phase_started.elapsed();
        let mut answers = std::mem::take(&mut *answers.lock().unwrap());
        for v in answers.0.values_mut() {
            v.sort_unstable();
        }
        let n = |s: u16| answers.0.get(&s).map_or(0, Vec::len);
        let other: usize = answers
            .0
            .iter()
            .filter(|(s, _)| **s != 202 && **s != 503)
            .map(|(_, v)| v.len())
            .sum();
        let ms = |s: u16, p: usize| {
            answers.0.get(&s).map_or("–".to_string(), |v| {
                format!("{:.1}", percentile(v, p).as_secs_f64() * 1000.0)
            })
        };
        println!(
            "| {phase} | {total} in {:.1} s | {} | {} | {other} | {} / {} ms | {} / {} ms | {} | {:.0} MiB |",
            took.as_secs_f64(),
            n(202),
            n(503),
            ms(202, 50),
            ms(202, 99),
            ms(503, 50),
            ms(503, 99),
            first_ok
                .lock()
                .unwrap()
                .map_or("–".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
            *peak.lock().unwrap(),
        );
    }
    println!(
        "\nwrites refused at once by the admission gate: {}",
        metrics
            .produce_refusals
            .with_label_values(&["ingest"])
            .get()
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(30), ingest).await {
        Ok(Ok(Ok(()))) => {}
        other => eprintln!("ingest did not stop cleanly: {other:?}"),
    }
    Ok(())
}
