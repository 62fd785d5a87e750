//! Forwards incident changes to the assignments topic, keyed by ward id, so a ward's own systems
//! can follow just their ward without reading every incident.
//!
//! The topic is derived from the incident topic by a consumer group of its own (the router's
//! group id plus `-assignments`), at-least-once like the router itself: an incident's offset is
//! stored only after every record it gives is acknowledged, and the records are a pure function
//! of the incident revision ([`AssignmentRecord::for_revision`]), so a replay rewrites the same
//! bytes. Every change written by any stage (routing, lifecycle actions, escalations) therefore
//! reaches the ward, with `change` telling whether it was assigned, updated or withdrawn.

use std::sync::Arc;

use anyhow::Context as _;
use futures::stream::{FuturesOrdered, StreamExt};
use ioc_config::kafka::{consumer_config, producer_config, LagContext};
use ioc_config::load::Settings;
use ioc_schema::metrics::Metrics;
use ioc_schema::validate::decode_json;
use ioc_schema::{AssignmentRecord, Incident};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;

use crate::pipeline::{deliver, drain, store, Settled};
use ioc_config::supervise::CancellationToken;

const STAGE: &str = "assignments";

/// Runs until `stop` is cancelled.
pub async fn forward(
    settings: Arc<Settings>,
    metrics: Metrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = &settings.config;
    let group = format!("{}-assignments", cfg.router.group_id);
    let consumer: StreamConsumer<LagContext> = consumer_config(cfg, &group)
        .create_with_context(LagContext {
            metrics: metrics.clone(),
            stage: STAGE,
        })
        .context("creating the assignment forwarder's consumer")?;
    consumer
        .subscribe(&[&cfg.topics.incidents])
        .context("subscribing to the incident topic")?;
    let producer: FutureProducer = producer_config(cfg)
        .create()
        .context("creating the assignment forwarder's producer")?;
    let max_in_flight = cfg.router.max_in_flight;
    let mut inflight = FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(done) = inflight.next(), if !inflight.is_empty() => store(&consumer, done),
            msg = consumer.recv(), if inflight.len() < max_in_flight => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "assignment forwarder consumer error");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                };
                metrics.events_in.with_label_values(&[STAGE, "incident"]).inc();
                let records = match decode_json::<Incident>(msg.payload().unwrap_or_default()) {
                    Ok(i) => AssignmentRecord::for_revision(&i),
                    Err(e) => {
                        // Not ours to dead-letter: the incident topic is written by our own stages.
                        metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
                        tracing::warn!(partition = msg.partition(), offset = msg.offset(), "skipping unreadable incident: {}", e.message);
                        Vec::new()
                    }
                };
                let settled = Settled { topic: msg.topic().to_string(), partition: msg.partition(), offset: msg.offset() };
                let producer = producer.clone();
                let metrics = metrics.clone();
                let topic = cfg.topics.assignments.clone();
                let timeout = cfg.kafka.produce_timeout.0;
                inflight.push_back(async move {
                    for r in records {
                        let bytes = serde_json::to_vec(&r).expect("assignment serializes");
                        deliver(&producer, &topic, &r.ward_id, &bytes, timeout, &metrics).await;
                        metrics.events_out.with_label_values(&[STAGE, "assignment"]).inc();
                    }
                    settled
                });
            }
        }
    }
    drain(&consumer, inflight, STAGE).await;
    Ok(())
}
