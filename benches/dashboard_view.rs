//! How far one dashboard instance goes: the in-memory view of every incident, and the work it
//! repeats on all of them. With 1,000,000 incidents (a large city's year) it prints once the
//! view's memory per incident and how long a start-up replay of their records takes (decoding
//! included, and applying alone), then measures one pass of the service-level monitor looking
//! for missed targets (it runs every `sla_check_interval`), the month's figures, and a filtered
//! page of `GET /v1/incidents`. Results are written down in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench dashboard_view`.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ioc_dashboard::figures::Figures;
use ioc_dashboard::view::{decode_batch, Filtered, Query, View};
use ioc_schema::fixtures::{self, transition as step};
use ioc_schema::sla;
use ioc_schema::{ActorRole, Incident, Location, Resolution, Status, Step, WardRef};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The `ioc` binary's allocator (see `src/main.rs`), so the figures are the dashboard's own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How many incidents: a million under `cargo bench`; a few thousand when `cargo test` runs the
/// bench once to check that it works.
fn incident_count() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        2_000
    }
}
const CATEGORIES: [&str; 5] = [
    "traffic_order",
    "urban_order",
    "environment",
    "public_safety",
    "culture_tourism",
];

/// Incidents spread over a year and 168 wards, a third still open, the rest resolved or
/// closed, with the history such a life leaves; the open ones past a deadline carry the
/// escalation the monitor recorded for it.
fn incidents(now: DateTime<Utc>, count: usize) -> impl Iterator<Item = Incident> {
    let mut rng = SmallRng::seed_from_u64(7);
    (0..count).map(move |n| {
        let occurred = now - Duration::minutes(rng.random_range(0..365 * 24 * 60));
        let ward = format!("W{:03}", rng.random_range(0..168));
        let mut history = vec![step(
            occurred,
            ActorRole::Router,
            Step::Route,
            Status::Assigned,
        )];
        let mut status = Status::Assigned;
        let mut resolution = None;
        if rng.random_bool(0.66) {
            let acked = occurred + Duration::minutes(rng.random_range(1..300));
            let resolved = acked + Duration::minutes(rng.random_range(10..4000));
            history.push(step(
                acked,
                ActorRole::WardUnit,
                Step::Acknowledge,
                Status::Acknowledged,
            ));
            history.push(step(
                resolved,
                ActorRole::WardUnit,
                Step::Resolve,
                Status::Resolved,
            ));
            status = if rng.random_bool(0.5) {
                history.push(step(
                    resolved,
                    ActorRole::Citizen,
                    Step::Close,
                    Status::Closed,
                ));
                Status::Closed
            } else {
                Status::Resolved
            };
            resolution = Some(Resolution {
                text: "Đã xử lý xong".into(),
                photo_urls: vec![],
                at: resolved,
            });
        }
        let id = format!("{n:08}-0000-4000-8000-000000000000");
        let mut i = fixtures::incident(&id, status, &ward, occurred);
        i.revision = history.len() as u64;
        i.category = CATEGORIES[n % CATEGORIES.len()].into();
        i.text = Some("Cống thoát nước bị tắc, nước tràn ra đường sau mưa".into());
        i.location = Location {
            lat: 10.7 + rng.random_range(0.0..0.2),
            lon: 106.6 + rng.random_range(0.0..0.2),
            accuracy_m: Some(10.0),
        };
        i.media_urls = vec!["https://app.example.vn/photos/1.jpg".into()];
        i.ward = Some(WardRef {
            name: format!("Phường {ward}"),
            id: ward,
        });
        i.assignment.boundary_version = Some("hcmc-2025".into());
        i.unit = Some("Environment and sanitation team".into());
        i.ack_due_at = Some(occurred + Duration::hours(2));
        i.sla_due_at = occurred + Duration::hours(48);
        i.updated_at = history.last().unwrap().at;
        i.resolution = resolution;
        i.history = history;
        i.escalations = sla::overdue(&i, now);
        i
    })
}

fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn bench(c: &mut Criterion) {
    let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let count = incident_count();
    // Kept for the whole run, as the decoding threads take records that live that long.
    let records: &'static [Vec<u8>] = incidents(now, count)
        .map(|i| serde_json::to_vec(&i).unwrap())
        .collect::<Vec<_>>()
        .leak();
    let json_bytes: usize = records.iter().map(Vec::len).sum();

    // A start-up replay as the consumer makes it: records taken a few thousand at a time,
    // decoded and packed on every core, then applied in order.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let before = rss_kib();
    let started = Instant::now();
    let mut view = View::default();
    view.defer_index();
    runtime.block_on(async {
        let mut records = records.iter().map(Vec::as_slice);
        loop {
            let batch: Vec<&'static [u8]> = records.by_ref().take(2048).collect();
            if batch.is_empty() {
                break;
            }
            for (_, record) in decode_batch(batch, |r| r).await {
                view.apply_decoded(record.unwrap());
            }
        }
    });
    view.build_index();
    let replay = started.elapsed();
    if let (Some(b), Some(a)) = (before, rss_kib()) {
        println!(
            "view of {count} incidents: {:.0} MiB resident ({:.0} bytes each; {:.0} bytes of JSON each on the topic)",
            (a.saturating_sub(b)) as f64 / 1024.0,
            (a.saturating_sub(b)) as f64 * 1024.0 / count as f64,
            json_bytes as f64 / count as f64
        );
    }
    println!(
        "replay of {count} records (decode and pack on every core, then apply): {:.2} s, {:.0} records/s",
        replay.as_secs_f64(),
        count as f64 / replay.as_secs_f64()
    );
    let all: Vec<&'static [u8]> = records.iter().map(Vec::as_slice).collect();
    let decoded = runtime.block_on(decode_batch(all, |r| r));
    let started = Instant::now();
    let mut again = View::default();
    again.defer_index();
    for (_, record) in decoded {
        again.apply_decoded(record.unwrap());
    }
    again.build_index();
    let apply = started.elapsed();
    println!(
        "applying the {count} decoded and packed records alone (the part on one core): {:.2} s, {:.0} records/s",
        apply.as_secs_f64(),
        count as f64 / apply.as_secs_f64()
    );
    drop(again);

    let mut g = c.benchmark_group("dashboard");
    g.sample_size(10);
    g.throughput(Throughput::Elements(count as u64));
    g.bench_function("monitor pass over every incident (missed targets)", |b| {
        b.iter(|| {
            black_box(
                view.rows()
                    .filter(|r| r.escalation_due(now))
                    .map(|r| r.incident())
                    .filter(|i| sla::next_escalation(i, now).is_some())
                    .count(),
            )
        })
    });
    g.bench_function(
        "figures over every incident (30 days, per ward x category)",
        |b| {
            let since = now - Duration::days(30);
            b.iter(|| {
                black_box(Figures::compute(
                    view.rows()
                        .filter(|r| r.occurred_at() >= since)
                        .map(|r| r.incident()),
                    now,
                ))
            })
        },
    );
    g.bench_function("GET /v1/incidents page (one ward, open)", |b| {
        let q = Query {
            ward: Some("W042".into()),
            status: Some(Status::Assigned),
            ..Query::default()
        };
        b.iter(|| black_box(view.query(&q, 500).total))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
