//! The usual way to find a ward, kept as benchmark baselines: an R-tree of ward envelopes with
//! `geo::Contains` per candidate, and a naive scan of every ward. Neither implements the boundary
//! tolerance or the nearest-ward fallback; they answer "which polygon strictly contains p".

use geo::{BoundingRect, Contains, MultiPolygon, Point};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

/// R-tree over ward envelopes, then an exact `Contains` on each candidate.
pub struct EnvelopeRTree {
    polys: Vec<MultiPolygon<f64>>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl EnvelopeRTree {
    pub fn new(polys: Vec<MultiPolygon<f64>>) -> Self {
        let items = polys
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let r = p.bounding_rect()?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                ))
            })
            .collect();
        EnvelopeRTree {
            polys,
            tree: RTree::bulk_load(items),
        }
    }

    /// Lowest index of a polygon that contains the point.
    pub fn locate(&self, lon: f64, lat: f64) -> Option<usize> {
        let p = Point::new(lon, lat);
        self.tree
            .locate_all_at_point(&[lon, lat])
            .filter(|c| self.polys[c.data].contains(&p))
            .map(|c| c.data)
            .min()
    }
}

/// Tests every polygon in turn.
pub fn naive_scan(polys: &[MultiPolygon<f64>], lon: f64, lat: f64) -> Option<usize> {
    let p = Point::new(lon, lat);
    polys.iter().position(|poly| poly.contains(&p))
}
