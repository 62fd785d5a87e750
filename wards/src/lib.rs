//! Ward geometry: the exact assignment rule, a fast index that implements it, simple baselines
//! to compare against, time-versioned boundary sets with their live reload, and the
//! boundary-file checker. Every stage that knows wards (the router routing by them, the
//! dashboard drawing and assigning them) uses the same sets, chosen by the same rule.
//!
//! - [`geodesy`]: metres per degree on the WGS84 ellipsoid and point-to-segment distance.
//! - [`rule`]: the assignment rule, stated once: wards, their order, outcomes, the decision.
//! - [`index`]: [`WardIndex`], a grid whose inner cells need no polygon test, with exact tests
//!   over a cell's own edges where boundaries pass.
//! - [`brute`]: the same rule evaluated over every edge, the reference for property tests.
//! - [`baseline`]: the usual tools (R-tree of envelopes + `geo::Contains`, naive scan) for benches.
//! - [`sets`]: boundary sets with validity periods, chosen by an event's time; [`SharedSets`]
//!   and [`watch`], which picks up new or changed sets without a restart.
//! - [`check`]: validation report for a boundary file (`ioc wards check`).
//! - [`demo`]: the generated demo city and its cameras.

pub mod baseline;
pub mod brute;
pub mod check;
pub mod demo;
pub mod geodesy;
pub mod index;
pub mod predecessors;
pub mod reform;
pub mod rule;
pub mod sets;

pub use index::WardIndex;
pub use rule::{BuildOptions, Outcome, Ward};
pub use sets::{watch, BoundarySet, BoundarySets, SharedSets};
