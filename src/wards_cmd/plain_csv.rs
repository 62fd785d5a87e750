//! The fast path of `ioc wards locate` for the common case: CSV judged against one boundary set
//! (no time column). Rows are copied through byte for byte with the result columns appended,
//! blocks of the input are split at line ends and shared between the cores, and results are
//! written in input order. Only lines with a quote go through a full CSV parser. The output is
//! the same as the general path's, row for row.

use std::io::{BufRead, Read, Write};

use ioc_router::wards::BoundarySet;
use ioc_schema::AssignRule;

/// Input read per round, split between the workers.
const BLOCK: usize = 8 << 20;

/// How much of the input's start is checked for quotes before the fast path is chosen.
pub(super) const PEEK: usize = 1 << 20;

/// What the workers count, merged into the command's summary at the end.
#[derive(Default)]
pub(super) struct Counts {
    pub rows: u64,
    pub bad: u64,
    /// By [`rule_index`].
    pub by_rule: [u64; 6],
    /// By ward index in the set.
    pub by_ward: Vec<u64>,
}

pub(super) const RULES: [&str; 6] = [
    "inside",
    "boundary",
    "overlap",
    "nearest",
    "unassigned",
    "invalid",
];

fn rule_index(r: AssignRule) -> usize {
    match r {
        AssignRule::Inside => 0,
        AssignRule::Boundary => 1,
        AssignRule::Overlap => 2,
        AssignRule::Nearest => 3,
        AssignRule::Unassigned => 4,
    }
}

/// The appended columns that depend only on the ward, CSV-quoted once.
struct Columns {
    /// `,id,name` per ward.
    ward: Vec<Vec<u8>>,
    /// `,version`.
    version: Vec<u8>,
}

fn field(out: &mut Vec<u8>, value: &str) {
    out.push(b',');
    if value.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

impl Columns {
    fn new(set: &BoundarySet) -> Columns {
        let ward = set
            .index
            .wards()
            .iter()
            .map(|w| {
                let mut v = Vec::new();
                field(&mut v, &w.id);
                field(&mut v, &w.name);
                v
            })
            .collect();
        let mut version = Vec::new();
        field(&mut version, &set.version);
        Columns { ward, version }
    }
}

/// Runs the fast path over the rest of `input` (the header already read), writing to `out`.
pub(super) fn run(
    set: &BoundarySet,
    lat_i: usize,
    lon_i: usize,
    input: impl BufRead,
    out: &mut (impl Write + Send),
) -> anyhow::Result<Counts> {
    // A writer of its own, so writing one block overlaps working on the next.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for buf in rx {
                out.write_all(&buf)?;
            }
            out.flush()
        });
        let counts = work(set, lat_i, lon_i, input, &tx);
        drop(tx);
        let written = writer.join().expect("the locate writer panicked");
        let counts = counts?;
        written?;
        Ok(counts)
    })
}

fn work(
    set: &BoundarySet,
    lat_i: usize,
    lon_i: usize,
    mut input: impl BufRead,
    out: &std::sync::mpsc::SyncSender<Vec<u8>>,
) -> anyhow::Result<Counts> {
    let columns = Columns::new(set);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut total = Counts {
        by_ward: vec![0; set.index.wards().len()],
        ..Counts::default()
    };
    let mut line = 1u64; // the header
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK + (64 << 10));
    loop {
        // Fill a block, then complete its last line.
        block.clear();
        let mut reader = (&mut input).take(BLOCK as u64);
        reader.read_to_end(&mut block)?;
        let end_of_input = block.len() < BLOCK;
        if !end_of_input {
            input.read_until(b'\n', &mut block)?;
        }
        if block.is_empty() {
            break;
        }
        // One piece per worker, each ending at a line end.
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(workers);
        let mut rest: &[u8] = &block;
        for w in (1..=workers).rev() {
            if w == 1 || rest.is_empty() {
                pieces.push(rest);
                break;
            }
            let cut = (rest.len() / w).max(1);
            let split = rest[cut - 1..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |p| cut + p);
            pieces.push(&rest[..split]);
            rest = &rest[split..];
        }
        let results: Vec<Piece> = std::thread::scope(|scope| {
            let handles: Vec<_> = pieces
                .iter()
                .map(|piece| {
                    let columns = &columns;
                    scope.spawn(move || locate_piece(set, columns, lat_i, lon_i, piece))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a locate worker panicked"))
                .collect()
        });
        for r in results {
            // A writer that stopped (a closed pipe, a full disk) says why when joined.
            if out.send(r.out).is_err() {
                return Ok(total);
            }
            for local in r.bad_lines {
                eprintln!(
                    "line {}: no valid lat/lon ; written with rule 'invalid'",
                    line + local
                );
            }
            line += r.lines;
            total.rows += r.counts.rows;
            total.bad += r.counts.bad;
            for (t, n) in total.by_rule.iter_mut().zip(r.counts.by_rule) {
                *t += n;
            }
            for (t, n) in total.by_ward.iter_mut().zip(r.counts.by_ward) {
                *t += n;
            }
        }
        if end_of_input {
            break;
        }
    }
    Ok(total)
}

/// One worker's share of a block.
struct Piece {
    out: Vec<u8>,
    counts: Counts,
    /// Physical lines in the piece, and those (1-based within it) without a valid position.
    lines: u64,
    bad_lines: Vec<u64>,
}

fn locate_piece(
    set: &BoundarySet,
    columns: &Columns,
    lat_i: usize,
    lon_i: usize,
    piece: &[u8],
) -> Piece {
    let mut p = Piece {
        out: Vec::with_capacity(piece.len() + piece.len() / 2),
        counts: Counts {
            by_ward: vec![0; set.index.wards().len()],
            ..Counts::default()
        },
        lines: 0,
        bad_lines: Vec::new(),
    };
    for raw in piece.split_inclusive(|&b| b == b'\n') {
        p.lines += 1;
        let row = raw.strip_suffix(b"\n").unwrap_or(raw);
        let row = row.strip_suffix(b"\r").unwrap_or(row);
        if row.is_empty() {
            continue;
        }
        p.counts.rows += 1;
        let quotes = row.iter().filter(|&&b| b == b'"').count();
        // A quoted field spanning lines cannot be told from two rows here: counted invalid
        // (the input's start had no quotes, so this path was chosen).
        let position = match quotes {
            0 => plain_position(row, lat_i, lon_i),
            q if q % 2 == 0 => quoted_position(row, lat_i, lon_i),
            _ => None,
        };
        p.out.extend_from_slice(row);
        match position {
            Some((lat, lon)) => {
                let o = set.index.locate(lon, lat);
                p.counts.by_rule[rule_index(o.rule)] += 1;
                match o.ward {
                    Some(w) => {
                        p.counts.by_ward[w as usize] += 1;
                        p.out.extend_from_slice(&columns.ward[w as usize]);
                    }
                    None => p.out.extend_from_slice(b",,"),
                }
                p.out.push(b',');
                p.out.extend_from_slice(o.rule.as_str().as_bytes());
                p.out.push(b',');
                if let Some(d) = o.distance_m {
                    let _ = write!(p.out, "{d:.2}");
                }
                p.out.extend_from_slice(&columns.version);
            }
            None => {
                p.counts.bad += 1;
                p.counts.by_rule[5] += 1;
                p.bad_lines.push(p.lines);
                p.out.extend_from_slice(b",,,invalid,,");
            }
        }
        p.out.push(b'\n');
    }
    p
}

/// A valid (lat, lon) from the row's fields.
fn valid(lat: Option<f64>, lon: Option<f64>) -> Option<(f64, f64)> {
    match (lat, lon) {
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
        {
            Some((lat, lon))
        }
        _ => None,
    }
}

fn number(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field).ok()?.trim().parse().ok()
}

fn plain_position(row: &[u8], lat_i: usize, lon_i: usize) -> Option<(f64, f64)> {
    let (mut lat, mut lon) = (None, None);
    for (i, f) in row.split(|&b| b == b',').enumerate() {
        if i == lat_i {
            lat = number(f);
        }
        if i == lon_i {
            lon = number(f);
        }
        if i >= lat_i && i >= lon_i {
            break;
        }
    }
    valid(lat, lon)
}

fn quoted_position(row: &[u8], lat_i: usize, lon_i: usize) -> Option<(f64, f64)> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(row);
    let mut record = csv::ByteRecord::new();
    rdr.read_byte_record(&mut record).ok()?;
    valid(
        record.get(lat_i).and_then(number),
        record.get(lon_i).and_then(number),
    )
}
