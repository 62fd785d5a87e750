//! The at-least-once consume loop every consuming stage with outputs shares: an input's offset is
//! stored only after the outputs it caused are acknowledged, in order per partition; at most
//! `max_in_flight` inputs are pending; at shutdown what is pending gets a deadline to finish,
//! then the stored offsets are committed.

use std::future::Future;
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use tokio_util::sync::CancellationToken;

use anyhow::Context as _;
use ioc_schema::metrics::Metrics;

use super::{LagContext, Sink};
use crate::model::Config;

/// The two clients of a consume-produce stage: a consumer in `group` subscribed to `topics`
/// (offsets stored by [`at_least_once`]), and a sink for its outputs.
pub fn clients(
    config: &Config,
    group: &str,
    topics: &[&str],
    metrics: &Metrics,
    stage: &'static str,
) -> anyhow::Result<(StreamConsumer<LagContext>, Sink)> {
    let mut cc = super::consumer_config(config, group);
    if let Some(instance) = config
        .router
        .instance_id
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        // One name per group the process is a member of.
        cc.set("group.instance.id", format!("{instance}-{stage}"));
    }
    let consumer: StreamConsumer<LagContext> = cc
        .create_with_context(LagContext::new(metrics.clone(), stage))
        .with_context(|| format!("creating the {stage} consumer"))?;
    consumer
        .subscribe(topics)
        .with_context(|| format!("subscribing the {stage} consumer to {}", topics.join(", ")))?;
    let sink = Sink::new(config, metrics.clone(), stage)
        .with_context(|| format!("creating the {stage} producer"))?;
    Ok((consumer, sink))
}

/// Where an input record was.
struct Position {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Consumes until `stop` is cancelled. `handle` is called with each record and returns a future
/// that completes once the record's outputs are acknowledged.
pub async fn at_least_once<F, Fut>(
    consumer: &StreamConsumer<LagContext>,
    stage: &str,
    max_in_flight: usize,
    stop: CancellationToken,
    drain_deadline: Duration,
    watch: Option<&super::StrandWatch>,
    mut handle: F,
) where
    F: FnMut(&BorrowedMessage<'_>) -> Fut,
    Fut: Future<Output = ()> + Send,
{
    let mut inflight = FuturesOrdered::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tick.tick(), if watch.is_some() => {
                if let Some(w) = watch {
                    if w.rejoin_due() {
                        rejoin(consumer, stage);
                    } else if let Ok(tpl) = consumer.assignment() {
                        w.report(&tpl);
                    }
                }
            }
            Some(done) = inflight.next(), if !inflight.is_empty() => store(consumer, done),
            msg = consumer.recv(), if inflight.len() < max_in_flight => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "{stage}: consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let position = Position {
                    topic: msg.topic().to_string(),
                    partition: msg.partition(),
                    offset: msg.offset(),
                };
                let outputs = handle(&msg);
                inflight.push_back(async move {
                    outputs.await;
                    position
                });
            }
        }
    }
    tracing::info!(in_flight = inflight.len(), "{stage} draining");
    let drained = tokio::time::timeout(drain_deadline, async {
        while let Some(done) = inflight.next().await {
            store(consumer, done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{stage}: drain deadline passed; unacknowledged inputs will be processed again after restart"
        );
    }
    // Asynchronous, as a synchronous commit can wait without end (a broker that is gone, a
    // rebalance in progress) on an async worker, where no deadline can reach it; closing the
    // consumer commits what is stored as well (auto-commit of stored offsets).
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
        tracing::debug!(error = %e, "final commit");
    }
}

/// Leaves the group and joins it again with the same subscription. Inputs still in flight
/// may be done again by the partition's next owner, with the same outputs.
pub fn rejoin(consumer: &StreamConsumer<LagContext>, stage: &str) {
    let topics: Vec<String> = match consumer.subscription() {
        Ok(tpl) => tpl
            .elements()
            .iter()
            .map(|e| e.topic().to_string())
            .collect(),
        Err(_) => return,
    };
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.unsubscribe();
    if let Err(e) = consumer.subscribe(&topics) {
        tracing::warn!(error = %e, "{stage}: cannot subscribe again");
    }
}

fn store(consumer: &StreamConsumer<LagContext>, done: Position) {
    // Fails only if the partition was revoked meanwhile; its new owner will redo the record and
    // write the same output.
    if let Err(e) = consumer.store_offset(&done.topic, done.partition, done.offset) {
        tracing::debug!(error = %e, topic = %done.topic, partition = done.partition, "offset not stored");
    }
}
