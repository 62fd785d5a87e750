//! The ward assignment rule: which ward a point belongs to, stated once. [`crate::index`]
//! answers it fast, [`crate::brute`] answers it the obvious way; both build on what is here.
//!
//! # The rule
//! For a point p, with tolerance `t` (metres) and fallback distance `d` (metres):
//! 1. If some ward edge lies within `t` of p, p is **on a boundary**. Among the wards whose edges
//!    touch p, choose the lowest-ordered ward that also contains p (by the crossing test below);
//!    if none contains it, the lowest-ordered touching ward.
//! 2. Otherwise, if exactly one ward contains p: that ward (**inside**). A point in a hole is not
//!    contained by the ward with the hole.
//! 3. If several wards contain p (overlapping polygons in dirty data): the lowest-ordered one,
//!    flagged **overlap**.
//! 4. If none contains p: the ward with the nearest edge if that edge is within `d`
//!    (**nearest**, ties to the lowest-ordered ward), otherwise **unassigned**.
//!
//! "Contains" is the even-odd crossing test of a ray towards +x over every ring of the ward, with
//! the half-open rule on y. Wards are ordered by id, numerically when both ids are integers.
//! Distances are taken on the local tangent plane of the WGS84 ellipsoid at p ([`geodesy`]).
//!
//! [`geodesy`]: crate::geodesy

use geo::MultiPolygon;
use ioc_schema::AssignRule;

use crate::geodesy::Seg;

/// One ward: id, name and shape in lon/lat degrees.
#[derive(Debug, Clone)]
pub struct Ward {
    pub id: String,
    pub name: String,
    pub geometry: MultiPolygon<f64>,
}

impl From<ioc_schema::boundary::WardFeature> for Ward {
    fn from(f: ioc_schema::boundary::WardFeature) -> Self {
        Ward {
            id: f.id,
            name: f.name,
            geometry: f.geometry,
        }
    }
}

/// Knobs of the rule and of the grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Boundary tolerance `t` in metres.
    pub tolerance_m: f64,
    /// Nearest-ward fallback distance `d` in metres (0 disables the fallback).
    pub nearest_max_m: f64,
    /// Grid cells per ward edge; more cells mean fewer mixed cells and more memory.
    pub cells_per_edge: f64,
    /// Upper bound on grid cells (4 bytes each).
    pub max_cells: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            tolerance_m: 0.5,
            nearest_max_m: 50.0,
            cells_per_edge: 24.0,
            max_cells: 1 << 24,
        }
    }
}

/// The result of a lookup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Index of the ward in [`crate::WardIndex::wards`].
    pub ward: Option<u32>,
    pub rule: AssignRule,
    /// Distance to the chosen ward's nearest edge, for [`AssignRule::Nearest`].
    pub distance_m: Option<f64>,
}

impl Outcome {
    pub const UNASSIGNED: Outcome = Outcome {
        ward: None,
        rule: AssignRule::Unassigned,
        distance_m: None,
    };
}

/// Orders ward ids numerically when both are integers, otherwise as strings.
pub fn ward_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// Every edge of every ring of a ward, in lon/lat.
pub(crate) fn ward_segments(geometry: &MultiPolygon<f64>) -> impl Iterator<Item = Seg> + '_ {
    geometry.0.iter().flat_map(|poly| {
        std::iter::once(poly.exterior())
            .chain(poly.interiors())
            .flat_map(|ring| {
                ring.lines().filter(|l| l.start != l.end).map(|l| Seg {
                    x1: l.start.x,
                    y1: l.start.y,
                    x2: l.end.x,
                    y2: l.end.y,
                })
            })
    })
}

/// Steps 1 to 3 of the rule, given which wards touch the point and which contain it. `None`
/// means step 4 (nearest or unassigned) decides.
pub(crate) fn decide(touching: &[u32], inside: &[u32]) -> Option<(u32, AssignRule)> {
    if !touching.is_empty() {
        let chosen = touching
            .iter()
            .filter(|w| inside.contains(w))
            .min()
            .or_else(|| touching.iter().min())
            .copied()?;
        return Some((chosen, AssignRule::Boundary));
    }
    match inside {
        [] => None,
        [w] => Some((*w, AssignRule::Inside)),
        many => many.iter().min().map(|w| (*w, AssignRule::Overlap)),
    }
}
