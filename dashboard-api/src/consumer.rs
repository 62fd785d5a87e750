//! Reading the incident topic into the view, from the beginning, at every start.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::{AppState, CATCH_UP_QUIET, STAGE};
use anyhow::Context as _;
use ioc_config::kafka::{client_config, dashboard_consumer_config, LagContext};
use ioc_config::load::Settings;
use ioc_schema::validate::decode_json;
use ioc_schema::Incident;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;

/// Offsets the view must reach before it has read everything that was on the topic at start:
/// partition → high watermark, for non-empty partitions.
fn catch_up_targets(settings: &Settings) -> anyhow::Result<HashMap<i32, i64>> {
    let cfg = &settings.config;
    let probe: BaseConsumer = client_config(cfg)
        .set("group.id", format!("{}-probe", cfg.dashboard.group_prefix))
        .create()?;
    let topic = &cfg.topics.incidents;
    let md = probe.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut out = HashMap::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = probe.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        if high > low {
            out.insert(p.id(), high);
        }
    }
    Ok(out)
}

/// Reads the incident topic from the beginning into the view until `shutdown`.
pub async fn consume(
    settings: &Settings,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let cfg = &settings.config;
    let group = format!("{}-{}", cfg.dashboard.group_prefix, uuid::Uuid::new_v4());
    let consumer: StreamConsumer<LagContext> = dashboard_consumer_config(cfg, &group)
        .create_with_context(LagContext::new(state.metrics.clone(), STAGE))
        .context("creating the dashboard's Kafka consumer")?;
    consumer
        .subscribe(&[&cfg.topics.incidents])
        .context("subscribing to the incident topic")?;
    let probe_settings = settings.clone();
    let mut targets = match tokio::task::spawn_blocking(move || catch_up_targets(&probe_settings))
        .await
        .expect("watermark probe does not panic")
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cannot read the incident topic's end offsets ({e:#}); treating the first {CATCH_UP_QUIET:?} without records as caught up");
            HashMap::from([(-1, i64::MAX)])
        }
    };
    let mut last_record = std::time::Instant::now();
    let mut check = tokio::time::interval(Duration::from_millis(250));
    tokio::pin!(shutdown);
    loop {
        if !targets.is_empty() && last_record.elapsed() >= CATCH_UP_QUIET {
            // Some brokers report end offsets that are never reached (e.g. after transaction
            // markers); a quiet topic is as caught up as it gets.
            targets.clear();
        }
        if targets.is_empty() && !state.is_caught_up() {
            tracing::info!(
                incidents = state.view.read().expect("view lock").len(),
                "dashboard caught up with the incident topic"
            );
            state.caught_up.store(true, Ordering::Release);
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = check.tick() => {}
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    last_record = std::time::Instant::now();
                    state.commands.read_up_to.lock().expect("positions lock").insert(m.partition(), m.offset() + 1);
                    if targets.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
                        targets.remove(&m.partition());
                    }
                    state.metrics.events_in.with_label_values(&[STAGE, "incident"]).inc();
                    match decode_json::<Incident>(m.payload().unwrap_or_default()) {
                        Ok(incident) => state.apply(incident),
                        Err(e) => {
                            state.metrics.rejected.with_label_values(&[STAGE, e.code]).inc();
                            tracing::warn!(partition = m.partition(), offset = m.offset(), "skipping unreadable incident: {}", e.message);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
