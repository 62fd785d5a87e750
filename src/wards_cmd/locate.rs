//! `ioc wards locate`: assign the points of a CSV or NDJSON file to wards in batch, streaming,
//! with progress on a terminal and a summary per rule and ward.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ioc_config::load::Settings;
use ioc_router::wards::sets::build_options;
use ioc_router::wards::{BoundarySet, BoundarySets, BuildOptions, Ward, WardIndex};

#[derive(clap::Args)]
pub struct LocateArgs {
    /// Input file (CSV with a header, or NDJSON); `-` for standard input.
    #[arg(default_value = "-")]
    input: String,
    /// Output file; standard output when absent.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Input format; guessed from the file name (.ndjson/.jsonl) when absent, else CSV.
    #[arg(long, value_parser = ["csv", "ndjson"])]
    format: Option<String>,
    /// Latitude column (default: lat or latitude).
    #[arg(long)]
    lat_col: Option<String>,
    /// Longitude column (default: lon, lng or longitude).
    #[arg(long)]
    lon_col: Option<String>,
    /// Time column choosing the boundary set per row (RFC 3339, or a date/time without offset
    /// read as UTC). Without it the set in force now is used.
    #[arg(long)]
    time_col: Option<String>,
    /// Configuration file whose [[boundaries]] to use (default: embedded demo city).
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
    /// Boundary tolerance in metres (default from configuration, 0.5).
    #[arg(long)]
    tolerance_m: Option<f64>,
    /// Nearest-ward fallback distance in metres (default from configuration, 50).
    #[arg(long)]
    nearest_max_m: Option<f64>,
    /// No progress bar or summary.
    #[arg(short, long)]
    quiet: bool,
}

/// Parses a time cell: RFC 3339, or a date-time / date without offset taken as UTC.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    rows: u64,
    by_rule: BTreeMap<&'static str, u64>,
    by_ward: BTreeMap<String, u64>,
    bad: u64,
}

/// The result columns for one point.
struct Located {
    ward_id: String,
    ward_name: String,
    rule: &'static str,
    distance: String,
    version: String,
}

fn locate_point(
    sets: &BoundarySets,
    lat: f64,
    lon: f64,
    at: DateTime<Utc>,
    tally: &mut Tally,
) -> Located {
    let Some(set) = sets.select(at) else {
        *tally.by_rule.entry("no_boundary_set").or_default() += 1;
        return Located {
            ward_id: String::new(),
            ward_name: String::new(),
            rule: "no_boundary_set",
            distance: String::new(),
            version: String::new(),
        };
    };
    let o = set.index.locate(lon, lat);
    let rule = o.rule.as_str();
    *tally.by_rule.entry(rule).or_default() += 1;
    let (ward_id, ward_name) = match o.ward {
        Some(w) => {
            let ward = &set.index.wards()[w as usize];
            *tally.by_ward.entry(ward.id.clone()).or_default() += 1;
            (ward.id.clone(), ward.name.clone())
        }
        None => (String::new(), String::new()),
    };
    Located {
        ward_id,
        ward_name,
        rule,
        distance: o.distance_m.map(|d| format!("{d:.2}")).unwrap_or_default(),
        version: set.version.clone(),
    }
}

fn load_sets(args: &LocateArgs) -> anyhow::Result<BoundarySets> {
    let settings = Settings::load(args.config.as_deref(), std::env::vars())?;
    let mut opts: BuildOptions = build_options(&settings);
    if let Some(t) = args.tolerance_m {
        opts.tolerance_m = t;
    }
    if let Some(d) = args.nearest_max_m {
        opts.nearest_max_m = d;
    }
    match &args.boundaries {
        Some(file) => {
            let features = ioc_schema::boundary::read_wards(
                file,
                &args.id_property,
                args.name_property.as_deref(),
            )?;
            let index = WardIndex::build(features.into_iter().map(Ward::from).collect(), opts);
            Ok(BoundarySets {
                sets: vec![BoundarySet {
                    version: file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    valid_from: DateTime::<Utc>::MIN_UTC,
                    valid_to: None,
                    index: Arc::new(index),
                    source: file.display().to_string(),
                    modified: None,
                    predecessors: None,
                }],
            })
        }
        None => {
            let mut settings = settings;
            settings.config.router.boundary_tolerance_m = opts.tolerance_m;
            settings.config.router.nearest_max_m = opts.nearest_max_m;
            BoundarySets::load(&settings, None)
        }
    }
}

/// Counts bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

pub(super) fn locate(args: LocateArgs) -> anyhow::Result<()> {
    let sets = load_sets(&args)?;
    let now = Utc::now();
    let (raw, size): (Box<dyn Read>, Option<u64>) = if args.input == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(size.unwrap_or(0));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {wide_bar} {eta} {msg}",
            )
            .expect("progress template"),
        );
        b
    });
    let reader = BufReader::with_capacity(
        1 << 16,
        Counting {
            inner: raw,
            bar: bar.clone(),
        },
    );
    let out: Box<dyn Write + Send> = match &args.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let out = BufWriter::with_capacity(1 << 16, out);
    let ndjson = match args.format.as_deref() {
        Some(f) => f == "ndjson",
        None => args.input.ends_with(".ndjson") || args.input.ends_with(".jsonl"),
    };
    let mut tally = Tally::default();
    let one_set = sets.select(now).filter(|_| args.time_col.is_none());
    match one_set {
        _ if ndjson => locate_ndjson(&args, &sets, now, reader, out, &mut tally)?,
        Some(set) => locate_plain_or_csv(&args, &sets, set, now, reader, out, &mut tally)?,
        None => locate_csv(&args, &sets, now, reader, out, &mut tally)?,
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !args.quiet {
        eprintln!("{} rows: {} bad", tally.rows, tally.bad);
        for (rule, n) in &tally.by_rule {
            eprintln!("  {rule:<16} {n}");
        }
        eprintln!("per ward:");
        let mut wards: Vec<_> = tally.by_ward.iter().collect();
        wards.sort_by(|a, b| ioc_router::wards::index::ward_order(a.0, b.0));
        for (w, n) in wards {
            eprintln!("  {w:<16} {n}");
        }
    }
    Ok(())
}

/// CSV against one set: the parallel fast path ([`super::plain_csv`]) unless the start of the
/// input has quotes (a quoted field may span lines, which only the general path reads).
fn locate_plain_or_csv(
    args: &LocateArgs,
    sets: &BoundarySets,
    set: &BoundarySet,
    now: DateTime<Utc>,
    mut reader: impl BufRead,
    mut out: impl Write + Send,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut head = Vec::new();
    reader.read_until(b'\n', &mut head)?;
    let mut first = Vec::new();
    (&mut reader)
        .take(super::plain_csv::PEEK as u64)
        .read_to_end(&mut first)?;
    if head.contains(&b'"') || first.contains(&b'"') {
        let replay = std::io::Cursor::new([head, first].concat()).chain(reader);
        return locate_csv(args, sets, now, replay, out, tally);
    }
    let headers = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(head.as_slice())
        .records()
        .next()
        .transpose()?
        .unwrap_or_default();
    let lat_i = find_col(&headers, &args.lat_col, &["lat", "latitude"], "lat")?;
    let lon_i = find_col(&headers, &args.lon_col, &["lon", "lng", "longitude"], "lon")?;
    {
        let mut wtr = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(&mut out);
        wtr.write_record(output_headers(&headers).iter())?;
        wtr.flush()?;
    }
    let rest = BufReader::with_capacity(1 << 16, std::io::Cursor::new(first).chain(reader));
    let counts = super::plain_csv::run(set, lat_i, lon_i, rest, &mut out)?;
    out.flush()?;
    tally.rows += counts.rows;
    tally.bad += counts.bad;
    for (rule, n) in super::plain_csv::RULES.iter().zip(counts.by_rule) {
        if n > 0 {
            *tally.by_rule.entry(rule).or_default() += n;
        }
    }
    for (ward, n) in set.index.wards().iter().zip(counts.by_ward) {
        if n > 0 {
            tally.by_ward.insert(ward.id.clone(), n);
        }
    }
    Ok(())
}

/// The input's header with the result columns appended.
fn output_headers(headers: &csv::StringRecord) -> csv::StringRecord {
    let mut h = headers.clone();
    for extra in [
        "ward_id",
        "ward_name",
        "rule",
        "distance_m",
        "boundary_version",
    ] {
        h.push_field(extra);
    }
    h
}

pub(super) fn find_col(
    headers: &csv::StringRecord,
    given: &Option<String>,
    defaults: &[&str],
    what: &str,
) -> anyhow::Result<usize> {
    let names: Vec<String> = match given {
        Some(g) => vec![g.clone()],
        None => defaults.iter().map(|s| s.to_string()).collect(),
    };
    headers
        .iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
        .with_context(|| {
            format!(
                "no {what} column (looked for {}); name it with --{what}-col",
                names.join(", ")
            )
        })
}

fn locate_csv(
    args: &LocateArgs,
    sets: &BoundarySets,
    now: DateTime<Utc>,
    reader: impl Read,
    out: impl Write,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let mut wtr = csv::WriterBuilder::new().flexible(true).from_writer(out);
    let headers = rdr.headers()?.clone();
    let lat_i = find_col(&headers, &args.lat_col, &["lat", "latitude"], "lat")?;
    let lon_i = find_col(&headers, &args.lon_col, &["lon", "lng", "longitude"], "lon")?;
    let time_i = match &args.time_col {
        Some(_) => Some(find_col(&headers, &args.time_col, &[], "time")?),
        None => None,
    };
    wtr.write_record(&output_headers(&headers))?;
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                tally.rows += 1;
                tally.bad += 1;
                eprintln!("line {line}: unreadable row ({e}); written with rule 'invalid'");
                wtr.write_record(["", "", "invalid", "", ""])?;
                continue;
            }
        }
        tally.rows += 1;
        let lat = record.get(lat_i).and_then(|s| s.trim().parse::<f64>().ok());
        let lon = record.get(lon_i).and_then(|s| s.trim().parse::<f64>().ok());
        let at = match time_i {
            Some(i) => record.get(i).and_then(parse_time),
            None => Some(now),
        };
        let located = match (lat, lon, at) {
            (Some(lat), Some(lon), Some(at))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                Some(locate_point(sets, lat, lon, at, tally))
            }
            _ => {
                tally.bad += 1;
                *tally.by_rule.entry("invalid").or_default() += 1;
                eprintln!(
                    "line {line}: no valid lat/lon{} ; written with rule 'invalid'",
                    if time_i.is_some() { "/time" } else { "" }
                );
                None
            }
        };
        let mut row = record.clone();
        match located {
            Some(l) => {
                for f in [
                    l.ward_id.as_str(),
                    &l.ward_name,
                    l.rule,
                    &l.distance,
                    &l.version,
                ] {
                    row.push_field(f);
                }
            }
            None => {
                for f in ["", "", "invalid", "", ""] {
                    row.push_field(f);
                }
            }
        }
        wtr.write_record(&row)?;
    }
    wtr.flush()?;
    Ok(())
}

fn locate_ndjson(
    args: &LocateArgs,
    sets: &BoundarySets,
    now: DateTime<Utc>,
    reader: impl BufRead,
    mut out: impl Write,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let lat_keys: Vec<String> = args
        .lat_col
        .clone()
        .map_or(vec!["lat".into(), "latitude".into()], |c| vec![c]);
    let lon_keys: Vec<String> = args
        .lon_col
        .clone()
        .map_or(vec!["lon".into(), "lng".into(), "longitude".into()], |c| {
            vec![c]
        });
    let num = |v: &serde_json::Value, keys: &[String]| {
        keys.iter().find_map(|k| match v.get(k)? {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        tally.rows += 1;
        let mut obj: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                tally.bad += 1;
                eprintln!(
                    "line {}: not a JSON object; written with rule 'invalid'",
                    i + 1
                );
                writeln!(out, "{}", serde_json::json!({"rule": "invalid"}))?;
                continue;
            }
        };
        let at = match &args.time_col {
            Some(c) => obj.get(c).and_then(|v| v.as_str()).and_then(parse_time),
            None => Some(now),
        };
        let result = match (num(&obj, &lat_keys), num(&obj, &lon_keys), at) {
            (Some(lat), Some(lon), Some(at))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                let l = locate_point(sets, lat, lon, at, tally);
                serde_json::json!({
                    "ward_id": (!l.ward_id.is_empty()).then_some(l.ward_id),
                    "ward_name": (!l.ward_name.is_empty()).then_some(l.ward_name),
                    "rule": l.rule,
                    "distance_m": l.distance.parse::<f64>().ok(),
                    "boundary_version": l.version,
                })
            }
            _ => {
                tally.bad += 1;
                *tally.by_rule.entry("invalid").or_default() += 1;
                eprintln!(
                    "line {}: no valid lat/lon/time; written with rule 'invalid'",
                    i + 1
                );
                serde_json::json!({"rule": "invalid"})
            }
        };
        if let (Some(o), serde_json::Value::Object(extra)) = (obj.as_object_mut(), result) {
            o.extend(extra);
        }
        writeln!(out, "{obj}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_common_shapes_parse() {
        assert!(parse_time("2023-05-15T00:00:00Z").is_some());
        assert!(parse_time("2018-10-19T00:00:00.000").is_some());
        assert!(parse_time("2021-01-01 13:45:00").is_some());
        assert_eq!(parse_time("2023-05-15"), parse_time("2023-05-15T00:00:00Z"));
        assert!(parse_time("yesterday").is_none());
    }
}
