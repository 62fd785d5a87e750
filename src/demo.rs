//! `ioc demo`: every stage in one process on librdkafka's in-process mock cluster, the bundled
//! demo city, and a simulator of citizens and cameras that goes through the real HTTP and Kafka
//! paths.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use ioc_config::kafka::{producer_config, EmbeddedBroker};
use ioc_config::load::{token_digest, Settings};
use ioc_config::supervise::{CancellationToken, Supervisor};
use ioc_config::{Role, TokenConfig};
use ioc_schema::metrics::Metrics;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Simulated events per second (citizens' reports and camera events together).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Share of simulated events that come from cameras (0 to 1).
    #[arg(long, default_value_t = 0.4)]
    camera_share: f64,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    duration: Option<u64>,
    /// Configuration file; its Kafka brokers are ignored (the demo always uses the embedded one).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Address for the ingest API (default from config, 127.0.0.1:8080).
    #[arg(long)]
    ingest_listen: Option<String>,
    /// Address for the dashboard API and map (default from config, 127.0.0.1:8081).
    #[arg(long)]
    dashboard_listen: Option<String>,
    /// Address for the router's metrics (default from config, 127.0.0.1:8082).
    #[arg(long)]
    router_listen: Option<String>,
    /// Run service-level clocks this many times faster than configured, so missed targets and
    /// escalations show within minutes (1 keeps the configured targets).
    #[arg(long, default_value_t = 60.0)]
    sla_speedup: f64,
}

/// Divides every service-level target by `speedup`.
fn speed_up_targets(cfg: &mut ioc_config::Config, speedup: f64) {
    let scale = |d: &mut ioc_config::Dur| d.0 = d.0.div_f64(speedup);
    for c in &mut cfg.categories {
        scale(&mut c.resolve_within);
        if let Some(a) = c.acknowledge_within.as_mut() {
            scale(a);
        }
        for t in c.priorities.values_mut() {
            scale(&mut t.resolve_within);
            if let Some(a) = t.acknowledge_within.as_mut() {
                scale(a);
            }
        }
    }
    scale(&mut cfg.dashboard.close_after);
    cfg.dashboard.sla_check_interval.0 = cfg
        .dashboard
        .sla_check_interval
        .0
        .min(Duration::from_secs(2));
}

/// A fresh random token.
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

async fn bind(addr: &str, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what}; is another demo running? Pass {flag} 127.0.0.1:0 to pick a free port")
    })
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref(), std::env::vars())?;
    let cfg = &mut settings.config;
    if let Some(a) = &args.ingest_listen {
        cfg.ingest.listen = a.clone();
    }
    if let Some(a) = &args.dashboard_listen {
        cfg.dashboard.listen = a.clone();
    }
    if let Some(a) = &args.router_listen {
        cfg.router.listen = a.clone();
    }
    let broker = EmbeddedBroker::start(&cfg.topics.all(), cfg.topics.partitions)
        .context("starting the embedded broker")?;
    cfg.kafka.brokers = broker.bootstrap_servers().to_string();

    let operator_token = new_token();
    cfg.dashboard.tokens.push(TokenConfig {
        name: "demo operator".into(),
        sha256: token_digest(&operator_token),
        role: Role::Operator,
        ward: None,
    });
    // One unit token per ward, so the simulated units act under their own ward's rights.
    let unit_tokens: HashMap<String, String> = ioc_router::wards::demo::wards()
        .into_iter()
        .map(|w| (w.id, new_token()))
        .collect();
    for (ward, token) in &unit_tokens {
        cfg.dashboard.tokens.push(TokenConfig {
            name: format!("demo ward unit {ward}"),
            sha256: token_digest(token),
            role: Role::Ward,
            ward: Some(ward.clone()),
        });
    }
    let open311_key = new_token();
    cfg.open311.keys.push(ioc_config::ApiKeyConfig {
        name: "demo 311 client".into(),
        sha256: token_digest(&open311_key),
    });
    let camera_key = new_token();
    cfg.ingest.camera_keys.push(ioc_config::CameraKeyConfig {
        name: "demo camera system".into(),
        sha256: token_digest(&camera_key),
        cameras: Vec::new(),
    });
    if args.sla_speedup.is_finite() && args.sla_speedup > 1.0 {
        speed_up_targets(cfg, args.sla_speedup);
    }
    let first_ward = ioc_router::wards::demo::wards()[0].id.clone();
    let ward_token = unit_tokens[&first_ward].clone();

    let ingest_l = bind(&cfg.ingest.listen, "ingest API", "--ingest-listen").await?;
    let dash_l = bind(&cfg.dashboard.listen, "dashboard API", "--dashboard-listen").await?;
    let ingest_addr = ingest_l.local_addr()?;
    let dash_addr = dash_l.local_addr()?;
    let router_l = bind(&cfg.router.listen, "router endpoints", "--router-listen").await?;
    let router_addr = router_l.local_addr()?;

    let settings = Arc::new(settings);
    let metrics = Metrics::new();
    // Stages and simulators under one supervisor: Ctrl-C (or --duration) stops them all, and
    // if any stage fails the demo stops with its error instead of running on without it.
    let mut tasks = Supervisor::new();
    let token = tasks.token();
    tasks.spawn(
        "ingest",
        ioc_ingest::serve(
            ingest_l,
            settings.clone(),
            metrics.clone(),
            token.clone().cancelled_owned(),
        ),
    );
    tasks.spawn(
        "router",
        ioc_router::serve(
            router_l,
            settings.clone(),
            metrics.clone(),
            token.clone().cancelled_owned(),
        ),
    );
    tasks.spawn(
        "dashboard",
        ioc_dashboard::serve(
            dash_l,
            settings.clone(),
            metrics.clone(),
            token.clone().cancelled_owned(),
        ),
    );

    println!("ioc demo: the whole pipeline in one process on an embedded Kafka broker");
    println!("  ingest API     http://{ingest_addr}   POST /v1/reports, POST /v1/camera-events");
    println!(
        "  dashboard API  http://{dash_addr}   GET /v1/incidents, /v1/stats, /v1/wards, /v1/stream"
    );
    println!("  live map       http://{dash_addr}/#token={operator_token}");
    println!("  router         http://{router_addr}/metrics");
    println!("  operator token {operator_token}");
    println!("  ward token     {ward_token}   (the unit of ward {first_ward}; every ward's unit is simulated)");
    println!("  Open311 key    {open311_key}   (GeoReport v2 at http://{dash_addr}/open311/v2/services.json)");
    println!("  camera key     {camera_key}   (camera systems: 'Authorization: Bearer <key>' on POST /v1/camera-events)");
    println!("  try: curl -H 'Authorization: Bearer {operator_token}' http://{dash_addr}/v1/stats");
    println!(
        "       curl -H 'Authorization: Bearer {operator_token}' http://{dash_addr}/v1/figures"
    );
    println!(
        "       curl -H 'Authorization: Bearer {ward_token}' http://{dash_addr}/v1/assignments"
    );
    if args.sla_speedup > 1.0 {
        println!(
            "  service levels run {}x faster than configured (--sla-speedup), so escalations show soon",
            args.sla_speedup
        );
    }
    println!(
        "  note: the embedded broker keeps only about 5 MB per partition and nothing survives exit"
    );
    println!("  simulating {:.0} events/s; Ctrl-C to stop", args.rate);

    tasks.spawn(
        "citizen and camera simulator",
        simulate(
            settings.clone(),
            format!("http://{ingest_addr}"),
            (format!("http://{dash_addr}/open311/v2"), open311_key),
            camera_key,
            args.rate,
            args.camera_share.clamp(0.0, 1.0),
            token.clone(),
        ),
    );
    tasks.spawn(
        "staff simulator",
        play_staff(
            format!("http://{dash_addr}"),
            operator_token.clone(),
            unit_tokens,
            token.clone(),
        ),
    );
    tasks.spawn("status line", status_line(metrics.clone(), token));

    let duration = args.duration;
    let stop = async move {
        match duration {
            Some(secs) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                    _ = crate::shutdown_signal() => {}
                }
            }
            None => crate::shutdown_signal().await,
        }
    };
    let result = tasks.run("demo", stop, Duration::from_secs(30)).await;
    drop(broker);
    println!(
        "\nstopped: {} accepted, {} routed, {} dead-lettered",
        accepted(&metrics),
        metrics.total("ioc_incidents_routed_total") as u64,
        metrics.total("ioc_dead_lettered_total") as u64
    );
    result
}

/// Events accepted (acknowledged by Kafka) by the ingest API and the Open311 endpoint.
fn accepted(metrics: &Metrics) -> u64 {
    [
        ("ingest", "report"),
        ("ingest", "camera_event"),
        ("open311", "report"),
    ]
    .into_iter()
    .map(|(stage, kind)| metrics.events_out.with_label_values(&[stage, kind]).get())
    .sum()
}

async fn status_line(metrics: Metrics, stop: CancellationToken) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(if tty { 1 } else { 10 }));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let accepted = accepted(&metrics);
        let rate = (accepted - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
        last = (Instant::now(), accepted);
        let routed = metrics.total("ioc_incidents_routed_total") as u64;
        let unassigned = metrics.assigned.with_label_values(&["unassigned"]).get();
        let line = format!(
            "[{:>4}s] {:>6.1} events/s | accepted {} | assigned {} | unassigned {} | dead-lettered {} | on dashboard {} ({} resolved, {} closed) | escalated {}",
            started.elapsed().as_secs(),
            rate,
            accepted,
            routed - unassigned,
            unassigned,
            metrics.total("ioc_dead_lettered_total") as u64,
            metrics.total("ioc_dashboard_incidents") as u64,
            metrics.dashboard_incidents.with_label_values(&["resolved"]).get(),
            metrics.dashboard_incidents.with_label_values(&["closed"]).get(),
            metrics.total("ioc_escalations_total") as u64,
        );
        if tty {
            print!("\r{line}   ");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
    }
    Ok(())
}

const REPORT_TEXTS: &[(&str, &str)] = &[
    (
        "traffic_order",
        "Xe máy đỗ tràn lan trên vỉa hè, người đi bộ phải xuống lòng đường",
    ),
    (
        "traffic_order",
        "Đèn tín hiệu giao thông tại ngã tư bị hỏng",
    ),
    (
        "urban_order",
        "Công trình xây dựng để vật liệu lấn chiếm lòng đường",
    ),
    ("urban_order", "Biển quảng cáo sai phép treo trên cột điện"),
    ("environment", "Rác thải tập kết sai nơi quy định, bốc mùi"),
    (
        "environment",
        "Cống thoát nước bị tắc, nước tràn ra đường sau mưa",
    ),
    ("public_safety", "Dây điện bị đứt treo thấp nguy hiểm"),
    (
        "culture_tourism",
        "Hàng rong chèo kéo khách du lịch tại khu di tích",
    ),
];

const CAMERA_TYPES: &[&str] = &[
    "red_light_violation",
    "pedestrian_crossing_violation",
    "illegal_parking",
    "wrong_way",
    "accident",
    "flooding",
    "fire_or_smoke",
    "crowd",
    "obstruction",
];

/// Plays citizens and cameras: reports and camera events over the ingest API, and now and then a
/// broken record published straight to the camera topic, as a faulty camera system would.
async fn simulate(
    settings: Arc<Settings>,
    base: String,
    (open311, open311_key): (String, String),
    camera_key: String,
    rate: f64,
    camera_share: f64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let producer: Option<FutureProducer> = producer_config(&settings.config).create().ok();
    let cameras: Vec<_> = settings.cameras.values().cloned().collect();
    let mut rng = SmallRng::seed_from_u64(0x10c);
    let tick = Duration::from_millis(100);
    let mut interval = tokio::time::interval(tick);
    let mut budget = 0.0;
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        budget += rate * tick.as_secs_f64();
        while budget >= 1.0 {
            budget -= 1.0;
            sent += 1;
            let now = Utc::now();
            let cam = &cameras[rng.random_range(0..cameras.len())];
            if rng.random_bool(0.005) {
                if let Some(p) = &producer {
                    let p = p.clone();
                    let topic = settings.config.topics.camera_events.clone();
                    tokio::spawn(async move {
                        let _ = p
                            .send(
                                FutureRecord::to(&topic)
                                    .key("broken-camera")
                                    .payload("{\"camera\": tru"),
                                Duration::from_secs(5),
                            )
                            .await;
                    });
                }
                continue;
            }
            let (path, body) = if rng.random_bool(camera_share) {
                let event_type = CAMERA_TYPES[rng.random_range(0..CAMERA_TYPES.len())];
                (
                    "/v1/camera-events",
                    serde_json::json!([{
                        "camera_id": cam.id,
                        "event_type": event_type,
                        "confidence": (rng.random_range(0.6..1.0f64) * 100.0).round() / 100.0,
                        "detected_at": now,
                        "snapshot_url": format!("https://cctv.example.vn/snapshots/{}/{}.jpg", cam.id, now.timestamp_millis()),
                        "plate": if event_type.contains("violation") { Some(format!("90A-{:05}", rng.random_range(0..100000))) } else { None },
                    }]),
                )
            } else {
                let (category, text) = REPORT_TEXTS[rng.random_range(0..REPORT_TEXTS.len())];
                // Around a camera (where people are), a few far outside the city.
                let (dlat, dlon) = if rng.random_bool(0.03) {
                    (0.08, 0.08)
                } else {
                    (
                        rng.random_range(-0.003..0.003),
                        rng.random_range(-0.003..0.003),
                    )
                };
                let key = if rng.random_bool(0.02) {
                    Some(format!("retry-{}", sent / 50))
                } else {
                    None
                };
                (
                    "/v1/reports",
                    serde_json::json!({
                        "idempotency_key": key,
                        "channel": if rng.random_bool(0.7) { "app" } else { "web_portal" },
                        "category": category,
                        "text": text,
                        "location": { "lat": cam.lat + dlat, "lon": cam.lon + dlon, "accuracy_m": rng.random_range(3.0..30.0f64).round() },
                        "photo_urls": [format!("https://app.example.vn/photos/{sent}.jpg")],
                        "reporter": { "phone": format!("09{:08}", rng.random_range(0..100_000_000u32)) },
                        "submitted_at": now,
                    }),
                )
            };
            let client = client.clone();
            // Some citizens use a 311 app, which files through Open311 instead.
            let request = if path == "/v1/reports" && rng.random_bool(0.15) {
                let form = [
                    ("api_key", open311_key.clone()),
                    (
                        "service_code",
                        body["category"].as_str().unwrap_or_default().to_string(),
                    ),
                    ("lat", body["location"]["lat"].to_string()),
                    ("long", body["location"]["lon"].to_string()),
                    (
                        "description",
                        body["text"].as_str().unwrap_or_default().to_string(),
                    ),
                    (
                        "phone",
                        body["reporter"]["phone"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ),
                ];
                client.post(format!("{open311}/requests.json")).form(&form)
            } else if path == "/v1/camera-events" {
                client
                    .post(format!("{base}{path}"))
                    .bearer_auth(&camera_key)
                    .json(&body)
            } else {
                client.post(format!("{base}{path}")).json(&body)
            };
            tokio::spawn(async move {
                if let Err(e) = request.send().await {
                    tracing::debug!("simulator request failed: {e}");
                }
            });
        }
    }
}

/// Another incident of the same ward and category in `items`, if any.
fn items_same_ward(incident: &serde_json::Value, items: &[serde_json::Value]) -> Option<String> {
    items
        .iter()
        .find(|o| {
            o["id"] != incident["id"]
                && o["ward"]["id"] == incident["ward"]["id"]
                && o["category"] == incident["category"]
        })
        .and_then(|o| o["id"].as_str().map(str::to_string))
}

/// Plays the people after the router: ward units acknowledge, work on and resolve their
/// incidents (now and then rejecting one as outside their ward), operators re-route rejected and
/// unassigned ones, and citizens confirm most resolutions and dispute a few. Everything goes
/// through the dashboard API, so the lifecycle moves live on the map.
async fn play_staff(
    base: String,
    operator: String,
    units: HashMap<String, String>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let ward_ids: Vec<String> = units.keys().cloned().collect();
    let mut rng = SmallRng::seed_from_u64(0x57a ^ 0xff);
    let mut tick = tokio::time::interval(Duration::from_millis(700));
    let list = |status: &'static str| {
        let client = client.clone();
        let url = format!("{base}/v1/incidents?status={status}&limit=25");
        let token = operator.clone();
        async move {
            let page: serde_json::Value = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some(page["items"].as_array()?.clone())
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        for (status, share) in [
            ("new", 0.6),
            ("verified", 0.6),
            ("assigned", 0.5),
            ("acknowledged", 0.4),
            ("in_progress", 0.3),
            ("unassigned", 0.5),
            ("resolved", 0.3),
            ("reopened", 0.5),
        ] {
            let Some(items) = list(status).await else {
                continue;
            };
            let seen = items.clone();
            for incident in items {
                if !rng.random_bool(share) {
                    continue;
                }
                let id = incident["id"].as_str().unwrap_or_default().to_string();
                let unit = incident["ward"]["id"]
                    .as_str()
                    .and_then(|w| units.get(w))
                    .cloned();
                let (path, token, body) = match (status, unit) {
                    // Now and then an operator spots two reports of one problem in a ward.
                    ("assigned", Some(_)) if rng.random_bool(0.02) => {
                        let Some(original) = items_same_ward(&incident, &seen) else {
                            continue;
                        };
                        (
                            "actions",
                            Some(operator.clone()),
                            serde_json::json!({"action": "mark_duplicate", "of": original}),
                        )
                    }
                    ("assigned", Some(t)) if rng.random_bool(0.05) => (
                        "actions",
                        Some(t),
                        serde_json::json!({"action": "reject", "reason": "Ngoài địa bàn phường (outside our ward)"}),
                    ),
                    ("assigned" | "reopened", Some(t)) => (
                        "actions",
                        Some(t),
                        serde_json::json!({"action": "acknowledge"}),
                    ),
                    ("acknowledged", Some(t)) => {
                        ("actions", Some(t), serde_json::json!({"action": "start"}))
                    }
                    ("in_progress", Some(t)) => (
                        "actions",
                        Some(t),
                        serde_json::json!({"action": "resolve", "result": "Đã xử lý xong (handled)"}),
                    ),
                    // With router.require_verification, operators check reports first.
                    ("new", _) => (
                        "actions",
                        Some(operator.clone()),
                        serde_json::json!({"action": "verify"}),
                    ),
                    ("verified", _) if incident["ward"]["id"].is_string() => (
                        "actions",
                        Some(operator.clone()),
                        serde_json::json!({"action": "assign", "ward_id": incident["ward"]["id"]}),
                    ),
                    ("verified" | "unassigned", _) => {
                        let ward = &ward_ids[rng.random_range(0..ward_ids.len())];
                        (
                            "actions",
                            Some(operator.clone()),
                            serde_json::json!({"action": "assign", "ward_id": ward}),
                        )
                    }
                    ("resolved", _) if rng.random_bool(0.05) => (
                        "dispute",
                        None,
                        serde_json::json!({"reason": "Vẫn chưa xử lý (still not fixed)"}),
                    ),
                    ("resolved", _) => ("confirm", None, serde_json::json!({})),
                    _ => continue,
                };
                let request = match (path, token) {
                    ("actions", Some(t)) => client
                        .post(format!("{base}/v1/incidents/{id}/actions"))
                        .bearer_auth(t),
                    (p, _) => client.post(format!("{base}/v1/reports/{id}/{p}")),
                };
                if let Err(e) = request.json(&body).send().await {
                    tracing::debug!("staff simulator request failed: {e}");
                }
            }
        }
    }
}
