//! The ward index: a fast implementation of the rule in [`crate::rule`].
//!
//! # The index
//! A uniform grid (cells about square in metres) covers the wards' extent plus `d`. Each cell is
//! classified once at build time:
//! - *interior*: inside exactly one ward and farther than `t` from every edge; answered with no
//!   geometry at all (most lookups);
//! - *far*: inside no ward and farther than `d` from every edge: unassigned at once;
//! - *near*: inside no ward, no edge within `t`, but edges within `d`: nearest-edge search in an
//!   R-tree of edge envelopes;
//! - *mixed*: some edge within `t` of the cell; the cell keeps its own edge list (for the boundary
//!   test) and its candidate wards, each either known to contain the whole cell or to be tested
//!   with the ward's banded edge list.
//!
//! Every shortcut is conservative, so the index gives exactly the answer of [`crate::brute`],
//! which evaluates the same rule over every edge; the property tests check that.
//!
//! [`geodesy`]: crate::geodesy

use geo::{BoundingRect, MultiPolygon};
use ioc_schema::AssignRule;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

use crate::geodesy::{metres_per_degree, min_metres_per_degree_lat, Seg};
use crate::rule::{decide, ward_segments};
pub use crate::rule::{ward_order, BuildOptions, Outcome, Ward};

const FAR: u32 = 0;
const NEAR: u32 = 1;
const INTERIOR_BASE: u32 = 2;
const MIXED_BIT: u32 = 1 << 31;
/// Flag on a mixed cell's candidate ward: it contains the whole cell, no test needed.
const CERTAIN_BIT: u32 = 1 << 31;
/// Block code meaning "look at the individual cells".
const REFINE: u32 = u32::MAX;
/// log2 of the block side, in cells.
const BLOCK_SHIFT: usize = 3;
/// Slack added to every conservative expansion, far above floating-point error in degrees.
const EPS_DEG: f64 = 1e-9;

/// Per-ward edges in horizontal bands, for the crossing test of one ward.
#[derive(Debug, Clone, Default)]
struct Bands {
    y0: f64,
    y1: f64,
    inv_h: f64,
    n: usize,
    start: Vec<u32>,
    segs: Vec<u32>,
}

impl Bands {
    #[inline]
    fn band(&self, y: f64) -> usize {
        (((y - self.y0) * self.inv_h) as usize).min(self.n - 1)
    }

    fn build(seg_ids: &[u32], segs: &[Seg]) -> Bands {
        if seg_ids.is_empty() {
            return Bands::default();
        }
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for &s in seg_ids {
            let s = &segs[s as usize];
            y0 = y0.min(s.y1.min(s.y2));
            y1 = y1.max(s.y1.max(s.y2));
        }
        let n = (seg_ids.len() / 4).max(1);
        let h = ((y1 - y0) / n as f64).max(f64::MIN_POSITIVE);
        let mut b = Bands {
            y0,
            y1,
            inv_h: 1.0 / h,
            n,
            start: vec![0; n + 1],
            segs: Vec::new(),
        };
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(seg_ids.len() * 2);
        for &id in seg_ids {
            let s = &segs[id as usize];
            // The band formula is monotone in y, so any y within the segment's range falls in a
            // band between these two.
            let lo = b.band(s.y1.min(s.y2));
            let hi = b.band(s.y1.max(s.y2));
            for band in lo..=hi {
                pairs.push((band as u32, id));
            }
        }
        pairs.sort_unstable();
        for &(band, _) in &pairs {
            b.start[band as usize + 1] += 1;
        }
        for i in 0..n {
            b.start[i + 1] += b.start[i];
        }
        b.segs = pairs.into_iter().map(|(_, id)| id).collect();
        b
    }

    #[inline]
    fn contains(&self, px: f64, py: f64, segs: &[Seg]) -> bool {
        if self.n == 0 || !(py >= self.y0 && py <= self.y1) {
            return false;
        }
        let b = self.band(py);
        let mut inside = false;
        for &s in &self.segs[self.start[b] as usize..self.start[b + 1] as usize] {
            inside ^= segs[s as usize].ray_crosses(px, py);
        }
        inside
    }

    fn heap_bytes(&self) -> usize {
        (self.start.capacity() + self.segs.capacity()) * 4
    }
}

#[derive(Debug, Clone, Copy)]
struct Grid {
    x0: f64,
    y0: f64,
    /// Cell size in degrees.
    dx: f64,
    dy: f64,
    inv_dx: f64,
    inv_dy: f64,
    nx: usize,
    ny: usize,
}

impl Grid {
    /// Column and row of the cell holding a point, if the grid covers it.
    #[inline]
    fn cell(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        let fx = (x - self.x0) * self.inv_dx;
        let fy = (y - self.y0) * self.inv_dy;
        // Written so that NaN fails the test.
        if !(fx >= 0.0 && fy >= 0.0 && fx < self.nx as f64 && fy < self.ny as f64) {
            return None;
        }
        Some((fx as usize, fy as usize))
    }

    fn col(&self, x: f64) -> usize {
        (((x - self.x0) * self.inv_dx).max(0.0) as usize).min(self.nx - 1)
    }

    fn row(&self, y: f64) -> usize {
        (((y - self.y0) * self.inv_dy).max(0.0) as usize).min(self.ny - 1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Mixed {
    wards: (u32, u32),
    segs: (u32, u32),
}

/// Ward lookup index; see the module documentation for the rule it implements.
pub struct WardIndex {
    wards: Vec<Ward>,
    opts: BuildOptions,
    segs: Vec<Seg>,
    seg_ward: Vec<u32>,
    bands: Vec<Bands>,
    grid: Grid,
    cells: Vec<u32>,
    /// One entry per block of `BLOCK`×`BLOCK` cells: the block's code when all its cells share
    /// it, else [`REFINE`]. Small enough to stay in cache, so most lookups never touch `cells`.
    blocks: Vec<u32>,
    blocks_nx: usize,
    mixed: Vec<Mixed>,
    mixed_wards: Vec<u32>,
    mixed_segs: Vec<u32>,
    seg_tree: RTree<GeomWithData<Rectangle<[f64; 2]>, u32>>,
}

/// A small set of ward indices without allocation; `None` from `insert` means it is full.
struct Few {
    buf: [u32; 16],
    len: usize,
}

impl Few {
    fn new() -> Few {
        Few {
            buf: [0; 16],
            len: 0,
        }
    }
    fn insert(&mut self, w: u32) -> Option<()> {
        if self.as_slice().contains(&w) {
            return Some(());
        }
        if self.len == self.buf.len() {
            return None;
        }
        self.buf[self.len] = w;
        self.len += 1;
        Some(())
    }
    fn as_slice(&self) -> &[u32] {
        &self.buf[..self.len]
    }
}

impl WardIndex {
    /// Builds the index. Wards are reordered by id (see [`ward_order`]).
    pub fn build(mut wards: Vec<Ward>, opts: BuildOptions) -> WardIndex {
        wards.sort_by(|a, b| ward_order(&a.id, &b.id));
        let mut segs = Vec::new();
        let mut seg_ward = Vec::new();
        let mut per_ward: Vec<Vec<u32>> = Vec::with_capacity(wards.len());
        for (w, ward) in wards.iter().enumerate() {
            let mut ids = Vec::new();
            for s in ward_segments(&ward.geometry) {
                ids.push(segs.len() as u32);
                segs.push(s);
                seg_ward.push(w as u32);
            }
            per_ward.push(ids);
        }
        let boxes: Vec<_> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                GeomWithData::new(
                    Rectangle::from_corners([s.x1, s.y1], [s.x2, s.y2]),
                    i as u32,
                )
            })
            .collect();
        // The edge tree (for the nearest-ward fallback) is built on another core meanwhile:
        // nothing below needs it.
        std::thread::scope(|scope| {
            let tree = scope.spawn(move || RTree::bulk_load(boxes));
            let mut index = WardIndex::assemble(wards, opts, segs, seg_ward, &per_ward);
            index.build_grid();
            index.seg_tree = tree.join().expect("building the edge tree panicked");
            index
        })
    }

    fn assemble(
        wards: Vec<Ward>,
        opts: BuildOptions,
        segs: Vec<Seg>,
        seg_ward: Vec<u32>,
        per_ward: &[Vec<u32>],
    ) -> WardIndex {
        let bands = per_ward
            .iter()
            .map(|ids| Bands::build(ids, &segs))
            .collect();
        WardIndex {
            wards,
            opts,
            segs,
            seg_ward,
            bands,
            grid: Grid {
                x0: 0.0,
                y0: 0.0,
                dx: 1.0,
                dy: 1.0,
                inv_dx: 1.0,
                inv_dy: 1.0,
                nx: 0,
                ny: 0,
            },
            cells: Vec::new(),
            blocks: Vec::new(),
            blocks_nx: 0,
            mixed: Vec::new(),
            mixed_wards: Vec::new(),
            mixed_segs: Vec::new(),
            seg_tree: RTree::new(),
        }
    }

    /// The wards, in index order (the order [`Outcome::ward`] refers to).
    pub fn wards(&self) -> &[Ward] {
        &self.wards
    }

    pub fn options(&self) -> BuildOptions {
        self.opts
    }

    /// Total number of ward edges.
    pub fn edge_count(&self) -> usize {
        self.segs.len()
    }

    /// Grid size `(columns, rows)` and the number of mixed cells.
    pub fn grid_stats(&self) -> (usize, usize, usize) {
        (self.grid.nx, self.grid.ny, self.mixed.len())
    }

    /// Approximate heap memory of the index, in bytes (geometry of the wards excluded).
    pub fn heap_bytes(&self) -> usize {
        self.segs.capacity() * std::mem::size_of::<Seg>()
            + self.seg_ward.capacity() * 4
            + self.bands.iter().map(Bands::heap_bytes).sum::<usize>()
            + self.cells.capacity() * 4
            + self.blocks.capacity() * 4
            + self.mixed.capacity() * std::mem::size_of::<Mixed>()
            + (self.mixed_wards.capacity() + self.mixed_segs.capacity()) * 4
            + self.seg_tree.size() * 48
    }

    pub(crate) fn segs(&self) -> &[Seg] {
        &self.segs
    }

    pub(crate) fn seg_ward(&self) -> &[u32] {
        &self.seg_ward
    }

    /// Degrees that certainly cover `metres` in x and y anywhere in the grid's latitude range.
    fn degrees_covering(&self, metres: f64, max_abs_lat: f64) -> (f64, f64) {
        let (kx, _) = metres_per_degree(max_abs_lat.min(89.9));
        let ky = min_metres_per_degree_lat();
        (metres / kx * 1.001 + EPS_DEG, metres / ky * 1.001 + EPS_DEG)
    }

    /// Classifies every grid cell (see the module documentation), in five passes.
    fn build_grid(&mut self) {
        let Some(max_abs_lat) = self.lay_out_grid() else {
            return;
        };
        let mut seg_lists = self.mark_mixed_cells(max_abs_lat);
        let center_in = self.mark_interior_cells(&mut seg_lists);
        self.list_mixed_candidates(&seg_lists, center_in);
        self.mark_near_cells(max_abs_lat);
        self.mixed_segs.shrink_to_fit();
        self.mixed_wards.shrink_to_fit();
        self.build_blocks();
    }

    /// Sizes the grid over the wards' extent plus the fallback distance, cells about square in
    /// metres; all cells start as far. Returns the latitude bound the degree margins are taken
    /// at, or `None` when there are no wards.
    fn lay_out_grid(&mut self) -> Option<f64> {
        let rect = MultiPolygon(
            self.wards
                .iter()
                .flat_map(|w| w.geometry.0.iter().cloned())
                .collect(),
        )
        .bounding_rect()?;
        let max_abs_lat = rect.min().y.abs().max(rect.max().y.abs()) + 1.0;
        let reach_m = self.opts.nearest_max_m.max(self.opts.tolerance_m);
        let (rx, ry) = self.degrees_covering(reach_m, max_abs_lat);
        let (x0, y0) = (rect.min().x - rx, rect.min().y - ry);
        let (x1, y1) = (rect.max().x + rx, rect.max().y + ry);
        let (kx, ky) = metres_per_degree((y0 + y1) / 2.0);
        let (w_m, h_m) = ((x1 - x0) * kx, (y1 - y0) * ky);
        let target = (self.segs.len() as f64 * self.opts.cells_per_edge)
            .clamp(1024.0, self.opts.max_cells as f64);
        let cell_m = (w_m * h_m / target).sqrt().max(1e-3);
        let nx = ((w_m / cell_m).ceil() as usize).max(1);
        let ny = ((h_m / cell_m).ceil() as usize).max(1);
        let (dx, dy) = ((x1 - x0) / nx as f64, (y1 - y0) / ny as f64);
        self.grid = Grid {
            x0,
            y0,
            dx,
            dy,
            inv_dx: 1.0 / dx,
            inv_dy: 1.0 / dy,
            nx,
            ny,
        };
        self.cells = vec![FAR; nx * ny];
        Some(max_abs_lat)
    }

    /// Pass 1, mixed cells: every cell with an edge within the tolerance, with its own edge list.
    /// Returns each mixed cell's range in `mixed_segs`.
    fn mark_mixed_cells(&mut self, max_abs_lat: f64) -> Vec<(u32, u32)> {
        let g = self.grid;
        let (x0, y0, dx, dy, nx) = (g.x0, g.y0, g.dx, g.dy, g.nx);
        let (tx, ty) = self.degrees_covering(self.opts.tolerance_m, max_abs_lat);
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for (id, s) in self.segs.iter().enumerate() {
            let (c0, c1) = (g.col(s.x1.min(s.x2) - tx), g.col(s.x1.max(s.x2) + tx));
            let (r0, r1) = (g.row(s.y1.min(s.y2) - ty), g.row(s.y1.max(s.y2) + ty));
            let small = c1 - c0 <= 1 && r1 - r0 <= 1;
            for r in r0..=r1 {
                for c in c0..=c1 {
                    let cx0 = x0 + c as f64 * dx - tx - EPS_DEG;
                    let cy0 = y0 + r as f64 * dy - ty - EPS_DEG;
                    if small
                        || segment_meets_rect(
                            s,
                            cx0,
                            cy0,
                            cx0 + dx + 2.0 * (tx + EPS_DEG),
                            cy0 + dy + 2.0 * (ty + EPS_DEG),
                        )
                    {
                        pairs.push(((r * nx + c) as u32, id as u32));
                    }
                }
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut seg_lists: Vec<(u32, u32)> = Vec::new();
        let mut i = 0;
        while i < pairs.len() {
            let cell = pairs[i].0;
            let start = self.mixed_segs.len() as u32;
            while i < pairs.len() && pairs[i].0 == cell {
                self.mixed_segs.push(pairs[i].1);
                i += 1;
            }
            self.cells[cell as usize] = MIXED_BIT | seg_lists.len() as u32;
            seg_lists.push((start, self.mixed_segs.len() as u32));
        }
        seg_lists
    }

    /// Pass 2, interior cells: scans each row's centre line; a cell with no edge near it is wholly
    /// inside or outside each ward, as its centre is. Returns the wards containing each mixed
    /// cell's centre, `(mixed id, ward)`; a cell two wards cover becomes mixed (overlap).
    fn mark_interior_cells(&mut self, seg_lists: &mut Vec<(u32, u32)>) -> Vec<(u32, u32)> {
        let g = self.grid;
        let (x0, y0, dy, nx, ny) = (g.x0, g.y0, g.dy, g.nx, g.ny);
        let dx = g.dx;
        let mut crossings: Vec<(u32, u32, f64)> = Vec::new();
        for (id, s) in self.segs.iter().enumerate() {
            let w = self.seg_ward[id];
            let r0 = g.row(s.y1.min(s.y2)).saturating_sub(1);
            let r1 = (g.row(s.y1.max(s.y2)) + 1).min(ny - 1);
            for r in r0..=r1 {
                let yc = y0 + (r as f64 + 0.5) * dy;
                if (s.y1 > yc) != (s.y2 > yc) {
                    let xi = s.x1 + (yc - s.y1) * (s.x2 - s.x1) / (s.y2 - s.y1);
                    crossings.push((r as u32, w, xi));
                }
            }
        }
        crossings.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
        let mut center_in: Vec<(u32, u32)> = Vec::new(); // (mixed id, ward)
        for run in crossings.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
            let (r, w) = (run[0].0 as usize, run[0].1);
            for pair in run.chunks_exact(2) {
                let (xa, xb) = (pair[0].2, pair[1].2);
                // Centres x0 + (c + 0.5) dx with xa <= centre < xb; a cell with a centre that
                // lies on the crossing is mixed anyway (the edge passes through it).
                let c_lo = (((xa - x0) * g.inv_dx - 0.5).ceil().max(0.0)) as usize;
                let mut c = c_lo.saturating_sub(1);
                while c < nx {
                    let xc = x0 + (c as f64 + 0.5) * dx;
                    if xc >= xb {
                        break;
                    }
                    if xc >= xa {
                        let cell = r * nx + c;
                        let code = self.cells[cell];
                        if code & MIXED_BIT != 0 {
                            center_in.push((code & !MIXED_BIT, w));
                        } else if code == FAR {
                            self.cells[cell] = INTERIOR_BASE + w;
                        } else {
                            // Two wards both cover this cell: overlapping polygons.
                            let m = seg_lists.len() as u32;
                            seg_lists.push((0, 0));
                            center_in.push((m, code - INTERIOR_BASE));
                            center_in.push((m, w));
                            self.cells[cell] = MIXED_BIT | m;
                        }
                    }
                    c += 1;
                }
            }
        }
        center_in
    }

    /// Pass 3, candidate wards of mixed cells: wards with edges there (tested per point) and
    /// wards that cover the whole cell (certain).
    fn list_mixed_candidates(&mut self, seg_lists: &[(u32, u32)], mut center_in: Vec<(u32, u32)>) {
        center_in.sort_unstable();
        center_in.dedup();
        let mut ci = 0;
        for (m, &(s0, s1)) in seg_lists.iter().enumerate() {
            let start = self.mixed_wards.len() as u32;
            let mut tested: Vec<u32> = self.mixed_segs[s0 as usize..s1 as usize]
                .iter()
                .map(|&s| self.seg_ward[s as usize])
                .collect();
            tested.sort_unstable();
            tested.dedup();
            self.mixed_wards.extend(&tested);
            while ci < center_in.len() && center_in[ci].0 < m as u32 {
                ci += 1;
            }
            while ci < center_in.len() && center_in[ci].0 == m as u32 {
                let w = center_in[ci].1;
                if tested.binary_search(&w).is_err() {
                    self.mixed_wards.push(w | CERTAIN_BIT);
                }
                ci += 1;
            }
            self.mixed.push(Mixed {
                wards: (start, self.mixed_wards.len() as u32),
                segs: (s0, s1),
            });
        }
    }

    /// Pass 4, near cells: outside every ward but possibly within the fallback distance of an
    /// edge.
    fn mark_near_cells(&mut self, max_abs_lat: f64) {
        let g = self.grid;
        let nx = g.nx;
        if self.opts.nearest_max_m > 0.0 {
            let (nx_deg, ny_deg) = self.degrees_covering(self.opts.nearest_max_m, max_abs_lat);
            for s in &self.segs {
                let (c0, c1) = (
                    g.col(s.x1.min(s.x2) - nx_deg),
                    g.col(s.x1.max(s.x2) + nx_deg),
                );
                let (r0, r1) = (
                    g.row(s.y1.min(s.y2) - ny_deg),
                    g.row(s.y1.max(s.y2) + ny_deg),
                );
                for r in r0..=r1 {
                    for cell in &mut self.cells[r * nx + c0..=r * nx + c1] {
                        if *cell == FAR {
                            *cell = NEAR;
                        }
                    }
                }
            }
        }
    }

    /// Pass 5, blocks: uniform groups of cells answered from a small table.
    fn build_blocks(&mut self) {
        let (nx, ny) = (self.grid.nx, self.grid.ny);
        let bnx = nx.div_ceil(1 << BLOCK_SHIFT);
        let bny = ny.div_ceil(1 << BLOCK_SHIFT);
        self.blocks_nx = bnx;
        self.blocks = vec![REFINE; bnx * bny];
        for br in 0..bny {
            for bc in 0..bnx {
                let rows = (br << BLOCK_SHIFT)..((br + 1) << BLOCK_SHIFT).min(ny);
                let cols = (bc << BLOCK_SHIFT)..((bc + 1) << BLOCK_SHIFT).min(nx);
                let first = self.cells[rows.start * nx + cols.start];
                let uniform = first & MIXED_BIT == 0
                    && rows.clone().all(|r| {
                        self.cells[r * nx + cols.start..r * nx + cols.end]
                            .iter()
                            .all(|&c| c == first)
                    });
                if uniform {
                    self.blocks[br * bnx + bc] = first;
                }
            }
        }
    }

    /// Assigns a point (longitude, latitude in degrees) by the rule in the module documentation.
    #[inline]
    pub fn locate(&self, lon: f64, lat: f64) -> Outcome {
        let Some((col, row)) = self.grid.cell(lon, lat) else {
            return Outcome::UNASSIGNED;
        };
        let block = self.blocks[(row >> BLOCK_SHIFT) * self.blocks_nx + (col >> BLOCK_SHIFT)];
        let code = if block != REFINE {
            block
        } else {
            self.cells[row * self.grid.nx + col]
        };
        if code >= INTERIOR_BASE && code & MIXED_BIT == 0 {
            return Outcome {
                ward: Some(code - INTERIOR_BASE),
                rule: AssignRule::Inside,
                distance_m: None,
            };
        }
        match code {
            FAR => Outcome::UNASSIGNED,
            NEAR => self.nearest(lon, lat),
            _ => self.locate_mixed(&self.mixed[(code & !MIXED_BIT) as usize], lon, lat),
        }
    }

    fn locate_mixed(&self, m: &Mixed, px: f64, py: f64) -> Outcome {
        let (kx, ky) = metres_per_degree(py);
        let tol = self.opts.tolerance_m;
        let mut touching = Few::new();
        for &s in &self.mixed_segs[m.segs.0 as usize..m.segs.1 as usize] {
            if self.segs[s as usize].distance_m(px, py, kx, ky) <= tol
                && touching.insert(self.seg_ward[s as usize]).is_none()
            {
                return crate::brute::locate(self, px, py);
            }
        }
        let mut inside = Few::new();
        for &w in &self.mixed_wards[m.wards.0 as usize..m.wards.1 as usize] {
            let ward = w & !CERTAIN_BIT;
            let contains =
                w & CERTAIN_BIT != 0 || self.bands[ward as usize].contains(px, py, &self.segs);
            if contains && inside.insert(ward).is_none() {
                return crate::brute::locate(self, px, py);
            }
        }
        match decide(touching.as_slice(), inside.as_slice()) {
            Some((ward, rule)) => Outcome {
                ward: Some(ward),
                rule,
                distance_m: None,
            },
            None => self.nearest(px, py),
        }
    }

    /// Step 4 of the rule: the ward with the nearest edge within the fallback distance.
    fn nearest(&self, px: f64, py: f64) -> Outcome {
        let max = self.opts.nearest_max_m;
        if max <= 0.0 {
            return Outcome::UNASSIGNED;
        }
        let (kx, ky) = metres_per_degree(py);
        let (rx, ry) = (max / kx * 1.001 + EPS_DEG, max / ky * 1.001 + EPS_DEG);
        let env = AABB::from_corners([px - rx, py - ry], [px + rx, py + ry]);
        let mut best: Option<(f64, u32)> = None;
        for item in self.seg_tree.locate_in_envelope_intersecting(&env) {
            let d = self.segs[item.data as usize].distance_m(px, py, kx, ky);
            let w = self.seg_ward[item.data as usize];
            if d <= max && best.is_none_or(|(bd, bw)| d < bd || (d == bd && w < bw)) {
                best = Some((d, w));
            }
        }
        match best {
            Some((d, w)) => Outcome {
                ward: Some(w),
                rule: AssignRule::Nearest,
                distance_m: Some(d),
            },
            None => Outcome::UNASSIGNED,
        }
    }

    /// Whether ward `w` contains the point by the crossing test (no tolerance).
    pub fn ward_contains(&self, w: u32, px: f64, py: f64) -> bool {
        self.bands[w as usize].contains(px, py, &self.segs)
    }
}

/// Whether a segment meets an axis-aligned rectangle (Liang–Barsky clipping).
fn segment_meets_rect(s: &Seg, xmin: f64, ymin: f64, xmax: f64, ymax: f64) -> bool {
    let (dx, dy) = (s.x2 - s.x1, s.y2 - s.y1);
    let mut t0 = 0.0f64;
    let mut t1 = 1.0f64;
    for (p, q) in [
        (-dx, s.x1 - xmin),
        (dx, xmax - s.x1),
        (-dy, s.y1 - ymin),
        (dy, ymax - s.y1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{brute, demo};
    use geo::{Coord, LineString, Polygon};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn demo_index() -> &'static WardIndex {
        static INDEX: OnceLock<WardIndex> = OnceLock::new();
        INDEX.get_or_init(|| WardIndex::build(demo::wards(), BuildOptions::default()))
    }

    /// The demo city plus a ward that overlaps two others, to exercise the overlap rule.
    fn dirty_index() -> &'static WardIndex {
        static INDEX: OnceLock<WardIndex> = OnceLock::new();
        INDEX.get_or_init(|| {
            let mut wards = demo::wards();
            let (x, y) = demo::CENTRE;
            let square = LineString::from(vec![
                (x - 0.02, y - 0.002),
                (x - 0.01, y - 0.002),
                (x - 0.01, y + 0.004),
                (x - 0.02, y + 0.004),
                (x - 0.02, y - 0.002),
            ]);
            wards.push(Ward {
                id: "Z-overlap".into(),
                name: "overlapping".into(),
                geometry: MultiPolygon(vec![Polygon::new(square, vec![])]),
            });
            WardIndex::build(
                wards,
                BuildOptions {
                    cells_per_edge: 4.0,
                    ..BuildOptions::default()
                },
            )
        })
    }

    fn all_vertices(index: &WardIndex) -> Vec<Coord<f64>> {
        index
            .segs()
            .iter()
            .map(|s| Coord { x: s.x1, y: s.y1 })
            .collect()
    }

    #[test]
    fn a_cell_centre_far_from_edges_is_inside_its_ward() {
        let index = demo_index();
        let (x, y) = demo::CENTRE;
        // The centre of the city is in the enclave (a hole of its host ward).
        let o = index.locate(x + 0.003, y + 0.003);
        assert_eq!(o.rule, AssignRule::Inside);
        let w = &index.wards()[o.ward.unwrap() as usize];
        assert!(w.name.contains("enclave"), "{}", w.name);
    }

    #[test]
    fn far_outside_is_unassigned_and_just_outside_is_nearest() {
        let index = demo_index();
        assert_eq!(index.locate(0.0, 0.0), Outcome::UNASSIGNED);
        assert_eq!(index.locate(f64::NAN, 20.5), Outcome::UNASSIGNED);
        // Walk east from the centre until leaving the city; 20 m beyond the last ward edge the
        // nearest rule applies, 200 m beyond nothing does.
        let (x, y) = demo::CENTRE;
        let mut lon = x;
        while index.locate(lon, y).rule != AssignRule::Unassigned && lon < x + 0.2 {
            lon += 0.00001;
        }
        let (kx, _) = metres_per_degree(y);
        let back = index.locate(lon - 30.0 / kx, y);
        assert!(matches!(
            back.rule,
            AssignRule::Nearest | AssignRule::Boundary | AssignRule::Inside
        ));
        assert_eq!(
            index.locate(lon + 200.0 / kx, y).rule,
            AssignRule::Unassigned
        );
    }

    #[test]
    fn every_vertex_is_on_a_boundary() {
        let index = demo_index();
        for v in all_vertices(index).into_iter().step_by(7) {
            let o = index.locate(v.x, v.y);
            assert_eq!(o.rule, AssignRule::Boundary, "{v:?}");
            assert_eq!(o, brute::locate(index, v.x, v.y));
        }
    }

    #[test]
    fn overlaps_choose_the_lowest_id_and_say_so() {
        let index = dirty_index();
        let (x, y) = demo::CENTRE;
        let o = index.locate(x - 0.015, y + 0.001);
        let b = brute::locate(index, x - 0.015, y + 0.001);
        assert_eq!(o, b);
        if o.rule != AssignRule::Boundary {
            assert_eq!(o.rule, AssignRule::Overlap);
            assert_ne!(index.wards()[o.ward.unwrap() as usize].id, "Z-overlap");
        }
    }

    fn point_strategy(index: &'static WardIndex) -> impl Strategy<Value = (f64, f64)> {
        let verts = all_vertices(index);
        let segs = index.segs().to_vec();
        let (x, y) = demo::CENTRE;
        let n = verts.len();
        let m = segs.len();
        prop_oneof![
            // Anywhere around the city, including well outside it.
            (x - 0.07..x + 0.07, y - 0.06..y + 0.06),
            // Exactly on a vertex.
            (0..n).prop_map(move |i| (verts[i].x, verts[i].y)),
            // On an edge, or a little off it on either side (within and beyond the tolerance).
            (0..m, 0.0..1.0f64, -2e-5..2e-5f64).prop_map(move |(i, t, off)| {
                let s = segs[i];
                (
                    s.x1 + t * (s.x2 - s.x1) + off,
                    s.y1 + t * (s.y2 - s.y1) - off,
                )
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn fast_path_equals_brute_force((x, y) in point_strategy(demo_index())) {
            let index = demo_index();
            prop_assert_eq!(index.locate(x, y), brute::locate(index, x, y));
        }

        #[test]
        fn fast_path_equals_brute_force_with_overlaps((x, y) in point_strategy(dirty_index())) {
            let index = dirty_index();
            prop_assert_eq!(index.locate(x, y), brute::locate(index, x, y));
        }
    }

    #[test]
    fn points_in_the_hole_belong_to_the_enclave_not_the_host() {
        let index = demo_index();
        let enclave = index
            .wards()
            .iter()
            .position(|w| w.name.contains("enclave"))
            .unwrap() as u32;
        let host = (0..index.wards().len() as u32)
            .find(|&w| {
                w != enclave && index.wards()[w as usize].geometry.0[0].interiors().len() == 1
            })
            .unwrap();
        let (x, y) = demo::CENTRE;
        let (px, py) = (x + 0.003, y + 0.003);
        assert!(index.ward_contains(enclave, px, py));
        assert!(!index.ward_contains(host, px, py));
    }
}
