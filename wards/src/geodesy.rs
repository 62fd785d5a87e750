//! Distances in metres on the WGS84 ellipsoid, computed on the local tangent plane at the query
//! point. Over the short ranges the router cares about (tolerances of centimetres to a few hundred
//! metres) this agrees with the geodesic distance to better than one part in ten thousand.

const A: f64 = 6_378_137.0;
const E2: f64 = 6.694_379_990_14e-3;

/// Metres per degree of longitude and of latitude at a latitude (degrees).
#[inline]
pub fn metres_per_degree(lat: f64) -> (f64, f64) {
    let phi = lat.to_radians();
    let s = phi.sin();
    let w2 = 1.0 - E2 * s * s;
    let w = w2.sqrt();
    let n = A / w; // prime-vertical radius of curvature
    let m = A * (1.0 - E2) / (w2 * w); // meridional radius of curvature
    let k = std::f64::consts::PI / 180.0;
    (n * phi.cos() * k, m * k)
}

/// Smallest metres-per-degree of latitude anywhere (at the equator).
pub fn min_metres_per_degree_lat() -> f64 {
    metres_per_degree(0.0).1
}

/// A segment in lon/lat degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seg {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl Seg {
    /// Distance in metres from `(px, py)` to the segment, given the point's metres per degree.
    #[inline]
    pub fn distance_m(&self, px: f64, py: f64, kx: f64, ky: f64) -> f64 {
        let ax = (self.x1 - px) * kx;
        let ay = (self.y1 - py) * ky;
        let bx = (self.x2 - px) * kx;
        let by = (self.y2 - py) * ky;
        let dx = bx - ax;
        let dy = by - ay;
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (-(ax * dx + ay * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cx = ax + t * dx;
        let cy = ay + t * dy;
        (cx * cx + cy * cy).sqrt()
    }

    /// Whether a ray from `(px, py)` towards +x crosses the segment, with the half-open rule on y
    /// so that a ray through a shared vertex counts exactly one of its two edges.
    #[inline]
    pub fn ray_crosses(&self, px: f64, py: f64) -> bool {
        if (self.y1 > py) != (self.y2 > py) {
            let xi = self.x1 + (py - self.y1) * (self.x2 - self.x1) / (self.y2 - self.y1);
            px < xi
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degree_lengths_match_known_values() {
        // One degree of latitude is about 110.57 km at the equator and 111.69 km at the poles.
        let (_, ky0) = metres_per_degree(0.0);
        assert!((ky0 - 110_574.0).abs() < 2.0, "{ky0}");
        // One degree of longitude at 41.88° N (Chicago) is about 83.0 km.
        let (kx, _) = metres_per_degree(41.88);
        assert!((kx - 83_000.0).abs() < 200.0, "{kx}");
    }

    #[test]
    fn distance_to_segment_uses_the_closest_point() {
        let s = Seg {
            x1: 0.0,
            y1: 0.0,
            x2: 0.001,
            y2: 0.0,
        };
        let (kx, ky) = metres_per_degree(0.0);
        let d = s.distance_m(0.0005, 0.00001, kx, ky);
        assert!((d - 0.00001 * ky).abs() < 1e-9);
        let end = s.distance_m(0.002, 0.0, kx, ky);
        assert!((end - 0.001 * kx).abs() < 1e-6);
    }
}
