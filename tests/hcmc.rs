//! The ward index on Ho Chi Minh City's 168 units of 2025 (about 217,000 vertices) against an
//! independent exact answer: an R-tree of ward envelopes with `geo`'s `Contains` on the original
//! polygons, which shares no code with the index's grid, edge lists or point-in-polygon test.
//! A dense sample of points inside each unit, and points around the city outside every unit.
//! Needs `../shared/data/vietnam/hcmc_2025/` (or `IOC_SHARED_DATA`); skips with a printed reason
//! when it is absent.

use std::path::PathBuf;

use geo::BoundingRect;
use ioc_router::wards::baseline::EnvelopeRTree;
use ioc_router::wards::{BuildOptions, Ward, WardIndex};
use ioc_schema::AssignRule;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Points sampled inside each unit.
const PER_UNIT: usize = 300;

fn wards_file() -> Option<PathBuf> {
    let dir = std::env::var_os("IOC_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let file = dir.join("vietnam/hcmc_2025/hcmc_wards_2025.geojson");
    file.is_file().then_some(file)
}

#[test]
fn the_index_agrees_with_an_exact_answer_in_each_of_the_168_units() {
    let Some(file) = wards_file() else {
        println!("skipped: ../shared/data/vietnam/hcmc_2025/hcmc_wards_2025.geojson is absent (set IOC_SHARED_DATA)");
        return;
    };
    let features = ioc_schema::boundary::read_wards(&file, "code", Some("name")).unwrap();
    assert_eq!(features.len(), 168, "HCMC has 168 units since 2025-07-01");
    let wards: Vec<Ward> = features.into_iter().map(Ward::from).collect();
    let exact = EnvelopeRTree::new(wards.iter().map(|w| w.geometry.clone()).collect());
    let index = WardIndex::build(wards.clone(), BuildOptions::default());

    let mut rng = SmallRng::seed_from_u64(20_250_701);
    let (mut inside, mut on_boundary, mut disagree) = (0usize, 0usize, Vec::new());
    for (w, ward) in wards.iter().enumerate() {
        let r = ward
            .geometry
            .bounding_rect()
            .expect("a unit has a bounding box");
        let mut taken = 0;
        let mut tries = 0;
        // Rejection sampling: points of the unit's bounding box that the exact answer puts in it.
        while taken < PER_UNIT && tries < PER_UNIT * 2000 {
            tries += 1;
            let lon = rng.random_range(r.min().x..=r.max().x);
            let lat = rng.random_range(r.min().y..=r.max().y);
            if exact.locate(lon, lat) != Some(w) {
                continue;
            }
            taken += 1;
            let got = index.locate(lon, lat);
            match got.rule {
                // Within the boundary tolerance (0.5 m) of an edge the rule picks among the
                // touching units; the exact answer only knows strict containment.
                AssignRule::Boundary => on_boundary += 1,
                AssignRule::Inside if got.ward == Some(w as u32) => inside += 1,
                _ => disagree.push((ward.id.clone(), lon, lat, got)),
            }
        }
        assert_eq!(
            taken, PER_UNIT,
            "unit {} ({}): could not sample {PER_UNIT} points inside it",
            ward.id, ward.name
        );
    }
    println!(
        "{} points in 168 units: {inside} inside the same unit, {on_boundary} on a boundary, {} disagreements",
        168 * PER_UNIT,
        disagree.len()
    );
    assert!(
        disagree.is_empty(),
        "{:?}",
        &disagree[..disagree.len().min(10)]
    );
    assert!(on_boundary * 1000 < inside, "boundary cases should be rare");

    // Around the city: wherever the exact answer finds no unit, the index never says "inside".
    let all = wards
        .iter()
        .filter_map(|w| w.geometry.bounding_rect())
        .reduce(|a, b| {
            geo::Rect::new(
                geo::coord! { x: a.min().x.min(b.min().x), y: a.min().y.min(b.min().y) },
                geo::coord! { x: a.max().x.max(b.max().x), y: a.max().y.max(b.max().y) },
            )
        })
        .unwrap();
    let mut outside = 0;
    for _ in 0..50_000 {
        let lon = rng.random_range(all.min().x - 0.05..=all.max().x + 0.05);
        let lat = rng.random_range(all.min().y - 0.05..=all.max().y + 0.05);
        if exact.locate(lon, lat).is_some() {
            continue;
        }
        outside += 1;
        let got = index.locate(lon, lat);
        assert_ne!(
            got.rule,
            AssignRule::Inside,
            "({lon}, {lat}) is in no unit: {got:?}"
        );
    }
    assert!(
        outside > 10_000,
        "the sample reaches outside the city ({outside})"
    );
}

/// The 697 real traffic cameras of the city's portal against the ward the portal itself records
/// for each (`ward_code_2025`): the ward a camera event is routed to must be that one.
#[test]
fn cameras_fall_in_the_ward_the_city_records_for_them() {
    let Some(file) = wards_file() else {
        println!("skipped: ../shared/data/vietnam/hcmc_2025/ is absent (set IOC_SHARED_DATA)");
        return;
    };
    let features = ioc_schema::boundary::read_wards(&file, "code", Some("name")).unwrap();
    let index = WardIndex::build(
        features.into_iter().map(Ward::from).collect(),
        BuildOptions::default(),
    );
    let cameras: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(file.with_file_name("hcmc_traffic_cameras_2025.geojson")).unwrap(),
    )
    .unwrap();
    let cameras = cameras["features"].as_array().unwrap();
    assert_eq!(cameras.len(), 697);
    // The portal records no ward for a camera outside the city; the rule still hands one within
    // `nearest_max_m` (50 m) of a unit to that unit, and leaves the others to operators.
    let (mut same, mut outside, mut differ) = (0, Vec::new(), Vec::new());
    for c in cameras {
        let at = &c["geometry"]["coordinates"];
        let (lon, lat) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        let recorded = c["properties"]["ward_code_2025"]
            .as_str()
            .filter(|s| !s.is_empty());
        let got = index.locate(lon, lat);
        let ours = got.ward.map(|w| index.wards()[w as usize].id.as_str());
        match (recorded, ours) {
            (Some(r), Some(o)) if r == o => same += 1,
            (None, _) if matches!(got.rule, AssignRule::Nearest | AssignRule::Unassigned) => {
                outside.push((ours.map(str::to_string), got.distance_m))
            }
            _ => differ.push((c["properties"]["code"].clone(), recorded, ours, got.rule)),
        }
    }
    println!(
        "697 cameras: {same} in the recorded ward; {} outside every unit with no ward recorded (nearest unit within 50 m, distance): {outside:?}",
        outside.len()
    );
    assert!(differ.is_empty(), "{differ:?}");
    assert_eq!((same, outside.len()), (694, 3));
}
