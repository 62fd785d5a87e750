//! Kafka, once for every stage:
//! - [`config`]: client configurations (producers, the router's and the dashboard's consumers)
//!   and topic creation;
//! - [`sink`]: produce-and-wait with its metric and errors that say whether a retry helps;
//! - [`source`]: the at-least-once consume loop;
//! - [`lag`]: consumer-lag metrics and commit on revoke;
//! - [`strand`]: a watch that makes a consumer rejoin a group that left partitions unheld;
//! - [`embedded`]: the in-process broker of the demo and the tests.

pub mod config;
pub mod embedded;
pub mod lag;
pub mod sink;
pub mod source;
pub mod strand;

pub use config::{
    base_consumer_config, check_topic_policies, client_config, consumer_config,
    dashboard_consumer_config, ensure_topics, group_session, producer_config, topic_settings,
};
pub use embedded::EmbeddedBroker;
pub use lag::LagContext;
pub use sink::{Sink, SinkError};
pub use source::{at_least_once, clients};
pub use strand::StrandWatch;
