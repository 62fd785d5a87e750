//! The spatial router: consumes citizen reports and camera events, assigns each to the
//! responsible ward and unit, and writes incidents keyed by incident id.
//!
//! Delivery is at-least-once with deterministic ids: an input's offset is stored only after the
//! incident (or dead-letter record) it caused is acknowledged by the broker, in order, and an
//! incident is a pure function of its input, so a replay after a crash rewrites identical records.
//! Any number of router processes share the input partitions through one consumer group.
//!
//! Modules:
//! - [`wards`] (the `ioc-wards` crate): ward geometry, the assignment rule and its fast index,
//!   boundary sets and their live reload, checks.
//! - [`route`]: turning one input record into an incident or a dead-letter reason (pure).
//! - [`pipeline`]: the Kafka consume-route-produce loop and the router's HTTP endpoint.
//! - [`resends`]: a report written twice under one tracking id is routed once.
//! - [`assignments`]: the assignments topic, keyed by ward and incident, derived from the incident topic.

pub mod assignments;
pub mod pipeline;
pub mod resends;
pub mod route;
pub mod situations;
/// Ward geometry lives in its own crate, shared with the dashboard.
pub use ioc_wards as wards;

pub use pipeline::{run, serve};
