//! How far one dashboard instance goes: the in-memory view of every incident, and the work it
//! repeats on all of them. With 200,000 incidents (a large city's several months) it measures:
//! applying incident records (what a start-up replay of the topic costs), one pass of the
//! service-level monitor looking for missed targets (it runs every `sla_check_interval`), the
//! month's figures, and a filtered page of `GET /v1/incidents`. The view's memory per incident is
//! printed once. Results are written down in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench dashboard_view`.

use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ioc_dashboard::figures::Figures;
use ioc_dashboard::view::{Query, View};
use ioc_schema::fixtures::{self, transition as step};
use ioc_schema::sla;
use ioc_schema::{ActorRole, Incident, Location, Resolution, Status, Step, WardRef};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const INCIDENTS: usize = 200_000;
const CATEGORIES: [&str; 5] = [
    "traffic_order",
    "urban_order",
    "environment",
    "public_safety",
    "culture_tourism",
];

/// Incidents spread over 60 days and 168 wards, a third still open, the rest resolved or
/// closed, with the history such a life leaves.
fn incidents(now: DateTime<Utc>) -> Vec<Incident> {
    let mut rng = SmallRng::seed_from_u64(7);
    (0..INCIDENTS)
        .map(|n| {
            let occurred = now - Duration::minutes(rng.random_range(0..60 * 24 * 60));
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
            i
        })
        .collect()
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
    let all = incidents(now);
    let json_bytes: usize = all
        .iter()
        .map(|i| serde_json::to_vec(i).unwrap().len())
        .sum();

    let before = rss_kib();
    let mut view = View::default();
    for i in all.iter().cloned() {
        view.apply(i);
    }
    if let (Some(b), Some(a)) = (before, rss_kib()) {
        println!(
            "view of {INCIDENTS} incidents: {:.0} MiB resident ({:.1} KiB each; {:.1} KiB of JSON each on the topic)",
            (a.saturating_sub(b)) as f64 / 1024.0,
            (a.saturating_sub(b)) as f64 / INCIDENTS as f64,
            json_bytes as f64 / INCIDENTS as f64 / 1024.0
        );
    }

    let mut g = c.benchmark_group("dashboard");
    g.sample_size(10);
    g.throughput(Throughput::Elements(INCIDENTS as u64));
    g.bench_function("apply 200k records (replay at start)", |b| {
        b.iter_batched(
            || all.clone(),
            |records| {
                let mut v = View::default();
                for i in records {
                    v.apply(i);
                }
                black_box(v.len())
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("monitor pass over 200k (missed targets)", |b| {
        b.iter(|| {
            black_box(
                view.iter()
                    .filter(|i| sla::next_escalation(i, now).is_some())
                    .count(),
            )
        })
    });
    g.bench_function("figures over 200k (30 days, per ward x category)", |b| {
        let since = now - Duration::days(30);
        b.iter(|| {
            black_box(Figures::compute(
                view.iter().filter(|i| i.occurred_at >= since),
                now,
            ))
        })
    });
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
