//! Kafka clients built from configuration, topic creation, the embedded broker, and a client
//! context that turns librdkafka statistics into consumer-lag metrics.

use std::sync::mpsc;
use std::time::Duration;

use ioc_schema::metrics::Metrics;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Statistics;

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

/// librdkafka's in-process mock cluster, kept on a thread of its own (it is not `Send`) until
/// dropped. Its limits: about 5 MB per partition (older records vanish) and nothing survives
/// the process.
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster with the given topics and partition count.
    pub fn start(topics: &[&str], partitions: i32) -> Result<EmbeddedBroker, KafkaError> {
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for t in &topics {
                    if let Err(e) = cluster.create_topic(t, partitions, 1) {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Blocks until the owner drops the sender.
                let _ = stop_rx.recv();
            })
            .expect("spawn embedded broker thread");
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| KafkaError::MockCluster(RDKafkaErrorCode::Fail))??;
        Ok(EmbeddedBroker {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The `bootstrap.servers` value for clients.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Client context that publishes each partition's consumer lag from librdkafka's statistics.
#[derive(Clone)]
pub struct LagContext {
    pub metrics: Metrics,
    pub stage: &'static str,
}

impl ClientContext for LagContext {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (id, p) in &t.partitions {
                if *id < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .with_label_values(&[self.stage, topic, &id.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for LagContext {
    /// Commits what has been stored before partitions move to another consumer, so the new
    /// owner starts after the last acknowledged output instead of replaying more than needed.
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        use rdkafka::consumer::{CommitMode, Consumer, Rebalance};
        if let Rebalance::Revoke(_) = rebalance {
            self.metrics
                .assigned_partitions
                .with_label_values(&[self.stage])
                .set(0);
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                // Nothing stored since the last commit is the common, harmless case.
                tracing::debug!(error = %e, "commit on revoke");
            }
        }
    }

    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Assign(tpl) = rebalance {
            let n = tpl.count() as i64;
            self.metrics
                .assigned_partitions
                .with_label_values(&[self.stage])
                .set(n);
            tracing::info!(stage = self.stage, partitions = n, "partitions assigned");
        }
    }
}
