//! The demo city: a deterministic, generated map of about 160 wards with wavy, non-rectangular
//! boundaries, one ward with an enclave (a hole that is a ward of its own) and one ward with an
//! island, plus a camera registry. `ioc wards demo-city` writes the bundled files from this code,
//! and a test checks that the bundled files are exactly what it generates.

use geo::{Coord, LineString, MultiPolygon, Polygon};

use crate::rule::Ward;

/// Centre of the demo city (lon, lat), on the Red River delta plain.
pub const CENTRE: (f64, f64) = (105.915, 20.545);
/// Lattice cells across and down.
const CX: usize = 16;
const CY: usize = 14;
/// Cell size in degrees (about 650 m).
const CELL: f64 = 0.006;
/// Interior points on every lattice edge.
const WAVE_POINTS: usize = 9;

/// SplitMix64, enough for deterministic jitter without a dependency.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic number in [-1, 1) from a few integers.
fn noise(a: u64, b: u64, c: u64) -> f64 {
    let h = mix(a.wrapping_mul(0x1000_0001) ^ mix(b.wrapping_mul(0x2000_0003) ^ mix(c)));
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn vertex(i: usize, j: usize) -> Coord<f64> {
    let x0 = CENTRE.0 - CELL * CX as f64 / 2.0;
    let y0 = CENTRE.1 - CELL * CY as f64 / 2.0;
    // Border vertices of the lattice stay on a straight line only where no ward uses them, so
    // jitter everything equally.
    Coord {
        x: x0 + CELL * (i as f64 + 0.3 * noise(1, i as u64, j as u64)),
        y: y0 + CELL * (j as f64 + 0.3 * noise(2, i as u64, j as u64)),
    }
}

/// The wavy polyline of the lattice edge from vertex `a` to vertex `b` (neighbours). It is
/// generated in a canonical direction and reversed on demand, so the two wards sharing an edge
/// have exactly the same coordinates and the map has no gaps or overlaps.
fn edge(a: (usize, usize), b: (usize, usize)) -> Vec<Coord<f64>> {
    let (lo, hi, reversed) = if a <= b { (a, b, false) } else { (b, a, true) };
    let (p, q) = (vertex(lo.0, lo.1), vertex(hi.0, hi.1));
    let id = (lo.0 * 1000 + lo.1) as u64 * 4 + u64::from(lo.0 != hi.0);
    let (dx, dy) = (q.x - p.x, q.y - p.y);
    let len = (dx * dx + dy * dy).sqrt();
    let (nx, ny) = (-dy / len, dx / len);
    let amp1 = 0.07 * CELL * noise(3, id, 0);
    let amp2 = 0.03 * CELL * noise(4, id, 0);
    let mut pts = vec![p];
    for k in 1..=WAVE_POINTS {
        let t = k as f64 / (WAVE_POINTS + 1) as f64;
        let off =
            amp1 * (std::f64::consts::PI * t).sin() + amp2 * (3.0 * std::f64::consts::PI * t).sin();
        pts.push(Coord {
            x: p.x + t * dx + off * nx,
            y: p.y + t * dy + off * ny,
        });
    }
    pts.push(q);
    for c in &mut pts {
        *c = Coord {
            x: round6(c.x),
            y: round6(c.y),
        };
    }
    if reversed {
        pts.reverse();
    }
    pts
}

fn kept(i: usize, j: usize) -> bool {
    // An irregular oval city outline.
    let u = (i as f64 + 0.5) / CX as f64 * 2.0 - 1.0;
    let v = (j as f64 + 0.5) / CY as f64 * 2.0 - 1.0;
    u * u + v * v < 1.0 + 0.25 * noise(5, i as u64, j as u64)
}

fn cell_ring(i: usize, j: usize) -> LineString<f64> {
    let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1), (i, j)];
    let mut ring = Vec::new();
    for w in corners.windows(2) {
        let mut e = edge(w[0], w[1]);
        e.pop();
        ring.extend(e);
    }
    ring.push(ring[0]);
    LineString(ring)
}

const NAMES: &[&str] = &[
    "An Bình",
    "An Hòa",
    "An Lạc",
    "An Phú",
    "Bình An",
    "Bình Minh",
    "Bình Thuận",
    "Châu Sơn",
    "Đông Hòa",
    "Đông Sơn",
    "Hai Bà",
    "Hòa Bình",
    "Hòa Lạc",
    "Hưng Long",
    "Kim Bình",
    "Lam Hạ",
    "Lê Hồng",
    "Liêm Chính",
    "Liêm Tuyền",
    "Long Biên",
    "Minh Khai",
    "Mỹ Đình",
    "Nam Sơn",
    "Phù Vân",
    "Phú Lợi",
    "Phú Mỹ",
    "Quang Trung",
    "Tân Hiệp",
    "Tân Phong",
    "Thanh Châu",
    "Thanh Sơn",
    "Thanh Tuyền",
    "Thịnh Vượng",
    "Trần Hưng",
    "Trung Hòa",
    "Văn Lâm",
    "Vĩnh Phúc",
    "Xuân Hòa",
    "Yên Bắc",
    "Yên Ninh",
];

/// The lattice cells the city keeps, in ward order (ward `P001` is the first).
fn cells() -> Vec<(usize, usize)> {
    let mut cells: Vec<(usize, usize)> = Vec::new();
    for j in 0..CY {
        for i in 0..CX {
            if kept(i, j) {
                cells.push((i, j));
            }
        }
    }
    cells
}

/// The wards of the demo city, ordered by id.
pub fn wards() -> Vec<Ward> {
    let cells = cells();
    let mut wards: Vec<Ward> = cells
        .iter()
        .enumerate()
        .map(|(n, &(i, j))| {
            let name = NAMES[n % NAMES.len()];
            let suffix = n / NAMES.len();
            Ward {
                id: format!("P{:03}", n + 1),
                name: if suffix == 0 {
                    format!("Phường {name}")
                } else {
                    format!("Phường {name} {}", suffix + 1)
                },
                geometry: MultiPolygon(vec![Polygon::new(cell_ring(i, j), vec![])]),
            }
        })
        .collect();

    // An enclave: the central ward gets a hole, and the hole is a ward of its own.
    let centre = cells
        .iter()
        .position(|&c| c == (CX / 2, CY / 2))
        .expect("centre cell kept");
    let c = vertex(CX / 2, CY / 2);
    let d = vertex(CX / 2 + 1, CY / 2 + 1);
    let (mx, my) = ((c.x + d.x) / 2.0, (c.y + d.y) / 2.0);
    let hole: Vec<Coord<f64>> = (0..=12)
        .map(|k| {
            let a = -(k % 12) as f64 / 12.0 * std::f64::consts::TAU; // clockwise
            let r = CELL * (0.18 + 0.04 * noise(6, k as u64 % 12, 0));
            Coord {
                x: round6(mx + r * a.cos()),
                y: round6(my + r * a.sin()),
            }
        })
        .collect();
    let mut enclave = hole.clone();
    enclave.reverse();
    let host = &mut wards[centre].geometry.0[0];
    *host = Polygon::new(host.exterior().clone(), vec![LineString(hole)]);
    wards.push(Ward {
        id: format!("P{:03}", wards.len() + 1),
        name: "Khu di tích Thành cổ (enclave)".into(),
        geometry: MultiPolygon(vec![Polygon::new(LineString(enclave), vec![])]),
    });

    // An island: the easternmost ward of the middle row also owns a small island off the coast.
    let row = CY / 2;
    let (east_i, east_idx) = cells
        .iter()
        .enumerate()
        .filter(|(_, c)| c.1 == row)
        .map(|(n, c)| (c.0, n))
        .max()
        .expect("middle row has cells");
    let base = vertex(east_i + 1, row);
    let island: Vec<Coord<f64>> = (0..=10)
        .map(|k| {
            let a = (k % 10) as f64 / 10.0 * std::f64::consts::TAU;
            let r = CELL * 0.2;
            Coord {
                x: round6(base.x + CELL * 0.9 + 1.4 * r * a.cos()),
                y: round6(base.y + CELL * 0.4 + r * a.sin()),
            }
        })
        .collect();
    wards[east_idx]
        .geometry
        .0
        .push(Polygon::new(LineString(island), vec![]));
    wards
}

/// The demo city after its reform: every block of two by two lattice cells merged into one
/// unit (`U01`, ...; named after the block's first ward), the enclave kept as it was. About a
/// third as many units, as when Vietnam merged its communes in 2025. The units are drawn from
/// the same lattice edges as the wards, so the two maps share every boundary they have in common.
pub fn reformed_wards() -> Vec<Ward> {
    let old = wards();
    let cells = cells();
    let mut blocks: std::collections::BTreeMap<(usize, usize), Vec<usize>> = Default::default();
    for (n, &(i, j)) in cells.iter().enumerate() {
        blocks.entry((j / 2, i / 2)).or_default().push(n);
    }
    let mut units: Vec<Ward> = blocks
        .into_values()
        .enumerate()
        .map(|(u, members)| {
            let mut polygons = Vec::new();
            for part in connected(&members.iter().map(|&n| cells[n]).collect::<Vec<_>>()) {
                let holes = members
                    .iter()
                    .filter(|&&n| part.contains(&cells[n]))
                    .flat_map(|&n| old[n].geometry.0[0].interiors().to_vec())
                    .collect();
                polygons.push(Polygon::new(outline(&part), holes));
            }
            // Islands and other extra parts of a member come along.
            polygons.extend(
                members
                    .iter()
                    .flat_map(|&n| old[n].geometry.0[1..].to_vec()),
            );
            let first = old[members[0]].name.trim_start_matches("Phường ");
            Ward {
                id: format!("U{:02}", u + 1),
                name: format!("Phường {first} mới"),
                geometry: MultiPolygon(polygons),
            }
        })
        .collect();
    let enclave = old.last().expect("the enclave is the last ward").clone();
    units.push(Ward {
        id: format!("U{:02}", units.len() + 1),
        ..enclave
    });
    units
}

/// The groups of `cells` joined side by side (not corner to corner).
fn connected(cells: &[(usize, usize)]) -> Vec<Vec<(usize, usize)>> {
    let mut groups: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut left: Vec<(usize, usize)> = cells.to_vec();
    while let Some(seed) = left.pop() {
        let mut group = vec![seed];
        let mut k = 0;
        while k < group.len() {
            let (i, j) = group[k];
            let mut n = 0;
            while n < left.len() {
                let (a, b) = left[n];
                if i.abs_diff(a) + j.abs_diff(b) == 1 {
                    group.push(left.swap_remove(n));
                } else {
                    n += 1;
                }
            }
            k += 1;
        }
        groups.push(group);
    }
    groups
}

/// The outer ring of side-by-side `cells` (at most a two by two block, so without holes):
/// the cells' lattice edges that no two cells share, chained counter-clockwise.
fn outline(cells: &[(usize, usize)]) -> LineString<f64> {
    type V = (usize, usize);
    let mut edges: Vec<(V, V)> = Vec::new();
    for &(i, j) in cells {
        let c = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1), (i, j)];
        for w in c.windows(2) {
            match edges.iter().position(|&(a, b)| (a, b) == (w[1], w[0])) {
                Some(shared) => {
                    edges.swap_remove(shared);
                }
                None => edges.push((w[0], w[1])),
            }
        }
    }
    let start = edges[0].0;
    let mut at = start;
    let mut ring = Vec::new();
    for _ in 0..edges.len() {
        let &(a, b) = edges.iter().find(|e| e.0 == at).expect("a closed outline");
        let mut e = edge(a, b);
        e.pop();
        ring.extend(e);
        at = b;
        if at == start {
            break;
        }
    }
    ring.push(ring[0]);
    LineString(ring)
}

/// The demo city as a GeoJSON FeatureCollection (properties `id`, `name`).
pub fn wards_geojson() -> String {
    geojson(&wards())
}

/// The demo city after its reform ([`reformed_wards`]), as GeoJSON.
pub fn reformed_wards_geojson() -> String {
    geojson(&reformed_wards())
}

fn geojson(wards: &[Ward]) -> String {
    let lines: Vec<String> = wards
        .iter()
        .map(|w| {
            serde_json::json!({
                "type": "Feature",
                "properties": { "id": w.id, "name": w.name },
                "geometry": ioc_schema::boundary::multipolygon_to_geojson(&w.geometry),
            })
            .to_string()
        })
        .collect();
    // One feature per line keeps the file diff-friendly.
    let mut out = String::from(
        "{\"type\":\"FeatureCollection\",\"name\":\"ioc demo city (generated)\",\"features\":[\n",
    );
    out.push_str(&lines.join(",\n"));
    out.push_str("\n]}\n");
    out
}

/// Cameras: two per ward, at deterministic points well inside each lattice cell.
pub fn cameras_csv() -> String {
    let mut out = String::from("id,lat,lon,description\n");
    let mut n = 0;
    for j in 0..CY {
        for i in 0..CX {
            if !kept(i, j) {
                continue;
            }
            for k in 0..2u64 {
                let (u, v) = (
                    0.5 + 0.2 * noise(7, (i * 100 + j) as u64, k),
                    0.5 + 0.2 * noise(8, (i * 100 + j) as u64, k),
                );
                let (a, b, c, d) = (
                    vertex(i, j),
                    vertex(i + 1, j),
                    vertex(i + 1, j + 1),
                    vertex(i, j + 1),
                );
                let x = a.x * (1.0 - u) * (1.0 - v)
                    + b.x * u * (1.0 - v)
                    + c.x * u * v
                    + d.x * (1.0 - u) * v;
                let y = a.y * (1.0 - u) * (1.0 - v)
                    + b.y * u * (1.0 - v)
                    + c.y * u * v
                    + d.y * (1.0 - u) * v;
                n += 1;
                let kind = if k == 0 { "intersection" } else { "street" };
                out.push_str(&format!(
                    "CAM-{n:04},{:.6},{:.6},{kind} camera {i}-{j}\n",
                    y, x
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_files_are_what_the_generator_writes() {
        let bundled = include_str!("../../config/demo/wards.geojson");
        assert!(
            bundled == wards_geojson(),
            "config/demo/wards.geojson is stale: run `cargo run -- wards demo-city config/demo`"
        );
        let cams = include_str!("../../config/demo/cameras.csv");
        assert!(cams == cameras_csv(), "config/demo/cameras.csv is stale");
        let reformed = include_str!("../../config/demo/wards-reformed.geojson");
        assert!(
            reformed == reformed_wards_geojson(),
            "config/demo/wards-reformed.geojson is stale"
        );
    }

    #[test]
    fn the_reform_merges_wards_into_fewer_units_covering_the_same_city() {
        let (old, new) = (wards(), reformed_wards());
        assert!(
            new.len() * 3 < old.len(),
            "{} units from {}",
            new.len(),
            old.len()
        );
        let report = crate::check::check(&new, 1.0);
        assert!(report.overlaps.is_empty(), "{:?}", report.overlaps);
        assert!(report.gaps.is_empty(), "{:?}", report.gaps);
        assert!(report.invalid.is_empty(), "{:?}", report.invalid);
        assert!(report.duplicate_ids.is_empty());
        // Every camera of the old city is in a unit of the new one.
        let index = crate::WardIndex::build(new, crate::BuildOptions::default());
        for line in cameras_csv().lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let (lat, lon): (f64, f64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            assert!(index.locate(lon, lat).ward.is_some(), "{line}");
        }
    }

    #[test]
    fn the_city_is_big_clean_and_not_rectangular() {
        let wards = wards();
        assert!(wards.len() >= 150, "{} wards", wards.len());
        let report = crate::check::check(&wards, 1.0);
        assert!(report.overlaps.is_empty(), "{:?}", report.overlaps);
        assert!(report.gaps.is_empty(), "{:?}", report.gaps);
        assert!(report.invalid.is_empty(), "{:?}", report.invalid);
        assert!(report.duplicate_ids.is_empty());
        // Every ward boundary has many vertices, not four corners.
        assert!(wards
            .iter()
            .filter(|w| !w.name.contains("enclave"))
            .all(|w| w.geometry.0[0].exterior().0.len() > 20));
    }
}
