//! Configuration for every ioc stage, and the Kafka wiring built from it.
//!
//! One TOML file describes a deployment: brokers, topic names, consumer groups, listen addresses,
//! ward boundary sets, incident categories with their responsible units and service levels, and
//! the camera registry. Loading is layered: the embedded defaults ([`DEFAULT_TOML`], the demo
//! city), then the operator's file, then `IOC_<SECTION>__<KEY>` environment variables. After
//! loading, [`Config::validate`] reports every problem at once.
//!
//! Modules:
//! - [`model`]: the configuration structs, each field documented.
//! - [`load`]: layering and validation.
//! - [`assets`]: files bundled in the binary (`embedded:` paths), such as the demo city.
//! - [`intake`]: filing a citizen's report, for ingest and Open311 alike.
//! - [`http`]: the router every stage builds its documented HTTP API with, and the ops routes.
//! - [`supervise`]: one cancellation token per stage; a failing task stops the stage.
//! - [`limits`]: token buckets per client and per API key for the public endpoints.
//! - [`kafka`]: client configs, topic creation, the embedded broker and consumer-lag metrics.

pub mod assets;
pub mod cameras;
pub mod http;
pub mod intake;
pub mod kafka;
pub mod limits;
pub mod load;
pub mod model;
pub mod supervise;

pub use load::{ConfigError, DEFAULT_TOML};
pub use model::*;

/// Binds a configured listen address; the error names the setting, so the operator knows which
/// one to change.
pub async fn bind(setting: &str, addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {setting} {addr}: {e}"))
    })
}
