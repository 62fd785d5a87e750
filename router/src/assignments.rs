//! Forwards incident changes to the assignments topic, keyed by `ward id/incident id`
//! ([`AssignmentRecord::key`]), so a ward's own systems can follow just their ward without
//! reading every incident.
//!
//! The topic is derived from the incident topic by a consumer group of its own (the router's
//! group id plus `-assignments`), at-least-once like the router itself: an incident's offset is
//! stored only after every record it gives is acknowledged, and the records are a pure function
//! of the incident revision ([`AssignmentRecord::for_revision`]), so a replay rewrites the same
//! bytes. Every change written by any stage (routing, lifecycle actions, escalations) therefore
//! reaches the ward, with `change` telling whether it was assigned, updated or withdrawn.

use std::sync::Arc;

use ioc_config::kafka::clients;
use ioc_config::load::Settings;
use ioc_config::supervise::CancellationToken;
use ioc_schema::metrics::Metrics;
use ioc_schema::validate::decode_json;
use ioc_schema::{AssignmentRecord, Incident};
use rdkafka::message::Message;

use crate::pipeline::process;

const STAGE: &str = "assignments";

/// Runs until `stop` is cancelled.
pub async fn forward(
    settings: Arc<Settings>,
    metrics: Metrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = &settings.config;
    let group = format!("{}-assignments", cfg.router.group_id);
    let (consumer, sink) = clients(cfg, &group, &[&cfg.topics.incidents], &metrics, STAGE)?;
    process(&consumer, STAGE, &group, &settings, stop, |msg| {
        metrics
            .events_in
            .with_label_values(&[STAGE, "incident"])
            .inc();
        let records = match decode_json::<Incident>(msg.payload().unwrap_or_default()) {
            Ok(i) => AssignmentRecord::for_revision(&i),
            Err(e) => {
                // Not ours to dead-letter: the incident topic is written by our own stages.
                metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
                tracing::warn!(
                    partition = msg.partition(),
                    offset = msg.offset(),
                    "skipping unreadable incident: {}",
                    e.message
                );
                Vec::new()
            }
        };
        let (sink, metrics) = (sink.clone(), metrics.clone());
        let topic = cfg.topics.assignments.clone();
        async move {
            for r in records {
                let bytes = serde_json::to_vec(&r).expect("assignment serializes");
                sink.send_until_acknowledged(&topic, &r.key(), &bytes).await;
                metrics
                    .events_out
                    .with_label_values(&[STAGE, "assignment"])
                    .inc();
            }
        }
    })
    .await;
    Ok(())
}
