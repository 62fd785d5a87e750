//! The event schema shared by every ioc stage.
//!
//! Stages talk to each other only through Kafka records whose JSON shapes are defined here, so this
//! crate is the contract: change a field here and every stage sees it. It also owns the things that
//! must agree across stages: how ids are derived ([`ids`]), what counts as valid input
//! ([`validate`]), the ward boundary file format ([`boundary`]) and the Prometheus metric names
//! ([`metrics`]).
//!
//! Modules:
//! - [`camera`]: camera analytics in their vendors' formats (DeepStream, Frigate, Hikvision,
//!   Dahua, ONVIF), read into one shape.
//! - [`event`]: citizen reports, camera events, incidents and dead-letter records.
//! - [`ids`]: deterministic ids, so a replayed input yields the same incident.
//! - [`lifecycle`]: the incident state machine: who may do what, and the audit trail.
//! - [`sla`]: service-level targets, overdue judgement and escalations.
//! - [`validate`]: field rules with machine-readable error codes.
//! - [`time`]: reading the times of incident records quickly.
//! - [`boundary`]: reading ward boundary GeoJSON into named multipolygons.
//! - [`metrics`]: every `ioc_` metric, declared once.
//! - [`names`]: place names compared without diacritics ("Sai Gon" finds "Sài Gòn").
//! - [`openapi`]: JSON Schemas of the records on every topic and the OpenAPI builder the stages
//!   describe their HTTP endpoints with, both generated from these types.

pub mod boundary;
pub mod camera;
pub mod event;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod ids;
pub mod lifecycle;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod sla;
pub mod time;
pub mod validate;

pub use event::*;
