//! `ioc wards ...`: check a boundary file, assign points in batch, regenerate the demo city.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ioc_router::wards::check::check;
use ioc_router::wards::{BuildOptions, Ward, WardIndex};

mod locate;
mod plain_csv;

use locate::find_col;
pub use locate::LocateArgs;

#[derive(clap::Subcommand)]
pub enum WardsCommand {
    /// Validate a boundary file: feature count, ids, invalid or self-intersecting polygons,
    /// overlaps and gaps between wards (with areas), winding, swapped coordinates, vertex count.
    /// Exits 1 if anything would make routing wrong.
    Check {
        /// GeoJSON FeatureCollection of Polygon/MultiPolygon wards.
        file: PathBuf,
        /// Feature property with the ward id.
        #[arg(long, default_value = "id")]
        id_property: String,
        /// Feature property with the ward name.
        #[arg(long)]
        name_property: Option<String>,
        /// Overlaps and gaps smaller than this (m²) are ignored as slivers.
        #[arg(long, default_value_t = 1.0)]
        min_area_m2: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Assign a ward to every row of a CSV or NDJSON file (backfills, audits). Output has the
    /// input's columns plus ward_id, ward_name, rule, distance_m and boundary_version, one row per
    /// input row in order. Uses the boundary sets of the configuration (chosen per row by the
    /// time column when given) or a single --boundaries file.
    Locate(LocateArgs),
    /// Time single-core lookups of points from a CSV against one boundary file and print the
    /// rate as JSON (index build time and memory included): how fast this map is on this machine.
    Bench {
        /// GeoJSON boundary file.
        boundaries: PathBuf,
        /// CSV with lon/lat columns (see `locate` for the column names).
        points: PathBuf,
        /// Ward id property.
        #[arg(long, default_value = "id")]
        id_property: String,
        /// Keep repeating the points until this many seconds have passed.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Find wards by name, with or without diacritics ("sai gon" finds "Phường Sài Gòn"), or
    /// by id, in every boundary set of the configuration (or in one --boundaries file).
    Find {
        /// Part of a ward's name, or a ward id.
        query: String,
        /// Configuration file whose [[boundaries]] to search (default: embedded demo city).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// A single boundary file instead of the configuration's sets.
        #[arg(long)]
        boundaries: Option<PathBuf>,
        /// Ward id property of --boundaries.
        #[arg(long, default_value = "id")]
        id_property: String,
        /// Ward name property of --boundaries.
        #[arg(long)]
        name_property: Option<String>,
    },
    /// Write the generated demo city (wards.geojson, cameras.csv, wards-reformed.geojson) into
    /// a folder.
    DemoCity {
        /// Folder to write into.
        #[arg(default_value = "config/demo")]
        dir: PathBuf,
    },
}

pub fn run(cmd: WardsCommand) -> anyhow::Result<()> {
    match cmd {
        WardsCommand::Check {
            file,
            id_property,
            name_property,
            min_area_m2,
            json,
        } => {
            let features =
                ioc_schema::boundary::read_wards(&file, &id_property, name_property.as_deref())?;
            let wards: Vec<Ward> = features.into_iter().map(Ward::from).collect();
            let report = check(&wards, min_area_m2);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_check(&file, &report);
            }
            if !report.is_clean() {
                std::process::exit(1);
            }
            Ok(())
        }
        WardsCommand::Locate(args) => locate::locate(args),
        WardsCommand::Find {
            query,
            config,
            boundaries,
            id_property,
            name_property,
        } => {
            let sets: Vec<(String, Vec<ioc_schema::boundary::WardFeature>)> = match boundaries {
                Some(file) => vec![(
                    file.display().to_string(),
                    ioc_schema::boundary::read_wards(
                        &file,
                        &id_property,
                        name_property.as_deref(),
                    )?,
                )],
                None => {
                    let settings =
                        ioc_config::load::Settings::load(config.as_deref(), std::env::vars())?;
                    let mut out = Vec::new();
                    for b in &settings.config.boundaries {
                        let file = settings.file(&b.file).map_err(anyhow::Error::msg)?;
                        let text = file.read().with_context(|| format!("reading {file}"))?;
                        let features = ioc_schema::boundary::parse_wards(
                            &text,
                            &b.id_property,
                            b.name_property.as_deref(),
                        )
                        .map_err(|e| anyhow::anyhow!("boundary file {file}: {e}"))?;
                        out.push((b.version.clone(), features));
                    }
                    out
                }
            };
            find(&query, &sets)
        }
        WardsCommand::Bench {
            boundaries,
            points,
            id_property,
            seconds,
        } => bench(&boundaries, &points, &id_property, seconds),
        WardsCommand::DemoCity { dir } => {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join("wards.geojson"),
                ioc_router::wards::demo::wards_geojson(),
            )?;
            std::fs::write(
                dir.join("cameras.csv"),
                ioc_router::wards::demo::cameras_csv(),
            )?;
            std::fs::write(
                dir.join("wards-reformed.geojson"),
                ioc_router::wards::demo::reformed_wards_geojson(),
            )?;
            println!(
                "wrote {}, {} ({} wards) and {} ({} units after the reform)",
                dir.join("wards.geojson").display(),
                dir.join("cameras.csv").display(),
                ioc_router::wards::demo::wards().len(),
                dir.join("wards-reformed.geojson").display(),
                ioc_router::wards::demo::reformed_wards().len()
            );
            Ok(())
        }
    }
}

fn bench(boundaries: &Path, points: &Path, id_property: &str, seconds: f64) -> anyhow::Result<()> {
    let features = ioc_schema::boundary::read_wards(boundaries, id_property, None)?;
    let wards: Vec<Ward> = features.into_iter().map(Ward::from).collect();
    let started = std::time::Instant::now();
    let index = WardIndex::build(wards, BuildOptions::default());
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut rdr = csv::Reader::from_path(points)
        .with_context(|| format!("cannot read {}", points.display()))?;
    let headers = rdr.headers()?.clone();
    let lat_i = find_col(&headers, &None, &["lat", "latitude"], "lat")?;
    let lon_i = find_col(&headers, &None, &["lon", "lng", "longitude"], "lon")?;
    let pts: Vec<(f64, f64)> = rdr
        .records()
        .filter_map(|r| {
            let r = r.ok()?;
            Some((r.get(lon_i)?.parse().ok()?, r.get(lat_i)?.parse().ok()?))
        })
        .collect();
    anyhow::ensure!(
        !pts.is_empty(),
        "no points with lat/lon in {}",
        points.display()
    );
    let mut lookups = 0u64;
    let mut assigned = 0u64;
    let started = std::time::Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        for &(x, y) in &pts {
            assigned += u64::from(std::hint::black_box(index.locate(x, y)).ward.is_some());
        }
        lookups += pts.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "points": pts.len(),
            "lookups": lookups,
            "seconds": secs,
            "lookups_per_second": lookups as f64 / secs,
            "assigned_share": assigned as f64 / lookups as f64,
            "build_ms": build_ms,
            "index_heap_bytes": index.heap_bytes(),
            "edges": index.edge_count(),
        })
    );
    Ok(())
}

fn print_check(file: &Path, r: &ioc_router::wards::check::CheckReport) {
    println!("{}", file.display());
    println!("  features        {}", r.features);
    println!("  vertices        {}", r.vertices);
    println!("  total area      {:.3} km²", r.total_area_m2 / 1e6);
    let shown: Vec<&str> = r.ids.iter().take(20).map(String::as_str).collect();
    println!(
        "  ids             {}{}",
        shown.join(", "),
        if r.ids.len() > 20 {
            format!(", … ({} more)", r.ids.len() - 20)
        } else {
            String::new()
        }
    );
    let verdict = |n: usize| {
        if n == 0 {
            "none".to_string()
        } else {
            n.to_string()
        }
    };
    println!("  duplicate ids   {}", verdict(r.duplicate_ids.len()));
    for id in &r.duplicate_ids {
        println!("    - {id}");
    }
    println!("  invalid         {}", verdict(r.invalid.len()));
    for (id, why) in &r.invalid {
        println!("    - ward {id}: {why}");
    }
    println!("  swapped coords  {}", verdict(r.swapped_coordinates.len()));
    for id in &r.swapped_coordinates {
        println!("    - ward {id}: latitudes beyond ±90°, coordinates look like (lat, lon); GeoJSON wants (lon, lat)");
    }
    println!("  overlaps        {}", verdict(r.overlaps.len()));
    for o in &r.overlaps {
        println!(
            "    - wards {} and {} overlap by {:.1} m²",
            o.a, o.b, o.area_m2
        );
    }
    println!("  gaps            {}", verdict(r.gaps.len()));
    for g in &r.gaps {
        println!(
            "    - {:.1} m² enclosed but in no ward, around lon {:.6}, lat {:.6}",
            g.area_m2, g.at.0, g.at.1
        );
    }
    println!(
        "  clockwise       {} (accepted; RFC 7946 asks for counter-clockwise exteriors)",
        verdict(r.clockwise_exteriors.len())
    );
    println!(
        "  verdict         {}",
        if r.is_clean() {
            "clean"
        } else {
            "PROBLEMS FOUND"
        }
    );
}

/// Prints the wards of each set whose name contains `query` without diacritics, or whose id is
/// `query`, one per line (set, id, name, tab-separated); an error when there are none.
fn find(
    query: &str,
    sets: &[(String, Vec<ioc_schema::boundary::WardFeature>)],
) -> anyhow::Result<()> {
    use std::io::Write;
    let folded = ioc_schema::names::fold(query);
    let mut out = std::io::stdout().lock();
    let mut found = 0;
    for (version, wards) in sets {
        for w in wards {
            if w.id == query.trim() || ioc_schema::names::fold(&w.name).contains(&folded) {
                // A closed pipe (`| head`) ends the listing quietly.
                if writeln!(out, "{version}\t{}\t{}", w.id, w.name).is_err() {
                    return Ok(());
                }
                found += 1;
            }
        }
    }
    anyhow::ensure!(
        found > 0,
        "no ward's name contains '{query}' (compared without diacritics) in {} boundary set(s); try a shorter part of the name",
        sets.len()
    );
    Ok(())
}
