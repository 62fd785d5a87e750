//! A client context that turns librdkafka's statistics into consumer-lag metrics, commits
//! before partitions move, and counts assignments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ioc_schema::metrics::Metrics;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::Statistics;

/// Client context that publishes each partition's consumer lag from librdkafka's statistics.
#[derive(Clone)]
pub struct LagContext {
    metrics: Metrics,
    stage: &'static str,
    /// Rebalances seen (revocations and assignments).
    rebalances: Arc<AtomicU64>,
    /// Run when partitions are revoked, before they move to another member.
    on_revoke: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl LagContext {
    pub fn new(metrics: Metrics, stage: &'static str) -> LagContext {
        LagContext {
            metrics,
            stage,
            rebalances: Arc::default(),
            on_revoke: None,
        }
    }

    /// Runs `f` whenever partitions are revoked, inside the rebalance and before the group
    /// gives them to another member (so it must be quick and must not wait on async work).
    pub fn on_revoke(mut self, f: impl Fn() + Send + Sync + 'static) -> LagContext {
        self.on_revoke = Some(Arc::new(f));
        self
    }

    /// How many times partitions were revoked or assigned so far: while it stays the same,
    /// the consumer's partitions have not moved.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Acquire)
    }
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
        self.rebalances.fetch_add(1, Ordering::AcqRel);
        if let Rebalance::Revoke(_) = rebalance {
            if let Some(f) = &self.on_revoke {
                f();
            }
            self.metrics
                .assigned_partitions
                .with_label_values(&[self.stage])
                .set(0);
            // Asynchronous: queued to the coordinator before the group moves on, and never a
            // wait with no end inside librdkafka's callback (a synchronous commit to a broker
            // that is gone, or in the middle of a rebalance, blocked its thread for good).
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
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
        self.rebalances.fetch_add(1, Ordering::AcqRel);
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
