//! Reading the incident topic into the view, from the beginning, at every start.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::view::decode_batch;
use crate::{AppState, CATCH_UP_QUIET, STAGE};
use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt as _};
use ioc_config::kafka::{client_config, dashboard_consumer_config, LagContext};
use ioc_config::load::Settings;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};

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
    // Open incidents are indexed by position once the replay is done, all at once.
    if !state.is_caught_up() {
        state.view.write().expect("view lock").defer_index();
    }
    let mut last_record = std::time::Instant::now();
    let mut check = tokio::time::interval(Duration::from_millis(250));
    let mut records = consumer.stream();
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
            state.view.write().expect("view lock").build_index();
            state.caught_up.store(true, Ordering::Release);
        }
        let first = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = check.tick() => continue,
            next = records.next() => next.expect("a Kafka stream never ends"),
        };
        // With the first record, whatever else has already arrived: during the start-up
        // replay that is thousands, decoded together.
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(result) = next.take() {
            match result {
                Ok(m) => batch.push(m.detach()),
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard consumer error");
                    break;
                }
            }
            if batch.len() < BATCH {
                next = records.next().now_or_never().flatten();
            }
        }
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        last_record = std::time::Instant::now();
        apply_batch(&state, batch, &mut targets).await;
    }
}

/// Records taken from the consumer at most at once.
const BATCH: usize = 2048;

/// Decodes `batch` (on the blocking threads, a part per core, when it is large) and applies it
/// to the view in order; only then counts its records as read, since a dashboard taking over a
/// partition of commands waits until the view has read what the last owner wrote.
async fn apply_batch(state: &AppState, batch: Vec<OwnedMessage>, targets: &mut HashMap<i32, i64>) {
    let count = batch.len() as u64;
    let decoded = decode_batch(batch, |m| m.payload().unwrap_or_default()).await;
    // Partition → the offset after its last record in the batch.
    let mut read = HashMap::new();
    let readable = decoded.into_iter().filter_map(|(m, decoded)| {
        read.insert(m.partition(), m.offset() + 1);
        match decoded {
            Ok(record) => Some(record),
            Err(e) => {
                state
                    .metrics
                    .rejected
                    .with_label_values(&[STAGE, e.code])
                    .inc();
                tracing::warn!(
                    partition = m.partition(),
                    offset = m.offset(),
                    "skipping unreadable incident: {}",
                    e.message
                );
                None
            }
        }
    });
    state.apply_all(readable);
    for (partition, next) in &read {
        if targets.get(partition).is_some_and(|end| next >= end) {
            targets.remove(partition);
        }
    }
    state
        .commands
        .read_up_to
        .lock()
        .expect("positions lock")
        .extend(read);
    state
        .metrics
        .events_in
        .with_label_values(&[STAGE, "incident"])
        .inc_by(count);
}
