//! Camera situations into incident revisions. The router writes a situation's incident once
//! and its state as detections come on the situations topic; this instance, for the
//! incidents whose commands it applies (one writer each, see [`crate::commands`]), writes a new
//! revision when the situation has changed enough to matter ([`SituationSummary::worth_updating`]),
//! is over, or has had no newer state for [`SETTLED`] while the incident shows an older one. No
//! audit entry: nobody acted.
//! Every instance reads every record, so an instance that takes a partition over writes what
//! the last owner left.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ioc_config::kafka::dashboard_consumer_config;
use ioc_config::supervise::CancellationToken;
use ioc_config::Disposition;
use ioc_schema::{Situation, SituationSummary, SITUATION_SCHEMA};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;

use crate::AppState;

/// How long a situation's latest state must stay the latest before the incident is brought up
/// to it even when it says little more than what the incident shows: a burst of detections
/// ends in the right count, while a steady stream still makes few revisions.
const SETTLED: Duration = Duration::from_secs(20);

/// Follows the situations topic until `stop`.
pub async fn follow(s: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let cfg = &s.settings.config;
    let group = format!(
        "{}-situations-{}",
        cfg.dashboard.group_prefix, s.commands.instance
    );
    let consumer: StreamConsumer = dashboard_consumer_config(cfg, &group)
        .create()
        .context("creating the situations consumer")?;
    let mut topics = vec![cfg.topics.situations.as_str()];
    if !cfg.topics.deepstream.is_empty() {
        topics.push(&cfg.topics.deepstream_situations);
    }
    consumer
        .subscribe(&topics)
        .context("subscribing to the situations topics")?;
    // Incident id → the latest state of its situation not yet shown by the incident, and when
    // it came.
    let mut latest: HashMap<String, (SituationSummary, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => update(&s, &mut latest).await,
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    let Some(record) = m
                        .payload()
                        .and_then(|v| serde_json::from_slice::<Situation>(v).ok())
                        .filter(|r| r.schema == SITUATION_SCHEMA && r.incident_written)
                        // A tracked enforcement capture became a record, not an incident.
                        .filter(|r| cfg.router.disposition(&r.event_type) == Disposition::Incident)
                    else {
                        continue;
                    };
                    let newer = record.summary();
                    match latest.get(&record.incident_id) {
                        Some((known, _)) if known.detections >= newer.detections => {}
                        _ => {
                            latest.insert(record.incident_id, (newer, Instant::now()));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "situations consumer");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Writes the revisions that are due, for the incidents this instance owns.
async fn update(s: &AppState, latest: &mut HashMap<String, (SituationSummary, Instant)>) {
    if latest.is_empty() || !s.is_caught_up() {
        return;
    }
    let _one_at_a_time = s.acting.lock().await;
    let now = s.now();
    let due: Vec<_> = {
        let view = s.view.read().expect("view lock");
        let mut due = Vec::new();
        latest.retain(|id, (newer, since)| {
            let Some(current) = view.get(id) else {
                // Not in the view yet: its first revision is on its way.
                return true;
            };
            let shown = current.situation.as_ref();
            if !current.status.is_open() || shown.is_some_and(|c| c.detections >= newer.detections)
            {
                return false;
            }
            let worth = shown.is_none_or(|c| {
                c.worth_updating(newer) || !newer.active(now) || since.elapsed() >= SETTLED
            });
            if worth && s.commands.owns(id) {
                let mut next = current.next_revision();
                next.updated_at = next.updated_at.max(newer.last_seen.min(now));
                if let Some(url) = &newer.snapshot_url {
                    if !next.media_urls.contains(url) {
                        next.media_urls.push(url.clone());
                    }
                }
                next.situation = Some(newer.clone());
                due.push(next);
                return false;
            }
            true
        });
        due
    };
    for next in due {
        if let Err(e) = crate::actions::write(s, &next).await {
            tracing::warn!(incident = %next.id, "situation update not written: {}", e.2);
        }
    }
}
