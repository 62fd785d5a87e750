//! Accuracy on real data: Chicago's 311 requests against the ward map in force on each request's
//! date (chosen through boundary sets with validity periods), compared with the ward the city
//! itself recorded. Needs `../shared/data/chicago/` (or `IOC_SHARED_DATA`); skips with a printed
//! reason when it is absent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use ioc_router::wards::{BoundarySet, BoundarySets, BuildOptions, Ward, WardIndex};
use ioc_schema::AssignRule;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("IOC_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    dir.join("chicago/chicago_311_sample.csv")
        .is_file()
        .then_some(dir)
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

fn set(
    dir: &std::path::Path,
    file: &str,
    version: &str,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> BoundarySet {
    let features =
        ioc_schema::boundary::read_wards(&dir.join("chicago").join(file), "ward", None).unwrap();
    let index = WardIndex::build(
        features.into_iter().map(Ward::from).collect(),
        BuildOptions::default(),
    );
    BoundarySet {
        version: version.into(),
        valid_from: from,
        valid_to: to,
        index: Arc::new(index),
        source: file.into(),
        modified: None,
        predecessors: None,
    }
}

#[derive(Default, Debug)]
struct Figures {
    rows: u64,
    no_position: u64,
    by_rule: BTreeMap<&'static str, u64>,
    inside_agree: u64,
    inside_disagree: u64,
    assigned_agree: u64,
    assigned_disagree: u64,
}

impl Figures {
    /// Agreement over points strictly inside one ward: the same population as the reference
    /// figures, which leave out boundary ties (0.5 m) and points outside every ward.
    fn inside_rate(&self) -> f64 {
        self.inside_agree as f64 / (self.inside_agree + self.inside_disagree).max(1) as f64
    }
    fn assigned_rate(&self) -> f64 {
        self.assigned_agree as f64 / (self.assigned_agree + self.assigned_disagree).max(1) as f64
    }
}

#[test]
fn chicago_311_agrees_with_the_citys_own_wards() {
    let Some(dir) = data_dir() else {
        println!("skipped: ../shared/data/chicago/ is absent (set IOC_SHARED_DATA to its parent folder to run this test)");
        return;
    };
    let switch = utc(2023, 5, 15);
    let sets = BoundarySets {
        sets: vec![
            set(
                &dir,
                "wards_2015_2023.geojson",
                "chicago-2015",
                utc(2015, 5, 18),
                Some(switch),
            ),
            set(&dir, "wards_2023.geojson", "chicago-2023", switch, None),
        ],
    };
    let mut rdr = csv::Reader::from_path(dir.join("chicago/chicago_311_sample.csv")).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (c_source, c_created, c_ward, c_lat, c_lon) = (
        col("source"),
        col("created_date"),
        col("ward"),
        col("latitude"),
        col("longitude"),
    );
    let mut groups: BTreeMap<String, Figures> = BTreeMap::new();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let source = rec[c_source].split('/').next().unwrap().to_string();
        let f = groups.entry(source).or_default();
        f.rows += 1;
        let (Ok(lat), Ok(lon)) = (rec[c_lat].parse::<f64>(), rec[c_lon].parse::<f64>()) else {
            f.no_position += 1;
            continue;
        };
        let recorded = &rec[c_ward];
        if recorded.is_empty() {
            f.no_position += 1;
            continue;
        }
        // Local Chicago time without offset; a day's precision is all the map choice needs.
        let created = NaiveDateTime::parse_from_str(&rec[c_created], "%Y-%m-%dT%H:%M:%S%.f")
            .unwrap()
            .and_utc();
        let chosen = sets.select(created).expect("a set is in force");
        let o = chosen.index.locate(lon, lat);
        *f.by_rule.entry(o.rule.as_str()).or_default() += 1;
        let Some(w) = o.ward else { continue };
        let agree = chosen.index.wards()[w as usize].id == recorded;
        if o.rule == AssignRule::Inside {
            if agree {
                f.inside_agree += 1
            } else {
                f.inside_disagree += 1
            }
        }
        if agree {
            f.assigned_agree += 1
        } else {
            f.assigned_disagree += 1
        }
    }
    // The reference agreements of ../shared/data/README.md (points strictly inside one ward).
    let reference = [
        ("nandini1bag_2021-01-01", 0.9948),
        ("ramagronka_2025-12-02_03", 0.9887),
        ("saikrishnan10_legacy_2018q4", 0.9986),
    ];
    for (source, want) in reference {
        let f = &groups[source];
        println!(
            "{source}: {} rows, {} without position or recorded ward; rules {:?}; \
             agreement strictly inside {:.2} % (reference {:.2} %), over every assigned point {:.2} %",
            f.rows,
            f.no_position,
            f.by_rule,
            100.0 * f.inside_rate(),
            100.0 * want,
            100.0 * f.assigned_rate(),
        );
        assert!(
            f.inside_rate() >= want - 5e-5,
            "{source}: {:.4} below the reference {want}",
            f.inside_rate()
        );
    }
}
