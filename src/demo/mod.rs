//! `ioc demo`: every stage in one process on librdkafka's in-process mock cluster, the bundled
//! demo city, and a simulator of citizens and cameras that goes through the real HTTP and Kafka
//! paths. The simulators live in [`citizens`] (reports and camera events) and [`staff`] (ward
//! units and operators working the incidents).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ioc_config::kafka::EmbeddedBroker;
use ioc_config::load::{token_digest, Settings};
use ioc_config::supervise::{CancellationToken, Supervisor};
use ioc_config::{Role, TokenConfig};
use ioc_schema::metrics::Metrics;
use tokio::net::TcpListener;

mod cameras;
mod citizens;
mod staff;

use citizens::simulate;
use staff::play_staff;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Simulated events per second (citizens' reports and camera events together).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Share of simulated events that come from cameras (0 to 1).
    #[arg(long, default_value_t = 0.4)]
    camera_share: f64,
    /// Camera tracks started a minute on devices that speak their vendors' formats (parked
    /// cars for minutes, wrong-way drivers for seconds, floods for an hour, each reported
    /// every few seconds, and single Hikvision ANPR reads); the router makes one incident of
    /// each track and one enforcement record of each read (0: none).
    #[arg(long, default_value_t = 6.0)]
    camera_tracks: f64,
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
    /// Leave the operators' and ward units' work to people (the console and the ward page)
    /// instead of simulating it.
    #[arg(long)]
    no_staff: bool,
    /// Run service-level clocks this many times faster than configured, so missed targets and
    /// escalations show within minutes (1 keeps the configured targets).
    #[arg(long, default_value_t = 60.0)]
    sla_speedup: f64,
    /// Seconds after the start at which the demo city's reform takes effect: its wards merge
    /// into fewer units and open incidents are handed over live (0: no reform). Only with the
    /// bundled demo city.
    #[arg(long, default_value_t = 300)]
    reform_after: u64,
}

/// When the configuration routes with the bundled demo city alone, adds its reformed map from
/// `at` on (the old map ends there). Returns whether it did.
fn schedule_demo_reform(cfg: &mut ioc_config::Config, at: chrono::DateTime<chrono::Utc>) -> bool {
    let [only] = cfg.boundaries.as_mut_slice() else {
        return false;
    };
    if only.file != "embedded:demo/wards.geojson" || only.valid_to.is_some() {
        return false;
    }
    only.valid_to = Some(at);
    let reformed = ioc_config::BoundarySetConfig {
        version: "demo-reform".into(),
        file: "embedded:demo/wards-reformed.geojson".into(),
        id_property: only.id_property.clone(),
        name_property: only.name_property.clone(),
        valid_from: at,
        valid_to: None,
        predecessors: None,
    };
    cfg.boundaries.push(reformed);
    true
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
    let reform_at = (args.reform_after > 0)
        .then(|| chrono::Utc::now() + chrono::Duration::seconds(args.reform_after as i64))
        .filter(|&at| schedule_demo_reform(cfg, at));
    let broker = EmbeddedBroker::start(&cfg.topics.all(), cfg.topics.partitions)
        .context("starting the embedded broker")?;
    cfg.kafka.brokers = broker.bootstrap_servers().to_string();

    let operator_token = new_token();
    cfg.dashboard.tokens.push(TokenConfig {
        name: "demo operator".into(),
        sha256: token_digest(&operator_token),
        role: Role::Operator,
        ward: None,
        plates: false,
    });
    // The traffic police: an operator's view that may also read plates on enforcement records.
    let police_token = new_token();
    cfg.dashboard.tokens.push(TokenConfig {
        name: "demo traffic police".into(),
        sha256: token_digest(&police_token),
        role: Role::Operator,
        ward: None,
        plates: true,
    });
    // One unit token per ward of the boundary set in force and of any set taking effect later,
    // so the simulated units act under their own ward's rights (in the demo city or a city's
    // own files given with --config), before and after a reform.
    let (wards, later_units): (Vec<(String, String)>, Vec<String>) = {
        let sets = ioc_router::wards::BoundarySets::load(&settings, None)
            .context("loading the boundary sets")?;
        let set = sets.current().context(
            "no boundary set is in force now; check valid_from/valid_to in [[boundaries]]",
        )?;
        let later = sets
            .sets
            .iter()
            .filter(|s| s.valid_from > set.valid_from)
            .flat_map(|s| s.index.wards().iter().map(|w| w.id.clone()))
            .collect();
        let wards = set
            .index
            .wards()
            .iter()
            .map(|w| (w.id.clone(), w.name.clone()))
            .collect();
        (wards, later)
    };
    let cfg = &mut settings.config;
    let unit_tokens: HashMap<String, String> = wards
        .iter()
        .map(|(id, _)| id.clone())
        .chain(later_units)
        .map(|id| (id, new_token()))
        .collect();
    for (ward, token) in &unit_tokens {
        cfg.dashboard.tokens.push(TokenConfig {
            name: format!("demo ward unit {ward}"),
            sha256: token_digest(token),
            role: Role::Ward,
            ward: Some(ward.clone()),
            plates: false,
        });
    }
    let open311_key = new_token();
    cfg.open311.keys.push(ioc_config::ApiKeyConfig {
        name: "demo 311 client".into(),
        sha256: token_digest(&open311_key),
    });
    // Every simulated citizen comes from this one machine: no per-client limit in the demo.
    cfg.limits.per_client_per_minute = 0;
    cfg.limits.per_key_per_minute = 0;
    let camera_key = new_token();
    cfg.ingest.camera_keys.push(ioc_config::CameraKeyConfig {
        name: "demo camera system".into(),
        sha256: token_digest(&camera_key),
        cameras: Vec::new(),
        digest: None,
    });
    // Neighbouring cameras' floods, fires and accidents become one incident (an operator's split
    // undoes it), unless the configuration says otherwise; citizens' reports are merged by hand.
    if cfg.dashboard.duplicates.auto_attach.cameras.is_empty()
        && cfg.dashboard.duplicates.auto_attach.reports.is_empty()
    {
        let cameras = ["environment", "public_safety"]
            .into_iter()
            .filter(|c| cfg.categories.iter().any(|k| k.id == *c))
            .map(String::from)
            .collect();
        cfg.dashboard.duplicates.auto_attach.cameras = cameras;
    }
    if args.sla_speedup.is_finite() && args.sla_speedup > 1.0 {
        speed_up_targets(cfg, args.sla_speedup);
    }
    let first_ward = wards
        .first()
        .context("the boundary set in force has no wards")?
        .0
        .clone();
    let ward_token = unit_tokens[&first_ward].clone();

    let ingest_l = bind(&cfg.ingest.listen, "ingest API", "--ingest-listen").await?;
    let dash_l = bind(&cfg.dashboard.listen, "dashboard API", "--dashboard-listen").await?;
    let ingest_addr = ingest_l.local_addr()?;
    let dash_addr = dash_l.local_addr()?;
    if cfg.dashboard.public_url.is_empty() {
        cfg.dashboard.public_url = format!("http://{dash_addr}");
    }
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
    println!("  console        http://{dash_addr}/console   (operators; sign in with the operator token)");
    println!(
        "  ward page      http://{dash_addr}/ward      (ward units; sign in with a ward token)"
    );
    println!("  router         http://{router_addr}/metrics");
    println!("  operator token {operator_token}");
    println!(
        "  ward token     {ward_token}   (the unit of ward {first_ward}{})",
        if args.no_staff {
            ""
        } else {
            "; every ward's unit is simulated"
        }
    );
    println!("  police token   {police_token}   (the traffic police: the console, and plates on enforcement records at /v1/violations)");
    println!("  Open311 key    {open311_key}   (GeoReport v2 at http://{dash_addr}/open311/v2/services.json)");
    println!("  camera key     {camera_key}   (camera systems: 'Authorization: Bearer <key>' on POST /v1/camera-events, or /v1/camera-events/{{deepstream,frigate,hikvision,dahua,onvif}} in their vendors' formats)");
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
    if let Some(at) = reform_at {
        println!(
            "  reform         at {} (in {} s; --reform-after): the demo city's {} wards merge into fewer units and open incidents are handed over",
            at.format("%H:%M:%S UTC"),
            args.reform_after,
            wards.len()
        );
    }
    println!(
        "  note: the embedded broker keeps only about 5 MB per partition and nothing survives exit"
    );
    println!("  simulating {:.0} events/s; Ctrl-C to stop", args.rate);

    let camera_key_for_vendors = camera_key.clone();
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
        "vendor camera simulator",
        cameras::simulate(
            settings.clone(),
            format!("http://{ingest_addr}"),
            camera_key_for_vendors,
            args.camera_tracks * if args.rate > 0.0 { 1.0 } else { 0.0 },
            token.clone(),
        ),
    );
    if !args.no_staff {
        tasks.spawn(
            "staff simulator",
            play_staff(
                format!("http://{dash_addr}"),
                operator_token.clone(),
                unit_tokens,
                token.clone(),
            ),
        );
    }
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

/// The simulators' HTTP client: a request that hangs is given up after 10 s.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
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
            "[{:>4}s] {:>6.1} events/s | accepted {} | camera messages {} → situations {}, enforcement records {} | assigned {} | unassigned {} | dead-lettered {} | on dashboard {} ({} resolved, {} closed) | escalated {} | handed over {}",
            started.elapsed().as_secs(),
            rate,
            accepted,
            metrics.events_in.with_label_values(&["ingest", "camera_event"]).get(),
            metrics.events_out.with_label_values(&["router", "situation"]).get(),
            metrics.events_out.with_label_values(&["router", "violation"]).get(),
            routed - unassigned,
            unassigned,
            metrics.total("ioc_dead_lettered_total") as u64,
            metrics.total("ioc_dashboard_incidents") as u64,
            metrics.dashboard_incidents.with_label_values(&["resolved"]).get(),
            metrics.dashboard_incidents.with_label_values(&["closed"]).get(),
            metrics.total("ioc_escalations_total") as u64,
            metrics.total("ioc_handovers_total") as u64,
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
