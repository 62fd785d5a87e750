//! Validation report for a boundary file (`ioc wards check`): what an operator needs to know
//! before trusting a ward map for routing.

use std::collections::HashMap;

use geo::orient::{Direction, Orient};
use geo::{
    Area, BooleanOps, BoundingRect, Centroid, Intersects, MultiPolygon, Validation, Winding,
};
use serde::Serialize;

use crate::geodesy::metres_per_degree;
use crate::rule::Ward;

/// Findings about a boundary file.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub features: usize,
    pub ids: Vec<String>,
    pub vertices: usize,
    pub duplicate_ids: Vec<String>,
    /// `(ward id, problem)` for invalid geometry: rings too short, self-intersections, ...
    pub invalid: Vec<(String, String)>,
    /// Wards with a clockwise exterior ring (accepted, but RFC 7946 asks for counter-clockwise).
    pub clockwise_exteriors: Vec<String>,
    /// Wards with coordinates that look like (lat, lon) instead of (lon, lat).
    pub swapped_coordinates: Vec<String>,
    /// Pairs of wards that overlap by more than the threshold, with the area in m².
    pub overlaps: Vec<Overlap>,
    /// Areas enclosed by wards but belonging to none (holes of their union), above the threshold.
    pub gaps: Vec<Gap>,
    pub total_area_m2: f64,
}

#[derive(Debug, Serialize)]
pub struct Overlap {
    pub a: String,
    pub b: String,
    pub area_m2: f64,
}

#[derive(Debug, Serialize)]
pub struct Gap {
    pub area_m2: f64,
    /// A point of the gap (lon, lat), to find it on a map.
    pub at: (f64, f64),
}

impl CheckReport {
    /// Whether nothing was found that would make routing wrong (clockwise rings are only noted).
    pub fn is_clean(&self) -> bool {
        self.duplicate_ids.is_empty()
            && self.invalid.is_empty()
            && self.swapped_coordinates.is_empty()
            && self.overlaps.is_empty()
            && self.gaps.is_empty()
    }
}

/// Area in m² of a lon/lat multipolygon (planar area scaled at its centroid's latitude; accurate
/// to well under 1 % for ward-sized shapes).
pub fn area_m2(mp: &MultiPolygon<f64>) -> f64 {
    let lat = mp.centroid().map(|c| c.y()).unwrap_or(0.0);
    let (kx, ky) = metres_per_degree(lat);
    mp.unsigned_area() * kx * ky
}

/// Checks wards; overlaps and gaps smaller than `min_area_m2` are ignored as slivers.
pub fn check(wards: &[Ward], min_area_m2: f64) -> CheckReport {
    let mut r = CheckReport {
        features: wards.len(),
        ..Default::default()
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for w in wards {
        r.ids.push(w.id.clone());
        *seen.entry(&w.id).or_default() += 1;
        r.vertices += w
            .geometry
            .0
            .iter()
            .map(|p| p.exterior().0.len() + p.interiors().iter().map(|i| i.0.len()).sum::<usize>())
            .sum::<usize>();
        for problem in w.geometry.validation_errors() {
            r.invalid.push((w.id.clone(), problem.to_string()));
        }
        if w.geometry.0.iter().any(|p| p.exterior().is_cw()) {
            r.clockwise_exteriors.push(w.id.clone());
        }
        if let Some(b) = w.geometry.bounding_rect() {
            if b.min().y < -90.0 || b.max().y > 90.0 {
                r.swapped_coordinates.push(w.id.clone());
            }
        }
        r.total_area_m2 += area_m2(&w.geometry);
    }
    let mut dups: Vec<String> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id.to_string())
        .collect();
    dups.sort();
    r.duplicate_ids = dups;

    let rects: Vec<_> = wards.iter().map(|w| w.geometry.bounding_rect()).collect();
    for i in 0..wards.len() {
        for j in i + 1..wards.len() {
            let (Some(a), Some(b)) = (rects[i], rects[j]) else {
                continue;
            };
            if !a.intersects(&b) {
                continue;
            }
            let inter = wards[i].geometry.intersection(&wards[j].geometry);
            let area = area_m2(&inter);
            if area > min_area_m2 {
                r.overlaps.push(Overlap {
                    a: wards[i].id.clone(),
                    b: wards[j].id.clone(),
                    area_m2: area,
                });
            }
        }
    }
    // Union with consistent ring orientation: some files wind holes like exteriors, and a
    // non-zero fill would then treat a hole as filled.
    let oriented: Vec<MultiPolygon<f64>> = wards
        .iter()
        .map(|w| w.geometry.orient(Direction::Default))
        .collect();
    let union = geo::unary_union(oriented.iter());
    for poly in &union.0 {
        for hole in poly.interiors() {
            let gap = MultiPolygon(vec![geo::Polygon::new(hole.clone(), vec![])]);
            let area = area_m2(&gap);
            if area > min_area_m2 {
                let at = gap.centroid().map(|c| (c.x(), c.y())).unwrap_or_default();
                r.gaps.push(Gap { area_m2: area, at });
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn ward(id: &str, poly: geo::Polygon<f64>) -> Ward {
        Ward {
            id: id.into(),
            name: id.into(),
            geometry: MultiPolygon(vec![poly]),
        }
    }

    #[test]
    fn finds_overlaps_gaps_duplicates_and_winding() {
        // Three squares around a 0.001° hole, one overlapping its neighbour, one clockwise.
        let a =
            polygon![(x: 0.0, y: 0.0), (x: 0.01, y: 0.0), (x: 0.01, y: 0.01), (x: 0.0, y: 0.01)];
        let b = polygon![(x: 0.009, y: 0.0), (x: 0.02, y: 0.0), (x: 0.02, y: 0.01), (x: 0.009, y: 0.01)];
        let ring_with_hole = geo::Polygon::new(
            geo::LineString::from(vec![(0.0, 0.01), (0.0, 0.02), (0.02, 0.02), (0.02, 0.01)]),
            vec![],
        );
        let wards = vec![
            ward("1", a.clone()),
            ward("2", b),
            ward("3", ring_with_hole),
            ward("1", a),
        ];
        let r = check(&wards, 1.0);
        assert_eq!(r.features, 4);
        assert_eq!(r.duplicate_ids, vec!["1".to_string()]);
        assert!(r
            .overlaps
            .iter()
            .any(|o| o.a == "1" && o.b == "2" && o.area_m2 > 1000.0));
        assert_eq!(r.clockwise_exteriors, vec!["3".to_string()]);
        assert!(!r.is_clean());
    }

    #[test]
    fn reports_holes_of_the_union_as_gaps() {
        let outer = geo::Polygon::new(
            geo::LineString::from(vec![(0.0, 0.0), (0.03, 0.0), (0.03, 0.03), (0.0, 0.03)]),
            vec![geo::LineString::from(vec![
                (0.01, 0.01),
                (0.02, 0.01),
                (0.02, 0.02),
                (0.01, 0.02),
            ])],
        );
        let r = check(&[ward("1", outer)], 1.0);
        assert_eq!(r.gaps.len(), 1);
        assert!((r.gaps[0].at.0 - 0.015).abs() < 1e-9);
        assert!(r.invalid.is_empty());
    }
}
