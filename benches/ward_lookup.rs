//! Ward lookup speed on one core: the project's grid index against the usual tools (an R-tree of
//! ward envelopes with `geo::Contains` per candidate, and a naive scan), on the demo city and, when
//! `../shared/data/` (or `IOC_SHARED_DATA`) is present, on Chicago's 2023 wards with uniform and
//! real 311 points and on Ho Chi Minh City's 322 wards. Also index build time, and memory printed
//! once per city. Results are written down in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench ward_lookup` (add `-- lookup/chicago` to select).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use geo::{BoundingRect, MultiPolygon};
use ioc_router::wards::baseline::{naive_scan, EnvelopeRTree};
use ioc_router::wards::{demo, BuildOptions, Ward, WardIndex};
use ioc_schema::AssignRule;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const UNIFORM_POINTS: usize = 200_000;
const NAIVE_POINTS: usize = 2_000;

struct City {
    name: &'static str,
    wards: Vec<Ward>,
    /// (name, lon/lat points)
    point_sets: Vec<(&'static str, Vec<(f64, f64)>)>,
}

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("IOC_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    dir.is_dir().then_some(dir)
}

fn uniform(wards: &[Ward], n: usize, seed: u64) -> Vec<(f64, f64)> {
    let all = MultiPolygon(
        wards
            .iter()
            .flat_map(|w| w.geometry.0.iter().cloned())
            .collect(),
    );
    let r = all.bounding_rect().expect("wards have extent");
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            (
                rng.random_range(r.min().x..r.max().x),
                rng.random_range(r.min().y..r.max().y),
            )
        })
        .collect()
}

fn chicago_311(dir: &std::path::Path) -> Vec<(f64, f64)> {
    let mut rdr =
        csv::Reader::from_path(dir.join("chicago/chicago_311_sample.csv")).expect("311 sample");
    let headers = rdr.headers().expect("header").clone();
    let lat = headers
        .iter()
        .position(|h| h == "latitude")
        .expect("latitude column");
    let lon = headers
        .iter()
        .position(|h| h == "longitude")
        .expect("longitude column");
    rdr.records()
        .filter_map(|r| {
            let r = r.ok()?;
            Some((r[lon].parse().ok()?, r[lat].parse().ok()?))
        })
        .collect()
}

fn load(path: &std::path::Path, id: &str, name: Option<&str>) -> Vec<Ward> {
    ioc_schema::boundary::read_wards(path, id, name)
        .expect("boundary file")
        .into_iter()
        .map(Ward::from)
        .collect()
}

fn cities() -> Vec<City> {
    let demo_wards = demo::wards();
    let mut cities = vec![City {
        name: "demo",
        point_sets: vec![("uniform", uniform(&demo_wards, UNIFORM_POINTS, 1))],
        wards: demo_wards,
    }];
    match data_dir() {
        Some(dir) => {
            let chicago = load(&dir.join("chicago/wards_2023.geojson"), "ward", None);
            cities.push(City {
                name: "chicago-2023",
                point_sets: vec![
                    ("uniform", uniform(&chicago, UNIFORM_POINTS, 2)),
                    ("311", chicago_311(&dir)),
                ],
                wards: chicago,
            });
            let hcmc = load(
                &dir.join("vietnam/hcmc_wards_2019_cityscope.geojson"),
                "com_id",
                Some("com_name"),
            );
            cities.push(City {
                name: "hcmc-322",
                point_sets: vec![("uniform", uniform(&hcmc, UNIFORM_POINTS, 3))],
                wards: hcmc,
            });
            let hcmc_2025 = load(
                &dir.join("vietnam/hcmc_2025/hcmc_wards_2025.geojson"),
                "code",
                Some("name"),
            );
            cities.push(City {
                name: "hcmc-2025-168",
                // Over the mainland: Côn Đảo lies 180 km offshore, and a box reaching it is sea.
                point_sets: vec![(
                    "uniform",
                    uniform(
                        &hcmc_2025
                            .iter()
                            .filter(|w| w.name != "Côn Đảo")
                            .cloned()
                            .collect::<Vec<_>>(),
                        UNIFORM_POINTS,
                        4,
                    ),
                )],
                wards: hcmc_2025,
            });
        }
        None => eprintln!(
            "../shared/data is absent: benchmarking the demo city only (set IOC_SHARED_DATA)"
        ),
    }
    cities
}

fn polygons(wards: &[Ward]) -> Vec<MultiPolygon<f64>> {
    wards.iter().map(|w| w.geometry.clone()).collect()
}

fn bench(c: &mut Criterion) {
    for city in cities() {
        let started = Instant::now();
        let index = WardIndex::build(city.wards.clone(), BuildOptions::default());
        let (nx, ny, mixed) = index.grid_stats();
        eprintln!(
            "{}: {} wards, {} edges, grid {nx}×{ny}, {mixed} mixed cells, index heap {:.1} MiB, built in {:.0} ms",
            city.name,
            index.wards().len(),
            index.edge_count(),
            index.heap_bytes() as f64 / (1 << 20) as f64,
            started.elapsed().as_secs_f64() * 1e3
        );
        // The baselines index the wards in the index's own order, so ward numbers compare.
        let polys = polygons(index.wards());
        let rtree = EnvelopeRTree::new(polys.clone());

        for (set, points) in &city.point_sets {
            // Sanity: strictly-inside answers of the index equal geo::Contains.
            let mut checked = 0;
            for &(x, y) in points.iter().take(20_000) {
                let o = index.locate(x, y);
                if o.rule == AssignRule::Inside {
                    assert_eq!(o.ward.map(|w| w as usize), rtree.locate(x, y), "({x}, {y})");
                    checked += 1;
                }
            }
            assert!(
                checked > 0,
                "{} {set}: no point strictly inside a ward",
                city.name
            );

            let mut group = c.benchmark_group(format!("lookup/{}/{set}", city.name));
            group.throughput(Throughput::Elements(points.len() as u64));
            group.bench_function(BenchmarkId::new("grid_index", points.len()), |b| {
                b.iter(|| {
                    let mut n = 0u32;
                    for &(x, y) in points {
                        n = n.wrapping_add(
                            index.locate(black_box(x), black_box(y)).ward.unwrap_or(0),
                        );
                    }
                    n
                })
            });
            group.bench_function(
                BenchmarkId::new("rtree_envelopes_contains", points.len()),
                |b| {
                    b.iter(|| {
                        let mut n = 0usize;
                        for &(x, y) in points {
                            n = n.wrapping_add(
                                rtree.locate(black_box(x), black_box(y)).unwrap_or(0),
                            );
                        }
                        n
                    })
                },
            );
            let few = &points[..points.len().min(NAIVE_POINTS)];
            group.throughput(Throughput::Elements(few.len() as u64));
            group.sample_size(10);
            group.bench_function(BenchmarkId::new("naive_scan", few.len()), |b| {
                b.iter(|| {
                    let mut n = 0usize;
                    for &(x, y) in few {
                        n = n.wrapping_add(
                            naive_scan(&polys, black_box(x), black_box(y)).unwrap_or(0),
                        );
                    }
                    n
                })
            });
            group.finish();
        }

        let mut group = c.benchmark_group(format!("build/{}", city.name));
        group.sample_size(10);
        group.bench_function("grid_index", |b| {
            b.iter(|| WardIndex::build(black_box(city.wards.clone()), BuildOptions::default()))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
