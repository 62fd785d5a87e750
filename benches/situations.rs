//! Camera situations under a camera-heavy stream: thousands of cameras, tracks that last
//! seconds to hours, in the styles of the five vendor formats (Frigate new/update/end with its
//! id, DeepStream updates keyed by tracker, Hikvision's endless `active` by zone, Dahua
//! Start/Stop, ONVIF rule states).
//!
//! 1. The grouping itself (`ioc_router::situations`): detections per second and the memory one
//!    open situation holds.
//! 2. On a broker (the embedded one, or `--brokers host:port`): the camera topic filled with
//!    the stream as ingest writes it, then drained by `ioc router` (incidents and situation
//!    records acknowledged), against a bare librdkafka consume→produce loop (idempotent,
//!    `acks=all`) over the same records on the same broker in the same run.
//!
//! Run: `cargo bench --bench situations -- --cameras 3000 --events 400000 --broker-events 40000`
//! (the embedded broker keeps only ~5 MB per partition: keep `--broker-events` at or below
//! about 40,000 there). Results are written down in BENCHMARKS.md. Under `cargo test` it runs a
//! small stream through the grouping and checks its counts.

mod support;

/// mimalloc rather than the system allocator: the stages allocate and free many small
/// buffers per record on several threads, where glibc's malloc spent a fifth of the router's
/// time (BENCHMARKS.md, camera situations).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use ioc_config::kafka::{client_config, ensure_topics, producer_config, EmbeddedBroker};
use ioc_config::load::Settings;
use ioc_router::situations::{Decision, Situations};
use ioc_schema::camera::Signal;
use ioc_schema::metrics::Metrics;
use ioc_schema::CameraEvent;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::memory_mib;

struct Args {
    cameras: usize,
    events: usize,
    broker_events: usize,
    partitions: i32,
    brokers: Option<String>,
    /// `router.max_in_flight`; the configuration's default when not given.
    max_in_flight: Option<usize>,
}

fn parse_args() -> anyhow::Result<(Args, bool)> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let bench = raw.iter().any(|a| a == "--bench");
    let mut args = Args {
        cameras: 3000,
        events: 400_000,
        broker_events: 40_000,
        partitions: 4,
        brokers: None,
        max_in_flight: None,
    };
    if !bench {
        // Under `cargo test`: a small stream, no broker.
        args.cameras = 200;
        args.events = 20_000;
        args.broker_events = 0;
        return Ok((args, false));
    }
    let mut it = raw.into_iter().filter(|a| a != "--bench");
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--cameras" => args.cameras = value()?.parse()?,
            "--events" => args.events = value()?.parse()?,
            "--broker-events" => args.broker_events = value()?.parse()?,
            "--partitions" => args.partitions = value()?.parse()?,
            "--brokers" => args.brokers = Some(value()?),
            "--max-in-flight" => args.max_in_flight = Some(value()?.parse()?),
            other => bail!("unknown option {other}; options: --cameras N, --events N, --broker-events N (0: none), --partitions P, --brokers host:port, --max-in-flight N (the router's)"),
        }
    }
    Ok((args, true))
}

/// A track's style, as its vendor reports it.
#[derive(Clone, Copy)]
enum Style {
    Frigate,
    DeepStream,
    Hikvision,
    Dahua,
}

struct Track {
    camera: String,
    style: Style,
    key: String,
    zone: u32,
    event_type: &'static str,
    next: i64,
    ends: i64,
    every: i64,
    sent: u32,
}

/// `n` detections from `cameras` cameras in time order (epoch milliseconds from `t0`), with the
/// demo registry's camera ids so the router can place them.
fn stream(cameras: &[String], n: usize, t0: DateTime<Utc>, seed: u64) -> Vec<CameraEvent> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let types = [
        "illegal_parking",
        "wrong_way",
        "flooding",
        "crowd",
        "obstruction",
        "accident",
    ];
    let mut tracks: Vec<Track> = Vec::new();
    let mut out = Vec::with_capacity(n);
    let mut now = 0i64;
    let mut started = 0u64;
    while out.len() < n {
        // Keep about one track per camera going.
        while tracks.len() < cameras.len() {
            started += 1;
            // Log-uniform from 5 s to 2 h.
            let lasts = (5.0f64 * (1440.0f64).powf(rng.random::<f64>())) as i64 * 1000;
            tracks.push(Track {
                camera: cameras[rng.random_range(0..cameras.len())].clone(),
                style: match rng.random_range(0..100) {
                    0..30 => Style::Frigate,
                    30..60 => Style::DeepStream,
                    60..85 => Style::Hikvision,
                    _ => Style::Dahua,
                },
                key: format!("t{started}"),
                zone: rng.random_range(0..4),
                event_type: types[rng.random_range(0..types.len())],
                next: now + rng.random_range(0..5000),
                ends: now + lasts,
                every: rng.random_range(1000..5000),
                sent: 0,
            });
        }
        tracks.sort_by_key(|t| t.next);
        let t = &mut tracks[0];
        now = t.next;
        let last = now >= t.ends;
        let (signal, key, zone) = match t.style {
            Style::Frigate => (
                if t.sent == 0 {
                    Signal::Start
                } else if last {
                    Signal::End
                } else {
                    Signal::Update
                },
                Some(t.key.clone()),
                None,
            ),
            Style::DeepStream => (Signal::Update, Some(t.key.clone()), None),
            Style::Hikvision => (Signal::Update, None, Some(t.zone.to_string())),
            Style::Dahua => (
                if last { Signal::End } else { Signal::Start },
                None,
                Some(format!("rule-{}", t.zone)),
            ),
        };
        let at = t0 + chrono::Duration::milliseconds(now);
        out.push(CameraEvent {
            schema: Some(ioc_schema::CAMERA_EVENT_SCHEMA.into()),
            event_id: Some(format!("{}-{}", t.key, t.sent)),
            camera_id: t.camera.clone(),
            event_type: t.event_type.into(),
            confidence: (rng.random_range(0.35..0.99f64) * 100.0).round() / 100.0,
            detected_at: at,
            snapshot_url: None,
            plate: None,
            signal: Some(signal),
            source_key: key,
            zone,
            rule: None,
            lane: None,
            channel: None,
            vendor: None,
        });
        t.sent += 1;
        t.next = now + t.every;
        if last {
            tracks.swap_remove(0);
        }
    }
    out
}

/// Counts of one pass of the grouping.
#[derive(Debug, Default, PartialEq)]
struct Pass {
    grouped: usize,
    incidents: usize,
    dropped: usize,
}

fn group(settings: &Settings, events: &[CameraEvent], partitions: i32) -> (Pass, Situations) {
    let mut s = Situations::default();
    let mut pass = Pass::default();
    let mut offsets = vec![0i64; partitions as usize];
    for e in events {
        let p = (e.camera_id.len() + e.camera_id.bytes().map(usize::from).sum::<usize>()) as i32
            % partitions;
        let rule = settings.config.router.situations.for_type(&e.event_type);
        let o = offsets[p as usize];
        offsets[p as usize] += 1;
        match s.apply(rule, e, p, o, e.detected_at) {
            Decision::Grouped { write_incident, .. } => {
                pass.grouped += 1;
                pass.incidents += usize::from(write_incident);
            }
            Decision::Dropped(_) => pass.dropped += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    (pass, s)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let (args, bench) = parse_args()?;
    // The stages' warnings (a broker that does not answer, a refused topic) on stderr.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let settings = Settings::defaults();
    let mut cameras: Vec<String> = settings.cameras.keys().cloned().collect();
    cameras.sort();
    // More cameras than the demo city has: the registry's ids, reused across "cameras".
    let ids: Vec<String> = (0..args.cameras)
        .map(|i| cameras[i % cameras.len()].clone())
        .collect();
    let t0 = Utc::now() - chrono::Duration::days(1);
    let events = stream(&ids, args.events, t0, 0x5171);
    let started = Instant::now();
    let (pass, situations) = group(&settings, &events, args.partitions);
    let took = started.elapsed();
    assert_eq!(pass.grouped + pass.dropped, events.len());
    assert!(
        pass.incidents > 0 && pass.incidents < pass.grouped / 5,
        "{pass:?}"
    );
    // The same stream again decides the same.
    assert_eq!(group(&settings, &events, args.partitions).0, pass);
    println!(
        "grouping: {} detections from {} cameras in {:.3} s = {:.0} detections/s; {} situations became incidents ({:.1} detections each), {} below the confidence floor or ends without a situation; {} situations held",
        events.len(),
        args.cameras,
        took.as_secs_f64(),
        events.len() as f64 / took.as_secs_f64(),
        pass.incidents,
        pass.grouped as f64 / pass.incidents as f64,
        pass.dropped,
        situations.len()
    );
    drop(situations);
    if !bench {
        return Ok(());
    }

    // Memory one open situation holds: 200,000 of them, none ending.
    let before = memory_mib("VmRSS").unwrap_or(0.0);
    let mut held = Situations::default();
    let rule = settings
        .config
        .router
        .situations
        .for_type("illegal_parking");
    for n in 0..200_000i64 {
        let mut e = events[0].clone();
        e.source_key = Some(format!("ds-0001/{n}"));
        e.event_id = Some(format!("m{n}"));
        e.signal = Some(Signal::Update);
        held.apply(rule, &e, 0, n, e.detected_at);
    }
    let after = memory_mib("VmRSS").unwrap_or(0.0);
    println!(
        "memory: {} open situations hold {:.1} MiB, {:.0} bytes each",
        held.len(),
        after - before,
        (after - before) * 1024.0 * 1024.0 / held.len() as f64
    );
    drop(held);

    if args.broker_events == 0 {
        return Ok(());
    }
    broker_pass(&args, &events[..args.broker_events.min(events.len())]).await
}

/// The router and a bare consume→produce loop over the same records on the same broker.
async fn broker_pass(args: &Args, events: &[CameraEvent]) -> anyhow::Result<()> {
    let unique = format!("sit-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let env = [
        ("IOC_TOPICS__REPORTS", format!("{unique}.reports")),
        ("IOC_TOPICS__CAMERA_EVENTS", format!("{unique}.camera")),
        ("IOC_TOPICS__INCIDENTS", format!("{unique}.incidents")),
        ("IOC_TOPICS__DEAD_LETTER", format!("{unique}.dlq")),
        ("IOC_TOPICS__ASSIGNMENTS", format!("{unique}.assignments")),
        ("IOC_TOPICS__PARTITIONS", args.partitions.to_string()),
        ("IOC_ROUTER__GROUP_ID", format!("{unique}-router")),
        ("IOC_ROUTER__LISTEN", "127.0.0.1:0".into()),
        // The stream is a day old: within the 30 days accepted.
    ];
    let mut settings = Settings::load(None, env.map(|(k, v)| (k.to_string(), v)))?;
    if let Some(n) = args.max_in_flight {
        settings.config.router.max_in_flight = n;
    }
    let bare_out = format!("{unique}.bare");
    let _embedded = match &args.brokers {
        Some(b) => {
            settings.config.kafka.brokers = b.clone();
            ensure_topics(&settings.config).await?;
            let admin: rdkafka::admin::AdminClient<_> = client_config(&settings.config).create()?;
            admin
                .create_topics(
                    &[rdkafka::admin::NewTopic::new(
                        &bare_out,
                        args.partitions,
                        rdkafka::admin::TopicReplication::Fixed(1),
                    )],
                    &rdkafka::admin::AdminOptions::new(),
                )
                .await?;
            None
        }
        None => {
            let mut topics: Vec<&str> = settings.config.topics.all().to_vec();
            topics.push(&bare_out);
            let broker = EmbeddedBroker::start(&topics, args.partitions)?;
            settings.config.kafka.brokers = broker.bootstrap_servers().to_string();
            Some(broker)
        }
    };
    let settings = Arc::new(settings);
    let producer: FutureProducer = producer_config(&settings.config).create()?;
    let topic = settings.config.topics.camera_events.clone();
    let fill = Instant::now();
    let mut sends = FuturesUnordered::new();
    for e in events {
        let bytes = serde_json::to_vec(e)?;
        let p = producer.clone();
        let (topic, key) = (topic.clone(), e.camera_id.clone());
        sends.push(async move {
            p.send(
                FutureRecord::to(&topic).key(&key).payload(&bytes),
                Duration::from_secs(30),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
        });
        if sends.len() >= 5000 {
            sends.next().await.transpose()?;
        }
    }
    while let Some(r) = sends.next().await {
        r?;
    }
    println!(
        "broker {}: {} camera events in the topic ({:.1} s)",
        args.brokers.as_deref().unwrap_or("embedded"),
        events.len(),
        fill.elapsed().as_secs_f64()
    );

    // What the router should write, worked out before it starts: not on the cores it is
    // measured on.
    let expected = group(&Settings::defaults(), events, args.partitions)
        .0
        .grouped;

    // The router: from its first consumed record until its last situation record is on Kafka.
    let metrics = Metrics::new();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let router = tokio::spawn(ioc_router::run(
        settings.clone(),
        metrics.clone(),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    let counter = metrics
        .events_in
        .with_label_values(&["router", "camera_event"]);
    let deadline = Instant::now() + Duration::from_secs(600);
    while counter.get() == 0 {
        anyhow::ensure!(Instant::now() < deadline, "the router consumed nothing");
        if router.is_finished() {
            router.await??;
            bail!("the router stopped before consuming anything");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = Instant::now();
    let situations_topic = settings.config.topics.situations.clone();
    let probe: StreamConsumer = client_config(&settings.config)
        .set("group.id", format!("{unique}-probe"))
        .create()?;
    let mut last_report = Instant::now();
    // Done when everything is consumed and the situation records stop growing: a few
    // decisions can differ from the single-threaded pass above where the broker ordered
    // overlapping tracks of one key differently, so the count is reported, not required.
    let (mut written, mut changed) = (0i64, Instant::now());
    let mut steady = Steady::default();
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the router did not drain within 10 minutes"
        );
        let mut now_written = 0i64;
        for p in 0..args.partitions {
            now_written += probe
                .fetch_watermarks(&situations_topic, p, Duration::from_secs(5))?
                .1;
        }
        if now_written != written {
            (written, changed) = (now_written, Instant::now());
        }
        let n = counter.get() as usize;
        steady.note(n, events.len());
        let consumed = n >= events.len();
        if consumed && (written as usize >= expected || changed.elapsed() >= Duration::from_secs(3))
        {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  router: {} of {} consumed, {} of {} situation records written",
                counter.get(),
                events.len(),
                written,
                expected
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let router_s = (changed - first).as_secs_f64();
    // Read back what the topic holds, record by record, beside what its watermarks say.
    let mut held = 0usize;
    {
        use rdkafka::consumer::BaseConsumer;
        let reader: BaseConsumer = client_config(&settings.config)
            .set("group.id", format!("{unique}-count"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..args.partitions {
            tpl.add_partition_offset(&situations_topic, p, rdkafka::Offset::Beginning)?;
        }
        reader.assign(&tpl)?;
        let mut quiet = Instant::now();
        while quiet.elapsed() < Duration::from_secs(3) {
            if let Some(Ok(_)) = reader.poll(Duration::from_millis(100)) {
                held += 1;
                quiet = Instant::now();
            }
        }
    }
    println!("router: the situations topic holds {held} records when read from the start");
    let left_out: Vec<String> = [
        "below_min_confidence",
        "end_without_situation",
        "repeated_event",
        "already_applied",
    ]
    .iter()
    .map(|r| {
        format!(
            "{r} {}",
            metrics.rejected.with_label_values(&["router", r]).get()
        )
    })
    .collect();
    println!(
        "router: {written} situation records written for {expected} grouped detections (a key's detections that come while its last record waits for the broker share one record); left out: {}",
        left_out.join(", ")
    );
    let incidents = metrics
        .events_out
        .with_label_values(&["router", "situation"])
        .get();
    let _ = stop_tx.send(true);
    router.await??;

    // The bare loop: consume every record, produce it again, wait for every acknowledgement.
    let consumer: StreamConsumer = client_config(&settings.config)
        .set("group.id", format!("{unique}-bare"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let mut inflight = FuturesUnordered::new();
    let mut consumed = 0usize;
    let mut acked = 0usize;
    let mut bare_first = None;
    let mut bare_steady = Steady::default();
    while acked < events.len() {
        anyhow::ensure!(
            Instant::now() < deadline + Duration::from_secs(600),
            "the bare loop stalled"
        );
        tokio::select! {
            Some(r) = inflight.next(), if !inflight.is_empty() => {
                let r: Result<(), rdkafka::error::KafkaError> = r;
                r?;
                acked += 1;
                bare_steady.note(acked, events.len());
            }
            m = consumer.recv(), if consumed < events.len() && inflight.len() < 2000 => {
                let m = m?;
                bare_first.get_or_insert_with(Instant::now);
                consumed += 1;
                let (key, value) = (m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec());
                let p = producer.clone();
                let out = bare_out.clone();
                inflight.push(async move {
                    p.send(FutureRecord::to(&out).key(&key).payload(&value), Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e)
                });
            }
        }
    }
    let bare_s = bare_first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!(
        "router: {} camera events drained in {:.2} s = {:.0}/s ({} situations became incidents); bare consume→produce: {:.2} s = {:.0}/s; the router at {:.0} % of the bare loop",
        events.len(),
        router_s,
        events.len() as f64 / router_s,
        incidents,
        bare_s,
        events.len() as f64 / bare_s,
        100.0 * bare_s / router_s
    );
    let (router_rate, bare_rate) = (steady.rate(events.len()), bare_steady.rate(events.len()));
    println!(
        "steady (from 10 % to 90 % of the records): the router {router_rate:.0}/s, the bare loop {bare_rate:.0}/s: the router at {:.0} % of the bare loop",
        100.0 * router_rate / bare_rate
    );
    Ok(())
}

/// When a count passed 10 % and 90 % of its total: the rate between, without the start-up
/// (group join, reading situations back) and the last writes.
#[derive(Default)]
struct Steady {
    tenth: Option<Instant>,
    ninetieth: Option<Instant>,
}

impl Steady {
    fn note(&mut self, n: usize, total: usize) {
        if n * 10 >= total {
            self.tenth.get_or_insert_with(Instant::now);
        }
        if n * 10 >= total * 9 {
            self.ninetieth.get_or_insert_with(Instant::now);
        }
    }

    fn rate(&self, total: usize) -> f64 {
        match (self.tenth, self.ninetieth) {
            (Some(a), Some(b)) if b > a => 0.8 * total as f64 / (b - a).as_secs_f64(),
            _ => f64::NAN,
        }
    }
}
