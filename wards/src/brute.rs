//! The assignment rule evaluated the slow, obvious way: every edge, every ward. It is the
//! reference the fast index is tested against, and the fallback for the rare point that touches
//! more wards than the fast path's fixed-size buffers hold.

use ioc_schema::AssignRule;

use crate::geodesy::metres_per_degree;
use crate::index::WardIndex;
use crate::rule::{decide, Outcome};

/// Assigns a point by brute force over `index`'s edges (its grid is not used).
pub fn locate(index: &WardIndex, px: f64, py: f64) -> Outcome {
    if !(px.is_finite() && py.is_finite()) {
        return Outcome::UNASSIGNED;
    }
    let opts = index.options();
    let (kx, ky) = metres_per_degree(py);
    let n = index.wards().len();
    let mut parity = vec![false; n];
    let mut touching = Vec::new();
    let mut best: Option<(f64, u32)> = None;
    for (s, w) in index.segs().iter().zip(index.seg_ward()) {
        parity[*w as usize] ^= s.ray_crosses(px, py);
        let d = s.distance_m(px, py, kx, ky);
        if d <= opts.tolerance_m && !touching.contains(w) {
            touching.push(*w);
        }
        if d <= opts.nearest_max_m && best.is_none_or(|(bd, bw)| d < bd || (d == bd && *w < bw)) {
            best = Some((d, *w));
        }
    }
    let inside: Vec<u32> = (0..n as u32).filter(|w| parity[*w as usize]).collect();
    if let Some((ward, rule)) = decide(&touching, &inside) {
        return Outcome {
            ward: Some(ward),
            rule,
            distance_m: None,
        };
    }
    match best {
        Some((d, w)) if opts.nearest_max_m > 0.0 => Outcome {
            ward: Some(w),
            rule: AssignRule::Nearest,
            distance_m: Some(d),
        },
        _ => Outcome::UNASSIGNED,
    }
}
