//! Kafka clients built from configuration, and topic creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::model::Config;

/// Base client configuration: brokers plus the raw options from `[kafka.options]`.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.kafka.brokers);
    for (k, v) in &config.kafka.options {
        cc.set(k, v);
    }
    cc
}

/// A producer that never reports success before every in-sync replica has the record, and never
/// writes a record twice on retry.
pub fn producer_config(config: &Config) -> ClientConfig {
    let mut cc = client_config(config);
    cc.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            config.kafka.produce_timeout.0.as_millis().to_string(),
        );
    cc
}

/// How long a fetch may wait at the broker for new records, unless `[kafka.options]` says
/// otherwise. librdkafka's 500 ms default adds up to half a second per stage on brokers that do
/// not answer a waiting fetch as soon as records arrive (the embedded one, tansu); see
/// BENCHMARKS.md.
const FETCH_WAIT_MS: &str = "50";

/// Base configuration of every consumer: a short fetch wait (latency matters more than the few
/// extra fetch requests an idle pipeline makes).
pub fn base_consumer_config(config: &Config) -> ClientConfig {
    let mut cc = client_config(config);
    if !config.kafka.options.contains_key("fetch.wait.max.ms") {
        cc.set("fetch.wait.max.ms", FETCH_WAIT_MS);
    }
    cc
}

/// A consumer that stores offsets only when told (after its outputs are acknowledged) and
/// commits them in the background.
pub fn consumer_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut cc = base_consumer_config(config);
    cc.set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // Also bounds how long a rebalance waits for a member that died without leaving.
        .set("max.poll.interval.ms", "30000")
        .set("statistics.interval.ms", "5000");
    cc
}

/// A dashboard's consumer: its own group (every instance reads the whole incident topic), from
/// the beginning, never committing (it rebuilds its view from the topic at every start).
pub fn dashboard_consumer_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut cc = base_consumer_config(config);
    cc.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000");
    cc
}

/// Creates the pipeline's topics if they are missing (already existing ones are fine).
pub async fn ensure_topics(config: &Config) -> Result<(), KafkaError> {
    let admin: AdminClient<_> = client_config(config).create()?;
    let t = &config.topics;
    let names = t.all();
    let new: Vec<_> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                t.partitions,
                TopicReplication::Fixed(t.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(topic = %name, %code, "cannot create topic");
                })
            }
        }
    }
    Ok(())
}
